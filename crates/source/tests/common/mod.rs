//! Helpers shared by the integration tests: the test databases (SQLite in a temporary folder,
//! PostgreSQL and MySQL/MariaDB from `SDS_TEST_POSTGRES_URL` / `SDS_TEST_MYSQL_URL`), unique
//! names so parallel tests never collide, and a writable admin pool for setup and teardown that
//! is separate from the read-only `Source` under test.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use futures_util::FutureExt;
use sds_core::Entity;
use sds_source::{Source, SourceConfig, SourceError};
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{AssertSqlSafe, Executor};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

pub const POSTGRES_ENV: &str = "SDS_TEST_POSTGRES_URL";
pub const MYSQL_ENV: &str = "SDS_TEST_MYSQL_URL";

/// The URL (or other setting) in `var`. A test that needs a server is `#[ignore]`d with the
/// reason when its variable is unset at build time (build.rs: `sds_no_postgres`, ...), so getting
/// here without it means the test was asked for anyway: it fails, naming the variable.
pub fn env_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{var} is not set: run scripts/test (it sets the database URLs and starts the test \
             servers)"
        ),
    }
}

/// A name no other test (or test run) uses at the same time: `prefix_pid_counter_nanos`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

enum Admin {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// One database to test against, with a writable admin pool.
pub struct TestDb {
    pub kind: Kind,
    /// The URL a `Source` connects with.
    pub url: String,
    admin: Admin,
    /// The SQLite file's folder, removed on drop.
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn postgres() -> TestDb {
        let url = env_url(POSTGRES_ENV);
        let admin = PgPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}: cannot connect: {e}"));
        TestDb {
            kind: Kind::Postgres,
            url,
            admin: Admin::Postgres(admin),
            _dir: None,
        }
    }

    pub async fn mysql() -> TestDb {
        let url = env_url(MYSQL_ENV);
        let admin = MySqlPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{MYSQL_ENV}: cannot connect: {e}"));
        TestDb {
            kind: Kind::MySql,
            url,
            admin: Admin::MySql(admin),
            _dir: None,
        }
    }

    /// A new SQLite file in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("sis.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let admin = SqlitePool::connect_with(options)
            .await
            .expect("create the SQLite test file");
        TestDb {
            kind: Kind::Sqlite,
            url: format!("sqlite://{}", path.display()),
            admin: Admin::Sqlite(admin),
            _dir: Some(dir),
        }
    }

    /// SQLite, PostgreSQL and MySQL (a test that uses them is ignored with
    /// `sds_no_databases` when a URL is unset).
    pub async fn all() -> Vec<TestDb> {
        vec![
            TestDb::sqlite().await,
            TestDb::postgres().await,
            TestDb::mysql().await,
        ]
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Postgres => "PostgreSQL",
            Kind::MySql => "MySQL",
            Kind::Sqlite => "SQLite",
        }
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(PathBuf::from)
    }

    /// Runs setup or teardown SQL (several statements allowed) through the admin pool.
    pub async fn exec(&self, sql: &str) {
        let raw = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()));
        let result = match &self.admin {
            Admin::Postgres(p) => p.execute(raw).await.map(|_| ()),
            Admin::MySql(p) => p.execute(raw).await.map(|_| ()),
            Admin::Sqlite(p) => p.execute(raw).await.map(|_| ()),
        };
        if let Err(e) = result {
            panic!("{}: setup SQL failed: {e}\n{sql}", self.name());
        }
    }

    /// A single number from the admin pool (`SELECT COUNT(*) ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        let q = || AssertSqlSafe(sql.to_owned());
        let result = match &self.admin {
            Admin::Postgres(p) => sqlx::query_scalar::<_, i64>(q()).fetch_one(p).await,
            Admin::MySql(p) => sqlx::query_scalar::<_, i64>(q()).fetch_one(p).await,
            Admin::Sqlite(p) => sqlx::query_scalar::<_, i64>(q()).fetch_one(p).await,
        };
        result.unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name()))
    }

    /// Runs `body`, then drops `tables` whether `body` passed or panicked.
    pub async fn with_tables(&self, tables: &[&str], body: impl Future<Output = ()>) {
        let outcome = AssertUnwindSafe(body).catch_unwind().await;
        for table in tables {
            self.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// A `Source` on this database whose query for `entity` is `sql`.
    pub async fn source(&self, entity: Entity, sql: &str) -> Source {
        Source::connect(&config(&self.url, entity, sql))
            .await
            .unwrap_or_else(|e| panic!("{}: connect: {e}", self.name()))
    }

    pub async fn close(self) {
        match self.admin {
            Admin::Postgres(p) => p.close().await,
            Admin::MySql(p) => p.close().await,
            Admin::Sqlite(p) => p.close().await,
        }
    }
}

pub fn config(url: &str, entity: Entity, sql: &str) -> SourceConfig {
    let mut cfg = SourceConfig::new(url);
    cfg.queries.insert(entity, sql.to_owned());
    cfg.connect_timeout = Duration::from_secs(10);
    cfg
}

pub type Rows = Vec<Vec<Option<String>>>;

/// Every row of `entity`, in the order the query returns them.
pub async fn read_all(source: &Source, entity: Entity) -> Result<Rows, SourceError> {
    let mut rows = Vec::new();
    let n = source
        .read(entity, |r| {
            rows.push(r.iter().map(|v| v.map(str::to_owned)).collect())
        })
        .await?;
    assert_eq!(n, rows.len() as u64, "read() returns the number of rows");
    Ok(rows)
}

pub fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}
