"""The fused persistent kernel (models/samplers/persistent.py) against the reference sampler.

Without CUDA the kernel's phase code runs in Triton's CPU interpreter (phased mode: one launch
per phase, programs one after another) at tiny sizes; the persistent launch with its grid
barriers is compiled for sm_90 in a subprocess (Triton's bundled ptxas) to prove the GPU code
path builds. With CUDA the full-size tests at the bottom run the persistent launch itself.
"""

from __future__ import annotations

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

from models.config import WaveRNNConfig  # noqa: E402
from models.samplers.base import SamplerState, conditioning_window, stack_windows  # noqa: E402
from models.samplers.gpu import GpuSampler, half_weights, plan_partition  # noqa: E402
from models.samplers.gpu_build import RELEASE_ADD_PTX  # noqa: E402
from models.samplers.reference import ReferenceSampler  # noqa: E402
from models.wavernn import WaveRNN  # noqa: E402
from models.weights import InferenceWeights, extract_weights  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
MODE = "persistent" if CUDA else "phased"


def _setup(seed: int, hidden: int, batch: int, n: int, out_hidden: int = 0, hop: int = 30):
    """Random fp16-exact weights, conditioning windows, mid-frame positions, random state and draws."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cfg = WaveRNNConfig(hidden_size=hidden, out_hidden=out_hidden, n_mels=8, hop_length=hop, cond_channels=16)
    model = WaveRNN(cfg).eval()
    weights = half_weights(extract_weights(model))
    frames = (n + 7 * batch + 1) // hop + 4
    with torch.no_grad():
        gates = model.gate_conditioning(torch.randn(batch, frames, 8, generator=g))  # (B, T, 3H)
    state = SamplerState.initial(batch, hidden)
    state.position = torch.arange(batch) * 7 + 3
    state.h = torch.randn(batch, hidden, generator=g) * 0.5
    state.coarse = torch.randint(0, 256, (batch,), generator=g)
    state.fine = torch.randint(0, 256, (batch,), generator=g)
    uniforms = torch.rand(batch, n, 2, generator=g)
    return weights, gates, state, uniforms


def _window(gates: torch.Tensor, state: SamplerState, n: int, hop: int) -> torch.Tensor:
    return stack_windows([conditioning_window(gates[b], int(state.position[b]), n, hop) for b in range(state.batch)])


@pytest.mark.parametrize(("batch", "out_hidden"), [(2, 0), (1, 24), (5, 0), (17, 0)])
def test_kernel_matches_reference(batch: int, out_hidden: int) -> None:
    """FMA path (B <= 4, weights in registers), tl.dot path (B = 5 -> tile 16; B = 17 -> tile 32, sampled
    16 streams at a time): the same samples as the reference."""
    n, hop = 5, 30
    weights, gates, state, uniforms = _setup(batch * 10 + out_hidden, 32, batch, n, out_hidden, hop)
    cond = _window(gates, state, n, hop)
    pcm_ref, s_ref = ReferenceSampler(weights).generate(state, cond, uniforms)
    sampler = GpuSampler(weights, DEVICE, mode=MODE, max_programs=4)
    pcm, s = sampler.generate(state, cond, uniforms)
    assert sampler.partition(batch)[2] == (batch > 4)
    assert torch.equal(pcm.cpu(), pcm_ref)
    assert torch.equal(s.coarse.cpu(), s_ref.coarse) and torch.equal(s.fine.cpu(), s_ref.fine)
    assert torch.equal(s.position, s_ref.position)
    assert (s.h.cpu() - s_ref.h).abs().max() < 1e-5


@pytest.mark.parametrize(("block", "sparsity"), [((16, 1), 0.75), ((4, 4), 0.9)])
def test_block_sparse_rows_match_the_reference(block: tuple[int, int], sparsity: float) -> None:
    """A pruned R is held packed (only each row slot's kept columns) and gives the same samples."""
    from models.sparsity import gate_masks

    n, hop, batch = 4, 30, 2
    weights, gates, state, uniforms = _setup(11, 64, batch, n, 0, hop)
    pruned = InferenceWeights(weights.hop_length, **{**weights.tensors(),
                                                    "R": weights.R * gate_masks(weights.R, sparsity, block)})
    cond = _window(gates, state, n, hop)
    pcm_ref, s_ref = ReferenceSampler(pruned).generate(state, cond, uniforms)
    sampler = GpuSampler(pruned, DEVICE, mode=MODE, max_programs=4)
    assert sampler.packed is not None and sampler.packed.width < 64
    pcm, s = sampler.generate(state, cond, uniforms)
    assert torch.equal(pcm.cpu(), pcm_ref)
    assert (s.h.cpu() - s_ref.h).abs().max() < 1e-5
    dense = GpuSampler(weights, DEVICE, mode=MODE, max_programs=4)
    assert dense.packed is None


def test_blocks_chain_like_one_block() -> None:
    """State carried across launches: 1 + 2 steps == 3 steps (and the weights are never written)."""
    n, hop = 3, 30
    weights, gates, state, uniforms = _setup(7, 32, 1, n, 0, hop)
    sampler = GpuSampler(weights, DEVICE, mode=MODE, max_programs=4)
    before = {k: v.clone() for k, v in sampler.w.items()}
    whole, s_whole = sampler.generate(state, _window(gates, state, n, hop), uniforms)
    first, s1 = sampler.generate(state, _window(gates, state, 1, hop), uniforms[:, :1].contiguous())
    second, s2 = sampler.generate(s1, _window(gates, s1, 2, hop), uniforms[:, 1:].contiguous())
    assert torch.equal(torch.cat([first, second], 1), whole)
    assert torch.equal(s2.h, s_whole.h)
    assert all(torch.equal(before[k], v) for k, v in sampler.w.items())


def test_fold_and_crossfade_runs_on_the_kernel() -> None:
    """Fold-and-crossfade over the fused kernel: the utterance the reference sampler gives."""
    from models.samplers.fold import FoldVocoder

    hop = 10
    weights, gates, _, _ = _setup(5, 32, 1, 40, 0, hop)
    utterance = gates[0, :5]  # (5, 3H): 4 segments of 2 + 1 overlap frames, one batch
    fold_gpu = FoldVocoder(GpuSampler(weights, DEVICE, mode=MODE, max_programs=4), segment_frames=2,
                           overlap_frames=1, block_samples=15)
    fold_ref = FoldVocoder(ReferenceSampler(weights), segment_frames=2, overlap_frames=1, block_samples=15)
    assert len(fold_ref.plan(5)) > 1
    got = fold_gpu.generate(utterance, seed=2)
    assert got.shape == (5 * hop,)
    assert (got == fold_ref.generate(utterance, seed=2)).all()


def test_half_weights_round_only_the_matrices() -> None:
    torch.manual_seed(0)
    w = extract_weights(WaveRNN(WaveRNNConfig(hidden_size=16, n_mels=8, hop_length=30, cond_channels=8)))
    h = half_weights(w)
    assert isinstance(h, InferenceWeights)
    assert torch.equal(h.R, w.R.half().float()) and not torch.equal(h.R, w.R)
    assert torch.equal(h.R_bias, w.R_bias) and torch.equal(h.I_prev, w.I_prev)


@pytest.mark.parametrize(("hidden", "head", "programs", "dot"), [(896, 448, 132, False), (896, 448, 132, True),
                                                                  (1024, 512, 114, True), (32, 24, 4, False)])
def test_partition_covers_every_unit_within_the_grid(hidden: int, head: int, programs: int, dot: bool) -> None:
    p = plan_partition(hidden, head, programs, dot)
    assert p.programs <= programs
    assert p.programs * p.units >= hidden // 2 and p.programs * p.head_rows >= head
    assert p.units & (p.units - 1) == 0 and p.head_rows & (p.head_rows - 1) == 0
    if dot:
        assert 8 * p.units >= 16 and p.head_rows >= 16


def test_bad_arguments_are_clear_errors() -> None:
    weights, _, _, _ = _setup(0, 32, 1, 2)
    with pytest.raises(ValueError, match="mode"):
        GpuSampler(weights, DEVICE, mode="fast")
    with pytest.raises(ValueError, match="dot_precision"):
        GpuSampler(weights, DEVICE, mode=MODE, dot_precision="bf16")
    with pytest.raises(ValueError, match="num_warps"):
        GpuSampler(weights, DEVICE, mode=MODE, num_warps=6)
    with pytest.raises(ValueError, match="block_k"):
        GpuSampler(weights, DEVICE, mode=MODE, block_k=48)
    if not CUDA:
        with pytest.raises(ValueError, match="phased"):
            GpuSampler(weights, "cpu", mode="persistent")


_COMPILE = r"""
import json
from models.samplers.gpu_build import compile_report
for batch in (1, 16):  # the register-resident FMA path and the tl.dot path
    print(json.dumps(compile_report(64, batch, persistent=True)))
print(json.dumps(compile_report(64, 1, persistent=True, sparse_width=16)))  # packed block-sparse R
"""


def test_persistent_kernel_compiles_for_hopper() -> None:
    """The persistent launch (grid barriers, release/acquire atomics) builds for sm_90 with no GPU."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _COMPILE], capture_output=True, text=True, env=env, timeout=600,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    reports = [json.loads(line) for line in out.stdout.strip().splitlines()[-3:]]
    for report, dot, sparse in zip(reports, (False, True, False), (False, False, True), strict=True):
        assert report["target"] == "sm_90" and report["registers"] > 0 and report["meta"]["DOT"] is dot
        assert report["meta"]["SPARSE_R"] is sparse
        barrier = report["barrier_ptx"]
        assert RELEASE_ADD_PTX.search(barrier) and "ld.global.gpu.acquire" in barrier


# -- full size, on a GPU only ----------------------------------------------------------------
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (the persistent launch cannot run in the interpreter)")


@gpu
@pytest.mark.parametrize("batch", [1, 64])
def test_full_size_persistent_parity_on_gpu(batch: int) -> None:
    """WaveRNN-896: most streams identical to the reference over 300 steps; flips are rare."""
    n, hop = 300, 300
    weights, gates, state, uniforms = _setup(1, 896, batch, n, 0, hop)
    cond = _window(gates, state, n, hop)
    pcm_ref, s_ref = ReferenceSampler(weights.to("cuda")).generate(
        SamplerState(*(t.cuda() for t in (state.h, state.coarse, state.fine, state.position))), cond.cuda(),
        uniforms.cuda())
    pcm, s = GpuSampler(weights, "cuda", mode="persistent").generate(state, cond, uniforms)
    same = (pcm.cpu() == pcm_ref.cpu()).all(dim=1)
    assert same.float().mean() >= 0.9, f"{int((~same).sum())} of {batch} streams diverged"
    assert (s.h.cpu()[same] - s_ref.h.cpu()[same]).abs().max() < 1e-3


@gpu
def test_a_barrier_that_gives_up_falls_back_to_phased_mode_with_the_same_samples() -> None:
    """max_spins = 1: barriers give up at once (or never need to); the block is still right."""
    n, hop = 64, 300
    weights, gates, state, uniforms = _setup(2, 896, 2, n, 0, hop)
    cond = _window(gates, state, n, hop)
    pcm_ref, _ = ReferenceSampler(weights).generate(state, cond, uniforms)
    sampler = GpuSampler(weights, "cuda", mode="persistent", max_spins=1)
    pcm, _ = sampler.generate(state, cond, uniforms)
    assert sampler.mode in ("persistent", "phased")
    assert (pcm.cpu() == pcm_ref).all(dim=1).float().mean() >= 0.5


@gpu
def test_warm_up_covers_every_batch_size_up_to_the_maximum() -> None:
    """After one call per compiled tile (what the service's warm-up runs), every batch size from 1 to
    64 runs without compiling again (a compile takes seconds; a call here takes milliseconds). A size
    no other test uses (H = 40) keeps Triton's on-disk cache from hiding a recompile."""
    import time

    n, hop, hidden = 8, 30, 40
    weights, _, _, _ = _setup(4, hidden, 1, n, 0, hop)
    sampler = GpuSampler(weights, "cuda", mode="persistent")

    def call(batch: int) -> float:
        _, gates, state, uniforms = _setup(4, hidden, batch, n, 0, hop)
        cond = _window(gates, state, n, hop)
        start = time.perf_counter()
        sampler.generate(state, cond, uniforms)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    for batch in sampler.warm_batches(64):
        call(batch)
    slow = {b: round(t, 2) for b in range(1, 65) if (t := call(b)) > 1.0}
    assert not slow, f"batch sizes that compiled again after warm-up (seconds): {slow}"
