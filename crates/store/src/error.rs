//! Errors of the store. Each names the path or the record concerned and, where there is one,
//! what the operator can do about it.

use std::path::{Path, PathBuf};

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

    /// SQLite failed to write (an I/O error, or "database or disk is full") and the file system
    /// of the state directory has no space left: SQLite's own words ("disk I/O error") do not say
    /// so.
    #[error(
        "state DB {path}: cannot {what}: the disk is full ({available} bytes free on the file \
         system of {dir}); free some space there, then run again ({source})"
    )]
    DiskFull {
        what: &'static str,
        path: PathBuf,
        dir: PathBuf,
        available: u64,
        #[source]
        source: sqlx::Error,
    },

    /// SQLite could not open or write the state DB because this user may not: its own words
    /// ("unable to open database file") do not say so.
    #[error(
        "state DB {path}: cannot {what}: permission denied: {detail}; the state directory and \
         everything in it must belong to the user sds-sync runs as ({source})"
    )]
    PermissionDenied {
        what: &'static str,
        path: PathBuf,
        detail: String,
        #[source]
        source: sqlx::Error,
    },

    /// The state DB is missing or empty, or does not know some snapshot folders, while
    /// `snapshots/` holds them: the history of the state directory is lost (or belongs to
    /// another DB). Starting over would silently make the next export an unguarded first
    /// snapshot and remove the folders, so every verb refuses until the operator decides.
    #[error(
        "state DB {db} {problem}, but {snapshots} holds snapshot folder(s) {folders}: refusing \
         to start over silently. Restore {db} from a backup, or run `sds-sync reset-state` to \
         archive the old snapshots and make the next run a guarded first run"
    )]
    StateLost {
        db: PathBuf,
        /// "is missing", "is empty", "has no record of them", "does not know 7, 8".
        problem: String,
        snapshots: PathBuf,
        /// The folder names, shortened when there are many.
        folders: String,
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

/// SQLite's primary result codes that [`db_error`] looks behind (the low byte of an extended
/// code such as 4874, SQLITE_IOERR_SHMSIZE).
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_READONLY: i64 = 8;

/// Below this many free bytes a failed SQLite write is put down to a full disk: SQLite grows its
/// files by pages and 32 KiB shared-memory chunks, so a file system with less than this left is
/// as good as full for it.
const NEARLY_FULL: u64 = 1024 * 1024;

/// A state DB error, named for what the operator has to fix where SQLite's message hides it: a
/// full disk behind "disk I/O error", missing permissions behind "unable to open database file".
pub(crate) fn db_error(what: &'static str, path: &Path, source: sqlx::Error) -> StoreError {
    classify(what, path, source, available_bytes, permission_problem)
}

/// [`db_error`] with the file-system probes passed in (tests give their own).
fn classify(
    what: &'static str,
    path: &Path,
    source: sqlx::Error,
    available_bytes: impl Fn(&Path) -> Option<u64>,
    permission_problem: impl Fn(&Path) -> Option<String>,
) -> StoreError {
    let primary = match &source {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff),
        _ => None,
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    match primary {
        Some(SQLITE_IOERR | SQLITE_FULL) => {
            if let Some(available) = available_bytes(&dir)
                && available < NEARLY_FULL
            {
                return StoreError::DiskFull {
                    what,
                    path: path.to_path_buf(),
                    dir,
                    available,
                    source,
                };
            }
        }
        Some(SQLITE_CANTOPEN | SQLITE_READONLY) => {
            if let Some(detail) = permission_problem(path) {
                return StoreError::PermissionDenied {
                    what,
                    path: path.to_path_buf(),
                    detail,
                    source,
                };
            }
        }
        _ => {}
    }
    StoreError::Db {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes this process may still write on the file system holding `dir` (root may use the
/// blocks reserved for it).
#[cfg(unix)]
pub(crate) fn available_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the right
    // type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // SAFETY: geteuid cannot fail and touches no memory.
    let blocks = if unsafe { libc::geteuid() } == 0 {
        st.f_bfree
    } else {
        st.f_bavail
    };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    Some((blocks as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
pub(crate) fn available_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Why this process may not open `db` read-write, if that is the reason: SQLite needs to read
/// and write the file and to create `-wal`/`-shm` files next to it.
#[cfg(unix)]
pub(crate) fn permission_problem(db: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let dir = db.parent().unwrap_or(Path::new("."));
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    let denied = |path: &Path, mode: libc::c_int| -> bool {
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a valid NUL-terminated path; faccessat only reads it. AT_EACCESS checks
        // with the effective ids, the ones the open would use.
        let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) };
        rc != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::PermissionDenied
    };
    if denied(dir, libc::X_OK) {
        return Some(format!(
            "{} cannot be entered by this user (uid {uid})",
            dir.display()
        ));
    }
    if db.exists() && denied(db, libc::R_OK | libc::W_OK) {
        return Some(format!(
            "{} is not readable and writable by this user (uid {uid})",
            db.display()
        ));
    }
    if denied(dir, libc::W_OK) {
        return Some(format!(
            "{} is not writable by this user (uid {uid}); SQLite creates its -wal and -shm files \
             there",
            dir.display()
        ));
    }
    None
}

#[cfg(not(unix))]
pub(crate) fn permission_problem(_db: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A SQLite error as sqlx reports it, with the extended result code of the cases.
    #[derive(Debug)]
    struct Sqlite(i64, &'static str);

    impl std::fmt::Display for Sqlite {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "(code: {}) {}", self.0, self.1)
        }
    }

    impl std::error::Error for Sqlite {}

    impl sqlx::error::DatabaseError for Sqlite {
        fn message(&self) -> &str {
            self.1
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Owned(self.0.to_string()))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn err(code: i64, message: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Sqlite(code, message)))
    }

    const DB: &str = "/var/lib/sds-sync/state.sqlite";

    #[test]
    fn a_disk_io_error_on_a_full_disk_says_the_disk_is_full() {
        let full = |_: &Path| Some(4096);
        let fine = |_: &Path| None;
        for (code, message) in [(4874, "disk I/O error"), (13, "database or disk is full")] {
            let e = classify("open", Path::new(DB), err(code, message), full, fine);
            let text = e.to_string();
            assert!(matches!(e, StoreError::DiskFull { .. }), "{text}");
            assert!(
                text.contains(
                    "the disk is full (4096 bytes free on the file system of /var/lib/sds-sync)"
                ),
                "{text}"
            );
            // SQLite's own words stay, for whoever searches for them.
            assert!(text.contains(&format!("(code: {code})")), "{text}");
        }
        // The same error with space left is not blamed on the disk.
        let e = classify(
            "open",
            Path::new(DB),
            err(4874, "disk I/O error"),
            |_: &Path| Some(10 << 30),
            fine,
        );
        assert!(matches!(e, StoreError::Db { .. }), "{e}");
    }

    #[test]
    fn unable_to_open_says_permission_denied_only_when_that_is_the_cause() {
        let space = |_: &Path| Some(10 << 30);
        let denied = |p: &Path| {
            Some(format!(
                "{} is not readable and writable by this user (uid 998)",
                p.display()
            ))
        };
        let e = classify(
            "open",
            Path::new(DB),
            err(14, "unable to open database file"),
            space,
            denied,
        );
        let text = e.to_string();
        assert!(matches!(e, StoreError::PermissionDenied { .. }), "{text}");
        assert!(text.contains("cannot open: permission denied: /var/lib/sds-sync/state.sqlite is not readable and writable by this user (uid 998)"), "{text}");
        let e = classify(
            "open",
            Path::new(DB),
            err(14, "unable to open database file"),
            space,
            |_: &Path| None,
        );
        assert!(matches!(e, StoreError::Db { .. }), "{e}");
        // Other errors are left as they are.
        let e = classify(
            "read",
            Path::new(DB),
            err(1, "no such table: x"),
            |_: &Path| Some(0),
            denied,
        );
        assert!(matches!(e, StoreError::Db { .. }), "{e}");
    }

    #[test]
    fn the_probes_answer_for_a_real_directory() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(available_bytes(tmp.path()).is_some_and(|n| n > 0));
        // This process created the folder: nothing is denied to it.
        assert_eq!(permission_problem(&tmp.path().join("state.sqlite")), None);
    }
}
