//! How a SIS is reached over the network: verified TLS by default for any host but this machine,
//! clear text only when the URL says so (with a warning), and never a password to a server that
//! declined TLS. Against hostile fake servers (PostgreSQL, MySQL) on 127.0.0.1 reached by a
//! non-local host NAME, the shared test databases, and TLS-only PostgreSQL/MariaDB instances
//! (scripts/services/sis.sh) whose certificate comes from a test CA.
//!
//! The non-local name (`SDS_TEST_REMOTE_HOST`, default `sis.sds-sync.test`) must resolve to
//! 127.0.0.1: scripts/services/sis.sh adds it to /etc/hosts and writes sis.env. Without that the
//! tests that need it are ignored with the reason (build.rs: `sds_no_sis_tls`), except under
//! CI=true, where they fail.

mod common;

use common::{MYSQL_ENV, POSTGRES_ENV, env_url, read_all};
use sds_core::Entity;
use sds_source::{Source, SourceConfig, SourceError};
use secrecy::SecretString;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "Fake-Server-Must-Not-See-This-9x";

/// The non-local name that resolves to 127.0.0.1. A test that needs it is ignored when
/// sis.sh has not set it up (build.rs), so one that does not resolve here fails the test.
fn remote_host() -> String {
    let name =
        std::env::var("SDS_TEST_REMOTE_HOST").unwrap_or_else(|_| "sis.sds-sync.test".to_owned());
    let resolves_to_loopback = (name.as_str(), 0)
        .to_socket_addrs()
        .map(|mut addrs| addrs.any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST))
        .unwrap_or(false);
    assert!(
        resolves_to_loopback,
        "{name} does not resolve to 127.0.0.1: run scripts/services/sis.sh start \
         (scripts/test-services does) so the remote-host TLS tests can run"
    );
    name
}

fn ca_file() -> PathBuf {
    PathBuf::from(env_url("SDS_TEST_SIS_CA_FILE"))
}

fn config(url: &str) -> SourceConfig {
    let mut cfg = SourceConfig::new(url);
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.queries.insert(
        Entity::Schools,
        "SELECT school_id, name FROM schools".to_owned(),
    );
    cfg
}

/// What a fake server saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A hostile server on 127.0.0.1: accepts up to 4 connections within 20 s, hands each to
/// `session`, then stops by itself.
async fn fake_server<F, Fut>(session: F) -> (u16, Seen)
where
    F: Fn(TcpStream, Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let serve = async {
            for _ in 0..4 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), session(stream, log.clone()))
                    .await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(20), serve).await;
    });
    (port, seen)
}

fn seen(log: &Seen) -> Vec<String> {
    log.lock().expect("log").clone()
}

