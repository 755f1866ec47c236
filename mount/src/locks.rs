//! Cluster-wide locks on this host: queued requests wait here for their grant (delivered
//! by the apply listener), or for a signal to the waiting thread, which ends the wait
//! with EINTR. fuser answers the kernel's FUSE_INTERRUPT itself, so signals are noticed
//! by polling `/proc/TID/status` (pending and not blocked); that is what makes
//! `flock -w SECS` time out and a killed waiter go away.
//!
//! It also owns withdrawals (issue #9 item 7). A lock request whose outcome is unknown (its
//! proposal timed out or lost its leader), a release that could not be committed, an
//! abandoned wait and a grant nobody here waits for all leave a request or a hold in the
//! replicated lock table that nobody alive would release before the host's session ends.
//! [`withdraw`] keeps proposing the release in the background until one is committed and
//! the replica then shows neither a hold nor a queued request of that (session, owner) on
//! the path, or until the session is gone. A new request for the same path and owner waits until the withdrawal is over, so
//! a late release can never undo a newer grant.
//!
//! Locks are named by path in the lock table. A hold remembers the path it was granted for,
//! so its release names that path even if the file was renamed meanwhile; renaming a file
//! that is locked or waited for is refused (EBUSY, see `fs`), so a lock does not silently
//! stay behind at the old name. Remaining window: a request delayed in the network past its
//! withdrawal and granted at once when it finally commits is not noticed (a queued one is:
//! its grant arrives with nobody waiting, which starts a withdrawal).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quorumfs_ensemble::tree::{FsOp, SessionId, Tree, TxnBody, Zxid};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

use crate::shared::{lock, Shared};

/// A lock request is named by its path and the kernel's lock owner on this host.
pub type LockKey = (String, u64);

/// How often a waiting thread's signals are checked.
const SIGNAL_POLL: Duration = Duration::from_millis(20);

/// The first and the longest pause between attempts of a withdrawal.
const WITHDRAW_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Lock requests waiting for grants, the locks this host holds, and withdrawals under way.
#[derive(Debug, Default)]
pub struct LockWaits {
    waiting: Mutex<HashMap<LockKey, oneshot::Sender<Zxid>>>,
    /// Held locks by (inode, lock owner): the path each was granted for.
    held: Mutex<HashMap<(u64, u64), String>>,
    withdrawing: Mutex<HashSet<LockKey>>,
    /// Notified whenever a withdrawal ends.
    withdrawn: Notify,
}

impl LockWaits {
    /// Registers a wait before the request is proposed (the grant may be applied before
    /// the proposal's reply arrives).
    pub fn register(&self, key: LockKey) -> oneshot::Receiver<Zxid> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(key, tx);
        rx
    }

    /// Forgets a wait; true if there was one (its receiver then sees the wait end).
    pub fn unregister(&self, key: &LockKey) -> bool {
        lock(&self.waiting).remove(key).is_some()
    }

    /// A grant was applied at `zxid` (called by the apply listener). Returns false when
    /// nothing here waits for it, holds it or withdraws it: a stray grant to withdraw.
    pub fn granted(&self, key: &LockKey, zxid: Zxid) -> bool {
        if let Some(tx) = lock(&self.waiting).remove(key) {
            return tx.send(zxid).is_ok();
        }
        lock(&self.withdrawing).contains(key)
            || lock(&self.held)
                .iter()
                .any(|((_, owner), path)| *owner == key.1 && *path == key.0)
    }

    /// After the replica was replaced by a snapshot: grants it holds for waiting requests
    /// of `session` are delivered.
    pub fn recheck(&self, tree: &Tree, session: SessionId, zxid: Zxid) {
        let mut waiting = lock(&self.waiting);
        let granted: Vec<LockKey> = waiting
            .keys()
            .filter(|(path, owner)| {
                tree.lock_state(path)
                    .is_some_and(|s| s.holds.iter().any(|h| h.holder == (session, *owner)))
            })
            .cloned()
            .collect();
        for key in granted {
            if let Some(tx) = waiting.remove(&key) {
                let _ = tx.send(zxid);
            }
        }
    }

    /// Records a lock this host holds on inode `ino`, granted for `key`'s path.
    pub fn hold(&self, ino: u64, key: LockKey) {
        lock(&self.held).insert((ino, key.1), key.0);
    }

    /// Whether lock owner `owner` holds a lock on `ino`, or waits for one on `path`.
    pub fn involves(&self, ino: u64, path: Option<&str>, owner: u64) -> bool {
        lock(&self.held).contains_key(&(ino, owner))
            || path.is_some_and(|p| lock(&self.waiting).contains_key(&(p.to_owned(), owner)))
    }

    /// Forgets a held lock; the path it was granted for, if it was held.
    pub fn drop_hold(&self, ino: u64, owner: u64) -> Option<String> {
        lock(&self.held).remove(&(ino, owner))
    }

    /// Resolves once no withdrawal of `key` is under way.
    pub async fn withdrawn(&self, key: &LockKey) {
        loop {
            // Made before the check, so the end of a withdrawal cannot be missed.
            let ended = self.withdrawn.notified();
            if !lock(&self.withdrawing).contains(key) {
                return;
            }
            ended.await;
        }
    }
}

