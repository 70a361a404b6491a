//! Comparing the new export with the current snapshot, file by file: the row counts the guard
//! judges, logged and reported. The old side is read from the snapshot folder; the new side
//! comes straight from the built tables, never parsed back from the written file.

use super::render::RenderedFile;
use anyhow::{Context, anyhow};
use sds_core::Built;
use sds_core::diff::{DiffError, FileDiff, RowDiff};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use tracing::{info, warn};

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

/// What the guard judges: each file, or each entity of a file that mixes students and teachers
/// (v2/v2.1), labelled like "enrollments.csv (teacher)".
pub type Guarded = Vec<(String, FileDiff)>;

/// A file's diff against the previous snapshot, whole and by entity (empty for a file that
/// does not mix entities); `None` when there is nothing comparable.
type Compared = Option<(FileDiff, BTreeMap<String, FileDiff>)>;

/// Compares every file with the current snapshot's (`previous`, its id; `old_dir`, its folder,
/// `None` when there is no snapshot or its folder is gone), records the counts on each file's
/// entry and logs them. Only the changed files are diffed, in parallel: an identical file has
/// zero changes by construction.
pub fn compare(
    built: &Built,
    files: &mut [RenderedFile],
    old_dir: Option<&Path>,
    previous: Option<i64>,
) -> anyhow::Result<(Vec<FileReport>, Guarded)> {
    let compared: Vec<Compared> = std::thread::scope(|scope| {
        let handles = files
            .iter()
            .map(|f| {
                let (spec, changed, rows) = (f.spec, f.changed, f.entry.rows);
                std::thread::Builder::new()
                    .name("sds-diff".into())
                    .spawn_scoped(scope, move || match (changed, old_dir) {
                        (false, _) => Ok(Some((same_file_diff(rows), BTreeMap::new()))),
                        (true, Some(dir)) => diff_rendered(built, spec, &dir.join(spec.name)),
                        (true, None) => Ok(None),
                    })
                    .context("cannot start a thread to compare the files")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("a file diff thread panicked (a bug: please report it)"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut reports = Vec::new();
    let mut guarded = Guarded::new();
    for (f, compared) in files.iter_mut().zip(compared) {
        let m = &mut f.entry;
        let diff = compared.as_ref().map(|(total, _)| *total);
        log_compared(&m.name, m.rows, diff.as_ref());
        if previous.is_some() && compared.is_none() {
            // Said out loud: a file the guard cannot judge goes out unguarded.
            warn!(
                file = m.name,
                snapshot_id = previous,
                "file cannot be compared with the current snapshot (another format, or its copy \
                 is missing from the state directory); the mass-change guard does not judge it"
            );
        }
        if let Some((d, by_entity)) = compared {
            if by_entity.is_empty() {
                guarded.push((m.name.clone(), d));
            } else {
                guarded.extend(
                    by_entity
                        .into_iter()
                        .map(|(e, g)| (format!("{} ({e})", m.name), g)),
                );
            }
            m.changes = Some(d.counts());
        }
        reports.push(FileReport {
            file: m.name.clone(),
            rows: m.rows,
            bytes: m.bytes,
            changed: f.changed,
            diff,
        });
    }
    Ok((reports, guarded))
}

/// The reports of an unchanged export: every file has the previous snapshot's rows.
pub fn unchanged(files: &[RenderedFile]) -> Vec<FileReport> {
    files
        .iter()
        .map(|f| {
            let m = &f.entry;
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
        .collect()
}

/// The old file at `old` (parsed, streaming) against the rows of the file in `built`.
fn diff_rendered(built: &Built, spec: &sds_core::FileSpec, old: &Path) -> anyhow::Result<Compared> {
    let file = match fs::File::open(old) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", old.display())),
    };
    let what = || format!("cannot compare {} with the previous snapshot", spec.name);
    let mut diff = match RowDiff::open(spec, Some(std::io::BufReader::new(file)), true) {
        Ok(d) => d,
        // The previous snapshot was another format or version: nothing to compare row by row.
        Err(DiffError::Header { .. }) => return Ok(None),
        Err(e) => return Err(e).with_context(what),
    };
    // A failed diff stops the rendering; `finish` says why.
    let rendered = built.rows_to(spec.name, &mut diff);
    let counts = diff.finish().with_context(what)?;
    rendered.with_context(what)?;
    Ok(Some(counts))
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
