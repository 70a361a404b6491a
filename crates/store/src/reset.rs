//! `sds-sync reset-state`: starting a state directory over on purpose, without losing anything
//! and without giving up the mass-change guard.
//!
//! The old state DB and every snapshot folder are moved (never deleted) into
//! `<dir>/archive/<time>/`, and the row counts of the old snapshots, which the caller computes
//! (this crate knows no SDS format), are written to `<dir>/baseline.json` *before* anything is
//! moved. While no snapshot is current, the daemon judges a new export against that baseline
//! instead of waving it through as a first snapshot, so a SIS glitch returning no students right
//! after a reset is held, not delivered. Publishing or approving a snapshot retires the baseline.
//!
//! A crash at any step leaves a state that is refused (DB moved away, folders still there: run
//! `reset-state` again) or a guarded first run (baseline written, DB and folders archived), never
//! an unguarded one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::fsutil::{self, io_err};
use crate::integrity::snapshot_folder_ids;
use crate::{DB_FILE, SNAPSHOTS_DIR, STAGING_DIR, SnapshotId, Store, StoreOptions};

/// `<dir>/baseline.json`: the row counts a first snapshot after a reset is judged against.
pub(crate) const BASELINE_FILE: &str = "baseline.json";
/// `<dir>/archive/<time>/`: what each reset moved out of the way.
const ARCHIVE_DIR: &str = "archive";
/// The archive's own record of the reset (the same counts, and which folders it holds).
const ARCHIVE_NOTE: &str = "reset.json";

/// The rows one file (or one entity of a file mixing students and teachers) had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineCount {
    /// File name, e.g. `Student.csv`.
    pub file: String,
    /// The entity within a mixed file (`student`, `teacher`), as the guard labels it.
    #[serde(default)]
    pub entity: Option<String>,
    pub rows: u64,
}

impl BaselineCount {
    /// The label the mass-change guard uses: `Student.csv` or `users.csv (teacher)`.
    pub fn label(&self) -> String {
        match &self.entity {
            Some(e) => format!("{} ({e})", self.file),
            None => self.file.clone(),
        }
    }
}

/// The last known size of the export, recorded by `reset-state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub recorded_at: DateTime<Utc>,
    /// Where the reset put the old state DB and snapshot folders.
    pub archive: PathBuf,
    /// One entry per label, the largest count seen among the archived snapshots.
    pub counts: Vec<BaselineCount>,
}

impl Baseline {
    /// `counts` on top of `self`: per label the larger count wins, so a reset repeated before
    /// anything was published never lowers the bar.
    fn merged(previous: Option<Baseline>, counts: Vec<BaselineCount>, archive: &Path) -> Baseline {
        let mut by_label: BTreeMap<String, BaselineCount> = BTreeMap::new();
        let old = previous.map(|b| b.counts).unwrap_or_default();
        for c in old.into_iter().chain(counts) {
            match by_label.get_mut(&c.label()) {
                Some(have) if have.rows >= c.rows => {}
                Some(have) => have.rows = c.rows,
                None => {
                    by_label.insert(c.label(), c);
                }
            }
        }
        Baseline {
            recorded_at: Utc::now(),
            archive: archive.to_path_buf(),
            counts: by_label.into_values().collect(),
        }
    }
}

pub(crate) fn read_baseline(dir: &Path) -> Result<Option<Baseline>> {
    let path = dir.join(BASELINE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        StoreError::Usage(format!(
            "{} is not a baseline written by sds-sync ({e}); restore it from the archive's \
             {ARCHIVE_NOTE}, or run `sds-sync reset-state` after moving it away",
            path.display()
        ))
    })
}

/// Writes `<dir>/baseline.json` durably: a temporary file, fsynced, renamed over, directory
/// fsynced.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::Usage(format!("cannot serialize {}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    let write = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()
    };
    write().map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
    if let Some(parent) = path.parent() {
        fsutil::sync_dir(parent)?;
    }
    Ok(())
}

/// Removes the baseline once a snapshot is current; true if there was one.
pub(crate) fn retire_baseline(dir: &Path) -> Result<bool> {
    let path = dir.join(BASELINE_FILE);
    match fs::remove_file(&path) {
        Ok(()) => {
            fsutil::sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", &path)(e)),
    }
}

/// A reset in progress: the state directory is locked; the caller reads the snapshot folders
/// to count their rows, then calls [`Reset::finish`].
pub struct Reset {
    dir: PathBuf,
    lock_file: fs::File,
    folders: Vec<SnapshotId>,
    previous: Option<Baseline>,
}

impl std::fmt::Debug for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reset")
            .field("dir", &self.dir)
            .field("folders", &self.folders)
            .finish()
    }
}

