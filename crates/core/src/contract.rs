//! The source contract: which entities the SIS queries return and the column names of each.
//!
//! The contract only ever grows by optional columns, so queries written for an older version
//! keep working.

use std::fmt;

/// One SIS query's worth of records: the six core entities every export reads, and the
/// optional queries (academic sessions, courses, guardians) an admin opts in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Schools,
    Students,
    Teachers,
    Sections,
    StudentEnrollments,
    TeacherRosters,
    AcademicSessions,
    Courses,
    Guardians,
}

/// A column a query must (or may) return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractColumn {
    pub name: &'static str,
    /// Optional columns may be missing from the query entirely or be NULL.
    pub optional: bool,
}

const fn req(name: &'static str) -> ContractColumn {
    ContractColumn {
        name,
        optional: false,
    }
}
const fn opt(name: &'static str) -> ContractColumn {
    ContractColumn {
        name,
        optional: true,
    }
}

impl Entity {
    /// The six core entities: every export reads them.
    pub const ALL: [Entity; 6] = [
        Entity::Schools,
        Entity::Students,
        Entity::Teachers,
        Entity::Sections,
        Entity::StudentEnrollments,
        Entity::TeacherRosters,
    ];

    /// The optional queries: read only when the admin opts in (`[source] optional_queries`),
    /// each adding a file to an SDS v2.1 export.
    pub const OPTIONAL: [Entity; 3] =
        [Entity::AcademicSessions, Entity::Courses, Entity::Guardians];

    /// Whether this is one of [`Entity::OPTIONAL`].
    pub fn is_optional_query(self) -> bool {
        Entity::OPTIONAL.contains(&self)
    }

    /// The config key / query name of this entity (`[source.queries] students = ...`).
    pub fn key(self) -> &'static str {
        match self {
            Entity::Schools => "schools",
            Entity::Students => "students",
            Entity::Teachers => "teachers",
            Entity::Sections => "sections",
            Entity::StudentEnrollments => "student_enrollments",
            Entity::TeacherRosters => "teacher_rosters",
            Entity::AcademicSessions => "academic_sessions",
            Entity::Courses => "courses",
            Entity::Guardians => "guardians",
        }
    }

    /// The entity whose config key is `key`.
    pub fn from_key(key: &str) -> Option<Entity> {
        Entity::ALL
            .into_iter()
            .chain(Entity::OPTIONAL)
            .find(|e| e.key() == key)
    }

    /// The contract columns in the order sources hand values to the builder (at most
    /// [`MAX_COLUMNS`]). The columns a query had before the full SDS formats come first, in
    /// their old positions; the contract only ever grows by optional columns at the end.
    pub const fn columns(self) -> &'static [ContractColumn] {
        const SCHOOLS: &[ContractColumn] = &[
            req("school_id"),
            req("name"),
            opt("school_number"),
            opt("nces_id"),
            opt("state_id"),
            opt("grade_low"),
            opt("grade_high"),
            opt("principal_id"),
            opt("principal_name"),
            opt("principal_email"),
            opt("address"),
            opt("city"),
            opt("state"),
            opt("country"),
            opt("zip"),
            opt("phone"),
        ];
        const STUDENTS: &[ContractColumn] = &[
            req("student_id"),
            req("school_id"),
            req("first_name"),
            req("last_name"),
            opt("email"),
            opt("password"),
            opt("grade"),
            opt("middle_name"),
            opt("state_id"),
            opt("student_number"),
            opt("status"),
            opt("birth_date"),
            opt("graduation_year"),
            opt("secondary_email"),
            opt("phone"),
        ];
        const TEACHERS: &[ContractColumn] = &[
            req("teacher_id"),
            req("school_id"),
            req("first_name"),
            req("last_name"),
            opt("email"),
            opt("password"),
            opt("middle_name"),
            opt("state_id"),
            opt("teacher_number"),
            opt("status"),
            opt("title"),
            opt("qualification"),
            opt("secondary_email"),
            opt("phone"),
        ];
        const SECTIONS: &[ContractColumn] = &[
            req("school_id"),
            req("course_code"),
            req("section_code"),
            opt("course_description"),
            opt("term_id"),
            opt("term_name"),
            opt("term_start"),
            opt("term_end"),
            opt("course_id"),
            opt("course_name"),
            opt("course_number"),
            opt("course_subject"),
            opt("section_number"),
            opt("periods"),
        ];
        const ENROLLMENTS: &[ContractColumn] = &[
            req("school_id"),
            req("course_code"),
            req("section_code"),
            req("student_id"),
        ];
        const ROSTERS: &[ContractColumn] = &[
            req("school_id"),
            req("course_code"),
            req("section_code"),
            req("teacher_id"),
        ];
        const SESSIONS: &[ContractColumn] = &[
            req("session_id"),
            req("title"),
            req("type"),
            req("school_year"),
            req("start_date"),
            req("end_date"),
            opt("parent_id"),
        ];
        const COURSES: &[ContractColumn] = &[
            req("course_id"),
            req("school_id"),
            req("title"),
            opt("code"),
            opt("school_year_id"),
            opt("subject"),
            opt("grade"),
        ];
        const GUARDIANS: &[ContractColumn] = &[
            req("guardian_id"),
            req("student_id"),
            req("first_name"),
            req("last_name"),
            req("email"),
            opt("phone"),
            opt("relationship"),
        ];
        match self {
            Entity::Schools => SCHOOLS,
            Entity::Students => STUDENTS,
            Entity::Teachers => TEACHERS,
            Entity::Sections => SECTIONS,
            Entity::StudentEnrollments => ENROLLMENTS,
            Entity::TeacherRosters => ROSTERS,
            Entity::AcademicSessions => SESSIONS,
            Entity::Courses => COURSES,
            Entity::Guardians => GUARDIANS,
        }
    }

    /// Position of the contract column `name`.
    pub fn column_index(self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }
}

/// The most columns any entity has (schools: 16), so a row's values fit in a stack array.
pub const MAX_COLUMNS: usize = 16;

const _: () = {
    // Checked at compile time: an entity that outgrows MAX_COLUMNS does not build.
    let all = [
        Entity::Schools,
        Entity::Students,
        Entity::Teachers,
        Entity::Sections,
        Entity::StudentEnrollments,
        Entity::TeacherRosters,
        Entity::AcademicSessions,
        Entity::Courses,
        Entity::Guardians,
    ];
    let mut i = 0;
    while i < all.len() {
        assert!(all[i].columns().len() <= MAX_COLUMNS);
        i += 1;
    }
};

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}
