//! sds-source owns reading the SIS: one sqlx pool (PostgreSQL, MySQL/MariaDB or SQLite, chosen by
//! URL) or, with the `odbc` feature, an ODBC data source (SQL Server, Oracle, ...), and one query
//! per entity of the source contract, whose values it turns into text the same way on every
//! database.
//!
//! Architecture invariant: the SIS is read-only (connections are opened read-only where the
//! database allows it, and only the configured SELECTs are run); this crate knows nothing of
//! SDS formats; nothing secret appears in its errors or logs.
//!
//! Modules: `connect` (URL → pool, read-only sessions, the embedded demo SIS), `tls` (how a
//! networked SIS is protected: verified TLS by default, warnings otherwise), `plan` (result
//! columns → contract columns), `render` (database values → text; its module doc has the table
//! of what each type prints as), `queries` (the default query of each entity), `odbc` (the ODBC
//! kind: its own connection per query on a thread, the same contract checks and text).

mod connect;
mod copy;
mod error;
#[cfg(feature = "odbc")]
mod odbc;
mod plan;
mod queries;
mod render;
mod tls;

pub use error::{QueryName, SourceError};
pub use queries::{default_query, first_contract_query};

use connect::Pools;
use error::{Scrubber, database_message};
use futures_util::TryStreamExt;
use plan::Plan;
use render::Backend;
use sds_core::Entity;
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Executor, IntoArguments, Pool, Row, SqlSafeStr, Statement};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::debug;

/// Rows `check` reads from each query.
const PROBE_ROWS: usize = 5;

/// How long [`Source::close`] waits for busy connections.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `[source]` says, already resolved (password from `password_file` or env).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `postgres://`, `mysql://`/`mariadb://`, `sqlite://`, `odbc:<connection string>` (with the
    /// `odbc` feature), or `demo:` (embedded demo SIS).
    pub url: String,
    /// Overrides any password in the URL. Never logged.
    pub password: Option<SecretString>,
    /// Admin-written queries by entity; missing entities use the reference-schema defaults.
    pub queries: BTreeMap<Entity, String>,
    /// How long to wait for a connection, at connect and whenever a query needs one.
    pub connect_timeout: Duration,
    /// How long one query may take, all its rows included: a hung SIS must fail the run
    /// (and show in the logs and metrics) instead of stopping every later one.
    pub query_timeout: Duration,
    /// PostgreSQL: read queries whose columns are all text-like or integers through
    /// `COPY ... TO STDOUT` (same values, about half the client's CPU). On by default; off
    /// only as an escape hatch.
    pub postgres_copy: bool,
    /// PEM file with the CA certificate(s) of a private CA that signed the SIS server's
    /// certificate, trusted in addition to the public web CAs (PostgreSQL, MySQL/MariaDB).
    pub ca_file: Option<PathBuf>,
    /// The longest value (in bytes, as text) a query may return; a longer one fails the read
    /// naming entity, column and row.
    pub max_value_bytes: usize,
    /// The most rows one query may return; one more fails the read while the rows stream.
    pub max_rows: u64,
    /// Whether the built-in queries return the whole contract ([`default_query`]) or only the
    /// first contract's columns ([`first_contract_query`]), for an export that uses none of
    /// the full SDS formats: it then reads exactly what it always read. Admin-written queries
    /// are run as written either way.
    pub full_contract: bool,
}

impl SourceConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(3600);
    /// 64 KiB: far above any name, ID or email, far below what would hurt memory.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;

    /// Warnings about how the SIS would be reached, from the URL and `ca_file` alone (no
    /// connection): a remote SIS without verified TLS, URL parameters that are ignored. For the
    /// caller to log at start, in `once`, after a reload and in `check`.
    ///
    /// Errors: [`SourceError::InvalidUrl`] and [`SourceError::CaFile`] as [`Source::connect`]
    /// would report them.
    pub fn warnings(&self) -> Result<Vec<String>, SourceError> {
        connect::warnings(self)
    }

    /// A config for `url` with no password override, the default queries and timeout.
    pub fn new(url: impl Into<String>) -> SourceConfig {
        SourceConfig {
            url: url.into(),
            ..SourceConfig::default()
        }
    }

    /// The checks of [`Source::connect`] that need no network: a supported scheme and a URL its
    /// driver can parse. Errors: [`SourceError::InvalidUrl`] (never repeating the URL).
    pub fn validate(&self) -> Result<(), SourceError> {
        connect::validate(self)
    }
}

