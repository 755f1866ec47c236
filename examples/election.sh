#!/usr/bin/env bash
# Leader election with an ephemeral file, and followers that take over.
#
#   election.sh NAME [COMMAND [ARG...]]
#       Campaign as NAME. While another candidate leads, print "NAME: following LEADER"
#       whenever the leader changes; once elected, print "NAME: elected" and run COMMAND
#       (default: sleep forever) as the leader. Leadership ends when COMMAND exits.
#   ZK=/zk (default) is the mount point; ELECTION=election names the election directory.
#
# Protocol
#   $ZK/$ELECTION is a sticky directory (chmod +t), so a file created in it is ephemeral:
#   it lives while a descriptor from its creating open is held on its host. Every candidate
#   tries `set -C; exec 3> leader`: the create is exclusive cluster-wide, so exactly one
#   wins; the others get "cannot overwrite existing file". The winner writes its name into
#   the file (each write to an ephemeral file is committed before it returns) and runs
#   COMMAND, which inherits descriptor 3: the leader is whoever holds it. Followers wait
#   with inotifywait for the leader file to change or go, then try again.
#
# Failure behaviour
#   When the leader exits or is killed (kill -9 included), its descriptor closes, the file
#   is deleted on every host at once and a follower takes over within a moment. When the
#   leader's host dies or is cut off, the file goes after that host's session timeout
#   (fsd --session-timeout). A leader cut off from the cluster cannot tell by itself that
#   it was replaced; guard what it writes with a fencing token (see lock.sh). The watch is
#   backed by a 2 s re-check, so a change between a failed attempt and the watch being set
#   up delays the takeover by at most that.
set -euo pipefail

ZK=${ZK:-/zk}
[ $# -ge 1 ] || { echo "usage: election.sh NAME [COMMAND [ARG...]]" >&2; exit 2; }
name=$1
shift
[ $# -gt 0 ] || set -- sleep infinity
dir=$ZK/${ELECTION:-election}

mkdir -p "$dir"
chmod +t "$dir"   # every candidate sets it before its first create, so none can miss it

set -C
last=
until { exec 3> "$dir/leader"; } 2>/dev/null; do
    leader=$(cat "$dir/leader" 2>/dev/null || true)
    if [ -n "$leader" ] && [ "$leader" != "$last" ]; then
        echo "$name: following $leader"
        last=$leader
    fi
    inotifywait -qq -t 2 -e modify -e delete "$dir" || true
done
set +C

echo "$name" >&3
echo "$name: elected"
exec "$@"   # COMMAND holds descriptor 3, and with it the leadership
