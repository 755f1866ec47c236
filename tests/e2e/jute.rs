//! A deliberately tiny, blocking ZooKeeper wire client for what `zookeeper-client` refuses to
//! send: the crate validates paths locally (`"a/b"`, `"/a/"` and `"/a//b"` never leave the
//! process), so the server's own answers to them are tested through this instead.
//!
//! It speaks just enough jute: the connect handshake, create, getData, setData, delete and
//! closeSession, each framed by a 4-byte big-endian length, as ZooKeeper 3.5+ clients do.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const OP_CREATE: i32 = 1;
pub const OP_DELETE: i32 = 2;
pub const OP_EXISTS: i32 = 3;
pub const OP_GET_DATA: i32 = 4;
pub const OP_SET_DATA: i32 = 5;
pub const OP_CLOSE_SESSION: i32 = -11;

/// ZooKeeper error codes the tests look for (`KeeperException.Code`).
pub const OK: i32 = 0;
pub const MARSHALLING_ERROR: i32 = -5;
pub const BAD_ARGUMENTS: i32 = -8;
pub const NO_NODE: i32 = -101;
pub const BAD_VERSION: i32 = -103;
pub const NODE_EXISTS: i32 = -110;

/// A request body under construction.
#[derive(Default)]
pub struct Buf(pub Vec<u8>);

impl Buf {
    pub fn int(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn long(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn boolean(mut self, v: bool) -> Self {
        self.0.push(v as u8);
        self
    }
    pub fn buffer(mut self, b: &[u8]) -> Self {
        self = self.int(b.len() as i32);
        self.0.extend_from_slice(b);
        self
    }
    pub fn string(self, s: &str) -> Self {
        self.buffer(s.as_bytes())
    }
    /// The world:anyone ALL acl list.
    pub fn open_acl(self) -> Self {
        self.int(1).int(31).string("world").string("anyone")
    }
    /// Prefixes the 4-byte length.
    pub fn framed(self) -> Vec<u8> {
        let mut out = (self.0.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&self.0);
        out
    }
}

/// A reply: header fields and the raw body.
#[derive(Debug)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

/// One connected session on one TCP connection.
pub struct RawClient {
    stream: TcpStream,
    next_xid: i32,
    pub session_id: i64,
    pub timeout_ms: i32,
    /// The session's password, as the server sent it.
    pub passwd: Vec<u8>,
}

impl RawClient {
    /// Connects and completes the ConnectRequest/ConnectResponse handshake.
    pub fn connect(addr: SocketAddr) -> io::Result<RawClient> {
        Self::attach(addr, 0, &[0u8; 16])
    }

    /// Connects with session `session_id` and `passwd` (0 for a new session). A server that
    /// answers "expired" (session id 0) gives `ConnectionRefused`.
    pub fn attach(addr: SocketAddr, session_id: i64, passwd: &[u8]) -> io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mut c = RawClient {
            stream,
            next_xid: 1,
            session_id: 0,
            timeout_ms: 0,
            passwd: Vec::new(),
        };
        let req = Buf::default()
            .int(0) // protocolVersion
            .long(0) // lastZxidSeen
            .int(2000) // timeOut
            .long(session_id) // sessionId
            .buffer(passwd) // passwd
            .boolean(false) // readOnly
            .framed();
        c.stream.write_all(&req)?;
        let resp = c.read_frame()?;
        if resp.len() < 4 + 4 + 8 + 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("short ConnectResponse: {resp:?}"),
            ));
        }
        c.timeout_ms = i32::from_be_bytes(resp[4..8].try_into().unwrap());
        c.session_id = i64::from_be_bytes(resp[8..16].try_into().unwrap());
        let plen = i32::from_be_bytes(resp[16..20].try_into().unwrap()).max(0) as usize;
        c.passwd = resp.get(20..20 + plen).unwrap_or_default().to_vec();
        if c.session_id == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "server refused the session (id 0)",
            ));
        }
        Ok(c)
    }

    /// Reads one length-prefixed frame.
    pub fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=64 << 20).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame length {len}"),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Sends `opcode` with `body` and returns its reply, skipping watch notifications
    /// (xid -1) and ping replies (xid -2).
    pub fn call(&mut self, opcode: i32, body: Buf) -> io::Result<Reply> {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut frame = Buf::default().int(xid).int(opcode);
        frame.0.extend_from_slice(&body.0);
        self.stream.write_all(&frame.framed())?;
        loop {
            let f = self.read_frame()?;
            if f.len() < 16 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("short reply: {f:?}"),
                ));
            }
            let rxid = i32::from_be_bytes(f[0..4].try_into().unwrap());
            if rxid == -1 || rxid == -2 {
                continue;
            }
            let zxid = i64::from_be_bytes(f[4..12].try_into().unwrap());
            let err = i32::from_be_bytes(f[12..16].try_into().unwrap());
            if rxid != xid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("reply xid {rxid}, expected {xid}"),
                ));
            }
            return Ok(Reply {
                xid: rxid,
                zxid,
                err,
                body: f[16..].to_vec(),
            });
        }
    }

    /// create (persistent) and return the error code.
    pub fn create(&mut self, path: &str, data: &[u8]) -> io::Result<i32> {
        let body = Buf::default().string(path).buffer(data).open_acl().int(0);
        Ok(self.call(OP_CREATE, body)?.err)
    }

    pub fn get_data(&mut self, path: &str) -> io::Result<i32> {
        Ok(self
            .call(OP_GET_DATA, Buf::default().string(path).boolean(false))?
            .err)
    }

    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> io::Result<i32> {
        Ok(self
            .call(
                OP_SET_DATA,
                Buf::default().string(path).buffer(data).int(version),
            )?
            .err)
    }

    pub fn delete(&mut self, path: &str, version: i32) -> io::Result<i32> {
        Ok(self
            .call(OP_DELETE, Buf::default().string(path).int(version))?
            .err)
    }

    /// Sends raw bytes on the session's connection.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A ping; the server's error code (a ping reply has xid -2).
    pub fn ping(&mut self) -> io::Result<i32> {
        self.stream
            .write_all(&Buf::default().int(-2).int(11).framed())?;
        loop {
            let f = self.read_frame()?;
            if f.len() < 16 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short reply"));
            }
            if i32::from_be_bytes(f[0..4].try_into().unwrap()) == -1 {
                continue; // a watch notification
            }
            return Ok(i32::from_be_bytes(f[12..16].try_into().unwrap()));
        }
    }

    /// closeSession, then drop the connection.
    pub fn close(mut self) -> io::Result<()> {
        self.call(OP_CLOSE_SESSION, Buf::default())?;
        Ok(())
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// Reads from `s` until the peer closes (EOF or reset) or `timeout` passes. `Ok(bytes)` means
/// the connection was closed by the server; `Err` means it was still open at the deadline.
pub fn wait_closed(s: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "connection still open after {timeout:?} ({} bytes received)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .ok();
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted) => continue,
            // Reset or broken pipe: closed by the server.
            Err(_) => return Ok(got),
        }
    }
}
