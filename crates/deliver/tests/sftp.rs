//! The SFTP destination against a real OpenSSH sshd (started by `scripts/services/sftp.sh start`,
//! which writes `/tmp/sds-test-services/sftp.env`). Without the server these tests say so and
//! pass; with `CI=true` a missing server fails them.
//!
//! Each test works in its own folder under the server's upload folder, so they run in parallel.
//! The server-stop test runs a private sshd on its own port, so stopping it disturbs no other test.

use sds_core::FileEntry;
use sds_deliver::sftp::{SftpConfig, SftpDestination};
use sds_deliver::staged::is_ours;
use sds_deliver::{DeliverError, Destination, FileSet};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ENV_FILE: &str = "/tmp/sds-test-services/sftp.env";

/// How to reach the test server.
#[derive(Debug, Clone)]
struct Server {
    host: String,
    port: u16,
    user: String,
    password_file: PathBuf,
    key_ed25519: PathBuf,
    key_rsa: PathBuf,
    key_ecdsa: PathBuf,
    key_encrypted: PathBuf,
    passphrase_file: PathBuf,
    key_unknown: PathBuf,
    known_hosts: PathBuf,
    known_hosts_hashed: PathBuf,
    known_hosts_wrong: PathBuf,
    fingerprint: String,
    upload_dir: String,
    upload_local: PathBuf,
    readonly_dir: String,
    sshd: PathBuf,
    sshd_config: PathBuf,
}

/// Variables from the environment, or else from the env file the service script writes (so a
/// plain `cargo test` works after `scripts/services/sftp.sh start`).
fn vars() -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SDS_TEST_SFTP_"))
        .collect();
    if !vars.contains_key("SDS_TEST_SFTP_HOST")
        && let Ok(text) = fs::read_to_string(ENV_FILE)
    {
        for line in text.lines() {
            if let Some((k, v)) = line
                .trim()
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
            {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    vars
}

fn server() -> Option<Server> {
    // `RUST_LOG=sds_deliver=debug cargo test ...` shows what the destination does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let v = vars();
    let get = |k: &str| v.get(&format!("SDS_TEST_SFTP_{k}")).cloned();
    // Tests that need it are ignored when it is not set up (crates/deliver/build.rs): one that
    // runs without it fails rather than passing without having tested anything.
    let Some(host) = get("HOST") else {
        panic!("the SFTP test server is not set up: run scripts/services/sftp.sh start");
    };
    let need = |k: &str| {
        get(k).unwrap_or_else(|| panic!("SDS_TEST_SFTP_{k} missing from the SFTP test env"))
    };
    Some(Server {
        host,
        port: need("PORT").parse().unwrap(),
        user: need("USER"),
        password_file: need("PASSWORD_FILE").into(),
        key_ed25519: need("KEY_ED25519").into(),
        key_rsa: need("KEY_RSA").into(),
        key_ecdsa: need("KEY_ECDSA").into(),
        key_encrypted: need("KEY_ED25519_ENCRYPTED").into(),
        passphrase_file: need("KEY_PASSPHRASE_FILE").into(),
        key_unknown: need("KEY_UNKNOWN").into(),
        known_hosts: need("KNOWN_HOSTS").into(),
        known_hosts_hashed: need("KNOWN_HOSTS_HASHED").into(),
        known_hosts_wrong: need("KNOWN_HOSTS_WRONG").into(),
        fingerprint: need("HOST_FINGERPRINT"),
        upload_dir: need("UPLOAD_DIR"),
        upload_local: need("UPLOAD_LOCAL").into(),
        readonly_dir: need("READONLY_DIR"),
        sshd: need("SSHD").into(),
        sshd_config: need("SSHD_CONFIG").into(),
    })
}

/// A folder of its own under the server's upload folder, removed when dropped.
struct RemoteDir {
    local: PathBuf,
    remote: String,
}

impl RemoteDir {
    fn new(s: &Server, test: &str) -> RemoteDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{test}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let local = s.upload_local.join(&name);
        let _ = fs::remove_dir_all(&local);
        fs::create_dir(&local).unwrap();
        // The SFTP user is not the user running the tests.
        fs::set_permissions(&local, fs::Permissions::from_mode(0o777)).unwrap();
        RemoteDir {
            local,
            remote: format!("{}/{name}", s.upload_dir),
        }
    }

    /// The temporary file of `name` (`NAME.<random>.sds-sync-tmp`), if there is one.
    fn temp_of(&self, name: &str) -> Option<PathBuf> {
        fs::read_dir(&self.local)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("{name}.")) && is_ours(n))
            .map(|n| self.local.join(n))
    }

    /// Name → content of every file in the folder.
    fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(&self.local)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for RemoteDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.local);
    }
}