/// PostgreSQL that declines TLS and asks for the password in clear text
/// (AuthenticationCleartextPassword), recording what the client sends.
async fn postgres_session(mut s: TcpStream, seen: Seen) {
    let mut head = [0u8; 8];
    if s.read_exact(&mut head).await.is_err() {
        return;
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if len == 8 && code == 80_877_103 {
        seen.lock().expect("log").push("SSLRequest".into());
        // 'N': this server does not do TLS.
        if s.write_all(b"N").await.is_err() || s.read_exact(&mut head).await.is_err() {
            return;
        }
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut rest = vec![0u8; len.saturating_sub(8).min(10_000)];
    if s.read_exact(&mut rest).await.is_err() {
        return;
    }
    seen.lock().expect("log").push("StartupMessage".into());
    // AuthenticationCleartextPassword.
    if s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.is_err() {
        return;
    }
    let mut tag = [0u8; 5];
    if s.read_exact(&mut tag).await.is_err() {
        return;
    }
    let len = u32::from_be_bytes([tag[1], tag[2], tag[3], tag[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4).min(10_000)];
    if s.read_exact(&mut body).await.is_ok() && tag[0] == b'p' {
        let password = String::from_utf8_lossy(&body)
            .trim_end_matches('\0')
            .to_owned();
        seen.lock()
            .expect("log")
            .push(format!("password:{password}"));
    }
}

/// MySQL 8 greeting without the SSL capability; records every byte the client sends after it.
async fn mysql_session(mut s: TcpStream, seen: Seen) {
    // A real MySQL 8.0.18 handshake (from sqlx's own tests) with CLIENT_SSL (0x0800) cleared.
    const GREETING: &[u8] = b"\n8.0.18\x00\x19\x00\x00\x00\x114aB0c\x06g\x00\xff\xf7\xff\x02\x00\xff\xc7\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00tL\x03s\x0f[4\rl4. \x00caching_sha2_password\x00";
    let len = GREETING.len() as u32;
    let mut packet = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, 0];
    packet.extend_from_slice(GREETING);
    if s.write_all(&packet).await.is_err() {
        return;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    seen.lock().expect("log").push(format!(
        "client sent {} bytes: {}",
        got.len(),
        String::from_utf8_lossy(&got)
    ));
}

fn assert_tls_refusal(err: &SourceError, host: &str) {
    let text = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{text}");
    assert!(text.contains("TLS failed"), "not a TLS error: {text}");
    assert!(text.contains(host), "the host is not named: {text}");
    assert!(
        text.contains("ca_file") && text.contains("sslmode=disable"),
        "the hint does not say what to do: {text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}

#[cfg_attr(
    sds_no_sis_tls,
    ignore = "the TLS test SIS servers are not set up: run scripts/test, or scripts/services/sis.sh start and source /tmp/sds-test-services/sis.env"
)]
#[tokio::test]
async fn a_fake_postgres_on_a_remote_name_gets_no_password_by_default() {
    let host = remote_host();
    let (port, log) = fake_server(postgres_session).await;
    let url = format!("postgres://sis_reader:{PASSWORD}@{host}:{port}/sis");

    // By default: TLS is required, the server declines it, nothing more is sent.
    let cfg = config(&url);
    assert!(cfg.warnings().expect("valid URL").is_empty());
    let err = Source::connect(&cfg)
        .await
        .expect_err("no TLS, no connection");
    assert_tls_refusal(&err, &host);
    // The password from [source] password is protected the same way.
    let mut cfg = config(&format!("postgres://sis_reader@{host}:{port}/sis"));
    cfg.password = Some(SecretString::from(PASSWORD));
    let err = Source::connect(&cfg)
        .await
        .expect_err("no TLS, no connection");
    assert_tls_refusal(&err, &host);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        seen(&log),
        ["SSLRequest", "SSLRequest"],
        "the client went on"
    );

    // Only when the URL asks for clear text does the password go out, with a warning. (This
    // also proves the fake server would have caught it above.)
    let (port, log) = fake_server(postgres_session).await;
    let cfg = config(&format!(
        "postgres://sis_reader:{PASSWORD}@{host}:{port}/sis?sslmode=disable"
    ));
    let warnings = cfg.warnings().expect("valid URL");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("sslmode=disable") && warnings[0].contains("clear text"),
        "{warnings:?}"
    );
    assert!(
        Source::connect(&cfg).await.is_err(),
        "the fake never says OK"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        seen(&log),
        ["StartupMessage".to_owned(), format!("password:{PASSWORD}")]
    );
}

#[cfg_attr(
    sds_no_sis_tls,
    ignore = "the TLS test SIS servers are not set up: run scripts/test, or scripts/services/sis.sh start and source /tmp/sds-test-services/sis.env"
)]
#[tokio::test]
async fn a_fake_mysql_on_a_remote_name_gets_nothing_by_default() {
    let host = remote_host();
    let (port, log) = fake_server(mysql_session).await;
    let url = format!("mysql://sis_reader:{PASSWORD}@{host}:{port}/sis");
    let cfg = config(&url);
    assert!(cfg.warnings().expect("valid URL").is_empty());
    let err = Source::connect(&cfg)
        .await
        .expect_err("no TLS, no connection");
    assert_tls_refusal(&err, &host);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen(&log), ["client sent 0 bytes: "], "no login was sent");

    // ssl-mode=DISABLED written in the URL: the login goes out (user name and password
    // scramble), with a warning that also names the RSA key fetch.
    let (port, log) = fake_server(mysql_session).await;
    let cfg = config(&format!(
        "mariadb://sis_reader:{PASSWORD}@{host}:{port}/sis?ssl-mode=DISABLED"
    ));
    let warnings = cfg.warnings().expect("valid URL");
    assert!(
        warnings.len() == 1 && warnings[0].contains("RSA key"),
        "{warnings:?}"
    );
    let _ = Source::connect(&cfg)
        .await
        .expect_err("the fake never says OK");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = seen(&log);
    assert!(
        log.len() == 1 && log[0].contains("sis_reader"),
        "the fake should have received the login: {log:?}"
    );
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn the_shared_local_databases_still_work_by_default() {
    for var in [POSTGRES_ENV, MYSQL_ENV] {
        let url = env_url(var);
        let mut cfg = SourceConfig::new(&url);
        cfg.queries.insert(
            Entity::Schools,
            "SELECT '001' AS school_id, 'North' AS name".to_owned(),
        );
        assert!(
            cfg.warnings().expect("valid URL").is_empty(),
            "{var}: a local database gets no warning"
        );
        let source = Source::connect(&cfg)
            .await
            .unwrap_or_else(|e| panic!("{var}: {e}"));
        let rows = read_all(&source, Entity::Schools).await.expect("read");
        assert_eq!(rows.len(), 1);
        let transport = source.transport().await.expect("networked");
        assert!(
            transport.contains("the default on this machine")
                && transport.contains("this session:"),
            "{var}: {transport}"
        );
        source.close().await;
    }
}

