//! Packed-row tables: the school, section, student and teacher records of one build.
//!
//! A row is its fields joined by NUL. NUL sorts below every other byte, so comparing packed rows
//! as plain strings is exactly the field-by-field byte order the SDS files need, and "the first
//! `k` fields are equal" is "the packed prefixes up to the `k`-th NUL are equal". All rows live
//! back to back in one arena `String` with a `u32` end offset each, so a row costs its bytes
//! plus eight (offset and order slot), not a separate allocation with a fat pointer: at a million
//! students that is the difference between about 90 and 110 MB.

/// Field separator of packed rows; the builder replaces NUL in values, so it never occurs there.
pub(crate) const SEP: char = '\0';

#[derive(Default)]
pub(crate) struct Table {
    text: String,
    /// `ends[r]` is the end offset of row `r` (push order); it starts where row `r - 1` ends.
    ends: Vec<u32>,
    /// The live rows: push order until `sort_dedup`, sorted and unique by key after it.
    order: Vec<u32>,
}

impl Table {
    /// Appends one row. `false` when the `u32` offsets would overflow (over 4 GB of text or
    /// 4 billion rows), which the builder reports as an error.
    pub(crate) fn push(&mut self, fields: &[&str]) -> bool {
        let len = fields.iter().map(|f| f.len()).sum::<usize>() + fields.len().saturating_sub(1);
        let (Ok(end), Ok(row)) = (
            u32::try_from(self.text.len() + len),
            u32::try_from(self.ends.len()),
        ) else {
            return false;
        };
        if row == u32::MAX {
            return false;
        }
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.text.push(SEP);
            }
            self.text.push_str(f);
        }
        self.ends.push(end);
        self.order.push(row);
        true
    }

    /// Live rows.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// The `i`-th live row ("" past the end).
    pub(crate) fn get(&self, i: usize) -> &str {
        self.order
            .get(i)
            .map_or("", |&r| raw(&self.text, &self.ends, r))
    }

    pub(crate) fn iter(&self) -> Rows<'_> {
        Rows {
            table: self,
            order: self.order.iter(),
        }
    }

    /// Keeps the rows `keep` accepts. Their text stays in the arena: the push phase already
    /// held it, so releasing it would lower no peak, and compacting would need a second copy.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let (text, ends) = (&self.text, &self.ends);
        self.order.retain(|&r| keep(raw(text, ends, r)));
    }

    /// Keeps the rows `keep` accepts, given their position among the live rows.
    pub(crate) fn retain_at(&mut self, mut keep: impl FnMut(usize, &str) -> bool) {
        let (text, ends) = (&self.text, &self.ends);
        let mut pos = 0;
        self.order.retain(|&r| {
            let k = keep(pos, raw(text, ends, r));
            pos += 1;
            k
        });
    }

    /// Sorts by the whole packed row and resolves rows that share a key (their first
    /// `key_fields` fields): identical rows are kept once, and `dropped(row, false)` is called
    /// for each extra copy; rows that share the key but differ elsewhere are all dropped,
    /// `dropped(row, true)` for each, because picking one would be a guess. The outcome depends
    /// only on row content, never on push order.
    pub(crate) fn sort_resolve(&mut self, key_fields: usize, mut dropped: impl FnMut(&str, bool)) {
        let (text, ends) = (&self.text, &self.ends);
        sort_rows(&mut self.order, text, ends);
        let mut kept = Vec::with_capacity(self.order.len());
        for group in self.order.chunk_by(|&a, &b| {
            key(raw(text, ends, a), key_fields) == key(raw(text, ends, b), key_fields)
        }) {
            let (first, last) = (group[0], group[group.len() - 1]);
            // Sorted by the whole row: all rows of the group are equal iff the first and the
            // last are.
            if raw(text, ends, first) == raw(text, ends, last) {
                kept.push(first);
                for &r in &group[1..] {
                    dropped(raw(text, ends, r), false);
                }
            } else {
                for &r in group {
                    dropped(raw(text, ends, r), true);
                }
            }
        }
        self.order = kept;
        self.order.shrink_to_fit();
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// Position of the row whose first field is `id`; the table must be sorted. With several
    /// rows per first field (teachers) any of them may be returned.
    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        self.order
            .binary_search_by(|&r| field(raw(&self.text, &self.ends, r), 0).cmp(id))
            .ok()
    }
}

/// The live rows of a [`Table`] in order.
pub(crate) struct Rows<'a> {
    table: &'a Table,
    order: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Rows<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let r = *self.order.next()?;
        Some(raw(&self.table.text, &self.table.ends, r))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

