//! How the connection to a networked SIS is protected, decided from the URL before connecting:
//! verified TLS by default for every host but this machine, clear text only when the URL says
//! so, and a warning for every setting weaker than verified TLS. Also the URL parameters sqlx
//! does not know, which are removed before sqlx sees them (it would log their values).
//!
//! | host in the URL | URL has no `sslmode` / `ssl-mode` | URL sets it |
//! |---|---|---|
//! | `localhost`, `127.0.0.1`, `::1`, a Unix socket | TLS when the server offers it (`prefer` / `PREFERRED`) | as written, no warning |
//! | any other name or address | TLS required, certificate and host name verified (`verify-full` / `VERIFY_IDENTITY`) | as written; a warning unless it verifies certificate and host name |

use crate::error::{Scrubber, SourceError};
use std::path::Path;

/// Where the database is, as far as the network is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locality {
    /// `localhost`, `127.0.0.1` or `::1`: the traffic never leaves this machine.
    Local,
    /// A Unix socket.
    Socket,
    /// Anything else: the traffic crosses a network.
    Remote,
}

impl Locality {
    pub(crate) fn of_host(host: &str) -> Locality {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1" {
            Locality::Local
        } else {
            Locality::Remote
        }
    }
}

/// What the TLS setting guarantees, whatever the driver calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protection {
    /// TLS required; the certificate chains to a trusted CA and names the host
    /// (`verify-full` / `VERIFY_IDENTITY`).
    Verified,
    /// TLS required; the certificate chains to a trusted CA, the host name is not checked
    /// (`verify-ca` / `VERIFY_CA`).
    CaOnly,
    /// TLS required; any certificate is accepted (`require` / `REQUIRED`).
    Unverified,
    /// TLS only if the server offers it, any certificate accepted; otherwise clear text
    /// (`allow`, `prefer` / `PREFERRED`).
    Opportunistic,
    /// Clear text (`disable` / `DISABLED`).
    Off,
}

/// The two drivers that speak over a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Postgres,
    MySql,
}

impl Driver {
    /// The URL parameters sqlx 0.9 understands; any other is removed (with a warning that names
    /// the key only), because sqlx's PostgreSQL driver logs unknown parameters with their value.
    fn known_param(self, key: &str) -> bool {
        const COMMON: &[&str] = &[
            "sslmode",
            "ssl-mode",
            "ssl-ca",
            "sslcert",
            "ssl-cert",
            "sslkey",
            "ssl-key",
            "statement-cache-capacity",
        ];
        const POSTGRES: &[&str] = &[
            "sslrootcert",
            "ssl-root-cert",
            "host",
            "hostaddr",
            "port",
            "dbname",
            "user",
            "password",
            "application_name",
            "options",
        ];
        const MYSQL: &[&str] = &[
            "sslca",
            "charset",
            "collation",
            "socket",
            "timezone",
            "time-zone",
        ];
        COMMON.contains(&key)
            || match self {
                Driver::Postgres => {
                    POSTGRES.contains(&key) || (key.starts_with("options[") && key.ends_with(']'))
                }
                Driver::MySql => MYSQL.contains(&key),
            }
    }

    /// The URL parameters that name a CA file (sds-sync's `[source] ca_file` replaces them).
    fn is_ca_param(self, key: &str) -> bool {
        match self {
            Driver::Postgres => matches!(key, "sslrootcert" | "ssl-root-cert" | "ssl-ca"),
            Driver::MySql => matches!(key, "sslca" | "ssl-ca"),
        }
    }

    fn protection(self, mode: &str) -> Option<Protection> {
        let mode = mode.to_ascii_lowercase();
        Some(match (self, mode.as_str()) {
            (Driver::Postgres, "disable") | (Driver::MySql, "disabled") => Protection::Off,
            (Driver::Postgres, "allow" | "prefer") | (Driver::MySql, "preferred") => {
                Protection::Opportunistic
            }
            (Driver::Postgres, "require") | (Driver::MySql, "required") => Protection::Unverified,
            (Driver::Postgres, "verify-ca") | (Driver::MySql, "verify_ca") => Protection::CaOnly,
            (Driver::Postgres, "verify-full") | (Driver::MySql, "verify_identity") => {
                Protection::Verified
            }
            _ => return None,
        })
    }

