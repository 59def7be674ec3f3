"""Typed, validated configuration for audio, features and the WaveRNN network.

Every config is a frozen dataclass whose fields are documented and validated in
``__post_init__``; bad values raise ``ValueError`` naming the fix. Configs round-trip
through plain dicts (``to_dict`` / ``from_dict``) so they can live in checkpoints and
voice cards.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: Output rate of every voice (Hz).
SAMPLE_RATE = 24_000
#: Number of classes of each softmax: 8-bit coarse and 8-bit fine halves of a 16-bit sample.
N_CLASSES = 256


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (nested configs become dicts)."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from ``data``, refusing unknown keys with a clear message.

    Args:
        cls: a config dataclass type.
        data: mapping of field names to values (nested configs as dicts).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} expects a dict, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(names)}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _NESTED.get((cls.__name__, key))
        kwargs[key] = config_from_dict(sub, value) if sub is not None and value is not None else value
    if "fmax" in kwargs and kwargs["fmax"] is not None:
        kwargs["fmax"] = float(kwargs["fmax"])
    return cls(**kwargs)


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel analysis recipe: the conditioning contract between features and voices.

    Frames are centred: frame ``i`` covers samples around ``i * hop_length`` (the signal is
    reflect-padded by ``n_fft // 2`` on both sides), so ``n`` samples give
    ``n // hop_length + 1`` frames and ``T`` frames are vocoded into ``T * hop_length``
    samples.
    """

    sample_rate: int = SAMPLE_RATE
    """Rate (Hz) of the audio the features are computed from; inputs are resampled to it."""
    n_fft: int = 2048
    """FFT size (samples); at least ``win_length``."""
    win_length: int = 1200
    """Hann window length (samples): 50 ms at 24 kHz."""
    hop_length: int = 300
    """Frame step (samples): 12.5 ms at 24 kHz, so 80 frames per second."""
    n_mels: int = 80
    """Number of mel bands (the feature width)."""
    fmin: float = 40.0
    """Lowest mel band edge (Hz)."""
    fmax: float = 12_000.0
    """Highest mel band edge (Hz); at most ``sample_rate / 2``."""
    log_floor: float = 1e-5
    """Magnitudes are clamped to at least this before the logarithm."""
    log_base: str = "e"
    """Logarithm used: ``"e"`` (natural) or ``"10"``."""

    def __post_init__(self) -> None:
        _check(8_000 <= self.sample_rate <= 96_000, f"sample_rate {self.sample_rate} Hz is outside 8000..96000")
        _check(16 <= self.win_length <= self.n_fft, f"win_length {self.win_length} must be in 16..n_fft ({self.n_fft})")
        _check(self.n_fft <= 16_384, f"n_fft {self.n_fft} is larger than 16384")
        _check(1 <= self.hop_length <= self.win_length, f"hop_length {self.hop_length} must be in 1..win_length")
        _check(1 <= self.n_mels <= 512, f"n_mels {self.n_mels} must be in 1..512")
        _check(0.0 <= self.fmin < self.fmax, f"fmin {self.fmin} must be >= 0 and below fmax {self.fmax}")
        _check(
            self.fmax <= self.sample_rate / 2,
            f"fmax {self.fmax} must be at most sample_rate/2 = {self.sample_rate / 2}",
        )
        _check(0.0 < self.log_floor < 1.0, f"log_floor {self.log_floor} must be in (0, 1)")
        _check(self.log_base in ("e", "10"), f"log_base {self.log_base!r} must be 'e' or '10'")

    @property
    def n_freqs(self) -> int:
        """Number of STFT bins (``n_fft // 2 + 1``)."""
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames produced from ``n_samples`` samples at ``sample_rate``."""
        return n_samples // self.hop_length + 1


@dataclass(frozen=True)
class WaveRNNConfig:
    """Shape of the WaveRNN network (paper section 2).

    The GRU state of ``hidden_size`` units is split into a coarse half and a fine half.
    """

    hidden_size: int = 896
    """Recurrent units H (WaveRNN-896 is the paper's quality model); even."""
    out_hidden: int = 0
    """Width of O1 and O3 (the hidden layer of each softmax head); 0 means H // 2."""
    n_mels: int = 80
    """Feature width the conditioning network reads; must equal the voice's FeatureConfig."""
    hop_length: int = 300
    """Samples per feature frame; must equal the voice's FeatureConfig."""
    cond_channels: int = 128
    """Channels of the frame-level conditioning network."""
    cond_layers: int = 2
    """Conv1d layers (kernel 3) in the conditioning network; each looks one frame ahead."""

    def __post_init__(self) -> None:
        _check(
            8 <= self.hidden_size <= 4096 and self.hidden_size % 2 == 0,
            f"hidden_size {self.hidden_size} must be an even number in 8..4096",
        )
        _check(0 <= self.out_hidden <= 4096, f"out_hidden {self.out_hidden} must be in 0..4096 (0 = H // 2)")
        _check(1 <= self.n_mels <= 512, f"n_mels {self.n_mels} must be in 1..512")
        _check(1 <= self.hop_length <= 4096, f"hop_length {self.hop_length} must be in 1..4096")
        _check(1 <= self.cond_channels <= 1024, f"cond_channels {self.cond_channels} must be in 1..1024")
        _check(0 <= self.cond_layers <= 8, f"cond_layers {self.cond_layers} must be in 0..8")

    @property
    def half(self) -> int:
        """Size of each half of the state (coarse and fine)."""
        return self.hidden_size // 2

    @property
    def head_hidden(self) -> int:
        """Width of O1/O3 actually used."""
        return self.out_hidden or self.half

    @property
    def lookahead_frames(self) -> int:
        """Frames of right context one output sample needs beyond its own frame.

        Each conv layer (kernel 3, centred) looks one frame ahead, and the linear
        interpolation to the sample rate reads the next frame.
        """
        return self.cond_layers + 1

    @property
    def lookahead_samples(self) -> int:
        """The declared look-ahead in samples (``lookahead_frames * hop_length``)."""
        return self.lookahead_frames * self.hop_length


@dataclass(frozen=True)
class SubscaleConfig:
    """Subscale WaveRNN (paper section 4): B interleaved sub-tensors generated as one batch.

    Sub-tensor ``j`` holds original samples ``t * B + j``; it starts ``j * horizon`` steps after
    sub-tensor 0 and its context network sees, of every earlier sub-tensor ``i < j``, the steps
    ``t - past .. t + horizon - 1`` (see :mod:`models.subscale` and :mod:`models.subscale_net`).
    """

    factor: int = 16
    """B, the number of sub-tensors (samples per step once all run); the paper uses 16."""
    horizon: int = 8
    """F, the lead between neighbouring sub-tensors and the future horizon of the context (steps)."""
    past: int = 8
    """Steps of the earlier sub-tensors' past the context network reads (0 = only the future window)."""
    context_channels: int = 64
    """Width of the context network's output, an extra input of the GRU."""

    def __post_init__(self) -> None:
        _check(2 <= self.factor <= 64, f"subscale.factor {self.factor} must be in 2..64 (the paper uses 16)")
        _check(1 <= self.horizon <= 64, f"subscale.horizon {self.horizon} must be in 1..64")
        _check(0 <= self.past <= 256, f"subscale.past {self.past} must be in 0..256")
        _check(1 <= self.context_channels <= 1024,
               f"subscale.context_channels {self.context_channels} must be in 1..1024")

    @property
    def window(self) -> int:
        """Steps per earlier sub-tensor in the context window (``past + horizon``)."""
        return self.past + self.horizon

    @property
    def context_inputs(self) -> int:
        """Inputs of the context layer: (coarse, fine) x ``B - 1`` earlier offsets x ``window`` steps."""
        return 2 * (self.factor - 1) * self.window


@dataclass(frozen=True)
class VoiceConfig:
    """A voice: its feature recipe and its network, kept consistent."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: WaveRNNConfig = field(default_factory=WaveRNNConfig)
    subscale: SubscaleConfig | None = None
    """Subscale WaveRNN settings; None (the default) is the plain WaveRNN."""

    def __post_init__(self) -> None:
        _check(
            self.features.n_mels == self.model.n_mels,
            f"model.n_mels ({self.model.n_mels}) must equal features.n_mels ({self.features.n_mels})",
        )
        _check(
            self.features.hop_length == self.model.hop_length,
            f"model.hop_length ({self.model.hop_length}) must equal features.hop_length "
            f"({self.features.hop_length})",
        )
        _check(
            self.features.sample_rate == SAMPLE_RATE,
            f"voices generate {SAMPLE_RATE} Hz audio; features.sample_rate must be {SAMPLE_RATE}",
        )

    @classmethod
    def tiny(cls, hidden_size: int = 32, n_mels: int = 8, hop_length: int = 30) -> VoiceConfig:
        """A small consistent config for tests and quick experiments."""
        feats = FeatureConfig(n_fft=256, win_length=120, hop_length=hop_length, n_mels=n_mels)
        model = WaveRNNConfig(
            hidden_size=hidden_size, n_mels=n_mels, hop_length=hop_length, cond_channels=16
        )
        return cls(features=feats, model=model)


_NESTED: dict[tuple[str, str], type] = {
    ("VoiceConfig", "features"): FeatureConfig,
    ("VoiceConfig", "model"): WaveRNNConfig,
    ("VoiceConfig", "subscale"): SubscaleConfig,
}
