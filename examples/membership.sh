#!/usr/bin/env bash
# Group membership with ephemeral files, and a live member list.
#
#   membership.sh join NAME [COMMAND [ARG...]]
#       Be a member called NAME while COMMAND runs (default: sleep forever).
#   membership.sh list     Print the members, one per line.
#   membership.sh watch    Print "members: A B C" now and after every change.
#   ZK=/zk (default) is the mount point; GROUP=members names the group's directory.
#
# Protocol
#   $ZK/$GROUP is a sticky directory, so each member's file there is ephemeral: it exists
#   while the member's process (or anything that inherited its descriptor 3) runs. `set -C`
#   makes the name exclusive: a second member with the same name is refused. The file
#   holds the member's host and pid, for people. The member list is the directory
#   listing; inotifywait on any host hears every join and leave in commit order.
#
# Failure behaviour
#   A member that exits or is killed leaves at once, everywhere. A member whose host dies
#   or is cut off leaves when that host's session expires (fsd --session-timeout). A
#   watcher that loses its own host's fsd stops (its mount is gone).
set -euo pipefail

ZK=${ZK:-/zk}
dir=$ZK/${GROUP:-members}
mkdir -p "$dir"
chmod +t "$dir"   # every member sets it before joining, so no member file is persistent

members() { ls "$dir" | tr '\n' ' ' | sed 's/ $//'; }

case ${1:-} in
join)
    [ $# -ge 2 ] || { echo "usage: membership.sh join NAME [COMMAND [ARG...]]" >&2; exit 2; }
    name=$2
    shift 2
    [ $# -gt 0 ] || set -- sleep infinity
    set -C
    { exec 3> "$dir/$name"; } 2>/dev/null || { echo "membership.sh: $name is already a member" >&2; exit 1; }
    set +C
    echo "$(hostname) $$" >&3
    exec "$@"
    ;;
list)
    ls "$dir"
    ;;
watch)
    # inotifywait's "Watches established." line is the first trigger: the list printed
    # for it is read after the watch is up, so no change can fall in between.
    last=-
    inotifywait -m -e create -e delete "$dir" 2>&1 | while read -r _; do
        now=$(members)
        if [ "$now" != "$last" ]; then
            echo "members: $now"
            last=$now
        fi
    done
    ;;
*)
    echo "usage: membership.sh join NAME [COMMAND...] | list | watch" >&2
    exit 2
    ;;
esac
