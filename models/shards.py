"""Data shards: prepared corpora packed into a few compressed files that travel to another machine.

A lent GPU machine gets a copy of the repository plus a few carried files (64 MiB in all), so
the training PCM (hundreds of MB) goes in *shards* of at most ``shard_mb`` MiB each, trained on
one shard per call. :func:`pack_shards` packs prepared folders (see :func:`models.data.prepare`):

- only the int16 PCM is kept, compressed losslessly by :mod:`models.pcm_codec`; the log-mel
  frames are computed again from the decoded PCM with :func:`models.features.log_mel` when a
  shard is prepared, for whatever voice trains on it (only the sample rate must match);
- every utterance keeps its id, text, split and source (the prepared folder it came from);
- the training utterances of each source are shuffled (seeded) and dealt round-robin over the
  shards, so every shard holds a share of every source; the held-out (``valid``) utterances are
  copied into every shard, in source order, so each shard validates on the same set (the one a
  run on all the prepared folders validates on);
- ``shard_NNN.npz`` holds a JSON ``header`` (format, codec, features, the utterances with a
  CRC-32 of each one's PCM) and one member per utterance; the folder's ``manifest.json``
  (format ``wavernn-tts-shards``) lists every shard with its utterances, size and SHA-256.

:func:`prepare_shards` turns a shard folder, or one shard file, into a prepared folder (what
:func:`models.data.resolve_data` does for such a data spec), checking sizes and checksums: a
missing, truncated or altered shard is a ``ValueError`` naming the file. Nothing here needs
soundfile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import atomic_path, write_text_atomic
from models.audio import pcm_to_float
from models.config import FeatureConfig, config_to_dict
from models.data import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, read_manifest
from models.features import log_mel
from models.pcm_codec import CODEC, decode_pcm, encode_pcm

log = logging.getLogger(__name__)

SHARDS_FORMAT = "wavernn-tts-shards"
SHARD_FORMAT = "wavernn-tts-shard"
SHARDS_VERSION = 1
#: Default shard size in MiB: the device's 64 MiB holds the working tree (about 22 MiB in
#: 2026-11, the tracked checkpoint included), a carried WaveRNN-384 checkpoint with its Adam state
#: (10.9 MiB) and one shard, with a few MiB to spare for the tree's growth.
DEFAULT_SHARD_MB = 28.0
MIB = 1 << 20
#: Bytes of zip and .npy headers per shard member, an upper bound (measured: under 300).
_MEMBER_OVERHEAD = 512
_REPACK = "pack them again with `wavernn-tts pack-shards`, or copy the shard folder again"


@dataclass(frozen=True)
class _Packed:
    """One utterance, compressed."""

    source: str
    id: str
    text: str
    split: str
    n_samples: int
    crc32: int
    blob: bytes

    def record(self, member: str) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "text": self.text, "split": self.split,
                "n_samples": self.n_samples, "crc32": self.crc32, "member": member}


@dataclass(frozen=True)
class ShardInfo:
    """A written shard: its file, size in bytes, SHA-256, utterance counts and seconds of audio."""

    file: str
    bytes: int
    sha256: str
    n_train: int
    n_valid: int
    seconds: float


@dataclass(frozen=True)
class PackReport:
    """What :func:`pack_shards` wrote.

    ``raw_bytes`` is the int16 PCM of every utterance once, ``coded_bytes`` its compressed size
    (so ``coded_bytes / raw_bytes`` is the codec's ratio), ``shards`` the files (whose sizes add
    the validation utterances once per shard and the headers).
    """

    out_dir: Path
    shards: list[ShardInfo]
    sources: dict[str, dict[str, int]]
    raw_bytes: int
    coded_bytes: int
    n_train: int
    n_valid: int

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (sizes in MiB)."""
        return {"out": str(self.out_dir), "shards": len(self.shards), "train": self.n_train, "valid": self.n_valid,
                "sources": self.sources, "raw_mib": round(self.raw_bytes / MIB, 2),
                "coded_mib": round(self.coded_bytes / MIB, 2),
                "codec_ratio": round(self.coded_bytes / max(self.raw_bytes, 1), 4),
                "shard_mib": [round(s.bytes / MIB, 2) for s in self.shards],
                "total_mib": round(sum(s.bytes for s in self.shards) / MIB, 2)}


