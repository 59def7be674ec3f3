"""models/ is the ML library: importing it never pulls in the HTTP or metrics stack."""

from __future__ import annotations

import subprocess
import sys


def test_models_does_not_import_fastapi_or_prometheus() -> None:
    code = (
        "import sys, pkgutil, importlib, models\n"
        "for m in pkgutil.walk_packages(models.__path__, 'models.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('fastapi', 'prometheus_client', 'uvicorn', 'starlette', 'service') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"models imported {out.stdout.strip()}"
