//! End-to-end tests of `sds-sync run` with the real binary on a SQLite SIS and a schedule every
//! two seconds: changed data is published and delivered while unchanged ticks write nothing;
//! SIGTERM lets the current run finish and exits 0 within the grace period without temporary
//! files (SIGINT too); SIGHUP with a broken config keeps the old one and a valid one takes
//! effect; a tick that comes while a run is still going is skipped with a warning.
//!
//! Delivery retries and the restart after SIGKILL are in `daemon_delivery.rs`.

mod support;

use std::fs;
use std::time::{Duration, Instant};
use support::daemon::*;

/// One student's last name changes (Student.csv and License.csv change).
fn rename(last_name: &str) -> String {
    format!("UPDATE students SET last_name = '{last_name}' WHERE student_number = '000123';")
}

fn student_csv(env: &Env, dest: &str) -> String {
    fs::read_to_string(env.dest(dest).join("Student.csv")).unwrap_or_default()
}

/// Changed data produces a new snapshot in the destination within a few ticks; unchanged ticks
/// publish, enqueue and write nothing (same snapshot ids, same outbox, same files and mtimes).
#[test]
fn changed_data_is_published_and_unchanged_ticks_write_nothing() {
    let env = Env::new(&Setup::ticking(&["local"]));
    let mut d = env.start();

    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::DELIVERED, |l| int(l, "snapshot_id") == s1);
    env.assert_dest_holds("local", s1);
    assert!(!student_csv(&env, "local").contains("Newname"));

    // Unchanged ticks.
    let files = folder_files(&env.dest("local"));
    let mtimes = folder_mtimes(&env.dest("local"));
    let outbox = env.outbox();
    // Two whole runs (logged, recorded) that found the data unchanged.
    d.wait_log_count_where(msg::RUN_FINISHED, 2, |l| text(l, "outcome") == "unchanged");
    assert!(d.logs_with(msg::UNCHANGED).len() >= 2, "{}", d.tail());
    assert_eq!(
        env.snapshot_ids(),
        vec![s1],
        "no snapshot from unchanged ticks"
    );
    assert_eq!(env.outbox(), outbox, "nothing enqueued by unchanged ticks");
    assert_eq!(folder_files(&env.dest("local")), files);
    assert_eq!(
        folder_mtimes(&env.dest("local")),
        mtimes,
        "destination files rewritten by an unchanged tick"
    );

    // Changed data.
    env.sql(&rename("Newname"));
    let s2 = int(
        &d.wait_log(msg::PUBLISHED, |l| int(l, "snapshot_id") != s1),
        "snapshot_id",
    );
    assert!(s2 > s1);
    d.wait_for("Student.csv with the new name", || {
        student_csv(&env, "local").contains("Newname").then_some(())
    });
    d.wait_log(msg::DELIVERED, |l| int(l, "snapshot_id") == s2);
    env.assert_dest_holds("local", s2);
    assert_eq!(env.current_id(), Some(s2));

    // Unchanged again after the change.
    let files = folder_files(&env.dest("local"));
    let mtimes = folder_mtimes(&env.dest("local"));
    let outbox = env.outbox();
    let unchanged = |l: &serde_json::Value| text(l, "outcome") == "unchanged";
    let seen = d
        .logs_with(msg::RUN_FINISHED)
        .iter()
        .filter(|l| unchanged(l))
        .count();
    d.wait_log_count_where(msg::RUN_FINISHED, seen + 2, unchanged);
    assert_eq!(env.snapshot_ids(), vec![s1, s2]);
    assert_eq!(env.outbox(), outbox);
    assert_eq!(folder_files(&env.dest("local")), files);
    assert_eq!(folder_mtimes(&env.dest("local")), mtimes);

    d.signal("TERM");
    let status = d.wait_exit(GRACE).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.tail());

    // `status --json` (the service is stopped: it holds the state directory while it runs).
    let status = env.status();
    assert_eq!(status["current"]["id"].as_i64(), Some(s2), "{status:#}");
    assert_eq!(status["pending_deliveries"], serde_json::json!([]));
    let runs = status["recent_runs"].as_array().expect("runs");
    let published: Vec<i64> = runs
        .iter()
        .filter(|r| r["outcome"] == "published")
        .map(|r| r["snapshot_id"].as_i64().expect("snapshot id"))
        .collect();
    assert_eq!(published, vec![s2, s1], "{status:#}");
    let unchanged = runs.iter().filter(|r| r["outcome"] == "unchanged").count();
    assert!(unchanged >= 4, "{status:#}");
    assert!(
        runs.iter()
            .all(|r| r["outcome"] == "published" || r["outcome"] == "unchanged"),
        "{status:#}"
    );
}