impl<'a> IntoIterator for &'a Table {
    type Item = &'a str;
    type IntoIter = Rows<'a>;
    fn into_iter(self) -> Rows<'a> {
        self.iter()
    }
}

/// Sorts row numbers by their rows' text. Each row's first eight bytes are read once into an
/// integer that is compared first, so most comparisons touch neither the arena nor `ends`
/// (rows in push order are scattered through them: a million-row string sort was mostly cache
/// misses); only rows whose first eight bytes tie are compared as text.
fn sort_rows(order: &mut [u32], text: &str, ends: &[u32]) {
    let mut keyed: Vec<(u64, u32)> = order
        .iter()
        .map(|&r| (prefix(raw(text, ends, r)), r))
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| raw(text, ends, a.1).cmp(raw(text, ends, b.1)))
    });
    for (slot, (_, r)) in order.iter_mut().zip(keyed) {
        *slot = r;
    }
}

/// The first eight bytes of `row`, big-endian, zero-padded: `prefix(a) < prefix(b)` implies
/// `a < b` (a row shorter than eight bytes sorts before every row it is a prefix of, and its
/// padding never exceeds a real byte), and equal prefixes decide nothing.
fn prefix(row: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let head = row.as_bytes().get(..8).unwrap_or(row.as_bytes());
    if let Some(dst) = bytes.get_mut(..head.len()) {
        dst.copy_from_slice(head);
    }
    u64::from_be_bytes(bytes)
}

fn raw<'a>(text: &'a str, ends: &[u32], r: u32) -> &'a str {
    let r = r as usize;
    let start = match r.checked_sub(1) {
        Some(prev) => ends.get(prev).map_or(0, |&e| e as usize),
        None => 0,
    };
    let end = ends.get(r).map_or(0, |&e| e as usize);
    text.get(start..end).unwrap_or("")
}

// The field helpers below find separators with a plain byte loop: fields are short (IDs, names),
// and `str::split(char)` set up a searcher per call and was the largest single cost of `finish`
// at district scale (about a tenth of the builder's CPU time), called once per probe of every
// binary search by ID.

/// Field `i` of a packed row ("" when the row has fewer fields).
pub(crate) fn field(row: &str, i: usize) -> &str {
    let mut start = 0;
    let mut n = 0;
    for (at, &b) in row.as_bytes().iter().enumerate() {
        if b == 0 {
            if n == i {
                // NUL is ASCII: `start..at` lies on character boundaries.
                return row.get(start..at).unwrap_or("");
            }
            n += 1;
            start = at + 1;
        }
    }
    if n == i {
        row.get(start..).unwrap_or("")
    } else {
        ""
    }
}

/// The first `N` fields of a packed row (missing ones blank).
pub(crate) fn fields<const N: usize>(row: &str) -> [&str; N] {
    let mut out = [""; N];
    let mut start = 0;
    let mut n = 0;
    for (at, &b) in row.as_bytes().iter().enumerate() {
        if b == 0 {
            match out.get_mut(n) {
                Some(slot) => *slot = row.get(start..at).unwrap_or(""),
                None => return out,
            }
            n += 1;
            start = at + 1;
        }
    }
    if let Some(slot) = out.get_mut(n) {
        *slot = row.get(start..).unwrap_or("");
    }
    out
}

