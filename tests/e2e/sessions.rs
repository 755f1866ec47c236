//! Session safety at the client port: a client learns that its session is gone, or that its
//! server lost the leader, before anyone else can take what the session held.
//!
//! - A session closed through another connection (ZooKeeper's test suites and client
//!   libraries kill sessions exactly so) closes the first connection, and re-attaching is
//!   answered "expired".
//! - A session re-attached through a second connection of the same node closes the first.
//! - A server whose peers are frozen (SIGSTOP) drops its clients within half their session
//!   timeout, so they see Disconnected well before a leader could expire them.
//! - A leader paused past the session timeout cannot, when it wakes, get its stale expiry
//!   verdicts committed by the new leader.
//!
//! These are safety checks: `.config/nextest.toml` runs them without retries.

use std::time::{Duration, Instant};

use crate::harness::{self, eventually, wait_until, Cluster, SESSION_TIMEOUT};
use crate::jute::{self, RawClient};

/// The server drops a client at half the session timeout without leader contact; the
/// leader cannot expire the session before a whole timeout. The client must be dropped
/// before that.
const DROP_BOUND: Duration = SESSION_TIMEOUT;

/// Pings on `client` (as a live client does, well inside its timeout) until the server stops
/// answering OK; returns how long that took. Panics if it answers for `limit`.
fn ping_until_dropped(client: &mut RawClient, limit: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        match client.ping() {
            Ok(jute::OK) => {}
            Ok(_) | Err(_) => return start.elapsed(),
        }
        assert!(
            start.elapsed() < limit,
            "{what}: the connection was still served {:?} later",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_session_closed_through_another_server_closes_its_connection() {
    let cluster = Cluster::start(3);
    let first = cluster.node(1).client_socket();
    let other = cluster.node(2).client_socket();
    let mut a = RawClient::connect(first).expect("connect to node 1");
    let (id, passwd) = (a.session_id, a.passwd.clone());
    let b = RawClient::attach(other, id, &passwd).expect("re-attach through node 2");
    b.close().expect("closeSession through node 2");

    // Well inside the idle timeout (a silent connection is closed after the session timeout).
    ping_until_dropped(&mut a, SESSION_TIMEOUT / 2, "session closed through node 2");
    let again = RawClient::attach(first, id, &passwd);
    assert!(
        again.is_err(),
        "re-attaching a closed session must be answered expired"
    );
}

#[test]
fn a_session_moved_to_another_connection_closes_the_old_one() {
    let cluster = Cluster::start(1);
    let addr = cluster.node(1).client_socket();
    let mut a = RawClient::connect(addr).expect("connect");
    let mut b = RawClient::attach(addr, a.session_id, &a.passwd).expect("re-attach");
    ping_until_dropped(
        &mut a,
        SESSION_TIMEOUT / 2,
        "session moved to another connection",
    );
    assert_eq!(b.ping().expect("ping on the new connection"), jute::OK);
}

#[test]
fn a_server_that_loses_its_leader_drops_its_clients_before_the_session_can_expire() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader(harness::START_TIMEOUT);
    let follower = cluster
        .voter_ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let mut client = RawClient::connect(cluster.node(follower).client_socket()).expect("connect");
    assert_eq!(client.ping().expect("ping"), jute::OK);

    // Freeze every other voter: the follower can reach no leader at all.
    let others: Vec<u64> = cluster
        .voter_ids()
        .into_iter()
        .filter(|id| *id != follower)
        .collect();
    for id in &others {
        cluster.node_mut(*id).pause();
    }
    let dropped_after = ping_until_dropped(&mut client, DROP_BOUND * 3, "cut-off server");
    println!("client dropped {dropped_after:?} after its server lost the leader");
    assert!(
        dropped_after < DROP_BOUND,
        "dropped after {dropped_after:?}: a leader may expire the session after {SESSION_TIMEOUT:?}"
    );
    // Operators see it too: `srvr` says it is not serving (ZooKeeper's answer for a server
    // without a leader), not "follower".
    let addr = cluster.node(follower).client_socket();
    wait_until(Duration::from_secs(5), "srvr to say not serving", || {
        let srvr = harness::four_letter_word(addr, "srvr").ok()?;
        srvr.contains("not currently serving").then_some(())
    });
    // Without a leader, re-attaching is refused rather than served from a stale replica.
    assert!(RawClient::attach(
        cluster.node(follower).client_socket(),
        client.session_id,
        &client.passwd
    )
    .is_err());
    for id in &others {
        cluster.node_mut(*id).resume();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_cannot_expire_sessions_when_it_wakes() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader(harness::START_TIMEOUT);
    let others: Vec<u64> = cluster
        .voter_ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let owner = harness::zk_connect(&cluster.connect_string(&others[..1])).await;
    owner
        .create("/held", b"", &harness::ephemeral())
        .await
        .expect("create ephemeral");
    let observer = harness::zk_connect(&cluster.connect_string(&others[1..])).await;
    let state = owner.state_watcher();

    cluster.node_mut(leader).pause();
    // Well past the session timeout: the paused leader's own deadlines all lapse.
    let new_leader = wait_until(Duration::from_secs(30), "a new leader", || {
        cluster.leader().filter(|id| *id != leader)
    });
    tokio::time::sleep(SESSION_TIMEOUT * 2).await;
    cluster.node_mut(leader).resume();
    println!("leader {leader} paused past the session timeout; node {new_leader} took over");

    // Give the woken leader time to act on its stale view; the ephemeral must never vanish.
    let settle = Instant::now() + SESSION_TIMEOUT * 2;
    while Instant::now() < settle {
        if let Ok(None) = observer.check_stat("/held").await {
            panic!("the ephemeral of a live session was deleted: a stale expiry was committed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let present = eventually(Duration::from_secs(10), "/held readable", || async {
        observer.check_stat("/held").await.ok()
    })
    .await;
    assert!(present.is_some(), "the live session's ephemeral is gone");
    assert_ne!(
        state.peek_state(),
        zookeeper_client::SessionState::Expired,
        "the live session was expired"
    );
    // The session still works.
    owner
        .delete("/held", None)
        .await
        .expect("the session still owns its ephemeral");
}

#[test]
fn a_silent_connection_is_closed_after_its_session_timeout() {
    let cluster = Cluster::start(1);
    let client = RawClient::connect(cluster.node(1).client_socket()).expect("connect");
    let start = Instant::now();
    let mut stream = client.into_stream();
    jute::wait_closed(&mut stream, SESSION_TIMEOUT * 3)
        .expect("a connection silent for its whole session timeout must be closed");
    let after = start.elapsed();
    println!("silent connection closed after {after:?}");
    assert!(
        after >= SESSION_TIMEOUT - Duration::from_millis(200),
        "closed after {after:?}, before the session timeout"
    );
}
