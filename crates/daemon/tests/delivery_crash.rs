//! A delivery killed by kill -9 still counts as an attempt: `once` is killed while it delivers to
//! an FTP server that accepts the connection and never answers (a hostile server on 127.0.0.1,
//! bounded in connections and time), twice; with `[retry] max_attempts = 2` the third `once`
//! gives the delivery up instead of trying for ever, and still delivers to the other
//! destinations.

mod support;

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use support::snapshots::*;

/// Accepts up to `max` connections on 127.0.0.1 and holds each open without a byte (an FTP
/// client waits for the greeting), reporting every accept; stops by itself after `life`.
fn silent_server(max: usize, life: Duration) -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let end = Instant::now() + life;
        let mut held = Vec::new();
        while Instant::now() < end && held.len() < max {
            match listener.accept() {
                Ok((conn, _)) => {
                    held.push(conn);
                    let _ = tx.send(());
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
        while Instant::now() < end {
            thread::sleep(Duration::from_millis(50));
        }
        drop(held);
    });
    (port, rx)
}

fn env_with_hanging_ftp(port: u16) -> Env {
    // The FTP destination comes first, so `once` tries it before the local ones.
    Env::with_extra(
        "v1",
        &format!(
            r#"[retry]
max_attempts = 2
initial_backoff_secs = 1

[[destination]]
name = "hang"
kind = "ftp"
host = "127.0.0.1"
port = {port}
username = "u"
password = "p"
tls = "none"
connect_timeout_secs = 30
io_timeout_secs = 120
"#
        ),
    )
}

/// `once`, killed with SIGKILL as soon as the server has its connection.
fn once_killed_mid_delivery(env: &Env, accepted: &mpsc::Receiver<()>) {
    let mut child = support::sds_command(|k| k.starts_with("SDS_SYNC") || k == "RUST_LOG")
        .arg("--config")
        .arg(&env.config)
        .arg("once")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sds-sync once");
    if accepted.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("sds-sync once never connected to the FTP server");
    }
    // The attempt is under way (the client waits for the greeting): kill -9.
    thread::sleep(Duration::from_millis(200));
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "killed by a signal");
}

/// (status, attempts, last_error) of the destination's newest outbox row.
fn job(env: &Env, dest: &str) -> (String, i64, String) {
    let rows = support::query_rows(
        &env.state_db(),
        &format!(
            "SELECT status, attempts, COALESCE(last_error, '') FROM outbox
             WHERE destination = '{dest}' ORDER BY id DESC LIMIT 1"
        ),
    );
    let r = rows.first().expect("an outbox row");
    (
        r[0].as_str().expect("status").to_owned(),
        r[1].as_i64().expect("attempts"),
        r[2].as_str().expect("last_error").to_owned(),
    )
}

#[test]
fn a_delivery_killed_by_kill_9_counts_as_an_attempt() {
    let (port, accepted) = silent_server(3, Duration::from_secs(180));
    let env = env_with_hanging_ftp(port);

    once_killed_mid_delivery(&env, &accepted);
    let (status, attempts, error) = job(&env, "hang");
    assert_eq!((status.as_str(), attempts), ("pending", 1), "{error}");
    assert!(
        error.starts_with("attempt 1 started at ") && error.contains("did not finish"),
        "{error}"
    );

    once_killed_mid_delivery(&env, &accepted);
    let (status, attempts, error) = job(&env, "hang");
    assert_eq!((status.as_str(), attempts), ("pending", 2), "{error}");

    // Out of attempts: given up without a third connection; the others are delivered.
    let run = env.once();
    run.expect_code(1);
    let (status, attempts, error) = job(&env, "hang");
    assert_eq!((status.as_str(), attempts), ("failed", 2), "{error}");
    assert!(
        error.starts_with(
            "gave up after 2 attempts ([retry] max_attempts = 2); last error: attempt 2 started at "
        ),
        "{error}"
    );
    assert!(
        accepted.recv_timeout(Duration::from_millis(500)).is_err(),
        "a third attempt was made"
    );
    let current = current_id(&env.status()).expect("current");
    env.assert_delivered(current);
}
