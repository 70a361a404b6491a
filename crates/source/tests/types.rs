//! Value → text on real databases: one typed table created in SQLite, PostgreSQL and
//! MySQL/MariaDB, and one query per column asserting the exact text on each backend. The same
//! expected text everywhere, except where the crate documents a difference (SQLite stores
//! NUMERIC(5,2) 12.50 as the REAL 12.5).

mod common;

use common::{Kind, TestDb, read_all, s, unique};
use sds_core::Entity;
use sds_source::SourceError;

/// The columns of the typed table: (name, PostgreSQL type, MySQL type, SQLite type).
const COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("i", "INTEGER", "INTEGER", "INTEGER"),
    ("bi", "BIGINT", "BIGINT", "BIGINT"),
    ("si", "SMALLINT", "SMALLINT", "SMALLINT"),
    ("code", "CHAR(4)", "CHAR(4)", "CHAR(4)"),
    ("name", "VARCHAR(60)", "VARCHAR(60)", "VARCHAR(60)"),
    ("n2", "NUMERIC(2,0)", "NUMERIC(2,0)", "NUMERIC(2,0)"),
    ("n52", "NUMERIC(5,2)", "NUMERIC(5,2)", "NUMERIC(5,2)"),
    ("d", "DATE", "DATE", "DATE"),
    ("b", "BOOLEAN", "BOOLEAN", "BOOLEAN"),
    ("f", "DOUBLE PRECISION", "DOUBLE", "REAL"),
    ("ts", "TIMESTAMP", "DATETIME", "DATETIME"),
    ("note", "VARCHAR(10)", "VARCHAR(10)", "VARCHAR(10)"),
];

/// Row 1 and 2 hold values, row 3 is NULL in every typed column. The literals are the same SQL
/// on all three databases.
const ROWS: &str = "\
(1, 42, 9007199254740993, -7, '007', 'Zoë Müller, Jr.', 9, 12.50, '2024-05-01', TRUE, 12.5, '2024-05-01 08:30:00', NULL),
(2, -1, -5, 0, 'ab', 'Ørsted', -3, 0.05, '1999-12-31', FALSE, 3, '1999-12-31 23:59:59', NULL),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

