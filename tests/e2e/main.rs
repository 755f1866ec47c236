//! End-to-end tests: they start real `fsd` processes (the binary Cargo builds for this package)
//! on loopback and talk to them the way users do — the ZooKeeper client port (through the
//! `zookeeper-client` crate, Debian's `zkCli.sh`, and raw bytes), the admin HTTP endpoint, and
//! the `fsd` command-line client, plus kazoo's own Python test suite (`kazoo_suite`).
//!
//! One test binary with a shared harness, as ripgrep's `tests/tests.rs` and `util.rs`:
//! - `harness`: clusters, nodes, processes, readiness, polling;
//! - `jute`: a raw wire client for requests `zookeeper-client` refuses to send;
//! - `netns`: test hosts in network namespaces, for partitions and one-way drops;
//! - `lazyfs`: a forgetful FUSE passthrough for power-loss tests (`power_loss`);
//! - `zk`: helpers for `zkCli.sh`.
//!
//! Each test starts its own cluster; `.config/nextest.toml` runs at most two at once.

mod harness;
mod jute;
mod lazyfs;
mod netns;
mod zk;

mod bad_input;
mod basic;
mod cli;
mod corruption;
mod crash;
mod differential;
mod kazoo_suite;
mod lagging;
mod learner;
mod mount;
mod mount_safety;
mod partition;
mod power_loss;
mod recipes;
mod sessions;
mod snapshot;
mod zkcli;
