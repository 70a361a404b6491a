//! The user-facing `[[destination]] kind = "email"` table and its pure (I/O-free) validation.

use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::Ipv6Addr;
use std::path::PathBuf;

/// Default `max_message_bytes`: 20 MB, below the limits of the common mail services.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 20_000_000;
/// Default `timeout_secs` (the whole send: connect, TLS, AUTH, transfer, reply).
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Default `connect_timeout_secs` (the TCP connect alone).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;
/// Default `subject`.
pub const DEFAULT_SUBJECT: &str = "SDS export {snapshot_time}: {summary}";
/// The placeholders a `subject` may use.
pub const SUBJECT_PLACEHOLDERS: [&str; 3] = ["snapshot_time", "snapshot_id", "summary"];
/// Below this a message cannot even hold its headers and the summary.
const MIN_MESSAGE_BYTES: u64 = 1_000;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain connect, then `STARTTLS` before anything else; refuses servers without it
    /// (submission, port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No encryption (a relay on a trusted network, port 25). Not allowed with `username`.
    None,
}

impl EmailTls {
    /// The port used when `smtp_port` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            EmailTls::Starttls => 587,
            EmailTls::Implicit => 465,
            EmailTls::None => 25,
        }
    }

    /// The config spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTls::Starttls => "starttls",
            EmailTls::Implicit => "implicit",
            EmailTls::None => "none",
        }
    }
}

/// How sds-sync logs in to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailAuth {
    /// `username` + `password`/`password_file` with AUTH PLAIN or LOGIN; or no login at all
    /// when `username` is not set.
    #[default]
    Password,
    /// `AUTH XOAUTH2` with an OAuth2 access token for `username` (the mailbox), fetched with the
    /// client-credentials grant (Microsoft 365 / Exchange Online).
    Xoauth2,
}

impl EmailAuth {
    /// The config spelling, for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailAuth::Password => "password",
            EmailAuth::Xoauth2 => "xoauth2",
        }
    }
}

/// How the files travel in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailAttach {
    /// One `text/csv` attachment per file.
    #[default]
    Files,
    /// One `application/zip` attachment (deflate) holding every file; CSV shrinks a lot.
    Zip,
}

impl EmailAttach {
    /// The config spelling, for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailAttach::Files => "files",
            EmailAttach::Zip => "zip",
        }
    }
}