    /// The setting that gives `protection`, as it would be written in the URL.
    fn setting(self, protection: Protection) -> &'static str {
        match (self, protection) {
            (Driver::Postgres, Protection::Verified) => "sslmode=verify-full",
            (Driver::Postgres, Protection::CaOnly) => "sslmode=verify-ca",
            (Driver::Postgres, Protection::Unverified) => "sslmode=require",
            (Driver::Postgres, Protection::Opportunistic) => "sslmode=prefer",
            (Driver::Postgres, Protection::Off) => "sslmode=disable",
            (Driver::MySql, Protection::Verified) => "ssl-mode=VERIFY_IDENTITY",
            (Driver::MySql, Protection::CaOnly) => "ssl-mode=VERIFY_CA",
            (Driver::MySql, Protection::Unverified) => "ssl-mode=REQUIRED",
            (Driver::MySql, Protection::Opportunistic) => "ssl-mode=PREFERRED",
            (Driver::MySql, Protection::Off) => "ssl-mode=DISABLED",
        }
    }
}

/// A source URL with the parameters sqlx does not know removed, and what the URL says about TLS.
#[derive(Debug)]
pub(crate) struct CleanUrl {
    pub(crate) url: String,
    /// Keys of the removed parameters (never their values).
    pub(crate) ignored: Vec<String>,
    /// The last `sslmode` / `ssl-mode` written in the URL (`key=value`), if any.
    pub(crate) written_mode: Option<(String, String)>,
    /// A CA file named in the URL itself.
    pub(crate) url_ca: bool,
}

/// Splits `url`'s query into what sqlx may see and what it must not, and adds every parameter
/// value that could be a secret to `scrubber`.
pub(crate) fn clean_url(
    driver: Driver,
    url: &str,
    scrubber: &mut Scrubber,
) -> Result<CleanUrl, SourceError> {
    let mut clean = CleanUrl {
        url: url.to_owned(),
        ignored: Vec::new(),
        written_mode: None,
        url_ca: false,
    };
    let Ok(mut parsed) = url::Url::parse(url) else {
        // sqlx reports the syntax error itself (scrubbed) when it parses the same text.
        return Ok(clean);
    };
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if driver.known_param(&key) {
            if key == "password" {
                scrubber.add(&value);
            }
            if key == "sslmode" || key == "ssl-mode" {
                clean.written_mode = Some((key.to_string(), value.to_string()));
            }
            clean.url_ca |= driver.is_ca_param(&key);
            kept.push((key.into_owned(), value.into_owned()));
        } else {
            // Unknown keys are likely typos of known ones, or libpq-only settings; their
            // values may be secrets (`sslpassword`).
            scrubber.add(&value);
            if !clean.ignored.iter().any(|k| *k == key) {
                clean.ignored.push(key.into_owned());
            }
        }
    }
    if let Some((key, value)) = &clean.written_mode
        && driver.protection(value).is_none()
    {
        return Err(SourceError::InvalidUrl {
            reason: format!(
                "`{key}={value}` is not a TLS mode {}",
                match driver {
                    Driver::Postgres =>
                        "PostgreSQL knows (disable, allow, prefer, require, verify-ca, verify-full)",
                    Driver::MySql =>
                        "MySQL/MariaDB knows (DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)",
                }
            ),
        });
    }
    if !clean.ignored.is_empty() {
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(&kept);
        }
        clean.url = parsed.to_string();
    }
    Ok(clean)
}

/// How one SIS connection is protected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsPlan {
    pub(crate) driver: Driver,
    pub(crate) locality: Locality,
    /// Host (or socket path) for messages.
    pub(crate) host: String,
    pub(crate) protection: Protection,
    /// The URL's own TLS setting (`sslmode=disable`), or None when sds-sync chose.
    pub(crate) written: Option<String>,
    /// `[source] ca_file`, when set.
    pub(crate) ca_file: bool,
}

impl TlsPlan {
    /// The protection for a connection to `host` given what the URL wrote (already validated
    /// by [`clean_url`]).
    pub(crate) fn decide(
        driver: Driver,
        locality: Locality,
        host: &str,
        written: Option<&(String, String)>,
        ca_file: bool,
    ) -> TlsPlan {
        let written_protection = written.and_then(|(_, v)| driver.protection(v));
        let protection = match (written_protection, locality) {
            (Some(p), _) => p,
            (None, Locality::Remote) => Protection::Verified,
            // On this machine the traffic is not on a network: take TLS when the server offers
            // it, as the drivers do by default.
            (None, Locality::Local | Locality::Socket) => Protection::Opportunistic,
        };
        TlsPlan {
            driver,
            locality,
            host: host.to_owned(),
            protection,
            written: written
                .filter(|_| written_protection.is_some())
                .map(|(k, v)| format!("{k}={v}")),
            ca_file,
        }
    }

