//! Whether an FTP failure can heal by itself (retry) or needs an admin (permanent), and what to
//! tell the admin. Pure functions over reply codes and texts, so the table is unit-tested.

use super::tls::ServerKind;
use crate::ErrorKind;

/// The protocol step that failed; the same reply code means different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Greeting,
    AuthTls,
    Login,
    ChangeDir,
    SetBinary,
    List,
    Upload,
    Size,
    Rename,
    Delete,
}

/// The verdict on one failed reply: retry or not, and the advice for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub kind: ErrorKind,
    pub advice: &'static str,
}

fn permanent(advice: &'static str) -> Verdict {
    Verdict {
        kind: ErrorKind::Permanent,
        advice,
    }
}

fn retryable(advice: &'static str) -> Verdict {
    Verdict {
        kind: ErrorKind::Retryable,
        advice,
    }
}

/// The advice for a refused non-resumed data connection when the server software is unknown;
/// [`reuse_advice`] names the setting of the server at hand.
pub(super) const REUSE_ADVICE: &str = "the server requires every TLS data connection to resume the control connection's TLS \
     session and did not accept this client's data connection; on the server allow data connections \
     without session reuse (vsftpd: `require_ssl_reuse=NO` in vsftpd.conf; ProFTPD: `TLSOptions \
     NoSessionReuseRequired` in proftpd.conf; FileZilla Server: turn off \"Require TLS session \
     resumption on data connection\") and restart it (or ask the server's admin to)";

/// [`REUSE_ADVICE`] for the server at hand (known from its greeting).
pub(super) fn reuse_advice(server: Option<ServerKind>) -> String {
    let setting = match server {
        Some(ServerKind::Vsftpd) => {
            "on the server set `require_ssl_reuse=NO` in vsftpd.conf and restart vsftpd"
        }
        Some(ServerKind::Proftpd) => {
            "on the server add `TLSOptions NoSessionReuseRequired` to proftpd.conf (its mod_tls section) and restart ProFTPD"
        }
        Some(ServerKind::FileZilla) => {
            "in FileZilla Server turn off \"Require TLS session resumption on data connection when using PROT P\""
        }
        Some(ServerKind::PureFtpd) | None => return REUSE_ADVICE.to_owned(),
    };
    format!(
        "the server requires every TLS data connection to resume the control connection's TLS session and did not \
         accept this client's data connection; {setting} (or ask the server's admin to)"
    )
}

