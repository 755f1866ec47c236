//! The messages peers exchange: openraft's RPCs plus quorumfs's own (forwarded writes, read
//! index, session keep-alives, membership changes, status).

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::tree::SessionId;
use crate::types::{Applied, NodeId, Proposal, TypeConfig};
use crate::Error;

/// A membership change, as `fsd members` asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a node as a learner (it replicates but does not vote).
    AddLearner {
        /// The node's id.
        id: NodeId,
        /// Its peer address.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The node's id.
        id: NodeId,
    },
    /// Remove a node (voter or learner).
    Remove {
        /// The node's id.
        id: NodeId,
    },
}

/// What one node reports about itself to peers assembling a cluster status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStatus {
    /// Node id.
    pub id: NodeId,
    /// "leader", "follower", "candidate" or "learner".
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Leader this node knows of.
    pub leader: Option<NodeId>,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Number of znodes.
    pub znodes: u64,
    /// Number of sessions.
    pub sessions: u64,
}

/// A request from one peer to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft: append entries / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: request a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: one chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write forwarded to the leader.
    Propose(Proposal),
    /// Ask the leader for a read index (linearizable reads on followers).
    ReadIndex,
    /// Sessions that showed activity on the sender since its last report.
    Touch(Vec<SessionId>),
    /// A membership change, to be done by the leader.
    Membership(MembershipChange),
    /// The receiver's own status.
    Status,
    /// Pre-vote: would the receiver vote for a voter whose last log id is `last_log`? (See
    /// the node's `election` module.)
    PreVote {
        /// The asker's last log id.
        last_log: Option<crate::types::typ::LogId>,
    },
}

/// The reply to a [`PeerRequest`] of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Reply to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Reply to Vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Reply to InstallSnapshot.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Reply to Propose: the applied result on the leader.
    Propose(Result<Applied, Error>),
    /// Reply to ReadIndex: the index to wait for.
    ReadIndex(Result<u64, Error>),
    /// Reply to Touch: when the receiver leads, how many ms ago it last confirmed that a
    /// quorum hears it; `None` when it does not lead (the report reached no leader).
    Touched(Option<u64>),
    /// Reply to Membership.
    Membership(Result<(), Error>),
    /// Reply to Status.
    Status(LocalStatus),
    /// Reply to PreVote.
    PreVote(bool),
}

/// One frame on a peer connection: a request or response tagged with the caller's id.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Matches a response to its request on a multiplexed connection.
    pub id: u64,
    /// The message.
    pub body: T,
}
