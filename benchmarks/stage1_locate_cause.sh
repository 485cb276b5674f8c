#!/usr/bin/env bash
# Stage 1 of the decisive benchmark (docs/results.md): HalfCheetah-v5, 30K env steps, seeds 0-1,
# the SAC arms beside the TD3 ones already recorded. Each line trains two runs at a time, one
# thread each, state every 5K steps; rerun the script to resume whatever was stopped (finished
# runs are only collected again). Run from the repository root:
#   bash benchmarks/stage1_locate_cause.sh            # PY=python, RUN_ROOT=benchmarks/runs
set -eu
PY=${PY:-python}
RUN_ROOT=${RUN_ROOT:-benchmarks/runs}
export OMP_NUM_THREADS=1

arm() {  # arm CONFIG ARM OUT
  $PY benchmarks/learning_curve.py --config "configs/$1.yaml" --arm "$2" --seeds 0 1 \
    --steps 30000 --jobs 2 --run-root "$RUN_ROOT" --set train.checkpoint_every=5000 \
    --out "benchmarks/results/$3.json"
}

arm halfcheetah_mbpo_sac baseline halfcheetah_mbpo_sac_real_pilot_30k       # real-only, G = 20
arm halfcheetah_mbpo_sac dreaming halfcheetah_mbpo_sac_pilot_30k            # MBPO regime, spiking
arm halfcheetah_mbpo_sac_mlp dreaming halfcheetah_mbpo_sac_mlp_pilot_30k    # MBPO regime, MLP
arm halfcheetah_value_gradient_sac dreaming halfcheetah_value_gradient_sac_pilot_30k
arm halfcheetah_value_gradient_sac_mlp dreaming halfcheetah_value_gradient_sac_mlp_pilot_30k
