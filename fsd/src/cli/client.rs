//! The command-line ZooKeeper client: `fsd ls|get|set|create|rm|stat|watch`.
//!
//! Every command opens one session with [`zookeeper_client`] on `--server`, does its work and
//! closes the session politely, so an `--ephemeral` node lives exactly as long as the command.
//! Nothing here is quorumfs-specific: the same commands work against Apache ZooKeeper.
//!
//! Errors come back as one-line [`anyhow::Error`]s such as
//! `fsd: /a: node does not exist (NoNode)`, naming ZooKeeper's error code. Inner helpers
//! build the message without the `fsd: ` prefix; [`prefixed`] adds it once, at the public
//! entry points (here, in `admin_client` and in `bench`).

use std::future::Future;
use std::io::{self, Read, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, Error as ZkError, EventType, SessionState, Stat,
};

use crate::cli::args::{Command, CreateArgs, PathArgs, RmArgs, SetArgs, WatchArgs};

/// How long to wait for a session before giving up on `--server`.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for any single request's reply.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the server to acknowledge closeSession on the way out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Session timeout the CLI asks for; it only matters if the CLI dies without closing.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one client command. `Run`, `Status`, `Members` and `Bench` are not client commands;
/// passing them is a wiring bug and returns an error.
pub(crate) async fn run(cmd: &Command) -> anyhow::Result<()> {
    run_command(cmd).await.map_err(prefixed)
}

/// Flattens `err`'s chain into the CLI's single line, `fsd: outer: inner`, ready for
/// `{:#}` (or `{}`) in main.
pub(crate) fn prefixed(err: anyhow::Error) -> anyhow::Error {
    anyhow!("fsd: {err:#}")
}

async fn run_command(cmd: &Command) -> anyhow::Result<()> {
    // Check flags and read stdin before connecting, so a slow producer cannot outlive the
    // session and a bad flag needs no server.
    let job = match cmd {
        Command::Ls(args) => Job::Ls(args),
        Command::Get(args) => Job::Get(args),
        Command::Stat(args) => Job::Stat(args),
        Command::Set(args) => {
            let data = match &args.data {
                Some(data) => data.clone().into_bytes(),
                None => read_stdin()?,
            };
            Job::Set(args, data)
        }
        Command::Create(args) => Job::Create(args, create_mode(args)?),
        Command::Rm(args) => Job::Rm(args),
        Command::Watch(args) => Job::Watch(args),
        Command::Run(_) | Command::Status(_) | Command::Members(_) | Command::Bench(_) => {
            bail!("internal error: not a client command")
        }
    };
    let zk = connect(job.server()).await?;
    let result = match job {
        Job::Ls(args) => ls(&zk, args).await,
        Job::Get(args) => get(&zk, args).await,
        Job::Stat(args) => stat(&zk, args).await,
        Job::Set(args, data) => set(&zk, args, data).await,
        Job::Create(args, kind) => create(&zk, args, kind).await,
        Job::Rm(args) => rm(&zk, args).await,
        Job::Watch(args) => watch(&zk, args).await,
    };
    close(zk).await;
    result
}

