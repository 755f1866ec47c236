//! The end-to-end harness: real `fsd` processes on loopback, each in its own `TempDir`.
//!
//! It owns process lifetime (spawn, SIGTERM, kill -9, restart, reaping), port choice, readiness
//! polling through the admin endpoint, and small helpers every test needs (a ZooKeeper client
//! that retries its first connect, `eventually`, the CLI with a time limit). What a test
//! asserts is left to the test modules.
//!
//! Rules it keeps (STYLE.md, "Tests"):
//! - No fixed ports: ports are chosen by binding port 0 on 127.0.0.1 and releasing them just
//!   before the daemon starts. A daemon that loses that race (`Address already in use`) during
//!   [`Cluster::start`] makes the harness retry the whole start with fresh ports.
//! - No sleep-for-startup: every wait polls with a deadline and panics with context when the
//!   deadline passes.
//! - No killing by name: only the PIDs this harness spawned are signalled. Every daemon is
//!   also spawned with `PR_SET_PDEATHSIG = SIGKILL`, so a test process killed by the runner
//!   (nextest's timeout) takes its daemons with it.
//! - `Drop` for [`Node`] sends SIGTERM, waits a bounded time, sends SIGKILL, reaps, and dumps the
//!   tail of the node's log when the test is panicking.
//!
//! Blocking calls: everything here except the `async fn`s blocks the calling thread. Async
//! tests use `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` so that blocking the
//! test's own thread (which drives `block_on`) never starves the ZooKeeper clients' session
//! tasks, which run on the workers. Daemons must be spawned from the test's own thread (not
//! from a spawned task or `spawn_blocking`): the parent-death signal fires when the spawning
//! *thread* exits.

#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub use crate::netns::Net;

/// The `fsd` binary Cargo built for this test target.
pub const FSD: &str = env!("CARGO_BIN_EXE_fsd");

/// `--tick-ms` every node gets: client session timeouts negotiate into [200, 2000] ms, so the
/// ephemerals of dead clients vanish within about two seconds.
pub const TICK_MS: u64 = 100;

/// The session timeout test clients ask for (the top of the negotiated range with TICK_MS).
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(2000);

/// How long a cluster gets to elect a leader and report healthy after it starts.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long SIGTERM gets before `Drop` escalates to SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// Lines of each node's log printed when a test fails (override with `E2E_LOG_LINES`).
const DEFAULT_LOG_LINES: usize = 300;

/// How often polling loops look again.
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Polling helpers

/// Calls `f` until it returns `Some`, at most for `timeout`; panics naming `what` otherwise.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// Async form of [`wait_until`], for conditions checked through a ZooKeeper client.
pub async fn eventually<T, Fut>(timeout: Duration, what: &str, mut f: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(v)) = tokio::time::timeout_at(deadline, f()).await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Ports and HTTP

/// `n` distinct free loopback ports. They are all held at once while choosing (so they differ
/// from each other) and released on return, right before a daemon binds them.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Node `id`'s address for `port`: loopback, or its test host's address.
fn host_addr(opts: &Options, id: u64, port: u16) -> SocketAddr {
    match &opts.net {
        Some(net) => SocketAddr::from((net.ip(id as usize), port)),
        None => loopback(port),
    }
}

/// A minimal HTTP/1.0 GET: returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad HTTP reply: {head:?}"),
            )
        })?;
    Ok((code, body.to_string()))
}

/// Sends one ZooKeeper four-letter word on a client port and returns the whole answer.
pub fn four_letter_word(addr: SocketAddr, word: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(word.as_bytes())?;
    let _ = s.shutdown(Shutdown::Write);
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Child processes with a time limit

/// Runs `cmd` to completion with captured stdout/stderr; kills it and panics after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    run_with_input(cmd, None, timeout)
}

