//! The errors of reading the SIS, worded for the admin who has to fix them: each names the query
//! (by its config key), the column and the database, and says what to check. None of them ever
//! carries a password: database messages pass through [`Scrubber`] before they are stored.

use sds_core::Entity;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// Which query an error is about: the admin's own (`[source.queries] students`) or the built-in
/// default for the reference schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryName {
    pub entity: Entity,
    /// True when the query came from `[source.queries]`, false for the built-in default.
    pub custom: bool,
}

impl fmt::Display for QueryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.custom {
            write!(f, "query `[source.queries] {}`", self.entity.key())
        } else {
            // Name the config key too: it is where the admin replaces a default that does not fit.
            write!(
                f,
                "built-in `{0}` query (replace it with `[source.queries] {0}`)",
                self.entity.key()
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source URL could not be understood. The URL itself is not repeated (it may hold a
    /// password).
    #[error("source URL is not valid: {reason}")]
    InvalidUrl { reason: String },

    /// No connection could be made to the SIS database.
    #[error("cannot connect to the {backend} SIS at {target}{user}: {reason}. Check: {hint}",
        user = user.as_deref().map(|u| format!(" as user `{u}`")).unwrap_or_default())]
    Connect {
        backend: &'static str,
        /// `host:port/database` or the file path; never credentials.
        target: String,
        user: Option<String>,
        reason: String,
        hint: String,
    },

    /// `[source] ca_file` cannot be used.
    #[error(
        "[source] ca_file {}: cannot use it as the CA of the SIS server's certificate: {reason}; \
         give a readable PEM file with the CA certificate(s)",
        path.display()
    )]
    CaFile {
        path: std::path::PathBuf,
        reason: String,
    },

    /// The embedded demo SIS (`demo:`) could not be loaded.
    #[error("cannot load the embedded demo SIS: {reason}")]
    Demo { reason: String },

    /// The database refused or failed the query.
    #[error("{query} failed on the {backend} SIS: {message}")]
    Query {
        query: QueryName,
        backend: &'static str,
        message: String,
    },

    /// The query did not finish within `[source] query_timeout_secs`.
    #[error(
        "{query} did not finish within {secs} s ([source] query_timeout_secs); check the SIS \
         for locks or load, or raise the limit if the query is simply slow"
    )]
    Timeout { query: QueryName, secs: u64 },

    /// The query text is empty once trailing `;` and blanks are removed.
    #[error("{query} is empty")]
    EmptyQuery { query: QueryName },

    /// The query does not return a column that the source contract requires.
    #[error(
        "{query} does not return the required column `{column}` (it returns: {returned}); \
         add it to the SELECT list, e.g. `... AS {column}`",
        returned = list(returned)
    )]
    MissingColumn {
        query: QueryName,
        column: &'static str,
        returned: Vec<String>,
    },

    /// Two result columns match one contract column (names compare case-insensitively).
    #[error("{query} returns the column `{column}` more than once; keep one")]
    DuplicateColumn {
        query: QueryName,
        column: &'static str,
    },

    /// A contract column has a database type that this crate does not turn into text.
    #[error(
        "{query}: column `{column}` has the {backend} type {type_name}, which sds-sync cannot \
         read as text; convert it in the query, e.g. `{cast}`"
    )]
    UnsupportedType {
        query: QueryName,
        backend: &'static str,
        column: String,
        type_name: String,
        /// A ready-made CAST for this backend.
        cast: String,
    },

    /// A value of a supported type could not be read (invalid UTF-8 in a BLOB, a NUMERIC beyond
    /// 28 digits, a date out of range, ...).
    #[error(
        "{query}: column `{column}` ({type_name}) in row {row}: the value cannot be read as \
         text ({message}); convert it in the query, e.g. `{cast}`"
    )]
    Value {
        query: QueryName,
        column: String,
        type_name: String,
        row: u64,
        message: String,
        cast: String,
    },

    /// A value is longer than `[source] max_value_bytes`: the run stops before such data
    /// reaches memory further down (the builder, the files, an email).
    #[error(
        "{query}: the value of column `{column}` in row {row} ({id}) is {bytes} bytes long, more \
         than [source] max_value_bytes = {limit}; check that row in the SIS, or raise the limit \
         if such values are real"
    )]
    ValueTooLong {
        query: QueryName,
        column: &'static str,
        row: u64,
        /// The row's key columns (`student_id=…`), each shortened.
        id: String,
        bytes: usize,
        limit: usize,
    },

    /// The query returned more rows than one SDS file may hold (`[export] max_rows_per_file`,
    /// checked while the rows stream, before they pile up in memory).
    #[error(
        "{query} returned more than {limit} rows, the most one SDS file may hold ([export] \
         max_rows_per_file; Microsoft's limit is 2,000,000 per file). Split the district into \
         several sync profiles (one config per group of schools, with queries filtered by \
         school), or raise the limit if Microsoft raised yours"
    )]
    TooManyRows { query: QueryName, limit: u64 },
}

