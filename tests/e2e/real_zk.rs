//! A standalone Apache ZooKeeper 3.8 (Debian's `zookeeper` package) for differential tests.
//!
//! It owns one JVM running `org.apache.zookeeper.server.ZooKeeperServerMain` on a free
//! loopback port, with its own `zoo.cfg` and data directory in a `TempDir`. What the tests
//! compare is left to `differential`.
//!
//! Configuration (the choices a test may depend on):
//! - `tickTime=2000`, so sessions negotiate into [4 s, 40 s];
//! - `4lw.commands.whitelist=*` and `admin.enableServer=false` (no Jetty, no fixed port 8080);
//! - `-Dzookeeper.extendedTypesEnabled=true`, which enables TTL nodes;
//! - `-Dznode.container.checkIntervalMs=500`, so that empty containers and expired TTL nodes
//!   are reaped within about a second instead of ZooKeeper's default minute.
//!
//! Readiness is a bounded poll: `ruok` must answer `imok` and `srvr` must report
//! `Mode: standalone` (ZooKeeper answers `imok` a moment before it serves requests). The JVM
//! is spawned with `PR_SET_PDEATHSIG`, like the harness's daemons, and killed, reaped and its
//! directory removed on `Drop` (the log tail is printed first when the test is panicking).
//!
//! Environment overrides: `ZOOKEEPER_JAR` (default `/usr/share/java/zookeeper.jar`, whose
//! manifest names its dependencies) and `JAVA` (default: `$JAVA_HOME/bin/java`, then `java`
//! on `PATH`).

#![allow(dead_code)]

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::harness::{four_letter_word, free_ports, set_parent_death_signal};

/// Where Debian installs the server jar.
pub const DEFAULT_JAR: &str = "/usr/share/java/zookeeper.jar";

/// An SLF4J binding that prints to stderr (in `zk.log`), if installed; without one ZooKeeper
/// logs nothing.
const SLF4J_SIMPLE: &str = "/usr/share/java/slf4j-simple.jar";

/// How long the JVM gets to serve (a cold JVM on a loaded two-core machine is slow).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Log lines printed when a test fails.
const LOG_LINES: usize = 80;

/// The server jar and the `java` binary, or why the differential tests must skip.
pub fn installation() -> Result<(PathBuf, PathBuf), String> {
    let jar = std::env::var_os("ZOOKEEPER_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_JAR));
    if !jar.is_file() {
        return Err(format!(
            "{} not found (Debian package `zookeeper`)",
            jar.display()
        ));
    }
    let java = find_java().ok_or_else(|| "no `java` (set JAVA or JAVA_HOME)".to_string())?;
    Ok((jar, java))
}

fn find_java() -> Option<PathBuf> {
    if let Some(j) = std::env::var_os("JAVA").map(PathBuf::from) {
        return j.is_file().then_some(j);
    }
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let j = Path::new(&home).join("bin/java");
        if j.is_file() {
            return Some(j);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("java"))
        .find(|j| j.is_file())
}

/// One standalone ZooKeeper server.
pub struct RealZk {
    jar: PathBuf,
    java: PathBuf,
    /// Holds `zoo.cfg`, `data/` and `zk.log`; removed on drop.
    dir: TempDir,
    addr: SocketAddr,
    child: Option<Child>,
}

impl RealZk {
    /// Starts a server and waits until it serves, or returns `None` after printing
    /// `SKIP <test>: ...` when Java or the jar is not installed.
    pub fn start_or_skip(test: &str) -> Option<RealZk> {
        let mut zk = RealZk::launch_or_skip(test)?;
        zk.wait_ready();
        Some(zk)
    }

    /// Spawns the JVM without waiting for it (so a test can start quorumfs meanwhile); call
    /// [`RealZk::wait_ready`] before use. `None` (after a SKIP line) when not installed.
    pub fn launch_or_skip(test: &str) -> Option<RealZk> {
        let (jar, java) = match installation() {
            Ok(found) => found,
            Err(why) => {
                println!("SKIP {test}: real ZooKeeper unavailable: {why}");
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("quorumfs-e2e-realzk-")
            .tempdir()
            .expect("create ZooKeeper temp dir");
        let mut zk = RealZk {
            jar,
            java,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
        };
        zk.spawn();
        Some(zk)
    }

    /// `127.0.0.1:PORT` as a connect string.
    pub fn client_addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn client_socket(&self) -> SocketAddr {
        self.addr
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("zk.log")
    }

    /// Writes a fresh `zoo.cfg` with a new free port and starts the JVM.
    fn spawn(&mut self) {
        let port = free_ports(1)[0];
        self.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let data = self.dir.path().join("data");
        let _ = fs::remove_dir_all(&data);
        fs::create_dir_all(&data).expect("create ZooKeeper data dir");
        let cfg = self.dir.path().join("zoo.cfg");
        fs::write(
            &cfg,
            format!(
                "tickTime=2000\n\
                 dataDir={}\n\
                 clientPort={port}\n\
                 clientPortAddress=127.0.0.1\n\
                 maxClientCnxns=0\n\
                 4lw.commands.whitelist=*\n\
                 admin.enableServer=false\n",
                data.display()
            ),
        )
        .expect("write zoo.cfg");
        let mut classpath = self.jar.as_os_str().to_owned();
        if Path::new(SLF4J_SIMPLE).is_file() {
            classpath.push(":");
            classpath.push(SLF4J_SIMPLE);
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open zk.log");
        let err = log.try_clone().expect("clone zk.log handle");
        let mut cmd = Command::new(&self.java);
        cmd.args([
            // A small, quickly started JVM: two shared cores.
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dznode.container.checkIntervalMs=500",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.4lw.commands.whitelist=*",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-cp",
        ])
        .arg(classpath)
        .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(&cfg)
        .current_dir(self.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
        set_parent_death_signal(&mut cmd);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", self.java.display())),
        );
    }

    /// Waits until the server serves; retries with a new port (up to three times) if the JVM
    /// lost the race for its port. Panics with the log tail otherwise.
    pub fn wait_ready(&mut self) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                    self.child = None;
                    let tail = self.log_tail(LOG_LINES);
                    if attempt < ATTEMPTS && tail.contains("Address already in use") {
                        eprintln!("ZooKeeper lost a port race; retrying with a new port");
                        self.spawn();
                        break;
                    }
                    panic!("ZooKeeper exited during start ({status}); log:\n{tail}");
                }
                if self.serving() {
                    return;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "ZooKeeper on {} not serving within {READY_TIMEOUT:?}; log:\n{}",
                        self.addr,
                        self.log_tail(LOG_LINES)
                    );
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `ruok` answers `imok` and `srvr` says the server runs standalone.
    fn serving(&self) -> bool {
        matches!(four_letter_word(self.addr, "ruok"), Ok(a) if a == "imok")
            && matches!(four_letter_word(self.addr, "srvr"), Ok(a) if a.contains("Mode: standalone"))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for RealZk {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The child is unreaped, so its PID is still ours.
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "\n========== real ZooKeeper log ({}; last {LOG_LINES} lines) ==========\n{}\n========== end of real ZooKeeper log ==========",
                self.log_path().display(),
                self.log_tail(LOG_LINES)
            );
        }
    }
}
