//! Opening the SIS: the URL picks the driver, and every connection is made read-only in the way
//! its database offers (PostgreSQL `default_transaction_read_only`, MySQL
//! `SET SESSION TRANSACTION READ ONLY`, SQLite `SQLITE_OPEN_READONLY` plus `query_only`).
//!
//! Networked databases get verified TLS by default unless they are on this machine; see
//! [`crate::tls`] for the rules and the warnings.
//!
//! The first connection is made by hand, outside the pool: the pool retries refused connections
//! until its timeout and then reports only "timed out", while the admin needs the real cause
//! (refused, wrong password, unknown database). The pool itself connects lazily afterwards.

use crate::SourceConfig;
use crate::error::{Scrubber, SourceError, database_message};
use crate::tls::{Driver, Locality, Protection, TlsPlan, clean_url, read_ca_file};
use secrecy::ExposeSecret;
use sqlx::mysql::{
    MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlSslMode,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
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
    #[cfg(feature = "odbc")]
    Odbc(crate::odbc::OdbcSource),
}

#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) pools: Pools,
    /// For logs and `describe()`: no credentials.
    pub(crate) target: String,
    pub(crate) scrubber: Scrubber,
    /// How the connection is protected (networked databases only).
    pub(crate) tls: Option<TlsPlan>,
}

/// What the URL (and `[source] ca_file`) say, before any connection: the warnings to log at
/// start, in `once`, after a reload and in `check`.
pub(crate) fn warnings(cfg: &SourceConfig) -> Result<Vec<String>, SourceError> {
    let url = cfg.url.trim();
    let mut scrubber = base_scrubber(cfg, url);
    Ok(match scheme(url).as_str() {
        "postgres" | "postgresql" => postgres_options(url, cfg, &mut scrubber)?.warnings,
        "mysql" | "mariadb" => mysql_options(&mysql_url(url), cfg, &mut scrubber)?.warnings,
        "sqlite" | "demo" if cfg.ca_file.is_some() => vec![
            "[source] ca_file is not used: SQLite and the demo SIS are files, not servers"
                .to_owned(),
        ],
        "odbc" if cfg.ca_file.is_some() => vec![
            "[source] ca_file is not used by ODBC sources: name the CA in the connection \
             string, with the driver's own key (docs/configuration.md, ODBC)"
                .to_owned(),
        ],
        _ => Vec::new(),
    })
}

fn scheme(url: &str) -> String {
    url.split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default()
}

/// sqlx speaks to MariaDB as MySQL; it only knows the `mysql` scheme.
fn mysql_url(url: &str) -> String {
    match url.get(.."mariadb".len()) {
        Some(s) if s.eq_ignore_ascii_case("mariadb") => format!("mysql{}", &url["mariadb".len()..]),
        _ => url.to_owned(),
    }
}

/// What [`connect`] checks before it opens anything: a scheme it knows and a URL its driver
/// parses (with the TLS settings and `[source] ca_file` of networked drivers). Needs no
/// network, so every verb runs it first: a typo such as `postgress://` fails `check --offline`,
/// and `once` before a state directory exists. `connect` calls it too, so a scheme added there
/// must be added here.
pub(crate) fn validate(cfg: &SourceConfig) -> Result<(), SourceError> {
    let url = cfg.url.trim();
    match scheme(url).as_str() {
        "postgres" | "postgresql" | "mysql" | "mariadb" => warnings(cfg).map(drop),
        "sqlite" => {
            SqliteConnectOptions::from_str(url)
                .map(drop)
                .map_err(|e| SourceError::InvalidUrl {
                    reason: base_scrubber(cfg, url).scrub(e.to_string()),
                })
        }
        "demo" => Ok(()),
        #[cfg(feature = "odbc")]
        "odbc" => crate::odbc::check_conn_string(url),
        #[cfg(not(feature = "odbc"))]
        "odbc" => Err(no_odbc()),
        "" => Err(SourceError::InvalidUrl {
            reason: "it has no scheme; use postgres://, mysql://, mariadb://, sqlite://, odbc: \
                     or demo:"
                .to_owned(),
        }),
        scheme => Err(SourceError::InvalidUrl {
            reason: format!(
                "unsupported scheme `{scheme}:`; use postgres://, mysql://, mariadb://, \
                 sqlite://, odbc: or demo:"
            ),
        }),
    }
}

