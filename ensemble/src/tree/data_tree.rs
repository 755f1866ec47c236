//! [`Tree`]: the znode store (ZooKeeper's `DataTree`) and every read on it.
//!
//! It owns the znodes, the sessions table and the indexes derived from znodes (ephemerals
//! per session, containers, TTL nodes), and keeps those indexes right as znodes come and
//! go. How transactions change it, with ZooKeeper's checks, lives in `apply.rs`; path rules
//! in `path.rs`; ACL interning in `acl_table.rs`.
//!
//! Storage is one ordered map from a storage key (the path with its last `/` replaced by
//! NUL, see `path::key`) to a compact znode: a [`Stat`], a sequence counter, an interned
//! ACL id and the data.
//! The key keeps each znode's children in one contiguous range in name order, so there is
//! no per-znode children set: lookups are O(log n), listing children is O(log n + k), and a
//! znode costs its path, its data and about 100 bytes of map entry.
//!
//! The map is persistent (`imbl::OrdMap`, a B-tree of shared nodes): a clone is O(1) and
//! a change after one copies only the path to the changed entry. A snapshot build clones
//! the tree under the replica's read lock and serialises the clone outside it, so apply and
//! reads go on meanwhile (issue #9, item 6). Measured at 1M znodes (test profile): a clone of
//! the std `BTreeMap` took 1.71 s, longer than serialising (1.41 s, during which every read
//! and apply waited); see `store::state_machine` for the figures with this map.

use std::collections::{BTreeMap, BTreeSet};

use imbl::OrdMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::acl_table::{AclId, AclTable};
use super::locks::{LockState, LockTable};
use super::model::{Acl, FileMeta, SessionId, Stat, CONTAINER_OWNER, MAX_TTL_MS, TTL_OWNER_MASK};
use super::path;
use crate::{Error, Result};

/// A session as the tree records it (ZooKeeper keeps these next to its DataTree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Negotiated session timeout in ms.
    pub timeout_ms: i32,
    /// Password a client must present to re-attach.
    #[serde(with = "serde_bytes")]
    pub password: Vec<u8>,
}

/// One znode as stored: everything but its path, which is the map key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Znode {
    /// Its Stat, `data_length` and `num_children` included (kept up to date on write).
    /// `cversion` is what clients see: creates plus deletes of children, which ZooKeeper's
    /// `DataNode.copyStat` computes as `2 × seq − numChildren`.
    pub(super) stat: Stat,
    /// Creates of children so far (ZooKeeper's persisted `cversion`), wrapping like a Java
    /// int: the number a sequential child created next gets. The built-in children of `/`
    /// and `/zookeeper` are not counted. Always `stat.cversion == 2 × seq − numChildren`
    /// (wrapping). Fits in the padding after the Stat, so it costs no memory.
    pub(super) seq: i32,
    /// Its ACL, interned in [`Tree::acls`].
    pub(super) acl: AclId,
    /// Its data.
    #[serde(with = "serde_bytes")]
    pub(super) data: Box<[u8]>,
    /// Mode and owner as a mount sees them (zero when created through the client port).
    pub(super) meta: FileMeta,
}

/// What a znode's `ephemeralOwner` says it is (ZooKeeper's `EphemeralType`, with extended
/// types on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Owner 0.
    Persistent,
    /// Owned by this session.
    Ephemeral(SessionId),
    /// [`CONTAINER_OWNER`].
    Container,
    /// High byte 0xFF: a TTL node with this TTL in ms.
    Ttl(i64),
}

impl Kind {
    /// Decodes an `ephemeralOwner`.
    pub(super) fn of(owner: i64) -> Kind {
        if owner == 0 {
            Kind::Persistent
        } else if owner == CONTAINER_OWNER {
            Kind::Container
        } else if owner & TTL_OWNER_MASK == TTL_OWNER_MASK {
            Kind::Ttl(owner & MAX_TTL_MS)
        } else {
            Kind::Ephemeral(owner)
        }
    }
}

