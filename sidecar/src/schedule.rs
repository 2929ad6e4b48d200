//! Every delay of the sidecar's loop in one place (kube-runtime's scheduler is the model): when the
//! task's records are next converged, how long a failure holds the next attempt back, when Docker's
//! event stream is reconnected and when DNS is next checked. Pure: the loop passes `now` in and sleeps
//! until [`Schedule::next_wakeup`].
//!
//! Withdrawals come first: a convergence that takes something away (a container stopped, ECS stopping
//! the task, SIGTERM) is never held back by a backoff meant for registration, and retries on a short
//! backoff of its own. A change that only adds, after Route53 failed a registration, waits out that
//! backoff whatever Docker's events say, so a fleet whose changes are refused does not retry in step
//! with its events.

use std::time::Duration;

use ecssd_records::{Backoff, RetryPolicy};
use tokio::time::Instant;

/// Retrying a registration Route53 failed for good (refused, zone gone) or has failed transiently for
/// over a minute: soon at first, then about once a minute, for as long as it takes (a fleet's retries
/// spend the account's rate).
pub const REGISTRATION_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(60), give_up_after: None };

/// Retrying a registration through brief trouble (throttling, a change still in progress) in its first
/// minute: as a single call's retries would, so a fleet starting at once keeps the account's rate used.
pub const BRIEF_TROUBLE_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_millis(200), cap: Duration::from_secs(5), give_up_after: None };

/// Retrying a withdrawal: clients are being sent to a target that is going away, so it retries within
/// seconds, for as long as it takes.
pub const WITHDRAWAL_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_millis(200), cap: Duration::from_secs(5), give_up_after: None };

/// Retrying the task's local source (the Docker socket, task metadata) after a failed listing: these
/// cost no AWS call, and a change made while they failed is seen within 5 s of their return.
pub const SOURCE_RETRY: RetryPolicy =
    RetryPolicy { base: Duration::from_millis(500), cap: Duration::from_secs(5), give_up_after: None };

/// What failed, which decides how soon it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// A convergence that takes something away: retried within seconds.
    Withdrawal,
    /// A registration meeting transient trouble for less than a minute.
    BriefTrouble,
    /// A registration refused, or failing for over a minute.
    Registration,
}

/// The next convergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    pub at: Instant,
    /// When the Docker event that asked for it happened (ns since the epoch), for the latency log.
    pub first_event_ns: Option<i64>,
}

#[derive(Debug)]
pub struct Schedule {
    /// The next convergence, if one is asked for.
    resync: Option<Resync>,
    /// A registration Route53 failed holds every other registration back until then.
    held_until: Option<Instant>,
    registration: Backoff,
    brief_trouble: Backoff,
    withdrawal: Backoff,
    source: Backoff,
    /// Reconnecting to Docker's event stream.
    reconnect: Backoff,
    reconnect_at: Option<Instant>,
    /// The next periodic resync: Docker mode's safety net, metadata mode's poll.
    periodic_at: Instant,
    periodic_every: Duration,
    /// The next DNS check; none until the first convergence.
    check_at: Option<Instant>,
}

impl Schedule {
    /// The first convergence is due at once; periodic resyncs follow every `periodic_every`.
    pub fn new(now: Instant, periodic_every: Duration) -> Self {
        Self {
            resync: Some(Resync { at: now, first_event_ns: None }),
            held_until: None,
            registration: Backoff::new(REGISTRATION_RETRY),
            brief_trouble: Backoff::new(BRIEF_TROUBLE_RETRY),
            withdrawal: Backoff::new(WITHDRAWAL_RETRY),
            source: Backoff::new(SOURCE_RETRY),
            reconnect: Backoff::new(RetryPolicy::default()),
            reconnect_at: None,
            periodic_at: now + periodic_every,
            periodic_every,
            check_at: None,
        }
    }

