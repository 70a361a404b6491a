//! End-to-end tests of change detection with the real `sds-sync` binary on a SQLite SIS: exact
//! per-file added/removed/changed counts in v1, v2 and v2.1 (dry-run table, log lines and
//! `status --json` all agree), unchanged runs (same data, and the same data in another SIS row
//! order) write and enqueue nothing, and `once --dry-run` changes nothing.
//!
//! Every expected number is derived by hand from `deploy/sis/demo-data.sql` and the SQL each test
//! runs, never from the program's output. The demo SIS with all its active schools exported:
//! - schools 001, 002, 003 (099 is inactive): 3;
//! - students: 33 minus the inactive 000131 and 004513 minus 000130, which has no e-mail and so
//!   no username (dropped, `no_username`): 30, each with a licence row;
//! - teacher rows (teacher, school): 10 staff_schools rows minus 1008@002 (inactive teacher) and
//!   1002@099 (school not exported): 8, for 7 distinct teachers (1001-1007);
//! - sections: 12 minus 099-WOOD-01 (school not exported): 11 (001-HR-7A is kept, named after its
//!   course code);
//! - student enrollments: 90 minus the dropped one (000133 SCI8) minus 000131's (inactive) minus
//!   000130's 3 (no username): 85;
//! - teacher rosters: 12 sections minus 002-USHIST-01 (no teacher), 002-FR2-01 (inactive 1008),
//!   099-WOOD-01 (section not exported): 9.
//!
//! v2 `users.csv` = 30 students + 7 teachers = 37, `enrollments.csv` = 85 + 9 = 94; v2.1
//! `roles.csv` = 30 student rows + 8 teacher-school rows = 38.

mod support;

use support::snapshots::*;

/// Round 1, each edit hand-counted per format:
/// - 000124's last name changes: Student.csv / users.csv changed 1; License.csv is keyed by the
///   whole row (display name included): removed 1 + added 1;
/// - new active student 000136 with an e-mail and one enrollment: Student/users added 1,
///   License added 1, StudentEnrollment/enrollments added 1, v2.1 roles added 1;
/// - teacher 1003 loses school 002 (still teaches 002-ENG10-01, rosters resolve by teacher ID):
///   v1 Teacher.csv removed 1 (1003@002); v2 users.csv changed 1 (orgSourcedIds "001,002" →
///   "001"); v2.1 roles.csv removed 1, v2.1 users.csv unchanged for 1003 (no school column).
const ROUND1: &str = "
UPDATE students SET last_name = 'Ørsted-Lund' WHERE student_number = '000124';
INSERT INTO students (student_number, school_code, first_name, last_name, email, web_password,
                      grade_level, enroll_status, entry_date)
VALUES ('000136', '001', 'Ada', 'Lovelace', 'ada.lovelace@demo.k12.example', 'Welcome-2026!',
        7, 'A', '2025-08-25');
INSERT INTO section_enrollments (student_number, school_code, course_code, section_code,
                                 entry_date, is_dropped)
VALUES ('000136', '001', 'MATH7', '01', '2025-08-25', FALSE);
DELETE FROM staff_schools WHERE staff_id = 1003 AND school_code = '002';
";

/// Round 2, compared with round 1's snapshot:
/// - course 001 MATH7 renamed: sections 001-MATH7-01 and -02 changed (2);
/// - 000123 leaves 001-SCI8-01: one enrollment removed;
/// - school 001 renamed: School.csv / orgs.csv changed 1.
const ROUND2: &str = "
UPDATE courses SET course_name = 'Mathematics Seven'
 WHERE school_code = '001' AND course_code = 'MATH7';
DELETE FROM section_enrollments
 WHERE student_number = '000123' AND school_code = '001' AND course_code = 'SCI8'
   AND section_code = '01';
UPDATE schools SET school_name = 'Harbor View Middle' WHERE school_code = '001';
";

