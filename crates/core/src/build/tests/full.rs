//! The full SDS formats: optional columns, the optional queries (academic sessions, courses,
//! guardians), the district org, grade mapping, dates and enumerations. Every expected file is
//! written out by hand from the records of each test.

use super::*;
use crate::validate::{Severity, validate_set};

fn session(v: &[&str]) -> Record {
    rec(Entity::AcademicSessions, v)
}
fn course(v: &[&str]) -> Record {
    rec(Entity::Courses, v)
}
fn guardian(v: &[&str]) -> Record {
    rec(Entity::Guardians, v)
}

fn full(format: Format) -> ExportOptions {
    ExportOptions {
        format,
        optional_columns: true,
        grade_map: [("9", "09"), ("K", "kg"), ("7", "07")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        ..ExportOptions::default()
    }
}

fn with_queries(mut o: ExportOptions, queries: &[Entity]) -> ExportOptions {
    o.optional_queries = queries.to_vec();
    o
}

/// No error from the strict validator (our own conventions included) on every file.
#[track_caller]
fn assert_strictly_valid(built: &Built) {
    let files: Vec<(String, Vec<u8>)> = all_bytes(built);
    let set: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let errors: Vec<String> = validate_set(built.format(), &set, true)
        .into_iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| v.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// A school, a student, a teacher and a section with every optional column of the contract.
fn v1_records() -> Vec<Record> {
    vec![
        school(&[
            "001",
            "North High",
            "N1",
            "530000100001",
            "WA-1",
            "9",
            "12",
            "P1",
            "Pat Gomez",
            "p.gomez@x.example",
            "1 Main St, Suite 2",
            "Port",
            "WA",
            "US",
            "98001",
            "+1 555 0100",
        ]),
        student(&[
            "s1",
            "001",
            "Ann",
            "Lee",
            "ann@x.example",
            "pw",
            "9",
            "Marie",
            "WA88",
            "s1",
            "Active",
            "4/2/2010",
            "2028",
            "ann@home.example",
            "+1 555 1111",
        ]),
        teacher(&[
            "t1",
            "001",
            "Tom",
            "Cho",
            "tom@x.example",
            NULL,
            "J",
            "C-1",
            "1001",
            "Active",
            "Math Teacher",
            "M.Ed.",
            NULL,
            "+1 555 2222",
        ]),
        section(&[
            "001",
            "MATH",
            "01",
            "Algebra I",
            "SY1",
            "School Year",
            "2025-08-25",
            "2026-06-12 15:30:00",
            "001-MATH",
            "Algebra I",
            "MATH",
            "Mathematics",
            "01",
            "1-2",
        ]),
        enroll(&["001", "MATH", "01", "s1"]),
        roster(&["001", "MATH", "01", "t1"]),
    ]
}

#[test]
fn v1_writes_every_optional_column_the_queries_return() {
    let built = build(&full(Format::V1), &v1_records());
    assert_eq!(
        text(&built, "School.csv"),
        "SIS ID,Name,School Number,School NCES_ID,State ID,Grade Low,Grade High,Principal SIS ID,\
         Principal Name,Principal Secondary Email,Address,City,State,Country,Zip,Phone\r\n\
         001,North High,N1,530000100001,WA-1,09,12,P1,Pat Gomez,p.gomez@x.example,\
         \"1 Main St, Suite 2\",Port,WA,US,98001,+1 555 0100\r\n"
    );
    assert_eq!(
        text(&built, "Section.csv"),
        "SIS ID,School SIS ID,Section Name,Section Number,Term SIS ID,Term Name,Term StartDate,\
         Term EndDate,Course SIS ID,Course Name,Course Number,Course Description,Course Subject,\
         Periods\r\n\
         001-MATH-01,001,Algebra I,01,SY1,School Year,2025-08-25,2026-06-12,001-MATH,Algebra I,\
         MATH,Algebra I,Mathematics,1-2\r\n"
    );
    assert_eq!(
        text(&built, "Student.csv"),
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Secondary Email,\
         Student Number,Middle Name,Grade,Status,Birthdate,Graduation Year\r\n\
         s1,001,Ann,Lee,ann@x.example,pw,WA88,ann@home.example,s1,Marie,09,Active,2010-04-02,\
         2028\r\n"
    );
    assert_eq!(
        text(&built, "Teacher.csv"),
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Teacher Number,\
         Status,Middle Name,Secondary Email,Title,Qualification\r\n\
         t1,001,Tom,Cho,tom@x.example,,C-1,1001,Active,J,,Math Teacher,M.Ed.\r\n"
    );
    // The rosters are what they always were.
    assert_eq!(
        text(&built, "StudentEnrollment.csv"),
        "Section SIS ID,SIS ID\r\n001-MATH-01,s1\r\n"
    );
    assert!(built.warnings().is_empty(), "{:?}", built.warnings());
    assert_strictly_valid(&built);
}

#[test]
fn an_optional_column_the_query_does_not_return_is_not_written() {
    let mut b = Builder::new(full(Format::V1));
    // The students query returns the first contract column up to `grade` and `status` only.
    let mut present = vec![true; 7];
    present.resize(Entity::Students.columns().len(), false);
    present[10] = true;
    b.returned(Entity::Students, &present);
    b.returned(Entity::Schools, &[true, true]);
    for (e, v) in v1_records() {
        b.push(e, v);
    }
    let built = b.finish().expect("build");
    assert_eq!(
        text(&built, "Student.csv"),
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password,Grade,Status\r\n\
         s1,001,Ann,Lee,ann@x.example,pw,09,Active\r\n"
    );
    assert_eq!(
        text(&built, "School.csv"),
        "SIS ID,Name\r\n001,North High\r\n"
    );
    // The teachers query was not described: every column counts as returned.
    assert!(text(&built, "Teacher.csv").starts_with(
        "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Teacher Number,"
    ));
    assert_strictly_valid(&built);
}

#[test]
fn without_optional_columns_the_extra_values_change_nothing() {
    // The same SIS with and without the optional columns' values: with the option off, the
    // files are those of the required columns, byte for byte.
    let base: Vec<Record> = v1_records()
        .into_iter()
        .map(|(e, mut v)| {
            let keep = match e {
                Entity::Schools => 2,
                Entity::Students => 7,
                Entity::Teachers => 6,
                Entity::Sections => 4,
                _ => v.len(),
            };
            v.truncate(keep);
            (e, v)
        })
        .collect();
    for format in Format::ALL {
        let o = opts(format);
        assert_eq!(
            all_bytes(&build(&o, &v1_records())),
            all_bytes(&build(&o, &base)),
            "{format}"
        );
    }
}

#[test]
fn v2_1_roles_carry_grade_and_one_primary_school() {
    let input = vec![
        school(&["1", "One"]),
        school(&["2", "Two"]),
        student(&["s1", "2", "A", "B", "a@x.example", NULL, "9"]),
        student(&["s2", "1", "C", "D", "c@x.example", NULL, "Kindergarten"]),
        // A teacher of two schools: one row each, primary at exactly one.
        teacher(&["t1", "2", "T", "U", "t@x.example", NULL]),
        teacher(&["t1", "1", "T", "U", "t@x.example", NULL]),
    ];
    let built = build(&full(Format::V2_1), &input);
    assert_eq!(
        text(&built, "roles.csv"),
        "userSourcedId,orgSourcedId,role,grade,isPrimary\r\n\
         s1,2,student,09,true\r\n\
         s2,1,student,Kindergarten,true\r\n\
         t1,1,teacher,,true\r\n\
         t1,2,teacher,,false\r\n"
    );
    assert_eq!(
        text(&built, "users.csv"),
        "sourcedId,username,givenName,familyName,password,email,phone\r\n\
         s1,a@x.example,A,B,,a@x.example,\r\n\
         s2,c@x.example,C,D,,c@x.example,\r\n\
         t1,t@x.example,T,U,,t@x.example,\r\n"
    );
    // The unmapped grade is written as it is, and counted.
    assert_eq!(
        built.warnings(),
        [
            "roles.csv: 1 grade value(s) are not Microsoft grade codes (01-12, kg, pk, ...) and [export.grade_map] does not map them; written as they are"
        ]
    );
    assert_strictly_valid(&built);
}

#[test]
fn a_person_who_is_student_and_teacher_keeps_both_roles_in_v2_1() {
    // The SIS says "one person" by giving the same ID in both queries (equal prefixes) and the
    // same e-mail address.
    let input = vec![
        school(&["1", "One"]),
        school(&["2", "Two"]),
        student(&["42", "2", "Sam", "Doe", "sam@x.example", NULL, "12"]),
        teacher(&["42", "1", "Sam", "Doe", "Sam@X.example", NULL]),
        section(&["1", "C", "1", "Course"]),
        section(&["2", "D", "1", "Other"]),
        enroll(&["2", "D", "1", "42"]),
        roster(&["1", "C", "1", "42"]),
    ];
    let built = build(&full(Format::V2_1), &input);
    assert_eq!(
        text(&built, "users.csv"),
        "sourcedId,username,givenName,familyName,password,email,phone\r\n\
         42,sam@x.example,Sam,Doe,,sam@x.example,\r\n"
    );
    assert_eq!(
        text(&built, "roles.csv"),
        "userSourcedId,orgSourcedId,role,grade,isPrimary\r\n\
         42,1,teacher,,true\r\n\
         42,2,student,12,false\r\n"
    );
    assert_eq!(
        text(&built, "enrollments.csv"),
        "classSourcedId,userSourcedId,role\r\n1-C-1,42,teacher\r\n2-D-1,42,student\r\n"
    );
    assert_eq!(built.row_count("users.csv"), 1);
    assert!(counts(&built).is_empty(), "{:?}", counts(&built));
    assert_strictly_valid(&built);
    // Without the optional columns too (the files of the required columns).
    let plain = build(&opts(Format::V2_1), &input);
    assert_eq!(
        text(&plain, "roles.csv"),
        "userSourcedId,orgSourcedId,role\r\n42,1,teacher\r\n42,2,student\r\n"
    );
    // v2 has one role per user row: as before, two accounts with one username, both dropped.
    let v2 = build(&opts(Format::V2), &input);
    assert_eq!(
        drop_ids(&v2, "users.csv", DropReason::DuplicateUsername),
        ["42"]
    );
    assert_eq!(v2.row_count("users.csv"), 0);
    // Different addresses: two people with one ID, an error in v2.1 as well.
    let mut two = input.clone();
    two[3] = teacher(&["42", "1", "Sam", "Doe", "other@x.example", NULL]);
    assert!(matches!(
        try_build(&opts(Format::V2_1), &two),
        Err(BuildError::SharedUserId { .. })
    ));
    // Different prefixes: two sourcedIds with one username, so both are dropped.
    let mut o = opts(Format::V2_1);
    o.teacher_id_prefix = "t".into();
    let built = build(&o, &input);
    assert_eq!(
        drop_ids(&built, "users.csv", DropReason::DuplicateUsername),
        ["42"]
    );
    assert_eq!(built.row_count("users.csv"), 0);
}

fn guardian_sis() -> Vec<Record> {
    vec![
        school(&["1", "One"]),
        student(&["s1", "1", "Ann", "Lee", "ann@x.example", NULL, NULL]),
        student(&["s2", "1", "Bo", "Lee", "bo@x.example", NULL, NULL]),
        student(&["s3", "1", "Cy", "Ray", "cy@x.example", NULL, NULL]),
        // A guardian of two students, with a phone.
        guardian(&[
            "g1",
            "s1",
            "Mia",
            "Lee",
            "mia@home.example",
            "+1 555 7001",
            "Parent",
        ]),
        guardian(&[
            "g1",
            "s2",
            "Mia",
            "Lee",
            "mia@home.example",
            "+1 555 7001",
            "Parent",
        ]),
        // No relationship given: guardian; a role outside Microsoft's list: lower camelCase.
        guardian(&["g2", "s2", "Max", "Lee", "max@home.example", NULL, NULL]),
        guardian(&[
            "g3",
            "s3",
            "Ida",
            "Ray",
            "ida@home.example",
            NULL,
            "Step Parent",
        ]),
        // No e-mail: SDS needs one for a guardian.
        guardian(&["g4", "s3", "Ed", "Ray", NULL, NULL, NULL]),
        // The student's own address, in other letters: only the guardian goes.
        guardian(&["g5", "s1", "Al", "Lee", "ANN@x.example", NULL, NULL]),
        // Two guardians sharing one address: both go.
        guardian(&[
            "g6",
            "s3",
            "Jo",
            "Ray",
            "ray.family@home.example",
            NULL,
            NULL,
        ]),
        guardian(&[
            "g7",
            "s3",
            "Lu",
            "Ray",
            "ray.family@home.example",
            NULL,
            NULL,
        ]),
        // A student the export does not have.
        guardian(&["g8", "s9", "Ny", "Fox", "ny@home.example", NULL, NULL]),
        // Not a full sign-in name.
        guardian(&["g9", "s1", "Oz", "Lee", "oz-at-home", NULL, NULL]),
    ]
}

#[test]
fn guardians_become_users_and_relationships() {
    let mut o = with_queries(opts(Format::V2_1), &[Entity::Guardians]);
    o.guardian_id_prefix = "G-".into();
    let built = build(&o, &guardian_sis());
    let names: Vec<&str> = built.files().iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "orgs.csv",
            "users.csv",
            "roles.csv",
            "classes.csv",
            "enrollments.csv",
            "relationships.csv"
        ]
    );
    // Guardians need an e-mail address in SDS: the column is written with guardians even
    // without the optional columns; they have no roles.
    assert_eq!(
        text(&built, "users.csv"),
        "sourcedId,username,givenName,familyName,password,email\r\n\
         G-g1,mia@home.example,Mia,Lee,,mia@home.example\r\n\
         G-g2,max@home.example,Max,Lee,,max@home.example\r\n\
         G-g3,ida@home.example,Ida,Ray,,ida@home.example\r\n\
         s1,ann@x.example,Ann,Lee,,ann@x.example\r\n\
         s2,bo@x.example,Bo,Lee,,bo@x.example\r\n\
         s3,cy@x.example,Cy,Ray,,cy@x.example\r\n"
    );
    assert_eq!(
        text(&built, "roles.csv"),
        "userSourcedId,orgSourcedId,role\r\ns1,1,student\r\ns2,1,student\r\ns3,1,student\r\n"
    );
    assert_eq!(
        text(&built, "relationships.csv"),
        "userSourcedId,relationshipUserSourcedId,relationshipRole\r\n\
         s1,G-g1,parent\r\n\
         s2,G-g1,parent\r\n\
         s2,G-g2,guardian\r\n\
         s3,G-g3,stepParent\r\n"
    );
    use DropReason::*;
    assert_eq!(
        counts(&built),
        [
            ("users.csv", MissingValue, 1),
            ("users.csv", InvalidUsername, 1),
            ("users.csv", DuplicateUsername, 3),
            ("relationships.csv", UnknownUser, 1),
        ]
    );
    assert_eq!(drop_ids(&built, "users.csv", MissingValue), ["g4/s3"]);
    assert_eq!(
        drop_ids(&built, "users.csv", DuplicateUsername),
        ["g5/s1", "g6/s3", "g7/s3"]
    );
    assert_eq!(
        drop_ids(&built, "relationships.csv", UnknownUser),
        ["g8/s9"]
    );
    assert_eq!(
        built.warnings(),
        [
            "1 relationship role value(s) are not in Microsoft's default list of values; written in lower camelCase (SDS takes them only if your tenant's list was extended)"
        ]
    );
    assert_strictly_valid(&built);
    // With the optional columns, guardians bring their phones.
    let mut o = with_queries(full(Format::V2_1), &[Entity::Guardians]);
    o.guardian_id_prefix = "G-".into();
    let built = build(&o, &guardian_sis());
    assert!(
        text(&built, "users.csv")
            .contains("G-g1,mia@home.example,Mia,Lee,,mia@home.example,+1 555 7001\r\n")
    );
    assert_strictly_valid(&built);
}