#[cfg_attr(
    any(sds_no_mysql, sds_no_sis_tls),
    ignore = "needs MariaDB (SDS_TEST_MYSQL_URL) and the non-local host name of scripts/services/sis.sh: run scripts/test"
)]
#[tokio::test]
async fn tls_required_against_a_server_without_tls_fails_clearly() {
    // The shared MariaDB has no TLS (have_ssl = DISABLED).
    let url = env_url(MYSQL_ENV);
    let sep = if url.contains('?') { '&' } else { '?' };
    let cfg = config(&format!("{url}{sep}ssl-mode=REQUIRED"));
    let err = Source::connect(&cfg)
        .await
        .expect_err("no TLS on that server");
    let text = err.to_string();
    assert!(
        text.contains("TLS failed") && text.contains("server does not support TLS"),
        "{text}"
    );
    assert!(text.contains("has TLS turned on"), "{text}");

    // And by its remote name, with no ssl-mode at all.
    let host = remote_host();
    let remote = url.replacen("127.0.0.1", &host, 1);
    assert_ne!(remote, url, "{MYSQL_ENV} is expected to name 127.0.0.1");
    let err = Source::connect(&config(&remote))
        .await
        .expect_err("verified TLS by default");
    assert_tls_refusal(&err, &host);
}

/// The TLS-only test servers by their remote name: verified TLS works with `ca_file`, and fails
/// clearly without it (their CA is not a public one).
#[cfg_attr(
    sds_no_sis_tls,
    ignore = "the TLS test SIS servers are not set up: run scripts/test, or scripts/services/sis.sh start and source /tmp/sds-test-services/sis.env"
)]
#[tokio::test]
async fn verified_tls_to_a_remote_name_works_with_the_private_ca() {
    for var in ["SDS_TEST_PG_TLS_URL", "SDS_TEST_MYSQL_TLS_URL"] {
        let (url, ca) = (env_url(var), ca_file());
        let host = remote_host();
        let err = Source::connect(&config(&url))
            .await
            .expect_err("the test CA is not trusted without ca_file");
        let text = err.to_string();
        assert!(
            text.contains("TLS failed") && text.contains("ca_file"),
            "{var}: {text}"
        );

        let mut cfg = config(&url);
        cfg.ca_file = Some(ca.clone());
        assert!(cfg.warnings().expect("valid").is_empty(), "{var}");
        let source = Source::connect(&cfg)
            .await
            .unwrap_or_else(|e| panic!("{var}: {e}"));
        let rows = read_all(&source, Entity::Schools).await.expect("read");
        // The optional school columns the query does not return read as NULL.
        let mut want = vec![Some("001".to_owned()), Some("North High".to_owned())];
        want.resize(Entity::Schools.columns().len(), None);
        assert_eq!(rows, vec![want]);
        let transport = source.transport().await.expect("networked");
        assert!(
            transport.contains("certificate and host name verified")
                && transport.contains("this session: TLS (TLSv1."),
            "{var}: {transport}"
        );
        source.close().await;

        // The certificate names the host; an IP address it does not name fails verification.
        // 127.0.0.1 is local, so ask for verification explicitly through a non-local address.
        let by_ip = url.replacen(&host, "127.0.0.1", 1);
        let sep = if by_ip.contains('?') { '&' } else { '?' };
        let mode = if var.contains("PG") {
            "sslmode=verify-full"
        } else {
            "ssl-mode=VERIFY_IDENTITY"
        };
        let mut cfg = config(&format!("{by_ip}{sep}{mode}"));
        cfg.ca_file = Some(ca);
        let source = Source::connect(&cfg)
            .await
            .unwrap_or_else(|e| panic!("{var}: 127.0.0.1 is in the certificate: {e}"));
        source.close().await;
    }
}

#[tokio::test]
async fn a_ca_file_that_is_not_a_certificate_is_named() {
    let dir = tempfile::tempdir().expect("temp");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate\n").expect("write");
    let mut cfg = config("postgres://sis@db.invalid/sis");
    cfg.ca_file = Some(path.clone());
    let err = Source::connect(&cfg).await.expect_err("bad CA file");
    assert!(matches!(err, SourceError::CaFile { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    cfg.ca_file = Some(dir.path().join("missing.pem"));
    let err = cfg.warnings().expect_err("missing CA file");
    assert!(err.to_string().contains("missing.pem"), "{err}");
}
