//! Building an export: records in (any order), validated, de-duplicated and sorted SDS files out.
//!
//! The builder owns every rule that turns source-contract records into SDS rows: value
//! normalisation, school selection, reference checks (section → school, user → school,
//! enrollment → section and user), de-duplication, the username rule, passwords, the v1 licence
//! file and the v2/v2.1 merged user ID space. Rows that break a rule are dropped and counted per
//! file and reason, never silently.
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
use crate::format::{self, Field, FileKind, FileSpec, cmp_usernames, is_full_username};
use crate::options::{ExportOptions, Format, UsernameRule};
use hashbrown::DefaultHashBuilder;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};

mod intern;
mod table;
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
    /// The row's school is not among `[export] schools`.
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
    /// More rows (or distinct IDs) of one entity than the builder's `u32` indexes can address.
    #[error("too many {entity} rows to build one export (over 4 billion rows or 4 GB of text)")]
    TooManyRows { entity: Entity },
}

// Packed row layouts (module `table`):
//   school:  id, name
//   section: id, school, title, fallback flag ("1" when the title is the course code)
//   student: id, school, first, last, email, password, grade
//   teacher: id, school, first, last, email, password
// Sections are stored already in their SDS shape; students and teachers share the user layout.
const ID: usize = 0;
const SCHOOL: usize = 1;
const FALLBACK: usize = 3;
const EMAIL: usize = 4;
const GRADE: usize = 6;

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
}

impl Slot {
    const ALL: [Slot; 7] = [
        Slot::School,
        Slot::Section,
        Slot::Student,
        Slot::Teacher,
        Slot::Enrollment,
        Slot::Roster,
        Slot::License,
    ];

    fn of(entity: Entity) -> Slot {
        match entity {
            Entity::Schools => Slot::School,
            Entity::Sections => Slot::Section,
            Entity::Students => Slot::Student,
            Entity::Teachers => Slot::Teacher,
            Entity::StudentEnrollments => Slot::Enrollment,
            Entity::TeacherRosters => Slot::Roster,
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
    section_ids: Interner,
    student_ids: Interner,
    teacher_ids: Interner,
    /// (section symbol, student symbol); indexes into the sorted tables after `finish`.
    enrollments: Vec<(u32, u32)>,
    /// (section symbol, teacher symbol).
    rosters: Vec<(u32, u32)>,
    tally: Tally,
    too_many: Option<Entity>,
    scratch: String,
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
            section_ids: Interner::new(),
            student_ids: Interner::new(),
            teacher_ids: Interner::new(),
            enrollments: Vec::new(),
            rosters: Vec::new(),
            tally: Tally::default(),
            too_many: None,
            scratch: String::new(),
        }
    }

    /// Adds one record. `values` are in `entity.columns()` order; `None` for NULL or an optional
    /// column the query does not return (a short vector means the trailing columns are absent;
    /// extra values are ignored).
    ///
    /// Every value is normalised: each CRLF, CR or LF (and NUL, which no CSV consumer takes)
    /// becomes one space, then leading/trailing white space is trimmed. A value blank after that
    /// is missing; a record missing a required column is dropped as
    /// [`DropReason::MissingValue`]. Case and leading zeros are never touched.
    pub fn push(&mut self, entity: Entity, values: Vec<Option<String>>) {
        let values: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        self.push_row(entity, &values);
    }

