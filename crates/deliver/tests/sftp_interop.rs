//! The SFTP destination against OpenSSH servers configured the ways district servers are
//! (issue 16), started by `scripts/services/ssh-interop.sh` (see
//! /tmp/sds-test-services/ssh-interop.env): one with RSA, ECDSA and Ed25519 host keys, one with
//! RSA and ECDSA only, and one that takes passwords only through PAM keyboard-interactive.

use sds_core::FileEntry;
use sds_deliver::sftp::{SftpConfig, SftpDestination};
use sds_deliver::{DeliverError, Destination, FileSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

struct Env {
    host: String,
    allkeys_port: u16,
    rsaecdsa_port: u16,
    kbdint_port: u16,
    user: String,
    password_file: PathBuf,
    key: PathBuf,
    fp_rsa: String,
    fp_ecdsa: String,
    fp_ed25519: String,
    kh_rsa: PathBuf,
    kh_ecdsa: PathBuf,
    kh_ed25519: PathBuf,
    upload_dir: String,
    upload_local: PathBuf,
}

/// The servers' coordinates. These tests are ignored (crates/deliver/build.rs) when the service
/// is not set up, so reaching here without it is a failure, never a silent pass.
fn env() -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let get = |k: &str| {
        std::env::var(format!("SDS_TEST_SSHI_{k}")).unwrap_or_else(|_| {
            panic!("SDS_TEST_SSHI_{k} is not set: run scripts/services/ssh-interop.sh start and source /tmp/sds-test-services/ssh-interop.env (scripts/test does both)")
        })
    };
    Env {
        host: get("HOST"),
        allkeys_port: get("ALLKEYS_PORT").parse().unwrap(),
        rsaecdsa_port: get("RSAECDSA_PORT").parse().unwrap(),
        kbdint_port: get("KBDINT_PORT").parse().unwrap(),
        user: get("USER"),
        password_file: get("PASSWORD_FILE").into(),
        key: get("KEY").into(),
        fp_rsa: get("FP_RSA"),
        fp_ecdsa: get("FP_ECDSA"),
        fp_ed25519: get("FP_ED25519"),
        kh_rsa: get("KNOWN_HOSTS_RSA").into(),
        kh_ecdsa: get("KNOWN_HOSTS_ECDSA").into(),
        kh_ed25519: get("KNOWN_HOSTS_ED25519").into(),
        upload_dir: get("UPLOAD_DIR"),
        upload_local: get("UPLOAD_LOCAL").into(),
    }
}

/// A fresh folder under the server's upload folder, removed afterwards.
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
        let local = env.upload_local.join(&name);
        std::fs::create_dir_all(&local).unwrap();
        // The sftp user is not the test's user: let it write here.
        let _ = std::process::Command::new("chmod")
            .arg("777")
            .arg(&local)
            .status();
        RemoteDir {
            local,
            remote: format!("{}/{name}", env.upload_dir),
        }
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.local)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for RemoteDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.local);
    }
}

fn set(dir: &Path) -> FileSet {
    let data = "SIS ID,Name\r\n1,Zoë\r\n";
    std::fs::write(dir.join("School.csv"), data).unwrap();
    FileSet {
        snapshot_id: "interop".into(),
        created_at: "2026-11-28T02:00:00Z".into(),
        dir: dir.to_path_buf(),
        files: vec![FileEntry {
            name: "School.csv".into(),
            bytes: data.len() as u64,
            hash: String::new(),
            rows: 1,
            changes: None,
            license: false,
        }],
    }
}

fn base(env: &Env, port: u16, dir: &RemoteDir) -> SftpConfig {
    SftpConfig {
        name: "interop".into(),
        host: env.host.clone(),
        port,
        username: env.user.clone(),
        private_key_file: Some(env.key.clone()),
        remote_dir: dir.remote.clone(),
        connect_timeout_secs: 20,
        request_timeout_secs: 30,
        ..Default::default()
    }
}

async fn deliver(cfg: SftpConfig) -> Result<(), DeliverError> {
    let snap = tempfile::tempdir().unwrap();
    let dest = SftpDestination::new(cfg)?;
    dest.deliver(&set(snap.path())).await
}

