//! Tests of the validator: file sets in each shape Microsoft publishes (written here from the
//! headers in `SDS-FORMATS.md`, with made-up people) must pass; one broken set per rule must
//! fail it, naming file, line and column; strict mode adds sds-sync's conventions; the rows the
//! publish gate feeds (`RowSink`) are judged like the bytes of a file.

use super::*;

/// A file set: (name, bytes).
type Set = Vec<(String, Vec<u8>)>;

/// Fixtures are written with LF; files get CRLF like Microsoft's samples.
fn set(files: &[(&str, &str)]) -> Set {
    files
        .iter()
        .map(|(n, t)| ((*n).to_owned(), t.replace('\n', "\r\n").into_bytes()))
        .collect()
}

fn check(format: Format, files: &Set, strict: bool) -> Vec<Violation> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    validate_set(format, &refs, strict)
}

fn listing(v: &[Violation]) -> String {
    v.iter().map(|v| format!("  {v}\n")).collect()
}

/// The errors, as (file, line, rule).
fn errs(format: Format, files: &Set, strict: bool) -> Vec<(String, Option<u64>, &'static str)> {
    check(format, files, strict)
        .into_iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| (v.file, v.line, v.rule))
        .collect()
}

#[track_caller]
fn assert_clean(format: Format, files: &Set, strict: bool, what: &str) -> Vec<Violation> {
    let all = check(format, files, strict);
    let errors: Vec<Violation> = errors(&all).cloned().collect();
    assert!(errors.is_empty(), "{what}: errors:\n{}", listing(&errors));
    all
}

fn with(files: &Set, name: &str, text: &str) -> Set {
    let mut out: Set = files.iter().filter(|(n, _)| n != name).cloned().collect();
    out.push((name.to_owned(), text.replace('\n', "\r\n").into_bytes()));
    out
}

fn without(files: &Set, name: &str) -> Set {
    files.iter().filter(|(n, _)| n != name).cloned().collect()
}

fn map_files(files: &Set, f: impl Fn(&str, &[u8]) -> (String, Vec<u8>)) -> Set {
    files.iter().map(|(n, d)| f(n, d)).collect()
}

fn records(data: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(data)
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
        .collect()
}

fn write_csv(rows: &[Vec<String>], style: csv::QuoteStyle) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(style)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for r in rows {
        w.write_record(r).expect("write");
    }
    w.into_inner().expect("flush")
}

/// Columns in reverse order.
fn reordered(data: &[u8]) -> Vec<u8> {
    let rows: Vec<Vec<String>> = records(data)
        .into_iter()
        .map(|r| r.into_iter().rev().collect())
        .collect();
    write_csv(&rows, csv::QuoteStyle::Necessary)
}

/// Every field quoted, the header too.
fn quoted(data: &[u8]) -> Vec<u8> {
    write_csv(&records(data), csv::QuoteStyle::Always)
}

fn lf(data: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(data)
        .replace("\r\n", "\n")
        .into_bytes()
}

fn no_final_eol(data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    while d.last().is_some_and(|b| matches!(b, b'\r' | b'\n')) {
        d.pop();
    }
    d
}

// ---------------------------------------------------------------------------------------------
// Sets in Microsoft's sample shapes (OfficeDev/O365-EDU-Tools "CSV Samples"): the same headers,
// made-up data, rows in no particular order, usernames without a domain as in the v1 samples.
// ---------------------------------------------------------------------------------------------

const V1_FULL: &[(&str, &str)] = &[
    (
        "School.csv",
        "SIS ID,Name,School Number,School NCES_ID,State ID,Grade Low,Grade High,Principal SIS ID,Principal Name,Principal Secondary Email,Address,City,State,Country,Zip,Phone,Zone
20002,Hillview Middle School,20002,2,WA,6,8,24002,Kim Ray,,2 Hill Street,Tacoma,WA,US,98402,555-010-0200,2
20001,Lakeside High School,20001,1,WA,9,12,24001,Pat Lee,,1 Lake Road,Seattle,WA,US,98101,555-010-0100,1
",
    ),
    (
        "Section.csv",
        "SIS ID,School SIS ID,Section Name,Section Number,Term SIS ID,Term Name,Term StartDate,Term EndDate,Course SIS ID,Course Name,Course Number,Course Description,Course Subject,Periods,Status
21002,20002,Geometry - Period 2,21002,22000,SY2526,8/25/2025,6/12/2026,21002,Geometry 201,201,Geometry Level 2,Math,2,Active
21001,20001,Biology - Period 1,21001,22000,SY2526,8/25/2025,6/12/2026,21001,Biology 101,101,\"Life Science, Level 1\",Science,1,Active
",
    ),
    (
        "Student.csv",
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Secondary Email,Student Number,Middle Name,Grade,Status,Birthdate,Graduation Year
23002,20002,Ben,Okoro,BOkoro,Start!2025,WA,,23002,James,07,Active,3/14/2012,2030
23001,20001,Ada,Nakamura,ANakamura,Start!2025,WA,,23001,Mae,10,Active,5/2/2009,2027
23003,20001,Cleo,Duarte,CDuarte,Start!2025,WA,,23003,,10,Active,9/30/2009,2027
",
    ),
    (
        "Teacher.csv",
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Teacher Number,Status,Middle Name,Secondary Email,Title,Qualification
24001,20001,Dana,Whitfield,DWhitfield,Teach!2025,WA,301,Active,Lee,,,
24002,20002,Eli,Brandt,EBrandt,Teach!2025,WA,302,Active,,,,
24002,20001,Eli,Brandt,EBrandt,Teach!2025,WA,302,Active,,,,
",
    ),
    (
        "StudentEnrollment.csv",
        "Section SIS ID,SIS ID
21002,23002
21001,23001
21001,23003
",
    ),
    (
        "TeacherRoster.csv",
        "Section SIS ID,SIS ID
21001,24001
21002,24002
",
    ),
];

/// "Min Required Attributes": users named by SIS ID, school and username only.
const V1_MIN: &[(&str, &str)] = &[
    ("School.csv", "SIS ID,Name\n20001,Lakeside High School\n"),
    (
        "Section.csv",
        "SIS ID,School SIS ID,Section Name\n21001,20001,Biology - Period 1\n",
    ),
    (
        "Student.csv",
        "SIS ID,School SIS ID,Username\n23001,20001,ANakamura\n23003,20001,CDuarte\n",
    ),
    (
        "Teacher.csv",
        "SIS ID,School SIS ID,Username\n24001,20001,DWhitfield\n",
    ),
    (
        "StudentEnrollment.csv",
        "Section SIS ID,SIS ID\n21001,23001\n21001,23003\n",
    ),
    ("TeacherRoster.csv", "Section SIS ID,SIS ID\n21001,24001\n"),
];

