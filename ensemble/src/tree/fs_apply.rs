//! How the filesystem-only operations ([`FsOp`]) change the tree: creates with file
//! metadata, metadata changes, rename of a znode with its subtree, and lock requests.
//!
//! Each checks everything before it writes, so a refused op changes nothing. They are
//! never part of a multi.

use std::ops::Bound;

use super::apply::{no_node, parent_part, Apply};
use super::data_tree::Kind;
use super::locks::{Acquired, Grant};
use super::model::{Acl, Change, FileMeta, FsOp, FsResult, OpResult};
use super::path::{self, validate_path, SPECIAL_PATHS};
use crate::{Error, Result};

/// `S_IFMT` and `S_IFDIR` (the same on every Linux architecture).
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;

impl Apply<'_> {
    pub(super) fn fs_op(&mut self, op: &FsOp) -> Result<FsResult> {
        match op {
            FsOp::Create {
                path,
                data,
                mode,
                meta,
            } => match self.create(path, data, &Acl::open_unsafe(), *mode, *meta)? {
                OpResult::Created { path, stat } => Ok(FsResult::Created { path, stat }),
                _ => Err(Error::BadArguments {
                    reason: "create gave no node".into(),
                }),
            },
            FsOp::SetMeta { path, meta } => self.set_meta(path, *meta),
            FsOp::Rename { from, to, replace } => self.rename(from, to, *replace),
            FsOp::Lock {
                path,
                owner,
                exclusive,
                wait,
            } => self.lock(path, *owner, *exclusive, *wait),
            FsOp::Unlock { path, owner } => {
                let mut grants = Vec::new();
                let holder = (self.txn.session, *owner);
                self.tree.locks.release(path, holder, &mut grants);
                self.report_grants(grants);
                Ok(FsResult::Unlocked)
            }
        }
    }

    /// Reports grants made by a release as [`Change::LockGranted`].
    pub(super) fn report_grants(&mut self, grants: Vec<Grant>) {
        for (path, (session, owner), fence) in grants {
            self.changes.push(Change::LockGranted {
                path,
                session,
                owner,
                fence,
            });
        }
    }

    fn set_meta(&mut self, path: &str, meta: FileMeta) -> Result<FsResult> {
        let key = path::key(path).ok_or_else(|| no_node(path))?;
        let node = self
            .tree
            .nodes
            .get_mut(key.as_str())
            .ok_or_else(|| no_node(path))?;
        node.meta = meta;
        self.changes.push(Change::MetaChanged {
            path: path.to_owned(),
        });
        Ok(FsResult::MetaSet)
    }

    fn lock(&mut self, path: &str, owner: u64, exclusive: bool, wait: bool) -> Result<FsResult> {
        let session = self.txn.session;
        if !self.tree.sessions.contains_key(&session) {
            return Err(Error::SessionExpired { session });
        }
        let mut grants = Vec::new();
        let got = self
            .tree
            .locks
            .acquire(path, (session, owner), exclusive, wait, &mut grants);
        self.report_grants(grants);
        Ok(match got {
            Acquired::Granted(fence) => FsResult::Locked { fence },
            Acquired::Queued => FsResult::Queued,
            Acquired::WouldBlock => FsResult::WouldBlock,
        })
    }

    /// Whether the znode under `key` is a directory: made by mkdir, or with children.
    fn is_dir(&self, key: &str) -> bool {
        self.tree
            .nodes
            .get(key)
            .is_some_and(|n| n.meta.mode & S_IFMT == S_IFDIR || n.stat.num_children > 0)
    }

    /// rename(2) of a znode and everything under it. The moved znodes keep their Stat;
    /// the old parent sees a delete and the new one a create (cversion, pzxid, the create
    /// count). An existing `to` is replaced when it has no children and is of the same
    /// kind (the kernel has already refused a file over a directory and the reverse).
    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<FsResult> {
        validate_path(to, false)?;
        if SPECIAL_PATHS.contains(&from) || SPECIAL_PATHS.contains(&to) {
            return Err(Error::BadArguments {
                reason: format!("{from} or {to} cannot be renamed"),
            });
        }
        let from_parent = parent_part(from)?;
        let to_parent = parent_part(to)?;
        let from_key = path::key(from).ok_or_else(|| no_node(from))?;
        let to_key = path::key(to).ok_or_else(|| no_node(to))?;
        if !self.tree.nodes.contains_key(from_key.as_str()) {
            return Err(no_node(from));
        }
        if from == to {
            return Ok(FsResult::Renamed);
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(Error::BadArguments {
                reason: format!("cannot move {from} into itself"),
            });
        }
        let to_parent_stat = self
            .tree
            .stat(to_parent)
            .ok_or_else(|| no_node(to_parent))?;
        if matches!(Kind::of(to_parent_stat.ephemeral_owner), Kind::Ephemeral(_)) {
            return Err(Error::NoChildrenForEphemerals {
                path: to_parent.to_owned(),
            });
        }
        if let Some(target) = self.tree.nodes.get(to_key.as_str()) {
            if !replace {
                return Err(Error::NodeExists {
                    path: to.to_owned(),
                });
            }
            if target.stat.num_children > 0 {
                return Err(Error::NotEmpty {
                    path: to.to_owned(),
                });
            }
            if self.is_dir(&from_key) != self.is_dir(&to_key) {
                return Err(Error::BadArguments {
                    reason: format!("{from} and {to} are not of the same kind"),
                });
            }
            self.unlink(to, &to_key);
        }

        // The subtree: the znode, its children ("from\0name") and deeper ("from/...").
        let mut keys: Vec<Box<str>> = vec![from_key.as_str().into()];
        for prefix in [path::child_prefix(from), format!("{from}/")] {
            keys.extend(
                self.tree
                    .nodes
                    .range::<_, str>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                    .map(|(k, _)| k.clone())
                    .take_while(|k| k.starts_with(prefix.as_str())),
            );
        }
        let mut moved = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some((key, node)) = self.tree.remove_node(&key) {
                let old = path::path_of_key(&key);
                moved.push((format!("{to}{}", &old[from.len()..]), node));
            }
        }
        for (new_path, node) in moved {
            if let Some(key) = path::key(&new_path) {
                self.tree.insert_node(key.into(), node);
            }
        }

        let zxid = self.txn.zxid;
        if let Some(key) = path::key(from_parent) {
            self.update_parent(key, |stat, _| {
                stat.cversion = stat.cversion.wrapping_add(1);
                stat.pzxid = zxid;
                stat.num_children = stat.num_children.wrapping_sub(1);
            });
        }
        if let Some(key) = path::key(to_parent) {
            self.update_parent(key, |stat, seq| {
                *seq = seq.wrapping_add(1);
                stat.cversion = stat.cversion.wrapping_add(1);
                stat.pzxid = zxid;
                stat.num_children = stat.num_children.wrapping_add(1);
            });
        }
        self.changes.push(Change::Renamed {
            from: from.to_owned(),
            to: to.to_owned(),
        });
        Ok(FsResult::Renamed)
    }
}

