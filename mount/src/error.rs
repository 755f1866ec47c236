//! Errors of the mount: why mounting failed ([`MountError`]), and the errno each store
//! error becomes for a filesystem call ([`errno_of`]).

use fuser::Errno;
use quorumfs_ensemble::Error;

/// Why the filesystem could not be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point is missing or not a directory.
    #[error("mount point {path}: {reason}")]
    MountPoint {
        /// The mount point.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The kernel refused the mount.
    #[error("mounting {path}: {source}")]
    Mount {
        /// The mount point.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The host session could not be opened.
    #[error("opening the mount's session: {0}")]
    Session(#[from] Error),
    /// The echo thread could not be started.
    #[error("starting the echo thread: {0}")]
    Thread(std::io::Error),
}

/// The errno a failed store operation gives a filesystem call (documented in the README).
pub fn errno_of(error: &Error) -> Errno {
    let code = match error {
        Error::NoNode { .. } => libc::ENOENT,
        Error::NodeExists { .. } => libc::EEXIST,
        Error::NotEmpty { .. } => libc::ENOTEMPTY,
        Error::NoChildrenForEphemerals { .. } => libc::ENOTDIR,
        Error::BadArguments { .. } | Error::InvalidAcl => libc::EINVAL,
        Error::BadVersion { .. } => libc::EAGAIN,
        Error::AuthFailed { .. } => libc::EACCES,
        // No quorum within the write timeout, or the outcome is unknown.
        Error::Unavailable { .. } | Error::NotLeader { .. } => libc::EIO,
        Error::SessionExpired { .. } => libc::ESTALE,
        Error::RolledBack | Error::Membership { .. } | Error::Storage { .. } => libc::EIO,
    };
    Errno::from_i32(code)
}
