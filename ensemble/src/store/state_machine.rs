//! The state machine: the in-memory [`Tree`] that every replica applies committed entries to,
//! its snapshots on sled, and the fan-out of applied changes to listeners.
//!
//! The tree lives in memory; durability comes from the Raft log (fdatasynced before a write
//! is acknowledged) plus snapshots, fsynced before they are reported stored (so before the
//! log they cover can be purged): after a restart openraft re-applies the log past the last
//! snapshot. Readers share the tree through [`Replica`]; the apply path is the only writer.
//!
//! Snapshots never go back: openraft builds a snapshot (here, on a blocking thread) while it
//! may install a newer one from the leader, so a build that captured the tree before an
//! install could finish after it. Every store of a snapshot therefore goes through
//! `store_snapshot`, which holds the last log id of the stored snapshot under a lock and
//! refuses one that is older; a build never touches the applied state. Without this, a
//! restart started from the older snapshot while the log it needed had been purged by the
//! install (issue #9, item 5).
//!
//! A build copies the state under the read lock and serialises the copy after releasing it.
//! Serialising under the lock, as it once did, stalled apply and every local read for the
//! whole serialisation (std's `RwLock` makes new readers wait behind a waiting writer):
//! measured at 1M znodes, the longest read and the longest apply both took 1.41 s
//! during a build (`snapshot_build_stall_at_1m_znodes`, test profile). A plain clone of
//! the tree is no way out: it took 1.71 s there. So the znodes are a persistent map whose
//! clone is O(1) (`tree::data_tree`): the copy then took 7 µs, and during a build (8.0 s
//! including the sled store, on its own thread) the longest read and the longest apply
//! took 60 ms, on a 2-core machine shared with other builds. The other parts of the state
//! (sessions, ephemeral, container and TTL indexes, locks) are plain maps, copied in full;
//! they are small beside the znodes.

use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::durable::DiskSync;
use super::keys;
use crate::tree::{Change, SessionId, Tree, Txn, Zxid};
use crate::types::typ::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use crate::types::{Applied, TypeConfig};

/// What listeners are told after entries are applied, with the tree as it is then.
#[derive(Debug)]
pub enum ApplyEvent<'a> {
    /// One transaction's visible changes, in order.
    Changes {
        /// The zxid they committed at.
        zxid: Zxid,
        /// The session the transaction ran for.
        session: SessionId,
        /// The proposer's marker ([`Proposal::tag`](crate::types::Proposal)).
        tag: u64,
        /// The changes.
        changes: &'a [Change],
    },
    /// The whole tree was replaced by a snapshot from the leader: anything may have changed.
    Reset {
        /// The zxid the snapshot ends at.
        zxid: Zxid,
    },
}

/// A callback run on every apply, while the tree is locked for writing: it must be quick and
/// must not call back into the [`Replica`] (it gets the tree as an argument instead).
pub type ApplyListener = Box<dyn Fn(&Tree, &ApplyEvent<'_>) + Send + Sync>;

/// The applied state: the tree plus the Raft bookkeeping that goes with it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    tree: Tree,
}

/// The replica's state, shared between the apply path and readers.
pub struct Replica {
    state: RwLock<AppliedState>,
    applied_index: watch::Sender<u64>,
    listeners: RwLock<Vec<ApplyListener>>,
}

impl Replica {
    /// Runs `f` with read access to the tree.
    pub fn read<R>(&self, f: impl FnOnce(&Tree) -> R) -> R {
        f(&self.lock_read().tree)
    }

    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        *self.applied_index.borrow()
    }

    /// A receiver that follows the applied index.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    /// Adds a listener for applied changes.
    pub fn add_listener(&self, listener: ApplyListener) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    fn lock_read(&self) -> RwLockReadGuard<'_, AppliedState> {
        // A panic while applying would already have stopped Raft; the data is still the
        // last consistent tree, so reads keep working.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self, tree: &Tree, event: &ApplyEvent<'_>) {
        let listeners = self.listeners.read().unwrap_or_else(|p| p.into_inner());
        for listener in listeners.iter() {
            listener(tree, event);
        }
    }
}

