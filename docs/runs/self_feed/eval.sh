#!/bin/bash
# usage: [RUNS_DIR=docs/runs/...] eval.sh CKPT LABEL CORE_A CORE_B (the CKPT path absolute or relative to the
# repository root; the results go to RUNS_DIR/LABEL, RUNS_DIR docs/runs/self_feed unless set)
set -u
cd "$(dirname "$0")/../../.."
CK=$1; L=$2; A=$3; B=$4; OUT=${RUNS_DIR:-docs/runs/self_feed}/$L
mkdir -p $OUT
FEST="data/cache/synthetic_1500_seed0/audio/syn_00000.wav data/cache/synthetic_1500_seed0/audio/syn_00298.wav data/cache/synthetic_1500_seed0/audio/syn_00596.wav data/cache/synthetic_1500_seed0/audio/syn_01048.wav data/cache/synthetic_1500_seed0/audio/syn_01345.wav"
export OMP_NUM_THREADS=1
(
  taskset -c $A wavernn-tts eval --checkpoint $CK --metrics nll --data data/cache/synthetic_1500_seed0/prepared data/cache/librispeech_train_clean_6b9ead75 --out $OUT/nll.json > $OUT/nll.log 2>&1
  taskset -c $A python benchmarks/diagnose_drift.py --voice $CK --temperature 0.6 --audio $FEST --max-utterances 5 --max-seconds 3 --spans 1,2,5,30,300,1200,0 > $OUT/drift_festival_train.txt 2>&1
) &
(
  for s in 0 1 2 3 4 5 6 7; do
    taskset -c $B wavernn-tts eval --checkpoint $CK --metrics wer --temperature 0.6 --seed $s --out $OUT/wer_t0.6_s$s.json > $OUT/wer_s$s.log 2>&1
  done
  taskset -c $B python benchmarks/diagnose_drift.py --voice $CK --temperature 0.6 --audio ../shared/real-speech/vctk_autovc ../shared/real-speech/librispeech_resemblyzer --max-utterances 5 --max-seconds 3 --spans 1,2,5,30,300,1200,0 > $OUT/drift_real.txt 2>&1
) &
wait
echo done $(date)
