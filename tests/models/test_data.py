"""Tests for models.data: corpora, preparation cache and split, teacher-forcing segments."""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from models.audio import float_to_pcm, join_pcm, write_wav
from models.config import VoiceConfig, WaveRNNConfig
from models.data import (
    Progress,
    SegmentDataset,
    UtteranceData,
    _file_sha1,
    folder_corpus,
    ljspeech_corpus,
    load_prepared,
    open_corpus,
    prepare,
    read_manifest,
    resolve_data,
    segment_conditioning,
    split_indices,
    synthetic_corpus,
    synthetic_sentences,
)
from models.features import log_mel
from models.wavernn import WaveRNN

VOICE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)


def _chirp(n: int, rate: int = 24000, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / rate
    f = 150.0 + 300.0 * t + 40.0 * seed
    x = 0.4 * np.sin(2 * np.pi * np.cumsum(f) / rate) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    return x.astype(np.float32)


def _utterance(n: int, seed: int = 0, uid: str = "u") -> UtteranceData:
    x = _chirp(n, seed=seed)
    return UtteranceData(uid, float_to_pcm(x), log_mel(x, VOICE.features))


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    write_wav(root / "spk1" / "a.wav", float_to_pcm(_chirp(4000, seed=1)))
    (root / "spk1" / "a.txt").write_text("hello there\n")
    sf.write(root / "b.flac", _chirp(3000, rate=16000, seed=2), 16000, subtype="PCM_16")  # 16 kHz input
    write_wav(root / "c.wav", float_to_pcm(_chirp(5000, seed=3)))
    return root


# -- corpora -------------------------------------------------------------------------------
def test_folder_corpus_lists_audio_recursively_with_text(audio_dir: Path) -> None:
    corpus = folder_corpus(audio_dir)
    assert [u.id for u in corpus] == ["b", "c", "spk1/a"]
    assert corpus[2].text == "hello there" and corpus[0].text == ""
    assert open_corpus(audio_dir) == corpus


def test_missing_and_empty_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        folder_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no"):
        folder_corpus(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"metadata\.csv"):
        ljspeech_corpus(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty"):
        prepare([], VOICE.features, tmp_path / "out")


def test_ljspeech_corpus_and_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "LJ"
    (root / "wavs").mkdir(parents=True)
    write_wav(root / "wavs" / "LJ001-0001.wav", float_to_pcm(_chirp(3000)))
    (root / "metadata.csv").write_text("LJ001-0001|Dr. Smith|Doctor Smith\nLJ001-0002|Mr. X|\n")
    corpus = open_corpus(root)
    assert [(u.id, u.text) for u in corpus] == [("LJ001-0001", "Doctor Smith"), ("LJ001-0002", "Mr. X")]
    with pytest.raises(ValueError, match=r"LJ001-0002\.wav"):
        prepare(corpus, VOICE.features, tmp_path / "out")
    report = prepare(corpus, VOICE.features, tmp_path / "out", skip_bad=True)
    assert report.n_train + report.n_valid == 1 and len(report.skipped) == 1
    (root / "metadata.csv").write_text("just one field\n")
    with pytest.raises(ValueError, match=r"metadata\.csv:1"):
        ljspeech_corpus(root)


def test_corrupt_file_is_named_or_skipped_and_counted(audio_dir: Path, tmp_path: Path) -> None:
    (audio_dir / "broken.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    corpus = folder_corpus(audio_dir)
    with pytest.raises(ValueError, match=r"broken\.wav"):
        prepare(corpus, VOICE.features, tmp_path / "out")
    report = prepare(corpus, VOICE.features, tmp_path / "out", skip_bad=True, valid_count=1)
    assert (report.n_train, report.n_valid, len(report.skipped)) == (2, 1, 1)
    assert "broken.wav" in report.skipped[0][0]
    assert read_manifest(tmp_path / "out")["skipped"][0]["path"].endswith("broken.wav")


# -- preparation ---------------------------------------------------------------------------
def test_prepare_caches_pcm_and_mel_at_24k_and_reuses(audio_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    report = prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1, seed=3)
    assert (report.n_train, report.n_valid, report.n_reused) == (2, 1, 0)
    utts = {u.id: u for u in load_prepared(out, "all")}
    assert utts["b"].pcm.shape == (math.ceil(3000 * 24000 / 16000),) and utts["b"].pcm.dtype == np.int16
    for u in utts.values():
        assert u.mel.shape == (VOICE.features.n_frames(u.pcm.shape[0]), 8) and u.mel.dtype == np.float32
    assert len(load_prepared(out, "train")) == 2 and len(load_prepared(out, "valid")) == 1
    again = prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1, seed=3)
    assert again.n_reused == 3
    # an entry cached without a content hash (older manifests) gains one when reused by its time
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["utterances"]:
        del entry["sha1"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1, seed=3).n_reused == 3
    assert all("sha1" in e for e in read_manifest(out)["utterances"])
    # a corpus copied again (new mtimes, same bytes) is still reused; new bytes of the same size are not
    for i, path in enumerate(sorted(audio_dir.rglob("*.*"))):
        os.utime(path, ns=(10**18 + i, 10**18 + i))
    assert prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1, seed=3).n_reused == 3
    assert prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1, seed=3).n_reused == 3
    changed = audio_dir / "c.wav"
    data = bytearray(changed.read_bytes())
    data[-2:] = bytes([data[-2] ^ 0x55, data[-1] ^ 0x55])  # the last sample, same size
    changed.write_bytes(bytes(data))
    os.utime(changed, ns=(10**18, 10**18))  # even with the old time back
    assert prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1, seed=3).n_reused == 2
    with pytest.raises(ValueError, match="cannot read audio file"):  # unreadable: named, not an OSError
        _file_sha1(audio_dir / "spk1")
    assert read_manifest(out)["utterances"] == json.loads((out / "manifest.json").read_text())["utterances"]
    other = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=20)
    with pytest.raises(ValueError, match="prepare the data again"):
        load_prepared(out, "train", other.features)
    first = read_manifest(out)["utterances"][0]["file"]
    (out / first).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=first):
        load_prepared(out, "all")


