//! The mass-change guard: decides whether a new export differs so much from the last published
//! one that it must be held for an operator instead of being published.
//!
//! SDS treats every upload as the whole truth and deactivates whatever is missing, so an empty
//! query or a broken join in the SIS would wipe out a district. The guard compares each file's
//! [`FileDiff`] against thresholds expressed as a percentage of the *previous* snapshot's rows.
//! Pure: the caller logs the trips (at ERROR) and records the held snapshot.

use serde::{Deserialize, Serialize};

use crate::diff::FileDiff;

/// `[guard]` thresholds, in percent of the previous snapshot's row count of each file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Hold when more than this share of a file's rows disappeared. Default 10.
    pub max_removed_percent: f64,
    /// Hold when more than this share of a file's rows changed in place. Default 50.
    pub max_changed_percent: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_removed_percent: 10.0,
            max_changed_percent: 50.0,
        }
    }
}

impl GuardConfig {
    /// Rejects thresholds that would make every comparison meaningless (NaN, negative).
    /// Values of 100 or more effectively switch a rule off.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_removed_percent", self.max_removed_percent),
            ("max_changed_percent", self.max_changed_percent),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "[guard] {name} must be a number of percent >= 0, got {v}"
                ));
            }
        }
        Ok(())
    }
}

/// Which rule a file tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardRule {
    /// More rows removed than `max_removed_percent` of the previous rows.
    Removed,
    /// More rows changed than `max_changed_percent` of the previous rows.
    Changed,
    /// The file had rows and now has none.
    Emptied,
}

impl GuardRule {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardRule::Removed => "removed",
            GuardRule::Changed => "changed",
            GuardRule::Emptied => "emptied",
        }
    }
}

/// One tripped rule of one file, with everything needed for the ERROR log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardTrip {
    pub file: String,
    pub rule: GuardRule,
    /// Rows in the previous snapshot's file (the base of `percent`).
    pub rows_old: u64,
    pub rows_new: u64,
    /// Rows counted by the rule: removed, changed, or for `Emptied` the rows lost (= rows_old).
    pub count: u64,
    /// `count` as a percentage of `rows_old`.
    pub percent: f64,
    /// The configured limit that `percent` exceeded (100 for `Emptied`, which has no knob).
    pub threshold: f64,
}

impl std::fmt::Display for GuardTrip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rule {
            GuardRule::Emptied => write!(
                f,
                "{}: had {} rows and is now empty",
                self.file, self.rows_old
            ),
            rule => write!(
                f,
                "{}: {} {} of {} rows ({:.2}% > {}%)",
                self.file,
                self.count,
                rule.as_str(),
                self.rows_old,
                self.percent,
                self.threshold
            ),
        }
    }
}

/// The guard's decision for one export: held when any rule tripped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardVerdict {
    /// Every tripped rule, per file in the order the files were given.
    pub trips: Vec<GuardTrip>,
}

impl GuardVerdict {
    pub fn held(&self) -> bool {
        !self.trips.is_empty()
    }
}