/// The retired v2: parent orgs, roles in any case and beyond student/teacher, teachers with a
/// grade, a user in two orgs.
const V2_SAMPLE: &[(&str, &str)] = &[
    (
        "orgs.csv",
        "sourcedId,name,type,parentSourcedId
30000,Riverside Schools,district,
30001,Riverside Elementary,school,30000
30002,Riverside College,college,30003
30003,State University,University,
",
    ),
    (
        "users.csv",
        "sourcedId,orgSourcedIds,givenName,familyName,username,password,role,grade
33001,30001,Ada,Nakamura,ANakamura@riverside.example,Start!2025,Student,05
33002,\"30001,30002\",Ben,Okoro,BOkoro@riverside.example,Start!2025,student,PS1
34001,30001,Dana,Whitfield,DWhitfield@riverside.example,Teach!2025,teacher,05
34002,30002,Eli,Brandt,EBrandt@riverside.example,Teach!2025,Professor,PS1
34003,30001,Fay,Moreau,FMoreau@riverside.example,Staff!2025,staff,
",
    ),
    (
        "classes.csv",
        "sourcedId,orgSourcedId,title
31001,30001,Reading 5
31002,30002,Chemistry 101
",
    ),
    (
        "enrollments.csv",
        "classSourcedId,userSourcedId,role
31001,33001,Student
31002,33002,Student
31001,34001,Teacher
31002,34002,Professor
31001,34003,Staff
",
    ),
];

/// v2.1 with every optional file: a guardian with no role, a user with two roles, a teacher with
/// a grade, classes in two sessions.
const V21_FULL: &[(&str, &str)] = &[
    (
        "orgs.csv",
        "sourcedId,name,type,parentSourcedId
40001,College of Science,college,
40002,Chemistry Department,department,40001
40003,Harbor Academy,school,40004
40004,Ministry of Learning,ministryOfEducation,
",
    ),
    (
        "users.csv",
        "sourcedId,username,givenName,familyName,password,activeDirectoryMatchId,email,phone,sms
44001,ada.n@harbor.example,Ada,Nakamura,Start!2025,ada.n@harbor.example,,,
44002,parent.n@mail.example,Ruth,Nakamura,Start!2025,,parent.n@mail.example,+15550100,+15550100
44003,ben.o@harbor.example,Ben,Okoro,Start!2025,ben.o@harbor.example,,,
44004,dana.w@harbor.example,Dana,Whitfield,Teach!2025,dana.w@harbor.example,,,
44005,eli.b@harbor.example,Eli,Brandt,Teach!2025,eli.b@harbor.example,,,
",
    ),
    (
        "roles.csv",
        "userSourcedId,orgSourcedId,role,sessionSourcedId,grade,isPrimary,roleStartDate,roleEndDate
44001,40003,student,SY2526,10,TRUE,2025-08-25,2026-06-12
44003,40003,student,SY2526,10,TRUE,2025-08-25,2026-06-12
44004,40003,teacher,SY2526,10,TRUE,2025-08-25,2026-06-12
44004,40001,student,FA2025,ps1,FALSE,2025-09-01,2025-12-15
44005,40002,professor,FA2025,,TRUE,2025-09-01,2025-12-15
44005,40003,Teacher,SY2526,10,FALSE,2025-08-25,2026-06-12
",
    ),
    (
        "classes.csv",
        "sourcedId,orgSourcedId,title,sessionSourcedIds,courseSourcedId
41001,40003,Biology 10,SY2526,C100
41002,40002,Organic Chemistry,\"FA2025,SY2526\",C200
",
    ),
    (
        "enrollments.csv",
        "classSourcedId,userSourcedId,role
41001,44001,student
41001,44003,student
41001,44004,teacher
41002,44004,student
41002,44005,professor
",
    ),
    (
        "academicSessions.csv",
        "sourcedId,title,type,schoolYear,startDate,endDate
SY2526,2025-26 School Year,schoolYear,2026,2025-08-25,2026-06-12
FA2025,Fall Semester,semester,2026,2025-09-01,2025-12-15
",
    ),
    (
        "courses.csv",
        "sourcedId,orgSourcedId,title,code,schoolYearSourcedId,subject,grade
C100,40003,Biology,BIO10,SY2526,Science,10
C200,40002,Organic Chemistry,CHEM201,SY2526,Chemistry,PS2
",
    ),
    (
        "demographics.csv",
        "userSourcedId,sex,birthDate,birthCity,birthState,birthCountry,ethnicityCodes,raceCodes
44001,female,2009-05-02,Seattle,WA,USA,,asian
44003,male,2009-03-14,Tacoma,WA,USA,hispanicOrLatinoEthnicity,
",
    ),
    (
        "userFlags.csv",
        "userSourcedId,flag\n44001,iep\n44003,freeLunch\n",
    ),
    (
        "relationships.csv",
        "userSourcedId,relationshipUserSourcedId,relationshipRole\n44001,44002,guardian\n",
    ),
];

/// sds-sync's own v1 output (what the builder writes), with a licence file.
const V1_OURS: &[(&str, &str)] = &[
    (
        "School.csv",
        "SIS ID,Name\n001,North\n002,\"South, East\"\n",
    ),
    (
        "Section.csv",
        "SIS ID,School SIS ID,Section Name\n001-M-01,001,Math\n002-E-01,002,English\n",
    ),
    (
        "Student.csv",
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password\n\
         0007,001,Ann,\"Lee, Jr.\",ann@x.org,pw\n\
         0008,002,\"Bo \"\"B\"\"\",Ng,bo@x.org,\n",
    ),
    (
        "Teacher.csv",
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password\n\
         T1,001,Tim,Ode,tim@x.org,\n\
         T1,002,Tim,Ode,tim@x.org,\n",
    ),
    (
        "StudentEnrollment.csv",
        "Section SIS ID,SIS ID\n001-M-01,0007\n002-E-01,0008\n",
    ),
    (
        "TeacherRoster.csv",
        "Section SIS ID,SIS ID\n001-M-01,T1\n002-E-01,T1\n",
    ),
    (
        "License.csv",
        "Display Name,User Principal Name,Account Sku Id\n\
         \"Ann Lee, Jr.\",ann@x.org,x:SKU\n\
         \"Bo \"\"B\"\" Ng\",bo@x.org,x:SKU\n",
    ),
];

const V21_OURS: &[(&str, &str)] = &[
    (
        "orgs.csv",
        "sourcedId,name,type\n001,North,school\n002,South,school\n",
    ),
    (
        "users.csv",
        "sourcedId,username,givenName,familyName,password\nS7,ann@x.org,Ann,Lee,\nT1,tim@x.org,Tim,Ode,pw\n",
    ),
    (
        "roles.csv",
        "userSourcedId,orgSourcedId,role\nS7,001,student\nT1,001,teacher\nT1,002,teacher\n",
    ),
    (
        "classes.csv",
        "sourcedId,orgSourcedId,title\n001-M-01,001,Math\n002-E-01,002,English\n",
    ),
    (
        "enrollments.csv",
        "classSourcedId,userSourcedId,role\n001-M-01,S7,student\n001-M-01,T1,teacher\n002-E-01,T1,teacher\n",
    ),
];

