"""Training data: corpora, a prepared cache of PCM + log-mel, and teacher-forcing segments.

Three stages:

1. A *corpus* is a list of :class:`Utterance` (id, audio path, text): :func:`folder_corpus`
   (every wav/flac under a folder, e.g. ``/work/shared/real-speech``), :func:`ljspeech_corpus`
   (``metadata.csv`` + ``wavs/``), :func:`synthetic_corpus` (sentences rendered by the Festival
   frontend). Files may be at any rate.
2. :func:`prepare` reads each file once, resamples it to 24 kHz, and caches its int16 PCM and
   log-mel frames (``utt/<hash>.npz``) with a ``manifest.json`` holding the feature config, a
   deterministic train/validation split and the files it skipped. Unreadable files fail at
   preparation (a ``ValueError`` naming the file), or are skipped and counted, never midway
   through training. Re-preparing reuses the entries whose source file is unchanged.
3. :class:`SegmentDataset` draws segments of ``k = seq_frames`` frames for teacher forcing.
   A segment starting at frame ``s`` has targets ``pcm[s*hop : (s+k)*hop]`` and previous
   sample ``pcm[s*hop - 1]`` (silence at ``s = 0``). Its conditioning must equal what the
   whole utterance gives at those samples, so the conditioning network reads a window of
   ``W = k + 1 + 2L`` real frames (``L = cond_layers``): frames ``[s - L, s + k + L + 1)``,
   shifted inside the utterance at its borders. Shifting, rather than padding the input by
   edge replication, is what makes the equality exact: the network replicate-pads every layer,
   so at a border its second layer sees a copy of the first layer's edge output, not of an
   input frame. :func:`segment_conditioning` takes the ``k + 1`` frames at ``offset`` in the
   window, upsamples them and keeps the first ``k * hop`` samples.

:func:`synthetic_corpus` renders seeded, varied sentences with the text frontend into a folder
(wav + json of segments and pitch per utterance) that :func:`folder_corpus` reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.atomic import atomic_path, write_text_atomic
from models.audio import float_to_pcm, load_audio, split_pcm
from models.config import FeatureConfig, WaveRNNConfig, config_to_dict
from models.features import log_mel
from models.wavernn import WaveRNN, upsample_frames

log = logging.getLogger(__name__)


class Progress:
    """Log ``label: i/n (rate/s, about S s left)`` about ten times over a long loop.

    Preparing a corpus (rendering 1,500 sentences with Festival, decoding and computing
    log-mels) takes minutes; this says how far it got. Only work actually done counts toward
    the rate: reused (cached) items are counted but do not shorten the estimate.
    """

    def __init__(self, label: str, total: int, *, clock: Any = time.monotonic, reports: int = 10) -> None:
        if total < 0 or reports < 1:
            raise ValueError(f"Progress needs total >= 0 and reports >= 1, got total {total}, reports {reports}")
        self.label, self.total, self.clock = label, total, clock
        self.every = max(1, -(-total // reports))  # ceil(total / reports)
        self.start = clock()
        self.done = self.worked = 0

    def step(self, worked: bool = True) -> None:
        """One item finished; ``worked`` is False for an item reused from the cache."""
        self.done += 1
        self.worked += int(worked)
        if self.done % self.every and self.done != self.total:
            return
        elapsed = self.clock() - self.start
        if self.worked == 0:
            log.info("%s: %d/%d (all reused so far)", self.label, self.done, self.total)
            return
        rate = self.worked / max(elapsed, 1e-9)
        left = (self.total - self.done) / rate
        log.info("%s: %d/%d (%.1f/s, about %.0f s left)", self.label, self.done, self.total, rate, left)

AUDIO_SUFFIXES = (".wav", ".flac")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "wavernn-tts-prepared"
MANIFEST_VERSION = 1
#: Per-band standard deviations are floored at this (log units) when normalising features:
#: a band that is empty in the training data (16 kHz sources have nothing above 8 kHz) must not
#: blow up when a later input does have energy there.
MIN_MEL_STD = 0.5


# -- corpora -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Utterance:
    """One recording of a corpus: a unique ``id``, its audio ``path`` and ``text`` ("" if none)."""

    id: str
    path: Path
    text: str = ""


def _sidecar_text(audio: Path) -> str:
    txt, meta = audio.with_suffix(".txt"), audio.with_suffix(".json")
    if txt.is_file():
        return txt.read_text(encoding="utf-8").strip()
    if meta.is_file():
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ""
        return str(data.get("text", "")) if isinstance(data, dict) else ""
    return ""


def folder_corpus(path: str | Path) -> list[Utterance]:
    """Every ``.wav``/``.flac`` file under ``path`` (recursively), sorted by relative path.

    The id is the relative path without suffix; the text comes from a ``.txt`` file, or the
    ``"text"`` of a ``.json`` file, of the same stem beside the audio, if there is one.

    Raises:
        ValueError: ``path`` is not a folder or holds no audio file.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"corpus folder {str(root)!r} does not exist (or is not a folder); check the path")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"corpus folder {str(root)!r} holds no {'/'.join(AUDIO_SUFFIXES)} files")
    return [Utterance(p.relative_to(root).with_suffix("").as_posix(), p, _sidecar_text(p)) for p in files]