impl Default for SourceConfig {
    fn default() -> SourceConfig {
        SourceConfig {
            url: String::new(),
            password: None,
            queries: BTreeMap::new(),
            connect_timeout: SourceConfig::DEFAULT_CONNECT_TIMEOUT,
            query_timeout: SourceConfig::DEFAULT_QUERY_TIMEOUT,
            postgres_copy: true,
            ca_file: None,
            max_value_bytes: SourceConfig::DEFAULT_MAX_VALUE_BYTES,
            max_rows: u64::MAX,
            full_contract: true,
        }
    }
}

/// A connected, read-only SIS. Cheap to share by reference; [`Source::close`] ends its pool.
#[derive(Debug)]
pub struct Source {
    pools: Pools,
    target: String,
    queries: BTreeMap<Entity, String>,
    scrubber: Scrubber,
    query_timeout: Duration,
    postgres_copy: bool,
    tls: Option<tls::TlsPlan>,
    limits: Limits,
    full_contract: bool,
}

/// What one row may be, checked as rows stream.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_value_bytes: usize,
    max_rows: u64,
}

impl Source {
    /// Opens the SIS named by `cfg.url` and proves one connection works.
    ///
    /// Errors: [`SourceError::InvalidUrl`] for an unknown scheme or a malformed URL,
    /// [`SourceError::Connect`] when the database cannot be reached or refuses the login (naming
    /// backend, host, port, database and user, and what to check), [`SourceError::Demo`] when
    /// the embedded demo SIS does not load.
    pub async fn connect(cfg: &SourceConfig) -> Result<Source, SourceError> {
        let connected = connect::connect(cfg).await?;
        debug!(source = %connected.target, "connected to the SIS");
        Ok(Source {
            pools: connected.pools,
            target: connected.target,
            queries: cfg.queries.clone(),
            full_contract: cfg.full_contract,
            scrubber: connected.scrubber,
            query_timeout: cfg.query_timeout,
            postgres_copy: cfg.postgres_copy,
            tls: connected.tls,
            limits: Limits {
                max_value_bytes: cfg.max_value_bytes,
                max_rows: cfg.max_rows,
            },
        })
    }

    /// Runs the entity's query and hands each row to `sink`, values in `entity.columns()`
    /// order (None = NULL or an optional column the query does not return). The values are
    /// borrowed from the driver's row buffer, valid for the call only: copy what you keep. Rows
    /// stream: memory does not grow with the number of rows. Returns the number of rows read.
    ///
    /// The contract columns are checked before the first row (from the prepared statement), so
    /// a query that returns no rows is checked too. Errors: [`SourceError::MissingColumn`],
    /// [`SourceError::DuplicateColumn`], [`SourceError::UnsupportedType`],
    /// [`SourceError::Value`], [`SourceError::Query`] (the database's message),
    /// [`SourceError::Timeout`], [`SourceError::EmptyQuery`], [`SourceError::ValueTooLong`]
    /// and [`SourceError::TooManyRows`]. Rows already handed to `sink` stay handed; on error
    /// the caller should discard them.
    pub async fn read<F>(&self, entity: Entity, mut sink: F) -> Result<u64, SourceError>
    where
        F: FnMut(&[Option<&str>]),
    {
        let (sql, query) = self.query(entity)?;
        let started = Instant::now();
        let limits = self.limits;
        let mut row = 0u64;
        let mut checked = |values: &[Option<&str>]| -> Result<(), SourceError> {
            row += 1;
            check_row(query, values, row, limits)?;
            sink(values);
            Ok(())
        };
        let rows = self.run(query, sql, &mut checked).await?;
        debug!(
            entity = entity.key(),
            custom_query = query.custom,
            rows,
            duration_ms = started.elapsed().as_millis() as u64,
            "read SIS query"
        );
        Ok(rows)
    }