/// What a reset did, for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetReport {
    pub archive: PathBuf,
    /// Snapshot folders moved into the archive.
    pub folders: Vec<SnapshotId>,
    /// The state DB files moved into the archive (none when the DB was already gone).
    pub db_files: Vec<String>,
    /// The baseline now in force (`None`: nothing to count; the next run is an ordinary first
    /// run).
    pub baseline: Option<Baseline>,
}

impl Store {
    /// Starts `sds-sync reset-state` on `dir`: takes the lock (a running daemon makes this fail
    /// with [`StoreError::Locked`]) without opening the state DB, which may be missing, empty or
    /// unreadable: that is what a reset is for.
    pub fn begin_reset(dir: &Path) -> Result<Reset> {
        if !dir.is_dir() {
            return Err(StoreError::Usage(format!(
                "the state directory {} does not exist: there is nothing to reset",
                dir.display()
            )));
        }
        let lock_file = crate::take_lock(dir)?;
        let folders = snapshot_folder_ids(dir)?
            .into_iter()
            .map(SnapshotId)
            .collect();
        let previous = read_baseline(dir)?;
        Ok(Reset {
            dir: dir.to_path_buf(),
            lock_file,
            folders,
            previous,
        })
    }

    /// The baseline left by `reset-state`, if any. Only meaningful while no snapshot is current:
    /// publishing or approving one retires it.
    pub fn baseline(&self) -> Result<Option<Baseline>> {
        read_baseline(&self.dir)
    }
}

impl Reset {
    /// The snapshot folders the reset will archive, by id.
    pub fn snapshot_folders(&self) -> Vec<(SnapshotId, PathBuf)> {
        self.folders
            .iter()
            .map(|id| (*id, self.dir.join(SNAPSHOTS_DIR).join(id.0.to_string())))
            .collect()
    }

    /// Records `counts` (merged with a baseline an earlier reset left), archives the state DB
    /// and every snapshot and staging folder, and opens the fresh state directory.
    pub async fn finish(
        self,
        counts: Vec<BaselineCount>,
        opts: StoreOptions,
    ) -> Result<(Store, ResetReport)> {
        let dir = self.dir.clone();
        let archive_root = dir.join(ARCHIVE_DIR);
        fsutil::create_private_dir(&archive_root)?;
        let archive = new_archive_folder(&archive_root)?;

        let baseline = if counts.is_empty() && self.previous.is_none() {
            None
        } else {
            Some(Baseline::merged(self.previous.clone(), counts, &archive))
        };
        #[derive(Serialize)]
        struct Note<'a> {
            reset_at: DateTime<Utc>,
            snapshot_folders: Vec<i64>,
            baseline: Option<&'a Baseline>,
        }
        write_json(
            &archive.join(ARCHIVE_NOTE),
            &Note {
                reset_at: Utc::now(),
                snapshot_folders: self.folders.iter().map(|id| id.0).collect(),
                baseline: baseline.as_ref(),
            },
        )?;
        // The baseline goes first: from here on a crash can only leave a refused or a guarded
        // state directory.
        if let Some(b) = &baseline {
            write_json(&dir.join(crate::reset::BASELINE_FILE), b)?;
        }

        // Snapshot ids are never reused, across a reset too: a snapshot id in an old log or
        // e-mail must keep meaning the archived files, not a new snapshot.
        let last_id = highest_known_id(&dir, &self.folders).await;

        // The DB before the folders: a DB gone with folders still there is refused (and a second
        // `reset-state` finishes the job); folders gone with the old DB still there would be a
        // history without its files.
        let mut db_files = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let name = format!("{DB_FILE}{suffix}");
            if move_if_present(&dir.join(&name), &archive.join(&name))? {
                db_files.push(name);
            }
        }
        fsutil::sync_dir(&dir)?;
        for sub in [SNAPSHOTS_DIR, STAGING_DIR] {
            move_if_present(&dir.join(sub), &archive.join(sub))?;
        }
        fsutil::sync_dir(&archive)?;
        fsutil::sync_dir(&dir)?;
        tracing::warn!(
            archive = %archive.display(),
            snapshot_folders = self.folders.len(),
            db_files = db_files.len(),
            baseline_counts = baseline.as_ref().map_or(0, |b| b.counts.len()),
            "state directory reset: old state archived; the next run is a guarded first run"
        );

        let store = Store::open_locked(&dir, opts, self.lock_file).await?;
        store.continue_ids_after(last_id).await?;
        Ok((
            store,
            ResetReport {
                archive,
                folders: self.folders,
                db_files,
                baseline,
            },
        ))
    }
}

