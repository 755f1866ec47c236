#!/usr/bin/env python3
"""Latency of filesystem operations on quorumfs mounts beside the same operations on tmpfs.

Two views of each operation: the syscalls alone, timed in this process, and the shell
command a script runs (rows starting with `$`), a process each.

Run by bench/mount.sh, which starts the cluster and passes the directories:

    mount_bench.py --mounts A B C --tmpfs DIR --zk HOST:PORT [--iterations N]

Each operation runs on quorumfs and on tmpfs alternately (so both see the same load), first
in this process as the syscalls a shell tool makes (stat: stat(2);
cat: open, read, close; ls: listdir; echo > file: open(O_TRUNC), write, close; mkdir;
flock: open, flock(LOCK_EX), flock(LOCK_UN), close), N times, and reports the median and
p99 in microseconds as one JSON line each, then a Markdown table with the ratio to tmpfs.
"Remote" rows measure what a change made on mount A costs on mount B: a `cat` on B right
after A changed the file, and the time from A's close() returning to B's inotify event.
The client-port row is a setData of the same 1 KiB through kazoo on the same node.
"""

import argparse
import ctypes
import fcntl
import json
import os
import select
import statistics
import struct
import subprocess
import time


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


def summary(name, samples):
    return {"op": name, "n": len(samples), "p50_us": statistics.median(samples),
            "p99_us": pct(samples, 0.99)}


def measure(name, fn, n):
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - t) / 1000)
    return summary(name, out)


def interleaved(q_ops, t_ops):
    """Runs each operation on quorumfs and tmpfs alternately, iteration by iteration, so
    that both see the same machine load; returns their summaries."""
    q_rows, t_rows = [], []
    for (name, qf, n), (_, tf, _) in zip(q_ops, t_ops):
        qs, ts = [], []
        for i in range(n):
            for f, out in ((qf, qs), (tf, ts)):
                t = time.perf_counter_ns()
                f(i)
                out.append((time.perf_counter_ns() - t) / 1000)
        q_rows.append(summary(name, qs))
        t_rows.append(summary(name, ts))
    return q_rows, t_rows


def cat(path):
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, 65536):
        pass
    os.close(fd)


def write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.close(fd)


