//! The staged upload that every file transport (local folder, SFTP, FTP/FTPS) follows, written
//! once: remove our leftovers, upload every file of the set under a temporary name, check each
//! one's size, and only then rename them all into place in one burst. On any failure before the
//! burst the temporaries are removed and the previous set stays untouched. Transports supply only
//! the small primitives of [`Stage`]; the temporary-name scheme, name validation, the order of
//! steps, the checks and the clean-up live here, together with the one reader of secret files and
//! the `file_mode` setting shared by the remote transports.
//!
//! Size rule (the same for every transport): a size reported by the destination must equal the
//! bytes sent; a destination that cannot report sizes (FTP servers without `SIZE`, SFTP servers
//! that omit it) is trusted on its transfer reply, and the delivery says how many files went
//! unverified (an INFO line with `unverified_files` after the delivery).

use crate::{DeliverError, ErrorKind, FileSet};
use sds_core::FileEntry;
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;
use std::io;
use std::path::Path;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Every temporary name ends with this, so a reader that picks up `*.csv` never sees one, and a
/// dot-free name stays visible in FTP listings (vsftpd hides dot files from `NLST`).
pub const TMP_SUFFIX: &str = ".sds-sync-tmp";
/// Temporary names of sds-sync versions before the shared scheme (`.sds-sync-tmp.NAME` for local
/// folders, `.sds-sync-tmp.NAME.part` for SFTP): still ours to remove after an upgrade.
const LEGACY_TMP_PREFIX: &str = ".sds-sync-tmp.";
/// Random bytes in a temporary name: unpredictable, so nobody can plant a file or link there.
const TOKEN_BYTES: usize = 8;

/// Entries a listing of the target folder may have before we call it hostile or broken: far
/// more than any upload folder holds, few enough to end quickly.
pub(crate) const MAX_LISTING_ENTRIES: usize = 1_000_000;
/// Leftovers removed per attempt; any more are removed by the next attempts.
pub(crate) const MAX_LEFTOVERS: usize = 1_000;
/// Longest listed name we look at; ours are far shorter.
pub(crate) const MAX_NAME_BYTES: usize = 1024;

/// A fresh temporary name for `final_name`: `NAME.<16 hex digits>.sds-sync-tmp`.
pub fn temp_name(final_name: &str) -> String {
    let mut token = [0u8; TOKEN_BYTES];
    if getrandom::fill(&mut token).is_err() {
        // No OS randomness (practically impossible on Linux): fall back to time and pid. The
        // name is then guessable, but every transport still creates it exclusively or over a
        // private session, so the worst case is a failed attempt.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        token = mixed.to_le_bytes();
    }
    let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
    format!("{final_name}.{hex}{TMP_SUFFIX}")
}

/// Whether `name` (a bare file name in the target folder) is a temporary file of sds-sync, ours
/// to remove: the current scheme and the ones of earlier versions.
pub fn is_ours(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX) || name.starts_with(LEGACY_TMP_PREFIX)
}

