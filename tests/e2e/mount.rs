//! The filesystem view (CONTRACT §5) with real tools on real mounts: three voters and a
//! learner, each `fsd run --mount`ed at its own directory, driven by bash, cat, mkdir, mv,
//! flock, inotifywait, getfattr and python.
//!
//! Tests skip (printing SKIP) where /dev/fuse or the tools are missing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
const SESSION_TIMEOUT_MS: u64 = 3000;

/// Whether this machine can run the mount tests; prints SKIP when it cannot.
fn can_mount(test: &str) -> bool {
    can_mount_with(test, &["inotifywait", "getfattr", "flock", "python3"])
}

/// 3 voters and a learner, all mounted.
fn mounted_cluster() -> Cluster {
    Cluster::start_mounted(3, 1, SESSION_TIMEOUT_MS)
}

/// Runs a bash script to completion (60 s at most).
pub(crate) fn sh(script: &str) -> Output {
    run_with_timeout(
        Command::new("bash").arg("-c").arg(script),
        Duration::from_secs(120),
    )
}

/// Runs a bash script that must succeed; returns its stdout.
pub(crate) fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "script failed: {script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a bash script in the background, its output logged in `dir`; it and everything
/// it started are killed on drop.
fn spawn_sh(dir: &Path, script: &str) -> Script {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Script::spawn(script, &dir.join(format!("script-{n}.log")))
}

