//! One SMTP session (lettre's `AsyncSmtpConnection`) over a connection whose reads are bounded.
//!
//! lettre checks the length of a reply line only after reading the whole line, so a server that
//! sends a greeting without a line break makes it buffer without limit (1.5 GB in the security
//! review). We therefore hand lettre our own stream, [`Bounded`], which fails once the server has
//! sent [`MAX_SESSION_READ_BYTES`] in one session; a real session reads a few kilobytes. For
//! STARTTLS lettre layers TLS on top of it (the budget counts encrypted bytes); for implicit TLS
//! we do the handshake ourselves on top of the TCP connection and bound the decrypted stream.

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Bytes a server may send in one session: greeting, EHLO, STARTTLS and its handshake (a long
/// certificate chain is ~20 KB), AUTH, one reply per recipient and the final reply fit many
/// times over.
pub(super) const MAX_SESSION_READ_BYTES: u64 = 1024 * 1024;

/// Inside the `io::Error` a bounded stream returns once the server sent too much.
#[derive(Debug, thiserror::Error)]
#[error(
    "the SMTP server sent more than {} KiB in one session without ending its replies",
    MAX_SESSION_READ_BYTES / 1024
)]
pub(super) struct ReadLimitExceeded;

/// How the session is protected, with what it needs.
pub(super) enum Security {
    None,
    Starttls(TlsParameters),
    Implicit(Arc<ClientConfig>),
}

/// Why a session could not be opened.
pub(super) enum OpenError {
    /// The TCP connection failed.
    Connect(io::Error),
    /// Not connected within `connect_timeout_secs`.
    ConnectTimeout,
    /// Our implicit-TLS handshake failed (the `io::Error` wraps the rustls error).
    Tls(io::Error),
    /// An SMTP step failed (greeting, EHLO, STARTTLS, AUTH).
    Smtp(lettre::transport::smtp::Error),
}

/// What a session needs to know.
pub(super) struct Params<'a> {
    pub host: &'a str,
    pub port: u16,
    pub connect_timeout: Duration,
    pub security: &'a Security,
    pub credentials: Option<&'a Credentials>,
    /// The AUTH mechanisms to try, in order (PLAIN/LOGIN, or XOAUTH2 with a token).
    pub mechanisms: &'a [Mechanism],
}

/// Connects, secures and logs in.
pub(super) async fn open(p: Params<'_>) -> Result<AsyncSmtpConnection, OpenError> {
    let tcp = tokio::time::timeout(p.connect_timeout, TcpStream::connect((p.host, p.port)))
        .await
        .map_err(|_| OpenError::ConnectTimeout)?
        .map_err(OpenError::Connect)?;
    // Small command/reply exchanges: don't let Nagle delay them.
    let _ = tcp.set_nodelay(true);
    let hello = ClientId::default();
    let stream: Box<dyn AsyncTokioStream> = match p.security {
        Security::Implicit(config) => {
            let name = ServerName::try_from(p.host.to_owned())
                .map_err(|e| OpenError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            let tls = TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(OpenError::Tls)?;
            Box::new(Bounded::new(tls))
        }
        Security::None | Security::Starttls(_) => Box::new(Bounded::new(tcp)),
    };
    let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &hello)
        .await
        .map_err(OpenError::Smtp)?;
    if let Security::Starttls(params) = p.security {
        conn.starttls(params.clone(), &hello)
            .await
            .map_err(OpenError::Smtp)?;
    }
    if let Some(credentials) = p.credentials {
        conn.auth(p.mechanisms, credentials)
            .await
            .map_err(OpenError::Smtp)?;
    }
    Ok(conn)
}

/// Whether `e` (or an error it wraps) is a [`ReadLimitExceeded`].
pub(super) fn is_read_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<ReadLimitExceeded>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<ReadLimitExceeded>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The stream types a session runs over, and their peer address.
pub(super) trait Peer {
    fn peer(&self) -> io::Result<SocketAddr>;
}

impl Peer for TcpStream {
    fn peer(&self) -> io::Result<SocketAddr> {
        self.peer_addr()
    }
}

impl Peer for TlsStream<TcpStream> {
    fn peer(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.peer_addr()
    }
}

/// A stream that fails reads once [`MAX_SESSION_READ_BYTES`] have come in (give or take the one
/// read buffer of the reader above it).
pub(super) struct Bounded<S> {
    inner: S,
    left: u64,
}

impl<S> Bounded<S> {
    pub(super) fn new(inner: S) -> Self {
        Self::with_limit(inner, MAX_SESSION_READ_BYTES)
    }

    fn with_limit(inner: S, limit: u64) -> Self {
        Bounded { inner, left: limit }
    }
}

impl<S> fmt::Debug for Bounded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 && buf.remaining() > 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ReadLimitExceeded,
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let n = (buf.filled().len() - before) as u64;
            self.left = self.left.saturating_sub(n);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> AsyncTokioStream for Bounded<S>
where
    S: AsyncRead + AsyncWrite + Peer + Send + Sync + Unpin,
{
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bounded_stream_fails_past_its_limit_and_names_why() {
        let data: &[u8] = &[b'a'; 100];
        let mut s = Bounded::with_limit(data, 64);
        let mut out = Vec::new();
        let err = s.read_to_end(&mut out).await.unwrap_err();
        // One read of the reader's buffer may cross the limit; nothing after it is read.
        assert!(out.len() >= 64 && out.len() <= 100, "{}", out.len());
        assert!(is_read_limit(&err), "{err}");
        assert!(err.to_string().contains("KiB"), "{err}");
        // A short exchange within the limit reads normally to its end.
        let mut s = Bounded::with_limit(&data[..10], 64);
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        assert_eq!(out.len(), 10);
        assert!(!is_read_limit(&io::Error::other("x")));
    }
}
