//! The guarded first run after `sds-sync reset-state`: counting the rows of snapshot folders
//! (each file, and each entity of a file that mixes students and teachers, labelled as the
//! mass-change guard labels them) and judging a first snapshot against the counts the reset
//! recorded, so that a SIS glitch right after a reset is held like any other mass change.

use sds_core::FileSpec;
use sds_core::diff::{FileDiff, diff_files_by_entity};
use sds_core::guard::{GuardConfig, GuardVerdict, evaluate};
use sds_store::{Baseline, BaselineCount};
use std::collections::BTreeMap;
use std::path::Path;
use tracing::{info, warn};

/// The rows of every file of `specs` found in `dir`, split by entity where the file mixes them.
/// A file that is missing is skipped; one that cannot be read as that file (another format, a
/// damaged copy) is skipped with a warning in the returned list.
pub fn count_folder(specs: &[&FileSpec], dir: &Path) -> (Vec<BaselineCount>, Vec<String>) {
    let mut counts = Vec::new();
    let mut problems = Vec::new();
    for spec in specs {
        let path = dir.join(spec.name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        // A diff against nothing counts every row as added, per entity too.
        match diff_files_by_entity(spec, None::<std::fs::File>, std::io::BufReader::new(file)) {
            Ok((total, by_entity)) if by_entity.is_empty() => counts.push(BaselineCount {
                file: spec.name.to_owned(),
                entity: None,
                rows: total.rows_new,
            }),
            Ok((_, by_entity)) => {
                counts.extend(by_entity.into_iter().map(|(entity, d)| BaselineCount {
                    file: spec.name.to_owned(),
                    entity: Some(entity),
                    rows: d.rows_new,
                }))
            }
            Err(e) => problems.push(format!("cannot count the rows of {}: {e}", path.display())),
        }
    }
    (counts, problems)
}

/// The largest count of each label over several folders: the bar a first snapshot after a
/// reset has to reach (the archived folders may include held snapshots of an earlier glitch,
/// which must not lower it).
pub fn largest(folders: impl IntoIterator<Item = Vec<BaselineCount>>) -> Vec<BaselineCount> {
    let mut by_label: BTreeMap<String, BaselineCount> = BTreeMap::new();
    for c in folders.into_iter().flatten() {
        match by_label.get_mut(&c.label()) {
            Some(have) if have.rows >= c.rows => {}
            Some(have) => have.rows = c.rows,
            None => {
                by_label.insert(c.label(), c);
            }
        }
    }
    by_label.into_values().collect()
}

/// The guard's verdict on a first snapshot (its files in `dir`) against `baseline`: every label
/// of the baseline whose file the export has is compared by row count, as if the rows missing
/// had been removed. A label the new export lacks entirely (no teacher left in `users.csv`)
/// counts as emptied. Files of the baseline the export does not have (the format changed since)
/// cannot be judged and are logged.
pub fn judge_first_snapshot(
    guard: &GuardConfig,
    baseline: &Baseline,
    specs: &[&FileSpec],
    dir: &Path,
) -> anyhow::Result<GuardVerdict> {
    let (new, problems) = count_folder(specs, dir);
    if let Some(p) = problems.first() {
        anyhow::bail!("cannot count the rows of the new export: {p}");
    }
    let new: BTreeMap<String, u64> = new.iter().map(|c| (c.label(), c.rows)).collect();
    let mut diffs: Vec<(String, FileDiff)> = Vec::new();
    for c in &baseline.counts {
        if !specs.iter().any(|s| s.name == c.file) {
            warn!(
                file = %c.file,
                rows = c.rows,
                "the baseline of reset-state has a file this export does not have (another \
                 format?); it cannot be judged"
            );
            continue;
        }
        let rows_new = new.get(&c.label()).copied().unwrap_or(0);
        diffs.push((
            c.label(),
            FileDiff {
                rows_old: c.rows,
                rows_new,
                added: rows_new.saturating_sub(c.rows),
                removed: c.rows.saturating_sub(rows_new),
                changed: 0,
            },
        ));
    }
    info!(
        archive = %baseline.archive.display(),
        labels = diffs.len(),
        "first snapshot after reset-state: judged against the row counts the reset recorded"
    );
    let diffs: Vec<(&str, FileDiff)> = diffs.iter().map(|(l, d)| (l.as_str(), *d)).collect();
    Ok(evaluate(guard, &diffs, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sds_core::Format;
    use sds_core::guard::GuardRule;

    fn count(file: &str, entity: Option<&str>, rows: u64) -> BaselineCount {
        BaselineCount {
            file: file.into(),
            entity: entity.map(Into::into),
            rows,
        }
    }

    fn baseline(counts: Vec<BaselineCount>) -> Baseline {
        Baseline {
            recorded_at: chrono::Utc::now(),
            archive: "/archive".into(),
            counts,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text.replace('\n', "\r\n")).unwrap();
    }

    fn specs() -> Vec<&'static FileSpec> {
        Format::V2_1.files(false)
    }

    fn spec(name: &str) -> &'static FileSpec {
        specs().into_iter().find(|s| s.name == name).unwrap()
    }

    fn header(name: &str) -> String {
        spec(name).header().join(",")
    }

    /// A row of `name` with `id` first, `entity` in the entity column (if any), `x` elsewhere.
    fn row(name: &str, id: &str, entity: &str) -> String {
        let spec = spec(name);
        (0..spec.header().len())
            .map(|i| match i {
                0 => id,
                i if Some(i) == spec.entity_index() => entity,
                _ => "x",
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `roles.csv` of v2.1 with `students` student rows and `teachers` teacher rows, in the
    /// order the exporter writes them (by user id: `s…` before `t…`).
    fn roles(students: usize, teachers: usize) -> String {
        let mut t = format!("{}\n", header("roles.csv"));
        for i in 0..students {
            t.push_str(&format!(
                "{}\n",
                row("roles.csv", &format!("s{i}"), "student")
            ));
        }
        for i in 0..teachers {
            t.push_str(&format!(
                "{}\n",
                row("roles.csv", &format!("t{i}"), "teacher")
            ));
        }
        t
    }

    #[test]
    fn rows_are_counted_per_file_and_per_entity_of_mixed_files() {
        let tmp = tempfile::tempdir().unwrap();
        let orgs = header("orgs.csv");
        let org = |id: &str| row("orgs.csv", id, "");
        write(
            tmp.path(),
            "orgs.csv",
            &format!("{orgs}\n{}\n{}\n{}\n", org("1"), org("2"), org("3")),
        );
        write(tmp.path(), "roles.csv", &roles(4, 2));
        // Not an export file of this format: ignored.
        write(tmp.path(), "notes.csv", "a\n1\n");
        let (counts, problems) = count_folder(&specs(), tmp.path());
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<(String, u64)> = counts.iter().map(|c| (c.label(), c.rows)).collect();
        assert_eq!(
            got,
            vec![
                ("orgs.csv".to_owned(), 3),
                ("roles.csv (student)".to_owned(), 4),
                ("roles.csv (teacher)".to_owned(), 2),
            ]
        );
        // A file that is not what its name says is reported, not counted.
        write(tmp.path(), "roles.csv", "something,else\n1,2\n");
        let (counts, problems) = count_folder(&specs(), tmp.path());
        assert_eq!(counts.len(), 1, "{counts:?}");
        assert!(problems[0].contains("roles.csv"), "{problems:?}");
    }

    #[test]
    fn the_largest_count_of_each_label_wins() {
        let got = largest([
            vec![
                count("Student.csv", None, 10),
                count("Teacher.csv", None, 3),
            ],
            vec![count("Student.csv", None, 0), count("Teacher.csv", None, 5)],
        ]);
        assert_eq!(
            got,
            vec![
                count("Student.csv", None, 10),
                count("Teacher.csv", None, 5)
            ]
        );
    }

    #[test]
    fn a_smaller_first_snapshot_is_held_and_an_equal_one_passes() {
        let tmp = tempfile::tempdir().unwrap();
        let b = baseline(vec![
            count("roles.csv", Some("student"), 10),
            count("roles.csv", Some("teacher"), 2),
            // A file of another format: not judged.
            count("Student.csv", None, 10),
        ]);
        let guard = GuardConfig::default();

        write(tmp.path(), "roles.csv", &roles(10, 2));
        let v = judge_first_snapshot(&guard, &b, &specs(), tmp.path()).unwrap();
        assert!(!v.held(), "{:?}", v.trips);

        // No teacher left at all: that entity is emptied.
        write(tmp.path(), "roles.csv", &roles(10, 0));
        let v = judge_first_snapshot(&guard, &b, &specs(), tmp.path()).unwrap();
        assert!(
            v.trips
                .iter()
                .any(|t| t.file == "roles.csv (teacher)" && t.rule == GuardRule::Emptied),
            "{:?}",
            v.trips
        );
        assert!(
            v.trips.iter().all(|t| t.file == "roles.csv (teacher)"),
            "{:?}",
            v.trips
        );

        // Half the students gone: removed beyond 10%.
        write(tmp.path(), "roles.csv", &roles(5, 2));
        let v = judge_first_snapshot(&guard, &b, &specs(), tmp.path()).unwrap();
        assert_eq!(v.trips.len(), 1, "{:?}", v.trips);
        assert_eq!(v.trips[0].rule, GuardRule::Removed);
        assert_eq!((v.trips[0].rows_old, v.trips[0].rows_new), (10, 5));
    }
}