// ---------------------------------------------------------------------------------------------
// What SDS accepts.
// ---------------------------------------------------------------------------------------------

#[test]
fn microsoft_sample_shapes_validate_without_error() {
    let v1 = set(V1_FULL);
    let all = assert_clean(Format::V1, &v1, false, "v1, every optional column");
    assert!(all.is_empty(), "no warning either:\n{}", listing(&all));
    assert_clean(Format::V1, &set(V1_MIN), false, "v1 min required");
    let users_only: Set = set(V1_FULL)
        .into_iter()
        .filter(|(n, _)| ["School.csv", "Student.csv", "Teacher.csv"].contains(&n.as_str()))
        .collect();
    assert_clean(Format::V1, &users_only, false, "v1 users only");
    let lower = map_files(&v1, |n, d| (n.to_lowercase(), d.to_vec()));
    assert_clean(Format::V1, &lower, false, "v1 lower-case names");

    for (what, f) in [
        ("reordered columns", reordered as fn(&[u8]) -> Vec<u8>),
        ("quoted fields and header", quoted),
        ("LF endings", lf),
        ("no final line break", no_final_eol),
    ] {
        assert_clean(
            Format::V1,
            &map_files(&v1, |n, d| (n.to_owned(), f(d))),
            false,
            what,
        );
        assert_clean(
            Format::V2_1,
            &map_files(&set(V21_FULL), |n, d| (n.to_owned(), f(d))),
            false,
            what,
        );
    }
    let all = assert_clean(Format::V2, &set(V2_SAMPLE), false, "v2");
    assert!(all.is_empty(), "{}", listing(&all));
    let all = assert_clean(
        Format::V2_1,
        &set(V21_FULL),
        false,
        "v2.1, every optional file",
    );
    assert!(all.is_empty(), "{}", listing(&all));
    let v21_users_only: Set = set(V21_FULL)
        .into_iter()
        .filter(|(n, _)| {
            // The guardian (no role) stays someone's relation.
            ["orgs.csv", "users.csv", "roles.csv", "relationships.csv"].contains(&n.as_str())
        })
        .map(|(n, d)| {
            // Without academicSessions.csv nothing may refer to a session.
            if n == "roles.csv" {
                let rows: Vec<Vec<String>> = records(&d)
                    .into_iter()
                    .map(|r| r.into_iter().take(3).collect())
                    .collect();
                (n, write_csv(&rows, csv::QuoteStyle::Necessary))
            } else {
                (n, d)
            }
        })
        .collect();
    assert_clean(Format::V2_1, &v21_users_only, false, "v2.1 users only");
    // Our own sets are SDS sets too.
    assert_clean(Format::V1, &set(V1_OURS), false, "ours, v1");
    assert_clean(Format::V2_1, &set(V21_OURS), false, "ours, v2.1");
}

#[test]
fn tolerances_are_warnings() {
    // A byte-order mark, an unknown column, an enumeration value outside Microsoft's list, a
    // blank username, a non-CSV-conforming file name: warnings, exit 0.
    let v1 = set(V1_FULL);
    let mut bom = v1.clone();
    bom[0].1.splice(0..0, *b"\xEF\xBB\xBF");
    let all = assert_clean(Format::V1, &bom, false, "bom");
    assert_eq!(
        all.iter()
            .map(|v| (v.file.as_str(), v.line, v.rule))
            .collect::<Vec<_>>(),
        [("School.csv", Some(1), "bom")]
    );
    let extra = with(
        &v1,
        "Section.csv",
        "SIS ID,School SIS ID,Section Name,Room\n21002,20002,Geometry,B12\n21001,20001,Biology,A3\n",
    );
    let all = assert_clean(Format::V1, &extra, false, "unknown column");
    assert_eq!(all.len(), 1, "{}", listing(&all));
    assert_eq!(
        (all[0].rule, all[0].column.as_deref()),
        ("unknown_column", Some("Room"))
    );
    let v21 = with(
        &set(V21_FULL),
        "orgs.csv",
        "sourcedId,name,type,parentSourcedId\n40001,College,college,\n40002,Dept,department,40001\n40003,Harbor,SCHOOL,40004\n40004,Ministry,galaxy,\n",
    );
    let all = assert_clean(Format::V2_1, &v21, false, "unknown enumeration value");
    assert_eq!(
        all.iter().map(|v| (v.line, v.rule)).collect::<Vec<_>>(),
        [(Some(5), "enum")]
    );
    assert!(all[0].message.contains("galaxy"), "{}", all[0]);
    let blank = with(
        &v1,
        "Teacher.csv",
        "SIS ID,School SIS ID,Username\n24001,20001,\n24002,20002,EBrandt\n",
    );
    let all = assert_clean(Format::V1, &blank, false, "blank username");
    assert_eq!(
        all.iter()
            .map(|v| (v.file.as_str(), v.line, v.column.as_deref(), v.severity))
            .collect::<Vec<_>>(),
        [("Teacher.csv", Some(2), Some("Username"), Severity::Warning)]
    );
    let stray = {
        let mut s = v1.clone();
        s.push(("Notes.csv".into(), b"a,b\r\n".to_vec()));
        s
    };
    let all = assert_clean(Format::V1, &stray, false, "a stray file");
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].file.as_str(), all[0].rule),
        ("Notes.csv", "file_name")
    );
}

// ---------------------------------------------------------------------------------------------
// What SDS rejects: one broken set per rule.
// ---------------------------------------------------------------------------------------------