/// A guardian's link to a student of a school outside `[export] schools` goes with the student,
/// for the student's reason (`school_not_selected`), not as a link to a student the SIS lacks
/// (`unknown_user`, kept for those).
#[test]
fn a_guardian_of_an_unselected_school_s_student_is_not_an_unknown_link() {
    let mut input = guardian_sis();
    input.push(school(&["2", "Two"]));
    input.push(student(&[
        "s4",
        "2",
        "Di",
        "Poe",
        "di@x.example",
        NULL,
        NULL,
    ]));
    // s5 is at both schools: exported through school 1, so their guardian stays.
    input.push(student(&[
        "s5",
        "2",
        "Fa",
        "Oak",
        "fa@x.example",
        NULL,
        NULL,
    ]));
    input.push(student(&[
        "s5",
        "1",
        "Fa",
        "Oak",
        "fa@x.example",
        NULL,
        NULL,
    ]));
    input.push(guardian(&[
        "g10",
        "s4",
        "Vi",
        "Poe",
        "vi@home.example",
        NULL,
        NULL,
    ]));
    input.push(guardian(&[
        "g11",
        "s5",
        "Wu",
        "Oak",
        "wu@home.example",
        NULL,
        NULL,
    ]));
    let mut o = with_queries(opts(Format::V2_1), &[Entity::Guardians]);
    o.schools = vec!["1".into()];
    let built = build(&o, &input);
    use DropReason::*;
    assert_eq!(
        drop_ids(&built, "relationships.csv", SchoolNotSelected),
        ["g10/s4"]
    );
    assert_eq!(
        drop_ids(&built, "relationships.csv", UnknownUser),
        ["g8/s9"]
    );
    let relationships = text(&built, "relationships.csv");
    assert!(
        relationships.contains("s5,g11,guardian\r\n"),
        "{relationships}"
    );
    assert!(!relationships.contains("g10"), "{relationships}");
    assert_strictly_valid(&built);
}

