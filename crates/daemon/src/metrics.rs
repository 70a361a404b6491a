//! Prometheus metrics and the health endpoint: `GET /metrics` (text exposition format) and
//! `GET /healthz`, served by axum on `[metrics] listen`, plus the helpers that record what a run
//! and a delivery did.
//!
//! The `metrics` facade has one process-global recorder. [`install`] puts the Prometheus recorder
//! there at most once (a `OnceLock`) and hands out clones of its handle, so the daemon, a config
//! reload and every test can call it without conflict. Until it is installed, the `record_*`
//! helpers are no-ops: with `[metrics]` off, nothing is collected.
//!
//! The endpoints have no authentication: bind them to localhost or a private network, and put
//! nothing secret in a label or a health reason (a failed run's reason is its kind, never the
//! SIS host, user or database).
//!
//! Nobody who can reach the port may starve the daemon: at most [`MAX_CONNECTIONS`] connections
//! are kept (a new one closes the oldest), a client has [`HEADER_READ_TIMEOUT`] to send its
//! request, each connection serves one request (no keep-alive) and lives at most
//! [`CONNECTION_DEADLINE`]. 1,100 idle connections once took every descriptor of the process and
//! made its runs fail with "Too many open files".

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sds_store::RunOutcome;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub const RUNS_TOTAL: &str = "sds_sync_runs_total";
pub const LAST_SUCCESS_TIMESTAMP: &str = "sds_sync_last_success_timestamp_seconds";
pub const FILE_ROWS: &str = "sds_sync_file_rows";
pub const DELIVERIES_TOTAL: &str = "sds_sync_deliveries_total";
pub const OUTBOX_PENDING: &str = "sds_sync_outbox_pending";
pub const RUN_DURATION: &str = "sds_sync_run_duration_seconds";

/// Histogram buckets for run duration, in seconds: exports take from seconds (demo) to tens of
/// minutes (a large district over a slow link).
const RUN_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// The recorder keeps histogram samples until upkeep drains them; scrapes also drain, but a
/// daemon nobody scrapes must not grow, so `serve` runs upkeep this often.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A health reason is shown to anyone who can reach `/healthz`; keep it short.
const MAX_REASON_CHARS: usize = 160;

/// Connections kept at once. Prometheus and a health checker need a handful; past this the
/// oldest is closed, so a flood of idle connections costs at most this many descriptors and a
/// new request is still answered.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request headers after connecting.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of a connection, request and response included (a client that does not read
/// its response cannot hold one longer).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// After shutdown or eviction, how long a connection may take to finish its response.
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed accept (e.g. out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Installing the recorder failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Another recorder was already installed, or the builder was rejected.
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Install(String),
}

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process) and
/// returns a handle that renders the current values. Later calls return the same handle.
///
/// # Errors
/// [`MetricsError::Install`] if a different recorder was installed first; the outcome of the first
/// call is remembered, so every call agrees.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(RUN_DURATION.to_string()),
                    RUN_DURATION_BUCKETS,
                )
                .and_then(|b| b.install_recorder())
                .map_err(|e| e.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
        .map_err(MetricsError::Install)
}

fn describe() {
    metrics::describe_counter!(RUNS_TOTAL, "Export runs, by outcome.");
    metrics::describe_gauge!(
        LAST_SUCCESS_TIMESTAMP,
        metrics::Unit::Seconds,
        "Unix time at which the last successful run (published or unchanged) ended."
    );
    metrics::describe_gauge!(
        FILE_ROWS,
        "Data rows in each file of the last built export."
    );
    metrics::describe_counter!(
        DELIVERIES_TOTAL,
        "Delivery attempts, by destination and outcome."
    );
    metrics::describe_gauge!(OUTBOX_PENDING, "Delivery jobs waiting in the outbox.");
    metrics::describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "Wall time of export runs, all outcomes."
    );
}

/// The `outcome` label of `sds_sync_runs_total` for a run that ended with `outcome`. The label
/// values are public (dashboards and alerts select on them): `published`, `unchanged`, `held`,
/// `failed`, and `skipped` for a tick that came while a run was going ([`record_skipped_tick`]).
/// A dry run counts as `unchanged` (it publishes nothing); a run recorded `running` never ended
/// with an outcome, so it failed.
fn run_label(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Published => "published",
        RunOutcome::Unchanged | RunOutcome::DryRun => "unchanged",
        RunOutcome::Held => "held",
        RunOutcome::Failed | RunOutcome::Running => "failed",
    }
}

