#!/usr/bin/env bash
# A local 3-voter quorumfs cluster with one FUSE mount per node, for trying the recipes in
# this directory without three hosts.
#
#   examples/cluster.sh [DIR]        # DIR defaults to a new /tmp/quorumfs-cluster.XXXXXX
#
# Node i keeps its data in DIR/nI/data, logs to DIR/nI/fsd.log and mounts the tree at
# DIR/nI/mnt: three "hosts" on one machine, each with its own mount of the same tree. The
# script prints the mount points and a line to copy into other shells, then waits; Ctrl-C
# (or SIGTERM) stops the three daemons, which unmount on the way out, and leaves DIR for a
# restart with the same data.
#
# Needs root (or user_allow_other in /etc/fuse.conf) and /dev/fuse. The fsd binary is $FSD,
# else `fsd` on PATH, else this checkout's target/release or target/debug build.
# Environment: SESSION_TIMEOUT (ms, default 5000) is each host's session timeout: how long
# the ephemeral files and locks of a killed node outlive it. FSD_ARGS adds `fsd run` flags.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${FSD:-}" ]; then
    if command -v fsd >/dev/null; then
        FSD=fsd
    else
        # The newer of this checkout's release and debug builds.
        for f in "$here/../target/release/fsd" "$here/../target/debug/fsd"; do
            if [ -x "$f" ] && { [ -z "${FSD:-}" ] || [ "$f" -nt "$FSD" ]; }; then FSD=$f; fi
        done
    fi
fi
[ -n "${FSD:-}" ] || { echo "cluster.sh: no fsd binary (cargo build --release -p quorumfs-fsd)" >&2; exit 1; }

DIR=${1:-$(mktemp -d /tmp/quorumfs-cluster.XXXXXX)}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# Nine free loopback ports (peer, client, admin per node): a port is free when nothing
# answers a connect on it. Ports are remembered in DIR/ports so a restart keeps them.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -s "$DIR/ports" ]; then
    read -r -a ports < "$DIR/ports"
else
    ports=()
    p=$((20000 + RANDOM % 30000))
    while [ "${#ports[@]}" -lt 9 ]; do
        if port_free "$p"; then ports+=("$p"); fi
        p=$((p + 1))
    done
    echo "${ports[*]}" > "$DIR/ports"
fi
peer() { echo "127.0.0.1:${ports[$(( ($1 - 1) * 3 ))]}"; }
client() { echo "127.0.0.1:${ports[$(( ($1 - 1) * 3 + 1 ))]}"; }
admin() { echo "127.0.0.1:${ports[$(( ($1 - 1) * 3 + 2 ))]}"; }
members="1=$(peer 1),2=$(peer 2),3=$(peer 3)"

pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "stopping the cluster"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # fsd unmounts on SIGTERM; a daemon that died earlier may have left a dead mount.
    for i in 1 2 3; do
        if mountpoint -q "$DIR/n$i/mnt" 2>/dev/null || ! ls "$DIR/n$i/mnt" >/dev/null 2>&1; then
            fusermount3 -u -z "$DIR/n$i/mnt" 2>/dev/null || umount -l "$DIR/n$i/mnt" 2>/dev/null || true
        fi
    done
    echo "stopped; data kept in $DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in 1 2 3; do
    mkdir -p "$DIR/n$i/data" "$DIR/n$i/mnt"
    # shellcheck disable=SC2086 # FSD_ARGS is a list of flags
    RUST_LOG=${RUST_LOG:-warn} "$FSD" run --id "$i" --data "$DIR/n$i/data" \
        --peer-listen "$(peer "$i")" --client-listen "$(client "$i")" --admin-listen "$(admin "$i")" \
        --members "$members" --session-timeout "${SESSION_TIMEOUT:-5000}" \
        --mount "$DIR/n$i/mnt" ${FSD_ARGS:-} >> "$DIR/n$i/fsd.log" 2>&1 &
    pids+=("$!")
done

# Ready when every mount is listed in /proc/mounts and answers (60 s at most).
for i in 1 2 3; do
    for _ in $(seq 600); do
        if grep -q " $DIR/n$i/mnt fuse" /proc/mounts && ls "$DIR/n$i/mnt" >/dev/null 2>&1; then
            continue 2
        fi
        if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
            echo "node $i exited; its log ($DIR/n$i/fsd.log):" >&2
            tail -20 "$DIR/n$i/fsd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "node $i did not mount within 60 s; see $DIR/n$i/fsd.log" >&2
    exit 1
done

cat <<EOF
quorumfs: 3 voters, each with its own mount of the same tree
  host 1: $DIR/n1/mnt   client port $(client 1)   admin $(admin 1)
  host 2: $DIR/n2/mnt   client port $(client 2)   admin $(admin 2)
  host 3: $DIR/n3/mnt   client port $(client 3)   admin $(admin 3)
In other shells, one per "host":
  export ZK=$DIR/n1/mnt      # or n2, n3
  examples/election.sh       # see "Recipes" in README.md
Status: $FSD status --admin $(admin 1)
Ctrl-C stops the cluster.
EOF
wait
