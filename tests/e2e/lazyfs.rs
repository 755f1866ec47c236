//! A forgetful FUSE passthrough for power-loss tests (the technique of Jepsen's LazyFS).
//!
//! [`LazyMount::mount`] mounts, from the test process, a filesystem that mirrors a backing
//! directory, with one twist: data written to a regular file stays in this process's memory
//! until the file is fsynced or fdatasynced. [`LazyMount::pull_plug`] then drops every byte
//! not yet synced, as a power cut drops a disk's volatile cache. Run daemons with their data
//! on the mount, kill -9 them, pull the plug, restart them: what they find is what they had
//! made durable, and nothing more.
//!
//! The model, and where it differs from a real disk:
//! - Data: a page-granular (4 KiB) dirty overlay per inode, plus a pending size and a
//!   "floor" (the lowest size since the last sync: backing bytes at or above it read as
//!   zeros). Reads see the overlay, as the page cache does. fsync/fdatasync of any handle of
//!   the inode writes its overlay to the backing file and forgets it; a cut forgets it. Every
//!   open answers `FOPEN_DIRECT_IO`, so the kernel keeps no page cache of its own that could
//!   outlive the cut, and attribute and entry TTLs are zero.
//! - `sync_file_range(2)` is not forwarded to FUSE by the kernel, so this filesystem cannot see
//!   it: such data stays unsynced here. That is also the truth on a real disk — the call starts
//!   write-back to the drive but flushes neither the drive's volatile cache nor the metadata
//!   needed to find the data, and its man page says it gives no durability guarantee.
//! - Metadata (create, mkdir, rename, unlink, rmdir, chmod) reaches the backing directory at
//!   once and survives every cut. That is *kinder* than a real disk, where a new name can be
//!   lost until its directory is fsynced: this filesystem cannot catch a missing directory
//!   fsync, only missing data syncs.
//! - A cut forgets a whole overlay; a real disk may have written any subset of it (torn
//!   writes). Also kinder than reality.
//! - Extended attributes, links, locks beyond the kernel's local ones, fallocate: unsupported
//!   (sled and fsd use none of them).
//!
//! Daemons using the mount must be dead before [`LazyMount::pull_plug`]: open handles are
//! left alone, but their unsynced data is gone. Unmounting happens on drop, also when the test
//! panics (lazily, so a stuck reader cannot make the drop hang).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use tempfile::TempDir;

/// Overlay granularity: the page size of Linux's page cache.
const PAGE: u64 = 4096;

/// What [`LazyMount::pull_plug`] threw away.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cut {
    /// Files that had unsynced data or sizes.
    pub files: usize,
    /// Dirty pages dropped.
    pub pages: usize,
}

/// Counters over the mount's lifetime.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// fsync/fdatasync calls on regular files.
    pub fsyncs: u64,
    /// Pages written to the backing files by those calls.
    pub synced_pages: u64,
}

/// Unsynced state of one inode.
struct Pending {
    /// Dirty pages by page index, each exactly `PAGE` bytes.
    pages: BTreeMap<u64, Vec<u8>>,
    /// The file's size as readers see it.
    size: u64,
    /// The lowest size since the last sync: backing bytes at or above it read as zeros.
    floor: u64,
}

impl Pending {
    fn new(backing_len: u64) -> Pending {
        Pending {
            pages: BTreeMap::new(),
            size: backing_len,
            floor: backing_len,
        }
    }

    /// Reads `buf.len()` bytes at `off` of the file as readers see it (clamped by the caller
    /// to `size`).
    fn read(&self, file: &File, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = off + buf.len() as u64;
        let from_backing = end.min(self.floor);
        if from_backing > off {
            read_backing(file, off, &mut buf[..(from_backing - off) as usize])?;
        }
        if end == off {
            return Ok(());
        }
        for (&idx, page) in self.pages.range(off / PAGE..=(end - 1) / PAGE) {
            let p_start = idx * PAGE;
            let lo = off.max(p_start);
            let hi = end.min(p_start + PAGE);
            buf[(lo - off) as usize..(hi - off) as usize]
                .copy_from_slice(&page[(lo - p_start) as usize..(hi - p_start) as usize]);
        }
        Ok(())
    }

    fn write(&mut self, file: &File, off: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = off + data.len() as u64;
        for idx in off / PAGE..=(end - 1) / PAGE {
            if !self.pages.contains_key(&idx) {
                let mut page = vec![0u8; PAGE as usize];
                let p_start = idx * PAGE;
                // The page as readers see it now (only bytes below the current size count).
                let visible = (p_start + PAGE).min(self.size);
                if visible > p_start {
                    self.read(file, p_start, &mut page[..(visible - p_start) as usize])?;
                }
                self.pages.insert(idx, page);
            }
            let page = self.pages.get_mut(&idx).expect("inserted above");
            let p_start = idx * PAGE;
            let lo = off.max(p_start);
            let hi = end.min(p_start + PAGE);
            page[(lo - p_start) as usize..(hi - p_start) as usize]
                .copy_from_slice(&data[(lo - off) as usize..(hi - off) as usize]);
        }
        self.size = self.size.max(end);
        Ok(())
    }

