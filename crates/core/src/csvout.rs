//! CSV writing in the exact shape SDS accepts: UTF-8 without BOM, comma separator, CRLF line
//! ends, a header row always, RFC 4180 quotes only where a value needs them.
//!
//! Values reaching this writer are already normalised by the builder (trimmed, line breaks
//! replaced), so the only quoting cases left in practice are a comma or a double quote. The
//! `csv` crate's `QuoteStyle::Necessary` also quotes CR/LF, should one ever get here; it does not
//! quote leading/trailing spaces, which is why trimming is the builder's job, not an option.

use std::io::{self, Write};

/// A `Write` that counts the bytes passed through it, so `write_file` can report the file size
/// without asking the destination (which may be a socket or a hasher).
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where the rows of a file go as they are rendered: the CSV writer, the validator of the publish
/// gate ([`crate::validate::FileCheck`]), or both ([`Tee`]). Rows are field values in header
/// order, the header excluded.
pub trait RowSink {
    /// # Errors
    /// Whatever the sink's own output fails with.
    fn row(&mut self, fields: &[&str]) -> io::Result<()>;
}

impl<S: RowSink + ?Sized> RowSink for &mut S {
    fn row(&mut self, fields: &[&str]) -> io::Result<()> {
        (**self).row(fields)
    }
}

/// Hands every row to both sinks: a file is written and checked in one rendering.
pub struct Tee<A, B>(pub A, pub B);

impl<A: RowSink, B: RowSink> RowSink for Tee<A, B> {
    fn row(&mut self, fields: &[&str]) -> io::Result<()> {
        self.0.row(fields)?;
        self.1.row(fields)
    }
}

/// Discards rows.
pub struct NoRows;

impl RowSink for NoRows {
    fn row(&mut self, _: &[&str]) -> io::Result<()> {
        Ok(())
    }
}

/// One SDS CSV file being written: the header goes out on creation, then one `row` per record,
/// then `finish` flushes and returns the byte count.
pub struct CsvOut<W: Write> {
    wtr: csv::Writer<Counting<W>>,
}

impl<W: Write> RowSink for CsvOut<W> {
    fn row(&mut self, fields: &[&str]) -> io::Result<()> {
        CsvOut::row(self, fields)
    }
}

impl<W: Write> CsvOut<W> {
    /// Starts a file and writes its header row (written even if no data row follows).
    ///
    /// # Errors
    /// Any I/O error of the underlying writer.
    pub fn new(w: W, header: &[&str]) -> io::Result<Self> {
        let wtr = csv::WriterBuilder::new()
            .delimiter(b',')
            .quote_style(csv::QuoteStyle::Necessary)
            .terminator(csv::Terminator::CRLF)
            .double_quote(true)
            .has_headers(false)
            .from_writer(Counting { inner: w, bytes: 0 });
        let mut out = CsvOut { wtr };
        out.row(header)?;
        Ok(out)
    }

    /// Writes one record; every file has at least two columns, so an empty value is written as
    /// nothing between two commas (the `csv` crate only quotes an empty *single-field* record).
    ///
    /// # Errors
    /// Any I/O error of the underlying writer.
    pub fn row(&mut self, fields: &[&str]) -> io::Result<()> {
        self.wtr.write_record(fields).map_err(io::Error::from)
    }

    /// Flushes everything to the underlying writer and returns the bytes written, header
    /// included.
    ///
    /// # Errors
    /// Any I/O error of the underlying writer.
    pub fn finish(mut self) -> io::Result<u64> {
        self.wtr.flush()?;
        Ok(self.wtr.get_ref().bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(header: &[&str], rows: &[&[&str]]) -> (Vec<u8>, u64) {
        let mut buf = Vec::new();
        let mut out = CsvOut::new(&mut buf, header).unwrap();
        for r in rows {
            out.row(r).unwrap();
        }
        let n = out.finish().unwrap();
        (buf, n)
    }

    #[test]
    fn header_only_file_has_header_and_crlf() {
        let (buf, n) = write(&["SIS ID", "Name"], &[]);
        assert_eq!(buf, b"SIS ID,Name\r\n");
        assert_eq!(n, 13);
    }

    #[test]
    fn quotes_only_where_needed() {
        let (buf, n) = write(
            &["a", "b", "c"],
            &[
                &["plain", "O'Brien", "Zoë"],
                &["Smith, Jr.", "say \"hi\"", ""],
                &["line\nbreak", "cr\rhere", "x"],
                &["", "", ""],
            ],
        );
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(
            text,
            "a,b,c\r\n\
             plain,O'Brien,Zoë\r\n\
             \"Smith, Jr.\",\"say \"\"hi\"\"\",\r\n\
             \"line\nbreak\",\"cr\rhere\",x\r\n\
             ,,\r\n"
        );
        assert_eq!(n, buf.len() as u64);
        assert!(!buf.starts_with(&[0xEF, 0xBB, 0xBF]));
    }

    #[test]
    fn byte_count_matches_with_multibyte_text() {
        let (buf, n) = write(&["x", "y"], &[&["é", "日本"]]);
        assert_eq!(n, buf.len() as u64);
        assert_eq!(n, "x,y\r\né,日本\r\n".len() as u64);
    }
}
