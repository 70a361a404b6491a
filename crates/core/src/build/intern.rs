//! A compact string interner for the IDs that enrollment and roster rows refer to.
//!
//! Millions of enrollment rows name the same few hundred thousand sections and students; storing
//! each row as two `u32` symbols instead of two strings is what keeps a 7.5-million-row roster
//! in tens of megabytes. All interned text lives in one arena `String`; the hash table holds
//! only `u32` symbols (hashing looks the text up in the arena), so an entry costs its bytes plus
//! about nine bytes, not a `Box<str>` allocation each.
//!
//! Interning is on the hot path of extraction (two probes per enrollment row, 15 million at
//! district scale), so it hashes with foldhash (hashbrown's default hasher) rather than SipHash:
//! the keys are IDs from the district's own SIS, not attacker-chosen input. And since a SIS
//! returns a student's enrollments together, the last symbol is checked before the table.

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

pub(crate) struct Interner {
    text: String,
    /// `ends[sym]` is the end offset of `sym` in `text`; it starts where the previous one ends.
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The symbol returned last; consecutive rows often name the same ID.
    last: Option<u32>,
}

impl Interner {
    pub(crate) fn new() -> Interner {
        Interner {
            text: String::new(),
            ends: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            last: None,
        }
    }

    /// Number of distinct strings interned.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of `sym` ("" for a symbol never handed out).
    pub(crate) fn get(&self, sym: u32) -> &str {
        get(&self.text, &self.ends, sym)
    }

    /// The symbol of `s` if it was interned.
    pub(crate) fn find(&self, s: &str) -> Option<u32> {
        self.lookup(self.hasher.hash_one(s), s)
    }

    fn lookup(&self, hash: u64, s: &str) -> Option<u32> {
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .find(hash, |&sym| get(text, ends, sym) == s)
            .copied()
    }

    /// The symbol of `s`, interning it if new. `None` once the arena or the symbol space (both
    /// `u32`-indexed) would overflow, which the caller reports as an error.
    pub(crate) fn intern(&mut self, s: &str) -> Option<u32> {
        if let Some(last) = self.last
            && get(&self.text, &self.ends, last) == s
        {
            return Some(last);
        }
        let hash = self.hasher.hash_one(s);
        // One probe: the slot a new symbol goes to is found by the same search that did not
        // find `s` (a lookup, then an insert, would walk the probe sequence twice).
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        let sym = match self.table.entry(
            hash,
            |&sym| get(text, ends, sym) == s,
            |&sym| hasher.hash_one(get(text, ends, sym)),
        ) {
            Entry::Occupied(found) => *found.get(),
            Entry::Vacant(slot) => {
                let sym = u32::try_from(self.ends.len()).ok()?;
                let end = u32::try_from(self.text.len() + s.len()).ok()?;
                self.text.push_str(s);
                self.ends.push(end);
                slot.insert(sym);
                sym
            }
        };
        self.last = Some(sym);
        Some(sym)
    }
}

fn get<'a>(text: &'a str, ends: &[u32], sym: u32) -> &'a str {
    let i = sym as usize;
    let start = if i == 0 {
        0
    } else {
        ends.get(i - 1).copied().unwrap_or(0) as usize
    };
    let end = ends.get(i).copied().unwrap_or(0) as usize;
    text.get(start..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_symbol() {
        let mut i = Interner::new();
        let a = i.intern("007").unwrap();
        let b = i.intern("7").unwrap();
        let c = i.intern("").unwrap();
        assert_eq!(i.intern("007"), Some(a));
        assert_eq!(i.intern("7"), Some(b));
        assert_eq!(i.intern(""), Some(c));
        assert_ne!(a, b);
        assert_eq!(i.len(), 3);
        assert_eq!(i.get(a), "007");
        assert_eq!(i.get(b), "7");
        assert_eq!(i.get(c), "");
        assert_eq!(i.find("007"), Some(a));
        assert_eq!(i.find("07"), None);
    }

    #[test]
    fn repeated_text_keeps_its_symbol_across_other_text() {
        // The last-symbol shortcut must not hand out a stale symbol for different text.
        let mut i = Interner::new();
        let a = i.intern("S1").unwrap();
        assert_eq!(i.intern("S1"), Some(a));
        let b = i.intern("S2").unwrap();
        assert_ne!(a, b);
        assert_eq!(i.intern("S1"), Some(a));
        assert_eq!(i.intern("S1"), Some(a));
        assert_eq!(i.intern("S2"), Some(b));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn many_symbols_survive_growth() {
        let mut i = Interner::new();
        let syms: Vec<u32> = (0..10_000)
            .map(|n| i.intern(&format!("id{n}")).unwrap())
            .collect();
        for (n, &s) in syms.iter().enumerate() {
            assert_eq!(i.get(s), format!("id{n}"));
            assert_eq!(i.intern(&format!("id{n}")), Some(s));
        }
        assert_eq!(i.len(), 10_000);
    }
}
