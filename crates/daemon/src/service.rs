//! `sds-sync run`: the long-running service. A scheduler loop that runs exports at the cron
//! times (never two at once), one delivery worker per destination fed by the durable outbox,
//! signal handling (SIGTERM/SIGINT stop, SIGHUP reloads), systemd notify and metrics.
//!
//! Why a plain sleep loop and not a scheduler crate: the loop runs the export inline, so a slow
//! run can never overlap the next tick, and the next occurrence is recomputed in local time after
//! every run, which keeps DST changes right (see `schedule`).

use crate::config::Config;
use crate::metrics::{self, Health};
use crate::run;
use crate::schedule::{Schedule, sleep_until_next};
use crate::{backoff::RetryPolicy, notify};
use anyhow::Context;
use chrono::Utc;
use sds_deliver::Destination;
use sds_store::{RunOutcome, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Longest a worker sleeps before looking at the outbox again even without a wake-up, so jobs
/// enqueued by another process (`sds-sync approve`) are picked up too.
const IDLE_POLL: Duration = Duration::from_secs(30);

struct Workers {
    cancel: CancellationToken,
    wake: Vec<Arc<Notify>>,
    tasks: JoinSet<()>,
}

impl Workers {
    async fn start(
        cfg: &Config,
        store: &Arc<Store>,
        parent: &CancellationToken,
    ) -> anyhow::Result<Workers> {
        let cancel = parent.child_token();
        let policy = cfg.retry_policy()?;
        // A destination added to the config, or fixed after failing for good, gets the current
        // snapshot without waiting for the data to change.
        let names = run::destination_names(cfg);
        store.retire_removed_destinations(&names).await?;
        store.requeue_current(&names).await?;
        let grace = Duration::from_secs(cfg.daemon.shutdown_grace_secs);
        let mut tasks = JoinSet::new();
        let mut wake = Vec::new();
        for dest in run::destinations(cfg)? {
            let notify = Arc::new(Notify::new());
            wake.push(notify.clone());
            tasks.spawn(worker(
                store.clone(),
                dest,
                policy,
                notify,
                cancel.clone(),
                grace,
            ));
        }
        Ok(Workers {
            cancel,
            wake,
            tasks,
        })
    }

    fn wake_all(&self) {
        for w in &self.wake {
            w.notify_one();
        }
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One destination's delivery loop: take its due job, attempt it, record the outcome; sleep until
/// the next job is due, a new snapshot is published, or shutdown.
async fn worker(
    store: Arc<Store>,
    dest: Box<dyn Destination>,
    policy: RetryPolicy,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    grace: Duration,
) {
    let name = dest.name().to_owned();
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let due = match store.next_due_job(&name, Utc::now()).await {
            Ok(j) => j,
            Err(e) => {
                error!(destination = %name, error = %e, "cannot read the delivery outbox");
                None
            }
        };
        if let Some(job) = due {
            let attempt = crate::delivery::attempt(&store, dest.as_ref(), &job, &policy);
            tokio::pin!(attempt);
            let result = tokio::select! {
                r = &mut attempt => r,
                () = cancel.cancelled() => match tokio::time::timeout(grace, &mut attempt).await {
                    Ok(r) => r,
                    Err(_) => {
                        // Dropping the attempt abandons the upload and the job stays pending;
                        // the destination removes its temporary files now where it can, else
                        // the next attempt does.
                        warn!(destination = %name, snapshot_id = job.snapshot_id.0, "delivery abandoned at shutdown; it resumes at the next start");
                        let _ = tokio::time::timeout(Duration::from_secs(2), dest.cleanup_after_abandon()).await;
                        break;
                    }
                },
            };
            if let Err(e) = result {
                error!(destination = %name, error = %crate::one_line(&e), "cannot record a delivery attempt");
            }
            update_outbox_gauge(&store).await;
            continue;
        }
        let wait = match store.next_attempt_at(&name).await {
            Ok(Some(t)) => (t - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE_POLL),
            _ => IDLE_POLL,
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn update_outbox_gauge(store: &Store) {
    if let Ok(pending) = store.pending_deliveries().await {
        metrics::set_outbox_pending(pending.len() as u64);
    }
}

/// One scheduled (or start-up) export; never fails the loop.
async fn tick(cfg: &Config, store: &Store, health: &Health, workers: &Workers) {
    let result = run::run_recorded(cfg, store).await;
    let (status, outcome, reason) = match &result {
        Ok(r) => {
            let snapshot = r.snapshot_id.map(|id| id.0).unwrap_or_default();
            let status = match r.outcome {
                RunOutcome::Published => {
                    workers.wake_all();
                    format!("published snapshot {snapshot}")
                }
                // Pending deliveries are retried by the workers on their own backoff.
                RunOutcome::Unchanged => "data unchanged".to_owned(),
                RunOutcome::Held => format!("snapshot {snapshot} held by the mass-change guard"),
                RunOutcome::DryRun => "dry run".to_owned(),
                RunOutcome::Running | RunOutcome::Failed => "last run failed".to_owned(),
            };
            let reason = if r.outcome == RunOutcome::Held {
                status.clone()
            } else {
                String::new()
            };
            (status, r.outcome, reason)
        }
        // /healthz is unauthenticated: it gets the kind of failure, the log the whole error
        // (which names the SIS host, user and database).
        Err(e) => (
            "last run failed".to_owned(),
            RunOutcome::Failed,
            format!("{} (see the log)", run::failure_kind(e)),
        ),
    };
    health.record_run(outcome, &reason);
    notify::status(&format!(
        "{status} at {}",
        Utc::now().format("%Y-%m-%d %H:%M:%SZ")
    ));
    update_outbox_gauge(store).await;
    release_freed_memory();
}

/// Gives the heap pages the run freed back to the system. A run's buffers are allocated and
/// freed on short-lived threads, each served by a glibc malloc arena that keeps freed memory
/// for reuse (it returns it only past a threshold that rises with the largest block freed);
/// over hundreds of runs one arena or another reached a new high, and the daemon's RSS crept
/// up ~1 KB a run while the live heap stayed flat (issue 19, scripts/soak and heaptrack).
/// Trimming is about a dozen madvise calls, well under a millisecond.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn reload(path: &Path, current: &Arc<Config>) -> Option<Arc<Config>> {
    match Config::load(path) {
        Ok(new) => {
            if new.state.dir != current.state.dir {
                warn!("state.dir changed; the new directory is used only after a restart");
            }
            if new.metrics.listen != current.metrics.listen {
                warn!("metrics.listen changed; the new address is used only after a restart");
            }
            if let Err(e) = run::destinations(&new) {
                error!(error = %crate::one_line(&e), "reloaded config has an invalid destination; keeping the old config");
                return None;
            }
            for w in &new.load_warnings {
                warn!(warning = %w, "configuration warning");
            }
            info!(config = %path.display(), "configuration reloaded");
            Some(Arc::new(new))
        }
        Err(e) => {
            error!(config = %path.display(), error = %e, "cannot reload the configuration; keeping the old one");
            None
        }
    }
}

pub async fn serve(config_path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let mut cfg = Arc::new(cfg);
    let mut schedule = Schedule::parse(&cfg.schedule.cron, &cfg.schedule.timezone)?;
    let shutdown = CancellationToken::new();
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sigterm.recv() => info!(signal = "SIGTERM", "shutting down"),
                _ = sigint.recv() => info!(signal = "SIGINT", "shutting down"),
            }
            shutdown.cancel();
        });
    }

    run::log_source_warnings(&cfg)?;
    run::log_destination_warnings(&cfg)?;
    let store = Arc::new(run::open_store(&cfg).await?);
    let health = Health::new();
    let mut background = JoinSet::new();
    if let Some(listen) = cfg.metrics.listen {
        let handle = metrics::install().context("cannot set up metrics")?;
        let listener = metrics::bind(listen).await?;
        background.spawn(metrics::serve_on(
            listener,
            handle,
            health.clone(),
            shutdown.clone(),
        ));
    }
    let watchdog = notify::spawn_watchdog(shutdown.clone());
    let alive = health.scheduler_alive_guard();
    let mut workers = Workers::start(&cfg, &store, &shutdown).await?;
    update_outbox_gauge(&store).await;
    notify::ready();
    info!(schedule = %schedule.describe(), destinations = cfg.destination.len(), "sds-sync started");

    let grace = |cfg: &Config| Duration::from_secs(cfg.daemon.shutdown_grace_secs);
    let mut run_now = cfg.schedule.run_at_start;
    loop {
        if !run_now {
            let next = tokio::select! {
                n = sleep_until_next(&schedule, &shutdown) => n,
                _ = sighup.recv() => {
                    if let Some(new) = reload(&config_path, &cfg) {
                        workers.stop().await;
                        cfg = new;
                        if let Ok(s) = Schedule::parse(&cfg.schedule.cron, &cfg.schedule.timezone) {
                            schedule = s;
                        }
                        workers = Workers::start(&cfg, &store, &shutdown).await?;
                        info!(schedule = %schedule.describe(), "schedule and destinations updated");
                        if let Err(e) = run::log_source_warnings(&cfg) {
                            warn!(error = %format!("{e:#}"), "cannot check the source's warnings");
                        }
                        if let Err(e) = run::log_destination_warnings(&cfg) {
                            warn!(error = %format!("{e:#}"), "cannot check the destinations' warnings");
                        }
                    }
                    continue;
                }
            };
            if next.is_none() {
                break;
            }
        }
        run_now = false;
        let started = Utc::now();
        let t = tick(&cfg, &store, &health, &workers);
        tokio::pin!(t);
        tokio::select! {
            () = &mut t => {}
            () = shutdown.cancelled() => {
                if tokio::time::timeout(grace(&cfg), &mut t).await.is_err() {
                    warn!("run abandoned at shutdown; the next start completes or removes what it left");
                }
                break;
            }
        }
        // The loop never overlaps runs; ticks that passed while this one ran are skipped.
        let mut skipped = 0u32;
        let mut at = started;
        while let Some(n) = schedule.next_after(at) {
            if n > Utc::now() || skipped >= 1000 {
                break;
            }
            skipped += 1;
            at = n;
        }
        if skipped > 0 {
            warn!(
                skipped,
                "scheduled ticks skipped because the previous run was still going"
            );
            for _ in 0..skipped {
                metrics::record_skipped_tick();
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
    }

    notify::stopping();
    drop(alive);
    let stop = async {
        workers.stop().await;
        while background.join_next().await.is_some() {}
    };
    if tokio::time::timeout(grace(&cfg) + Duration::from_secs(1), stop)
        .await
        .is_err()
    {
        warn!("workers did not stop within the grace period");
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    info!("sds-sync stopped");
    Ok(())
}