    /// Runs the entity's query with a small LIMIT and proves it returns the contract columns.
    /// Changes nothing. Errors as for [`Source::read`].
    pub async fn probe(&self, entity: Entity) -> Result<(), SourceError> {
        let (sql, query) = self.query(entity)?;
        #[cfg(feature = "odbc")]
        if let Pools::Odbc(odbc) = &self.pools {
            // The LIMIT syntax differs by DBMS (TOP, FETCH FIRST, ...): the server or the
            // driver limits the probe where it can (see `odbc::RowLimit`), and reading stops
            // after PROBE_ROWS rows in any case.
            let started = Instant::now();
            let read = odbc.probe(query, sql, PROBE_ROWS);
            let rows = self.timed(query, read).await?;
            debug!(
                entity = entity.key(),
                custom_query = query.custom,
                rows,
                duration_ms = started.elapsed().as_millis() as u64,
                "probed SIS query"
            );
            return Ok(());
        }
        // A derived table with LIMIT is understood by PostgreSQL, MySQL/MariaDB and SQLite
        // alike, whatever the query itself looks like (joins, CTEs, ORDER BY). The query stands
        // on lines of its own so that a trailing `-- comment` ends before the wrapper does.
        let wrapped = format!("SELECT * FROM (\n{sql}\n) AS q LIMIT {PROBE_ROWS}");
        let started = Instant::now();
        let rows = self.run(query, wrapped, &mut |_| Ok(())).await?;
        debug!(
            entity = entity.key(),
            custom_query = query.custom,
            rows,
            duration_ms = started.elapsed().as_millis() as u64,
            "probed SIS query"
        );
        Ok(())
    }

    /// Which contract columns the entity's query returns: `true` at `i` for
    /// `entity.columns()[i]`, from the query's result columns (the rows are not read). The
    /// builder writes an optional SDS column only when its contract column is returned, so the
    /// header of a file does not depend on whether a run's values happen to be NULL. Errors as
    /// for [`Source::read`].
    pub async fn returned_columns(&self, entity: Entity) -> Result<Vec<bool>, SourceError> {
        let (sql, query) = self.query(entity)?;
        let find = async {
            match &self.pools {
                Pools::Postgres(pool) => prepare_plan(pool, query, &sql, &self.scrubber)
                    .await
                    .map(|p| p.present()),
                Pools::MySql(pool) => prepare_plan(pool, query, &sql, &self.scrubber)
                    .await
                    .map(|p| p.present()),
                Pools::Sqlite(pool) => prepare_plan(pool, query, &sql, &self.scrubber)
                    .await
                    .map(|p| p.present()),
                #[cfg(feature = "odbc")]
                // The plain query: the row limit is the driver's (`SQL_ATTR_MAX_ROWS`), and
                // reading stops after the first row anyway. (Wrapped as `probe` wraps it, the
                // MariaDB driver appends a second LIMIT of its own.)
                Pools::Odbc(odbc) => odbc.returned_columns(query, sql.clone()).await,
            }
        };
        tokio::time::timeout(self.query_timeout, find)
            .await
            .unwrap_or(Err(SourceError::Timeout {
                query,
                secs: self.query_timeout.as_secs(),
            }))
    }

    /// Where the data comes from, without credentials: `postgres://127.0.0.1:5432/sis`,
    /// `mysql://db:3306/sis`, `sqlite:///var/lib/sis.db`, `demo (embedded SQLite)`; ODBC: the
    /// connection string with secrets masked, then the DBMS and driver it reached and whether
    /// the session is read-only.
    pub fn describe(&self) -> String {
        self.target.clone()
    }