/// A snapshot folder with the given files. Content is deterministic per (name, size, seed).
struct Snapshot {
    _dir: tempfile::TempDir,
    set: FileSet,
}

fn content(name: &str, size: usize, seed: u8) -> Vec<u8> {
    let header = format!("SIS ID,Name,{name},{seed}\r\n").into_bytes();
    let mut out = Vec::with_capacity(size);
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed) ^ (name.len() as u32);
    while out.len() < size {
        if out.len() < header.len() {
            out.push(header[out.len()]);
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.push(b"0123456789abcdef,\r\n"[(x % 19) as usize]);
        }
    }
    out
}

fn snapshot(files: &[(&str, usize)], seed: u8) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let mut set_files = Vec::new();
    for (name, size) in files {
        let bytes = content(name, *size, seed);
        fs::write(dir.path().join(name), &bytes).unwrap();
        set_files.push(FileEntry {
            name: (*name).to_owned(),
            bytes: bytes.len() as u64,
            hash: String::new(),
            rows: 0,
            changes: None,
            license: *name == "License.csv",
        });
    }
    Snapshot {
        set: FileSet {
            snapshot_id: format!("s{seed}"),
            created_at: "2026-11-28T00:00:00Z".into(),
            dir: dir.path().to_path_buf(),
            files: set_files,
        },
        _dir: dir,
    }
}

/// What the remote folder must hold after delivering `snap`.
fn expected(snap: &Snapshot, include_license: bool) -> BTreeMap<String, Vec<u8>> {
    snap.set
        .files_for(include_license)
        .map(|f| {
            (
                f.name.clone(),
                fs::read(snap.set.dir.join(&f.name)).unwrap(),
            )
        })
        .collect()
}

fn key_config(s: &Server, dir: &RemoteDir) -> SftpConfig {
    SftpConfig {
        name: "t".into(),
        host: s.host.clone(),
        port: s.port,
        username: s.user.clone(),
        private_key_file: Some(s.key_ed25519.clone()),
        known_hosts_file: Some(s.known_hosts.clone()),
        remote_dir: dir.remote.clone(),
        connect_timeout_secs: 20,
        request_timeout_secs: 30,
        ..Default::default()
    }
}

fn dest(cfg: SftpConfig) -> SftpDestination {
    SftpDestination::new(cfg).unwrap()
}

fn assert_permanent(err: &DeliverError, needles: &[&str]) {
    eprintln!("permanent error as expected: {err}");
    assert!(err.is_permanent(), "expected a permanent error, got: {err}");
    for n in needles {
        assert!(err.to_string().contains(n), "error lacks {n:?}: {err}");
    }
}

