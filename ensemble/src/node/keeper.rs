//! The node's background loops: joining the cluster as a learner, and the session keeper
//! (activity reports to the leader; on the leader, expiry and the container/TTL reaper).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::network::message::{MembershipChange, PeerRequest, PeerResponse};
use crate::tree::{SessionId, TxnBody};

use super::{lock, now_ms, Handle, Inner};

/// Asks the cluster, through `join`, to add this node as a learner; retries until it is a
/// member or the node stops.
pub(super) async fn join_as_learner(inner: Arc<Inner>, join: String) {
    let change = MembershipChange::AddLearner {
        id: inner.config.id,
        addr: inner.config.advertise.clone(),
    };
    loop {
        let is_member = inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&inner.config.id)
            .is_some();
        if is_member {
            tracing::info!("member of the cluster");
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        match inner
            .call(&join, PeerRequest::Membership(change.clone()), deadline)
            .await
        {
            Ok(PeerResponse::Membership(Ok(()))) => {
                tracing::info!(via = %join, "joined as learner")
            }
            Ok(other) => tracing::warn!(via = %join, reply = ?other, "join refused; retrying"),
            Err(e) => tracing::warn!(via = %join, error = %e, "join failed; retrying"),
        }
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The session keeper: reports local activity to the leader; on the leader, tracks deadlines,
/// proposes expiries, and reaps containers and TTL nodes.
pub(super) async fn keeper(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.config.keeper_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led_term = None;
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let touched: Vec<SessionId> = lock(&inner.touched).drain().collect();
        let metrics = inner.raft.metrics().borrow().clone();
        let leading =
            metrics.current_leader == Some(inner.config.id) && metrics.state == ServerState::Leader;
        if !leading {
            led_term = None;
            if !touched.is_empty() {
                if let Ok(Some(addr)) = inner.leader() {
                    let client = inner.pool.get(&addr);
                    let period = inner.config.keeper_period;
                    tokio::spawn(async move {
                        let _ = client.call(PeerRequest::Touch(touched), period * 5).await;
                    });
                }
            }
            continue;
        }
        if led_term != Some(metrics.current_term) {
            // New leadership: every session's timer starts afresh (ZooKeeper does the same).
            lock(&inner.tracker).clear();
            led_term = Some(metrics.current_term);
        }
        let now = Instant::now();
        let expired = {
            let mut tracker = lock(&inner.tracker);
            inner.replica.read(|tree| {
                let live: Vec<(SessionId, i32)> =
                    tree.sessions().map(|(id, s)| (id, s.timeout_ms)).collect();
                let gone: Vec<SessionId> = tracker
                    .sessions()
                    .filter(|id| tree.session(*id).is_none())
                    .collect();
                for id in gone {
                    tracker.remove(id);
                }
                for (id, timeout_ms) in live {
                    let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
                    if !tracker.contains(id) || touched.contains(&id) {
                        tracker.touch(id, now, timeout);
                    }
                }
            });
            let expired = tracker.expired(now);
            // Give each expiry one period before it is proposed again.
            for id in &expired {
                tracker.touch(*id, now, inner.config.write_timeout);
            }
            expired
        };
        let reapable = inner.replica.read(|tree| tree.reapable(now_ms()));
        let handle = Handle {
            inner: inner.clone(),
        };
        for session in expired {
            let handle = handle.clone();
            tokio::spawn(async move {
                tracing::info!(session = format_args!("{session:#x}"), "session expired");
                if let Err(e) = handle.close_session(session).await {
                    tracing::warn!(error = %e, "proposing session expiry failed");
                }
            });
        }
        for (path, version) in reapable.into_iter().take(100) {
            let handle = handle.clone();
            tokio::spawn(async move {
                let op = crate::tree::Op::Delete { path, version };
                let _ = handle.propose(0, TxnBody::Op(op)).await;
            });
        }
    }
}
