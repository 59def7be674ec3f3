#!/bin/bash
# usage: served.sh CKPT LABEL CORE [SEEDS...]: copy-synthesis (the 10 recordings of docs/quality.md
# section 5) and WER through the text path as served (T = 0.6, post-filter 20 dB) for SEEDS
# (default 0-7), on one core; results in ${RUNS_DIR:-docs/runs/gates_bf16}/served_LABEL.
# EVAL_ARGS: more `wavernn-tts eval` options, e.g. EVAL_ARGS="--pitch-sync on" (docs/quality.md section 16)
set -u
cd "$(dirname "$0")/../../.."
CK=$1; L=$2; CORE=$3; shift 3
SEEDS=${*:-$(seq 0 7)}
OUT=${RUNS_DIR:-docs/runs/gates_bf16}/served_$L
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
for s in $SEEDS; do
  # shellcheck disable=SC2086
  taskset -c "$CORE" wavernn-tts eval --checkpoint "$CK" --metrics copy,wer --temperature 0.6 --postfilter-db 20 \
    ${EVAL_ARGS:-} --seed "$s" --real ../shared/real-speech/vctk_autovc ../shared/real-speech/librispeech_resemblyzer \
    --max-utterances 10 --max-seconds 4 --out "$OUT/served_s$s.json" > "$OUT/served_s$s.log" 2>&1
done
echo done "$(date)"
