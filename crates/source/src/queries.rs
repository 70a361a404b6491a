//! The default query of each entity, written for the reference SIS schema in `deploy/sis/`.
//!
//! Each query returns the entity's contract columns, under their contract names and in contract
//! order, and filters on the SIS status columns so that only active records come back. The same
//! text runs unchanged on SQLite (3.23 or newer, for `TRUE`/`FALSE`), PostgreSQL and
//! MySQL/MariaDB: plain joins, `AS` aliases, booleans compared with `= TRUE`/`= FALSE` (which
//! MySQL's `TINYINT(1)` and SQLite's 0/1 both understand), no `ORDER BY` (output order is the
//! exporter's business) and no trailing semicolon.
//!
//! The queries select rows, they do not check references: an enrollment of an inactive student,
//! a roster of an inactive teacher or a section of a closed school comes back, and the exporter's
//! integrity check drops it and counts it.

use sds_core::Entity;

/// The SELECT used for `entity` when the config does not replace it. Each returns every column
/// of the contract, the optional ones of the full SDS formats included (an export uses them only
/// when its config asks for them).
pub fn default_query(entity: Entity) -> &'static str {
    match entity {
        Entity::Schools => {
            "\
SELECT sc.school_code AS school_id,
       sc.school_name AS name,
       sc.school_number AS school_number,
       sc.nces_id AS nces_id,
       sc.state_school_id AS state_id,
       sc.low_grade AS grade_low,
       sc.high_grade AS grade_high,
       sc.principal_id AS principal_id,
       sc.principal_name AS principal_name,
       sc.principal_email AS principal_email,
       sc.street_address AS address,
       sc.city AS city,
       sc.state_code AS state,
       sc.country AS country,
       sc.zip AS zip,
       sc.phone AS phone
FROM schools sc
WHERE sc.is_active = TRUE"
        }
        // Only active students come back, so their status is always Active.
        Entity::Students => {
            "\
SELECT st.student_number AS student_id,
       st.school_code AS school_id,
       st.first_name AS first_name,
       st.last_name AS last_name,
       st.email AS email,
       st.web_password AS password,
       st.grade_level AS grade,
       st.middle_name AS middle_name,
       st.state_student_id AS state_id,
       st.student_number AS student_number,
       CASE WHEN st.enroll_status = 'A' THEN 'Active' ELSE 'Inactive' END AS status,
       st.birth_date AS birth_date,
       st.graduation_year AS graduation_year,
       st.personal_email AS secondary_email,
       st.phone AS phone
FROM students st
WHERE st.enroll_status = 'A'"
        }
        // One row per (teacher, school) assignment: a teacher of two schools appears twice.
        Entity::Teachers => {
            "\
SELECT sf.staff_id AS teacher_id,
       ss.school_code AS school_id,
       sf.first_name AS first_name,
       sf.last_name AS last_name,
       sf.email AS email,
       sf.web_password AS password,
       sf.middle_name AS middle_name,
       sf.state_staff_id AS state_id,
       sf.staff_id AS teacher_number,
       CASE WHEN sf.is_active = TRUE THEN 'Active' ELSE 'Inactive' END AS status,
       sf.job_title AS title,
       sf.qualification AS qualification,
       sf.personal_email AS secondary_email,
       sf.phone AS phone
FROM staff sf
INNER JOIN staff_schools ss ON ss.staff_id = sf.staff_id
WHERE sf.is_active = TRUE"
        }
        // LEFT JOIN: a section whose course row is missing still comes back (with no
        // description) for the exporter to report, instead of vanishing here unnoticed; the
        // same for a section whose term is missing.
        Entity::Sections => {
            "\
SELECT se.school_code AS school_id,
       se.course_code AS course_code,
       se.section_code AS section_code,
       co.course_name AS course_description,
       se.term_id AS term_id,
       te.term_name AS term_name,
       se.term_start AS term_start,
       se.term_end AS term_end,
       co.course_id AS course_id,
       co.course_name AS course_name,
       se.course_code AS course_number,
       co.subject AS course_subject,
       se.section_code AS section_number,
       se.periods AS periods
FROM sections se
LEFT JOIN courses co
       ON co.school_code = se.school_code
      AND co.course_code = se.course_code
LEFT JOIN terms te
       ON te.term_id = se.term_id"
        }
        // No filter on the student's status: the exporter drops (and counts) enrollments of
        // students it does not export.
        Entity::StudentEnrollments => {
            "\
SELECT en.school_code AS school_id,
       en.course_code AS course_code,
       en.section_code AS section_code,
       en.student_number AS student_id
FROM section_enrollments en
WHERE en.is_dropped = FALSE"
        }
        Entity::TeacherRosters => {
            "\
SELECT se.school_code AS school_id,
       se.course_code AS course_code,
       se.section_code AS section_code,
       se.staff_id AS teacher_id
FROM sections se
WHERE se.staff_id IS NOT NULL"
        }
        // This year's terms only: last year's are inactive, and the classes pointing at them
        // get no session link.
        Entity::AcademicSessions => {
            "\
SELECT te.term_id AS session_id,
       te.term_name AS title,
       te.term_type AS type,
       te.school_year AS school_year,
       te.start_date AS start_date,
       te.end_date AS end_date,
       te.parent_term_id AS parent_id
FROM terms te
WHERE te.is_active = TRUE"
        }
        // A course without a name takes its code as its title, as its sections do.
        Entity::Courses => {
            "\
SELECT co.course_id AS course_id,
       co.school_code AS school_id,
       COALESCE(co.course_name, co.course_code) AS title,
       co.course_code AS code,
       co.school_year AS school_year_id,
       co.subject AS subject,
       co.grade_level AS grade
FROM courses co"
        }
        // One row per (guardian, student). No filter on the student's status: the exporter
        // drops (and counts) links to students it does not export.
        Entity::Guardians => {
            "\
SELECT g.guardian_id AS guardian_id,
       sg.student_number AS student_id,
       g.first_name AS first_name,
       g.last_name AS last_name,
       g.email AS email,
       g.phone AS phone,
       sg.relationship AS relationship
FROM student_guardians sg
INNER JOIN guardians g ON g.guardian_id = sg.guardian_id"
        }
    }
}

