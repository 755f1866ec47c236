//! Outbound peer connections: one multiplexed TCP connection per peer address, re-dialled on
//! demand. Many requests may be in flight on it at once (forwarded writes from 64 clients
//! must not queue behind each other); responses are matched to requests by envelope id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::codec;
use super::message::{Envelope, PeerRequest, PeerResponse};

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request was never sent: the peer could not be reached.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The request may have been sent, but no answer came (connection lost or timeout).
    #[error("no answer from peer {addr}: {reason}")]
    NoAnswer {
        /// Peer address.
        addr: String,
        /// Why.
        reason: String,
    },
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<PeerResponse>>>>;

/// A live connection: a queue into its writer task and the table of calls awaiting answers.
struct Connection {
    outbox: mpsc::UnboundedSender<Envelope<PeerRequest>>,
    pending: Pending,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.outbox.is_closed()
    }
}

/// A client for one peer address.
pub struct PeerClient {
    addr: String,
    next_id: AtomicU64,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

impl PeerClient {
    /// A client for `addr`; it connects on first use.
    pub fn new(addr: String) -> Self {
        PeerClient {
            addr,
            next_id: AtomicU64::new(1),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends `req` and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        req: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, CallError> {
        let conn = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        if conn.outbox.send(Envelope { id, body: req }).is_err() {
            lock(&conn.pending).remove(&id);
            return Err(self.unreachable("connection closed"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::NoAnswer {
                addr: self.addr.clone(),
                reason: "connection lost".into(),
            }),
            Err(_) => {
                lock(&conn.pending).remove(&id);
                Err(CallError::NoAnswer {
                    addr: self.addr.clone(),
                    reason: format!("timed out after {timeout:?}"),
                })
            }
        }
    }

    fn unreachable(&self, reason: impl Into<String>) -> CallError {
        CallError::Unreachable {
            addr: self.addr.clone(),
            reason: reason.into(),
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, CallError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| self.unreachable("connect timed out"))?
            .map_err(|e| self.unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(spawn_connection(stream));
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the writer and reader tasks of a fresh connection. Both end when the socket fails
/// or the last [`Connection`] handle is dropped; pending calls then see their sender dropped.
fn spawn_connection(stream: TcpStream) -> Connection {
    let (read_half, write_half) = stream.into_split();
    let (outbox, mut inbox) = mpsc::unbounded_channel::<Envelope<PeerRequest>>();
    let pending: Pending = Arc::default();

    let mut frames_out = codec::writer(write_half);
    let (closed_tx, mut closed_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = inbox.recv() => {
                    let Some(msg) = msg else { break };
                    if codec::send_queued(&mut frames_out, msg, &mut inbox).await.is_err() { break; }
                }
                _ = &mut closed_rx => break,
            }
        }
    });

    let mut frames_in = codec::reader(read_half);
    let reader_pending = pending.clone();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = frames_in.next().await {
            let Ok(msg) = codec::decode::<Envelope<PeerResponse>>(&frame) else {
                break;
            };
            if let Some(tx) = lock(&reader_pending).remove(&msg.id) {
                let _ = tx.send(msg.body);
            }
        }
        // Fail every call still waiting and stop the writer.
        lock(&reader_pending).clear();
        let _ = closed_tx.send(());
    });

    Connection { outbox, pending }
}

/// Clients for every peer address this node talks to, created on first use.
#[derive(Clone, Default)]
pub struct PeerPool {
    clients: Arc<Mutex<HashMap<String, Arc<PeerClient>>>>,
}

impl PeerPool {
    /// The client for `addr`.
    pub fn get(&self, addr: &str) -> Arc<PeerClient> {
        lock(&self.clients)
            .entry(addr.to_string())
            .or_insert_with(|| Arc::new(PeerClient::new(addr.to_string())))
            .clone()
    }
}