/// The first `k` fields of a packed row, still packed: equal keys ⇔ equal prefixes.
pub(crate) fn key(row: &str, k: usize) -> &str {
    let mut n = 0;
    for (at, &b) in row.as_bytes().iter().enumerate() {
        if b == 0 {
            n += 1;
            if n >= k {
                return row.get(..at).unwrap_or(row);
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn cmp_fields(a: &str, b: &str) -> Ordering {
        a.split(SEP).cmp(b.split(SEP))
    }

    fn table(rows: &[&[&str]]) -> Table {
        let mut t = Table::default();
        for r in rows {
            assert!(t.push(r));
        }
        t
    }

    #[test]
    fn packed_order_is_field_order() {
        // ("a", "z") < ("ab", "a") field by field; the concatenation "az" > "aba" would disagree.
        let rows: [&[&str]; 4] = [&["ab", "a"], &["a", "z"], &["a", "", "x"], &["a", "z", ""]];
        let mut t = table(&rows);
        t.sort_resolve(3, |r, _| panic!("dropped {r:?}"));
        let got: Vec<&str> = t.iter().collect();
        assert_eq!(got, ["a\0\0x", "a\0z", "a\0z\0", "ab\0a"]);
        for w in got.windows(2) {
            assert_eq!(cmp_fields(w[0], w[1]), Ordering::Less, "{w:?}");
        }
    }

    #[test]
    fn exact_copies_are_kept_once_and_conflicts_dropped_whole() {
        let mut t = table(&[
            &["2", "b"],
            &["1", "z"],
            &["2", "a"],
            &["1", "z"],
            &["10", "x"],
            &["1", "z"],
        ]);
        let mut dropped = Vec::new();
        t.sort_resolve(1, |r, conflict| dropped.push((r.to_owned(), conflict)));
        assert_eq!(t.iter().collect::<Vec<_>>(), ["1\0z", "10\0x"]);
        assert_eq!(
            dropped,
            [
                ("1\0z".to_owned(), false),
                ("1\0z".to_owned(), false),
                ("2\0a".to_owned(), true),
                ("2\0b".to_owned(), true),
            ]
        );
        assert_eq!(t.find("10"), Some(1));
        assert_eq!(t.find("2"), None);
        assert_eq!(t.get(0), "1\0z");
        assert_eq!(t.get(9), "");
    }

    #[test]
    fn retain_then_sort() {
        let mut t = table(&[&["c"], &["a"], &["b"], &[""]]);
        t.retain(|r| r != "a");
        assert_eq!(t.len(), 3);
        t.retain_at(|pos, _| pos != 0);
        assert_eq!(t.len(), 2);
        t.sort_resolve(1, |r, _| panic!("dropped {r:?}"));
        assert_eq!(t.iter().collect::<Vec<_>>(), ["", "b"]);
    }

    #[test]
    fn prefix_order_agrees_with_text_order() {
        // Rows around the eight-byte boundary, NUL separators, padding and multi-byte text.
        let rows = [
            "",
            "\0",
            "a",
            "a\0",
            "a\0\0",
            "ab",
            "abcdefg",
            "abcdefg\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefgh\0a",
            "abcdefgha",
            "abcdefgi",
            "é",
            "é\0x",
            "Zoë",
            "zoé",
            "0000123456",
            "0000123457",
            "000012345\0",
            "\u{7f}",
            "日本語のテキスト",
        ];
        for a in rows {
            for b in rows {
                let by_prefix = prefix(a).cmp(&prefix(b));
                if by_prefix != Ordering::Equal {
                    assert_eq!(by_prefix, a.cmp(b), "{a:?} vs {b:?}");
                }
            }
        }
        let mut t = Table::default();
        for r in rows {
            assert!(t.push(&[r]));
        }
        // Keyed by the whole row: every row is distinct, none is dropped.
        t.sort_resolve(9, |r, _| panic!("dropped {r:?}"));
        let mut want = rows.to_vec();
        want.sort_unstable();
        assert_eq!(t.iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn field_helpers() {
        assert_eq!(key("a\0b\0c", 1), "a");
        assert_eq!(key("a\0b\0c", 2), "a\0b");
        assert_eq!(key("a\0b\0c", 3), "a\0b\0c");
        assert_eq!(key("a\0b\0c", 9), "a\0b\0c");
        assert_eq!(fields::<4>("a\0b"), ["a", "b", "", ""]);
        assert_eq!(field("a\0b", 1), "b");
        assert_eq!(field("a\0b", 5), "");
        assert_eq!(key("a\0b", 0), "a");
        assert_eq!(key("", 1), "");
        assert_eq!(fields::<2>("a\0b\0c"), ["a", "b"]);
        assert_eq!(fields::<3>(""), ["", "", ""]);
        assert_eq!(fields::<3>("\0é\0"), ["", "é", ""]);
        // The same answers as splitting the row, for rows with empty and multi-byte fields.
        for row in [
            "",
            "\0",
            "a",
            "a\0",
            "\0b",
            "Zoë\0\0Nguyễn\0",
            "1\0two\0three\0four",
        ] {
            let parts: Vec<&str> = row.split(SEP).collect();
            for i in 0..6 {
                assert_eq!(
                    field(row, i),
                    parts.get(i).copied().unwrap_or(""),
                    "{row:?} {i}"
                );
            }
            let [a, b, c, d, e] = fields::<5>(row);
            for (i, got) in [a, b, c, d, e].into_iter().enumerate() {
                assert_eq!(got, parts.get(i).copied().unwrap_or(""), "{row:?} {i}");
            }
            for k in 1..6 {
                let want = parts.get(..k.min(parts.len())).unwrap_or(&[]).join("\0");
                assert_eq!(key(row, k), want, "{row:?} {k}");
            }
        }
    }
}
