//! The echo thread: makes changes committed elsewhere visible to this host's kernel.
//!
//! The kernel makes inotify events only for syscalls, and FUSE's invalidation
//! notifications make none (FUSE-NOTES). So for every applied change this thread, in
//! commit order: invalidates the cached attributes and names it touches, and then —
//! unless this mount's own syscall already produced the events — replays the change as a
//! syscall on the mount point (mkdir, create, truncate, utimensat, rename, unlink). The
//! handlers recognise the echo by its thread id and answer as if they had done it,
//! without proposing anything. Changes under directories the kernel does not know are
//! skipped: nobody can watch them and nothing of them is cached.
//!
//! The thread is a plain OS thread, never a FUSE handler (a syscall on the mount from a
//! handler deadlocks). Local operations never wait for it while the kernel holds a
//! directory or file lock (so not in create, mkdir, unlink, rename, setattr, fsync); flush
//! and lock grants wait for it to pass their zxid, so that the kernel's caches here show
//! what was committed before they return.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};

use fuser::INodeNo;
use quorumfs_ensemble::tree::{Change, FileMeta, Stat, Zxid};
use quorumfs_ensemble::ApplyEvent;
use tokio::sync::watch;
use tracing::debug;

use crate::attr;
use crate::shared::{lock, Shared};

/// What the echo thread is replaying now, for the handlers' answers.
#[derive(Debug, Clone)]
pub enum Echo {
    /// A create of `path`: lookups of it say ENOENT; create/mkdir answer these.
    Create {
        /// The new znode.
        path: String,
        /// Its metadata when it was created.
        meta: FileMeta,
        /// Its Stat when it was created.
        stat: Stat,
    },
    /// A delete of `path`: lookups of it answer the old inode.
    Delete {
        /// The deleted znode.
        path: String,
        /// Whether it was shown as a directory.
        is_dir: bool,
    },
    /// A rename: lookups of `from` answer the moved inode, of `to` ENOENT.
    Rename {
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// A data or metadata change: open and setattr answer the current attributes.
    Touch,
}

/// One applied transaction, as the listener hands it over.
enum Item {
    Changes {
        zxid: Zxid,
        shown: bool,
        changes: Vec<Change>,
        /// Metadata and Stat of created znodes at apply time.
        created: Vec<(String, FileMeta, Stat)>,
    },
    Reset {
        zxid: Zxid,
    },
}

/// The echo thread's shared state.
#[derive(Debug)]
pub struct EchoState {
    tid: AtomicU32,
    current: Mutex<Option<Echo>>,
    tx: Mutex<Option<mpsc::Sender<Item>>>,
    queued: AtomicI64,
    done: watch::Sender<Zxid>,
    stopped: AtomicBool,
}

impl Default for EchoState {
    fn default() -> Self {
        EchoState {
            tid: AtomicU32::new(0),
            current: Mutex::new(None),
            tx: Mutex::new(None),
            queued: AtomicI64::new(0),
            done: watch::channel(0).0,
            stopped: AtomicBool::new(false),
        }
    }
}

impl EchoState {
    /// Whether a request comes from the echo thread (`pid` is the requesting thread).
    pub fn is_echo(&self, pid: u32) -> bool {
        pid != 0 && self.tid.load(Ordering::Relaxed) == pid
    }

    /// What is being replayed.
    pub fn current(&self) -> Option<Echo> {
        lock(&self.current).clone()
    }

    /// The last zxid handed to the thread.
    pub fn queued(&self) -> Zxid {
        self.queued.load(Ordering::Acquire)
    }

    /// Follows the last zxid the thread has handled.
    pub fn done(&self) -> watch::Receiver<Zxid> {
        self.done.subscribe()
    }

    /// Stops the thread (it ends after the item it is on).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        lock(&self.tx).take();
    }

    fn send(&self, zxid: Zxid, item: Item) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            self.queued.fetch_max(zxid, Ordering::AcqRel);
            let _ = tx.send(item);
        }
    }
}

