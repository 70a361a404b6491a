//! Shared harness of the end-to-end tests of the real `sds-sync` binary. This module holds what
//! every harness needs: the reference SIS (`deploy/sis`) loaded into a SQLite file, SQL on SQLite
//! files through sqlx on throw-away current-thread runtimes, a scrubbed command for the binary,
//! its JSON log lines, and folder listings. The submodules are the harnesses of the test groups:
//!
//! - [`export`]: one `sds-sync once` per call, files read back and validated (`demo_formats`,
//!   `cross_db`);
//! - [`snapshots`]: `once`/`approve`/`status` runs on a SIS edited between them (`snapshots_*`);
//! - [`daemon`]: the long-running `sds-sync run` driven with signals (`daemon_*`).
//!
//! Everything is synchronous: the tests drive processes and poll with deadlines.

// Each test binary compiles the whole module and uses a different part of it.
#![allow(dead_code)]

pub mod daemon;
pub mod export;
pub mod snapshots;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tempfile::TempDir;

pub const SCHEMA: &str = include_str!("../../../../deploy/sis/schema-sqlite.sql");
pub const DEMO_DATA: &str = include_str!("../../../../deploy/sis/demo-data.sql");
pub const BIN: &str = env!("CARGO_BIN_EXE_sds-sync");

/// Runs `f` to completion on a throw-away current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

pub fn sqlite_options(path: &Path, create: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .busy_timeout(Duration::from_secs(10))
}

async fn pool(path: &Path, create: bool) -> sqlx::SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlite_options(path, create))
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// Runs `sql` (any number of statements) on the SQLite file `path`, creating it if missing.
pub fn exec_sqlite(path: &Path, sql: &str) {
    block_on(async {
        let pool = pool(path, true).await;
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("SQL failed on {}: {e}\n{sql}", path.display()));
        pool.close().await;
    })
}

/// Creates the SQLite file `path` with the reference schema and the demo data.
pub fn create_demo_sis(path: &Path) {
    exec_sqlite(path, SCHEMA);
    exec_sqlite(path, DEMO_DATA);
}

/// Every row of `sql` on the existing SQLite file `path`.
fn fetch_all(path: &Path, sql: &str) -> Vec<SqliteRow> {
    block_on(async {
        let pool = pool(path, false).await;
        let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("SQL failed on {}: {e}\n{sql}", path.display()));
        pool.close().await;
        rows
    })
}

/// Every row of `sql` on the existing SQLite file `path`, each column as JSON (text, integer or
/// null).
pub fn query_rows(path: &Path, sql: &str) -> Vec<Vec<Value>> {
    use sqlx::{TypeInfo, ValueRef};
    fetch_all(path, sql)
        .iter()
        .map(|r| {
            (0..r.columns().len())
                .map(|i| {
                    let raw = r.try_get_raw(i).expect("column");
                    if raw.is_null() {
                        return Value::Null;
                    }
                    match raw.type_info().name() {
                        "INTEGER" => Value::from(r.get::<i64, _>(i)),
                        _ => Value::from(r.get::<String, _>(i)),
                    }
                })
                .collect()
        })
        .collect()
}

/// The first column of every row of `sql` on the SQLite file `path`, as text.
pub fn query_texts(path: &Path, sql: &str) -> Vec<String> {
    fetch_all(path, sql)
        .iter()
        .map(|r| r.try_get::<String, _>(0).expect("a text column"))
        .collect()
}

/// The single integer `sql` returns on the SQLite file `path`.
pub fn query_i64(path: &Path, sql: &str) -> i64 {
    block_on(async {
        let pool = pool(path, false).await;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("SQL failed on {}: {e}\n{sql}", path.display()));
        pool.close().await;
        n
    })
}

/// A command for the binary with every variable for which `scrub` says yes removed from its
/// environment (each harness clears what could change the behaviour it tests).
pub fn sds_command(scrub: impl Fn(&str) -> bool) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if scrub(&k) {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd
}

