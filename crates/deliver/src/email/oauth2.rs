//! OAuth2 access tokens for SMTP `AUTH XOAUTH2` (`auth = "xoauth2"`): the client-credentials
//! grant (RFC 6749 section 4.4) against the configured token endpoint (Microsoft Entra ID for
//! Microsoft 365, or any other), with the token cached until shortly before it expires.
//!
//! One POST over HTTPS per token, through hyper's HTTP/1 client connection on tokio-rustls (the
//! crates lettre and the FTP client already bring in): no HTTP client pool, no redirects, no
//! proxies, nothing a token request needs.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Microsoft Entra ID's token endpoint for a tenant (`oauth2_tenant`).
pub const MICROSOFT_TOKEN_URL: &str =
    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// The scope Exchange Online wants for SMTP AUTH with the client-credentials grant.
pub const MICROSOFT_SMTP_SCOPE: &str = "https://outlook.office365.com/.default";
/// A token endpoint answer is a few kilobytes; more is not a token endpoint.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Refresh this long before the token expires (at most half its lifetime), so a token never
/// runs out between fetching it and the server checking it.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Why no token could be had. `permanent` failures need a configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    pub permanent: bool,
    pub message: String,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl TokenError {
    fn permanent(message: impl Into<String>) -> Self {
        TokenError {
            permanent: true,
            message: message.into(),
        }
    }
    fn retryable(message: impl Into<String>) -> Self {
        TokenError {
            permanent: false,
            message: message.into(),
        }
    }
}

/// Where and how to ask for tokens.
pub(crate) struct TokenSource {
    url: url::Url,
    host: String,
    port: u16,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    tls: Arc<ClientConfig>,
    timeout: Duration,
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A token endpoint URL must be `https://host[:port]/path`; returns host and port.
pub(crate) fn check_token_url(text: &str) -> Result<(url::Url, String, u16), String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a URL ({e}): {text:?}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "must start with https:// (the client secret is sent to it): {text:?}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain a user name or password; use oauth2_client_id and oauth2_client_secret"
                .into(),
        );
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("has no host name: {text:?}")),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    Ok((url, host, port))
}

/// When a token that lives `lifetime` should be replaced.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2))
}

impl TokenSource {
    pub(crate) fn new(
        token_url: &str,
        client_id: String,
        client_secret: SecretString,
        scope: String,
        tls: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (url, host, port) = check_token_url(token_url)?;
        Ok(TokenSource {
            url,
            host,
            port,
            client_id,
            client_secret,
            scope,
            tls,
            timeout,
            cache: Mutex::new(None),
        })
    }

    /// The token endpoint, for messages (it holds no secret).
    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    /// A valid access token: the cached one while it is fresh, else a new one.
    pub(crate) async fn token(&self) -> Result<SecretString, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let started = Instant::now();
        let (token, lifetime) = tokio::time::timeout(self.timeout, self.fetch())
            .await
            .map_err(|_| {
                TokenError::retryable(format!(
                    "OAuth2 token endpoint {} did not answer within {} s; will retry",
                    self.url,
                    self.timeout.as_secs()
                ))
            })??;
        tracing::debug!(
            token_url = %self.url,
            lifetime_secs = lifetime.as_secs(),
            duration_ms = started.elapsed().as_millis() as u64,
            "oauth2 token fetched"
        );
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: started + refresh_after(lifetime),
        });
        Ok(token)
    }

    /// Forgets the cached token (the server refused it: it may have been revoked).
    pub(crate) async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self) -> Result<(SecretString, Duration), TokenError> {
        let endpoint = &self.url;
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                TokenError::retryable(format!(
                    "cannot connect to the OAuth2 token endpoint {endpoint} ({e}); check the URL, DNS and firewalls (outbound HTTPS); will retry"
                ))
            })?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| {
            TokenError::permanent(format!(
                "OAuth2 token endpoint {endpoint}: {:?} is not a valid TLS server name: {e}",
                self.host
            ))
        })?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let cert = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                if cert {
                    TokenError::permanent(format!(
                        "OAuth2 token endpoint {endpoint}: its TLS certificate is not trusted ({e}); for an internal CA set `ca_file`"
                    ))
                } else {
                    TokenError::retryable(format!(
                        "OAuth2 token endpoint {endpoint}: TLS handshake failed ({e}); will retry"
                    ))
                }
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| {
                TokenError::retryable(format!(
                    "OAuth2 token endpoint {endpoint}: HTTP connection failed ({e}); will retry"
                ))
            })?;
        // The connection task ends when the request is done and `sender` is dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });

        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose_secret())
            .append_pair("scope", &self.scope)
            .finish();
        let path = match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_owned(),
        };
        let authority = match self.url.port() {
            Some(p) => format!("{}:{p}", self.url.host_str().unwrap_or(&self.host)),
            None => self.url.host_str().unwrap_or(&self.host).to_owned(),
        };
        let request = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("sds-sync/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| {
                TokenError::permanent(format!(
                    "OAuth2 token endpoint {endpoint}: cannot build the request: {e}"
                ))
            })?;
        let response = sender.send_request(request).await.map_err(|e| {
            TokenError::retryable(format!(
                "OAuth2 token endpoint {endpoint}: the request failed ({e}); will retry"
            ))
        })?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                TokenError::retryable(format!(
                    "OAuth2 token endpoint {endpoint}: reading the answer failed ({e}); will retry"
                ))
            })?
            .to_bytes();
        parse_response(endpoint.as_str(), &self.client_id, status, &bytes)
    }
}

