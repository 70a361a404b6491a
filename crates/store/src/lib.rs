//! sds-store owns the state directory of sds-sync: the state DB (SQLite through sqlx, schema in
//! the repository's top-level `migrations/`), the snapshot folders, the delivery outbox and the
//! run history.
//!
//! Architecture invariant: this crate must not speak network protocols; it only records what is
//! to be delivered and what happened. It reads no environment and no config files either: the
//! daemon passes everything in (see [`StoreOptions`]).
//!
//! Layout of the state directory (mode 0700: exports carry names and possibly passwords):
//!
//! ```text
//! <dir>/lock            exclusive lock held while a Store is open (one publisher at a time)
//! <dir>/state.sqlite    the state DB (WAL, synchronous=FULL)
//! <dir>/staging/<name>  folders being written by a run; leftovers are removed at open
//! <dir>/snapshots/<id>  the files of each published or held snapshot
//! <dir>/baseline.json   row counts left by `sds-sync reset-state` (see [`Reset`])
//! <dir>/archive/<time>  what each `reset-state` moved out of the way (never deleted by us)
//! ```
//!
//! Publishing is all or nothing; see [`Store::publish`] for the protocol and why a crash at any
//! point leaves either the old or the new snapshot current.
//!
//! Nothing the state DB does not account for is ever deleted: a snapshot folder without a row
//! means the DB was lost or replaced, and every opener refuses ([`StoreError::StateLost`]) until
//! the operator restores the DB or runs `reset-state`. Only the lock holder cleans up after a
//! crash; [`Store::open_read_only`] and [`Store::open_shared`] change no file.

mod error;
mod fsutil;
mod integrity;
mod outbox;
mod publish;
mod reset;
mod runs;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sds_core::{FileEntry, RowCounts};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use error::{Result, StoreError};
pub use outbox::{DeliveryFailure, Job, JobId, JobStatus, OutboxEntry};
pub use publish::Staging;
pub use reset::{Baseline, BaselineCount, Reset, ResetReport};
pub use runs::{RunId, RunOutcome, RunRecord};

use fsutil::io_err;

/// The schema, embedded at build time so the binary carries its own migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

const DB_FILE: &str = "state.sqlite";
const LOCK_FILE: &str = "lock";
const SNAPSHOTS_DIR: &str = "snapshots";
const STAGING_DIR: &str = "staging";

/// `PRAGMA cache_size` of the daemon's state DB connection: 64 KiB (negative = KiB). SQLite
/// keeps every page it reads or writes cached up to this size, and each run writes new pages
/// (its record, a published snapshot's rows), so the cache grows by ~1.3 KB a run until it is
/// full: at the default (2,000 KiB) a daemon's memory crept up for ~1,500 runs, at 256 KiB
/// still for ~200 (issue 19). A run touches a few dozen pages; misses are served by the OS page
/// cache.
const STATE_DB_CACHE: &str = "-64";

/// Default of [`StoreOptions::keep_runs`].
pub const DEFAULT_KEEP_RUNS: usize = 1_000;

/// A snapshot's id: allocated by the state DB, increasing, never reused. It is also the name of
/// the snapshot's folder and what an operator types for `sds-sync approve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(pub i64);

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SnapshotId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(SnapshotId(n)),
            _ => Err(format!(
                "{s:?} is not a snapshot id (a positive whole number)"
            )),
        }
    }
}

/// Where a snapshot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    /// Published normally; the newest published or approved one is current.
    Published,
    /// Held by the mass-change guard; not current, nothing delivered.
    Held,
    /// Was held, then approved by an operator: published from then on.
    Approved,
    /// Was held, and a newer snapshot was published or held before anyone approved it.
    Superseded,
}

impl SnapshotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Published => "published",
            SnapshotStatus::Held => "held",
            SnapshotStatus::Approved => "approved",
            SnapshotStatus::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "published" => SnapshotStatus::Published,
            "held" => SnapshotStatus::Held,
            "approved" => SnapshotStatus::Approved,
            "superseded" => SnapshotStatus::Superseded,
            _ => return None,
        })
    }
}

