//! Staging folders, the all-or-nothing publish, holding and approving, and pruning.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use chrono::Utc;
use sds_core::FileEntry;

use crate::error::{Result, StoreError};
use crate::fsutil::{self, io_err};
use crate::{FailPoint, STAGING_DIR, SnapshotId, Store, to_i64, ts};

/// A fresh folder under `<dir>/staging/` where a run writes the files of a new export. Hand it
/// to [`Store::publish`] or [`Store::hold`]; dropping it unused removes the folder.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    /// False once the folder was moved away or is deliberately left behind.
    armed: bool,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the folder now, reporting a failure (dropping removes it silently).
    pub fn discard(mut self) -> Result<()> {
        self.armed = false;
        fsutil::remove_all(&self.path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = fsutil::remove_all(&self.path)
        {
            tracing::warn!(error = %e, "cannot remove an unused staging folder; the next start will");
        }
    }
}

/// What a committed snapshot becomes.
enum Kind<'a> {
    Publish { destinations: &'a [String] },
    Hold { guard_json: String },
}

impl Store {
    /// Creates a fresh, empty staging folder.
    pub fn new_staging(&self) -> Result<Staging> {
        self.require_exclusive("create a staging folder")?;
        let seq = self.staging_seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id(),
            seq
        );
        let path = self.dir.join(STAGING_DIR).join(name);
        // Not recursive: a name clash must fail rather than share a folder.
        let mut b = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&path)
            .map_err(io_err("create staging folder", &path))?;
        Ok(Staging { path, armed: true })
    }

    /// Publishes the files in `staging` as the new current snapshot and enqueues one delivery
    /// per destination. All or nothing:
    ///
    /// 1. check the folder holds exactly the manifest's files with their sizes; fsync each file
    ///    and the folder;
    /// 2. reserve an id: a `reserved` snapshot row, committed on its own;
    /// 3. rename the staging folder to `snapshots/<id>`; fsync `snapshots/` and `staging/`;
    /// 4. ONE transaction: the row becomes `published` with its counts, its file rows are
    ///    inserted, earlier held snapshots become `superseded`, each destination's pending job
    ///    becomes `superseded` and a new pending job is inserted;
    /// 5. commit: this is the publish point;
    /// 6. prune old snapshot folders (failures are logged, not returned).
    ///
    /// A crash before 5 leaves the old snapshot current and a `reserved` row and/or a folder
    /// without a committed row, which the next [`Store::open`] removes. Ids are never reused, so
    /// a half-finished publish can never be mistaken for a later one. After 5 the new snapshot is
    /// current and complete on disk. A failed step returns the error (disk full included) after
    /// removing what this publish created, and leaves the previous snapshot current.
    pub async fn publish(
        &self,
        staging: Staging,
        manifest: Vec<FileEntry>,
        format: &str,
        destinations: &[String],
    ) -> Result<SnapshotId> {
        self.commit_snapshot(staging, manifest, format, Kind::Publish { destinations })
            .await
    }

    /// Records a snapshot held by the mass-change guard: its files are kept under
    /// `snapshots/<id>` with status `held`; it is not current and nothing is enqueued. Older held
    /// snapshots become `superseded` (only the newest data can be approved). Same
    /// all-or-nothing protocol as [`Store::publish`].
    pub async fn hold(
        &self,
        staging: Staging,
        manifest: Vec<FileEntry>,
        format: &str,
        guard_json: &serde_json::Value,
    ) -> Result<SnapshotId> {
        let guard_json = guard_json.to_string();
        self.commit_snapshot(staging, manifest, format, Kind::Hold { guard_json })
            .await
    }

    async fn commit_snapshot(
        &self,
        mut staging: Staging,
        manifest: Vec<FileEntry>,
        format: &str,
        kind: Kind<'_>,
    ) -> Result<SnapshotId> {
        let _publishing = self.publish_lock.lock().await;
        let fail = self.opts.fail_point;

        // 1. Check and fsync the files.
        check_names(&staging.path, &manifest)?;
        let dir = staging.path.clone();
        let expected: Vec<(String, u64)> =
            manifest.iter().map(|f| (f.name.clone(), f.bytes)).collect();
        fsutil::blocking(move || sync_staging(&dir, &expected)).await?;
        if fail == Some(FailPoint::AfterStaging) {
            staging.armed = false; // a crash leaves the folder behind
            return Err(StoreError::FailPoint(FailPoint::AfterStaging));
        }

        // 2. Reserve the id.
        let now = ts(Utc::now());
        let id = sqlx::query(
            "INSERT INTO snapshots (created_at, status, format) VALUES (?, 'reserved', ?)",
        )
        .bind(&now)
        .bind(format)
        .execute(&self.pool)
        .await
        .map_err(self.db("reserve a snapshot id"))?
        .last_insert_rowid();
        let id = SnapshotId(id);

        // 3. Move the folder into place.
        let target = self.snapshot_dir(id);
        let from = staging.path.clone();
        let to = target.clone();
        let moved = fsutil::blocking(move || {
            fs::rename(&from, &to).map_err(io_err("move the staging folder to", &to))?;
            if let Some(parent) = to.parent() {
                fsutil::sync_dir(parent)?;
            }
            if let Some(parent) = from.parent() {
                fsutil::sync_dir(parent)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = moved {
            if !staging.path.exists() {
                // Renamed but not made durable (an fsync failed): the folder is no longer the
                // staging one; abandon() removes it together with the reservation.
                staging.armed = false;
            }
            self.abandon(id).await;
            return Err(e);
        }
        staging.armed = false; // the folder now lives at `target`
        if fail == Some(FailPoint::AfterRename) {
            return Err(StoreError::FailPoint(FailPoint::AfterRename));
        }

        // 4. + 5. One transaction, then commit.
        match self.write_rows(id, &manifest, &now, &kind).await {
            Ok(()) => {}
            Err(StoreError::FailPoint(p)) => return Err(StoreError::FailPoint(p)),
            Err(e) => {
                self.abandon(id).await;
                return Err(e);
            }
        }
        match &kind {
            Kind::Publish { destinations } => tracing::info!(
                snapshot_id = id.0,
                files = manifest.len(),
                destinations = destinations.len(),
                "published snapshot"
            ),
            Kind::Hold { .. } => tracing::info!(snapshot_id = id.0, "recorded held snapshot"),
        }
        if fail == Some(FailPoint::AfterCommit) {
            return Err(StoreError::FailPoint(FailPoint::AfterCommit));
        }
        if matches!(kind, Kind::Publish { .. }) {
            self.retire_baseline_now();
        }

        // 6. Prune.
        if let Err(e) = self.prune_locked().await {
            tracing::warn!(error = %e, "cannot prune old snapshots; will retry after the next publish");
        }
        Ok(id)
    }

    async fn write_rows(
        &self,
        id: SnapshotId,
        manifest: &[FileEntry],
        now: &str,
        kind: &Kind<'_>,
    ) -> Result<()> {
        let mut total_rows: u64 = 0;
        for f in manifest {
            total_rows = total_rows.saturating_add(f.rows);
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.db("begin the publish transaction"))?;
        let (status, guard_json, published_at) = match kind {
            Kind::Publish { .. } => ("published", None, Some(now)),
            Kind::Hold { guard_json } => ("held", Some(guard_json.as_str()), None),
        };
        let updated = sqlx::query(
            "UPDATE snapshots SET status = ?, file_count = ?, total_rows = ?, guard_json = ?,
                 published_at = ?
             WHERE id = ? AND status = 'reserved'",
        )
        .bind(status)
        .bind(to_i64(manifest.len() as u64, "file count")?)
        .bind(to_i64(total_rows, "total rows")?)
        .bind(guard_json)
        .bind(published_at)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(self.db("record the snapshot"))?
        .rows_affected();
        if updated != 1 {
            return Err(self.corrupt(format!("reserved snapshot {id} disappeared during publish")));
        }
        for (position, f) in manifest.iter().enumerate() {
            sqlx::query(
                "INSERT INTO snapshot_files
                     (snapshot_id, position, name, rows, bytes, hash, license, added, removed, changed)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.0)
            .bind(to_i64(position as u64, "file position")?)
            .bind(&f.name)
            .bind(to_i64(f.rows, "rows")?)
            .bind(to_i64(f.bytes, "bytes")?)
            .bind(&f.hash)
            .bind(f.license)
            .bind(f.changes.map(|c| to_i64(c.added, "added")).transpose()?)
            .bind(f.changes.map(|c| to_i64(c.removed, "removed")).transpose()?)
            .bind(f.changes.map(|c| to_i64(c.changed, "changed")).transpose()?)
            .execute(&mut *tx)
            .await
            .map_err(self.db("record the snapshot's files"))?;
        }
        supersede_older_held(&mut tx, id, self).await?;
        if let Kind::Publish { destinations } = kind {
            enqueue(&mut tx, id, destinations, now, self).await?;
        }
        if self.opts.fail_point == Some(FailPoint::BeforeCommit) {
            drop(tx); // rolled back, as by a crash before the commit reached the disk
            return Err(StoreError::FailPoint(FailPoint::BeforeCommit));
        }
        tx.commit().await.map_err(self.db("commit the publish"))
    }

    /// Undoes a publish that failed before its commit: removes the folder and the reservation,
    /// but only while the row is still `reserved` (a commit that reported an error may still
    /// have reached the disk, and then the snapshot is real). Anything that cannot be undone
    /// here is undone by the next open's recovery.
    async fn abandon(&self, id: SnapshotId) {
        let status: std::result::Result<Option<(String,)>, _> =
            sqlx::query_as("SELECT status FROM snapshots WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await;
        match status {
            Ok(Some((s,))) if s == "reserved" => {}
            Ok(None) => {}
            Ok(Some((s,))) => {
                tracing::warn!(snapshot_id = id.0, status = %s, "publish reported an error after its commit");
                return;
            }
            Err(e) => {
                tracing::warn!(snapshot_id = id.0, error = %e, "cannot check a failed publish; the next start cleans up");
                return;
            }
        }
        let folder = self.snapshot_dir(id);
        if let Err(e) = fsutil::blocking(move || fsutil::remove_all(&folder)).await {
            tracing::warn!(snapshot_id = id.0, error = %e, "cannot remove a failed publish's folder; the next start will");
            return;
        }
        if let Err(e) = sqlx::query("DELETE FROM snapshots WHERE id = ? AND status = 'reserved'")
            .bind(id.0)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(snapshot_id = id.0, error = %e, "cannot remove a failed publish's reservation; the next start will");
        }
    }

    /// Releases a held snapshot: it becomes current (status `approved`) and gets one pending
    /// delivery per destination, in one transaction. Errors when `id` is unknown, not held, or
    /// superseded by a newer publish or hold.
    /// Marks every held snapshot superseded: called when a run finds the SIS data equal to the
    /// current snapshot again, so a snapshot held for a glitch that has since been repaired can no
    /// longer be approved by mistake. Returns how many were superseded.
    pub async fn supersede_held(&self) -> Result<u64> {
        let _publishing = self.publish_lock.lock().await;
        let n = sqlx::query("UPDATE snapshots SET status = 'superseded' WHERE status = 'held'")
            .execute(&self.pool)
            .await
            .map_err(self.db("supersede held snapshots"))?
            .rows_affected();
        if n > 0 {
            tracing::info!(
                superseded = n,
                "held snapshots superseded: the data is back to the current snapshot"
            );
        }
        Ok(n)
    }

    pub async fn approve(&self, id: SnapshotId, destinations: &[String]) -> Result<()> {
        let _publishing = self.publish_lock.lock().await;
        let folder = self.snapshot_dir(id);
        let now = ts(Utc::now());
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.db("begin the approval"))?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT status, pruned_at FROM snapshots WHERE id = ? AND status <> 'reserved'",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.db("read the snapshot to approve"))?;
        let Some((status, pruned_at)) = row else {
            return Err(StoreError::NotFound { id });
        };
        let newer: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM snapshots WHERE id > ? AND status <> 'reserved' ORDER BY id LIMIT 1",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.db("look for newer snapshots"))?;
        match (status.as_str(), newer) {
            ("superseded", Some((by,))) => {
                return Err(StoreError::Superseded {
                    id,
                    by: SnapshotId(by),
                });
            }
            ("held", Some((by,))) => {
                // Cannot happen through this API (a newer snapshot supersedes held ones), but a
                // held snapshot older than another must never become current.
                return Err(StoreError::Superseded {
                    id,
                    by: SnapshotId(by),
                });
            }
            ("held", None) => {}
            (other, _) => {
                return Err(StoreError::NotHeld {
                    id,
                    status: other.to_string(),
                });
            }
        }
        if pruned_at.is_some() || !folder.is_dir() {
            return Err(StoreError::Io {
                what: "approve: the snapshot's files are missing at",
                path: folder,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        sqlx::query("UPDATE snapshots SET status = 'approved', published_at = ? WHERE id = ?")
            .bind(&now)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(self.db("approve the snapshot"))?;
        supersede_older_held(&mut tx, id, self).await?;
        enqueue(&mut tx, id, destinations, &now, self).await?;
        tx.commit().await.map_err(self.db("commit the approval"))?;
        tracing::info!(
            snapshot_id = id.0,
            destinations = destinations.len(),
            "approved held snapshot"
        );
        // Pruning deletes folders: only the lock holder does it (a running daemon prunes after
        // its next publish). The same for the baseline of a reset, which a current snapshot
        // makes moot anyway (the daemon's next open retires it).
        if self.is_exclusive() {
            self.retire_baseline_now();
            if let Err(e) = self.prune_locked().await {
                tracing::warn!(error = %e, "cannot prune old snapshots; will retry after the next publish");
            }
        }
        Ok(())
    }

    /// Retires the baseline of `reset-state` once a snapshot is current; a failure is logged
    /// (it is ignored while a snapshot is current, and the next open retries).
    fn retire_baseline_now(&self) {
        match crate::reset::retire_baseline(&self.dir) {
            Ok(true) => tracing::info!(
                "first snapshot after reset-state is current; its baseline is retired"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove the baseline of reset-state; the next start will")
            }
        }
    }

    /// Removes old snapshot folders (rows stay for history). Keeps the newest
    /// `keep_snapshots` published/approved ones (at least the current one), every held one,
    /// every one with a pending delivery, and superseded ones newer than the oldest kept.
    /// Returns how many folders were removed. Publish and approve call this themselves.
    pub async fn prune(&self) -> Result<usize> {
        self.require_exclusive("prune snapshots")?;
        let _publishing = self.publish_lock.lock().await;
        self.prune_locked().await
    }

    async fn prune_locked(&self) -> Result<usize> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, status FROM snapshots
             WHERE pruned_at IS NULL AND status <> 'reserved' ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list snapshots to prune"))?;
        let pending: HashSet<i64> = sqlx::query_as::<_, (i64,)>(
            "SELECT DISTINCT snapshot_id FROM outbox WHERE status = 'pending'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db("list pending deliveries"))?
        .into_iter()
        .map(|(id,)| id)
        .collect();

        let keep = self.opts.keep_snapshots.max(1);
        let mut kept_published = 0usize;
        let mut oldest_kept = i64::MAX;
        let mut doomed = Vec::new();
        for (id, status) in &rows {
            match status.as_str() {
                "published" | "approved" if kept_published < keep => {
                    kept_published += 1;
                    oldest_kept = *id;
                }
                "published" | "approved" if !pending.contains(id) => doomed.push(*id),
                "superseded" if *id < oldest_kept && !pending.contains(id) => doomed.push(*id),
                _ => {} // held, pending delivery, or a recent superseded one
            }
        }

        let mut removed = 0;
        for id in doomed {
            let folder = self.snapshot_dir(SnapshotId(id));
            // Folder first, then the mark: a crash in between leaves a row that the next prune
            // finishes (removing a missing folder is fine).
            fsutil::blocking(move || fsutil::remove_all(&folder)).await?;
            sqlx::query("UPDATE snapshots SET pruned_at = ? WHERE id = ?")
                .bind(ts(Utc::now()))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(self.db("mark a snapshot pruned"))?;
            tracing::debug!(snapshot_id = id, "pruned snapshot folder");
            removed += 1;
        }
        Ok(removed)
    }
}

/// Held snapshots older than `id` can no longer be approved: newer data exists.
async fn supersede_older_held(
    tx: &mut sqlx::SqliteConnection,
    id: SnapshotId,
    store: &Store,
) -> Result<()> {
    let n =
        sqlx::query("UPDATE snapshots SET status = 'superseded' WHERE status = 'held' AND id < ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(store.db("supersede older held snapshots"))?
            .rows_affected();
    if n > 0 {
        tracing::info!(
            snapshot_id = id.0,
            superseded = n,
            "older held snapshots superseded"
        );
    }
    Ok(())
}

/// One pending job per destination for snapshot `id`; older pending jobs of the same destination
/// are superseded (SDS only ever needs the newest full set).
async fn enqueue(
    tx: &mut sqlx::SqliteConnection,
    id: SnapshotId,
    destinations: &[String],
    now: &str,
    store: &Store,
) -> Result<()> {
    let mut seen = HashSet::new();
    for dest in destinations {
        if !seen.insert(dest.as_str()) {
            continue; // the same destination twice gets one job
        }
        let n = sqlx::query(
            "UPDATE outbox SET status = 'superseded', updated_at = ?
             WHERE destination = ? AND status = 'pending'",
        )
        .bind(now)
        .bind(dest)
        .execute(&mut *tx)
        .await
        .map_err(store.db("supersede older deliveries"))?
        .rows_affected();
        if n > 0 {
            tracing::info!(destination = %dest, snapshot_id = id.0, "superseded an undelivered older snapshot");
        }
        sqlx::query(
            "INSERT INTO outbox (snapshot_id, destination, status, attempts, next_attempt_at,
                                 created_at, updated_at)
             VALUES (?, ?, 'pending', 0, ?, ?, ?)",
        )
        .bind(id.0)
        .bind(dest)
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store.db("enqueue a delivery"))?;
    }
    Ok(())
}

/// Manifest names must be plain, unique file names (they become paths under the snapshot folder
/// and on the destinations).
fn check_names(dir: &Path, manifest: &[FileEntry]) -> Result<()> {
    let mut seen = HashSet::new();
    for f in manifest {
        let plain = !f.name.is_empty()
            && f.name != "."
            && f.name != ".."
            && !f.name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(StoreError::Manifest {
                path: dir.to_path_buf(),
                reason: format!("{:?} is not a plain file name", f.name),
            });
        }
        if !seen.insert(f.name.as_str()) {
            return Err(StoreError::Manifest {
                path: dir.to_path_buf(),
                reason: format!("{} is listed twice", f.name),
            });
        }
    }
    Ok(())
}

/// Checks that `dir` holds exactly the expected files with the expected sizes, then fsyncs them
/// and the folder itself, so that what is renamed into place is on the disk.
fn sync_staging(dir: &Path, expected: &[(String, u64)]) -> Result<()> {
    let mut want: HashMap<&str, u64> = expected.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(size) = name.to_str().and_then(|n| want.remove(n)) else {
            return Err(StoreError::Manifest {
                path: dir.to_path_buf(),
                reason: format!("{} is not in the manifest", name.to_string_lossy()),
            });
        };
        let meta = entry.metadata().map_err(io_err("inspect", &path))?;
        if !meta.is_file() {
            return Err(StoreError::Manifest {
                path: dir.to_path_buf(),
                reason: format!("{} is not a regular file", name.to_string_lossy()),
            });
        }
        if meta.len() != size {
            return Err(StoreError::Manifest {
                path: dir.to_path_buf(),
                reason: format!(
                    "{} has {} bytes on disk, the manifest says {size} (incomplete write?)",
                    name.to_string_lossy(),
                    meta.len()
                ),
            });
        }
        fsutil::sync_file(&path)?;
    }
    if let Some(missing) = want.keys().next() {
        return Err(StoreError::Manifest {
            path: dir.to_path_buf(),
            reason: format!("{missing} is in the manifest but was not written"),
        });
    }
    fsutil::sync_dir(dir)
}
