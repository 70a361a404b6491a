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

/// The SELECT used for `entity` when the config does not replace it.
pub fn default_query(entity: Entity) -> &'static str {
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
        // One row per (teacher, school) assignment: a teacher of two schools appears twice.
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
        // LEFT JOIN: a section whose course row is missing still comes back (with no
        // description) for the exporter to report, instead of vanishing here unnoticed.
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `AS` aliases are exactly the contract columns, in contract order.
    #[test]
    fn each_query_aliases_the_contract_columns_in_order() {
        for entity in Entity::ALL {
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

    #[test]
    fn queries_are_single_portable_selects() {
        for entity in Entity::ALL {
            let sql = default_query(entity);
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
