//! openraft's network traits over the peer transport: each Raft RPC is one call on the
//! target's multiplexed connection.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
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
use crate::types::{NodeId, TypeConfig};

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
        CallError::NoAnswer { .. } => RPCError::Network(NetworkError::new(&e)),
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
