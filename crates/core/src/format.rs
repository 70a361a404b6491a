//! File layouts of each SDS format: file names, header rows (case-sensitive, letter-perfect, as
//! in Microsoft's samples) and each file's natural key.

use crate::options::Format;

/// One CSV file of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    pub name: &'static str,
    pub header: &'static [&'static str],
    /// Rows are keyed (for sorting, uniqueness and diffs) by this many leading columns.
    /// Enrollment-like files are keyed by the whole row.
    pub key_columns: usize,
    /// The v1 licence file: not an SDS input; each destination decides whether to carry it.
    pub license: bool,
    /// A column (`role`) that tells which SIS entity a row comes from, in files that mix
    /// students and teachers. The mass-change guard judges each entity on its own: losing every
    /// teacher roster must not hide behind a file that is 90% student enrollments.
    pub entity_column: Option<usize>,
}

const fn spec(name: &'static str, header: &'static [&'static str], key_columns: usize) -> FileSpec {
    FileSpec {
        name,
        header,
        key_columns,
        license: false,
        entity_column: None,
    }
}

/// [`spec`] for a file whose `column` names the role (student/teacher) of each row.
const fn mixed(
    name: &'static str,
    header: &'static [&'static str],
    key_columns: usize,
    column: usize,
) -> FileSpec {
    FileSpec {
        entity_column: Some(column),
        ..spec(name, header, key_columns)
    }
}

pub const V1_SCHOOL: FileSpec = spec("School.csv", &["SIS ID", "Name"], 1);
pub const V1_SECTION: FileSpec = spec(
    "Section.csv",
    &["SIS ID", "School SIS ID", "Section Name"],
    1,
);
pub const V1_STUDENT: FileSpec = spec(
    "Student.csv",
    &[
        "SIS ID",
        "School SIS ID",
        "First Name",
        "Last Name",
        "Username",
        "Password",
    ],
    1,
);
/// One row per (teacher, school): keyed by both.
pub const V1_TEACHER: FileSpec = spec(
    "Teacher.csv",
    &[
        "SIS ID",
        "School SIS ID",
        "First Name",
        "Last Name",
        "Username",
        "Password",
    ],
    2,
);
pub const V1_STUDENT_ENROLLMENT: FileSpec =
    spec("StudentEnrollment.csv", &["Section SIS ID", "SIS ID"], 2);
pub const V1_TEACHER_ROSTER: FileSpec = spec("TeacherRoster.csv", &["Section SIS ID", "SIS ID"], 2);
pub const V1_LICENSE: FileSpec = FileSpec {
    name: "License.csv",
    header: &["Display Name", "User Principal Name", "Account Sku Id"],
    key_columns: 3,
    license: true,
    entity_column: None,
};

pub const V2_ORGS: FileSpec = spec("orgs.csv", &["sourcedId", "name", "type"], 1);
pub const V2_USERS: FileSpec = mixed(
    "users.csv",
    &[
        "sourcedId",
        "orgSourcedIds",
        "givenName",
        "familyName",
        "username",
        "password",
        "role",
        "grade",
    ],
    1,
    6,
);
pub const V2_CLASSES: FileSpec = spec("classes.csv", &["sourcedId", "orgSourcedId", "title"], 1);
pub const V2_ENROLLMENTS: FileSpec = mixed(
    "enrollments.csv",
    &["classSourcedId", "userSourcedId", "role"],
    3,
    2,
);

pub const V21_USERS: FileSpec = spec(
    "users.csv",
    &[
        "sourcedId",
        "username",
        "givenName",
        "familyName",
        "password",
    ],
    1,
);
pub const V21_ROLES: FileSpec = mixed(
    "roles.csv",
    &["userSourcedId", "orgSourcedId", "role"],
    3,
    2,
);

impl Format {
    /// The files of this format in the order they are written and reported. `License.csv` is
    /// included for v1 when `license_file` is set; other formats have no licence file.
    pub fn files(self, license_file: bool) -> Vec<FileSpec> {
        match self {
            Format::V1 => {
                let mut v = vec![
                    V1_SCHOOL,
                    V1_SECTION,
                    V1_STUDENT,
                    V1_TEACHER,
                    V1_STUDENT_ENROLLMENT,
                    V1_TEACHER_ROSTER,
                ];
                if license_file {
                    v.push(V1_LICENSE);
                }
                v
            }
            Format::V2 => vec![V2_ORGS, V2_USERS, V2_CLASSES, V2_ENROLLMENTS],
            Format::V2_1 => vec![V2_ORGS, V21_USERS, V21_ROLES, V2_CLASSES, V2_ENROLLMENTS],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::V2 => "v2",
            Format::V2_1 => "v2.1",
        }
    }
}
