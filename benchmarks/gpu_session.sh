#!/usr/bin/env bash
# Everything the fused GPU kernels need checked and timed on a lent GPU, in one device call (a
# device session has 30 minutes, one call at most 10; see docs/benchmarks.md "Fused GPU kernel").
# Run from the repository root on the GPU machine; results go to $OUT (default ./gpu-out):
#
#   OUT=/tmp/out benchmarks/gpu_session.sh          # parity tests, then the benchmarks
#   QUICK=1 benchmarks/gpu_session.sh               # parity + batch 1 and 16 only
#   STEPS="bench serving" benchmarks/gpu_session.sh # some steps (tests bench subscale sweep serving)
#
# Steps, each under its own time limit (seconds: TESTS_S, BENCH_S, SUBSCALE_S, SWEEP_S,
# SERVING_S) so that a
# hang costs one step, not the call, and each step's log is kept in $OUT:
#   tests     the full-size parity tests (persistent launches vs the references, plain and subscale;
#             the service gives CUDA the fused kernel)                              -> tests.log
#   bench     bench_gpu.py (H = 896 dense, 1024 at 95%; JSON line last)            -> bench_gpu.log
#   subscale  bench_gpu_subscale.py (JSON line last)                               -> bench_gpu_subscale.log
#   sweep     gpu_sweep.py: grid size, warps, K chunk, dot precision (H = 896)       -> sweep.log
#   serving   bench_serving.py against `wavernn-tts serve` on the GPU, default voice -> serving.log
# TESTS_K selects tests (pytest -k); BATCHES overrides bench_gpu.py's batch list.
# The service's own packages (fastapi, pydantic, uvicorn...) are not in the GPU image: carry them as
# wheels in .whl/ (docs/benchmarks.md says how) and this script installs them into /tmp/site.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$(pwd)${PYTHONPATH:+:$PYTHONPATH}
export TRITON_DEFAULT_FP_FUSION=1
STEPS=${STEPS:-tests bench subscale}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/gpu.txt"

want() { [[ " $STEPS " == *" $1 "* ]]; }
rc=0
step() {  # step NAME SECONDS LOG COMMAND...: run under a time limit, keep its log, remember a failure
  local name=$1 limit=$2 log=$3; shift 3
  echo "== $name (limit ${limit} s): $*" | tee -a "$OUT/gpu.txt"
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" > "$OUT/$log" 2>&1
  local r=$?
  echo "== $name exit $r after $((SECONDS - start)) s" | tee -a "$OUT/gpu.txt"
  tail -n 25 "$OUT/$log"
  [ "$r" -eq 0 ] || rc=1
}
if [ -n "${BATCHES:-}" ]; then read -ra batches <<< "$BATCHES"
elif [ "${QUICK:-0}" = 1 ]; then batches=(1 16); else batches=(1 4 16 64 256); fi
want tests && step tests "${TESTS_S:-240}" tests.log python3 -m pytest -q -rs --durations=15 -p no:cacheprovider \
  ${TESTS_K:+-k "$TESTS_K"} tests/models/test_gpu_kernel.py tests/models/test_gpu_subscale.py tests/service/test_devices.py
want bench && step bench "${BENCH_S:-240}" bench_gpu.log python3 benchmarks/bench_gpu.py --hidden 896 1024 \
  --sparsity 0 0.95 --batches "${batches[@]}"
want subscale && step subscale "${SUBSCALE_S:-100}" bench_gpu_subscale.log python3 benchmarks/bench_gpu_subscale.py \
  --hidden 896
want sweep && step sweep "${SWEEP_S:-200}" sweep.log python3 benchmarks/gpu_sweep.py --hidden 896
want serving && step serving "${SERVING_S:-200}" serving.log python3 benchmarks/bench_serving.py --seconds 2 \
  --concurrency "${SERVING_CONCURRENCY:-1,16,64}" --repeats 2 --no-reference --ready-timeout 150
echo "gpu_session.sh: steps '$STEPS' rc=$rc"
exit $rc
