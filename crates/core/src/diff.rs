//! Fingerprints and diffs between two exports of the same SDS file.
//!
//! The exporter writes every file sorted by its key (see [`FileSpec`]), so two versions of a file
//! can be compared by a sorted merge join that holds only the current and previous row of each
//! side: memory stays O(1) whatever the file size (a district's 7.5 million enrollment rows
//! included), and a change of SIS row order alone yields no difference because both sides are in
//! canonical order.
//!
//! Ordering, as the exporter writes it: rows compare field by field as byte strings (the same
//! order as `str`'s `Ord` on UTF-8), key fields first. Because the key columns are the leading
//! columns, "key first, then the rest" is simply lexicographic order over all fields. At most one
//! row per key.
//!
//! This module reads through `std::io::Read` only; opening files is the caller's business.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::csvout::RowSink;
use crate::files::RowCounts;
use crate::format::FileSpec;

/// Row counts of one file between the previous and the new export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    /// Data rows (header excluded) in the previous export; 0 when there was none.
    pub rows_old: u64,
    /// Data rows in the new export.
    pub rows_new: u64,
    /// Keys only in the new export.
    pub added: u64,
    /// Keys only in the previous export.
    pub removed: u64,
    /// Keys in both whose non-key fields differ. Always 0 for files keyed by the whole row,
    /// where a change shows up as one removed and one added row.
    pub changed: u64,
}

impl FileDiff {
    /// True when the two exports hold the same rows.
    pub fn is_unchanged(&self) -> bool {
        self.added == 0 && self.removed == 0 && self.changed == 0
    }

    /// The counts a snapshot keeps for each file (the row totals are its own).
    pub fn counts(&self) -> RowCounts {
        RowCounts {
            added: self.added,
            removed: self.removed,
            changed: self.changed,
        }
    }
}

/// Which side of a diff a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The previous (published) export.
    Old,
    /// The export just built.
    New,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Old => "previous snapshot's",
            Side::New => "new export's",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A row sorts before its predecessor: the file was not written in key order (for example a
    /// snapshot written by another version of sds-sync). The diff cannot be trusted.
    #[error(
        "{side} {file} is not sorted by its key: data row {row} sorts before the row above it \
         (written by another version?); the counts cannot be computed by a merge"
    )]
    Unsorted { file: String, side: Side, row: u64 },
    /// Two rows share a key, which the exporter never writes.
    #[error("{side} {file} has two rows with the same key at data row {row}")]
    DuplicateKey { file: String, side: Side, row: u64 },
    /// The header row is not the one this file has in the configured format (for example the
    /// previous snapshot was written in another SDS format). Rows cannot be compared.
    #[error("{side} {file} has header {found:?}, expected {expected:?}")]
    Header {
        file: String,
        side: Side,
        expected: Vec<String>,
        found: Vec<String>,
    },
    /// The bytes are not valid CSV, a row has the wrong number of fields, or reading failed.
    #[error("cannot read {side} {file}: {source}")]
    Csv {
        file: String,
        side: Side,
        #[source]
        source: csv::Error,
    },
}

/// Compares the previous export of a file (`None` when there was none: every row is added) with
/// the new one, both sorted by `spec`'s key as the exporter writes them.
///
/// Streams both inputs; the caller may wrap them in `BufReader` or not (the csv reader buffers).
pub fn diff_files<R1: Read, R2: Read>(
    spec: &FileSpec,
    old: Option<R1>,
    new: R2,
) -> Result<FileDiff, DiffError> {
    diff_impl(spec, old, new, false).map(|(total, _)| total)
}

/// As [`diff_files`], and also the counts split by `spec.entity_column` (e.g. `student` and
/// `teacher` rows of `enrollments.csv`), keyed by that column's value. A changed row counts for
/// its new value. Empty when the file has no entity column.
pub fn diff_files_by_entity<R1: Read, R2: Read>(
    spec: &FileSpec,
    old: Option<R1>,
    new: R2,
) -> Result<(FileDiff, BTreeMap<String, FileDiff>), DiffError> {
    diff_impl(spec, old, new, true)
}

