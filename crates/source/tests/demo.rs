//! The embedded demo SIS (`demo:`) and the default queries: every default query returns the
//! rows `deploy/sis/README.md` promises, and the reference schema loaded into PostgreSQL and
//! MySQL/MariaDB reads back as exactly the same text as the embedded SQLite copy.

mod common;

use common::{Rows, TestDb, env_url, read_all, s, unique};
use sds_core::Entity;
use sds_source::{Source, SourceConfig, SourceError};
use sqlx::{AssertSqlSafe, Connection, Executor};

const SCHEMA_POSTGRES: &str = include_str!("../../../deploy/sis/schema-postgres.sql");
const SCHEMA_MYSQL: &str = include_str!("../../../deploy/sis/schema-mysql.sql");
const DEMO_DATA: &str = include_str!("../../../deploy/sis/demo-data.sql");

/// Row counts of the default queries on the demo data (deploy/sis/README.md).
const EXPECTED_ROWS: [(Entity, usize); 9] = [
    (Entity::Schools, 3),
    (Entity::Students, 31),
    (Entity::Teachers, 9),
    (Entity::Sections, 12),
    (Entity::StudentEnrollments, 89),
    (Entity::TeacherRosters, 11),
    (Entity::AcademicSessions, 4),
    (Entity::Courses, 11),
    (Entity::Guardians, 12),
];

/// Every entity's rows (the optional queries' too), sorted (row order is not part of the
/// contract).
async fn read_sorted(source: &Source) -> Result<Vec<(Entity, Rows)>, SourceError> {
    let mut all = Vec::new();
    for entity in Entity::ALL.into_iter().chain(Entity::OPTIONAL) {
        // Every default query returns every contract column, the optional ones too.
        let returned = source.returned_columns(entity).await?;
        assert!(returned.iter().all(|r| *r), "{entity}: {returned:?}");
        source.probe(entity).await?;
        let mut rows = read_all(source, entity).await?;
        rows.sort();
        all.push((entity, rows));
    }
    Ok(all)
}

#[tokio::test]
async fn demo_loads_and_every_default_query_returns_its_rows() {
    let source = Source::connect(&SourceConfig::new("demo:"))
        .await
        .expect("the embedded demo SIS loads");
    assert_eq!(source.describe(), "demo (embedded SQLite)");
    let all = read_sorted(&source).await.expect("default queries");
    for ((entity, rows), (expected_entity, expected)) in all.iter().zip(EXPECTED_ROWS) {
        assert_eq!(*entity, expected_entity);
        assert_eq!(rows.len(), expected, "{entity}");
        assert!(
            rows.iter().all(|r| r.len() == entity.columns().len()),
            "{entity}: one value per contract column"
        );
    }

    // Spot checks of the hard cases: leading zeros, NUMERIC(2,0) grade as an integer, NULLs.
    let students = &all[1].1;
    let student = |id: &str| students.iter().find(|r| r[0].as_deref() == Some(id));
    let s000007 = student("000007").expect("student 000007 keeps its leading zeros");
    assert_eq!(s000007[1], s("003"));
    let s000130 = student("000130").expect("student 000130");
    assert_eq!(s000130[4], None, "no e-mail");
    let grades: Vec<&str> = students.iter().filter_map(|r| r[6].as_deref()).collect();
    assert!(
        !grades.is_empty() && grades.iter().all(|g| g.parse::<u8>().is_ok()),
        "{grades:?}"
    );
    // The full formats' columns: a text date in the US order, a status from a CASE, an
    // integer year, NULL where the SIS has nothing.
    let s000125 = student("000125").expect("student 000125");
    assert_eq!(s000125[7], s("Patrick"));
    assert_eq!(s000125[10], s("Active"));
    assert_eq!(s000125[11], s("3/7/2012"));
    assert_eq!(s000125[12], s("2030"));
    assert_eq!(s000125[14], None);
    // Terms: a timestamp end date prints with its time (the exporter keeps the date).
    let sessions = &all[6].1;
    let sy = sessions
        .iter()
        .find(|r| r[0].as_deref() == Some("SY2526"))
        .expect("SY2526");
    assert_eq!(
        sy[..7],
        [
            s("SY2526"),
            s("2025-2026 School Year"),
            s("School Year"),
            s("2026"),
            s("2025-08-25"),
            s("2026-06-12 15:30:00"),
            None
        ]
    );
    // A course without a name takes its code as its title.
    let courses = &all[7].1;
    let hr = courses
        .iter()
        .find(|r| r[0].as_deref() == Some("001-HR"))
        .expect("001-HR");
    assert_eq!(hr[2], s("HR"));
    // A guardian of two students comes once per student; one without an e-mail has NULL.
    let guardians = &all[8].1;
    let of = |g: &str| {
        guardians
            .iter()
            .filter(|r| r[0].as_deref() == Some(g))
            .count()
    };
    assert_eq!(of("G003"), 2);
    let g005 = guardians
        .iter()
        .find(|r| r[0].as_deref() == Some("G005"))
        .expect("G005");
    assert_eq!(g005[4], None);
    source.close().await;
}

