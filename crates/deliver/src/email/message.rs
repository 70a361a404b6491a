//! Building the one message per snapshot: the plain-text run summary (counts only, no personal
//! data), the files as `text/csv` attachments or one zip, and the encoded-size limit.

use super::config::{EmailAttach, render_subject};
use crate::FileSet;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use sds_core::{FileEntry, RowCounts};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::Path;

/// base64 body lines: 57 input bytes become 76 characters plus CRLF.
const B64_LINE_IN: u64 = 57;
const B64_LINE_OUT: u64 = 78;

/// What the message builder needs from the destination.
pub(crate) struct MessageParams {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject_template: String,
    pub attach: EmailAttach,
    pub max_message_bytes: u64,
    /// For log events.
    pub destination: String,
}

/// A message ready for the wire.
pub(crate) struct Built {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
    /// Bytes of the files before encoding (or of the zip).
    pub payload_bytes: u64,
}

#[derive(Debug)]
pub(crate) enum BuildError {
    /// The snapshot folder does not hold what the manifest says (missing file, other size).
    Snapshot(String),
    /// Over `max_message_bytes`; `encoded` is the (at least) encoded size.
    TooLarge { encoded: u64 },
    /// The message could not be put together (a bug or a config value lettre refuses).
    Build(String),
}

/// Size of `raw` bytes once base64-encoded in 76-character lines, as lettre writes it.
pub(crate) fn encoded_len(raw: u64) -> u64 {
    let b64 = raw.div_ceil(3) * 4;
    let lines = b64.div_ceil(76);
    b64 + 2 * lines.saturating_sub(1)
}

/// The change summary for the subject: `first snapshot` when nothing to compare with.
pub(crate) fn summary(files: &[FileEntry]) -> String {
    let compared: Vec<RowCounts> = files.iter().filter_map(|f| f.changes).collect();
    if compared.is_empty() {
        return "first snapshot".to_owned();
    }
    let (added, removed, changed) = compared.iter().fold((0, 0, 0), |(a, r, c), x| {
        (a + x.added, r + x.removed, c + x.changed)
    });
    let mut s = format!("{added} added, {removed} removed, {changed} changed");
    let new_files = files.len() - compared.len();
    if new_files > 0 {
        let _ = write!(
            s,
            ", {new_files} new file{}",
            if new_files == 1 { "" } else { "s" }
        );
    }
    s
}

/// The zip attachment's name: the snapshot id, reduced to characters every system accepts.
pub(crate) fn zip_name(snapshot_id: &str) -> String {
    let id: String = snapshot_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("sds-export-{id}.zip")
}

/// The plain-text body. Counts only: no names, IDs or other personal data.
pub(crate) fn body_text(set: &FileSet, files: &[FileEntry], attach: EmailAttach) -> String {
    let mut b = String::new();
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let _ = writeln!(b, "sds-sync published a new School Data Sync snapshot.");
    let _ = writeln!(b);
    let _ = writeln!(b, "Snapshot: {}", set.snapshot_id);
    let _ = writeln!(b, "Published: {}", set.created_at);
    let _ = writeln!(b, "Changes: {}", summary(files));
    let _ = writeln!(b, "Total: {rows} rows in {} files", files.len());
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "Per file (data rows; changes against the previous snapshot):"
    );
    for f in files {
        match f.changes {
            Some(c) => {
                let _ = writeln!(
                    b,
                    "  {}: {} rows; {} added, {} removed, {} changed",
                    f.name, f.rows, c.added, c.removed, c.changed
                );
            }
            None => {
                let _ = writeln!(b, "  {}: {} rows; first snapshot", f.name, f.rows);
            }
        }
    }
    let _ = writeln!(b);
    match attach {
        EmailAttach::Files => {
            let _ = writeln!(b, "Attached: the {} files above, as CSV.", files.len());
        }
        EmailAttach::Zip => {
            let _ = writeln!(
                b,
                "Attached: {}, holding the {} files above.",
                zip_name(&set.snapshot_id),
                files.len()
            );
        }
    }
    let _ = writeln!(
        b,
        "School Data Sync reads a missing file as deleted records: upload all files together."
    );
    b
}

