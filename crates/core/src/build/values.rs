//! Values of the full SDS formats that need more than trimming: dates, grades and the values
//! of Microsoft's enumerations.
//!
//! Sources hand every value over as text (`sds-source` prints a DATE as `YYYY-MM-DD` and a
//! TIMESTAMP as `YYYY-MM-DD HH:MM:SS` on every database), so dates are normalised here, once,
//! whatever type or text the SIS stores them in.

use std::borrow::Cow;

/// The `YYYY-MM-DD` date SDS wants from a SIS date, or `None` when `raw` is not a date. Taken:
/// `YYYY-MM-DD` and `YYYY/MM/DD`, each optionally followed by a time (` HH:MM:SS`, `THH:MM...`);
/// `YYYYMMDD`; and `M/D/YYYY` (the US order of Microsoft's own samples), optionally followed by
/// a time. Any other order (`D.M.YYYY`, two-digit years) is ambiguous and refused.
pub(crate) fn date(raw: &str) -> Option<Cow<'_, str>> {
    let s = raw.trim();
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    // A date may be followed by a time, separated by a space or `T`; nothing else.
    let date_end = |end: usize| -> bool {
        match b.get(end) {
            None => true,
            Some(b' ' | b'T') => true,
            Some(_) => false,
        }
    };
    let (y, m, d) = if b.len() >= 10 && matches!(b.get(4), Some(b'-' | b'/')) && b[7] == b[4] {
        if !date_end(10) {
            return None;
        }
        (digits(0..4)?, digits(5..7)?, digits(8..10)?)
    } else if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
        (digits(0..4)?, digits(4..6)?, digits(6..8)?)
    } else {
        // M/D/YYYY, one or two digits for month and day.
        let end = s.find([' ', 'T']).unwrap_or(s.len());
        let mut parts = s.get(..end)?.split('/');
        let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || m.len() > 2 || d.len() > 2 || y.len() != 4 {
            return None;
        }
        let num = |p: &str| -> Option<u32> {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        (num(y)?, num(m)?, num(d)?)
    };
    if !(1000..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in(y, m) {
        return None;
    }
    if s.len() == 10 && b[4] == b'-' {
        return Some(Cow::Borrowed(s));
    }
    Some(Cow::Owned(format!("{y:04}-{m:02}-{d:02}")))
}

/// `value` in lower camelCase, as SDS writes enumeration values: words split at spaces,
/// underscores and hyphens, the first in lower case, the others capitalised (`Step Parent`,
/// `STEP-PARENT` and `step_parent` are all `stepParent`); a word written all in capitals is
/// read as one word, a mixed-case word keeps its inner capitals (`fosterParent`).
pub(crate) fn lower_camel(value: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(value.len());
    for (n, word) in value
        .split([' ', '_', '-'])
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let shouting = !word.chars().any(char::is_lowercase);
        for (i, c) in word.chars().enumerate() {
            if i == 0 && n > 0 {
                out.extend(c.to_uppercase());
            } else if i == 0 || shouting {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        }
    }
    if out == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(out)
    }
}

fn days_in(y: u32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumeration_values_in_lower_camel_case() {
        for (raw, want) in [
            ("Grandparent", "grandparent"),
            ("Step Parent", "stepParent"),
            ("STEP-PARENT", "stepParent"),
            ("step_parent", "stepParent"),
            ("fosterParent", "fosterParent"),
            ("Summer  Term", "summerTerm"),
            ("ÉTÉ", "été"),
            ("x", "x"),
        ] {
            assert_eq!(lower_camel(raw), want, "{raw:?}");
        }
        assert!(matches!(lower_camel("guardian"), Cow::Borrowed(_)));
    }

    #[test]
    fn dates_from_every_shape_a_sis_gives() {
        let ok = [
            ("2025-08-25", "2025-08-25"),
            (" 2025-08-25 ", "2025-08-25"),
            ("2025-08-25 00:00:00", "2025-08-25"),
            ("2025-08-25 13:45:10.5", "2025-08-25"),
            ("2025-08-25T13:45:10Z", "2025-08-25"),
            ("2025/08/25", "2025-08-25"),
            ("20250825", "2025-08-25"),
            ("8/24/2021", "2021-08-24"),
            ("08/24/2021", "2021-08-24"),
            ("6/11/2022 00:00", "2022-06-11"),
            ("2024-02-29", "2024-02-29"),
            ("2000-02-29", "2000-02-29"),
        ];
        for (raw, want) in ok {
            assert_eq!(date(raw).as_deref(), Some(want), "{raw:?}");
        }
        let bad = [
            "",
            "2025",
            "2025-13-01",
            "2025-02-29",
            "1900-02-29",
            "2025-04-31",
            "2025-08-25x",
            "2025-08/25",
            "25.08.2025",
            "8/24/21",
            "24/13/2021",
            "2025-8-5",
            "next monday",
            "0999-01-01",
            "１２/01/2021",
        ];
        for raw in bad {
            assert_eq!(date(raw), None, "{raw:?}");
        }
        assert!(matches!(date("2025-08-25"), Some(Cow::Borrowed(_))));
    }
}
