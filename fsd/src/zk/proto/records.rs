//! The jute records of the client protocol (`zookeeper.jute`, modules
//! `org.apache.zookeeper.data` and `org.apache.zookeeper.proto`), as plain structs.
//!
//! Fields are declared in wire order; names follow ZooKeeper's in snake case, with
//! `type` spelled `op`, `event_type`, `watcher_type` or `auth_type`. Enumerated fields
//! (create flags, watch modes, event types) stay raw `i32`; `codes` converts them.
//!
//! Which record goes with which opcode, and the multi framing, live in `message`.

use bytes::{Buf, BufMut};

use super::codes::{EventType, KeeperState};
use super::jute::{self, jute_record, Jute};
use super::ProtoError;

jute_record! {
    /// `data.Id`: an authenticated identity or an ACL subject, e.g. `world:anyone`.
    Id {
        scheme: String,
        id: String,
    }
}

jute_record! {
    /// `data.ACL`: permission bits (`codes::perms`) granted to an [`Id`].
    Acl {
        perms: i32,
        id: Id,
    }
}

jute_record! {
    /// `data.Stat`: a znode's metadata as clients see it.
    Stat {
        /// zxid of the create.
        czxid: i64,
        /// zxid of the last data change.
        mzxid: i64,
        /// Creation time, ms since the epoch.
        ctime: i64,
        /// Last data change time, ms since the epoch.
        mtime: i64,
        /// Data version.
        version: i32,
        /// Children version.
        cversion: i32,
        /// ACL version.
        aversion: i32,
        /// Owning session for ephemerals; 0 otherwise.
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        /// zxid of the last change to the children.
        pzxid: i64,
    }
}

/// `proto.ConnectRequest`: the first frame of a connection (it has no request header).
///
/// `read_only` is a trailing boolean that clients before 3.4 omit; `None` means it was
/// absent. ZooKeeper answers such a client without the field too, so pass
/// `read_only.map(|_| server_is_read_only)` into the [`ConnectResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectRequest {
    pub(crate) protocol_version: i32,
    pub(crate) last_zxid_seen: i64,
    /// Requested session timeout in ms.
    pub(crate) time_out: i32,
    /// 0 for a new session; otherwise the session to re-attach.
    pub(crate) session_id: i64,
    pub(crate) passwd: Vec<u8>,
    pub(crate) read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    const MIN_WIRE_LEN: usize = 4 + 8 + 4 + 8 + 4;

    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        let protocol_version = jute::read_int(buf)?;
        let last_zxid_seen = jute::read_long(buf)?;
        let time_out = jute::read_int(buf)?;
        let session_id = jute::read_long(buf)?;
        let passwd = <Vec<u8>>::read(buf)?;
        // Any bytes after the boolean are ignored, as ZooKeeper does.
        let read_only = if buf.has_remaining() {
            Some(jute::read_bool(buf)?)
        } else {
            None
        };
        Ok(Self {
            protocol_version,
            last_zxid_seen,
            time_out,
            session_id,
            passwd,
            read_only,
        })
    }

    fn write<B: BufMut>(&self, out: &mut B) {
        jute::write_int(out, self.protocol_version);
        jute::write_long(out, self.last_zxid_seen);
        jute::write_int(out, self.time_out);
        jute::write_long(out, self.session_id);
        jute::write_buffer(out, &self.passwd);
        if let Some(read_only) = self.read_only {
            jute::write_bool(out, read_only);
        }
    }
}

/// `proto.ConnectResponse`: the answer to a [`ConnectRequest`], sent without a reply header.
///
/// `read_only` is written only when `Some`; set it exactly when the request carried one.
/// A refused session (unknown or expired) is answered with `time_out` 0, `session_id` 0
/// and an empty `passwd`, then the connection is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectResponse {
    /// Always 0.
    pub(crate) protocol_version: i32,
    /// Negotiated session timeout in ms.
    pub(crate) time_out: i32,
    pub(crate) session_id: i64,
    pub(crate) passwd: Vec<u8>,
    pub(crate) read_only: Option<bool>,
}

