//! One run, end to end: extract from the SIS, build the SDS files into a staging folder, diff
//! against the last published snapshot, guard, publish, deliver. Also `check`. Business rules
//! live in the crates; this module only sequences them, records runs and logs.

use crate::backoff::RetryPolicy;
use crate::config::{Config, DestinationSection};
use crate::metrics::DeliveryOutcome;
use anyhow::{Context, anyhow};
use chrono::Utc;
use sds_core::contract::MAX_COLUMNS;
use sds_core::diff::{ContentHash, DiffError, FileDiff, HashingWriter, diff_files_by_entity};
use sds_core::guard::{GuardVerdict, evaluate};
use sds_core::validate::{FileDone, Planned, SetCheck, Severity, Violation};
use sds_core::{Builder, Built, Entity, FileSpec};
use sds_deliver::email::EmailDestination;
use sds_deliver::ftp::FtpDestination;
use sds_deliver::sftp::SftpDestination;
use sds_deliver::{Destination, FileSet, LocalConfig, LocalDestination, RowChanges, SetFile};
use sds_source::{Source, SourceConfig};
use sds_store::{
    DeliveryFailure, FileChanges, FileManifest, Job, RunOutcome, SnapshotId, Store, StoreOptions,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::path::Path;
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

/// Rows per message from the reader to the build thread: enough that the channel costs
/// nothing per row, few enough that the rows in flight cost a few megabytes at most.
const BATCH_ROWS: usize = 2048;
const BATCHES_IN_FLIGHT: usize = 4;

/// Rows of one entity on their way to the build thread: all values in one arena, so a batch
/// costs no allocation per value, and batches go back to the reader to be filled again, so
/// memory is never allocated on one thread and freed on the other (glibc's malloc makes that
/// slow: the first version of this channel, one `Vec<Option<String>>` per row, cost more CPU
/// than it saved).
struct Batch {
    entity: Entity,
    width: usize,
    text: String,
    /// `width` cells per row: the value's range in `text`, or `None` for NULL.
    cells: Vec<Option<(usize, usize)>>,
}

impl Batch {
    fn new(entity: Entity) -> Batch {
        Batch {
            entity,
            width: entity.columns().len(),
            text: String::new(),
            cells: Vec::new(),
        }
    }

    fn reset(&mut self, entity: Entity) {
        self.entity = entity;
        self.width = entity.columns().len();
        self.text.clear();
        self.cells.clear();
    }

    fn push(&mut self, values: &[Option<&str>]) {
        for i in 0..self.width {
            let cell = values.get(i).copied().flatten().map(|v| {
                let start = self.text.len();
                self.text.push_str(v);
                (start, self.text.len())
            });
            self.cells.push(cell);
        }
    }

    fn rows(&self) -> usize {
        self.cells.len() / self.width.max(1)
    }

    /// Hands each row to `f` as borrowed values.
    fn for_each_row(&self, mut f: impl FnMut(&[Option<&str>])) {
        for row in self.cells.chunks(self.width.max(1)) {
            let values: [Option<&str>; MAX_COLUMNS] = std::array::from_fn(|i| {
                row.get(i)
                    .copied()
                    .flatten()
                    .and_then(|(a, b)| self.text.get(a..b))
            });
            f(values.get(..row.len()).unwrap_or(&values));
        }
    }
}

/// Reads every entity from the SIS into a builder and finishes the export.
///
/// The builder runs on a thread of its own: validating and interning a row costs about as much
/// as decoding it, and at district scale (7.5 million enrollments) both take seconds, so they
/// overlap on two cores instead of adding up on one.
pub async fn extract_and_build(cfg: &Config, source: &Source) -> anyhow::Result<Built> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch>();
    let opts = cfg.export_options();
    let entities = read_entities(&opts);
    // Which contract columns each query returns decides which optional columns are written.
    let mut returned = Vec::new();
    if opts.full_formats() {
        for &entity in &entities {
            let present = source
                .returned_columns(entity)
                .await
                .with_context(|| format!("cannot read {entity} from the SIS"))?;
            returned.push((entity, present));
        }
    }
    let build_thread = std::thread::Builder::new()
        .name("sds-build".into())
        .spawn(move || {
            let mut builder = Builder::new(opts);
            for (entity, present) in &returned {
                builder.returned(*entity, present);
            }
            for batch in full_rx {
                batch.for_each_row(|values| builder.push_row(batch.entity, values));
                // The reader may be gone already (an error); the batch is then just dropped.
                let _ = empty_tx.send(batch);
            }
            builder
        })
        .context("cannot start the build thread")?;
    let read = read_all(source, &entities, &full_tx, &empty_rx).await;
    // Closing the channel lets the thread finish what is queued and hand the builder back.
    drop(full_tx);
    let builder = build_thread
        .join()
        .map_err(|_| anyhow!("the build thread stopped unexpectedly (a bug: please report it)"))?;
    read?;
    let built = builder.finish().context("cannot build the export")?;
    let limit = cfg.export.max_rows_per_file;
    for spec in built.files() {
        let rows = built.row_count(spec.name);
        if rows > limit {
            return Err(FileTooLarge {
                file: spec.name.to_owned(),
                rows,
                limit,
            }
            .into());
        }
    }
    // Stable fields: file, reason, count, ids (up to 20, the smallest).
    for d in built.drops() {
        warn!(file = d.file, reason = %d.reason, count = d.count, ids = ?d.ids, "rows dropped");
    }
    for w in built.warnings() {
        warn!(warning = %w, "export warning");
    }
    Ok(built)
}

