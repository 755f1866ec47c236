//! Which connection of this node serves each session: the newest one. When a client
//! re-attaches its session through another connection (it moved, or reconnected before this
//! node noticed the old socket die), the older connection is closed, as ZooKeeper closes the
//! other connections of a moved session.

use std::collections::HashMap;
use std::sync::Mutex;

use quorumfs_ensemble::tree::SessionId;
use tokio_util::sync::CancellationToken;

use super::watches::ConnId;

/// Session → the connection serving it and that connection's close signal.
#[derive(Default)]
pub(crate) struct SessionConnections {
    by_session: Mutex<HashMap<SessionId, (ConnId, CancellationToken)>>,
}

impl SessionConnections {
    /// Records `conn` as the one serving `session`, closing any other that did.
    pub(crate) fn attach(&self, session: SessionId, conn: ConnId, close: CancellationToken) {
        let previous = self.lock().insert(session, (conn, close));
        if let Some((old, close)) = previous {
            if old != conn {
                tracing::debug!(
                    conn = old,
                    session = format_args!("{session:#x}"),
                    "session moved to another connection; closing this one"
                );
                close.cancel();
            }
        }
    }

    /// Forgets `conn` as `session`'s connection (if it still is).
    pub(crate) fn detach(&self, session: SessionId, conn: ConnId) {
        let mut map = self.lock();
        if map.get(&session).is_some_and(|(c, _)| *c == conn) {
            map.remove(&session);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, (ConnId, CancellationToken)>> {
        self.by_session.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_connection_closes_the_older_one() {
        let s = SessionConnections::default();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        s.attach(7, 1, a.clone());
        s.attach(7, 2, b.clone());
        assert!(a.is_cancelled());
        assert!(!b.is_cancelled());
        // The old connection's detach does not forget the new one.
        s.detach(7, 1);
        let c = CancellationToken::new();
        s.attach(7, 3, c);
        assert!(b.is_cancelled());
    }
}
