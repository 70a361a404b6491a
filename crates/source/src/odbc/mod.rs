//! The ODBC source kind (`odbc:<connection string>`): SQL Server, Oracle, Informix, DB2 and any
//! other database with an ODBC driver for unixODBC, read with the same contract, queries, checks
//! and text as the sqlx sources.
//!
//! ODBC calls block, so each query runs on a thread of its own: it connects, makes the session
//! read-only (the database's own statement where it has one, else `SQL_ATTR_ACCESS_MODE`, which
//! the driver may ignore), sets the query timeout (`SQL_ATTR_QUERY_TIMEOUT`), checks the
//! contract columns from the result set's description, then fetches rows in blocks into one bounded columnar buffer, turns each block into text
//! ([`column`]) and hands it over a channel of two blocks to the async caller, which feeds the
//! same row callback as the other kinds. Memory is the buffer plus at most four blocks of text
//! (two queued, one being rendered, one being read), whatever the number of rows. When the
//! caller gives up (timeout, error, shutdown) the running statement is cancelled (`SQLCancel`)
//! and the thread closes its connection.
//!
//! No connection is kept between queries: runs are hours apart, and a fresh connection per query
//! never meets a connection the server dropped in between.
//!
//! odbc-api panics when a handle cannot be closed cleanly (a connection that died mid-fetch);
//! after a failure this module therefore leaves the statement to `SQLDisconnect` (which frees
//! it) and forgets a connection that will not disconnect, instead of dropping them.

mod column;
mod conn_str;
mod diag;

use crate::connect::{Connected, Pools};
use crate::error::{QueryName, Scrubber, SourceError};
use crate::plan::{self, MAX_COLUMNS};
use column::{Encoding, Kind, Raw};
use conn_str::ConnString;
use odbc_api::buffers::{AnyColumnBufferSlice, BoxColumnBuffer, ColumnarBuffer};
use odbc_api::handles::{AsStatementRef, Statement};
use odbc_api::sys::{self, HStmt, SqlReturn};
use odbc_api::{
    Bit, ColumnDescription, ConnectionOptions, Cursor, Preallocated, ResultSetMetadata, environment,
};
use secrecy::{ExposeSecret, SecretString};
use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// For messages: the backend of every error from this kind.
pub(crate) const LABEL: &str = "ODBC";

/// Bytes of the columnar fetch buffer; rows per block follow from the row's width.
const BUFFER_BYTES: usize = 4 << 20;
/// Rows per block at most (narrow rows would otherwise make very large blocks of text).
const MAX_BLOCK_ROWS: usize = 2000;

/// The configuration of an ODBC source after its first connection.
#[derive(Debug, Clone)]
pub(crate) struct OdbcSource {
    /// What the driver manager gets, password included.
    conn_string: SecretString,
    names: Names,
    /// `SQL_DBMS_NAME` of the first connection.
    dbms: String,
    encoding: Encoding,
    connect_timeout: Duration,
    query_timeout: Duration,
    scrubber: Scrubber,
}

/// The part of [`connect`] that needs no driver: the connection string after `odbc:` parses.
pub(crate) fn check_conn_string(url: &str) -> Result<(), SourceError> {
    let text = url.get("odbc:".len()..).unwrap_or_default();
    ConnString::parse(text)
        .map(drop)
        .map_err(|e| SourceError::InvalidUrl {
            reason: format!("the ODBC connection string after `odbc:`: {}", e.0),
        })
}