#[test]
fn optional_queries_are_ignored_outside_v2_1_and_when_off() {
    let mut input = guardian_sis();
    input.push(session(&[
        "SY",
        "Year",
        "schoolYear",
        "2026",
        "2025-08-25",
        "2026-06-12",
    ]));
    input.push(course(&["C1", "1", "Course", NULL, NULL, NULL, NULL]));
    let all = [Entity::AcademicSessions, Entity::Courses, Entity::Guardians];
    for format in [Format::V1, Format::V2] {
        let with = build(&with_queries(opts(format), &all), &input);
        let without = build(&opts(format), &input[..4]);
        assert_eq!(all_bytes(&with), all_bytes(&without), "{format}");
    }
    // v2.1 with the queries switched off: their records are not even looked at.
    let off = build(&opts(Format::V2_1), &input);
    assert_eq!(
        all_bytes(&off),
        all_bytes(&build(&opts(Format::V2_1), &input[..4]))
    );
    assert!(counts(&off).is_empty(), "{:?}", counts(&off));
}

fn term_sis() -> Vec<Record> {
    let mut v = vec![
        school(&["1", "One"]),
        school(&["2", "Two"]),
        // Types as people type them; end dates as timestamps.
        session(&[
            "SY",
            "2025-2026",
            "School Year",
            "2026",
            "2025-08-25",
            "2026-06-12 15:30:00",
            NULL,
        ]),
        session(&[
            "S1",
            "Fall",
            "SEMESTER",
            "2026",
            "8/25/2025",
            "2026-01-16T15:30:00",
            "SY",
        ]),
        session(&[
            "Q1",
            "Quarter 1",
            "grading_period",
            "2026",
            "2025-08-25",
            "next week",
            "S1",
        ]),
        session(&[
            "X",
            "Summer",
            "Summer Term",
            "2026",
            "20260701",
            "20260815",
            NULL,
        ]),
        course(&["1-M", "1", "Math", "M", "SY", "Mathematics", "9"]),
        course(&["1-A", "1", "Art", NULL, "OLD", NULL, NULL]),
        // A course of a school the export does not have.
        course(&["3-X", "3", "Gone", NULL, NULL, NULL, NULL]),
    ];
    let sec = |school: &str, code: &str, term: &str, course: &str| {
        section(&[
            school, code, "1", "Title", term, NULL, NULL, NULL, course, NULL, NULL, NULL, NULL,
            NULL,
        ])
    };
    v.extend([
        sec("1", "M", "SY", "1-M"),
        sec("1", "A", "S1", "1-A"),
        // Last year's term and a course the export does not have: the links stay blank.
        sec("2", "B", "OLD", "2-B"),
        sec("2", "C", NULL, NULL),
    ]);
    v
}

