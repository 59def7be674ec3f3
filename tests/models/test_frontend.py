"""The text frontend: sentence splitting, input checks, prosody DSP, and Festival rendering.

The Festival tests are skipped where ``festival`` or the ``cmu_us_slt_arctic_hts`` voice is
missing (``apt-get install festival festvox-us-slt-hts``); they share one process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from models.config import FeatureConfig
from models.frontend import (
    MAX_TEXT_CHARS,
    RADIO_PHONES,
    FestivalFrontend,
    FrontendFailed,
    FrontendUnavailable,
    PhonemeSpec,
    Rendering,
    Segment,
    features_for,
    split_sentences,
)
from models.frontend import festival as festival_mod
from models.frontend.base import check_phonemes, normalise_text
from models.frontend.festival import _phoneme_words, parse_segments, scheme_string
from models.frontend.prosody import modify_prosody, segment_f0, track_f0

SR = 24_000
HAVE_FESTIVAL = FestivalFrontend().available()
needs_festival = pytest.mark.skipif(
    not HAVE_FESTIVAL,
    reason="festival / cmu_us_slt_arctic_hts not installed (apt-get install festival festvox-us-slt-hts)",
)


# -- sentences (pure) -----------------------------------------------------------------------
def test_split_sentences_on_punctuation_and_newlines():
    text = "Hello there. How are you?  Great!\nNext line; last part.\n\n  \n"
    assert split_sentences(text) == ["Hello there.", "How are you?", "Great!", "Next line;", "last part."]


def test_split_sentences_keeps_abbreviations_initials_and_decimals():
    text = 'Dr. Smith met Mr. Jones, e.g. at 3.30 p.m. today. J. R. Tolkien said "go." It ended.'
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones, e.g. at 3.30 p.m. today.",
        'J. R. Tolkien said "go."',
        "It ended.",
    ]


def test_split_sentences_drops_empty_and_punctuation_only_parts():
    assert split_sentences("") == []
    assert split_sentences("  ... !! \n ;; \n") == []
    assert split_sentences("One. ... Two.") == ["One.", "Two."]


def test_split_sentences_caps_length_at_commas_then_spaces_then_hard():
    commas = split_sentences("alpha beta, " * 10 + "end.", max_chars=40)
    assert all(len(s) <= 40 for s in commas) and all(s.endswith(",") for s in commas[:-1])
    spaces = split_sentences("word " * 30, max_chars=40)
    assert all(len(s) <= 40 for s in spaces) and " ".join(spaces).split() == ["word"] * 30
    hard = split_sentences("x" * 100, max_chars=40)
    assert [len(s) for s in hard] == [40, 40, 20]
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("hi", max_chars=5)


def test_frontend_split_sentences_works_without_festival():
    fe = FestivalFrontend(max_sentence_chars=60)
    assert fe.split_sentences("A first sentence. And a second one!") == ["A first sentence.", "And a second one!"]


# -- input checks (pure) --------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "\n\t", "?!...", "\u4f60\u597d"])
def test_empty_text_is_refused(text):
    with pytest.raises(ValueError, match="nothing to speak"):
        FestivalFrontend().render_text(text)


def test_text_over_the_limit_is_refused():
    with pytest.raises(ValueError, match=str(MAX_TEXT_CHARS)):
        FestivalFrontend().render_text("word " * 500)


def test_text_normalisation_folds_typography():
    assert normalise_text("Caf\u00e9 \u201cna\u00efve\u201d \u2014 it\u2019s\n\tok") == 'Cafe "naive" , it\'s ok'


@pytest.mark.parametrize("speed", [0.2, 4.5, 0.0, -1.0, float("nan"), True, "fast"])
def test_speed_out_of_bounds_is_refused(speed):
    fe = FestivalFrontend()
    with pytest.raises(ValueError, match="speed"):
        fe.render_text("Hello.", speed=speed)
    with pytest.raises(ValueError, match="speed"):
        fe.render_phonemes([PhonemeSpec("aa")], speed=speed)


def test_unknown_phone_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown phone 'xx' at position 1; valid phones: aa ae"):
        FestivalFrontend().render_phonemes([PhonemeSpec("hh"), PhonemeSpec("xx")])


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (PhonemeSpec("aa", duration_ms=5.0), "duration_ms of phone 0"),
        (PhonemeSpec("aa", duration_ms=2500.0), "outside 10..2000 ms"),
        (PhonemeSpec("aa", pitch_hz=40.0), "pitch_hz of phone 0"),
        (PhonemeSpec("aa", pitch_hz=600.0), "outside 50..500 Hz"),
        (PhonemeSpec("aa", pitch_hz=float("inf")), "must be a number"),
    ],
)
def test_phone_duration_and_pitch_bounds(spec, match):
    with pytest.raises(ValueError, match=match):
        FestivalFrontend().render_phonemes([spec])


def test_phone_list_shape_errors():
    with pytest.raises(ValueError, match="empty"):
        check_phonemes([], RADIO_PHONES)
    with pytest.raises(ValueError, match="all silence"):
        check_phonemes([PhonemeSpec("pau")], RADIO_PHONES)
    with pytest.raises(ValueError, match="PhonemeSpec"):
        check_phonemes(["aa"], RADIO_PHONES)  # type: ignore[list-item]
    assert check_phonemes([PhonemeSpec(" AA ")], RADIO_PHONES) == [PhonemeSpec("aa")]


def test_scheme_strings_cannot_be_closed_from_inside():
    assert scheme_string('say ")(system "rm') == '"say \\")(system \\"rm"'
    assert scheme_string("back\\slash\nnew") == '"back\\\\slash new"'


def test_phoneme_words_map_phones_to_festival_segments():
    specs = [PhonemeSpec("hh", 80.0), PhonemeSpec("ay"), PhonemeSpec("pau", 50.0), PhonemeSpec("pau", 30.0),
             PhonemeSpec("y", None, 200.0), PhonemeSpec("uw")]
    words, units = _phoneme_words(specs)
    assert words == ['(w1 ((phonemes "(hh ay)") (fe_break "B")))', '(w2 ((phonemes "(y uw)") (fe_break "BB")))']
    assert units == [("pau", None, None), ("hh", 80.0, None), ("ay", None, None), ("pau", 80.0, None),
                     ("y", None, 200.0), ("uw", None, None), ("pau", None, None)]
    _, framed = _phoneme_words([PhonemeSpec("pau", 100.0), PhonemeSpec("aa"), PhonemeSpec("pau")])
    assert framed == [("pau", 100.0, None), ("aa", None, None), ("pau", None, None)]


def test_parse_segments_skips_noise():
    lines = ["iserted final pause pau", "@@SEG pau 0.165000", "@@SEG hh 0.2550", "@@SEG bad x", "junk"]
    assert parse_segments(lines) == [("pau", 0.165), ("hh", 0.255)]


def test_missing_festival_makes_the_frontend_unavailable(monkeypatch):
    monkeypatch.setattr(festival_mod.shutil, "which", lambda name: None)
    fe = FestivalFrontend()
    assert fe.available() is False
    with pytest.raises(FrontendUnavailable, match="apt-get install festival festvox-us-slt-hts"):
        fe.render_text("Hello.")
    with pytest.raises(FrontendUnavailable):
        fe.render_phonemes([PhonemeSpec("aa")])
    assert fe.pids() == []


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="voice"):
        FestivalFrontend(voice="x) (system")
    with pytest.raises(ValueError, match="pool_size"):
        FestivalFrontend(pool_size=0)


def test_features_for_shape():
    cfg = FeatureConfig()
    audio = (0.1 * np.sin(np.arange(SR // 2) * 0.05)).astype(np.float32)
    feats = features_for(Rendering(audio, [Segment("aa", 0.0, 0.5, None)]), cfg)
    assert feats.shape == (cfg.n_frames(audio.shape[0]), cfg.n_mels) and feats.dtype == np.float32


# -- prosody DSP (pure) ---------------------------------------------------------------------
def _buzz(f0_hz, seconds: float) -> np.ndarray:
    """A vowel-like pulse train through one resonance, F0 given per sample by f0_hz(t)."""
    t = np.arange(int(seconds * SR)) / SR
    pulses = np.diff(np.floor(np.cumsum(f0_hz(t)) / SR), prepend=0.0)
    return (0.1 * lfilter([1.0], [1.0, -1.3, 0.8], pulses)).astype(np.float32)


def test_track_f0_follows_a_glide_and_finds_silence():
    x = np.concatenate([_buzz(lambda t: 120 + 60 * t, 1.0), np.zeros(SR // 4, np.float32)])
    times, f0 = track_f0(x, SR)
    assert times.shape == f0.shape == (x.shape[0] // 120 + 1,)
    expected = 120 + 60 * times[20:180]
    assert np.nanmax(np.abs(f0[20:180] - expected) / expected) < 0.03
    assert np.isnan(f0[-40:]).all()
    assert segment_f0(times, f0, 0.4, 0.6) == pytest.approx(150.0, rel=0.03)
    assert segment_f0(times, f0, 1.05, 1.2) is None


def test_modify_prosody_identity_retime_and_repitch():
    x = _buzz(lambda t: 150 + 0 * t, 1.0)
    same = modify_prosody(x, SR, [0.0, 1.0], [0.0, 1.0])
    assert np.sqrt(np.mean((same - x)[600:-600] ** 2)) < 0.01 * np.sqrt(np.mean(x**2))
    y = modify_prosody(x, SR, [0.0, 0.5, 1.0], [0.0, 0.8, 1.1], [200.0, None])
    assert y.shape == (int(1.1 * SR),)
    times, f0 = track_f0(y, SR)
    assert segment_f0(times, f0, 0.0, 0.8) == pytest.approx(200.0, rel=0.05)
    assert segment_f0(times, f0, 0.95, 1.1) == pytest.approx(150.0, rel=0.05)
    with pytest.raises(ValueError, match="increase"):
        modify_prosody(x, SR, [0.0, 1.0], [0.5, 0.2])


# -- Festival ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fe():
    frontend = FestivalFrontend(timeout_s=30.0)
    frontend.start()
    yield frontend
    frontend.close()


def _check_segments(r: Rendering) -> None:
    assert r.segments and r.segments[0].start_s == 0.0
    for a, b in zip(r.segments, r.segments[1:], strict=False):
        assert a.start_s <= a.end_s == b.start_s <= b.end_s
    assert abs(r.segments[-1].end_s - r.duration_s) < 0.05
    assert all(p.phoneme in RADIO_PHONES for p in r.segments)


@needs_festival
def test_render_text_gives_24khz_speech_with_segments(fe):
    r = fe.render_text("Hello world, this is a test.")
    assert r.sample_rate == SR and r.audio.dtype == np.float32 and r.audio.ndim == 1
    assert 0.05 < float(np.abs(r.audio).max()) <= 1.0 and np.sqrt(np.mean(r.audio**2)) > 0.01
    _check_segments(r)
    assert [s.phoneme for s in r.segments[:5]] == ["pau", "hh", "ax", "l", "ow"]
    voiced = [s.f0_hz for s in r.segments if s.f0_hz is not None]
    assert len(voiced) >= 5 and all(100 < f < 400 for f in voiced)  # slt is a female voice
    feats = features_for(r, FeatureConfig())
    assert feats.shape == (FeatureConfig().n_frames(r.audio.shape[0]), 80)


@needs_festival
def test_speed_changes_duration(fe):
    normal = fe.render_text("The quick brown fox jumps over the lazy dog.")
    fast = fe.render_text("The quick brown fox jumps over the lazy dog.", speed=2.0)
    _check_segments(fast)
    assert fast.duration_s < 0.65 * normal.duration_s


@needs_festival
def test_phonemes_get_their_durations_and_pitch(fe):
    specs = [PhonemeSpec("hh", 70.0), PhonemeSpec("aa", 220.0, 150.0), PhonemeSpec("l", 60.0),
             PhonemeSpec("ow", 240.0, 240.0), PhonemeSpec("pau", 120.0), PhonemeSpec("m"), PhonemeSpec("iy")]
    r = fe.render_phonemes(specs)
    _check_segments(r)
    assert [s.phoneme for s in r.segments] == ["pau", "hh", "aa", "l", "ow", "pau", "m", "iy", "pau"]
    for seg, want_ms in zip(r.segments[1:6], [70.0, 220.0, 60.0, 240.0, 120.0], strict=True):
        assert abs(seg.duration_s * 1000 - want_ms) < 5.0, (seg, want_ms)
    assert r.segments[2].f0_hz == pytest.approx(150.0, rel=0.1)
    assert r.segments[4].f0_hz == pytest.approx(240.0, rel=0.1)
    half = fe.render_phonemes(specs, speed=2.0)
    assert abs(half.segments[2].duration_s - 0.110) < 0.005


@needs_festival
def test_scheme_injection_is_spoken_not_run(fe, tmp_path: Path):
    target = tmp_path / "pwned"
    r = fe.render_text(f'Say ")(system "touch {target}")(" and \\ then stop.')
    assert not target.exists()
    _check_segments(r)
    assert len(r.segments) > 10


@needs_festival
def test_process_is_reused_and_restarted_after_a_kill(fe):
    fe.render_text("One.")
    (pid,) = fe.pids()
    fe.render_text("Two.")
    assert fe.pids() == [pid]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    r = fe.render_text("Three.")
    (new_pid,) = fe.pids()
    assert new_pid != pid and r.duration_s > 0.2


@needs_festival
def test_hung_process_is_killed_with_a_clear_error():
    with FestivalFrontend(timeout_s=2.0) as short:
        short.start()
        (pid,) = short.pids()
        proc = short._procs[0]
        started = time.monotonic()
        with pytest.raises(FrontendFailed, match="did not answer within 2 s"):
            short._call(proc, "(while t nil)")
        assert time.monotonic() - started < 10 and short.pids() == []
        assert short.render_text("Back again.").duration_s > 0.3
        assert short.pids() != [pid]