impl Jute for ConnectResponse {
    const MIN_WIRE_LEN: usize = 4 + 4 + 8 + 4;

    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        let protocol_version = jute::read_int(buf)?;
        let time_out = jute::read_int(buf)?;
        let session_id = jute::read_long(buf)?;
        let passwd = <Vec<u8>>::read(buf)?;
        let read_only = if buf.has_remaining() {
            Some(jute::read_bool(buf)?)
        } else {
            None
        };
        Ok(Self {
            protocol_version,
            time_out,
            session_id,
            passwd,
            read_only,
        })
    }

    fn write<B: BufMut>(&self, out: &mut B) {
        jute::write_int(out, self.protocol_version);
        jute::write_int(out, self.time_out);
        jute::write_long(out, self.session_id);
        jute::write_buffer(out, &self.passwd);
        if let Some(read_only) = self.read_only {
            jute::write_bool(out, read_only);
        }
    }
}

jute_record! {
    /// `proto.RequestHeader`: starts every request frame after the connect.
    RequestHeader {
        /// Client-chosen request id, echoed in the reply; see `opcode` for reserved xids.
        xid: i32,
        /// The opcode (`type` in jute).
        op: i32,
    }
}

jute_record! {
    /// `proto.ReplyHeader`: starts every reply and notification frame.
    ReplyHeader {
        xid: i32,
        /// The last zxid the server has applied (-1 on ZooKeeper 3.8/3.9 notifications).
        zxid: i64,
        /// A `codes::ErrorCode` value; 0 for success.
        err: i32,
    }
}

jute_record! {
    /// `proto.MultiHeader`: precedes each operation and each result of a multi, and ends
    /// the list with `done` set.
    MultiHeader {
        /// The operation's opcode; for results, -1 marks an error result.
        op: i32,
        done: bool,
        err: i32,
    }
}

jute_record! {
    /// `proto.AuthPacket`: addAuth (opcode auth, xid -4).
    AuthPacket {
        /// Unused by ZooKeeper; clients send 0.
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    }
}

jute_record! {
    /// `proto.CreateRequest`: create, create2 and createContainer.
    CreateRequest {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        /// A `codes::CreateMode` value.
        flags: i32,
    }
}

jute_record! {
    /// `proto.CreateTTLRequest`: createTTL.
    CreateTtlRequest {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        /// A `codes::CreateMode` value.
        flags: i32,
        /// Time to live in ms.
        ttl: i64,
    }
}

jute_record! {
    /// `proto.DeleteRequest`.
    DeleteRequest {
        path: String,
        /// Expected data version; -1 matches any.
        version: i32,
    }
}

jute_record! {
    /// `proto.ExistsRequest`.
    ExistsRequest {
        path: String,
        watch: bool,
    }
}

jute_record! {
    /// `proto.GetDataRequest` (also a multiRead operation, whose `watch` ZooKeeper drops).
    GetDataRequest {
        path: String,
        watch: bool,
    }
}

jute_record! {
    /// `proto.SetDataRequest`.
    SetDataRequest {
        path: String,
        data: Vec<u8>,
        /// Expected data version; -1 matches any.
        version: i32,
    }
}

jute_record! {
    /// `proto.GetACLRequest`.
    GetAclRequest {
        path: String,
    }
}

jute_record! {
    /// `proto.SetACLRequest`.
    SetAclRequest {
        path: String,
        acl: Vec<Acl>,
        /// Expected ACL version (aversion); -1 matches any.
        version: i32,
    }
}

jute_record! {
    /// `proto.GetChildrenRequest` (also a multiRead operation, whose `watch` ZooKeeper
    /// drops).
    GetChildrenRequest {
        path: String,
        watch: bool,
    }
}

jute_record! {
    /// `proto.GetChildren2Request`.
    GetChildren2Request {
        path: String,
        watch: bool,
    }
}

jute_record! {
    /// `proto.GetAllChildrenNumberRequest`.
    GetAllChildrenNumberRequest {
        path: String,
    }
}

jute_record! {
    /// `proto.GetEphemeralsRequest`: the session's ephemerals whose path starts with
    /// `prefix_path` (`""` or `/` meaning all).
    GetEphemeralsRequest {
        prefix_path: String,
    }
}

jute_record! {
    /// `proto.SyncRequest`.
    SyncRequest {
        path: String,
    }
}

jute_record! {
    /// `proto.CheckVersionRequest`: check, alone or inside a multi.
    CheckVersionRequest {
        path: String,
        /// Expected data version; -1 matches any.
        version: i32,
    }
}

