//! End-to-end tests of `sds-sync run` stopping on SIGTERM when the current step does not reach
//! a safe point within `[daemon] shutdown_grace_secs`: a run stuck reading the SIS is abandoned
//! and a stuck upload is abandoned, and either way the process exits 0 within the grace period
//! without leaving temporary files.
//!
//! A run is held back by an exclusive lock on the SIS; an upload to a local folder is held back
//! by turning one snapshot file into a FIFO that the test keeps open and never finishes writing
//! (what a hung network mount looks like to the copy).

mod support;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon::*;

/// A run blocked on the SIS for longer than the grace period (2 s here) is abandoned: exit 0
/// within the grace period (plus a little), nothing published by it, no staging folder left.
#[test]
fn sigterm_abandons_a_run_stuck_longer_than_the_grace_period() {
    let grace = Duration::from_secs(2);
    let env = Env::new(&Setup {
        grace_secs: grace.as_secs(),
        ..Setup::ticking(&["local"])
    });
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::DELIVERED, |l| int(l, "snapshot_id") == s1);

    let finished = d.logs_with(msg::RUN_FINISHED).len();
    let last = d.wait_log_count(msg::RUN_FINISHED, finished + 1);
    let last_run = run_id_of(last.last().expect("a run")).expect("run id");
    // A change that the stuck run would publish if it were not abandoned.
    let lock =
        env.lock_sis("UPDATE students SET last_name = 'Stuck' WHERE student_number = '000123';");
    d.wait_log(msg::RUN_STARTED, |l| run_id_of(l) > Some(last_run));

    d.signal("TERM");
    let sent = Instant::now();
    let status = d.wait_exit(grace + Duration::from_secs(3));
    let took = sent.elapsed();
    lock.release();
    let status = status.expect("no exit after SIGTERM");
    assert!(status.success(), "exit status {status:?}\n{}", d.tail());
    assert!(
        took < grace + Duration::from_millis(1500),
        "took {took:?} with a grace period of {grace:?}\n{}",
        d.tail()
    );
    assert_eq!(d.logs_with(msg::RUN_ABANDONED).len(), 1, "{}", d.tail());
    assert_eq!(env.temporary_files(), Vec::<PathBuf>::new());
    let status = env.status();
    assert_eq!(status["current"]["id"].as_i64(), Some(s1), "{status:#}");
    env.assert_dest_holds("local", s1);
}

/// An upload stuck in the middle of a file (its temporary file exists) when SIGTERM comes: the
/// service gives it the grace period, then abandons it, removes its temporary file, and exits 0
/// within the grace period; the delivery stays pending for the next start.
#[test]
fn sigterm_abandons_a_stuck_upload_within_the_grace_period_without_temporary_files() {
    // One run at start and no tick after it: only the upload touches the snapshot files.
    let env = Env::new(&Setup {
        cron: FAR_AWAY.into(),
        ..Setup::ticking(&["slow"])
    });
    env.block("slow");
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::WILL_RETRY, |l| text(l, "destination") == "slow");

    // Student.csv of the snapshot becomes a FIFO with a few bytes in it and a writer that never
    // finishes: the copy of that file blocks after creating its temporary file.
    let src = env
        .state
        .join("snapshots")
        .join(s1.to_string())
        .join("Student.csv");
    fs::remove_file(&src).expect("remove the snapshot file");
    let ok = Command::new("mkfifo")
        .arg(&src)
        .status()
        .expect("run mkfifo");
    assert!(ok.success());
    // Read-write open of a FIFO does not wait for the other end (Linux).
    let mut writer = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&src)
        .expect("open the FIFO");
    writer.write_all(b"SIS ID,").expect("write to the FIFO");

    env.unblock("slow");
    // Temporary names are random (`Student.csv.<hex>.sds-sync-tmp`).
    let dest = env.dest("slow");
    d.wait_for("the upload to be stuck in Student.csv", || {
        fs::read_dir(&dest).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with("Student.csv.") && sds_deliver::staged::is_ours(&name)).then_some(())
        })
    });

    d.signal("TERM");
    let sent = Instant::now();
    let status = d.wait_exit(GRACE + Duration::from_secs(3));
    let took = sent.elapsed();
    let leftovers = env.temporary_files();
    // Unblock whatever is still reading, so nothing hangs past the test.
    drop(writer);
    let status = status.unwrap_or_else(|| {
        let later = d.wait_exit(Duration::from_secs(5));
        panic!(
            "still running {took:?} after SIGTERM (grace {GRACE:?}), with {leftovers:?} left; \
             once the stuck read returned: exit {later:?}, temporary files {:?}\n{}",
            env.temporary_files(),
            d.tail()
        )
    });
    assert!(status.success(), "exit status {status:?}\n{}", d.tail());
    assert!(
        took < GRACE + Duration::from_millis(1500),
        "took {took:?}\n{}",
        d.tail()
    );
    assert_eq!(leftovers, Vec::<PathBuf>::new(), "temporary files left");
    let status = env.status();
    let pending = status["pending_deliveries"].as_array().expect("pending");
    assert_eq!(pending.len(), 1, "{status:#}");
    assert_eq!(pending[0]["destination"], "slow");
}
