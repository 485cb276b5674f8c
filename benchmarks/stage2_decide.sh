#!/usr/bin/env bash
# Stage 2 of the decisive benchmark (docs/results.md): 100K env steps from scratch on the
# held-out seeds 3, 4, 5, never used for a choice. The arms are stage 1's choice (its rule is in
# docs/results.md): the best spiking model-using arm, its real-only control (same agent and G,
# no model), the same arm with the MLP model where stage 1 says so, and on Ant the
# --no-dreaming baseline at 1 update per env step. Every arm's arguments are checked first;
# then WORKERS workers (2 by default, one per core) take the runs in the order listed, each the
# next one not yet taken, one thread per run, state every 5K steps; once all have run, each
# arm's result file is collected from its runs. Rerun the same command to resume whatever was stopped; an arm whose result
# file exists is done and skipped (delete the file to collect it again). Each finished run's
# record is copied into benchmarks/results/run_records/ (commit it): on a new machine, without
# the run directories, those runs count as done and are not trained again. From the repository
# root:
#   bash benchmarks/stage2_decide.sh halfcheetah     # then: bash benchmarks/stage2_decide.sh ant
#   bash benchmarks/stage2_decide.sh ant --check     # only check every arm's arguments
#   WORKERS=1 bash benchmarks/stage2_decide.sh ant   # on the one core another task's run leaves
# PY=python, RUN_ROOT=benchmarks/runs, WORKERS=2 by default.
set -eu
PY=${PY:-python}
RUN_ROOT=${RUN_ROOT:-benchmarks/runs}
export OMP_NUM_THREADS=1
R=benchmarks/results

case "${1:-}" in
  halfcheetah)  # stage 1's choice: MBPO's regime with PopSAN-SAC, its control, its MLP arm
    ARMS=(
      "halfcheetah_mbpo_sac dreaming halfcheetah_mbpo_sac_heldout_100k 3 4 5"
      "halfcheetah_mbpo_sac baseline halfcheetah_mbpo_sac_real_heldout_100k 3 4 5"
      "halfcheetah_mbpo_sac_mlp dreaming halfcheetah_mbpo_sac_mlp_heldout_100k 3 4 5"
    )
    ;;
  ant)  # the plan's cut: the model arm on seeds 3 and 4 only
    ARMS=(
      "ant_mbpo_sac dreaming ant_mbpo_sac_heldout_100k 3 4"
      "ant_mbpo_sac baseline ant_mbpo_sac_real_heldout_100k 3 4 5"
      "ant baseline ant_baseline_heldout_100k 3 4 5"
    )
    ;;
  *)
    echo "usage: bash benchmarks/stage2_decide.sh halfcheetah|ant [--check]" >&2
    exit 2
    ;;
esac
TASK=$1 MODE=${2:-}
case "$MODE" in
  "" | --check) ;;
  *)
    echo "stage2_decide.sh: unknown argument ${2}; the second argument may only be --check" >&2
    exit 2
    ;;
esac
NRUNS=0
for a in "${ARMS[@]}"; do
  set -- $a
  NRUNS=$((NRUNS + $# - 3))
done
WORKERS=${WORKERS:-2}
case "$WORKERS" in
  "" | *[!0-9]* | 0*) bad=1 ;;
  *) if [ "${#WORKERS}" -gt 2 ] || [ "$WORKERS" -gt "$NRUNS" ]; then bad=1; else bad=0; fi ;;
esac
if [ "$bad" = 1 ]; then
  echo "stage2_decide.sh: WORKERS=$WORKERS; it must be a whole number from 1 to $NRUNS (the runs of $TASK)" >&2
  exit 2
fi

curve() {  # curve CONFIG ARM OUT SEEDS... [OPTIONS]: benchmarks/learning_curve.py on them
  local config=$1 which=$2 out=$3
  shift 3
  $PY benchmarks/learning_curve.py --config "configs/$config.yaml" --arm "$which" \
    --steps 100000 --run-root "$RUN_ROOT" --set train.checkpoint_every=5000 --out "$out" \
    --seeds "$@"
}

done_already() {  # done_already OUT: true (and says so) when a real run already wrote OUT
  if [ -e "$1" ]; then
    echo "$1 exists: arm done, skipped"
    return 0
  fi
  return 1
}

for a in "${ARMS[@]}"; do  # every arm's arguments, before any run
  set -- $a
  curve "$1" "$2" "$R/$3.json" "${@:4}" --check
done
if [ "$MODE" = --check ]; then exit 0; fi

# finished runs kept in git (benchmarks/run_records.py) count as done on a new machine
$PY benchmarks/run_records.py restore --run-root "$RUN_ROOT"
# the runs, one seed of each arm in turn; a worker takes a run by creating its claim
RUNS=()
for seed in 3 4 5; do
  for a in "${ARMS[@]}"; do
    set -- $a
    for s in "${@:4}"; do
      if [ "$s" = "$seed" ]; then RUNS+=("$1 $2 $3 $s"); fi
    done
  done
done
CLAIMS=$RUN_ROOT/stage2_claims_$TASK
rm -rf "$CLAIMS"  # no worker runs now: every unfinished run is free to take
mkdir -p "$CLAIMS"

worker() {
  local run
  for run in "${RUNS[@]}"; do
    set -- $run
    if [ -e "$R/$3.json" ] || ! mkdir "$CLAIMS/${1}_${2}_s$4" 2>/dev/null; then continue; fi
    curve "$1" "$2" "$RUN_ROOT/stage2_part_${1}_${2}_s$4.json" "$4" --jobs 1
    $PY benchmarks/run_records.py keep --run-root "$RUN_ROOT"  # commit what it adds
  done
}

pids=()
for ((i = 0; i < WORKERS; i++)); do
  worker &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
  wait "$p" || rc=$?
done
if [ "$rc" != 0 ]; then exit "$rc"; fi
for a in "${ARMS[@]}"; do  # each arm's result file from its runs
  set -- $a
  if ! done_already "$R/$3.json"; then curve "$1" "$2" "$R/$3.json" "${@:4}" --collect; fi
done
