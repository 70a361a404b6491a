//! The SFTP destination (russh + russh-sftp): the staged upload of [`crate::staged`] over one SSH
//! session per delivery. The server's host key must match a known_hosts file or a pinned
//! fingerprint; there is no accept-anything mode, and SHA-1 (`ssh-rsa`) host key signatures are
//! not accepted.
//!
//! Errors are classified for the caller's retry policy (`classify.rs`): authentication, host key,
//! permission denied and a missing `remote_dir` are permanent; refused or cut connections and
//! timeouts are retryable. No password, passphrase or key ever reaches an error, a log line or
//! `Debug`.
//!
//! Files: `config.rs` (the TOML table), `classify.rs` (retry or not), `session.rs` (connect,
//! login, the upload primitives), `hostkey.rs` (known_hosts and fingerprints).

mod classify;
mod config;
mod hostkey;
mod session;

pub use config::{SftpConfig, SftpConfigError};

use crate::staged::{self, Fault, SecretForm, read_secret_file};
use crate::{DeliverError, Destination, FileSet};
use futures_util::future::BoxFuture;
use hostkey::{HostKeyPolicy, KnownHosts};
use russh::keys::PrivateKey;
use secrecy::{ExposeSecret, SecretString};
use session::{Connection, Remote};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes per SFTP write request when the server states no limit (the SFTP draft guarantees
/// 32 KiB), and the most we send even when it allows more.
const DEFAULT_WRITE_LEN: usize = 32 * 1024;
const MAX_WRITE_LEN: usize = 255 * 1024;
/// Upper bound of bytes in flight per file. russh-sftp starts each request's timeout when the
/// request is queued, not when it reaches the socket (russh-sftp #95), so the window must drain
/// well within `request_timeout_secs` even on a slow link: 4 MiB at 1 Mbit/s takes ~34 s.
const MAX_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

/// The built SFTP destination: config validated, key decrypted, known_hosts parsed.
pub struct SftpDestination {
    cfg: SftpConfig,
    /// `host:port` for messages.
    addr: String,
    key: Option<Arc<PrivateKey>>,
    password: Option<SecretString>,
    policy: Arc<HostKeyPolicy>,
    tuning: Tuning,
    /// Secret files other accounts can read (see [`Destination::warnings`]).
    warnings: Vec<String>,
    fault: Option<Fault>,
}

/// Transfer knobs; the defaults suit every server we know. Changeable for benchmarks and tests.
#[derive(Debug, Clone, Copy)]
struct Tuning {
    max_write_len: usize,
    max_in_flight_bytes: usize,
    use_posix_rename: bool,
}

impl fmt::Debug for SftpDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpDestination")
            .field("cfg", &self.cfg)
            .field("key", &self.key.as_ref().map(|k| k.algorithm().to_string()))
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl SftpDestination {
    /// Validates `cfg` and reads what it points to: the private key (decrypted with its
    /// passphrase), password and passphrase files, and the known_hosts file. Every error is
    /// permanent and names the key and path; none holds a secret.
    pub fn new(cfg: SftpConfig) -> Result<SftpDestination, DeliverError> {
        let name = cfg.name.clone();
        cfg.validate()
            .map_err(|e| DeliverError::permanent(&name, format!("config: {e}")))?;
        let config_error = |m: String| DeliverError::permanent(&name, format!("config: {m}"));
        let mut warnings = Vec::new();
        let mut read = |key: &str, path: &Path, form| {
            let file = read_secret_file(key, path, form).map_err(config_error)?;
            if let Some(w) = file.warning {
                warnings.push(format!("destination {name:?}: {w}"));
            }
            Ok::<SecretString, DeliverError>(file.value)
        };

        let password = match (&cfg.password, &cfg.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(read("password_file", path, SecretForm::Line)?),
            (None, None) => None,
        };
        let passphrase = match (
            &cfg.private_key_passphrase,
            &cfg.private_key_passphrase_file,
        ) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => {
                Some(read("private_key_passphrase_file", path, SecretForm::Line)?)
            }
            (None, None) => None,
        };
        let key = match &cfg.private_key_file {
            None => None,
            Some(path) => {
                let text = read("private_key_file", path, SecretForm::Text)?;
                let decoded = russh::keys::decode_secret_key(
                    text.expose_secret(),
                    passphrase.as_ref().map(|p| p.expose_secret()),
                );
                let key = decoded.map_err(|e| {
                    let why = match (&e, passphrase.is_some()) {
                        (russh::keys::Error::KeyIsEncrypted, false) => {
                            "is encrypted; set private_key_passphrase_file (or private_key_passphrase)".to_owned()
                        }
                        (_, true) => format!(
                            "cannot be read with the configured passphrase ({e}); check private_key_passphrase(_file) \
                             and that the file is an OpenSSH or PEM private key"
                        ),
                        (_, false) => format!("is not a usable private key ({e}); expected an OpenSSH or PEM private key"),
                    };
                    config_error(format!("`private_key_file` {} {why}", path.display()))
                })?;
                Some(Arc::new(key))
            }
        };
        let policy = match (&cfg.known_hosts_file, &cfg.host_key_fingerprint) {
            (Some(path), _) => {
                let kh = KnownHosts::load(path).map_err(|e| {
                    config_error(format!(
                        "`known_hosts_file` {}: cannot be read ({e}); create it with the server's host key line, e.g. from \
                         `ssh-keyscan -p {} {}` after checking the fingerprint with the server's administrator",
                        path.display(),
                        cfg.port,
                        cfg.host
                    ))
                })?;
                tracing::debug!(destination = %cfg.name, path = %path.display(), entries = kh.len(), "known_hosts loaded");
                HostKeyPolicy::KnownHosts(kh)
            }
            (None, Some(fp)) => HostKeyPolicy::pinned(
                hostkey::parse_fingerprint(fp)
                    .map_err(|m| config_error(format!("host_key_fingerprint: {m}")))?,
            ),
            // validate() already refused this; kept as an error rather than a panic.
            (None, None) => {
                return Err(config_error(
                    "known_hosts_file: host key verification is mandatory".into(),
                ));
            }
        };
        let addr = format!("{}:{}", cfg.host, cfg.port);
        Ok(SftpDestination {
            cfg,
            addr,
            key,
            password,
            policy: Arc::new(policy),
            tuning: Tuning {
                max_write_len: MAX_WRITE_LEN,
                max_in_flight_bytes: MAX_IN_FLIGHT_BYTES,
                use_posix_rename: true,
            },
            warnings,
            fault: None,
        })
    }

    pub fn config(&self) -> &SftpConfig {
        &self.cfg
    }

    /// Benchmark/test knob: caps the bytes per write request and in flight per file.
    #[doc(hidden)]
    pub fn with_transfer_limits(
        mut self,
        max_write_len: usize,
        max_in_flight_bytes: usize,
    ) -> Self {
        self.tuning.max_write_len = max_write_len.max(1024);
        self.tuning.max_in_flight_bytes = max_in_flight_bytes.max(self.tuning.max_write_len);
        self
    }

    /// Test knob: behave as if the server lacked `posix-rename@openssh.com`, to exercise the
    /// remove-then-rename path against OpenSSH.
    #[doc(hidden)]
    pub fn without_posix_rename(mut self) -> Self {
        self.tuning.use_posix_rename = false;
        self
    }

    /// Test hook: see [`Fault`].
    #[doc(hidden)]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Runs a whole delivery or check under `delivery_timeout_secs`.
    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, DeliverError>>,
    ) -> Result<T, DeliverError> {
        let limit = self.cfg.delivery_timeout_secs;
        tokio::time::timeout(Duration::from_secs(limit), fut)
            .await
            .unwrap_or_else(|_| Err(self.retryable(staged::overran(limit, what))))
    }

    async fn deliver_set(&self, set: &FileSet) -> Result<(), DeliverError> {
        let started = Instant::now();
        let conn = self.connect().await?;
        let result = self.deliver_on(&conn, set).await;
        conn.shutdown().await;
        let s = result?;
        crate::staged::log_delivered(&self.cfg.name, "sftp", set, &s, started);
        Ok(())
    }

    async fn deliver_on(
        &self,
        conn: &Connection,
        set: &FileSet,
    ) -> Result<staged::Summary, DeliverError> {
        self.check_remote_dir(conn).await?;
        let mut remote = Remote { dest: self, conn };
        staged::deliver(
            &mut remote,
            set,
            self.cfg.include_license_file,
            &self.cfg.omit_files,
            self.fault,
        )
        .await
    }

    async fn check_server(&self) -> Result<(), DeliverError> {
        let conn = self.connect().await?;
        let result = match self.check_remote_dir(&conn).await {
            Ok(()) => {
                staged::probe(&mut Remote {
                    dest: self,
                    conn: &conn,
                })
                .await
            }
            Err(e) => Err(e),
        };
        conn.shutdown().await;
        result
    }
}

