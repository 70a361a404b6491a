//! Command line: verbs, flags and their help texts; dispatch to the run logic.

use crate::config::{Config, DEFAULT_CONFIG};
use crate::run::{self, ExportReport};
use crate::{baseline, logging, status};
use anyhow::Context;
use clap::{Parser, Subcommand};
use sds_store::RunOutcome;
use sds_store::{SnapshotId, Store, StoreError, StoreOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::warn;

/// Exit status of `once` when the snapshot was held (by the mass-change guard, or because the
/// export fails the publish gate's validation): not a crash, but not something a cron job should
/// report as success either.
pub const EXIT_HELD: u8 = 3;

/// Exports a school SIS database as Microsoft School Data Sync CSV files and delivers them
/// when something changed.
#[derive(Debug, Parser)]
#[command(name = "sds-sync", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Every key can be overridden by SDS_SYNC__SECTION__KEY.
    #[arg(long, short, global = true, env = "SDS_SYNC_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Run one export now: read the SIS, build the files, compare with the last snapshot, and
    /// when something changed publish it and deliver it to every destination (one attempt each,
    /// plus anything still pending). Exit 0 on success or no change, 3 when the snapshot was held
    /// (by the mass-change guard, or because it fails validation), 1 on any error or failed
    /// delivery.
    Once {
        /// Build and compare, print per-file counts and what the guard would say; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run as a service: export on the `[schedule]`, deliver with retries, until SIGTERM/SIGINT.
    /// SIGHUP reloads the configuration (an invalid one is logged and the old one kept).
    Run,
    /// Validate the config, connect to the SIS, run each query with a small limit and check
    /// every destination. Changes nothing.
    Check {
        /// Only validate the configuration (keys, values, secret files, schedule, destination
        /// settings); no network, no database. For systemd's ExecStartPre.
        #[arg(long)]
        offline: bool,
        /// Also send one short test message through each email destination (the plain check
        /// logs in without sending).
        #[arg(long, conflicts_with = "offline")]
        send_test: bool,
    },
    /// Show the current snapshot, held snapshots, recent runs and pending deliveries. Reads
    /// only: changes nothing in the state directory, even after a crash.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// How many recent runs to show.
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// Check a folder of SDS CSV files (ours or anyone's) the way SDS reads them: file names
    /// and the file set, columns by header name (optional ones accepted), CSV shape, required
    /// values, unique IDs, usernames, references, enumerations. One line per finding
    /// (file:line [column]), then a summary. Needs no config. Exit 1 on any error (warnings
    /// alone exit 0).
    Validate {
        /// The folder holding the CSV files.
        dir: PathBuf,
        /// The SDS format the files claim to be.
        #[arg(long, value_enum)]
        format: sds_core::Format,
        /// Also hold the files to sds-sync's own conventions: the exact canonical header, rows
        /// sorted by key, CRLF line ends, no byte-order mark, quotes only where needed, no
        /// unknown file. What every export passes before it is published.
        #[arg(long)]
        strict: bool,
    },
    /// Publish a held snapshot (held by the mass-change guard or the publish gate), after
    /// checking that its data is right, and deliver it.
    Approve {
        /// The id of the held snapshot (see `sds-sync status`).
        snapshot_id: SnapshotId,
    },
    /// Start the state directory over when its database is lost (every other verb refuses a
    /// missing or empty state.sqlite next to snapshot folders): moves the old state DB and
    /// every snapshot folder to `<state.dir>/archive/<time>/` (nothing is deleted) and records
    /// the row counts of the old snapshots, so the next run is a guarded first run: a snapshot
    /// smaller than the last known one is held (exit 3) until `sds-sync approve`. Stop the
    /// service first. Prefer restoring state.sqlite from a backup when you have one.
    ResetState,
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Verb::Validate {
        dir,
        format,
        strict,
    } = &cli.verb
    {
        return validate(dir, *format, *strict);
    }
    let cfg = Config::load(&cli.config).context("cannot load the configuration")?;
    logging::init(&cfg.log).context("cannot set up logging")?;
    // `check` prints them with its report; everyone else logs them.
    if !matches!(cli.verb, Verb::Check { .. }) {
        for w in &cfg.load_warnings {
            warn!(warning = %w, "configuration warning");
        }
    }
    // The rest of the one validation every verb runs before it creates or writes anything:
    // what `check --offline` checks beyond `Config::load`.
    preflight(&cfg)?;
    match cli.verb {
        Verb::Once { dry_run: true } => {
            let store = run::open_store(&cfg).await?;
            let report = match run::RunSettings::from_config(&cfg) {
                Ok(settings) => run::export(&settings, &store, true).await,
                Err(e) => Err(e),
            };
            store.close().await;
            print_report(&report?);
            Ok(ExitCode::SUCCESS)
        }
        Verb::Once { dry_run: false } => {
            let store = run::open_store(&cfg).await?;
            let result = run::run_once(&cfg, &store).await;
            store.close().await;
            let (report, failed) = result?;
            if failed.total() > 0 {
                anyhow::bail!("{}", failed.message());
            }
            Ok(match (report.outcome, report.snapshot_id) {
                (RunOutcome::Held, Some(snapshot_id)) => {
                    eprintln!(
                        "sds-sync: snapshot {snapshot_id} held, not published (`sds-sync status` shows why); `sds-sync approve {snapshot_id}` publishes it"
                    );
                    ExitCode::from(EXIT_HELD)
                }
                _ => ExitCode::SUCCESS,
            })
        }
        Verb::Validate { .. } => unreachable_validate(),
        Verb::Run => {
            crate::service::serve(cli.config, cfg).await?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Check { offline, send_test } => {
            for w in &cfg.load_warnings {
                println!("warning: {w}");
            }
            check_state(&cfg).await?;
            crate::check::check(&cfg, offline, send_test).await?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Status { json, runs } => {
            let store = Store::open_read_only(&cfg.state.dir)
                .await
                .with_context(|| state_dir_context(&cfg))?;
            match store {
                Some(store) => {
                    let result = status::show(&store, json, runs).await;
                    store.close().await;
                    result?;
                }
                None => status::show_nothing_yet(&cfg.state.dir, json)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Verb::ResetState => reset_state(&cfg).await,
        Verb::Approve { snapshot_id } => {
            let store = open_store_or_shared(&cfg).await?;
            let result = approve(&cfg, &store, snapshot_id).await;
            store.close().await;
            result
        }
    }
}

/// What `check --offline` checks beyond [`Config::load`], run by every verb before it creates
/// or writes anything: the secret files are readable and every destination can be built (its
/// key and password files read, its settings accepted).
fn preflight(cfg: &Config) -> anyhow::Result<()> {
    cfg.source_password()?;
    // The SIS settings as `Source::connect` reads them (a `[source] ca_file` included); the
    // warnings themselves are logged by `once`/`run` and printed by `check`.
    run::source_warnings(cfg)?;
    run::destinations(cfg)?;
    Ok(())
}

fn state_dir_context(cfg: &Config) -> String {
    format!(
        "cannot open the state directory {} (config key state.dir)",
        cfg.state.dir.display()
    )
}

/// `check`'s look at the state directory, read-only: a lost state DB fails the check (the
/// service would refuse to start); a directory this user cannot read is only reported.
async fn check_state(cfg: &Config) -> anyhow::Result<()> {
    let dir = cfg.state.dir.display();
    match Store::open_read_only(&cfg.state.dir).await {
        Ok(Some(store)) => {
            let current = store.current().await;
            store.close().await;
            match current {
                Ok(Some(s)) => println!("state: ok ({dir}; current snapshot {})", s.id),
                Ok(None) => println!("state: ok ({dir}; no snapshot published yet)"),
                Err(e) => println!("warning: state: cannot read {dir}: {e}"),
            }
        }
        Ok(None) => println!("state: ok ({dir}; not used yet)"),
        Err(e @ StoreError::StateLost { .. }) => {
            return Err(anyhow::Error::new(e)).with_context(|| state_dir_context(cfg));
        }
        Err(e) => println!("warning: state: cannot inspect {dir}: {e}"),
    }
    Ok(())
}

/// `reset-state`: archives the old state, records the row counts of the old snapshots (in
/// the configured format) as the baseline of the next first snapshot.
async fn reset_state(cfg: &Config) -> anyhow::Result<ExitCode> {
    let reset = Store::begin_reset(&cfg.state.dir).with_context(|| {
        format!(
            "cannot reset the state directory {} (config key state.dir)",
            cfg.state.dir.display()
        )
    })?;
    let opts = cfg.export_options();
    let specs = opts.format.files(opts.license_file);
    let folders = reset.snapshot_folders();
    let mut per_folder = Vec::new();
    for (id, folder) in &folders {
        let (counts, problems) = baseline::count_folder(&specs, folder);
        for p in problems {
            warn!(snapshot_id = id.0, problem = %p, "a file of an archived snapshot cannot be counted; the baseline leaves it out");
        }
        per_folder.push(counts);
    }
    let counts = baseline::largest(per_folder);
    let store_opts = StoreOptions {
        keep_snapshots: cfg.state.keep_snapshots,
        ..StoreOptions::default()
    };
    let (store, report) = reset.finish(counts, store_opts).await.with_context(|| {
        format!(
            "cannot reset the state directory {} (config key state.dir); run reset-state \
                 again once the cause is fixed",
            cfg.state.dir.display()
        )
    })?;
    store.close().await;
    let db = if report.db_files.is_empty() {
        "no state DB (it was gone)".to_owned()
    } else {
        format!("the state DB ({})", report.db_files.join(", "))
    };
    println!(
        "archived {} snapshot folder(s) and {db} to {}",
        report.folders.len(),
        report.archive.display()
    );
    match &report.baseline {
        Some(b) => {
            println!(
                "the next run is a guarded first run: a snapshot with fewer rows than these (beyond \
                 [guard] max_removed_percent) is held, exit 3, until `sds-sync approve ID`:"
            );
            for c in &b.counts {
                println!("  {:<32} {:>9} rows", c.label(), c.rows);
            }
        }
        None if folders.is_empty() => {
            println!("there was no snapshot to count: the next run is an ordinary first run")
        }
        None => println!(
            "warning: none of the archived snapshots has files of format {} to count: the next \
             run is an ordinary first run that the mass-change guard cannot judge",
            opts.format.as_str()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn unreachable_validate() -> anyhow::Result<ExitCode> {
    anyhow::bail!("validate is handled before the configuration is loaded")
}

fn validate(
    dir: &std::path::Path,
    format: sds_core::Format,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    use sds_core::validate::{SetCheck, Severity};
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("cannot read the folder {}", dir.display()))?
            .path();
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv && path.is_file() {
            names.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    names.sort();
    // One file in memory at a time, each after the files it refers to.
    let mut set = SetCheck::new(format, strict);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for level in set.plan(&refs) {
        for planned in level {
            let path = dir.join(&planned.name);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut check = set.file(&planned);
            check.check_bytes(&bytes);
            let done = check.finish();
            set.absorb(done);
        }
    }
    let findings = set.finish();
    let errors = findings
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .count();
    for v in &findings {
        println!("{v}");
    }
    println!(
        "{}: {} file(s), {errors} error(s), {} warning(s) (SDS {format}{})",
        dir.display(),
        names.len(),
        findings.len() - errors,
        if strict { ", strict" } else { "" }
    );
    if errors > 0 {
        anyhow::bail!(
            "{errors} error(s) in {} against SDS {format}",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The state directory with its lock, or, when a running daemon holds the lock, shared (reads
/// and approvals only) so that `status` and `approve` work next to the service.
async fn open_store_or_shared(cfg: &Config) -> anyhow::Result<sds_store::Store> {
    match run::open_store(cfg).await {
        Ok(store) => Ok(store),
        Err(e)
            if matches!(
                e.downcast_ref::<sds_store::StoreError>(),
                Some(sds_store::StoreError::Locked { .. })
            ) =>
        {
            sds_store::Store::open_shared(&cfg.state.dir)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the state directory {} next to the running daemon",
                        cfg.state.dir.display()
                    )
                })
        }
        Err(e) => Err(e),
    }
}

async fn approve(
    cfg: &Config,
    store: &sds_store::Store,
    id: SnapshotId,
) -> anyhow::Result<ExitCode> {
    store
        .approve(id, &run::destination_names(cfg))
        .await
        .with_context(|| format!("cannot approve snapshot {id}"))?;
    tracing::info!(snapshot_id = id.0, "held snapshot approved and published");
    println!("snapshot {id} approved and published");
    if !store.is_exclusive() {
        println!(
            "a running sds-sync daemon holds the state directory; it delivers the snapshot within a minute"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let failed = crate::delivery::deliver_pending_now(cfg, store).await?;
    if failed.total() > 0 {
        anyhow::bail!("{}", failed.message());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &ExportReport) {
    match r.previous_snapshot {
        Some(id) => println!("compared with snapshot {id}"),
        None => println!("no snapshot published yet: everything is new"),
    }
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9}",
        "file", "rows", "added", "removed", "changed"
    );
    for f in &r.files {
        match f.diff {
            Some(d) => println!(
                "{:<24} {:>9} {:>9} {:>9} {:>9}",
                f.file, f.rows, d.added, d.removed, d.changed
            ),
            None => println!(
                "{:<24} {:>9} {:>9} {:>9} {:>9}",
                f.file, f.rows, f.rows, "-", "-"
            ),
        }
    }
    match r.outcome {
        RunOutcome::Unchanged => println!("result: unchanged; nothing would be published"),
        RunOutcome::DryRun if r.held_reasons.is_empty() => {
            println!(
                "guard: pass\nresult: a new snapshot would be published (dry run: nothing was changed)"
            )
        }
        RunOutcome::DryRun => {
            println!("guard: HOLD");
            for reason in &r.held_reasons {
                println!("  {reason}");
            }
            println!(
                "result: the snapshot would be held, not published (dry run: nothing was changed)"
            );
        }
        RunOutcome::Running | RunOutcome::Published | RunOutcome::Held | RunOutcome::Failed => {}
    }
}
