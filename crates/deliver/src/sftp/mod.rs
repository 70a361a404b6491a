//! The SFTP destination (russh + russh-sftp): uploads every file of a set to a temporary name in
//! `remote_dir`, checks its size on the server, then renames each over its final name
//! (`posix-rename@openssh.com` when offered, else remove-then-rename), so a reader never sees a
//! partial file under a final name. The server's host key must match a known_hosts file or a
//! pinned fingerprint; there is no accept-anything mode.
//!
//! Errors are classified for the caller's retry policy: authentication, host key, permission
//! denied and a missing `remote_dir` are permanent; refused or cut connections and timeouts are
//! retryable. No password, passphrase or key ever reaches an error, a log line or `Debug`.

mod hostkey;

use crate::{DeliverError, Destination, FileSet, SetFile};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use hostkey::{HostKeyPolicy, HostKeyProblem, KnownHosts};
use russh::client::{self, AuthResult};
use russh::keys::ssh_key::{Algorithm, PublicKey};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Prefix of temporary files; anything starting with it in `remote_dir` is ours to remove.
const TMP_PREFIX: &str = ".sds-sync-tmp.";
/// Suffix of temporary files, so receivers that pick up `*.csv` never see them.
const TMP_SUFFIX: &str = ".part";

/// Bytes per SFTP write request when the server states no limit (the SFTP draft guarantees
/// 32 KiB), and the most we send even when it allows more.
const DEFAULT_WRITE_LEN: usize = 32 * 1024;
const MAX_WRITE_LEN: usize = 255 * 1024;
/// Upper bound of bytes in flight per file. russh-sftp starts each request's timeout when the
/// request is queued, not when it reaches the socket (russh-sftp #95), so the window must drain
/// well within `request_timeout_secs` even on a slow link: 4 MiB at 1 Mbit/s takes ~34 s.
const MAX_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;
/// How long a polite disconnect may take before we just drop the connection.
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSYNC: &str = "fsync@openssh.com";
const LIMITS: &str = "limits@openssh.com";

