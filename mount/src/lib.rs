//! quorumfs-mount: the FUSE view of a quorumfs replica.
//!
//! [`mount`] shows the replica's znode tree as a filesystem (CONTRACT §5): znodes with
//! children or made by mkdir are directories, the others files whose content is the data.
//! Reads come from the local replica; writes are committed through the ensemble before
//! the call that makes them returns (a file's content at close or fsync, atomically).
//! Files created under a sticky directory are ephemeral, bound to the creating open and
//! to this host's session; names created under a setgid directory get a sequence suffix.
//! flock and fcntl locks are cluster-wide, held in the replicated lock table. Changes
//! committed anywhere reach inotify watchers here as the events a local change makes.
//!
//! Modules: `fs` answers the kernel's requests; `files` holds open files; `inodes` maps
//! inode numbers to paths; `attr` turns znodes into attributes; `echo` replays remote
//! changes on the mount point for inotify and invalidates the kernel's caches; `locks`
//! waits for lock grants and for signals to the waiting process; `shared` is the state
//! they share. It uses only the ensemble's public API.
#![deny(missing_docs)]

mod attr;
mod echo;
mod error;
mod files;
mod fs;
mod inodes;
mod locks;
mod shared;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};
use quorumfs_ensemble::Handle;
use tracing::{info, warn};

pub use error::{errno_of, MountError};

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Where to mount (an existing directory).
    pub mountpoint: PathBuf,
    /// This host's session timeout: how long after this host dies its ephemeral files and
    /// locks live on.
    pub session_timeout: Duration,
    /// How long kernel caches may keep attributes and names between invalidations.
    pub cache_ttl: Duration,
}

impl MountOptions {
    /// Options with the defaults for `mountpoint`.
    pub fn new(mountpoint: PathBuf) -> Self {
        MountOptions {
            mountpoint,
            session_timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(1),
        }
    }
}

/// A mounted filesystem; [`Mount::unmount`] it to stop.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    shared: Arc<shared::Shared>,
    mountpoint: PathBuf,
    keeper: tokio::task::JoinHandle<()>,
}

/// Mounts `node`'s tree at `options.mountpoint`. Call from within a tokio runtime (the
/// filesystem runs its commits on it). A stale mount left there by a crash is cleared
/// first; a missing directory is created.
///
/// # Errors
/// The mount point is unusable, the kernel refused the mount, or the host session could
/// not be opened (no quorum).
pub async fn mount(node: Handle, options: MountOptions) -> Result<Mount, MountError> {
    let path = options.mountpoint.clone();
    clear_stale_mount(&path);
    if !path.exists() {
        // A missing mount point is made, as `mount -m` does.
        let _ = std::fs::create_dir_all(&path);
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(MountError::MountPoint {
                path: path.display().to_string(),
                reason: "not a directory".into(),
            })
        }
        Err(e) => {
            return Err(MountError::MountPoint {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    }
    let timeout_ms = i32::try_from(options.session_timeout.as_millis()).unwrap_or(i32::MAX);
    let (session, _password) = node.create_session(timeout_ms).await?;
    wait_for_contact(&node).await;
    let shared = Arc::new(shared::Shared::new(
        node.clone(),
        tokio::runtime::Handle::current(),
        session,
        timeout_ms,
        path.clone(),
        options.cache_ttl,
    ));
    echo::start(&shared).map_err(MountError::Thread)?;

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("quorumfs".into()),
        MountOption::Subtype("quorumfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(4);
    config.clone_fd = true;
    let fs = fs::QuorumFs::new(shared.clone());
    let session = fuser::spawn_mount(fs, &path, &config).map_err(|source| MountError::Mount {
        path: path.display().to_string(),
        source,
    })?;
    shared.set_notifier(session.notifier());
    let keeper = tokio::spawn(shared::keep_session(shared.clone()));
    info!(mountpoint = %path.display(), session = format!("{session:#x}", session = shared.session()), "mounted");
    Ok(Mount {
        session: Some(session),
        shared,
        mountpoint: path,
        keeper,
    })
}

impl Mount {
    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts (lazily if files are still open, so it never hangs), stops the echo
    /// thread and closes the host session, which deletes this host's ephemeral files and
    /// releases its locks everywhere at once.
    pub async fn unmount(mut self) {
        self.keeper.abort();
        self.shared.stop_echo();
        if let Some(session) = self.session.take() {
            detach(&self.mountpoint);
            let joined = tokio::task::spawn_blocking(move || session.join());
            if tokio::time::timeout(Duration::from_secs(5), joined)
                .await
                .is_err()
            {
                warn!(mountpoint = %self.mountpoint.display(), "the FUSE session did not end in 5 s");
            }
        }
        if let Err(e) = self
            .shared
            .node()
            .close_session(self.shared.session())
            .await
        {
            warn!("closing the mount's session: {e}");
        }
        info!(mountpoint = %self.mountpoint.display(), "unmounted");
    }
}

/// Waits (5 s at most) until the node has confirmed its leader contact, which it does
/// shortly after start: opens for writing are refused without it (see
/// `shared::WRITE_CONTACT`), and a mount that has just appeared should accept them.
async fn wait_for_contact(node: &Handle) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while node
        .leader_contact()
        .is_none_or(|age| age > shared::WRITE_CONTACT)
    {
        if tokio::time::Instant::now() >= deadline {
            warn!("no leader contact yet: writes through the mount fail until there is");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lazily unmounts `path` (MNT_DETACH as root, `fusermount3 -uz` otherwise).
fn detach(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let _ = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(path)
            .status();
    }
}

/// Clears a dead FUSE mount at `path` (its daemon crashed: every access fails with
/// ENOTCONN).
fn clear_stale_mount(path: &Path) {
    if let Err(e) = std::fs::metadata(path) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            warn!(mountpoint = %path.display(), "clearing a stale mount left by a crash");
            detach(path);
        }
    }
}
