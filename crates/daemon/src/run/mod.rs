//! One run, end to end: extract from the SIS, build the SDS files into a staging folder, diff
//! against the last published snapshot, guard, publish, deliver. Also `check`. Business rules
//! live in the crates; this module only sequences them, records runs and logs.

mod compare;
mod extract;
mod render;

pub(crate) use crate::config::{Config, DestinationSection};
use anyhow::{Context, anyhow};
pub use compare::FileReport;
use compare::compare;
use extract::extract;
pub(crate) use extract::read_entities;
use render::{Rendered, render_files};
use sds_core::diff::FileDiff;
use sds_core::guard::{GuardConfig, GuardVerdict, evaluate};
use sds_core::validate::{Severity, Violation};
use sds_core::{Built, ExportOptions, FileEntry};
use sds_deliver::email::EmailDestination;
use sds_deliver::ftp::FtpDestination;
use sds_deliver::sftp::SftpDestination;
use sds_deliver::{Destination, LocalConfig, LocalDestination};
use sds_source::SourceConfig;
use sds_store::{RunOutcome, Snapshot, SnapshotId, Staging, Store, StoreOptions};
use std::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

pub fn source_config(cfg: &Config) -> anyhow::Result<SourceConfig> {
    Ok(SourceConfig {
        password: cfg.source_password()?,
        ..source_settings(cfg)
    })
}

/// `[source]` without the password (which may live in a file): enough for the warnings.
fn source_settings(cfg: &Config) -> SourceConfig {
    SourceConfig {
        url: cfg.source.url.clone(),
        password: None,
        queries: cfg.queries(),
        connect_timeout: std::time::Duration::from_secs(cfg.source.connect_timeout_secs),
        query_timeout: std::time::Duration::from_secs(cfg.source.query_timeout_secs),
        postgres_copy: cfg.source.postgres_copy,
        ca_file: cfg.source.ca_file.clone(),
        max_value_bytes: cfg.source.max_value_bytes,
        // A query cannot fill a file with more rows than it returns: stop it while it streams.
        max_rows: cfg.export.max_rows_per_file,
        // Without the full formats the built-in queries read what they always read.
        full_contract: cfg.export_options().full_formats(),
    }
}

/// How the SIS would be reached, from the URL alone: a remote SIS without verified TLS,
/// ignored URL parameters, an unusable `ca_file`.
pub fn source_warnings(cfg: &Config) -> anyhow::Result<Vec<String>> {
    Ok(source_settings(cfg).warnings()?)
}

/// Logs [`source_warnings`] at WARN: at service start, after a reload and in `once`.
pub fn log_source_warnings(cfg: &Config) -> anyhow::Result<()> {
    for w in source_warnings(cfg)? {
        warn!(warning = %w, "source warning");
    }
    Ok(())
}

/// A file of the export has more rows than `[export] max_rows_per_file`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{file} would have {rows} rows, more than [export] max_rows_per_file = {limit} (Microsoft's \
     SDS limit is 2,000,000 rows per file); split the district into several sync profiles (one \
     config per group of schools), or raise the limit if Microsoft raised yours"
)]
pub struct FileTooLarge {
    pub file: String,
    pub rows: u64,
    pub limit: u64,
}

/// What kind of failure ended a run, in words safe to serve without authentication
/// (`/healthz`): no host, user, database, path or value. The log has the whole error.
pub fn failure_kind(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(s) = cause.downcast_ref::<sds_source::SourceError>() {
            return s.kind();
        }
        if cause.downcast_ref::<FileTooLarge>().is_some() {
            return "a file would exceed [export] max_rows_per_file";
        }
        if cause.downcast_ref::<sds_core::BuildError>().is_some() {
            return "the export could not be built";
        }
        if cause.downcast_ref::<sds_store::StoreError>().is_some() {
            return "the state directory cannot be used";
        }
    }
    "the export failed"
}

pub fn destinations(cfg: &Config) -> anyhow::Result<Vec<Box<dyn Destination>>> {
    cfg.destination
        .iter()
        .map(|d| -> anyhow::Result<Box<dyn Destination>> {
            Ok(match d {
                DestinationSection::Local(l) => Box::new(LocalDestination::new(LocalConfig {
                    name: l.name.clone(),
                    path: l.path.clone(),
                    include_license_file: l.include_license_file,
                    omit_files: l.omit_files.clone(),
                })),
                DestinationSection::Sftp(f) => Box::new(
                    SftpDestination::new(f.clone())
                        .map_err(|e| anyhow!("{e}"))
                        .with_context(|| format!("destination {:?}", d.name()))?,
                ),
                DestinationSection::Ftp(f) => Box::new(
                    FtpDestination::new(f.clone())
                        .map_err(|e| anyhow!("{e}"))
                        .with_context(|| format!("destination {:?}", d.name()))?,
                ),
                DestinationSection::Email(e) => Box::new(
                    EmailDestination::new(e.clone())
                        .map_err(|e| anyhow!("{e}"))
                        .with_context(|| format!("destination {:?}", d.name()))?,
                ),
            })
        })
        .collect()
}

