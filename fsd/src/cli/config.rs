//! Validated settings for `fsd run`: the TOML file and the flags merged (flags win), checked,
//! and defaults filled in. Everything downstream takes a [`RunConfig`], never raw args.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use quorumfs_ensemble::NodeConfig;
use serde::Deserialize;

use super::args::RunArgs;

/// The settings a TOML config file may hold: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    data: Option<PathBuf>,
    peer_listen: Option<String>,
    client_listen: Option<String>,
    admin_listen: Option<String>,
    members: Option<String>,
    join: Option<String>,
    mount: Option<PathBuf>,
    session_timeout: Option<u64>,
    tick_ms: Option<u64>,
    snapshot_every: Option<u64>,
    super_digest: Option<String>,
    max_watches_per_connection: Option<usize>,
}

/// Everything `fsd run` needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct RunConfig {
    /// The replica's settings.
    pub node: NodeConfig,
    /// ZooKeeper client port.
    pub client_listen: SocketAddr,
    /// HTTP admin endpoint.
    pub admin_listen: SocketAddr,
    /// Where to mount the tree, if anywhere.
    pub mount: Option<PathBuf>,
    /// This host's own session timeout (the mount's session).
    pub session_timeout: Duration,
    /// ZooKeeper tick: client timeouts are negotiated into [2, 20] ticks.
    pub tick: Duration,
    /// ZooKeeper's super-user digest, `user:base64hash`.
    pub super_digest: Option<String>,
    /// Watches one client connection may hold before it is closed.
    pub max_watches_per_connection: usize,
}

/// The data directory used when none is given.
pub(crate) fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/quorumfs");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("quorumfs");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/quorumfs"),
        None => PathBuf::from("quorumfs-data"),
    }
}

fn parse_addr(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .with_context(|| format!("--{what} {s:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("--{what} {s:?} resolves to no address"))
}

/// Parses `1=host:port,2=host:port`.
fn parse_members(s: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut members = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("--members entry {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("--members id {id:?} is not a number"))?;
        if id == 0 {
            bail!("--members: node ids start at 1");
        }
        parse_addr("members", addr.trim())?;
        if members.insert(id, addr.trim().to_string()).is_some() {
            bail!("--members names node {id} twice");
        }
    }
    if members.is_empty() {
        bail!("--members is empty");
    }
    Ok(members)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl RunConfig {
    /// Merges the config file (if any) and the flags, validates, and fills in defaults.
    pub(crate) fn from_args(args: &RunArgs) -> anyhow::Result<RunConfig> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let id = args.id.or(file.id).unwrap_or(1);
        if id == 0 {
            bail!("--id must be at least 1");
        }
        let data = args
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(default_data_dir);
        let peer = args
            .peer_listen
            .clone()
            .or(file.peer_listen)
            .unwrap_or_else(|| "127.0.0.1:2888".into());
        let peer_listen = parse_addr("peer-listen", &peer)?;
        let client = args
            .client_listen
            .clone()
            .or(file.client_listen)
            .unwrap_or_else(|| "127.0.0.1:2181".into());
        let admin = args
            .admin_listen
            .clone()
            .or(file.admin_listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let join = args.join.clone().or(file.join);
        let members = match args.members.clone().or(file.members) {
            Some(m) => parse_members(&m)?,
            None => BTreeMap::new(),
        };
        if join.is_some() && !members.is_empty() {
            bail!("--join and --members exclude each other: a node either forms the cluster or joins it");
        }
        if !members.is_empty() && !members.contains_key(&id) {
            bail!("--members does not name this node's --id {id}");
        }
        let members = if members.is_empty() && join.is_none() {
            // The embedded single-node default: a one-voter ensemble.
            BTreeMap::from([(id, peer.clone())])
        } else {
            members
        };
        let advertise = members.get(&id).cloned().unwrap_or(peer);
        let tick_ms = args.tick_ms.or(file.tick_ms).unwrap_or(2000);
        if !(10..=60_000).contains(&tick_ms) {
            bail!("--tick-ms must be between 10 and 60000");
        }
        let session_timeout = args
            .session_timeout
            .or(file.session_timeout)
            .unwrap_or(10_000);
        if session_timeout < 100 {
            bail!("--session-timeout must be at least 100 ms");
        }
        let super_digest = args.super_digest.clone().or(file.super_digest);
        if let Some(d) = &super_digest {
            if !d
                .split_once(':')
                .is_some_and(|(user, hash)| !user.is_empty() && !hash.is_empty())
            {
                bail!("--super-digest must be USER:BASE64HASH");
            }
        }
        let max_watches_per_connection = args
            .max_watches_per_connection
            .or(file.max_watches_per_connection)
            .unwrap_or(crate::zk::WatchLimits::DEFAULT_MAX_WATCHES);
        if max_watches_per_connection == 0 {
            bail!("--max-watches-per-connection must be at least 1");
        }
        let mut node = NodeConfig::new(id, data, peer_listen);
        node.advertise = advertise;
        node.members = members;
        node.join = join;
        node.snapshot_every = args
            .snapshot_every
            .or(file.snapshot_every)
            .unwrap_or(10_000)
            .max(100);
        node.keeper_period = Duration::from_millis((tick_ms / 2).clamp(10, 250));
        Ok(RunConfig {
            node,
            client_listen: parse_addr("client-listen", &client)?,
            admin_listen: parse_addr("admin-listen", &admin)?,
            mount: args.mount.clone().or(file.mount),
            session_timeout: Duration::from_millis(session_timeout),
            tick: Duration::from_millis(tick_ms),
            super_digest,
            max_watches_per_connection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_reject() {
        let m = parse_members("1=127.0.0.1:1,2=127.0.0.1:2").unwrap();
        assert_eq!(m.len(), 2);
        assert!(parse_members("1=127.0.0.1:1,1=127.0.0.1:2").is_err());
        assert!(parse_members("x=127.0.0.1:1").is_err());
        assert!(parse_members("0=127.0.0.1:1").is_err());
        assert!(parse_members("1").is_err());
    }

    #[test]
    fn single_node_default_and_flag_override() {
        let args = RunArgs {
            data: Some("/tmp/x".into()),
            ..Default::default()
        };
        let c = RunConfig::from_args(&args).unwrap();
        assert_eq!(c.node.members.len(), 1);
        assert_eq!(c.node.id, 1);
        assert_eq!(c.client_listen.port(), 2181);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fsd.toml");
        std::fs::write(
            &file,
            "id = 2\nmembers = \"2=127.0.0.1:3000\"\nclient-listen = \"127.0.0.1:3001\"\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(file.clone()),
            client_listen: Some("127.0.0.1:3002".into()),
            ..Default::default()
        };
        let c = RunConfig::from_args(&args).unwrap();
        assert_eq!(c.node.id, 2);
        assert_eq!(c.client_listen.port(), 3002);
        assert_eq!(c.node.advertise, "127.0.0.1:3000");

        std::fs::write(&file, "bogus = 1\n").unwrap();
        assert!(RunConfig::from_args(&RunArgs {
            config: Some(file),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn join_and_members_exclude_each_other() {
        let args = RunArgs {
            join: Some("127.0.0.1:1".into()),
            members: Some("1=127.0.0.1:2".into()),
            ..Default::default()
        };
        assert!(RunConfig::from_args(&args).is_err());
    }
}