/// The three-digit code at the start of a reply (suppaftp maps codes it does not know, such as
/// 522 or 534, to `Status::Unknown`, so the code is read from the reply text itself).
pub(super) fn reply_code(body: &[u8]) -> Option<u32> {
    let digits = body.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Judges a negative (or unexpected) server reply to `step`.
pub(super) fn classify_reply(step: Step, code: u32, text: &str) -> Verdict {
    let lower = text.to_ascii_lowercase();
    // Replies that say "you must use TLS" come as 530 (vsftpd: "Non-anonymous sessions must use
    // encryption.") or 534/550 on other servers.
    let wants_tls = lower.contains("encrypt") || lower.contains("ssl") || lower.contains("tls");
    match (code, step) {
        // vsftpd: "522 SSL connection failed: session reuse required"; FileZilla Server:
        // "425 ... TLS session of data connection not resumed".
        (400..=599, _) if lower.contains("session reuse") || lower.contains("not resumed") => {
            permanent(REUSE_ADVICE)
        }
        (522, _) => permanent(
            "the server requires encrypted connections (FTPS): set tls = \"explicit\" or \"implicit\" to match the server",
        ),
        // A server without TLS answers AUTH TLS with 500/502/504, or 530 ("log in first").
        (500 | 502 | 504 | 530 | 534 | 431, Step::AuthTls) => permanent(
            "the server does not offer explicit FTPS (AUTH TLS): check `tls` (\"implicit\" for servers that speak TLS from the first byte, \"none\" only if the server has no TLS at all) and the port",
        ),
        (530, Step::Login | Step::Greeting) if wants_tls => permanent(
            "the server accepts encrypted (FTPS) logins only: set tls = \"explicit\" (or \"implicit\" if the server speaks TLS from the first byte)",
        ),
        (530, Step::Login) => permanent(
            "the server refused the login: check username and password / password_file (and that the account is allowed to use FTP)",
        ),
        (530, _) => permanent(
            "the server says the session is not logged in or not allowed to do this: check the account's rights on the server",
        ),
        (550, Step::ChangeDir) | (501, Step::ChangeDir) => permanent(
            "remote_dir does not exist or the account may not enter it: create it on the server or fix remote_dir",
        ),
        (550 | 553, Step::Upload) => permanent(
            "the server refused to store the file (permission denied or name not allowed): give the account write permission in remote_dir or choose another remote_dir",
        ),
        (550 | 553, Step::Rename) => permanent(
            "the server refused to rename the uploaded file over the final name: give the account permission to rename and replace files in remote_dir",
        ),
        (550, Step::Delete) => permanent(
            "the server refused to delete a file: give the account permission to delete files in remote_dir",
        ),
        (550, _) | (551 | 553, _) => permanent(
            "the server refused the operation (permission denied or no such file): check the account's rights in remote_dir",
        ),
        // Out of quota or disk space: an admin can free space while we keep trying.
        (552, _) | (452, _) => retryable(
            "the server is out of storage space or quota: free space on the server; sds-sync keeps retrying",
        ),
        (421, _) => retryable(
            "the server closed the session (service not available, too many connections or idle timeout); sds-sync retries later",
        ),
        (425 | 426, _) => retryable(
            "the data connection could not be opened or was cut: check firewalls for the passive port range (or try passive_mode = \"extended\"); sds-sync retries later",
        ),
        (400..=499, _) => {
            retryable("the server reported a temporary failure; sds-sync retries later")
        }
        (500..=599, _) => permanent(
            "the server rejected the command permanently: check the server's settings and logs for this account",
        ),
        // A 1xx-3xx reply where another was expected: a confused or proxied server; try again.
        _ => retryable("the server gave an unexpected reply; sds-sync retries later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::{Permanent, Retryable};

    #[test]
    fn reply_code_reads_unknown_codes() {
        assert_eq!(
            reply_code(b"522 SSL connection failed: session reuse required\r\n"),
            Some(522)
        );
        assert_eq!(reply_code(b"530 Login incorrect."), Some(530));
        assert_eq!(reply_code(b"ab"), None);
        assert_eq!(reply_code(b"x30 nope"), None);
    }

    #[test]
    fn classification_table() {
        let cases: &[(Step, u32, &str, ErrorKind, &str)] = &[
            (
                Step::Login,
                530,
                "Login incorrect.",
                Permanent,
                "check username and password",
            ),
            (
                Step::Login,
                530,
                "Non-anonymous sessions must use encryption.",
                Permanent,
                "tls = \"explicit\"",
            ),
            (
                Step::Upload,
                522,
                "SSL connection failed: session reuse required",
                Permanent,
                "require_ssl_reuse=NO",
            ),
            (
                Step::List,
                522,
                "SSL connection failed: session reuse required",
                Permanent,
                "require_ssl_reuse=NO",
            ),
            (
                Step::Upload,
                522,
                "Data connections must be encrypted.",
                Permanent,
                "set tls",
            ),
            (
                Step::ChangeDir,
                550,
                "Failed to change directory.",
                Permanent,
                "remote_dir does not exist",
            ),
            (
                Step::Upload,
                553,
                "Could not create file.",
                Permanent,
                "write permission",
            ),
            (
                Step::Upload,
                550,
                "Permission denied.",
                Permanent,
                "write permission",
            ),
            (Step::Rename, 550, "Rename failed.", Permanent, "rename"),
            (Step::Upload, 552, "Quota exceeded", Retryable, "storage"),
            (Step::Upload, 451, "Local error", Retryable, "temporary"),
            (
                Step::Upload,
                426,
                "Failure writing network stream.",
                Retryable,
                "data connection",
            ),
            (
                Step::Greeting,
                421,
                "Too many users",
                Retryable,
                "closed the session",
            ),
            (Step::AuthTls, 500, "Unknown command", Permanent, "AUTH TLS"),
            (
                Step::AuthTls,
                530,
                "Please login with USER and PASS.",
                Permanent,
                "AUTH TLS",
            ),
            (Step::Size, 213, "x", Retryable, "unexpected"),
        ];
        for (step, code, text, kind, advice) in cases {
            let v = classify_reply(*step, *code, text);
            assert_eq!(v.kind, *kind, "{step:?} {code} {text}");
            assert!(
                v.advice.contains(advice),
                "{step:?} {code}: {:?} should mention {advice:?}",
                v.advice
            );
        }
    }
}
