//! The numeric constants of the client protocol: error codes (`KeeperException.Code`),
//! watcher event types and keeper states (`Watcher.Event`), watcher types for
//! removeWatches/checkWatches (`Watcher.WatcherType`), addWatch modes, create modes and
//! ACL permission bits. Values are ZooKeeper 3.9's.
//!
//! Records keep these fields as raw `i32` so that an unknown value from a client is the
//! server's to answer (usually `BadArguments`), not a decoding failure; these enums are
//! what the connection layer converts them to and from.

/// Defines an `i32`-backed enum with `as_i32`, `from_i32` and `ALL`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, for tests and exhaustive tables.
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire value.
            pub(crate) fn as_i32(self) -> i32 {
                match self {
                    $( $name::$variant => $value, )*
                }
            }

            /// The value for a wire integer, if ZooKeeper defines one.
            pub(crate) fn from_i32(value: i32) -> Option<$name> {
                match value {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

wire_enum! {
    /// `KeeperException.Code`: the `err` of a reply header or of a multi result.
    ErrorCode {
        Ok = 0,
        SystemError = -1,
        RuntimeInconsistency = -2,
        DataInconsistency = -3,
        /// Also what a client sees when no leader is known.
        ConnectionLoss = -4,
        /// A request body could not be decoded.
        MarshallingError = -5,
        /// Unknown or unsupported opcode; the connection stays usable.
        Unimplemented = -6,
        OperationTimeout = -7,
        BadArguments = -8,
        UnknownSession = -12,
        NewConfigNoQuorum = -13,
        ReconfigInProgress = -14,
        ApiError = -100,
        NoNode = -101,
        NoAuth = -102,
        BadVersion = -103,
        NoChildrenForEphemerals = -108,
        NodeExists = -110,
        NotEmpty = -111,
        SessionExpired = -112,
        InvalidCallback = -113,
        InvalidAcl = -114,
        AuthFailed = -115,
        SessionMoved = -118,
        NotReadOnly = -119,
        EphemeralOnLocalSession = -120,
        NoWatcher = -121,
        RequestTimeout = -122,
        ReconfigDisabled = -123,
        SessionClosedRequireSaslAuth = -124,
        QuotaExceeded = -125,
        ThrottledOp = -127,
    }
}

wire_enum! {
    /// `Watcher.Event.EventType`: the `type` of a [`super::records::WatcherEvent`].
    EventType {
        /// State changes (connected, expired) carry no znode event.
        None = -1,
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        DataWatchRemoved = 5,
        ChildWatchRemoved = 6,
        PersistentWatchRemoved = 7,
    }
}

wire_enum! {
    /// `Watcher.Event.KeeperState`: the `state` of a [`super::records::WatcherEvent`].
    /// Server-sent events carry `SyncConnected`.
    KeeperState {
        Unknown = -1,
        Disconnected = 0,
        NoSyncConnected = 1,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Expired = -112,
        Closed = 7,
    }
}

wire_enum! {
    /// `Watcher.WatcherType`: the `type` of removeWatches and checkWatches.
    WatcherType {
        Children = 1,
        Data = 2,
        Any = 3,
        Persistent = 4,
        PersistentRecursive = 5,
    }
}

wire_enum! {
    /// `ZooDefs.AddWatchModes`: the `mode` of addWatch.
    AddWatchMode {
        Persistent = 0,
        PersistentRecursive = 1,
    }
}

wire_enum! {
    /// `CreateMode`: the `flags` of create, create2, createContainer and createTTL.
    CreateMode {
        Persistent = 0,
        Ephemeral = 1,
        PersistentSequential = 2,
        EphemeralSequential = 3,
        Container = 4,
        PersistentWithTtl = 5,
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    /// The znode is deleted when its session ends.
    pub(crate) fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// The name gets the parent's `%010d` counter appended.
    pub(crate) fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// The znode is reaped once its last child is gone.
    pub(crate) fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    /// The znode expires after its TTL without changes or children.
    pub(crate) fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// `ZooDefs.Perms`: the bits of [`super::records::Acl::perms`].
pub(crate) mod perms {
    pub(crate) const READ: i32 = 1;
    pub(crate) const WRITE: i32 = 1 << 1;
    pub(crate) const CREATE: i32 = 1 << 2;
    pub(crate) const DELETE: i32 = 1 << 3;
    pub(crate) const ADMIN: i32 = 1 << 4;
    pub(crate) const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enum_round_trips() {
        for &v in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_i32(v.as_i32()), Some(v));
        }
        for &v in EventType::ALL {
            assert_eq!(EventType::from_i32(v.as_i32()), Some(v));
        }
        for &v in KeeperState::ALL {
            assert_eq!(KeeperState::from_i32(v.as_i32()), Some(v));
        }
        for &v in WatcherType::ALL {
            assert_eq!(WatcherType::from_i32(v.as_i32()), Some(v));
        }
        for &v in AddWatchMode::ALL {
            assert_eq!(AddWatchMode::from_i32(v.as_i32()), Some(v));
        }
        for &v in CreateMode::ALL {
            assert_eq!(CreateMode::from_i32(v.as_i32()), Some(v));
        }
    }

    #[test]
    fn error_codes_match_keeper_exception() {
        let expected = [
            (ErrorCode::Ok, 0),
            (ErrorCode::ConnectionLoss, -4),
            (ErrorCode::MarshallingError, -5),
            (ErrorCode::Unimplemented, -6),
            (ErrorCode::BadArguments, -8),
            (ErrorCode::NoNode, -101),
            (ErrorCode::NoAuth, -102),
            (ErrorCode::BadVersion, -103),
            (ErrorCode::NoChildrenForEphemerals, -108),
            (ErrorCode::NodeExists, -110),
            (ErrorCode::NotEmpty, -111),
            (ErrorCode::SessionExpired, -112),
            (ErrorCode::InvalidAcl, -114),
            (ErrorCode::AuthFailed, -115),
            (ErrorCode::NoWatcher, -121),
            (ErrorCode::ThrottledOp, -127),
        ];
        for (code, value) in expected {
            assert_eq!(code.as_i32(), value, "{code:?}");
        }
        assert_eq!(ErrorCode::ALL.len(), 32);
        assert_eq!(ErrorCode::from_i32(-126), None);
    }

    #[test]
    fn event_and_state_values_match_watcher() {
        assert_eq!(EventType::None.as_i32(), -1);
        assert_eq!(EventType::NodeChildrenChanged.as_i32(), 4);
        assert_eq!(EventType::PersistentWatchRemoved.as_i32(), 7);
        assert_eq!(EventType::from_i32(0), None);
        assert_eq!(KeeperState::SyncConnected.as_i32(), 3);
        assert_eq!(KeeperState::Expired.as_i32(), -112);
        assert_eq!(KeeperState::Closed.as_i32(), 7);
        assert_eq!(WatcherType::Any.as_i32(), 3);
        assert_eq!(WatcherType::PersistentRecursive.as_i32(), 5);
    }

    #[test]
    fn create_mode_properties() {
        use CreateMode::*;
        let table = [
            // mode, ephemeral, sequential, container, ttl
            (Persistent, false, false, false, false),
            (Ephemeral, true, false, false, false),
            (PersistentSequential, false, true, false, false),
            (EphemeralSequential, true, true, false, false),
            (Container, false, false, true, false),
            (PersistentWithTtl, false, false, false, true),
            (PersistentSequentialWithTtl, false, true, false, true),
        ];
        for (mode, eph, seq, container, ttl) in table {
            assert_eq!(mode.is_ephemeral(), eph, "{mode:?}");
            assert_eq!(mode.is_sequential(), seq, "{mode:?}");
            assert_eq!(mode.is_container(), container, "{mode:?}");
            assert_eq!(mode.is_ttl(), ttl, "{mode:?}");
        }
        assert_eq!(CreateMode::from_i32(7), None);
        assert_eq!(perms::ALL, 31);
    }
}
