//! Durability of what sled wrote: [`DiskSync::sync`] fsyncs sled's files, because sled 0.34
//! itself does not.
//!
//! On Linux without io_uring, sled 0.34.7's `flush` ends in `pwrite` + `sync_file_range`
//! (`pagecache/iobuf.rs`), which flushes neither the drive's volatile cache nor the metadata
//! needed to find the data; its man page promises nothing after a crash. sled calls
//! `sync_all` on its `db` file only from a background thread every 500 ms, and never syncs its
//! `blobs/` files (values over about 128 KiB, snapshots among them) or their directory. So a
//! flush survives kill -9 (the page cache survives a process) but not a power cut.
//!
//! After `Db::flush` returns, everything sled wrote before is in its files; `sync` then makes
//! it durable:
//! 1. every blob file not yet synced at its current length gets `fdatasync` (a blob is
//!    written once, at creation; one seen while it is still being written is synced again
//!    when its length changed), then the `blobs/` directory is fsynced if any was new (their
//!    names must survive too);
//! 2. the `db` file gets `fdatasync` (data plus the size needed to read it back).
//!
//! Blobs go first: a durable log record must never point to a blob that is not.
//! [`DiskSync::open`] also syncs what sled created at open (`conf`, `db`, `blobs/`, the
//! directory itself and its parent), once.
//!
//! What this leaves to sled: its own crash recovery (CRC-checked log segments, torn tails
//! cut at recovery), which the power-loss e2e test exercises. The caller owns group commit
//! (one `sync` for many appends, see the log store).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// fsyncs the files of one sled database directory. Shared (behind an `Arc`) by the log
/// store and the state machine; [`DiskSync::sync`] may run from several threads at once.
#[derive(Debug)]
pub struct DiskSync {
    dir: PathBuf,
    /// sled's `db` file, opened read-only: `fdatasync` needs no write access.
    db: File,
    /// Blob files synced so far, by name, with the length they were synced at.
    blobs: Mutex<HashMap<OsString, u64>>,
}

impl DiskSync {
    /// Opens sled's files in `dir` (after sled opened it) and makes what sled created durable.
    ///
    /// # Errors
    /// Any I/O error opening or syncing them.
    pub fn open(dir: &Path) -> io::Result<DiskSync> {
        let disk = DiskSync {
            dir: dir.to_path_buf(),
            db: File::open(dir.join("db"))?,
            blobs: Mutex::new(HashMap::new()),
        };
        match File::open(dir.join("conf")) {
            Ok(conf) => conf.sync_all()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        disk.sync()?;
        sync_dir(&dir.join("blobs"))?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(disk)
    }

    /// Makes everything sled has written so far durable (call it after `Db::flush`).
    ///
    /// # Errors
    /// Any I/O error: the caller must then treat the writes it covers as not durable.
    pub fn sync(&self) -> io::Result<()> {
        self.sync_blobs()?;
        self.db.sync_data()
    }

    fn sync_blobs(&self) -> io::Result<()> {
        let blobs_dir = self.dir.join("blobs");
        let mut synced = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = HashMap::with_capacity(synced.len());
        let mut new_names = false;
        for entry in std::fs::read_dir(&blobs_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                // Removed by sled meanwhile (superseded): nothing to sync.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match synced.get(&name) {
                Some(&at) if at == len => {}
                previous => {
                    new_names |= previous.is_none();
                    match File::open(entry.path()) {
                        Ok(f) => f.sync_data()?,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            seen.insert(name, len);
        }
        *synced = seen;
        if new_names {
            sync_dir(&blobs_dir)?;
        }
        Ok(())
    }
}

/// fsyncs a directory, so the names created in it survive a power cut.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::DiskSync;

    /// Syncing a real sled directory works, also with blobs (values over the inline size).
    #[test]
    fn syncs_a_sled_directory_with_blobs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = dir.path().join("store");
        let db = sled::Config::new().path(&store).open()?;
        let disk = DiskSync::open(&store)?;
        db.insert(b"small", &b"x"[..])?;
        db.insert(b"big", vec![7u8; 1 << 20])?;
        db.flush()?;
        disk.sync()?;
        let blobs = std::fs::read_dir(store.join("blobs"))?.count();
        assert!(blobs >= 1, "a 1 MiB value is a blob");
        assert_eq!(disk.blobs.lock().map(|b| b.len()).unwrap_or(0), blobs);
        disk.sync()?;
        Ok(())
    }
}
