//! The sweep's deadline, from the Lambda invocation (or the shell's time limit): every call is made
//! within it, so a report always comes out before the function is cut off.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecssd_records::CallError;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `left` from now.
    pub fn after(left: Duration) -> Self {
        Self(Instant::now() + left)
    }

    /// A sweep's deadline given `limit` for all of it: the limit less the time kept to report.
    pub fn within_limit(limit: Duration) -> Self {
        Self::after(limit.saturating_sub(reserve(limit)))
    }

    /// The deadline of a Lambda invocation (`Lambda-Runtime-Deadline-Ms`, epoch milliseconds), less the
    /// time kept to report. A deadline that is not in the future cannot be Lambda's (`cargo lambda
    /// watch` sends 600000): then `fallback` applies, and the log says so.
    pub fn of_invocation(deadline_ms: u64, fallback: Duration) -> Self {
        let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
        match deadline.duration_since(SystemTime::now()) {
            Ok(left) if !left.is_zero() => Self::within_limit(left),
            _ => {
                let fallback_seconds = fallback.as_secs();
                tracing::warn!(
                    deadline_ms,
                    fallback_seconds,
                    "the invocation's deadline is not in the future; using ECSSD_TIME_LIMIT_SECONDS"
                );
                Self::within_limit(fallback)
            }
        }
    }

    /// This deadline moved `earlier` sooner: the end of one step that must leave time for the next.
    pub fn earlier_by(&self, earlier: Duration) -> Self {
        Self(self.0.checked_sub(earlier).unwrap_or_else(Instant::now))
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }

    pub fn left(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// `call`'s outcome, or an error once the deadline passes (the call is dropped).
    pub async fn run<T>(&self, call: impl Future<Output = Result<T, CallError>>) -> Result<T, CallError> {
        tokio::time::timeout_at(self.0, call).await.unwrap_or_else(|_| Err(out_of_time()))
    }

    /// `work`'s output, or `None` once the deadline passes.
    pub async fn within<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.0, work).await.ok()
    }
}

/// Time kept back from a deadline to log and answer: a tenth of the time, at least 1 s, at most 10 s.
fn reserve(left: Duration) -> Duration {
    (left / 10).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// The error of a call the deadline cut short.
pub fn out_of_time() -> CallError {
    CallError::Permanent {
        operation: "invocation",
        detail: "out of time: the invocation's deadline passed; what is left waits for the next run".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Duration, expected: Duration) -> bool {
        actual <= expected && expected - actual < Duration::from_millis(500)
    }

    #[tokio::test]
    async fn the_invocation_deadline_less_a_reserve_and_a_fallback_for_a_deadline_in_the_past() {
        let in_a_minute = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
        let lambda = Deadline::of_invocation(in_a_minute.as_millis() as u64, Duration::from_secs(240));
        assert!(close(lambda.left(), Duration::from_secs(54)), "a tenth kept back: {:?}", lambda.left());
        let emulator = Deadline::of_invocation(600_000, Duration::from_secs(240));
        assert!(close(emulator.left(), Duration::from_secs(230)), "at most 10 s kept: {:?}", emulator.left());
        let short = Deadline::within_limit(Duration::from_secs(5));
        assert!(close(short.left(), Duration::from_secs(4)), "at least 1 s kept: {:?}", short.left());
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_is_cut_short() {
        let deadline = Deadline::after(Duration::from_millis(50));
        let hung = deadline.run(std::future::pending::<Result<(), CallError>>()).await;
        assert!(hung.unwrap_err().to_string().contains("out of time"));
        assert!(deadline.passed());
    }
}
