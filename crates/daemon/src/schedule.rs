//! When the daemon runs: a cron expression evaluated in an IANA time zone, DST-correct, plus the
//! sleep that waits for the next occurrence.
//!
//! Every occurrence is computed from wall-clock time in the configured zone (croner over
//! `chrono_tz::Tz`), never through a UTC offset captured once: a fixed offset is exactly the bug
//! that makes tokio-cron-scheduler run an hour off after a DST change. DST rules, as croner
//! applies them to a time with fixed second, minute and hour ("fixed-time job"):
//! - a local time skipped by spring-forward (02:30 on the day New York moves 02:00 → 03:00) fires
//!   once, at the first valid instant after the gap (03:00 local);
//! - a local time repeated by fall-back fires once, at its first (daylight-time) instant.
//!
//! Interval or wildcard expressions (`*/15 * * * *`) fire at every matching instant that exists,
//! including both copies of a repeated hour, so they keep their rhythm in real time.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, LocalResult, Offset, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, JobType};
use tokio_util::sync::CancellationToken;

/// The longest single sleep in [`sleep_until_next`]. tokio's timers run on the monotonic clock,
/// which stops while the machine is suspended and ignores wall-clock steps; waking up at least
/// this often and re-reading the wall clock bounds how late a run can be after either.
const MAX_SLEEP_CHUNK: Duration = Duration::from_secs(60);

/// How many candidates [`Schedule::next_after`] examines before giving up. Croner only returns
/// an instant at or before the start for a fall-back repeated hour (at most once or twice in a
/// row), so this bound is never reached by a real expression; it only guards against a loop.
const MAX_CANDIDATES: usize = 8;

/// Why `[schedule]` could not be turned into a [`Schedule`]. Each message names the config key,
/// the value, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The expression does not have 5 or 6 whitespace-separated fields.
    #[error(
        "schedule.cron = {expr:?} has {fields} field(s); expected 5 (`minute hour day-of-month \
         month day-of-week`, e.g. \"30 2 * * *\") or 6 with seconds first (e.g. \"0 30 2 * * *\")"
    )]
    FieldCount { expr: String, fields: usize },
    /// Croner rejected the expression; `reason` is its explanation.
    #[error("schedule.cron = {expr:?} is not a valid cron expression: {reason}")]
    InvalidCron { expr: String, reason: String },
    /// The expression is well-formed but matches no real date (e.g. 30 February).
    #[error(
        "schedule.cron = {expr:?} never fires: it matches no date that exists (e.g. 30 February)"
    )]
    NeverFires { expr: String },
    /// The time zone is not in the IANA database shipped with chrono-tz.
    #[error(
        "schedule.timezone = {name:?} is not a known IANA time zone name (expected e.g. \"UTC\", \
         \"America/New_York\", \"Europe/Berlin\"; names are case-sensitive)"
    )]
    UnknownTimezone { name: String },
}

/// A parsed `[schedule]`: a cron expression and the zone its wall-clock times are read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as the admin wrote it (trimmed), for logs and `describe`.
    expr: String,
    cron: Cron,
    tz: Tz,
    /// Cached: croner's DST rules differ for fixed-time and interval expressions.
    fixed_time: bool,
}