/// `odbc:<connection string>`: parses it, adds the configured password, checks that the named
/// driver is installed, and proves one connection works (naming driver and DBMS for `check` and
/// the logs).
pub(crate) async fn connect(
    url: &str,
    cfg: &crate::SourceConfig,
    mut scrubber: Scrubber,
) -> Result<Connected, SourceError> {
    // The scheme is matched case-insensitively by the caller.
    let text = url.get("odbc:".len()..).unwrap_or_default();
    let mut conn = ConnString::parse(text).map_err(|e| SourceError::InvalidUrl {
        reason: format!("the ODBC connection string after `odbc:`: {}", e.0),
    })?;
    if let Some(password) = &cfg.password {
        conn.set_password(password.expose_secret());
    }
    for secret in conn.secrets() {
        scrubber.add(secret);
    }
    let names = Names {
        target: format!("odbc:{}", conn.masked()),
        user: conn
            .get_any(&["UID", "User", "UserName", "User ID"])
            .map(str::to_owned),
        dsn: conn.get("DSN").map(str::to_owned),
        driver: conn.get("Driver").map(str::to_owned),
    };
    let failed = |reason: String, hint: &'static str| names.error(reason, hint, &scrubber);

    // A driver named in the string must be one unixODBC knows (a path to a library is loaded as
    // it is): this is the most common mistake, and the driver manager's own message for it does
    // not say which drivers there are.
    if let Some(driver) = &names.driver
        && !driver.contains('/')
    {
        let installed = diag::installed_drivers();
        if !installed.iter().any(|d| d.eq_ignore_ascii_case(driver)) {
            return Err(failed(
                diag::driver_missing_reason(driver, &installed),
                diag::HINT_DRIVER,
            ));
        }
    }

    let source = OdbcSource {
        conn_string: SecretString::from(conn.to_odbc()),
        names: names.clone(),
        dbms: String::new(),
        encoding: Encoding::Wide,
        connect_timeout: cfg.connect_timeout,
        query_timeout: cfg.query_timeout,
        scrubber: scrubber.clone(),
    };
    let (tx, rx) = oneshot::channel();
    let job = source.connect_job();
    spawn("sds-odbc-connect", move || {
        let result = job.open().map(|c| {
            let info = c.info();
            c.close();
            info
        });
        let _ = tx.send(result);
    })
    .map_err(|e| {
        failed(
            format!("cannot start a thread for the ODBC driver: {e}"),
            diag::HINT_GENERIC,
        )
    })?;
    let info = match tokio::time::timeout(source.connect_timeout, rx).await {
        Ok(Ok(Ok(info))) => info,
        Ok(Ok(Err(failure))) => {
            let (reason, hint) = names.describe(&failure);
            return Err(failed(reason, hint));
        }
        Ok(Err(_)) => return Err(failed(diag::STOPPED.to_owned(), diag::HINT_GENERIC)),
        Err(_) => {
            return Err(failed(
                format!(
                    "no connection within {} s",
                    source.connect_timeout.as_secs_f32()
                ),
                diag::HINT_TIMEOUT,
            ));
        }
    };
    if !info.read_only {
        warn!(dbms = %info.dbms, driver = %info.driver, "the ODBC driver offers no read-only session; only the configured SELECTs run, with the SIS account's privileges");
    }
    Ok(Connected {
        pools: Pools::Odbc(OdbcSource {
            encoding: Encoding::for_dbms(&info.dbms),
            dbms: info.dbms.clone(),
            ..source
        }),
        target: format!("{} ({})", names.target, info.summary()),
        scrubber,
        // TLS is the driver's: its keys are in the connection string.
        tls: None,
    })
}

impl OdbcSource {
    /// Runs `sql` and hands each row to `sink` in contract order, as [`crate::Source::read`]
    /// documents. Returns the number of rows read.
    pub(crate) async fn read<F>(
        &self,
        query: QueryName,
        sql: String,
        sink: &mut F,
    ) -> Result<u64, SourceError>
    where
        F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
    {
        self.read_inner(query, sql, None, sink, &mut None).await
    }

    /// `check`'s probe of `sql`: at most `rows` rows, read and ignored ([`RowLimit::for_dbms`]).
    /// Returns the number of rows read.
    pub(crate) async fn probe(
        &self,
        query: QueryName,
        sql: String,
        rows: usize,
    ) -> Result<u64, SourceError> {
        let (sql, limit) = RowLimit::for_dbms(&self.dbms, sql, rows);
        let mut ignore = |_: &[Option<&str>]| Ok(());
        self.read_inner(query, sql, Some(limit), &mut ignore, &mut None)
            .await
    }

    /// Which contract columns `sql` returns ([`crate::Source::returned_columns`]): the query
    /// runs limited to one row, read and ignored.
    pub(crate) async fn returned_columns(
        &self,
        query: QueryName,
        sql: String,
    ) -> Result<Vec<bool>, SourceError> {
        let mut columns = None;
        let mut ignore = |_: &[Option<&str>]| Ok(());
        let (sql, limit) = RowLimit::for_dbms(&self.dbms, sql, 1);
        self.read_inner(query, sql, Some(limit), &mut ignore, &mut columns)
            .await?;
        columns.ok_or_else(|| SourceError::Query {
            query,
            backend: LABEL,
            message: diag::STOPPED.to_owned(),
        })
    }