/// Evaluates every file's diff against the thresholds. The first snapshot ever has nothing to
/// compare with and is never held.
pub fn evaluate(
    cfg: &GuardConfig,
    diffs: &[(&str, FileDiff)],
    first_snapshot: bool,
) -> GuardVerdict {
    let mut verdict = GuardVerdict::default();
    if first_snapshot {
        return verdict;
    }
    for (file, d) in diffs {
        // A file that was empty before cannot lose or change rows: nothing to guard (and no
        // division by zero).
        if d.rows_old == 0 {
            continue;
        }
        let pct = |n: u64| n as f64 * 100.0 / d.rows_old as f64;
        let mut trip = |rule, count, threshold| {
            verdict.trips.push(GuardTrip {
                file: file.to_string(),
                rule,
                rows_old: d.rows_old,
                rows_new: d.rows_new,
                count,
                percent: pct(count),
                threshold,
            })
        };
        if pct(d.removed) > cfg.max_removed_percent {
            trip(GuardRule::Removed, d.removed, cfg.max_removed_percent);
        }
        if pct(d.changed) > cfg.max_changed_percent {
            trip(GuardRule::Changed, d.changed, cfg.max_changed_percent);
        }
        // Own rule so an empty entity holds even with the removed rule switched off (>= 100).
        if d.rows_new == 0 {
            trip(GuardRule::Emptied, d.rows_old, 100.0);
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(rows_old: u64, rows_new: u64, added: u64, removed: u64, changed: u64) -> FileDiff {
        FileDiff {
            rows_old,
            rows_new,
            added,
            removed,
            changed,
        }
    }

    fn rules(v: &GuardVerdict) -> Vec<(&str, GuardRule)> {
        v.trips.iter().map(|t| (t.file.as_str(), t.rule)).collect()
    }

    #[test]
    fn thresholds_table() {
        use GuardRule::*;
        let cfg = GuardConfig::default();
        let cases: &[(&str, FileDiff, &[GuardRule])] = &[
            ("nothing changed", d(100, 100, 0, 0, 0), &[]),
            ("exactly 10% removed passes", d(100, 90, 0, 10, 0), &[]),
            (
                "exactly 10% removed, big file",
                d(7_500_000, 6_750_000, 0, 750_000, 0),
                &[],
            ),
            (
                "10.01% removed holds",
                d(10_000, 8_999, 0, 1_001, 0),
                &[Removed],
            ),
            ("11 of 100 removed holds", d(100, 89, 0, 11, 0), &[Removed]),
            (
                "removals offset by additions still hold",
                d(100, 100, 20, 20, 0),
                &[Removed],
            ),
            ("exactly 50% changed passes", d(100, 100, 0, 0, 50), &[]),
            (
                "50.01% changed holds",
                d(10_000, 10_000, 0, 0, 5_001),
                &[Changed],
            ),
            ("both rules", d(100, 89, 0, 11, 60), &[Removed, Changed]),
            ("0 -> 0 rows is fine", d(0, 0, 0, 0, 0), &[]),
            ("0 -> N rows is fine", d(0, 500, 500, 0, 0), &[]),
            ("N -> 0 holds", d(3, 0, 0, 3, 0), &[Removed, Emptied]),
            ("growth is fine", d(100, 1_000, 900, 0, 0), &[]),
        ];
        for (name, diff, want) in cases {
            let v = evaluate(&cfg, &[("users.csv", *diff)], false);
            let got: Vec<GuardRule> = v.trips.iter().map(|t| t.rule).collect();
            assert_eq!(&got, want, "{name}");
            assert_eq!(v.held(), !want.is_empty(), "{name}");
        }
    }

    #[test]
    fn emptied_holds_even_with_removed_rule_switched_off() {
        let cfg = GuardConfig {
            max_removed_percent: 100.0,
            max_changed_percent: 100.0,
        };
        let v = evaluate(&cfg, &[("orgs.csv", d(1, 0, 0, 1, 0))], false);
        assert_eq!(rules(&v), vec![("orgs.csv", GuardRule::Emptied)]);
    }

    #[test]
    fn first_snapshot_is_never_held() {
        let v = evaluate(
            &GuardConfig::default(),
            &[("users.csv", d(100, 0, 0, 100, 0))],
            true,
        );
        assert!(!v.held());
    }

    #[test]
    fn every_file_and_rule_is_listed_with_counts() {
        let v = evaluate(
            &GuardConfig::default(),
            &[
                ("orgs.csv", d(10, 10, 0, 0, 0)),
                ("users.csv", d(1_000, 800, 0, 200, 0)),
                ("enrollments.csv", d(40, 0, 0, 40, 0)),
            ],
            false,
        );
        assert_eq!(
            rules(&v),
            vec![
                ("users.csv", GuardRule::Removed),
                ("enrollments.csv", GuardRule::Removed),
                ("enrollments.csv", GuardRule::Emptied),
            ]
        );
        let t = &v.trips[0];
        assert_eq!((t.rows_old, t.rows_new, t.count), (1_000, 800, 200));
        assert_eq!((t.percent, t.threshold), (20.0, 10.0));
        assert_eq!(
            t.to_string(),
            "users.csv: 200 removed of 1000 rows (20.00% > 10%)"
        );
        assert_eq!(
            v.trips[2].to_string(),
            "enrollments.csv: had 40 rows and is now empty"
        );
    }

    #[test]
    fn config_defaults_and_validation() {
        let cfg = GuardConfig::default();
        assert_eq!(
            (cfg.max_removed_percent, cfg.max_changed_percent),
            (10.0, 50.0)
        );
        assert!(cfg.validate().is_ok());
        let bad = GuardConfig {
            max_removed_percent: -1.0,
            ..cfg
        };
        assert!(bad.validate().unwrap_err().contains("max_removed_percent"));
        let bad = GuardConfig {
            max_changed_percent: f64::NAN,
            ..cfg
        };
        assert!(bad.validate().is_err());
    }
}
