"""The CPU image built and run for real: ``docker/test-image.sh`` under podman.

Opt-in: building the image takes minutes (torch, the numba warm-up), so CI and ``make test``
skip it. Run it on a machine with podman (as root) with::

    TTS_TEST_IMAGE=1 python -m pytest -q tests/deploy/test_image.py

The script builds the image when it is missing (``docker/build-local-base.sh``), starts it,
waits for ``/ready`` and probes ``/health``, ``/v1/models``, ``/v1/audio/speech``,
``/metrics``, the non-root user and the HEALTHCHECK; it always removes its container.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.deploy.deploy_common import ROOT

SCRIPTS = (ROOT / "docker" / "test-image.sh", ROOT / "docker" / "build-local-base.sh")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(path: os.PathLike[str]) -> None:
    """Both scripts are valid bash (cheap, always runs)."""
    run = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr


def test_image_builds_runs_and_serves() -> None:
    if os.environ.get("TTS_TEST_IMAGE") != "1":
        pytest.skip("builds and runs the container image (minutes): set TTS_TEST_IMAGE=1 to run it")
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install -y podman; see docs/deploy.md)")
    if os.geteuid() != 0:
        pytest.skip("docker/test-image.sh needs root (debootstrap, rootful podman)")
    run = subprocess.run([str(SCRIPTS[0])], capture_output=True, text=True, timeout=3600, cwd=ROOT)
    report = run.stdout[-6000:] + "\n" + run.stderr[-6000:]
    assert run.returncode == 0, report
    assert "all checks passed" in run.stdout, report
