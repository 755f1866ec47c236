//! Executes one decoded client request against the replica: reads from the local tree,
//! writes through the ensemble, watches in the node's [`WatchTable`]. It maps between the
//! wire records and the ensemble's types and nothing else; framing and the session
//! handshake belong to `connection`, the ACL rules to `acl`.
//!
//! ACLs are enforced as ZooKeeper does, NoNode before NoAuth: reads check the node's ACL
//! on the local replica inside the read. Writes are checked before they are proposed (see
//! [`Session::authorize`]).

use std::collections::HashMap;

use quorumfs_ensemble::tree::{self as zt, Op, OpResult, Tree, TxnBody, TxnOutcome};
use quorumfs_ensemble::Error;

use super::acl::{self, ADMIN, CREATE, DELETE, READ, WRITE};

use super::connection::Session;
use super::error::error_code;
use super::proto::records::{
    Acl, Create2Response, CreateRequest, CreateResponse, GetAclResponse,
    GetAllChildrenNumberResponse, GetChildren2Response, GetChildrenResponse, GetDataResponse,
    GetEphemeralsResponse, Id, Stat, SyncResponse, WhoAmIResponse,
};
use super::proto::{
    AddWatchMode, CreateMode, ErrorCode, EventType, MultiOp, MultiOpResult, MultiReadOp, Request,
    Response, WatcherType,
};
use super::watches::{WatchKind, WatchLimitExceeded};

/// What the connection does after a request.
pub(crate) enum Outcome {
    /// Send a reply with this error code and optional body.
    Reply(ErrorCode, Option<Response>),
    /// Send a header-only OK reply, then these notifications (setWatches).
    ReplyThenEvents(Vec<(EventType, String)>),
    /// Reply with this code and close the connection: OK after closeSession; AuthFailed
    /// after a failed addAuth, which ends the connection but not the session (ZooKeeper's
    /// `ZooKeeperServer.processPacket`).
    ReplyAndClose(ErrorCode),
    /// Close the connection without a reply: the request would have taken the connection
    /// past its watch limit. The client sees ConnectionLoss, as for any dropped connection;
    /// its session lives on.
    CloseOverWatchLimit(WatchLimitExceeded),
}

/// Why a read that may set a watch has no result.
enum Refused {
    /// Answer with this error code.
    Code(ErrorCode),
    /// The watch would take the connection past its limit.
    OverWatchLimit(WatchLimitExceeded),
}

impl From<Refused> for Outcome {
    fn from(r: Refused) -> Outcome {
        match r {
            Refused::Code(c) => code(c),
            Refused::OverWatchLimit(e) => Outcome::CloseOverWatchLimit(e),
        }
    }
}

fn ok(resp: Response) -> Outcome {
    Outcome::Reply(ErrorCode::Ok, Some(resp))
}

fn err(e: &Error) -> Outcome {
    Outcome::Reply(error_code(e), None)
}

fn code(c: ErrorCode) -> Outcome {
    Outcome::Reply(c, None)
}

/// The Stat a client sees. Containers and TTL nodes keep a marker in ephemeralOwner;
/// clients see 0 there, as ZooKeeper's `DataNode.copyStat` reports.
pub(crate) fn wire_stat(s: &zt::Stat) -> Stat {
    let marker = s.ephemeral_owner == zt::CONTAINER_OWNER
        || s.ephemeral_owner & zt::TTL_OWNER_MASK == zt::TTL_OWNER_MASK;
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: if marker { 0 } else { s.ephemeral_owner },
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    }
}

fn tree_acl(acl: &[Acl]) -> Vec<zt::Acl> {
    acl.iter()
        .map(|a| zt::Acl {
            perms: a.perms,
            scheme: a.id.scheme.clone(),
            id: a.id.id.clone(),
        })
        .collect()
}

fn wire_acl(acl: &[zt::Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| Acl {
            perms: a.perms,
            id: Id {
                scheme: a.scheme.clone(),
                id: a.id.clone(),
            },
        })
        .collect()
}

