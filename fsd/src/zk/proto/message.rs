//! Whole messages: which record follows the header for each opcode, the multi framing,
//! and the frame-level encoders the connection calls.
//!
//! Server side: [`decode_connect_request`] and [`decode_request`] in,
//! [`encode_connect_response`], [`encode_reply`] and [`encode_notification`] out. The
//! client-side counterparts ([`encode_connect_request`], [`encode_request`],
//! [`decode_response`]) exist for the command-line client and for tests.
//!
//! Reply bodies follow ZooKeeper 3.9's `FinalRequestProcessor`:
//! - no body: delete, setWatches, setWatches2, removeWatches, checkWatches, auth, ping,
//!   closeSession, and every reply whose `err` is not `Ok` (clients skip the body then);
//! - [`Stat`] alone: exists, setData, setACL, check;
//! - create answers [`CreateResponse`], while create2, createContainer and createTTL
//!   answer [`Create2Response`];
//! - addWatch answers an [`ErrorResponse`] holding 0;
//! - multi and multiRead answer a list of [`MultiOpResult`] with reply `err` 0, even when
//!   an operation failed (the failure is in the per-operation results).

use bytes::{Buf, BufMut, BytesMut};

use super::codes::ErrorCode;
use super::frame::encode_frame;
use super::jute::{self, Jute};
use super::opcode::{OpCode, NOTIFICATION_XID};
use super::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest, ConnectRequest,
    ConnectResponse, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, ErrorResponse, ExistsRequest, GetAclRequest, GetAclResponse,
    GetAllChildrenNumberRequest, GetAllChildrenNumberResponse, GetChildren2Request,
    GetChildren2Response, GetChildrenRequest, GetChildrenResponse, GetDataRequest, GetDataResponse,
    GetEphemeralsRequest, GetEphemeralsResponse, MultiHeader, RemoveWatchesRequest, ReplyHeader,
    RequestHeader, SetAclRequest, SetDataRequest, SetWatches, SetWatches2, Stat, SyncRequest,
    SyncResponse, WatcherEvent, WhoAmIResponse,
};
use super::ProtoError;

/// A decoded client request: what follows the [`RequestHeader`] of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Keep-alive (xid -2, no body).
    Ping,
    /// End the session (no body); ZooKeeper replies, then closes the connection.
    CloseSession,
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    GetEphemerals(GetEphemeralsRequest),
    Sync(SyncRequest),
    Check(CheckVersionRequest),
    /// A transaction: all operations apply or none does.
    Multi(Vec<MultiOp>),
    /// Independent reads, each answered on its own.
    MultiRead(Vec<MultiReadOp>),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    RemoveWatches(RemoveWatchesRequest),
    CheckWatches(CheckWatchesRequest),
    /// addAuth (xid -4).
    Auth(AuthPacket),
    /// whoAmI (no body).
    WhoAmI,
    /// An opcode this server does not serve (unknown, or sasl, reconfig and the
    /// server-internal ones); answer `Unimplemented` and keep the connection. The body is
    /// left unread.
    Unknown(i32),
}

impl Request {
    /// The opcode this request travels under.
    pub(crate) fn opcode(&self) -> i32 {
        let op = match self {
            Request::Ping => OpCode::Ping,
            Request::CloseSession => OpCode::CloseSession,
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::Sync(_) => OpCode::Sync,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::Unknown(op) => return *op,
        };
        op.as_i32()
    }

    fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Request::Ping | Request::CloseSession | Request::WhoAmI | Request::Unknown(_) => {}
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.write(out),
            Request::CreateTtl(r) => r.write(out),
            Request::Delete(r) => r.write(out),
            Request::Exists(r) => r.write(out),
            Request::GetData(r) => r.write(out),
            Request::SetData(r) => r.write(out),
            Request::GetAcl(r) => r.write(out),
            Request::SetAcl(r) => r.write(out),
            Request::GetChildren(r) => r.write(out),
            Request::GetChildren2(r) => r.write(out),
            Request::GetAllChildrenNumber(r) => r.write(out),
            Request::GetEphemerals(r) => r.write(out),
            Request::Sync(r) => r.write(out),
            Request::Check(r) => r.write(out),
            Request::Multi(ops) => {
                for op in ops {
                    op_header(op.opcode()).write(out);
                    op.write_body(out);
                }
                DONE_HEADER.write(out);
            }
            Request::MultiRead(ops) => {
                for op in ops {
                    op_header(op.opcode()).write(out);
                    op.write_body(out);
                }
                DONE_HEADER.write(out);
            }
            Request::SetWatches(r) => r.write(out),
            Request::SetWatches2(r) => r.write(out),
            Request::AddWatch(r) => r.write(out),
            Request::RemoveWatches(r) => r.write(out),
            Request::CheckWatches(r) => r.write(out),
            Request::Auth(r) => r.write(out),
        }
    }
}

/// One operation of a [`Request::Multi`]. The variant decides the result type:
/// `Create` yields [`MultiOpResult::Create`]; `Create2`, `CreateContainer` and `CreateTtl`
/// yield [`MultiOpResult::Create2`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
}

