//! Outbound peer connections: one multiplexed TCP connection per peer address, re-dialled on
//! demand. Many requests may be in flight on it at once (forwarded writes from 64 clients
//! must not queue behind each other); responses are matched to requests by envelope id.
//!
//! Requests are encoded by their caller, which refuses one larger than a frame may be
//! ([`CallError::TooLarge`]) instead of letting it break the connection for every call on it.
//! Encoded requests wait in a queue that the connection's writer drains; a caller that gives
//! up takes its request out of that queue if it has not been written yet. So a peer that stops
//! reading (SIGSTOP, a full socket) costs at most the requests whose callers still wait, not
//! every retry made meanwhile: openraft re-sends a timed-out AppendEntries every heartbeat, and
//! with an unbounded queue a stopped follower made the leader hold every copy (issue #9,
//! item 4).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

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
    /// The request was never sent: encoded, it is larger than a frame may be.
    #[error("request to peer {addr} not sent: {bytes} bytes is over the frame limit")]
    TooLarge {
        /// Peer address.
        addr: String,
        /// Its encoded size.
        bytes: usize,
    },
}

/// A live connection: requests waiting to be written, calls awaiting answers, and whether
/// the socket still works. Shared by the callers, the writer task and the reader task.
struct Connection {
    /// Encoded requests not yet handed to the socket, by envelope id.
    unsent: Mutex<VecDeque<(u64, Bytes)>>,
    /// Wakes the writer when `unsent` gains a request.
    wake: Notify,
    /// Calls awaiting their answer, by envelope id.
    pending: Mutex<HashMap<u64, oneshot::Sender<PeerResponse>>>,
    /// Cancelled when either half of the socket fails; both tasks then end.
    closed: CancellationToken,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.closed.is_cancelled()
    }

    /// Takes back a request whose caller gave up, if it is still queued.
    fn forget(&self, id: u64) {
        lock(&self.pending).remove(&id);
        lock(&self.unsent).retain(|(queued, _)| *queued != id);
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = codec::encode(&Envelope { id, body: req })
            .map_err(|e| self.unreachable(format!("cannot encode request: {e}")))?;
        if frame.len() > codec::MAX_FRAME {
            return Err(CallError::TooLarge {
                addr: self.addr.clone(),
                bytes: frame.len(),
            });
        }
        let conn = self.connection().await?;
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        if !conn.is_open() {
            conn.forget(id);
            return Err(self.unreachable("connection closed"));
        }
        lock(&conn.unsent).push_back((id, frame));
        conn.wake.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::NoAnswer {
                addr: self.addr.clone(),
                reason: "connection lost".into(),
            }),
            Err(_) => {
                conn.forget(id);
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
        let conn = spawn_connection(stream);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the writer and reader tasks of a fresh connection. Both end when either half of
/// the socket fails; calls still waiting then see their sender dropped, and queued requests
/// are dropped with the connection.
fn spawn_connection(stream: TcpStream) -> Arc<Connection> {
    let (read_half, write_half) = stream.into_split();
    let conn = Arc::new(Connection {
        unsent: Mutex::default(),
        wake: Notify::new(),
        pending: Mutex::default(),
        closed: CancellationToken::new(),
    });

    let mut frames_out = codec::writer(write_half);
    let writer = conn.clone();
    tokio::spawn(async move {
        'run: loop {
            tokio::select! {
                _ = writer.wake.notified() => {}
                _ = writer.closed.cancelled() => break,
            }
            // One request at a time off the queue, so that a request whose caller gives up
            // while the socket is full can still be taken back. Flushed once the queue is
            // empty: under load many frames share one write syscall.
            loop {
                let next = lock(&writer.unsent).pop_front();
                let Some((_, frame)) = next else { break };
                let fed = tokio::select! {
                    fed = frames_out.feed(frame) => fed,
                    _ = writer.closed.cancelled() => break 'run,
                };
                if fed.is_err() {
                    break 'run;
                }
            }
            let flushed = tokio::select! {
                flushed = SinkExt::<Bytes>::flush(&mut frames_out) => flushed,
                _ = writer.closed.cancelled() => break,
            };
            if flushed.is_err() {
                break;
            }
        }
        writer.closed.cancel();
        lock(&writer.unsent).clear();
        lock(&writer.pending).clear();
    });

    let mut frames_in = codec::reader(read_half);
    let reader = conn.clone();
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                frame = frames_in.next() => frame,
                _ = reader.closed.cancelled() => break,
            };
            let Some(Ok(frame)) = frame else { break };
            let Ok(msg) = codec::decode::<Envelope<PeerResponse>>(&frame) else {
                break;
            };
            if let Some(tx) = lock(&reader.pending).remove(&msg.id) {
                let _ = tx.send(msg.body);
            }
        }
        // Fail every call still waiting and stop the writer.
        reader.closed.cancel();
        lock(&reader.pending).clear();
    });

    conn
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
