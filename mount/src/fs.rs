//! [`QuorumFs`]: the answers to the kernel's FUSE requests.
//!
//! Reads are answered on the FUSE thread from the local replica. Anything that commits is
//! moved to a tokio task and answered from there, so a slow commit never holds a FUSE
//! thread. Requests from the echo thread (see `echo`) are answered as if done, without
//! proposing anything. Every file is opened with direct I/O: each open handle reads the
//! content it snapshotted at open, so readers never mix two versions, and the page cache
//! never holds stale data.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use quorumfs_ensemble::tree::{
    CreateMode, FileMeta, FsOp, FsResult, Op, OpResult, Zxid, MAX_DATA_LEN,
};
use tracing::{debug, warn};

use crate::attr::{self, S_IFDIR, S_IFMT, S_IFREG};
use crate::echo::Echo;
use crate::files::{OpenFile, PendingCreate};
use crate::inodes::PENDING;
use crate::locks::{interrupted, withdraw, LockKey};
use crate::shared::{lock, Shared};

/// The file handle echo opens get.
const ECHO_FH: u64 = 0;

/// How echo opens are answered. No FLUSH at their close: the kernel waits for a FLUSH
/// reply without letting SIGKILL interrupt it, and a daemon blocked on its own mount could
/// then never die.
const ECHO_OPEN: FopenFlags = FopenFlags::FOPEN_DIRECT_IO.union(FopenFlags::FOPEN_NOFLUSH);

/// How long a lock request that may not wait waits for an earlier request's withdrawal (as
/// long as a write waits for a quorum).
const WITHDRAWAL_WAIT: Duration = Duration::from_secs(5);

/// The largest lock end the kernel sends (OFFSET_MAX): a whole-file lock.
const WHOLE_FILE_END: u64 = i64::MAX as u64;

/// The FUSE filesystem over a replica.
pub struct QuorumFs {
    s: Arc<Shared>,
}

impl QuorumFs {
    /// The filesystem over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        QuorumFs { s: shared }
    }

    /// `open` once this node is known able to commit (or the open only reads).
    fn open_checked(&self, ino: u64, flags: OpenFlags, reply: ReplyOpen) {
        let pending = lock(&self.s.inodes).get(ino).map(|i| i.czxid) == Some(PENDING);
        if !pending {
            return match open_handle(&self.s, ino, flags) {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                Err(e) => reply.error(e),
            };
        }
        // A new file another descriptor has not committed yet (`touch f; echo x > f`):
        // commit it first, then open what it became.
        let s = self.s.clone();
        self.s.spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while lock(&s.inodes).get(ino).map(|i| i.czxid) == Some(PENDING) {
                let handle = lock(&s.files).pending_handle(ino);
                if let Some(fh) = handle {
                    if let Err(e) = commit_handle(&s, fh, When::Always).await {
                        return reply.error(e);
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    return reply.error(Errno::ENOENT);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            match open_handle(&s, ino, flags) {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                Err(e) => reply.error(e),
            }
        });
    }

    /// `create` once this node is known able to commit.
    fn create_checked(
        &self,
        parent: u64,
        path: String,
        meta: FileMeta,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (ephemeral, sequential) = match self.parent_modes(parent) {
            Ok(m) => m,
            Err(e) => return reply.error(e),
        };
        let cmode = create_mode(ephemeral, sequential);
        let ttl = self.entry_ttl(sequential);
        if !ephemeral {
            if !sequential && self.s.znode(&path).is_some() && flags & libc::O_EXCL != 0 {
                return reply.error(Errno::EEXIST);
            }
            // A new persistent file appears everywhere with its content, at its first
            // commit (close or fsync); until then it exists only in this handle.
            let ino = lock(&self.s.inodes).get_or_insert(&path, PENDING, false);
            let fh = lock(&self.s.files).insert(OpenFile {
                ino,
                writable: true,
                append: flags & libc::O_APPEND != 0,
                data: Vec::new(),
                dirty: false,
                written: false,
                pending: Some(PendingCreate {
                    path,
                    mode: cmode,
                    meta,
                }),
                ephemeral: false,
                created_path: None,
                committing: false,
                failed: false,
            });
            let a = lock(&self.s.files)
                .pending_attr(ino)
                .unwrap_or_else(|| attr::file_attr(ino, &meta, &Default::default()));
            return reply.created(
                &ttl,
                &a,
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            );
        }
        // An ephemeral file exists from its open: `set -C; exec 3> f` is an election.
        let s = self.s.clone();
        self.s.spawn(async move {
            let op = FsOp::Create {
                path,
                data: Vec::new(),
                mode: cmode,
                meta,
            };
            match s.propose_fs(op, !sequential).await {
                Ok((_, FsResult::Created { path, stat })) => {
                    let ino = lock(&s.inodes).get_or_insert(&path, stat.czxid, false);
                    let fh = lock(&s.files).insert(OpenFile {
                        ino,
                        writable: true,
                        append: flags & libc::O_APPEND != 0,
                        data: Vec::new(),
                        dirty: false,
                        written: false,
                        pending: None,
                        ephemeral: true,
                        created_path: Some(path),
                        committing: false,
                        failed: false,
                    });
                    let a = attr::file_attr(ino, &meta, &stat);
                    reply.created(
                        &ttl,
                        &a,
                        Generation(0),
                        FileHandle(fh),
                        FopenFlags::FOPEN_DIRECT_IO,
                    );
                }
                Ok(_) => reply.error(Errno::EIO),
                Err(e) => reply.error(e),
            }
        });
    }

    fn ttl(&self) -> Duration {
        self.s.ttl
    }

    /// How long the kernel may keep a new entry's name. A sequential name's entry must not
    /// be reused: the next create under the same prefix gets another name.
    fn entry_ttl(&self, sequential: bool) -> Duration {
        if sequential {
            Duration::ZERO
        } else {
            self.ttl()
        }
    }

    /// The echo thread's lookup of `path`, answered as the replayed change needs.
    fn echo_lookup(&self, path: &str) -> Option<Result<FileAttr, Errno>> {
        match self.s.echo.current()? {
            Echo::Create { path: p, .. } if p == path => Some(Err(Errno::ENOENT)),
            Echo::Rename { to, .. } if to == path => Some(Err(Errno::ENOENT)),
            Echo::Delete { path: p, is_dir } if p == path => {
                let mode = if is_dir {
                    S_IFDIR | 0o755
                } else {
                    S_IFREG | 0o644
                };
                let meta = FileMeta {
                    mode,
                    ..FileMeta::default()
                };
                let mut inodes = lock(&self.s.inodes);
                let ino = inodes
                    .lookup_existing(path)
                    .unwrap_or_else(|| inodes.get_or_insert(path, -1, is_dir));
                Some(Ok(attr::file_attr(ino, &meta, &Default::default())))
            }
            Echo::Rename { from, to } if from == path => {
                let Some((meta, stat)) = self.s.znode(&to) else {
                    return Some(Err(Errno::ENOENT));
                };
                let dir = attr::is_dir(&meta, &stat);
                let mut inodes = lock(&self.s.inodes);
                let ino = inodes
                    .lookup_existing(path)
                    .unwrap_or_else(|| inodes.get_or_insert(path, stat.czxid, dir));
                Some(Ok(attr::file_attr(ino, &meta, &stat)))
            }
            _ => None,
        }
    }

    /// The parent's metadata: whether it makes ephemerals and sequentials.
    fn parent_modes(&self, parent: u64) -> Result<(bool, bool), Errno> {
        let path = self.s.path_of(parent)?;
        let (meta, _) = self.s.znode(&path).ok_or(Errno::ENOENT)?;
        Ok((
            attr::makes_ephemerals(&meta),
            attr::makes_sequentials(&meta),
        ))
    }

    /// Answers a create or mkdir echo with the replayed znode's inode.
    fn echo_created(&self, path: &str) -> Option<FileAttr> {
        match self.s.echo.current()? {
            Echo::Create {
                path: p,
                meta,
                stat,
            } if p == path => {
                let dir = attr::is_dir(&meta, &stat);
                let ino = lock(&self.s.inodes).get_or_insert(path, stat.czxid, dir);
                Some(attr::file_attr(ino, &meta, &stat))
            }
            _ => None,
        }
    }
}

