//! Hostile servers on 127.0.0.1 (written here, bounded in size and time, stopping by themselves):
//! every read from a server must be bounded (issue 15). Each offers 300 MB the client never asked
//! for; the client must fail fast with a clear error, and the process's peak resident memory must
//! stay under 200 MB. The tests run one at a time (a lock), since the peak is the whole process's.

use sds_core::FileEntry;
use sds_deliver::email::{EmailConfig, EmailDestination, EmailTls};
use sds_deliver::ftp::{FtpConfig, FtpDestination, FtpTls};
use sds_deliver::{Destination, FileSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// What each hostile server offers.
const HOSTILE_BYTES: u64 = 300 * 1024 * 1024;
/// The bound on the test process's peak resident memory.
const MAX_PEAK_RSS: u64 = 200 * 1024 * 1024;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resets the kernel's peak-RSS mark of this process (`VmHWM`), so the next reading covers only
/// what follows.
fn reset_peak_rss() {
    fs_write("/proc/self/clear_refs", "5");
}

fn fs_write(path: &str, text: &str) {
    std::fs::write(path, text).expect("write /proc/self/clear_refs (Linux only)");
}

/// Peak resident memory since the last reset, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

/// Writes `total` bytes of `chunk` repeated (after `prefix`) as fast as the peer reads; stops at
/// the first write error (the client gave up). Returns the bytes written.
fn flood(out: &mut TcpStream, prefix: &[u8], chunk: &[u8], total: u64) -> u64 {
    let mut sent = 0u64;
    if out.write_all(prefix).is_err() {
        return 0;
    }
    while sent < total {
        if out.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len() as u64;
    }
    sent
}

/// A one-connection server on 127.0.0.1 that gives up after 60 s without a client.
fn serve_once(handler: impl FnOnce(TcpStream) -> u64 + Send + 'static) -> (u16, JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match listener.accept() {
                Ok((sock, _)) => {
                    sock.set_nonblocking(false).unwrap();
                    sock.set_write_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    return handler(sock);
                }
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return 0,
            }
        }
    });
    (port, handle)
}

fn one_file_set() -> (tempfile::TempDir, FileSet) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("School.csv"), b"SIS ID,Name\r\n1,A\r\n").unwrap();
    let set = FileSet {
        snapshot_id: "1".into(),
        created_at: "2026-11-28T00:00:00Z".into(),
        dir: dir.path().to_path_buf(),
        files: vec![FileEntry {
            name: "School.csv".into(),
            bytes: 18,
            hash: String::new(),
            rows: 1,
            changes: None,
            license: false,
        }],
    };
    (dir, set)
}

#[tokio::test]
async fn smtp_greeting_without_line_break_is_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    let chunk = vec![b'A'; 64 * 1024];
    let (port, server) =
        serve_once(move |mut sock| flood(&mut sock, b"220 ", &chunk, HOSTILE_BYTES));
    let mut cfg = EmailConfig::new(
        "hostile-smtp",
        "127.0.0.1",
        "sds@example.org",
        vec!["ops@example.org".into()],
    );
    cfg.tls = EmailTls::None;
    cfg.smtp_port = Some(port);
    cfg.timeout_secs = 60;
    let dest = EmailDestination::new(cfg).unwrap();
    let (_dir, set) = one_file_set();

    reset_peak_rss();
    let err = dest.deliver(&set).await.unwrap_err();
    let peak = peak_rss();
    let sent = server.join().unwrap();
    eprintln!(
        "hostile SMTP greeting: {err}; the server got {sent} bytes out; peak RSS {} MiB",
        peak >> 20
    );
    assert!(!err.is_permanent(), "{err}");
    assert!(
        err.message.contains("more than 1024 KiB in one session")
            && err.message.contains("smtp_port"),
        "{err}"
    );
    assert!(peak < MAX_PEAK_RSS, "peak RSS {} MiB", peak >> 20);
    assert!(sent < HOSTILE_BYTES, "the client read all {sent} bytes");
}

