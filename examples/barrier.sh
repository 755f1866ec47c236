#!/usr/bin/env bash
# A barrier: processes on any host wait until a coordinator lowers it.
#
#   barrier.sh raise NAME    Raise barrier NAME (fails if it is up already).
#   barrier.sh wait NAME     Block until barrier NAME is down (at once if it is not up).
#   barrier.sh lower NAME    Lower it: every waiter on every host goes on.
#   ZK=/zk (default) is the mount point; barriers live in $ZK/barriers.
#   See double-barrier.sh for "start together, finish together".
#
# Protocol
#   The barrier is up while the file $ZK/barriers/NAME exists. `raise` creates it with
#   `set -C` (an exclusive create, cluster-wide); `lower` deletes it; waiters wait with
#   inotifywait for its deletion, heard on every host's mount.
#
# Failure behaviour
#   The file is persistent: a barrier stays up when the process that raised it dies, until
#   someone lowers it (for a barrier that falls with its owner, create it in a sticky
#   directory and keep the descriptor open, as election.sh does). A waiter needs its own
#   host's fsd; the cluster needs a majority of voters for raise and lower. The watch is
#   backed by a 2 s re-check, so a lowering that lands between the check and the watch
#   being set up is noticed within 2 s.
set -euo pipefail

ZK=${ZK:-/zk}
[ $# -eq 2 ] || { echo "usage: barrier.sh raise|wait|lower NAME" >&2; exit 2; }
dir=$ZK/barriers
barrier=$dir/$2
mkdir -p "$dir"

case $1 in
raise)
    set -C
    : > "$barrier"
    ;;
wait)
    # First catch up with the cluster (`sync FILE` waits until this host holds everything
    # committed before it), so a barrier raised on any host before this call is seen. The
    # file is made by the first waiter; if that fails (two made it at once), the wait
    # still works, only without the catch-up.
    { : >> "$dir/.sync" && sync "$dir/.sync"; } 2>/dev/null || true
    while [ -e "$barrier" ]; do
        inotifywait -qq -t 2 -e delete -e moved_from "$dir" || true
    done
    ;;
lower)
    rm "$barrier"
    ;;
*)
    echo "usage: barrier.sh raise|wait|lower NAME" >&2
    exit 2
    ;;
esac
