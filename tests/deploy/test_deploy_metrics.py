"""Every metric that the Grafana dashboard, the alert rules and the autoscaler (prometheus-adapter)
query is one the service really exports, checked against a live ``wavernn-tts serve``; the
images' health command works against it too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.deploy_common import (
    COMPOSE,
    DOCKERFILES,
    adapter_exprs,
    alert_exprs,
    dashboard_exprs,
    healthcheck_command,
    load_yaml,
    parse_dockerfile,
    tts_names,
)
from tests.service.tts_server import NPY_HEADERS, Server, npy, start_server, tiny_mel

#: Sample-name suffixes of each metric type, as prometheus_client exposes them.
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("", "_sum", "_count", "_created")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real entry point on a free loopback port: tiny untrained voice, no Festival, one request served."""
    env = {"TTS_VOICE": "untrained-tiny", "TTS_FRONTEND": "false", "TTS_SAMPLER": "reference",
           "TTS_BLOCK_SAMPLES": "240"}
    for srv in start_server(env, tmp_path_factory.mktemp("deploy") / "server.log"):
        r = httpx.post(f"{srv.url}/v1/vocode?response_format=pcm&seed=0", content=npy(tiny_mel(20)),
                       headers=NPY_HEADERS, timeout=60.0)
        assert r.status_code == 200, r.text
        yield srv


@pytest.fixture(scope="module")
def exported(server: Server) -> set[str]:
    """Every series name /metrics exposes (or will expose once a labelled metric has a child)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10.0).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def _check(exprs: list[str], exported: set[str], where: str) -> set[str]:
    used = set().union(*(tts_names(e) for e in exprs))
    missing = sorted(used - exported)
    assert not missing, f"{where} queries metrics the service does not export: {missing}"
    return used


def test_dashboard_queries_exported_metrics(exported: set[str]) -> None:
    used = _check(dashboard_exprs(), exported, "the Grafana dashboard")
    # what ops asked to see: latency, speed, load, batching, traffic and errors
    for name in ("tts_time_to_first_audio_seconds_bucket", "tts_real_time_factor_bucket", "tts_queue_depth",
                 "tts_active_streams", "tts_batch_size_sum", "tts_requests_total", "tts_requests_rejected_total"):
        assert name in used, f"the dashboard has no panel on {name}"
    exprs = " ".join(dashboard_exprs())
    assert "histogram_quantile(0.5, sum by (le) (rate(tts_time_to_first_audio_seconds_bucket" in exprs
    assert "histogram_quantile(0.99, sum by (le) (rate(tts_time_to_first_audio_seconds_bucket" in exprs


def test_alert_rules_query_exported_metrics(exported: set[str]) -> None:
    used = _check(alert_exprs(), exported, "docker/alerts.yml")
    assert {"tts_time_to_first_audio_seconds_bucket", "tts_queue_depth", "tts_requests_total"} <= used


def test_autoscaler_metrics_are_exported(exported: set[str]) -> None:
    used = _check(adapter_exprs(), exported, "the prometheus-adapter rules")
    assert "tts_queue_depth" in used


def test_metric_name_extraction() -> None:
    assert tts_names('histogram_quantile(0.9, sum by (le) (rate(tts_a_seconds_bucket{x="tts_no"}[5m])))') == {
        "tts_a_seconds_bucket", "tts_no"}
    assert tts_names("up == 0") == set()


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_health_command_passes_against_the_service(path, server: Server) -> None:  # type: ignore[no-untyped-def]
    (health,) = parse_dockerfile(path)[1][-1].all("HEALTHCHECK")
    cmd = healthcheck_command(health)
    import sys

    run = subprocess.run([sys.executable, *cmd[1:]], env={**os.environ, "TTS_PORT": str(server.port)},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    bad = subprocess.run([sys.executable, *cmd[1:]], env={**os.environ, "TTS_PORT": "1"},
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0, "the health command must fail when nothing answers"


def test_compose_health_command_passes_against_the_service(server: Server) -> None:
    import sys

    test = load_yaml(COMPOSE)["services"]["tts"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    run = subprocess.run([sys.executable, *test[2:]], env={**os.environ, "TTS_PORT": str(server.port)},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
