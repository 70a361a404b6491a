//! `sds-sync validate DIR --format F`: the real binary on hand-written file sets.

use std::fs;
use std::process::Command;

fn write_v1(dir: &std::path::Path, student_header: &str) {
    let files = [
        ("School.csv", "SIS ID,Name\r\n001,North\r\n".to_string()),
        ("Section.csv", "SIS ID,School SIS ID,Section Name\r\n001-M-1,001,Math\r\n".to_string()),
        (
            "Student.csv",
            format!("{student_header}\r\n7,001,Ann,Lee,ann@x.example,\r\n"),
        ),
        (
            "Teacher.csv",
            "SIS ID,School SIS ID,First Name,Last Name,Username,Password\r\nt1,001,Bo,Ng,bo@x.example,\r\n".to_string(),
        ),
        ("StudentEnrollment.csv", "Section SIS ID,SIS ID\r\n001-M-1,7\r\n".to_string()),
        ("TeacherRoster.csv", "Section SIS ID,SIS ID\r\n001-M-1,t1\r\n".to_string()),
    ];
    for (name, body) in files {
        fs::write(dir.join(name), body).unwrap();
    }
}

fn validate(dir: &std::path::Path, format: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sds-sync"))
        .args(["validate", dir.to_str().unwrap(), "--format", format])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_correct_set_passes_and_needs_no_config() {
    let dir = tempfile::tempdir().unwrap();
    write_v1(
        dir.path(),
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password",
    );
    let (ok, text) = validate(dir.path(), "v1");
    assert!(ok, "{text}");
    assert!(text.contains("6 file(s), 0 error(s)"), "{text}");
}

#[test]
fn a_wrong_header_or_format_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Headers are case-sensitive: "Sis ID" is not "SIS ID".
    write_v1(
        dir.path(),
        "Sis ID,School SIS ID,First Name,Last Name,Username,Password",
    );
    let (ok, text) = validate(dir.path(), "v1");
    assert!(!ok, "{text}");
    assert!(text.contains("Student.csv"), "{text}");
    // The same files are not a v2 set at all.
    write_v1(
        dir.path(),
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password",
    );
    let (ok, text) = validate(dir.path(), "v2");
    assert!(!ok, "{text}");
    assert!(text.contains("users.csv"), "{text}");
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sds-sync"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn strict_adds_our_conventions_and_findings_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_v1(
        dir.path(),
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password",
    );
    // LF line ends and a reordered header: fine for SDS, not sds-sync's canonical form.
    fs::write(
        dir.path().join("School.csv"),
        "Name,SIS ID\n\"North\",001\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (code, text) = run(&["validate", path, "--format", "v1"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("6 file(s), 0 error(s), 0 warning(s) (SDS v1)"),
        "{text}"
    );
    let (code, text) = run(&["validate", path, "--format", "v1", "--strict"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("School.csv:1: header is"), "{text}");
    assert!(
        text.contains("School.csv:2: line ends with LF alone"),
        "{text}"
    );
    assert!(text.contains("(SDS v1, strict)"), "{text}");

    // A finding about one value names its line and column.
    fs::write(dir.path().join("School.csv"), "SIS ID,Name\r\n001,\r\n").unwrap();
    let (code, text) = run(&["validate", path, "--format", "v1"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("School.csv:2 [Name]: required value is blank"),
        "{text}"
    );
}

#[test]
fn an_unknown_format_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run(&["validate", dir.path().to_str().unwrap(), "--format", "v3"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("v1") && text.contains("v2") && text.contains("v2.1"),
        "{text}"
    );
}
