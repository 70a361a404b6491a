//! One SFTP session (russh + russh-sftp): connect, verify the host key, log in, start SFTP, and
//! the staged-upload primitives over it ([`Remote`]): list, put (pipelined writes, `fsync@openssh.com`
//! when offered), size (`stat`), rename (`posix-rename@openssh.com` when offered, else remove then
//! rename) and remove.

use super::classify::{self, Context};
use super::hostkey::{self, HostKeyPolicy, HostKeyProblem};
use super::{DEFAULT_WRITE_LEN, MAX_WRITE_LEN, SftpDestination};
use crate::staged::{Leftovers, Payload, Stage};
use crate::{DeliverError, ErrorKind};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use russh::client::{self, AuthResult};
use russh::keys::ssh_key::{Algorithm, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use secrecy::ExposeSecret;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a polite disconnect may take before we just drop the connection.
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSYNC: &str = "fsync@openssh.com";
const LIMITS: &str = "limits@openssh.com";

impl SftpDestination {
    pub(super) fn permanent(&self, message: impl fmt::Display) -> DeliverError {
        self.error(ErrorKind::Permanent, message)
    }

    pub(super) fn retryable(&self, message: impl fmt::Display) -> DeliverError {
        self.error(ErrorKind::Retryable, message)
    }

    /// Classifies an SFTP request failure. `what` says what we were doing, e.g. "cannot create
    /// /upload/x".
    pub(super) fn sftp_error(&self, what: &str, e: SftpError) -> DeliverError {
        let ctx = Context {
            remote_dir: &self.cfg.remote_dir,
            username: &self.cfg.username,
            request_timeout_secs: self.cfg.request_timeout_secs,
        };
        let (kind, message) = classify::classify(what, &e, &ctx);
        self.error(kind, message)
    }

    pub(super) fn error(&self, kind: ErrorKind, message: impl fmt::Display) -> DeliverError {
        DeliverError {
            destination: self.cfg.name.clone(),
            kind,
            message: format!("sftp {}: {message}", self.addr),
        }
    }

    pub(super) fn remote_path(&self, file_name: &str) -> String {
        let dir = self.cfg.remote_dir.trim_end_matches('/');
        if dir.is_empty() && self.cfg.remote_dir.starts_with('/') {
            format!("/{file_name}")
        } else {
            format!("{dir}/{file_name}")
        }
    }

    /// TCP connect, SSH handshake with host key verification, login, SFTP start; all within
    /// `connect_timeout_secs`.
    pub(super) async fn connect(&self) -> Result<Connection, DeliverError> {
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
        // A pinned fingerprint may belong to any of the server's host keys, and each handshake
        // shows one: on a mismatch, shake hands again asking for the types not seen yet.
        let mut refused: Vec<PublicKey> = Vec::new();
        let mut ssh = loop {
            match self.handshake(&refused).await? {
                Handshake::Done(ssh) => break ssh,
                Handshake::PinMismatch(key) => {
                    refused.push(key);
                    if self.ssh_config(&refused).preferred.key.is_empty() {
                        return Err(self.pin_mismatch(refused, true));
                    }
                }
                Handshake::NoOtherKeyType => return Err(self.pin_mismatch(refused, true)),
            }
        };
        if !refused.is_empty() {
            tracing::debug!(
                destination = %self.cfg.name,
                handshakes = refused.len() + 1,
                "pinned host key found after asking for other key types"
            );
        }

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

    /// TCP connect and one SSH handshake, asking for host key types other than those of
    /// `refused`.
    async fn handshake(&self, refused: &[PublicKey]) -> Result<Handshake, DeliverError> {
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
        let ssh_config = Arc::new(self.ssh_config(refused));
        let connected = client::connect_stream(ssh_config, stream, handler).await;
        match connected {
            Ok(ssh) => Ok(Handshake::Done(ssh)),
            Err(e) => {
                let problem = problem.lock().map(|mut p| p.take()).unwrap_or(None);
                match problem {
                    Some(HostKeyProblem::FingerprintMismatch { mut offered, .. })
                        if !offered.is_empty() =>
                    {
                        return Ok(Handshake::PinMismatch(offered.remove(0)));
                    }
                    Some(problem) => {
                        return Err(self.permanent(problem.explain(&self.cfg.host, self.cfg.port)));
                    }
                    None => {}
                }
                Err(match e {
                    // The server has no host key of the types not tried yet.
                    russh::Error::NoCommonAlgo {
                        kind: russh::AlgorithmKind::Key,
                        ..
                    } if !refused.is_empty() => return Ok(Handshake::NoOtherKeyType),
                    russh::Error::NoCommonAlgo { kind, ours, theirs } => {
                        let sha1_only = theirs.iter().all(|a| a == "ssh-rsa" || a == "ssh-dss");
                        let hint = if sha1_only && matches!(kind, russh::AlgorithmKind::Key) {
                            "; the server signs its host key with SHA-1 only (ssh-rsa), which sds-sync refuses: ask its \
                             administrator to allow rsa-sha2-256/rsa-sha2-512 (OpenSSH 7.2 and later have them) or to add \
                             an ed25519 host key"
                        } else {
                            ""
                        };
                        self.permanent(format_args!(
                            "SSH handshake failed: no common {kind:?} algorithm (we offer {ours:?}, the server offers {theirs:?}){hint}"
                        ))
                    }
                    russh::Error::UnknownKey => self.permanent("the server's host key was refused"),
                    other => {
                        self.retryable(format_args!("SSH handshake failed ({other}); will retry"))
                    }
                })
            }
        }
    }

    /// No host key the server showed matches the pinned fingerprint.
    fn pin_mismatch(&self, offered: Vec<PublicKey>, complete: bool) -> DeliverError {
        let pinned = match self.policy.as_ref() {
            HostKeyPolicy::Fingerprint(_) => {
                self.cfg.host_key_fingerprint.clone().unwrap_or_default()
            }
            HostKeyPolicy::KnownHosts(_) => String::new(),
        };
        let problem = HostKeyProblem::FingerprintMismatch {
            offered,
            pinned: hostkey::parse_fingerprint(&pinned).unwrap_or(pinned),
            complete,
        };
        self.permanent(problem.explain(&self.cfg.host, self.cfg.port))
    }

    pub(super) fn ssh_config(&self, refused: &[PublicKey]) -> client::Config {
        let mut preferred = russh::Preferred::default();
        // Plain `ssh-rsa` host key signatures use SHA-1, which is broken for signatures; RSA host
        // keys stay usable through rsa-sha2-256/512, which every OpenSSH since 7.2 offers.
        let ours: Vec<Algorithm> = preferred
            .key
            .iter()
            .filter(|a| !matches!(a, Algorithm::Rsa { hash: None }))
            .cloned()
            .collect();
        // Ask first for host key types the known_hosts file has for this host (or that matched
        // the pin before), as OpenSSH does, so a server with several host keys presents one we
        // can check; leave out the types whose key already failed to match a pin.
        preferred.key = self
            .policy
            .key_order(&self.cfg.host, self.cfg.port, &ours, refused)
            .into();
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
        let mut kbd_note = String::new();
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
            // Servers that take passwords only through PAM (OpenSSH `PasswordAuthentication no`
            // with `KbdInteractiveAuthentication yes`) refuse the password method and list
            // keyboard-interactive. When the password method itself is still on the list, the
            // password was wrong: asking again through another method would only add a failure.
            let accepts = |m: &str| {
                accepted_by_server
                    .as_deref()
                    .is_some_and(|list| list.split(',').any(|x| x == m))
            };
            if accepts("keyboard-interactive") && !accepts("password") {
                match self.keyboard_interactive(ssh, password).await? {
                    Ok(()) => return Ok(()),
                    Err((note_text, remaining)) => {
                        kbd_note = note_text;
                        if let Some(r) = remaining {
                            accepted_by_server = Some(r);
                        }
                    }
                }
                tried.push("keyboard-interactive");
            }
        }
        Err(self.permanent(format_args!(
            "authentication failed for user {:?} (tried {}; the server accepts {}){kbd_note}; check username, \
             private_key_file (its public key must be in the user's authorized_keys) or the password",
            self.cfg.username,
            tried.join(" and "),
            accepted_by_server.unwrap_or_else(|| "unknown methods".into())
        )))
    }

    /// Keyboard-interactive login that answers the server's password prompt with the configured
    /// password: one prompt that does not echo (PAM's "Password: "), at most once. Anything else
    /// (a one-time code, several prompts) is beyond an unattended client, and is reported. The
    /// inner error carries a note for the message and the server's remaining methods.
    async fn keyboard_interactive(
        &self,
        ssh: &mut client::Handle<ClientHandler>,
        password: &secrecy::SecretString,
    ) -> Result<Result<(), (String, Option<String>)>, DeliverError> {
        use russh::client::KeyboardInteractiveAuthResponse as Reply;
        let net = |e: russh::Error| {
            self.retryable(format_args!(
                "connection lost during login ({e}); will retry"
            ))
        };
        let mut reply = ssh
            .authenticate_keyboard_interactive_start(self.cfg.username.as_str(), None)
            .await
            .map_err(net)?;
        let mut answered = false;
        // PAM conversations are short; a server that keeps asking is not going to accept.
        for _ in 0..8 {
            match reply {
                Reply::Success => return Ok(Ok(())),
                Reply::Failure {
                    remaining_methods, ..
                } => {
                    let names: Vec<&str> = remaining_methods.iter().map(<&str>::from).collect();
                    return Ok(Err((String::new(), Some(names.join(",")))));
                }
                Reply::InfoRequest { prompts, .. } => {
                    let responses = match prompts.as_slice() {
                        // An informational round (banner, "password expires soon").
                        [] => Vec::new(),
                        [one] if !one.echo && !answered => {
                            answered = true;
                            vec![password.expose_secret().to_owned()]
                        }
                        _ => {
                            // Prompt texts are the server's questions, never secrets.
                            let asked: Vec<String> = prompts
                                .iter()
                                .map(|p| format!("{:?}", p.prompt.trim()))
                                .collect();
                            return Ok(Err((
                                format!(
                                    "; keyboard-interactive asked for more than one password ({}): a second factor \
                                     cannot be answered unattended, so ask the server's administrator to exempt this \
                                     account or to allow a key (private_key_file)",
                                    asked.join(", ")
                                ),
                                None,
                            )));
                        }
                    };
                    reply = ssh
                        .authenticate_keyboard_interactive_respond(responses)
                        .await
                        .map_err(net)?;
                }
            }
        }
        Ok(Err((
            "; keyboard-interactive did not end after several rounds".into(),
            None,
        )))
    }

    /// `remote_dir` must exist and be a folder; we never create it (a typo would otherwise send
    /// files where nobody picks them up).
    pub(super) async fn check_remote_dir(&self, conn: &Connection) -> Result<(), DeliverError> {
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
}

pub(super) struct Connection {
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

    /// Creates `path` for writing; fails if it exists (temporary names are always fresh). The
    /// mode is requested at creation, so the file never exists with looser permissions.
    async fn create(&self, path: &str, mode: u32) -> Result<String, SftpError> {
        let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
        let attrs = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        let open = self.sftp.open(path, flags, attrs);
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
    pub(super) async fn shutdown(self) {
        let _ = self.sftp.close_session();
        let goodbye = self.ssh.disconnect(Disconnect::ByApplication, "", "en");
        let _ = tokio::time::timeout(DISCONNECT_GRACE, goodbye).await;
    }
}

/// How one SSH handshake ended, when not with an error to report.
enum Handshake {
    Done(client::Handle<ClientHandler>),
    /// The server showed this key, which does not have the pinned fingerprint.
    PinMismatch(PublicKey),
    /// After pin mismatches: the server has no host key of another type.
    NoOtherKeyType,
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

/// The staged-upload primitives over one session; names are bare names in `remote_dir`.
pub(super) struct Remote<'a> {
    pub dest: &'a SftpDestination,
    pub conn: &'a Connection,
}

impl Stage for Remote<'_> {
    fn destination(&self) -> &str {
        &self.dest.cfg.name
    }

    fn error(&self, kind: ErrorKind, message: String) -> DeliverError {
        self.dest.error(kind, message)
    }

    async fn list_ours(&mut self) -> Result<Vec<String>, DeliverError> {
        let dir = self.dest.cfg.remote_dir.as_str();
        let what = format!("cannot list remote_dir {dir:?}");
        let handle = self
            .conn
            .opendir(dir)
            .await
            .map_err(|e| self.dest.sftp_error(&what, e))?;
        // Each reply is one packet (russh-sftp caps packets at 256 KiB); Leftovers caps how many
        // entries we look at and keep, so a server that never says EOF cannot grow memory.
        let mut found = Leftovers::default();
        let listed = loop {
            match self.conn.readdir(handle.as_str()).await {
                Ok(names) => {
                    if let Err(m) = names.iter().try_for_each(|n| found.offer(n)) {
                        break Err(self.dest.permanent(format_args!("{what}: {m}")));
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(self.dest.sftp_error(&what, e)),
            }
        };
        let _ = self.conn.close(&handle).await;
        listed?;
        Ok(found.into_names())
    }

    async fn put(&mut self, name: &str, data: &mut Payload) -> Result<(), DeliverError> {
        let conn = self.conn;
        let remote = self.dest.remote_path(name);
        let what = format!("cannot write {remote}");
        let handle = conn
            .create(&remote, self.dest.cfg.file_mode.bits())
            .await
            .map_err(|e| self.dest.sftp_error(&format!("cannot create {remote}"), e))?;

        let written: Result<(), DeliverError> = async {
            let mut offset = 0u64;
            let mut eof = false;
            let mut pending = FuturesUnordered::new();
            loop {
                while !eof && pending.len() < conn.in_flight {
                    let chunk = data.read_chunk(conn.write_len).await.map_err(|e| {
                        self.dest
                            .retryable(format_args!("cannot read the file for {remote}: {e}"))
                    })?;
                    if chunk.is_empty() {
                        eof = true;
                        break;
                    }
                    let len = chunk.len() as u64;
                    pending.push(conn.write(handle.as_str(), offset, chunk));
                    offset += len;
                }
                match pending.next().await {
                    Some(result) => result.map_err(|e| self.dest.sftp_error(&what, e))?,
                    None => break,
                }
            }
            if conn.fsync {
                // Durable on the server before we rename it into place and report success.
                let request = ssh_string(handle.as_bytes());
                conn.extended(FSYNC, request)
                    .await
                    .map_err(|e| self.dest.sftp_error(&format!("cannot fsync {remote}"), e))?;
            }
            Ok(())
        }
        .await;
        // Close even after a failure, so the server releases the handle; a close error matters
        // only when everything else worked (some servers report write errors on close).
        let closed = conn.close(handle.as_str()).await;
        written?;
        closed.map_err(|e| self.dest.sftp_error(&format!("cannot close {remote}"), e))
    }

    async fn size(&mut self, name: &str) -> Result<Option<u64>, DeliverError> {
        let remote = self.dest.remote_path(name);
        let attrs = self
            .conn
            .stat(&remote)
            .await
            .map_err(|e| self.dest.sftp_error(&format!("cannot check {remote}"), e))?;
        Ok(attrs.size)
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), DeliverError> {
        let (from, to) = (self.dest.remote_path(from), self.dest.remote_path(to));
        let what = format!("cannot rename {from} to {to}");
        if self.conn.posix_rename {
            let mut request = ssh_string(from.as_bytes());
            request.extend(ssh_string(to.as_bytes()));
            return self
                .conn
                .extended(POSIX_RENAME, request)
                .await
                .map_err(|e| self.dest.sftp_error(&what, e));
        }
        // SFTPv3 rename fails when the target exists. Between the remove and the rename the final
        // name is briefly absent, never partial.
        match self.conn.remove(&to).await {
            Ok(()) => {}
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
            Err(e) => return Err(self.dest.sftp_error(&format!("cannot replace {to}"), e)),
        }
        self.conn
            .rename(&from, &to)
            .await
            .map_err(|e| self.dest.sftp_error(&what, e))
    }

    async fn remove(&mut self, name: &str) -> Result<(), DeliverError> {
        let remote = self.dest.remote_path(name);
        match self.conn.remove(&remote).await {
            Ok(()) => Ok(()),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(()),
            Err(e) => Err(self
                .dest
                .sftp_error(&format!("cannot remove temporary file {remote}"), e)),
        }
    }
}