    async fn read_inner<F>(
        &self,
        query: QueryName,
        sql: String,
        limit: Option<RowLimit>,
        sink: &mut F,
        columns: &mut Option<Vec<bool>>,
    ) -> Result<u64, SourceError>
    where
        F: FnMut(&[Option<&str>]) -> Result<(), SourceError>,
    {
        let (tx, mut rx) = mpsc::channel(2);
        let cancel = Arc::new(CancelSlot::default());
        let job = QueryJob {
            connect: self.connect_job(),
            query,
            sql,
            limit,
            encoding: self.encoding,
            query_timeout: self.query_timeout,
            scrubber: self.scrubber.clone(),
        };
        let thread_cancel = Arc::clone(&cancel);
        spawn("sds-odbc-query", move || job.run(&tx, &thread_cancel)).map_err(|e| {
            SourceError::Query {
                query,
                backend: LABEL,
                message: format!("cannot start a thread for the ODBC driver: {e}"),
            }
        })?;
        // From here on, leaving early (an error, the caller's timeout dropping this future)
        // cancels the statement; the thread then finds the channel closed and cleans up.
        let mut guard = CancelOnDrop {
            slot: cancel,
            armed: true,
        };

        let stopped = || SourceError::Query {
            query,
            backend: LABEL,
            message: diag::STOPPED.to_owned(),
        };
        match tokio::time::timeout(self.connect_timeout, rx.recv()).await {
            Ok(Some(Msg::Connected)) => {}
            Ok(Some(Msg::Failed(e))) => return Err(e),
            Ok(Some(_) | None) => return Err(stopped()),
            Err(_) => {
                return Err(self.names.error(
                    format!(
                        "no connection within {} s",
                        self.connect_timeout.as_secs_f32()
                    ),
                    diag::HINT_TIMEOUT,
                    &self.scrubber,
                ));
            }
        }
        let mut count: u64 = 0;
        loop {
            match rx.recv().await {
                Some(Msg::Block(block)) => {
                    for row in block.cells.chunks(block.width.max(1)) {
                        let values: [Option<&str>; MAX_COLUMNS] = std::array::from_fn(|i| {
                            row.get(i)
                                .copied()
                                .flatten()
                                .and_then(|(start, end)| block.text.get(start..end))
                        });
                        // An error here (a limit) returns, dropping the guard: the statement
                        // is cancelled.
                        sink(values.get(..block.width).unwrap_or(&values))?;
                        count += 1;
                    }
                }
                Some(Msg::Columns(present)) => *columns = Some(present),
                Some(Msg::Done) => break,
                Some(Msg::Failed(e)) => return Err(e),
                Some(Msg::Connected) | None => return Err(stopped()),
            }
        }
        guard.armed = false;
        Ok(count)
    }

    fn connect_job(&self) -> ConnectJob {
        ConnectJob {
            conn_string: self.conn_string.clone(),
            names: self.names.clone(),
            login_timeout: self.connect_timeout,
        }
    }
}

/// How the data source is named in messages: the connection string with its secrets masked,
/// and the parts of it that errors refer to.
#[derive(Debug, Clone)]
struct Names {
    target: String,
    user: Option<String>,
    dsn: Option<String>,
    driver: Option<String>,
}

impl Names {
    fn describe(&self, failure: &diag::Failure) -> (String, &'static str) {
        failure.describe_connect(self.dsn.as_deref(), self.driver.as_deref())
    }

    fn error(&self, reason: String, hint: &'static str, scrubber: &Scrubber) -> SourceError {
        SourceError::Connect {
            backend: LABEL,
            target: self.target.clone(),
            user: self.user.clone(),
            reason: scrubber.scrub(reason),
            hint: hint.to_owned(),
        }
    }
}

/// A read of at most `rows` rows (`check`'s probe, the look at a query's columns). Reading
/// stops there in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowLimit {
    rows: usize,
    /// Whether the driver is asked to stop there too (`SQL_ATTR_MAX_ROWS`).
    ask_driver: bool,
}

impl RowLimit {
    /// The query to run for at most `rows` rows of `sql`, and how it is limited. On the
    /// databases whose LIMIT is known to work around any SELECT (the same wrapper as the native
    /// sources), the server limits it and the driver is not asked: MariaDB's Connector/ODBC
    /// implements `SQL_ATTR_MAX_ROWS` by appending ` LIMIT n` to the statement text, which
    /// turns the wrapper into a syntax error (`... LIMIT 5 LIMIT 5`), as it does any query
    /// with a LIMIT of its own. Elsewhere (SQL Server's TOP and Oracle's ROWNUM do not take
    /// every query) the query runs as written and the driver is asked.
    fn for_dbms(dbms: &str, sql: String, rows: usize) -> (String, RowLimit) {
        let dbms = dbms.to_ascii_lowercase();
        if ["postgresql", "mariadb", "mysql", "sqlite"]
            .iter()
            .any(|d| dbms.contains(d))
        {
            // On lines of its own, so that a trailing `-- comment` ends before the wrapper.
            let wrapped = format!("SELECT * FROM (\n{sql}\n) AS q LIMIT {rows}");
            (
                wrapped,
                RowLimit {
                    rows,
                    ask_driver: false,
                },
            )
        } else {
            (
                sql,
                RowLimit {
                    rows,
                    ask_driver: true,
                },
            )
        }
    }
}

/// Starts a named thread for blocking ODBC work. A std thread rather than tokio's blocking
/// pool: a driver call that never returns must not hold up the runtime's shutdown.
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
}

/// What the query thread sends.
enum Msg {
    Connected,
    /// Which contract columns the query returns (sent once, before the first block).
    Columns(Vec<bool>),
    Block(Block),
    Done,
    Failed(SourceError),
}

/// Rows of text: `cells` holds `width` entries per row, each a byte range of `text` (None for
/// NULL or an optional column the query does not return).
struct Block {
    width: usize,
    text: String,
    cells: Vec<Option<(usize, usize)>>,
}

/// Everything needed to open a connection, movable to a thread.
struct ConnectJob {
    conn_string: SecretString,
    names: Names,
    login_timeout: Duration,
}