def flock_cycle(path):
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def command_ops(root, n, tag):
    """The same operations as the shell tools a script runs (a process each)."""
    d = os.path.join(root, f"cmd-{tag}")
    os.makedirs(d, exist_ok=True)
    f = os.path.join(d, "file")
    write(f, b"x" * 1024)
    big = os.path.join(d, "big")
    os.makedirs(big, exist_ok=True)
    for i in range(1000):
        write(os.path.join(big, f"e{i:04}"), b"")
    n = max(30, n // 3)
    return [
        ("$ stat", lambda i: run(["stat", f]), n),
        ("$ cat 1 KiB", lambda i: run(["cat", f]), n),
        ("$ ls 1,000 entries", lambda i: run(["ls", big]), n),
        ("$ echo > file", lambda i: run(["sh", "-c", f"echo {i} > {f}"]), n),
        ("$ mkdir", lambda i: run(["mkdir", os.path.join(d, f"dir{i}")]), n),
        ("$ flock -x file true", lambda i: run(["flock", "-x", f, "true"]), n),
    ]


def local_ops(root, n, tag):
    """The local operations under directory `root`."""
    data = b"x" * 1024
    d = os.path.join(root, f"bench-{tag}")
    os.makedirs(d, exist_ok=True)
    f = os.path.join(d, "file")
    write(f, data)
    big = os.path.join(d, "big")
    os.makedirs(big, exist_ok=True)
    for i in range(1000):
        write(os.path.join(big, f"e{i:04}"), b"")
    lock = os.path.join(d, "lock")
    write(lock, b"")
    return [
        ("stat", lambda i: os.stat(f), n),
        ("cat 1 KiB (hot)", lambda i: cat(f), n),
        ("ls 1,000 entries", lambda i: os.listdir(big), max(20, n // 10)),
        ("echo > file (1 KiB commit)", lambda i: write(f, data), n),
        ("mkdir", lambda i: os.mkdir(os.path.join(d, f"dir{i}")), n),
        ("flock acquire+release", lambda i: flock_cycle(lock), n),
    ]


class Inotify:
    IN_CLOSE_WRITE = 0x8

    def __init__(self, path):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        if libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def wait(self, timeout=5.0):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            raise TimeoutError("no inotify event")
        buf = os.read(self.fd, 65536)
        return struct.unpack_from("iIII", buf)


def remote_ops(a, b, n):
    data = b"y" * 1024
    da, db = os.path.join(a, "bench-remote"), os.path.join(b, "bench-remote")
    os.makedirs(da, exist_ok=True)
    fa, fb = os.path.join(da, "file"), os.path.join(db, "file")
    write(fa, data)
    deadline = time.time() + 10
    while not os.path.exists(fb):
        if time.time() > deadline:
            raise TimeoutError("file never reached mount B")
        time.sleep(0.01)
    watch = Inotify(db)
    lat, cats = [], []
    for i in range(n):
        content = (b"%08d" % i) * 128
        t = time.perf_counter_ns()
        write(fa, content)
        t_closed = time.perf_counter_ns()
        watch.wait()
        t_event = time.perf_counter_ns()
        lat.append((t_event - t_closed) / 1000)
        t = time.perf_counter_ns()
        fd = os.open(fb, os.O_RDONLY)
        got = os.read(fd, 4096)
        os.close(fd)
        cats.append((time.perf_counter_ns() - t) / 1000)
        if got != content:
            raise AssertionError(f"cat after the event read stale content on mount B ({i})")
    return [
        {"op": "cat 1 KiB after a remote change", "n": n, "p50_us": statistics.median(cats), "p99_us": pct(cats, 0.99)},
        {"op": "remote commit -> inotify event", "n": n, "p50_us": statistics.median(lat), "p99_us": pct(lat, 0.99)},
    ]


def client_port(zk, n):
    from kazoo.client import KazooClient

    c = KazooClient(hosts=zk)
    c.start()
    c.ensure_path("/bench-client")
    data = b"z" * 1024
    row = measure("setData 1 KiB via client port", lambda i: c.set("/bench-client", data), n)
    c.stop()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mounts", nargs="+", required=True)
    ap.add_argument("--tmpfs", required=True)
    ap.add_argument("--zk", required=True)
    ap.add_argument("--iterations", type=int, default=300)
    args = ap.parse_args()
    n = args.iterations

    fs, tmp = interleaved(
        local_ops(args.mounts[0], n, "q") + command_ops(args.mounts[0], n, "q"),
        local_ops(args.tmpfs, n, "t") + command_ops(args.tmpfs, n, "t"),
    )
    remote = remote_ops(args.mounts[0], args.mounts[1], max(50, n // 3))
    port = client_port(args.zk, n)
    for row in fs:
        row["fs"] = "quorumfs"
    for row in tmp:
        row["fs"] = "tmpfs"
    for row in fs + tmp + remote + [port]:
        print(json.dumps(row))

    print()
    print("| operation | quorumfs p50 | p99 | tmpfs p50 | p99 | p50 ratio |")
    print("|---|---|---|---|---|---|")
    for q, t in zip(fs, tmp):
        print(f"| {q['op']} | {q['p50_us']:.0f} µs | {q['p99_us']:.0f} µs | "
              f"{t['p50_us']:.0f} µs | {t['p99_us']:.0f} µs | {q['p50_us'] / t['p50_us']:.1f}× |")
    for r in remote:
        print(f"| {r['op']} | {r['p50_us']:.0f} µs | {r['p99_us']:.0f} µs | | | |")
    commit = next(r for r in fs if r["op"].startswith("echo"))
    print(f"| {port['op']} | {port['p50_us']:.0f} µs | {port['p99_us']:.0f} µs | | | "
          f"commit through the mount / client port: {commit['p50_us'] / port['p50_us']:.2f}× |")


if __name__ == "__main__":
    main()
