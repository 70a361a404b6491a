//! One validation of the whole config, run first by every verb, through the real binary: a
//! misspelled SIS URL, a bad cron expression or time zone fail `check --offline` and `once`
//! alike, before a state directory exists or a run is recorded; a TOML syntax error names line
//! and column but never echoes the line (it may hold a password); a config file with inline
//! secrets that other users can read is warned about; every error is printed once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
}

impl Case {
    /// A config with the demo SIS (or `url`), one local destination, and `extra` appended.
    fn new(url: &str, extra: &str) -> Case {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let config = dir.join("config.toml");
        let case = Case {
            _tmp: tmp,
            dir,
            config,
        };
        case.write(&format!(
            "[source]\nurl = \"{url}\"\n\n[state]\ndir = \"{}\"\n\n[[destination]]\nname = \"local-copy\"\nkind = \"local\"\npath = \"{}\"\n{extra}",
            case.state().display(),
            case.dir.join("outbox").display()
        ));
        case
    }

    fn write(&self, text: &str) {
        fs::write(&self.config, text).expect("write config");
        fs::set_permissions(&self.config, fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn sds(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out: Output = Command::new(env!("CARGO_BIN_EXE_sds-sync"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SDS_SYNC_CONFIG")
            .output()
            .expect("run sds-sync");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `args` fails with exit 1 and exactly one line on stderr, which contains every `part`,
    /// and nothing was created next to the config.
    #[track_caller]
    fn refused(&self, args: &[&str], parts: &[&str]) {
        let (code, stdout, stderr) = self.sds(args);
        assert_eq!(code, Some(1), "{args:?}\n{stdout}\n{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: one line, printed once:\n{stderr}"
        );
        assert!(lines[0].starts_with("sds-sync: "), "{args:?}: {stderr}");
        for part in parts {
            assert!(lines[0].contains(part), "{args:?}: {part:?} in {stderr}");
        }
        assert!(
            !self.state().exists(),
            "{args:?} created the state directory"
        );
        assert!(
            !self.dir.join("outbox").exists(),
            "{args:?} created the destination"
        );
    }
}

const EVERY_VERB: [&[&str]; 6] = [
    &["check", "--offline"],
    &["check"],
    &["once"],
    &["once", "--dry-run"],
    &["status"],
    &["approve", "1"],
];

#[test]
fn a_misspelled_url_scheme_fails_every_verb_before_anything_is_created() {
    let case = Case::new(
        "postgress://sis:url-secret-do-not-print@db.example.org/sis",
        "",
    );
    for args in EVERY_VERB {
        case.refused(
            args,
            &["config key source.url", "unsupported scheme `postgress:`"],
        );
    }
    let (_, stdout, stderr) = case.sds(&["once"]);
    assert!(!format!("{stdout}{stderr}").contains("url-secret-do-not-print"));
    // Nor a run recorded anywhere: there is no state directory at all (checked by `refused`).
}

#[test]
fn a_bad_cron_or_time_zone_fails_once_and_check_not_only_run() {
    let case = Case::new("demo:", "\n[schedule]\ncron = \"61 * * * *\"\n");
    for args in EVERY_VERB {
        case.refused(args, &["schedule.cron = \"61 * * * *\""]);
    }
    let case = Case::new("demo:", "\n[schedule]\ntimezone = \"Mars/Olympus_Mons\"\n");
    for args in EVERY_VERB {
        case.refused(args, &["schedule.timezone = \"Mars/Olympus_Mons\""]);
    }
}

#[test]
fn a_toml_syntax_error_gives_line_and_column_without_the_line() {
    let case = Case::new("demo:", "");
    let text = fs::read_to_string(&case.config).expect("config");
    let broken = format!("{text}\n[export]\nformat = \"v1\"\n");
    // Line 3: an unterminated string on the password line.
    let broken = broken.replacen(
        "url = \"demo:\"\n",
        "url = \"demo:\"\npassword = \"toml-secret-do-not-print\n",
        1,
    );
    case.write(&broken);
    // The parser stops at the end of the line, after its last character.
    let column = "password = \"toml-secret-do-not-print".chars().count() + 1;
    let expected = format!("TOML syntax error at line 3, column {column}");
    for args in EVERY_VERB {
        case.refused(args, &[&expected, "config.toml"]);
        let (_, stdout, stderr) = case.sds(args);
        assert!(
            !format!("{stdout}{stderr}").contains("toml-secret"),
            "{args:?} printed the offending line:\n{stderr}"
        );
    }
}

fn warning_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("readable by other users") && l.contains("holds secrets inline"))
        .collect()
}

#[test]
fn inline_secrets_in_a_config_file_others_can_read_are_warned() {
    let extra = "\n[[destination]]\nname = \"vendor\"\nkind = \"ftp\"\nhost = \"127.0.0.1\"\nport = 1\nusername = \"u\"\npassword = \"ftp-secret-do-not-print\"\nconnect_timeout_secs = 2\n";
    let case = Case::new(
        "postgres://sis:url-secret-do-not-print@127.0.0.1:1/sis",
        extra,
    );
    fs::set_permissions(&case.config, fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stdout, stderr) = case.sds(&["check", "--offline"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let warned = warning_lines(&stdout);
    assert_eq!(warned.len(), 1, "{stdout}");
    assert!(
        warned[0].starts_with("warning: config file ")
            && warned[0].contains("(mode 644)")
            && warned[0].contains("(destination[1].password, source.url)"),
        "{}",
        warned[0]
    );
    // `status` (any verb but check) logs it at WARN.
    let (code, stdout, stderr) = case.sds(&["status"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let logged = warning_lines(&stderr);
    assert_eq!(logged.len(), 1, "{stderr}");
    assert!(logged[0].contains("WARN"), "{}", logged[0]);
    for out in [&stdout, &stderr] {
        assert!(!out.contains("secret-do-not-print"), "{out}");
    }

    // Owner-only: no warning.
    fs::set_permissions(&case.config, fs::Permissions::from_mode(0o600)).expect("chmod");
    let (_, stdout, stderr) = case.sds(&["check", "--offline"]);
    assert!(
        warning_lines(&format!("{stdout}{stderr}")).is_empty(),
        "{stdout}{stderr}"
    );
    // Readable by others, but the secrets live elsewhere: no warning.
    let secret = case.dir.join("ftp.pass");
    fs::write(&secret, "x\n").expect("secret file");
    let text = fs::read_to_string(&case.config)
        .expect("config")
        .replace(
            "password = \"ftp-secret-do-not-print\"",
            &format!("password_file = \"{}\"", secret.display()),
        )
        .replace("sis:url-secret-do-not-print@", "sis@");
    case.write(&text);
    fs::set_permissions(&case.config, fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stdout, stderr) = case.sds(&["check", "--offline"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        warning_lines(&format!("{stdout}{stderr}")).is_empty(),
        "{stdout}{stderr}"
    );
}

/// An error is printed once: the `sds-sync:` line, not also an ERROR log line saying the same;
/// a failed run only by its `run failed` log line.
#[test]
fn errors_are_reported_once() {
    let case = Case::new("demo:", "");
    let (code, stdout, stderr) = case.sds(&["once"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, stdout, stderr) = case.sds(&["approve", "99"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("there is no snapshot 99").count(),
        1,
        "the error is printed once:\n{stderr}"
    );
    assert!(
        stderr.contains("sds-sync: cannot approve snapshot 99: there is no snapshot 99"),
        "{stderr}"
    );

    let case = Case::new("sqlite:///nonexistent/sis.db", "");
    let (code, stdout, stderr) = case.sds(&["once"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("cannot connect to the SIS").count(),
        1,
        "the error is printed once:\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("run failed")),
        "{stderr}"
    );
}

/// The secret files a destination reads are part of the one validation: a missing one fails
/// `once` before the export, instead of after publishing.
#[test]
fn a_missing_secret_file_fails_once_before_anything_is_created() {
    let extra = "\n[[destination]]\nname = \"vendor\"\nkind = \"ftp\"\nhost = \"127.0.0.1\"\nusername = \"u\"\npassword_file = \"/nonexistent/ftp.pass\"\n";
    let case = Case::new("demo:", extra);
    for args in [&["once"][..], &["check", "--offline"], &["status"]] {
        case.refused(args, &["/nonexistent/ftp.pass"]);
    }
}