/// `[[destination]] kind = "email"`: one message per snapshot, with a plain-text summary of the
/// run and the files attached. Unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Name of this destination, used in logs, errors and the outbox.
    pub name: String,
    /// Host name or IP address of the SMTP server (no port, no scheme), e.g. `smtp.example.org`.
    /// Also the name the server certificate must match.
    pub smtp_host: String,
    /// SMTP port. Default by `tls`: 587 for `starttls`, 465 for `implicit`, 25 for `none`.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// `"starttls"` (default), `"implicit"` or `"none"`.
    #[serde(default)]
    pub tls: EmailTls,
    /// `"password"` (default): AUTH PLAIN/LOGIN with `username` and a password (or no login
    /// without `username`). `"xoauth2"`: AUTH XOAUTH2 with an OAuth2 token for `username`, see the
    /// `oauth2_*` keys.
    #[serde(default)]
    pub auth: EmailAuth,
    /// Login for SMTP AUTH (PLAIN or LOGIN), or the mailbox address with `auth = "xoauth2"`.
    /// Leave out for a relay that needs no login. Requires `password` or `password_file` (with
    /// `auth = "password"`), and TLS.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`. Prefer `password_file` or the environment over the config file.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// File holding the password (a trailing newline is ignored); read when the destination is
    /// built. Alternative to `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file with CA certificate(s) to trust in addition to the built-in public roots, for a
    /// server whose certificate comes from an internal CA. Also trusted for the OAuth2 token
    /// endpoint.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `auth = "xoauth2"`: the Microsoft Entra tenant (directory ID or primary domain, e.g.
    /// `contoso.onmicrosoft.com`); the token endpoint is then
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`. Alternative to
    /// `oauth2_token_url`.
    #[serde(default)]
    pub oauth2_tenant: Option<String>,
    /// `auth = "xoauth2"`: the token endpoint (`https://...`) of another identity provider.
    #[serde(default)]
    pub oauth2_token_url: Option<String>,
    /// `auth = "xoauth2"`: the application (client) ID of the app registration.
    #[serde(default)]
    pub oauth2_client_id: Option<String>,
    /// `auth = "xoauth2"`: the client secret. Prefer `oauth2_client_secret_file`.
    #[serde(default)]
    pub oauth2_client_secret: Option<SecretString>,
    /// `auth = "xoauth2"`: file holding the client secret (a trailing newline is ignored).
    #[serde(default)]
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// `auth = "xoauth2"`: the scope to ask for. Default with `oauth2_tenant`:
    /// `https://outlook.office365.com/.default`; required with `oauth2_token_url`.
    #[serde(default)]
    pub oauth2_scope: Option<String>,
    /// Sender address, e.g. `"SDS export <sds@school.example>"`.
    pub from: String,
    /// Recipient addresses (at least one). All of them get the same message.
    pub to: Vec<String>,
    /// Subject template. Placeholders: `{snapshot_time}` (publication time, RFC 3339 UTC),
    /// `{snapshot_id}` and `{summary}` (row changes, e.g. `3 added, 1 removed, 0 changed`, or
    /// `first snapshot`). Default `"SDS export {snapshot_time}: {summary}"`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// `"files"` (default): one `text/csv` attachment per file; `"zip"`: one zip of all files.
    #[serde(default)]
    pub attach: EmailAttach,
    /// Largest message to send, counted as encoded on the wire (attachments grow by about 4/3
    /// in base64). A bigger snapshot fails permanently before connecting. Default 20000000.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Seconds allowed for the TCP connect. Default 30.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds allowed for one whole send (connect, TLS, AUTH, transfer, final reply); `check`
    /// waits the smaller of this and 60. Default 300.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Also attach the v1 licence file. Default false.
    #[serde(default)]
    pub include_license_file: bool,
    /// Optional files of the set this destination leaves out (`academicSessions.csv`,
    /// `courses.csv`, `relationships.csv`), for a destination that feeds something other than
    /// SDS. Default: none (SDS needs the same set of files every time).
    #[serde(default)]
    pub omit_files: Vec<String>,
}

fn default_subject() -> String {
    DEFAULT_SUBJECT.to_owned()
}
fn default_max_message_bytes() -> u64 {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn default_connect_timeout_secs() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}
fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// A configuration mistake in an email destination, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("email destination {destination:?}: `{key}` {message}")]
pub struct EmailConfigError {
    pub destination: String,
    /// The offending key, e.g. `to[1]` or `password_file`.
    pub key: String,
    pub message: String,
}

impl EmailConfig {
    /// A config with every optional key at its default.
    pub fn new(
        name: impl Into<String>,
        smtp_host: impl Into<String>,
        from: impl Into<String>,
        to: Vec<String>,
    ) -> Self {
        EmailConfig {
            name: name.into(),
            smtp_host: smtp_host.into(),
            smtp_port: None,
            tls: EmailTls::default(),
            auth: EmailAuth::default(),
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            oauth2_tenant: None,
            oauth2_token_url: None,
            oauth2_client_id: None,
            oauth2_client_secret: None,
            oauth2_client_secret_file: None,
            oauth2_scope: None,
            from: from.into(),
            to,
            subject: default_subject(),
            attach: EmailAttach::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            include_license_file: false,
            omit_files: Vec::new(),
        }
    }

