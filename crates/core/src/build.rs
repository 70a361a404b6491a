//! Building an export: records in (any order), validated, de-duplicated and sorted SDS files out.
//!
//! The builder owns every rule that turns source-contract records into SDS rows: value
//! normalisation, school selection, reference checks (section → school, user → school,
//! enrollment → section and user), de-duplication, the username rule, passwords, the v1 licence
//! file and the v2/v2.1 merged user ID space. Rows that break a rule are dropped and counted per
//! file and reason, never silently.
//!
//! The full SDS formats ([`ExportOptions::full_formats`]): the optional queries (academic
//! sessions, courses, guardians) fill `academicSessions.csv`, `courses.csv` and
//! `relationships.csv` (guardians also get a `users.csv` row each); the optional columns of the
//! contract fill the optional columns of every file (`optional_columns`), switched on per file
//! by [`FileSpec::variant`]; dates, grades and enumerations are normalised (module `values`).
//! With none of those options set, every file is byte for byte what it was before them.
//!
//! # Determinism
//! Output is a pure function of (records, options): every table is sorted before it is
//! de-duplicated, so whichever order the SIS returns rows in (and however often it repeats
//! them), the same row survives and the files are byte-identical.
//!
//! # Memory
//! Built to hold a million students and several million enrollments in well under 256 MB:
//! - school, section, student and teacher records are packed rows (fields joined by NUL, which
//!   sorts below every other byte, so string order is field order) stored back to back in one
//!   arena per table (module `table`): a row costs its bytes plus eight;
//! - an enrollment or roster row is a pair of `u32`: at push time the section and user IDs are
//!   interned (module `intern`), at `finish` the symbols are resolved in place into indexes
//!   of the sorted section and user tables, so sorting the pairs sorts the file;
//! - nothing is rendered ahead of time: `write_file` streams each file from these tables.

use crate::contract::{Entity, MAX_COLUMNS};
use crate::csvout::{CsvOut, NoRows, RowSink, Tee};
use crate::format::{
    self, Enumeration, Field, FileKind, FileSpec, GRADES, RELATIONSHIP_ROLES, SESSION_TYPES,
    cmp_usernames, is_full_username,
};
use crate::options::{District, ExportOptions, Format, UsernameRule};
use hashbrown::DefaultHashBuilder;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};

mod intern;
mod table;
mod values;
use intern::Interner;
use table::{Table, field, fields};

pub use crate::format::SDS_ROW_LIMIT;

/// Why a row was left out of a file. Every drop is counted and reported with the first IDs it
/// concerns, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// A required value (contract column) was NULL or blank after trimming.
    MissingValue,
    /// An exact copy of another row (same values in every column): one is kept.
    Duplicate,
    /// Several rows with one key (a student ID, a section, a teacher at a school) but different
    /// values: which one is right cannot be known, so every row of the conflict is dropped (with
    /// the enrollments and roster rows that refer to it).
    ConflictingDuplicate,
    /// The row's school is not among `[export] schools`; for a guardian's link
    /// (`relationships.csv`), its student's school.
    SchoolNotSelected,
    /// The school the row refers to is not exported (not returned by the schools query).
    UnknownSchool,
    /// The section an enrollment/roster row refers to is not exported.
    UnknownSection,
    /// The student / teacher an enrollment/roster row refers to is not exported.
    UnknownUser,
    /// The username rule (`email`, `email-local-part`) gives a blank username: SDS cannot match
    /// such a user to an account.
    NoUsername,
    /// SDS v2.1 needs a full `user@domain` username; the e-mail address is not one.
    InvalidUsername,
    /// The username is equal, ignoring case, to another user's: SDS would join two people to
    /// one account, so every row of the clash is dropped (with their enrollments and rosters).
    /// In `License.csv`: two students with one e-mail address.
    DuplicateUsername,
    /// Licence row for a student without a usable e-mail address (blank, or not `user@domain`):
    /// there is no User Principal Name.
    NoEmail,
    /// v2: a school ID containing a comma, which `orgSourcedIds` (a comma-separated list)
    /// cannot carry: SDS would read it as two schools.
    CommaInSchoolId,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::MissingValue,
        DropReason::Duplicate,
        DropReason::ConflictingDuplicate,
        DropReason::SchoolNotSelected,
        DropReason::UnknownSchool,
        DropReason::UnknownSection,
        DropReason::UnknownUser,
        DropReason::NoUsername,
        DropReason::InvalidUsername,
        DropReason::DuplicateUsername,
        DropReason::NoEmail,
        DropReason::CommaInSchoolId,
    ];

    /// A stable snake_case name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MissingValue => "missing_value",
            DropReason::Duplicate => "duplicate",
            DropReason::ConflictingDuplicate => "conflicting_duplicate",
            DropReason::SchoolNotSelected => "school_not_selected",
            DropReason::UnknownSchool => "unknown_school",
            DropReason::UnknownSection => "unknown_section",
            DropReason::UnknownUser => "unknown_user",
            DropReason::NoUsername => "no_username",
            DropReason::InvalidUsername => "invalid_username",
            DropReason::DuplicateUsername => "duplicate_username",
            DropReason::NoEmail => "no_email",
            DropReason::CommaInSchoolId => "comma_in_school_id",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most this many IDs are named per file and reason (the smallest, so the list does not
/// depend on the order the SIS returns rows in).
pub const MAX_DROP_IDS: usize = 20;

/// Rows of one file left out for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub file: &'static str,
    pub reason: DropReason,
    pub count: u64,
    /// Up to [`MAX_DROP_IDS`] IDs of the dropped rows, sorted: the row's own ID (school,
    /// section, student, teacher), `section/user` for an enrollment or roster row, the student
    /// ID for a licence row. `(blank)` for a blank ID.
    pub ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// v2/v2.1 put students and teachers in one `users.csv`; one `sourcedId` (prefixes
    /// applied) naming a student and a teacher would merge two people.
    #[error(
        "ID {id:?} is used by a student and a teacher; v2/v2.1 put both in one users.csv, so set [export] student_id_prefix or teacher_id_prefix to tell them apart"
    )]
    SharedUserId { id: String },
    /// `[export.district] id` is also the ID of an exported school: `orgs.csv` would hold two
    /// orgs with one `sourcedId`.
    #[error(
        "[export.district] id {id:?} is also the ID of a school the schools query returns; choose a district ID no school has"
    )]
    DistrictIdClash { id: String },
    /// More rows (or distinct IDs) of one entity than the builder's `u32` indexes can address.
    #[error("too many {entity} rows to build one export (over 4 billion rows or 4 GB of text)")]
    TooManyRows { entity: Entity },
}

// Packed row layouts (module `table`):
//   school:   id, name
//   section:  id, school, title, fallback flag ("1" when the title is the course code)
//   student:  id, school, first, last, email, password, grade
//   teacher:  id, school, first, last, email, password
//   session:  id, title, type, school year, start date, end date
//   course:   id, school, title, code, school year (a session ID), subject, grade
//   guardian: id, student, first, last, email, phone, relationship role
// Sections are stored already in their SDS shape; students and teachers share the user layout.
// With `optional_columns` the school, student and teacher rows carry every contract column in
// contract order (the layouts above are their first columns), and section rows carry the
// contract columns from `course_description` on after the fallback flag: see `packed_index`.
// Without it they hold exactly the fields above, so sorting and de-duplication are unchanged.
const ID: usize = 0;
const SCHOOL: usize = 1;
const FALLBACK: usize = 3;
const EMAIL: usize = 4;
const GRADE: usize = 6;
const G_STUDENT: usize = 1;
const G_PHONE: usize = 5;
const G_ROLE: usize = 6;
const C_SCHOOL_YEAR: usize = 4;

/// Marks an interned symbol that resolved to nothing exported.
const UNRESOLVED: u32 = u32::MAX;

/// Which output a source record feeds; drops are counted per slot and only turned into file
/// names at `finish`, because v2 folds students and teachers into one `users.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    School,
    Section,
    Student,
    Teacher,
    Enrollment,
    Roster,
    License,
    Session,
    Course,
    /// A guardian record (its `users.csv` row).
    Guardian,
    /// A guardian record's link to its student (its `relationships.csv` row).
    Relationship,
}

impl Slot {
    const ALL: [Slot; 11] = [
        Slot::School,
        Slot::Section,
        Slot::Student,
        Slot::Teacher,
        Slot::Enrollment,
        Slot::Roster,
        Slot::License,
        Slot::Session,
        Slot::Course,
        Slot::Guardian,
        Slot::Relationship,
    ];

    fn of(entity: Entity) -> Slot {
        match entity {
            Entity::Schools => Slot::School,
            Entity::Sections => Slot::Section,
            Entity::Students => Slot::Student,
            Entity::Teachers => Slot::Teacher,
            Entity::StudentEnrollments => Slot::Enrollment,
            Entity::TeacherRosters => Slot::Roster,
            Entity::AcademicSessions => Slot::Session,
            Entity::Courses => Slot::Course,
            Entity::Guardians => Slot::Guardian,
        }
    }

    /// The file this slot's rows go to in `format` (none for the licence outside v1).
    fn file(self, format: Format) -> Option<&'static str> {
        use FileKind as K;
        let kind = match (format, self) {
            (Format::V1, Slot::School) => K::School,
            (Format::V1, Slot::Section) => K::Section,
            (Format::V1, Slot::Student) => K::Student,
            (Format::V1, Slot::Teacher) => K::Teacher,
            (Format::V1, Slot::Enrollment) => K::StudentEnrollment,
            (Format::V1, Slot::Roster) => K::TeacherRoster,
            (Format::V1, Slot::License) => K::License,
            (Format::V2_1, Slot::Session) => K::AcademicSessions,
            (Format::V2_1, Slot::Course) => K::Courses,
            (Format::V2_1, Slot::Guardian) => K::UsersV21,
            (Format::V2_1, Slot::Relationship) => K::Relationships,
            (_, Slot::Session | Slot::Course | Slot::Guardian | Slot::Relationship) => {
                return None;
            }
            (_, Slot::School) => K::Orgs,
            (Format::V2, Slot::Section) => K::ClassesV2,
            (_, Slot::Section) => K::ClassesV21,
            (Format::V2, Slot::Student | Slot::Teacher) => K::UsersV2,
            (_, Slot::Student | Slot::Teacher) => K::UsersV21,
            (_, Slot::Enrollment | Slot::Roster) => K::Enrollments,
            (_, Slot::License) => return None,
        };
        format
            .table()
            .iter()
            .find(|f| f.kind == kind)
            .map(|f| f.name)
    }
}

/// Drop counts by slot and reason, with the smallest IDs of each.
struct Tally {
    counts: [[u64; DropReason::ALL.len()]; Slot::ALL.len()],
    ids: Vec<Vec<String>>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: [[0; DropReason::ALL.len()]; Slot::ALL.len()],
            ids: vec![Vec::new(); DropReason::ALL.len() * Slot::ALL.len()],
        }
    }
}