/// A snapshot as stored on sled: its metadata and the bincode of the applied state.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// openraft's state machine over [`Replica`], with snapshots in sled.
#[derive(Clone)]
pub struct StateMachineStore {
    replica: Arc<Replica>,
    db: sled::Db,
    /// fsyncs sled's files: a snapshot must be durable before the log it covers is purged.
    disk: Arc<DiskSync>,
    snapshots: sled::Tree,
    /// The last log id of the snapshot stored in `snapshots`; held while one is stored, so
    /// that concurrent stores (a build and an install) are ordered and the older never
    /// replaces the newer.
    stored: Arc<Mutex<Option<LogId>>>,
}

impl StateMachineStore {
    /// Opens the state machine, starting from the stored snapshot if there is one.
    ///
    /// # Errors
    /// A snapshot that cannot be decoded is reported, never skipped: starting from an empty
    /// tree would silently lose data.
    pub fn open(db: &sled::Db, disk: Arc<DiskSync>) -> Result<Self, String> {
        let snapshots = db
            .open_tree(keys::SNAPSHOT_TREE)
            .map_err(|e| e.to_string())?;
        let mut state = AppliedState::default();
        let mut stored_id = None;
        if let Some(bytes) = snapshots
            .get(keys::CURRENT_SNAPSHOT)
            .map_err(|e| e.to_string())?
        {
            let stored: StoredSnapshot = bincode::deserialize(&bytes)
                .map_err(|e| format!("snapshot record is corrupt: {e}"))?;
            state = bincode::deserialize(&stored.data)
                .map_err(|e| format!("snapshot data is corrupt: {e}"))?;
            stored_id = stored.meta.last_log_id;
        }
        let applied = state.last_applied.map_or(0, |l| l.index);
        let (applied_index, _) = watch::channel(applied);
        let replica = Arc::new(Replica {
            state: RwLock::new(state),
            applied_index,
            listeners: RwLock::new(Vec::new()),
        });
        Ok(StateMachineStore {
            replica,
            db: db.clone(),
            disk,
            snapshots,
            stored: Arc::new(Mutex::new(stored_id)),
        })
    }

    /// The shared replica state.
    pub fn replica(&self) -> Arc<Replica> {
        self.replica.clone()
    }

    /// Stores `stored` as the current snapshot unless the one already stored is newer;
    /// returns whether it was stored.
    fn store_snapshot(&self, stored: &StoredSnapshot) -> Result<bool, StorageError> {
        let mut current = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if stored.meta.last_log_id < *current {
            tracing::debug!(
                snapshot = ?stored.meta.last_log_id,
                stored = ?*current,
                "not storing a snapshot older than the stored one"
            );
            return Ok(false);
        }
        let sig = Some(stored.meta.signature());
        let bytes = bincode::serialize(stored)
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.snapshots
            .insert(keys::CURRENT_SNAPSHOT, bytes)
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.db
            .flush()
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.disk
            .sync()
            .map_err(|e| StorageIOError::write_snapshot(sig, &e))?;
        *current = stored.meta.last_log_id;
        Ok(true)
    }