    /// The port actually used: `smtp_port`, or the default of `tls`.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or_else(|| self.tls.default_port())
    }

    /// Checks the table without touching the network or the disk (files named by `*_file`
    /// keys are read by [`super::EmailDestination::new`]).
    pub fn validate(&self) -> Result<(), EmailConfigError> {
        let err = |key: &str, message: String| EmailConfigError {
            destination: self.name.clone(),
            key: key.to_owned(),
            message,
        };
        if self.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        validate_host(&self.smtp_host).map_err(|m| err("smtp_host", m))?;
        if self.smtp_port == Some(0) {
            return Err(err("smtp_port", "must be between 1 and 65535".into()));
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err(err(
                "username",
                "must not be empty; leave it out for a relay without login".into(),
            ));
        }
        if self.auth == EmailAuth::Xoauth2 {
            self.validate_oauth2().map_err(|(key, m)| err(key, m))?;
        } else if let Some(key) = self.oauth2_keys_set().first() {
            return Err(err(
                key,
                "is an OAuth2 setting, but `auth` is not \"xoauth2\"; set auth = \"xoauth2\" or remove it".into(),
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err(err(
                "password_file",
                "and `password` are both set; keep one of them".into(),
            ));
        }
        let has_password = self.password.is_some() || self.password_file.is_some();
        match (&self.username, has_password) {
            _ if self.auth == EmailAuth::Xoauth2 => {}
            (Some(_), false) => {
                return Err(err(
                    "password",
                    "is missing: `username` needs `password` or `password_file`".into(),
                ));
            }
            (None, true) => {
                return Err(err(
                    "username",
                    "is missing: a password is set but no login to use it with".into(),
                ));
            }
            _ => {}
        }
        if self.tls == EmailTls::None {
            if self.username.is_some() {
                return Err(err(
                    "tls",
                    "is \"none\" but `username` is set: the password would cross the network in clear; use \"starttls\" or \"implicit\"".into(),
                ));
            }
            if self.ca_file.is_some() {
                return Err(err(
                    "ca_file",
                    "is set but `tls` is \"none\"; remove it or enable TLS".into(),
                ));
            }
        }
        self.from.parse::<Mailbox>().map_err(|e| {
            err(
                "from",
                format!("is not a valid address ({e}): {:?}", self.from),
            )
        })?;
        if self.to.is_empty() {
            return Err(err("to", "must list at least one recipient address".into()));
        }
        for (i, to) in self.to.iter().enumerate() {
            to.parse::<Mailbox>().map_err(|e| {
                err(
                    &format!("to[{i}]"),
                    format!("is not a valid address ({e}): {to:?}"),
                )
            })?;
        }
        validate_subject(&self.subject).map_err(|m| err("subject", m))?;
        if self.max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(err(
                "max_message_bytes",
                format!(
                    "is {}; it must be at least {MIN_MESSAGE_BYTES}",
                    self.max_message_bytes
                ),
            ));
        }
        if self.connect_timeout_secs == 0 {
            return Err(err("connect_timeout_secs", "must be at least 1".into()));
        }
        if self.timeout_secs == 0 {
            return Err(err("timeout_secs", "must be at least 1".into()));
        }
        Ok(())
    }
}

