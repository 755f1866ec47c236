//! Framing on the client port: every message in either direction is a 4-byte big-endian
//! length followed by that many bytes. The one exception is a four-letter admin word
//! (`ruok`, `stat`, ...), which a client sends as 4 raw bytes where the first length
//! would be; the server answers it in plain text and closes the connection.
//!
//! This module splits and builds frames; what is inside them belongs to `message`.

use bytes::{Buf, Bytes, BytesMut};

use super::jute::MAX_FIELD_LEN;
use super::ProtoError;

/// A sensible `max_len` for [`decode_frame`]: one maximal `buffer` (ZooKeeper's
/// `jute.maxbuffer` of 1 MiB plus slack) and room for the header, path and ACLs around it.
/// ZooKeeper itself refuses frames over 1 MiB, so no stock client depends on more.
pub(crate) const DEFAULT_MAX_FRAME_LEN: usize = MAX_FIELD_LEN + 64 * 1024;

/// Takes one complete frame off the front of `buf`, without its length prefix.
///
/// Returns `Ok(None)` while the frame is incomplete, having reserved room for the rest
/// (at most `max_len` bytes, since the length is checked first). A zero-length frame is
/// returned as empty bytes.
///
/// # Errors
/// [`ProtoError::NegativeFrameLength`] or [`ProtoError::FrameTooLarge`]; the stream cannot
/// be resynchronised after either, so the connection should be closed.
pub(crate) fn decode_frame(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<Bytes>, ProtoError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let len = usize::try_from(len).map_err(|_| ProtoError::NegativeFrameLength { len })?;
    if len > max_len {
        return Err(ProtoError::FrameTooLarge { len, max: max_len });
    }
    let total = 4 + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Appends one frame to `out`: a length placeholder, whatever `write_body` appends, then
/// the length patched in.
pub(crate) fn encode_frame(out: &mut BytesMut, write_body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write_body(out);
    let body_len = out.len() - start - 4;
    // Replies are bounded by the data the ensemble accepts, far below 2 GiB.
    debug_assert!(i32::try_from(body_len).is_ok(), "frame of {body_len} bytes");
    let len = i32::try_from(body_len).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A ZooKeeper four-letter admin command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FourLetterWord {
    /// Answers `imok` when the server is running.
    Ruok,
    /// Version, latency, mode and counts.
    Srvr,
    /// `srvr` plus the connected clients.
    Stat,
    /// Monitoring variables as `key<TAB>value` lines.
    Mntr,
    /// Serving configuration.
    Conf,
    /// `ro` in read-only mode, `rw` otherwise.
    Isro,
    /// Environment (version, host, java/OS details).
    Envi,
    /// Full details of every connection.
    Cons,
    /// Watch summary.
    Wchs,
    /// Sessions and their ephemerals.
    Dump,
}

impl FourLetterWord {
    /// Every command.
    pub(crate) const ALL: &'static [FourLetterWord] = &[
        FourLetterWord::Ruok,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Mntr,
        FourLetterWord::Conf,
        FourLetterWord::Isro,
        FourLetterWord::Envi,
        FourLetterWord::Cons,
        FourLetterWord::Wchs,
        FourLetterWord::Dump,
    ];

    /// The command as sent on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Conf => "conf",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Dump => "dump",
        }
    }
}

/// Recognises a four-letter word in the first 4 bytes of a connection (only the first 4
/// bytes of `first4` are looked at; fewer than 4 is `None`).
///
/// Safe to try before the first frame: each word, read as a length, is over 1.6 GB
/// (`'a'` is 0x61), far above any frame limit, so no real frame looks like one. Matching
/// is case-sensitive, as ZooKeeper's is.
pub(crate) fn four_letter_word(first4: &[u8]) -> Option<FourLetterWord> {
    let word = first4.get(..4)?;
    FourLetterWord::ALL
        .iter()
        .copied()
        .find(|w| w.as_str().as_bytes() == word)
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    #[test]
    fn waits_for_length_and_body() {
        let mut buf = BytesMut::new();
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        buf.put_slice(&[0, 0, 0]);
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        buf.put_u8(5);
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        buf.put_slice(b"abcd");
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        assert_eq!(buf.len(), 8, "an incomplete frame is left in place");
        buf.put_slice(b"e");
        assert_eq!(
            decode_frame(&mut buf, 100),
            Ok(Some(Bytes::from_static(b"abcde")))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn splits_back_to_back_frames() {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, |out| out.put_slice(b"one"));
        encode_frame(&mut buf, |_| {});
        encode_frame(&mut buf, |out| out.put_slice(b"three"));
        buf.put_slice(&[0, 0]); // the start of a fourth
        assert_eq!(
            decode_frame(&mut buf, 100),
            Ok(Some(Bytes::from_static(b"one")))
        );
        assert_eq!(decode_frame(&mut buf, 100), Ok(Some(Bytes::new())));
        assert_eq!(
            decode_frame(&mut buf, 100),
            Ok(Some(Bytes::from_static(b"three")))
        );
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn encode_frame_writes_big_endian_length() {
        let mut out = BytesMut::from(&b"prev"[..]);
        encode_frame(&mut out, |o| o.put_slice(&[7; 258]));
        assert_eq!(&out[..4], b"prev");
        assert_eq!(&out[4..8], &[0, 0, 1, 2]);
        assert_eq!(out.len(), 4 + 4 + 258);
    }

    #[test]
    fn negative_length_is_an_error() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
        assert_eq!(
            decode_frame(&mut buf, 100),
            Err(ProtoError::NegativeFrameLength { len: -1 })
        );
        let mut buf = BytesMut::from(&[0x80, 0, 0, 0][..]);
        assert_eq!(
            decode_frame(&mut buf, 100),
            Err(ProtoError::NegativeFrameLength { len: i32::MIN })
        );
    }

    #[test]
    fn oversized_length_is_an_error_before_any_body_arrives() {
        let mut buf = BytesMut::from(&[0, 0, 0, 101][..]);
        assert_eq!(
            decode_frame(&mut buf, 100),
            Err(ProtoError::FrameTooLarge { len: 101, max: 100 })
        );
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN),
            Err(ProtoError::FrameTooLarge { .. })
        ));
        assert!(
            buf.capacity() < 1024,
            "nothing reserved for a refused frame"
        );
        // Exactly max_len is accepted.
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert_eq!(decode_frame(&mut buf, 3).unwrap().unwrap().len(), 3);
    }

    #[test]
    fn four_letter_words_are_recognised() {
        for &w in FourLetterWord::ALL {
            assert_eq!(four_letter_word(w.as_str().as_bytes()), Some(w));
        }
        assert_eq!(four_letter_word(b"ruok\n"), Some(FourLetterWord::Ruok));
        assert_eq!(four_letter_word(b"RUOK"), None);
        assert_eq!(four_letter_word(b"ruo"), None);
        assert_eq!(four_letter_word(b"xxxx"), None);
        assert_eq!(four_letter_word(&[0, 0, 0, 45]), None);
    }

    #[test]
    fn four_letter_words_are_never_valid_frame_lengths() {
        for &w in FourLetterWord::ALL {
            let mut buf = BytesMut::from(w.as_str().as_bytes());
            assert!(matches!(
                decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN),
                Err(ProtoError::FrameTooLarge { .. })
            ));
        }
    }
}
