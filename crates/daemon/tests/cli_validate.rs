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
