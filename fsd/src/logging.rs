//! Logging setup: tracing to stderr, filtered by RUST_LOG (default `info` for fsd itself,
//! `warn` for dependencies, which are chatty).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,quorumfs_fsd=info,quorumfs_ensemble=info,fsd=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