#[tokio::test]
#[cfg_attr(
    sds_no_ssh_interop_server,
    ignore = "SSH interop test servers not set up: run scripts/test (it starts them), or scripts/services/ssh-interop.sh start and source its env"
)]
async fn a_pin_of_any_host_key_type_works() {
    let env = env();
    for (port, pins) in [
        (
            env.allkeys_port,
            vec![
                ("rsa", &env.fp_rsa),
                ("ecdsa", &env.fp_ecdsa),
                ("ed25519", &env.fp_ed25519),
            ],
        ),
        (
            env.rsaecdsa_port,
            vec![("rsa", &env.fp_rsa), ("ecdsa", &env.fp_ecdsa)],
        ),
    ] {
        for (label, fp) in pins {
            let dir = RemoteDir::new(&env, &format!("pin-{label}"));
            let cfg = SftpConfig {
                host_key_fingerprint: Some(fp.clone()),
                ..base(&env, port, &dir)
            };
            deliver(cfg)
                .await
                .unwrap_or_else(|e| panic!("port {port}, pinned {label} key: {e}"));
            assert_eq!(dir.files(), ["School.csv"], "port {port}, {label}");
        }
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_ssh_interop_server,
    ignore = "SSH interop test servers not set up: run scripts/test (it starts them), or scripts/services/ssh-interop.sh start and source its env"
)]
async fn a_known_hosts_file_with_one_key_type_works() {
    let env = env();
    for (port, files) in [
        (
            env.allkeys_port,
            vec![
                ("rsa", &env.kh_rsa),
                ("ecdsa", &env.kh_ecdsa),
                ("ed25519", &env.kh_ed25519),
            ],
        ),
        (
            env.rsaecdsa_port,
            vec![("rsa", &env.kh_rsa), ("ecdsa", &env.kh_ecdsa)],
        ),
    ] {
        for (label, kh) in files {
            let dir = RemoteDir::new(&env, &format!("kh-{label}"));
            let cfg = SftpConfig {
                known_hosts_file: Some(kh.clone()),
                ..base(&env, port, &dir)
            };
            deliver(cfg)
                .await
                .unwrap_or_else(|e| panic!("port {port}, known_hosts with {label} only: {e}"));
            assert_eq!(dir.files(), ["School.csv"], "port {port}, {label}");
        }
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_ssh_interop_server,
    ignore = "SSH interop test servers not set up: run scripts/test (it starts them), or scripts/services/ssh-interop.sh start and source its env"
)]
async fn a_pin_matching_no_host_key_names_every_offered_key() {
    let env = env();
    // The Ed25519 key exists, but not on this server (RSA + ECDSA only).
    let dir = RemoteDir::new(&env, "pin-none");
    let cfg = SftpConfig {
        host_key_fingerprint: Some(env.fp_ed25519.clone()),
        ..base(&env, env.rsaecdsa_port, &dir)
    };
    let e = deliver(cfg).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    let m = e.to_string();
    for needle in [
        "HOST KEY MISMATCH",
        env.fp_ed25519.as_str(),
        env.fp_rsa.as_str(),
        env.fp_ecdsa.as_str(),
        "rsa",
        "ecdsa-sha2-nistp256",
    ] {
        assert!(m.contains(needle), "lacks {needle:?}: {m}");
    }
    assert!(dir.files().is_empty());

    // known_hosts listing only a type the server lacks: unknown, with the keys it has.
    let cfg = SftpConfig {
        known_hosts_file: Some(env.kh_ed25519.clone()),
        ..base(&env, env.rsaecdsa_port, &dir)
    };
    let e = deliver(cfg).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    let m = e.to_string();
    assert!(m.contains("ssh-ed25519"), "{m}");
    assert!(
        m.contains(&env.fp_rsa) || m.contains(&env.fp_ecdsa),
        "names no key the server has: {m}"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_ssh_interop_server,
    ignore = "SSH interop test servers not set up: run scripts/test (it starts them), or scripts/services/ssh-interop.sh start and source its env"
)]
async fn password_through_pam_keyboard_interactive() {
    let env = env();
    let dir = RemoteDir::new(&env, "kbdint");
    let cfg = SftpConfig {
        private_key_file: None,
        password_file: Some(env.password_file.clone()),
        host_key_fingerprint: Some(env.fp_ed25519.clone()),
        ..base(&env, env.kbdint_port, &dir)
    };
    deliver(cfg.clone()).await.unwrap();
    assert_eq!(dir.files(), ["School.csv"]);
    SftpDestination::new(cfg).unwrap().check().await.unwrap();

    // A wrong password fails permanently and says which methods were tried.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "not-the-password\n").unwrap();
    let cfg = SftpConfig {
        private_key_file: None,
        password_file: Some(bad.path().to_path_buf()),
        host_key_fingerprint: Some(env.fp_ed25519.clone()),
        ..base(&env, env.kbdint_port, &dir)
    };
    let e = deliver(cfg).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    let m = e.to_string();
    assert!(m.contains("keyboard-interactive"), "{m}");
    assert!(!m.contains("not-the-password"), "{m}");
}
