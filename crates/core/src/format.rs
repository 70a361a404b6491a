//! The SDS formats, one table each: per file its name, every column Microsoft documents (required
//! and optional, spelled letter for letter as in `SDS-FORMATS.md`), which of them sds-sync writes
//! and from which field, the key rows are sorted and compared by, the columns SDS requires to be
//! unique, the references to other files, the enumerations with Microsoft's default list of
//! values, and whether the file must be in a set. The builder, the CSV renderer, the diff, the
//! guard and the validator all read these tables; nothing else spells a file or column name.
//!
//! A column sds-sync always writes has a [`Column::field`]; a documented optional column it can
//! write has a [`Column::optional`] field instead, switched on per export by the builder
//! (`[export] optional_columns`, an optional query, `[export.district]`): [`FileSpec::variant`]
//! gives the spec of a file with the optional columns of an export switched on, so that every
//! reader of a written file (diff, guard, publish gate) sees its exact header. Adding a written
//! column is one edit here plus its value in `build.rs`. Adding a file or a format is a new
//! [`FileSpec`] in the format's table.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

/// Microsoft's per-file row limit for SDS CSV uploads (classic 500,000, later 2,000,000): a file
/// above it gets a warning.
pub const SDS_ROW_LIMIT: u64 = 2_000_000;