impl ConnectJob {
    fn open(&self) -> Result<Conn, diag::Failure> {
        let env = environment().map_err(|e| diag::Failure::from_error(&e))?;
        let options = ConnectionOptions {
            // Drivers that honour it give up on an unreachable server themselves; the caller's
            // own timeout covers the others.
            login_timeout_sec: Some(self.login_timeout.as_secs().clamp(1, u32::MAX.into()) as u32),
            packet_size: None,
        };
        let connection = env
            .connect_with_connection_string(self.conn_string.expose_secret(), options)
            .map_err(|e| diag::Failure::from_error(&e))?;
        let mut conn = Conn {
            handle: ManuallyDrop::new(connection.into_handle()),
            dbms: String::new(),
            read_only: false,
        };
        conn.dbms = conn.info_text(sys::InfoType::DbmsName);
        conn.read_only = conn.make_read_only()?;
        Ok(conn)
    }
}

/// The statement that makes a whole session read-only, for the databases that have one: their
/// drivers ignore `SQL_ATTR_ACCESS_MODE` (psqlodbc, Connector/ODBC), and these are the same
/// settings the native sources use.
fn read_only_statement(dbms: &str) -> Option<&'static str> {
    let dbms = dbms.to_ascii_lowercase();
    if dbms.contains("postgresql") {
        Some("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    } else if dbms.contains("mariadb") || dbms.contains("mysql") {
        Some("SET SESSION TRANSACTION READ ONLY")
    } else if dbms.contains("sqlite") {
        Some("PRAGMA query_only = ON")
    } else {
        None
    }
}

/// An open connection that closes without panicking: `SQLDisconnect`, and if even that fails
/// the handle is forgotten rather than freed (freeing a connected handle fails, and odbc-api
/// panics on that).
struct Conn {
    handle: ManuallyDrop<odbc_api::handles::Connection<'static>>,
    /// `SQL_DBMS_NAME`.
    dbms: String,
    /// Whether the session refuses writes (see [`Conn::make_read_only`]).
    read_only: bool,
}

/// `SQL_MODE_READ_ONLY`.
const SQL_MODE_READ_ONLY: usize = 1;

/// Driver and DBMS, from `SQLGetInfo`.
struct Info {
    driver: String,
    driver_version: String,
    dbms: String,
    dbms_version: String,
    read_only: bool,
}

impl Info {
    fn summary(&self) -> String {
        format!(
            "{} {} through the ODBC driver {} {}{}",
            self.dbms,
            self.dbms_version,
            self.driver,
            self.driver_version,
            if self.read_only {
                ", read-only session"
            } else {
                "; the driver offers no read-only session: use an account that can only read"
            }
        )
    }
}

impl Conn {
    /// Makes the session read-only: `SQL_ATTR_ACCESS_MODE` for the drivers that honour it, and
    /// the database's own session setting where there is one ([`read_only_statement`]; its
    /// failure fails the connection, as for the native sources). Returns whether the session is
    /// read-only; elsewhere only the configured SELECTs run, with the account's privileges.
    fn make_read_only(&self) -> Result<bool, diag::Failure> {
        // SAFETY: SQL_ATTR_ACCESS_MODE takes an integer passed in the pointer argument and
        // references no memory.
        let _ = unsafe {
            self.handle.set_attribute(
                sys::ConnectionAttribute::ACCESS_MODE,
                SQL_MODE_READ_ONLY as sys::Pointer,
                0,
            )
        };
        let Some(sql) = read_only_statement(&self.dbms) else {
            return Ok(self.access_mode_read_only());
        };
        let failed = |e: &odbc_api::Error| {
            let mut failure = diag::Failure::from_error(e);
            failure.message = format!(
                "cannot make the session read-only (`{sql}`): {}",
                failure.message
            );
            failure
        };
        let statement = self
            .handle
            .allocate_statement()
            .into_result(&*self.handle)
            .map_err(|e| failed(&e))?;
        // SAFETY: `allocate_statement` returned a valid, freshly allocated statement handle.
        let mut statement = unsafe { Preallocated::new(statement) };
        // A SET returns no result set; a cursor, if a driver makes one, is closed on drop.
        statement.execute(sql, ()).map_err(|e| failed(&e))?;
        Ok(true)
    }

    fn info(&self) -> Info {
        Info {
            driver: self.info_text(sys::InfoType::DriverName),
            driver_version: self.info_text(sys::InfoType::DriverVer),
            dbms: self.dbms.clone(),
            dbms_version: self.info_text(sys::InfoType::DbmsVer),
            read_only: self.read_only,
        }
    }

    /// Whether the driver reports the session as read-only (`SQL_ATTR_ACCESS_MODE`).
    fn access_mode_read_only(&self) -> bool {
        let mut mode: u32 = 0;
        // SAFETY: the attribute is an SQLUINTEGER written into `mode`, which outlives the call.
        let ret = unsafe {
            sys::SQLGetConnectAttr(
                self.handle.as_sys(),
                sys::ConnectionAttribute::ACCESS_MODE,
                (&raw mut mode).cast(),
                0,
                std::ptr::null_mut(),
            )
        };
        succeeded(ret) && mode as usize == SQL_MODE_READ_ONLY
    }

