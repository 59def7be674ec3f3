#!/bin/bash
# usage: served.sh CKPT LABEL CORE PITCH [SEEDS...]: docs/runs/gates_bf16/served.sh (copy-synthesis of
# the 10 recordings of docs/quality.md section 5, and WER through the text path, as served: T = 0.6,
# post-filter 20 dB) with --pitch-sync PITCH (on or off), for SEEDS (default 0-7), on one core;
# results in docs/runs/pitch_sync/served_LABEL
set -u
cd "$(dirname "$0")/../../.."
CK=$1; L=$2; CORE=$3; PITCH=$4; shift 4
SEEDS=${*:-$(seq 0 7)}
OUT=docs/runs/pitch_sync/served_$L
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
for s in $SEEDS; do
  taskset -c "$CORE" wavernn-tts eval --checkpoint "$CK" --metrics copy,wer --temperature 0.6 --postfilter-db 20 \
    --pitch-sync "$PITCH" --seed "$s" --real ../shared/real-speech/vctk_autovc ../shared/real-speech/librispeech_resemblyzer \
    --max-utterances 10 --max-seconds 4 --out "$OUT/served_s$s.json" > "$OUT/served_s$s.log" 2>&1
done
echo done "$(date)"