/// A fake FTP server: logs anyone in, and answers `NLST` with `listing` (repeated to `total`).
fn hostile_ftp(listing: &'static [u8], total: u64) -> (u16, JoinHandle<u64>) {
    serve_once(move |sock| {
        let mut out = sock.try_clone().unwrap();
        let mut lines = BufReader::new(sock);
        let mut data: Option<TcpListener> = None;
        let mut sent = 0;
        let _ = out.write_all(b"220 hostile ready\r\n");
        let mut line = String::new();
        // At most a few dozen commands: a client never sends more in one delivery.
        for _ in 0..64 {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "USER" => b"331 password please\r\n",
                "PASS" => b"230 logged in\r\n",
                "TYPE" | "PBSZ" | "PROT" => b"200 ok\r\n",
                "CWD" => b"250 ok\r\n",
                "PASV" => {
                    let l = TcpListener::bind("127.0.0.1:0").unwrap();
                    let p = l.local_addr().unwrap().port();
                    data = Some(l);
                    let r = format!(
                        "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
                        p / 256,
                        p % 256
                    );
                    let _ = out.write_all(r.as_bytes());
                    continue;
                }
                "NLST" | "LIST" => {
                    let _ = out.write_all(b"150 here it comes\r\n");
                    if let Some(l) = data.take()
                        && let Ok((mut d, _)) = l.accept()
                    {
                        d.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                        sent += flood(&mut d, b"", listing, total);
                    }
                    b"226 done\r\n"
                }
                "QUIT" => {
                    let _ = out.write_all(b"221 bye\r\n");
                    break;
                }
                _ => b"502 not here\r\n",
            };
            if out.write_all(reply).is_err() {
                break;
            }
        }
        sent
    })
}

async fn deliver_to_hostile_ftp(port: u16) -> (sds_deliver::DeliverError, u64) {
    let text = format!(
        "name = \"hostile-ftp\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"u\"\npassword = \"p\"\n\
         tls = \"none\"\nio_timeout_secs = 30\ndelivery_timeout_secs = 120\n"
    );
    let cfg: FtpConfig = toml::from_str(&text).unwrap();
    assert_eq!(cfg.tls, FtpTls::None);
    let dest = FtpDestination::new(cfg).unwrap();
    let (_dir, set) = one_file_set();
    reset_peak_rss();
    let err = dest.deliver(&set).await.unwrap_err();
    (err, peak_rss())
}

#[tokio::test]
async fn ftp_listing_of_300_mb_is_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Short names, millions of them: each alone is fine, their number is not.
    static NAMES: &[u8] =
        b"StudentEnrollment-000000000001.csv\r\nx.0123456789abcdef.sds-sync-tmp\r\n";
    let (port, server) = hostile_ftp(NAMES, HOSTILE_BYTES);
    let (err, peak) = deliver_to_hostile_ftp(port).await;
    let sent = server.join().unwrap();
    eprintln!(
        "hostile FTP listing: {err}; the server got {sent} bytes out; peak RSS {} MiB",
        peak >> 20
    );
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.message.contains("the listing is larger than 32 MiB"),
        "{err}"
    );
    assert!(peak < MAX_PEAK_RSS, "peak RSS {} MiB", peak >> 20);
    assert!(sent < HOSTILE_BYTES, "the client read all {sent} bytes");
}

#[tokio::test]
async fn ftp_listing_line_without_end_is_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    static NO_LINE_BREAK: [u8; 64 * 1024] = [b'a'; 64 * 1024];
    let (port, server) = hostile_ftp(&NO_LINE_BREAK, HOSTILE_BYTES);
    let (err, peak) = deliver_to_hostile_ftp(port).await;
    let sent = server.join().unwrap();
    eprintln!(
        "hostile FTP line: {err}; the server got {sent} bytes out; peak RSS {} MiB",
        peak >> 20
    );
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.message
            .contains("the listing has a line longer than 4096 bytes"),
        "{err}"
    );
    assert!(peak < MAX_PEAK_RSS, "peak RSS {} MiB", peak >> 20);
    assert!(sent < HOSTILE_BYTES, "the client read all {sent} bytes");
}