/// Registers the apply listener and starts the echo thread.
pub fn start(shared: &Arc<Shared>) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel();
    *lock(&shared.echo.tx) = Some(tx);
    let weak: Weak<Shared> = Arc::downgrade(shared);
    shared.node().add_listener(Box::new(move |tree, event| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        match event {
            ApplyEvent::Changes {
                zxid, tag, changes, ..
            } => {
                let mine = shared.session();
                let mut created = Vec::new();
                for change in changes.iter() {
                    match change {
                        Change::LockGranted {
                            path,
                            session,
                            owner,
                            ..
                        } if *session == mine => {
                            let key = (path.clone(), *owner);
                            if !shared.locks.granted(&key, *zxid) {
                                crate::locks::stray_grant(&shared, key);
                            }
                        }
                        Change::Created { path } => {
                            if let Some((meta, stat)) = tree.file_meta(path) {
                                created.push((path.clone(), meta, stat));
                            }
                        }
                        _ => {}
                    }
                }
                shared.echo.send(
                    *zxid,
                    Item::Changes {
                        zxid: *zxid,
                        shown: *tag == shared.tag,
                        changes: changes.to_vec(),
                        created,
                    },
                );
            }
            ApplyEvent::Reset { zxid } => {
                shared.locks.recheck(tree, shared.session(), *zxid);
                shared.echo.send(*zxid, Item::Reset { zxid: *zxid });
            }
        }
    }));
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("quorumfs-echo".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            shared
                .echo
                .tid
                .store(u32::try_from(tid).unwrap_or(0), Ordering::Relaxed);
            run(&shared, &rx);
        })?;
    Ok(())
}

fn run(shared: &Shared, rx: &mpsc::Receiver<Item>) {
    while let Ok(item) = rx.recv() {
        if shared.echo.stopped.load(Ordering::Acquire) {
            break;
        }
        match item {
            Item::Changes {
                zxid,
                shown,
                changes,
                created,
            } => {
                for (i, change) in changes.iter().enumerate() {
                    // A rename over an existing file is one kernel rename.
                    if let (Change::Deleted { path }, Some(Change::Renamed { to, .. })) =
                        (change, changes.get(i + 1))
                    {
                        if path == to {
                            continue;
                        }
                    }
                    replay(shared, change, shown, &created);
                }
                shared.echo.done.send_replace(zxid);
            }
            Item::Reset { zxid } => {
                invalidate_all(shared);
                shared.echo.done.send_replace(zxid);
            }
        }
    }
}