/// The six core entities, then the optional queries the config switches on.
fn read_entities(opts: &sds_core::ExportOptions) -> Vec<Entity> {
    Entity::ALL
        .into_iter()
        .chain(Entity::OPTIONAL.into_iter().filter(|e| opts.reads(*e)))
        .collect()
}

/// Streams every entity's rows to the build thread in batches, logging one line per query.
async fn read_all(
    source: &Source,
    entities: &[Entity],
    full: &std::sync::mpsc::SyncSender<Batch>,
    empty: &std::sync::mpsc::Receiver<Batch>,
) -> anyhow::Result<()> {
    let fresh = |entity: Entity| match empty.try_recv() {
        Ok(mut b) => {
            b.reset(entity);
            b
        }
        Err(_) => Batch::new(entity),
    };
    for &entity in entities {
        let started = Instant::now();
        let mut batch = fresh(entity);
        let mut builder_gone = false;
        let rows = source
            .read(entity, |values| {
                batch.push(values);
                if batch.rows() == BATCH_ROWS {
                    let full_batch = std::mem::replace(&mut batch, fresh(entity));
                    builder_gone |= full.send(full_batch).is_err();
                }
            })
            .await
            .with_context(|| format!("cannot read {entity} from the SIS"))?;
        if batch.rows() > 0 {
            builder_gone |= full.send(batch).is_err();
        }
        if builder_gone {
            return Err(anyhow!(
                "the build thread stopped while reading {entity} (a bug: please report it)"
            ));
        }
        info!(
            entity = entity.key(),
            rows,
            duration_ms = started.elapsed().as_millis() as u64,
            "extracted"
        );
    }
    Ok(())
}

