//! The user-facing `[[destination]] kind = "ftp"` table and its pure (I/O-free) validation.

use crate::staged::FileMode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;

/// Transport security of the control and data connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FtpTls {
    /// Plain connection, then `AUTH TLS` before login (FTPS "explicit", usually port 21).
    #[default]
    Explicit,
    /// TLS from the first byte (FTPS "implicit", usually port 990).
    Implicit,
    /// No encryption: the password and the files cross the network in clear text.
    None,
}

/// Highest TLS protocol version offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TlsMaxVersion {
    /// TLS 1.2 only: for servers that demand TLS session reuse on data connections but do not
    /// resume TLS 1.3 sessions (the symptom is a `522 ... session reuse required` error).
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3, falling back to 1.2 when the server has no 1.3.
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

/// How the data connection is opened (the client always connects to the server: no active mode,
/// which rarely survives firewalls and NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassiveMode {
    /// `PASV` (RFC 959). The address in the reply is ignored and the control connection's server
    /// address used with the given port, which also works behind NAT.
    #[default]
    Passive,
    /// `EPSV` (RFC 2428): port only; needed by some servers and for IPv6.
    Extended,
}

fn default_connect_timeout() -> u64 {
    30
}
fn default_io_timeout() -> u64 {
    60
}
fn default_delivery_timeout() -> u64 {
    3600
}

/// `[[destination]] kind = "ftp"`: the user-facing TOML contract (without the `kind` key).
///
/// ```toml
/// [[destination]]
/// kind = "ftp"
/// name = "vendor-ftps"
/// host = "ftp.vendor.example"
/// username = "district42"
/// password_file = "/etc/sds-sync/vendor-ftp.pass"
/// remote_dir = "/incoming/sds"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpConfig {
    /// Unique name of this destination, used in logs, errors and the outbox.
    pub name: String,
    /// Server host name or IP address (no `ftp://`, no port). With TLS the server certificate
    /// must be valid for this name.
    pub host: String,
    /// TCP port of the control connection. Default: 21, or 990 with `tls = "implicit"`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Login name.
    pub username: String,
    /// Login password. Prefer `password_file` (or the environment override) to keep it out of
    /// the config file. Exactly one of `password` and `password_file` is required.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// File holding the login password (one trailing newline is ignored); read at start-up.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `"explicit"` (default: `AUTH TLS` on the plain port), `"implicit"` (TLS from the first
    /// byte) or `"none"` (clear text; a warning is logged at start-up).
    #[serde(default)]
    pub tls: FtpTls,
    /// PEM file with the CA certificate(s) that signed the server's certificate, for private
    /// CAs; trusted in addition to the public web roots. Only with TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Highest TLS version offered: `"1.3"` (default) or `"1.2"`. Set `"1.2"` only for servers
    /// that require TLS session reuse on data connections and fail with TLS 1.3 (`522`).
    #[serde(default)]
    pub tls_max_version: TlsMaxVersion,
    /// `"passive"` (default, `PASV`) or `"extended"` (`EPSV`).
    #[serde(default)]
    pub passive_mode: PassiveMode,
    /// Folder on the server the files go to; must exist. Relative paths start at the login
    /// folder. Default: the login folder.
    #[serde(default)]
    pub remote_dir: Option<String>,
    /// Seconds to wait for the TCP connection (and, with implicit TLS, the handshake and
    /// greeting). Default 30.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds any single step may take: one command and its reply, or one 64 KiB chunk of an
    /// upload. A server silent for longer is treated as gone (retryable). Default 60.
    #[serde(default = "default_io_timeout")]
    pub io_timeout_secs: u64,
    /// Seconds a whole delivery or check may take, all files included. Default 3600.
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout_secs: u64,
    /// Also send the v1 licence file. Default false.
    #[serde(default)]
    pub include_license_file: bool,
    /// Optional files of the set this destination leaves out (`academicSessions.csv`,
    /// `courses.csv`, `relationships.csv`), for a destination that feeds something other than
    /// SDS. Default: none (SDS needs the same set of files every time).
    #[serde(default)]
    pub omit_files: Vec<String>,
    /// Permissions set on uploaded files with `SITE CHMOD` (best effort: servers without it keep
    /// their own default). An octal string; default `"0600"`.
    #[serde(default)]
    pub file_mode: FileMode,
}