impl fmt::Display for SnapshotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published, held, approved or superseded snapshot and its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: SnapshotId,
    pub created_at: DateTime<Utc>,
    /// When it became current (published, or approved); `None` while held or if superseded.
    pub published_at: Option<DateTime<Utc>>,
    pub status: SnapshotStatus,
    /// The SDS format it was built in ("v1", "v2", "v2.1").
    pub format: String,
    pub total_rows: u64,
    /// The guard's verdict when it was held.
    pub guard_json: Option<serde_json::Value>,
    /// `<dir>/snapshots/<id>`.
    pub folder: PathBuf,
    /// False once pruning removed the folder (the row stays for history).
    pub folder_present: bool,
    /// In the order the files were given at publish.
    pub files: Vec<FileEntry>,
}

/// A publish step after which [`StoreOptions::fail_point`] makes publishing stop as if the
/// process had crashed there (nothing is cleaned up), so tests can check recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailPoint {
    /// Files checked and fsynced in the staging folder; no id allocated yet.
    AfterStaging,
    /// Staging folder renamed to `snapshots/<id>`; nothing committed.
    AfterRename,
    /// Snapshot, file and outbox rows written in the transaction, which is then rolled back.
    BeforeCommit,
    /// Committed (the new snapshot is current); old folders not pruned yet.
    AfterCommit,
}

impl FailPoint {
    pub const ALL: [FailPoint; 4] = [
        FailPoint::AfterStaging,
        FailPoint::AfterRename,
        FailPoint::BeforeCommit,
        FailPoint::AfterCommit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailPoint::AfterStaging => "after_staging",
            FailPoint::AfterRename => "after_rename",
            FailPoint::BeforeCommit => "before_commit",
            FailPoint::AfterCommit => "after_commit",
        }
    }
}

impl fmt::Display for FailPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailPoint {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        FailPoint::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            format!("unknown fail point {s:?}; expected one of after_staging, after_rename, before_commit, after_commit")
        })
    }
}

/// How to open the store. The daemon fills this from its config (and, for end-to-end tests, from
/// an environment variable it reads itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Published snapshot folders to keep (`[state] keep_snapshots`, default 10). At least one,
    /// the current snapshot, is always kept.
    pub keep_snapshots: usize,
    /// Runs kept in the run history (`[state] keep_runs`, default 1,000): each finished run
    /// removes the finished runs older than the newest `keep_runs`, so the state DB does not
    /// grow with every run of a daemon that runs for years. At least one is always kept.
    pub keep_runs: usize,
    /// Testing only: simulate a crash at this publish step.
    #[doc(hidden)]
    pub fail_point: Option<FailPoint>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            keep_snapshots: 10,
            keep_runs: DEFAULT_KEEP_RUNS,
            fail_point: None,
        }
    }
}

/// The open state directory. Holds an exclusive lock on `<dir>/lock` until dropped.
pub struct Store {
    dir: PathBuf,
    db_path: PathBuf,
    pool: SqlitePool,
    opts: StoreOptions,
    /// Serializes publish/hold/approve/prune within this process (the lock file does it across
    /// processes), so recovery after a failed step never races another publish.
    publish_lock: tokio::sync::Mutex<()>,
    staging_seq: AtomicU64,
    /// The exclusive lock of the state directory, kept open until the Store is dropped; `None`
    /// for a store opened with [`Store::open_shared`] (reads and approves only) or
    /// [`Store::open_read_only`] (reads only).
    _lock_file: Option<fs::File>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the state directory `dir`, applies migrations and recovers
    /// from any crash of a previous process. See [`Store::open_with`].
    pub async fn open(dir: &Path, keep_snapshots: usize) -> Result<Store> {
        Store::open_with(
            dir,
            StoreOptions {
                keep_snapshots,
                ..StoreOptions::default()
            },
        )
        .await
    }

