//! Crashes: kill -9 of the leader while clients write, and kill -9 of every voter at once.
//! No acknowledged write may be lost, and a new leader must serve writes quickly.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zookeeper_client::Error as ZkError;

use crate::harness::*;

const WRITERS: usize = 4;

/// Every acknowledged create, with the time its reply arrived.
type Acks = Arc<Mutex<Vec<(Instant, String)>>>;

/// One writer: creates `/load/w{w}-{n}` back to back through `connect` (all nodes, starting
/// with a different one per writer) until `stop`, recording every acknowledged path. A create
/// whose reply was lost is retried with the same path, so `NodeExists` on a retry is an ack.
async fn writer(
    w: usize,
    connect: String,
    stop: Arc<AtomicBool>,
    acks: Acks,
    errors: Arc<AtomicU64>,
) {
    let mut client = zk_connect(&connect).await;
    let mut n = 0u64;
    let mut pending: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let path = pending.take().unwrap_or_else(|| {
            n += 1;
            format!("/load/w{w}-{n:07}")
        });
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            client.create(&path, b"x", &persistent()),
        )
        .await;
        match res {
            Ok(Ok(_)) | Ok(Err(ZkError::NodeExists)) => {
                acks.lock().unwrap().push((Instant::now(), path))
            }
            Ok(Err(e)) => {
                errors.fetch_add(1, Ordering::Relaxed);
                pending = Some(path);
                if client.state().is_terminated()
                    || matches!(e, ZkError::SessionExpired | ZkError::ClientClosed)
                {
                    client = zk_connect(&connect).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(_elapsed) => {
                errors.fetch_add(1, Ordering::Relaxed);
                pending = Some(path);
            }
        }
    }
}

