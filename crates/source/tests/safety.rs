//! The SIS is never written and no secret ever shows in an error: read-only sessions on all
//! three databases, passwords kept out of connection errors, and connection errors that name
//! backend, host, port and database.

mod common;

use common::{TestDb, read_all, unique};
use sds_core::Entity;
use sds_source::{Source, SourceConfig, SourceError};
use secrecy::SecretString;
use std::time::Duration;

fn assert_read_only_error(err: &SourceError, db: &TestDb) {
    let text = err.to_string();
    assert!(
        matches!(err, SourceError::Query { .. }),
        "{}: {text}",
        db.name()
    );
    let lower = text.to_lowercase();
    assert!(
        lower.contains("read-only") || lower.contains("read only") || lower.contains("readonly"),
        "{}: not a read-only refusal: {text}",
        db.name()
    );
}

#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn postgres_session_refuses_writes() {
    let db = TestDb::postgres().await;
    let table = unique("sds_ro");
    db.exec(&format!("CREATE TABLE {table} (id INTEGER)")).await;
    db.with_tables(&[&table], async {
        // A data-modifying CTE is a single statement that returns rows, i.e. a valid "query".
        let sql = format!(
            "WITH w AS (INSERT INTO {table} (id) VALUES (1) RETURNING id) \
             SELECT id AS school_id, 'x' AS name FROM w"
        );
        let source = db.source(Entity::Schools, &sql).await;
        let err = read_all(&source, Entity::Schools)
            .await
            .expect_err("the INSERT must be refused");
        assert_read_only_error(&err, &db);
        source.close().await;
        assert_eq!(db.count(&format!("SELECT COUNT(*) FROM {table}")).await, 0);
    })
    .await;
    db.close().await;
}

#[cfg_attr(
    sds_no_mysql,
    ignore = "SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn mysql_session_refuses_writes() {
    let db = TestDb::mysql().await;
    let table = unique("sds_ro");
    let function = unique("sds_ro_fn");
    db.exec(&format!("CREATE TABLE {table} (id INTEGER)")).await;
    // A SELECT cannot write in MySQL, but a function it calls can.
    db.exec(&format!(
        "CREATE FUNCTION {function}() RETURNS INTEGER DETERMINISTIC MODIFIES SQL DATA \
         BEGIN INSERT INTO {table} (id) VALUES (1); RETURN 1; END"
    ))
    .await;
    db.with_tables(&[&table], async {
        let sql = format!("SELECT {function}() AS school_id, 'x' AS name");
        let source = db.source(Entity::Schools, &sql).await;
        let err = read_all(&source, Entity::Schools)
            .await
            .expect_err("the INSERT must be refused");
        assert_read_only_error(&err, &db);
        source.close().await;
        assert_eq!(db.count(&format!("SELECT COUNT(*) FROM {table}")).await, 0);
    })
    .await;
    db.exec(&format!("DROP FUNCTION IF EXISTS {function}"))
        .await;
    db.close().await;
}

#[tokio::test]
async fn sqlite_file_is_opened_read_only() {
    let db = TestDb::sqlite().await;
    db.exec("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1)")
        .await;
    let path = db.sqlite_path().expect("sqlite path");
    let before = std::fs::read(&path).expect("read the file");

    // SQLite runs every statement of a query string, so a write can ride along with a SELECT.
    let source = db
        .source(
            Entity::Schools,
            "SELECT id AS school_id, 'x' AS name FROM t; INSERT INTO t VALUES (2)",
        )
        .await;
    let err = read_all(&source, Entity::Schools)
        .await
        .expect_err("the INSERT must be refused");
    assert_read_only_error(&err, &db);
    // A plain read, and a probe, leave the file byte for byte as it was.
    let source = db
        .source(
            Entity::Schools,
            "SELECT id AS school_id, 'x' AS name FROM t",
        )
        .await;
    assert_eq!(
        read_all(&source, Entity::Schools)
            .await
            .map(|r| r.len())
            .ok(),
        Some(1)
    );
    source.probe(Entity::Schools).await.expect("probe");
    source.close().await;

    assert_eq!(db.count("SELECT COUNT(*) FROM t").await, 1);
    assert_eq!(std::fs::read(&path).expect("read the file"), before);
    db.close().await;
}

#[tokio::test]
async fn missing_sqlite_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("absent.db");
    let cfg = SourceConfig::new(format!("sqlite://{}?mode=rwc", path.display()));
    let err = Source::connect(&cfg).await.expect_err("no such file");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{text}");
    assert!(text.contains("absent.db"), "{text}");
    assert!(!path.exists(), "the file must not be created");
}

