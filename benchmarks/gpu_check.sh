#!/usr/bin/env bash
# One call on a lent GPU machine (see README "GPU"): the CUDA tests, then the throughput
# benchmark on the device, eager and compiled side by side in one process. Python packages the
# machine lacks travel as wheels in .whl/ (gymnasium, mujoco, ...); results and logs go to $OUT.
#   DEVICE=cpu STEPS=50 REPEATS=3 WARMUP=300 OUT=/tmp/g bash benchmarks/gpu_check.sh  # dry run
set -u
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-1000}
REPEATS=${REPEATS:-100}
WARMUP=${WARMUP:-2000}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=src
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=src:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv || true
$PY -c "import torch, gymnasium, mujoco; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

bench() {  # $1: output name, rest: extra args
  local name=$1; shift
  timeout "$BENCH_LIMIT" $PY -m spiking_dreamer.cli bench --device "$DEVICE" --threads 1 \
    --warmup "$WARMUP" --steps "$STEPS" --repeats "$REPEATS" --out "$OUT/$name.json" "$@" \
    2>&1 | tee "$OUT/$name.log"
}
timeout 150 $PY -m pytest -q -p no:cacheprovider -k cuda \
  tests/test_td3.py tests/test_training.py tests/test_world_model.py 2>&1 | tee "$OUT/pytest_cuda.log"
BENCH_LIMIT=${BENCH_LIMIT:-300} bench throughput --compile
ls -la "$OUT"
