//! Behaviour of the state directory: open/migrate, publish, crash recovery at every publish step,
//! hold/approve/supersede, pruning, the lock, the outbox and run history.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use sds_core::{FileEntry, RowCounts};
use sds_store::{
    DeliveryFailure, FailPoint, JobStatus, RunOutcome, SnapshotId, SnapshotStatus, Store,
    StoreError, StoreOptions,
};

fn state_dir(tmp: &tempfile::TempDir) -> PathBuf {
    // A path that does not exist yet, two levels deep: open must create it.
    tmp.path().join("var").join("state")
}

async fn open(dir: &Path, keep: usize) -> Store {
    Store::open(dir, keep).await.expect("open store")
}

async fn open_failing(dir: &Path, point: FailPoint) -> Store {
    Store::open_with(
        dir,
        StoreOptions {
            keep_snapshots: 10,
            fail_point: Some(point),
            ..StoreOptions::default()
        },
    )
    .await
    .expect("open store")
}

/// Writes `files` (name, content) into a new staging folder and returns it with its manifest.
fn stage(store: &Store, files: &[(&str, &str)]) -> (sds_store::Staging, Vec<FileEntry>) {
    let staging = store.new_staging().expect("new staging");
    let manifest = files
        .iter()
        .map(|(name, content)| {
            fs::write(staging.path().join(name), content).expect("write staged file");
            FileEntry {
                name: name.to_string(),
                rows: content.matches("\r\n").count().saturating_sub(1) as u64,
                bytes: content.len() as u64,
                hash: format!("hash-of-{name}-{}", content.len()),
                license: *name == "License.csv",
                // Distinct per file so a mix-up between files or columns shows.
                changes: (*name != "License.csv").then_some(RowCounts {
                    added: content.len() as u64,
                    removed: 2,
                    changed: 3,
                }),
            }
        })
        .collect();
    (staging, manifest)
}

/// A two-file export whose content depends on `tag`.
fn export(tag: &str) -> Vec<(&'static str, String)> {
    vec![
        ("School.csv", format!("SIS ID,Name\r\n1,School {tag}\r\n")),
        (
            "Student.csv",
            format!("SIS ID,Name\r\n1,Ann {tag}\r\n2,Bob {tag}\r\n"),
        ),
    ]
}

async fn publish(store: &Store, tag: &str, destinations: &[&str]) -> sds_store::Result<SnapshotId> {
    let files = export(tag);
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    let (staging, manifest) = stage(store, &refs);
    let dests: Vec<String> = destinations.iter().map(|d| d.to_string()).collect();
    store.publish(staging, manifest, "v1", &dests).await
}

