//! The sweep's deadline, from the Lambda invocation (or the shell's time limit): every call is made
//! within it, so a report always comes out before the function is cut off.

use std::future::Future;
use std::time::Duration;

use ecssd_records::CallError;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `left` from now.
    pub fn after(left: Duration) -> Self {
        Self(Instant::now() + left)
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

/// The error of a call the deadline cut short.
pub fn out_of_time() -> CallError {
    CallError::Permanent {
        operation: "sweep",
        detail: "out of time: the sweep's deadline passed; the next run goes on".into(),
    }
}
