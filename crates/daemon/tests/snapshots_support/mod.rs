//! Shared harness of the snapshot end-to-end tests (`tests/snapshots*.rs`): a SQLite SIS file
//! built from `deploy/sis`, a config with a state directory and two local destinations in a
//! temporary folder, and runners for the real `sds-sync` binary and its `status --json`.
//!
//! The tests are synchronous: they drive a process. The few SQL statements they run themselves
//! (editing the SIS between runs, reading the state DB to look for orphans) go through sqlx on a
//! throw-away current-thread runtime.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;
use tempfile::TempDir;

pub const SCHEMA: &str = include_str!("../../../../deploy/sis/schema-sqlite.sql");
pub const DEMO_DATA: &str = include_str!("../../../../deploy/sis/demo-data.sql");
pub const BIN: &str = env!("CARGO_BIN_EXE_sds-sync");

/// Every table of the reference SIS schema.
pub const SIS_TABLES: [&str; 7] = [
    "schools",
    "students",
    "staff",
    "staff_schools",
    "courses",
    "sections",
    "section_enrollments",
];

/// Destination that carries `License.csv` (v1) and the one that does not.
pub const DEST_LICENSE: &str = "with-license";
pub const DEST_PLAIN: &str = "without-license";

/// `once` exit status when the guard held the snapshot (`cli::EXIT_HELD`).
pub const EXIT_HELD: i32 = 3;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

async fn pool(path: &Path, create: bool) -> sqlx::SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
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

/// The first column of every row of `sql` on the SQLite file `path`, as text.
pub fn query_texts(path: &Path, sql: &str) -> Vec<String> {
    block_on(async {
        let pool = pool(path, false).await;
        let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("SQL failed on {}: {e}\n{sql}", path.display()));
        pool.close().await;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).expect("a text column"))
            .collect()
    })
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

/// One finished `sds-sync` process.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
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

    /// The JSON log lines on stderr (the harness sets `[log] format = "json"`).
    pub fn log_lines(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Log lines whose message is exactly `message`.
    pub fn logs_with_message(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.get("message").and_then(Value::as_str) == Some(message))
            .collect()
    }
}

/// Rows of a file and, when there was a previous version to compare, (added, removed, changed).
pub type FileCounts = BTreeMap<String, (u64, Option<[u64; 3]>)>;

/// Expected counts from a `(file, rows, added, removed, changed)` table.
pub fn counts(table: &[(&str, u64, u64, u64, u64)]) -> FileCounts {
    table
        .iter()
        .map(|&(f, rows, a, r, c)| (f.to_string(), (rows, Some([a, r, c]))))
        .collect()
}

/// Expected counts of a first export: rows only, nothing to compare with.
pub fn first_counts(table: &[(&str, u64)]) -> FileCounts {
    table
        .iter()
        .map(|&(f, rows)| (f.to_string(), (rows, None)))
        .collect()
}

/// The per-file table `once --dry-run` prints on stdout.
pub fn counts_from_dry_run(stdout: &str) -> FileCounts {
    let mut out = FileCounts::new();
    for line in stdout.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() != 5 || !t[0].ends_with(".csv") {
            continue;
        }
        let n = |s: &str| -> u64 {
            s.parse()
                .unwrap_or_else(|_| panic!("not a count: {s:?} in {line:?}"))
        };
        let diff = if t[3] == "-" {
            None
        } else {
            Some([n(t[2]), n(t[3]), n(t[4])])
        };
        out.insert(t[0].to_string(), (n(t[1]), diff));
    }
    out
}

/// The per-file counts recorded with a run (`status --json` → `recent_runs[i].files`).
pub fn counts_from_status_run(run: &Value) -> FileCounts {
    let files = run["files"]
        .as_array()
        .unwrap_or_else(|| panic!("run without files: {run}"));
    files
        .iter()
        .map(|f| {
            let name = f["file"].as_str().expect("file name").to_string();
            let rows = f["rows"].as_u64().expect("rows");
            let diff = match &f["diff"] {
                Value::Null => None,
                d => Some([
                    d["added"].as_u64().expect("added"),
                    d["removed"].as_u64().expect("removed"),
                    d["changed"].as_u64().expect("changed"),
                ]),
            };
            (name, (rows, diff))
        })
        .collect()
}