/// Checks that a snapshot file name can be used as a bare name in any target folder: SDS names
/// are plain (`Student.csv`, `academicSessions.csv`), so anything else is a bug upstream, not
/// something to send.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 200 {
        return Err("is longer than 200 bytes".into());
    }
    if name.starts_with('.') {
        return Err("starts with a dot (hidden on many servers)".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    if is_ours(name) {
        return Err(format!(
            "ends in {TMP_SUFFIX}, the suffix of temporary files"
        ));
    }
    Ok(())
}

/// Permission bits requested for uploaded files (`file_mode = "0600"` in a destination table).
/// Written as an octal string, because TOML has no octal literal people recognise at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(u32);

impl FileMode {
    /// Owner read and write only: the files carry student data and may carry passwords.
    pub const DEFAULT: FileMode = FileMode(0o600);

    pub fn bits(self) -> u32 {
        self.0
    }

    /// Parses `"0600"`, `"640"`, ...: octal, at most 0777, owner read and write included.
    pub fn parse(text: &str) -> Result<FileMode, String> {
        let digits = text.trim();
        let valid = !digits.is_empty()
            && digits.len() <= 4
            && digits.chars().all(|c| ('0'..='7').contains(&c));
        let bits = if valid {
            u32::from_str_radix(digits, 8).ok()
        } else {
            None
        };
        match bits {
            Some(b) if b <= 0o777 && b & 0o600 == 0o600 => Ok(FileMode(b)),
            Some(_) => Err(format!(
                "{text:?} must give the owner read and write and nothing above 0777, e.g. \"0600\" or \"0640\""
            )),
            None => Err(format!(
                "{text:?} is not an octal mode; write it as a quoted string, e.g. file_mode = \"0600\""
            )),
        }
    }
}

impl Default for FileMode {
    fn default() -> Self {
        FileMode::DEFAULT
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        FileMode::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How a secret file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretForm {
    /// A password or passphrase: one line; the trailing line break (LF or CRLF) is not part of it.
    Line,
    /// A whole file, e.g. a private key.
    Text,
}

/// A secret read from a file, and a warning when the file is open to other accounts.
pub(crate) struct SecretFile {
    pub value: SecretString,
    pub warning: Option<String>,
}

/// The one reader of `*_file` secrets and private keys. Errors and warnings name the config key
/// and the path, never the content.
pub(crate) fn read_secret_file(
    key: &str,
    path: &Path,
    form: SecretForm,
) -> Result<SecretFile, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("`{key}` {shown}: cannot read it: {e}; check the path and that the sds-sync user may read it")
    })?;
    let value = match form {
        SecretForm::Line => {
            let line = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if line.contains(['\r', '\n']) {
                return Err(format!("`{key}` {shown}: the secret must be a single line"));
            }
            line.to_owned()
        }
        SecretForm::Text => text,
    };
    if value.trim().is_empty() {
        return Err(format!("`{key}` {shown} is empty"));
    }
    Ok(SecretFile {
        value: SecretString::from(value),
        warning: loose_permissions(key, path),
    })
}

/// A warning when other accounts can read or change a secret file: others at all, or a group the
/// service does not belong to (`0640 root:sds-sync`, the documented setup, is fine).
fn loose_permissions(key: &str, path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let mode = meta.mode() & 0o777;
        let others = mode & 0o006 != 0;
        let foreign_group = mode & 0o060 != 0 && !in_group(meta.gid());
        if !(others || foreign_group) {
            return None;
        }
        let who = if others {
            "every account on this machine"
        } else {
            "group members other than the sds-sync service"
        };
        Some(format!(
            "`{key}` {} holds a secret but can be read or changed by {who} (mode {mode:04o}, group id {}); \
             run `chmod 600 {}` (or `chmod 640` with the file's group set to the service's own group)",
            path.display(),
            meta.gid(),
            path.display()
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = (key, path);
        None
    }
}

/// Whether this process is in group `gid` (effective or supplementary).
#[cfg(unix)]
fn in_group(gid: u32) -> bool {
    // SAFETY: getegid cannot fail and touches no memory.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: with a zero size getgroups only returns the count.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(count) else {
        return false;
    };
    let mut groups: Vec<libc::gid_t> = vec![0; len];
    // SAFETY: the buffer holds `count` entries, as getgroups requires.
    let filled = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    usize::try_from(filled)
        .map(|n| groups.iter().take(n).any(|g| *g == gid))
        .unwrap_or(false)
}

/// Collects our leftovers from a listing of the target folder, bounded whatever the server sends.
#[derive(Debug, Default)]
pub(crate) struct Leftovers {
    names: Vec<String>,
    seen: usize,
    more: bool,
}

