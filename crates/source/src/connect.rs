//! Opening the SIS: the URL picks the driver, and every connection is made read-only in the way
//! its database offers (PostgreSQL `default_transaction_read_only`, MySQL
//! `SET SESSION TRANSACTION READ ONLY`, SQLite `SQLITE_OPEN_READONLY` plus `query_only`).
//!
//! The first connection is made by hand, outside the pool: the pool retries refused connections
//! until its timeout and then reports only "timed out", while the admin needs the real cause
//! (refused, wrong password, unknown database). The pool itself connects lazily afterwards.

use crate::SourceConfig;
use crate::error::{Scrubber, SourceError, database_message};
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// The embedded reference SIS that `demo:` loads into memory.
const DEMO_SCHEMA: &str = include_str!("../../../deploy/sis/schema-sqlite.sql");
const DEMO_DATA: &str = include_str!("../../../deploy/sis/demo-data.sql");

/// Connections per pool. The export runs one query at a time; the second connection lets a
/// `probe` or a retry proceed while a stream is being dropped.
const POOL_SIZE: u32 = 2;

const MYSQL_READ_ONLY: &str = "SET SESSION TRANSACTION READ ONLY";

/// One pool per supported driver. Not the sqlx `Any` driver: it cannot decode dates, decimals,
/// CHAR(n), booleans on SQLite and more (see the crate notes), and admin-written queries return
/// exactly those.
#[derive(Debug, Clone)]
pub(crate) enum Pools {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) pools: Pools,
    /// For logs and `describe()`: no credentials.
    pub(crate) target: String,
    pub(crate) scrubber: Scrubber,
}

pub(crate) async fn connect(cfg: &SourceConfig) -> Result<Connected, SourceError> {
    let url = cfg.url.trim();
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();

    let mut scrubber = Scrubber::default();
    if let Some(password) = &cfg.password {
        scrubber.add(password.expose_secret());
    }
    // A password inside the URL must not leak through a driver message either, in both its
    // written (percent-encoded) and decoded forms.
    if let Ok(parsed) = url::Url::parse(url)
        && let Some(written) = parsed.password()
    {
        scrubber.add(written);
        if let Ok(decoded) = percent_decode(written) {
            scrubber.add(&decoded);
        }
    }

    match scheme.as_str() {
        "postgres" | "postgresql" => connect_postgres(url, cfg, scrubber).await,
        "mysql" => connect_mysql(url, cfg, scrubber).await,
        // sqlx speaks to MariaDB as MySQL; it only knows the `mysql` scheme.
        "mariadb" => {
            let rewritten = format!("mysql{}", &url["mariadb".len()..]);
            connect_mysql(&rewritten, cfg, scrubber).await
        }
        "sqlite" => connect_sqlite(url, cfg, scrubber).await,
        "demo" => connect_demo(cfg, scrubber).await,
        _ => Err(SourceError::InvalidUrl {
            reason: format!(
                "unsupported scheme `{scheme}:`; use postgres://, mysql://, mariadb://, \
                 sqlite:// or demo:"
            ),
        }),
    }
}

async fn connect_postgres(
    url: &str,
    cfg: &SourceConfig,
    scrubber: Scrubber,
) -> Result<Connected, SourceError> {
    let mut opts = PgConnectOptions::from_str(url).map_err(|e| SourceError::InvalidUrl {
        reason: scrubber.scrub(e.to_string()),
    })?;
    if let Some(password) = &cfg.password {
        opts = opts.password(password.expose_secret());
    }
    // The server enforces read-only for every transaction of the session, including the
    // implicit one around each statement.
    // The server also ends a query a minute after sds-sync gave up on it (query_timeout), so
    // a hung query does not hold a backend and its locks until the server restarts.
    let server_timeout_ms = cfg
        .query_timeout
        .saturating_add(std::time::Duration::from_secs(60))
        .as_millis()
        .min(i32::MAX as u128)
        .to_string();
    opts = opts
        .options([
            ("default_transaction_read_only", "on"),
            ("statement_timeout", server_timeout_ms.as_str()),
        ])
        .application_name("sds-sync")
        // Our own debug line per query says what matters; sqlx would log each statement's SQL.
        .disable_statement_logging();

    let target = match opts.get_socket() {
        Some(socket) => format!(
            "postgres://{}/{} (unix socket)",
            socket.display(),
            opts.get_database().unwrap_or("")
        ),
        None => format!(
            "postgres://{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        ),
    };
    let failed = |reason: ConnectFailure| {
        reason.into_error("PostgreSQL", &target, Some(opts.get_username()), &scrubber)
    };

    let conn = first_connection(cfg.connect_timeout, opts.connect())
        .await
        .map_err(failed)?;
    // A clean goodbye is a courtesy; the pool below makes its own connections.
    let _ = conn.close().await;

    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(cfg.connect_timeout)
        .connect_lazy_with(opts.clone());
    Ok(Connected {
        pools: Pools::Postgres(pool),
        target,
        scrubber,
    })
}

async fn connect_mysql(
    url: &str,
    cfg: &SourceConfig,
    scrubber: Scrubber,
) -> Result<Connected, SourceError> {
    let mut opts = MySqlConnectOptions::from_str(url).map_err(|e| SourceError::InvalidUrl {
        reason: scrubber.scrub(e.to_string()),
    })?;
    if let Some(password) = &cfg.password {
        opts = opts.password(password.expose_secret());
    }
    opts = opts.disable_statement_logging();

    let target = match opts.get_socket() {
        Some(socket) => format!(
            "mysql://{}/{} (unix socket)",
            socket.display(),
            opts.get_database().unwrap_or("")
        ),
        None => format!(
            "mysql://{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        ),
    };
    let failed = |reason: ConnectFailure| {
        reason.into_error(
            "MySQL/MariaDB",
            &target,
            Some(opts.get_username()),
            &scrubber,
        )
    };

    let mut conn = first_connection(cfg.connect_timeout, opts.connect())
        .await
        .map_err(failed)?;
    conn.execute(MYSQL_READ_ONLY)
        .await
        .map_err(|e| failed(ConnectFailure::ReadOnly(e)))?;
    let _ = conn.close().await;

    let pool = MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(cfg.connect_timeout)
        // MySQL has no read-only login option, so every new connection sets it first.
        .after_connect(|conn: &mut MySqlConnection, _meta| {
            Box::pin(async move {
                conn.execute(MYSQL_READ_ONLY).await?;
                Ok(())
            })
        })
        .connect_lazy_with(opts.clone());
    Ok(Connected {
        pools: Pools::MySql(pool),
        target,
        scrubber,
    })
}

async fn connect_sqlite(
    url: &str,
    cfg: &SourceConfig,
    scrubber: Scrubber,
) -> Result<Connected, SourceError> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| SourceError::InvalidUrl {
            reason: scrubber.scrub(e.to_string()),
        })?
        // Opened with SQLITE_OPEN_READONLY: SQLite refuses every write, and a missing file is
        // an error instead of a new empty database (overrides `?mode=rwc` in the URL).
        .read_only(true)
        .create_if_missing(false)
        // Belt and braces: also refuse writes at the statement level.
        .pragma("query_only", "ON")
        .disable_statement_logging();
    let target = format!("sqlite://{}", opts.get_filename().display());
    let failed = |reason: ConnectFailure| reason.into_error("SQLite", &target, None, &scrubber);

    let conn = first_connection(cfg.connect_timeout, opts.connect())
        .await
        .map_err(failed)?;
    let _ = conn.close().await;

    let pool = SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(cfg.connect_timeout)
        .connect_lazy_with(opts);
    Ok(Connected {
        pools: Pools::Sqlite(pool),
        target,
        scrubber,
    })
}

