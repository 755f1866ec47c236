//! Open files and directories: what each file handle sees and has written.
//!
//! A read-only handle holds the content as it was at open, so a reader never mixes two
//! versions. A writable handle holds the content it is building; it is committed as a
//! whole at flush (close) or fsync, or at every write for the creating handle of an
//! ephemeral file. A new persistent file is only a handle until its first commit: it
//! appears everywhere with its content.

use std::collections::HashMap;

use fuser::{FileAttr, FileType};
use quorumfs_ensemble::tree::{CreateMode, FileMeta, Stat};

use crate::attr;

/// A create not committed yet.
#[derive(Debug, Clone)]
pub struct PendingCreate {
    /// Path, or the prefix of a sequential name.
    pub path: String,
    /// How to create it.
    pub mode: CreateMode,
    /// Its file metadata.
    pub meta: FileMeta,
}

/// One open file.
#[derive(Debug)]
pub struct OpenFile {
    /// Its inode.
    pub ino: u64,
    /// Opened for writing.
    pub writable: bool,
    /// Opened with O_APPEND: every write goes to the end of this handle's content (the
    /// kernel's idea of the file size may be stale).
    pub append: bool,
    /// Content as this handle sees it.
    pub data: Vec<u8>,
    /// Changed (written or truncated) since the last commit.
    pub dirty: bool,
    /// write() was called since the last commit. A close commits only then: shells open,
    /// dup2 and close the first descriptor before they write, and that close must not
    /// publish an empty file.
    pub written: bool,
    /// The create this handle still has to commit.
    pub pending: Option<PendingCreate>,
    /// This handle created an ephemeral file: writes commit at once, the last close
    /// deletes it.
    pub ephemeral: bool,
    /// The znode's real path once created (what `user.zk.name` tells).
    pub created_path: Option<String>,
    /// A commit of this handle is under way.
    pub committing: bool,
    /// A write failed (too large): nothing of this handle is ever committed, and its
    /// close fails too.
    pub failed: bool,
}

/// An open directory: its entries as they were at opendir.
pub type DirEntries = Vec<(u64, FileType, String)>;

/// Open files and directories by handle number.
#[derive(Debug, Default)]
pub struct OpenFiles {
    files: HashMap<u64, OpenFile>,
    dirs: HashMap<u64, DirEntries>,
    next: u64,
}

impl OpenFiles {
    /// Registers an open file; returns its handle number (never 0, which echoes use).
    pub fn insert(&mut self, file: OpenFile) -> u64 {
        self.next += 1;
        self.files.insert(self.next, file);
        self.next
    }

    /// Registers an open directory.
    pub fn insert_dir(&mut self, entries: DirEntries) -> u64 {
        self.next += 1;
        self.dirs.insert(self.next, entries);
        self.next
    }

    /// An open file.
    pub fn get(&mut self, fh: u64) -> Option<&mut OpenFile> {
        self.files.get_mut(&fh)
    }

    /// An open directory's entries.
    pub fn dir(&self, fh: u64) -> Option<&DirEntries> {
        self.dirs.get(&fh)
    }

    /// Closes a file handle.
    pub fn remove(&mut self, fh: u64) -> Option<OpenFile> {
        self.files.remove(&fh)
    }

    /// Closes a directory handle.
    pub fn remove_dir(&mut self, fh: u64) {
        self.dirs.remove(&fh);
    }

    /// Whether closing `fh` has nothing to commit, now (`last` false: a flush) or at its
    /// last close.
    pub fn idle(&self, fh: u64, last: bool) -> bool {
        self.files.get(&fh).is_none_or(|f| {
            !f.failed
                && !f.written
                && !(last && (f.dirty || f.pending.is_some() || f.ephemeral || f.committing))
        })
    }

    /// Handles open on `ino`.
    pub fn handles_of(&self, ino: u64) -> Vec<u64> {
        self.files
            .iter()
            .filter(|(_, f)| f.ino == ino)
            .map(|(&fh, _)| fh)
            .collect()
    }

    /// The real path an open handle created for `ino`, if any.
    pub fn created_path_of(&self, ino: u64) -> Option<String> {
        self.files
            .values()
            .find(|f| f.ino == ino && f.created_path.is_some())
            .and_then(|f| f.created_path.clone())
    }

    /// A handle of `ino` whose create is still pending.
    pub fn pending_handle(&self, ino: u64) -> Option<u64> {
        self.files
            .iter()
            .find(|(_, f)| f.ino == ino && f.pending.is_some() && !f.committing)
            .map(|(&fh, _)| fh)
    }

    /// Attributes of an inode whose create is still pending, from its open handle.
    pub fn pending_attr(&self, ino: u64) -> Option<FileAttr> {
        let file = self
            .files
            .values()
            .find(|f| f.ino == ino && f.pending.is_some())?;
        let meta = file.pending.as_ref()?.meta;
        let stat = Stat {
            data_length: i32::try_from(file.data.len()).unwrap_or(i32::MAX),
            mtime: now_ms(),
            ctime: now_ms(),
            ..Stat::default()
        };
        Some(attr::file_attr(ino, &meta, &stat))
    }
}

/// Wall clock in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
