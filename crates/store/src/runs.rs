//! Run history: one row per run (scheduled or `once`; a dry run changes nothing, so records none), for `sds-sync status`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::{SnapshotId, Store, ts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Started, not finished (or the process stopped: recovery turns those into `Failed`).
    Running,
    /// The export equals the current snapshot: nothing written, nothing enqueued.
    Unchanged,
    Published,
    /// The mass-change guard held the snapshot.
    Held,
    Failed,
    DryRun,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Unchanged => "unchanged",
            RunOutcome::Published => "published",
            RunOutcome::Held => "held",
            RunOutcome::Failed => "failed",
            RunOutcome::DryRun => "dry_run",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunOutcome::Running,
            "unchanged" => RunOutcome::Unchanged,
            "published" => RunOutcome::Published,
            "held" => RunOutcome::Held,
            "failed" => RunOutcome::Failed,
            "dry_run" => RunOutcome::DryRun,
            _ => return None,
        })
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    pub snapshot_id: Option<SnapshotId>,
    pub error: Option<String>,
    /// Whatever counts the daemon recorded for the run.
    pub rows_json: Option<serde_json::Value>,
}

impl Store {
    /// Records the start of a run (outcome `running`).
    pub async fn begin_run(&self) -> Result<RunId> {
        let id = sqlx::query("INSERT INTO runs (started_at, outcome) VALUES (?, 'running')")
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(self.db("record the start of a run"))?
            .last_insert_rowid();
        Ok(RunId(id))
    }

    /// Records how a run ended. `snapshot_id` is the snapshot it published or held, if any;
    /// `error` must never contain a secret.
    pub async fn finish_run(
        &self,
        run: RunId,
        outcome: RunOutcome,
        snapshot_id: Option<SnapshotId>,
        error: Option<&str>,
        rows_json: Option<&serde_json::Value>,
    ) -> Result<()> {
        if outcome == RunOutcome::Running {
            return Err(StoreError::Usage(format!(
                "finish_run({run}) needs a final outcome, not running"
            )));
        }
        let updated = sqlx::query(
            "UPDATE runs SET finished_at = ?, outcome = ?, snapshot_id = ?, error = ?, rows_json = ?
             WHERE id = ?",
        )
        .bind(ts(Utc::now()))
        .bind(outcome.as_str())
        .bind(snapshot_id.map(|s| s.0))
        .bind(error)
        .bind(rows_json.map(|v| v.to_string()))
        .bind(run.0)
        .execute(&self.pool)
        .await
        .map_err(self.db("record the end of a run"))?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::Usage(format!(
                "finish_run: there is no run {run}"
            )));
        }
        self.prune_runs().await
    }

    /// Removes the finished runs older than the newest [`StoreOptions::keep_runs`]: the history
    /// `status` shows stays, and the state DB stops growing with every run (freed pages are
    /// reused by the next records). A run still `running` is never removed.
    ///
    /// [`StoreOptions::keep_runs`]: crate::StoreOptions::keep_runs
    async fn prune_runs(&self) -> Result<()> {
        let keep = i64::try_from(self.opts.keep_runs.max(1)).unwrap_or(i64::MAX);
        // The id of the newest run not kept; NULL (nothing removed) while there are fewer.
        sqlx::query(
            "DELETE FROM runs WHERE outcome <> 'running'
                 AND id <= (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(self.db("prune the run history"))?;
        Ok(())
    }

    /// The last `n` runs, newest first.
    pub async fn recent_runs(&self, n: u32) -> Result<Vec<RunRecord>> {
        type RunRow = (
            i64,
            String,
            Option<String>,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT id, started_at, finished_at, outcome, snapshot_id, error, rows_json
             FROM runs ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list recent runs"))?;
        rows.into_iter()
            .map(
                |(id, started, finished, outcome, snapshot_id, error, rows_json)| {
                    Ok(RunRecord {
                        id: RunId(id),
                        started_at: self.parse_ts(&started)?,
                        finished_at: finished.as_deref().map(|s| self.parse_ts(s)).transpose()?,
                        outcome: RunOutcome::parse(&outcome).ok_or_else(|| {
                            self.corrupt(format!("run {id} has outcome {outcome:?}"))
                        })?,
                        snapshot_id: snapshot_id.map(SnapshotId),
                        error,
                        rows_json: rows_json
                            .map(|s| serde_json::from_str(&s))
                            .transpose()
                            .map_err(|e| self.corrupt(format!("run {id} rows_json: {e}")))?,
                    })
                },
            )
            .collect()
    }
}
