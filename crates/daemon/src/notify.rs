//! systemd notifications (sd-notify 0.5): READY=1 once started, STATUS= lines, STOPPING=1, and
//! WATCHDOG=1 pings when the unit sets `WatchdogSec=`.
//!
//! Everything here is a no-op when `NOTIFY_SOCKET` is unset (not under systemd, or a unit
//! without `Type=notify`/`NotifyAccess=`). A failed send is logged, never fatal: losing a status
//! line must not stop exports. The watchdog only proves the async runtime still schedules tasks;
//! that is the hang systemd can usefully restart us for.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Tells systemd the service is up (`READY=1`); `Type=notify` units count as started from here.
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Sets the one-line status `systemctl status` shows, e.g. the last run's outcome.
pub fn status(text: &str) {
    let line = one_line(text);
    send(&[NotifyState::Status(&line)], "STATUS=");
}

/// Tells systemd a clean shutdown has begun (`STOPPING=1`).
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// Starts pinging `WATCHDOG=1` at half the interval systemd asked for, until `cancel` fires.
/// Returns `None`, and starts nothing, when the watchdog is off (no `WATCHDOG_USEC`, or it is
/// meant for another PID) or there is no `NOTIFY_SOCKET`. Must be called inside a tokio runtime.
pub fn spawn_watchdog(cancel: CancellationToken) -> Option<JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let interval = ping_interval(sd_notify::watchdog_enabled()?);
    tracing::debug!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        // After a stall, ping once and carry on at the normal pace instead of bursting.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => send(&[NotifyState::Watchdog], "WATCHDOG=1"),
            }
        }
    }))
}

/// Half the watchdog timeout, as sd_watchdog_enabled(3) recommends, so one late ping is not yet
/// a timeout. Never zero: `tokio::time::interval` panics on a zero period, and `WATCHDOG_USEC=1`
/// would otherwise produce one.
fn ping_interval(watchdog: Duration) -> Duration {
    (watchdog / 2).max(Duration::from_millis(1))
}

/// The notify protocol is newline-separated `KEY=VALUE` lines, so a newline inside a status
/// would start a new assignment (a run error text could even say `READY=1`). Fold it to spaces.
fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn send(states: &[NotifyState<'_>], what: &str) {
    if let Err(e) = sd_notify::notify(states) {
        let socket = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
        tracing::warn!(
            notify_socket = %socket.to_string_lossy(),
            error = %e,
            "cannot send {what} to systemd"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};

    /// Set only in the child process started by `sends_ready_status_watchdog_and_stopping`.
    const CHILD_FLAG: &str = "SDS_SYNC_NOTIFY_TEST_CHILD";

    #[test]
    fn status_is_folded_to_one_line() {
        assert_eq!(
            one_line(" last run: failed\nREADY=1\r\n"),
            "last run: failed READY=1"
        );
        assert_eq!(one_line("ok"), "ok");
    }

    #[test]
    fn ping_interval_is_half_and_never_zero() {
        assert_eq!(
            ping_interval(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(
            ping_interval(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
    }

    /// The sending half, run in a child process so NOTIFY_SOCKET/WATCHDOG_USEC are set there
    /// from the start: setting environment variables inside this multi-threaded test binary
    /// would race with every other test that reads the environment. Without the flag (a normal
    /// test run) it does nothing.
    #[tokio::test]
    async fn child_sends_notifications() {
        if std::env::var_os(CHILD_FLAG).is_none() {
            return;
        }
        ready();
        status("last run: failed\nREADY=1");
        let cancel = CancellationToken::new();
        let watchdog = spawn_watchdog(cancel.clone()).expect("watchdog enabled in the child");
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        watchdog.await.expect("watchdog task ends on cancel");
        stopping();
    }

    #[test]
    fn sends_ready_status_watchdog_and_stopping() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set socket timeout");

        let exe = std::env::current_exe().expect("path of the test binary");
        let child = Command::new(exe)
            .args([
                "notify::tests::child_sends_notifications",
                "--exact",
                "--quiet",
            ])
            .env(CHILD_FLAG, "1")
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "100000") // 100 ms → a ping every 50 ms
            .env_remove("WATCHDOG_PID")
            // Captured, so the child's own test summary does not show up in this run's output.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child test");

        let mut messages = Vec::new();
        let mut buf = [0u8; 4096];
        while !messages.iter().any(|m: &String| m == "STOPPING=1\n") {
            let n = socket.recv(&mut buf).expect("a notification within 30 s");
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let out = child.wait_with_output().expect("child exits");
        assert!(
            out.status.success(),
            "child test failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        assert_eq!(messages[0], "READY=1\n", "{messages:?}");
        assert_eq!(
            messages[1], "STATUS=last run: failed READY=1\n",
            "{messages:?}"
        );
        let pings = messages.iter().filter(|m| *m == "WATCHDOG=1\n").count();
        assert!(
            pings >= 2,
            "expected several watchdog pings in 300 ms: {messages:?}"
        );
        assert_eq!(messages.last().map(String::as_str), Some("STOPPING=1\n"));
    }
}