/// Whether the run counts as a success for the last-success time. `Held` does not: not a
/// failure (health stays 200: a restart would not help), but the last-success time goes stale so
/// a staleness alert can catch a snapshot held for days.
fn is_success(outcome: RunOutcome) -> bool {
    matches!(
        outcome,
        RunOutcome::Published | RunOutcome::Unchanged | RunOutcome::DryRun
    )
}

/// How one delivery attempt ended: the `outcome` label of `sds_sync_deliveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every file is at the destination under its final name.
    Delivered,
    /// A retryable error; the job is rescheduled.
    Retry,
    /// A permanent error or the last allowed attempt failed; the job is marked failed.
    Failed,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry => "retry",
            DeliveryOutcome::Failed => "failed",
        }
    }
}

/// Counts a scheduled tick skipped because the previous run was still going (`outcome="skipped"`).
/// It did no work, so no duration is observed.
pub fn record_skipped_tick() {
    metrics::counter!(RUNS_TOTAL, "outcome" => "skipped").increment(1);
}

/// Records a finished run: counts it by outcome, observes its duration and, on success, sets the
/// last-success time to now.
pub fn record_run(outcome: RunOutcome, duration: Duration) {
    metrics::counter!(RUNS_TOTAL, "outcome" => run_label(outcome)).increment(1);
    metrics::histogram!(RUN_DURATION).record(duration.as_secs_f64());
    if is_success(outcome) {
        // A clock before 1970 is a broken machine, not a reason to fail a run: record 0.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        metrics::gauge!(LAST_SUCCESS_TIMESTAMP).set(now.as_secs_f64());
    }
}

/// Sets the row count of one output file (e.g. `"School.csv"`) from the last built export.
pub fn record_file_rows(file: &str, rows: u64) {
    // f64 holds integers exactly up to 2^53, far beyond any SIS export.
    metrics::gauge!(FILE_ROWS, "file" => file.to_string()).set(rows as f64);
}

/// Counts one delivery attempt to `destination` (its configured name) by outcome.
pub fn record_delivery(destination: &str, outcome: DeliveryOutcome) {
    metrics::counter!(
        DELIVERIES_TOTAL,
        "destination" => destination.to_string(),
        "outcome" => outcome.as_str()
    )
    .increment(1);
}

/// Sets the number of delivery jobs waiting in the outbox.
pub fn set_outbox_pending(pending: u64) {
    metrics::gauge!(OUTBOX_PENDING).set(pending as f64);
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LastRun {
    None,
    Ok,
    Failed(String),
}

#[derive(Debug)]
struct HealthInner {
    scheduler_alive: AtomicBool,
    last_run: Mutex<LastRun>,
}

/// What `/healthz` reports: healthy while the scheduler is alive and the last run did not fail.
/// Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Not healthy yet: the scheduler has not started. No run so far counts as "did not fail".
    pub fn new() -> Health {
        Health {
            inner: Arc::new(HealthInner {
                scheduler_alive: AtomicBool::new(false),
                last_run: Mutex::new(LastRun::None),
            }),
        }
    }

    pub fn set_scheduler_alive(&self, alive: bool) {
        self.inner.scheduler_alive.store(alive, Ordering::SeqCst);
    }

    /// Marks the scheduler alive until the returned guard is dropped. Hold it in the scheduler
    /// task: if the task ends, returns early or panics, health turns 503 without anyone having
    /// to remember to say so.
    #[must_use = "the scheduler counts as alive only while the guard lives"]
    pub fn scheduler_alive_guard(&self) -> SchedulerAliveGuard {
        self.set_scheduler_alive(true);
        SchedulerAliveGuard {
            health: self.clone(),
        }
    }

    /// Records the outcome of a finished run (a skipped tick is not a run and is not recorded).
    /// `failure_reason` is used only for a failed run: a short, secret-free reason such as an
    /// error kind ("source unreachable", "guard tripped"); it is served unauthenticated.
    pub fn record_run(&self, outcome: RunOutcome, failure_reason: &str) {
        let new = match outcome {
            RunOutcome::Failed | RunOutcome::Running => {
                LastRun::Failed(short_reason(failure_reason))
            }
            RunOutcome::Published
            | RunOutcome::Unchanged
            | RunOutcome::Held
            | RunOutcome::DryRun => LastRun::Ok,
        };
        *self.lock_last_run() = new;
    }

    /// `Ok(())` when healthy, otherwise the reason served with the 503.
    pub fn check(&self) -> Result<(), String> {
        if !self.inner.scheduler_alive.load(Ordering::SeqCst) {
            return Err("scheduler not running".to_string());
        }
        match &*self.lock_last_run() {
            LastRun::None | LastRun::Ok => Ok(()),
            LastRun::Failed(reason) => Err(format!("last run failed: {reason}")),
        }
    }

    fn lock_last_run(&self) -> std::sync::MutexGuard<'_, LastRun> {
        // The value is replaced whole under the lock, so a panic elsewhere cannot leave it
        // half-written: a poisoned lock still holds a valid state.
        self.inner
            .last_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Clears the scheduler-alive flag when dropped; see [`Health::scheduler_alive_guard`].
#[derive(Debug)]
pub struct SchedulerAliveGuard {
    health: Health,
}

impl Drop for SchedulerAliveGuard {
    fn drop(&mut self) {
        self.health.set_scheduler_alive(false);
    }
}

/// One line, control characters replaced, at most [`MAX_REASON_CHARS`] characters.
fn short_reason(reason: &str) -> String {
    let mut out: String = reason
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    if reason.trim().chars().count() > MAX_REASON_CHARS {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("unknown error");
    }
    out
}

#[derive(Clone)]
struct AppState {
    handle: PrometheusHandle,
    health: Health,
}

/// Binds `[metrics] listen`. Separate from [`serve_on`] so tests (and a caller that wants to log
/// the bound address) can bind port 0 and learn the port.
///
/// # Errors
/// The bind error, prefixed with `metrics.listen = <addr>`.
pub async fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(listen).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("metrics.listen = {listen}: cannot listen: {e}"),
        )
    })
}