    /// [`Builder::push`] for borrowed values, as a source hands them out: nothing is copied but
    /// what the build keeps.
    pub fn push_row(&mut self, entity: Entity, values: &[Option<&str>]) {
        let columns = entity.columns();
        let cells: [Cow<'_, str>; MAX_COLUMNS] = std::array::from_fn(|i| match values.get(i) {
            Some(Some(v)) if i < columns.len() => clean(v),
            _ => Cow::Borrowed(""),
        });
        let cell = |i: usize| cells.get(i).map_or("", |c| c.as_ref());
        let slot = Slot::of(entity);
        // The ID a dropped row is named by.
        let row_id = |scratch: &mut String| match entity {
            Entity::Schools | Entity::Students | Entity::Teachers => cell(0).to_owned(),
            Entity::Sections => {
                write_section_id(scratch, cell(0), cell(1), cell(2));
                scratch.clone()
            }
            Entity::StudentEnrollments | Entity::TeacherRosters => {
                write_section_id(scratch, cell(0), cell(1), cell(2));
                format!("{scratch}/{}", cell(3))
            }
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
            Entity::Students | Entity::Teachers => Some(cell(1)),
            Entity::StudentEnrollments | Entity::TeacherRosters => None,
        };
        if let Some(school) = own_school
            && !is_selected(&self.selected, school)
        {
            let id = row_id(&mut self.scratch);
            self.tally
                .drop_row(slot, DropReason::SchoolNotSelected, &id);
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
        let stored = match entity {
            Entity::Schools => self.schools.push(&[cell(0), cell(1)]),
            Entity::Students => self.students.push(&[
                cell(0),
                cell(1),
                cell(2),
                cell(3),
                cell(4),
                password,
                cell(6),
            ]),
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
                self.sections
                    .push(&[&self.scratch, school, title, fallback])
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
        };
        if !stored {
            self.too_many = Some(entity);
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
            section_ids,
            student_ids,
            teacher_ids,
            mut enrollments,
            mut rosters,
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

        // Sections, students and teachers must belong to an exported school. Reference checks
        // come before de-duplication so that a valid row wins over an invalid duplicate.
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
        ] {
            retain_counted(table, &mut tally, slot, |row| {
                school_problem(field(row, SCHOOL))
            });
            sort_resolve(table, key, &mut tally, slot);
        }
        drop_conflicting_teachers(&mut teachers, &mut tally);

        // Usernames SDS would reject: blank (no e-mail address), not user@domain where v2.1
        // needs it, or one account for two people. Mode `blank` writes no username at all.
        let rule = opts.username;
        if rule != UsernameRule::Blank {
            for (table, slot) in [
                (&mut students, Slot::Student),
                (&mut teachers, Slot::Teacher),
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
            drop_shared_usernames(&mut students, &mut teachers, rule, &mut tally);
        }

        // Tables are indexed by `u32` from here on (UNRESOLVED excluded).
        for (len, entity) in [
            (sections.len(), Entity::Sections),
            (students.len(), Entity::Students),
            (teachers.len(), Entity::Teachers),
        ] {
            if len >= UNRESOLVED as usize {
                return Err(BuildError::TooManyRows { entity });
            }
        }
        let teacher_groups = group_starts(&teachers);

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
                |i| (false, field(row_at(&students, license[i]), ID)),
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

        let files = format.files(license_on);
        let mut built = Built {
            format,
            username: opts.username,
            student_prefix: clean(&opts.student_id_prefix).into_owned(),
            teacher_prefix: clean(&opts.teacher_id_prefix).into_owned(),
            account_sku_id: clean(&opts.account_sku_id).into_owned(),
            rows: Vec::new(),
            drops: tally.report(format, &files),
            files,
            schools,
            sections,
            students,
            teachers,
            teacher_groups,
            enrollments,
            rosters,
            license,
            warnings,
        };
        if format != Format::V1 {
            built.check_shared_ids()?;
        }
        built.rows = built.files.iter().map(|f| built.count(f.kind)).collect();
        built.collect_warnings();
        Ok(built)
    }
}

/// Drops every student and teacher row whose username equals (ignoring case) the username of
/// another person: SDS would sign two people into one account. One teacher listed at several
/// schools is one person.
fn drop_shared_usernames(
    students: &mut Table,
    teachers: &mut Table,
    rule: UsernameRule,
    tally: &mut Tally,
) {
    let n_students = students.len();
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
        |i| (i >= n_students, field(row(i), ID)),
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

/// Which of `n` names equal, ignoring case, the name of another owner (`owner(i)`): a mask.
/// Blank names never clash. Names are grouped by a hash of their folded form first, so the
/// work is a sort of integers plus a check of the (rare) groups.
fn clashing<'a>(
    n: usize,
    name: impl Fn(usize) -> &'a str,
    owner: impl Fn(usize) -> (bool, &'a str),
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
            let first = owner(group[0]);
            if group.iter().any(|&i| owner(i) != first) {
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

/// One user of the merged v2/v2.1 ID space: a student (index into the student table) or a
/// teacher (index into the teacher groups).
#[derive(Debug, Clone, Copy)]
enum User {
    Student(u32),
    Teacher(u32),
}

/// The most columns sds-sync writes into one file (a unit test holds the tables to it).
const MAX_WRITTEN: usize = 24;
const FIELDS: usize = Field::SkuId as usize + 1;

/// The values of one row, by [`Field`]; the format table picks the written ones by column.
struct Cells<'a>([&'a str; FIELDS]);

impl<'a> Cells<'a> {
    fn new() -> Cells<'a> {
        Cells([""; FIELDS])
    }
    fn set(&mut self, field: Field, value: &'a str) -> &mut Self {
        self.0[field as usize] = value;
        self
    }
    fn emit<S: RowSink>(&self, picks: &[Field], out: &mut S) -> io::Result<()> {
        let mut row = [""; MAX_WRITTEN];
        for (slot, f) in row.iter_mut().zip(picks) {
            *slot = self.0[*f as usize];
        }
        out.row(&row[..picks.len().min(MAX_WRITTEN)])
    }
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
    account_sku_id: String,
    files: Vec<&'static FileSpec>,
    rows: Vec<u64>,
    /// Sorted by ID, unique: `id, name`.
    schools: Table,
    /// Sorted by section ID, unique: `id, school, title, fallback flag`.
    sections: Table,
    /// Sorted by student ID, unique: `id, school, first, last, email, password, grade`.
    students: Table,
    /// Sorted by (teacher ID, school), unique: `id, school, first, last, email, password`.
    teachers: Table,
    /// Index of the first `teachers` row of each distinct teacher ID.
    teacher_groups: Vec<u32>,
    /// (section index, student index), sorted, unique.
    enrollments: Vec<(u32, u32)>,
    /// (section index, teacher group index), sorted, unique.
    rosters: Vec<(u32, u32)>,
    /// Student indexes in licence file order.
    license: Vec<u32>,
    drops: Vec<Dropped>,
    warnings: Vec<String>,
}

impl Built {
    /// The files of this export in write order (as [`Format::files`]).
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
        let mut out = Tee(CsvOut::new(w, &spec.header())?, also);
        self.render(spec.kind, &picks, &mut out)?;
        out.0.finish()
    }

