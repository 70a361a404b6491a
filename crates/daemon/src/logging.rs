//! Logging setup: human-readable text or JSON lines, filtered by `[log] level` or `RUST_LOG`.

use crate::config::{LogFormat, LogSection};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogSection) -> anyhow::Result<()> {
    // odbc-api logs every ODBC diagnostic as an unstructured WARN, unscrubbed (it can carry
    // data values); the ODBC source puts the same diagnostics, scrubbed of secrets, into its
    // errors. So they are off whatever the level, unless RUST_LOG names odbc_api itself.
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => {
            let names_odbc_api = s.contains("odbc_api");
            let filter = EnvFilter::try_new(s)?;
            if names_odbc_api {
                filter
            } else {
                filter.add_directive("odbc_api=off".parse()?)
            }
        }
        _ => EnvFilter::try_new(&cfg.level)
            .map_err(|e| anyhow::anyhow!("config key log.level: {e}"))?
            .add_directive("odbc_api=off".parse()?),
    };
    // Logs go to stderr so that stdout stays for command output (status, dry-run reports).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("{e}"))
}