    /// Opens the state directory: creates it (0700), takes the exclusive lock (a second opener
    /// gets [`StoreError::Locked`]), refuses a state DB that is missing, empty or does not know
    /// the snapshot folders present ([`StoreError::StateLost`]), opens `state.sqlite` (WAL,
    /// synchronous=FULL), applies the migrations, then recovers: leftover staging folders,
    /// folders of publishes that never committed and runs left "running" by a killed process are
    /// cleaned up.
    pub async fn open_with(dir: &Path, opts: StoreOptions) -> Result<Store> {
        fsutil::create_private_dir(dir)?;
        warn_if_shared(dir);
        let lock_file = take_lock(dir)?;
        Store::open_locked(dir, opts, lock_file).await
    }

    /// [`Store::open_with`] once the lock is held.
    pub(crate) async fn open_locked(
        dir: &Path,
        opts: StoreOptions,
        lock_file: fs::File,
    ) -> Result<Store> {
        // Before SQLite creates anything: a missing DB next to snapshot folders is lost history.
        integrity::check_db_file(dir)?;
        fsutil::create_private_dir(&dir.join(SNAPSHOTS_DIR))?;
        fsutil::create_private_dir(&dir.join(STAGING_DIR))?;

        let db_path = dir.join(DB_FILE);
        let connect = SqliteConnectOptions::new()
            .filename(&db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed publish survives a power cut, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", STATE_DB_CACHE);
        // One connection: every statement of this process is serialized, so a read-then-write
        // transaction can never fail with SQLITE_BUSY against another connection of ours. The
        // state DB sees a few statements per run; throughput is not a concern.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect)
            .await
            .map_err(|source| error::db_error("open", &db_path, source))?;

        if let Err(source) = MIGRATOR.run(&pool).await {
            let hint = match source {
                sqlx::migrate::MigrateError::VersionMissing(_) => {
                    " (it was written by a newer sds-sync; run that version or restore a backup)"
                }
                _ => "",
            };
            pool.close().await;
            return Err(StoreError::Migrate {
                path: db_path,
                hint,
                source,
            });
        }

        // Checked before recovery touches anything: folders the DB does not know are not ours to
        // remove.
        if let Err(e) = integrity::check_accounted(dir, &pool).await {
            pool.close().await;
            return Err(e);
        }

        let store = Store {
            dir: dir.to_path_buf(),
            db_path,
            pool,
            opts,
            publish_lock: tokio::sync::Mutex::new(()),
            staging_seq: AtomicU64::new(0),
            _lock_file: Some(lock_file),
        };
        store.recover().await?;
        Ok(store)
    }

    /// Opens the state directory *without* its lock, next to a running daemon that holds it:
    /// for `approve` (one transaction, serialized with the daemon's by SQLite; the daemon's
    /// workers then deliver the queued jobs). No migrations, no recovery, and no publishing
    /// (those need the lock: [`Store::publish`] and friends refuse). Refuses a lost state DB
    /// like [`Store::open_with`].
    pub async fn open_shared(dir: &Path) -> Result<Store> {
        Store::open_unlocked(dir, false)
            .await?
            .ok_or_else(|| never_ran(dir))
    }

    /// Opens the state directory for reading only (`status`, `check`): no lock, no migrations,
    /// no recovery, and SQLite opened read-only, so nothing in the directory changes whoever
    /// else holds it. `None` when no sds-sync has used the directory yet (no DB, no snapshot
    /// folder). Refuses a lost state DB like [`Store::open_with`].
    pub async fn open_read_only(dir: &Path) -> Result<Option<Store>> {
        Store::open_unlocked(dir, true).await
    }

    async fn open_unlocked(dir: &Path, read_only: bool) -> Result<Option<Store>> {
        let db_path = dir.join(DB_FILE);
        match integrity::check_db_file(dir)? {
            integrity::DbFile::Present => {}
            integrity::DbFile::Missing | integrity::DbFile::Empty => return Ok(None),
        }
        let connect = SqliteConnectOptions::new()
            .filename(&db_path)
            .create_if_missing(false)
            .read_only(read_only)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect)
            .await
            .map_err(|source| error::db_error("open", &db_path, source))?;
        if let Err(e) = integrity::check_accounted(dir, &pool).await {
            pool.close().await;
            return Err(e);
        }
        Ok(Some(Store {
            dir: dir.to_path_buf(),
            db_path,
            pool,
            opts: StoreOptions::default(),
            publish_lock: tokio::sync::Mutex::new(()),
            staging_seq: AtomicU64::new(0),
            _lock_file: None,
        }))
    }

