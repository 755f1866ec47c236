//! Real network partitions between test hosts (see `netns`): each node on its own host, the
//! test's clients in the root namespace reaching every host, `tc` rules cutting peer traffic.
//!
//! These are safety checks and run without retries (`.config/nextest.toml`).

use std::time::{Duration, Instant};

use zookeeper_client::SessionState;

use crate::harness::{self, eventually, Cluster, Net, SESSION_TIMEOUT, START_TIMEOUT};

/// A lock holder on a server that is cut off from its peers (but not from its client) is
/// told it is disconnected before the leader expires its session and a rival takes the
/// lock; after the heal, the holder's session is reported expired, never revived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_servers_client_is_told_before_its_lock_passes_on() {
    if !Net::available("partition::an_isolated_servers_client_is_told_before_its_lock_passes_on") {
        return;
    }
    let cluster = Cluster::builder(3).net(Net::new(3)).start();
    let leader = cluster.wait_leader(START_TIMEOUT);
    let follower = cluster
        .voter_ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let holder = harness::zk_connect(&cluster.connect_string(&[follower])).await;
    holder
        .create("/lock", b"", &harness::ephemeral())
        .await
        .expect("take the lock");
    let rival = harness::zk_connect(&cluster.connect_string(&[leader])).await;

    let mut state = holder.state_watcher();
    let cut = Instant::now();
    cluster.net().isolate(follower as usize);
    let told = tokio::spawn(async move {
        loop {
            let s = state.changed().await;
            if s != SessionState::SyncConnected {
                return (cut.elapsed(), s);
            }
        }
    });

    let taken_after = eventually(
        SESSION_TIMEOUT * 10,
        "the rival to take the lock",
        || async {
            rival
                .create("/lock", b"", &harness::ephemeral())
                .await
                .ok()
                .map(|_| cut.elapsed())
        },
    )
    .await;
    let (told_after, told_state) = tokio::time::timeout(Duration::from_secs(1), told)
        .await
        .expect("the holder was never told it lost its server, though its lock passed on")
        .expect("state watcher task");
    println!(
        "holder told {told_state:?} {told_after:?} after the cut; rival took the lock {taken_after:?} after"
    );
    assert!(
        told_after < taken_after,
        "the holder was told at {told_after:?}, after the rival took the lock at {taken_after:?}"
    );

    cluster.net().heal();
    let mut state = holder.state_watcher();
    let ended = tokio::time::timeout(SESSION_TIMEOUT * 10, async {
        loop {
            match state.state() {
                SessionState::SyncConnected => {
                    return Err("the expired session was revived after the heal")
                }
                SessionState::Expired => return Ok(()),
                _ => {}
            }
            state.changed().await;
        }
    })
    .await
    .expect("the holder never learned its session expired");
    ended.unwrap_or_else(|e| panic!("{e}"));
}