impl Destination for SftpDestination {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> &'static str {
        "sftp"
    }

    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(self.bounded("delivery", self.deliver_set(set)))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(self.bounded("check", self.check_server()))
    }

    fn check_verified(&self) -> String {
        let c = &self.cfg;
        let trust = match (&c.known_hosts_file, &c.host_key_fingerprint) {
            (Some(path), _) => format!("host key found in known_hosts_file {}", path.display()),
            (None, Some(fp)) => format!("host key matches host_key_fingerprint {fp}"),
            (None, None) => "host key verified".to_owned(),
        };
        let login = match (&self.key, &self.password) {
            (Some(_), Some(_)) => "key or password",
            (Some(_), None) => "key",
            _ => "password (or keyboard-interactive)",
        };
        format!(
            "sftp {}: connected, {trust}, logged in as {:?} by {login}; in remote_dir {:?} {}",
            self.addr,
            c.username,
            c.remote_dir,
            staged::PROBE_STEPS
        )
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::{Algorithm, HashAlg};

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

    fn pinned() -> SftpDestination {
        SftpDestination::new(SftpConfig {
            private_key_file: None,
            password: Some("x".into()),
            known_hosts_file: None,
            host_key_fingerprint: Some("SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y".into()),
            ..valid()
        })
        .unwrap()
    }

    #[test]
    fn new_reports_missing_files_as_permanent_with_key_and_path() {
        let err = SftpDestination::new(valid()).unwrap_err();
        assert!(err.is_permanent());
        assert!(
            err.message
                .contains("`private_key_file` /etc/sds-sync/id_ed25519"),
            "{err}"
        );
        let cfg = SftpConfig {
            private_key_file: None,
            password: Some("pw-not-shown".into()),
            known_hosts_file: Some("/nonexistent/known_hosts".into()),
            ..valid()
        };
        let err = SftpDestination::new(cfg).unwrap_err();
        assert!(err.is_permanent());
        assert!(
            err.message
                .contains("`known_hosts_file` /nonexistent/known_hosts"),
            "{err}"
        );
        assert!(
            err.message.contains("ssh-keyscan -p 22 sftp.example.org"),
            "{err}"
        );
        assert!(!err.message.contains("pw-not-shown"));
    }

    #[test]
    fn remote_paths() {
        let mut d = pinned();
        assert_eq!(d.remote_path("a.csv"), "/upload/a.csv");
        d.cfg.remote_dir = "/upload/".into();
        assert_eq!(d.remote_path("a.csv"), "/upload/a.csv");
        d.cfg.remote_dir = "/".into();
        assert_eq!(d.remote_path("a.csv"), "/a.csv");
        d.cfg.remote_dir = "in".into();
        assert_eq!(d.remote_path("a.csv"), "in/a.csv");
    }

    /// Issue 15: SHA-1 `ssh-rsa` host key signatures are no longer offered; RSA keys still work
    /// through rsa-sha2-256/512, and the known_hosts ordering still applies.
    #[test]
    fn host_key_algorithms_leave_out_sha1_rsa() {
        let keys = pinned().ssh_config(&[]).preferred.key.to_vec();
        assert!(!keys.contains(&Algorithm::Rsa { hash: None }), "{keys:?}");
        for hash in [HashAlg::Sha256, HashAlg::Sha512] {
            assert!(
                keys.contains(&Algorithm::Rsa { hash: Some(hash) }),
                "{keys:?}"
            );
        }
        assert!(keys.contains(&Algorithm::Ed25519));
        // With an RSA entry in known_hosts, RSA (SHA-2) comes first, still without SHA-1.
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(
            &kh,
            "sftp.example.org ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCie+NQyS2shsYgaxII2Hes2Wuc0cnyEsBlmNA6q5Je1r9P5nWWwQbT5JyT5+yfJYjDf6DKF/d7E8v6zxloK1WGh9qeopc7OtSWxVKKFXD4YkyKW9EHB5y1c1mYeX4RPEmz1KmDAUAPCMHPuWXLlM9yOCXlTrYsPNWAgGKiOv5AFw==\n",
        )
        .unwrap();
        let d = SftpDestination::new(SftpConfig {
            private_key_file: None,
            password: Some("x".into()),
            known_hosts_file: Some(kh),
            ..valid()
        })
        .unwrap();
        let keys = d.ssh_config(&[]).preferred.key.to_vec();
        assert!(
            matches!(keys[0], Algorithm::Rsa { hash: Some(_) }),
            "{keys:?}"
        );
        assert!(!keys.contains(&Algorithm::Rsa { hash: None }), "{keys:?}");
    }

    #[test]
    fn secret_files_open_to_others_are_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2-secret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let d = SftpDestination::new(SftpConfig {
            private_key_file: None,
            password_file: Some(pw.clone()),
            known_hosts_file: None,
            host_key_fingerprint: Some("SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y".into()),
            ..valid()
        })
        .unwrap();
        let w = d.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("\"hub\"") && w[0].contains("`password_file`"),
            "{}",
            w[0]
        );
        assert!(!w[0].contains("hunter2"));
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let d = SftpDestination::new(d.cfg.clone()).unwrap();
        assert!(d.warnings().is_empty());
    }
}
