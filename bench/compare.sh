#!/usr/bin/env bash
# quorumfs vs Apache ZooKeeper 3.8, same client, same machine, same run. See bench/README.md.
#
#   bench/compare.sh [--with-million] [--keep]
#
# Environment: FSD=path (skip the build and use this binary), SECONDS_PER_RUN (default 5),
# REPEATS (default 3), ZK_CLASSPATH (override the ZooKeeper classpath), JAVA (default java),
# ZK_HEAP (default 1g, as zkServer.sh's ZK_SERVER_HEAP), MILLION (znode count for
# --with-million, default 1000000).
#
# Progress goes to stderr; raw JSON lines and the final Markdown table go to stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=(python3 "$HERE/benchlib.py")
export PYTHONDONTWRITEBYTECODE=1 # write nothing into the repo (no bench/__pycache__)

SECS=${SECONDS_PER_RUN:-5}
REPEATS=${REPEATS:-3}
MILLION=${MILLION:-1000000}
JAVA=${JAVA:-java}
ZK_HEAP=${ZK_HEAP:-1g}
WITH_MILLION=0
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --with-million) WITH_MILLION=1 ;;
        --keep) KEEP=1 ;;
        -h | --help)
            sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "compare.sh: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

exec 3>&2
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ------------------------------------------------------------------------------ cleanup
PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/quorumfs-compare.XXXXXX")