/// Wrong password for a real MySQL account: the error names where and as whom, never the
/// password (neither the override nor the one in the URL).
#[cfg_attr(
    sds_no_mysql,
    ignore = "SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn mysql_wrong_password_error_hides_the_password() {
    let db = TestDb::mysql().await;
    let user = unique("sds_pw");
    db.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'the-right-one-42'; \
         CREATE USER '{user}'@'localhost' IDENTIFIED BY 'the-right-one-42'; \
         CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'the-right-one-42'"
    ))
    .await;
    let mut url = url::Url::parse(&db.url).expect("MySQL test URL");
    let _ = url.set_username(&user);
    let _ = url.set_password(Some("UrlSecret-7731"));
    let mut cfg = SourceConfig::new(url.as_str());
    cfg.password = Some(SecretString::from("CfgSecret-9924"));
    cfg.connect_timeout = Duration::from_secs(10);
    let result = Source::connect(&cfg).await;
    db.exec(&format!(
        "DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost', '{user}'@'127.0.0.1'"
    ))
    .await;

    let err = result.expect_err("wrong password");
    let text = err.to_string();
    let debug = format!("{err:?}");
    assert!(matches!(err, SourceError::Connect { .. }), "{text}");
    for secret in ["UrlSecret-7731", "CfgSecret-9924", "the-right-one-42"] {
        assert!(!text.contains(secret), "password in error: {text}");
        assert!(!debug.contains(secret), "password in error debug: {debug}");
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port().unwrap_or(3306).to_string();
    for part in [
        host.as_str(),
        port.as_str(),
        url.path().trim_start_matches('/'),
        &user,
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    db.close().await;
}

/// PostgreSQL: an unknown database, with passwords in the URL and the override; whichever
/// way the server refuses, the error names the database and never a password.
#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn postgres_connect_error_hides_the_password() {
    let db = TestDb::postgres().await;
    let database = unique("sds_nodb");
    let mut url = url::Url::parse(&db.url).expect("PostgreSQL test URL");
    let _ = url.set_password(Some("UrlSecret-5521"));
    url.set_path(&format!("/{database}"));
    let mut cfg = SourceConfig::new(url.as_str());
    cfg.password = Some(SecretString::from("CfgSecret-1187"));
    cfg.connect_timeout = Duration::from_secs(10);
    let err = Source::connect(&cfg).await.expect_err("no such database");
    let text = format!("{err} {err:?}");
    assert!(matches!(err, SourceError::Connect { .. }), "{text}");
    assert!(
        !text.contains("UrlSecret-5521") && !text.contains("CfgSecret-1187"),
        "{text}"
    );
    assert!(text.contains(&database), "{text}");
    // The config's Debug form keeps the password hidden too.
    assert!(!format!("{cfg:?}").contains("CfgSecret-1187"));
    db.close().await;
}

/// Nothing listens on port 1 of the loopback: the error names backend, host, port and database
/// and comes at once, not after the pool's retries.
#[tokio::test]
async fn unreachable_server_error_names_host_port_and_database() {
    for (url, backend) in [
        (
            "postgres://sds:pw-not-shown@127.0.0.1:1/sis_nowhere",
            "PostgreSQL",
        ),
        ("mysql://sds:pw-not-shown@127.0.0.1:1/sis_nowhere", "MySQL"),
    ] {
        let mut cfg = SourceConfig::new(url);
        cfg.connect_timeout = Duration::from_secs(20);
        let started = std::time::Instant::now();
        let err = Source::connect(&cfg).await.expect_err("unreachable");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{backend}: waited for the timeout"
        );
        let text = err.to_string();
        assert!(matches!(err, SourceError::Connect { .. }), "{text}");
        for part in [backend, "127.0.0.1:1", "sis_nowhere", "sds"] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        assert!(!text.contains("pw-not-shown"), "{text}");
    }
}

#[tokio::test]
async fn unknown_scheme_is_an_invalid_url_without_the_url() {
    let err = Source::connect(&SourceConfig::new("oracle://sds:pw-not-shown@db/sis"))
        .await
        .expect_err("oracle is not supported");
    let text = err.to_string();
    assert!(matches!(err, SourceError::InvalidUrl { .. }), "{text}");
    assert!(
        text.contains("oracle") && !text.contains("pw-not-shown"),
        "{text}"
    );
}

/// An IPv6 literal host (`[::1]`) reaches the driver without its brackets (sqlx would look up
/// the bracketed name and fail with "failed to lookup address information", sqlx issue #1739),
/// is named with them, and still counts as this machine (no TLS demanded). Nothing listens on
/// port 1 of ::1, so the connection is refused: proof that the address itself was tried. (The
/// shared test databases listen on 127.0.0.1 only.)
#[tokio::test]
async fn an_ipv6_literal_host_is_connected_to_not_looked_up() {
    for (url, backend) in [
        (
            "postgres://sds:pw-not-shown@[::1]:1/sis_nowhere",
            "PostgreSQL",
        ),
        ("mysql://sds:pw-not-shown@[::1]:1/sis_nowhere", "MySQL"),
    ] {
        let mut cfg = SourceConfig::new(url);
        cfg.connect_timeout = Duration::from_secs(20);
        assert!(
            cfg.warnings().expect("valid URL").is_empty(),
            "{backend}: ::1 is local"
        );
        let err = Source::connect(&cfg).await.expect_err("nothing listens");
        let text = err.to_string();
        assert!(matches!(err, SourceError::Connect { .. }), "{text}");
        assert!(!text.contains("lookup"), "{backend}: {text}");
        assert!(text.to_lowercase().contains("refused"), "{backend}: {text}");
        assert!(text.contains("[::1]:1"), "{backend}: {text}");
        assert!(!text.contains("pw-not-shown"), "{text}");
    }
}