#[test]
fn sessions_courses_and_class_links() {
    let o = with_queries(
        full(Format::V2_1),
        &[Entity::AcademicSessions, Entity::Courses],
    );
    let built = build(&o, &term_sis());
    assert_eq!(
        text(&built, "academicSessions.csv"),
        "sourcedId,title,type,schoolYear,startDate,endDate\r\n\
         Q1,Quarter 1,gradingPeriod,2026,2025-08-25,\r\n\
         S1,Fall,semester,2026,2025-08-25,2026-01-16\r\n\
         SY,2025-2026,schoolYear,2026,2025-08-25,2026-06-12\r\n\
         X,Summer,summerTerm,2026,2026-07-01,2026-08-15\r\n"
    );
    assert_eq!(
        text(&built, "courses.csv"),
        "sourcedId,orgSourcedId,title,code,schoolYearSourcedId,subject,grade\r\n\
         1-A,1,Art,,,,\r\n\
         1-M,1,Math,M,SY,Mathematics,09\r\n"
    );
    assert_eq!(
        text(&built, "classes.csv"),
        "sourcedId,orgSourcedId,title,sessionSourcedIds,courseSourcedId\r\n\
         1-A-1,1,Title,S1,1-A\r\n\
         1-M-1,1,Title,SY,1-M\r\n\
         2-B-1,2,Title,,\r\n\
         2-C-1,2,Title,,\r\n"
    );
    assert_eq!(
        counts(&built),
        [("courses.csv", DropReason::UnknownSchool, 1)]
    );
    assert_eq!(
        built.warnings(),
        [
            "[source.queries] academic_sessions: 1 value(s) of end_date are not dates (YYYY-MM-DD, a timestamp, YYYYMMDD or M/D/YYYY); written blank",
            "1 academic session type value(s) are not in Microsoft's default list of values; written in lower camelCase (SDS takes them only if your tenant's list was extended)",
            "classes.csv: 1 class(es) name a term that academicSessions.csv does not have; their sessionSourcedIds is left blank",
            "classes.csv: 1 class(es) name a course that courses.csv does not have; their courseSourcedId is left blank",
            "courses.csv: 1 course(s) name a school year that academicSessions.csv does not have; their schoolYearSourcedId is left blank",
        ]
    );
    assert_strictly_valid(&built);

    // Without the academic sessions, nothing may point at them: no sessionSourcedIds, no
    // schoolYearSourcedId.
    let o = with_queries(full(Format::V2_1), &[Entity::Courses]);
    let built = build(&o, &term_sis());
    assert!(
        text(&built, "classes.csv").starts_with("sourcedId,orgSourcedId,title,courseSourcedId\r\n")
    );
    assert!(
        text(&built, "courses.csv")
            .starts_with("sourcedId,orgSourcedId,title,code,subject,grade\r\n")
    );
    assert_strictly_valid(&built);
    // Without optional_columns the classes have no links (the files of the queries still
    // carry every column their query returns).
    let o = with_queries(
        opts(Format::V2_1),
        &[Entity::AcademicSessions, Entity::Courses],
    );
    let built = build(&o, &term_sis());
    assert!(text(&built, "classes.csv").starts_with("sourcedId,orgSourcedId,title\r\n"));
    assert!(text(&built, "courses.csv").contains("1-M,1,Math,M,SY,Mathematics,9\r\n"));
    assert_strictly_valid(&built);
}