/// The SELECT used for `entity` when the config does not replace it and asks for none of the
/// full SDS formats: the built-in queries as they were before them, returning the first
/// contract's columns only (`schools`, `students`, `teachers`, `sections`; the other queries
/// are the same either way), so that such an export reads exactly what it always read.
pub fn first_contract_query(entity: Entity) -> &'static str {
    match entity {
        Entity::Schools => {
            "\
SELECT sc.school_code AS school_id,
       sc.school_name AS name
FROM schools sc
WHERE sc.is_active = TRUE"
        }
        Entity::Students => {
            "\
SELECT st.student_number AS student_id,
       st.school_code AS school_id,
       st.first_name AS first_name,
       st.last_name AS last_name,
       st.email AS email,
       st.web_password AS password,
       st.grade_level AS grade
FROM students st
WHERE st.enroll_status = 'A'"
        }
        Entity::Teachers => {
            "\
SELECT sf.staff_id AS teacher_id,
       ss.school_code AS school_id,
       sf.first_name AS first_name,
       sf.last_name AS last_name,
       sf.email AS email,
       sf.web_password AS password
FROM staff sf
INNER JOIN staff_schools ss ON ss.staff_id = sf.staff_id
WHERE sf.is_active = TRUE"
        }
        Entity::Sections => {
            "\
SELECT se.school_code AS school_id,
       se.course_code AS course_code,
       se.section_code AS section_code,
       co.course_name AS course_description
FROM sections se
LEFT JOIN courses co
       ON co.school_code = se.school_code
      AND co.course_code = se.course_code"
        }
        other => default_query(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `AS` aliases are exactly the contract columns, in contract order.
    #[test]
    fn each_query_aliases_the_contract_columns_in_order() {
        for entity in Entity::ALL.into_iter().chain(Entity::OPTIONAL) {
            let aliases: Vec<&str> = default_query(entity)
                .split(" AS ")
                .skip(1)
                .map(|rest| {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            let contract: Vec<&str> = entity.columns().iter().map(|c| c.name).collect();
            assert_eq!(aliases, contract, "{entity}");
        }
    }

    /// Without the full formats the built-in queries return the first contract's columns
    /// only, in contract order: the leading columns of the full queries.
    #[test]
    fn first_contract_queries_alias_the_first_columns() {
        let first = [
            (Entity::Schools, 2),
            (Entity::Students, 7),
            (Entity::Teachers, 6),
            (Entity::Sections, 4),
            (Entity::StudentEnrollments, 4),
            (Entity::TeacherRosters, 4),
        ];
        for (entity, width) in first {
            let aliases: Vec<&str> = first_contract_query(entity)
                .split(" AS ")
                .skip(1)
                .map(|rest| {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            let contract: Vec<&str> = entity.columns()[..width].iter().map(|c| c.name).collect();
            assert_eq!(aliases, contract, "{entity}");
        }
        for entity in Entity::OPTIONAL {
            assert_eq!(first_contract_query(entity), default_query(entity));
        }
    }

    #[test]
    fn queries_are_single_portable_selects() {
        for entity in Entity::ALL.into_iter().chain(Entity::OPTIONAL) {
            for sql in [default_query(entity), first_contract_query(entity)] {
                assert!(sql.starts_with("SELECT "), "{entity}");
                assert!(
                    !sql.trim_end().ends_with(';'),
                    "{entity}: trailing semicolon"
                );
                assert!(
                    !sql.to_uppercase().contains("ORDER BY"),
                    "{entity}: ORDER BY"
                );
                // No dialect quoting of identifiers (backticks or double quotes).
                assert!(
                    !sql.contains('`') && !sql.contains('"'),
                    "{entity}: quoted identifier"
                );
            }
        }
    }
}