    /// The WARN to log at start, in `once`, after a reload and in `check`, when the connection
    /// is weaker than verified TLS across a network (or `ca_file` cannot take effect).
    pub(crate) fn warning(&self) -> Option<String> {
        let setting = self.written.as_deref().unwrap_or("");
        let key = self.driver.setting(Protection::Verified);
        let key = key.split('=').next().unwrap_or(key);
        let fix = format!(
            "remove `{key}` from [source] url (verified TLS is the default for a remote host) and \
             set [source] ca_file if the server's certificate comes from a private CA"
        );
        let mysql_rsa = if self.driver == Driver::MySql {
            "; MySQL 8 `caching_sha2_password` accounts even fetch the server's RSA key over that \
             connection, so a server posing as the SIS receives the password"
        } else {
            ""
        };
        if self.locality != Locality::Remote {
            if self.ca_file && !matches!(self.protection, Protection::Verified | Protection::CaOnly)
            {
                return Some(format!(
                    "[source] ca_file is not used: the connection to {} does not verify \
                     certificates; add `{}` to [source] url to verify it",
                    self.host,
                    self.driver.setting(Protection::Verified)
                ));
            }
            return None;
        }
        let what = match self.protection {
            Protection::Verified => return None,
            Protection::CaOnly => format!(
                "checks that the certificate comes from a trusted CA but not that it names {} \
                 (`{setting}`): any server with a certificate from that CA can pose as the SIS; \
                 use `{}`",
                self.host,
                self.driver.setting(Protection::Verified)
            ),
            Protection::Unverified => format!(
                "is encrypted but accepts any certificate (`{setting}`): a server posing as the \
                 SIS receives the password and the data{mysql_rsa}; {fix}"
            ),
            Protection::Opportunistic => format!(
                "falls back to clear text when the server (or anyone on the network) declines \
                 TLS, and accepts any certificate (`{setting}`): the password and the student \
                 data can be read on the network{mysql_rsa}; {fix}"
            ),
            Protection::Off => format!(
                "is not encrypted (`{setting}`): the password and the student data travel in \
                 clear text{mysql_rsa}; {fix}"
            ),
        };
        Some(format!("the SIS connection to {} {what}", self.host))
    }

    /// One line for `check`: the configured protection, before what the server negotiated.
    pub(crate) fn describe(&self) -> String {
        let why = match (&self.written, self.locality) {
            (Some(w), _) => format!("`{w}` in the URL"),
            (None, Locality::Remote) => "the default for a remote host".to_owned(),
            (None, Locality::Local) => "the default on this machine".to_owned(),
            (None, Locality::Socket) => "the default for a Unix socket".to_owned(),
        };
        let what = match self.protection {
            Protection::Verified => "TLS required, certificate and host name verified",
            Protection::CaOnly => "TLS required, certificate verified, host name not checked",
            Protection::Unverified => "TLS required, certificate not verified",
            Protection::Opportunistic => "TLS if the server offers it, certificate not verified",
            Protection::Off => "no TLS",
        };
        format!("{what} ({why})")
    }
}

