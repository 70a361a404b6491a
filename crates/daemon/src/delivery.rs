//! Delivery attempts: one attempt of an outbox job to its destination, recorded in the outbox
//! and the metrics, and `once`'s attempt of every pending job.

use crate::backoff::RetryPolicy;
use crate::config::Config;
use crate::metrics::DeliveryOutcome;
use crate::run::destinations;
use anyhow::Context;
use chrono::Utc;
use sds_deliver::{Destination, FileSet};
use sds_store::{DeliveryFailure, Job, Store};
use std::time::Instant;
use tracing::{error, info, warn};

/// The file set of an outbox job, with the diff counts recorded for its snapshot.
pub fn file_set(job: &Job, created_at: String) -> FileSet {
    FileSet {
        snapshot_id: job.snapshot_id.to_string(),
        created_at,
        dir: job.folder.clone(),
        files: job.files.clone(),
    }
}

/// One delivery attempt of `job` to `dest`, recorded in the outbox and in the metrics.
pub async fn attempt(
    store: &Store,
    dest: &dyn Destination,
    job: &Job,
    policy: &RetryPolicy,
) -> anyhow::Result<DeliveryOutcome> {
    let created_at = store
        .snapshot(job.snapshot_id)
        .await
        .ok()
        .flatten()
        .map(|s| {
            s.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_default();
    if policy.exhausted(job.attempts) {
        // Attempts that never finished get here (a finished last attempt marks the job failed
        // itself): the process was killed during them. Or `[retry] max_attempts` was lowered.
        let error = format!(
            "gave up after {} attempts ([retry] max_attempts = {}); last error: {}",
            job.attempts,
            policy.max_attempts,
            job.last_error.as_deref().unwrap_or("none")
        );
        store
            .mark_failed(job, &error)
            .await
            .context("cannot record the delivery attempt")?;
        error!(destination = dest.name(), kind = dest.kind(), snapshot_id = job.snapshot_id.0, attempt = job.attempts, error_kind = "permanent", error = %error, "delivery failed for good; fix the cause, the next snapshot will be delivered again");
        crate::metrics::record_delivery(dest.name(), DeliveryOutcome::Failed);
        return Ok(DeliveryOutcome::Failed);
    }
    // Counted before it starts: a process killed during the delivery has still used it up.
    let job = &store
        .begin_attempt(job)
        .await
        .context("cannot record the delivery attempt")?;
    let set = file_set(job, created_at);
    let attempt_no = job.attempts + 1;
    let started = Instant::now();
    let result = dest.deliver(&set).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(()) => {
            store
                .record_attempt(job, Ok(()), Utc::now())
                .await
                .context("cannot record the delivery")?;
            info!(
                destination = dest.name(),
                kind = dest.kind(),
                snapshot_id = job.snapshot_id.0,
                attempt = attempt_no,
                duration_ms,
                "delivered"
            );
            crate::metrics::record_delivery(dest.name(), DeliveryOutcome::Delivered);
            Ok(DeliveryOutcome::Delivered)
        }
        Err(e) => {
            let mut rng = fastrand::Rng::new();
            let next = if e.is_permanent() {
                None
            } else {
                policy.next_attempt_at(Utc::now(), attempt_no, &mut rng)
            };
            let permanent = next.is_none();
            let failure = DeliveryFailure {
                error: e.to_string(),
                permanent,
            };
            store
                .record_attempt(job, Err(failure), next.unwrap_or_else(Utc::now))
                .await
                .context("cannot record the delivery attempt")?;
            let error_kind = if e.is_permanent() {
                "permanent"
            } else {
                "retryable"
            };
            if permanent {
                error!(destination = dest.name(), kind = dest.kind(), snapshot_id = job.snapshot_id.0, attempt = attempt_no, error_kind, error = %e, "delivery failed for good; fix the cause, the next snapshot will be delivered again");
            } else {
                warn!(destination = dest.name(), kind = dest.kind(), snapshot_id = job.snapshot_id.0, attempt = attempt_no, error_kind, error = %e, next_attempt_at = %next.map(|t| t.to_rfc3339()).unwrap_or_default(), "delivery failed; will retry");
            }
            let outcome = if permanent {
                DeliveryOutcome::Failed
            } else {
                DeliveryOutcome::Retry
            };
            crate::metrics::record_delivery(dest.name(), outcome);
            Ok(outcome)
        }
    }
}

/// Deliveries of `once` (or `approve`) that did not succeed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedDeliveries {
    /// Retryable errors: the job stays queued with its backoff.
    pub retrying: usize,
    /// Permanent errors (or the last allowed attempt): the job is marked failed, and only the
    /// next `once`, a restart or a reload of the service queues the snapshot again.
    pub for_good: usize,
}

impl FailedDeliveries {
    pub fn total(self) -> usize {
        self.retrying + self.for_good
    }

    /// What happens to them next, in words for the admin who ran the command.
    pub fn message(self) -> String {
        let mut parts = Vec::new();
        if self.for_good > 0 {
            parts.push(format!(
                "{} destination(s) failed for good (a permanent error or the last allowed attempt): \
                 nothing more is tried until you fix the cause; then `sds-sync once`, or a restart or \
                 reload of the service, delivers the current snapshot again",
                self.for_good
            ));
        }
        if self.retrying > 0 {
            parts.push(format!(
                "{} destination(s) failed; the delivery stays queued and is retried by the next run \
                 or by the running service",
                self.retrying
            ));
        }
        format!("{} (see the log)", parts.join("; "))
    }
}

/// `once`'s delivery phase: every destination's pending job gets one attempt now, whatever its
/// backoff says (the admin asked for it). Returns how many failed, and how.
pub async fn deliver_pending_now(cfg: &Config, store: &Store) -> anyhow::Result<FailedDeliveries> {
    let policy = cfg.retry_policy()?;
    let far = Utc::now() + chrono::Duration::days(36500);
    let mut failed = FailedDeliveries::default();
    for dest in destinations(cfg)? {
        let job = store
            .next_due_job(dest.name(), far)
            .await
            .context("cannot read the delivery outbox")?;
        if let Some(job) = job {
            match attempt(store, dest.as_ref(), &job, &policy).await? {
                DeliveryOutcome::Delivered => {}
                DeliveryOutcome::Retry => failed.retrying += 1,
                DeliveryOutcome::Failed => failed.for_good += 1,
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_deliveries_say_what_happens_next() {
        let retrying = FailedDeliveries {
            retrying: 2,
            for_good: 0,
        };
        let m = retrying.message();
        assert!(
            m.starts_with("2 destination(s) failed; the delivery stays queued"),
            "{m}"
        );
        assert!(!m.contains("for good"), "{m}");
        let for_good = FailedDeliveries {
            retrying: 0,
            for_good: 1,
        };
        let m = for_good.message();
        assert!(m.starts_with("1 destination(s) failed for good"), "{m}");
        assert!(!m.contains("stays queued"), "{m}");
        let both = FailedDeliveries {
            retrying: 1,
            for_good: 1,
        };
        assert_eq!(both.total(), 2);
        let m = both.message();
        assert!(
            m.contains("failed for good") && m.contains("stays queued"),
            "{m}"
        );
    }
}
