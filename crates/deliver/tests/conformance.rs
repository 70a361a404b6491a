//! One set of failure cases, run the same way against every file transport: a local folder, SFTP
//! (OpenSSH on 127.0.0.1), plain FTP and explicit FTPS (vsftpd on 127.0.0.1), set up by
//! `scripts/test-services start` (settings from the environment or `/tmp/sds-test-services/*.env`).
//! Without a server these tests are ignored with the reason (crates/deliver/build.rs), except
//! under `CI=true`, where they fail.
//!
//! What every transport must guarantee (issue 14): a delivery changes the files under their final
//! names in one burst after every file was uploaded and checked, or not at all. A delivery that
//! fails midway (a cut in the middle of a file, a bad fourth file, a bad last file) leaves the
//! previous set byte for byte and removes its temporary files; leftovers of an earlier attempt are
//! removed; existing files are replaced. A destination's own choice of files (`omit_files`,
//! `include_license_file`) is honoured. Each test checks the remote folder on the server's disk.

use sds_core::FileEntry;
use sds_deliver::ftp::{FtpConfig, FtpDestination, FtpTls};
use sds_deliver::local::{LocalConfig, LocalDestination};
use sds_deliver::sftp::{SftpConfig, SftpDestination};
use sds_deliver::staged::{Fault, is_ours};
use sds_deliver::{DeliverError, Destination, FileSet};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Local,
    Sftp,
    Ftp,
    Ftps,
}

/// Test settings from the environment, else from the env file the service script writes.
fn vars(prefix: &str, file: &str) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    if vars.is_empty()
        && let Ok(text) = fs::read_to_string(format!("/tmp/sds-test-services/{file}"))
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

/// The settings of a transport's test server (always Some: a missing one panics, see below).
fn server(t: Transport) -> Option<HashMap<String, String>> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let (v, what) = match t {
        Transport::Local => return Some(HashMap::new()),
        Transport::Sftp => (vars("SDS_TEST_SFTP_", "sftp.env"), "SFTP"),
        Transport::Ftp | Transport::Ftps => (vars("SDS_TEST_FTP", "ftp.env"), "FTP"),
    };
    let key = match t {
        Transport::Sftp => "SDS_TEST_SFTP_HOST",
        _ => "SDS_TEST_FTP_HOST",
    };
    if v.contains_key(key) {
        return Some(v);
    }
    // Tests that need it are ignored when it is not set up (crates/deliver/build.rs): one that
    // runs without it fails rather than passing without having tested anything.
    panic!("the {what} test server is not set up: run `scripts/test-services start`");
}