    /// Asks for a convergence no later than `at`; the first event of a burst keeps its time. Listing
    /// the task's containers costs no AWS call, so a registration hold does not delay it: the
    /// convergence itself holds back a change that only adds (see [`Schedule::registration_held`]).
    pub fn resync(&mut self, at: Instant, event_ns: Option<i64>) {
        self.resync = Some(match self.resync {
            Some(pending) => {
                Resync { at: pending.at.min(at), first_event_ns: pending.first_event_ns.or(event_ns) }
            }
            None => Resync { at, first_event_ns: event_ns },
        });
    }

    /// Whether a failed registration holds changes that only add back at `now`.
    pub fn registration_held(&self, now: Instant) -> bool {
        self.held_until.is_some_and(|until| now < until)
    }

    /// The convergence due at `now`, taken off the schedule.
    pub fn take_due_resync(&mut self, now: Instant) -> Option<Resync> {
        self.resync.filter(|r| r.at <= now).inspect(|_| self.resync = None)
    }

    /// The periodic resync, if due at `now`; the next one is scheduled.
    pub fn take_due_periodic(&mut self, now: Instant) -> bool {
        if self.periodic_at > now {
            return false;
        }
        self.periodic_at = now + self.periodic_every;
        true
    }

    /// A convergence succeeded: the backoffs start over and nothing is held back.
    pub fn converged(&mut self) {
        self.registration.reset();
        self.brief_trouble.reset();
        self.withdrawal.reset();
        self.source.reset();
        self.held_until = None;
    }

    /// The task's containers were seen (whatever Route53 then did).
    pub fn source_answered(&mut self) {
        self.source.reset();
    }

    /// A convergence was held back: it runs again when the hold ends.
    pub fn held(&mut self, held: Resync) {
        if let Some(until) = self.held_until {
            self.resync(until, held.first_event_ns);
        }
    }

    /// Route53 failed a convergence: it is tried again after the backoff of its kind, which is
    /// returned. A withdrawal retries within seconds; a failed registration holds every later change
    /// that only adds until then.
    pub fn route53_failed(&mut self, now: Instant, failed: Resync, kind: Failed) -> Duration {
        let delay = match kind {
            Failed::Withdrawal => self.withdrawal.next_delay(),
            Failed::BriefTrouble | Failed::Registration => {
                let backoff = if kind == Failed::BriefTrouble {
                    &mut self.brief_trouble
                } else {
                    &mut self.registration
                };
                let delay = backoff.next_delay();
                self.held_until = Some(now + delay);
                delay
            }
        };
        self.resync(now + delay, failed.first_event_ns);
        delay
    }

    /// The task's containers could not be listed: tried again soon.
    pub fn source_failed(&mut self, now: Instant, failed: Resync) -> Duration {
        let delay = self.source.next_delay();
        self.resync(now + delay, failed.first_event_ns);
        delay
    }

    /// Docker's event stream broke: reconnected after a backoff, which is returned.
    pub fn stream_broke(&mut self, now: Instant) -> Duration {
        let delay = self.reconnect.next_delay();
        self.reconnect_at = Some(now + delay);
        delay
    }

    /// An event arrived: the stream works.
    pub fn stream_delivered(&mut self) {
        self.reconnect.reset();
    }

    /// Whether reconnecting is due at `now`; if so, it is taken off the schedule.
    pub fn take_due_reconnect(&mut self, now: Instant) -> bool {
        let due = self.reconnect_at.is_some_and(|at| at <= now);
        if due {
            self.reconnect_at = None;
        }
        due
    }

    /// Schedules the next DNS check at `at`, unless one is already due sooner and `replace` is false.
    pub fn check_at(&mut self, at: Instant, replace: bool) {
        self.check_at = match self.check_at {
            Some(current) if !replace => Some(current.min(at)),
            _ => Some(at),
        };
    }

    /// Whether a DNS check is due at `now`; if so, it is taken off the schedule.
    pub fn take_due_check(&mut self, now: Instant) -> bool {
        let due = self.check_at.is_some_and(|at| at <= now);
        if due {
            self.check_at = None;
        }
        due
    }

