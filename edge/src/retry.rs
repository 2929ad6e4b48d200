//! Retrying AWS calls: errors split into transient, conflict, not-found and permanent, with exponential
//! backoff and jitter, and a count of calls per operation.
//!
//! Each call names an [`Operation`], which carries the class of every error the SDK models for that
//! operation, matched on the SDK's typed error enum (so a misspelt code cannot compile). Errors the
//! model does not name are classed by AWS's generic codes, taken from the SDK's own retry classifier
//! (`aws_runtime::retries::classifiers`), and by HTTP status.
//!
//! The SDK's own retries are turned off on clients used with this module
//! ([`crate::sdk::for_our_retries`], as [`crate::route53::client`] and the sweeper's ECS and EC2
//! clients do) so that one policy, long enough to ride out Route53's account-wide limit of 5 requests
//! per second, decides every retry; its backoff is the model crate's [`RetryPolicy`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ecssd_records::{CallError, ReportGate, RetryPolicy};

/// How a failed call should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying: throttling, a change still in progress, 5xx, timeouts, connection failures.
    Transient,
    /// Route53 rejected a change batch because the plan was made from a stale view (a CREATE of a
    /// record that exists, a DELETE of one that does not or whose values differ): re-read and re-plan.
    Conflict,
    /// The resource the call names (a cluster, a hosted zone) does not exist.
    NotFound,
    /// Retrying cannot help: an invalid request, access denied.
    Permanent,
}

/// One AWS operation as the retry loop sees it: its name, for logs and counts, and the class of each
/// error its SDK error enum models. `modeled` answers `None` for an error the model does not name
/// (the enum's `Unhandled`), which is then classed by [`generic_class`].
pub struct Operation<E> {
    pub name: &'static str,
    pub modeled: fn(&E) -> Option<ErrorClass>,
}

impl<E> std::fmt::Debug for Operation<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The class of an error no operation models: AWS's generic throttling and transient codes (the SDK's
/// own lists), then HTTP 429 and 5xx as transient; anything else is permanent.
pub fn generic_class(code: Option<&str>, status: u16) -> ErrorClass {
    match code {
        Some(code) if THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code) => {
            ErrorClass::Transient
        }
        _ if status == 429 || status >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Sorts an SDK error into an [`ErrorClass`] and a loggable description (no credentials in it).
pub fn classify<E>(operation: &Operation<E>, err: &SdkError<E, HttpResponse>) -> (ErrorClass, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match err {
        // The code and message AWS sent, without the raw response the SDK's display would add.
        SdkError::ServiceError(context) => format!(
            "{} (HTTP {}): {}",
            context.err().code().unwrap_or("no error code"),
            context.raw().status().as_u16(),
            context.err().message().unwrap_or("no message")
        ),
        _ => DisplayErrorContext(err).to_string(),
    };
    let class = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transient
        }
        SdkError::ServiceError(context) => (operation.modeled)(context.err())
            .unwrap_or_else(|| generic_class(context.err().code(), context.raw().status().as_u16())),
        _ => ErrorClass::Permanent,
    };
    (class, detail)
}

/// Whether AWS answered the call with a refusal (an error response below HTTP 500: throttling, a
/// change still in progress): the request was not carried out. A 5xx, a timeout or a lost connection
/// leave that unknown.
pub fn refused<E>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(context) if context.raw().status().as_u16() < 500)
}

/// Whether AWS refused the call for the account's request rate (`Throttling` and AWS's other throttling
/// codes, as the SDK's own retry classifier lists them).
pub fn throttled<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(context)
        if context.err().code().is_some_and(|code| THROTTLING_ERRORS.contains(&code)))
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

