//! End-to-end crash consistency of publishing, with the real `sds-sync` binary: for each fail
//! point (`SDS_SYNC_FAILPOINT`, which stops publishing as if the process died there and cleans
//! nothing up) the state stays consistent (old snapshot current before the commit, new one
//! after), the destinations hold complete files of exactly one snapshot, and the next normal
//! run completes the work and leaves no leftovers.

mod support;

use support::snapshots::*;

const FAIL_POINTS: [&str; 4] = [
    "after_staging",
    "after_rename",
    "before_commit",
    "after_commit",
];

/// A change to publish: one student's last name.
const CHANGE: &str =
    "UPDATE students SET last_name = 'Crashworthy' WHERE student_number = '000123';";

/// `once` with the fail point set: fails, says why, and leaves what a crash at that step leaves.
#[track_caller]
fn crash_at(env: &Env, point: &str, old: i64) {
    let outbox = env.outbox_rows();
    let run = env.once_failing_at(point);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "injected failure at publish step {point} (fail point set for testing)"
        )),
        "{point}: {}",
        run.stderr
    );
    // What the "crash" left behind, read before any later open can recover it.
    let folders = env.snapshot_folders();
    match point {
        "after_staging" => {
            assert_eq!(
                env.staging_entries().len(),
                1,
                "{point}: staging folder left"
            );
            assert_eq!(folders, vec![old.to_string()], "{point}");
            assert_eq!(env.reserved_rows(), 0, "{point}");
            assert_eq!(env.outbox_rows(), outbox, "{point}");
        }
        "after_rename" | "before_commit" => {
            assert_eq!(env.staging_entries(), Vec::<String>::new(), "{point}");
            assert_eq!(
                folders.len(),
                2,
                "{point}: renamed folder left: {folders:?}"
            );
            assert_eq!(
                env.reserved_rows(),
                1,
                "{point}: uncommitted reservation left"
            );
            assert_eq!(env.outbox_rows(), outbox, "{point}: nothing enqueued");
        }
        "after_commit" => {
            assert_eq!(env.staging_entries(), Vec::<String>::new(), "{point}");
            assert_eq!(folders.len(), 2, "{point}: {folders:?}");
            assert_eq!(env.reserved_rows(), 0, "{point}");
            assert_eq!(
                env.outbox_rows(),
                outbox + 2,
                "{point}: one job per destination"
            );
        }
        other => panic!("unknown fail point {other}"),
    }
    // Whatever happened in the state directory, the destinations hold the old set, whole.
    env.assert_delivered(old);
}

/// After a normal run following the crash: the new data is current and delivered everywhere,
/// nothing is pending and nothing is left over.
#[track_caller]
fn assert_completed(env: &Env, old: i64, point: &str) -> i64 {
    let status = env.status();
    let current = current_id(&status).expect("current");
    assert!(current > old, "{point}: new snapshot current");
    assert_eq!(
        pending(&status),
        Vec::<(String, i64)>::new(),
        "{point}: nothing pending"
    );
    assert_eq!(held_ids(&status), Vec::<i64>::new(), "{point}");
    env.assert_delivered(current);
    let students = data_rows(&folder_entries(&env.dest(DEST_PLAIN))["Student.csv"]);
    assert!(
        students
            .iter()
            .any(|r| r.starts_with("000123,001,José,Crashworthy,")),
        "{point}: the destination has the new data"
    );
    env.assert_no_leftovers();
    current
}

/// The flow of the issue: crash, `status` shows a consistent state (and, reading only, leaves
/// what the crash left), a normal `once` completes.
fn crash_then_status_then_once(point: &str) {
    let env = Env::new("v1");
    let old = env.publish_first();
    env.sql(CHANGE);
    crash_at(&env, point, old);
    let left = (
        env.staging_entries(),
        env.snapshots_state(),
        env.reserved_rows(),
    );

    let status = env.status();
    let last = last_run(&status);
    assert_eq!(last["outcome"], "failed", "{point}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("injected failure")),
        "{point}: {last}"
    );
    assert_eq!(held_ids(&status), Vec::<i64>::new(), "{point}");
    let committed = if point == "after_commit" {
        // Committed: the new snapshot is current and waits for delivery to both destinations.
        let new = current_id(&status).expect("current");
        assert!(new > old, "{point}");
        let mut jobs = pending(&status);
        jobs.sort();
        assert_eq!(
            jobs,
            vec![
                (DEST_LICENSE.to_string(), new),
                (DEST_PLAIN.to_string(), new)
            ],
            "{point}"
        );
        Some(new)
    } else {
        assert_eq!(
            current_id(&status),
            Some(old),
            "{point}: old snapshot current"
        );
        assert_eq!(pending(&status), Vec::<(String, i64)>::new(), "{point}");
        None
    };
    // `status` only reads: the leftovers are still there, untouched, for the next writer.
    assert_eq!(
        (
            env.staging_entries(),
            env.snapshots_state(),
            env.reserved_rows()
        ),
        left,
        "{point}: status changed the state directory"
    );
    env.assert_delivered(old);

    let run = env.once();
    run.expect_code(0);
    let status = env.status();
    let last = last_run(&status);
    match committed {
        Some(new) => {
            assert_eq!(
                last["outcome"], "unchanged",
                "{point}: data already published"
            );
            assert_eq!(current_id(&status), Some(new));
        }
        None => assert_eq!(last["outcome"], "published", "{point}"),
    }
    assert_completed(&env, old, point);
}

#[test]
fn crash_after_staging() {
    crash_then_status_then_once("after_staging");
}

#[test]
fn crash_after_rename() {
    crash_then_status_then_once("after_rename");
}

#[test]
fn crash_before_commit() {
    crash_then_status_then_once("before_commit");
}

#[test]
fn crash_after_commit() {
    crash_then_status_then_once("after_commit");
}

/// Without a `status` in between: the next `once` itself recovers and completes, at every fail
/// point; then a further run is unchanged.
#[test]
fn next_once_recovers_from_every_fail_point() {
    for point in FAIL_POINTS {
        let env = Env::new("v1");
        let old = env.publish_first();
        env.sql(CHANGE);
        crash_at(&env, point, old);
        env.once().expect_code(0);
        let current = assert_completed(&env, old, point);
        env.once().expect_code(0);
        let status = env.status();
        assert_eq!(last_run(&status)["outcome"], "unchanged", "{point}");
        assert_eq!(current_id(&status), Some(current), "{point}");
    }
}

/// Two crashes in a row at different steps, then a normal run: still one consistent snapshot.
#[test]
fn repeated_crashes_then_a_normal_run() {
    let env = Env::new("v1");
    let old = env.publish_first();
    env.sql(CHANGE);
    crash_at(&env, "after_rename", old);
    // The second crash's open recovers the first one's leftovers before failing itself.
    let run = env.once_failing_at("after_staging");
    run.expect_code(1);
    assert_eq!(env.reserved_rows(), 0);
    assert_eq!(env.snapshot_folders(), vec![old.to_string()]);
    assert_eq!(env.staging_entries().len(), 1);
    env.assert_delivered(old);
    env.once().expect_code(0);
    assert_completed(&env, old, "after_rename, then after_staging");
}

#[test]
fn unknown_fail_point_is_refused() {
    let env = Env::new("v1");
    let run = env.once_failing_at("after_lunch");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("SDS_SYNC_FAILPOINT: unknown fail point"),
        "{}",
        run.stderr
    );
    assert_eq!(env.snapshot_folders(), Vec::<String>::new());
}