type Err = (String, Option<u64>, &'static str);

fn e(file: &str, line: Option<u64>, rule: &'static str) -> Err {
    (file.to_owned(), line, rule)
}

#[test]
fn a_missing_required_file_or_half_a_group() {
    let v1 = set(V1_FULL);
    assert_eq!(
        errs(Format::V1, &without(&v1, "Teacher.csv"), false),
        // The roster's teachers are not reported again: Teacher.csv is not there to check.
        [e("Teacher.csv", None, "file_set")]
    );
    assert_eq!(
        errs(Format::V1, &without(&v1, "TeacherRoster.csv"), false),
        [e("TeacherRoster.csv", None, "file_set")]
    );
    assert_eq!(
        errs(Format::V2_1, &without(&set(V21_FULL), "roles.csv"), false),
        [e("roles.csv", None, "file_set")]
    );
    // An optional file another file refers to: one error per referring column.
    assert_eq!(
        errs(Format::V2_1, &without(&set(V21_FULL), "courses.csv"), false),
        [e("classes.csv", Some(2), "file_set")]
    );
    // v2.1 names are exact.
    let renamed = map_files(&set(V21_FULL), |n, d| {
        (
            if n == "users.csv" {
                "Users.csv".into()
            } else {
                n.into()
            },
            d.to_vec(),
        )
    });
    let got = errs(Format::V2_1, &renamed, false);
    assert!(got.contains(&e("Users.csv", None, "file_name")), "{got:?}");
    assert!(got.contains(&e("users.csv", None, "file_set")), "{got:?}");
}

#[test]
fn headers_are_matched_by_name() {
    let v1 = set(V1_FULL);
    // No Username column at all.
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "Student.csv",
            "SIS ID,School SIS ID,First Name\n23002,20002,Ben\n23001,20001,Ada\n23003,20001,Cleo\n",
        ),
        false,
    );
    assert_eq!(got, [e("Student.csv", Some(1), "header")]);
    // Header names are case-sensitive, and the message says so.
    let bad = with(
        &v1,
        "Student.csv",
        "Sis ID,School SIS ID,Username\n23002,20002,B\n23001,20001,A\n23003,20001,C\n",
    );
    let all = check(Format::V1, &bad, false);
    let header: Vec<&Violation> = errors(&all).collect();
    assert_eq!(header.len(), 1, "{}", listing(&all));
    assert_eq!(header[0].column.as_deref(), Some("SIS ID"));
    assert!(
        header[0].message.contains("case-sensitive"),
        "{}",
        header[0]
    );
    // Without its ID column Student.csv provides no IDs: enrollments are not reported (no
    // cascade).
    assert!(
        all.iter().all(|v| v.file == "Student.csv"),
        "{}",
        listing(&all)
    );
    // A column twice.
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "School.csv",
            "SIS ID,Name,Name\n20002,A,A\n20001,B,B\n",
        ),
        false,
    );
    assert_eq!(got, [e("School.csv", Some(1), "header")]);
}

#[test]
fn required_values_and_field_counts() {
    let v1 = set(V1_FULL);
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "Section.csv",
            "SIS ID,School SIS ID,Section Name\n21002,20002,\n21001,20001,Biology\n",
        ),
        false,
    );
    assert_eq!(got, [e("Section.csv", Some(2), "required")]);
    // One row with a field too many is one error: the enrollment of its student is not
    // reported again, and no other row is misread.
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "Student.csv",
            "SIS ID,School SIS ID,Username\n23002,20002,BOkoro\n23001,20001,ANakamura,extra\n23003,20001,CDuarte\n",
        ),
        false,
    );
    assert_eq!(got, [e("Student.csv", Some(3), "field_count")]);
    // A file with nothing in it.
    let got = errs(Format::V1, &with(&v1, "School.csv", ""), false);
    assert_eq!(got, [e("School.csv", None, "empty")]);
}

#[test]
fn ids_unique_and_usernames_unique_ignoring_case() {
    let v1 = set(V1_FULL);
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "School.csv",
            "SIS ID,Name\n20002,Hillview\n20001,Lakeside\n20002,Hillview Annex\n",
        ),
        false,
    );
    assert_eq!(got, [e("School.csv", Some(4), "unique")]);
    // A teacher may be listed once per school, not twice at one school.
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "Teacher.csv",
            "SIS ID,School SIS ID,Username\n24001,20001,DW\n24002,20002,EB\n24002,20002,EB\n",
        ),
        false,
    );
    assert_eq!(got, [e("Teacher.csv", Some(4), "unique")]);
    // A teacher whose username is a student's (ignoring case).
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "Teacher.csv",
            "SIS ID,School SIS ID,Username\n24001,20001,anakamura\n24002,20002,EBrandt\n",
        ),
        false,
    );
    assert_eq!(got, [e("Teacher.csv", Some(2), "unique_username")]);
    // Two users of one file.
    let got = errs(
        Format::V2_1,
        &with(
            &set(V21_FULL),
            "users.csv",
            "sourcedId,username,givenName,familyName,email\n44001,ada@x.example,A,N,\n44002,p@x.example,R,N,p@x.example\n44003,ADA@X.example,B,O,\n44004,d@x.example,D,W,\n44005,e@x.example,E,B,\n",
        ),
        false,
    );
    assert_eq!(got, [e("users.csv", Some(4), "unique_username")]);
}

#[test]
fn references_resolve() {
    let v1 = set(V1_FULL);
    let all = check(
        Format::V1,
        &with(
            &v1,
            "StudentEnrollment.csv",
            "Section SIS ID,SIS ID\n21002,23002\n29999,23001\n21001,24001\n",
        ),
        false,
    );
    let got: Vec<(u64, Option<&str>)> = errors(&all)
        .map(|v| (v.line.unwrap_or(0), v.column.as_deref()))
        .collect();
    assert_eq!(got, [(3, Some("Section SIS ID")), (4, Some("SIS ID"))]);
    // A teacher in the student enrollments is the wrong kind of user, and the message says so.
    assert!(
        errors(&all).any(|v| v.message.contains("wrong kind of user")),
        "{}",
        listing(&all)
    );
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "Section.csv",
            "SIS ID,School SIS ID,Section Name\n21002,20002,G\n21001,20009,B\n",
        ),
        false,
    );
    assert_eq!(got, [e("Section.csv", Some(3), "reference")]);
    // v2: every org of a user's list, and the list itself.
    let got = errs(
        Format::V2,
        &with(
            &set(V2_SAMPLE),
            "users.csv",
            "sourcedId,orgSourcedIds,role\n33001,\"30001,39999\",student\n33002,\"30001,,30002\",student\n34001,\"30001,30001\",teacher\n34002,30002,professor\n34003,30001,staff\n",
        ),
        false,
    );
    // givenName, familyName and username are missing from the header.
    assert_eq!(
        got,
        [
            e("users.csv", Some(1), "header"),
            e("users.csv", Some(1), "header"),
            e("users.csv", Some(1), "header"),
            e("users.csv", Some(2), "reference"),
            e("users.csv", Some(3), "list"),
            e("users.csv", Some(4), "list"),
        ]
    );
    // v2.1: a parent org, a session of a class list, a course.
    let got = errs(
        Format::V2_1,
        &with(
            &set(V21_FULL),
            "classes.csv",
            "sourcedId,orgSourcedId,title,sessionSourcedIds,courseSourcedId\n41001,40003,Bio,\"SY2526,XX\",C100\n41002,40002,Chem,FA2025,C999\n",
        ),
        false,
    );
    assert_eq!(
        got,
        [
            e("classes.csv", Some(2), "reference"),
            e("classes.csv", Some(3), "reference")
        ]
    );
    let got = errs(
        Format::V2_1,
        &with(
            &set(V21_FULL),
            "orgs.csv",
            "sourcedId,name,type,parentSourcedId\n40001,C,college,\n40002,D,department,40009\n40003,H,school,40004\n40004,M,ministryOfEducation,\n",
        ),
        false,
    );
    assert_eq!(got, [e("orgs.csv", Some(3), "reference")]);
}

