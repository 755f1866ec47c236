//! When a voter may campaign: pre-vote, in front of openraft's elections.
//!
//! openraft 0.9 has no pre-vote. A voter cut off from its peers times out and campaigns again
//! and again, raising its term each time (14 terms in 6 s, measured); when the partition
//! heals, its higher term reaches the leader through replication replies and deposes a leader
//! that was serving fine. So openraft's own election timer is switched off and this loop
//! decides instead, as etcd's and the Raft thesis's pre-vote do: a voter that has heard no
//! leader for a randomised election timeout asks the other voters whether they would vote for
//! it ([`PeerRequest::PreVote`]); each says yes only if it has not heard from a leader for the
//! minimum election timeout either and the asker's log is at least as up to date as its own.
//! Only with a majority of yeses (its own included) does it trigger a real election. A voter
//! that cannot reach a majority therefore never raises its term, and a live leader that a
//! majority still hears is never challenged.
//!
//! "Heard from a leader" is an AppendEntries or InstallSnapshot that this node accepted from
//! the leader of its current term (see `peer`). Elections themselves, votes and terms remain
//! openraft's: this only decides when to ask for one.
//!
//! [`PeerRequest::PreVote`]: crate::network::message::PeerRequest::PreVote

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use rand::Rng;

use crate::network::message::{PeerRequest, PeerResponse};
use crate::types::typ::LogId;

use super::{lock, Inner};

/// Election state kept between keeper ticks.
#[derive(Debug)]
pub(super) struct Campaign {
    /// The randomised timeout in force until the next attempt.
    timeout: Duration,
    /// When this node last asked (or started), so attempts are spaced by `timeout`.
    last_attempt: Instant,
    /// A pre-vote round is in flight.
    asking: bool,
}

impl Campaign {
    pub(super) fn new(range: (Duration, Duration)) -> Campaign {
        Campaign {
            timeout: random_timeout(range),
            last_attempt: Instant::now(),
            asking: false,
        }
    }
}

fn random_timeout((min, max): (Duration, Duration)) -> Duration {
    let (lo, hi) = (
        min.as_millis() as u64,
        max.as_millis().max(min.as_millis() + 1) as u64,
    );
    Duration::from_millis(rand::thread_rng().gen_range(lo..hi))
}

/// This node's last log id.
fn last_log(inner: &Inner) -> Option<LogId> {
    inner.raft.data_metrics().borrow().last_log
}

/// The answer to a pre-vote from a voter whose last log id is `theirs`.
pub(super) fn grant(inner: &Inner, theirs: Option<LogId>) -> bool {
    let m = inner.raft.metrics().borrow().clone();
    if m.state == ServerState::Leader {
        return false; // a live leader answers: it is still here
    }
    let quiet = inner
        .heard
        .age()
        .is_none_or(|age| age >= inner.config.election_timeout.0);
    quiet && theirs >= last_log(inner)
}

/// One keeper tick on a voter that does not lead: campaigns if the time has come and a
/// majority of voters agrees.
pub(super) fn tick(inner: &Arc<Inner>) {
    let m = inner.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: Vec<u64> = membership.voter_ids().collect();
    if !voters.contains(&inner.config.id) || m.state == ServerState::Leader {
        return;
    }
    let now = Instant::now();
    let peers: Vec<(u64, String)> = voters
        .iter()
        .filter(|id| **id != inner.config.id)
        .filter_map(|id| membership.get_node(id).map(|n| (*id, n.addr.clone())))
        .collect();
    {
        let mut c = lock(&inner.campaign);
        let heard_recently = inner.heard.age().is_some_and(|age| age < c.timeout);
        if c.asking || heard_recently || now.duration_since(c.last_attempt) < c.timeout {
            return;
        }
        c.asking = true;
        c.last_attempt = now;
        c.timeout = random_timeout(inner.config.election_timeout);
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        let mine = last_log(&inner);
        let ask = peers.into_iter().map(|(_, addr)| {
            let client = inner.pool.get(&addr);
            let timeout = inner.config.election_timeout.0;
            async move {
                matches!(
                    client
                        .call(PeerRequest::PreVote { last_log: mine }, timeout)
                        .await,
                    Ok(PeerResponse::PreVote(true))
                )
            }
        });
        let yes = 1 + futures::future::join_all(ask)
            .await
            .into_iter()
            .filter(|granted| *granted)
            .count();
        if yes * 2 > voters.len() {
            tracing::info!(
                yes,
                voters = voters.len(),
                "pre-vote won; starting an election"
            );
            if let Err(e) = inner.raft.trigger().elect().await {
                tracing::warn!(error = %e, "could not start an election");
            }
        } else {
            tracing::debug!(yes, voters = voters.len(), "pre-vote lost; not campaigning");
        }
        lock(&inner.campaign).asking = false;
    });
}
