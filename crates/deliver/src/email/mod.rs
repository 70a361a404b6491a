//! The email destination: one message per snapshot over SMTP (lettre), with a plain-text run
//! summary and the files as `text/csv` attachments or one zip.
//!
//! SMTP has no temporary names to rename: the server takes responsibility for a message only
//! with its reply to the final `.` of DATA, and a cut connection before that leaves nothing
//! delivered. That reply is what makes a delivery complete. Nothing is left behind on failure,
//! so there is nothing to clean up on the next attempt. (A reply lost after the server accepted
//! makes the retry send a second copy; SMTP cannot tell.)

mod config;
mod message;
mod oauth2;
mod session;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SUBJECT, DEFAULT_TIMEOUT_SECS,
    EmailAttach, EmailAuth, EmailConfig, EmailConfigError, EmailTls, SUBJECT_PLACEHOLDERS,
};
pub use oauth2::{MICROSOFT_SMTP_SCOPE, MICROSOFT_TOKEN_URL};

use crate::staged::{SecretForm, read_secret_file};
use crate::{DeliverError, Destination, FileSet};
use futures_util::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS, Mechanism};
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use message::{BuildError, MessageParams};
use sds_core::FileEntry;
use secrecy::ExposeSecret;
use session::{OpenError, Params, Security};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `check` waits at most this long, whatever `timeout_secs` allows a delivery.
const CHECK_TIMEOUT_CAP_SECS: u64 = 60;

/// A built email destination: addresses parsed, secrets and CA read, TLS ready. Each send opens
/// its own connection (no pool: a pooled connection goes stale between daily runs).
#[derive(Clone)]
pub struct EmailDestination {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EmailConfig,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    security: Security,
    credentials: Option<Credentials>,
    /// `auth = "xoauth2"`: where each login's token comes from.
    oauth2: Option<oauth2::TokenSource>,
    warnings: Vec<String>,
}

impl fmt::Debug for EmailDestination {
    // Hand-written so no future field can leak the credentials the transport holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.cfg;
        f.debug_struct("EmailDestination")
            .field("name", &c.name)
            .field("smtp_host", &c.smtp_host)
            .field("smtp_port", &self.inner.port)
            .field("tls", &c.tls)
            .field("username", &c.username)
            .field("attach", &c.attach)
            .finish_non_exhaustive()
    }
}