/// Writes every file of `built` into `dir`, hashing as it writes, and checks every row as it is
/// written against the rules of `sds-sync validate --strict` (the publish gate): one rendering
/// feeds the file, its hash and the check; nothing is read back. Files go level by level, each
/// after the files it refers to (the check needs their IDs), the files of a level in parallel.
/// Returns the manifest in file order and the gate's findings. Durability is the store's:
/// `Store::publish`/`hold` check and fsync every staged file before moving the folder.
pub fn write_files(
    built: &Built,
    dir: &Path,
) -> anyhow::Result<(Vec<FileManifest>, Vec<Violation>)> {
    let mut gate = SetCheck::new(built.format(), true);
    let names: Vec<&str> = built.files().iter().map(|f| f.name).collect();
    let mut manifest: Vec<Option<FileManifest>> = built.files().iter().map(|_| None).collect();
    for level in gate.plan(&names) {
        let done = std::thread::scope(|scope| {
            let gate = &gate;
            let handles = level
                .iter()
                .map(|planned| {
                    std::thread::Builder::new()
                        .name("sds-render".into())
                        .spawn_scoped(scope, move || write_checked(built, dir, gate, planned))
                        .context("cannot start a thread to write the files")
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|_| {
                        anyhow!("a file writer thread panicked (a bug: please report it)")
                    })?
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        for (m, checked) in done {
            if let Some(slot) = built
                .files()
                .iter()
                .position(|f| f.name == m.name)
                .and_then(|i| manifest.get_mut(i))
            {
                *slot = Some(m);
            }
            gate.absorb(checked);
        }
    }
    let manifest = manifest
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("a file of the export was not written (a bug: please report it)"))?;
    Ok((manifest, gate.finish()))
}

/// One file of [`write_files`]: written, hashed and checked in one rendering.
fn write_checked(
    built: &Built,
    dir: &Path,
    gate: &SetCheck,
    planned: &Planned,
) -> anyhow::Result<(FileManifest, FileDone)> {
    // The export's own spec of the file: its header has the optional columns it writes.
    let spec = built.spec(planned.spec.name).unwrap_or(planned.spec);
    let path = dir.join(spec.name);
    let mut check = gate.file(planned);
    check.header(&spec.header());
    check.expect_rows(built.row_count(spec.name));
    let mut write = || -> std::io::Result<FileManifest> {
        let file = fs::File::create(&path)?;
        let mut w = HashingWriter::new(BufWriter::new(file));
        built.write_file_to(spec.name, &mut w, &mut check)?;
        let (buf, hash) = w.finish();
        // Flushes, so a full disk is reported here, with the file's name.
        buf.into_inner().map_err(|e| e.into_error())?;
        Ok(manifest_of(built, spec, hash))
    };
    let m =
        write().with_context(|| format!("cannot write {} (is the disk full?)", path.display()))?;
    Ok((m, check.finish()))
}

/// The manifest `write_files` would produce, computed by rendering every file into a hashing
/// sink: an unchanged export is recognised without writing (and fsyncing) a byte.
pub fn fingerprint_files(built: &Built) -> anyhow::Result<Vec<FileManifest>> {
    per_file(built, |spec| {
        let mut w = HashingWriter::new(std::io::sink());
        built
            .write_file(spec.name, &mut w)
            .with_context(|| format!("cannot render {}", spec.name))?;
        let (_, hash) = w.finish();
        Ok(manifest_of(built, spec, hash))
    })
}

/// `f` for every file of `built`, one thread each (the files are independent and rendering the
/// largest alone takes over a second at district scale); results in file order.
fn per_file(
    built: &Built,
    f: impl Fn(&FileSpec) -> anyhow::Result<FileManifest> + Sync,
) -> anyhow::Result<Vec<FileManifest>> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles = built
            .files()
            .iter()
            .map(|spec| {
                std::thread::Builder::new()
                    .name("sds-render".into())
                    .spawn_scoped(scope, move || f(spec))
                    .context("cannot start a thread to write the files")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| {
                    anyhow!("a file writer thread panicked (a bug: please report it)")
                })?
            })
            .collect()
    })
}

fn manifest_of(built: &Built, spec: &FileSpec, hash: ContentHash) -> FileManifest {
    FileManifest {
        name: spec.name.to_owned(),
        rows: built.row_count(spec.name),
        bytes: hash.bytes,
        hash: hash.hash,
        license: spec.license,
        changes: None,
    }
}

/// The diff of a file whose bytes equal the previous snapshot's.
fn same_file_diff(rows: u64) -> FileDiff {
    FileDiff {
        rows_old: rows,
        rows_new: rows,
        ..FileDiff::default()
    }
}