impl Tally {
    /// Counts one dropped row and keeps its ID if it is among the smallest.
    fn drop_row(&mut self, slot: Slot, reason: DropReason, id: &str) {
        self.counts[slot as usize][reason as usize] += 1;
        let id = if id.is_empty() { "(blank)" } else { id };
        let Some(ids) = self
            .ids
            .get_mut(slot as usize * DropReason::ALL.len() + reason as usize)
        else {
            return;
        };
        if ids.len() == MAX_DROP_IDS && ids.last().is_some_and(|last| id >= last.as_str()) {
            return;
        }
        if let Err(at) = ids.binary_search_by(|probe| probe.as_str().cmp(id)) {
            ids.insert(at, id.to_owned());
            ids.truncate(MAX_DROP_IDS);
        }
    }

    /// The drops of every file of `files`, in file order then reason order.
    fn report(&self, format: Format, files: &[&'static FileSpec]) -> Vec<Dropped> {
        let mut out = Vec::new();
        for spec in files {
            for reason in DropReason::ALL {
                let slots = Slot::ALL
                    .iter()
                    .filter(|slot| slot.file(format) == Some(spec.name));
                let mut count = 0;
                let mut ids: Vec<String> = Vec::new();
                for &slot in slots {
                    count += self.counts[slot as usize][reason as usize];
                    if let Some(v) = self
                        .ids
                        .get(slot as usize * DropReason::ALL.len() + reason as usize)
                    {
                        ids.extend(v.iter().cloned());
                    }
                }
                if count > 0 {
                    ids.sort_unstable();
                    ids.dedup();
                    ids.truncate(MAX_DROP_IDS);
                    out.push(Dropped {
                        file: spec.name,
                        reason,
                        count,
                        ids,
                    });
                }
            }
        }
        out
    }
}

/// Collects records; `finish` turns them into a [`Built`] export.
///
/// ```
/// use sds_core::{Builder, Entity, ExportOptions};
/// let mut b = Builder::new(ExportOptions::default());
/// b.push(Entity::Schools, vec![Some("001".into()), Some("North High".into())]);
/// let built = b.finish().unwrap();
/// let mut out = Vec::new();
/// built.write_file("School.csv", &mut out).unwrap();
/// assert_eq!(out, b"SIS ID,Name\r\n001,North High\r\n");
/// ```
pub struct Builder {
    opts: ExportOptions,
    /// `opts.schools` normalised, sorted and unique; empty selects every school.
    selected: Vec<String>,
    schools: Table,
    sections: Table,
    students: Table,
    teachers: Table,
    sessions: Table,
    courses: Table,
    guardians: Table,
    section_ids: Interner,
    student_ids: Interner,
    teacher_ids: Interner,
    /// IDs of the students dropped as `school_not_selected`, kept only when guardians are read:
    /// a guardian's link to one of them is dropped for the same reason, not as a dangling link.
    unselected_students: Interner,
    /// (section symbol, student symbol); indexes into the sorted tables after `finish`.
    enrollments: Vec<(u32, u32)>,
    /// (section symbol, teacher symbol).
    rosters: Vec<(u32, u32)>,
    /// Per entity, bit `i` set when the query returns contract column `i` (see
    /// [`Builder::returned`]); every bit set until told otherwise.
    returned: [u32; ENTITIES],
    values: ValueCounts,
    tally: Tally,
    too_many: Option<Entity>,
    scratch: String,
}

/// Every entity, core and optional: the size of per-entity arrays.
const ENTITIES: usize = 9;

/// Values the builder had to leave blank or write as is, counted for the warnings: per
/// (entity, contract column), values that are not dates; per enumeration, values that are not
/// in Microsoft's default list.
#[derive(Default)]
struct ValueCounts {
    bad_dates: BTreeMap<(Entity, &'static str), u64>,
    unknown: BTreeMap<&'static str, u64>,
}

impl Builder {
    pub fn new(opts: ExportOptions) -> Builder {
        let mut selected: Vec<String> = opts
            .schools
            .iter()
            .map(|s| clean(s).into_owned())
            .filter(|s| !s.is_empty())
            .collect();
        selected.sort_unstable();
        selected.dedup();
        Builder {
            opts,
            selected,
            schools: Table::default(),
            sections: Table::default(),
            students: Table::default(),
            teachers: Table::default(),
            sessions: Table::default(),
            courses: Table::default(),
            guardians: Table::default(),
            section_ids: Interner::new(),
            student_ids: Interner::new(),
            teacher_ids: Interner::new(),
            unselected_students: Interner::new(),
            enrollments: Vec::new(),
            rosters: Vec::new(),
            returned: [u32::MAX; ENTITIES],
            values: ValueCounts::default(),
            tally: Tally::default(),
            too_many: None,
            scratch: String::new(),
        }
    }

    /// Tells the builder which contract columns the query of `entity` returns (`present[i]` for
    /// `entity.columns()[i]`), as the source found them in the query's result columns. An
    /// optional SDS column is written (`optional_columns`) only when its contract column is
    /// returned, so that its header does not depend on whether this run's values happen to
    /// be NULL. Not called, every column counts as returned.
    pub fn returned(&mut self, entity: Entity, present: &[bool]) {
        let mut mask = 0u32;
        for (i, p) in present.iter().enumerate().take(32) {
            if *p {
                mask |= 1 << i;
            }
        }
        if let Some(slot) = self.returned.get_mut(entity as usize) {
            *slot = mask;
        }
    }

    /// Adds one record. `values` are in `entity.columns()` order; `None` for NULL or an optional
    /// column the query does not return (a short vector means the trailing columns are absent;
    /// extra values are ignored).
    ///
    /// Every value is normalised: each CRLF, CR or LF (and NUL, which no CSV consumer takes)
    /// becomes one space, then leading/trailing white space is trimmed. A value blank after that
    /// is missing; a record missing a required column is dropped as
    /// [`DropReason::MissingValue`]. Case and leading zeros are never touched. Records of an
    /// optional query the options do not switch on (or outside v2.1) are ignored.
    pub fn push(&mut self, entity: Entity, values: Vec<Option<String>>) {
        let values: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        self.push_row(entity, &values);
    }

    /// [`Builder::push`] for borrowed values, as a source hands them out: nothing is copied but
    /// what the build keeps.
    pub fn push_row(&mut self, entity: Entity, values: &[Option<&str>]) {
        // The cells of a row live in an array as wide as the entity's contract: the millions
        // of enrollment rows do not pay for the sixteen columns of a school.
        match entity {
            Entity::StudentEnrollments | Entity::TeacherRosters => {
                self.push_cells::<4>(entity, values)
            }
            Entity::Students => self.push_cells::<15>(entity, values),
            Entity::Teachers | Entity::Sections => self.push_cells::<14>(entity, values),
            Entity::Schools => self.push_cells::<MAX_COLUMNS>(entity, values),
            Entity::AcademicSessions | Entity::Courses | Entity::Guardians => {
                if self.opts.format == Format::V2_1 && self.opts.reads(entity) {
                    self.push_cells::<7>(entity, values);
                }
            }
        }
    }

    /// [`Builder::push_row`] with the row's cells in an array of `N` (at least the entity's
    /// number of contract columns).
    fn push_cells<const N: usize>(&mut self, entity: Entity, values: &[Option<&str>]) {
        let columns = entity.columns();
        debug_assert!(columns.len() <= N);
        let cells: [Cow<'_, str>; N] = std::array::from_fn(|i| match values.get(i) {
            Some(Some(v)) if i < columns.len() => clean(v),
            _ => Cow::Borrowed(""),
        });
        let cell = |i: usize| cells.get(i).map_or("", |c| c.as_ref());
        let slot = Slot::of(entity);
        // The ID a dropped row is named by.
        let row_id = |scratch: &mut String| match entity {
            Entity::Schools
            | Entity::Students
            | Entity::Teachers
            | Entity::AcademicSessions
            | Entity::Courses => cell(0).to_owned(),
            Entity::Sections => {
                write_section_id(scratch, cell(0), cell(1), cell(2));
                scratch.clone()
            }
            Entity::StudentEnrollments | Entity::TeacherRosters => {
                write_section_id(scratch, cell(0), cell(1), cell(2));
                format!("{scratch}/{}", cell(3))
            }
            Entity::Guardians => format!("{}/{}", cell(0), cell(1)),
        };
        if columns
            .iter()
            .zip(&cells)
            .any(|(c, v)| !c.optional && v.is_empty())
        {
            let id = row_id(&mut self.scratch);
            self.tally.drop_row(slot, DropReason::MissingValue, &id);
            return;
        }
        // Rows of unselected schools are dropped at once, so memory follows the selection.
        let own_school = match entity {
            Entity::Schools | Entity::Sections => Some(cell(0)),
            Entity::Students | Entity::Teachers | Entity::Courses => Some(cell(1)),
            Entity::StudentEnrollments
            | Entity::TeacherRosters
            | Entity::AcademicSessions
            | Entity::Guardians => None,
        };
        if let Some(school) = own_school
            && !is_selected(&self.selected, school)
        {
            let id = row_id(&mut self.scratch);
            self.tally
                .drop_row(slot, DropReason::SchoolNotSelected, &id);
            if entity == Entity::Students && self.opts.reads(Entity::Guardians) {
                // Past the interner's limit, such links are counted as `unknown_user` instead.
                let _ = self.unselected_students.intern(cell(0));
            }
            return;
        }
        if entity == Entity::Schools && self.opts.format == Format::V2 && cell(0).contains(',') {
            self.tally
                .drop_row(slot, DropReason::CommaInSchoolId, cell(0));
            return;
        }
        // Passwords the admin chose not to export are not even kept in memory.
        let password = if self.opts.include_passwords {
            cell(5)
        } else {
            ""
        };
        let extras = self.opts.optional_columns;
        let stored = match entity {
            Entity::Schools if extras => {
                let mut row: [&str; 16] = std::array::from_fn(cell);
                for i in [5, 6] {
                    row[i] = map_grade(&self.opts.grade_map, row[i]);
                }
                self.schools.push(&row)
            }
            Entity::Schools => self.schools.push(&[cell(0), cell(1)]),
            Entity::Students if extras => {
                let birth = self.date(entity, 11, cell(11));
                let mut row: [&str; 15] = std::array::from_fn(cell);
                row[5] = password;
                row[6] = map_grade(&self.opts.grade_map, cell(6));
                row[11] = &birth;
                self.students.push(&row)
            }
            Entity::Students => {
                let grade = map_grade(&self.opts.grade_map, cell(6));
                self.students
                    .push(&[cell(0), cell(1), cell(2), cell(3), cell(4), password, grade])
            }
            Entity::Teachers if extras => {
                let mut row: [&str; 14] = std::array::from_fn(cell);
                row[5] = password;
                self.teachers.push(&row)
            }
            Entity::Teachers => {
                self.teachers
                    .push(&[cell(0), cell(1), cell(2), cell(3), cell(4), password])
            }
            Entity::Sections => {
                let (school, course, section, description) = (cell(0), cell(1), cell(2), cell(3));
                write_section_id(&mut self.scratch, school, course, section);
                // A section without a description keeps its course code as the name: dropping
                // it would silently unenroll every student and teacher in it, and SDS requires
                // a non-blank Section Name. The flag feeds a warning with the count.
                let (title, fallback) = if description.is_empty() {
                    (course, "1")
                } else {
                    (description, "")
                };
                if extras {
                    let start = self.date(entity, 6, cell(6));
                    let end = self.date(entity, 7, cell(7));
                    let mut row: [&str; 15] = [""; 15];
                    row[..4].copy_from_slice(&[&self.scratch, school, title, fallback]);
                    for (i, slot) in row.iter_mut().enumerate().skip(4) {
                        *slot = cell(i - 1);
                    }
                    row[7] = &start;
                    row[8] = &end;
                    self.sections.push(&row)
                } else {
                    self.sections
                        .push(&[&self.scratch, school, title, fallback])
                }
            }
            Entity::StudentEnrollments | Entity::TeacherRosters => {
                write_section_id(&mut self.scratch, cell(0), cell(1), cell(2));
                let (users, pairs) = if entity == Entity::StudentEnrollments {
                    (&mut self.student_ids, &mut self.enrollments)
                } else {
                    (&mut self.teacher_ids, &mut self.rosters)
                };
                match (
                    self.section_ids.intern(&self.scratch),
                    users.intern(cell(3)),
                ) {
                    (Some(section), Some(user)) => {
                        pairs.push((section, user));
                        true
                    }
                    _ => false,
                }
            }
            Entity::AcademicSessions => {
                let kind = canonical(&SESSION_TYPES, cell(2), &mut self.values);
                let start = self.date(entity, 4, cell(4));
                let end = self.date(entity, 5, cell(5));
                self.sessions
                    .push(&[cell(0), cell(1), &kind, cell(3), &start, &end])
            }
            Entity::Courses => {
                let grade = map_grade(&self.opts.grade_map, cell(6));
                self.courses
                    .push(&[cell(0), cell(1), cell(2), cell(3), cell(4), cell(5), grade])
            }
            Entity::Guardians => {
                // Microsoft's sample and its guardian format: the role is what the guardian is
                // to the student, `guardian` unless the SIS says otherwise.
                let role = match cell(6) {
                    "" => Cow::Borrowed("guardian"),
                    given => canonical(&RELATIONSHIP_ROLES, given, &mut self.values),
                };
                self.guardians
                    .push(&[cell(0), cell(1), cell(2), cell(3), cell(4), cell(5), &role])
            }
        };
        if !stored {
            self.too_many = Some(entity);
        }
    }