fn parent_and_name(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

fn inval_attrs(shared: &Shared, ino: Option<u64>) {
    if let (Some(n), Some(ino)) = (shared.notifier(), ino) {
        let _ = n.inval_inode(INodeNo(ino), 0, 0);
    }
}

fn inval_name(shared: &Shared, parent: Option<u64>, name: &str) {
    if let (Some(n), Some(parent)) = (shared.notifier(), parent) {
        let _ = n.inval_entry(INodeNo(parent), std::ffi::OsStr::new(name));
    }
}

fn invalidate_all(shared: &Shared) {
    let known = lock(&shared.inodes).all_known();
    for (ino, path) in known {
        inval_attrs(shared, Some(ino));
        let (parent, name) = parent_and_name(&path);
        let parent = lock(&shared.inodes).known(parent);
        if path != "/" {
            inval_name(shared, parent, name);
        }
    }
}

/// Invalidates what `change` makes stale and, unless `shown`, replays it.
fn replay(shared: &Shared, change: &Change, shown: bool, created: &[(String, FileMeta, Stat)]) {
    let known = |p: &str| lock(&shared.inodes).known(p);
    match change {
        Change::Created { path } => {
            let (parent, _) = parent_and_name(path);
            let parent_ino = known(parent);
            if parent_ino.is_none() {
                return;
            }
            inval_attrs(shared, parent_ino);
            if shown {
                return;
            }
            let Some((_, meta, stat)) = created.iter().find(|(p, ..)| p == path) else {
                return;
            };
            let (meta, stat) = (*meta, *stat);
            with_echo(
                shared,
                Echo::Create {
                    path: path.clone(),
                    meta,
                    stat,
                },
                || {
                    let full = full_path(shared, path)?;
                    if attr::is_dir(&meta, &stat) {
                        // SAFETY: `full` is a valid C string for the duration of the call.
                        check(unsafe { libc::mkdir(full.as_ptr(), 0o755) })
                    } else {
                        // SAFETY: as above; the descriptor is closed below.
                        let fd = unsafe {
                            libc::open(
                                full.as_ptr(),
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                                0o644,
                            )
                        };
                        check(fd)?;
                        if stat.data_length > 0 {
                            // SAFETY: `fd` is open.
                            let _ =
                                unsafe { libc::ftruncate(fd, libc::off_t::from(stat.data_length)) };
                        }
                        // SAFETY: `fd` is open and closed once.
                        check(unsafe { libc::close(fd) })
                    }
                },
            );
        }
        Change::Deleted { path } => {
            let (parent, name) = parent_and_name(path);
            let parent_ino = known(parent);
            let node = {
                let inodes = lock(&shared.inodes);
                inodes
                    .ino_of(path)
                    .and_then(|ino| inodes.get(ino).map(|i| i.is_dir))
            };
            if parent_ino.is_none() || shown {
                inval_attrs(shared, parent_ino);
                lock(&shared.inodes).unlink(path);
                return;
            }
            inval_attrs(shared, parent_ino);
            let is_dir = node.unwrap_or(false);
            with_echo(
                shared,
                Echo::Delete {
                    path: path.clone(),
                    is_dir,
                },
                || {
                    let full = full_path(shared, path)?;
                    // SAFETY: `full` is a valid C string for the duration of the call.
                    check(unsafe {
                        if is_dir {
                            libc::rmdir(full.as_ptr())
                        } else {
                            libc::unlink(full.as_ptr())
                        }
                    })
                },
            );
            inval_name(shared, parent_ino, name);
            lock(&shared.inodes).unlink(path);
        }
        Change::DataChanged { path } | Change::MetaChanged { path } => {
            inval_attrs(shared, known(path));
            let (parent, _) = parent_and_name(path);
            if shown || known(parent).is_none() {
                return;
            }
            let data = matches!(change, Change::DataChanged { .. });
            with_echo(shared, Echo::Touch, || {
                let full = full_path(shared, path)?;
                if data {
                    let size = shared.znode(path).map_or(0, |(_, s)| s.data_length);
                    // SAFETY: `full` is a valid C string; the descriptor is closed below.
                    let fd = unsafe { libc::open(full.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                    check(fd)?;
                    // SAFETY: `fd` is open.
                    let _ = unsafe { libc::ftruncate(fd, libc::off_t::from(size)) };
                    // SAFETY: `fd` is open and closed once.
                    check(unsafe { libc::close(fd) })
                } else {
                    // SAFETY: `full` is a valid C string; a null times pointer means now.
                    check(unsafe {
                        libc::utimensat(libc::AT_FDCWD, full.as_ptr(), std::ptr::null(), 0)
                    })
                }
            });
        }
        Change::Renamed { from, to } => {
            let (from_parent, from_name) = parent_and_name(from);
            let (to_parent, _) = parent_and_name(to);
            let (fp, tp) = (known(from_parent), known(to_parent));
            inval_attrs(shared, fp);
            inval_attrs(shared, tp);
            if shown {
                return;
            }
            if fp.is_some() && tp.is_some() {
                with_echo(
                    shared,
                    Echo::Rename {
                        from: from.clone(),
                        to: to.clone(),
                    },
                    || {
                        let (f, t) = (full_path(shared, from)?, full_path(shared, to)?);
                        // SAFETY: both are valid C strings for the duration of the call.
                        check(unsafe { libc::rename(f.as_ptr(), t.as_ptr()) })
                    },
                );
            }
            inval_name(shared, fp, from_name);
            lock(&shared.inodes).rename(from, to);
        }
        Change::AclChanged { .. } | Change::LockGranted { .. } => {}
    }
}

/// Runs one replay with `echo` published for the handlers.
fn with_echo(shared: &Shared, echo: Echo, f: impl FnOnce() -> std::io::Result<()>) {
    let what = format!("{echo:?}");
    *lock(&shared.echo.current) = Some(echo);
    if let Err(e) = f() {
        debug!("echo {what}: {e}");
    }
    *lock(&shared.echo.current) = None;
}

fn full_path(shared: &Shared, path: &str) -> std::io::Result<CString> {
    let mut full = shared.mountpoint.as_os_str().as_bytes().to_vec();
    if path != "/" {
        full.extend_from_slice(path.as_bytes());
    }
    CString::new(full).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