async fn hold(store: &Store, tag: &str) -> sds_store::Result<SnapshotId> {
    let files = export(tag);
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    let (staging, manifest) = stage(store, &refs);
    let verdict = serde_json::json!({"trips": [{"file": "Student.csv", "rule": "removed"}]});
    store.hold(staging, manifest, "v1", &verdict).await
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn snapshot_folders(dir: &Path) -> Vec<String> {
    entries(&dir.join("snapshots"))
}

async fn current_id(store: &Store) -> Option<SnapshotId> {
    store.current().await.unwrap().map(|s| s.id)
}

#[tokio::test]
async fn open_creates_a_private_dir_and_migrates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    assert!(dir.join("state.sqlite").is_file());
    assert!(dir.join("snapshots").is_dir() && dir.join("staging").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    assert!(store.current().await.unwrap().is_none());
    assert!(store.recent_runs(10).await.unwrap().is_empty());
    assert!(store.held_snapshots().await.unwrap().is_empty());
    assert!(store.pending_deliveries().await.unwrap().is_empty());
    store.close().await;
    // Re-opening an existing, migrated DB is fine.
    let store = open(&dir, 10).await;
    assert!(store.current().await.unwrap().is_none());
}

#[tokio::test]
async fn publish_makes_the_snapshot_current_with_its_manifest_and_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let id = publish(&store, "a", &["local", "sftp"]).await.unwrap();

    let cur = store.current().await.unwrap().expect("current snapshot");
    assert_eq!(cur.id, id);
    assert_eq!(cur.status, SnapshotStatus::Published);
    assert_eq!(cur.format, "v1");
    assert!(cur.published_at.is_some());
    assert_eq!(cur.folder, dir.join("snapshots").join(id.to_string()));
    assert!(cur.folder_present);
    let names: Vec<&str> = cur.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["School.csv", "Student.csv"],
        "files keep their given order"
    );
    assert_eq!(
        (cur.files[0].rows, cur.files[1].rows, cur.total_rows),
        (1, 2, 3)
    );
    // "SIS ID,Name\r\n1,Ann a\r\n2,Bob a\r\n" is 31 bytes: the manifest's diff counts survive.
    assert_eq!(
        cur.files[1].changes,
        Some(RowCounts {
            added: 31,
            removed: 2,
            changed: 3
        })
    );
    assert_eq!(
        fs::read_to_string(cur.folder.join("Student.csv")).unwrap(),
        "SIS ID,Name\r\n1,Ann a\r\n2,Bob a\r\n"
    );
    assert!(
        entries(&dir.join("staging")).is_empty(),
        "staging folder was moved, not copied"
    );

    let pending = store.pending_deliveries().await.unwrap();
    let dests: Vec<&str> = pending.iter().map(|p| p.destination.as_str()).collect();
    assert_eq!(dests, ["local", "sftp"]);
    assert!(
        pending
            .iter()
            .all(|p| p.snapshot_id == id && p.attempts == 0)
    );

    // The snapshot and its jobs survive a restart.
    store.close().await;
    let store = open(&dir, 10).await;
    assert_eq!(current_id(&store).await, Some(id));
    assert_eq!(store.pending_deliveries().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failure_at_each_publish_step_leaves_a_consistent_state_that_the_next_run_completes() {
    for point in FailPoint::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let dir = state_dir(&tmp);

        let store = open(&dir, 10).await;
        let first = publish(&store, "first", &["local"]).await.unwrap();
        store.close().await;

        // The "crash": the publish stops at `point` and nothing is cleaned up.
        let store = open_failing(&dir, point).await;
        let err = publish(&store, "second", &["local"]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::FailPoint(p) if p == point),
            "{point}: {err}"
        );
        let expected_current = if point == FailPoint::AfterCommit {
            None
        } else {
            Some(first)
        };
        if let Some(first) = expected_current {
            assert_eq!(
                current_id(&store).await,
                Some(first),
                "{point}: old snapshot stays current"
            );
            let pending = store.pending_deliveries().await.unwrap();
            assert_eq!(pending.len(), 1, "{point}");
            assert_eq!(
                pending[0].snapshot_id, first,
                "{point}: no job for the failed publish"
            );
        }
        let crashed_current = current_id(&store).await;
        match point {
            FailPoint::AfterStaging => {
                assert_eq!(entries(&dir.join("staging")).len(), 1, "staging leftover");
            }
            FailPoint::AfterRename | FailPoint::BeforeCommit => {
                assert_eq!(
                    snapshot_folders(&dir).len(),
                    2,
                    "{point}: renamed folder without a row"
                );
            }
            FailPoint::AfterCommit => {
                assert_ne!(
                    crashed_current,
                    Some(first),
                    "after the commit the new one is current"
                );
            }
        }
        drop(store);

        // The next start recovers: leftovers removed, state as before (or as after) the publish.
        let store = open(&dir, 10).await;
        assert!(
            entries(&dir.join("staging")).is_empty(),
            "{point}: staging cleaned"
        );
        let cur = store.current().await.unwrap().expect("a current snapshot");
        assert_eq!(
            Some(cur.id),
            crashed_current,
            "{point}: same current snapshot after restart"
        );
        let committed: Vec<String> = if point == FailPoint::AfterCommit {
            vec![first.to_string(), cur.id.to_string()]
        } else {
            vec![first.to_string()]
        };
        assert_eq!(
            snapshot_folders(&dir),
            committed,
            "{point}: only committed folders remain"
        );
        assert!(cur.folder.join("School.csv").is_file());

        // And the next publish completes normally with a fresh id.
        let third = publish(&store, "third", &["local"]).await.unwrap();
        assert!(third > cur.id, "{point}: ids are never reused");
        assert_eq!(current_id(&store).await, Some(third), "{point}");
        let pending = store.pending_deliveries().await.unwrap();
        assert_eq!(pending.len(), 1, "{point}: older pending job superseded");
        assert_eq!(pending[0].snapshot_id, third);
        assert!(snapshot_folders(&dir).contains(&third.to_string()));
    }
}