    /// A date column's value as `YYYY-MM-DD`; a value that is not a date is counted and left
    /// blank (SDS would reject the row for it).
    fn date<'a>(&mut self, entity: Entity, column: usize, raw: &'a str) -> Cow<'a, str> {
        if raw.is_empty() {
            return Cow::Borrowed("");
        }
        match values::date(raw) {
            Some(d) => d,
            None => {
                let name = entity.columns().get(column).map_or("?", |c| c.name);
                *self.values.bad_dates.entry((entity, name)).or_default() += 1;
                Cow::Borrowed("")
            }
        }
    }

    /// Validates, filters, de-duplicates and sorts everything pushed.
    ///
    /// # Errors
    /// [`BuildError::SharedUserId`] in v2/v2.1 when a student and a teacher end up with the
    /// same `sourcedId`; [`BuildError::TooManyRows`] past the `u32` index space.
    pub fn finish(self) -> Result<Built, BuildError> {
        let Builder {
            opts,
            selected,
            mut schools,
            mut sections,
            mut students,
            mut teachers,
            mut sessions,
            mut courses,
            mut guardians,
            section_ids,
            student_ids,
            teacher_ids,
            unselected_students,
            mut enrollments,
            mut rosters,
            returned,
            values,
            mut tally,
            too_many,
            scratch: _,
        } = self;
        if let Some(entity) = too_many {
            return Err(BuildError::TooManyRows { entity });
        }
        let format = opts.format;
        let license_on = format == Format::V1 && opts.license_file;
        let mut warnings = Vec::new();

        // Rows of unselected schools were dropped by `push`; what is left is de-duplicated.
        sort_resolve(&mut schools, 1, &mut tally, Slot::School);
        let unknown_selected = selected
            .iter()
            .filter(|s| schools.find(s).is_none())
            .count();
        if unknown_selected > 0 {
            warnings.push(format!(
                "[export] schools: {unknown_selected} selected school ID(s) not returned by the schools query"
            ));
        }
        let district = match (&opts.district, format) {
            (Some(d), Format::V2 | Format::V2_1) => Some(District {
                id: clean(&d.id).into_owned(),
                name: clean(&d.name).into_owned(),
            }),
            _ => None,
        };
        if let Some(d) = &district
            && schools.find(&d.id).is_some()
        {
            return Err(BuildError::DistrictIdClash { id: d.id.clone() });
        }

        // Sections, students, teachers and courses must belong to an exported school.
        // Reference checks come before de-duplication so that a valid row wins over an invalid
        // duplicate.
        let school_problem = |id: &str| {
            if schools.find(id).is_some() {
                None
            } else if !is_selected(&selected, id) {
                Some(DropReason::SchoolNotSelected)
            } else {
                Some(DropReason::UnknownSchool)
            }
        };
        for (table, slot, key) in [
            (&mut sections, Slot::Section, 1),
            (&mut students, Slot::Student, 1),
            (&mut teachers, Slot::Teacher, 2),
            (&mut courses, Slot::Course, 1),
        ] {
            retain_counted(table, &mut tally, slot, |row| {
                school_problem(field(row, SCHOOL))
            });
            sort_resolve(table, key, &mut tally, slot);
        }
        drop_conflicting_teachers(&mut teachers, &mut tally);
        sort_resolve(&mut sessions, 1, &mut tally, Slot::Session);
        // One guardian row per (guardian, student) link.
        sort_resolve(&mut guardians, 2, &mut tally, Slot::Guardian);

        // Usernames SDS would reject: blank (no e-mail address), not user@domain where v2.1
        // needs it, or one account for two people. Mode `blank` writes no username at all.
        let rule = opts.username;
        let prefixes = Prefixes {
            student: clean(&opts.student_id_prefix).into_owned(),
            teacher: clean(&opts.teacher_id_prefix).into_owned(),
            guardian: clean(&opts.guardian_id_prefix).into_owned(),
            // v2.1 holds a person with several roles as one user (one `sourcedId`); v1 and v2
            // cannot, so there every student and teacher is their own account.
            by_sourced_id: format == Format::V2_1,
        };
        if rule != UsernameRule::Blank {
            for (table, slot) in [
                (&mut students, Slot::Student),
                (&mut teachers, Slot::Teacher),
                (&mut guardians, Slot::Guardian),
            ] {
                retain_counted(table, &mut tally, slot, |row| {
                    let name = username(rule, field(row, EMAIL));
                    if name.is_empty() {
                        Some(DropReason::NoUsername)
                    } else if format.needs_full_usernames() && !is_full_username(name) {
                        Some(DropReason::InvalidUsername)
                    } else {
                        None
                    }
                });
            }
            drop_shared_usernames(&mut students, &mut teachers, &prefixes, rule, &mut tally);
            drop_guardian_clashes(
                &students,
                &teachers,
                &mut guardians,
                &prefixes,
                rule,
                &mut tally,
            );
        }
        // A relationship needs its student exported. A student of a school outside
        // `[export] schools` is left out on purpose, and so are their guardians' links.
        retain_counted(&mut guardians, &mut tally, Slot::Relationship, |row| {
            let student = field(row, G_STUDENT);
            if students.find(student).is_some() {
                None
            } else if unselected_students.find(student).is_some() {
                Some(DropReason::SchoolNotSelected)
            } else {
                Some(DropReason::UnknownUser)
            }
        });
        drop(unselected_students);

        // Tables are indexed by `u32` from here on (UNRESOLVED excluded).
        for (len, entity) in [
            (sections.len(), Entity::Sections),
            (students.len(), Entity::Students),
            (teachers.len(), Entity::Teachers),
            (guardians.len(), Entity::Guardians),
        ] {
            if len >= UNRESOLVED as usize {
                return Err(BuildError::TooManyRows { entity });
            }
        }
        let teacher_groups = group_starts(&teachers);
        let guardian_groups = group_starts(&guardians);
        // relationships.csv in file order: (student, guardian), by index = by sourcedId.
        let mut relationships: Vec<(u32, u32, u32)> = Vec::with_capacity(guardians.len());
        let mut group = 0u32;
        for (i, row) in guardians.iter().enumerate() {
            while guardian_groups
                .get(group as usize + 1)
                .is_some_and(|&next| next as usize <= i)
            {
                group += 1;
            }
            if let Some(student) = students.find(field(row, G_STUDENT)) {
                relationships.push((student as u32, group, i as u32));
            }
        }
        relationships.sort_unstable();

        // Enrollments and rosters: symbols → table indexes, in place. Both rows' references
        // may be broken; the section is reported first so a row is counted once.
        let section_of = resolve(&section_ids, sections.iter().map(|row| field(row, ID)));
        let student_of = resolve(&student_ids, students.iter().map(|row| field(row, ID)));
        let teacher_of = resolve(
            &teacher_ids,
            teacher_groups
                .iter()
                .map(|&start| field(row_at(&teachers, start), ID)),
        );
        for (pairs, user_of, users, slot) in [
            (
                &mut enrollments,
                &student_of,
                &student_ids,
                Slot::Enrollment,
            ),
            (&mut rosters, &teacher_of, &teacher_ids, Slot::Roster),
        ] {
            pairs.retain_mut(|pair| {
                let section = section_of
                    .get(pair.0 as usize)
                    .copied()
                    .unwrap_or(UNRESOLVED);
                let user = user_of.get(pair.1 as usize).copied().unwrap_or(UNRESOLVED);
                let problem = if section == UNRESOLVED {
                    Some(DropReason::UnknownSection)
                } else if user == UNRESOLVED {
                    Some(DropReason::UnknownUser)
                } else {
                    None
                };
                match problem {
                    Some(reason) => {
                        let id = format!("{}/{}", section_ids.get(pair.0), users.get(pair.1));
                        tally.drop_row(slot, reason, &id);
                        false
                    }
                    None => {
                        *pair = (section, user);
                        true
                    }
                }
            });
            // Sorted unique tables: index order is ID order, so this sorts the file.
            pairs.sort_unstable();
            for dup in pairs.chunk_by(|a, b| a == b).filter(|g| g.len() > 1) {
                let (section, user) = dup[0];
                let user_id = match slot {
                    Slot::Enrollment => field(row_at(&students, user), ID),
                    _ => field(
                        row_at(
                            &teachers,
                            teacher_groups.get(user as usize).copied().unwrap_or(0),
                        ),
                        ID,
                    ),
                };
                let id = format!("{}/{user_id}", field(row_at(&sections, section), ID));
                for _ in 1..dup.len() {
                    tally.drop_row(slot, DropReason::Duplicate, &id);
                }
            }
            pairs.dedup();
            pairs.shrink_to_fit();
        }
        drop((section_of, student_of, teacher_of));
        drop((section_ids, student_ids, teacher_ids));

        // v1 licence file: one row per exported student with a user@domain e-mail address,
        // ordered like the file (display name, UPN). Two students with one address would be one
        // licence for two people: both are left out.
        let mut license = Vec::new();
        if license_on {
            for (i, row) in students.iter().enumerate() {
                if is_full_username(field(row, EMAIL)) {
                    license.push(i as u32);
                } else {
                    tally.drop_row(Slot::License, DropReason::NoEmail, field(row, ID));
                }
            }
            let shared = clashing(
                license.len(),
                |i| field(row_at(&students, license[i]), EMAIL),
                |a, b| {
                    field(row_at(&students, license[a]), ID)
                        == field(row_at(&students, license[b]), ID)
                },
            );
            let mut n = 0;
            license.retain(|&i| {
                let keep = !shared.get(n).copied().unwrap_or(false);
                n += 1;
                if !keep {
                    tally.drop_row(
                        Slot::License,
                        DropReason::DuplicateUsername,
                        field(row_at(&students, i), ID),
                    );
                }
                keep
            });
            license
                .sort_unstable_by(|&a, &b| license_cmp(row_at(&students, a), row_at(&students, b)));
        }

        let optional_files: Vec<FileKind> = [
            (Entity::AcademicSessions, FileKind::AcademicSessions),
            (Entity::Courses, FileKind::Courses),
            (Entity::Guardians, FileKind::Relationships),
        ]
        .into_iter()
        .filter(|(e, _)| format == Format::V2_1 && opts.reads(*e))
        .map(|(_, k)| k)
        .collect();
        let files: Vec<&'static FileSpec> = format
            .files_with(license_on, &optional_files)
            .into_iter()
            .map(|spec| spec.variant(switched_on(spec, &opts, &returned)))
            .collect();
        let mut built = Built {
            format,
            username: opts.username,
            student_prefix: prefixes.student,
            teacher_prefix: prefixes.teacher,
            guardian_prefix: prefixes.guardian,
            account_sku_id: clean(&opts.account_sku_id).into_owned(),
            district,
            full_formats: opts.full_formats(),
            rows: Vec::new(),
            drops: tally.report(format, &files),
            files,
            schools,
            sections,
            students,
            teachers,
            teacher_groups,
            sessions,
            courses,
            guardians,
            guardian_groups,
            relationships,
            enrollments,
            rosters,
            license,
            user_rows: 0,
            shared_ids: false,
            packed: packed_indexes(),
            values,
            warnings,
        };
        if format != Format::V1 {
            built.user_rows = built.check_shared_ids()?;
            let users =
                built.students.len() + built.teacher_groups.len() + built.guardian_groups.len();
            built.shared_ids = built.user_rows < users as u64;
        }
        built.rows = built.files.iter().map(|f| built.count(f.kind)).collect();
        built.collect_warnings();
        Ok(built)
    }
}

