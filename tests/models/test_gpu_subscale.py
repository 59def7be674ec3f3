"""The fused subscale kernel (models/samplers/persistent_subscale.py) against the subscale reference.

Without CUDA the kernel's phases run in Triton's CPU interpreter (phased mode) at tiny sizes,
and the persistent launch is compiled for sm_90 in a subprocess; with CUDA the persistent
launch itself runs at full size (bottom).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: it reads this once
pytest.importorskip("triton")

from models.config import FeatureConfig, SubscaleConfig, VoiceConfig  # noqa: E402
from models.samplers.base import UniformSource  # noqa: E402
from models.samplers.gpu_build import RELEASE_ADD_PTX  # noqa: E402
from models.samplers.gpu_subscale import GpuSubscaleSampler, context_tasks, half_subscale_weights  # noqa: E402
from models.samplers.subscale import (  # noqa: E402
    SubscaleReferenceSampler,
    extract_subscale_weights,
    generate_utterance,
)
from models.subscale_net import SubscaleWaveRNN  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
MODE = "persistent" if CUDA else "phased"
BASE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)


def _setup(sub: SubscaleConfig, frames: int, seed: int, base: VoiceConfig = BASE):
    """fp16-exact weights of a sharpened untrained model, its gates (frames, 3H) and draws (T * B, 2)."""
    torch.manual_seed(seed)
    model = SubscaleWaveRNN(base.model, sub).eval()
    with torch.no_grad():  # sharpen the untrained distributions so that draws matter
        model.O2.weight.mul_(8.0)
        model.O4.weight.mul_(8.0)
        model.rnn.weight_ih_l0.mul_(3.0)
    weights = half_subscale_weights(extract_subscale_weights(model))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        gates = model.gate_conditioning(torch.randn(1, frames, base.model.n_mels, generator=g) * 2 - 5)[0]
    steps = -(-frames * base.model.hop_length // sub.factor)
    return weights, gates, UniformSource(seed).draw(steps * sub.factor)


@pytest.mark.parametrize(("sub", "frames", "programs"),
                         [(SubscaleConfig(factor=4, horizon=2, past=2, context_channels=8), 2, 4),
                          (SubscaleConfig(factor=16, horizon=1, past=1, context_channels=8), 1, 2)],
                         ids=["B4-registers", "B16-dot"])
def test_kernel_matches_the_subscale_reference(sub: SubscaleConfig, frames: int, programs: int) -> None:
    """Every sample, in two chunks (state carried across launches), equals the reference's whole utterance."""
    weights, gates, uniforms = _setup(sub, frames=frames, seed=sub.factor)
    ref = SubscaleReferenceSampler(weights)
    want = generate_utterance(ref, gates, uniforms)
    sampler = GpuSubscaleSampler(weights, DEVICE, mode=MODE, max_programs=programs)
    state = sampler.initial_state(int(gates.shape[0]))
    total = state.steps_per_subtensor + (sub.factor - 1) * sub.horizon
    split = total // 2 + 1
    first, state = sampler.generate(state, gates, uniforms, split)
    ref_state = ref.initial_state(int(gates.shape[0]))
    _, ref_state = ref.generate(ref_state, gates, uniforms, split)
    assert torch.equal(state.coarse, ref_state.coarse) and torch.equal(state.fine, ref_state.fine)
    assert torch.equal(state.last, ref_state.last)
    running = [j for j in range(sub.factor) if 0 <= split - 1 - j * sub.horizon < state.steps_per_subtensor]
    assert (state.h[running] - ref_state.h[running]).abs().max() < 1e-5
    second, state = sampler.generate(state, gates, uniforms, total)
    got = torch.cat([first, second]).numpy()
    assert got.shape == want.shape and (got == want).all(), f"{int((got != want).sum())} samples differ"


def test_context_tasks_cover_every_row_and_channel() -> None:
    for rows, channels, programs in [(16, 64, 132), (16, 64, 4), (4, 8, 4), (16, 48, 112)]:
        groups, per = context_tasks(rows, channels, programs)
        assert groups * per >= channels and groups & (groups - 1) == 0
        assert rows * groups <= max(programs, rows)


def test_bad_arguments_are_clear_errors() -> None:
    weights, _, _ = _setup(SubscaleConfig(factor=4, horizon=2, past=2, context_channels=8), 2, 0)
    with pytest.raises(ValueError, match="mode"):
        GpuSubscaleSampler(weights, DEVICE, mode="fast")
    if not CUDA:
        with pytest.raises(ValueError, match="phased"):
            GpuSubscaleSampler(weights, "cpu", mode="persistent")


_COMPILE = r"""
import json
from models.samplers.gpu_build import compile_subscale_report
print(json.dumps(compile_subscale_report(64, 16)))  # B = 16: the tl.dot path every real voice takes
"""


def test_persistent_subscale_kernel_compiles_for_hopper() -> None:
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _COMPILE], capture_output=True, text=True, env=env, timeout=600,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["target"] == "sm_90" and report["registers"] > 0 and report["meta"]["DOT"] is True
    barrier = report["barrier_ptx"]
    assert RELEASE_ADD_PTX.search(barrier) and "ld.global.gpu.acquire" in barrier


# -- full size, on a GPU only ----------------------------------------------------------------
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (the persistent launch cannot run in the interpreter)")
def test_full_size_persistent_subscale_on_gpu() -> None:
    """WaveRNN-896, B = 16, F = 8: the persistent launch agrees with the reference on most samples."""
    base = dataclasses.replace(BASE, features=dataclasses.replace(FeatureConfig(), n_mels=8),
                               model=dataclasses.replace(BASE.model, hidden_size=896, hop_length=300))
    sub = SubscaleConfig(factor=16, horizon=8, past=8, context_channels=64)
    weights, gates, uniforms = _setup(sub, frames=8, seed=1, base=base)
    want = generate_utterance(SubscaleReferenceSampler(weights), gates, uniforms)
    got = generate_utterance(GpuSubscaleSampler(weights, "cuda", mode="persistent"), gates, uniforms)  # type: ignore[arg-type]
    assert (got == want).mean() >= 0.9
