//! The sidecar after start: its state in [`Sidecar`], one method per event, and [`Sidecar::run`] only
//! wiring them (mini-redis' `server.rs`, kube-runtime's controller). Nothing slow runs in the loop
//! itself: a convergence (listing the task's containers, then Route53) runs as one job beside it, a DNS
//! check and its confirming reads run as spawned tasks, and every delay is the [`Schedule`]'s. A
//! convergence's Route53 calls are single attempts (their retries are the schedule's), so a stop
//! signal or a stopped container waits for at most the one call in flight, never for a backoff.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::EventMessage;
use ecssd_edge::Route53Zone;
use ecssd_records::{RecordSet, RecordType, RetryPolicy};
use futures_util::StreamExt;
use futures_util::future::{self, BoxFuture};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::docker_siblings::SiblingLister;
use crate::error::SidecarError;
use crate::follower::{
    Attempt, EventStream, ResyncError, Resynced, SourceError, Worker, is_relevant, ms_since_event,
};
use crate::heal::{self, Healer, Next};
use crate::metadata::{self, TaskEndpoint};
use crate::problems::{Problem, Problems};
use crate::registrar::{self, MAX_MISSED_HANDOFFS, Missed, QUEUE_BYPASS, Registrar};
use crate::schedule::{Failed, Resync, Schedule};

/// The registrar's Route53 calls: one attempt each. A failure goes back to the loop, whose schedule
/// retries it (a withdrawal within seconds), so no call's retries ever stand between an event and
/// the loop.
pub const ONE_ATTEMPT: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
    give_up_after: Some(Duration::ZERO),
};

/// Route53 calls beside the loop (a DNS check's confirming reads, finding the zone again): retried
/// while transient for up to a minute, then the failure is a problem that is reported.
pub const ROUTE53_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
    give_up_after: Some(Duration::from_secs(60)),
};

/// Transient Route53 failures (throttling, busy, timeouts) are retried quietly for this long before
/// they are a problem an operator hears of: a deploy's burst of throttling is routine.
const QUIET_RETRIES: Duration = Duration::from_secs(60);

/// What the loop reads of the configuration.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Exit after the first convergence (`--once`).
    pub once: bool,
    /// Gathering a burst of Docker events into one change.
    pub coalesce: Duration,
    /// Between periodic resyncs: Docker mode's safety net, metadata mode's poll.
    pub resync_every: Duration,
    /// After the withdrawal on SIGTERM, so cached answers expire before the task stops.
    pub drain: Duration,
}

/// Looks the hosted zone up by domain again after Route53 said it is gone (it may have been
/// recreated under a new id); `None` when the zone was given by id.
#[derive(Debug, Clone)]
pub struct ZoneFinder {
    pub client: aws_sdk_route53::Client,
    pub domain: ecssd_records::Domain,
}

impl ZoneFinder {
    async fn find_again(&self, registrar: &mut Registrar<Route53Zone>) {
        let retry = RetryPolicy { give_up_after: Some(Duration::from_secs(10)), ..RetryPolicy::default() };
        match Route53Zone::find(self.client.clone(), self.domain.clone(), retry).await {
            Ok(zone) if zone.zone_id() != registrar.store().zone_id() => {
                tracing::info!(zone_id = zone.zone_id(), domain = %self.domain, "found the hosted zone under a new id");
                registrar.replace_store(zone.with_retry(ONE_ATTEMPT));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "the hosted zone is still not found"),
        }
    }
}

/// What task metadata says of the task, asked before anything is repaired or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TaskState {
    Running,
    /// ECS has decided to stop it (`DesiredStatus` STOPPED).
    Stopping,
    /// No answer (in time): not a stop, and not proof that it runs either.
    Unknown(String),
}

impl TaskState {
    async fn of(endpoint: &TaskEndpoint) -> Self {
        match metadata::task_is_stopping(endpoint).await {
            Ok(false) => Self::Running,
            Ok(true) => Self::Stopping,
            Err(problem) => Self::Unknown(problem),
        }
    }
}

/// A convergence that ended, with the worker it borrowed.
struct Finished {
    worker: Worker,
    resync: Resync,
    attempt: Attempt,
    outcome: Result<Resynced, ResyncError>,
}

/// What a DNS check heard, per (name, type).
type Answers = std::collections::BTreeMap<(String, RecordType), Result<crate::dns::Answer, String>>;