impl Leftovers {
    /// One listed name (a bare name, or a path whose last part is the name). Fails once the
    /// listing is larger than any real upload folder.
    pub(crate) fn offer(&mut self, entry: &str) -> Result<(), String> {
        self.seen += 1;
        if self.seen > MAX_LISTING_ENTRIES {
            return Err(format!(
                "the folder listing has more than {MAX_LISTING_ENTRIES} entries; the server is broken or hostile, \
                 or the folder needs tidying: give this destination a folder of its own"
            ));
        }
        // Some FTP servers list "dir/name" or "./name"; only the last part is the name.
        let name = entry.rsplit('/').next().unwrap_or(entry).trim();
        if name.len() > MAX_NAME_BYTES || !is_ours(name) || name == "." || name == ".." {
            return Ok(());
        }
        if self.names.len() < MAX_LEFTOVERS {
            self.names.push(name.to_owned());
        } else {
            self.more = true;
        }
        Ok(())
    }

    pub(crate) fn into_names(self) -> Vec<String> {
        if self.more {
            tracing::debug!(
                kept = self.names.len(),
                "more temporary leftovers than one attempt removes; later attempts remove the rest"
            );
        }
        self.names
    }
}

/// Test hook: makes the upload of one file of the set fail after some bytes, as a cut connection
/// or a failing disk would, to prove what the destination looks like afterwards. Never set in
/// production.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Index in the set's file order (licence file excluded when the destination leaves it out).
    pub file: usize,
    /// Bytes of that file that go out before the failure.
    pub after_bytes: u64,
}

/// The bytes of one upload, as the transport reads them. Counts what was read, and keeps the
/// reason when reading failed, so the error names the snapshot file rather than the transport.
pub(crate) struct Payload {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    label: String,
    read: u64,
    failure: Option<String>,
    cut_after: Option<u64>,
}

impl Payload {
    pub(crate) async fn file(path: &Path) -> Result<Payload, String> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("cannot open the snapshot file {}: {e}", path.display()))?;
        Ok(Payload::new(
            Box::new(file),
            format!("the snapshot file {}", path.display()),
        ))
    }

    pub(crate) fn bytes(content: &'static [u8]) -> Payload {
        Payload::new(Box::new(content), "the probe content".into())
    }

    fn new(reader: Box<dyn AsyncRead + Send + Unpin>, label: String) -> Payload {
        Payload {
            reader,
            label,
            read: 0,
            failure: None,
            cut_after: None,
        }
    }

    /// Reads into `buf`; 0 means the end.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut limit = buf.len();
        if let Some(cut) = self.cut_after {
            let left = cut.saturating_sub(self.read);
            if left == 0 {
                let msg = format!("{}: injected fault after {cut} bytes", self.label);
                self.failure = Some(msg.clone());
                return Err(io::Error::other(msg));
            }
            limit = limit.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        match self.reader.read(&mut buf[..limit]).await {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failure = Some(format!("cannot read {}: {e}", self.label));
                Err(e)
            }
        }
    }

    /// Reads up to `len` bytes, short only at the end.
    pub(crate) async fn read_chunk(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = self.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }
}

/// The primitives a transport supplies: all names are bare names in the target folder.
pub(crate) trait Stage {
    /// `[[destination]] name`, for logs.
    fn destination(&self) -> &str;
    /// An error in this transport's style (prefix with the server address, ...).
    fn error(&self, kind: ErrorKind, message: String) -> DeliverError;
    /// Temporary files of ours in the target folder ([`Leftovers`] keeps this bounded).
    async fn list_ours(&mut self) -> Result<Vec<String>, DeliverError>;
    /// Creates `name` (a fresh temporary name; never an existing file) with everything `data`
    /// yields, with `file_mode` where the transport has one. A failure of `data` is an error too.
    async fn put(&mut self, name: &str, data: &mut Payload) -> Result<(), DeliverError>;
    /// The size of `name` at the destination, or `None` when the destination cannot tell.
    async fn size(&mut self, name: &str) -> Result<Option<u64>, DeliverError>;
    /// Moves `from` to `to`, replacing `to` when it exists.
    async fn rename(&mut self, from: &str, to: &str) -> Result<(), DeliverError>;
    /// Removes `name`; a name that is already gone is not an error.
    async fn remove(&mut self, name: &str) -> Result<(), DeliverError>;
    /// After the renames (local folders fsync the directory here).
    async fn finish(&mut self) -> Result<(), DeliverError> {
        Ok(())
    }
}

