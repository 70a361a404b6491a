//! The FTP destination against FTPS servers configured the ways district servers are (issue 16),
//! started by `scripts/services/ftp-interop.sh` (see /tmp/sds-test-services/ftp-interop.env):
//! ProFTPD with mod_tls at its stock settings (TLS 1.3, data connections must reuse the control
//! connection's TLS session), and pyftpdlib, which closes TLS data connections without a
//! close_notify.

use sds_core::FileEntry;
use sds_deliver::ftp::{FtpConfig, FtpDestination, FtpTls};
use sds_deliver::{Destination, FileSet};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

struct Env {
    host: String,
    proftpd_port: u16,
    pyftpdlib_port: u16,
    user: String,
    password_file: PathBuf,
    ca_file: PathBuf,
    root: PathBuf,
}

/// The servers' coordinates. These tests are ignored (crates/deliver/build.rs) when the service
/// is not set up, so reaching here without it is a failure, never a silent pass.
fn env() -> Env {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let get = |k: &str| {
        std::env::var(format!("SDS_TEST_FTPI_{k}")).unwrap_or_else(|_| {
            panic!("SDS_TEST_FTPI_{k} is not set: run scripts/services/ftp-interop.sh start and source /tmp/sds-test-services/ftp-interop.env (scripts/test does both)")
        })
    };
    Env {
        host: get("HOST"),
        proftpd_port: get("PROFTPD_PORT").parse().unwrap(),
        pyftpdlib_port: get("PYFTPDLIB_PORT").parse().unwrap(),
        user: get("USER"),
        password_file: get("PASSWORD_FILE").into(),
        ca_file: get("CA_FILE").into(),
        root: get("ROOT").into(),
    }
}

/// A fresh folder under the FTP root, removed afterwards.
struct RemoteDir {
    local: PathBuf,
    remote: String,
}

impl RemoteDir {
    fn new(env: &Env, tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let local = env.root.join(&name);
        std::fs::create_dir_all(&local).unwrap();
        let _ = std::process::Command::new("chmod")
            .arg("777")
            .arg(&local)
            .status();
        RemoteDir {
            local,
            remote: format!("/{name}"),
        }
    }

    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&self.local)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for RemoteDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.local);
    }
}

/// A v2.1-sized set: `n` files, so a delivery opens many TLS data connections.
fn set(dir: &Path, n: usize) -> (FileSet, Vec<(String, Vec<u8>)>) {
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let name = format!("file{i:02}.csv");
        let data = format!("id,name\r\n{i},Zoë {i}\r\n").repeat(50 + i * 10);
        std::fs::write(dir.join(&name), &data).unwrap();
        files.push(FileEntry {
            name: name.clone(),
            bytes: data.len() as u64,
            hash: String::new(),
            rows: 1,
            changes: None,
            license: false,
        });
        expected.push((name, data.into_bytes()));
    }
    expected.sort();
    (
        FileSet {
            snapshot_id: "interop".into(),
            created_at: "2026-11-28T02:00:00Z".into(),
            dir: dir.to_path_buf(),
            files,
        },
        expected,
    )
}

/// What a district admin writes for an FTPS server: explicit TLS, the CA, nothing else special.
fn cfg(env: &Env, port: u16, dir: &RemoteDir) -> FtpConfig {
    let text = format!(
        "name = \"interop\"\nhost = {host:?}\nport = {port}\nusername = {user:?}\npassword_file = {pw:?}\n\
         tls = \"explicit\"\nca_file = {ca:?}\nremote_dir = {dir:?}\nconnect_timeout_secs = 10\n\
         io_timeout_secs = 20\ndelivery_timeout_secs = 120\n",
        host = env.host,
        user = env.user,
        pw = env.password_file,
        ca = env.ca_file,
        dir = dir.remote,
    );
    toml::from_str(&text).unwrap()
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_interop_server,
    ignore = "FTP interop test servers not set up: run scripts/test (it starts them), or scripts/services/ftp-interop.sh start and source its env"
)]
async fn proftpd_stock_tls_takes_many_data_connections_under_tls13() {
    let env = env();
    let dir = RemoteDir::new(&env, "proftpd");
    let snap = tempfile::tempdir().unwrap();
    // 12 files: with the listing, renames and size checks that is well over the 3 data
    // connections that used to work.
    let (set, expected) = set(snap.path(), 12);
    let c = cfg(&env, env.proftpd_port, &dir);
    assert_eq!(c.tls, FtpTls::Explicit);
    let dest = FtpDestination::new(c).unwrap();
    dest.deliver(&set).await.unwrap();
    assert_eq!(dir.files(), expected);
    // Again on the same destination (a later run): tickets from the earlier session must not
    // break the new one.
    dest.deliver(&set).await.unwrap();
    assert_eq!(dir.files(), expected);
    dest.check().await.unwrap();
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_interop_server,
    ignore = "FTP interop test servers not set up: run scripts/test (it starts them), or scripts/services/ftp-interop.sh start and source its env"
)]
async fn pyftpdlib_listings_cut_without_close_notify_are_tolerated() {
    let env = env();
    let snap = tempfile::tempdir().unwrap();
    let (set, expected) = set(snap.path(), 3);
    // Empty folders first (the listing of leftovers is empty), several times: the failure used
    // to come one run in two.
    for round in 0..6 {
        let dir = RemoteDir::new(&env, &format!("pyftpd-{round}"));
        let dest = FtpDestination::new(cfg(&env, env.pyftpdlib_port, &dir)).unwrap();
        dest.deliver(&set)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(dir.files(), expected, "round {round}");
        // Second delivery: the listing now holds the files.
        dest.deliver(&set)
            .await
            .unwrap_or_else(|e| panic!("round {round}, again: {e}"));
        assert_eq!(dir.files(), expected, "round {round}");
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_ftp_interop_server,
    ignore = "FTP interop test servers not set up: run scripts/test (it starts them), or scripts/services/ftp-interop.sh start and source its env"
)]
async fn proftpd_refusal_names_its_own_setting() {
    // Without resumption (a test-only switch) ProFTPD refuses the data connection with 425;
    // the error must name ProFTPD's setting, not vsftpd's.
    let env = env();
    let dir = RemoteDir::new(&env, "proftpd-noreuse");
    let snap = tempfile::tempdir().unwrap();
    let (set, _) = set(snap.path(), 1);
    let dest = FtpDestination::new(cfg(&env, env.proftpd_port, &dir))
        .unwrap()
        .without_tls_session_reuse();
    let e = dest.deliver(&set).await.unwrap_err();
    let m = e.to_string();
    assert!(m.contains("425"), "{m}");
    assert!(m.contains("TLSOptions NoSessionReuseRequired"), "{m}");
    assert!(!m.contains("require_ssl_reuse"), "{m}");
}
