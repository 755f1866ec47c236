//! The shell recipes of `examples/` (README "Recipes") on a local cluster: three voters and a
//! learner, each with its own mount, with the participants of each recipe spread over the
//! mounts; and the master-worker system while its active master, a worker and a whole host
//! are killed.
//!
//! Every script runs in its own process group ([`Script`]), killed when the test ends,
//! also when it fails. Tests skip (printing SKIP) where /dev/fuse or the tools are missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Each host's session timeout: how long a killed host's ephemerals and locks outlive it.
const SESSION_TIMEOUT_MS: u64 = 3000;

/// What the recipes use besides bash and coreutils.
const TOOLS: &[&str] = &["inotifywait", "getfattr", "flock"];

/// The bound for any one step: generous, for a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(60);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// One node as the recipes see it: a host with a mount (owned, so that a test can kill nodes
/// of the cluster while it keeps using the others).
struct Host {
    id: u64,
    mnt: PathBuf,
    dir: PathBuf,
    client: String,
}

impl Host {
    /// `mnt/rel`.
    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

/// The cluster for a recipe test and its hosts, or `None` after printing SKIP.
fn cluster(test: &str) -> Option<(Cluster, Vec<Host>)> {
    if !can_mount_with(test, TOOLS) {
        return None;
    }
    let cluster = Cluster::start_mounted(3, 1, SESSION_TIMEOUT_MS);
    let hosts = cluster
        .nodes()
        .iter()
        .map(|n| Host {
            id: n.id(),
            mnt: n.mountpoint(),
            dir: n.dir().to_path_buf(),
            client: n.client_addr(),
        })
        .collect();
    Some((cluster, hosts))
}

/// A bash command line run in `examples/` with `ZK` set to `host`'s mount.
fn on(host: &Host, cmdline: &str) -> String {
    format!(
        "export ZK={}; cd {}; {cmdline}",
        host.mnt.display(),
        examples().display()
    )
}

/// Starts `cmdline` (see [`on`]) in the background, its output in `<host dir>/<log>`.
fn start(host: &Host, log: &str, cmdline: &str) -> Script {
    Script::spawn(&on(host, cmdline), &host.dir.join(log))
}

/// Runs `cmdline` (see [`on`]) to completion; returns its stdout, or panics with its output
/// if it fails.
fn run(host: &Host, cmdline: &str) -> String {
    run_script(on(host, cmdline))
}

fn run_script(script: String) -> String {
    let out = run_with_timeout(Command::new("bash").arg("-c").arg(&script), STEP);
    assert!(
        out.status.success(),
        "failed ({}): {script}\n--- stdout\n{}\n--- stderr\n{}",
        describe_exit(&out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `script`'s output contains `text`; returns how long that took.
fn wait_output(script: &Script, text: &str) -> Duration {
    let t = Instant::now();
    while !script.output().contains(text) {
        assert!(
            t.elapsed() < STEP,
            "no {text:?} within {STEP:?} in {}:\n{}",
            script.log_path().display(),
            script.output()
        );
        thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

/// 40 read-modify-write critical sections under `lock.sh`, 10 from each mount at once: the
/// counter is exact, and the fencing tokens, appended in lock order, strictly increase.
#[test]
fn lock_serialises_critical_sections_across_mounts() {
    let Some((_cluster, nodes)) = cluster("lock_serialises_critical_sections_across_mounts") else {
        return;
    };
    std::fs::write(nodes[0].path("counter"), "0\n").expect("counter");
    std::fs::write(nodes[0].path("fences"), "").expect("fences");
    let section =
        r#"sh -c 'n=$(cat $ZK/counter); echo $((n + 1)) > $ZK/counter; echo $FENCE >> $ZK/fences'"#;
    let started = Instant::now();
    let runs: Vec<_> = nodes
        .iter()
        .map(|n| {
            let script = on(
                n,
                &format!("for i in $(seq 10); do ./lock.sh counter {section} & done; wait"),
            );
            thread::spawn(move || run_script(script))
        })
        .collect();
    for r in runs {
        r.join().expect("critical sections");
    }
    println!(
        "40 critical sections from 4 mounts under lock.sh in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for n in &nodes {
        assert_eq!(run(n, "sync $ZK/counter && cat $ZK/counter"), "40\n");
    }
    let fences: Vec<u64> = read(&nodes[2].path("fences"))
        .lines()
        .map(|l| l.parse().expect("a fencing token"))
        .collect();
    assert_eq!(fences.len(), 40, "{fences:?}");
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "tokens not increasing in lock order: {fences:?}"
    );
}

/// Four candidates on four mounts: one is elected and the others follow it; when it is
/// killed, one follower takes over; when the new leader's whole host dies, another takes
/// over after the session timeout.
#[test]
fn election_elects_one_and_followers_take_over() {
    let Some((mut cluster, hosts)) = cluster("election_elects_one_and_followers_take_over") else {
        return;
    };
    let mut candidates: Vec<Script> = hosts
        .iter()
        .enumerate()
        .map(|(i, n)| start(n, "election.log", &format!("./election.sh c{i} sleep 600")))
        .collect();
    let elected = |candidates: &[Script]| -> Vec<usize> {
        (0..candidates.len())
            .filter(|&i| candidates[i].output().contains(&format!("c{i}: elected")))
            .collect()
    };
    let first = wait_until(STEP, "a leader", || {
        let e = elected(&candidates);
        (!e.is_empty()).then_some(e)
    });
    thread::sleep(Duration::from_secs(1));
    assert_eq!(elected(&candidates), first, "more than one leader");
    let leader = first[0];
    for (i, c) in candidates.iter().enumerate() {
        if i != leader {
            wait_output(c, &format!("c{i}: following c{leader}"));
        }
        let file = hosts[i].path("election/leader");
        assert_eq!(read(&file), format!("c{leader}\n"));
    }

    let t = Instant::now();
    candidates[leader].kill();
    let second = wait_until(STEP, "a new leader", || {
        let e = elected(&candidates);
        (e.len() == 2).then_some(e)
    });
    let took = t.elapsed();
    let leader2 = *second.iter().find(|&&i| i != leader).expect("new leader");
    println!(
        "election: leader c{leader} killed; c{leader2} elected {:.2} s later",
        took.as_secs_f64()
    );

    let t = Instant::now();
    cluster.node_mut(hosts[leader2].id).kill9();
    let third = wait_until(STEP, "a leader after the host died", || {
        let e = elected(&candidates);
        (e.len() == 3).then_some(e)
    });
    let took = t.elapsed();
    thread::sleep(Duration::from_secs(1));
    assert_eq!(elected(&candidates), third, "more than one new leader");
    println!(
        "election: host of c{leader2} killed (fsd kill -9); another leader {:.2} s later (session timeout {SESSION_TIMEOUT_MS} ms)",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_millis(SESSION_TIMEOUT_MS / 2),
        "{took:?}"
    );
}

/// Members join from three mounts and a watcher on the fourth sees every join and leave; a
/// killed member leaves at once, a killed host's member after the session timeout.
#[test]
fn membership_is_live_on_every_mount() {
    let Some((mut cluster, nodes)) = cluster("membership_is_live_on_every_mount") else {
        return;
    };
    let watch = start(&nodes[3], "watch.log", "./membership.sh watch");
    let mut members: Vec<Script> = ["a", "b", "c"]
        .iter()
        .zip(&nodes)
        .map(|(m, n)| start(n, "member.log", &format!("./membership.sh join {m}")))
        .collect();
    wait_output(&watch, "members: a b c\n");
    assert_eq!(run(&nodes[1], "./membership.sh list"), "a\nb\nc\n");
    let dup = run(
        &nodes[3],
        "if ./membership.sh join a true; then echo joined; fi 2>&1",
    );
    assert!(dup.contains("a is already a member"), "{dup}");

    members[1].kill();
    let took = wait_output(&watch, "members: a c\n");
    println!(
        "membership: killed member b left after {:.2} s",
        took.as_secs_f64()
    );

    cluster.node_mut(nodes[2].id).kill9();
    let took = wait_output(&watch, "members: a\n");
    println!(
        "membership: member c's host killed; c left after {:.2} s (session timeout {SESSION_TIMEOUT_MS} ms)",
        took.as_secs_f64()
    );
}

/// A barrier holds waiters on three mounts until it is lowered from another; a double
/// barrier of four members on four mounts starts its work only once all four arrived and
/// lets them go only once all four finished.
#[test]
fn barriers_hold_everyone_on_every_mount() {
    let Some((_cluster, nodes)) = cluster("barriers_hold_everyone_on_every_mount") else {
        return;
    };
    run(&nodes[0], "./barrier.sh raise go");
    let waiters: Vec<Script> = nodes[1..]
        .iter()
        .map(|n| start(n, "barrier.log", "./barrier.sh wait go && echo passed"))
        .collect();
    thread::sleep(Duration::from_secs(1));
    for w in &waiters {
        assert_eq!(w.output(), "", "a waiter passed a raised barrier");
    }
    let t = Instant::now();
    run(&nodes[1], "./barrier.sh lower go");
    for w in &waiters {
        wait_output(w, "passed");
    }
    println!(
        "barrier: 3 waiters on 3 mounts passed {:.2} s after it was lowered",
        t.elapsed().as_secs_f64()
    );

    // Members arrive 300 ms apart and work for different times; every line carries a
    // nanosecond timestamp.
    let mut members: Vec<Script> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        members.push(start(
            n,
            "double.log",
            &format!(
                "echo arrived $(date +%s%N); \
                 ./double-barrier.sh round1 4 m{i} sh -c 'echo start $(date +%s%N); sleep 0.{i}; echo end $(date +%s%N)'; \
                 echo left $(date +%s%N)"
            ),
        ));
        thread::sleep(Duration::from_millis(300));
    }
    let mut at: BTreeMap<&str, Vec<u128>> = BTreeMap::new();
    let outputs: Vec<String> = members
        .iter_mut()
        .map(|m| {
            let status = m.wait(STEP);
            assert!(status.success(), "{}", m.output());
            m.output()
        })
        .collect();
    for out in &outputs {
        for line in out.lines() {
            let (what, ns) = line.split_once(' ').expect("timestamped line");
            at.entry(what)
                .or_default()
                .push(ns.parse().expect("nanoseconds"));
        }
    }
    assert!(at.values().all(|v| v.len() == 4), "{outputs:?}");
    assert!(
        at["arrived"].iter().max() <= at["start"].iter().min(),
        "work started before everyone arrived: {at:?}"
    );
    assert!(
        at["end"].iter().max() <= at["left"].iter().min(),
        "someone left before everyone finished: {at:?}"
    );
    println!("double barrier: 4 members on 4 mounts entered together and left together");
}

/// Two producers on two mounts put 1,000 items while four consumers on four mounts take
/// them: every item is consumed exactly once, and the queue ends empty.
#[test]
fn queue_hands_each_item_to_exactly_one_consumer() {
    let Some((_cluster, nodes)) = cluster("queue_hands_each_item_to_exactly_one_consumer") else {
        return;
    };
    let consumers: Vec<Script> = nodes
        .iter()
        .map(|n| start(n, "consumer.log", "./queue.sh consume echo"))
        .collect();
    let started = Instant::now();
    let producers: Vec<_> = [(0, 1), (2, 501)]
        .into_iter()
        .map(|(i, from)| {
            let script = on(
                &nodes[i],
                &format!("seq {from} {} | ./queue.sh put", from + 499),
            );
            thread::spawn(move || run_script(script))
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
    let put = started.elapsed();
    let consumed = |consumers: &[Script]| -> Vec<u32> {
        consumers
            .iter()
            .flat_map(|c| {
                c.output()
                    .lines()
                    .map(|l| {
                        l.parse()
                            .unwrap_or_else(|_| panic!("consumer printed {l:?}"))
                    })
                    .collect::<Vec<u32>>()
            })
            .collect()
    };
    wait_until(Duration::from_secs(180), "1,000 items consumed", || {
        (consumed(&consumers).len() >= 1000).then_some(())
    });
    let took = started.elapsed();
    thread::sleep(Duration::from_secs(1));
    let mut all = consumed(&consumers);
    let per_consumer: Vec<usize> = consumers
        .iter()
        .map(|c| c.output().lines().count())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=1000).collect::<Vec<u32>>(), "not exactly once");
    println!(
        "queue: 1,000 items put from 2 mounts in {:.1} s, consumed exactly once by 4 consumers on 4 mounts ({per_consumer:?}) within {:.1} s",
        put.as_secs_f64(),
        took.as_secs_f64()
    );
    for n in &nodes {
        for dir in ["queue/items", "queue/taken"] {
            wait_until(STEP, &format!("{dir} empty on every mount"), || {
                let left = std::fs::read_dir(n.path(dir)).ok()?.count();
                (left == 0).then_some(())
            });
        }
    }
}

/// Ten versions published from rotating mounts: a watcher on every mount ends on the last
/// one and never goes back to an older one; a reload command runs on change; `get` on
/// every mount reads the last version.
#[test]
fn config_watch_reloads_on_every_mount() {
    let Some((_cluster, nodes)) = cluster("config_watch_reloads_on_every_mount") else {
        return;
    };
    let watchers: Vec<Script> = nodes
        .iter()
        .map(|n| start(n, "config.log", "./config-watch.sh watch app"))
        .collect();
    let reloader = start(
        &nodes[1],
        "reload.log",
        "./config-watch.sh watch app sh -c 'echo reload $(cat $1)' _",
    );
    let t = Instant::now();
    for v in 1..=10 {
        run(
            &nodes[v % 4],
            &format!("echo v{v} | ./config-watch.sh publish app"),
        );
    }
    for w in &watchers {
        wait_until(STEP, "v10 on every watcher", || {
            (w.output().lines().last() == Some("v10")).then_some(())
        });
        let seen: Vec<u32> = w
            .output()
            .lines()
            .map(|l| l.trim_start_matches('v').parse().expect("a version"))
            .collect();
        assert!(
            seen.windows(2).all(|p| p[0] < p[1]),
            "versions out of order: {seen:?}"
        );
    }
    wait_output(&reloader, "reload v10\n");
    println!(
        "config: 10 versions published from 4 mounts; every watcher on v10 {:.2} s after the first",
        t.elapsed().as_secs_f64()
    );
    for n in &nodes {
        assert_eq!(run(n, "./config-watch.sh get app"), "v10\n");
    }
}

/// The master-worker system (examples/master-worker) with masters on three mounts, five
/// workers on four, and four clients submitting 100 tasks from three; meanwhile the test
/// kills (kill -9) the active master, one worker, and the whole fsd of the host of another
/// worker. Every task is completed exactly once: one result each, the right one, and no
/// worker records a task another recorded.
#[test]
fn master_worker_completes_every_task_once_through_failures() {
    let Some((mut cluster, nodes)) =
        cluster("master_worker_completes_every_task_once_through_failures")
    else {
        return;
    };
    let started = Instant::now();
    let mw =
        |n: usize, log: &str, cmd: &str| start(&nodes[n], log, &format!("master-worker/{cmd}"));
    let mut masters = vec![mw(0, "m1.log", "master.sh m1")];
    wait_output(&masters[0], "m1: active");
    masters.push(mw(1, "m2.log", "master.sh m2"));
    masters.push(mw(3, "m3.log", "master.sh m3"));
    // Node 3 (index 2) is the host that dies; worker 0 is the worker that is killed.
    let mut workers: Vec<Script> = [0, 1, 1, 2, 3]
        .iter()
        .enumerate()
        .map(|(i, &n)| mw(n, &format!("w{i}.log"), "worker.sh"))
        .collect();
    let names: Vec<String> = workers
        .iter()
        .map(|w| {
            wait_output(w, "registered");
            let out = w.output();
            let name = out.split_whitespace().nth(1).expect("worker name");
            name.trim_end_matches(':').to_string()
        })
        .collect();

    // Four clients of 25 tasks; two more start while the failures happen.
    let client = |c: usize, n: usize| {
        let tasks: Vec<String> = (c * 25 + 1..=c * 25 + 25)
            .map(|i| format!("'sleep 0.3; echo r{i}'"))
            .collect();
        mw(
            n,
            &format!("c{c}.log"),
            &format!("client.sh {}", tasks.join(" ")),
        )
    };
    let t0 = Instant::now();
    let mut clients = vec![client(0, 0), client(1, 1)];

    // 1. The active master.
    thread::sleep(Duration::from_millis(700));
    let active = read(&nodes[0].path("mw/master/active"));
    assert_eq!(active, "m1\n");
    let t = Instant::now();
    masters[0].kill();
    let new_master = wait_until(STEP, "a new active master", || {
        masters[1..]
            .iter()
            .position(|m| m.output().contains(": active"))
    });
    let master_failover = t.elapsed();
    clients.push(client(2, 3));

    // 2. A worker, once it has unfinished tasks.
    let assigned = |w: &str| {
        let dir = nodes[0].path(&format!("mw/assign/{w}"));
        wait_until(STEP, &format!("tasks queued for {w}"), || {
            (std::fs::read_dir(&dir).ok()?.count() >= 2).then_some(())
        });
    };
    assigned(&names[0]);
    let all_masters = |masters: &[Script]| masters.iter().map(Script::output).collect::<String>();
    let t = Instant::now();
    workers[0].kill();
    wait_until(STEP, "the killed worker's tasks recovered", || {
        all_masters(&masters)
            .contains(&format!("{} is gone", names[0]))
            .then_some(())
    });
    let worker_recovery = t.elapsed();
    clients.push(client(3, 0));

    // 3. A whole host, once its worker has unfinished tasks.
    assigned(&names[3]);
    let dead_host = nodes[2].id;
    let t = Instant::now();
    cluster.node_mut(dead_host).kill9();
    wait_until(STEP, "the dead host's worker recovered", || {
        all_masters(&masters)
            .contains(&format!("{} is gone", names[3]))
            .then_some(())
    });
    let host_recovery = t.elapsed();

    for c in &mut clients {
        let status = c.wait(Duration::from_secs(120));
        assert!(status.success(), "client failed: {}", c.output());
    }
    let all_done = t0.elapsed();

    // Each client got each of its results once, and the right one.
    for (c, script) in clients.iter().enumerate() {
        let mut got: Vec<String> = script
            .output()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert!(f.len() == 3 && f[1] == "0", "bad result line {l:?}");
                f[2].to_string()
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = (c * 25 + 1..=c * 25 + 25)
            .map(|i| format!("r{i}"))
            .collect();
        want.sort();
        assert_eq!(got, want, "client {c}");
    }
    // One result per task in results/, 100 in all, each the output of its own task.
    let results = nodes[0].path("mw/results");
    wait_until(STEP, "100 results on mount 1", || {
        let n = std::fs::read_dir(&results)
            .ok()?
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .count();
        (n >= 100).then_some(())
    });
    let mut outputs = BTreeSet::new();
    let mut recorded_by = BTreeMap::new();
    for entry in std::fs::read_dir(&results).expect("results") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        let dir = results.join(&name);
        assert_eq!(read(&dir.join("status")), "0\n", "{name}");
        assert!(
            outputs.insert(read(&dir.join("output"))),
            "{name}: a second result"
        );
        let worker = read(&dir.join("worker"));
        if worker.is_empty() {
            // Diagnostics for an empty file: every mount's view and the client port's.
            let rel = format!("mw/results/{name}/worker");
            for n in &nodes {
                let via_port = fsd_cli(&["get", &format!("/{rel}"), "--server", &n.client]);
                eprintln!(
                    "{rel} on node {}: mount {:?}, client port {:?} {:?}",
                    n.id,
                    std::fs::read_to_string(n.path(&rel)),
                    String::from_utf8_lossy(&via_port.stdout),
                    String::from_utf8_lossy(&via_port.stderr)
                );
            }
        }
        recorded_by.insert(name, worker.trim().to_string());
    }
    assert_eq!(outputs.len(), 100, "results: {recorded_by:?}");
    // A worker says "task-M done" only when its rename recorded the result: at most one
    // worker says it per task, and it is the one results/task-M names.
    let mut dones: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut duplicates = 0;
    for (w, name) in workers.iter().zip(&names) {
        for line in w.output().lines() {
            if line.ends_with(" done") {
                let task = line.split_whitespace().nth(2).expect("task").to_string();
                dones.entry(task).or_default().push(name.clone());
            } else if line.ends_with("done already") {
                duplicates += 1;
            }
        }
    }
    for (task, by) in &dones {
        assert_eq!(by.len(), 1, "{task} recorded by {by:?}");
        assert_eq!(recorded_by.get(task), Some(&by[0]), "{task}");
    }
    let masters_log = all_masters(&masters);
    let reassigned = masters_log.matches("reassigned").count();
    for dead in [&names[0], &names[3]] {
        assert!(
            masters_log.contains(&format!("from {dead} to")),
            "no task of {dead} was reassigned:\n{masters_log}"
        );
    }
    println!(
        "master-worker: 100 tasks from 4 clients done exactly once in {:.1} s ({:.1} s with setup) \
         despite the failures: active master m1 killed, m{} active {:.2} s later; worker {} killed, \
         its tasks reassigned {:.2} s later; fsd of node {dead_host} killed, its worker {}'s tasks \
         reassigned {:.2} s later (session timeout {SESSION_TIMEOUT_MS} ms); {reassigned} \
         reassignments, {duplicates} results dropped as duplicates",
        all_done.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        new_master + 2,
        master_failover.as_secs_f64(),
        names[0],
        worker_recovery.as_secs_f64(),
        names[3],
        host_recovery.as_secs_f64(),
    );
}