    /// A text `SQLGetInfo` value, or `?` when the driver does not give it.
    fn info_text(&self, info: sys::InfoType) -> String {
        let mut buf = [0u8; 256];
        let mut len: i16 = 0;
        // SAFETY: the driver writes at most `buf.len()` bytes (NUL included) into `buf` and the
        // length into `len`; both outlive the call.
        let ret = unsafe {
            sys::SQLGetInfo(
                self.handle.as_sys(),
                info,
                buf.as_mut_ptr().cast(),
                buf.len() as i16,
                &mut len,
            )
        };
        if !succeeded(ret) {
            return "?".to_owned();
        }
        let end = usize::try_from(len)
            .unwrap_or(0)
            .min(buf.len() - 1)
            .min(buf.iter().position(|&b| b == 0).unwrap_or(buf.len()));
        let text = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
        if text.is_empty() {
            "?".to_owned()
        } else {
            text
        }
    }

    fn close(self) {
        // Drop does it.
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.handle.disconnect().is_err() {
            debug!("the ODBC connection did not disconnect cleanly; its handle is left as is");
            return;
        }
        // SAFETY: `handle` is not used after this; dropping it frees a disconnected handle.
        unsafe { ManuallyDrop::drop(&mut self.handle) };
    }
}

fn succeeded(ret: SqlReturn) -> bool {
    ret == SqlReturn::SUCCESS || ret == SqlReturn::SUCCESS_WITH_INFO
}

/// The running statement's handle, for `SQLCancel` from the async side. The query thread sets
/// it after allocating the statement and clears it before the statement can be freed; cancelling
/// holds the lock, so it never touches a freed handle.
#[derive(Default)]
struct CancelSlot {
    stmt: Mutex<Option<RawStmt>>,
}

struct RawStmt(HStmt);

// SAFETY: ODBC allows `SQLCancel` on a statement from another thread while it executes (that is
// what it is for); the handle is only used under the slot's lock while it is valid.
unsafe impl Send for RawStmt {}

impl CancelSlot {
    fn set(&self, stmt: HStmt) {
        *self.stmt.lock().unwrap_or_else(PoisonError::into_inner) = Some(RawStmt(stmt));
    }

    fn clear(&self) {
        *self.stmt.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn cancel(&self) {
        let slot = self.stmt.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(RawStmt(stmt)) = &*slot {
            // SAFETY: the handle is valid while it is in the slot (see the type's doc).
            let ret = unsafe { sys::SQLCancel(*stmt) };
            debug!(
                cancelled = succeeded(ret),
                "cancelled the running ODBC statement"
            );
        }
    }
}

/// Clears the slot when the statement's scope ends, however it ends.
struct ClearOnDrop<'a>(&'a CancelSlot);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// Cancels the statement if the reading future is dropped before the query finished.
struct CancelOnDrop {
    slot: Arc<CancelSlot>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.slot.cancel();
        }
    }
}

/// One query, run on its own thread.
struct QueryJob {
    connect: ConnectJob,
    query: QueryName,
    sql: String,
    limit: Option<RowLimit>,
    encoding: Encoding,
    query_timeout: Duration,
    scrubber: Scrubber,
}

/// Why the query thread stopped early.
enum Stop {
    Failed(SourceError),
    /// The reader is gone (it failed, timed out or was dropped): nothing to report.
    Gone,
}

/// A contract column as the query returns it.
struct Slot {
    /// Position in the columnar buffer.
    buffer_index: usize,
    column: String,
    type_name: String,
    kind: Kind,
    /// Characters the buffer holds for it (for the truncation message).
    chars: usize,
}

impl QueryJob {
    fn run(self, tx: &mpsc::Sender<Msg>, cancel: &CancelSlot) {
        let outcome = self.connect_and_run(tx, cancel);
        let last = match outcome {
            Ok(()) => Msg::Done,
            Err(Stop::Failed(e)) => Msg::Failed(e),
            Err(Stop::Gone) => return,
        };
        let _ = tx.blocking_send(last);
    }

    fn connect_and_run(&self, tx: &mpsc::Sender<Msg>, cancel: &CancelSlot) -> Result<(), Stop> {
        let conn = self.connect.open().map_err(|failure| {
            let names = &self.connect.names;
            let (reason, hint) = names.describe(&failure);
            Stop::Failed(names.error(reason, hint, &self.scrubber))
        })?;
        tx.blocking_send(Msg::Connected).map_err(|_| Stop::Gone)?;

        let statement = conn
            .handle
            .allocate_statement()
            .into_result(&*conn.handle)
            .map_err(|e| self.failed(&e))?;
        // SAFETY: `allocate_statement` returned a valid, freshly allocated statement handle.
        let mut statement = ManuallyDrop::new(unsafe { Preallocated::new(statement) });
        let outcome = {
            cancel.set(statement.as_stmt_ref().as_sys());
            let _clear = ClearOnDrop(cancel);
            self.execute(&mut statement, tx)
        };
        if outcome.is_ok() {
            // A statement that finished normally is freed normally; after a failure it is left to
            // SQLDisconnect (see the module doc).
            drop(ManuallyDrop::into_inner(statement));
        }
        drop(conn);
        outcome
    }

