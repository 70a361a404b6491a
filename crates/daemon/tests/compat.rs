//! Byte-for-byte compatibility of the whole binary on the embedded demo SIS: with none of the
//! keys of the full-format work in the config (`optional_columns`, the optional queries,
//! `[export.district]`, `[export.grade_map]`), `sds-sync once` delivers exactly the files it
//! delivered before that work, even though the reference schema, the demo data and the default
//! queries grew. The digests in `compat.expected` were recorded from `main` before the change
//! (`SDS_RECORD_COMPAT=1` rewrites them: only on a commit whose output is known to be right).

mod support;

use sds_core::diff::HashingWriter;
use std::io::Write;
use support::export::{Export, V1_DEMO, V2_ALL, V21_ALL, run_export};

fn cases() -> Vec<(&'static str, Export)> {
    vec![
        ("v1-demo", V1_DEMO),
        (
            "v1-local-part-no-passwords",
            Export {
                username: "email-local-part",
                include_passwords: false,
                license: false,
                ..V1_DEMO
            },
        ),
        ("v2-all", V2_ALL),
        (
            "v2-prefixed-001",
            Export {
                schools: &["001"],
                student_id_prefix: "s-",
                teacher_id_prefix: "t-",
                ..V2_ALL
            },
        ),
        ("v21-all", V21_ALL),
        (
            "v21-blank-passwords-002-003",
            Export {
                schools: &["002", "003"],
                include_passwords: false,
                ..V21_ALL
            },
        ),
    ]
}

const EXPECTED: &str = include_str!("compat.expected");

#[test]
fn demo_exports_are_byte_identical_without_the_new_keys() {
    let mut lines = Vec::new();
    for (name, export) in cases() {
        for (file, bytes) in run_export("demo:", &export) {
            let mut w = HashingWriter::new(std::io::sink());
            w.write_all(&bytes).expect("hash");
            let (_, hash) = w.finish();
            lines.push(format!("{name} {file} {} {}", hash.bytes, hash.hash));
        }
    }
    let got = lines.join("\n") + "\n";
    if std::env::var("SDS_RECORD_COMPAT").as_deref() == Ok("1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat.expected");
        std::fs::write(path, &got).expect("record compat.expected");
        return;
    }
    assert!(lines.len() >= 30, "too few files: {}", lines.len());
    let want: Vec<&str> = EXPECTED.lines().collect();
    assert_eq!(want, lines, "the demo's files changed");
}