impl SourceError {
    /// A short, secret-free name of what went wrong, for places that must not show the SIS
    /// host, user or database (the unauthenticated health endpoint).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::InvalidUrl { .. } | SourceError::CaFile { .. } => {
                "the SIS connection settings are invalid"
            }
            SourceError::Connect { .. } | SourceError::Demo { .. } => "cannot connect to the SIS",
            SourceError::Timeout { .. } => "a SIS query timed out",
            SourceError::ValueTooLong { .. } | SourceError::TooManyRows { .. } => {
                "the SIS returned more data than the configured limits allow"
            }
            SourceError::Query { .. }
            | SourceError::EmptyQuery { .. }
            | SourceError::MissingColumn { .. }
            | SourceError::DuplicateColumn { .. }
            | SourceError::UnsupportedType { .. }
            | SourceError::Value { .. } => "a SIS query failed",
        }
    }
}

/// The database's own message where there is one (without the driver's prefix, and for
/// PostgreSQL without the server's source file and line), else the driver's description.
pub(crate) fn database_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        // The driver's words ("expected to read 5 bytes, got 0 bytes at EOF") do not say what
        // happened: the server went away in the middle of a conversation.
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => format!(
            "the database server closed the connection (it was restarted or stopped, or a \
             server or firewall timeout ended the session) ({io})"
        ),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => format!(
            "the database server reset the connection (it was restarted or stopped, or a \
             firewall ended the session) ({io})"
        ),
        other => other.to_string(),
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no columns".to_owned()
    } else {
        names.join(", ")
    }
}

/// Removes known secrets from text that came from a driver or a database before it goes into an
/// error. Drivers do not normally echo passwords, but a URL that failed to parse or a server that
/// quotes its connection string could; this is the last line of defence.
#[derive(Default, Clone)]
pub(crate) struct Scrubber {
    secrets: Vec<SecretString>,
}

impl Scrubber {
    pub(crate) fn add(&mut self, secret: &str) {
        // Very short "secrets" would mangle ordinary text and are no real password anyway.
        if secret.len() >= 3 {
            self.secrets.push(SecretString::from(secret.to_owned()));
        }
    }

    pub(crate) fn scrub(&self, text: impl Into<String>) -> String {
        let mut text = text.into();
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if text.contains(secret) {
                text = text.replace(secret, "********");
            }
        }
        text
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::database_message;
    use std::io;

    #[test]
    fn a_connection_closed_by_the_server_is_called_that() {
        // The exact error sqlx returns when the socket reaches EOF in the middle of a message.
        let eof = sqlx::Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes, got 0 bytes at EOF",
        ));
        let text = database_message(&eof);
        assert!(
            text.starts_with("the database server closed the connection"),
            "{text}"
        );
        assert!(text.contains("got 0 bytes at EOF"), "{text}");
        let reset = sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(
            database_message(&reset).starts_with("the database server reset the connection"),
            "{}",
            database_message(&reset)
        );
        // Other I/O errors keep the driver's words.
        let other = sqlx::Error::Io(io::Error::other("something else"));
        assert!(database_message(&other).contains("something else"));
    }
}
