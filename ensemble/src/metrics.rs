//! Names of the metrics the ensemble records (through the `metrics` facade; `fsd` installs
//! the Prometheus exporter).

/// Counter: writes committed through this node.
pub const PROPOSALS: &str = "quorumfs_proposals_total";
/// Histogram: seconds from proposing a write to its local apply.
pub const PROPOSAL_SECONDS: &str = "quorumfs_proposal_commit_seconds";
/// Counter: group commits of the Raft log (one flush and fdatasync covering every append,
/// vote, truncation and purge queued meanwhile).
pub const LOG_SYNCS: &str = "quorumfs_log_syncs_total";
/// Histogram: seconds one group commit of the Raft log takes (sled's flush plus the fsyncs).
pub const LOG_SYNC_SECONDS: &str = "quorumfs_log_sync_seconds";