impl Schedule {
    /// Parses `[schedule] cron` and `[schedule] timezone`.
    ///
    /// `cron` has 5 fields (`minute hour day-of-month month day-of-week`) or 6 with seconds first.
    /// Day-of-month and day-of-week combine with OR when both are restricted, as in Vixie cron.
    /// `tz` is an IANA name such as `"America/New_York"`; the config layer supplies `"UTC"` when
    /// the key is absent.
    ///
    /// # Errors
    /// [`ScheduleError`] naming `schedule.cron` or `schedule.timezone` and the problem. An
    /// expression that can never fire (e.g. `0 0 30 2 *`) is rejected here, so the scheduler never
    /// has to handle "no next occurrence" at run time.
    pub fn parse(cron: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let expr = cron.trim().to_string();
        let tz_name = tz.trim();
        let tz = Tz::from_str(tz_name).map_err(|_| ScheduleError::UnknownTimezone {
            name: tz_name.to_string(),
        })?;

        // croner also accepts a 7th (year) field and @nicknames; the documented contract is 5 or
        // 6 fields, so check the count ourselves and give a message that says what is expected.
        let fields = expr.split_whitespace().count();
        if !(fields == 5 || fields == 6) {
            return Err(ScheduleError::FieldCount { expr, fields });
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(&expr)
            .map_err(|e| ScheduleError::InvalidCron {
                expr: expr.clone(),
                reason: e.to_string(),
            })?;
        let fixed_time = cron.determine_job_type() == JobType::FixedTime;
        let schedule = Schedule {
            expr,
            cron,
            tz,
            fixed_time,
        };
        // Every valid pattern without a year field recurs, so one probe from a fixed instant is
        // enough to find expressions that never match (30 February); it also keeps `parse`
        // independent of the current time. Croner gives up after a bounded search.
        let probe = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        if probe.and_then(|p| schedule.next_after(p)).is_none() {
            return Err(ScheduleError::NeverFires {
                expr: schedule.expr,
            });
        }
        Ok(schedule)
    }

    /// The first occurrence strictly after `t`, or `None` if there is none within croner's
    /// search limit (which `parse` rules out for every accepted expression).
    ///
    /// The search runs in local time of the configured zone each call, so the UTC instant of a
    /// daily 02:30 job moves by an hour across DST changes. Sub-second parts of `t` are ignored
    /// (occurrences are whole seconds), so calling this again with the instant just returned, or
    /// any time within the same second, moves on to the following occurrence.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from_croner = self.next_after_croner(t);
        if self.fixed_time {
            return from_croner;
        }
        // Croner walks naive local time, so from the first copy of a repeated (fall-back) hour
        // it steps straight past the second copy. An interval job should keep its rhythm in
        // real time through that hour, so also look at the second copy.
        match (from_croner, self.first_in_second_copy_of_repeated_hour(t)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Croner's next occurrence, skipping candidates that are not after `t`.
    fn next_after_croner(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cursor = t.trunc_subsecs(0).with_timezone(&self.tz);
        for _ in 0..MAX_CANDIDATES {
            let candidate = self.cron.find_next_occurrence(&cursor, false).ok()?;
            let candidate_utc = candidate.with_timezone(&Utc);
            if candidate_utc > t {
                return Some(candidate_utc);
            }
            // Croner maps a repeated (fall-back) wall-clock time to its earlier instant. When
            // `t` lies in the second copy of the repeated hour, that instant is already past.
            if !self.fixed_time {
                // An interval job fires at every instant that exists: take the second one.
                if let Some(later) = self
                    .tz
                    .from_local_datetime(&candidate.naive_local())
                    .latest()
                    .map(|l| l.with_timezone(&Utc))
                    && later > t
                {
                    return Some(later);
                }
            }
            // A fixed-time job fires once per repeated wall-clock time, at the first instant,
            // which is gone: search on from after it (that moves past the repeated slot).
            cursor = candidate;
        }
        None
    }

    /// When `t` lies in the first copy of a repeated (fall-back) stretch of wall-clock time,
    /// the first match inside the second copy; otherwise `None`.
    fn first_in_second_copy_of_repeated_hour(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        let LocalResult::Ambiguous(earlier, _) = self.tz.from_local_datetime(&local.naive_local())
        else {
            return None;
        };
        if local.offset().fix() != earlier.offset().fix() {
            return None; // already in the second copy: croner's search covers the rest
        }
        // The second copy starts at the transition: the first instant after `t` whose offset
        // differs. chrono-tz has no transition lookup, so bisect; a fold is at most a few hours,
        // and a day bounds it with room to spare.
        let offset_at = |u: DateTime<Utc>| u.with_timezone(&self.tz).offset().fix();
        let here = offset_at(t);
        let (mut lo, mut hi) = (t.trunc_subsecs(0), t.trunc_subsecs(0) + TimeDelta::days(1));
        if offset_at(hi) == here {
            return None;
        }
        while hi - lo > TimeDelta::seconds(1) {
            // Whole seconds, so the transition found is a whole second like every occurrence.
            let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
            if offset_at(mid) == here {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // `hi` is the transition; in local time it is the start of the second copy.
        let found = self
            .cron
            .find_next_occurrence(&hi.with_timezone(&self.tz), true)
            .ok()?;
        // Croner hands back the earlier instant of an ambiguous time; we want the later one, and
        // only while still inside the fold (after it, croner's own search is right).
        match self.tz.from_local_datetime(&found.naive_local()) {
            LocalResult::Ambiguous(_, later) => Some(later.with_timezone(&Utc)),
            _ => None,
        }
    }

    /// A one-line human description for logs and `sds-sync check`, e.g.
    /// `30 2 * * 1-5 (UTC): At 02:30, on Monday, Tuesday, Wednesday, Thursday, and Friday.`
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): {}",
            self.expr,
            self.tz.name(),
            self.cron.describe()
        )
    }
}

/// Sleeps until the next occurrence of `schedule` after now and returns that occurrence, or
/// `None` as soon as `cancel` fires.
///
/// The wait is split into chunks of at most a minute, re-reading the wall clock after each, so a
/// suspended machine or a wall-clock step delays a run by at most that much instead of by the
/// length of the suspension. If the occurrence is already past when the process wakes (after a
/// long suspend), it returns at once: missed occurrences collapse into one run, and the next call
/// computes from the current time.
pub async fn sleep_until_next(
    schedule: &Schedule,
    cancel: &CancellationToken,
) -> Option<DateTime<Utc>> {
    let Some(target) = schedule.next_after(Utc::now()) else {
        // Unreachable for schedules from `parse` (it rejects expressions that never fire); if it
        // ever happens, waiting for shutdown is better than spinning or firing at random.
        tracing::error!(
            schedule = %schedule.describe(),
            "schedule has no next occurrence; no further runs will start"
        );
        cancel.cancelled().await;
        return None;
    };
    loop {
        let now = Utc::now();
        if now >= target {
            return Some(target);
        }
        let remaining = (target - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(remaining.min(MAX_SLEEP_CHUNK)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, Timelike};
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid UTC test time")
    }

    /// All occurrences in `[from, until)`.
    fn occurrences(s: &Schedule, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = s.next_after(t) {
            assert!(next > t, "next_after({t}) returned {next}, not after it");
            if next >= until {
                break;
            }
            out.push(next);
            t = next;
        }
        out
    }

    #[test]
    fn daily_0230_new_york_fires_once_per_local_day_across_both_dst_changes() {
        let s = Schedule::parse("30 2 * * *", "America/New_York").expect("valid schedule");
        // From local midnight 2026-03-01 to local midnight 2026-12-01.
        let from = utc(2026, 3, 1, 5, 0, 0);
        let until = utc(2026, 12, 1, 5, 0, 0);
        let fired = occurrences(&s, from, until);

        let mut day = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        let last = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        let mut expected_days = 0;
        while day <= last {
            let n = fired
                .iter()
                .filter(|f| f.with_timezone(&New_York).date_naive() == day)
                .count();
            assert_eq!(n, 1, "{day}: fired {n} times");
            expected_days += 1;
            day = day.succ_opt().expect("next day");
        }
        assert_eq!(fired.len(), expected_days, "no firings outside the days");

        for f in &fired {
            let local = f.with_timezone(&New_York);
            let d = local.date_naive();
            let (h, m) = (local.hour(), local.minute());
            if d == NaiveDate::from_ymd_opt(2026, 3, 8).expect("date") {
                // 02:30 does not exist that day (02:00 EST → 03:00 EDT): croner fires at the
                // first instant after the gap, 03:00 EDT = 07:00 UTC.
                assert_eq!((h, m), (3, 0), "gap day fires at 03:00 local, got {local}");
                assert_eq!(*f, utc(2026, 3, 8, 7, 0, 0));
            } else {
                assert_eq!((h, m, local.second()), (2, 30, 0), "{local}");
            }
        }

        // The UTC instant moves by one hour across each change.
        let on = |y, mo, d| {
            fired
                .iter()
                .find(|f| {
                    f.with_timezone(&New_York).date_naive()
                        == NaiveDate::from_ymd_opt(y, mo, d).expect("date")
                })
                .copied()
                .expect("fired that day")
        };
        assert_eq!(on(2026, 3, 7), utc(2026, 3, 7, 7, 30, 0)); // EST, UTC-5
        assert_eq!(on(2026, 3, 9), utc(2026, 3, 9, 6, 30, 0)); // EDT, UTC-4
        assert_eq!(on(2026, 10, 31), utc(2026, 10, 31, 6, 30, 0)); // EDT
        // 2026-11-01: clocks fall back 02:00 EDT → 01:00 EST, so 02:30 exists once, in EST.
        assert_eq!(on(2026, 11, 1), utc(2026, 11, 1, 7, 30, 0));
        assert_eq!(on(2026, 11, 2), utc(2026, 11, 2, 7, 30, 0)); // EST, UTC-5
    }

    #[test]
    fn repeated_fall_back_time_fires_once_even_when_asked_from_inside_the_repeated_hour() {
        // 01:30 exists twice on 2026-11-01 in New York: 05:30 UTC (EDT) and 06:30 UTC (EST).
        let s = Schedule::parse("30 1 * * *", "America/New_York").expect("valid schedule");
        let first = s.next_after(utc(2026, 11, 1, 4, 0, 0)).expect("occurrence");
        assert_eq!(first, utc(2026, 11, 1, 5, 30, 0));
        let after_first = s.next_after(first).expect("occurrence");
        assert_eq!(
            after_first,
            utc(2026, 11, 2, 6, 30, 0),
            "no second run that day"
        );
        // Asked from 01:10 EST (between the two 01:30s, e.g. a restart): croner's candidate is
        // the already-past EDT instant; it must be skipped, not returned.
        let from_inside = s
            .next_after(utc(2026, 11, 1, 6, 10, 0))
            .expect("occurrence");
        assert_eq!(from_inside, utc(2026, 11, 2, 6, 30, 0));
    }

    #[test]
    fn interval_job_covers_both_copies_of_the_repeated_hour() {
        let s = Schedule::parse("*/30 * * * *", "America/New_York").expect("valid schedule");
        let fired = occurrences(&s, utc(2026, 11, 1, 4, 59, 0), utc(2026, 11, 1, 7, 1, 0));
        let expected: Vec<_> = [(5, 0), (5, 30), (6, 0), (6, 30), (7, 0)]
            .iter()
            .map(|&(h, m)| utc(2026, 11, 1, h, m, 0))
            .collect();
        assert_eq!(fired, expected);
        // Asked from inside the second copy: the next is its own :30, not the past EDT one.
        assert_eq!(
            s.next_after(utc(2026, 11, 1, 6, 10, 0)),
            Some(utc(2026, 11, 1, 6, 30, 0))
        );
        // Spring forward: 01:30 EST is followed 30 real minutes later by 03:00 EDT.
        let fired = occurrences(&s, utc(2026, 3, 8, 6, 29, 0), utc(2026, 3, 8, 7, 31, 0));
        assert_eq!(
            fired,
            vec![
                utc(2026, 3, 8, 6, 30, 0),
                utc(2026, 3, 8, 7, 0, 0),
                utc(2026, 3, 8, 7, 30, 0)
            ]
        );
    }

    #[test]
    fn hourly_job_is_exactly_one_hour_apart_in_real_time_all_year() {
        let s = Schedule::parse("0 * * * *", "America/New_York").expect("valid schedule");
        let fired = occurrences(&s, utc(2025, 12, 31, 23, 59, 0), utc(2027, 1, 1, 0, 0, 0));
        assert_eq!(fired.len(), 365 * 24);
        for pair in fired.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                TimeDelta::hours(1),
                "{} → {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn berlin_0800_stays_0800_local_across_spring_forward() {
        let s = Schedule::parse("0 8 * * *", "Europe/Berlin").expect("valid schedule");
        let fired = occurrences(&s, utc(2026, 3, 27, 0, 0, 0), utc(2026, 3, 31, 0, 0, 0));
        let local: Vec<_> = fired
            .iter()
            .map(|f| {
                let l = f.with_timezone(&Berlin);
                (l.day(), l.hour(), l.minute())
            })
            .collect();
        assert_eq!(local, vec![(27, 8, 0), (28, 8, 0), (29, 8, 0), (30, 8, 0)]);
        assert_eq!(fired[1], utc(2026, 3, 28, 7, 0, 0)); // CET, UTC+1
        assert_eq!(fired[2], utc(2026, 3, 29, 6, 0, 0)); // CEST, UTC+2
    }

    #[test]
    fn six_fields_take_seconds_first() {
        let s = Schedule::parse("*/20 * * * * *", "UTC").expect("valid schedule");
        let t = utc(2026, 1, 1, 12, 0, 5);
        assert_eq!(s.next_after(t), Some(utc(2026, 1, 1, 12, 0, 20)));
        let s = Schedule::parse("15 30 2 * * *", "UTC").expect("valid schedule");
        assert_eq!(s.next_after(t), Some(utc(2026, 1, 2, 2, 30, 15)));
        // Five fields mean second 0.
        let s = Schedule::parse("30 2 * * *", "UTC").expect("valid schedule");
        assert_eq!(s.next_after(t), Some(utc(2026, 1, 2, 2, 30, 0)));
    }

    #[test]
    fn next_after_ignores_subseconds_and_is_strictly_after() {
        let s = Schedule::parse("30 2 * * *", "UTC").expect("valid schedule");
        let at = utc(2026, 5, 5, 2, 30, 0);
        let just_after = at + chrono::Duration::milliseconds(700);
        let just_before = at - chrono::Duration::milliseconds(300);
        assert_eq!(s.next_after(just_before), Some(at));
        assert_eq!(s.next_after(at), Some(utc(2026, 5, 6, 2, 30, 0)));
        assert_eq!(s.next_after(just_after), Some(utc(2026, 5, 6, 2, 30, 0)));
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_with_or() {
        // The 1st of the month OR any Monday, as in Vixie cron.
        let s = Schedule::parse("0 6 1 * MON", "UTC").expect("valid schedule");
        // 2026-06-01 is a Monday; from 06-02 the next is Monday 06-08, not 07-01.
        assert_eq!(
            s.next_after(utc(2026, 6, 2, 0, 0, 0)),
            Some(utc(2026, 6, 8, 6, 0, 0))
        );
    }

    #[test]
    fn invalid_cron_errors_name_the_key_and_the_problem() {
        for (expr, want) in [
            ("", "0 field"),
            ("* * * *", "4 field"),
            ("0 0 0 1 1 * 2030", "7 field"),
            ("61 * * * *", "not a valid cron expression"),
            ("30 2 * * FOO", "not a valid cron expression"),
            ("0 0 30 2 *", "never fires"),
        ] {
            let err = Schedule::parse(expr, "UTC").expect_err(expr).to_string();
            assert!(err.starts_with("schedule.cron = "), "{expr:?}: {err}");
            assert!(err.contains(want), "{expr:?}: {err}");
            assert!(
                err.contains(&format!("{:?}", expr.trim())),
                "{expr:?}: {err}"
            );
        }
    }

    #[test]
    fn unknown_timezone_errors_name_the_key() {
        for tz in ["Mars/Olympus_Mons", "america/new_york", "", "EST5EDT+1"] {
            let err = Schedule::parse("30 2 * * *", tz).expect_err(tz).to_string();
            assert!(err.starts_with("schedule.timezone = "), "{tz:?}: {err}");
            assert!(err.contains("IANA"), "{err}");
        }
        assert_eq!(
            Schedule::parse("30 2 * * *", " UTC ").expect("trimmed").tz,
            Tz::UTC
        );
    }

    #[test]
    fn describe_names_expression_and_zone() {
        let s = Schedule::parse(" 30 2 * * * ", "America/New_York").expect("valid schedule");
        let d = s.describe();
        assert!(d.starts_with("30 2 * * * (America/New_York): "), "{d}");
        let weekdays = Schedule::parse("30 2 * * 1-5", "UTC").expect("valid schedule");
        assert!(
            weekdays.describe().contains("Monday"),
            "{}",
            weekdays.describe()
        );
        assert_eq!(s.expr, "30 2 * * *");
    }

    #[tokio::test]
    async fn sleep_until_next_returns_the_occurrence_and_none_on_cancel() {
        let every_second = Schedule::parse("* * * * * *", "UTC").expect("valid schedule");
        let cancel = CancellationToken::new();
        let before = Utc::now();
        let fired = tokio::time::timeout(
            Duration::from_secs(5),
            sleep_until_next(&every_second, &cancel),
        )
        .await
        .expect("an every-second schedule fires within 5 s")
        .expect("not cancelled");
        assert!(fired > before);
        assert!(Utc::now() >= fired, "returned before the occurrence");

        let yearly = Schedule::parse("0 0 1 1 *", "UTC").expect("valid schedule");
        let waiter = {
            let cancel = cancel.clone();
            tokio::spawn(async move { sleep_until_next(&yearly, &cancel).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("cancel wakes the sleeper promptly")
            .expect("task did not panic");
        assert_eq!(got, None);
    }
}
