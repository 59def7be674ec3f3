"""Prometheus metrics of one app (its own registry, never the global default one).

Latency histograms use buckets from 10 ms to 10 s. Labels are bounded: ``endpoint`` is one of
:data:`ENDPOINTS`, ``status`` an HTTP status code (``499`` for a client that disconnected
mid-stream), ``reason`` one of :data:`REJECT_REASONS`, ``worker`` a worker label
(``cpu:0``, ``cuda:1``; as many as workers).

:class:`Metrics` also implements :class:`~service.engine.protocol.EngineObserver`, so the
engine reports queue, batch and worker events without knowing about Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Synthesis endpoints (the values of the ``endpoint`` label).
ENDPOINTS = ("speech", "synthesize", "vocode")
#: Why a request was refused or cut short (the values of the ``reason`` label).
REJECT_REASONS = ("queue_full", "not_ready", "deadline", "worker_failed", "input_failed")
#: Seconds: 10 ms .. 10 s.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Real-time factor (compute time / audio time; below 1 is faster than real time).
RTF_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0)
#: Streams per sampler call.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The service's metrics, registered in a fresh :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("tts_requests", "Synthesis requests by endpoint and final HTTP status "
                                "(499: client disconnected mid-stream).", ["endpoint", "status"], registry=r)
        self.request_duration = Histogram("tts_request_duration_seconds", "Time from the request reaching its "
                                          "handler to its last byte (s).", ["endpoint"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.time_to_first_audio = Histogram("tts_time_to_first_audio_seconds", "Time from the request reaching "
                                             "its handler to its first audio block (s).",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.real_time_factor = Histogram("tts_real_time_factor", "Per completed request: handling time divided "
                                          "by audio duration (below 1 is faster than real time).",
                                          buckets=RTF_BUCKETS, registry=r)
        self.queue_wait = Histogram("tts_queue_wait_seconds", "Time a request waited for a batch slot (s).",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth_gauge = Gauge("tts_queue_depth", "Requests waiting for a batch slot.", registry=r)
        self.active_streams_gauge = Gauge("tts_active_streams", "Streams in a worker's batch.", registry=r)
        self.batch_size = Histogram("tts_batch_size", "Streams advanced by one sampler call.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.audio_seconds = Counter("tts_audio_seconds", "Seconds of audio sent to clients.", registry=r)
        self.client_disconnects = Counter("tts_client_disconnects", "Streams whose client went away "
                                          "before the end.", registry=r)
        self.rejected = Counter("tts_requests_rejected", "Requests refused or cut short, by reason.",
                                ["reason"], registry=r)
        self.worker_up_gauge = Gauge("tts_worker_up", "1 while a device worker can serve.", ["worker"], registry=r)
        self.worker_restarts = Counter("tts_worker_restarts", "Device worker restarts after a failure.",
                                       ["worker"], registry=r)

    def render(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)

    # -- request outcomes (HTTP layer) -----------------------------------------------
    def request_done(self, endpoint: str, status: int, duration_s: float) -> None:
        """One synthesis request ended with ``status`` after ``duration_s`` seconds."""
        if endpoint not in ENDPOINTS:
            return
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.request_duration.labels(endpoint=endpoint).observe(duration_s)

    def reject(self, reason: str) -> None:
        if reason in REJECT_REASONS:
            self.rejected.labels(reason=reason).inc()

    # -- EngineObserver --------------------------------------------------------------
    def queue_depth(self, depth: int) -> None:
        self.queue_depth_gauge.set(depth)

    def active_streams(self, count: int) -> None:
        self.active_streams_gauge.set(count)

    def admitted(self, wait_s: float) -> None:
        self.queue_wait.observe(wait_s)

    def batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def worker_up(self, worker: str, up: bool) -> None:
        self.worker_up_gauge.labels(worker=worker).set(1 if up else 0)
        self.worker_restarts.labels(worker=worker)  # the series exists (at 0) from the start

    def worker_restarted(self, worker: str) -> None:
        self.worker_restarts.labels(worker=worker).inc()