#[tokio::test]
async fn a_failed_write_is_an_error_and_the_previous_snapshot_stays_current() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let first = publish(&store, "first", &["local"]).await.unwrap();

    // A file shorter than the manifest says (a write cut short, e.g. by a full disk).
    let (staging, mut manifest) = stage(&store, &[("School.csv", "SIS ID,Name\r\n1,X\r\n")]);
    manifest[0].bytes += 10;
    let err = store
        .publish(staging, manifest, "v1", &["local".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Manifest { .. }), "{err}");
    assert!(err.to_string().contains("incomplete write"), "{err}");
    assert_eq!(current_id(&store).await, Some(first));
    assert!(
        entries(&dir.join("staging")).is_empty(),
        "failed staging removed"
    );

    // The rename into place fails: a stray non-empty folder occupies the next id's name.
    let next = SnapshotId(first.0 + 1);
    let blocker = dir.join("snapshots").join(next.to_string());
    fs::create_dir_all(&blocker).unwrap();
    fs::write(blocker.join("junk"), "x").unwrap();
    let err = publish(&store, "second", &["local"]).await.unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("snapshots"),
        "error names the path: {err}"
    );
    assert_eq!(
        current_id(&store).await,
        Some(first),
        "previous snapshot stays current"
    );
    assert_eq!(
        store.pending_deliveries().await.unwrap()[0].snapshot_id,
        first
    );
    assert!(
        entries(&dir.join("staging")).is_empty(),
        "failed staging removed"
    );

    // Nothing of the failed attempts lingers in the way of the next publish.
    let third = publish(&store, "third", &["local"]).await.unwrap();
    assert_eq!(current_id(&store).await, Some(third));
    assert_eq!(
        snapshot_folders(&dir),
        [first.to_string(), third.to_string()]
    );
}

#[tokio::test]
async fn the_manifest_must_match_the_staging_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&state_dir(&tmp), 10).await;

    let (staging, mut manifest) = stage(&store, &[("a.csv", "h\r\n"), ("b.csv", "h\r\n")]);
    manifest.pop();
    let err = store
        .publish(staging, manifest, "v1", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("b.csv is not in the manifest"),
        "{err}"
    );

    let (staging, mut manifest) = stage(&store, &[("a.csv", "h\r\n")]);
    let mut ghost = manifest[0].clone();
    ghost.name = "ghost.csv".into();
    manifest.push(ghost);
    let err = store
        .publish(staging, manifest, "v1", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("ghost.csv is in the manifest but was not written"),
        "{err}"
    );

    let (staging, mut manifest) = stage(&store, &[("a.csv", "h\r\n")]);
    manifest[0].name = "../a.csv".into();
    let err = store
        .publish(staging, manifest, "v1", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a plain file name"), "{err}");

    assert!(store.current().await.unwrap().is_none());
}

#[tokio::test]
async fn an_unused_staging_folder_is_removed_when_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let a = store.new_staging().unwrap();
    let b = store.new_staging().unwrap();
    assert_ne!(a.path(), b.path());
    fs::write(a.path().join("x.csv"), "x").unwrap();
    assert_eq!(entries(&dir.join("staging")).len(), 2);
    drop(a);
    b.discard().unwrap();
    assert!(entries(&dir.join("staging")).is_empty());
}

#[tokio::test]
async fn held_snapshot_is_not_current_until_approved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let first = publish(&store, "first", &["local"]).await.unwrap();
    let job = store
        .next_due_job("local", Utc::now())
        .await
        .unwrap()
        .unwrap();
    store.mark_done(&job).await.unwrap();

    let held = hold(&store, "suspicious").await.unwrap();
    assert_eq!(current_id(&store).await, Some(first));
    assert!(
        store.pending_deliveries().await.unwrap().is_empty(),
        "a hold enqueues nothing"
    );
    let list = store.held_snapshots().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].id, list[0].status), (held, SnapshotStatus::Held));
    assert_eq!(
        list[0].guard_json.as_ref().unwrap()["trips"][0]["rule"],
        "removed"
    );
    assert!(
        list[0].folder.join("Student.csv").is_file(),
        "held files are kept"
    );
    assert!(list[0].published_at.is_none());

    // A held snapshot survives a restart and can be approved afterwards.
    store.close().await;
    let store = open(&dir, 10).await;
    store
        .approve(held, &["local".into(), "sftp".into()])
        .await
        .unwrap();
    let cur = store.current().await.unwrap().unwrap();
    assert_eq!((cur.id, cur.status), (held, SnapshotStatus::Approved));
    assert!(cur.published_at.is_some());
    assert!(store.held_snapshots().await.unwrap().is_empty());
    let pending = store.pending_deliveries().await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| (p.snapshot_id, p.destination.as_str()))
            .collect::<Vec<_>>(),
        [(held, "local"), (held, "sftp")]
    );

    // Approving again, approving a published one, or an unknown id: clear errors.
    let err = store.approve(held, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotHeld { .. }), "{err}");
    assert!(err.to_string().contains("approved, not held"), "{err}");
    let err = store.approve(first, &[]).await.unwrap_err();
    assert!(err.to_string().contains("published, not held"), "{err}");
    let err = store.approve(SnapshotId(999), &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_later_publish_supersedes_a_held_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&state_dir(&tmp), 10).await;
    publish(&store, "first", &["local"]).await.unwrap();
    let held = hold(&store, "bad").await.unwrap();
    let recovered = publish(&store, "recovered", &["local"]).await.unwrap();

    assert!(store.held_snapshots().await.unwrap().is_empty());
    assert_eq!(
        store.snapshot(held).await.unwrap().unwrap().status,
        SnapshotStatus::Superseded
    );
    let err = store.approve(held, &["local".into()]).await.unwrap_err();
    match &err {
        StoreError::Superseded { id, by } => assert_eq!((*id, *by), (held, recovered)),
        other => panic!("expected Superseded, got {other}"),
    }
    assert!(
        err.to_string().contains("superseded by the newer snapshot"),
        "{err}"
    );
    assert_eq!(current_id(&store).await, Some(recovered));
}