/// The ensemble's create mode for wire `flags` (and `ttl` for createTTL), or BadArguments.
fn create_mode(flags: i32, ttl: Option<i64>) -> Result<zt::CreateMode, ErrorCode> {
    let mode = CreateMode::from_i32(flags).ok_or(ErrorCode::BadArguments)?;
    Ok(match (mode, ttl) {
        (CreateMode::Persistent, _) => zt::CreateMode::Persistent,
        (CreateMode::PersistentSequential, _) => zt::CreateMode::PersistentSequential,
        (CreateMode::Ephemeral, _) => zt::CreateMode::Ephemeral,
        (CreateMode::EphemeralSequential, _) => zt::CreateMode::EphemeralSequential,
        (CreateMode::Container, _) => zt::CreateMode::Container,
        (CreateMode::PersistentWithTtl, Some(ttl_ms)) => {
            zt::CreateMode::PersistentWithTtl { ttl_ms }
        }
        (CreateMode::PersistentSequentialWithTtl, Some(ttl_ms)) => {
            zt::CreateMode::PersistentSequentialWithTtl { ttl_ms }
        }
        (CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl, None) => {
            return Err(ErrorCode::BadArguments)
        }
    })
}

fn create_op(req: &CreateRequest, ttl: Option<i64>) -> Result<Op, ErrorCode> {
    Ok(Op::Create {
        path: req.path.clone(),
        data: req.data.clone(),
        acl: tree_acl(&req.acl),
        mode: create_mode(req.flags, ttl)?,
    })
}