/// Reads `[source] ca_file`: PEM certificates added to the trusted roots. A clear error when it
/// cannot be read or holds no certificate (sqlx would otherwise ignore an empty file).
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let bad = |reason: String| SourceError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad(
            "it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(driver: Driver, url: &str) -> (CleanUrl, Scrubber) {
        let mut scrubber = Scrubber::default();
        let clean = clean_url(driver, url, &mut scrubber).expect("valid URL");
        (clean, scrubber)
    }

    #[test]
    fn only_this_machine_is_local() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "::1", "[::1]"] {
            assert_eq!(Locality::of_host(host), Locality::Local, "{host}");
        }
        for host in [
            "db",
            "sis.example.org",
            "10.0.0.5",
            "127.0.0.2",
            "localhost.example.org",
            "::2",
            "",
        ] {
            assert_eq!(Locality::of_host(host), Locality::Remote, "{host}");
        }
    }

    #[test]
    fn remote_hosts_get_verified_tls_unless_the_url_says_otherwise() {
        let plan = |driver, locality, written: Option<(&str, &str)>| {
            let written = written.map(|(k, v)| (k.to_owned(), v.to_owned()));
            TlsPlan::decide(driver, locality, "db", written.as_ref(), false)
        };
        for driver in [Driver::Postgres, Driver::MySql] {
            assert_eq!(
                plan(driver, Locality::Remote, None).protection,
                Protection::Verified
            );
            assert_eq!(
                plan(driver, Locality::Local, None).protection,
                Protection::Opportunistic
            );
            assert_eq!(
                plan(driver, Locality::Socket, None).protection,
                Protection::Opportunistic
            );
        }
        let cases = [
            (Driver::Postgres, "disable", Protection::Off),
            (Driver::Postgres, "allow", Protection::Opportunistic),
            (Driver::Postgres, "prefer", Protection::Opportunistic),
            (Driver::Postgres, "require", Protection::Unverified),
            (Driver::Postgres, "verify-ca", Protection::CaOnly),
            (Driver::Postgres, "VERIFY-FULL", Protection::Verified),
            (Driver::MySql, "DISABLED", Protection::Off),
            (Driver::MySql, "preferred", Protection::Opportunistic),
            (Driver::MySql, "REQUIRED", Protection::Unverified),
            (Driver::MySql, "VERIFY_CA", Protection::CaOnly),
            (Driver::MySql, "VERIFY_IDENTITY", Protection::Verified),
        ];
        for (driver, mode, want) in cases {
            let p = plan(driver, Locality::Remote, Some(("sslmode", mode)));
            assert_eq!(p.protection, want, "{driver:?} {mode}");
            assert_eq!(
                p.written.as_deref(),
                Some(format!("sslmode={mode}").as_str())
            );
            // Written modes are honoured on this machine too, silently.
            let local = plan(driver, Locality::Local, Some(("sslmode", mode)));
            assert_eq!(local.protection, want);
            assert_eq!(local.warning(), None, "{driver:?} {mode} on localhost");
        }
    }

    #[test]
    fn anything_weaker_than_verified_tls_to_a_remote_host_is_warned() {
        let plan = |driver, mode: &str| {
            let written = ("sslmode".to_owned(), mode.to_owned());
            TlsPlan::decide(
                driver,
                Locality::Remote,
                "sis.example.org",
                Some(&written),
                false,
            )
        };
        for (driver, mode, words) in [
            (Driver::Postgres, "disable", "clear text"),
            (Driver::Postgres, "prefer", "falls back to clear text"),
            (Driver::Postgres, "require", "accepts any certificate"),
            (Driver::Postgres, "verify-ca", "not that it names"),
            (Driver::MySql, "DISABLED", "RSA key"),
        ] {
            let w = plan(driver, mode)
                .warning()
                .unwrap_or_else(|| panic!("{mode}: no warning"));
            assert!(w.contains("sis.example.org"), "{w}");
            assert!(w.contains(&format!("sslmode={mode}")), "{w}");
            assert!(w.contains(words), "{mode}: {w}");
        }
        assert_eq!(plan(Driver::Postgres, "verify-full").warning(), None);
        let default = TlsPlan::decide(Driver::MySql, Locality::Remote, "db", None, true);
        assert_eq!(default.warning(), None);
        assert!(default.describe().contains("default for a remote host"));
        // A CA file that cannot take effect is said so.
        let local = TlsPlan::decide(Driver::Postgres, Locality::Local, "localhost", None, true);
        assert!(local.warning().is_some_and(|w| w.contains("ca_file")));
    }

    #[test]
    fn unknown_parameters_are_removed_and_their_values_scrubbed() {
        let (c, scrubber) = clean(
            Driver::Postgres,
            "postgres://u@db/sis?sslpassword=Hunter2Secret&sslmode=disable&application_name=x&options[search_path]=a",
        );
        assert_eq!(c.ignored, ["sslpassword"]);
        assert!(!c.url.contains("Hunter2Secret"), "{}", c.url);
        assert!(c.url.contains("sslmode=disable") && c.url.contains("application_name=x"));
        assert_eq!(
            c.written_mode,
            Some(("sslmode".to_owned(), "disable".to_owned()))
        );
        assert_eq!(scrubber.scrub("x Hunter2Secret y"), "x ******** y");

        // Nothing unknown: the URL is passed on exactly as written.
        let url = "mysql://u:p%40ss@db:3306/sis?ssl-mode=REQUIRED&charset=utf8mb4";
        let (c, _) = clean(Driver::MySql, url);
        assert_eq!(c.url, url);
        assert!(c.ignored.is_empty());

        let (c, _) = clean(
            Driver::MySql,
            "mysql://u@db/sis?sslrootcert=/x&ssl-mdoe=DISABLED",
        );
        assert_eq!(c.ignored, ["sslrootcert", "ssl-mdoe"]);
        assert_eq!(c.written_mode, None, "a misspelt mode is not a mode");
        assert!(!c.url.contains('?'), "{}", c.url);

        let (c, scrubber) = clean(Driver::Postgres, "postgres://db/sis?password=InQuery99");
        assert!(c.ignored.is_empty());
        assert_eq!(scrubber.scrub("InQuery99"), "********");
    }

    #[test]
    fn an_unknown_tls_mode_is_an_error_naming_the_choices() {
        let mut scrubber = Scrubber::default();
        let err = clean_url(
            Driver::Postgres,
            "postgres://db/sis?sslmode=verify_full",
            &mut scrubber,
        )
        .expect_err("not a PostgreSQL mode");
        assert!(err.to_string().contains("verify-full"), "{err}");
        let err = clean_url(Driver::MySql, "mysql://db/sis?ssl-mode=on", &mut scrubber)
            .expect_err("not a MySQL mode");
        assert!(err.to_string().contains("VERIFY_IDENTITY"), "{err}");
    }
}