#[tokio::test]
async fn a_newer_hold_supersedes_an_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&state_dir(&tmp), 10).await;
    let first = publish(&store, "first", &[]).await.unwrap();
    let old_hold = hold(&store, "bad-1").await.unwrap();
    let new_hold = hold(&store, "bad-2").await.unwrap();
    let held: Vec<SnapshotId> = store
        .held_snapshots()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(held, [new_hold]);
    assert!(matches!(
        store.approve(old_hold, &[]).await,
        Err(StoreError::Superseded { by, .. }) if by == new_hold
    ));
    assert_eq!(current_id(&store).await, Some(first));
    store.approve(new_hold, &[]).await.unwrap();
    assert_eq!(current_id(&store).await, Some(new_hold));
}

#[tokio::test]
async fn prune_keeps_the_last_n_published_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 2).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(publish(&store, &i.to_string(), &[]).await.unwrap());
    }
    assert_eq!(
        snapshot_folders(&dir),
        [ids[3].to_string(), ids[4].to_string()]
    );
    let old = store.snapshot(ids[0]).await.unwrap().unwrap();
    assert!(
        !old.folder_present,
        "pruned snapshot keeps its row, marked pruned"
    );
    assert_eq!(old.files.len(), 2, "its manifest stays for history");
    assert!(
        store
            .snapshot(ids[4])
            .await
            .unwrap()
            .unwrap()
            .folder_present
    );
    assert_eq!(store.prune().await.unwrap(), 0, "nothing more to prune");
}

#[tokio::test]
async fn prune_never_removes_a_folder_with_pending_deliveries_or_a_held_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 1).await;
    let slow = publish(&store, "a", &["slow"]).await.unwrap();
    let second = publish(&store, "b", &["fast"]).await.unwrap();
    assert_eq!(
        snapshot_folders(&dir),
        [slow.to_string(), second.to_string()],
        "pending for slow"
    );

    let held = hold(&store, "c").await.unwrap();
    assert!(
        snapshot_folders(&dir).contains(&held.to_string()),
        "held folder kept"
    );

    let job = store
        .next_due_job("slow", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.snapshot_id, slow);
    store.mark_done(&job).await.unwrap();
    assert_eq!(store.prune().await.unwrap(), 1);
    assert_eq!(
        snapshot_folders(&dir),
        [second.to_string(), held.to_string()]
    );
}

#[tokio::test]
async fn a_second_opener_gets_locked_until_the_first_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let first = open(&dir, 10).await;
    let err = Store::open(&dir, 10).await.unwrap_err();
    match &err {
        StoreError::Locked { path } => assert_eq!(path, &dir.join("lock")),
        other => panic!("expected Locked, got {other}"),
    }
    assert!(
        err.to_string().contains("another sds-sync process"),
        "{err}"
    );
    drop(first);
    let again = Store::open(&dir, 10).await.expect("lock released on drop");
    drop(again);
}

#[tokio::test]
async fn a_newer_snapshot_supersedes_undelivered_jobs_per_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&state_dir(&tmp), 10).await;
    let s1 = publish(&store, "1", &["local", "sftp"]).await.unwrap();
    let local = store
        .next_due_job("local", Utc::now())
        .await
        .unwrap()
        .unwrap();
    store.mark_done(&local).await.unwrap();

    // sftp is down; a new snapshot arrives for both (and a third destination).
    let s2 = publish(&store, "2", &["local", "sftp", "sftp", "email"])
        .await
        .unwrap();
    let pending = store.pending_deliveries().await.unwrap();
    let mut got: Vec<(String, SnapshotId)> = pending
        .iter()
        .map(|p| (p.destination.clone(), p.snapshot_id))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("email".into(), s2),
            ("local".into(), s2),
            ("sftp".into(), s2)
        ]
    );

    let old: Vec<(String, JobStatus)> = store
        .deliveries_of(s1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.destination, e.status))
        .collect();
    assert_eq!(
        old,
        [
            ("local".into(), JobStatus::Done),
            ("sftp".into(), JobStatus::Superseded)
        ]
    );

    // The sftp worker gets the newest snapshot's job.
    let job = store
        .next_due_job("sftp", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.snapshot_id, s2);
    assert_eq!(job.files.len(), 2);
    assert!(job.folder.join("School.csv").is_file());
}

