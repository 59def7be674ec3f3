"""Festival as the text frontend: a small pool of long-lived processes rendering speech.

Text goes through Festival's full pipeline (tokens, lexicon and letter-to-sound, phrasing,
intonation) and the HTS voice ``cmu_us_slt_arctic_hts`` (32 kHz, resampled to 24 kHz).

What the HTS voice does and does not obey (Festival 2.5, hts_engine 1.07):

- It ignores Festival's segment durations and F0 targets (HTS predicts its own state
  durations and log-F0 from the context labels), so ``SegF0``/``Segments`` utterances and
  ``Duration_Stretch`` change nothing. Speaking rate is hts_engine's ``-r`` option.
- Phonemes are rendered through a ``Words`` utterance whose words carry explicit
  ``phonemes`` (Festival syllabifies them and stresses each word's first syllable), with
  phrase breaks forced where the phone list has ``pau``; HTS then gets full context labels.
  Explicit durations and pitch targets are imposed on the rendered audio by TD-PSOLA
  (:func:`~models.frontend.prosody.modify_prosody`); phones without them keep what HTS
  predicted. Festival always starts and ends an utterance with ``pau``: one is added (with
  its predicted duration) when the phone list does not start or end with one, and a run of
  consecutive ``pau`` becomes one silence of their summed duration.

Segment F0 is measured on the final audio (YIN; median over the segment's middle half).
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.audio import read_audio, resample
from models.config import SAMPLE_RATE
from models.frontend.base import (
    RADIO_PHONES,
    SILENCE,
    FrontendFailed,
    FrontendUnavailable,
    PhonemeSpec,
    Rendering,
    Segment,
    check_phonemes,
    check_speed,
    normalise_text,
)
from models.frontend.process import FestivalProcess, ProcessDied, ProcessHung, SchemeError
from models.frontend.prosody import modify_prosody, segment_f0, track_f0
from models.frontend.sentences import MAX_SENTENCE_CHARS, split_sentences

log = logging.getLogger(__name__)

DEFAULT_VOICE = "cmu_us_slt_arctic_hts"
#: Longest a process may take to start and load the voice (seconds).
_STARTUP_TIMEOUT_S = 60.0
_VOICE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_VOICE_ROOTS = ("/usr/share/festival/voices", "/usr/local/share/festival/voices", "/usr/lib/festival/voices")

# Scheme run once per process. fe_render synthesises, saves the wave and prints one
# "@@SEG name end" line per segment; fe_words forces phrase breaks from each word's fe_break.
_INIT = """
(voice_{voice})
(defvar phrase_cart_tree nil)
(defvar hts_engine_params nil)
(set! fe_hts_params hts_engine_params)
(set! fe_phrase_tree '((fe_break is B) ((B)) ((fe_break is BB) ((BB)) ((NB)))))
(define (fe_rate speed)
  (Parameter.set 'Duration_Stretch (/ 1.0 speed))
  (if fe_hts_params (set! hts_engine_params (append fe_hts_params (list (list "-r" speed))))))
(define (fe_report utt wavfile)
  (utt.save.wave utt wavfile 'riff)
  (mapcar (lambda (s) (format t "@@SEG %s %f\\n" (item.name s) (item.feat s "end")))
          (utt.relation.items utt 'Segment))
  t)
(define (fe_text text speed wavfile)
  (fe_rate speed)
  (fe_report (utt.synth (eval (list 'Utterance 'Text text))) wavfile))
(define (fe_words words speed wavfile)
  (let ((method (Parameter.get 'Phrase_Method)) (tree phrase_cart_tree) (utt nil))
    (fe_rate speed)
    (Parameter.set 'Phrase_Method 'cart_tree)
    (set! phrase_cart_tree fe_phrase_tree)
    (unwind-protect
      (set! utt (utt.synth (eval (list 'Utterance 'Words words))))
      (begin (Parameter.set 'Phrase_Method method) (set! phrase_cart_tree tree)))
    (Parameter.set 'Phrase_Method method)
    (set! phrase_cart_tree tree)
    (fe_report utt wavfile)))
(fe_text "Ready." 1.0 "warmup.wav")
"""


def scheme_string(text: str) -> str:
    """``text`` as a Scheme string literal: quotes and backslashes escaped, so no text can
    close the string and inject code (newlines and control characters become spaces)."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_segments(lines: Sequence[str]) -> list[tuple[str, float]]:
    """``(phone, end_s)`` pairs from the ``@@SEG name end`` lines Festival printed."""
    out: list[tuple[str, float]] = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "@@SEG":
            try:
                out.append((parts[1], float(parts[2])))
            except ValueError:
                log.warning("unparsable segment line from Festival: %r", line)
    return out


def festival_status(voice: str = DEFAULT_VOICE) -> tuple[bool, str]:
    """Whether the ``festival`` binary and ``voice`` are installed, and if not, why."""
    exe = shutil.which("festival")
    if exe is None:
        return False, "the `festival` program is not on PATH"
    if shutil.which("stdbuf") is None:
        return False, "`stdbuf` (GNU coreutils) is not on PATH"
    roots = [Path(exe).resolve().parent.parent / "share" / "festival" / "voices", *map(Path, _VOICE_ROOTS)]
    if any(root.is_dir() and any(root.glob(f"*/{voice}")) for root in roots):
        return True, ""
    try:  # an unusual install location: ask Festival itself (once)
        res = subprocess.run(
            [exe, "--pipe"], input=b'(format t "%l\\n" (voice.list))\n', capture_output=True, timeout=20
        )
        if voice in res.stdout.decode("utf-8", "replace").replace("(", " ").replace(")", " ").split():
            return True, ""
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"running festival failed ({err})"
    return False, f"the Festival voice {voice} is not installed"


class FestivalFrontend:
    """The :class:`~models.frontend.base.TextFrontend` backed by Festival processes.

    Processes start on first use (or :meth:`start`) and live until :meth:`close`; each
    serves one request at a time. A process that dies is restarted (and the request retried
    once); one that hangs past ``timeout_s`` is killed, the request fails with
    :class:`FrontendFailed`, and the next request starts a fresh process.

    Args:
        voice: Festival voice name (``voice_<name>`` must exist).
        pool_size: Festival processes (parallel renders).
        timeout_s: longest one render may take.
        max_sentence_chars: longest piece :meth:`split_sentences` returns.
    """

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        pool_size: int = 1,
        timeout_s: float = 30.0,
        max_sentence_chars: int = MAX_SENTENCE_CHARS,
    ) -> None:
        if not isinstance(voice, str) or not _VOICE_NAME.match(voice):
            raise ValueError(f"voice must be a Festival voice name (letters, digits, _), got {voice!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or not 1 <= pool_size <= 64:
            raise ValueError(f"pool_size must be an integer in 1..64, got {pool_size!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 3600:
            raise ValueError(f"timeout_s must be in (0, 3600] seconds, got {timeout_s!r}")
        self.voice = voice
        self.pool_size = pool_size
        self.timeout_s = float(timeout_s)
        self.max_sentence_chars = max_sentence_chars
        self._status: tuple[bool, str] | None = None
        self._status_lock = threading.Lock()
        self._workdir = Path(tempfile.mkdtemp(prefix="festival-frontend-"))
        command = ["stdbuf", "-oL", "festival", "--pipe"]
        init = _INIT.replace("{voice}", voice)
        self._procs = [FestivalProcess(command, init, self._workdir) for _ in range(pool_size)]
        self._idle: queue.Queue[FestivalProcess] = queue.Queue()
        for proc in self._procs:
            self._idle.put(proc)
        self._files = itertools.count()
        self._closed = False
        self._finalizer = weakref.finalize(self, _cleanup, list(self._procs), self._workdir)

    # -- lifecycle ----------------------------------------------------------------------
    def available(self) -> bool:
        with self._status_lock:
            if self._status is None:
                self._status = festival_status(self.voice)
                if not self._status[0]:
                    log.warning("text frontend unavailable: %s", self._status[1])
        return self._status[0] and not self._closed

    def start(self) -> None:
        """Start every process now (so the first request does not pay for it)."""
        self._require()
        for _ in range(self.pool_size):
            proc = self._idle.get()
            try:
                if not proc.alive:
                    self._start(proc)
            finally:
                self._idle.put(proc)

    def close(self) -> None:
        """Kill the processes and remove the temporary files."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> FestivalFrontend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pids(self) -> list[int]:
        """Process ids of the running Festival processes."""
        return [p.pid for p in self._procs if p.alive and p.pid is not None]

    # -- the protocol -------------------------------------------------------------------
    def phone_set(self) -> frozenset[str]:
        return RADIO_PHONES

    def split_sentences(self, text: str) -> list[str]:
        return split_sentences(text, self.max_sentence_chars)

    def render_text(self, text: str, speed: float = 1.0) -> Rendering:
        clean = normalise_text(text)
        speed = check_speed(speed)
        audio, segs = self._synth(f"fe_text {scheme_string(clean)} {speed!r}")
        return _rendering(audio, segs)

    def render_phonemes(self, phones: Sequence[PhonemeSpec], speed: float = 1.0) -> Rendering:
        specs = check_phonemes(phones, self.phone_set())
        speed = check_speed(speed)
        words, units = _phoneme_words(specs)
        audio, segs = self._synth(f"fe_words '({' '.join(words)}) {speed!r}")
        names = [name for name, _ in segs]
        expected = [u[0] for u in units]
        if names != expected:
            raise FrontendFailed(f"Festival rendered phones {names} where {expected} were expected")
        starts = [0.0] + [end for _, end in segs[:-1]]
        src = np.array([0.0] + [end for _, end in segs])
        dst_durs = [
            (dur_ms / 1000.0 / speed) if dur_ms is not None else (end - start)
            for (_, dur_ms, _), start, (_, end) in zip(units, starts, segs, strict=True)
        ]
        pitches = [pitch for _, _, pitch in units]
        if any(u[1] is not None for u in units) or any(p is not None for p in pitches):
            dst = np.concatenate([[0.0], np.cumsum(dst_durs)])
            audio = modify_prosody(audio, SAMPLE_RATE, src, dst, pitches)
            segs = [(name, float(end)) for name, end in zip(names, dst[1:], strict=True)]
        return _rendering(audio, segs)

    # -- internals ----------------------------------------------------------------------
    def _require(self) -> None:
        if self._closed:
            raise FrontendUnavailable("the Festival frontend has been closed")
        if not self.available():
            assert self._status is not None
            raise FrontendUnavailable.not_installed(self._status[1])

    def _start(self, proc: FestivalProcess) -> None:
        try:
            proc.start(max(self.timeout_s, _STARTUP_TIMEOUT_S))
        except (ProcessDied, ProcessHung, SchemeError, OSError) as err:
            proc.kill()
            raise FrontendFailed(f"starting Festival with voice {self.voice} failed: {err}") from err

    def _synth(self, call: str) -> tuple[np.ndarray, list[tuple[str, float]]]:
        """Run ``(call "<wavfile>")`` on an idle process; return 24 kHz audio and segments."""
        self._require()
        proc = self._idle.get()
        wav = self._workdir / f"utt{next(self._files)}.wav"
        try:
            lines = self._call(proc, f"({call} {scheme_string(str(wav))})")
            segs = parse_segments(lines)
            if not segs or not wav.is_file():
                raise FrontendFailed(f"Festival produced no audio (output: {lines[-3:]})")
            audio32, rate = read_audio(wav)
        finally:
            wav.unlink(missing_ok=True)
            self._idle.put(proc)
        return resample(audio32, rate, SAMPLE_RATE), segs

    def _call(self, proc: FestivalProcess, form: str) -> list[str]:
        """Evaluate ``form`` on ``proc`` (started if needed; retried once if it died)."""
        for attempt in range(2):
            if not proc.alive:
                self._start(proc)
            try:
                return proc.call(form, self.timeout_s)
            except ProcessDied as err:
                log.warning("Festival process died (%s); restarting it", err)
                if attempt == 1:
                    raise FrontendFailed(f"Festival died while rendering: {err}") from err
            except ProcessHung as err:
                raise FrontendFailed(f"{err}; it was killed and will be restarted") from err
            except SchemeError as err:
                raise FrontendFailed(f"Festival could not render this input: {err}") from err
        raise AssertionError("unreachable")


def _phoneme_words(specs: list[PhonemeSpec]) -> tuple[list[str], list[tuple[str, float | None, float | None]]]:
    """Festival ``Words`` for a phone list, and the segments Festival will return.

    Returns:
        ``(words, units)``: Scheme word forms ``(wN ((phonemes "(...)") (fe_break "B")))``,
        and one ``(phone, duration_ms, pitch_hz)`` per expected output segment (Festival's
        leading and trailing ``pau`` included; a run of ``pau`` merged).
    """
    groups = [(is_pau, list(g)) for is_pau, g in itertools.groupby(specs, key=lambda p: p.phoneme == SILENCE)]
    n_words = sum(1 for is_pau, _ in groups if not is_pau)
    words: list[str] = []
    units: list[tuple[str, float | None, float | None]] = []
    if not groups[0][0]:
        units.append((SILENCE, None, None))  # Festival's initial pause
    for is_pau, group in groups:
        if is_pau:  # groups alternate, so every word but the last is followed by a pause
            durs = [p.duration_ms for p in group]
            total = None if any(d is None for d in durs) else float(sum(d for d in durs if d is not None))
            units.append((SILENCE, total, None))
            continue
        last = len(words) + 1 == n_words
        phones = " ".join(p.phoneme for p in group)
        words.append(f'(w{len(words) + 1} ((phonemes "({phones})") (fe_break "{"BB" if last else "B"}")))')
        units.extend((p.phoneme, p.duration_ms, p.pitch_hz) for p in group)
    if not groups[-1][0]:
        units.append((SILENCE, None, None))  # Festival's final pause
    return words, units


def _rendering(audio: np.ndarray, segs: list[tuple[str, float]]) -> Rendering:
    """Rendering with segment F0 measured on ``audio`` (24 kHz)."""
    times, f0 = track_f0(audio, SAMPLE_RATE)
    out: list[Segment] = []
    start = 0.0
    for name, end in segs:
        end = max(end, start)
        out.append(Segment(name, start, end, None if name == SILENCE else segment_f0(times, f0, start, end)))
        start = end
    return Rendering(audio=np.ascontiguousarray(audio, dtype=np.float32), segments=out, sample_rate=SAMPLE_RATE)


def _cleanup(procs: list[FestivalProcess], workdir: Path) -> None:
    for proc in procs:
        proc.kill()
    shutil.rmtree(workdir, ignore_errors=True)