    fn execute(
        &self,
        statement: &mut Preallocated<odbc_api::handles::StatementImpl<'_>>,
        tx: &mpsc::Sender<Msg>,
    ) -> Result<(), Stop> {
        let secs = self.query_timeout.as_secs().max(1);
        if let Err(e) = statement.set_query_timeout_sec(secs as usize) {
            debug!(error = %self.scrubber.scrub(diag::message(&e)), "the ODBC driver does not take a query timeout");
        }
        if let Some(limit) = self.limit.filter(|l| l.ask_driver) {
            // SAFETY: SQL_ATTR_MAX_ROWS takes an integer passed in the pointer argument.
            let ret = unsafe {
                sys::SQLSetStmtAttr(
                    statement.as_stmt_ref().as_sys(),
                    sys::StatementAttribute::MaxRows,
                    limit.rows as sys::Pointer,
                    0,
                )
            };
            if !succeeded(ret) {
                debug!("the ODBC driver does not take a row limit; sds-sync stops reading instead");
            }
        }
        let Some(mut cursor) = statement
            .execute(&self.sql, ())
            .map_err(|e| self.failed(&e))?
        else {
            return Err(Stop::Failed(SourceError::Query {
                query: self.query,
                backend: LABEL,
                message: "the statement returned no result set; a query must be a SELECT".into(),
            }));
        };

        let slots = self.plan(&mut cursor)?;
        tx.blocking_send(Msg::Columns(slots.iter().map(Option::is_some).collect()))
            .map_err(|_| Stop::Gone)?;
        let descs: Vec<(u16, odbc_api::buffers::BufferDesc, usize)> = slots
            .iter()
            .flatten()
            .map(|(column_number, slot, desc)| (*column_number, *desc, slot.chars))
            .collect();
        let row_bytes: usize = descs
            .iter()
            .map(|(_, d, _)| d.bytes_per_row())
            .sum::<usize>()
            .max(1);
        let mut rows = (BUFFER_BYTES / row_bytes).clamp(1, MAX_BLOCK_ROWS);
        if let Some(limit) = self.limit {
            rows = rows.min(limit.rows.max(1));
        }
        let mut columns: Vec<(u16, BoxColumnBuffer)> = Vec::with_capacity(descs.len());
        for (column_number, desc, _) in &descs {
            let buffer = desc.try_column_buffer(rows).map_err(|e| {
                Stop::Failed(SourceError::Query {
                    query: self.query,
                    backend: LABEL,
                    message: format!("cannot allocate the fetch buffer: {e:?}"),
                })
            })?;
            columns.push((*column_number, buffer));
        }
        let plan: Vec<Option<Slot>> = slots.into_iter().map(|s| s.map(|(_, s, _)| s)).collect();
        let mut buffer = ColumnarBuffer::new(columns);
        let block_cursor = cursor
            .bind_buffer(&mut buffer)
            .map_err(|e| self.failed(&e))?;
        // Dropped (columns unbound, cursor closed) only after a clean finish.
        let mut block_cursor = ManuallyDrop::new(block_cursor);

        let mut read: usize = 0;
        let mut scratch = String::new();
        while let Some(fetched) = block_cursor.fetch().map_err(|e| self.failed(&e))? {
            let block = self.render(fetched, &plan, read, &mut scratch)?;
            read += block.cells.len() / block.width.max(1);
            tx.blocking_send(Msg::Block(block))
                .map_err(|_| Stop::Gone)?;
            if self.limit.is_some_and(|limit| read >= limit.rows) {
                break;
            }
        }
        drop(ManuallyDrop::into_inner(block_cursor));
        Ok(())
    }