/// The highest snapshot id this state directory ever used, as far as can be told: the folders
/// being archived, the folders of earlier archives, and the old DB's id sequence if it can
/// still be read (it counts pruned snapshots too).
async fn highest_known_id(dir: &Path, folders: &[SnapshotId]) -> i64 {
    let mut highest = folders.iter().map(|id| id.0).max().unwrap_or(0);
    if let Ok(archives) = fs::read_dir(dir.join(ARCHIVE_DIR)) {
        for archive in archives.flatten() {
            if let Ok(ids) = snapshot_folder_ids(&archive.path()) {
                highest = highest.max(ids.into_iter().max().unwrap_or(0));
            }
        }
    }
    let db = dir.join(DB_FILE);
    if crate::integrity::db_file(dir).ok() == Some(crate::integrity::DbFile::Present) {
        let connect = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .create_if_missing(false);
        if let Ok(mut conn) = sqlx::ConnectOptions::connect(&connect).await {
            let seq: Result<Option<(i64,)>, _> =
                sqlx::query_as("SELECT seq FROM sqlite_sequence WHERE name = 'snapshots'")
                    .fetch_optional(&mut conn)
                    .await;
            if let Ok(Some((seq,))) = seq {
                highest = highest.max(seq);
            }
            let _ = sqlx::Connection::close(conn).await;
        }
    }
    highest
}

impl Store {
    /// Makes the next snapshot id larger than `last_id` (SQLite's AUTOINCREMENT sequence).
    async fn continue_ids_after(&self, last_id: i64) -> Result<()> {
        if last_id <= 0 {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(self.db("begin"))?;
        sqlx::query(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'snapshots', 0
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'snapshots')",
        )
        .execute(&mut *tx)
        .await
        .map_err(self.db("continue the snapshot ids"))?;
        sqlx::query("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'snapshots'")
            .bind(last_id)
            .execute(&mut *tx)
            .await
            .map_err(self.db("continue the snapshot ids"))?;
        tx.commit()
            .await
            .map_err(self.db("continue the snapshot ids"))
    }
}

/// A fresh `<archive_root>/<UTC time>` folder (with a suffix if one exists already).
fn new_archive_folder(root: &Path) -> Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    for n in 0..1000 {
        let name = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let path = root.join(name);
        let mut b = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        match b.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create archive folder", &path)(e)),
        }
    }
    Err(StoreError::Usage(format!(
        "cannot find a free archive folder name under {}",
        root.display()
    )))
}

/// Renames `from` to `to` if `from` exists; true if it did.
fn move_if_present(from: &Path, to: &Path) -> Result<bool> {
    match fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("move into the archive", from)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(file: &str, entity: Option<&str>, rows: u64) -> BaselineCount {
        BaselineCount {
            file: file.into(),
            entity: entity.map(Into::into),
            rows,
        }
    }

    #[test]
    fn a_merge_keeps_the_larger_count_of_each_label() {
        let previous = Baseline {
            recorded_at: Utc::now(),
            archive: PathBuf::from("/old"),
            counts: vec![
                count("Student.csv", None, 100),
                count("users.csv", Some("teacher"), 7),
            ],
        };
        let merged = Baseline::merged(
            Some(previous),
            vec![
                count("Student.csv", None, 40),
                count("users.csv", Some("teacher"), 9),
                count("users.csv", Some("student"), 50),
            ],
            Path::new("/new"),
        );
        let got: Vec<(String, u64)> = merged.counts.iter().map(|c| (c.label(), c.rows)).collect();
        assert_eq!(
            got,
            vec![
                ("Student.csv".to_owned(), 100),
                ("users.csv (student)".to_owned(), 50),
                ("users.csv (teacher)".to_owned(), 9),
            ]
        );
        assert_eq!(merged.archive, PathBuf::from("/new"));
    }
}
