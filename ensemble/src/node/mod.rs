//! A running replica: [`start`] opens storage, starts Raft, the peer server and the session
//! keeper, and returns a [`Handle`]. The handle is what the rest of quorumfs uses: write
//! (forwarded to the leader, answered after the local replica applied it), read locally,
//! sync (read index), follow applied changes, change membership, report status.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::network::client::PeerPool;
use crate::network::message::{LocalStatus, MembershipChange, PeerRequest, PeerResponse};
use crate::network::raft::RaftNetworkPool;
use crate::network::server::{self};
use crate::session::SessionTracker;
use crate::store::{ApplyListener, LogStore, Replica, StateMachineStore};
use crate::tree::{SessionId, Tree, TxnBody, TxnOutcome, Zxid};
use crate::types::typ::Raft;
use crate::types::{Applied, NodeId, Proposal};
use crate::{metrics, Error, Result};

mod contact;
mod election;
mod inner;
mod keeper;
mod peer;

use inner::{unavailable, unexpected};

/// How many entries a node may trail the leader's log by and still report itself healthy.
pub const CAUGHT_UP_SLACK: u64 = 1000;

/// How to run one replica.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (unique in the cluster, > 0).
    pub id: NodeId,
    /// Where the sled database lives.
    pub data_dir: PathBuf,
    /// Address to accept peer connections on.
    pub peer_listen: SocketAddr,
    /// Address peers use to reach this node (usually `peer_listen`).
    pub advertise: String,
    /// The initial voters, id to peer address. Empty for a learner that joins.
    pub members: BTreeMap<NodeId, String>,
    /// A member's peer address to join through as a learner.
    pub join: Option<String>,
    /// How long a write may wait for a leader and a commit before it fails.
    pub write_timeout: Duration,
    /// Entries between snapshots (the log before a snapshot is purged).
    pub snapshot_every: u64,
    /// Session keeper period: how often activity is reported and expiry checked.
    pub keeper_period: Duration,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout range (min, max).
    pub election_timeout: (Duration, Duration),
}

impl NodeConfig {
    /// A config with quorumfs's defaults for the given identity and addresses.
    pub fn new(id: NodeId, data_dir: PathBuf, peer_listen: SocketAddr) -> Self {
        NodeConfig {
            id,
            data_dir,
            peer_listen,
            advertise: peer_listen.to_string(),
            members: BTreeMap::new(),
            join: None,
            write_timeout: Duration::from_secs(5),
            snapshot_every: 10_000,
            keeper_period: Duration::from_millis(100),
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
        }
    }
}

/// The cluster as one node sees it, for `fsd status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: LocalStatus,
    /// Every member of the current membership, voters first.
    pub members: Vec<MemberStatus>,
}

/// One member as seen from the node that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: NodeId,
    /// Peer address.
    pub addr: String,
    /// Whether it votes.
    pub voter: bool,
    /// What the member says of itself; `None` if it did not answer.
    pub status: Option<LocalStatus>,
    /// Entries the member is behind the leader's log, when known.
    pub lag: Option<u64>,
}

struct Inner {
    config: NodeConfig,
    raft: Raft,
    replica: Arc<Replica>,
    pool: PeerPool,
    db: sled::Db,
    /// Sessions with activity on this node since the keeper last reported them.
    touched: Mutex<HashSet<SessionId>>,
    /// Expiry deadlines; meaningful only while this node leads.
    tracker: Mutex<SessionTracker>,
    /// When a leader with a quorum last confirmed it hears this node.
    contact: contact::Contact,
    /// When a leader's request was last accepted (the election gate reads it).
    heard: election::LeaderHeard,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// A cheap, cloneable handle on a running replica.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Opens `config.data_dir` and starts the replica.
///
/// # Errors
/// `Storage` when the data directory cannot be opened or is corrupt (the message names the
/// path), `Unavailable` when the peer address cannot be bound.
pub async fn start(config: NodeConfig) -> Result<Handle> {
    let store_dir = config.data_dir.join("store");
    std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::Storage {
        reason: format!("{}: {e}", config.data_dir.display()),
    })?;
    let db = open_sled(&store_dir)?;
    let log_store = LogStore::open(&db).map_err(|e| Error::Storage {
        reason: format!("{}: {e}", store_dir.display()),
    })?;
    let sm = StateMachineStore::open(&db).map_err(|reason| Error::Storage {
        reason: format!("{}: {reason}", store_dir.display()),
    })?;
    let replica = sm.replica();

    let raft_config = openraft::Config {
        cluster_name: "quorumfs".into(),
        heartbeat_interval: config.heartbeat.as_millis() as u64,
        election_timeout_min: config.election_timeout.0.as_millis() as u64,
        election_timeout_max: config.election_timeout.1.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: 1000,
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        install_snapshot_timeout: 10_000,
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate().map_err(|e| Error::BadArguments {
        reason: e.to_string(),
    })?);
    let pool = PeerPool::default();
    let listener = TcpListener::bind(config.peer_listen)
        .await
        .map_err(|e| Error::Unavailable {
            reason: format!("cannot listen on {}: {e}", config.peer_listen),
        })?;
    let raft = Raft::new(
        config.id,
        raft_config,
        RaftNetworkPool { pool: pool.clone() },
        log_store,
        sm,
    )
    .await
    .map_err(|e| Error::Storage {
        reason: format!("{}: {e}", store_dir.display()),
    })?;

