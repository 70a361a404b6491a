//! The delivery outbox: one job per (snapshot, destination), written in the publish transaction.
//! Jobs are plain rows, so they survive restarts; the daemon's worker for a destination asks for
//! the next due job, delivers, and records the attempt. Retry timing (backoff, jitter, maximum
//! attempts) is the caller's policy: it passes the next attempt time and says whether a failure
//! is permanent.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sds_core::FileEntry;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{SnapshotId, Store, ts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Delivered: the files are complete under their final names at the destination.
    Done,
    /// Gave up: a permanent error, or out of attempts.
    Failed,
    /// A newer snapshot was enqueued for the same destination before this one was delivered.
    Superseded,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            "superseded" => JobStatus::Superseded,
            _ => return None,
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery to carry out: everything a destination needs to send the snapshot's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub snapshot_id: SnapshotId,
    pub destination: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// True once [`Store::begin_attempt`] counted this attempt in the outbox: recording its
    /// outcome then does not count it again.
    #[serde(default)]
    pub attempt_started: bool,
    pub created_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// `<dir>/snapshots/<id>`: the files to send.
    pub folder: PathBuf,
    /// Every file of the set, in format order; SDS treats a missing file as deleted records.
    pub files: Vec<FileEntry>,
}

/// Why an attempt failed. `permanent` stops retrying (authentication, host key, permission,
/// permanent rejection, or the caller's attempt limit reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// Shown to operators: must never contain a secret.
    pub error: String,
    pub permanent: bool,
}

/// One outbox row, for `sds-sync status` and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: JobId,
    pub snapshot_id: SnapshotId,
    pub destination: String,
    pub status: JobStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

type OutboxRow = (
    i64,
    i64,
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    String,
);

