//! [`Tree::apply`]: how each transaction changes the tree, with ZooKeeper 3.8's checks in
//! ZooKeeper's order (`PrepRequestProcessor`) and its Stat updates (`DataTree`).
//!
//! Every operation checks everything before it writes, so a failing single op changes
//! nothing. A multi applies its ops one after another on the live tree (later ops see
//! earlier ones) and records an undo log; at the first failure it plays the log backwards,
//! so the tree is exactly as before and no [`Change`] is reported. Nothing is cloned but
//! what an op overwrites, which the log takes by move.
//!
//! The tree's storage and indexes are `data_tree.rs`'s business; path rules `path.rs`'s.

use std::collections::BTreeSet;

use super::acl_table::AclId;
use super::data_tree::{Kind, SessionInfo, Tree, Znode};
use super::model::{
    Acl, Change, CreateMode, FileMeta, MultiFailure, Op, OpResult, SessionId, Stat, Txn, TxnBody,
    TxnOutcome, CONTAINER_OWNER, MAX_DATA_LEN, MAX_TTL_MS, TTL_OWNER_MASK,
};
use super::path::{self, validate_path, SPECIAL_PATHS};
use crate::{Error, Result};

impl Tree {
    /// Applies one committed transaction: all of it or, if it fails, none of it.
    ///
    /// Returns the outcome and the visible changes in apply order (none when the op or
    /// multi failed). zxid and times come from the txn, so every replica computes the same
    /// tree. Semantics are ZooKeeper 3.8's:
    /// - create (`PrepRequestProcessor.pRequest2TxnCreate`): checks TTL range, then the
    ///   session (ephemerals), then that the path has a `/` and no NUL, the ACL, that the
    ///   parent (everything before the last `/`, as given) exists, and only then the full
    ///   path's syntax (BadArguments), existence, ephemeral parent, data size. So a
    ///   malformed path under a missing parent is NoNode. The parent's cversion and
    ///   create count (`seq`) grow by one and its pzxid becomes the zxid; a sequential name
    ///   ends in the parent's create count before the create, `%010d`.
    /// - delete: a path without `/`, with a NUL, or one of `/` and
    ///   `/zookeeper{,/quota,/config}` is BadArguments; nothing else about its syntax is
    ///   checked (a malformed path is simply not found). Then the parent's existence, the
    ///   znode's, version, children. The parent's cversion grows by one (clients see creates
    ///   plus deletes) but not its create count, and its pzxid moves.
    /// - setData bumps version, mzxid, mtime; setACL bumps aversion; check reads.
    /// - closing a session deletes its ephemerals (in path order) and forgets it; closing an
    ///   unknown session changes nothing. Creating a session that exists keeps the existing
    ///   one (replays are harmless). A session id that reads as a container or TTL owner (0,
    ///   `i64::MIN`, high byte 0xFF) is never recorded, so it cannot own ephemerals.
    pub fn apply(&mut self, txn: &Txn) -> (TxnOutcome, Vec<Change>) {
        let mut run = Apply {
            tree: self,
            txn,
            undo: Vec::new(),
            changes: Vec::new(),
        };
        let outcome = match &txn.body {
            TxnBody::CreateSession {
                session,
                timeout_ms,
                password,
            } => {
                run.open_session(*session, *timeout_ms, password);
                TxnOutcome::SessionCreated
            }
            TxnBody::CloseSession { session } => {
                run.close_session(*session);
                TxnOutcome::SessionClosed
            }
            TxnBody::ExpireSession { session, term } => {
                if *term == txn.term {
                    run.close_session(*session);
                }
                TxnOutcome::SessionClosed
            }
            TxnBody::Op(op) => {
                let result = run.op(op);
                if result.is_err() {
                    // Ops write only after all their checks; this is belt and braces.
                    run.rollback();
                }
                TxnOutcome::Op(result)
            }
            TxnBody::Multi(ops) => TxnOutcome::Multi(run.multi(ops)),
            TxnBody::Fs(op) => TxnOutcome::Fs(run.fs_op(op)),
        };
        let changes = run.changes;
        self.acls.sweep();
        (outcome, changes)
    }
}

/// What it takes to undo one write of a multi.
enum Undo {
    /// A znode was created: remove it.
    Created { key: Box<str> },
    /// A znode was deleted: put it back.
    Deleted { key: Box<str>, node: Znode },
    /// A znode's Stat and create count changed (a parent's, on create or delete): restore
    /// them.
    Stat { key: Box<str>, stat: Stat, seq: i32 },
    /// A znode's data changed: restore data and Stat.
    Data {
        key: Box<str>,
        data: Box<[u8]>,
        stat: Stat,
    },
    /// A znode's ACL changed: restore ACL and Stat.
    Acl {
        key: Box<str>,
        acl: AclId,
        stat: Stat,
    },
}

/// One transaction being applied.
pub(super) struct Apply<'a> {
    pub(super) tree: &'a mut Tree,
    pub(super) txn: &'a Txn,
    /// Writes so far, to undo if a multi fails.
    undo: Vec<Undo>,
    /// Visible changes so far.
    pub(super) changes: Vec<Change>,
}