/// [`run_with_timeout`] feeding `input` on stdin (then closing it).
///
/// The child leads its own process group, so a timeout kills its children too (zkCli.sh runs
/// `java` as a child of bash, which would otherwise keep the output pipes open).
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    set_parent_death_signal(cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = reader_thread(child.stdout.take().expect("piped stdout"));
    let err = reader_thread(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                // SAFETY: plain kill(2) on the process group this function created.
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
                }
                let _ = child.wait();
                let stdout = out.join().unwrap_or_default();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{cmd:?} did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn reader_thread(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Makes the kernel SIGKILL the child when the spawning thread dies, so that no daemon
/// outlives a test process that was killed before its destructors could run.
pub fn set_parent_death_signal(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid, kill on ourselves).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// Runs the `fsd` command-line client (`ls`, `get`, `status`, ...) with a 60 s limit.
pub fn fsd_cli(args: &[&str]) -> Output {
    let mut cmd = Command::new(FSD);
    cmd.args(args).env("RUST_LOG", "warn");
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

/// Waits (up to `timeout`) for a line of `r` that satisfies `want` and returns it. The rest of
/// the stream keeps being drained in the background so the writer never blocks on a full pipe.
pub fn wait_for_line(
    r: impl Read + Send + 'static,
    timeout: Duration,
    want: impl Fn(&str) -> bool + Send + 'static,
) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        let mut sent = false;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if !sent && want(line.trim_end()) => {
                    sent = true;
                    let _ = tx.send(line.trim_end().to_string());
                }
                Ok(_) => {}
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}

/// A helper child process that is SIGKILLed and reaped when dropped (also on panic).
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// SIGKILL and reap now.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        let mut child = self.0.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------------------------
// Shell scripts on mounts

/// Whether this machine can run a test on FUSE mounts that uses `tools` (checked with
/// `command -v`); prints `SKIP test: ...` when it cannot.
pub fn can_mount_with(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if !Path::new("/dev/fuse").exists() || !missing.is_empty() {
        eprintln!("SKIP {test}: needs /dev/fuse and {missing:?}");
        return false;
    }
    true
}

/// A bash script running in its own process group, its stdout and stderr appended to a log
/// file. [`Script::kill`] and `Drop` SIGKILL the whole group — the script and everything it
/// started (subshells, inotifywait, sleep) — and reap the script, so nothing outlives the
/// test, also when it fails.
pub struct Script {
    child: Option<Child>,
    log: PathBuf,
}

impl Script {
    /// Starts `bash -c script` with stdin from /dev/null and output appended to `log`.
    pub fn spawn(script: &str, log: &Path) -> Script {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        set_parent_death_signal(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn bash -c {script:?}: {e}"));
        Script {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL to the whole process group, then reap the script. No-op once killed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) of the process group the unreaped child leads; its id cannot
            // have been reused while the child is unreaped.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the script to exit and returns its status (the rest of its
    /// process group is killed then); panics with the log when it does not exit in time.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("script already killed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                // SAFETY: as in `kill`; the group's id stays reserved while any member lives.
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
                }
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "script did not exit within {timeout:?}; its log ({}):\n{}",
                    self.log.display(),
                    self.output()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Everything the script has written so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// How a node joins: a voter of the initial `--members`, or a learner via `--join`.
#[derive(Clone, Debug)]
enum Role {
    Voter { members: String },
    Learner { join: SocketAddr },
}

/// Settings shared by every node of a cluster.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--snapshot-every N`.
    pub snapshot_every: Option<u64>,
    /// Extra `fsd run` arguments.
    pub extra_args: Vec<String>,
    /// Mount the tree at `<node dir>/mnt` (`--mount`).
    pub mount: bool,
    /// Run node N as test host N of this network (see `netns`), on that host's address.
    pub net: Option<Arc<Net>>,
    /// Put node `i`'s `--data` at `<data_root>/n<i>` instead of `<node dir>/data` (e.g. on a
    /// forgetful filesystem, see `lazyfs`).
    pub data_root: Option<PathBuf>,
}

/// One `fsd run` process and its data directory. Restarts reuse the directory and the ports.
pub struct Node {
    id: u64,
    role: Role,
    opts: Options,
    /// Holds `data/` and `fsd.log`; removed on drop (kept when `E2E_KEEP=1`).
    dir: Option<TempDir>,
    peer: SocketAddr,
    client: SocketAddr,
    admin: SocketAddr,
    /// The running process, if any. Every path that ends the process reaps it here.
    child: Option<Child>,
    starts: u32,
    /// SIGTERM already sent to the current process: a second one means "exit at once" to
    /// fsd, so it is sent at most once per process.
    term_sent: bool,
}

impl Node {
    fn new(id: u64, role: Role, opts: Options, ports: [u16; 3]) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(&format!("quorumfs-e2e-n{id}-"))
            .tempdir()
            .expect("create node temp dir");
        fs::create_dir_all(dir.path().join("mnt")).expect("create mount dir");
        let data = match &opts.data_root {
            Some(root) => {
                // A retried cluster start reuses the root: start from an empty directory.
                let data = root.join(format!("n{id}"));
                let _ = fs::remove_dir_all(&data);
                data
            }
            None => dir.path().join("data"),
        };
        fs::create_dir_all(data).expect("create data dir");
        Node {
            id,
            role,
            opts: opts.clone(),
            dir: Some(dir),
            peer: host_addr(&opts, id, ports[0]),
            client: host_addr(&opts, id, ports[1]),
            admin: host_addr(&opts, id, ports[2]),
            child: None,
            starts: 0,
            term_sent: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn is_learner(&self) -> bool {
        matches!(self.role, Role::Learner { .. })
    }
    /// `127.0.0.1:C`, the ZooKeeper client port.
    pub fn client_addr(&self) -> String {
        self.client.to_string()
    }
    pub fn client_socket(&self) -> SocketAddr {
        self.client
    }
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("node dir").path()
    }
    /// The `--data` directory.
    pub fn data_dir(&self) -> PathBuf {
        match &self.opts.data_root {
            Some(root) => root.join(format!("n{}", self.id)),
            None => self.dir().join("data"),
        }
    }
    /// The `--mount` directory (mounted only with [`ClusterBuilder::mount`]).
    pub fn mountpoint(&self) -> PathBuf {
        self.dir().join("mnt")
    }

    /// `mountpoint()/rel`.
    pub fn mnt(&self, rel: &str) -> PathBuf {
        self.mountpoint().join(rel.trim_start_matches('/'))
    }

    /// Whether the FUSE mount is up (listed in /proc/mounts and answering).
    pub fn is_mounted(&self) -> bool {
        let mnt = self.mountpoint();
        let listed = fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(mnt.to_string_lossy().as_ref()))
        });
        listed && fs::read_dir(&mnt).is_ok()
    }

    /// Waits until the mount is up.
    pub fn wait_mounted(&self, timeout: Duration) {
        wait_until(timeout, &format!("node {} mounted", self.id), || {
            self.is_mounted().then_some(())
        });
    }

    /// Lazily detaches whatever is mounted at the mount point (a crash leaves a dead
    /// mount behind).
    pub fn detach_mount(&self) {
        let mnt = self.mountpoint();
        let Ok(c) = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()) else {
            return;
        };
        // SAFETY: a valid C string; failure (nothing mounted) is harmless.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }

    /// Where the daemon's stdout and stderr go (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("fsd.log")
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The full `fsd run ...` argument list for this node.
    pub fn run_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["run".into(), "--id".into(), self.id.to_string().into()];
        a.push("--data".into());
        a.push(self.data_dir().into_os_string());
        for (flag, addr) in [
            ("--peer-listen", self.peer),
            ("--client-listen", self.client),
            ("--admin-listen", self.admin),
        ] {
            a.push(flag.into());
            a.push(addr.to_string().into());
        }
        match &self.role {
            Role::Voter { members } => {
                a.push("--members".into());
                a.push(members.into());
            }
            Role::Learner { join } => {
                a.push("--join".into());
                a.push(join.to_string().into());
            }
        }
        a.push("--tick-ms".into());
        a.push(TICK_MS.to_string().into());
        if let Some(n) = self.opts.snapshot_every {
            a.push("--snapshot-every".into());
            a.push(n.to_string().into());
        }
        if self.opts.mount {
            a.push("--mount".into());
            a.push(self.mountpoint().into_os_string());
        }
        a.extend(self.opts.extra_args.iter().map(OsString::from));
        a
    }

    /// A `Command` for `fsd run` with this node's arguments, not yet spawned and without
    /// redirections (for tests that want to run it to completion themselves).
    pub fn run_command(&self) -> Command {
        let mut cmd = match &self.opts.net {
            Some(net) => net.command(self.id as usize, FSD),
            None => Command::new(FSD),
        };
        cmd.args(self.run_args());
        cmd
    }

    /// Spawns the daemon (does not wait for readiness). Panics if it is already running.
    pub fn spawn(&mut self) {
        assert!(!self.is_running(), "node {} is already running", self.id);
        self.starts += 1;
        self.term_sent = false;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open node log");
        let _ = writeln!(
            log,
            "===== harness: start #{} of node {}: {FSD} {:?}",
            self.starts,
            self.id,
            self.run_args()
        );
        let err = log.try_clone().expect("clone log handle");
        let mut cmd = self.run_command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        set_parent_death_signal(&mut cmd);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("spawn fsd for node {}: {e}", self.id)),
        );
    }

    /// True while the process runs (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    /// The exit status if the process has exited (reaped), `None` while it runs or when there
    /// is no process.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                self.log_note(&format!("exited: {status}"));
                Some(status)
            }
            Ok(None) => None,
            Err(e) => panic!("try_wait node {}: {e}", self.id),
        }
    }

    fn log_note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(self.log_path()) {
            let _ = writeln!(f, "===== harness: node {} {what}", self.id);
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // The child is unreaped, so its PID cannot have been reused.
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
    }

    /// Sends SIGTERM once per process (a second SIGTERM makes fsd skip its clean shutdown).
    fn terminate(&mut self) {
        if !self.term_sent {
            self.term_sent = true;
            // A paused process would hold SIGTERM until continued.
            self.signal(libc::SIGCONT);
            self.signal(libc::SIGTERM);
        }
    }

    /// SIGSTOP: the process freezes (its sockets stay open, nothing answers).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.log_note("paused with SIGSTOP");
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.log_note("resumed with SIGCONT");
    }

    /// kill -9 and reap. No-op when not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().expect("wait after SIGKILL");
            self.log_note(&format!("killed with SIGKILL: {status}"));
        }
    }

    /// SIGTERM and wait (up to `TERM_GRACE`, then SIGKILL and panic). Returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("stop: node {} is not running", self.id));
        let pid = child.id();
        self.terminate();
        let deadline = Instant::now() + TERM_GRACE;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "node {} (pid {pid}) did not exit within {TERM_GRACE:?} of SIGTERM",
                    self.id
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again with the same ports and data (after `stop` or `kill9`).
    pub fn restart(&mut self) {
        if self.is_running() {
            let _ = self.stop();
        }
        self.spawn();
    }

    /// `GET /health` is 200.
    pub fn healthy(&self) -> bool {
        matches!(http_get(self.admin, "/health"), Ok((200, _)))
    }

    /// `GET /status` as JSON, `None` when unreachable or unparsable.
    pub fn status(&self) -> Option<Value> {
        match http_get(self.admin, "/status") {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// `node.role` from /status.
    pub fn role(&self) -> Option<String> {
        self.status()
            .and_then(|s| s["node"]["role"].as_str().map(str::to_string))
    }

    /// `node.applied_index` from /status.
    pub fn applied_index(&self) -> Option<u64> {
        self.status()
            .and_then(|s| s["node"]["applied_index"].as_u64())
    }

    /// Waits for `/health` 200; panics early if the process exits.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                panic!(
                    "node {} exited while waiting for it to become healthy: {status}",
                    self.id
                );
            }
            assert!(self.child.is_some(), "node {} is not running", self.id);
            if self.healthy() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {} not healthy within {timeout:?}; last /status: {}",
                    self.id,
                    self.status()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "unreachable".into())
                );
            }
            thread::sleep(POLL);
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Prints the tail of the log to stderr (the test runner shows it for failed tests).
    pub fn dump_log(&self) {
        let lines = std::env::var("E2E_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_LOG_LINES);
        eprintln!(
            "\n========== node {} log ({}; last {lines} lines) ==========\n{}\n========== end of node {} log ==========",
            self.id,
            self.log_path().display(),
            self.log_tail(lines),
            self.id
        );
    }

    fn lost_port_race(&self) -> bool {
        let tail = self.log_tail(50);
        tail.contains("Address already in use")
            || tail.contains("os error 98")
            || tail.contains("AddrInUse")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
            let deadline = Instant::now() + TERM_GRACE;
            while self.child.is_some() && self.exit_status().is_none() && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(20));
            }
            if self.child.is_some() {
                eprintln!(
                    "node {}: no exit within {TERM_GRACE:?} of SIGTERM, sending SIGKILL",
                    self.id
                );
                self.kill9();
            }
        }
        if self.opts.mount {
            self.detach_mount();
        }
        if thread::panicking() {
            self.dump_log();
        }
        if std::env::var_os("E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("node {}: keeping {}", self.id, dir.keep().display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters

/// Builder for a [`Cluster`] with non-default options.
pub struct ClusterBuilder {
    voters: usize,
    opts: Options,
}

impl ClusterBuilder {
    pub fn snapshot_every(mut self, n: u64) -> Self {
        self.opts.snapshot_every = Some(n);
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.opts.extra_args.push(a.to_string());
        self
    }
    /// Mount every node's tree (`--mount <node dir>/mnt`).
    pub fn mount(mut self) -> Self {
        self.opts.mount = true;
        self
    }
    /// Runs node N on test host N of `net` (see `netns`); `net` needs a host for every
    /// node, learners included.
    pub fn net(mut self, net: Net) -> Self {
        self.opts.net = Some(Arc::new(net));
        self
    }
    /// Node `i`'s `--data` is `<root>/n<i>` (see [`Options::data_root`]).
    pub fn data_root(mut self, root: &Path) -> Self {
        self.opts.data_root = Some(root.to_path_buf());
        self
    }

    /// Starts the voters and waits until every one is healthy and one leader is known.
    pub fn start(self) -> Cluster {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut cluster = self.spawn_all();
            match cluster.await_start(START_TIMEOUT) {
                Ok(()) => return cluster,
                Err(msg) if attempt < ATTEMPTS => {
                    eprintln!("cluster start attempt {attempt} lost a port race ({msg}); retrying with new ports");
                    drop(cluster);
                }
                Err(msg) => panic!("cluster did not start: {msg}"),
            }
        }
        unreachable!()
    }

    fn spawn_all(&self) -> Cluster {
        let n = self.voters;
        let ports = free_ports(3 * n);
        let members = (0..n)
            .map(|i| {
                format!(
                    "{}={}",
                    i + 1,
                    host_addr(&self.opts, i as u64 + 1, ports[3 * i])
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                Node::new(
                    i as u64 + 1,
                    Role::Voter {
                        members: members.clone(),
                    },
                    self.opts.clone(),
                    [ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]],
                )
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        Cluster {
            nodes,
            opts: self.opts.clone(),
        }
    }
}

/// A set of [`Node`]s: `n` voters from [`Cluster::start`], plus learners from
/// [`Cluster::add_learner`]. Node ids are 1-based, as on the command line.
pub struct Cluster {
    nodes: Vec<Node>,
    opts: Options,
}

impl Cluster {
    /// `n` voters with default options, healthy and with a leader.
    pub fn start(n: usize) -> Cluster {
        Cluster::builder(n).start()
    }

    /// `voters` voters and `learners` learners, each with its tree mounted (`--mount`) and
    /// `--session-timeout session_timeout_ms`, every mount up.
    pub fn start_mounted(voters: usize, learners: usize, session_timeout_ms: u64) -> Cluster {
        let mut cluster = Cluster::builder(voters)
            .mount()
            .arg("--session-timeout")
            .arg(&session_timeout_ms.to_string())
            .start();
        for _ in 0..learners {
            cluster.add_learner();
        }
        for node in cluster.nodes() {
            node.wait_mounted(START_TIMEOUT);
        }
        cluster
    }

    pub fn builder(voters: usize) -> ClusterBuilder {
        assert!(voters >= 1);
        ClusterBuilder {
            voters,
            opts: Options::default(),
        }
    }

    /// Waits until every node is healthy and a leader is known. `Err` only for a lost port
    /// race (the caller retries); any other early exit panics.
    fn await_start(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            for node in &mut self.nodes {
                if let Some(status) = node.exit_status() {
                    if node.lost_port_race() {
                        return Err(format!("node {} exited with {status}", node.id));
                    }
                    panic!("node {} exited during cluster start: {status}", node.id);
                }
            }
            if self.nodes.iter().all(Node::healthy) && self.leader().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                panic!(
                    "cluster not healthy within {timeout:?}:\n{}",
                    self.describe()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// One line per node: health and /status (for failure messages).
    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "  node {}: healthy={} status={}",
                    n.id,
                    n.healthy(),
                    n.status()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "unreachable".into())
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The test network the nodes run on, if any.
    pub fn net(&self) -> &Net {
        self.opts
            .net
            .as_deref()
            .expect("cluster built without .net(..)")
    }

    /// The node with this id (1-based).
    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Ids of the voters.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.is_learner())
            .map(|n| n.id)
            .collect()
    }

    /// Ids of nodes whose process is running.
    pub fn running_ids(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(n.id))
            .collect()
    }

    /// Client addresses of the given nodes as a ZooKeeper connect string.
    pub fn connect_string(&self, ids: &[u64]) -> String {
        ids.iter()
            .map(|id| self.node(*id).client_addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The id of the node whose /status says `leader`, if exactly one reachable node says so
    /// (with two, during a term change, the one with the higher term).
    pub fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None; // (term, id)
        for node in &self.nodes {
            let Some(s) = node.status() else { continue };
            if s["node"]["role"].as_str() == Some("leader") {
                let term = s["node"]["term"].as_u64().unwrap_or(0);
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, node.id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits for [`Cluster::leader`] to be `Some`, and for that node to be healthy.
    pub fn wait_leader(&self, timeout: Duration) -> u64 {
        wait_until(timeout, "a leader", || {
            self.leader().filter(|id| self.node(*id).healthy())
        })
    }

    /// kill -9 of every running node at once (all signalled before any is reaped), then reaps
    /// them all.
    pub fn kill9_all(&mut self) {
        for node in &self.nodes {
            node.signal(libc::SIGKILL);
        }
        for node in &mut self.nodes {
            node.kill9();
        }
    }

    /// Waits until every running node answers `/health` with 200.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for id in self.running_ids() {
            let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
            self.node_mut(id).wait_healthy(left);
        }
    }

    /// Waits until every running node reports the same `applied_index`, at least `at_least`;
    /// returns it.
    pub fn wait_applied(&mut self, at_least: u64, timeout: Duration) -> u64 {
        let ids = self.running_ids();
        wait_until(
            timeout,
            &format!("nodes {ids:?} to apply index {at_least}"),
            || {
                let idx: Option<Vec<u64>> = ids
                    .iter()
                    .map(|id| self.node(*id).applied_index())
                    .collect();
                let idx = idx?;
                let min = *idx.iter().min()?;
                (min >= at_least && idx.iter().all(|i| *i == min)).then_some(min)
            },
        )
    }

    /// Starts a learner (`--join` a follower's peer address, or the first voter's when no
    /// leader is known) and waits until it is healthy. Returns its id.
    pub fn add_learner(&mut self) -> u64 {
        // "--join ANY_MEMBER": a follower is the case that needs forwarding or a redirect, so
        // prefer one when a leader is known.
        let leader = self.leader();
        let via = self
            .nodes
            .iter()
            .find(|n| !n.is_learner() && leader.is_some() && Some(n.id) != leader)
            .or_else(|| self.nodes.iter().find(|n| !n.is_learner()))
            .expect("a voter")
            .id;
        self.add_learner_via(via)
    }

    /// Starts a learner that joins through voter `via`'s peer address; waits until healthy.
    pub fn add_learner_via(&mut self, via: u64) -> u64 {
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let join = self.node(via).peer;
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let p = free_ports(3);
            let mut node = Node::new(
                id,
                Role::Learner { join },
                self.opts.clone(),
                [p[0], p[1], p[2]],
            );
            node.spawn();
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(status) = node.exit_status() {
                    if node.lost_port_race() && attempt < ATTEMPTS {
                        break;
                    }
                    self.nodes.push(node);
                    panic!("learner {id} exited during start: {status}");
                }
                if node.healthy() {
                    self.nodes.push(node);
                    return id;
                }
                if Instant::now() >= deadline {
                    let status = node.status();
                    self.nodes.push(node);
                    panic!(
                        "learner {id} not healthy within {START_TIMEOUT:?}; /status: {status:?}"
                    );
                }
                thread::sleep(POLL);
            }
        }
        unreachable!()
    }
}