    let inner = Arc::new(Inner {
        config,
        raft,
        replica,
        pool,
        db,
        touched: Mutex::default(),
        tracker: Mutex::default(),
        contact: contact::Contact::default(),
        heard: election::LeaderHeard::default(),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    inner.tasks.spawn(server::serve(
        listener,
        inner.clone(),
        inner.cancel.child_token(),
    ));

    let handle = Handle {
        inner: inner.clone(),
    };
    if !inner.config.members.is_empty() && inner.config.members.contains_key(&inner.config.id) {
        handle.initialize_once().await?;
    }
    if let Some(join) = inner.config.join.clone() {
        inner
            .tasks
            .spawn(keeper::join_as_learner(inner.clone(), join));
    }
    inner.tasks.spawn(keeper::keeper(inner.clone()));
    inner.tasks.spawn(election::gate(inner.clone()));
    Ok(handle)
}

/// Opens the sled database in `dir`. sled 0.34 panics on some kinds of corruption instead of
/// returning an error; both become a `Storage` error that names the directory.
fn open_sled(dir: &std::path::Path) -> Result<sled::Db> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(Error::Storage {
            reason: format!("{}: {e}", dir.display()),
        }),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unreadable");
            Err(Error::Storage {
                reason: format!("{}: corrupt database ({what})", dir.display()),
            })
        }
    }
}

impl Handle {
    /// Forms the cluster from the configured members, exactly once: a node that already has
    /// a log or a vote (restart, or another member initialised first) skips it. Every member
    /// proposing the same membership is safe (openraft's cluster formation).
    async fn initialize_once(&self) -> Result<()> {
        let inner = &self.inner;
        let initialized = inner.raft.is_initialized().await.map_err(unavailable)?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = inner
            .config
            .members
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        if let Err(e) = inner.raft.initialize(members).await {
            tracing::debug!(error = %e, "initialize skipped");
        }
        Ok(())
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.config.id
    }

    /// Runs `f` on the local replica's tree (a local, sequentially consistent read).
    pub fn read<R>(&self, f: impl FnOnce(&Tree) -> R) -> R {
        self.inner.replica.read(f)
    }

    /// The zxid of the last transaction applied locally.
    pub fn last_zxid(&self) -> Zxid {
        self.inner.replica.applied_index() as Zxid
    }

    /// Registers a listener for every change applied from now on.
    pub fn add_listener(&self, listener: ApplyListener) {
        self.inner.replica.add_listener(listener);
    }

    /// How long ago this node last confirmed, by a completed round trip, that a leader
    /// holding a quorum hears it (on the leader: that a quorum answered its heartbeat); `None`
    /// if it never has. While this stays below a session's timeout, the leader cannot have
    /// expired a session that is active here: its deadlines run from activity reports no
    /// older than this contact. Confirmed every keeper period, so about 100 ms is normal.
    pub fn leader_contact(&self) -> Option<Duration> {
        self.inner.contact.age()
    }

    /// Notes activity on `session`; the keeper reports it to the leader.
    pub fn touch(&self, session: SessionId) {
        lock(&self.inner.touched).insert(session);
    }

    /// Commits `body` on behalf of `session` and waits until this replica applied it.
    ///
    /// # Errors
    /// `Unavailable` when no leader commits it within the write timeout, or when the outcome
    /// is unknown (the leader was lost after the write was sent). Tree errors come back
    /// inside the returned outcome, not here.
    pub async fn propose(&self, session: SessionId, body: TxnBody) -> Result<Applied> {
        self.propose_tagged(session, body, 0).await
    }

    /// [`Handle::propose`] with a marker that apply listeners get with the changes (see
    /// [`ApplyEvent::Changes`](crate::ApplyEvent)).
    pub async fn propose_tagged(
        &self,
        session: SessionId,
        body: TxnBody,
        tag: u64,
    ) -> Result<Applied> {
        let started = Instant::now();
        let deadline = started + self.inner.config.write_timeout;
        let proposal = Proposal {
            time_ms: now_ms(),
            session,
            tag,
            body,
        };
        let applied = self.inner.with_leader(deadline, |inner, leader| {
            let proposal = proposal.clone();
            async move {
                match leader {
                    None => inner.write_local(proposal, deadline).await,
                    Some(addr) => match inner
                        .call(&addr, PeerRequest::Propose(proposal), deadline)
                        .await?
                    {
                        PeerResponse::Propose(r) => r,
                        other => Err(unexpected(&other)),
                    },
                }
            }
        });
        let applied = applied.await?;
        self.wait_applied(applied.zxid, deadline).await?;
        ::metrics::histogram!(metrics::PROPOSAL_SECONDS).record(started.elapsed().as_secs_f64());
        ::metrics::counter!(metrics::PROPOSALS).increment(1);
        Ok(applied)
    }

