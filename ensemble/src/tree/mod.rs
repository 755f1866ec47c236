//! The znode tree: ZooKeeper's data model as a pure, synchronous, deterministic structure.
//!
//! It owns znodes, their [`Stat`], ACLs, the sessions table and the ephemerals each session
//! owns. Every change arrives as a [`Txn`] (already ordered by Raft, carrying its zxid and
//! the proposer's clock) and is applied all-or-nothing; applying the same txns in the same
//! order on every replica gives the same tree. It does no I/O and knows nothing of Raft,
//! FUSE or wire protocols; replication and persistence are the `store` module's business.

mod acl_table;
mod apply;
mod data_tree;
mod fs_apply;
mod locks;
mod model;
mod path;

pub use data_tree::{SessionInfo, Tree};
pub use locks::{Hold, Holder, LockState};
pub use model::*;
pub use path::{validate_path, SPECIAL_PATHS};
