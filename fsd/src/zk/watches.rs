//! The client port's watch table: which connection watches which path, and how, and turning
//! each applied [`Change`] into the notifications ZooKeeper would send.
//!
//! It is called from the ensemble's apply listener, i.e. while the change is being applied
//! and before any later read can see it, so a client always gets the event before it can
//! read the new state (ZooKeeper's ordering guarantee). Notifications go into each
//! connection's bounded outbox without waiting; a connection whose outbox is full (a client
//! that does not read its socket) is closed rather than allowed to grow memory.
//!
//! Each connection may hold at most [`WatchLimits::max_watches`] watches, whose paths add up
//! to at most [`WatchLimits::max_path_bytes`]: ZooKeeper has no such bound, so one client
//! could otherwise grow the node's memory without end. [`WatchTable::add`] refuses a watch
//! past the limit and the caller closes that connection (see `ops`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use quorumfs_ensemble::tree::Change;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::proto::EventType;

/// A connection's id on this node.
pub(crate) type ConnId = u64;

/// How a path is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WatchKind {
    /// getData / exists on an existing node: one-shot, data changes and deletion.
    Data,
    /// exists on a missing node: one-shot, creation.
    Exist,
    /// getChildren: one-shot, children changes and deletion.
    Child,
    /// addWatch PERSISTENT: every event on the path, until removed.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: created/deleted/data events on the path and below.
    PersistentRecursive,
}

const KINDS: usize = 5;

fn slot(kind: WatchKind) -> usize {
    match kind {
        WatchKind::Data => 0,
        WatchKind::Exist => 1,
        WatchKind::Child => 2,
        WatchKind::Persistent => 3,
        WatchKind::PersistentRecursive => 4,
    }
}

/// Where a connection's outbound frames go.
pub(crate) struct Sink {
    /// Encoded frames, written to the socket in order by the connection's writer.
    pub outbox: mpsc::Sender<Bytes>,
    /// Cancelled to close the connection (outbox overflow).
    pub close: CancellationToken,
}

/// How much one connection may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WatchLimits {
    /// Distinct (kind, path) watches held at once.
    pub max_watches: usize,
    /// Bytes of watched paths held at once (a path watched in two ways counts twice).
    pub max_path_bytes: usize,
}

impl WatchLimits {
    /// Default `--max-watches-per-connection`.
    pub(crate) const DEFAULT_MAX_WATCHES: usize = 100_000;
    /// Path bytes allowed per watch of the limit, on average.
    pub(crate) const PATH_BYTES_PER_WATCH: usize = 512;

    /// `max_watches` watches with paths of [`Self::PATH_BYTES_PER_WATCH`] bytes on average.
    pub(crate) fn per_connection(max_watches: usize) -> WatchLimits {
        WatchLimits {
            max_watches,
            max_path_bytes: max_watches.saturating_mul(Self::PATH_BYTES_PER_WATCH),
        }
    }
}

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits::per_connection(Self::DEFAULT_MAX_WATCHES)
    }
}

/// A watch refused because its connection holds as many as it may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "connection holds {watches} watches on {path_bytes} bytes of paths; \
     the limit is {} watches on {} bytes", limits.max_watches, limits.max_path_bytes
)]
pub(crate) struct WatchLimitExceeded {
    pub watches: usize,
    pub path_bytes: usize,
    pub limits: WatchLimits,
}

/// One connection's watches, for detaching it and for its limits. The paths are the same
/// allocations as the keys of [`Tables::by_kind`].
#[derive(Default)]
struct ConnWatches {
    set: HashSet<(WatchKind, Arc<str>)>,
    /// Sum of the path lengths in `set`.
    path_bytes: usize,
}

impl ConnWatches {
    fn remove(&mut self, kind: WatchKind, path: &str) {
        if self.set.remove(&(kind, Arc::from(path))) {
            self.path_bytes = self.path_bytes.saturating_sub(path.len());
        }
    }
}

#[derive(Default)]
struct Tables {
    /// Watchers per kind and path; every connection watching a path shares its key.
    by_kind: [HashMap<Arc<str>, HashSet<ConnId>>; KINDS],
    by_conn: HashMap<ConnId, ConnWatches>,
    sinks: HashMap<ConnId, Sink>,
}

/// Every watch of this node's client connections.
#[derive(Default)]
pub(crate) struct WatchTable {
    tables: Mutex<Tables>,
    limits: WatchLimits,
}