/// (SELECT expression, expected text of rows 1..3, SQLite's text where it differs).
type Case = (
    &'static str,
    [Option<&'static str>; 3],
    Option<[Option<&'static str>; 3]>,
);

const CASES: &[Case] = &[
    ("i", [Some("42"), Some("-1"), None], None),
    // Beyond f64 precision: proves integers never pass through a float.
    ("bi", [Some("9007199254740993"), Some("-5"), None], None),
    ("si", [Some("-7"), Some("0"), None], None),
    // Leading zeros kept; PostgreSQL's char(4) pad spaces removed.
    ("code", [Some("007"), Some("ab"), None], None),
    (
        "name",
        [Some("Zoë Müller, Jr."), Some("Ørsted"), None],
        None,
    ),
    ("n2", [Some("9"), Some("-3"), None], None),
    (
        "n52",
        [Some("12.50"), Some("0.05"), None],
        Some([Some("12.5"), Some("0.05"), None]),
    ),
    ("d", [Some("2024-05-01"), Some("1999-12-31"), None], None),
    ("b", [Some("true"), Some("false"), None], None),
    ("f", [Some("12.5"), Some("3"), None], None),
    (
        "ts",
        [
            Some("2024-05-01 08:30:00"),
            Some("1999-12-31 23:59:59"),
            None,
        ],
        None,
    ),
    ("note", [None, None, None], None),
    // An expression: an integer on all three (int4 / BIGINT / INTEGER).
    ("i + 1", [Some("43"), Some("0"), None], None),
];

async fn check_typed_table(db: &TestDb) {
    let table = unique("sds_types");
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, pg, my, lite)| {
            let ty = match db.kind {
                Kind::Postgres => pg,
                Kind::MySql => my,
                Kind::Sqlite => lite,
            };
            format!("{name} {ty}")
        })
        .collect();
    let suffix = if db.kind == Kind::MySql {
        " DEFAULT CHARSET=utf8mb4"
    } else {
        ""
    };
    db.exec(&format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, {}){suffix}",
        columns.join(", ")
    ))
    .await;
    db.with_tables(&[&table], async {
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
        db.exec(&format!(
            "INSERT INTO {table} (id, {}) VALUES {ROWS}",
            names.join(", ")
        ))
        .await;

        for (expr, expected, sqlite_expected) in CASES {
            let expected = match (db.kind, sqlite_expected) {
                (Kind::Sqlite, Some(other)) => other,
                _ => expected,
            };
            let sql = format!("SELECT id AS school_id, {expr} AS name FROM {table} ORDER BY id");
            let source = db.source(Entity::Schools, &sql).await;
            let rows = read_all(&source, Entity::Schools)
                .await
                .unwrap_or_else(|e| panic!("{}: `{expr}`: {e}", db.name()));
            let got: Vec<Option<String>> = rows.iter().map(|r| r[1].clone()).collect();
            let want: Vec<Option<String>> = expected.iter().map(|v| v.and_then(s)).collect();
            assert_eq!(got, want, "{}: text of `{expr}`", db.name());
            let ids: Vec<Option<String>> = rows.iter().map(|r| r[0].clone()).collect();
            assert_eq!(ids, vec![s("1"), s("2"), s("3")], "{}: ids", db.name());
            source.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn sqlite_values_print_as_documented() {
    let db = TestDb::sqlite().await;
    check_typed_table(&db).await;
    db.close().await;
}

#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn postgres_values_print_as_documented() {
    let db = TestDb::postgres().await;
    check_typed_table(&db).await;
    db.close().await;
}

#[cfg_attr(
    sds_no_mysql,
    ignore = "SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn mysql_values_print_as_documented() {
    let db = TestDb::mysql().await;
    check_typed_table(&db).await;
    db.close().await;
}

/// Reads `expr AS name` (one row) through a `Source`.
async fn one_value(db: &TestDb, expr: &str, from: &str) -> Result<Option<String>, SourceError> {
    let sql = format!("SELECT 1 AS school_id, {expr} AS name {from}");
    let source = db.source(Entity::Schools, &sql).await;
    let rows = read_all(&source, Entity::Schools).await;
    source.close().await;
    let rows = rows?;
    assert_eq!(rows.len(), 1, "{}: `{expr}` returns one row", db.name());
    Ok(rows[0][1].clone())
}

#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn postgres_specific_types() {
    let db = TestDb::postgres().await;
    let table = unique("sds_pgtypes");
    let enum_type = unique("sds_status");
    db.exec(&format!(
        "CREATE TYPE {enum_type} AS ENUM ('active', 'left');
         CREATE TABLE {table} (u UUID, tz TIMESTAMPTZ, st {enum_type}, f4 REAL, t TIME,
                               c CHAR(6), raw BYTEA, iv INTERVAL);
         INSERT INTO {table} VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
             '2024-05-01 10:30:00+02', 'active', 0.1, '07:05:09', 'x', 'Zoë'::bytea, '1 day')"
    ))
    .await;
    db.with_tables(&[&table], async {
        let from = format!("FROM {table}");
        let cases = [
            ("u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            // An instant prints in UTC.
            ("tz", "2024-05-01 08:30:00"),
            ("st", "active"),
            // float4 at its own precision, not widened to 0.10000000149011612.
            ("f4", "0.1"),
            ("t", "07:05:09"),
            ("c", "x"),
            ("raw", "Zoë"),
            ("9::numeric", "9"),
            ("'literal'", "literal"),
            ("CAST(iv AS TEXT)", "1 day"),
        ];
        for (expr, want) in cases {
            let got = one_value(&db, expr, &from)
                .await
                .unwrap_or_else(|e| panic!("`{expr}`: {e}"));
            assert_eq!(got.as_deref(), Some(want), "PostgreSQL `{expr}`");
        }

        // An unsupported type names the query, the column and the type, and suggests a CAST.
        let err = one_value(&db, "iv", &from)
            .await
            .expect_err("INTERVAL is not supported");
        let text = err.to_string();
        assert!(matches!(err, SourceError::UnsupportedType { .. }), "{text}");
        for part in [
            "[source.queries] schools",
            "`name`",
            "INTERVAL",
            "CAST(name AS TEXT)",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    })
    .await;
    db.exec(&format!("DROP TYPE IF EXISTS {enum_type}")).await;
    db.close().await;
}

#[cfg_attr(
    sds_no_mysql,
    ignore = "SDS_TEST_MYSQL_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn mysql_specific_types() {
    let db = TestDb::mysql().await;
    let table = unique("sds_mytypes");
    db.exec(&format!(
        "CREATE TABLE {table} (tu TINYINT UNSIGNED, bu BIGINT UNSIGNED, y YEAR,
             bin VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, e ENUM('A', 'I'),
             t TIME, f4 FLOAT, ti TINYINT, ts TIMESTAMP NULL, g POINT)
             DEFAULT CHARSET=utf8mb4;
         INSERT INTO {table} VALUES (200, 18446744073709551615, 2024, 'Zoë', 'A', '07:05:09',
             0.1, -100, '2024-05-01 08:30:00', POINT(1, 2))"
    ))
    .await;
    db.with_tables(&[&table], async {
        let from = format!("FROM {table}");
        let cases = [
            ("tu", "200"),
            ("bu", "18446744073709551615"),
            ("y", "2024"),
            // utf8mb4_bin text arrives flagged as binary; it is still text.
            ("bin", "Zoë"),
            ("e", "A"),
            ("t", "07:05:09"),
            ("f4", "0.1"),
            ("ti", "-100"),
            ("ts", "2024-05-01 08:30:00"),
            ("CAST(12.50 AS DECIMAL(5,2))", "12.50"),
            ("CAST(9 AS DECIMAL(2,0))", "9"),
        ];
        for (expr, want) in cases {
            let got = one_value(&db, expr, &from)
                .await
                .unwrap_or_else(|e| panic!("`{expr}`: {e}"));
            assert_eq!(got.as_deref(), Some(want), "MySQL `{expr}`");
        }

        let err = one_value(&db, "g", &from)
            .await
            .expect_err("GEOMETRY is not supported");
        let text = err.to_string();
        for part in [
            "[source.queries] schools",
            "`name`",
            "GEOMETRY",
            "CAST(name AS CHAR)",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn sqlite_storage_classes_and_declared_types() {
    let db = TestDb::sqlite().await;
    let table = unique("sds_litetypes");
    db.exec(&format!(
        "CREATE TABLE {table} (dt DATETIME, flag BOOLEAN, r REAL, blob BLOB, bad BLOB, anything);
         INSERT INTO {table} VALUES ('2024-05-01T08:30:00', 1, 3.0, CAST('Zoë' AS BLOB),
             X'FFFE', '007')"
    ))
    .await;
    db.with_tables(&[&table], async {
        let from = format!("FROM {table}");
        let cases = [
            ("dt", "2024-05-01 08:30:00"),
            ("flag", "true"),
            ("r", "3"),
            ("blob", "Zoë"),
            ("anything", "007"),
            ("12.5", "12.5"),
            ("'x'", "x"),
        ];
        for (expr, want) in cases {
            let got = one_value(&db, expr, &from)
                .await
                .unwrap_or_else(|e| panic!("`{expr}`: {e}"));
            assert_eq!(got.as_deref(), Some(want), "SQLite `{expr}`");
        }

        // Binary that is not UTF-8 is an error that names the column and suggests a CAST.
        let err = one_value(&db, "bad", &from)
            .await
            .expect_err("non-UTF-8 BLOB");
        let text = err.to_string();
        assert!(matches!(err, SourceError::Value { .. }), "{text}");
        for part in [
            "[source.queries] schools",
            "`name`",
            "row 1",
            "CAST(name AS TEXT)",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    })
    .await;
    db.close().await;
}

/// PostgreSQL reads text-like and integer columns through COPY: every value must come out as
/// the row path reads it, whatever it holds (tabs, line breaks, backslashes, a literal `\N`,
/// padding, non-ASCII, empty text versus NULL).
#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn postgres_copy_and_row_paths_read_the_same_values() {
    let db = TestDb::postgres().await;
    let table = unique("sds_copy");
    db.exec(&format!(
        "CREATE TABLE {table} (id INTEGER, code CHAR(6), name TEXT, note VARCHAR(40));
         INSERT INTO {table} VALUES
           (1, 'A1', E'tab\\there', E'line\\nbreak\\r\\nand CR'),
           (-2, 'B 2', E'back\\\\slash \\\\N', '\\N'),
           (3, '', '', NULL),
           (40000, 'Ø7', 'Zoë 日本 O''Brien, \"Bobby\"', E'\\b\\f\\013'),
           (5, NULL, NULL, '  padded  ')"
    ))
    .await;
    db.with_tables(&[&table], async {
        let sql = format!(
            "SELECT id AS school_id, code AS course_code, name AS section_code, \
             note AS course_description FROM {table} ORDER BY id"
        );
        let mut both = Vec::new();
        for copy in [true, false] {
            let mut cfg = common::config(&db.url, Entity::Sections, &sql);
            cfg.postgres_copy = copy;
            let source = sds_source::Source::connect(&cfg).await.expect("connect");
            both.push(
                read_all(&source, Entity::Sections)
                    .await
                    .unwrap_or_else(|e| panic!("copy={copy}: {e}")),
            );
            source.close().await;
        }
        let (copy, rows) = (&both[0], &both[1]);
        assert_eq!(copy, rows, "COPY path and row path differ");
        // Only the four columns the query returns matter below; the optional section columns
        // it does not return are NULL on both paths (compared above).
        let width = Entity::Sections.columns().len();
        assert!(
            rows.iter()
                .all(|r| r.len() == width && r[4..].iter().all(Option::is_none))
        );
        let rows: Vec<Vec<Option<String>>> = rows.iter().map(|r| r[..4].to_vec()).collect();
        // The reference values, so that both paths being wrong the same way fails too.
        assert_eq!(
            rows[0],
            vec![s("-2"), s("B 2"), s("back\\slash \\N"), s("\\N")]
        );
        assert_eq!(
            rows[1],
            vec![s("1"), s("A1"), s("tab\there"), s("line\nbreak\r\nand CR")]
        );
        assert_eq!(rows[2], vec![s("3"), s(""), s(""), None]);
        assert_eq!(rows[3], vec![s("5"), None, None, s("  padded  ")]);
        assert_eq!(
            rows[4],
            vec![
                s("40000"),
                s("Ø7"),
                s("Zoë 日本 O'Brien, \"Bobby\""),
                s("\u{8}\u{c}\u{b}")
            ]
        );
    })
    .await;
    db.close().await;
}