impl EmailConfig {
    /// The OAuth2 keys that are set, by name.
    fn oauth2_keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.oauth2_tenant.is_some() {
            keys.push("oauth2_tenant");
        }
        if self.oauth2_token_url.is_some() {
            keys.push("oauth2_token_url");
        }
        if self.oauth2_client_id.is_some() {
            keys.push("oauth2_client_id");
        }
        if self.oauth2_client_secret.is_some() {
            keys.push("oauth2_client_secret");
        }
        if self.oauth2_client_secret_file.is_some() {
            keys.push("oauth2_client_secret_file");
        }
        if self.oauth2_scope.is_some() {
            keys.push("oauth2_scope");
        }
        keys
    }

    /// `auth = "xoauth2"`: the mailbox, where to get tokens, and as whom.
    fn validate_oauth2(&self) -> Result<(), (&'static str, String)> {
        match self.username.as_deref() {
            None => {
                return Err((
                    "username",
                    "is missing: with auth = \"xoauth2\" it is the mailbox to send as (e.g. sds@school.example)".into(),
                ));
            }
            Some(u) if u.parse::<Mailbox>().is_err() || u.contains('<') => {
                return Err((
                    "username",
                    format!(
                        "must be the mailbox address with auth = \"xoauth2\" (e.g. sds@school.example), not {u:?}"
                    ),
                ));
            }
            Some(_) => {}
        }
        if self.password.is_some() || self.password_file.is_some() {
            let key = if self.password.is_some() {
                "password"
            } else {
                "password_file"
            };
            return Err((
                key,
                "is set, but auth = \"xoauth2\" logs in with a token: remove it (the client secret goes in oauth2_client_secret_file)".into(),
            ));
        }
        if self.tls == EmailTls::None {
            return Err((
                "tls",
                "is \"none\" but auth = \"xoauth2\": the token would cross the network in clear; use \"starttls\" or \"implicit\"".into(),
            ));
        }
        match (&self.oauth2_tenant, &self.oauth2_token_url) {
            (Some(_), Some(_)) => {
                return Err((
                    "oauth2_token_url",
                    "and `oauth2_tenant` are both set; keep one (oauth2_tenant for Microsoft 365)"
                        .into(),
                ));
            }
            (None, None) => {
                return Err((
                    "oauth2_tenant",
                    "is missing: auth = \"xoauth2\" needs `oauth2_tenant` (Microsoft 365: the directory ID or primary domain) or `oauth2_token_url`".into(),
                ));
            }
            (Some(t), None) => {
                let ok = !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !ok {
                    return Err((
                        "oauth2_tenant",
                        format!(
                            "must be the tenant's directory ID or domain (e.g. contoso.onmicrosoft.com), not {t:?}"
                        ),
                    ));
                }
            }
            (None, Some(u)) => {
                super::oauth2::check_token_url(u).map_err(|m| ("oauth2_token_url", m))?;
                if self.oauth2_scope.is_none() {
                    return Err((
                        "oauth2_scope",
                        "is missing: with oauth2_token_url, set the scope the provider wants for SMTP".into(),
                    ));
                }
            }
        }
        if self
            .oauth2_client_id
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            return Err((
                "oauth2_client_id",
                "is missing: the application (client) ID of the app registration".into(),
            ));
        }
        match (&self.oauth2_client_secret, &self.oauth2_client_secret_file) {
            (Some(_), Some(_)) => {
                return Err((
                    "oauth2_client_secret_file",
                    "and `oauth2_client_secret` are both set; keep one of them".into(),
                ));
            }
            (None, None) => {
                return Err((
                    "oauth2_client_secret_file",
                    "is missing: auth = \"xoauth2\" needs `oauth2_client_secret_file` (or `oauth2_client_secret`)".into(),
                ));
            }
            _ => {}
        }
        if self
            .oauth2_scope
            .as_deref()
            .is_some_and(|s| s.trim().is_empty() || s.contains(['\r', '\n']))
        {
            return Err(("oauth2_scope", "must be a non-empty single line".into()));
        }
        Ok(())
    }

    /// The token endpoint in effect with `auth = "xoauth2"`.
    pub fn oauth2_token_url(&self) -> Option<String> {
        match (&self.oauth2_token_url, &self.oauth2_tenant) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(t)) => Some(super::oauth2::MICROSOFT_TOKEN_URL.replace("{tenant}", t)),
            (None, None) => None,
        }
    }

    /// The scope in effect with `auth = "xoauth2"`.
    pub fn oauth2_scope(&self) -> String {
        self.oauth2_scope
            .clone()
            .unwrap_or_else(|| super::oauth2::MICROSOFT_SMTP_SCOPE.to_owned())
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    if host.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if host.contains("://") {
        return Err(format!(
            "must be a bare host name, without a scheme: {host:?}"
        ));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(format!("is not a host name: {host:?}"));
    }
    if host.contains(':') && host.parse::<Ipv6Addr>().is_err() {
        return Err(format!(
            "must not contain a port ({host:?}); put the port in `smtp_port`"
        ));
    }
    Ok(())
}

/// Every `{word}` must be a known placeholder; other braces are kept literally.
fn validate_subject(subject: &str) -> Result<(), String> {
    if subject.contains(['\r', '\n']) {
        return Err("must be a single line".into());
    }
    for name in placeholders(subject) {
        if !SUBJECT_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "uses an unknown placeholder {{{name}}}; the known ones are {{snapshot_time}}, {{snapshot_id}} and {{summary}}"
            ));
        }
    }
    Ok(())
}

