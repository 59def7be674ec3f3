"""Image build step: compile the CPU sampler's numba kernels into ``NUMBA_CACHE_DIR``.

The service warms every worker before ``/ready`` turns 200 (``service.engine.devices``); on
the compiled CPU sampler the first call also compiles its kernels (about 20 s). Running the
same warm-up here, with the settings the image will serve with (``TTS_*`` variables), stores
the compiled code in the image, so a container becomes ready in seconds. Nothing is compiled
when the served sampler is the torch reference (``TTS_SAMPLER=reference``, or CUDA).

Usage (in a Dockerfile, as the service user): ``python docker/warmup.py``
"""

from __future__ import annotations

import logging
import os
import sys
import time

import torch

from service.engine.devices import sampler_factory, warm_up_block
from service.settings import Settings
from service.voices import resolve_voice

log = logging.getLogger("wavernn_tts.warmup")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if settings.sampler == "reference" or settings.device == "cuda":
        log.info("sampler %s on %s: nothing to compile", settings.sampler, settings.device)
        return 0
    if not os.environ.get("NUMBA_CACHE_DIR"):
        log.warning("NUMBA_CACHE_DIR is not set: kernels are cached beside the installed modules")
    t0 = time.perf_counter()
    voice = resolve_voice(settings.voice)
    device = torch.device("cpu")
    sampler = sampler_factory(voice, settings.sampler, settings.workers)(device)
    n = min(settings.block_samples, voice.config.features.hop_length)
    warm_up_block(voice, n)(sampler, device)
    log.info("compiled and cached the %s sampler for voice %r in %.1f s (cache: %s)",
             type(sampler).__name__, voice.name, time.perf_counter() - t0, os.environ.get("NUMBA_CACHE_DIR"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