/// Adds to the group of `row` (by `col`) when grouping.
fn group_of<'g>(
    groups: &'g mut Option<BTreeMap<String, FileDiff>>,
    col: Option<usize>,
    row: &csv::ByteRecord,
) -> Option<&'g mut FileDiff> {
    let (groups, col) = (groups.as_mut()?, col?);
    let value = String::from_utf8_lossy(row.get(col).unwrap_or_default()).into_owned();
    Some(groups.entry(value).or_default())
}

fn diff_impl<R1: Read, R2: Read>(
    spec: &FileSpec,
    old: Option<R1>,
    new: R2,
    by_entity: bool,
) -> Result<(FileDiff, BTreeMap<String, FileDiff>), DiffError> {
    let mut new = SortedRows::open(spec, Side::New, new)?;
    let mut merge = RowDiff::open(spec, old, by_entity)?;
    while new.advance()? {
        merge.merge.merge(&new.cur)?;
    }
    merge.merge.finish()
}

/// The diff of the previous export of a file (read and parsed, streaming) against the rows of
/// the new one as they are rendered, handed in file order as a [`RowSink`]: the new file is
/// never parsed back. Holds two rows per side, like [`diff_files`].
pub struct RowDiff<R: Read> {
    merge: Merge<R>,
    /// The new row being merged, and the one before it (for the sort check).
    cur: csv::ByteRecord,
    prev: csv::ByteRecord,
    /// The first error found while rows were pushed (a `RowSink` can only return `io::Error`).
    failed: Option<DiffError>,
}

/// The merge join of the old rows with new rows handed one by one.
struct Merge<R: Read> {
    file: &'static str,
    key: usize,
    col: Option<usize>,
    old: Option<SortedRows<R>>,
    have_old: bool,
    rows_new: u64,
    diff: FileDiff,
    groups: Option<BTreeMap<String, FileDiff>>,
}

impl<R: Read> RowDiff<R> {
    /// Starts the diff of `spec`'s file against `old` (`None`: every row is added), checking
    /// the old header. With `by_entity`, also counts by `spec.entity_column`.
    ///
    /// # Errors
    /// [`DiffError::Header`] when the previous file has another header (another format or
    /// optional columns); [`DiffError::Csv`] when it cannot be read.
    pub fn open(spec: &FileSpec, old: Option<R>, by_entity: bool) -> Result<Self, DiffError> {
        let mut old = match old {
            Some(r) => Some(SortedRows::open(spec, Side::Old, r)?),
            None => None,
        };
        let have_old = match old.as_mut() {
            Some(o) => o.advance()?,
            None => false,
        };
        Ok(RowDiff {
            merge: Merge {
                file: spec.name,
                // A key never spans more columns than the row has.
                key: spec.key_len().min(spec.header().len()),
                col: spec.entity_index().filter(|_| by_entity),
                old,
                have_old,
                rows_new: 0,
                diff: FileDiff::default(),
                groups: by_entity.then(BTreeMap::new),
            },
            cur: csv::ByteRecord::new(),
            prev: csv::ByteRecord::new(),
            failed: None,
        })
    }

    /// The counts: the whole file's, and by entity when asked (empty for a file without an
    /// entity column).
    ///
    /// # Errors
    /// The first error met while rows were pushed or the rest of the old file was read.
    pub fn finish(mut self) -> Result<(FileDiff, BTreeMap<String, FileDiff>), DiffError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.merge.finish()
    }

    fn push(&mut self, fields: &[&str]) -> Result<(), DiffError> {
        std::mem::swap(&mut self.cur, &mut self.prev);
        self.cur.clear();
        for f in fields {
            self.cur.push_field(f.as_bytes());
        }
        let m = &mut self.merge;
        if m.rows_new > 0 {
            let row = m.rows_new + 1;
            let file = m.file.to_string();
            match cmp_fields(&self.prev, &self.cur, 0, m.key) {
                Ordering::Less => {}
                Ordering::Equal => {
                    return Err(DiffError::DuplicateKey {
                        file,
                        side: Side::New,
                        row,
                    });
                }
                Ordering::Greater => {
                    return Err(DiffError::Unsorted {
                        file,
                        side: Side::New,
                        row,
                    });
                }
            }
        }
        m.merge(&self.cur)
    }
}

