//! Differential tests: the same request sequences go to a real Apache ZooKeeper 3.8
//! (standalone, see `real_zk`) and to quorumfs, and the answers must be the same.
//!
//! Each test is a table of steps. A step names a session, a request and a short note; both
//! servers get it in turn (ZooKeeper first), each answer is rendered to a normalised string,
//! and the strings are compared. Every difference is collected (the run goes on, so one bug
//! does not hide the next) and the test fails at the end listing, per difference, the step
//! number, its note, the request, ZooKeeper's answer and quorumfs's answer. The whole
//! transcript is printed too (nextest shows it for failed tests).
//!
//! Normalisation — what is compared and what is not:
//! - Stat: version, cversion, aversion, dataLength, numChildren and ephemeralOwner exactly,
//!   except that a session's id is shown as the session's name in the table (`s1`, raw `r0`);
//!   containers' and TTL nodes' special owners are compared as numbers. Zxids are compared
//!   *symbolically*: each zxid gets a label the first time a target shows it (`z7` = first
//!   seen at step 7; `z9<z8` = first seen at step 9 and lower than the zxid labelled `z8`), so
//!   "pzxid is the czxid of the child created at step 4" or "pzxid moved on after a delete"
//!   compare equal while absolute numbers (ZooKeeper spends zxids on sessions too) do not
//!   matter. Times: only whether ctime is 0, and mtime = ctime when mzxid = czxid (else
//!   mtime >= ctime).
//! - Children and ephemeral lists are compared as sorted sets: ZooKeeper returns children in
//!   hash order. ACL lists keep their order.
//! - Errors are compared by code (the crate's `Error` variant). Requests the crate refuses
//!   locally (invalid paths) are compared as the crate's error on both, and also sent through
//!   `jute::RawClient` so the servers' own answers are compared; raw answers show the reply
//!   header's error code and the decoded body (a multi shows every per-op result).
//! - A create's result inside a multi is compared by path only: ZooKeeper 3.8.0 answers a
//!   create2 in a multi with a plain create result, so the crate reports an invalid Stat
//!   (ZOOKEEPER-4026); a later read compares the node's Stat, and a raw multi the result
//!   types.
//! - Watch events: type, path and the notification's zxid field, in order. A step waits for
//!   the number of events the table expects (each at most `EVENT_TIMEOUT`), then makes a
//!   round trip on the watching session (sync + exists) and collects whatever else has
//!   arrived, so extra events show up as a difference without sleeping. Rows built with
//!   `events_any_order` sort the events first: ZooKeeper deletes a closed session's
//!   ephemerals in hash order, so that order is not defined.
//!
//! Rows marked `known(..)` are deliberate differences: they are printed, not failed, and each
//! carries a `// KNOWN DIFFERENCE:` comment saying why.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::FutureExt;
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, Client, CreateMode, CreateOptions, MultiReadResult,
    MultiWriteError, MultiWriteResult, Permission, PersistentWatcher, Stat, WatchedEvent,
};

use crate::harness::*;
use crate::jute::{Buf, RawClient};

// A submodule, so that main.rs needs only `mod differential;`.
#[path = "real_zk.rs"]
mod real_zk;
use real_zk::RealZk;

/// How long one expected watch event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a container, TTL node or expired session's ephemeral may take to disappear.
const GONE_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The request language of the tables

/// How a znode is created.
#[derive(Clone, Copy, Debug)]
enum Mode {
    P,
    PSeq,
    E,
    ESeq,
    Container,
    /// Persistent with a TTL in milliseconds.
    Ttl(u64),
    /// Persistent-sequential with a TTL in milliseconds.
    TtlSeq(u64),
}

/// The ACL a create or setACL sends.
#[derive(Clone, Debug)]
enum AclSpec {
    AnyoneAll,
    AnyoneRead,
    /// `auth::` ALL: the creator's authenticated ids.
    CreatorAll,
    /// (permission bits, scheme, id), in order.
    List(Vec<(i32, &'static str, &'static str)>),
}

