//! The check every opener of a state directory makes before it trusts (or touches) anything:
//! snapshot folders under `snapshots/` must all be known to the state DB. A missing, emptied or
//! foreign `state.sqlite` next to existing folders means the history is lost; carrying on would
//! remove the folders as leftovers and make the next export an unguarded first snapshot, so the
//! store refuses with [`StoreError::StateLost`] and leaves the operator to restore the DB or run
//! `sds-sync reset-state`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use sqlx::SqlitePool;

use crate::error::{Result, StoreError};
use crate::fsutil::io_err;
use crate::{DB_FILE, SNAPSHOTS_DIR};

/// Names a [`StoreError::StateLost`] shows before it says "and N more".
const SHOWN_FOLDERS: usize = 10;

/// The ids of the snapshot folders under `<dir>/snapshots/` (entries named by a number; nothing
/// else is ours), ascending. A missing `snapshots/` holds none.
pub(crate) fn snapshot_folder_ids(dir: &Path) -> Result<Vec<i64>> {
    let snapshots = dir.join(SNAPSHOTS_DIR);
    let entries = match fs::read_dir(&snapshots) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &snapshots)(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", &snapshots))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// What is at `<dir>/state.sqlite` before SQLite opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbFile {
    Missing,
    /// Zero bytes (`: > state.sqlite`): SQLite would take it for a new, empty database.
    Empty,
    Present,
}

pub(crate) fn db_file(dir: &Path) -> Result<DbFile> {
    let path = dir.join(DB_FILE);
    match fs::metadata(&path) {
        Ok(m) if m.len() == 0 => Ok(DbFile::Empty),
        Ok(_) => Ok(DbFile::Present),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DbFile::Missing),
        Err(e) => Err(io_err("inspect", &path)(e)),
    }
}

/// Refuses a missing or empty state DB next to snapshot folders, before SQLite creates or opens
/// anything. Returns what the DB file is.
pub(crate) fn check_db_file(dir: &Path) -> Result<DbFile> {
    let file = db_file(dir)?;
    let problem = match file {
        DbFile::Present => return Ok(file),
        DbFile::Missing => "is missing",
        DbFile::Empty => "is empty (0 bytes)",
    };
    let folders = snapshot_folder_ids(dir)?;
    if folders.is_empty() {
        return Ok(file);
    }
    Err(state_lost(dir, problem.to_owned(), &folders))
}

/// Refuses snapshot folders the state DB has no row for (any status, `reserved` included: a
/// reserved row accounts for the folder of an unfinished publish, which recovery removes).
///
/// The folders are listed before the rows are read: a publish commits its reservation before it
/// renames the folder into place, so a concurrent publish can never look like a stranger here.
pub(crate) async fn check_accounted(dir: &Path, pool: &SqlitePool) -> Result<()> {
    let folders = snapshot_folder_ids(dir)?;
    if folders.is_empty() {
        return Ok(());
    }
    let db_path = dir.join(DB_FILE);
    let has_table: Option<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| crate::error::db_error("read the schema", &db_path, e))?;
    let known: HashSet<i64> = if has_table.is_some() {
        sqlx::query_as::<_, (i64,)>("SELECT id FROM snapshots")
            .fetch_all(pool)
            .await
            .map_err(|e| crate::error::db_error("list snapshots", &db_path, e))?
            .into_iter()
            .map(|(id,)| id)
            .collect()
    } else {
        HashSet::new()
    };
    let strangers: Vec<i64> = folders
        .iter()
        .copied()
        .filter(|id| !known.contains(id))
        .collect();
    if strangers.is_empty() {
        return Ok(());
    }
    let problem = if known.is_empty() {
        "has no record of any snapshot".to_owned()
    } else {
        format!(
            "does not know {} of them (restored from an older backup?)",
            strangers.len()
        )
    };
    Err(state_lost(dir, problem, &strangers))
}

fn state_lost(dir: &Path, problem: String, folders: &[i64]) -> StoreError {
    let mut shown: Vec<String> = folders
        .iter()
        .take(SHOWN_FOLDERS)
        .map(i64::to_string)
        .collect();
    if folders.len() > SHOWN_FOLDERS {
        shown.push(format!("and {} more", folders.len() - SHOWN_FOLDERS));
    }
    StoreError::StateLost {
        db: dir.join(DB_FILE),
        problem,
        snapshots: dir.join(SNAPSHOTS_DIR),
        folders: shown.join(", "),
    }
}