fn log_compared(file: &str, rows: u64, diff: Option<&FileDiff>) {
    match diff {
        Some(d) => info!(
            file,
            rows,
            added = d.added,
            removed = d.removed,
            changed = d.changed,
            "file compared"
        ),
        None => info!(file, rows, "file has no previous version to compare"),
    }
}

/// Per-file outcome of a run, as logged, printed and stored with the run.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub changed: bool,
    /// None when there is no comparable previous file (first snapshot, format change).
    pub diff: Option<FileDiff>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ExportOutcome {
    Unchanged,
    Published {
        snapshot_id: i64,
    },
    Held {
        snapshot_id: i64,
        reasons: Vec<String>,
    },
    DryRun {
        would_publish: bool,
        held_reasons: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub previous_snapshot: Option<i64>,
    pub files: Vec<FileReport>,
    #[serde(flatten)]
    pub outcome: ExportOutcome,
}

fn diff_one(
    spec: &FileSpec,
    prev_dir: Option<&Path>,
    new_path: &Path,
) -> anyhow::Result<Option<(FileDiff, BTreeMap<String, FileDiff>)>> {
    let Some(prev_dir) = prev_dir else {
        return Ok(None);
    };
    let old_path = prev_dir.join(spec.name);
    let old = match fs::File::open(&old_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", old_path.display())),
    };
    let new =
        fs::File::open(new_path).with_context(|| format!("cannot read {}", new_path.display()))?;
    match diff_files_by_entity(
        spec,
        Some(std::io::BufReader::new(old)),
        std::io::BufReader::new(new),
    ) {
        Ok(d) => Ok(Some(d)),
        // The previous snapshot was another format or version: nothing to compare row by row.
        Err(DiffError::Header { .. }) => Ok(None),
        Err(e) => Err(e)
            .with_context(|| format!("cannot compare {} with the previous snapshot", spec.name)),
    }
}

/// Extract, build, diff, guard and (unless `dry_run`) publish or hold. Deliveries are separate.
pub async fn export(cfg: &Config, store: &Store, dry_run: bool) -> anyhow::Result<ExportReport> {
    let source = Source::connect(&source_config(cfg)?)
        .await
        .context("cannot connect to the SIS")?;
    info!(source = %source.describe(), format = cfg.export.format.as_str(), dry_run, "run started");
    let built = extract_and_build(cfg, &source).await;
    source.close().await;
    let built = built?;

    let previous = store
        .current()
        .await
        .context("cannot read the current snapshot")?;
    let previous_snapshot = previous.as_ref().map(|p| p.id.0);

    // Most runs find nothing changed (SDS allows few syncs a day, the schedule runs more
    // often): decide that from fingerprints, before a staging folder or a diff exists.
    if let Some(prev) = &previous {
        let prints = fingerprint_files(&built)?;
        if prev.same_content(&prints) {
            let files = prints
                .iter()
                .map(|m| {
                    let diff = same_file_diff(m.rows);
                    log_compared(&m.name, m.rows, Some(&diff));
                    FileReport {
                        file: m.name.clone(),
                        rows: m.rows,
                        bytes: m.bytes,
                        changed: false,
                        diff: Some(diff),
                    }
                })
                .collect();
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
            return Ok(ExportReport {
                previous_snapshot,
                files,
                outcome: ExportOutcome::Unchanged,
            });
        }
    }

    let staging = store
        .new_staging()
        .context("cannot create a staging folder in the state directory")?;
    let (mut manifest, gate) = write_files(&built, staging.path())?;
    // The publish gate: what is left after the drops must pass `validate --strict`.
    #[allow(unused_mut)]
    let mut invalid: Vec<Violation> = gate
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
    let prev_dir = previous
        .as_ref()
        .filter(|p| p.folder_present)
        .map(|p| p.folder.as_path());

    let mut files = Vec::new();
    // What the guard judges: each file, or each entity of a file that mixes students and
    // teachers (v2/v2.1), labelled like "enrollments.csv (teacher)".
    let mut guarded: Vec<(String, FileDiff)> = Vec::new();
    for (spec, m) in built.files().iter().zip(manifest.iter_mut()) {
        let old = previous
            .as_ref()
            .and_then(|p| p.files.iter().find(|f| f.name == m.name));
        let changed = old.is_none_or(|old| old.hash != m.hash || old.bytes != m.bytes);
        // A file with the previous snapshot's bytes has the previous rows: no need to parse it.
        let compared = if changed {
            diff_one(spec, prev_dir, &staging.path().join(spec.name))?
        } else {
            Some((same_file_diff(m.rows), BTreeMap::new()))
        };
        let diff = compared.as_ref().map(|(total, _)| *total);
        log_compared(spec.name, m.rows, diff.as_ref());
        if previous.is_some() && compared.is_none() {
            // Said out loud: a file the guard cannot judge goes out unguarded.
            warn!(
                file = spec.name,
                snapshot_id = previous_snapshot,
                "file cannot be compared with the current snapshot (another format, or its copy \
                 is missing from the state directory); the mass-change guard does not judge it"
            );
        }
        if let Some((d, by_entity)) = compared {
            if by_entity.is_empty() {
                guarded.push((spec.name.to_owned(), d));
            } else {
                guarded.extend(
                    by_entity
                        .into_iter()
                        .map(|(e, g)| (format!("{} ({e})", spec.name), g)),
                );
            }
            m.changes = Some(FileChanges {
                added: d.added,
                removed: d.removed,
                changed: d.changed,
            });
        }
        files.push(FileReport {
            file: m.name.clone(),
            rows: m.rows,
            bytes: m.bytes,
            changed,
            diff,
        });
    }

    let guarded: Vec<(&str, FileDiff)> = guarded.iter().map(|(l, d)| (l.as_str(), *d)).collect();
    // A first snapshot after `reset-state` is judged against the counts the reset recorded.
    let baseline = match &previous {
        None => store
            .baseline()
            .context("cannot read the baseline of reset-state")?,
        Some(_) => None,
    };
    let verdict: GuardVerdict = match &baseline {
        Some(b) => {
            crate::baseline::judge_first_snapshot(&cfg.guard, b, built.files(), staging.path())?
        }
        None => evaluate(&cfg.guard, &guarded, previous.is_none()),
    };
    let mut reasons: Vec<String> = verdict.trips.iter().map(|t| t.to_string()).collect();
    reasons.extend(invalid.iter().map(|v| format!("invalid: {v}")));
    let held = verdict.held() || !invalid.is_empty();
    if dry_run {
        staging
            .discard()
            .context("cannot remove the staging folder")?;
        return Ok(ExportReport {
            previous_snapshot,
            files,
            outcome: ExportOutcome::DryRun {
                would_publish: !held,
                held_reasons: reasons,
            },
        });
    }
    if held {
        // One list of reasons for `status`: the guard's trips, then the gate's findings.
        let mut why: Vec<serde_json::Value> = verdict
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
            .hold(
                staging,
                manifest,
                built.format().as_str(),
                &serde_json::Value::Array(why),
            )
            .await
            .context("cannot record the held snapshot")?;
        for t in &verdict.trips {
            error!(snapshot_id = id.0, file = %t.file, rule = t.rule.as_str(), rows_old = t.rows_old, rows_new = t.rows_new, count = t.count, percent = t.percent, threshold = t.threshold, "mass-change guard tripped");
        }
        // Values can be usernames: the log names the place, `status` shows the message.
        for v in &invalid {
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
        if verdict.held() {
            error!(
                snapshot_id = id.0,
                "snapshot held by the mass-change guard and not published; check the SIS, then run `sds-sync approve {}` to publish it anyway",
                id.0
            );
        }
        return Ok(ExportReport {
            previous_snapshot,
            files,
            outcome: ExportOutcome::Held {
                snapshot_id: id.0,
                reasons,
            },
        });
    }
    let id = store
        .publish(
            staging,
            manifest,
            built.format().as_str(),
            &destination_names(cfg),
        )
        .await
        .context("cannot publish the snapshot")?;
    info!(
        snapshot_id = id.0,
        files = files.len(),
        total_rows = built.total_rows(),
        "snapshot published"
    );
    Ok(ExportReport {
        previous_snapshot,
        files,
        outcome: ExportOutcome::Published { snapshot_id: id.0 },
    })
}

/// The file set of an outbox job, with the diff counts recorded for its snapshot.
pub fn file_set(job: &Job, created_at: String) -> FileSet {
    FileSet {
        snapshot_id: job.snapshot_id.to_string(),
        created_at,
        dir: job.folder.clone(),
        files: job
            .files
            .iter()
            .map(|f| SetFile {
                name: f.name.clone(),
                bytes: f.bytes,
                rows: f.rows,
                changes: f.changes.map(|c| RowChanges {
                    added: c.added,
                    removed: c.removed,
                    changed: c.changed,
                }),
                license: f.license,
            })
            .collect(),
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

/// An export with its run record: the body of `once` and of each scheduled tick. Deliveries
/// are the caller's business (`once` attempts them inline, the daemon's workers in the background).
pub async fn run_recorded(cfg: &Config, store: &Store) -> anyhow::Result<ExportReport> {
    let run = store.begin_run().await.context("cannot record the run")?;
    let span = info_span!("run", run_id = run.0);
    async {
        let started = Instant::now();
        let result = export(cfg, store, false).await;
        let (outcome, snapshot, err) = match &result {
            Ok(r) => match r.outcome {
                ExportOutcome::Unchanged => (RunOutcome::Unchanged, None, None),
                ExportOutcome::Published { snapshot_id } => (RunOutcome::Published, Some(SnapshotId(snapshot_id)), None),
                ExportOutcome::Held { snapshot_id, .. } => (RunOutcome::Held, Some(SnapshotId(snapshot_id)), None),
                ExportOutcome::DryRun { .. } => (RunOutcome::DryRun, None, None),
            },
            Err(e) => (RunOutcome::Failed, None, Some(crate::one_line(e))),
        };
        let rows_json = result.as_ref().ok().and_then(|r| serde_json::to_value(&r.files).ok());
        store
            .finish_run(run, outcome, snapshot, err.as_deref(), rows_json.as_ref())
            .await
            .context("cannot record the end of the run")?;
        let duration = started.elapsed();
        crate::metrics::record_run(metrics_outcome(outcome), duration);
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

pub fn metrics_outcome(outcome: RunOutcome) -> crate::metrics::RunOutcome {
    use crate::metrics::RunOutcome as M;
    match outcome {
        RunOutcome::Published => M::Published,
        RunOutcome::Unchanged | RunOutcome::DryRun => M::Unchanged,
        RunOutcome::Held => M::Held,
        _ => M::Failed,
    }
}

/// `once`: a recorded run, then one delivery attempt per destination. Returns the report and
/// how many deliveries failed.
pub async fn run_once(
    cfg: &Config,
    store: &Store,
) -> anyhow::Result<(ExportReport, FailedDeliveries)> {
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
    let failed = deliver_pending_now(cfg, store).await?;
    Ok((report, failed))
}

pub async fn check(cfg: &Config, offline: bool, send_test: bool) -> anyhow::Result<()> {
    // Everything that needs no network: secrets readable, schedule valid, destinations buildable.
    cfg.source_password()?;
    crate::schedule::Schedule::parse(&cfg.schedule.cron, &cfg.schedule.timezone)?;
    let dests = destinations(cfg)?;
    for w in source_warnings(cfg)? {
        println!("warning: {w}");
    }
    for w in destination_warnings(cfg)? {
        println!("warning: {w}");
    }
    // Asked for a test message that nothing can send: say so rather than pass in silence.
    if send_test && !dests.iter().any(|d| d.kind() == "email") {
        anyhow::bail!(
            "--send-test: no email destination to send a test to (no [[destination]] with kind = \"email\")"
        );
    }
    if offline {
        // What every delivery would refuse for good, found without the network.
        let refused: Vec<_> = dests
            .iter()
            .filter_map(|d| d.check_offline().err())
            .collect();
        if !refused.is_empty() {
            for e in &refused {
                println!("FAILED: {e}");
            }
            anyhow::bail!(
                "{} destination(s) would refuse every delivery; see the report above",
                refused.len()
            );
        }
        println!(
            "config: ok ({} destination(s); offline check: SIS and destinations not contacted)",
            dests.len()
        );
        return Ok(());
    }
    let source = Source::connect(&source_config(cfg)?)
        .await
        .context("cannot connect to the SIS")?;
    println!("config: ok");
    println!("source: connected to {}", source.describe());
    if let Some(transport) = source.transport().await {
        println!("source TLS: {transport}");
    }
    let mut problems = 0;
    for entity in read_entities(&cfg.export_options()) {
        match source.probe(entity).await {
            Ok(()) => println!("query {}: ok", entity.key()),
            Err(e) => {
                problems += 1;
                println!("query {}: FAILED: {e}", entity.key());
            }
        }
    }
    source.close().await;
    for dest in dests {
        // A real round trip per destination (probe file or SMTP login), and what it proved.
        match dest.check().await {
            Ok(()) => println!(
                "destination {} ({}): ok: {}",
                dest.name(),
                dest.kind(),
                dest.check_verified()
            ),
            Err(e) => {
                problems += 1;
                println!("destination {} ({}): FAILED: {e}", dest.name(), dest.kind());
                continue;
            }
        }
        if send_test && let Some(sending) = dest.send_test() {
            match sending.await {
                Ok(what) => println!(
                    "destination {} ({}): test message sent: {what}",
                    dest.name(),
                    dest.kind()
                ),
                Err(e) => {
                    problems += 1;
                    println!(
                        "destination {} ({}): test message FAILED: {e}",
                        dest.name(),
                        dest.kind()
                    );
                }
            }
        }
    }
    if problems > 0 {
        anyhow::bail!("{problems} check(s) failed; see the report above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(batch: &Batch) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        batch.for_each_row(|row| out.push(row.iter().map(|v| v.map(str::to_owned)).collect()));
        out
    }

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

    #[test]
    fn a_batch_gives_back_the_rows_it_was_given() {
        let mut batch = Batch::new(Entity::Sections);
        batch.push(&[Some("001"), Some("MATH"), Some("1"), Some("Algebra, I")]);
        // A short row: the missing optional column reads as NULL, like one the query lacks.
        batch.push(&[Some("001"), Some(""), Some("2")]);
        batch.push(&[Some("002"), None, Some("3"), None]);
        assert_eq!(batch.rows(), 3);
        let s = |v: &str| Some(v.to_owned());
        // Every row is as wide as the contract; the optional columns not given are NULL.
        let row = |mut r: Vec<Option<String>>| {
            r.resize(Entity::Sections.columns().len(), None);
            r
        };
        assert_eq!(
            collect(&batch),
            vec![
                row(vec![s("001"), s("MATH"), s("1"), s("Algebra, I")]),
                row(vec![s("001"), s(""), s("2")]),
                row(vec![s("002"), None, s("3")]),
            ]
        );
    }

    #[test]
    fn a_reused_batch_forgets_its_old_rows_and_width() {
        let mut batch = Batch::new(Entity::Students);
        batch.push(&[Some("7"), Some("001"), Some("Zoë"), Some("O'Brien")]);
        batch.reset(Entity::Schools);
        assert_eq!(batch.rows(), 0);
        batch.push(&[Some("001"), Some("North High")]);
        let mut want = vec![Some("001".to_owned()), Some("North High".to_owned())];
        want.resize(Entity::Schools.columns().len(), None);
        assert_eq!(collect(&batch), vec![want]);
    }
}