#[test]
fn roles_and_users_of_v2_and_v21() {
    // Enrolled with a role the user does not have.
    let got = errs(
        Format::V2,
        &with(
            &set(V2_SAMPLE),
            "enrollments.csv",
            "classSourcedId,userSourcedId,role\n31001,33001,teacher\n31002,33002,Student\n",
        ),
        false,
    );
    assert_eq!(got, [e("enrollments.csv", Some(2), "role")]);
    // A user whose role is outside Microsoft's list (a warning in users.csv) is not a student
    // or a teacher: enrolled as one, it is flagged; enrolled with its own role, it is not.
    let got = errs(
        Format::V2,
        &with(
            &with(
                &set(V2_SAMPLE),
                "users.csv",
                "sourcedId,orgSourcedIds,givenName,familyName,username,password,role,grade\n\
                 33001,30001,Ada,Nakamura,ANakamura@riverside.example,Start!2025,Student,5\n\
                 33002,30001,Ben,Okoro,BOkoro@riverside.example,Start!2025,janitor,\n\
                 34001,30001,Dana,Whitfield,DWhitfield@riverside.example,Teach!2025,Professor,\n",
            ),
            "enrollments.csv",
            "classSourcedId,userSourcedId,role\n31001,33001,Student\n31001,33002,student\n\
             31001,34001,teacher\n31002,34001,Professor\n",
        ),
        false,
    );
    assert_eq!(
        got,
        [
            e("enrollments.csv", Some(3), "role"),
            e("enrollments.csv", Some(4), "role")
        ]
    );
    // A blank role is a missing required value; an unknown one only a warning.
    let broken = with(
        &set(V21_FULL),
        "enrollments.csv",
        "classSourcedId,userSourcedId,role\n41001,44001,\n41001,44003,wizard\n",
    );
    let all = check(Format::V2_1, &broken, false);
    assert_eq!(
        all.iter()
            .map(|v| (v.line, v.rule, v.severity))
            .collect::<Vec<_>>(),
        [
            (Some(2), "required", Severity::Error),
            (Some(3), "enum", Severity::Warning)
        ]
    );
    // v2.1: a username must be user@domain; a user with no role must be someone's relation.
    let got = errs(
        Format::V2_1,
        &with(
            &set(V21_FULL),
            "users.csv",
            "sourcedId,username,givenName,familyName,email\n44001,ada,A,N,\n44002,p@x.example,R,N,p@x.example\n44003,b@x.example,B,O,\n44004,d@x.example,D,W,\n44005,e@x.example,E,B,\n44006,lost@x.example,L,O,\n",
        ),
        false,
    );
    assert_eq!(
        got,
        [
            e("users.csv", Some(7), "no_role"),
            e("users.csv", Some(2), "username"),
        ]
    );
}

/// Learn: givenName, familyName and email are required for users that have guardian roles in
/// relationships.csv (other users need no email).
#[test]
fn guardians_need_names_and_an_email() {
    // The guardian 44002 without an email; the students without one are fine.
    let users = "sourcedId,username,givenName,familyName,email\n44001,ada@x.example,Ada,N,\n\
                 44002,p@x.example,Ruth,N,\n44003,b@x.example,Ben,O,\n44004,d@x.example,Dana,W,\n\
                 44005,e@x.example,Eli,B,\n";
    let got = errs(
        Format::V2_1,
        &with(&set(V21_FULL), "users.csv", users),
        true,
    );
    assert!(
        got.contains(&e("relationships.csv", Some(2), "guardian_contact")),
        "{got:?}"
    );
    // No email column at all: the same.
    let users = "sourcedId,username,givenName,familyName\n44001,ada@x.example,Ada,N\n\
                 44002,p@x.example,Ruth,N\n44003,b@x.example,Ben,O\n44004,d@x.example,Dana,W\n\
                 44005,e@x.example,Eli,B\n";
    let got = errs(
        Format::V2_1,
        &with(&set(V21_FULL), "users.csv", users),
        false,
    );
    assert_eq!(got, [e("relationships.csv", Some(2), "guardian_contact")]);
    // A blank family name too; with all three the set is clean (Microsoft's own shape).
    let users = "sourcedId,username,givenName,familyName,email\n44001,ada@x.example,Ada,N,\n\
                 44002,p@x.example,Ruth,,p@x.example\n44003,b@x.example,Ben,O,\n\
                 44004,d@x.example,Dana,W,\n44005,e@x.example,Eli,B,\n";
    let got = errs(
        Format::V2_1,
        &with(&set(V21_FULL), "users.csv", users),
        false,
    );
    assert_eq!(got, [e("relationships.csv", Some(2), "guardian_contact")]);
    assert_clean(
        Format::V2_1,
        &set(V21_FULL),
        false,
        "Microsoft's v2.1 shape",
    );
}

#[test]
fn encoding_and_line_breaks() {
    let v1 = set(V1_FULL);
    let mut bad = with(&v1, "School.csv", "SIS ID,Name\n20002,Hill\n20001,X\n");
    if let Some((_, d)) = bad.iter_mut().find(|(n, _)| n == "School.csv") {
        let at = d.len() - 3;
        d[at] = 0xFF;
    }
    assert_eq!(
        errs(Format::V1, &bad, false),
        [e("School.csv", Some(3), "utf8")]
    );
    let got = errs(
        Format::V1,
        &with(
            &v1,
            "School.csv",
            "SIS ID,Name\n20002,\"Hill\nview\"\n20001,Lakeside\n",
        ),
        false,
    );
    assert_eq!(got, [e("School.csv", Some(2), "line_break")]);
}

#[test]
fn license_follows_students() {
    let ours = set(V1_OURS);
    assert_clean(Format::V1, &ours, true, "ours");
    let cases: &[(&str, &[&str])] = &[
        // No student is "Ann Lee" (the display name lost its suffix).
        (
            "Ann Lee,ann@x.org,x:SKU\n\"Bo \"\"B\"\" Ng\",bo@x.org,x:SKU\n",
            &["license", "license"],
        ),
        // Not an address; a second SKU.
        (
            "\"Ann Lee, Jr.\",ann,x:SKU\n\"Bo \"\"B\"\" Ng\",bo@x.org,y:SKU\n",
            &["license", "license", "license", "license"],
        ),
        // One UPN twice (ignoring case).
        (
            "\"Ann Lee, Jr.\",ann@x.org,x:SKU\n\"Bo \"\"B\"\" Ng\",ANN@x.org,x:SKU\n",
            &["license", "license", "license"],
        ),
    ];
    for (rows, rules) in cases {
        let text = format!("Display Name,User Principal Name,Account Sku Id\n{rows}");
        let got: Vec<&str> = errs(Format::V1, &with(&ours, "License.csv", &text), false)
            .into_iter()
            .map(|(_, _, r)| r)
            .collect();
        assert_eq!(&got, rules, "{rows}");
    }
}