    fn truncate(&mut self, size: u64) {
        if size < self.size {
            self.pages.retain(|&idx, _| idx * PAGE < size);
            if let Some(page) = self.pages.get_mut(&(size / PAGE)) {
                page[(size % PAGE) as usize..].fill(0);
            }
            self.floor = self.floor.min(size);
        }
        self.size = size;
    }

    /// Makes this state the backing file's content.
    fn sync(&self, file: &File) -> io::Result<u64> {
        let backing_len = file.metadata()?.len();
        if self.floor < backing_len {
            file.set_len(self.floor)?;
        }
        for (&idx, page) in &self.pages {
            let p_start = idx * PAGE;
            let len = PAGE.min(self.size.saturating_sub(p_start)) as usize;
            file.write_all_at(&page[..len], p_start)?;
        }
        file.set_len(self.size)?;
        Ok(self.pages.len() as u64)
    }
}

fn read_backing(file: &File, off: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], off + done as u64)?;
        if n == 0 {
            buf[done..].fill(0);
            break;
        }
        done += n;
    }
    Ok(())
}

struct OpenFile {
    ino: u64,
    file: Arc<File>,
}

#[derive(Default)]
struct State {
    /// ino -> path relative to the backing root (`""` is the root, ino 1).
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    pending: HashMap<u64, Pending>,
    handles: HashMap<u64, OpenFile>,
    next_fh: u64,
    counters: Counters,
}

impl State {
    fn ino_for(&mut self, rel: PathBuf) -> u64 {
        if let Some(&ino) = self.inos.get(&rel) {
            return ino;
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.paths.insert(ino, rel.clone());
        self.inos.insert(rel, ino);
        ino
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// Forgets `rel` (unlinked or replaced); its unsynced data goes once no handle needs it.
    fn forget_path(&mut self, rel: &Path) {
        if let Some(ino) = self.inos.remove(rel) {
            self.paths.remove(&ino);
            if !self.handles.values().any(|h| h.ino == ino) {
                self.pending.remove(&ino);
            }
        }
    }

    fn add_handle(&mut self, ino: u64, file: File) -> u64 {
        self.next_fh += 1;
        self.handles.insert(
            self.next_fh,
            OpenFile {
                ino,
                file: Arc::new(file),
            },
        );
        self.next_fh
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.handles
            .get(&fh.0)
            .map(|h| h.file.clone())
            .ok_or(Errno::EBADF)
    }
}

/// The filesystem fuser runs. All state sits behind one mutex, held across backing I/O:
/// simple, and fast enough for a test (the backing directory is on the host's page cache).
struct LazyFs {
    backing: PathBuf,
    state: Arc<Mutex<State>>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

fn kind(m: &fs::Metadata) -> FileType {
    FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile)
}

fn attr(ino: u64, m: &fs::Metadata, size: Option<u64>) -> FileAttr {
    let t = |secs: i64, nsecs: i64| {
        UNIX_EPOCH + Duration::new(secs.max(0) as u64, nsecs.clamp(0, 999_999_999) as u32)
    };
    let size = size.unwrap_or(m.size());
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: SystemTime::UNIX_EPOCH,
        kind: kind(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: 0,
        blksize: PAGE as u32,
        flags: 0,
    }
}

impl LazyFs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn real(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }

    fn stat(&self, st: &State, ino: u64, rel: &Path) -> Result<FileAttr, Errno> {
        let m = fs::symlink_metadata(self.real(rel)).map_err(errno)?;
        Ok(attr(ino, &m, st.pending.get(&ino).map(|p| p.size)))
    }

    fn open_backing(&self, rel: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.real(rel))
    }

    fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let mut st = self.lock();
        let rel = st.child(parent, name)?;
        let m = fs::symlink_metadata(self.real(&rel)).map_err(errno)?;
        let ino = st.ino_for(rel);
        Ok(attr(ino, &m, st.pending.get(&ino).map(|p| p.size)))
    }
}

const TTL: Duration = Duration::ZERO;

