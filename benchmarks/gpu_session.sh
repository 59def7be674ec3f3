#!/usr/bin/env bash
# Everything the fused GPU kernel needs checked and timed on a lent GPU, in one call (a device
# session has 30 minutes; see docs/benchmarks.md "Fused GPU kernel"). Run from the repository
# root on the GPU machine; results go to $OUT (default ./gpu-out):
#
#   OUT=/tmp/out benchmarks/gpu_session.sh          # parity tests, then the benchmark
#   QUICK=1 benchmarks/gpu_session.sh               # parity + batch 1 and 16 only
#
# 1. the GPU's identity; 2. the full-size parity tests (persistent launches vs the references,
# plain and subscale; service picks the kernels); 3. bench_gpu.py and bench_gpu_subscale.py
# (JSON line last). Each step's log is kept.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-}:$(pwd)
export TRITON_DEFAULT_FP_FUSION=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" \
  | tee -a "$OUT/gpu.txt"
python -m pytest -q -x tests/models/test_gpu_kernel.py tests/models/test_gpu_subscale.py tests/service/test_devices.py 2>&1 \
  | tee "$OUT/tests.log"
tests_rc=${PIPESTATUS[0]}
if [ "${QUICK:-0}" = 1 ]; then
  batches=(1 16)
else
  batches=(1 4 16 64 256)
fi
python benchmarks/bench_gpu.py --hidden 896 1024 --sparsity 0 0.95 --batches "${batches[@]}" 2>&1 | tee "$OUT/bench_gpu.log"
bench_rc=${PIPESTATUS[0]}
tail -n 1 "$OUT/bench_gpu.log" > "$OUT/bench_gpu.json"
python benchmarks/bench_gpu_subscale.py --hidden 896 2>&1 | tee "$OUT/bench_gpu_subscale.log"
sub_rc=${PIPESTATUS[0]}
tail -n 1 "$OUT/bench_gpu_subscale.log" > "$OUT/bench_gpu_subscale.json"
echo "tests rc=$tests_rc bench rc=$bench_rc subscale bench rc=$sub_rc"
exit $(( tests_rc || bench_rc || sub_rc ))