/// Start-up warnings of the configured destinations (clear-text transports, secret files other
/// accounts can read, a shared local folder): [`Destination::warnings`].
pub fn destination_warnings(cfg: &Config) -> anyhow::Result<Vec<String>> {
    Ok(destinations(cfg)?
        .iter()
        .flat_map(|d| d.warnings())
        .collect())
}

/// Logs [`destination_warnings`] at WARN: at service start, after a reload and in `once`, so
/// an admin who runs sds-sync from cron sees them too.
pub fn log_destination_warnings(cfg: &Config) -> anyhow::Result<()> {
    for w in destination_warnings(cfg)? {
        warn!(warning = %w, "destination warning");
    }
    Ok(())
}

pub fn destination_names(cfg: &Config) -> Vec<String> {
    cfg.destination
        .iter()
        .map(|d| d.name().to_owned())
        .collect()
}

pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let opts = StoreOptions {
        keep_snapshots: cfg.state.keep_snapshots,
        keep_runs: cfg.state.keep_runs,
        // Only for the crash-consistency tests: simulates a crash at one step of publishing.
        fail_point: match std::env::var("SDS_SYNC_FAILPOINT") {
            Ok(s) if !s.is_empty() => {
                Some(s.parse().map_err(|e| anyhow!("SDS_SYNC_FAILPOINT: {e}"))?)
            }
            _ => None,
        },
    };
    Store::open_with(&cfg.state.dir, opts)
        .await
        .with_context(|| {
            format!(
                "cannot open the state directory {} (config key state.dir)",
                cfg.state.dir.display()
            )
        })
}

/// What `export` did. `outcome` is the run's one outcome type, the one the run record stores and
/// the metrics count: `Unchanged`, `Published`, `Held`, or (a dry run that found changes) `DryRun`.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub outcome: RunOutcome,
    /// The snapshot this run published or held.
    pub snapshot_id: Option<SnapshotId>,
    /// Why the snapshot is held (or, in a dry run, would be); empty when it is (would be) published.
    pub held_reasons: Vec<String>,
    pub previous_snapshot: Option<i64>,
    pub files: Vec<FileReport>,
}
/// What a run takes from the config, taken once, so that each stage gets only its part: the SIS
/// connection and queries, the export options and row limit, the guard thresholds, and the
/// destinations a published snapshot is queued for.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub source: SourceConfig,
    pub options: ExportOptions,
    pub max_rows_per_file: u64,
    pub guard: GuardConfig,
    pub destinations: Vec<String>,
}

impl RunSettings {
    /// Fails when the SIS password cannot be read (from `password_file`, say).
    pub fn from_config(cfg: &Config) -> anyhow::Result<Self> {
        Ok(RunSettings {
            source: source_config(cfg)?,
            options: cfg.export_options(),
            max_rows_per_file: cfg.export.max_rows_per_file,
            guard: cfg.guard,
            destinations: destination_names(cfg),
        })
    }
}

/// Extract, build, render, compare, guard and (unless `dry_run`) publish or hold. Deliveries
/// are separate.
pub async fn export(
    run: &RunSettings,
    store: &Store,
    dry_run: bool,
) -> anyhow::Result<ExportReport> {
    let built = extract(
        &run.source,
        run.options.clone(),
        run.max_rows_per_file,
        dry_run,
    )
    .await?;
    let current = store
        .current()
        .await
        .context("cannot read the current snapshot")?;
    let previous_snapshot = current.as_ref().map(|p| p.id.0);
    // Most runs find nothing changed (SDS allows few syncs a day, the schedule runs more
    // often): rendering compares with the current snapshot and writes only what differs.
    let rendered = render(&built, current.as_ref(), store)?;
    let Some(staging) = rendered.staging else {
        return unchanged(store, previous_snapshot, &rendered.files, dry_run).await;
    };
    let invalid = gate_errors(rendered.findings);
    let mut rendered_files = rendered.files;
    let old_dir = current
        .as_ref()
        .filter(|p| p.folder_present)
        .map(|p| p.folder.as_path());
    let (files, guarded) = compare(&built, &mut rendered_files, old_dir, previous_snapshot)?;
    let verdict = Verdict {
        guard: judge(
            &run.guard,
            store,
            current.is_some(),
            &guarded,
            &built,
            &staging,
        )?,
        invalid,
    };
    let (outcome, snapshot_id) = conclude(
        store,
        staging,
        rendered_files.into_iter().map(|f| f.entry).collect(),
        &built,
        &run.destinations,
        &verdict,
        dry_run,
    )
    .await?;
    Ok(ExportReport {
        outcome,
        snapshot_id,
        held_reasons: verdict.reasons(),
        previous_snapshot,
        files,
    })
}

