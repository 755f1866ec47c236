//! openraft's type configuration for quorumfs, the log payload and its reply.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::tree::{SessionId, TxnBody, TxnOutcome, Zxid};

/// A Raft node id (ZooKeeper's server id).
pub type NodeId = u64;

/// What a log entry carries: one transaction as its proposer saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Proposer's wall clock, ms since the epoch.
    pub time_ms: i64,
    /// Session on whose behalf it runs (0: none).
    pub session: SessionId,
    /// The proposer's own marker, handed back to apply listeners with the changes (0:
    /// none). A mount uses it to tell the changes it already showed its kernel.
    pub tag: u64,
    /// What to do.
    pub body: TxnBody,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.body)
    }
}

/// What applying one log entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The zxid (log index) the entry committed at.
    pub zxid: Zxid,
    /// The transaction's outcome; `None` for Raft's own entries (blank, membership).
    pub outcome: Option<TxnOutcome>,
}

openraft::declare_raft_types!(
    /// quorumfs's Raft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Short aliases for openraft's generic types over [`TypeConfig`].
pub mod typ {
    use super::TypeConfig;

    /// The Raft instance.
    pub type Raft = openraft::Raft<TypeConfig>;
    /// A log id.
    pub type LogId = openraft::LogId<super::NodeId>;
    /// A vote.
    pub type Vote = openraft::Vote<super::NodeId>;
    /// A log entry.
    pub type Entry = openraft::Entry<TypeConfig>;
    /// Storage errors.
    pub type StorageError = openraft::StorageError<super::NodeId>;
    /// Stored membership.
    pub type StoredMembership = openraft::StoredMembership<super::NodeId, openraft::BasicNode>;
    /// Snapshot metadata.
    pub type SnapshotMeta = openraft::SnapshotMeta<super::NodeId, openraft::BasicNode>;
    /// A snapshot.
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    /// Raft's view of this node.
    pub type RaftMetrics = openraft::RaftMetrics<super::NodeId, openraft::BasicNode>;
}
