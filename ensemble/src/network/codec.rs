//! Framing for peer connections: a 4-byte length prefix (tokio-util's length-delimited codec)
//! around a bincode [`Envelope`](super::message::Envelope). Anything that does not decode
//! closes the connection that sent it, never the node.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Largest frame accepted: snapshot chunks are well below this.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Frames read from `io`.
pub fn reader<R: AsyncRead>(io: R) -> FramedRead<R, LengthDelimitedCodec> {
    FramedRead::new(io, codec())
}

/// Frames written to `io`.
pub fn writer<W: AsyncWrite>(io: W) -> FramedWrite<W, LengthDelimitedCodec> {
    FramedWrite::new(io, codec())
}

/// Writes `first` and whatever else is already queued in `queue`, then flushes once: under
/// load many frames share one write syscall.
pub async fn send_queued<W, T>(
    out: &mut FramedWrite<W, LengthDelimitedCodec>,
    first: T,
    queue: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
) -> Result<(), std::io::Error>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    use futures::SinkExt;
    let mut next = Some(first);
    let mut queued = 0;
    while let Some(msg) = next {
        let bytes = encode(&msg).map_err(std::io::Error::other)?;
        out.feed(bytes).await?;
        queued += 1;
        next = if queued < 256 {
            queue.try_recv().ok()
        } else {
            None
        };
    }
    SinkExt::<Bytes>::flush(out).await
}

/// Encodes a message for one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Bytes, bincode::Error> {
    bincode::serialize(msg).map(Bytes::from)
}

/// Decodes one frame, refusing trailing garbage and absurd lengths.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, bincode::Error> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(MAX_FRAME as u64)
        .deserialize(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::message::{Envelope, PeerRequest};

    #[test]
    fn round_trip() {
        let msg = Envelope {
            id: 7,
            body: PeerRequest::Touch(vec![1, 2, 3]),
        };
        let bytes = encode(&msg).unwrap();
        let back: Envelope<PeerRequest> = decode(&bytes).unwrap();
        assert_eq!(back.id, 7);
        assert!(matches!(back.body, PeerRequest::Touch(v) if v == vec![1, 2, 3]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode::<Envelope<PeerRequest>>(&junk);
        }
        // A claimed vector length far beyond the frame must not allocate it.
        let mut huge = vec![0u8; 8];
        huge.extend_from_slice(&5u32.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Envelope<PeerRequest>>(&huge).is_err());
    }
}