const SDS_SET: &[(&str, usize)] = &[
    ("School.csv", 120),
    ("Section.csv", 70_000),
    ("Student.csv", 3 * 1024 * 1024 + 17),
    ("StudentEnrollment.csv", 0),
    ("Teacher.csv", 33_000),
    ("License.csv", 50),
];

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn key_auth_ed25519_set_is_byte_identical_after_upload() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "ed25519");
    let snap = snapshot(SDS_SET, 1);
    let d = dest(key_config(&s, &dir));
    assert_eq!(d.kind(), "sftp");
    d.deliver(&snap.set).await.unwrap();
    // Byte-identical, License.csv left out (include_license_file = false), no temporary files.
    assert_eq!(dir.contents(), expected(&snap, false));

    let with_license = dest(SftpConfig {
        include_license_file: true,
        ..key_config(&s, &dir)
    });
    with_license.deliver(&snap.set).await.unwrap();
    assert_eq!(dir.contents(), expected(&snap, true));
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn key_auth_rsa_ecdsa_and_passphrase_protected_key() {
    let Some(s) = server() else { return };
    for (label, key, passphrase) in [
        ("rsa", &s.key_rsa, None),
        ("ecdsa", &s.key_ecdsa, None),
        ("encrypted", &s.key_encrypted, Some(&s.passphrase_file)),
    ] {
        let dir = RemoteDir::new(&s, &format!("key-{label}"));
        let snap = snapshot(&[("School.csv", 1000), ("Student.csv", 100_000)], 2);
        let cfg = SftpConfig {
            private_key_file: Some(key.clone()),
            private_key_passphrase_file: passphrase.cloned(),
            ..key_config(&s, &dir)
        };
        dest(cfg)
            .deliver(&snap.set)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(dir.contents(), expected(&snap, false), "{label}");
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn encrypted_key_without_or_with_wrong_passphrase_is_a_permanent_config_error() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "badpass");
    let err = SftpDestination::new(SftpConfig {
        private_key_file: Some(s.key_encrypted.clone()),
        ..key_config(&s, &dir)
    })
    .unwrap_err();
    assert_permanent(
        &err,
        &[
            "private_key_file",
            "encrypted",
            "private_key_passphrase_file",
        ],
    );
    let err = SftpDestination::new(SftpConfig {
        private_key_file: Some(s.key_encrypted.clone()),
        private_key_passphrase: Some("wrong-passphrase-xyz".into()),
        ..key_config(&s, &dir)
    })
    .unwrap_err();
    assert_permanent(&err, &["private_key_file", "passphrase"]);
    assert!(!err.to_string().contains("wrong-passphrase-xyz"), "{err}");
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn password_auth_delivers() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "password");
    let snap = snapshot(SDS_SET, 3);
    let cfg = SftpConfig {
        private_key_file: None,
        password_file: Some(s.password_file.clone()),
        ..key_config(&s, &dir)
    };
    dest(cfg).deliver(&snap.set).await.unwrap();
    assert_eq!(dir.contents(), expected(&snap, false));
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn wrong_password_and_unknown_key_are_permanent_auth_failures() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "badauth");
    let snap = snapshot(&[("School.csv", 10)], 4);
    let cfg = SftpConfig {
        private_key_file: None,
        password: Some("not-the-password-42".into()),
        ..key_config(&s, &dir)
    };
    let err = dest(cfg).deliver(&snap.set).await.unwrap_err();
    assert_permanent(&err, &["authentication failed", &s.user, "password"]);
    assert!(!err.to_string().contains("not-the-password-42"), "{err}");

    let cfg = SftpConfig {
        private_key_file: Some(s.key_unknown.clone()),
        ..key_config(&s, &dir)
    };
    let err = dest(cfg).check().await.unwrap_err();
    assert_permanent(
        &err,
        &["authentication failed", "publickey", "authorized_keys"],
    );
    assert!(dir.contents().is_empty());
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn hashed_known_hosts_and_pinned_fingerprint_are_accepted() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "hashed");
    let snap = snapshot(&[("School.csv", 500), ("Teacher.csv", 40_000)], 5);
    assert!(
        fs::read_to_string(&s.known_hosts_hashed)
            .unwrap()
            .starts_with("|1|")
    );
    let cfg = SftpConfig {
        known_hosts_file: Some(s.known_hosts_hashed.clone()),
        ..key_config(&s, &dir)
    };
    dest(cfg).deliver(&snap.set).await.unwrap();
    assert_eq!(dir.contents(), expected(&snap, false));

    let cfg = SftpConfig {
        known_hosts_file: None,
        host_key_fingerprint: Some(s.fingerprint.clone()),
        ..key_config(&s, &dir)
    };
    dest(cfg).check().await.unwrap();
}

