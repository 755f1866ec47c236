//! Public value types of the tree: Stat, create modes, ACLs, operations, results, changes.
//! (The implementation of `Tree` lives in sibling modules.)

use serde::{Deserialize, Serialize};

/// A session id, as ZooKeeper's (a signed 64-bit number, never 0).
pub type SessionId = i64;
/// A transaction id: the Raft log index that committed the change.
pub type Zxid = i64;

/// Largest znode data, in bytes (ZooKeeper's default `jute.maxbuffer` is about 1 MiB).
pub const MAX_DATA_LEN: usize = 1024 * 1024;

/// ephemeralOwner value that marks a container (ZooKeeper's `EphemeralType.CONTAINER`).
pub const CONTAINER_OWNER: i64 = i64::MIN; // 0x8000_0000_0000_0000
/// ephemeralOwner high byte that marks a TTL node; the low 56 bits hold the TTL in ms
/// (ZooKeeper's `EphemeralType.TTL`, extended-types encoding).
pub const TTL_OWNER_MASK: i64 = 0xFF00_0000_0000_0000u64 as i64;
/// Largest TTL ZooKeeper accepts (2^40 - 1 ms).
pub const MAX_TTL_MS: i64 = (1 << 40) - 1;

/// ZooKeeper's Stat structure, field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stat {
    /// zxid of the create.
    pub czxid: Zxid,
    /// zxid of the last data change (equals czxid until the first setData).
    pub mzxid: Zxid,
    /// Creation time, ms since the epoch (proposer's clock).
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Number of data changes.
    pub version: i32,
    /// Number of changes to the children list (creates and deletes of children).
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owning session for ephemerals; [`CONTAINER_OWNER`] for containers; a TTL marker for
    /// TTL nodes; 0 otherwise.
    pub ephemeral_owner: i64,
    /// Length of the data.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// zxid of the last change to the children list (czxid until the first one).
    pub pzxid: Zxid,
}

/// How a znode is created (ZooKeeper's CreateMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateMode {
    /// An ordinary znode.
    Persistent,
    /// A persistent znode whose name gets the parent's sequence number appended.
    PersistentSequential,
    /// Deleted when its owning session ends.
    Ephemeral,
    /// Ephemeral and sequential.
    EphemeralSequential,
    /// Deleted by the reaper once it had children and has none left.
    Container,
    /// Deleted by the reaper when it has no children and was not modified for `ttl_ms`.
    PersistentWithTtl {
        /// The TTL in ms (1..=MAX_TTL_MS).
        ttl_ms: i64,
    },
    /// TTL and sequential.
    PersistentSequentialWithTtl {
        /// The TTL in ms (1..=MAX_TTL_MS).
        ttl_ms: i64,
    },
}

impl CreateMode {
    /// Whether the name gets a sequence suffix.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl { .. }
        )
    }
    /// Whether the znode is bound to its creator's session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }
}

/// One ACL entry. Ordered so that the tree can intern ACL lists in a sorted map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acl {
    /// Permission bits: READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16.
    pub perms: i32,
    /// Scheme (`world`, `digest`, `auth`, `ip`, `super`...).
    pub scheme: String,
    /// Id within the scheme (`anyone`, `user:base64hash`...).
    pub id: String,
}

impl Acl {
    /// `world:anyone` with all permissions (ZooKeeper's OPEN_ACL_UNSAFE).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }]
    }
}

/// One write operation, alone or inside a multi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create `path` (for sequential modes, the prefix the sequence number is appended to).
    Create {
        /// Path or sequential prefix.
        path: String,
        /// Initial data.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// ACL (must not be empty).
        acl: Vec<Acl>,
        /// Create mode.
        mode: CreateMode,
    },
    /// Delete `path` if `version` is -1 or equals its version.
    Delete {
        /// The znode.
        path: String,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// Replace the data if `version` is -1 or equals its version.
    SetData {
        /// The znode.
        path: String,
        /// New data.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// Fail the multi unless `path` exists with `version` (-1: any).
    Check {
        /// The znode.
        path: String,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// Replace the ACL if `version` is -1 or equals its aversion.
    SetAcl {
        /// The znode.
        path: String,
        /// New ACL.
        acl: Vec<Acl>,
        /// Expected aversion, -1 for any.
        version: i32,
    },
}

/// The result of one applied [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// Created: the real path (with the sequence suffix) and the new Stat.
    Created {
        /// Actual path.
        path: String,
        /// Stat of the new znode.
        stat: Stat,
    },
    /// Deleted.
    Deleted,
    /// Data replaced: the new Stat.
    DataSet {
        /// Stat after the change.
        stat: Stat,
    },
    /// Check passed.
    Checked,
    /// ACL replaced: the new Stat.
    AclSet {
        /// Stat after the change.
        stat: Stat,
    },
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnBody {
    /// Open a session.
    CreateSession {
        /// New session id (chosen by the proposer, never 0).
        session: SessionId,
        /// Negotiated timeout in ms.
        timeout_ms: i32,
        /// Password clients must present to re-attach.
        #[serde(with = "serde_bytes")]
        password: Vec<u8>,
    },
    /// Close a session (client request or expiry): deletes its ephemerals.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// The leader's verdict that a session expired, reached while it led in `term`: it
    /// closes the session only when its entry is committed in that same term. A leader that
    /// was deposed (isolated, or paused past a session timeout) judged on stale activity
    /// reports; should its verdict still reach the log under a newer leader, it changes
    /// nothing.
    ExpireSession {
        /// The session.
        session: SessionId,
        /// The term of the leadership that decided the expiry.
        term: u64,
    },
    /// One operation on behalf of `Txn::session`.
    Op(Op),
    /// All of these or none.
    Multi(Vec<Op>),
    /// A filesystem operation on behalf of a mount (see [`FsOp`]).
    Fs(FsOp),
}

/// A transaction as Raft orders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// The zxid this txn commits at.
    pub zxid: Zxid,
    /// The Raft term of the entry that carries it.
    pub term: u64,
    /// Proposer's wall clock, ms since the epoch: ctime/mtime of what it touches.
    pub time_ms: i64,
    /// The session on whose behalf the ops run (owner of ephemerals it creates); 0 for none.
    pub session: SessionId,
    /// What to do.
    pub body: TxnBody,
}

/// What a transaction produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// The session was created.
    SessionCreated,
    /// The session was closed (or did not exist: closing is idempotent).
    SessionClosed,
    /// A single op's result or error.
    Op(Result<OpResult, crate::Error>),
    /// A multi: every op's result, or the first failure (nothing was applied).
    Multi(Result<Vec<OpResult>, MultiFailure>),
    /// A filesystem operation's result or error.
    Fs(Result<FsResult, crate::Error>),
}