#[cfg(test)]
mod tests {
    use crate::tree::{
        Change, CreateMode, FileMeta, FsOp, FsResult, Tree, Txn, TxnBody, TxnOutcome,
    };

    fn run(tree: &mut Tree, zxid: i64, session: i64, op: FsOp) -> (TxnOutcome, Vec<Change>) {
        tree.apply(&Txn {
            term: 0,
            zxid,
            time_ms: 1,
            session,
            body: TxnBody::Fs(op),
        })
    }

    fn mk(tree: &mut Tree, zxid: i64, path: &str, mode: u32) {
        let (out, _) = run(
            tree,
            zxid,
            0,
            FsOp::Create {
                path: path.into(),
                data: b"x".to_vec(),
                mode: CreateMode::Persistent,
                meta: FileMeta {
                    mode,
                    uid: 7,
                    gid: 8,
                },
            },
        );
        assert!(
            matches!(out, TxnOutcome::Fs(Ok(FsResult::Created { .. }))),
            "{out:?}"
        );
    }

    #[test]
    fn rename_moves_a_subtree_and_keeps_stat_and_meta() {
        let mut t = Tree::new();
        mk(&mut t, 1, "/a", 0o040_755);
        mk(&mut t, 2, "/a/b", 0o100_644);
        mk(&mut t, 3, "/a/b2", 0o100_644);
        mk(&mut t, 4, "/c", 0o040_755);
        let before = t.file_meta("/a/b").map(|(m, s)| (m, s.czxid));
        let (out, changes) = run(
            &mut t,
            5,
            0,
            FsOp::Rename {
                from: "/a".into(),
                to: "/c/a".into(),
                replace: true,
            },
        );
        assert_eq!(out, TxnOutcome::Fs(Ok(FsResult::Renamed)));
        assert_eq!(
            changes,
            [Change::Renamed {
                from: "/a".into(),
                to: "/c/a".into()
            }]
        );
        assert!(!t.exists("/a") && !t.exists("/a/b"));
        assert_eq!(t.file_meta("/c/a/b").map(|(m, s)| (m, s.czxid)), before);
        assert_eq!(t.children("/c/a").ok(), Some(vec!["b".into(), "b2".into()]));
        assert_eq!(t.stat("/c").map(|s| s.num_children), Some(1));
        assert_eq!(t.stat("/").map(|s| s.num_children), Some(2));
    }