/// Sends `send()` until it succeeds, fails for good (conflict, not found, permanent), or the policy
/// gives up on a transient failure.
pub async fn call_with_retry<T, E, Fut>(
    policy: &RetryPolicy,
    counter: &CallCounter,
    call: &Operation<E>,
    mut send: impl FnMut() -> Fut,
) -> Result<T, CallError>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let operation = call.name;
    let started = Instant::now();
    let mut attempts = 0;
    // Said at the first retry and then once a minute, not at every attempt of a long throttling.
    let mut gate = ReportGate::default();
    loop {
        attempts += 1;
        counter.add(operation);
        let err = match send().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let (class, detail) = classify(call, &err);
        match class {
            ErrorClass::Conflict => return Err(CallError::Conflict { operation, detail }),
            ErrorClass::NotFound => return Err(CallError::NotFound { operation, detail }),
            ErrorClass::Permanent => return Err(CallError::Permanent { operation, detail }),
            ErrorClass::Transient if policy.exhausted(started.elapsed()) => {
                let (refused, throttled) = (refused(&err), throttled(&err));
                let elapsed = started.elapsed();
                return Err(CallError::Exhausted {
                    operation,
                    attempts,
                    elapsed,
                    detail,
                    refused,
                    throttled,
                });
            }
            ErrorClass::Transient => {
                let delay = policy.delay(attempts);
                let delay_ms = delay.as_millis() as u64;
                if gate.open() {
                    tracing::warn!(operation, attempts, delay_ms, error = %detail,
                        "transient AWS error; retrying (said again once a minute while it lasts)");
                } else {
                    tracing::debug!(operation, attempts, delay_ms, error = %detail, "transient AWS error; retrying");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Builds SDK errors the way the SDK hands them out, for unit tests of each operation's classes (here
/// and in the sweeper, which calls ECS and EC2).
pub mod testing {
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;

    use super::{ErrorClass, Operation, classify};

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).expect("a valid HTTP status"), SdkBody::empty())
    }

    /// The class `operation` gives `error` arriving with HTTP `status`.
    pub fn class_of<E>(operation: &Operation<E>, error: E, status: u16) -> ErrorClass
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(operation, &SdkError::service_error(error, response(status))).0
    }

    /// Asserts the classes of what any operation may meet besides its modeled errors: AWS's generic
    /// throttling codes, 5xx and 429, timeouts and connection failures; and that codes AWS does not
    /// use (`PriorRequestInProgress`) or that mean "denied" are permanent. `generic` builds the
    /// operation's `Unhandled` variant from error metadata.
    pub fn assert_generic_classes<E>(operation: &Operation<E>, generic: impl Fn(ErrorMetadata) -> E)
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let coded = |code: &str| generic(ErrorMetadata::builder().code(code).message("from a test").build());
        for (code, status, expected) in [
            ("Throttling", 400, ErrorClass::Transient),
            ("ThrottlingException", 400, ErrorClass::Transient),
            ("RequestLimitExceeded", 503, ErrorClass::Transient),
            ("TooManyRequestsException", 429, ErrorClass::Transient),
            ("RequestTimeout", 400, ErrorClass::Transient),
            ("InternalError", 500, ErrorClass::Transient),
            ("InternalFailure", 500, ErrorClass::Transient),
            ("ServiceUnavailable", 503, ErrorClass::Transient),
            ("", 502, ErrorClass::Transient),
            ("", 429, ErrorClass::Transient),
            ("AccessDenied", 403, ErrorClass::Permanent),
            ("AccessDeniedException", 400, ErrorClass::Permanent),
            ("PriorRequestInProgress", 400, ErrorClass::Permanent),
            ("", 400, ErrorClass::Permanent),
        ] {
            let error = if code.is_empty() { generic(ErrorMetadata::builder().build()) } else { coded(code) };
            assert_eq!(class_of(operation, error, status), expected, "{} {code:?} {status}", operation.name);
        }
        let timeout: SdkError<E, HttpResponse> = SdkError::timeout_error("attempt timed out");
        assert_eq!(classify(operation, &timeout).0, ErrorClass::Transient, "{} timeout", operation.name);
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let dispatch: SdkError<E, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(reset.into()));
        assert_eq!(classify(operation, &dispatch).0, ErrorClass::Transient, "{} connection", operation.name);
        let garbled: SdkError<E, HttpResponse> = SdkError::response_error("truncated body", response(200));
        assert_eq!(classify(operation, &garbled).0, ErrorClass::Transient, "{} bad response", operation.name);
        let unbuildable: SdkError<E, HttpResponse> = SdkError::construction_failure("missing field");
        assert_eq!(
            classify(operation, &unbuildable).0,
            ErrorClass::Permanent,
            "{} construction",
            operation.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
