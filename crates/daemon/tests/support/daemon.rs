//! Harness of the daemon end-to-end tests (`tests/daemon_*.rs`): the demo SIS and a config with a
//! fast schedule and local destinations in a [`World`], the real `sds-sync run` as a child process
//! (JSON logs captured to a file, killed by a guard if a test fails), signals, a writer that holds
//! the SIS locked to make a run slow, and direct reads of the state DB.
//!
//! The running service holds an exclusive lock on its state directory, so `sds-sync status` only
//! works while it is stopped (docs/operations.md); while it runs, the tests read `state.sqlite`
//! directly (WAL mode: reading never blocks the service).

use super::{Run, block_on, json_lines, sds_command, sqlite_options};
// The shared helpers the tests call; each test binary uses a different subset.
#[allow(unused_imports)]
pub use super::{World, exec_sqlite, folder_files, message_of, names_in, query_rows};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Every two seconds (6 fields, seconds first).
pub const EVERY_2S: &str = "*/2 * * * * *";
/// Midnight on 1 January: never during a test.
pub const FAR_AWAY: &str = "0 0 1 1 *";
/// `[daemon] shutdown_grace_secs` of the test configs unless a test sets another.
pub const GRACE: Duration = Duration::from_secs(5);
/// How long a test waits for something the daemon should do within a few ticks.
pub const WAIT: Duration = Duration::from_secs(20);
/// Polling interval of every wait.
const POLL: Duration = Duration::from_millis(50);

/// Log messages the tests look for (`message` of the JSON log lines).
pub mod msg {
    pub const STARTED: &str = "sds-sync started";
    pub const RUN_STARTED: &str = "run started";
    pub const RUN_FINISHED: &str = "run finished";
    pub const PUBLISHED: &str = "snapshot published";
    pub const UNCHANGED: &str = "data unchanged since the current snapshot; nothing to publish";
    pub const DELIVERED: &str = "delivered";
    pub const WILL_RETRY: &str = "delivery failed; will retry";
    pub const RELOAD_FAILED: &str = "cannot reload the configuration; keeping the old one";
    pub const RELOADED: &str = "configuration reloaded";
    pub const UPDATED: &str = "schedule and destinations updated";
    pub const SKIPPED: &str = "scheduled ticks skipped because the previous run was still going";
    pub const SHUTTING_DOWN: &str = "shutting down";
    pub const STOPPED: &str = "sds-sync stopped";
    pub const RUN_ABANDONED: &str =
        "run abandoned at shutdown; the next start completes or removes what it left";
}

/// Name → modification time of every entry of a folder (missing folder: empty).
pub fn folder_mtimes(dir: &Path) -> BTreeMap<String, SystemTime> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.expect("folder entry");
            let mtime = e.metadata().and_then(|m| m.modified()).expect("mtime");
            (e.file_name().to_string_lossy().into_owned(), mtime)
        })
        .collect()
}

/// What the generated config contains besides the fixed parts.
#[derive(Debug, Clone)]
pub struct Setup {
    pub cron: String,
    pub run_at_start: bool,
    /// Names of local destinations; each goes to `<root>/out/<name>` and carries License.csv.
    pub destinations: Vec<String>,
    /// `[daemon] shutdown_grace_secs`.
    pub grace_secs: u64,
    /// Appended verbatim at the top level of the TOML (before the destinations).
    pub extra: String,
}

impl Setup {
    /// Every two seconds, a run at start-up, the given local destinations.
    pub fn ticking(destinations: &[&str]) -> Setup {
        Setup {
            cron: EVERY_2S.into(),
            run_at_start: true,
            destinations: destinations.iter().map(|d| d.to_string()).collect(),
            grace_secs: GRACE.as_secs(),
            extra: String::new(),
        }
    }
}

/// One outbox row of the state DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub destination: String,
    pub snapshot_id: i64,
    pub status: String,
    pub attempts: i64,
}

/// One test's world: SIS file, config, state directory and destinations in one temp folder.
pub struct Env {
    world: World,
    starts: std::cell::Cell<u32>,
}