/// The ID prefixes of one export, and whether a person is known by `sourcedId` (v2.1: a
/// student and a teacher with one `sourcedId` and one username are one person) or by their
/// kind and ID (v1, v2).
struct Prefixes {
    student: String,
    teacher: String,
    guardian: String,
    by_sourced_id: bool,
}

impl Prefixes {
    /// Whether two users (kind 0 student, 1 teacher, 2 guardian; their SIS IDs) are one person.
    fn same_person(&self, a: (u8, &str), b: (u8, &str)) -> bool {
        if !self.by_sourced_id {
            return a == b;
        }
        let (pa, pb) = (self.of(a.0), self.of(b.0));
        pa.len() + a.1.len() == pb.len() + b.1.len()
            && pa
                .bytes()
                .chain(a.1.bytes())
                .eq(pb.bytes().chain(b.1.bytes()))
    }

    fn of(&self, kind: u8) -> &str {
        match kind {
            0 => &self.student,
            1 => &self.teacher,
            _ => &self.guardian,
        }
    }
}

/// Which optional columns of `spec` this export switches on: bit `i` for `spec.columns[i]`.
fn switched_on(spec: &FileSpec, opts: &ExportOptions, returned: &[u32; ENTITIES]) -> u64 {
    let mut mask = 0u64;
    for (i, c) in spec.columns.iter().enumerate() {
        if let Some(f) = c.optional
            && column_on(spec.kind, f, opts, returned)
        {
            mask |= 1 << i;
        }
    }
    mask
}

/// The rule of each optional column: written when `[export] optional_columns` is on and the
/// query returns the contract column it comes from; the exceptions are the links that need an
/// optional query's file (a class's session and course), the columns of the optional files
/// themselves (on whenever their query returns them), `users.csv` `email` (required for
/// guardians) and `orgs.csv` `parentSourcedId` (the district).
fn column_on(kind: FileKind, f: Field, opts: &ExportOptions, returned: &[u32; ENTITIES]) -> bool {
    use Entity as E;
    use Field as F;
    use FileKind as K;
    let on = opts.optional_columns;
    let has = |e: Entity, f: Field| {
        contract_column(e, f)
            .and_then(|c| e.column_index(c))
            .is_some_and(|i| returned.get(e as usize).is_some_and(|m| m >> i & 1 == 1))
    };
    let reads = |e: Entity| opts.format == Format::V2_1 && opts.reads(e);
    match (kind, f) {
        (K::Orgs, F::Parent) => opts.district.is_some(),
        (K::School, f) => on && has(E::Schools, f),
        (K::Section, f) => on && has(E::Sections, f),
        (K::Student, f) => on && has(E::Students, f),
        (K::Teacher, f) => on && has(E::Teachers, f),
        (K::UsersV21, F::Email) if reads(E::Guardians) => true,
        (K::UsersV21, f) => {
            on && (has(E::Students, f)
                || has(E::Teachers, f)
                || (reads(E::Guardians) && has(E::Guardians, f)))
        }
        (K::Roles, F::Grade) => on && has(E::Students, F::Grade),
        (K::Roles, F::IsPrimary) => on,
        (K::ClassesV21, F::TermId) => {
            on && reads(E::AcademicSessions) && has(E::Sections, F::TermId)
        }
        (K::ClassesV21, F::CourseId) => on && reads(E::Courses) && has(E::Sections, F::CourseId),
        (K::Courses, F::SchoolYearId) => {
            reads(E::AcademicSessions) && has(E::Courses, F::SchoolYearId)
        }
        (K::Courses, f) => has(E::Courses, f),
        _ => false,
    }
}

/// The contract column of `entity` an optional SDS column's field comes from.
fn contract_column(entity: Entity, f: Field) -> Option<&'static str> {
    use Entity as E;
    use Field as F;
    let name = match (entity, f) {
        (E::Schools, F::SchoolNumber) => "school_number",
        (E::Schools, F::NcesId) => "nces_id",
        (E::Schools | E::Students | E::Teachers, F::StateId) => "state_id",
        (E::Schools, F::GradeLow) => "grade_low",
        (E::Schools, F::GradeHigh) => "grade_high",
        (E::Schools, F::PrincipalId) => "principal_id",
        (E::Schools, F::PrincipalName) => "principal_name",
        (E::Schools, F::PrincipalEmail) => "principal_email",
        (E::Schools, F::Address) => "address",
        (E::Schools, F::City) => "city",
        (E::Schools, F::State) => "state",
        (E::Schools, F::Country) => "country",
        (E::Schools, F::Zip) => "zip",
        (E::Schools | E::Students | E::Teachers | E::Guardians, F::Phone) => "phone",
        (E::Sections, F::CourseDescription) => "course_description",
        (E::Sections, F::TermId) => "term_id",
        (E::Sections, F::TermName) => "term_name",
        (E::Sections, F::TermStart) => "term_start",
        (E::Sections, F::TermEnd) => "term_end",
        (E::Sections, F::CourseId) => "course_id",
        (E::Sections, F::CourseName) => "course_name",
        (E::Sections, F::CourseNumber) => "course_number",
        (E::Sections, F::CourseSubject) => "course_subject",
        (E::Sections, F::SectionNumber) => "section_number",
        (E::Sections, F::Periods) => "periods",
        (E::Students | E::Teachers | E::Guardians, F::Email) => "email",
        (E::Students | E::Teachers, F::MiddleName) => "middle_name",
        (E::Students | E::Teachers, F::Status) => "status",
        (E::Students | E::Teachers, F::SecondaryEmail) => "secondary_email",
        (E::Students | E::Courses, F::Grade) => "grade",
        (E::Students, F::StudentNumber) => "student_number",
        (E::Students, F::BirthDate) => "birth_date",
        (E::Students, F::GraduationYear) => "graduation_year",
        (E::Teachers, F::TeacherNumber) => "teacher_number",
        (E::Teachers, F::JobTitle) => "title",
        (E::Teachers, F::Qualification) => "qualification",
        (E::Courses, F::Code) => "code",
        (E::Courses, F::SchoolYearId) => "school_year_id",
        (E::Courses, F::Subject) => "subject",
        _ => return None,
    };
    Some(name)
}

/// The tables whose rows carry the optional contract columns (`optional_columns`).
const PACKED: [Entity; 4] = [
    Entity::Schools,
    Entity::Sections,
    Entity::Students,
    Entity::Teachers,
];
const NO_FIELD: u8 = u8::MAX;
const FIELDS: usize = Field::RelationshipRole as usize + 1;

/// Per table of [`PACKED`] and field: where the field's contract column is in a packed row
/// ([`NO_FIELD`] for none). Rows hold contract columns in contract order; a section row holds
/// them from `course_description` on, after its four SDS fields.
fn packed_indexes() -> [[u8; FIELDS]; 4] {
    let mut out = [[NO_FIELD; FIELDS]; 4];
    for (table, entity) in out.iter_mut().zip(PACKED) {
        for (slot, field) in table.iter_mut().zip(FIELD_LIST) {
            let index = contract_column(entity, field)
                .and_then(|c| entity.column_index(c))
                .map(|i| if entity == Entity::Sections { i + 1 } else { i });
            if let Some(i) = index.and_then(|i| u8::try_from(i).ok()) {
                *slot = i;
            }
        }
    }
    out
}

/// Every [`Field`], by its number.
const FIELD_LIST: [Field; FIELDS] = {
    use Field as F;
    [
        F::Id,
        F::School,
        F::SchoolList,
        F::Name,
        F::OrgType,
        F::Title,
        F::FirstName,
        F::LastName,
        F::Username,
        F::Password,
        F::Role,
        F::Grade,
        F::Section,
        F::User,
        F::DisplayName,
        F::Email,
        F::SkuId,
        F::Parent,
        F::SchoolNumber,
        F::NcesId,
        F::StateId,
        F::GradeLow,
        F::GradeHigh,
        F::PrincipalId,
        F::PrincipalName,
        F::PrincipalEmail,
        F::Address,
        F::City,
        F::State,
        F::Country,
        F::Zip,
        F::Phone,
        F::SectionNumber,
        F::TermId,
        F::TermName,
        F::TermStart,
        F::TermEnd,
        F::CourseId,
        F::CourseName,
        F::CourseNumber,
        F::CourseDescription,
        F::CourseSubject,
        F::Periods,
        F::Status,
        F::MiddleName,
        F::StudentNumber,
        F::BirthDate,
        F::GraduationYear,
        F::SecondaryEmail,
        F::TeacherNumber,
        F::JobTitle,
        F::Qualification,
        F::IsPrimary,
        F::SessionType,
        F::SchoolYear,
        F::StartDate,
        F::EndDate,
        F::Code,
        F::SchoolYearId,
        F::Subject,
        F::RelatedUser,
        F::RelationshipRole,
    ]
};

