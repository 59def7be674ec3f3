"""Teacher-forced training of a WaveRNN voice, with exact resume.

Each step draws ``batch_size`` random segments of ``seq_frames`` frames (see
:class:`models.data.SegmentDataset`) from a seeded ``torch.Generator``, runs them through
:meth:`WaveRNN.forward_conditioned` and minimises ``CE(coarse) + CE(fine)`` (nats per sample)
with Adam, a warmup + cosine/step learning-rate schedule (a pure function of the step) and
gradient-norm clipping. At step 0 the conditioning network's input normalisation is set from
the training data's per-band log-mel mean and deviation.

A run folder holds ``config.json``, ``metrics.jsonl`` (one JSON object per log or validation
record), ``curves.png`` (when matplotlib is installed) and ``checkpoints/step_NNNNNNNN.pt``.
Each checkpoint carries the optimizer, the step, the batch generator and the torch/numpy/python
RNG states, so ``N`` steps + resume + ``N`` steps gives bit-for-bit the weights of ``2N`` steps
on CPU.

``wavernn-tts train --config C.json --data SPEC... --out RUN_DIR [--resume auto]``, or
``python -m models.train`` with the same arguments (no service package needed). With
``--max-minutes M`` a run stops early, validated and checkpointed, after the first step that
ends past M minutes, so that it fits a time-limited machine and resumes exactly later. SIGINT
(Ctrl-C) or SIGTERM stops it the same way after the current step (checkpointed, not validated:
a terminated container has seconds), and the command exits 128 + the signal's number; a second
signal stops it at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import signal
import sys
import time
import tomllib
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from models.checkpoint import read_checkpoint, save_checkpoint
from models.config import VoiceConfig, config_from_dict, config_to_dict
from models.data import SegmentDataset, UtteranceData, conditioned_batch, load_prepared, resolve_data
from models.evaluate import class_nll, heldout_nll
from models.self_feed import self_fed_samples
from models.sparsity import PruneConfig, Pruner, sparsity_report
from models.state_noise import StatePerturbation
from models.stop import StopSignals
from models.subscale_net import build_model
from models.wavernn import WaveRNN
from models.weights import TEMPERATURE_RANGE

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "step", "constant")
PRUNE_BLOCKS = {"16x1": (16, 1), "4x4": (4, 4)}


def make_pruner(cfg: TrainConfig) -> Pruner | None:
    """The run's pruner (None when ``prune_target`` is 0)."""
    if cfg.prune_target <= 0.0:
        return None
    return Pruner(PruneConfig(target=cfg.prune_target, t0=cfg.prune_t0, S=cfg.prune_steps, every=cfg.prune_every,
                              block=PRUNE_BLOCKS[cfg.prune_block], prune_heads=cfg.prune_heads))


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the ``"train"`` section of a run config); every field is validated."""

    steps: int = 300_000
    """Optimizer steps in the whole run (the schedule's horizon)."""
    batch_size: int = 32
    """Segments per step."""
    seq_frames: int = 8
    """Frames per training segment (``seq_frames * hop`` samples, 2400 at hop 300)."""
    lr: float = 4e-4
    """Peak Adam learning rate."""
    schedule: str = "cosine"
    """After warmup: ``"cosine"`` (to ``lr * min_lr_ratio`` at ``steps``), ``"step"`` or ``"constant"``."""
    warmup_steps: int = 1000
    """Linear warmup from ``lr / warmup_steps`` to ``lr`` (0 = none)."""
    phase_start: int = 0
    """Step at which the warmup and the schedule begin (0 = the run's start). A resumed run that
    sets it to the checkpoint's step restarts the learning rate there: warmup, then the cosine
    (or step decay) over ``steps - phase_start`` steps, a warm restart on a new horizon."""
    min_lr_ratio: float = 0.05
    """Final learning rate of the cosine schedule, as a fraction of ``lr``."""
    decay_every: int = 50_000
    """Step schedule: multiply the rate by ``decay_gamma`` every this many steps."""
    decay_gamma: float = 0.5
    """Step schedule factor, in (0, 1]."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = no clipping)."""
    checkpoint_every: int = 5000
    """Steps between checkpoints (the last step is always saved)."""
    keep_checkpoints: int = 3
    """Keep the newest this many checkpoints (0 = keep all)."""
    validate_every: int = 2000
    """Steps between validations (also run at step 0 and at the last step)."""
    valid_segments: int = 64
    """Held-out segments per validation (evenly spread, fixed for the run)."""
    valid_seq_frames: int = 32
    """Frames per validation segment."""
    log_every: int = 50
    """Steps between training records in ``metrics.jsonl``."""
    seed: int = 0
    """Seeds the weights, the batches and the train/validation split."""
    device: str = "auto"
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    num_threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    amp: bool = False
    """bf16 autocast of the forward pass, on CUDA and on CPU, but for the GRU's recurrence, which
    stays float32 as the samplers run it (:func:`models.wavernn.float32_gru`); 1.16x the float32
    samples/s of WaveRNN-384 on this 2-core CPU with AVX512-BF16 (``benchmarks/bench_train.py``;
    emulated, and slower, on a CPU without). Validation stays float32 on CPU."""
    valid_fraction: float = 0.05
    """Fraction of utterances held out for validation when preparing raw corpora."""
    valid_count: int = 0
    """Hold out exactly this many utterances instead (0 = use ``valid_fraction``)."""
    skip_bad_audio: bool = False
    """Skip (and count) unreadable audio files at preparation instead of failing."""
    prune_target: float = 0.0
    """Sparse WaveRNN: final sparsity Z of each gate matrix of R (and of O1..O4 with
    ``prune_heads``), in [0, 1); 0 turns pruning off."""
    prune_t0: int = 1000
    """Step at which pruning starts (the paper's t0)."""
    prune_steps: int = 200_000
    """Steps over which sparsity ramps as ``Z (1 - (1 - (t - t0) / S)^3)`` (the paper's S)."""
    prune_every: int = 500
    """Masks are recomputed every this many steps."""
    prune_block: str = "16x1"
    """Block shape kept or dropped by mean magnitude: ``"16x1"`` or ``"4x4"``."""
    prune_heads: bool = False
    """Also prune the output layers O1..O4 (pays for CPU speed once R is sparse)."""
    self_feed: float = 0.0
    """Probability in [0, 1] that a previous-sample input is the network's own draw instead of
    the original sample (parallel scheduled sampling, :mod:`models.self_feed`; targets stay the
    originals). 0 is plain teacher forcing. It costs ``self_feed_passes`` more, gradient-free,
    forward passes a step; validation stays teacher-forced, while the training loss is measured
    on the fed inputs."""
    self_feed_temperature: float = 0.6
    """Temperature of those draws (the service samples at 0.6)."""
    self_feed_passes: int = 1
    """Gradient-free passes that make the fed samples: 1 draws from a teacher-forced pass; each
    further pass is fed the last one's samples, so its draws carry compounded errors."""
    state_noise: float = 0.0
    """Standard deviation, in [0, 1], of Gaussian noise added to the GRU's state after every
    training sample (:mod:`models.state_noise`; the state lies in [-1, 1]); 0 = none. Validation
    stays unperturbed. Either perturbation runs the GRU as a loop over samples (1.13x a float32 step's time on one
    CPU thread, docs/training.md)."""
    state_round_bf16: bool = False
    """Round the GRU's state to bf16 after every training sample, in float32 arithmetic otherwise:
    what CPU autocast once did by accident (docs/quality.md section 11), on any device."""
    gates_bf16: bool = False
    """Run the GRU's gates in bf16 in training (bf16 weights, operands and activations of the input
    and recurrent products) while the state is carried in float32; with ``state_round_bf16`` too,
    the whole recurrence is bf16 as CPU autocast once ran it (docs/quality.md section 14). The
    same loop over samples as the state perturbations; validation stays float32."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"train.{f.name} must be an integer, got {value!r}")
            elif f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"train.{f.name} must be true or false, got {value!r}")
            elif f.type == "str" and not isinstance(value, str):
                raise ValueError(f"train.{f.name} must be a string, got {value!r}")
            elif f.type == "float" and not isinstance(getattr(self, f.name), float):
                raise ValueError(f"train.{f.name} must be a number, got {value!r}")
        positive = ("steps", "batch_size", "seq_frames", "decay_every", "checkpoint_every", "validate_every",
                    "valid_segments", "valid_seq_frames", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "phase_start", "keep_checkpoints", "seed", "num_threads", "valid_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.phase_start >= self.steps:
            raise ValueError(f"train.phase_start {self.phase_start} must be below train.steps {self.steps} "
                             "(the phase's schedule ends at steps)")
        if not (0.0 < self.lr <= 1.0 and math.isfinite(self.lr)):
            raise ValueError(f"train.lr {self.lr} must be in (0, 1]")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule {self.schedule!r} must be one of {SCHEDULES}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"train.min_lr_ratio {self.min_lr_ratio} must be in [0, 1]")
        if not 0.0 < self.decay_gamma <= 1.0:
            raise ValueError(f"train.decay_gamma {self.decay_gamma} must be in (0, 1]")
        if not (self.grad_clip >= 0.0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"train.grad_clip {self.grad_clip} must be >= 0 (0 = off)")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"train.valid_fraction {self.valid_fraction} must be in [0, 1)")
        if not 0.0 <= self.prune_target < 1.0:
            raise ValueError(f"train.prune_target {self.prune_target} must be in [0, 1) (0 = no pruning)")
        if self.prune_block not in PRUNE_BLOCKS:
            raise ValueError(f"train.prune_block {self.prune_block!r} must be one of {sorted(PRUNE_BLOCKS)}")
        for name in ("prune_steps", "prune_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.prune_t0 < 0:
            raise ValueError(f"train.prune_t0 must be >= 0, got {self.prune_t0}")
        if not 0.0 <= self.self_feed <= 1.0:
            raise ValueError(f"train.self_feed {self.self_feed} must be in [0, 1] (0 = teacher forcing)")
        if self.self_feed_passes < 1:
            raise ValueError(f"train.self_feed_passes must be >= 1, got {self.self_feed_passes}")
        lo, hi = TEMPERATURE_RANGE
        if not lo <= self.self_feed_temperature <= hi:
            raise ValueError(f"train.self_feed_temperature {self.self_feed_temperature} must be in [{lo}, {hi}]")
        if not 0.0 <= self.state_noise <= 1.0:
            raise ValueError(f"train.state_noise {self.state_noise} must be in [0, 1] (0 = none)")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError as exc:
                raise ValueError(f"train.device {self.device!r} must be 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc


def load_run_config(path: str | Path) -> tuple[VoiceConfig, TrainConfig]:
    """Read ``{"voice": {...VoiceConfig...}, "train": {...TrainConfig...}}`` from JSON or TOML.

    Missing fields take their defaults; unknown ones are refused. A ``"description"`` key is
    allowed for humans.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist; see configs/tiny.json for an example")
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {p} cannot be parsed: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold an object with 'voice' and 'train' sections")
    unknown = sorted(set(data) - {"voice", "train", "description"})
    if unknown:
        raise ValueError(f"config file {p}: unknown section(s) {unknown}; expected 'voice' and 'train'")
    voice = config_from_dict(VoiceConfig, data.get("voice", {}))
    return voice, config_from_dict(TrainConfig, data.get("train", {}))


def step_logits(model: WaveRNN, cfg: TrainConfig, cond: torch.Tensor, coarse: torch.Tensor, fine: torch.Tensor,
                prev: tuple[torch.Tensor, torch.Tensor],
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A training step's (coarse, fine) logits: teacher-forced, or self-fed when ``cfg.self_feed`` > 0
    (the fed samples drawn with ``generator``, :func:`models.self_feed.self_fed_samples`), the GRU's
    recurrence perturbed as ``cfg.state_noise``, ``cfg.state_round_bf16`` and ``cfg.gates_bf16`` say
    (noise drawn with ``generator``, :mod:`models.state_noise`)."""
    fed = None
    if cfg.self_feed > 0:
        fed = self_fed_samples(model, cond, coarse, fine, prev, rate=cfg.self_feed,
                               temperature=cfg.self_feed_temperature, generator=generator,
                               passes=cfg.self_feed_passes)
    logits_c, logits_f, _ = model.forward_conditioned(cond, coarse, fine, prev=prev, fed_back=fed,
                                                      perturb=(recurrence_perturbation(cfg), generator))
    return logits_c, logits_f


def recurrence_perturbation(cfg: TrainConfig) -> StatePerturbation:
    """The GRU recurrence's perturbation in training that ``cfg`` asks for (:mod:`models.state_noise`)."""
    return StatePerturbation(cfg.state_noise, cfg.state_round_bf16, cfg.gates_bf16)


def check_subscale_segments(voice: VoiceConfig, cfg: TrainConfig) -> None:
    """ValueError unless a subscale voice's training and validation segments fold into B sub-tensors."""
    if voice.subscale is None:
        return
    nb, hop = voice.subscale.factor, voice.model.hop_length
    for name in ("seq_frames", "valid_seq_frames"):
        if getattr(cfg, name) * hop % nb:
            raise ValueError(f"train.{name} * hop = {getattr(cfg, name) * hop} samples is not a multiple of "
                             f"subscale.factor {nb}; choose train.{name} so that it is (e.g. a multiple of "
                             f"{nb // np.gcd(nb, hop)})")


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warmup, then the schedule (pure function).

    Both count from ``cfg.phase_start`` (0 unless the run is a warm restart); a step before it
    gets the warmup's first rate.
    """
    s = max(0, step - cfg.phase_start)
    if s < cfg.warmup_steps:
        return cfg.lr * (s + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        progress = min(1.0, (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.phase_start - cfg.warmup_steps))
        return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    if cfg.schedule == "step":
        return cfg.lr * cfg.decay_gamma ** (s // cfg.decay_every)
    return cfg.lr


def training_autocast(amp: bool, device: torch.device) -> Any:
    """The forward pass's autocast context: bf16 on CUDA or CPU with ``amp``, else none."""
    if not amp:
        return nullcontext()
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        log.warning("train.amp on a CPU without native bf16 (AVX512-BF16/AMX): bf16 is emulated and "
                    "slower than float32; set \"amp\": false")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; refuses CUDA on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


# -- checkpoints and RNG state ---------------------------------------------------------------
def checkpoint_files(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    return sorted((Path(run_dir) / "checkpoints").glob("step_*.pt"))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run folder, or None."""
    files = checkpoint_files(run_dir)
    return files[-1] if files else None


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# -- progress and metrics ------------------------------------------------------------------
class ProgressBar:
    """One updating status line on a terminal; plain lines (only when forced) otherwise."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.25) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval, self.last, self.dirty = min_interval, 0.0, False

    def update(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if self.tty and (force or now - self.last >= self.min_interval):
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self.last, self.dirty = now, True
        elif not self.tty and force:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False


def write_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one record to the run's ``metrics.jsonl``."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def rewind_metrics(path: Path, step: int) -> int:
    """On resume at ``step``: move the records of later steps out of ``metrics.jsonl``.

    They come from a run that stopped (was killed, crashed) after its last checkpoint; the
    resumed run writes those steps again, and keeping both would double them in the log and the
    plot. The moved lines are appended to ``metrics.superseded.jsonl`` beside it, never lost.
    Returns how many records were moved.
    """
    if not path.is_file():
        return 0
    keep: list[str] = []
    moved: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            later = int(json.loads(line).get("step", 0)) > step
        except (ValueError, TypeError, AttributeError):
            later = False  # not ours to judge: keep it where it was
        (moved if later else keep).append(line)
    if moved:
        with open(path.with_name("metrics.superseded.jsonl"), "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in moved))
        path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    return len(moved)


def plot_metrics(metrics_path: Path, png_path: Path) -> bool:
    """Plot training and validation bits per sample and the learning rate; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] == "valid"]
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
    for key, style in (("coarse_bits", "-"), ("fine_bits", "--")):
        ax.plot([r["step"] for r in train], [r[key] for r in train], style, color="C0", label=f"train {key}")
        ax.plot([r["step"] for r in valid], [r[key] for r in valid], style + "o", color="C1", label=f"valid {key}")
    ax.set_ylabel("bits per sample")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    ax_lr.plot([r["step"] for r in train], [r["lr"] for r in train], color="C2")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return True


# -- the loop ----------------------------------------------------------------------------
@dataclass
class TrainResult:
    """The trained model (on its device), the final step, the last validation and the last checkpoint."""

    model: WaveRNN
    step: int
    valid: dict[str, float] | None
    checkpoint: Path
    stopped: str | None = None  # why it ended before cfg.steps: "time", or a signal's name ("SIGTERM")


def train(
    voice: VoiceConfig,
    cfg: TrainConfig,
    train_utts: Sequence[UtteranceData],
    valid_utts: Sequence[UtteranceData],
    run_dir: str | Path,
    *,
    resume: str | Path | None = None,
    meta: dict[str, Any] | None = None,
    progress: TextIO | None = None,
    max_minutes: float | None = None,
) -> TrainResult:
    """Train (or resume) ``voice`` on prepared utterances, writing the run folder ``run_dir``.

    Args:
        voice: the voice to train; a resumed checkpoint must hold the same one.
        cfg: the training config.
        train_utts, valid_utts: prepared utterances (``valid_utts`` may be empty: no validation).
        run_dir: output folder; refused if it already holds checkpoints and ``resume`` is None.
        resume: a checkpoint with training state to continue from.
        meta: extra entries stored in every checkpoint's meta (e.g. the data specs).
        progress: stream for the progress line (default stderr).
        max_minutes: stop after the first step that ends more than this many minutes of wall
            time after the call began (data set-up and validation included): validate, save a
            checkpoint and return. Not part of ``cfg``: resuming the checkpoint is exact.

    Called from the main thread, a SIGINT or SIGTERM during training stops it after the current
    step with a checkpoint (``stopped`` is the signal's name); a second one stops it at once.
    """
    started = time.perf_counter()
    if max_minutes is not None and not max_minutes >= 0.0:
        raise ValueError(f"max_minutes {max_minutes} must be >= 0 (None = no time limit)")
    run = Path(run_dir)
    check_subscale_segments(voice, cfg)
    if cfg.self_feed > 0 and voice.subscale is not None:
        raise ValueError("train.self_feed is built for the plain WaveRNN; set it to 0 for a subscale voice")
    if recurrence_perturbation(cfg).active and voice.subscale is not None:
        raise ValueError("train.state_noise, train.state_round_bf16 and train.gates_bf16 are built for the plain "
                         "WaveRNN; set them to 0, false and false for a subscale voice")
    if resume is None and checkpoint_files(run):
        raise ValueError(f"{run} already holds checkpoints; resume with --resume auto or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"voice": config_to_dict(voice), "train": config_to_dict(cfg)},
                                                indent=1))
    device = resolve_device(cfg.device)
    old_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        deadline = None if max_minutes is None else started + 60.0 * max_minutes
        with StopSignals() as stop:
            return _train(voice, cfg, train_utts, valid_utts, run, device, resume, dict(meta or {}),
                          ProgressBar(progress), deadline, stop)
    finally:
        torch.set_num_threads(old_threads)


def _train(voice: VoiceConfig, cfg: TrainConfig, train_utts: Sequence[UtteranceData],
           valid_utts: Sequence[UtteranceData], run: Path, device: torch.device, resume: str | Path | None,
           meta: dict[str, Any], bar: ProgressBar, deadline: float | None, stop: StopSignals) -> TrainResult:
    train_set = SegmentDataset(train_utts, voice.model, cfg.seq_frames)
    valid_set = SegmentDataset(valid_utts, voice.model, cfg.valid_seq_frames) if valid_utts else None
    if valid_set is None:
        log.warning("no held-out utterances: validation is off")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(voice).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr_at(cfg, 0))
    generator = torch.Generator().manual_seed(cfg.seed)
    pruner = make_pruner(cfg)
    step, last_valid = 0, None
    if resume is not None:
        blob = read_checkpoint(resume)
        if config_from_dict(VoiceConfig, blob["voice"]) != voice:
            raise ValueError(f"checkpoint {resume} was trained for another voice config; resume with its own config")
        if "train_state" not in blob:
            raise ValueError(f"checkpoint {resume} holds no training state (an exported voice?); cannot resume")
        state = blob["train_state"]
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        _set_rng_state(state["rng"])
        step, last_valid = int(state["step"]), blob["meta"].get("valid")
        if pruner is not None and "pruner" in state:
            pruner.load_state_dict(state["pruner"])
            pruner.step(model, step)  # the mask update due at this step comes after its checkpoint (see below)
        log.info("resumed %s at step %d", resume, step)
    else:
        mean, std = train_set.mel_stats()
        model.cond_net.get_buffer("input_mean").copy_(mean.to(device))
        model.cond_net.get_buffer("input_std").copy_(std.to(device))
    if step < cfg.phase_start:
        raise ValueError(f"train.phase_start {cfg.phase_start} is after the step the run starts at ({step}); "
                         f"a warm restart sets it to the resumed checkpoint's step or earlier")
    metrics_path = run / "metrics.jsonl"
    if resume is not None and (moved := rewind_metrics(metrics_path, step)):
        log.info("moved %d records past step %d from %s to metrics.superseded.jsonl", moved, step, metrics_path)
    autocast = training_autocast(cfg.amp, device)
    samples_per_step = cfg.batch_size * cfg.seq_frames * voice.model.hop_length

    def validate() -> dict[str, float] | None:
        if valid_set is None:
            return None
        result = heldout_nll(model, valid_set, batch_size=cfg.batch_size, max_segments=cfg.valid_segments,
                             amp=cfg.amp)
        write_metrics(metrics_path, {"kind": "valid", "step": step, **result})
        plot_metrics(metrics_path, run / "curves.png")
        bar.update(f"step {step}/{cfg.steps} valid bits coarse {result['coarse_bits']:.3f} "
                   f"fine {result['fine_bits']:.3f}", force=True)
        return result

    def save() -> Path:
        path = run / "checkpoints" / f"step_{step:08d}.pt"
        train_state = {"step": step, "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                       "rng": _rng_state(), "schedule": {"name": cfg.schedule, "lr": lr_at(cfg, step)},
                       "train_config": config_to_dict(cfg)}
        extra: dict[str, Any] = {}
        if pruner is not None:
            train_state["pruner"] = pruner.state_dict()
            extra["sparsity"] = sparsity_report(model, PRUNE_BLOCKS[cfg.prune_block])
        save_checkpoint(path, model, voice,
                        meta={**meta, "trained": True, "step": step, "valid": last_valid, **extra},
                        train_state=train_state)
        if cfg.keep_checkpoints:
            for old in checkpoint_files(run)[: -cfg.keep_checkpoints]:
                old.unlink()
        return path

    if step == 0:
        last_valid = validate()
    checkpoint: Path | None = None
    stopped: str | None = None
    acc = {"loss": 0.0, "coarse": 0.0, "fine": 0.0, "grad_norm": 0.0, "n": 0, "time": 0.0}
    model.train()
    while step < cfg.steps:
        t_step = time.perf_counter()
        lr = lr_at(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = train_set.sample(cfg.batch_size, generator).to(device)
        with autocast:
            cond, coarse, fine, prev = conditioned_batch(model, batch)
            logits_c, logits_f = step_logits(model, cfg, cond, coarse, fine, prev, generator)
        loss_c, loss_f = class_nll(logits_c, coarse, exact=False), class_nll(logits_f, fine, exact=False)
        loss = loss_c + loss_f
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {step}; lower train.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: measure only
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        optimizer.step()
        step += 1
        prune_stats: dict[str, float] = {}
        if pruner is not None:
            pruner.apply(model)  # pruned weights back to exactly zero
            if step == cfg.steps:  # the run ends with the schedule's masks
                prune_stats = pruner.step(model, step)
        for key, value in (("loss", loss), ("coarse", loss_c), ("fine", loss_f)):
            acc[key] += float(value.detach())
        acc["grad_norm"] += grad_norm
        acc["n"] += 1
        acc["time"] += time.perf_counter() - t_step  # training time only, validation excluded
        if step % cfg.validate_every == 0 or step == cfg.steps:
            last_valid = validate()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint = save()
        if step < cfg.steps:
            if stop.received is not None:
                stopped = stop.received.name
            elif deadline is not None and time.perf_counter() > deadline:
                stopped = "time"
        if stopped is not None:
            if step % cfg.validate_every and stopped == "time":  # a signalled run may have seconds left
                last_valid = validate()
            if step % cfg.checkpoint_every:
                checkpoint = save()
        elif pruner is not None and step < cfg.steps:
            # masks due at this step take effect from the next one, after this step's validation and
            # checkpoint: a network measured or saved right after a mask update is one that has not
            # yet adapted to it (on WaveRNN-384 a 23% -> 30% update cost 1.2 bits for ~5 steps)
            prune_stats = pruner.step(model, step)
        rate = acc["n"] * samples_per_step / max(acc["time"], 1e-9)
        n = acc["n"]
        text = (f"step {step}/{cfg.steps} loss {acc['loss'] / n:.3f} bits c {acc['coarse'] / n / math.log(2):.3f} "
                f"f {acc['fine'] / n / math.log(2):.3f} lr {lr:.2e} {rate:,.0f} samples/s")
        if step % cfg.log_every == 0 or step == cfg.steps or stopped is not None:  # a stop logs its interval
            write_metrics(metrics_path, {"kind": "train", "step": step, "loss": acc["loss"] / n,
                                         "coarse_bits": acc["coarse"] / n / math.log(2),
                                         "fine_bits": acc["fine"] / n / math.log(2), "lr": lr,
                                         "grad_norm": acc["grad_norm"] / n, "samples_per_s": rate,
                                         **prune_stats})
            bar.update(text, force=True)
            acc = dict.fromkeys(acc, 0.0)
        else:
            bar.update(text)
        if stopped is not None:
            bar.close()
            how = "on time" if stopped == "time" else f"by {stopped}"
            log.info("stopped %s at step %d of %d: %s (continue with --resume that file)", how, step, cfg.steps,
                     checkpoint)
            break
    bar.close()
    if checkpoint is None:  # resumed at or beyond cfg.steps: nothing trained, record the state here
        checkpoint = save()
    return TrainResult(model, step, last_valid, checkpoint, stopped)


# -- command line --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``wavernn-tts train``."""
    parser.add_argument("--config", help="run config (JSON or TOML) with 'voice' and 'train' sections, "
                                         "e.g. configs/tiny.json (default: the checkpoint's when resuming, "
                                         "else the built-in defaults: WaveRNN-896)")
    parser.add_argument("--data", nargs="+", metavar="SPEC",
                        help="prepared folder(s), audio folder(s), LJSpeech folder(s), shard folders or files, "
                             "or synthetic:N (default when resuming: the checkpoint's)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (checkpoints, metrics, plot)")
    parser.add_argument("--resume", metavar="CKPT|auto",
                        help="continue from a checkpoint, or 'auto' = the newest in RUN_DIR (fresh start if none)")
    parser.add_argument("--cache", help="where raw corpora are prepared (default RUN_DIR/prepared)")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--phase-start", type=int, metavar="STEP",
                        help="override train.phase_start: a warm restart whose warmup and schedule count from STEP "
                             "(the step of --resume for a restart there)")
    parser.add_argument("--device", help="override train.device: auto, cpu, cuda or cuda:N")
    parser.add_argument("--num-threads", type=int, help="override train.num_threads")
    parser.add_argument("--seed", type=int, help="override train.seed (a fresh run's initial weights and segment "
                                                 "draws; for raw corpora also the held-out split)")
    parser.add_argument("--max-minutes", type=float, metavar="M",
                        help="stop (validated and checkpointed, resumable exactly) after the first step that "
                             "ends past M minutes of wall time")


def run(args: argparse.Namespace) -> int:
    """``wavernn-tts train``: prepare the data, train, and report the last checkpoint."""
    out = Path(args.out)
    voice, cfg = load_run_config(args.config) if args.config else (None, None)
    resume: Path | None = None
    data = list(args.data or [])
    if args.resume:
        resume = latest_checkpoint(out) if args.resume == "auto" else Path(args.resume)
        if resume is None:
            log.info("no checkpoint in %s: starting a fresh run", out)
    if resume is not None:
        blob = read_checkpoint(resume)
        if "train_state" not in blob:
            raise ValueError(f"checkpoint {resume} holds no training state; it cannot be resumed")
        if voice is None:
            voice = config_from_dict(VoiceConfig, blob["voice"])
            cfg = config_from_dict(TrainConfig, blob["train_state"]["train_config"])
        data = data or list(blob["meta"].get("data", []))
    voice, cfg = voice or VoiceConfig(), cfg or TrainConfig()
    overrides = {"steps": args.steps, "device": args.device, "num_threads": args.num_threads,
                 "seed": getattr(args, "seed", None), "phase_start": getattr(args, "phase_start", None)}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if not data:
        raise ValueError("no training data: pass --data (a folder of audio, an LJSpeech folder, a shard file or "
                         "synthetic:N)")
    cache = Path(args.cache) if args.cache else out / "prepared"
    train_utts: list[UtteranceData] = []
    valid_utts: list[UtteranceData] = []
    for spec in data:
        folder = resolve_data(spec, voice.features, cache, valid_fraction=cfg.valid_fraction,
                              valid_count=cfg.valid_count, seed=cfg.seed, skip_bad=cfg.skip_bad_audio)
        train_utts += load_prepared(folder, "train", voice.features)
        valid_utts += load_prepared(folder, "valid", voice.features)
    log.info("training on %d utterances, validating on %d", len(train_utts), len(valid_utts))
    result = train(voice, cfg, train_utts, valid_utts, out, resume=resume, meta={"data": data},
                   max_minutes=getattr(args, "max_minutes", None))
    log.info("finished at step %d: %s (valid %s)", result.step, result.checkpoint, result.valid)
    if result.stopped is not None and result.stopped != "time":
        return 128 + int(signal.Signals[result.stopped])  # as if the signal had ended it, but checkpointed
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.train``: ``wavernn-tts train`` without the service package (e.g. on a bare GPU machine)."""
    from models.entry import module_main

    return module_main("python -m models.train", "train a voice (docs/training.md)", add_arguments, run, argv)


if __name__ == "__main__":
    from models.train import main as _main  # the module proper, not a second copy named __main__

    sys.exit(_main())
