//! The same SIS on SQLite, PostgreSQL and MariaDB/MySQL must give byte-identical SDS files, in
//! every format. The reference schema (`deploy/sis/schema-*.sql`) mixes CHAR(3), VARCHAR,
//! NUMERIC(2,0), INTEGER, DATE and BOOLEAN columns, and each database hands them back as
//! different types; the source must turn them into the same text everywhere.
//!
//! Each test loads `deploy/sis/demo-data.sql` into a fresh database: a SQLite file in a
//! temporary folder, and (when `SDS_TEST_POSTGRES_URL` / `SDS_TEST_MYSQL_URL` are set) a new
//! database `sds_xdb_<pid>_<random>` on each server, dropped again at the end, even when the test
//! fails. It then runs the real `sds-sync once` against each one and against the embedded demo
//! (`demo:`), and compares every file byte for byte. With an unset URL the tests are ignored with
//! the reason (build.rs: `sds_no_databases`), except under `CI=true`, where they fail.
//!
//! With the `odbc` feature, each database is also exported through its ODBC driver
//! ("SQLite3", "PostgreSQL Unicode", "MariaDB Unicode") and must give the same bytes as its
//! native export; a missing driver has the tests ignored likewise (`sds_no_odbc_drivers`).

mod support;

use sqlx::{AssertSqlSafe, Connection, Executor};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use support::export::{
    Export, Files, V1_DEMO, V2_ALL, V21_ALL, assert_same_files, assert_valid, run_export,
};
use support::{DEMO_DATA, block_on, create_demo_sis};

const POSTGRES_ENV: &str = "SDS_TEST_POSTGRES_URL";
const MYSQL_ENV: &str = "SDS_TEST_MYSQL_URL";

const SCHEMA_POSTGRES: &str = include_str!("../../../deploy/sis/schema-postgres.sql");
const SCHEMA_MYSQL: &str = include_str!("../../../deploy/sis/schema-mysql.sql");

/// The server URL in `var`. The tests are ignored when it is unset at build time (build.rs), so
/// getting here without it fails the test, naming the variable.
fn env_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("{var} is not set: run scripts/test (it sets the database URLs)"),
    }
}

/// `sds_xdb_<pid>_<random>`: unique across parallel tests and test runs, a plain identifier.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = (nanos as u64) ^ (u64::from(n) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    format!("sds_xdb_{}_{:x}", std::process::id(), mixed)
}

/// `url` with its database (the path) replaced by `db`; the query string is kept.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Postgres,
    MySql,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Postgres => "PostgreSQL",
            Server::MySql => "MariaDB/MySQL",
        }
    }
}

/// Runs setup SQL (several statements) on a fresh connection to `url`, then closes it.
async fn exec(server: Server, url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let sql = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()));
    match server {
        Server::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            c.execute(sql).await?;
            c.close().await
        }
        Server::MySql => {
            let mut c = sqlx::MySqlConnection::connect(url).await?;
            c.execute(sql).await?;
            c.close().await
        }
    }
}

/// A database created for this test on a server; dropped when this guard is, even when the test
/// panics (the drop runs a blocking cleanup on its own runtime).
struct ScratchDb {
    server: Server,
    admin_url: String,
    name: String,
    /// The URL `sds-sync` connects with.
    url: String,
}

impl ScratchDb {
    /// Creates the database and loads the reference schema and the demo data into it.
    fn create(server: Server) -> ScratchDb {
        let (var, create, schema) = match server {
            Server::Postgres => (
                POSTGRES_ENV,
                "CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0",
                SCHEMA_POSTGRES,
            ),
            Server::MySql => (
                MYSQL_ENV,
                "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                SCHEMA_MYSQL,
            ),
        };
        let admin_url = env_url(var);
        let name = unique_name();
        block_on(exec(server, &admin_url, &create.replace("{}", &name)))
            .unwrap_or_else(|e| panic!("{}: cannot create database {name}: {e}", server.name()));
        // From here on, the guard drops the database whatever happens.
        let db = ScratchDb {
            server,
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        };
        block_on(async {
            exec(server, &db.url, schema).await?;
            exec(server, &db.url, DEMO_DATA).await
        })
        .unwrap_or_else(|e| panic!("{}: cannot load the demo SIS: {e}", server.name()));
        db
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let sql = match self.server {
            Server::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Server::MySql => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let result = std::thread::scope(|s| {
            // A thread of its own, so this works even if dropped inside a runtime.
            s.spawn(|| block_on(exec(self.server, &self.admin_url, &sql)))
                .join()
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "{}: could not drop test database {}: {e}",
                self.server.name(),
                self.name
            ),
            Err(_) => eprintln!(
                "{}: dropping test database {} panicked",
                self.server.name(),
                self.name
            ),
        }
    }
}

/// The demo SIS in a new SQLite file (inside the returned folder).
fn sqlite_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("sis.db");
    create_demo_sis(&path);
    let url = format!("sqlite://{}", path.display());
    (dir, url)
}

