//! Errors of the store. Each names the path or the record concerned and, where there is one,
//! what the operator can do about it.

use std::path::PathBuf;

use crate::{FailPoint, SnapshotId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed (disk full, permissions, a missing file...). The previous
    /// snapshot stays current.
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process (or another `Store` in this one) has the state directory open.
    #[error(
        "the state directory is in use: {path} is locked by another sds-sync process; stop that \
         process or give this one its own [state] dir"
    )]
    Locked { path: PathBuf },

    #[error("state DB {path}: cannot {what}: {source}")]
    Db {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    #[error("state DB {path}: cannot apply migrations{hint}: {source}")]
    Migrate {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// The state DB holds something this version does not understand.
    #[error("state DB {path}: unexpected content: {what}")]
    Corrupt { path: PathBuf, what: String },

    /// The files in a staging folder do not match the manifest handed to publish/hold.
    #[error("staging folder {path} does not match its manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },

    #[error("there is no snapshot {id}")]
    NotFound { id: SnapshotId },

    #[error("snapshot {id} is {status}, not held: only a held snapshot can be approved")]
    NotHeld { id: SnapshotId, status: String },

    #[error(
        "held snapshot {id} was superseded by the newer snapshot {by}; approve that one if it is \
         held, or let the next run publish"
    )]
    Superseded { id: SnapshotId, by: SnapshotId },

    /// The caller used the API in a way it does not allow.
    #[error("store misuse: {0}")]
    Usage(String),

    /// The async runtime shut down while file work was in progress.
    #[error("interrupted: the runtime shut down during file work; the next start recovers")]
    Interrupted,

    /// A failure injected through [`crate::StoreOptions::fail_point`] to simulate a crash. Nothing
    /// was cleaned up, exactly as after a real crash.
    #[error("injected failure at publish step {0} (fail point set for testing)")]
    FailPoint(FailPoint),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
