//! `fsd status` and `fsd members`: blocking HTTP/1.1 calls to a node's admin endpoint
//! (`--admin`), printed as tables or passed through as JSON.
//!
//! The wire shapes mirror the admin module's JSON (`GET /status`, `GET /members`,
//! `POST /members`); they are deserialized leniently (`#[serde(default)]`) so that a newer
//! server with extra or missing fields still prints.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use serde::Deserialize;
use serde_json::json;

use crate::cli::args::{MembersAction, MembersArgs, StatusArgs};
use crate::cli::client::prefixed;

/// How long to wait for the TCP connection to the admin endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request limit for reads.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request limit for membership changes, which wait for Raft (and a learner's catch-up).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// One node's own view, as in `GET /status`'s `node` and each member's `status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LocalStatus {
    id: u64,
    role: String,
    term: u64,
    leader: Option<u64>,
    last_log_index: Option<u64>,
    applied_index: Option<u64>,
    znodes: u64,
    sessions: u64,
}

/// One member as the asked node sees it; `status` is null when it could not be reached.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MemberStatus {
    id: u64,
    addr: String,
    voter: bool,
    status: Option<LocalStatus>,
    lag: Option<u64>,
}

/// `GET /status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusReply {
    node: LocalStatus,
    members: Vec<MemberStatus>,
    watches: u64,
    connections: u64,
}

/// An error body: `{"error": "message"}`.
#[derive(Debug, Deserialize)]
struct ErrorReply {
    error: String,
}

/// `fsd status`: every member's role, term, log and applied index and lag, then this node's
/// counts. `--json` prints the endpoint's JSON unchanged.
pub(crate) fn status(args: &StatusArgs) -> anyhow::Result<()> {
    status_inner(args).map_err(prefixed)
}

fn status_inner(args: &StatusArgs) -> anyhow::Result<()> {
    let body = request(&args.admin, "GET", "/status", None)?;
    if args.json {
        return print(&with_newline(body));
    }
    let reply: StatusReply = serde_json::from_str(&body)
        .with_context(|| format!("{}: unexpected /status reply", base_url(&args.admin)))?;
    print(&format_status(&reply))
}

/// `fsd members list|add|promote|remove`.
pub(crate) fn members(args: &MembersArgs) -> anyhow::Result<()> {
    members_inner(args).map_err(prefixed)
}

fn members_inner(args: &MembersArgs) -> anyhow::Result<()> {
    let (change, done) = match &args.action {
        MembersAction::List => {
            let body = request(&args.admin, "GET", "/members", None)?;
            let members: Vec<MemberStatus> = serde_json::from_str(&body)
                .with_context(|| format!("{}: unexpected /members reply", base_url(&args.admin)))?;
            return print(&format_members(&members));
        }
        MembersAction::Add { id, addr } => (
            json!({"AddLearner": {"id": id, "addr": addr}}),
            format!("added {id} ({addr}) as a learner"),
        ),
        MembersAction::Promote { id } => (
            json!({"Promote": {"id": id}}),
            format!("promoted {id} to voter"),
        ),
        MembersAction::Remove { id } => (json!({"Remove": {"id": id}}), format!("removed {id}")),
    };
    request(&args.admin, "POST", "/members", Some(&change))?;
    print(&format!("{done}\n"))
}

/// `http://ADDR` unless `admin` already names a scheme.
fn base_url(admin: &str) -> String {
    let admin = admin.trim_end_matches('/');
    if admin.starts_with("http://") || admin.starts_with("https://") {
        admin.to_string()
    } else {
        format!("http://{admin}")
    }
}