/// What may hold a changed export: the guard's verdict and the publish gate's errors.
struct Verdict {
    guard: GuardVerdict,
    invalid: Vec<Violation>,
}

impl Verdict {
    /// One reason per trip and per invalid finding: the snapshot is held exactly when there is one.
    fn reasons(&self) -> Vec<String> {
        let trips = self.guard.trips.iter().map(|t| t.to_string());
        trips
            .chain(self.invalid.iter().map(|v| format!("invalid: {v}")))
            .collect()
    }

    /// True exactly when [`Verdict::reasons`] is not empty.
    fn holds(&self) -> bool {
        self.guard.held() || !self.invalid.is_empty()
    }
}

/// The end of a run that changed something: a dry run discards the staging folder; otherwise
/// the snapshot is held when `verdict` gives a reason, else published and queued for
/// `destinations`.
async fn conclude(
    store: &Store,
    staging: Staging,
    entries: Vec<FileEntry>,
    built: &Built,
    destinations: &[String],
    verdict: &Verdict,
    dry_run: bool,
) -> anyhow::Result<(RunOutcome, Option<SnapshotId>)> {
    let format = built.format().as_str();
    if dry_run {
        staging
            .discard()
            .context("cannot remove the staging folder")?;
        Ok((RunOutcome::DryRun, None))
    } else if verdict.holds() {
        let id = hold(store, staging, entries, format, verdict).await?;
        Ok((RunOutcome::Held, Some(id)))
    } else {
        let files = entries.len();
        let id = store
            .publish(staging, entries, format, destinations)
            .await
            .context("cannot publish the snapshot")?;
        info!(
            snapshot_id = id.0,
            files,
            total_rows = built.total_rows(),
            "snapshot published"
        );
        Ok((RunOutcome::Published, Some(id)))
    }
}

/// Renders every file once (see the `render` module), logging how many differ from `current`.
fn render(built: &Built, current: Option<&Snapshot>, store: &Store) -> anyhow::Result<Rendered> {
    let started = Instant::now();
    let rendered = render_files(built, current, store)?;
    info!(
        files = rendered.files.len(),
        changed = rendered.files.iter().filter(|f| f.changed).count(),
        duration_ms = started.elapsed().as_millis() as u64,
        "files rendered"
    );
    Ok(rendered)
}

/// The end of a run that found the export equal to the current snapshot: nothing to publish,
/// and a snapshot held earlier is now out of date.
async fn unchanged(
    store: &Store,
    previous_snapshot: Option<i64>,
    rendered: &[render::RenderedFile],
    dry_run: bool,
) -> anyhow::Result<ExportReport> {
    info!(
        snapshot_id = previous_snapshot,
        "data unchanged since the current snapshot; nothing to publish"
    );
    if !dry_run {
        store
            .supersede_held()
            .await
            .context("cannot supersede held snapshots")?;
    }
    Ok(ExportReport {
        outcome: RunOutcome::Unchanged,
        snapshot_id: None,
        held_reasons: Vec::new(),
        previous_snapshot,
        files: compare::unchanged(rendered),
    })
}

/// The publish gate: what is left after the drops must pass `validate --strict`.
fn gate_errors(findings: Vec<Violation>) -> Vec<Violation> {
    #[allow(unused_mut)]
    let mut invalid: Vec<Violation> = findings
        .into_iter()
        .filter(|v| v.severity == Severity::Error)
        .collect();
    // The builder drops everything the gate would reject, so no SIS data reaches this hold;
    // debug builds (the tests) can fake a finding to prove the hold works end to end.
    #[cfg(debug_assertions)]
    if let Ok(file) = std::env::var("SDS_SYNC_TEST_INVALID") {
        invalid.push(Violation {
            file,
            line: Some(2),
            column: None,
            message: "a finding injected by SDS_SYNC_TEST_INVALID (debug builds only)".into(),
            severity: Severity::Error,
            rule: "test",
        });
    }
    invalid
}

/// The mass-change guard's verdict: on the diffs, or for a first snapshot after `reset-state`,
/// on the counts the reset recorded.
fn judge(
    guard: &GuardConfig,
    store: &Store,
    has_current: bool,
    guarded: &[(String, FileDiff)],
    built: &Built,
    staging: &Staging,
) -> anyhow::Result<GuardVerdict> {
    let baseline = if has_current {
        None
    } else {
        store
            .baseline()
            .context("cannot read the baseline of reset-state")?
    };
    Ok(match &baseline {
        Some(b) => crate::baseline::judge_first_snapshot(guard, b, built.files(), staging.path())?,
        None => {
            let guarded: Vec<(&str, FileDiff)> =
                guarded.iter().map(|(l, d)| (l.as_str(), *d)).collect();
            evaluate(guard, &guarded, !has_current)
        }
    })
}

