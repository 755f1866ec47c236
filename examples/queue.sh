#!/usr/bin/env bash
# A producer/consumer queue: every item is taken by exactly one consumer, however many
# consumers on however many hosts.
#
#   queue.sh put [ITEM...]         Append each ITEM (without ITEMs: each line of stdin).
#   queue.sh take                  Take the oldest item and print it; waits while empty.
#   queue.sh consume COMMAND [ARG...]
#                                  Forever: take items as they come, oldest first, and run
#                                  COMMAND ARG... ITEM for each.
#   ZK=/zk (default) is the mount point; QUEUE=queue names the queue's directory.
#
# Protocol
#   $ZK/$QUEUE/items is a setgid directory: `echo ITEM > items/item-` creates
#   item-0000000042, numbered in commit order, so `ls` lists the queue oldest first. A
#   consumer takes an item by renaming it into $ZK/$QUEUE/taken/ under a name of its own.
#   A rename is committed atomically in the replicated log: when several consumers try
#   the same item, one rename succeeds and the others fail with ENOENT and try the next
#   item. The winner reads the item, runs COMMAND, and deletes it. Consumers wait for new
#   items with inotifywait, which hears a put made on any host.
#
# Failure behaviour
#   An item is never handed out twice and never lost: a consumer that dies between taking
#   an item and deleting it leaves it in taken/ under its name (HOST.PID.item-N), to be
#   looked at and requeued by hand (`queue.sh put < taken/FILE && rm taken/FILE`). A
#   COMMAND that fails leaves its item there too. Producers and consumers need their own
#   host's fsd; puts and takes need a majority of voters, and fail with EIO after 5 s
#   without one (a failed `put` exits non-zero: retry it).
set -euo pipefail

ZK=${ZK:-/zk}
dir=$ZK/${QUEUE:-queue}
me=$(hostname).$$
mkdir -p "$dir/items" "$dir/taken"
chmod g+s "$dir/items"   # every producer sets it before its first put

# Moves the oldest item this consumer can get into taken/ and prints its new name; fails
# when the queue is empty.
claim() {
    local item
    for item in $(ls "$dir/items"); do
        if mv "$dir/items/$item" "$dir/taken/$me.$item" 2>/dev/null; then
            echo "$me.$item"
            return 0
        fi
    done
    return 1
}

case ${1:-} in
put)
    shift
    if [ $# -eq 0 ]; then
        while IFS= read -r item; do printf '%s\n' "$item" > "$dir/items/item-"; done
    else
        for item in "$@"; do printf '%s\n' "$item" > "$dir/items/item-"; done
    fi
    ;;
take)
    until taken=$(claim); do
        inotifywait -qq -t 2 -e create -e moved_to "$dir/items" || true
    done
    cat "$dir/taken/$taken"
    rm "$dir/taken/$taken"
    ;;
consume)
    shift
    [ $# -ge 1 ] || { echo "usage: queue.sh consume COMMAND [ARG...]" >&2; exit 2; }
    # Each line inotifywait prints is a reason to look again; the first ones come before
    # and after the watch is set up, so nothing put in between is missed.
    inotifywait -m -e create -e moved_to "$dir/items" 2>&1 | while read -r _; do
        while taken=$(claim); do
            if "$@" "$(cat "$dir/taken/$taken")"; then
                rm "$dir/taken/$taken"
            else
                echo "queue.sh: $* failed; item left in $dir/taken/$taken" >&2
            fi
        done
    done
    ;;
*)
    echo "usage: queue.sh put [ITEM...] | take | consume COMMAND [ARG...]" >&2
    exit 2
    ;;
esac