    /// Waits until every write committed before the call is applied locally (ZooKeeper's
    /// `sync`; a linearizable read follows). Returns the zxid waited for.
    pub async fn sync(&self) -> Result<Zxid> {
        let deadline = Instant::now() + self.inner.config.write_timeout;
        let index = self
            .inner
            .with_leader(deadline, |inner, leader| async move {
                match leader {
                    None => inner.read_index().await,
                    Some(addr) => {
                        match inner.call(&addr, PeerRequest::ReadIndex, deadline).await? {
                            PeerResponse::ReadIndex(r) => r,
                            other => Err(unexpected(&other)),
                        }
                    }
                }
            });
        let index = index.await? as Zxid;
        self.wait_applied(index, deadline).await?;
        Ok(index)
    }

    /// Waits until the local replica applied `zxid`.
    pub async fn wait_applied(&self, zxid: Zxid, deadline: Instant) -> Result<()> {
        let target = zxid.max(0) as u64;
        let mut rx = self.inner.replica.watch_applied();
        let wait = async move { rx.wait_for(|applied| *applied >= target).await.is_ok() };
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Unavailable {
                reason: "shutting down".into(),
            }),
            Err(_) => Err(Error::Unavailable {
                reason: "local replica did not catch up in time".into(),
            }),
        }
    }

    /// Opens a session and returns its id and password.
    pub async fn create_session(&self, timeout_ms: i32) -> Result<(SessionId, Vec<u8>)> {
        let session = loop {
            let id = rand::random::<i64>() & i64::MAX;
            if id != 0 && self.read(|t| t.session(id).is_none()) {
                break id;
            }
        };
        let password: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
        let body = TxnBody::CreateSession {
            session,
            timeout_ms,
            password: password.clone(),
        };
        self.propose(session, body).await?;
        self.touch(session);
        Ok((session, password))
    }

    /// Closes a session, deleting its ephemerals.
    pub async fn close_session(&self, session: SessionId) -> Result<()> {
        let applied = self
            .propose(session, TxnBody::CloseSession { session })
            .await?;
        match applied.outcome {
            Some(TxnOutcome::SessionClosed) | None => Ok(()),
            Some(other) => Err(Error::Unavailable {
                reason: format!("unexpected outcome {other:?}"),
            }),
        }
    }

    /// Applies a membership change (forwarded to the leader).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<()> {
        self.inner.change_membership(change).await
    }

    /// This node's own status.
    pub fn local_status(&self) -> LocalStatus {
        self.inner.local_status()
    }

    /// The cluster as this node sees it, asking every member for its own status.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let inner = &self.inner;
        let metrics = inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let leader_last = metrics.last_log_index.unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(500);
        let asks = membership.nodes().map(|(id, node)| {
            let (id, addr) = (*id, node.addr.clone());
            async move {
                let status = if id == inner.config.id {
                    Some(inner.local_status())
                } else {
                    match inner.call(&addr, PeerRequest::Status, deadline).await {
                        Ok(PeerResponse::Status(s)) => Some(s),
                        _ => None,
                    }
                };
                (id, addr, status)
            }
        });
        let answers = futures::future::join_all(asks).await;
        let mut members: Vec<MemberStatus> = answers
            .into_iter()
            .map(|(id, addr, status)| {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten());
                let lag = match (&metrics.replication, matched, &status) {
                    (Some(_), Some(m), _) => Some(leader_last.saturating_sub(m.index)),
                    (_, _, Some(s)) => Some(leader_last.saturating_sub(s.last_log_index)),
                    _ => None,
                };
                MemberStatus {
                    id,
                    addr,
                    voter: voters.contains(&id),
                    status,
                    lag,
                }
            })
            .collect();
        members.sort_by_key(|m| (!m.voter, m.id));
        ClusterStatus {
            node: inner.local_status(),
            members,
        }
    }

    /// Whether this node serves: it knows a leader, and its replica has applied all but at
    /// most [`CAUGHT_UP_SLACK`] of the entries in the leader's log (asked of the leader; a
    /// leader that does not answer makes the node unhealthy).
    pub async fn is_healthy(&self) -> bool {
        let inner = &self.inner;
        let m = inner.raft.metrics().borrow().clone();
        if m.running_state.is_err() {
            return false;
        }
        let applied = m.last_applied.map_or(0, |l| l.index);
        let leader_last = match inner.leader() {
            Ok(None) => m.last_log_index.unwrap_or(0),
            Ok(Some(addr)) => {
                let deadline = Instant::now() + Duration::from_millis(500);
                match inner.call(&addr, PeerRequest::Status, deadline).await {
                    Ok(PeerResponse::Status(s)) => s.last_log_index,
                    _ => return false,
                }
            }
            Err(_) => return false,
        };
        leader_last.saturating_sub(applied) <= CAUGHT_UP_SLACK
    }

    /// Stops the node: peer server, keeper, Raft, then flushes storage.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.cancel.cancel();
        if let Err(e) = inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        inner.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), inner.tasks.wait()).await;
        if let Err(e) = inner.db.flush_async().await {
            tracing::error!(error = %e, "flushing storage at shutdown failed");
        }
    }
}
