#!/bin/bash
# usage: alone.sh CKPT LABEL CORE [SEEDS...]: network-alone WER through the text path (T = 0.6, no
# post-filter) with pitch-synchronous sampling noise, for SEEDS (default 0-15), on one core, as
# docs/runs/f32gru/eval.sh's WER loop; results in docs/runs/pitch_sync/alone_LABEL
set -u
cd "$(dirname "$0")/../../.."
CK=$1; L=$2; CORE=$3; shift 3
SEEDS=${*:-$(seq 0 15)}
OUT=docs/runs/pitch_sync/alone_$L
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
for s in $SEEDS; do
  taskset -c "$CORE" wavernn-tts eval --checkpoint "$CK" --metrics wer --temperature 0.6 --pitch-sync on --seed "$s" \
    --out "$OUT/wer_t0.6_s$s.json" > "$OUT/wer_s$s.log" 2>&1
done
echo done "$(date)"
