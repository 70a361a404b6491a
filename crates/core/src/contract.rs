//! The source contract: which entities the SIS queries return and the column names of each.
//!
//! The contract only ever grows by optional columns, so queries written for an older version
//! keep working.

use std::fmt;

/// One SIS query's worth of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Schools,
    Students,
    Teachers,
    Sections,
    StudentEnrollments,
    TeacherRosters,
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
    pub const ALL: [Entity; 6] = [
        Entity::Schools,
        Entity::Students,
        Entity::Teachers,
        Entity::Sections,
        Entity::StudentEnrollments,
        Entity::TeacherRosters,
    ];

    /// The config key / query name of this entity (`[source.queries] students = ...`).
    pub fn key(self) -> &'static str {
        match self {
            Entity::Schools => "schools",
            Entity::Students => "students",
            Entity::Teachers => "teachers",
            Entity::Sections => "sections",
            Entity::StudentEnrollments => "student_enrollments",
            Entity::TeacherRosters => "teacher_rosters",
        }
    }

    /// The contract columns in the order sources hand values to the builder (at most
    /// [`MAX_COLUMNS`]).
    pub const fn columns(self) -> &'static [ContractColumn] {
        const SCHOOLS: &[ContractColumn] = &[req("school_id"), req("name")];
        const STUDENTS: &[ContractColumn] = &[
            req("student_id"),
            req("school_id"),
            req("first_name"),
            req("last_name"),
            opt("email"),
            opt("password"),
            opt("grade"),
        ];
        const TEACHERS: &[ContractColumn] = &[
            req("teacher_id"),
            req("school_id"),
            req("first_name"),
            req("last_name"),
            opt("email"),
            opt("password"),
        ];
        const SECTIONS: &[ContractColumn] = &[
            req("school_id"),
            req("course_code"),
            req("section_code"),
            opt("course_description"),
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
        match self {
            Entity::Schools => SCHOOLS,
            Entity::Students => STUDENTS,
            Entity::Teachers => TEACHERS,
            Entity::Sections => SECTIONS,
            Entity::StudentEnrollments => ENROLLMENTS,
            Entity::TeacherRosters => ROSTERS,
        }
    }
}

/// The most columns any entity has (students: 7), so a row's values fit in a stack array.
pub const MAX_COLUMNS: usize = 7;

const _: () = {
    // Checked at compile time: an entity that outgrows MAX_COLUMNS does not build.
    let all = Entity::ALL;
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
