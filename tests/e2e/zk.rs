//! Helpers for Debian's ZooKeeper command-line client, `zkCli.sh` (package `zookeeper`).
//!
//! zkCli starts a JVM, so tests batch their commands into one invocation: with no command on
//! the command line and stdin not a terminal, zkCli 3.8 reads one command per line from stdin
//! and exits at EOF. Its results go to stdout ("data", "[a, b]", the Stat lines) and its
//! confirmations and errors to stderr ("Created /x", "Node does not exist: /x"); the exit code
//! reflects the last command only, so tests judge the output, not the code.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::run_with_input;

/// Where Debian installs zkCli.sh (overridable with `ZKCLI`).
pub const DEFAULT_ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// The zkCli.sh to use, or why there is none (tests then print a SKIP line and return).
/// Debian's script runs `/usr/bin/java` (package default-jre-headless).
pub fn zkcli_path() -> Result<PathBuf, String> {
    let path = std::env::var_os("ZKCLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ZKCLI));
    if !path.is_file() {
        return Err(format!(
            "{} not installed (Debian package zookeeper)",
            path.display()
        ));
    }
    if !std::path::Path::new("/usr/bin/java").exists() {
        return Err("/usr/bin/java not installed (Debian package default-jre-headless)".into());
    }
    Ok(path)
}

/// What one zkCli.sh run printed.
#[derive(Debug)]
pub struct ZkCliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ZkCliOutput {
    /// stdout and stderr together, for "does it say X anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `zkCli.sh -server SERVER` with `commands` (one per line) on stdin.
pub fn zkcli(zkcli: &std::path::Path, server: &str, commands: &[&str]) -> ZkCliOutput {
    let mut script = commands.join("\n");
    script.push('\n');
    let log_dir = tempfile::tempdir().expect("zkCli log dir");
    let mut cmd = Command::new(zkcli);
    cmd.arg("-server")
        .arg(server)
        // A client JVM that starts fast and stays small on a 2-core CI machine.
        .env(
            "CLIENT_JVMFLAGS",
            "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k -Xmx128m",
        )
        .env("ZOO_LOG_DIR", log_dir.path());
    let out = run_with_input(&mut cmd, Some(script.as_bytes()), Duration::from_secs(120));
    let res = ZkCliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "zkCli.sh -server {server} <<EOF\n{script}EOF\n--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        res.code, res.stdout, res.stderr
    );
    res
}