    #[test]
    fn rename_replaces_a_file_but_not_a_nonempty_dir() {
        let mut t = Tree::new();
        mk(&mut t, 1, "/f", 0o100_644);
        mk(&mut t, 2, "/g", 0o100_644);
        let (out, changes) = run(
            &mut t,
            3,
            0,
            FsOp::Rename {
                from: "/f".into(),
                to: "/g".into(),
                replace: true,
            },
        );
        assert_eq!(out, TxnOutcome::Fs(Ok(FsResult::Renamed)));
        assert_eq!(changes.len(), 2);
        assert_eq!(t.stat("/g").map(|s| s.czxid), Some(1));
        mk(&mut t, 4, "/d", 0o040_755);
        mk(&mut t, 5, "/d/x", 0o100_644);
        mk(&mut t, 6, "/e", 0o040_755);
        let (out, changes) = run(
            &mut t,
            7,
            0,
            FsOp::Rename {
                from: "/e".into(),
                to: "/d".into(),
                replace: true,
            },
        );
        assert!(matches!(
            out,
            TxnOutcome::Fs(Err(crate::Error::NotEmpty { .. }))
        ));
        assert!(changes.is_empty() && t.exists("/e") && t.exists("/d/x"));
    }

    #[test]
    fn locks_need_a_live_session_and_closing_it_grants_the_next() {
        let mut t = Tree::new();
        for (zxid, s) in [(1, 11), (2, 22)] {
            t.apply(&Txn {
                term: 0,
                zxid,
                time_ms: 1,
                session: 0,
                body: TxnBody::CreateSession {
                    session: s,
                    timeout_ms: 1000,
                    password: vec![],
                },
            });
        }
        let lock = |wait| FsOp::Lock {
            path: "/l".into(),
            owner: 5,
            exclusive: true,
            wait,
        };
        assert!(matches!(
            run(&mut t, 3, 99, lock(true)).0,
            TxnOutcome::Fs(Err(crate::Error::SessionExpired { .. }))
        ));
        assert_eq!(
            run(&mut t, 4, 11, lock(true)).0,
            TxnOutcome::Fs(Ok(FsResult::Locked { fence: 1 }))
        );
        assert_eq!(
            run(&mut t, 5, 22, lock(true)).0,
            TxnOutcome::Fs(Ok(FsResult::Queued))
        );
        let (_, changes) = t.apply(&Txn {
            term: 0,
            zxid: 6,
            time_ms: 1,
            session: 0,
            body: TxnBody::CloseSession { session: 11 },
        });
        assert_eq!(
            changes,
            [Change::LockGranted {
                path: "/l".into(),
                session: 22,
                owner: 5,
                fence: 2
            }]
        );
    }
}