/// The names of `{word}` tokens (word = ASCII letters, digits, `_`).
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|rest| {
        let end = rest.find('}')?;
        let name = &rest[..end];
        let is_word =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_word.then_some(name)
    })
}

/// Fills the subject template; unknown `{word}` tokens cannot occur after `validate`.
pub(crate) fn render_subject(
    template: &str,
    snapshot_time: &str,
    snapshot_id: &str,
    summary: &str,
) -> String {
    template
        .replace("{snapshot_time}", snapshot_time)
        .replace("{snapshot_id}", snapshot_id)
        .replace("{summary}", summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EmailConfig {
        EmailConfig::new(
            "mail",
            "smtp.example.org",
            "SDS <sds@example.org>",
            vec!["ops@example.org".into()],
        )
    }

    #[test]
    fn defaults_from_toml_shape() {
        // The daemon deserializes a `[[destination]]` table minus `kind`.
        let c: EmailConfig =
            toml::from_str("name = 'm'\nsmtp_host = 'smtp.example.org'\nfrom = 'a@example.org'\nto = ['b@example.org']\n")
                .unwrap();
        assert_eq!(c.tls, EmailTls::Starttls);
        assert_eq!(c.port(), 587);
        assert_eq!(c.attach, EmailAttach::Files);
        assert_eq!(c.max_message_bytes, 20_000_000);
        assert_eq!(c.subject, DEFAULT_SUBJECT);
        assert!(!c.include_license_file);
        c.validate().unwrap();
        let c: EmailConfig = toml::from_str(
            "name = 'm'\nsmtp_host = 'h'\nfrom = 'a@example.org'\nto = ['b@example.org']\ntls = 'implicit'\nattach = 'zip'\n",
        )
        .unwrap();
        assert_eq!((c.port(), c.attach), (465, EmailAttach::Zip));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<EmailConfig>(
            "name = 'm'\nsmtp_host = 'h'\nfrom = 'a@example.org'\nto = ['b@example.org']\nsmtp_prot = 25\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("smtp_prot"), "{e}");
    }

    #[test]
    fn validate_names_the_key() {
        type Edit = Box<dyn Fn(&mut EmailConfig)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "smtp_host",
                Box::new(|c| c.smtp_host = "smtp.example.org:587".into()),
            ),
            ("smtp_host", Box::new(|c| c.smtp_host = "smtp://x".into())),
            ("smtp_port", Box::new(|c| c.smtp_port = Some(0))),
            ("password", Box::new(|c| c.username = Some("u".into()))),
            (
                "username",
                Box::new(|c| c.password = Some(SecretString::from("p"))),
            ),
            (
                "password_file",
                Box::new(|c| {
                    c.username = Some("u".into());
                    c.password = Some(SecretString::from("p"));
                    c.password_file = Some("/x".into());
                }),
            ),
            (
                "tls",
                Box::new(|c| {
                    c.tls = EmailTls::None;
                    c.username = Some("u".into());
                    c.password = Some(SecretString::from("p"));
                }),
            ),
            (
                "ca_file",
                Box::new(|c| {
                    c.tls = EmailTls::None;
                    c.ca_file = Some("/ca.pem".into());
                }),
            ),
            ("from", Box::new(|c| c.from = "not an address".into())),
            ("to", Box::new(|c| c.to.clear())),
            ("to[1]", Box::new(|c| c.to.push("nope".into()))),
            ("subject", Box::new(|c| c.subject = "x {snapshot}".into())),
            ("subject", Box::new(|c| c.subject = "a\nb".into())),
            ("max_message_bytes", Box::new(|c| c.max_message_bytes = 10)),
            ("timeout_secs", Box::new(|c| c.timeout_secs = 0)),
            (
                "connect_timeout_secs",
                Box::new(|c| c.connect_timeout_secs = 0),
            ),
        ];
        for (key, edit) in cases {
            let mut c = cfg();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
        }
        let mut ok = cfg();
        ok.smtp_host = "::1".into();
        ok.subject = "{snapshot_id} {not a placeholder} {".into();
        ok.validate().unwrap();
    }

    fn xoauth2() -> EmailConfig {
        let mut c = cfg();
        c.auth = EmailAuth::Xoauth2;
        c.username = Some("sds@example.org".into());
        c.oauth2_tenant = Some("contoso.onmicrosoft.com".into());
        c.oauth2_client_id = Some("11111111-2222-3333-4444-555555555555".into());
        c.oauth2_client_secret_file = Some("/etc/sds-sync/m365-secret".into());
        c
    }

    #[test]
    fn xoauth2_from_toml_with_microsoft_defaults() {
        let c: EmailConfig = toml::from_str(
            "name = 'm365'\nsmtp_host = 'smtp.office365.com'\nfrom = 'sds@contoso.example'\nto = ['sds@contoso.example']\n\
             auth = 'xoauth2'\nusername = 'sds@contoso.example'\noauth2_tenant = 'contoso.onmicrosoft.com'\n\
             oauth2_client_id = 'app'\noauth2_client_secret_file = '/s'\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.auth, EmailAuth::Xoauth2);
        assert_eq!(
            c.oauth2_token_url().unwrap(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(c.oauth2_scope(), "https://outlook.office365.com/.default");
        assert_eq!(c.port(), 587);
    }

    #[test]
    fn xoauth2_validation_names_the_key() {
        type Edit = Box<dyn Fn(&mut EmailConfig)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("username", Box::new(|c| c.username = None)),
            (
                "username",
                Box::new(|c| c.username = Some("not-a-mailbox".into())),
            ),
            (
                "password",
                Box::new(|c| c.password = Some(SecretString::from("p"))),
            ),
            ("tls", Box::new(|c| c.tls = EmailTls::None)),
            ("oauth2_tenant", Box::new(|c| c.oauth2_tenant = None)),
            (
                "oauth2_tenant",
                Box::new(|c| c.oauth2_tenant = Some("contoso/../x".into())),
            ),
            (
                "oauth2_token_url",
                Box::new(|c| c.oauth2_token_url = Some("https://idp/token".into())),
            ),
            (
                "oauth2_token_url",
                Box::new(|c| {
                    c.oauth2_tenant = None;
                    c.oauth2_token_url = Some("http://idp/token".into());
                    c.oauth2_scope = Some("smtp".into());
                }),
            ),
            (
                "oauth2_scope",
                Box::new(|c| {
                    c.oauth2_tenant = None;
                    c.oauth2_token_url = Some("https://idp/token".into());
                }),
            ),
            ("oauth2_client_id", Box::new(|c| c.oauth2_client_id = None)),
            (
                "oauth2_client_secret_file",
                Box::new(|c| c.oauth2_client_secret_file = None),
            ),
            (
                "oauth2_client_secret_file",
                Box::new(|c| c.oauth2_client_secret = Some(SecretString::from("s"))),
            ),
            (
                "oauth2_scope",
                Box::new(|c| c.oauth2_scope = Some(" ".into())),
            ),
        ];
        for (key, edit) in cases {
            let mut c = xoauth2();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        xoauth2().validate().unwrap();
        // OAuth2 keys without auth = "xoauth2" are a mistake, not silently ignored.
        let mut c = cfg();
        c.oauth2_client_id = Some("app".into());
        assert_eq!(c.validate().unwrap_err().key, "oauth2_client_id");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut c = cfg();
        c.username = Some("u".into());
        c.password = Some(SecretString::from("hunter2-secret"));
        assert!(!format!("{c:?}").contains("hunter2-secret"));
    }

    #[test]
    fn subject_template() {
        assert_eq!(
            render_subject(
                DEFAULT_SUBJECT,
                "2026-11-28T02:00:00Z",
                "7",
                "first snapshot"
            ),
            "SDS export 2026-11-28T02:00:00Z: first snapshot"
        );
        assert_eq!(
            render_subject("[{snapshot_id}] {summary} {x", "t", "7", "s"),
            "[7] s {x"
        );
    }
}
