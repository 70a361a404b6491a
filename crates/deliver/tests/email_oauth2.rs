//! The email destination with `auth = "xoauth2"` against a real SMTP server that verifies the
//! tokens: Dovecot submission with its `oauth2` passdb (token introspection), a local OAuth2
//! token endpoint (client-credentials grant), and an aiosmtpd sink behind Dovecot that stores
//! what was relayed. All started by `scripts/services/mail-oauth2.sh` (see
//! /tmp/sds-test-services/mail-oauth2.env). Each test finds its message by its own recipient.

use sds_core::FileEntry;
use sds_deliver::email::{EmailAuth, EmailConfig, EmailDestination, EmailTls};
use sds_deliver::{Destination, FileSet};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

struct Env {
    host: String,
    port: u16,
    smtps_port: u16,
    ca_file: PathBuf,
    token_url: String,
    client_id: String,
    short_client_id: String,
    cache_client_id: String,
    secret_file: PathBuf,
    scope: String,
    mailbox: String,
    out: PathBuf,
    issued_file: PathBuf,
}

/// The servers' coordinates. Tests are ignored (crates/deliver/build.rs) when the service is
/// not set up, so reaching here without it is a failure, never a silent pass.
fn env() -> Env {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run scripts/services/mail-oauth2.sh start and source /tmp/sds-test-services/mail-oauth2.env (scripts/test does both)")
        })
    };
    Env {
        host: get("SDS_TEST_OAUTH2_SMTP_HOST"),
        port: get("SDS_TEST_OAUTH2_SMTP_PORT").parse().unwrap(),
        smtps_port: get("SDS_TEST_OAUTH2_SMTPS_PORT").parse().unwrap(),
        ca_file: get("SDS_TEST_OAUTH2_CA_FILE").into(),
        token_url: get("SDS_TEST_OAUTH2_TOKEN_URL"),
        client_id: get("SDS_TEST_OAUTH2_CLIENT_ID"),
        short_client_id: get("SDS_TEST_OAUTH2_SHORT_CLIENT_ID"),
        cache_client_id: get("SDS_TEST_OAUTH2_CACHE_CLIENT_ID"),
        secret_file: get("SDS_TEST_OAUTH2_CLIENT_SECRET_FILE").into(),
        scope: get("SDS_TEST_OAUTH2_SCOPE"),
        mailbox: get("SDS_TEST_OAUTH2_MAILBOX"),
        out: get("SDS_TEST_OAUTH2_OUT").into(),
        issued_file: get("SDS_TEST_OAUTH2_ISSUED_FILE").into(),
    }
}

fn unique_rcpt(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{}-{nanos}-{}@district.test",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a district admin writes for Microsoft 365, pointed at the local servers:
/// `oauth2_token_url` instead of `oauth2_tenant` (which would name login.microsoftonline.com).
fn cfg(env: &Env, rcpt: &str) -> EmailConfig {
    let mut c = EmailConfig::new(
        "m365",
        env.host.clone(),
        format!("SDS Export <{}>", env.mailbox),
        vec![rcpt.to_owned()],
    );
    c.smtp_port = Some(env.port);
    c.tls = EmailTls::Starttls;
    c.auth = EmailAuth::Xoauth2;
    c.username = Some(env.mailbox.clone());
    c.ca_file = Some(env.ca_file.clone());
    c.oauth2_token_url = Some(env.token_url.clone());
    c.oauth2_client_id = Some(env.client_id.clone());
    c.oauth2_client_secret_file = Some(env.secret_file.clone());
    c.oauth2_scope = Some(env.scope.clone());
    c.connect_timeout_secs = 5;
    c.timeout_secs = 30;
    c
}

fn set(dir: &Path, id: &str) -> FileSet {
    let data = "SIS ID,School SIS ID,Username\r\n1,10,zoe@school.example\r\n";
    std::fs::write(dir.join("Student.csv"), data).unwrap();
    FileSet {
        snapshot_id: id.into(),
        created_at: "2026-11-28T02:00:00Z".into(),
        dir: dir.to_path_buf(),
        files: vec![FileEntry {
            name: "Student.csv".into(),
            bytes: data.len() as u64,
            hash: String::new(),
            rows: 1,
            changes: None,
            license: false,
        }],
    }
}

/// The relayed message for `rcpt` (raw .eml), waiting for it.
fn wait_message(out: &Path, rcpt: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = find_message(out, rcpt) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no message for {rcpt} in {}",
            out.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_message(out: &Path, rcpt: &str) -> Option<Vec<u8>> {
    for entry in std::fs::read_dir(out).ok()?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text)
            && meta["rcpt_tos"]
                .as_array()
                .is_some_and(|r| r.iter().any(|a| a.as_str() == Some(rcpt)))
        {
            return std::fs::read(path.with_extension("eml")).ok();
        }
    }
    None
}

