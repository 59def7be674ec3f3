#!/usr/bin/env bash
# Build (when missing), run and probe the CPU image with podman, then remove the container.
# See docs/deploy.md, "Building without a registry".
#
#   sudo docker/test-image.sh                 # uses $IMAGE, builds it first if it does not exist
#   sudo FORCE_BUILD=1 docker/test-image.sh   # rebuild (docker/build-local-base.sh --build) first
#
# Checks: GET /health, GET /ready (waited for; time from `podman run` to the first 200 is
# reported), GET /v1/models, POST /v1/audio/speech ("Hello world.", voice "default": a wav),
# GET /metrics (tts_* series), the service runs as a non-root user, and the image's HEALTHCHECK
# (`podman healthcheck run`). Prints a summary; exit status 0 only when every check passed. The
# container is removed on every exit.
#
# Environment:
#   IMAGE            image to test (default localhost/wavernn-tts:0.1.0)
#   PORT             host port for the API (default 18000)
#   NETWORK          `publish` (-p 127.0.0.1:PORT:8000, the default) or `host` (--network host,
#                    TTS_PORT=PORT); publish falls back to host when the bridge cannot start
#   RUNTIME          OCI runtime; default: the first of crun, runc that starts a container here
#   PODMAN_RUN_OPTS  extra `podman run` options; default: --ulimit nofile=N:N (N = this shell's
#                    hard limit, at most 65536) --ulimit nproc=32768:32768. Podman's own defaults
#                    (1048576) cannot be set where the host denies CAP_SYS_RESOURCE.
#   READY_TIMEOUT_S  how long to wait for /ready (default 300)
#   FORCE_BUILD      1: rebuild the image even if it exists
set -uo pipefail

IMAGE=${IMAGE:-localhost/wavernn-tts:0.1.0}
PORT=${PORT:-18000}
NETWORK=${NETWORK:-publish}
RUNTIME=${RUNTIME:-}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-300}
FORCE_BUILD=${FORCE_BUILD:-0}
REPO=$(cd "$(dirname "$0")/.." && pwd)
NAME=wavernn-tts-test-$$
WORK=$(mktemp -d)

nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
read -r -a RUN_OPTS <<< "${PODMAN_RUN_OPTS:---ulimit nofile=$nofile:$nofile --ulimit nproc=32768:32768}"

summary=()
failed=0
pass() { summary+=("PASS  $1"); echo "PASS  $1"; }
fail() { summary+=("FAIL  $1"); echo "FAIL  $1" >&2; failed=1; }
info() { summary+=("      $1"); echo "      $1"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  if podman container exists "$NAME" 2>/dev/null; then
    if [ "$failed" -ne 0 ]; then
      echo "---- last container log lines ----" >&2
      podman logs --tail 40 "$NAME" >&2 2>&1 || true
    fi
    podman rm -f -t 10 "$NAME" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for cmd in podman curl python3; do
  command -v "$cmd" >/dev/null || { echo "error: $cmd is missing" >&2; exit 2; }
done
if ! python3 -c "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$PORT" 2>/dev/null; then
  echo "error: port $PORT is taken; set PORT" >&2; exit 2
fi

# ---- build ------------------------------------------------------------------------------------
if [ "$FORCE_BUILD" = 1 ] || ! podman image exists "$IMAGE"; then
  mode=--build
  if [ "$FORCE_BUILD" != 1 ] && podman image exists "${BASE_TAG:-localhost/python:3.11-slim-bookworm}"; then
    mode=--image-only
  fi
  echo ">> building $IMAGE: docker/build-local-base.sh $mode"
  t0=$(now)
  if IMAGE_TAG="$IMAGE" "$REPO/docker/build-local-base.sh" "$mode"; then
    info "build: docker/build-local-base.sh $mode in $(elapsed "$t0" "$(now)") s"
  else
    fail "build: docker/build-local-base.sh $mode"; exit 1
  fi
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
info "image: $IMAGE, $(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e9:.2f} GB ({int(sys.argv[1])} bytes)')" "$size")"

# ---- runtime: the first OCI runtime that starts a container here ------------------------------
if [ -z "$RUNTIME" ]; then
  for rt in crun runc; do
    command -v "$rt" >/dev/null || continue
    if err=$(podman run --rm --runtime "$rt" "${RUN_OPTS[@]}" --network none "$IMAGE" true 2>&1); then
      RUNTIME=$rt; break
    fi
    echo ">> runtime $rt cannot start a container here: $(echo "$err" | tail -1)"
  done
  [ -n "$RUNTIME" ] || { fail "no OCI runtime (crun, runc) can start a container here"; exit 1; }
fi
info "runtime: $RUNTIME, podman run options: ${RUN_OPTS[*]}"

