//! The full SDS formats end to end with the real binary on a SQLite copy of the demo SIS: the
//! optional files (academicSessions.csv, courses.csv, relationships.csv) take part in the diff,
//! `once --dry-run`, the run record `status` shows, the per-file log lines and every
//! destination, where `omit_files` leaves one out like `include_license_file = false` leaves the
//! licence file out. (The guard: `snapshots_guard.rs`; the bytes: `cross_db.rs`.)

mod support;

use support::snapshots::*;

const SOURCE_KEYS: &str =
    "optional_queries = [\"academic_sessions\", \"courses\", \"guardians\"]\n";
const EXPORT_KEYS: &str =
    "optional_columns = true\n\n[export.district]\nid = \"D100\"\nname = \"Demo District\"\n";
const DEST_OMIT: &str = "no-relationships";

/// v2.1 with the three optional queries, the optional columns and a district; a third local
/// destination leaves relationships.csv out.
fn env() -> Env {
    let env = Env::with_keys("v2.1", SOURCE_KEYS, EXPORT_KEYS, "");
    let mut config = std::fs::read_to_string(&env.config).expect("config");
    config.push_str(&format!(
        "\n[[destination]]\nname = \"{DEST_OMIT}\"\nkind = \"local\"\npath = \"{}\"\n\
         omit_files = [\"relationships.csv\"]\n",
        env.dest(DEST_OMIT).display()
    ));
    std::fs::write(&env.config, config).expect("config");
    env
}

/// The files of the first export, worked out from `deploy/sis/demo-data.sql` (see
/// `cross_db.rs` for their bytes): users 30 students + 7 teachers + 6 guardians; roles 30 + 8
/// teacher rows (1003 at two schools); orgs 3 schools + the district; the plain export's 94
/// enrollments and 11 classes; 4 active terms; 10 courses (099's is dropped); 7 relationships.
const FIRST: [(&str, u64); 8] = [
    ("academicSessions.csv", 4),
    ("classes.csv", 11),
    ("courses.csv", 10),
    ("enrollments.csv", 94),
    ("orgs.csv", 4),
    ("relationships.csv", 7),
    ("roles.csv", 38),
    ("users.csv", 43),
];

#[test]
fn optional_files_are_diffed_reported_and_delivered() {
    let env = env();
    let dry = env.dry_run();
    dry.expect_code(0);
    assert_eq!(counts_from_dry_run(&dry.stdout), first_counts(&FIRST));

    let first = env.publish_first();
    let status = env.status();
    assert_eq!(
        counts_from_status_run(last_run(&status)),
        first_counts(&FIRST)
    );
    // Every destination has every file, but the one that leaves relationships.csv out.
    let snapshot = env.snapshot_files(first);
    assert_eq!(snapshot.len(), 8);
    for dest in [DEST_LICENSE, DEST_PLAIN] {
        let got = folder_entries(&env.dest(dest));
        assert_eq!(got, snapshot, "{dest}");
    }
    let mut without = snapshot.clone();
    without.remove("relationships.csv");
    assert_eq!(folder_entries(&env.dest(DEST_OMIT)), without);

    // One more guardian link (G002 is already a user) and a renamed term.
    env.sql(
        "INSERT INTO student_guardians (student_number, guardian_id, relationship) VALUES ('000132', 'G002', 'Parent');
         UPDATE terms SET term_name = 'Quarter One' WHERE term_id = 'Q1-2526';",
    );
    let want = counts(&[
        ("academicSessions.csv", 4, 0, 0, 1),
        ("classes.csv", 11, 0, 0, 0),
        ("courses.csv", 10, 0, 0, 0),
        ("enrollments.csv", 94, 0, 0, 0),
        ("orgs.csv", 4, 0, 0, 0),
        ("relationships.csv", 8, 1, 0, 0),
        ("roles.csv", 38, 0, 0, 0),
        ("users.csv", 43, 0, 0, 0),
    ]);
    let dry = env.dry_run();
    dry.expect_code(0);
    assert_eq!(counts_from_dry_run(&dry.stdout), want);
    let run = env.once();
    run.expect_code(0);
    assert_eq!(counts_from_log(&run), want);
    let status = env.status();
    let second = current_id(&status).expect("published");
    assert_ne!(second, first);
    assert_eq!(counts_from_status_run(last_run(&status)), want);
    assert!(
        data_rows(&env.snapshot_file(second, "relationships.csv"))
            .contains(&"000132,G002,parent".to_owned())
    );
    // Delivered everywhere, relationships.csv still left out where asked.
    let snapshot = env.snapshot_files(second);
    assert_eq!(folder_entries(&env.dest(DEST_PLAIN)), snapshot);
    let mut without = snapshot.clone();
    without.remove("relationships.csv");
    assert_eq!(folder_entries(&env.dest(DEST_OMIT)), without);
}