impl Drop for Cluster {
    /// SIGTERM every node first so they shut down in parallel; each `Node`'s own `Drop` then
    /// waits for and reaps its process.
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("cluster at failure:\n{}", self.describe());
        }
        for node in &mut self.nodes {
            node.terminate();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ZooKeeper clients

/// Connects a `zookeeper-client` session to `addr` (a connect string), asking for
/// [`SESSION_TIMEOUT`]; retries for up to 20 s while the server is not yet accepting.
pub async fn zk_connect(addr: &str) -> zookeeper_client::Client {
    zk_connect_with(zookeeper_client::Client::connector(), addr).await
}

/// [`zk_connect`] with a caller-configured connector (e.g. `with_detached()`).
pub async fn zk_connect_with(
    connector: zookeeper_client::Connector,
    addr: &str,
) -> zookeeper_client::Client {
    try_zk_connect(connector, addr, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`zk_connect_with`], but returns the last error after `within` instead of panicking.
pub async fn try_zk_connect(
    connector: zookeeper_client::Connector,
    addr: &str,
    within: Duration,
) -> Result<zookeeper_client::Client, String> {
    let connector = connector.with_session_timeout(SESSION_TIMEOUT);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let attempt =
            tokio::time::timeout(Duration::from_secs(5), connector.clone().connect(addr)).await;
        let err = match attempt {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(e)) => format!("connect to {addr}: {e}"),
            Err(_) => format!("connect to {addr}: no session within 5 s"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{err} (retried for {within:?})"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Options for a plain persistent znode readable and writable by anyone.
pub fn persistent() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all())
}

/// Options for an ephemeral znode.
pub fn ephemeral() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all())
}

/// Options for a persistent-sequential znode.
pub fn sequential() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::PersistentSequential
        .with_acls(zookeeper_client::Acls::anyone_all())
}

/// A small deterministic generator for garbage bytes (xorshift64*); no dependency needed.
pub struct Garbage(u64);

impl Garbage {
    pub fn new(seed: u64) -> Garbage {
        Garbage(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 32) as u8).collect()
    }
}

/// The exit code of `status`, or a description of the signal that ended it.
pub fn describe_exit(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => status.to_string(),
    }
}

/// Opens a file for writing at an offset without truncating it.
pub fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}