/// Exports `export` from the embedded demo, SQLite and each configured server; all must agree.
fn same_bytes_everywhere(export: &Export) {
    let format = export.sds_format();
    let demo = run_export("demo:", export);
    assert_valid(format, &demo, &format!("{} from demo:", export.format));

    let (_sqlite_dir, sqlite_url) = sqlite_db();
    let sqlite = run_export(&sqlite_url, export);
    assert_same_files("demo:", &demo, "SQLite", &sqlite);
    #[cfg(feature = "odbc")]
    odbc::same_as_native("SQLite", &sqlite_url, &sqlite, export);

    for server in [Server::Postgres, Server::MySql] {
        let db = ScratchDb::create(server);
        let files: Files = run_export(&db.url, export);
        assert_same_files("SQLite", &sqlite, server.name(), &files);
        assert_same_files("demo:", &demo, server.name(), &files);
        #[cfg(feature = "odbc")]
        odbc::same_as_native(server.name(), &db.url, &files, export);
        eprintln!(
            "{} {}: {} file(s) identical to SQLite and demo:",
            export.format,
            server.name(),
            files.len()
        );
        drop(db);
    }
}

/// The same exports through ODBC drivers.
#[cfg(feature = "odbc")]
mod odbc {
    use super::*;

    /// The Debian driver for a native URL's database, and the `odbc:` URL that reaches it.
    pub fn odbc_url(native: &str) -> (&'static str, String) {
        if let Some(path) = native.strip_prefix("sqlite://") {
            return (
                "SQLite3",
                format!("odbc:Driver={{SQLite3}};Database={path}"),
            );
        }
        // scheme://user[:password]@host[:port]/database[?query], as the test URLs are written.
        let (scheme, rest) = native.split_once("://").expect("server URL");
        let rest = rest.split('?').next().unwrap_or(rest);
        let (credentials, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (user, password) = match credentials.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (credentials, None),
        };
        let (host_port, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (driver, user_key, default_port) = if scheme.starts_with("postgres") {
            ("PostgreSQL Unicode", "Uid", "5432")
        } else {
            ("MariaDB Unicode", "User", "3306")
        };
        let (host, port) = host_port
            .split_once(':')
            .unwrap_or((host_port, default_port));
        let mut text = format!(
            "odbc:Driver={{{driver}}};Server={host};Port={port};Database={database};\
             {user_key}={user}"
        );
        if let Some(password) = password {
            text.push_str(&format!(";Pwd={{{password}}}"));
        }
        (driver, text)
    }

    fn driver_installed(name: &str) -> bool {
        std::process::Command::new("odbcinst")
            .args(["-q", "-d"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("[{name}]")))
            .unwrap_or(false)
    }

    /// Exports `native_url`'s database through ODBC: the files must be those of the native run.
    pub fn same_as_native(name: &str, native_url: &str, native: &Files, export: &Export) {
        let (driver, url) = odbc_url(native_url);
        // The tests are ignored without the drivers (build.rs: `sds_no_odbc_drivers`).
        assert!(
            driver_installed(driver),
            "the ODBC driver `{driver}` is not installed: scripts/ci-services installs it"
        );
        let files = run_export(&url, export);
        assert_same_files(name, native, &format!("{name} through ODBC"), &files);
        eprintln!(
            "{} {name} through ODBC: {} file(s) identical to the native export",
            export.format,
            files.len()
        );
    }

    #[test]
    fn native_urls_become_odbc_connection_strings() {
        assert_eq!(
            odbc_url("postgres://postgres@127.0.0.1:5432/x").1,
            "odbc:Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=x;Uid=postgres"
        );
        assert_eq!(
            odbc_url("mysql://root:pw@db:3307/x").1,
            "odbc:Driver={MariaDB Unicode};Server=db;Port=3307;Database=x;User=root;Pwd={pw}"
        );
        assert_eq!(
            odbc_url("sqlite:///tmp/a.db").1,
            "odbc:Driver={SQLite3};Database=/tmp/a.db"
        );
    }
}

#[cfg_attr(
    any(sds_no_databases, sds_no_odbc_drivers),
    ignore = "needs PostgreSQL and MariaDB (SDS_TEST_POSTGRES_URL, SDS_TEST_MYSQL_URL) and, with the odbc feature, the ODBC drivers of scripts/ci-services: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn v1_with_license_is_identical_on_every_database() {
    same_bytes_everywhere(&V1_DEMO);
}

#[cfg_attr(
    any(sds_no_databases, sds_no_odbc_drivers),
    ignore = "needs PostgreSQL and MariaDB (SDS_TEST_POSTGRES_URL, SDS_TEST_MYSQL_URL) and, with the odbc feature, the ODBC drivers of scripts/ci-services: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn v2_is_identical_on_every_database() {
    same_bytes_everywhere(&V2_ALL);
}

#[cfg_attr(
    any(sds_no_databases, sds_no_odbc_drivers),
    ignore = "needs PostgreSQL and MariaDB (SDS_TEST_POSTGRES_URL, SDS_TEST_MYSQL_URL) and, with the odbc feature, the ODBC drivers of scripts/ci-services: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn v21_is_identical_on_every_database() {
    same_bytes_everywhere(&V21_ALL);
}

#[test]
fn database_urls_are_rewritten_to_the_test_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("mysql://root:pw@db:3306/test?ssl-mode=disabled", "x"),
        "mysql://root:pw@db:3306/x?ssl-mode=disabled"
    );
    assert_eq!(
        with_database("postgres://u@h:5432", "x"),
        "postgres://u@h:5432/x"
    );
}