# ---- run -------------------------------------------------------------------------------------
start() {  # $1: publish | host
  local net=(-p "127.0.0.1:$PORT:8000")
  [ "$1" = host ] && net=(--network host -e "TTS_PORT=$PORT")
  t_start=$(now)
  # podman logs an error when it cannot register the health check's systemd timer (no systemd):
  # harmless, the check still runs with `podman healthcheck run`.
  podman run -d --name "$NAME" --runtime "$RUNTIME" "${RUN_OPTS[@]}" "${net[@]}" "$IMAGE" \
    > "$WORK/run.log" 2>&1
}
if ! start "$NETWORK"; then
  if [ "$NETWORK" = publish ]; then
    echo ">> publishing a port failed ($(tail -1 "$WORK/run.log")); trying --network host"
    podman rm -f "$NAME" >/dev/null 2>&1
    NETWORK=host
    start host || { fail "podman run: $(tail -1 "$WORK/run.log")"; exit 1; }
  else
    fail "podman run: $(tail -1 "$WORK/run.log")"; exit 1
  fi
fi
info "network: $NETWORK, API on http://127.0.0.1:$PORT"
BASE=http://127.0.0.1:$PORT

code=000
deadline=$(python3 -c "import sys; print(float(sys.argv[1]) + float(sys.argv[2]))" "$t_start" "$READY_TIMEOUT_S")
while :; do
  code=$(curl -s -o "$WORK/ready.json" -w '%{http_code}' --max-time 2 "$BASE/ready" || true)
  [ "$code" = 200 ] && break
  if [ "$(podman inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" != true ]; then
    fail "the container exited before /ready"; exit 1
  fi
  python3 -c "import sys, time; sys.exit(time.time() > float(sys.argv[1]))" "$deadline" || break
  sleep 0.2
done
t_ready=$(now)
if [ "$code" = 200 ]; then
  pass "GET /ready: 200 $(cat "$WORK/ready.json"), $(elapsed "$t_start" "$t_ready") s after podman run"
else
  fail "GET /ready: $code after ${READY_TIMEOUT_S} s"; exit 1
fi

# ---- probes ----------------------------------------------------------------------------------
body=$(curl -s -w ' %{http_code}' "$BASE/health")
if [ "${body##* }" = 200 ]; then pass "GET /health: $body"; else fail "GET /health: $body"; fi

curl -s -o "$WORK/models.json" -w '%{http_code}' "$BASE/v1/models" > "$WORK/code"
if models=$(python3 -c "import json, sys; d = json.load(open(sys.argv[1]))['data']; print(', '.join(f\"{m['id']} (trained={m['trained']}, hidden={m['hidden_size']})\" for m in d))" "$WORK/models.json" 2>&1) \
   && [ "$(cat "$WORK/code")" = 200 ] && [ -n "$models" ]; then
  pass "GET /v1/models: $models"
else
  fail "GET /v1/models: $(cat "$WORK/code") $(head -c 300 "$WORK/models.json")"
fi

t0=$(now)
code=$(curl -s -o "$WORK/hello.wav" -D "$WORK/headers" -w '%{http_code}' --max-time 300 "$BASE/v1/audio/speech" \
  -H 'Content-Type: application/json' -d '{"input": "Hello world.", "voice": "default"}' || true)
took=$(elapsed "$t0" "$(now)")
if wav=$(python3 - "$WORK/hello.wav" <<'EOF' 2>&1
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a wav file"
channels, rate = struct.unpack("<HI", data[22:28])
bits = struct.unpack("<H", data[34:36])[0]
assert (channels, bits) == (1, 16), f"{channels} channels of {bits} bits, not 16-bit mono"
start = data.index(b"data", 36) + 8  # a streamed wav's header gives no length: count the bytes
n = (len(data) - start) // 2
assert n > 0, "no samples"
print(f"{n} samples, {n / rate:.2f} s at {rate} Hz")
EOF
) && [ "$code" = 200 ] && grep -qi '^content-type: audio/wav' "$WORK/headers"; then
  pass "POST /v1/audio/speech: 200 audio/wav, $(stat -c %s "$WORK/hello.wav") bytes, $wav, in $took s"
else
  fail "POST /v1/audio/speech: $code $wav $(head -c 300 "$WORK/hello.wav")"
fi

code=$(curl -s -o "$WORK/metrics" -w '%{http_code}' "$BASE/metrics")
series=$(grep -c '^tts_' "$WORK/metrics")
counted=$(grep -m1 '^tts_requests_total{.*status="200"' "$WORK/metrics")
if [ "$code" = 200 ] && [ "$series" -gt 0 ] && [ -n "$counted" ]; then
  pass "GET /metrics: $series tts_* samples; $counted"
else
  fail "GET /metrics: $code, $series tts_* samples, no tts_requests_total with status 200"
fi

uid=$(podman exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)
user=$(podman exec "$NAME" id -un 2>/dev/null)
if [ -n "$uid" ] && [ "$uid" != 0 ]; then
  pass "non-root: the server (pid 1) runs as uid $uid ($user)"
else
  fail "non-root: the server runs as uid '${uid}'"
fi

if out=$(podman healthcheck run "$NAME" 2>&1); then
  pass "HEALTHCHECK: podman healthcheck run -> $(podman inspect --format '{{.State.Health.Status}}' "$NAME")${out:+ $out}"
else
  fail "HEALTHCHECK: podman healthcheck run -> $out"
fi

echo
echo "==== summary: $IMAGE ===="
printf '%s\n' "${summary[@]}"
if [ "$failed" -eq 0 ]; then echo "all checks passed"; else echo "SOME CHECKS FAILED"; fi
exit "$failed"