/// A folder of the test's own at the destination, seen on this machine's disk as `local`.
struct Target {
    transport: Transport,
    vars: HashMap<String, String>,
    local: PathBuf,
    /// The folder as the transport names it (`remote_dir`, or the local path).
    remote: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Target {
    fn new(transport: Transport, test: &str) -> Option<Target> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let vars = server(transport)?;
        let name = format!(
            "conf-{test}-{transport:?}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )
        .to_lowercase();
        let (local, remote, tmp) = match transport {
            Transport::Local => {
                let tmp = tempfile::tempdir().unwrap();
                let local = tmp.path().join("out");
                fs::create_dir(&local).unwrap();
                fs::set_permissions(&local, fs::Permissions::from_mode(0o700)).unwrap();
                let remote = local.display().to_string();
                (local, remote, Some(tmp))
            }
            Transport::Sftp => {
                let local = PathBuf::from(&vars["SDS_TEST_SFTP_UPLOAD_LOCAL"]).join(&name);
                let remote = format!("{}/{name}", vars["SDS_TEST_SFTP_UPLOAD_DIR"]);
                (local, remote, None)
            }
            Transport::Ftp | Transport::Ftps => {
                // vsftpd chroots the user into the root, so the folder is "/<name>" for it.
                let local = PathBuf::from(&vars["SDS_TEST_FTP_ROOT"]).join(&name);
                (local, format!("/{name}"), None)
            }
        };
        if transport != Transport::Local {
            let _ = fs::remove_dir_all(&local);
            fs::create_dir(&local).unwrap();
            // The server account is not the user running the tests.
            fs::set_permissions(&local, fs::Permissions::from_mode(0o777)).unwrap();
        }
        Some(Target {
            transport,
            vars,
            local,
            remote,
            _tmp: tmp,
        })
    }

    fn dest(&self, fault: Option<Fault>) -> Box<dyn Destination> {
        self.dest_choosing(fault, false, &[])
    }

    /// A destination with its own choice of files: `include_license_file` and `omit_files`.
    fn dest_choosing(
        &self,
        fault: Option<Fault>,
        include_license_file: bool,
        omit: &[&str],
    ) -> Box<dyn Destination> {
        let omit_files: Vec<String> = omit.iter().map(|n| (*n).to_owned()).collect();
        let v = |k: &str| self.vars[k].clone();
        match self.transport {
            Transport::Local => {
                let d = LocalDestination::new(LocalConfig {
                    name: "conformance".into(),
                    path: self.local.clone(),
                    include_license_file,
                    omit_files,
                });
                Box::new(match fault {
                    Some(f) => d.with_fault(f),
                    None => d,
                })
            }
            Transport::Sftp => {
                let d = SftpDestination::new(SftpConfig {
                    name: "conformance".into(),
                    host: v("SDS_TEST_SFTP_HOST"),
                    port: v("SDS_TEST_SFTP_PORT").parse().unwrap(),
                    username: v("SDS_TEST_SFTP_USER"),
                    private_key_file: Some(v("SDS_TEST_SFTP_KEY_ED25519").into()),
                    known_hosts_file: Some(v("SDS_TEST_SFTP_KNOWN_HOSTS").into()),
                    remote_dir: self.remote.clone(),
                    connect_timeout_secs: 20,
                    request_timeout_secs: 30,
                    include_license_file,
                    omit_files,
                    ..Default::default()
                })
                .unwrap();
                Box::new(match fault {
                    Some(f) => d.with_fault(f),
                    None => d,
                })
            }
            Transport::Ftp | Transport::Ftps => {
                let port = v("SDS_TEST_FTP_PORT");
                let text = format!(
                    "name = \"conformance\"\nhost = {:?}\nport = {port}\nusername = {:?}\npassword = {:?}\n\
                     remote_dir = {:?}\nconnect_timeout_secs = 5\nio_timeout_secs = 10\ndelivery_timeout_secs = 90\n",
                    v("SDS_TEST_FTP_HOST"),
                    v("SDS_TEST_FTP_USER"),
                    v("SDS_TEST_FTP_PASSWORD"),
                    self.remote
                );
                let mut cfg: FtpConfig = toml::from_str(&text).unwrap();
                cfg.include_license_file = include_license_file;
                cfg.omit_files = omit_files;
                if self.transport == Transport::Ftps {
                    cfg.tls = FtpTls::Explicit;
                    cfg.ca_file = Some(v("SDS_TEST_FTP_CA_FILE").into());
                } else {
                    cfg.tls = FtpTls::None;
                }
                let d = FtpDestination::new(cfg).unwrap();
                Box::new(match fault {
                    Some(f) => d.with_fault(f),
                    None => d,
                })
            }
        }
    }

    /// Name → bytes of every file in the folder.
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

    fn plant(&self, name: &str, bytes: &[u8]) {
        let path = self.local.join(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    }

    /// Permissions the transport requests for uploaded files (local files follow the umask).
    fn requested_mode(&self) -> Option<u32> {
        match self.transport {
            Transport::Local => None,
            _ => Some(0o600),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.transport != Transport::Local && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.local);
        }
    }
}

/// A snapshot folder; content depends on (name, size, seed), so two sets always differ.
struct Snapshot {
    dir: tempfile::TempDir,
    set: FileSet,
}

fn content(name: &str, size: usize, seed: u8) -> Vec<u8> {
    let mut out = format!("SIS ID,Name,{name},{seed}\r\n").into_bytes();
    let mut x: u32 = 0x9E37_79B9 ^ (u32::from(seed) << 8) ^ (name.len() as u32);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(b"0123456789abcdef,\r\n"[(x % 19) as usize]);
    }
    out.truncate(size);
    out
}

fn snapshot(files: &[(&str, usize)], seed: u8) -> Snapshot {
    snapshot_with_license(files, None, seed)
}

/// A set that also has a licence file (`FileEntry::license`) of `license` bytes, last.
fn snapshot_with_license(files: &[(&str, usize)], license: Option<usize>, seed: u8) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let files = files
        .iter()
        .map(|(name, size)| (*name, *size, false))
        .chain(license.map(|size| ("License.csv", size, true)))
        .map(|(name, size, license)| {
            let bytes = content(name, size, seed);
            fs::write(dir.path().join(name), &bytes).unwrap();
            FileEntry {
                name: name.to_owned(),
                bytes: bytes.len() as u64,
                hash: String::new(),
                rows: 0,
                changes: None,
                license,
            }
        })
        .collect();
    Snapshot {
        set: FileSet {
            snapshot_id: format!("s{seed}"),
            created_at: "2026-11-28T00:00:00Z".into(),
            dir: dir.path().to_path_buf(),
            files,
        },
        dir,
    }
}