impl Apply<'_> {
    fn op(&mut self, op: &Op) -> Result<OpResult> {
        match op {
            Op::Create {
                path,
                data,
                acl,
                mode,
            } => self.create(path, data, acl, *mode, FileMeta::default()),
            Op::Delete { path, version } => self.delete(path, *version),
            Op::SetData {
                path,
                data,
                version,
            } => self.set_data(path, data, *version),
            Op::Check { path, version } => self.check(path, *version),
            Op::SetAcl { path, acl, version } => self.set_acl(path, acl, *version),
        }
    }

    fn multi(&mut self, ops: &[Op]) -> Result<Vec<OpResult>, MultiFailure> {
        let mut results = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match self.op(op) {
                Ok(result) => results.push(result),
                Err(error) => {
                    self.rollback();
                    return Err(MultiFailure { index, error });
                }
            }
        }
        Ok(results)
    }

    /// Undoes every write so far, newest first, and forgets the changes.
    fn rollback(&mut self) {
        while let Some(entry) = self.undo.pop() {
            match entry {
                Undo::Created { key } => {
                    self.tree.remove_node(&key);
                }
                Undo::Deleted { key, node } => self.tree.insert_node(key, node),
                Undo::Stat { key, stat, seq } => {
                    if let Some(node) = self.tree.nodes.get_mut(&*key) {
                        node.stat = stat;
                        node.seq = seq;
                    }
                }
                Undo::Data { key, data, stat } => {
                    if let Some(node) = self.tree.nodes.get_mut(&*key) {
                        node.data = data;
                        node.stat = stat;
                    }
                }
                Undo::Acl { key, acl, stat } => {
                    if let Some(node) = self.tree.nodes.get_mut(&*key) {
                        self.tree.acls.acquire(acl);
                        self.tree.acls.release(node.acl);
                        node.acl = acl;
                        node.stat = stat;
                    }
                }
            }
        }
        self.changes.clear();
    }

    fn open_session(&mut self, session: SessionId, timeout_ms: i32, password: &[u8]) {
        if Kind::of(session) != Kind::Ephemeral(session) {
            return;
        }
        self.tree
            .sessions
            .entry(session)
            .or_insert_with(|| SessionInfo {
                timeout_ms,
                password: password.to_vec(),
            });
    }

    fn close_session(&mut self, session: SessionId) {
        self.tree.sessions.remove(&session);
        let paths = self.tree.ephemerals.remove(&session).unwrap_or_default();
        for p in paths {
            if let Some(key) = path::key(&p) {
                self.unlink(&p, &key);
            }
        }
        let mut grants = Vec::new();
        self.tree.locks.release_session(session, &mut grants);
        self.report_grants(grants);
    }

    pub(super) fn create(
        &mut self,
        prefix: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        meta: FileMeta,
    ) -> Result<OpResult> {
        let owner = self.owner_for(mode)?;
        // ZooKeeper's validatePathForCreate: only a `/` and no NUL, so far.
        let parent_path = parent_part(prefix)?;
        let acl = dedup_acl(acl)?;
        // The parent as given, malformed or not: a malformed parent never exists.
        let parent_key = path::key(parent_path).ok_or_else(|| no_node(parent_path))?;
        let (parent, parent_seq) = self
            .tree
            .nodes
            .get(parent_key.as_str())
            .map(|node| (node.stat, node.seq))
            .ok_or_else(|| no_node(parent_path))?;
        let path = if mode.is_sequential() {
            format!("{prefix}{parent_seq:010}")
        } else {
            prefix.to_owned()
        };
        // Only now the whole path, sequence number included, as ZooKeeper does.
        validate_path(&path, false)?;
        let key = path::key(&path).ok_or_else(|| no_node(&path))?;
        if self.tree.nodes.contains_key(key.as_str()) {
            return Err(Error::NodeExists { path });
        }
        if matches!(Kind::of(parent.ephemeral_owner), Kind::Ephemeral(_)) {
            return Err(Error::NoChildrenForEphemerals {
                path: parent_path.to_owned(),
            });
        }
        let data_length = data_length(data)?;

        let (zxid, time) = (self.txn.zxid, self.txn.time_ms);
        self.update_parent(parent_key, |stat, seq| {
            *seq = seq.wrapping_add(1);
            stat.cversion = stat.cversion.wrapping_add(1);
            stat.pzxid = zxid;
            stat.num_children = stat.num_children.wrapping_add(1);
        });
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            data_length,
            num_children: 0,
            pzxid: zxid,
        };
        let acl = self.tree.acls.intern(&acl);
        let key: Box<str> = key.into();
        self.tree.insert_node(
            key.clone(),
            Znode {
                stat,
                seq: 0,
                acl,
                data: data.into(),
                meta,
            },
        );
        self.undo.push(Undo::Created { key });
        self.changes.push(Change::Created { path: path.clone() });
        Ok(OpResult::Created { path, stat })
    }

    /// The `ephemeralOwner` a create in `mode` gives, or why the create is refused.
    fn owner_for(&self, mode: CreateMode) -> Result<i64> {
        match mode {
            CreateMode::Persistent | CreateMode::PersistentSequential => Ok(0),
            CreateMode::Container => Ok(CONTAINER_OWNER),
            CreateMode::PersistentWithTtl { ttl_ms }
            | CreateMode::PersistentSequentialWithTtl { ttl_ms } => {
                if ttl_ms <= 0 || ttl_ms > MAX_TTL_MS {
                    Err(Error::BadArguments {
                        reason: format!("ttl {ttl_ms} ms is not in 1..={MAX_TTL_MS}"),
                    })
                } else {
                    Ok(TTL_OWNER_MASK | ttl_ms)
                }
            }
            CreateMode::Ephemeral | CreateMode::EphemeralSequential => {
                let session = self.txn.session;
                if session != 0 && self.tree.sessions.contains_key(&session) {
                    Ok(session)
                } else {
                    Err(Error::SessionExpired { session })
                }
            }
        }
    }

    fn delete(&mut self, path: &str, version: i32) -> Result<OpResult> {
        // ZooKeeper's getParentPathAndValidate: no other syntax check for a delete.
        if SPECIAL_PATHS.contains(&path) {
            return Err(Error::BadArguments {
                reason: format!("{path} cannot be deleted"),
            });
        }
        let parent_path = parent_part(path)?;
        if self.tree.node(parent_path).is_none() {
            return Err(no_node(parent_path));
        }
        let key = path::key(path).ok_or_else(|| no_node(path))?;
        let stat = self
            .tree
            .nodes
            .get(key.as_str())
            .map(|node| node.stat)
            .ok_or_else(|| no_node(path))?;
        check_version(path, version, stat.version)?;
        if stat.num_children > 0 {
            return Err(Error::NotEmpty {
                path: path.to_owned(),
            });
        }
        self.unlink(path, &key);
        Ok(OpResult::Deleted)
    }

    /// Deletes the znode `path` (stored under `key`) and updates its parent, as
    /// ZooKeeper's `DataTree.deleteNode` and `DataNode.copyStat` do: pzxid moves, cversion
    /// (as clients see it) grows by one, the create count does not.
    pub(super) fn unlink(&mut self, path: &str, key: &str) {
        let Some((key, node)) = self.tree.remove_node(key) else {
            return;
        };
        self.undo.push(Undo::Deleted { key, node });
        if let Some(parent_key) = path::split(path).and_then(|(parent, _)| path::key(parent)) {
            let zxid = self.txn.zxid;
            self.update_parent(parent_key, |stat, _| {
                stat.cversion = stat.cversion.wrapping_add(1);
                stat.pzxid = stat.pzxid.max(zxid);
                stat.num_children = stat.num_children.wrapping_sub(1);
            });
        }
        self.changes.push(Change::Deleted {
            path: path.to_owned(),
        });
    }

    fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Result<OpResult> {
        validate_path(path, false)?;
        let key = path::key(path).ok_or_else(|| no_node(path))?;
        let (zxid, time) = (self.txn.zxid, self.txn.time_ms);
        let node = self
            .tree
            .nodes
            .get_mut(key.as_str())
            .ok_or_else(|| no_node(path))?;
        let data_length = data_length(data)?;
        check_version(path, version, node.stat.version)?;

        let old_stat = node.stat;
        let old_data = std::mem::replace(&mut node.data, data.into());
        node.stat.version = node.stat.version.wrapping_add(1);
        node.stat.mzxid = zxid;
        node.stat.mtime = time;
        node.stat.data_length = data_length;
        let stat = node.stat;
        self.undo.push(Undo::Data {
            key: key.into(),
            data: old_data,
            stat: old_stat,
        });
        self.changes.push(Change::DataChanged {
            path: path.to_owned(),
        });
        Ok(OpResult::DataSet { stat })
    }

    fn check(&mut self, path: &str, version: i32) -> Result<OpResult> {
        validate_path(path, false)?;
        let stat = self.tree.stat(path).ok_or_else(|| no_node(path))?;
        check_version(path, version, stat.version)?;
        Ok(OpResult::Checked)
    }

    fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<OpResult> {
        validate_path(path, false)?;
        let acl = dedup_acl(acl)?;
        let key = path::key(path).ok_or_else(|| no_node(path))?;
        let (old_acl, old_stat) = self
            .tree
            .nodes
            .get(key.as_str())
            .map(|node| (node.acl, node.stat))
            .ok_or_else(|| no_node(path))?;
        check_version(path, version, old_stat.aversion)?;

        let new_acl = self.tree.acls.intern(&acl);
        self.tree.acls.acquire(new_acl);
        self.tree.acls.release(old_acl);
        let mut stat = old_stat;
        stat.aversion = stat.aversion.wrapping_add(1);
        if let Some(node) = self.tree.nodes.get_mut(key.as_str()) {
            node.acl = new_acl;
            node.stat = stat;
        }
        self.undo.push(Undo::Acl {
            key: key.into(),
            acl: old_acl,
            stat: old_stat,
        });
        self.changes.push(Change::AclChanged {
            path: path.to_owned(),
        });
        Ok(OpResult::AclSet { stat })
    }

    /// Changes the Stat and create count stored under `key` (a parent's), recording the
    /// old ones.
    pub(super) fn update_parent(&mut self, key: String, change: impl FnOnce(&mut Stat, &mut i32)) {
        if let Some(node) = self.tree.nodes.get_mut(key.as_str()) {
            self.undo.push(Undo::Stat {
                key: key.into(),
                stat: node.stat,
                seq: node.seq,
            });
            change(&mut node.stat, &mut node.seq);
        }
    }
}

pub(super) fn no_node(path: &str) -> Error {
    Error::NoNode {
        path: path.to_owned(),
    }
}

/// The parent part of `path` (everything before its last `/`; `/` for a top-level path),
/// after the only syntax checks ZooKeeper makes before looking the parent up, in
/// `validatePathForCreate` and `getParentPathAndValidate`: a `/` somewhere and no NUL.
///
/// # Errors
///
/// [`Error::BadArguments`] otherwise.
pub(super) fn parent_part(path: &str) -> Result<&str> {
    match path::split(path) {
        Some((parent, _)) if !path.contains('\0') => Ok(parent),
        _ => Err(Error::BadArguments {
            reason: format!("invalid path {path:?}: no / or a NUL character"),
        }),
    }
}

/// ZooKeeper's `checkAndIncVersion` test: -1 matches any version.
fn check_version(path: &str, expected: i32, actual: i32) -> Result<()> {
    if expected == -1 || expected == actual {
        Ok(())
    } else {
        Err(Error::BadVersion {
            path: path.to_owned(),
            expected,
            actual,
        })
    }
}

/// The data length as Stat stores it, refusing data over [`MAX_DATA_LEN`].
fn data_length(data: &[u8]) -> Result<i32> {
    match i32::try_from(data.len()) {
        Ok(len) if data.len() <= MAX_DATA_LEN => Ok(len),
        _ => Err(Error::BadArguments {
            reason: format!(
                "data is {} bytes, over the {MAX_DATA_LEN} limit",
                data.len()
            ),
        }),
    }
}

