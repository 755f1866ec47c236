//! [`Shared`]: the state the FUSE handlers, the echo thread and the commit tasks share —
//! the replica handle, the host session, the inode table, open files, lock waits — and
//! the operations they all use: resolving inodes, building attributes, proposing writes.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use fuser::{Errno, FileAttr, Notifier};
use quorumfs_ensemble::tree::{FileMeta, FsOp, SessionId, Stat, TxnBody, TxnOutcome, Zxid};
use quorumfs_ensemble::{Error, Handle};
use tracing::{debug, warn};

use crate::attr;
use crate::echo::EchoState;
use crate::error::errno_of;
use crate::files::OpenFiles;
use crate::inodes::{InodeTable, PENDING};
use crate::locks::LockWaits;

/// Longest name the kernel lets through, in bytes.
const NAME_MAX: usize = 255;

/// How recently this node must have confirmed its leader contact
/// ([`Handle::leader_contact`]) for an open that writes or creates to be accepted.
///
/// Why refuse at open (issue #9 item 10): a file's content is committed at close, and bash
/// ignores the close() error of a redirection, so `echo v > f` on a node that cannot commit
/// would exit 0 with nothing stored. Refusing the open makes bash report the failure. The
/// ensemble confirms contact every 100 ms; 1 s leaves room for a loaded host while still
/// failing at once on a node that has lost its quorum. The remaining window (the quorum lost
/// between open and close) is documented in the README with the idioms that are safe in
/// every case.
pub const WRITE_CONTACT: Duration = Duration::from_secs(1);

/// How long an open that writes waits for leader contact to come back before it is refused:
/// a commit's own write timeout, so a failover (about a second) delays a write rather than
/// failing it, and a lost quorum fails it as a commit would have.
pub const WRITE_WAIT: Duration = Duration::from_secs(5);

/// Everything the mount's threads and tasks share.
pub struct Shared {
    node: Handle,
    rt: tokio::runtime::Handle,
    session: AtomicI64,
    timeout_ms: i32,
    /// Marks this mount's proposals whose kernel events the kernel already produced
    /// (the local syscall did), so the echo thread skips them here.
    pub tag: u64,
    /// Where the tree is mounted.
    pub mountpoint: PathBuf,
    /// How long the kernel may cache attributes and names.
    pub ttl: Duration,
    /// Inode numbers.
    pub inodes: Mutex<InodeTable>,
    /// Open files and directories.
    pub files: Mutex<OpenFiles>,
    /// The echo thread's state.
    pub echo: EchoState,
    /// Lock requests waiting for a grant.
    pub locks: LockWaits,
    /// Notified whenever a commit of an open file ends (see `fs::commit_handle`): a commit
    /// of the same handle waits for the one in flight.
    pub commit_done: tokio::sync::Notify,
    notifier: OnceLock<Notifier>,
}