impl Snapshot {
    fn expected(&self) -> BTreeMap<String, Vec<u8>> {
        self.set
            .files
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    fs::read(self.dir.path().join(&f.name)).unwrap(),
                )
            })
            .collect()
    }

    /// Makes file `i` on disk shorter than the manifest says, as a snapshot damaged underneath;
    /// returns a function that repairs it.
    fn damage(&self, i: usize) -> impl FnOnce() + use<> {
        let path = self.dir.path().join(&self.set.files[i].name);
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        move || fs::write(&path, good).unwrap()
    }
}

/// The set a destination already holds.
fn old_set() -> Snapshot {
    snapshot(
        &[
            ("School.csv", 120),
            ("Section.csv", 70_000),
            ("Student.csv", 300_000),
            ("Teacher.csv", 2_000),
            ("StudentEnrollment.csv", 40_000),
        ],
        1,
    )
}

/// The next one: every file changed, and one file the old set did not have.
fn new_set() -> Snapshot {
    snapshot(
        &[
            ("School.csv", 150),
            ("Section.csv", 65_000),
            ("Student.csv", 310_000),
            ("Teacher.csv", 2_500),
            ("StudentEnrollment.csv", 0),
            ("TeacherRoster.csv", 20_000),
        ],
        2,
    )
}

fn retryable(result: Result<(), DeliverError>, needle: &str) -> DeliverError {
    let err = result.expect_err("the delivery must fail");
    eprintln!("failed as expected: {err}");
    assert!(!err.is_permanent(), "must be retryable: {err}");
    assert!(
        err.message.contains(needle),
        "error lacks {needle:?}: {err}"
    );
    err
}

/// The folder holds exactly `want`: same names, same bytes, no temporary file.
fn assert_holds(t: &Target, want: &BTreeMap<String, Vec<u8>>, when: &str) {
    let got = t.contents();
    let temps: Vec<&String> = got.keys().filter(|n| is_ours(n)).collect();
    assert!(temps.is_empty(), "{when}: temporary files left: {temps:?}");
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(want), "{when}: names differ");
    for (name, bytes) in want {
        assert!(
            got[name] == *bytes,
            "{when}: {name} differs from what it should hold"
        );
    }
}

async fn existing_files_are_replaced(t: Target) {
    // Files someone else put there: one the set replaces, one it does not know.
    t.plant("Teacher.csv", b"an older teacher file, longer than nothing");
    t.plant("vendor-notes.txt", b"not ours");
    let old = old_set();
    t.dest(None).deliver(&old.set).await.unwrap();
    let mut want = old.expected();
    want.insert("vendor-notes.txt".into(), b"not ours".to_vec());
    assert_holds(&t, &want, "after the first set");

    let new = new_set();
    t.dest(None).deliver(&new.set).await.unwrap();
    let mut want = new.expected();
    want.insert("vendor-notes.txt".into(), b"not ours".to_vec());
    assert_holds(&t, &want, "after the second set");
    if let Some(mode) = t.requested_mode() {
        for f in &new.set.files {
            let got = fs::metadata(t.local.join(&f.name)).unwrap().mode() & 0o777;
            assert_eq!(got, mode, "{}: mode {got:o}", f.name);
        }
    }
}

async fn cut_in_the_middle_of_a_file_leaves_the_previous_set(t: Target) {
    let old = old_set();
    t.dest(None).deliver(&old.set).await.unwrap();
    let new = new_set();
    // Student.csv (the third file) stops after 100 kB of its 310 kB.
    let cut = Fault {
        file: 2,
        after_bytes: 100_000,
    };
    retryable(
        t.dest(Some(cut)).deliver(&new.set).await,
        "after 100000 bytes",
    );
    assert_holds(&t, &old.expected(), "after the cut");
    t.dest(None).deliver(&new.set).await.unwrap();
    assert_holds(&t, &new.expected(), "after the retry");
}

async fn failure_on_the_fourth_file_leaves_the_previous_set(t: Target) {
    let old = old_set();
    t.dest(None).deliver(&old.set).await.unwrap();
    let new = new_set();
    let repair = new.damage(3);
    retryable(t.dest(None).deliver(&new.set).await, "changed underneath");
    assert_holds(&t, &old.expected(), "after the failed fourth file");
    repair();
    t.dest(None).deliver(&new.set).await.unwrap();
    assert_holds(&t, &new.expected(), "after the retry");
}

async fn failure_on_the_last_file_changes_nothing(t: Target) {
    let old = old_set();
    t.dest(None).deliver(&old.set).await.unwrap();
    let new = new_set();
    // Every other file uploaded fine; the last one (a name the old set lacks) fails.
    let _repair = new.damage(new.set.files.len() - 1);
    retryable(t.dest(None).deliver(&new.set).await, "changed underneath");
    assert_holds(&t, &old.expected(), "after the failed last file");
}

