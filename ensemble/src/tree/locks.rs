//! The cluster-wide lock table: whole-file shared/exclusive locks by path, held by
//! (session, owner) pairs, with a FIFO queue of waiters and a fencing token per path.
//!
//! It is part of the replicated state (snapshotted with the tree), so every replica agrees
//! on who holds what. Grants are decided here, in log order: a request is granted at once
//! only if it is compatible with the holders and nobody waits before it; otherwise it
//! queues (or fails when it may not wait). A release grants from the head of the queue:
//! one exclusive request, or every shared request up to the next exclusive one. Closing a
//! session drops its holds and its queued requests.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::model::SessionId;

/// Who holds or waits: a session and an owner id within it (a mount's kernel lock owner).
pub type Holder = (SessionId, u64);

/// One granted lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The holder.
    pub holder: Holder,
    /// Exclusive or shared.
    pub exclusive: bool,
    /// Its fencing token.
    pub fence: u64,
}

/// One path's lock state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    /// Current holders: one exclusive or any number of shared.
    pub holds: Vec<Hold>,
    /// Queued requests in arrival order: (holder, exclusive).
    pub waiters: VecDeque<(Holder, bool)>,
    /// The last fencing token given out for this path.
    pub last_fence: u64,
}

/// What a lock request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acquired {
    /// Granted with this token.
    Granted(u64),
    /// Queued.
    Queued,
    /// Not grantable and not allowed to wait.
    WouldBlock,
}

/// A grant made by a release: (path, holder, fence).
pub(super) type Grant = (String, Holder, u64);

/// Every path's lock state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct LockTable {
    paths: BTreeMap<Box<str>, LockState>,
}

impl LockState {
    fn compatible(&self, exclusive: bool) -> bool {
        if exclusive {
            self.holds.is_empty()
        } else {
            self.holds.iter().all(|h| !h.exclusive)
        }
    }

    fn grant(&mut self, holder: Holder, exclusive: bool) -> u64 {
        self.last_fence += 1;
        let fence = self.last_fence;
        self.holds.push(Hold {
            holder,
            exclusive,
            fence,
        });
        fence
    }

    /// Grants from the head of the queue while possible.
    fn grant_waiters(&mut self, path: &str, grants: &mut Vec<Grant>) {
        while let Some(&(holder, exclusive)) = self.waiters.front() {
            if !self.compatible(exclusive) {
                break;
            }
            self.waiters.pop_front();
            let fence = self.grant(holder, exclusive);
            grants.push((path.to_owned(), holder, fence));
        }
    }

    /// Drops `holder`'s hold and queued request; true if anything was dropped.
    fn drop_holder(&mut self, holder: Holder) -> bool {
        let before = self.holds.len() + self.waiters.len();
        self.holds.retain(|h| h.holder != holder);
        self.waiters.retain(|(h, _)| *h != holder);
        before != self.holds.len() + self.waiters.len()
    }
}

impl LockTable {
    /// The lock state of `path`, if it was ever locked.
    pub(super) fn get(&self, path: &str) -> Option<&LockState> {
        self.paths.get(path)
    }

    /// A lock request. A holder that already holds the lock converts it: its hold is
    /// dropped first (as flock(2) does), which may grant others ahead of it.
    pub(super) fn acquire(
        &mut self,
        path: &str,
        holder: Holder,
        exclusive: bool,
        wait: bool,
        grants: &mut Vec<Grant>,
    ) -> Acquired {
        let state = self.paths.entry(path.into()).or_default();
        if let Some(h) = state.holds.iter().find(|h| h.holder == holder) {
            if h.exclusive == exclusive {
                return Acquired::Granted(h.fence);
            }
        }
        if state.drop_holder(holder) {
            state.grant_waiters(path, grants);
        }
        if state.waiters.is_empty() && state.compatible(exclusive) {
            Acquired::Granted(state.grant(holder, exclusive))
        } else if wait {
            state.waiters.push_back((holder, exclusive));
            Acquired::Queued
        } else {
            Acquired::WouldBlock
        }
    }

