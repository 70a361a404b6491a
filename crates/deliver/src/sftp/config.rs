//! The user-facing `[[destination]] kind = "sftp"` table and its pure (I/O-free) validation.

use super::hostkey;
use crate::staged::FileMode;
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

fn default_port() -> u16 {
    22
}
fn default_connect_timeout() -> u64 {
    30
}
fn default_request_timeout() -> u64 {
    120
}
fn default_delivery_timeout() -> u64 {
    3600
}

/// `[[destination]] kind = "sftp"`: the user-facing TOML contract (minus `kind`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// Unique destination name, used in logs, errors and the outbox.
    pub name: String,
    /// Server host name or IP address.
    pub host: String,
    /// Server port. Default 22.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Login name on the server.
    pub username: String,
    /// OpenSSH or PEM private key (ed25519, RSA, ECDSA) for public-key authentication.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Passphrase of an encrypted `private_key_file`. Prefer `private_key_passphrase_file`.
    #[serde(default)]
    pub private_key_passphrase: Option<SecretString>,
    /// File holding the passphrase of `private_key_file` (trailing newline ignored).
    #[serde(default)]
    pub private_key_passphrase_file: Option<PathBuf>,
    /// Password for password authentication. Prefer `password_file`.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// OpenSSH known_hosts file that must list the server's host key (plain or hashed entries;
    /// `[host]:port` for ports other than 22). Set this or `host_key_fingerprint`.
    #[serde(default)]
    pub known_hosts_file: Option<PathBuf>,
    /// The server's host key fingerprint, `SHA256:...` as `ssh-keygen -lf` prints it. Set this or
    /// `known_hosts_file`.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
    /// Folder on the server that receives the files; it must exist. Relative paths start at the
    /// login folder; chrooted users see paths inside their chroot.
    pub remote_dir: String,
    /// Whether to send the v1 `License.csv`. Default false.
    #[serde(default)]
    pub include_license_file: bool,
    /// Optional files of the set this destination leaves out (`academicSessions.csv`,
    /// `courses.csv`, `relationships.csv`), for a destination that feeds something other than
    /// SDS. Default: none (SDS needs the same set of files every time).
    #[serde(default)]
    pub omit_files: Vec<String>,
    /// Limit for TCP connect, SSH handshake, login and SFTP start, in seconds. Default 30.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Limit for each SFTP request (one write, a rename, ...), in seconds. Default 120; raise it
    /// for very slow links.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Limit for a whole delivery or check, all files included, in seconds. Default 3600.
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout_secs: u64,
    /// Permissions requested for uploaded files, an octal string. Default `"0600"`; the server's
    /// own umask may remove bits but never adds any.
    #[serde(default)]
    pub file_mode: FileMode,
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            name: String::new(),
            host: String::new(),
            port: default_port(),
            username: String::new(),
            private_key_file: None,
            private_key_passphrase: None,
            private_key_passphrase_file: None,
            password: None,
            password_file: None,
            known_hosts_file: None,
            host_key_fingerprint: None,
            remote_dir: String::new(),
            include_license_file: false,
            omit_files: Vec::new(),
            connect_timeout_secs: default_connect_timeout(),
            request_timeout_secs: default_request_timeout(),
            delivery_timeout_secs: default_delivery_timeout(),
            file_mode: FileMode::default(),
        }
    }
}

/// Secrets are shown as set/unset only.
impl fmt::Debug for SftpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "<set>" } else { "<unset>" };
        f.debug_struct("SftpConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("private_key_file", &self.private_key_file)
            .field(
                "private_key_passphrase",
                &set(self.private_key_passphrase.is_some()),
            )
            .field(
                "private_key_passphrase_file",
                &self.private_key_passphrase_file,
            )
            .field("password", &set(self.password.is_some()))
            .field("password_file", &self.password_file)
            .field("known_hosts_file", &self.known_hosts_file)
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .field("remote_dir", &self.remote_dir)
            .field("include_license_file", &self.include_license_file)
            .field("omit_files", &self.omit_files)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("delivery_timeout_secs", &self.delivery_timeout_secs)
            .field("file_mode", &self.file_mode)
            .finish()
    }
}

/// A config mistake, named by its key within the `[[destination]]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SftpConfigError {
    pub key: &'static str,
    pub message: String,
}

