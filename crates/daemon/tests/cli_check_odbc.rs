//! `sds-sync check` on an ODBC source, through the real binary: it names the DBMS and the driver
//! (SQLGetInfo) and probes every query; a driver that is not installed fails with the list of
//! those that are; the password never shows. The SIS is the reference demo in a SQLite file,
//! read through the "SQLite3" driver (Debian libsqliteodbc).
#![cfg(feature = "odbc")]

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn driver_installed(name: &str) -> bool {
    Command::new("odbcinst")
        .args(["-q", "-d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("[{name}]")))
        .unwrap_or(false)
}

/// The SQLite driver must be there: a test that needs it is ignored when it is not (build.rs:
/// `sds_no_odbc_sqlite`), so getting here without it fails the test, naming it.
fn sqlite_driver() {
    assert!(
        driver_installed("SQLite3"),
        "the ODBC driver `SQLite3` is not installed: scripts/ci-services installs it"
    );
}

fn check(dir: &Path, url: &str) -> (bool, String, String) {
    check_with(dir, url, None)
}

/// `check` with `RUST_LOG` set to `rust_log` (or unset).
fn check_with(dir: &Path, url: &str, rust_log: Option<&str>) -> (bool, String, String) {
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            r#"[source]
url = "{url}"
password = "Odbc-Secret-3391"

[state]
dir = "{state}"

[[destination]]
name = "local-copy"
kind = "local"
path = "{out}"
"#,
            state = dir.join("state").display(),
            out = dir.join("outbox").display(),
        ),
    )
    .expect("write config");
    let mut cmd = support::sds_command(|k| k.starts_with("SDS_SYNC") || k == "RUST_LOG");
    cmd.arg("--config")
        .arg(&config)
        .arg("check")
        .env("SDS_SYNC__LOG__FORMAT", "text");
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    let out: Output = cmd.output().expect("run sds-sync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg_attr(
    sds_no_odbc_sqlite,
    ignore = "the ODBC driver `SQLite3` is not installed (libsqliteodbc, installed by scripts/ci-services)"
)]
#[test]
fn check_names_dbms_and_driver_and_probes_every_query() {
    sqlite_driver();
    let dir = tempfile::tempdir().expect("tempdir");
    let sis = dir.path().join("sis.db");
    support::create_demo_sis(&sis);
    let url = format!("odbc:Driver={{SQLite3}};Database={}", sis.display());
    let (ok, stdout, stderr) = check(dir.path(), &url);
    assert!(ok, "{stdout}{stderr}");
    let connected = stdout
        .lines()
        .find(|l| l.starts_with("source: connected to "))
        .unwrap_or_else(|| panic!("no source line: {stdout}"));
    for part in [
        &url["odbc:".len()..],
        "PWD=********",
        "SQLite 3.",
        "through the ODBC driver",
        "read-only session",
    ] {
        assert!(
            connected.contains(part),
            "{part:?} missing from: {connected}"
        );
    }
    // The driver sets up TLS from the connection string; sds-sync says it does not check it.
    assert!(
        stdout.contains(
            "source TLS: set by the driver's connection string (not checked by sds-sync)"
        ),
        "{stdout}"
    );
    for entity in [
        "schools",
        "students",
        "teachers",
        "sections",
        "student_enrollments",
        "teacher_rosters",
    ] {
        assert!(
            stdout.contains(&format!("query {entity}: ok")),
            "{entity}: {stdout}"
        );
    }
    assert!(
        !stdout.contains("Odbc-Secret-3391") && !stderr.contains("Odbc-Secret-3391"),
        "{stdout}{stderr}"
    );
}

#[cfg_attr(
    sds_no_odbc_sqlite,
    ignore = "the ODBC driver `SQLite3` is not installed (libsqliteodbc, installed by scripts/ci-services)"
)]
#[test]
fn check_with_an_unknown_driver_lists_the_installed_ones() {
    sqlite_driver();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = check(
        dir.path(),
        "odbc:Driver={ODBC Driver 18 for SQL Server};Server=127.0.0.1;Database=sis;Uid=sds",
    );
    assert!(!ok, "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    for part in [
        "`ODBC Driver 18 for SQL Server` is not installed",
        "`SQLite3`",
        "odbcinst -q -d",
    ] {
        assert!(all.contains(part), "{part:?} missing from: {all}");
    }
    assert!(!all.contains("Odbc-Secret-3391"), "{all}");
}

/// psqlodbc refusing an unknown role (SQLSTATE 08001, like a network failure): the error points
/// at the login, not at the network; and odbc-api's own copy of every driver diagnostic (an
/// unstructured WARN of target `odbc_api`, which can carry data values) stays out of the output
/// even with `RUST_LOG` set, unless it names `odbc_api`.
#[cfg_attr(
    any(sds_no_postgres, sds_no_odbc_postgres),
    ignore = "needs PostgreSQL (SDS_TEST_POSTGRES_URL) and the ODBC driver `PostgreSQL Unicode` (odbc-postgresql, installed by scripts/ci-services): run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn an_unknown_role_is_a_login_failure_and_odbc_api_logs_stay_out() {
    let pg = std::env::var("SDS_TEST_POSTGRES_URL")
        .expect("SDS_TEST_POSTGRES_URL is not set: run scripts/test");
    let pg = url::Url::parse(&pg).expect("SDS_TEST_POSTGRES_URL");
    assert!(
        driver_installed("PostgreSQL Unicode"),
        "the ODBC driver `PostgreSQL Unicode` is not installed: scripts/ci-services installs it"
    );
    let url = format!(
        "odbc:Driver={{PostgreSQL Unicode}};Server={};Port={};Database={};Uid=sds_no_such_role",
        pg.host_str().unwrap_or("127.0.0.1"),
        pg.port().unwrap_or(5432),
        pg.path().trim_start_matches('/'),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for rust_log in [None, Some("info"), Some("trace")] {
        let (ok, stdout, stderr) = check_with(dir.path(), &url, rust_log);
        let all = format!("{stdout}{stderr}");
        assert!(!ok, "{all}");
        assert!(
            all.contains("role \"sds_no_such_role\" does not exist"),
            "{rust_log:?}: {all}"
        );
        assert!(
            all.contains("the user name (`UID=` in the connection string)"),
            "{rust_log:?}: not the login hint: {all}"
        );
        assert!(
            !all.contains("firewall"),
            "{rust_log:?}: the network hint: {all}"
        );
        assert!(!all.contains("odbc_api"), "{rust_log:?}: {all}");
        assert!(!all.contains("Odbc-Secret-3391"), "{rust_log:?}: {all}");
    }
    // Asked for by name, the driver's diagnostics come through.
    let (_, stdout, stderr) = check_with(dir.path(), &url, Some("info,odbc_api=warn"));
    assert!(
        format!("{stdout}{stderr}").contains("odbc_api"),
        "{stdout}{stderr}"
    );
}