#[cfg(not(feature = "odbc"))]
fn no_odbc() -> SourceError {
    SourceError::InvalidUrl {
        reason: "this sds-sync was built without ODBC support; use the Docker image, or build \
                 with `cargo build --release --features sds-daemon/odbc` (needs the \
                 unixodbc-dev package)"
            .to_owned(),
    }
}

pub(crate) async fn connect(cfg: &SourceConfig) -> Result<Connected, SourceError> {
    validate(cfg)?;
    let url = cfg.url.trim();
    let scheme = scheme(url);
    let scrubber = base_scrubber(cfg, url);

    match scheme.as_str() {
        "postgres" | "postgresql" => connect_postgres(url, cfg, scrubber).await,
        "mysql" | "mariadb" => connect_mysql(&mysql_url(url), cfg, scrubber).await,
        "sqlite" => connect_sqlite(url, cfg, scrubber).await,
        "demo" => connect_demo(cfg, scrubber).await,
        #[cfg(feature = "odbc")]
        "odbc" => crate::odbc::connect(url, cfg, scrubber).await,
        #[cfg(not(feature = "odbc"))]
        "odbc" => Err(no_odbc()),
        _ => Err(SourceError::InvalidUrl {
            reason: format!(
                "unsupported scheme `{scheme}:`; use postgres://, mysql://, mariadb://, \
                 sqlite://, odbc: or demo:"
            ),
        }),
    }
}

/// Knows the configured password and the one written in the URL.
fn base_scrubber(cfg: &SourceConfig, url: &str) -> Scrubber {
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

    scrubber
}

/// A networked driver's options, ready to connect, with what the URL said about TLS.
struct Prepared<O> {
    opts: O,
    target: String,
    tls: TlsPlan,
    warnings: Vec<String>,
}

/// The warnings of a URL: parameters removed, then the TLS plan's.
fn url_warnings(ignored: &[String], tls: &TlsPlan) -> Vec<String> {
    let mut out: Vec<String> = ignored
        .iter()
        .map(|key| {
            format!(
                "[source] url: ignoring the unknown parameter `{key}` (its value is not shown); \
                 remove it or fix its spelling"
            )
        })
        .collect();
    out.extend(tls.warning());
    out
}

/// The address inside an IPv6 literal host as a URL writes it (`[::1]` gives `::1`). sqlx keeps
/// the brackets and then fails to look the name up (sqlx issue #1739); the socket needs the
/// bare address.
fn ipv6_literal(host: &str) -> Option<String> {
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|_| inner.to_owned())
}

/// A host as a URL writes it: an IPv6 address in brackets.
fn url_host(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

fn ca_conflict() -> SourceError {
    SourceError::InvalidUrl {
        reason: "it names a CA file and [source] ca_file is set too; keep one (ca_file)".into(),
    }
}

fn postgres_options(
    url: &str,
    cfg: &SourceConfig,
    scrubber: &mut Scrubber,
) -> Result<Prepared<PgConnectOptions>, SourceError> {
    let clean = clean_url(Driver::Postgres, url, scrubber)?;
    let mut opts = PgConnectOptions::from_str(&clean.url).map_err(|e| SourceError::InvalidUrl {
        reason: scrubber.scrub(e.to_string()),
    })?;
    if let Some(ip) = ipv6_literal(opts.get_host()) {
        opts = opts.host(&ip);
    }
    if let Some(password) = &cfg.password {
        opts = opts.password(password.expose_secret());
    }
    let (locality, host) = match opts.get_socket() {
        Some(socket) => (Locality::Socket, socket.display().to_string()),
        None => (
            Locality::of_host(opts.get_host()),
            opts.get_host().to_owned(),
        ),
    };
    let tls = TlsPlan::decide(
        Driver::Postgres,
        locality,
        &host,
        clean.written_mode.as_ref(),
        cfg.ca_file.is_some(),
    );
    // Set whatever the URL did not: the environment (PGSSLMODE) must not weaken the default.
    if clean.written_mode.is_none() {
        opts = opts.ssl_mode(match tls.protection {
            Protection::Verified => PgSslMode::VerifyFull,
            _ => PgSslMode::Prefer,
        });
    }
    if let Some(path) = &cfg.ca_file {
        if clean.url_ca {
            return Err(ca_conflict());
        }
        opts = opts.ssl_root_cert_from_pem(read_ca_file(path)?);
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
            url_host(opts.get_host()),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        ),
    };
    let warnings = url_warnings(&clean.ignored, &tls);
    Ok(Prepared {
        opts,
        target,
        tls,
        warnings,
    })
}