/// The file metadata for a new file or directory made by `req`.
fn new_meta(req: &Request, kind: u32, mode: u32, umask: u32) -> FileMeta {
    FileMeta {
        mode: kind | (mode & !umask & 0o7777),
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn create_mode(ephemeral: bool, sequential: bool) -> CreateMode {
    match (ephemeral, sequential) {
        (true, true) => CreateMode::EphemeralSequential,
        (true, false) => CreateMode::Ephemeral,
        (false, true) => CreateMode::PersistentSequential,
        (false, false) => CreateMode::Persistent,
    }
}

/// Commits an open file's content: creates its znode if that is still pending, else
/// replaces its data. Returns the commit's zxid.
async fn commit(
    s: &Shared,
    ino: u64,
    data: Vec<u8>,
    pending: Option<PendingCreate>,
) -> Result<Zxid, Errno> {
    let Some(p) = pending else {
        let path = s.path_of(ino)?;
        let (zxid, _) = s
            .propose_op(
                Op::SetData {
                    path,
                    data,
                    version: -1,
                },
                true,
            )
            .await?;
        return Ok(zxid);
    };
    let sequential = p.mode.is_sequential();
    let created = s
        .propose_fs(
            FsOp::Create {
                path: p.path.clone(),
                data: data.clone(),
                mode: p.mode,
                meta: p.meta,
            },
            // A sequential name is new to the kernel here too: let the echo show it.
            !sequential,
        )
        .await;
    match created {
        Ok((zxid, FsResult::Created { path, stat })) => {
            lock(&s.inodes).assign(ino, &path, stat.czxid);
            let mut files = lock(&s.files);
            // Every handle of this inode now sees the real name.
            for fh in files.handles_of(ino) {
                if let Some(f) = files.get(fh) {
                    f.pending = None;
                    f.created_path = Some(path.clone());
                }
            }
            Ok(zxid)
        }
        Ok(_) => Err(Errno::EIO),
        // Someone created it meanwhile: replace its content, as open(O_TRUNC) would have.
        Err(e) if e.code() == libc::EEXIST && p.mode == CreateMode::Persistent => {
            let (zxid, result) = s
                .propose_op(
                    Op::SetData {
                        path: p.path.clone(),
                        data,
                        version: -1,
                    },
                    true,
                )
                .await?;
            if let OpResult::DataSet { stat } = result {
                lock(&s.inodes).assign(ino, &p.path, stat.czxid);
            }
            Ok(zxid)
        }
        Err(e) => Err(e),
    }
}

/// When a handle's content is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// At close (flush): only if write() was called since the last commit.
    Written,
    /// At fsync or at a write of an ephemeral file's creator: anything unsaved, and a
    /// pending create.
    Always,
}

/// Commits the open file `fh` if it has unsaved content; returns the zxid to wait for
/// (`None`: nothing was due).
///
/// One commit per handle at a time. When one is in flight, this waits for it and then
/// commits whatever is newer than the copy it took (issue #9 item 8: returning at once let
/// fsync acknowledge writes made after that copy, which nothing then committed). If the
/// one in flight failed, its content is due again and this commits it.
async fn commit_handle(s: &Shared, fh: u64, when: When) -> Result<Option<Zxid>, Errno> {
    let (ino, data, pending, saved) = loop {
        let in_flight = {
            let mut files = lock(&s.files);
            let Some(f) = files.get(fh) else {
                return Ok(None);
            };
            if f.failed {
                return Err(Errno::from_i32(libc::EFBIG));
            }
            if f.committing {
                // Made under the files lock, so the end of that commit (which takes the
                // lock to clear `committing`, then notifies) cannot be missed.
                s.commit_done.notified()
            } else {
                let due = match when {
                    When::Written => f.written,
                    When::Always => f.dirty || f.pending.is_some(),
                };
                if !due {
                    return Ok(None);
                }
                let saved = (f.dirty, f.written);
                f.dirty = false;
                f.written = false;
                f.committing = true;
                break (f.ino, f.data.clone(), f.pending.clone(), saved);
            }
        };
        in_flight.await;
    };
    let result = commit(s, ino, data, pending).await;
    if let Some(f) = lock(&s.files).get(fh) {
        f.committing = false;
        if result.is_err() {
            f.dirty |= saved.0;
            f.written |= saved.1;
        }
    }
    s.commit_done.notify_waiters();
    result.map(Some)
}

/// The inode number a listing shows for a child the kernel has not looked up: FNV-1a of
/// its czxid and name, with the top bit set (the inode table counts up from 2).
fn listing_ino(czxid: Zxid, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in czxid.to_le_bytes().iter().chain(name.as_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h | (1 << 63)
}

/// Opens committed inode `ino`: a handle with its content as of now (none when opened
/// with O_TRUNC for writing).
fn open_handle(s: &Shared, ino: u64, flags: OpenFlags) -> Result<u64, Errno> {
    let path = s.path_of(ino)?;
    let writable = flags.acc_mode() != OpenAccMode::O_RDONLY;
    let truncate = writable && flags.0 & libc::O_TRUNC != 0;
    // A stale inode (its name was just renamed over, and the kernel's cached name still
    // leads here) opens what the name holds now, as a fresh lookup would.
    let data = s
        .node()
        .read(|t| match t.get(&path) {
            Ok(_) if truncate => Some(Vec::new()),
            Ok((data, _)) => Some(data.to_vec()),
            Err(_) => None,
        })
        .ok_or(Errno::ENOENT)?;
    Ok(lock(&s.files).insert(OpenFile {
        ino,
        writable,
        append: writable && flags.0 & libc::O_APPEND != 0,
        data,
        dirty: truncate,
        written: false,
        pending: None,
        ephemeral: false,
        created_path: None,
        committing: false,
        failed: false,
    }))
}

/// Releases what lock owner `owner` holds on `ino`, and stops its wait for a lock on `path`
/// (the waiting request withdraws itself). A release that cannot be committed now is
/// withdrawn in the background (issue #9 item 7), so it is never left to the session's end.
async fn unlock_if_held(s: &Arc<Shared>, ino: u64, path: Option<String>, owner: u64) {
    if let Some(path) = path {
        s.locks.unregister(&(path, owner));
    }
    if let Some(path) = s.locks.drop_hold(ino, owner) {
        let op = FsOp::Unlock {
            path: path.clone(),
            owner,
        };
        if let Err(e) = s.propose_fs(op, true).await {
            warn!("releasing a lock failed ({e:?}); withdrawing it in the background");
            withdraw(s, (path, owner));
        }
    }
}

/// Whether `path` is locked or waited for by anyone, as far as the local replica knows.
fn is_locked(s: &Shared, path: &str) -> bool {
    s.node().read(|t| {
        t.lock_state(path)
            .is_some_and(|l| !l.holds.is_empty() || !l.waiters.is_empty())
    })
}

impl Filesystem for QuorumFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for flag in [
            InitFlags::FUSE_POSIX_LOCKS,
            InitFlags::FUSE_FLOCK_LOCKS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            // open(O_TRUNC) arrives as a flag of the open, not as a separate truncate
            // that would have to be committed on its own (an empty file, visible).
            InitFlags::FUSE_ATOMIC_O_TRUNC,
        ] {
            if config.add_capabilities(flag).is_err() {
                warn!("the kernel lacks {flag:?}");
            }
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = match self.s.child_path(parent.0, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if self.s.echo.is_echo(req.pid()) {
            if let Some(answer) = self.echo_lookup(&path) {
                return match answer {
                    Ok(a) => reply.entry(&Duration::ZERO, &a, Generation(0)),
                    Err(e) => reply.error(e),
                };
            }
        }
        match self.s.lookup(&path) {
            Ok(a) => reply.entry(&self.ttl(), &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.s.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.s.attr_of(ino.0) {
            Ok(a) => reply.attr(&self.ttl(), &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = ino.0;
        let echo = self.s.echo.is_echo(req.pid());
        if echo || (size.is_none() && mode.is_none() && uid.is_none() && gid.is_none()) {
            // Times alone (touch) and echoes change nothing stored.
            return match self.s.attr_of(ino) {
                Ok(a) => reply.attr(&self.ttl(), &a),
                Err(e) => reply.error(e),
            };
        }
        let s = self.s.clone();
        let ttl = self.ttl();
        self.s.spawn(async move {
            let result = async {
                if let Some(size) = size {
                    truncate(&s, ino, fh.map(|f| f.0), size).await?;
                }
                if mode.is_some() || uid.is_some() || gid.is_some() {
                    chmod(&s, ino, mode, uid, gid).await?;
                }
                s.attr_of(ino)
            }
            .await;
            match result {
                Ok(a) => reply.attr(&ttl, &a),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & S_IFMT != S_IFREG {
            // Devices, FIFOs and sockets have no znode equivalent.
            return reply.error(Errno::EPERM);
        }
        self.make(
            req,
            parent,
            name,
            new_meta(req, S_IFREG, mode, umask),
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(
            req,
            parent,
            name,
            new_meta(req, S_IFDIR, mode, umask),
            reply,
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (from, to) = match (
            self.s.child_path(parent.0, name),
            self.s.child_path(newparent.0, newname),
        ) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        if self.s.echo.is_echo(req.pid()) {
            return reply.ok();
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(Errno::EINVAL);
        }
        if is_locked(&self.s, &from) {
            // Locks are named by path: a locked file that moved would leave its lock at the
            // old name (issue #9 item 7). A lock on the target name stays with the name.
            return reply.error(Errno::EBUSY);
        }
        // RENAME_NOREPLACE (`mv -n`) is decided in the log, so two hosts cannot both win.
        let replace = !flags.contains(RenameFlags::RENAME_NOREPLACE);
        let s = self.s.clone();
        self.s.spawn(async move {
            match s
                .propose_fs(
                    FsOp::Rename {
                        from: from.clone(),
                        to: to.clone(),
                        replace,
                    },
                    true,
                )
                .await
            {
                Ok(_) => {
                    lock(&s.inodes).rename(&from, &to);
                    reply.ok();
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.s.echo.is_echo(req.pid()) {
            return reply.opened(FileHandle(ECHO_FH), ECHO_OPEN);
        }
        let ino = ino.0;
        if flags.acc_mode() != OpenAccMode::O_RDONLY && self.s.can_commit().is_err() {
            // What is written is committed at close, whose error bash ignores: refuse at
            // open if this node cannot commit (issue #9 item 10), after waiting out a
            // failover on a task (never on the FUSE thread).
            let fs = QuorumFs { s: self.s.clone() };
            return self.s.spawn(async move {
                match fs.s.await_commit().await {
                    Ok(()) => fs.open_checked(ino, flags, reply),
                    Err(e) => reply.error(e),
                }
            });
        }
        self.open_checked(ino, flags, reply)
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let path = match self.s.child_path(parent.0, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if self.s.echo.is_echo(req.pid()) {
            return match self.echo_created(&path) {
                Some(a) => reply.created(
                    &Duration::ZERO,
                    &a,
                    Generation(0),
                    FileHandle(ECHO_FH),
                    ECHO_OPEN,
                ),
                None => reply.error(Errno::ENOENT),
            };
        }
        if mode & S_IFMT != 0 && mode & S_IFMT != S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let meta = new_meta(req, S_IFREG, mode, umask);
        let parent = parent.0;
        if self.s.can_commit().is_err() {
            // A new file is committed at close, whose error bash ignores: refuse now if this
            // node cannot commit (issue #9 item 10), after waiting out a failover on a task.
            let fs = QuorumFs { s: self.s.clone() };
            return self.s.spawn(async move {
                match fs.s.await_commit().await {
                    Ok(()) => fs.create_checked(parent, path, meta, flags, reply),
                    Err(e) => reply.error(e),
                }
            });
        }
        self.create_checked(parent, path, meta, flags, reply)
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut files = lock(&self.s.files);
        let Some(f) = files.get(fh.0) else {
            return reply.data(&[]);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(f.data.len());
        let end = start.saturating_add(size as usize).min(f.data.len());
        reply.data(&f.data[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let len = data.len();
        let ephemeral = {
            let mut files = lock(&self.s.files);
            let Some(f) = files.get(fh.0) else {
                // An echo's handle: nothing to store.
                return reply.written(u32::try_from(len).unwrap_or(u32::MAX));
            };
            let start = if f.append {
                f.data.len()
            } else {
                usize::try_from(offset).unwrap_or(usize::MAX)
            };
            let Some(end) = start.checked_add(len).filter(|&e| e <= MAX_DATA_LEN) else {
                // Nothing partial: what was written through this handle is dropped.
                f.failed = true;
                f.pending = None;
                f.dirty = false;
                f.written = false;
                return reply.error(Errno::from_i32(libc::EFBIG));
            };
            if f.data.len() < end {
                f.data.resize(end, 0);
            }
            f.data[start..end].copy_from_slice(data);
            f.dirty = true;
            f.written = true;
            f.ephemeral
        };
        if !ephemeral {
            return reply.written(u32::try_from(len).unwrap_or(u32::MAX));
        }
        // The creating handle of an ephemeral file commits every write.
        let s = self.s.clone();
        self.s.spawn(async move {
            match commit_handle(&s, fh.0, When::Always).await {
                Ok(_) => reply.written(u32::try_from(len).unwrap_or(u32::MAX)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        if fh.0 == ECHO_FH {
            return reply.ok();
        }
        let ino = ino.0;
        let path = self.s.path_of(ino).ok();
        let locked = self.s.locks.involves(ino, path.as_deref(), lock_owner.0);
        if !locked && lock(&self.s.files).idle(fh.0, false) {
            // Most closes: nothing to commit, no lock to drop.
            return reply.ok();
        }
        let s = self.s.clone();
        self.s.spawn(async move {
            // close() drops the closing process's POSIX locks on the file.
            if locked {
                unlock_if_held(&s, ino, path, lock_owner.0).await;
            }
            match commit_handle(&s, fh.0, When::Written).await {
                Ok(Some(zxid)) => {
                    s.wait_echoed(zxid).await;
                    reply.ok();
                }
                Ok(None) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
        if fh.0 == ECHO_FH {
            return;
        }
        let ino = ino.0;
        let path = self.s.path_of(ino).ok();
        let locked =
            lock_owner.is_some_and(|owner| self.s.locks.involves(ino, path.as_deref(), owner.0));
        {
            let mut files = lock(&self.s.files);
            if !locked && files.idle(fh.0, true) {
                files.remove(fh.0);
                return;
            }
        }
        let s = self.s.clone();
        self.s.spawn(async move {
            // The last close of a descriptor drops its flock locks.
            if let (true, Some(owner)) = (locked, lock_owner) {
                unlock_if_held(&s, ino, path, owner.0).await;
            }
            // Whatever is unsaved (a truncation, an untouched new file) is committed now;
            // the handle stays registered until then, so an open of a new file waits.
            if let Err(e) = commit_handle(&s, fh.0, When::Always).await {
                warn!("commit at the last close failed: {e:?}");
            }
            let Some(file) = lock(&s.files).remove(fh.0) else {
                return;
            };
            if let (true, Some(path)) = (file.ephemeral, file.created_path) {
                // Not shown by the kernel: the echo shows the delete here too.
                let delete = Op::Delete { path, version: -1 };
                if let Err(e) = s.propose_op(delete, false).await {
                    debug!("deleting an ephemeral file at its last close: {e:?}");
                }
            }
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The kernel holds the file's lock during fsync: waiting here for the echo thread,
        // which may need that lock to replay a change to this file, would deadlock. Reads
        // come from the replica, which is up to date once this returns.
        let s = self.s.clone();
        self.s.spawn(async move {
            let result = match commit_handle(&s, fh.0, When::Always).await {
                Ok(Some(_)) => Ok(()),
                // Nothing to commit: a linearizable read barrier (`sync FILE`).
                Ok(None) => s.read_barrier().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // `sync DIR`: the same barrier as `sync FILE` (and, as there, without waiting for
        // the echo thread: the kernel holds the directory's lock).
        let s = self.s.clone();
        self.s.spawn(async move {
            match s.read_barrier().await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.s.path_of(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let Some(children) = self.s.node().read(|t| {
            let names = t.children(&path).ok()?;
            Some(
                names
                    .into_iter()
                    .filter_map(|name| {
                        let child = if path == "/" {
                            format!("/{name}")
                        } else {
                            format!("{path}/{name}")
                        };
                        let (meta, stat) = t.file_meta(&child)?;
                        Some((child, name, attr::is_dir(&meta, &stat), stat.czxid))
                    })
                    .collect::<Vec<_>>(),
            )
        }) else {
            return reply.error(Errno::ENOENT);
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".to_owned()),
            (ino.0, FileType::Directory, "..".to_owned()),
        ];
        {
            // Listing does not register inodes (the kernel holds none for a listing): a
            // child not looked up yet shows a number made from its czxid and name, outside
            // the table's range, so listing a huge directory costs no memory here.
            let inodes = lock(&self.s.inodes);
            for (child, name, dir, czxid) in children {
                let child_ino = inodes
                    .ino_of(&child)
                    .unwrap_or_else(|| listing_ino(czxid, &name));
                let kind = if dir {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                entries.push((child_ino, kind, name));
            }
        }
        let fh = lock(&self.s.files).insert_dir(entries);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let files = lock(&self.s.files);
        let Some(entries) = files.dir(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.s.files).remove_dir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.s.node().read(|t| t.znode_count()) as u64;
        reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match name.to_str() {
            Some("user.zk.data") => {}
            Some(n) if n.starts_with("user.zk.") => return reply.error(Errno::EPERM),
            _ => return reply.error(Errno::from_i32(libc::ENOTSUP)),
        }
        if value.len() > MAX_DATA_LEN {
            return reply.error(Errno::from_i32(libc::EFBIG));
        }
        let path = match self.s.path_of(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let s = self.s.clone();
        let data = value.to_vec();
        self.s.spawn(async move {
            let op = Op::SetData {
                path,
                data,
                version: -1,
            };
            match s.propose_op(op, false).await {
                Ok(_) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let pending = lock(&self.s.files).pending_handle(ino.0);
        if let (Some(fh), Some("user.zk.name")) = (pending, name.to_str()) {
            // The real name of a sequential file is known once it is created: create it
            // now, with what was written so far.
            let s = self.s.clone();
            let name = name.to_owned();
            return self.s.spawn(async move {
                if let Err(e) = commit_handle(&s, fh, When::Always).await {
                    return reply.error(e);
                }
                match (QuorumFs { s: s.clone() }).xattr(ino.0, &name) {
                    Ok(v) => reply_xattr(reply, &v, size),
                    Err(e) => reply.error(e),
                }
            });
        }
        let value = match self.xattr(ino.0, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        reply_xattr(reply, &value, size);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if self.s.attr_of(ino.0).is_err() {
            return reply.error(Errno::ENOENT);
        }
        let mut names = Vec::new();
        for n in attr::STAT_XATTRS
            .iter()
            .chain(&["user.zk.name", "user.zk.data"])
        {
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        reply_xattr(reply, &names, size);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if name.to_str().is_some_and(|n| n.starts_with("user.zk.")) {
            reply.error(Errno::EPERM);
        } else {
            reply.error(Errno::from_i32(libc::ENODATA));
        }
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        let path = match self.s.path_of(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let me = (self.s.session(), lock_owner.0);
        let exclusive = typ == libc::F_WRLCK;
        let conflict = self.s.node().read(|t| {
            t.lock_state(&path).and_then(|state| {
                state
                    .holds
                    .iter()
                    .find(|h| h.holder != me && (exclusive || h.exclusive))
                    .map(|h| h.exclusive)
            })
        });
        match conflict {
            Some(ex) => {
                let typ = if ex { libc::F_WRLCK } else { libc::F_RDLCK };
                reply.locked(0, WHOLE_FILE_END, typ, 0);
            }
            None => reply.locked(start, end, libc::F_UNLCK, 0),
        }
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let path = match self.s.path_of(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let key: LockKey = (path.clone(), lock_owner.0);
        let s = self.s.clone();
        let ino = ino.0;
        if typ == libc::F_UNLCK {
            return self.s.spawn(async move {
                unlock_if_held(&s, ino, Some(path), lock_owner.0).await;
                reply.ok();
            });
        }
        if start != 0 || end < WHOLE_FILE_END {
            // Only whole-file locks are cluster-wide.
            return reply.error(Errno::from_i32(libc::ENOLCK));
        }
        let exclusive = typ == libc::F_WRLCK;
        let tid = req.pid();
        self.s.spawn(async move {
            // A withdrawal of an earlier request of this owner ends first: it must not
            // release what this one gets. Without a quorum it may take long: a waiting
            // request waits (until a signal), one that may not wait fails as a write would.
            tokio::select! {
                () = s.locks.withdrawn(&key) => {}
                () = interrupted(tid) => return reply.error(Errno::EINTR),
                () = tokio::time::sleep(WITHDRAWAL_WAIT), if !sleep => {
                    return reply.error(Errno::EIO);
                }
            }
            let grant = sleep.then(|| s.locks.register(key.clone()));
            let op = FsOp::Lock {
                path,
                owner: lock_owner.0,
                exclusive,
                wait: sleep,
            };
            let zxid = match s.propose_fs(op, true).await {
                Ok((zxid, FsResult::Locked { .. })) => {
                    s.locks.unregister(&key);
                    zxid
                }
                Ok((_, FsResult::Queued)) => {
                    let Some(grant) = grant else {
                        withdraw(&s, key);
                        return reply.error(Errno::EIO);
                    };
                    tokio::select! {
                        granted = grant => match granted {
                            Ok(zxid) => zxid,
                            // The wait was ended (a close or unlock by this owner meanwhile).
                            Err(_) => {
                                withdraw(&s, key);
                                return reply.error(Errno::EIO);
                            }
                        },
                        () = interrupted(tid) => {
                            // Withdraw the request (or release a grant that raced in).
                            s.locks.unregister(&key);
                            withdraw(&s, key);
                            return reply.error(Errno::EINTR);
                        }
                    }
                }
                Ok(_) => {
                    s.locks.unregister(&key);
                    return reply.error(Errno::EAGAIN);
                }
                Err(e) => {
                    // The outcome may be unknown (a timeout, a lost leader): the request
                    // may be committed later, granted to nobody. Withdraw it (issue #9
                    // item 7); a conversion's earlier hold goes with it, as flock(2)
                    // allows for a failed conversion.
                    s.locks.unregister(&key);
                    s.locks.drop_hold(ino, lock_owner.0);
                    withdraw(&s, key);
                    return reply.error(e);
                }
            };
            s.locks.hold(ino, key);
            // Everything committed before the grant is visible here before it returns.
            s.wait_echoed(zxid).await;
            reply.ok();
        });
    }
}

impl QuorumFs {
    /// mkdir and mknod: create a znode with `meta` now.
    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        meta: FileMeta,
        reply: ReplyEntry,
    ) {
        let path = match self.s.child_path(parent.0, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if self.s.echo.is_echo(req.pid()) {
            return match self.echo_created(&path) {
                Some(a) => reply.entry(&Duration::ZERO, &a, Generation(0)),
                None => reply.error(Errno::ENOENT),
            };
        }
        let sequential = match self.parent_modes(parent.0) {
            Ok((_, seq)) => seq,
            Err(e) => return reply.error(e),
        };
        let mode = create_mode(false, sequential);
        let ttl = self.entry_ttl(sequential);
        let s = self.s.clone();
        self.s.spawn(async move {
            let op = FsOp::Create {
                path,
                data: Vec::new(),
                mode,
                meta,
            };
            match s.propose_fs(op, !sequential).await {
                Ok((_, FsResult::Created { path, stat })) => {
                    let dir = attr::is_dir(&meta, &stat);
                    let ino = lock(&s.inodes).get_or_insert(&path, stat.czxid, dir);
                    reply.entry(&ttl, &attr::file_attr(ino, &meta, &stat), Generation(0));
                }
                Ok(_) => reply.error(Errno::EIO),
                Err(e) => reply.error(e),
            }
        });
    }

    /// unlink and rmdir: delete the znode now.
    fn remove(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = match self.s.child_path(parent.0, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if self.s.echo.is_echo(req.pid()) {
            return reply.ok();
        }
        let s = self.s.clone();
        self.s.spawn(async move {
            match s
                .propose_op(
                    Op::Delete {
                        path: path.clone(),
                        version: -1,
                    },
                    true,
                )
                .await
            {
                Ok(_) => {
                    lock(&s.inodes).unlink(&path);
                    reply.ok();
                }
                Err(e) => reply.error(e),
            }
        });
    }

    /// The value of extended attribute `name` of `ino`.
    fn xattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>, Errno> {
        let no_data = Errno::from_i32(libc::ENODATA);
        let name = name.to_str().ok_or(no_data)?;
        let path = self.s.path_of(ino)?;
        if name == "user.zk.name" {
            let created = lock(&self.s.files).created_path_of(ino);
            let path = created.unwrap_or(path);
            let base = path.rsplit('/').next().unwrap_or_default();
            return Ok(base.as_bytes().to_vec());
        }
        if name == "user.zk.fence" {
            let me = self.s.session();
            return self
                .s
                .node()
                .read(|t| {
                    t.lock_state(&path).and_then(|state| {
                        state
                            .holds
                            .iter()
                            .filter(|h| h.holder.0 == me)
                            .map(|h| h.fence)
                            .max()
                    })
                })
                .map(|fence| fence.to_string().into_bytes())
                .ok_or(no_data);
        }
        let (data, stat) = self
            .s
            .node()
            .read(|t| t.get(&path).map(|(d, s)| (d.to_vec(), s)).ok())
            .ok_or(Errno::ENOENT)?;
        if name == "user.zk.data" {
            return Ok(data);
        }
        attr::stat_xattr(name, &stat)
            .map(String::into_bytes)
            .ok_or(no_data)
    }
}

fn reply_xattr(reply: ReplyXattr, value: &[u8], size: u32) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(value);
    }
}

/// truncate(2)/ftruncate(2): through a writable handle it changes what the handle will
/// commit; without one it commits the new content now.
async fn truncate(s: &Shared, ino: u64, fh: Option<u64>, size: u64) -> Result<(), Errno> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > MAX_DATA_LEN {
        return Err(Errno::from_i32(libc::EFBIG));
    }
    if let Some(fh) = fh {
        let ephemeral = {
            let mut files = lock(&s.files);
            match files.get(fh) {
                Some(f) if f.writable => {
                    f.data.resize(size, 0);
                    f.dirty = true;
                    Some(f.ephemeral)
                }
                _ => None,
            }
        };
        match ephemeral {
            Some(false) => return Ok(()),
            Some(true) => return commit_handle(s, fh, When::Always).await.map(|_| ()),
            None => {}
        }
    }
    let path = s.path_of(ino)?;
    let mut data = s
        .node()
        .read(|t| t.get(&path).map(|(d, _)| d.to_vec()))
        .map_err(|e| crate::errno_of(&e))?;
    data.resize(size, 0);
    s.propose_op(
        Op::SetData {
            path,
            data,
            version: -1,
        },
        true,
    )
    .await
    .map(|_| ())
}

/// chmod/chown: stores the new mode (keeping the file type) and owner.
async fn chmod(
    s: &Shared,
    ino: u64,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Errno> {
    let path = s.path_of(ino)?;
    let (old, stat) = s.znode(&path).ok_or(Errno::ENOENT)?;
    let kind = if old.mode & S_IFMT != 0 {
        old.mode & S_IFMT
    } else if attr::is_dir(&old, &stat) {
        S_IFDIR
    } else {
        S_IFREG
    };
    let current = attr::file_attr(ino, &old, &stat);
    let meta = FileMeta {
        mode: kind | (mode.unwrap_or(u32::from(current.perm)) & 0o7777),
        uid: uid.unwrap_or(old.uid),
        gid: gid.unwrap_or(old.gid),
    };
    s.propose_fs(FsOp::SetMeta { path, meta }, true)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    //! The commit and lock logic against an in-process single-voter ensemble (no FUSE).

    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use quorumfs_ensemble::tree::{FileMeta, TxnBody};
    use quorumfs_ensemble::{Handle, NodeConfig};

    use super::*;

    /// A single voter in `dir`, leading, and the mount's shared state over it.
    async fn shared(dir: &std::path::Path) -> Arc<Shared> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut config = NodeConfig::new(1, dir.to_path_buf(), addr);
        config.members = BTreeMap::from([(1, addr.to_string())]);
        let node: Handle = quorumfs_ensemble::start(config).await.expect("start");
        // Waits for the election (a write waits for a leader).
        let (session, _) = node.create_session(10_000).await.expect("session");
        Arc::new(Shared::new(
            node,
            tokio::runtime::Handle::current(),
            session,
            10_000,
            PathBuf::from("/nonexistent"),
            Duration::from_secs(1),
        ))
    }

    fn data_of(s: &Shared, path: &str) -> Option<Vec<u8>> {
        s.node().read(|t| t.get(path).ok().map(|(d, _)| d.to_vec()))
    }

    /// A committed file `path` with `data`; its inode.
    async fn file(s: &Shared, path: &str, data: &[u8]) -> u64 {
        let op = FsOp::Create {
            path: path.into(),
            data: data.to_vec(),
            mode: CreateMode::Persistent,
            meta: FileMeta::default(),
        };
        let Ok((_, FsResult::Created { stat, .. })) = s.propose_fs(op, false).await else {
            panic!("create {path}");
        };
        lock(&s.inodes).get_or_insert(path, stat.czxid, false)
    }

    /// Issue #9 item 8: an fsync while a commit of the same handle is in flight waits for
    /// it and then commits what was written after that commit took its copy. (Before the
    /// fix it returned at once and "ab" was never committed.)
    #[tokio::test]
    async fn fsync_waits_for_an_in_flight_commit_then_commits_what_is_newer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = shared(dir.path()).await;
        let ino = file(&s, "/f", b"old").await;
        let fh = open_handle(&s, ino, OpenFlags(libc::O_WRONLY)).expect("open");
        {
            // A commit of this handle took its copy and is in flight; "ab" came after.
            let mut files = lock(&s.files);
            let f = files.get(fh).expect("handle");
            f.data = b"ab".to_vec();
            (f.dirty, f.written, f.committing) = (true, true, true);
        }
        let fsync = tokio::spawn({
            let s = s.clone();
            async move { commit_handle(&s, fh, When::Always).await }
        });
        // This runtime has one thread: the fsync runs until it waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!fsync.is_finished(), "fsync returned during the commit");
        // The commit in flight ends, as `commit_handle` ends one.
        if let Some(f) = lock(&s.files).get(fh) {
            f.committing = false;
        }
        s.commit_done.notify_waiters();
        let result = fsync.await.expect("join");
        assert!(matches!(result, Ok(Some(_))), "{result:?}");
        assert_eq!(data_of(&s, "/f").as_deref(), Some(&b"ab"[..]));
    }

    /// A new file is only its handle until the commit, which creates it with its content;
    /// a later commit of the same handle replaces the content.
    #[tokio::test]
    async fn a_new_file_appears_with_its_content_at_its_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = shared(dir.path()).await;
        let ino = lock(&s.inodes).get_or_insert("/new", PENDING, false);
        let fh = lock(&s.files).insert(OpenFile {
            ino,
            writable: true,
            append: false,
            data: b"v1".to_vec(),
            dirty: true,
            written: true,
            pending: Some(PendingCreate {
                path: "/new".into(),
                mode: CreateMode::Persistent,
                meta: FileMeta::default(),
            }),
            ephemeral: false,
            created_path: None,
            committing: false,
            failed: false,
        });
        assert_eq!(data_of(&s, "/new"), None);
        let zxid = commit_handle(&s, fh, When::Written).await.expect("commit");
        assert!(zxid.is_some());
        assert_eq!(data_of(&s, "/new").as_deref(), Some(&b"v1"[..]));
        assert_ne!(lock(&s.inodes).get(ino).map(|i| i.czxid), Some(PENDING));
        // Nothing written since: a close commits nothing.
        assert_eq!(commit_handle(&s, fh, When::Written).await, Ok(None));
        if let Some(f) = lock(&s.files).get(fh) {
            f.data = b"v2".to_vec();
            (f.dirty, f.written) = (true, true);
        }
        commit_handle(&s, fh, When::Written).await.expect("commit");
        assert_eq!(data_of(&s, "/new").as_deref(), Some(&b"v2"[..]));
    }

    /// Issue #9 item 7: a lock request committed although its proposer gave up on it (the
    /// outcome was unknown) is withdrawn, and the next in line gets the lock.
    #[tokio::test]
    async fn a_withdrawal_frees_a_lock_nobody_here_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = shared(dir.path()).await;
        file(&s, "/l", b"").await;
        let lock_op = |owner, wait| {
            TxnBody::Fs(FsOp::Lock {
                path: "/l".into(),
                owner,
                exclusive: true,
                wait,
            })
        };
        s.node()
            .propose(s.session(), lock_op(7, false))
            .await
            .expect("granted to owner 7, which is not told");
        let (other, _) = s.node().create_session(10_000).await.expect("session");
        s.node()
            .propose(other, lock_op(1, true))
            .await
            .expect("queued");
        let key: LockKey = ("/l".into(), 7);
        withdraw(&s, key.clone());
        tokio::time::timeout(Duration::from_secs(30), s.locks.withdrawn(&key))
            .await
            .expect("the withdrawal ends");
        let holders = s.node().read(|t| {
            t.lock_state("/l")
                .map(|l| l.holds.iter().map(|h| h.holder).collect::<Vec<_>>())
        });
        assert_eq!(holders, Some(vec![(other, 1)]));
    }
}