/// The SDS CSV format to write or check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    V1,
    V2,
    V2_1,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::V1, Format::V2, Format::V2_1];

    /// The name used in the config (`[export] format`), on the command line and in the state DB.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::V2 => "v2",
            Format::V2_1 => "v2.1",
        }
    }

    /// Every file of this format that Microsoft documents, in the order sds-sync writes and
    /// reports them (the files it does not write come last).
    pub fn table(self) -> &'static [FileSpec] {
        match self {
            Format::V1 => V1,
            Format::V2 => V2,
            Format::V2_1 => V2_1_TABLE,
        }
    }

    /// The files sds-sync writes in this format by default, in write order. `License.csv` is
    /// included for v1 when `license_file` is set; other formats have no licence file. The
    /// optional files of v2.1 are not ([`Format::files_with`]).
    pub fn files(self, license_file: bool) -> Vec<&'static FileSpec> {
        self.files_with(license_file, &[])
    }

    /// [`Format::files`] plus the optional files of `optional` (those sds-sync writes).
    pub fn files_with(self, license_file: bool, optional: &[FileKind]) -> Vec<&'static FileSpec> {
        self.table()
            .iter()
            .filter(|f| {
                f.written
                    && if f.license {
                        license_file
                    } else {
                        f.presence != Presence::Optional || optional.contains(&f.kind)
                    }
            })
            .collect()
    }

    /// The file of this format with exactly this name.
    pub fn file(self, name: &str) -> Option<&'static FileSpec> {
        self.table().iter().find(|f| f.name == name)
    }

    /// v1 file names may come in any letter case (Learn lists them lower case, the samples in
    /// PascalCase); v2 and v2.1 names are exact.
    pub fn names_ignore_case(self) -> bool {
        self == Format::V1
    }

    /// SDS v2.1 needs every username to be a full `user@domain` sign-in name.
    pub fn needs_full_usernames(self) -> bool {
        self == Format::V2_1
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of `v1`, `v2`, `v2.1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SDS format {0:?}; expected one of v1, v2, v2.1")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &Format::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Which file of which format a [`FileSpec`] describes; the builder renders by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    School,
    Section,
    Student,
    Teacher,
    StudentEnrollment,
    TeacherRoster,
    License,
    Orgs,
    UsersV2,
    UsersV21,
    Roles,
    ClassesV2,
    ClassesV21,
    Enrollments,
    AcademicSessions,
    Courses,
    Demographics,
    UserFlags,
    Relationships,
}

/// Whether a file must be in a set (SDS's file-set rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Every set has it.
    Required,
    /// All files marked `Together` in a format come together or not at all (classes and their
    /// enrollments: a users-only set leaves them all out).
    Together,
    /// May be left out, unless another file of the set refers to it.
    Optional,
}

/// What a column needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The header may be absent; a blank value is fine.
    Optional,
    /// The header must be present; a blank value is fine.
    Header,
    /// The header must be present; a blank value is a warning: SDS takes the row but cannot use
    /// it fully (a blank username cannot be matched to an account).
    Expected,
    /// The header must be present and no value may be blank.
    Required,
}

impl Need {
    pub fn header_required(self) -> bool {
        self != Need::Optional
    }
}

/// One of Microsoft's enumerations with its default list of values (Learn: "School Data Sync
/// default list of values"). SDS matches them ignoring case and admins can extend the lists, so
/// an unknown value is a warning, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enumeration {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

impl Enumeration {
    /// The default value equal to `value` ignoring case.
    pub fn find(&self, value: &str) -> Option<&'static str> {
        self.values
            .iter()
            .copied()
            .find(|v| v.eq_ignore_ascii_case(value))
    }
}

pub const ORG_TYPES: Enumeration = Enumeration {
    name: "organization type",
    values: &[
        "school",
        "district",
        "ministryOfEducation",
        "localAuthority",
        "department",
        "university",
        "region",
        "college",
        "division",
        "local",
        "campus",
        "province",
        "state",
        "adultEducation",
        "researchCenter",
        "national",
        "municipality",
        "program",
        "departmentOfEducation",
        "academicTrust",
    ],
};

/// Organization user roles: the staff roles, `student`, and the roles of guardians and others.
pub const ROLES: Enumeration = Enumeration {
    name: "role",
    values: &[
        "student",
        "teacher",
        "principal",
        "chair",
        "professor",
        "researcher",
        "adjunct",
        "affiliate",
        "occupationalTherapist",
        "physicalTherapist",
        "speechTherapist",
        "visionTherapist",
        "paraprofessional",
        "specialServices",
        "advisor",
        "proctor",
        "nurse",
        "officeStaff",
        "lecturer",
        "itAdmin",
        "administrator",
        "faculty",
        "staff",
        "teacherAssistant",
        "assistant",
        "instructor",
        "substitute",
        "coach",
        "alumni",
        "aide",
        "counselor",
        "guardian",
        "other",
    ],
};

pub const SESSION_TYPES: Enumeration = Enumeration {
    name: "academic session type",
    values: &["schoolYear", "semester", "term", "gradingPeriod"],
};

/// `relationshipRole` of `relationships.csv`: what the related user is to the student
/// (Microsoft's v2.1 sample uses `guardian` and `relative`; the list is the guardian roles SDS
/// documents).
pub const RELATIONSHIP_ROLES: Enumeration = Enumeration {
    name: "relationship role",
    values: &[
        "parent",
        "guardian",
        "relative",
        "aide",
        "doctor",
        "child",
        "administrator",
        "other",
    ],
};

/// Microsoft's grade codes (Learn: "Default list of values", grade levels); a SIS grade that is
/// not one needs `[export.grade_map]`.
pub const GRADES: Enumeration = Enumeration {
    name: "grade",
    values: &[
        "it", "pr", "pk", "tk", "kg", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10",
        "11", "12", "13", "ps", "ps1", "ps2", "ps3", "ug", "other",
    ],
};

impl Enumeration {
    /// The default value `value` spells, ignoring case and the separators SIS values tend to
    /// carry (`Grading Period`, `school_year`, `GRADING-PERIOD` are all `gradingPeriod`).
    pub fn canonical(&self, value: &str) -> Option<&'static str> {
        let squeeze = |s: &str| -> String {
            s.chars()
                .filter(|c| !matches!(c, ' ' | '_' | '-'))
                .flat_map(char::to_lowercase)
                .collect()
        };
        let wanted = squeeze(value);
        self.values
            .iter()
            .copied()
            .find(|v| v.to_lowercase() == wanted)
    }
}

/// What a column holds beyond text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    Text,
    /// One of an enumeration's values (ignoring case).
    Enum(&'static Enumeration),
    /// A secret (a password): no message, log line or finding ever shows its value.
    Secret,
}

/// Which value of a built record sds-sync writes into a column. The builder renders each row as
/// the fields its file kind knows; the table picks them by column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The row's own ID: school, section, user (prefixed in v2/v2.1), session, course.
    Id,
    /// The school (org) the row belongs to.
    School,
    /// v2 `orgSourcedIds`: all of a user's schools, comma-separated.
    SchoolList,
    /// School name.
    Name,
    /// The org type (`school`, or `district` for the district org).
    OrgType,
    /// Section name: the course description, else the course code. Also a session's and a
    /// course's title.
    Title,
    FirstName,
    LastName,
    /// Derived from the e-mail address by the username rule.
    Username,
    Password,
    /// `student` or `teacher`.
    Role,
    /// A student's (or a course's) grade, mapped by `[export.grade_map]`.
    Grade,
    /// The section an enrollment or roster row is about.
    Section,
    /// The user an enrollment, roster or relationship row is about.
    User,
    /// License.csv: first name + " " + last name.
    DisplayName,
    /// The user's e-mail address as the SIS has it.
    Email,
    /// The configured Account SKU ID.
    SkuId,
    /// The district org of `[export.district]` (an org's `parentSourcedId`).
    Parent,
    SchoolNumber,
    NcesId,
    StateId,
    GradeLow,
    GradeHigh,
    PrincipalId,
    PrincipalName,
    PrincipalEmail,
    Address,
    City,
    State,
    Country,
    Zip,
    Phone,
    SectionNumber,
    /// A section's term: v1 `Term SIS ID`, v2.1 `sessionSourcedIds`.
    TermId,
    TermName,
    TermStart,
    TermEnd,
    /// A section's course: v1 `Course SIS ID`, v2.1 `courseSourcedId`.
    CourseId,
    CourseName,
    CourseNumber,
    /// The course description as the SIS has it (v1 `Course Description`).
    CourseDescription,
    CourseSubject,
    Periods,
    Status,
    MiddleName,
    StudentNumber,
    BirthDate,
    GraduationYear,
    SecondaryEmail,
    TeacherNumber,
    /// A teacher's job title (v1 Teacher `Title`).
    JobTitle,
    Qualification,
    /// v2.1 roles: `true` on exactly one role row of each user.
    IsPrimary,
    /// An academic session's type, school year and dates.
    SessionType,
    SchoolYear,
    StartDate,
    EndDate,
    /// A course's code, school year (a session) and subject.
    Code,
    SchoolYearId,
    Subject,
    /// The guardian a relationship row names, and what they are to the student.
    RelatedUser,
    RelationshipRole,
}

/// One column of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub need: Need,
    pub values: Values,
    /// `Some` when sds-sync writes this column, with the value it writes.
    pub field: Option<Field>,
    /// For a documented optional column sds-sync can write when an export switches it on: the
    /// value it then writes ([`FileSpec::variant`] moves it to `field`).
    pub optional: Option<Field>,
}

impl Column {
    /// sds-sync writes this column always, or when an export switches it on.
    pub fn writable(&self) -> bool {
        self.field.is_some() || self.optional.is_some()
    }
}

impl Column {
    /// Its values are secrets: never echoed in a finding, message or log line.
    pub fn is_secret(&self) -> bool {
        self.values == Values::Secret
    }
}

/// A column whose values are IDs of rows of another file (or of its own file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub column: &'static str,
    /// The file referred to, by name; its [`FileSpec::id_column`] holds the IDs.
    pub file: &'static str,
    /// The value is a comma-separated list of IDs inside one field (`orgSourcedIds`).
    pub list: bool,
}

/// The sign-in name column of a file of users: unique across all users of the set ignoring
/// case, and (v2.1) a full `user@domain` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsernameColumn {
    pub column: &'static str,
    /// The column naming the person: several rows of one person (a v1 teacher in two schools)
    /// may share a username.
    pub owner: &'static str,
}

/// One CSV file of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    pub kind: FileKind,
    pub name: &'static str,
    /// Every documented column in Microsoft's order, required columns first.
    pub columns: &'static [Column],
    pub presence: Presence,
    /// sds-sync writes this file (the optional files of v2.1 are described, not yet written).
    pub written: bool,
    /// The columns rows are sorted and diffed by: the leading written columns. A row of a file
    /// keyed by all its columns is its own key.
    pub key: &'static [&'static str],
    /// Columns whose values together are unique within the file (SDS's rule).
    pub unique: &'static [&'static str],
    /// The column other files refer to, if any.
    pub id_column: Option<&'static str>,
    pub references: &'static [Reference],
    pub username: Option<UsernameColumn>,
    /// v1 `License.csv`: not an SDS input but a list for a licence-assignment script; each
    /// destination decides whether to carry it.
    pub license: bool,
    /// A column (`role`) that tells which SIS entity a row comes from, in files that mix
    /// students and teachers. The mass-change guard judges each entity on its own: losing every
    /// teacher roster must not hide behind a file that is 90% student enrollments.
    pub entity_column: Option<&'static str>,
}

impl FileSpec {
    /// The columns sds-sync writes, in order: the exact header of its files.
    pub fn written_columns(&self) -> impl Iterator<Item = &'static Column> + 'static {
        self.columns.iter().filter(|c| c.field.is_some())
    }

    /// The exact header row sds-sync writes (case-sensitive).
    pub fn header(&self) -> Vec<&'static str> {
        self.written_columns().map(|c| c.name).collect()
    }

    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// How many leading columns of the written header form the key.
    pub fn key_len(&self) -> usize {
        self.key.len()
    }

    /// Position of the entity column in the written header.
    pub fn entity_index(&self) -> Option<usize> {
        let name = self.entity_column?;
        self.written_columns().position(|c| c.name == name)
    }

    /// This file with the optional columns whose bit is set in `switched_on` (bit `i` is
    /// `columns[i]`) written too: their [`Column::optional`] field becomes their
    /// [`Column::field`]. Bits of columns sds-sync cannot write are ignored; no bit set gives
    /// this very spec. The specs live for the whole process: one per file and set of columns
    /// ever used, a handful.
    pub fn variant(&'static self, switched_on: u64) -> &'static FileSpec {
        let mask = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| c.field.is_none() && c.optional.is_some() && switched_on >> i & 1 == 1)
            .fold(0u64, |m, (i, _)| m | 1 << i);
        if mask == 0 {
            return self;
        }
        type Variants = Mutex<HashMap<(&'static str, FileKind, u64), &'static FileSpec>>;
        static VARIANTS: OnceLock<Variants> = OnceLock::new();
        let variants = VARIANTS.get_or_init(Default::default);
        // A poisoned lock only means another thread panicked while inserting: the map itself
        // is still a map of complete entries.
        let mut map = variants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((self.name, self.kind, mask)).or_insert_with(|| {
            let columns: Vec<Column> = self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> i & 1 == 1 {
                        Column {
                            field: c.optional,
                            ..*c
                        }
                    } else {
                        *c
                    }
                })
                .collect();
            Box::leak(Box::new(FileSpec {
                columns: Box::leak(columns.into_boxed_slice()),
                ..*self
            }))
        })
    }

    /// Whether `names` is a header sds-sync writes for this file: the columns it always writes
    /// and any of the optional ones it can write, in Microsoft's order (what `--strict` holds
    /// a file to).
    pub fn is_written_header(&self, names: &[&str]) -> bool {
        let mut expected = self
            .columns
            .iter()
            .filter(|c| c.field.is_some() || (c.optional.is_some() && names.contains(&c.name)))
            .map(|c| c.name);
        names.iter().all(|n| expected.next() == Some(*n)) && expected.next().is_none()
    }
}

/// Column header names, spelled as Microsoft spells them (headers are case-sensitive).
pub mod col {
    /// SDS v1 (PascalCase with spaces).
    pub mod v1 {
        pub const SIS_ID: &str = "SIS ID";
        pub const SCHOOL_SIS_ID: &str = "School SIS ID";
        pub const NAME: &str = "Name";
        pub const SCHOOL_NUMBER: &str = "School Number";
        pub const SCHOOL_NCES_ID: &str = "School NCES_ID";
        pub const STATE_ID: &str = "State ID";
        pub const GRADE_LOW: &str = "Grade Low";
        pub const GRADE_HIGH: &str = "Grade High";
        pub const PRINCIPAL_SIS_ID: &str = "Principal SIS ID";
        pub const PRINCIPAL_NAME: &str = "Principal Name";
        pub const PRINCIPAL_SECONDARY_EMAIL: &str = "Principal Secondary Email";
        pub const ADDRESS: &str = "Address";
        pub const CITY: &str = "City";
        pub const STATE: &str = "State";
        pub const COUNTRY: &str = "Country";
        pub const ZIP: &str = "Zip";
        pub const PHONE: &str = "Phone";
        pub const ZONE: &str = "Zone";
        pub const SECTION_NAME: &str = "Section Name";
        pub const SECTION_NUMBER: &str = "Section Number";
        pub const TERM_SIS_ID: &str = "Term SIS ID";
        pub const TERM_NAME: &str = "Term Name";
        /// No space before "Date" (Microsoft's spelling).
        pub const TERM_START_DATE: &str = "Term StartDate";
        pub const TERM_END_DATE: &str = "Term EndDate";
        pub const COURSE_SIS_ID: &str = "Course SIS ID";
        pub const COURSE_NAME: &str = "Course Name";
        pub const COURSE_NUMBER: &str = "Course Number";
        pub const COURSE_DESCRIPTION: &str = "Course Description";
        pub const COURSE_SUBJECT: &str = "Course Subject";
        pub const PERIODS: &str = "Periods";
        pub const STATUS: &str = "Status";
        pub const FIRST_NAME: &str = "First Name";
        pub const LAST_NAME: &str = "Last Name";
        pub const USERNAME: &str = "Username";
        pub const PASSWORD: &str = "Password";
        pub const SECONDARY_EMAIL: &str = "Secondary Email";
        pub const STUDENT_NUMBER: &str = "Student Number";
        pub const MIDDLE_NAME: &str = "Middle Name";
        pub const GRADE: &str = "Grade";
        pub const BIRTHDATE: &str = "Birthdate";
        pub const GRADUATION_YEAR: &str = "Graduation Year";
        pub const TEACHER_NUMBER: &str = "Teacher Number";
        pub const TITLE: &str = "Title";
        pub const QUALIFICATION: &str = "Qualification";
        pub const SECTION_SIS_ID: &str = "Section SIS ID";
        pub const DISPLAY_NAME: &str = "Display Name";
        pub const USER_PRINCIPAL_NAME: &str = "User Principal Name";
        pub const ACCOUNT_SKU_ID: &str = "Account Sku Id";
    }

    /// SDS v2 and v2.1 (OneRoster-style camelCase).
    pub mod roster {
        pub const SOURCED_ID: &str = "sourcedId";
        pub const NAME: &str = "name";
        pub const TYPE: &str = "type";
        pub const PARENT_SOURCED_ID: &str = "parentSourcedId";
        pub const ORG_SOURCED_IDS: &str = "orgSourcedIds";
        pub const ORG_SOURCED_ID: &str = "orgSourcedId";
        pub const GIVEN_NAME: &str = "givenName";
        pub const FAMILY_NAME: &str = "familyName";
        pub const USERNAME: &str = "username";
        pub const PASSWORD: &str = "password";
        pub const ROLE: &str = "role";
        pub const GRADE: &str = "grade";
        pub const ACTIVE_DIRECTORY_MATCH_ID: &str = "activeDirectoryMatchId";
        pub const EMAIL: &str = "email";
        pub const PHONE: &str = "phone";
        pub const SMS: &str = "sms";
        pub const USER_SOURCED_ID: &str = "userSourcedId";
        pub const SESSION_SOURCED_ID: &str = "sessionSourcedId";
        pub const IS_PRIMARY: &str = "isPrimary";
        pub const ROLE_START_DATE: &str = "roleStartDate";
        pub const ROLE_END_DATE: &str = "roleEndDate";
        pub const TITLE: &str = "title";
        pub const SESSION_SOURCED_IDS: &str = "sessionSourcedIds";
        pub const COURSE_SOURCED_ID: &str = "courseSourcedId";
        pub const CLASS_SOURCED_ID: &str = "classSourcedId";
        pub const SCHOOL_YEAR: &str = "schoolYear";
        pub const START_DATE: &str = "startDate";
        pub const END_DATE: &str = "endDate";
        pub const CODE: &str = "code";
        pub const SCHOOL_YEAR_SOURCED_ID: &str = "schoolYearSourcedId";
        pub const SUBJECT: &str = "subject";
        pub const SEX: &str = "sex";
        pub const BIRTH_DATE: &str = "birthDate";
        pub const BIRTH_CITY: &str = "birthCity";
        pub const BIRTH_STATE: &str = "birthState";
        pub const BIRTH_COUNTRY: &str = "birthCountry";
        pub const ETHNICITY_CODES: &str = "ethnicityCodes";
        pub const RACE_CODES: &str = "raceCodes";
        pub const FLAG: &str = "flag";
        pub const RELATIONSHIP_USER_SOURCED_ID: &str = "relationshipUserSourcedId";
        pub const RELATIONSHIP_ROLE: &str = "relationshipRole";
    }
}

use col::roster as r;
use col::v1;

/// File names (v1 in Microsoft's PascalCase; any letter case is accepted when checking).
pub mod name {
    pub const SCHOOL: &str = "School.csv";
    pub const SECTION: &str = "Section.csv";
    pub const STUDENT: &str = "Student.csv";
    pub const TEACHER: &str = "Teacher.csv";
    pub const STUDENT_ENROLLMENT: &str = "StudentEnrollment.csv";
    pub const TEACHER_ROSTER: &str = "TeacherRoster.csv";
    pub const LICENSE: &str = "License.csv";
    pub const ORGS: &str = "orgs.csv";
    pub const USERS: &str = "users.csv";
    pub const ROLES: &str = "roles.csv";
    pub const CLASSES: &str = "classes.csv";
    pub const ENROLLMENTS: &str = "enrollments.csv";
    pub const ACADEMIC_SESSIONS: &str = "academicSessions.csv";
    pub const COURSES: &str = "courses.csv";
    pub const DEMOGRAPHICS: &str = "demographics.csv";
    pub const USER_FLAGS: &str = "userFlags.csv";
    pub const RELATIONSHIPS: &str = "relationships.csv";
}

const fn column(name: &'static str, need: Need, field: Option<Field>) -> Column {
    Column {
        name,
        need,
        values: Values::Text,
        field,
        optional: None,
    }
}
/// An optional column sds-sync writes when an export switches it on.
const fn opt_on(name: &'static str, field: Field) -> Column {
    Column {
        optional: Some(field),
        ..column(name, Need::Optional, None)
    }
}
/// A required column sds-sync writes.
const fn req(name: &'static str, field: Field) -> Column {
    column(name, Need::Required, Some(field))
}
/// An optional column sds-sync does not write.
const fn opt(name: &'static str) -> Column {
    column(name, Need::Optional, None)
}
/// An optional column sds-sync writes (with a blank value where it has none).
const fn opt_w(name: &'static str, field: Field) -> Column {
    column(name, Need::Optional, Some(field))
}
const fn enumerated(c: Column, e: &'static Enumeration) -> Column {
    Column {
        values: Values::Enum(e),
        ..c
    }
}
/// A column of passwords ([`Values::Secret`]).
const fn secret(c: Column) -> Column {
    Column {
        values: Values::Secret,
        ..c
    }
}
const fn reference(column: &'static str, file: &'static str) -> Reference {
    Reference {
        column,
        file,
        list: false,
    }
}

/// Defaults of a [`FileSpec`]; every table entry overrides what it needs.
const BASE: FileSpec = FileSpec {
    kind: FileKind::School,
    name: "",
    columns: &[],
    presence: Presence::Required,
    written: true,
    key: &[],
    unique: &[],
    id_column: None,
    references: &[],
    username: None,
    license: false,
    entity_column: None,
};

// ---------------------------------------------------------------------------------------------
// SDS v1
// ---------------------------------------------------------------------------------------------

pub const V1_SCHOOL: FileSpec = FileSpec {
    kind: FileKind::School,
    name: name::SCHOOL,
    columns: &[
        req(v1::SIS_ID, Field::Id),
        req(v1::NAME, Field::Name),
        opt_on(v1::SCHOOL_NUMBER, Field::SchoolNumber),
        opt_on(v1::SCHOOL_NCES_ID, Field::NcesId),
        opt_on(v1::STATE_ID, Field::StateId),
        opt_on(v1::GRADE_LOW, Field::GradeLow),
        opt_on(v1::GRADE_HIGH, Field::GradeHigh),
        opt_on(v1::PRINCIPAL_SIS_ID, Field::PrincipalId),
        opt_on(v1::PRINCIPAL_NAME, Field::PrincipalName),
        opt_on(v1::PRINCIPAL_SECONDARY_EMAIL, Field::PrincipalEmail),
        opt_on(v1::ADDRESS, Field::Address),
        opt_on(v1::CITY, Field::City),
        opt_on(v1::STATE, Field::State),
        opt_on(v1::COUNTRY, Field::Country),
        opt_on(v1::ZIP, Field::Zip),
        opt_on(v1::PHONE, Field::Phone),
        opt(v1::ZONE),
    ],
    key: &[v1::SIS_ID],
    unique: &[v1::SIS_ID],
    id_column: Some(v1::SIS_ID),
    ..BASE
};

pub const V1_SECTION: FileSpec = FileSpec {
    kind: FileKind::Section,
    name: name::SECTION,
    columns: &[
        req(v1::SIS_ID, Field::Id),
        req(v1::SCHOOL_SIS_ID, Field::School),
        req(v1::SECTION_NAME, Field::Title),
        opt_on(v1::SECTION_NUMBER, Field::SectionNumber),
        opt_on(v1::TERM_SIS_ID, Field::TermId),
        opt_on(v1::TERM_NAME, Field::TermName),
        opt_on(v1::TERM_START_DATE, Field::TermStart),
        opt_on(v1::TERM_END_DATE, Field::TermEnd),
        opt_on(v1::COURSE_SIS_ID, Field::CourseId),
        opt_on(v1::COURSE_NAME, Field::CourseName),
        opt_on(v1::COURSE_NUMBER, Field::CourseNumber),
        opt_on(v1::COURSE_DESCRIPTION, Field::CourseDescription),
        opt_on(v1::COURSE_SUBJECT, Field::CourseSubject),
        opt_on(v1::PERIODS, Field::Periods),
        opt(v1::STATUS),
    ],
    presence: Presence::Together,
    key: &[v1::SIS_ID],
    unique: &[v1::SIS_ID],
    id_column: Some(v1::SIS_ID),
    references: &[reference(v1::SCHOOL_SIS_ID, name::SCHOOL)],
    ..BASE
};

/// The columns Student.csv and Teacher.csv share, in Microsoft's order. SDS needs only the IDs
/// and the username (Microsoft's "Min Required Attributes" sample has nothing else).
const V1_USER: [Column; 6] = [
    req(v1::SIS_ID, Field::Id),
    req(v1::SCHOOL_SIS_ID, Field::School),
    opt_w(v1::FIRST_NAME, Field::FirstName),
    opt_w(v1::LAST_NAME, Field::LastName),
    column(v1::USERNAME, Need::Expected, Some(Field::Username)),
    secret(opt_w(v1::PASSWORD, Field::Password)),
];

pub const V1_STUDENT: FileSpec = FileSpec {
    kind: FileKind::Student,
    name: name::STUDENT,
    columns: &[
        V1_USER[0],
        V1_USER[1],
        V1_USER[2],
        V1_USER[3],
        V1_USER[4],
        V1_USER[5],
        opt_on(v1::STATE_ID, Field::StateId),
        opt_on(v1::SECONDARY_EMAIL, Field::SecondaryEmail),
        opt_on(v1::STUDENT_NUMBER, Field::StudentNumber),
        opt_on(v1::MIDDLE_NAME, Field::MiddleName),
        enumerated(opt_on(v1::GRADE, Field::Grade), &GRADES),
        opt_on(v1::STATUS, Field::Status),
        opt_on(v1::BIRTHDATE, Field::BirthDate),
        opt_on(v1::GRADUATION_YEAR, Field::GraduationYear),
    ],
    // sds-sync writes one row per student (the source contract has one school per student);
    // SDS itself keys user rows by (SIS ID, School SIS ID).
    key: &[v1::SIS_ID],
    unique: &[v1::SIS_ID, v1::SCHOOL_SIS_ID],
    id_column: Some(v1::SIS_ID),
    references: &[reference(v1::SCHOOL_SIS_ID, name::SCHOOL)],
    username: Some(UsernameColumn {
        column: v1::USERNAME,
        owner: v1::SIS_ID,
    }),
    ..BASE
};

/// One row per (teacher, school): keyed by both.
pub const V1_TEACHER: FileSpec = FileSpec {
    kind: FileKind::Teacher,
    name: name::TEACHER,
    columns: &[
        V1_USER[0],
        V1_USER[1],
        V1_USER[2],
        V1_USER[3],
        V1_USER[4],
        V1_USER[5],
        opt_on(v1::STATE_ID, Field::StateId),
        opt_on(v1::TEACHER_NUMBER, Field::TeacherNumber),
        opt_on(v1::STATUS, Field::Status),
        opt_on(v1::MIDDLE_NAME, Field::MiddleName),
        opt_on(v1::SECONDARY_EMAIL, Field::SecondaryEmail),
        opt_on(v1::TITLE, Field::JobTitle),
        opt_on(v1::QUALIFICATION, Field::Qualification),
    ],
    key: &[v1::SIS_ID, v1::SCHOOL_SIS_ID],
    unique: &[v1::SIS_ID, v1::SCHOOL_SIS_ID],
    ..V1_STUDENT
};

pub const V1_STUDENT_ENROLLMENT: FileSpec = FileSpec {
    kind: FileKind::StudentEnrollment,
    name: name::STUDENT_ENROLLMENT,
    columns: &[
        req(v1::SECTION_SIS_ID, Field::Section),
        req(v1::SIS_ID, Field::User),
    ],
    presence: Presence::Together,
    key: &[v1::SECTION_SIS_ID, v1::SIS_ID],
    unique: &[v1::SECTION_SIS_ID, v1::SIS_ID],
    references: &[
        reference(v1::SECTION_SIS_ID, name::SECTION),
        reference(v1::SIS_ID, name::STUDENT),
    ],
    ..BASE
};

pub const V1_TEACHER_ROSTER: FileSpec = FileSpec {
    kind: FileKind::TeacherRoster,
    name: name::TEACHER_ROSTER,
    references: &[
        reference(v1::SECTION_SIS_ID, name::SECTION),
        reference(v1::SIS_ID, name::TEACHER),
    ],
    ..V1_STUDENT_ENROLLMENT
};

pub const V1_LICENSE: FileSpec = FileSpec {
    kind: FileKind::License,
    name: name::LICENSE,
    columns: &[
        req(v1::DISPLAY_NAME, Field::DisplayName),
        req(v1::USER_PRINCIPAL_NAME, Field::Email),
        req(v1::ACCOUNT_SKU_ID, Field::SkuId),
    ],
    presence: Presence::Optional,
    key: &[
        v1::DISPLAY_NAME,
        v1::USER_PRINCIPAL_NAME,
        v1::ACCOUNT_SKU_ID,
    ],
    unique: &[v1::USER_PRINCIPAL_NAME],
    license: true,
    ..BASE
};

const V1: &[FileSpec] = &[
    V1_SCHOOL,
    V1_SECTION,
    V1_STUDENT,
    V1_TEACHER,
    V1_STUDENT_ENROLLMENT,
    V1_TEACHER_ROSTER,
    V1_LICENSE,
];

// ---------------------------------------------------------------------------------------------
// SDS v2 and v2.1
// ---------------------------------------------------------------------------------------------

pub const V2_ORGS: FileSpec = FileSpec {
    kind: FileKind::Orgs,
    name: name::ORGS,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        req(r::NAME, Field::Name),
        enumerated(req(r::TYPE, Field::OrgType), &ORG_TYPES),
        opt_on(r::PARENT_SOURCED_ID, Field::Parent),
    ],
    key: &[r::SOURCED_ID],
    unique: &[r::SOURCED_ID],
    id_column: Some(r::SOURCED_ID),
    references: &[reference(r::PARENT_SOURCED_ID, name::ORGS)],
    ..BASE
};

pub const V2_USERS: FileSpec = FileSpec {
    kind: FileKind::UsersV2,
    name: name::USERS,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        req(r::ORG_SOURCED_IDS, Field::SchoolList),
        column(r::GIVEN_NAME, Need::Header, Some(Field::FirstName)),
        column(r::FAMILY_NAME, Need::Header, Some(Field::LastName)),
        column(r::USERNAME, Need::Expected, Some(Field::Username)),
        secret(opt_w(r::PASSWORD, Field::Password)),
        enumerated(req(r::ROLE, Field::Role), &ROLES),
        enumerated(opt_w(r::GRADE, Field::Grade), &GRADES),
    ],
    key: &[r::SOURCED_ID],
    unique: &[r::SOURCED_ID],
    id_column: Some(r::SOURCED_ID),
    references: &[Reference {
        column: r::ORG_SOURCED_IDS,
        file: name::ORGS,
        list: true,
    }],
    username: Some(UsernameColumn {
        column: r::USERNAME,
        owner: r::SOURCED_ID,
    }),
    entity_column: Some(r::ROLE),
    ..BASE
};

pub const V2_CLASSES: FileSpec = FileSpec {
    kind: FileKind::ClassesV2,
    name: name::CLASSES,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        req(r::ORG_SOURCED_ID, Field::School),
        req(r::TITLE, Field::Title),
    ],
    presence: Presence::Together,
    key: &[r::SOURCED_ID],
    unique: &[r::SOURCED_ID],
    id_column: Some(r::SOURCED_ID),
    references: &[reference(r::ORG_SOURCED_ID, name::ORGS)],
    ..BASE
};

pub const V2_ENROLLMENTS: FileSpec = FileSpec {
    kind: FileKind::Enrollments,
    name: name::ENROLLMENTS,
    columns: &[
        req(r::CLASS_SOURCED_ID, Field::Section),
        req(r::USER_SOURCED_ID, Field::User),
        enumerated(req(r::ROLE, Field::Role), &ROLES),
    ],
    presence: Presence::Together,
    key: &[r::CLASS_SOURCED_ID, r::USER_SOURCED_ID, r::ROLE],
    unique: &[r::CLASS_SOURCED_ID, r::USER_SOURCED_ID],
    references: &[
        reference(r::CLASS_SOURCED_ID, name::CLASSES),
        reference(r::USER_SOURCED_ID, name::USERS),
    ],
    entity_column: Some(r::ROLE),
    ..BASE
};

const V2: &[FileSpec] = &[V2_ORGS, V2_USERS, V2_CLASSES, V2_ENROLLMENTS];

pub const V21_USERS: FileSpec = FileSpec {
    kind: FileKind::UsersV21,
    name: name::USERS,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        column(r::USERNAME, Need::Expected, Some(Field::Username)),
        // Required by SDS only to create a user (not to match an existing one).
        column(r::GIVEN_NAME, Need::Header, Some(Field::FirstName)),
        column(r::FAMILY_NAME, Need::Header, Some(Field::LastName)),
        secret(opt_w(r::PASSWORD, Field::Password)),
        opt(r::ACTIVE_DIRECTORY_MATCH_ID),
        opt_on(r::EMAIL, Field::Email),
        opt_on(r::PHONE, Field::Phone),
        opt(r::SMS),
    ],
    key: &[r::SOURCED_ID],
    unique: &[r::SOURCED_ID],
    id_column: Some(r::SOURCED_ID),
    username: Some(UsernameColumn {
        column: r::USERNAME,
        owner: r::SOURCED_ID,
    }),
    ..BASE
};

pub const V21_ROLES: FileSpec = FileSpec {
    kind: FileKind::Roles,
    name: name::ROLES,
    columns: &[
        req(r::USER_SOURCED_ID, Field::Id),
        req(r::ORG_SOURCED_ID, Field::School),
        enumerated(req(r::ROLE, Field::Role), &ROLES),
        opt(r::SESSION_SOURCED_ID),
        enumerated(opt_on(r::GRADE, Field::Grade), &GRADES),
        opt_on(r::IS_PRIMARY, Field::IsPrimary),
        opt(r::ROLE_START_DATE),
        opt(r::ROLE_END_DATE),
    ],
    key: &[r::USER_SOURCED_ID, r::ORG_SOURCED_ID, r::ROLE],
    unique: &[r::USER_SOURCED_ID, r::ORG_SOURCED_ID, r::ROLE],
    references: &[
        reference(r::USER_SOURCED_ID, name::USERS),
        reference(r::ORG_SOURCED_ID, name::ORGS),
        reference(r::SESSION_SOURCED_ID, name::ACADEMIC_SESSIONS),
    ],
    entity_column: Some(r::ROLE),
    ..BASE
};

pub const V21_CLASSES: FileSpec = FileSpec {
    kind: FileKind::ClassesV21,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        req(r::ORG_SOURCED_ID, Field::School),
        req(r::TITLE, Field::Title),
        opt_on(r::SESSION_SOURCED_IDS, Field::TermId),
        opt_on(r::COURSE_SOURCED_ID, Field::CourseId),
    ],
    references: &[
        reference(r::ORG_SOURCED_ID, name::ORGS),
        Reference {
            column: r::SESSION_SOURCED_IDS,
            file: name::ACADEMIC_SESSIONS,
            list: true,
        },
        reference(r::COURSE_SOURCED_ID, name::COURSES),
    ],
    ..V2_CLASSES
};

/// The optional v2.1 files. sds-sync writes academic sessions, courses and relationships (each
/// from an optional query); demographics and user flags are described so that `validate`
/// accepts them.
const OPTIONAL: FileSpec = FileSpec {
    presence: Presence::Optional,
    ..BASE
};

pub const V21_ACADEMIC_SESSIONS: FileSpec = FileSpec {
    kind: FileKind::AcademicSessions,
    name: name::ACADEMIC_SESSIONS,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        req(r::TITLE, Field::Title),
        enumerated(req(r::TYPE, Field::SessionType), &SESSION_TYPES),
        opt_w(r::SCHOOL_YEAR, Field::SchoolYear),
        opt_w(r::START_DATE, Field::StartDate),
        opt_w(r::END_DATE, Field::EndDate),
    ],
    key: &[r::SOURCED_ID],
    unique: &[r::SOURCED_ID],
    id_column: Some(r::SOURCED_ID),
    ..OPTIONAL
};

pub const V21_COURSES: FileSpec = FileSpec {
    kind: FileKind::Courses,
    name: name::COURSES,
    columns: &[
        req(r::SOURCED_ID, Field::Id),
        req(r::ORG_SOURCED_ID, Field::School),
        req(r::TITLE, Field::Title),
        opt_on(r::CODE, Field::Code),
        opt_on(r::SCHOOL_YEAR_SOURCED_ID, Field::SchoolYearId),
        opt_on(r::SUBJECT, Field::Subject),
        enumerated(opt_on(r::GRADE, Field::Grade), &GRADES),
    ],
    key: &[r::SOURCED_ID],
    unique: &[r::SOURCED_ID],
    id_column: Some(r::SOURCED_ID),
    references: &[
        reference(r::ORG_SOURCED_ID, name::ORGS),
        reference(r::SCHOOL_YEAR_SOURCED_ID, name::ACADEMIC_SESSIONS),
    ],
    ..OPTIONAL
};

pub const V21_DEMOGRAPHICS: FileSpec = FileSpec {
    kind: FileKind::Demographics,
    name: name::DEMOGRAPHICS,
    columns: &[
        column(r::USER_SOURCED_ID, Need::Required, None),
        opt(r::SEX),
        opt(r::BIRTH_DATE),
        opt(r::BIRTH_CITY),
        opt(r::BIRTH_STATE),
        opt(r::BIRTH_COUNTRY),
        opt(r::ETHNICITY_CODES),
        opt(r::RACE_CODES),
    ],
    key: &[r::USER_SOURCED_ID],
    unique: &[r::USER_SOURCED_ID],
    references: &[reference(r::USER_SOURCED_ID, name::USERS)],
    written: false,
    ..OPTIONAL
};

pub const V21_USER_FLAGS: FileSpec = FileSpec {
    kind: FileKind::UserFlags,
    name: name::USER_FLAGS,
    columns: &[
        column(r::USER_SOURCED_ID, Need::Required, None),
        column(r::FLAG, Need::Required, None),
    ],
    key: &[r::USER_SOURCED_ID, r::FLAG],
    unique: &[r::USER_SOURCED_ID, r::FLAG],
    references: &[reference(r::USER_SOURCED_ID, name::USERS)],
    written: false,
    ..OPTIONAL
};

pub const V21_RELATIONSHIPS: FileSpec = FileSpec {
    kind: FileKind::Relationships,
    name: name::RELATIONSHIPS,
    columns: &[
        req(r::USER_SOURCED_ID, Field::User),
        req(r::RELATIONSHIP_USER_SOURCED_ID, Field::RelatedUser),
        enumerated(
            req(r::RELATIONSHIP_ROLE, Field::RelationshipRole),
            &RELATIONSHIP_ROLES,
        ),
    ],
    key: &[r::USER_SOURCED_ID, r::RELATIONSHIP_USER_SOURCED_ID],
    unique: &[r::USER_SOURCED_ID, r::RELATIONSHIP_USER_SOURCED_ID],
    references: &[
        reference(r::USER_SOURCED_ID, name::USERS),
        reference(r::RELATIONSHIP_USER_SOURCED_ID, name::USERS),
    ],
    ..OPTIONAL
};

const V2_1_TABLE: &[FileSpec] = &[
    V2_ORGS,
    V21_USERS,
    V21_ROLES,
    V21_CLASSES,
    V2_ENROLLMENTS,
    V21_ACADEMIC_SESSIONS,
    V21_COURSES,
    V21_DEMOGRAPHICS,
    V21_USER_FLAGS,
    V21_RELATIONSHIPS,
];

// ---------------------------------------------------------------------------------------------
// Sign-in names
// ---------------------------------------------------------------------------------------------

/// `user@domain`: one `@` with something on both sides, and no white space.
pub fn is_full_username(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The characters of a sign-in name as SDS and Entra compare them: ignoring case.
pub fn fold_username(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

/// Orders sign-in names ignoring case; `Equal` means SDS sees one account.
pub fn cmp_usernames(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        fold_username(a).cmp(fold_username(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        let err = "v3".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("v1, v2, v2.1"), "{err}");
        assert!("V1".parse::<Format>().is_err(), "format names are exact");
    }

    #[test]
    fn written_headers_are_the_files_sds_sync_writes() {
        let header = |f: &FileSpec| f.header().join(",");
        assert_eq!(header(&V1_SCHOOL), "SIS ID,Name");
        assert_eq!(header(&V1_SECTION), "SIS ID,School SIS ID,Section Name");
        for f in [V1_STUDENT, V1_TEACHER] {
            assert_eq!(
                header(&f),
                "SIS ID,School SIS ID,First Name,Last Name,Username,Password"
            );
        }
        assert_eq!(header(&V1_STUDENT_ENROLLMENT), "Section SIS ID,SIS ID");
        assert_eq!(header(&V1_TEACHER_ROSTER), "Section SIS ID,SIS ID");
        assert_eq!(
            header(&V1_LICENSE),
            "Display Name,User Principal Name,Account Sku Id"
        );
        assert_eq!(header(&V2_ORGS), "sourcedId,name,type");
        assert_eq!(
            header(&V2_USERS),
            "sourcedId,orgSourcedIds,givenName,familyName,username,password,role,grade"
        );
        assert_eq!(header(&V2_CLASSES), "sourcedId,orgSourcedId,title");
        assert_eq!(header(&V21_CLASSES), "sourcedId,orgSourcedId,title");
        assert_eq!(header(&V2_ENROLLMENTS), "classSourcedId,userSourcedId,role");
        assert_eq!(
            header(&V21_USERS),
            "sourcedId,username,givenName,familyName,password"
        );
        assert_eq!(header(&V21_ROLES), "userSourcedId,orgSourcedId,role");
        let names = |f: Format, lic| -> Vec<&str> { f.files(lic).iter().map(|s| s.name).collect() };
        assert_eq!(
            names(Format::V1, true),
            [
                "School.csv",
                "Section.csv",
                "Student.csv",
                "Teacher.csv",
                "StudentEnrollment.csv",
                "TeacherRoster.csv",
                "License.csv"
            ]
        );
        assert_eq!(names(Format::V1, false).len(), 6);
        assert_eq!(
            names(Format::V2, true),
            ["orgs.csv", "users.csv", "classes.csv", "enrollments.csv"]
        );
        assert_eq!(
            names(Format::V2_1, false),
            [
                "orgs.csv",
                "users.csv",
                "roles.csv",
                "classes.csv",
                "enrollments.csv"
            ]
        );
    }

    /// Microsoft's full headers, copied from SDS-FORMATS.md ("Optional columns and files").
    #[test]
    fn full_headers_are_microsofts() {
        let full = |f: &FileSpec| {
            f.columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(",")
        };
        let cases = [
            (
                V1_SCHOOL,
                "SIS ID,Name,School Number,School NCES_ID,State ID,Grade Low,Grade High,Principal SIS ID,Principal Name,Principal Secondary Email,Address,City,State,Country,Zip,Phone,Zone",
            ),
            (
                V1_SECTION,
                "SIS ID,School SIS ID,Section Name,Section Number,Term SIS ID,Term Name,Term StartDate,Term EndDate,Course SIS ID,Course Name,Course Number,Course Description,Course Subject,Periods,Status",
            ),
            (
                V1_STUDENT,
                "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Secondary Email,Student Number,Middle Name,Grade,Status,Birthdate,Graduation Year",
            ),
            (
                V1_TEACHER,
                "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Teacher Number,Status,Middle Name,Secondary Email,Title,Qualification",
            ),
            (V2_ORGS, "sourcedId,name,type,parentSourcedId"),
            (
                V21_USERS,
                "sourcedId,username,givenName,familyName,password,activeDirectoryMatchId,email,phone,sms",
            ),
            (
                V21_ROLES,
                "userSourcedId,orgSourcedId,role,sessionSourcedId,grade,isPrimary,roleStartDate,roleEndDate",
            ),
            (
                V21_CLASSES,
                "sourcedId,orgSourcedId,title,sessionSourcedIds,courseSourcedId",
            ),
            (V2_ENROLLMENTS, "classSourcedId,userSourcedId,role"),
            (
                V21_ACADEMIC_SESSIONS,
                "sourcedId,title,type,schoolYear,startDate,endDate",
            ),
            (
                V21_COURSES,
                "sourcedId,orgSourcedId,title,code,schoolYearSourcedId,subject,grade",
            ),
            (
                V21_DEMOGRAPHICS,
                "userSourcedId,sex,birthDate,birthCity,birthState,birthCountry,ethnicityCodes,raceCodes",
            ),
            (V21_USER_FLAGS, "userSourcedId,flag"),
            (
                V21_RELATIONSHIPS,
                "userSourcedId,relationshipUserSourcedId,relationshipRole",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(full(&spec), want, "{}", spec.name);
        }
        assert_eq!(
            Format::V2_1
                .table()
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>(),
            [
                "orgs.csv",
                "users.csv",
                "roles.csv",
                "classes.csv",
                "enrollments.csv",
                "academicSessions.csv",
                "courses.csv",
                "demographics.csv",
                "userFlags.csv",
                "relationships.csv"
            ]
        );
    }

    /// The table's own consistency: every name it refers to exists where it must.
    #[test]
    fn tables_are_consistent() {
        for format in Format::ALL {
            let table = format.table();
            let mut names = HashSet::new();
            for f in table {
                assert!(names.insert(f.name), "{format}: {} twice", f.name);
                let mut cols = HashSet::new();
                for c in f.columns {
                    assert!(cols.insert(c.name), "{}: column {} twice", f.name, c.name);
                    // Every column of passwords is marked: the validator never echoes them.
                    let password = c.name.to_ascii_lowercase().contains("password")
                        || c.field == Some(Field::Password);
                    assert_eq!(c.is_secret(), password, "{}: {}", f.name, c.name);
                }
                // The key is the leading written columns, so sorted files diff by a merge.
                if f.written {
                    let header = f.header();
                    assert!(f.key_len() <= header.len(), "{}", f.name);
                    assert_eq!(&header[..f.key_len()], f.key, "{}: key", f.name);
                }
                for k in f.key {
                    assert!(f.column(k).is_some(), "{}: key {k}", f.name);
                }
                for u in f.unique {
                    assert!(f.column(u).is_some(), "{}: unique {u}", f.name);
                }
                if let Some(id) = f.id_column {
                    assert_eq!(f.unique.first(), Some(&id), "{}: id column", f.name);
                }
                for r in f.references {
                    assert!(f.column(r.column).is_some(), "{}: {}", f.name, r.column);
                    let target = format.file(r.file).expect("referenced file");
                    assert!(target.id_column.is_some(), "{} has no id", target.name);
                }
                if let Some(u) = f.username {
                    assert!(f.column(u.column).is_some() && f.column(u.owner).is_some());
                }
                if let Some(e) = f.entity_column {
                    assert!(f.entity_index().is_some(), "{}: {e} is written", f.name);
                }
                // Written files have a header; every required column is written.
                if f.written {
                    for c in f.columns {
                        assert!(
                            c.field.is_some() || c.need == Need::Optional,
                            "{}: {} is required but not written",
                            f.name,
                            c.name
                        );
                    }
                }
            }
            // Required files of SDS are written.
            for f in table.iter().filter(|f| f.presence != Presence::Optional) {
                assert!(f.written, "{}", f.name);
            }
        }
    }

    #[test]
    fn enumerations_match_ignoring_case() {
        assert_eq!(
            ORG_TYPES.find("MINISTRYofEducation"),
            Some("ministryOfEducation")
        );
        assert_eq!(ROLES.find("Student"), Some("student"));
        assert_eq!(ROLES.find("Professor"), Some("professor"));
        assert_eq!(ROLES.find("wizard"), None);
        assert_eq!(SESSION_TYPES.find("gradingperiod"), Some("gradingPeriod"));
    }

    #[test]
    fn usernames_compare_ignoring_case() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_usernames("Ann@X.org", "ann@x.ORG"), Equal);
        assert_eq!(cmp_usernames("Zo\u{eb}@x", "ZO\u{cb}@X"), Equal);
        assert_eq!(cmp_usernames("a@x", "b@x"), Less);
        assert_ne!(cmp_usernames("ann", "anne"), Equal);
        assert!(is_full_username("a@b"));
        for bad in ["", "a", "@b", "a@", "a@b@c", "a @b"] {
            assert!(!is_full_username(bad), "{bad}");
        }
    }
}
