//! The FTP/FTPS destination (`kind = "ftp"`): uploads every file of a snapshot over FTP, explicit
//! FTPS (`AUTH TLS`) or implicit FTPS with suppaftp + rustls, each to a temporary name, checks its
//! size with `SIZE`, and renames it over the final name (`RNFR`/`RNTO`), so a reader on the server
//! never sees half a file.
//!
//! Transfers are binary (`TYPE I`): the CSV bytes arrive exactly as published. Temporary files end
//! in [`TMP_SUFFIX`]; the next attempt deletes any it finds in `remote_dir`. Failures are sorted
//! into permanent (login refused, certificate, permission, missing folder, config) and retryable
//! (connection trouble, timeouts, 4xx replies); see `classify.rs`.

mod classify;
mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use suppaftp::tokio::{AsyncRustlsStream, ImplAsyncFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{DeliverError, Destination, ErrorKind, FileSet};
use classify::{Step, Verdict, classify_reply, reply_code};
use tls::{Connector, TlsFailure};

/// Suffix of temporary upload names (`School.csv.sds-sync-tmp`). A suffix rather than a leading
/// dot: vsftpd and others hide dot files from `NLST`, and the cleanup must see them; and the name
/// no longer ends in `.csv`, so a reader matching `*.csv` ignores it.
pub const TMP_SUFFIX: &str = ".sds-sync-tmp";

/// How long to wait for the server's reply after a data connection broke, to learn the reason
/// (e.g. `522` or `552`) instead of reporting a bare "connection reset".
const REASON_GRACE: Duration = Duration::from_secs(5);

/// Upload chunk: each chunk's write is bounded by the I/O timeout, so a stalled server is caught
/// without bounding the whole file by a fixed time.
const CHUNK: usize = 64 * 1024;

type Ftp = ImplAsyncFtpStream<AsyncRustlsStream>;

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

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

/// The built FTP destination: config checked, password and CA file read.
pub struct FtpDestination {
    cfg: FtpConfig,
    port: u16,
    password: SecretString,
    /// Shared by every connection of this destination, so TLS sessions can be resumed.
    tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for FtpDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a SecretString (redacted anyway); the rustls config is noise.
        f.debug_struct("FtpDestination")
            .field("cfg", &self.cfg)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl FtpDestination {
    /// Validates `cfg`, reads `password_file` and `ca_file`, and builds the TLS config.
    /// Errors are permanent and name the key (and the path).
    pub fn new(mut cfg: FtpConfig) -> Result<Self, DeliverError> {
        cfg.validate()
            .map_err(|e| DeliverError::permanent(&cfg.name, e))?;
        let name = cfg.name.clone();
        let password = match (cfg.password.take(), &cfg.password_file) {
            (Some(p), _) => p,
            (None, Some(path)) => {
                read_password_file(path).map_err(|e| DeliverError::permanent(&name, e))?
            }
            // validate() already refused this; kept as an error rather than a panic.
            (None, None) => {
                return Err(DeliverError::permanent(
                    &name,
                    "`password` or `password_file` is required",
                ));
            }
        };
        let tls = match cfg.tls {
            FtpTls::None => None,
            FtpTls::Explicit | FtpTls::Implicit => Some(
                tls::client_config(
                    cfg.ca_file.as_deref(),
                    "ca_file",
                    cfg.tls_max_version == TlsMaxVersion::Tls12,
                    true,
                )
                .map_err(|e| DeliverError::permanent(&name, format!("{e}; fix ca_file")))?,
            ),
        };
        let port = cfg.effective_port();
        Ok(FtpDestination {
            cfg,
            port,
            password,
            tls,
        })
    }

    /// Warnings the daemon should log at WARN level once at start-up.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.cfg.tls == FtpTls::None {
            out.push(format!(
                "destination {:?}: tls = \"none\": the FTP password and every file cross the network to {}:{} in clear text; \
                 use tls = \"explicit\" (or \"implicit\") if the server supports FTPS",
                self.cfg.name, self.cfg.host, self.port
            ));
        }
        out
    }

    /// Turns TLS session resumption off. Only for tests that prove the refusal path of servers
    /// requiring session reuse; a real destination never wants this.
    #[doc(hidden)]
    pub fn without_tls_session_reuse(mut self) -> Self {
        if self.tls.is_some()
            && let Ok(config) = tls::client_config(
                self.cfg.ca_file.as_deref(),
                "ca_file",
                self.cfg.tls_max_version == TlsMaxVersion::Tls12,
                false,
            )
        {
            self.tls = Some(config);
        }
        self
    }

    /// The config this destination was built from (the password is moved out of it).
    pub fn config(&self) -> &FtpConfig {
        &self.cfg
    }

    fn io_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.io_timeout_secs)
    }

    fn err(&self, kind: ErrorKind, message: String) -> DeliverError {
        DeliverError {
            destination: self.cfg.name.clone(),
            kind,
            message: format!("{}:{}: {message}", self.cfg.host, self.port),
        }
    }

    /// Runs the whole delivery or check under `delivery_timeout_secs`.
    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, DeliverError>>,
    ) -> Result<T, DeliverError> {
        let limit = self.cfg.delivery_timeout_secs;
        tokio::time::timeout(Duration::from_secs(limit), fut).await.unwrap_or_else(|_| {
            Err(self.err(
                ErrorKind::Retryable,
                format!("{what} did not finish within {limit} s (delivery_timeout_secs); the link may be too slow for the files: raise delivery_timeout_secs"),
            ))
        })
    }

    /// Opens a session: TCP connect, TLS (explicit or implicit), login, `remote_dir`, binary mode.
    async fn open(&self) -> Result<Session<'_>, DeliverError> {
        let connector = self.tls.as_ref().map(|c| Connector::new(Arc::clone(c)));
        let io = self.io_timeout();
        let mut ftp = match (self.cfg.tls, &connector) {
            (FtpTls::Implicit, Some(connector)) => {
                let addr = self.connect_tcp_addr().await?;
                let limit = self.cfg.connect_timeout_secs;
                let attempt =
                    Ftp::connect_secure_implicit(addr, connector.clone(), self.cfg.host.as_str());
                match tokio::time::timeout(Duration::from_secs(limit), attempt).await {
                    Ok(Ok(ftp)) => ftp,
                    Ok(Err(e)) => {
                        return Err(self.ftp_error(
                            Step::Greeting,
                            "connect with implicit TLS",
                            &e,
                            Some(connector),
                        ));
                    }
                    Err(_) => {
                        return Err(self.err(
                            ErrorKind::Retryable,
                            format!("connect with implicit TLS: no TLS greeting within {limit} s (connect_timeout_secs); check host, port and that the server speaks implicit FTPS there"),
                        ));
                    }
                }
            }
            _ => {
                let tcp = self.connect_tcp().await?;
                let ftp = self
                    .timed(
                        Step::Greeting,
                        "read the server greeting",
                        None,
                        Ftp::connect_with_stream(tcp),
                    )
                    .await?;
                match &connector {
                    Some(connector) => {
                        self.timed(
                            Step::AuthTls,
                            "start TLS (AUTH TLS, PBSZ, PROT P)",
                            Some(connector),
                            ftp.into_secure(connector.clone(), self.cfg.host.as_str()),
                        )
                        .await?
                    }
                    None => ftp,
                }
            }
        };
        if self.cfg.tls == FtpTls::Implicit {
            // suppaftp's implicit mode leaves data connections in clear (no PROT P), which
            // servers that force encrypted data refuse with 522; ask for protected data here,
            // as `into_secure` does for explicit TLS.
            for command in ["PBSZ 0", "PROT P"] {
                let what = format!("set up encrypted data connections ({command})");
                let fut = ftp.custom_command(command, &[suppaftp::Status::CommandOk]);
                self.timed(Step::AuthTls, &what, connector.as_ref(), fut)
                    .await?;
            }
        }
        let mut session = Session {
            dest: self,
            ftp,
            connector,
            io,
        };
        session.setup().await?;
        Ok(session)
    }

    async fn connect_tcp_addr(&self) -> Result<std::net::SocketAddr, DeliverError> {
        // For implicit TLS suppaftp connects by itself; resolve here so the error is ours.
        let host = self.cfg.host.as_str();
        let limit = Duration::from_secs(self.cfg.connect_timeout_secs);
        let addrs = tokio::time::timeout(limit, tokio::net::lookup_host((host, self.port)))
            .await
            .map_err(|_| {
                self.err(
                    ErrorKind::Retryable,
                    "resolve host: timed out (connect_timeout_secs); check DNS".into(),
                )
            })?
            .map_err(|e| {
                self.err(
                    ErrorKind::Retryable,
                    format!("resolve host: {e}; check the host name and DNS"),
                )
            })?;
        addrs.into_iter().next().ok_or_else(|| {
            self.err(
                ErrorKind::Retryable,
                "resolve host: no address found; check the host name and DNS".into(),
            )
        })
    }

    async fn connect_tcp(&self) -> Result<TcpStream, DeliverError> {
        let host = self.cfg.host.as_str();
        let limit_secs = self.cfg.connect_timeout_secs;
        let attempt = async {
            let mut last: Option<std::io::Error> = None;
            for addr in tokio::net::lookup_host((host, self.port)).await? {
                match TcpStream::connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last
                .unwrap_or_else(|| std::io::Error::other("the host name resolved to no address")))
        };
        match tokio::time::timeout(Duration::from_secs(limit_secs), attempt).await {
            Ok(Ok(s)) => {
                // Small command/reply exchanges: don't let Nagle delay them.
                let _ = s.set_nodelay(true);
                Ok(s)
            }
            Ok(Err(e)) => Err(self.err(
                ErrorKind::Retryable,
                format!("connect failed: {e}; check host and port, and that the FTP server is running and reachable"),
            )),
            Err(_) => Err(self.err(
                ErrorKind::Retryable,
                format!("connect timed out after {limit_secs} s (connect_timeout_secs); check host, port and firewalls"),
            )),
        }
    }

    /// Runs one protocol step under the I/O timeout and turns its failure into a [`DeliverError`].
    async fn timed<T>(
        &self,
        step: Step,
        what: &str,
        connector: Option<&Connector>,
        fut: impl Future<Output = Result<T, FtpError>>,
    ) -> Result<T, DeliverError> {
        match tokio::time::timeout(self.io_timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.ftp_error(step, what, &e, connector)),
            Err(_) => Err(self.err(
                ErrorKind::Retryable,
                format!(
                    "{what}: no answer within {} s (io_timeout_secs); the server or the network stalled, sds-sync retries later",
                    self.cfg.io_timeout_secs
                ),
            )),
        }
    }

    /// Classifies a suppaftp error of `step`.
    fn ftp_error(
        &self,
        step: Step,
        what: &str,
        e: &FtpError,
        connector: Option<&Connector>,
    ) -> DeliverError {
        match e {
            FtpError::UnexpectedResponse(resp) => {
                let text = reply_text(&resp.body);
                let code = reply_code(&resp.body).unwrap_or_else(|| resp.status.code());
                let Verdict { kind, advice } = classify_reply(step, code, &text);
                let mut advice = advice.to_owned();
                if let Some(c) = connector
                    && step_uses_data(step)
                {
                    let log = c.log();
                    let reuse_refused = advice == classify::REUSE_ADVICE;
                    // Other servers refuse a non-resumed data session with a data-connection
                    // error (FileZilla Server: 425) instead of vsftpd's 522.
                    if !reuse_refused
                        && log.data_not_resumed > 0
                        && matches!(code, 425 | 426 | 450 | 451)
                    {
                        advice = format!(
                            "{advice}; note: the TLS data connection did not resume the control session, so if the server requires session reuse: {}",
                            classify::REUSE_ADVICE
                        );
                    }
                    if (reuse_refused || log.data_not_resumed > 0)
                        && log.control_version.as_deref() == Some("TLSv1_3")
                    {
                        advice.push_str(
                            "; if the server cannot be changed, try tls_max_version = \"1.2\" for this destination (some servers resume TLS 1.2 sessions but not TLS 1.3 ones)",
                        );
                    }
                }
                self.err(kind, format!("{what}: server replied {text:?}; {advice}"))
            }
            FtpError::SecureError(msg) => {
                let failure = connector.and_then(|c| c.log().last_failure.clone());
                match failure {
                    Some(TlsFailure::Certificate(m)) => self.err(
                        ErrorKind::Permanent,
                        format!(
                            "{what}: {m}; if the server uses a private CA set ca_file to its PEM certificate, and make `host` a name the certificate is valid for"
                        ),
                    ),
                    Some(TlsFailure::Incompatible(m)) => self.err(
                        ErrorKind::Permanent,
                        format!("{what}: {m}; the server's TLS setup is not compatible (sds-sync needs TLS 1.2 or 1.3 with modern ciphers): update the server's TLS settings"),
                    ),
                    Some(TlsFailure::Other(m)) => {
                        self.err(ErrorKind::Retryable, format!("{what}: {m}; sds-sync retries later"))
                    }
                    None => self.err(ErrorKind::Retryable, format!("{what}: TLS error: {msg}; sds-sync retries later")),
                }
            }
            FtpError::ConnectionError(io) => {
                let mut message = format!(
                    "{what}: connection error: {io}; the server closed or reset the connection, sds-sync retries later"
                );
                if step == Step::Greeting
                    && self.cfg.tls == FtpTls::Explicit
                    && io.kind() == std::io::ErrorKind::UnexpectedEof
                {
                    message.push_str(" (a server that expects implicit TLS on this port closes plain connections: check `tls` and `port`)");
                }
                self.err(ErrorKind::Retryable, message)
            }
            FtpError::BadResponse
            | FtpError::InvalidAddress(_)
            | FtpError::DataConnectionAlreadyOpen => self.err(
                ErrorKind::Retryable,
                format!("{what}: {e}; sds-sync retries later"),
            ),
        }
    }

    async fn deliver_inner(&self, set: &FileSet) -> Result<(), DeliverError> {
        let started = Instant::now();
        let files: Vec<_> = set.files_for(self.cfg.include_license_file).collect();
        for f in &files {
            if f.name.is_empty() || f.name.contains(['/', '\\', '\r', '\n']) {
                return Err(self.err(
                    ErrorKind::Permanent,
                    format!(
                        "file name {:?} cannot be sent over FTP (path separator or line break)",
                        f.name
                    ),
                ));
            }
        }
        let mut session = self.open().await?;
        session.remove_leftovers().await?;
        let mut bytes = 0u64;
        for f in &files {
            let file_started = Instant::now();
            session
                .send_file(&set.dir.join(&f.name), &f.name, f.bytes)
                .await?;
            bytes += f.bytes;
            tracing::debug!(
                destination = %self.cfg.name,
                file = %f.name,
                bytes = f.bytes,
                duration_ms = file_started.elapsed().as_millis() as u64,
                "ftp file delivered"
            );
        }
        session.quit().await;
        tracing::info!(
            destination = %self.cfg.name,
            kind = "ftp",
            snapshot = %set.snapshot_id,
            files = files.len(),
            bytes,
            duration_ms = started.elapsed().as_millis() as u64,
            "delivery complete"
        );
        Ok(())
    }

    async fn check_inner(&self) -> Result<(), DeliverError> {
        let mut session = self.open().await?;
        session.probe_write().await?;
        session.quit().await;
        tracing::debug!(destination = %self.cfg.name, "ftp check passed");
        Ok(())
    }
}