/// Drops every student and teacher row whose username equals (ignoring case) the username of
/// another person: SDS would sign two people into one account. One teacher listed at several
/// schools is one person; in v2.1 so is a student and a teacher with one `sourcedId`.
fn drop_shared_usernames(
    students: &mut Table,
    teachers: &mut Table,
    prefixes: &Prefixes,
    rule: UsernameRule,
    tally: &mut Tally,
) {
    let n_students = students.len();
    let person = |i: usize| {
        if i < n_students {
            (0u8, field(students.get(i), ID))
        } else {
            (1u8, field(teachers.get(i - n_students), ID))
        }
    };
    let row = |i: usize| {
        if i < n_students {
            students.get(i)
        } else {
            teachers.get(i - n_students)
        }
    };
    let shared = clashing(
        n_students + teachers.len(),
        |i| username(rule, field(row(i), EMAIL)),
        |a, b| prefixes.same_person(person(a), person(b)),
    );
    if !shared.contains(&true) {
        return;
    }
    let (for_students, for_teachers) = shared.split_at(n_students);
    for (table, mask, slot) in [
        (students, for_students, Slot::Student),
        (teachers, for_teachers, Slot::Teacher),
    ] {
        table.retain_at(|pos, row| {
            let drop = mask.get(pos).copied().unwrap_or(false);
            if drop {
                tally.drop_row(slot, DropReason::DuplicateUsername, field(row, ID));
            }
            !drop
        });
    }
}

/// Drops every guardian row whose username equals (ignoring case) a student's, a teacher's or
/// another guardian's who is not the same person. Only the guardian goes: a parent's address
/// entered on their child's record must not cost the child their account.
fn drop_guardian_clashes(
    students: &Table,
    teachers: &Table,
    guardians: &mut Table,
    prefixes: &Prefixes,
    rule: UsernameRule,
    tally: &mut Tally,
) {
    if guardians.len() == 0 {
        return;
    }
    let (ns, nt) = (students.len(), teachers.len());
    let row = |i: usize| {
        if i < ns {
            (0u8, students.get(i))
        } else if i < ns + nt {
            (1u8, teachers.get(i - ns))
        } else {
            (2u8, guardians.get(i - ns - nt))
        }
    };
    let shared = clashing(
        ns + nt + guardians.len(),
        |i| username(rule, field(row(i).1, EMAIL)),
        |a, b| {
            let ((ka, ra), (kb, rb)) = (row(a), row(b));
            prefixes.same_person((ka, field(ra, ID)), (kb, field(rb, ID)))
        },
    );
    let mask = shared.get(ns + nt..).unwrap_or(&[]);
    if !mask.contains(&true) {
        return;
    }
    let mask = mask.to_vec();
    guardians.retain_at(|pos, row| {
        let drop = mask.get(pos).copied().unwrap_or(false);
        if drop {
            tally.drop_row(
                Slot::Guardian,
                DropReason::DuplicateUsername,
                &row_name(Slot::Guardian, row),
            );
        }
        !drop
    });
}

/// Which of `n` names equal, ignoring case, the name of another person (`same(a, b)` says
/// whether two owners are one person): a mask. Blank names never clash. Names are grouped by a
/// hash of their folded form first, so the work is a sort of integers plus a check of the
/// (rare) groups.
fn clashing<'a>(
    n: usize,
    name: impl Fn(usize) -> &'a str,
    same: impl Fn(usize, usize) -> bool,
) -> Vec<bool> {
    let hasher = DefaultHashBuilder::default();
    let mut keys: Vec<(u64, u32)> = (0..n)
        .filter(|&i| !name(i).is_empty())
        .map(|i| {
            let mut h = hasher.build_hasher();
            for c in format::fold_username(name(i)) {
                h.write_u32(c as u32);
            }
            (h.finish(), i as u32)
        })
        .collect();
    keys.sort_unstable();
    let mut out = vec![false; n];
    for run in keys.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        let mut members: Vec<usize> = run.iter().map(|k| k.1 as usize).collect();
        members.sort_by(|&a, &b| cmp_usernames(name(a), name(b)));
        for group in members.chunk_by(|&a, &b| cmp_usernames(name(a), name(b)).is_eq()) {
            let first = group[0];
            if group.iter().any(|&i| !same(first, i)) {
                for &i in group {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = true;
                    }
                }
            }
        }
    }
    out
}

/// One user of the merged v2/v2.1 ID space: a student (index into the student table), a
/// teacher or a guardian (index into their groups).
#[derive(Debug, Clone, Copy)]
enum User {
    Student(u32),
    Teacher(u32),
    Guardian(u32),
}

/// The most columns sds-sync writes into one file (a unit test holds the tables to it).
const MAX_WRITTEN: usize = 24;

/// Hands one row to `out`: for each written column, `value` of its field.
fn emit<'v, S: RowSink>(
    picks: &[Field],
    out: &mut S,
    value: impl Fn(Field) -> &'v str,
) -> io::Result<()> {
    let mut row = [""; MAX_WRITTEN];
    for (slot, f) in row.iter_mut().zip(picks) {
        *slot = value(*f);
    }
    out.row(&row[..picks.len().min(MAX_WRITTEN)])
}

/// A finished export, ready to be written file by file.
///
/// Passwords: the `Password`/`password` column is always present, because SDS and the
/// destinations expect the fixed header of each format; with `include_passwords` off (or no SIS
/// password) only the values are blank. A password never appears in warnings or errors.
pub struct Built {
    format: Format,
    username: UsernameRule,
    student_prefix: String,
    teacher_prefix: String,
    guardian_prefix: String,
    account_sku_id: String,
    /// v2/v2.1: the district org (`[export.district]`).
    district: Option<District>,
    /// Any option of the full formats is set: their warnings apply.
    full_formats: bool,
    files: Vec<&'static FileSpec>,
    rows: Vec<u64>,
    /// Sorted by ID, unique: `id, name` (and the optional school columns).
    schools: Table,
    /// Sorted by section ID, unique: `id, school, title, fallback flag` (and the optional
    /// section columns).
    sections: Table,
    /// Sorted by student ID, unique: `id, school, first, last, email, password, grade` (and
    /// the optional student columns).
    students: Table,
    /// Sorted by (teacher ID, school), unique: `id, school, first, last, email, password` (and
    /// the optional teacher columns).
    teachers: Table,
    /// Index of the first `teachers` row of each distinct teacher ID.
    teacher_groups: Vec<u32>,
    /// Sorted by session ID, unique.
    sessions: Table,
    /// Sorted by course ID, unique.
    courses: Table,
    /// Sorted by (guardian ID, student ID), unique; every row's student is exported.
    guardians: Table,
    /// Index of the first `guardians` row of each distinct guardian ID.
    guardian_groups: Vec<u32>,
    /// relationships.csv: (student index, guardian group, guardian row), sorted.
    relationships: Vec<(u32, u32, u32)>,
    /// (section index, student index), sorted, unique.
    enrollments: Vec<(u32, u32)>,
    /// (section index, teacher group index), sorted, unique.
    rosters: Vec<(u32, u32)>,
    /// Student indexes in licence file order.
    license: Vec<u32>,
    /// v2/v2.1 `users.csv` rows: distinct `sourcedId`s.
    user_rows: u64,
    /// Some users share a `sourcedId` (v2.1: one person with several roles).
    shared_ids: bool,
    /// See [`packed_indexes`].
    packed: [[u8; FIELDS]; 4],
    values: ValueCounts,
    drops: Vec<Dropped>,
    warnings: Vec<String>,
}

impl Built {
    /// The files of this export in write order (as [`Format::files`], with the optional files
    /// of the optional queries), each with the optional columns this export writes.
    pub fn files(&self) -> &[&'static FileSpec] {
        &self.files
    }

    /// The layout of the named file, if it is part of this export.
    pub fn spec(&self, file: &str) -> Option<&'static FileSpec> {
        self.files.iter().find(|f| f.name == file).copied()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Data rows (header excluded) of the named file; 0 for a file not in this export.
    pub fn row_count(&self, file: &str) -> u64 {
        self.files
            .iter()
            .position(|f| f.name == file)
            .and_then(|i| self.rows.get(i).copied())
            .unwrap_or(0)
    }

    /// Data rows of all files together.
    pub fn total_rows(&self) -> u64 {
        self.rows.iter().sum()
    }

    /// Writes the named file as SDS CSV (see [`crate::csvout`]); returns bytes written, header
    /// included.
    ///
    /// # Errors
    /// `ErrorKind::NotFound` for a file that is not part of this export; otherwise the I/O
    /// errors of `w`.
    pub fn write_file<W: Write>(&self, file: &str, w: W) -> io::Result<u64> {
        self.write_file_to(file, w, NoRows)
    }

    /// [`Built::write_file`], also handing every data row to `also` as it is written (the
    /// publish gate's validator): one rendering feeds both.
    ///
    /// # Errors
    /// As [`Built::write_file`], and whatever `also` returns.
    pub fn write_file_to<W: Write, S: RowSink>(
        &self,
        file: &str,
        w: W,
        also: S,
    ) -> io::Result<u64> {
        let (spec, picks) = self.picks(file)?;
        let mut out = Tee(CsvOut::new(w, &spec.header())?, also);
        self.render(spec.kind, &picks, &mut out)?;
        out.0.finish()
    }

    /// Every data row of the named file, in file order, handed to `sink` without any CSV being
    /// formatted (for a diff against the previous export straight from the tables).
    ///
    /// # Errors
    /// As [`Built::write_file_to`], without the writer's.
    pub fn rows_to<S: RowSink>(&self, file: &str, mut sink: S) -> io::Result<()> {
        let (spec, picks) = self.picks(file)?;
        self.render(spec.kind, &picks, &mut sink)
    }