/// Waits until every path in `want` is a child of `parent` as read through node `id`'s own
/// client port, so each replica is checked, not the cluster as a whole.
async fn assert_all_present(
    cluster: &Cluster,
    id: u64,
    parent: &str,
    want: &BTreeSet<String>,
    timeout: Duration,
) {
    let client = zk_connect(&cluster.node(id).client_addr()).await;
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<&String> = match client.list_children(parent).await {
            Ok(kids) => {
                let have: BTreeSet<String> =
                    kids.into_iter().map(|k| format!("{parent}/{k}")).collect();
                want.iter().filter(|p| !have.contains(*p)).collect()
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    panic!("node {id}: ls {parent}: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if missing.is_empty() {
            println!(
                "node {id}: all {} acknowledged znodes under {parent} present",
                want.len()
            );
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "node {id}: {} of {} acknowledged znodes missing under {parent}, e.g. {:?}",
                missing.len(),
                want.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_under_write_load_loses_nothing() {
    let mut cluster = Cluster::start(3);
    let old_leader = cluster.wait_leader(Duration::from_secs(30));
    let ids = cluster.voter_ids();
    {
        let c = zk_connect(&cluster.connect_string(&ids)).await;
        c.create("/load", b"", &persistent())
            .await
            .expect("create /load");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acks: Acks = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        // Rotate the connect string so the writers start on different nodes.
        let mut order = ids.clone();
        order.rotate_left(w % ids.len());
        let connect = cluster.connect_string(&order);
        tasks.push(tokio::spawn(writer(
            w,
            connect,
            stop.clone(),
            acks.clone(),
            errors.clone(),
        )));
    }
    let ack_count = || acks.lock().unwrap().len();
    wait_until(
        Duration::from_secs(30),
        "200 acknowledged writes before the kill",
        || (ack_count() >= 200).then_some(()),
    );

    let t_kill = Instant::now();
    cluster.node_mut(old_leader).kill9();
    println!("killed leader {old_leader} after {} acks", ack_count());

    let new_leader = wait_until(Duration::from_secs(30), "a new leader", || {
        cluster.leader().filter(|l| *l != old_leader)
    });
    let t_leader = t_kill.elapsed();
    let first_after = wait_until(
        Duration::from_secs(30),
        "an acknowledged write after the kill",
        || {
            acks.lock()
                .unwrap()
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| *t > t_kill)
                .min()
        },
    );
    let before = ack_count();
    wait_until(
        Duration::from_secs(30),
        "100 more acknowledged writes",
        || (ack_count() >= before + 100).then_some(()),
    );

    // Restart the old leader while the writers keep going.
    let t_restart = Instant::now();
    cluster.node_mut(old_leader).restart();
    cluster.node_mut(old_leader).wait_healthy(START_TIMEOUT);
    let before = ack_count();
    wait_until(
        Duration::from_secs(30),
        "100 writes after the restart",
        || (ack_count() >= before + 100).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer task");
    }

    // Unavailability: the longest pause between consecutive acks from just before the kill up
    // to the restart, and the pause around the kill itself.
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let mut times: Vec<Instant> = acks.iter().map(|(t, _)| *t).collect();
    times.sort();
    let last_before = times
        .iter()
        .copied()
        .filter(|t| *t <= t_kill)
        .max()
        .expect("acks before the kill");
    let kill_gap = first_after - last_before;
    let window: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t + Duration::from_secs(1) >= t_kill && *t <= t_restart)
        .collect();
    let max_gap = window
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    println!(
        "leader {old_leader} killed: new leader {new_leader} visible after {t_leader:?}; \
         last ack before kill -> first ack after: {kill_gap:?}; longest pause between acks: {max_gap:?}; \
         {} acks, {} failed attempts",
        acks.len(),
        errors.load(Ordering::Relaxed)
    );
    assert!(
        kill_gap < Duration::from_secs(5),
        "writes resumed {kill_gap:?} after the last pre-kill ack (goal: < 2 s)"
    );
    assert!(
        max_gap < Duration::from_secs(5),
        "writes paused for {max_gap:?} (goal: < 2 s)"
    );

    let want: BTreeSet<String> = acks.into_iter().map(|(_, p)| p).collect();
    for id in ids {
        assert_all_present(&cluster, id, "/load", &want, Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_every_voter_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let ids = cluster.voter_ids();
    let c = zk_connect(&cluster.connect_string(&ids)).await;
    c.create("/dur", b"", &persistent())
        .await
        .expect("create /dur");

    // 300 creates, 16 at a time.
    let paths: Vec<String> = (0..300).map(|i| format!("/dur/n{i:04}")).collect();
    for chunk in paths.chunks(16) {
        let results = futures::future::join_all(
            chunk
                .iter()
                .map(|p| c.create(p, p.as_bytes(), &persistent())),
        )
        .await;
        for (p, r) in chunk.iter().zip(results) {
            r.unwrap_or_else(|e| panic!("create {p}: {e}"));
        }
    }
    // Updates and deletes are acknowledged writes too.
    for p in &paths[..50] {
        c.set_data(p, b"updated", Some(0))
            .await
            .unwrap_or_else(|e| panic!("set {p}: {e}"));
    }
    for p in &paths[280..] {
        c.delete(p, None)
            .await
            .unwrap_or_else(|e| panic!("delete {p}: {e}"));
    }
    drop(c);

    for id in &ids {
        cluster.node_mut(*id).kill9();
    }
    for id in &ids {
        cluster.node_mut(*id).restart();
    }
    cluster.wait_healthy(START_TIMEOUT);
    cluster.wait_leader(Duration::from_secs(30));

    let live: BTreeSet<String> = paths[..280].iter().cloned().collect();
    for id in &ids {
        assert_all_present(&cluster, *id, "/dur", &live, Duration::from_secs(30)).await;
        let c = zk_connect(&cluster.node(*id).client_addr()).await;
        let kids = c.list_children("/dur").await.expect("ls /dur");
        assert_eq!(kids.len(), 280, "node {id}: deleted znodes stay deleted");
        for (i, p) in paths[..280].iter().enumerate() {
            let (data, stat) = c
                .get_data(p)
                .await
                .unwrap_or_else(|e| panic!("node {id}: get {p}: {e}"));
            if i < 50 {
                assert_eq!(
                    (data.as_slice(), stat.version),
                    (&b"updated"[..], 1),
                    "node {id}: {p}"
                );
            } else {
                assert_eq!(
                    (data.as_slice(), stat.version),
                    (p.as_bytes(), 0),
                    "node {id}: {p}"
                );
            }
        }
    }

    // The recovered cluster takes writes, and SIGTERM stops every node cleanly.
    let c = zk_connect(&cluster.connect_string(&ids)).await;
    c.create("/dur/after", b"", &persistent())
        .await
        .expect("write after recovery");
    drop(c);
    for id in &ids {
        let status = cluster.node_mut(*id).stop();
        assert!(
            status.success(),
            "node {id}: SIGTERM should exit 0, got {}",
            describe_exit(&status)
        );
    }
}

/// A client whose server is killed moves to another with the same session: its ephemeral
/// lives on, and its data watch fires for the change made while it was moving (the new
/// server compares the watch with the client's last zxid on setWatches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_server_dying_with_its_watches_and_ephemerals() {
    let mut cluster = Cluster::start(3);
    let client = zk_connect(&cluster.connect_string(&cluster.voter_ids())).await;
    let session = client.session_id();
    client
        .create("/w", b"0", &persistent())
        .await
        .expect("create /w");
    client
        .create("/eph", b"", &ephemeral())
        .await
        .expect("create /eph");
    let (_, _, watcher) = client.get_and_watch_data("/w").await.expect("watch /w");

    // The one node with a client connection is the client's server: kill it.
    let server = wait_until(Duration::from_secs(10), "the client's server", || {
        cluster
            .nodes()
            .iter()
            .find(|n| n.status().and_then(|s| s["connections"].as_u64()) == Some(1))
            .map(Node::id)
    });
    cluster.node_mut(server).kill9();
    let other = cluster
        .voter_ids()
        .into_iter()
        .find(|&id| id != server)
        .expect("a survivor");
    let writer = zk_connect(&cluster.node(other).client_addr()).await;
    eventually(
        Duration::from_secs(20),
        "write through a survivor",
        || async { writer.set_data("/w", b"1", None).await.ok() },
    )
    .await;

    let event = tokio::time::timeout(Duration::from_secs(30), watcher.changed())
        .await
        .expect("the watch fired after the client moved");
    assert_eq!(
        event.event_type,
        zookeeper_client::EventType::NodeDataChanged
    );
    assert_eq!(event.path, "/w");
    assert_eq!(client.session_id(), session, "same session");
    let (_, stat) = client
        .get_data("/eph")
        .await
        .expect("ephemeral still there");
    assert_eq!(stat.ephemeral_owner, session.0);
    println!("session {session} moved off killed node {server}: watch fired, ephemeral kept");
}
