//! Pacing one client's requests to a rate it leaves room under: Route53 allows 5 requests per second
//! per account (Developer Guide, "Quotas", "Maximums on API requests"), shared by every sidecar and the
//! sweeper, so a sweeper listing a large zone must not take all of it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests at least `interval` apart, across every clone of the client that shares it.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `rate` requests per second; `None` for a rate that is not a positive finite number.
    pub fn per_second(rate: f64) -> Option<Self> {
        (rate.is_finite() && rate > 0.0)
            .then(|| Self { interval: Duration::from_secs_f64(1.0 / rate), next: Mutex::new(None) })
    }

    /// Waits for this request's turn.
    pub async fn ready(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let turn = next.map_or(now, |at| at.max(now));
            *next = Some(turn + self.interval);
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
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
        // The first at once, then every 20 ms.
        assert!(elapsed >= Duration::from_millis(80) && elapsed < Duration::from_millis(500), "{elapsed:?}");
        assert!(Pacer::per_second(0.0).is_none() && Pacer::per_second(f64::NAN).is_none());
    }
}