/// Locks a mutex, recovering from poisoning (the data stays consistent: every critical
/// section here is a few map operations).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// New shared state for a mount of `node` at `mountpoint` with host session `session`.
    pub fn new(
        node: Handle,
        rt: tokio::runtime::Handle,
        session: SessionId,
        timeout_ms: i32,
        mountpoint: PathBuf,
        ttl: Duration,
    ) -> Self {
        Shared {
            node,
            rt,
            session: AtomicI64::new(session),
            timeout_ms,
            tag: rand::random::<u64>() | 1,
            mountpoint,
            ttl,
            inodes: Mutex::new(InodeTable::default()),
            files: Mutex::new(OpenFiles::default()),
            echo: EchoState::default(),
            locks: LockWaits::default(),
            commit_done: tokio::sync::Notify::new(),
            notifier: OnceLock::new(),
        }
    }

    /// The replica.
    pub fn node(&self) -> &Handle {
        &self.node
    }

    /// The host session (owner of this host's ephemeral files and locks).
    pub fn session(&self) -> SessionId {
        self.session.load(Ordering::Relaxed)
    }

    /// Runs `f` on the runtime.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.rt.spawn(f);
    }

    /// Records the kernel notifier (available once mounted).
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// The kernel notifier, once mounted.
    pub fn notifier(&self) -> Option<&Notifier> {
        self.notifier.get()
    }

    /// Stops the echo thread.
    pub fn stop_echo(&self) {
        self.echo.stop();
    }

    /// Whether this node can currently commit: it confirmed within [`WRITE_CONTACT`] that a
    /// leader holding a quorum hears it.
    ///
    /// # Errors
    /// EIO when it has not (no leader, or no quorum contact within the bound).
    pub fn can_commit(&self) -> Result<(), Errno> {
        match self.node.leader_contact() {
            Some(age) if age <= WRITE_CONTACT => Ok(()),
            age => {
                debug!(?age, "refusing a write: no recent leader contact");
                Err(Errno::EIO)
            }
        }
    }

    /// Waits up to [`WRITE_WAIT`] for [`Shared::can_commit`] to pass.
    ///
    /// # Errors
    /// EIO when it did not.
    pub async fn await_commit(&self) -> Result<(), Errno> {
        let deadline = tokio::time::Instant::now() + WRITE_WAIT;
        loop {
            match self.can_commit() {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The path of `name` under directory inode `parent`.
    ///
    /// # Errors
    /// ENOENT for an unknown parent, ENAMETOOLONG past 255 bytes, EILSEQ for a name that
    /// is not UTF-8, EINVAL for one ZooKeeper refuses.
    pub fn child_path(&self, parent: u64, name: &OsStr) -> Result<String, Errno> {
        let bytes = name.as_encoded_bytes();
        if bytes.len() > NAME_MAX {
            return Err(Errno::from_i32(libc::ENAMETOOLONG));
        }
        let name = name.to_str().ok_or(Errno::from_i32(libc::EILSEQ))?;
        if name.is_empty() || name.contains('/') {
            return Err(Errno::EINVAL);
        }
        let parent = self.path_of(parent)?;
        let path = if parent == "/" {
            format!("/{name}")
        } else {
            format!("{parent}/{name}")
        };
        quorumfs_ensemble::tree::validate_path(&path, false).map_err(|_| Errno::EINVAL)?;
        Ok(path)
    }

    /// The path inode `ino` stands for.
    pub fn path_of(&self, ino: u64) -> Result<String, Errno> {
        lock(&self.inodes)
            .get(ino)
            .map(|i| i.path.clone())
            .ok_or(Errno::ENOENT)
    }

    /// File metadata and Stat of `path` in the local replica.
    pub fn znode(&self, path: &str) -> Option<(FileMeta, Stat)> {
        self.node.read(|t| t.file_meta(path))
    }

    /// Attributes of `ino`: from the replica, or from its open file before its znode is
    /// committed.
    ///
    /// # Errors
    /// ENOENT when its znode is gone (or was replaced by another of the same name).
    ///
    /// An inode whose name now holds another znode of the same kind (a rename over it, not
    /// yet seen by the kernel's name cache) answers with that znode, as a fresh lookup of
    /// the name would; the echo of the change then refreshes the kernel's cache.
    pub fn attr_of(&self, ino: u64) -> Result<FileAttr, Errno> {
        let (path, czxid, was_dir) = {
            let inodes = lock(&self.inodes);
            let inode = inodes.get(ino).ok_or(Errno::ENOENT)?;
            (inode.path.clone(), inode.czxid, inode.is_dir)
        };
        if czxid == PENDING {
            return lock(&self.files).pending_attr(ino).ok_or(Errno::ENOENT);
        }
        let (meta, stat) = self.znode(&path).ok_or(Errno::ENOENT)?;
        if ino != crate::inodes::ROOT
            && stat.czxid != czxid
            && attr::is_dir(&meta, &stat) != was_dir
        {
            return Err(Errno::ENOENT);
        }
        Ok(attr::file_attr(ino, &meta, &stat))
    }

    /// Looks `path` up for the kernel: its inode (counted as a lookup) and attributes.
    pub fn lookup(&self, path: &str) -> Result<FileAttr, Errno> {
        let (meta, stat) = self.znode(path).ok_or(Errno::ENOENT)?;
        let dir = attr::is_dir(&meta, &stat);
        let ino = lock(&self.inodes).get_or_insert(path, stat.czxid, dir);
        Ok(attr::file_attr(ino, &meta, &stat))
    }

    /// Commits `body` for the host session, tagged as already shown to the kernel when
    /// `shown`; opens a new host session once if the current one expired.
    ///
    /// # Errors
    /// The store's error as an errno (EIO without a quorum within the write timeout).
    pub async fn propose(&self, body: TxnBody, shown: bool) -> Result<(Zxid, TxnOutcome), Errno> {
        let tag = if shown { self.tag } else { 0 };
        for attempt in 0..2 {
            let session = self.session();
            let applied = self
                .node
                .propose_tagged(session, body.clone(), tag)
                .await
                .map_err(|e| {
                    warn!("mount write failed: {e}");
                    errno_of(&e)
                })?;
            let outcome = applied.outcome.ok_or(Errno::EIO)?;
            let expired = matches!(
                &outcome,
                TxnOutcome::Op(Err(Error::SessionExpired { .. }))
                    | TxnOutcome::Fs(Err(Error::SessionExpired { .. }))
            );
            if expired && attempt == 0 {
                self.renew_session(session).await?;
                continue;
            }
            return Ok((applied.zxid, outcome));
        }
        Err(Errno::ESTALE)
    }

    /// Commits a filesystem op; its error as an errno.
    pub async fn propose_fs(
        &self,
        op: FsOp,
        shown: bool,
    ) -> Result<(Zxid, quorumfs_ensemble::tree::FsResult), Errno> {
        match self.propose(TxnBody::Fs(op), shown).await? {
            (zxid, TxnOutcome::Fs(Ok(r))) => Ok((zxid, r)),
            (_, TxnOutcome::Fs(Err(e))) => Err(errno_of(&e)),
            _ => Err(Errno::EIO),
        }
    }

    /// Commits a ZooKeeper op; its error as an errno.
    pub async fn propose_op(
        &self,
        op: quorumfs_ensemble::tree::Op,
        shown: bool,
    ) -> Result<(Zxid, quorumfs_ensemble::tree::OpResult), Errno> {
        match self.propose(TxnBody::Op(op), shown).await? {
            (zxid, TxnOutcome::Op(Ok(r))) => Ok((zxid, r)),
            (_, TxnOutcome::Op(Err(e))) => Err(errno_of(&e)),
            _ => Err(Errno::EIO),
        }
    }

    /// Opens a new host session after `old` expired (this host was cut off for longer
    /// than the session timeout: its ephemeral files and locks are already gone).
    async fn renew_session(&self, old: SessionId) -> Result<(), Errno> {
        if self.session() != old {
            return Ok(());
        }
        let (session, _) = self
            .node
            .create_session(self.timeout_ms)
            .await
            .map_err(|e| errno_of(&e))?;
        if self
            .session
            .compare_exchange(old, session, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            warn!(
                old = format!("{old:#x}"),
                new = format!("{session:#x}"),
                "the mount's session expired; opened a new one"
            );
        }
        Ok(())
    }

    /// ZooKeeper's sync: returns once the local replica holds everything committed before
    /// the call (`sync FILE`, `sync DIR`).
    pub async fn read_barrier(&self) -> Result<(), Errno> {
        self.node.sync().await.map(|_| ()).map_err(|e| errno_of(&e))
    }

    /// Waits until the echo thread has handled every change up to `zxid` (or everything
    /// queued, if less): the kernel's caches on this host then show them.
    pub async fn wait_echoed(&self, zxid: Zxid) {
        let target = zxid.min(self.echo.queued());
        let mut done = self.echo.done();
        if done.wait_for(|d| *d >= target).await.is_err() {
            debug!("echo thread gone");
        }
    }
}

/// Keeps the host session alive while mounted.
pub async fn keep_session(shared: std::sync::Arc<Shared>) {
    let period =
        Duration::from_millis(u64::try_from(shared.timeout_ms / 3).unwrap_or(1000).max(50));
    loop {
        shared.node.touch(shared.session());
        tokio::time::sleep(period).await;
    }
}
