//! The FTP/FTPS destination against real vsftpd servers on 127.0.0.1, started by
//! `scripts/services/ftp.sh start` (which writes `/tmp/sds-test-services/ftp.env`; source it).
//! Without those variables the tests say so and pass, except under `CI=true`, where they fail.
//!
//! Every test uses its own folder under the FTP root, so they run in parallel without
//! colliding; file contents are checked byte for byte on the server's disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use sds_core::FileEntry;
use sds_deliver::ftp::{FtpConfig, FtpDestination, FtpTls, PassiveMode, TMP_SUFFIX, TlsMaxVersion};
use sds_deliver::{Destination, ErrorKind, FileSet};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the tests reach the servers (from `/tmp/sds-test-services/ftp.env`).
struct Env {
    host: String,
    plain_port: u16,
    ftps_only_port: u16,
    reuse_port: u16,
    implicit_port: u16,
    notls_port: u16,
    user: String,
    password: String,
    password_file: PathBuf,
    ca_file: PathBuf,
    root: PathBuf,
}

fn env() -> Option<Env> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // The daemon does this in main; ignore the error if another test got there first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let port = |k: &str| get(k).and_then(|v| v.parse::<u16>().ok());
    let env = (|| {
        Some(Env {
            host: get("SDS_TEST_FTP_HOST")?,
            plain_port: port("SDS_TEST_FTP_PORT")?,
            ftps_only_port: port("SDS_TEST_FTPS_ONLY_PORT")?,
            reuse_port: port("SDS_TEST_FTPS_REUSE_PORT")?,
            implicit_port: port("SDS_TEST_FTPS_IMPLICIT_PORT")?,
            notls_port: port("SDS_TEST_FTP_NOTLS_PORT")?,
            user: get("SDS_TEST_FTP_USER")?,
            password: get("SDS_TEST_FTP_PASSWORD")?,
            password_file: get("SDS_TEST_FTP_PASSWORD_FILE")?.into(),
            ca_file: get("SDS_TEST_FTP_CA_FILE")?.into(),
            root: get("SDS_TEST_FTP_ROOT")?.into(),
        })
    })();
    if env.is_none() {
        let msg = "FTP test server is not set up (SDS_TEST_FTP_* missing): run `scripts/services/ftp.sh start` \
                   and `source /tmp/sds-test-services/ftp.env`";
        // Tests that need it are ignored when it is not set up (crates/deliver/build.rs): one
        // that runs without it fails rather than passing without having tested anything.
        panic!("{msg}");
    }
    env
}

/// A folder of the test's own under the FTP root: (path on disk, path the FTP client sees).
struct RemoteDir {
    local: PathBuf,
    remote: String,
}

impl RemoteDir {
    fn new(env: &Env, test: &str) -> Self {
        let name = format!("{test}-{}", std::process::id());
        let local = env.root.join(&name);
        let _ = std::fs::remove_dir_all(&local);
        std::fs::create_dir(&local).unwrap();
        // The FTP account is another system user: let it write here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o777)).unwrap();
        // vsftpd chroots the user into the root, so the folder is "/<name>" for the client.
        RemoteDir {
            local,
            remote: format!("/{name}"),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.local)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.local.join(name)).unwrap()
    }

    /// The temporary file of `name` (`NAME.<random>.sds-sync-tmp`), if there is one.
    fn temp_of(&self, name: &str) -> Option<PathBuf> {
        self.names()
            .into_iter()
            .find(|n| n.starts_with(&format!("{name}.")) && n.ends_with(TMP_SUFFIX))
            .map(|n| self.local.join(n))
    }
}

impl Drop for RemoteDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.local);
        }
    }
}

/// Deterministic bytes of every value 0..=255 (no text assumptions: CR, LF, NUL, high bytes).
fn binary_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A snapshot folder with the given files; the last one is marked as the licence file.
fn snapshot(dir: &Path, files: &[(&str, Vec<u8>)], license_last: bool) -> FileSet {
    let mut set_files = Vec::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        std::fs::write(dir.join(name), bytes).unwrap();
        set_files.push(FileEntry {
            name: (*name).to_owned(),
            bytes: bytes.len() as u64,
            hash: String::new(),
            rows: 1,
            changes: None,
            license: license_last && i == files.len() - 1,
        });
    }
    FileSet {
        snapshot_id: "t".into(),
        created_at: "2026-11-28T00:00:00Z".into(),
        dir: dir.to_path_buf(),
        files: set_files,
    }
}