/// A client command with the input it needs gathered before connecting.
enum Job<'a> {
    Ls(&'a PathArgs),
    Get(&'a PathArgs),
    Stat(&'a PathArgs),
    Set(&'a SetArgs, Vec<u8>),
    Create(&'a CreateArgs, CreateKind),
    Rm(&'a RmArgs),
    Watch(&'a WatchArgs),
}

impl Job<'_> {
    fn server(&self) -> &str {
        let server = match self {
            Job::Ls(args) | Job::Get(args) | Job::Stat(args) => &args.server,
            Job::Set(args, _) => &args.server,
            Job::Create(args, _) => &args.server,
            Job::Rm(args) => &args.server,
            Job::Watch(args) => &args.server,
        };
        &server.server
    }
}

/// Opens a session on `server` (a ZooKeeper connect string), failing within
/// [`CONNECT_TIMEOUT`] with a message that says nothing answered.
pub(crate) async fn connect(server: &str) -> anyhow::Result<Client> {
    let connecting = Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_fail_eagerly()
        .connect(server);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(ZkError::NoHosts | ZkError::ConnectionLoss)) => Err(anyhow!(
            "cannot connect to {server}: no ZooKeeper server answered (is fsd running there?)"
        )),
        Ok(Err(err)) => Err(anyhow!("cannot connect to {server}: {}", describe(&err))),
        Err(_elapsed) => Err(anyhow!(
            "cannot connect to {server}: no ZooKeeper session within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Closes `client`'s session and waits (briefly) for the server to acknowledge it, so that the
/// session's ephemerals are gone when the command returns.
pub(crate) async fn close(client: Client) {
    let mut states = client.state_watcher();
    drop(client);
    let closed = async {
        while !states.peek_state().is_terminated() {
            states.changed().await;
        }
    };
    // Best effort: if the server is gone, the session simply expires later.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closed).await;
}

/// Awaits one request, giving up after [`OP_TIMEOUT`] with [`ZkError::Timeout`].
pub(crate) async fn call<T>(
    request: impl Future<Output = Result<T, ZkError>>,
) -> Result<T, ZkError> {
    tokio::time::timeout(OP_TIMEOUT, request)
        .await
        .unwrap_or(Err(ZkError::Timeout))
}

/// [`call`], turning a ZooKeeper error into the CLI's one-line message about `path`.
async fn op<T>(path: &str, request: impl Future<Output = Result<T, ZkError>>) -> anyhow::Result<T> {
    call(request).await.map_err(|err| zk_error(path, &err))
}

/// The CLI's message for a ZooKeeper error on `path`: `PATH: what happened (Code)`.
pub(crate) fn zk_error(path: &str, err: &ZkError) -> anyhow::Error {
    anyhow!("{path}: {}", describe(err))
}

/// Describes a ZooKeeper error as `what happened (Code)`, with ZooKeeper's own code names
/// (KeeperException.Code) so users can look them up.
///
/// `zookeeper_client::Error` is `#[non_exhaustive]`, so unlike our own error mappings this
/// `match` needs a final arm; it falls back to the library's text and variant name.
pub(crate) fn describe(err: &ZkError) -> String {
    let (what, code): (String, &str) = match err {
        ZkError::NoNode => ("node does not exist".into(), "NoNode"),
        ZkError::NodeExists => ("node already exists".into(), "NodeExists"),
        ZkError::BadVersion => ("version does not match".into(), "BadVersion"),
        ZkError::NotEmpty => ("node has children".into(), "NotEmpty"),
        ZkError::NoChildrenForEphemerals => (
            "ephemeral nodes cannot have children".into(),
            "NoChildrenForEphemerals",
        ),
        ZkError::NoAuth => ("not authorized".into(), "NoAuth"),
        ZkError::AuthFailed => ("authentication failed".into(), "AuthFailed"),
        ZkError::InvalidAcl => ("invalid ACL".into(), "InvalidACL"),
        ZkError::SessionExpired => ("session expired".into(), "SessionExpired"),
        ZkError::SessionMoved => ("session moved to another server".into(), "SessionMoved"),
        ZkError::ConnectionLoss => ("connection to the server lost".into(), "ConnectionLoss"),
        ZkError::NotReadOnly => ("server is read-only".into(), "NotReadOnly"),
        ZkError::NoWatcher => ("no such watch".into(), "NoWatcher"),
        ZkError::QuotaExceeded => ("quota exceeded".into(), "QuotaExceeded"),
        ZkError::Throttled => ("request throttled by the server".into(), "Throttled"),
        ZkError::MarshallingError => (
            "server could not decode the request".into(),
            "MarshallingError",
        ),
        ZkError::Unimplemented => (
            "operation not implemented by the server".into(),
            "Unimplemented",
        ),
        ZkError::ReconfigDisabled => ("reconfiguration disabled".into(), "ReconfigDisabled"),
        ZkError::Timeout => ("timed out".into(), "OperationTimeout"),
        ZkError::NoHosts => ("no server reachable".into(), "ConnectionLoss"),
        ZkError::ClientClosed => ("session closed".into(), "ClientClosed"),
        ZkError::BadArguments(why) => ((**why).to_string(), "BadArguments"),
        ZkError::UnexpectedErrorCode(code) => {
            return format!("server replied with unknown error code {code}");
        }
        other => return other.to_string(),
    };
    format!("{what} ({code})")
}

async fn ls(zk: &Client, args: &PathArgs) -> anyhow::Result<()> {
    let mut children = op(&args.path, zk.list_children(&args.path)).await?;
    children.sort_unstable();
    let mut text = String::new();
    for child in children {
        text.push_str(&child);
        text.push('\n');
    }
    write_stdout(text.as_bytes())
}

async fn get(zk: &Client, args: &PathArgs) -> anyhow::Result<()> {
    let (data, _stat) = op(&args.path, zk.get_data(&args.path)).await?;
    write_stdout(&data)
}

async fn set(zk: &Client, args: &SetArgs, data: Vec<u8>) -> anyhow::Result<()> {
    op(&args.path, zk.set_data(&args.path, &data, args.version)).await?;
    Ok(())
}

/// What `create`'s flags ask for, checked before connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CreateKind {
    mode: CreateMode,
    ttl: Option<Duration>,
}

fn create_mode(args: &CreateArgs) -> anyhow::Result<CreateKind> {
    if args.container && args.sequential {
        bail!("{}: a container cannot be sequential", args.path);
    }
    let ttl = match args.ttl {
        None => None,
        Some(ms) if ms > 0 => Some(Duration::from_millis(ms.unsigned_abs())),
        Some(ms) => bail!(
            "{}: --ttl must be a positive number of ms, not {ms}",
            args.path
        ),
    };
    let mode = match (args.container, args.ephemeral, args.sequential) {
        (true, _, _) => CreateMode::Container,
        (false, true, true) => CreateMode::EphemeralSequential,
        (false, true, false) => CreateMode::Ephemeral,
        (false, false, true) => CreateMode::PersistentSequential,
        (false, false, false) => CreateMode::Persistent,
    };
    Ok(CreateKind { mode, ttl })
}

async fn create(zk: &Client, args: &CreateArgs, kind: CreateKind) -> anyhow::Result<()> {
    let data = args.data.as_deref().unwrap_or("").as_bytes();
    let mut options = kind.mode.with_acls(Acls::anyone_all());
    if let Some(ttl) = kind.ttl {
        options = options.with_ttl(ttl);
    }
    let (_stat, sequence) = op(&args.path, zk.create(&args.path, data, &options)).await?;
    let created = if args.sequential {
        format!("{}{sequence}", args.path)
    } else {
        args.path.clone()
    };
    write_stdout(format!("{created}\n").as_bytes())
}

async fn rm(zk: &Client, args: &RmArgs) -> anyhow::Result<()> {
    if !args.recursive {
        return op(&args.path, zk.delete(&args.path, args.version)).await;
    }
    // Post-order walk with an explicit stack: a node is deleted after all its children.
    // Nodes that vanish concurrently are fine; only the named path must exist.
    let root = args.path.trim_end_matches('/');
    let root = if root.is_empty() { "/" } else { root };
    let mut stack: Vec<(String, bool)> = vec![(root.to_string(), false)];
    while let Some((path, children_done)) = stack.pop() {
        if children_done {
            if path == "/" {
                continue; // the root cannot be deleted; emptying it is all `rm -r /` can do
            }
            match call(zk.delete(&path, None)).await {
                Ok(()) => {}
                Err(ZkError::NoNode) if path != root => {} // deleted concurrently
                Err(err) => return Err(zk_error(&path, &err)),
            }
            continue;
        }
        let children = match call(zk.list_children(&path)).await {
            Ok(children) => children,
            Err(ZkError::NoNode) if path != root => continue, // deleted concurrently
            Err(err) => return Err(zk_error(&path, &err)),
        };
        stack.push((path.clone(), true));
        for child in children {
            let child_path = if path == "/" {
                format!("/{child}")
            } else {
                format!("{path}/{child}")
            };
            // ZooKeeper's own /zookeeper subtree is not ours to delete.
            if child_path == "/zookeeper" {
                continue;
            }
            stack.push((child_path, false));
        }
    }
    Ok(())
}

async fn stat(zk: &Client, args: &PathArgs) -> anyhow::Result<()> {
    let stat = op(&args.path, zk.check_stat(&args.path))
        .await?
        .ok_or_else(|| zk_error(&args.path, &ZkError::NoNode))?;
    write_stdout(format_stat(&stat).as_bytes())
}

/// Formats a Stat as zkCli's `stat` does: one `name = value` line per field, in zkCli's
/// order, zxids and ephemeralOwner in `0x` hex, times as Java's `Date.toString()` in UTC.
pub(crate) fn format_stat(stat: &Stat) -> String {
    format!(
        "cZxid = {:#x}\nctime = {}\nmZxid = {:#x}\nmtime = {}\npZxid = {:#x}\ncversion = {}\n\
         dataVersion = {}\naclVersion = {}\nephemeralOwner = {:#x}\ndataLength = {}\n\
         numChildren = {}\n",
        stat.czxid,
        java_date(stat.ctime),
        stat.mzxid,
        java_date(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    )
}

/// Milliseconds since the epoch as Java's `Date.toString()` prints them in UTC:
/// `Thu Jan 01 00:00:00 UTC 1970`.
fn java_date(ms: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(month - 1) as usize];
    format!(
        "{weekday} {month} {day:02} {:02}:{:02}:{:02} UTC {year}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

async fn watch(zk: &Client, args: &WatchArgs) -> anyhow::Result<()> {
    let mode = if args.recursive {
        AddWatchMode::PersistentRecursive
    } else {
        AddWatchMode::Persistent
    };
    let mut watcher = op(&args.path, zk.watch(&args.path, mode)).await?;
    eprintln!(
        "watching {}{} (Ctrl-C to stop)",
        args.path,
        if args.recursive {
            " and its subtree"
        } else {
            ""
        }
    );
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            stopped = &mut stop => return stopped,
            event = watcher.changed() => event,
        };
        if event.event_type == EventType::Session {
            match event.session_state {
                SessionState::Disconnected => {
                    eprintln!("disconnected from {}; retrying", args.server.server)
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    eprintln!("reconnected; events during the outage may be missing")
                }
                // Terminal: the watcher panics if polled again, so stop here.
                SessionState::Expired => bail!("{}: session expired (SessionExpired)", args.path),
                SessionState::AuthFailed => {
                    bail!("{}: authentication failed (AuthFailed)", args.path)
                }
                SessionState::Closed => bail!("{}: session closed", args.path),
            }
            continue;
        }
        let line = format!("{} {}\n", event.event_type, event.path);
        if !write_stdout_line(line.as_bytes())? {
            return Ok(()); // the reader went away (`fsd watch /a | head -1`)
        }
    }
}

/// Resolves when the user asks us to stop: Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut data)
        .context("reading data from stdin")?;
    Ok(data)
}

/// Writes all of `bytes` to stdout. A closed pipe is not an error for a CLI.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    write_stdout_line(bytes).map(|_| ())
}

/// Writes and flushes; `Ok(false)` when the reader has gone away.
fn write_stdout_line(bytes: &[u8]) -> anyhow::Result<bool> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(err).context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::ServerArg;

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_700_000_000_000), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn stat_is_in_zkcli_order_and_hex() {
        let stat = Stat {
            czxid: 0x10,
            mzxid: 0x11,
            pzxid: 0x12,
            ctime: 0,
            mtime: 0,
            version: 3,
            cversion: 2,
            aversion: 0,
            ephemeral_owner: 0x1000_0000_0000_0001,
            data_length: 5,
            num_children: 1,
        };
        let text = format_stat(&stat);
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.split(" = ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            [
                "cZxid",
                "ctime",
                "mZxid",
                "mtime",
                "pZxid",
                "cversion",
                "dataVersion",
                "aclVersion",
                "ephemeralOwner",
                "dataLength",
                "numChildren"
            ]
        );
        assert!(text.contains("cZxid = 0x10\n"));
        assert!(text.contains("ephemeralOwner = 0x1000000000000001\n"));
        assert!(text.contains("dataVersion = 3\n"));
        assert!(text.contains("ctime = Thu Jan 01 00:00:00 UTC 1970\n"));
    }

    #[test]
    fn errors_name_the_zookeeper_code() {
        assert_eq!(
            format!("{:#}", prefixed(zk_error("/a", &ZkError::NoNode))),
            "fsd: /a: node does not exist (NoNode)"
        );
        assert_eq!(
            describe(&ZkError::BadVersion),
            "version does not match (BadVersion)"
        );
    }

    fn create_args(
        ephemeral: bool,
        sequential: bool,
        container: bool,
        ttl: Option<i64>,
    ) -> CreateArgs {
        CreateArgs {
            path: "/a".into(),
            data: None,
            ephemeral,
            sequential,
            container,
            ttl,
            server: ServerArg {
                server: "127.0.0.1:2181".into(),
            },
        }
    }

    #[test]
    fn create_modes() {
        let kind = |e, s, c, t| {
            create_mode(&create_args(e, s, c, t))
                .map(|k| (k.mode, k.ttl))
                .ok()
        };
        assert_eq!(
            kind(false, false, false, None),
            Some((CreateMode::Persistent, None))
        );
        assert_eq!(
            kind(true, true, false, None),
            Some((CreateMode::EphemeralSequential, None))
        );
        assert_eq!(
            kind(false, false, true, None),
            Some((CreateMode::Container, None))
        );
        assert_eq!(
            kind(false, true, false, Some(50)),
            Some((
                CreateMode::PersistentSequential,
                Some(Duration::from_millis(50))
            ))
        );
        assert_eq!(kind(false, false, false, Some(0)), None);
        assert_eq!(kind(false, true, true, None), None);
    }
}
