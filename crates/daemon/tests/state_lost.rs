//! End-to-end: a state directory whose `state.sqlite` is emptied (`: > state.sqlite`) or removed
//! while `snapshots/` holds snapshot folders is refused by every verb, which deletes and creates
//! nothing; `sds-sync reset-state` archives the old state (nothing deleted) and makes the next run
//! a guarded first run, so a SIS that suddenly returns no students is held, not delivered.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::snapshots::*;

/// A state directory with history: two published snapshots, both delivered.
fn env_with_history() -> (Env, i64) {
    let env = Env::new("v1");
    env.publish_first();
    env.sql("UPDATE students SET last_name = 'Before' WHERE student_number = '000123';");
    env.once().expect_code(0);
    let current = current_id(&env.status()).expect("current");
    env.assert_delivered(current);
    (env, current)
}

/// The rows `reset-state` printed for `file` in its baseline table.
fn baseline_rows(stdout: &str, file: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        match t.as_slice() {
            [name, n, "rows"] if *name == file => n.parse().ok(),
            _ => None,
        }
    })
}

/// Data rows of `file` in snapshot `id`.
fn snapshot_rows(env: &Env, id: i64, file: &str) -> u64 {
    data_rows(&env.snapshot_file(id, file)).len() as u64
}

/// Every entry under a folder (recursively) with its bytes (none for a folder).
type Tree = Vec<(PathBuf, Vec<u8>)>;