/// The one structured log line per file of a run (`file compared` / `file has no previous
/// version to compare`).
pub fn counts_from_log(run: &Run) -> FileCounts {
    let mut out = FileCounts::new();
    for l in run.log_lines() {
        let msg = l.get("message").and_then(Value::as_str).unwrap_or("");
        let diff = match msg {
            "file compared" => Some([
                l["added"].as_u64().expect("added"),
                l["removed"].as_u64().expect("removed"),
                l["changed"].as_u64().expect("changed"),
            ]),
            "file has no previous version to compare" => None,
            _ => continue,
        };
        let file = l["file"].as_str().expect("file").to_string();
        let rows = l["rows"].as_u64().expect("rows");
        assert!(
            out.insert(file.clone(), (rows, diff)).is_none(),
            "two log lines for {file}:\n{}",
            run.stderr
        );
    }
    out
}

pub fn current_id(status: &Value) -> Option<i64> {
    status["current"]["id"].as_i64()
}

pub fn held_ids(status: &Value) -> Vec<i64> {
    status["held"]
        .as_array()
        .expect("held list")
        .iter()
        .map(|s| s["id"].as_i64().expect("held id"))
        .collect()
}

pub fn pending(status: &Value) -> Vec<(String, i64)> {
    status["pending_deliveries"]
        .as_array()
        .expect("pending_deliveries list")
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().expect("destination").to_string(),
                d["snapshot_id"].as_i64().expect("snapshot_id"),
            )
        })
        .collect()
}

pub fn recent_runs(status: &Value) -> &Vec<Value> {
    status["recent_runs"].as_array().expect("recent_runs list")
}

/// The newest run of a `status --json`.
pub fn last_run(status: &Value) -> &Value {
    recent_runs(status).first().expect("at least one run")
}

/// Name → (bytes, mtime) of every entry of a folder (missing folder: empty).
pub type FolderState = BTreeMap<String, (Vec<u8>, SystemTime)>;

pub fn folder_state(dir: &Path) -> FolderState {
    let Ok(entries) = fs::read_dir(dir) else {
        return FolderState::new();
    };
    entries
        .map(|e| {
            let e = e.expect("folder entry");
            let meta = e.metadata().expect("metadata");
            let bytes = if meta.is_file() {
                fs::read(e.path()).expect("read file")
            } else {
                Vec::new()
            };
            (
                e.file_name().to_string_lossy().into_owned(),
                (bytes, meta.modified().expect("mtime")),
            )
        })
        .collect()
}

/// Name → bytes of every entry of a folder.
pub fn folder_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    folder_state(dir)
        .into_iter()
        .map(|(k, (b, _))| (k, b))
        .collect()
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

