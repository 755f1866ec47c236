#!/usr/bin/env bash
# A client of the master-worker system (see README.md in this directory).
#
#   client.sh COMMAND...   Submit each COMMAND (a bash command line) as a task, wait for all
#                          results, and print one line per task as it completes:
#                          "task-M STATUS OUTPUT". Without COMMANDs: one per line of stdin.
#   ZK=/zk is the mount, MW=mw the system's directory under it.
set -euo pipefail

ZK=${ZK:-/zk}
R=$ZK/${MW:-mw}

mkdir -p "$R/master" "$R/workers" "$R/tasks" "$R/assign" "$R/results"
chmod g+s "$R/tasks"          # tasks/task-N are sequential

if [ $# -eq 0 ]; then
    mapfile -t cmds
    set -- "${cmds[@]}"
fi

# Watch results/ before submitting, so no result can come before the watch.
exec 5< <(inotifywait -m -e moved_to "$R/results" 2>&1)
watcher=$!
trap 'kill $watcher 2>/dev/null' EXIT

# Submits task $1 and prints its name. The sequence number is fixed at open; cat's close
# commits the content (and fails if the commit does, where the shell's own close would not
# tell); the name is read from the open descriptor.
submit() {
    exec 4> "$R/tasks/task-"
    printf '%s\n' "$1" | cat >&4
    getfattr --absolute-names --only-values -n user.zk.name /proc/self/fd/4
    exec 4>&-
}

declare -A pending=()
for cmd in "$@"; do
    t=$(submit "$cmd")
    pending[$t]=1
done

# Print each result as it appears; the first lines from inotifywait (before and after its
# watch is set up) make the first checks.
while [ ${#pending[@]} -gt 0 ]; do
    read -r -u 5 _
    for t in "${!pending[@]}"; do
        if [ -d "$R/results/$t" ]; then
            echo "$t $(cat "$R/results/$t/status") $(cat "$R/results/$t/output")"
            unset "pending[$t]"
        fi
    done
done
