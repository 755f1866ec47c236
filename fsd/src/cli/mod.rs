//! The command line: raw clap input (`args`), validated run settings (`config`), and the
//! client-side commands that talk to a running node (`client`, `admin_client`).

pub(crate) mod admin_client;
pub(crate) mod args;
pub(crate) mod client;
pub(crate) mod config;
