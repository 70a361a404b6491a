//! `sds-sync status`: what the state directory says, for people (a short text) or scripts (JSON).

use chrono::{DateTime, SecondsFormat, Utc};
use sds_store::{OutboxEntry, RunRecord, Snapshot, Store};
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct SnapshotView {
    id: i64,
    status: String,
    format: String,
    created_at: String,
    total_rows: u64,
    files: Vec<FileView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guard: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct FileView {
    name: String,
    rows: u64,
    bytes: u64,
    hash: String,
}

#[derive(Serialize)]
struct RunView {
    id: i64,
    started_at: String,
    finished_at: Option<String>,
    outcome: String,
    snapshot_id: Option<i64>,
    error: Option<String>,
    files: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct DeliveryView {
    destination: String,
    snapshot_id: i64,
    status: String,
    attempts: u32,
    next_attempt_at: String,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct StatusView {
    current: Option<SnapshotView>,
    held: Vec<SnapshotView>,
    pending_deliveries: Vec<DeliveryView>,
    /// Deliveries that stopped retrying (permanent error or out of attempts), newest first. The
    /// current snapshot is queued again for them at the next start, reload or `once`.
    failed_deliveries: Vec<DeliveryView>,
    recent_runs: Vec<RunView>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn snapshot(s: Snapshot) -> SnapshotView {
    SnapshotView {
        id: s.id.0,
        status: s.status.as_str().to_owned(),
        format: s.format,
        created_at: ts(s.created_at),
        total_rows: s.total_rows,
        files: s
            .files
            .into_iter()
            .map(|f| FileView {
                name: f.name,
                rows: f.rows,
                bytes: f.bytes,
                hash: f.hash,
            })
            .collect(),
        guard: s.guard_json,
    }
}

fn run(r: RunRecord) -> RunView {
    RunView {
        id: r.id.0,
        started_at: ts(r.started_at),
        finished_at: r.finished_at.map(ts),
        outcome: r.outcome.as_str().to_owned(),
        snapshot_id: r.snapshot_id.map(|s| s.0),
        error: r.error,
        files: r.rows_json,
    }
}

fn delivery(o: OutboxEntry) -> DeliveryView {
    DeliveryView {
        destination: o.destination,
        snapshot_id: o.snapshot_id.0,
        status: o.status.as_str().to_owned(),
        attempts: o.attempts,
        next_attempt_at: ts(o.next_attempt_at),
        last_error: o.last_error,
    }
}

/// `status` on a state directory no sds-sync has used yet (it is not created for this).
pub fn show_nothing_yet(dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let view = StatusView {
            current: None,
            held: Vec::new(),
            pending_deliveries: Vec::new(),
            failed_deliveries: Vec::new(),
            recent_runs: Vec::new(),
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        writeln!(
            out,
            "state directory {}: no sds-sync run has used it yet",
            dir.display()
        )?;
    }
    Ok(())
}

pub async fn show(store: &Store, json: bool, runs: u32) -> anyhow::Result<()> {
    let view = StatusView {
        current: store.current().await?.map(snapshot),
        held: store
            .held_snapshots()
            .await?
            .into_iter()
            .map(snapshot)
            .collect(),
        pending_deliveries: store
            .pending_deliveries()
            .await?
            .into_iter()
            .map(delivery)
            .collect(),
        failed_deliveries: store
            .failed_deliveries(10)
            .await?
            .into_iter()
            .map(delivery)
            .collect(),
        recent_runs: store
            .recent_runs(runs)
            .await?
            .into_iter()
            .map(run)
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
        return Ok(());
    }
    match &view.current {
        Some(s) => {
            writeln!(
                out,
                "current snapshot: {} ({}, {}, {} rows)",
                s.id, s.format, s.created_at, s.total_rows
            )?;
            for f in &s.files {
                writeln!(
                    out,
                    "  {:<24} {:>9} rows {:>11} bytes",
                    f.name, f.rows, f.bytes
                )?;
            }
        }
        None => writeln!(out, "current snapshot: none published yet")?,
    }
    if view.held.is_empty() {
        writeln!(out, "held snapshots: none")?;
    } else {
        writeln!(
            out,
            "held snapshots (publish one with `sds-sync approve ID`):"
        )?;
        for s in &view.held {
            writeln!(out, "  {} ({}, {} rows)", s.id, s.created_at, s.total_rows)?;
            if let Some(serde_json::Value::Array(trips)) = &s.guard {
                for t in trips {
                    let file = t.get("file").and_then(|v| v.as_str()).unwrap_or("?");
                    let rule = t.get("rule").and_then(|v| v.as_str()).unwrap_or("?");
                    // A rule of the publish gate: where, and what.
                    if let Some(message) = t.get("message").and_then(|v| v.as_str()) {
                        let line = t
                            .get("line")
                            .and_then(|v| v.as_u64())
                            .map(|l| format!(":{l}"))
                            .unwrap_or_default();
                        let column = t
                            .get("column")
                            .and_then(|v| v.as_str())
                            .map(|c| format!(" [{c}]"))
                            .unwrap_or_default();
                        writeln!(out, "    {file}{line}{column}: {rule}: {message}")?;
                        continue;
                    }
                    let count = t.get("count").and_then(|v| v.as_u64()).unwrap_or(0);
                    let old = t.get("rows_old").and_then(|v| v.as_u64()).unwrap_or(0);
                    writeln!(out, "    {file}: {rule} {count} of {old} rows")?;
                }
            }
        }
    }
    if view.pending_deliveries.is_empty() {
        writeln!(out, "pending deliveries: none")?;
    } else {
        writeln!(out, "pending deliveries:")?;
        for d in &view.pending_deliveries {
            writeln!(
                out,
                "  {} snapshot {} attempts {} next {}{}",
                d.destination,
                d.snapshot_id,
                d.attempts,
                d.next_attempt_at,
                d.last_error
                    .as_deref()
                    .map(|e| format!(" last error: {e}"))
                    .unwrap_or_default()
            )?;
        }
    }
    if !view.failed_deliveries.is_empty() {
        writeln!(
            out,
            "failed deliveries (queued again at the next start, reload or `once`):"
        )?;
        for d in &view.failed_deliveries {
            writeln!(
                out,
                "  {} snapshot {} after {} attempt(s): {}",
                d.destination,
                d.snapshot_id,
                d.attempts,
                d.last_error.as_deref().unwrap_or("")
            )?;
        }
    }
    writeln!(out, "recent runs:")?;
    for r in &view.recent_runs {
        writeln!(
            out,
            "  {:>5} {} {:<10}{}{}",
            r.id,
            r.started_at,
            r.outcome,
            r.snapshot_id
                .map(|s| format!(" snapshot {s}"))
                .unwrap_or_default(),
            r.error
                .as_deref()
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}
