//! The email destination against a real SMTP server (the aiosmtpd sink started by
//! `scripts/services/email.sh start`, which writes `/tmp/sds-test-services/email.env`).
//! Every message the sink accepts is stored as `.eml` + `.json`; each test uses its own
//! recipient address and finds its message by it, so tests run in parallel without colliding.
//! Tests that need a server to be down, stall or cut the connection use their own private sink
//! instance, listener or proxy, never the shared one.

use mail_parser::{MessageParser, MimeHeaders};
use sds_core::{FileEntry, RowCounts};
use sds_deliver::email::{EmailAttach, EmailConfig, EmailDestination, EmailTls};
use sds_deliver::{Destination, FileSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

struct Env {
    host: String,
    port: u16,
    smtps_port: u16,
    plain_port: u16,
    user: String,
    password: String,
    password_file: PathBuf,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    out: PathBuf,
    plain_out: PathBuf,
    python: PathBuf,
    sink: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// The test server's coordinates. Tests that need it are ignored when it is not set up (see
/// crates/deliver/build.rs), so a missing server here is a failure.
fn env() -> Option<Env> {
    static PROVIDER: Once = Once::new();
    // As main() does in the daemon; Err means another test installed it already.
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let var = |k: &str| std::env::var(k).ok();
    let Some(host) = var("SDS_TEST_SMTP_HOST") else {
        let msg = "SMTP test server not set up (SDS_TEST_SMTP_HOST unset): run `scripts/services/email.sh start` \
                   and source /tmp/sds-test-services/email.env";
        // Tests that need it are ignored when it is not set up (crates/deliver/build.rs): one
        // that runs without it fails rather than passing without having tested anything.
        panic!("{msg}");
    };
    let get = |k: &str| {
        var(k).unwrap_or_else(|| panic!("{k} is not set; re-run scripts/services/email.sh start"))
    };
    let port = |k: &str| get(k).parse::<u16>().unwrap_or_else(|e| panic!("{k}: {e}"));
    Some(Env {
        host,
        port: port("SDS_TEST_SMTP_PORT"),
        smtps_port: port("SDS_TEST_SMTPS_PORT"),
        plain_port: port("SDS_TEST_SMTP_PLAIN_PORT"),
        user: get("SDS_TEST_SMTP_USER"),
        password: get("SDS_TEST_SMTP_PASSWORD"),
        password_file: get("SDS_TEST_SMTP_PASSWORD_FILE").into(),
        ca_file: get("SDS_TEST_SMTP_CA_FILE").into(),
        other_ca_file: get("SDS_TEST_SMTP_OTHER_CA_FILE").into(),
        out: get("SDS_TEST_SMTP_OUT").into(),
        plain_out: get("SDS_TEST_SMTP_PLAIN_OUT").into(),
        python: get("SDS_TEST_SMTP_PYTHON").into(),
        sink: get("SDS_TEST_SMTP_SINK").into(),
        cert: get("SDS_TEST_SMTP_CERT").into(),
        key: get("SDS_TEST_SMTP_KEY").into(),
    })
}

/// A recipient address no other test (or earlier run) uses.
fn unique_rcpt(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{}-{nanos}-{}@example.test",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// STARTTLS + AUTH against the shared sink, files attached.
fn base_cfg(env: &Env, rcpt: &str) -> EmailConfig {
    let mut c = EmailConfig::new(
        "mail-test",
        env.host.clone(),
        "SDS Export <sds@example.test>",
        vec![rcpt.to_owned()],
    );
    c.smtp_port = Some(env.port);
    c.tls = EmailTls::Starttls;
    c.username = Some(env.user.clone());
    c.password = Some(env.password.clone().into());
    c.ca_file = Some(env.ca_file.clone());
    c.connect_timeout_secs = 5;
    c.timeout_secs = 20;
    c
}

/// One snapshot file to write: name, content, rows, changes, licence flag.
struct F {
    name: &'static str,
    data: Vec<u8>,
    rows: u64,
    changes: Option<(u64, u64, u64)>,
    license: bool,
}

fn f(
    name: &'static str,
    data: impl Into<Vec<u8>>,
    rows: u64,
    changes: Option<(u64, u64, u64)>,
) -> F {
    F {
        name,
        data: data.into(),
        rows,
        changes,
        license: false,
    }
}

fn make_set(dir: &Path, id: &str, files: Vec<F>) -> FileSet {
    let mut set_files = Vec::new();
    for file in files {
        std::fs::write(dir.join(file.name), &file.data).unwrap();
        set_files.push(FileEntry {
            name: file.name.into(),
            bytes: file.data.len() as u64,
            hash: String::new(),
            rows: file.rows,
            changes: file.changes.map(|(added, removed, changed)| RowCounts {
                added,
                removed,
                changed,
            }),
            license: file.license,
        });
    }
    FileSet {
        snapshot_id: id.into(),
        created_at: "2026-11-28T02:00:00Z".into(),
        dir: dir.to_path_buf(),
        files: set_files,
    }
}

/// SDS-like CSV with CRLF line ends, a BOM-free UTF-8 name with accents, and `rows` data rows.
fn csv(header: &str, rows: usize) -> Vec<u8> {
    let mut s = format!("{header}\r\n");
    for i in 0..rows {
        s.push_str(&format!(
            "{i:06},Zoë Müller-{i},{},s{i}@school.example\r\n",
            i % 13
        ));
    }
    s.into_bytes()
}

/// Bytes that deflate cannot shrink (xorshift), for the zip size limit.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The stored message for `rcpt` in `out` (raw .eml and its .json metadata), waiting for it.
fn wait_message(out: &Path, rcpt: &str) -> (Vec<u8>, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = find_message(out, rcpt) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no message for {rcpt} in {}",
            out.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_message(out: &Path, rcpt: &str) -> Option<(Vec<u8>, serde_json::Value)> {
    for entry in std::fs::read_dir(out).ok()? {
        let path = entry.ok()?.path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        // The sink writes the .json before it renames the .eml into place.
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).ok()?)
                .ok()?;
        let to_us = meta["rcpt_tos"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r.as_str() == Some(rcpt)));
        if to_us {
            return Some((std::fs::read(&path).ok()?, meta));
        }
    }
    None
}

/// name -> (content type, bytes) of every attachment.
fn attachments(eml: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let msg = MessageParser::default()
        .parse(eml)
        .expect("stored message parses");
    msg.attachments()
        .map(|p| {
            let ct = p.content_type().expect("attachment has a content type");
            let ct = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            (
                p.attachment_name()
                    .expect("attachment has a name")
                    .to_owned(),
                ct,
                p.contents().to_vec(),
            )
        })
        .collect()
}

fn body_and_subject(eml: &[u8]) -> (String, String) {
    let msg = MessageParser::default()
        .parse(eml)
        .expect("stored message parses");
    (
        msg.body_text(0).unwrap().into_owned(),
        msg.subject().unwrap().to_owned(),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "private sink did not come up on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sink instance of this test alone (STARTTLS + AUTH, like the shared one), killed on drop.
struct PrivateSink {
    child: Child,
    out: tempfile::TempDir,
}

impl PrivateSink {
    fn start(env: &Env, port: u16) -> PrivateSink {
        let out = tempfile::tempdir().unwrap();
        let child = Command::new(&env.python)
            .arg(&env.sink)
            .arg(out.path())
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", port.to_string())
            .env("SMTP_CERT", &env.cert)
            .env("SMTP_KEY", &env.key)
            .env("SMTP_REQUIRE_TLS", "1")
            .env("SMTP_USER", &env.user)
            .env("SMTP_PASS", &env.password)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start private sink");
        wait_port(port);
        PrivateSink { child, out }
    }
}

impl Drop for PrivateSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_same_files(got: &[(String, String, Vec<u8>)], set: &FileSet, names: &[&str]) {
    let mut got_names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    got_names.sort();
    let mut want: Vec<&str> = names.to_vec();
    want.sort();
    assert_eq!(got_names, want);
    for (name, ct, data) in got {
        assert_eq!(ct, "text/csv", "{name}");
        let want = std::fs::read(set.dir.join(name)).unwrap();
        assert!(
            data == &want,
            "{name}: attachment differs from the snapshot file ({} vs {} bytes)",
            data.len(),
            want.len()
        );
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn starttls_attachments_are_byte_identical_to_the_snapshot() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut lic = f(
        "License.csv",
        "Display Name,User Principal Name,Account Sku Id\r\n",
        0,
        None,
    );
    lic.license = true;
    let set = make_set(
        dir.path(),
        "snap-1",
        vec![
            f(
                "School.csv",
                "SIS ID,Name\r\n001,École Nord\r\n002,South\r\n",
                2,
                Some((1, 0, 0)),
            ),
            // LF-only and no final newline: must survive as is (no CRLF normalisation).
            f(
                "Section.csv",
                "SIS ID,School SIS ID\n1,001\n2,002",
                2,
                Some((0, 0, 1)),
            ),
            f(
                "Student.csv",
                csv("SIS ID,Name,Grade,Username", 3000),
                3000,
                Some((12, 3, 40)),
            ),
            lic,
        ],
    );
    let rcpt = unique_rcpt("files");
    let dest = EmailDestination::new(base_cfg(&env, &rcpt)).unwrap();
    assert_eq!(dest.kind(), "email");
    dest.deliver(&set).await.unwrap();

    let (eml, meta) = wait_message(&env.out, &rcpt);
    assert_eq!(meta["tls"], serde_json::json!(true));
    assert_eq!(meta["auth_login"], serde_json::json!(env.user));
    assert_eq!(meta["mail_from"], serde_json::json!("sds@example.test"));
    // include_license_file = false: the licence file stays home.
    assert_same_files(
        &attachments(&eml),
        &set,
        &["School.csv", "Section.csv", "Student.csv"],
    );
    let (_, subject) = body_and_subject(&eml);
    assert_eq!(
        subject,
        "SDS export 2026-11-28T02:00:00Z: 13 added, 3 removed, 41 changed"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn implicit_tls_with_password_file_and_licence_file() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut lic = f(
        "License.csv",
        "Display Name,User Principal Name,Account Sku Id\r\nA,a@x,sku\r\n",
        1,
        None,
    );
    lic.license = true;
    let set = make_set(
        dir.path(),
        "snap-2",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None), lic],
    );
    let rcpt = unique_rcpt("implicit");
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.tls = EmailTls::Implicit;
    cfg.smtp_port = Some(env.smtps_port);
    cfg.password = None;
    cfg.password_file = Some(env.password_file.clone());
    cfg.include_license_file = true;
    let dest = EmailDestination::new(cfg).unwrap();
    dest.check().await.unwrap();
    dest.deliver(&set).await.unwrap();

    let (eml, meta) = wait_message(&env.out, &rcpt);
    assert_eq!(meta["tls"], serde_json::json!(true));
    assert_eq!(meta["auth_login"], serde_json::json!(env.user));
    assert_same_files(&attachments(&eml), &set, &["School.csv", "License.csv"]);
}

/// The optional files of the full SDS formats travel like any other file, and the summary
/// counts them; `omit_files` leaves one out of the attachments and of the summary alike.
#[tokio::test]
async fn optional_files_are_attached_and_summarised_unless_omitted() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-full",
        vec![
            f(
                "orgs.csv",
                "sourcedId,name,type\r\n001,A,school\r\n",
                1,
                None,
            ),
            f(
                "academicSessions.csv",
                "sourcedId,title,type\r\nSY,Year,schoolYear\r\nS1,Fall,semester\r\n",
                2,
                Some((1, 0, 0)),
            ),
            f(
                "relationships.csv",
                "userSourcedId,relationshipUserSourcedId,relationshipRole\r\ns1,g1,parent\r\n",
                1,
                None,
            ),
        ],
    );
    let rcpt = unique_rcpt("omit");
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.omit_files = vec!["relationships.csv".into()];
    EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap();
    let (eml, _) = wait_message(&env.out, &rcpt);
    assert_same_files(
        &attachments(&eml),
        &set,
        &["orgs.csv", "academicSessions.csv"],
    );
    let (body, _) = body_and_subject(&eml);
    assert!(
        body.contains("academicSessions.csv: 2 rows; 1 added, 0 removed, 0 changed"),
        "{body}"
    );
    assert!(!body.contains("relationships.csv"), "{body}");
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn zip_attachment_holds_the_identical_files() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "2026-11-28T02:00:00Z#7",
        vec![
            f("School.csv", "SIS ID,Name\r\n001,École Nord\r\n", 1, None),
            f(
                "Student.csv",
                csv("SIS ID,Name,Grade,Username", 5000),
                5000,
                None,
            ),
            f("Empty.csv", "SIS ID\r\n", 0, None),
        ],
    );
    let rcpt = unique_rcpt("zip");
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.attach = EmailAttach::Zip;
    EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap();

    let (eml, _) = wait_message(&env.out, &rcpt);
    let atts = attachments(&eml);
    assert_eq!(atts.len(), 1, "one zip attachment");
    let (name, ct, zip_bytes) = &atts[0];
    assert_eq!(name, "sds-export-2026-11-28T02-00-00Z-7.zip");
    assert_eq!(ct, "application/zip");
    let raw: usize = set.files.iter().map(|f| f.bytes as usize).sum();
    assert!(
        zip_bytes.len() * 3 < raw,
        "deflate shrinks CSV: {} of {raw} bytes",
        zip_bytes.len()
    );
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.clone())).unwrap();
    assert_eq!(zip.len(), 3);
    for file in &set.files {
        let mut entry = zip.by_name(&file.name).unwrap();
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert!(
            data == std::fs::read(set.dir.join(&file.name)).unwrap(),
            "{} differs",
            file.name
        );
    }
    let (body, _) = body_and_subject(&eml);
    assert!(
        body.contains(
            "Attached: sds-export-2026-11-28T02-00-00Z-7.zip, holding the 3 files above."
        ),
        "{body}"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn body_and_subject_counts_match_the_diff() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "42",
        vec![
            f(
                "School.csv",
                "SIS ID,Name\r\n001,A\r\n002,B\r\n003,C\r\n",
                3,
                Some((1, 0, 2)),
            ),
            f(
                "Student.csv",
                csv("SIS ID,Name,Grade,Username", 120),
                120,
                Some((7, 5, 0)),
            ),
            f("Teacher.csv", "SIS ID,Name\r\n", 0, None),
        ],
    );
    let rcpt = unique_rcpt("body");
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.subject = "[{snapshot_id}] {summary} @ {snapshot_time}".into();
    EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap();

    let (eml, _) = wait_message(&env.out, &rcpt);
    let (body, subject) = body_and_subject(&eml);
    assert_eq!(
        subject,
        "[42] 8 added, 5 removed, 2 changed, 1 new file @ 2026-11-28T02:00:00Z"
    );
    let lines: Vec<&str> = body.lines().map(str::trim_end).collect();
    for want in [
        "Snapshot: 42",
        "Published: 2026-11-28T02:00:00Z",
        "Changes: 8 added, 5 removed, 2 changed, 1 new file",
        "Total: 123 rows in 3 files",
        "  School.csv: 3 rows; 1 added, 0 removed, 2 changed",
        "  Student.csv: 120 rows; 7 added, 5 removed, 0 changed",
        "  Teacher.csv: 0 rows; first snapshot",
    ] {
        assert!(
            lines.contains(&want),
            "missing line {want:?} in body:\n{body}"
        );
    }
    // Counts only: nothing from the files' rows gets into the text.
    assert!(
        !body.contains("Zoë") && !body.contains("@school.example"),
        "{body}"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn rejected_recipient_550_is_permanent_and_nothing_is_delivered() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-r",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None)],
    );
    let good = unique_rcpt("good");
    let mut cfg = base_cfg(&env, &good);
    cfg.to.push(unique_rcpt("reject"));
    let err = EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.destination, "mail-test");
    assert!(err.message.contains("550"), "{err}");
    assert!(
        err.message.contains(&format!("127.0.0.1:{}", env.port)),
        "{err}"
    );
    assert!(err.message.contains("check `from` and `to`"), "{err}");
    // One refused recipient fails the whole transaction: the good one got nothing either.
    std::thread::sleep(Duration::from_millis(300));
    assert!(find_message(&env.out, &good).is_none());
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn temporary_failure_451_is_retryable() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-t",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None)],
    );
    let err = EmailDestination::new(base_cfg(&env, &unique_rcpt("tempfail")))
        .unwrap()
        .deliver(&set)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message.contains("451"), "{err}");
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn wrong_password_535_is_permanent_in_check_and_deliver() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-p",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None)],
    );
    let mut cfg = base_cfg(&env, &unique_rcpt("badpw"));
    cfg.password = Some("wrong-password-xyz".to_owned().into());
    let dest = EmailDestination::new(cfg).unwrap();
    for err in [
        dest.check().await.unwrap_err(),
        dest.deliver(&set).await.unwrap_err(),
    ] {
        eprintln!("{err}");
        assert!(err.is_permanent(), "{err}");
        assert!(err.message.contains("535"), "{err}");
        assert!(err.message.contains("`password`"), "{err}");
        assert!(!err.to_string().contains("wrong-password-xyz"), "{err}");
        assert!(!format!("{err:?}").contains("wrong-password-xyz"));
    }
    assert!(!format!("{dest:?}").contains("wrong-password-xyz"));
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn check_authenticates_without_sending() {
    let Some(env) = env() else { return };
    let port = free_port();
    let sink = PrivateSink::start(&env, port);
    let mut cfg = base_cfg(&env, &unique_rcpt("check"));
    cfg.smtp_port = Some(port);
    EmailDestination::new(cfg).unwrap().check().await.unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_dir(sink.out.path()).unwrap().count(),
        0,
        "check must not send a message"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn untrusted_certificate_is_permanent() {
    let Some(env) = env() else { return };
    // A CA that did not sign the server's certificate, then only the public roots.
    for ca in [Some(env.other_ca_file.clone()), None] {
        let mut cfg = base_cfg(&env, &unique_rcpt("cert"));
        cfg.ca_file = ca;
        let err = EmailDestination::new(cfg)
            .unwrap()
            .check()
            .await
            .unwrap_err();
        eprintln!("{err}");
        assert!(err.is_permanent(), "{err}");
        assert!(err.message.contains("certificate"), "{err}");
        assert!(err.message.contains("`ca_file`"), "{err}");
    }
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn tls_mode_mismatches_are_permanent() {
    let Some(env) = env() else { return };
    // starttls against a server that offers no STARTTLS.
    let mut cfg = base_cfg(&env, &unique_rcpt("nostarttls"));
    cfg.smtp_port = Some(env.plain_port);
    let err = EmailDestination::new(cfg)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.is_permanent(), "{err}");
    assert!(err.message.contains("STARTTLS"), "{err}");
    // implicit TLS against a plain-text SMTP greeting.
    let mut cfg = base_cfg(&env, &unique_rcpt("implicit-on-plain"));
    cfg.tls = EmailTls::Implicit;
    let err = EmailDestination::new(cfg)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.is_permanent(), "{err}");
    assert!(err.message.contains("tls = \"implicit\""), "{err}");
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn plain_relay_without_tls_or_login() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-plain",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None)],
    );
    let rcpt = unique_rcpt("plain");
    let mut cfg = EmailConfig::new(
        "relay",
        env.host.clone(),
        "sds@example.test",
        vec![rcpt.clone()],
    );
    cfg.tls = EmailTls::None;
    cfg.smtp_port = Some(env.plain_port);
    cfg.timeout_secs = 20;
    EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap();
    let (eml, meta) = wait_message(&env.plain_out, &rcpt);
    assert_eq!(meta["tls"], serde_json::json!(false));
    assert_same_files(&attachments(&eml), &set, &["School.csv"]);
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn server_down_is_retryable_and_later_delivered() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-down",
        vec![f(
            "Student.csv",
            csv("SIS ID,Name,Grade,Username", 500),
            500,
            Some((2, 0, 0)),
        )],
    );
    let port = free_port();
    let rcpt = unique_rcpt("down");
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.smtp_port = Some(port);
    let dest = EmailDestination::new(cfg).unwrap();

    let err = dest.deliver(&set).await.unwrap_err();
    eprintln!("{err}");
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.message.contains("will retry"), "{err}");
    assert!(!dest.check().await.unwrap_err().is_permanent());

    // The server comes back: the same destination (as the outbox retry would) now delivers.
    let sink = PrivateSink::start(&env, port);
    dest.deliver(&set).await.unwrap();
    let (eml, _) = wait_message(sink.out.path(), &rcpt);
    assert_same_files(&attachments(&eml), &set, &["Student.csv"]);
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn stalled_server_is_cut_by_the_whole_send_timeout() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-stall",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None)],
    );
    // Accepts the TCP connection (so the connect timeout is satisfied) and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(4));
        drop(conn);
    });
    let mut cfg = base_cfg(&env, &unique_rcpt("stall"));
    cfg.smtp_port = Some(port);
    cfg.timeout_secs = 2;
    let started = Instant::now();
    let err = EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("{err}");
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message.contains("timed out after 2 s"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    holder.join().unwrap();
}