#[test]
fn district_org_above_the_schools() {
    let input = vec![
        school(&["001", "One"]),
        school(&["Z9", "Zed"]),
        student(&["s", "001", "A", "B", "a@x.example", NULL, NULL]),
    ];
    for format in [Format::V2, Format::V2_1] {
        let mut o = opts(format);
        o.district = Some(District {
            id: " D1 ".into(),
            name: "Demo District".into(),
        });
        let built = build(&o, &input);
        assert_eq!(
            text(&built, "orgs.csv"),
            "sourcedId,name,type,parentSourcedId\r\n\
             001,One,school,D1\r\n\
             D1,Demo District,district,\r\n\
             Z9,Zed,school,D1\r\n",
            "{format}"
        );
        assert_eq!(built.row_count("orgs.csv"), 3);
        assert_strictly_valid(&built);
        o.district = Some(District {
            id: "Z9".into(),
            name: "Clash".into(),
        });
        assert!(matches!(
            try_build(&o, &input),
            Err(BuildError::DistrictIdClash { .. })
        ));
    }
    // v1 has no orgs: the district changes nothing.
    let mut o = opts(Format::V1);
    o.district = Some(District {
        id: "D1".into(),
        name: "N".into(),
    });
    assert_eq!(
        all_bytes(&build(&o, &input)),
        all_bytes(&build(&opts(Format::V1), &input))
    );
}