#[tokio::test]
async fn outbox_retries_back_off_fail_permanently_and_survive_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let s1 = publish(&store, "1", &["sftp", "ftp"]).await.unwrap();
    let now = Utc::now();

    // A retryable failure: still pending, not due before the next attempt time.
    let job = store.next_due_job("sftp", now).await.unwrap().unwrap();
    assert_eq!((job.attempts, job.snapshot_id), (0, s1));
    let retry_at = now + Duration::seconds(60);
    let failure = DeliveryFailure {
        error: "connection refused".into(),
        permanent: false,
    };
    let status = store
        .record_attempt(&job, Err(failure), retry_at)
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Pending);
    assert!(
        store
            .next_due_job("sftp", now + Duration::seconds(30))
            .await
            .unwrap()
            .is_none()
    );
    let next = store.next_attempt_at("sftp").await.unwrap().unwrap();
    assert_eq!(next.timestamp_millis(), retry_at.timestamp_millis());

    // The job survives a restart (a SIGKILLed daemon resumes it).
    store.close().await;
    let store = open(&dir, 10).await;
    let job = store
        .next_due_job("sftp", retry_at)
        .await
        .unwrap()
        .expect("due again");
    assert_eq!(job.attempts, 1);
    assert_eq!(job.last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        store
            .record_attempt(&job, Ok(()), Utc::now())
            .await
            .unwrap(),
        JobStatus::Done
    );
    assert!(
        store
            .next_due_job("sftp", retry_at)
            .await
            .unwrap()
            .is_none()
    );

    // A permanent failure stops at once.
    let job = store.next_due_job("ftp", now).await.unwrap().unwrap();
    let failure = DeliveryFailure {
        error: "530 login incorrect".into(),
        permanent: true,
    };
    let status = store.record_attempt(&job, Err(failure), now).await.unwrap();
    assert_eq!(status, JobStatus::Failed);
    assert!(
        store
            .next_due_job("ftp", now + Duration::days(1))
            .await
            .unwrap()
            .is_none()
    );
    let entries = store.deliveries_of(s1).await.unwrap();
    let ftp = entries.iter().find(|e| e.destination == "ftp").unwrap();
    assert_eq!(
        (ftp.attempts, ftp.last_error.as_deref()),
        (1, Some("530 login incorrect"))
    );
    assert!(store.pending_deliveries().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_job_superseded_during_delivery_is_not_resurrected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&state_dir(&tmp), 10).await;
    publish(&store, "1", &["sftp"]).await.unwrap();
    let in_flight = store
        .next_due_job("sftp", Utc::now())
        .await
        .unwrap()
        .unwrap();
    let s2 = publish(&store, "2", &["sftp"]).await.unwrap();

    let failure = DeliveryFailure {
        error: "timeout".into(),
        permanent: false,
    };
    let status = store
        .record_attempt(&in_flight, Err(failure), Utc::now())
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Superseded);
    let pending = store.pending_deliveries().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].snapshot_id, s2);

    // If the old delivery did complete, say so.
    assert_eq!(store.mark_done(&in_flight).await.unwrap(), JobStatus::Done);
    let job = store
        .next_due_job("sftp", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .mark_failed(&job, "destination removed from config")
            .await
            .unwrap(),
        JobStatus::Failed
    );
}

#[tokio::test]
async fn runs_are_recorded_and_interrupted_ones_are_marked_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let run = store.begin_run().await.unwrap();
    let snap = publish(&store, "1", &[]).await.unwrap();
    let counts = serde_json::json!({"Student.csv": {"added": 2, "removed": 0, "changed": 0}});
    store
        .finish_run(run, RunOutcome::Published, Some(snap), None, Some(&counts))
        .await
        .unwrap();
    let unchanged = store.begin_run().await.unwrap();
    store
        .finish_run(unchanged, RunOutcome::Unchanged, None, None, None)
        .await
        .unwrap();
    assert!(
        store
            .finish_run(unchanged, RunOutcome::Running, None, None, None)
            .await
            .is_err()
    );

    let killed = store.begin_run().await.unwrap();
    drop(store); // the process dies mid-run

    let store = open(&dir, 10).await;
    let runs = store.recent_runs(10).await.unwrap();
    let summary: Vec<(sds_store::RunId, RunOutcome)> =
        runs.iter().map(|r| (r.id, r.outcome)).collect();
    assert_eq!(
        summary,
        [
            (killed, RunOutcome::Failed),
            (unchanged, RunOutcome::Unchanged),
            (run, RunOutcome::Published)
        ]
    );
    assert!(runs[0].error.as_deref().unwrap().contains("interrupted"));
    assert!(runs[0].finished_at.is_some());
    assert_eq!(runs[2].snapshot_id, Some(snap));
    assert_eq!(
        runs[2].rows_json.as_ref().unwrap()["Student.csv"]["added"],
        2
    );
    assert_eq!(store.recent_runs(1).await.unwrap().len(), 1);
}

