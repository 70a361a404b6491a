//! The publish gate end to end, with the real `sds-sync` binary on a SQLite SIS: rows SDS would
//! reject (a user without a username, two people with one username, two SIS rows of one student
//! that disagree, a teacher whose schools give two e-mail addresses) are dropped with their enrollments, counted and named at WARN, and what `once`
//! delivers passes `sds-sync validate --strict`; a set that still fails validation is held like
//! a guard hold (exit 3, `status` says why, nothing delivered, `approve` publishes it).

mod support;

use serde_json::Value;
use support::snapshots::*;
use support::{Run, sds_command};

/// The default students query plus a second, different row of student 000126 (another first
/// name and password): a conflicting duplicate. The teachers query gives the two-school teacher
/// 1003 another e-mail address at school 002: one teacher, two accounts, a conflict too.
const CONFLICTING_STUDENT: &str = r#"
[source.queries]
students = """
SELECT st.student_number AS student_id, st.school_code AS school_id, st.first_name AS first_name,
       st.last_name AS last_name, st.email AS email, st.web_password AS password,
       st.grade_level AS grade
FROM students st
WHERE st.enroll_status = 'A'
UNION ALL
SELECT '000126', '001', 'Rob', 'Chen', 'robert.chen@demo.k12.example', 'Other-2026!', 7
"""
teachers = """
SELECT sf.staff_id AS teacher_id, ss.school_code AS school_id, sf.first_name AS first_name,
       sf.last_name AS last_name,
       CASE WHEN sf.staff_id = 1003 AND ss.school_code = '002'
            THEN 'siobhan.oconnell@demo.k12.example' ELSE sf.email END AS email,
       sf.web_password AS password
FROM staff sf
INNER JOIN staff_schools ss ON ss.staff_id = sf.staff_id
WHERE sf.is_active = TRUE
"""
"#;

/// 000125 gets 000123's address in other letters: one account for two people.
const SHARED_ADDRESS: &str =
    "UPDATE students SET email = 'JOSE.Alvarez@demo.k12.example' WHERE student_number = '000125';";

/// The `rows dropped` WARN line of `file` and `reason`.
fn dropped<'a>(lines: &'a [Value], file: &str, reason: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["file"] == file && l["reason"] == reason)
        .unwrap_or_else(|| panic!("no `rows dropped` line for {file} {reason}: {lines:#?}"))
}

#[track_caller]
fn assert_strict_valid(dir: &std::path::Path, format: &str) {
    let out = sds_command(|k| k.starts_with("SDS_SYNC"))
        .arg("validate")
        .arg(dir)
        .args(["--format", format, "--strict"])
        .output()
        .expect("run sds-sync validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validate --strict {format}:\n{text}");
    assert!(text.contains(" 0 error(s)"), "{text}");
}

fn rejected_rows_are_dropped(format: &str) {
    let env = Env::with_extra(format, CONFLICTING_STUDENT);
    env.sql(SHARED_ADDRESS);
    let run: Run = env.once();
    run.expect_code(0);
    let lines = run.logs_with_message("rows dropped");
    for l in &lines {
        assert_eq!(l["level"], "WARN", "{l}");
    }
    let v1 = format == "v1";
    let (students, enrollments) = if v1 {
        ("Student.csv", "StudentEnrollment.csv")
    } else {
        ("users.csv", "enrollments.csv")
    };
    // v2/v2.1 count students and teachers together in users.csv.
    let (teachers, rosters_file) = if v1 {
        ("Teacher.csv", "TeacherRoster.csv")
    } else {
        (students, enrollments)
    };
    let conflicting = if v1 { 2 } else { 4 };
    for (file, reason, count, ids) in [
        (students, "no_username", 1, vec!["000130"]),
        (students, "duplicate_username", 2, vec!["000123", "000125"]),
        (
            students,
            "conflicting_duplicate",
            conflicting,
            vec!["000126"],
        ),
        (teachers, "conflicting_duplicate", conflicting, vec!["1003"]),
    ] {
        let l = dropped(&lines, file, reason);
        assert_eq!(l["count"].as_u64(), Some(count), "{reason}: {l}");
        let named = l["ids"].as_str().unwrap_or_default();
        for id in ids {
            assert!(named.contains(id), "{reason} names {id}: {l}");
        }
    }
    // Their enrollments go with them (plus the inactive 000131's, as always).
    let theirs: u64 = env.sis_texts(
        "SELECT CAST(count(*) AS TEXT) FROM section_enrollments WHERE is_dropped = FALSE
           AND student_number IN ('000123', '000125', '000126', '000130', '000131')",
    )[0]
    .parse()
    .expect("count");
    // The roster rows of the inactive teacher 1008 and of the conflicting 1003 go too; v2.1
    // puts them in enrollments.csv.
    let rosters: u64 = env
        .sis_texts("SELECT CAST(count(*) AS TEXT) FROM sections WHERE staff_id IN (1003, 1008)")[0]
        .parse()
        .expect("count");
    assert_eq!(rosters, 3, "the demo SIS changed");
    let l = dropped(&lines, enrollments, "unknown_user");
    let expected = if v1 { theirs } else { theirs + rosters };
    assert_eq!(l["count"].as_u64(), Some(expected), "{l}");
    assert!(
        l["ids"].as_str().unwrap_or_default().contains("/000130"),
        "{l}"
    );
    let l = dropped(&lines, rosters_file, "unknown_user");
    assert!(
        l["ids"].as_str().unwrap_or_default().contains("/1003"),
        "{l}"
    );
    if v1 {
        assert_eq!(l["count"].as_u64(), Some(rosters), "{l}");
    }

    let status = env.status();
    let id = current_id(&status).expect("published");
    env.assert_delivered(id);
    let files = env.snapshot_files(id);
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for gone in ["000123", "000125", "000126", "000130", "1003"] {
            let mentions = |l: &str| l.split(',').any(|field| field == gone);
            assert!(!text.lines().any(mentions), "{name} still has {gone}");
        }
        assert!(!text.contains("jose.alvarez"), "{name}");
        assert!(!text.contains("oconnell@"), "{name}");
    }
    for dest in [DEST_LICENSE, DEST_PLAIN] {
        assert_strict_valid(&env.dest(dest), format);
    }
}