    /// The spec of the named file and the fields its written columns show.
    fn picks(&self, file: &str) -> io::Result<(&'static FileSpec, Vec<Field>)> {
        let Some(spec) = self.spec(file) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{file} is not a file of this SDS {} export", self.format),
            ));
        };
        let picks: Vec<Field> = spec.written_columns().filter_map(|c| c.field).collect();
        if picks.len() > MAX_WRITTEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{file}: more than {MAX_WRITTEN} written columns (a bug: please report it)"
                ),
            ));
        }
        Ok((spec, picks))
    }

    /// The optional contract column behind field `f` of a row of the table of `entity`
    /// (`optional_columns`; "" when the row does not carry it).
    fn extra<'r>(&self, entity: Entity, row: &'r str, f: Field) -> &'r str {
        let Some(t) = PACKED.iter().position(|e| *e == entity) else {
            return "";
        };
        match self.packed[t][f as usize] {
            NO_FIELD => "",
            i => field(row, usize::from(i)),
        }
    }

    /// Every data row of a file, in file order, as the fields `picks` names.
    fn render<S: RowSink>(&self, kind: FileKind, picks: &[Field], out: &mut S) -> io::Result<()> {
        use Field as F;
        match kind {
            FileKind::School | FileKind::Orgs => {
                let district = self.district.as_ref();
                let parent = district.map_or("", |d| d.id.as_str());
                let mut district_due = district;
                for row in &self.schools {
                    let [id, name] = fields(row);
                    // The district org sorts among the schools by its ID.
                    if let Some(d) = district_due
                        && d.id.as_str() < id
                    {
                        self.district_row(d, picks, out)?;
                        district_due = None;
                    }
                    emit(picks, out, |f| match f {
                        F::Id => id,
                        F::Name => name,
                        F::OrgType => "school",
                        F::Parent => parent,
                        f => self.extra(Entity::Schools, row, f),
                    })?;
                }
                if let Some(d) = district_due {
                    self.district_row(d, picks, out)?;
                }
            }
            FileKind::Section | FileKind::ClassesV2 | FileKind::ClassesV21 => {
                let links = kind == FileKind::ClassesV21;
                for row in &self.sections {
                    let [id, school, title] = fields(row);
                    emit(picks, out, |f| match f {
                        F::Id => id,
                        F::School => school,
                        F::Title => title,
                        // A class links only to sessions and courses of this export.
                        F::TermId | F::CourseId if links => {
                            let v = self.extra(Entity::Sections, row, f);
                            let table = if f == F::TermId {
                                &self.sessions
                            } else {
                                &self.courses
                            };
                            if table.find(v).is_some() { v } else { "" }
                        }
                        f => self.extra(Entity::Sections, row, f),
                    })?;
                }
            }
            FileKind::Student | FileKind::Teacher => {
                let (table, role, entity) = if kind == FileKind::Student {
                    (&self.students, "student", Entity::Students)
                } else {
                    (&self.teachers, "teacher", Entity::Teachers)
                };
                for row in table {
                    let [id, school, first, last, email, password, grade] = fields(row);
                    let grade = if kind == FileKind::Student { grade } else { "" };
                    emit(picks, out, |f| match f {
                        F::Id => id,
                        F::School => school,
                        F::Role => role,
                        F::Grade => grade,
                        f => self
                            .user_value(f, first, last, email, password)
                            .unwrap_or_else(|| self.extra(entity, row, f)),
                    })?;
                }
            }
            FileKind::StudentEnrollment => {
                for &(section, student) in &self.enrollments {
                    let student = field(row_at(&self.students, student), ID);
                    let section = self.section_id(section);
                    emit(picks, out, |f| match f {
                        F::Section => section,
                        F::User => student,
                        F::Role => "student",
                        _ => "",
                    })?;
                }
            }
            FileKind::TeacherRoster => {
                for &(section, group) in &self.rosters {
                    let (section, teacher) = (self.section_id(section), self.teacher_id(group));
                    emit(picks, out, |f| match f {
                        F::Section => section,
                        F::User => teacher,
                        F::Role => "teacher",
                        _ => "",
                    })?;
                }
            }
            FileKind::License => {
                let mut display = String::new();
                for &i in &self.license {
                    let [_, _, first, last, email] = fields(row_at(&self.students, i));
                    display.clear();
                    display.push_str(first);
                    display.push(' ');
                    display.push_str(last);
                    emit(picks, out, |f| match f {
                        F::DisplayName => &display,
                        F::Email => email,
                        F::SkuId => &self.account_sku_id,
                        _ => "",
                    })?;
                }
            }
            FileKind::UsersV2 | FileKind::UsersV21 => self.write_users(picks, out)?,
            FileKind::Roles => self.write_roles(picks, out)?,
            FileKind::Enrollments => self.write_enrollments(picks, out)?,
            FileKind::AcademicSessions => {
                for row in &self.sessions {
                    let [id, title, kind, year, start, end] = fields(row);
                    emit(picks, out, |f| match f {
                        F::Id => id,
                        F::Title => title,
                        F::SessionType => kind,
                        F::SchoolYear => year,
                        F::StartDate => start,
                        F::EndDate => end,
                        _ => "",
                    })?;
                }
            }
            FileKind::Courses => {
                for row in &self.courses {
                    let [id, school, title, code, year, subject, grade] = fields(row);
                    let year = if self.sessions.find(year).is_some() {
                        year
                    } else {
                        ""
                    };
                    emit(picks, out, |f| match f {
                        F::Id => id,
                        F::School => school,
                        F::Title => title,
                        F::Code => code,
                        F::SchoolYearId => year,
                        F::Subject => subject,
                        F::Grade => grade,
                        _ => "",
                    })?;
                }
            }
            FileKind::Relationships => {
                let (mut student, mut guardian) = (String::new(), String::new());
                for &(s, g, row) in &self.relationships {
                    self.sourced_id(User::Student(s), &mut student);
                    self.sourced_id(User::Guardian(g), &mut guardian);
                    let role = field(row_at(&self.guardians, row), G_ROLE);
                    emit(picks, out, |f| match f {
                        F::User => &student,
                        F::RelatedUser => &guardian,
                        F::RelationshipRole => role,
                        _ => "",
                    })?;
                }
            }
            // Described by the v2.1 table, not built from the source contract.
            FileKind::Demographics | FileKind::UserFlags => {}
        }
        Ok(())
    }

    fn district_row<S: RowSink>(
        &self,
        d: &District,
        picks: &[Field],
        out: &mut S,
    ) -> io::Result<()> {
        emit(picks, out, |f| match f {
            Field::Id => &d.id,
            Field::Name => &d.name,
            Field::OrgType => "district",
            _ => "",
        })
    }

    /// The fields every row of a user has.
    fn user_value<'a>(
        &self,
        f: Field,
        first: &'a str,
        last: &'a str,
        email: &'a str,
        password: &'a str,
    ) -> Option<&'a str> {
        Some(match f {
            Field::FirstName => first,
            Field::LastName => last,
            Field::Username => self.username_of(email),
            Field::Email => email,
            Field::Password => password,
            _ => return None,
        })
    }

    /// Every dropped row, counted per file and reason (file order, then reason order), with the
    /// first IDs. Students and teachers both count against v2's `users.csv`.
    pub fn drops(&self) -> &[Dropped] {
        &self.drops
    }

    /// Human-readable warnings: sections named by their course code, blank usernames (mode
    /// `blank`), selected schools the SIS does not return, a blank Account SKU ID, files above
    /// Microsoft's row limit; with the full formats also values written as is or left blank
    /// (grades without a Microsoft code, values outside Microsoft's lists, dates that are not
    /// dates, links to sessions or courses the export does not have). They carry file names and
    /// counts only, never personal data.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn count(&self, kind: FileKind) -> u64 {
        let n = match kind {
            FileKind::School => self.schools.len(),
            FileKind::Orgs => self.schools.len() + usize::from(self.district.is_some()),
            FileKind::Section | FileKind::ClassesV2 | FileKind::ClassesV21 => self.sections.len(),
            FileKind::Student => self.students.len(),
            FileKind::Teacher => self.teachers.len(),
            FileKind::StudentEnrollment => self.enrollments.len(),
            FileKind::TeacherRoster => self.rosters.len(),
            FileKind::License => self.license.len(),
            FileKind::UsersV2 | FileKind::UsersV21 => return self.user_rows,
            FileKind::Roles => self.students.len() + self.teachers.len(),
            FileKind::Enrollments => self.enrollments.len() + self.rosters.len(),
            FileKind::AcademicSessions => self.sessions.len(),
            FileKind::Courses => self.courses.len(),
            FileKind::Relationships => self.relationships.len(),
            FileKind::Demographics | FileKind::UserFlags => 0,
        };
        n as u64
    }

    fn username_of<'a>(&self, email: &'a str) -> &'a str {
        username(self.username, email)
    }

    fn section_id(&self, section: u32) -> &str {
        field(row_at(&self.sections, section), ID)
    }

    fn teacher_id(&self, group: u32) -> &str {
        field(self.teacher_first_row(group), ID)
    }

    /// The first row of a teacher in sorted order: the source of every field but the school
    /// wherever a teacher is one user (v2/v2.1 `users.csv`).
    fn teacher_first_row(&self, group: u32) -> &str {
        let start = self
            .teacher_groups
            .get(group as usize)
            .copied()
            .unwrap_or(0);
        row_at(&self.teachers, start)
    }

    /// The first row of a guardian: the source of their `users.csv` row.
    fn guardian_first_row(&self, group: u32) -> &str {
        let start = self
            .guardian_groups
            .get(group as usize)
            .copied()
            .unwrap_or(0);
        row_at(&self.guardians, start)
    }

    /// A teacher's rows, one per school, sorted by school.
    fn teacher_rows(&self, group: u32) -> impl Iterator<Item = &str> + '_ {
        let g = group as usize;
        let start = self.teacher_groups.get(g).map_or(0, |&s| s as usize);
        let end = self
            .teacher_groups
            .get(g + 1)
            .map_or(self.teachers.len(), |&s| s as usize);
        (start..end).map(|i| self.teachers.get(i))
    }

    fn user_prefix_id(&self, user: User) -> (&str, &str) {
        match user {
            User::Student(i) => (&self.student_prefix, field(row_at(&self.students, i), ID)),
            User::Teacher(g) => (&self.teacher_prefix, self.teacher_id(g)),
            User::Guardian(g) => (&self.guardian_prefix, field(self.guardian_first_row(g), ID)),
        }
    }

    fn sourced_id(&self, user: User, out: &mut String) {
        let (prefix, id) = self.user_prefix_id(user);
        out.clear();
        out.push_str(prefix);
        out.push_str(id);
    }

    /// Orders users by `sourcedId` (prefix + ID), then student before teacher before guardian
    /// (a tie is one person with several roles in v2.1; elsewhere the shared-ID check catches
    /// it).
    fn cmp_users(&self, a: User, b: User) -> Ordering {
        let (pa, ia) = self.user_prefix_id(a);
        let (pb, ib) = self.user_prefix_id(b);
        let by_id = if pa == pb {
            ia.cmp(ib)
        } else {
            pa.bytes()
                .chain(ia.bytes())
                .cmp(pb.bytes().chain(ib.bytes()))
        };
        by_id.then_with(|| role(a).cmp(role(b)))
    }

    /// All users of the merged v2/v2.1 ID space in `sourcedId` order. Each table is already
    /// sorted by ID, and a common prefix keeps that order, so this is a plain merge.
    fn users(&self) -> impl Iterator<Item = User> + '_ {
        let students = (0..self.students.len() as u32).map(User::Student);
        let teachers = (0..self.teacher_groups.len() as u32).map(User::Teacher);
        let guardians = (0..self.guardian_groups.len() as u32).map(User::Guardian);
        let cmp = |a: &User, b: &User| self.cmp_users(*a, *b);
        merge_by(merge_by(students, teachers, cmp), guardians, cmp)
    }

    /// The users in `sourcedId` order, those sharing one `sourcedId` (one person with several
    /// roles, v2.1) together: `f` gets each person's users, students first.
    fn for_each_person(&self, mut f: impl FnMut(&[User]) -> io::Result<()>) -> io::Result<()> {
        if !self.shared_ids {
            // Everyone is one user: no need to compare neighbours.
            for user in self.users() {
                f(&[user])?;
            }
            return Ok(());
        }
        let mut person: Vec<User> = Vec::with_capacity(3);
        for user in self.users() {
            if let Some(&first) = person.first()
                && !self.same_sourced_id(first, user)
            {
                f(&person)?;
                person.clear();
            }
            person.push(user);
        }
        if !person.is_empty() {
            f(&person)?;
        }
        Ok(())
    }

    /// Sorted merge puts equal `sourcedId`s next to each other; IDs are unique within each
    /// table, so neighbours with one `sourcedId` are a student, a teacher and a guardian. v2
    /// cannot hold one user in several roles: any shared ID is an error. v2.1 holds them as one
    /// person with several roles when they have one username (the SIS's way of saying they are
    /// one person); with different usernames they are different people and the ID an error.
    /// Returns the number of `users.csv` rows (people).
    fn check_shared_ids(&self) -> Result<u64, BuildError> {
        let mut prev: Option<User> = None;
        let mut people = 0u64;
        for user in self.users() {
            match prev {
                Some(p) if self.same_sourced_id(p, user) => {
                    let one_person = self.format == Format::V2_1
                        && cmp_usernames(self.user_email(p), self.user_email(user)).is_eq()
                        && !self.user_email(user).is_empty();
                    if !one_person {
                        let mut id = String::new();
                        self.sourced_id(user, &mut id);
                        return Err(BuildError::SharedUserId { id });
                    }
                }
                _ => people += 1,
            }
            prev = Some(user);
        }
        Ok(people)
    }

    /// The username of a user (from their first row).
    fn user_email(&self, user: User) -> &str {
        self.username_of(field(self.user_row(user), EMAIL))
    }

    /// The row a user's `users.csv` values come from.
    fn user_row(&self, user: User) -> &str {
        match user {
            User::Student(i) => row_at(&self.students, i),
            User::Teacher(g) => self.teacher_first_row(g),
            User::Guardian(g) => self.guardian_first_row(g),
        }
    }

    fn same_sourced_id(&self, a: User, b: User) -> bool {
        let (pa, ia) = self.user_prefix_id(a);
        let (pb, ib) = self.user_prefix_id(b);
        pa.len() + ia.len() == pb.len() + ib.len()
            && pa
                .bytes()
                .chain(ia.bytes())
                .eq(pb.bytes().chain(ib.bytes()))
    }

    fn write_users<S: RowSink>(&self, picks: &[Field], out: &mut S) -> io::Result<()> {
        let mut id = String::new();
        let mut orgs = String::new();
        let with_orgs = picks.contains(&Field::SchoolList);
        self.for_each_person(|person| {
            // One row per person; a person with several roles takes the values of their first
            // user (the student, then the teacher).
            let Some(&user) = person.first() else {
                return Ok(());
            };
            self.sourced_id(user, &mut id);
            let row = self.user_row(user);
            let (role, grade, entity) = match user {
                User::Student(_) => ("student", field(row, GRADE), Entity::Students),
                User::Teacher(_) => ("teacher", "", Entity::Teachers),
                User::Guardian(_) => ("guardian", "", Entity::Guardians),
            };
            let [_, school, first, last, email, password] = fields(row);
            // A guardian row holds their phone where users hold a password.
            let password = match user {
                User::Guardian(_) => "",
                _ => password,
            };
            // Rows of a teacher are sorted by school and unique, so the list is distinct and
            // sorted; the CSV writer quotes it because of the commas.
            orgs.clear();
            if with_orgs {
                match user {
                    User::Teacher(g) => {
                        for (n, row) in self.teacher_rows(g).enumerate() {
                            if n > 0 {
                                orgs.push(',');
                            }
                            orgs.push_str(field(row, SCHOOL));
                        }
                    }
                    _ => orgs.push_str(school),
                }
            }
            emit(picks, out, |f| match f {
                Field::Id => &id,
                Field::School => school,
                Field::SchoolList => &orgs,
                Field::Role => role,
                Field::Grade => grade,
                Field::Phone => match user {
                    User::Guardian(_) => field(row, G_PHONE),
                    _ => self.extra(entity, row, Field::Phone),
                },
                f => self
                    .user_value(f, first, last, email, password)
                    .unwrap_or(""),
            })
        })
    }

    /// v2.1 `roles.csv`: one row per user × school × role, sorted by (user, school, role);
    /// `isPrimary` is `true` on the first row of each person (their lowest school ID: a SIS
    /// has no primary school in the contract) and `false` on the others.
    fn write_roles<S: RowSink>(&self, picks: &[Field], out: &mut S) -> io::Result<()> {
        let mut id = String::new();
        let mut rows: Vec<(&str, &str, &str)> = Vec::with_capacity(4);
        self.for_each_person(|person| {
            let Some(&first) = person.first() else {
                return Ok(());
            };
            self.sourced_id(first, &mut id);
            let role_row = |n: usize, school: &str, role: &str, grade: &str, out: &mut S| {
                emit(picks, out, |f| match f {
                    Field::Id => &id,
                    Field::School => school,
                    Field::Role => role,
                    Field::Grade => grade,
                    Field::IsPrimary => {
                        if n == 0 {
                            "true"
                        } else {
                            "false"
                        }
                    }
                    _ => "",
                })
            };
            // One user: their rows are in file order already (a teacher's by school).
            if let [user] = person {
                match *user {
                    User::Student(i) => {
                        let row = row_at(&self.students, i);
                        role_row(0, field(row, SCHOOL), "student", field(row, GRADE), out)?;
                    }
                    User::Teacher(g) => {
                        for (n, row) in self.teacher_rows(g).enumerate() {
                            role_row(n, field(row, SCHOOL), "teacher", "", out)?;
                        }
                    }
                    User::Guardian(_) => {}
                }
                return Ok(());
            }
            rows.clear();
            for &user in person {
                match user {
                    User::Student(i) => {
                        let row = row_at(&self.students, i);
                        rows.push((field(row, SCHOOL), "student", field(row, GRADE)));
                    }
                    User::Teacher(g) => {
                        for row in self.teacher_rows(g) {
                            rows.push((field(row, SCHOOL), "teacher", ""));
                        }
                    }
                    User::Guardian(_) => {}
                }
            }
            rows.sort_unstable();
            for (n, &(school, role, grade)) in rows.iter().enumerate() {
                role_row(n, school, role, grade, out)?;
            }
            Ok(())
        })
    }

    /// v2/v2.1 `enrollments.csv`: student enrollments and teacher rosters merged in
    /// (class, user, role) order. Both lists are sorted by section index (= class ID order);
    /// within a section by user index (= user ID order, a common prefix keeps it).
    fn write_enrollments<S: RowSink>(&self, picks: &[Field], out: &mut S) -> io::Result<()> {
        let students = self.enrollments.iter().map(|&(s, u)| (s, User::Student(u)));
        let teachers = self.rosters.iter().map(|&(s, g)| (s, User::Teacher(g)));
        let mut id = String::new();
        for (section, user) in merge_by(students, teachers, |a, b| {
            a.0.cmp(&b.0).then_with(|| self.cmp_users(a.1, b.1))
        }) {
            self.sourced_id(user, &mut id);
            let section = self.section_id(section);
            emit(picks, out, |f| match f {
                Field::Section => section,
                Field::User => &id,
                Field::Role => role(user),
                _ => "",
            })?;
        }
        Ok(())
    }

    fn collect_warnings(&mut self) {
        let mut warnings = std::mem::take(&mut self.warnings);
        let name_of = |kinds: &[FileKind]| {
            self.files
                .iter()
                .find(|f| kinds.contains(&f.kind))
                .map_or("", |f| f.name)
        };
        let users_file = match self.format {
            Format::V1 => "Student.csv/Teacher.csv",
            _ => name_of(&[FileKind::UsersV2, FileKind::UsersV21]),
        };
        let sections_file =
            name_of(&[FileKind::Section, FileKind::ClassesV2, FileKind::ClassesV21]);

        let fallback = self
            .sections
            .iter()
            .filter(|r| !field(r, FALLBACK).is_empty())
            .count();
        if fallback > 0 {
            warnings.push(format!(
                "{sections_file}: {fallback} section(s) have no course description; their course code is used as the name"
            ));
        }

        // Only mode `blank` leaves usernames blank (the other modes drop such users): counted
        // per file row (v1 lists a teacher once per school).
        let blank = |rows: &Table| {
            rows.iter()
                .filter(|r| self.username_of(field(r, EMAIL)).is_empty())
                .count()
        };
        let mut blank_by_file = Vec::new();
        if self.format == Format::V1 {
            blank_by_file.push((format::V1_STUDENT.name, blank(&self.students)));
            blank_by_file.push((format::V1_TEACHER.name, blank(&self.teachers)));
        } else {
            let teachers = self
                .teacher_groups
                .iter()
                .filter(|&&start| {
                    self.username_of(field(row_at(&self.teachers, start), EMAIL))
                        .is_empty()
                })
                .count();
            blank_by_file.push((users_file, blank(&self.students) + teachers));
        }
        for (file, n) in blank_by_file {
            if n > 0 {
                warnings.push(format!(
                    "{file}: {n} row(s) have a blank username ([export] username = \"blank\"); SDS cannot match these users to accounts"
                ));
            }
        }

        if self.files.iter().any(|f| f.license) && self.account_sku_id.is_empty() {
            warnings.push(format!(
                "{}: the Account SKU ID is blank",
                format::V1_LICENSE.name
            ));
        }
        if self.full_formats {
            warnings.extend(self.value_warnings());
        }

        warnings.extend(row_limit_warnings(&self.files, &self.rows, SDS_ROW_LIMIT));
        self.warnings = warnings;
    }

    /// What the full formats wrote as is or left blank, per file, counts only.
    fn value_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let writes = |kind: FileKind, f: Field| {
            self.files
                .iter()
                .filter(|s| s.kind == kind)
                .any(|s| s.written_columns().any(|c| c.field == Some(f)))
        };
        // Grades: the ones written that are not Microsoft codes (after the grade map).
        let not_code = |g: &&str| !g.is_empty() && GRADES.find(g).is_none();
        let mut grades: Vec<(&str, usize)> = Vec::new();
        let student_file = [
            (FileKind::Student, Field::Grade),
            (FileKind::UsersV2, Field::Grade),
            (FileKind::Roles, Field::Grade),
        ]
        .into_iter()
        .find(|(k, f)| writes(*k, *f))
        .and_then(|(k, _)| self.files.iter().find(|s| s.kind == k));
        if let Some(spec) = student_file {
            let n = self
                .students
                .iter()
                .map(|r| field(r, GRADE))
                .filter(not_code)
                .count();
            grades.push((spec.name, n));
        }
        if writes(FileKind::Courses, Field::Grade) {
            let n = self
                .courses
                .iter()
                .map(|r| field(r, GRADE))
                .filter(not_code)
                .count();
            grades.push((format::V21_COURSES.name, n));
        }
        if writes(FileKind::School, Field::GradeLow) || writes(FileKind::School, Field::GradeHigh) {
            let n = self
                .schools
                .iter()
                .flat_map(|r| {
                    [
                        self.extra(Entity::Schools, r, Field::GradeLow),
                        self.extra(Entity::Schools, r, Field::GradeHigh),
                    ]
                })
                .filter(not_code)
                .count();
            grades.push((format::V1_SCHOOL.name, n));
        }
        for (file, n) in grades {
            if n > 0 {
                out.push(format!(
                    "{file}: {n} grade value(s) are not Microsoft grade codes (01-12, kg, pk, ...) and [export.grade_map] does not map them; written as they are"
                ));
            }
        }
        for ((entity, column), n) in &self.values.bad_dates {
            out.push(format!(
                "[source.queries] {entity}: {n} value(s) of {column} are not dates (YYYY-MM-DD, a timestamp, YYYYMMDD or M/D/YYYY); written blank"
            ));
        }
        for (list, n) in &self.values.unknown {
            out.push(format!(
                "{n} {list} value(s) are not in Microsoft's default list of values; written in lower camelCase (SDS takes them only if your tenant's list was extended)"
            ));
        }
        // Links to sessions and courses this export does not have are left blank.
        let unlinked = |table: &Table, values: &mut dyn Iterator<Item = &str>| {
            values
                .filter(|v| !v.is_empty() && table.find(v).is_none())
                .count()
        };
        if writes(FileKind::ClassesV21, Field::TermId) {
            let n = unlinked(
                &self.sessions,
                &mut self
                    .sections
                    .iter()
                    .map(|r| self.extra(Entity::Sections, r, Field::TermId)),
            );
            if n > 0 {
                out.push(format!(
                    "{}: {n} class(es) name a term that {} does not have; their sessionSourcedIds is left blank",
                    format::V21_CLASSES.name,
                    format::V21_ACADEMIC_SESSIONS.name
                ));
            }
        }
        if writes(FileKind::ClassesV21, Field::CourseId) {
            let n = unlinked(
                &self.courses,
                &mut self
                    .sections
                    .iter()
                    .map(|r| self.extra(Entity::Sections, r, Field::CourseId)),
            );
            if n > 0 {
                out.push(format!(
                    "{}: {n} class(es) name a course that {} does not have; their courseSourcedId is left blank",
                    format::V21_CLASSES.name,
                    format::V21_COURSES.name
                ));
            }
        }
        if writes(FileKind::Courses, Field::SchoolYearId) {
            let n = unlinked(
                &self.sessions,
                &mut self.courses.iter().map(|r| field(r, C_SCHOOL_YEAR)),
            );
            if n > 0 {
                out.push(format!(
                    "{}: {n} course(s) name a school year that {} does not have; their schoolYearSourcedId is left blank",
                    format::V21_COURSES.name,
                    format::V21_ACADEMIC_SESSIONS.name
                ));
            }
        }
        out
    }
}

