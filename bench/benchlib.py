#!/usr/bin/env python3
"""Helpers for bench/compare.sh: ports, readiness, leaders, failover timing, the 1M-znode
loader and the final Markdown report. Standard library only, except `load` (kazoo).

Every wait here is bounded; on timeout a helper exits non-zero with a message on stderr.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request


def die(msg):
    print(f"benchlib: {msg}", file=sys.stderr)
    sys.exit(1)


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


# ---------------------------------------------------------------------------- probes


def four_letter_word(server, word, timeout=1.0):
    """Sends a four-letter word and returns the whole answer ('' on any error)."""
    try:
        with socket.create_connection(hostport(server), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(word.encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def zk_mode(server):
    """'leader', 'follower', 'standalone', ... from `srvr`, or None if not serving."""
    for line in four_letter_word(server, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):].strip()
    return None


def http_get(addr, path, timeout=1.0):
    """(status, body) of GET http://addr/path, or (None, '') when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (OSError, ValueError):
        return None, ""


def fsd_role(admin):
    status, body = http_get(admin, "/status")
    if status != 200:
        return None
    try:
        return json.loads(body)["node"]["role"]
    except (ValueError, KeyError, TypeError):
        return None


def pid_alive(pid):
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(what, pred, timeout, pids=()):
    """Polls pred() every 50 ms until it is truthy; dies after `timeout` s or if a pid exits."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        for pid in pids:
            if not pid_alive(pid):
                die(f"{what}: process {pid} exited while waiting")
        if time.monotonic() >= deadline:
            die(f"{what}: not ready after {timeout:g}s")
        time.sleep(0.05)


# ---------------------------------------------------------------------------- commands


def cmd_ports(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_wait_fsd(a):
    """Every admin endpoint answers /health 200 (knows a leader) and every client port imok."""
    pids = [int(p) for p in a.pids.split(",")] if a.pids else []
    admins = a.admin.split(",")
    clients = a.client.split(",")

    def ready():
        return all(http_get(x, "/health")[0] == 200 for x in admins) and all(
            four_letter_word(c, "ruok") == "imok" for c in clients
        )

    wait_until("quorumfs readiness", ready, a.timeout, pids)


def cmd_wait_zk(a):
    """Every server answers `srvr` with a Mode (i.e. it is in a quorum and serving)."""
    pids = [int(p) for p in a.pids.split(",")] if a.pids else []
    servers = a.servers.split(",")
    wait_until(
        "ZooKeeper readiness",
        lambda: all(zk_mode(s) in ("leader", "follower", "standalone") for s in servers),
        a.timeout,
        pids,
    )


def leader_index(roles):
    leaders = [i for i, r in enumerate(roles) if r == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def cmd_leader(a):
    """Prints the 0-based index of the single leader among the given nodes (bounded wait)."""
    nodes = a.nodes.split(",")
    probe = fsd_role if a.kind == "fsd" else zk_mode

    def find():
        i = leader_index([probe(n) for n in nodes])
        return None if i is None else str(i)

    print(wait_until(f"{a.kind} leader", find, a.timeout))


def cmd_failover(a):
    """kill -9 `pid` and time until `fsd create` through `survivor` succeeds.

    Each attempt is a fresh `fsd create` process (a new session, then one create) with a
    bounded wait; the time reported runs from the SIGKILL to the first successful create.
    """
    log = []
    t0 = time.monotonic()
    os.kill(a.pid, signal.SIGKILL)
    deadline = t0 + a.timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        path = f"{a.prefix}-{n}"
        try:
            r = subprocess.run(
                [a.fsd, "create", path, "x", "--server", a.survivor],
                capture_output=True,
                text=True,
                timeout=a.attempt_timeout,
            )
            ok, err = r.returncode == 0, r.stderr.strip()
        except subprocess.TimeoutExpired:
            ok, err = False, f"attempt timed out after {a.attempt_timeout}s"
        now = time.monotonic()
        if ok:
            print(
                json.dumps(
                    {
                        "failover_s": round(now - t0, 3),
                        "attempts": n,
                        "last_error": log[-1] if log else None,
                    }
                )
            )
            return
        log.append(f"+{now - t0:.3f}s {err}")
        time.sleep(0.02)
    print("\n".join(log[-5:]), file=sys.stderr)
    die(f"no successful write through {a.survivor} within {a.timeout}s of the kill")


def cmd_rss(a):
    with open(f"/proc/{a.pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                print(k, v.strip())


def cmd_wait_get(a):
    """Polls `fsd get PATH` until it answers; prints the seconds since `since` (epoch)."""
    deadline = time.monotonic() + a.timeout
    while True:
        try:
            r = subprocess.run(
                [a.fsd, "get", a.path, "--server", a.server],
                capture_output=True,
                timeout=5,
            )
            if r.returncode == 0:
                print(f"{time.time() - a.since:.3f}")
                return
        except subprocess.TimeoutExpired:
            pass
        if a.pid and not pid_alive(a.pid):
            die(f"process {a.pid} exited before answering")
        if time.monotonic() >= deadline:
            die(f"`fsd get {a.path}` did not answer within {a.timeout}s")
        time.sleep(0.05)


def cmd_wait_exit(a):
    """Optionally SIGTERMs `pid`, then prints the seconds until it has exited."""
    t0 = time.monotonic()
    if a.term:
        os.kill(a.pid, signal.SIGTERM)
    wait_until(f"exit of {a.pid}", lambda: not pid_alive(a.pid), a.timeout)
    print(f"{time.monotonic() - t0:.3f}")


# ---------------------------------------------------------------------------- 1M loader


def _load_worker(args):
    """Creates buckets [lo, hi) of /million: each bucket 1000 children, 100 creates per multi."""
    server, lo, hi, per_bucket, size, window = args
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=server, timeout=30)
    zk.start(timeout=30)
    value = b"v" * size
    pending = []

    def drain(limit):
        while len(pending) > limit:
            res = pending.pop(0).get(timeout=120)
            bad = [r for r in res if isinstance(r, Exception)]
            if bad:
                raise RuntimeError(f"multi failed: {bad[0]!r}")

    made = 0
    for b in range(lo, hi):
        zk.create(f"/million/b{b:04d}", b"")
        for start in range(0, per_bucket, 100):
            t = zk.transaction()
            for j in range(start, min(start + 100, per_bucket)):
                t.create(f"/million/b{b:04d}/n{j:04d}", value)
            pending.append(t.commit_async())
            made += min(100, per_bucket - start)
            drain(window)
    drain(0)
    zk.stop()
    zk.close()
    return made


def cmd_load(a):
    import multiprocessing

    try:
        from kazoo.client import KazooClient
    except ImportError:
        die("the 1M-znode loader needs kazoo: pip install kazoo")
    zk = KazooClient(hosts=a.server, timeout=30)
    zk.start(timeout=30)
    zk.ensure_path("/million")
    zk.stop()
    zk.close()
    per_bucket = 1000
    buckets = (a.count + per_bucket - 1) // per_bucket
    if a.count % per_bucket:
        die("--count must be a multiple of 1000")
    step = (buckets + a.workers - 1) // a.workers
    jobs = [
        (a.server, lo, min(lo + step, buckets), per_bucket, a.size, a.window)
        for lo in range(0, buckets, step)
    ]
    t0 = time.monotonic()
    with multiprocessing.Pool(len(jobs)) as pool:
        made = sum(pool.map(_load_worker, jobs))
    took = time.monotonic() - t0
    last = f"/million/b{buckets - 1:04d}/n{per_bucket - 1:04d}"
    print(json.dumps({"znodes": made, "seconds": round(took, 1),
                      "creates_per_sec": round(made / took), "last": last}))


# ---------------------------------------------------------------------------- report

WORKLOADS = [
    ("write1", "setData 1 KiB, 1 client"),
    ("write64", "setData 1 KiB, 64 clients"),
    ("read64", "getData 1 KiB, 64 clients (round-robin over 3 servers)"),
]


def fmt_num(x, unit):
    if unit == "ops/s":
        return f"{x:,.0f}"
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def verdict(q, z, higher_is_better):
    """'q/z (N× better|worse)'; None when a side is zero/missing."""
    if not q or not z:
        return "n/a"
    r = q / z
    gain = r if higher_is_better else 1 / r
    if 0.95 <= gain <= 1.05:
        word = "≈ same"
    elif gain > 1:
        word = f"{gain:.2f}× better"
    else:
        word = f"{1 / gain:.2f}× worse"
    return f"{r:.2f} ({word})"


def cmd_report(a):
    runs = [json.loads(l) for l in open(a.results) if l.strip()]
    extras = {}
    if a.extras:
        for l in open(a.extras):
            if l.strip():
                extras.update(json.loads(l))

    def med(system, workload, key):
        vals = [r[key] for r in runs if r["system"] == system and r["workload"] == workload]
        return statistics.median(vals) if vals else None

    reps = max((r["rep"] for r in runs), default=0)
    out = []
    out.append(f"Medians of {reps} runs of {a.seconds} s each, same `fsd bench` client for both; "
               "ratio = quorumfs/ZooKeeper.")
    out.append("")
    out.append("| operation | quorumfs | ZooKeeper 3.8 | ratio |")
    out.append("|---|---:|---:|---|")
    for wl, title in WORKLOADS:
        for key, unit, hib in (("ops_per_sec", "ops/s", True), ("p50_ms", "p50 ms", False),
                               ("p99_ms", "p99 ms", False)):
            q, z = med("quorumfs", wl, key), med("zookeeper", wl, key)
            if q is None and z is None:
                continue
            out.append(
                f"| {title}: {unit} | {fmt_num(q, unit) if q is not None else 'n/a'} | "
                f"{fmt_num(z, unit) if z is not None else 'n/a'} | {verdict(q, z, hib)} |"
            )
    fq, fz = extras.get("failover_quorumfs"), extras.get("failover_zookeeper")
    if fq is not None or fz is not None:
        out.append(
            "| failover: kill -9 leader → first write through a survivor succeeds, s | "
            f"{fq if fq is not None else 'n/a'} | {fz if fz is not None else 'n/a'} | "
            f"{verdict(fq, fz, False)} |"
        )
    mq, mz = extras.get("million_quorumfs"), extras.get("million_zookeeper")
    if mq or mz:
        n = (mq or mz)["count"]
        label = f"{n / 1e6:g}M znodes × 100 B, one node"
        rows = [
            ("load time (multi of 100 creates, 4 clients), s", "load_s", False),
            ("RSS after load (VmRSS), MiB", "rss_mib", False),
            ("peak RSS (VmHWM), MiB", "hwm_mib", False),
            ("data directory on disk, MiB", "disk_mib", False),
            ("SIGTERM → process exit, s", "stop_s", False),
            ("restart → getData of the last znode answers, s", "restart_s", False),
            ("RSS right after restart, MiB", "rss_after_restart_mib", False),
        ]
        for what, key, hib in rows:
            q = mq.get(key) if mq else None
            z = mz.get(key) if mz else None
            f = (lambda v: f"{v:,.0f}") if key.endswith("mib") else (lambda v: f"{v:.2f}")
            out.append(f"| {label}: {what} | {f(q) if q is not None else 'n/a'} | "
                       f"{f(z) if z is not None else 'n/a'} | {verdict(q, z, hib)} |")
    out.append("")
    out.append(f"Machine: {a.machine}")
    print("\n".join(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("ports"); s.add_argument("n", type=int); s.set_defaults(f=cmd_ports)

    s = sub.add_parser("wait-fsd")
    s.add_argument("--admin", required=True); s.add_argument("--client", required=True)
    s.add_argument("--pids", default=""); s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(f=cmd_wait_fsd)

    s = sub.add_parser("wait-zk")
    s.add_argument("--servers", required=True); s.add_argument("--pids", default="")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(f=cmd_wait_zk)

    s = sub.add_parser("leader")
    s.add_argument("kind", choices=["fsd", "zk"]); s.add_argument("nodes")
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(f=cmd_leader)

    s = sub.add_parser("failover")
    s.add_argument("--fsd", required=True); s.add_argument("--pid", type=int, required=True)
    s.add_argument("--survivor", required=True); s.add_argument("--prefix", required=True)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--attempt-timeout", type=float, default=3)
    s.set_defaults(f=cmd_failover)

    s = sub.add_parser("rss"); s.add_argument("pid", type=int); s.set_defaults(f=cmd_rss)

    s = sub.add_parser("wait-get")
    s.add_argument("--fsd", required=True); s.add_argument("--server", required=True)
    s.add_argument("--path", required=True); s.add_argument("--since", type=float, required=True)
    s.add_argument("--pid", type=int, default=0); s.add_argument("--timeout", type=float, default=600)
    s.set_defaults(f=cmd_wait_get)

    s = sub.add_parser("wait-exit")
    s.add_argument("pid", type=int); s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--term", action="store_true")
    s.set_defaults(f=cmd_wait_exit)

    s = sub.add_parser("load")
    s.add_argument("--server", required=True); s.add_argument("--count", type=int, default=1_000_000)
    s.add_argument("--size", type=int, default=100); s.add_argument("--workers", type=int, default=4)
    s.add_argument("--window", type=int, default=8)
    s.set_defaults(f=cmd_load)

    s = sub.add_parser("report")
    s.add_argument("--results", required=True); s.add_argument("--extras", default="")
    s.add_argument("--seconds", required=True); s.add_argument("--machine", required=True)
    s.set_defaults(f=cmd_report)

    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