/// One step of a DNS check, run beside the loop.
enum CheckStep {
    /// The resolver's answers (none when the task is stopping).
    Asked { state: TaskState, answers: Answers },
    /// Route53 read about a disagreement: whether the records are as written.
    Read { state: TaskState, read: Result<bool, ecssd_records::CallError> },
}

/// A DNS check under way, and what it asks about.
struct Check {
    step: JoinHandle<CheckStep>,
    written: RecordSet,
    absent: Vec<(String, RecordType)>,
    /// Reads Route53 about a disagreement, with retries of its own, beside the registrar.
    reader: Route53Zone,
    /// Once reading: why, and whether it confirms a disagreement (rather than verifying unseen
    /// targets).
    reading: Option<(String, bool)>,
    /// The ownership record of a handed-over registration not yet seen: the one thing this check
    /// asks about (no client resolves its name, so asking early hides nothing from anyone); read
    /// through the API unless DNS shows it as written.
    handoff: Option<ecssd_records::Record>,
    /// The handoff is the last of [`MAX_MISSED_HANDOFFS`] handed over again: if the read shows it did
    /// not land either, the queue is bypassed.
    bypass_unless_landed: bool,
}

/// What the loop does after an event.
enum Flow {
    Continue,
    /// `--once` converged, or ECS's stop was withdrawn under `--once`.
    Exit,
    /// Withdrawn after SIGTERM: drain, then exit.
    Drain,
}

