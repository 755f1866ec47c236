//! How this node answers its peers: openraft's RPCs go to Raft; forwarded writes, read
//! indexes and membership changes are served when this node leads (membership changes are
//! passed on to the leader otherwise); activity reports feed the session keeper.

use std::time::Instant;

use openraft::raft::AppendEntriesResponse;

use crate::network::message::{PeerRequest, PeerResponse};
use crate::network::server::PeerService;
use crate::Error;

use super::inner::unexpected;
use super::{lock, Inner};

impl PeerService for Inner {
    async fn handle(&self, req: PeerRequest) -> PeerResponse {
        match req {
            PeerRequest::AppendEntries(rpc) => {
                let reply = self.raft.append_entries(rpc).await;
                // Accepted as coming from the leader of this node's term (a conflict too):
                // a leader was heard.
                if let Ok(r) = &reply {
                    if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                        self.heard.record(Instant::now());
                    }
                }
                PeerResponse::AppendEntries(reply)
            }
            PeerRequest::Vote(rpc) => PeerResponse::Vote(self.raft.vote(rpc).await),
            PeerRequest::InstallSnapshot(rpc) => {
                let vote = rpc.vote;
                let reply = self.raft.install_snapshot(rpc).await;
                if matches!(&reply, Ok(r) if r.vote == vote) {
                    self.heard.record(Instant::now());
                }
                PeerResponse::InstallSnapshot(reply)
            }
            PeerRequest::Propose(p) => {
                let deadline = Instant::now() + self.config.write_timeout;
                let result = if self.is_leader() {
                    self.write_local(p, deadline).await
                } else {
                    Err(Error::NotLeader {
                        leader: self.raft.metrics().borrow().current_leader,
                    })
                };
                PeerResponse::Propose(result)
            }
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(self.read_index().await),
            PeerRequest::Touch(sessions) => {
                // A node that does not lead passes the activity on in its own next report.
                lock(&self.touched).extend(sessions);
                let contact = if self.is_leader() {
                    self.contact.age_ms()
                } else {
                    None
                };
                PeerResponse::Touched(contact)
            }
            PeerRequest::Membership(change) => {
                // Any member accepts a change (a learner joins through whichever it was
                // given); one that does not lead passes it on to the leader.
                let deadline = Instant::now() + self.config.write_timeout * 6;
                let result = match self.leader() {
                    Ok(None) => self.change_membership_here(change).await,
                    Ok(Some(addr)) => match self
                        .call(&addr, PeerRequest::Membership(change), deadline)
                        .await
                    {
                        Ok(PeerResponse::Membership(r)) => r,
                        Ok(other) => Err(unexpected(&other)),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                PeerResponse::Membership(result)
            }
            PeerRequest::Status => PeerResponse::Status(self.local_status()),
            PeerRequest::PreVote { last_log } => {
                PeerResponse::PreVote(super::election::grant(self, last_log))
            }
        }
    }
}
