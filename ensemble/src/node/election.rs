//! When this voter may start an election: only after it has *run* for an election timeout
//! without hearing a leader. openraft's own election timer counts wall time, including time
//! the process did not run; a follower resumed after a SIGSTOP (or a frozen VM) finds its
//! timer long expired and campaigns before it reads the heartbeats waiting in its socket.
//! Its higher term then deposes the healthy leader the moment the leader's next
//! AppendEntries meets it, or — while replication to it failed — kept it a candidate with
//! ever rising terms (issue #9, item 4: term 17 against the leader's 1).
//!
//! The gate: peers' accepted AppendEntries and InstallSnapshot requests are recorded as
//! leader contact ([`LeaderHeard`]); a loop ticking every [`TICK`] allows openraft's
//! elections (`RuntimeConfig::elect`) only while no leader was heard for the minimum
//! election timeout. A tick that comes far later than due means the process was paused; the
//! loop then counts the silence from the resume, so a resumed follower gives the leader a
//! full timeout to reach it. openraft's own timer still decides the moment of the election
//! once the gate is open, so a dead leader is replaced as fast as before.
//!
//! Not covered here: a node that was cut off by the network (not paused) did run through
//! the silence, and still campaigns when it comes back; that needs pre-vote (issue #9,
//! item 9).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{lock, Inner};

/// How often the gate looks.
pub(super) const TICK: Duration = Duration::from_millis(20);

/// A tick this much later than due means the process did not run meanwhile.
const PAUSED: Duration = Duration::from_millis(150);

/// When this node last accepted a request from a leader.
#[derive(Debug, Default)]
pub(super) struct LeaderHeard {
    last: Mutex<Option<Instant>>,
}

impl LeaderHeard {
    /// Records that a leader was heard now.
    pub(super) fn record(&self) {
        *lock(&self.last) = Some(Instant::now());
    }

    /// Whether a leader was heard within `within`.
    fn recent(&self, within: Duration) -> bool {
        lock(&self.last).is_some_and(|at| at.elapsed() < within)
    }
}

/// Whether openraft may elect, given the time since the gate last looked: not while a leader
/// was heard recently, nor right after a pause (which then counts as contact).
fn may_elect(heard: &LeaderHeard, since_last_tick: Duration, timeout: Duration) -> bool {
    if since_last_tick > TICK + PAUSED {
        heard.record();
        return false;
    }
    !heard.recent(timeout)
}

/// Runs the gate until the node stops.
pub(super) async fn gate(inner: Arc<Inner>) {
    let timeout = inner.config.election_timeout.0;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = Instant::now();
    let mut allowed = true;
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let elect = may_elect(&inner.heard, now - last_tick, timeout);
        last_tick = now;
        if elect != allowed {
            tracing::debug!(elect, "election gate");
            inner.raft.runtime_config().elect(elect);
            allowed = elect;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_while_a_leader_is_heard_and_after_a_pause() {
        let timeout = Duration::from_millis(300);
        let heard = LeaderHeard::default();
        assert!(may_elect(&heard, TICK, timeout), "never heard: open");
        heard.record();
        assert!(!may_elect(&heard, TICK, timeout), "just heard: closed");
        *lock(&heard.last) = Some(Instant::now() - Duration::from_secs(10));
        assert!(may_elect(&heard, TICK, timeout), "silent for 10 s: open");
        assert!(
            !may_elect(&heard, Duration::from_secs(10), timeout),
            "resumed from a 10 s pause: closed"
        );
        assert!(
            !may_elect(&heard, TICK, timeout),
            "and it stays closed for a timeout"
        );
    }
}
