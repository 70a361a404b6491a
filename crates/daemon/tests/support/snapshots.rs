//! Harness of the snapshot end-to-end tests (`tests/snapshots*.rs`): the demo SIS, a config with
//! a state directory and two local destinations in a [`World`], and runners for `sds-sync once`,
//! `approve` and `status --json`. The SQL the tests run themselves edits the SIS between runs
//! and reads the state DB to look for orphans.

// The shared helpers the tests call; each test binary uses a different subset.
#[allow(unused_imports)]
pub use super::{Run, SCHEMA, World, exec_sqlite, names_in, query_i64, query_texts};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Every table of the reference SIS schema.
pub const SIS_TABLES: [&str; 10] = [
    "schools",
    "students",
    "staff",
    "staff_schools",
    "courses",
    "sections",
    "section_enrollments",
    "terms",
    "guardians",
    "student_guardians",
];

/// Destination that carries `License.csv` (v1) and the one that does not.
pub const DEST_LICENSE: &str = "with-license";
pub const DEST_PLAIN: &str = "without-license";

/// `once` exit status when the guard held the snapshot (`cli::EXIT_HELD`).
pub const EXIT_HELD: i32 = 3;

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

/// Name → bytes of every entry of a folder, a subfolder with no bytes (missing folder: empty);
/// [`super::folder_files`] lists regular files only.
pub fn folder_entries(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    folder_state(dir)
        .into_iter()
        .map(|(k, (b, _))| (k, b))
        .collect()
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
    world: World,
    pub format: String,
}

impl std::ops::Deref for Env {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl Env {
    /// The demo SIS in `format` with the default guard.
    pub fn new(format: &str) -> Env {
        Env::with_extra(format, "")
    }

    /// As [`Env::new`], with extra TOML (e.g. a `[guard]` section) in the config.
    pub fn with_extra(format: &str, extra_toml: &str) -> Env {
        Env::with_keys(format, "", "", extra_toml)
    }

    /// As [`Env::with_extra`], with extra keys in `[source]` and `[export]` too (the full SDS
    /// formats: `optional_queries`, `optional_columns`, ...).
    pub fn with_keys(format: &str, source_keys: &str, export_keys: &str, extra_toml: &str) -> Env {
        let env = Env {
            world: World::new(),
            format: format.to_string(),
        };
        let license = if format == "v1" {
            "license_file = true\naccount_sku_id = \"demo:STANDARDWOFFPACK_STUDENT\"\n"
        } else {
            ""
        };
        let config = format!(
            r#"[source]
url = "sqlite://{sis}"
{source_keys}
[export]
format = "{format}"
username = "email"
include_passwords = true
{license}{export_keys}
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

    /// Runs the binary with this env's config; the environment is cleared of anything that
    /// could change its behaviour (`SDS_SYNC*`, `RUST_LOG`) except `env`.
    pub fn sds(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = super::sds_command(|k| k.starts_with("SDS_SYNC") || k == "RUST_LOG")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("start sds-sync");
        Run::new(args, out)
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
        self.sds(&["status", "--json", "--runs", "50"], &[]).json()
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
    #[track_caller]
    pub fn snapshot_files(&self, id: i64) -> BTreeMap<String, Vec<u8>> {
        self.snapshot_entries(id, folder_entries)
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
            let got = folder_entries(&self.dest(dest));
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
