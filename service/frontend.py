"""The text frontend as the service uses it: Festival started once, rendering off the event loop.

:class:`TextFrontend` wraps ``models.frontend`` (imported lazily: the service runs without
it). At startup :meth:`TextFrontend.start` creates the long-lived Festival process(es) if the
frontend is installed and available; otherwise the text endpoints answer 503 with a message
naming the Debian packages, while ``/v1/vocode`` keeps working.

Rendering is blocking, so every call runs in this frontend's own thread pool. Text is split
into sentences and yields one feature chunk (T_k, n_mels) per sentence, so the engine can
vocode the first sentence while the next ones are being rendered.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from models.config import FeatureConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

PACKAGES = "festival festvox-us-slt-hts"
INSTALL_HINT = (
    f"install the Debian packages `{PACKAGES}` (apt-get install {PACKAGES}) and restart the server; "
    "/v1/vocode works without them"
)


class FrontendUnavailableError(Exception):
    """The text frontend cannot serve (not installed, not started, or its process died) -> HTTP 503."""


class TextFrontend:
    """Festival text/phoneme rendering for the text endpoints.

    Args:
        processes: Festival processes kept alive (and rendering threads).
        enabled: False skips Festival entirely (text endpoints answer 503).
    """

    def __init__(self, processes: int = 1, enabled: bool = True) -> None:
        self.processes = processes
        self.enabled = enabled
        self._fe: Any = None
        self._features_for: Callable[..., np.ndarray] | None = None
        self._phoneme_spec: Any = None
        self._unavailable_exc: type[BaseException] = FrontendUnavailableError
        self._pool: ThreadPoolExecutor | None = None
        self.reason = "the text frontend has not been started"

    def start(self) -> None:
        """Create the Festival process(es) if possible (blocking; call once at startup, in a thread)."""
        if not self.enabled:
            self.reason = f"the text frontend is disabled (TTS_FRONTEND=false); to enable it, {INSTALL_HINT}"
            return
        try:
            mod = importlib.import_module("models.frontend")
            festival, unavailable = mod.FestivalFrontend, mod.FrontendUnavailable
            spec, features_for = mod.PhonemeSpec, mod.features_for
        except (ImportError, AttributeError) as exc:
            self.reason = f"the text frontend is not available ({exc}); {INSTALL_HINT}"
            log.warning("%s", self.reason)
            return
        self._unavailable_exc = unavailable
        try:
            fe = festival(pool_size=self.processes)
            ok = bool(fe.available())
            if ok and callable(getattr(fe, "start", None)):
                fe.start()  # the long-lived Festival process(es), once, now
        except Exception as exc:  # FrontendUnavailable, OSError from a missing binary, ...
            self.reason = f"the text frontend could not start ({exc}); {INSTALL_HINT}"
            log.warning("%s", self.reason)
            return
        if not ok:
            self.reason = f"Festival is not installed or has no voice; {INSTALL_HINT}"
            log.warning("%s", self.reason)
            close = getattr(fe, "close", None)
            if callable(close):
                close()
            return
        self._fe, self._features_for, self._phoneme_spec = fe, features_for, spec
        self._pool = ThreadPoolExecutor(max_workers=self.processes, thread_name_prefix="tts-frontend")
        self.reason = ""
        log.info("text frontend ready (%d Festival process%s)", self.processes, "es" if self.processes > 1 else "")

    def close(self) -> None:
        """Stop the rendering threads and the Festival process(es)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        close = getattr(self._fe, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # shutting down: log and go on
                log.warning("closing the text frontend failed", exc_info=True)
        self._fe = None

    @property
    def available(self) -> bool:
        return self._fe is not None and self._pool is not None

    def require(self) -> None:
        """Raise :class:`FrontendUnavailableError` (with the reason) unless available."""
        if not self.available:
            raise FrontendUnavailableError(self.reason)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.require()
        pool = self._pool
        assert pool is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args, **kwargs))
        except self._unavailable_exc as exc:
            raise FrontendUnavailableError(f"the text frontend failed ({exc}); {INSTALL_HINT}") from exc

    async def text_features(self, text: str, speed: float, cfg: FeatureConfig) -> AsyncIterator[np.ndarray]:
        """Log-mel chunks (T_k, n_mels), one per sentence of ``text``.

        Raises:
            ValueError: the text has nothing to speak (or the frontend refuses it).
            FrontendUnavailableError: Festival is missing or failed.
        """
        self.require()
        sentences = [s for s in await self._run(self._fe.split_sentences, text) if s.strip()]
        if not sentences:
            raise ValueError("the text has no sentence to speak; send words")
        for sentence in sentences:
            rendering = await self._run(self._fe.render_text, sentence, speed=speed)
            yield await self._run(self._feats, rendering, cfg)

    async def phoneme_features(
        self, phonemes: Sequence[tuple[str, float | None, float | None]], speed: float, cfg: FeatureConfig
    ) -> AsyncIterator[np.ndarray]:
        """One log-mel chunk (T, n_mels) for a phoneme sequence of (symbol, duration_ms, pitch_hz)."""
        self.require()
        specs = [self._phoneme_spec(p, d, f) for p, d, f in phonemes]
        rendering = await self._run(self._fe.render_phonemes, specs, speed=speed)
        yield await self._run(self._feats, rendering, cfg)

    def _feats(self, rendering: Any, cfg: FeatureConfig) -> np.ndarray:
        assert self._features_for is not None
        return np.asarray(self._features_for(rendering, cfg), dtype=np.float32)
