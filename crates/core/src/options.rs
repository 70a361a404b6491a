//! Export options: what the admin chose in `[export]`, already validated.

use crate::contract::Entity;
pub use crate::format::Format;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the `Username` / `username` column is filled from the SIS email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernameRule {
    /// The full email address.
    Email,
    /// The part of the email before `@`.
    EmailLocalPart,
    /// Always blank.
    Blank,
}

/// The district org above the schools (`[export.district]`): v2 and v2.1 write it to
/// `orgs.csv` (type `district`) and make it every school's `parentSourcedId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct District {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    pub format: Format,
    /// School IDs to export; empty means every school the query returns.
    pub schools: Vec<String>,
    pub username: UsernameRule,
    /// Export the SIS password where the query returns one. Off blanks the values only: the
    /// `Password`/`password` column stays, because every format has a fixed header.
    pub include_passwords: bool,
    /// v1 only: also build `License.csv`.
    pub license_file: bool,
    pub account_sku_id: String,
    /// Prepended to every student ID (v2/v2.1 use one ID space for students and teachers).
    pub student_id_prefix: String,
    pub teacher_id_prefix: String,
    /// Prepended to every guardian ID (v2.1 `users.csv`, `relationships.csv`).
    pub guardian_id_prefix: String,
    /// Write every documented optional column whose source the queries return. Off (the
    /// default), the files are exactly those of the required columns.
    pub optional_columns: bool,
    /// The optional queries to read ([`Entity::OPTIONAL`]); each adds a v2.1 file.
    pub optional_queries: Vec<Entity>,
    /// v2/v2.1: a district org above every school.
    pub district: Option<District>,
    /// SIS grade → Microsoft grade code, matched exactly after trimming (`"9" = "09"`).
    pub grade_map: BTreeMap<String, String>,
}

impl ExportOptions {
    /// Whether the optional query `entity` is switched on.
    pub fn reads(&self, entity: Entity) -> bool {
        !entity.is_optional_query() || self.optional_queries.contains(&entity)
    }

    /// Whether any option of the full SDS formats is set. None set, the export is exactly what
    /// sds-sync wrote before them (a test holds every fixture to its old bytes).
    pub fn full_formats(&self) -> bool {
        self.optional_columns
            || !self.optional_queries.is_empty()
            || self.district.is_some()
            || !self.grade_map.is_empty()
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            format: Format::V1,
            schools: Vec::new(),
            username: UsernameRule::Email,
            include_passwords: true,
            license_file: false,
            account_sku_id: String::new(),
            student_id_prefix: String::new(),
            teacher_id_prefix: String::new(),
            guardian_id_prefix: String::new(),
            optional_columns: false,
            optional_queries: Vec::new(),
            district: None,
            grade_map: BTreeMap::new(),
        }
    }
}
