//! The `sds-sync` binary: parses the command line, loads the config, sets up logging and hands
//! over to the verb. Thin on purpose; the work lives in the modules and crates below.

mod backoff;
mod baseline;
mod check;
mod cli;
mod config;
mod delivery;
mod logging;
mod metrics;
mod notify;
mod run;
mod schedule;
mod service;
mod status;

use clap::Parser;
use std::process::ExitCode;

/// Marks an error that is already in the log in full (a failed run's `run failed` line): the
/// CLI exits non-zero without printing it a second time. Displays as nothing, so
/// [`one_line`] skips it.
#[derive(Debug)]
pub struct AlreadyLogged;

impl std::fmt::Display for AlreadyLogged {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// An error and its causes on one line, outermost first. Causes whose text the previous message
/// already includes (errors that format their source into their own message) are not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Caps glibc's malloc arenas at two. Each run reads, builds and renders on short-lived
/// threads, and glibc gives each new thread its own arena (up to eight per core), each keeping
/// the freed pages of its own high-water mark: the soak of issue 19 saw the daemon's RSS creep
/// up spread over ~15 arenas while the live heap stayed flat. Two arenas are enough for the
/// reader and the builder not to contend. An admin's own `MALLOC_ARENA_MAX` wins.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a glibc tunable; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    // Snapshot files and the state DB hold student data: owner-only, whatever the umask of the
    // shell, container or unit that started us.
    // SAFETY: umask only swaps the process file-mode mask; it cannot fail or touch memory.
    unsafe {
        libc::umask(0o077);
    }
    cap_malloc_arenas();
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
    let result = runtime.block_on(cli::dispatch(args));
    // A delivery abandoned at shutdown may still sit in a blocking thread (a hung mount): do not
    // wait for it, or SIGTERM would not end the process within the grace period.
    runtime.shutdown_timeout(std::time::Duration::from_millis(250));
    match result {
        Ok(code) => code,
        // `sds-sync status | head`: the reader went away; nothing is wrong with us.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        // Unless `[log] level` filters that line out.
        Err(e)
            if e.downcast_ref::<AlreadyLogged>().is_some()
                && tracing::enabled!(target: "sds_sync::run", tracing::Level::ERROR) =>
        {
            ExitCode::FAILURE
        }
        Err(e) => {
            // Once, on one line: the whole context chain, outermost first. Not also as a log
            // event: the two would say the same thing twice.
            eprintln!("sds-sync: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn one_line_keeps_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        // A source formatted into its parent's message is not repeated.
        let inner = anyhow::Error::new(io).context("cannot open /x: No such file");
        let e = Err::<(), _>(inner)
            .context("cannot load the configuration")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "cannot load the configuration: cannot open /x: No such file"
        );
        let e = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(one_line(&e), "outer: root cause");
    }
}