#[test]
fn findings_of_one_kind_are_capped() {
    let mut text = String::from("Section SIS ID,SIS ID\n");
    for i in 0..30 {
        text.push_str(&format!("21001,T{i}\n"));
    }
    let all = check(
        Format::V1,
        &with(&set(V1_FULL), "TeacherRoster.csv", &text),
        false,
    );
    assert_eq!(all.len(), MAX_PER_RULE as usize + 1, "{}", listing(&all));
    assert!(
        all[all.len() - 1].message.contains("10 more"),
        "{}",
        listing(&all)
    );
}

#[test]
fn display_names_file_line_and_column() {
    let v = Violation {
        file: "Student.csv".into(),
        line: Some(7),
        column: Some("Username".into()),
        message: "blank".into(),
        severity: Severity::Warning,
        rule: "blank",
    };
    assert_eq!(v.to_string(), "warning: Student.csv:7 [Username]: blank");
}

// ---------------------------------------------------------------------------------------------
// Strict: sds-sync's own conventions.
// ---------------------------------------------------------------------------------------------

#[test]
fn strict_accepts_our_output_and_nothing_else() {
    assert_clean(Format::V1, &set(V1_OURS), true, "ours v1");
    assert_clean(Format::V2_1, &set(V21_OURS), true, "ours v2.1");
    // Microsoft's shapes are fine for SDS but not sds-sync's canonical form.
    let got = errs(Format::V1, &set(V1_FULL), true);
    assert!(got.iter().any(|e| e.2 == "header"), "{got:?}");
    assert!(got.iter().any(|e| e.2 == "sorted"), "{got:?}");

    let ours = set(V1_OURS);
    let rules = |s: &Set| -> Vec<&'static str> {
        let mut r: Vec<&str> = errs(Format::V1, s, true).into_iter().map(|e| e.2).collect();
        r.dedup();
        r
    };
    let one = |f: fn(&[u8]) -> Vec<u8>| {
        map_files(&ours, |n, d| {
            (
                n.to_owned(),
                if n == "School.csv" { f(d) } else { d.to_vec() },
            )
        })
    };
    assert_eq!(rules(&one(lf)), ["crlf"]);
    assert_eq!(rules(&one(no_final_eol)), ["crlf"]);
    assert_eq!(rules(&one(quoted)), ["quoting"]);
    assert_eq!(rules(&one(reordered)), ["header"]);
    let mut bom = ours.clone();
    bom[0].1.splice(0..0, *b"\xEF\xBB\xBF");
    assert_eq!(rules(&bom), ["bom"]);
    assert_eq!(
        errs(
            Format::V1,
            &with(&ours, "School.csv", "SIS ID,Name\n002,South\n001,North\n"),
            true
        ),
        [e("School.csv", Some(3), "sorted")]
    );
    assert_eq!(
        rules(&with(
            &ours,
            "School.csv",
            "SIS ID,Name\n001,North\n\n002,South\n"
        )),
        ["blank_line"]
    );
    assert_eq!(
        rules(&with(
            &ours,
            "School.csv",
            "SIS ID,Name\n001,\" North\"\n002,South\n"
        )),
        ["whitespace"]
    );
    // Two rows of one student (SDS would take a student at two schools; we write one).
    let two = with(
        &without(&ours, "License.csv"),
        "Student.csv",
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password\n0007,001,Ann,\"Lee, Jr.\",ann@x.org,pw\n0007,002,Ann,\"Lee, Jr.\",ann@x.org,pw\n0008,002,\"Bo \"\"B\"\"\",Ng,bo@x.org,\n",
    );
    assert_eq!(
        errs(Format::V1, &two, true),
        [e("Student.csv", Some(3), "sorted")]
    );
    assert!(errs(Format::V1, &two, false).is_empty());
    let mut stray = ours.clone();
    stray.push(("Notes.csv".into(), b"a\r\n".to_vec()));
    assert_eq!(
        errs(Format::V1, &stray, true),
        [e("Notes.csv", None, "file_name")]
    );
}

// ---------------------------------------------------------------------------------------------
// The gate's path: rows as rendered.
// ---------------------------------------------------------------------------------------------

/// Feeds a set through `FileCheck` as rows (header from the table), as the publish gate does.
fn check_rows(format: Format, files: &[(&str, Vec<Vec<&str>>)]) -> Vec<Violation> {
    let mut set = SetCheck::new(format, true);
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    for level in set.plan(&names) {
        for planned in level {
            let mut check = set.file(&planned);
            check.header(&planned.spec.header());
            if let Some((_, rows)) = files.iter().find(|(n, _)| *n == planned.name) {
                for r in rows {
                    check.row(r).expect("row");
                }
            }
            let done = check.finish();
            set.absorb(done);
        }
    }
    set.finish()
}

#[test]
fn rows_fed_by_the_gate_are_judged_like_files() {
    let good: Vec<(&str, Vec<Vec<&str>>)> = vec![
        ("School.csv", vec![vec!["001", "North"]]),
        ("Section.csv", vec![vec!["001-M", "001", "Math"]]),
        (
            "Student.csv",
            vec![
                vec!["1", "001", "A", "B", "a@x.org", ""],
                vec!["2", "001", "C", "D", "c@x.org", ""],
            ],
        ),
        (
            "Teacher.csv",
            vec![vec!["T", "001", "E", "F", "e@x.org", ""]],
        ),
        (
            "StudentEnrollment.csv",
            vec![vec!["001-M", "1"], vec!["001-M", "2"]],
        ),
        ("TeacherRoster.csv", vec![vec!["001-M", "T"]]),
    ];
    let all = check_rows(Format::V1, &good);
    assert!(all.is_empty(), "{}", listing(&all));
    // Each rule still bites on rows: unsorted, blank required, dangling, shared username.
    let mut bad = good.clone();
    bad[2].1 = vec![
        vec!["2", "001", "C", "D", "a@X.org", ""],
        vec!["1", "", "A", "B", "a@x.org", ""],
    ];
    bad[4].1 = vec![vec!["001-M", "1"], vec!["001-M", "3"]];
    let got: Vec<(String, Option<u64>, &str)> = check_rows(Format::V1, &bad)
        .into_iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| (v.file, v.line, v.rule))
        .collect();
    assert_eq!(
        got,
        [
            e("Student.csv", Some(3), "required"),
            e("Student.csv", Some(3), "sorted"),
            e("Student.csv", Some(3), "unique_username"),
            e("StudentEnrollment.csv", Some(3), "reference"),
        ]
    );
}

