//! How a znode looks as a file: its [`FileAttr`] from Stat and file metadata, and its
//! read-only `user.zk.*` extended attributes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use quorumfs_ensemble::tree::{FileMeta, Stat};

/// `S_IFMT`, `S_IFDIR`, `S_IFREG`.
pub const S_IFMT: u32 = libc::S_IFMT;
/// Directory type bits.
pub const S_IFDIR: u32 = libc::S_IFDIR;
/// Regular file type bits.
pub const S_IFREG: u32 = libc::S_IFREG;

/// Permissions shown for znodes created through the client port (which have no mode).
const DEFAULT_FILE_PERM: u16 = 0o644;
const DEFAULT_DIR_PERM: u16 = 0o755;

/// Whether a znode is shown as a directory: made by mkdir, or with children.
pub fn is_dir(meta: &FileMeta, stat: &Stat) -> bool {
    meta.mode & S_IFMT == S_IFDIR || stat.num_children > 0
}

/// Whether new files in a directory with this mode are ephemeral (sticky bit).
pub fn makes_ephemerals(meta: &FileMeta) -> bool {
    meta.mode & libc::S_ISVTX != 0
}

/// Whether names created in a directory with this mode get a sequence suffix (setgid).
pub fn makes_sequentials(meta: &FileMeta) -> bool {
    meta.mode & libc::S_ISGID != 0
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The attributes of a znode given inode number `ino`.
pub fn file_attr(ino: u64, meta: &FileMeta, stat: &Stat) -> FileAttr {
    let dir = is_dir(meta, stat);
    let perm = if meta.mode != 0 {
        (meta.mode & 0o7777) as u16
    } else if dir {
        DEFAULT_DIR_PERM
    } else {
        DEFAULT_FILE_PERM
    };
    let size = if dir {
        0
    } else {
        u64::try_from(stat.data_length).unwrap_or(0)
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time(stat.mtime),
        mtime: time(stat.mtime),
        ctime: time(stat.mtime.max(stat.ctime)),
        crtime: time(stat.ctime),
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm,
        nlink: if dir { 2 } else { 1 },
        uid: meta.uid,
        gid: meta.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// The names of the Stat attributes, in `listxattr` order (`user.zk.name`, `user.zk.data`
/// and `user.zk.fence` come on top where they apply).
pub const STAT_XATTRS: [&str; 11] = [
    "user.zk.czxid",
    "user.zk.mzxid",
    "user.zk.pzxid",
    "user.zk.ctime",
    "user.zk.mtime",
    "user.zk.version",
    "user.zk.cversion",
    "user.zk.aversion",
    "user.zk.ephemeralOwner",
    "user.zk.dataLength",
    "user.zk.numChildren",
];

/// The value of a Stat attribute, as decimal text (ephemeralOwner in hex, as zkCli shows
/// it).
pub fn stat_xattr(name: &str, stat: &Stat) -> Option<String> {
    Some(match name {
        "user.zk.czxid" => stat.czxid.to_string(),
        "user.zk.mzxid" => stat.mzxid.to_string(),
        "user.zk.pzxid" => stat.pzxid.to_string(),
        "user.zk.ctime" => stat.ctime.to_string(),
        "user.zk.mtime" => stat.mtime.to_string(),
        "user.zk.version" => stat.version.to_string(),
        "user.zk.cversion" => stat.cversion.to_string(),
        "user.zk.aversion" => stat.aversion.to_string(),
        "user.zk.ephemeralOwner" => format!("0x{:x}", stat.ephemeral_owner),
        "user.zk.dataLength" => stat.data_length.to_string(),
        "user.zk.numChildren" => stat.num_children.to_string(),
        _ => return None,
    })
}