impl fuser::Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.entry(parent, name) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.lock();
        match st.path(ino).and_then(|rel| self.stat(&st, ino.0, &rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
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
        let mut st = self.lock();
        let result = (|| {
            let rel = st.path(ino)?;
            if let Some(mode) = mode {
                fs::set_permissions(self.real(&rel), fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if let Some(size) = size {
                // A truncate is a data change: pending until synced, like a write.
                let file = match fh {
                    Some(fh) => st.file(fh)?,
                    None => Arc::new(self.open_backing(&rel).map_err(errno)?),
                };
                let backing_len = file.metadata().map_err(errno)?.len();
                st.pending
                    .entry(ino.0)
                    .or_insert_with(|| Pending::new(backing_len))
                    .truncate(size);
            }
            self.stat(&st, ino.0, &rel)
        })();
        match result {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let rel = self.lock().child(parent, name)?;
            fs::create_dir(self.real(&rel)).map_err(errno)?;
            fs::set_permissions(
                self.real(&rel),
                fs::Permissions::from_mode(mode & !umask & 0o7777),
            )
            .map_err(errno)?;
            self.entry(parent, name)
        })();
        match result {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.lock();
        let result = st.child(parent, name).and_then(|rel| {
            fs::remove_file(self.real(&rel)).map_err(errno)?;
            st.forget_path(&rel);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.lock();
        let result = st.child(parent, name).and_then(|rel| {
            fs::remove_dir(self.real(&rel)).map_err(errno)?;
            st.forget_path(&rel);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.bits() != 0 {
            reply.error(Errno::EINVAL);
            return;
        }
        let mut st = self.lock();
        let result = (|| {
            let from = st.child(parent, name)?;
            let to = st.child(newparent, newname)?;
            fs::rename(self.real(&from), self.real(&to)).map_err(errno)?;
            st.forget_path(&to);
            // Move the renamed path and everything below it.
            let moved: Vec<(PathBuf, u64)> = st
                .inos
                .iter()
                .filter(|(p, _)| p.starts_with(&from))
                .map(|(p, i)| (p.clone(), *i))
                .collect();
            for (old, ino) in moved {
                // `join("")` would add a trailing slash, which makes a file's path unopenable.
                let rest = old.strip_prefix(&from).expect("filtered by prefix");
                let new = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                st.inos.remove(&old);
                st.inos.insert(new.clone(), ino);
                st.paths.insert(ino, new);
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.lock();
        let result = st.path(ino).and_then(|rel| {
            let file = self.open_backing(&rel).map_err(errno)?;
            if flags.0 & libc::O_TRUNC != 0 {
                let len = file.metadata().map_err(errno)?.len();
                st.pending
                    .entry(ino.0)
                    .or_insert_with(|| Pending::new(len))
                    .truncate(0);
            }
            Ok(st.add_handle(ino.0, file))
        });
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.lock();
        let result = (|| {
            let rel = st.child(parent, name)?;
            let mut opts = OpenOptions::new();
            opts.read(true).write(true).mode(mode & !umask & 0o7777);
            if flags & libc::O_EXCL != 0 {
                opts.create_new(true);
            } else {
                opts.create(true);
            }
            let file = opts.open(self.real(&rel)).map_err(errno)?;
            let m = file.metadata().map_err(errno)?;
            let ino = st.ino_for(rel);
            if flags & libc::O_TRUNC != 0 {
                st.pending
                    .entry(ino)
                    .or_insert_with(|| Pending::new(m.len()))
                    .truncate(0);
            }
            let a = attr(ino, &m, st.pending.get(&ino).map(|p| p.size));
            let fh = st.add_handle(ino, file);
            Ok((a, fh))
        })();
        match result {
            Ok((a, fh)) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.lock();
        let result = (|| {
            let file = st.file(fh)?;
            let len = match st.pending.get(&ino.0) {
                Some(p) => p.size,
                None => file.metadata().map_err(errno)?.len(),
            };
            let end = (offset + u64::from(size)).min(len);
            let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
            match st.pending.get(&ino.0) {
                Some(p) => p.read(&file, offset, &mut buf).map_err(errno)?,
                None => read_backing(&file, offset, &mut buf).map_err(errno)?,
            }
            Ok(buf)
        })();
        match result {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.lock();
        let result = (|| {
            let file = st.file(fh)?;
            let len = file.metadata().map_err(errno)?.len();
            st.pending
                .entry(ino.0)
                .or_insert_with(|| Pending::new(len))
                .write(&file, offset, data)
                .map_err(errno)
        })();
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        st.handles.remove(&fh.0);
        // An unlinked file nobody has open can never be synced: forget it.
        if !st.paths.contains_key(&ino.0) && !st.handles.values().any(|h| h.ino == ino.0) {
            st.pending.remove(&ino.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        let result = (|| {
            st.counters.fsyncs += 1;
            let file = st.file(fh)?;
            if let Some(p) = st.pending.get(&ino.0) {
                let pages = p.sync(&file).map_err(errno)?;
                st.counters.synced_pages += pages;
                st.pending.remove(&ino.0);
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.lock();
        let result = (|| {
            let rel = st.path(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, OsStr::new(".").to_owned()),
                (ino.0, FileType::Directory, OsStr::new("..").to_owned()),
            ];
            for e in fs::read_dir(self.real(&rel)).map_err(errno)? {
                let e = e.map_err(errno)?;
                let t = e.file_type().map_err(errno)?;
                let child = st.ino_for(rel.join(e.file_name()));
                let k = FileType::from_std(t).unwrap_or(FileType::RegularFile);
                entries.push((child, k, e.file_name()));
            }
            Ok(entries)
        })();
        match result {
            Ok(entries) => {
                for (i, (child, k, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), i as u64 + 1, k, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Metadata is always durable here (see the module docs).
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            1 << 24,
            1 << 23,
            1 << 23,
            1 << 20,
            1 << 19,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }
}

/// A mounted [`LazyFs`] over a fresh backing directory; unmounted on drop.
pub struct LazyMount {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    /// Holds `backing/` and `mnt/`; removed after the unmount.
    dir: Option<TempDir>,
}

impl LazyMount {
    /// Mounts a fresh forgetful filesystem, or prints a SKIP line for `test` and returns
    /// `None` where FUSE is unavailable.
    pub fn mount(test: &str) -> Option<LazyMount> {
        if !crate::harness::can_mount_with(test, &[]) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("quorumfs-lazyfs-")
            .tempdir()
            .expect("create lazyfs temp dir");
        let backing = dir.path().join("backing");
        let mountpoint = dir.path().join("mnt");
        fs::create_dir_all(&backing).expect("create backing dir");
        fs::create_dir_all(&mountpoint).expect("create lazyfs mount point");
        let mut state = State {
            next_ino: 1,
            ..State::default()
        };
        state.paths.insert(1, PathBuf::new());
        state.inos.insert(PathBuf::new(), 1);
        let state = Arc::new(Mutex::new(state));
        let fs = LazyFs {
            backing,
            state: state.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("lazyfs".into()),
            MountOption::Subtype("lazyfs".into()),
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        config.n_threads = Some(4);
        config.clone_fd = true;
        let session = match fuser::spawn_mount(fs, &mountpoint, &config) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("SKIP {test}: cannot mount the forgetful filesystem: {e}");
                return None;
            }
        };
        let mount = LazyMount {
            state,
            session: Some(session),
            mountpoint,
            dir: Some(dir),
        };
        crate::harness::wait_until(Duration::from_secs(10), "lazyfs mounted", || {
            let listed = fs::read_to_string("/proc/mounts").is_ok_and(|m| {
                m.lines().any(|l| {
                    l.split(' ').nth(1) == Some(mount.mountpoint.to_string_lossy().as_ref())
                })
            });
            listed.then_some(())
        });
        Some(mount)
    }

    /// The mount point: put data directories below it.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power cut: forgets every byte and size change not yet fsynced. Whoever wrote them
    /// must already be dead (kill -9 and reaped).
    pub fn pull_plug(&self) -> Cut {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let cut = Cut {
            files: st.pending.len(),
            pages: st.pending.values().map(|p| p.pages.len()).sum(),
        };
        st.pending.clear();
        cut
    }

    pub fn counters(&self) -> Counters {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counters
    }
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        if let Ok(c) = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string; failure (already unmounted) is harmless.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        if let Some(session) = self.session.take() {
            // The session thread ends once the kernel closes the connection; never hang here.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(session.join());
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                eprintln!(
                    "lazyfs at {}: FUSE session did not end within 10 s",
                    self.mountpoint.display()
                );
            }
        }
        if std::env::var_os("E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("lazyfs: keeping {}", dir.keep().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;
    use std::io::Write;

    /// The overlay's read/write/truncate/sync arithmetic against a plain byte vector.
    #[test]
    fn overlay_matches_a_plain_file_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&vec![7u8; 10_000]).expect("write");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let mut model = vec![7u8; 10_000];
        let mut p = Pending::new(10_000);
        let check = |p: &Pending, model: &[u8]| {
            let mut buf = vec![0u8; p.size as usize];
            p.read(&file, 0, &mut buf).expect("read");
            assert_eq!(p.size as usize, model.len());
            assert!(buf == model, "overlay differs from the model");
        };
        p.write(&file, 4000, &[1u8; 300]).expect("write");
        model[4000..4300].fill(1);
        check(&p, &model);
        p.truncate(4100);
        model.truncate(4100);
        check(&p, &model);
        p.truncate(9000);
        model.resize(9000, 0);
        check(&p, &model);
        p.write(&file, 12_000, &[2u8; 5000]).expect("write");
        model.resize(12_000, 0);
        model.extend_from_slice(&[2u8; 5000]);
        check(&p, &model);
        // Unsynced: the backing file is untouched.
        assert_eq!(std::fs::read(&path).expect("read back"), vec![7u8; 10_000]);
        p.sync(&file).expect("sync");
        assert!(std::fs::read(&path).expect("read back") == model);
    }
}
