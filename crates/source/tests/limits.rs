//! The limits a read enforces while rows stream: `max_value_bytes` (a longer value fails the
//! read naming entity, column and row key) and `max_rows` (one row more fails it), on every
//! database and on both PostgreSQL paths (COPY and rows).

mod common;

use common::{TestDb, read_all};
use sds_core::Entity;
use sds_source::{Source, SourceError};

/// A students query whose second row carries a `first_name` of `len` characters.
fn long_name_query(db: &TestDb, len: usize) -> String {
    let long = match db.kind {
        common::Kind::Postgres => format!("repeat('x', {len})"),
        common::Kind::MySql => format!("REPEAT('x', {len})"),
        // SQLite has no repeat(): zeroblob gives `len` bytes, replace turns them into text.
        common::Kind::Sqlite => format!("replace(hex(zeroblob({})), '00', 'x')", len),
    };
    format!(
        "SELECT '000001' AS student_id, '001' AS school_id, 'Ann' AS first_name, 'Lee' AS last_name \
         UNION ALL SELECT '000002', '001', {long}, 'Roe'"
    )
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn a_value_longer_than_the_limit_fails_the_read_naming_column_and_row() {
    for db in TestDb::all().await {
        // PostgreSQL reads text-only queries through COPY by default; check the row path too.
        let copy_settings: &[bool] = if db.kind == common::Kind::Postgres {
            &[true, false]
        } else {
            &[true]
        };
        for &postgres_copy in copy_settings {
            let mut cfg = common::config(&db.url, Entity::Students, &long_name_query(&db, 1000));
            cfg.postgres_copy = postgres_copy;
            cfg.max_value_bytes = 1000;
            let source = Source::connect(&cfg).await.expect("connect");
            let rows = read_all(&source, Entity::Students)
                .await
                .expect("at the limit");
            assert_eq!(rows.len(), 2);
            source.close().await;

            cfg.max_value_bytes = 999;
            let source = Source::connect(&cfg).await.expect("connect");
            let err = read_all(&source, Entity::Students)
                .await
                .expect_err("one byte over");
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    SourceError::ValueTooLong {
                        row: 2,
                        bytes: 1000,
                        ..
                    }
                ),
                "{} copy={postgres_copy}: {text}",
                db.name()
            );
            for want in ["students", "`first_name`", "row 2", "student_id=000002"] {
                assert!(
                    text.contains(want),
                    "{}: {want:?} missing: {text}",
                    db.name()
                );
            }
            source.close().await;
        }
        db.close().await;
    }
}

#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn one_row_more_than_max_rows_fails_the_read() {
    for db in TestDb::all().await {
        let mut cfg = common::config(&db.url, Entity::Students, &long_name_query(&db, 3));
        cfg.max_rows = 2;
        let source = Source::connect(&cfg).await.expect("connect");
        assert_eq!(
            read_all(&source, Entity::Students)
                .await
                .expect("2 rows")
                .len(),
            2
        );
        source.close().await;
        cfg.max_rows = 1;
        let source = Source::connect(&cfg).await.expect("connect");
        let err = read_all(&source, Entity::Students)
            .await
            .expect_err("2 rows > 1");
        assert!(
            matches!(err, SourceError::TooManyRows { limit: 1, .. }),
            "{}: {err}",
            db.name()
        );
        source.close().await;
        db.close().await;
    }
}
