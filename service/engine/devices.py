"""Which devices get a worker, which sampler each runs, and the warm-up block.

On CUDA there is one worker per visible GPU; on CPU ``workers`` workers share the cores.
Samplers implement :class:`models.samplers.base.Sampler`: ``reference`` (the readable torch
loop, any device), ``cpu`` (the compiled CPU sampler, :mod:`models.samplers.cpu`) and ``gpu``
(the fused persistent Triton kernel, :mod:`models.samplers.gpu`), each imported only when
used. ``auto`` is the fused kernel on CUDA (the reference sampler, with a warning, when Triton
is not installed) and the compiled CPU sampler on CPU. A Subscale WaveRNN voice gets the
subscale samplers instead: the fused subscale kernel (:mod:`models.samplers.gpu_subscale`) on
CUDA, the compiled or reference CPU subscale sampler on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from models.samplers.base import Sampler, SamplerState, UniformSource, conditioning_window
from models.samplers.reference import ReferenceSampler
from models.voices import Voice
from models.weights import extract_weights

SAMPLERS = ("auto", "reference", "cpu", "gpu")

logger = logging.getLogger(__name__)


def resolve_devices(device: str, workers: int) -> list[tuple[str, torch.device]]:
    """(label, device) for each worker.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: number of CPU workers (ignored on CUDA: one per GPU).
    Raises:
        ValueError: ``cuda`` asked for but no GPU is visible.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        n = torch.cuda.device_count()
        if n == 0:
            raise ValueError("TTS_DEVICE=cuda but no CUDA device is visible; use TTS_DEVICE=cpu or auto")
        return [(f"cuda:{i}", torch.device("cuda", i)) for i in range(n)]
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return [(f"cpu:{i}", torch.device("cpu")) for i in range(workers)]


def check_sampler_device(voice: Voice, kind: str, device: torch.device) -> None:
    """ValueError, at start-up, when sampler ``kind`` cannot run ``voice`` on ``device``.

    The same conditions are checked again where the sampler is built (in the worker thread),
    but a worker that fails to build retries forever; checking first turns a misconfiguration
    into one clear start-up error.
    """
    if voice.config.subscale is not None and device.type != "cpu" and kind == "reference":
        raise ValueError(f"voice {voice.name!r} is a Subscale WaveRNN, whose reference sampler runs on the CPU "
                         "only; use TTS_DEVICE=cpu, or TTS_SAMPLER=auto or gpu for the fused GPU kernel")
    if kind == "cpu" and device.type != "cpu":
        raise ValueError(f"TTS_SAMPLER=cpu runs on the CPU, not on {device}; use TTS_DEVICE=cpu")
    if kind == "gpu" and device.type != "cuda":
        raise ValueError(f"TTS_SAMPLER=gpu runs on CUDA, not on {device}; use TTS_SAMPLER=cpu or auto")


def sampler_factory(voice: Voice, kind: str = "auto", workers: int = 1) -> Callable[[torch.device], Sampler]:
    """A function building a ``kind`` sampler over ``voice``'s weights on a given device.

    Args:
        voice: the served voice.
        kind: ``auto``, ``reference``, ``cpu`` or ``gpu``.
        workers: how many workers will call samplers at once (the compiled CPU sampler then
            runs each call on one core: its parallel layer does not allow concurrent calls).
    """
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler {kind!r}; known: {', '.join(SAMPLERS)}")
    if voice.config.subscale is not None:
        return _subscale_factory(voice, kind)
    weights = extract_weights(voice.model, temperature=voice.temperature)

    def make(device: torch.device) -> Sampler:
        if kind == "cpu" or (kind == "auto" and device.type == "cpu"):
            if device.type != "cpu":
                raise ValueError(f"TTS_SAMPLER=cpu runs on the CPU, not on {device}; use TTS_DEVICE=cpu")
            from models.samplers.cpu import CpuSampler

            return CpuSampler(weights, threads=1 if workers > 1 else None)
        if kind == "gpu" or (kind == "auto" and device.type == "cuda"):
            if device.type != "cuda":
                raise ValueError(f"TTS_SAMPLER=gpu runs on CUDA, not on {device}; use TTS_SAMPLER=cpu or auto")
            try:
                from models.samplers.gpu import GpuSampler
            except ImportError as exc:
                if kind == "gpu":
                    raise ValueError(f"TTS_SAMPLER=gpu needs Triton ({exc}); install torch's CUDA build, which "
                                     "ships it, or use TTS_SAMPLER=reference") from exc
                logger.warning("Triton is not importable (%s): %s runs the reference sampler", exc, device)
                return ReferenceSampler(weights.to(device))
            return GpuSampler(weights, device, mode="persistent")
        return ReferenceSampler(weights.to(device))

    return make