jute_record! {
    /// `proto.AddWatchRequest`.
    AddWatchRequest {
        path: String,
        /// A `codes::AddWatchMode` value.
        mode: i32,
    }
}

jute_record! {
    /// `proto.RemoveWatchesRequest`.
    RemoveWatchesRequest {
        path: String,
        /// A `codes::WatcherType` value.
        watcher_type: i32,
    }
}

jute_record! {
    /// `proto.CheckWatchesRequest`.
    CheckWatchesRequest {
        path: String,
        /// A `codes::WatcherType` value.
        watcher_type: i32,
    }
}

jute_record! {
    /// `proto.SetWatches`: re-registers one-shot watches after a reconnect (xid -8).
    SetWatches {
        /// The last zxid the client saw; events after it fire at once.
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
    }
}

jute_record! {
    /// `proto.SetWatches2`: [`SetWatches`] plus persistent watches (xid -8).
    SetWatches2 {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
        persistent_watches: Vec<String>,
        persistent_recursive_watches: Vec<String>,
    }
}

jute_record! {
    /// `proto.CreateResponse`: create, and create results in a multi.
    CreateResponse {
        path: String,
    }
}

jute_record! {
    /// `proto.Create2Response`: create2, createContainer and createTTL.
    Create2Response {
        path: String,
        stat: Stat,
    }
}

jute_record! {
    /// `proto.GetDataResponse`.
    GetDataResponse {
        data: Vec<u8>,
        stat: Stat,
    }
}

jute_record! {
    /// `proto.GetACLResponse`.
    GetAclResponse {
        acl: Vec<Acl>,
        stat: Stat,
    }
}

jute_record! {
    /// `proto.GetChildrenResponse`.
    GetChildrenResponse {
        children: Vec<String>,
    }
}

jute_record! {
    /// `proto.GetChildren2Response`.
    GetChildren2Response {
        children: Vec<String>,
        stat: Stat,
    }
}

jute_record! {
    /// `proto.GetAllChildrenNumberResponse`: the number of descendants.
    GetAllChildrenNumberResponse {
        total_number: i32,
    }
}

jute_record! {
    /// `proto.GetEphemeralsResponse`.
    GetEphemeralsResponse {
        ephemerals: Vec<String>,
    }
}

jute_record! {
    /// `proto.SyncResponse`: echoes the request's path.
    SyncResponse {
        path: String,
    }
}

jute_record! {
    /// `proto.ErrorResponse`: an error result in a multi, and the (always 0) body of an
    /// addWatch reply.
    ErrorResponse {
        err: i32,
    }
}

jute_record! {
    /// `data.ClientInfo`: one identity in a whoAmI reply, e.g. `ip`/`127.0.0.1` or
    /// `digest`/`alice`.
    ClientInfo {
        auth_scheme: String,
        user: String,
    }
}

jute_record! {
    /// `proto.WhoAmIResponse`.
    WhoAmIResponse {
        client_info: Vec<ClientInfo>,
    }
}

jute_record! {
    /// `proto.WatcherEvent`: the body of a notification (xid -1).
    WatcherEvent {
        /// A `codes::EventType` value.
        event_type: i32,
        /// A `codes::KeeperState` value.
        state: i32,
        /// The znode the event is about, as the client named it (`""` for state events).
        path: String,
    }
}

