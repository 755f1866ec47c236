//! The peer transport: tokio TCP with length-delimited bincode frames, multiplexed, carrying
//! openraft's RPCs and quorumfs's own peer requests. `client` dials out, `server` accepts,
//! `raft` adapts them to openraft's network traits.

pub mod client;
pub mod codec;
pub mod message;
pub mod raft;
pub mod server;
