#!/usr/bin/env bash
# A warm restart of the default voice on a lent GPU: two variants of it (by default batch 256 at a
# peak rate of 2e-4 and batch 64 at 1e-4, configs/cpu384_gpu_restart_b*.json) resume the same
# checkpoint side by side in one device call, under CUDA MPS where it starts (gpu_common.sh), each
# with its learning rate restarted at CKPT's step (--phase-start) and a cosine that ends when the
# call does.
#
#   run(carry=["data/shards28/shard_002.npz", "data/gpu_restart/step_00114334.pt"], timeout_s=590,
#       command="CKPT=data/gpu_restart/step_00114334.pt SHARD=data/shards28/shard_002.npz bash benchmarks/gpu_restart.sh")
#
# Each run's cosine needs its horizon (train.steps) in steps, and how many steps fit the call is
# only known on the machine, with both runs sharing it. So each run goes in two legs:
#   1. PROBE minutes of training from CKPT (inside the 300-step warmup, which does not depend on
#      the horizon), stopped on time with a checkpoint;
#   2. resumed from that checkpoint with --steps = its step + the steps per second it measured
#      in leg 1 x the seconds left of MINUTES (less START seconds for the second start-up) x 0.92,
#      and --max-minutes as a backstop. The learning rates of both legs are then those of one run
#      told that horizon from the start (the schedule is a pure function of the step).
# Inputs (environment): CKPT, SHARD, MINUTES (default 8: both legs, start-ups and validations;
# packing the results comes after), PROBE (default 0.4), START (default 30), RUNS (default
# "cpu384_gpu_restart_b256 cpu384_gpu_restart_b64"), CONFIG_DIR (default configs), DEVICE
# (default cuda; cpu with tiny configs only to try the script), MPS (default 1), OUT.
# Leaves in $OUT: RUN.pt (each run's last checkpoint), RUN.tar.gz (its metrics.jsonl, config.json,
# curves.png), RUN.log (both legs' output), gpu.txt (GPU, MPS, the horizons chosen), dmon.txt; and
# prints one JSON line last: per run the horizon, the step reached, the last validation and the
# training rate of both legs.
MINUTES=${MINUTES:-8}
source "$(dirname "$0")/gpu_common.sh"
PROBE=${PROBE:-0.4}
START=${START:-30}
RUNS=${RUNS:-cpu384_gpu_restart_b256 cpu384_gpu_restart_b64}
CONFIG_DIR=${CONFIG_DIR:-configs}
export DEVICE=${DEVICE:-cuda}
[[ "$PROBE" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "PROBE=$PROBE is not a number of minutes"
[[ "$START" =~ ^[0-9]+$ ]] || fail "START=$START is not a whole number of seconds"
[ -n "${CKPT:-}" ] || fail "CKPT is not set: the checkpoint to restart from (carry it)"
[ -f "$CKPT" ] || fail "checkpoint $CKPT does not exist here: carry it with the call (carry: [\"$CKPT\"])"
for run in $RUNS; do
  [ -f "$CONFIG_DIR/$run.json" ] || fail "config $CONFIG_DIR/$run.json does not exist"
done
# the rate restarts at CKPT's own step (train --phase-start), whatever phase_start the configs name
STEP0=$(python3 -c "import sys; from models.checkpoint import read_checkpoint; print(read_checkpoint(sys.argv[1])['train_state']['step'])" "$CKPT") \
  || fail "cannot read the training step of $CKPT: is it a training checkpoint (with train_state)?"
WORK=${WORK:-/tmp/restart}
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
set +e  # from here a failed run is reported, not fatal: the other one's results still come back

start_side_by_side

# train RUN RESUME [extra arguments]: one leg of one run, in the background; its pid in pid[RUN]
declare -A pid rc
train() {
  local run=$1 resume=$2
  shift 2
  python3 -m models.train --config "$CONFIG_DIR/$run.json" --data "$SHARD" --resume "$resume" \
    --device "$DEVICE" --out "$WORK/$run" --cache "/tmp/cache_$run" "$@" >> "$OUT/$run.log" 2>&1 &
  pid[$run]=$!
}
wait_all() {  # the exit status of each started leg into rc[RUN]
  for run in $RUNS; do
    [ -n "${pid[$run]:-}" ] || continue
    wait "${pid[$run]}"
    rc[$run]=$?
    unset "pid[$run]"
  done
}
newest() { ls "$WORK/$1"/checkpoints/step_*.pt 2>/dev/null | sort | tail -n 1; }

echo "leg 1: $PROBE minutes from $CKPT" | tee -a "$OUT/gpu.txt"
for run in $RUNS; do  # a provisional horizon: leg 1 stays inside the warmup, which does not depend on it
  train "$run" "$CKPT" --phase-start "$STEP0" --steps "$((STEP0 + 10000))" --max-minutes "$PROBE"
done
wait_all
horizons=()
left=$(python3 -c "print(max(0.0, $MINUTES * 60 - $SECONDS - $START))")
for run in $RUNS; do
  ckpt=$(newest "$run")
  if [ "${rc[$run]}" -ne 0 ] || [ -z "$ckpt" ]; then
    echo "$run: leg 1 failed (exit ${rc[$run]})" | tee -a "$OUT/gpu.txt"; tail -n 20 "$OUT/$run.log"
    continue
  fi
  # the horizon: this step + the last training record's steps per second x the seconds left
  horizon=$(python3 - "$WORK/$run" "$ckpt" "$left" <<'EOF'
import json, sys
from pathlib import Path
run, left = Path(sys.argv[1]), float(sys.argv[3])
step = int(Path(sys.argv[2]).stem.removeprefix("step_"))
config = json.loads((run / "config.json").read_text())
per_step = config["train"]["batch_size"] * config["train"]["seq_frames"] * config["voice"]["model"]["hop_length"]
rate = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in x][-1]["samples_per_s"]
print(step + max(1, int(rate / per_step * left * 0.92)))
EOF
)
  if ! [[ "$horizon" =~ ^[0-9]+$ ]]; then
    echo "$run: no horizon from leg 1's metrics; leg 2 not started" | tee -a "$OUT/gpu.txt"; rc[$run]=3
    continue
  fi
  echo "$run: leg 1 reached $(basename "$ckpt"); $left s left; horizon $horizon" | tee -a "$OUT/gpu.txt"
  horizons+=("\"$run\": $horizon")
  train "$run" "$ckpt" --phase-start "$STEP0" --steps "$horizon" --max-minutes "$(python3 -c "print(round($left / 60 + 0.3, 2))")"
done
wait_all
stop_mps_and_dmon

summary=()
for run in $RUNS; do
  ckpt=$(newest "$run")
  [ -n "$ckpt" ] && cp "$ckpt" "$OUT/$run.pt"
  [ -d "$WORK/$run" ] && tar -C "$WORK/$run" -czf "$OUT/$run.tar.gz" metrics.jsonl config.json \
    $(cd "$WORK/$run" && ls curves.png 2>/dev/null)
  summary+=("$(python3 - "$run" "$WORK/$run/metrics.jsonl" "${rc[$run]:-1}" "$ckpt" <<'EOF'
import json, sys
from pathlib import Path
run, path, rc, ckpt = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
records = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
train = [r for r in records if r["kind"] == "train"]
valid = [r for r in records if r["kind"] == "valid"]
print(json.dumps({"run": run, "exit": rc, "checkpoint": Path(ckpt).name if ckpt else None,
                  "step": train[-1]["step"] if train else None, "last_valid": valid[-1] if valid else None,
                  "samples_per_s": [round(r["samples_per_s"]) for r in train[:: max(1, len(train) // 8)]]}))
EOF
)")
done
echo "done after $SECONDS s" | tee -a "$OUT/gpu.txt"
ls -l "$OUT"
(IFS=,; echo "{\"mps\": \"$mps\", \"horizons\": {${horizons[*]}}, \"runs\": [${summary[*]}]}")
