//! `fsd`: the quorumfs daemon and its command-line client. This file only parses arguments,
//! sets up logging and the runtime, dispatches, and turns the outcome into an exit code.

mod admin;
mod bench;
mod cli;
mod logging;
mod server;
mod shutdown;
mod zk;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fsd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every error arrives as one line that already starts with "fsd: ".
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match &command {
        Command::Run(args) => async {
            let config = cli::config::RunConfig::from_args(args)?;
            let shutdown = shutdown::install()?;
            server::run(config, shutdown).await
        }
        .await
        .map_err(cli::client::prefixed),
        Command::Status(args) => cli::admin_client::status(args),
        Command::Members(args) => cli::admin_client::members(args),
        Command::Bench(args) => bench::run(args).await,
        Command::Ls(_)
        | Command::Get(_)
        | Command::Set(_)
        | Command::Create(_)
        | Command::Rm(_)
        | Command::Stat(_)
        | Command::Watch(_) => cli::client::run(&command).await,
    }
}