impl MultiOp {
    /// The opcode in this operation's [`MultiHeader`].
    pub(crate) fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
        }
    }

    fn read<B: Buf>(op: i32, body: &mut B) -> Result<Self, ProtoError> {
        let invalid = ProtoError::InvalidMultiOp {
            within: "multi",
            op,
        };
        let Some(code) = OpCode::from_i32(op) else {
            return Err(invalid);
        };
        Ok(match code {
            OpCode::Create => MultiOp::Create(CreateRequest::read(body)?),
            OpCode::Create2 => MultiOp::Create2(CreateRequest::read(body)?),
            OpCode::CreateContainer => MultiOp::CreateContainer(CreateRequest::read(body)?),
            OpCode::CreateTtl => MultiOp::CreateTtl(CreateTtlRequest::read(body)?),
            OpCode::Delete => MultiOp::Delete(DeleteRequest::read(body)?),
            OpCode::SetData => MultiOp::SetData(SetDataRequest::read(body)?),
            OpCode::Check => MultiOp::Check(CheckVersionRequest::read(body)?),
            _ => return Err(invalid),
        })
    }

    fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.write(out),
            MultiOp::CreateTtl(r) => r.write(out),
            MultiOp::Delete(r) => r.write(out),
            MultiOp::SetData(r) => r.write(out),
            MultiOp::Check(r) => r.write(out),
        }
    }
}

/// One operation of a [`Request::MultiRead`]. ZooKeeper ignores the `watch` flags here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultiReadOp {
    GetData(GetDataRequest),
    GetChildren(GetChildrenRequest),
}

impl MultiReadOp {
    /// The opcode in this operation's [`MultiHeader`].
    pub(crate) fn opcode(&self) -> OpCode {
        match self {
            MultiReadOp::GetData(_) => OpCode::GetData,
            MultiReadOp::GetChildren(_) => OpCode::GetChildren,
        }
    }

    fn read<B: Buf>(op: i32, body: &mut B) -> Result<Self, ProtoError> {
        if op == OpCode::GetData.as_i32() {
            Ok(MultiReadOp::GetData(GetDataRequest::read(body)?))
        } else if op == OpCode::GetChildren.as_i32() {
            Ok(MultiReadOp::GetChildren(GetChildrenRequest::read(body)?))
        } else {
            Err(ProtoError::InvalidMultiOp {
                within: "multiRead",
                op,
            })
        }
    }

    fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            MultiReadOp::GetData(r) => r.write(out),
            MultiReadOp::GetChildren(r) => r.write(out),
        }
    }
}

/// One result of a multi or multiRead reply, in the order of the operations.
///
/// When a multi fails, ZooKeeper answers every operation with [`MultiOpResult::Error`]:
/// `Ok` for those before the failing one, its code for the failing one, and
/// `RuntimeInconsistency` for those after. In a multiRead each read fails on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultiOpResult {
    /// For [`MultiOp::Create`].
    Create {
        path: String,
    },
    /// For [`MultiOp::Create2`], [`MultiOp::CreateContainer`] and [`MultiOp::CreateTtl`].
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        data: Vec<u8>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    Error {
        err: ErrorCode,
    },
}

impl MultiOpResult {
    fn header(&self) -> MultiHeader {
        let (op, err) = match self {
            MultiOpResult::Create { .. } => (OpCode::Create, 0),
            MultiOpResult::Create2 { .. } => (OpCode::Create2, 0),
            MultiOpResult::Delete => (OpCode::Delete, 0),
            MultiOpResult::SetData { .. } => (OpCode::SetData, 0),
            MultiOpResult::Check => (OpCode::Check, 0),
            MultiOpResult::GetData { .. } => (OpCode::GetData, 0),
            MultiOpResult::GetChildren { .. } => (OpCode::GetChildren, 0),
            MultiOpResult::Error { err } => (OpCode::Error, err.as_i32()),
        };
        MultiHeader {
            op: op.as_i32(),
            done: false,
            err,
        }
    }

    fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            MultiOpResult::Create { path } => jute::write_ustring(out, path),
            MultiOpResult::Create2 { path, stat } => {
                jute::write_ustring(out, path);
                stat.write(out);
            }
            MultiOpResult::Delete | MultiOpResult::Check => {}
            MultiOpResult::SetData { stat } => stat.write(out),
            MultiOpResult::GetData { data, stat } => {
                jute::write_buffer(out, data);
                stat.write(out);
            }
            MultiOpResult::GetChildren { children } => children.write(out),
            MultiOpResult::Error { err } => ErrorResponse { err: err.as_i32() }.write(out),
        }
    }

    fn read<B: Buf>(op: i32, body: &mut B) -> Result<Self, ProtoError> {
        if op == OpCode::Error.as_i32() {
            let value = ErrorResponse::read(body)?.err;
            let err = ErrorCode::from_i32(value).ok_or(ProtoError::UnknownValue {
                what: "error code",
                value,
            })?;
            return Ok(MultiOpResult::Error { err });
        }
        let invalid = ProtoError::InvalidMultiOp {
            within: "multi response",
            op,
        };
        let Some(code) = OpCode::from_i32(op) else {
            return Err(invalid);
        };
        Ok(match code {
            OpCode::Create => MultiOpResult::Create {
                path: CreateResponse::read(body)?.path,
            },
            OpCode::Create2 => {
                let r = Create2Response::read(body)?;
                MultiOpResult::Create2 {
                    path: r.path,
                    stat: r.stat,
                }
            }
            OpCode::Delete => MultiOpResult::Delete,
            OpCode::SetData => MultiOpResult::SetData {
                stat: Stat::read(body)?,
            },
            OpCode::Check => MultiOpResult::Check,
            OpCode::GetData => {
                let r = GetDataResponse::read(body)?;
                MultiOpResult::GetData {
                    data: r.data,
                    stat: r.stat,
                }
            }
            OpCode::GetChildren => MultiOpResult::GetChildren {
                children: GetChildrenResponse::read(body)?.children,
            },
            _ => return Err(invalid),
        })
    }
}