/// Forwards one connection to `upstream` and cuts both sides once the client has sent more
/// than `cut_after` bytes: what a server dying in the middle of DATA looks like to the client.
fn cutting_proxy(upstream: u16, cut_after: usize) -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        let mut client_r = client.try_clone().unwrap();
        let mut server_w = server.try_clone().unwrap();
        let back = std::thread::spawn(move || {
            let _ = std::io::copy(&mut server, &mut client);
        });
        let mut sent = 0;
        let mut buf = [0u8; 8192];
        loop {
            match client_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let n = n.min(cut_after.saturating_sub(sent));
                    if server_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                    if sent >= cut_after {
                        break;
                    }
                }
            }
        }
        let _ = client_r.shutdown(std::net::Shutdown::Both);
        let _ = server_w.shutdown(std::net::Shutdown::Both);
        let _ = back.join();
        sent
    });
    (port, handle)
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn connection_cut_mid_message_is_retryable_and_delivers_nothing() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = make_set(
        dir.path(),
        "snap-cut",
        vec![f(
            "Student.csv",
            csv("SIS ID,Name,Grade,Username", 30_000),
            30_000,
            None,
        )],
    );
    assert!(set.files[0].bytes > 1_000_000);
    let rcpt = unique_rcpt("cut");
    // Cut after ~200 kB from the client: well past STARTTLS and AUTH, inside DATA.
    let (proxy_port, proxy) = cutting_proxy(env.port, 200_000);
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.smtp_port = Some(proxy_port);
    let err = EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(!err.is_permanent(), "{err}");
    assert_eq!(
        proxy.join().unwrap(),
        200_000,
        "the cut happened mid-transfer"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        find_message(&env.out, &rcpt).is_none(),
        "a cut message must not count as delivered"
    );

    // The retry over an intact connection delivers the whole set.
    EmailDestination::new(base_cfg(&env, &rcpt))
        .unwrap()
        .deliver(&set)
        .await
        .unwrap();
    let (eml, _) = wait_message(&env.out, &rcpt);
    assert_same_files(&attachments(&eml), &set, &["Student.csv"]);
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn oversize_set_fails_permanently_before_connecting() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let big_csv = csv("SIS ID,Name,Grade,Username", 2000); // ~90 kB, compresses ~10x
    let set = make_set(
        dir.path(),
        "snap-big",
        vec![f("Student.csv", big_csv.clone(), 2000, None)],
    );
    // Nothing listens here: an attempt to connect would give a retryable error, not this one.
    let closed = free_port();
    let mut cfg = base_cfg(&env, &unique_rcpt("big"));
    cfg.smtp_port = Some(closed);
    cfg.max_message_bytes = 60_000;
    let err = EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.is_permanent(), "{err}");
    assert!(err.message.contains("max_message_bytes = 60000"), "{err}");
    assert!(err.message.contains("attach = \"zip\""), "{err}");
    assert!(err.message.contains("another destination"), "{err}");

    // The limit counts the encoded size: raw bytes under the limit but base64 over it fail too.
    let raw = 50_000;
    let dir2 = tempfile::tempdir().unwrap();
    let set2 = make_set(
        dir2.path(),
        "snap-b64",
        vec![f("Noise.csv", noise(raw), 1, None)],
    );
    let mut cfg = base_cfg(&env, &unique_rcpt("b64"));
    cfg.smtp_port = Some(closed);
    cfg.max_message_bytes = 60_000;
    let err = EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set2)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.is_permanent(), "{err}");

    // The same 90 kB CSV fits as a zip: delivered through the real server.
    let rcpt = unique_rcpt("bigzip");
    let mut cfg = base_cfg(&env, &rcpt);
    cfg.max_message_bytes = 60_000;
    cfg.attach = EmailAttach::Zip;
    EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set)
        .await
        .unwrap();
    let (eml, _) = wait_message(&env.out, &rcpt);
    assert!(eml.len() <= 60_000, "message is {} bytes", eml.len());

    // Incompressible data does not fit even zipped: permanent, before connecting, no zip advice.
    let mut cfg = base_cfg(&env, &unique_rcpt("bignoise"));
    cfg.smtp_port = Some(closed);
    cfg.max_message_bytes = 60_000;
    cfg.attach = EmailAttach::Zip;
    let dir3 = tempfile::tempdir().unwrap();
    let set3 = make_set(
        dir3.path(),
        "snap-noise",
        vec![f("Noise.csv", noise(200_000), 1, None)],
    );
    let err = EmailDestination::new(cfg)
        .unwrap()
        .deliver(&set3)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.message.contains("another destination") && !err.message.contains("set attach"),
        "{err}"
    );
}

#[tokio::test]
#[cfg_attr(
    sds_no_email_server,
    ignore = "SMTP test server not set up: run scripts/test (it starts the servers), or scripts/services/email.sh start and source its env"
)]
async fn snapshot_file_changed_underneath_is_retryable() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut set = make_set(
        dir.path(),
        "snap-mod",
        vec![f("School.csv", "SIS ID,Name\r\n001,A\r\n", 1, None)],
    );
    set.files[0].bytes += 5;
    let err = EmailDestination::new(base_cfg(&env, &unique_rcpt("mod")))
        .unwrap()
        .deliver(&set)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message.contains("changed underneath"), "{err}");
}
