//! Names of the metrics the ensemble records (through the `metrics` facade; `fsd` installs
//! the Prometheus exporter).

/// Counter: writes committed through this node.
pub const PROPOSALS: &str = "quorumfs_proposals_total";
/// Histogram: seconds from proposing a write to its local apply.
pub const PROPOSAL_SECONDS: &str = "quorumfs_proposal_commit_seconds";
