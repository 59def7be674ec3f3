"""Tests for models.pcm_codec and models.shards: lossless codec, packing, size limit, checksums, training on a shard."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from models.audio import float_to_pcm, pcm_to_float, write_wav
from models.config import VoiceConfig, config_to_dict
from models.data import folder_corpus, load_prepared, prepare, resolve_data
from models.features import log_mel
from models.pcm_codec import decode_pcm, encode_pcm
from models.shards import MIB, iter_shard, pack_shards
from models.train import TrainConfig

VOICE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)
REPO = Path(__file__).resolve().parents[2]
SHARD_MB = 0.06  # about 63 KB: the tiny corpora below need several shards


def _speechlike(n: int, seed: int) -> np.ndarray:
    """A chirp with harmonics and a little noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 24000
    f0 = rng.uniform(90, 250) * (1.0 + 0.4 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 24000
    x = sum(0.4 / k * np.sin(k * phase) for k in (1, 2, 3)) + 0.005 * rng.standard_normal(n)
    return (x * np.hanning(n) ** 0.2).astype(np.float32)


def _prepared(root: Path, name: str, n_utts: int, seed: int) -> Path:
    audio = root / name / "audio"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n_utts):
        write_wav(audio / f"{name}_{i}.wav", float_to_pcm(_speechlike(int(rng.integers(4000, 9000)), seed + i)))
        (audio / f"{name}_{i}.txt").write_text(f"sentence {i} of {name}")
    out = root / name / "prepared"
    prepare(folder_corpus(audio), VOICE.features, out, valid_count=1, seed=seed)
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("corpora")
    return [_prepared(root, "alpha", 8, 0), _prepared(root, "beta", 6, 100)]