/// Puts the whole message together and checks its encoded size. Reads the snapshot files, so
/// run it on a blocking thread.
pub(crate) fn build(
    p: &MessageParams,
    set: &FileSet,
    files: &[FileEntry],
) -> Result<Built, BuildError> {
    // Cheap early refusal from the manifest alone, before reading anything: the attachments by
    // themselves already exceed the limit.
    if p.attach == EmailAttach::Files {
        let encoded: u64 = files.iter().map(|f| encoded_len(f.bytes)).sum();
        if encoded > p.max_message_bytes {
            return Err(BuildError::TooLarge { encoded });
        }
    }
    let text = body_text(set, files, p.attach);
    let mut mp = MultiPart::mixed().singlepart(SinglePart::plain(text));
    let mut payload_bytes = 0u64;
    match p.attach {
        EmailAttach::Files => {
            let csv = ContentType::parse("text/csv; charset=utf-8")
                .map_err(|e| BuildError::Build(e.to_string()))?;
            for f in files {
                let path = set.dir.join(&f.name);
                let data = std::fs::read(&path).map_err(|e| snapshot_err(&path, &e))?;
                check_len(&path, data.len() as u64, f.bytes)?;
                payload_bytes += f.bytes;
                tracing::debug!(destination = %p.destination, file = %f.name, bytes = f.bytes, "attaching file");
                mp = mp.singlepart(
                    Attachment::new(f.name.clone()).body(base64_body(data)?, csv.clone()),
                );
            }
        }
        EmailAttach::Zip => {
            // The zip's base64 must fit: stop compressing as soon as it cannot.
            let raw_limit = p.max_message_bytes / B64_LINE_OUT * B64_LINE_IN + B64_LINE_IN;
            let zip = build_zip(set, files, raw_limit)?;
            payload_bytes = zip.len() as u64;
            tracing::debug!(destination = %p.destination, files = files.len(), bytes = payload_bytes, "attaching zip");
            let ct = ContentType::parse("application/zip")
                .map_err(|e| BuildError::Build(e.to_string()))?;
            mp = mp.singlepart(
                Attachment::new(zip_name(&set.snapshot_id)).body(base64_body(zip)?, ct),
            );
        }
    }
    let subject = render_subject(
        &p.subject_template,
        &set.created_at,
        &set.snapshot_id,
        &summary(files),
    );
    let mut builder = Message::builder().from(p.from.clone()).subject(subject);
    for to in &p.to {
        builder = builder.to(to.clone());
    }
    let message = builder
        .multipart(mp)
        .map_err(|e| BuildError::Build(e.to_string()))?;
    let bytes = message.formatted();
    if bytes.len() as u64 > p.max_message_bytes {
        return Err(BuildError::TooLarge {
            encoded: bytes.len() as u64,
        });
    }
    Ok(Built {
        envelope: message.envelope().clone(),
        bytes,
        payload_bytes,
    })
}

/// base64 always: it keeps the bytes exact (CRLF vs LF, a BOM, long lines), which 7bit or
/// quoted-printable transports may not.
fn base64_body(data: Vec<u8>) -> Result<Body, BuildError> {
    Body::new_with_encoding(data, ContentTransferEncoding::Base64)
        .map_err(|_| BuildError::Build("base64 encoding refused".into()))
}

fn snapshot_err(path: &Path, e: &io::Error) -> BuildError {
    BuildError::Snapshot(format!("cannot read snapshot file {}: {e}", path.display()))
}

fn check_len(path: &Path, got: u64, expected: u64) -> Result<(), BuildError> {
    if got == expected {
        return Ok(());
    }
    Err(BuildError::Snapshot(format!(
        "snapshot file {} has {got} bytes but the snapshot says {expected}; the snapshot file changed underneath",
        path.display()
    )))
}

/// Marks the zip buffer overflowing its budget, to tell it apart from real I/O errors.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("zip larger than the message allows")
    }
}
impl std::error::Error for OverBudget {}

/// An in-memory zip target that refuses to grow past `limit`, so a huge snapshot costs at
/// most about `max_message_bytes` of memory before it is refused.
struct Budgeted {
    inner: Cursor<Vec<u8>>,
    limit: u64,
    over: bool,
}