/// Issue 19: the run history is bounded, so a daemon's state DB does not grow with every run.
#[tokio::test]
async fn finished_runs_beyond_keep_runs_are_removed_and_a_running_one_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = Store::open_with(
        &dir,
        StoreOptions {
            keep_runs: 3,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    // Left running (as if still in progress) while newer runs finish.
    let running = store.begin_run().await.unwrap();
    let mut finished = Vec::new();
    for i in 0..6 {
        let run = store.begin_run().await.unwrap();
        let outcome = if i % 2 == 0 {
            RunOutcome::Unchanged
        } else {
            RunOutcome::Failed
        };
        store
            .finish_run(run, outcome, None, None, None)
            .await
            .unwrap();
        finished.push(run);
        let kept: Vec<sds_store::RunId> = store
            .recent_runs(100)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        // The newest three (the one just finished among them), then the running one, older
        // than all of them but never removed.
        let mut want: Vec<sds_store::RunId> = finished.iter().rev().take(3).copied().collect();
        want.push(running);
        assert_eq!(kept, want, "after {} finished run(s)", i + 1);
    }
    store.close().await;
}

#[test]
fn ids_and_fail_points_parse_from_text() {
    assert_eq!("42".parse::<SnapshotId>().unwrap(), SnapshotId(42));
    assert!("0".parse::<SnapshotId>().is_err());
    assert!(
        "abc"
            .parse::<SnapshotId>()
            .unwrap_err()
            .contains("not a snapshot id")
    );
    for p in FailPoint::ALL {
        assert_eq!(p.as_str().parse::<FailPoint>().unwrap(), p);
    }
    assert!(
        "after_lunch"
            .parse::<FailPoint>()
            .unwrap_err()
            .contains("after_rename")
    );
}

#[tokio::test]
async fn the_store_can_be_shared_across_tasks() {
    // The daemon runs one delivery worker per destination next to the scheduler.
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&state_dir(&tmp), 10).await);
    let s = store.clone();
    let id = tokio::spawn(async move { publish(&s, "1", &["local"]).await.unwrap() })
        .await
        .unwrap();
    let s = store.clone();
    let job = tokio::spawn(async move { s.next_due_job("local", Utc::now()).await.unwrap() })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.snapshot_id, id);
}

#[tokio::test]
async fn a_shared_opener_reads_and_approves_next_to_the_lock_holder_but_cannot_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    // Nothing to share yet: a clear error rather than an empty database.
    assert!(matches!(
        Store::open_shared(&dir).await,
        Err(StoreError::Usage(_))
    ));
    let daemon = open(&dir, 10).await;
    let first = publish(&daemon, "a", &["local"]).await.unwrap();
    let held = hold(&daemon, "b").await.unwrap();

    let admin = Store::open_shared(&dir).await.expect("open shared");
    assert!(!admin.is_exclusive() && daemon.is_exclusive());
    assert_eq!(admin.current().await.unwrap().unwrap().id, first);
    assert_eq!(admin.held_snapshots().await.unwrap().len(), 1);
    assert!(matches!(admin.new_staging(), Err(StoreError::Usage(_))));
    assert!(matches!(admin.prune().await, Err(StoreError::Usage(_))));

    admin.approve(held, &["local".to_string()]).await.unwrap();
    // The lock holder sees the approval and the queued job at once.
    assert_eq!(daemon.current().await.unwrap().unwrap().id, held);
    let due = daemon
        .next_due_job("local", Utc::now() + Duration::days(1))
        .await
        .unwrap()
        .expect("approved snapshot queued");
    assert_eq!(due.snapshot_id, held);
    assert!(snapshot_folders(&dir).contains(&held.to_string()));
}