@pytest.fixture(scope="module")
def shards(sources: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "packed"
    report = pack_shards(sources, out, shard_mb=SHARD_MB, seed=3)
    assert len(report.shards) >= 3 and report.n_train == 12 and report.n_valid == 2
    return out


def _by_key(folders: list[Path]) -> dict[tuple[str, str], tuple[str, np.ndarray, str]]:
    """(source, id) -> (split, pcm, text) of the prepared folders."""
    result = {}
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        splits = {e["id"]: (e["split"], e["text"]) for e in manifest["utterances"]}
        for u in load_prepared(folder, "all"):
            result[(folder.parent.name, u.id)] = (splits[u.id][0], u.pcm, splits[u.id][1])
    return result


# -- codec ---------------------------------------------------------------------------------
def test_codec_is_lossless_and_compresses_speechlike_pcm() -> None:
    rng = np.random.default_rng(0)
    cases = [rng.integers(-32768, 32768, 5000).astype(np.int16), np.zeros(0, np.int16),
             np.array([-32768, 32767, -32768, 32767, 0, -1], np.int16), float_to_pcm(_speechlike(24000, 1))]
    for pcm in cases:
        out = decode_pcm(encode_pcm(pcm), pcm.shape[0])
        assert out.dtype == np.int16 and np.array_equal(out, pcm)
    assert len(encode_pcm(cases[-1])) < 0.8 * len(zlib.compress(cases[-1].tobytes(), 9))  # 0.69 vs 0.97 of raw
    with pytest.raises(ValueError, match="corrupt compressed PCM"):
        decode_pcm(encode_pcm(cases[-1])[:-10], 24000)
    with pytest.raises(ValueError, match="int16"):
        encode_pcm(cases[-1].astype(np.int32))


# -- packing -------------------------------------------------------------------------------
def test_round_trip_is_bit_exact_and_every_shard_mixes_all_sources(sources: list[Path], shards: Path,
                                                                   tmp_path: Path) -> None:
    original = _by_key(sources)
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["format"] == "wavernn-tts-shards" and manifest["features"] == config_to_dict(VOICE.features)
    valid_keys = [k for k, v in original.items() if v[0] == "valid"]
    seen_train: list[tuple[str, str]] = []
    for shard in manifest["shards"]:
        assert (shards / shard["file"]).stat().st_size == shard["bytes"] <= SHARD_MB * MIB
        records = list(iter_shard(shards / shard["file"]))
        keys = [(r["source"], r["id"]) for r, _ in records]
        assert keys[: len(valid_keys)] == valid_keys  # the held-out set, in source order, in every shard
        train = [r for r, _ in records if r["split"] == "train"]
        assert {r["source"] for r in train} == {"alpha", "beta"}  # every shard holds every source
        seen_train += [(r["source"], r["id"]) for r in train]
        for rec, pcm in records:
            split, expected, text = original[(rec["source"], rec["id"])]
            assert np.array_equal(pcm, expected) and rec["split"] == split and rec["text"] == text
    assert sorted(seen_train) == sorted(k for k, v in original.items() if v[0] == "train")  # each exactly once

    folder = resolve_data(str(shards), VOICE.features, tmp_path / "cache")
    utts = load_prepared(folder, "all", VOICE.features)
    assert len(utts) == len(original)
    loaded = json.loads((folder / "manifest.json").read_text())["utterances"]
    for u, entry in zip(utts, loaded, strict=True):
        split, expected, _ = original[tuple(entry["source"].split("/", 1))]  # type: ignore[index]
        assert entry["split"] == split and np.array_equal(u.pcm, expected)
        assert np.array_equal(u.mel, log_mel(pcm_to_float(u.pcm), VOICE.features))
    assert resolve_data(str(shards), VOICE.features, tmp_path / "cache") == folder  # reused

    one = resolve_data(str(shards / "shard_001.npz"), VOICE.features, tmp_path / "cache")
    assert len(load_prepared(one, "valid")) == len(valid_keys)
    assert 0 < len(load_prepared(one, "train")) < len(seen_train)


def test_packing_is_deterministic_and_sizes_are_checked(sources: list[Path], shards: Path, tmp_path: Path) -> None:
    again = pack_shards(sources, tmp_path / "again", shard_mb=SHARD_MB, seed=3)
    old = json.loads((shards / "manifest.json").read_text())["shards"]
    assert [s.sha256 for s in again.shards] == [s["sha256"] for s in old]
    assert 0.3 < again.coded_bytes / again.raw_bytes < 0.8
    with pytest.raises(ValueError, match="--shard-mb"):
        pack_shards(sources, tmp_path / "small", shard_mb=0.005)
    with pytest.raises(ValueError, match="other files"):
        pack_shards(sources, sources[0], shard_mb=SHARD_MB)
    with pytest.raises(ValueError, match="not a prepared data folder"):
        pack_shards([tmp_path], tmp_path / "x")


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered"])
def test_damaged_shard_is_a_clear_error(shards: Path, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(shards, folder)
    target = folder / "shard_001.npz"
    data = target.read_bytes()
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(data[: len(data) // 2])
    else:
        target.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    for spec in (folder, target):
        with pytest.raises(ValueError, match=r"shard_001\.npz.*pack-shards"):
            resolve_data(str(spec), VOICE.features, tmp_path / "cache")


def test_lone_altered_shard_fails_its_checksums(shards: Path, tmp_path: Path) -> None:
    """Without the folder's manifest, the zip CRCs and the per-utterance CRC-32 still catch damage."""
    data = bytearray((shards / "shard_000.npz").read_bytes())
    data[len(data) // 2] ^= 0x40
    lone = tmp_path / "lone.npz"
    lone.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"lone\.npz"):
        resolve_data(str(lone), VOICE.features, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"nothere\.npz does not exist"):
        resolve_data(str(tmp_path / "nothere.npz"), VOICE.features, tmp_path / "cache")


# -- training on a shard -------------------------------------------------------------------
def test_training_on_one_shard_without_soundfile_or_service(shards: Path, tmp_path: Path) -> None:
    """``python -m models.train --data SHARD`` as on a bare GPU machine: no soundfile, fastapi, pydantic."""
    cfg = TrainConfig(steps=3, batch_size=4, seq_frames=4, warmup_steps=1, checkpoint_every=100, validate_every=100,
                      valid_segments=4, valid_seq_frames=8, log_every=1, num_threads=1)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"voice": config_to_dict(VOICE), "train": dataclasses.asdict(cfg)}))
    code = (
        "import sys\n"
        "for m in ('soundfile', 'fastapi', 'pydantic', 'uvicorn', 'service'):\n"
        "    sys.modules[m] = None  # importing them raises ImportError\n"
        "from models.train import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["--config", str(config), "--data", str(shards / "shard_002.npz"), "--out", str(tmp_path / "run"),
            "--cache", str(tmp_path / "cache"), "--max-minutes", "0"]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stopped on time at step 1 of 3" in done.stderr
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_00000001.pt"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [0, 1]