/// Tokens the endpoint has issued to `client_id` so far.
fn issued(env: &Env, client_id: &str) -> u64 {
    std::fs::read_to_string(&env.issued_file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v[client_id].as_u64())
        .unwrap_or(0)
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn xoauth2_delivers_through_dovecot_and_reuses_the_cached_token() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let rcpt1 = unique_rcpt("oauth-a");
    let rcpt2 = unique_rcpt("oauth-b");
    let mut c = cfg(&env, &rcpt1);
    c.to.push(rcpt2.clone());
    c.oauth2_client_id = Some(env.cache_client_id.clone());
    let dest = EmailDestination::new(c).unwrap();
    let before = issued(&env, &env.cache_client_id);

    dest.deliver(&set(dir.path(), "snap-1")).await.unwrap();
    let raw = String::from_utf8(wait_message(&env.out, &rcpt1)).unwrap();
    assert!(raw.contains("Student.csv"), "{raw}");
    assert!(raw.contains(&env.mailbox), "{raw}");
    assert!(find_message(&env.out, &rcpt2).is_some());

    // A check and a second send within the token's hour: no new token.
    dest.check().await.unwrap();
    dest.deliver(&set(dir.path(), "snap-2")).await.unwrap();
    assert_eq!(issued(&env, &env.cache_client_id), before + 1);
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn xoauth2_refreshes_a_token_before_it_expires() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let rcpt = unique_rcpt("oauth-refresh");
    let mut c = cfg(&env, &rcpt);
    // Its tokens live 3 s, so sds-sync replaces them after 1.5 s (half the lifetime).
    c.oauth2_client_id = Some(env.short_client_id.clone());
    let dest = EmailDestination::new(c).unwrap();
    let before = issued(&env, &env.short_client_id);
    dest.deliver(&set(dir.path(), "snap-1")).await.unwrap();
    let after_first = issued(&env, &env.short_client_id);
    assert!(after_first > before);
    // Long enough that the old token has expired for Dovecot too: a stale cache fails here.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    dest.deliver(&set(dir.path(), "snap-2")).await.unwrap();
    assert!(issued(&env, &env.short_client_id) > after_first);
    wait_message(&env.out, &rcpt);
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn xoauth2_over_implicit_tls() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let rcpt = unique_rcpt("oauth-implicit");
    let mut c = cfg(&env, &rcpt);
    c.tls = EmailTls::Implicit;
    c.smtp_port = Some(env.smtps_port);
    EmailDestination::new(c)
        .unwrap()
        .deliver(&set(dir.path(), "snap-1"))
        .await
        .unwrap();
    wait_message(&env.out, &rcpt);
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn wrong_client_secret_is_permanent_names_the_keys_and_hides_the_secret() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "not-the-secret-4711\n").unwrap();
    let rcpt = unique_rcpt("oauth-badsecret");
    let mut c = cfg(&env, &rcpt);
    c.oauth2_client_secret_file = Some(secret);
    let dest = EmailDestination::new(c).unwrap();
    for result in [
        dest.check().await,
        dest.deliver(&set(dir.path(), "snap-1")).await,
    ] {
        let e = result.unwrap_err();
        assert!(e.is_permanent(), "{e}");
        assert!(e.message.contains("invalid_client"), "{e}");
        assert!(e.message.contains("oauth2_client_id"), "{e}");
        assert!(!e.message.contains("not-the-secret-4711"), "{e}");
    }
    assert!(find_message(&env.out, &rcpt).is_none());

    let mut c = cfg(&env, &rcpt);
    c.oauth2_scope = Some("https://graph.microsoft.com/.default".into());
    let e = EmailDestination::new(c).unwrap().check().await.unwrap_err();
    assert!(
        e.is_permanent() && e.message.contains("oauth2_scope"),
        "{e}"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn server_refuses_a_token_for_another_mailbox() {
    // The token is the app's, for the configured mailbox; Dovecot (like Exchange Online) refuses
    // it for another one. This proves the server really checks what sds-sync sends.
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let rcpt = unique_rcpt("oauth-othermbx");
    let mut c = cfg(&env, &rcpt);
    c.username = Some("someone-else@district.test".into());
    let dest = EmailDestination::new(c).unwrap();
    let e = dest.deliver(&set(dir.path(), "snap-1")).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(e.message.contains("refused the OAuth2 token"), "{e}");
    assert!(e.message.contains("someone-else@district.test"), "{e}");
    assert!(find_message(&env.out, &rcpt).is_none());
    let e = dest.check().await.unwrap_err();
    assert!(e.message.contains("refused the OAuth2 token"), "{e}");
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn unreachable_token_endpoint_is_retryable() {
    let env = env();
    let rcpt = unique_rcpt("oauth-down");
    let mut c = cfg(&env, &rcpt);
    // A port nothing listens on (bound and dropped).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.oauth2_token_url = Some(format!("https://127.0.0.1:{port}/token"));
    let e = EmailDestination::new(c).unwrap().check().await.unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert!(e.message.contains("token endpoint"), "{e}");
}

#[tokio::test]
#[cfg_attr(
    sds_no_mail_oauth2_server,
    ignore = "XOAUTH2 test servers not set up: run scripts/test (it starts them), or scripts/services/mail-oauth2.sh start and source its env"
)]
async fn check_logs_in_without_sending_and_send_test_sends_one() {
    let env = env();
    let rcpt = unique_rcpt("oauth-check");
    let dest = EmailDestination::new(cfg(&env, &rcpt)).unwrap();
    dest.check().await.unwrap();
    let verified = dest.check_verified();
    assert!(
        verified.contains("XOAUTH2")
            && verified.contains("STARTTLS")
            && verified.contains("no message sent"),
        "{verified}"
    );
    // Give a message the time to arrive, had one been sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        find_message(&env.out, &rcpt).is_none(),
        "check sent a message"
    );

    let sent = dest
        .send_test()
        .expect("email has a test message")
        .await
        .unwrap();
    assert!(sent.contains(&rcpt), "{sent}");
    let raw = String::from_utf8(wait_message(&env.out, &rcpt)).unwrap();
    assert!(raw.contains("sds-sync test message"), "{raw}");
}
