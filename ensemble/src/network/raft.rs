//! openraft's network traits over the peer transport: each Raft RPC is one call on the
//! target's multiplexed connection.
//!
//! AppendEntries is bounded by bytes as well as by openraft's `max_payload_entries` (300
//! entries, sized for ZooKeeper's typical small writes). Entries of up to 1 MiB (znode data)
//! would make 300 of them about 300 MiB, far over the 64 MiB frame limit; such a request
//! used to fail as a network error, and openraft re-sent the same batch forever, so a follower
//! that fell that far behind never caught up (issue #9, item 4). A request whose entries
//! encode to more than [`APPEND_BUDGET`] is refused here with openraft's `PayloadTooLarge`
//! and a hint of how many entries fit, and openraft sends that many instead.
//!
//! The budget is small because openraft gives an AppendEntries one heartbeat interval
//! (100 ms by default) to be sent, appended and flushed by the follower, and answered.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use std::sync::Arc;

use super::client::{CallError, PeerClient, PeerPool};
use super::message::{PeerRequest, PeerResponse};
use crate::types::typ::Entry;
use crate::types::{NodeId, TypeConfig};

/// Most bytes of encoded entries one AppendEntries carries (a single larger entry still goes
/// alone). Well under [`MAX_FRAME`](super::codec::MAX_FRAME).
pub const APPEND_BUDGET: u64 = 4 * 1024 * 1024;

/// How many of `entries`, from the first, fit in `budget` encoded bytes.
fn entries_within(entries: &[Entry], budget: u64) -> usize {
    let mut total = 0u64;
    for (n, entry) in entries.iter().enumerate() {
        total = total.saturating_add(bincode::serialized_size(entry).unwrap_or(u64::MAX));
        if total > budget {
            return n;
        }
    }
    entries.len()
}

/// Creates [`RaftPeer`]s for openraft.
pub struct RaftNetworkPool {
    /// Shared with the node's own forwarding.
    pub pool: PeerPool,
}

impl RaftNetworkFactory<TypeConfig> for RaftNetworkPool {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> RaftPeer {
        RaftPeer {
            target,
            client: self.pool.get(&node.addr),
        }
    }
}

/// openraft's view of one peer.
pub struct RaftPeer {
    target: NodeId,
    client: Arc<PeerClient>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

fn call_error<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::NoAnswer { .. } | CallError::TooLarge { .. } => {
            RPCError::Network(NetworkError::new(&e))
        }
    }
}

fn unexpected<E: std::error::Error>(what: &str) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
        "unexpected reply to {what}"
    ))))
}

impl RaftPeer {
    async fn call(&self, req: PeerRequest, option: &RPCOption) -> Result<PeerResponse, CallError> {
        let timeout = option.hard_ttl().max(Duration::from_millis(50));
        self.client.call(req, timeout).await
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let fit = entries_within(&rpc.entries, APPEND_BUDGET).max(1);
        if rpc.entries.len() > fit {
            tracing::trace!(
                target = self.target,
                entries = rpc.entries.len(),
                fit,
                "append_entries over the byte budget; asking openraft to split it"
            );
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit as u64),
            ));
        }
        match self
            .call(PeerRequest::AppendEntries(rpc), &option)
            .await
            .map_err(call_error)?
        {
            PeerResponse::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected("append_entries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self
            .call(PeerRequest::InstallSnapshot(rpc), &option)
            .await
            .map_err(call_error)?
        {
            PeerResponse::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected("install_snapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self
            .call(PeerRequest::Vote(rpc), &option)
            .await
            .map_err(call_error)?
        {
            PeerResponse::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected("vote")),
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;
    use crate::tree::{Acl, CreateMode, Op, TxnBody};
    use crate::types::Proposal;

    fn entry(index: u64, bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal {
                time_ms: 0,
                session: 0,
                tag: 0,
                body: TxnBody::Op(Op::Create {
                    path: format!("/n{index}"),
                    data: vec![7; bytes],
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Persistent,
                }),
            }),
        }
    }

    #[test]
    fn a_batch_of_large_entries_is_cut_to_the_budget() {
        // openraft's default batch: 300 entries; of 900 KiB each that is 264 MiB.
        let big: Vec<Entry> = (1..=300).map(|i| entry(i, 900 * 1024)).collect();
        let fit = entries_within(&big, APPEND_BUDGET);
        assert_eq!(fit, 4, "4 x 900 KiB fit in 4 MiB");
        let small: Vec<Entry> = (1..=300).map(|i| entry(i, 100)).collect();
        assert_eq!(entries_within(&small, APPEND_BUDGET), 300);
        // One entry larger than the budget still goes, alone.
        let huge = vec![entry(1, 5 * 1024 * 1024), entry(2, 10)];
        assert_eq!(entries_within(&huge, APPEND_BUDGET), 0);
        assert!(APPEND_BUDGET < super::super::codec::MAX_FRAME as u64 / 8);
    }
}
