"""Shared helpers of the deployment tests: files, tools, Dockerfile and PromQL parsing, the
service's real entry point (settings fields and HTTP routes)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = (ROOT / "Dockerfile", ROOT / "docker" / "Dockerfile.gpu")
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "wavernn-tts.json"
ALERTS = ROOT / "docker" / "alerts.yml"
PROMETHEUS = ROOT / "docker" / "prometheus.yml"
DEPLOY = ROOT / "deploy"
ADAPTER_VALUES = DEPLOY / "prometheus-adapter" / "values.yaml"
ADAPTER_CONFIGMAP = DEPLOY / "prometheus-adapter" / "configmap.yaml"
KUSTOMIZATIONS = (DEPLOY / "base", DEPLOY / "overlays" / "gpu", DEPLOY / "prometheus-adapter")


def tool(name: str, package: str) -> str:
    """The path of command-line tool ``name`` (on PATH or beside this Python), else skip."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"`{name}` is not installed (pip install {package})")
    return found


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# -- Dockerfiles --------------------------------------------------------------------------------
@dataclass
class Stage:
    """One ``FROM`` stage: its base, name and instructions ``(KEYWORD, arguments)`` in order."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        """The ``ENV key=value`` pairs of this stage (later ones win)."""
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use the key=value form"
                out[key] = value
        return out


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ``ARG`` defaults and the stages of ``path`` (continuations joined, comments dropped)."""
    logical: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in logical:
        keyword, _, rest = item.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    return args, stages


def exec_form(args: str) -> list[str]:
    """The argument list of an exec-form instruction (``["a", "b"]``)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not an exec form: {args}"
    return value


def healthcheck_command(args: str) -> list[str]:
    """The exec-form command of a ``HEALTHCHECK [options] CMD [...]`` instruction."""
    _, sep, cmd = args.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args}"
    return exec_form(cmd.strip())


#: The URL path a health command asks for (``http://127.0.0.1:<port>/<path>``).
HEALTH_URL = re.compile(r"http://127\.0\.0\.1:[^/'\"]+(/[\w/]*)")


# -- PromQL ---------------------------------------------------------------------------------------
TTS_NAME = re.compile(r"\btts_[a-z0-9_]+\b")


def tts_names(expr: str) -> set[str]:
    """The ``tts_*`` identifiers in a PromQL expression (or an adapter series regex)."""
    return set(TTS_NAME.findall(expr))


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the Grafana dashboard: panel targets and templating queries."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", []) if "expr" in t]
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return exprs


def alert_exprs() -> list[str]:
    return [r["expr"] for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]


def adapter_rules() -> list[dict[str, Any]]:
    """prometheus-adapter's rules (the Helm values' ``rules.custom``)."""
    return list(load_yaml(ADAPTER_VALUES)["rules"]["custom"])


def adapter_exprs() -> list[str]:
    return [e for r in adapter_rules() for e in (r["seriesQuery"], r["metricsQuery"], r["name"]["matches"])]


# -- the service's real entry point ---------------------------------------------------------------
@cache
def settings_fields() -> dict[str, Any]:
    """``TTS_<FIELD>`` -> the field's default."""
    from service.settings import Settings

    return {f"TTS_{name.upper()}": info.default for name, info in Settings.model_fields.items()}


def check_tts_env(env: dict[str, str], where: str) -> None:
    """Every ``TTS_*`` variable in ``env`` is a real setting and its value is valid."""
    from service.settings import Settings

    fields = settings_fields()
    values = {}
    for key, value in env.items():
        if key.startswith("TTS_"):
            assert key in fields, f"{where}: {key} is not a setting of service.settings.Settings"
            values[key[4:].lower()] = value
    Settings(**values)  # raises on a value out of bounds


@cache
def routes() -> dict[str, set[str]]:
    """The HTTP routes of ``service.app.create_app``: path -> methods."""
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(voice="untrained-tiny", frontend=False))
    return {path: {m.upper() for m in ops} for path, ops in app.openapi()["paths"].items()}