/// The znode tree with ZooKeeper 3.8 semantics: pure, synchronous, deterministic.
///
/// A new tree holds what a fresh ZooKeeper server holds: `/`, `/zookeeper`,
/// `/zookeeper/quota` and `/zookeeper/config` (the last readable by anyone, writable by no
/// one, with aversion -1, as ZooKeeper sets it). Change it only with [`Tree::apply`].
/// Snapshot it with serde (bincode); the encoding is deterministic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tree {
    /// Every znode by storage key (`path::key`): siblings are adjacent, in name order.
    pub(super) nodes: OrdMap<Box<str>, Znode>,
    /// The ACL lists znodes refer to.
    pub(super) acls: AclTable,
    /// Open sessions.
    pub(super) sessions: BTreeMap<SessionId, SessionInfo>,
    /// Paths of the ephemerals each session owns.
    pub(super) ephemerals: BTreeMap<SessionId, BTreeSet<Box<str>>>,
    /// Paths of all containers.
    pub(super) containers: BTreeSet<Box<str>>,
    /// Paths of all TTL nodes.
    pub(super) ttls: BTreeSet<Box<str>>,
    /// Cluster-wide file locks.
    pub(super) locks: LockTable,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A tree as a fresh ZooKeeper 3.8 server has it: `/` with child `zookeeper`, which has
    /// children `quota` and `config`. Their Stat fields are 0 but for what a fresh
    /// ZooKeeper reports: `/zookeeper/config` has aversion -1, and since these children
    /// were never counted as creates, `/` has cversion -1 and `/zookeeper` -2
    /// (`2 × 0 − numChildren`). So reads of them match a real server.
    pub fn new() -> Tree {
        let mut tree = Tree {
            nodes: OrdMap::new(),
            acls: AclTable::default(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            locks: LockTable::default(),
        };
        let open = Acl::open_unsafe();
        let read_only = vec![Acl {
            perms: 1,
            scheme: "world".into(),
            id: "anyone".into(),
        }];
        let builtins: [(&str, &[Acl], i32, i32); 4] = [
            ("/", &open, 1, 0),
            ("/zookeeper", &open, 2, 0),
            ("/zookeeper/quota", &open, 0, 0),
            ("/zookeeper/config", &read_only, 0, -1),
        ];
        for (p, acl, num_children, aversion) in builtins {
            let acl = tree.acls.intern(acl);
            let stat = Stat {
                num_children,
                cversion: -num_children,
                aversion,
                ..Stat::default()
            };
            if let Some(key) = path::key(p) {
                tree.insert_node(
                    key.into_boxed_str(),
                    Znode {
                        stat,
                        seq: 0,
                        acl,
                        data: Box::default(),
                        meta: FileMeta::default(),
                    },
                );
            }
        }
        tree.acls.sweep();
        tree
    }

    /// Data and Stat of `path`.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`] if it does not exist.
    pub fn get(&self, path: &str) -> Result<(&[u8], Stat)> {
        let node = self.node(path).ok_or_else(|| no_node(path))?;
        Ok((&node.data, node.stat))
    }

    /// File metadata and Stat of `path`, if it exists.
    pub fn file_meta(&self, path: &str) -> Option<(FileMeta, Stat)> {
        self.node(path).map(|node| (node.meta, node.stat))
    }

    /// The lock state of `path`, if it was ever locked.
    pub fn lock_state(&self, path: &str) -> Option<&LockState> {
        self.locks.get(path)
    }

    /// Stat of `path`, if it exists.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.node(path).map(|node| node.stat)
    }

    /// Names (not paths) of the children of `path`, sorted bytewise.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`] if it does not exist.
    pub fn children(&self, path: &str) -> Result<Vec<String>> {
        if self.node(path).is_none() {
            return Err(no_node(path));
        }
        let prefix = path::child_prefix(path);
        Ok(self
            .keys_with_prefix(&prefix)
            .filter_map(|key| key.strip_prefix(prefix.as_str()))
            .map(str::to_owned)
            .collect())
    }

    /// ACL and Stat of `path`.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`] if it does not exist.
    pub fn acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        let node = self.node(path).ok_or_else(|| no_node(path))?;
        Ok((self.acls.get(node.acl).to_vec(), node.stat))
    }

    /// Whether `path` exists.
    pub fn exists(&self, path: &str) -> bool {
        self.node(path).is_some()
    }

    /// Number of znodes, `/` and the `/zookeeper` ones included.
    pub fn znode_count(&self) -> usize {
        self.nodes.len()
    }

    /// The session `id`, if open.
    pub fn session(&self, id: SessionId) -> Option<&SessionInfo> {
        self.sessions.get(&id)
    }

    /// All open sessions, by id.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &SessionInfo)> {
        self.sessions.iter().map(|(&id, info)| (id, info))
    }

    /// Paths of the ephemerals `session` owns, sorted (ZooKeeper's getEphemerals).
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|paths| paths.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default()
    }

    /// Number of descendants of `path`, not counting itself (ZooKeeper's
    /// getAllChildrenNumber; for `/` that includes the `/zookeeper` znodes).
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`] if it does not exist.
    pub fn count_descendants(&self, path: &str) -> Result<usize> {
        if self.node(path).is_none() {
            return Err(no_node(path));
        }
        if path == "/" {
            return Ok(self.nodes.len().saturating_sub(1));
        }
        // Children have keys "path\0name"; deeper descendants "path/...".
        let children = self.keys_with_prefix(&path::child_prefix(path)).count();
        let deeper = self.keys_with_prefix(&format!("{path}/")).count();
        Ok(children + deeper)
    }

    /// Znodes the reaper should delete at `now_ms`, sorted by path, each with its current
    /// version so that the reaper can propose a conditional delete: containers that had a
    /// child created once (ZooKeeper's persisted cversion, our `seq`, > 0) and have none
    /// now, and TTL nodes without children not
    /// modified for longer than their TTL (`now - mtime > ttl`), as ZooKeeper's
    /// `ContainerManager` decides.
    pub fn reapable(&self, now_ms: i64) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(node) = self.node(p) {
                if node.seq > 0 && node.stat.num_children == 0 {
                    out.push((p.to_string(), node.stat.version));
                }
            }
        }
        for p in &self.ttls {
            if let Some(node) = self.node(p) {
                if let Kind::Ttl(ttl) = Kind::of(node.stat.ephemeral_owner) {
                    if node.stat.num_children == 0
                        && ttl != 0
                        && now_ms.saturating_sub(node.stat.mtime) > ttl
                    {
                        out.push((p.to_string(), node.stat.version));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The znode at `path`.
    pub(super) fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path::key(path)?.as_str())
    }

    /// Keys starting with `prefix`, in order.
    fn keys_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes
            .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(key, _)| &**key)
            .take_while(move |key| key.starts_with(prefix))
    }

    /// Stores a znode under `key`, taking a reference on its ACL and indexing it as an
    /// ephemeral, container or TTL node. The parent's Stat is the caller's business.
    pub(super) fn insert_node(&mut self, key: Box<str>, node: Znode) {
        self.acls.acquire(node.acl);
        match Kind::of(node.stat.ephemeral_owner) {
            Kind::Persistent => {}
            Kind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path::path_of_key(&key).into());
            }
            Kind::Container => {
                self.containers.insert(path::path_of_key(&key).into());
            }
            Kind::Ttl(_) => {
                self.ttls.insert(path::path_of_key(&key).into());
            }
        }
        if let Some(old) = self.nodes.insert(key, node) {
            // Callers check existence first; keep the counts right regardless.
            self.acls.release(old.acl);
        }
    }

    /// Removes the znode under `key`, undoing what [`Tree::insert_node`] did. The parent's
    /// Stat is the caller's business.
    pub(super) fn remove_node(&mut self, key: &str) -> Option<(Box<str>, Znode)> {
        let (key, node) = self.nodes.remove_with_key(key)?;
        self.acls.release(node.acl);
        match Kind::of(node.stat.ephemeral_owner) {
            Kind::Persistent => {}
            Kind::Ephemeral(session) => {
                if let Some(paths) = self.ephemerals.get_mut(&session) {
                    paths.remove(path::path_of_key(&key).as_str());
                    if paths.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            Kind::Container => {
                self.containers.remove(path::path_of_key(&key).as_str());
            }
            Kind::Ttl(_) => {
                self.ttls.remove(path::path_of_key(&key).as_str());
            }
        }
        Some((key, node))
    }

    /// Everything observable, for comparing trees in tests.
    #[cfg(test)]
    pub(super) fn dump(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (key, node) in &self.nodes {
            let _ = writeln!(
                out,
                "{} {:?} {:?} seq {} {:?}",
                path::path_of_key(key),
                node.data,
                node.stat,
                node.seq,
                self.acls.get(node.acl)
            );
        }
        let _ = writeln!(
            out,
            "{:?}\n{:?}\n{:?}\n{:?}",
            self.sessions, self.ephemerals, self.containers, self.ttls
        );
        out
    }
}

fn no_node(path: &str) -> Error {
    Error::NoNode {
        path: path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tree_matches_a_fresh_zookeeper() {
        let t = Tree::new();
        assert_eq!(t.znode_count(), 4);
        assert_eq!(t.children("/").unwrap(), ["zookeeper"]);
        assert_eq!(t.children("/zookeeper").unwrap(), ["config", "quota"]);
        assert!(t.children("/zookeeper/quota").unwrap().is_empty());
        assert_eq!(t.count_descendants("/").unwrap(), 3);
        assert_eq!(t.count_descendants("/zookeeper").unwrap(), 2);
        // A fresh ZooKeeper 3.8 reports cversion -1 for `/` and -2 for `/zookeeper`: its
        // built-in children were never counted as creates (2 × 0 − numChildren).
        assert_eq!(
            t.stat("/").unwrap(),
            Stat {
                num_children: 1,
                cversion: -1,
                ..Stat::default()
            }
        );
        assert_eq!(
            t.stat("/zookeeper").unwrap(),
            Stat {
                num_children: 2,
                cversion: -2,
                ..Stat::default()
            }
        );
        for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert_eq!(t.node(p).unwrap().seq, 0, "{p}");
        }
        assert_eq!(t.stat("/zookeeper/quota").unwrap().cversion, 0);
        let (acl, stat) = t.acl("/zookeeper/config").unwrap();
        assert_eq!(
            acl,
            [Acl {
                perms: 1,
                scheme: "world".into(),
                id: "anyone".into()
            }]
        );
        assert_eq!(stat.aversion, -1);
        assert_eq!(t.acl("/").unwrap().0, Acl::open_unsafe());
        let (data, _) = t.get("/zookeeper/config").unwrap();
        assert!(data.is_empty());
        assert_eq!(t.acls.len(), 2);
        assert!(t.sessions().next().is_none());
    }

    #[test]
    fn reads_of_missing_or_malformed_paths_find_nothing() {
        let t = Tree::new();
        for p in [
            "/nope",
            "",
            "zookeeper",
            "/zookeeper/",
            "//",
            "/zookeeper\0quota",
            "/zookeeper//quota",
            "\0zookeeper",
        ] {
            assert!(!t.exists(p), "{p:?}");
            assert!(t.stat(p).is_none());
            assert!(matches!(t.get(p), Err(Error::NoNode { .. })));
            assert!(matches!(t.children(p), Err(Error::NoNode { .. })));
            assert!(matches!(t.acl(p), Err(Error::NoNode { .. })));
            assert!(matches!(t.count_descendants(p), Err(Error::NoNode { .. })));
        }
    }

    #[test]
    fn kinds_decode_like_zookeeper() {
        assert_eq!(Kind::of(0), Kind::Persistent);
        assert_eq!(Kind::of(CONTAINER_OWNER), Kind::Container);
        assert_eq!(Kind::of(TTL_OWNER_MASK | 5000), Kind::Ttl(5000));
        assert_eq!(Kind::of(TTL_OWNER_MASK | MAX_TTL_MS), Kind::Ttl(MAX_TTL_MS));
        assert_eq!(
            Kind::of(0x0100_0000_0000_0001),
            Kind::Ephemeral(0x0100_0000_0000_0001)
        );
        assert_eq!(Kind::of(-2), Kind::Ttl(MAX_TTL_MS - 1));
        assert_eq!(
            Kind::of(0x7F00_0000_0000_0000),
            Kind::Ephemeral(0x7F00_0000_0000_0000)
        );
    }
}