impl Write for Budgeted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.over {
            // Only the ZipWriter's drop writes after the refusal (its central directory); take
            // it in silence so it does not print a finalize error to stderr.
            return Ok(buf.len());
        }
        if self.inner.position() + buf.len() as u64 > self.limit {
            self.over = true;
            return Err(io::Error::other(OverBudget));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Budgeted {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn build_zip(set: &FileSet, files: &[FileEntry], limit: u64) -> Result<Vec<u8>, BuildError> {
    let zip_err = |e: zip::result::ZipError| -> BuildError {
        if let zip::result::ZipError::Io(io) = &e
            && io.get_ref().is_some_and(|i| i.is::<OverBudget>())
        {
            // At least this much would have had to be encoded.
            return BuildError::TooLarge {
                encoded: encoded_len(limit),
            };
        }
        BuildError::Build(format!("cannot build the zip: {e}"))
    };
    let mut zw = zip::ZipWriter::new(Budgeted {
        inner: Cursor::new(Vec::new()),
        limit,
        over: false,
    });
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip_time(&set.created_at))
        .large_file(files.iter().any(|f| f.bytes >= u64::from(u32::MAX)));
    for f in files {
        let path = set.dir.join(&f.name);
        let mut src = File::open(&path).map_err(|e| snapshot_err(&path, &e))?;
        zw.start_file(f.name.as_str(), options).map_err(zip_err)?;
        let copied = io::copy(&mut src, &mut zw).map_err(|e| {
            if e.get_ref().is_some_and(|i| i.is::<OverBudget>()) {
                BuildError::TooLarge {
                    encoded: encoded_len(limit),
                }
            } else {
                snapshot_err(&path, &e)
            }
        })?;
        check_len(&path, copied, f.bytes)?;
    }
    let out = zw.finish().map_err(zip_err)?;
    Ok(out.inner.into_inner())
}

/// The entries' modification time: the snapshot's publication time (`YYYY-MM-DDTHH:MM:SS…`),
/// so the same snapshot always zips the same way; the zip epoch if it does not parse.
fn zip_time(created_at: &str) -> zip::DateTime {
    let num = |r: std::ops::Range<usize>| created_at.get(r).and_then(|s| s.parse::<u16>().ok());
    let parts = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    );
    if let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = parts {
        let small = |v: u16| u8::try_from(v).unwrap_or(u8::MAX);
        if let Ok(t) =
            zip::DateTime::from_date_and_time(y, small(mo), small(d), small(h), small(mi), small(s))
        {
            return t;
        }
    }
    zip::DateTime::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, rows: u64, changes: Option<(u64, u64, u64)>) -> FileEntry {
        FileEntry {
            name: name.into(),
            bytes: 0,
            hash: String::new(),
            rows,
            changes: changes.map(|(added, removed, changed)| RowCounts {
                added,
                removed,
                changed,
            }),
            license: false,
        }
    }

    #[test]
    fn encoded_len_matches_lettre() {
        for n in [0usize, 1, 2, 3, 56, 57, 58, 114, 1000, 100_000] {
            let body =
                Body::new_with_encoding(vec![7u8; n], ContentTransferEncoding::Base64).unwrap();
            assert_eq!(encoded_len(n as u64), body.len() as u64, "n = {n}");
        }
    }

    #[test]
    fn summaries() {
        assert_eq!(
            summary(&[file("a", 1, None), file("b", 2, None)]),
            "first snapshot"
        );
        assert_eq!(
            summary(&[
                file("a", 1, Some((1, 2, 3))),
                file("b", 2, Some((10, 0, 1)))
            ]),
            "11 added, 2 removed, 4 changed"
        );
        assert_eq!(
            summary(&[file("a", 1, Some((1, 0, 0))), file("b", 2, None)]),
            "1 added, 0 removed, 0 changed, 1 new file"
        );
    }

    #[test]
    fn body_has_counts_per_file() {
        let set = FileSet {
            snapshot_id: "42".into(),
            created_at: "2026-11-28T02:00:00Z".into(),
            dir: "/nowhere".into(),
            files: vec![],
        };
        let files = [
            file("School.csv", 3, Some((1, 0, 2))),
            file("Student.csv", 120, None),
        ];
        let b = body_text(&set, &files, EmailAttach::Zip);
        assert!(b.contains("Snapshot: 42\n"), "{b}");
        assert!(b.contains("Published: 2026-11-28T02:00:00Z\n"), "{b}");
        assert!(
            b.contains("  School.csv: 3 rows; 1 added, 0 removed, 2 changed\n"),
            "{b}"
        );
        assert!(
            b.contains("  Student.csv: 120 rows; first snapshot\n"),
            "{b}"
        );
        assert!(b.contains("Total: 123 rows in 2 files\n"), "{b}");
        assert!(b.contains("sds-export-42.zip"), "{b}");
    }

    #[test]
    fn zip_names_and_times() {
        assert_eq!(
            zip_name("2026-11-28T02:00:00Z/1"),
            "sds-export-2026-11-28T02-00-00Z-1.zip"
        );
        let t = zip_time("2026-11-28T02:03:04Z");
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2026, 11, 28, 2, 3, 4)
        );
        assert_eq!(zip_time("garbage"), zip::DateTime::default());
    }
}