fn row_limit_warnings(files: &[&FileSpec], rows: &[u64], limit: u64) -> Vec<String> {
    files
        .iter()
        .zip(rows)
        .filter(|(_, n)| **n > limit)
        .map(|(spec, n)| {
            format!(
                "{}: {n} rows exceed Microsoft's limit of {limit} rows per file",
                spec.name
            )
        })
        .collect()
}

fn role(user: User) -> &'static str {
    match user {
        User::Student(_) => "student",
        User::Teacher(_) => "teacher",
        User::Guardian(_) => "guardian",
    }
}

/// The Microsoft code `[export.grade_map]` maps a SIS grade to, or the grade as it is.
fn map_grade<'a>(map: &'a BTreeMap<String, String>, grade: &'a str) -> &'a str {
    map.get(grade).map_or(grade, String::as_str)
}

/// The spelling of `value` in Microsoft's list `e` (lower camelCase, whatever the SIS's case
/// and separators), or, counted, `value` itself in lower camelCase when the list does not have
/// it (admins can extend SDS's lists, so it is written, with a warning).
fn canonical<'a>(e: &Enumeration, value: &'a str, counts: &mut ValueCounts) -> Cow<'a, str> {
    match e.canonical(value) {
        Some(v) => Cow::Borrowed(v),
        None => {
            *counts.unknown.entry(e.name).or_default() += 1;
            values::lower_camel(value)
        }
    }
}

