#!/usr/bin/env bash
# The filesystem view against tmpfs, same machine, same run. See bench/README.md.
#
#   bench/mount.sh [--keep]
#
# Environment: FSD=path (skip the build and use this binary), ITERATIONS (default 300).
# Needs root (FUSE mount with allow_other, and a tmpfs mount), python3 with kazoo.
#
# Progress goes to stderr; raw JSON lines and the final Markdown table go to stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=(python3 "$HERE/benchlib.py")
export PYTHONDONTWRITEBYTECODE=1
KEEP=0
[[ ${1:-} == --keep ]] && KEEP=1

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/quorumfs-mountbench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 1 100); do
        [[ -z $(jobs -pr) ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for m in "$TMP"/m* "$TMP/tmpfs"; do
        umount -l "$m" 2>/dev/null || true
    done
    if [[ $rc != 0 ]]; then
        for f in "$TMP"/*.log; do
            [[ -e $f ]] && { echo "==> $f <==" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${FSD:-} ]]; then
    log "building fsd (cargo build --release -p quorumfs-fsd)"
    (cd "$ROOT" && cargo build --release -p quorumfs-fsd >&2)
    FSD="${CARGO_TARGET_DIR:-$ROOT/target}/release/fsd"
fi
python3 -c "import kazoo" 2>/dev/null || pip install --quiet kazoo >&2

read -r -a P <<<"$("${LIB[@]}" ports 9)"
MEMBERS="1=127.0.0.1:${P[0]},2=127.0.0.1:${P[1]},3=127.0.0.1:${P[2]}"
for i in 0 1 2; do
    id=$((i + 1))
    mkdir -p "$TMP/q$id" "$TMP/m$id"
    "$FSD" run --id "$id" --data "$TMP/q$id" --members "$MEMBERS" \
        --peer-listen "127.0.0.1:${P[i]}" --client-listen "127.0.0.1:${P[i + 3]}" \
        --admin-listen "127.0.0.1:${P[i + 6]}" --mount "$TMP/m$id" \
        >>"$TMP/fsd-$id.log" 2>&1 </dev/null &
    PIDS+=($!)
done
log "waiting for 3 voters with mounts at $TMP/m{1,2,3}"
for i in $(seq 1 300); do
    n=$(grep -c " $TMP/m[123] fuse" /proc/mounts || true)
    [[ $n == 3 ]] && break
    sleep 0.1
done
[[ $n == 3 ]] || { echo "mount.sh: mounts did not come up" >&2; exit 1; }
mkdir -p "$TMP/tmpfs"
mount -t tmpfs -o size=256m tmpfs "$TMP/tmpfs"

log "measuring (${ITERATIONS:-300} iterations per operation)"
python3 "$HERE/mount_bench.py" --mounts "$TMP/m1" "$TMP/m2" --tmpfs "$TMP/tmpfs" \
    --zk "127.0.0.1:${P[3]}" --iterations "${ITERATIONS:-300}"
echo
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
