#!/usr/bin/env bash
# The master of the master-worker system (see README.md in this directory).
#
#   master.sh [NAME]     NAME defaults to HOST.PID; ZK=/zk is the mount, MW=mw the system's
#                        directory under it.
#
# Runs as a backup until it wins the election for $MW/master/active, then as the active
# master: assigns each new task in tasks/ to the live worker with the fewest assignments,
# and hands the assignments of workers that are gone to live ones. Everything it does is a
# rename, so a master killed at any point leaves a state the next one simply continues.
set -euo pipefail

ZK=${ZK:-/zk}
R=$ZK/${MW:-mw}
name=${1:-$(hostname).$$}
log() { echo "$(date +%T.%3N) $name: $*"; }

mkdir -p "$R/master" "$R/workers" "$R/tasks" "$R/assign" "$R/results"
chmod +t "$R/master"          # master/active is ephemeral
chmod +t,g+s "$R/workers"     # workers/worker-N are ephemeral and sequential
chmod g+s "$R/tasks"          # tasks/task-N are sequential

# Election: one master holds master/active open on descriptor 3; the others wait for it to
# go (deleted when that master exits or dies, or when its host's session expires).
set -C
until { exec 3> "$R/master/active"; } 2>/dev/null; do
    if [ -z "${announced:-}" ]; then
        log "backup (active: $(cat "$R/master/active" 2>/dev/null || echo none))"
        announced=1
    fi
    inotifywait -qq -t 2 -e delete "$R/master" || true
done
set +C
echo "$name" >&3
log "active"

# The live worker with the fewest assignments (from reconcile's `load`); fails if none.
least_loaded() {
    local w best=
    for w in "${!load[@]}"; do
        if [ -z "$best" ] || [ "${load[$w]}" -lt "${load[$best]}" ]; then best=$w; fi
    done
    [ -n "$best" ] && echo "$best"
}

# One pass over the whole state. Every step is idempotent, so a pass after any change (or
# after a takeover, halfway through the previous master's pass) is always right.
reconcile() {
    local w t target
    local -A load=()
    # Live workers: registered (an ephemeral in workers/) and with an assign/ directory.
    for w in $(ls "$R/workers"); do
        if [ -d "$R/assign/$w" ]; then load[$w]=$(ls "$R/assign/$w" | wc -l); fi
    done
    # Recovery: the assignments of a worker that is gone go to live workers.
    for w in $(ls "$R/assign"); do
        [ ! -e "$R/workers/$w" ] || continue
        for t in $(ls "$R/assign/$w"); do
            if [ -d "$R/results/$t" ]; then
                rm -f "$R/assign/$w/$t"   # done; the worker died before tidying up
            elif target=$(least_loaded) && mv "$R/assign/$w/$t" "$R/assign/$target/$t"; then
                load[$target]=$((load[$target] + 1))
                log "reassigned $t from $w to $target"
            fi
        done
        rm -rf "$R/results/.task-"*".$w"   # its half-written results
        if rmdir "$R/assign/$w" 2>/dev/null; then log "$w is gone"; fi
    done
    # Assignment, oldest task first.
    for t in $(ls "$R/tasks"); do
        target=$(least_loaded) || return 0
        if mv "$R/tasks/$t" "$R/assign/$target/$t"; then
            load[$target]=$((load[$target] + 1))
            log "assigned $t to $target"
        fi
    done
}

# A pass after every change to tasks/, workers/ or assign/ (the first lines inotifywait
# prints come before and after its watches are set up, so nothing is missed in between),
# several changes at once making one pass; and a pass every 5 s, which retries what failed
# (a rename without a quorum fails with EIO after 5 s). Descriptor 3 is not lent to
# inotifywait: the mastership must end with this script.
inotifywait -m -e create -e delete -e moved_to "$R/tasks" "$R/workers" "$R/assign" 3>&- 2>&1 |
while :; do
    read -r -t 5 _ || [ $? -gt 128 ] || break
    while read -r -t 0.05 _; do :; done
    reconcile
done
