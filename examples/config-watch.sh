#!/usr/bin/env bash
# Configuration published atomically, and reloaded on every host when it changes.
#
#   config-watch.sh publish NAME [FILE]
#       Publish FILE (default: stdin) as configuration NAME.
#   config-watch.sh get NAME
#       Print the latest configuration NAME (linearizable: waits for this host to catch up).
#   config-watch.sh watch NAME [COMMAND [ARG...]]
#       Now and after every change: run COMMAND ARG... FILE (e.g. a reload), or by default
#       print the new content. Content that did not change is not reported again.
#   ZK=/zk (default) is the mount point; configuration lives in $ZK/config.
#
# Protocol
#   The publisher writes the new content to a temporary file beside the real one and
#   renames it over $ZK/config/NAME. The rename is atomic in the replicated log, so every
#   reader on every host sees the old content or the new, never a mix, and never a file
#   that is missing. (A plain `cat FILE > $ZK/config/NAME` is atomic too, as content is
#   committed at close; the temporary file lets the publisher check the new content before
#   it goes live, and leaves the old one in place if writing fails half-way.) Watchers
#   follow the directory with inotifywait and re-read the file after every event; the
#   read already returns the new content when the event arrives.
#
# Failure behaviour
#   A publisher that dies before its rename leaves a .NAME.* temporary file and the old
#   configuration live. Without a majority of voters, publishing fails with EIO after 5 s
#   and nothing changes; watchers keep the last content they saw. Changes arrive in commit
#   order; a watcher that is busy may skip intermediate versions, but never goes back to
#   an older one.
set -euo pipefail

ZK=${ZK:-/zk}
[ $# -ge 2 ] || { echo "usage: config-watch.sh publish|get|watch NAME ..." >&2; exit 2; }
dir=$ZK/config
file=$dir/$2
mkdir -p "$dir"

case $1 in
publish)
    tmp=$dir/.$2.$(hostname).$$
    cat "${3:--}" > "$tmp"
    mv -f "$tmp" "$file"
    ;;
get)
    sync "$file"   # fsync of a read-only descriptor: wait for everything committed so far
    cat "$file"
    ;;
watch)
    shift 2
    last=
    inotifywait -m -e close_write -e moved_to -e delete "$dir" 2>&1 | while read -r _; do
        # A missing file (deleted, or not published yet) keeps the last configuration.
        now=$(cat "$file" 2>/dev/null) || continue
        if [ "$now" != "$last" ]; then
            last=$now
            if [ $# -gt 0 ]; then
                "$@" "$file" || echo "config-watch.sh: $* failed" >&2
            else
                printf '%s\n' "$now"
            fi
        fi
    done
    ;;
*)
    echo "usage: config-watch.sh publish|get|watch NAME ..." >&2
    exit 2
    ;;
esac