def gpu_subscale_available() -> bool:
    """Whether a subscale voice can run the fused GPU kernel here (a CUDA device and Triton)."""
    if not torch.cuda.is_available():
        return False
    try:
        import models.samplers.gpu_subscale  # noqa: F401
    except ImportError:
        return False
    return True


def _subscale_factory(voice: Voice, kind: str) -> Callable[[torch.device], Sampler]:
    """Subscale voices: on CPU the compiled subscale sampler (``auto``/``cpu``) or the torch one
    (``reference``); on CUDA the fused subscale kernel (``auto``/``gpu``)."""
    from models.samplers.subscale import SubscaleReferenceSampler, extract_subscale_weights

    weights = extract_subscale_weights(voice.model, voice.temperature)  # type: ignore[arg-type]

    def make(device: torch.device) -> Sampler:
        if device.type == "cuda" and kind in ("auto", "gpu"):
            try:
                from models.samplers.gpu_subscale import GpuSubscaleSampler
            except ImportError as exc:
                raise ValueError(f"a Subscale WaveRNN on CUDA needs Triton ({exc}); install torch's CUDA build, "
                                 "which ships it, or use TTS_DEVICE=cpu") from exc
            return GpuSubscaleSampler(weights, device, mode="persistent")  # type: ignore[return-value]
        if kind == "gpu":
            raise ValueError(f"TTS_SAMPLER=gpu runs on CUDA, not on {device}; use TTS_SAMPLER=cpu or auto")
        if device.type != "cpu":
            raise ValueError(f"the CPU subscale samplers run on the CPU, not on {device}; use TTS_DEVICE=cpu or "
                             "TTS_SAMPLER=auto")
        if kind == "reference":
            return SubscaleReferenceSampler(weights)  # type: ignore[return-value]
        from models.samplers.subscale_cpu import SubscaleCpuSampler

        return SubscaleCpuSampler(weights)  # type: ignore[return-value]

    return make


def warm_up_block(voice: Voice, n_samples: int, max_batch: int = 2) -> Callable[[Sampler, torch.device], None]:
    """A warm-up: ``n_samples`` samples of near-silence through a fresh sampler.

    Compiled samplers build a variant per batch shape on first use: the warm-up runs one
    batch of each shape the sampler names (``warm_batches(max_batch)``, the fused GPU kernel),
    else batches of 1 and 2 (the compiled CPU sampler's solo and batched paths).
    """
    hop = voice.config.features.hop_length
    frames = n_samples // hop + 2
    mel = torch.full((1, frames, voice.config.features.n_mels), -5.0)  # (1, T, n_mels)
    with torch.no_grad():
        gates = voice.model.gate_conditioning(mel)[0]  # (T, 3H)
    window = conditioning_window(gates, 0, n_samples, hop)  # (F, 3H)

    def warm(sampler: Sampler, device: torch.device) -> None:
        if voice.config.subscale is not None:  # one short utterance, whole (see service.engine.subscale)
            sub: Any = sampler
            state = sub.initial_state(int(window.shape[0]))
            sub.generate(state, window, UniformSource(0).draw(state.steps_per_subtensor * sub.sub.factor), 1 << 30)
            return
        shapes = getattr(sampler, "warm_batches", None)
        for batch in (shapes(max_batch) if shapes else (1, 2)):
            state = SamplerState.initial(batch, sampler.hidden_size, device)
            uniforms = UniformSource(0).draw(batch * n_samples).view(batch, n_samples, 2).to(device)  # (B, n, 2)
            cond = window.unsqueeze(0).expand(batch, -1, -1).contiguous().to(device)  # (B, F, 3H)
            sampler.generate(state, cond, uniforms)

    return warm