/// SIGTERM while a run is reading the SIS (held back by a lock on the SIS): the run reaches its
/// safe point (publishes), no new run starts, the process exits 0 within the grace period, and
/// no temporary file is left, also with a destination in retry backoff. After a restart the
/// pending deliveries complete, and SIGINT stops the service the same way.
#[test]
fn sigterm_finishes_the_current_run_and_exits_0_without_temporary_files() {
    let env = Env::new(&Setup::ticking(&["local", "down"]));
    env.block("down");
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::DELIVERED, |l| text(l, "destination") == "local");
    d.wait_log(msg::WILL_RETRY, |l| text(l, "destination") == "down");

    // Lock the SIS (with a change inside) just after a run finished, so the next run blocks.
    let finished = d.logs_with(msg::RUN_FINISHED).len();
    let last = d.wait_log_count(msg::RUN_FINISHED, finished + 1);
    let last_run = run_id_of(last.last().expect("a run")).expect("run id");
    let lock = env.lock_sis(&rename("Termname"));
    let slow = d.wait_log(msg::RUN_STARTED, |l| run_id_of(l) > Some(last_run));
    let slow_run = run_id_of(&slow).expect("run id");

    d.signal("TERM");
    let sent = Instant::now();
    d.wait_log(msg::SHUTTING_DOWN, |l| text(l, "signal") == "SIGTERM");
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "exited before the run reached a safe point\n{}",
        d.tail()
    );
    lock.release();
    let status = d
        .wait_exit(GRACE + Duration::from_secs(2))
        .expect("exit after SIGTERM");
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status:?}\n{}", d.tail());
    assert!(
        took < GRACE,
        "took {took:?}, more than the grace period\n{}",
        d.tail()
    );

    let logs = d.logs();
    let published: Vec<_> = d
        .logs_with(msg::PUBLISHED)
        .into_iter()
        .filter(|l| run_id_of(l) == Some(slow_run))
        .collect();
    assert_eq!(
        published.len(),
        1,
        "the interrupted run did not publish\n{}",
        d.tail()
    );
    let s2 = int(&published[0], "snapshot_id");
    assert!(
        !logs
            .iter()
            .any(|l| message_of(l) == msg::RUN_STARTED && run_id_of(l) > Some(slow_run)),
        "a run started after SIGTERM\n{}",
        d.tail()
    );
    assert!(d.logs_with(msg::RUN_ABANDONED).is_empty(), "{}", d.tail());
    assert_eq!(d.logs_with(msg::STOPPED).len(), 1, "{}", d.tail());
    assert_eq!(env.temporary_files(), Vec::<std::path::PathBuf>::new());

    // Consistent state: the new snapshot is current, no run left "running"; "local" holds one
    // whole snapshot (s2 if its worker got to it before stopping, else s1 with s2 pending).
    let status = env.status();
    assert_eq!(status["current"]["id"].as_i64(), Some(s2), "{status:#}");
    assert!(
        env.runs().iter().all(|r| r.1 != "running"),
        "{:?}",
        env.runs()
    );
    let pending: Vec<(String, i64)> = status["pending_deliveries"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|p| {
            (
                p["destination"].as_str().expect("destination").to_string(),
                p["snapshot_id"].as_i64().expect("snapshot id"),
            )
        })
        .collect();
    assert!(pending.contains(&("down".to_string(), s2)), "{status:#}");
    if pending.contains(&("local".to_string(), s2)) {
        env.assert_dest_holds("local", s1);
    } else {
        env.assert_dest_holds("local", s2);
    }

    // Restart with the destination back: everything pending is delivered; SIGINT stops it.
    env.unblock("down");
    let mut d = env.start();
    d.wait_for("both destinations with the new snapshot", || {
        (env.dest_holds("local", s2) && env.dest_holds("down", s2)).then_some(())
    });
    d.wait_log(msg::DELIVERED, |l| text(l, "destination") == "down");
    d.signal("INT");
    let sent = Instant::now();
    let status = d.wait_exit(GRACE).expect("exit after SIGINT");
    assert!(status.success(), "exit status {status:?}\n{}", d.tail());
    assert!(sent.elapsed() < GRACE);
    d.wait_log(msg::SHUTTING_DOWN, |l| text(l, "signal") == "SIGINT");
    assert_eq!(env.temporary_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(env.status()["pending_deliveries"], serde_json::json!([]));
}