/// What a delivery did, for the `delivered` log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub files: usize,
    pub bytes: u64,
    /// Temporary files of earlier attempts removed first.
    pub leftovers: usize,
    /// Files whose size the destination could not report.
    pub unverified: usize,
}

/// The transport's own record of a delivery (the daemon logs `delivered` at INFO itself), and
/// the one INFO line when the destination could not report sizes.
pub(crate) fn log_delivered(
    destination: &str,
    kind: &'static str,
    set: &FileSet,
    s: &Summary,
    started: Instant,
) {
    tracing::debug!(
        destination,
        kind,
        snapshot = %set.snapshot_id,
        files = s.files,
        bytes = s.bytes,
        leftovers_removed = s.leftovers,
        unverified_files = s.unverified,
        duration_ms = started.elapsed().as_millis() as u64,
        "files in place"
    );
    if s.unverified > 0 {
        tracing::info!(
            destination,
            kind,
            unverified_files = s.unverified,
            "the destination cannot report file sizes; these files were checked by its transfer reply only"
        );
    }
}

/// Delivers the whole set through `stage`: clean leftovers, put every file under a temporary
/// name, check sizes, rename all. On failure before the renames, removes what it uploaded.
pub(crate) async fn deliver<S: Stage>(
    stage: &mut S,
    set: &FileSet,
    include_license: bool,
    omit: &[String],
    fault: Option<Fault>,
) -> Result<Summary, DeliverError> {
    let files: Vec<&FileEntry> = set.files_chosen(include_license, omit).collect();
    for f in &files {
        validate_name(&f.name).map_err(|m| {
            stage.error(
                ErrorKind::Permanent,
                format!("snapshot file name {:?} {m}; it cannot be sent", f.name),
            )
        })?;
    }
    let mut summary = Summary {
        files: files.len(),
        leftovers: remove_leftovers(stage).await?,
        ..Summary::default()
    };

    let mut temps: Vec<String> = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let tmp = temp_name(&f.name);
        temps.push(tmp.clone());
        let started = Instant::now();
        let cut = fault.filter(|x| x.file == i).map(|x| x.after_bytes);
        match upload_one(stage, &set.dir.join(&f.name), &tmp, f.bytes, cut).await {
            Ok(verified) => {
                summary.bytes += f.bytes;
                if !verified {
                    summary.unverified += 1;
                }
                tracing::debug!(destination = %stage.destination(), file = %f.name, bytes = f.bytes,
                    duration_ms = started.elapsed().as_millis() as u64, "uploaded under a temporary name");
            }
            Err(e) => {
                remove_quietly(stage, &temps).await;
                return Err(e);
            }
        }
    }

    // The burst: nothing under a final name changed until here.
    for (i, f) in files.iter().enumerate() {
        if let Err(e) = stage.rename(&temps[i], &f.name).await {
            remove_quietly(stage, &temps[i..]).await;
            if i == 0 {
                return Err(e);
            }
            return Err(DeliverError {
                message: format!(
                    "{}; {i} of {} files had already been replaced, the next attempt completes the set",
                    e.message,
                    files.len()
                ),
                ..e
            });
        }
    }
    stage.finish().await?;
    Ok(summary)
}

