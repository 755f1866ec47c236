#!/usr/bin/env bash
# Cluster-wide mutual exclusion with flock, and fencing tokens.
#
#   lock.sh NAME COMMAND [ARG...]    run COMMAND while holding lock NAME; prints nothing itself
#   ZK=/zk (default) is the mount point; locks live in $ZK/locks/NAME.
#
# Protocol
#   flock(2) on any file in the mount is a lock in the replicated state machine: one
#   exclusive holder across all hosts, waiters granted in FIFO order. When the grant
#   arrives, this host's view already holds every write committed before it, so COMMAND
#   reads what the previous holder wrote (read-modify-write under the lock is safe).
#   Each grant carries a fencing token, increasing per lock file, readable while held as
#   the xattr user.zk.fence; COMMAND gets it as $FENCE.
#
# Failure behaviour
#   The lock is released when COMMAND exits or is killed (kill -9 included: the kernel
#   closes the descriptor), and when this host's fsd dies or is cut off, after its session
#   timeout. In that last case the old holder may still be running COMMAND somewhere that
#   cannot see the cluster; that is what the fencing token is for: a resource that remembers
#   the highest token it has accepted and refuses lower ones cannot be written by a holder
#   whose lock has passed to someone else. With the resource in the mount itself:
#
#     lock.sh deploy sh -c '[ "$FENCE" -gt "$(cat $ZK/app/fence)" ] && echo $FENCE > $ZK/app/fence && ...'
#
#   A waiter killed by a signal stops waiting and never gets the lock. `flock -w SECS`
#   (instead of the plain flock below) gives up after SECS.
set -euo pipefail

ZK=${ZK:-/zk}
[ $# -ge 2 ] || { echo "usage: lock.sh NAME COMMAND [ARG...]" >&2; exit 2; }
lock=$ZK/locks/$1
shift

mkdir -p "$ZK/locks"
[ -e "$lock" ] || : >> "$lock"   # a new file is created when its writer closes it

exec 9< "$lock"                  # the lock belongs to this descriptor and everything sharing it
flock 9                          # blocks until granted, cluster-wide
FENCE=$(getfattr --absolute-names --only-values -n user.zk.fence "$lock")
export FENCE
"$@"                             # inherits descriptor 9: the lock lasts while COMMAND runs