/// SIGHUP with an invalid file (bad TOML, an unknown key, a bad schedule) logs the error and
/// keeps running on the old config (a later change is still exported and delivered); a valid
/// new config with a second destination then takes effect. A TOML syntax error is logged by
/// line and column, without the offending line (it may hold a password).
#[test]
fn sighup_keeps_the_old_config_when_the_new_one_is_broken_and_applies_a_valid_one() {
    let one = Setup::ticking(&["first"]);
    let env = Env::new(&one);
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::DELIVERED, |l| int(l, "snapshot_id") == s1);

    // 1. Not TOML: an unterminated string on a password line.
    let broken = format!(
        "{}\n[source.extra]\npassword = \"hup-secret-do-not-log\n",
        env.config_toml(&one)
    );
    let line = broken.lines().count();
    env.write_config_text(&broken);
    d.signal("HUP");
    let err = d.wait_log(msg::RELOAD_FAILED, |_| true);
    assert_eq!(text(&err, "level"), "ERROR");
    assert!(
        text(&err, "error").contains(&format!("TOML syntax error at line {line}, column")),
        "{err}"
    );
    assert!(
        !d.log_text().contains("hup-secret-do-not-log"),
        "the offending line was logged: {}",
        d.tail()
    );

    // 2. An unknown key: the error names it.
    env.write_config_text(
        &env.config_toml(&one)
            .replace("[log]\n", "[log]\ncolour = \"blue\"\n"),
    );
    d.signal("HUP");
    let errs = d.wait_log_count(msg::RELOAD_FAILED, 2);
    assert!(
        text(&errs[1], "error").contains("colour"),
        "the error does not name the key: {}",
        errs[1]
    );

    // 3. A schedule that does not parse: refused by the same validation as every verb's.
    let mut bad_schedule = one.clone();
    bad_schedule.cron = "every tuesday".into();
    env.write_config(&bad_schedule);
    d.signal("HUP");
    let errs = d.wait_log_count(msg::RELOAD_FAILED, 3);
    assert!(
        text(&errs[2], "error").contains("schedule.cron"),
        "the error does not name the key: {}",
        errs[2]
    );
    assert!(d.logs_with(msg::RELOADED).is_empty(), "{}", d.tail());

    // Still running on the old config: ticks go on and a change is delivered to "first".
    env.sql(&rename("Hupname"));
    let s2 = int(
        &d.wait_log(msg::PUBLISHED, |l| int(l, "snapshot_id") != s1),
        "snapshot_id",
    );
    d.wait_log(msg::DELIVERED, |l| int(l, "snapshot_id") == s2);
    env.assert_dest_holds("first", s2);
    assert!(student_csv(&env, "first").contains("Hupname"));

    // A valid config with a second destination.
    env.write_config(&Setup::ticking(&["first", "second"]));
    d.signal("HUP");
    d.wait_log(msg::RELOADED, |_| true);
    d.wait_log(msg::UPDATED, |_| true);
    // A destination added by a reload is queued the current snapshot, then gets every later one
    // (docs/configuration.md); here: the next published snapshot reaches both.
    env.sql(&rename("Newdest"));
    let s3 = int(
        &d.wait_log(msg::PUBLISHED, |l| int(l, "snapshot_id") > s2),
        "snapshot_id",
    );
    d.wait_for("both destinations with the new snapshot", || {
        (env.dest_holds("first", s3) && env.dest_holds("second", s3)).then_some(())
    });
    assert!(student_csv(&env, "second").contains("Newdest"));

    d.signal("TERM");
    let status = d.wait_exit(GRACE).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.tail());
}

/// A run held back by a lock on the SIS for 3 s overlaps the next tick (every 2 s): that tick is
/// skipped with a warning, the run itself completes, and runs never overlap.
#[test]
fn a_tick_during_a_slow_run_is_skipped_with_a_warning() {
    let env = Env::new(&Setup::ticking(&["local"]));
    let mut d = env.start();
    d.wait_log(msg::PUBLISHED, |_| true);

    let finished = d.logs_with(msg::RUN_FINISHED).len();
    let last = d.wait_log_count(msg::RUN_FINISHED, finished + 1);
    let last_run = run_id_of(last.last().expect("a run")).expect("run id");
    let lock = env.lock_sis("");
    let slow = d.wait_log(msg::RUN_STARTED, |l| run_id_of(l) > Some(last_run));
    let slow_run = run_id_of(&slow).expect("run id");
    std::thread::sleep(Duration::from_secs(3));
    lock.release();

    let skipped = d.wait_log(msg::SKIPPED, |_| true);
    assert_eq!(text(&skipped, "level"), "WARN");
    assert!(int(&skipped, "skipped") >= 1, "{skipped}");
    let done = d.wait_log(msg::RUN_FINISHED, |l| run_id_of(l) == Some(slow_run));
    assert_eq!(text(&done, "outcome"), "unchanged", "{done}");
    assert!(int(&done, "duration_ms") >= 2900, "{done}");
    // The schedule goes on after the slow run.
    d.wait_log(msg::RUN_FINISHED, |l| run_id_of(l) > Some(slow_run));

    // Runs never overlap: in the log, each start is followed by its own finish.
    let mut open: Option<i64> = None;
    for l in d.logs() {
        match message_of(&l) {
            msg::RUN_STARTED => {
                assert_eq!(
                    open,
                    None,
                    "a run started while another was going\n{}",
                    d.tail()
                );
                open = run_id_of(&l);
            }
            msg::RUN_FINISHED => {
                assert_eq!(open, run_id_of(&l), "{}", d.tail());
                open = None;
            }
            _ => {}
        }
    }
    // And in the state DB.
    let runs = env.runs();
    for w in runs.windows(2) {
        let finished = w[0].3.as_deref().expect("finished_at of an earlier run");
        assert!(w[1].2.as_str() >= finished, "runs overlap: {w:?}");
    }

    d.signal("TERM");
    let status = d.wait_exit(GRACE).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.tail());
}