fn default_port() -> u16 {
    22
}
fn default_connect_timeout() -> u64 {
    30
}
fn default_request_timeout() -> u64 {
    120
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
    /// Limit for TCP connect, SSH handshake, login and SFTP start, in seconds. Default 30.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Limit for each SFTP request (one write, a rename, ...), in seconds. Default 120; raise it
    /// for very slow links.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
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
            connect_timeout_secs: default_connect_timeout(),
            request_timeout_secs: default_request_timeout(),
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
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
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

/// The built SFTP destination: config validated, key decrypted, known_hosts parsed.
pub struct SftpDestination {
    cfg: SftpConfig,
    /// `host:port` for messages.
    addr: String,
    key: Option<Arc<PrivateKey>>,
    password: Option<SecretString>,
    policy: Arc<HostKeyPolicy>,
    tuning: Tuning,
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

/// Reads a one-line secret file; a trailing newline (LF or CRLF) is not part of the secret.
fn read_secret_file(path: &Path) -> std::io::Result<SecretString> {
    let mut text = std::fs::read_to_string(path)?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(SecretString::from(text))
}

impl SftpDestination {
    /// Validates `cfg` and reads what it points to: the private key (decrypted with its
    /// passphrase), password and passphrase files, and the known_hosts file. Every error is
    /// permanent and names the key and path; none holds a secret.
    pub fn new(cfg: SftpConfig) -> Result<SftpDestination, DeliverError> {
        let name = cfg.name.clone();
        cfg.validate()
            .map_err(|e| DeliverError::permanent(&name, format!("config: {e}")))?;
        let file_error = |key: &str, path: &Path, e: &dyn fmt::Display| {
            DeliverError::permanent(&name, format!("config: {key} {}: {e}", path.display()))
        };

        let password = match (&cfg.password, &cfg.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => {
                let p =
                    read_secret_file(path).map_err(|e| file_error("password_file", path, &e))?;
                if p.expose_secret().is_empty() {
                    return Err(file_error("password_file", path, &"is empty"));
                }
                Some(p)
            }
            (None, None) => None,
        };
        let passphrase = match (
            &cfg.private_key_passphrase,
            &cfg.private_key_passphrase_file,
        ) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                read_secret_file(path)
                    .map_err(|e| file_error("private_key_passphrase_file", path, &e))?,
            ),
            (None, None) => None,
        };
        let key = match &cfg.private_key_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| file_error("private_key_file", path, &e))?;
                let decoded = russh::keys::decode_secret_key(
                    &text,
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
                    file_error("private_key_file", path, &why)
                })?;
                Some(Arc::new(key))
            }
        };
        let policy = match (&cfg.known_hosts_file, &cfg.host_key_fingerprint) {
            (Some(path), _) => {
                let kh = KnownHosts::load(path).map_err(|e| {
                    file_error(
                        "known_hosts_file",
                        path,
                        &format!(
                            "cannot be read ({e}); create it with the server's host key line, e.g. from \
                             `ssh-keyscan -p {} {}` after checking the fingerprint with the server's administrator",
                            cfg.port, cfg.host
                        ),
                    )
                })?;
                tracing::debug!(destination = %cfg.name, path = %path.display(), entries = kh.len(), "known_hosts loaded");
                HostKeyPolicy::KnownHosts(kh)
            }
            (None, Some(fp)) => {
                HostKeyPolicy::Fingerprint(hostkey::parse_fingerprint(fp).map_err(|m| {
                    DeliverError::permanent(&name, format!("config: host_key_fingerprint: {m}"))
                })?)
            }
            (None, None) => {
                unreachable!("validate() requires known_hosts_file or host_key_fingerprint")
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

    fn permanent(&self, message: impl fmt::Display) -> DeliverError {
        DeliverError::permanent(&self.cfg.name, format!("sftp {}: {message}", self.addr))
    }

    fn retryable(&self, message: impl fmt::Display) -> DeliverError {
        DeliverError::retryable(&self.cfg.name, format!("sftp {}: {message}", self.addr))
    }

    /// Classifies an SFTP request failure. `what` says what we were doing, e.g. "cannot create
    /// /upload/x".
    fn sftp_error(&self, what: &str, e: SftpError) -> DeliverError {
        match e {
            SftpError::Status(s) => {
                let detail = if s.error_message.is_empty() {
                    s.status_code.to_string()
                } else {
                    s.error_message.clone()
                };
                match s.status_code {
                    StatusCode::PermissionDenied => self.permanent(format_args!(
                        "{what}: permission denied by the server ({detail}); make remote_dir {:?} writable by user {:?}",
                        self.cfg.remote_dir, self.cfg.username
                    )),
                    StatusCode::NoSuchFile => self.permanent(format_args!(
                        "{what}: no such file or folder ({detail}); check that remote_dir {:?} exists for user {:?}",
                        self.cfg.remote_dir, self.cfg.username
                    )),
                    StatusCode::OpUnsupported | StatusCode::BadMessage => self.permanent(format_args!(
                        "{what}: the server does not support this operation ({detail})"
                    )),
                    // SFTPv3 reports a full disk, an exceeded quota or a read-only file system as a
                    // generic failure; an admin can fix those while we retry.
                    _ => self.retryable(format_args!(
                        "{what}: the server reported a failure ({detail}); often a full disk or quota; will retry"
                    )),
                }
            }
            SftpError::Timeout => self.retryable(format_args!(
                "{what}: no reply within {} s (request_timeout_secs); will retry",
                self.cfg.request_timeout_secs
            )),
            other => self.retryable(format_args!(
                "{what}: connection lost or broken ({other}); will retry"
            )),
        }
    }

    fn remote_path(&self, file_name: &str) -> String {
        let dir = self.cfg.remote_dir.trim_end_matches('/');
        if dir.is_empty() && self.cfg.remote_dir.starts_with('/') {
            format!("/{file_name}")
        } else {
            format!("{dir}/{file_name}")
        }
    }

    /// TCP connect, SSH handshake with host key verification, login, SFTP start; all within
    /// `connect_timeout_secs`.
    async fn connect(&self) -> Result<Connection, DeliverError> {
        let limit = Duration::from_secs(self.cfg.connect_timeout_secs);
        match tokio::time::timeout(limit, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(self.retryable(format_args!(
                "connecting, SSH handshake and login did not finish within {} s (connect_timeout_secs); \
                 check that the host is reachable from here; will retry",
                self.cfg.connect_timeout_secs
            ))),
        }
    }

    async fn connect_inner(&self) -> Result<Connection, DeliverError> {
        let stream = tokio::net::TcpStream::connect((self.cfg.host.as_str(), self.cfg.port))
            .await
            .map_err(|e| {
                let hint = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        "connection refused; is the SFTP server running and listening on this port?"
                    }
                    _ => "cannot connect; check host, port, DNS and firewalls",
                };
                self.retryable(format_args!("{hint} ({e}); will retry"))
            })?;
        // SFTP is request/response; Nagle would add delay to every small request.
        let _ = stream.set_nodelay(true);

        let problem = Arc::new(Mutex::new(None));
        let handler = ClientHandler {
            policy: self.policy.clone(),
            host: self.cfg.host.clone(),
            port: self.cfg.port,
            problem: problem.clone(),
        };
        let ssh_config = Arc::new(self.ssh_config());
        let connected = client::connect_stream(ssh_config, stream, handler).await;
        let mut ssh = match connected {
            Ok(ssh) => ssh,
            Err(e) => {
                let problem = problem.lock().map(|mut p| p.take()).unwrap_or(None);
                if let Some(problem) = problem {
                    return Err(self.permanent(problem.explain(&self.cfg.host, self.cfg.port)));
                }
                return Err(match e {
                    russh::Error::NoCommonAlgo { kind, ours, theirs } => self.permanent(format_args!(
                        "SSH handshake failed: no common {kind:?} algorithm (we offer {ours:?}, the server offers {theirs:?})"
                    )),
                    russh::Error::UnknownKey => self.permanent("the server's host key was refused"),
                    other => self.retryable(format_args!("SSH handshake failed ({other}); will retry")),
                });
            }
        };

        self.authenticate(&mut ssh).await?;

        let mut channel = ssh.channel_open_session().await.map_err(|e| {
            self.retryable(format_args!(
                "cannot open an SSH session channel ({e}); will retry"
            ))
        })?;
        channel.request_subsystem(true, "sftp").await.map_err(|e| {
            self.retryable(format_args!(
                "cannot request the sftp subsystem ({e}); will retry"
            ))
        })?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(self.permanent(format_args!(
                        "the server refused the sftp subsystem for user {:?}; enable SFTP for this account \
                         (OpenSSH: `Subsystem sftp internal-sftp`)",
                        self.cfg.username
                    )));
                }
                Some(_) => continue,
                None => {
                    return Err(self.retryable(
                        "the server closed the session before SFTP started; will retry",
                    ));
                }
            }
        }

        let sftp_config = russh_sftp::client::Config {
            request_timeout_secs: self.cfg.request_timeout_secs,
            ..Default::default()
        };
        let mut sftp = RawSftpSession::new_with_config(channel.into_stream(), sftp_config);
        let version = sftp
            .init()
            .await
            .map_err(|e| self.sftp_error("cannot start SFTP", e))?;
        let has = |name: &str| version.extensions.contains_key(name);
        let mut write_len = DEFAULT_WRITE_LEN;
        if has(LIMITS) {
            let limits = sftp
                .limits()
                .await
                .map_err(|e| self.sftp_error("cannot read the server's SFTP limits", e))?;
            let limits = russh_sftp::client::rawsession::Limits::from(limits);
            // The write limit counts payload bytes; the packet limit includes the header, which
            // for a write is at most a few hundred bytes (the handle is short).
            let by_write = limits.write_len.unwrap_or(u64::MAX);
            let by_packet = limits
                .packet_len
                .map(|p| p.saturating_sub(1024))
                .unwrap_or(u64::MAX);
            let server_max = by_write.min(by_packet);
            if server_max != u64::MAX {
                write_len = usize::try_from(server_max)
                    .unwrap_or(MAX_WRITE_LEN)
                    .max(1024);
            }
            sftp.set_limits(limits);
        }
        let write_len = write_len.min(self.tuning.max_write_len).max(1);
        let conn = Connection {
            ssh,
            sftp,
            broken: AtomicBool::new(false),
            posix_rename: self.tuning.use_posix_rename && has(POSIX_RENAME),
            fsync: has(FSYNC),
            write_len,
            in_flight: (self.tuning.max_in_flight_bytes / write_len).max(1),
        };
        tracing::debug!(
            destination = %self.cfg.name,
            posix_rename = conn.posix_rename,
            fsync = conn.fsync,
            write_len = conn.write_len,
            in_flight = conn.in_flight,
            "sftp session ready"
        );
        Ok(conn)
    }

    fn ssh_config(&self) -> client::Config {
        let mut preferred = russh::Preferred::default();
        // Ask first for host key types the known_hosts file has for this host, as OpenSSH does,
        // so a server with several host keys presents one we can check.
        let known = self.policy.known_algorithms(&self.cfg.host, self.cfg.port);
        if !known.is_empty() {
            let mut keys: Vec<Algorithm> = preferred.key.to_vec();
            keys.sort_by_key(|a| !known.iter().any(|k| hostkey::same_family(k, a)));
            preferred.key = keys.into();
        }
        client::Config {
            preferred,
            // Detects a server or path that went silent between requests.
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        }
    }

    async fn authenticate(
        &self,
        ssh: &mut client::Handle<ClientHandler>,
    ) -> Result<(), DeliverError> {
        let net = |e: russh::Error| {
            self.retryable(format_args!(
                "connection lost during login ({e}); will retry"
            ))
        };
        let mut tried: Vec<&str> = Vec::new();
        let mut accepted_by_server: Option<String> = None;
        let mut note = |r: &AuthResult| {
            if let AuthResult::Failure {
                remaining_methods, ..
            } = r
            {
                let names: Vec<&str> = remaining_methods.iter().map(<&str>::from).collect();
                accepted_by_server = Some(names.join(","));
            }
        };
        if let Some(key) = &self.key {
            let hash = if key.algorithm().is_rsa() {
                ssh.best_supported_rsa_hash().await.map_err(net)?.flatten()
            } else {
                None
            };
            let result = ssh
                .authenticate_publickey(
                    self.cfg.username.as_str(),
                    PrivateKeyWithHashAlg::new(key.clone(), hash),
                )
                .await
                .map_err(net)?;
            if result.success() {
                return Ok(());
            }
            note(&result);
            tried.push("publickey");
        }
        if let Some(password) = &self.password {
            let result = ssh
                .authenticate_password(
                    self.cfg.username.as_str(),
                    password.expose_secret().to_owned(),
                )
                .await
                .map_err(net)?;
            if result.success() {
                return Ok(());
            }
            note(&result);
            tried.push("password");
        }
        Err(self.permanent(format_args!(
            "authentication failed for user {:?} (tried {}; the server accepts {}); check username, \
             private_key_file (its public key must be in the user's authorized_keys) or the password",
            self.cfg.username,
            tried.join(" and "),
            accepted_by_server.unwrap_or_else(|| "unknown methods".into())
        )))
    }

    /// `remote_dir` must exist and be a folder; we never create it (a typo would otherwise send
    /// files where nobody picks them up).
    async fn check_remote_dir(&self, conn: &Connection) -> Result<(), DeliverError> {
        let dir = &self.cfg.remote_dir;
        match conn.stat(dir.as_str()).await {
            Ok(attrs) => {
                let mode = attrs.permissions.unwrap_or(0);
                if attrs.permissions.is_some() && mode & 0o170000 != 0o040000 {
                    return Err(self.permanent(format_args!("remote_dir {dir:?} is not a folder")));
                }
                Ok(())
            }
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Err(self.permanent(format_args!(
                "remote_dir {dir:?} does not exist on the server (for user {:?}; a chrooted user sees paths inside \
                 the chroot); create it or correct remote_dir",
                self.cfg.username
            ))),
            Err(e) => Err(self.sftp_error(&format!("cannot inspect remote_dir {dir:?}"), e)),
        }
    }

    /// Removes temporary files an interrupted attempt left in `remote_dir`.
    async fn remove_stale_temps(&self, conn: &Connection) -> Result<usize, DeliverError> {
        let dir = self.cfg.remote_dir.as_str();
        let what = format!("cannot list remote_dir {dir:?}");
        let handle = conn
            .opendir(dir)
            .await
            .map_err(|e| self.sftp_error(&what, e))?;
        let mut stale = Vec::new();
        let listed = loop {
            match conn.readdir(handle.as_str()).await {
                Ok(names) => stale.extend(names.into_iter().filter(|n| n.starts_with(TMP_PREFIX))),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let _ = conn.close(&handle).await;
        listed.map_err(|e| self.sftp_error(&what, e))?;
        for name in &stale {
            let path = self.remote_path(name);
            match conn.remove(path.as_str()).await {
                Ok(_) => {
                    tracing::debug!(destination = %self.cfg.name, file = %name, "removed stale temporary file")
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
                Err(e) => {
                    return Err(
                        self.sftp_error(&format!("cannot remove stale temporary file {path}"), e)
                    );
                }
            }
        }
        Ok(stale.len())
    }

    /// Uploads `local` to `remote` with pipelined writes, then closes it and checks its size on the
    /// server. Returns the bytes sent.
    async fn upload_file(
        &self,
        conn: &Connection,
        local: &Path,
        remote: &str,
        expected: u64,
    ) -> Result<u64, DeliverError> {
        let local_err = |e: std::io::Error| {
            self.retryable(format_args!(
                "cannot read snapshot file {}: {e}; will retry",
                local.display()
            ))
        };
        let mut file = tokio::fs::File::open(local).await.map_err(local_err)?;
        let what = format!("cannot write {remote}");
        let handle = conn
            .create(remote)
            .await
            .map_err(|e| self.sftp_error(&format!("cannot create {remote}"), e))?;

        let written: Result<u64, DeliverError> = async {
            let mut offset = 0u64;
            let mut eof = false;
            let mut pending = FuturesUnordered::new();
            loop {
                while !eof && pending.len() < conn.in_flight {
                    let chunk = read_chunk(&mut file, conn.write_len)
                        .await
                        .map_err(local_err)?;
                    if chunk.is_empty() {
                        eof = true;
                        break;
                    }
                    let len = chunk.len() as u64;
                    pending.push(conn.write(handle.as_str(), offset, chunk));
                    offset += len;
                }
                match pending.next().await {
                    Some(result) => {
                        result.map_err(|e| self.sftp_error(&what, e))?;
                    }
                    None => break,
                }
            }
            if conn.fsync {
                // Durable on the server before we rename it into place and report success.
                let data = ssh_string(handle.as_bytes());
                conn.extended(FSYNC, data)
                    .await
                    .map_err(|e| self.sftp_error(&format!("cannot fsync {remote}"), e))?;
            }
            Ok(offset)
        }
        .await;
        // Close even after a failure, so the server releases the handle; a close error matters
        // only when everything else worked (some servers report write errors on close).
        let closed = conn.close(handle.as_str()).await;
        let written = written?;
        closed.map_err(|e| self.sftp_error(&format!("cannot close {remote}"), e))?;

        if written != expected {
            return Err(self.retryable(format_args!(
                "snapshot file {} has {written} bytes but the snapshot says {expected}; it changed underneath; will retry",
                local.display()
            )));
        }
        let attrs = conn
            .stat(remote)
            .await
            .map_err(|e| self.sftp_error(&format!("cannot check {remote}"), e))?;
        match attrs.size {
            Some(size) if size == expected => Ok(written),
            Some(size) => Err(self.retryable(format_args!(
                "{remote} has {size} bytes on the server after upload, expected {expected}; will retry"
            ))),
            None => Err(self.permanent(format_args!(
                "the server does not report the size of {remote}, so the upload cannot be verified"
            ))),
        }
    }

    /// Moves `from` over `to`, replacing it.
    async fn rename_over(
        &self,
        conn: &Connection,
        from: &str,
        to: &str,
    ) -> Result<(), DeliverError> {
        let what = format!("cannot rename {from} to {to}");
        if conn.posix_rename {
            let mut data = ssh_string(from.as_bytes());
            data.extend(ssh_string(to.as_bytes()));
            return conn
                .extended(POSIX_RENAME, data)
                .await
                .map_err(|e| self.sftp_error(&what, e));
        }
        // SFTPv3 rename fails when the target exists. Between the remove and the rename the final
        // name is briefly absent, never partial.
        match conn.remove(to).await {
            Ok(_) => {}
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
            Err(e) => return Err(self.sftp_error(&format!("cannot replace {to}"), e)),
        }
        conn.rename(from, to)
            .await
            .map(|_| ())
            .map_err(|e| self.sftp_error(&what, e))
    }

    async fn deliver_on(
        &self,
        conn: &Connection,
        set: &FileSet,
    ) -> Result<(usize, u64), DeliverError> {
        self.check_remote_dir(conn).await?;
        let stale = self.remove_stale_temps(conn).await?;
        if stale > 0 {
            tracing::info!(destination = %self.cfg.name, files = stale, "removed temporary files of an earlier attempt");
        }
        let files: Vec<&SetFile> = set.files_for(self.cfg.include_license_file).collect();
        for f in &files {
            if f.name.is_empty() || f.name.contains('/') || f.name.starts_with(TMP_PREFIX) {
                return Err(self.permanent(format_args!(
                    "snapshot file name {:?} cannot be used as a remote name",
                    f.name
                )));
            }
        }
        // Upload everything first, rename after: the set changes on the server in one quick
        // burst of renames instead of trickling in file by file.
        let mut temps = Vec::with_capacity(files.len());
        let mut bytes = 0u64;
        for f in &files {
            let tmp = self.remote_path(&format!("{TMP_PREFIX}{}{TMP_SUFFIX}", f.name));
            temps.push(tmp.clone());
            let started = Instant::now();
            match self
                .upload_file(conn, &set.dir.join(&f.name), &tmp, f.bytes)
                .await
            {
                Ok(n) => {
                    bytes += n;
                    tracing::debug!(destination = %self.cfg.name, file = %f.name, bytes = n,
                        duration_ms = started.elapsed().as_millis() as u64, "uploaded to temporary name");
                }
                Err(e) => {
                    self.remove_quietly(conn, &temps).await;
                    return Err(e);
                }
            }
        }
        for (i, f) in files.iter().enumerate() {
            let dst = self.remote_path(&f.name);
            if let Err(e) = self.rename_over(conn, &temps[i], &dst).await {
                self.remove_quietly(conn, &temps[i..]).await;
                return Err(e);
            }
            tracing::debug!(destination = %self.cfg.name, file = %f.name, "renamed into place");
        }
        Ok((files.len(), bytes))
    }

    /// Best effort: the next attempt removes whatever this misses.
    async fn remove_quietly(&self, conn: &Connection, paths: &[String]) {
        for p in paths {
            let _ = conn.remove(p.as_str()).await;
        }
    }

    async fn check_on(&self, conn: &Connection) -> Result<(), DeliverError> {
        self.check_remote_dir(conn).await?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let probe = self.remote_path(&format!(
            "{TMP_PREFIX}check.{}.{nanos}{TMP_SUFFIX}",
            std::process::id()
        ));
        let content = b"sds-sync check\n";
        let handle = conn
            .create(&probe)
            .await
            .map_err(|e| self.sftp_error(&format!("cannot create probe file {probe}"), e))?;
        let wrote = conn.write(handle.as_str(), 0, content.to_vec()).await;
        let closed = conn.close(handle.as_str()).await;
        let result = match wrote.and(closed) {
            Ok(()) => conn.stat(&probe).await.map(|a| a.size),
            Err(e) => Err(e),
        };
        let removed = conn.remove(probe.as_str()).await;
        match result {
            Ok(Some(n)) if n == content.len() as u64 => {}
            Ok(size) => {
                return Err(self.retryable(format_args!(
                    "probe file {probe} has size {size:?} on the server, expected {}",
                    content.len()
                )));
            }
            Err(e) => return Err(self.sftp_error(&format!("cannot write probe file {probe}"), e)),
        }
        removed.map_err(|e| self.sftp_error(&format!("cannot remove probe file {probe}"), e))?;
        Ok(())
    }
}

/// One authenticated SSH connection with its SFTP session.
struct Connection {
    ssh: client::Handle<ClientHandler>,
    sftp: RawSftpSession,
    /// Set once a request failed for a reason other than a server reply (connection lost,
    /// timeout). Later requests then fail at once instead of each waiting out its timeout:
    /// russh-sftp's writer task can stay blocked on a dead channel, so new requests on a broken
    /// session would never be answered.
    broken: AtomicBool,
    posix_rename: bool,
    fsync: bool,
    /// Payload bytes per write request.
    write_len: usize,
    /// Write requests in flight per file.
    in_flight: usize,
}

impl Connection {
    async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, SftpError>>,
    ) -> Result<T, SftpError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(SftpError::UnexpectedBehavior(
                "the connection failed earlier".into(),
            ));
        }
        let result = request.await;
        if let Err(e) = &result
            && !matches!(e, SftpError::Status(_))
        {
            self.broken.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn stat(&self, path: &str) -> Result<FileAttributes, SftpError> {
        self.call(self.sftp.stat(path)).await.map(|a| a.attrs)
    }

    async fn opendir(&self, path: &str) -> Result<String, SftpError> {
        self.call(self.sftp.opendir(path)).await.map(|h| h.handle)
    }

    async fn readdir(&self, handle: &str) -> Result<Vec<String>, SftpError> {
        let name = self.call(self.sftp.readdir(handle)).await?;
        Ok(name.files.into_iter().map(|f| f.filename).collect())
    }

    /// Opens `path` for writing, created or truncated.
    async fn create(&self, path: &str) -> Result<String, SftpError> {
        let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
        let open = self.sftp.open(path, flags, FileAttributes::empty());
        self.call(open).await.map(|h| h.handle)
    }

    async fn write(&self, handle: &str, offset: u64, data: Vec<u8>) -> Result<(), SftpError> {
        self.call(self.sftp.write(handle, offset, data))
            .await
            .map(|_| ())
    }

    async fn close(&self, handle: &str) -> Result<(), SftpError> {
        self.call(self.sftp.close(handle)).await.map(|_| ())
    }

    async fn remove(&self, path: &str) -> Result<(), SftpError> {
        self.call(self.sftp.remove(path)).await.map(|_| ())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), SftpError> {
        self.call(self.sftp.rename(from, to)).await.map(|_| ())
    }

    /// An extended request whose reply must be a status OK.
    async fn extended(&self, name: &str, data: Vec<u8>) -> Result<(), SftpError> {
        match self.call(self.sftp.extended(name, data)).await? {
            Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(s) => Err(SftpError::Status(s)),
            _ => Err(SftpError::UnexpectedPacket),
        }
    }

    /// Polite goodbye; bounded, because a dead server must not hold up the caller.
    async fn shutdown(self) {
        let _ = self.sftp.close_session();
        let goodbye = self.ssh.disconnect(Disconnect::ByApplication, "", "en");
        let _ = tokio::time::timeout(DISCONNECT_GRACE, goodbye).await;
    }
}

/// Verifies the server's host key during the handshake and remembers why it refused one, so the
/// error can say what was offered and how to trust it.
struct ClientHandler {
    policy: Arc<HostKeyPolicy>,
    host: String,
    port: u16,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // We do not advertise certificate host key algorithms, so a certificate is unexpected;
        // judge the key inside it like a plain key.
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        match self.policy.verify(&self.host, self.port, &key) {
            Ok(()) => Ok(true),
            Err(problem) => {
                if let Ok(mut slot) = self.problem.lock() {
                    *slot = Some(problem);
                }
                Ok(false)
            }
        }
    }
}