/// Puts one file under `tmp` and checks it. Returns whether its size could be verified.
async fn upload_one<S: Stage>(
    stage: &mut S,
    local: &Path,
    tmp: &str,
    expected: u64,
    cut: Option<u64>,
) -> Result<bool, DeliverError> {
    let mut payload = Payload::file(local)
        .await
        .map_err(|m| stage.error(ErrorKind::Retryable, format!("{m}; will retry")))?;
    payload.cut_after = cut;
    if let Err(e) = stage.put(tmp, &mut payload).await {
        // A failure of our own reading is the real cause, whatever the transport made of it.
        return Err(match payload.failure.take() {
            Some(m) => stage.error(ErrorKind::Retryable, format!("{m}; will retry")),
            None => e,
        });
    }
    let sent = payload.bytes_read();
    if sent != expected {
        return Err(stage.error(
            ErrorKind::Retryable,
            format!(
                "{} has {sent} bytes but the snapshot says {expected}; it changed underneath; will retry",
                local.display()
            ),
        ));
    }
    check_size(stage, tmp, expected).await
}

async fn check_size<S: Stage>(
    stage: &mut S,
    name: &str,
    expected: u64,
) -> Result<bool, DeliverError> {
    match stage.size(name).await? {
        Some(size) if size == expected => Ok(true),
        Some(size) => Err(stage.error(
            ErrorKind::Retryable,
            format!(
                "{name} holds {size} bytes at the destination but {expected} were sent; will retry \
                 (check the destination's free space if this repeats)"
            ),
        )),
        None => {
            tracing::debug!(destination = %stage.destination(), file = %name,
                "the destination does not report sizes; relying on its transfer reply");
            Ok(false)
        }
    }
}

async fn remove_leftovers<S: Stage>(stage: &mut S) -> Result<usize, DeliverError> {
    let names = stage.list_ours().await?;
    for name in &names {
        stage.remove(name).await?;
    }
    if !names.is_empty() {
        tracing::info!(destination = %stage.destination(), files = names.len(),
            "removed temporary files of an earlier attempt");
    }
    Ok(names.len())
}

/// Best effort: the next attempt removes whatever this misses.
async fn remove_quietly<S: Stage>(stage: &mut S, names: &[String]) {
    for name in names {
        if let Err(e) = stage.remove(name).await {
            tracing::debug!(destination = %stage.destination(), file = %name, error = %e.message,
                "temporary file left for the next attempt");
        }
    }
}

/// What [`probe`] does, for `check`'s report.
pub(crate) const PROBE_STEPS: &str = "listed the folder, uploaded a probe file under a temporary name, checked its size, \
     renamed it and removed it";

/// The `check` round trip, the steps of a delivery: list the folder (as a delivery does to find
/// leftovers; nothing is removed), put a small file under a temporary name, check its size,
/// rename it (to another temporary name, so no reader ever sees it), remove it. Leaves nothing
/// behind.
pub(crate) async fn probe<S: Stage>(stage: &mut S) -> Result<(), DeliverError> {
    const CONTENT: &[u8] = b"sds-sync check\n";
    let first = temp_name("sds-sync-probe");
    let second = temp_name("sds-sync-probe");
    stage.list_ours().await?;
    let result = async {
        let mut payload = Payload::bytes(CONTENT);
        stage.put(&first, &mut payload).await?;
        check_size(stage, &first, CONTENT.len() as u64).await?;
        stage.rename(&first, &second).await?;
        stage.remove(&second).await
    }
    .await;
    if result.is_err() {
        remove_quietly(stage, &[first, second]).await;
    }
    result
}