/// The ACL as ZooKeeper stores it: duplicates dropped, first occurrence kept.
///
/// # Errors
///
/// [`Error::InvalidAcl`] if it is empty.
fn dedup_acl(acl: &[Acl]) -> Result<Vec<Acl>> {
    let mut seen = BTreeSet::new();
    let acl: Vec<Acl> = acl
        .iter()
        .filter(|entry| seen.insert(*entry))
        .cloned()
        .collect();
    if acl.is_empty() {
        Err(Error::InvalidAcl)
    } else {
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree plus a clock: each txn gets the next zxid.
    struct Fixture {
        tree: Tree,
        zxid: i64,
        now: i64,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                tree: Tree::new(),
                zxid: 100,
                now: 1_000_000,
            }
        }

        fn run(&mut self, session: SessionId, body: TxnBody) -> (TxnOutcome, Vec<Change>) {
            self.zxid += 1;
            self.tree.apply(&Txn {
                term: 0,
                zxid: self.zxid,
                time_ms: self.now,
                session,
                body,
            })
        }

        fn op_as(&mut self, session: SessionId, op: Op) -> Result<OpResult> {
            match self.run(session, TxnBody::Op(op)) {
                (TxnOutcome::Op(result), changes) => {
                    if result.is_err() {
                        assert!(changes.is_empty());
                    }
                    result
                }
                other => panic!("unexpected {other:?}"),
            }
        }

        fn op(&mut self, op: Op) -> Result<OpResult> {
            self.op_as(0, op)
        }

        fn multi(&mut self, ops: Vec<Op>) -> (Result<Vec<OpResult>, MultiFailure>, Vec<Change>) {
            match self.run(0, TxnBody::Multi(ops)) {
                (TxnOutcome::Multi(result), changes) => (result, changes),
                other => panic!("unexpected {other:?}"),
            }
        }

        fn open_session(&mut self, session: SessionId) {
            let body = TxnBody::CreateSession {
                session,
                timeout_ms: 10_000,
                password: vec![7; 16],
            };
            assert_eq!(self.run(0, body).0, TxnOutcome::SessionCreated);
        }

        fn close_session(&mut self, session: SessionId) -> Vec<Change> {
            let (outcome, changes) = self.run(session, TxnBody::CloseSession { session });
            assert_eq!(outcome, TxnOutcome::SessionClosed);
            changes
        }

        /// Creates a persistent znode, which must succeed.
        fn mk(&mut self, path: &str) -> Stat {
            match self.op(create(path, b"", CreateMode::Persistent)) {
                Ok(OpResult::Created { stat, .. }) => stat,
                other => panic!("create {path}: {other:?}"),
            }
        }
    }

    fn create(path: &str, data: &[u8], mode: CreateMode) -> Op {
        Op::Create {
            path: path.into(),
            data: data.to_vec(),
            acl: Acl::open_unsafe(),
            mode,
        }
    }

    fn delete(path: &str, version: i32) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }

    fn set(path: &str, data: &[u8], version: i32) -> Op {
        Op::SetData {
            path: path.into(),
            data: data.to_vec(),
            version,
        }
    }

    fn check(path: &str, version: i32) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }

    fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> Op {
        Op::SetAcl {
            path: path.into(),
            acl,
            version,
        }
    }

    fn digest(user: &str) -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            scheme: "digest".into(),
            id: format!("{user}:hash"),
        }]
    }

    fn created_path(result: Result<OpResult>) -> String {
        match result {
            Ok(OpResult::Created { path, .. }) => path,
            other => panic!("not created: {other:?}"),
        }
    }

    #[track_caller]
    fn assert_bad_args<T: std::fmt::Debug>(result: Result<T>) {
        assert!(
            matches!(result, Err(Error::BadArguments { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn create_sets_stat_and_updates_parent() {
        let mut f = Fixture::new();
        f.now = 5_000;
        let stat = f.mk("/a");
        assert_eq!(
            stat,
            Stat {
                czxid: 101,
                mzxid: 101,
                ctime: 5_000,
                mtime: 5_000,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: 0,
                data_length: 0,
                num_children: 0,
                pzxid: 101,
            }
        );
        f.now = 6_000;
        let (outcome, changes) = f.run(
            0,
            TxnBody::Op(create("/a/b", b"hello", CreateMode::Persistent)),
        );
        let TxnOutcome::Op(Ok(OpResult::Created { path, stat })) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(path, "/a/b");
        assert_eq!((stat.czxid, stat.ctime, stat.data_length), (102, 6_000, 5));
        assert_eq!(
            changes,
            [Change::Created {
                path: "/a/b".into()
            }]
        );
        let (data, stat) = f.tree.get("/a/b").unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(stat.data_length, 5);
        let parent = f.tree.stat("/a").unwrap();
        assert_eq!(
            (parent.cversion, parent.pzxid, parent.num_children),
            (1, 102, 1)
        );
        assert_eq!(
            (parent.mzxid, parent.version, parent.mtime),
            (101, 0, 5_000)
        );
        // A fresh root reports cversion -1 (its /zookeeper child was never counted).
        let root = f.tree.stat("/").unwrap();
        assert_eq!((root.cversion, root.pzxid, root.num_children), (0, 101, 2));
        assert_eq!(f.tree.node("/").unwrap().seq, 1);
        assert_eq!(f.tree.node("/a").unwrap().seq, 1);
        assert_eq!(f.tree.children("/").unwrap(), ["a", "zookeeper"]);
        assert_eq!(f.tree.znode_count(), 6);
    }

    #[test]
    fn create_errors() {
        let mut f = Fixture::new();
        f.mk("/a");
        assert_bad_args(f.op(create("a", b"", CreateMode::Persistent)));
        assert_bad_args(f.op(create("/a/", b"", CreateMode::Persistent)));
        assert_bad_args(f.op(create("/a/.", b"", CreateMode::Persistent)));
        // The parent is looked up before the path is validated.
        assert_eq!(
            f.op(create("/a/./b", b"", CreateMode::Persistent)),
            Err(Error::NoNode {
                path: "/a/.".into()
            })
        );
        assert_eq!(
            f.op(create("/x/y", b"", CreateMode::Persistent)),
            Err(Error::NoNode { path: "/x".into() })
        );
        assert_eq!(
            f.op(create("/a", b"", CreateMode::Persistent)),
            Err(Error::NodeExists { path: "/a".into() })
        );
        assert_eq!(
            f.op(create("/", b"", CreateMode::Persistent)),
            Err(Error::NodeExists { path: "/".into() })
        );
        let empty_acl = Op::Create {
            path: "/b".into(),
            data: vec![],
            acl: vec![],
            mode: CreateMode::Persistent,
        };
        assert_eq!(f.op(empty_acl), Err(Error::InvalidAcl));
        assert_bad_args(f.op(create(
            "/b",
            &vec![0; MAX_DATA_LEN + 1],
            CreateMode::Persistent,
        )));
        assert!(f
            .op(create("/b", &vec![0; MAX_DATA_LEN], CreateMode::Persistent))
            .is_ok());
        assert_eq!(
            f.op(create("/e", b"", CreateMode::Ephemeral)),
            Err(Error::SessionExpired { session: 0 })
        );
        assert_eq!(
            f.op_as(42, create("/e", b"", CreateMode::Ephemeral)),
            Err(Error::SessionExpired { session: 42 })
        );
        for ttl_ms in [0, -1, MAX_TTL_MS + 1, i64::MIN] {
            assert_bad_args(f.op(create("/t", b"", CreateMode::PersistentWithTtl { ttl_ms })));
            assert_bad_args(f.op(create(
                "/t",
                b"",
                CreateMode::PersistentSequentialWithTtl { ttl_ms },
            )));
        }
        f.open_session(42);
        f.op_as(42, create("/e", b"", CreateMode::Ephemeral))
            .unwrap();
        assert_eq!(
            f.op(create("/e/child", b"", CreateMode::Persistent)),
            Err(Error::NoChildrenForEphemerals { path: "/e".into() })
        );
        assert_eq!(
            f.op_as(42, create("/e/child", b"", CreateMode::EphemeralSequential)),
            Err(Error::NoChildrenForEphemerals { path: "/e".into() })
        );
        // Nothing failed left a trace.
        assert_eq!(f.tree.children("/").unwrap(), ["a", "b", "e", "zookeeper"]);
        assert_eq!(f.tree.stat("/a").unwrap().cversion, 0);
    }

    #[test]
    fn create_checks_come_in_zookeeper_order() {
        let mut f = Fixture::new();
        let no_acl = |path: &str, mode| Op::Create {
            path: path.into(),
            data: vec![],
            acl: vec![],
            mode,
        };
        // TTL before the session, the path, the ACL and the parent.
        assert_bad_args(f.op(no_acl(
            "/missing/x",
            CreateMode::PersistentWithTtl { ttl_ms: 0 },
        )));
        // Session before the path, the ACL and the parent.
        assert_eq!(
            f.op(no_acl("bad", CreateMode::Ephemeral)),
            Err(Error::SessionExpired { session: 0 })
        );
        // Path before the ACL.
        assert_bad_args(f.op(no_acl("bad", CreateMode::Persistent)));
        // ACL before the parent.
        assert_eq!(
            f.op(no_acl("/missing/x", CreateMode::Persistent)),
            Err(Error::InvalidAcl)
        );
        // Parent and existence before the data size.
        let big = vec![0; MAX_DATA_LEN + 1];
        assert_eq!(
            f.op(create("/missing/x", &big, CreateMode::Persistent)),
            Err(Error::NoNode {
                path: "/missing".into()
            })
        );
        assert_eq!(
            f.op(create("/zookeeper", &big, CreateMode::Persistent)),
            Err(Error::NodeExists {
                path: "/zookeeper".into()
            })
        );
    }

    #[test]
    fn create_looks_up_the_parent_before_validating_the_path() {
        let mut f = Fixture::new();
        f.mk("/r");
        let seq = CreateMode::PersistentSequential;
        let plain = CreateMode::Persistent;
        // No `/` or a NUL: BadArguments before anything else.
        for (p, mode) in [("", plain), ("r", plain), ("r", seq), ("", seq)] {
            assert_bad_args(f.op(create(p, b"", mode)));
        }
        for mode in [plain, seq] {
            assert_bad_args(f.op(create("/r/x\0y", b"", mode)));
            assert_bad_args(f.op(create("/zz/x\0y", b"", mode)));
        }
        // The parent part does not exist: NoNode, however malformed the path.
        for (p, parent) in [
            ("r/x", "r"),
            ("/r//x", "/r/"),
            ("/r/./x", "/r/."),
            ("/r/../x", "/r/.."),
            ("/zz/", "/zz"),
            ("/zz//", "/zz/"),
            ("/zz/.", "/zz"),
            ("/zz/\u{1}", "/zz"),
        ] {
            for mode in [plain, seq] {
                assert_eq!(
                    f.op(create(p, b"", mode)),
                    Err(Error::NoNode {
                        path: parent.into()
                    }),
                    "{p:?} {mode:?}"
                );
            }
        }
        // The parent exists: now the whole path is validated.
        for p in [
            "/r/",
            "//r",
            "/r/.",
            "/r/..",
            "/r/\u{1}",
            "/r/\u{7f}",
            "/r/\u{9f}",
            "/r/\u{f8ff}",
            "/r/\u{fffe}",
            "/\u{7f}",
        ] {
            assert_bad_args(f.op(create(p, b"", plain)));
        }
        // A sequential create validates the name with its number: these are fine.
        for p in ["/r/", "/r/.", "/r/.."] {
            assert!(f.op(create(p, b"", seq)).is_ok(), "{p:?}");
        }
        assert_bad_args(f.op(create("//r", b"", seq)));
        assert_bad_args(f.op(create("/r/\u{1}", b"", seq)));
        // Valid edge cases.
        for p in ["/r/x.", "/r/.x", "/r/..."] {
            assert!(f.op(create(p, b"", plain)).is_ok(), "{p:?}");
        }
        assert_eq!(
            f.tree.children("/r").unwrap(),
            [
                "...",
                "..0000000002",
                ".0000000001",
                ".x",
                "0000000000",
                "x."
            ]
        );
        // The ACL is checked before the parent, the path's syntax after it.
        let no_acl = |path: &str| Op::Create {
            path: path.into(),
            data: vec![],
            acl: vec![],
            mode: CreateMode::Persistent,
        };
        assert_eq!(f.op(no_acl("/zz//")), Err(Error::InvalidAcl));
        assert_eq!(f.op(no_acl("/r/")), Err(Error::InvalidAcl));
        // Syntax before existence: `/` exists but `//` is malformed.
        assert_bad_args(f.op(create("//", b"", plain)));
    }

    #[test]
    fn sequential_names_use_the_parent_create_count() {
        let mut f = Fixture::new();
        f.mk("/q");
        assert_eq!(
            created_path(f.op(create("/q/job-", b"", CreateMode::PersistentSequential))),
            "/q/job-0000000000"
        );
        assert_eq!(
            created_path(f.op(create("/q/job-", b"", CreateMode::PersistentSequential))),
            "/q/job-0000000001"
        );
        f.mk("/q/plain");
        // A trailing slash is fine for a sequential prefix.
        assert_eq!(
            created_path(f.op(create("/q/", b"", CreateMode::PersistentSequential))),
            "/q/0000000003"
        );
        // Deletes move cversion (creates plus deletes, as clients see it) but not the
        // create count, so numbers go on: ZooKeeper numbers by its persisted cversion.
        f.op(delete("/q/job-0000000001", -1)).unwrap();
        f.op(delete("/q/plain", -1)).unwrap();
        let q = f.tree.stat("/q").unwrap();
        assert_eq!((q.cversion, q.num_children, q.pzxid), (6, 2, f.zxid));
        assert_eq!(f.tree.node("/q").unwrap().seq, 4);
        assert_eq!(
            created_path(f.op(create("/q/job-", b"", CreateMode::PersistentSequential))),
            "/q/job-0000000004"
        );
        // Under the root too: /zookeeper was never counted, /q was.
        assert_eq!(f.tree.stat("/").unwrap().cversion, 0);
        assert_eq!(
            created_path(f.op(create("/", b"", CreateMode::PersistentSequential))),
            "/0000000001"
        );
        assert_eq!(f.tree.stat("/").unwrap().cversion, 1);
        // A taken name is NodeExists, and the failed create does not consume the number.
        f.mk("/q/job-0000000005");
        assert_eq!(f.tree.node("/q").unwrap().seq, 6);
        assert_eq!(f.tree.stat("/q").unwrap().cversion, 8);
        f.mk("/q/job-0000000007");
        assert_eq!(
            f.op(create("/q/job-", b"", CreateMode::PersistentSequential)),
            Err(Error::NodeExists {
                path: "/q/job-0000000007".into()
            })
        );
        assert_eq!(f.tree.node("/q").unwrap().seq, 7);
        assert_eq!(f.tree.stat("/q").unwrap().cversion, 9);
    }

    #[test]
    fn cversion_counts_creates_and_deletes_of_children() {
        let mut f = Fixture::new();
        // Fresh values, as a fresh ZooKeeper 3.8 reports them.
        assert_eq!(f.tree.stat("/").unwrap().cversion, -1);
        assert_eq!(f.tree.stat("/zookeeper").unwrap().cversion, -2);
        f.mk("/zookeeper/x");
        assert_eq!(f.tree.stat("/zookeeper").unwrap().cversion, -1);
        f.op(delete("/zookeeper/x", -1)).unwrap();
        assert_eq!(f.tree.stat("/zookeeper").unwrap().cversion, 0);
        f.mk("/a");
        for i in 0..3 {
            f.mk(&format!("/a/{i}"));
        }
        f.op(delete("/a/1", -1)).unwrap();
        f.op(create("/a/s-", b"", CreateMode::PersistentSequential))
            .unwrap();
        let a = f.tree.stat("/a").unwrap();
        // 4 creates, 1 delete: ZooKeeper's 2 × creates − numChildren.
        assert_eq!((a.cversion, a.num_children), (5, 3));
        assert_eq!(f.tree.node("/a").unwrap().seq, 4);
        assert!(f
            .tree
            .children("/a")
            .unwrap()
            .contains(&"s-0000000003".into()));
        // A failed delete changes nothing.
        assert!(f.op(delete("/a/1", -1)).is_err());
        assert_eq!(f.tree.stat("/a").unwrap().cversion, 5);
        // Ephemerals deleted with their session count as deletes.
        f.open_session(3);
        f.op_as(3, create("/a/e", b"", CreateMode::Ephemeral))
            .unwrap();
        f.close_session(3);
        let a = f.tree.stat("/a").unwrap();
        assert_eq!((a.cversion, a.num_children, a.pzxid), (7, 3, f.zxid));
        assert_eq!(f.tree.node("/a").unwrap().seq, 5);
        // A failed multi restores both.
        let (result, _) = f.multi(vec![
            create("/a/m", b"", CreateMode::Persistent),
            delete("/a/0", -1),
            delete("/nope", -1),
        ]);
        assert!(result.is_err());
        assert_eq!(f.tree.stat("/a").unwrap().cversion, 7);
        assert_eq!(f.tree.node("/a").unwrap().seq, 5);
        // The created znode's own Stat starts at 0.
        let stat = f.mk("/a/new");
        assert_eq!(stat.cversion, 0);
    }

    #[test]
    fn sequential_names_format_a_negative_count_like_java() {
        let mut f = Fixture::new();
        f.mk("/q");
        let key = path::key("/q").unwrap();
        f.tree.nodes.get_mut(key.as_str()).unwrap().seq = i32::MAX;
        assert_eq!(
            created_path(f.op(create("/q/n", b"", CreateMode::PersistentSequential))),
            "/q/n2147483647"
        );
        assert_eq!(f.tree.node("/q").unwrap().seq, i32::MIN);
        assert_eq!(
            created_path(f.op(create("/q/n", b"", CreateMode::PersistentSequential))),
            "/q/n-2147483648"
        );
        f.tree.nodes.get_mut(key.as_str()).unwrap().seq = -5;
        assert_eq!(
            created_path(f.op(create("/q/n", b"", CreateMode::PersistentSequential))),
            "/q/n-000000005"
        );
    }

    #[test]
    fn set_data_bumps_version_and_checks_it() {
        let mut f = Fixture::new();
        f.mk("/a");
        f.now = 9_000;
        let (outcome, changes) = f.run(0, TxnBody::Op(set("/a", b"xyz", 0)));
        let TxnOutcome::Op(Ok(OpResult::DataSet { stat })) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(changes, [Change::DataChanged { path: "/a".into() }]);
        assert_eq!(
            (stat.version, stat.mzxid, stat.mtime, stat.data_length),
            (1, f.zxid, 9_000, 3)
        );
        assert_eq!((stat.czxid, stat.ctime, stat.pzxid), (101, 1_000_000, 101));
        assert_eq!(f.tree.get("/a").unwrap(), (&b"xyz"[..], stat));
        assert_eq!(
            f.op(set("/a", b"", 0)),
            Err(Error::BadVersion {
                path: "/a".into(),
                expected: 0,
                actual: 1
            })
        );
        assert!(f.op(set("/a", b"", 1)).is_ok());
        assert!(f.op(set("/a", b"", -1)).is_ok());
        assert_eq!(f.tree.stat("/a").unwrap().version, 3);
        assert_eq!(
            f.op(set("/nope", b"", -1)),
            Err(Error::NoNode {
                path: "/nope".into()
            })
        );
        assert_bad_args(f.op(set("/a", &vec![0; MAX_DATA_LEN + 1], -1)));
        assert_bad_args(f.op(set("/a/", b"", -1)));
        // The root and the /zookeeper znodes can be written, as in ZooKeeper (ACLs permitting).
        assert!(f.op(set("/", b"root", -1)).is_ok());
        assert_eq!(f.tree.get("/").unwrap().0, b"root");
    }

    #[test]
    fn set_data_version_wraps_like_java() {
        let mut f = Fixture::new();
        f.mk("/a");
        let key = path::key("/a").unwrap();
        f.tree.nodes.get_mut(key.as_str()).unwrap().stat.version = i32::MAX;
        assert!(f.op(set("/a", b"", i32::MAX)).is_ok());
        assert_eq!(f.tree.stat("/a").unwrap().version, i32::MIN);
    }

    #[test]
    fn delete_rules() {
        let mut f = Fixture::new();
        f.mk("/a");
        f.mk("/a/b");
        for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert_bad_args(f.op(delete(special, -1)));
        }
        assert_eq!(
            f.op(delete("/nope", -1)),
            Err(Error::NoNode {
                path: "/nope".into()
            })
        );
        assert_eq!(
            f.op(delete("/nope/x", -1)),
            Err(Error::NoNode {
                path: "/nope".into()
            })
        );
        assert_eq!(
            f.op(delete("/a", -1)),
            Err(Error::NotEmpty { path: "/a".into() })
        );
        f.op(set("/a/b", b"1", -1)).unwrap();
        assert_eq!(
            f.op(delete("/a/b", 0)),
            Err(Error::BadVersion {
                path: "/a/b".into(),
                expected: 0,
                actual: 1
            })
        );
        // Version is checked before children, as ZooKeeper does.
        assert!(matches!(
            f.op(delete("/a", 5)),
            Err(Error::BadVersion { .. })
        ));
        let (outcome, changes) = f.run(0, TxnBody::Op(delete("/a/b", 1)));
        assert_eq!(outcome, TxnOutcome::Op(Ok(OpResult::Deleted)));
        assert_eq!(
            changes,
            [Change::Deleted {
                path: "/a/b".into()
            }]
        );
        let a = f.tree.stat("/a").unwrap();
        assert_eq!((a.num_children, a.cversion, a.pzxid), (0, 2, f.zxid));
        assert!(!f.tree.exists("/a/b"));
        assert!(f.op(delete("/a", 0)).is_ok());
        assert_eq!(f.tree.children("/").unwrap(), ["zookeeper"]);
        // A deleted path can be created again, as a new znode.
        let stat = f.mk("/a");
        assert_eq!(stat.czxid, f.zxid);
        // Children under /zookeeper can be deleted, like any znode.
        f.mk("/zookeeper/mine");
        assert!(f.op(delete("/zookeeper/mine", -1)).is_ok());
    }

    #[test]
    fn delete_checks_no_path_syntax_but_slash_and_nul() {
        let mut f = Fixture::new();
        f.mk("/r");
        f.mk("/r/x");
        // No `/`, a NUL, or a special path: BadArguments.
        for p in ["", "r", "\u{7f}", "/r/x\0y", "/zz\0", "/", "/zookeeper"] {
            assert_bad_args(f.op(delete(p, -1)));
        }
        // Anything else malformed is simply not found, the parent first.
        for (p, missing) in [
            ("r/x", "r"),
            ("/r/", "/r/"),
            ("//r", "//r"),
            ("/r//x", "/r/"),
            ("/r/.", "/r/."),
            ("/r/..", "/r/.."),
            ("/r/./x", "/r/."),
            ("/r/../x", "/r/.."),
            ("/r/\u{1}", "/r/\u{1}"),
            ("/r/\u{7f}", "/r/\u{7f}"),
            ("/\u{7f}", "/\u{7f}"),
            ("/zz/", "/zz"),
            ("/zookeeper/", "/zookeeper/"),
            ("//", "//"),
        ] {
            assert_eq!(
                f.op(delete(p, 5)),
                Err(Error::NoNode {
                    path: missing.into()
                }),
                "{p:?}"
            );
        }
        assert!(f.tree.exists("/r/x"));
        assert_eq!(f.tree.stat("/r").unwrap().cversion, 1);
    }

    #[test]
    fn check_rules() {
        let mut f = Fixture::new();
        f.mk("/a");
        assert_eq!(f.op(check("/a", 0)), Ok(OpResult::Checked));
        assert_eq!(f.op(check("/a", -1)), Ok(OpResult::Checked));
        assert!(matches!(
            f.op(check("/a", 1)),
            Err(Error::BadVersion {
                expected: 1,
                actual: 0,
                ..
            })
        ));
        assert_eq!(
            f.op(check("/b", -1)),
            Err(Error::NoNode { path: "/b".into() })
        );
        assert_bad_args(f.op(check("b", -1)));
        let (_, changes) = f.run(0, TxnBody::Op(check("/a", 0)));
        assert!(changes.is_empty());
    }

    #[test]
    fn set_acl_rules() {
        let mut f = Fixture::new();
        f.mk("/a");
        let acls_before = f.tree.acls.len();
        let (outcome, changes) = f.run(0, TxnBody::Op(set_acl("/a", digest("u"), 0)));
        let TxnOutcome::Op(Ok(OpResult::AclSet { stat })) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(changes, [Change::AclChanged { path: "/a".into() }]);
        assert_eq!((stat.aversion, stat.version, stat.mzxid), (1, 0, 101));
        assert_eq!(f.tree.acl("/a").unwrap(), (digest("u"), stat));
        assert_eq!(f.tree.acls.len(), acls_before + 1);
        assert!(matches!(
            f.op(set_acl("/a", digest("v"), 0)),
            Err(Error::BadVersion {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        assert_eq!(f.op(set_acl("/a", vec![], 1)), Err(Error::InvalidAcl));
        // InvalidAcl comes before NoNode, as in ZooKeeper.
        assert_eq!(f.op(set_acl("/nope", vec![], -1)), Err(Error::InvalidAcl));
        assert_eq!(
            f.op(set_acl("/nope", digest("v"), -1)),
            Err(Error::NoNode {
                path: "/nope".into()
            })
        );
        // Duplicates are dropped, as ZooKeeper's fixupACL does.
        let mut twice = digest("w");
        twice.extend(Acl::open_unsafe());
        twice.extend(digest("w"));
        assert!(f.op(set_acl("/a", twice, 1)).is_ok());
        let (acl, stat) = f.tree.acl("/a").unwrap();
        assert_eq!(acl, [digest("w")[0].clone(), Acl::open_unsafe()[0].clone()]);
        assert_eq!(stat.aversion, 2);
        // The digest("u") list is no longer held by anyone and was freed.
        assert_eq!(f.tree.acls.len(), acls_before + 1);
        f.op(set_acl("/a", Acl::open_unsafe(), -1)).unwrap();
        assert_eq!(f.tree.acls.len(), acls_before);
    }

    #[test]
    fn ephemerals_belong_to_their_session() {
        let mut f = Fixture::new();
        f.open_session(7);
        f.open_session(8);
        assert_eq!(
            f.tree.session(7),
            Some(&SessionInfo {
                timeout_ms: 10_000,
                password: vec![7; 16]
            })
        );
        f.mk("/locks");
        let stat = match f.op_as(7, create("/locks/a", b"", CreateMode::Ephemeral)) {
            Ok(OpResult::Created { stat, .. }) => stat,
            other => panic!("{other:?}"),
        };
        assert_eq!(stat.ephemeral_owner, 7);
        let seq = created_path(f.op_as(
            7,
            create("/locks/lock-", b"", CreateMode::EphemeralSequential),
        ));
        assert_eq!(seq, "/locks/lock-0000000001");
        f.op_as(8, create("/e8", b"", CreateMode::Ephemeral))
            .unwrap();
        f.op_as(7, create("/z", b"", CreateMode::Ephemeral))
            .unwrap();
        // A persistent create by a session is not ephemeral.
        f.op_as(7, create("/p", b"", CreateMode::Persistent))
            .unwrap();
        assert_eq!(f.tree.stat("/p").unwrap().ephemeral_owner, 0);
        assert_eq!(
            f.tree.ephemerals(7),
            ["/locks/a", "/locks/lock-0000000001", "/z"]
        );
        assert_eq!(f.tree.ephemerals(8), ["/e8"]);
        // Deleting one by hand takes it off the session's list.
        f.op(delete("/z", -1)).unwrap();
        assert_eq!(f.tree.ephemerals(7), ["/locks/a", "/locks/lock-0000000001"]);

        let changes = f.close_session(7);
        assert_eq!(
            changes,
            [
                Change::Deleted {
                    path: "/locks/a".into()
                },
                Change::Deleted {
                    path: "/locks/lock-0000000001".into()
                }
            ]
        );
        assert!(f.tree.session(7).is_none());
        assert!(f.tree.ephemerals(7).is_empty());
        assert!(f.tree.children("/locks").unwrap().is_empty());
        let locks = f.tree.stat("/locks").unwrap();
        assert_eq!(
            (locks.num_children, locks.cversion, locks.pzxid),
            (0, 4, f.zxid)
        );
        assert_eq!(f.tree.ephemerals(8), ["/e8"]);
        assert_eq!(f.tree.sessions().map(|(id, _)| id).collect::<Vec<_>>(), [8]);
        // Closing again, or closing an unknown session, changes nothing.
        let before = f.tree.dump();
        assert!(f.close_session(7).is_empty());
        assert!(f.close_session(12345).is_empty());
        assert_eq!(f.tree.dump(), before);
        // The closed session cannot create ephemerals any more.
        assert_eq!(
            f.op_as(7, create("/again", b"", CreateMode::Ephemeral)),
            Err(Error::SessionExpired { session: 7 })
        );
    }

    #[test]
    fn create_session_is_idempotent() {
        let mut f = Fixture::new();
        f.open_session(7);
        let body = TxnBody::CreateSession {
            session: 7,
            timeout_ms: 1,
            password: vec![],
        };
        assert_eq!(f.run(0, body), (TxnOutcome::SessionCreated, vec![]));
        assert_eq!(
            f.tree.session(7),
            Some(&SessionInfo {
                timeout_ms: 10_000,
                password: vec![7; 16]
            })
        );
        // Ids that read as container or TTL owners are not recorded.
        for id in [0, CONTAINER_OWNER, TTL_OWNER_MASK | 5, -1] {
            f.open_session(id);
            assert!(f.tree.session(id).is_none(), "{id:#x}");
        }
        assert_eq!(f.tree.sessions().count(), 1);
    }

    #[test]
    fn containers_are_reaped_once_emptied() {
        let mut f = Fixture::new();
        let stat = match f.op(create("/c", b"", CreateMode::Container)) {
            Ok(OpResult::Created { stat, .. }) => stat,
            other => panic!("{other:?}"),
        };
        assert_eq!(stat.ephemeral_owner, CONTAINER_OWNER);
        // Never had a child: kept.
        assert!(f.tree.reapable(i64::MAX).is_empty());
        f.mk("/c/x");
        assert!(f.tree.reapable(i64::MAX).is_empty());
        f.op(delete("/c/x", -1)).unwrap();
        assert_eq!(f.tree.reapable(0), [("/c".to_string(), 0)]);
        f.op(set("/c", b"v", -1)).unwrap();
        assert_eq!(f.tree.reapable(0), [("/c".to_string(), 1)]);
        // The reaper's conditional delete.
        f.op(delete("/c", 1)).unwrap();
        assert!(f.tree.reapable(0).is_empty());
        assert!(f.tree.containers.is_empty());
        // Containers may have children, even ephemeral ones.
        f.op(create("/c2", b"", CreateMode::Container)).unwrap();
        f.open_session(3);
        assert!(f
            .op_as(3, create("/c2/e", b"", CreateMode::Ephemeral))
            .is_ok());
        f.close_session(3);
        assert_eq!(f.tree.reapable(0), [("/c2".to_string(), 0)]);
    }

    #[test]
    fn ttl_nodes_expire_when_idle_and_childless() {
        let mut f = Fixture::new();
        f.now = 10_000;
        let stat = match f.op(create(
            "/t",
            b"",
            CreateMode::PersistentWithTtl { ttl_ms: 500 },
        )) {
            Ok(OpResult::Created { stat, .. }) => stat,
            other => panic!("{other:?}"),
        };
        assert_eq!(stat.ephemeral_owner, 0xFF00_0000_0000_01F4_u64 as i64);
        assert_eq!(stat.ephemeral_owner, TTL_OWNER_MASK | 500);
        let path = created_path(f.op(create(
            "/s-",
            b"",
            CreateMode::PersistentSequentialWithTtl { ttl_ms: MAX_TTL_MS },
        )));
        assert_eq!(
            f.tree.stat(&path).unwrap().ephemeral_owner,
            TTL_OWNER_MASK | MAX_TTL_MS
        );
        assert!(f.tree.reapable(10_500).is_empty());
        assert_eq!(f.tree.reapable(10_501), [("/t".to_string(), 0)]);
        // A child keeps it.
        f.now = 20_000;
        f.mk("/t/x");
        assert!(f.tree.reapable(30_000).is_empty());
        f.op(delete("/t/x", -1)).unwrap();
        // A write restarts the clock (mtime).
        f.now = 29_800;
        f.op(set("/t", b"", -1)).unwrap();
        assert!(f.tree.reapable(30_000).is_empty());
        assert_eq!(f.tree.reapable(30_301), [("/t".to_string(), 1)]);
        // Nothing, TTL nodes included, can be created under an ephemeral.
        f.open_session(4);
        f.op_as(4, create("/e", b"", CreateMode::Ephemeral))
            .unwrap();
        assert!(matches!(
            f.op(create(
                "/e/t",
                b"",
                CreateMode::PersistentWithTtl { ttl_ms: 5 }
            )),
            Err(Error::NoChildrenForEphemerals { .. })
        ));
    }

    #[test]
    fn multi_applies_in_order_and_sees_its_own_writes() {
        let mut f = Fixture::new();
        let (result, changes) = f.multi(vec![
            create("/m", b"", CreateMode::Persistent),
            create("/m/s-", b"", CreateMode::PersistentSequential),
            create("/m/s-", b"", CreateMode::PersistentSequential),
            set("/m", b"data", 0),
            check("/m", 1),
            set_acl("/m/s-0000000000", digest("u"), 0),
            delete("/m/s-0000000001", 0),
        ]);
        let results = result.unwrap();
        assert_eq!(results.len(), 7);
        let OpResult::Created { stat, .. } = &results[0] else {
            panic!("{results:?}")
        };
        assert_eq!(stat.czxid, f.zxid);
        assert!(
            matches!(&results[2], OpResult::Created { path, .. } if path == "/m/s-0000000001"),
            "{results:?}"
        );
        assert_eq!(results[4], OpResult::Checked);
        assert_eq!(results[6], OpResult::Deleted);
        assert_eq!(
            changes,
            [
                Change::Created { path: "/m".into() },
                Change::Created {
                    path: "/m/s-0000000000".into()
                },
                Change::Created {
                    path: "/m/s-0000000001".into()
                },
                Change::DataChanged { path: "/m".into() },
                Change::AclChanged {
                    path: "/m/s-0000000000".into()
                },
                Change::Deleted {
                    path: "/m/s-0000000001".into()
                },
            ]
        );
        assert_eq!(f.tree.children("/m").unwrap(), ["s-0000000000"]);
        let m = f.tree.stat("/m").unwrap();
        assert_eq!(
            (m.cversion, m.num_children, m.version, m.pzxid),
            (3, 1, 1, f.zxid)
        );
        // An empty multi is fine and does nothing.
        let before = f.tree.dump();
        assert_eq!(f.multi(vec![]), (Ok(vec![]), vec![]));
        assert_eq!(f.tree.dump(), before);
    }

    #[test]
    fn an_expiry_applies_only_in_the_term_that_decided_it() {
        let mut f = Fixture::new();
        f.open_session(5);
        f.op_as(5, create("/eph", b"", CreateMode::Ephemeral))
            .unwrap();
        let expire = |f: &mut Fixture, decided: u64, committed: u64| {
            f.zxid += 1;
            f.tree.apply(&Txn {
                term: committed,
                zxid: f.zxid,
                time_ms: 99,
                session: 5,
                body: TxnBody::ExpireSession {
                    session: 5,
                    term: decided,
                },
            })
        };
        // A deposed leader's verdict, committed under the next leader: nothing happens.
        let (outcome, changes) = expire(&mut f, 3, 4);
        assert_eq!(outcome, TxnOutcome::SessionClosed);
        assert!(changes.is_empty());
        assert!(f.tree.session(5).is_some());
        assert_eq!(f.tree.ephemerals(5), vec!["/eph".to_string()]);
        // The current leader's verdict closes the session and deletes its ephemerals.
        let (_, changes) = expire(&mut f, 4, 4);
        assert!(!changes.is_empty());
        assert!(f.tree.session(5).is_none());
        assert!(f.tree.get("/eph").is_err());
    }

    #[test]
    fn failed_multi_changes_nothing() {
        let mut f = Fixture::new();
        f.open_session(5);
        f.mk("/a");
        f.mk("/a/old");
        f.op(set("/a/old", b"old data", -1)).unwrap();
        f.op(create("/c", b"", CreateMode::Container)).unwrap();
        f.op_as(5, create("/eph", b"", CreateMode::Ephemeral))
            .unwrap();
        let before = f.tree.dump();
        let acls_before = f.tree.acls.len();
        f.zxid += 1;
        let txn = Txn {
            term: 0,
            zxid: f.zxid,
            time_ms: 99,
            session: 5,
            body: TxnBody::Multi(vec![
                create("/a/new", b"x", CreateMode::Persistent),
                create("/a/seq-", b"x", CreateMode::PersistentSequential),
                create("/c/child", b"", CreateMode::Persistent),
                create("/a/e", b"", CreateMode::Ephemeral),
                create("/t", b"", CreateMode::PersistentWithTtl { ttl_ms: 10 }),
                create("/c2", b"", CreateMode::Container),
                set("/a/old", b"new data", 1),
                set_acl("/a", digest("someone"), 0),
                delete("/a/old", 2),
                create("/a/old", b"recreated", CreateMode::Persistent),
                delete("/eph", -1),
                delete("/c/child", -1),
                check("/a/old", 1),
            ]),
        };
        let (outcome, changes) = f.tree.apply(&txn);
        assert_eq!(
            outcome,
            TxnOutcome::Multi(Err(MultiFailure {
                index: 12,
                error: Error::BadVersion {
                    path: "/a/old".into(),
                    expected: 1,
                    actual: 0
                },
            }))
        );
        assert!(changes.is_empty());
        assert_eq!(f.tree.dump(), before);
        assert_eq!(f.tree.acls.len(), acls_before);
        assert_eq!(f.tree.ephemerals(5), ["/eph"]);
        assert!(f.tree.ttls.is_empty());
        assert_eq!(f.tree.containers.len(), 1);
        // The first op failing, and an error in the middle.
        let (result, changes) = f.multi(vec![
            delete("/nope", -1),
            create("/x", b"", CreateMode::Persistent),
        ]);
        assert_eq!(
            result,
            Err(MultiFailure {
                index: 0,
                error: Error::NoNode {
                    path: "/nope".into()
                }
            })
        );
        assert!(changes.is_empty());
        let (result, _) = f.multi(vec![
            create("/x", b"", CreateMode::Persistent),
            create("/x", b"", CreateMode::Persistent),
        ]);
        assert_eq!(
            result,
            Err(MultiFailure {
                index: 1,
                error: Error::NodeExists { path: "/x".into() }
            })
        );
        assert_eq!(f.tree.dump(), before);
        // The tree works normally afterwards, and sequence numbers were not consumed.
        assert_eq!(
            created_path(f.op(create("/a/seq-", b"", CreateMode::PersistentSequential))),
            "/a/seq-0000000001"
        );
    }

    #[test]
    fn descendants_are_counted_without_the_node_itself() {
        let mut f = Fixture::new();
        for p in ["/a", "/a/b", "/a/b/c", "/a/d", "/ab", "/ab/x", "/a/b/c/e"] {
            f.mk(p);
        }
        assert_eq!(f.tree.count_descendants("/a").unwrap(), 4);
        assert_eq!(f.tree.count_descendants("/a/b").unwrap(), 2);
        assert_eq!(f.tree.count_descendants("/a/d").unwrap(), 0);
        assert_eq!(f.tree.count_descendants("/ab").unwrap(), 1);
        assert_eq!(f.tree.count_descendants("/").unwrap(), 3 + 7);
        assert!(matches!(
            f.tree.count_descendants("/zz"),
            Err(Error::NoNode { .. })
        ));
        assert_eq!(f.tree.children("/a").unwrap(), ["b", "d"]);
    }

    #[test]
    fn children_are_sorted_bytewise() {
        let mut f = Fixture::new();
        f.mk("/p");
        for name in ["b", "a", "B", "a-1", "a0", "é", "aa"] {
            f.mk(&format!("/p/{name}"));
        }
        assert_eq!(
            f.tree.children("/p").unwrap(),
            ["B", "a", "a-1", "a0", "aa", "b", "é"]
        );
        assert_eq!(f.tree.stat("/p").unwrap().num_children, 7);
    }

    #[test]
    fn bincode_snapshot_round_trips() {
        let mut f = Fixture::new();
        f.open_session(9);
        f.mk("/a");
        f.op(set("/a", b"data", -1)).unwrap();
        f.op(set_acl("/a", digest("u"), -1)).unwrap();
        f.op_as(9, create("/a/e", b"", CreateMode::Ephemeral))
            .unwrap();
        f.op(create("/c", b"", CreateMode::Container)).unwrap();
        f.op(create(
            "/t",
            b"",
            CreateMode::PersistentWithTtl { ttl_ms: 7 },
        ))
        .unwrap();
        let bytes = bincode::serialize(&f.tree).unwrap();
        let restored: Tree = bincode::deserialize(&bytes).unwrap();
        assert_eq!(restored.dump(), f.tree.dump());
        assert_eq!(
            bincode::serialize(&restored).unwrap(),
            bytes,
            "snapshots are deterministic"
        );
        // Both go on identically, ACL ids included.
        let mut g = Fixture {
            tree: restored,
            zxid: f.zxid,
            now: f.now,
        };
        for fx in [&mut f, &mut g] {
            fx.op(set_acl("/a", Acl::open_unsafe(), -1)).unwrap();
            fx.op(create("/b", b"", CreateMode::Persistent)).unwrap();
            fx.op(set_acl("/b", digest("v"), -1)).unwrap();
            fx.close_session(9);
        }
        assert_eq!(g.tree.dump(), f.tree.dump());
        assert_eq!(
            bincode::serialize(&g.tree).unwrap(),
            bincode::serialize(&f.tree).unwrap()
        );
    }

    /// Builds a million znodes of 100 bytes and reports the process's resident memory with
    /// and without a bincode snapshot in memory. Run alone:
    /// `cargo test -p quorumfs-ensemble --lib -- --ignored --nocapture million`.
    #[test]
    #[ignore]
    fn million_znodes_fit_in_memory() {
        fn rss_mib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                / 1024
        }
        let base = rss_mib();
        let mut tree = Tree::new();
        let mut zxid = 0;
        let mut apply = |tree: &mut Tree, op: Op| {
            zxid += 1;
            let (outcome, _) = tree.apply(&Txn {
                term: 0,
                zxid,
                time_ms: zxid,
                session: 0,
                body: TxnBody::Op(op),
            });
            assert!(matches!(outcome, TxnOutcome::Op(Ok(_))), "{outcome:?}");
        };
        for dir in 0..1000 {
            apply(
                &mut tree,
                create(&format!("/app-{dir:04}"), b"", CreateMode::Persistent),
            );
            for leaf in 0..1000 {
                apply(
                    &mut tree,
                    create(
                        &format!("/app-{dir:04}/node-{leaf:06}"),
                        &[b'x'; 100],
                        CreateMode::Persistent,
                    ),
                );
            }
        }
        let built = rss_mib();
        let snapshot = bincode::serialize(&tree).unwrap();
        let with_snapshot = rss_mib();
        eprintln!(
            "znodes {} rss: base {base} MiB, tree {built} MiB, with snapshot {with_snapshot} MiB (snapshot {} MiB)",
            tree.znode_count(),
            snapshot.len() >> 20
        );
        assert!(with_snapshot < 1024, "{with_snapshot} MiB");
    }

    /// Differential test against a deliberately simple reference model.
    mod model_check {
        use std::collections::BTreeMap;

        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        /// Paths the generated ops name (sequential creates add more under them).
        const PATHS: [&str; 7] = ["/a", "/b", "/a/b", "/a/c", "/b/a", "/a/b/c", "/zookeeper/x"];
        /// The one session ephemerals are created by.
        const SESSION: SessionId = 1;

        #[derive(Debug, Clone)]
        enum MOp {
            Create {
                path: usize,
                data: Vec<u8>,
                seq: bool,
                eph: bool,
            },
            Delete {
                path: usize,
                version: i32,
            },
            SetData {
                path: usize,
                data: Vec<u8>,
                version: i32,
            },
            Check {
                path: usize,
                version: i32,
            },
        }

        impl MOp {
            fn to_op(&self) -> Op {
                match self {
                    MOp::Create {
                        path,
                        data,
                        seq,
                        eph,
                    } => Op::Create {
                        path: PATHS[*path].into(),
                        data: data.clone(),
                        acl: Acl::open_unsafe(),
                        mode: match (seq, eph) {
                            (false, false) => CreateMode::Persistent,
                            (true, false) => CreateMode::PersistentSequential,
                            (false, true) => CreateMode::Ephemeral,
                            (true, true) => CreateMode::EphemeralSequential,
                        },
                    },
                    MOp::Delete { path, version } => Op::Delete {
                        path: PATHS[*path].into(),
                        version: *version,
                    },
                    MOp::SetData {
                        path,
                        data,
                        version,
                    } => Op::SetData {
                        path: PATHS[*path].into(),
                        data: data.clone(),
                        version: *version,
                    },
                    MOp::Check { path, version } => Op::Check {
                        path: PATHS[*path].into(),
                        version: *version,
                    },
                }
            }
        }

        #[derive(Debug, Clone)]
        enum Step {
            Op(MOp),
            Multi(Vec<MOp>),
            OpenSession,
            CloseSession,
        }

        /// Which error, without its details.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum E {
            NoNode,
            NodeExists,
            BadVersion,
            NotEmpty,
            NoChildrenForEphemerals,
            SessionExpired,
            Other,
        }

        fn kind(error: &Error) -> E {
            match error {
                Error::NoNode { .. } => E::NoNode,
                Error::NodeExists { .. } => E::NodeExists,
                Error::BadVersion { .. } => E::BadVersion,
                Error::NotEmpty { .. } => E::NotEmpty,
                Error::NoChildrenForEphemerals { .. } => E::NoChildrenForEphemerals,
                Error::SessionExpired { .. } => E::SessionExpired,
                _ => E::Other,
            }
        }

        #[derive(Debug, Clone)]
        struct MNode {
            data: Vec<u8>,
            version: i32,
            /// Creates plus deletes of children (from -1 for `/`, -2 for `/zookeeper`).
            cversion: i32,
            /// Creates of children: the next sequence number.
            creates: i32,
            owner: i64,
        }

        #[derive(Debug, Clone)]
        struct Model {
            nodes: BTreeMap<String, MNode>,
            session_open: bool,
        }

        fn parent(path: &str) -> &str {
            match path.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &path[..i],
            }
        }

        impl Model {
            fn new() -> Model {
                let node = |cversion| MNode {
                    data: vec![],
                    version: 0,
                    cversion,
                    creates: 0,
                    owner: 0,
                };
                let nodes = [
                    ("/", -1),
                    ("/zookeeper", -2),
                    ("/zookeeper/quota", 0),
                    ("/zookeeper/config", 0),
                ]
                .into_iter()
                .map(|(p, cversion)| (p.to_string(), node(cversion)))
                .collect();
                Model {
                    nodes,
                    session_open: false,
                }
            }

            fn children(&self, path: &str) -> Vec<String> {
                let mut names: Vec<String> = self
                    .nodes
                    .keys()
                    .filter(|p| p.as_str() != "/" && parent(p) == path)
                    .map(|p| p.rsplit('/').next().unwrap_or_default().to_string())
                    .collect();
                names.sort();
                names
            }

            /// Applies one op; on success returns the path it created, if any.
            fn apply(&mut self, op: &MOp) -> Result<Option<String>, E> {
                match op {
                    MOp::Create {
                        path,
                        data,
                        seq,
                        eph,
                    } => {
                        if *eph && !self.session_open {
                            return Err(E::SessionExpired);
                        }
                        let prefix = PATHS[*path];
                        let (creates, parent_owner) = self
                            .nodes
                            .get(parent(prefix))
                            .map(|p| (p.creates, p.owner))
                            .ok_or(E::NoNode)?;
                        let path = if *seq {
                            format!("{prefix}{creates:010}")
                        } else {
                            prefix.to_string()
                        };
                        if self.nodes.contains_key(&path) {
                            return Err(E::NodeExists);
                        }
                        if parent_owner != 0 {
                            return Err(E::NoChildrenForEphemerals);
                        }
                        if let Some(p) = self.nodes.get_mut(parent(&path)) {
                            p.cversion += 1;
                            p.creates += 1;
                        }
                        let owner = if *eph { SESSION } else { 0 };
                        self.nodes.insert(
                            path.clone(),
                            MNode {
                                data: data.clone(),
                                version: 0,
                                cversion: 0,
                                creates: 0,
                                owner,
                            },
                        );
                        Ok(Some(path))
                    }
                    MOp::Delete { path, version } => {
                        let path = PATHS[*path];
                        if !self.nodes.contains_key(parent(path)) {
                            return Err(E::NoNode);
                        }
                        let node = self.nodes.get(path).ok_or(E::NoNode)?;
                        if *version != -1 && *version != node.version {
                            return Err(E::BadVersion);
                        }
                        if !self.children(path).is_empty() {
                            return Err(E::NotEmpty);
                        }
                        self.remove(path);
                        Ok(None)
                    }
                    MOp::SetData {
                        path,
                        data,
                        version,
                    } => {
                        let node = self.nodes.get_mut(PATHS[*path]).ok_or(E::NoNode)?;
                        if *version != -1 && *version != node.version {
                            return Err(E::BadVersion);
                        }
                        node.data = data.clone();
                        node.version += 1;
                        Ok(None)
                    }
                    MOp::Check { path, version } => {
                        let node = self.nodes.get(PATHS[*path]).ok_or(E::NoNode)?;
                        if *version != -1 && *version != node.version {
                            return Err(E::BadVersion);
                        }
                        Ok(None)
                    }
                }
            }

            /// Closes the session; returns the paths it deleted, sorted.
            fn close(&mut self) -> Vec<String> {
                self.session_open = false;
                let gone: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.owner == SESSION)
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in &gone {
                    self.remove(p);
                }
                gone
            }

            /// Removes a znode; its parent counts a change of its children.
            fn remove(&mut self, path: &str) {
                self.nodes.remove(path);
                if let Some(p) = self.nodes.get_mut(parent(path)) {
                    p.cversion += 1;
                }
            }
        }

        fn mop() -> impl Strategy<Value = MOp> {
            let path = 0..PATHS.len();
            let data = vec(any::<u8>(), 0..4);
            let version = -1i32..3;
            prop_oneof![
                4 => (path.clone(), data.clone(), any::<bool>(), any::<bool>())
                    .prop_map(|(path, data, seq, eph)| MOp::Create { path, data, seq, eph }),
                2 => (path.clone(), version.clone()).prop_map(|(path, version)| MOp::Delete { path, version }),
                2 => (path.clone(), data, version.clone())
                    .prop_map(|(path, data, version)| MOp::SetData { path, data, version }),
                1 => (path, version).prop_map(|(path, version)| MOp::Check { path, version }),
            ]
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                8 => mop().prop_map(Step::Op),
                4 => vec(mop(), 0..5).prop_map(Step::Multi),
                1 => Just(Step::OpenSession),
                1 => Just(Step::CloseSession),
            ]
        }

        /// The tree and the model agree on everything the model knows.
        fn agree(tree: &Tree, model: &Model) -> Result<(), TestCaseError> {
            prop_assert_eq!(tree.znode_count(), model.nodes.len());
            for (path, node) in &model.nodes {
                let (data, stat) = tree
                    .get(path)
                    .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
                prop_assert_eq!(data, node.data.as_slice(), "data of {}", path);
                prop_assert_eq!(stat.version, node.version, "version of {}", path);
                prop_assert_eq!(stat.cversion, node.cversion, "cversion of {}", path);
                let seq = tree.node(path).map(|n| n.seq).unwrap_or_default();
                prop_assert_eq!(seq, node.creates, "create count of {}", path);
                prop_assert_eq!(
                    stat.cversion,
                    2 * seq - stat.num_children,
                    "ZooKeeper's copyStat rule for {}",
                    path
                );
                prop_assert_eq!(stat.ephemeral_owner, node.owner, "owner of {}", path);
                prop_assert_eq!(stat.data_length as usize, node.data.len());
                let children = model.children(path);
                prop_assert_eq!(
                    stat.num_children as usize,
                    children.len(),
                    "numChildren of {}",
                    path
                );
                prop_assert_eq!(
                    tree.children(path).unwrap_or_default(),
                    children,
                    "children of {}",
                    path
                );
            }
            let ephemerals: Vec<String> = model
                .nodes
                .iter()
                .filter(|(_, n)| n.owner == SESSION)
                .map(|(p, _)| p.clone())
                .collect();
            prop_assert_eq!(tree.ephemerals(SESSION), ephemerals);
            prop_assert_eq!(tree.session(SESSION).is_some(), model.session_open);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

            #[test]
            fn tree_agrees_with_reference_model(steps in vec(step(), 1..40)) {
                let mut tree = Tree::new();
                let mut model = Model::new();
                for (i, step) in steps.iter().enumerate() {
                    let zxid = i as i64 + 1;
                    let txn = |body| Txn { zxid, term: 0, time_ms: zxid * 10, session: SESSION, body };
                    match step {
                        Step::OpenSession => {
                            let body = TxnBody::CreateSession { session: SESSION, timeout_ms: 1, password: vec![] };
                            prop_assert_eq!(tree.apply(&txn(body)), (TxnOutcome::SessionCreated, vec![]));
                            model.session_open = true;
                        }
                        Step::CloseSession => {
                            let (outcome, changes) = tree.apply(&txn(TxnBody::CloseSession { session: SESSION }));
                            prop_assert_eq!(outcome, TxnOutcome::SessionClosed);
                            let gone: Vec<Change> = model.close().into_iter().map(|path| Change::Deleted { path }).collect();
                            prop_assert_eq!(changes, gone);
                        }
                        Step::Op(op) => {
                            let before = tree.dump();
                            let (outcome, changes) = tree.apply(&txn(TxnBody::Op(op.to_op())));
                            let expected = model.apply(op);
                            match (outcome, expected) {
                                (TxnOutcome::Op(Ok(result)), Ok(created)) => {
                                    if let Some(path) = created {
                                        prop_assert_eq!(result, OpResult::Created { path: path.clone(), stat: tree.stat(&path).unwrap_or_default() });
                                    }
                                    let visible = !matches!(op, MOp::Check { .. });
                                    prop_assert_eq!(changes.len(), usize::from(visible));
                                }
                                (TxnOutcome::Op(Err(error)), Err(e)) => {
                                    prop_assert_eq!(kind(&error), e);
                                    prop_assert!(changes.is_empty());
                                    prop_assert_eq!(tree.dump(), before);
                                }
                                (outcome, expected) => prop_assert!(false, "{:?}: tree {:?}, model {:?}", op, outcome, expected),
                            }
                        }
                        Step::Multi(ops) => {
                            let before = tree.dump();
                            let (outcome, changes) = tree.apply(&txn(TxnBody::Multi(ops.iter().map(MOp::to_op).collect())));
                            let mut scratch = model.clone();
                            let failure = ops.iter().enumerate().find_map(|(i, op)| scratch.apply(op).err().map(|e| (i, e)));
                            match (outcome, failure) {
                                (TxnOutcome::Multi(Ok(results)), None) => {
                                    prop_assert_eq!(results.len(), ops.len());
                                    let visible = ops.iter().filter(|op| !matches!(op, MOp::Check { .. })).count();
                                    prop_assert_eq!(changes.len(), visible);
                                    model = scratch;
                                }
                                (TxnOutcome::Multi(Err(MultiFailure { index, error })), Some((i, e))) => {
                                    prop_assert_eq!((index, kind(&error)), (i, e));
                                    prop_assert!(changes.is_empty());
                                    prop_assert_eq!(tree.dump(), before, "a failed multi changed the tree");
                                }
                                (outcome, failure) => prop_assert!(false, "{:?}: tree {:?}, model {:?}", ops, outcome, failure),
                            }
                        }
                    }
                    agree(&tree, &model)?;
                }
            }
        }
    }
}
