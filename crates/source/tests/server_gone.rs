//! A PostgreSQL server that goes away in the middle of a query: the error says the database
//! closed the connection, not the driver's "expected to read 5 bytes, got 0 bytes at EOF".
//!
//! The server is the real test PostgreSQL behind a small TCP relay on 127.0.0.1 that cuts both
//! sides as soon as the client sends the query (bounded in connections and time).

mod common;

use common::{POSTGRES_ENV, env_url};
use sds_core::Entity;
use sds_source::{Source, SourceConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Relays connections from a port on 127.0.0.1 to `upstream`, and cuts a connection (both
/// sides) once the client has sent `trigger`. Serves at most `max` connections for `life`.
fn cutting_relay(upstream: String, trigger: &'static [u8], max: usize, life: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let end = Instant::now() + life;
        let mut served = 0;
        while Instant::now() < end && served < max {
            let Ok((client, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            served += 1;
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let _ = client.set_nonblocking(false);
            for s in [&client, &server] {
                let _ = s.set_read_timeout(Some(life));
            }
            let (mut c_in, mut s_out) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (cut_client, cut_server) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            // Client to server, watching for the trigger.
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if buf[..n].windows(trigger.len()).any(|w| w == trigger) {
                        // Let the server start on it, then vanish.
                        thread::sleep(Duration::from_millis(100));
                        let _ = cut_client.shutdown(Shutdown::Both);
                        let _ = cut_server.shutdown(Shutdown::Both);
                        break;
                    }
                }
            });
            // Server to client.
            let (mut s_in, mut c_out) = (server, client);
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[cfg_attr(
    sds_no_postgres,
    ignore = "SDS_TEST_POSTGRES_URL is not set: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[tokio::test]
async fn a_server_that_closes_the_connection_mid_query_is_named_as_such() {
    let url = env_url(POSTGRES_ENV);
    let parsed = url::Url::parse(&url).expect("test URL");
    let upstream = format!(
        "{}:{}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432)
    );
    let port = cutting_relay(upstream, b"pg_sleep", 8, Duration::from_secs(60));
    let mut relayed = parsed.clone();
    relayed.set_host(Some("127.0.0.1")).expect("host");
    relayed.set_port(Some(port)).expect("port");
    relayed.query_pairs_mut().append_pair("sslmode", "disable");

    let mut cfg = SourceConfig::new(relayed.to_string());
    cfg.queries.insert(
        Entity::Students,
        "SELECT '1' AS student_id, '1' AS school_id, 'A' AS first_name, 'B' AS last_name \
         FROM pg_sleep(2)"
            .to_owned(),
    );
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.query_timeout = Duration::from_secs(30);
    let source = Source::connect(&cfg)
        .await
        .expect("connect through the relay");
    let err = source
        .read(Entity::Students, |_| {})
        .await
        .expect_err("the relay cut the connection")
        .to_string();
    source.close().await;
    assert!(
        err.contains("the database server closed the connection")
            && err.contains("got 0 bytes at EOF"),
        "{err}"
    );
}
