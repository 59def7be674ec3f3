"""Self-fed inputs for training: show the network its own draws as previous samples.

Teacher forcing feeds the network only original samples, so it never learns to recover from its
own sampling errors; ``benchmarks/diagnose_drift.py`` shows the default voice leaving the
waveform within 5-30 samples of sampling on its own (docs/quality.md, section 9). Parallel
scheduled sampling (Duckworth et al., 2019) trains on that at almost the cost of teacher
forcing: a first, gradient-free teacher-forced pass gives the softmax at every position, one
draw per position is taken from it (at the temperature the service samples at), and the
training pass reads each previous sample from those draws with probability ``rate`` (the
original otherwise). Targets stay the original samples, so the loss still asks for the true
waveform, now from inputs that carry the network's own kind of errors. With ``passes`` > 1 the
errors compound: each further gradient-free pass is fed the last pass's mixed samples, and its
draws (made from a network that already saw drawn inputs) replace the originals for the next.

Randomness is passed in: all uniforms come from the caller's ``torch.Generator`` (the training
run's batch generator, whose state its checkpoints keep, so a resumed run stays exact).
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.wavernn import WaveRNN


def draw_classes(logits: Tensor, temperature: float, uniform: Tensor) -> Tensor:
    """Inverse-CDF draws from ``softmax(logits / temperature)``.

    Args:
        logits: (..., K) class scores.
        temperature: > 0.
        uniform: (...) uniforms in [0, 1), one per draw.
    Returns:
        (...) int64 classes: the first class whose cumulative probability exceeds the uniform.
    """
    if not temperature > 0.0:
        raise ValueError(f"temperature {temperature} must be > 0")
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(dim=-1)
    u = uniform.to(cdf.device, torch.float32).unsqueeze(-1) * cdf[..., -1:]  # cdf's own total, not 1.0
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


@torch.no_grad()
def self_fed_samples(
    model: WaveRNN,
    cond: Tensor,
    coarse: Tensor,
    fine: Tensor,
    prev: tuple[Tensor, Tensor],
    *,
    rate: float,
    temperature: float,
    generator: torch.Generator,
    passes: int = 1,
) -> tuple[Tensor, Tensor]:
    """The samples to feed back in a training pass, for ``forward_conditioned(fed_back=...)``.

    Args:
        model: the network being trained (its teacher-forced pass runs without gradients).
        cond, coarse, fine, prev: a batch as :func:`models.data.conditioned_batch` gives it.
        rate: probability in [0, 1] that a sample is replaced by the network's draw.
        temperature: of the draws (the service samples at 0.6).
        generator: the source of the uniforms, 3 x B x N a pass (on the CPU).
        passes: gradient-free passes, each fed the samples the one before it mixed (1: the
            first is teacher-forced and its draws are the only errors).
    Returns:
        (coarse, fine) classes (B, N): per position either the original sample or, with
        probability ``rate``, a draw from the last pass's softmax at that position (coarse and
        fine together, the fine given the original coarse).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate {rate} must be in [0, 1]")
    if passes < 1:
        raise ValueError(f"passes {passes} must be >= 1")
    fed: tuple[Tensor, Tensor] | None = None  # the first pass is teacher-forced
    for _ in range(passes):
        logits_c, logits_f, _ = model.forward_conditioned(cond, coarse, fine, prev=prev, fed_back=fed)
        u = torch.rand((3, *coarse.shape), generator=generator).to(coarse.device)
        drawn_c, drawn_f = draw_classes(logits_c, temperature, u[0]), draw_classes(logits_f, temperature, u[1])
        replace = u[2] < rate
        fed = torch.where(replace, drawn_c, coarse), torch.where(replace, drawn_f, fine)
    assert fed is not None
    return fed
