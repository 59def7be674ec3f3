#!/usr/bin/env bash
# Issue 5's voice-scale pair in one device call: the sparse WaveRNN-896 at 95% and the dense
# WaveRNN-176 with as many non-zero weights, each run by gpu_sparse_vs_dense.sh, side by side on
# one GPU, so that both fit one call of a 15-minute lease instead of running one after the other. Both are
# small, latency-bound recurrences, so the script first starts CUDA's multi-process service (MPS),
# which lets the two processes' kernels share the GPU's multiprocessors at once instead of taking
# turns; where the daemon is missing or a client cannot start under it, it is stopped and the two
# runs take turns on the GPU (slower, the same results). The daemon is a user-space process: no
# setting of the card is changed, and it is told to quit at the end.
#
#   run(carry=["data/shards28/shard_000.npz"], timeout_s=590,
#       command="SHARD=data/shards28/shard_000.npz MINUTES=7 STEPS=4000 bash benchmarks/gpu_pair.sh")
#
# Measured on an H200 (2026-12-04, docs/quality.md section 7): both runs reached 4,000 steps in
# 348-356 s under MPS (shard preparation, training, evaluation; the GPU 29-72% busy); the whole call
# took 358 s, and 367 s with SEED=1.
#
# Inputs (environment): SHARD, MINUTES (default 7), STEPS (default 4000, both runs alike), SEED
# (the configs' seed, 0, unless set: both runs alike), LIMIT
# (seconds each run may take in all, default 540: a run still going then gets SIGTERM, saves a
# checkpoint and is reported as failed), MODELS (default "sparse896_z95_gpu dense176_gpu"),
# DEVICE (default cuda; cpu with CONFIG_DIR holding tiny configs only to try the script), MPS
# (default 1; 0 never starts it), OUT.
# Leaves in $OUT: MODEL.tar.gz per model (gpu_sparse_vs_dense.sh's folder: metrics.jsonl,
# config.json, train.log, eval.json, model.pt), MODEL.log (its output), gpu.txt (the GPU, MPS, how
# long each run took) and dmon.txt (nvidia-smi's utilisation every 5 s); prints one JSON line last:
# each model's summary line, or its exit status where it failed.
MINUTES=${MINUTES:-7}
source "$(dirname "$0")/gpu_common.sh"
set +e  # from here a failed run is reported, not fatal: the other one's results still come back
MODELS=${MODELS:-sparse896_z95_gpu dense176_gpu}
export STEPS=${STEPS:-4000} MINUTES SHARD DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-540}
[[ "$LIMIT" =~ ^[0-9]+$ ]] || fail "LIMIT=$LIMIT is not a whole number of seconds"
WORK=${WORK:-/tmp/pair}
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"

start_side_by_side

declare -A pid started
for model in $MODELS; do
  started[$model]=$SECONDS
  env MODEL=$model CACHE=/tmp/cache_$model OUT=$WORK ${CONFIG_DIR:+CONFIG=$CONFIG_DIR/$model.json} \
    timeout -s TERM -k 30 "$LIMIT" bash benchmarks/gpu_sparse_vs_dense.sh > "$OUT/$model.log" 2>&1 &
  pid[$model]=$!
done
summary=()
for model in $MODELS; do
  wait "${pid[$model]}"
  rc=$?
  echo "$model: exit $rc after $((SECONDS - started[$model])) s" | tee -a "$OUT/gpu.txt"
  last=$(tail -n 1 "$OUT/$model.log")
  if [ "$rc" -eq 0 ] && [[ "$last" == "{"* ]]; then summary+=("$last")
  else summary+=("{\"model\": \"$model\", \"exit\": $rc}"); tail -n 20 "$OUT/$model.log"
  fi
  [ -d "$WORK/$model" ] && tar -C "$WORK" -czf "$OUT/$model.tar.gz" "$model"
done
stop_mps_and_dmon
ls -l "$OUT"
(IFS=,; echo "{\"mps\": \"$mps\", \"runs\": [${summary[*]}]}")
