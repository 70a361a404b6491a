//! sds-deliver owns getting a published file set to where it must go: the [`Destination`]
//! contract, one module per transport, and the classification of failures into retryable and
//! permanent (the *whether* of retrying; the *when* lives with the caller's backoff policy).
//!
//! File transports (local, SFTP, FTP/FTPS) share one staged-upload protocol ([`staged`]): every
//! file of the set goes up under a temporary name and is size-checked, and only then are all of
//! them renamed into place in one burst, so a reader never sees half a file nor files of two
//! snapshots side by side. Each transport supplies only small primitives (list, put, size,
//! rename, remove).
//!
//! Architecture invariants: only this crate speaks network protocols; it never reads config files
//! or the environment (it gets built config structs); a delivery reports success only once every
//! file is complete under its final name; no secret is ever formatted into an error or log line;
//! every read from a server is bounded in size.

pub mod email;
pub mod ftp;
pub mod local;
pub mod sftp;
pub mod staged;
mod tls;

use futures_util::future::BoxFuture;
use sds_core::FileEntry;
use std::path::PathBuf;

pub use email::{EmailConfig, EmailDestination};
pub use ftp::{FtpConfig, FtpDestination};
pub use local::{LocalConfig, LocalDestination};
pub use sftp::{SftpConfig, SftpDestination};

/// The complete set of files of one snapshot. SDS treats a missing file as deleted records, so
/// destinations always send every file of the set (bar an excluded licence file).
#[derive(Debug, Clone)]
pub struct FileSet {
    pub snapshot_id: String,
    /// When the snapshot was published, RFC 3339 UTC (for subjects and summaries).
    pub created_at: String,
    /// Folder holding the files under their final names.
    pub dir: PathBuf,
    pub files: Vec<FileEntry>,
}

impl FileSet {
    /// The files a destination should carry, given its `include_license_file` choice.
    pub fn files_for(&self, include_license: bool) -> impl Iterator<Item = &FileEntry> {
        self.files_chosen(include_license, &[])
    }

    /// The files a destination carries: the licence file only when it includes it
    /// (`include_license_file`), and none of the files it leaves out by name (`omit_files`,
    /// which the config allows only for optional files).
    pub fn files_chosen<'a>(
        &'a self,
        include_license: bool,
        omit: &'a [String],
    ) -> impl Iterator<Item = &'a FileEntry> {
        self.files
            .iter()
            .filter(move |f| (include_license || !f.license) && !omit.contains(&f.name))
    }
}

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, timeouts, a full or read-only disk that an admin may fix: retry.
    Retryable,
    /// Authentication, host key, permission refused by a server, permanent rejection,
    /// a configuration mistake: retrying cannot help, stop and tell the admin.
    Permanent,
}

/// A failed delivery or health check. The message names the destination, what failed and what
/// to do; it never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("destination {destination:?}: {message}")]
pub struct DeliverError {
    pub destination: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl DeliverError {
    pub fn retryable(destination: &str, message: impl Into<String>) -> Self {
        DeliverError {
            destination: destination.to_owned(),
            kind: ErrorKind::Retryable,
            message: message.into(),
        }
    }
    pub fn permanent(destination: &str, message: impl Into<String>) -> Self {
        DeliverError {
            destination: destination.to_owned(),
            kind: ErrorKind::Permanent,
            message: message.into(),
        }
    }
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }
}

/// Where a snapshot goes. File transports upload every file under a temporary name, check it,
/// and only then move all of them to their final names ([`staged`]), so a reader never sees a
/// partial file nor a mixed set; temporary files left by an interrupted attempt are removed by the
/// next one.
pub trait Destination: Send + Sync {
    /// The `[[destination]] name`, for logs and the outbox.
    fn name(&self) -> &str;
    /// `local`, `sftp`, `ftp`, `email`.
    fn kind(&self) -> &'static str;
    /// Deliver the whole set; `Ok` only when every file is complete under its final name.
    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>>;
    /// Called when a delivery was abandoned (shutdown grace ran out): removes what the abandoned
    /// attempt left that a reader could trip over, as far as that is possible without waiting on
    /// the stuck operation. Remote transports leave it to the next attempt, which removes
    /// leftovers first anyway (their connection is simply dropped).
    fn cleanup_after_abandon(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// A cheap proof that a delivery could succeed now (reachable, authenticated, writable): for
    /// the file transports a real round trip with a probe file under a temporary name (put,
    /// size check, rename, remove), for email a login without sending. Changes nothing visible
    /// at the destination.
    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>>;
    /// What a successful [`Destination::check`] has proved, in words for the admin running
    /// `sds-sync check` (no secrets).
    fn check_verified(&self) -> String {
        "reachable".to_owned()
    }
    /// `sds-sync check --send-test`: sends one short test message where that means something
    /// (email), and says what was sent; `None` for destinations without such a thing.
    fn send_test(&self) -> Option<BoxFuture<'_, Result<String, DeliverError>>> {
        None
    }
    /// Insecure settings the operator should hear about (clear-text transport, secret files open
    /// to other accounts, a shared folder): logged at WARN at start, reload and `once`, and
    /// printed by `check`. Each names the destination and what to change.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// What `check --offline` can tell is wrong without any network: a setting every delivery
    /// would refuse for good (a local folder any account may write to). Local look-ups only.
    fn check_offline(&self) -> Result<(), DeliverError> {
        Ok(())
    }
}