def test_split_is_deterministic_and_keeps_training_data() -> None:
    a, b = split_indices(100, seed=7, valid_fraction=0.1), split_indices(100, seed=7, valid_fraction=0.1)
    assert np.array_equal(a, b) and a.sum() == 10
    assert not np.array_equal(a, split_indices(100, seed=8, valid_fraction=0.1))
    assert split_indices(5, seed=0, valid_count=2).sum() == 2
    assert split_indices(1, seed=0, valid_count=3).sum() == 0


def test_resolve_data_specs(audio_dir: Path, tmp_path: Path) -> None:
    prepared = resolve_data(str(audio_dir), VOICE.features, tmp_path / "cache", valid_count=1)
    assert (prepared / "manifest.json").is_file()
    assert resolve_data(str(prepared), VOICE.features, tmp_path / "cache") == prepared
    with pytest.raises(ValueError, match="synthetic:N"):
        resolve_data("synthetic:many", VOICE.features, tmp_path / "cache")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_data(str(tmp_path / "missing"), VOICE.features, tmp_path / "cache")


# -- segments ------------------------------------------------------------------------------
@pytest.mark.parametrize("cond_layers", [1, 2, 3])
def test_segment_conditioning_equals_whole_utterance(cond_layers: int) -> None:
    cfg = WaveRNNConfig(hidden_size=16, n_mels=8, hop_length=30, cond_channels=12, cond_layers=cond_layers)
    torch.manual_seed(0)
    model = WaveRNN(cfg).eval()
    utt = _utterance(30 * 20 + 7)  # 20 full frames, 21 mel frames
    k = 4
    data = SegmentDataset([utt], cfg, seq_frames=k)
    with torch.no_grad():
        whole = model.conditioning(torch.from_numpy(utt.mel).unsqueeze(0))[0]  # (T * hop, C)
        for s in range(utt.pcm.shape[0] // 30 - k + 1):  # every start, borders included
            batch = data.segment(0, s)
            seg = segment_conditioning(model, batch.mel, batch.offset, k)[0]  # (k * hop, C)
            torch.testing.assert_close(seg, whole[s * 30 : (s + k) * 30], rtol=1e-5, atol=1e-6)


def test_batches_are_reproducible_and_targets_match_audio() -> None:
    utts = [_utterance(3000, seed=i, uid=f"u{i}") for i in range(3)]
    data = SegmentDataset(utts, VOICE.model, seq_frames=5)
    a = data.sample(16, torch.Generator().manual_seed(5))
    b = data.sample(16, torch.Generator().manual_seed(5))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("mel", "offset", "coarse", "fine", "prev_coarse"))
    assert a.mel.shape == (16, 5 + 1 + 2 * 2, 8) and a.coarse.shape == (16, 150)
    # every sampled segment is a real stretch of some utterance, with its previous sample
    pcm = join_pcm(a.coarse, a.fine).numpy()
    prev = join_pcm(a.prev_coarse, a.prev_fine).numpy()
    for row, p in zip(pcm, prev, strict=True):
        hits = [(u, s) for u in utts for s in range(0, 3000 // 30 - 5 + 1)
                if np.array_equal(u.pcm[s * 30 : s * 30 + 150], row)]
        assert hits
        u, s = hits[0]
        assert p == (u.pcm[s * 30 - 1] if s > 0 else 0)
    first = data.segment(0, 0)
    assert (int(first.prev_coarse), int(first.prev_fine)) == (128, 0)  # silence


def test_short_utterances_are_left_out() -> None:
    short, long = _utterance(200, uid="short"), _utterance(3000, uid="long")
    data = SegmentDataset([short, long], VOICE.model, seq_frames=8)
    assert len(data) == 1 and data.n_too_short == 1
    with pytest.raises(ValueError, match="shorter seq_frames"):
        SegmentDataset([short], VOICE.model, seq_frames=8)
    segments = data.fixed_segments()
    assert segments == [(0, s) for s in range(0, 100 - 8 + 1, 8)]
    assert len(data.fixed_segments(3)) == 3
    mean, std = data.mel_stats()
    assert mean.shape == (8,) and bool((std >= 0.5).all())


# -- synthetic -----------------------------------------------------------------------------
def test_synthetic_sentences_are_seeded_and_varied() -> None:
    a = synthetic_sentences(2000, seed=1)
    assert a == synthetic_sentences(2000, seed=1) and a != synthetic_sentences(2000, seed=2)
    assert len(set(a)) > 1900 and all(s[0].isupper() and s[-1] in ".?" for s in a)


class _FakeFrontend:
    """Stands in for FestivalFrontend: a tone per phone, f0 from the pitch targets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def available(self) -> bool:
        return True

    def _render(self, phones: list[tuple[str, float, float | None]]) -> SimpleNamespace:
        segs, audio, t = [], [], 0.0
        for name, dur, f0 in phones:
            n = int(dur * 24000)
            audio.append(0.3 * np.sin(2 * np.pi * (f0 or 0.0) * np.arange(n) / 24000))
            segs.append(SimpleNamespace(phoneme=name, start_s=t, end_s=t + n / 24000, f0_hz=f0))
            t += n / 24000
        return SimpleNamespace(audio=np.concatenate(audio).astype(np.float32), segments=segs)

    def render_text(self, text: str, speed: float = 1.0) -> SimpleNamespace:
        self.calls.append("text")
        return self._render([("pau", 0.05 / speed, None), ("ah", 0.2 / speed, 120.0), ("pau", 0.05 / speed, None)])

    def render_phonemes(self, phones: list, speed: float = 1.0) -> SimpleNamespace:
        self.calls.append("phonemes")
        return self._render([(p.phoneme, p.duration_ms / 1000 / speed, p.pitch_hz) for p in phones])


def test_synthetic_corpus_varies_speed_and_pitch_and_reuses(tmp_path: Path) -> None:
    fe = _FakeFrontend()
    corpus = synthetic_corpus(tmp_path / "syn", 3, seed=4, frontend=fe)
    assert fe.calls == ["text", "phonemes"] * 3
    metas = [json.loads(u.path.with_suffix(".json").read_text()) for u in corpus]
    assert len({m["speed"] for m in metas}) == 3 and all(0.85 <= m["pitch"] <= 1.2 for m in metas)
    for m in metas:
        assert m["segments"][1]["f0_hz"] == pytest.approx(120.0 * m["pitch_applied"])
    assert [u.text for u in corpus] == synthetic_sentences(3, seed=4)
    synthetic_corpus(tmp_path / "syn", 3, seed=4, frontend=fe)
    assert len(fe.calls) == 6  # cached: nothing rendered again


def test_prepare_reports_progress(audio_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="models.data")
    prepare(folder_corpus(audio_dir), VOICE.features, tmp_path / "prep", valid_count=1, seed=3)
    counts = [r.getMessage().split(": ")[1].split(" ")[0] for r in caplog.records
              if r.getMessage().startswith(f"preparing {tmp_path / 'prep'}")]
    assert counts == ["1/3", "2/3", "3/3"]


def test_synthetic_corpus_reports_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="models.data")
    synthetic_corpus(tmp_path / "syn", 20, seed=1, frontend=_FakeFrontend())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rendering 20 sentences")]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == [f"{i}/20" for i in range(2, 21, 2)]
    assert "left)" in lines[0]
    caplog.clear()
    synthetic_corpus(tmp_path / "syn", 20, seed=1, frontend=_FakeFrontend())
    assert any("20/20 (all reused so far)" in r.getMessage() for r in caplog.records)


def test_progress_rate_and_time_left_count_only_work_done(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="models.data")
    now = [0.0]
    progress = Progress("job", 8, clock=lambda: now[0], reports=4)
    for i in range(8):
        now[0] += 0.0 if i < 2 else 0.5  # two reused items cost nothing, six each take 0.5 s
        progress.step(worked=i >= 2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["job: 2/8 (all reused so far)", "job: 4/8 (2.0/s, about 2 s left)",
                        "job: 6/8 (2.0/s, about 1 s left)", "job: 8/8 (2.0/s, about 0 s left)"]
    with pytest.raises(ValueError, match="reports >= 1"):
        Progress("job", 8, reports=0)


def test_synthetic_corpus_renders_with_festival(tmp_path: Path) -> None:
    frontend_module = pytest.importorskip("models.frontend")
    if not hasattr(frontend_module, "FestivalFrontend"):
        pytest.skip("models.frontend does not provide FestivalFrontend")
    fe = frontend_module.FestivalFrontend()
    if not fe.available():
        pytest.skip("Festival is not installed")
    corpus = synthetic_corpus(tmp_path / "syn", 2, seed=0, frontend=fe)
    assert len(corpus) == 2
    for u in corpus:
        meta = json.loads(u.path.with_suffix(".json").read_text())
        assert meta["text"] == u.text and 0.85 <= meta["speed"] <= 1.2 and meta["segments"]
        assert sf.info(str(u.path)).samplerate == 24000
    assert folder_corpus(tmp_path / "syn")[0].text == corpus[0].text


def test_concurrent_preparations_of_one_cache_agree(audio_dir: Path, tmp_path: Path) -> None:
    # Two trainings started side by side on one --cache prepare it at the same time.
    out = tmp_path / "out"
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: prepare(folder_corpus(audio_dir), VOICE.features, out, valid_count=1),
                                range(4)))
    assert all(r.n_train == 2 and r.n_valid == 1 for r in reports)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["utterances"]) == 3
    assert not [p for p in out.rglob("*.tmp")]