    /// Every data row of a file, in file order, as the fields `picks` names.
    fn render<S: RowSink>(&self, kind: FileKind, picks: &[Field], out: &mut S) -> io::Result<()> {
        use Field as F;
        match kind {
            FileKind::School | FileKind::Orgs => {
                for row in &self.schools {
                    let [id, name] = fields(row);
                    Cells::new()
                        .set(F::Id, id)
                        .set(F::Name, name)
                        .set(F::OrgType, "school")
                        .emit(picks, out)?;
                }
            }
            FileKind::Section | FileKind::ClassesV2 | FileKind::ClassesV21 => {
                for row in &self.sections {
                    let [id, school, title] = fields(row);
                    Cells::new()
                        .set(F::Id, id)
                        .set(F::School, school)
                        .set(F::Title, title)
                        .emit(picks, out)?;
                }
            }
            FileKind::Student | FileKind::Teacher => {
                let (table, role) = if kind == FileKind::Student {
                    (&self.students, "student")
                } else {
                    (&self.teachers, "teacher")
                };
                for row in table {
                    let [id, school, first, last, email, password, grade] = fields(row);
                    self.user_cells(first, last, email, password)
                        .set(F::Id, id)
                        .set(F::School, school)
                        .set(F::Role, role)
                        .set(F::Grade, grade)
                        .emit(picks, out)?;
                }
            }
            FileKind::StudentEnrollment => {
                for &(section, student) in &self.enrollments {
                    let student = field(row_at(&self.students, student), ID);
                    Cells::new()
                        .set(F::Section, self.section_id(section))
                        .set(F::User, student)
                        .set(F::Role, "student")
                        .emit(picks, out)?;
                }
            }
            FileKind::TeacherRoster => {
                for &(section, group) in &self.rosters {
                    Cells::new()
                        .set(F::Section, self.section_id(section))
                        .set(F::User, self.teacher_id(group))
                        .set(F::Role, "teacher")
                        .emit(picks, out)?;
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
                    Cells::new()
                        .set(F::DisplayName, &display)
                        .set(F::Email, email)
                        .set(F::SkuId, &self.account_sku_id)
                        .emit(picks, out)?;
                }
            }
            FileKind::UsersV2 | FileKind::UsersV21 => self.write_users(picks, out)?,
            FileKind::Roles => {
                let mut id = String::new();
                for user in self.users() {
                    self.sourced_id(user, &mut id);
                    match user {
                        User::Student(i) => {
                            let row = row_at(&self.students, i);
                            Cells::new()
                                .set(F::Id, &id)
                                .set(F::School, field(row, SCHOOL))
                                .set(F::Role, "student")
                                .set(F::Grade, field(row, GRADE))
                                .emit(picks, out)?;
                        }
                        User::Teacher(g) => {
                            for row in self.teacher_rows(g) {
                                Cells::new()
                                    .set(F::Id, &id)
                                    .set(F::School, field(row, SCHOOL))
                                    .set(F::Role, "teacher")
                                    .emit(picks, out)?;
                            }
                        }
                    }
                }
            }
            FileKind::Enrollments => self.write_enrollments(picks, out)?,
            // Described by the v2.1 table, not built from the source contract yet.
            FileKind::AcademicSessions
            | FileKind::Courses
            | FileKind::Demographics
            | FileKind::UserFlags
            | FileKind::Relationships => {}
        }
        Ok(())
    }