/// The guard would hold v1's round 1 (1 of 8 teacher rows = 12.5% removed); these tests are
/// about the counts, so the removal limit is raised.
const LENIENT_GUARD: &str = "[guard]\nmax_removed_percent = 50\n";

type Table = [(&'static str, u64, u64, u64, u64)];

/// First export, then round 1 and round 2; after each, the counts of the dry run, of the
/// `file compared` log lines and of the run in `status --json` are the expected ones, and the
/// published snapshot reaches both destinations.
fn exact_counts(format: &str, first: &[(&str, u64)], round1: &Table, round2: &Table) {
    let env = Env::with_extra(format, LENIENT_GUARD);

    let want = first_counts(first);
    let dry = env.dry_run();
    dry.expect_code(0);
    assert!(
        dry.stdout
            .contains("no snapshot published yet: everything is new"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        counts_from_dry_run(&dry.stdout),
        want,
        "{format} first dry run"
    );
    let run = env.once();
    run.expect_code(0);
    assert_eq!(counts_from_log(&run), want, "{format} first run log");
    let status = env.status();
    assert_eq!(
        counts_from_status_run(last_run(&status)),
        want,
        "{format} first run in status"
    );
    let mut previous = current_id(&status).expect("first snapshot");
    env.assert_delivered(previous);

    for (round, sql, table) in [(1, ROUND1, round1), (2, ROUND2, round2)] {
        env.sql(sql);
        let want = counts(table);

        let dry = env.dry_run();
        dry.expect_code(0);
        assert!(
            dry.stdout
                .contains(&format!("compared with snapshot {previous}")),
            "{}",
            dry.stdout
        );
        assert!(dry.stdout.contains("guard: pass"), "{}", dry.stdout);
        assert_eq!(
            counts_from_dry_run(&dry.stdout),
            want,
            "{format} round {round}: dry-run table\n{}",
            dry.stdout
        );

        let run = env.once();
        run.expect_code(0);
        assert_eq!(
            counts_from_log(&run),
            want,
            "{format} round {round}: log lines"
        );
        let status = env.status();
        let last = last_run(&status);
        assert_eq!(last["outcome"], "published", "{format} round {round}");
        assert_eq!(
            counts_from_status_run(last),
            want,
            "{format} round {round}: status --json"
        );
        // `changed` (content hash differs) agrees with the row counts.
        for f in last["files"].as_array().expect("files") {
            let d = &f["diff"];
            let any = ["added", "removed", "changed"]
                .iter()
                .any(|k| d[*k].as_u64() != Some(0));
            assert_eq!(f["changed"].as_bool(), Some(any), "{format}: {f}");
        }
        let id = current_id(&status).expect("current snapshot");
        assert!(id > previous, "round {round} published a new snapshot");
        assert_eq!(last["snapshot_id"].as_i64(), Some(id));
        assert_eq!(
            pending(&status),
            Vec::<(String, i64)>::new(),
            "everything delivered"
        );
        env.assert_delivered(id);
        previous = id;
    }
}

#[test]
fn exact_counts_v1() {
    exact_counts(
        "v1",
        &[
            ("School.csv", 3),
            ("Section.csv", 11),
            ("Student.csv", 30),
            ("Teacher.csv", 8),
            ("StudentEnrollment.csv", 85),
            ("TeacherRoster.csv", 9),
            ("License.csv", 30),
        ],
        &[
            ("School.csv", 3, 0, 0, 0),
            ("Section.csv", 11, 0, 0, 0),
            ("Student.csv", 31, 1, 0, 1),
            ("Teacher.csv", 7, 0, 1, 0),
            ("StudentEnrollment.csv", 86, 1, 0, 0),
            ("TeacherRoster.csv", 9, 0, 0, 0),
            ("License.csv", 31, 2, 1, 0),
        ],
        &[
            ("School.csv", 3, 0, 0, 1),
            ("Section.csv", 11, 0, 0, 2),
            ("Student.csv", 31, 0, 0, 0),
            ("Teacher.csv", 7, 0, 0, 0),
            ("StudentEnrollment.csv", 85, 0, 1, 0),
            ("TeacherRoster.csv", 9, 0, 0, 0),
            ("License.csv", 31, 0, 0, 0),
        ],
    );
}

#[test]
fn exact_counts_v2() {
    exact_counts(
        "v2",
        &[
            ("orgs.csv", 3),
            ("users.csv", 37),
            ("classes.csv", 11),
            ("enrollments.csv", 94),
        ],
        &[
            ("orgs.csv", 3, 0, 0, 0),
            ("users.csv", 38, 1, 0, 2),
            ("classes.csv", 11, 0, 0, 0),
            ("enrollments.csv", 95, 1, 0, 0),
        ],
        &[
            ("orgs.csv", 3, 0, 0, 1),
            ("users.csv", 38, 0, 0, 0),
            ("classes.csv", 11, 0, 0, 2),
            ("enrollments.csv", 94, 0, 1, 0),
        ],
    );
}

#[test]
fn exact_counts_v2_1() {
    exact_counts(
        "v2.1",
        &[
            ("orgs.csv", 3),
            ("users.csv", 37),
            ("roles.csv", 38),
            ("classes.csv", 11),
            ("enrollments.csv", 94),
        ],
        &[
            ("orgs.csv", 3, 0, 0, 0),
            ("users.csv", 38, 1, 0, 1),
            ("roles.csv", 38, 1, 1, 0),
            ("classes.csv", 11, 0, 0, 0),
            ("enrollments.csv", 95, 1, 0, 0),
        ],
        &[
            ("orgs.csv", 3, 0, 0, 1),
            ("users.csv", 38, 0, 0, 0),
            ("roles.csv", 38, 0, 0, 0),
            ("classes.csv", 11, 0, 0, 2),
            ("enrollments.csv", 94, 0, 1, 0),
        ],
    );
}

/// What an unchanged run may not touch: snapshot folders and their files, staging, the
/// destinations (bytes and mtimes), the outbox, the current snapshot.
struct Untouched {
    snapshots: std::collections::BTreeMap<String, FolderState>,
    destinations: std::collections::BTreeMap<String, FolderState>,
    outbox_rows: i64,
    current: Option<i64>,
    runs: usize,
    /// A staging folder created and removed again still leaves its trace here: an unchanged
    /// export is recognised while its files are compared with the current snapshot's, before
    /// anything is written.
    staging_mtime: Option<std::time::SystemTime>,
}

impl Untouched {
    fn capture(env: &Env) -> Untouched {
        let status = env.status();
        Untouched {
            snapshots: env.snapshots_state(),
            destinations: env.destinations_state(),
            outbox_rows: env.outbox_rows(),
            current: current_id(&status),
            runs: recent_runs(&status).len(),
            staging_mtime: staging_mtime(env),
        }
    }

    /// Asserts nothing changed; returns the new status.
    #[track_caller]
    fn assert_same(&self, env: &Env, what: &str) -> serde_json::Value {
        let status = env.status();
        assert_eq!(
            current_id(&status),
            self.current,
            "{what}: current snapshot"
        );
        assert_eq!(held_ids(&status), Vec::<i64>::new(), "{what}: held");
        assert_eq!(
            pending(&status),
            Vec::<(String, i64)>::new(),
            "{what}: pending deliveries"
        );
        assert_eq!(env.outbox_rows(), self.outbox_rows, "{what}: outbox rows");
        assert!(
            env.snapshots_state() == self.snapshots,
            "{what}: snapshot folders or their files changed: {:?}",
            env.snapshot_folders()
        );
        assert_eq!(
            env.staging_entries(),
            Vec::<String>::new(),
            "{what}: staging"
        );
        assert!(
            env.destinations_state() == self.destinations,
            "{what}: destination files were rewritten"
        );
        status
    }

    /// Asserts not even a staging folder was written (an unchanged export).
    #[track_caller]
    fn assert_nothing_written(&self, env: &Env, what: &str) {
        assert_eq!(
            staging_mtime(env),
            self.staging_mtime,
            "{what}: a staging folder was created (files were written)"
        );
    }
}

fn staging_mtime(env: &Env) -> Option<std::time::SystemTime> {
    std::fs::metadata(env.staging_dir())
        .and_then(|m| m.modified())
        .ok()
}

/// `once` on data identical to the current snapshot: exit 0, logs "unchanged", every diff 0.
#[track_caller]
fn assert_unchanged_run(env: &Env, before: &Untouched, what: &str) {
    let run = env.once();
    run.expect_code(0);
    assert_eq!(
        run.logs_with_message("data unchanged since the current snapshot; nothing to publish")
            .len(),
        1,
        "{what}: the run says the data is unchanged\n{}",
        run.stderr
    );
    assert!(
        run.logs_with_message("snapshot published").is_empty(),
        "{what}"
    );
    // An unchanged export publishes nothing, so it never pays for the publish gate.
    assert!(
        run.logs_with_message("files gated").is_empty(),
        "{what}: the gate ran\n{}",
        run.stderr
    );
    let status = before.assert_same(env, what);
    before.assert_nothing_written(env, what);
    assert_eq!(
        recent_runs(&status).len(),
        before.runs + 1,
        "{what}: one run"
    );
    let last = last_run(&status);
    assert_eq!(last["outcome"], "unchanged", "{what}");
    assert!(last["snapshot_id"].is_null(), "{what}: {last}");
    for (file, (_, diff)) in counts_from_status_run(last) {
        assert_eq!(diff, Some([0, 0, 0]), "{what}: {file}");
    }
    for f in last["files"].as_array().expect("files") {
        assert_eq!(f["changed"].as_bool(), Some(false), "{what}: {f}");
    }
}

#[test]
fn unchanged_run_writes_and_enqueues_nothing() {
    let env = Env::new("v1");
    let first = env.publish_first();
    assert_eq!(env.snapshot_folders(), vec![first.to_string()]);
    // One job per destination, both delivered.
    assert_eq!(env.outbox_rows(), 2);
    let before = Untouched::capture(&env);
    assert_unchanged_run(&env, &before, "second run");
    let again = Untouched::capture(&env);
    assert!(again.snapshots == before.snapshots && again.destinations == before.destinations);
    assert_unchanged_run(&env, &again, "third run");
    assert_eq!(env.snapshot_folders(), vec![first.to_string()]);
    assert_eq!(env.outbox_rows(), 2);
}

/// A run that changes some files writes only those: the others are hard links to the current
/// snapshot's files. A current snapshot file edited by hand is never passed on: the new
/// snapshot gets the bytes sds-sync renders.
#[cfg(unix)]
#[test]
fn a_changed_run_links_the_equal_files_and_rewrites_an_edited_one() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new("v1");
    let first = env.publish_first();
    let path = |id: i64, name: &str| env.snapshots_dir().join(id.to_string()).join(name);
    let inode = |id: i64, name: &str| {
        std::fs::metadata(path(id, name))
            .unwrap_or_else(|e| panic!("snapshot {id} {name}: {e}"))
            .ino()
    };
    let school = env.snapshot_file(first, "School.csv");
    let mut edited = school.clone();
    edited.extend_from_slice(b"999,Edited By Hand\r\n");
    std::fs::write(path(first, "School.csv"), &edited).unwrap();
    // Student.csv and License.csv (display name) change; nothing else.
    env.sql("UPDATE students SET last_name = 'Alvarez Ruiz' WHERE student_number = '000123';");
    let run = env.once();
    run.expect_code(0);
    let second = current_id(&env.status()).expect("a new snapshot");
    assert_ne!(second, first);
    env.assert_delivered(second);
    for name in ["Student.csv", "License.csv"] {
        assert_ne!(inode(second, name), inode(first, name), "{name} is new");
    }
    assert_eq!(
        env.snapshot_file(second, "School.csv"),
        school,
        "School.csv as rendered"
    );
    assert_ne!(inode(second, "School.csv"), inode(first, "School.csv"));
    for name in [
        "Section.csv",
        "Teacher.csv",
        "StudentEnrollment.csv",
        "TeacherRoster.csv",
    ] {
        assert_eq!(inode(second, name), inode(first, name), "{name} is linked");
    }
    let counts = counts_from_log(&run);
    assert_eq!(counts["Student.csv"], (30, Some([0, 0, 1])));
    assert_eq!(counts["School.csv"], (3, Some([0, 0, 0])));
    // A changed export is gated once, over every file (the linked ones too), beside the render,
    // and the gate's line belongs to the run like every other.
    let gated = run.logs_with_message("files gated");
    assert_eq!(gated.len(), 1, "{}", run.stderr);
    assert_eq!(gated[0]["files"], 7, "{}", gated[0]);
    assert_eq!(gated[0]["findings"], 0, "{}", gated[0]);
    let started = run.logs_with_message("run started");
    assert_eq!(started.len(), 1, "{}", run.stderr);
    assert!(
        gated[0]["span"]["run_id"].is_i64()
            && gated[0]["span"]["run_id"] == started[0]["span"]["run_id"],
        "the gate's line carries the run's id: {} / {}",
        gated[0],
        started[0]
    );
}

/// Data unchanged but a snapshot copy edited by hand: the rendered file goes to a staging
/// folder (the edited copy is never passed on), yet the export equals the current snapshot by
/// its record, so the run is unchanged, publishes nothing, and no gate's findings are used.
#[test]
fn an_edited_snapshot_copy_with_unchanged_data_is_an_unchanged_run() {
    let env = Env::new("v1");
    let first = env.publish_first();
    let path = env
        .snapshots_dir()
        .join(first.to_string())
        .join("Teacher.csv");
    let mut edited = std::fs::read(&path).expect("Teacher.csv of the first snapshot");
    edited.extend_from_slice(b"999,1,Edited By Hand\r\n");
    std::fs::write(&path, &edited).expect("edit the snapshot copy");
    let run = env.once();
    run.expect_code(0);
    assert_eq!(
        run.logs_with_message("data unchanged since the current snapshot; nothing to publish")
            .len(),
        1,
        "{}",
        run.stderr
    );
    assert!(run.logs_with_message("snapshot published").is_empty());
    assert!(
        run.logs_with_message("files gated").is_empty(),
        "an unchanged export uses no gate\n{}",
        run.stderr
    );
    assert_eq!(current_id(&env.status()), Some(first));
    assert_eq!(env.snapshot_folders(), vec![first.to_string()]);
}

/// The SIS file is rebuilt with every table's rows inserted in reverse order: the default
/// queries return the same rows in another order, and the export must be "unchanged".
fn reordered_sis_is_unchanged(format: &str) {
    let env = Env::new(format);
    env.publish_first();
    let before = Untouched::capture(&env);

    let students = "SELECT student_number FROM students WHERE enroll_status = 'A'";
    let enrollments = "SELECT student_number || '/' || course_code || '-' || section_code
                       FROM section_enrollments WHERE is_dropped = FALSE";
    let old_students = env.sis_texts(students);
    let old_enrollments = env.sis_texts(enrollments);
    env.rebuild_sis_reversed();
    let new_students = env.sis_texts(students);
    let new_enrollments = env.sis_texts(enrollments);
    // The rebuild really changed the order the SIS hands out, and nothing else.
    assert_ne!(old_students, new_students, "student order");
    assert_ne!(old_enrollments, new_enrollments, "enrollment order");
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(old_students), sorted(new_students));
    assert_eq!(sorted(old_enrollments), sorted(new_enrollments));

    assert_unchanged_run(&env, &before, &format!("{format} reordered SIS"));
}

#[test]
fn reordered_sis_rows_are_unchanged_v1() {
    reordered_sis_is_unchanged("v1");
}

#[test]
fn reordered_sis_rows_are_unchanged_v2() {
    reordered_sis_is_unchanged("v2");
}

#[test]
fn reordered_sis_rows_are_unchanged_v2_1() {
    reordered_sis_is_unchanged("v2.1");
}

#[test]
fn dry_run_changes_nothing_and_prints_the_guard_verdict() {
    let env = Env::new("v1");

    // Before any snapshot: everything is new, the guard passes, nothing is published.
    let dry = env.dry_run();
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("no snapshot published yet"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("guard: pass"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("result: a new snapshot would be published (dry run: nothing was changed)"),
        "{}",
        dry.stdout
    );
    assert_eq!(env.snapshot_folders(), Vec::<String>::new());
    assert_eq!(env.staging_entries(), Vec::<String>::new());
    assert!(folder_state(&env.dest(DEST_LICENSE)).is_empty());
    assert!(folder_state(&env.dest(DEST_PLAIN)).is_empty());
    let status = env.status();
    assert_eq!(current_id(&status), None);
    assert_eq!(recent_runs(&status).len(), 0);
    assert_eq!(env.outbox_rows(), 0);

    let first = env.publish_first();
    let before = Untouched::capture(&env);

    // Unchanged data.
    let dry = env.dry_run();
    dry.expect_code(0);
    assert!(
        dry.stdout
            .contains("result: unchanged; nothing would be published"),
        "{}",
        dry.stdout
    );
    before.assert_same(&env, "dry run, unchanged data");
    before.assert_nothing_written(&env, "dry run, unchanged data");

    // A small change: the guard passes, the counts are shown, nothing is written.
    env.sql("UPDATE students SET last_name = 'Alvarez Ruiz' WHERE student_number = '000123';");
    let dry = env.dry_run();
    dry.expect_code(0);
    assert!(
        dry.stdout
            .contains(&format!("compared with snapshot {first}")),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("guard: pass"), "{}", dry.stdout);
    assert_eq!(
        counts_from_dry_run(&dry.stdout)["Student.csv"],
        (30, Some([0, 0, 1]))
    );
    let status = before.assert_same(&env, "dry run, small change");
    assert_eq!(
        recent_runs(&status).len(),
        before.runs,
        "a dry run is no run"
    );

    // 4 of 30 students gone (13.33% > 10%), with their 4+4+4+2 = 14 of 85 enrollments
    // (16.47%) and 4 of 30 licence rows, plus 000123's old licence row (its display name
    // changed above): 5 of 30 (16.67%). The dry run says HOLD, and holds nothing.
    env.sql(
        "DELETE FROM students WHERE student_number IN ('004501', '004502', '004503', '004504');",
    );
    let dry = env.dry_run();
    dry.expect_code(0);
    assert!(dry.stdout.contains("guard: HOLD"), "{}", dry.stdout);
    for reason in [
        "Student.csv: 4 removed of 30 rows (13.33% > 10%)",
        "StudentEnrollment.csv: 14 removed of 85 rows (16.47% > 10%)",
        "License.csv: 5 removed of 30 rows (16.67% > 10%)",
    ] {
        assert!(dry.stdout.contains(reason), "{reason}\n{}", dry.stdout);
    }
    assert!(
        dry.stdout.contains(
            "result: the snapshot would be held, not published (dry run: nothing was changed)"
        ),
        "{}",
        dry.stdout
    );
    assert_eq!(
        counts_from_dry_run(&dry.stdout)["Student.csv"],
        (26, Some([0, 4, 1]))
    );
    let status = before.assert_same(&env, "dry run, guard would hold");
    assert_eq!(
        recent_runs(&status).len(),
        before.runs,
        "a dry run is no run"
    );
}