#[test]
fn plan_orders_files_after_what_they_refer_to() {
    let names = |levels: Vec<Vec<Planned>>| -> Vec<Vec<String>> {
        levels
            .into_iter()
            .map(|l| l.into_iter().map(|p| p.name).collect())
            .collect()
    };
    let files: Vec<&str> = Format::V1.files(true).iter().map(|f| f.name).collect();
    assert_eq!(
        names(SetCheck::new(Format::V1, true).plan(&files)),
        [
            vec!["School.csv"],
            vec!["Section.csv", "Student.csv", "Teacher.csv"],
            vec!["StudentEnrollment.csv", "TeacherRoster.csv", "License.csv"],
        ]
    );
    let all: Vec<&str> = Format::V2_1.table().iter().map(|f| f.name).collect();
    let levels = names(SetCheck::new(Format::V2_1, false).plan(&all));
    assert_eq!(levels.iter().map(Vec::len).sum::<usize>(), all.len());
    let level_of = |n: &str| levels.iter().position(|l| l.iter().any(|x| x == n));
    for f in Format::V2_1.table() {
        for r in f.references.iter().filter(|r| r.file != f.name) {
            assert!(
                level_of(r.file) < level_of(f.name),
                "{} after {}",
                f.name,
                r.file
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The builder's output on random records full of hard values passes strict validation: with
// the rows SDS would reject dropped by the builder, nothing is tolerated.
// ---------------------------------------------------------------------------------------------

mod builder_property {
    use super::*;
    use crate::{Builder, Entity, ExportOptions, UsernameRule};

    /// xorshift64: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
        /// A value, blank values sometimes as NULL.
        fn value(&mut self, xs: &[&str]) -> Option<String> {
            let v = self.pick(xs);
            (!(v.is_empty() && self.next() & 1 == 0)).then(|| v.to_owned())
        }
    }

    const USER_IDS: &[&str] = &[
        "1", "01", "A", "a", "1-2", "x,y", " 1", "1 ", "2", "10", "9", "\u{e9}", "\"q\"", "a\0b",
        "1\r2", "T9",
    ];
    const SCHOOLS: &[&str] = &["001", "002", "01", "1", "003 ", "", "a,b"];
    const NAMES: &[&str] = &[
        "Ann",
        "O'Brien",
        "Reyes, Jr.",
        "Robert \"B\"",
        "Mary\nKate",
        "Mary\r\nKate",
        " x ",
        "",
        "\u{a0}nb\u{a0}",
        "Zo\u{eb}",
        "a  b",
        "\"",
        ",",
        "\t",
        "x\0",
        "\r",
        "a\u{2028}b",
    ];
    const EMAILS: &[&str] = &[
        "a@x.org",
        "A@X.org",
        "b@x.org",
        "",
        " f@x.org ",
        "g@x.org",
        "nodomain",
        "@x.org",
        "Zo\u{eb}@x.org",
        "ZO\u{cb}@X.org",
        "h @x.org",
    ];
    const COURSES: &[&str] = &["M", "M-1", "E", "a,b", ""];
    const SECTIONS: &[&str] = &["01", "1", "1-", ""];

    fn build(rng: &mut Rng, opts: &ExportOptions) -> Option<crate::Built> {
        let mut b = Builder::new(opts.clone());
        let n = 1 + rng.below(12);
        for _ in 0..n {
            let row = vec![rng.value(SCHOOLS), rng.value(NAMES)];
            b.push(Entity::Schools, row);
        }
        for _ in 0..2 * n {
            let row = vec![
                rng.value(USER_IDS),
                rng.value(SCHOOLS),
                rng.value(NAMES),
                rng.value(NAMES),
                rng.value(EMAILS),
                rng.value(&["pw", "", "p,w"]),
                rng.value(&["7", "", "07"]),
            ];
            b.push(Entity::Students, row);
        }
        for _ in 0..n {
            let row = vec![
                rng.value(USER_IDS),
                rng.value(SCHOOLS),
                rng.value(NAMES),
                rng.value(NAMES),
                rng.value(EMAILS),
                rng.value(&["pw", ""]),
            ];
            b.push(Entity::Teachers, row);
        }
        for _ in 0..n {
            let row = vec![
                rng.value(SCHOOLS),
                rng.value(COURSES),
                rng.value(SECTIONS),
                rng.value(NAMES),
            ];
            b.push(Entity::Sections, row);
        }
        for entity in [Entity::StudentEnrollments, Entity::TeacherRosters] {
            for _ in 0..3 * n {
                let row = vec![
                    rng.value(SCHOOLS),
                    rng.value(COURSES),
                    rng.value(SECTIONS),
                    rng.value(USER_IDS),
                ];
                b.push(entity, row);
            }
        }
        // A student and a teacher with one ID is refused (BuildError), not written.
        b.finish().ok()
    }

    #[test]
    fn builder_output_on_hard_random_input_passes_strict_validation() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let rules = [
            UsernameRule::Email,
            UsernameRule::EmailLocalPart,
            UsernameRule::Blank,
        ];
        let prefixes = ["", "", "S", "s-", "T", "t-"];
        let mut checked = [0; 3];
        for round in 0..600 {
            let format = Format::ALL[rng.below(3)];
            let opts = ExportOptions {
                format,
                schools: (0..rng.below(3))
                    .map(|_| rng.pick(SCHOOLS).to_owned())
                    .collect(),
                username: if format == Format::V2_1 {
                    UsernameRule::Email
                } else {
                    rules[rng.below(3)]
                },
                include_passwords: rng.next() & 1 == 0,
                license_file: format == Format::V1 && rng.next() & 1 == 0,
                account_sku_id: "x:SKU".into(),
                student_id_prefix: rng.pick(&prefixes).into(),
                teacher_id_prefix: rng.pick(&prefixes).into(),
                ..ExportOptions::default()
            };
            let Some(built) = build(&mut rng, &opts) else {
                continue;
            };
            checked[Format::ALL.iter().position(|f| *f == format).unwrap_or(0)] += 1;
            let mut files = Vec::new();
            for spec in built.files() {
                let mut out = Vec::new();
                built
                    .write_file(spec.name, &mut out)
                    .expect("write to a Vec");
                files.push((spec.name, out));
            }
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
            let found = validate_set(format, &refs, true);
            let wrong: Vec<&Violation> = errors(&found).collect();
            assert!(
                wrong.is_empty(),
                "round {round}, {opts:?}:\n{}",
                wrong.iter().map(|e| format!("  {e}\n")).collect::<String>()
            );
            // The gate's path (rows as rendered, no bytes re-read) finds the same: nothing.
            let mut set = SetCheck::new(format, true);
            let names: Vec<&str> = built.files().iter().map(|f| f.name).collect();
            for level in set.plan(&names) {
                for planned in level {
                    let mut check = set.file(&planned);
                    check.header(&planned.spec.header());
                    check.expect_rows(built.row_count(planned.spec.name));
                    built
                        .write_file_to(planned.spec.name, std::io::sink(), &mut check)
                        .expect("render");
                    let done = check.finish();
                    set.absorb(done);
                }
            }
            let gate = set.finish();
            assert!(
                errors(&gate).next().is_none(),
                "round {round} (gate), {opts:?}:\n{}",
                listing(&gate)
            );
        }
        assert!(checked.iter().all(|&n| n > 50), "{checked:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// No finding echoes a password (the gate logs findings at ERROR and stores them for `status`).
// ---------------------------------------------------------------------------------------------

#[test]
fn no_finding_echoes_a_password() {
    const SECRET: &str = "Welcome-2026!SECRET";
    let ours = set(V1_OURS);
    let student = |row: &str| {
        with(
            &without(&ours, "License.csv"),
            "Student.csv",
            &format!(
                "SIS ID,School SIS ID,First Name,Last Name,Username,Password\n{row}\n\
                 0008,002,\"Bo \"\"B\"\"\",Ng,bo@x.org,\n"
            ),
        )
    };
    // Over-quoted (the password and the first name), and padded with white space.
    let quoted = student(&format!(
        "0007,001,\"Ann\",\"Lee, Jr.\",ann@x.org,\"{SECRET}\""
    ));
    let padded = student(&format!(
        "0007,001,Ann,\"Lee, Jr.\",ann@x.org,\" {SECRET}\""
    ));
    for (what, files, rule) in [
        ("quoted", &quoted, "quoting"),
        ("padded", &padded, "whitespace"),
    ] {
        let all = check(Format::V1, files, true);
        let found: Vec<&Violation> = all.iter().filter(|v| v.rule == rule).collect();
        assert_eq!(found.len(), 1, "{what}:\n{}", listing(&all));
        for v in &all {
            assert!(!v.to_string().contains(SECRET), "{what}: {v}");
        }
        assert_eq!(found[0].line, Some(2), "{what}");
    }
    let quoting = check(Format::V1, &quoted, true)
        .into_iter()
        .find(|v| v.rule == "quoting")
        .expect("quoting finding");
    // It names the over-quoted columns instead of printing the line.
    assert!(quoting.message.contains("\"First Name\""), "{quoting}");
    assert!(quoting.message.contains("\"Password\""), "{quoting}");
    assert!(!quoting.message.contains("Ann"), "{quoting}");
    // A name (not a secret) is still shown where it helps.
    let name = student("0007,001,\" Ann\",\"Lee, Jr.\",ann@x.org,pw");
    let found = check(Format::V1, &name, true);
    assert!(
        found
            .iter()
            .any(|v| v.rule == "whitespace" && v.message.contains("\" Ann\"")),
        "{}",
        listing(&found)
    );
    // The gate's path (rows as rendered) too.
    let rows = check_rows(
        Format::V1,
        &[
            ("School.csv", vec![vec!["001", "North"]]),
            (
                "Student.csv",
                vec![vec![
                    "0007",
                    "001",
                    "Ann",
                    "Lee",
                    "ann@x.org",
                    " Welcome-2026!SECRET",
                ]],
            ),
        ],
    );
    assert!(
        rows.iter().any(|v| v.rule == "whitespace"),
        "{}",
        listing(&rows)
    );
    for v in &rows {
        assert!(!v.to_string().contains(SECRET), "{v}");
    }
}

/// A grade outside Microsoft's codes (v1 Student.csv `Grade`, v2 users.csv, v2.1 roles.csv and
/// courses.csv `grade`) is a warning naming file, line, column and the codes, never an error;
/// the codes themselves, in any letter case, pass.
#[test]
fn a_grade_outside_the_codes_is_a_warning_naming_the_codes() {
    let grades = |all: &[Violation]| -> Vec<(String, Option<u64>, Option<String>, Severity)> {
        let mut got: Vec<_> = all
            .iter()
            .filter(|v| v.rule == "enum")
            .map(|v| (v.file.clone(), v.line, v.column.clone(), v.severity))
            .collect();
        got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        got
    };
    let w = |file: &str, line: u64, column: &str| {
        (
            file.to_owned(),
            Some(line),
            Some(column.to_owned()),
            Severity::Warning,
        )
    };
    // v1: the fixture's grades are codes (`07`, `10`); `7` as a SIS writes it is not.
    let all = assert_clean(Format::V1, &set(V1_FULL), false, "v1 codes");
    assert_eq!(grades(&all), [], "{}", listing(&all));
    let sis_way = with(
        &set(V1_FULL),
        "Student.csv",
        "SIS ID,School SIS ID,Username,Grade\n23002,20002,BOkoro,7\n23001,20001,ANakamura,10\n23003,20001,CDuarte,\n",
    );
    let all = assert_clean(Format::V1, &sis_way, false, "v1 grades");
    assert_eq!(
        grades(&all),
        [w("Student.csv", 2, "Grade")],
        "{}",
        listing(&all)
    );
    let message = &all
        .iter()
        .find(|v| v.rule == "enum")
        .expect("grade")
        .message;
    for part in ["\"7\"", "grade", "kg", "07", "ug", "[export.grade_map]"] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    let upper = with(
        &set(V1_FULL),
        "Student.csv",
        "SIS ID,School SIS ID,Username,Grade\n23002,20002,BOkoro,07\n23001,20001,ANakamura,KG\n23003,20001,CDuarte,\n",
    );
    let all = assert_clean(Format::V1, &upper, false, "v1 codes in capitals");
    assert_eq!(grades(&all), [], "{}", listing(&all));
    // v2: the fixture's grades are codes (`05`, `PS1` in any case); `5` is not.
    let all = assert_clean(Format::V2, &set(V2_SAMPLE), false, "v2 codes");
    assert_eq!(grades(&all), [], "{}", listing(&all));
    let users = V2_SAMPLE
        .iter()
        .find(|(n, _)| *n == "users.csv")
        .map(|(_, t)| t.replace("Start!2025,Student,05", "Start!2025,Student,5"))
        .expect("fixture");
    let all = assert_clean(
        Format::V2,
        &with(&set(V2_SAMPLE), "users.csv", &users),
        false,
        "v2 grades",
    );
    assert_eq!(
        grades(&all),
        [w("users.csv", 2, "grade")],
        "{}",
        listing(&all)
    );
    // v2.1: roles and courses.
    let fixture = |name: &str| -> String {
        V21_FULL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).to_owned())
            .expect("fixture")
    };
    let roles = with(
        &set(V21_FULL),
        "roles.csv",
        &fixture("roles.csv").replace(
            "44003,40003,student,SY2526,10,",
            "44003,40003,student,SY2526,Grade 10,",
        ),
    );
    let roles = with(
        &roles,
        "courses.csv",
        &fixture("courses.csv").replace("Science,10", "Science,sophomore"),
    );
    let all = assert_clean(Format::V2_1, &roles, false, "v2.1 grades");
    assert_eq!(
        grades(&all),
        [w("courses.csv", 2, "grade"), w("roles.csv", 3, "grade")],
        "{}",
        listing(&all)
    );
}
