//! The crate's one error type. Variants say what happened; the edges (ZooKeeper codes in
//! `fsd`, errnos in `mount`) map them exhaustively.

use crate::tree::SessionId;

/// Everything an ensemble operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// The znode (or, for create, its parent) does not exist.
    #[error("no node: {path}")]
    NoNode {
        /// The path that was missing.
        path: String,
    },
    /// A create found the path taken.
    #[error("node exists: {path}")]
    NodeExists {
        /// The path that already exists.
        path: String,
    },
    /// A conditional operation named a version that is not the current one.
    #[error("bad version for {path}: expected {expected}, actual {actual}")]
    BadVersion {
        /// The znode.
        path: String,
        /// The version the request expected.
        expected: i32,
        /// The version the znode has.
        actual: i32,
    },
    /// A delete of a znode that still has children.
    #[error("not empty: {path}")]
    NotEmpty {
        /// The znode that has children.
        path: String,
    },
    /// A create under an ephemeral znode.
    #[error("ephemeral nodes may not have children: {path}")]
    NoChildrenForEphemerals {
        /// The ephemeral parent.
        path: String,
    },
    /// Malformed arguments: an invalid path, data over the size limit, a bad TTL.
    #[error("bad arguments: {reason}")]
    BadArguments {
        /// What was wrong, in a few words.
        reason: String,
    },
    /// An ACL list that is empty or malformed.
    #[error("invalid ACL")]
    InvalidAcl,
    /// The session does not exist (expired or closed).
    #[error("session expired: {session:#x}")]
    SessionExpired {
        /// The session.
        session: SessionId,
    },
    /// The session exists but the password does not match.
    #[error("authentication failed for session {session:#x}")]
    AuthFailed {
        /// The session.
        session: SessionId,
    },
    /// An op of a failed multi that was not applied because another op failed.
    #[error("rolled back: another operation of the transaction failed")]
    RolledBack,
    /// This node cannot reach a leader, or the write did not commit in time.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why (no leader, timeout, shutting down).
        reason: String,
    },
    /// This node is not the leader (forwarding layer only; callers retry elsewhere).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<u64>,
    },
    /// A membership request that cannot be done (unknown node, removing the last voter...).
    #[error("membership: {reason}")]
    Membership {
        /// Why.
        reason: String,
    },
    /// Local storage failed; the node cannot go on safely.
    #[error("storage: {reason}")]
    Storage {
        /// What failed, naming the file or tree.
        reason: String,
    },
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
