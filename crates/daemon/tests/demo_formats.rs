//! End to end on the embedded demo SIS (`url = "demo:"`): the real `sds-sync once` binary exports
//! every format into a temporary local destination; the files are read back, checked with the
//! independent validator (`sds_core::validate`) and against facts worked out by hand from
//! `deploy/sis/demo-data.sql` (its hard cases and row counts; see `deploy/sis/README.md`).
//!
//! Counts note: `001-HR-7A` (a course without a name) is kept and named by its course code `HR`,
//! as ARCHITECTURE.md decides, so its section, its 5 enrollments and its roster row are exported.
//! Student `000130` has no e-mail address: with the demo's `username = "email"` it has no
//! username, which SDS cannot match, so it is dropped (`no_username`) with its 3 enrollments
//! (`001-ENG7-01`, `001-MATH7-02`, `001-SCI8-01`): no export has a blank username.

mod support;

use std::collections::BTreeMap;
use support::export::{
    Export, Files, SKU, V1_DEMO, V1_FULL, V2_ALL, V21_ALL, V21_FULL, assert_valid, data_lines,
    run_export, text,
};

/// Students enrolled per section, worked out from `demo-data.sql`: the dropped enrollment
/// (`000133` in `001-SCI8-01`) and the inactive student `000131` (`001-MATH7-01`) are left out.
const ENROLLED: &[(&str, usize)] = &[
    ("001-ENG7-01", 12),
    ("001-HR-7A", 5),
    ("001-MATH7-01", 6),
    ("001-MATH7-02", 6),
    ("001-SCI8-01", 8),
    ("002-ALG1-01", 8),
    ("002-BIO-01", 9),
    ("002-ENG10-01", 14),
    ("002-FR2-01", 6),
    ("002-USHIST-01", 9),
    ("003-GR4-01", 5),
];

/// Sections of the dropped student `000130` (no e-mail, no username).
const SECTIONS_OF_000130: &[&str] = &["001-ENG7-01", "001-MATH7-02", "001-SCI8-01"];

/// Active students per school, as exported (`000130` at 001 is dropped: no username).
const STUDENTS_001: usize = 12 - 1;
const STUDENTS_002: usize = 14;
const STUDENTS_003: usize = 5;

fn lines_of(files: &Files, name: &str) -> Vec<String> {
    data_lines(files, name)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn assert_has(files: &Files, name: &str, line: &str) {
    assert!(
        data_lines(files, name).contains(&line),
        "{name} lacks the line {line:?}:\n{}",
        text(files, name)
    );
}

#[track_caller]
fn assert_no_line_starting(files: &Files, name: &str, prefix: &str) {
    if let Some(l) = data_lines(files, name)
        .iter()
        .find(|l| l.starts_with(prefix))
    {
        panic!("{name} should have no line starting {prefix:?}, has {l:?}");
    }
}

#[track_caller]
fn assert_file(files: &Files, name: &str, expected: &str) {
    assert_eq!(text(files, name), expected, "{name}");
}

fn names(files: &Files) -> Vec<&str> {
    files.keys().map(String::as_str).collect()
}

/// Enrollment rows per section of a file whose first column is the section/class.
fn per_section(lines: &[&str], keep: impl Fn(&str) -> bool) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines.iter().filter(|l| keep(l)) {
        let section = l.split(',').next().unwrap_or_default().to_owned();
        *m.entry(section).or_insert(0) += 1;
    }
    m
}

fn expected_per_section(schools: &[&str]) -> BTreeMap<String, usize> {
    ENROLLED
        .iter()
        .filter(|(s, _)| schools.iter().any(|school| s.starts_with(school)))
        .map(|(s, n)| {
            let dropped = usize::from(SECTIONS_OF_000130.contains(s));
            ((*s).to_owned(), *n - dropped)
        })
        .collect()
}