/// The header clients put before each multi operation.
fn op_header(op: OpCode) -> MultiHeader {
    MultiHeader {
        op: op.as_i32(),
        done: false,
        err: -1,
    }
}

/// The header that ends a multi request or reply.
const DONE_HEADER: MultiHeader = MultiHeader {
    op: -1,
    done: true,
    err: -1,
};

/// Reads `MultiHeader`-framed items until the `done` header. Each item takes at least the
/// 9-byte header, so the count is bounded by the frame.
fn read_multi<T, B: Buf>(
    body: &mut B,
    read_item: fn(i32, &mut B) -> Result<T, ProtoError>,
) -> Result<Vec<T>, ProtoError> {
    let mut items = Vec::new();
    loop {
        let header = MultiHeader::read(body)?;
        if header.done {
            return Ok(items);
        }
        items.push(read_item(header.op, body)?);
    }
}

/// A reply body; which one goes with which opcode is listed in the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    Create(CreateResponse),
    /// create2, createContainer and createTTL.
    Create2(Create2Response),
    Exists(Stat),
    GetData(GetDataResponse),
    SetData(Stat),
    GetAcl(GetAclResponse),
    SetAcl(Stat),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    Check(Stat),
    /// multi and multiRead.
    Multi(Vec<MultiOpResult>),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    GetEphemerals(GetEphemeralsResponse),
    /// Encodes as `ErrorResponse { err: 0 }`, as ZooKeeper does.
    AddWatch,
    WhoAmI(WhoAmIResponse),
}

impl Response {
    fn write<B: BufMut>(&self, out: &mut B) {
        match self {
            Response::Create(r) => r.write(out),
            Response::Create2(r) => r.write(out),
            Response::Exists(stat)
            | Response::SetData(stat)
            | Response::SetAcl(stat)
            | Response::Check(stat) => stat.write(out),
            Response::GetData(r) => r.write(out),
            Response::GetAcl(r) => r.write(out),
            Response::GetChildren(r) => r.write(out),
            Response::GetChildren2(r) => r.write(out),
            Response::Sync(r) => r.write(out),
            Response::Multi(results) => {
                for result in results {
                    result.header().write(out);
                    result.write_body(out);
                }
                DONE_HEADER.write(out);
            }
            Response::GetAllChildrenNumber(r) => r.write(out),
            Response::GetEphemerals(r) => r.write(out),
            Response::AddWatch => ErrorResponse { err: 0 }.write(out),
            Response::WhoAmI(r) => r.write(out),
        }
    }
}

/// Decodes the first frame of a connection.
///
/// # Errors
/// [`ProtoError`] if the mandatory fields are missing or malformed; close the connection.
pub(crate) fn decode_connect_request(body: &mut impl Buf) -> Result<ConnectRequest, ProtoError> {
    ConnectRequest::read(body)
}

/// Decodes the body of a request frame whose header has already been read.
///
/// Unknown and unserved opcodes give [`Request::Unknown`], not an error. Bytes after the
/// record are ignored, as ZooKeeper ignores them.
///
/// # Errors
/// [`ProtoError`] if the body does not hold the record the opcode calls for. The frame
/// boundary is intact, so the connection may answer `MarshallingError` for
/// `header.xid` (ZooKeeper's behaviour) instead of closing.
pub(crate) fn decode_request(
    header: &RequestHeader,
    body: &mut impl Buf,
) -> Result<Request, ProtoError> {
    let Some(op) = OpCode::from_i32(header.op) else {
        return Ok(Request::Unknown(header.op));
    };
    Ok(match op {
        OpCode::Ping => Request::Ping,
        OpCode::CloseSession => Request::CloseSession,
        OpCode::Create => Request::Create(CreateRequest::read(body)?),
        OpCode::Create2 => Request::Create2(CreateRequest::read(body)?),
        OpCode::CreateContainer => Request::CreateContainer(CreateRequest::read(body)?),
        OpCode::CreateTtl => Request::CreateTtl(CreateTtlRequest::read(body)?),
        OpCode::Delete => Request::Delete(DeleteRequest::read(body)?),
        OpCode::Exists => Request::Exists(ExistsRequest::read(body)?),
        OpCode::GetData => Request::GetData(GetDataRequest::read(body)?),
        OpCode::SetData => Request::SetData(SetDataRequest::read(body)?),
        OpCode::GetAcl => Request::GetAcl(GetAclRequest::read(body)?),
        OpCode::SetAcl => Request::SetAcl(SetAclRequest::read(body)?),
        OpCode::GetChildren => Request::GetChildren(GetChildrenRequest::read(body)?),
        OpCode::GetChildren2 => Request::GetChildren2(GetChildren2Request::read(body)?),
        OpCode::GetAllChildrenNumber => {
            Request::GetAllChildrenNumber(GetAllChildrenNumberRequest::read(body)?)
        }
        OpCode::GetEphemerals => Request::GetEphemerals(GetEphemeralsRequest::read(body)?),
        OpCode::Sync => Request::Sync(SyncRequest::read(body)?),
        OpCode::Check => Request::Check(CheckVersionRequest::read(body)?),
        OpCode::Multi => Request::Multi(read_multi(body, MultiOp::read)?),
        OpCode::MultiRead => Request::MultiRead(read_multi(body, MultiReadOp::read)?),
        OpCode::SetWatches => Request::SetWatches(SetWatches::read(body)?),
        OpCode::SetWatches2 => Request::SetWatches2(SetWatches2::read(body)?),
        OpCode::AddWatch => Request::AddWatch(AddWatchRequest::read(body)?),
        OpCode::RemoveWatches => Request::RemoveWatches(RemoveWatchesRequest::read(body)?),
        OpCode::CheckWatches => Request::CheckWatches(CheckWatchesRequest::read(body)?),
        OpCode::Auth => Request::Auth(AuthPacket::read(body)?),
        OpCode::WhoAmI => Request::WhoAmI,
        OpCode::Notification
        | OpCode::Reconfig
        | OpCode::DeleteContainer
        | OpCode::Sasl
        | OpCode::CreateSession
        | OpCode::Error => Request::Unknown(header.op),
    })
}

