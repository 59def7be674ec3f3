# syntax=docker/dockerfile:1
# wavernn-tts, CPU image (the default). See docs/deploy.md.
#
#   docker build -t wavernn-tts:0.1.0 .
#   docker run --rm -p 8000:8000 wavernn-tts:0.1.0
#
# Build arguments:
#   BASE_IMAGE       Python 3.11 on Debian bookworm (docker/build-local-base.sh makes one offline)
#   TORCH_INDEX_URL  where the CPU build of torch comes from; empty: only docker/wheelhouse/
#   TORCH_VERSION    must match pyproject.toml's pin
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtual environment with torch (CPU) and the package ----------------------
FROM ${BASE_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A C compiler for the dependencies published only as sources (pesq); Python's headers too
# where the base lacks them (a debootstrapped bookworm: python3-dev). Builder stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if [ ! -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
           apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch goes in FIRST, from the CPU index (or wheels dropped into docker/wheelhouse/), so no
# later requirement can pull a CUDA build; `torch==2.13.0` in pyproject.toml is then satisfied.
# With TORCH_INDEX_URL empty, torch itself comes only from /wheelhouse (--no-index --no-deps)
# and its dependencies (sympy, networkx, ...) from PyPI. Behind a TLS-intercepting proxy, pass
# the host's CA bundle as the build secret `ca-bundle` (docker build --secret / podman build
# --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt): it is mounted for these steps
# only and never stored in the image.
COPY docker/wheelhouse/ /wheelhouse/
RUN --mount=type=secret,id=ca-bundle set -eu; \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    if [ -n "${TORCH_INDEX_URL}" ]; then \
        pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" --find-links /wheelhouse "torch==${TORCH_VERSION}"; \
    else \
        pip install --no-cache-dir --no-index --no-deps --find-links /wheelhouse "torch==${TORCH_VERSION}"; \
        pip install --no-cache-dir "torch==${TORCH_VERSION}"; \
    fi; \
    python -c "import torch, sys; sys.exit(0 if not torch.version.cuda else 'a CUDA build of torch was installed')"
COPY pyproject.toml README.md /src/
COPY models /src/models
COPY service /src/service
# A regular (non-editable) install: models/voices/<name>/{model.pt,card.json} are package data.
RUN --mount=type=secret,id=ca-bundle set -eu; \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    pip install --no-cache-dir --find-links /wheelhouse /src

# ---- runtime ---------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="wavernn-tts" \
      org.opencontainers.image.description="WaveRNN text-to-speech HTTP service (CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"
# Festival + the CMU ARCTIC slt HTS voice: the text frontend. libgomp1: numba's OpenMP
# threading layer (without it numba falls back to `workqueue`, which aborts on concurrent
# parallel calls). Debian package versions are not pinned: bookworm's archive only keeps the
# current ones, so a pin would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends festival festvox-us-slt-hts libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tts \
    && useradd --system --uid 10001 --gid tts --home-dir /home/tts --create-home --shell /usr/sbin/nologin tts \
    && mkdir -p /var/cache/wavernn-tts/numba \
    && chown -R tts:tts /var/cache/wavernn-tts
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/cache/wavernn-tts/numba \
    TTS_HOST=0.0.0.0 \
    TTS_PORT=8000
WORKDIR /home/tts
USER 10001:10001
# Compile the CPU sampler's kernels now (about 20 s) into NUMBA_CACHE_DIR, so the first /ready
# does not pay for it. On a machine with another CPU model numba recompiles once, at start-up.
COPY docker/warmup.py /opt/wavernn-tts/warmup.py
RUN python /opt/wavernn-tts/warmup.py
EXPOSE 8000
# Liveness: /health answers 200 while the process serves (no curl in the image: urllib).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TTS_PORT', '8000'), timeout=4)"]
# SIGTERM: stop accepting, let streams in flight finish for up to TTS_DRAIN_TIMEOUT_S, exit.
STOPSIGNAL SIGTERM
CMD ["wavernn-tts", "serve"]