fn sds_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "School.csv",
            b"SIS ID,Name\r\n001,Lincoln High\r\n002,\"Jefferson, Middle\"\r\n".to_vec(),
        ),
        // LF-only line ends and UTF-8: an ASCII-mode transfer would change these bytes.
        (
            "Student.csv",
            "SIS ID,First Name,Last Name\n100,Zoë,Ñúñez\n101,Åsa,O'Brien\n"
                .as_bytes()
                .to_vec(),
        ),
        ("Section.csv", binary_bytes(300_000, 7)),
        (
            "License.csv",
            b"Display Name,User Principal Name,Account Sku Id\r\n".to_vec(),
        ),
    ]
}

fn config(env: &Env, name: &str, port: u16, tls: FtpTls, remote_dir: &str) -> FtpConfig {
    let toml_text = format!(
        "name = {name:?}\nhost = {host:?}\nport = {port}\nusername = {user:?}\npassword = {pw:?}\n\
         remote_dir = {remote_dir:?}\nconnect_timeout_secs = 5\nio_timeout_secs = 10\ndelivery_timeout_secs = 90\n",
        host = env.host,
        user = env.user,
        pw = env.password,
    );
    let mut cfg: FtpConfig = toml::from_str(&toml_text).unwrap();
    cfg.tls = tls;
    if tls != FtpTls::None {
        cfg.ca_file = Some(env.ca_file.clone());
    }
    cfg
}