#[test]
fn grade_map_applies_everywhere_a_grade_is_written() {
    let input = vec![
        school(&["1", "S"]),
        student(&["a", "1", "A", "A", "a@x.example", NULL, "9"]),
        student(&["b", "1", "B", "B", "b@x.example", NULL, "K"]),
        student(&["c", "1", "C", "C", "c@x.example", NULL, "10"]),
        student(&["d", "1", "D", "D", "d@x.example", NULL, "Grade 3"]),
    ];
    let mut o = opts(Format::V2);
    o.grade_map = full(Format::V2).grade_map;
    let built = build(&o, &input);
    let grades: Vec<String> = rows(&built, "users.csv")
        .into_iter()
        .map(|r| r[7].clone())
        .collect();
    assert_eq!(grades, ["09", "kg", "10", "Grade 3"]);
    assert_eq!(
        built.warnings(),
        [
            "users.csv: 1 grade value(s) are not Microsoft grade codes (01-12, kg, pk, ...) and [export.grade_map] does not map them; written as they are"
        ]
    );
    // Without any key of the full formats, v2 writes grades as before, with no new warning.
    let built = build(&opts(Format::V2), &input);
    assert!(built.warnings().is_empty(), "{:?}", built.warnings());
}

#[test]
fn full_output_does_not_depend_on_input_order() {
    let mut base = term_sis();
    base.extend(guardian_sis().into_iter().skip(1));
    base.extend(v1_records());
    let mut o = with_queries(
        full(Format::V2_1),
        &[Entity::AcademicSessions, Entity::Courses, Entity::Guardians],
    );
    o.district = Some(District {
        id: "D".into(),
        name: "District".into(),
    });
    let reference = build(&o, &base);
    let want = all_bytes(&reference);
    for seed in [1, 7, 0x5eed] {
        let built = build(&o, &shuffled(&base, seed));
        assert_eq!(all_bytes(&built), want, "seed {seed}");
        assert_eq!(built.drops(), reference.drops(), "seed {seed}");
        assert_eq!(built.warnings(), reference.warnings(), "seed {seed}");
    }
    assert_strictly_valid(&reference);
}
