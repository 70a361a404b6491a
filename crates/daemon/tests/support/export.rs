//! Harness of `demo_formats` and `cross_db`: runs the real `sds-sync once` on a source URL with a
//! temporary config (fresh state folder, one local destination), runs the real
//! `sds-sync validate --strict` on the delivered folder (it must exit 0), reads the files back,
//! and checks them with the validator `sds_core::validate` (strict) too.

use super::sds_command;
use sds_core::Format;
use sds_core::validate::{Severity, Violation, validate_set};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// File name → file bytes, in name order.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The `[export]` section of one test run.
#[derive(Debug, Clone)]
pub struct Export {
    pub format: &'static str,
    /// Empty: every school the SIS returns.
    pub schools: &'static [&'static str],
    pub username: &'static str,
    pub include_passwords: bool,
    /// v1 only: write License.csv and carry it to the destination.
    pub license: bool,
    pub student_id_prefix: &'static str,
    pub teacher_id_prefix: &'static str,
    /// The full SDS formats: `[export] optional_columns`.
    pub optional_columns: bool,
    /// `[source] optional_queries`.
    pub optional_queries: &'static [&'static str],
    /// `[export.district]` (id, name).
    pub district: Option<(&'static str, &'static str)>,
    /// `[export.grade_map]`.
    pub grade_map: &'static [(&'static str, &'static str)],
}

pub const SKU: &str = "demo:STANDARDWOFFPACK_STUDENT";

/// v1 as `deploy/demo.toml` has it: schools 001 and 002, e-mail usernames, passwords, licences.
pub const V1_DEMO: Export = Export {
    format: "v1",
    schools: &["001", "002"],
    username: "email",
    include_passwords: true,
    license: true,
    student_id_prefix: "",
    teacher_id_prefix: "",
    optional_columns: false,
    optional_queries: &[],
    district: None,
    grade_map: &[],
};

/// v2, every school (003 and its student `000007` included), e-mail usernames.
pub const V2_ALL: Export = Export {
    format: "v2",
    schools: &[],
    username: "email",
    include_passwords: true,
    license: false,
    student_id_prefix: "",
    teacher_id_prefix: "",
    optional_columns: false,
    optional_queries: &[],
    district: None,
    grade_map: &[],
};

/// The demo's grades (`grade_level`, `low_grade`, `high_grade`) as Microsoft's codes.
pub const DEMO_GRADE_MAP: &[(&str, &str)] = &[
    ("K", "kg"),
    ("1", "01"),
    ("2", "02"),
    ("3", "03"),
    ("4", "04"),
    ("5", "05"),
    ("6", "06"),
    ("7", "07"),
    ("8", "08"),
    ("9", "09"),
];

/// v2.1 with everything of the full SDS formats: the three optional queries, the optional
/// columns, a district and the grade map; every school.
pub const V21_FULL: Export = Export {
    format: "v2.1",
    optional_columns: true,
    optional_queries: &["academic_sessions", "courses", "guardians"],
    district: Some(("D100", "Demo Unified School District")),
    grade_map: DEMO_GRADE_MAP,
    ..V2_ALL
};

/// v1 as the demo has it, with the optional columns and the grade map.
pub const V1_FULL: Export = Export {
    optional_columns: true,
    grade_map: DEMO_GRADE_MAP,
    ..V1_DEMO
};

/// v2.1, every school, e-mail usernames (the only rule v2.1 accepts). Demo student and teacher
/// IDs never collide (six digits against four), so no prefix is needed.
pub const V21_ALL: Export = Export {
    format: "v2.1",
    ..V2_ALL
};

impl Export {
    pub fn sds_format(&self) -> Format {
        self.format
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", self.format))
    }
}

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn config_text(url: &str, export: &Export, state: &Path, out: &Path) -> String {
    let schools: Vec<String> = export.schools.iter().map(|s| toml_str(s)).collect();
    let mut text = format!(
        "[source]\nurl = {url}\nconnect_timeout_secs = 20\noptional_queries = [{queries}]\n\n\
         [export]\nformat = {format}\nschools = [{schools}]\nusername = {username}\n\
         include_passwords = {passwords}\nlicense_file = {license}\n\
         student_id_prefix = {sp}\nteacher_id_prefix = {tp}\n",
        url = toml_str(url),
        queries = export
            .optional_queries
            .iter()
            .map(|q| toml_str(q))
            .collect::<Vec<_>>()
            .join(", "),
        format = toml_str(export.format),
        schools = schools.join(", "),
        username = toml_str(export.username),
        passwords = export.include_passwords,
        license = export.license,
        sp = toml_str(export.student_id_prefix),
        tp = toml_str(export.teacher_id_prefix),
    );
    if export.license {
        let _ = writeln!(text, "account_sku_id = {}", toml_str(SKU));
    }
    if export.optional_columns {
        text.push_str("optional_columns = true\n");
    }
    if let Some((id, name)) = export.district {
        let _ = write!(
            text,
            "\n[export.district]\nid = {}\nname = {}\n",
            toml_str(id),
            toml_str(name)
        );
    }
    if !export.grade_map.is_empty() {
        text.push_str("\n[export.grade_map]\n");
        for (from, to) in export.grade_map {
            let _ = writeln!(text, "{} = {}", toml_str(from), toml_str(to));
        }
    }
    let _ = write!(
        text,
        "\n[state]\ndir = {state}\n\n[log]\nlevel = \"warn\"\n\n\
         [[destination]]\nname = \"test-outbox\"\nkind = \"local\"\npath = {out}\n\
         include_license_file = {license}\n",
        state = toml_str(&state.display().to_string()),
        out = toml_str(&out.display().to_string()),
        license = export.license,
    );
    text
}

