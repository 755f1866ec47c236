"""Runs kazoo's own test suite (``kazoo.tests``, shipped in the kazoo wheel) against fsd.

kazoo's tests get their servers from ``kazoo.testing.harness.get_global_cluster()``, which
builds a ``kazoo.testing.common.ZookeeperCluster`` of Java ZooKeeper servers. This pytest
plugin puts a module of that name in ``sys.modules`` before kazoo's harness is imported, so the
harness builds an :class:`FsdCluster` instead: real ``fsd run`` processes on free loopback
ports, each with its own temporary data directory, with the same interface (``start``,
``stop``, ``terminate``, ``reset``, ``get_logs``, ``cluster[i].address``, ``.run()``,
``.stop()``, ``.running``, ...).

Use::

    FSD_BIN=target/release/fsd PYTHONPATH=tests/kazoo \\
        python3 -m pytest -c tests/kazoo/pytest.ini --pyargs kazoo.tests

Environment:

- ``FSD_BIN``: the ``fsd`` binary (required).
- ``ZOOKEEPER_CLUSTER_SIZE``: voters per cluster (default 1, a single-node ensemble).
- ``FSD_KAZOO_MULTI_NODE``: when set, run only the tests that need several servers
  (``NEEDS_SEVERAL_NODES``), on a three-voter cluster.
- ``FSD_KAZOO_KEEP``: when set, keep each node's directory (``fsd.log``, data) for a look.

Tests that need what only the Java server has are skipped with a reason: see ``EXCLUDED``
below (and the README). An entry that matches no collected test is an error, so the list
cannot silently go stale when kazoo changes.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

import pytest

# What the harness reads from the environment. The version is the one fsd reports in `envi`
# (3.8.0-quorumfs-...), so the version checks in kazoo's tests take their 3.5+ branches.
MULTI_NODE = bool(os.environ.get("FSD_KAZOO_MULTI_NODE"))
os.environ.setdefault("ZOOKEEPER_VERSION", "3.8.0")
os.environ.setdefault("ZOOKEEPER_CLUSTER_SIZE", "3" if MULTI_NODE else "1")

# ZooKeeper's super user as kazoo's harness configures it (password "test").
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
# kazoo's harness runs ZooKeeper with tickTime=2000.
TICK_MS = 2000
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: SIGKILL it when pytest dies, so no fsd outlives the run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def _free_ports(n):
    """`n` distinct free loopback ports, all held at once while choosing."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ruok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except OSError:
        return False


