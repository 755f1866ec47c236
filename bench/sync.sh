#!/usr/bin/env bash
# bench/sync.sh: the cost of durable writes. Starts a 3-voter quorumfs cluster on loopback
# with fresh data directories, runs `fsd bench` (setData 1 KiB, closed loop) with 1 and with
# 64 clients REPEATS times each, and prints every run as a JSON line plus the medians.
#
#   FSD=/path/to/fsd bench/sync.sh        # default: $CARGO_TARGET_DIR (or target)/debug/fsd
#
# Knobs: SECONDS_PER_RUN (default 5), REPEATS (default 3), TMPDIR (where the data directories
# go: put it on the disk you want to measure). Stops everything it started on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=(python3 "$HERE/benchlib.py")
export PYTHONDONTWRITEBYTECODE=1
FSD=${FSD:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/fsd}
SECS=${SECONDS_PER_RUN:-5}
REPEATS=${REPEATS:-3}
[[ -x $FSD ]] || { echo "sync.sh: no fsd binary at $FSD" >&2; exit 1; }

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/quorumfs-sync.XXXXXX")
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 1 100); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ $rc != 0 ]] && tail -n 20 "$TMP"/*.log >&2
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT INT TERM

read -r -a P <<<"$("${LIB[@]}" ports 9)"
join() { local IFS=,; echo "$*"; }
MEMBERS=$(join "1=127.0.0.1:${P[0]}" "2=127.0.0.1:${P[1]}" "3=127.0.0.1:${P[2]}")
SERVERS=() ADMINS=()
for i in 0 1 2; do
    id=$((i + 1))
    mkdir -p "$TMP/q$id"
    "$FSD" run --id "$id" --data "$TMP/q$id" --peer-listen "127.0.0.1:${P[i]}" \
        --client-listen "127.0.0.1:${P[i + 3]}" --admin-listen "127.0.0.1:${P[i + 6]}" \
        --members "$MEMBERS" >>"$TMP/fsd-$id.log" 2>&1 </dev/null &
    PIDS+=($!)
    SERVERS+=("127.0.0.1:${P[i + 3]}")
    ADMINS+=("127.0.0.1:${P[i + 6]}")
done
"${LIB[@]}" wait-fsd --admin "$(join "${ADMINS[@]}")" --client "$(join "${SERVERS[@]}")" \
    --pids "$(join "${PIDS[@]}")" --timeout 60

RESULTS="$TMP/results.jsonl"
for clients in 1 64; do
    for rep in $(seq 1 "$REPEATS"); do
        "$FSD" bench --servers "$(join "${SERVERS[@]}")" --clients "$clients" \
            --seconds "$SECS" --size 1024 --json | tee -a "$RESULTS"
    done
done
python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for c in sorted({r["clients"] for r in runs}):
    rs = [r for r in runs if r["clients"] == c]
    med = lambda k: statistics.median(r[k] for r in rs)
    print(f"clients={c}: median of {len(rs)} runs: {med('ops_per_sec'):.0f} ops/s, "
          f"p50 {med('p50_ms'):.2f} ms, p99 {med('p99_ms'):.2f} ms")
EOF