    /// The fields every row of a user has.
    fn user_cells<'a>(
        &'a self,
        first: &'a str,
        last: &'a str,
        email: &'a str,
        password: &'a str,
    ) -> Cells<'a> {
        let mut c = Cells::new();
        c.set(Field::FirstName, first)
            .set(Field::LastName, last)
            .set(Field::Username, self.username_of(email))
            .set(Field::Email, email)
            .set(Field::Password, password);
        c
    }

    /// Every dropped row, counted per file and reason (file order, then reason order), with the
    /// first IDs. Students and teachers both count against v2's `users.csv`.
    pub fn drops(&self) -> &[Dropped] {
        &self.drops
    }

    /// Human-readable warnings: sections named by their course code, blank usernames (mode
    /// `blank`), selected schools the SIS does not return, a blank Account SKU ID, files above
    /// Microsoft's row limit. They carry file names and counts only, never personal data.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn count(&self, kind: FileKind) -> u64 {
        let n = match kind {
            FileKind::School | FileKind::Orgs => self.schools.len(),
            FileKind::Section | FileKind::ClassesV2 | FileKind::ClassesV21 => self.sections.len(),
            FileKind::Student => self.students.len(),
            FileKind::Teacher => self.teachers.len(),
            FileKind::StudentEnrollment => self.enrollments.len(),
            FileKind::TeacherRoster => self.rosters.len(),
            FileKind::License => self.license.len(),
            FileKind::UsersV2 | FileKind::UsersV21 => {
                self.students.len() + self.teacher_groups.len()
            }
            FileKind::Roles => self.students.len() + self.teachers.len(),
            FileKind::Enrollments => self.enrollments.len() + self.rosters.len(),
            FileKind::AcademicSessions
            | FileKind::Courses
            | FileKind::Demographics
            | FileKind::UserFlags
            | FileKind::Relationships => 0,
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
        }
    }

    fn sourced_id(&self, user: User, out: &mut String) {
        let (prefix, id) = self.user_prefix_id(user);
        out.clear();
        out.push_str(prefix);
        out.push_str(id);
    }

    /// Orders users by `sourcedId` (prefix + ID), students first on a tie (which only happens
    /// before the shared-ID check has run).
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
        merge_by(students, teachers, |a, b| self.cmp_users(*a, *b))
    }

    /// Sorted merge puts equal `sourcedId`s next to each other; IDs are unique within each
    /// table, so two neighbours with one `sourcedId` are a student and a teacher.
    fn check_shared_ids(&self) -> Result<(), BuildError> {
        let mut prev: Option<User> = None;
        for user in self.users() {
            if let Some(p) = prev
                && self.same_sourced_id(p, user)
            {
                let mut id = String::new();
                self.sourced_id(user, &mut id);
                return Err(BuildError::SharedUserId { id });
            }
            prev = Some(user);
        }
        Ok(())
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
        for user in self.users() {
            self.sourced_id(user, &mut id);
            let (row, role, grade) = match user {
                User::Student(i) => {
                    let row = row_at(&self.students, i);
                    (row, "student", field(row, GRADE))
                }
                User::Teacher(g) => (self.teacher_first_row(g), "teacher", ""),
            };
            let [_, school, first, last, email, password] = fields(row);
            // Rows of a teacher are sorted by school and unique, so the list is distinct and
            // sorted; the CSV writer quotes it because of the commas.
            orgs.clear();
            if with_orgs {
                match user {
                    User::Student(_) => orgs.push_str(school),
                    User::Teacher(g) => {
                        for (n, row) in self.teacher_rows(g).enumerate() {
                            if n > 0 {
                                orgs.push(',');
                            }
                            orgs.push_str(field(row, SCHOOL));
                        }
                    }
                }
            }
            self.user_cells(first, last, email, password)
                .set(Field::Id, &id)
                .set(Field::School, school)
                .set(Field::SchoolList, &orgs)
                .set(Field::Role, role)
                .set(Field::Grade, grade)
                .emit(picks, out)?;
        }
        Ok(())
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
            Cells::new()
                .set(Field::Section, self.section_id(section))
                .set(Field::User, &id)
                .set(Field::Role, role(user))
                .emit(picks, out)?;
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

        warnings.extend(row_limit_warnings(&self.files, &self.rows, SDS_ROW_LIMIT));
        self.warnings = warnings;
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
    if !raw.contains(['\r', '\n', '\0']) {
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
            tally.drop_row(slot, reason, field(row, ID));
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
        tally.drop_row(slot, reason, field(row, ID));
    });
}

/// One teacher listed at several schools is one person: rows of one teacher ID that disagree
/// on the person (first or last name, e-mail, password) cannot be published as one user (v2/v2.1
/// would keep one row's values silently, v1 would give one SIS ID two usernames). Every row of
/// such a teacher goes as `conflicting_duplicate`, and its roster rows follow as `unknown_user`.
/// The table is sorted by ID.
fn drop_conflicting_teachers(teachers: &mut Table, tally: &mut Tally) {
    // Teacher layout: id, school, first, last, email, password.
    fn person(row: &str) -> [&str; 5] {
        let [id, _school, first, last, email, password] = fields::<6>(row);
        [id, first, last, email, password]
    }
    let starts = group_starts(teachers);
    let mut conflicted = vec![false; teachers.len()];
    for (g, &start) in starts.iter().enumerate() {
        let (start, end) = (
            start as usize,
            starts.get(g + 1).map_or(teachers.len(), |&s| s as usize),
        );
        let first = person(teachers.get(start));
        if (start + 1..end).any(|i| person(teachers.get(i)) != first)
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
