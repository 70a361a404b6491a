//! When a failed delivery is tried again: exponential backoff with a cap, "equal jitter", and a
//! limit on attempts, computed from the attempt count the outbox persists.
//!
//! Whether to retry at all (permanent vs retryable errors) is decided by the delivery error's
//! kind, not here; this module only answers "how long after the n-th failure", so the two stay
//! apart.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};

/// Defaults of `[retry]`.
pub const DEFAULT_INITIAL: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX: Duration = Duration::from_secs(1800);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;

/// Walking the backoff sequence further than this changes nothing (30 s doubled 64 times is far
/// past any cap), and the bound keeps a corrupt attempt counter from costing a long loop.
const MAX_STEPS: u32 = 64;

/// A `[retry]` value that makes no sense, named by its config key.
#[derive(Debug, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("retry.initial_backoff_secs must be at least 1 (got {0})")]
    ZeroInitial(u64),
    #[error(
        "retry.max_backoff_secs ({max}) must be at least retry.initial_backoff_secs ({initial})"
    )]
    MaxBelowInitial { initial: u64, max: u64 },
    #[error("retry.max_attempts must be at least 1 (got 0)")]
    ZeroAttempts,
}

/// The retry policy for deliveries.
///
/// After the n-th consecutive failure (n = 1, 2, ...) the base delay is
/// `b(n) = min(initial * 2^(n-1), max)`, and the actual delay is drawn uniformly from
/// `[b(n)/2, b(n)]` ("equal jitter"). Equal rather than full jitter: full jitter (`[0, b]`) can
/// retry almost at once, which against a destination that is down is wasted work; equal jitter
/// keeps at least half the backoff and still spreads retries out. Every delay is `<= max`.
///
/// `max_attempts` counts every attempt, the first included: with 20, a job is given up after its
/// 20th failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: DEFAULT_INITIAL,
            max: DEFAULT_MAX,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl RetryPolicy {
    /// Builds a policy from `[retry] initial_backoff_secs`, `max_backoff_secs` and `max_attempts`.
    ///
    /// # Errors
    /// [`RetryPolicyError`] naming the key when a value is zero or the cap is below the start.
    pub fn from_secs(
        initial_secs: u64,
        max_secs: u64,
        max_attempts: u32,
    ) -> Result<RetryPolicy, RetryPolicyError> {
        if initial_secs == 0 {
            return Err(RetryPolicyError::ZeroInitial(initial_secs));
        }
        if max_secs < initial_secs {
            return Err(RetryPolicyError::MaxBelowInitial {
                initial: initial_secs,
                max: max_secs,
            });
        }
        if max_attempts == 0 {
            return Err(RetryPolicyError::ZeroAttempts);
        }
        Ok(RetryPolicy {
            initial: Duration::from_secs(initial_secs),
            max: Duration::from_secs(max_secs),
            max_attempts,
        })
    }

    /// The backon builder for this policy, without jitter (see [`RetryPolicy`] for why jitter is
    /// applied here). Also usable as-is for an in-process retry loop (`Retryable::retry`); there
    /// it yields at most `max_attempts - 1` delays, i.e. `max_attempts` tries in total.
    pub fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }

    /// The delay before the next attempt after `failures` consecutive failures (1-based; 0 is
    /// treated as 1), before jitter: `min(initial * 2^(failures-1), max)`.
    ///
    /// Deliveries persist `attempts` and `next_attempt_at` in the state DB and resume after a
    /// restart, so an in-memory backon iterator cannot be kept across attempts. backon has no
    /// "n-th delay" call, so this rebuilds its sequence and takes the n-th element (cheap: the
    /// walk is bounded by [`MAX_STEPS`], and the cap is reached after a handful of steps).
    pub fn base_delay(&self, failures: u32) -> Duration {
        let steps = failures.clamp(1, MAX_STEPS) as usize;
        let delay = self
            .builder()
            // The attempt limit is `exhausted`'s business; here we want the delay for any n.
            .without_max_times()
            .build()
            .nth(steps - 1)
            .unwrap_or(self.max);
        // backon returns min_delay for the first step even when it exceeds max_delay.
        delay.min(self.max)
    }

    /// The jittered delay after `failures` consecutive failures: uniform in
    /// `[base/2, base]` with `base = base_delay(failures)`.
    ///
    /// `rng` is the jitter source; pass `&mut fastrand::Rng::new()` (or a long-lived one) in the
    /// daemon and a seeded one in tests.
    pub fn delay_for(&self, failures: u32, rng: &mut fastrand::Rng) -> Duration {
        let base = self.base_delay(failures);
        let half = base / 2;
        // `base - half` rather than `half` so odd nanosecond counts still reach `base`.
        half + (base - half).mul_f64(rng.f64())
    }

    /// When to try again after `failures` consecutive failures that ended at `now`, or `None` if
    /// the job has used up its attempts and must be marked failed.
    pub fn next_attempt_at(
        &self,
        now: DateTime<Utc>,
        failures: u32,
        rng: &mut fastrand::Rng,
    ) -> Option<DateTime<Utc>> {
        if self.exhausted(failures) {
            return None;
        }
        // A delay never exceeds `max` (from config, in seconds), so the conversion only fails for
        // absurd caps; fall back to the largest representable step rather than panicking.
        let delay = chrono::Duration::from_std(self.delay_for(failures, rng))
            .unwrap_or(chrono::Duration::MAX);
        Some(
            now.checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// True once `attempts` (attempts made so far, all failed) reaches `max_attempts`: give up.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn default_matches_the_documented_config_defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p.initial, secs(30));
        assert_eq!(p.max, secs(1800));
        assert_eq!(p.max_attempts, 20);
        assert_eq!(RetryPolicy::from_secs(30, 1800, 20).expect("valid"), p);
    }

    #[test]
    fn base_delay_doubles_from_initial_and_is_capped_at_max() {
        let p = RetryPolicy::default();
        let got: Vec<u64> = (1..=9).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(got, vec![30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(p.base_delay(0), secs(30), "0 failures is treated as 1");
        assert_eq!(
            p.base_delay(u32::MAX),
            secs(1800),
            "huge counters stay capped"
        );
    }

    #[test]
    fn jittered_delays_grow_stay_within_half_to_full_base_and_never_exceed_max() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 1..=30 {
            let base = p.base_delay(n);
            for _ in 0..200 {
                let d = p.delay_for(n, &mut rng);
                assert!(
                    d >= base / 2 && d <= base,
                    "n={n}: {d:?} outside [{:?}, {base:?}]",
                    base / 2
                );
                assert!(d <= p.max);
            }
        }
        // Growth survives jitter: the lowest possible delay after 3 failures (60 s) is above
        // the highest after 1 (30 s).
        for _ in 0..200 {
            assert!(p.delay_for(3, &mut rng) >= p.delay_for(1, &mut rng));
        }
    }

    #[test]
    fn jitter_makes_delays_differ() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(42);
        let mut seen: Vec<Duration> = (0..50).map(|_| p.delay_for(5, &mut rng)).collect();
        seen.sort();
        seen.dedup();
        assert!(
            seen.len() > 40,
            "only {} distinct delays out of 50",
            seen.len()
        );
        // And with the same seed, the same sequence (tests stay reproducible).
        let a: Vec<_> = {
            let mut r = fastrand::Rng::with_seed(1);
            (1..10).map(|n| p.delay_for(n, &mut r)).collect()
        };
        let b: Vec<_> = {
            let mut r = fastrand::Rng::with_seed(1);
            (1..10).map(|n| p.delay_for(n, &mut r)).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn exhausted_at_max_attempts() {
        let p = RetryPolicy::from_secs(1, 4, 3).expect("valid");
        assert!(!p.exhausted(0));
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
        assert!(p.exhausted(4));
        let now = Utc::now();
        let mut rng = fastrand::Rng::with_seed(3);
        let next = p
            .next_attempt_at(now, 2, &mut rng)
            .expect("a third attempt is allowed");
        let wait = next - now;
        assert!(wait >= chrono::Duration::seconds(1) && wait <= chrono::Duration::seconds(2));
        assert_eq!(p.next_attempt_at(now, 3, &mut rng), None);
    }

    #[test]
    fn backon_builder_yields_max_attempts_minus_one_delays() {
        let p = RetryPolicy::from_secs(1, 4, 5).expect("valid");
        let delays: Vec<u64> = p.builder().build().map(|d| d.as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 4]);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let e = RetryPolicy::from_secs(0, 10, 3)
            .expect_err("zero initial")
            .to_string();
        assert!(e.contains("retry.initial_backoff_secs"), "{e}");
        let e = RetryPolicy::from_secs(60, 30, 3)
            .expect_err("max < initial")
            .to_string();
        assert!(e.contains("retry.max_backoff_secs"), "{e}");
        let e = RetryPolicy::from_secs(1, 30, 0)
            .expect_err("zero attempts")
            .to_string();
        assert!(e.contains("retry.max_attempts"), "{e}");
    }

    #[test]
    fn a_policy_built_by_hand_with_initial_above_max_still_caps() {
        let p = RetryPolicy {
            initial: secs(100),
            max: secs(10),
            max_attempts: 3,
        };
        assert_eq!(p.base_delay(1), secs(10));
        assert_eq!(p.base_delay(2), secs(10));
    }
}
