//! The source contract on real databases: required columns must be there (checked before the
//! first row, so also for an empty result), optional ones may be missing, names match
//! case-insensitively, extra columns are ignored, and query errors name the query.

mod common;

use common::{Kind, TestDb, read_all, s, unique};
use sds_core::Entity;
use sds_source::{Source, SourceConfig, SourceError};

/// A small `schools`-like table with three rows.
async fn schools_table(db: &TestDb) -> String {
    let table = unique("sds_contract");
    db.exec(&format!(
        "CREATE TABLE {table} (school_code VARCHAR(10), school_name VARCHAR(50));
         INSERT INTO {table} VALUES ('001', 'Harbor'), ('002', 'Northgate'), ('003', 'Cedar')"
    ))
    .await;
    table
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn missing_required_column_names_query_and_column() {
    for db in TestDb::all().await {
        let table = schools_table(&db).await;
        db.with_tables(&[&table], async {
            // With rows, and with no rows at all: the check does not wait for a first row.
            for filter in ["", "WHERE 1 = 0"] {
                let sql = format!("SELECT school_code AS school_id FROM {table} {filter}");
                let source = db.source(Entity::Schools, &sql).await;
                let mut rows = 0;
                let err = source
                    .read(Entity::Schools, |_| rows += 1)
                    .await
                    .expect_err("`name` is missing");
                assert_eq!(rows, 0, "{}: no row is handed out", db.name());
                let text = err.to_string();
                assert!(
                    matches!(err, SourceError::MissingColumn { column: "name", .. }),
                    "{}: {text}",
                    db.name()
                );
                for part in ["[source.queries] schools", "`name`", "school_id"] {
                    assert!(
                        text.contains(part),
                        "{}: {part:?} missing: {text}",
                        db.name()
                    );
                }
                // probe finds it too.
                let err = source.probe(Entity::Schools).await.expect_err("probe");
                assert!(matches!(err, SourceError::MissingColumn { .. }), "{err}");
                source.close().await;
            }
        })
        .await;
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn missing_optional_column_reads_none_and_extras_are_ignored() {
    for db in TestDb::all().await {
        let table = schools_table(&db).await;
        db.with_tables(&[&table], async {
            // Sections: `course_description` is optional and absent; `extra` is not in the
            // contract. Mixed-case aliases match the lower-case contract names.
            let sql = format!(
                "SELECT school_code AS School_Id, 'C1' AS COURSE_CODE, 'S1' AS section_code, \
                 school_name AS extra FROM {table} ORDER BY school_code"
            );
            let source = db.source(Entity::Sections, &sql).await;
            let rows = read_all(&source, Entity::Sections)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
            // Every optional column the query lacks reads as NULL (the contract grew by the
            // full SDS formats' columns, all optional).
            let width = Entity::Sections.columns().len();
            let row = |id: &str| {
                let mut r = vec![s(id), s("C1"), s("S1")];
                r.resize(width, None);
                r
            };
            assert_eq!(
                rows,
                vec![row("001"), row("002"), row("003")],
                "{}",
                db.name()
            );
            // Which contract columns the query returns: the three required ones only.
            let returned = source
                .returned_columns(Entity::Sections)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
            let mut want = vec![true, true, true];
            want.resize(width, false);
            assert_eq!(returned, want, "{}", db.name());
            source.close().await;
        })
        .await;
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn query_errors_name_the_query_and_carry_the_database_message() {
    for db in TestDb::all().await {
        let missing = unique("sds_no_such_table");
        let sql = format!("SELECT a AS school_id, b AS name FROM {missing}");
        let source = db.source(Entity::Schools, &sql).await;
        let err = read_all(&source, Entity::Schools)
            .await
            .expect_err("no such table");
        let text = err.to_string();
        assert!(matches!(err, SourceError::Query { .. }), "{text}");
        assert!(
            text.contains("[source.queries] schools"),
            "{}: {text}",
            db.name()
        );
        assert!(
            text.contains(&missing),
            "{}: database message: {text}",
            db.name()
        );
        source.close().await;
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn probe_limits_rows_and_accepts_a_trailing_semicolon() {
    for db in TestDb::all().await {
        let table = unique("sds_probe");
        db.exec(&format!("CREATE TABLE {table} (n INTEGER)")).await;
        db.with_tables(&[&table], async {
            let values: Vec<String> = (1..=20).map(|n| format!("({n})")).collect();
            db.exec(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
                .await;
            let sql = format!("SELECT n AS school_id, n AS name FROM {table} ORDER BY n ;\n");
            let source = db.source(Entity::Schools, &sql).await;
            source
                .probe(Entity::Schools)
                .await
                .unwrap_or_else(|e| panic!("{}: probe: {e}", db.name()));
            let rows = read_all(&source, Entity::Schools)
                .await
                .unwrap_or_else(|e| panic!("{}: read: {e}", db.name()));
            assert_eq!(rows.len(), 20, "{}", db.name());
            source.close().await;
        })
        .await;
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn probe_accepts_a_query_ending_in_a_line_comment() {
    // `check` wraps the admin's query in a derived table; a trailing `-- comment` must not
    // swallow the wrapper's closing parenthesis and LIMIT.
    for db in TestDb::all().await {
        let table = schools_table(&db).await;
        db.with_tables(&[&table], async {
            let sql = format!(
                "SELECT school_code AS school_id, school_name AS name FROM {table} -- all schools"
            );
            let source = db.source(Entity::Schools, &sql).await;
            source
                .probe(Entity::Schools)
                .await
                .unwrap_or_else(|e| panic!("{}: probe: {e}", db.name()));
            let rows = read_all(&source, Entity::Schools)
                .await
                .unwrap_or_else(|e| panic!("{}: read: {e}", db.name()));
            assert_eq!(rows.len(), 3, "{}", db.name());
            source.close().await;
        })
        .await;
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn a_query_past_its_timeout_fails_naming_the_key() {
    // A hung SIS (a lock, an overloaded server) must fail the run, not stall it for ever.
    let servers: Vec<(TestDb, &str)> = vec![
        (
            TestDb::postgres().await,
            "SELECT '1' AS school_id, 'x' AS name FROM pg_sleep(30)",
        ),
        (
            TestDb::mysql().await,
            "SELECT '1' AS school_id, SLEEP(30) AS name",
        ),
    ];
    for (db, sql) in servers {
        let mut cfg = common::config(&db.url, Entity::Schools, sql);
        cfg.query_timeout = std::time::Duration::from_secs(1);
        let source = Source::connect(&cfg).await.expect("connect");
        let started = std::time::Instant::now();
        let err = read_all(&source, Entity::Schools)
            .await
            .expect_err("the query outlives its timeout");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{}: the timeout did not cut the query",
            db.name()
        );
        assert!(
            matches!(err, SourceError::Timeout { secs: 1, .. }),
            "{}: {err}",
            db.name()
        );
        let text = err.to_string();
        for part in ["[source.queries] schools", "query_timeout_secs", "1 s"] {
            assert!(
                text.contains(part),
                "{}: {part:?} missing: {text}",
                db.name()
            );
        }
        // Closing does not wait for the abandoned query either.
        source.close().await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{}: close waited for the abandoned query",
            db.name()
        );
        db.close().await;
    }
}

#[tokio::test]
async fn duplicate_and_empty_queries_are_errors() {
    let db = TestDb::sqlite().await;
    let source = db
        .source(
            Entity::Schools,
            "SELECT 1 AS school_id, 'a' AS name, 'b' AS NAME",
        )
        .await;
    let err = read_all(&source, Entity::Schools)
        .await
        .expect_err("two `name` columns");
    assert!(
        matches!(err, SourceError::DuplicateColumn { column: "name", .. }),
        "{err}"
    );
    source.close().await;

    let source = db.source(Entity::Schools, " ; ").await;
    let err = source.probe(Entity::Schools).await.expect_err("empty");
    assert!(matches!(err, SourceError::EmptyQuery { .. }), "{err}");
    source.close().await;
    db.close().await;
}

/// Streaming: the sink sees each row as it arrives and the count matches, for a result larger
/// than any driver buffer (SQLite's row channel holds 50).
#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn rows_stream_to_the_sink() {
    for db in TestDb::all().await {
        let table = unique("sds_stream");
        db.exec(&format!("CREATE TABLE {table} (n INTEGER)")).await;
        db.with_tables(&[&table], async {
            let values: Vec<String> = (1..=1000).map(|n| format!("({n})")).collect();
            db.exec(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
                .await;
            let sql = format!("SELECT n AS school_id, 'x' AS name FROM {table} ORDER BY n");
            let source = db.source(Entity::Schools, &sql).await;
            let mut last = 0u32;
            let count = source
                .read(Entity::Schools, |row| {
                    let n: u32 = row[0].and_then(|v| v.parse().ok()).unwrap_or(0);
                    assert_eq!(n, last + 1, "rows arrive in order, one at a time");
                    last = n;
                })
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
            assert_eq!((count, last), (1000, 1000), "{}", db.name());
            source.close().await;
        })
        .await;
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn describe_names_the_database_without_credentials() {
    let db = TestDb::sqlite().await;
    let source = Source::connect(&SourceConfig::new(&db.url))
        .await
        .expect("connect");
    let path = db.sqlite_path().expect("sqlite path");
    assert_eq!(source.describe(), format!("sqlite://{}", path.display()));
    source.close().await;
    db.close().await;

    let db = TestDb::postgres().await;
    let source = Source::connect(&SourceConfig::new(&db.url))
        .await
        .expect("connect");
    let d = source.describe();
    assert!(d.starts_with("postgres://") && !d.contains('@'), "{d}");
    source.close().await;
    db.close().await;

    let db = TestDb::mysql().await;
    assert_eq!(db.kind, Kind::MySql);
    // The mariadb:// spelling is accepted too.
    let url = db.url.replacen("mysql://", "mariadb://", 1);
    let source = Source::connect(&SourceConfig::new(url))
        .await
        .expect("connect");
    let d = source.describe();
    assert!(d.starts_with("mysql://") && !d.contains('@'), "{d}");
    source.close().await;
    db.close().await;
}
