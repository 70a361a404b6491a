//! Logging setup: human-readable text or JSON lines, filtered by `[log] level` or `RUST_LOG`.

use crate::config::{LogFormat, LogSection};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogSection) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(s)?,
        _ => EnvFilter::try_new(&cfg.level)
            .map_err(|e| anyhow::anyhow!("config key log.level: {e}"))?
            // odbc-api logs every ODBC diagnostic as an unstructured WARN, unscrubbed; the ODBC
            // source puts the same diagnostics, scrubbed of secrets, into its errors.
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
