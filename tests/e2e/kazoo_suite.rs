//! kazoo's own test suite (`kazoo.tests`, shipped in the kazoo wheel) against `fsd`.
//!
//! `tests/kazoo/fsd_kazoo.py` is a pytest plugin that makes kazoo's test harness start real
//! `fsd run` processes (free loopback ports, temporary data directories) where it would start
//! Java ZooKeeper servers, and skips, with a reason each, the tests that need what only the
//! Java server has (see the README). This test runs `python3 -m pytest` on it, once on a
//! single node and once, for the tests that stop a server, on three voters, and fails if
//! pytest does. It prints a SKIP line and passes when kazoo or pytest is not importable
//! (`.ci/run` installs the pinned versions).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{run_with_timeout, FSD};

/// The suite takes under two minutes on two cores; this only stops a hung run.
const SUITE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/kazoo")
}

/// Why the suite cannot run here, if it cannot.
fn missing_python_deps() -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", "import kazoo.tests, pytest"])
        .output();
    match probe {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "kazoo or pytest not importable (pip install kazoo pytest): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )),
        Ok(_) => None,
    }
}

/// Runs the suite with `env` added; returns pytest's summary line after checking that it
/// passed at least one test and failed none.
fn run_pytest(what: &str, env: &[(&str, &str)]) -> String {
    let dir = plugin_dir();
    let work = tempfile::tempdir().expect("temp dir");
    let python_path = match std::env::var_os("PYTHONPATH") {
        Some(old) if !old.is_empty() => {
            let mut p = dir.clone().into_os_string();
            p.push(":");
            p.push(old);
            p
        }
        _ => dir.clone().into_os_string(),
    };
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pytest", "-c"])
        .arg(dir.join("pytest.ini"))
        .arg("--rootdir")
        .arg(work.path())
        .args(["--pyargs", "kazoo.tests"])
        .current_dir(work.path())
        .env("FSD_BIN", FSD)
        .env("PYTHONPATH", python_path)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    let started = Instant::now();
    let out = run_with_timeout(&mut cmd, SUITE_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('=') && (l.contains(" passed") || l.contains(" failed")))
        .unwrap_or("(no pytest summary line)")
        .to_string();
    println!(
        "kazoo suite against fsd, {what}, in {:.0?}: {summary}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "kazoo's test suite failed against fsd ({what}; {}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        summary.contains(" passed"),
        "pytest exited 0 without passing any test ({what}):\n{stdout}"
    );
    summary
}

#[test]
fn kazoo_suite() {
    if let Some(why) = missing_python_deps() {
        println!("SKIP kazoo_suite: {why}");
        return;
    }
    run_pytest("one node", &[]);
    // The few tests that stop one server and expect the client to move to another.
    run_pytest("three voters", &[("FSD_KAZOO_MULTI_NODE", "1")]);
}