impl Store {
    /// The job `destination`'s worker should attempt now: its pending job whose next attempt is
    /// due at `now` (normally there is at most one pending job per destination). Pass a time far
    /// ahead to ignore backoff (e.g. `sds-sync once` trying everything once).
    pub async fn next_due_job(&self, destination: &str, now: DateTime<Utc>) -> Result<Option<Job>> {
        let row: Option<(i64, i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, snapshot_id, attempts, created_at, last_error FROM outbox
             WHERE destination = ? AND status = 'pending' AND next_attempt_at <= ?
             ORDER BY snapshot_id DESC, id DESC LIMIT 1",
        )
        .bind(destination)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.db("read the outbox"))?;
        let Some((id, snapshot_id, attempts, created_at, last_error)) = row else {
            return Ok(None);
        };
        let snapshot_id = SnapshotId(snapshot_id);
        Ok(Some(Job {
            id: JobId(id),
            snapshot_id,
            destination: destination.to_string(),
            attempts: self.attempts(attempts)?,
            attempt_started: false,
            created_at: self.parse_ts(&created_at)?,
            last_error,
            folder: self.snapshot_dir(snapshot_id),
            files: self.files_of(snapshot_id).await?,
        }))
    }

    /// When `destination`'s pending job is next due, so its worker can sleep until then.
    pub async fn next_attempt_at(&self, destination: &str) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT next_attempt_at FROM outbox WHERE destination = ? AND status = 'pending'
             ORDER BY next_attempt_at LIMIT 1",
        )
        .bind(destination)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.db("read the outbox"))?;
        row.map(|(s,)| self.parse_ts(&s)).transpose()
    }

    /// Counts an attempt of `job` in the outbox *before* it is made, and returns the job to
    /// deliver and record. A process killed during the delivery (kill -9, power cut, OOM) has
    /// then used the attempt up, so a delivery that crashes the process every time still reaches
    /// `[retry] max_attempts` instead of being retried for ever; `last_error` says the attempt
    /// did not finish until its outcome replaces it.
    pub async fn begin_attempt(&self, job: &Job) -> Result<Job> {
        let now = Utc::now();
        let note = format!(
            "attempt {} started at {} and did not finish (the process stopped during the delivery?)",
            job.attempts.saturating_add(1),
            ts(now)
        );
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, updated_at = ?
             WHERE id = ? AND status IN ('pending', 'superseded')",
        )
        .bind(note)
        .bind(ts(now))
        .bind(job.id.0)
        .execute(&self.pool)
        .await
        .map_err(self.db("count a delivery attempt"))?;
        Ok(Job {
            attempt_started: true,
            ..job.clone()
        })
    }

    /// Records the outcome of one attempt and returns the job's status afterwards:
    /// - `Ok(())`: done;
    /// - a permanent failure: failed;
    /// - a retryable failure: still pending, next attempt at `next_attempt_at`.
    ///
    /// A job superseded while it was being delivered stays superseded on failure; on success it
    /// is marked done, since its files did arrive. The attempt is counted here unless
    /// [`Store::begin_attempt`] counted it already.
    pub async fn record_attempt(
        &self,
        job: &Job,
        result: std::result::Result<(), DeliveryFailure>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<JobStatus> {
        let now = ts(Utc::now());
        let counted = i64::from(!job.attempt_started);
        let q = match &result {
            Ok(()) => sqlx::query(
                "UPDATE outbox SET status = 'done', attempts = attempts + ?, last_error = NULL,
                     updated_at = ?
                 WHERE id = ? AND status IN ('pending', 'superseded')",
            )
            .bind(counted)
            .bind(now)
            .bind(job.id.0),
            Err(f) if f.permanent => sqlx::query(
                "UPDATE outbox SET status = CASE status WHEN 'pending' THEN 'failed' ELSE status END,
                     attempts = attempts + ?, last_error = ?, updated_at = ?
                 WHERE id = ? AND status IN ('pending', 'superseded')",
            )
            .bind(counted)
            .bind(f.error.clone())
            .bind(now)
            .bind(job.id.0),
            Err(f) => sqlx::query(
                "UPDATE outbox SET attempts = attempts + ?, last_error = ?, next_attempt_at = ?,
                     updated_at = ?
                 WHERE id = ? AND status IN ('pending', 'superseded')",
            )
            .bind(counted)
            .bind(f.error.clone())
            .bind(ts(next_attempt_at))
            .bind(now)
            .bind(job.id.0),
        };
        q.execute(&self.pool)
            .await
            .map_err(self.db("record a delivery attempt"))?;
        self.job_status(job.id).await
    }

    /// Marks a job delivered (the same as recording a successful attempt).
    pub async fn mark_done(&self, job: &Job) -> Result<JobStatus> {
        self.record_attempt(job, Ok(()), Utc::now()).await
    }

    /// Gives up on a job without counting another attempt (e.g. the destination was removed from
    /// the config). A job already done or superseded is left as it is.
    pub async fn mark_failed(&self, job: &Job, error: &str) -> Result<JobStatus> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', last_error = ?, updated_at = ?
             WHERE id = ? AND status = 'pending'",
        )
        .bind(error)
        .bind(ts(Utc::now()))
        .bind(job.id.0)
        .execute(&self.pool)
        .await
        .map_err(self.db("mark a delivery failed"))?;
        self.job_status(job.id).await
    }

    async fn job_status(&self, id: JobId) -> Result<JobStatus> {
        let (s,): (String,) = sqlx::query_as("SELECT status FROM outbox WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.db("read a delivery's status"))?
            .ok_or_else(|| self.corrupt(format!("outbox job {id} disappeared")))?;
        JobStatus::parse(&s)
            .ok_or_else(|| self.corrupt(format!("outbox job {id} has status {s:?}")))
    }

    /// Every job still waiting for delivery, oldest first.
    pub async fn pending_deliveries(&self) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, snapshot_id, destination, status, attempts, next_attempt_at, last_error,
                    created_at, updated_at
             FROM outbox WHERE status = 'pending' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list pending deliveries"))?;
        rows.into_iter().map(|r| self.entry_from_row(r)).collect()
    }

    /// Makes sure every configured destination has, or gets, the current snapshot: a destination
    /// with no job for it (added to the config later) gets one, and one whose job failed for
    /// good (a wrong password since fixed) is queued again with a fresh attempt count. Called at
    /// start-up, on config reload and by `once`, so fixing a destination and restarting is enough.
    /// Destinations with a pending job are left alone. Returns the destinations queued.
    pub async fn requeue_current(&self, destinations: &[String]) -> Result<Vec<String>> {
        let _publishing = self.publish_lock.lock().await;
        let Some((current,)): Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM snapshots WHERE status IN ('published', 'approved') ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(self.db("read the current snapshot"))?
        else {
            return Ok(Vec::new());
        };
        let now = ts(Utc::now());
        let mut queued = Vec::new();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.db("begin requeueing"))?;
        for dest in destinations {
            let pending: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM outbox WHERE destination = ? AND status = 'pending'",
            )
            .bind(dest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.db("read pending deliveries"))?;
            if pending.is_some() {
                continue;
            }
            let latest: Option<(i64, String)> = sqlx::query_as(
                "SELECT id, status FROM outbox WHERE destination = ? AND snapshot_id = ?
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(dest)
            .bind(current)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.db("read deliveries of the current snapshot"))?;
            match latest {
                Some((_, status)) if status == "done" => continue,
                Some((id, status)) if status == "failed" => {
                    sqlx::query(
                        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?,
                             updated_at = ? WHERE id = ?",
                    )
                    .bind(&now)
                    .bind(&now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.db("requeue a failed delivery"))?;
                }
                // No job, or one superseded while the current snapshot was not yet current.
                _ => {
                    sqlx::query(
                        "INSERT INTO outbox (snapshot_id, destination, status, attempts,
                                             next_attempt_at, created_at, updated_at)
                         VALUES (?, ?, 'pending', 0, ?, ?, ?)",
                    )
                    .bind(current)
                    .bind(dest)
                    .bind(&now)
                    .bind(&now)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.db("enqueue a delivery"))?;
                }
            }
            queued.push(dest.clone());
        }
        tx.commit().await.map_err(self.db("commit requeueing"))?;
        for d in &queued {
            tracing::info!(destination = %d, snapshot_id = current, "current snapshot queued for a destination that does not have it yet");
        }
        Ok(queued)
    }

    /// Closes the pending jobs of destinations no longer in the config (`keep` lists the ones
    /// that are), as failed with a reason. Without this a removed destination's job stayed
    /// pending for ever, and if the destination came back it was sent that old snapshot.
    /// Returns how many jobs were closed.
    pub async fn retire_removed_destinations(&self, keep: &[String]) -> Result<u64> {
        let _publishing = self.publish_lock.lock().await;
        let pending: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, destination FROM outbox WHERE status = 'pending'")
                .fetch_all(&self.pool)
                .await
                .map_err(self.db("list pending deliveries"))?;
        let now = ts(Utc::now());
        let mut closed = 0;
        for (id, dest) in pending {
            if keep.contains(&dest) {
                continue;
            }
            closed += sqlx::query(
                "UPDATE outbox SET status = 'failed', updated_at = ?,
                     last_error = 'destination removed from the config'
                 WHERE id = ? AND status = 'pending'",
            )
            .bind(&now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.db("close a removed destination's delivery"))?
            .rows_affected();
            tracing::info!(destination = %dest, "pending delivery closed: the destination is no longer configured");
        }
        Ok(closed)
    }

    /// Jobs that failed for good, newest first (at most `n`).
    pub async fn failed_deliveries(&self, n: u32) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, snapshot_id, destination, status, attempts, next_attempt_at, last_error,
                    created_at, updated_at
             FROM outbox WHERE status = 'failed' ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list failed deliveries"))?;
        rows.into_iter().map(|r| self.entry_from_row(r)).collect()
    }

    /// The jobs of one snapshot, any status, by destination.
    pub async fn deliveries_of(&self, snapshot: SnapshotId) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, snapshot_id, destination, status, attempts, next_attempt_at, last_error,
                    created_at, updated_at
             FROM outbox WHERE snapshot_id = ? ORDER BY destination, id",
        )
        .bind(snapshot.0)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list a snapshot's deliveries"))?;
        rows.into_iter().map(|r| self.entry_from_row(r)).collect()
    }

    fn entry_from_row(&self, r: OutboxRow) -> Result<OutboxEntry> {
        let (id, snapshot_id, destination, status, attempts, next, last_error, created, updated) =
            r;
        Ok(OutboxEntry {
            id: JobId(id),
            snapshot_id: SnapshotId(snapshot_id),
            destination,
            status: JobStatus::parse(&status)
                .ok_or_else(|| self.corrupt(format!("outbox job {id} has status {status:?}")))?,
            attempts: self.attempts(attempts)?,
            next_attempt_at: self.parse_ts(&next)?,
            last_error,
            created_at: self.parse_ts(&created)?,
            updated_at: self.parse_ts(&updated)?,
        })
    }

    fn attempts(&self, v: i64) -> Result<u32> {
        u32::try_from(v).map_err(|_| self.corrupt(format!("attempt count {v} out of range")))
    }
}