/// Data rows (header excluded) of a CSV file's bytes.
pub fn data_rows(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    text.split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// One test's world: SIS file, config, state directory and destinations in one temp folder.
pub struct Env {
    _tmp: TempDir,
    pub root: PathBuf,
    pub sis: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub format: String,
}

impl Env {
    /// The demo SIS in `format` with the default guard.
    pub fn new(format: &str) -> Env {
        Env::with_extra(format, "")
    }

    /// As [`Env::new`], with extra TOML (e.g. a `[guard]` section) in the config.
    pub fn with_extra(format: &str, extra_toml: &str) -> Env {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_path_buf();
        let env = Env {
            sis: root.join("sis.db"),
            state: root.join("state"),
            config: root.join("config.toml"),
            root,
            format: format.to_string(),
            _tmp: tmp,
        };
        exec_sqlite(&env.sis, SCHEMA);
        exec_sqlite(&env.sis, DEMO_DATA);
        let license = if format == "v1" {
            "license_file = true\naccount_sku_id = \"demo:STANDARDWOFFPACK_STUDENT\"\n"
        } else {
            ""
        };
        let config = format!(
            r#"[source]
url = "sqlite://{sis}"

[export]
format = "{format}"
username = "email"
include_passwords = true
{license}
[state]
dir = "{state}"

[log]
format = "json"
level = "info"

{extra_toml}

[[destination]]
name = "{DEST_LICENSE}"
kind = "local"
path = "{dest_license}"
include_license_file = true

[[destination]]
name = "{DEST_PLAIN}"
kind = "local"
path = "{dest_plain}"
include_license_file = false
"#,
            sis = env.sis.display(),
            state = env.state.display(),
            dest_license = env.dest(DEST_LICENSE).display(),
            dest_plain = env.dest(DEST_PLAIN).display(),
        );
        fs::write(&env.config, config).expect("write config");
        env
    }

    pub fn dest(&self, name: &str) -> PathBuf {
        self.root.join("out").join(name)
    }

    /// Edits the SIS (the binary only ever reads it).
    pub fn sql(&self, sql: &str) {
        exec_sqlite(&self.sis, sql);
    }

    /// Runs the binary with this env's config; the environment is cleared of anything that
    /// could change its behaviour (`SDS_SYNC*`, `RUST_LOG`) except `env`.
    pub fn sds(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("SDS_SYNC") || k == "RUST_LOG" {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.envs(env.iter().copied());
        let out = cmd.output().expect("start sds-sync");
        Run {
            args: args.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn once(&self) -> Run {
        self.sds(&["once"], &[])
    }

    pub fn dry_run(&self) -> Run {
        self.sds(&["once", "--dry-run"], &[])
    }

    pub fn once_failing_at(&self, point: &str) -> Run {
        self.sds(&["once"], &[("SDS_SYNC_FAILPOINT", point)])
    }

    pub fn approve(&self, id: &str) -> Run {
        self.sds(&["approve", id], &[])
    }

    /// `status --json`, parsed (asserts exit 0).
    #[track_caller]
    pub fn status(&self) -> Value {
        let run = self.sds(&["status", "--json", "--runs", "50"], &[]);
        run.expect_code(0);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON: {e}\n{}", run.stdout))
    }

    /// A successful first `once`; returns the id of the first snapshot.
    #[track_caller]
    pub fn publish_first(&self) -> i64 {
        self.once().expect_code(0);
        let status = self.status();
        let id = current_id(&status).expect("a current snapshot after the first run");
        self.assert_delivered(id);
        id
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.state.join("snapshots")
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.state.join("staging")
    }

    /// Names of the folders under `state/snapshots`.
    pub fn snapshot_folders(&self) -> Vec<String> {
        names_in(&self.snapshots_dir())
    }

    pub fn staging_entries(&self) -> Vec<String> {
        names_in(&self.staging_dir())
    }

    /// The files of snapshot `id` in the state directory.
    pub fn snapshot_files(&self, id: i64) -> BTreeMap<String, Vec<u8>> {
        let files = folder_files(&self.snapshots_dir().join(id.to_string()));
        assert!(
            !files.is_empty(),
            "snapshot folder {id} is missing or empty"
        );
        files
    }

    /// One file of the snapshot `id`.
    pub fn snapshot_file(&self, id: i64, name: &str) -> Vec<u8> {
        fs::read(self.snapshots_dir().join(id.to_string()).join(name))
            .unwrap_or_else(|e| panic!("snapshot {id} {name}: {e}"))
    }

    /// Asserts that every destination holds exactly the files of snapshot `id` (License.csv
    /// only where configured), complete, and nothing else: no file of another snapshot and no
    /// temporary file.
    #[track_caller]
    pub fn assert_delivered(&self, id: i64) {
        let snap = self.snapshot_files(id);
        for (dest, license) in [(DEST_LICENSE, true), (DEST_PLAIN, false)] {
            let want: BTreeMap<String, Vec<u8>> = snap
                .iter()
                .filter(|(name, _)| license || name.as_str() != "License.csv")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let got = folder_files(&self.dest(dest));
            let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(
                names(&got),
                names(&want),
                "destination {dest}: files differ from snapshot {id}"
            );
            for (name, bytes) in &want {
                assert!(
                    &got[name] == bytes,
                    "destination {dest}: {name} is not the file of snapshot {id}"
                );
            }
        }
    }

    /// Every destination folder: names, bytes and modification times.
    pub fn destinations_state(&self) -> BTreeMap<String, FolderState> {
        [DEST_LICENSE, DEST_PLAIN]
            .into_iter()
            .map(|d| (d.to_string(), folder_state(&self.dest(d))))
            .collect()
    }

    /// `state/snapshots/*/*` with bytes and modification times (proof that nothing was rewritten).
    pub fn snapshots_state(&self) -> BTreeMap<String, FolderState> {
        self.snapshot_folders()
            .into_iter()
            .map(|id| {
                let state = folder_state(&self.snapshots_dir().join(&id));
                (id, state)
            })
            .collect()
    }

    fn state_db(&self) -> PathBuf {
        self.state.join("state.sqlite")
    }

    /// Rows in the delivery outbox, whatever their status.
    pub fn outbox_rows(&self) -> i64 {
        query_i64(&self.state_db(), "SELECT COUNT(*) FROM outbox")
    }

    /// Snapshot rows of a publish that never committed.
    pub fn reserved_rows(&self) -> i64 {
        query_i64(
            &self.state_db(),
            "SELECT COUNT(*) FROM snapshots WHERE status = 'reserved'",
        )
    }

    /// The status of snapshot `id` in the state DB.
    pub fn snapshot_status(&self, id: i64) -> String {
        query_texts(
            &self.state_db(),
            &format!("SELECT status FROM snapshots WHERE id = {id}"),
        )
        .pop()
        .unwrap_or_else(|| "(no row)".into())
    }

    /// Asserts the state directory holds no leftover of an interrupted publish: nothing in
    /// `staging/`, no `reserved` row, and exactly one folder per committed, unpruned snapshot.
    #[track_caller]
    pub fn assert_no_leftovers(&self) {
        assert_eq!(self.staging_entries(), Vec::<String>::new(), "staging/");
        assert_eq!(self.reserved_rows(), 0, "reserved snapshot rows");
        let mut committed: Vec<String> = query_texts(
            &self.state_db(),
            "SELECT CAST(id AS TEXT) FROM snapshots
             WHERE status <> 'reserved' AND pruned_at IS NULL ORDER BY id",
        );
        committed.sort();
        assert_eq!(
            self.snapshot_folders(),
            committed,
            "snapshot folders vs committed snapshots"
        );
    }

    /// Replaces the SIS file by a copy with the same rows inserted in reverse order, so that
    /// every unordered SELECT of the default queries returns its rows in another order.
    pub fn rebuild_sis_reversed(&self) {
        let copy = self.root.join("sis-reversed.db");
        exec_sqlite(&copy, SCHEMA);
        let mut sql = format!("ATTACH DATABASE '{}' AS old;\n", self.sis.display());
        for t in SIS_TABLES {
            sql.push_str(&format!(
                "INSERT INTO main.{t} SELECT * FROM old.{t} ORDER BY rowid DESC;\n"
            ));
        }
        sql.push_str("DETACH DATABASE old;\n");
        exec_sqlite(&copy, &sql);
        fs::rename(&copy, &self.sis).expect("replace the SIS file");
    }

    /// First column of `sql` on the SIS, in the order SQLite returns it.
    pub fn sis_texts(&self, sql: &str) -> Vec<String> {
        query_texts(&self.sis, sql)
    }
}