/// The loop's state.
pub struct Sidecar {
    settings: LoopSettings,
    /// The follower and the registrar; away (inside `job`) while a convergence runs.
    worker: Option<Worker>,
    /// The convergence under way.
    job: Option<BoxFuture<'static, Finished>>,
    /// Docker events that arrived while the worker was away, handed to it when it returns.
    observed: Vec<EventMessage>,
    /// Docker's event stream (Docker mode, not `--once`); `None` while reconnecting.
    events: Option<EventStream>,
    /// Subscribes to Docker's events again after the stream broke (Docker mode).
    subscriber: Option<SiblingLister>,
    /// The newest event time seen (Unix seconds): a new subscription replays from there.
    events_since: i64,
    schedule: Schedule,
    problems: Problems,
    /// Since when Route53 has failed every convergence, if it does.
    route53_failing_since: Option<Instant>,
    /// DNS checks, unless self-healing is off.
    healer: Option<Healer>,
    check: Option<Check>,
    /// Task metadata: whether ECS is stopping the task.
    endpoint: TaskEndpoint,
    /// Asks task metadata whether ECS is stopping the task before each convergence (Docker mode;
    /// metadata mode's listing says so itself).
    stop_check_first: bool,
    zone_finder: Option<ZoneFinder>,
    /// ECS has decided to stop the task: its records are withdrawn and nothing is published or
    /// repaired again (its containers may run on for minutes, and ecssd's withdrawer may already have
    /// deleted the records on ECS's event).
    stopping: bool,
    /// SIGTERM: withdraw, drain, exit.
    shutting_down: bool,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("schedule", &self.schedule)
            .field("converging", &self.job.is_some())
            .field("checking", &self.check.is_some())
            .field("stopping", &self.stopping)
            .field("shutting_down", &self.shutting_down)
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: LoopSettings,
        worker: Worker,
        subscriber: Option<SiblingLister>,
        healer: Option<Healer>,
        endpoint: TaskEndpoint,
        zone_finder: Option<ZoneFinder>,
    ) -> Self {
        let stop_check_first = subscriber.is_some() && !settings.once;
        // Subscribed from now, before the first listing: Docker replays events since then whenever
        // the (lazy) stream is first polled, so nothing in between is missed.
        let events_since = unix_seconds() - 1;
        let subscriber = subscriber.filter(|_| !settings.once);
        let events = subscriber.as_ref().map(|s| s.events(events_since));
        Self {
            schedule: Schedule::new(Instant::now(), settings.resync_every),
            settings,
            worker: Some(worker),
            job: None,
            observed: Vec::new(),
            events,
            subscriber,
            events_since,
            problems: Problems::default(),
            route53_failing_since: None,
            healer,
            check: None,
            endpoint,
            stop_check_first,
            zone_finder,
            stopping: false,
            shutting_down: false,
        }
    }

    /// Runs until `shutdown` resolves, then withdraws and drains. After start nothing ends it but
    /// `shutdown` (or `--once`'s convergence): every failure is retried.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), SidecarError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.start_due_work();
            let wake = self.schedule.next_wakeup(self.job.is_none());
            let flow = tokio::select! {
                biased;
                () = &mut shutdown, if !self.shutting_down => self.on_shutdown(),
                finished = in_flight(&mut self.job) => {
                    self.job = None;
                    self.on_work_done(finished)?
                }
                step = check_step(&mut self.check) => self.on_check_step(step),
                event = next_event(&mut self.events) => self.on_docker_event(event),
                () = tokio::time::sleep_until(wake) => self.on_timer(),
            };
            match flow {
                Flow::Continue => {}
                Flow::Exit => return Ok(()),
                Flow::Drain => break,
            }
        }
        let drain = self.settings.drain;
        tracing::info!(
            drain_seconds = drain.as_secs(),
            "withdrawn; draining so cached answers expire before the task stops"
        );
        tokio::time::sleep(drain).await;
        tracing::info!("drained; exiting");
        Ok(())
    }

    /// Starts the convergence that is due, unless one is under way.
    fn start_due_work(&mut self) {
        if self.job.is_some() {
            return;
        }
        let now = Instant::now();
        let Some(resync) = self.schedule.take_due_resync(now) else { return };
        let Some(mut worker) = self.worker.take() else { return };
        let withdraw = self.stopping || self.shutting_down;
        let held = !withdraw && self.schedule.registration_held(now);
        let stop_check = (!withdraw && self.stop_check_first).then(|| self.endpoint.clone());
        let finder = self.zone_finder.clone();
        self.job = Some(Box::pin(async move {
            let mut attempt = Attempt::default();
            if let Some(endpoint) = stop_check {
                attempt.learned_stopping = TaskState::of(&endpoint).await == TaskState::Stopping;
            }
            let outcome = if withdraw || attempt.learned_stopping {
                worker.withdraw(&mut attempt).await
            } else {
                worker.resync(held, resync.first_event_ns, &mut attempt).await
            };
            if let (Err(ResyncError::Route53(e)), Some(finder)) = (&outcome, &finder)
                && Problem::of(e) == Problem::ZoneNotFound
            {
                finder.find_again(&mut worker.registrar).await;
            }
            Finished { worker, resync, attempt, outcome }
        }));
    }

    fn on_shutdown(&mut self) -> Flow {
        tracing::info!("shutting down: withdrawing the task's records");
        self.shutting_down = true;
        self.abort_check();
        self.schedule.resync(Instant::now(), None);
        Flow::Continue
    }

    fn on_work_done(&mut self, finished: Finished) -> Result<Flow, SidecarError> {
        let Finished { mut worker, resync, attempt, outcome } = finished;
        for event in self.observed.drain(..) {
            worker.follower.observe(&event);
        }
        let next_refused_retry = worker.registrar.next_retry();
        if !worker.registrar.queue_bypassed() {
            self.problems.clear(Problem::RegistrationQueue);
        }
        self.worker = Some(worker);
        if attempt.learned_stopping {
            self.learn_stopping();
        }
        let now = Instant::now();
        if !matches!(outcome, Err(ResyncError::Source(_))) {
            // The task's containers were seen, whatever Route53 then did.
            self.schedule.source_answered();
            self.problems.clear(Problem::DockerUnreachable);
            self.problems.clear(Problem::MetadataUnreachable);
        }
        match outcome {
            Ok(Resynced::Held) => self.schedule.held(resync),
            Ok(Resynced::Converged(done)) => {
                self.schedule.converged();
                self.route53_failing_since = None;
                if done.requests + done.reads > 0 {
                    self.problems.route53_answered();
                }
                if let Some(healer) = self.healer.as_mut() {
                    // A read-back follows a request whose outcome was unclear: it may have written too.
                    if done.requests + done.reads > 0 {
                        healer.wrote();
                    }
                    if done.handed_over > 0 {
                        healer.writes_by(now + registrar::HANDOFF_LANDS_WITHIN);
                    }
                    healer.repaired(done.changes + done.handed_over);
                    // The first check runs right after the first convergence, or once Route53 can
                    // show what it wrote.
                    if !self.schedule.check_scheduled() {
                        self.schedule.check_at(healer.quiet_until().unwrap_or(now), false);
                    }
                }
                if self.shutting_down && attempt.withdrew_all {
                    tracing::info!(
                        changes = done.changes,
                        requests = done.requests,
                        "withdrew every record of the task"
                    );
                    return Ok(Flow::Drain);
                }
                if self.settings.once {
                    if self.stopping {
                        tracing::info!("ECS is stopping the task: withdrew its records; exiting (--once)");
                    } else {
                        tracing::info!("registered once; exiting (--once)");
                    }
                    return Ok(Flow::Exit);
                }
            }
            Err(ResyncError::Source(e)) if self.settings.once => {
                return Err(SidecarError::Source(e.to_string()));
            }
            Err(ResyncError::Source(e)) => {
                let delay = self.schedule.source_failed(now, resync);
                let problem = match e {
                    SourceError::Docker(_) => Problem::DockerUnreachable,
                    SourceError::Metadata(_) => Problem::MetadataUnreachable,
                };
                self.problems.report(problem, &e, delay);
            }
            Err(ResyncError::Route53(e)) if self.settings.once => return Err(e),
            Err(ResyncError::Route53(e)) => {
                let withdrawing = attempt.withdrawing || self.stopping || self.shutting_down;
                let since = *self.route53_failing_since.get_or_insert(now);
                let problem = Problem::of(&e);
                let brief =
                    problem == Problem::Route53Unavailable && now.duration_since(since) < QUIET_RETRIES;
                let kind = match (withdrawing, brief) {
                    (true, _) => Failed::Withdrawal,
                    (false, true) => Failed::BriefTrouble,
                    (false, false) => Failed::Registration,
                };
                let delay = self.schedule.route53_failed(now, resync, kind);
                if brief {
                    let retry_in_ms = delay.as_millis() as u64;
                    let (first_event_ns, event_to_send_ms) =
                        (resync.first_event_ns, attempt.event_to_send_ms);
                    tracing::debug!(problem = problem.as_str(), error = %e, retry_in_ms, withdrawing, first_event_ns,
                        event_to_send_ms, "Route53 failed transiently; retrying");
                } else {
                    self.problems.report(problem, &e, delay);
                }
            }
        }
        if let Some(at) = next_refused_retry {
            self.schedule.resync(at, None);
        }
        Ok(Flow::Continue)
    }

    fn on_docker_event(&mut self, event: Option<Result<EventMessage, bollard::errors::Error>>) -> Flow {
        let now = Instant::now();
        match event {
            Some(Ok(event)) => {
                self.schedule.stream_delivered();
                self.problems.clear(Problem::DockerEvents);
                if let Some(time) = event.time {
                    self.events_since = self.events_since.max(time);
                }
                if is_relevant(&event) && !self.shutting_down {
                    let age_ms = event.time_nano.map(ms_since_event);
                    let container = event
                        .actor
                        .as_ref()
                        .and_then(|actor| actor.attributes.as_ref())
                        .and_then(|labels| labels.get(crate::docker_siblings::CONTAINER_NAME_LABEL));
                    tracing::debug!(action = ?event.action, container, time_nano = event.time_nano, age_ms,
                        "docker event");
                    match self.worker.as_mut() {
                        Some(worker) => worker.follower.observe(&event),
                        None => self.observed.push(event.clone()),
                    }
                    self.schedule.resync(now + self.settings.coalesce, event.time_nano);
                }
            }
            broken => {
                let delay = self.schedule.stream_broke(now);
                let error = match broken {
                    Some(Err(e)) => format!("Docker event stream broke: {e}"),
                    _ => "Docker event stream ended".to_owned(),
                };
                self.problems.report(Problem::DockerEvents, &error, delay);
                self.events = None;
            }
        }
        Flow::Continue
    }

    /// Whatever the schedule says is due: reconnecting, a periodic resync, a DNS check (a due
    /// convergence starts at the top of the loop).
    fn on_timer(&mut self) -> Flow {
        let now = Instant::now();
        if self.schedule.take_due_reconnect(now) {
            self.events = self.subscriber.as_ref().map(|s| s.events(self.events_since));
            self.schedule.resync(now, None);
        }
        // A periodic resync costs a container listing or a metadata read, and Route53 nothing unless
        // something changed.
        if self.schedule.take_due_periodic(now) && !self.shutting_down {
            self.schedule.resync(now, None);
        }
        if self.schedule.take_due_check(now) {
            self.on_check_due(now);
        }
        Flow::Continue
    }

    fn on_check_due(&mut self, now: Instant) {
        let Some(healer) = self.healer.as_ref() else { return };
        if let Some(until) = healer.quiet_until() {
            // A write since this check was scheduled: ask once Route53 can show it.
            self.schedule.check_at(until, true);
            return;
        }
        self.schedule.check_at(now + healer.every().mul_f64(0.9 + 0.2 * fastrand::f64()), true);
        if self.stopping {
            tracing::debug!("DNS check skipped: ECS is stopping the task");
            return;
        }
        if self.shutting_down || self.check.is_some() {
            return;
        }
        let Some(worker) = self.worker.as_ref() else {
            // A convergence is under way: what it writes would make this check's findings stale.
            return;
        };
        // Unknown after an interrupted write: the next convergence reads the records anyway.
        let Some(written) = worker.registrar.written().cloned() else { return };
        let absent = if written.is_empty() { vec![worker.registrar.ownership_name()] } else { Vec::new() };
        let reader = worker.registrar.store().clone().with_retry(ROUTE53_RETRY);
        let (resolver, endpoint) = (healer.resolver(), self.endpoint.clone());
        let handoff = worker.registrar.unseen_handoff().cloned();
        let questions = match &handoff {
            Some(ownership) => heal::questions(&[ownership.clone()].into_iter().collect(), &[]),
            None => heal::questions(&written, &absent),
        };
        let step = tokio::spawn(async move {
            // Each check also asks task metadata (no API call) whether ECS is stopping the task.
            let state = TaskState::of(&endpoint).await;
            let answers = if state == TaskState::Stopping {
                Answers::new()
            } else {
                heal::ask(resolver, questions).await
            };
            CheckStep::Asked { state, answers }
        });
        self.check = Some(Check {
            step,
            written,
            absent,
            reader,
            reading: None,
            handoff,
            bypass_unless_landed: false,
        });
    }

    fn on_check_step(&mut self, step: Result<CheckStep, tokio::task::JoinError>) -> Flow {
        let Some(mut check) = self.check.take() else { return Flow::Continue };
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                tracing::error!(problem = "dns_check", error = %e, "a DNS check failed; the next one runs as scheduled");
                return Flow::Continue;
            }
        };
        if let CheckStep::Asked { state: TaskState::Stopping, .. }
        | CheckStep::Read { state: TaskState::Stopping, .. } = step
        {
            self.learn_stopping();
            return Flow::Continue;
        }
        let Some(healer) = self.healer.as_mut() else { return Flow::Continue };
        if healer.quiet_until().is_some() || self.worker.is_none() {
            tracing::debug!("DNS check dropped: the sidecar changed the zone meanwhile");
            return Flow::Continue;
        }
        match step {
            CheckStep::Asked { answers, .. } => {
                let failed: Vec<&String> = answers.values().filter_map(|a| a.as_ref().err()).collect();
                match failed.first() {
                    Some(first) => {
                        let error =
                            format!("{first} ({} of {} questions failed)", failed.len(), answers.len());
                        self.problems.report(Problem::DnsCheck, &error, healer.every());
                    }
                    None => self.problems.clear(Problem::DnsCheck),
                }
                let next = match &check.handoff {
                    Some(ownership) => {
                        let question = (ownership.key.name.to_ascii_lowercase(), RecordType::Txt);
                        if heal::shows(ownership, answers.get(&question)) {
                            Next::Nothing
                        } else {
                            // Not a disagreement DNS must answer for: it may only be slow.
                            Next::Verify(vec![ownership.key.clone()])
                        }
                    }
                    None => healer.decide_on(&check.written, &check.absent, &answers),
                };
                let (keys, reason, confirming) = match next {
                    Next::Nothing => {
                        if let Some(worker) = self.worker.as_mut() {
                            worker.registrar.handoff_seen();
                        }
                        tracing::debug!("DNS check: nothing to repair");
                        return Flow::Continue;
                    }
                    Next::Confirm { key, reason } => (vec![key], reason, true),
                    Next::Verify(keys) if check.handoff.is_some() => {
                        let missed = self.worker.as_mut().map(|worker| worker.registrar.handoff_missed());
                        match missed {
                            Some(Missed::HandOverAgain) => {
                                tracing::info!(
                                    "the registration handed to the batcher did not show in DNS; handing it over again"
                                );
                                self.schedule.resync(Instant::now(), None);
                                return Flow::Continue;
                            }
                            Some(Missed::Exhausted) => check.bypass_unless_landed = true,
                            Some(Missed::ReadBack) | None => {}
                        }
                        let reason = "the registration handed to the batcher did not land".to_owned();
                        (keys, reason, false)
                    }
                    Next::Verify(keys) => {
                        let reason =
                            format!("{} SRV record(s) DNS could not show are not as written", keys.len());
                        (keys, reason, false)
                    }
                };
                let (reader, written, endpoint) =
                    (check.reader.clone(), check.written.clone(), self.endpoint.clone());
                check.step = tokio::spawn(async move {
                    let read = registrar::as_written(&reader, &written, &keys).await;
                    // Asked after the read: records gone because the task is stopping are not put back.
                    let state = TaskState::of(&endpoint).await;
                    CheckStep::Read { state, read }
                });
                check.reading = Some((reason, confirming));
                self.check = Some(check);
            }
            CheckStep::Read { state, read } => {
                let (reason, confirming) = check.reading.unwrap_or_default();
                let repair = match read {
                    Ok(true) => {
                        if confirming {
                            healer.confirmed(true);
                        }
                        if check.handoff.is_some()
                            && let Some(worker) = self.worker.as_mut()
                        {
                            worker.registrar.handoff_seen();
                        }
                        None
                    }
                    Ok(false) => {
                        if check.bypass_unless_landed
                            && let Some(worker) = self.worker.as_mut()
                        {
                            worker.registrar.bypass_queue();
                            let error = format!(
                                "{} registrations in a row handed to the batcher did not land: registering with \
                                 Route53 directly for {} s",
                                MAX_MISSED_HANDOFFS + 1,
                                QUEUE_BYPASS.as_secs()
                            );
                            self.problems.report(Problem::RegistrationQueue, &error, QUEUE_BYPASS);
                        }
                        Some(reason)
                    }
                    // Converging finds the zone again, if it was recreated.
                    Err(e @ ecssd_records::CallError::NotFound { .. }) => Some(e.to_string()),
                    Err(e) => {
                        self.problems.report(
                            Problem::of(&SidecarError::Route53(e.clone())),
                            &e,
                            healer.every(),
                        );
                        None
                    }
                };
                let Some(reason) = repair else {
                    tracing::debug!("DNS check: nothing to repair");
                    return Flow::Continue;
                };
                match state {
                    TaskState::Running => {
                        if confirming {
                            healer.confirmed(false);
                        }
                        self.problems.clear(Problem::StopCheck);
                        tracing::warn!(problem = "records_drifted", %reason,
                            "the task's records differ from what it wrote; reading them back to repair them");
                        if let Some(worker) = self.worker.as_mut() {
                            worker.registrar.invalidate();
                        }
                        self.schedule.resync(Instant::now(), None);
                    }
                    TaskState::Stopping => self.learn_stopping(),
                    TaskState::Unknown(problem) => {
                        let error = format!(
                            "the task's records differ from what it wrote ({reason}), but task metadata did not \
                             say the task still runs ({problem}): not repaired until it does"
                        );
                        self.problems.report(Problem::StopCheck, &error, healer.every());
                    }
                }
            }
        }
        Flow::Continue
    }

    /// ECS is stopping the task: withdraw now, and never publish or repair again.
    fn learn_stopping(&mut self) {
        if std::mem::replace(&mut self.stopping, true) {
            return;
        }
        tracing::info!(
            "ECS is stopping the task: withdrawing its records; nothing is published or repaired again"
        );
        self.abort_check();
        self.schedule.resync(Instant::now(), None);
    }

    fn abort_check(&mut self) {
        if let Some(check) = self.check.take() {
            check.step.abort();
        }
    }
}

/// The convergence under way, when it ends; never without one.
async fn in_flight(job: &mut Option<BoxFuture<'static, Finished>>) -> Finished {
    match job.as_mut() {
        Some(job) => job.await,
        None => future::pending().await,
    }
}

/// The DNS check's current step, when it ends; never without one.
async fn check_step(check: &mut Option<Check>) -> Result<CheckStep, tokio::task::JoinError> {
    match check.as_mut() {
        Some(check) => (&mut check.step).await,
        None => future::pending().await,
    }
}

/// The next Docker event; never while there is no stream.
async fn next_event(
    events: &mut Option<EventStream>,
) -> Option<Result<EventMessage, bollard::errors::Error>> {
    match events.as_mut() {
        Some(stream) => stream.next().await,
        None => future::pending().await,
    }
}

/// Seconds since the Unix epoch, as Docker's `since` takes them.
fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64
}
