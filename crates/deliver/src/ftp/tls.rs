//! TLS for FTPS: one rustls client config per destination, shared by the control connection and
//! every data connection, and a connector that remembers what the handshakes did.
//!
//! Why one shared config: servers such as vsftpd (`require_ssl_reuse=YES`, its default) accept a
//! TLS data connection only when it *resumes* the control connection's TLS session. rustls keeps
//! its session cache inside the `ClientConfig`, keyed by server name, so the data connections can
//! resume the control session only if they go through the same config with the same name.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::Resumption;
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use suppaftp::tokio::{AsyncRustlsStream, AsyncTlsConnector};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::{FtpError, FtpResult};
use tokio::net::TcpStream;

/// How many TLS sessions the per-destination cache holds. One destination talks to one server,
/// so a handful is plenty; TLS 1.3 tickets are single-use, and each data connection takes one.
const SESSION_CACHE_SIZE: usize = 64;

static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS13_AND_12: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds the rustls config: Mozilla's roots (webpki-roots) plus the PEM certificates of
/// `ca_file`, the ring provider (not the process default, so a test binary that links two
/// providers cannot make this ambiguous), TLS 1.2 and 1.3, and an in-memory session cache.
///
/// `ca_file_key` is the config key named in errors.
/// `tls12_only` leaves TLS 1.3 out: some FTPS servers accept a resumed TLS 1.2 session (by
/// session id) on data connections but do not issue or honour TLS 1.3 tickets. `resume = false`
/// disables session resumption altogether (only for tests of the refusal path).
pub(super) fn client_config(
    ca_file: Option<&Path>,
    ca_file_key: &str,
    tls12_only: bool,
    resume: bool,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{ca_file_key} {}: cannot read it: {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "{ca_file_key} {}: not a valid PEM certificate file: {e}",
                    path.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "{ca_file_key} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) found in it",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "{ca_file_key} {}: a certificate in it is not usable as a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(if tls12_only { TLS12_ONLY } else { TLS13_AND_12 })
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The default cache already works this way; spelled out because FTPS data connections
    // depend on it (see the module comment).
    config.resumption = if resume {
        Resumption::in_memory_sessions(SESSION_CACHE_SIZE)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

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