/// The error for an operation that overran `delivery_timeout_secs`.
pub(crate) fn overran(limit_secs: u64, what: &str) -> String {
    format!(
        "{what} did not finish within {limit_secs} s (delivery_timeout_secs); the link may be too slow for \
         the files: raise delivery_timeout_secs; will retry"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn temp_names_are_ours_random_and_hide_the_csv_suffix() {
        let a = temp_name("Student.csv");
        let b = temp_name("Student.csv");
        assert_ne!(a, b);
        assert!(
            a.starts_with("Student.csv.") && a.ends_with(TMP_SUFFIX),
            "{a}"
        );
        assert_eq!(a.len(), "Student.csv.".len() + 16 + TMP_SUFFIX.len());
        assert!(is_ours(&a) && !a.ends_with(".csv"));
        // Names of earlier versions are recognised too; final and vendor names are not.
        for legacy in [
            ".sds-sync-tmp.Student.csv",
            ".sds-sync-tmp.Student.csv.part",
            ".sds-sync-tmp.probe",
            "School.csv.sds-sync-tmp",
        ] {
            assert!(is_ours(legacy), "{legacy}");
        }
        for other in [
            "Student.csv",
            "notes.txt",
            "sds-sync-tmp",
            "x.sds-sync-tmp.bak",
        ] {
            assert!(!is_ours(other), "{other}");
        }
    }

    #[test]
    fn names_are_validated() {
        for ok in ["Student.csv", "academicSessions.csv", "user_flags-2.csv"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("../x.csv", "dot"),
            ("a/b.csv", "'/'"),
            ("a\\b.csv", "'\\\\'"),
            ("a\r\nDELE x", "'\\r'"),
            (".hidden.csv", "dot"),
            ("a b.csv", "' '"),
            ("x.sds-sync-tmp", "temporary"),
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(validate_name(&"a".repeat(201)).is_err());
    }

    #[test]
    fn file_mode_parses_octal_strings() {
        assert_eq!(FileMode::parse("0600").unwrap().bits(), 0o600);
        assert_eq!(FileMode::parse("640").unwrap().bits(), 0o640);
        assert_eq!(FileMode::parse("0644").unwrap().to_string(), "0644");
        assert_eq!(FileMode::default().to_string(), "0600");
        for bad in ["", "0400", "1777", "0680", "rw-------", "06000", "-600"] {
            assert!(FileMode::parse(bad).is_err(), "{bad}");
        }
        #[derive(Deserialize)]
        struct T {
            file_mode: FileMode,
        }
        let t: T = toml::from_str("file_mode = \"0640\"").unwrap();
        assert_eq!(t.file_mode.bits(), 0o640);
        let err = toml::from_str::<T>("file_mode = 600")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("string"), "{err}");
    }

    #[test]
    fn secret_files_lose_one_line_end_and_warn_when_open_to_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\r\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = read_secret_file("password_file", &p, SecretForm::Line).unwrap();
        assert_eq!(s.value.expose_secret(), "s3cret");
        assert!(s.warning.is_none());

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = read_secret_file("password_file", &p, SecretForm::Line)
            .unwrap()
            .warning
            .unwrap();
        assert!(
            w.contains("`password_file`") && w.contains("0644") && w.contains("chmod 600"),
            "{w}"
        );
        assert!(!w.contains("s3cret"), "{w}");

        std::fs::write(&p, "two\nlines\n").unwrap();
        let e = read_secret_file("password_file", &p, SecretForm::Line)
            .err()
            .unwrap();
        assert!(e.contains("single line") && !e.contains("two"), "{e}");
        // A key file keeps its lines.
        let k = read_secret_file("private_key_file", &p, SecretForm::Text).unwrap();
        assert_eq!(k.value.expose_secret(), "two\nlines\n");

        std::fs::write(&p, "\n").unwrap();
        let e = read_secret_file("password_file", &p, SecretForm::Line)
            .err()
            .unwrap();
        assert!(e.contains("is empty"), "{e}");
        let e = read_secret_file("password_file", &dir.path().join("nope"), SecretForm::Line)
            .err()
            .unwrap();
        assert!(e.contains("`password_file`") && e.contains("nope"), "{e}");
    }

    #[test]
    fn group_readable_secret_is_fine_for_the_services_own_group() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "x\n").unwrap();
        // Created with this process's group: the documented 0640 root:sds-sync setup.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let s = read_secret_file("password_file", &p, SecretForm::Line).unwrap();
        assert!(s.warning.is_none(), "{:?}", s.warning);
        // A group this process is not in (nogroup on Debian, or any id we are not in).
        let foreign = (60000..65534).find(|g| !in_group(*g)).unwrap();
        std::os::unix::fs::chown(&p, None, Some(foreign)).unwrap();
        let s = read_secret_file("password_file", &p, SecretForm::Line).unwrap();
        let w = s.warning.unwrap();
        assert!(w.contains("group members"), "{w}");
    }

    #[test]
    fn leftovers_are_bounded() {
        let mut l = Leftovers::default();
        for name in [
            "Student.csv",
            "./a.csv.0011.sds-sync-tmp",
            ".sds-sync-tmp.old",
            ".",
            "..",
        ] {
            l.offer(name).unwrap();
        }
        l.offer(&format!("{}{TMP_SUFFIX}", "x".repeat(MAX_NAME_BYTES)))
            .unwrap();
        assert_eq!(
            l.into_names(),
            vec!["a.csv.0011.sds-sync-tmp", ".sds-sync-tmp.old"]
        );

        let mut l = Leftovers::default();
        for i in 0..MAX_LEFTOVERS + 10 {
            l.offer(&format!("f{i}{TMP_SUFFIX}")).unwrap();
        }
        assert_eq!(l.into_names().len(), MAX_LEFTOVERS);

        let mut l = Leftovers::default();
        let mut failed = None;
        for i in 0..=MAX_LISTING_ENTRIES {
            if let Err(e) = l.offer(if i % 2 == 0 { "a.csv" } else { "b.csv" }) {
                failed = Some((i, e));
                break;
            }
        }
        let (at, e) = failed.unwrap();
        assert_eq!(at, MAX_LISTING_ENTRIES);
        assert!(e.contains("more than"), "{e}");
    }

    /// A destination in memory, for the driver's own rules (the transports are tested against
    /// real servers in tests/conformance.rs).
    #[derive(Default)]
    struct Memory {
        files: std::collections::BTreeMap<String, Vec<u8>>,
        sizes_unknown: bool,
        /// Store this many bytes fewer than sent (a server that lost data).
        short_by: usize,
        fail_rename_at: Option<usize>,
        renames: usize,
    }

    impl Stage for Memory {
        fn destination(&self) -> &str {
            "mem"
        }
        fn error(&self, kind: ErrorKind, message: String) -> DeliverError {
            DeliverError {
                destination: "mem".into(),
                kind,
                message,
            }
        }
        async fn list_ours(&mut self) -> Result<Vec<String>, DeliverError> {
            let mut l = Leftovers::default();
            for name in self.files.keys() {
                l.offer(name).unwrap();
            }
            Ok(l.into_names())
        }
        async fn put(&mut self, name: &str, data: &mut Payload) -> Result<(), DeliverError> {
            let mut all = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                match data.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(self.error(ErrorKind::Retryable, e.to_string())),
                }
            }
            all.truncate(all.len().saturating_sub(self.short_by));
            self.files.insert(name.into(), all);
            Ok(())
        }
        async fn size(&mut self, name: &str) -> Result<Option<u64>, DeliverError> {
            Ok((!self.sizes_unknown).then(|| self.files[name].len() as u64))
        }
        async fn rename(&mut self, from: &str, to: &str) -> Result<(), DeliverError> {
            if self.fail_rename_at == Some(self.renames) {
                return Err(self.error(ErrorKind::Permanent, format!("refused {to}")));
            }
            self.renames += 1;
            let v = self.files.remove(from).unwrap();
            self.files.insert(to.into(), v);
            Ok(())
        }
        async fn remove(&mut self, name: &str) -> Result<(), DeliverError> {
            self.files.remove(name);
            Ok(())
        }
    }

    fn set_of(dir: &Path, files: &[(&str, &[u8])]) -> FileSet {
        FileSet {
            snapshot_id: "1".into(),
            created_at: "t".into(),
            dir: dir.to_path_buf(),
            files: files
                .iter()
                .map(|(n, b)| {
                    std::fs::write(dir.join(n), b).unwrap();
                    FileEntry {
                        name: (*n).into(),
                        bytes: b.len() as u64,
                        hash: String::new(),
                        rows: 0,
                        changes: None,
                        license: false,
                    }
                })
                .collect(),
        }
    }

    fn names(m: &Memory) -> Vec<&str> {
        m.files.keys().map(String::as_str).collect()
    }

    #[tokio::test]
    async fn driver_replaces_the_set_and_counts_what_it_did() {
        let dir = tempfile::tempdir().unwrap();
        let set = set_of(dir.path(), &[("a.csv", b"1"), ("b.csv", b"22")]);
        let mut m = Memory::default();
        m.files.insert("a.csv".into(), b"old".to_vec());
        m.files
            .insert("x.csv.00.sds-sync-tmp".into(), b"left".to_vec());
        m.sizes_unknown = true;
        let s = deliver(&mut m, &set, false, &[], None).await.unwrap();
        assert_eq!(names(&m), ["a.csv", "b.csv"]);
        assert_eq!(m.files["b.csv"], b"22");
        assert_eq!(
            s,
            Summary {
                files: 2,
                bytes: 3,
                leftovers: 1,
                unverified: 2
            }
        );
    }

    #[tokio::test]
    async fn driver_removes_its_temporaries_when_a_size_differs() {
        let dir = tempfile::tempdir().unwrap();
        let set = set_of(dir.path(), &[("a.csv", b"11"), ("b.csv", b"22")]);
        let mut m = Memory {
            short_by: 1,
            ..Memory::default()
        };
        m.files.insert("a.csv".into(), b"old".to_vec());
        let err = deliver(&mut m, &set, false, &[], None).await.unwrap_err();
        assert!(!err.is_permanent());
        assert!(
            err.message.contains("holds 1 bytes") && err.message.contains("2 were sent"),
            "{err}"
        );
        assert_eq!(names(&m), ["a.csv"]);
        assert_eq!(m.files["a.csv"], b"old");
    }

    #[tokio::test]
    async fn driver_says_how_far_a_failed_burst_got() {
        let dir = tempfile::tempdir().unwrap();
        let set = set_of(
            dir.path(),
            &[("a.csv", b"1"), ("b.csv", b"2"), ("c.csv", b"3")],
        );
        let mut m = Memory {
            fail_rename_at: Some(1),
            ..Memory::default()
        };
        let err = deliver(&mut m, &set, false, &[], None).await.unwrap_err();
        assert!(err.is_permanent());
        assert!(
            err.message
                .contains("refused b.csv; 1 of 3 files had already been replaced"),
            "{err}"
        );
        // What was not renamed is not left behind.
        assert_eq!(names(&m), ["a.csv"]);
    }

    #[tokio::test]
    async fn driver_refuses_unusable_names_before_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = set_of(dir.path(), &[("a.csv", b"1")]);
        set.files[0].name = "../a.csv".into();
        let mut m = Memory::default();
        m.files.insert("x.sds-sync-tmp".into(), Vec::new());
        let err = deliver(&mut m, &set, false, &[], None).await.unwrap_err();
        assert!(
            err.is_permanent() && err.message.contains("\"../a.csv\""),
            "{err}"
        );
        assert_eq!(names(&m), ["x.sds-sync-tmp"]);
    }

    #[tokio::test]
    async fn probe_leaves_nothing() {
        let mut m = Memory::default();
        probe(&mut m).await.unwrap();
        assert!(m.files.is_empty());
        assert_eq!(m.renames, 1);
    }

    #[tokio::test]
    async fn payload_counts_and_names_an_injected_cut() {
        let mut p = Payload::bytes(b"0123456789");
        p.cut_after = Some(4);
        let mut buf = [0u8; 8];
        assert_eq!(p.read(&mut buf).await.unwrap(), 4);
        assert!(p.read(&mut buf).await.is_err());
        assert_eq!(p.bytes_read(), 4);
        assert!(p.failure.unwrap().contains("after 4 bytes"));
        let mut p = Payload::bytes(b"0123456789");
        assert_eq!(p.read_chunk(64).await.unwrap().len(), 10);
        assert!(p.read_chunk(64).await.unwrap().is_empty());
    }
}