impl EmailDestination {
    /// Validates `cfg`, reads `password_file` and `ca_file`, and prepares the transport. Does
    /// not connect. Every error is permanent and names the key (and path).
    pub fn new(cfg: EmailConfig) -> Result<Self, DeliverError> {
        let name = cfg.name.clone();
        cfg.validate().map_err(|e| {
            DeliverError::permanent(&name, format!("configuration: `{}` {}", e.key, e.message))
        })?;
        let port = cfg.port();
        // validate() parsed these already; parse again to keep them.
        let from: Mailbox = cfg.from.parse().map_err(|e| {
            DeliverError::permanent(
                &name,
                format!("configuration: `from` is not a valid address: {e}"),
            )
        })?;
        let to = cfg
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.parse::<Mailbox>().map_err(|e| {
                    DeliverError::permanent(
                        &name,
                        format!("configuration: `to[{i}]` is not a valid address: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut warnings = Vec::new();
        if cfg.tls == EmailTls::None {
            warnings.push(format!(
                "destination {name:?}: tls = \"none\": every message, with the student files attached, crosses the \
                 network to {}:{port} in clear text; use tls = \"starttls\" (or \"implicit\") if the server supports it",
                cfg.smtp_host
            ));
        }
        let password = match (&cfg.password, &cfg.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => {
                let file = read_secret_file("password_file", path, SecretForm::Line)
                    .map_err(|e| DeliverError::permanent(&name, format!("configuration: {e}")))?;
                if let Some(w) = file.warning {
                    warnings.push(format!("destination {name:?}: {w}"));
                }
                Some(file.value)
            }
            (None, None) => None,
        };

        let security = match cfg.tls {
            EmailTls::None => Security::None,
            EmailTls::Starttls => Security::Starttls(tls_parameters(&cfg)?),
            EmailTls::Implicit => {
                // lettre's own parameters check the CA file the same way for both modes.
                tls_parameters(&cfg)?;
                let config =
                    crate::tls::client_config(cfg.ca_file.as_deref(), "`ca_file`", false, true)
                        .map_err(|e| {
                            DeliverError::permanent(&name, format!("configuration: {e}"))
                        })?;
                Security::Implicit(config)
            }
        };
        let oauth2 = match cfg.auth {
            EmailAuth::Xoauth2 => Some(token_source(&cfg, &mut warnings)?),
            EmailAuth::Password => None,
        };
        let credentials = match (&cfg.username, password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            _ => None,
        };
        Ok(EmailDestination {
            inner: Arc::new(Inner {
                cfg,
                port,
                from,
                to,
                security,
                credentials,
                oauth2,
                warnings,
            }),
        })
    }

    /// The config this destination was built from.
    pub fn config(&self) -> &EmailConfig {
        &self.inner.cfg
    }

    fn name_(&self) -> &str {
        &self.inner.cfg.name
    }

    /// `smtp host:port`, for messages.
    fn server(&self) -> String {
        let host = &self.inner.cfg.smtp_host;
        if host.contains(':') {
            format!("smtp [{host}]:{}", self.inner.port)
        } else {
            format!("smtp {host}:{}", self.inner.port)
        }
    }

    async fn deliver_set(&self, set: &FileSet) -> Result<(), DeliverError> {
        let started = Instant::now();
        let cfg = &self.inner.cfg;
        let files: Vec<FileEntry> = set
            .files_chosen(cfg.include_license_file, &cfg.omit_files)
            .cloned()
            .collect();
        let params = MessageParams {
            from: self.inner.from.clone(),
            to: self.inner.to.clone(),
            subject_template: cfg.subject.clone(),
            attach: cfg.attach,
            max_message_bytes: cfg.max_message_bytes,
            destination: cfg.name.clone(),
        };
        // Reading, zipping and base64 are CPU and disk work: keep them off the async workers.
        let built = {
            let set = set.clone();
            let files = files.clone();
            tokio::task::spawn_blocking(move || message::build(&params, &set, &files))
                .await
                .map_err(|e| {
                    DeliverError::retryable(
                        self.name_(),
                        format!("message building task failed: {e}"),
                    )
                })?
        };
        let built = built.map_err(|e| self.build_error(set, &files, e))?;

        let limit = Duration::from_secs(cfg.timeout_secs);
        // A server that stalls after the connect (TLS, AUTH, DATA) would hang the send forever
        // without this bound.
        let send = async {
            let mut conn = self.open().await?;
            let sent = conn.send(&built.envelope, &built.bytes).await;
            conn.abort().await;
            sent.map_err(|e| self.smtp_error(&format!("sending snapshot {}", set.snapshot_id), &e))
        };
        match tokio::time::timeout(limit, send).await {
            Err(_) => Err(DeliverError::retryable(
                self.name_(),
                format!(
                    "{}: sending snapshot {} timed out after {} s (timeout_secs); the server or the network is slow or stuck; will retry",
                    self.server(),
                    set.snapshot_id,
                    cfg.timeout_secs
                ),
            )),
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => {
                tracing::info!(
                    destination = %cfg.name,
                    kind = "email",
                    snapshot_id = %set.snapshot_id,
                    files = files.len(),
                    attach = cfg.attach.as_str(),
                    bytes = built.bytes.len(),
                    payload_bytes = built.payload_bytes,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "delivered"
                );
                Ok(())
            }
        }
    }

    async fn check_server(&self) -> Result<(), DeliverError> {
        let cfg = &self.inner.cfg;
        // An admin running `sds-sync check` waits for the answer: no full transfer budget here.
        let secs = cfg.timeout_secs.min(CHECK_TIMEOUT_CAP_SECS);
        let limit = Duration::from_secs(secs);
        // Connect, TLS, EHLO, AUTH, NOOP, QUIT: no message is sent.
        let probe = async {
            let mut conn = self.open().await?;
            let alive = conn.test_connected().await;
            let _ = conn.quit().await;
            Ok::<bool, DeliverError>(alive)
        };
        match tokio::time::timeout(limit, probe).await {
            Err(_) => Err(DeliverError::retryable(
                self.name_(),
                format!(
                    "{}: check timed out after {secs} s; check that the server is reachable and that `tls` matches the port",
                    self.server(),
                ),
            )),
            Ok(Err(e)) => Err(e),
            Ok(Ok(false)) => Err(DeliverError::retryable(
                self.name_(),
                format!(
                    "{}: check: the server did not answer NOOP after login; will retry",
                    self.server()
                ),
            )),
            Ok(Ok(true)) => {
                tracing::debug!(destination = %cfg.name, kind = "email", "check passed");
                Ok(())
            }
        }
    }

    /// `check --send-test`: one short message without attachments to the configured recipients.
    async fn send_test_message(&self) -> Result<String, DeliverError> {
        let cfg = &self.inner.cfg;
        let mut builder = lettre::Message::builder()
            .from(self.inner.from.clone())
            .subject(format!(
                "sds-sync test message (destination {:?})",
                cfg.name
            ));
        for to in &self.inner.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(format!(
                "This message was sent by `sds-sync check --send-test` to test the email destination {:?}.\n\
                 The SDS exports will arrive the same way, with the files attached.\n",
                cfg.name
            ))
            .map_err(|e| {
                DeliverError::permanent(
                    self.name_(),
                    format!("cannot build the test message: {e}; check `from` and `to`"),
                )
            })?;
        let bytes = message.formatted();
        let secs = cfg.timeout_secs.min(CHECK_TIMEOUT_CAP_SECS);
        let send = async {
            let mut conn = self.open().await?;
            let sent = conn.send(message.envelope(), &bytes).await;
            let _ = conn.quit().await;
            sent.map_err(|e| self.smtp_error("sending the test message", &e))
        };
        match tokio::time::timeout(Duration::from_secs(secs), send).await {
            Err(_) => Err(DeliverError::retryable(
                self.name_(),
                format!(
                    "{}: sending the test message timed out after {secs} s",
                    self.server()
                ),
            )),
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Ok(format!(
                "{}: the server accepted a test message to {}",
                self.server(),
                cfg.to.join(", ")
            )),
        }
    }

    /// `auth = "xoauth2"`: the mailbox and a current token, as XOAUTH2 credentials.
    async fn oauth2_credentials(
        &self,
        source: &oauth2::TokenSource,
    ) -> Result<Credentials, DeliverError> {
        let token = source.token().await.map_err(|e| {
            let message = format!("{}: no OAuth2 token: {e}", self.server());
            if e.permanent {
                DeliverError::permanent(self.name_(), message)
            } else {
                DeliverError::retryable(self.name_(), message)
            }
        })?;
        let mailbox = self.inner.cfg.username.clone().unwrap_or_default();
        Ok(Credentials::new(mailbox, token.expose_secret().to_owned()))
    }

    /// A refused XOAUTH2 login: drops the cached token (it may have been revoked) and says what
    /// to check on the Microsoft 365 side.
    async fn oauth2_refused(
        &self,
        source: &oauth2::TokenSource,
        e: &lettre::transport::smtp::Error,
    ) -> DeliverError {
        source.invalidate().await;
        // Dovecot and Exchange answer a bad token with a 334 error challenge and then 535;
        // lettre stops at the challenge ("does not expect a challenge").
        let detail = match e.status() {
            Some(code) => format!("{code} {e}"),
            None => "the server answered the token with an error challenge".to_owned(),
        };
        DeliverError::permanent(
            self.name_(),
            format!(
                "{}: the server refused the OAuth2 token (from {}) for mailbox {:?} ({detail}); in Microsoft 365 \
                 check that SMTP AUTH is enabled for that mailbox, that the app's service principal is registered \
                 in Exchange Online (New-ServicePrincipal) with access to the mailbox (Add-MailboxPermission \
                 -AccessRights FullAccess), and that the app has the SMTP.SendAsApp permission with admin consent",
                self.server(),
                source.url(),
                self.inner.cfg.username.as_deref().unwrap_or_default()
            ),
        )
    }

    /// Connect, secure and log in; errors are classified and name the server.
    async fn open(
        &self,
    ) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, DeliverError> {
        let inner = &self.inner;
        let token_credentials = match &inner.oauth2 {
            Some(source) => Some(self.oauth2_credentials(source).await?),
            None => None,
        };
        let (credentials, mechanisms) = match &token_credentials {
            Some(c) => (Some(c), &[Mechanism::Xoauth2][..]),
            None => (inner.credentials.as_ref(), DEFAULT_MECHANISMS),
        };
        let params = Params {
            host: &inner.cfg.smtp_host,
            port: inner.port,
            connect_timeout: Duration::from_secs(inner.cfg.connect_timeout_secs),
            security: &inner.security,
            credentials,
            mechanisms,
        };
        let tls = inner.cfg.tls;
        let result = session::open(params).await;
        if let (Err(OpenError::Smtp(e)), Some(source)) = (&result, &inner.oauth2)
            && token_refused(e)
        {
            return Err(self.oauth2_refused(source, e).await);
        }
        result.map_err(|e| match e {
            OpenError::Smtp(e) => self.smtp_error("connecting", &e),
            OpenError::ConnectTimeout => DeliverError::retryable(
                self.name_(),
                format!(
                    "{}: connecting failed: no connection within {} s (connect_timeout_secs); check that the server \
                     is reachable; will retry",
                    self.server(),
                    inner.cfg.connect_timeout_secs
                ),
            ),
            OpenError::Connect(e) => DeliverError::retryable(
                self.name_(),
                format!(
                    "{}: connecting failed: {e}; check that the server is up and reachable and that tls = \"{}\" \
                     matches the port; will retry",
                    self.server(),
                    tls.as_str()
                ),
            ),
            OpenError::Tls(e) => {
                let (kind, advice) = match find_rustls_error(&e) {
                    Some(r) => classify_rustls(r, tls),
                    None => (
                        crate::ErrorKind::Retryable,
                        "the connection failed during the TLS handshake; will retry".to_owned(),
                    ),
                };
                DeliverError {
                    destination: self.name_().to_owned(),
                    kind,
                    message: format!("{}: connecting failed: TLS handshake: {e}; {advice}", self.server()),
                }
            }
        })
    }

    fn build_error(&self, set: &FileSet, files: &[FileEntry], e: BuildError) -> DeliverError {
        let cfg = &self.inner.cfg;
        match e {
            BuildError::TooLarge { encoded } => {
                let raw: u64 = files.iter().map(|f| f.bytes).sum();
                let advice = match cfg.attach {
                    EmailAttach::Files => {
                        "set attach = \"zip\" (CSV compresses well), raise max_message_bytes if the mail server accepts bigger messages, or deliver this profile through another destination (SFTP, FTP)"
                    }
                    EmailAttach::Zip => {
                        "raise max_message_bytes if the mail server accepts bigger messages, or deliver this profile through another destination (SFTP, FTP)"
                    }
                };
                DeliverError::permanent(
                    &cfg.name,
                    format!(
                        "{}: snapshot {} not sent: the message would be at least {encoded} bytes encoded ({} file{}, {raw} bytes before encoding, attach = \"{}\"), over max_message_bytes = {}; nothing was sent; {advice}",
                        self.server(),
                        set.snapshot_id,
                        files.len(),
                        if files.len() == 1 { "" } else { "s" },
                        cfg.attach.as_str(),
                        cfg.max_message_bytes
                    ),
                )
            }
            // A snapshot folder that does not match its manifest is something an admin (or the
            // next run) repairs, as for the local destination.
            BuildError::Snapshot(m) => DeliverError::retryable(
                &cfg.name,
                format!("snapshot {}: {m}; check the state folder", set.snapshot_id),
            ),
            BuildError::Build(m) => DeliverError::permanent(
                &cfg.name,
                format!(
                    "snapshot {}: cannot build the message: {m}; check `from`, `to` and `subject`",
                    set.snapshot_id
                ),
            ),
        }
    }

    /// Whether-to-retry for an SMTP failure: 5xx replies, certificate and protocol mismatches
    /// are permanent; 4xx replies, network trouble and timeouts are retryable.
    fn smtp_error(&self, what: &str, e: &lettre::transport::smtp::Error) -> DeliverError {
        let (kind, advice) = if session::is_read_limit(e) {
            (
                crate::ErrorKind::Retryable,
                "the server is broken or not an SMTP server (nothing more is read from it); check smtp_host and smtp_port; will retry".to_owned(),
            )
        } else {
            classify(e, self.inner.cfg.tls)
        };
        // lettre wraps a failed handshake twice in "Connection error: "; say it once.
        let detail = e
            .to_string()
            .replace("Connection error: Connection error: ", "Connection error: ");
        let message = format!("{}: {what} failed: {detail}; {advice}", self.server());
        DeliverError {
            destination: self.name_().to_owned(),
            kind,
            message,
        }
    }
}

/// Whether a failed login with XOAUTH2 means the server refused the token: an AUTH reply
/// (530/534/535), or the error challenge lettre cannot answer.
fn token_refused(e: &lettre::transport::smtp::Error) -> bool {
    let auth_reply = e
        .status()
        .is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535"));
    auth_reply || (e.is_client() && e.to_string().contains("does not expect a challenge"))
}

fn classify(e: &lettre::transport::smtp::Error, tls: EmailTls) -> (crate::ErrorKind, String) {
    use crate::ErrorKind::{Permanent, Retryable};
    if let Some(code) = e.status() {
        let code_num = code.to_string();
        if e.is_permanent() {
            let advice = match code_num.as_str() {
                "530" | "534" | "535" | "538" => {
                    "authentication failed or is required: check `username` and `password`/`password_file`"
                }
                "552" => {
                    "the server refused the message size: lower max_message_bytes to the server's limit, set attach = \"zip\", or use another destination"
                }
                "550" | "551" | "553" | "555" => {
                    "the server refused the sender or a recipient: check `from` and `to`"
                }
                _ => {
                    "the server rejected it permanently: fix the cause named in the reply, then retry"
                }
            };
            return (Permanent, advice.to_owned());
        }
        return (
            Retryable,
            "the server asked to try again later; will retry".to_owned(),
        );
    }
    if e.is_timeout() {
        return (
            Retryable,
            "timed out; check that the server is reachable; will retry".to_owned(),
        );
    }
    if let Some(tls_err) = find_rustls_error(e) {
        return classify_rustls(tls_err, tls);
    }
    if e.is_client() {
        let text = e.to_string();
        let advice = if text.contains("STARTTLS") {
            "the server does not offer STARTTLS: use tls = \"implicit\" if it expects TLS from the start (port 465)"
        } else if text.contains("authentication mechanism") {
            "the server offers no AUTH mechanism sds-sync supports (PLAIN, LOGIN, or XOAUTH2 with auth = \"xoauth2\"): check `tls`, `smtp_port`, `auth` and whether this server needs a login"
        } else {
            "check the destination's configuration"
        };
        return (Permanent, advice.to_owned());
    }
    if e.is_tls() {
        return (
            Permanent,
            "TLS setup failed: check `ca_file` and `smtp_host`".to_owned(),
        );
    }
    (
        Retryable,
        format!(
            "check that the server is up and reachable and that tls = \"{}\" matches the port; will retry",
            tls.as_str()
        ),
    )
}

fn classify_rustls(tls_err: &rustls::Error, tls: EmailTls) -> (crate::ErrorKind, String) {
    use crate::ErrorKind::{Permanent, Retryable};
    use rustls::Error as R;
    match tls_err {
            R::InvalidCertificate(_) | R::NoCertificatesPresented | R::UnsupportedNameType => (
                Permanent,
                "the server certificate is not trusted for this host name: set `ca_file` to the CA that signed it, or fix the server certificate or `smtp_host`".to_owned(),
            ),
            R::InvalidMessage(_) | R::InappropriateMessage { .. } | R::InappropriateHandshakeMessage { .. } => (
                Permanent,
                format!(
                    "the server does not speak TLS the way tls = \"{}\" expects: use \"implicit\" for port 465 and \"starttls\" for 587",
                    tls.as_str()
                ),
            ),
            R::PeerIncompatible(_) | R::AlertReceived(_) => (
                Permanent,
                "TLS handshake refused: the server and sds-sync share no TLS version or cipher (TLS 1.2+ is required)".to_owned(),
            ),
            _ => (Retryable, "TLS failed; will retry".to_owned()),
    }
}

/// tokio-rustls reports handshake failures as an `io::Error` wrapping the `rustls::Error`;
/// `io::Error::source` skips the wrapped error, so look inside with `get_ref`.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// `auth = "xoauth2"`: reads the client secret and prepares the token endpoint client.
fn token_source(
    cfg: &EmailConfig,
    warnings: &mut Vec<String>,
) -> Result<oauth2::TokenSource, DeliverError> {
    let config_error =
        |m: String| DeliverError::permanent(&cfg.name, format!("configuration: {m}"));
    let secret = match (&cfg.oauth2_client_secret, &cfg.oauth2_client_secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => {
            let file = read_secret_file("oauth2_client_secret_file", path, SecretForm::Line)
                .map_err(config_error)?;
            if let Some(w) = file.warning {
                warnings.push(format!("destination {:?}: {w}", cfg.name));
            }
            file.value
        }
        (None, None) => {
            return Err(config_error(
                "`oauth2_client_secret_file` is missing".into(),
            ));
        }
    };
    let url = cfg
        .oauth2_token_url()
        .ok_or_else(|| config_error("`oauth2_tenant` or `oauth2_token_url` is missing".into()))?;
    // The token endpoint is a plain HTTPS server: the same trust as the SMTP server's
    // (public roots + `ca_file`); one request per token, so no session resumption.
    let tls = crate::tls::client_config(cfg.ca_file.as_deref(), "`ca_file`", false, false)
        .map_err(config_error)?;
    oauth2::TokenSource::new(
        &url,
        cfg.oauth2_client_id.clone().unwrap_or_default(),
        secret,
        cfg.oauth2_scope(),
        tls,
        Duration::from_secs(cfg.timeout_secs.min(CHECK_TIMEOUT_CAP_SECS)),
    )
    .map_err(|m| config_error(format!("`oauth2_token_url` {m}")))
}

fn tls_parameters(cfg: &EmailConfig) -> Result<TlsParameters, DeliverError> {
    let mut builder = TlsParameters::builder(cfg.smtp_host.clone());
    if let Some(path) = &cfg.ca_file {
        let bad = |what: String| {
            DeliverError::permanent(
                &cfg.name,
                format!(
                    "configuration: `ca_file` {}: {what}; it must be a PEM file with the CA certificate(s)",
                    path.display()
                ),
            )
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(bad("holds no PEM certificate".into()));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| bad(format!("cannot parse it: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| {
        DeliverError::permanent(
            &cfg.name,
            format!(
                "configuration: TLS setup for `smtp_host` {:?} (with `ca_file`) failed: {e}",
                cfg.smtp_host
            ),
        )
    })
}

impl Destination for EmailDestination {
    fn name(&self) -> &str {
        self.name_()
    }
    fn kind(&self) -> &'static str {
        "email"
    }
    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(self.deliver_set(set))
    }
    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(self.check_server())
    }
    fn check_verified(&self) -> String {
        let c = &self.inner.cfg;
        let tls = match c.tls {
            EmailTls::Starttls => "STARTTLS",
            EmailTls::Implicit => "TLS (implicit)",
            EmailTls::None => "no TLS",
        };
        let login = match (&self.inner.oauth2, &c.username) {
            (Some(source), Some(user)) => format!(
                "logged in as {user:?} with AUTH XOAUTH2 (token from {})",
                source.url()
            ),
            (None, Some(user)) => format!("logged in as {user:?} (AUTH PLAIN/LOGIN)"),
            (_, None) => "no login (relay)".to_owned(),
        };
        format!(
            "{}: connected, {tls}, {login}, NOOP answered; no message sent (`sds-sync check --send-test` sends one)",
            self.server()
        )
    }
    fn send_test(&self) -> Option<BoxFuture<'_, Result<String, DeliverError>>> {
        Some(Box::pin(self.send_test_message()))
    }
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EmailConfig {
        EmailConfig::new(
            "mail",
            "127.0.0.1",
            "sds@example.org",
            vec!["ops@example.org".into()],
        )
    }

    #[test]
    fn password_file_is_read_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret-pw\r\n").unwrap();
        let mut c = cfg();
        c.username = Some("u".into());
        c.password_file = Some(p);
        let d = EmailDestination::new(c).unwrap();
        assert!(!format!("{d:?}").contains("s3cret-pw"));
        assert!(!d.warnings().concat().contains("s3cret-pw"));
    }

    /// Issue 15: `tls = "none"` sends the student files in clear; it is warned about like FTP's.
    #[test]
    fn tls_none_is_warned_about() {
        let mut c = cfg();
        c.tls = EmailTls::None;
        let w = EmailDestination::new(c).unwrap().warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("\"mail\"")
                && w[0].contains("clear text")
                && w[0].contains("127.0.0.1:25"),
            "{}",
            w[0]
        );
        assert!(EmailDestination::new(cfg()).unwrap().warnings().is_empty());
    }

    #[test]
    fn missing_files_are_permanent_and_named() {
        let mut c = cfg();
        c.username = Some("u".into());
        c.password_file = Some("/nonexistent/pw".into());
        let e = EmailDestination::new(c).unwrap_err();
        assert!(e.is_permanent());
        assert!(e.message.contains("`password_file` /nonexistent/pw"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a cert").unwrap();
        let mut c = cfg();
        c.ca_file = Some(p.clone());
        let e = EmailDestination::new(c).unwrap_err();
        assert!(e.is_permanent());
        assert!(
            e.message.contains("`ca_file`") && e.message.contains(&p.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn config_errors_are_permanent() {
        let mut c = cfg();
        c.to.clear();
        let e = EmailDestination::new(c).unwrap_err();
        assert!(e.is_permanent());
        assert!(e.message.contains("`to`"), "{e}");
    }
}