/// SSH wire string: u32 big-endian length, then the bytes.
fn ssh_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Reads up to `len` bytes, short only at end of file.
async fn read_chunk(file: &mut tokio::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

impl Destination for SftpDestination {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> &'static str {
        "sftp"
    }

    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(async move {
            let started = Instant::now();
            let conn = self.connect().await?;
            let result = self.deliver_on(&conn, set).await;
            conn.shutdown().await;
            let (files, bytes) = result?;
            tracing::info!(
                destination = %self.cfg.name,
                kind = "sftp",
                snapshot = %set.snapshot_id,
                files,
                bytes,
                duration_ms = started.elapsed().as_millis() as u64,
                "delivered"
            );
            Ok(())
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(async move {
            let conn = self.connect().await?;
            let result = self.check_on(&conn).await;
            conn.shutdown().await;
            result
        })
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
    fn new_reports_missing_files_as_permanent_with_key_and_path() {
        let err = SftpDestination::new(valid()).unwrap_err();
        assert!(err.is_permanent());
        assert!(
            err.message
                .contains("private_key_file /etc/sds-sync/id_ed25519"),
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
                .contains("known_hosts_file /nonexistent/known_hosts"),
            "{err}"
        );
        assert!(
            err.message.contains("ssh-keyscan -p 22 sftp.example.org"),
            "{err}"
        );
        assert!(!err.message.contains("pw-not-shown"));
    }

    #[test]
    fn secret_files_lose_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\r\n").unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose_secret(), "s3cret");
    }

    #[test]
    fn remote_paths() {
        let mut d = SftpDestination::new(SftpConfig {
            private_key_file: None,
            password: Some("x".into()),
            known_hosts_file: None,
            host_key_fingerprint: Some("SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y".into()),
            ..valid()
        })
        .unwrap();
        assert_eq!(d.remote_path("a.csv"), "/upload/a.csv");
        d.cfg.remote_dir = "/upload/".into();
        assert_eq!(d.remote_path("a.csv"), "/upload/a.csv");
        d.cfg.remote_dir = "/".into();
        assert_eq!(d.remote_path("a.csv"), "/a.csv");
        d.cfg.remote_dir = "in".into();
        assert_eq!(d.remote_path("a.csv"), "in/a.csv");
    }

    #[test]
    fn ssh_string_encoding() {
        assert_eq!(ssh_string(b"ab"), vec![0, 0, 0, 2, b'a', b'b']);
    }
}