#[test]
fn rejected_rows_are_dropped_v1() {
    // License.csv follows Student.csv: its rows are checked against Student.csv by
    // `validate --strict`, and none names a dropped student (above).
    rejected_rows_are_dropped("v1");
}

#[test]
fn rejected_rows_are_dropped_v2_1() {
    rejected_rows_are_dropped("v2.1");
}

/// The hold of a set that fails the gate. No SIS data gets there (the builder drops first), so
/// a debug-build hook fakes one finding.
#[test]
fn a_set_failing_validation_is_held_and_can_be_approved() {
    let env = Env::new("v1");
    let first = env.publish_first();
    env.sql("UPDATE students SET last_name = 'Alvarez Ruiz' WHERE student_number = '000123';");
    let outbox = env.outbox_rows();
    let run = env.sds(&["once"], &[("SDS_SYNC_TEST_INVALID", "Student.csv")]);
    run.expect_code(EXIT_HELD);
    assert!(
        run.stderr.contains("`sds-sync status` shows why"),
        "{}",
        run.stderr
    );
    let logged = run.logs_with_message("export fails validation");
    assert_eq!(logged.len(), 1, "{}", run.stderr);
    assert_eq!(logged[0]["level"], "ERROR");
    assert_eq!(
        (&logged[0]["file"], &logged[0]["check"], &logged[0]["line"]),
        (
            &Value::from("Student.csv"),
            &Value::from("test"),
            &Value::from(2)
        )
    );
    let status = env.status();
    assert_eq!(current_id(&status), Some(first), "nothing published");
    let held = held_ids(&status);
    assert_eq!(held.len(), 1);
    let why = status["held"][0]["guard"]
        .as_array()
        .expect("reasons")
        .clone();
    assert_eq!(why.len(), 1, "{why:?}");
    assert_eq!(why[0]["rule"], "invalid");
    assert_eq!(why[0]["file"], "Student.csv");
    assert!(
        why[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SDS_SYNC_TEST_INVALID")
    );
    assert_eq!(env.outbox_rows(), outbox, "nothing enqueued");
    env.assert_delivered(first);
    let text = env.sds(&["status"], &[]);
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("Student.csv:2: invalid: a finding injected"),
        "{}",
        text.stdout
    );

    env.approve(&held[0].to_string()).expect_code(0);
    env.assert_delivered(held[0]);

    // The gate judges the first snapshot too (the guard has nothing to compare it with).
    let fresh = Env::new("v2.1");
    let run = fresh.sds(&["once"], &[("SDS_SYNC_TEST_INVALID", "users.csv")]);
    run.expect_code(EXIT_HELD);
    let status = fresh.status();
    assert_eq!(current_id(&status), None);
    assert_eq!(held_ids(&status).len(), 1);
    let dry = fresh.sds(
        &["once", "--dry-run"],
        &[("SDS_SYNC_TEST_INVALID", "users.csv")],
    );
    dry.expect_code(0);
    assert!(
        dry.stdout
            .contains("invalid: users.csv:2: a finding injected"),
        "{}",
        dry.stdout
    );
}