impl std::ops::Deref for Env {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl Env {
    /// The demo SIS and a config written from `setup`.
    pub fn new(setup: &Setup) -> Env {
        let env = Env {
            world: World::new(),
            starts: std::cell::Cell::new(0),
        };
        env.write_config(setup);
        env
    }

    /// The config text for `setup`: v1 with License.csv, JSON logs, retries after 1 s then 2 s.
    pub fn config_toml(&self, setup: &Setup) -> String {
        let mut s = format!(
            r#"[source]
url = "sqlite://{sis}"

[export]
format = "v1"
username = "email"
include_passwords = true
license_file = true
account_sku_id = "demo:STANDARDWOFFPACK_STUDENT"

[state]
dir = "{state}"

[log]
format = "json"
level = "info"

[schedule]
cron = "{cron}"
timezone = "UTC"
run_at_start = {run_at_start}

[retry]
initial_backoff_secs = 1
max_backoff_secs = 2

[daemon]
shutdown_grace_secs = {grace}

{extra}
"#,
            sis = self.sis.display(),
            state = self.state.display(),
            cron = setup.cron,
            run_at_start = setup.run_at_start,
            grace = setup.grace_secs,
            extra = setup.extra,
        );
        for name in &setup.destinations {
            s.push_str(&format!(
                "\n[[destination]]\nname = \"{name}\"\nkind = \"local\"\npath = \"{}\"\ninclude_license_file = true\n",
                self.dest(name).display()
            ));
        }
        s
    }

    pub fn write_config(&self, setup: &Setup) {
        self.write_config_text(&self.config_toml(setup));
    }

    pub fn write_config_text(&self, text: &str) {
        fs::write(&self.config, text).expect("write config");
    }

    /// Makes destination `name` fail: a regular file where its folder should be, so creating
    /// the folder fails (a retryable error; permissions cannot do it, the tests run as root).
    pub fn block(&self, name: &str) {
        let path = self.dest(name);
        fs::create_dir_all(path.parent().expect("parent")).expect("create out/");
        fs::write(&path, b"not a folder\n").expect("write the blocking file");
    }

    /// Removes the file [`Env::block`] put in place.
    pub fn unblock(&self, name: &str) {
        fs::remove_file(self.dest(name)).expect("remove the blocking file");
    }