def ljspeech_corpus(path: str | Path) -> list[Utterance]:
    """An LJSpeech-style corpus: ``metadata.csv`` lines ``id|text|normalized``, audio in ``wavs/id.wav``.

    The normalised text is used when present, else the raw text. Missing audio files are
    reported by :func:`prepare` (which can skip them).

    Raises:
        ValueError: no folder, no ``metadata.csv``, a malformed line (with its number), no entries.
    """
    root = Path(path)
    meta = root / "metadata.csv"
    if not root.is_dir():
        raise ValueError(f"LJSpeech folder {str(root)!r} does not exist (or is not a folder)")
    if not meta.is_file():
        raise ValueError(f"{str(meta)!r} does not exist; an LJSpeech folder holds metadata.csv and wavs/")
    items: list[Utterance] = []
    for number, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].strip():
            raise ValueError(f"{meta}:{number}: expected 'id|text|normalized', got {line[:80]!r}")
        uid = fields[0].strip()
        text = fields[2].strip() if len(fields) > 2 and fields[2].strip() else fields[1].strip()
        items.append(Utterance(uid, root / "wavs" / f"{uid}.wav", text))
    if not items:
        raise ValueError(f"{str(meta)!r} lists no utterances")
    return items


def open_corpus(path: str | Path) -> list[Utterance]:
    """:func:`ljspeech_corpus` if ``path`` holds ``metadata.csv`` and ``wavs/``, else :func:`folder_corpus`."""
    root = Path(path)
    if (root / "metadata.csv").is_file() and (root / "wavs").is_dir():
        return ljspeech_corpus(root)
    return folder_corpus(root)


# -- preparation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareReport:
    """What :func:`prepare` did: counts, and ``(path, reason)`` for every skipped file."""

    out_dir: Path
    n_train: int
    n_valid: int
    n_reused: int
    skipped: list[tuple[str, str]]


def _source_key(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"source": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _file_sha1(path: Path) -> str:
    """SHA-1 of the file's bytes; ValueError naming the file when it cannot be read."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ValueError(f"cannot read audio file {str(path)!r}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _unchanged(old: dict[str, Any] | None, key: dict[str, Any], path: Path) -> bool:
    """Whether the source of a cached entry is the same file: same path and size, and the same
    modification time or, for a copy with a new time (a corpus copied again), the same content."""
    if old is None or old.get("source") != key["source"] or old.get("size") != key["size"]:
        return False
    return old.get("mtime_ns") == key["mtime_ns"] or ("sha1" in old and old["sha1"] == _file_sha1(path))


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest of a prepared folder, after checking its format.

    Raises:
        ValueError: no manifest, unreadable JSON, or another format.
    """
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{str(Path(out_dir))!r} is not a prepared data folder (no {MANIFEST}); run prepare first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete the folder and prepare again") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path} is not a version-{MANIFEST_VERSION} {MANIFEST_FORMAT} manifest; prepare again")
    return data


