//! Export options: what the admin chose in `[export]`, already validated.

pub use crate::format::Format;
use serde::{Deserialize, Serialize};

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
        }
    }
}