# The servers this script started and that are still running: PIDS intersected with bash's
# own list of running children (a reaped PID might have been reused by someone else's process).
ours_running() {
    local pid running
    running=" $(jobs -pr | tr '\n' ' ') "
    for pid in "${PIDS[@]}"; do
        [[ $running == *" $pid "* ]] && echo "$pid"
    done
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid left i
    for pid in $(ours_running); do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Bounded wait for them to go, then SIGKILL whatever is left.
    for i in $(seq 1 100); do
        left=$(ours_running)
        [[ -z $left ]] && break
        sleep 0.1
    done
    for pid in $(ours_running); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ $rc != 0 ]]; then
        log "FAILED (exit $rc); last lines of the server logs:"
        local f
        for f in "$TMP"/*.log; do
            [[ -e $f ]] || continue
            echo "==> $f <==" >&2
            tail -n 20 "$f" >&2
        done
    fi
    if [[ $KEEP == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------ fsd
if [[ -z ${FSD:-} ]]; then
    log "building fsd (cargo build --release -p quorumfs-fsd)"
    (cd "$ROOT" && cargo build --release -p quorumfs-fsd >&2)
    FSD="${CARGO_TARGET_DIR:-$ROOT/target}/release/fsd"
fi
[[ -x $FSD ]] || { echo "compare.sh: no fsd binary at $FSD" >&2; exit 1; }
command -v "$JAVA" >/dev/null || { echo "compare.sh: java not found" >&2; exit 1; }

# ------------------------------------------------------------------------------ ports
# 9 for quorumfs (peer, client, admin x3), 9 for ZooKeeper (peer, election, client x3),
# 3 for the single node of --with-million.
read -r -a P <<<"$("${LIB[@]}" ports 21)"
Q_PEER=("${P[@]:0:3}") Q_CLIENT=("${P[@]:3:3}") Q_ADMIN=("${P[@]:6:3}")
Z_PEER=("${P[@]:9:3}") Z_ELECT=("${P[@]:12:3}") Z_CLIENT=("${P[@]:15:3}")
S_PEER=${P[18]} S_CLIENT=${P[19]} S_ADMIN=${P[20]}

join() { local IFS=,; echo "$*"; }
Q_SERVERS=() Q_ADMINS=() Z_SERVERS=()
for i in 0 1 2; do
    Q_SERVERS+=("127.0.0.1:${Q_CLIENT[i]}")
    Q_ADMINS+=("127.0.0.1:${Q_ADMIN[i]}")
    Z_SERVERS+=("127.0.0.1:${Z_CLIENT[i]}")
done

# ------------------------------------------------------------------------------ quorumfs x3
MEMBERS=$(join "1=127.0.0.1:${Q_PEER[0]}" "2=127.0.0.1:${Q_PEER[1]}" "3=127.0.0.1:${Q_PEER[2]}")
Q_PID=()
start_fsd() { # index
    local i=$1 id=$(($1 + 1))
    mkdir -p "$TMP/q$id"
    "$FSD" run --id "$id" --data "$TMP/q$id" \
        --peer-listen "127.0.0.1:${Q_PEER[i]}" --client-listen "127.0.0.1:${Q_CLIENT[i]}" \
        --admin-listen "127.0.0.1:${Q_ADMIN[i]}" --members "$MEMBERS" \
        >>"$TMP/quorumfs-$id.log" 2>&1 </dev/null &
    Q_PID[i]=$!
    PIDS+=($!)
}
log "starting quorumfs: 3 voters, client ports ${Q_CLIENT[*]}"
for i in 0 1 2; do start_fsd "$i"; done
"${LIB[@]}" wait-fsd --admin "$(join "${Q_ADMINS[@]}")" --client "$(join "${Q_SERVERS[@]}")" \
    --pids "$(join "${Q_PID[@]}")" --timeout 30

# ------------------------------------------------------------------------------ ZooKeeper x3
if [[ -z ${ZK_CLASSPATH:-} ]]; then
    # Debian's zkEnv.sh sets CLASSPATH=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar (the
    # jar's manifest pulls in netty, jute, slf4j-api, ...). We replace the conf dir with our
    # own (for log4j.properties) and add an slf4j binding so the servers' logs are kept.
    ZK_ENV_CP=$(
        # shellcheck disable=SC1091
        . /usr/share/zookeeper/bin/zkEnv.sh >/dev/null 2>&1 && echo "${CLASSPATH:-}"
    ) || ZK_ENV_CP=""
    ZK_ENV_CP=${ZK_ENV_CP:-/etc/zookeeper/conf:/usr/share/java/zookeeper.jar}
    ZK_ENV_CP=${ZK_ENV_CP//\/etc\/zookeeper\/conf/$TMP\/zk-conf}
    ZK_CLASSPATH="$ZK_ENV_CP:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
fi
mkdir -p "$TMP/zk-conf"
cat >"$TMP/zk-conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n
EOF
Z_PID=()
start_zk() { # index
    local i=$1 id=$(($1 + 1)) dir="$TMP/z$(($1 + 1))"
    mkdir -p "$dir/data"
    echo "$id" >"$dir/data/myid"
    cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=${Z_CLIENT[i]}
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
server.1=127.0.0.1:${Z_PEER[0]}:${Z_ELECT[0]}
server.2=127.0.0.1:${Z_PEER[1]}:${Z_ELECT[1]}
server.3=127.0.0.1:${Z_PEER[2]}:${Z_ELECT[2]}
EOF
    "$JAVA" "-Xmx$ZK_HEAP" -cp "$ZK_CLASSPATH" \
        -Dlog4j.configuration="file:$TMP/zk-conf/log4j.properties" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
        >>"$TMP/zookeeper-$id.log" 2>&1 </dev/null &
    Z_PID[i]=$!
    PIDS+=($!)
}
log "starting ZooKeeper: 3 servers, client ports ${Z_CLIENT[*]}"
for i in 0 1 2; do start_zk "$i"; done
"${LIB[@]}" wait-zk --servers "$(join "${Z_SERVERS[@]}")" --pids "$(join "${Z_PID[@]}")" --timeout 60
ZK_VERSION="ZooKeeper $(python3 -c "
import sys; sys.path.insert(0, sys.argv[1]); import benchlib
print(benchlib.four_letter_word(sys.argv[2], 'srvr').splitlines()[0].split()[2].split('-')[0])" \
    "$HERE" "${Z_SERVERS[0]}")"
if pkg=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null); then ZK_VERSION+=" (Debian $pkg)"; fi
log "ZooKeeper up: $ZK_VERSION"

# Server lists for the client with a follower first and the leader last, on both systems:
# client i talks to server i % 3, so the 1-client run writes through a follower and the
# 64-client runs spread over all three nodes.
q_order() {
    local l
    l=$("${LIB[@]}" leader fsd "$(join "${Q_ADMINS[@]}")")
    local out=() i
    for i in 0 1 2; do [[ $i != "$l" ]] && out+=("${Q_SERVERS[i]}"); done
    out+=("${Q_SERVERS[l]}")
    join "${out[@]}"
}
z_order() {
    local l
    l=$("${LIB[@]}" leader zk "$(join "${Z_SERVERS[@]}")")
    local out=() i
    for i in 0 1 2; do [[ $i != "$l" ]] && out+=("${Z_SERVERS[i]}"); done
    out+=("${Z_SERVERS[l]}")
    join "${out[@]}"
}

# ------------------------------------------------------------------------------ measurements
RESULTS="$TMP/results.jsonl"
EXTRAS="$TMP/extras.jsonl"
: >"$RESULTS"
: >"$EXTRAS"

bench_one() { # system workload rep clients reads(0/1) seconds
    local system=$1 workload=$2 rep=$3 clients=$4 reads=$5 secs=$6 servers
    if [[ $system == quorumfs ]]; then servers=$(q_order); else servers=$(z_order); fi
    local flags=(--servers "$servers" --clients "$clients" --seconds "$secs" --size 1024 --json)
    [[ $reads == 1 ]] && flags+=(--reads)
    local out
    if ! out=$("$FSD" bench "${flags[@]}" 2>"$TMP/bench.err"); then
        log "fsd bench failed against $system ($workload, run $rep): $FSD bench ${flags[*]}"
        cat "$TMP/bench.err" >&2
        return 1
    fi
    local line
    line=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print(json.dumps({"system": sys.argv[2], "workload": sys.argv[3], "rep": int(sys.argv[4]),
                  "servers": sys.argv[5], **d}))' "$out" "$system" "$workload" "$rep" "$servers")
    echo "$line" | tee -a "$RESULTS"
}

log "warm-up: 2 s of 16-client writes on each system (not reported)"
bench_one quorumfs warmup 0 16 0 2 >/dev/null
bench_one zookeeper warmup 0 16 0 2 >/dev/null
: >"$RESULTS"

for spec in "write1 1 0" "write64 64 0" "read64 64 1"; do
    read -r workload clients reads <<<"$spec"
    for rep in $(seq 1 "$REPEATS"); do
        # Alternate which system goes first, so neither always runs right after the other.
        if ((rep % 2)); then order=(quorumfs zookeeper); else order=(zookeeper quorumfs); fi
        for system in "${order[@]}"; do
            log "$workload run $rep/$REPEATS: $system ($clients clients, ${SECS}s)"
            bench_one "$system" "$workload" "$rep" "$clients" "$reads" "$SECS"
        done
    done
done

# ------------------------------------------------------------------------------ failover
log "failover: kill -9 the quorumfs leader"
l=$("${LIB[@]}" leader fsd "$(join "${Q_ADMINS[@]}")")
s=$(((l + 1) % 3))
# (stderr of the group goes to /dev/null only to hide bash's "Killed" job notice; the
# helper's own stderr still reaches fd 3, the script's stderr.)
{
    fo=$("${LIB[@]}" failover --fsd "$FSD" --pid "${Q_PID[l]}" --survivor "${Q_SERVERS[s]}" \
        --prefix /failover-quorumfs 2>&3)
    wait "${Q_PID[l]}" || true
} 2>/dev/null
echo "{\"system\": \"quorumfs\", \"failover\": $fo, \"killed\": $((l + 1)), \"via\": $((s + 1))}"
echo "{\"failover_quorumfs\": $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["failover_s"])' "$fo")}" >>"$EXTRAS"

log "failover: kill -9 the ZooKeeper leader"
l=$("${LIB[@]}" leader zk "$(join "${Z_SERVERS[@]}")")
s=$(((l + 1) % 3))
{
    fo=$("${LIB[@]}" failover --fsd "$FSD" --pid "${Z_PID[l]}" --survivor "${Z_SERVERS[s]}" \
        --prefix /failover-zookeeper 2>&3)
    wait "${Z_PID[l]}" || true
} 2>/dev/null
echo "{\"system\": \"zookeeper\", \"failover\": $fo, \"killed\": $((l + 1)), \"via\": $((s + 1))}"
echo "{\"failover_zookeeper\": $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["failover_s"])' "$fo")}" >>"$EXTRAS"

# The clusters are no longer needed; stop them before the (optional) single-node part.
for pid in "${Q_PID[@]}" "${Z_PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${Q_PID[@]}" "${Z_PID[@]}"; do
    "${LIB[@]}" wait-exit "$pid" --timeout 30 >/dev/null || true
    wait "$pid" 2>/dev/null || true
done

# ------------------------------------------------------------------------------ 1M znodes
# Each system in turn: one node, MILLION znodes of 100 B loaded with multi() of 100 creates
# from 4 kazoo clients, then VmRSS, SIGTERM, restart, and the time until getData of the last
# znode answers.
start_single() { # system -> sets S_PID
    local system=$1
    if [[ $system == quorumfs ]]; then
        "$FSD" run --data "$TMP/single-q" --peer-listen "127.0.0.1:$S_PEER" \
            --client-listen "127.0.0.1:$S_CLIENT" --admin-listen "127.0.0.1:$S_ADMIN" \
            >>"$TMP/single-quorumfs.log" 2>&1 </dev/null &
    else
        "$JAVA" "-Xmx$ZK_HEAP" -cp "$ZK_CLASSPATH" \
            -Dlog4j.configuration="file:$TMP/zk-conf/log4j.properties" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$TMP/single-z/zoo.cfg" \
            >>"$TMP/single-zookeeper.log" 2>&1 </dev/null &
    fi
    S_PID=$!
    PIDS+=("$S_PID")
}
million() { # system
    local system=$1 key
    key=$([[ $1 == quorumfs ]] && echo q || echo z)
    mkdir -p "$TMP/single-$key"
    if [[ $system == zookeeper ]]; then
        mkdir -p "$TMP/single-z/data"
        cat >"$TMP/single-z/zoo.cfg" <<EOF
tickTime=2000
dataDir=$TMP/single-z/data
clientPort=$S_CLIENT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
EOF
    fi
    log "1M znodes, $system: starting a single node"
    start_single "$system"
    if [[ $system == quorumfs ]]; then
        "${LIB[@]}" wait-fsd --admin "127.0.0.1:$S_ADMIN" --client "127.0.0.1:$S_CLIENT" \
            --pids "$S_PID" --timeout 30
    else
        "${LIB[@]}" wait-zk --servers "127.0.0.1:$S_CLIENT" --pids "$S_PID" --timeout 60
    fi
    log "1M znodes, $system: loading $MILLION znodes of 100 B (multi of 100 creates, 4 clients)"
    local load last rss_kib hwm_kib disk_kib stop_s t0 restart_s rss2_kib
    load=$("${LIB[@]}" load --server "127.0.0.1:$S_CLIENT" --count "$MILLION" --size 100)
    echo "{\"system\": \"$system\", \"million_load\": $load}"
    last=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["last"])' "$load")
    rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$S_PID/status")
    hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$S_PID/status")
    disk_kib=$(du -sk "$TMP/single-$key" | cut -f1)
    log "1M znodes, $system: RSS $((rss_kib / 1024)) MiB (peak $((hwm_kib / 1024)) MiB), data dir $((disk_kib / 1024)) MiB; SIGTERM"
    stop_s=$("${LIB[@]}" wait-exit "$S_PID" --term --timeout 300)
    wait "$S_PID" 2>/dev/null || true
    log "1M znodes, $system: exited ${stop_s}s after SIGTERM; restarting"
    t0=$(python3 -c 'import time; print(time.time())')
    start_single "$system"
    restart_s=$("${LIB[@]}" wait-get --fsd "$FSD" --server "127.0.0.1:$S_CLIENT" --path "$last" \
        --since "$t0" --pid "$S_PID" --timeout 600)
    rss2_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$S_PID/status")
    log "1M znodes, $system: getData $last answered ${restart_s}s after restart (RSS then $((rss2_kib / 1024)) MiB)"
    python3 -c '
import json, sys
s, load = sys.argv[1], json.loads(sys.argv[2])
kib = lambda x: int(x) / 1024
print(json.dumps({f"million_{s}": {
    "count": int(sys.argv[3]), "load_s": load["seconds"], "rss_mib": kib(sys.argv[4]),
    "hwm_mib": kib(sys.argv[5]), "disk_mib": kib(sys.argv[6]), "stop_s": float(sys.argv[7]),
    "restart_s": float(sys.argv[8]), "rss_after_restart_mib": kib(sys.argv[9])}}))' \
        "$system" "$load" "$MILLION" "$rss_kib" "$hwm_kib" "$disk_kib" "$stop_s" "$restart_s" \
        "$rss2_kib" | tee -a "$EXTRAS"
    "${LIB[@]}" wait-exit "$S_PID" --term --timeout 300 >/dev/null
    wait "$S_PID" 2>/dev/null || true
}
if [[ $WITH_MILLION == 1 ]]; then
    python3 -c 'import kazoo' 2>/dev/null ||
        { echo "compare.sh: --with-million needs kazoo (pip install kazoo)" >&2; exit 1; }
    million quorumfs
    million zookeeper
fi

# ------------------------------------------------------------------------------ report
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
fstype=$(df -PT "$TMP" | awk 'NR==2 {print $2}')
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev+="+modified"; fi
machine="$(nproc) CPUs ($cpu), $(awk '/^MemTotal:/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r), data dirs on $fstype; $("$FSD" --version) (commit $rev) vs $ZK_VERSION on $("$JAVA" -version 2>&1 | head -1), heap $ZK_HEAP; all servers and the client on loopback on this one machine; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo
"${LIB[@]}" report --results "$RESULTS" --extras "$EXTRAS" --seconds "$SECS" --machine "$machine"
