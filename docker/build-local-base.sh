#!/usr/bin/env bash
# Build a Python 3.11 / Debian bookworm base image WITHOUT a container registry, and optionally
# the CPU image on top of it, with podman. For machines that reach a Debian mirror and PyPI but
# no registry (docker.io, ghcr.io). See docs/deploy.md, "Building without a registry".
#
#   sudo docker/build-local-base.sh            # base image only: $BASE_TAG
#   sudo docker/build-local-base.sh --build    # and then the CPU image: $IMAGE_TAG (long: torch, numba warm-up)
#   sudo docker/build-local-base.sh --image-only   # the CPU image only, on an existing $BASE_TAG
#
# Steps: debootstrap a minimal bookworm root with python3 (3.11 on bookworm) and python3-venv
# from the mirror, clean it, `podman import` it as $BASE_TAG; with --build, `podman build
# --isolation chroot` (no daemon, no user namespaces needed) with BASE_IMAGE=$BASE_TAG. When
# download.pytorch.org is not reachable either, put the torch CPU wheel in docker/wheelhouse/
# (the script copies it from $WHEELS if found there) and torch comes from there only.
#
# Needs root, and: apt-get install -y debootstrap podman
set -euo pipefail

MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
BASE_TAG=${BASE_TAG:-localhost/python:3.11-slim-bookworm}
IMAGE_TAG=${IMAGE_TAG:-localhost/wavernn-tts:0.1.0}
WHEELS=${WHEELS:-/opt/wheels}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
# CA bundle mounted (build secret `ca-bundle`, never stored in the image) for pip's downloads:
# needed behind a TLS-intercepting proxy; the host's trust store by default, empty: none.
CA_BUNDLE=${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
REPO=$(cd "$(dirname "$0")/.." && pwd)

build=0 base=1
case "${1:-}" in
  --build) build=1 ;;
  --image-only) build=1 base=0 ;;
  "") ;;
  *) echo "usage: $0 [--build | --image-only]" >&2; exit 2 ;;
esac

for cmd in debootstrap podman tar; do
  command -v "$cmd" >/dev/null || { echo "error: $cmd is missing (apt-get install -y debootstrap podman)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "error: debootstrap needs root" >&2; exit 1; }

if [ "$base" -eq 1 ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  rootfs="$work/rootfs"

  echo ">> debootstrap $SUITE from $MIRROR into $rootfs"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR"
  # slim: no apt lists, docs or caches (the Dockerfiles run apt-get update themselves)
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/cache/*
  chroot "$rootfs" python3 --version

  echo ">> podman import as $BASE_TAG"
  tar --numeric-owner -C "$rootfs" -c . | podman import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$BASE_TAG"
else
  podman image exists "$BASE_TAG" || { echo "error: no base image $BASE_TAG (run without --image-only first)" >&2; exit 1; }
fi

if [ "$build" -eq 1 ]; then
  torch_index=https://download.pytorch.org/whl/cpu
  shopt -s nullglob
  wheels=("$WHEELS"/torch-"$TORCH_VERSION"+cpu-*.whl)
  if [ ${#wheels[@]} -gt 0 ]; then
    cp -n "${wheels[@]}" "$REPO/docker/wheelhouse/"
  fi
  local_wheels=("$REPO"/docker/wheelhouse/torch-"$TORCH_VERSION"+cpu-*.whl)
  if [ ${#local_wheels[@]} -gt 0 ]; then
    torch_index=""   # torch from docker/wheelhouse/ only
  fi
  echo ">> podman build $IMAGE_TAG (torch from ${torch_index:-docker/wheelhouse/})"
  secret=()
  if [ -n "$CA_BUNDLE" ] && [ -s "$CA_BUNDLE" ]; then
    secret=(--secret "id=ca-bundle,src=$CA_BUNDLE")
  fi
  nice -n 19 podman build --isolation chroot --format docker "${secret[@]}" \
    --build-arg BASE_IMAGE="$BASE_TAG" \
    --build-arg TORCH_INDEX_URL="$torch_index" \
    -t "$IMAGE_TAG" -f "$REPO/Dockerfile" "$REPO"
  echo ">> try it: podman run --rm -p 8000:8000 $IMAGE_TAG"
fi
