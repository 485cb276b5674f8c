#!/usr/bin/env bash
# Stage 1 of the decisive benchmark (docs/results.md): HalfCheetah-v5, 30K env steps, seeds 0-1,
# the SAC arms beside the TD3 ones already recorded. Every call's arguments are checked first;
# then each line trains two runs at a time, one thread each, state every 5K steps. Rerun the
# script to resume whatever was stopped; an arm whose result file exists is done and skipped
# (delete the file to collect it again). Run from the repository root:
#   bash benchmarks/stage1_locate_cause.sh            # PY=python, RUN_ROOT=benchmarks/runs
#   bash benchmarks/stage1_locate_cause.sh --check    # only check every call's arguments
set -eu
PY=${PY:-python}
RUN_ROOT=${RUN_ROOT:-benchmarks/runs}
CHECK=
export OMP_NUM_THREADS=1

arm() {  # arm CONFIG ARM OUT
  if [ -z "$CHECK" ] && [ -e "benchmarks/results/$3.json" ]; then
    echo "benchmarks/results/$3.json exists: arm done, skipped"
    return
  fi
  $PY benchmarks/learning_curve.py --config "configs/$1.yaml" --arm "$2" --seeds 0 1 \
    --steps 30000 --jobs 2 --run-root "$RUN_ROOT" --set train.checkpoint_every=5000 \
    --out "benchmarks/results/$3.json" $CHECK
}

arms() {
  arm halfcheetah_mbpo_sac baseline halfcheetah_mbpo_sac_real_pilot_30k       # real-only, G = 20
  arm halfcheetah_mbpo_sac dreaming halfcheetah_mbpo_sac_pilot_30k            # MBPO, spiking
  arm halfcheetah_mbpo_sac_mlp dreaming halfcheetah_mbpo_sac_mlp_pilot_30k    # MBPO, MLP
  arm halfcheetah_value_gradient_sac dreaming halfcheetah_value_gradient_sac_pilot_30k
  arm halfcheetah_value_gradient_sac_mlp dreaming halfcheetah_value_gradient_sac_mlp_pilot_30k
}

case "${1:-}" in
  "" | --check) ;;
  *)
    echo "stage1_locate_cause.sh: unknown argument $1; the only argument is --check" >&2
    exit 2
    ;;
esac
CHECK=--check arms  # every call's arguments first
if [ "${1:-}" = --check ]; then exit 0; fi
arms