/// The host key line the server's key must appear as in known_hosts.
fn server_key_line(s: &Server) -> String {
    let text = fs::read_to_string(&s.known_hosts).unwrap();
    text.lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .to_owned()
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn wrong_or_unknown_host_key_is_refused_as_permanent_and_says_how_to_trust() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "hostkey");
    let snap = snapshot(&[("School.csv", 10)], 6);

    // A known_hosts entry of the same type with another key: a changed key.
    let cfg = SftpConfig {
        known_hosts_file: Some(s.known_hosts_wrong.clone()),
        ..key_config(&s, &dir)
    };
    let err = dest(cfg).deliver(&snap.set).await.unwrap_err();
    assert_permanent(
        &err,
        &[
            "HOST KEY CHANGED",
            &s.fingerprint,
            "line 1",
            &server_key_line(&s),
        ],
    );

    // No entry at all: unknown; the message gives the exact line to add, or the pin.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let cfg = SftpConfig {
        known_hosts_file: Some(empty.path().to_path_buf()),
        ..key_config(&s, &dir)
    };
    let err = dest(cfg).check().await.unwrap_err();
    let line = server_key_line(&s);
    assert!(
        line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", s.port)),
        "{line}"
    );
    assert_permanent(
        &err,
        &[
            "not in known_hosts_file",
            &s.fingerprint,
            &line,
            "host_key_fingerprint",
        ],
    );

    // A wrong pinned fingerprint.
    let cfg = SftpConfig {
        known_hosts_file: None,
        host_key_fingerprint: Some("SHA256:LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE".into()),
        ..key_config(&s, &dir)
    };
    let err = dest(cfg).deliver(&snap.set).await.unwrap_err();
    assert_permanent(
        &err,
        &[
            "HOST KEY MISMATCH",
            &format!("host_key_fingerprint = \"{}\"", s.fingerprint),
        ],
    );

    // Nothing reached the server.
    assert!(dir.contents().is_empty());
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn existing_files_are_overwritten_with_posix_rename_and_with_remove_then_rename() {
    let Some(s) = server() else { return };
    for plain in [false, true] {
        let dir = RemoteDir::new(
            &s,
            if plain {
                "overwrite-plain"
            } else {
                "overwrite-posix"
            },
        );
        let old = snapshot(SDS_SET, 7);
        let new = snapshot(
            &[
                ("School.csv", 90),
                ("Section.csv", 200_000),
                ("Student.csv", 12),
                ("Teacher.csv", 5),
            ],
            8,
        );
        // Files the receiver already has, including one not in the new set.
        fs::write(
            dir.local.join("Teacher.csv"),
            b"old teacher file, longer than the new one",
        )
        .unwrap();
        fs::write(dir.local.join("Other.txt"), b"not ours").unwrap();
        let d = if plain {
            dest(key_config(&s, &dir)).without_posix_rename()
        } else {
            dest(key_config(&s, &dir))
        };
        d.deliver(&old.set).await.unwrap();
        d.deliver(&new.set).await.unwrap();
        let mut want = expected(&old, false);
        want.extend(expected(&new, false));
        want.insert("Other.txt".into(), b"not ours".to_vec());
        assert_eq!(dir.contents(), want, "plain rename: {plain}");
        assert_eq!(dir.contents()["Student.csv"].len(), 12);
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn temporaries_of_a_failed_attempt_are_removed_and_check_leaves_nothing() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "stale");
    fs::write(
        dir.local.join(".sds-sync-tmp.Student.csv.part"),
        b"half a file",
    )
    .unwrap();
    fs::write(
        dir.local.join(".sds-sync-tmp.Gone.csv.part"),
        b"half another",
    )
    .unwrap();
    let d = dest(key_config(&s, &dir));
    d.check().await.unwrap();
    assert_eq!(
        dir.contents().len(),
        2,
        "check must not change anything but its probe"
    );
    let snap = snapshot(&[("Student.csv", 5000)], 9);
    d.deliver(&snap.set).await.unwrap();
    assert_eq!(dir.contents(), expected(&snap, false));
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn read_only_and_missing_remote_dir_are_permanent() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "readonly");
    let snap = snapshot(&[("School.csv", 10)], 10);
    let cfg = SftpConfig {
        remote_dir: s.readonly_dir.clone(),
        ..key_config(&s, &dir)
    };
    let d = dest(cfg);
    let err = d.deliver(&snap.set).await.unwrap_err();
    assert_permanent(&err, &["permission denied", &s.readonly_dir]);
    let err = d.check().await.unwrap_err();
    assert_permanent(&err, &["permission denied", "probe"]);

    let missing = format!("{}/does-not-exist", dir.remote);
    let cfg = SftpConfig {
        remote_dir: missing.clone(),
        ..key_config(&s, &dir)
    };
    let d = dest(cfg);
    let err = d.deliver(&snap.set).await.unwrap_err();
    assert_permanent(&err, &["does not exist", &missing]);
    let err = d.check().await.unwrap_err();
    assert_permanent(&err, &["does not exist"]);
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn refused_connection_and_silent_server_are_retryable() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "refused");
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = dest(SftpConfig {
        port,
        ..key_config(&s, &dir)
    })
    .check()
    .await
    .unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");

    // A server that accepts TCP but never speaks SSH: the connect timeout fires.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let started = Instant::now();
    let err = dest(SftpConfig {
        port,
        connect_timeout_secs: 1,
        ..key_config(&s, &dir)
    })
    .check()
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!err.is_permanent(), "{err}");
    assert!(err.to_string().contains("connect_timeout_secs"), "{err}");
    holder.abort();
}

