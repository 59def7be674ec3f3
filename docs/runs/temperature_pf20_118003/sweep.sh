#!/bin/bash
# The bundled voice as served (post-filter at 20 dB) at each sampling temperature: copy-synthesis of
# 20 real recordings (4 s each) and WER on the ten sentences, one eval per temperature and seed.
# usage: sweep.sh CORE SEED T [T ...]   (run from anywhere; one process pinned to CORE)
set -u
cd "$(dirname "$0")/../../.."
CORE=$1; SEED=$2; shift 2
OUT=docs/runs/temperature_pf20_118003
for T in "$@"; do
  OMP_NUM_THREADS=1 taskset -c "$CORE" wavernn-tts eval --checkpoint models/voices/default/model.pt \
    --metrics copy,wer --real ../shared/real-speech/vctk_autovc ../shared/real-speech/librispeech_resemblyzer \
    --max-utterances 20 --max-seconds 4 --temperature "$T" --postfilter-db 20 --seed "$SEED" \
    --out "$OUT/eval_t${T}_pf20_s${SEED}.json" > "$OUT/eval_t${T}_pf20_s${SEED}.log" 2>&1
done
echo "done core $CORE seed $SEED $(date)"
