//! PostgreSQL's COPY text format as a faster path for queries whose columns PostgreSQL already
//! prints exactly as [`crate::render`] would: at district scale (7.5 million enrollment rows)
//! decoding one `DataRow` into a row object per row costs about twice what the server spends.
//!
//! Only text-like and integer columns qualify ([`Plan::copy_columns`]); anything else (dates,
//! booleans, numerics, floats, UUIDs) keeps the row path, whose rendering is the reference. The
//! text format is parsed as documented for `COPY TO`: rows end with `\n`, fields are separated
//! by a tab, `\N` is NULL, and backslash escapes (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`) stand
//! for those characters; `COPY TO` never emits octal or hex escapes, so those are errors.

use crate::plan::{CopyColumn, MAX_COLUMNS};

/// Why a COPY line could not be read, for the caller to wrap with the query and row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CopyError(pub(crate) String);

/// Splits a COPY byte stream into lines, whatever the chunking (PostgreSQL sends a row per
/// message today, which the protocol does not promise).
#[derive(Default)]
pub(crate) struct Lines {
    carry: Vec<u8>,
}

impl Lines {
    /// Calls `f` with each complete line in `chunk` (without its `\n`), keeping a trailing
    /// partial line for the next chunk.
    pub(crate) fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        if !self.carry.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    self.carry.extend_from_slice(&rest[..end]);
                    let line = std::mem::take(&mut self.carry);
                    f(&line)?;
                    rest = &rest[end + 1..];
                }
                None => {
                    self.carry.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
        while let Some(end) = memchr::memchr(b'\n', rest) {
            f(&rest[..end])?;
            rest = &rest[end + 1..];
        }
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    /// True when the stream ended in the middle of a line.
    pub(crate) fn has_partial_line(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Bytes of the line not yet complete.
    pub(crate) fn partial_len(&self) -> usize {
        self.carry.len()
    }
}

/// Where one field's text is: in the line itself, or unescaped into the scratch buffer.
#[derive(Clone, Copy)]
enum Field {
    Null,
    Line(usize, usize),
    Scratch(usize, usize),
}

/// Reusable buffers for reading COPY lines into contract-order values.
#[derive(Default)]
pub(crate) struct RowReader {
    fields: Vec<Field>,
    scratch: String,
}

impl RowReader {
    /// Reads one line and hands its values in contract order (per `columns`) to `sink`,
    /// returning what `sink` returns.
    pub(crate) fn read<R>(
        &mut self,
        line: &[u8],
        columns: &[CopyColumn],
        sink: impl FnOnce(&[Option<&str>]) -> R,
    ) -> Result<R, CopyError> {
        let line = std::str::from_utf8(line)
            .map_err(|e| CopyError(format!("the server sent text that is not UTF-8 ({e})")))?;
        self.split(line)?;
        let mut values: [Option<&str>; MAX_COLUMNS] = [None; MAX_COLUMNS];
        for (value, column) in values.iter_mut().zip(columns) {
            let Some(index) = column.index else {
                continue;
            };
            let field = self.fields.get(index).copied().ok_or_else(|| {
                CopyError(format!(
                    "the row has {} field(s), column {} is missing",
                    self.fields.len(),
                    index + 1
                ))
            })?;
            let text = match field {
                Field::Null => None,
                Field::Line(a, b) => line.get(a..b),
                Field::Scratch(a, b) => self.scratch.get(a..b),
            };
            *value = if column.trim_padding {
                text.map(|t| t.trim_end_matches(' '))
            } else {
                text
            };
        }
        Ok(sink(values.get(..columns.len()).unwrap_or(&values)))
    }

    /// Splits `line` into `fields` in one pass over its bytes: every tab ends a field (a tab
    /// inside a value is always escaped), and a backslash marks its field as one to unescape;
    /// the other fields are used where they stand, without a second look at their bytes.
    fn split(&mut self, line: &str) -> Result<(), CopyError> {
        self.fields.clear();
        self.scratch.clear();
        let bytes = line.as_bytes();
        let mut start = 0;
        let mut escaped = false;
        // A plain byte loop: COPY lines are short (an enrollment row is about 25 bytes), and
        // below a SIMD register's width `memchr2_iter`'s set-up cost more than it saved (about
        // 1,120 against 980 instructions per enrollment-shaped row, whole parse).
        for (at, &b) in bytes.iter().enumerate() {
            if b == b'\t' {
                self.push_field(line, start, at, escaped)?;
                start = at + 1;
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            }
        }
        self.push_field(line, start, line.len(), escaped)
    }

    fn push_field(
        &mut self,
        line: &str,
        start: usize,
        end: usize,
        escaped: bool,
    ) -> Result<(), CopyError> {
        let field = if !escaped {
            Field::Line(start, end)
        } else {
            let raw = line.get(start..end).unwrap_or("");
            if raw == "\\N" {
                Field::Null
            } else {
                let from = self.scratch.len();
                unescape(raw, &mut self.scratch)?;
                Field::Scratch(from, self.scratch.len())
            }
        };
        self.fields.push(field);
        Ok(())
    }
}

/// Appends `raw` to `out` with its backslash escapes decoded: the text between escapes is copied
/// a run at a time.
fn unescape(raw: &str, out: &mut String) -> Result<(), CopyError> {
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        // A backslash is ASCII, so `at` and `at + 1` are character boundaries.
        out.push_str(rest.get(..at).unwrap_or(""));
        let after = rest.get(at + 1..).unwrap_or("");
        let mut chars = after.chars();
        let escape = chars.next();
        let decoded = match escape {
            Some('\\') => '\\',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('v') => '\u{b}',
            other => {
                return Err(CopyError(format!(
                    "unexpected escape \\{} in COPY output",
                    other.map(String::from).unwrap_or_default()
                )));
            }
        };
        out.push(decoded);
        rest = chars.as_str();
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(index: usize) -> CopyColumn {
        CopyColumn {
            index: Some(index),
            trim_padding: false,
        }
    }

    fn read(line: &str, columns: &[CopyColumn]) -> Result<Vec<Option<String>>, CopyError> {
        let mut out = Vec::new();
        RowReader::default().read(line.as_bytes(), columns, |values: &[Option<&str>]| {
            out = values.iter().map(|v| v.map(str::to_owned)).collect();
        })?;
        Ok(out)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn fields_nulls_and_escapes() {
        let columns = [col(0), col(1), col(2), col(3)];
        assert_eq!(
            read("001\t\\N\t\tO'Brien, Jr.", &columns),
            Ok(vec![s("001"), None, s(""), s("O'Brien, Jr.")])
        );
        assert_eq!(
            read("a\\tb\tline\\nbreak\tback\\\\slash\t\\r\\b\\f\\v", &columns),
            Ok(vec![
                s("a\tb"),
                s("line\nbreak"),
                s("back\\slash"),
                s("\r\u{8}\u{c}\u{b}")
            ])
        );
        // The two-character text `\N` is escaped by the server, so it is not NULL.
        assert_eq!(read("\\\\N", &[col(0)]), Ok(vec![s("\\N")]));
        assert_eq!(read("Zoë 日本", &[col(0)]), Ok(vec![s("Zoë 日本")]));
    }

    #[test]
    fn columns_are_picked_by_index_trimmed_or_absent() {
        let columns = [
            col(2),
            CopyColumn {
                index: Some(0),
                trim_padding: true,
            },
            CopyColumn {
                index: None,
                trim_padding: false,
            },
        ];
        assert_eq!(
            read("007  \textra\tS1", &columns),
            Ok(vec![s("S1"), s("007"), None])
        );
        assert!(read("only one", &[col(1)]).is_err());
    }

    #[test]
    fn escapes_next_to_separators_and_multibyte_text() {
        let columns = [col(0), col(1), col(2)];
        // A field ending in an escaped backslash, then a tab: the tab still separates.
        assert_eq!(
            read("a\\\\\tb\t\\\\", &columns),
            Ok(vec![s("a\\"), s("b"), s("\\")])
        );
        // Escapes between multi-byte characters, and at both ends of a field.
        assert_eq!(
            read("\\tZoë\\nNguyễn\\t\t日本\t\\N", &columns),
            Ok(vec![s("\tZoë\nNguyễn\t"), s("日本"), None])
        );
        // Only the whole field `\N` is NULL; empty fields at both ends are empty strings.
        assert_eq!(read("\t\t", &columns), Ok(vec![s(""), s(""), s("")]));
        assert!(read("x\\N", &[col(0)]).is_err());
        assert!(read("\\é", &[col(0)]).is_err());
        // Escaped and plain fields of one line in any mix keep their own text.
        let mut reader = RowReader::default();
        let line = "1\ta\\tb\tc\t\\N\td\\\\";
        let got = reader
            .read(
                line.as_bytes(),
                &[col(4), col(3), col(2), col(1), col(0)],
                |v| v.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(got, vec![s("d\\"), None, s("c"), s("a\tb"), s("1")]);
    }

    #[test]
    fn unknown_escapes_and_invalid_utf8_are_errors() {
        assert!(read("\\x41", &[col(0)]).is_err());
        assert!(read("trailing\\", &[col(0)]).is_err());
        let mut reader = RowReader::default();
        assert!(reader.read(b"\xff\xfe", &[col(0)], |_| ()).is_err());
    }

    /// The parser's cost per row, by hand: `cargo test --release -p sds-source --lib
    /// copy_parse_cost -- --ignored --nocapture` (SDS_ROWS sets the row count; run it under
    /// `valgrind --tool=callgrind` for instruction counts). Enrollment-shaped lines, one per
    /// chunk as PostgreSQL sends them, with a student-shaped line (names, an escape) in ten.
    #[test]
    #[ignore]
    fn copy_parse_cost() {
        let rows: usize = std::env::var("SDS_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(rows);
        for i in 0..rows {
            let line = if i % 10 == 0 {
                format!(
                    "{:010}\t{:03}\tZoë\tO'Brien, Jr.\tzoe{i}@district.example.org\t\\N\t{}\n",
                    i * 48271 % 2_147_483_647,
                    i % 1800,
                    i % 12
                )
            } else {
                format!(
                    "{:03}\tC{:02}\t{}\t{:010}\n",
                    i % 1800,
                    i % 40,
                    i % 5,
                    i * 48271 % 2_147_483_647
                )
            };
            chunks.push(line.into_bytes());
        }
        let columns = [col(0), col(1), col(2), col(3)];
        let started = std::time::Instant::now();
        let mut lines = Lines::default();
        let mut reader = RowReader::default();
        let mut bytes = 0usize;
        for chunk in &chunks {
            lines
                .feed(chunk, |line| {
                    reader.read(line, &columns, |values| {
                        bytes += values.iter().flatten().map(|v| v.len()).sum::<usize>();
                    })
                })
                .unwrap();
        }
        let elapsed = started.elapsed();
        println!(
            "{rows} rows, {bytes} value bytes: {:?}, {} ns per row",
            elapsed,
            elapsed.as_nanos() / rows.max(1) as u128
        );
    }

    #[test]
    fn lines_survive_any_chunking() {
        let data = b"1\tone\n22\ttwo\n333\tthree\n";
        for size in 1..=data.len() {
            let mut lines = Lines::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            for chunk in data.chunks(size) {
                lines
                    .feed::<()>(chunk, |l| {
                        got.push(l.to_vec());
                        Ok(())
                    })
                    .unwrap();
            }
            assert!(!lines.has_partial_line(), "chunk size {size}");
            assert_eq!(
                got,
                vec![
                    b"1\tone".to_vec(),
                    b"22\ttwo".to_vec(),
                    b"333\tthree".to_vec()
                ],
                "chunk size {size}"
            );
        }
        let mut lines = Lines::default();
        lines.feed::<()>(b"no newline", |_| Ok(())).unwrap();
        assert!(lines.has_partial_line());
    }
}
