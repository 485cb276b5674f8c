#!/usr/bin/env bash
# Stage 2 of the decisive benchmark (docs/results.md): 100K env steps from scratch on the
# held-out seeds 3, 4, 5, never used for a choice. The arms are stage 1's choice (its rule is in
# docs/results.md): the best spiking model-using arm, its real-only control (same agent and G,
# no model), the same arm with the MLP model where stage 1 says so, and on Ant the
# --no-dreaming baseline at 1 update per env step. Every call's arguments are checked first;
# then two lanes run side by side, one run each, one thread per run, state every 5K steps.
# Rerun the same command to resume whatever was stopped; an arm whose result file exists is
# done and skipped (delete the file to collect it again). Run from the repository root:
#   bash benchmarks/stage2_decide.sh halfcheetah     # then: bash benchmarks/stage2_decide.sh ant
#   bash benchmarks/stage2_decide.sh ant --check     # only check every call's arguments
# PY=python, RUN_ROOT=benchmarks/runs by default.
set -eu
PY=${PY:-python}
RUN_ROOT=${RUN_ROOT:-benchmarks/runs}
CHECK=
export OMP_NUM_THREADS=1

done_already() {  # done_already OUT: true (and says so) when a real run already wrote OUT
  if [ -z "$CHECK" ] && [ -e "$1" ]; then
    echo "$1 exists: arm done, skipped"
    return 0
  fi
  return 1
}

arm() {  # arm CONFIG ARM OUT SEEDS...: the runs one after another, then their result file
  local config=$1 which=$2 out=$3
  shift 3
  if done_already "$out"; then return; fi
  $PY benchmarks/learning_curve.py --config "configs/$config.yaml" --arm "$which" --seeds "$@" \
    --steps 100000 --jobs 1 --run-root "$RUN_ROOT" --set train.checkpoint_every=5000 \
    --out "$out" $CHECK
}

collect() {  # collect CONFIG ARM OUT SEEDS...: one result file for seeds trained in both lanes
  local config=$1 which=$2 out=$3
  shift 3
  if done_already "$out"; then return; fi
  $PY benchmarks/learning_curve.py --config "configs/$config.yaml" --arm "$which" --seeds "$@" \
    --steps 100000 --run-root "$RUN_ROOT" --set train.checkpoint_every=5000 --out "$out" \
    --collect $CHECK
}

lanes() {  # lanes FUNCTION_A FUNCTION_B: side by side (one after the other with CHECK)
  if [ -n "$CHECK" ]; then "$1"; "$2"; return; fi
  "$1" & local a=$!
  "$2" & local b=$!
  local rc=0
  wait "$a" || rc=$?
  wait "$b" || rc=$?
  return "$rc"
}

R=benchmarks/results
P=$RUN_ROOT/stage2_part  # the lanes' own result files of a split arm (not in git)
case "${1:-}" in
  halfcheetah)  # stage 1's choice: MBPO's regime with PopSAN-SAC; its MLP arm split over the lanes
    lane_a() {
      arm halfcheetah_mbpo_sac dreaming $R/halfcheetah_mbpo_sac_heldout_100k.json 3 4 5
      arm halfcheetah_mbpo_sac_mlp dreaming ${P}_a.json 5
    }
    lane_b() {
      arm halfcheetah_mbpo_sac baseline $R/halfcheetah_mbpo_sac_real_heldout_100k.json 3 4 5
      arm halfcheetah_mbpo_sac_mlp dreaming ${P}_b.json 3 4
    }
    after() { collect halfcheetah_mbpo_sac_mlp dreaming $R/halfcheetah_mbpo_sac_mlp_heldout_100k.json 3 4 5; }
    ;;
  ant)  # the plan's cut: the model arm on seeds 3 and 4 only
    lane_a() { arm ant_mbpo_sac dreaming $R/ant_mbpo_sac_heldout_100k.json 3 4; }
    lane_b() {
      arm ant_mbpo_sac baseline $R/ant_mbpo_sac_real_heldout_100k.json 3 4 5
      arm ant baseline $R/ant_baseline_heldout_100k.json 3 4 5
    }
    after() { :; }
    ;;
  *)
    echo "usage: bash benchmarks/stage2_decide.sh halfcheetah|ant [--check]" >&2
    exit 2
    ;;
esac
case "${2:-}" in
  "") ;;
  --check) ;;
  *)
    echo "stage2_decide.sh: unknown argument ${2}; the second argument may only be --check" >&2
    exit 2
    ;;
esac
CHECK=--check lanes lane_a lane_b
CHECK=--check after
if [ "${2:-}" = --check ]; then exit 0; fi
lanes lane_a lane_b
after
