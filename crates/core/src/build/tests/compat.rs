//! Byte-for-byte compatibility: with none of the keys of the full-format work set (no optional
//! columns, no optional queries, no district, no grade map), every file, drop and warning of the
//! builder must stay exactly what it was before that work. The expected digests in
//! `compat.expected` were recorded from the builder as it was on `main` before the change
//! (`SDS_RECORD_COMPAT=1 cargo test -p sds-core compat` rewrites them; only ever do that on a
//! commit whose output is known to be right, and say so in the commit message).
//!
//! The corpus: the hand-made fixtures of the table tests, and a generated SIS full of the cases
//! that change output (duplicates, conflicts, blanks, dangling references, shared addresses,
//! commas, quotes, line breaks, non-ASCII), each built under a grid of every export option.

use super::*;

/// A deterministic generator (xorshift64), so the corpus needs no random crate.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A generated SIS of a few hundred records with every troublesome case mixed in.
fn generated(seed: u64) -> Vec<Record> {
    let mut g = Gen(seed);
    let names = [
        "Ann",
        "Zoë",
        "O'Brien",
        "Smith, Jr.",
        "Robert \"Bob\"",
        " Pad ",
        "Line\nBreak",
        "Ørsted",
        "",
        "Lee",
        "José",
        "Tab\there",
    ];
    let mut v = Vec::new();
    for s in 0..6 {
        let name = g.pick(&names);
        v.push(school(&[&format!("{s:03}"), name]));
    }
    // A duplicate school (exact), a conflicting one, one with a comma in its ID.
    v.push(school(&["001", "School 1"]));
    v.push(school(&["001", "School 1"]));
    v.push(school(&["002", "Another"]));
    v.push(school(&["0,7", "Comma"]));
    for i in 0..80u64 {
        let id = format!("{:04}", g.below(70));
        let sch = format!("{:03}", g.below(8));
        let first = g.pick(&names).to_owned();
        let last = g.pick(&names).to_owned();
        let email = match g.below(6) {
            0 => NULL.to_owned(),
            1 => format!("Shared{}@x.example", g.below(3)),
            2 => "no-domain".to_owned(),
            3 => format!(" user{i}@Mixed.Example "),
            _ => format!("s{id}@x.example"),
        };
        let pw = if g.below(3) == 0 {
            NULL.to_owned()
        } else {
            format!("pw{i}")
        };
        let grade = match g.below(4) {
            0 => NULL.to_owned(),
            1 => "K".to_owned(),
            _ => format!("{}", g.below(13)),
        };
        v.push(student(&[&id, &sch, &first, &last, &email, &pw, &grade]));
    }
    for i in 0..25u64 {
        let id = format!("T{}", g.below(15));
        let sch = format!("{:03}", g.below(8));
        let email = match g.below(5) {
            0 => NULL.to_owned(),
            1 => format!("shared{}@X.example", g.below(3)),
            _ => format!("{id}@staff.example"),
        };
        let pw = if g.below(2) == 0 {
            NULL.to_owned()
        } else {
            format!("tpw{i}")
        };
        v.push(teacher(&[
            &id,
            &sch,
            g.pick(&names),
            g.pick(&names),
            &email,
            &pw,
        ]));
    }
    let courses = ["MATH", "ENG", "SCI", "ART", "HIST"];
    for _ in 0..30 {
        let sch = format!("{:03}", g.below(8));
        let desc = if g.below(4) == 0 {
            NULL
        } else {
            g.pick(&names)
        };
        let course = g.pick(&courses);
        let sec = format!("{}", g.below(3));
        v.push(section(&[&sch, course, &sec, desc]));
    }
    for _ in 0..200 {
        let sch = format!("{:03}", g.below(8));
        let course = g.pick(&courses);
        let sec = format!("{}", g.below(3));
        let stu = format!("{:04}", g.below(75));
        v.push(enroll(&[&sch, course, &sec, &stu]));
    }
    for _ in 0..40 {
        let sch = format!("{:03}", g.below(8));
        let course = g.pick(&courses);
        let sec = format!("{}", g.below(3));
        let t = format!("T{}", g.below(17));
        v.push(roster(&[&sch, course, &sec, &t]));
    }
    v
}