/// ZooKeeper's tree also answers reads of the empty path, as the root.
fn read_path(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// How a create's result is encoded.
#[derive(Clone, Copy)]
enum CreateReply {
    PathOnly,
    PathAndStat,
}

fn multi_op(op: &MultiOp) -> Result<(Op, Option<CreateReply>), ErrorCode> {
    Ok(match op {
        MultiOp::Create(r) => (create_op(r, None)?, Some(CreateReply::PathOnly)),
        MultiOp::Create2(r) => (create_op(r, None)?, Some(CreateReply::PathAndStat)),
        MultiOp::CreateContainer(r) => (create_op(r, None)?, Some(CreateReply::PathAndStat)),
        MultiOp::CreateTtl(r) => {
            let req = CreateRequest {
                path: r.path.clone(),
                data: r.data.clone(),
                acl: r.acl.clone(),
                flags: r.flags,
            };
            (
                create_op(&req, Some(r.ttl))?,
                Some(CreateReply::PathAndStat),
            )
        }
        MultiOp::Delete(r) => (
            Op::Delete {
                path: r.path.clone(),
                version: r.version,
            },
            None,
        ),
        MultiOp::SetData(r) => (
            Op::SetData {
                path: r.path.clone(),
                data: r.data.clone(),
                version: r.version,
            },
            None,
        ),
        MultiOp::Check(r) => (
            Op::Check {
                path: r.path.clone(),
                version: r.version,
            },
            None,
        ),
    })
}

fn op_result(result: &OpResult, reply: Option<CreateReply>) -> MultiOpResult {
    match result {
        OpResult::Created { path, stat } => match reply {
            Some(CreateReply::PathOnly) => MultiOpResult::Create { path: path.clone() },
            _ => MultiOpResult::Create2 {
                path: path.clone(),
                stat: wire_stat(stat),
            },
        },
        OpResult::Deleted => MultiOpResult::Delete,
        OpResult::DataSet { stat } | OpResult::AclSet { stat } => MultiOpResult::SetData {
            stat: wire_stat(stat),
        },
        OpResult::Checked => MultiOpResult::Check,
    }
}

impl Session {
    /// Runs one request.
    pub(crate) async fn execute(&self, req: Request) -> Outcome {
        match req {
            Request::Ping => Outcome::Reply(ErrorCode::Ok, None),
            Request::CloseSession => match self.node.close_session(self.id).await {
                Ok(()) => Outcome::ReplyAndClose(ErrorCode::Ok),
                Err(e) => err(&e),
            },
            Request::Create(r) => self.create(&r, None, CreateReply::PathOnly).await,
            Request::Create2(r) => self.create(&r, None, CreateReply::PathAndStat).await,
            Request::CreateContainer(r) => {
                // The opcode, not the flags, makes it a container (as ZooKeeper does).
                let req = CreateRequest {
                    flags: CreateMode::Container.as_i32(),
                    ..r
                };
                self.create(&req, None, CreateReply::PathAndStat).await
            }
            Request::CreateTtl(r) => {
                let req = CreateRequest {
                    path: r.path,
                    data: r.data,
                    acl: r.acl,
                    flags: r.flags,
                };
                if !CreateMode::from_i32(req.flags).is_some_and(|m| m.is_ttl()) {
                    return code(ErrorCode::BadArguments);
                }
                self.create(&req, Some(r.ttl), CreateReply::PathAndStat)
                    .await
            }
            Request::Delete(r) => {
                self.write(Op::Delete {
                    path: r.path,
                    version: r.version,
                })
                .await
            }
            Request::SetData(r) => {
                self.write(Op::SetData {
                    path: r.path,
                    data: r.data,
                    version: r.version,
                })
                .await
            }
            Request::SetAcl(r) => {
                self.write(Op::SetAcl {
                    path: r.path,
                    acl: tree_acl(&r.acl),
                    version: r.version,
                })
                .await
            }
            Request::Check(r) => self.node.read(|t| match t.stat(&r.path) {
                None => code(ErrorCode::NoNode),
                Some(_) if self.denied(t, &r.path, READ) => code(ErrorCode::NoAuth),
                Some(s) if r.version != -1 && r.version != s.version => code(ErrorCode::BadVersion),
                Some(s) => ok(Response::Check(wire_stat(&s))),
            }),
            Request::Exists(r) if r.path.contains('\0') => code(ErrorCode::BadArguments),
            Request::Exists(r) => {
                let stat = self.node.read(|t| t.stat(read_path(&r.path)));
                if r.watch {
                    let kind = if stat.is_some() {
                        WatchKind::Data
                    } else {
                        WatchKind::Exist
                    };
                    if let Err(e) = self.watches.add(self.conn, kind, read_path(&r.path)) {
                        return Outcome::CloseOverWatchLimit(e);
                    }
                }
                match stat {
                    Some(s) => ok(Response::Exists(wire_stat(&s))),
                    None => code(ErrorCode::NoNode),
                }
            }
            Request::GetData(r) => self.node.read(|t| match t.get(read_path(&r.path)) {
                Ok(_) if self.denied(t, read_path(&r.path), READ) => code(ErrorCode::NoAuth),
                Ok((data, stat)) => {
                    if r.watch {
                        if let Err(e) =
                            self.watches
                                .add(self.conn, WatchKind::Data, read_path(&r.path))
                        {
                            return Outcome::CloseOverWatchLimit(e);
                        }
                    }
                    ok(Response::GetData(GetDataResponse {
                        data: data.to_vec(),
                        stat: wire_stat(&stat),
                    }))
                }
                Err(e) => err(&e),
            }),
            Request::GetAcl(r) => self.node.read(|t| {
                let path = read_path(&r.path);
                match t.acl(path) {
                    Ok(_) if self.denied(t, path, READ | ADMIN) => code(ErrorCode::NoAuth),
                    Ok((acl, stat)) => {
                        // Without ADMIN, digest hashes are hidden (ZooKeeper 3.8).
                        let acl = if self.denied(t, path, ADMIN) {
                            acl::redact(acl)
                        } else {
                            acl
                        };
                        ok(Response::GetAcl(GetAclResponse {
                            acl: wire_acl(&acl),
                            stat: wire_stat(&stat),
                        }))
                    }
                    Err(e) => err(&e),
                }
            }),
            Request::GetChildren(r) => {
                self.node
                    .read(|t| match self.children(t, read_path(&r.path), r.watch) {
                        Ok((children, _)) => {
                            ok(Response::GetChildren(GetChildrenResponse { children }))
                        }
                        Err(refused) => refused.into(),
                    })
            }
            Request::GetChildren2(r) => {
                self.node
                    .read(|t| match self.children(t, read_path(&r.path), r.watch) {
                        Ok((children, stat)) => ok(Response::GetChildren2(GetChildren2Response {
                            children,
                            stat: wire_stat(&stat),
                        })),
                        Err(refused) => refused.into(),
                    })
            }
            Request::GetAllChildrenNumber(r) => {
                self.node
                    .read(|t| match t.count_descendants(read_path(&r.path)) {
                        Ok(_) if self.denied(t, read_path(&r.path), READ) => {
                            code(ErrorCode::NoAuth)
                        }
                        Ok(n) => ok(Response::GetAllChildrenNumber(
                            GetAllChildrenNumberResponse {
                                total_number: i32::try_from(n).unwrap_or(i32::MAX),
                            },
                        )),
                        Err(e) => err(&e),
                    })
            }
            Request::GetEphemerals(r) => {
                let ephemerals = self.node.read(|t| t.ephemerals(self.id));
                let prefix = r.prefix_path;
                let ephemerals = ephemerals
                    .into_iter()
                    .filter(|p| prefix == "/" || p.starts_with(&prefix))
                    .collect();
                ok(Response::GetEphemerals(GetEphemeralsResponse {
                    ephemerals,
                }))
            }
            Request::Sync(r) => match self.node.sync().await {
                Ok(_) => ok(Response::Sync(SyncResponse { path: r.path })),
                Err(e) => err(&e),
            },
            Request::Multi(ops) => self.multi(&ops).await,
            Request::MultiRead(ops) => {
                let results = self.node.read(|t| {
                    ops.iter()
                        .map(|op| self.multi_read(t, op))
                        .collect::<Result<Vec<_>, _>>()
                });
                match results {
                    Ok(results) => ok(Response::Multi(results)),
                    Err(e) => Outcome::CloseOverWatchLimit(e),
                }
            }
            Request::SetWatches(w) => self.set_watches(
                w.relative_zxid,
                &[
                    (WatchKind::Data, w.data_watches),
                    (WatchKind::Exist, w.exist_watches),
                    (WatchKind::Child, w.child_watches),
                ],
            ),
            Request::SetWatches2(w) => self.set_watches(
                w.relative_zxid,
                &[
                    (WatchKind::Data, w.data_watches),
                    (WatchKind::Exist, w.exist_watches),
                    (WatchKind::Child, w.child_watches),
                    (WatchKind::Persistent, w.persistent_watches),
                    (
                        WatchKind::PersistentRecursive,
                        w.persistent_recursive_watches,
                    ),
                ],
            ),
            Request::AddWatch(r) => {
                let kind = match AddWatchMode::from_i32(r.mode) {
                    Some(AddWatchMode::Persistent) => WatchKind::Persistent,
                    Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                    None => return code(ErrorCode::BadArguments),
                };
                match self.watches.add(self.conn, kind, &r.path) {
                    Ok(()) => ok(Response::AddWatch),
                    Err(e) => Outcome::CloseOverWatchLimit(e),
                }
            }
            Request::RemoveWatches(r) => self.remove_watches(&r.path, r.watcher_type, true),
            Request::CheckWatches(r) => self.remove_watches(&r.path, r.watcher_type, false),
            Request::Auth(r) => match acl::authenticate(
                &mut self.ids(),
                &r.scheme,
                &r.auth,
                self.super_digest.as_deref(),
            ) {
                Ok(()) => Outcome::Reply(ErrorCode::Ok, None),
                Err(c) => Outcome::ReplyAndClose(c),
            },
            Request::WhoAmI => ok(Response::WhoAmI(WhoAmIResponse {
                client_info: acl::client_info(&self.ids()),
            })),
            Request::Unknown(_) => code(ErrorCode::Unimplemented),
        }
    }

    async fn create(&self, req: &CreateRequest, ttl: Option<i64>, reply: CreateReply) -> Outcome {
        let mut op = match create_op(req, ttl) {
            Ok(op) => op,
            Err(c) => return code(c),
        };
        if let Err(c) = self.authorize_one(&mut op) {
            return code(c);
        }
        match self.node.propose(self.id, TxnBody::Op(op)).await {
            Ok(applied) => match applied.outcome {
                Some(TxnOutcome::Op(Ok(OpResult::Created { path, stat }))) => match reply {
                    CreateReply::PathOnly => ok(Response::Create(CreateResponse { path })),
                    CreateReply::PathAndStat => ok(Response::Create2(Create2Response {
                        path,
                        stat: wire_stat(&stat),
                    })),
                },
                Some(TxnOutcome::Op(Err(e))) => err(&e),
                other => unexpected(other),
            },
            Err(e) => err(&e),
        }
    }

    async fn write(&self, mut op: Op) -> Outcome {
        if let Err(c) = self.authorize_one(&mut op) {
            return code(c);
        }
        match self.node.propose(self.id, TxnBody::Op(op)).await {
            Ok(applied) => match applied.outcome {
                Some(TxnOutcome::Op(Ok(OpResult::Deleted))) => Outcome::Reply(ErrorCode::Ok, None),
                Some(TxnOutcome::Op(Ok(OpResult::DataSet { stat }))) => {
                    ok(Response::SetData(wire_stat(&stat)))
                }
                Some(TxnOutcome::Op(Ok(OpResult::AclSet { stat }))) => {
                    ok(Response::SetAcl(wire_stat(&stat)))
                }
                Some(TxnOutcome::Op(Err(e))) => err(&e),
                other => unexpected(other),
            },
            Err(e) => err(&e),
        }
    }

    async fn multi(&self, ops: &[MultiOp]) -> Outcome {
        let mut tree_ops = Vec::with_capacity(ops.len());
        let mut replies = Vec::with_capacity(ops.len());
        // The first op refused before proposing (bad flags, invalid ACL, NoAuth), checked in
        // order against the local tree and the changes of the ops before it.
        let refused = self.node.read(|t| {
            let mut pending = Pending::new();
            for (index, op) in ops.iter().enumerate() {
                let checked = multi_op(op).and_then(|(mut op, reply)| {
                    self.authorize(t, &mut op, &mut pending)?;
                    Ok((op, reply))
                });
                match checked {
                    Ok((op, reply)) => {
                        tree_ops.push(op);
                        replies.push(reply);
                    }
                    Err(c) => return Some((index, c)),
                }
            }
            None
        });
        if let Some((index, c)) = refused {
            return self.refused_multi(tree_ops, ops.len(), index, c).await;
        }
        match self.node.propose(self.id, TxnBody::Multi(tree_ops)).await {
            Ok(applied) => match applied.outcome {
                Some(TxnOutcome::Multi(Ok(results))) => {
                    let results = results
                        .iter()
                        .zip(replies)
                        .map(|(r, reply)| op_result(r, reply))
                        .collect();
                    ok(Response::Multi(results))
                }
                Some(TxnOutcome::Multi(Err(failure))) => {
                    let c = error_code(&failure.error);
                    ok(Response::Multi(failed_multi(ops.len(), failure.index, c)))
                }
                other => unexpected(other),
            },
            Err(e) => err(&e),
        }
    }

    /// A multi whose op `index` was refused with `c` before proposing. ZooKeeper fails a
    /// multi at its first failing op, so when an op before `index` would fail when applied,
    /// that failure is the answer: the ops before `index` are proposed followed by an op
    /// that always fails (a check of the empty path), which rolls the whole multi back.
    async fn refused_multi(
        &self,
        before: Vec<Op>,
        len: usize,
        index: usize,
        c: ErrorCode,
    ) -> Outcome {
        // The header says OK; the per-op results carry the failure (ZooKeeper's shape).
        if index == 0 {
            return ok(Response::Multi(failed_multi(len, index, c)));
        }
        let mut probe = before;
        probe.push(Op::Check {
            path: String::new(),
            version: -1,
        });
        match self.node.propose(self.id, TxnBody::Multi(probe)).await {
            Ok(applied) => match applied.outcome {
                Some(TxnOutcome::Multi(Err(failure))) if failure.index < index => {
                    let c = error_code(&failure.error);
                    ok(Response::Multi(failed_multi(len, failure.index, c)))
                }
                Some(TxnOutcome::Multi(_)) => ok(Response::Multi(failed_multi(len, index, c))),
                other => unexpected(other),
            },
            Err(e) => err(&e),
        }
    }

    /// The ids this connection holds (a guard: do not hold it across an await).
    fn ids(&self) -> std::sync::MutexGuard<'_, Vec<acl::AuthId>> {
        self.auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `path` exists in `t` and its ACL grants none of `perm` to this connection.
    /// A missing node is not denied: the caller answers NoNode, as ZooKeeper does.
    fn denied(&self, t: &Tree, path: &str, perm: i32) -> bool {
        match t.acl(path) {
            Ok((acl, _)) => !acl::allowed(&acl, perm, &self.ids()),
            Err(_) => false,
        }
    }

    /// [`Session::authorize`] for a write on its own.
    fn authorize_one(&self, op: &mut Op) -> Result<(), ErrorCode> {
        self.node
            .read(|t| self.authorize(t, op, &mut Pending::new()))
    }

    /// ZooKeeper's `PrepRequestProcessor` ACL steps for one write, in its order: create and
    /// setACL get their ACL validated and `auth` expanded (InvalidACL); then create needs
    /// CREATE and delete DELETE on the parent, setData WRITE, setACL ADMIN and check READ on
    /// the node (NoAuth). A missing node or parent, or a path ZooKeeper refuses earlier, is
    /// left to the tree, which answers NoNode or BadArguments when the write is applied.
    /// `pending` holds the ACLs of nodes created (`Some`) or deleted (`None`) by the ops
    /// before this one in a multi.
    ///
    /// Judgement call: ZooKeeper checks on the leader, against its tree plus the changes not
    /// yet applied; this checks on the replica the client is connected to, before proposing.
    /// A write racing an ACL change (or reaching a lagging learner) may be judged against the
    /// ACL just before or after it — the same window a client has between its own getACL and
    /// write. The ACL is never checked inside the replicated state machine, so the log holds
    /// no connection's credentials.
    fn authorize(&self, t: &Tree, op: &mut Op, pending: &mut Pending) -> Result<(), ErrorCode> {
        let ids = self.ids();
        let acl_of = |pending: &Pending, path: &str| match pending.get(path) {
            Some(acl) => acl.clone(),
            None => t.acl(path).ok().map(|(acl, _)| acl),
        };
        let require = |pending: &Pending, path: &str, perm: i32| match acl_of(pending, path) {
            Some(acl) if !acl::allowed(&acl, perm, &ids) => Err(ErrorCode::NoAuth),
            _ => Ok(()),
        };
        match op {
            Op::Create {
                path, acl, mode, ..
            } => {
                let Some(parent) = parent(path) else {
                    return Ok(());
                };
                *acl = acl::fixup(acl, &ids)?;
                require(pending, parent, CREATE)?;
                if !mode.is_sequential() {
                    pending.insert(path.clone(), Some(acl.clone()));
                }
            }
            Op::Delete { path, .. } => {
                if zt::SPECIAL_PATHS.contains(&path.as_str()) {
                    return Ok(());
                }
                let Some(parent) = parent(path) else {
                    return Ok(());
                };
                require(pending, parent, DELETE)?;
                pending.insert(path.clone(), None);
            }
            Op::SetData { path, .. } => require(pending, path, WRITE)?,
            Op::Check { path, .. } => require(pending, path, READ)?,
            Op::SetAcl { path, acl, .. } => {
                if zt::validate_path(path, false).is_err() {
                    return Ok(());
                }
                *acl = acl::fixup(acl, &ids)?;
                require(pending, path, ADMIN)?;
            }
        }
        Ok(())
    }

    fn multi_read(&self, t: &Tree, op: &MultiReadOp) -> Result<MultiOpResult, WatchLimitExceeded> {
        Ok(match op {
            MultiReadOp::GetData(r) => match t.get(&r.path) {
                Ok(_) if self.denied(t, &r.path, READ) => MultiOpResult::Error {
                    err: ErrorCode::NoAuth,
                },
                Ok((data, stat)) => {
                    if r.watch {
                        self.watches.add(self.conn, WatchKind::Data, &r.path)?;
                    }
                    MultiOpResult::GetData {
                        data: data.to_vec(),
                        stat: wire_stat(&stat),
                    }
                }
                Err(e) => MultiOpResult::Error {
                    err: error_code(&e),
                },
            },
            MultiReadOp::GetChildren(r) => match self.children(t, &r.path, r.watch) {
                Ok((children, _)) => MultiOpResult::GetChildren { children },
                Err(Refused::Code(err)) => MultiOpResult::Error { err },
                Err(Refused::OverWatchLimit(e)) => return Err(e),
            },
        })
    }

    /// A node's children and Stat, with a child watch when `watch`.
    fn children(
        &self,
        t: &Tree,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, zt::Stat), Refused> {
        let children = t
            .children(path)
            .map_err(|e| Refused::Code(error_code(&e)))?;
        let stat = t.stat(path).ok_or(Refused::Code(ErrorCode::NoNode))?;
        if self.denied(t, path, READ) {
            return Err(Refused::Code(ErrorCode::NoAuth));
        }
        if watch {
            self.watches
                .add(self.conn, WatchKind::Child, path)
                .map_err(Refused::OverWatchLimit)?;
        }
        Ok((children, stat))
    }

    /// Re-registers watches after a reconnect, first firing the events for anything that
    /// changed after `relative_zxid` (the last zxid the client saw), as ZooKeeper does.
    fn set_watches(&self, relative_zxid: i64, lists: &[(WatchKind, Vec<String>)]) -> Outcome {
        let mut events = Vec::new();
        let registered = self.node.read(|t| {
            for (kind, paths) in lists {
                for path in paths {
                    let stat = t.stat(path);
                    let fired = match (kind, stat) {
                        (WatchKind::Data, None) => Some(EventType::NodeDeleted),
                        (WatchKind::Data, Some(s)) if s.mzxid > relative_zxid => {
                            Some(EventType::NodeDataChanged)
                        }
                        (WatchKind::Exist, Some(_)) => Some(EventType::NodeCreated),
                        (WatchKind::Child, None) => Some(EventType::NodeDeleted),
                        (WatchKind::Child, Some(s)) if s.pzxid > relative_zxid => {
                            Some(EventType::NodeChildrenChanged)
                        }
                        _ => None,
                    };
                    match fired {
                        Some(event) => events.push((event, path.clone())),
                        None => self.watches.add(self.conn, *kind, path)?,
                    }
                }
            }
            Ok(())
        });
        match registered {
            Ok(()) => Outcome::ReplyThenEvents(events),
            Err(e) => Outcome::CloseOverWatchLimit(e),
        }
    }

    fn remove_watches(&self, path: &str, watcher_type: i32, remove: bool) -> Outcome {
        let kinds: &[WatchKind] = match WatcherType::from_i32(watcher_type) {
            Some(WatcherType::Children) => &[WatchKind::Child],
            Some(WatcherType::Data) => &[WatchKind::Data, WatchKind::Exist],
            Some(WatcherType::Any) => &[
                WatchKind::Child,
                WatchKind::Data,
                WatchKind::Exist,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
            Some(WatcherType::Persistent) => &[WatchKind::Persistent],
            Some(WatcherType::PersistentRecursive) => &[WatchKind::PersistentRecursive],
            None => return code(ErrorCode::MarshallingError),
        };
        let mut found = false;
        for kind in kinds {
            found |= if remove {
                self.watches.remove(self.conn, *kind, path)
            } else {
                self.watches.has(self.conn, *kind, path)
            };
        }
        if found {
            Outcome::Reply(ErrorCode::Ok, None)
        } else {
            code(ErrorCode::NoWatcher)
        }
    }
}

/// The ACLs of the nodes a multi's earlier ops create (`Some`) or delete (`None`).
type Pending = HashMap<String, Option<Vec<zt::Acl>>>;

/// The parent ZooKeeper checks a create's or delete's ACL on (`/` for a top-level node), or
/// `None` for a path it refuses before that (no `/`, or a NUL).
fn parent(path: &str) -> Option<&str> {
    if path.contains('\0') {
        return None;
    }
    let slash = path.rfind('/')?;
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

/// A failed multi's per-op results: OK before the failing op, its code, then
/// RuntimeInconsistency (ZooKeeper's shape).
fn failed_multi(len: usize, index: usize, c: ErrorCode) -> Vec<MultiOpResult> {
    (0..len)
        .map(|i| {
            let err = match i.cmp(&index) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => c,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            };
            MultiOpResult::Error { err }
        })
        .collect()
}

fn unexpected(outcome: Option<TxnOutcome>) -> Outcome {
    tracing::error!(?outcome, "unexpected transaction outcome");
    code(ErrorCode::SystemError)
}
