//! One client connection: the four-letter-word shortcut, the session handshake (new session,
//! or re-attach with id and password), then requests in order, one at a time, replies and
//! watch notifications through one ordered outbox. Malformed bytes close this connection
//! only; a client that stops reading is closed when its outbox fills, and one that asks for
//! more watches than `--max-watches-per-connection` is closed at the request that would
//! pass the limit, without a reply.
//!
//! A connection never outlives what its client believes (ZooKeeper's rules):
//! - re-attaching a session first syncs with the leader, so a session that expired while this
//!   node was cut off or behind is answered "expired", never revived; without a leader the
//!   connection is closed and the client tries another server;
//! - when the session is closed (by the client through another connection, or expired by the
//!   leader) or re-attached through another connection of this node, this connection is
//!   closed; a request on a session that is gone is answered SessionExpired;
//! - when this node has not confirmed contact with a leader for half the session timeout
//!   ([`Handle::leader_contact`]), the connection is closed, so the client sees Disconnected
//!   (kazoo: SUSPENDED) at least half a timeout before the leader can expire its session and
//!   let someone else take its ephemerals and locks. The leader's expiry deadlines run from
//!   activity reports no older than that contact (see the ensemble's `contact` module).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quorumfs_ensemble::tree::SessionId;
use quorumfs_ensemble::Handle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::acl::{self, AuthId};
use super::ops::Outcome;
use super::proto::jute::Jute;
use super::proto::opcode::{PING_XID, SET_WATCHES_XID};
use super::proto::records::{ConnectResponse, RequestHeader, WatcherEvent};
use super::proto::{self, ErrorCode, EventType, KeeperState, ProtoError, Request};
use super::watches::{ConnId, Sink, WatchTable};
use super::Server;

/// Largest request frame: 1 MiB of data plus room for the path and ACLs.
const MAX_FRAME: usize = 1024 * 1024 + 64 * 1024;
/// Frames a connection may have queued before it counts as not reading.
const OUTBOX_FRAMES: usize = 4096;
/// How often a connection checks that its session still exists and that this node is in
/// contact with a leader.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The longest a connection with session timeout `timeout_ms` is served without confirmed
/// leader contact: half the timeout.
fn contact_limit(timeout_ms: i32) -> Duration {
    Duration::from_millis(timeout_ms.max(0) as u64 / 2)
}

/// Waits (up to a second) until this node's leader contact is younger than `limit`.
async fn await_contact(node: &Handle, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        if node.leader_contact().is_some_and(|age| age <= limit) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Why a connection must close now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MustClose {
    /// The session was closed or expired.
    SessionGone,
    /// This node lost contact with the leader for longer than the session can bear.
    NoLeader,
}

impl MustClose {
    fn reason(self) -> &'static str {
        match self {
            MustClose::SessionGone => "session closed or expired",
            MustClose::NoLeader => "no contact with a leader",
        }
    }
}

/// Whether a connection must close now, and why.
fn must_close(node: &Handle, session: SessionId, timeout_ms: i32) -> Option<MustClose> {
    if node.read(|t| t.session(session).is_none()) {
        return Some(MustClose::SessionGone);
    }
    match node.leader_contact() {
        Some(age) if age <= contact_limit(timeout_ms) => None,
        _ => Some(MustClose::NoLeader),
    }
}

/// What a request runs with: the node, the session it belongs to, this connection's watches
/// and the ids it has authenticated as.
pub(crate) struct Session {
    pub node: Handle,
    pub id: SessionId,
    pub conn: ConnId,
    pub watches: Arc<WatchTable>,
    /// `ip:<peer address>`, then whatever addAuth added. Per connection, as in ZooKeeper:
    /// a client re-authenticates after reconnecting.
    pub auth: Mutex<Vec<AuthId>>,
    /// The server's super-user digest (`user:base64hash`), if one is configured.
    pub super_digest: Option<String>,
}

/// Why a connection ended (logged at debug).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("peer closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Proto(#[from] ProtoError),
    #[error("{0}")]
    Refused(String),
}

pub(crate) async fn serve(
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let conn = server.next_conn_id();
    let result = run(&server, stream, peer, conn, cancel).await;
    server.watches.detach(conn);
    match result {
        Ok(()) | Err(End::Closed) => tracing::debug!(conn, %peer, "connection closed"),
        Err(e) => tracing::debug!(conn, %peer, error = %e, "connection ended"),
    }
}

/// Reads until `buf` holds a whole frame, and returns its body.
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
) -> Result<Bytes, End> {
    loop {
        if let Some(frame) = proto::decode_frame(buf, MAX_FRAME)? {
            return Ok(frame);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(End::Closed);
        }
    }
}