    /// Whether this store holds the state directory's lock (opened with `open`/`open_with`).
    pub fn is_exclusive(&self) -> bool {
        self._lock_file.is_some()
    }

    pub(crate) fn require_exclusive(&self, what: &str) -> Result<()> {
        if self.is_exclusive() {
            Ok(())
        } else {
            Err(StoreError::Usage(format!(
                "cannot {what} without the state directory lock (opened shared next to a running daemon)"
            )))
        }
    }

    /// Closes the DB cleanly (checkpoints the WAL). Dropping the Store also releases everything,
    /// but without waiting.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// `<dir>/snapshots/<id>`.
    pub fn snapshot_dir(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(SNAPSHOTS_DIR).join(id.0.to_string())
    }

    /// The current snapshot: the newest published (or approved) one. `None` before the first
    /// publish.
    pub async fn current(&self) -> Result<Option<Snapshot>> {
        let row: Option<SnapRow> = sqlx::query_as(
            "SELECT id, created_at, status, format, total_rows, guard_json, published_at, pruned_at
             FROM snapshots WHERE status IN ('published', 'approved') ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(self.db("read the current snapshot"))?;
        match row {
            Some(r) => Ok(Some(self.snapshot_from_row(r).await?)),
            None => Ok(None),
        }
    }

    /// Any committed snapshot by id (a publish in progress is not visible).
    pub async fn snapshot(&self, id: SnapshotId) -> Result<Option<Snapshot>> {
        let row: Option<SnapRow> = sqlx::query_as(
            "SELECT id, created_at, status, format, total_rows, guard_json, published_at, pruned_at
             FROM snapshots WHERE id = ? AND status <> 'reserved'",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.db("read a snapshot"))?;
        match row {
            Some(r) => Ok(Some(self.snapshot_from_row(r).await?)),
            None => Ok(None),
        }
    }

    /// Snapshots waiting for `sds-sync approve`, oldest first (normally at most one: a newer
    /// hold or publish supersedes older held snapshots).
    pub async fn held_snapshots(&self) -> Result<Vec<Snapshot>> {
        let rows: Vec<SnapRow> = sqlx::query_as(
            "SELECT id, created_at, status, format, total_rows, guard_json, published_at, pruned_at
             FROM snapshots WHERE status = 'held' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list held snapshots"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.snapshot_from_row(r).await?);
        }
        Ok(out)
    }

    async fn snapshot_from_row(&self, r: SnapRow) -> Result<Snapshot> {
        let (id, created_at, status, format, total_rows, guard_json, published_at, pruned_at) = r;
        let id = SnapshotId(id);
        let status = SnapshotStatus::parse(&status)
            .ok_or_else(|| self.corrupt(format!("snapshot {id} has status {status:?}")))?;
        let guard_json = match guard_json {
            Some(s) => Some(
                serde_json::from_str(&s)
                    .map_err(|e| self.corrupt(format!("snapshot {id} guard_json: {e}")))?,
            ),
            None => None,
        };
        Ok(Snapshot {
            id,
            created_at: self.parse_ts(&created_at)?,
            published_at: published_at
                .as_deref()
                .map(|s| self.parse_ts(s))
                .transpose()?,
            status,
            format,
            total_rows: self.to_u64(total_rows, "total_rows")?,
            guard_json,
            folder: self.snapshot_dir(id),
            folder_present: pruned_at.is_none(),
            files: self.files_of(id).await?,
        })
    }

    async fn files_of(&self, id: SnapshotId) -> Result<Vec<FileEntry>> {
        type FileRow = (
            String,
            i64,
            i64,
            String,
            bool,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<FileRow> = sqlx::query_as(
            "SELECT name, rows, bytes, hash, license, added, removed, changed FROM snapshot_files
             WHERE snapshot_id = ? ORDER BY position",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("read a snapshot's files"))?;
        rows.into_iter()
            .map(
                |(name, rows, bytes, hash, license, added, removed, changed)| {
                    let changes = match (added, removed, changed) {
                        (Some(a), Some(r), Some(c)) => Some(RowCounts {
                            added: self.to_u64(a, "added")?,
                            removed: self.to_u64(r, "removed")?,
                            changed: self.to_u64(c, "changed")?,
                        }),
                        _ => None,
                    };
                    Ok(FileEntry {
                        name,
                        rows: self.to_u64(rows, "rows")?,
                        bytes: self.to_u64(bytes, "bytes")?,
                        hash,
                        license,
                        changes,
                    })
                },
            )
            .collect()
    }

    /// Crash recovery, run at open while this process holds the lock (so no publish of ours or
    /// anyone else's is in flight):
    /// - runs still marked running were interrupted: mark them failed;
    /// - `reserved` snapshot rows belong to a publish that never committed: drop row and folder;
    /// - everything under `staging/` is a leftover;
    /// - a baseline left by `reset-state` is retired once a snapshot is current (a crash between
    ///   the publish and its removal).
    ///
    /// A `snapshots/<id>` folder without any row was refused before this runs.
    async fn recover(&self) -> Result<()> {
        let now = ts(Utc::now());
        let interrupted = sqlx::query(
            "UPDATE runs SET outcome = 'failed', finished_at = ?,
                 error = 'interrupted: the process stopped before the run finished'
             WHERE outcome = 'running'",
        )
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(self.db("mark interrupted runs"))?
        .rows_affected();
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "marked runs interrupted by a previous stop as failed"
            );
        }

        let reserved: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM snapshots WHERE status = 'reserved'")
                .fetch_all(&self.pool)
                .await
                .map_err(self.db("find unfinished publishes"))?;
        for (id,) in reserved {
            let folder = self.snapshot_dir(SnapshotId(id));
            fsutil::blocking(move || fsutil::remove_all(&folder)).await?;
            sqlx::query("DELETE FROM snapshots WHERE id = ? AND status = 'reserved'")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(self.db("remove an unfinished publish"))?;
            tracing::warn!(
                snapshot_id = id,
                "removed a snapshot whose publish never committed"
            );
        }

        let committed: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, pruned_at FROM snapshots WHERE status <> 'reserved'")
                .fetch_all(&self.pool)
                .await
                .map_err(self.db("list snapshots"))?;
        let live: std::collections::HashSet<i64> = committed
            .iter()
            .filter(|(_, pruned)| pruned.is_none())
            .map(|(id, _)| *id)
            .collect();

        let staging_dir = self.dir.join(STAGING_DIR);
        let snapshots_dir = self.dir.join(SNAPSHOTS_DIR);
        let removed = fsutil::blocking(move || -> Result<Vec<String>> {
            let mut removed = Vec::new();
            for entry in fs::read_dir(&staging_dir).map_err(io_err("list", &staging_dir))? {
                let entry = entry.map_err(io_err("list", &staging_dir))?;
                fsutil::remove_all(&entry.path())?;
                removed.push(entry.path().display().to_string());
            }
            for entry in fs::read_dir(&snapshots_dir).map_err(io_err("list", &snapshots_dir))? {
                let entry = entry.map_err(io_err("list", &snapshots_dir))?;
                let name = entry.file_name();
                // Only names this crate creates; anything else is left alone (and logged). A
                // numbered folder without a row was refused at open (`check_accounted`), and is
                // never removed here: the DB does not account for it.
                match name.to_str().and_then(|n| n.parse::<i64>().ok()) {
                    Some(_) => {}
                    None => tracing::warn!(
                        path = %entry.path().display(),
                        "unexpected entry in the snapshots folder; leaving it alone"
                    ),
                }
            }
            Ok(removed)
        })
        .await?;
        for path in removed {
            tracing::warn!(path = %path, "removed a leftover of an interrupted run");
        }

        if self.current().await?.is_some() && reset::retire_baseline(&self.dir)? {
            tracing::info!("baseline of reset-state retired: a snapshot is current");
        }

        for id in live {
            let folder = self.snapshot_dir(SnapshotId(id));
            if !folder.is_dir() {
                tracing::error!(
                    snapshot_id = id,
                    path = %folder.display(),
                    "snapshot folder is missing (removed by hand?); its files cannot be diffed or delivered"
                );
            }
        }
        Ok(())
    }

    // ---- small helpers shared by the modules ----

    fn db(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + use<> {
        let path = self.db_path.clone();
        move |source| error::db_error(what, &path, source)
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.db_path.clone(),
            what,
        }
    }

    fn parse_ts(&self, s: &str) -> Result<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.corrupt(format!("bad timestamp {s:?}: {e}")))
    }

