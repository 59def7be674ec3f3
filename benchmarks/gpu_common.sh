# Sourced by the scripts that run on a lent GPU (gpu_train.sh, gpu_sparse_vs_dense.sh): strict mode,
# the repository root as working folder and on PYTHONPATH (the machine's python3, no install),
# unbuffered output, fail() with the script's name, the checks of OUT, SHARD and MINUTES, CACHE, and
# start_side_by_side / stop_mps_and_dmon for the scripts that run two trainings side by side.
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

fail() { echo "$(basename "$0"): $*" >&2; exit 2; }
MINUTES=${MINUTES:-8}
CACHE=${CACHE:-/tmp/cache}  # where the shard is prepared; give runs that go side by side their own
[[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "MINUTES=$MINUTES is not a number of minutes"
[ -n "${OUT:-}" ] || fail "OUT is not set: name the folder that comes back (OUT=/tmp/out bash $0)"
[ -n "${SHARD:-}" ] || fail "SHARD is not set: a shard file (carry it), e.g. SHARD=data/shards28/shard_000.npz"
[ -f "$SHARD" ] || fail "shard $SHARD does not exist here: pack shards (wavernn-tts pack-shards) and carry one"

# CUDA's multi-process service lets two processes' kernels share the multiprocessors at once
# instead of taking turns (two small, latency-bound recurrences gain most). Sets mps to on, off
# or why it failed; where a client cannot start under the daemon, it is stopped and runs share
# the GPU the plain way (slower, the same results). A user-space daemon: no setting of the card
# changes. Needs DEVICE (cuda unless set) and MPS (1 unless set; 0 never starts it).
start_mps() {
  mps=off
  if [ "${DEVICE:-cuda}" = cuda ] && [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d; then
      if timeout 60 python3 -c "import torch; torch.ones(1, device='cuda').sum().item()"; then
        mps=on
      else
        echo quit | nvidia-cuda-mps-control
        sleep 2
        mps="failed (a client could not start under it; stopped)"
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
      fi
    fi
  fi
  echo "MPS: $mps" | tee -a "$OUT/gpu.txt"
}

# nvidia-smi's utilisation every 5 s into $OUT/dmon.txt, in the background
start_dmon() {
  dmon=
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi dmon -s u -d 5 > "$OUT/dmon.txt" 2>&1 &
    dmon=$!
  fi
}

stop_mps_and_dmon() {
  if [ -n "${dmon:-}" ]; then kill "$dmon" 2>/dev/null || true; fi
  if [ "${mps:-off}" = on ]; then echo quit | nvidia-cuda-mps-control || true; fi
}

# The GPU and torch into $OUT/gpu.txt, then MPS and the utilisation log: what the scripts that run
# two trainings side by side (gpu_pair.sh, gpu_restart.sh) start with
start_side_by_side() {
  { command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  } 2>&1 | tee "$OUT/gpu.txt"
  start_mps
  start_dmon
}