#[test]
fn v1_with_license_file() {
    let files = run_export("demo:", &V1_DEMO);
    assert_eq!(
        names(&files),
        [
            "License.csv",
            "School.csv",
            "Section.csv",
            "Student.csv",
            "StudentEnrollment.csv",
            "Teacher.csv",
            "TeacherRoster.csv"
        ]
    );
    let warnings = assert_valid(V1_DEMO.sds_format(), &files, "v1 demo");
    // 000130 (no e-mail) is dropped, not written with a blank username: nothing to warn about.
    assert!(warnings.is_empty(), "{warnings:#?}");

    // Leading zeros kept; 003 not selected, 099 closed.
    assert_file(
        &files,
        "School.csv",
        "SIS ID,Name\r\n001,Harbor View Middle School\r\n002,Northgate High School\r\n",
    );
    // 099-WOOD-01 (closed school) is gone; HR-7A is named by its course code; the course name
    // with a comma is quoted and keeps its non-ASCII dash.
    assert_file(
        &files,
        "Section.csv",
        "SIS ID,School SIS ID,Section Name\r\n\
         001-ENG7-01,001,English Language Arts 7\r\n\
         001-HR-7A,001,HR\r\n\
         001-MATH7-01,001,Mathematics 7\r\n\
         001-MATH7-02,001,Mathematics 7\r\n\
         001-SCI8-01,001,Science 8\r\n\
         002-ALG1-01,002,Algebra I\r\n\
         002-BIO-01,002,Biology\r\n\
         002-ENG10-01,002,English 10\r\n\
         002-FR2-01,002,French II\r\n\
         002-USHIST-01,002,\"History: U.S., 1865\u{2013}Present\"\r\n",
    );
    // 1003 once per school; 1002's closed school 099 dropped; 1008 inactive; 1007 at 003 not
    // selected; 1006 without a password keeps an empty Password column.
    assert_file(
        &files,
        "Teacher.csv",
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password\r\n\
         1001,001,Helen,Carter,h.carter@demo.k12.example,Staff-Welcome-2026!\r\n\
         1002,001,David,Moreau,d.moreau@demo.k12.example,Staff-Welcome-2026!\r\n\
         1003,001,Siobh\u{e1}n,O'Connell,s.oconnell@demo.k12.example,Staff-Welcome-2026!\r\n\
         1003,002,Siobh\u{e1}n,O'Connell,s.oconnell@demo.k12.example,Staff-Welcome-2026!\r\n\
         1004,001,Rajesh,Iyer,r.iyer@demo.k12.example,Staff-Welcome-2026!\r\n\
         1005,002,Karen,Lindqvist,k.lindqvist@demo.k12.example,Staff-Welcome-2026!\r\n\
         1006,002,Marcus,Webb,m.webb@demo.k12.example,\r\n",
    );
    // No roster for 002-USHIST-01 (no teacher) nor 002-FR2-01 (inactive 1008).
    assert_file(
        &files,
        "TeacherRoster.csv",
        "Section SIS ID,SIS ID\r\n\
         001-ENG7-01,1003\r\n\
         001-HR-7A,1001\r\n\
         001-MATH7-01,1001\r\n\
         001-MATH7-02,1002\r\n\
         001-SCI8-01,1004\r\n\
         002-ALG1-01,1005\r\n\
         002-BIO-01,1006\r\n\
         002-ENG10-01,1003\r\n",
    );

    let students = data_lines(&files, "Student.csv");
    assert_eq!(students.len(), STUDENTS_001 + STUDENTS_002);
    for line in [
        "000123,001,Jos\u{e9},Alvarez,jose.alvarez@demo.k12.example,Welcome-2026!",
        "000124,001,Zo\u{eb},\u{d8}rsted,zoe.orsted@demo.k12.example,Welcome-2026!",
        "000125,001,Liam,O'Brien,liam.obrien@demo.k12.example,Harbor-7731!",
        "000126,001,\"Robert \"\"Bobby\"\"\",Chen,robert.chen@demo.k12.example,Tide-4410!",
        "000127,001,Marcus,\"Reyes, Jr.\",marcus.reyes@demo.k12.example,Anchor-2290!",
        "000128,001,Mary Kate,Sullivan,marykate.sullivan@demo.k12.example,Welcome-2026!",
        "000129,001,Ava,Martinez,Ava.Martinez@Demo.K12.Example,Welcome-2026!",
        "004502,002,Benjamin,M\u{fc}ller,benjamin.mueller@demo.k12.example,North-3318!",
        "004505,002,Elif,Y\u{131}lmaz,elif.yilmaz@demo.k12.example,Compass-6042!",
        "004514,002,Nora,Fitzgerald,nora.fitzgerald@demo.k12.example,",
    ] {
        assert_has(&files, "Student.csv", line);
    }
    assert_eq!(
        students.first(),
        Some(&"000123,001,Jos\u{e9},Alvarez,jose.alvarez@demo.k12.example,Welcome-2026!")
    );
    for gone in ["000130,", "000131,", "004513,", "007001,", "000007,"] {
        assert_no_line_starting(&files, "Student.csv", gone);
    }

    let enrollments = data_lines(&files, "StudentEnrollment.csv");
    assert_eq!(enrollments.len(), 83 - 3);
    assert_eq!(
        per_section(&enrollments, |_| true),
        expected_per_section(&["001", "002"])
    );
    assert!(!enrollments.iter().any(|l| l.ends_with(",000131")));
    assert!(!enrollments.contains(&"001-SCI8-01,000133"));
    assert!(enrollments.contains(&"001-MATH7-02,000133"));

    // One licence per exported student (000130, without an address, is not one), sorted by
    // display name.
    let licenses = data_lines(&files, "License.csv");
    assert_eq!(licenses.len(), STUDENTS_001 + STUDENTS_002);
    assert_eq!(
        licenses.first().copied(),
        Some(format!("Amara Okafor,amara.okafor@demo.k12.example,{SKU}").as_str())
    );
    for line in [
        format!("\"Marcus Reyes, Jr.\",marcus.reyes@demo.k12.example,{SKU}"),
        format!("\"Robert \"\"Bobby\"\" Chen\",robert.chen@demo.k12.example,{SKU}"),
        format!("Mary Kate Sullivan,marykate.sullivan@demo.k12.example,{SKU}"),
        format!("Ava Martinez,Ava.Martinez@Demo.K12.Example,{SKU}"),
    ] {
        assert_has(&files, "License.csv", &line);
    }
    assert_no_line_starting(&files, "License.csv", "Noah Patel");
}

