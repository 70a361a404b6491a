//! The metrics port cannot starve the daemon: with its descriptors limited to 1,024 (the usual
//! soft limit), 1,100 idle connections to `[metrics] listen` leave `/healthz` answering and the
//! scheduled runs succeeding, and the daemon holds only a bounded number of them.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};
use support::daemon::*;

const IDLE_CONNECTIONS: usize = 1100;
/// The daemon's descriptor limit in this test: the common default soft limit.
const DAEMON_NOFILE: libc::rlim_t = 1024;

/// Raises this test process's own soft descriptor limit to its hard limit: it holds the 1,100
/// client ends.
fn raise_own_nofile() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        assert!(
            lim.rlim_cur as usize > IDLE_CONNECTIONS + 200,
            "the hard descriptor limit ({}) is too low for this test",
            lim.rlim_cur
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET /healthz`: (status, body), or None when no answer came within 5 s.
fn healthz(addr: SocketAddr) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn idle_metrics_connections_leave_healthz_and_runs_working() {
    raise_own_nofile();
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut setup = Setup::ticking(&["local"]);
    setup.extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let env = Env::new(&setup);
    let mut d = env.start_with(|cmd| {
        // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: DAEMON_NOFILE,
                    rlim_max: DAEMON_NOFILE,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    });
    d.wait_log(msg::RUN_FINISHED, |l| text(l, "outcome") == "published");
    assert_eq!(healthz(addr), Some((200, "ok".to_owned())));
    let runs_before = d.logs_with(msg::RUN_FINISHED).len();

    // The flood: idle connections that never send a byte, all held open by this test.
    let started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            idle.push(s);
        }
    }
    assert!(
        idle.len() >= IDLE_CONNECTIONS - 50,
        "only {} of {IDLE_CONNECTIONS} connections were made",
        idle.len()
    );

    // Health still answers while the flood is held (well within the 10 s header timeout).
    let answer = healthz(addr);
    assert_eq!(answer, Some((200, "ok".to_owned())), "{}", d.tail());
    let fds = open_descriptors(d.pid());
    assert!(
        fds < 200,
        "the daemon holds {fds} descriptors under the flood; connections are not capped"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the flood took too long to set up for the checks to mean anything"
    );

    // Runs keep succeeding: two more ticks finish, none failed.
    let finished = d.wait_log_count(msg::RUN_FINISHED, runs_before + 2);
    for run in &finished[runs_before..] {
        assert_ne!(text(run, "outcome"), "failed", "{run}\n{}", d.tail());
    }
    assert!(
        !d.log_text().contains("Too many open files"),
        "{}",
        d.tail()
    );
    assert_eq!(healthz(addr), Some((200, "ok".to_owned())));
    drop(idle);

    d.signal("TERM");
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// `/healthz` is unauthenticated: a failed run is reported by its kind, never with the SIS host,
/// user or database the log names.
#[test]
fn healthz_names_the_kind_of_failure_not_the_sis() {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut setup = Setup::ticking(&["local"]);
    setup.extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let env = Env::new(&setup);
    // Nothing listens on port 1: the connection is refused at once.
    let config = env.config_toml(&setup).replacen(
        &format!("url = \"sqlite://{}\"", env.sis.display()),
        "url = \"postgres://secret_reader@127.0.0.1:1/secret_sis_db\"",
        1,
    );
    assert!(config.contains("secret_sis_db"));
    env.write_config_text(&config);
    let mut d = env.start();
    d.wait_log("run failed", |l| text(l, "outcome") == "failed");
    let (status, body) = healthz(addr).expect("an answer");
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "last run failed: cannot connect to the SIS (see the log)"
    );
    assert!(
        d.log_text().contains("secret_sis_db"),
        "the log keeps the details"
    );
}
