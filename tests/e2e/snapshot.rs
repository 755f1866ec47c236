//! Snapshot catch-up: a node that was down while the others wrote far more entries than
//! `--snapshot-every` (so the log it is missing has been purged) catches up on restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zookeeper_client::Error as ZkError;

use crate::harness::*;

const TOTAL: usize = 20_000;
const TASKS: usize = 32;
const CONNECTIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::builder(3).snapshot_every(1000).start();
    let ids = cluster.voter_ids();
    let leader = cluster.wait_leader(Duration::from_secs(30));
    // Stop a follower, so the writes need no election.
    let lagger = ids
        .iter()
        .copied()
        .find(|id| *id != leader)
        .expect("a follower");
    let status = cluster.node_mut(lagger).stop();
    assert!(
        status.success(),
        "node {lagger}: SIGTERM should exit 0, got {}",
        describe_exit(&status)
    );
    let live: Vec<u64> = ids.iter().copied().filter(|id| *id != lagger).collect();

    // 20,000 creates, 32 in flight over 4 sessions spread over the two live nodes.
    let mut clients = Vec::new();
    for i in 0..CONNECTIONS {
        clients.push(zk_connect(&cluster.node(live[i % live.len()]).client_addr()).await);
    }
    clients[0]
        .create("/snap", b"", &persistent())
        .await
        .expect("create /snap");
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = clients[task % CONNECTIONS].clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    return;
                }
                let path = format!("/snap/n{i:05}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let res = tokio::time::timeout(
                        Duration::from_secs(10),
                        client.create(&path, format!("v{i}").as_bytes(), &persistent()),
                    )
                    .await;
                    match res {
                        Ok(Ok(_)) => break,
                        // A retry of a create whose reply was lost.
                        Ok(Err(ZkError::NodeExists)) if attempts > 1 => break,
                        Ok(Err(e)) if attempts < 5 => {
                            eprintln!("create {path}: {e}; retrying");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(Err(e)) => panic!("create {path}: {e}"),
                        Err(_) if attempts < 5 => {
                            eprintln!("create {path}: no reply in 10 s; retrying")
                        }
                        Err(_) => panic!("create {path}: no reply"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    let took = t.elapsed();
    println!(
        "{TOTAL} creates with {TASKS} in flight in {took:?} ({:.0}/s) while node {lagger} was down",
        TOTAL as f64 / took.as_secs_f64()
    );
    clients[0]
        .set_data("/snap", b"done-20000", None)
        .await
        .expect("final write");
    drop(clients);
    let target = cluster.wait_applied(0, Duration::from_secs(60));
    println!("live nodes {live:?} applied index {target}");
    assert!(
        target >= TOTAL as u64,
        "applied index {target} covers the {TOTAL} writes"
    );

    let t = Instant::now();
    cluster.node_mut(lagger).restart();
    cluster
        .node_mut(lagger)
        .wait_healthy(Duration::from_secs(120));
    let node = cluster.node(lagger);
    let applied = wait_until(
        Duration::from_secs(120),
        &format!("node {lagger} to apply index {target}"),
        || node.applied_index().filter(|a| *a >= target),
    );
    println!(
        "node {lagger} reached applied index {applied} {:?} after its restart; /status: {}",
        t.elapsed(),
        node.status().map(|s| s.to_string()).unwrap_or_default()
    );

    // Its own client port serves the last write and the whole tree.
    let c = zk_connect(&node.client_addr()).await;
    let (data, _) = c
        .get_data("/snap")
        .await
        .expect("get /snap via the caught-up node");
    assert_eq!(data, b"done-20000");
    let kids = c
        .list_children("/snap")
        .await
        .expect("ls /snap via the caught-up node");
    assert_eq!(kids.len(), TOTAL, "children of /snap on node {lagger}");
    for i in [0, 1, TOTAL / 2, TOTAL - 1] {
        let (data, _) = c
            .get_data(&format!("/snap/n{i:05}"))
            .await
            .expect("get a snapshotted znode");
        assert_eq!(data, format!("v{i}").into_bytes());
    }
}