async fn connect_postgres(
    url: &str,
    cfg: &SourceConfig,
    mut scrubber: Scrubber,
) -> Result<Connected, SourceError> {
    let Prepared {
        opts, target, tls, ..
    } = postgres_options(url, cfg, &mut scrubber)?;
    let failed = |reason: ConnectFailure| {
        reason.into_error(
            "PostgreSQL",
            &target,
            Some(opts.get_username()),
            Some(&tls),
            &scrubber,
        )
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
        tls: Some(tls),
    })
}

fn mysql_options(
    url: &str,
    cfg: &SourceConfig,
    scrubber: &mut Scrubber,
) -> Result<Prepared<MySqlConnectOptions>, SourceError> {
    let clean = clean_url(Driver::MySql, url, scrubber)?;
    let mut opts =
        MySqlConnectOptions::from_str(&clean.url).map_err(|e| SourceError::InvalidUrl {
            reason: scrubber.scrub(e.to_string()),
        })?;
    if let Some(ip) = ipv6_literal(opts.get_host()) {
        opts = opts.host(&ip);
    }
    if let Some(password) = &cfg.password {
        opts = opts.password(password.expose_secret());
    }
    let (locality, host) = match opts.get_socket() {
        Some(socket) => (Locality::Socket, socket.display().to_string()),
        None => (
            Locality::of_host(opts.get_host()),
            opts.get_host().to_owned(),
        ),
    };
    let tls = TlsPlan::decide(
        Driver::MySql,
        locality,
        &host,
        clean.written_mode.as_ref(),
        cfg.ca_file.is_some(),
    );
    if clean.written_mode.is_none() {
        // With TLS verified, `caching_sha2_password` sends the password inside TLS and never
        // asks the server for its RSA key over the connection.
        opts = opts.ssl_mode(match tls.protection {
            Protection::Verified => MySqlSslMode::VerifyIdentity,
            _ => MySqlSslMode::Preferred,
        });
    }
    if let Some(path) = &cfg.ca_file {
        if clean.url_ca {
            return Err(ca_conflict());
        }
        opts = opts.ssl_ca_from_pem(read_ca_file(path)?);
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
            url_host(opts.get_host()),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        ),
    };
    let warnings = url_warnings(&clean.ignored, &tls);
    Ok(Prepared {
        opts,
        target,
        tls,
        warnings,
    })
}

