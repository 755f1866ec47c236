//! The ZooKeeper client port: the wire protocol (`proto`), one task per connection
//! (`connection`), request execution (`ops`), the watch table (`watches`) and the mapping
//! of ensemble errors to ZooKeeper codes (`error`). [`Server`] owns what connections share.

mod acl;
mod connection;
mod error;
mod ops;
pub(crate) mod proto;
mod sessions;
mod watches;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorumfs_ensemble::{ApplyEvent, Handle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use proto::FourLetterWord;
pub(crate) use watches::WatchLimits;
use watches::WatchTable;

/// State shared by every client connection of this node.
pub(crate) struct Server {
    node: Handle,
    tick: Duration,
    /// `--super-digest`: a digest that authenticates as ZooKeeper's super user.
    super_digest: Option<String>,
    watches: Arc<WatchTable>,
    /// The connection serving each session.
    sessions: sessions::SessionConnections,
    next_conn: AtomicU64,
    live: AtomicUsize,
    requests: AtomicU64,
    /// Sum, count and max of request latencies in µs (for `srvr`/`mntr`).
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
    started: Instant,
}

impl Server {
    /// Creates the client-port state and hooks the watch table into the replica's apply
    /// path.
    pub(crate) fn new(
        node: Handle,
        tick: Duration,
        super_digest: Option<String>,
        watch_limits: WatchLimits,
    ) -> Server {
        let watches = Arc::new(WatchTable::new(watch_limits));
        let table = watches.clone();
        node.add_listener(Box::new(move |_tree, event| {
            if let ApplyEvent::Changes { changes, .. } = event {
                for change in *changes {
                    table.fire(change, connection::notification);
                }
            }
        }));
        Server {
            node,
            tick,
            super_digest,
            watches,
            sessions: sessions::SessionConnections::default(),
            next_conn: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            latency_us_sum: AtomicU64::new(0),
            latency_us_max: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Accepts clients until `cancel` fires, then waits (bounded by the caller) for the
    /// connections to finish their current request.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener, cancel: CancellationToken) {
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let server = self.clone();
                        let cancel = cancel.clone();
                        tracker.spawn(async move {
                            server.live.fetch_add(1, Ordering::Relaxed);
                            connection::serve(server.clone(), stream, peer, cancel).await;
                            server.live.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "client accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Watches held by this node's connections.
    pub(crate) fn watch_count(&self) -> usize {
        self.watches.count()
    }

    /// Open client connections.
    pub(crate) fn connection_count(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn record_latency(&self, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        self.latency_us_sum.fetch_add(us, Ordering::Relaxed);
        self.latency_us_max.fetch_max(us, Ordering::Relaxed);
        metrics::histogram!("quorumfs_zk_request_seconds").record(elapsed.as_secs_f64());
    }

    /// ZooKeeper's negotiation: the client's wish clamped into [2, 20] ticks.
    fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let tick = self.tick.as_millis() as i32;
        requested_ms.clamp(2 * tick, 20 * tick)
    }

    async fn four_letter_word(&self, word: FourLetterWord) -> String {
        let status = self.node.local_status();
        let mode = match status.role.as_str() {
            "leader" => "leader",
            "learner" => "observer",
            _ => "follower",
        };
        let requests = self.requests.load(Ordering::Relaxed);
        let avg_ms = if requests == 0 {
            0.0
        } else {
            self.latency_us_sum.load(Ordering::Relaxed) as f64 / requests as f64 / 1000.0
        };
        let max_ms = self.latency_us_max.load(Ordering::Relaxed) as f64 / 1000.0;
        let version = concat!("3.8.0-quorumfs-", env!("CARGO_PKG_VERSION"));
        let zxid = self.node.last_zxid();
        // A node without a leader (a candidate, or cut off) is not serving: ZooKeeper answers
        // a LOOKING server's status words this way, and operators must not read it as a
        // healthy follower.
        let serving = status.role != "candidate"
            && self
                .node
                .leader_contact()
                .is_some_and(|age| age < Duration::from_secs(1));
        if !serving
            && !matches!(
                word,
                FourLetterWord::Ruok
                    | FourLetterWord::Isro
                    | FourLetterWord::Envi
                    | FourLetterWord::Conf
            )
        {
            return "This ZooKeeper instance is not currently serving requests\n".into();
        }
        match word {
            FourLetterWord::Ruok => "imok".into(),
            FourLetterWord::Isro => "rw".into(),
            FourLetterWord::Srvr | FourLetterWord::Stat => {
                let mut s = format!("Zookeeper version: {version}\n");
                if word == FourLetterWord::Stat {
                    s.push_str("Clients:\n\n");
                }
                s.push_str(&format!(
                    "Latency min/avg/max: 0/{avg_ms:.4}/{max_ms:.4}\nReceived: {requests}\nSent: {requests}\nConnections: {}\nOutstanding: 0\nZxid: {zxid:#x}\nMode: {mode}\nNode count: {}\n",
                    self.connection_count(),
                    status.znodes
                ));
                s
            }
            FourLetterWord::Mntr => {
                let mut s = String::new();
                let mut kv = |k: &str, v: String| s.push_str(&format!("zk_{k}\t{v}\n"));
                kv("version", version.into());
                kv("avg_latency", format!("{avg_ms:.4}"));
                kv("max_latency", format!("{max_ms:.4}"));
                kv("min_latency", "0".into());
                kv("packets_received", requests.to_string());
                kv("packets_sent", requests.to_string());
                kv("num_alive_connections", self.connection_count().to_string());
                kv("outstanding_requests", "0".into());
                kv("server_state", mode.into());
                kv("znode_count", status.znodes.to_string());
                kv("watch_count", self.watch_count().to_string());
                kv(
                    "ephemerals_count",
                    self.node
                        .read(|t| {
                            t.sessions()
                                .map(|(id, _)| t.ephemerals(id).len())
                                .sum::<usize>()
                        })
                        .to_string(),
                );
                kv("global_sessions", status.sessions.to_string());
                kv("last_zxid", zxid.to_string());
                kv("uptime", self.started.elapsed().as_millis().to_string());
                if status.role == "leader" {
                    let cluster = self.node.cluster_status().await;
                    let synced = cluster
                        .members
                        .iter()
                        .filter(|m| m.voter && m.lag.is_some_and(|l| l < 100))
                        .count();
                    kv(
                        "followers",
                        cluster.members.len().saturating_sub(1).to_string(),
                    );
                    kv("synced_followers", synced.saturating_sub(1).to_string());
                }
                s
            }
            FourLetterWord::Conf => {
                let cluster = self.node.cluster_status().await;
                let mut s = format!(
                    "serverId={}\ntickTime={}\n",
                    status.id,
                    self.tick.as_millis()
                );
                for m in &cluster.members {
                    let role = if m.voter { "participant" } else { "observer" };
                    s.push_str(&format!("server.{}={}:{role}\n", m.id, m.addr));
                }
                s
            }
            FourLetterWord::Envi => format!("Environment:\nzookeeper.version={version}\n"),
            FourLetterWord::Cons => format!("{} connections\n", self.connection_count()),
            FourLetterWord::Wchs => format!(
                "{} connections watching paths\nTotal watches:{}\n",
                self.connection_count(),
                self.watch_count()
            ),
            FourLetterWord::Dump => format!(
                "SessionTracker dump:\nglobal sessions: {}\n",
                status.sessions
            ),
        }
    }
}
