//! Whether an SFTP request failure can heal by itself (retry) or needs an admin (permanent), and
//! what to tell the admin. Pure functions over the error, so the table is unit-tested.

use crate::ErrorKind;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;

/// What the messages may name about the destination.
pub(super) struct Context<'a> {
    pub remote_dir: &'a str,
    pub username: &'a str,
    pub request_timeout_secs: u64,
}

/// Judges a failed request; `what` says what we were doing ("cannot create /upload/x").
pub(super) fn classify(what: &str, e: &SftpError, ctx: &Context<'_>) -> (ErrorKind, String) {
    use ErrorKind::{Permanent, Retryable};
    match e {
        SftpError::Status(s) => {
            let detail = if s.error_message.is_empty() {
                s.status_code.to_string()
            } else {
                // The server's own text: bounded by the SFTP packet limit, but keep messages short.
                s.error_message.chars().take(300).collect()
            };
            match s.status_code {
                StatusCode::PermissionDenied => (
                    Permanent,
                    format!(
                        "{what}: permission denied by the server ({detail}); make remote_dir {:?} writable by user {:?}",
                        ctx.remote_dir, ctx.username
                    ),
                ),
                StatusCode::NoSuchFile => (
                    Permanent,
                    format!(
                        "{what}: no such file or folder ({detail}); check that remote_dir {:?} exists for user {:?}",
                        ctx.remote_dir, ctx.username
                    ),
                ),
                StatusCode::OpUnsupported | StatusCode::BadMessage => (
                    Permanent,
                    format!("{what}: the server does not support this operation ({detail})"),
                ),
                // SFTPv3 reports a full disk, an exceeded quota or a read-only file system as a
                // generic failure; an admin can fix those while we retry.
                _ => (
                    Retryable,
                    format!(
                        "{what}: the server reported a failure ({detail}); often a full disk or quota; will retry"
                    ),
                ),
            }
        }
        SftpError::Timeout => (
            Retryable,
            format!(
                "{what}: no reply within {} s (request_timeout_secs); will retry",
                ctx.request_timeout_secs
            ),
        ),
        other => (
            Retryable,
            format!("{what}: connection lost or broken ({other}); will retry"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::Status;

    fn status(code: StatusCode, text: &str) -> SftpError {
        SftpError::Status(Status {
            id: 1,
            status_code: code,
            error_message: text.into(),
            language_tag: "en".into(),
        })
    }

    #[test]
    fn classification_table() {
        let ctx = Context {
            remote_dir: "/upload",
            username: "u",
            request_timeout_secs: 7,
        };
        let cases = [
            (
                status(StatusCode::PermissionDenied, "Permission denied"),
                ErrorKind::Permanent,
                "make remote_dir \"/upload\" writable by user \"u\"",
            ),
            (
                status(StatusCode::NoSuchFile, ""),
                ErrorKind::Permanent,
                "check that remote_dir",
            ),
            (
                status(StatusCode::OpUnsupported, "no"),
                ErrorKind::Permanent,
                "does not support",
            ),
            (
                status(StatusCode::Failure, "No space left"),
                ErrorKind::Retryable,
                "full disk",
            ),
            (SftpError::Timeout, ErrorKind::Retryable, "within 7 s"),
            (
                SftpError::IO("broken pipe".into()),
                ErrorKind::Retryable,
                "connection lost",
            ),
        ];
        for (e, kind, needle) in cases {
            let (k, m) = classify("cannot create /upload/x", &e, &ctx);
            assert_eq!(k, kind, "{m}");
            assert!(
                m.starts_with("cannot create /upload/x: ") && m.contains(needle),
                "{m}"
            );
        }
        let long = status(StatusCode::Failure, &"x".repeat(10_000));
        assert!(classify("w", &long, &ctx).1.len() < 500);
    }
}
