//! One FTP/FTPS session (suppaftp + rustls): connect, TLS, login, `remote_dir`, binary mode, and
//! the staged-upload primitives over it: list (a bounded `NLST`), put (`STOR`, then a best-effort
//! `SITE CHMOD`), size (`SIZE`), rename (`RNFR`/`RNTO`) and remove (`DELE`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::classify::{self, Step, Verdict, classify_reply, reply_code};
use super::tls::{Connector, ServerKind, TlsFailure};
use super::{Ftp, FtpDestination, FtpTls, PassiveMode};
use crate::staged::{Leftovers, Payload, Stage};
use crate::{DeliverError, ErrorKind};

/// How long to wait for the server's reply after a data connection broke, to learn the reason
/// (e.g. `522` or `552`) instead of reporting a bare "connection reset".
const REASON_GRACE: Duration = Duration::from_secs(5);

/// Upload chunk: each chunk's write is bounded by the I/O timeout, so a stalled server is caught
/// without bounding the whole file by a fixed time.
const CHUNK: usize = 64 * 1024;

/// Bytes of an `NLST` reply we read at most, and of one line: a folder of ours lists a few
/// hundred bytes; a server streaming without end is cut off here instead of growing memory.
const MAX_LISTING_BYTES: u64 = 32 * 1024 * 1024;
const MAX_LISTING_LINE: u64 = 4096;