/// Whether `holder` holds or waits for a lock on `path` in `tree`.
fn involved(tree: &Tree, path: &str, holder: (SessionId, u64)) -> bool {
    tree.lock_state(path).is_some_and(|state| {
        state.holds.iter().any(|h| h.holder == holder)
            || state.waiters.iter().any(|(h, _)| *h == holder)
    })
}

/// Withdraws `key`'s hold or request of the host session from the lock table, in the
/// background: proposes the release until the replica shows neither, or the session is
/// gone (which dropped them). A no-op if a withdrawal of `key` is already under way.
pub fn withdraw(s: &Arc<Shared>, key: LockKey) {
    if !lock(&s.locks.withdrawing).insert(key.clone()) {
        return;
    }
    let session = s.session();
    let shared = s.clone();
    s.spawn(async move {
        let s = shared;
        let (path, owner) = key.clone();
        let mut pause = WITHDRAW_BACKOFF.0;
        // A release must be committed before the replica's word counts: a request of
        // unknown outcome may still sit uncommitted in a leader's log, and only a release
        // committed after it (log order) is sure to come after it.
        let mut released = false;
        loop {
            let (alive, still) = s.node().read(|t| {
                (
                    t.session(session).is_some(),
                    involved(t, &path, (session, owner)),
                )
            });
            if !alive || (released && !still) {
                break;
            }
            let release = TxnBody::Fs(FsOp::Unlock {
                path: path.clone(),
                owner,
            });
            match s.node().propose(session, release).await {
                // Checked again above: a request committed after this release shows there.
                Ok(_) => {
                    released = true;
                    continue;
                }
                Err(e) => debug!("withdrawing a lock request: {e}"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WITHDRAW_BACKOFF.1);
        }
        lock(&s.locks.withdrawing).remove(&key);
        s.locks.withdrawn.notify_waiters();
        debug!("lock request withdrawn");
    });
}

/// A grant applied for the host session that nothing here waits for (its request was
/// abandoned): withdraw it.
pub fn stray_grant(s: &Arc<Shared>, key: LockKey) {
    warn!("a lock was granted to an abandoned request; withdrawing it");
    withdraw(s, key);
}

/// Whether thread `tid` has a signal pending that it does not block (or is gone).
fn signal_pending(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return true;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (field("SigPnd:") | field("ShdPnd:")) & !field("SigBlk:") != 0
}

/// Resolves when thread `tid` gets a signal (or exits).
pub async fn interrupted(tid: u32) {
    loop {
        if signal_pending(tid) {
            return;
        }
        tokio::time::sleep(SIGNAL_POLL).await;
    }
}
