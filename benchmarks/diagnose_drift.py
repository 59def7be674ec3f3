"""How long a voice can sample on its own before copy-synthesis falls apart: free-running spans
restarted from teacher-forced states.

Metric. Each recording of ``--audio`` (the first ``--max-seconds``, at the voice's rate, quantised
to 16 bits as in training) is copied from its own log-mel frames in spans of N samples, for each
N of ``--spans``. Every span starts from the state the network reaches when it is fed the
*original* samples up to that point (teacher forcing, :meth:`models.wavernn.WaveRNN.forward_conditioned`,
chained span by span) and from the original previous sample; the compiled CPU sampler then draws
the span's N samples on its own, at ``--temperature`` (default: the card's), with one seeded stream of uniforms
for the whole recording. N = 0 is plain free-running synthesis (one span, from silence and a zero
state: what the server does). N = 1 draws every sample from the teacher-forced softmax (the fine
class given the original coarse class, a small approximation). Each output is scored against the
original: PESQ-WB, STOI and the mean absolute log-mel difference in nats. One JSON line last.

Reading. If short spans copy well and long ones do not, the network's own samples lead it
astray over time (exposure bias: training feeds it only original samples, over 4-frame segments).
If even N = 1 copies poorly, each step's predicted distribution is itself too broad, and only a
better model (more training, more capacity) helps.
"""

from __future__ import annotations

import argparse
import json
import sys

import copy_common
import numpy as np
import torch

from models.audio import join_pcm, pcm_to_float, split_pcm
from models.features import log_mel
from models.samplers.base import SamplerState, UniformSource, conditioning_window, sample_classes
from models.samplers.cpu import CpuSampler
from models.voices import Voice
from models.weights import extract_weights


def copy_in_spans(voice: Voice, sampler: CpuSampler, pcm: np.ndarray, span: int, seed: int,
                  temperature: float) -> np.ndarray:
    """int16 copy of ``pcm`` (N,) from its log-mel, free-running spans of ``span`` samples (0: one span)."""
    cfg, model = voice.config.features, voice.model
    hop = cfg.hop_length
    mel = torch.from_numpy(log_mel(pcm_to_float(pcm), cfg)).unsqueeze(0)  # (1, T, M)
    n = mel.shape[1] * hop
    x = np.zeros(n, dtype=np.int16)
    x[: pcm.shape[0]] = pcm[:n]
    coarse, fine = (torch.from_numpy(c.astype(np.int64)).unsqueeze(0) for c in split_pcm(x))  # (1, n)
    uniforms = UniformSource(seed).draw(n)  # (n, 2)
    with torch.no_grad():
        gates = model.gate_conditioning(mel)[0]  # (T, 3H)
        cond = model.conditioning(mel)  # (1, n, C)
        if span == 1:  # every sample from the teacher-forced softmax
            lc, lf, _ = model.forward_conditioned(cond, coarse, fine)
            c = sample_classes(lc[0] / temperature, uniforms[:, 0])
            f = sample_classes(lf[0] / temperature, uniforms[:, 1])
            return join_pcm(c.numpy(), f.numpy()).astype(np.int16)
        size = span or n
        state = SamplerState.initial(1, sampler.hidden_size)
        out = []
        for start in range(0, n, size):
            k = min(size, n - start)
            window = conditioning_window(gates, start, k, hop).unsqueeze(0)
            block, _ = sampler.generate(state, window, uniforms[start : start + k].unsqueeze(0))
            out.append(block[0].numpy())
            # the next span starts where teacher forcing over the original samples gets
            _, _, h = model.forward_conditioned(cond[:, start : start + k], coarse[:, start : start + k],
                                                fine[:, start : start + k], h0=state.h,
                                                prev=(state.coarse, state.fine))
            state = SamplerState(h=h, coarse=coarse[:, start + k - 1], fine=fine[:, start + k - 1],
                                 position=torch.tensor([start + k]))
    return np.concatenate(out).astype(np.int16)


def span_list(text: str) -> list[int]:
    """``--spans``: distinct span lengths in samples, each 0 (whole recording) or positive."""
    try:
        spans = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: whole numbers of samples, comma-separated") from None
    if any(s < 0 for s in spans) or len(set(spans)) != len(spans):
        raise argparse.ArgumentTypeError(f"{text!r}: each span once, 0 (whole recording) or positive")
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    copy_common.add_arguments(parser)
    parser.add_argument("--spans", type=span_list, default="1,30,300,1200,4800,0",
                        help="span lengths in samples (0: plain free-running synthesis)")
    args = parser.parse_args()
    files, voice, temperature = copy_common.load(parser, args)
    cfg = voice.config.features
    sampler = CpuSampler(extract_weights(voice.model, temperature=temperature), threads=1)
    sums: dict[int, dict[str, float]] = {s: {} for s in args.spans}
    for path in files:
        pcm = copy_common.read_clip(path, cfg, args.max_seconds)
        ref = pcm_to_float(pcm)
        ref_mel = log_mel(ref, cfg)
        for span in args.spans:
            out = pcm_to_float(copy_in_spans(voice, sampler, pcm, span, args.seed, temperature))
            copy_common.add_scores(sums[span], ref, ref_mel, out, cfg, 1 / len(files))
        print(f"{path}: " + ", ".join(f"N={s} PESQ {sums[s]['pesq_wb']:.2f}" for s in args.spans) + " (running sums)",
              file=sys.stderr, flush=True)
    print(json.dumps({"voice": voice.name, "step": voice.card.get("training", {}).get("steps"),
                      "temperature": temperature, "seed": args.seed, "files": [str(f) for f in files],
                      "seconds": args.max_seconds,
                      "spans": {str(s): {k: round(v, 3) for k, v in row.items()} for s, row in sums.items()}}))


if __name__ == "__main__":
    main()