/// One operation of a multi (through the crate).
#[derive(Clone, Debug)]
enum MOp {
    Create(&'static str, &'static [u8], Mode),
    SetData(&'static str, &'static [u8], Option<i32>),
    Delete(&'static str, Option<i32>),
    Check(&'static str, i32),
}

/// One operation of a multiRead (through the crate).
#[derive(Clone, Debug)]
enum ROp {
    Data(&'static str),
    Children(&'static str),
}

/// Which one-shot watch a read leaves.
#[derive(Clone, Copy, Debug)]
enum WatchKind {
    /// getData with watch.
    Data,
    /// exists with watch.
    Exists,
    /// getChildren2 with watch.
    Children,
    /// getChildren (no Stat) with watch.
    List,
}

/// A request sent on the wire by `jute::RawClient` (no client-side validation). Data is
/// always `raw`; ACLs are given explicitly.
#[derive(Clone, Debug)]
enum Raw {
    /// `op` is 1 (create), 15 (create2), 19 (createContainer) or 21 (createTTL, with `ttl`).
    Create {
        op: i32,
        path: &'static str,
        flags: i32,
        ttl: i64,
        acl: Vec<(i32, &'static str, &'static str)>,
    },
    Delete(&'static str, i32),
    SetData(&'static str, i32),
    GetData(&'static str),
    /// getData leaving a data watch.
    GetDataWatch(&'static str),
    Exists(&'static str),
    /// checkWatches (17): path and watcher type (1 children, 2 data, 3 any).
    CheckWatches(&'static str, i32),
    /// removeWatches (18): path and watcher type.
    RemoveWatches(&'static str, i32),
    /// reconfig (16) adding a server.
    Reconfig,
    /// getChildren (8).
    Children(&'static str),
    /// getChildren2 (12).
    Children2(&'static str),
    /// A standalone check (13).
    Check(&'static str, i32),
    Sync(&'static str),
    GetAcl(&'static str),
    SetAcl(&'static str, Vec<(i32, &'static str, &'static str)>, i32),
    Count(&'static str),
    Ephemerals(&'static str),
    Multi(Vec<Raw>),
    MultiRead(Vec<Raw>),
    /// An opcode with an empty body.
    Opcode(i32),
}

/// One request of a table.
#[derive(Clone, Debug)]
enum Op {
    /// Opens session `s` on quorumfs node `node` (ZooKeeper has one server). Detached
    /// sessions are not closed when dropped (they expire).
    Open {
        s: usize,
        node: u64,
        detached: bool,
    },
    /// Re-attaches (detached) session `s` on another node with its id and password.
    Move {
        s: usize,
        node: u64,
    },
    /// Drops session `s`'s client: closeSession, or just the connection when detached. Its
    /// watches go with it.
    Close {
        s: usize,
    },
    Create {
        s: usize,
        path: &'static str,
        data: &'static [u8],
        mode: Mode,
        acl: AclSpec,
    },
    Delete {
        s: usize,
        path: &'static str,
        version: Option<i32>,
    },
    SetData {
        s: usize,
        path: &'static str,
        data: &'static [u8],
        version: Option<i32>,
    },
    GetData {
        s: usize,
        path: &'static str,
    },
    Exists {
        s: usize,
        path: &'static str,
    },
    /// getChildren.
    Children {
        s: usize,
        path: &'static str,
    },
    /// getChildren2.
    Children2 {
        s: usize,
        path: &'static str,
    },
    /// getAllChildrenNumber.
    Count {
        s: usize,
        path: &'static str,
    },
    /// getEphemerals.
    Ephemerals {
        s: usize,
        path: &'static str,
    },
    GetAcl {
        s: usize,
        path: &'static str,
    },
    SetAcl {
        s: usize,
        path: &'static str,
        acl: AclSpec,
        version: Option<i32>,
    },
    Sync {
        s: usize,
        path: &'static str,
    },
    Multi {
        s: usize,
        ops: Vec<MOp>,
    },
    MultiRead {
        s: usize,
        ops: Vec<ROp>,
    },
    AddAuth {
        s: usize,
        scheme: &'static str,
        auth: &'static [u8],
    },
    WhoAmI {
        s: usize,
    },
    /// A read that leaves a one-shot watch named `label`.
    Watch {
        s: usize,
        path: &'static str,
        kind: WatchKind,
        label: &'static str,
    },
    /// addWatch: a persistent or persistent-recursive watch named `label`.
    AddWatch {
        s: usize,
        path: &'static str,
        mode: AddWatchMode,
        label: &'static str,
    },
    /// Waits for `n` events of watch `label`, then collects any further ones that arrived
    /// before a round trip on its session. `any_order`: compared as a sorted list, for
    /// events whose order ZooKeeper leaves undefined (a closed session's ephemerals are
    /// deleted in hash order).
    Events {
        label: &'static str,
        n: usize,
        any_order: bool,
    },
    /// Polls exists on session `s` until `path` is gone (at most `GONE_TIMEOUT`).
    AwaitGone {
        s: usize,
        path: &'static str,
    },
    /// A raw request on raw session `r` (opened on first use, on node 1).
    Raw {
        r: usize,
        req: Raw,
    },
}

/// A row of a table.
struct Row {
    note: &'static str,
    op: Op,
    /// `Some(why)`: a deliberate difference, reported but not failed.
    known: Option<&'static str>,
}

fn step(note: &'static str, op: Op) -> Row {
    Row {
        note,
        op,
        known: None,
    }
}

/// A row whose difference is deliberate (see the `// KNOWN DIFFERENCE:` comment at its use).
fn known(why: &'static str, note: &'static str, op: Op) -> Row {
    Row {
        note,
        op,
        known: Some(why),
    }
}

// Short constructors, so that tables read like scripts.

fn open(s: usize) -> Op {
    Op::Open {
        s,
        node: 1,
        detached: false,
    }
}
fn open_on(s: usize, node: u64) -> Op {
    Op::Open {
        s,
        node,
        detached: false,
    }
}
fn open_detached(s: usize, node: u64) -> Op {
    Op::Open {
        s,
        node,
        detached: true,
    }
}
fn close(s: usize) -> Op {
    Op::Close { s }
}
fn create(s: usize, path: &'static str, data: &'static [u8], mode: Mode) -> Op {
    Op::Create {
        s,
        path,
        data,
        mode,
        acl: AclSpec::AnyoneAll,
    }
}
fn create_acl(s: usize, path: &'static str, acl: AclSpec) -> Op {
    Op::Create {
        s,
        path,
        data: b"acl",
        mode: Mode::P,
        acl,
    }
}
fn delete(s: usize, path: &'static str, version: Option<i32>) -> Op {
    Op::Delete { s, path, version }
}
fn set(s: usize, path: &'static str, data: &'static [u8], version: Option<i32>) -> Op {
    Op::SetData {
        s,
        path,
        data,
        version,
    }
}
fn get(s: usize, path: &'static str) -> Op {
    Op::GetData { s, path }
}
fn exists(s: usize, path: &'static str) -> Op {
    Op::Exists { s, path }
}
fn children(s: usize, path: &'static str) -> Op {
    Op::Children { s, path }
}
fn children2(s: usize, path: &'static str) -> Op {
    Op::Children2 { s, path }
}
fn count(s: usize, path: &'static str) -> Op {
    Op::Count { s, path }
}
fn ephemerals(s: usize, path: &'static str) -> Op {
    Op::Ephemerals { s, path }
}
fn get_acl(s: usize, path: &'static str) -> Op {
    Op::GetAcl { s, path }
}
fn set_acl(s: usize, path: &'static str, acl: AclSpec, version: Option<i32>) -> Op {
    Op::SetAcl {
        s,
        path,
        acl,
        version,
    }
}
fn sync(s: usize, path: &'static str) -> Op {
    Op::Sync { s, path }
}
fn multi(s: usize, ops: Vec<MOp>) -> Op {
    Op::Multi { s, ops }
}
fn multi_read(s: usize, ops: Vec<ROp>) -> Op {
    Op::MultiRead { s, ops }
}
fn watch(s: usize, path: &'static str, kind: WatchKind, label: &'static str) -> Op {
    Op::Watch {
        s,
        path,
        kind,
        label,
    }
}
fn add_watch(s: usize, path: &'static str, mode: AddWatchMode, label: &'static str) -> Op {
    Op::AddWatch {
        s,
        path,
        mode,
        label,
    }
}
fn events(label: &'static str, n: usize) -> Op {
    Op::Events {
        label,
        n,
        any_order: false,
    }
}
fn events_any_order(label: &'static str, n: usize) -> Op {
    Op::Events {
        label,
        n,
        any_order: true,
    }
}
fn await_gone(s: usize, path: &'static str) -> Op {
    Op::AwaitGone { s, path }
}
fn raw(r: usize, req: Raw) -> Op {
    Op::Raw { r, req }
}

const OPEN_ACL: &[(i32, &str, &str)] = &[(31, "world", "anyone")];

fn rcreate(op: i32, path: &'static str, flags: i32) -> Raw {
    Raw::Create {
        op,
        path,
        flags,
        ttl: 0,
        acl: OPEN_ACL.to_vec(),
    }
}
fn rcreate_ttl(path: &'static str, flags: i32, ttl: i64) -> Raw {
    Raw::Create {
        op: 21,
        path,
        flags,
        ttl,
        acl: OPEN_ACL.to_vec(),
    }
}
fn rcreate_acl(path: &'static str, acl: Vec<(i32, &'static str, &'static str)>) -> Raw {
    Raw::Create {
        op: 1,
        path,
        flags: 0,
        ttl: 0,
        acl,
    }
}

// ---------------------------------------------------------------------------------------------
// One server under test

type EventFuture = Pin<Box<dyn Future<Output = WatchedEvent>>>;

/// One server (ZooKeeper or quorumfs) with the sessions, watches and zxid labels of a run.
struct Target {
    name: &'static str,
    /// Client addresses by node (ZooKeeper: one).
    addrs: Vec<String>,
    raw_addr: SocketAddr,
    sessions: BTreeMap<usize, Client>,
    raws: BTreeMap<usize, RawClient>,
    /// Session id → its name in the table (`s0`, `r1`).
    owners: HashMap<i64, String>,
    oneshots: HashMap<&'static str, (usize, EventFuture)>,
    persistents: HashMap<&'static str, (usize, PersistentWatcher)>,
    /// zxid → (bare label, label as rendered).
    zxids: BTreeMap<i64, (String, String)>,
    /// The step being run (labels new zxids).
    step: usize,
    /// Labels handed out during the current step.
    fresh: usize,
}

impl Target {
    fn new(name: &'static str, addrs: Vec<String>, raw_addr: SocketAddr) -> Target {
        Target {
            name,
            addrs,
            raw_addr,
            sessions: BTreeMap::new(),
            raws: BTreeMap::new(),
            owners: HashMap::new(),
            oneshots: HashMap::new(),
            persistents: HashMap::new(),
            zxids: BTreeMap::new(),
            step: 0,
            fresh: 0,
        }
    }

    fn addr(&self, node: u64) -> String {
        let i = (node.max(1) - 1) as usize;
        self.addrs[i.min(self.addrs.len() - 1)].clone()
    }

    fn client(&self, s: usize) -> Option<Client> {
        self.sessions.get(&s).cloned()
    }

    /// Drops every watch of session `s`.
    fn forget_watches(&mut self, s: usize) {
        self.oneshots.retain(|_, (owner, _)| *owner != s);
        self.persistents.retain(|_, (owner, _)| *owner != s);
    }

    // --- rendering -----------------------------------------------------------------------

    /// The symbolic label of a zxid (see the module docs).
    fn zx(&mut self, z: i64) -> String {
        if z <= 0 {
            return z.to_string();
        }
        if let Some((_, shown)) = self.zxids.get(&z) {
            return shown.clone();
        }
        let suffix = match self.fresh {
            0 => String::new(),
            n => ((b'a' + (n as u8).min(25)) as char).to_string(),
        };
        self.fresh += 1;
        let bare = format!("z{}{suffix}", self.step);
        let shown = match self.zxids.range(z + 1..).next() {
            Some((_, (above, _))) => format!("{bare}<{above}"),
            None => bare.clone(),
        };
        self.zxids.insert(z, (bare, shown.clone()));
        shown
    }

    fn owner(&self, id: i64) -> String {
        match id {
            0 => "-".to_string(),
            id => self
                .owners
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("{id:#x}")),
        }
    }

    fn stat(&mut self, st: &Stat) -> String {
        let c = self.zx(st.czxid);
        let m = self.zx(st.mzxid);
        let p = self.zx(st.pzxid);
        let ctime = if st.ctime == 0 { "0" } else { "t" };
        let mtime = match (st.czxid == st.mzxid, st.mtime.cmp(&st.ctime)) {
            (true, std::cmp::Ordering::Equal) => "m=c",
            (true, _) => "m!=c",
            (false, std::cmp::Ordering::Less) => "m<c",
            (false, _) => "m>=c",
        };
        format!(
            "{{czxid={c} mzxid={m} pzxid={p} ver={} cver={} aver={} owner={} len={} kids={} ctime={ctime} {mtime}}}",
            st.version,
            st.cversion,
            st.aversion,
            self.owner(st.ephemeral_owner),
            st.data_length,
            st.num_children
        )
    }

    fn event(&mut self, ev: &WatchedEvent) -> String {
        match ev.event_type {
            zookeeper_client::EventType::Session => format!("Session({:?})", ev.session_state),
            t => format!("{t:?} {} zxid={}", ev.path, self.zx(ev.zxid)),
        }
    }

    // --- running a step ------------------------------------------------------------------

    async fn exec(&mut self, step: usize, op: &Op) -> String {
        self.step = step;
        self.fresh = 0;
        match op {
            Op::Open { s, node, detached } => {
                let connector = if *detached {
                    Client::connector().with_detached()
                } else {
                    Client::connector()
                };
                let c = zk_connect_with(connector, &self.addr(*node)).await;
                self.owners.insert(c.session_id().0, format!("s{s}"));
                self.sessions.insert(*s, c);
                "opened".into()
            }
            Op::Move { s, node } => {
                let Some(old) = self.sessions.remove(s) else {
                    return format!("no session s{s}");
                };
                self.forget_watches(*s);
                let info = old.into_session();
                let c = zk_connect_with(Client::connector().with_session(info), &self.addr(*node))
                    .await;
                let same = self.owners.get(&c.session_id().0) == Some(&format!("s{s}"));
                self.sessions.insert(*s, c);
                if same {
                    "re-attached (same session id)".into()
                } else {
                    "connected with a NEW session id".into()
                }
            }
            Op::Close { s } => {
                self.forget_watches(*s);
                match self.sessions.remove(s) {
                    Some(c) => {
                        drop(c);
                        "closed".into()
                    }
                    None => format!("no session s{s}"),
                }
            }
            Op::Create {
                s,
                path,
                data,
                mode,
                acl,
            } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                let list = acl_list(acl);
                let opts = options(*mode, acl, &list);
                match c.create(path, data, &opts).await {
                    Ok((st, seq)) => {
                        let st = self.stat(&st);
                        if seq.into_i64() >= 0 {
                            format!("Ok(seq={seq} {st})")
                        } else {
                            format!("Ok({st})")
                        }
                    }
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Delete { s, path, version } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.delete(path, *version).await {
                    Ok(()) => "Ok".into(),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::SetData {
                s,
                path,
                data,
                version,
            } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.set_data(path, data, *version).await {
                    Ok(st) => format!("Ok({})", self.stat(&st)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::GetData { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.get_data(path).await {
                    Ok((data, st)) => format!("Ok({} {})", bytes(&data), self.stat(&st)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Exists { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.check_stat(path).await {
                    Ok(Some(st)) => format!("Some({})", self.stat(&st)),
                    Ok(None) => "None".into(),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Children { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.list_children(path).await {
                    Ok(kids) => format!("Ok({})", sorted(kids)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Children2 { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.get_children(path).await {
                    Ok((kids, st)) => format!("Ok({} {})", sorted(kids), self.stat(&st)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Count { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.count_descendants_number(path).await {
                    Ok(n) => format!("Ok({n})"),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Ephemerals { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.list_ephemerals(path).await {
                    Ok(paths) => format!("Ok({})", sorted(paths)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::GetAcl { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.get_acl(path).await {
                    Ok((acl, st)) => format!("Ok({} {})", acls(&acl), self.stat(&st)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::SetAcl {
                s,
                path,
                acl,
                version,
            } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                let list = opts_acls(acl);
                match c.set_acl(path, &list, *version).await {
                    Ok(st) => format!("Ok({})", self.stat(&st)),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Sync { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.sync(path).await {
                    Ok(()) => "Ok".into(),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Multi { s, ops } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                self.multi(&c, ops).await
            }
            Op::MultiRead { s, ops } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                let mut reader = c.new_multi_reader();
                for (i, op) in ops.iter().enumerate() {
                    let added = match op {
                        ROp::Data(p) => reader.add_get_data(p),
                        ROp::Children(p) => reader.add_get_children(p),
                    };
                    if let Err(e) = added {
                        return format!("client refused op {i}: {e:?}");
                    }
                }
                match reader.commit().await {
                    Ok(results) => {
                        let mut out = Vec::new();
                        for r in results {
                            out.push(match r {
                                MultiReadResult::Data { data, stat } => {
                                    format!("Data({} {})", bytes(&data), self.stat(&stat))
                                }
                                MultiReadResult::Children { children } => {
                                    format!("Children({})", sorted(children))
                                }
                                MultiReadResult::Error { err } => format!("Error({err:?})"),
                                #[allow(unreachable_patterns)]
                                other => format!("{other:?}"),
                            });
                        }
                        format!("Ok([{}])", out.join(", "))
                    }
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::AddAuth { s, scheme, auth } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match tokio::time::timeout(EVENT_TIMEOUT, c.auth(scheme, auth)).await {
                    Ok(Ok(())) => "Ok".into(),
                    Ok(Err(e)) => format!("Err({e:?})"),
                    Err(_) => format!("no answer within {EVENT_TIMEOUT:?}"),
                }
            }
            Op::WhoAmI { s } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.list_auth_users().await {
                    Ok(users) => format!(
                        "Ok({})",
                        sorted(
                            users
                                .iter()
                                .map(|u| format!("{}:{}", u.scheme(), u.user()))
                                .collect()
                        )
                    ),
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Watch {
                s,
                path,
                kind,
                label,
            } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                let (answer, watcher) = match kind {
                    WatchKind::Data => match c.get_and_watch_data(path).await {
                        Ok((data, st, w)) => {
                            (format!("Ok({} {})", bytes(&data), self.stat(&st)), Some(w))
                        }
                        Err(e) => (format!("Err({e:?})"), None),
                    },
                    WatchKind::Exists => match c.check_and_watch_stat(path).await {
                        Ok((Some(st), w)) => (format!("Some({})", self.stat(&st)), Some(w)),
                        Ok((None, w)) => ("None".to_string(), Some(w)),
                        Err(e) => (format!("Err({e:?})"), None),
                    },
                    WatchKind::Children => match c.get_and_watch_children(path).await {
                        Ok((kids, st, w)) => {
                            (format!("Ok({} {})", sorted(kids), self.stat(&st)), Some(w))
                        }
                        Err(e) => (format!("Err({e:?})"), None),
                    },
                    WatchKind::List => match c.list_and_watch_children(path).await {
                        Ok((kids, w)) => (format!("Ok({})", sorted(kids)), Some(w)),
                        Err(e) => (format!("Err({e:?})"), None),
                    },
                };
                if let Some(w) = watcher {
                    self.oneshots.insert(*label, (*s, Box::pin(w.changed())));
                }
                answer
            }
            Op::AddWatch {
                s,
                path,
                mode,
                label,
            } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                match c.watch(path, *mode).await {
                    Ok(w) => {
                        self.persistents.insert(*label, (*s, w));
                        "Ok".into()
                    }
                    Err(e) => format!("Err({e:?})"),
                }
            }
            Op::Events {
                label,
                n,
                any_order,
            } => self.events(label, *n, *any_order).await,
            Op::AwaitGone { s, path } => {
                let Some(c) = self.client(*s) else {
                    return format!("no session s{s}");
                };
                let deadline = Instant::now() + GONE_TIMEOUT;
                loop {
                    match c.check_stat(path).await {
                        Ok(None) => return "gone".into(),
                        Err(e) => return format!("Err({e:?})"),
                        Ok(Some(_)) if Instant::now() >= deadline => {
                            return format!("still there after {GONE_TIMEOUT:?}")
                        }
                        Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
            Op::Raw { r, req } => self.raw(*r, req),
        }
    }

    async fn multi(&mut self, c: &Client, ops: &[MOp]) -> String {
        let mut writer = c.new_multi_writer();
        for (i, op) in ops.iter().enumerate() {
            let added = match op {
                MOp::Create(p, d, m) => {
                    let opts = options(*m, &AclSpec::AnyoneAll, &[]);
                    writer.add_create(p, d, &opts)
                }
                MOp::SetData(p, d, v) => writer.add_set_data(p, d, *v),
                MOp::Delete(p, v) => writer.add_delete(p, *v),
                MOp::Check(p, v) => writer.add_check_version(p, *v),
            };
            if let Err(e) = added {
                return format!("client refused op {i}: {e:?}");
            }
        }
        match writer.commit().await {
            Ok(results) => {
                let mut out = Vec::new();
                for r in results {
                    out.push(match r {
                        MultiWriteResult::Check => "Check".to_string(),
                        MultiWriteResult::Delete => "Delete".to_string(),
                        // Path only: ZooKeeper 3.8.0 answers a create2 inside a multi with
                        // a plain create result, so the crate reports an invalid Stat
                        // (ZOOKEEPER-4026); the created node's Stat is compared by a later
                        // read, and the result types by a raw multi.
                        MultiWriteResult::Create { path, .. } => format!("Create({path})"),
                        MultiWriteResult::SetData { stat } => {
                            format!("SetData({})", self.stat(&stat))
                        }
                        #[allow(unreachable_patterns)]
                        other => format!("{other:?}"),
                    });
                }
                format!("Ok([{}])", out.join(", "))
            }
            Err(MultiWriteError::OperationFailed { index, source }) => {
                format!("Err(op {index} failed: {source:?})")
            }
            Err(MultiWriteError::RequestFailed { source }) => {
                format!("Err(request failed: {source:?})")
            }
            #[allow(unreachable_patterns)]
            Err(e) => format!("Err({e:?})"),
        }
    }

    /// Waits for `n` events of `label`, then collects the rest (see the module docs).
    async fn events(&mut self, label: &'static str, n: usize, any_order: bool) -> String {
        if let Some((s, mut fut)) = self.oneshots.remove(label) {
            let got = if n == 0 {
                self.round_trip(s).await;
                (&mut fut).now_or_never()
            } else {
                tokio::time::timeout(EVENT_TIMEOUT, &mut fut).await.ok()
            };
            return match got {
                Some(ev) => format!("[{}]", self.event(&ev)),
                None => {
                    self.oneshots.insert(label, (s, fut));
                    if n == 0 {
                        "[]".into()
                    } else {
                        format!("[] (none within {EVENT_TIMEOUT:?})")
                    }
                }
            };
        }
        let Some((s, mut w)) = self.persistents.remove(label) else {
            return format!("no watch {label:?}");
        };
        let mut got = Vec::new();
        let mut late = false;
        for _ in 0..n {
            match tokio::time::timeout(EVENT_TIMEOUT, w.changed()).await {
                Ok(ev) => got.push(self.event(&ev)),
                Err(_) => {
                    late = true;
                    break;
                }
            }
        }
        if !late {
            self.round_trip(s).await;
            while let Some(ev) = w.changed().now_or_never() {
                got.push(self.event(&ev));
            }
        }
        self.persistents.insert(label, (s, w));
        if any_order {
            got.sort();
        }
        let mut out = format!("[{}]", got.join(", "));
        if late {
            let _ = write!(out, " (only {} within {EVENT_TIMEOUT:?} each)", got.len());
        }
        out
    }

    /// sync + exists on session `s`: afterwards every notification the server sent before
    /// has been dispatched to its watcher.
    async fn round_trip(&self, s: usize) {
        if let Some(c) = self.client(s) {
            let _ = c.sync("/").await;
            let _ = c.check_stat("/").await;
        }
    }

    // --- raw requests --------------------------------------------------------------------

    fn raw(&mut self, r: usize, req: &Raw) -> String {
        if !self.raws.contains_key(&r) {
            match RawClient::connect(self.raw_addr) {
                Ok(c) => {
                    self.owners.insert(c.session_id, format!("r{r}"));
                    self.raws.insert(r, c);
                }
                Err(e) => return format!("raw connect failed: {e}"),
            }
        }
        let (opcode, body) = encode(req);
        let reply = self
            .raws
            .get_mut(&r)
            .expect("raw session")
            .call(opcode, body);
        match reply {
            Ok(reply) => {
                let mut out = format!("err={}", reply.err);
                let mut rd = Rd(&reply.body);
                let decoded = if reply.err == 0 || matches!(req, Raw::Multi(_) | Raw::MultiRead(_))
                {
                    self.decode(req, &mut rd)
                } else {
                    Some(String::new())
                };
                match decoded {
                    Some(d) if !d.is_empty() => {
                        let _ = write!(out, " {d}");
                    }
                    Some(_) => {}
                    None => out.push_str(" <truncated body>"),
                }
                if !rd.0.is_empty() {
                    let _ = write!(out, " +{} unread bytes", rd.0.len());
                }
                out
            }
            Err(e) => {
                self.raws.remove(&r);
                format!("connection error: {}", io_kind(&e))
            }
        }
    }

    /// Decodes a successful reply body (or a multi's per-op results).
    fn decode(&mut self, req: &Raw, rd: &mut Rd) -> Option<String> {
        Some(match req {
            Raw::Create { op: 1, .. } => rd.string()?,
            Raw::Create { .. } => {
                let path = rd.string()?;
                let st = rd.stat()?;
                format!("{path} {}", self.stat(&st))
            }
            Raw::Delete(..) | Raw::Check(..) | Raw::CheckWatches(..) | Raw::RemoveWatches(..) => {
                String::new()
            }
            Raw::SetData(..) | Raw::Exists(_) | Raw::SetAcl(..) => {
                let st = rd.stat()?;
                self.stat(&st)
            }
            Raw::GetData(_) | Raw::GetDataWatch(_) => {
                let data = rd.buffer()?;
                let st = rd.stat()?;
                format!("{} {}", bytes(&data), self.stat(&st))
            }
            Raw::Children(_) | Raw::Ephemerals(_) => sorted(rd.strings()?),
            Raw::Children2(_) => {
                let kids = sorted(rd.strings()?);
                let st = rd.stat()?;
                format!("{kids} {}", self.stat(&st))
            }
            Raw::Sync(_) => rd.string()?,
            Raw::GetAcl(_) => {
                let n = rd.int()?;
                let mut list = Vec::new();
                for _ in 0..n.max(0) {
                    let perms = rd.int()?;
                    let scheme = rd.string()?;
                    let id = rd.string()?;
                    list.push(format!("{perms}:{scheme}:{id}"));
                }
                let st = rd.stat()?;
                format!("[{}] {}", list.join(", "), self.stat(&st))
            }
            Raw::Count(_) => rd.int()?.to_string(),
            Raw::Multi(_) | Raw::MultiRead(_) => {
                if rd.0.is_empty() {
                    return Some(String::new());
                }
                let mut out = Vec::new();
                loop {
                    let typ = rd.int()?;
                    let done = rd.boolean()?;
                    let err = rd.int()?;
                    if done {
                        out.push(format!("end(type={typ} err={err})"));
                        break;
                    }
                    out.push(match typ {
                        -1 => format!("error({})", rd.int()?),
                        1 => format!("create({})", rd.string()?),
                        15 | 19 | 21 => {
                            let path = rd.string()?;
                            let st = rd.stat()?;
                            format!("create{typ}({path} {})", self.stat(&st))
                        }
                        2 => "delete".into(),
                        5 => {
                            let st = rd.stat()?;
                            format!("setData({})", self.stat(&st))
                        }
                        13 => "check".into(),
                        4 => {
                            let data = rd.buffer()?;
                            let st = rd.stat()?;
                            format!("getData({} {})", bytes(&data), self.stat(&st))
                        }
                        8 => format!("getChildren({})", sorted(rd.strings()?)),
                        other => {
                            out.push(format!("type {other} header err {err} (undecoded)"));
                            break;
                        }
                    });
                }
                format!("[{}]", out.join(", "))
            }
            Raw::Opcode(_) | Raw::Reconfig => {
                let rest = std::mem::take(&mut rd.0);
                format!("body {:02x?}", rest)
            }
        })
    }
}

/// Encodes a raw request: its opcode and body.
fn encode(req: &Raw) -> (i32, Buf) {
    let acl_buf = |mut b: Buf, acl: &[(i32, &str, &str)]| {
        b = b.int(acl.len() as i32);
        for (perms, scheme, id) in acl {
            b = b.int(*perms).string(scheme).string(id);
        }
        b
    };
    match req {
        Raw::Create {
            op,
            path,
            flags,
            ttl,
            acl,
        } => {
            let mut b = acl_buf(Buf::default().string(path).buffer(b"raw"), acl).int(*flags);
            if *op == 21 {
                b = b.long(*ttl);
            }
            (*op, b)
        }
        Raw::Delete(p, v) => (2, Buf::default().string(p).int(*v)),
        Raw::SetData(p, v) => (5, Buf::default().string(p).buffer(b"raw").int(*v)),
        Raw::GetData(p) => (4, Buf::default().string(p).boolean(false)),
        Raw::GetDataWatch(p) => (4, Buf::default().string(p).boolean(true)),
        Raw::CheckWatches(p, t) => (17, Buf::default().string(p).int(*t)),
        Raw::RemoveWatches(p, t) => (18, Buf::default().string(p).int(*t)),
        Raw::Reconfig => (
            16,
            Buf::default()
                .string("server.9=127.0.0.1:1:2:participant;127.0.0.1:3")
                .int(-1)
                .int(-1)
                .long(-1),
        ),
        Raw::Exists(p) => (3, Buf::default().string(p).boolean(false)),
        Raw::Children(p) => (8, Buf::default().string(p).boolean(false)),
        Raw::Children2(p) => (12, Buf::default().string(p).boolean(false)),
        Raw::Check(p, v) => (13, Buf::default().string(p).int(*v)),
        Raw::Sync(p) => (9, Buf::default().string(p)),
        Raw::GetAcl(p) => (6, Buf::default().string(p)),
        Raw::SetAcl(p, acl, v) => (7, acl_buf(Buf::default().string(p), acl).int(*v)),
        Raw::Count(p) => (104, Buf::default().string(p)),
        Raw::Ephemerals(p) => (103, Buf::default().string(p)),
        Raw::Multi(ops) | Raw::MultiRead(ops) => {
            let mut b = Buf::default();
            for op in ops {
                let (code, body) = encode(op);
                b = b.int(code).boolean(false).int(-1);
                b.0.extend_from_slice(&body.0);
            }
            let code = if matches!(req, Raw::Multi(_)) { 14 } else { 22 };
            (code, b.int(-1).boolean(true).int(-1))
        }
        Raw::Opcode(code) => (*code, Buf::default()),
    }
}

/// A jute reader over a reply body.
struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn int(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn long(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn boolean(&mut self) -> Option<bool> {
        Some(self.take(1)?[0] != 0)
    }
    fn buffer(&mut self) -> Option<Vec<u8>> {
        let n = self.int()?;
        if n < 0 {
            return Some(Vec::new());
        }
        Some(self.take(n as usize)?.to_vec())
    }
    fn string(&mut self) -> Option<String> {
        Some(String::from_utf8_lossy(&self.buffer()?).into_owned())
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.int()?;
        (0..n.max(0)).map(|_| self.string()).collect()
    }
    fn stat(&mut self) -> Option<Stat> {
        Some(Stat {
            czxid: self.long()?,
            mzxid: self.long()?,
            ctime: self.long()?,
            mtime: self.long()?,
            version: self.int()?,
            cversion: self.int()?,
            aversion: self.int()?,
            ephemeral_owner: self.long()?,
            data_length: self.int()?,
            num_children: self.int()?,
            pzxid: self.long()?,
        })
    }
}

fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionAborted => "closed by the server".into(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "no reply (timeout)".into()
        }
        other => format!("{other:?}"),
    }
}

fn bytes(data: &[u8]) -> String {
    format!("{:?}", data.escape_ascii().to_string())
}

fn sorted(mut v: Vec<String>) -> String {
    v.sort();
    format!("[{}]", v.join(", "))
}

fn acls(list: &[Acl]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|a| format!("{}:{}:{}", a.permission(), a.scheme(), a.id()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn perm(bits: i32) -> Permission {
    [
        (1, Permission::READ),
        (2, Permission::WRITE),
        (4, Permission::CREATE),
        (8, Permission::DELETE),
        (16, Permission::ADMIN),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .fold(Permission::NONE, |all, (_, p)| all | p)
}

fn acl_list(spec: &AclSpec) -> Vec<Acl> {
    match spec {
        AclSpec::List(items) => items
            .iter()
            .map(|(bits, scheme, id)| Acl::new(perm(*bits), AuthId::new(scheme, id)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Any ACL spec as an owned list (setACL takes a slice).
fn opts_acls(spec: &AclSpec) -> Vec<Acl> {
    let acls = match spec {
        AclSpec::AnyoneAll => Acls::anyone_all(),
        AclSpec::AnyoneRead => Acls::anyone_read(),
        AclSpec::CreatorAll => Acls::creator_all(),
        AclSpec::List(_) => return acl_list(spec),
    };
    acls.to_vec()
}

fn options<'a>(mode: Mode, acl: &AclSpec, list: &'a [Acl]) -> CreateOptions<'a> {
    let acls = match acl {
        AclSpec::AnyoneAll => Acls::anyone_all(),
        AclSpec::AnyoneRead => Acls::anyone_read(),
        AclSpec::CreatorAll => Acls::creator_all(),
        AclSpec::List(_) => Acls::new(list),
    };
    let (m, ttl) = match mode {
        Mode::P => (CreateMode::Persistent, None),
        Mode::PSeq => (CreateMode::PersistentSequential, None),
        Mode::E => (CreateMode::Ephemeral, None),
        Mode::ESeq => (CreateMode::EphemeralSequential, None),
        Mode::Container => (CreateMode::Container, None),
        Mode::Ttl(ms) => (CreateMode::Persistent, Some(ms)),
        Mode::TtlSeq(ms) => (CreateMode::PersistentSequential, Some(ms)),
    };
    let opts = m.with_acls(acls);
    match ttl {
        Some(ms) => opts.with_ttl(Duration::from_millis(ms)),
        None => opts,
    }
}

// ---------------------------------------------------------------------------------------------
// Running a table

/// The servers of one test: a real ZooKeeper and a quorumfs cluster of `voters` nodes, or
/// `None` (after a SKIP line) when ZooKeeper is not installed.
fn servers(test: &str, voters: usize) -> Option<(RealZk, Cluster, [Target; 2])> {
    let mut zk = RealZk::launch_or_skip(test)?;
    let cluster = Cluster::start(voters);
    zk.wait_ready();
    let zk_target = Target::new("zookeeper", vec![zk.client_addr()], zk.client_socket());
    let addrs = cluster.nodes().iter().map(|n| n.client_addr()).collect();
    let qfs = Target::new("quorumfs", addrs, cluster.node(1).client_socket());
    Some((zk, cluster, [zk_target, qfs]))
}

/// Runs every row on both targets (ZooKeeper first) and fails listing every difference.
async fn run(test: &str, targets: &mut [Target; 2], rows: Vec<Row>) {
    let started = Instant::now();
    let mut transcript = String::new();
    let mut diffs = Vec::new();
    let mut known_diffs = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let n = i + 1;
        let zk = targets[0].exec(n, &row.op).await;
        let qfs = targets[1].exec(n, &row.op).await;
        let _ = writeln!(transcript, "#{n} [{}] {:?}", row.note, row.op);
        if zk == qfs {
            let _ = writeln!(transcript, "    both:      {zk}");
            continue;
        }
        let report = format!(
            "step #{n} [{}]\n    request:   {:?}\n    {:<10} {zk}\n    {:<10} {qfs}",
            row.note,
            row.op,
            format!("{}:", targets[0].name),
            format!("{}:", targets[1].name),
        );
        let _ = writeln!(
            transcript,
            "  DIFFERENT\n    {}",
            report.replace('\n', "\n    ")
        );
        match row.known {
            Some(why) => known_diffs.push(format!("{report}\n    known:     {why}")),
            None => diffs.push(report),
        }
    }
    println!(
        "{test}: {} steps in {:?}\n{transcript}",
        rows.len(),
        started.elapsed()
    );
    for k in &known_diffs {
        println!("KNOWN DIFFERENCE in {test}: {k}");
    }
    assert!(
        diffs.is_empty(),
        "{test}: {} of {} steps answered differently by ZooKeeper 3.8 and quorumfs:\n\n{}\n",
        diffs.len(),
        rows.len(),
        diffs.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The tables

use AclSpec::{AnyoneAll, AnyoneRead, CreatorAll};
use Mode::{Container, ESeq, PSeq, Ttl, TtlSeq, E, P};
use WatchKind::{Children as WChildren, Data as WData, Exists as WExists, List as WList};

const HOUR_MS: u64 = 3_600_000;

/// Create in every mode and its errors, sequential counters, delete/setData with versions,
/// exists/getData/getChildren(2), getAllChildrenNumber, getEphemerals, sync, ACLs and auth,
/// and the `/zookeeper` system subtree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_znode_operations() {
    const TEST: &str = "differential_znode_operations";
    let Some((_zk, _cluster, mut targets)) = servers(TEST, 1) else {
        return;
    };
    let rows = vec![
        step("session 0", open(0)),
        step("fresh root", children(0, "/")),
        step("fresh root stat", exists(0, "/")),
        // create in every mode
        step("persistent", create(0, "/a", b"a", P)),
        step("NodeExists", create(0, "/a", b"again", P)),
        step("NoNode parent", create(0, "/missing/child", b"", P)),
        step("child", create(0, "/a/b", b"b", P)),
        step("parent after a child: cversion, pzxid", get(0, "/a")),
        step("empty data", create(0, "/a/empty", b"", P)),
        step("ephemeral", create(0, "/a/eph", b"e", E)),
        step("NoChildrenForEphemerals", create(0, "/a/eph/child", b"", P)),
        step(
            "NoChildrenForEphemerals (seq)",
            create(0, "/a/eph/s-", b"", PSeq),
        ),
        step(
            "NoChildrenForEphemerals (eph)",
            create(0, "/a/eph/e", b"", E),
        ),
        step(
            "NoChildrenForEphemerals (container)",
            create(0, "/a/eph/c", b"", Container),
        ),
        step(
            "NoChildrenForEphemerals (ttl)",
            create(0, "/a/eph/t", b"", Ttl(HOUR_MS)),
        ),
        step(
            "NodeExists beats NoChildrenForEphemerals",
            create(0, "/a/eph", b"", P),
        ),
        step("ephemeral sequential", create(0, "/a/es-", b"es", ESeq)),
        step("container", create(0, "/cont", b"c", Container)),
        step("container stat (owner)", get(0, "/cont")),
        step("container child", create(0, "/cont/x", b"", P)),
        step("ttl", create(0, "/ttl", b"t", Ttl(HOUR_MS))),
        step("ttl stat (owner)", exists(0, "/ttl")),
        step(
            "ttl sequential",
            create(0, "/ttlseq-", b"", TtlSeq(HOUR_MS)),
        ),
        step("ttl child of ttl", create(0, "/ttl/k", b"", Ttl(HOUR_MS))),
        step("create the root", create(0, "/", b"", P)),
        step("create in /zookeeper", create(0, "/zookeeper/x", b"", P)),
        step("invalid path (client-side)", create(0, "/a/", b"", P)),
        step("invalid path (client-side)", create(0, "a", b"", P)),
        step("invalid path (client-side)", create(0, "/a/./b", b"", P)),
        // sequential counters
        step("seq parent", create(0, "/seq", b"", P)),
        step("seq 0", create(0, "/seq/n-", b"", PSeq)),
        step("seq 1", create(0, "/seq/n-", b"", PSeq)),
        step(
            "plain child bumps cversion",
            create(0, "/seq/plain", b"", P),
        ),
        step("seq 3", create(0, "/seq/n-", b"", PSeq)),
        step("delete seq 1", delete(0, "/seq/n-0000000001", None)),
        step("seq after a delete", create(0, "/seq/n-", b"", PSeq)),
        step("seq with an empty prefix", create(0, "/seq/", b"", PSeq)),
        step(
            "ephemeral seq shares the counter",
            create(0, "/seq/e-", b"", ESeq),
        ),
        step(
            "seq of an existing name's prefix",
            create(0, "/seq/plain", b"", PSeq),
        ),
        step("seq NoNode parent", create(0, "/nope/n-", b"", PSeq)),
        step("seq children", children(0, "/seq")),
        step("seq parent stat", children2(0, "/seq")),
        // getData / exists
        step("getData", get(0, "/a")),
        step("getData NoNode", get(0, "/a/zz")),
        step("getData root", get(0, "/")),
        step("exists", exists(0, "/a/b")),
        step("exists NoNode", exists(0, "/a/zz")),
        step("exists under a missing parent", exists(0, "/zz/zz")),
        // setData with versions
        step("setData v0", set(0, "/a/b", b"b1", Some(0))),
        step("setData stale v0", set(0, "/a/b", b"b2", Some(0))),
        step("setData any version", set(0, "/a/b", b"b3", None)),
        step("setData v2", set(0, "/a/b", b"", Some(2))),
        step("setData future version", set(0, "/a/b", b"x", Some(9))),
        step("setData NoNode", set(0, "/a/zz", b"x", None)),
        step(
            "setData NoNode beats version",
            set(0, "/a/zz", b"x", Some(3)),
        ),
        step("after setData", get(0, "/a/b")),
        step("setData on the root", set(0, "/", b"root", None)),
        step("root after setData", get(0, "/")),
        step("parent unchanged by child setData", exists(0, "/a")),
        // delete with versions
        step("NotEmpty", delete(0, "/a", None)),
        step("NotEmpty beats BadVersion", delete(0, "/a", Some(7))),
        step("delete stale version", delete(0, "/a/b", Some(0))),
        step("delete", delete(0, "/a/b", Some(3))),
        step("delete again", delete(0, "/a/b", None)),
        step("delete missing parent", delete(0, "/zz/zz", None)),
        step("parent after delete: cversion, pzxid", children2(0, "/a")),
        step("delete own ephemeral", delete(0, "/a/eph", Some(0))),
        step("delete the root (client-side)", delete(0, "/", None)),
        // children, counts
        step("getChildren", children(0, "/a")),
        step("getChildren NoNode", children(0, "/zz")),
        step("getChildren2", children2(0, "/a")),
        step("getChildren2 of a leaf", children2(0, "/a/empty")),
        step("getChildren root", children(0, "/")),
        step("getAllChildrenNumber /", count(0, "/")),
        step("getAllChildrenNumber /seq", count(0, "/seq")),
        step("getAllChildrenNumber leaf", count(0, "/a/empty")),
        step("getAllChildrenNumber NoNode", count(0, "/zz")),
        // ephemerals
        step("getEphemerals /", ephemerals(0, "/")),
        step("getEphemerals prefix", ephemerals(0, "/a")),
        step("getEphemerals string prefix", ephemerals(0, "/se")),
        step("getEphemerals none", ephemerals(0, "/zz")),
        step("session 1", open(1)),
        step("session 1 ephemeral", create(1, "/s1eph", b"", E)),
        step("session 1 getEphemerals", ephemerals(1, "/")),
        step("session 0 getEphemerals excludes s1", ephemerals(0, "/")),
        step("owner is s1", exists(0, "/s1eph")),
        step("s0 deletes s1's ephemeral", delete(0, "/s1eph", None)),
        step("s1 getEphemerals after", ephemerals(1, "/")),
        // sync
        step("sync", sync(0, "/a")),
        step("sync a missing path", sync(0, "/zz")),
        // ACLs
        step("getACL", get_acl(0, "/a")),
        step("getACL NoNode", get_acl(0, "/zz")),
        step("scratch parent for ACL rows", create(0, "/acl", b"", P)),
        step("ro node", create(0, "/acl/ro", b"ro", P)),
        step(
            "setACL v0 (same ACL)",
            set_acl(0, "/acl/ro", AnyoneAll, Some(0)),
        ),
        step(
            "setACL stale version",
            set_acl(0, "/acl/ro", AnyoneAll, Some(0)),
        ),
        step(
            "setACL future version",
            set_acl(0, "/acl/ro", AnyoneAll, Some(5)),
        ),
        step("setACL NoNode", set_acl(0, "/zz", AnyoneAll, None)),
        step(
            "setACL read-only v1",
            set_acl(0, "/acl/ro", AnyoneRead, Some(1)),
        ),
        step("getACL after", get_acl(0, "/acl/ro")),
        step("stat after setACL (aversion)", exists(0, "/acl/ro")),
        step("read-only: getData", get(0, "/acl/ro")),
        step("read-only: setData NoAuth", set(0, "/acl/ro", b"x", None)),
        step(
            "read-only: create child NoAuth",
            create(0, "/acl/ro/c", b"", P),
        ),
        step(
            "read-only: setACL NoAuth",
            set_acl(0, "/acl/ro", AnyoneAll, None),
        ),
        step(
            "read-only: delete (parent's DELETE)",
            delete(0, "/acl/ro", None),
        ),
        step(
            "setACL empty",
            set_acl(0, "/a", AclSpec::List(vec![]), None),
        ),
        step(
            "create world:nobody",
            create_acl(0, "/acl/bad1", AclSpec::List(vec![(31, "world", "nobody")])),
        ),
        step(
            "create unknown scheme",
            create_acl(0, "/acl/bad2", AclSpec::List(vec![(31, "bogus", "x")])),
        ),
        step(
            "create digest without a hash",
            create_acl(0, "/acl/bad3", AclSpec::List(vec![(31, "digest", "alice")])),
        ),
        step(
            "create auth ACL without auth",
            create_acl(0, "/acl/bad4", CreatorAll),
        ),
        step(
            "create ip ACL (loopback)",
            create_acl(0, "/acl/iplo", AclSpec::List(vec![(31, "ip", "127.0.0.1")])),
        ),
        step("ip loopback: getData", get(0, "/acl/iplo")),
        step(
            "create ip ACL (elsewhere)",
            create_acl(0, "/acl/ipfar", AclSpec::List(vec![(31, "ip", "10.1.2.3")])),
        ),
        step("ip elsewhere: getData NoAuth", get(0, "/acl/ipfar")),
        step("ip elsewhere: exists", exists(0, "/acl/ipfar")),
        step(
            "ip elsewhere: getChildren NoAuth",
            children(0, "/acl/ipfar"),
        ),
        step("ip elsewhere: getACL", get_acl(0, "/acl/ipfar")),
        step(
            "create ip ACL (subnet, READ)",
            create_acl(
                0,
                "/acl/ipnet",
                AclSpec::List(vec![(1, "ip", "127.0.0.0/8")]),
            ),
        ),
        step("ip subnet: getData", get(0, "/acl/ipnet")),
        step(
            "ip subnet: setData NoAuth",
            set(0, "/acl/ipnet", b"x", None),
        ),
        step(
            "create with two ACL entries",
            create_acl(
                0,
                "/acl/two",
                AclSpec::List(vec![(1, "world", "anyone"), (16, "ip", "127.0.0.1")]),
            ),
        ),
        step("two entries: getACL order", get_acl(0, "/acl/two")),
        step("whoAmI", Op::WhoAmI { s: 0 }),
        step(
            "addAuth digest",
            Op::AddAuth {
                s: 1,
                scheme: "digest",
                auth: b"alice:secret",
            },
        ),
        step("whoAmI after addAuth", Op::WhoAmI { s: 1 }),
        step("creator ACL", create_acl(1, "/secret", CreatorAll)),
        step("creator ACL: getACL (digest hash)", get_acl(1, "/secret")),
        step("creator: getData", get(1, "/secret")),
        step("other: getData NoAuth", get(0, "/secret")),
        step("other: exists", exists(0, "/secret")),
        step("other: getChildren NoAuth", children(0, "/secret")),
        step("other: getACL", get_acl(0, "/secret")),
        step("other: setData NoAuth", set(0, "/secret", b"x", None)),
        step(
            "digest ACL given explicitly",
            create_acl(
                1,
                "/secret2",
                AclSpec::List(vec![(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")]),
            ),
        ),
        step("explicit digest: getData by alice", get(1, "/secret2")),
        step(
            "digest ACL, world READ",
            create_acl(
                1,
                "/secret3",
                AclSpec::List(vec![
                    (1, "world", "anyone"),
                    (31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
                ]),
            ),
        ),
        step("getACL without ADMIN (hash hidden)", get_acl(0, "/secret3")),
        step("getACL with ADMIN", get_acl(1, "/secret3")),
        step(
            "delete a missing child of a READ-only parent",
            delete(0, "/acl/ipnet/zz", None),
        ),
        step(
            "multi: NoAuth in the middle",
            multi(
                0,
                vec![
                    MOp::Create("/acl/m1", b"", P),
                    MOp::SetData("/acl/ipnet", b"x", None),
                    MOp::Create("/acl/m2", b"", P),
                ],
            ),
        ),
        step(
            "multi: an earlier failure beats NoAuth",
            multi(
                0,
                vec![
                    MOp::Check("/acl/zz", 0),
                    MOp::SetData("/acl/ipnet", b"x", None),
                ],
            ),
        ),
        step(
            "multi: check needs READ",
            multi(0, vec![MOp::Check("/secret", 0)]),
        ),
        step(
            "multi: check with READ",
            multi(1, vec![MOp::Check("/secret", 0)]),
        ),
        step(
            "addAuth ip",
            Op::AddAuth {
                s: 0,
                scheme: "ip",
                auth: b"",
            },
        ),
        step("whoAmI after addAuth ip", Op::WhoAmI { s: 0 }),
        // the /zookeeper subtree
        step("/zookeeper children", children(0, "/zookeeper")),
        step("/zookeeper", get(0, "/zookeeper")),
        step("/zookeeper/config", get(0, "/zookeeper/config")),
        step("/zookeeper/quota", get(0, "/zookeeper/quota")),
        step("/zookeeper/quota children", children(0, "/zookeeper/quota")),
        step("/zookeeper getACL", get_acl(0, "/zookeeper")),
        step("/zookeeper/config getACL", get_acl(0, "/zookeeper/config")),
        step("/zookeeper count", count(0, "/zookeeper")),
        step(
            "setData /zookeeper/config",
            set(0, "/zookeeper/config", b"x", None),
        ),
        step("delete /zookeeper", delete(0, "/zookeeper", None)),
        step("root at the end", children2(0, "/")),
        step("count at the end", count(0, "/")),
        // a failed addAuth ends the session: last, on a session of its own
        step("session 2", open(2)),
        step(
            "addAuth unknown scheme",
            Op::AddAuth {
                s: 2,
                scheme: "bogus",
                auth: b"x",
            },
        ),
        step("session 2 after AuthFailed", exists(2, "/")),
    ];
    run(TEST, &mut targets, rows).await;
}

/// multi (success, a failing op in the middle, every error), check, multiRead, and requests
/// the crate will not send: invalid paths, create flags and ACLs, standalone check, empty and
/// mixed multis, unknown opcodes — through `jute::RawClient`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_multi_and_raw_requests() {
    const TEST: &str = "differential_multi_and_raw_requests";
    let Some((_zk, _cluster, mut targets)) = servers(TEST, 1) else {
        return;
    };
    use MOp as M;
    use ROp as R;
    let mut rows = vec![
        step("session 0", open(0)),
        step("parent", create(0, "/m", b"m", P)),
        step(
            "multi: every op succeeds",
            multi(
                0,
                vec![
                    M::Create("/m/a", b"a", P),
                    M::Create("/m/b", b"b", P),
                    M::SetData("/m", b"m1", Some(0)),
                    M::Check("/m", 1),
                    M::Delete("/m/a", Some(0)),
                    M::Create("/m/s-", b"", PSeq),
                    M::Create("/m/s-", b"", PSeq),
                ],
            ),
        ),
        step("after the multi", children2(0, "/m")),
        step("after the multi (data)", get(0, "/m")),
        step(
            "multi: BadVersion in the middle",
            multi(
                0,
                vec![
                    M::Create("/m/c", b"", P),
                    M::SetData("/m/b", b"", Some(7)),
                    M::Create("/m/d", b"", P),
                ],
            ),
        ),
        step("nothing applied", exists(0, "/m/c")),
        step("parent unchanged", children2(0, "/m")),
        step("multi: check NoNode", multi(0, vec![M::Check("/m/zz", 0)])),
        step("multi: check BadVersion", multi(0, vec![M::Check("/m", 0), M::Delete("/m/b", None)])),
        step("multi: NodeExists", multi(0, vec![M::Create("/m/b", b"", P)])),
        step("multi: NotEmpty", multi(0, vec![M::Delete("/m", None)])),
        step("multi: NoNode delete", multi(0, vec![M::Delete("/m/zz", None)])),
        step(
            "multi: NoChildrenForEphemerals within the multi",
            multi(0, vec![M::Create("/m/e", b"", E), M::Create("/m/e/x", b"", P)]),
        ),
        step(
            "multi: delete then re-create",
            multi(0, vec![M::Delete("/m/b", Some(0)), M::Create("/m/b", b"again", P)]),
        ),
        step(
            "multi: create then delete (later op sees the earlier one)",
            multi(0, vec![M::Create("/m/t", b"", P), M::Delete("/m/t", Some(0))]),
        ),
        step(
            "multi: setData twice, check sees the second",
            multi(
                0,
                vec![
                    M::SetData("/m/b", b"1", Some(0)),
                    M::SetData("/m/b", b"2", Some(1)),
                    M::Check("/m/b", 2),
                ],
            ),
        ),
        step(
            "multi: container, ephemeral, ttl",
            multi(
                0,
                vec![
                    M::Create("/m/cont", b"", Container),
                    M::Create("/m/eph", b"", E),
                    M::Create("/m/ttl", b"", Ttl(HOUR_MS)),
                ],
            ),
        ),
        step("multi: last op fails", multi(0, vec![M::Create("/m/f", b"", P), M::Create("/m/f", b"", P)])),
        step("state after", children2(0, "/m")),
        step(
            "multiRead",
            multi_read(
                0,
                vec![
                    R::Data("/m"),
                    R::Children("/m"),
                    R::Data("/m/zz"),
                    R::Children("/m/zz"),
                    R::Data("/m/b"),
                ],
            ),
        ),
        // raw: creates the crate cannot express. Creates that may diverge go under /k, whose
        // Stat is not read again, so that one difference does not echo through later rows.
        step("raw create (1)", raw(0, rcreate(1, "/r", 0))),
        step("scratch parent", raw(0, rcreate(1, "/k", 0))),
        step("raw create2 (15)", raw(0, rcreate(15, "/r2", 0))),
        step("raw createContainer", raw(0, rcreate(19, "/rc", 4))),
        step("raw createTTL", raw(0, rcreate_ttl("/rt", 5, 60_000))),
        step("raw createTTL seq", raw(0, rcreate_ttl("/rts-", 6, 60_000))),
        step("raw create2, container flags", raw(0, rcreate(15, "/rc3", 4))),
        step("raw createContainer, persistent flags", raw(0, rcreate(19, "/k/rc2", 0))),
        step("raw createTTL ephemeral", raw(0, rcreate_ttl("/rt2", 1, 60_000))),
        step("raw createTTL container", raw(0, rcreate_ttl("/rt3", 4, 60_000))),
        step("raw createTTL ttl 0", raw(0, rcreate_ttl("/rt4", 5, 0))),
        step("raw createTTL ttl -1", raw(0, rcreate_ttl("/rt5", 5, -1))),
        step("raw createTTL ttl too big", raw(0, rcreate_ttl("/rt6", 5, 1 << 41))),
        step("raw createTTL persistent flags", raw(0, rcreate_ttl("/rt7", 0, 60_000))),
        step("raw create2 with TTL flags", raw(0, rcreate(15, "/rt8", 5))),
        step("raw create unknown flags", raw(0, rcreate(1, "/rf", 99))),
        step("raw create negative flags", raw(0, rcreate(1, "/rf2", -1))),
        step("raw create empty ACL", raw(0, rcreate_acl("/k/ra1", vec![]))),
        step("raw create ACL perms 0", raw(0, rcreate_acl("/k/ra2", vec![(0, "world", "anyone")]))),
        step("raw create ACL perms 64", raw(0, rcreate_acl("/k/ra3", vec![(64 | 31, "world", "anyone")]))),
        step("raw getACL perms", raw(0, Raw::GetAcl("/k/ra3"))),
        step("raw create ACL ip bad", raw(0, rcreate_acl("/k/ra4", vec![(31, "ip", "not-an-ip")]))),
        step("raw create ACL x509", raw(0, rcreate_acl("/k/ra5", vec![(31, "x509", "CN=a")]))),
        step("raw setACL empty", raw(0, Raw::SetAcl("/r", vec![], -1))),
        step("raw setACL bad version", raw(0, Raw::SetAcl("/r", OPEN_ACL.to_vec(), 5))),
        step("raw setACL", raw(0, Raw::SetAcl("/r", OPEN_ACL.to_vec(), 0))),
        // raw reads
        step("raw getData", raw(0, Raw::GetData("/r"))),
        step("raw exists", raw(0, Raw::Exists("/r"))),
        step("raw exists NoNode", raw(0, Raw::Exists("/zz"))),
        step("raw getChildren", raw(0, Raw::Children("/m"))),
        step("raw getChildren2", raw(0, Raw::Children2("/m"))),
        step("raw getAllChildrenNumber", raw(0, Raw::Count("/m"))),
        step("raw getEphemerals", raw(0, Raw::Ephemerals("/"))),
        step("raw sync", raw(0, Raw::Sync("/r"))),
        step("raw sync NoNode", raw(0, Raw::Sync("/zz"))),
        // check outside a multi
        step("raw check", raw(0, Raw::Check("/r", 0))),
        step("raw check BadVersion", raw(0, Raw::Check("/r", 3))),
        step("raw check NoNode", raw(0, Raw::Check("/zz", 0))),
        // multi on the wire: per-op results
        step(
            "raw multi: success",
            raw(
                0,
                Raw::Multi(vec![
                    rcreate(1, "/r/m1", 0),
                    rcreate(1, "/r/m2", 0),
                    Raw::SetData("/r", -1),
                    Raw::Check("/r", 1),
                    Raw::Delete("/r/m1", 0),
                ]),
            ),
        ),
        // KNOWN DIFFERENCE: quorumfs answers a create2 (and createContainer/createTTL) inside
        // a multi with a create2 result carrying the Stat, as ZOOKEEPER-4026's fix does
        // (documented on `MultiOp` in fsd/src/zk/proto/message.rs); Debian's 3.8.0 predates
        // the fix and answers create2 with a plain create result (path only).
        known(
            "create2 in a multi answers with a Stat (ZOOKEEPER-4026 fixed); 3.8.0 answers path only",
            "raw multi: create2 result type",
            raw(0, Raw::Multi(vec![rcreate(15, "/k/m9", 0), Raw::Delete("/k/m9", -1)])),
        ),
        step(
            "raw multi: failure in the middle",
            raw(
                0,
                Raw::Multi(vec![
                    rcreate(1, "/r/m3", 0),
                    Raw::SetData("/r", 9),
                    rcreate(1, "/r/m4", 0),
                    Raw::Delete("/zz", -1),
                ]),
            ),
        ),
        step(
            "raw multi: first op fails",
            raw(0, Raw::Multi(vec![Raw::Check("/zz", 0), rcreate(1, "/r/m5", 0)])),
        ),
        step(
            "raw multi: invalid path inside",
            raw(0, Raw::Multi(vec![rcreate(1, "/r/m6", 0), rcreate(1, "/r/", 0)])),
        ),
        step("raw multi: empty", raw(0, Raw::Multi(vec![]))),
        step(
            "raw multi: a read inside",
            raw(0, Raw::Multi(vec![rcreate(1, "/r/m7", 0), Raw::GetData("/r")])),
        ),
        step("nothing applied by the mixed multi", raw(0, Raw::Exists("/r/m7"))),
        step(
            "raw multiRead",
            raw(
                0,
                Raw::MultiRead(vec![Raw::GetData("/r"), Raw::Children("/r"), Raw::GetData("/zz")]),
            ),
        ),
        step("raw multiRead: empty", raw(0, Raw::MultiRead(vec![]))),
        step(
            "raw multiRead: a write inside",
            raw(0, Raw::MultiRead(vec![Raw::GetData("/r"), rcreate(1, "/r/m8", 0)])),
        ),
        step("raw: root create", raw(0, rcreate(1, "/", 0))),
        step("raw: root delete", raw(0, Raw::Delete("/", -1))),
        step("raw: root setData", raw(0, Raw::SetData("/", -1))),
        step("raw: /zookeeper delete", raw(0, Raw::Delete("/zookeeper", -1))),
        step("raw: /zookeeper/quota delete", raw(0, Raw::Delete("/zookeeper/quota", -1))),
        step("raw: /zookeeper/config create", raw(0, rcreate(1, "/zookeeper/config", 0))),
    ];
    // Invalid paths and edge cases, every op (the parent /r exists).
    const BAD_PATHS: &[&str] = &[
        "",
        "r",
        "r/x",
        "/r/",
        "//r",
        "/r//x",
        "/r/.",
        "/r/..",
        "/r/./x",
        "/r/../x",
        "/r/x\0y",
        "/r/\u{1}",
        "/r/\u{7f}",
        "/r/\u{9f}",
        "/r/\u{f8ff}",
        "/r/\u{fffe}",
        "/r/x.",
        "/r/.x",
        "/r/...",
        "/zz/",
    ];
    for p in BAD_PATHS {
        rows.push(step("invalid path: create", raw(0, rcreate(1, p, 0))));
        rows.push(step("invalid path: create2 seq", raw(0, rcreate(15, p, 2))));
        rows.push(step("invalid path: setData", raw(0, Raw::SetData(p, -1))));
        rows.push(step("invalid path: delete", raw(0, Raw::Delete(p, -1))));
        rows.push(step("invalid path: getData", raw(0, Raw::GetData(p))));
        rows.push(step("invalid path: exists", raw(0, Raw::Exists(p))));
        rows.push(step("invalid path: getChildren", raw(0, Raw::Children(p))));
    }
    rows.push(step(
        "nothing created under /r",
        raw(0, Raw::Children("/r")),
    ));
    // checkWatches / removeWatches on a raw session of their own
    for (note, req) in [
        ("checkWatches without any watch", Raw::CheckWatches("/r", 3)),
        ("getData with a watch", Raw::GetDataWatch("/r")),
        ("checkWatches data", Raw::CheckWatches("/r", 2)),
        ("checkWatches children (none)", Raw::CheckWatches("/r", 1)),
        ("checkWatches any", Raw::CheckWatches("/r", 3)),
        ("checkWatches another path", Raw::CheckWatches("/zz", 3)),
        ("checkWatches unknown type", Raw::CheckWatches("/r", 7)),
        ("removeWatches children (none)", Raw::RemoveWatches("/r", 1)),
        ("removeWatches data", Raw::RemoveWatches("/r", 2)),
        ("checkWatches after removal", Raw::CheckWatches("/r", 3)),
        ("removeWatches again", Raw::RemoveWatches("/r", 3)),
    ] {
        rows.push(step(note, raw(3, req)));
    }
    // Last: opcodes nobody implements, on a raw session of their own.
    rows.push(step("unknown opcode 999", raw(1, Raw::Opcode(999))));
    // KNOWN DIFFERENCE: reconfig is not among the operations CONTRACT.md §4 lists, and
    // "anything else gets Unimplemented"; a standalone ZooKeeper answers ReconfigDisabled.
    rows.push(known(
        "reconfig is outside CONTRACT.md §4's operations: Unimplemented by design",
        "reconfig",
        raw(2, Raw::Reconfig),
    ));
    rows.push(step("session usable after", raw(2, Raw::Exists("/r"))));
    run(TEST, &mut targets, rows).await;
}

/// One-shot data, exist and child watches, persistent and persistent-recursive watches, and
/// closing a session deleting its ephemerals (with the events that causes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_watches_and_sessions() {
    const TEST: &str = "differential_watches_and_sessions";
    let Some((_zk, _cluster, mut targets)) = servers(TEST, 1) else {
        return;
    };
    use AddWatchMode::{Persistent, PersistentRecursive};
    let rows = vec![
        step("writer s0", open(0)),
        step("watcher s1", open(1)),
        step("node", create(0, "/w", b"v0", P)),
        step("data watch", watch(1, "/w", WData, "d1")),
        step("exist watch", watch(1, "/w", WExists, "x1")),
        step("child watch", watch(1, "/w", WChildren, "c1")),
        step("setData", set(0, "/w", b"v1", None)),
        step("data watch fires", events("d1", 1)),
        step("exist watch fires", events("x1", 1)),
        step("child watch does not", events("c1", 0)),
        step("create a child", create(0, "/w/k", b"", P)),
        step("child watch fires", events("c1", 1)),
        step("re-arm data watch", watch(1, "/w", WData, "d2")),
        step("setData (1)", set(0, "/w", b"v2", None)),
        step("setData (2)", set(0, "/w", b"v3", None)),
        step("one event for two changes", events("d2", 1)),
        step(
            "exist watch on a missing node",
            watch(1, "/w2", WExists, "x2"),
        ),
        step("data watch on a missing node", watch(1, "/w3", WData, "d3")),
        step("create it", create(0, "/w2", b"", P)),
        step("NodeCreated", events("x2", 1)),
        step("data watches on the child", watch(1, "/w/k", WData, "d4")),
        step(
            "child watch on the child",
            watch(1, "/w/k", WChildren, "c4"),
        ),
        step("exist watch on the child", watch(1, "/w/k", WExists, "x4")),
        step("child watch on the parent", watch(1, "/w", WChildren, "c5")),
        step("data watch on the parent", watch(1, "/w", WData, "d5")),
        step("delete the child", delete(0, "/w/k", None)),
        step("data watch: NodeDeleted", events("d4", 1)),
        step("child watch: NodeDeleted", events("c4", 1)),
        step("exist watch: NodeDeleted", events("x4", 1)),
        step("parent child watch", events("c5", 1)),
        step("parent data watch untouched", events("d5", 0)),
        step("child watch again", watch(1, "/w", WChildren, "c6")),
        step(
            "multi: child create + setData",
            multi(
                0,
                vec![MOp::Create("/w/m", b"", P), MOp::SetData("/w", b"v4", None)],
            ),
        ),
        step("multi: data event", events("d5", 1)),
        step("multi: child event", events("c6", 1)),
        step("own-session watch", watch(0, "/w", WData, "d6")),
        step("own write", set(0, "/w", b"v5", None)),
        step("own-session event", events("d6", 1)),
        step(
            "setData with a bad version fires nothing",
            watch(1, "/w", WData, "d7"),
        ),
        step("failed setData", set(0, "/w", b"x", Some(0))),
        step("no event for a failed write", events("d7", 0)),
        step(
            "failed multi",
            multi(0, vec![MOp::SetData("/w", b"x", None), MOp::Check("/w", 0)]),
        ),
        step("no event for a failed multi", events("d7", 0)),
        step("getChildren watch", watch(1, "/w", WList, "l7")),
        step("delete /w/m", delete(0, "/w/m", None)),
        step("getChildren watch fires", events("l7", 1)),
        step("delete /w", delete(0, "/w", None)),
        step("NodeDeleted after all", events("d7", 1)),
        step("exist watch on deleted node", watch(1, "/w", WExists, "x8")),
        step("re-create", create(0, "/w", b"", P)),
        step("NodeCreated again", events("x8", 1)),
        // persistent
        step("persistent node", create(0, "/p", b"", P)),
        step("persistent watch", add_watch(1, "/p", Persistent, "p")),
        step("setData", set(0, "/p", b"1", None)),
        step("child", create(0, "/p/a", b"", P)),
        step("child setData (not watched)", set(0, "/p/a", b"1", None)),
        step("grandchild (not watched)", create(0, "/p/a/g", b"", P)),
        step("delete grandchild", delete(0, "/p/a/g", None)),
        step("delete child", delete(0, "/p/a", None)),
        step("persistent events", events("p", 3)),
        step("delete the node", delete(0, "/p", None)),
        step("persistent: NodeDeleted", events("p", 1)),
        step("re-create the node", create(0, "/p", b"", P)),
        step("persistent survives: NodeCreated", events("p", 1)),
        step(
            "persistent watch on a missing node",
            add_watch(1, "/q", Persistent, "q"),
        ),
        step("create it", create(0, "/q", b"", P)),
        step("setData", set(0, "/q", b"1", None)),
        step("events", events("q", 2)),
        // persistent recursive
        step(
            "recursive watch on a missing node",
            add_watch(1, "/r", PersistentRecursive, "r"),
        ),
        step("create", create(0, "/r", b"", P)),
        step("child", create(0, "/r/a", b"", P)),
        step("child setData", set(0, "/r/a", b"1", None)),
        step("grandchild", create(0, "/r/a/b", b"", P)),
        step("grandchild setData", set(0, "/r/a/b", b"1", None)),
        step(
            "sibling with a shared prefix (not watched)",
            create(0, "/rx", b"", P),
        ),
        step("delete grandchild", delete(0, "/r/a/b", None)),
        step("recursive events (no NodeChildrenChanged)", events("r", 6)),
        step(
            "multi under the recursive watch",
            multi(
                0,
                vec![
                    MOp::Create("/r/m", b"", P),
                    MOp::SetData("/r/a", b"2", None),
                    MOp::Delete("/r/m", None),
                ],
            ),
        ),
        step("multi events", events("r", 3)),
        step(
            "watches of the same path in another session",
            add_watch(0, "/r", PersistentRecursive, "r0"),
        ),
        step(
            "sequential under the recursive watch",
            create(0, "/r/s-", b"", PSeq),
        ),
        step("s1 recursive", events("r", 1)),
        step("s0 recursive", events("r0", 1)),
        // ephemerals end with their session
        step("owner s2", open(2)),
        step("ephemeral", create(2, "/eph", b"", E)),
        step("ephemeral sequential", create(2, "/r/es-", b"", ESeq)),
        step(
            "ephemeral under the recursive watch",
            create(2, "/r/e", b"", E),
        ),
        step("recursive: two creates", events("r", 2)),
        step("s0 recursive too", events("r0", 2)),
        step("s2's ephemerals", ephemerals(2, "/")),
        step("owner is s2", get(0, "/eph")),
        step(
            "exist watch on the ephemeral",
            watch(1, "/eph", WExists, "xe"),
        ),
        step("data watch on the ephemeral", watch(1, "/eph", WData, "de")),
        step("child watch on the root", watch(1, "/", WChildren, "croot")),
        step("child watch on /r", watch(0, "/r", WChildren, "cr")),
        step("close s2", close(2)),
        step("exist watch: NodeDeleted", events("xe", 1)),
        step("data watch: NodeDeleted", events("de", 1)),
        step("root child watch", events("croot", 1)),
        step("/r child watch", events("cr", 1)),
        step("recursive: two deletes", events_any_order("r", 2)),
        step("s0 recursive: two deletes", events_any_order("r0", 2)),
        step("gone", exists(0, "/eph")),
        step("gone from /r", children(0, "/r")),
        step("root after the close", children2(0, "/")),
        step("the closed session's ephemerals", ephemerals(0, "/")),
        // a watcher session closing drops its watches; the other session's remain
        step("close the watcher s1", close(1)),
        step("write under /r", set(0, "/r", b"z", None)),
        step("s0's recursive watch still fires", events("r0", 1)),
    ];
    run(TEST, &mut targets, rows).await;
}

/// Containers and TTL nodes are reaped (and only those that should be), and an expired
/// session's ephemerals go: bounded waits, since both servers do it in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_reaping_and_expiry() {
    const TEST: &str = "differential_reaping_and_expiry";
    let Some((_zk, _cluster, mut targets)) = servers(TEST, 1) else {
        return;
    };
    let rows = vec![
        step("s0", open(0)),
        step("parent of the containers", create(0, "/cp", b"", P)),
        step("parent of the TTL nodes", create(0, "/tp", b"", P)),
        step("used container", create(0, "/cp/c1", b"", Container)),
        step("its child", create(0, "/cp/c1/x", b"", P)),
        step("never-used container", create(0, "/cp/c2", b"", Container)),
        step(
            "container keeping a child",
            create(0, "/cp/c3", b"", Container),
        ),
        step("its child", create(0, "/cp/c3/x", b"", P)),
        step("long TTL", create(0, "/tp/t2", b"", Ttl(HOUR_MS))),
        step(
            "short TTL keeping a child",
            create(0, "/tp/t3", b"", Ttl(2000)),
        ),
        step("its child", create(0, "/tp/t3/x", b"", P)),
        step("short TTL", create(0, "/tp/t1", b"", Ttl(1000))),
        step("watch the container", watch(0, "/cp/c1", WExists, "xc1")),
        step(
            "watch the containers' parent",
            watch(0, "/cp", WChildren, "ccp"),
        ),
        step("empty the container", delete(0, "/cp/c1/x", None)),
        step("container reaped: NodeDeleted", events("xc1", 1)),
        step("parent's children changed", events("ccp", 1)),
        step("container gone", exists(0, "/cp/c1")),
        step("short TTL reaped", await_gone(0, "/tp/t1")),
        step("never-used container stays", exists(0, "/cp/c2")),
        step("container with a child stays", exists(0, "/cp/c3")),
        step("long TTL stays", exists(0, "/tp/t2")),
        step("TTL with a child stays", exists(0, "/tp/t3")),
        step("containers left", children2(0, "/cp")),
        step("TTL nodes left", children2(0, "/tp")),
        step(
            "container emptied by a session close",
            create(0, "/cp/c4", b"", Container),
        ),
        step("s1", open(1)),
        step("ephemeral in the container", create(1, "/cp/c4/e", b"", E)),
        step("close s1", close(1)),
        step(
            "container reaped after the ephemeral went",
            await_gone(0, "/cp/c4"),
        ),
        step("session that expires", open_detached(2, 1)),
        step("its ephemeral", create(2, "/exp", b"", E)),
        step("watch it", watch(0, "/exp", WExists, "xexp")),
        step("drop the connection without closeSession", close(2)),
        step("ephemeral deleted on expiry", events("xexp", 1)),
        step("gone", exists(0, "/exp")),
        step("root at the end", children(0, "/")),
    ];
    run(TEST, &mut targets, rows).await;
}

/// A three-voter quorumfs (sessions on different nodes, `sync` before reading another node's
/// writes, re-attaching a session on another node) against one ZooKeeper server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_three_nodes() {
    const TEST: &str = "differential_three_nodes";
    let Some((_zk, _cluster, mut targets)) = servers(TEST, 3) else {
        return;
    };
    let rows = vec![
        step("s0 on node 1", open_on(0, 1)),
        step("s1 on node 2", open_on(1, 2)),
        step("s2 on node 3 (detached, to move)", open_detached(2, 3)),
        step("create via node 1", create(0, "/x", b"1", P)),
        step("sync on node 2", sync(1, "/x")),
        step("read on node 2", get(1, "/x")),
        step("data watch on node 2", watch(1, "/x", WData, "d")),
        step("child watch on node 3", watch(2, "/x", WChildren, "c")),
        step("setData via node 1", set(0, "/x", b"2", Some(0))),
        step("node 2's watch", events("d", 1)),
        step("create via node 3", create(2, "/x/e", b"", E)),
        step("node 3's own child watch", events("c", 1)),
        step(
            "ephemeral sequential via node 3",
            create(2, "/x/s-", b"", ESeq),
        ),
        step("sequential via node 2", create(1, "/x/s-", b"", PSeq)),
        step("sequential via node 1", create(0, "/x/s-", b"", PSeq)),
        step("sync node 1", sync(0, "/x")),
        step("children via node 1", children2(0, "/x")),
        step("owner seen on node 1", get(0, "/x/e")),
        step(
            "multi via node 2",
            multi(1, vec![MOp::Check("/x", 1), MOp::Create("/x/m", b"", P)]),
        ),
        step(
            "failing multi via node 3",
            multi(2, vec![MOp::Create("/x/n", b"", P), MOp::Check("/x", 0)]),
        ),
        step("s2 moves to node 1", Op::Move { s: 2, node: 1 }),
        step("its ephemerals survive the move", ephemerals(2, "/")),
        step("owner unchanged", get(2, "/x/e")),
        step(
            "recursive watch on node 2",
            add_watch(1, "/x", AddWatchMode::PersistentRecursive, "r"),
        ),
        step("exist watch on node 2", watch(1, "/x/e", WExists, "xe")),
        step("close s2 (now on node 1)", close(2)),
        step("node 2 sees NodeDeleted", events("xe", 1)),
        step("recursive: both ephemerals", events_any_order("r", 2)),
        step("sync node 2", sync(1, "/")),
        step("children on node 2", children2(1, "/x")),
        step("getAllChildrenNumber on node 2", count(1, "/")),
        step("s3 on node 3", open_on(3, 3)),
        step("sync node 3", sync(3, "/")),
        step("same tree on node 3", children2(3, "/x")),
        step("delete NotEmpty via node 3", delete(3, "/x", None)),
        step(
            "multi delete via node 3",
            multi(
                3,
                vec![
                    MOp::Delete("/x/m", None),
                    MOp::Delete("/x/s-0000000002", None),
                    MOp::Delete("/x/s-0000000003", None),
                    MOp::Delete("/x", None),
                ],
            ),
        ),
        step("recursive watch on node 2: deletes", events("r", 4)),
        step("sync node 1", sync(0, "/")),
        step("gone on node 1", exists(0, "/x")),
    ];
    run(TEST, &mut targets, rows).await;
}
