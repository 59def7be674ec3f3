#!/usr/bin/env bash
# Continue training a voice on a lent GPU for one device call (docs/training.md, "Training on a
# lent GPU"). Runs from the repository root with the machine's plain python3 (PYTHONPATH=., no
# install; soundfile, fastapi and pydantic are not needed) and leaves in $OUT:
#   run/checkpoints/step_NNNNNNNN.pt  the newest checkpoint (resume the next call from it)
#   run/metrics.jsonl, run/config.json, run/curves.png (if matplotlib is there)
#   train.log, gpu.txt
# and prints one JSON line last: the checkpoint, its step, the last validation and training
# records (samples/s included).
#
#   CKPT=checkpoints/cpu384/step_00118003.pt SHARD=data/shards/shard_000.npz bash benchmarks/gpu_train.sh
#
# Inputs (environment): CKPT, the checkpoint to resume, and SHARD, a shard file from
# `wavernn-tts pack-shards` (both carried, or tracked); MINUTES of training (default 8: start-up,
# preparing the shard, the last validation and the copy fit in the rest of a 10-minute call);
# CONFIG (default configs/cpu384_gpu.json); OUT, the folder that comes back.
source "$(dirname "$0")/gpu_common.sh"
CONFIG=${CONFIG:-configs/cpu384_gpu.json}
[ -n "${CKPT:-}" ] || fail "CKPT is not set: the checkpoint to resume (carry it), e.g. CKPT=checkpoints/cpu384/step_00118003.pt"
[ -f "$CKPT" ] || fail "checkpoint $CKPT does not exist here: carry it with the call (carry: [\"$CKPT\"])"
[ -f "$CONFIG" ] || fail "config $CONFIG does not exist"
mkdir -p "$OUT"

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L | tee "$OUT/gpu.txt" || true
fi
python3 - <<'EOF' 2>&1 | tee -a "$OUT/gpu.txt"
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_train.sh: CUDA is not available to torch here; run this on the GPU machine")
print(f"torch {torch.__version__} cuda {torch.version.cuda} device {torch.cuda.get_device_name(0)}")
EOF

rc=0
python3 -m models.train --config "$CONFIG" --data "$SHARD" --resume "$CKPT" --device cuda \
  --max-minutes "$MINUTES" --out "$OUT/run" --cache "$CACHE" 2>&1 | tee "$OUT/train.log" || rc=$?

# only the newest checkpoint comes back (a call returns at most 8 files)
mapfile -t ckpts < <(ls "$OUT"/run/checkpoints/step_*.pt 2>/dev/null | sort)
if [ "${#ckpts[@]}" -gt 1 ]; then
  rm -f "${ckpts[@]:0:${#ckpts[@]}-1}"
fi
[ "$rc" -eq 0 ] || fail "training failed (exit $rc); see $OUT/train.log"
[ "${#ckpts[@]}" -gt 0 ] || fail "training wrote no checkpoint; see $OUT/train.log"
# one JSON line last: the checkpoint to resume next, its step, the last validation and training records
python3 - "$OUT/run/metrics.jsonl" "${ckpts[-1]}" <<'EOF'
import json
import sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
last = {kind: ([r for r in records if r["kind"] == kind] or [None])[-1] for kind in ("valid", "train")}
print(json.dumps({"checkpoint": sys.argv[2], "step": max(r["step"] for r in records), **last}))
EOF