    /// Maps the result columns onto the contract and picks how each is bound: `None` for an
    /// optional column the query does not return.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        cursor: &mut impl ResultSetMetadata,
    ) -> Result<Vec<Option<(u16, Slot, odbc_api::buffers::BufferDesc)>>, Stop> {
        let count = cursor.num_result_cols().map_err(|e| self.failed(&e))?;
        let mut described = Vec::new();
        for number in 1..=u16::try_from(count).unwrap_or(0) {
            let mut description = ColumnDescription::default();
            cursor
                .describe_col(number, &mut description)
                .map_err(|e| self.failed(&e))?;
            let name = description
                .name_to_string()
                .unwrap_or_else(|_| String::from_utf8_lossy(&description.name).into_owned());
            described.push((number, name, description.data_type));
        }
        let names: Vec<&str> = described.iter().map(|(_, n, _)| n.as_str()).collect();
        let positions = plan::match_columns(self.query, &names).map_err(Stop::Failed)?;

        let mut slots = Vec::with_capacity(positions.len());
        let mut buffer_index = 0;
        for position in positions {
            let Some(position) = position else {
                slots.push(None);
                continue;
            };
            let (number, name, data_type) = &described[position];
            let type_name = type_name(cursor, *number);
            let unsigned = cursor.column_is_unsigned(*number).unwrap_or(false);
            let shown_type = if type_name.is_empty() {
                column::sql_type_label(data_type)
            } else {
                type_name.clone()
            };
            let Some(kind) = column::kind_of(data_type, &type_name, unsigned) else {
                return Err(Stop::Failed(SourceError::UnsupportedType {
                    query: self.query,
                    backend: LABEL,
                    column: name.clone(),
                    type_name: shown_type,
                    cast: column::cast_hint(name),
                }));
            };
            let desc = column::buffer_desc(kind, data_type, self.encoding);
            let chars = match desc {
                odbc_api::buffers::BufferDesc::Text { max_str_len } => max_str_len / 4,
                odbc_api::buffers::BufferDesc::WText { max_str_len } => max_str_len / 2,
                odbc_api::buffers::BufferDesc::Binary { max_bytes } => max_bytes,
                _ => 0,
            };
            slots.push(Some((
                *number,
                Slot {
                    buffer_index,
                    column: name.clone(),
                    type_name: shown_type,
                    kind,
                    chars,
                },
                desc,
            )));
            buffer_index += 1;
        }
        Ok(slots)
    }

    /// The text of one fetched block. `before` rows were read before it (for row numbers).
    fn render(
        &self,
        fetched: &ColumnarBuffer<BoxColumnBuffer>,
        plan: &[Option<Slot>],
        before: usize,
        scratch: &mut String,
    ) -> Result<Block, Stop> {
        let rows = fetched.num_rows();
        let views: Vec<Option<(&Slot, View<'_>)>> = plan
            .iter()
            .map(|slot| {
                slot.as_ref()
                    .map(|s| (s, View::of(fetched.column(s.buffer_index))))
            })
            .collect();
        for (slot, view) in views.iter().flatten() {
            if matches!(view, View::Unknown) {
                return Err(self.value_error(
                    slot,
                    before + 1,
                    "internal error: the column is bound in a form sds-sync does not read".into(),
                ));
            }
            if let Some(row) = view.truncated_row() {
                return Err(self.value_error(
                    slot,
                    before + row + 1,
                    format!(
                        "it is longer than the {} characters sds-sync makes room for in this \
                         column (its size as the driver reports it, at most {})",
                        slot.chars,
                        column::TEXT_CAP_CHARS
                    ),
                ));
            }
        }
        let width = plan.len();
        let mut block = Block {
            width,
            text: String::with_capacity(rows * width * 12),
            cells: Vec::with_capacity(rows * width),
        };
        for row in 0..rows {
            for entry in &views {
                let Some((slot, view)) = entry else {
                    block.cells.push(None);
                    continue;
                };
                let start = block.text.len();
                let raw = view.get(row);
                match column::render(slot.kind, raw, scratch, &mut block.text) {
                    Ok(true) => block.cells.push(Some((start, block.text.len()))),
                    Ok(false) => block.cells.push(None),
                    Err(message) => {
                        return Err(self.value_error(slot, before + row + 1, message));
                    }
                }
            }
        }
        Ok(block)
    }

    fn value_error(&self, slot: &Slot, row: usize, message: String) -> Stop {
        Stop::Failed(SourceError::Value {
            query: self.query,
            column: slot.column.clone(),
            type_name: slot.type_name.clone(),
            row: row as u64,
            message: self.scrubber.scrub(message),
            cast: column::cast_hint(&slot.column),
        })
    }

    fn failed(&self, e: &odbc_api::Error) -> Stop {
        let failure = diag::Failure::from_error(e);
        Stop::Failed(if failure.is_timeout() {
            SourceError::Timeout {
                query: self.query,
                secs: self.query_timeout.as_secs(),
            }
        } else {
            SourceError::Query {
                query: self.query,
                backend: LABEL,
                message: self.scrubber.scrub(failure.to_string()),
            }
        })
    }
}

/// The driver's name for a column's type (`SQL_DESC_TYPE_NAME`: `int4`, `nvarchar`, `bool`),
/// empty when it gives none.
fn type_name(cursor: &mut impl AsStatementRef, column: u16) -> String {
    let mut buf = [0u8; 128];
    let mut len: i16 = 0;
    // SAFETY: the driver writes at most `buf.len()` bytes into `buf` and the length into `len`;
    // both outlive the call, and the statement handle is valid while `cursor` is borrowed.
    let ret = unsafe {
        sys::SQLColAttribute(
            cursor.as_stmt_ref().as_sys(),
            column,
            sys::Desc::TypeName,
            buf.as_mut_ptr().cast(),
            buf.len() as i16,
            &mut len,
            std::ptr::null_mut(),
        )
    };
    if !succeeded(ret) {
        return String::new();
    }
    let end = usize::try_from(len)
        .unwrap_or(0)
        .min(buf.len() - 1)
        .min(buf.iter().position(|&b| b == 0).unwrap_or(buf.len()));
    String::from_utf8_lossy(&buf[..end]).trim().to_owned()
}

