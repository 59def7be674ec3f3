"""Test helper shared by the sampler tests: one stream generated in blocks of given sizes."""

from __future__ import annotations

import torch

from models.samplers.base import Sampler, SamplerState, conditioning_window


def generate_in_blocks(
    sampler: Sampler, gates: torch.Tensor, uniforms: torch.Tensor, sizes: list[int]
) -> tuple[torch.Tensor, SamplerState]:
    """Generate one stream (gates (T, 3H), uniforms (N, 2)) in blocks of ``sizes`` samples.

    Returns the concatenated pcm (sum(sizes),) and the final state.
    """
    state = SamplerState.initial(1, sampler.hidden_size)
    out, pos = [], 0
    for n in sizes:
        window = conditioning_window(gates, pos, n, sampler.hop_length).unsqueeze(0)
        pcm, state = sampler.generate(state, window, uniforms[pos : pos + n].unsqueeze(0))
        out.append(pcm[0])
        pos += n
    return torch.cat(out), state
