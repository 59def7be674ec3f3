#!/bin/bash
# usage: eval.sh CKPT LABEL CORE [SEEDS...]: held-out NLL of each corpus (the 369 Festival and 216
# LibriSpeech segments whose pooled mean is `wavernn-tts eval --metrics nll`'s 585) and network-alone
# WER at T = 0.6 for SEEDS (default 0-15), on one core; results in ${RUNS_DIR:-docs/runs/f32gru}/LABEL
set -u
cd "$(dirname "$0")/../../.."
CK=$1; L=$2; CORE=$3; shift 3
SEEDS=${*:-$(seq 0 15)}
OUT=${RUNS_DIR:-docs/runs/f32gru}/$L
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
for d in synthetic_1500_seed0/prepared librispeech_train_clean_6b9ead75; do
  name=$(echo "$d" | cut -d_ -f1)
  taskset -c "$CORE" wavernn-tts eval --checkpoint "$CK" --metrics nll --data "data/cache/$d" \
    --out "$OUT/nll_$name.json" > "$OUT/nll_$name.log" 2>&1
done
for s in $SEEDS; do
  taskset -c "$CORE" wavernn-tts eval --checkpoint "$CK" --metrics wer --temperature 0.6 --seed "$s" \
    --out "$OUT/wer_t0.6_s$s.json" > "$OUT/wer_s$s.log" 2>&1
done
echo done "$(date)"