    fn to_u64(&self, v: i64, what: &str) -> Result<u64> {
        u64::try_from(v).map_err(|_| self.corrupt(format!("negative {what}: {v}")))
    }
}

type SnapRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Takes the exclusive lock of the state directory `dir` (which must exist).
pub(crate) fn take_lock(dir: &Path) -> Result<fs::File> {
    let lock_path = dir.join(LOCK_FILE);
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("open lock file", &lock_path))?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: lock_path }),
        Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &lock_path)(e)),
    }
}

fn never_ran(dir: &Path) -> StoreError {
    StoreError::Usage(format!(
        "{} does not exist: no sds-sync has run with this state directory yet",
        dir.join(DB_FILE).display()
    ))
}

/// The one timestamp format of the state DB: fixed width, so text order is time order.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Usage(format!("{what} {v} is too large to record")))
}

fn warn_if_shared(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "state directory is readable by other users; exports may carry passwords (chmod 700 it)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_daemon_connection_caps_the_page_cache() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&tmp.path().join("state"), 3)
            .await
            .expect("open store");
        // Read back from the connection itself: a pragma sqlx did not apply would leave
        // SQLite's default (-2000, i.e. 2,000 KiB), under which memory grows with every run.
        let (size,): (i64,) = sqlx::query_as("PRAGMA cache_size")
            .fetch_one(&store.pool)
            .await
            .expect("read cache_size");
        assert_eq!(size.to_string(), STATE_DB_CACHE);
        assert!((-1024..0).contains(&size), "at most 1 MiB, in KiB: {size}");
        store.close().await;
    }

    /// `FileEntry` replaced the store's own `FileManifest`; JSON that type wrote (a `Snapshot`
    /// or `Job` serialized by an older version) must still read, with or without `changes`.
    #[test]
    fn file_entries_read_the_json_of_file_manifests() {
        let with_changes = r#"{"name":"Student.csv","rows":2,"bytes":31,"hash":"af1349b9",
            "license":false,"changes":{"added":1,"removed":2,"changed":3}}"#;
        let entry: FileEntry = serde_json::from_str(with_changes).expect("old JSON reads");
        assert_eq!(
            entry,
            FileEntry {
                name: "Student.csv".into(),
                rows: 2,
                bytes: 31,
                hash: "af1349b9".into(),
                license: false,
                changes: Some(RowCounts {
                    added: 1,
                    removed: 2,
                    changed: 3
                }),
            }
        );
        // Written back, it is the same JSON: the names did not change.
        assert_eq!(
            serde_json::to_value(&entry).expect("serialize"),
            serde_json::from_str::<serde_json::Value>(with_changes).expect("parse")
        );
        // Written before `changes` existed.
        let without: FileEntry = serde_json::from_str(
            r#"{"name":"License.csv","rows":0,"bytes":48,"hash":"00","license":true}"#,
        )
        .expect("JSON without changes reads");
        assert_eq!(
            without,
            FileEntry {
                name: "License.csv".into(),
                rows: 0,
                bytes: 48,
                hash: "00".into(),
                license: true,
                changes: None,
            }
        );
    }
}
