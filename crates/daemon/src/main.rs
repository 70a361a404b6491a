//! The `sds-sync` binary: parses the command line, loads the config, sets up logging and hands
//! over to the verb. Thin on purpose; the work lives in the modules and crates below.

mod backoff;
mod cli;
mod config;
mod logging;
mod metrics;
mod notify;
mod run;
mod schedule;
mod service;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sds-sync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            // One line on stderr: the whole context chain, outermost first.
            eprintln!("sds-sync: {e:#}");
            tracing::error!(error = %format!("{e:#}"), "sds-sync failed");
            ExitCode::FAILURE
        }
    }
}
