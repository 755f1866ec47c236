//! Raw command-line input, as clap parses it. Validation into [`super::config`] types happens
//! elsewhere (ripgrep's low/high split): nothing here checks more than syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// quorumfs: a ZooKeeper-compatible coordination service you can mount.
#[derive(Debug, Parser)]
#[command(name = "fsd", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node (with no cluster flags: a single-node ensemble with the default data dir).
    Run(RunArgs),
    /// Show every member's role, term, log and applied index, lag, and the node's counts.
    Status(StatusArgs),
    /// List or change the cluster's members online.
    Members(MembersArgs),
    /// List a znode's children.
    Ls(PathArgs),
    /// Print a znode's data.
    Get(PathArgs),
    /// Replace a znode's data.
    Set(SetArgs),
    /// Create a znode.
    Create(CreateArgs),
    /// Delete a znode.
    Rm(RmArgs),
    /// Print a znode's Stat.
    Stat(PathArgs),
    /// Print watch events on a znode until interrupted.
    Watch(WatchArgs),
    /// Measure write and read throughput and latency against ZooKeeper-protocol servers.
    Bench(BenchArgs),
}

#[derive(Debug, Args, Default, Clone)]
pub(crate) struct RunArgs {
    /// TOML file with the same settings as the flags; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (> 0).
    #[arg(long)]
    pub id: Option<u64>,
    /// Data directory (default: $XDG_DATA_HOME/quorumfs or ~/.local/share/quorumfs, or
    /// /var/lib/quorumfs as root).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Address for Raft and peer traffic.
    #[arg(long)]
    pub peer_listen: Option<String>,
    /// Address for ZooKeeper clients (default 127.0.0.1:2181).
    #[arg(long)]
    pub client_listen: Option<String>,
    /// Address for the HTTP admin endpoint (default 127.0.0.1:8080).
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Initial voters: ID=HOST:PORT,... (peer addresses).
    #[arg(long)]
    pub members: Option<String>,
    /// Join an existing cluster as a learner through this member's peer address.
    #[arg(long)]
    pub join: Option<String>,
    /// Mount the tree here (FUSE).
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// Session timeout in ms for this host's own session (default 10000).
    #[arg(long)]
    pub session_timeout: Option<u64>,
    /// ZooKeeper tick in ms: client session timeouts are negotiated into [2, 20] ticks
    /// (default 2000, as ZooKeeper's tickTime).
    #[arg(long)]
    pub tick_ms: Option<u64>,
    /// Entries between snapshots (default 10000).
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// ZooKeeper's super user: `USER:BASE64HASH` as `fsd` prints for `addAuth digest
    /// USER:PASSWORD` (base64 of SHA-1 of `USER:PASSWORD`); a client authenticated with it
    /// passes every ACL.
    #[arg(long)]
    pub super_digest: Option<String>,
    /// Watches one client connection may hold (default 100000); a request that would pass
    /// it closes that connection.
    #[arg(long)]
    pub max_watches_per_connection: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Admin endpoint to ask.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub admin: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MembersArgs {
    /// Admin endpoint to ask.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    pub admin: String,
    #[command(subcommand)]
    pub action: MembersAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MembersAction {
    /// List members.
    List,
    /// Add a node as a learner.
    Add {
        /// Node id.
        id: u64,
        /// Its peer address.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Node id.
        id: u64,
    },
    /// Remove a node.
    Remove {
        /// Node id.
        id: u64,
    },
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ServerArg {
    /// ZooKeeper client port to talk to.
    #[arg(long, default_value = "127.0.0.1:2181", global = true)]
    pub server: String,
}

#[derive(Debug, Args)]
pub(crate) struct PathArgs {
    /// Znode path.
    pub path: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// Znode path.
    pub path: String,
    /// New data (read from stdin when absent).
    pub data: Option<String>,
    /// Only if the znode has this version.
    #[arg(long)]
    pub version: Option<i32>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Znode path (the prefix, for --sequential).
    pub path: String,
    /// Initial data (empty when absent).
    pub data: Option<String>,
    /// Delete it when this client's session ends.
    #[arg(long)]
    pub ephemeral: bool,
    /// Append the parent's sequence number to the name.
    #[arg(long)]
    pub sequential: bool,
    /// A container: deleted once its last child is.
    #[arg(long, conflicts_with_all = ["ephemeral", "ttl"])]
    pub container: bool,
    /// Delete it after MS milliseconds without changes or children.
    #[arg(long, conflicts_with = "ephemeral")]
    pub ttl: Option<i64>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Znode path.
    pub path: String,
    /// Only if the znode has this version.
    #[arg(long, conflicts_with = "recursive")]
    pub version: Option<i32>,
    /// Delete the whole subtree.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Znode path.
    pub path: String,
    /// Watch the whole subtree (persistent recursive watch).
    #[arg(long)]
    pub recursive: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Client ports of the servers to load (comma separated).
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub servers: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Only reads (getData) instead of writes (setData).
    #[arg(long)]
    pub reads: bool,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}