/// Records a held snapshot and says why, in the log and (the returned id) in `status`.
async fn hold(
    store: &Store,
    staging: Staging,
    entries: Vec<FileEntry>,
    format: &str,
    verdict: &Verdict,
) -> anyhow::Result<SnapshotId> {
    let invalid = &verdict.invalid;
    // One list of reasons for `status`: the guard's trips, then the gate's findings.
    let mut why: Vec<serde_json::Value> = verdict
        .guard
        .trips
        .iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    why.extend(invalid.iter().map(|v| {
        serde_json::json!({
            "file": v.file,
            "rule": "invalid",
            "check": v.rule,
            "line": v.line,
            "column": v.column,
            "message": v.message,
        })
    }));
    let id = store
        .hold(staging, entries, format, &serde_json::Value::Array(why))
        .await
        .context("cannot record the held snapshot")?;
    for t in &verdict.guard.trips {
        error!(snapshot_id = id.0, file = %t.file, rule = t.rule.as_str(), rows_old = t.rows_old, rows_new = t.rows_new, count = t.count, percent = t.percent, threshold = t.threshold, "mass-change guard tripped");
    }
    // Values can be usernames: the log names the place, `status` shows the message.
    for v in invalid {
        error!(snapshot_id = id.0, file = %v.file, line = v.line, column = v.column.as_deref(), check = v.rule, "export fails validation");
    }
    if !invalid.is_empty() {
        error!(
            snapshot_id = id.0,
            errors = invalid.len(),
            "snapshot held: the export breaks rules SDS enforces (a bug of sds-sync: please report it); `sds-sync status` lists them, `sds-sync approve {}` publishes it anyway",
            id.0
        );
    }
    if verdict.guard.held() {
        error!(
            snapshot_id = id.0,
            "snapshot held by the mass-change guard and not published; check the SIS, then run `sds-sync approve {}` to publish it anyway",
            id.0
        );
    }
    Ok(id)
}

/// An export with its run record: the body of `once` and of each scheduled tick. Deliveries
/// are the caller's business (`once` attempts them inline, the daemon's workers in the background).
pub async fn run_recorded(cfg: &Config, store: &Store) -> anyhow::Result<ExportReport> {
    let run = store.begin_run().await.context("cannot record the run")?;
    let span = info_span!("run", run_id = run.0);
    async {
        let started = Instant::now();
        let result = match RunSettings::from_config(cfg) {
            Ok(settings) => export(&settings, store, false).await,
            Err(e) => Err(e),
        };
        let (outcome, snapshot, err) = match &result {
            Ok(r) => (r.outcome, r.snapshot_id, None),
            Err(e) => (RunOutcome::Failed, None, Some(crate::one_line(e))),
        };
        let rows_json = result.as_ref().ok().and_then(|r| serde_json::to_value(&r.files).ok());
        store
            .finish_run(run, outcome, snapshot, err.as_deref(), rows_json.as_ref())
            .await
            .context("cannot record the end of the run")?;
        let duration = started.elapsed();
        crate::metrics::record_run(outcome, duration);
        if let Ok(r) = &result {
            for f in &r.files {
                crate::metrics::record_file_rows(&f.file, f.rows);
            }
        }
        match &result {
            Ok(_) => info!(outcome = outcome.as_str(), duration_ms = duration.as_millis() as u64, "run finished"),
            Err(e) => error!(outcome = outcome.as_str(), duration_ms = duration.as_millis() as u64, error = %crate::one_line(e), "run failed"),
        }
        result.map_err(|e| e.context(crate::AlreadyLogged))
    }
    .instrument(span)
    .await
}

/// `once`: a recorded run, then one delivery attempt per destination. Returns the report and
/// how many deliveries failed.
pub async fn run_once(
    cfg: &Config,
    store: &Store,
) -> anyhow::Result<(ExportReport, crate::delivery::FailedDeliveries)> {
    log_source_warnings(cfg)?;
    log_destination_warnings(cfg)?;
    let report = run_recorded(cfg, store).await?;
    let names = destination_names(cfg);
    store
        .retire_removed_destinations(&names)
        .await
        .context("cannot close deliveries of removed destinations")?;
    store
        .requeue_current(&names)
        .await
        .context("cannot queue the current snapshot")?;
    let failed = crate::delivery::deliver_pending_now(cfg, store).await?;
    Ok((report, failed))
}