    /// Releases `holder`'s lock on `path` or withdraws its request; grants what that frees.
    pub(super) fn release(&mut self, path: &str, holder: Holder, grants: &mut Vec<Grant>) {
        if let Some(state) = self.paths.get_mut(path) {
            if state.drop_holder(holder) {
                state.grant_waiters(path, grants);
            }
        }
    }

    /// Drops every hold and request of `session`; grants what that frees.
    pub(super) fn release_session(&mut self, session: SessionId, grants: &mut Vec<Grant>) {
        for (path, state) in self.paths.iter_mut() {
            let before = state.holds.len() + state.waiters.len();
            state.holds.retain(|h| h.holder.0 != session);
            state.waiters.retain(|(h, _)| h.0 != session);
            if before != state.holds.len() + state.waiters.len() {
                state.grant_waiters(path, grants);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(t: &mut LockTable, h: Holder, exclusive: bool, wait: bool) -> Acquired {
        let mut grants = Vec::new();
        let got = t.acquire("/f", h, exclusive, wait, &mut grants);
        assert!(grants.is_empty());
        got
    }

    #[test]
    fn exclusive_excludes_and_queues_in_order() {
        let mut t = LockTable::default();
        assert_eq!(acquire(&mut t, (1, 1), true, true), Acquired::Granted(1));
        assert_eq!(acquire(&mut t, (2, 1), true, false), Acquired::WouldBlock);
        assert_eq!(acquire(&mut t, (2, 1), true, true), Acquired::Queued);
        assert_eq!(acquire(&mut t, (3, 1), false, true), Acquired::Queued);
        assert_eq!(acquire(&mut t, (3, 2), false, true), Acquired::Queued);
        let mut grants = Vec::new();
        t.release("/f", (1, 1), &mut grants);
        assert_eq!(grants, [("/f".to_owned(), (2, 1), 2)]);
        grants.clear();
        t.release("/f", (2, 1), &mut grants);
        // Both shared waiters at once, in order, with increasing tokens.
        assert_eq!(
            grants,
            [("/f".to_owned(), (3, 1), 3), ("/f".to_owned(), (3, 2), 4)]
        );
    }

    #[test]
    fn shared_does_not_jump_a_queued_exclusive() {
        let mut t = LockTable::default();
        assert_eq!(acquire(&mut t, (1, 1), false, true), Acquired::Granted(1));
        assert_eq!(acquire(&mut t, (2, 1), false, true), Acquired::Granted(2));
        assert_eq!(acquire(&mut t, (3, 1), true, true), Acquired::Queued);
        assert_eq!(acquire(&mut t, (4, 1), false, false), Acquired::WouldBlock);
    }

    #[test]
    fn closing_a_session_releases_and_withdraws() {
        let mut t = LockTable::default();
        acquire(&mut t, (1, 1), true, true);
        acquire(&mut t, (1, 2), true, true);
        acquire(&mut t, (2, 1), true, true);
        let mut grants = Vec::new();
        t.release_session(1, &mut grants);
        assert_eq!(grants, [("/f".to_owned(), (2, 1), 2)]);
        assert!(t.get("/f").is_some_and(|s| s.waiters.is_empty()));
    }

    #[test]
    fn withdrawing_a_request_and_converting() {
        let mut t = LockTable::default();
        acquire(&mut t, (1, 1), false, true);
        assert_eq!(acquire(&mut t, (2, 1), true, true), Acquired::Queued);
        let mut grants = Vec::new();
        t.release("/f", (2, 1), &mut grants);
        assert!(grants.is_empty());
        // The sole shared holder upgrades.
        assert_eq!(acquire(&mut t, (1, 1), true, true), Acquired::Granted(2));
        assert_eq!(acquire(&mut t, (1, 1), true, true), Acquired::Granted(2));
    }
}
