#!/usr/bin/env bash
# The report of stage 2 of the decisive benchmark (docs/results.md), one per task: links the
# runs of benchmarks/stage2_decide.sh into an experiment directory (runs/<task>__<arm>__s<seed>,
# the task being the config's stem) and runs `spiking-dreamer report` on it. Each model-using
# arm is its config's dreaming arm; its baseline is the real-only control (the same agent and G,
# no model), linked under every model-using config so that each is set against it; on Ant, the
# --no-dreaming baseline at 1 update per env step is its own task. Steps to the headline's
# thresholds and returns at 50K and 100K; unfinished runs are listed as such. From the
# repository root:
#   bash benchmarks/stage2_report.sh halfcheetah    # or: ant
# PY=python, RUN_ROOT=benchmarks/runs, EXP_ROOT=benchmarks/experiments by default; the report
# goes to benchmarks/results/<task>_stage2_report/.
set -eu
PY=${PY:-python}
RUN_ROOT=${RUN_ROOT:-benchmarks/runs}
EXP_ROOT=${EXP_ROOT:-benchmarks/experiments}

case "${1:-}" in
  halfcheetah | ant) task=$1 ;;
  *)
    echo "usage: bash benchmarks/stage2_report.sh halfcheetah|ant" >&2
    exit 2
    ;;
esac
if [ $# -gt 1 ]; then
  echo "stage2_report.sh: unexpected argument ${2}" >&2
  exit 2
fi
if [ ! -d "$RUN_ROOT" ]; then
  echo "stage2_report.sh: no run directory $RUN_ROOT (set RUN_ROOT)" >&2
  exit 2
fi
runs=$(cd "$RUN_ROOT" && pwd)
exp=$EXP_ROOT/${task}_stage2
out=benchmarks/results/${task}_stage2_report

link() {  # link CONFIG ARM RUN_CONFIG RUN_ARM SEED...: the runs <RUN_CONFIG>_<RUN_ARM>_100000_s<seed>
  local config=$1 which=$2 run=$3_$4_100000
  shift 4
  for s in "$@"; do
    ln -sfn "$runs/${run}_s$s" "$exp/runs/${config}__${which}__s$s"
  done
}

rm -rf "$exp"
mkdir -p "$exp/runs"
if [ "$task" = halfcheetah ]; then
  link halfcheetah_mbpo_sac dreaming halfcheetah_mbpo_sac dreaming 3 4 5
  link halfcheetah_mbpo_sac baseline halfcheetah_mbpo_sac baseline 3 4 5
  link halfcheetah_mbpo_sac_mlp dreaming halfcheetah_mbpo_sac_mlp dreaming 3 4 5
  link halfcheetah_mbpo_sac_mlp baseline halfcheetah_mbpo_sac baseline 3 4 5
else
  link ant_mbpo_sac dreaming ant_mbpo_sac dreaming 3 4
  link ant_mbpo_sac baseline ant_mbpo_sac baseline 3 4 5
  link ant baseline ant baseline 3 4 5
fi
# the headline's thresholds and budgets (benchmarks/headline.yaml)
$PY -m spiking_dreamer.cli report "$exp" --out "$out" --thresholds halfcheetah=5000,8000 \
  --thresholds ant=2000,4000 --budgets 50k,100k
