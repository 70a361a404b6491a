//! The FTP/FTPS destination (`kind = "ftp"`): the staged upload of [`crate::staged`] over FTP,
//! explicit FTPS (`AUTH TLS`) or implicit FTPS with suppaftp + rustls. Transfers are binary
//! (`TYPE I`): the CSV bytes arrive exactly as published. Failures are sorted into permanent
//! (login refused, certificate, permission, missing folder, config) and retryable (connection
//! trouble, timeouts, 4xx replies).
//!
//! Files: `config.rs` (the TOML table), `classify.rs` (retry or not), `session.rs` (connect, TLS,
//! login, the upload primitives), `tls.rs` (rustls config and the connector FTPS needs).

mod classify;
mod config;
mod session;
mod tls;

pub use crate::staged::TMP_SUFFIX;
pub use config::{FtpConfig, FtpTls, PassiveMode, TlsMaxVersion};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rustls::ClientConfig;
use secrecy::SecretString;
use suppaftp::tokio::{AsyncRustlsStream, ImplAsyncFtpStream};

use crate::staged::{self, Fault, SecretForm, read_secret_file};
use crate::{DeliverError, Destination, ErrorKind, FileSet};

type Ftp = ImplAsyncFtpStream<AsyncRustlsStream>;

/// The built FTP destination: config checked, password and CA file read.
pub struct FtpDestination {
    cfg: FtpConfig,
    port: u16,
    password: SecretString,
    /// Shared by every connection of this destination, so TLS sessions can be resumed.
    tls: Option<Arc<ClientConfig>>,
    /// Whether data connections resume the control connection's TLS session (always, except in
    /// tests of the refusal path).
    tls_reuse: bool,
    /// A `password_file` other accounts can read (see [`Destination::warnings`]).
    secret_warning: Option<String>,
    fault: Option<Fault>,
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
        let mut secret_warning = None;
        let password = match (cfg.password.take(), &cfg.password_file) {
            (Some(p), _) => p,
            (None, Some(path)) => {
                let file = read_secret_file("password_file", path, SecretForm::Line)
                    .map_err(|e| DeliverError::permanent(&name, e))?;
                secret_warning = file.warning.map(|w| format!("destination {name:?}: {w}"));
                file.value
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
                crate::tls::client_config(
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
            tls_reuse: true,
            secret_warning,
            fault: None,
        })
    }

    /// Warnings for the operator: clear-text FTP, a `password_file` open to other accounts.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.secret_warning.iter().cloned().collect();
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
            && let Ok(config) = crate::tls::client_config(
                self.cfg.ca_file.as_deref(),
                "ca_file",
                self.cfg.tls_max_version == TlsMaxVersion::Tls12,
                false,
            )
        {
            self.tls = Some(config);
            self.tls_reuse = false;
        }
        self
    }

    /// The config this destination was built from (the password is moved out of it).
    pub fn config(&self) -> &FtpConfig {
        &self.cfg
    }

    /// Test hook: see [`Fault`].
    #[doc(hidden)]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
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
        tokio::time::timeout(Duration::from_secs(limit), fut)
            .await
            .unwrap_or_else(|_| Err(self.err(ErrorKind::Retryable, staged::overran(limit, what))))
    }

    async fn deliver_set(&self, set: &FileSet) -> Result<(), DeliverError> {
        let started = Instant::now();
        let mut session = self.open().await?;
        let s = staged::deliver(
            &mut session,
            set,
            self.cfg.include_license_file,
            &self.cfg.omit_files,
            self.fault,
        )
        .await?;
        session.quit().await;
        crate::staged::log_delivered(&self.cfg.name, "ftp", set, &s, started);
        Ok(())
    }

    async fn check_server(&self) -> Result<(), DeliverError> {
        let mut session = self.open().await?;
        staged::probe(&mut session).await?;
        session.quit().await;
        tracing::debug!(destination = %self.cfg.name, "ftp check passed");
        Ok(())
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
        Box::pin(self.bounded("delivery", self.deliver_set(set)))
    }
    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(self.bounded("check", self.check_server()))
    }
    fn check_verified(&self) -> String {
        let c = &self.cfg;
        let tls = match c.tls {
            FtpTls::Explicit => {
                "TLS (AUTH TLS) on the control and data connections, data connections resuming its TLS session"
            }
            FtpTls::Implicit => {
                "implicit TLS on the control and data connections, data connections resuming its TLS session"
            }
            FtpTls::None => "no TLS",
        };
        format!(
            "ftp {}:{}: connected, {tls}, logged in as {:?}; in remote_dir {:?} {}",
            c.host,
            self.port,
            c.username,
            c.remote_dir.as_deref().unwrap_or("(the login folder)"),
            staged::PROBE_STEPS
        )
    }
    fn warnings(&self) -> Vec<String> {
        self.startup_warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> FtpConfig {
        toml::from_str(
            "name = \"v\"\nhost = \"ftp.example.org\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap()
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
