//! Inbound peer connections: accept, read frames, hand each request to the node's
//! [`PeerService`] on its own task, write the answers back. A frame that does not decode
//! closes that connection and nothing else.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec;
use super::message::{Envelope, PeerRequest, PeerResponse};

/// What answers peer requests (the node).
pub trait PeerService: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: PeerRequest) -> impl Future<Output = PeerResponse> + Send;
}

/// Accepts peer connections on `listener` until `cancel` fires.
pub async fn serve<S: PeerService>(
    listener: TcpListener,
    service: Arc<S>,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "peer connected");
                    tracker.spawn(serve_connection(stream, service.clone(), cancel.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracker.close();
}

async fn serve_connection<S: PeerService>(
    stream: TcpStream,
    service: Arc<S>,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let (read_half, write_half) = stream.into_split();
    let mut frames_in = codec::reader(read_half);
    let mut frames_out = codec::writer(write_half);
    let (replies_tx, mut replies_rx) = mpsc::unbounded_channel::<Envelope<PeerResponse>>();

    let writer = tokio::spawn(async move {
        while let Some(reply) = replies_rx.recv().await {
            if codec::send_queued(&mut frames_out, reply, &mut replies_rx)
                .await
                .is_err()
            {
                break;
            }
        }
    });

    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = frames_in.next() => frame,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!(?peer, error = %e, "bad peer frame; closing connection");
                break;
            }
            None => break,
        };
        let msg: Envelope<PeerRequest> = match codec::decode(&frame) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(?peer, error = %e, "undecodable peer message; closing connection");
                break;
            }
        };
        let service = service.clone();
        let replies = replies_tx.clone();
        tokio::spawn(async move {
            let body = service.handle(msg.body).await;
            let _ = replies.send(Envelope { id: msg.id, body });
        });
    }
    drop(replies_tx);
    writer.abort();
}
