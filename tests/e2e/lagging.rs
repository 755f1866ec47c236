//! A follower far behind on large entries catches up (issue #9, item 4): one follower is
//! frozen with SIGSTOP while 200 znodes of 900 KiB (about 176 MiB, far more than one 64 MiB
//! peer frame holds) are written; after SIGCONT it catches up without deposing the leader,
//! its client port serves the data, and a learner that joins afterwards gets everything.
//!
//! Before the fix the frozen follower never caught up: AppendEntries batches of up to 300
//! entries overflowed the frame, failed as network errors and were re-sent forever, and the
//! follower, hearing nothing, campaigned with ever higher terms.

use std::time::Duration;

use zookeeper_client::Error as ZkError;

use crate::harness::*;

const ZNODES: usize = 200;
const SIZE: usize = 900 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

/// The data of znode `i`: its number, then a byte pattern of its own.
fn data(i: usize) -> Vec<u8> {
    let mut d = vec![(i % 251) as u8; SIZE];
    d[..8].copy_from_slice(&(i as u64).to_be_bytes());
    d
}

/// A node frozen with SIGSTOP; SIGCONT when resumed or dropped (also when the test fails,
/// so the harness can stop it).
struct Frozen(Option<u32>);

impl Frozen {
    fn new(node: &Node) -> Frozen {
        let pid = node.pid().expect("the node runs");
        // SAFETY: kill(2) of our own unreaped child.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGSTOP);
        }
        Frozen(Some(pid))
    }

    fn resume(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: as in `new`; the child is still unreaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGCONT);
            }
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.resume();
    }
}

fn term(node: &Node) -> Option<u64> {
    node.status()?["node"]["term"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_follower_catches_up_on_large_entries() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader(TIMEOUT);
    let leader_term = term(cluster.node(leader)).expect("leader's term");
    let ids = cluster.voter_ids();
    let lagger = *ids.iter().find(|id| **id != leader).expect("a follower");
    let live: Vec<u64> = ids.iter().copied().filter(|id| *id != lagger).collect();

    let mut frozen = Frozen::new(cluster.node(lagger));
    let c = zk_connect(&cluster.connect_string(&live)).await;
    c.create("/big", b"", &persistent())
        .await
        .expect("create /big");
    for i in 0..ZNODES {
        create_retrying(&c, &format!("/big/n{i:03}"), &data(i)).await;
    }
    let target = wait_until(TIMEOUT, "the live nodes to apply every write", || {
        let applied: Option<Vec<u64>> = live
            .iter()
            .map(|id| cluster.node(*id).applied_index())
            .collect();
        let applied = applied?;
        (applied.iter().all(|a| *a == applied[0]) && applied[0] > ZNODES as u64)
            .then_some(applied[0])
    });
    println!("wrote {ZNODES} x {SIZE} bytes; applied index {target}; resuming node {lagger}");

    frozen.resume();
    let node = cluster.node(lagger);
    let t = std::time::Instant::now();
    wait_until(
        TIMEOUT,
        &format!("node {lagger} to apply index {target}"),
        || node.applied_index().filter(|a| *a >= target),
    );
    println!("node {lagger} caught up in {:?}", t.elapsed());

    // The leader was not deposed: same leader, same term, on every voter.
    assert_eq!(cluster.leader(), Some(leader), "{}", cluster.describe());
    for id in &ids {
        assert_eq!(
            term(cluster.node(*id)),
            Some(leader_term),
            "node {id}'s term; cluster:\n{}",
            cluster.describe()
        );
    }

    // Its own client port serves the data.
    check_tree(&cluster.node(lagger).client_addr(), lagger).await;

    // A learner that joins now gets everything.
    let learner = cluster.add_learner();
    let node = cluster.node(learner);
    wait_until(
        TIMEOUT,
        &format!("learner {learner} to apply index {target}"),
        || node.applied_index().filter(|a| *a >= target),
    );
    check_tree(&node.client_addr(), learner).await;
}

/// Creates `path`, retrying a few times when no reply comes in time (the client gives up
/// after 800 ms, which a loaded 2-core machine writing 900 KiB entries can exceed); a retry
/// that finds the znode means an earlier attempt committed.
async fn create_retrying(c: &zookeeper_client::Client, path: &str, data: &[u8]) {
    for attempt in 1..=5 {
        match c.create(path, data, &persistent()).await {
            Ok(_) => return,
            Err(ZkError::NodeExists) if attempt > 1 => return,
            Err(e) if attempt < 5 => eprintln!("create {path}: {e}; retrying"),
            Err(e) => panic!("create {path}: {e}"),
        }
    }
}

/// Every znode is listed through `addr`, and a sample of them has the right data.
async fn check_tree(addr: &str, id: u64) {
    let c = zk_connect(addr).await;
    let kids = c
        .list_children("/big")
        .await
        .unwrap_or_else(|e| panic!("node {id}: ls /big: {e}"));
    assert_eq!(kids.len(), ZNODES, "node {id}: children of /big");
    for i in [0, 1, ZNODES / 2, ZNODES - 1] {
        let path = format!("/big/n{i:03}");
        let (got, _) = c
            .get_data(&path)
            .await
            .unwrap_or_else(|e| panic!("node {id}: get {path}: {e}"));
        assert!(got == data(i), "node {id}: data of {path} differs");
    }
}