async fn leftovers_of_an_earlier_attempt_are_removed(t: Target) {
    // What interrupted attempts leave: a partial file of this set, one of a file the set no
    // longer has, one under the name older versions used; and a file that is not ours.
    t.plant("Student.csv.0123456789abcdef.sds-sync-tmp", b"half a fi");
    t.plant(
        "Gone.csv.fedcba9876543210.sds-sync-tmp",
        b"from an older set",
    );
    t.plant("School.csv.sds-sync-tmp", b"old naming");
    t.plant("vendor-notes.txt", b"not ours");
    let new = new_set();
    t.dest(None).deliver(&new.set).await.unwrap();
    let mut want = new.expected();
    want.insert("vendor-notes.txt".into(), b"not ours".to_vec());
    assert_holds(&t, &want, "after the delivery");
}

/// A destination's own choice of files (`include_license_file`, `omit_files`): what it leaves
/// out never reaches the folder, the rest arrives as always; another destination of the same
/// set that wants everything gets everything.
async fn omitted_files_are_not_delivered(t: Target) {
    let set = snapshot_with_license(
        &[
            ("orgs.csv", 150),
            ("users.csv", 30_000),
            ("roles.csv", 8_000),
            ("relationships.csv", 2_000),
            ("courses.csv", 900),
        ],
        Some(5_000),
        3,
    );
    let omit = ["relationships.csv", "courses.csv"];
    t.dest_choosing(None, false, &omit)
        .deliver(&set.set)
        .await
        .unwrap();
    let mut want = set.expected();
    for name in omit.iter().chain(&["License.csv"]) {
        assert!(want.remove(*name).is_some(), "{name}");
    }
    assert_eq!(want.len(), 3);
    assert_holds(
        &t,
        &want,
        "with two files omitted and the licence file left out",
    );

    t.dest_choosing(None, true, &[])
        .deliver(&set.set)
        .await
        .unwrap();
    assert_holds(&t, &set.expected(), "with every file wanted");
}

async fn check_leaves_nothing_behind(t: Target) {
    let old = old_set();
    t.dest(None).deliver(&old.set).await.unwrap();
    t.dest(None).check().await.unwrap();
    assert_holds(&t, &old.expected(), "after check");
}

macro_rules! conformance {
    // `unless`: the cfg set by build.rs when the transport's test server is not set up.
    ($($transport:ident => $variant:ident unless $missing:meta),* $(,)?) => {$(
        mod $transport {
            use super::*;

            async fn run<F: std::future::Future<Output = ()>>(test: &str, case: fn(Target) -> F) {
                if let Some(t) = Target::new(Transport::$variant, test) {
                    case(t).await;
                }
            }

            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn existing_files_are_replaced() {
                run("replace", super::existing_files_are_replaced).await;
            }
            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn cut_in_the_middle_of_a_file_leaves_the_previous_set() {
                run("cut", super::cut_in_the_middle_of_a_file_leaves_the_previous_set).await;
            }
            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn failure_on_the_fourth_file_leaves_the_previous_set() {
                run("fourth", super::failure_on_the_fourth_file_leaves_the_previous_set).await;
            }
            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn failure_on_the_last_file_changes_nothing() {
                run("last", super::failure_on_the_last_file_changes_nothing).await;
            }
            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn leftovers_of_an_earlier_attempt_are_removed() {
                run("leftovers", super::leftovers_of_an_earlier_attempt_are_removed).await;
            }
            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn check_leaves_nothing_behind() {
                run("check", super::check_leaves_nothing_behind).await;
            }
            #[tokio::test]
            #[cfg_attr($missing, ignore = "test server not set up: run scripts/test (it starts the servers), or scripts/test-services start and source /tmp/sds-test-services/*.env")]
            async fn omitted_files_are_not_delivered() {
                run("omit", super::omitted_files_are_not_delivered).await;
            }
        }
    )*};
}

conformance! {
    local => Local unless any(),
    sftp => Sftp unless sds_no_sftp_server,
    ftp => Ftp unless sds_no_ftp_server,
    ftps => Ftps unless sds_no_ftp_server,
}

#[test]
fn snapshot_helpers_make_distinct_sets() {
    let (a, b) = (old_set(), new_set());
    assert_ne!(a.expected()["School.csv"], b.expected()["School.csv"]);
    let repair = b.damage(0);
    assert!(fs::read(b.dir.path().join("School.csv")).unwrap().len() < 150);
    repair();
    assert_eq!(
        fs::read(b.dir.path().join("School.csv")).unwrap().len(),
        150
    );
}