async fn connect_mysql(
    url: &str,
    cfg: &SourceConfig,
    mut scrubber: Scrubber,
) -> Result<Connected, SourceError> {
    let Prepared {
        opts, target, tls, ..
    } = mysql_options(url, cfg, &mut scrubber)?;
    let failed = |reason: ConnectFailure| {
        reason.into_error(
            "MySQL/MariaDB",
            &target,
            Some(opts.get_username()),
            Some(&tls),
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
        tls: Some(tls),
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
    let failed =
        |reason: ConnectFailure| reason.into_error("SQLite", &target, None, None, &scrubber);

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
        tls: None,
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
        tls: None,
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
        tls: Option<&TlsPlan>,
        scrubber: &Scrubber,
    ) -> SourceError {
        let (reason, hint) = match self {
            ConnectFailure::TimedOut(t) => (
                format!("no connection within {} s", t.as_secs_f32()),
                "that the host and port are right and that no firewall drops the traffic".into(),
            ),
            ConnectFailure::ReadOnly(e) => (
                format!(
                    "cannot make the session read-only: {}",
                    database_message(&e)
                ),
                "that the server is MySQL 5.6.5 / MariaDB 10.0 or newer".into(),
            ),
            ConnectFailure::Driver(e) => {
                // rustls reports a refused certificate as an I/O error of kind InvalidData.
                let tls_failure = matches!(&e, sqlx::Error::Tls(_))
                    || (matches!(&e, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData)
                        && tls.is_some_and(|t| t.protection != Protection::Off));
                let hint = match &e {
                    _ if backend == "SQLite" => "that the file exists and this user may read it \
                                                 (it is opened read-only and never created)"
                        .to_owned(),
                    _ if tls_failure => tls_hint(tls),
                    sqlx::Error::Io(_) => {
                        "that the server is running and listening on that host and port, and \
                         that no firewall blocks it"
                            .to_owned()
                    }
                    sqlx::Error::Database(_) => {
                        "the user name, the password ([source] password or password_file), \
                         that the database exists and that the user may connect to it"
                            .to_owned()
                    }
                    _ => "the source URL".to_owned(),
                };
                let reason = if tls_failure {
                    format!("TLS failed: {}", database_message(&e))
                } else {
                    database_message(&e)
                };
                (reason, hint)
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

/// What to check when TLS failed, given how the connection was meant to be protected.
fn tls_hint(tls: Option<&TlsPlan>) -> String {
    let Some(tls) = tls else {
        return "the TLS settings in the URL (sslmode / ssl-mode)".to_owned();
    };
    match tls.protection {
        Protection::Verified | Protection::CaOnly => format!(
            "that the server has TLS turned on with a certificate for {} issued by a CA \
             sds-sync trusts (the public web CAs, or the PEM file in [source] ca_file for a \
             private CA); connecting to it is {}. Clear text is used only when the URL says so \
             (sslmode=disable / ssl-mode=DISABLED), which sds-sync warns about",
            tls.host,
            tls.describe()
        ),
        _ => format!(
            "that the server has TLS turned on; connecting to it is {}",
            tls.describe()
        ),
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

#[cfg(test)]
mod validate_tests {
    use super::validate;
    use crate::SourceConfig;

    #[test]
    fn known_schemes_pass_and_typos_fail_without_echoing_the_url() {
        for url in [
            "postgres://sis@db.example.org/sis",
            "postgresql://sis@db/sis?sslmode=require",
            "mysql://sis@db:3306/sis",
            "mariadb://sis@db/sis",
            "sqlite:///var/lib/sis.db",
            "demo:",
        ] {
            assert!(validate(&SourceConfig::new(url)).is_ok(), "{url}");
        }
        let err = validate(&SourceConfig::new("postgress://sis:hunter22@db/sis"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme `postgress:`"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
        let err = validate(&SourceConfig::new("postgres://sis:hunter22@db:99999/sis"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("source URL is not valid"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn odbc_connection_strings_are_checked_where_odbc_is_built_in() {
        let good = validate(&SourceConfig::new(
            "odbc:Driver={ODBC Driver 18};Server=sis",
        ));
        let bad = validate(&SourceConfig::new("odbc:Driver=x;Server"));
        if cfg!(feature = "odbc") {
            assert!(good.is_ok(), "{good:?}");
            let err = bad.unwrap_err().to_string();
            assert!(
                err.contains("the ODBC connection string after `odbc:`"),
                "{err}"
            );
        } else {
            for r in [good, bad] {
                let err = r.unwrap_err().to_string();
                assert!(err.contains("built without ODBC support"), "{err}");
            }
        }
    }
}

#[cfg(test)]
mod ipv6_tests {
    use super::*;

    #[test]
    fn an_ipv6_literal_reaches_sqlx_bare_and_is_named_in_brackets() {
        assert_eq!(ipv6_literal("[::1]").as_deref(), Some("::1"));
        assert_eq!(
            ipv6_literal("[2001:db8::7]").as_deref(),
            Some("2001:db8::7")
        );
        assert_eq!(ipv6_literal("db.example.org"), None);
        assert_eq!(ipv6_literal("[not-an-address]"), None);
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("127.0.0.1"), "127.0.0.1");

        let cfg = SourceConfig::new("postgres://u@[::1]:5433/sis");
        let p = postgres_options(&cfg.url, &cfg, &mut Scrubber::default()).expect("valid");
        assert_eq!(p.opts.get_host(), "::1");
        assert_eq!(p.target, "postgres://[::1]:5433/sis");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let cfg = SourceConfig::new("mysql://u@[::1]:3307/sis");
        let p = mysql_options(&cfg.url, &cfg, &mut Scrubber::default()).expect("valid");
        assert_eq!(p.opts.get_host(), "::1");
        assert_eq!(p.target, "mysql://[::1]:3307/sis");
        // A remote IPv6 address still gets verified TLS.
        let cfg = SourceConfig::new("postgres://u@[2001:db8::7]/sis");
        let p = postgres_options(&cfg.url, &cfg, &mut Scrubber::default()).expect("valid");
        assert_eq!(p.opts.get_host(), "2001:db8::7");
        assert_eq!(p.tls.protection, crate::tls::Protection::Verified);
    }
}