/// An in-memory SQLite database per connection, filled from the embedded demo SIS and then
/// switched to `query_only`.
async fn connect_demo(cfg: &SourceConfig, scrubber: Scrubber) -> Result<Connected, SourceError> {
    let demo_options = || -> Result<SqliteConnectOptions, SourceError> {
        // Each `sqlite::memory:` parse names a new private database, so the check connection
        // below and the pool's connection never share (or double-load) one.
        Ok(SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| SourceError::Demo {
                reason: e.to_string(),
            })?
            .disable_statement_logging())
    };

    // Load once by hand so that a broken demo file gives its real error; inside the pool an
    // `after_connect` failure is only logged and retried until the acquire timeout.
    let mut conn = demo_options()?
        .connect()
        .await
        .map_err(|e| SourceError::Demo {
            reason: e.to_string(),
        })?;
    load_demo(&mut conn).await.map_err(|e| SourceError::Demo {
        reason: e.to_string(),
    })?;
    let _ = conn.close().await;

    let pool = SqlitePoolOptions::new()
        // An in-memory database lives and dies with its connection: one connection, kept.
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(cfg.connect_timeout)
        .after_connect(|conn: &mut SqliteConnection, _meta| Box::pin(load_demo(conn)))
        .connect_lazy_with(demo_options()?);
    Ok(Connected {
        pools: Pools::Sqlite(pool),
        target: "demo (embedded SQLite)".to_owned(),
        scrubber,
    })
}

async fn load_demo(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(DEMO_SCHEMA).execute(&mut *conn).await?;
    sqlx::raw_sql(DEMO_DATA).execute(&mut *conn).await?;
    sqlx::raw_sql("PRAGMA query_only = ON")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Why the first connection failed.
enum ConnectFailure {
    Driver(sqlx::Error),
    TimedOut(Duration),
    ReadOnly(sqlx::Error),
}

async fn first_connection<C>(
    timeout: Duration,
    connect: impl Future<Output = Result<C, sqlx::Error>>,
) -> Result<C, ConnectFailure> {
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(ConnectFailure::Driver(e)),
        Err(_) => Err(ConnectFailure::TimedOut(timeout)),
    }
}

impl ConnectFailure {
    fn into_error(
        self,
        backend: &'static str,
        target: &str,
        user: Option<&str>,
        scrubber: &Scrubber,
    ) -> SourceError {
        let (reason, hint) = match self {
            ConnectFailure::TimedOut(t) => (
                format!("no connection within {} s", t.as_secs_f32()),
                "that the host and port are right and that no firewall drops the traffic",
            ),
            ConnectFailure::ReadOnly(e) => (
                format!(
                    "cannot make the session read-only: {}",
                    database_message(&e)
                ),
                "that the server is MySQL 5.6.5 / MariaDB 10.0 or newer",
            ),
            ConnectFailure::Driver(e) => {
                let hint = match &e {
                    _ if backend == "SQLite" => {
                        "that the file exists and this user may read it (it is opened \
                         read-only and never created)"
                    }
                    sqlx::Error::Io(_) => {
                        "that the server is running and listening on that host and port, and \
                         that no firewall blocks it"
                    }
                    sqlx::Error::Tls(_) => {
                        "the TLS settings in the URL (sslmode / ssl-mode) and the server's \
                         certificate"
                    }
                    sqlx::Error::Database(_) => {
                        "the user name, the password ([source] password or password_file), \
                         that the database exists and that the user may connect to it"
                    }
                    _ => "the source URL",
                };
                (database_message(&e), hint)
            }
        };
        SourceError::Connect {
            backend,
            target: target.to_owned(),
            user: user.map(str::to_owned),
            reason: scrubber.scrub(reason),
            hint,
        }
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
}
