"""Service configuration: every knob of the server, read once from ``TTS_*`` environment variables.

Build :class:`Settings` once at the entry point (``wavernn-tts serve``) and pass it down;
nothing in the service reads the environment or keeps a module-level settings object.
Every field has bounds and a description; ``Settings(field=...)`` overrides the environment
(that is how ``--host``/``--port`` win over ``TTS_HOST``/``TTS_PORT``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The largest text any request schema accepts (characters); ``max_input_chars`` may only lower it.
HARD_MAX_INPUT_CHARS = 20_000


class Settings(BaseSettings):
    """Server settings (environment variables ``TTS_<FIELD>``, case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="TTS_", extra="ignore", frozen=True)

    # -- network -------------------------------------------------------------------
    host: str = Field("127.0.0.1", min_length=1, max_length=255, description="Interface uvicorn binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port uvicorn listens on.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level of the service and uvicorn."
    )

    # -- voice and devices ---------------------------------------------------------
    voice: str = Field(
        "default",
        min_length=1,
        max_length=4096,
        description="Voice to serve: a bundled name (`default`), the path of a checkpoint (.pt) or voice "
        "folder, or `untrained-tiny` (a seeded untrained tiny model for tests).",
    )
    temperature: float | None = Field(
        None, ge=0.05, le=2.0, description="Sampling temperature of the served voice, over its card's "
        "`sampling.temperature` (unset: the card's, else 1.0, the paper's sampling; lower is less noisy)."
    )
    postfilter_db: float | None = Field(
        None, ge=0.0, le=60.0, description="Gain limit (dB) of the spectral-envelope post-filter that pulls "
        "the output onto its log-mel features, over the card's `postfilter.max_gain_db` (unset: the card's, "
        "else none; 0: none). See docs/quality.md."
    )
    pitch_sync: bool | None = Field(
        None, description="Pitch-synchronous sampling noise: in voiced frames the sampler's random draws repeat "
        "once per pitch period read off the log-mel features, over the card's `sampling.pitch_sync` (unset: "
        "the card's, else off). Not for a Subscale WaveRNN voice. See docs/quality.md section 16."
    )
    comb_gain: float | None = Field(
        None, ge=0.0, le=0.95, description="Gain of the pitch post-filter, a comb at the pitch period (read off "
        "the log-mel features) that thins the noise between harmonics, run before the envelope post-filter, over "
        "the card's `postfilter.comb_gain` (unset: the card's, else none; 0: none). See docs/quality.md section 16."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where samplers run: `auto` picks CUDA when available, else CPU."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Device workers on CPU (on CUDA there is one worker per visible GPU)."
    )
    sampler: Literal["auto", "reference", "cpu", "gpu"] = Field(
        "auto", description="Sampler: `reference` (torch loop, any device), `cpu` (compiled CPU sampler), "
        "`gpu` (fused persistent Triton kernel, CUDA only); `auto` is the fused kernel on CUDA and the "
        "compiled CPU sampler on CPU. A Subscale WaveRNN voice gets the subscale version of each (`reference` "
        "on CPU only; with `TTS_DEVICE=auto` it runs on CUDA only where Triton imports)."
    )
    torch_threads: int = Field(
        0, ge=0, le=256, description="torch intra-op threads for the whole process; 0 keeps torch's default."
    )

    # -- engine --------------------------------------------------------------------
    max_batch: int = Field(16, ge=1, le=256, description="Most streams one worker advances together per block.")
    block_samples: int = Field(
        2400, ge=16, le=48_000, description="Samples per scheduler step and per streamed chunk (2400 = 100 ms)."
    )
    queue_size: int = Field(
        64, ge=0, le=10_000, description="Requests that may wait for a batch slot; beyond that: 429."
    )
    request_timeout_s: float = Field(
        300.0, gt=0.0, le=3600.0, description="Deadline of one request from admission to its last sample (s)."
    )
    max_unread_s: float = Field(
        30.0, ge=0.0, le=3600.0, description="Seconds of generated audio a stream may hold that its client has not "
        "read yet; past it the stream sits out of the batch until the client catches up (0: no limit)."
    )
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After (s) sent with 429 and 503 answers.")
    drain_timeout_s: float = Field(
        30.0, ge=0.0, le=600.0, description="On shutdown, how long streams in flight may finish (s)."
    )

    # -- request limits ------------------------------------------------------------
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, le=1024**3, description="Largest request body (bytes); beyond that: 413."
    )
    max_input_chars: int = Field(
        4096, ge=1, le=HARD_MAX_INPUT_CHARS, description="Longest text input (characters); beyond that: 422."
    )
    max_audio_s: float = Field(
        300.0, gt=0.0, le=3600.0, description="Longest utterance one request may ask for (seconds of audio)."
    )

    # -- text frontend -------------------------------------------------------------
    frontend: bool = Field(True, description="Start the Festival text frontend (text endpoints answer 503 without).")
    frontend_processes: int = Field(
        1, ge=1, le=32, description="Festival processes kept alive (and threads rendering text)."
    )