/// One bound column of a fetched block, typed once per block.
enum View<'a> {
    Text(odbc_api::buffers::TextColumnSlice<'a, u8>),
    WText(odbc_api::buffers::TextColumnSlice<'a, u16>),
    Binary(odbc_api::buffers::BinColumnSlice<'a>),
    I64(odbc_api::buffers::NullableSlice<'a, i64>),
    F32(odbc_api::buffers::NullableSlice<'a, f32>),
    F64(odbc_api::buffers::NullableSlice<'a, f64>),
    Bit(odbc_api::buffers::NullableSlice<'a, Bit>),
    Date(odbc_api::buffers::NullableSlice<'a, sys::Date>),
    Timestamp(odbc_api::buffers::NullableSlice<'a, sys::Timestamp>),
    /// Bound as none of the above: an internal error, reported per value.
    Unknown,
}

impl<'a> View<'a> {
    fn of(slice: AnyColumnBufferSlice<'a>) -> View<'a> {
        if let Some(v) = slice.as_text() {
            View::Text(v)
        } else if let Some(v) = slice.as_wide_text() {
            View::WText(v)
        } else if let Some(v) = slice.as_binary() {
            View::Binary(v)
        } else if let Some(v) = slice.as_nullable_slice::<i64>() {
            View::I64(v)
        } else if let Some(v) = slice.as_nullable_slice::<f32>() {
            View::F32(v)
        } else if let Some(v) = slice.as_nullable_slice::<f64>() {
            View::F64(v)
        } else if let Some(v) = slice.as_nullable_slice::<Bit>() {
            View::Bit(v)
        } else if let Some(v) = slice.as_nullable_slice::<sys::Date>() {
            View::Date(v)
        } else if let Some(v) = slice.as_nullable_slice::<sys::Timestamp>() {
            View::Timestamp(v)
        } else {
            View::Unknown
        }
    }

    fn get(&self, row: usize) -> Raw<'a> {
        let value = match self {
            View::Text(v) => v.get(row).map(Raw::Text),
            View::WText(v) => v.get(row).map(Raw::WText),
            View::Binary(v) => v.get(row).map(Raw::Bytes),
            View::I64(v) => v.get(row).map(|x| Raw::I64(*x)),
            View::F32(v) => v.get(row).map(|x| Raw::F32(*x)),
            View::F64(v) => v.get(row).map(|x| Raw::F64(*x)),
            View::Bit(v) => v.get(row).map(|x| Raw::Bit(x.as_bool())),
            View::Date(v) => v.get(row).map(|x| Raw::Date(*x)),
            View::Timestamp(v) => v.get(row).map(|x| Raw::Timestamp(*x)),
            // Refused before the first row (see `render`).
            View::Unknown => None,
        };
        value.unwrap_or(Raw::Null)
    }

    /// The first row (0-based) of a text or binary column whose value did not fit its buffer.
    fn truncated_row(&self) -> Option<usize> {
        match self {
            View::Text(v) => v.has_truncated_values().map(|_| {
                (0..v.len())
                    .find(|&r| v.content_length_at(r) == Some(v.max_len()))
                    .unwrap_or(0)
            }),
            View::WText(v) => v.has_truncated_values().map(|_| {
                (0..v.len())
                    .find(|&r| v.content_length_at(r) == Some(v.max_len()))
                    .unwrap_or(0)
            }),
            View::Binary(v) => v.has_truncated_values().map(|_| 0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_limited_by_the_server_where_the_wrapper_is_known_to_work() {
        let sql = "SELECT a FROM t -- note".to_owned();
        let server = |rows| RowLimit {
            rows,
            ask_driver: false,
        };
        assert_eq!(
            RowLimit::for_dbms("PostgreSQL", sql.clone(), 5),
            (
                "SELECT * FROM (\nSELECT a FROM t -- note\n) AS q LIMIT 5".to_owned(),
                server(5)
            )
        );
        // MariaDB's driver would append its own LIMIT for SQL_ATTR_MAX_ROWS: not asked.
        for dbms in ["MariaDB", "MySQL", "SQLite"] {
            let (text, limit) = RowLimit::for_dbms(dbms, sql.clone(), 1);
            assert!(text.ends_with(") AS q LIMIT 1"), "{dbms}: {text}");
            assert_eq!(limit, server(1), "{dbms}");
        }
        // T-SQL and Oracle take no LIMIT and not every query in a derived table: the driver is.
        for dbms in ["Microsoft SQL Server", "Oracle"] {
            assert_eq!(
                RowLimit::for_dbms(dbms, sql.clone(), 5),
                (
                    sql.clone(),
                    RowLimit {
                        rows: 5,
                        ask_driver: true
                    }
                ),
                "{dbms}"
            );
        }
    }

    #[test]
    fn sessions_are_made_read_only_the_way_each_database_offers() {
        assert_eq!(
            read_only_statement("PostgreSQL"),
            Some("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        );
        assert_eq!(
            read_only_statement("MariaDB"),
            Some("SET SESSION TRANSACTION READ ONLY")
        );
        assert_eq!(
            read_only_statement("SQLite"),
            Some("PRAGMA query_only = ON")
        );
        assert_eq!(read_only_statement("Microsoft SQL Server"), None);
    }
}