/// Every combination of the export options that existed before the full-format work.
fn option_grid() -> Vec<(String, ExportOptions)> {
    let mut out = Vec::new();
    for format in [Format::V1, Format::V2, Format::V2_1] {
        for username in [
            UsernameRule::Email,
            UsernameRule::EmailLocalPart,
            UsernameRule::Blank,
        ] {
            for passwords in [true, false] {
                for license in [false, true] {
                    if license && format != Format::V1 {
                        continue;
                    }
                    for (sp, tp) in [("", ""), ("s-", "t-")] {
                        for schools in [&[][..], &["001", "003", "404"][..]] {
                            let o = ExportOptions {
                                format,
                                schools: schools.iter().map(|s| s.to_string()).collect(),
                                username,
                                include_passwords: passwords,
                                license_file: license,
                                account_sku_id: if license {
                                    "sku:X".into()
                                } else {
                                    String::new()
                                },
                                student_id_prefix: sp.into(),
                                teacher_id_prefix: tp.into(),
                                ..ExportOptions::default()
                            };
                            let label = format!(
                                "{format} username={username:?} passwords={passwords} license={license} prefixes={sp:?}/{tp:?} schools={schools:?}"
                            );
                            out.push((label, o));
                        }
                    }
                }
            }
        }
    }
    out
}

/// One line per case: every file's blake3, the drops and the warnings (or the build error).
fn digest(input: &[Record], opts: &ExportOptions) -> String {
    let mut b = Builder::new(opts.clone());
    for (entity, values) in input {
        b.push(*entity, values.clone());
    }
    let built = match b.finish() {
        Ok(b) => b,
        Err(e) => return format!("error {e}"),
    };
    let mut h = blake3::Hasher::new();
    for f in built.files() {
        let mut buf = Vec::new();
        built.write_file(f.name, &mut buf).expect("write");
        h.update(f.name.as_bytes());
        h.update(&[0]);
        h.update(&buf);
        h.update(&[0]);
    }
    for d in built.drops() {
        h.update(format!("{} {} {} {:?}\n", d.file, d.reason, d.count, d.ids).as_bytes());
    }
    for w in built.warnings() {
        h.update(w.as_bytes());
        h.update(b"\n");
    }
    let names: Vec<&str> = built.files().iter().map(|f| f.name).collect();
    format!("{} {}", names.join(","), &h.finalize().to_hex()[..32])
}

fn corpus() -> Vec<(&'static str, Vec<Record>)> {
    vec![
        ("fixture", fixture()),
        ("fixture_with_conflicts", fixture_with_conflicts()),
        ("generated-1", generated(0x5eed_0001)),
        ("generated-2", generated(0x0dd_ba11)),
        ("generated-3", generated(42)),
    ]
}

const EXPECTED: &str = include_str!("compat.expected");

#[test]
fn output_is_byte_identical_without_the_new_keys() {
    let mut lines = Vec::new();
    for (name, input) in corpus() {
        for (label, opts) in option_grid() {
            lines.push(format!("{name} | {label} | {}", digest(&input, &opts)));
        }
    }
    let got = lines.join("\n") + "\n";
    if std::env::var("SDS_RECORD_COMPAT").as_deref() == Ok("1") {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/build/tests/compat.expected"
        );
        std::fs::write(path, &got).expect("record compat.expected");
        return;
    }
    assert!(lines.len() >= 480, "the grid is too small: {}", lines.len());
    let want: Vec<&str> = EXPECTED.lines().collect();
    assert_eq!(want.len(), lines.len(), "number of cases changed");
    for (w, g) in want.iter().zip(&lines) {
        assert_eq!(w, g, "output changed for this case");
    }
}