impl WatcherEvent {
    /// An event from typed parts.
    pub(crate) fn new(event_type: EventType, state: KeeperState, path: impl Into<String>) -> Self {
        Self {
            event_type: event_type.as_i32(),
            state: state.as_i32(),
            path: path.into(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::fmt::Debug;

    use bytes::{Bytes, BytesMut};

    use super::*;

    /// Encodes, checks the size bound, decodes, and checks every proper prefix fails.
    pub(crate) fn round_trip<T: Jute + PartialEq + Debug>(value: &T) {
        let mut out = BytesMut::new();
        value.write(&mut out);
        let encoded = out.freeze();
        assert!(
            encoded.len() >= T::MIN_WIRE_LEN,
            "{value:?}: {} bytes < MIN_WIRE_LEN {}",
            encoded.len(),
            T::MIN_WIRE_LEN
        );
        let mut buf = encoded.clone();
        assert_eq!(&T::read(&mut buf).unwrap(), value);
        assert!(buf.is_empty(), "{value:?}: {} bytes left over", buf.len());
        for cut in 0..encoded.len() {
            let mut prefix = encoded.slice(..cut);
            assert!(
                T::read(&mut prefix).is_err(),
                "{value:?}: prefix {cut} decoded"
            );
        }
    }

    pub(crate) fn stat() -> Stat {
        Stat {
            czxid: 0x1_0000_0002,
            mzxid: 0x1_0000_0003,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_500,
            version: 2,
            cversion: 3,
            aversion: 1,
            ephemeral_owner: 0x0123_4567_89ab_cdef,
            data_length: 5,
            num_children: 4,
            pzxid: 0x1_0000_0004,
        }
    }

    pub(crate) fn open_acl() -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }

    fn paths() -> Vec<String> {
        vec!["/a".into(), "/a/b".into(), "/ü".into()]
    }

    #[test]
    fn data_records_round_trip() {
        round_trip(&Id::default());
        round_trip(&open_acl()[0]);
        round_trip(&Stat::default());
        round_trip(&stat());
        assert_eq!(Stat::MIN_WIRE_LEN, 68);
    }

    #[test]
    fn connect_records_round_trip() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x5_0000_0001,
            time_out: 30_000,
            session_id: 0x7fff_0000_0000_0001,
            passwd: vec![9; 16],
            read_only: Some(true),
        };
        round_trip_connect_request(&req);
        req.read_only = Some(false);
        round_trip_connect_request(&req);
        req.read_only = None;
        round_trip_connect_request(&req);

        let mut resp = ConnectResponse {
            protocol_version: 0,
            time_out: 10_000,
            session_id: 42,
            passwd: vec![1; 16],
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        resp.write(&mut out);
        assert_eq!(out.len(), 4 + 4 + 8 + 4 + 16 + 1);
        assert_eq!(ConnectResponse::read(&mut out.freeze()), Ok(resp.clone()));
        resp.read_only = None;
        let mut out = BytesMut::new();
        resp.write(&mut out);
        assert_eq!(out.len(), 4 + 4 + 8 + 4 + 16);
        assert_eq!(ConnectResponse::read(&mut out.freeze()), Ok(resp));
    }

    /// The trailing boolean is optional, so only prefixes that cut into the mandatory
    /// fields must fail.
    fn round_trip_connect_request(req: &ConnectRequest) {
        let mut out = BytesMut::new();
        req.write(&mut out);
        let encoded = out.freeze();
        assert_eq!(ConnectRequest::read(&mut encoded.clone()), Ok(req.clone()));
        let mandatory = 4 + 8 + 4 + 8 + 4 + req.passwd.len();
        for cut in 0..mandatory {
            assert!(ConnectRequest::read(&mut encoded.slice(..cut)).is_err());
        }
    }

    #[test]
    fn connect_request_golden_bytes() {
        // What a 3.5+ Java client sends for a new session with a 30 s timeout:
        // protocolVersion 0, lastZxidSeen 0, timeOut 30000, sessionId 0,
        // passwd = 16 zero bytes, readOnly false.
        let mut golden = Vec::new();
        golden.extend_from_slice(&[0, 0, 0, 0]);
        golden.extend_from_slice(&[0; 8]);
        golden.extend_from_slice(&[0x00, 0x00, 0x75, 0x30]);
        golden.extend_from_slice(&[0; 8]);
        golden.extend_from_slice(&[0, 0, 0, 16]);
        golden.extend_from_slice(&[0; 16]);
        golden.push(0);
        assert_eq!(golden.len(), 45);

        let req = ConnectRequest::read(&mut Bytes::from(golden.clone())).unwrap();
        assert_eq!(
            req,
            ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                time_out: 30_000,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            }
        );
        let mut out = BytesMut::new();
        req.write(&mut out);
        assert_eq!(&out[..], &golden[..]);

        // A pre-3.4 client stops after passwd.
        let old = ConnectRequest::read(&mut Bytes::from(golden[..44].to_vec())).unwrap();
        assert_eq!(old.read_only, None);
    }