# -- packing -------------------------------------------------------------------------------
def _source_label(folder: Path) -> str:
    folder = folder.resolve()
    return folder.parent.name if folder.name == "prepared" else folder.name


def _read_sources(prepared: Sequence[str | Path], log_every: int = 200
                  ) -> tuple[dict[str, Any], list[_Packed], dict[str, dict[str, int]], int]:
    """Every utterance of the prepared folders, compressed: ``(features, utterances, counts, raw bytes)``."""
    features: dict[str, Any] | None = None
    packed: list[_Packed] = []
    counts: dict[str, dict[str, int]] = {}
    raw = 0
    for folder in map(Path, prepared):
        manifest = read_manifest(folder)  # raises for anything but a prepared folder
        if features is None:
            features = manifest["features"]
        elif manifest["features"] != features:
            raise ValueError(f"{folder} was prepared with features {manifest['features']}, the first folder with "
                             f"{features}; pack folders prepared for the same voice")
        label = _source_label(folder)
        if label in counts:
            raise ValueError(f"two data folders are named {label!r}; pass each prepared folder once")
        counts[label] = {"train": 0, "valid": 0}
        for entry in manifest["utterances"]:
            path = folder / entry["file"]
            try:
                with np.load(path, allow_pickle=False) as z:
                    pcm = z["pcm"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise ValueError(f"cached file {path} is missing or corrupt ({exc}); prepare {folder} again") from exc
            if pcm.dtype != np.int16 or pcm.ndim != 1:
                raise ValueError(f"{path}: pcm is {pcm.dtype} {pcm.shape}, expected int16 (n,); prepare {folder} again")
            split = str(entry["split"])
            packed.append(_Packed(label, str(entry["id"]), str(entry.get("text", "")), split, int(pcm.shape[0]),
                                  zlib.crc32(pcm.tobytes()), encode_pcm(pcm)))
            counts[label][split] = counts[label].get(split, 0) + 1
            raw += pcm.nbytes
            if len(packed) % log_every == 0:
                log.info("compressed %d utterances", len(packed))
    if features is None or not packed:
        raise ValueError("no utterances to pack; pass prepared folders (each holds manifest.json)")
    keys = [(u.source, u.id) for u in packed]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate utterance ids within a data folder; prepare it again")
    return features, packed, counts, raw


def _header(utts: Sequence[_Packed], features: dict[str, Any], index: int, n_shards: int, seed: int) -> bytes:
    return json.dumps({"format": SHARD_FORMAT, "version": SHARDS_VERSION, "codec": CODEC, "features": features,
                       "shard": index, "n_shards": n_shards, "seed": seed,
                       "utterances": [u.record(f"u{i:05d}") for i, u in enumerate(utts)]}).encode()


def _size_bound(utts: Sequence[_Packed], features: dict[str, Any], seed: int) -> int:
    """An upper bound on a shard file's size (the real header is a few digits shorter at most)."""
    header = len(_header(utts, features, 999, 999, seed))
    return header + sum(len(u.blob) for u in utts) + _MEMBER_OVERHEAD * (len(utts) + 2)


def _deal(packed: Sequence[_Packed], features: dict[str, Any], limit: int, seed: int) -> list[list[_Packed]]:
    """Valid utterances into every shard; each source's training utterances shuffled and dealt round-robin."""
    valid = [u for u in packed if u.split == "valid"]
    rng = np.random.default_rng(seed)
    order: list[_Packed] = []
    for source in dict.fromkeys(u.source for u in packed):
        train = [u for u in packed if u.source == source and u.split == "train"]
        order += [train[i] for i in rng.permutation(len(train))]
    if not order:
        raise ValueError("the data folders hold no training utterances")
    largest = max(order, key=lambda u: len(u.blob))
    if _size_bound([*valid, largest], features, seed) > limit:
        need = math.ceil(_size_bound([*valid, largest], features, seed) / MIB)
        raise ValueError(f"a shard of {limit / MIB:g} MiB cannot hold the {len(valid)} validation utterances "
                         f"and the largest training utterance; use --shard-mb {need} or more")
    budget = limit - _size_bound(valid, features, seed)
    n = max(1, math.ceil(sum(len(u.blob) + _MEMBER_OVERHEAD for u in order) / budget))
    while True:
        shards: list[list[_Packed]] = [list(valid) for _ in range(n)]
        for j, u in enumerate(order):
            shards[j % n].append(u)
        if all(_size_bound(s, features, seed) <= limit for s in shards):
            return shards
        n += 1


def _write_shard(path: Path, utts: Sequence[_Packed], header: bytes) -> str:
    """Write one shard atomically; returns its SHA-256."""
    arrays = {"header": np.frombuffer(header, dtype=np.uint8)}
    arrays.update({f"u{i:05d}": np.frombuffer(u.blob, dtype=np.uint8) for i, u in enumerate(utts)})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _clear_out_dir(out: Path) -> None:
    """Make ``out`` ready for a pack: refuse a folder holding anything but an earlier pack."""
    out.mkdir(parents=True, exist_ok=True)
    others = [p.name for p in out.iterdir() if p.name != MANIFEST and not p.name.startswith("shard_")]
    if others or ((out / MANIFEST).exists() and _manifest_format(out) != SHARDS_FORMAT):
        raise ValueError(f"{out} holds other files ({(others or [MANIFEST])[:3]}); pack into an empty folder "
                         "or an earlier shard folder")
    (out / MANIFEST).unlink(missing_ok=True)  # written again last: a half-written pack has no manifest
    for old in out.glob("shard_*"):
        old.unlink()


def pack_shards(
    prepared: Sequence[str | Path],
    out_dir: str | Path,
    *,
    shard_mb: float = DEFAULT_SHARD_MB,
    seed: int = 0,
    on_shard: Callable[[ShardInfo], None] | None = None,
) -> PackReport:
    """Pack prepared folders into shards of at most ``shard_mb`` MiB (see the module docstring).

    Args:
        prepared: prepared folders (each holds ``manifest.json``), all with the same features.
        out_dir: the shard folder: an empty or new folder, or an earlier shard folder (replaced).
        shard_mb: the most MiB (2**20 bytes) a shard file may take.
        seed: the shuffle that deals training utterances to shards.
        on_shard: called with each shard once it is written.

    Raises:
        ValueError: not prepared folders, different features, no training utterances, a shard
            size too small for the validation utterances, or an ``out_dir`` holding other files.
    """
    if not shard_mb > 0 or not math.isfinite(shard_mb):
        raise ValueError(f"shard_mb {shard_mb} must be a positive number of MiB")
    if isinstance(prepared, (str, Path)):
        prepared = [prepared]
    if not prepared:
        raise ValueError("no data folders to pack; pass prepared folders (each holds manifest.json)")
    limit = int(shard_mb * MIB)
    features, packed, sources, raw = _read_sources(prepared)
    groups = _deal(packed, features, limit, seed)
    out = Path(out_dir)
    _clear_out_dir(out)
    rate = int(features["sample_rate"])
    infos, records = [], []
    for index, utts in enumerate(groups):
        name = f"shard_{index:03d}.npz"
        sha = _write_shard(out / name, utts, _header(utts, features, index, len(groups), seed))
        size = (out / name).stat().st_size
        if size > limit:  # _size_bound is an upper bound; this guards it
            raise ValueError(f"internal error: {name} is {size} bytes, over the {limit}-byte limit")
        n_valid = sum(u.split == "valid" for u in utts)
        info = ShardInfo(name, size, sha, len(utts) - n_valid, n_valid, sum(u.n_samples for u in utts) / rate)
        infos.append(info)
        records.append({"file": name, "bytes": size, "sha256": sha, "n_train": info.n_train,
                        "n_valid": info.n_valid, "seconds": round(info.seconds, 2),
                        "utterances": [{"id": u.id, "source": u.source, "split": u.split, "n_samples": u.n_samples}
                                       for u in utts]})
        if on_shard is not None:
            on_shard(info)
    few = [s for s, c in sources.items() if 0 < c.get("train", 0) < len(groups)]
    if few:
        log.warning("sources %s have fewer training utterances than there are shards (%d)", few, len(groups))
    manifest = {"format": SHARDS_FORMAT, "version": SHARDS_VERSION, "codec": CODEC, "features": features,
                "seed": seed, "shard_mb": shard_mb, "sources": sources, "valid": "copied into every shard",
                "shards": records}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    n_valid = sum(u.split == "valid" for u in packed)
    return PackReport(out, infos, sources, raw, sum(len(u.blob) for u in packed), len(packed) - n_valid, n_valid)


# -- reading -------------------------------------------------------------------------------
def _manifest_format(folder: Path) -> str | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return str(data.get("format")) if isinstance(data, dict) else None


def is_shard_spec(path: str | Path) -> bool:
    """True for a ``.npz`` path (a shard file, existing or not) or a folder whose manifest is a shard manifest."""
    p = Path(path)
    return p.suffix == ".npz" or (p.is_dir() and _manifest_format(p) == SHARDS_FORMAT)


def read_shards_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a shard folder, after checking its format.

    Raises:
        ValueError: no manifest, unreadable JSON, or another format or version.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{str(Path(folder))!r} is not a shard folder (no {MANIFEST}); {_REPACK}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {_REPACK}") from exc
    if not isinstance(data, dict) or data.get("format") != SHARDS_FORMAT or data.get("version") != SHARDS_VERSION:
        raise ValueError(f"{path} is not a version-{SHARDS_VERSION} {SHARDS_FORMAT} manifest; {_REPACK}")
    return data


def verify_shard(path: str | Path, size: int, sha256: str) -> None:
    """Check that a shard file exists with the size and SHA-256 its folder's manifest records.

    Raises:
        ValueError: missing, truncated or altered, naming the file and the fix.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"shard {p} is missing; {_REPACK}")
    actual = p.stat().st_size
    if actual != size:
        raise ValueError(f"shard {p} is {actual} bytes but its manifest says {size} (truncated or altered); {_REPACK}")
    if _sha256(p) != sha256:
        raise ValueError(f"shard {p} does not match the SHA-256 in its manifest (corrupt or altered); {_REPACK}")


def _check_listed(path: Path) -> str:
    """Verify a shard against the manifest beside it, if there is one; returns its SHA-256."""
    folder = path.parent
    if _manifest_format(folder) == SHARDS_FORMAT:
        listed = {s["file"]: s for s in read_shards_manifest(folder)["shards"]}
        if path.name not in listed:
            raise ValueError(f"shard {path} is not listed in {folder / MANIFEST}; {_REPACK}")
        verify_shard(path, int(listed[path.name]["bytes"]), str(listed[path.name]["sha256"]))
        return str(listed[path.name]["sha256"])
    if not path.is_file():
        raise ValueError(f"shard file {path} does not exist; check the path, or {_REPACK}")
    return _sha256(path)


def iter_shard(path: str | Path, skip: set[tuple[str, str]] | None = None
               ) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """The utterances of one shard file as ``(record, pcm)``, PCM checked against its CRC-32.

    ``record`` holds the utterance's ``id``, ``source``, ``text``, ``split``, ``n_samples``,
    ``crc32`` and ``member``, and the shard's ``features``. Utterances whose ``(source, id)`` is
    in ``skip`` are not decoded.

    Raises:
        ValueError: not a shard, an unknown codec or version, or corrupt data (naming the file).
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            try:
                header = json.loads(z["header"].tobytes().decode("utf-8"))
            except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{p} is not a {SHARD_FORMAT} file (no readable header: {exc})") from exc
            if not isinstance(header, dict) or header.get("format") != SHARD_FORMAT \
                    or header.get("version") != SHARDS_VERSION or header.get("codec") != CODEC:
                raise ValueError(f"{p} is not a version-{SHARDS_VERSION} {SHARD_FORMAT} file with codec {CODEC}; "
                                 f"{_REPACK}")
            for rec in header["utterances"]:
                if skip is not None and (rec["source"], rec["id"]) in skip:
                    continue
                pcm = decode_pcm(z[rec["member"]].tobytes(), int(rec["n_samples"]))
                if zlib.crc32(pcm.tobytes()) != rec["crc32"]:
                    raise ValueError(f"utterance {rec['id']!r} does not match its CRC-32")
                yield {**rec, "features": header["features"]}, pcm
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        if isinstance(exc, ValueError) and str(p) in str(exc):
            raise
        raise ValueError(f"shard {p} is unreadable or corrupt ({type(exc).__name__}: {exc}); {_REPACK}") from exc


def shard_files(spec: str | Path) -> list[tuple[Path, str]]:
    """``(file, SHA-256)`` of every shard of a spec (a shard folder or one shard file), all verified.

    Raises:
        ValueError: a missing, truncated or altered shard, or a bad manifest (naming the file).
    """
    p = Path(spec)
    if p.is_dir():
        manifest = read_shards_manifest(p)
        for s in manifest["shards"]:
            verify_shard(p / s["file"], int(s["bytes"]), str(s["sha256"]))
        return [(p / s["file"], str(s["sha256"])) for s in manifest["shards"]]
    return [(p, _check_listed(p))]


def prepare_shards(spec: str | Path, feature_cfg: FeatureConfig, cache_dir: str | Path) -> Path:
    """A prepared folder (see :func:`models.data.prepare`) holding the utterances of a shard spec.

    Every utterance appears once (the validation utterances copied into each shard are decoded
    once), with the split it was packed with; its log-mel frames are ``log_mel(pcm_to_float(pcm))``
    with ``feature_cfg``. The folder is ``cache_dir/<name>_<checksum>``, reused when its shards
    and features are unchanged.

    Raises:
        ValueError: a missing or corrupt shard, or PCM at another sample rate than ``feature_cfg``.
    """
    files = shard_files(spec)
    features = config_to_dict(feature_cfg)
    origin = [{"file": f.name, "sha256": sha} for f, sha in files]
    digest = hashlib.sha1(json.dumps(origin).encode()).hexdigest()[:10]
    target = Path(cache_dir) / f"{Path(spec).stem or 'shards'}_{digest}"
    if (target / MANIFEST).is_file():
        try:
            old = read_manifest(target)
            if old.get("features") == features and old.get("from_shards") == origin \
                    and all((target / e["file"]).is_file() for e in old["utterances"]):
                log.info("reusing %s for %s", target, spec)
                return target
        except ValueError:
            pass
        shutil.rmtree(target)
    (target / "utt").mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for path, _ in files:
        for rec, pcm in iter_shard(path, skip=seen):
            if rec["features"]["sample_rate"] != feature_cfg.sample_rate:
                raise ValueError(f"shard {path} holds {rec['features']['sample_rate']} Hz PCM but the voice uses "
                                 f"{feature_cfg.sample_rate} Hz; pack data prepared for this voice")
            seen.add((rec["source"], rec["id"]))
            mel = log_mel(pcm_to_float(pcm), feature_cfg)  # (T, n_mels)
            key = f"{rec['source']}/{rec['id']}"
            name = f"utt/{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"  # stable per utterance
            with atomic_path(target / name) as tmp, open(tmp, "wb") as f:
                np.savez(f, pcm=pcm, mel=mel)
            entries.append({"id": rec["id"], "text": rec["text"], "split": rec["split"], "file": name,
                            "source": key, "shard": path.name,
                            "n_samples": int(pcm.shape[0]), "n_frames": int(mel.shape[0])})
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "features": features,
                "split": {"from": "shards"}, "from_shards": origin, "utterances": entries, "skipped": []}
    write_text_atomic(target / MANIFEST, json.dumps(manifest, indent=1))
    n_valid = sum(e["split"] == "valid" for e in entries)
    log.info("prepared %s -> %s: %d train, %d valid", spec, target, len(entries) - n_valid, n_valid)
    return target