/// Without the full formats (`full_contract = false`) the built-in queries are the first
/// contract's: the same rows, only the columns an export without those keys uses.
#[tokio::test]
async fn first_contract_queries_read_the_first_columns_only() {
    let mut cfg = SourceConfig::new("demo:");
    cfg.full_contract = false;
    let source = Source::connect(&cfg).await.expect("demo");
    let full = Source::connect(&SourceConfig::new("demo:"))
        .await
        .expect("demo");
    for (entity, width) in [
        (Entity::Schools, 2),
        (Entity::Students, 7),
        (Entity::Teachers, 6),
        (Entity::Sections, 4),
        (Entity::StudentEnrollments, 4),
        (Entity::TeacherRosters, 4),
    ] {
        let returned = source.returned_columns(entity).await.expect("columns");
        let mut want = vec![true; width];
        want.resize(entity.columns().len(), false);
        assert_eq!(returned, want, "{entity}");
        let mut first = read_all(&source, entity).await.expect("read");
        let mut all = read_all(&full, entity).await.expect("read");
        for r in &mut all {
            r.truncate(width);
        }
        for r in &mut first {
            assert!(r[width..].iter().all(Option::is_none), "{entity}");
            r.truncate(width);
        }
        first.sort();
        all.sort();
        assert_eq!(first, all, "{entity}: the same values in the first columns");
    }
    source.close().await;
    full.close().await;
}

#[tokio::test]
async fn demo_is_read_only() {
    let mut cfg = SourceConfig::new("demo:");
    cfg.queries.insert(
        Entity::Schools,
        "SELECT school_code AS school_id, school_name AS name FROM schools; \
         DELETE FROM schools"
            .to_owned(),
    );
    let source = Source::connect(&cfg).await.expect("demo");
    let err = read_all(&source, Entity::Schools)
        .await
        .expect_err("query_only refuses the DELETE");
    assert!(matches!(err, SourceError::Query { .. }), "{err}");
    source.close().await;
}

/// Loads the reference schema and demo data into a new PostgreSQL schema and a new MySQL
/// database, reads every default query there, and compares with the embedded SQLite copy.
#[cfg_attr(
    sds_no_databases,
    ignore = "SDS_TEST_POSTGRES_URL or SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn reference_schema_reads_the_same_on_every_database() {
    let demo = Source::connect(&SourceConfig::new("demo:"))
        .await
        .expect("demo");
    let expected = read_sorted(&demo).await.expect("demo reads");
    demo.close().await;

    // Each database in a block of its own: its handles close before the next one's.
    {
        let db = TestDb::postgres().await;
        let schema = unique("sds_sis");
        db.exec(&format!("CREATE SCHEMA {schema}")).await;
        let outcome = async {
            let mut conn = sqlx::PgConnection::connect(&db.url).await?;
            conn.execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "SET search_path TO {schema};\n{SCHEMA_POSTGRES}\n{DEMO_DATA}"
            ))))
            .await?;
            conn.close().await?;
            let sep = if db.url.contains('?') { '&' } else { '?' };
            let url = format!("{}{sep}options[search_path]={schema}", db.url);
            let source = Source::connect(&SourceConfig::new(url))
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            let got = read_sorted(&source).await;
            source.close().await;
            Ok::<_, sqlx::Error>(got)
        }
        .await;
        db.exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
        let got = outcome
            .expect("load into PostgreSQL")
            .expect("read from PostgreSQL");
        assert_eq!(got, expected, "PostgreSQL reads differ from the demo");
        db.close().await;
    }

    {
        let url = env_url(common::MYSQL_ENV);
        let db = TestDb::mysql().await;
        let database = unique("sds_sis");
        db.exec(&format!(
            "CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await;
        let outcome = async {
            let mut parsed =
                url::Url::parse(&url).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            parsed.set_path(&format!("/{database}"));
            let mut conn = sqlx::MySqlConnection::connect(parsed.as_str()).await?;
            conn.execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "{SCHEMA_MYSQL}\n{DEMO_DATA}"
            ))))
            .await?;
            conn.close().await?;
            let source = Source::connect(&SourceConfig::new(parsed.as_str()))
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            let got = read_sorted(&source).await;
            source.close().await;
            Ok::<_, sqlx::Error>(got)
        }
        .await;
        db.exec(&format!("DROP DATABASE {database}")).await;
        let got = outcome.expect("load into MySQL").expect("read from MySQL");
        assert_eq!(got, expected, "MySQL reads differ from the demo");
        db.close().await;
    }
}
