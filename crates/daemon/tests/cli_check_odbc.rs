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
    let out: Output = support::sds_command(|k| k.starts_with("SDS_SYNC"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env("SDS_SYNC__LOG__FORMAT", "text")
        .output()
        .expect("run sds-sync");
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
