//! quorumfs-ensemble: the replicated znode store.
//!
//! Layers, bottom up:
//! - [`tree`]: the pure, synchronous znode tree with ZooKeeper's semantics (Stat, versions,
//!   sequential names, ephemerals, containers, TTL nodes, multi). No I/O.
//! - `store`: openraft's log and state machine on sled.
//! - `network`: the peer transport (tokio TCP, length-delimited frames).
//! - `node`: [`start`] a replica and get a [`Handle`] to write, read, sync and watch.
//!
//! Nothing here knows about FUSE or the ZooKeeper wire protocol.
#![deny(missing_docs)]

pub mod error;
pub mod metrics;
pub mod network;
mod node;
pub mod session;
pub mod store;
pub mod tree;
pub mod types;

pub use error::{Error, Result};
pub use network::message::{LocalStatus, MembershipChange};
pub use node::{start, ClusterStatus, Handle, MemberStatus, NodeConfig};
pub use store::{ApplyEvent, ApplyListener};
pub use types::{Applied, NodeId};
