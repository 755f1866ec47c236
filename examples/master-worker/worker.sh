#!/usr/bin/env bash
# A worker of the master-worker system (see README.md in this directory).
#
#   worker.sh            ZK=/zk is the mount, MW=mw the system's directory under it.
#
# Registers as workers/worker-N (ephemeral, sequential: the name is unique forever), runs
# each task the master moves into assign/worker-N with bash, and records its result in
# results/task-N: a directory with `output` (stdout and stderr), `status` (exit code) and
# `worker`. It prints a line per task: "worker-N: task-M done", or "... done already" when
# another worker recorded it first.
set -euo pipefail

ZK=${ZK:-/zk}
R=$ZK/${MW:-mw}

mkdir -p "$R/master" "$R/workers" "$R/tasks" "$R/assign" "$R/results"
chmod +t,g+s "$R/workers"     # workers/worker-N are ephemeral and sequential

# Register: the ephemeral lives while descriptor 3 is open in this script. Only then make
# assign/worker-N, so a master that sees the directory also sees the registration.
exec 3> "$R/workers/worker-"
me=$(getfattr --absolute-names --only-values -n user.zk.name /proc/self/fd/3)
echo "$(hostname) $$" >&3
mkdir "$R/assign/$me"
log() { echo "$(date +%T.%3N) $me: $*"; }
log "registered"

# Runs task $1 and records its result, unless it has one already. Records with a rename of
# a finished scratch directory onto results/task-M: a rename onto a non-empty directory
# fails (ENOTEMPTY), atomically in the replicated log, so of two workers that ran the same
# task (a reassignment raced a slow worker), exactly one records it. Returns non-zero, and
# keeps the assignment for a later pass, if the result could not be recorded (EIO).
run() {
    local t=$1 cmd status=0
    local scratch=$R/results/.$t.$me
    if [ ! -d "$R/results/$t" ] && cmd=$(cat "$R/assign/$me/$t" 2>/dev/null); then
        rm -rf "$scratch"
        mkdir "$scratch"
        bash -c "$cmd" < /dev/null > "$scratch/output" 2>&1 3>&- || status=$?
        echo "$status" > "$scratch/status"
        echo "$me" > "$scratch/worker"
        if mv -T "$scratch" "$R/results/$t" 2>/dev/null; then
            log "$t done"
        elif [ -d "$R/results/$t" ]; then
            rm -rf "$scratch"
            log "$t done already"
        else
            return 1
        fi
    fi
    rm -f "$R/assign/$me/$t"
}

# A pass over assign/worker-N after every task moved in (and every 5 s, to retry).
inotifywait -m -e create -e moved_to "$R/assign/$me" 3>&- 2>&1 |
while :; do
    read -r -t 5 _ || [ $? -gt 128 ] || break
    while read -r -t 0.05 _; do :; done
    for t in $(ls "$R/assign/$me"); do
        run "$t" || log "$t: could not record the result; will retry"
    done
done
