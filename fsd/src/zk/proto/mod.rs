//! The ZooKeeper client-port wire protocol (jute), as ZooKeeper 3.8/3.9 servers speak it.
//!
//! This module owns bytes only: framing, the jute encoding, the request and response
//! records, opcodes and the numeric constants (error codes, event types, states, create
//! modes). It knows nothing about sessions, the znode tree or the ensemble; the connection
//! layer (`zk::connection`, `zk::op`) maps between these wire types and the ensemble's.
//!
//! Layout:
//! - [`frame`]: 4-byte big-endian length-prefixed frames and four-letter-word detection.
//! - [`jute`]: the primitive reader/writer (`int`, `long`, `boolean`, `buffer`, `ustring`,
//!   `vector`) and the [`jute::Jute`] trait every record implements.
//! - [`records`]: one plain struct per jute record, fields in wire order.
//! - [`message`]: the [`message::Request`] enum decoded from a frame, the
//!   [`message::Response`] enum encoded into a reply, and the multi-op framing.
//! - [`opcode`]: request types and the special xids.
//! - [`codes`]: `KeeperException.Code`, watcher event types and states, create modes.
//!
//! A connection reads like this: detect a four-letter word on the first 4 bytes
//! ([`frame::four_letter_word`]); otherwise take frames with [`frame::decode_frame`]. The
//! first frame is a [`records::ConnectRequest`] (no request header), answered with
//! [`message::encode_connect_response`]. Every later frame starts with a
//! [`records::RequestHeader`], and [`message::decode_request`] turns the rest into a
//! [`message::Request`]; replies go out through [`message::encode_reply`] and watch
//! notifications through [`message::encode_notification`].
//!
//! Hostile input: every length is checked against the bytes that remain and a fixed
//! maximum before anything is allocated, and decoding never panics. Errors are
//! [`ProtoError`]s.

// The connection layer that calls this module lands separately; until then most of the API
// is only exercised by the tests below.
#![allow(dead_code)]

pub(crate) mod codes;
pub(crate) mod frame;
pub(crate) mod jute;
pub(crate) mod message;
pub(crate) mod opcode;
pub(crate) mod records;

// Re-exported so callers can write `proto::Request`; unused until the connection lands.
#[allow(unused_imports)]
pub(crate) use codes::{AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, WatcherType};
#[allow(unused_imports)]
pub(crate) use frame::{
    decode_frame, encode_frame, four_letter_word, FourLetterWord, DEFAULT_MAX_FRAME_LEN,
};
#[allow(unused_imports)]
pub(crate) use message::{
    decode_connect_request, decode_request, decode_response, encode_connect_request,
    encode_connect_response, encode_notification, encode_reply, encode_request, MultiOp,
    MultiOpResult, MultiReadOp, Request, Response,
};
#[allow(unused_imports)]
pub(crate) use opcode::OpCode;

/// Why bytes from the client port could not be decoded.
///
/// Framing errors ([`ProtoError::NegativeFrameLength`], [`ProtoError::FrameTooLarge`]) leave
/// the stream unsynchronised: close the connection. Errors inside a complete frame leave the
/// frame boundary intact; ZooKeeper answers those with `MarshallingError` for the request's
/// xid, and closing the connection is the conservative alternative.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtoError {
    /// A frame's length prefix is negative.
    #[error("frame length {len} is negative")]
    NegativeFrameLength { len: i32 },
    /// A frame's length prefix is larger than the connection accepts.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    /// The record ended before a field did.
    #[error("truncated {what}: needs {needed} bytes, {remaining} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// A `buffer`, `ustring` or `vector` length is negative and not the null marker -1.
    #[error("{what} has negative length {len}")]
    NegativeLength { what: &'static str, len: i32 },
    /// A `buffer` or `ustring` is longer than [`jute::MAX_FIELD_LEN`].
    #[error("{what} length {len} exceeds the limit of {max} bytes")]
    FieldTooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// A `vector` claims more elements than the remaining bytes can hold.
    #[error("vector of {count} elements cannot fit in the {remaining} bytes left")]
    VectorTooLong { count: usize, remaining: usize },
    /// A multi request holds an operation that kind of multi does not allow.
    #[error("operation type {op} is not allowed inside {within}")]
    InvalidMultiOp { within: &'static str, op: i32 },
    /// A numeric field holds a value this protocol version does not define.
    #[error("unknown {what} {value}")]
    UnknownValue { what: &'static str, value: i32 },
}