fn config_error(key: &'static str, message: impl Into<String>) -> SftpConfigError {
    SftpConfigError {
        key,
        message: message.into(),
    }
}

impl SftpConfig {
    /// Checks that need no I/O. The error names the offending key.
    pub fn validate(&self) -> Result<(), SftpConfigError> {
        if self.name.trim().is_empty() {
            return Err(config_error("name", "is empty"));
        }
        if self.host.trim().is_empty() || self.host.chars().any(char::is_whitespace) {
            return Err(config_error(
                "host",
                "must be a host name or IP address without spaces",
            ));
        }
        if self.port == 0 {
            return Err(config_error("port", "must be 1-65535 (usually 22)"));
        }
        if self.username.trim().is_empty() {
            return Err(config_error("username", "is empty"));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err(config_error(
                "password_file",
                "set either password or password_file, not both",
            ));
        }
        if self.private_key_passphrase.is_some() && self.private_key_passphrase_file.is_some() {
            return Err(config_error(
                "private_key_passphrase_file",
                "set either private_key_passphrase or private_key_passphrase_file, not both",
            ));
        }
        let has_passphrase =
            self.private_key_passphrase.is_some() || self.private_key_passphrase_file.is_some();
        if has_passphrase && self.private_key_file.is_none() {
            return Err(config_error(
                "private_key_file",
                "a key passphrase is set but private_key_file is not",
            ));
        }
        if self.private_key_file.is_none()
            && self.password.is_none()
            && self.password_file.is_none()
        {
            return Err(config_error(
                "private_key_file",
                "no credentials: set private_key_file (recommended), password_file or password",
            ));
        }
        match (&self.known_hosts_file, &self.host_key_fingerprint) {
            (None, None) => {
                return Err(config_error(
                    "known_hosts_file",
                    "host key verification is mandatory: set known_hosts_file, or host_key_fingerprint = \"SHA256:...\" \
                     (the server's `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(config_error(
                    "host_key_fingerprint",
                    "set either known_hosts_file or host_key_fingerprint, not both",
                ));
            }
            (None, Some(fp)) => {
                hostkey::parse_fingerprint(fp)
                    .map_err(|m| config_error("host_key_fingerprint", m))?;
            }
            (Some(path), None) if path.as_os_str().is_empty() => {
                return Err(config_error("known_hosts_file", "is empty"));
            }
            (Some(_), None) => {}
        }
        if self.remote_dir.trim().is_empty() {
            return Err(config_error(
                "remote_dir",
                "is empty; set the folder on the server, e.g. \"/upload\"",
            ));
        }
        if self.remote_dir.contains('\0') {
            return Err(config_error("remote_dir", "contains a NUL character"));
        }
        for (key, secs) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("delivery_timeout_secs", self.delivery_timeout_secs),
        ] {
            if secs == 0 || secs > 86_400 {
                return Err(config_error(
                    key,
                    format!("is {secs}; use 1 to 86400 seconds"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SftpConfig {
        SftpConfig {
            name: "hub".into(),
            host: "sftp.example.org".into(),
            username: "district42".into(),
            private_key_file: Some("/etc/sds-sync/id_ed25519".into()),
            known_hosts_file: Some("/etc/sds-sync/known_hosts".into()),
            remote_dir: "/upload".into(),
            ..Default::default()
        }
    }

    #[test]
    fn validate_names_the_key() {
        assert_eq!(valid().validate(), Ok(()));
        let cases: Vec<(SftpConfig, &str)> = vec![
            (
                SftpConfig {
                    host: "".into(),
                    ..valid()
                },
                "host",
            ),
            (SftpConfig { port: 0, ..valid() }, "port"),
            (
                SftpConfig {
                    username: " ".into(),
                    ..valid()
                },
                "username",
            ),
            (
                SftpConfig {
                    private_key_file: None,
                    ..valid()
                },
                "private_key_file",
            ),
            (
                SftpConfig {
                    known_hosts_file: None,
                    ..valid()
                },
                "known_hosts_file",
            ),
            (
                SftpConfig {
                    host_key_fingerprint: Some(
                        "SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y".into(),
                    ),
                    ..valid()
                },
                "host_key_fingerprint",
            ),
            (
                SftpConfig {
                    known_hosts_file: None,
                    host_key_fingerprint: Some("MD5:aa:bb".into()),
                    ..valid()
                },
                "host_key_fingerprint",
            ),
            (
                SftpConfig {
                    remote_dir: "".into(),
                    ..valid()
                },
                "remote_dir",
            ),
            (
                SftpConfig {
                    password: Some("a".into()),
                    password_file: Some("/p".into()),
                    ..valid()
                },
                "password_file",
            ),
            (
                SftpConfig {
                    private_key_file: None,
                    password: Some("a".into()),
                    private_key_passphrase_file: Some("/p".into()),
                    ..valid()
                },
                "private_key_file",
            ),
            (
                SftpConfig {
                    request_timeout_secs: 0,
                    ..valid()
                },
                "request_timeout_secs",
            ),
            (
                SftpConfig {
                    connect_timeout_secs: 0,
                    ..valid()
                },
                "connect_timeout_secs",
            ),
        ];
        for (cfg, key) in cases {
            assert_eq!(cfg.validate().unwrap_err().key, key, "{cfg:?}");
        }
        let pinned = SftpConfig {
            known_hosts_file: None,
            host_key_fingerprint: Some("SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y".into()),
            private_key_file: None,
            password_file: Some("/run/secrets/sftp".into()),
            ..valid()
        };
        assert_eq!(pinned.validate(), Ok(()));
    }

    /// The issue's example table, as the daemon will embed it: `kind` is the enum tag, every
    /// other key belongs to `SftpConfig`, and unknown keys are refused by name.
    #[test]
    fn toml_contract_with_defaults_and_unknown_keys() {
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        enum Dest {
            Sftp(SftpConfig),
        }
        #[derive(Debug, Deserialize)]
        struct File {
            destination: Vec<Dest>,
        }
        let text = r#"
            [[destination]]
            name = "hub"
            kind = "sftp"
            host = "sftp.example.org"
            port = 22
            username = "district42"
            private_key_file = "/etc/sds-sync/id_ed25519"
            known_hosts_file = "/etc/sds-sync/known_hosts"
            remote_dir = "/upload"
            include_license_file = false
        "#;
        let file: File = toml::from_str(text).unwrap();
        let Dest::Sftp(cfg) = &file.destination[0];
        assert_eq!(cfg.host, "sftp.example.org");
        assert_eq!(cfg.connect_timeout_secs, 30);
        assert_eq!(cfg.request_timeout_secs, 120);
        assert_eq!(cfg.validate(), Ok(()));

        let minimal = "name = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_file = \"/p\"\n\
                       host_key_fingerprint = \"SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y\"\n\
                       remote_dir = \".\"\n";
        let cfg: SftpConfig = toml::from_str(minimal).unwrap();
        assert_eq!((cfg.port, cfg.include_license_file), (22, false));
        assert_eq!(cfg.validate(), Ok(()));

        let typo = text.replace("remote_dir", "remote_folder");
        let err = toml::from_str::<File>(&typo).unwrap_err().to_string();
        assert!(err.contains("remote_folder"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let cfg = SftpConfig {
            password: Some("hunter2-secret".into()),
            private_key_passphrase: Some("pp-secret".into()),
            ..valid()
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pp-secret"),
            "{shown}"
        );
        assert!(shown.contains("<set>"), "{shown}");
    }

    #[test]
    fn file_mode_and_delivery_timeout() {
        let cfg: SftpConfig = toml::from_str(
            "name = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_file = \"/p\"\n\
             host_key_fingerprint = \"SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y\"\n\
             remote_dir = \".\"\nfile_mode = \"0640\"\ndelivery_timeout_secs = 60\n",
        )
        .unwrap();
        assert_eq!(
            (cfg.file_mode.bits(), cfg.delivery_timeout_secs),
            (0o640, 60)
        );
        assert_eq!(valid().file_mode, FileMode::DEFAULT);
        assert_eq!(valid().delivery_timeout_secs, 3600);
        let err = SftpConfig {
            delivery_timeout_secs: 0,
            ..valid()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.key, "delivery_timeout_secs");
        assert!(toml::from_str::<SftpConfig>("file_mode = \"0777x\"").is_err());
    }
}
