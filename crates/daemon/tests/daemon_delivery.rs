//! End-to-end tests of the delivery outbox of `sds-sync run` with the real binary: a failing
//! destination is retried with growing attempt numbers and delivered once it works again, while
//! a healthy one got the snapshot at once; a delivery still pending when the service is killed
//! with SIGKILL is delivered after the restart, without a new export.
//!
//! A destination fails because a regular file sits where its folder should be (the tests run as
//! root, so permissions cannot make a folder unwritable); removing the file lets it succeed.

mod support;

use support::daemon::*;

/// "down" fails and is retried (attempt 1, 2, 3, ... in the log and the outbox) while "up" holds
/// the snapshot from the start; once "down" works again it gets the same snapshot.
#[test]
fn failing_destination_is_retried_then_delivered_and_does_not_delay_the_other() {
    let env = Env::new(&Setup::ticking(&["up", "down"]));
    env.block("down");
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");

    let first_failure = d.wait_log(msg::WILL_RETRY, |l| text(l, "destination") == "down");
    assert_eq!(int(&first_failure, "attempt"), 1, "{first_failure}");
    assert_eq!(text(&first_failure, "level"), "WARN");
    assert_eq!(text(&first_failure, "error_kind"), "retryable");
    assert_eq!(int(&first_failure, "snapshot_id"), s1);
    let up = d.wait_log(msg::DELIVERED, |l| text(l, "destination") == "up");
    assert_eq!(int(&up, "attempt"), 1);
    assert_eq!(int(&up, "snapshot_id"), s1);
    env.assert_dest_holds("up", s1);

    // Backoff of 1 s then 2 s (with jitter): attempt 3 comes within a few seconds.
    let failures: Vec<_> = d
        .wait_log_count(msg::WILL_RETRY, 3)
        .into_iter()
        .filter(|l| text(l, "destination") == "down")
        .collect();
    let attempts: Vec<i64> = failures.iter().map(|l| int(l, "attempt")).collect();
    assert_eq!(attempts, (1..=attempts.len() as i64).collect::<Vec<_>>());
    assert!(attempts.len() >= 3, "{attempts:?}");
    // "up" was delivered once, at once; it never waited for "down".
    let up_deliveries: Vec<_> = d
        .logs_with(msg::DELIVERED)
        .into_iter()
        .filter(|l| text(l, "destination") == "up")
        .collect();
    assert_eq!(up_deliveries.len(), 1, "{}", d.tail());
    assert!(
        text(&up_deliveries[0], "timestamp") < text(&failures[1], "timestamp"),
        "\"up\" was delivered only after \"down\" retried\n{}",
        d.tail()
    );
    let pending: Vec<OutboxRow> = env
        .outbox()
        .into_iter()
        .filter(|r| r.status == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].destination, "down");
    assert_eq!(pending[0].snapshot_id, s1);
    assert!(pending[0].attempts >= 3, "{pending:?}");

    // The destination works again.
    env.unblock("down");
    let delivered = d.wait_log(msg::DELIVERED, |l| text(l, "destination") == "down");
    assert_eq!(int(&delivered, "snapshot_id"), s1);
    let last_failure = d
        .logs_with(msg::WILL_RETRY)
        .into_iter()
        .filter(|l| text(l, "destination") == "down")
        .map(|l| int(&l, "attempt"))
        .max()
        .expect("failures");
    assert_eq!(int(&delivered, "attempt"), last_failure + 1, "{delivered}");
    env.assert_dest_holds("down", s1);
    env.assert_dest_holds("up", s1);
    assert!(
        env.outbox().iter().all(|r| r.status == "done"),
        "{:?}",
        env.outbox()
    );

    d.signal("TERM");
    let status = d.wait_exit(GRACE).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.tail());
}

/// SIGKILL after the snapshot is published but before it could be delivered; after the
/// restart (no run at start, next tick far away) the pending delivery is made from the outbox.
#[test]
fn delivery_pending_at_sigkill_is_made_after_restart() {
    let env = Env::new(&Setup::ticking(&["dest"]));
    env.block("dest");
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::WILL_RETRY, |l| text(l, "destination") == "dest");
    d.wait_for("a pending delivery in the outbox", || {
        env.outbox()
            .iter()
            .any(|r| r.status == "pending" && r.attempts >= 1)
            .then_some(())
    });
    d.kill9();
    assert!(d.logs_with(msg::STOPPED).is_empty());

    let status = env.status();
    assert_eq!(status["current"]["id"].as_i64(), Some(s1), "{status:#}");
    let pending = status["pending_deliveries"].as_array().expect("pending");
    assert_eq!(pending.len(), 1, "{status:#}");
    assert_eq!(pending[0]["destination"], "dest");
    assert_eq!(pending[0]["snapshot_id"].as_i64(), Some(s1));
    assert_eq!(pending[0]["status"], "pending");

    env.unblock("dest");
    env.write_config(&Setup {
        cron: FAR_AWAY.into(),
        run_at_start: false,
        ..Setup::ticking(&["dest"])
    });
    let mut d = env.start();
    let delivered = d.wait_log(msg::DELIVERED, |l| text(l, "destination") == "dest");
    assert_eq!(int(&delivered, "snapshot_id"), s1);
    env.assert_dest_holds("dest", s1);
    // From the outbox, not from a new export.
    assert!(d.logs_with(msg::RUN_STARTED).is_empty(), "{}", d.tail());
    assert_eq!(env.snapshot_ids(), vec![s1]);

    d.signal("TERM");
    let status = d.wait_exit(GRACE).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.tail());
    let status = env.status();
    assert_eq!(status["pending_deliveries"], serde_json::json!([]));
    assert_eq!(env.temporary_files(), Vec::<std::path::PathBuf>::new());
}

/// A destination removed from the config (SIGHUP) while its delivery is pending, and added back
/// after newer data was published, must never receive the older snapshot: that would hand SDS a
/// full set older than the current one (undoing the newer changes there until the next one).
#[test]
fn destination_removed_and_added_back_never_receives_an_older_snapshot() {
    let env = Env::new(&Setup::ticking(&["keep", "flaky"]));
    env.block("flaky");
    let mut d = env.start();
    let s1 = int(&d.wait_log(msg::PUBLISHED, |_| true), "snapshot_id");
    d.wait_log(msg::WILL_RETRY, |l| text(l, "destination") == "flaky");

    env.write_config(&Setup::ticking(&["keep"]));
    d.signal("HUP");
    d.wait_log(msg::RELOADED, |_| true);
    env.sql("UPDATE students SET last_name = 'Newer' WHERE student_number = '000123';");
    let s2 = int(
        &d.wait_log(msg::PUBLISHED, |l| int(l, "snapshot_id") > s1),
        "snapshot_id",
    );
    d.wait_log(msg::DELIVERED, |l| {
        text(l, "destination") == "keep" && int(l, "snapshot_id") == s2
    });

    env.unblock("flaky");
    env.write_config(&Setup::ticking(&["keep", "flaky"]));
    d.signal("HUP");
    d.wait_log_count(msg::RELOADED, 2);
    // Long enough for a job still due to be retried (backoff at most 2 s) and delivered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let stale: Vec<_> = d
            .logs_with(msg::DELIVERED)
            .into_iter()
            .filter(|l| text(l, "destination") == "flaky" && int(l, "snapshot_id") < s2)
            .collect();
        assert!(
            stale.is_empty(),
            "snapshot {s1} delivered to \"flaky\" although {s2} is current: {stale:?}\n{}",
            d.tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!env.dest_holds("flaky", s1));

    d.signal("TERM");
    let status = d.wait_exit(GRACE).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.tail());
}