/// Reads a token endpoint answer: the token and its lifetime, or why not.
fn parse_response(
    endpoint: &str,
    client_id: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<(SecretString, Duration), TokenError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if status.is_success() {
        let obj = json.as_ref().and_then(|v| v.as_object()).ok_or_else(|| {
            TokenError::retryable(format!(
                "OAuth2 token endpoint {endpoint} answered {status} without a JSON object; check oauth2_token_url; will retry"
            ))
        })?;
        let token = obj
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                TokenError::permanent(format!(
                    "OAuth2 token endpoint {endpoint} answered {status} without an access_token; check oauth2_token_url"
                ))
            })?;
        if let Some(kind) = obj.get("token_type").and_then(|t| t.as_str())
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenError::permanent(format!(
                "OAuth2 token endpoint {endpoint} issued a {kind:?} token; SMTP XOAUTH2 needs a Bearer token"
            )));
        }
        // A number in the standard; a string in some older endpoints (Azure AD v1).
        let lifetime = match obj.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        // Without a lifetime, assume the common hour, and refresh well before it.
        .unwrap_or(3600);
        return Ok((
            SecretString::from(token.to_owned()),
            Duration::from_secs(lifetime),
        ));
    }
    let field = |k: &str| {
        json.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let code = field("error");
    // Microsoft puts the AADSTS code and a useful sentence here; it never holds the secret.
    let description = field("error_description")
        .map(|d| {
            let first = d.lines().next().unwrap_or("").trim().to_owned();
            format!(": {first}")
        })
        .unwrap_or_default();
    let what = code.as_deref().unwrap_or("no error code");
    let advice = match code.as_deref() {
        Some("invalid_client") | Some("unauthorized_client") => format!(
            "check oauth2_client_id ({client_id:?}) and the client secret (is it expired?), and that the app registration may use the client-credentials grant"
        ),
        Some("invalid_scope") => {
            "check oauth2_scope (Microsoft 365: \"https://outlook.office365.com/.default\")".into()
        }
        Some("invalid_request") | Some("unsupported_grant_type") | Some("invalid_grant") => {
            "check oauth2_tenant / oauth2_token_url: this endpoint does not take this request"
                .into()
        }
        _ => String::new(),
    };
    let permanent = matches!(status.as_u16(), 400 | 401 | 403 | 404)
        && code.as_deref() != Some("temporarily_unavailable");
    let message = if permanent {
        format!(
            "OAuth2 token endpoint {endpoint} refused the client-credentials request ({status}, {what}{description}); {}",
            if advice.is_empty() {
                "check oauth2_tenant or oauth2_token_url, oauth2_client_id, the client secret and oauth2_scope".to_owned()
            } else {
                advice
            }
        )
    } else {
        format!(
            "OAuth2 token endpoint {endpoint} answered {status} ({what}{description}); will retry"
        )
    };
    Err(TokenError { permanent, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_five_minutes_or_half_the_lifetime() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3300)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_urls() {
        let (_, host, port) = check_token_url(
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        )
        .unwrap();
        assert_eq!((host.as_str(), port), ("login.microsoftonline.com", 443));
        let (_, host, port) = check_token_url("https://127.0.0.1:25480/token").unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", 25480));
        assert!(
            check_token_url("http://idp.example/token")
                .unwrap_err()
                .contains("https")
        );
        assert!(check_token_url("https://u:p@idp.example/token").is_err());
        assert!(check_token_url("idp.example/token").is_err());
    }

    #[test]
    fn success_answers() {
        let ok = |body: &str| parse_response("u", "c", StatusCode::OK, body.as_bytes());
        let (t, l) =
            ok(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#).unwrap();
        assert_eq!((t.expose_secret(), l.as_secs()), ("abc", 3599));
        let (_, l) =
            ok(r#"{"token_type":"Bearer","expires_in":"3600","access_token":"abc"}"#).unwrap();
        assert_eq!(l.as_secs(), 3600);
        let (_, l) = ok(r#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(l.as_secs(), 3600);
        assert!(
            ok(r#"{"token_type":"mac","access_token":"abc"}"#)
                .unwrap_err()
                .permanent
        );
        assert!(ok(r#"{"token_type":"Bearer"}"#).unwrap_err().permanent);
        assert!(!ok("<html>").unwrap_err().permanent);
    }

    #[test]
    fn error_answers_are_classified_and_explained() {
        let e = parse_response(
            "https://idp/token",
            "app-1",
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#,
        )
        .unwrap_err();
        assert!(e.permanent);
        assert!(e.message.contains("AADSTS7000215"), "{e}");
        assert!(!e.message.contains("Trace ID"), "{e}");
        assert!(e.message.contains("oauth2_client_id (\"app-1\")"), "{e}");
        let e = parse_response(
            "u",
            "c",
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_scope"}"#,
        )
        .unwrap_err();
        assert!(e.permanent && e.message.contains("oauth2_scope"), "{e}");
        let e = parse_response("u", "c", StatusCode::SERVICE_UNAVAILABLE, b"busy").unwrap_err();
        assert!(!e.permanent && e.message.contains("will retry"), "{e}");
        let e = parse_response("u", "c", StatusCode::TOO_MANY_REQUESTS, b"{}").unwrap_err();
        assert!(!e.permanent, "{e}");
    }
}