/// Delivers `files` and checks the folder holds exactly the expected files, byte for byte.
async fn deliver_and_verify(
    dest: &FtpDestination,
    dir: &RemoteDir,
    files: &[(&str, Vec<u8>)],
    with_license: bool,
) {
    let src = tempfile::tempdir().unwrap();
    let set = snapshot(src.path(), files, true);
    dest.deliver(&set)
        .await
        .unwrap_or_else(|e| panic!("delivery failed: {e}"));
    let expected: Vec<&(&str, Vec<u8>)> = files
        .iter()
        .take(if with_license {
            files.len()
        } else {
            files.len() - 1
        })
        .collect();
    let mut names: Vec<String> = expected.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(
        dir.names(),
        names,
        "exactly the set's files, no temporary files"
    );
    for (name, bytes) in expected {
        assert!(
            dir.read(name) == *bytes,
            "{name}: remote bytes differ from the snapshot"
        );
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn plain_ftp_delivers_byte_identical_files_and_replaces_old_ones() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "plain");
    let dest = FtpDestination::new(config(
        &env,
        "plain",
        env.plain_port,
        FtpTls::None,
        &dir.remote,
    ))
    .unwrap();
    assert!(dest.startup_warnings()[0].contains("clear text"));
    deliver_and_verify(&dest, &dir, &sds_files(), false).await;
    // A newer snapshot renames over the existing files.
    let mut newer = sds_files();
    newer[0].1 = b"SIS ID,Name\r\n003,Roosevelt Elementary\r\n".to_vec();
    newer[2].1 = binary_bytes(123_457, 99);
    deliver_and_verify(&dest, &dir, &newer, false).await;
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn explicit_ftps_with_password_file_and_epsv() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "explicit");
    let mut cfg = config(
        &env,
        "explicit",
        env.plain_port,
        FtpTls::Explicit,
        &dir.remote,
    );
    // An owner-only copy of the password file: a file other accounts can read is warned about.
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("password");
    std::fs::copy(&env.password_file, &password_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    cfg.password = None;
    cfg.password_file = Some(password_file.clone());
    cfg.passive_mode = PassiveMode::Extended;
    cfg.include_license_file = true;
    let dest = FtpDestination::new(cfg.clone()).unwrap();
    assert!(
        dest.startup_warnings().is_empty(),
        "{:?}",
        dest.startup_warnings()
    );
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = FtpDestination::new(cfg).unwrap().startup_warnings();
    assert!(
        loose.len() == 1 && loose[0].contains("`password_file`") && loose[0].contains("chmod 600"),
        "{loose:?}"
    );
    assert!(!loose[0].contains(&env.password));
    dest.check().await.unwrap();
    assert_eq!(
        dir.names(),
        Vec::<String>::new(),
        "check leaves nothing behind"
    );
    deliver_and_verify(&dest, &dir, &sds_files(), true).await;
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn ftps_only_server_refuses_plain_and_accepts_explicit_tls() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "ftpsonly");
    let plain = FtpDestination::new(config(
        &env,
        "ftpsonly-plain",
        env.ftps_only_port,
        FtpTls::None,
        &dir.remote,
    ))
    .unwrap();
    let err = plain.check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("tls = \"explicit\""), "{err}");
    let tls = FtpDestination::new(config(
        &env,
        "ftpsonly",
        env.ftps_only_port,
        FtpTls::Explicit,
        &dir.remote,
    ))
    .unwrap();
    tls.check().await.unwrap();
    deliver_and_verify(&tls, &dir, &sds_files(), false).await;
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn vsftpd_require_ssl_reuse_works_by_resuming_the_control_session() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "reuse");
    let dest = FtpDestination::new(config(
        &env,
        "reuse",
        env.reuse_port,
        FtpTls::Explicit,
        &dir.remote,
    ))
    .unwrap();
    dest.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    deliver_and_verify(&dest, &dir, &sds_files(), false).await;
    // A second delivery reuses the destination's session cache across connections.
    deliver_and_verify(&dest, &dir, &sds_files(), false).await;
    // TLS 1.2 (session-id resumption) works as well.
    let mut cfg = config(
        &env,
        "reuse-tls12",
        env.reuse_port,
        FtpTls::Explicit,
        &dir.remote,
    );
    cfg.tls_max_version = TlsMaxVersion::Tls12;
    deliver_and_verify(
        &FtpDestination::new(cfg).unwrap(),
        &dir,
        &sds_files(),
        false,
    )
    .await;
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn refused_tls_session_reuse_is_permanent_and_says_what_to_change() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "noreuse");
    // Without resumption the server refuses every data connection with 522.
    let dest = FtpDestination::new(config(
        &env,
        "noreuse",
        env.reuse_port,
        FtpTls::Explicit,
        &dir.remote,
    ))
    .unwrap()
    .without_tls_session_reuse();
    let err = dest.check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(
        err.message.contains("522") && err.message.contains("require_ssl_reuse=NO"),
        "{err}"
    );
    let src = tempfile::tempdir().unwrap();
    let err = dest
        .deliver(&snapshot(src.path(), &sds_files(), true))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("require_ssl_reuse=NO"), "{err}");
    eprintln!("{err}");
    assert!(
        !dir.names().iter().any(|n| !n.ends_with(TMP_SUFFIX)),
        "no file under a final name: {:?}",
        dir.names()
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn implicit_ftps() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "implicit");
    let dest = FtpDestination::new(config(
        &env,
        "implicit",
        env.implicit_port,
        FtpTls::Implicit,
        &dir.remote,
    ))
    .unwrap();
    dest.check().await.unwrap();
    deliver_and_verify(&dest, &dir, &sds_files(), false).await;
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn tls_mismatches_are_permanent_or_bounded() {
    let Some(env) = env() else { return };
    // Explicit FTPS against a server without TLS: AUTH TLS is refused.
    let err = FtpDestination::new(config(&env, "notls", env.notls_port, FtpTls::Explicit, "/"))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(
        err.message.contains("AUTH TLS") && err.message.contains("`tls`"),
        "{err}"
    );
    // The same server in plain mode works.
    let dir = RemoteDir::new(&env, "notls");
    let plain = FtpDestination::new(config(
        &env,
        "notls",
        env.notls_port,
        FtpTls::None,
        &dir.remote,
    ))
    .unwrap();
    deliver_and_verify(&plain, &dir, &sds_files(), false).await;
    // Explicit FTPS on the implicit port: the server waits for a TLS hello and never greets.
    let mut cfg = config(&env, "mismatch", env.implicit_port, FtpTls::Explicit, "/");
    cfg.io_timeout_secs = 2;
    let started = Instant::now();
    let err = FtpDestination::new(cfg).unwrap().check().await.unwrap_err();
    assert!(err.message.contains("greeting"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn wrong_password_is_permanent_and_not_echoed() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "badpass");
    for (port, tls) in [
        (env.plain_port, FtpTls::None),
        (env.ftps_only_port, FtpTls::Explicit),
    ] {
        let mut cfg = config(&env, "badpass", port, tls, &dir.remote);
        cfg.password = Some("wrong-Pa55word-xyz".to_owned().into());
        let dest = FtpDestination::new(cfg).unwrap();
        let src = tempfile::tempdir().unwrap();
        let err = dest
            .deliver(&snapshot(src.path(), &sds_files(), true))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
        let text = err.to_string();
        assert!(text.contains("530") && text.contains("password"), "{text}");
        assert!(
            text.contains("badpass") && text.contains(&format!("127.0.0.1:{port}")),
            "{text}"
        );
        assert!(
            !text.contains("wrong-Pa55word-xyz"),
            "the password leaked: {text}"
        );
        assert!(!format!("{err:?}").contains("wrong-Pa55word-xyz"));
        assert!(dest.check().await.unwrap_err().is_permanent());
    }
    assert_eq!(dir.names(), Vec::<String>::new());
}

/// Collects every `log` record of the test binary (suppaftp logs through `log`).
struct CaptureLog(Mutex<Vec<String>>);

impl log::Log for CaptureLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

static CAPTURE: CaptureLog = CaptureLog(Mutex::new(Vec::new()));

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn the_password_never_reaches_the_log() {
    let Some(env) = env() else { return };
    // suppaftp logs each command, PASS included, at TRACE; sds-deliver caps the `log` crate at
    // DEBUG at compile time (feature max_level_debug), so even a TRACE logger never sees it.
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    let dir = RemoteDir::new(&env, "nolog");
    let dest = FtpDestination::new(config(
        &env,
        "nolog",
        env.plain_port,
        FtpTls::Explicit,
        &dir.remote,
    ))
    .unwrap();
    dest.check().await.unwrap();
    let lines = CAPTURE.0.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.starts_with("suppaftp")),
        "suppaftp logged nothing at all: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&env.password)),
        "the password was logged"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn untrusted_certificate_is_permanent() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "untrusted");
    let mut cfg = config(
        &env,
        "untrusted",
        env.plain_port,
        FtpTls::Explicit,
        &dir.remote,
    );
    cfg.ca_file = None; // only the public web roots: the test CA is unknown
    let err = FtpDestination::new(cfg).unwrap().check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(
        err.message.contains("certificate") && err.message.contains("ca_file"),
        "{err}"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn missing_remote_dir_and_read_only_dir_are_permanent() {
    let Some(env) = env() else { return };
    let missing = FtpDestination::new(config(
        &env,
        "missing",
        env.plain_port,
        FtpTls::Explicit,
        "/no-such-folder-sds",
    ))
    .unwrap();
    let err = missing.check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("remote_dir"), "{err}");

    // Owned by root, mode 755 (made by the service script): the FTP account may not write.
    let readonly = FtpDestination::new(config(
        &env,
        "readonly",
        env.plain_port,
        FtpTls::Explicit,
        "/readonly",
    ))
    .unwrap();
    let err = readonly.check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(
        err.message.contains("553") && err.message.contains("write permission"),
        "{err}"
    );
    let src = tempfile::tempdir().unwrap();
    let err = readonly
        .deliver(&snapshot(src.path(), &sds_files(), true))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert_eq!(
        std::fs::read_dir(env.root.join("readonly"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn leftover_temporary_files_are_removed_by_the_next_delivery() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "leftovers");
    std::fs::write(
        dir.local.join(format!("School.csv{TMP_SUFFIX}")),
        b"half a fi",
    )
    .unwrap();
    std::fs::write(
        dir.local.join(format!("Gone.csv{TMP_SUFFIX}")),
        b"from an older set",
    )
    .unwrap();
    std::fs::write(dir.local.join("vendor-notes.txt"), b"not ours").unwrap();
    let dest = FtpDestination::new(config(
        &env,
        "leftovers",
        env.plain_port,
        FtpTls::Explicit,
        &dir.remote,
    ))
    .unwrap();
    let src = tempfile::tempdir().unwrap();
    dest.deliver(&snapshot(src.path(), &sds_files(), true))
        .await
        .unwrap();
    assert_eq!(
        dir.names(),
        vec![
            "School.csv",
            "Section.csv",
            "Student.csv",
            "vendor-notes.txt"
        ]
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn refused_connection_and_silent_server_are_retryable_and_bounded() {
    let Some(env) = env() else { return };
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = FtpDestination::new(config(&env, "refused", port, FtpTls::None, "/"))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable, "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");

    // A server that accepts and never says hello: the I/O timeout ends the wait.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut cfg = config(&env, "silent", silent_port, FtpTls::None, "/");
    cfg.io_timeout_secs = 1;
    let started = Instant::now();
    let err = FtpDestination::new(cfg).unwrap().check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable, "{err}");
    assert!(err.message.contains("io_timeout_secs"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_server,
    ignore = "FTP test servers not set up: run scripts/test (it starts the servers), or scripts/services/ftp.sh start and source its env"
)]
async fn server_gone_mid_transfer_is_retryable_and_leaves_no_partial_file_under_a_final_name() {
    let Some(env) = env() else { return };
    let dir = RemoteDir::new(&env, "midtransfer");
    let proxy = FtpProxy::start(env.plain_port).await;
    // Plain FTP, so the proxy can read the PASV replies and put itself into the data path too.
    let via_proxy = Arc::new(
        FtpDestination::new(config(
            &env,
            "midtransfer",
            proxy.port,
            FtpTls::None,
            &dir.remote,
        ))
        .unwrap(),
    );
    let src = tempfile::tempdir().unwrap();
    let big = binary_bytes(8 * 1024 * 1024, 3);
    let files = vec![
        ("School.csv", b"SIS ID,Name\r\n001,A\r\n".to_vec()),
        ("Section.csv", big.clone()),
    ];
    let set = snapshot(src.path(), &files, false);

    let task = {
        let (dest, set) = (Arc::clone(&via_proxy), set.clone());
        tokio::spawn(async move { dest.deliver(&set).await })
    };
    // Cut every connection once part of the big file has reached the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    let tmp = loop {
        if let Some(tmp) = dir.temp_of("Section.csv")
            && std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0) >= 256 * 1024
        {
            break tmp;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    proxy.kill();
    let err = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("delivery must end")
        .unwrap()
        .unwrap_err();
    eprintln!("cut mid-transfer: {err}");
    assert_eq!(err.kind, ErrorKind::Retryable, "{err}");
    // Neither the partial file nor the complete first file of the set is under a final name:
    // the set changes in one burst after every upload, or not at all.
    assert!(
        !dir.local.join("Section.csv").exists() && !dir.local.join("School.csv").exists(),
        "a file of the failed set appeared under its final name: {:?}",
        dir.names()
    );
    let partial = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    assert!(
        partial < big.len() as u64,
        "the cut came too late to test anything ({partial} bytes)"
    );

    // The server is reachable again: the retry completes the set and removes the leftover.
    let direct = FtpDestination::new(config(
        &env,
        "midtransfer",
        env.plain_port,
        FtpTls::None,
        &dir.remote,
    ))
    .unwrap();
    direct.deliver(&set).await.unwrap();
    assert_eq!(dir.names(), vec!["School.csv", "Section.csv"]);
    assert!(dir.read("Section.csv") == big, "retried file differs");
}

/// A small FTP-aware TCP proxy on 127.0.0.1: forwards the control connection, rewrites `227`
/// replies so data connections also pass through it, and throttles uploads so a test can cut
/// everything mid-transfer with [`FtpProxy::kill`], as a server that stops would.
struct FtpProxy {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FtpProxy {
    async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let t = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let t2 = Arc::clone(&t);
                let h = tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    proxy_control(client, upstream, t2).await;
                });
                t.lock().unwrap().push(h);
            }
        });
        tasks.lock().unwrap().push(accept);
        FtpProxy { port, tasks }
    }

    /// Drops every connection at once.
    fn kill(&self) {
        for h in self.tasks.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

impl Drop for FtpProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn proxy_control(
    client: TcpStream,
    upstream: TcpStream,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let (mut client_r, mut client_w) = client.into_split();
    let (upstream_r, mut upstream_w) = upstream.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_r, &mut upstream_w).await;
    });
    tasks.lock().unwrap().push(up);
    let mut lines = BufReader::new(upstream_r);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(rewritten) = rewrite_pasv(&line, &tasks).await {
            line = rewritten;
        }
        if client_w.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// For `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`: listen on a port of our own, forward it
/// (throttled) to the server's data port, and answer with our port instead.
async fn rewrite_pasv(line: &str, tasks: &Arc<Mutex<Vec<JoinHandle<()>>>>) -> Option<String> {
    if !line.starts_with("227 ") {
        return None;
    }
    let inner = &line[line.find('(')? + 1..line.find(')')?];
    let nums: Vec<u16> = inner
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let upstream_port = nums[4] * 256 + nums[5];
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
            return;
        };
        let (mut client_r, mut client_w) = client.into_split();
        let (mut upstream_r, mut upstream_w) = upstream.into_split();
        let down = async {
            let _ = tokio::io::copy(&mut upstream_r, &mut client_w).await;
            // Pass the server's end of a download (listings) on to the client.
            let _ = client_w.shutdown().await;
        };
        // About 1 MiB/s towards the server: slow enough to be cut in the middle.
        let up = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match client_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if upstream_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                }
            }
            let _ = upstream_w.shutdown().await;
        };
        // One task for both directions, so aborting it closes both sockets.
        tokio::join!(down, up);
    });
    tasks.lock().unwrap().push(h);
    Some(format!(
        "227 Entering Passive Mode (127,0,0,1,{},{}).\r\n",
        port / 256,
        port % 256
    ))
}
