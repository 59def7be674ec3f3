# Sourced by the scripts that run on a lent GPU (gpu_train.sh, gpu_sparse_vs_dense.sh): strict mode,
# the repository root as working folder and on PYTHONPATH (the machine's python3, no install),
# unbuffered output, fail() with the script's name, the checks of OUT, SHARD and MINUTES, and CACHE.
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

fail() { echo "$(basename "$0"): $*" >&2; exit 2; }
MINUTES=${MINUTES:-8}
CACHE=${CACHE:-/tmp/cache}  # where the shard is prepared; give runs that go side by side their own
[[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "MINUTES=$MINUTES is not a number of minutes"
[ -n "${OUT:-}" ] || fail "OUT is not set: name the folder that comes back (OUT=/tmp/out bash $0)"
[ -n "${SHARD:-}" ] || fail "SHARD is not set: a shard file (carry it), e.g. SHARD=data/shards28/shard_000.npz"
[ -f "$SHARD" ] || fail "shard $SHARD does not exist here: pack shards (wavernn-tts pack-shards) and carry one"