#[test]
fn v1_local_part_usernames_without_passwords() {
    let export = Export {
        username: "email-local-part",
        include_passwords: false,
        ..V1_DEMO
    };
    let files = run_export("demo:", &export);
    assert_valid(export.sds_format(), &files, "v1 local part, no passwords");
    // The header keeps its Password column; every password is blank.
    for file in ["Student.csv", "Teacher.csv"] {
        assert!(
            text(&files, file)
                .starts_with("SIS ID,School SIS ID,First Name,Last Name,Username,Password\r\n")
        );
        for l in data_lines(&files, file) {
            assert!(l.ends_with(','), "{file}: a password is left in {l:?}");
        }
    }
    assert_has(
        &files,
        "Student.csv",
        "000123,001,Jos\u{e9},Alvarez,jose.alvarez,",
    );
    assert_has(
        &files,
        "Student.csv",
        "000129,001,Ava,Martinez,Ava.Martinez,",
    );
    assert_has(
        &files,
        "Teacher.csv",
        "1003,002,Siobh\u{e1}n,O'Connell,s.oconnell,",
    );
    // The licence file still names the full e-mail address.
    assert_has(
        &files,
        "License.csv",
        &format!("Jos\u{e9} Alvarez,jose.alvarez@demo.k12.example,{SKU}"),
    );
}

/// Facts shared by v2 and v2.1 (every school exported).
fn assert_v2_common(files: &Files) {
    assert_file(
        files,
        "orgs.csv",
        "sourcedId,name,type\r\n\
         001,Harbor View Middle School,school\r\n\
         002,Northgate High School,school\r\n\
         003,Cedar Ridge Elementary,school\r\n",
    );
    let classes = data_lines(files, "classes.csv");
    assert_eq!(classes.len(), 11);
    assert_has(files, "classes.csv", "003-GR4-01,003,Grade 4 Homeroom");
    assert_has(files, "classes.csv", "001-HR-7A,001,HR");
    assert_has(
        files,
        "classes.csv",
        "002-USHIST-01,002,\"History: U.S., 1865\u{2013}Present\"",
    );
    assert_no_line_starting(files, "classes.csv", "099-");

    let enrollments = data_lines(files, "enrollments.csv");
    assert_eq!(enrollments.len(), 88 - 3 + 9);
    assert_eq!(
        per_section(&enrollments, |l| l.ends_with(",student")),
        expected_per_section(&["001", "002", "003"])
    );
    let teachers: Vec<&str> = enrollments
        .iter()
        .copied()
        .filter(|l| l.ends_with(",teacher"))
        .collect();
    assert_eq!(
        teachers,
        [
            "001-ENG7-01,1003,teacher",
            "001-HR-7A,1001,teacher",
            "001-MATH7-01,1001,teacher",
            "001-MATH7-02,1002,teacher",
            "001-SCI8-01,1004,teacher",
            "002-ALG1-01,1005,teacher",
            "002-BIO-01,1006,teacher",
            "002-ENG10-01,1003,teacher",
            "003-GR4-01,1007,teacher",
        ]
    );
    assert!(!enrollments.contains(&"001-MATH7-01,000131,student"));
    assert!(!enrollments.contains(&"001-SCI8-01,000133,student"));
    assert!(enrollments.contains(&"003-GR4-01,000007,student"));
}