    /// A command for the binary with this env's config and an environment cleared of anything
    /// that could change its behaviour (`SDS_SYNC*`, `RUST_LOG`, `NOTIFY_SOCKET`, `WATCHDOG_*`).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = sds_command(|k| {
            k.starts_with("SDS_SYNC")
                || k == "RUST_LOG"
                || k == "NOTIFY_SOCKET"
                || k.starts_with("WATCHDOG_")
        });
        cmd.arg("--config").arg(&self.config).args(args);
        cmd
    }

    /// Starts `sds-sync run`; its stderr goes to `<root>/daemon-<n>.log`. Returns once the
    /// service logged that it started.
    #[track_caller]
    pub fn start(&self) -> Daemon {
        self.start_with(|_| ())
    }

    /// As [`Env::start`], with the command adjusted first (e.g. resource limits).
    #[track_caller]
    pub fn start_with(&self, adjust: impl FnOnce(&mut Command)) -> Daemon {
        let n = self.starts.get() + 1;
        self.starts.set(n);
        let log = self.root.join(format!("daemon-{n}.log"));
        let stderr = fs::File::create(&log).expect("create the log file");
        let mut cmd = self.command(&["run"]);
        adjust(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start sds-sync run");
        let mut daemon = Daemon {
            child,
            log,
            exit: None,
        };
        daemon.wait_log(msg::STARTED, |_| true);
        daemon
    }

    /// `status --json`, parsed (asserts exit 0). Only while no daemon runs (state dir lock).
    #[track_caller]
    pub fn status(&self) -> Value {
        let args = ["status", "--json", "--runs", "100"];
        let out = self.command(&args).output().expect("run sds-sync status");
        Run::new(&args, out).json()
    }

    /// Ids of committed snapshots (any status but `reserved`), ascending.
    pub fn snapshot_ids(&self) -> Vec<i64> {
        query_rows(
            &self.state_db(),
            "SELECT id FROM snapshots WHERE status <> 'reserved' ORDER BY id",
        )
        .into_iter()
        .map(|r| r[0].as_i64().expect("id"))
        .collect()
    }

    /// The current snapshot: the newest published or approved one.
    pub fn current_id(&self) -> Option<i64> {
        query_rows(
            &self.state_db(),
            "SELECT id FROM snapshots WHERE status IN ('published', 'approved')
             ORDER BY id DESC LIMIT 1",
        )
        .first()
        .map(|r| r[0].as_i64().expect("id"))
    }

    /// Every outbox row, oldest first.
    pub fn outbox(&self) -> Vec<OutboxRow> {
        query_rows(
            &self.state_db(),
            "SELECT destination, snapshot_id, status, attempts FROM outbox ORDER BY id",
        )
        .into_iter()
        .map(|r| OutboxRow {
            destination: r[0].as_str().expect("destination").to_string(),
            snapshot_id: r[1].as_i64().expect("snapshot_id"),
            status: r[2].as_str().expect("status").to_string(),
            attempts: r[3].as_i64().expect("attempts"),
        })
        .collect()
    }

    /// (id, outcome, started_at, finished_at) of every run, oldest first.
    pub fn runs(&self) -> Vec<(i64, String, String, Option<String>)> {
        query_rows(
            &self.state_db(),
            "SELECT id, outcome, started_at, finished_at FROM runs ORDER BY id",
        )
        .into_iter()
        .map(|r| {
            (
                r[0].as_i64().expect("id"),
                r[1].as_str().expect("outcome").to_string(),
                r[2].as_str().expect("started_at").to_string(),
                r[3].as_str().map(str::to_string),
            )
        })
        .collect()
    }

    /// The files of snapshot `id` in the state directory.
    #[track_caller]
    pub fn snapshot_files(&self, id: i64) -> BTreeMap<String, Vec<u8>> {
        self.snapshot_entries(id, folder_files)
    }

    /// Whether destination `name` holds exactly the files of snapshot `id` and nothing else.
    pub fn dest_holds(&self, name: &str, id: i64) -> bool {
        folder_files(&self.dest(name)) == self.snapshot_files(id)
    }

    #[track_caller]
    pub fn assert_dest_holds(&self, name: &str, id: i64) {
        let got = folder_files(&self.dest(name));
        let want = self.snapshot_files(id);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "destination {name}: file names differ from snapshot {id}"
        );
        for (file, bytes) in &want {
            assert!(
                &got[file] == bytes,
                "destination {name}: {file} is not the file of snapshot {id}"
            );
        }
    }

    /// Every leftover of an interrupted write: temporary files (`sds_deliver::staged::is_ours`) in
    /// any destination folder and any entry of `state/staging`.
    pub fn temporary_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dest in names_in(&self.root.join("out")) {
            let dir = self.root.join("out").join(dest);
            for name in names_in(&dir) {
                if sds_deliver::staged::is_ours(&name) {
                    out.push(dir.join(name));
                }
            }
        }
        for name in names_in(&self.state.join("staging")) {
            out.push(self.state.join("staging").join(name));
        }
        out
    }

    /// Takes an exclusive lock on the SIS (after running `sql` in the same transaction, which
    /// commits on release). Until then every read of the daemon waits in SQLite's busy handler
    /// (5 s by default), so a run that starts now lasts as long as the test wants.
    pub fn lock_sis(&self, sql: &str) -> SisLock {
        let path = self.sis.clone();
        let sql = sql.to_owned();
        let (locked_tx, locked_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            block_on(async move {
                let mut conn = sqlx::SqliteConnection::connect_with(&sqlite_options(&path, false))
                    .await
                    .expect("open the SIS");
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .expect("lock the SIS");
                if !sql.is_empty() {
                    sqlx::raw_sql(AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await
                        .expect("edit the locked SIS");
                }
                locked_tx.send(()).expect("report the lock");
                // Released explicitly, or when the SisLock is dropped (sender gone).
                let _ = release_rx.recv();
                sqlx::raw_sql("COMMIT")
                    .execute(&mut conn)
                    .await
                    .expect("unlock the SIS");
                conn.close().await.expect("close the SIS");
            })
        });
        locked_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the SIS lock was not taken");
        SisLock {
            release: Some(release_tx),
            handle: Some(handle),
        }
    }
}