/// Appends the connect reply frame (no reply header).
pub(crate) fn encode_connect_response(resp: &ConnectResponse, out: &mut BytesMut) {
    encode_frame(out, |out| resp.write(out));
}

/// Appends a reply frame: [`ReplyHeader`] `{xid, zxid, err}` and then `body`, if any.
///
/// `zxid` is the last zxid the server has applied (ZooKeeper sends it on every reply,
/// pings included). Pass `None` for opcodes without a reply body and whenever `err` is not
/// [`ErrorCode::Ok`]; multi replies are the exception, see [`MultiOpResult`].
pub(crate) fn encode_reply(
    xid: i32,
    zxid: i64,
    err: ErrorCode,
    body: Option<&Response>,
    out: &mut BytesMut,
) {
    encode_frame(out, |out| {
        ReplyHeader {
            xid,
            zxid,
            err: err.as_i32(),
        }
        .write(out);
        if let Some(body) = body {
            body.write(out);
        }
    });
}

/// Appends a watch notification frame: [`ReplyHeader`] with xid -1 and err 0, then the
/// event. ZooKeeper 3.8/3.9 send `zxid` -1 here; newer servers send the event's zxid.
pub(crate) fn encode_notification(zxid: i64, event: &WatcherEvent, out: &mut BytesMut) {
    encode_frame(out, |out| {
        ReplyHeader {
            xid: NOTIFICATION_XID,
            zxid,
            err: 0,
        }
        .write(out);
        event.write(out);
    });
}

/// Appends a connect request frame (client side).
pub(crate) fn encode_connect_request(req: &ConnectRequest, out: &mut BytesMut) {
    encode_frame(out, |out| req.write(out));
}

/// Appends a request frame: [`RequestHeader`] `{xid, request.opcode()}` and the body
/// (client side).
pub(crate) fn encode_request(xid: i32, request: &Request, out: &mut BytesMut) {
    encode_frame(out, |out| {
        RequestHeader {
            xid,
            op: request.opcode(),
        }
        .write(out);
        request.write_body(out);
    });
}