/// The [`Tree`] of `dir`, so that any creation, removal or rewrite shows.
fn tree(dir: &Path) -> Tree {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(entries) = fs::read_dir(&p) else {
            continue;
        };
        for e in entries {
            let e = e.expect("entry");
            let path = e.path();
            if e.file_type().expect("type").is_dir() {
                out.push((path.clone(), Vec::new()));
                todo.push(path);
            } else {
                out.push((path.clone(), fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// `sds-sync run`, which must exit on its own within a minute (it is expected to refuse).
fn run_verb(env: &Env) -> Run {
    let mut child = support::sds_command(|k| k.starts_with("SDS_SYNC") || k == "RUST_LOG")
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sds-sync run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sds-sync run did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::new(&["run"], child.wait_with_output().expect("output"))
}

/// Every verb refuses with exit 1 and one line naming the problem and both ways out, and the
/// state directory and the destinations stay exactly as they were.
fn every_verb_refuses(env: &Env, current: i64, problem: &str) {
    let state_before = tree(&env.state);
    let dests_before = env.destinations_state();
    let mut runs: Vec<Run> = [
        vec!["status"],
        vec!["status", "--json"],
        vec!["once"],
        vec!["once", "--dry-run"],
        vec!["approve", &current.to_string()],
        vec!["check", "--offline"],
        vec!["check"],
    ]
    .iter()
    .map(|args| env.sds(args, &[]))
    .collect();
    runs.push(run_verb(env));
    for run in &runs {
        run.expect_code(1);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("reset-state"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "sds-sync {}: one line with the way out, once:\n{}",
            run.args,
            run.stderr
        );
        let line = lines[0];
        for part in [
            "sds-sync: ",
            problem,
            "holds snapshot folder(s)",
            "Restore",
            "from a backup",
            "`sds-sync reset-state`",
        ] {
            assert!(
                line.contains(part),
                "sds-sync {}: {part:?} in {line}",
                run.args
            );
        }
        assert_eq!(
            tree(&env.state),
            state_before,
            "sds-sync {} changed the state directory",
            run.args
        );
    }
    assert_eq!(
        env.destinations_state(),
        dests_before,
        "destinations changed"
    );
}

#[test]
fn an_emptied_state_db_is_refused_by_every_verb_and_nothing_is_deleted() {
    let (env, current) = env_with_history();
    fs::File::create(env.state_db()).expect("truncate state.sqlite");
    every_verb_refuses(&env, current, "state.sqlite is empty (0 bytes)");
    assert_eq!(fs::metadata(env.state_db()).expect("db").len(), 0);
}

#[test]
fn a_removed_state_db_is_refused_by_every_verb_and_nothing_is_created() {
    let (env, current) = env_with_history();
    fs::remove_file(env.state_db()).expect("rm state.sqlite");
    every_verb_refuses(&env, current, "state.sqlite is missing");
    assert!(!env.state_db().exists(), "a verb created a new state DB");
}

#[test]
fn a_state_db_that_does_not_know_the_folders_is_refused() {
    // An older backup: the DB from before the second snapshot, next to both folders.
    let env = Env::new("v1");
    let first = env.publish_first();
    let backup = env.root.join("state-backup.sqlite");
    fs::copy(env.state_db(), &backup).expect("back up the DB");
    env.sql("UPDATE students SET last_name = 'Later' WHERE student_number = '000123';");
    env.once().expect_code(0);
    let second = current_id(&env.status()).expect("current");
    assert!(second > first);
    fs::copy(&backup, env.state_db()).expect("restore the old backup");
    let before = tree(&env.state);
    for args in [vec!["once"], vec!["status"]] {
        let run = env.sds(&args, &[]);
        run.expect_code(1);
        assert!(
            run.stderr.contains(&format!(
                "does not know 1 of them (restored from an older backup?), but {} holds snapshot folder(s) {second}",
                env.snapshots_dir().display()
            )),
            "{}",
            run.stderr
        );
    }
    assert_eq!(tree(&env.state), before);
}

/// The archive keeps the old DB and every snapshot folder, byte for byte.
fn assert_archived(env: &Env, archive: &Path, folders: &[(String, Tree)]) {
    for (id, files) in folders {
        let moved = tree(&archive.join("snapshots").join(id));
        let rel = |t: &[(PathBuf, Vec<u8>)], base: &Path| -> Tree {
            t.iter()
                .map(|(p, b)| {
                    (
                        p.strip_prefix(base).expect("prefix").to_path_buf(),
                        b.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            rel(&moved, &archive.join("snapshots").join(id)),
            rel(files, &env.snapshots_dir().join(id)),
            "snapshot folder {id} in the archive"
        );
    }
}

/// The archive folder named on `reset-state`'s first line.
fn archive_of(run: &Run) -> PathBuf {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("archived "))
        .unwrap_or_else(|| panic!("no archive line:\n{}", run.stdout));
    PathBuf::from(line.rsplit(" to ").next().expect("path"))
}

#[test]
fn after_reset_state_a_sis_with_no_students_is_held_not_delivered() {
    let (env, current) = env_with_history();
    let folders: Vec<(String, Tree)> = env
        .snapshot_folders()
        .into_iter()
        .map(|id| {
            let t = tree(&env.snapshots_dir().join(&id));
            (id, t)
        })
        .collect();
    assert_eq!(folders.len(), 2);
    let students = snapshot_rows(&env, current, "Student.csv");
    assert!(students > 0);
    fs::remove_file(env.state_db()).expect("rm state.sqlite");
    let dests_before = env.destinations_state();

    let run = env.sds(&["reset-state"], &[]);
    run.expect_code(0);
    let archive = archive_of(&run);
    assert!(
        archive.starts_with(env.state.join("archive")),
        "{archive:?}"
    );
    assert_archived(&env, &archive, &folders);
    assert_eq!(env.snapshot_folders(), Vec::<String>::new());
    assert_eq!(
        baseline_rows(&run.stdout, "Student.csv"),
        Some(students),
        "the baseline is shown:\n{}",
        run.stdout
    );
    assert!(env.state.join("baseline.json").is_file());

    // The SIS glitch: every student gone.
    env.sql("CREATE TABLE students_backup AS SELECT * FROM students; DELETE FROM students;");
    let held = env.once();
    held.expect_code(EXIT_HELD);
    let status = env.status();
    assert_eq!(current_id(&status), None, "nothing is current");
    let ids = held_ids(&status);
    assert_eq!(ids.len(), 1, "{status}");
    let trips = status["held"][0]["guard"].to_string();
    assert!(
        trips.contains("Student.csv") && trips.contains("emptied"),
        "{trips}"
    );
    assert_eq!(env.destinations_state(), dests_before, "nothing delivered");
    assert_eq!(pending(&status), Vec::<(String, i64)>::new());

    // Approving it is the operator's call; here the SIS comes back instead and publishes.
    env.sql("INSERT INTO students SELECT * FROM students_backup; DROP TABLE students_backup;");
    env.once().expect_code(0);
    let status = env.status();
    let new = current_id(&status).expect("a current snapshot");
    assert!(new > current, "ids are never reused: {new} after {current}");
    env.assert_delivered(new);
    assert!(
        !env.state.join("baseline.json").exists(),
        "the baseline is retired once a snapshot is current"
    );
    // The archive is still there, untouched.
    assert_archived(&env, &archive, &folders);
}

#[test]
fn after_reset_state_a_held_first_snapshot_can_be_approved() {
    let (env, current) = env_with_history();
    let students = snapshot_rows(&env, current, "Student.csv");
    fs::File::create(env.state_db()).expect("truncate state.sqlite");
    env.sds(&["reset-state"], &[]).expect_code(0);
    // A second reset before anything was published keeps the counts of the first.
    let again = env.sds(&["reset-state"], &[]);
    again.expect_code(0);
    assert_eq!(
        baseline_rows(&again.stdout, "Student.csv"),
        Some(students),
        "{}",
        again.stdout
    );

    env.sql("DELETE FROM students WHERE student_number LIKE '0045%';");
    let run = env.once();
    run.expect_code(EXIT_HELD);
    let id = held_ids(&env.status())[0];
    env.approve(&id.to_string()).expect_code(0);
    env.assert_delivered(id);
    assert!(!env.state.join("baseline.json").exists());
    // From here on the ordinary guard compares with the approved snapshot.
    env.once().expect_code(0);
    assert_eq!(last_run(&env.status())["outcome"], "unchanged");
}

#[test]
fn reset_state_refuses_while_the_state_directory_is_locked() {
    let (env, _) = env_with_history();
    // Hold the lock as a running daemon would.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(env.state.join("lock"))
        .expect("lock file");
    lock.try_lock().expect("take the lock");
    let before = tree(&env.state);
    let run = env.sds(&["reset-state"], &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("is locked by another sds-sync process"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&env.state), before);
}
