//! Waiting for cluster-wide locks: queued requests wait here for their grant (delivered
//! by the apply listener), or for a signal to the waiting thread, which ends the wait
//! with EINTR. fuser answers the kernel's FUSE_INTERRUPT itself, so signals are noticed
//! by polling `/proc/TID/status` (pending and not blocked); that is what makes
//! `flock -w SECS` time out and a killed waiter go away.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use quorumfs_ensemble::tree::{SessionId, Tree, Zxid};
use tokio::sync::oneshot;

use crate::shared::lock;

/// A lock is named by its path and the kernel's lock owner on this host.
pub type LockKey = (String, u64);

/// How often a waiting thread's signals are checked.
const SIGNAL_POLL: Duration = Duration::from_millis(20);

/// Lock requests waiting for grants, and the locks this host holds.
#[derive(Debug, Default)]
pub struct LockWaits {
    waiting: Mutex<HashMap<LockKey, oneshot::Sender<Zxid>>>,
    held: Mutex<HashSet<LockKey>>,
}

impl LockWaits {
    /// Registers a wait before the request is proposed (the grant may be applied before
    /// the proposal's reply arrives).
    pub fn register(&self, key: LockKey) -> oneshot::Receiver<Zxid> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(key, tx);
        rx
    }

    /// Forgets a wait.
    pub fn unregister(&self, key: &LockKey) {
        lock(&self.waiting).remove(key);
    }

    /// A grant was applied at `zxid` (called by the apply listener).
    pub fn granted(&self, key: &LockKey, zxid: Zxid) {
        if let Some(tx) = lock(&self.waiting).remove(key) {
            let _ = tx.send(zxid);
        }
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

    /// Records a lock this host holds.
    pub fn hold(&self, key: LockKey) {
        lock(&self.held).insert(key);
    }

    /// Whether this host holds or waits for `key`.
    pub fn involves(&self, key: &LockKey) -> bool {
        lock(&self.held).contains(key) || lock(&self.waiting).contains_key(key)
    }

    /// Forgets a held lock; true if it was held.
    pub fn drop_hold(&self, key: &LockKey) -> bool {
        lock(&self.held).remove(key)
    }
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