/// An exclusive lock on the SIS held by a helper thread; released on [`SisLock::release`] or drop.
pub struct SisLock {
    release: Option<mpsc::Sender<()>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl SisLock {
    /// Commits and unlocks; returns when the lock is gone.
    pub fn release(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take()
            && h.join().is_err()
            && !thread::panicking()
        {
            panic!("the SIS lock thread failed");
        }
    }
}

impl Drop for SisLock {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A running `sds-sync run`. Dropped while still running (a failed test), it is killed and its
/// log tail printed.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`, ...) with kill(1).
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed: {status:?}");
    }

    /// SIGKILL, and reap the process.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.exit = Some(self.child.wait().expect("reap the daemon"));
    }

    /// The exit status, waiting at most `timeout`; `None` if still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL / 2);
        }
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// The whole log as text.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines so far (a line being written is skipped until complete).
    pub fn logs(&self) -> Vec<Value> {
        json_lines(&self.log_text())
    }

    /// Log lines whose message is exactly `message`.
    pub fn logs_with(&self, message: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|l| message_of(l) == message)
            .collect()
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        lines[from..].join("\n")
    }

    /// Polls `f` until it returns `Some`, for at most [`WAIT`]. Panics (with the log tail) on
    /// timeout or if the daemon exits meanwhile.
    #[track_caller]
    pub fn wait_for<T>(&mut self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.wait_for_within(WAIT, what, f)
    }

    #[track_caller]
    pub fn wait_for_within<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if let Some(status) = self.try_exit() {
                panic!(
                    "sds-sync run exited ({status:?}) while waiting for {what}\n--- log tail\n{}",
                    self.tail()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- log tail\n{}",
                    self.tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits for the first log line with `message` that satisfies `pred`.
    #[track_caller]
    pub fn wait_log(&mut self, message: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let log = self.log.clone();
        self.wait_for(&format!("log line {message:?}"), || {
            read_logs(&log)
                .into_iter()
                .find(|l| message_of(l) == message && pred(l))
        })
    }

    /// Waits until at least `n` log lines have `message`; returns them all.
    #[track_caller]
    pub fn wait_log_count(&mut self, message: &str, n: usize) -> Vec<Value> {
        self.wait_log_count_where(message, n, |_| true)
    }

    /// Waits until at least `n` log lines have `message` and satisfy `pred`; returns them all.
    #[track_caller]
    pub fn wait_log_count_where(
        &mut self,
        message: &str,
        n: usize,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let log = self.log.clone();
        self.wait_for(&format!("{n} log line(s) {message:?}"), || {
            let found: Vec<Value> = read_logs(&log)
                .into_iter()
                .filter(|l| message_of(l) == message && pred(l))
                .collect();
            (found.len() >= n).then_some(found)
        })
    }
}

fn read_logs(path: &Path) -> Vec<Value> {
    json_lines(&fs::read_to_string(path).unwrap_or_default())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- sds-sync run log {} (tail)\n{}",
                self.log.display(),
                self.tail()
            );
        }
    }
}

/// The `run_id` of the span a log line was written in.
pub fn run_id_of(line: &Value) -> Option<i64> {
    line.get("span")
        .and_then(|s| s.get("run_id"))
        .and_then(Value::as_i64)
}

/// An integer field of a JSON log line.
#[track_caller]
pub fn int(line: &Value, field: &str) -> i64 {
    line.get(field)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("log line without integer {field}: {line}"))
}

/// A text field of a JSON log line.
#[track_caller]
pub fn text<'a>(line: &'a Value, field: &str) -> &'a str {
    line.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("log line without text {field}: {line}"))
}
