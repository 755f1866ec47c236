//! The node's background loops: joining the cluster as a learner, and the session keeper
//! (activity reports to the leader; on the leader, expiry and the container/TTL reaper).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
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

/// The session keeper: reports local activity to the leader (which also measures leader
/// contact, see `contact`); on the leader, confirms its quorum, tracks deadlines, proposes
/// expiries, and reaps containers and TTL nodes.
pub(super) async fn keeper(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.config.keeper_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led_term = None;
    // At most one contact probe (report or quorum check) in flight at a time.
    let probing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let metrics = inner.raft.metrics().borrow().clone();
        let leading =
            metrics.current_leader == Some(inner.config.id) && metrics.state == ServerState::Leader;
        if !leading {
            led_term = None;
            report_activity(&inner, &probing);
            super::election::tick(&inner);
            continue;
        }
        confirm_quorum(&inner, &probing);
        let touched: HashSet<SessionId> = lock(&inner.touched).drain().collect();
        if led_term != Some(metrics.current_term) {
            // New leadership: every session's timer starts afresh (ZooKeeper does the same).
            lock(&inner.tracker).clear();
            led_term = Some(metrics.current_term);
        }
        let term = metrics.current_term;
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
            // Give each expiry one write timeout before it is proposed again.
            for id in &expired {
                tracker.touch(*id, now, inner.config.write_timeout);
            }
            expired
        };
        for session in expired {
            let inner = inner.clone();
            tokio::spawn(async move {
                tracing::info!(
                    session = format_args!("{session:#x}"),
                    term,
                    "session expired"
                );
                if let Err(e) = expire_here(&inner, session, term).await {
                    tracing::warn!(error = %e, "proposing session expiry failed");
                }
            });
        }
        let reapable = inner.replica.read(|tree| tree.reapable(now_ms()));
        let handle = Handle {
            inner: inner.clone(),
        };
        for (path, version) in reapable.into_iter().take(100) {
            let handle = handle.clone();
            tokio::spawn(async move {
                let op = crate::tree::Op::Delete { path, version };
                let _ = handle.propose(0, TxnBody::Op(op)).await;
            });
        }
    }
}

/// Commits the expiry of `session` decided in `term`, on this node only: a verdict is never
/// forwarded (a deposed leader's view of who is alive is stale), and it applies only if its
/// entry is committed in the same term (see [`TxnBody::ExpireSession`]).
async fn expire_here(inner: &Inner, session: SessionId, term: u64) -> crate::Result<()> {
    let proposal = crate::types::Proposal {
        time_ms: now_ms(),
        session,
        tag: 0,
        body: TxnBody::ExpireSession { session, term },
    };
    let deadline = Instant::now() + inner.config.write_timeout;
    inner.write_local(proposal, deadline).await.map(|_| ())
}

/// On a follower or learner: sends the sessions active here since the last report to the
/// leader, every period even when there are none, and records leader contact from the reply.
fn report_activity(inner: &Arc<Inner>, probing: &Arc<std::sync::atomic::AtomicBool>) {
    let Ok(Some(addr)) = inner.leader() else {
        return;
    };
    if probing.swap(true, Ordering::AcqRel) {
        return;
    }
    let touched: Vec<SessionId> = lock(&inner.touched).drain().collect();
    let inner = inner.clone();
    let probing = probing.clone();
    tokio::spawn(async move {
        let sent = Instant::now();
        let client = inner.pool.get(&addr);
        let reply = client
            .call(
                PeerRequest::Touch(touched.clone()),
                inner.config.keeper_period * 5,
            )
            .await;
        match reply {
            Ok(PeerResponse::Touched(Some(age_ms))) => {
                let leader_contact = Instant::now()
                    .checked_sub(Duration::from_millis(age_ms))
                    .unwrap_or(sent);
                inner.contact.record(sent.min(leader_contact));
            }
            Ok(_) => {}
            Err(_) => {
                // Not delivered, or not known to be: report the activity again next time.
                lock(&inner.touched).extend(touched);
            }
        }
        probing.store(false, Ordering::Release);
    });
}

/// On the leader: a read-index round (a heartbeat a quorum must answer) confirms that a
/// quorum still hears this node; contact is recorded as of the round's start.
fn confirm_quorum(inner: &Arc<Inner>, probing: &Arc<std::sync::atomic::AtomicBool>) {
    if probing.swap(true, Ordering::AcqRel) {
        return;
    }
    let inner = inner.clone();
    let probing = probing.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let confirmed =
            tokio::time::timeout(inner.config.keeper_period * 5, inner.read_index()).await;
        match confirmed {
            Ok(Ok(_)) => inner.contact.record(started),
            Ok(Err(e)) => tracing::debug!(error = %e, "quorum not confirmed"),
            Err(_) => tracing::debug!("quorum not confirmed in time"),
        }
        probing.store(false, Ordering::Release);
    });
}
