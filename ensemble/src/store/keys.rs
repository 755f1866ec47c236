//! Names of the sled trees and keys the store uses. Log keys are big-endian indexes so sled's
//! byte order is log order.

/// Tree holding log entries, keyed by [`log_key`].
pub const LOG_TREE: &str = "raft_log";
/// Tree holding small metadata values (vote, committed, last purged).
pub const META_TREE: &str = "raft_meta";
/// Tree holding the current state-machine snapshot.
pub const SNAPSHOT_TREE: &str = "snapshot";

/// Key of the vote in [`META_TREE`].
pub const VOTE: &[u8] = b"vote";
/// Key of the committed log id in [`META_TREE`].
pub const COMMITTED: &[u8] = b"committed";
/// Key of the last purged log id in [`META_TREE`].
pub const LAST_PURGED: &[u8] = b"last_purged";
/// Key of the snapshot in [`SNAPSHOT_TREE`].
pub const CURRENT_SNAPSHOT: &[u8] = b"current";

/// The sled key of log index `index`.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The log index of a sled key, if it is one.
pub fn log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}