impl FtpConfig {
    /// The port in effect (`port`, or the default for the `tls` mode).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            FtpTls::Implicit => 990,
            FtpTls::Explicit | FtpTls::None => 21,
        })
    }

    /// Checks the config without any I/O. The error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let ctx = |key: &str, msg: &str| format!("ftp destination {:?}: `{key}` {msg}", self.name);
        if self.name.trim().is_empty() {
            return Err("ftp destination: `name` must not be empty".into());
        }
        let host = self.host.as_str();
        if host.is_empty() {
            return Err(ctx("host", "must not be empty"));
        }
        if host.contains("://") || host.contains('/') || host.chars().any(char::is_whitespace) {
            return Err(ctx(
                "host",
                "must be a bare host name or IP address (no ftp://, no path, no spaces)",
            ));
        }
        if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(ctx(
                "host",
                "must not contain a port: put the port in `port`",
            ));
        }
        if self.port == Some(0) {
            return Err(ctx("port", "must be between 1 and 65535"));
        }
        if self.username.is_empty() {
            return Err(ctx("username", "must not be empty"));
        }
        if has_line_break(&self.username) {
            return Err(ctx("username", "must not contain line breaks"));
        }
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(ctx(
                    "password",
                    "and `password_file` are both set: keep one",
                ));
            }
            (None, None) => return Err(ctx("password", "or `password_file` is required")),
            (Some(p), None) if has_line_break(p.expose_secret()) => {
                return Err(ctx("password", "must not contain line breaks"));
            }
            _ => {}
        }
        if self.tls == FtpTls::None && self.ca_file.is_some() {
            return Err(ctx(
                "ca_file",
                "is set but tls = \"none\": set tls = \"explicit\" or \"implicit\", or remove ca_file",
            ));
        }
        if self.tls == FtpTls::None && self.tls_max_version != TlsMaxVersion::default() {
            return Err(ctx(
                "tls_max_version",
                "is set but tls = \"none\": remove it or enable TLS",
            ));
        }
        if let Some(dir) = &self.remote_dir
            && (dir.is_empty() || has_line_break(dir))
        {
            return Err(ctx(
                "remote_dir",
                "must be a non-empty path without line breaks (leave it out for the login folder)",
            ));
        }
        for (key, value) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("io_timeout_secs", self.io_timeout_secs),
            ("delivery_timeout_secs", self.delivery_timeout_secs),
        ] {
            if value == 0 {
                return Err(ctx(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

pub(super) fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<FtpConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    fn base() -> FtpConfig {
        parse("name = \"v\"\nhost = \"ftp.example.org\"\nusername = \"u\"\npassword = \"p\"\n")
            .unwrap()
    }

    #[test]
    fn full_table_parses_and_unknown_keys_are_rejected() {
        let c = parse(
            r#"
            name = "vendor"
            host = "ftp.example.org"
            port = 2121
            username = "u"
            password_file = "/etc/sds-sync/ftp.pass"
            tls = "implicit"
            ca_file = "/etc/sds-sync/ca.pem"
            passive_mode = "extended"
            remote_dir = "/in"
            connect_timeout_secs = 5
            io_timeout_secs = 7
            delivery_timeout_secs = 9
            include_license_file = true
            file_mode = "0640"
            "#,
        )
        .unwrap();
        assert_eq!(
            (c.tls, c.passive_mode, c.effective_port()),
            (FtpTls::Implicit, PassiveMode::Extended, 2121)
        );
        assert_eq!(
            (
                c.connect_timeout_secs,
                c.io_timeout_secs,
                c.delivery_timeout_secs
            ),
            (5, 7, 9)
        );
        assert!(c.include_license_file && c.validate().is_ok());
        assert_eq!(c.file_mode.bits(), 0o640);
        let err =
            parse("name = \"v\"\nhost = \"h\"\nusername = \"u\"\npasword = \"p\"\n").unwrap_err();
        assert!(err.to_string().contains("pasword"), "{err}");
        assert!(parse("name = \"v\"\nhost = \"h\"\nusername = \"u\"\ntls = \"ssl\"\n").is_err());
    }

    #[test]
    fn defaults() {
        let c = base();
        assert_eq!(c.tls, FtpTls::Explicit);
        assert_eq!(c.passive_mode, PassiveMode::Passive);
        assert_eq!(c.effective_port(), 21);
        assert_eq!(c.connect_timeout_secs, 30);
        assert_eq!(c.io_timeout_secs, 60);
        assert_eq!(c.delivery_timeout_secs, 3600);
        assert!(!c.include_license_file);
        assert_eq!(c.file_mode, FileMode::DEFAULT);
        assert!(c.validate().is_ok());
        let implicit = FtpConfig {
            tls: FtpTls::Implicit,
            ..base()
        };
        assert_eq!(implicit.effective_port(), 990);
    }

    #[test]
    fn validate_names_the_key() {
        let cases: Vec<(FtpConfig, &str)> = vec![
            (
                FtpConfig {
                    host: "ftp://x".into(),
                    ..base()
                },
                "`host`",
            ),
            (
                FtpConfig {
                    host: "x:21".into(),
                    ..base()
                },
                "`host`",
            ),
            (
                FtpConfig {
                    port: Some(0),
                    ..base()
                },
                "`port`",
            ),
            (
                FtpConfig {
                    username: String::new(),
                    ..base()
                },
                "`username`",
            ),
            (
                FtpConfig {
                    password: None,
                    ..base()
                },
                "`password`",
            ),
            (
                FtpConfig {
                    password_file: Some("/x".into()),
                    ..base()
                },
                "`password`",
            ),
            (
                FtpConfig {
                    tls: FtpTls::None,
                    ca_file: Some("/ca.pem".into()),
                    ..base()
                },
                "`ca_file`",
            ),
            (
                FtpConfig {
                    remote_dir: Some("a\r\nDELE x".into()),
                    ..base()
                },
                "`remote_dir`",
            ),
            (
                FtpConfig {
                    io_timeout_secs: 0,
                    ..base()
                },
                "`io_timeout_secs`",
            ),
        ];
        for (cfg, key) in cases {
            let err = cfg.validate().unwrap_err();
            assert!(err.contains(key), "{err} should name {key}");
        }
        assert!(
            FtpConfig {
                host: "::1".into(),
                ..base()
            }
            .validate()
            .is_ok()
        );
    }
}
