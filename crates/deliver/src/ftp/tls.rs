//! TLS for FTPS: a connector that remembers what the handshakes did, over one rustls client config
//! per destination ([`crate::tls::client_config`]) shared by the control connection and every data
//! connection.
//!
//! Why one shared config: servers such as vsftpd (`require_ssl_reuse=YES`, its default) accept a
//! TLS data connection only when it *resumes* the control connection's TLS session. rustls keeps
//! its session cache inside the `ClientConfig`, keyed by server name, so the data connections can
//! resume the control session only if they go through the same config with the same name.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::ServerName;
use suppaftp::tokio::{AsyncRustlsStream, AsyncTlsConnector};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::{FtpError, FtpResult};
use tokio::net::TcpStream;

/// What went wrong in the last failed handshake, kept because suppaftp flattens TLS errors into
/// strings and the retry decision needs the real rustls error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TlsFailure {
    /// The server's certificate is not trusted or not valid for the host name: permanent.
    Certificate(String),
    /// No common protocol version or cipher, or the server sent a fatal alert: permanent.
    Incompatible(String),
    /// Anything else (connection reset during the handshake, ...): retryable.
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Certificate(s) | TlsFailure::Incompatible(s) | TlsFailure::Other(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Handshake history of one FTP session (control connection + its data connections).
#[derive(Debug, Default)]
pub(super) struct TlsLog {
    /// Handshakes completed; the first is the control connection.
    pub handshakes: u32,
    /// Data connections that did a full handshake instead of resuming the control session.
    /// vsftpd with `require_ssl_reuse=YES` refuses those with `522`.
    pub data_not_resumed: u32,
    /// Protocol version of the control connection, for messages ("TLSv1_3").
    pub control_version: Option<String>,
    pub last_failure: Option<TlsFailure>,
}

/// A suppaftp TLS connector over tokio-rustls that records each handshake in a shared
/// [`TlsLog`]. suppaftp keeps the connector and uses it again for every data connection.
#[derive(Clone)]
pub(super) struct Connector {
    inner: TlsConnector,
    log: Arc<Mutex<TlsLog>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    pub(super) fn new(config: Arc<ClientConfig>) -> Self {
        Connector {
            inner: TlsConnector::from(config),
            log: Arc::default(),
        }
    }

    /// The shared log; a poisoned lock only means a panic elsewhere, the data is still usable.
    pub(super) fn log(&self) -> std::sync::MutexGuard<'_, TlsLog> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl AsyncTlsConnector for Connector {
    type Stream = AsyncRustlsStream;

    async fn connect(&self, domain: &str, stream: TcpStream) -> FtpResult<Self::Stream> {
        let server_name = ServerName::try_from(domain.to_owned()).map_err(|e| {
            let failure =
                TlsFailure::Certificate(format!("{domain:?} is not a valid TLS server name: {e}"));
            self.log().last_failure = Some(failure.clone());
            FtpError::SecureError(failure.to_string())
        })?;
        match self.inner.connect(server_name, stream).await {
            Ok(tls) => {
                let (_, conn) = tls.get_ref();
                let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
                let version = conn.protocol_version().map(|v| format!("{v:?}"));
                let mut log = self.log();
                log.handshakes += 1;
                if log.handshakes == 1 {
                    log.control_version = version;
                } else if !resumed {
                    log.data_not_resumed += 1;
                }
                tracing::trace!(handshake = log.handshakes, resumed, "FTPS handshake done");
                Ok(AsyncRustlsStream::from(tls))
            }
            Err(e) => {
                let failure = classify_handshake_error(&e);
                let message = failure.to_string();
                self.log().last_failure = Some(failure);
                Err(FtpError::SecureError(message))
            }
        }
    }
}

/// Sorts a failed handshake by the rustls error tokio-rustls wraps in the `io::Error`.
fn classify_handshake_error(e: &std::io::Error) -> TlsFailure {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        // Not a TLS protocol error: the connection broke during the handshake.
        return TlsFailure::Other(format!("connection failed during the TLS handshake: {e}"));
    };
    classify_rustls_error(tls)
}

pub(super) fn classify_rustls_error(e: &rustls::Error) -> TlsFailure {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(_) | E::NoCertificatesPresented | E::InvalidCertRevocationList(_) => {
            TlsFailure::Certificate(format!("server certificate rejected: {e}"))
        }
        E::PeerIncompatible(_)
        | E::AlertReceived(_)
        | E::PeerMisbehaved(_)
        | E::InappropriateHandshakeMessage { .. } => {
            TlsFailure::Incompatible(format!("TLS handshake failed: {e}"))
        }
        _ => TlsFailure::Other(format!("TLS handshake failed: {e}")),
    }
}
