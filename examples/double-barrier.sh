#!/usr/bin/env bash
# A double barrier: N processes on any hosts start a piece of work together and finish
# together.
#
#   double-barrier.sh NAME N MEMBER COMMAND [ARG...]
#       Enter barrier NAME as MEMBER; once N members have entered, run COMMAND; then leave,
#       and return once every member has left. Exits with COMMAND's status.
#   ZK=/zk (default) is the mount point; the barrier lives in $ZK/barriers/NAME.
#
# Protocol (ZooKeeper's double barrier)
#   $ZK/barriers/NAME/in is a sticky directory: each member creates its ephemeral file
#   there (`set -C`, so member names are unique) and holds it on descriptor 3.
#   Enter: whoever sees N files in `in` creates NAME/ready (an exclusive create; losing
#   that race is fine). Everyone waits for `ready`, not for the count itself: a fast member
#   may finish and leave before a slow one has seen N files, but `ready` stays.
#   Leave: a member deletes its file (rm is committed before it returns; the file would
#   go at close too, but the close's delete is not waited for), closes descriptor 3 and
#   waits until `in` is empty.
#   A barrier NAME is used once: take a fresh NAME per round (a date or a run id).
#
# Failure behaviour
#   A member that dies before `ready` exists has left: the others keep waiting for N. A
#   member that dies after `ready` counts as having left, so the others still finish
#   (which is why membership is ephemeral, and why the leave phase does not need N). A
#   member whose host dies or is cut off leaves when that host's session expires. Each
#   wait is backed by a 2 s re-check.
set -euo pipefail

ZK=${ZK:-/zk}
[ $# -ge 4 ] || { echo "usage: double-barrier.sh NAME N MEMBER COMMAND [ARG...]" >&2; exit 2; }
dir=$ZK/barriers/$1
n=$2
member=$3
shift 3

mkdir -p "$dir/in"
chmod +t "$dir/in"   # every member sets it before entering, so no member file is persistent

# Enter.
set -C
exec 3> "$dir/in/$member"
until [ -e "$dir/ready" ]; do
    if [ "$(ls "$dir/in" | wc -l)" -ge "$n" ]; then
        { : > "$dir/ready"; } 2>/dev/null || true   # one member wins; losing is fine
    else
        inotifywait -qq -t 2 -e create -e close_write "$dir" "$dir/in" 3>&- || true
    fi
done
set +C

status=0
"$@" 3>&- || status=$?

# Leave.
rm "$dir/in/$member"
exec 3>&-
until [ -z "$(ls "$dir/in")" ]; do
    inotifywait -qq -t 2 -e delete "$dir/in" || true
done
exit "$status"