#[test]
fn v2_every_school() {
    let files = run_export("demo:", &V2_ALL);
    assert_eq!(
        names(&files),
        ["classes.csv", "enrollments.csv", "orgs.csv", "users.csv"]
    );
    let warnings = assert_valid(V2_ALL.sds_format(), &files, "v2 demo");
    // v2 always writes the grade, here without `[export.grade_map]`: the demo's grades 4 to 9
    // are the SIS's spelling, not Microsoft's codes (`04` ... `09`), and each is a warning;
    // 10 to 12 are codes already. Nothing else is warned about.
    let sis_spelled: Vec<u64> = data_lines(&files, "users.csv")
        .iter()
        .enumerate()
        .filter(|(_, l)| ["4", "6", "7", "8", "9"].contains(&l.rsplit(',').next().unwrap_or("")))
        .map(|(i, _)| i as u64 + 2)
        .collect();
    assert_eq!(sis_spelled.len(), 19);
    assert_eq!(
        warnings
            .iter()
            .map(|v| (v.file.as_str(), v.rule, v.column.as_deref(), v.line))
            .collect::<Vec<_>>(),
        sis_spelled
            .iter()
            .map(|l| ("users.csv", "enum", Some("grade"), Some(*l)))
            .collect::<Vec<_>>(),
        "{warnings:#?}"
    );
    assert_v2_common(&files);

    let users = lines_of(&files, "users.csv");
    assert_eq!(users.len(), STUDENTS_001 + STUDENTS_002 + STUDENTS_003 + 7);
    assert_eq!(users.iter().filter(|l| l.ends_with(",teacher,")).count(), 7);
    // 000007 sorts first (byte order, leading zeros kept); grades print as 7, not 7.0.
    assert_eq!(
        users[0],
        "000007,003,Tessa,Novak,tessa.novak@demo.k12.example,Cedar-2026!,student,4"
    );
    for line in [
        "1003,\"001,002\",Siobh\u{e1}n,O'Connell,s.oconnell@demo.k12.example,Staff-Welcome-2026!,teacher,",
        "1002,001,David,Moreau,d.moreau@demo.k12.example,Staff-Welcome-2026!,teacher,",
        "1006,002,Marcus,Webb,m.webb@demo.k12.example,,teacher,",
        "000123,001,Jos\u{e9},Alvarez,jose.alvarez@demo.k12.example,Welcome-2026!,student,7",
        "000127,001,Marcus,\"Reyes, Jr.\",marcus.reyes@demo.k12.example,Anchor-2290!,student,8",
        "000128,001,Mary Kate,Sullivan,marykate.sullivan@demo.k12.example,Welcome-2026!,student,7",
        "000135,001,Oliver,Haddad,oliver.haddad@demo.k12.example,Welcome-2026!,student,",
        "004514,002,Nora,Fitzgerald,nora.fitzgerald@demo.k12.example,,student,9",
        "007003,003,Ruby,Stewart,ruby.stewart@demo.k12.example,Cedar-2026!,student,4",
    ] {
        assert_has(&files, "users.csv", line);
    }
    for gone in ["000130,", "000131,", "004513,", "1008,"] {
        assert_no_line_starting(&files, "users.csv", gone);
    }
}

