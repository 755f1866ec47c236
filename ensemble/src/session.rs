//! Session liveness on the leader: expiry deadlines in an ordered set (as mini-redis keeps
//! key expiries). Every node collects the sessions its clients showed activity on and reports
//! them to the leader; only the leader decides expiry and proposes it through the log, so
//! every replica deletes the same ephemerals at the same zxid. A new leader starts every
//! session's timer afresh, as ZooKeeper does.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::tree::SessionId;

/// Deadlines of the sessions this node, as leader, is tracking.
#[derive(Debug, Default)]
pub struct SessionTracker {
    deadlines: HashMap<SessionId, Instant>,
    by_deadline: BTreeSet<(Instant, SessionId)>,
}

impl SessionTracker {
    /// Forgets every session (called when leadership changes hands).
    pub fn clear(&mut self) {
        self.deadlines.clear();
        self.by_deadline.clear();
    }

    /// Whether `session` is tracked.
    pub fn contains(&self, session: SessionId) -> bool {
        self.deadlines.contains_key(&session)
    }

    /// Sets `session`'s deadline to `now + timeout`.
    pub fn touch(&mut self, session: SessionId, now: Instant, timeout: Duration) {
        let deadline = now + timeout;
        if let Some(old) = self.deadlines.insert(session, deadline) {
            self.by_deadline.remove(&(old, session));
        }
        self.by_deadline.insert((deadline, session));
    }

    /// Stops tracking `session`.
    pub fn remove(&mut self, session: SessionId) {
        if let Some(old) = self.deadlines.remove(&session) {
            self.by_deadline.remove(&(old, session));
        }
    }

    /// Tracked sessions, in no particular order.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.deadlines.keys().copied()
    }

    /// Sessions whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<SessionId> {
        self.by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, s)| *s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_extends_and_expired_lists_only_past_deadlines() {
        let mut t = SessionTracker::default();
        let t0 = Instant::now();
        t.touch(1, t0, Duration::from_millis(100));
        t.touch(2, t0, Duration::from_millis(300));
        assert!(t.expired(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(t.expired(t0 + Duration::from_millis(150)), vec![1]);
        t.touch(
            1,
            t0 + Duration::from_millis(150),
            Duration::from_millis(100),
        );
        assert!(t.expired(t0 + Duration::from_millis(200)).is_empty());
        assert_eq!(t.expired(t0 + Duration::from_millis(400)), vec![1, 2]);
        t.remove(1);
        assert_eq!(t.expired(t0 + Duration::from_millis(400)), vec![2]);
        t.clear();
        assert!(t.expired(t0 + Duration::from_secs(10)).is_empty());
    }
}
