#!/usr/bin/env bash
# Issue 5's claim at voice scale on a lent GPU: a large sparse WaveRNN against a dense one with the
# same number of non-zero weights, trained from scratch on the same shard for the same steps
# (docs/quality.md section 7). One device call per model (a WaveRNN-896 checkpoint with its Adam
# state, ~42 MB, cannot come back from a call, so each run trains and is evaluated inside one):
#
#   MODEL=sparse896_z95_gpu SHARD=data/shards28/shard_000.npz bash benchmarks/gpu_sparse_vs_dense.sh
#   MODEL=dense176_gpu      SHARD=data/shards28/shard_000.npz bash benchmarks/gpu_sparse_vs_dense.sh
#
# Inputs (environment): MODEL, a config name in configs/; SHARD, a shard from `wavernn-tts
# pack-shards` (carried); MINUTES of training (default 8: the config's steps or the time, whichever
# comes first); STEPS, to override the config's steps for both runs alike (the cosine follows it:
# when the sparse run cannot reach the config's steps in a call, run both with the steps it
# reached, at least 4,000 so that the pruning, done at 3,000, has time to recover); SEED, to override
# the config's seed (another draw of the initial weights and segments; the shard fixes the held-out
# split); DEVICE
# (default cuda; cpu only to try the script); EVAL_SEGMENTS (default 0: every held-out segment);
# OUT, the folder that comes back.
# Leaves in $OUT/$MODEL: metrics.jsonl, config.json, train.log, eval.json (held-out NLL on the
# shard's held-out utterances, float32, segments of 16 frames) and model.pt, the weights without
# the optimizer state (for bench_checkpoints.py on the CPU), and prints one JSON line last: the
# model, the step reached, the config's steps, the last validation and the held-out NLL.
source "$(dirname "$0")/gpu_common.sh"
DEVICE=${DEVICE:-cuda}
[ -n "${MODEL:-}" ] || fail "MODEL is not set: sparse896_z95_gpu or dense176_gpu (a config name in configs/)"
CONFIG=${CONFIG:-configs/$MODEL.json}  # CONFIG overrides (a tiny config to try the script on CPU)
[ -f "$CONFIG" ] || fail "config $CONFIG does not exist"
RUN=$OUT/$MODEL
mkdir -p "$RUN"

rc=0
python3 -m models.train --config "$CONFIG" --data "$SHARD" --device "$DEVICE" --max-minutes "$MINUTES" \
  ${STEPS:+--steps "$STEPS"} ${SEED:+--seed "$SEED"} --out "$RUN" --cache "$CACHE" > "$RUN/train.log" 2>&1 || rc=$?
grep -v '^step [0-9]*/[0-9]* loss' "$RUN/train.log" | tail -n 20
[ "$rc" -eq 0 ] || fail "training failed (exit $rc); see $RUN/train.log"
ckpt=$(ls "$RUN"/checkpoints/step_*.pt 2>/dev/null | sort | tail -n 1)
[ -n "$ckpt" ] || fail "training wrote no checkpoint; see $RUN/train.log"
python3 -m models.evaluate --checkpoint "$ckpt" --metrics nll --data "$SHARD" --split valid --seq-frames 16 \
  --segments "${EVAL_SEGMENTS:-0}" --device "$DEVICE" --cache "$CACHE" --out "$RUN/eval.json" > /dev/null
# the weights alone come back (the full checkpoint is over a call's 16 MiB per file for WaveRNN-896)
python3 - "$ckpt" "$RUN/model.pt" <<'EOF'
import sys
from models.checkpoint import load_checkpoint, save_checkpoint
model, voice, meta = load_checkpoint(sys.argv[1])
save_checkpoint(sys.argv[2], model, voice, meta={k: meta.get(k) for k in ("step", "valid", "sparsity", "data")})
EOF
rm -rf "$RUN/checkpoints"
python3 - "$RUN" "$MODEL" <<'EOF'
import json
import sys
from pathlib import Path
run, model = Path(sys.argv[1]), sys.argv[2]
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
valid = [r for r in records if r["kind"] == "valid"]
nll = json.loads((run / "eval.json").read_text())["nll"]
print(json.dumps({"model": model, "step": max(r["step"] for r in records),
                  "steps": json.loads((run / "config.json").read_text())["train"]["steps"],
                  "last_valid": valid[-1] if valid else None, "heldout_nll": nll}))
EOF