/// The username the rule derives from a (normalised) email. `EmailLocalPart` keeps the text
/// before the first `@` (all of it when there is none), trimmed again so `"ann @x"` gives `ann`.
fn username(rule: UsernameRule, email: &str) -> &str {
    match rule {
        UsernameRule::Email => email,
        UsernameRule::EmailLocalPart => email.split('@').next().unwrap_or("").trim(),
        UsernameRule::Blank => "",
    }
}

/// Replaces each CRLF, CR or LF (and NUL, the packed-row separator) with one space, then trims.
fn clean(raw: &str) -> Cow<'_, str> {
    // A byte loop, not a `char` pattern: CR, LF and NUL are ASCII, so they never occur inside a
    // multi-byte character, and a char pattern decodes every character of every value.
    if !raw.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Cow::Borrowed(raw.trim());
    }
    let mut s = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                s.push(' ');
            }
            '\n' | '\0' => s.push(' '),
            c => s.push(c),
        }
    }
    Cow::Owned(s.trim().to_owned())
}

fn write_section_id(out: &mut String, school: &str, course: &str, section: &str) {
    out.clear();
    out.push_str(school);
    out.push('-');
    out.push_str(course);
    out.push('-');
    out.push_str(section);
}

fn is_selected(selected: &[String], school: &str) -> bool {
    selected.is_empty()
        || selected
            .binary_search_by(|s| s.as_str().cmp(school))
            .is_ok()
}

fn row_at(table: &Table, i: u32) -> &str {
    table.get(i as usize)
}

/// Keeps the rows `problem` accepts; counts and names the others (by their ID).
fn retain_counted(
    rows: &mut Table,
    tally: &mut Tally,
    slot: Slot,
    mut problem: impl FnMut(&str) -> Option<DropReason>,
) {
    rows.retain(|row| match problem(row) {
        Some(reason) => {
            tally.drop_row(slot, reason, &row_name(slot, row));
            false
        }
        None => true,
    });
}

/// Sorts a table and resolves rows sharing a key: exact copies count as `duplicate`, rows that
/// disagree all go as `conflicting_duplicate`.
fn sort_resolve(rows: &mut Table, key_fields: usize, tally: &mut Tally, slot: Slot) {
    rows.sort_resolve(key_fields, |row, conflict| {
        let reason = if conflict {
            DropReason::ConflictingDuplicate
        } else {
            DropReason::Duplicate
        };
        tally.drop_row(slot, reason, &row_name(slot, row));
    });
}

/// One teacher listed at several schools is one person: rows of one teacher ID that disagree
/// on the person (first or last name, e-mail, password) cannot be published as one user (v2/v2.1
/// would keep one row's values silently, v1 would give one SIS ID two usernames). Every row of
/// such a teacher goes as `conflicting_duplicate`, and its roster rows follow as `unknown_user`.
/// The table is sorted by ID.
fn drop_conflicting_teachers(teachers: &mut Table, tally: &mut Tally) {
    // Teacher layout: id, school, first, last, email, password (with `optional_columns`, the
    // optional teacher columns after them): every field but the school is the person.
    fn person(row: &str) -> impl Iterator<Item = &str> {
        row.split(table::SEP)
            .enumerate()
            .filter(|(i, _)| *i != SCHOOL)
            .map(|(_, f)| f)
    }
    let starts = group_starts(teachers);
    let mut conflicted = vec![false; teachers.len()];
    for (g, &start) in starts.iter().enumerate() {
        let (start, end) = (
            start as usize,
            starts.get(g + 1).map_or(teachers.len(), |&s| s as usize),
        );
        let first = teachers.get(start);
        if (start + 1..end).any(|i| !person(teachers.get(i)).eq(person(first)))
            && let Some(rows) = conflicted.get_mut(start..end)
        {
            rows.fill(true);
        }
    }
    teachers.retain_at(|pos, row| {
        if conflicted.get(pos).copied().unwrap_or(false) {
            tally.drop_row(
                Slot::Teacher,
                DropReason::ConflictingDuplicate,
                field(row, ID),
            );
            false
        } else {
            true
        }
    });
}

/// The ID a dropped packed row is named by: its own ID, or `guardian/student` for a guardian's
/// link to a student.
fn row_name(slot: Slot, row: &str) -> Cow<'_, str> {
    match slot {
        Slot::Guardian | Slot::Relationship => {
            Cow::Owned(format!("{}/{}", field(row, ID), field(row, G_STUDENT)))
        }
        _ => Cow::Borrowed(field(row, ID)),
    }
}

/// Start index of each run of rows sharing the first field.
fn group_starts(rows: &Table) -> Vec<u32> {
    let mut starts = Vec::new();
    let mut prev: Option<&str> = None;
    for (i, row) in rows.iter().enumerate() {
        let id = field(row, ID);
        if prev != Some(id) {
            starts.push(i as u32);
            prev = Some(id);
        }
    }
    starts
}

/// Table index (or `UNRESOLVED`) of every interned symbol, given the unique IDs of a sorted
/// table in index order. Walking the table once and probing the interner costs one hash probe
/// per row; looking each symbol up in the table by binary search cost ~20 cache misses each.
fn resolve<'a>(ids: &Interner, table_ids: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let mut of = vec![UNRESOLVED; ids.len()];
    for (index, id) in table_ids.enumerate() {
        if let Some(slot) = ids.find(id).and_then(|sym| of.get_mut(sym as usize)) {
            // The caller checked that every index fits below UNRESOLVED.
            *slot = index as u32;
        }
    }
    of
}

/// Licence rows order by display name (`first + " " + last`), then email.
fn license_cmp<'a>(a: &'a str, b: &'a str) -> Ordering {
    let [_, _, fa, la, ea] = fields(a);
    let [_, _, fb, lb, eb] = fields(b);
    // Compared as the bytes of the rendered display name, without building it.
    let display = |f: &'a str, l: &'a str| f.bytes().chain(std::iter::once(b' ')).chain(l.bytes());
    display(fa, la)
        .cmp(display(fb, lb))
        .then_with(|| ea.cmp(eb))
}

/// Merges two sorted iterators; on a tie the left one goes first.
fn merge_by<T, A, B, F>(a: A, b: B, cmp: F) -> impl Iterator<Item = T>
where
    A: Iterator<Item = T>,
    B: Iterator<Item = T>,
    F: Fn(&T, &T) -> Ordering,
{
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            if cmp(x, y) == Ordering::Greater {
                b.next()
            } else {
                a.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests;