/// Encodes one notification frame for `path`.
pub(crate) type Encoder = fn(EventType, &str) -> Bytes;

impl WatchTable {
    /// An empty table whose connections may each hold up to `limits`.
    pub(crate) fn new(limits: WatchLimits) -> WatchTable {
        WatchTable {
            tables: Mutex::default(),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection's sink.
    pub(crate) fn attach(&self, conn: ConnId, sink: Sink) {
        self.lock().sinks.insert(conn, sink);
    }

    /// Forgets a connection and all its watches.
    pub(crate) fn detach(&self, conn: ConnId) {
        let mut t = self.lock();
        t.sinks.remove(&conn);
        if let Some(watches) = t.by_conn.remove(&conn) {
            for (kind, path) in watches.set {
                remove_entry(&mut t.by_kind[slot(kind)], &path, conn);
            }
        }
    }

    /// Adds a watch, unless `conn` would then hold more than its limits allow. Watching
    /// what is already watched the same way is not a new watch.
    ///
    /// # Errors
    ///
    /// [`WatchLimitExceeded`] when the watch is new and over the limit; nothing is added.
    pub(crate) fn add(
        &self,
        conn: ConnId,
        kind: WatchKind,
        path: &str,
    ) -> Result<(), WatchLimitExceeded> {
        let mut t = self.lock();
        let Tables {
            by_kind, by_conn, ..
        } = &mut *t;
        let watchers = &mut by_kind[slot(kind)];
        let shared: Arc<str> = match watchers.get_key_value(path) {
            Some((key, _)) => key.clone(),
            None => Arc::from(path),
        };
        let mine = by_conn.entry(conn).or_default();
        let key = (kind, shared.clone());
        if mine.set.contains(&key) {
            return Ok(());
        }
        if mine.set.len() >= self.limits.max_watches
            || mine.path_bytes.saturating_add(path.len()) > self.limits.max_path_bytes
        {
            return Err(WatchLimitExceeded {
                watches: mine.set.len(),
                path_bytes: mine.path_bytes,
                limits: self.limits,
            });
        }
        mine.path_bytes += path.len();
        mine.set.insert(key);
        watchers.entry(shared).or_default().insert(conn);
        Ok(())
    }

    /// Removes a watch; returns whether it existed.
    pub(crate) fn remove(&self, conn: ConnId, kind: WatchKind, path: &str) -> bool {
        let mut t = self.lock();
        let existed = remove_entry(&mut t.by_kind[slot(kind)], path, conn);
        if let Some(mine) = t.by_conn.get_mut(&conn) {
            mine.remove(kind, path);
        }
        existed
    }

    /// Whether `conn` has a watch of `kind` on `path`.
    pub(crate) fn has(&self, conn: ConnId, kind: WatchKind, path: &str) -> bool {
        self.lock().by_kind[slot(kind)]
            .get(path)
            .is_some_and(|s| s.contains(&conn))
    }

    /// Number of watches held.
    pub(crate) fn count(&self) -> usize {
        self.lock().by_conn.values().map(|w| w.set.len()).sum()
    }

    /// Sends the notifications `change` triggers.
    pub(crate) fn fire(&self, change: &Change, encode: Encoder) {
        let mut t = self.lock();
        // Runs for every applied change: with no watches at all there is nothing to look up.
        if t.by_conn.is_empty() {
            return;
        }
        let mut events: Vec<(EventType, String, HashSet<ConnId>)> = Vec::new();
        match change {
            Change::Created { path } => created(&mut t, path, &mut events),
            Change::Deleted { path } => deleted(&mut t, path, &mut events),
            // Clients see a rename (made through a mount) as a delete and a create.
            Change::Renamed { from, to } => {
                deleted(&mut t, from, &mut events);
                created(&mut t, to, &mut events);
            }
            Change::DataChanged { path } => {
                let mut who = take(&mut t, WatchKind::Data, path);
                who.extend(peek(&t, WatchKind::Persistent, path));
                who.extend(recursive(&t, path));
                events.push((EventType::NodeDataChanged, path.clone(), who));
            }
            Change::AclChanged { .. } | Change::MetaChanged { .. } | Change::LockGranted { .. } => {
            }
        }
        for (event, path, who) in events {
            if who.is_empty() {
                continue;
            }
            let frame = encode(event, &path);
            for conn in who {
                if let Some(sink) = t.sinks.get(&conn) {
                    if sink.outbox.try_send(frame.clone()).is_err() {
                        tracing::warn!(
                            conn,
                            "client is not reading its notifications; closing its connection"
                        );
                        sink.close.cancel();
                    }
                }
            }
        }
    }
}

fn remove_entry(map: &mut HashMap<Arc<str>, HashSet<ConnId>>, path: &str, conn: ConnId) -> bool {
    let Some(set) = map.get_mut(path) else {
        return false;
    };
    let existed = set.remove(&conn);
    if set.is_empty() {
        map.remove(path);
    }
    existed
}

/// Removes and returns the one-shot watchers of `kind` on `path`.
fn take(t: &mut Tables, kind: WatchKind, path: &str) -> HashSet<ConnId> {
    let who = t.by_kind[slot(kind)].remove(path).unwrap_or_default();
    for conn in &who {
        if let Some(mine) = t.by_conn.get_mut(conn) {
            mine.remove(kind, path);
        }
    }
    who
}

/// The (persistent) watchers of `kind` on `path`, left in place.
fn peek(t: &Tables, kind: WatchKind, path: &str) -> HashSet<ConnId> {
    t.by_kind[slot(kind)].get(path).cloned().unwrap_or_default()
}

/// Persistent-recursive watchers on `path` or any ancestor.
fn recursive(t: &Tables, path: &str) -> HashSet<ConnId> {
    let map = &t.by_kind[slot(WatchKind::PersistentRecursive)];
    if map.is_empty() {
        return HashSet::new();
    }
    let mut who = HashSet::new();
    let mut p = path;
    loop {
        if let Some(set) = map.get(p) {
            who.extend(set);
        }
        if p == "/" {
            break;
        }
        p = parent(p);
    }
    who
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The events of a create at `path`: NodeCreated and the parent's NodeChildrenChanged.
fn created(t: &mut Tables, path: &str, events: &mut Vec<(EventType, String, HashSet<ConnId>)>) {
    let mut who = take(t, WatchKind::Data, path);
    who.extend(take(t, WatchKind::Exist, path));
    who.extend(peek(t, WatchKind::Persistent, path));
    who.extend(recursive(t, path));
    events.push((EventType::NodeCreated, path.to_owned(), who));
    events.push(children_changed(t, path));
}

/// The events of a delete at `path`: NodeDeleted and the parent's NodeChildrenChanged.
fn deleted(t: &mut Tables, path: &str, events: &mut Vec<(EventType, String, HashSet<ConnId>)>) {
    let mut who = take(t, WatchKind::Data, path);
    who.extend(take(t, WatchKind::Exist, path));
    who.extend(take(t, WatchKind::Child, path));
    who.extend(peek(t, WatchKind::Persistent, path));
    who.extend(recursive(t, path));
    events.push((EventType::NodeDeleted, path.to_owned(), who));
    events.push(children_changed(t, path));
}

fn children_changed(t: &mut Tables, path: &str) -> (EventType, String, HashSet<ConnId>) {
    let parent = parent(path);
    let mut who = take(t, WatchKind::Child, parent);
    who.extend(peek(t, WatchKind::Persistent, parent));
    (EventType::NodeChildrenChanged, parent.to_string(), who)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: EventType, p: &str) -> Bytes {
        Bytes::from(format!("{}:{p}", e.as_i32()))
    }

    fn sink(
        table: &WatchTable,
        conn: ConnId,
        cap: usize,
    ) -> (mpsc::Receiver<Bytes>, CancellationToken) {
        let (tx, rx) = mpsc::channel(cap);
        let close = CancellationToken::new();
        table.attach(
            conn,
            Sink {
                outbox: tx,
                close: close.clone(),
            },
        );
        (rx, close)
    }

    fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<String> {
        let mut out = vec![];
        while let Ok(b) = rx.try_recv() {
            out.push(String::from_utf8(b.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let t = WatchTable::default();
        let (mut rx, _) = sink(&t, 1, 16);
        t.add(1, WatchKind::Data, "/a").unwrap();
        t.add(1, WatchKind::Child, "/").unwrap();
        t.fire(&Change::DataChanged { path: "/a".into() }, enc);
        t.fire(&Change::DataChanged { path: "/a".into() }, enc);
        t.fire(&Change::Created { path: "/b".into() }, enc);
        assert_eq!(drain(&mut rx), vec!["3:/a", "4:/"]);
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn delete_fires_data_and_child_watches_once_per_connection() {
        let t = WatchTable::default();
        let (mut rx, _) = sink(&t, 1, 16);
        t.add(1, WatchKind::Data, "/a").unwrap();
        t.add(1, WatchKind::Child, "/a").unwrap();
        t.fire(&Change::Deleted { path: "/a".into() }, enc);
        assert_eq!(drain(&mut rx), vec!["2:/a"]);
    }

    #[test]
    fn persistent_and_recursive_stay() {
        let t = WatchTable::default();
        let (mut rx, _) = sink(&t, 1, 16);
        t.add(1, WatchKind::PersistentRecursive, "/app").unwrap();
        t.fire(
            &Change::Created {
                path: "/app/x".into(),
            },
            enc,
        );
        t.fire(
            &Change::DataChanged {
                path: "/app/x".into(),
            },
            enc,
        );
        t.fire(
            &Change::Created {
                path: "/other".into(),
            },
            enc,
        );
        assert_eq!(drain(&mut rx), vec!["1:/app/x", "3:/app/x"]);
        assert_eq!(t.count(), 1);
        t.detach(1);
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn full_outbox_closes_the_connection() {
        let t = WatchTable::default();
        let (_rx, close) = sink(&t, 1, 1);
        t.add(1, WatchKind::Persistent, "/a").unwrap();
        t.fire(&Change::DataChanged { path: "/a".into() }, enc);
        assert!(!close.is_cancelled());
        t.fire(&Change::DataChanged { path: "/a".into() }, enc);
        assert!(close.is_cancelled());
    }

    #[test]
    fn a_connection_past_its_watch_limit_is_refused() {
        let t = WatchTable::new(WatchLimits {
            max_watches: 3,
            max_path_bytes: 1000,
        });
        t.add(1, WatchKind::Data, "/a").unwrap();
        t.add(1, WatchKind::Child, "/a").unwrap();
        t.add(1, WatchKind::Exist, "/b").unwrap();
        // The same watch again is not a new one.
        t.add(1, WatchKind::Exist, "/b").unwrap();
        let refused = t.add(1, WatchKind::Exist, "/c").unwrap_err();
        assert_eq!((refused.watches, refused.path_bytes), (3, 6));
        assert!(!t.has(1, WatchKind::Exist, "/c"));
        // Other connections have limits of their own.
        t.add(2, WatchKind::Exist, "/c").unwrap();
        // A fired one-shot watch makes room again.
        t.fire(&Change::DataChanged { path: "/a".into() }, enc);
        t.add(1, WatchKind::Exist, "/c").unwrap();
        assert_eq!(t.count(), 4);
    }

    #[test]
    fn path_bytes_are_limited_too() {
        let t = WatchTable::new(WatchLimits {
            max_watches: 100,
            max_path_bytes: 10,
        });
        t.add(1, WatchKind::Exist, "/12345678").unwrap();
        assert!(t.add(1, WatchKind::Exist, "/12").is_err());
        assert!(t.remove(1, WatchKind::Exist, "/12345678"));
        t.add(1, WatchKind::Exist, "/12").unwrap();
    }

    #[test]
    fn default_limits_follow_the_flag() {
        let l = WatchLimits::per_connection(1000);
        assert_eq!(l.max_watches, 1000);
        assert_eq!(l.max_path_bytes, 1000 * WatchLimits::PATH_BYTES_PER_WATCH);
        assert_eq!(
            WatchLimits::default().max_watches,
            WatchLimits::DEFAULT_MAX_WATCHES
        );
    }

    #[test]
    fn connections_watching_a_path_share_one_copy_of_it() {
        let t = WatchTable::default();
        t.add(1, WatchKind::Exist, "/shared").unwrap();
        t.add(2, WatchKind::Exist, "/shared").unwrap();
        let tables = t.lock();
        let path = |conn: ConnId| {
            tables.by_conn[&conn]
                .set
                .iter()
                .next()
                .map(|(_, p)| p.clone())
                .unwrap()
        };
        assert!(Arc::ptr_eq(&path(1), &path(2)));
        let (key, _) = tables.by_kind[slot(WatchKind::Exist)]
            .get_key_value("/shared")
            .unwrap();
        assert!(Arc::ptr_eq(key, &path(1)));
    }
}