class FsdServer:
    """One ``fsd run`` process, in the shape of kazoo's ``ManagedZooKeeper``."""

    def __init__(self, fsd, server_id, ports, members):
        self.fsd = fsd
        self.server_id = server_id
        self.host = "127.0.0.1"
        self.client_port, self.peer_port, self.admin_port = ports
        self.secure_client_port = None
        self.members = members
        self.working_path = tempfile.mkdtemp(prefix="kazoo-fsd-")
        self.process = None
        self._log = None

    @property
    def address(self):
        return "%s:%s" % (self.host, self.client_port)

    @property
    def secure_address(self):
        raise NotImplementedError("fsd has no TLS client port")

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self):
        return os.path.join(self.working_path, "fsd.log")

    def args(self):
        return [
            self.fsd,
            "run",
            "--id",
            str(self.server_id),
            "--data",
            os.path.join(self.working_path, "data"),
            "--peer-listen",
            "127.0.0.1:%d" % self.peer_port,
            "--client-listen",
            "127.0.0.1:%d" % self.client_port,
            "--admin-listen",
            "127.0.0.1:%d" % self.admin_port,
            "--members",
            self.members,
            "--tick-ms",
            str(TICK_MS),
            "--super-digest",
            SUPER_DIGEST,
        ]

    def run(self):
        """Starts the daemon (keeping its ports and data across restarts)."""
        if self.running:
            return
        os.makedirs(self.working_path, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(("===== start: %s\n" % " ".join(self.args())).encode())
        self._log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        self.process = subprocess.Popen(
            self.args(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(
                    "fsd %d exited (%s); log:\n%s"
                    % (self.server_id, self.process.returncode, "".join(self.get_logs()))
                )
            if _ruok(self.client_port) and self._ready_logged():
                return
            time.sleep(0.05)
        raise RuntimeError(
            "fsd %d not ready in %.0f s; log:\n%s"
            % (self.server_id, READY_TIMEOUT_S, "".join(self.get_logs()))
        )

    def _ready_logged(self):
        try:
            with open(self.log_path, "rb") as f:
                return b"fsd ready" in f.read()
        except OSError:
            return False

    def stop(self):
        """SIGTERM, then SIGKILL; keeps the data directory."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def reset(self):
        """Stops the daemon and empties its data directory."""
        self.stop()
        shutil.rmtree(os.path.join(self.working_path, "data"), True)

    def destroy(self):
        """Stops the daemon and removes everything it had on disk (unless FSD_KAZOO_KEEP)."""
        self.stop()
        if not os.environ.get("FSD_KAZOO_KEEP"):
            shutil.rmtree(self.working_path, True)

    def get_logs(self, num_lines=100):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.readlines()[-num_lines:]
        except OSError:
            return []


class FsdCluster:
    """kazoo's ``ZookeeperCluster``, made of fsd voters. Keyword arguments meant for Java
    (install path, classpath, JVM properties, JAAS) are accepted and ignored."""

    def __init__(self, size=1, **_java_only):
        fsd = os.environ.get("FSD_BIN")
        if not fsd:
            raise RuntimeError("FSD_BIN must name the fsd binary")
        ports = [_free_ports(3) for _ in range(size)]
        members = ",".join(
            "%d=127.0.0.1:%d" % (i + 1, p[1]) for i, p in enumerate(ports)
        )
        self._servers = [
            FsdServer(fsd, i + 1, ports[i], members) for i in range(size)
        ]

    def __getitem__(self, k):
        return self._servers[k]

    def __iter__(self):
        return iter(self._servers)

    def start(self):
        for server in self:
            server.run()
        deadline = time.monotonic() + READY_TIMEOUT_S
        for server in self:
            server.wait_ready(deadline)

    def stop(self):
        for server in self:
            server.stop()

    def terminate(self):
        for server in self:
            server.destroy()

    def reset(self):
        for server in self:
            server.reset()

    def get_logs(self):
        logs = []
        for server in self:
            logs += server.get_logs()
        return logs

    def get_ssl_client_configuration(self):
        raise NotImplementedError("fsd has no TLS client port")


_common = types.ModuleType("kazoo.testing.common")
_common.ZookeeperCluster = FsdCluster
_common.__doc__ = "fsd stand-in for kazoo's Java ZooKeeper test cluster (tests/kazoo)."
sys.modules["kazoo.testing.common"] = _common


# -------------------------------------------------------------------------------------------
# Exclusions: FILE::CLASS::TEST -> why it cannot run against fsd.
# Every entry must match a collected test.

SASL = "SASL authentication (needs a JAAS-configured Java server): fsd has digest addAuth only"
TLS = "TLS client port (secureClientPort): fsd serves plain TCP only"
RECONFIG = (
    "dynamic reconfig (opcode 16) is not implemented: fsd answers Unimplemented, as a "
    "standalone ZooKeeper does; fsd changes membership with `fsd members`"
)
READ_ONLY = (
    "read-only mode (a server cut off from its quorum serving read-only sessions) is not "
    "implemented, and the test stops two servers of a three-server cluster"
)
ONE_NODE = (
    "stops one server of a multi-server cluster: runs in the separate three-voter pass "
    "(FSD_KAZOO_MULTI_NODE)"
)
NULL_DATA = (
    "null znode data: the ensemble's tree stores data as bytes without a null marker, so "
    "data written as null reads back as empty (needs a change in ensemble/)"
)

EXCLUDED = {
    "test_sasl.py::TestLegacySASLDigestAuthentication::test_connect_sasl_auth": SASL,
    "test_sasl.py::TestLegacySASLDigestAuthentication::test_invalid_sasl_auth": SASL,
    "test_sasl.py::TestSASLDigestAuthentication::test_connect_sasl_auth": SASL,
    "test_sasl.py::TestSASLDigestAuthentication::test_invalid_sasl_auth": SASL,
    "test_sasl.py::TestSASLGSSAPIAuthentication::test_connect_gssapi_auth": SASL,
    "test_sasl.py::TestSASLGSSAPIAuthentication::test_invalid_gssapi_auth": SASL,
    "test_client.py::TestSSLClient::test_create": TLS,
    "test_client.py::TestReconfig::test_no_super_auth": RECONFIG,
    "test_client.py::TestReconfig::test_add_remove_observer": RECONFIG,
    "test_client.py::TestReconfig::test_bad_input": RECONFIG,
    "test_connection.py::TestReadOnlyMode::test_read_only": READ_ONLY,
    "test_client.py::TestClient::test_create_null_data": NULL_DATA,
    "test_client.py::TestClient::test_set_null_data": NULL_DATA,
}


# Tests that stop a server and expect the client to move to another: skipped on a single
# node, and the only tests of the three-voter pass.
NEEDS_SEVERAL_NODES = {
    "test_client.py::TestClient::test_update_host_list",
}


def pytest_collection_modifyitems(config, items):
    collected_files = set()
    matched = set()
    kept, deselected = [], []
    for item in items:
        file = os.path.basename(str(item.fspath))
        collected_files.add(file)
        key = "::".join([file] + item.nodeid.split("::")[1:])
        several = key in NEEDS_SEVERAL_NODES
        reason = EXCLUDED.get(key)
        if several or reason is not None:
            matched.add(key)
        if MULTI_NODE and not several:
            deselected.append(item)
            continue
        if several and not MULTI_NODE:
            reason = ONE_NODE
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason="excluded for fsd: " + reason))
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    stale = [
        k
        for k in list(EXCLUDED) + sorted(NEEDS_SEVERAL_NODES)
        if k not in matched and k.split("::")[0] in collected_files and not config.option.keyword
    ]
    if stale:
        raise pytest.UsageError(
            "EXCLUDED entries that match no kazoo test (stale list?): %s"
            % ", ".join(sorted(stale))
        )