/// A private sshd with the test server's config on its own port.
struct PrivateSshd {
    child: Option<Child>,
    port: u16,
    server: Server,
    log: PathBuf,
    /// More `-o` options for sshd.
    options: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl PrivateSshd {
    fn start(s: &Server) -> PrivateSshd {
        Self::start_with(s, Vec::new())
    }

    fn start_with(s: &Server, options: Vec<String>) -> PrivateSshd {
        let tmp = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut me = PrivateSshd {
            child: None,
            port,
            server: s.clone(),
            log: tmp.path().join("sshd.log"),
            options,
            _tmp: tmp,
        };
        me.spawn();
        me
    }

    fn spawn(&mut self) {
        let pid_file = self.log.with_file_name("sshd.pid");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.server.sshd)
            .args(["-D", "-e", "-f"])
            .arg(&self.server.sshd_config)
            .args([
                "-o",
                &format!("Port={}", self.port),
                "-o",
                &format!("PidFile={}", pid_file.display()),
            ])
            .args(self.options.iter().flat_map(|o| ["-o", o.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a private sshd (needs root)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private sshd did not listen: {}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server the way a service manager does: the listener and every per-connection
    /// process (sshd forks one per client, in its own session, and a plain SIGTERM to the
    /// listener would leave open sessions running).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pids = descendants(child.id());
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(|p| p.to_string()))
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Field 4 is the parent pid; field 2 (the command) may hold spaces but ends with ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn server_stopped_mid_upload_leaves_no_partial_file_and_a_retry_completes() {
    let Some(s) = server() else { return };
    let mut sshd = PrivateSshd::start(&s);
    let dir = RemoteDir::new(&s, "stopped");
    let cfg = SftpConfig {
        port: sshd.port,
        known_hosts_file: None,
        host_key_fingerprint: Some(s.fingerprint.clone()),
        connect_timeout_secs: 10,
        request_timeout_secs: 10,
        ..key_config(&s, &dir)
    };
    let d = std::sync::Arc::new(dest(cfg));

    // The receiver already has the previous snapshot.
    let old = snapshot(
        &[
            ("School.csv", 100),
            ("Student.csv", 2000),
            ("Teacher.csv", 300),
        ],
        11,
    );
    d.deliver(&old.set).await.unwrap();
    assert_eq!(dir.contents(), expected(&old, false));

    // The new one has a large file; stop the server once part of it has arrived.
    let new = snapshot(
        &[
            ("School.csv", 150),
            ("Student.csv", 96 * 1024 * 1024),
            ("Teacher.csv", 400),
        ],
        12,
    );
    let delivery = {
        let d = d.clone();
        let set = new.set.clone();
        tokio::spawn(async move { d.deliver(&set).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let big_tmp = loop {
        if let Some(tmp) = dir.temp_of("Student.csv")
            && fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0) >= 1024 * 1024
        {
            break tmp;
        }
        assert!(
            !delivery.is_finished(),
            "the upload finished before the server could be stopped"
        );
        assert!(Instant::now() < deadline, "upload never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    sshd.stop();
    let partial = fs::metadata(&big_tmp).map(|m| m.len()).unwrap_or(0);
    // Bounded by request_timeout_secs (10 s here) even if the client did not see the cut.
    let err = tokio::time::timeout(Duration::from_secs(30), delivery)
        .await
        .expect("a delivery to a stopped server must fail within its timeouts")
        .unwrap()
        .unwrap_err();
    eprintln!("server stopped after {partial} bytes of Student.csv had arrived: {err}");
    assert!(
        !err.is_permanent(),
        "a stopped server must be retryable: {err}"
    );
    assert!(
        partial < 96 * 1024 * 1024,
        "stopped too late: {partial} bytes had arrived"
    );

    // Every final name still holds the old, complete file; only a temporary name holds the part.
    let after = dir.contents();
    for (name, bytes) in expected(&old, false) {
        assert_eq!(after[&name], bytes, "{name} changed or is partial");
    }
    assert!(
        after
            .keys()
            .all(|n| expected(&old, false).contains_key(n) || is_ours(n)),
        "{:?}",
        after.keys()
    );

    // While it is down, an attempt fails as retryable.
    let err = d.deliver(&new.set).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");

    // Back up: the retry completes, and leaves exactly the new files.
    sshd.spawn();
    d.deliver(&new.set).await.unwrap();
    assert_eq!(dir.contents(), expected(&new, false));
}

/// Issue 15: SHA-1 `ssh-rsa` host key signatures are refused. A private sshd whose only host key
/// is RSA and that signs with `ssh-rsa` only cannot be reached; the same key signing with
/// rsa-sha2-256 can.
#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn sha1_rsa_host_key_signatures_are_refused_and_rsa_sha2_accepted() {
    let Some(s) = server() else { return };
    let keys = tempfile::tempdir().unwrap();
    let host_key = keys.path().join("ssh_host_rsa_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&host_key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let public = fs::read_to_string(host_key.with_extension("pub")).unwrap();
    let dir = RemoteDir::new(&s, "sha1");
    for (algorithms, accepted) in [("ssh-rsa", false), ("rsa-sha2-256", true)] {
        let sshd = PrivateSshd::start_with(
            &s,
            vec![
                format!("HostKey={}", host_key.display()),
                format!("HostKeyAlgorithms={algorithms}"),
            ],
        );
        let known_hosts = keys.path().join(format!("known_hosts_{algorithms}"));
        let mut fields = public.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        fs::write(&known_hosts, line).unwrap();
        let d = dest(SftpConfig {
            port: sshd.port,
            known_hosts_file: Some(known_hosts),
            ..key_config(&s, &dir)
        });
        let result = d.check().await;
        if accepted {
            result.unwrap_or_else(|e| panic!("rsa-sha2-256 must work: {e}"));
        } else {
            let err = result.expect_err("an ssh-rsa (SHA-1) only server must be refused");
            assert_permanent(&err, &["no common", "SHA-1", "rsa-sha2-256"]);
        }
    }
    assert!(dir.contents().is_empty());
}

/// A server that never finishes is cut by `delivery_timeout_secs`, however patient the per-step
/// limits are.
#[tokio::test]
#[cfg_attr(
    sds_no_sftp_server,
    ignore = "SFTP test server not set up: run scripts/test (it starts the servers), or scripts/services/sftp.sh start and source its env"
)]
async fn delivery_timeout_bounds_the_whole_delivery() {
    let Some(s) = server() else { return };
    let dir = RemoteDir::new(&s, "overall");
    // Accepts TCP and never speaks SSH; the connect limit (30 s) would wait far longer.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let d = dest(SftpConfig {
        port,
        connect_timeout_secs: 30,
        delivery_timeout_secs: 1,
        ..key_config(&s, &dir)
    });
    let snap = snapshot(&[("School.csv", 10)], 13);
    let started = Instant::now();
    let err = d.deliver(&snap.set).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message.contains("delivery_timeout_secs"), "{err}");
    let err = d.check().await.unwrap_err();
    assert!(err.message.contains("delivery_timeout_secs"), "{err}");
    holder.abort();
}