async fn run(
    server: &Arc<Server>,
    mut stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    cancel: CancellationToken,
) -> Result<(), End> {
    let mut buf = BytesMut::with_capacity(4096);
    while buf.len() < 4 {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(End::Closed);
        }
    }
    if let Some(word) = proto::four_letter_word(&buf[..4]) {
        let answer = server.four_letter_word(word).await;
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        return Ok(());
    }

    let mut first = read_frame(&mut stream, &mut buf).await?;
    let connect = proto::decode_connect_request(&mut first)?;
    let node = &server.node;
    let (session, timeout_ms, passwd) = if connect.session_id == 0 {
        let timeout = server.negotiate_timeout(connect.time_out);
        let (id, passwd) = node
            .create_session(timeout)
            .await
            .map_err(|e| End::Refused(format!("cannot create session: {e}")))?;
        (id, timeout, passwd)
    } else {
        if connect.last_zxid_seen > node.last_zxid() {
            // The client saw more than this replica holds: give it a moment to catch up,
            // else refuse so the client tries another server (ZooKeeper does the same).
            let deadline = Instant::now() + Duration::from_secs(2);
            if node
                .wait_applied(connect.last_zxid_seen, deadline)
                .await
                .is_err()
            {
                return Err(End::Refused(
                    "client has seen a newer zxid than this replica".into(),
                ));
            }
        }
        // The session table this replica holds may be stale (cut off, or behind): confirm
        // with the leader first, so an expired session is never revived here.
        if let Err(e) = node.sync().await {
            return Err(End::Refused(format!(
                "cannot confirm the session with a leader: {e}"
            )));
        }
        let known = node.read(|t| {
            t.session(connect.session_id)
                .map(|s| (s.timeout_ms, s.password.clone()))
        });
        match known {
            Some((timeout, password)) if password == connect.passwd => {
                node.touch(connect.session_id);
                (connect.session_id, timeout, password)
            }
            _ => {
                // Expired, unknown, or a wrong password: ZooKeeper answers with a zero
                // timeout, which the client reads as "session expired".
                let resp = ConnectResponse {
                    protocol_version: 0,
                    time_out: 0,
                    session_id: 0,
                    passwd: vec![0; 16],
                    read_only: connect.read_only.map(|_| false),
                };
                let mut out = BytesMut::new();
                proto::encode_connect_response(&resp, &mut out);
                stream.write_all(&out).await?;
                return Err(End::Refused("session expired or password mismatch".into()));
            }
        }
    };
    // Serve only while in contact with a leader (see the module doc); a node that has just
    // started confirms its first contact within a keeper period.
    if !await_contact(node, contact_limit(timeout_ms)).await {
        return Err(End::Refused("no contact with a leader".into()));
    }
    tracing::debug!(conn, %peer, session = format_args!("{session:#x}"), timeout_ms, "session established");
    let resp = ConnectResponse {
        protocol_version: 0,
        time_out: timeout_ms,
        session_id: session,
        passwd,
        read_only: connect.read_only.map(|_| false),
    };
    let mut out = BytesMut::new();
    proto::encode_connect_response(&resp, &mut out);

    let (mut reader, writer) = stream.into_split();
    let (outbox, inbox) = mpsc::channel::<Bytes>(OUTBOX_FRAMES);
    outbox
        .try_send(out.freeze())
        .map_err(|_| End::Refused("outbox".into()))?;
    let close = cancel.child_token();
    server.watches.attach(
        conn,
        Sink {
            outbox: outbox.clone(),
            close: close.clone(),
        },
    );
    let writer_task = tokio::spawn(write_loop(writer, inbox, close.clone()));
    // A session is served by one connection of this node at a time: the newest.
    server.sessions.attach(session, conn, close.clone());

    let ctx = Session {
        node: node.clone(),
        id: session,
        conn,
        watches: server.watches.clone(),
        auth: Mutex::new(acl::initial_ids(peer.ip())),
        super_digest: server.super_digest.clone(),
    };
    // The server closes a connection that stays silent for the whole session timeout.
    let idle = Duration::from_millis(timeout_ms.max(1) as u64);
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let mut check =
        tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        let frame = tokio::select! {
            _ = close.cancelled() => break Ok(()),
            _ = check.tick() => match must_close(node, session, timeout_ms) {
                Some(why) => {
                    tracing::info!(conn, %peer, session = format_args!("{session:#x}"), "closing client connection: {}", why.reason());
                    break Err(End::Refused(why.reason().into()));
                }
                None => continue,
            },
            // A deadline of its own: the check tick above restarts this read (it is
            // cancel-safe: bytes land in `buf`), never the idle clock.
            frame = tokio::time::timeout_at(idle_deadline, read_frame(&mut reader, &mut buf)) => match frame {
                Ok(frame) => {
                    idle_deadline = tokio::time::Instant::now() + idle;
                    frame
                }
                Err(_) => break Err(End::Refused("session timeout without traffic".into())),
            },
        };
        let mut frame = match frame {
            Ok(frame) => frame,
            Err(e) => break Err(e),
        };
        let header = match RequestHeader::read(&mut frame) {
            Ok(h) => h,
            Err(e) => break Err(e.into()),
        };
        let request = match proto::decode_request(&header, &mut frame) {
            Ok(r) => r,
            Err(e) => {
                // The frame boundary is intact: answer MarshallingError for this request and
                // keep the connection, as ZooKeeper does.
                tracing::debug!(conn, error = %e, "undecodable request");
                let mut out = BytesMut::new();
                proto::encode_reply(
                    header.xid,
                    node.last_zxid(),
                    ErrorCode::MarshallingError,
                    None,
                    &mut out,
                );
                if !queue(&outbox, out, &close).await {
                    break Err(End::Closed);
                }
                continue;
            }
        };
        if let Some(why) = must_close(node, session, timeout_ms) {
            // Nothing more is served: a gone session is told so; without a leader the
            // client is left to find another server.
            if why == MustClose::SessionGone {
                let mut out = BytesMut::new();
                proto::encode_reply(
                    header.xid,
                    node.last_zxid(),
                    ErrorCode::SessionExpired,
                    None,
                    &mut out,
                );
                let _ = queue(&outbox, out, &close).await;
            }
            break Err(End::Refused(why.reason().into()));
        }
        node.touch(session);
        server.count_request();
        let started = Instant::now();
        let closing = matches!(request, Request::CloseSession);
        // ZooKeeper answers addAuth with zxid 0.
        let is_auth = matches!(request, Request::Auth(_));
        let outcome = ctx.execute(request).await;
        server.record_latency(started.elapsed());
        let zxid = if is_auth { 0 } else { node.last_zxid() };
        let mut out = BytesMut::new();
        let close_after = match outcome {
            Outcome::Reply(err, body) => {
                let xid = if header.xid == PING_XID {
                    PING_XID
                } else {
                    header.xid
                };
                proto::encode_reply(xid, zxid, err, body.as_ref(), &mut out);
                false
            }
            Outcome::ReplyThenEvents(events) => {
                proto::encode_reply(
                    SET_WATCHES_XID.max(header.xid.min(SET_WATCHES_XID)),
                    zxid,
                    ErrorCode::Ok,
                    None,
                    &mut out,
                );
                for (event, path) in events {
                    out.extend_from_slice(&notification(event, &path));
                }
                false
            }
            Outcome::ReplyAndClose(err) => {
                proto::encode_reply(header.xid, zxid, err, None, &mut out);
                true
            }
            Outcome::CloseOverWatchLimit(e) => {
                tracing::warn!(
                    conn,
                    %peer,
                    session = format_args!("{session:#x}"),
                    "closing a connection that asked for too many watches: {e}"
                );
                break Err(End::Refused(e.to_string()));
            }
        };
        if !queue(&outbox, out, &close).await {
            break Err(End::Closed);
        }
        if close_after || closing {
            break Ok(());
        }
    };
    // Let the writer flush what is queued (the closeSession reply above all), then stop it.
    drop(outbox);
    server.watches.detach(conn);
    server.sessions.detach(session, conn);
    // A writer stuck on a client that does not read is not waited for any longer.
    let mut writer_task = writer_task;
    if tokio::time::timeout(Duration::from_secs(1), &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    result
}

/// Queues a reply behind earlier replies and notifications. Waits while the outbox is full
/// (the client is slow to read), but not past the connection being closed; `false` when it
/// was.
async fn queue(outbox: &mpsc::Sender<Bytes>, frame: BytesMut, close: &CancellationToken) -> bool {
    tokio::select! {
        _ = close.cancelled() => false,
        sent = outbox.send(frame.freeze()) => sent.is_ok(),
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut inbox: mpsc::Receiver<Bytes>,
    close: CancellationToken,
) {
    let mut batch = BytesMut::new();
    loop {
        let first = tokio::select! {
            _ = close.cancelled() => break,
            frame = inbox.recv() => frame,
        };
        let Some(first) = first else { break };
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < 256 * 1024 {
            match inbox.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() {
            close.cancel();
            break;
        }
    }
    let _ = writer.shutdown().await;
}

/// Encodes one watch notification frame (the watch table's encoder). ZooKeeper 3.8/3.9
/// send notifications with zxid -1.
pub(crate) fn notification(event: EventType, path: &str) -> Bytes {
    let mut out = BytesMut::new();
    let ev = WatcherEvent::new(event, KeeperState::SyncConnected, path);
    proto::encode_notification(-1, &ev, &mut out);
    out.freeze()
}