/// Serves `/metrics` and `/healthz` on a listener from [`bind`] until `cancel` fires, then stops
/// accepting, lets in-flight responses finish (a few seconds at most), and returns `Ok(())`.
pub async fn serve_on(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Health,
    cancel: CancellationToken,
) -> Result<(), io::Error> {
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(AppState {
            handle: handle.clone(),
            health,
        });

    // Upkeep stops with the server, whether the server ended by cancel or by error.
    let upkeep_stop = cancel.child_token();
    let upkeep = tokio::spawn(upkeep_loop(handle, upkeep_stop.clone()));
    tracing::info!(listen = %addr, max_connections = MAX_CONNECTIONS, "metrics endpoint listening");

    let open = Connections::default();
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        // Reap finished connection tasks so the set does not grow with every request.
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: not fatal.
                tracing::debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (id, stop) = open.admit(&cancel);
        let conn = serve_connection(stream, app.clone(), stop);
        let open = open.clone();
        tasks.spawn(async move {
            conn.await;
            open.remove(id);
        });
    }
    drop(listener);
    // The cancel reached every connection through its child token: let them finish.
    let finish = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(FINISH_GRACE + Duration::from_secs(1), finish)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    upkeep_stop.cancel();
    // The upkeep task only sleeps and drains; a join error (panic) is not worth failing for.
    let _ = upkeep.await;
    Ok(())
}

/// One HTTP/1.1 connection: one request, a deadline for its headers and for all of it; `stop`
/// (eviction or shutdown) lets the response in flight finish, briefly.
async fn serve_connection(stream: TcpStream, app: Router, stop: CancellationToken) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let deadline = tokio::time::sleep(CONNECTION_DEADLINE);
    tokio::pin!(deadline);
    tokio::select! {
        _ = &mut conn => return,
        () = &mut deadline => return,
        () = stop.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(FINISH_GRACE, conn).await;
}

/// The open connections, oldest first, each with the token that closes it.
#[derive(Clone, Default)]
struct Connections {
    inner: Arc<Mutex<VecDeque<(u64, CancellationToken)>>>,
    next: Arc<AtomicU64>,
}

impl Connections {
    /// Registers a new connection; at [`MAX_CONNECTIONS`] the oldest is told to close first.
    fn admit(&self, parent: &CancellationToken) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let token = parent.child_token();
        let mut open = self.lock();
        while open.len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = open.pop_front() {
                oldest.cancel();
            }
        }
        open.push_back((id, token.clone()));
        (id, token)
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, CancellationToken)>> {
        // Entries are pushed and removed whole: a poisoned lock still holds a valid list.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn upkeep_loop(handle: PrometheusHandle, stop: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
}