    /// Whether a DNS check has been scheduled since the first convergence.
    pub fn check_scheduled(&self) -> bool {
        self.check_at.is_some()
    }

    /// The earliest time anything is due; a due convergence counts only if one can start (none is
    /// under way).
    pub fn next_wakeup(&self, can_converge: bool) -> Instant {
        let resync = self.resync.filter(|_| can_converge).map(|r| r.at);
        [resync, self.reconnect_at, self.check_at].into_iter().flatten().fold(self.periodic_at, Instant::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COALESCE: Duration = Duration::from_millis(100);

    fn registered(now: Instant) -> Schedule {
        let mut schedule = Schedule::new(now, Duration::from_secs(30));
        schedule.take_due_resync(now).expect("the first convergence is due at once");
        schedule.converged();
        schedule
    }

    #[test]
    fn a_failed_registration_holds_additions_but_never_delays_a_listing() {
        let now = Instant::now();
        let mut schedule = registered(now);
        let failed = Resync { at: now, first_event_ns: None };
        let mut retry = None;
        for _ in 0..6 {
            schedule.route53_failed(now, failed, Failed::Registration);
            retry = schedule.take_due_resync(now + Duration::from_secs(3600));
        }
        let retry = retry.expect("retry scheduled");
        assert!(
            retry.at >= now + REGISTRATION_RETRY.base / 2,
            "registration backs off: {:?}",
            retry.at - now
        );
        assert!(schedule.registration_held(now + COALESCE));
        // A container stopping during the hold is listed after the coalescing window.
        schedule.resync(now + COALESCE, Some(1));
        schedule.resync(now + 2 * COALESCE, Some(2));
        let due = schedule.take_due_resync(now + COALESCE).expect("listed after the window");
        assert_eq!(due.first_event_ns, Some(1), "the burst keeps its first event's time");
        assert!(!schedule.registration_held(retry.at), "the hold ends with the backoff");
        // The listing found only additions: held, it runs again when the hold ends.
        schedule.held(due);
        assert_eq!(
            schedule.take_due_resync(retry.at).map(|r| (r.at, r.first_event_ns)),
            Some((retry.at, Some(1)))
        );
    }

    #[test]
    fn a_failed_withdrawal_retries_within_seconds_and_holds_nothing() {
        let now = Instant::now();
        let mut schedule = registered(now);
        let withdrawal = Resync { at: now, first_event_ns: None };
        for _ in 0..20 {
            let delay = schedule.route53_failed(now, withdrawal, Failed::Withdrawal);
            assert!(delay <= WITHDRAWAL_RETRY.cap, "{delay:?}");
        }
        assert!(schedule.take_due_resync(now + WITHDRAWAL_RETRY.cap).is_some());
        assert!(!schedule.registration_held(now));
        let delay = schedule.route53_failed(now, withdrawal, Failed::BriefTrouble);
        assert!(delay <= BRIEF_TROUBLE_RETRY.cap, "{delay:?}");
        assert!(schedule.registration_held(now));
        schedule.converged();
        assert!(!schedule.registration_held(now), "a success ends every hold");
    }

    #[test]
    fn the_loop_wakes_for_the_earliest_of_everything() {
        let now = Instant::now();
        let mut schedule = registered(now);
        assert_eq!(schedule.next_wakeup(true), now + Duration::from_secs(30), "the periodic resync");
        schedule.check_at(now + Duration::from_secs(5), false);
        schedule.check_at(now + Duration::from_secs(9), false);
        assert_eq!(schedule.next_wakeup(true), now + Duration::from_secs(5), "the sooner check stays");
        let delay = schedule.stream_broke(now);
        assert_eq!(schedule.next_wakeup(true), now + delay);
        assert!(schedule.take_due_reconnect(now + delay));
        assert!(!schedule.take_due_reconnect(now + delay), "taken once");
    }
}