/// Why a multi failed: the index of the first failing op and its error. ZooKeeper reports
/// ops before it as OK (0), it with its code, and ops after it as RuntimeInconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiFailure {
    /// Index of the failing op.
    pub index: usize,
    /// Its error.
    pub error: crate::Error,
}

/// One visible change to the tree, in apply order. Watches and the mount consume these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A znode was created (its parent's children changed too).
    Created {
        /// Path of the new znode.
        path: String,
    },
    /// A znode was deleted (its parent's children changed too).
    Deleted {
        /// Path of the deleted znode.
        path: String,
    },
    /// A znode's data was replaced.
    DataChanged {
        /// The znode.
        path: String,
    },
    /// A znode's ACL was replaced.
    AclChanged {
        /// The znode.
        path: String,
    },
    /// A znode's file metadata (mode, owner) was replaced.
    MetaChanged {
        /// The znode.
        path: String,
    },
    /// A znode (with its subtree) moved from `from` to `to`. A znode it replaced at `to`
    /// is reported as [`Change::Deleted`] just before.
    Renamed {
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// A queued lock request was granted (immediate grants are only in the outcome).
    LockGranted {
        /// The locked path.
        path: String,
        /// The holder's session.
        session: SessionId,
        /// The holder's owner id within its session.
        owner: u64,
        /// The grant's fencing token.
        fence: u64,
    },
}

/// What a mount stores per znode beyond ZooKeeper's Stat: POSIX mode bits (file type
/// included) and owner. All zero for znodes created through the client port, which the
/// mount shows with default permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileMeta {
    /// `st_mode`, type bits included (`S_IFDIR` marks a directory made by mkdir); 0: unset.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// Filesystem operations, which ZooKeeper has no request for. Each runs on behalf of the
/// txn's session (a mount's host session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsOp {
    /// Create a znode as [`Op::Create`] does (open ACL) and record its file metadata.
    Create {
        /// Path or sequential prefix.
        path: String,
        /// Initial data.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Create mode.
        mode: CreateMode,
        /// File metadata.
        meta: FileMeta,
    },
    /// Replace a znode's file metadata.
    SetMeta {
        /// The znode.
        path: String,
        /// New metadata.
        meta: FileMeta,
    },
    /// Move a znode and its subtree, as rename(2): an existing `to` is replaced if it is a
    /// file, or an empty directory when `from` is a directory — unless `replace` is false
    /// (RENAME_NOREPLACE), when it is NodeExists.
    Rename {
        /// Old path.
        from: String,
        /// New path.
        to: String,
        /// Whether an existing `to` may be replaced.
        replace: bool,
    },
    /// Take a whole-file lock on `path` for (`Txn::session`, `owner`): shared or
    /// exclusive; when it is not free, queue (`wait`) or fail. Re-locking by the same
    /// holder converts its lock.
    Lock {
        /// The locked path (need not exist: a lock is a name).
        path: String,
        /// The holder's owner id within its session.
        owner: u64,
        /// Exclusive (write) or shared (read).
        exclusive: bool,
        /// Queue when not grantable now.
        wait: bool,
    },
    /// Release (`Txn::session`, `owner`)'s lock on `path`, or withdraw its queued request.
    Unlock {
        /// The locked path.
        path: String,
        /// The holder's owner id within its session.
        owner: u64,
    },
}

/// The result of an applied [`FsOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsResult {
    /// Created: the real path and the new Stat.
    Created {
        /// Actual path.
        path: String,
        /// Stat of the new znode.
        stat: Stat,
    },
    /// Metadata replaced.
    MetaSet,
    /// Renamed.
    Renamed,
    /// The lock is held, with this fencing token.
    Locked {
        /// Fencing token, increasing per path.
        fence: u64,
    },
    /// The request waits in line; a [`Change::LockGranted`] tells when it is granted.
    Queued,
    /// Not grantable now and the request did not ask to wait.
    WouldBlock,
    /// Released (or withdrawn; releasing what is not held is not an error).
    Unlocked,
}