    /// For `check`: how the connection is meant to be protected and what the server
    /// negotiated, e.g. "TLS required, certificate and host name verified (the default for a
    /// remote host); this session: TLS (TLSv1.3)". `None` for SQLite and the demo SIS. An ODBC
    /// driver takes its TLS settings from the connection string, which sds-sync does not check.
    pub async fn transport(&self) -> Option<String> {
        #[cfg(feature = "odbc")]
        if let Pools::Odbc(_) = &self.pools {
            return Some(
                "set by the driver's connection string (not checked by sds-sync)".to_owned(),
            );
        }
        let plan = self.tls.as_ref()?;
        let session = match &self.pools {
            Pools::Postgres(pool) => {
                let row: Result<(bool, Option<String>), sqlx::Error> = sqlx::query_as(
                    "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                )
                .fetch_one(pool)
                .await;
                row.map(|(ssl, version)| ssl.then(|| version.unwrap_or_default()))
            }
            Pools::MySql(pool) => {
                let row: Result<Option<(String, String)>, sqlx::Error> =
                    sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_version'")
                        .fetch_optional(pool)
                        .await;
                row.map(|r| r.map(|(_, v)| v).filter(|v| !v.is_empty()))
            }
            Pools::Sqlite(_) => return None,
            #[cfg(feature = "odbc")]
            Pools::Odbc(_) => return None, // answered above
        };
        let session = match session {
            Ok(Some(version)) => format!("TLS ({version})"),
            Ok(None) => "not encrypted".to_owned(),
            Err(e) => format!("unknown ({})", self.scrubber.scrub(database_message(&e))),
        };
        Some(format!("{}; this session: {session}", plan.describe()))
    }

    /// Closes the pool's connections. Waits at most a few seconds: after a query timed out its
    /// connection may still be waiting for the server, and a hung SIS must not hang the caller.
    pub async fn close(&self) {
        let close = async {
            match &self.pools {
                Pools::Postgres(p) => p.close().await,
                Pools::MySql(p) => p.close().await,
                Pools::Sqlite(p) => p.close().await,
                // Each query opens and closes its own connection.
                #[cfg(feature = "odbc")]
                Pools::Odbc(_) => {}
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
            debug!(
                "SIS connections still busy after {CLOSE_TIMEOUT:?}; left to close in the background"
            );
        }
    }

    /// The SQL to run for `entity` and how to name it in errors.
    fn query(&self, entity: Entity) -> Result<(String, QueryName), SourceError> {
        let (text, custom) = match self.queries.get(&entity) {
            Some(q) => (q.as_str(), true),
            None if self.full_contract => (default_query(entity), false),
            None => (first_contract_query(entity), false),
        };
        let query = QueryName { entity, custom };
        let sql = trim_sql(text);
        if sql.is_empty() {
            return Err(SourceError::EmptyQuery { query });
        }
        Ok((sql.to_owned(), query))
    }

    async fn run<F>(&self, query: QueryName, sql: String, sink: &mut F) -> Result<u64, SourceError>
    where
        F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
    {
        let run = async {
            match &self.pools {
                Pools::Postgres(pool) if self.postgres_copy => {
                    let max = self.limits.max_value_bytes;
                    stream_postgres(pool, query, sql, &self.scrubber, max, sink).await
                }
                Pools::Postgres(pool) => stream(pool, query, sql, &self.scrubber, sink).await,
                Pools::MySql(pool) => stream(pool, query, sql, &self.scrubber, sink).await,
                Pools::Sqlite(pool) => stream(pool, query, sql, &self.scrubber, sink).await,
                #[cfg(feature = "odbc")]
                Pools::Odbc(odbc) => odbc.read(query, sql, sink).await,
            }
        };
        self.timed(query, run).await
    }

    /// `run` within `[source] query_timeout_secs`. Dropping the stream on timeout closes its
    /// connection (ODBC: cancels the statement); the server ends the query.
    async fn timed(
        &self,
        query: QueryName,
        run: impl Future<Output = Result<u64, SourceError>>,
    ) -> Result<u64, SourceError> {
        tokio::time::timeout(self.query_timeout, run)
            .await
            .unwrap_or(Err(SourceError::Timeout {
                query,
                secs: self.query_timeout.as_secs(),
            }))
    }
}

/// Removes trailing `;` and blanks: drivers that prepare statements reject a trailing `;`
/// after a derived table (`probe`), and some reject it outright.
fn trim_sql(sql: &str) -> &str {
    sql.trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// PostgreSQL: checks the contract as [`stream`] does, then reads through COPY when every
/// contract column qualifies ([`Plan::copy_columns`]), else row by row ([`stream_rows`]).
async fn stream_postgres<F>(
    pool: &sqlx::PgPool,
    query: QueryName,
    sql: String,
    scrubber: &Scrubber,
    max_value_bytes: usize,
    sink: &mut F,
) -> Result<u64, SourceError>
where
    F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
{
    let plan = prepare_plan(pool, query, &sql, scrubber).await?;
    let Some(columns) = plan.copy_columns() else {
        return stream_rows(pool, query, plan, sql, scrubber, sink).await;
    };

    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| query_failed::<sqlx::Postgres>(query, scrubber, &e))?;
    // On lines of its own, so that a trailing `-- comment` in the query ends before `)`.
    let copy_sql = format!("COPY (\n{sql}\n) TO STDOUT");
    let refused = match conn.copy_out_raw(&copy_sql).await {
        Ok(chunks) => {
            return read_copy(chunks, query, &columns, scrubber, max_value_bytes, sink).await;
        }
        Err(e) => e,
    };
    // A refused COPY leaves the connection's protocol state behind (sqlx does not wait for the
    // server's ReadyForQuery on that path): close it rather than hand it back to the pool.
    drop(conn.detach());
    // Some queries COPY does not take (a locking clause, a data-modifying CTE): the row path
    // reads them, and reports any real error in the query itself.
    debug!(query = %query, error = %scrubber.scrub(database_message(&refused)), "COPY refused; reading rows instead");
    stream_rows(pool, query, plan, sql, scrubber, sink).await
}

/// The rows of a running COPY, parsed line by line into `sink`.
async fn read_copy<F>(
    mut chunks: futures_util::stream::BoxStream<
        '_,
        sqlx::Result<impl std::ops::Deref<Target = [u8]>>,
    >,
    query: QueryName,
    columns: &[plan::CopyColumn],
    scrubber: &Scrubber,
    max_value_bytes: usize,
    sink: &mut F,
) -> Result<u64, SourceError>
where
    F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
{
    let backend = <sqlx::Postgres as Backend>::LABEL;
    let max_line = columns
        .len()
        .max(1)
        .saturating_mul(max_value_bytes.saturating_mul(2).saturating_add(1));
    let mut lines = copy::Lines::default();
    let mut reader = copy::RowReader::default();
    let mut count: u64 = 0;
    while let Some(chunk) = chunks
        .try_next()
        .await
        .map_err(|e| query_failed::<sqlx::Postgres>(query, scrubber, &e))?
    {
        lines.feed(&chunk, |line| {
            count += 1;
            reader
                .read(line, columns, &mut *sink)
                .map_err(|copy::CopyError(message)| SourceError::Query {
                    query,
                    backend,
                    message: format!("row {count}: {message}"),
                })?
        })?;
        // A line split over many chunks would grow here; a row longer than all its values may
        // be (escapes double a value at most) is refused before it does.
        if lines.partial_len() > max_line {
            return Err(SourceError::Query {
                query,
                backend,
                message: format!(
                    "row {}: longer than {max_line} bytes ([source] max_value_bytes per column)",
                    count + 1
                ),
            });
        }
    }
    if lines.has_partial_line() {
        return Err(SourceError::Query {
            query,
            backend,
            message: "the COPY output ended in the middle of a row".into(),
        });
    }
    Ok(count)
}

/// The database's error for `query`, worded for the admin and scrubbed of secrets.
fn query_failed<DB: Backend>(
    query: QueryName,
    scrubber: &Scrubber,
    e: &sqlx::Error,
) -> SourceError {
    SourceError::Query {
        query,
        backend: DB::LABEL,
        message: scrubber.scrub(database_message(e)),
    }
}

/// Prepares `sql` and checks that it returns the contract columns (works for an empty result
/// too, since no row is needed).
async fn prepare_plan<DB>(
    pool: &Pool<DB>,
    query: QueryName,
    sql: &str,
    scrubber: &Scrubber,
) -> Result<Plan, SourceError>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let statement = pool
        .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
        .await
        .map_err(|e| query_failed::<DB>(query, scrubber, &e))?;
    Plan::build::<DB>(query, statement.columns())
}

/// Checks the contract ([`prepare_plan`]), then streams the rows into `sink` one by one.
async fn stream<DB, F>(
    pool: &Pool<DB>,
    query: QueryName,
    sql: String,
    scrubber: &Scrubber,
    sink: &mut F,
) -> Result<u64, SourceError>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
{
    let plan = prepare_plan(pool, query, &sql, scrubber).await?;
    stream_rows(pool, query, plan, sql, scrubber, sink).await
}

/// Streams the rows of `sql` into `sink`, decoding them by `plan`.
async fn stream_rows<DB, F>(
    pool: &Pool<DB>,
    query: QueryName,
    mut plan: Plan,
    sql: String,
    scrubber: &Scrubber,
    sink: &mut F,
) -> Result<u64, SourceError>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
{
    let failed = |e: sqlx::Error| query_failed::<DB>(query, scrubber, &e);
    let mut rows = sqlx::query::<DB>(AssertSqlSafe(sql)).fetch(pool);
    let mut count: u64 = 0;
    while let Some(row) = rows.try_next().await.map_err(failed)? {
        if count == 0 {
            // The rows' own column metadata is what their values are decoded with; some
            // servers describe a prepared statement slightly differently from its results.
            plan = Plan::build::<DB>(query, row.columns())?;
        }
        count += 1;
        let cells = plan.read::<DB>(query, &row, count)?;
        let values: [Option<&str>; plan::MAX_COLUMNS] =
            std::array::from_fn(|i| cells[i].as_deref());
        sink(values.get(..plan.width()).unwrap_or(&values))?;
    }
    Ok(count)
}

/// Checks one row against the limits before anyone keeps it. `row` counts from 1.
fn check_row(
    query: QueryName,
    values: &[Option<&str>],
    row: u64,
    limits: Limits,
) -> Result<(), SourceError> {
    if row > limits.max_rows {
        return Err(SourceError::TooManyRows {
            query,
            limit: limits.max_rows,
        });
    }
    for (i, value) in values.iter().enumerate() {
        if let Some(v) = value
            && v.len() > limits.max_value_bytes
        {
            return Err(SourceError::ValueTooLong {
                query,
                column: query.entity.columns().get(i).map_or("?", |c| c.name),
                row,
                id: row_id(query.entity, values, i),
                bytes: v.len(),
                limit: limits.max_value_bytes,
            });
        }
    }
    Ok(())
}

/// The key columns of a row (`student_id=123`), each shortened, for an error about the row.
/// `long` is the column whose value is too long to show.
fn row_id(entity: Entity, values: &[Option<&str>], long: usize) -> String {
    // The columns that identify a row of each entity, in contract order.
    let keys: &[usize] = match entity {
        Entity::Schools
        | Entity::Students
        | Entity::Teachers
        | Entity::AcademicSessions
        | Entity::Courses => &[0],
        Entity::Sections => &[0, 1, 2],
        Entity::StudentEnrollments | Entity::TeacherRosters => &[0, 1, 2, 3],
        Entity::Guardians => &[0, 1],
    };
    let columns = entity.columns();
    keys.iter()
        .filter_map(|&i| {
            let name = columns.get(i)?.name;
            let value = match values.get(i).copied().flatten() {
                None => "NULL".to_owned(),
                Some(_) if i == long => "(the long value)".to_owned(),
                Some(v) => shorten(v, 64),
            };
            Some(format!("{name}={value}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most `max` characters on one line.
fn shorten(v: &str, max: usize) -> String {
    let mut out: String = v
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if v.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_value_bytes: usize, max_rows: u64) -> Limits {
        Limits {
            max_value_bytes,
            max_rows,
        }
    }

    #[test]
    fn a_long_value_names_entity_column_and_row() {
        let query = QueryName {
            entity: Entity::Students,
            custom: true,
        };
        let long = "x".repeat(11);
        let row = [
            Some("000123"),
            Some("001"),
            Some(long.as_str()),
            Some("Doe"),
        ];
        assert!(check_row(query, &row, 7, limits(11, 10)).is_ok());
        let err = check_row(query, &row, 7, limits(10, 10)).expect_err("11 > 10 bytes");
        let text = err.to_string();
        for want in [
            "[source.queries] students",
            "`first_name`",
            "row 7",
            "student_id=000123",
            "11 bytes",
            "max_value_bytes = 10",
        ] {
            assert!(text.contains(want), "{want:?} missing: {text}");
        }
        assert!(
            !text.contains(&long),
            "the value itself is not repeated: {text}"
        );

        // The key itself too long: not repeated either; bytes, not characters, count.
        let sections = QueryName {
            entity: Entity::Sections,
            custom: false,
        };
        let row = [Some("001"), Some("ééééé\n"), Some("1"), None];
        let err = check_row(sections, &row, 1, limits(10, 10)).expect_err("11 bytes");
        let text = err.to_string();
        assert!(
            text.contains("school_id=001, course_code=(the long value), section_code=1"),
            "{text}"
        );
    }

    #[test]
    fn one_row_more_than_the_limit_fails() {
        let query = QueryName {
            entity: Entity::StudentEnrollments,
            custom: false,
        };
        let row = [Some("001"), Some("M"), Some("1"), Some("7")];
        assert!(check_row(query, &row, 3, limits(100, 3)).is_ok());
        let err = check_row(query, &row, 4, limits(100, 3)).expect_err("4 > 3 rows");
        assert!(matches!(err, SourceError::TooManyRows { limit: 3, .. }));
        assert!(err.to_string().contains("max_rows_per_file"), "{err}");
    }

    #[test]
    fn shortened_values_stay_on_one_line() {
        assert_eq!(shorten("a\nb", 10), "a b");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }

    #[test]
    fn trailing_semicolons_and_blanks_are_removed() {
        assert_eq!(trim_sql("  SELECT 1 ;\n ; \n"), "SELECT 1");
        assert_eq!(trim_sql("SELECT ';'"), "SELECT ';'");
        assert_eq!(trim_sql(" ;; "), "");
    }

    /// The daemon runs reads inside spawned tasks: the futures must be `Send` when the sink is.
    #[allow(dead_code)]
    fn futures_are_send(source: &Source) {
        fn send<T: Send>(_: T) {}
        send(source.read(Entity::Schools, |_| ()));
        send(source.probe(Entity::Schools));
        send(Source::connect(&SourceConfig::default()));
    }

    #[test]
    fn query_names_say_where_to_fix_them() {
        let custom = QueryName {
            entity: Entity::Students,
            custom: true,
        };
        assert_eq!(custom.to_string(), "query `[source.queries] students`");
        let default = QueryName {
            entity: Entity::Students,
            custom: false,
        };
        assert!(default.to_string().contains("[source.queries] students"));
    }
}
