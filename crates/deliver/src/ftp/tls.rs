//! TLS for FTPS: a connector that remembers what the handshakes did, over one rustls client config
//! per destination ([`crate::tls::client_config`]) shared by the control connection and every data
//! connection.
//!
//! Why one shared config: servers such as vsftpd (`require_ssl_reuse=YES`, its default) and
//! ProFTPD (unless `TLSOptions NoSessionReuseRequired`) accept a TLS data connection only when it
//! *resumes* the control connection's TLS session. rustls keeps its session cache inside the
//! `ClientConfig`, keyed by server name, so the data connections can resume the control session
//! only if they go through the same config with the same name.
//!
//! Why the ticket count: with TLS 1.3 each resumption uses up one session ticket (rustls hands
//! each out once, and offers no way to use one twice), and tickets come only when the server
//! sends them: two after the control connection's handshake (OpenSSL's default), one after a
//! resumed data connection the server *writes* to (a listing), none after an upload. So the
//! fourth data connection of a session found no ticket left, did a full handshake, and such
//! servers refused it (`425`). The [`TicketStore`] counts the tickets left; when none is, the
//! session logs in again on a new control connection, which brings new tickets
//! (`Session::renew_for_tickets` in session.rs): any number of data connections work.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::{ClientConfig, HandshakeKind, NamedGroup};
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
    /// The FTP server's software, from its greeting, for hints that name its settings.
    pub server: Option<ServerKind>,
}

/// FTP server software whose TLS session-reuse setting a hint can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerKind {
    Vsftpd,
    Proftpd,
    FileZilla,
    PureFtpd,
}

impl ServerKind {
    /// Recognises the server from its `220` greeting (stock greetings name the software).
    pub(super) fn from_greeting(greeting: &str) -> Option<Self> {
        let g = greeting.to_ascii_lowercase();
        if g.contains("vsftpd") {
            Some(ServerKind::Vsftpd)
        } else if g.contains("proftpd") {
            Some(ServerKind::Proftpd)
        } else if g.contains("filezilla") {
            Some(ServerKind::FileZilla)
        } else if g.contains("pure-ftpd") {
            Some(ServerKind::PureFtpd)
        } else {
            None
        }
    }
}

/// How many TLS sessions one FTP session keeps. One control connection and its data connections
/// talk to one server; rustls keeps up to 8 TLS 1.3 tickets a server.
const SESSION_CACHE_SIZE: usize = 8;

/// rustls' memory cache, counting the TLS 1.3 tickets it holds (in minus out). rustls drops the
/// oldest beyond 8 a server, more than a session ever holds here (two or three).
#[derive(Debug)]
struct TicketStore {
    inner: ClientSessionMemoryCache,
    tickets: AtomicI64,
    /// Tickets received in all: a server that sends none is not helped by a new login.
    received: AtomicI64,
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }
    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }
    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value)
    }
    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }
    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }
    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(server_name, value);
        self.tickets.fetch_add(1, Ordering::AcqRel);
        self.received.fetch_add(1, Ordering::AcqRel);
    }
    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let ticket = self.inner.take_tls13_ticket(server_name);
        if ticket.is_some() {
            self.tickets.fetch_sub(1, Ordering::AcqRel);
        }
        ticket
    }
}

/// A suppaftp TLS connector over tokio-rustls that records each handshake in a shared
/// [`TlsLog`]. suppaftp keeps the connector and uses it again for every data connection.
#[derive(Clone)]
pub(super) struct Connector {
    inner: TlsConnector,
    log: Arc<Mutex<TlsLog>>,
    /// None when the destination's config disables resumption (tests of the refusal path).
    tickets: Option<Arc<TicketStore>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for one FTP session: the destination's config with a session cache of its
    /// own, so every data connection resumes this session's control connection (and not a
    /// ticket left over from an earlier session).
    pub(super) fn new(config: Arc<ClientConfig>, resume: bool) -> Self {
        let (config, tickets) = if resume {
            let store = Arc::new(TicketStore {
                inner: ClientSessionMemoryCache::new(SESSION_CACHE_SIZE),
                tickets: AtomicI64::new(0),
                received: AtomicI64::new(0),
            });
            let mut own = (*config).clone();
            own.resumption = Resumption::store(store.clone() as Arc<dyn ClientSessionStore>);
            (Arc::new(own), Some(store))
        } else {
            (config, None)
        };
        Connector {
            inner: TlsConnector::from(config),
            log: Arc::default(),
            tickets,
        }
    }

    /// Whether the next TLS data connection would find no session ticket to resume the control
    /// session with: a TLS 1.3 session that resumes, whose server sends tickets, and whose
    /// tickets are used up.
    pub(super) fn out_of_tickets(&self) -> bool {
        let Some(store) = &self.tickets else {
            return false;
        };
        self.log().control_version.as_deref() == Some("TLSv1_3")
            && store.received.load(Ordering::Acquire) > 0
            && store.tickets.load(Ordering::Acquire) <= 0
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