#[test]
fn v21_every_school() {
    let files = run_export("demo:", &V21_ALL);
    assert_eq!(
        names(&files),
        [
            "classes.csv",
            "enrollments.csv",
            "orgs.csv",
            "roles.csv",
            "users.csv"
        ]
    );
    let warnings = assert_valid(V21_ALL.sds_format(), &files, "v2.1 demo");
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_v2_common(&files);

    let users = data_lines(&files, "users.csv");
    assert_eq!(users.len(), STUDENTS_001 + STUDENTS_002 + STUDENTS_003 + 7);
    for line in [
        "000007,tessa.novak@demo.k12.example,Tessa,Novak,Cedar-2026!",
        "000126,robert.chen@demo.k12.example,\"Robert \"\"Bobby\"\"\",Chen,Tide-4410!",
        "1003,s.oconnell@demo.k12.example,Siobh\u{e1}n,O'Connell,Staff-Welcome-2026!",
    ] {
        assert_has(&files, "users.csv", line);
    }

    let roles = data_lines(&files, "roles.csv");
    assert_eq!(roles.len(), STUDENTS_001 + STUDENTS_002 + STUDENTS_003 + 8);
    let teacher_roles: Vec<&str> = roles
        .iter()
        .copied()
        .filter(|l| l.ends_with(",teacher"))
        .collect();
    assert_eq!(
        teacher_roles,
        [
            "1001,001,teacher",
            "1002,001,teacher",
            "1003,001,teacher",
            "1003,002,teacher",
            "1004,001,teacher",
            "1005,002,teacher",
            "1006,002,teacher",
            "1007,003,teacher",
        ]
    );
    assert_eq!(roles[0], "000007,003,student");
    assert_has(&files, "roles.csv", "000128,001,student");

    // v2 and v2.1 share orgs, classes and enrollments byte for byte.
    let v2 = run_export("demo:", &V2_ALL);
    for name in ["orgs.csv", "classes.csv", "enrollments.csv"] {
        assert_eq!(text(&files, name), text(&v2, name), "{name}: v2.1 vs v2");
    }
}

/// With a student prefix only, teachers (`1001`) sort before students (`S-000007`): the merged
/// user ID space must stay sorted in users.csv, roles.csv and within each class.
#[test]
fn v21_student_prefix_keeps_files_sorted() {
    let export = Export {
        student_id_prefix: "S-",
        ..V21_ALL
    };
    let files = run_export("demo:", &export);
    assert_valid(export.sds_format(), &files, "v2.1 with a student prefix");
    let users = data_lines(&files, "users.csv");
    assert_eq!(
        users[0],
        "1001,h.carter@demo.k12.example,Helen,Carter,Staff-Welcome-2026!"
    );
    assert_eq!(
        users[7],
        "S-000007,tessa.novak@demo.k12.example,Tessa,Novak,Cedar-2026!"
    );
    let enrollments = data_lines(&files, "enrollments.csv");
    let eng7: Vec<&str> = enrollments
        .iter()
        .copied()
        .filter(|l| l.starts_with("001-ENG7-01,"))
        .take(2)
        .collect();
    assert_eq!(
        eng7,
        ["001-ENG7-01,1003,teacher", "001-ENG7-01,S-000123,student"]
    );
    assert_has(&files, "roles.csv", "S-000007,003,student");
    assert!(
        data_lines(&files, "roles.csv")
            .iter()
            .filter(|l| l.ends_with(",student"))
            .all(|l| l.starts_with("S-"))
    );
}

/// With `[export.grade_map]` (the demo's grades to Microsoft's codes), the grades sds-sync writes
/// (v1 `Student.csv` `Grade`, v2.1 `roles.csv` and `courses.csv` `grade`) are all codes: the
/// validator, which warns about any other grade, finds nothing to say about them.
#[test]
fn grade_mapped_exports_draw_no_grade_warning() {
    for (export, files_with_grades) in [
        (&V1_FULL, &["Student.csv"][..]),
        (&V21_FULL, &["roles.csv", "courses.csv"][..]),
    ] {
        let files = run_export("demo:", export);
        for name in files_with_grades {
            let header = text(&files, name).lines().next().unwrap_or("");
            assert!(
                header.split(',').any(|c| c.eq_ignore_ascii_case("grade")),
                "{name} has no grade column: {header}"
            );
        }
        let warnings = assert_valid(export.sds_format(), &files, export.format);
        let grades: Vec<String> = warnings
            .iter()
            .filter(|v| {
                v.column
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("grade"))
            })
            .map(|v| v.to_string())
            .collect();
        assert!(grades.is_empty(), "{}: {grades:#?}", export.format);
    }
}