fn read_password_file(path: &Path) -> Result<SecretString, String> {
    let raw = std::fs::read_to_string(path).map_err(|e| {
        format!("`password_file` {}: cannot read it: {e}; check the path and that the sds-sync user may read it", path.display())
    })?;
    let trimmed = raw
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&raw);
    if trimmed.is_empty() {
        return Err(format!(
            "`password_file` {}: the file is empty",
            path.display()
        ));
    }
    if has_line_break(trimmed) {
        return Err(format!(
            "`password_file` {}: the password must be a single line",
            path.display()
        ));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// A server reply as printable text (control characters dropped, length capped).
fn reply_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let clean: String = text
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    clean
}

fn step_uses_data(step: Step) -> bool {
    matches!(step, Step::Upload | Step::List)
}

/// One logged-in FTP session.
struct Session<'a> {
    dest: &'a FtpDestination,
    ftp: Ftp,
    connector: Option<Connector>,
    io: Duration,
}

impl Session<'_> {
    async fn setup(&mut self) -> Result<(), DeliverError> {
        let dest = self.dest;
        let login = format!("log in as {:?}", dest.cfg.username);
        // The password only goes into the PASS command. suppaftp logs every command at TRACE
        // level through the `log` crate, PASS included: the daemon's log filter must keep the
        // `suppaftp` target below TRACE.
        let fut = self
            .ftp
            .login(dest.cfg.username.as_str(), dest.password.expose_secret());
        dest.timed(Step::Login, &login, self.connector.as_ref(), fut)
            .await?;
        match dest.cfg.passive_mode {
            PassiveMode::Passive => {
                self.ftp.set_mode(Mode::Passive);
                // Use the control connection's address with the PASV port: servers behind NAT
                // announce private addresses, and it prevents connecting to a third host.
                self.ftp.set_passive_nat_workaround(true);
            }
            PassiveMode::Extended => self.ftp.set_mode(Mode::ExtendedPassive),
        }
        if let Some(dir) = &dest.cfg.remote_dir {
            let what = format!("change to remote_dir {dir:?}");
            let fut = self.ftp.cwd(dir.as_str());
            self.dest
                .timed(Step::ChangeDir, &what, self.connector.as_ref(), fut)
                .await?;
        }
        let fut = self.ftp.transfer_type(FileType::Binary);
        self.dest
            .timed(
                Step::SetBinary,
                "switch to binary mode (TYPE I)",
                self.connector.as_ref(),
                fut,
            )
            .await?;
        Ok(())
    }

    /// Deletes temporary files an interrupted attempt left in `remote_dir`.
    async fn remove_leftovers(&mut self) -> Result<(), DeliverError> {
        let names = match tokio::time::timeout(self.io, self.ftp.nlst(None)).await {
            Ok(Ok(names)) => names,
            // Some servers answer NLST of an empty folder with 450/550 "no files".
            Ok(Err(FtpError::UnexpectedResponse(resp)))
                if matches!(reply_code(&resp.body), Some(450 | 550)) =>
            {
                Vec::new()
            }
            Ok(Err(e)) => {
                return Err(self.dest.ftp_error(
                    Step::List,
                    "list remote_dir to find leftover temporary files",
                    &e,
                    self.connector.as_ref(),
                ));
            }
            Err(_) => {
                return Err(self.dest.err(
                    ErrorKind::Retryable,
                    format!("list remote_dir: no answer within {} s (io_timeout_secs); sds-sync retries later", self.dest.cfg.io_timeout_secs),
                ));
            }
        };
        for entry in names {
            // Some servers list "dir/name" or "./name"; only the last part is the name.
            let name = entry.rsplit('/').next().unwrap_or(&entry).trim().to_owned();
            if !name.ends_with(TMP_SUFFIX) {
                continue;
            }
            let what = format!("delete leftover temporary file {name:?}");
            let fut = self.ftp.rm(name.as_str());
            self.dest
                .timed(Step::Delete, &what, self.connector.as_ref(), fut)
                .await?;
            tracing::debug!(destination = %self.dest.cfg.name, file = %name, "removed leftover temporary file");
        }
        Ok(())
    }

    /// Uploads `local` to `<name>.sds-sync-tmp`, checks its size, renames it over `name`.
    async fn send_file(
        &mut self,
        local: &Path,
        name: &str,
        expected: u64,
    ) -> Result<(), DeliverError> {
        let tmp = format!("{name}{TMP_SUFFIX}");
        let sent = self.upload(local, &tmp, name).await?;
        if sent != expected {
            self.try_delete(&tmp).await;
            return Err(self.dest.err(
                ErrorKind::Retryable,
                format!("upload {name}: read {sent} bytes from {} but the snapshot says {expected}; the snapshot file changed underneath", local.display()),
            ));
        }
        let what = format!("check the size of {tmp:?} (SIZE)");
        match tokio::time::timeout(self.io, self.ftp.size(tmp.as_str())).await {
            Ok(Ok(size)) if size as u64 == expected => {}
            Ok(Ok(size)) => {
                self.try_delete(&tmp).await;
                return Err(self.dest.err(
                    ErrorKind::Retryable,
                    format!("upload {name}: the server stored {size} bytes but {expected} were sent; sds-sync retries (check the server's disk space if this repeats)"),
                ));
            }
            // Servers without SIZE (500/502/504): the 226 "transfer complete" is all we get.
            Ok(Err(FtpError::UnexpectedResponse(resp)))
                if matches!(reply_code(&resp.body), Some(500 | 502 | 504)) =>
            {
                tracing::debug!(destination = %self.dest.cfg.name, file = %name, "server does not support SIZE; relying on the transfer reply");
            }
            Ok(Err(e)) => {
                return Err(self
                    .dest
                    .ftp_error(Step::Size, &what, &e, self.connector.as_ref()));
            }
            Err(_) => {
                return Err(self.dest.err(
                    ErrorKind::Retryable,
                    format!(
                        "{what}: no answer within {} s (io_timeout_secs); sds-sync retries later",
                        self.dest.cfg.io_timeout_secs
                    ),
                ));
            }
        }
        self.rename_over(&tmp, name).await
    }

    /// `RNFR`/`RNTO` over the final name. Servers that refuse to replace an existing file get it
    /// deleted first (a short window without the file, but never a partial one).
    async fn rename_over(&mut self, tmp: &str, name: &str) -> Result<(), DeliverError> {
        let what = format!("rename {tmp:?} to {name:?}");
        let first = match tokio::time::timeout(self.io, self.ftp.rename(tmp, name)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(self.dest.err(
                    ErrorKind::Retryable,
                    format!(
                        "{what}: no answer within {} s (io_timeout_secs); sds-sync retries later",
                        self.dest.cfg.io_timeout_secs
                    ),
                ));
            }
        };
        let refused = matches!(&first, FtpError::UnexpectedResponse(r) if matches!(reply_code(&r.body), Some(550 | 553)));
        if !refused {
            return Err(self
                .dest
                .ftp_error(Step::Rename, &what, &first, self.connector.as_ref()));
        }
        tracing::debug!(destination = %self.dest.cfg.name, file = %name, "rename refused; deleting the old file and renaming again");
        let _ = tokio::time::timeout(self.io, self.ftp.rm(name)).await;
        let fut = self.ftp.rename(tmp, name);
        self.dest
            .timed(Step::Rename, &what, self.connector.as_ref(), fut)
            .await
    }

    /// Streams `local` to `remote` (STOR); returns the bytes sent.
    async fn upload(
        &mut self,
        local: &Path,
        remote: &str,
        label: &str,
    ) -> Result<u64, DeliverError> {
        let dest = self.dest;
        let mut file = tokio::fs::File::open(local).await.map_err(|e| {
            dest.err(
                ErrorKind::Retryable,
                format!(
                    "upload {label}: cannot open the snapshot file {}: {e}",
                    local.display()
                ),
            )
        })?;
        let what = format!("upload {label} to {remote:?}");
        let fut = self.ftp.put_with_stream(remote);
        let mut stream = self
            .dest
            .timed(Step::Upload, &what, self.connector.as_ref(), fut)
            .await?;
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        let failure: Option<DeliverError> = loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) => {
                    break Some(dest.err(
                        ErrorKind::Retryable,
                        format!(
                            "upload {label}: cannot read the snapshot file {}: {e}",
                            local.display()
                        ),
                    ));
                }
            };
            match tokio::time::timeout(self.io, stream.write_all(&buf[..n])).await {
                Ok(Ok(())) => sent += n as u64,
                Ok(Err(e)) => {
                    break Some(dest.err(
                        ErrorKind::Retryable,
                        format!("{what}: the data connection broke after {sent} bytes: {e}; sds-sync retries later"),
                    ));
                }
                Err(_) => {
                    break Some(dest.err(
                        ErrorKind::Retryable,
                        format!(
                            "{what}: the server accepted no data for {} s (io_timeout_secs) after {sent} bytes; sds-sync retries later",
                            dest.cfg.io_timeout_secs
                        ),
                    ));
                }
            }
        };
        match failure {
            None => {
                self.dest
                    .timed(
                        Step::Upload,
                        &what,
                        self.connector.as_ref(),
                        stream.finish(),
                    )
                    .await?;
                Ok(sent)
            }
            Some(err) => {
                // The server often says why it cut the data connection (522 session reuse,
                // 552 disk full, 426): its reply makes a better error than "broken pipe".
                if let Ok(Err(e @ FtpError::UnexpectedResponse(_))) =
                    tokio::time::timeout(REASON_GRACE, stream.finish()).await
                {
                    return Err(dest.ftp_error(Step::Upload, &what, &e, self.connector.as_ref()));
                }
                Err(err)
            }
        }
    }

    /// `check`: proves remote_dir is writable with a small probe file and removes it again.
    async fn probe_write(&mut self) -> Result<(), DeliverError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let probe = format!("sds-sync-check.{}.{nanos}{TMP_SUFFIX}", std::process::id());
        let what = format!("write the probe file {probe:?} (check)");
        let fut = self.ftp.put_with_stream(probe.as_str());
        let mut stream = self
            .dest
            .timed(Step::Upload, &what, self.connector.as_ref(), fut)
            .await?;
        let written =
            tokio::time::timeout(self.io, stream.write_all(b"sds-sync write check\n")).await;
        if !matches!(written, Ok(Ok(()))) {
            if let Ok(Err(e @ FtpError::UnexpectedResponse(_))) =
                tokio::time::timeout(REASON_GRACE, stream.finish()).await
            {
                return Err(self
                    .dest
                    .ftp_error(Step::Upload, &what, &e, self.connector.as_ref()));
            }
            return Err(self.dest.err(
                ErrorKind::Retryable,
                format!("{what}: the data connection broke; sds-sync retries later"),
            ));
        }
        self.dest
            .timed(
                Step::Upload,
                &what,
                self.connector.as_ref(),
                stream.finish(),
            )
            .await?;
        let what = format!("delete the probe file {probe:?} (check)");
        let fut = self.ftp.rm(probe.as_str());
        self.dest
            .timed(Step::Delete, &what, self.connector.as_ref(), fut)
            .await
    }

    /// Best effort: the upload already failed; a leftover is removed by the next attempt.
    async fn try_delete(&mut self, name: &str) {
        let _ = tokio::time::timeout(self.io, self.ftp.rm(name)).await;
    }

    /// Polite `QUIT`; the work is done, so a failure here changes nothing.
    async fn quit(mut self) {
        let _ = tokio::time::timeout(self.io.min(Duration::from_secs(5)), self.ftp.quit()).await;
    }
}

impl Destination for FtpDestination {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn kind(&self) -> &'static str {
        "ftp"
    }
    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(self.bounded("delivery", self.deliver_inner(set)))
    }
    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(self.bounded("check", self.check_inner()))
    }
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

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let cfg = FtpConfig {
            password: Some(SecretString::from("hunter2-secret")),
            ..base()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let dest = FtpDestination::new(cfg).unwrap();
        assert!(!format!("{dest:?}").contains("hunter2"));
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        assert_eq!(read_password_file(&path).unwrap().expose_secret(), "s3cret");
        let missing = FtpDestination::new(FtpConfig {
            password: None,
            password_file: Some(dir.path().join("nope")),
            ..base()
        })
        .unwrap_err();
        assert!(missing.is_permanent());
        assert!(
            missing.message.contains("password_file") && missing.message.contains("nope"),
            "{missing}"
        );
    }

    #[test]
    fn tls_none_warns_at_startup() {
        let dest = FtpDestination::new(FtpConfig {
            tls: FtpTls::None,
            ..base()
        })
        .unwrap();
        let w = dest.startup_warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("clear text"), "{}", w[0]);
        assert!(
            FtpDestination::new(base())
                .unwrap()
                .startup_warnings()
                .is_empty()
        );
    }
}