/// Runs `sds-sync once` against `url` with a fresh state folder and returns the files the local
/// destination received. Panics (with the binary's stderr) unless it exits 0.
pub fn run_export(url: &str, export: &Export) -> Files {
    let dir = tempfile::tempdir().expect("temporary folder");
    let state = dir.path().join("state");
    let out = dir.path().join("outbox");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(url, export, &state, &out)).expect("write config");

    // The test's own environment must not override the config.
    let output = sds_command(|k| k.starts_with("SDS_SYNC"))
        .arg("--config")
        .arg(&config)
        .arg("once")
        .output()
        .expect("run sds-sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sds-sync once ({} from {url}) exited with {}:\n{stderr}",
        export.format,
        output.status
    );

    // What `once` delivered passes `sds-sync validate --strict`, as SDS and our conventions want.
    let validate = sds_command(|k| k.starts_with("SDS_SYNC"))
        .arg("validate")
        .arg(&out)
        .args(["--format", export.format, "--strict"])
        .output()
        .expect("run sds-sync validate");
    assert!(
        validate.status.success(),
        "sds-sync validate --strict on what `once` delivered ({} from {url}) exited with {}:\n{}{}",
        export.format,
        validate.status,
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );

    let mut files = Files::new();
    let entries = std::fs::read_dir(&out)
        .unwrap_or_else(|e| panic!("no outbox {} after the run ({e}):\n{stderr}", out.display()));
    for entry in entries {
        let entry = entry.expect("outbox entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type().expect("file type").is_file() {
            continue;
        }
        files.insert(
            name,
            std::fs::read(entry.path()).expect("read delivered file"),
        );
    }
    assert!(
        !files.is_empty(),
        "sds-sync once ({} from {url}) delivered nothing:\n{stderr}",
        export.format
    );
    files
}

/// Runs `sds-sync check` against `url` with the config `run_export` would use and returns its
/// standard output. Panics (with the output) unless it exits 0.
pub fn run_check(url: &str, export: &Export) -> String {
    let dir = tempfile::tempdir().expect("temporary folder");
    let state = dir.path().join("state");
    let out = dir.path().join("outbox");
    std::fs::create_dir(&out).expect("outbox");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(url, export, &state, &out)).expect("write config");
    let output = sds_command(|k| k.starts_with("SDS_SYNC"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .expect("run sds-sync check");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sds-sync check ({} from {url}) exited with {}:\n{stdout}{}",
        export.format,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn as_set(files: &Files) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect()
}

fn listing(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("  {v}\n"))
        .collect::<String>()
}

/// Asserts the validator (strict: our own conventions too) finds no error in the set; returns
/// its warnings.
#[track_caller]
pub fn assert_valid(format: Format, files: &Files, what: &str) -> Vec<Violation> {
    let set = as_set(files);
    let (errors, warnings): (Vec<Violation>, Vec<Violation>) = validate_set(format, &set, true)
        .into_iter()
        .partition(|v| v.severity == Severity::Error);
    assert!(
        errors.is_empty(),
        "{what}: the validator found {} violation(s):\n{}",
        errors.len(),
        listing(&errors)
    );
    warnings
}

/// The text of one file (it must exist and be UTF-8).
#[track_caller]
pub fn text<'a>(files: &'a Files, name: &str) -> &'a str {
    let names: Vec<&String> = files.keys().collect();
    let bytes = files
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in the set {names:?}"));
    std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}"))
}

/// The data lines of one file (header left out), without their CRLF.
#[track_caller]
pub fn data_lines<'a>(files: &'a Files, name: &str) -> Vec<&'a str> {
    let t = text(files, name);
    let body = t.strip_suffix("\r\n").unwrap_or(t);
    body.split("\r\n").skip(1).collect()
}

/// Asserts that two exports hold the same files, byte for byte; on a difference, names the file
/// and shows the first differing line.
#[track_caller]
pub fn assert_same_files(expected_from: &str, expected: &Files, actual_from: &str, actual: &Files) {
    let a: Vec<&String> = expected.keys().collect();
    let b: Vec<&String> = actual.keys().collect();
    assert_eq!(a, b, "file sets differ: {expected_from} vs {actual_from}");
    for (name, want) in expected {
        let got = &actual[name];
        if want == got {
            continue;
        }
        let want_text = String::from_utf8_lossy(want);
        let got_text = String::from_utf8_lossy(got);
        let mut first = String::from("(the line ends differ)");
        for (n, (w, g)) in want_text
            .split_inclusive('\n')
            .zip(got_text.split_inclusive('\n'))
            .enumerate()
        {
            if w != g {
                first = format!(
                    "line {}:\n  {expected_from}: {w:?}\n  {actual_from}: {g:?}",
                    n + 1
                );
                break;
            }
        }
        if first.starts_with("(the") && want_text.lines().count() != got_text.lines().count() {
            first = format!(
                "{expected_from} has {} lines, {actual_from} has {}",
                want_text.lines().count(),
                got_text.lines().count()
            );
        }
        panic!("{name} differs between {expected_from} and {actual_from}: {first}");
    }
}
