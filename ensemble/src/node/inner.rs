//! The node's internals that talk to the leader: finding it, forwarding writes, read
//! indexes and membership changes to it with retries, committing locally when this node
//! leads, and reporting this node's own status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};

use crate::network::client::CallError;
use crate::network::message::{LocalStatus, MembershipChange, PeerRequest, PeerResponse};
use crate::types::{Applied, NodeId, Proposal};
use crate::{Error, Result};

use super::Inner;

pub(super) fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        reason: e.to_string(),
    }
}

pub(super) fn unexpected(resp: &PeerResponse) -> Error {
    Error::Unavailable {
        reason: format!("unexpected peer reply {resp:?}"),
    }
}

pub(super) fn client_write_error(
    e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => Error::Membership {
            reason: c.to_string(),
        },
        RaftError::Fatal(f) => Error::Unavailable {
            reason: f.to_string(),
        },
    }
}

impl Inner {
    /// The leader's peer address, `None` if this node leads; `Err(NotLeader)` if unknown.
    pub(super) fn leader(&self) -> Result<Option<String>> {
        let metrics = self.raft.metrics().borrow().clone();
        match metrics.current_leader {
            Some(id) if id == self.config.id => Ok(None),
            Some(id) => match metrics.membership_config.membership().get_node(&id) {
                Some(node) => Ok(Some(node.addr.clone())),
                None => Err(Error::NotLeader { leader: Some(id) }),
            },
            None => Err(Error::NotLeader { leader: None }),
        }
    }

    pub(super) fn is_leader(&self) -> bool {
        matches!(self.leader(), Ok(None))
    }

    /// Runs `op` against the current leader, retrying while there is none or it moved, until
    /// `deadline`. `op` gets `None` when this node is the leader, else the leader's address.
    pub(super) async fn with_leader<T, F, Fut>(
        self: &Arc<Self>,
        deadline: Instant,
        op: F,
    ) -> Result<T>
    where
        F: Fn(Arc<Inner>, Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        loop {
            let attempt = match self.leader() {
                Ok(leader) => op(self.clone(), leader).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(Error::NotLeader { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Error::NotLeader { .. }) => {
                    return Err(Error::Unavailable {
                        reason: format!("no leader within {:?}", self.config.write_timeout),
                    })
                }
                other => return other,
            }
        }
    }

    /// Sends `req` to a peer. A request that was never sent reads as `NotLeader` so the
    /// caller retries; one that may have been applied reads as `Unavailable`.
    pub(super) async fn call(
        &self,
        addr: &str,
        req: PeerRequest,
        deadline: Instant,
    ) -> Result<PeerResponse> {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        match self.pool.get(addr).call(req, timeout).await {
            Ok(resp) => Ok(resp),
            Err(CallError::Unreachable { .. }) => Err(Error::NotLeader { leader: None }),
            Err(e @ CallError::NoAnswer { .. }) => Err(Error::Unavailable {
                reason: e.to_string(),
            }),
            Err(e @ CallError::TooLarge { .. }) => Err(Error::BadArguments {
                reason: e.to_string(),
            }),
        }
    }

    pub(super) async fn write_local(
        &self,
        proposal: Proposal,
        deadline: Instant,
    ) -> Result<Applied> {
        match tokio::time::timeout_at(deadline.into(), self.raft.client_write(proposal)).await {
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(client_write_error(e)),
            Err(_) => Err(Error::Unavailable {
                reason: "write not committed in time (no quorum?)".into(),
            }),
        }
    }

    pub(super) async fn read_index(&self) -> Result<u64> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(e)) => match e {
                openraft::error::CheckIsLeaderError::ForwardToLeader(f) => Err(Error::NotLeader {
                    leader: f.leader_id,
                }),
                openraft::error::CheckIsLeaderError::QuorumNotEnough(q) => {
                    Err(Error::Unavailable {
                        reason: q.to_string(),
                    })
                }
            },
            Err(RaftError::Fatal(f)) => Err(Error::Unavailable {
                reason: f.to_string(),
            }),
        }
    }

    pub(super) async fn change_membership(
        self: &Arc<Self>,
        change: MembershipChange,
    ) -> Result<()> {
        let deadline = Instant::now() + self.config.write_timeout * 6;
        self.with_leader(deadline, |inner, leader| {
            let change = change.clone();
            async move {
                match leader {
                    Some(addr) => match inner
                        .call(&addr, PeerRequest::Membership(change), deadline)
                        .await?
                    {
                        PeerResponse::Membership(r) => r,
                        other => Err(unexpected(&other)),
                    },
                    None => inner.change_membership_here(change).await,
                }
            }
        })
        .await
    }

    pub(super) async fn change_membership_here(&self, change: MembershipChange) -> Result<()> {
        let membership = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let known = |id: &NodeId| membership.get_node(id).is_some();
        let result = match change {
            MembershipChange::AddLearner { id, addr } => {
                if let Some(node) = membership.get_node(&id) {
                    if node.addr == addr {
                        return Ok(()); // already a member at that address: joining again is fine
                    }
                    return Err(Error::Membership {
                        reason: format!("node {id} is already a member at {}", node.addr),
                    });
                }
                self.raft.add_learner(id, BasicNode { addr }, false).await
            }
            MembershipChange::Promote { id } => {
                if !known(&id) {
                    return Err(Error::Membership {
                        reason: format!("node {id} is not a member"),
                    });
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
                    .await
            }
            MembershipChange::Remove { id } => {
                if !known(&id) {
                    return Err(Error::Membership {
                        reason: format!("node {id} is not a member"),
                    });
                }
                let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
                if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(Error::Membership {
                            reason: "cannot remove the last voter".into(),
                        });
                    }
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters([id].into()), false)
                        .await
                } else {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes([id].into()), false)
                        .await
                }
            }
        };
        result.map(|_| ()).map_err(client_write_error)
    }

    pub(super) fn local_status(&self) -> LocalStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let (znodes, sessions) = self
            .replica
            .read(|t| (t.znode_count() as u64, t.sessions().count() as u64));
        LocalStatus {
            id: self.config.id,
            role: role.into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            znodes,
            sessions,
        }
    }
}