impl FtpDestination {
    /// Opens a session: TCP connect, TLS (explicit or implicit), login, `remote_dir`, binary mode.
    pub(super) async fn open(&self) -> Result<Session<'_>, DeliverError> {
        let connector = self
            .tls
            .as_ref()
            .map(|c| Connector::new(Arc::clone(c), self.tls_reuse));
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
        if let Some(c) = &connector {
            // The greeting names the software ("(vsFTPd 3.0.3)", "ProFTPD Server"): hints about
            // its TLS settings can then name the right one.
            c.log().server = ftp.get_welcome_msg().and_then(ServerKind::from_greeting);
        }
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
            broken: false,
            chmod: true,
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
    pub(super) fn ftp_error(
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
                let server = connector.and_then(|c| c.log().server);
                let reuse_refused = advice == classify::REUSE_ADVICE;
                let mut advice = if reuse_refused {
                    classify::reuse_advice(server)
                } else {
                    advice.to_owned()
                };
                if let Some(c) = connector
                    && step_uses_data(step)
                {
                    let log = c.log();
                    // Other servers refuse a non-resumed data session with a data-connection
                    // error (ProFTPD, FileZilla Server: 425) instead of vsftpd's 522.
                    if !reuse_refused
                        && log.data_not_resumed > 0
                        && matches!(code, 425 | 426 | 450 | 451)
                    {
                        advice = format!(
                            "{advice}; note: the TLS data connection did not resume the control session, so if the server requires session reuse: {}",
                            classify::reuse_advice(server)
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
                    Some(TlsFailure::Other(m)) => self.err(
                        ErrorKind::Retryable,
                        format!("{what}: {m}; sds-sync retries later{}", reuse_note(step, connector)),
                    ),
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
                message.push_str(&reuse_note(step, connector));
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

/// For a data connection that broke without a reply saying why ("Broken pipe", a cut
/// handshake): when a TLS data connection of this session did not resume the control session,
/// the likely reason and the server setting, as a note to append; else nothing.
fn reuse_note(step: Step, connector: Option<&Connector>) -> String {
    let Some(c) = connector else {
        return String::new();
    };
    let log = c.log();
    if !step_uses_data(step) || log.data_not_resumed == 0 {
        return String::new();
    }
    format!(
        "; note: a TLS data connection did not resume the control session, and servers that require \
         session reuse cut such connections: {}",
        classify::reuse_advice(log.server)
    )
}

/// One logged-in FTP session.
pub(super) struct Session<'a> {
    dest: &'a FtpDestination,
    ftp: Ftp,
    connector: Option<Connector>,
    io: Duration,
    /// Set once the connection failed (not a server reply): later steps fail at once instead of
    /// each waiting out `io_timeout_secs` on a dead socket.
    broken: bool,
    /// Whether to keep trying `SITE CHMOD` (off after the server refused it once).
    chmod: bool,
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

    /// Turns the outcome of one step (`None`: it timed out) into a [`DeliverError`],
    /// remembering a dead connection.
    fn judge<T>(
        &mut self,
        step: Step,
        what: &str,
        outcome: Option<Result<T, FtpError>>,
    ) -> Result<T, DeliverError> {
        match outcome {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => {
                if !matches!(e, FtpError::UnexpectedResponse(_)) {
                    self.broken = true;
                }
                Err(self.dest.ftp_error(step, what, &e, self.connector.as_ref()))
            }
            None => {
                self.broken = true;
                Err(self.dest.err(
                    ErrorKind::Retryable,
                    format!(
                        "{what}: no answer within {} s (io_timeout_secs); the server or the network stalled, sds-sync retries later",
                        self.dest.cfg.io_timeout_secs
                    ),
                ))
            }
        }
    }

    fn guard(&self, what: &str) -> Result<(), DeliverError> {
        if self.broken {
            return Err(self.dest.err(
                ErrorKind::Retryable,
                format!("{what}: skipped, the connection failed earlier; sds-sync retries later"),
            ));
        }
        Ok(())
    }

    /// Before a data connection: a TLS 1.3 session whose session tickets are used up could not
    /// open one that resumes the control session (see ftp/tls.rs), so log in again on a new
    /// control connection, which brings new tickets.
    async fn renew_for_tickets(&mut self) -> Result<(), DeliverError> {
        if !self.connector.as_ref().is_some_and(|c| c.out_of_tickets()) {
            return Ok(());
        }
        let mut fresh = self.dest.open().await?;
        fresh.chmod = self.chmod;
        let old = std::mem::replace(self, fresh);
        old.quit().await;
        tracing::debug!(
            destination = %self.dest.cfg.name,
            "FTPS: the TLS 1.3 session tickets for data connections were used up; logged in again for new ones"
        );
        Ok(())
    }

    /// Streams `data` to `remote` (STOR).
    async fn upload(&mut self, data: &mut Payload, remote: &str) -> Result<(), DeliverError> {
        self.renew_for_tickets().await?;
        let dest = self.dest;
        let what = format!("upload {remote:?}");
        let opened = tokio::time::timeout(self.io, self.ftp.put_with_stream(remote))
            .await
            .ok();
        let mut stream = self.judge(Step::Upload, &what, opened)?;
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        let failure: Option<DeliverError> = loop {
            let n = match data.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) => {
                    // Our side failed: end the transfer cleanly so the session stays usable for
                    // removing the partial file.
                    let ended = tokio::time::timeout(REASON_GRACE, stream.finish()).await;
                    if !matches!(ended, Ok(Ok(()) | Err(FtpError::UnexpectedResponse(_)))) {
                        self.broken = true;
                    }
                    return Err(dest.err(ErrorKind::Retryable, format!("{what}: {e}")));
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
                let finished = tokio::time::timeout(self.io, stream.finish()).await.ok();
                self.judge(Step::Upload, &what, finished)
            }
            Some(err) => {
                // The server often says why it cut the data connection (522 session reuse,
                // 552 disk full, 426): its reply makes a better error than "broken pipe".
                let reason = tokio::time::timeout(REASON_GRACE, stream.finish()).await;
                if let Ok(Err(e @ FtpError::UnexpectedResponse(_))) = reason {
                    return Err(dest.ftp_error(Step::Upload, &what, &e, self.connector.as_ref()));
                }
                self.broken = true;
                let mut err = err;
                err.message
                    .push_str(&reuse_note(Step::Upload, self.connector.as_ref()));
                Err(err)
            }
        }
    }

    /// `SITE CHMOD` to `file_mode`, best effort: many servers (and vsftpd with
    /// `chmod_enable=NO`) refuse it, and then the file keeps the server's default permissions.
    async fn chmod(&mut self, remote: &str) -> Result<(), DeliverError> {
        if !self.chmod {
            return Ok(());
        }
        let mode = self.dest.cfg.file_mode;
        let command = format!("CHMOD {:03o} {remote}", mode.bits());
        let outcome = tokio::time::timeout(self.io, self.ftp.site(command))
            .await
            .ok();
        match outcome {
            Some(Ok(_)) => Ok(()),
            Some(Err(FtpError::UnexpectedResponse(resp))) => {
                self.chmod = false;
                tracing::info!(
                    destination = %self.dest.cfg.name,
                    reply = %reply_text(&resp.body),
                    file_mode = %mode,
                    "the FTP server refused SITE CHMOD; uploaded files keep the server's default permissions"
                );
                Ok(())
            }
            other => self
                .judge(
                    Step::Upload,
                    &format!("set file_mode on {remote:?} (SITE CHMOD)"),
                    other,
                )
                .map(|_| ()),
        }
    }

    /// Polite `QUIT`; the work is done, so a failure here changes nothing.
    pub(super) async fn quit(mut self) {
        if !self.broken {
            let _ =
                tokio::time::timeout(self.io.min(Duration::from_secs(5)), self.ftp.quit()).await;
        }
    }
}

impl Stage for Session<'_> {
    fn destination(&self) -> &str {
        &self.dest.cfg.name
    }

    fn error(&self, kind: ErrorKind, message: String) -> DeliverError {
        self.dest.err(kind, message)
    }

    /// `NLST` read line by line under byte limits ([`MAX_LISTING_BYTES`], [`MAX_LISTING_LINE`]):
    /// suppaftp's own listing keeps the whole reply in memory, which a hostile server can make
    /// as large as it likes.
    async fn list_ours(&mut self) -> Result<Vec<String>, DeliverError> {
        let what = "list remote_dir to find leftover temporary files";
        self.guard(what)?;
        self.renew_for_tickets().await?;
        let opened = tokio::time::timeout(
            self.io,
            self.ftp
                .custom_data_command("NLST", &[Status::AboutToSend, Status::AlreadyOpen]),
        )
        .await
        .ok();
        let stream = match opened {
            // Some servers answer NLST of an empty folder with 450/550 "no files".
            Some(Err(FtpError::UnexpectedResponse(resp)))
                if matches!(reply_code(&resp.body), Some(450 | 550)) =>
            {
                return Ok(Vec::new());
            }
            other => self.judge(Step::List, what, other)?.1,
        };
        let mut reader = BufReader::new(stream);
        let mut found = Leftovers::default();
        let mut total = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let mut limited = (&mut reader).take(MAX_LISTING_LINE + 1);
            let read = limited.read_until(b'\n', &mut line);
            let n = match tokio::time::timeout(self.io, read).await {
                Ok(Ok(n)) => n,
                // Some servers (pyftpdlib) close a TLS data connection without a close_notify,
                // so its end cannot be told from a cut. The listing only finds our own leftover
                // temporary files: one it missed is removed by a later run, and the server's
                // reply on the control connection still says whether the transfer completed.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    tracing::info!(
                        destination = %self.dest.cfg.name,
                        listed_bytes = total,
                        "the FTP server ended the listing of remote_dir without a TLS close_notify; \
                         taking it as complete (a leftover temporary file it did not show is removed by a later run)"
                    );
                    break;
                }
                Ok(Err(e)) => {
                    self.broken = true;
                    return Err(self.dest.err(
                        ErrorKind::Retryable,
                        format!("{what}: the data connection broke: {e}; sds-sync retries later"),
                    ));
                }
                Err(_) => return self.judge(Step::List, what, None),
            };
            if n == 0 {
                break;
            }
            total += n as u64;
            let too_much = if line.len() as u64 > MAX_LISTING_LINE {
                Some(format!("has a line longer than {MAX_LISTING_LINE} bytes"))
            } else if total > MAX_LISTING_BYTES {
                Some(format!("is larger than {} MiB", MAX_LISTING_BYTES >> 20))
            } else {
                None
            };
            if let Some(why) = too_much {
                self.broken = true;
                return Err(self.dest.err(
                    ErrorKind::Permanent,
                    format!(
                        "{what}: the listing {why}; nothing more is read from it. The server is broken or hostile, \
                         or remote_dir needs tidying: give this destination a folder of its own"
                    ),
                ));
            }
            let text = String::from_utf8_lossy(&line);
            let name = text.trim_end_matches(['\r', '\n']);
            if !name.is_empty() {
                found
                    .offer(name)
                    .map_err(|m| self.dest.err(ErrorKind::Permanent, format!("{what}: {m}")))?;
            }
        }
        let finished = tokio::time::timeout(self.io, reader.into_inner().finish())
            .await
            .ok();
        self.judge(Step::List, what, finished)?;
        Ok(found.into_names())
    }

    async fn put(&mut self, name: &str, data: &mut Payload) -> Result<(), DeliverError> {
        self.guard(&format!("upload {name:?}"))?;
        self.upload(data, name).await?;
        self.chmod(name).await
    }

    async fn size(&mut self, name: &str) -> Result<Option<u64>, DeliverError> {
        let what = format!("check the size of {name:?} (SIZE)");
        self.guard(&what)?;
        let outcome = tokio::time::timeout(self.io, self.ftp.size(name))
            .await
            .ok();
        match outcome {
            // Servers without SIZE (500/502/504): the 226 "transfer complete" is all we get.
            Some(Err(FtpError::UnexpectedResponse(resp)))
                if matches!(reply_code(&resp.body), Some(500 | 502 | 504)) =>
            {
                Ok(None)
            }
            other => self.judge(Step::Size, &what, other).map(|n| Some(n as u64)),
        }
    }

    /// `RNFR`/`RNTO` over the final name. Servers that refuse to replace an existing file get it
    /// deleted first (a short window without the file, but never a partial one).
    async fn rename(&mut self, from: &str, to: &str) -> Result<(), DeliverError> {
        let what = format!("rename {from:?} to {to:?}");
        self.guard(&what)?;
        let first = match tokio::time::timeout(self.io, self.ftp.rename(from, to))
            .await
            .ok()
        {
            Some(Err(e @ FtpError::UnexpectedResponse(_))) => e,
            other => return self.judge(Step::Rename, &what, other),
        };
        let refused = matches!(&first, FtpError::UnexpectedResponse(r) if matches!(reply_code(&r.body), Some(550 | 553)));
        if !refused {
            return self.judge(Step::Rename, &what, Some(Err(first)));
        }
        tracing::debug!(destination = %self.dest.cfg.name, file = %to, "rename refused; deleting the old file and renaming again");
        let _ = tokio::time::timeout(self.io, self.ftp.rm(to)).await;
        let again = tokio::time::timeout(self.io, self.ftp.rename(from, to))
            .await
            .ok();
        self.judge(Step::Rename, &what, again)
    }

    async fn remove(&mut self, name: &str) -> Result<(), DeliverError> {
        let what = format!("delete temporary file {name:?}");
        self.guard(&what)?;
        let outcome = tokio::time::timeout(self.io, self.ftp.rm(name)).await.ok();
        self.judge(Step::Delete, &what, outcome)
    }
}