/// Sends one request and returns the body of a 2xx reply. Anything else becomes a one-line
/// error: the server's `{"error": ..}` message when it sent one.
fn request(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<String> {
    let url = format!("{}{path}", base_url(admin));
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(if body.is_some() {
            CHANGE_TIMEOUT
        } else {
            READ_TIMEOUT
        })
        .build();
    let request = agent.request(method, &url);
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match result {
        Ok(response) => response
            .into_string()
            .with_context(|| format!("{url}: reading the reply")),
        Err(ureq::Error::Status(code, response)) => {
            let text = response.into_string().unwrap_or_default();
            let message = match serde_json::from_str::<ErrorReply>(&text) {
                Ok(reply) => reply.error,
                Err(_) if text.trim().is_empty() => format!("HTTP {code}"),
                Err(_) => format!("HTTP {code}: {}", text.trim()),
            };
            Err(anyhow!("{message}"))
        }
        // The transport error already names the URL.
        Err(ureq::Error::Transport(err)) => Err(anyhow!("cannot reach the admin endpoint: {err}")),
    }
}

fn format_status(reply: &StatusReply) -> String {
    let mut rows =
        vec![["ID", "ADDR", "ROLE", "TERM", "LAST_LOG", "APPLIED", "LAG"].map(String::from)];
    for member in &reply.members {
        let (role, term, last_log, applied) = match &member.status {
            Some(status) => (
                status.role.clone(),
                status.term.to_string(),
                opt(status.last_log_index),
                opt(status.applied_index),
            ),
            None => (
                "unreachable".to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
            ),
        };
        rows.push([
            member.id.to_string(),
            member.addr.clone(),
            role,
            term,
            last_log,
            applied,
            opt(member.lag),
        ]);
    }
    let mut text = table(&rows);
    let node = &reply.node;
    let leader = node
        .leader
        .map_or_else(|| "none".to_string(), |id| id.to_string());
    let _ = writeln!(
        text,
        "node {} ({}, leader {leader}): znodes {}  sessions {}  watches {}  connections {}",
        node.id, node.role, node.znodes, node.sessions, reply.watches, reply.connections
    );
    text
}

fn format_members(members: &[MemberStatus]) -> String {
    let rows: Vec<[String; 3]> = members
        .iter()
        .map(|m| {
            [
                m.id.to_string(),
                m.addr.clone(),
                if m.voter { "voter" } else { "learner" }.to_string(),
            ]
        })
        .collect();
    table(&rows)
}

fn opt(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Left-aligned columns two spaces apart, no trailing spaces.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < N {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            } else {
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(err).context("writing to stdout")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{
        "node": {"id":1,"role":"leader","term":3,"leader":1,"last_log_index":120,
                 "applied_index":120,"znodes":12,"sessions":2},
        "members": [
            {"id":1,"addr":"127.0.0.1:2888","voter":true,
             "status":{"id":1,"role":"leader","term":3,"leader":1,"last_log_index":120,
                       "applied_index":120,"znodes":12,"sessions":2},"lag":0},
            {"id":2,"addr":"127.0.0.1:2889","voter":true,"status":null,"lag":null}
        ],
        "watches": 4, "connections": 3
    }"#;

    #[test]
    fn status_table() {
        let reply: StatusReply = serde_json::from_str(STATUS).expect("test JSON parses");
        let text = format_status(&reply);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID  ADDR            ROLE         TERM  LAST_LOG  APPLIED  LAG"
        );
        assert_eq!(
            lines[1],
            "1   127.0.0.1:2888  leader       3     120       120      0"
        );
        assert_eq!(
            lines[2],
            "2   127.0.0.1:2889  unreachable  -     -         -        -"
        );
        assert_eq!(
            lines[3],
            "node 1 (leader, leader 1): znodes 12  sessions 2  watches 4  connections 3"
        );
    }

    #[test]
    fn members_lines() {
        let members: Vec<MemberStatus> = serde_json::from_str(
            r#"[{"id":1,"addr":"a:1","voter":true,"status":null,"lag":null},
                {"id":14,"addr":"b:2","voter":false,"status":null,"lag":5}]"#,
        )
        .expect("test JSON parses");
        assert_eq!(
            format_members(&members),
            "1   a:1  voter\n14  b:2  learner\n"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(base_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(base_url("http://h:1/"), "http://h:1");
    }

    #[test]
    fn unreachable_endpoint_is_one_line() {
        // Port 1 on localhost: nothing listens there in any sane test environment.
        let err =
            request("127.0.0.1:1", "GET", "/status", None).expect_err("nothing listens on port 1");
        let text = format!("{err:#}");
        assert!(
            text.starts_with("cannot reach the admin endpoint: http://127.0.0.1:1/status"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }
}
