//! The source's security behaviour through the real binary: at `RUST_LOG=trace` no secret of the
//! source URL or config shows in any output (sqlx logs unknown URL parameters with their
//! value, so sds-sync removes them first); `check` warns about a remote SIS in clear text and
//! reports the TLS state of the session; `once` warns too.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use support::daemon::{Env, Setup, msg};

const URL_PARAM_SECRET: &str = "SslPassword-Trace-Secret-41";
const QUERY_PASSWORD: &str = "QueryParam-Password-Secret-77";
const CONFIG_PASSWORD: &str = "Config-Password-Secret-55";

/// The shared PostgreSQL. A test that needs it is ignored when `SDS_TEST_POSTGRES_URL` is unset
/// (build.rs: `sds_no_postgres`), so getting here without it fails the test, naming it.
fn postgres_url() -> String {
    match std::env::var("SDS_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("SDS_TEST_POSTGRES_URL is not set: run scripts/test"),
    }
}

fn write_config(dir: &Path, source: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "{source}\n[state]\ndir = \"{state}\"\n\n[[destination]]\nname = \"local\"\nkind = \"local\"\npath = \"{out}\"\n",
        state = dir.join("state").display(),
        out = dir.join("out").display(),
    );
    fs::write(&path, text).expect("write config");
    path
}

fn sds(config: &Path, args: &[&str], rust_log: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sds-sync"));
    cmd.arg("--config").arg(config).args(args);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SDS_SYNC") || k.starts_with("PG") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    if let Some(level) = rust_log {
        cmd.env("RUST_LOG", level);
    }
    let out = cmd.output().expect("run sds-sync");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, all)
}

#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn no_source_secret_shows_at_trace_level() {
    let url = postgres_url();
    let dir = tempfile::tempdir().expect("temp");
    let sep = if url.contains('?') { '&' } else { '?' };
    // Trust authentication on the test server: the passwords are sent where asked and ignored.
    let source = format!(
        "[source]\nurl = \"{url}{sep}sslpassword={URL_PARAM_SECRET}&password={QUERY_PASSWORD}\"\npassword = \"{CONFIG_PASSWORD}\"\n"
    );
    let config = write_config(dir.path(), &source);
    for args in [&["check"][..], &["once"][..]] {
        let (out, all) = sds(&config, args, Some("trace"));
        assert!(
            all.lines().count() > 20,
            "expected a trace-level log from {args:?}:\n{all}"
        );
        for secret in [URL_PARAM_SECRET, QUERY_PASSWORD, CONFIG_PASSWORD] {
            assert!(
                !all.contains(secret),
                "{args:?} printed {secret} (exit {:?}):\n{all}",
                out.status.code()
            );
        }
        assert!(
            all.contains("ignoring the unknown parameter `sslpassword`"),
            "{args:?}: the ignored parameter is not named:\n{all}"
        );
    }
}

#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn check_warns_about_clear_text_to_a_remote_sis_and_reports_tls() {
    let url = postgres_url();
    let dir = tempfile::tempdir().expect("temp");
    // A remote host (nothing needs to listen there: --offline does not connect).
    let remote =
        "[source]\nurl = \"postgres://sis_reader@sis.example.invalid/sis?sslmode=disable\"\n";
    let config = write_config(dir.path(), remote);
    let (out, all) = sds(&config, &["check", "--offline"], None);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("warning: the SIS connection to sis.example.invalid is not encrypted (`sslmode=disable`)"),
        "{all}"
    );

    // The shared server, local: no warning; check says what the session negotiated.
    let local = format!("[source]\nurl = \"{url}\"\n");
    let config = write_config(dir.path(), &local);
    let (_, all) = sds(&config, &["check"], None);
    assert!(!all.contains("warning:"), "{all}");
    assert!(
        all.contains("source TLS: TLS if the server offers it, certificate not verified (the default on this machine); this session: "),
        "{all}"
    );
}

/// The service logs the source's warnings at start and again after a reload (here: a
/// `ca_file` that cannot apply to a SQLite SIS).
#[test]
fn the_service_warns_at_start_and_after_a_reload() {
    let mut setup = Setup::ticking(&["local"]);
    setup.run_at_start = false;
    setup.cron = support::daemon::FAR_AWAY.into();
    let env = Env::new(&setup);
    let config = env.config_toml(&setup).replacen(
        "[export]",
        "ca_file = \"/etc/ssl/certs/unused.pem\"\n\n[export]",
        1,
    );
    env.write_config_text(&config);
    let mut d = env.start();
    let warned = |l: &serde_json::Value| {
        l.get("warning")
            .and_then(|w| w.as_str())
            .is_some_and(|w| w.contains("ca_file is not used"))
    };
    d.wait_log("source warning", warned);
    d.signal("HUP");
    d.wait_log(msg::UPDATED, |_| true);
    d.wait_log_count_where("source warning", 2, warned);
}