/// Decodes a successful reply's body for a request of type `op` (client side), after
/// its [`ReplyHeader`]. `Ok(None)` for opcodes whose replies carry no body, and for those
/// this protocol module does not serve.
///
/// # Errors
/// [`ProtoError`] if the body does not hold the expected record.
pub(crate) fn decode_response(
    op: OpCode,
    body: &mut impl Buf,
) -> Result<Option<Response>, ProtoError> {
    Ok(Some(match op {
        OpCode::Create => Response::Create(CreateResponse::read(body)?),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Response::Create2(Create2Response::read(body)?)
        }
        OpCode::Exists => Response::Exists(Stat::read(body)?),
        OpCode::GetData => Response::GetData(GetDataResponse::read(body)?),
        OpCode::SetData => Response::SetData(Stat::read(body)?),
        OpCode::GetAcl => Response::GetAcl(GetAclResponse::read(body)?),
        OpCode::SetAcl => Response::SetAcl(Stat::read(body)?),
        OpCode::GetChildren => Response::GetChildren(GetChildrenResponse::read(body)?),
        OpCode::GetChildren2 => Response::GetChildren2(GetChildren2Response::read(body)?),
        OpCode::Sync => Response::Sync(SyncResponse::read(body)?),
        OpCode::Check => Response::Check(Stat::read(body)?),
        OpCode::Multi | OpCode::MultiRead => {
            Response::Multi(read_multi(body, MultiOpResult::read)?)
        }
        OpCode::GetAllChildrenNumber => {
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse::read(body)?)
        }
        OpCode::GetEphemerals => Response::GetEphemerals(GetEphemeralsResponse::read(body)?),
        OpCode::AddWatch => {
            ErrorResponse::read(body)?;
            Response::AddWatch
        }
        OpCode::WhoAmI => Response::WhoAmI(WhoAmIResponse::read(body)?),
        OpCode::Notification
        | OpCode::Delete
        | OpCode::Ping
        | OpCode::Reconfig
        | OpCode::CheckWatches
        | OpCode::RemoveWatches
        | OpCode::DeleteContainer
        | OpCode::Auth
        | OpCode::SetWatches
        | OpCode::Sasl
        | OpCode::SetWatches2
        | OpCode::CreateSession
        | OpCode::CloseSession
        | OpCode::Error => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};
    use proptest::prelude::*;

    use super::super::codes::{EventType, KeeperState};
    use super::super::frame::{decode_frame, encode_frame, DEFAULT_MAX_FRAME_LEN};
    use super::super::opcode::{AUTH_XID, PING_XID, SET_WATCHES_XID};
    use super::super::records::tests::{open_acl, stat};
    use super::super::records::{Acl, ClientInfo, Id};
    use super::*;

    /// Takes the single frame in `out`, checking nothing else is there.
    fn only_frame(mut out: BytesMut) -> Bytes {
        let frame = decode_frame(&mut out, DEFAULT_MAX_FRAME_LEN)
            .unwrap()
            .expect("a complete frame");
        assert!(out.is_empty(), "{} bytes after the frame", out.len());
        frame
    }

    /// What the server does with a frame: header, then body.
    fn server_decode(frame: Bytes) -> Result<(RequestHeader, Request), ProtoError> {
        let mut body = frame;
        let header = RequestHeader::read(&mut body)?;
        let request = decode_request(&header, &mut body)?;
        Ok((header, request))
    }

    fn create_request() -> CreateRequest {
        CreateRequest {
            path: "/foo".into(),
            data: b"bar".to_vec(),
            acl: open_acl(),
            flags: 0,
        }
    }

    fn every_request() -> Vec<Request> {
        let paths = vec!["/w/a".to_string(), "/w/b".to_string()];
        vec![
            Request::Ping,
            Request::CloseSession,
            Request::Create(create_request()),
            Request::Create2(CreateRequest {
                flags: 3,
                ..create_request()
            }),
            Request::CreateContainer(CreateRequest {
                flags: 4,
                ..create_request()
            }),
            Request::CreateTtl(CreateTtlRequest {
                path: "/t".into(),
                data: vec![],
                acl: open_acl(),
                flags: 6,
                ttl: 5_000,
            }),
            Request::Delete(DeleteRequest {
                path: "/foo".into(),
                version: 3,
            }),
            Request::Exists(ExistsRequest {
                path: "/foo".into(),
                watch: true,
            }),
            Request::GetData(GetDataRequest {
                path: "/foo".into(),
                watch: true,
            }),
            Request::SetData(SetDataRequest {
                path: "/foo".into(),
                data: vec![1, 2, 3],
                version: -1,
            }),
            Request::GetAcl(GetAclRequest {
                path: "/foo".into(),
            }),
            Request::SetAcl(SetAclRequest {
                path: "/foo".into(),
                acl: vec![Acl {
                    perms: 1,
                    id: Id {
                        scheme: "digest".into(),
                        id: "alice:hash=".into(),
                    },
                }],
                version: 0,
            }),
            Request::GetChildren(GetChildrenRequest {
                path: "/".into(),
                watch: false,
            }),
            Request::GetChildren2(GetChildren2Request {
                path: "/".into(),
                watch: true,
            }),
            Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: "/".into() }),
            Request::GetEphemerals(GetEphemeralsRequest {
                prefix_path: "/".into(),
            }),
            Request::Sync(SyncRequest { path: "/".into() }),
            Request::Check(CheckVersionRequest {
                path: "/foo".into(),
                version: 1,
            }),
            Request::Multi(vec![
                MultiOp::Create(create_request()),
                MultiOp::Create2(create_request()),
                MultiOp::CreateContainer(create_request()),
                MultiOp::CreateTtl(CreateTtlRequest {
                    path: "/t".into(),
                    data: vec![9],
                    acl: open_acl(),
                    flags: 5,
                    ttl: 1,
                }),
                MultiOp::Delete(DeleteRequest {
                    path: "/d".into(),
                    version: -1,
                }),
                MultiOp::SetData(SetDataRequest {
                    path: "/s".into(),
                    data: vec![],
                    version: 2,
                }),
                MultiOp::Check(CheckVersionRequest {
                    path: "/c".into(),
                    version: 0,
                }),
            ]),
            Request::Multi(vec![]),
            Request::MultiRead(vec![
                MultiReadOp::GetData(GetDataRequest {
                    path: "/a".into(),
                    watch: false,
                }),
                MultiReadOp::GetChildren(GetChildrenRequest {
                    path: "/".into(),
                    watch: false,
                }),
            ]),
            Request::SetWatches(SetWatches {
                relative_zxid: 100,
                data_watches: paths.clone(),
                exist_watches: vec!["/missing".into()],
                child_watches: paths.clone(),
            }),
            Request::SetWatches2(SetWatches2 {
                relative_zxid: 100,
                data_watches: paths.clone(),
                exist_watches: vec![],
                child_watches: vec![],
                persistent_watches: paths.clone(),
                persistent_recursive_watches: paths,
            }),
            Request::AddWatch(AddWatchRequest {
                path: "/w".into(),
                mode: 1,
            }),
            Request::RemoveWatches(RemoveWatchesRequest {
                path: "/w".into(),
                watcher_type: 3,
            }),
            Request::CheckWatches(CheckWatchesRequest {
                path: "/w".into(),
                watcher_type: 2,
            }),
            Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: b"alice:secret".to_vec(),
            }),
            Request::WhoAmI,
        ]
    }

    fn every_response() -> Vec<(OpCode, Response)> {
        vec![
            (
                OpCode::Create,
                Response::Create(CreateResponse {
                    path: "/foo".into(),
                }),
            ),
            (
                OpCode::Create2,
                Response::Create2(Create2Response {
                    path: "/foo0000000001".into(),
                    stat: stat(),
                }),
            ),
            (OpCode::Exists, Response::Exists(stat())),
            (
                OpCode::GetData,
                Response::GetData(GetDataResponse {
                    data: b"bar".to_vec(),
                    stat: stat(),
                }),
            ),
            (OpCode::SetData, Response::SetData(stat())),
            (
                OpCode::GetAcl,
                Response::GetAcl(GetAclResponse {
                    acl: open_acl(),
                    stat: stat(),
                }),
            ),
            (OpCode::SetAcl, Response::SetAcl(stat())),
            (
                OpCode::GetChildren,
                Response::GetChildren(GetChildrenResponse {
                    children: vec!["a".into(), "b".into()],
                }),
            ),
            (
                OpCode::GetChildren2,
                Response::GetChildren2(GetChildren2Response {
                    children: vec![],
                    stat: stat(),
                }),
            ),
            (
                OpCode::Sync,
                Response::Sync(SyncResponse { path: "/".into() }),
            ),
            (OpCode::Check, Response::Check(stat())),
            (
                OpCode::Multi,
                Response::Multi(vec![
                    MultiOpResult::Create { path: "/a".into() },
                    MultiOpResult::Create2 {
                        path: "/b".into(),
                        stat: stat(),
                    },
                    MultiOpResult::Delete,
                    MultiOpResult::SetData { stat: stat() },
                    MultiOpResult::Check,
                ]),
            ),
            (
                OpCode::Multi,
                Response::Multi(vec![
                    MultiOpResult::Error { err: ErrorCode::Ok },
                    MultiOpResult::Error {
                        err: ErrorCode::BadVersion,
                    },
                    MultiOpResult::Error {
                        err: ErrorCode::RuntimeInconsistency,
                    },
                ]),
            ),
            (
                OpCode::MultiRead,
                Response::Multi(vec![
                    MultiOpResult::GetData {
                        data: b"x".to_vec(),
                        stat: stat(),
                    },
                    MultiOpResult::GetChildren {
                        children: vec!["c".into()],
                    },
                    MultiOpResult::Error {
                        err: ErrorCode::NoNode,
                    },
                ]),
            ),
            (
                OpCode::GetAllChildrenNumber,
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number: 7 }),
            ),
            (
                OpCode::GetEphemerals,
                Response::GetEphemerals(GetEphemeralsResponse {
                    ephemerals: vec!["/e/1".into()],
                }),
            ),
            (OpCode::AddWatch, Response::AddWatch),
            (
                OpCode::WhoAmI,
                Response::WhoAmI(WhoAmIResponse {
                    client_info: vec![ClientInfo {
                        auth_scheme: "ip".into(),
                        user: "127.0.0.1".into(),
                    }],
                }),
            ),
        ]
    }

    #[test]
    fn create_request_golden_bytes() {
        // zk.create("/foo", "bar".getBytes(), OPEN_ACL_UNSAFE, PERSISTENT) as the first
        // request of a session: xid 1, type 1 (create).
        let golden: &[u8] = &[
            0x00, 0x00, 0x00, 0x36, // frame length 54
            0x00, 0x00, 0x00, 0x01, // xid 1
            0x00, 0x00, 0x00, 0x01, // type create
            0x00, 0x00, 0x00, 0x04, b'/', b'f', b'o', b'o', // path
            0x00, 0x00, 0x00, 0x03, b'b', b'a', b'r', // data
            0x00, 0x00, 0x00, 0x01, // acl: 1 entry
            0x00, 0x00, 0x00, 0x1f, // perms ALL
            0x00, 0x00, 0x00, 0x05, b'w', b'o', b'r', b'l', b'd', // scheme
            0x00, 0x00, 0x00, 0x06, b'a', b'n', b'y', b'o', b'n', b'e', // id
            0x00, 0x00, 0x00, 0x00, // flags PERSISTENT
        ];
        let (header, request) = server_decode(only_frame(BytesMut::from(golden))).unwrap();
        assert_eq!(header, RequestHeader { xid: 1, op: 1 });
        assert_eq!(request, Request::Create(create_request()));

        let mut out = BytesMut::new();
        encode_request(1, &request, &mut out);
        assert_eq!(&out[..], golden);
    }

    #[test]
    fn connect_golden_frame_decodes() {
        let mut wire = BytesMut::new();
        wire.put_i32(45);
        wire.put_i32(0); // protocolVersion
        wire.put_i64(0); // lastZxidSeen
        wire.put_i32(30_000); // timeOut
        wire.put_i64(0); // sessionId
        wire.put_i32(16); // passwd
        wire.put_bytes(0, 16);
        wire.put_u8(0); // readOnly
        let mut frame = only_frame(wire.clone());
        let req = decode_connect_request(&mut frame).unwrap();
        assert_eq!(req.time_out, 30_000);
        assert_eq!(req.read_only, Some(false));
        let mut again = BytesMut::new();
        encode_connect_request(&req, &mut again);
        assert_eq!(again, wire);
    }

    #[test]
    fn connect_response_golden_bytes() {
        let resp = ConnectResponse {
            protocol_version: 0,
            time_out: 10_000,
            session_id: 0x0100_0000_0000_0001,
            passwd: vec![0xaa; 16],
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        encode_connect_response(&resp, &mut out);
        let mut expected = vec![0, 0, 0, 37, 0, 0, 0, 0, 0, 0, 0x27, 0x10];
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(&[0xaa; 16]);
        expected.push(0);
        assert_eq!(&out[..], &expected[..]);

        // An old client gets no readOnly byte.
        let mut out = BytesMut::new();
        encode_connect_response(
            &ConnectResponse {
                read_only: None,
                ..resp
            },
            &mut out,
        );
        assert_eq!(&out[..4], &[0, 0, 0, 36]);
        assert_eq!(out.len(), 40);
    }

    #[test]
    fn every_request_round_trips() {
        for (i, request) in every_request().into_iter().enumerate() {
            let xid = i32::try_from(i).unwrap() + 1;
            let mut out = BytesMut::new();
            encode_request(xid, &request, &mut out);
            let frame = only_frame(out);
            let (header, decoded) = server_decode(frame.clone()).unwrap();
            assert_eq!(header.xid, xid);
            assert_eq!(header.op, request.opcode());
            assert_eq!(decoded, request);
            // Every strict prefix of a body with content fails rather than panicking or
            // decoding to something else.
            let body_len = frame.len() - 8;
            for cut in 8..frame.len() {
                let truncated = server_decode(frame.slice(..cut));
                assert!(
                    truncated.is_err(),
                    "{request:?} decoded from {} of {body_len} body bytes",
                    cut - 8
                );
            }
        }
    }

    #[test]
    fn special_xids_travel_unchanged() {
        for (xid, request) in [
            (PING_XID, Request::Ping),
            (
                AUTH_XID,
                Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: b"u:p".to_vec(),
                }),
            ),
            (SET_WATCHES_XID, Request::SetWatches(SetWatches::default())),
        ] {
            let mut out = BytesMut::new();
            encode_request(xid, &request, &mut out);
            let (header, decoded) = server_decode(only_frame(out)).unwrap();
            assert_eq!(header.xid, xid);
            assert_eq!(decoded, request);
        }
        // A ping is just the header.
        let mut out = BytesMut::new();
        encode_request(PING_XID, &Request::Ping, &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]);
    }

    #[test]
    fn unknown_and_unserved_opcodes_are_not_errors() {
        for op in [10, 23, 99, 9999, -5, 102, 16, 20, -10, 0, -1] {
            let header = RequestHeader { xid: 5, op };
            let mut body = Bytes::from_static(b"\x01\x02\x03");
            assert_eq!(decode_request(&header, &mut body), Ok(Request::Unknown(op)));
            assert_eq!(body.len(), 3, "body left unread");
        }
    }

    #[test]
    fn trailing_bytes_after_a_record_are_ignored() {
        let header = RequestHeader {
            xid: 1,
            op: OpCode::Sync.as_i32(),
        };
        let mut body = BytesMut::new();
        SyncRequest { path: "/".into() }.write(&mut body);
        body.put_slice(b"junk");
        assert_eq!(
            decode_request(&header, &mut body.freeze()),
            Ok(Request::Sync(SyncRequest { path: "/".into() }))
        );
    }

    #[test]
    fn multi_wire_layout() {
        let request = Request::Multi(vec![
            MultiOp::Check(CheckVersionRequest {
                path: "/a".into(),
                version: 1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1,
            }),
        ]);
        let mut out = BytesMut::new();
        encode_request(9, &request, &mut out);
        let expected: &[u8] = &[
            0, 0, 0, 55, // frame
            0, 0, 0, 9, 0, 0, 0, 14, // header: xid 9, multi
            0, 0, 0, 13, 0, 0xff, 0xff, 0xff, 0xff, // MultiHeader(check, false, -1)
            0, 0, 0, 2, b'/', b'a', 0, 0, 0, 1, // CheckVersionRequest
            0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, // MultiHeader(delete, false, -1)
            0, 0, 0, 2, b'/', b'a', 0xff, 0xff, 0xff, 0xff, // DeleteRequest
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // done
        ];
        assert_eq!(&out[..], expected);
    }

    /// A multi body from raw opcodes and pre-encoded operation records.
    fn multi_body(ops: &[(i32, &[u8])]) -> Bytes {
        let mut body = BytesMut::new();
        for &(op, record) in ops {
            MultiHeader {
                op,
                done: false,
                err: -1,
            }
            .write(&mut body);
            body.put_slice(record);
        }
        DONE_HEADER.write(&mut body);
        body.freeze()
    }

    fn encoded<T: Jute>(record: &T) -> Vec<u8> {
        let mut out = Vec::new();
        record.write(&mut out);
        out
    }

    #[test]
    fn multi_refuses_reads_and_multiread_refuses_writes() {
        let get_data = encoded(&GetDataRequest {
            path: "/a".into(),
            watch: false,
        });
        let delete = encoded(&DeleteRequest {
            path: "/a".into(),
            version: -1,
        });
        let multi = RequestHeader { xid: 1, op: 14 };
        let multi_read = RequestHeader { xid: 1, op: 22 };

        let body = multi_body(&[(2, &delete[..]), (4, &get_data[..])]);
        assert_eq!(
            decode_request(&multi, &mut body.clone()),
            Err(ProtoError::InvalidMultiOp {
                within: "multi",
                op: 4
            })
        );
        let body = multi_body(&[(4, &get_data[..]), (2, &delete[..])]);
        assert_eq!(
            decode_request(&multi_read, &mut body.clone()),
            Err(ProtoError::InvalidMultiOp {
                within: "multiRead",
                op: 2
            })
        );
        // Opcodes that are never valid inside a multi.
        for op in [3, 11, 14, 22, 100, 12345] {
            let body = multi_body(&[(op, &delete[..])]);
            assert!(matches!(
                decode_request(&multi, &mut body.clone()),
                Err(ProtoError::InvalidMultiOp { .. })
            ));
        }
    }

    #[test]
    fn multi_without_done_header_is_truncated() {
        let mut body = BytesMut::new();
        op_header(OpCode::Delete).write(&mut body);
        DeleteRequest {
            path: "/a".into(),
            version: 0,
        }
        .write(&mut body);
        let header = RequestHeader { xid: 1, op: 14 };
        assert!(matches!(
            decode_request(&header, &mut body.freeze()),
            Err(ProtoError::Truncated { .. })
        ));
    }

    #[test]
    fn every_response_round_trips() {
        for (op, response) in every_response() {
            let mut out = BytesMut::new();
            encode_reply(42, 0x1_0000_0009, ErrorCode::Ok, Some(&response), &mut out);
            let mut frame = only_frame(out);
            let header = ReplyHeader::read(&mut frame).unwrap();
            assert_eq!(
                header,
                ReplyHeader {
                    xid: 42,
                    zxid: 0x1_0000_0009,
                    err: 0
                }
            );
            assert_eq!(
                decode_response(op, &mut frame),
                Ok(Some(response.clone())),
                "{op:?}"
            );
            assert!(frame.is_empty(), "{op:?}: bytes left over");
        }
    }

    #[test]
    fn bodyless_replies_are_just_the_header() {
        let mut out = BytesMut::new();
        encode_reply(PING_XID, 0x10, ErrorCode::Ok, None, &mut out);
        assert_eq!(
            &out[..],
            &[
                0, 0, 0, 16, // frame
                0xff, 0xff, 0xff, 0xfe, // xid -2
                0, 0, 0, 0, 0, 0, 0, 0x10, // zxid
                0, 0, 0, 0, // err
            ]
        );
        let mut out = BytesMut::new();
        encode_reply(7, 0x10, ErrorCode::NoNode, None, &mut out);
        assert_eq!(&out[16..], &[0xff, 0xff, 0xff, 0x9b]); // -101
        assert_eq!(decode_response(OpCode::Delete, &mut Bytes::new()), Ok(None));
    }

    #[test]
    fn addwatch_reply_carries_a_zero_error_response() {
        let mut out = BytesMut::new();
        encode_reply(3, 1, ErrorCode::Ok, Some(&Response::AddWatch), &mut out);
        assert_eq!(&out[..4], &[0, 0, 0, 20]);
        assert_eq!(&out[20..], &[0, 0, 0, 0]);
    }

    #[test]
    fn multi_error_result_wire_layout() {
        let mut out = BytesMut::new();
        Response::Multi(vec![MultiOpResult::Error {
            err: ErrorCode::NoNode,
        }])
        .write(&mut out);
        assert_eq!(
            &out[..],
            &[
                0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b, // (-1, false, -101)
                0xff, 0xff, 0xff, 0x9b, // ErrorResponse(-101)
                0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // done
            ]
        );
        let mut out = BytesMut::new();
        Response::Multi(vec![MultiOpResult::Delete]).write(&mut out);
        assert_eq!(&out[..9], &[0, 0, 0, 2, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn notification_golden_bytes() {
        let event = WatcherEvent::new(
            EventType::NodeChildrenChanged,
            KeeperState::SyncConnected,
            "/a",
        );
        let mut out = BytesMut::new();
        encode_notification(-1, &event, &mut out);
        let expected: &[u8] = &[
            0, 0, 0, 30, // frame
            0xff, 0xff, 0xff, 0xff, // xid -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // zxid -1
            0, 0, 0, 0, // err
            0, 0, 0, 4, // NodeChildrenChanged
            0, 0, 0, 3, // SyncConnected
            0, 0, 0, 2, b'/', b'a',
        ];
        assert_eq!(&out[..], expected);
    }

    /// Decodes like the server: every frame in `wire`, the first as a connect.
    fn decode_stream(mut wire: BytesMut) {
        let mut first = true;
        while let Ok(Some(mut frame)) = decode_frame(&mut wire, 4096) {
            if first {
                let _ = decode_connect_request(&mut frame);
                first = false;
                continue;
            }
            let Ok(header) = RequestHeader::read(&mut frame) else {
                continue;
            };
            let _ = decode_request(&header, &mut frame);
        }
    }

    proptest! {
        #[test]
        fn decode_request_never_panics(
            op in prop_oneof![
                prop::sample::select(OpCode::ALL).prop_map(OpCode::as_i32),
                any::<i32>(),
            ],
            body in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let header = RequestHeader { xid: 1, op };
            let _ = decode_request(&header, &mut Bytes::from(body.clone()));
            let _ = decode_connect_request(&mut Bytes::from(body.clone()));
            if let Some(code) = OpCode::from_i32(op) {
                let _ = decode_response(code, &mut Bytes::from(body));
            }
        }

        #[test]
        fn random_streams_never_panic(
            frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 0..6),
            garbage in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            // Correctly framed random bodies exercise the decoders; the garbage tail
            // exercises framing.
            let mut wire = BytesMut::new();
            for body in &frames {
                encode_frame(&mut wire, |out| out.put_slice(body));
            }
            wire.put_slice(&garbage);
            decode_stream(wire);
        }

        #[test]
        fn mutated_requests_never_panic(
            which in 0..every_request().len(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let request = &every_request()[which];
            let mut out = BytesMut::new();
            encode_request(1, request, &mut out);
            let mut frame = out.split_off(4).to_vec();
            for (at, byte) in flips {
                let i = at.index(frame.len());
                frame[i] = byte;
            }
            frame.truncate(cut.index(frame.len() + 1));
            let _ = server_decode(Bytes::from(frame));
        }
    }
}
