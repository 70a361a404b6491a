//! `sds-sync check [--offline]` and the destination warnings, through the real binary on the
//! embedded demo SIS: what systemd's `ExecStartPre` and an admin after an edit rely on.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// The demo SIS, one local destination, and `extra` appended (more destinations or keys).
fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        r#"[source]
url = "demo:"

[state]
dir = "{state}"

[[destination]]
name = "local-copy"
kind = "local"
path = "{out}"
{extra}"#,
        state = dir.join("state").display(),
        out = dir.join("outbox").display(),
    );
    fs::write(&path, text).expect("write config");
    path
}

/// An FTP destination without TLS on a port nothing listens on (connections are refused at
/// once, so a delivery attempt fails fast and retryably).
const CLEAR_TEXT_FTP: &str = r#"
[[destination]]
name = "legacy-ftp"
kind = "ftp"
host = "127.0.0.1"
port = 1
username = "district"
password = "ftp-secret-do-not-print"
tls = "none"
connect_timeout_secs = 5
"#;

fn sds(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sds-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env("SDS_SYNC__LOG__FORMAT", "text")
        .output()
        .expect("run sds-sync")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn offline_check_validates_the_config_without_touching_state_or_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let out = sds(&config, &["check", "--offline"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("config: ok (1 destination(s); offline check"),
        "{stdout}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "the offline check created the state directory"
    );
    assert!(
        !dir.path().join("outbox").exists(),
        "the offline check created the destination"
    );
}

#[test]
fn offline_check_fails_naming_a_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "\n[export]\nformat = \"v3\"\n");
    let out = sds(&config, &["check", "--offline"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("format"),
        "the error names the key: {stderr}"
    );

    let config = write_config(dir.path(), "\n[export]\nformatt = \"v1\"\n");
    let out = sds(&config, &["check", "--offline"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("formatt"),
        "the error names the unknown key: {stderr}"
    );
}

#[test]
fn online_check_probes_every_query_and_destination() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let out = sds(&config, &["check"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
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
        stdout.contains("destination local-copy (local): ok"),
        "{stdout}"
    );
    // It says what the round trip proved.
    assert!(
        stdout.contains("uploaded a probe file under a temporary name, checked its size, renamed it and removed it"),
        "{stdout}"
    );
    // `check` changes nothing: no snapshot, no exported file.
    assert!(!dir.path().join("state").join("snapshots").exists());
    assert!(
        fs::read_dir(dir.path().join("outbox")).map_or(true, |mut d| d.next().is_none()),
        "check left files in the destination"
    );
}

#[test]
fn clear_text_ftp_is_warned_about_by_check_and_once_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), CLEAR_TEXT_FTP);

    let out = sds(&config, &["check", "--offline"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("warning: destination \"legacy-ftp\": tls = \"none\""),
        "{stdout}"
    );

    // `once` (what cron and timer users run) logs the same warning; the unreachable FTP server
    // makes the run exit 1 with the delivery left queued, and the local copy still arrives.
    let out = sds(&config, &["once"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let warned = stderr
        .lines()
        .filter(|l| {
            l.contains("WARN") && l.contains("destination warning") && l.contains("clear text")
        })
        .count();
    assert_eq!(
        warned, 1,
        "one WARN line about the clear-text password:\n{stderr}"
    );
    assert!(
        dir.path().join("outbox").join("Student.csv").is_file(),
        "{stderr}"
    );
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains("ftp-secret-do-not-print"),
            "password printed:\n{output}"
        );
    }
}

#[test]
fn send_test_only_concerns_email_and_not_the_offline_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    // No email destination: the admin asked for a test message that nothing can send, so the
    // check says so and fails instead of passing silently.
    let out = sds(&config, &["check", "--send-test"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("no email destination to send a test to"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("test message sent"), "{stdout}");
    // The offline check contacts nothing, so it cannot send either.
    let out = sds(&config, &["check", "--offline", "--send-test"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("--offline"), "{stderr}");
}
