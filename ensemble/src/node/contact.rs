//! Leader contact: when this node last knew, by a completed round trip, that a leader holding
//! a quorum heard from it. The client port closes its connections when contact is older than
//! a fraction of their session timeout, so a client of a cut-off server learns it is
//! disconnected before the leader can expire its session (ZooKeeper's followers drop their
//! clients when they lose the leader).
//!
//! How contact is measured, so that it is safe under one-way faults too:
//! - on a follower or learner, the keeper's activity report ([`PeerRequest::Touch`]) goes to
//!   the leader every keeper period, and the reply says how long ago the leader itself last
//!   confirmed its quorum. Contact is then the earlier of the report's send time and the
//!   leader's own quorum contact: the leader received this node's activity no earlier than
//!   that, so its session deadlines run from no earlier than that either;
//! - on the leader, a read-index round (a heartbeat that a quorum must answer) every keeper
//!   period; contact is the moment that round started.
//!
//! [`PeerRequest::Touch`]: crate::network::message::PeerRequest::Touch

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The latest confirmed contact (also used for "last heard from a leader", see `election`).
#[derive(Debug, Default)]
pub(super) struct Contact {
    last: Mutex<Option<Instant>>,
}

impl Contact {
    /// Records contact confirmed as of `at` (an older instant than the one held is ignored).
    pub(super) fn record(&self, at: Instant) {
        let mut last = super::lock(&self.last);
        if last.is_none_or(|l| l < at) {
            *last = Some(at);
        }
    }

    /// How long ago contact was last confirmed; `None` if never.
    pub(super) fn age(&self) -> Option<Duration> {
        super::lock(&self.last).map(|at| at.elapsed())
    }

    /// The age in whole milliseconds, as peers are told it.
    pub(super) fn age_ms(&self) -> Option<u64> {
        self.age()
            .map(|a| a.as_millis().min(u64::MAX as u128) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_contact() {
        let c = Contact::default();
        assert!(c.age().is_none());
        let now = Instant::now();
        c.record(now);
        c.record(now - Duration::from_secs(5));
        assert!(c.age().is_some_and(|a| a < Duration::from_secs(1)));
    }
}
