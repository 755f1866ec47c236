//! Request types (`ZooDefs.OpCode`) and the reserved xids.
//!
//! The numbers are ZooKeeper 3.9's. Which of them the server implements is decided in
//! `message::decode_request`; this file only names them.

/// xid of a watch notification (server to client).
pub(crate) const NOTIFICATION_XID: i32 = -1;
/// xid of a ping and of its reply.
pub(crate) const PING_XID: i32 = -2;
/// xid of an auth packet and of its reply.
pub(crate) const AUTH_XID: i32 = -4;
/// xid of a setWatches/setWatches2 sent when a client reconnects.
pub(crate) const SET_WATCHES_XID: i32 = -8;

macro_rules! opcodes {
    ($( $(#[$meta:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        /// A request type from `ZooDefs.OpCode`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum OpCode {
            $( $(#[$meta])* $name, )*
        }

        impl OpCode {
            /// Every opcode, for tests and exhaustive tables.
            pub(crate) const ALL: &'static [OpCode] = &[$(OpCode::$name),*];

            /// The wire value.
            pub(crate) fn as_i32(self) -> i32 {
                match self {
                    $( OpCode::$name => $value, )*
                }
            }

            /// The opcode for a wire value, if ZooKeeper defines one.
            pub(crate) fn from_i32(value: i32) -> Option<OpCode> {
                match value {
                    $( $value => Some(OpCode::$name), )*
                    _ => None,
                }
            }

            /// ZooKeeper's name for the opcode (as in `ZooDefs.OpCode`), for logs.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $( OpCode::$name => $text, )*
                }
            }
        }
    };
}

opcodes! {
    /// Only ever a reply type: watch notifications.
    Notification = 0, "notification";
    Create = 1, "create";
    Delete = 2, "delete";
    Exists = 3, "exists";
    GetData = 4, "getData";
    SetData = 5, "setData";
    GetAcl = 6, "getACL";
    SetAcl = 7, "setACL";
    GetChildren = 8, "getChildren";
    Sync = 9, "sync";
    Ping = 11, "ping";
    GetChildren2 = 12, "getChildren2";
    Check = 13, "check";
    Multi = 14, "multi";
    Create2 = 15, "create2";
    Reconfig = 16, "reconfig";
    CheckWatches = 17, "checkWatches";
    RemoveWatches = 18, "removeWatches";
    CreateContainer = 19, "createContainer";
    /// Server-internal (container reaping); never valid from a client.
    DeleteContainer = 20, "deleteContainer";
    CreateTtl = 21, "createTTL";
    MultiRead = 22, "multiRead";
    Auth = 100, "auth";
    SetWatches = 101, "setWatches";
    Sasl = 102, "sasl";
    GetEphemerals = 103, "getEphemerals";
    GetAllChildrenNumber = 104, "getAllChildrenNumber";
    SetWatches2 = 105, "setWatches2";
    AddWatch = 106, "addWatch";
    WhoAmI = 107, "whoAmI";
    /// Server-internal: a connect becomes this transaction.
    CreateSession = -10, "createSession";
    CloseSession = -11, "closeSession";
    /// The type of a failed operation's result inside a multi reply.
    Error = -1, "error";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for &op in OpCode::ALL {
            assert_eq!(OpCode::from_i32(op.as_i32()), Some(op), "{}", op.name());
        }
        assert_eq!(OpCode::ALL.len(), 33);
    }

    #[test]
    fn values_match_zoodefs() {
        assert_eq!(OpCode::Create.as_i32(), 1);
        assert_eq!(OpCode::Ping.as_i32(), 11);
        assert_eq!(OpCode::Multi.as_i32(), 14);
        assert_eq!(OpCode::CreateTtl.as_i32(), 21);
        assert_eq!(OpCode::MultiRead.as_i32(), 22);
        assert_eq!(OpCode::Auth.as_i32(), 100);
        assert_eq!(OpCode::AddWatch.as_i32(), 106);
        assert_eq!(OpCode::WhoAmI.as_i32(), 107);
        assert_eq!(OpCode::CloseSession.as_i32(), -11);
        assert_eq!(OpCode::from_i32(10), None);
        assert_eq!(OpCode::from_i32(23), None);
    }
}
