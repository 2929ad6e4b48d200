//! Retrying AWS calls: errors split into transient (throttling, PriorRequestInProgress, 5xx, network)
//! and permanent, with exponential backoff and jitter, and a count of calls per operation.
//!
//! The SDK's own retries are turned off on clients used with this module (see
//! [`crate::route53::client`]) so that one policy, long enough to ride out Route53's account-wide limit
//! of 5 requests per second, decides every retry.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How long and how often to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff; each retry doubles it.
    pub base: Duration,
    /// The longest single backoff, so recovery is noticed within this long once the limit lifts.
    pub cap: Duration,
    /// Give up (with [`CallError::Exhausted`]) once this much time has passed; `None` retries forever,
    /// which is what a sidecar wants: it must converge, and it logs every retry.
    pub give_up_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(200), cap: Duration::from_secs(10), give_up_after: None }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `attempt` (1-based): "equal jitter", half fixed and half random,
    /// so many clients throttled together spread out but none retries at once.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
        let ceiling = exp.min(self.cap);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    fn exhausted(&self, elapsed: Duration) -> bool {
        self.give_up_after.is_some_and(|limit| elapsed >= limit)
    }
}

/// How a failed call should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying: throttling, a change still in progress, 5xx, timeouts, connection failures.
    Transient,
    /// Route53 rejected a change batch: the plan was made from a stale view; re-read and re-plan.
    Conflict,
    /// Retrying cannot help: bad input, missing resource, access denied.
    Permanent,
}

/// Error codes AWS uses for "slow down" or "try again".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "PriorRequestInProgress",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
];

/// Sorts an SDK error into an [`ErrorClass`] and a loggable description (no credentials in it).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> (ErrorClass, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(err).to_string();
    let class = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transient
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            match context.err().code() {
                Some(code) if TRANSIENT_CODES.contains(&code) => ErrorClass::Transient,
                Some("InvalidChangeBatch") => ErrorClass::Conflict,
                _ if status == 429 || status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            }
        }
        _ => ErrorClass::Permanent,
    };
    (class, detail)
}

/// A call that failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{operation} was rejected as stale or conflicting: {detail}")]
    Conflict { operation: &'static str, detail: String },
    #[error("{operation} failed: {detail}")]
    Permanent { operation: &'static str, detail: String },
    #[error("{operation} still failing after {attempts} attempts over {elapsed:?}: {detail}")]
    Exhausted { operation: &'static str, attempts: u32, elapsed: Duration, detail: String },
}

/// Counts API calls (attempts, including retries) per operation, for reports and benchmarks.
#[derive(Debug, Default)]
pub struct CallCounter(Mutex<BTreeMap<&'static str, u64>>);

impl CallCounter {
    fn add(&self, operation: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(operation).or_default() += 1;
    }

    /// Calls so far, per operation.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Calls so far, all operations together.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// Sends `send()` until it succeeds, fails permanently, conflicts, or the policy gives up.
pub async fn call_with_retry<T, E, Fut>(
    policy: &RetryPolicy,
    counter: &CallCounter,
    operation: &'static str,
    mut send: impl FnMut() -> Fut,
) -> Result<T, CallError>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        counter.add(operation);
        let err = match send().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let (class, detail) = classify(&err);
        match class {
            ErrorClass::Conflict => return Err(CallError::Conflict { operation, detail }),
            ErrorClass::Permanent => return Err(CallError::Permanent { operation, detail }),
            ErrorClass::Transient if policy.exhausted(started.elapsed()) => {
                return Err(CallError::Exhausted { operation, attempts, elapsed: started.elapsed(), detail });
            }
            ErrorClass::Transient => {
                let delay = policy.delay(attempts);
                tracing::warn!(operation, attempts, delay_ms = delay.as_millis() as u64, error = %detail,
                    "transient AWS error; retrying");
                tokio::time::sleep(delay).await;
            }
        }
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
            [(1, 50, 100), (2, 100, 200), (3, 200, 400), (5, 800, 1600), (6, 1000, 2000), (40, 1000, 2000)]
        {
            for _ in 0..50 {
                let ms = policy.delay(attempt).as_millis();
                assert!((low..=high).contains(&ms), "attempt {attempt}: {ms} ms not in {low}..={high}");
            }
        }
    }

    #[test]
    fn counter_counts_per_operation() {
        let counter = CallCounter::default();
        counter.add("A");
        counter.add("A");
        counter.add("B");
        assert_eq!(counter.snapshot().get("A"), Some(&2));
        assert_eq!(counter.total(), 3);
    }
}