    /// The applied state as a snapshot (not yet stored). The read lock is held only to copy
    /// the state, which is cheap (the znodes are a persistent map, see `tree::data_tree`);
    /// serialising happens after, so neither apply nor local reads wait for it.
    fn capture(&self) -> Result<StoredSnapshot, StorageError> {
        let state = self.replica.lock_read().clone();
        let data =
            bincode::serialize(&state).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership,
            snapshot_id: format!("{}", state.last_applied.map_or(0, |l| l.index)),
        };
        Ok(StoredSnapshot { meta, data })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let stored = this.capture()?;
            // An older build is still handed back: openraft ignores a snapshot older than
            // the one it has.
            this.store_snapshot(&stored)?;
            Ok::<_, StorageError>(stored)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, &e))??;
        Ok(Snapshot {
            meta: built.meta,
            snapshot: Box::new(Cursor::new(built.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.replica.lock_read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let mut last = None;
        {
            let mut state = self
                .replica
                .state
                .write()
                .unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                let zxid = entry.log_id.index as Zxid;
                state.last_applied = Some(entry.log_id);
                last = Some(entry.log_id.index);
                let outcome = match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m);
                        None
                    }
                    EntryPayload::Normal(p) => {
                        let txn = Txn {
                            zxid,
                            term: entry.log_id.leader_id.term,
                            time_ms: p.time_ms,
                            session: p.session,
                            body: p.body,
                        };
                        let (outcome, changes) = state.tree.apply(&txn);
                        if !changes.is_empty() {
                            self.replica.notify(
                                &state.tree,
                                &ApplyEvent::Changes {
                                    zxid,
                                    session: txn.session,
                                    tag: p.tag,
                                    changes: &changes,
                                },
                            );
                        }
                        Some(outcome)
                    }
                };
                replies.push(Applied { zxid, outcome });
            }
        }
        if let Some(index) = last {
            self.replica.applied_index.send_replace(index);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let sig = Some(meta.signature());
        let new_state: AppliedState = bincode::deserialize(&data)
            .map_err(|e| StorageIOError::read_snapshot(sig.clone(), &e))?;
        self.store_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })?;
        let index = new_state.last_applied.map_or(0, |l| l.index);
        {
            let mut state = self
                .replica
                .state
                .write()
                .unwrap_or_else(|p| p.into_inner());
            *state = new_state;
            self.replica.notify(
                &state.tree,
                &ApplyEvent::Reset {
                    zxid: index as Zxid,
                },
            );
        }
        self.replica.applied_index.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let bytes = self
            .snapshots
            .get(keys::CURRENT_SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let Some(bytes) = bytes else { return Ok(None) };
        let stored: StoredSnapshot =
            bincode::deserialize(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::tree::{Acl, CreateMode, Op, TxnBody};
    use crate::types::Proposal;

    fn open(dir: &std::path::Path) -> (sled::Db, StateMachineStore) {
        let db = sled::Config::new().path(dir).open().expect("open sled");
        let disk = Arc::new(DiskSync::open(dir).expect("open disk sync"));
        let sm = StateMachineStore::open(&db, disk).expect("open state machine");
        (db, sm)
    }

    /// Creates `/n{i}` at log index `i` for every `i` in `indexes`.
    async fn create_at(sm: &mut StateMachineStore, indexes: std::ops::RangeInclusive<u64>) {
        let entries: Vec<Entry> = indexes
            .map(|i| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Normal(Proposal {
                    time_ms: 0,
                    session: 0,
                    tag: 0,
                    body: TxnBody::Op(Op::Create {
                        path: format!("/n{i}"),
                        data: vec![i as u8],
                        acl: Acl::open_unsafe(),
                        mode: CreateMode::Persistent,
                    }),
                }),
            })
            .collect();
        sm.apply(entries).await.expect("apply");
    }

    /// Issue #9, item 5: a build that captured the tree before a newer snapshot was
    /// installed, and stores after it, must leave the newer one stored; a restart then
    /// starts from the newer one.
    #[tokio::test]
    async fn an_older_build_never_replaces_a_newer_installed_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, mut sm) = open(dir.path());
        create_at(&mut sm, 1..=3).await;
        // The build's capture of the tree at index 3...
        let old = sm.capture().expect("capture");

        // ...then the leader's snapshot at index 10 is installed...
        let leader_dir = tempfile::tempdir().expect("temp dir");
        let (_leader_db, mut leader) = open(leader_dir.path());
        create_at(&mut leader, 1..=10).await;
        let newer = leader.capture().expect("capture on the leader");
        sm.install_snapshot(&newer.meta, Box::new(Cursor::new(newer.data.clone())))
            .await
            .expect("install");
        assert_eq!(sm.replica().applied_index(), 10);

        // ...and only then does the build store what it captured.
        assert!(!sm.store_snapshot(&old).expect("store the old build"));
        let current = sm
            .get_current_snapshot()
            .await
            .expect("get snapshot")
            .expect("a snapshot is stored");
        assert_eq!(current.meta.last_log_id.map(|l| l.index), Some(10));
        assert_eq!(
            sm.replica().applied_index(),
            10,
            "the build regressed the state"
        );

        // A restart starts from the newer snapshot.
        drop(sm);
        drop(db);
        let (_db, sm) = open(dir.path());
        assert_eq!(sm.replica().applied_index(), 10);
        assert!(sm.replica().read(|t| t.exists("/n10")));
    }

    /// A newer build does replace an older stored snapshot.
    #[tokio::test]
    async fn a_newer_build_replaces_the_stored_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_db, mut sm) = open(dir.path());
        create_at(&mut sm, 1..=3).await;
        let first = sm.build_snapshot().await.expect("build");
        assert_eq!(first.meta.last_log_id.map(|l| l.index), Some(3));
        create_at(&mut sm, 4..=5).await;
        sm.build_snapshot().await.expect("build");
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id.map(|l| l.index), Some(5));
    }

    /// Issue #9, item 6, measured: the longest a local read and an apply wait while a
    /// snapshot of 1M znodes is built. Run with
    /// `cargo test -p quorumfs-ensemble snapshot_build_stall -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: fills 1M znodes"]
    async fn snapshot_build_stall_at_1m_znodes() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};

        const DIRS: u64 = 1000;
        const PER_DIR: u64 = 1000;
        let dir = tempfile::tempdir().expect("temp dir");
        let (_db, mut sm) = open(dir.path());
        let entry = |index: u64, path: String| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal {
                time_ms: 0,
                session: 0,
                tag: 0,
                body: TxnBody::Op(Op::Create {
                    path,
                    data: b"0123456789abcdef".to_vec(),
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Persistent,
                }),
            }),
        };
        let t = Instant::now();
        let mut index = 0;
        for d in 0..DIRS {
            let mut batch = Vec::new();
            index += 1;
            batch.push(entry(index, format!("/d{d}")));
            for n in 0..PER_DIR {
                index += 1;
                batch.push(entry(index, format!("/d{d}/n{n}")));
            }
            sm.apply(batch).await.expect("apply");
        }
        let znodes = sm.replica().read(|t| t.znode_count());
        println!("filled {znodes} znodes in {:?}", t.elapsed());

        let t = Instant::now();
        let copy = sm.replica().read(|t| t.clone());
        println!("a clone of the tree takes {:?}", t.elapsed());
        drop(copy);

        let replica = sm.replica();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (replica, stop) = (replica.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut worst = Duration::ZERO;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    assert!(replica.read(|t| t.exists("/d500/n500")));
                    worst = worst.max(t.elapsed());
                    reads += 1;
                }
                (worst, reads)
            })
        };
        let writer = {
            let (mut sm, stop) = (sm.clone(), stop.clone());
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                let mut index = index;
                while !stop.load(Ordering::Relaxed) {
                    index += 1;
                    let e = entry(index, format!("/w{index}"));
                    let t = Instant::now();
                    sm.apply(vec![e]).await.expect("apply");
                    worst = worst.max(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                worst
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let snap = sm.build_snapshot().await.expect("build");
        let build = t.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let (read_worst, reads) = reader.join().expect("reader");
        let apply_worst = writer.await.expect("writer");
        println!(
            "snapshot of {} bytes built in {build:?}; meanwhile {reads} reads, the longest \
             {read_worst:?}; the longest apply {apply_worst:?}",
            snap.snapshot.get_ref().len()
        );
    }
}