/// Runs a python script that must succeed.
fn python_ok(script: &str) {
    let out = run_with_timeout(
        Command::new("python3").arg("-c").arg(script),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn zk(node: &Node, args: &[&str]) {
    let addr = node.client_addr();
    let mut full = vec![args[0], "--server", addr.as_str()];
    full.extend_from_slice(&args[1..]);
    let out = fsd_cli(&full);
    assert!(
        out.status.success(),
        "fsd {full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file written on one mount is read on all; inotify on every mount sees the changes
/// made through another mount and through the client port, and a `cat` right after an
/// event reads the new content; xattrs, sequential names, rename.
#[test]
fn every_mount_sees_and_hears_every_change() {
    if !can_mount("every_mount_sees_and_hears_every_change") {
        return;
    }
    let cluster = mounted_cluster();
    let nodes = cluster.nodes();
    let a = &nodes[0];
    std::fs::create_dir(a.mnt("app")).expect("mkdir app");
    for n in nodes {
        wait_until(MOUNT_TIMEOUT, "app on every mount", || {
            n.mnt("app").is_dir().then_some(())
        });
    }
    // A watcher per mount: every event, and on CLOSE_WRITE the file's content read at once.
    let mut watchers = Vec::new();
    for n in nodes {
        let (mnt, log) = (n.mnt("app"), n.dir().join("events"));
        let ready = n.dir().join("ready");
        watchers.push(spawn_sh(n.dir(), &format!(
            "inotifywait -m -r --format '%e %f' {mnt} 2> >(tee {ready} >&2) | while read -r ev f; do \
               case $ev in CLOSE_WRITE*) echo \"$ev $f $(cat {mnt}/$f 2>/dev/null)\";; *) echo \"$ev $f\";; esac; \
             done > {log}",
            mnt = mnt.display(),
            log = log.display(),
            ready = ready.display()
        )));
        wait_until(MOUNT_TIMEOUT, "inotifywait ready", || {
            read(&ready).contains("Watches established").then_some(())
        });
    }

    // Each step, then its events on every mount (a mount's own changes make their events
    // locally, so mount A is checked for the client-port steps only). A CLOSE_WRITE line
    // carries what `cat` read right after the event: the new content.
    let app = a.mnt("app");
    let on_a = |cmd: &str| sh_ok(&format!("cd {} && {cmd}", app.display()));
    let learner = &nodes[3];
    type Step<'a> = (Box<dyn Fn() + 'a>, bool, &'a [&'a str]);
    let steps: Vec<Step> = vec![
        (
            Box::new(|| {
                on_a("echo v1 > f1");
            }),
            false,
            &["CREATE f1", "CLOSE_WRITE,CLOSE f1 v1"],
        ),
        (
            Box::new(|| {
                on_a("echo v2 > f1");
            }),
            false,
            &["MODIFY f1", "CLOSE_WRITE,CLOSE f1 v2"],
        ),
        (
            Box::new(|| {
                on_a("mv f1 f2");
            }),
            false,
            &["MOVED_FROM f1", "MOVED_TO f2"],
        ),
        (
            Box::new(|| {
                on_a("rm f2");
            }),
            false,
            &["DELETE f2"],
        ),
        (
            Box::new(|| {
                on_a("mkdir d");
            }),
            false,
            &["CREATE,ISDIR d"],
        ),
        (
            Box::new(|| zk(learner, &["create", "/app/z", "zdata"])),
            true,
            &["CREATE z", "CLOSE_WRITE,CLOSE z zdata"],
        ),
        (
            Box::new(|| zk(learner, &["set", "/app/z", "z2"])),
            true,
            &["MODIFY z", "CLOSE_WRITE,CLOSE z z2"],
        ),
        (
            Box::new(|| zk(learner, &["rm", "/app/z"])),
            true,
            &["DELETE z"],
        ),
    ];
    let mut seen = vec![0usize; nodes.len()];
    for (step, (act, everywhere, want)) in steps.iter().enumerate() {
        act();
        for (i, n) in nodes.iter().enumerate() {
            if n.id() == a.id() && !everywhere {
                continue;
            }
            let log = n.dir().join("events");
            let t = Instant::now();
            seen[i] = wait_until(
                Duration::from_secs(20),
                &format!("step {step} events {want:?} on node {}", n.id()),
                || {
                    let text = read(&log);
                    let lines: Vec<&str> = text.lines().collect();
                    // In order, after what earlier steps matched.
                    let mut at = seen[i];
                    for w in *want {
                        at += lines.get(at..)?.iter().position(|l| l == w)? + 1;
                    }
                    Some(at)
                },
            );
            assert!(t.elapsed() < Duration::from_secs(20));
        }
    }
    println!("every mount heard every change, in commit order, with fresh content");
    for w in &mut watchers {
        w.kill();
    }

    // Content and Stat everywhere.
    std::fs::write(a.mnt("app/conf"), "hello\n").expect("write conf");
    for n in nodes {
        assert_eq!(read(&n.mnt("app/conf")), "hello\n", "node {}", n.id());
        let attrs = sh_ok(&format!("getfattr -d {}", n.mnt("app/conf").display()));
        assert!(attrs.contains("user.zk.version=\"0\""), "{attrs}");
        assert!(attrs.contains("user.zk.dataLength=\"6\""), "{attrs}");
    }
    // `>>` appends to what the file holds, whichever mount wrote last.
    for (i, n) in nodes.iter().enumerate() {
        sh_ok(&format!("echo line{i} >> {}", n.mnt("app/log").display()));
    }
    for n in nodes {
        assert_eq!(read(&n.mnt("app/log")), "line0\nline1\nline2\nline3\n");
    }
    // Sequential names under a setgid directory, with the real name on the descriptor.
    let tasks = a.mnt("tasks");
    let out = sh_ok(&format!(
        "mkdir {t} && chmod g+s {t} && echo job > {t}/task- && echo job > {t}/task- && \
         exec 3> {t}/task- && getfattr --only-values -n user.zk.name /proc/self/fd/3",
        t = tasks.display()
    ));
    assert_eq!(out, "task-0000000002");
    let names: BTreeSet<String> = std::fs::read_dir(nodes[2].mnt("tasks"))
        .expect("ls tasks")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = (0..3).map(|i| format!("task-{i:010}")).collect();
    assert_eq!(names, want);
    assert_eq!(read(&nodes[2].mnt("tasks/task-0000000000")), "job\n");
    // Atomic replace with write-temp-and-mv, seen on another mount.
    sh_ok(&format!(
        "cd {} && echo new > .conf.tmp && mv .conf.tmp conf",
        a.mnt("app").display()
    ));
    assert_eq!(read(&nodes[3].mnt("app/conf")), "new\n");
    // A directory's own data is user.zk.data.
    zk(learner, &["set", "/app", "dirdata"]);
    let out = sh_ok(&format!(
        "getfattr --only-values -n user.zk.data {}",
        nodes[1].mnt("app").display()
    ));
    assert_eq!(out, "dirdata");
}

/// Errnos for what the view refuses, and nothing partial left behind.
#[test]
fn bad_input_gets_the_documented_errno() {
    if !can_mount("bad_input_gets_the_documented_errno") {
        return;
    }
    let mut cluster = Cluster::start_mounted(3, 0, SESSION_TIMEOUT_MS);
    let m = cluster.nodes()[0].mountpoint();
    let script = format!(
        r#"
import errno, os, sys
m = {m:?}
def expect(code, f, *args):
    try:
        f(*args)
    except OSError as e:
        if e.errno != code:
            sys.exit(f"{{f.__name__}}{{args}}: errno {{e.errno}}, wanted {{code}}")
        return
    sys.exit(f"{{f.__name__}}{{args}} succeeded, wanted errno {{code}}")
def write(path, size):
    # As cat and dd do: write until all is written (a short write, then the error).
    data = b"x" * size
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
os.mkdir(m + "/d")
open(m + "/d/f", "w").write("x")
expect(errno.ENAMETOOLONG, os.mkdir, m + "/" + "n" * 256)
expect(errno.EILSEQ, os.mkdir, os.fsencode(m) + b"/bad\xff")
expect(errno.EFBIG, write, m + "/big", 1024 * 1024 + 1)
expect(errno.ENOTEMPTY, os.rmdir, m + "/d")
expect(errno.EPERM, os.symlink, "d", m + "/link")
expect(errno.EPERM, os.link, m + "/d/f", m + "/hard")
expect(errno.EPERM, os.mkfifo, m + "/fifo")
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def rename_noreplace(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 1) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
open(m + "/a1", "w").write("1")
open(m + "/a2", "w").write("2")
expect(errno.EEXIST, rename_noreplace, m + "/a1", m + "/a2")
assert open(m + "/a2").read() == "2"
os.unlink(m + "/a1"); os.unlink(m + "/a2")
dfd = os.open(m + "/d", os.O_RDONLY)
os.fsync(dfd)  # sync DIR: a catch-up barrier
os.close(dfd)
names = sorted(os.listdir(m))
if names != ["d", "zookeeper"]:
    sys.exit(f"left behind: {{names}}")
print("ok")
"#,
        m = m.display().to_string()
    );
    python_ok(&script);

    // Without a quorum: reads keep working, a write fails with EIO after the bounded wait
    // and leaves nothing.
    cluster.node_mut(2).kill9();
    cluster.node_mut(3).kill9();
    let started = Instant::now();
    let script = format!(
        r#"
import errno, os, sys
m = {m:?}
assert open(m + "/d/f").read() == "x"
try:
    fd = os.open(m + "/noquorum", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"data")
    os.close(fd)
    sys.exit("close without a quorum succeeded")
except OSError as e:
    if e.errno != errno.EIO:
        sys.exit(f"errno {{e.errno}}, wanted EIO")
try:
    os.mkdir(m + "/nodir")
    sys.exit("mkdir without a quorum succeeded")
except OSError as e:
    if e.errno != errno.EIO:
        sys.exit(f"mkdir errno {{e.errno}}, wanted EIO")
print("ok")
"#,
        m = m.display().to_string()
    );
    python_ok(&script);
    println!(
        "writes without a quorum failed with EIO after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(!m.join("noquorum").exists() && !m.join("nodir").exists());

    // The killed nodes left dead mounts behind; a restart clears them and mounts again.
    let dead = cluster.node(2).mountpoint();
    assert_eq!(
        std::fs::metadata(&dead)
            .err()
            .and_then(|e| e.raw_os_error()),
        Some(libc::ENOTCONN),
        "a kill -9 leaves a dead mount"
    );
    for id in [2, 3] {
        cluster.node_mut(id).restart();
    }
    for node in cluster.nodes() {
        node.wait_mounted(MOUNT_TIMEOUT);
    }
    wait_until(MOUNT_TIMEOUT, "writes again", || {
        std::fs::write(cluster.node(2).mnt("after"), "ok").ok()
    });
    wait_until(MOUNT_TIMEOUT, "the write on node 2 read on node 1", || {
        (read(&m.join("after")) == "ok").then_some(())
    });
    // SIGTERM unmounts cleanly.
    let status = cluster.node_mut(3).stop();
    assert!(status.success(), "{status}");
    assert!(!cluster.node(3).is_mounted());
    assert!(read(&cluster.node(3).log_path()).contains("unmounted"));
}

/// 200 flock increments from four mounts, flock -n and -w, a killed holder, elections with
/// `set -C`, and a killed host whose locks and ephemerals go after its session timeout.
#[test]
fn flock_and_ephemerals_are_cluster_wide() {
    if !can_mount("flock_and_ephemerals_are_cluster_wide") {
        return;
    }
    let mut cluster = mounted_cluster();
    let mnts: Vec<_> = cluster.nodes().iter().map(Node::mountpoint).collect();
    let logs = cluster.nodes()[0].dir().to_path_buf();
    std::fs::write(mnts[0].join("counter"), "0\n").expect("counter");
    std::fs::write(mnts[0].join("lock"), "").expect("lock file");

    // 200 increments, 50 per mount, all at once.
    let started = Instant::now();
    let mut runs = Vec::new();
    for m in &mnts {
        let m = m.display().to_string();
        runs.push(thread::spawn(move || {
            sh_ok(&format!(
                "for i in $(seq 50); do flock {m}/lock sh -c 'n=$(cat {m}/counter); echo $((n+1)) > {m}/counter' & done; wait"
            ))
        }));
    }
    for r in runs {
        r.join().expect("increments");
    }
    for m in &mnts {
        assert_eq!(read(&m.join("counter")), "200\n", "{}", m.display());
    }
    println!(
        "200 flock increments over 4 mounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Held on mount 1: -n fails at once on mount 2, -w 1 times out in about 1 s.
    let mut holder = spawn_sh(
        &logs,
        &format!("exec flock {}/lock sleep 60", mnts[0].display()),
    );
    wait_until(MOUNT_TIMEOUT, "lock held", || {
        (!sh(&format!("flock -n {}/lock true", mnts[1].display()))
            .status
            .success())
        .then_some(())
    });
    let t = Instant::now();
    let out = sh(&format!("flock -w 1 {}/lock true", mnts[2].display()));
    let waited = t.elapsed();
    assert!(!out.status.success(), "flock -w 1 got the lock");
    println!("flock -w 1 gave up after {:.2} s", waited.as_secs_f64());
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // Shared locks: held on two mounts at once; an exclusive one is refused meanwhile.
    std::fs::write(mnts[0].join("shared"), "").expect("shared lock file");
    let mut readers: Vec<Script> = [0, 1]
        .iter()
        .map(|&i| {
            spawn_sh(
                &logs,
                &format!(
                    "flock -s {m}/shared sh -c 'touch {m}/.r{i}; sleep 60'",
                    m = mnts[i].display()
                ),
            )
        })
        .collect();
    wait_until(MOUNT_TIMEOUT, "two shared holders", || {
        let both = [0, 1]
            .iter()
            .all(|i| mnts[0].join(format!(".r{i}")).exists());
        let x = sh(&format!("flock -x -n {}/shared true", mnts[2].display()));
        let s = sh(&format!("flock -s -n {}/shared true", mnts[3].display()));
        (both && !x.status.success() && s.status.success()).then_some(())
    });
    for r in &mut readers {
        r.kill();
    }

    // A waiter on mount 4 gets it when the holder is killed.
    let out_file = mnts[3].join("got");
    let mut waiter = spawn_sh(
        &logs,
        &format!(
            "flock {m}/lock sh -c 'echo granted > {m}/got'",
            m = mnts[3].display()
        ),
    );
    thread::sleep(Duration::from_millis(500));
    assert!(!out_file.exists());
    holder.kill();
    wait_until(
        MOUNT_TIMEOUT,
        "waiter granted after the holder died",
        || (read(&out_file) == "granted\n").then_some(()),
    );
    waiter.kill();

    // A waiter killed while it waits stops waiting (it never gets the lock): after the
    // holder lets go, the lock is free.
    let mut holder = spawn_sh(
        &logs,
        &format!("exec flock {}/lock sleep 60", mnts[0].display()),
    );
    wait_until(MOUNT_TIMEOUT, "lock held again", || {
        (!sh(&format!("flock -n {}/lock true", mnts[1].display()))
            .status
            .success())
        .then_some(())
    });
    let mut doomed = spawn_sh(
        &logs,
        &format!("exec flock {}/lock sleep 600", mnts[2].display()),
    );
    thread::sleep(Duration::from_millis(300));
    doomed.kill();
    holder.kill();
    wait_until(MOUNT_TIMEOUT, "lock free after the killed waiter", || {
        sh(&format!("flock -n {}/lock true", mnts[1].display()))
            .status
            .success()
            .then_some(())
    });

    // fcntl (lockf) locks exclude across hosts too, and hold a fencing token.
    let py = |m: &Path, body: &str| {
        format!(
            "import fcntl, os, sys, time\nf = open({:?}, 'r+')\n{body}",
            m.join("lock").display().to_string()
        )
    };
    let mut posix = ChildGuard(Some(
        Command::new("python3")
            .arg("-c")
            .arg(py(&mnts[0], "fcntl.lockf(f, fcntl.LOCK_EX)\nprint(os.getxattr(f.name, 'user.zk.fence').decode(), flush=True)\ntime.sleep(600)"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python"),
    ));
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = posix
            .0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("fence");
    }
    let fence: u64 = line.trim().parse().expect("a fencing token");
    assert!(fence > 200, "fence {fence} after 200+ grants");
    let out = run_with_timeout(
        Command::new("python3").arg("-c").arg(py(
            &mnts[1],
            "try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    sys.exit('got a held lock')\nexcept BlockingIOError:\n    print('blocked')",
        )),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    posix.kill9();
    println!("fcntl lock held elsewhere refused a second host; fencing token {fence}");

    // Elections: 20 scripts on 4 mounts race for election/leader; exactly one wins; when it
    // dies, another does.
    let election = mnts[0].join("election");
    std::fs::create_dir(&election).expect("mkdir election");
    sh_ok(&format!("chmod +t {}", election.display()));
    let mut racers = Vec::new();
    for i in 0..20 {
        let m = &mnts[i % 4];
        racers.push(spawn_sh(
            &logs,
            &format!(
            "set -C; while ! {{ exec 3> {m}/election/leader; }} 2>/dev/null; do sleep 0.05; done; \
             echo {i} >&3; echo {i} > {m}/won-{i}; sleep 600",
            m = m.display()
        ),
        ));
    }
    let winners = |mnts: &[std::path::PathBuf]| -> Vec<usize> {
        (0..20)
            .filter(|i| mnts.iter().any(|m| m.join(format!("won-{i}")).exists()))
            .collect()
    };
    let first = wait_until(MOUNT_TIMEOUT, "a leader", || {
        let w = winners(&mnts);
        (!w.is_empty()).then_some(w)
    });
    thread::sleep(Duration::from_secs(1));
    assert_eq!(winners(&mnts), first, "more than one winner");
    let leader = first[0];
    for m in &mnts {
        assert_eq!(read(&m.join("election/leader")), format!("{leader}\n"));
    }
    racers[leader].kill();
    let second = wait_until(MOUNT_TIMEOUT, "a new leader", || {
        let w = winners(&mnts);
        (w.len() == 2).then_some(w)
    });
    thread::sleep(Duration::from_secs(1));
    assert_eq!(winners(&mnts), second, "more than one new winner");
    let new_leader = second
        .into_iter()
        .find(|&w| w != leader)
        .expect("new leader");
    println!("leader {leader} died; {new_leader} took over");
    for r in &mut racers {
        r.kill();
    }
    wait_until(MOUNT_TIMEOUT, "leader file gone", || {
        (!election.join("leader").exists()).then_some(())
    });

    // A host dies (fsd kill -9) holding a lock and an ephemeral: both go after its
    // session timeout, everywhere.
    let dying = cluster.nodes()[1].id();
    let dm = mnts[1].clone();
    let mut held = spawn_sh(
        &logs,
        &format!(
            "exec 3> {dm}/election/member; flock {dm}/lock sleep 600",
            dm = dm.display()
        ),
    );
    wait_until(MOUNT_TIMEOUT, "member and lock taken", || {
        (mnts[0].join("election/member").exists()
            && !sh(&format!("flock -n {}/lock true", mnts[0].display()))
                .status
                .success())
        .then_some(())
    });
    let t = Instant::now();
    cluster.node_mut(dying).kill9();
    wait_until(
        Duration::from_secs(30),
        "the dead host's lock released",
        || {
            sh(&format!("flock -n {}/lock true", mnts[0].display()))
                .status
                .success()
                .then_some(())
        },
    );
    assert!(!mnts[2].join("election/member").exists());
    println!(
        "a killed host's lock and ephemeral went {:.1} s after kill -9 (session timeout {SESSION_TIMEOUT_MS} ms)",
        t.elapsed().as_secs_f64()
    );
    held.kill();
}

/// Readers hammering `cat` on every mount never see an empty or mixed 512 KiB file while a
/// writer replaces it 100 times.
#[test]
fn readers_never_see_partial_content() {
    if !can_mount("readers_never_see_partial_content") {
        return;
    }
    let cluster = mounted_cluster();
    let mnts: Vec<_> = cluster.nodes().iter().map(Node::mountpoint).collect();
    let size = 512 * 1024;
    std::fs::write(mnts[0].join("big"), vec![b'A'; size]).expect("first version");
    for m in &mnts {
        wait_until(MOUNT_TIMEOUT, "big everywhere", || {
            (std::fs::metadata(m.join("big"))
                .map(|md| md.len())
                .unwrap_or(0)
                == size as u64)
                .then_some(())
        });
    }
    let stop = mnts[0].parent().expect("node dir").join("stop");
    let mut readers = Vec::new();
    for m in &mnts {
        let (m, stop) = (m.clone(), stop.clone());
        readers.push(thread::spawn(move || {
            let mut reads = 0u64;
            let mut versions = BTreeSet::new();
            while !stop.exists() {
                let out = Command::new("cat")
                    .arg(m.join("big"))
                    .output()
                    .expect("cat");
                let data = out.stdout;
                assert_eq!(data.len(), size, "cat read {} bytes", data.len());
                let first = data[0];
                assert!(data.iter().all(|&b| b == first), "mixed content");
                versions.insert(first);
                reads += 1;
            }
            (reads, versions.len())
        }));
    }
    for i in 0..100u8 {
        let byte = b'B' + (i % 26);
        std::fs::write(mnts[(i % 4) as usize].join("big"), vec![byte; size]).expect("replace");
    }
    std::fs::write(&stop, "").expect("stop");
    for r in readers {
        let (reads, versions) = r.join().expect("reader saw bad content");
        println!("reader: {reads} cats, {versions} distinct versions, none partial");
    }

    // Write-temp-then-mv: the name never goes missing, on the writing mount or another.
    let cfg = mnts[0].join("cfg");
    std::fs::write(&cfg, "v0\n").expect("cfg");
    for m in &mnts {
        wait_until(MOUNT_TIMEOUT, "cfg everywhere", || {
            m.join("cfg").exists().then_some(())
        });
    }
    let (m0, m1) = (mnts[0].display().to_string(), mnts[1].display().to_string());
    let mut readers = Vec::new();
    for m in [&m0, &m1] {
        let stop = stop.with_extension("mv");
        let m = m.clone();
        readers.push(thread::spawn(move || {
            sh_ok(&format!(
                "n=0; bad=0; while [ ! -e {stop} ]; do n=$((n+1)); \
                 case $(cat {m}/cfg 2>&1) in v*) ;; *) bad=$((bad+1));; esac; done; echo $n $bad",
                stop = stop.display()
            ))
        }));
    }
    sh_ok(&format!(
        "for i in $(seq 100); do echo v$i > {m0}/.cfg.tmp && mv -f {m0}/.cfg.tmp {m0}/cfg; done"
    ));
    std::fs::write(stop.with_extension("mv"), "").expect("stop");
    for r in readers {
        let out = r.join().expect("reader");
        let mut it = out.split_whitespace();
        let (n, bad): (u64, u64) = (
            it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            it.next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX),
        );
        println!("mv over cfg: a reader read it {n} times, {bad} without content");
        assert_eq!(bad, 0, "a rename over the file hid it from a reader");
    }
}