#[tokio::test]
async fn requeue_current_gives_failed_and_new_destinations_the_current_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let far = Utc::now() + Duration::days(1);
    assert!(
        store
            .requeue_current(&["a".into()])
            .await
            .unwrap()
            .is_empty(),
        "no snapshot yet"
    );
    let id = publish(&store, "a", &["a"]).await.unwrap();
    let job = store.next_due_job("a", far).await.unwrap().unwrap();
    let failure = DeliveryFailure {
        error: "530 login incorrect".into(),
        permanent: true,
    };
    assert_eq!(
        store
            .record_attempt(&job, Err(failure), Utc::now())
            .await
            .unwrap(),
        JobStatus::Failed
    );
    assert_eq!(store.failed_deliveries(10).await.unwrap().len(), 1);
    assert!(store.next_due_job("a", far).await.unwrap().is_none());

    // "a" failed for good, "b" was added to the config after the publish.
    let queued = store
        .requeue_current(&["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(queued, ["a", "b"]);
    for dest in ["a", "b"] {
        let job = store
            .next_due_job(dest, far)
            .await
            .unwrap()
            .expect("queued");
        assert_eq!((job.snapshot_id, job.attempts), (id, 0));
    }
    // Pending jobs are left alone; delivered ones are not sent again.
    assert!(
        store
            .requeue_current(&["a".into(), "b".into()])
            .await
            .unwrap()
            .is_empty()
    );
    for dest in ["a", "b"] {
        let job = store.next_due_job(dest, far).await.unwrap().unwrap();
        store.mark_done(&job).await.unwrap();
    }
    assert!(
        store
            .requeue_current(&["a".into(), "b".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.failed_deliveries(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_removed_destination_keeps_no_pending_job_and_gets_the_current_snapshot_when_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let far = Utc::now() + Duration::days(1);
    let first = publish(&store, "a", &["keep", "flaky"]).await.unwrap();
    // "flaky" leaves the config with snapshot 1 undelivered; snapshot 2 goes to "keep" only.
    assert_eq!(
        store
            .retire_removed_destinations(&["keep".into()])
            .await
            .unwrap(),
        1
    );
    assert!(store.next_due_job("flaky", far).await.unwrap().is_none());
    let second = publish(&store, "b", &["keep"]).await.unwrap();
    assert_ne!(first, second);
    // Back in the config: it gets the current snapshot, never the old one.
    let queued = store
        .requeue_current(&["keep".into(), "flaky".into()])
        .await
        .unwrap();
    assert_eq!(queued, ["flaky"]);
    let job = store.next_due_job("flaky", far).await.unwrap().unwrap();
    assert_eq!(job.snapshot_id, second);
}

/// Every way of opening refuses a missing or emptied state DB next to snapshot folders, and
/// changes nothing doing so (the history must not be replaced by a fresh, unguarded one).
#[tokio::test]
async fn a_lost_state_db_is_refused_by_every_opener_and_nothing_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    let first = publish(&store, "1", &["local"]).await.unwrap();
    let second = publish(&store, "2", &["local"]).await.unwrap();
    store.close().await;
    let db = dir.join("state.sqlite");

    for lose in ["truncate", "remove"] {
        match lose {
            "truncate" => drop(fs::File::create(&db).unwrap()),
            _ => {
                let _ = fs::remove_file(&db);
            }
        }
        let before = entries(&dir);
        let expected = if lose == "truncate" {
            "is empty (0 bytes)"
        } else {
            "is missing"
        };
        let errors = [
            Store::open(&dir, 10).await.map(drop).unwrap_err(),
            Store::open_shared(&dir).await.map(drop).unwrap_err(),
            Store::open_read_only(&dir).await.map(drop).unwrap_err(),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(matches!(e, StoreError::StateLost { .. }), "{lose}: {text}");
            assert!(
                text.contains(expected)
                    && text.contains(&format!("snapshot folder(s) {first}, {second}"))
                    && text.contains("sds-sync reset-state"),
                "{lose}: {text}"
            );
        }
        assert_eq!(entries(&dir), before, "{lose}: the state directory changed");
        assert_eq!(
            snapshot_folders(&dir),
            vec![first.to_string(), second.to_string()]
        );
    }
}

/// A DB restored from a backup older than the newest snapshot folder does not know that folder:
/// refused, and the folder is left alone (recovery only removes what the DB accounts for).
#[tokio::test]
async fn a_snapshot_folder_the_db_does_not_know_is_refused_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    publish(&store, "1", &["local"]).await.unwrap();
    store.close().await;
    let backup = tmp.path().join("backup.sqlite");
    fs::copy(dir.join("state.sqlite"), &backup).unwrap();
    let store = open(&dir, 10).await;
    let second = publish(&store, "2", &["local"]).await.unwrap();
    store.close().await;
    fs::copy(&backup, dir.join("state.sqlite")).unwrap();

    let e = Store::open(&dir, 10)
        .await
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "does not know 1 of them (restored from an older backup?), but {} holds snapshot folder(s) {second}",
            dir.join("snapshots").display()
        )),
        "{e}"
    );
    assert!(snapshot_folders(&dir).contains(&second.to_string()));
}