async fn healthz_handler(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.check() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A minimal HTTP/1.1 GET over a raw socket: (status code, body).
    async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to metrics server");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
            .await
            .expect("response within 10 s")
            .expect("read response");
        let text = String::from_utf8(raw).expect("UTF-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code in the status line");
        (status, body.to_string())
    }

    async fn start() -> (
        SocketAddr,
        Health,
        CancellationToken,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let handle = install().expect("recorder installs");
        let health = Health::new();
        let cancel = CancellationToken::new();
        let listener = bind("127.0.0.1:0".parse().expect("socket address"))
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("bound address");
        let server = tokio::spawn(serve_on(listener, handle, health.clone(), cancel.clone()));
        (addr, health, cancel, server)
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_recorded_values_in_text_format() {
        let (addr, _health, cancel, server) = start().await;
        // Labels unique to this test: the recorder is global and other tests record too.
        record_delivery("metrics-test-dest", DeliveryOutcome::Delivered);
        record_delivery("metrics-test-dest", DeliveryOutcome::Delivered);
        record_delivery("metrics-test-dest", DeliveryOutcome::Retry);
        record_file_rows("MetricsTest.csv", 1234);
        record_run(RunOutcome::Published, Duration::from_millis(2500));
        set_outbox_pending(3);

        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200);
        for want in [
            "sds_sync_deliveries_total{destination=\"metrics-test-dest\",outcome=\"delivered\"} 2",
            "sds_sync_deliveries_total{destination=\"metrics-test-dest\",outcome=\"retry\"} 1",
            "sds_sync_file_rows{file=\"MetricsTest.csv\"} 1234",
            "sds_sync_runs_total{outcome=\"published\"}",
            "sds_sync_last_success_timestamp_seconds ",
            "sds_sync_outbox_pending",
            "# TYPE sds_sync_run_duration_seconds histogram",
            "sds_sync_run_duration_seconds_bucket{le=\"5\"}",
            "# HELP sds_sync_runs_total Export runs, by outcome.",
        ] {
            assert!(body.contains(want), "/metrics lacks {want:?}:\n{body}");
        }

        let (status, _) = http_get(addr, "/nope").await;
        assert_eq!(status, 404);

        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops promptly on cancel")
            .expect("server task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn healthz_flips_between_200_and_503() {
        let (addr, health, cancel, server) = start().await;

        let (status, body) = http_get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (503, "scheduler not running"));

        let guard = health.scheduler_alive_guard();
        let (status, body) = http_get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "alive, no run yet");

        health.record_run(RunOutcome::Failed, "source unreachable\nsecond line");
        let (status, body) = http_get(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert_eq!(body, "last run failed: source unreachable second line");

        health.record_run(RunOutcome::Held, "");
        assert!(
            health.check().is_ok(),
            "a held snapshot is not a failed run"
        );
        health.record_run(RunOutcome::Failed, "x");
        health.record_run(RunOutcome::Unchanged, "");
        let (status, body) = http_get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        drop(guard);
        let (status, body) = http_get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (503, "scheduler not running"));

        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops promptly on cancel")
            .expect("server task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }

    /// True when the server closed `stream` (EOF) within `wait`.
    async fn eof(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, stream.read(&mut byte)).await,
            Ok(Ok(0))
        )
    }

    /// Idle connections past the cap are closed oldest first, and a request still gets its
    /// answer; an idle connection is closed by the server, not kept for ever.
    #[tokio::test]
    async fn idle_connections_are_capped_and_a_new_request_is_answered() {
        let (addr, health, cancel, server) = start().await;
        let _alive = health.scheduler_alive_guard();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 20 {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let (status, body) = http_get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        // The oldest connections were closed by the server (EOF); the newest is still open.
        for (i, stream) in idle.iter_mut().take(21).enumerate() {
            assert!(
                eof(stream, Duration::from_secs(5)).await,
                "idle connection {i} is still open"
            );
        }
        let newest = idle.last_mut().expect("connections");
        assert!(!eof(newest, Duration::from_millis(200)).await);
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops promptly on cancel")
            .expect("server task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn bind_error_names_the_config_key() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = taken.local_addr().expect("bound address");
        let err = bind(addr).await.expect_err("address in use");
        assert!(
            err.to_string()
                .starts_with(&format!("metrics.listen = {addr}")),
            "{err}"
        );
    }

    #[test]
    fn install_twice_returns_the_same_recorder() {
        let a = install().expect("first install");
        let b = install().expect("second install");
        record_file_rows("InstallTwice.csv", 7);
        assert!(a.render().contains("InstallTwice.csv"));
        assert!(b.render().contains("InstallTwice.csv"));
    }

    #[test]
    fn health_reasons_are_one_short_line() {
        assert_eq!(short_reason(""), "unknown error");
        assert_eq!(short_reason(" a\r\nb "), "a  b");
        let long = "x".repeat(500);
        let r = short_reason(&long);
        assert_eq!(r.chars().count(), MAX_REASON_CHARS + 1);
        assert!(r.ends_with('…'));
    }
}