/// One finished `sds-sync` process.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(args: &[&str], out: Output) -> Run {
        Run {
            args: args.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the process exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "sds-sync {} exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// `stdout` as JSON (`status --json`); asserts exit 0 first.
    #[track_caller]
    pub fn json(&self) -> Value {
        self.expect_code(0);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON: {e}\n{}", self.stdout))
    }

    /// The JSON log lines on stderr (the harnesses set `[log] format = "json"`).
    pub fn log_lines(&self) -> Vec<Value> {
        json_lines(&self.stderr)
    }

    /// Log lines whose message is exactly `message`.
    pub fn logs_with_message(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| message_of(l) == message)
            .collect()
    }
}

/// The JSON objects among the lines of `text` (other lines, and a line being written, skipped).
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

/// The `message` of a JSON log line.
pub fn message_of(line: &Value) -> &str {
    line.get("message").and_then(Value::as_str).unwrap_or("")
}

/// Name → bytes of every regular file of a folder (missing or unreadable folder: empty), read
/// as one set. A test may look while a delivery renames files into the folder and removes its
/// temporary ones: an entry listed may be gone when it is read, or one file may be replaced after
/// another was read. So the folder is listed (names and inodes) before and after the reads, and
/// read again until nothing changed in between; a folder that never holds still for 10 s is a
/// failure.
#[track_caller]
pub fn folder_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    for _ in 0..1000 {
        if let Some(files) = folder_files_once(dir) {
            return files;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} kept changing for 10 s while it was read", dir.display());
}

/// One attempt of [`folder_files`]: `None` when the folder changed while it was read.
fn folder_files_once(dir: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    let before = regular_files(dir)?;
    let mut files = BTreeMap::new();
    for name in before.keys() {
        match fs::read(dir.join(name)) {
            Ok(bytes) => files.insert(name.clone(), bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("read {}: {e}", dir.join(name).display()),
        };
    }
    (regular_files(dir)? == before).then_some(files)
}

/// Name → inode of the regular files of a folder (missing or unreadable folder: empty); `None`
/// when an entry could not be listed. The inode changes when a rename replaces the file.
fn regular_files(dir: &Path) -> Option<BTreeMap<String, u64>> {
    use std::os::unix::fs::DirEntryExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return Some(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.ok()?;
        // Without following links, from the directory entry itself: no second look that a
        // rename could race.
        if entry.file_type().ok()?.is_file() {
            out.insert(
                entry.file_name().to_string_lossy().into_owned(),
                entry.ino(),
            );
        }
    }
    Some(out)
}

/// Names in a folder, sorted (missing folder: empty).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// One test's world in a temporary folder: the demo SIS (`sis.db`), the config file, the state
/// directory and the local destinations (`out/<name>`). The harnesses' `Env`s deref to it.
pub struct World {
    _tmp: TempDir,
    pub root: PathBuf,
    pub sis: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl World {
    /// A new temporary folder with the demo SIS; the config is not written yet.
    pub fn new() -> World {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_path_buf();
        let world = World {
            sis: root.join("sis.db"),
            state: root.join("state"),
            config: root.join("config.toml"),
            root,
            _tmp: tmp,
        };
        create_demo_sis(&world.sis);
        world
    }

    /// Where the local destination `name` writes.
    pub fn dest(&self, name: &str) -> PathBuf {
        self.root.join("out").join(name)
    }

    /// Edits the SIS (the binary only ever reads it).
    pub fn sql(&self, sql: &str) {
        exec_sqlite(&self.sis, sql);
    }

    pub fn state_db(&self) -> PathBuf {
        self.state.join("state.sqlite")
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.state.join("snapshots")
    }

    /// The entries of snapshot `id` in the state directory, as `list` reads a folder; asserts
    /// there are some.
    #[track_caller]
    pub fn snapshot_entries(
        &self,
        id: i64,
        list: fn(&Path) -> BTreeMap<String, Vec<u8>>,
    ) -> BTreeMap<String, Vec<u8>> {
        let files = list(&self.snapshots_dir().join(id.to_string()));
        assert!(
            !files.is_empty(),
            "snapshot folder {id} is missing or empty"
        );
        files
    }
}