    #[test]
    fn header_records_round_trip() {
        round_trip(&RequestHeader { xid: 7, op: 4 });
        round_trip(&ReplyHeader {
            xid: -1,
            zxid: -1,
            err: 0,
        });
        round_trip(&MultiHeader {
            op: -1,
            done: true,
            err: -1,
        });
        round_trip(&AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"alice:secret".to_vec(),
        });
    }

    #[test]
    fn request_records_round_trip() {
        round_trip(&CreateRequest {
            path: "/app/lock-".into(),
            data: b"owner".to_vec(),
            acl: open_acl(),
            flags: 3,
        });
        round_trip(&CreateTtlRequest {
            path: "/ttl".into(),
            data: vec![],
            acl: open_acl(),
            flags: 5,
            ttl: 60_000,
        });
        round_trip(&DeleteRequest {
            path: "/a".into(),
            version: -1,
        });
        round_trip(&ExistsRequest {
            path: "/a".into(),
            watch: true,
        });
        round_trip(&GetDataRequest {
            path: "/a".into(),
            watch: false,
        });
        round_trip(&SetDataRequest {
            path: "/a".into(),
            data: vec![0, 1, 2],
            version: 4,
        });
        round_trip(&GetAclRequest { path: "/a".into() });
        round_trip(&SetAclRequest {
            path: "/a".into(),
            acl: open_acl(),
            version: 0,
        });
        round_trip(&GetChildrenRequest {
            path: "/".into(),
            watch: true,
        });
        round_trip(&GetChildren2Request {
            path: "/".into(),
            watch: false,
        });
        round_trip(&GetAllChildrenNumberRequest { path: "/".into() });
        round_trip(&GetEphemeralsRequest {
            prefix_path: "/app".into(),
        });
        round_trip(&SyncRequest { path: "/".into() });
        round_trip(&CheckVersionRequest {
            path: "/a".into(),
            version: 9,
        });
        round_trip(&AddWatchRequest {
            path: "/a".into(),
            mode: 1,
        });
        round_trip(&RemoveWatchesRequest {
            path: "/a".into(),
            watcher_type: 3,
        });
        round_trip(&CheckWatchesRequest {
            path: "/a".into(),
            watcher_type: 1,
        });
        round_trip(&SetWatches {
            relative_zxid: 77,
            data_watches: paths(),
            exist_watches: vec![],
            child_watches: paths(),
        });
        round_trip(&SetWatches2 {
            relative_zxid: 77,
            data_watches: paths(),
            exist_watches: paths(),
            child_watches: vec![],
            persistent_watches: paths(),
            persistent_recursive_watches: paths(),
        });
    }

    #[test]
    fn response_records_round_trip() {
        round_trip(&CreateResponse {
            path: "/q/item-0000000007".into(),
        });
        round_trip(&Create2Response {
            path: "/c".into(),
            stat: stat(),
        });
        round_trip(&GetDataResponse {
            data: b"hello".to_vec(),
            stat: stat(),
        });
        round_trip(&GetAclResponse {
            acl: open_acl(),
            stat: stat(),
        });
        round_trip(&GetChildrenResponse { children: paths() });
        round_trip(&GetChildren2Response {
            children: paths(),
            stat: stat(),
        });
        round_trip(&GetAllChildrenNumberResponse { total_number: 12 });
        round_trip(&GetEphemeralsResponse {
            ephemerals: paths(),
        });
        round_trip(&SyncResponse { path: "/".into() });
        round_trip(&ErrorResponse { err: -101 });
        round_trip(&WhoAmIResponse {
            client_info: vec![
                ClientInfo {
                    auth_scheme: "ip".into(),
                    user: "127.0.0.1".into(),
                },
                ClientInfo {
                    auth_scheme: "digest".into(),
                    user: "alice".into(),
                },
            ],
        });
        round_trip(&WatcherEvent::new(
            EventType::NodeDataChanged,
            KeeperState::SyncConnected,
            "/a",
        ));
    }

    #[test]
    fn acl_vector_claiming_too_many_entries_is_refused() {
        // A create whose ACL vector claims 1000 entries but carries 20 bytes.
        let mut out = BytesMut::new();
        jute::write_ustring(&mut out, "/a");
        jute::write_buffer(&mut out, b"");
        jute::write_int(&mut out, 1000);
        out.extend_from_slice(&[0; 20]);
        assert!(matches!(
            CreateRequest::read(&mut out.freeze()),
            Err(ProtoError::VectorTooLong { count: 1000, .. })
        ));
    }
}