def split_indices(n: int, seed: int, valid_fraction: float = 0.05, valid_count: int = 0) -> np.ndarray:
    """Deterministic validation membership of ``n`` utterances (pure function).

    ``valid_count`` utterances (or ``round(valid_fraction * n)`` when it is 0) are drawn by a
    seeded permutation; at least one utterance always stays in training.

    Returns:
        bool array of shape ``(n,)``, True for validation.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction {valid_fraction} must be in [0, 1)")
    if valid_count < 0:
        raise ValueError(f"valid_count {valid_count} must be >= 0 (0 = use valid_fraction)")
    wanted = valid_count if valid_count > 0 else round(valid_fraction * n)
    n_valid = min(wanted, max(n - 1, 0))
    order = np.random.default_rng(seed).permutation(n)
    valid = np.zeros(n, dtype=bool)
    valid[order[:n_valid]] = True
    return valid


def prepare(
    corpus: Sequence[Utterance],
    feature_cfg: FeatureConfig,
    out_dir: str | Path,
    *,
    valid_fraction: float = 0.05,
    valid_count: int = 0,
    seed: int = 0,
    skip_bad: bool = False,
) -> PrepareReport:
    """Cache 24 kHz int16 PCM and log-mel frames of every utterance, with a split.

    Args:
        corpus: the utterances (ids must be unique).
        feature_cfg: the voice's feature recipe (its ``sample_rate`` is the PCM rate).
        out_dir: cache folder; ``manifest.json`` and ``utt/<hash of source>.npz`` (``pcm`` (n,) int16,
            ``mel`` (T, n_mels) float32) are written there.
        valid_fraction, valid_count, seed: the held-out split, see :func:`split_indices`.
        skip_bad: skip (with a warning, counted in the report) files that are missing or
            unreadable instead of raising.

    Raises:
        ValueError: an empty corpus, duplicate ids, a bad file (naming it) unless
            ``skip_bad``, or nothing left to use.
    """
    if not corpus:
        raise ValueError("the corpus is empty; give a folder with .wav/.flac files")
    ids = [u.id for u in corpus]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate utterance ids {dup}; ids must be unique within a corpus")
    out = Path(out_dir)
    (out / "utt").mkdir(parents=True, exist_ok=True)
    features = config_to_dict(feature_cfg)
    previous: dict[str, dict[str, Any]] = {}
    if (out / MANIFEST).is_file():
        try:
            old = read_manifest(out)
            if old.get("features") == features:
                previous = {e["source"]: e for e in old.get("utterances", [])}
        except ValueError:
            log.warning("ignoring the unreadable manifest in %s; preparing again", out)
    entries: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    reused = 0
    progress = Progress(f"preparing {out}", len(corpus))
    for utt in corpus:
        reused_before = reused
        try:
            key = _source_key(utt.path) if utt.path.is_file() else None
            if key is None:
                raise ValueError(f"audio file {str(utt.path)!r} does not exist")
            old_entry = previous.get(key["source"])
            if old_entry is not None and (out / old_entry["file"]).is_file() \
                    and _unchanged(old_entry, key, utt.path):
                entry = {**old_entry, **key, "id": utt.id, "text": utt.text}
                if "sha1" not in entry:  # cached by an older version: hash it now so later copies are reused
                    entry["sha1"] = _file_sha1(utt.path)
                reused += 1
            else:
                written = _write_utterance(utt, feature_cfg, out, key["source"])
                entry = {**key, "sha1": _file_sha1(utt.path), "id": utt.id, "text": utt.text, **written}
        except ValueError as exc:
            if not skip_bad:
                raise ValueError(f"{exc} (utterance {utt.id!r}); fix or remove the file, or skip bad files "
                                 "(prepare(skip_bad=True), train config \"skip_bad_audio\": true)") from exc
            log.warning("skipping %s: %s", utt.path, exc)
            skipped.append((str(utt.path), str(exc)))
            progress.step()
            continue
        entries.append(entry)
        progress.step(worked=reused == reused_before)
    if not entries:
        raise ValueError(f"all {len(corpus)} files of the corpus were unreadable (first: {skipped[0][1]})")
    valid = split_indices(len(entries), seed, valid_fraction, valid_count)
    for entry, is_valid in zip(entries, valid, strict=True):
        entry["split"] = "valid" if is_valid else "train"
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "features": features,
        "split": {"seed": seed, "valid_fraction": valid_fraction, "valid_count": valid_count},
        "utterances": entries,
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    if skipped:
        log.warning("prepared %d utterances in %s, skipped %d unreadable files", len(entries), out, len(skipped))
    n_valid = int(valid.sum())
    return PrepareReport(out, len(entries) - n_valid, n_valid, reused, skipped)


def _write_utterance(utt: Utterance, cfg: FeatureConfig, out: Path, source: str) -> dict[str, Any]:
    audio = load_audio(utt.path, cfg.sample_rate)  # (n,) float32 at 24 kHz
    pcm = float_to_pcm(audio)
    mel = log_mel(np.clip(audio, -1.0, 1.0), cfg)  # (T, n_mels)
    name = f"utt/{hashlib.sha1(source.encode()).hexdigest()[:16]}.npz"  # stable per source file
    with atomic_path(out / name) as tmp, open(tmp, "wb") as f:
        np.savez(f, pcm=pcm, mel=mel)
    return {"file": name, "n_samples": int(pcm.shape[0]), "n_frames": int(mel.shape[0])}


@dataclass(frozen=True)
class UtteranceData:
    """A prepared utterance: ``pcm`` (n,) int16 at 24 kHz and ``mel`` (n // hop + 1, n_mels) float32."""

    id: str
    pcm: np.ndarray
    mel: np.ndarray


def load_prepared(
    out_dir: str | Path, split: str = "train", features: FeatureConfig | None = None
) -> list[UtteranceData]:
    """Load the utterances of one split (``"train"``, ``"valid"`` or ``"all"``) of a prepared folder.

    Raises:
        ValueError: not a prepared folder, features other than ``features``, or a cached file
            that is missing or corrupt (naming it).
    """
    if split not in ("train", "valid", "all"):
        raise ValueError(f"split {split!r} must be 'train', 'valid' or 'all'")
    out = Path(out_dir)
    manifest = read_manifest(out)
    if features is not None and manifest.get("features") != config_to_dict(features):
        raise ValueError(f"{out} was prepared with features {manifest.get('features')}, but the voice uses "
                         f"{config_to_dict(features)}; prepare the data again for this voice")
    result: list[UtteranceData] = []
    for entry in manifest["utterances"]:
        if split != "all" and entry["split"] != split:
            continue
        path = out / entry["file"]
        try:
            with np.load(path, allow_pickle=False) as z:
                pcm, mel = z["pcm"], z["mel"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cached file {path} is missing or corrupt ({exc}); prepare {out} again") from exc
        result.append(UtteranceData(str(entry["id"]), pcm, mel))
    return result


# -- segments ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentBatch:
    """A batch of teacher-forcing segments of ``k`` frames (``N = k * hop`` samples).

    Attributes:
        mel: (B, W, n_mels) conditioning-network input windows, ``W = k + 1 + 2L``.
        offset: (B,) int64, index in the window of each segment's first frame.
        coarse, fine: (B, N) int64 target classes.
        prev_coarse, prev_fine: (B,) int64 classes of the sample before the first target.
    """

    mel: Tensor
    offset: Tensor
    coarse: Tensor
    fine: Tensor
    prev_coarse: Tensor
    prev_fine: Tensor

    @property
    def prev(self) -> tuple[Tensor, Tensor]:
        return self.prev_coarse, self.prev_fine

    def to(self, device: torch.device | str) -> SegmentBatch:
        return SegmentBatch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def segment_conditioning(model: WaveRNN, mel: Tensor, offset: Tensor, seq_frames: int) -> Tensor:
    """Per-sample conditioning of segments, equal to the whole-utterance conditioning there.

    Args:
        model: the network (its conditioning net is used, so gradients reach it).
        mel: (B, W, n_mels) windows from :class:`SegmentDataset`.
        offset: (B,) index of each segment's first frame in its window.
        seq_frames: k, frames per segment.
    Returns:
        (B, k * hop, C).
    """
    frames = model.cond_net(mel)  # (B, W, C)
    idx = offset.view(-1, 1) + torch.arange(seq_frames + 1, device=mel.device)  # (B, k + 1)
    picked = torch.gather(frames, 1, idx.unsqueeze(-1).expand(-1, -1, frames.shape[-1]))  # (B, k + 1, C)
    hop = model.cfg.hop_length
    return upsample_frames(picked, hop)[:, : seq_frames * hop]  # (B, k * hop, C)


def conditioned_batch(model: WaveRNN, batch: SegmentBatch) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
    """``(cond (B, N, C), coarse (B, N), fine (B, N), prev ((B,), (B,)))`` for ``forward_conditioned``."""
    k = batch.coarse.shape[1] // model.cfg.hop_length
    return segment_conditioning(model, batch.mel, batch.offset, k), batch.coarse, batch.fine, batch.prev


class SegmentDataset:
    """Teacher-forcing segments of ``seq_frames`` frames over prepared utterances.

    Utterances shorter than the conditioning window (``seq_frames + 1 + 2 * cond_layers``
    frames) are left out (counted in ``n_too_short``).

    Args:
        utterances: prepared utterances (see :func:`load_prepared`).
        cfg: the network config (``hop_length``, ``n_mels``, ``cond_layers``).
        seq_frames: k, frames per segment.
    """

    def __init__(self, utterances: Sequence[UtteranceData], cfg: WaveRNNConfig, seq_frames: int) -> None:
        if seq_frames < 1:
            raise ValueError(f"seq_frames {seq_frames} must be >= 1")
        self.hop, self.k, self.context = cfg.hop_length, seq_frames, cfg.cond_layers
        self.window = seq_frames + 1 + 2 * cfg.cond_layers
        for u in utterances:
            if u.mel.ndim != 2 or u.mel.shape[1] != cfg.n_mels or u.mel.shape[0] != u.pcm.shape[0] // self.hop + 1:
                raise ValueError(f"utterance {u.id!r}: mel {u.mel.shape} does not fit {u.pcm.shape[0]} samples at "
                                 f"hop {self.hop} with {cfg.n_mels} mels; prepare it with the voice's features")
        self.utterances = [u for u in utterances if u.mel.shape[0] >= self.window]
        self.n_too_short = len(utterances) - len(self.utterances)
        if not self.utterances:
            raise ValueError(f"none of the {len(utterances)} utterances has the {self.window} frames "
                             f"({self.window * self.hop} samples) a segment needs; use shorter seq_frames "
                             "or longer audio")
        if self.n_too_short:
            log.warning("left out %d utterances shorter than %d frames", self.n_too_short, self.window)
        counts = np.array([u.pcm.shape[0] // self.hop - self.k + 1 for u in self.utterances], dtype=np.int64)
        self._cum = np.cumsum(counts)  # segment starts, all utterances

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def n_starts(self) -> int:
        """Number of distinct segment start frames over all utterances."""
        return int(self._cum[-1])

    def mel_stats(self) -> tuple[Tensor, Tensor]:
        """Per-band mean and standard deviation (floored at :data:`MIN_MEL_STD`) of all frames, each (n_mels,)."""
        total = sum(u.mel.shape[0] for u in self.utterances)
        s1 = sum(u.mel.astype(np.float64).sum(axis=0) for u in self.utterances)
        s2 = sum((u.mel.astype(np.float64) ** 2).sum(axis=0) for u in self.utterances)
        mean = s1 / total
        std = np.sqrt(np.maximum(s2 / total - mean**2, 0.0))
        std = np.maximum(std, MIN_MEL_STD)
        return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))

    def _segment(self, u: UtteranceData, s: int) -> tuple[np.ndarray, int, np.ndarray, int]:
        t = u.mel.shape[0]
        w0 = min(max(s - self.context, 0), t - self.window)  # window inside the utterance
        start, n = s * self.hop, self.k * self.hop
        prev = int(u.pcm[start - 1]) if start > 0 else 0
        return u.mel[w0 : w0 + self.window], s - w0, u.pcm[start : start + n], prev

    def _collate(self, items: list[tuple[np.ndarray, int, np.ndarray, int]]) -> SegmentBatch:
        mel = torch.from_numpy(np.stack([m for m, _, _, _ in items]).astype(np.float32))  # (B, W, M)
        offset = torch.tensor([o for _, o, _, _ in items], dtype=torch.int64)
        coarse, fine = split_pcm(torch.from_numpy(np.stack([p for _, _, p, _ in items])))  # (B, N) each
        pc, pf = split_pcm(torch.tensor([p for _, _, _, p in items], dtype=torch.int16))
        return SegmentBatch(mel, offset, coarse, fine, pc, pf)

    def segment(self, index: int, start: int) -> SegmentBatch:
        """The single segment (batch of 1) of utterance ``index`` starting at frame ``start``."""
        u = self.utterances[index]
        if not 0 <= start <= u.pcm.shape[0] // self.hop - self.k:
            raise ValueError(f"start frame {start} is outside 0..{u.pcm.shape[0] // self.hop - self.k} for {u.id!r}")
        return self._collate([self._segment(u, start)])

    def sample(self, batch_size: int, generator: torch.Generator) -> SegmentBatch:
        """``batch_size`` segments drawn uniformly over all start frames with ``generator``."""
        r = torch.randint(self.n_starts, (batch_size,), generator=generator).numpy()
        which = np.searchsorted(self._cum, r, side="right")
        starts = r - np.r_[0, self._cum][which]  # start frame within the utterance
        return self._collate([self._segment(self.utterances[i], int(s)) for i, s in zip(which, starts, strict=True)])

    def fixed_segments(self, max_segments: int = 0) -> list[tuple[int, int]]:
        """Deterministic ``(utterance, start)`` pairs: back-to-back segments of every utterance,
        thinned evenly to ``max_segments`` (0 = all)."""
        pairs = [(i, s) for i, u in enumerate(self.utterances)
                 for s in range(0, u.pcm.shape[0] // self.hop - self.k + 1, self.k)]
        if 0 < max_segments < len(pairs):
            keep = np.unique(np.linspace(0, len(pairs) - 1, max_segments).round().astype(np.int64))
            pairs = [pairs[j] for j in keep]
        return pairs

    def fixed_batches(self, batch_size: int, max_segments: int = 0) -> Iterator[SegmentBatch]:
        """The :meth:`fixed_segments` in batches of at most ``batch_size``."""
        pairs = self.fixed_segments(max_segments)
        for b in range(0, len(pairs), batch_size):
            yield self._collate([self._segment(self.utterances[i], s) for i, s in pairs[b : b + batch_size]])


# -- synthetic corpus ----------------------------------------------------------------------
_WORDS: dict[str, tuple[str, ...]] = {
    "name": ("Anna", "Peter", "Maria", "James", "Olivia", "Thomas", "Grace", "Daniel", "Sophie", "Robert",
             "Helen", "Michael", "Laura", "David", "Emily", "George", "Alice", "Henry", "Clara", "Samuel"),
    "adj": ("old", "quiet", "bright", "small", "heavy", "yellow", "careful", "strange", "warm", "narrow",
            "busy", "gentle", "broken", "famous", "cold", "simple", "tall", "empty", "clever", "wooden"),
    "noun": ("garden", "window", "teacher", "river", "letter", "kitchen", "mountain", "bicycle", "doctor",
             "village", "station", "basket", "engine", "library", "market", "island", "camera", "bridge",
             "violin", "forest", "newspaper", "ticket", "harbour", "castle", "painting", "computer"),
    "verb": ("found", "painted", "carried", "opened", "watched", "cleaned", "followed", "repaired",
             "borrowed", "described", "remembered", "visited", "ordered", "noticed", "moved", "measured"),
    "prep": ("near", "behind", "under", "beside", "across", "inside", "beyond", "above"),
    "time": ("yesterday", "this morning", "last winter", "on Sunday", "at midnight", "every evening",
             "after lunch", "in nineteen ninety", "before the storm", "three weeks ago"),
    "place": ("Boston", "the museum", "the old town", "the coast", "London", "the airport", "Chicago",
              "the hospital", "the lake", "Edinburgh"),
    "num": ("two", "three", "seven", "twelve", "twenty", "forty five", "a hundred", "nine hundred"),
}
_TEMPLATES = (
    "The {adj} {noun} is {prep} the {noun}.",
    "{name} {verb} the {adj} {noun} {time}.",
    "Did {name} really see {num} {nouns} in {place}?",
    "We {verb} a {adj} {noun} {prep} the {noun} {time}.",
    "Please take the {noun} to {place} before {num} o'clock.",
    "{time}, {name} and {name} {verb} the {noun} {prep} {place}.",
    "Why is the {noun} so {adj} today?",
    "There were {num} {adj} {nouns} waiting {prep} the {noun}.",
    "I think the {noun} in {place} is {adj}, but the {noun} is {adj}.",
    "{name} said that the {adj} {noun} had been {verb} {time}.",
    "How many {nouns} did you count {prep} the {noun}?",
    "After the {noun} {verb} the {noun}, everyone went to {place}.",
)


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")


def synthetic_sentences(n: int, seed: int) -> list[str]:
    """``n`` varied English sentences from templates and word lists, the same for the same seed."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        parts = template.split("{")
        text = parts[0]
        for part in parts[1:]:
            key, rest = part.split("}", 1)
            words = _WORDS[key.removesuffix("s") if key == "nouns" else key]
            word = words[int(rng.integers(len(words)))]
            text += (_plural(word) if key == "nouns" else word) + rest
        out.append(text[0].upper() + text[1:])
    return out


def synthetic_corpus(
    out_dir: str | Path,
    n_utterances: int,
    seed: int = 0,
    *,
    frontend: Any = None,
    speed_range: tuple[float, float] = (0.85, 1.2),
    pitch_range: tuple[float, float] = (0.85, 1.2),
) -> list[Utterance]:
    """Render ``n_utterances`` seeded sentences with the Festival frontend into ``out_dir``.

    Each utterance ``syn_NNNNN`` is a 24 kHz 16-bit wav plus a json beside it holding the text,
    speed, pitch factor and the rendered segments (phoneme, start_s, end_s, f0_hz). Speed and
    pitch factor are drawn uniformly from their ranges. Pitch is varied by rendering the text,
    then rendering its phones again with the same durations and every voiced phone's F0 times
    the factor (``render_phonemes`` pitch targets); if that fails the text rendering is kept
    with pitch factor 1. Files whose json already records the same text, speed and pitch are
    reused.

    Args:
        out_dir: destination folder (generated data; never committed).
        n_utterances: how many sentences.
        seed: selects sentences, speeds and pitch factors.
        frontend: a ``models.frontend.FestivalFrontend`` (built here if None).
    Raises:
        ValueError: ``n_utterances < 1`` or the frontend (Festival) is not available.
    """
    from models.audio import write_wav

    if n_utterances < 1:
        raise ValueError(f"n_utterances {n_utterances} must be >= 1")
    if frontend is None:
        try:
            from models.frontend import FestivalFrontend  # type: ignore[attr-defined,unused-ignore]
        except ImportError as exc:
            raise ValueError(f"the text frontend (models.frontend) cannot be imported: {exc}") from exc
        frontend = FestivalFrontend()
        try:
            return synthetic_corpus(out_dir, n_utterances, seed, frontend=frontend, speed_range=speed_range,
                                    pitch_range=pitch_range)
        finally:
            frontend.close()
    if not frontend.available():
        raise ValueError("Festival is not available for the synthetic corpus; install it with "
                         "`make install-system` (Debian packages festival, festvox-us-slt-hts)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    speeds = rng.uniform(speed_range[0], speed_range[1], size=n_utterances)
    pitches = rng.uniform(pitch_range[0], pitch_range[1], size=n_utterances)
    items: list[Utterance] = []
    progress = Progress(f"rendering {n_utterances} sentences with Festival into {out}", n_utterances)
    for i, text in enumerate(synthetic_sentences(n_utterances, seed)):
        wav, meta = out / f"syn_{i:05d}.wav", out / f"syn_{i:05d}.json"
        record: dict[str, Any] = {"text": text, "speed": round(float(speeds[i]), 3),
                                  "pitch": round(float(pitches[i]), 3), "seed": seed}
        if not (wav.is_file() and meta.is_file() and _same_record(meta, record)):
            rendering = frontend.render_text(text, record["speed"])
            try:
                rendering = _repitch(frontend, rendering, record["pitch"])
                record["pitch_applied"] = record["pitch"]
            except (ValueError, RuntimeError, ImportError, AttributeError) as exc:  # FrontendFailed is a RuntimeError
                log.warning("pitch variation failed for %r (%s); keeping the natural pitch", text, exc)
                record["pitch_applied"] = 1.0
            write_wav(wav, float_to_pcm(np.asarray(rendering.audio, dtype=np.float32)))
            record["segments"] = [_as_dict(s) for s in rendering.segments]
            write_text_atomic(meta, json.dumps(record, indent=1))
            progress.step()
        else:
            progress.step(worked=False)
        items.append(Utterance(wav.stem, wav, text))
    return items


def _repitch(frontend: Any, rendering: Any, factor: float) -> Any:
    """Render ``rendering``'s phones again with their durations and F0 scaled by ``factor``."""
    from models.frontend.base import MAX_PITCH_HZ, MIN_PITCH_HZ, PhonemeSpec

    phones = [PhonemeSpec(s.phoneme, duration_ms=min(max((s.end_s - s.start_s) * 1000.0, 10.0), 2000.0),
                          pitch_hz=None if s.f0_hz is None else min(max(s.f0_hz * factor, MIN_PITCH_HZ), MAX_PITCH_HZ))
              for s in rendering.segments]
    return frontend.render_phonemes(phones, 1.0)


def _same_record(meta: Path, record: dict[str, Any]) -> bool:
    try:
        old = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(old, dict) and all(old.get(k) == v for k, v in record.items())


def _as_dict(segment: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(segment) and not isinstance(segment, type):
        return dataclasses.asdict(segment)
    if hasattr(segment, "_asdict"):
        return dict(segment._asdict())
    return {k: getattr(segment, k) for k in ("phoneme", "start_s", "end_s", "f0_hz")}


# -- data specs ----------------------------------------------------------------------------
def resolve_data(
    spec: str,
    feature_cfg: FeatureConfig,
    cache_dir: str | Path,
    *,
    valid_fraction: float = 0.05,
    valid_count: int = 0,
    seed: int = 0,
    skip_bad: bool = False,
) -> Path:
    """A prepared folder for a data spec, preparing (or reusing) it under ``cache_dir``.

    ``spec`` is a prepared folder (holds ``manifest.json``), a shard folder or one shard file
    (``models.shards``: the split is the packed one, the log-mels are computed from the PCM), an
    LJSpeech folder, a folder of audio, or ``synthetic:N`` (N Festival sentences, seeded by ``seed``).

    Returns:
        the prepared folder.
    """
    from models import shards  # here, not at the top: models.shards builds on this module

    cache = Path(cache_dir)
    if shards.is_shard_spec(spec):
        return shards.prepare_shards(spec, feature_cfg, cache)
    if spec.startswith("synthetic:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"data spec {spec!r}: expected synthetic:N with an integer N") from None
        base = cache / f"synthetic_{n}_seed{seed}"
        corpus = synthetic_corpus(base / "audio", n, seed)
        prepare(corpus, feature_cfg, base / "prepared", valid_fraction=valid_fraction, valid_count=valid_count,
                seed=seed, skip_bad=skip_bad)
        return base / "prepared"
    path = Path(spec)
    if (path / MANIFEST).is_file():
        return path
    corpus = open_corpus(path)  # raises for a missing folder or no audio
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]  # distinct per source path
    target = cache / f"{path.resolve().name or 'corpus'}_{digest}"
    report = prepare(corpus, feature_cfg, target, valid_fraction=valid_fraction, valid_count=valid_count,
                     seed=seed, skip_bad=skip_bad)
    log.info("prepared %s -> %s: %d train, %d valid, %d reused, %d skipped", path, target,
             report.n_train, report.n_valid, report.n_reused, len(report.skipped))
    return target

