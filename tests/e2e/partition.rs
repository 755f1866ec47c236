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

/// A follower cut off from its peers for several election timeouts, then healed, rejoins
/// without deposing the healthy leader: no term storm (pre-vote; item 9 of the issue).
#[test]
fn a_healed_follower_does_not_depose_a_healthy_leader() {
    if !Net::available("partition::a_healed_follower_does_not_depose_a_healthy_leader") {
        return;
    }
    let cluster = Cluster::builder(3).net(Net::new(3)).start();
    let leader = cluster.wait_leader(START_TIMEOUT);
    let term = |id: u64| {
        cluster
            .node(id)
            .status()
            .and_then(|s| s["node"]["term"].as_u64())
    };
    let before = term(leader).expect("leader's term");
    let follower = cluster
        .voter_ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.net().isolate(follower as usize);
    std::thread::sleep(Duration::from_secs(6));
    let isolated_term = term(follower);
    cluster.net().heal();
    let healed = Instant::now();
    // Watch the cluster for a while after the heal: the same leader in the same term.
    while healed.elapsed() < Duration::from_secs(6) {
        if let Some(now) = cluster.leader() {
            assert_eq!(
                now, leader,
                "leader changed from {leader} to {now} after the heal (isolated node's term {isolated_term:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        term(leader),
        Some(before),
        "the term moved on after the heal"
    );
    harness::wait_until(
        Duration::from_secs(20),
        "the healed follower to follow",
        || {
            let s = cluster.node(follower).status()?;
            (s["node"]["leader"].as_u64() == Some(leader)).then_some(())
        },
    );
}