/// `open_read_only` reads a state directory without changing it: no recovery of a crashed
/// publish (the next writer does that), no directory for one never used.
#[tokio::test]
async fn open_read_only_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    assert!(Store::open_read_only(&dir).await.unwrap().is_none());
    assert!(
        !dir.exists(),
        "a read-only open created the state directory"
    );

    let store = open(&dir, 10).await;
    let first = publish(&store, "1", &["local"]).await.unwrap();
    store.close().await;
    let store = open_failing(&dir, FailPoint::AfterRename).await;
    publish(&store, "2", &["local"]).await.unwrap_err();
    drop(store);
    let left = snapshot_folders(&dir);
    assert_eq!(left.len(), 2, "the crash left a renamed folder");

    let ro = Store::open_read_only(&dir).await.unwrap().expect("a store");
    assert_eq!(current_id(&ro).await, Some(first));
    assert!(!ro.is_exclusive());
    assert!(ro.new_staging().is_err(), "a read-only store cannot stage");
    ro.close().await;
    assert_eq!(snapshot_folders(&dir), left, "read-only open recovered");

    // The next writer recovers.
    let store = open(&dir, 10).await;
    assert_eq!(snapshot_folders(&dir), vec![first.to_string()]);
    store.close().await;
}

/// An attempt counted at its start stays counted when the process dies before its end, and is
/// not counted twice when it does end.
#[tokio::test]
async fn an_attempt_is_counted_when_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    publish(&store, "1", &["sftp"]).await.unwrap();
    let far = Utc::now() + Duration::days(1);

    let job = store.next_due_job("sftp", far).await.unwrap().unwrap();
    let started = store.begin_attempt(&job).await.unwrap();
    assert_eq!(started.attempts, 0, "attempts made before this one");
    // "kill -9": nothing more is recorded.
    drop(store);
    let store = open(&dir, 10).await;
    let job = store.next_due_job("sftp", far).await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
    assert!(
        job.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("attempt 1 started at") && e.contains("did not finish")),
        "{:?}",
        job.last_error
    );

    // A finished attempt: counted once, its outcome replaces the note.
    let started = store.begin_attempt(&job).await.unwrap();
    let failure = DeliveryFailure {
        error: "connection refused".into(),
        permanent: false,
    };
    store
        .record_attempt(&started, Err(failure), Utc::now())
        .await
        .unwrap();
    let job = store.next_due_job("sftp", far).await.unwrap().unwrap();
    assert_eq!(
        (job.attempts, job.last_error.as_deref()),
        (2, Some("connection refused"))
    );
}

/// `reset-state` moves the DB and the folders into an archive (nothing deleted), records the
/// counts it is given, continues the snapshot ids, and a publish retires the baseline.
#[tokio::test]
async fn a_reset_archives_everything_and_keeps_a_baseline_until_a_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = state_dir(&tmp);
    let store = open(&dir, 10).await;
    publish(&store, "1", &["local"]).await.unwrap();
    let second = publish(&store, "2", &["local"]).await.unwrap();
    store.close().await;
    fs::remove_file(dir.join("state.sqlite")).unwrap();

    let reset = Store::begin_reset(&dir).unwrap();
    // The lock is held while the caller counts.
    assert!(matches!(
        Store::open(&dir, 10).await.map(drop).unwrap_err(),
        StoreError::Locked { .. }
    ));
    let folders: Vec<SnapshotId> = reset
        .snapshot_folders()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(folders.len(), 2);
    let counts = vec![sds_store::BaselineCount {
        file: "Student.csv".into(),
        entity: None,
        rows: 2,
    }];
    let (store, report) = reset
        .finish(counts.clone(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(report.folders, folders);
    assert!(report.db_files.is_empty(), "the DB was gone already");
    assert_eq!(
        entries(&report.archive.join("snapshots")),
        folders.iter().map(|id| id.to_string()).collect::<Vec<_>>()
    );
    assert!(report.archive.join("reset.json").is_file());
    assert!(snapshot_folders(&dir).is_empty());
    assert_eq!(store.current().await.unwrap(), None);
    assert_eq!(store.baseline().unwrap().expect("baseline").counts, counts);

    // A hold keeps the baseline; a publish retires it; ids continue after the archived ones.
    let held = hold(&store, "3").await.unwrap();
    assert!(held > second, "{held} after {second}");
    assert!(store.baseline().unwrap().is_some());
    let published = publish(&store, "4", &["local"]).await.unwrap();
    assert!(published > held);
    assert!(store.baseline().unwrap().is_none());
    store.close().await;
}