impl<R: Read> Merge<R> {
    /// Merges the next new row (sorted after the previous one: the caller checked) with the
    /// old rows up to its key.
    fn merge(&mut self, new: &csv::ByteRecord) -> Result<(), DiffError> {
        self.rows_new += 1;
        loop {
            let step = match (self.have_old, self.old.as_ref()) {
                (true, Some(o)) => cmp_fields(&o.cur, new, 0, self.key),
                _ => Ordering::Greater,
            };
            match step {
                Ordering::Less => self.remove_old()?,
                Ordering::Greater => {
                    self.diff.added += 1;
                    if let Some(g) = group_of(&mut self.groups, self.col, new) {
                        g.added += 1;
                        g.rows_new += 1;
                    }
                    return Ok(());
                }
                Ordering::Equal => {
                    if let Some(o) = self.old.as_mut() {
                        let changed =
                            cmp_fields(&o.cur, new, self.key, usize::MAX) != Ordering::Equal;
                        if changed {
                            self.diff.changed += 1;
                        }
                        if let Some(g) = group_of(&mut self.groups, self.col, &o.cur) {
                            g.rows_old += 1;
                        }
                        if let Some(g) = group_of(&mut self.groups, self.col, new) {
                            g.rows_new += 1;
                            if changed {
                                g.changed += 1;
                            }
                        }
                        self.have_old = o.advance()?;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Counts the current old row as removed and reads the next.
    fn remove_old(&mut self) -> Result<(), DiffError> {
        if let Some(o) = self.old.as_mut() {
            self.diff.removed += 1;
            if let Some(g) = group_of(&mut self.groups, self.col, &o.cur) {
                g.removed += 1;
                g.rows_old += 1;
            }
            self.have_old = o.advance()?;
        } else {
            self.have_old = false;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(FileDiff, BTreeMap<String, FileDiff>), DiffError> {
        while self.have_old {
            self.remove_old()?;
        }
        self.diff.rows_old = self.old.as_ref().map_or(0, |o| o.rows);
        self.diff.rows_new = self.rows_new;
        Ok((self.diff, self.groups.unwrap_or_default()))
    }
}

impl<R: Read> RowSink for RowDiff<R> {
    fn row(&mut self, fields: &[&str]) -> io::Result<()> {
        if self.failed.is_some() {
            return Err(io::Error::other("the diff already failed"));
        }
        self.push(fields).map_err(|e| {
            let msg = e.to_string();
            self.failed = Some(e);
            io::Error::other(msg)
        })
    }
}

/// Compares fields `from..to` of two records as byte strings, field by field; a record that runs
/// out of fields first sorts first.
fn cmp_fields(a: &csv::ByteRecord, b: &csv::ByteRecord, from: usize, to: usize) -> Ordering {
    let a_fields = a.iter().skip(from).take(to.saturating_sub(from));
    let b_fields = b.iter().skip(from).take(to.saturating_sub(from));
    a_fields.cmp(b_fields)
}

/// One side of the merge: a csv reader plus the current and previous row, reused buffers.
struct SortedRows<R: Read> {
    file: &'static str,
    side: Side,
    key: usize,
    reader: csv::Reader<R>,
    cur: csv::ByteRecord,
    prev: csv::ByteRecord,
    rows: u64,
}

impl<R: Read> SortedRows<R> {
    fn open(spec: &FileSpec, side: Side, r: R) -> Result<Self, DiffError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(r);
        let csv_err = |source| DiffError::Csv {
            file: spec.name.to_string(),
            side,
            source,
        };
        let found = reader.byte_headers().map_err(csv_err)?;
        let header = spec.header();
        if found.len() != header.len() || found.iter().zip(&header).any(|(f, e)| f != e.as_bytes())
        {
            return Err(DiffError::Header {
                file: spec.name.to_string(),
                side,
                expected: header.iter().map(|s| s.to_string()).collect(),
                found: found
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            });
        }
        Ok(SortedRows {
            file: spec.name,
            side,
            key: spec.key_len().min(header.len()),
            reader,
            cur: csv::ByteRecord::new(),
            prev: csv::ByteRecord::new(),
            rows: 0,
        })
    }

    /// Reads the next row into `cur` (keeping the last one in `prev`) and checks that it sorts
    /// strictly after its predecessor by key. Returns false at the end of the file.
    fn advance(&mut self) -> Result<bool, DiffError> {
        std::mem::swap(&mut self.cur, &mut self.prev);
        let more = self
            .reader
            .read_byte_record(&mut self.cur)
            .map_err(|source| DiffError::Csv {
                file: self.file.to_string(),
                side: self.side,
                source,
            })?;
        if !more {
            return Ok(false);
        }
        self.rows += 1;
        if self.rows > 1 {
            match cmp_fields(&self.prev, &self.cur, 0, self.key) {
                Ordering::Less => {}
                Ordering::Equal => {
                    return Err(DiffError::DuplicateKey {
                        file: self.file.to_string(),
                        side: self.side,
                        row: self.rows,
                    });
                }
                Ordering::Greater => {
                    return Err(DiffError::Unsorted {
                        file: self.file.to_string(),
                        side: self.side,
                        row: self.rows,
                    });
                }
            }
        }
        Ok(true)
    }
}

/// A file's content fingerprint: blake3 of its bytes, and its length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHash {
    /// Lower-case hex blake3 digest (64 characters).
    pub hash: String,
    pub bytes: u64,
}

/// Hashes everything `r` yields. Two files are byte-identical exactly when their hashes match
/// (for all practical purposes), which is how "nothing changed" is decided cheaply.
pub fn content_hash<R: Read>(r: R) -> io::Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    let mut counted = CountingReader { inner: r, bytes: 0 };
    hasher.update_reader(&mut counted)?;
    Ok(ContentHash {
        hash: hasher.finalize().to_hex().to_string(),
        bytes: counted.bytes,
    })
}

struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A `Write` adapter that fingerprints the bytes on their way through, so a file can be hashed
/// while it is written instead of being read back.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// Returns the inner writer (not flushed: flush it before handing it over) and the
    /// fingerprint of everything written.
    pub fn finish(self) -> (W, ContentHash) {
        let hash = ContentHash {
            hash: self.hasher.finalize().to_hex().to_string(),
            bytes: self.bytes,
        };
        (self.inner, hash)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted, so a short write stays consistent.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::format::{Column, Field, Need, Values};

    const fn col(name: &'static str) -> Column {
        Column {
            name,
            need: Need::Required,
            values: Values::Text,
            field: Some(Field::Id),
            optional: None,
        }
    }
    const KEYED: FileSpec = FileSpec {
        name: "Student.csv",
        columns: &[col("SIS ID"), col("School SIS ID"), col("Name")],
        key: &["SIS ID"],
        entity_column: None,
        ..crate::format::V1_STUDENT
    };
    const WHOLE_ROW: FileSpec = crate::format::V1_STUDENT_ENROLLMENT;

    fn csv_of(spec: &FileSpec, rows: &[&str]) -> Vec<u8> {
        let mut s = spec.header().join(",");
        s.push_str("\r\n");
        for r in rows {
            s.push_str(r);
            s.push_str("\r\n");
        }
        s.into_bytes()
    }

    fn diff(spec: &FileSpec, old: Option<&[&str]>, new: &[&str]) -> Result<FileDiff, DiffError> {
        let old = old.map(|rows| csv_of(spec, rows));
        diff_files(spec, old.as_deref(), csv_of(spec, new).as_slice())
    }

    fn counts(rows_old: u64, rows_new: u64, added: u64, removed: u64, changed: u64) -> FileDiff {
        FileDiff {
            rows_old,
            rows_new,
            added,
            removed,
            changed,
        }
    }

    #[test]
    fn identical_files_are_unchanged() {
        let rows = ["1,A,Ann", "2,A,Bob", "3,B,Cy"];
        let d = diff(&KEYED, Some(&rows), &rows).unwrap();
        assert_eq!(d, counts(3, 3, 0, 0, 0));
        assert!(d.is_unchanged());
    }

    #[test]
    fn added_removed_and_changed_are_counted_by_key() {
        // old: 1 2 3 5    new: 1 (changed) 3 4 5 6
        // 2 removed; 4 and 6 added; 1 changed (name); 3 and 5 same.
        let old = ["1,A,Ann", "2,A,Bob", "3,B,Cy", "5,B,Eve"];
        let new = ["1,A,Anna", "3,B,Cy", "4,B,Dan", "5,B,Eve", "6,C,Fay"];
        assert_eq!(
            diff(&KEYED, Some(&old), &new).unwrap(),
            counts(4, 5, 2, 1, 1)
        );
    }

    #[test]
    fn changed_school_is_a_change_not_add_remove() {
        let d = diff(&KEYED, Some(&["7,A,Zed"]), &["7,B,Zed"]).unwrap();
        assert_eq!(d, counts(1, 1, 0, 0, 1));
    }

    #[test]
    fn whole_row_key_shows_changes_as_removed_plus_added() {
        // Student 20 moves from section S1 to S2: one removed, one added, never "changed".
        let old = ["S1,10", "S1,20", "S2,10"];
        let new = ["S1,10", "S2,10", "S2,20"];
        assert_eq!(
            diff(&WHOLE_ROW, Some(&old), &new).unwrap(),
            counts(3, 3, 1, 1, 0)
        );
    }

    #[test]
    fn no_previous_file_means_everything_added() {
        let d = diff(&KEYED, None, &["1,A,Ann", "2,A,Bob"]).unwrap();
        assert_eq!(d, counts(0, 2, 2, 0, 0));
    }

    #[test]
    fn header_only_old_means_everything_added() {
        let d = diff(&KEYED, Some(&[]), &["1,A,Ann", "2,A,Bob"]).unwrap();
        assert_eq!(d, counts(0, 2, 2, 0, 0));
    }

    #[test]
    fn header_only_new_means_everything_removed() {
        let d = diff(&KEYED, Some(&["1,A,Ann", "2,A,Bob", "3,B,Cy"]), &[]).unwrap();
        assert_eq!(d, counts(3, 0, 0, 3, 0));
    }

    #[test]
    fn both_header_only() {
        assert_eq!(diff(&KEYED, Some(&[]), &[]).unwrap(), counts(0, 0, 0, 0, 0));
        assert_eq!(diff(&KEYED, None, &[]).unwrap(), counts(0, 0, 0, 0, 0));
    }

    #[test]
    fn unsorted_new_file_is_detected_with_its_row() {
        let err = diff(
            &KEYED,
            Some(&["1,A,Ann"]),
            &["1,A,Ann", "3,A,Cy", "2,A,Bob"],
        )
        .unwrap_err();
        match err {
            DiffError::Unsorted { file, side, row } => {
                assert_eq!((file.as_str(), side, row), ("Student.csv", Side::New, 3));
            }
            other => panic!("expected Unsorted, got {other}"),
        }
    }

    #[test]
    fn unsorted_old_file_is_detected_even_past_the_end_of_new() {
        // The merge runs out of new rows first; the old side must still be checked.
        let err = diff(&KEYED, Some(&["2,A,Bob", "1,A,Ann"]), &[]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Unsorted {
                    side: Side::Old,
                    row: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn order_is_bytewise_not_numeric() {
        // "10" < "9" as byte strings: this is sorted for the exporter.
        let d = diff(&KEYED, None, &["10,A,X", "9,A,Y"]).unwrap();
        assert_eq!(d.added, 2);
        assert!(matches!(
            diff(&KEYED, None, &["9,A,Y", "10,A,X"]),
            Err(DiffError::Unsorted { row: 2, .. })
        ));
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let err = diff(&KEYED, None, &["1,A,Ann", "1,B,Ann"]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::DuplicateKey {
                    side: Side::New,
                    row: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn quoted_fields_with_commas_and_quotes() {
        // Field compared unquoted: `"Smith, Ann"` is the value `Smith, Ann`.
        let old = ["1,A,\"Smith, Ann\"", "2,A,\"O\"\"Neil\""];
        let new = ["1,A,\"Smith, Ann\"", "2,A,\"O'Neil\""];
        assert_eq!(
            diff(&KEYED, Some(&old), &new).unwrap(),
            counts(2, 2, 0, 0, 1)
        );
        // A quoted key containing a comma is one field, not two.
        let d = diff(&WHOLE_ROW, Some(&["\"S,1\",10"]), &["\"S,1\",10"]).unwrap();
        assert_eq!(d, counts(1, 1, 0, 0, 0));
    }

    #[test]
    fn quoting_style_alone_is_not_a_change() {
        let d = diff(&KEYED, Some(&["1,A,Ann"]), &["\"1\",\"A\",\"Ann\""]).unwrap();
        assert_eq!(d, counts(1, 1, 0, 0, 0));
    }

    #[test]
    fn wrong_header_is_reported() {
        let other = b"SIS ID,Name\r\n1,Ann\r\n".as_slice();
        let err = diff_files(&KEYED, Some(other), csv_of(&KEYED, &[]).as_slice()).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Header {
                    side: Side::Old,
                    ..
                }
            ),
            "{err}"
        );
        let err = diff_files(&KEYED, None::<&[u8]>, b"".as_slice()).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Header {
                    side: Side::New,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn ragged_row_is_a_csv_error() {
        let err = diff(&KEYED, None, &["1,A"]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Csv {
                    side: Side::New,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn utf8_bom_and_lf_line_ends_are_accepted() {
        let old = "\u{feff}SIS ID,School SIS ID,Name\n1,A,Ann\n";
        let d = diff_files(
            &KEYED,
            Some(old.as_bytes()),
            csv_of(&KEYED, &["1,A,Ann"]).as_slice(),
        );
        assert_eq!(d.unwrap(), counts(1, 1, 0, 0, 0));
    }

    #[test]
    fn large_streams_in_constant_memory() {
        // 200k rows generated on the fly: the diff never holds more than a couple of rows.
        struct Gen {
            next: u64,
            end: u64,
            skip_every: u64,
            buf: Vec<u8>,
            pos: usize,
            header_done: bool,
        }
        impl Read for Gen {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                while self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                    if !self.header_done {
                        self.header_done = true;
                        self.buf.extend_from_slice(b"Section SIS ID,SIS ID\r\n");
                    } else if self.next < self.end {
                        let n = self.next;
                        self.next += 1;
                        if self.skip_every != 0 && n.is_multiple_of(self.skip_every) {
                            continue;
                        }
                        // Zero-padded so byte order equals numeric order.
                        write!(self.buf, "S{:09},{}\r\n", n, n).ok();
                    } else {
                        return Ok(0);
                    }
                }
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
        let gen_rows = |skip_every| Gen {
            next: 0,
            end: 200_000,
            skip_every,
            buf: Vec::new(),
            pos: 0,
            header_done: false,
        };
        let d = diff_files(&WHOLE_ROW, Some(gen_rows(0)), gen_rows(100)).unwrap();
        assert_eq!(d, counts(200_000, 198_000, 0, 2_000, 0));
    }

    #[test]
    fn content_hash_counts_bytes_and_matches_hashing_writer() {
        let data = b"SIS ID,Name\r\n1,Ann\r\n";
        let h = content_hash(data.as_slice()).unwrap();
        assert_eq!(h.bytes, data.len() as u64);
        assert_eq!(h.hash, blake3::hash(data).to_hex().to_string());
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(data).unwrap();
        let (inner, h2) = w.finish();
        assert_eq!(inner, data);
        assert_eq!(h, h2);
        assert_ne!(content_hash(b"x".as_slice()).unwrap().hash, h.hash);
    }

    #[test]
    fn mixed_file_is_split_by_entity() {
        let spec = crate::format::V2_ENROLLMENTS;
        let old = csv_of(
            &spec,
            &[
                "c1,s1,student",
                "c1,s2,student",
                "c1,t1,teacher",
                "c2,s1,student",
                "c2,t2,teacher",
            ],
        );
        // Every teacher row goes, one student row is added: 2 of 5 rows overall (40%), but the
        // teacher entity lost all of its rows.
        let new = csv_of(
            &spec,
            &[
                "c1,s1,student",
                "c1,s2,student",
                "c1,s3,student",
                "c2,s1,student",
            ],
        );
        let (total, groups) =
            diff_files_by_entity(&spec, Some(old.as_slice()), new.as_slice()).unwrap();
        assert_eq!(total, counts(5, 4, 1, 2, 0));
        assert_eq!(groups.len(), 2);
        assert_eq!(groups["student"], counts(3, 4, 1, 0, 0));
        assert_eq!(groups["teacher"], counts(2, 0, 0, 2, 0));
    }

    /// [`RowDiff`] fed the new rows as the renderer hands them, split at commas.
    fn pushed(
        spec: &FileSpec,
        old: Option<&[u8]>,
        new: &[&str],
    ) -> Result<(FileDiff, BTreeMap<String, FileDiff>), DiffError> {
        let mut d = RowDiff::open(spec, old, true)?;
        for row in new {
            let fields: Vec<&str> = row.split(',').collect();
            if d.row(&fields).is_err() {
                break;
            }
        }
        d.finish()
    }

    #[test]
    fn pushed_rows_give_the_counts_of_the_written_file() {
        let spec = crate::format::V2_ENROLLMENTS;
        let old_rows = [
            "c1,s1,student",
            "c1,s2,student",
            "c1,t1,teacher",
            "c2,t2,teacher",
        ];
        let new_rows = ["c1,s1,student", "c1,s3,student", "c2,s1,student"];
        let old = csv_of(&spec, &old_rows);
        let new = csv_of(&spec, &new_rows);
        let read = diff_files_by_entity(&spec, Some(old.as_slice()), new.as_slice()).unwrap();
        let (total, groups) = pushed(&spec, Some(old.as_slice()), &new_rows).unwrap();
        assert_eq!((total, groups.clone()), read);
        assert_eq!(total, counts(4, 3, 2, 3, 0));
        assert_eq!(groups["teacher"], counts(2, 0, 0, 2, 0));
        // Keyed rows: changed, added, removed, and the old rows left after the last new one.
        let old = csv_of(
            &KEYED,
            &["1,A,Ann", "2,A,Bob", "3,B,Cy", "5,B,Eve", "7,C,Gus"],
        );
        let (total, _) = pushed(
            &KEYED,
            Some(old.as_slice()),
            &["1,A,Anna", "3,B,Cy", "4,B,Dan"],
        )
        .unwrap();
        assert_eq!(total, counts(5, 3, 1, 3, 1));
        let (total, _) = pushed(&KEYED, None, &["1,A,Ann"]).unwrap();
        assert_eq!(total, counts(0, 1, 1, 0, 0));
    }

    #[test]
    fn pushed_rows_out_of_order_or_another_old_header_are_errors() {
        let old = csv_of(&KEYED, &["1,A,Ann"]);
        let err = pushed(&KEYED, Some(old.as_slice()), &["2,A,Bob", "1,A,Ann"]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Unsorted {
                    side: Side::New,
                    row: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = pushed(&KEYED, Some(old.as_slice()), &["1,A,Ann", "1,A,Ann"]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::DuplicateKey {
                    side: Side::New,
                    row: 2,
                    ..
                }
            ),
            "{err}"
        );
        let other = csv_of(&WHOLE_ROW, &["S1,10"]);
        let err = pushed(&KEYED, Some(other.as_slice()), &["1,A,Ann"]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Header {
                    side: Side::Old,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn changed_rows_count_for_their_new_entity_and_plain_files_have_no_groups() {
        let spec = crate::format::V2_USERS;
        let old = csv_of(
            &spec,
            &["u1,001,A,B,a@x,,student,09", "u2,001,C,D,c@x,,teacher,"],
        );
        let new = csv_of(
            &spec,
            &["u1,001,A,B,a@x,,student,10", "u2,001,C,D,c@x,,teacher,"],
        );
        let (total, groups) =
            diff_files_by_entity(&spec, Some(old.as_slice()), new.as_slice()).unwrap();
        assert_eq!(total, counts(2, 2, 0, 0, 1));
        assert_eq!(groups["student"], counts(1, 1, 0, 0, 1));
        assert_eq!(groups["teacher"], counts(1, 1, 0, 0, 0));
        let (_, none) = diff_files_by_entity(
            &KEYED,
            None::<&[u8]>,
            csv_of(&KEYED, &["1,001,A"]).as_slice(),
        )
        .unwrap();
        assert!(none.is_empty());
    }
}
