//! The one place ensemble errors become ZooKeeper error codes.
//!
//! Judgement calls: a node that cannot reach a leader, or a write whose commit timed out,
//! answers `ConnectionLoss` — what a ZooKeeper client sees when its server loses quorum,
//! and what its retry logic expects. A storage failure is `SystemError`. `RolledBack` is
//! the OK (0) ZooKeeper reports for the ops before a multi's failing op.

use quorumfs_ensemble::Error;

use super::proto::ErrorCode;

pub(crate) fn error_code(e: &Error) -> ErrorCode {
    match e {
        Error::NoNode { .. } => ErrorCode::NoNode,
        Error::NodeExists { .. } => ErrorCode::NodeExists,
        Error::BadVersion { .. } => ErrorCode::BadVersion,
        Error::NotEmpty { .. } => ErrorCode::NotEmpty,
        Error::NoChildrenForEphemerals { .. } => ErrorCode::NoChildrenForEphemerals,
        Error::BadArguments { .. } => ErrorCode::BadArguments,
        Error::InvalidAcl => ErrorCode::InvalidAcl,
        Error::SessionExpired { .. } => ErrorCode::SessionExpired,
        Error::AuthFailed { .. } => ErrorCode::AuthFailed,
        Error::RolledBack => ErrorCode::Ok,
        Error::Unavailable { .. } => ErrorCode::ConnectionLoss,
        Error::NotLeader { .. } => ErrorCode::ConnectionLoss,
        Error::Membership { .. } => ErrorCode::BadArguments,
        Error::Storage { .. } => ErrorCode::SystemError,
    }
}
