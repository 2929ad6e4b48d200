//! Pacing one client's requests to its share of the account's rate, and below it while the account is
//! busier than that share assumes. Route53 allows each account a few requests per second, all its
//! tools together (Developer Guide, "Throttling for Amazon Route 53 API requests"): a `Throttling`
//! answer says others are using what this client's share counted on.
//!
//! Additive increase, multiplicative decrease, as TCP's congestion control and the AWS SDKs' adaptive
//! retry mode (a client-side rate limiter that shrinks on throttling and grows back on success): each
//! throttled request halves the rate, down to an eighth of the share (a withdrawal still goes out
//! within seconds); each answered one gives a tenth of the share back, up to the share. Turns are jittered so clients started together drift apart.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::time::Instant;

use crate::retry::throttled;

/// Sends `request` at its turn when a client is paced (`pacer`), and tells the pacer how it went.
pub async fn paced<T, E: ProvideErrorMetadata>(
    pacer: Option<&Pacer>,
    request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, SdkError<E, HttpResponse>> {
    let Some(pacer) = pacer else { return request.await };
    pacer.ready().await;
    let result = request.await;
    match &result {
        Err(e) if throttled(e) => pacer.throttled(),
        Err(SdkError::ServiceError(_)) | Ok(_) => pacer.answered(),
        // No answer: nothing learned about the account's rate.
        Err(_) => {}
    }
    result
}

/// The slowest a throttled client goes, as a fraction of its share: at a withdrawer's 1/s, one request
/// every 8 s.
const FLOOR_FRACTION: f64 = 1.0 / 8.0;
/// Given back per answered request, as a fraction of the share: ten answers after a throttling the
/// client is at its share again.
const STEP_FRACTION: f64 = 0.1;

/// Spaces requests by the current rate, across every clone of the client that shares it.
#[derive(Debug)]
pub struct Pacer {
    /// The client's share of the account's rate (requests per second): the most it goes.
    share: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests per second now, between the floor and the share.
    rate: f64,
    /// The next request's turn.
    next: Option<Instant>,
}

impl Pacer {
    /// At most `share` requests per second; `None` for a rate that is not a positive finite number.
    pub fn per_second(share: f64) -> Option<Self> {
        (share.is_finite() && share > 0.0)
            .then(|| Self { share, state: Mutex::new(State { rate: share, next: None }) })
    }

    /// Waits for this request's turn.
    pub async fn ready(&self) {
        let turn = {
            let mut state = self.lock();
            let now = Instant::now();
            let turn = state.next.map_or(now, |at| at.max(now));
            state.next = Some(turn + interval(state.rate).mul_f64(0.8 + 0.4 * fastrand::f64()));
            turn
        };
        tokio::time::sleep_until(turn).await;
    }

    /// The account refused a request for its rate: halve ours, and wait a whole new interval before
    /// the next request.
    pub fn throttled(&self) {
        let mut state = self.lock();
        state.rate = (state.rate / 2.0).max(self.share * FLOOR_FRACTION);
        let after = Instant::now() + interval(state.rate);
        state.next = Some(state.next.map_or(after, |at| at.max(after)));
    }

    /// A request was answered (whatever the answer, other than throttling): grow back toward the share.
    pub fn answered(&self) {
        let mut state = self.lock();
        state.rate = (state.rate + self.share * STEP_FRACTION).min(self.share);
    }

    /// Requests per second now.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn interval(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_spaced_by_the_rate() {
        let pacer = Pacer::per_second(50.0).expect("a rate");
        let start = Instant::now();
        for _ in 0..5 {
            pacer.ready().await;
        }
        let elapsed = start.elapsed();
        // The first at once, then every 20 ms, give or take a fifth.
        assert!(elapsed >= Duration::from_millis(64) && elapsed < Duration::from_millis(500), "{elapsed:?}");
        assert!(Pacer::per_second(0.0).is_none() && Pacer::per_second(f64::NAN).is_none());
    }

    #[test]
    fn throttling_halves_the_rate_to_a_floor_and_answers_give_it_back_to_the_share() {
        let pacer = Pacer::per_second(2.0).expect("a rate");
        pacer.throttled();
        assert_eq!(pacer.rate(), 1.0);
        for _ in 0..20 {
            pacer.throttled();
        }
        assert_eq!(pacer.rate(), 2.0 / 8.0, "never below an eighth of the share");
        for _ in 0..8 {
            pacer.answered();
        }
        assert!(pacer.rate() < 2.0, "{}", pacer.rate());
        for _ in 0..2 {
            pacer.answered();
        }
        assert_eq!(pacer.rate(), 2.0, "back to the share, never above it");
    }

    #[tokio::test]
    async fn a_throttled_client_waits_a_whole_slower_interval() {
        let pacer = Pacer::per_second(100.0).expect("a rate");
        pacer.ready().await;
        pacer.throttled();
        pacer.throttled();
        // 25 requests/s now: the next turn is at least 40 ms away.
        let start = Instant::now();
        pacer.ready().await;
        assert!(start.elapsed() >= Duration::from_millis(38), "{:?}", start.elapsed());
    }
}
