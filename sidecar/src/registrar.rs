//! Keeps one task's records in Route53 equal to what it should publish, generic over the narrow
//! [`RecordStore`] so the logic is the same against Route53 or a test double.
//!
//! It remembers what it last wrote, so each change sends only the difference and costs one call. At
//! start it assumes the task owns nothing (true for a fresh task: registering costs one call); if
//! Route53 rejects that as stale, records survive from an earlier run, so it reads them back by name
//! (never a zone scan) and plans again.
//!
//! With a registration queue configured, a change that only registers is handed to the batcher
//! ([`ecssd_records::handoff`]), which writes many tasks' registrations in one request; one Route53
//! throttled after a read-back is handed over too. A handoff carries its own guard (the ownership
//! record, with exact values), so what the sidecar writes itself later keeps it from landing; a
//! withdrawal of everything while one may land leaves a withdrawal guard, and the sidecar never waits
//! for its handoffs.
//!
//! When Route53 refuses a request for good (e.g. a name already holds its 100 multivalue records), the
//! new SRV records are tried one by one, the way external-dns retries failed groups alone: the ones
//! refused are held back, with a backoff of their own, and everything else is published.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecssd_records::{
    Backoff, BatchLimits, CallError, Change, Desired, Endpoint, Handoff, Ownership, OwnershipError, Record,
    RecordKey, RecordSet, RecordStore, RecordType, Rejected, ReportGate, RetryPolicy, TaskAddresses, TaskArn,
    TaskKeys, TaskRegistration, ZoneModel, batches, desired, plan,
};
use tokio::time::Instant;

use crate::error::SidecarError;
use crate::registration_queue::{RegistrationQueue, SendFailure};

/// How many stale-plan rejections in a row are tolerated before the conflict is reported as permanent
/// (a re-read that changes nothing means the conflict is not with our own earlier state).
const MAX_CONFLICTS: u32 = 5;

/// What the registrar believes the zone holds for its task.
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    /// Exactly these records (read or written by us).
    Known(RecordSet),
    /// Must be read before planning: after an interrupted write, a DNS check that found the records
    /// changed, a new zone, or at start when no DNS check will look for an earlier run's leftovers.
    Unknown,
}

/// Reads these records through `store`; whether they are as `written` says (absent where it has
/// none). Used by DNS checks, beside the registrar.
pub async fn as_written<S: RecordStore>(
    store: &S,
    written: &RecordSet,
    keys: &[RecordKey],
) -> Result<bool, CallError> {
    for key in keys {
        if store.read(key).await?.as_ref() != written.get(key) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How long a handoff may wait for the batcher: it is not sent after this. As long as the queue keeps
/// a message (the stack's retention, SQS's least): a sidecar never waits for its handoffs, since a
/// withdrawal leaves a guard they cannot land over ([`ecssd_records::handoff`]).
pub const HANDOFF_LIFETIME: Duration = Duration::from_secs(60);

/// A handoff lands within this, or never: its lifetime, and room for clocks that disagree.
pub const HANDOFF_LANDS_WITHIN: Duration = HANDOFF_LIFETIME.saturating_add(Duration::from_secs(5));

/// Handoffs in a row that may go unseen, each handed over again, before the zone is read back: the
/// batcher may be gone, or the zone may differ from what the handoffs are planned from.
pub const MAX_MISSED_HANDOFFS: u32 = 3;

/// Once [`MAX_MISSED_HANDOFFS`] handed over again did not land either (read back to be sure), how long
/// registrations go to Route53 directly rather than to a queue that is not delivering (a batcher
/// gone, a queue that takes messages nobody reads): the task is then registered within minutes, not
/// never; after it, the queue is tried again.
pub const QUEUE_BYPASS: Duration = Duration::from_secs(600);

/// What a DNS check that did not show a handed-over registration leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The next convergence hands it over again, planned from what the zone held before it.
    HandOverAgain,
    /// The zone is read back: the handoff may have landed after a change planned without it.
    ReadBack,
    /// [`MAX_MISSED_HANDOFFS`] were handed over again and did not show either: the zone is read back,
    /// and if the handoff did not land, [`Registrar::bypass_queue`].
    Exhausted,
}

/// Registers one task's endpoints.
#[derive(Debug)]
pub struct Registrar<S> {
    store: S,
    model: ZoneModel,
    task: TaskArn,
    cluster: String,
    addresses: TaskAddresses,
    view: View,
    /// Endpoints left out for breaking a DNS or Route53 limit, as last logged (each is logged once,
    /// when it appears, not at every convergence).
    rejected: Vec<Rejected>,
    /// SRV records Route53 refused, held back until their next try.
    refused: BTreeMap<RecordKey, Refusal>,
    /// How long a refused record waits before it is tried again (jittered up to half as long again).
    refused_retry: Duration,
    /// Where registrations go when the account's rate is spent, if anywhere.
    queue: Option<RegistrationQueue>,
    /// The last registration handed over, until it is known to have landed and can no longer land.
    handoff: Option<HandedOver>,
    /// Since handing over a registration not yet seen: what the zone held before (the view it was
    /// planned from), which it still holds if no handoff landed, and how many went unseen since.
    unconfirmed: Option<Unconfirmed>,
    /// Until when nothing is handed over, after too many handoffs in a row did not land.
    bypass_queue_until: Option<Instant>,
}

/// What the zone held before registrations were handed over that have not been seen since.
#[derive(Debug, Clone)]
struct Unconfirmed {
    /// The last view the zone was known to match.
    before: RecordSet,
    /// Handoffs a DNS check did not show once they could no longer land.
    missed: u32,
}

/// A registration handed to the batcher: assumed written, not yet seen.
#[derive(Debug, Clone)]
struct HandedOver {
    /// Until when it may still land: a withdrawal before then leaves a withdrawal guard, and a change
    /// that took something away is checked again after it.
    lands_by: Instant,
    /// The same on the wall clock, which the withdrawal guard carries for the sweeper and withdrawer.
    lands_by_wall: SystemTime,
    /// The ownership record it writes (every handoff writes one, in the same atomic request): what a
    /// DNS check asks about to see whether it landed. `None` once seen.
    unseen: Option<Record>,
    /// A change took something away while it could still land, and did not leave the withdrawal
    /// guard: the handoff may still land over it if the ownership record came back to the value the
    /// handoff expects, so the zone is read back once it cannot. Meanwhile nothing is handed over.
    recheck: bool,
}

/// One SRV record Route53 refused, and when to try it again.
#[derive(Debug)]
struct Refusal {
    detail: String,
    retry_at: Instant,
    /// Logged at error level once a minute while it lasts.
    gate: ReportGate,
}

/// How long a refused record waits before it is tried again. Mostly a name at Route53's limit of 100
/// targets: a task waiting for room costs one request per wait, so 300 waiting tasks take half a
/// request a second of the account's budget, not all of it.
pub const REFUSED_RETRY: Duration = Duration::from_secs(600);

/// What one convergence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Converged {
    /// Record changes sent (0 when already in step).
    pub changes: usize,
    /// Change requests sent that Route53 accepted.
    pub requests: usize,
    /// Times the task's records were read back from Route53.
    pub reads: usize,
    /// Changes handed to the batcher: what the registrar now assumes the zone holds, until a DNS check
    /// says otherwise.
    pub handed_over: usize,
}

impl<S: RecordStore> Registrar<S> {
    pub fn new(store: S, model: ZoneModel, task: TaskArn, cluster: String, addresses: TaskAddresses) -> Self {
        let view = View::Known(RecordSet::new());
        Self {
            store,
            model,
            task,
            cluster,
            addresses,
            view,
            rejected: Vec::new(),
            refused: BTreeMap::new(),
            refused_retry: REFUSED_RETRY,
            queue: None,
            handoff: None,
            unconfirmed: None,
            bypass_queue_until: None,
        }
    }

    /// Hands registrations to `queue` when Route53 throttles them.
    pub fn with_queue(mut self, queue: Option<RegistrationQueue>) -> Self {
        self.queue = queue;
        self
    }

    /// Tries refused records again after `wait` (jittered up to half as long again) instead of
    /// [`REFUSED_RETRY`].
    pub fn with_refused_retry(mut self, wait: Duration) -> Self {
        self.refused_retry = wait;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Uses another store (the zone was found again under a new id); what it holds must be read.
    pub fn replace_store(&mut self, store: S) {
        self.store = store;
        self.view = View::Unknown;
    }

    /// The records it believes the zone holds for its task, if it knows.
    pub fn written(&self) -> Option<&RecordSet> {
        match &self.view {
            View::Known(records) => Some(records),
            View::Unknown => None,
        }
    }

    /// The name of the task's ownership record: it exists exactly when the task publishes something,
    /// and no client resolves it, so asking about it while it is absent harms nobody's cache.
    pub fn ownership_name(&self) -> (String, RecordType) {
        let ownership = self.ownership_key();
        (ownership.name, ownership.record_type)
    }

    /// The key of the task's ownership record: every handoff's guard.
    fn ownership_key(&self) -> RecordKey {
        TaskKeys::of(&self.model.domain, self.task.id()).ownership
    }

    /// When a refused record is next due for a try, the zone is to be read back after a handoff that
    /// could have landed over a withdrawal, or a withdrawal guard is no longer needed.
    pub fn next_retry(&self) -> Option<Instant> {
        let guarded = self.written().is_some_and(|records| self.is_guard(records));
        let recheck = self.handoff.as_ref().filter(|h| h.recheck || guarded).map(|h| h.lands_by);
        self.refused.values().map(|r| r.retry_at).chain(recheck).min()
    }

    /// What withdrawing everything leaves: nothing, or while a handoff may still land, the task's
    /// withdrawal guard, which no handoff can land over ([`ecssd_records::handoff`]).
    fn withdrawn(&self) -> RecordSet {
        let Some(handoff) = self.handoff.as_ref().filter(|h| h.lands_by > Instant::now()) else {
            return RecordSet::new();
        };
        let mut until = handoff.lands_by_wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + 1;
        // Never the value of a guard the zone may hold: a handoff planned over that one (the task
        // registering again) must not match the new one.
        let earlier = self.written().into_iter().flat_map(RecordSet::iter);
        let earlier = earlier.filter_map(|r| Ownership::decode(r.values()).ok());
        if let Some(previous) = earlier.filter_map(|o| o.withdrawn_until).max() {
            until = until.max(previous + 1);
        }
        let guard = Ownership::withdrawal_guard(
            self.model.owner.clone(),
            self.cluster.clone(),
            self.task.clone(),
            until,
        );
        RecordSet::from_iter([Record::new(self.ownership_key(), self.model.ttl, guard.encode())])
    }

    /// Whether `records` are the task's withdrawal guard alone.
    fn is_guard(&self, records: &RecordSet) -> bool {
        let mut all = records.iter();
        let (Some(only), None) = (all.next(), all.next()) else { return false };
        only.key.record_type == RecordType::Txt
            && Ownership::decode(only.values()).is_ok_and(|o| o.withdrawn_until.is_some())
    }

    /// The ownership record of a registration handed over and not yet seen: a DNS check asks about it
    /// alone (no client resolves its name), and reads it through the API unless DNS shows it.
    pub fn unseen_handoff(&self) -> Option<&Record> {
        self.handoff.as_ref().and_then(|h| h.unseen.as_ref())
    }

    /// DNS, or a read, showed the handed-over registration: it landed.
    pub fn handoff_seen(&mut self) {
        self.settle_handoffs();
        self.forget_landed_handoff();
    }

    /// Nothing handed over is left to see: it landed, a later write of the ownership record settled
    /// it, or the zone is to be read back.
    fn settle_handoffs(&mut self) {
        if let Some(handoff) = self.handoff.as_mut() {
            handoff.unseen = None;
        }
        self.unconfirmed = None;
    }

    /// A DNS check did not show the handed-over registration once it could no longer land: most
    /// likely it never reached Route53 (it outlived its minute in the queue while the batcher was
    /// throttled). Unless [`MAX_MISSED_HANDOFFS`] went unseen in a row, the registrar takes the zone
    /// to hold what it held before, so the next convergence hands the registration over again, and
    /// only the batcher writes registrations: reading and repairing here would spend the account's
    /// requests one task at a time. If it did land after all (DNS slow beyond the settling time),
    /// Route53 refuses the new handoff whole, and the next check sees the first.
    pub fn handoff_missed(&mut self) -> Missed {
        let Some(unconfirmed) = self.unconfirmed.as_mut() else { return Missed::ReadBack };
        if unconfirmed.missed >= MAX_MISSED_HANDOFFS {
            self.unconfirmed = None;
            return Missed::Exhausted;
        }
        unconfirmed.missed += 1;
        self.view = View::Known(unconfirmed.before.clone());
        if let Some(handoff) = self.handoff.as_mut() {
            handoff.unseen = None;
        }
        self.forget_landed_handoff();
        Missed::HandOverAgain
    }

    /// The queue is not delivering (handoffs kept not landing, and a read showed the last did not
    /// either): registrations go to Route53 directly for [`QUEUE_BYPASS`].
    pub fn bypass_queue(&mut self) {
        self.bypass_queue_until = Some(Instant::now() + QUEUE_BYPASS);
    }

    /// Whether registrations go to Route53 directly rather than to the queue, for now.
    pub fn queue_bypassed(&self) -> bool {
        self.bypass_queue_until.is_some_and(|until| until > Instant::now())
    }

    /// Whether converging to `endpoints` would take away something the zone holds for the task (a
    /// target, a changed target, its address): such a change is never held back. Unknown when the
    /// view is (then it is not known to withdraw anything).
    pub fn withdraws(&mut self, endpoints: &[Endpoint]) -> bool {
        let wanted = self.desired(endpoints.to_vec()).records;
        let View::Known(current) = &self.view else { return false };
        current
            .iter()
            .any(|have| have.key.record_type != RecordType::Txt && wanted.get(&have.key) != Some(have))
    }

    /// Forgets what it believed, so the next convergence reads the zone first (which also shows whether
    /// a handoff landed).
    pub fn invalidate(&mut self) {
        self.view = View::Unknown;
        self.settle_handoffs();
    }

    /// Forgets a handoff that can no longer land and needs nothing more.
    fn forget_landed_handoff(&mut self) {
        let now = Instant::now();
        if self.handoff.as_ref().is_some_and(|h| h.lands_by <= now && h.unseen.is_none() && !h.recheck) {
            self.handoff = None;
        }
    }

    /// Before a convergence: once a handoff can no longer land, a change that took something away
    /// meanwhile is checked by reading the zone back (the handoff may have landed over it).
    fn recheck_after_handoff(&mut self) {
        let now = Instant::now();
        if let Some(handoff) = self.handoff.as_mut()
            && handoff.recheck
            && handoff.lands_by <= now
        {
            handoff.recheck = false;
            self.invalidate();
        }
        self.forget_landed_handoff();
    }

    /// The records this task should own with these endpoints; endpoints that break a limit are left
    /// out, and said so once.
    fn desired(&mut self, endpoints: Vec<Endpoint>) -> Desired {
        let registration = TaskRegistration {
            cluster_arn: self.cluster.clone(),
            task: self.task.clone(),
            addresses: self.addresses,
            endpoints,
        };
        let desired = desired(&self.model, &registration);
        if desired.rejected != self.rejected {
            for problem in desired.rejected.iter().filter(|p| !self.rejected.contains(p)) {
                tracing::error!(%problem, "cannot publish this endpoint; the others are unaffected");
            }
            self.rejected = desired.rejected.clone();
        }
        desired
    }

    /// Makes the zone hold exactly the records for `endpoints`, less SRV records Route53 refused
    /// whose next try is not due.
    pub async fn converge(&mut self, endpoints: Vec<Endpoint>) -> Result<Converged, SidecarError> {
        self.recheck_after_handoff();
        let desired = self.desired(endpoints);
        self.refused.retain(|key, _| desired.records.get(key).is_some());
        let now = Instant::now();
        let held: BTreeSet<RecordKey> =
            self.refused.iter().filter(|(_, r)| r.retry_at > now).map(|(k, _)| k.clone()).collect();
        let wanted = desired.holding_back(&held);
        let wanted = if wanted.is_empty() { self.withdrawn() } else { wanted };
        // With a registration queue, a change that only registers goes to the batcher first: the
        // fleet's registrations then share requests instead of each spending one of the account's
        // few per second (a withdrawal, a read-back, or the retry of a record Route53 refused for good
        // goes to Route53 directly).
        let retries_refused = wanted.iter().any(|r| self.refused.contains_key(&r.key));
        if !retries_refused && let Some(done) = self.hand_over(&wanted).await {
            return Ok(done);
        }
        match self.converge_to(&wanted).await {
            Ok(done) => {
                self.accepted(&wanted);
                Ok(done)
            }
            Err(SidecarError::Route53(throttled @ CallError::Exhausted { throttled: true, .. })) => {
                match self.hand_over(&wanted).await {
                    Some(done) => Ok(done),
                    None => Err(throttled.into()),
                }
            }
            Err(SidecarError::Route53(CallError::Permanent { operation, detail })) => {
                // The zone is as before the refused request (see `converge_to`): the new SRV records
                // are those it does not hold as wanted. Published ones are never held back.
                let refusal =
                    || SidecarError::Route53(CallError::Permanent { operation, detail: detail.clone() });
                let Some(zone) = self.written() else { return Err(refusal()) };
                let new: Vec<RecordKey> = wanted
                    .iter()
                    .filter(|r| r.key.record_type == RecordType::Srv && zone.get(&r.key) != Some(*r))
                    .map(|r| r.key.clone())
                    .collect();
                if new.is_empty() {
                    return Err(refusal());
                }
                // Route53 busy or throttled while the records are tried apart: the refusal is what
                // the operator must hear of; the retry tries them apart again.
                match self.one_by_one(&desired, held, new, detail.clone()).await {
                    Err(SidecarError::Route53(CallError::Exhausted { .. })) => Err(refusal()),
                    outcome => outcome,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Hands the change to `wanted` to the registration queue, if there is one, the view is known and
    /// the change only registers (a withdrawal is never handed over: it goes out first, from here).
    /// `None` when it was not handed over; the change then goes to Route53.
    async fn hand_over(&mut self, wanted: &RecordSet) -> Option<Converged> {
        let queue = self.queue.clone()?;
        let changes = self.handoff_changes(wanted)?;
        // From here a handoff may land, even if sending seems to fail (SQS may have taken it before
        // the answer was lost): a withdrawal from now on leaves the guard.
        self.may_land();
        let not_after = SystemTime::now() + HANDOFF_LIFETIME;
        let not_after_ms = not_after.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let count = changes.len();
        let handoff =
            Handoff { owner: self.model.owner.clone(), task: self.task.clone(), not_after_ms, changes };
        match queue.send(&handoff).await {
            Ok(()) => tracing::debug!(changes = count, "handed the registration to the batcher"),
            Err(SendFailure::Unanswered(problem)) => tracing::debug!(
                %problem,
                "no answer to the handoff; taking the registration as handed over until a DNS check shows otherwise"
            ),
            Err(SendFailure::NotSent(problem)) => {
                tracing::debug!(%problem, "could not hand the registration over; retrying Route53 itself");
                return None;
            }
        }
        self.handed_over(wanted);
        Some(Converged { handed_over: count, ..Converged::default() })
    }

    /// The changes to `wanted`, if they may be handed over: the view is known, they only register and
    /// write the ownership record (the handoff's guard; a change without it goes to Route53), it is no
    /// withdrawal guard, and no handoff may land over a take-away (a direct change then keeps it from
    /// landing).
    fn handoff_changes(&self, wanted: &RecordSet) -> Option<Vec<Change>> {
        if self.queue_bypassed() || self.handoff.as_ref().is_some_and(|h| h.recheck) || self.is_guard(wanted)
        {
            return None;
        }
        let View::Known(current) = &self.view else { return None };
        let changes = plan(wanted, current);
        let handed = Handoff::only_registers(&changes) && Handoff::guarded(&changes, &self.ownership_key());
        handed.then_some(changes)
    }

    /// A handoff is about to be sent: it may land within [`HANDOFF_LANDS_WITHIN`] from now, and until
    /// one is seen the zone may still hold what it held before.
    fn may_land(&mut self) {
        if self.unconfirmed.is_none()
            && let View::Known(current) = &self.view
        {
            self.unconfirmed = Some(Unconfirmed { before: current.clone(), missed: 0 });
        }
        let lands_by = Instant::now() + HANDOFF_LANDS_WITHIN;
        let lands_by_wall = SystemTime::now() + HANDOFF_LANDS_WITHIN;
        match self.handoff.as_mut() {
            Some(handoff) => (handoff.lands_by, handoff.lands_by_wall) = (lands_by, lands_by_wall),
            None => {
                self.handoff = Some(HandedOver { lands_by, lands_by_wall, unseen: None, recheck: false });
            }
        }
    }

    /// After `wanted` was handed over: assumed written. A DNS check looks once it can show, and a
    /// handoff that did not land is read back and repaired from there; a later change planned from it
    /// that the zone does not match is refused whole, and read back.
    fn handed_over(&mut self, wanted: &RecordSet) {
        self.view = View::Known(wanted.clone());
        if let Some(handoff) = self.handoff.as_mut() {
            handoff.unseen = wanted.iter().find(|r| r.key.record_type == RecordType::Txt).cloned();
        }
    }

    /// After a permanent refusal: publishes everything but the new SRV records, then adds those one
    /// at a time, holding back each that Route53 refuses. An error not about them is returned.
    async fn one_by_one(
        &mut self,
        desired: &Desired,
        mut held: BTreeSet<RecordKey>,
        new: Vec<RecordKey>,
        refused: String,
    ) -> Result<Converged, SidecarError> {
        held.extend(new.iter().cloned());
        let mut done = self.converge_to(&desired.holding_back(&held)).await?;
        if let ([key], 0) = (new.as_slice(), done.requests) {
            // The refused request added exactly this record to what the zone holds: no need to ask again.
            self.refuse(key.clone(), refused);
            return Ok(done);
        }
        for key in new {
            held.remove(&key);
            let wanted = desired.holding_back(&held);
            match self.converge_to(&wanted).await {
                Ok(more) => {
                    done.changes += more.changes;
                    done.requests += more.requests;
                    done.reads += more.reads;
                    self.accepted(&wanted);
                }
                Err(SidecarError::Route53(CallError::Permanent { detail, .. })) => {
                    self.refuse(key.clone(), detail);
                    held.insert(key);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Holds `key` back after Route53 refused it; said once a minute while it lasts, and at once if
    /// the reason changes.
    fn refuse(&mut self, key: RecordKey, detail: String) {
        let entry = self.refused.entry(key.clone()).or_insert_with(|| Refusal {
            detail: String::new(),
            retry_at: Instant::now(),
            gate: ReportGate::default(),
        });
        // Jittered, so tasks refused together do not retry together.
        let delay = self.refused_retry.mul_f64(1.0 + 0.5 * fastrand::f64());
        entry.retry_at = Instant::now() + delay;
        let service =
            key.name.strip_suffix(self.model.domain.fqdn()).unwrap_or(&key.name).trim_end_matches('.');
        if entry.detail != detail {
            // A new reason is said at once.
            entry.gate = ReportGate::default();
        }
        if entry.gate.open() {
            tracing::error!(problem = "route53_refused_record", record = %key, service, retry_in_s = delay.as_secs(),
                route53 = %detail,
                "Route53 refused this SRV record; the task's other records are published and it is tried \
                 again later. If {service} is at Route53's limit of 100 multivalue records per name, \
                 this task is registered once another target leaves");
            entry.detail = detail;
        } else {
            tracing::debug!(record = %key, retry_in_s = delay.as_secs(), "Route53 still refuses this SRV record");
        }
    }

    /// Forgets refusals of records now published.
    fn accepted(&mut self, published: &RecordSet) {
        let keys: Vec<RecordKey> =
            self.refused.keys().filter(|key| published.get(key).is_some()).cloned().collect();
        for key in keys {
            self.refused.remove(&key);
            tracing::info!(problem = "route53_refused_record", record = %key, "Route53 accepted the SRV record it had refused");
        }
    }

    /// Withdraws every record of the task, leaving its withdrawal guard while a handoff may land: the
    /// sidecar can exit at once.
    pub async fn withdraw(&mut self) -> Result<Converged, SidecarError> {
        self.recheck_after_handoff();
        self.converge_to(&self.withdrawn()).await
    }

    async fn converge_to(&mut self, wanted: &RecordSet) -> Result<Converged, SidecarError> {
        let mut conflicts = 0;
        let mut pause = Backoff::new(RetryPolicy::default());
        let mut done = Converged::default();
        let ownership = self.ownership_key();
        // Whether this leaves the withdrawal guard, which no handoff can land over.
        let guarded = self.is_guard(wanted);
        loop {
            let current = match &self.view {
                View::Known(current) => current.clone(),
                View::Unknown => {
                    let current = self.read_current(wanted).await?;
                    done.reads += 1;
                    self.view = View::Known(current.clone());
                    current
                }
            };
            let changes = plan(wanted, &current);
            let writes_ownership = changes.iter().any(|c| c.record.key == ownership);
            if changes.is_empty() {
                return Ok(done);
            }
            // Taking something away while a handoff may still land: unless this leaves the withdrawal
            // guard, the handoff could land over it (if the ownership record comes back to the value
            // the handoff expects), so the zone is read back once it cannot.
            if let Some(handoff) = self.handoff.as_mut()
                && handoff.lands_by > Instant::now()
                && !Handoff::only_registers(&changes)
                && !guarded
            {
                handoff.recheck = true;
            }
            let mut failure = None;
            for (index, request) in batches([changes], BatchLimits::default()).into_iter().enumerate() {
                // Until the request is answered, what the zone holds is uncertain.
                self.view = View::Unknown;
                match self.store.apply(&request).await {
                    Ok(()) => {
                        done.changes += request.len();
                        done.requests += 1;
                    }
                    Err(e) => {
                        // A refused request (throttled, busy, invalid) changed nothing: Route53
                        // applies a batch whole or not at all. If it was the first, the zone is as
                        // before; only a lost answer leaves it unknown (and a conflict says the view
                        // was wrong).
                        if index == 0 && e.changed_nothing() && !matches!(e, CallError::Conflict { .. }) {
                            self.view = View::Known(current.clone());
                        }
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                None => {
                    self.view = View::Known(wanted.clone());
                    // Route53 accepted a change of the ownership record with exact values: a handoff
                    // either had landed (the change deleted what it wrote) or can no longer land.
                    if writes_ownership {
                        self.settle_handoffs();
                    }
                    return Ok(done);
                }
                Some(CallError::Conflict { detail, .. }) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    tracing::info!(conflicts, %detail, "Route53 holds other records for this task than assumed; reading them back");
                    if conflicts > 1 {
                        tokio::time::sleep(pause.next_delay()).await;
                    }
                }
                Some(CallError::Conflict { detail, .. }) => return Err(SidecarError::ForeignRecords(detail)),
                Some(other) => return Err(other.into()),
            }
        }
    }

    /// Reads back the records this task owns, by name: its ownership record, its A and AAAA records
    /// (one request for both), the SRV records the ownership record hands over
    /// ([`Ownership::handed_over`]: never another task's or owner's, whatever it lists) and those it
    /// should hold (an SRV record whose set identifier names the task, and the address records named
    /// after it, are the task's even when the ownership record was deleted behind its back). Both
    /// address families, whatever it publishes now: an earlier run of the task may have published
    /// another.
    async fn read_current(&self, wanted: &RecordSet) -> Result<RecordSet, SidecarError> {
        let keys_of_task = TaskKeys::of(&self.model.domain, self.task.id());
        let txt_key = &keys_of_task.ownership;
        let mut keys: BTreeSet<RecordKey> =
            wanted.iter().map(|r| r.key.clone()).filter(|k| k.record_type == RecordType::Srv).collect();
        let mut current = RecordSet::new();
        if let Some(txt) = self.store.read(txt_key).await? {
            match Ownership::decode(txt.values()) {
                Ok(ownership) if ownership.owner == self.model.owner && ownership.task == self.task => {
                    keys.extend(ownership.handed_over(&self.model.domain));
                }
                Ok(ownership) => {
                    return Err(SidecarError::ForeignRecords(format!(
                        "{} belongs to owner {} / task {}",
                        txt_key, ownership.owner, ownership.task
                    )));
                }
                Err(OwnershipError::NotOurs) => {
                    return Err(SidecarError::ForeignRecords(format!(
                        "{txt_key} exists without ecssd's marker"
                    )));
                }
                // Ours but unreadable: replace it; SRV records only it listed cannot be found by name.
                Err(OwnershipError::Malformed(problem)) => {
                    tracing::warn!(record = %txt_key, %problem, "replacing a malformed ownership record");
                }
            }
            current.insert(txt);
        }
        keys.extend(keys_of_task.addresses().map(Clone::clone));
        let keys: Vec<RecordKey> = keys.into_iter().collect();
        current.extend(self.store.read_each(&keys).await?);
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use ecssd_records::memory::{Applied, MemoryZone};
    use ecssd_records::{OwnerId, Record};

    use super::*;

    fn key(name: String, record_type: RecordType, set_identifier: Option<String>) -> RecordKey {
        RecordKey { name, record_type, set_identifier }
    }

    fn registrar(zone: MemoryZone) -> Registrar<MemoryZone> {
        let model = ZoneModel { domain: "sd.internal".parse().unwrap(), owner: OwnerId::default(), ttl: 10 };
        let task = "arn:aws:ecs:us-east-1:1:task/c/t1".parse().unwrap();
        Registrar::new(zone, model, task, "c".into(), TaskAddresses::Ipv4([10, 0, 0, 1].into()))
    }

    fn web(port: u16) -> Endpoint {
        web_on(80, port)
    }

    fn web_on(container_port: u16, port: u16) -> Endpoint {
        Endpoint {
            container: "web".into(),
            container_port,
            service: "_web._tcp".parse().unwrap(),
            reachable_port: port,
        }
    }

    /// A task withdrawn while its registration may still land leaves its withdrawal guard: the
    /// handoff, landing later, is refused whole by Route53, so the sidecar need not wait for it (before
    /// the guard it waited out the handoff's lifetime on the way out, which kept that lifetime at 15 s).
    /// Once no handoff can land, a sidecar still running deletes its guard.
    #[tokio::test]
    async fn a_withdrawal_while_a_handoff_may_land_leaves_a_guard_the_handoff_cannot_land_over() {
        let mut registrar = registrar(MemoryZone::new([]));
        let wanted = registrar.desired(vec![web(8080)]).records;
        registrar.may_land();
        registrar.handed_over(&wanted);
        assert_eq!(registrar.next_retry(), None, "nothing to check while nothing was taken away");

        registrar.withdraw().await.unwrap();
        let guard = registrar.store().records();
        assert!(registrar.is_guard(&guard), "{guard:?}");
        let lands_by = registrar.next_retry().expect("the guard goes once the handoff can no longer land");
        assert!(lands_by > Instant::now() + HANDOFF_LANDS_WITHIN - Duration::from_secs(1));

        // The batcher writes the handoff now: Route53 refuses all of it.
        let late = registrar.store().apply(&plan(&wanted, &RecordSet::new())).await;
        assert!(matches!(late, Err(CallError::Conflict { .. })), "{late:?}");
        assert_eq!(registrar.store().records(), guard);

        registrar.handoff.as_mut().unwrap().lands_by = Instant::now();
        registrar.converge(Vec::new()).await.unwrap();
        assert!(registrar.store().records().is_empty(), "{:?}", registrar.store().records());
        assert_eq!(registrar.next_retry(), None);
        let again = registrar.converge(Vec::new()).await.unwrap();
        assert_eq!(again.requests, 0, "the guard is not written again");
    }

    /// Review: a SendMessage whose answer was lost may still have queued the handoff, so a withdrawal
    /// after a failed send leaves the guard too (the queue here is a closed loopback port).
    #[tokio::test]
    async fn a_withdrawal_after_a_send_that_seemed_to_fail_leaves_the_guard() {
        let queue = queue_at("http://127.0.0.1:1", Duration::from_secs(2)).await;
        let mut registrar = registrar(MemoryZone::new([])).with_queue(Some(queue));
        let done = registrar.converge(vec![web(8080)]).await.unwrap();
        assert_eq!((done.handed_over, done.requests), (0, 1), "written directly: {done:?}");
        registrar.withdraw().await.unwrap();
        let left = registrar.store().records();
        assert!(registrar.is_guard(&left), "{left:?}");
    }

    /// Issue 26: a SendMessage that went out and got no answer may have queued the handoff (SQS slow
    /// under a thousand sidecars' sends): it is taken as handed over, and neither sent again nor sent to
    /// Route53 too, until a DNS check shows it did not land. Here the queue accepts connections and
    /// never answers.
    #[tokio::test]
    async fn a_handoff_sent_without_an_answer_is_taken_as_handed_over() {
        let (queue, silent) = silent_queue().await;
        let mut registrar = registrar(MemoryZone::new([])).with_queue(Some(queue));
        let done = registrar.converge(vec![web(8080)]).await.unwrap();
        assert_eq!((done.handed_over, done.requests), (3, 0), "{done:?}");
        assert!(registrar.store().calls().is_empty(), "{:?}", registrar.store().calls());
        assert!(registrar.unseen_handoff().is_some(), "a DNS check looks for it");
        silent.abort();
    }

    /// A registration queue at `endpoint`, each send one attempt of `attempt`.
    async fn queue_at(endpoint: &str, attempt: Duration) -> RegistrationQueue {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("AKID", "SECRET", None, None, "test"))
            .load()
            .await;
        RegistrationQueue::new(&sdk, format!("{endpoint}/q"), attempt)
    }

    /// A queue that accepts connections and never answers; it serves until the handle is aborted.
    async fn silent_queue() -> (RegistrationQueue, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        (queue_at(&endpoint, Duration::from_millis(300)).await, silent)
    }

    /// Review: a queue that cannot be connected to (its packets dropped) is no slow queue: connecting
    /// ends within 3/4 of the attempt, so the change goes to Route53 at once rather than waiting for
    /// four DNS checks. Here every connection waits in a full listen backlog.
    #[tokio::test]
    async fn a_queue_that_never_accepts_the_connection_is_not_sent_to() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let address = listener.local_addr().unwrap();
        // Never accepted: these fill the backlog, and later connections get no answer to their SYN.
        let mut filling = Vec::new();
        for _ in 0..4 {
            let connect = tokio::net::TcpStream::connect(address);
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
                filling.push(stream);
            }
        }
        let queue = queue_at(&format!("http://{address}"), Duration::from_millis(600)).await;
        let mut registrar = registrar(MemoryZone::new([])).with_queue(Some(queue));
        let done = registrar.converge(vec![web(8080)]).await.unwrap();
        assert_eq!((done.handed_over, done.requests), (0, 1), "written directly: {done:?}");
        drop((listener, filling));
    }

    /// Review: a change that does not write the ownership record (a read-back found one SRV record
    /// missing) is no handoff: the batcher would refuse it, so it goes to Route53 directly.
    #[test]
    fn only_a_change_that_writes_the_ownership_record_is_handed_over() {
        let mut registrar = registrar(MemoryZone::new([]));
        let wanted = registrar.desired(vec![web(8080)]).records;
        assert!(registrar.handoff_changes(&wanted).is_some(), "a first registration creates it");
        let mut missing_srv = wanted.clone();
        let srv = wanted.iter().find(|r| r.key.record_type == RecordType::Srv).unwrap();
        missing_srv.remove(&srv.key);
        registrar.view = View::Known(missing_srv);
        assert_eq!(registrar.handoff_changes(&wanted), None);
    }

    /// Review: a new guard never has the value of one the zone holds (a handoff planned over that one,
    /// the task registering again, must not match the new one).
    #[test]
    fn a_new_guard_differs_from_the_one_the_zone_holds() {
        let mut registrar = registrar(MemoryZone::new([]));
        let wanted = registrar.desired(vec![web(8080)]).records;
        registrar.may_land();
        registrar.handed_over(&wanted);
        let first = registrar.withdrawn();
        registrar.view = View::Known(first.clone());
        let second = registrar.withdrawn();
        assert!(registrar.is_guard(&second));
        assert_ne!(first, second);
    }

    /// The one take-away the guard does not cover: a change that brings the ownership record back to
    /// the value a handoff in flight expects (a container added, handed over, and stopped before the
    /// handoff landed). The zone is read back once the handoff can no longer land, and what landed is
    /// withdrawn; meanwhile nothing is handed over.
    #[tokio::test]
    async fn a_handoff_landing_over_a_take_away_is_read_back_and_withdrawn_once_it_cannot_land() {
        let mut registrar = registrar(MemoryZone::new([]));
        registrar.converge(vec![web(8080)]).await.unwrap();
        let before = registrar.store().records();
        let wanted = registrar.desired(vec![web(8080), web_on(81, 8081)]).records;
        let handoff = plan(&wanted, &before);
        registrar.may_land();
        registrar.handed_over(&wanted);

        registrar.converge(vec![web(8080)]).await.unwrap();
        assert_eq!(registrar.store().records(), before, "the take-away was read back: nothing to change");
        let recheck = registrar.next_retry().expect("a read-back once the handoff can no longer land");
        assert!(recheck > Instant::now() + HANDOFF_LANDS_WITHIN - Duration::from_secs(1));
        let more = registrar.desired(vec![web(8080), web_on(82, 8082)]).records;
        assert_eq!(
            registrar.handoff_changes(&more),
            None,
            "nothing is handed over while the handoff may land"
        );

        // The handoff lands now (it expects the ownership record as it was before it), then can no longer.
        registrar.store().apply(&handoff).await.unwrap();
        registrar.handoff.as_mut().unwrap().lands_by = Instant::now();
        registrar.converge(vec![web(8080)]).await.unwrap();
        assert_eq!(registrar.store().records(), before);
        assert_eq!(registrar.next_retry(), None);
    }

    fn calls(registrar: &Registrar<MemoryZone>) -> Vec<&'static str> {
        registrar.store().take_calls()
    }

    #[tokio::test]
    async fn a_task_lifetime_costs_one_call_to_register_and_one_to_withdraw() {
        let mut registrar = registrar(MemoryZone::default());
        let done = registrar.converge(vec![web(32768)]).await.unwrap();
        assert_eq!(done, Converged { changes: 3, requests: 1, ..Converged::default() });
        assert_eq!(registrar.converge(vec![web(32768)]).await.unwrap().requests, 0, "no change, no call");
        registrar.withdraw().await.unwrap();
        assert_eq!(calls(&registrar), ["change", "change"]);
        assert!(registrar.store().records().is_empty());
    }

    fn exhausted(refused: bool) -> CallError {
        let detail = if refused { "Throttling (HTTP 400): Rate exceeded" } else { "attempt timed out" };
        let elapsed = Duration::ZERO;
        CallError::Exhausted {
            operation: "ChangeResourceRecordSets",
            attempts: 1,
            elapsed,
            detail: detail.into(),
            refused,
            throttled: refused,
        }
    }

    #[tokio::test]
    async fn a_throttled_change_keeps_what_it_knows_and_only_a_lost_answer_reads_back() {
        let mut registrar = registrar(MemoryZone::default());
        registrar.converge(vec![web(1000)]).await.unwrap();
        registrar.store().take_calls();

        // Throttled: Route53 applied nothing, the retry is one request and no read.
        registrar.store().fail_next_apply(exhausted(true), Applied::No);
        registrar.converge(vec![web(2000)]).await.expect_err("throttled");
        let done = registrar.converge(vec![web(2000)]).await.unwrap();
        assert_eq!((done.requests, done.reads), (1, 0));
        assert_eq!(calls(&registrar), ["change", "change"]);

        // A timeout after the request was sent: it may have been applied, so the retry reads first.
        registrar.store().fail_next_apply(exhausted(false), Applied::Yes);
        registrar.converge(vec![web(3000)]).await.expect_err("timed out");
        let done = registrar.converge(vec![web(3000)]).await.unwrap();
        assert_eq!((done.requests, done.reads), (0, 1), "read back: it had been applied");
        let srv: Vec<_> = registrar
            .store()
            .records()
            .iter()
            .filter(|r| r.key.record_type == RecordType::Srv)
            .cloned()
            .collect();
        assert_eq!(srv[0].values(), ["1 1 3000 t1.sd.internal"]);
    }

    #[tokio::test]
    async fn a_restart_reads_back_and_converges() {
        let mut first = registrar(MemoryZone::default());
        first.converge(vec![web(1000)]).await.unwrap();
        let zone = std::mem::take(&mut first.store);
        // A new process for the same task, now with the container on another port.
        let mut second = registrar(zone);
        second.converge(vec![web(2000)]).await.unwrap();
        assert_eq!(calls(&second), ["change", "change", "read", "read", "read", "change"]);
        let records = second.store().records();
        let srv: Vec<_> = records.iter().filter(|r| r.key.record_type == RecordType::Srv).collect();
        assert_eq!(srv.len(), 1);
        assert_eq!(srv[0].values(), ["1 1 2000 t1.sd.internal"]);
    }

    /// A read-back reads both address records in one request, whatever the task publishes now: an
    /// AAAA record an earlier run of the task wrote (its sidecar then found the host's IPv6 address
    /// too) is deleted, not left for the sweeper.
    #[tokio::test]
    async fn a_read_back_reads_both_address_records_at_once_and_removes_a_family_no_longer_published() {
        let mut first = registrar(MemoryZone::default());
        first.addresses = TaskAddresses::Dual([10, 0, 0, 1].into(), "fd00::1".parse().unwrap());
        first.converge(vec![web(1000)]).await.unwrap();
        let zone = std::mem::take(&mut first.store);
        assert_eq!(zone.records().iter().filter(|r| r.key.record_type == RecordType::Aaaa).count(), 1);

        let mut second = registrar(zone);
        second.converge(vec![web(1000)]).await.unwrap();
        assert_eq!(
            calls(&second),
            ["change", "change", "read", "read", "read", "change"],
            "TXT, A+AAAA, SRV"
        );
        let kinds: Vec<RecordType> = second.store().records().iter().map(|r| r.key.record_type).collect();
        assert!(!kinds.contains(&RecordType::Aaaa) && kinds.contains(&RecordType::A), "{kinds:?}");
    }

    /// Issue 26: a handoff a DNS check does not show is handed over again, planned from what the zone
    /// held before it and with no Route53 request, up to `MAX_MISSED_HANDOFFS` in a row; then the zone
    /// is read back.
    #[tokio::test]
    async fn a_handoff_that_did_not_land_is_planned_again_from_before_it_until_the_cap() {
        let (queue, silent) = silent_queue().await;
        let mut registrar = registrar(MemoryZone::new([])).with_queue(Some(queue));
        let wanted = registrar.desired(vec![web(8080)]).records;
        for missed in 0..=MAX_MISSED_HANDOFFS {
            let changes = registrar.handoff_changes(&wanted).expect("a registration");
            assert_eq!(
                changes,
                plan(&wanted, &RecordSet::new()),
                "planned from the empty zone ({missed} missed)"
            );
            registrar.may_land();
            registrar.handed_over(&wanted);
            assert!(registrar.unseen_handoff().is_some());
            let expected =
                if missed < MAX_MISSED_HANDOFFS { Missed::HandOverAgain } else { Missed::Exhausted };
            assert_eq!(registrar.handoff_missed(), expected, "{missed} missed");
        }
        assert!(registrar.store().calls().is_empty(), "no Route53 request: {:?}", registrar.store().calls());
        assert_eq!(registrar.written(), Some(&wanted), "still assumed written: the check reads it back");
        assert!(!registrar.queue_bypassed(), "not before a read shows the last did not land either");

        // The read-back found nothing: the queue is bypassed, and the registration goes to Route53.
        registrar.invalidate();
        registrar.bypass_queue();
        let done = registrar.converge(vec![web(8080)]).await.unwrap();
        assert_eq!((done.handed_over, done.requests), (0, 1), "written directly: {done:?}");
        assert_eq!(registrar.store().records(), wanted);

        // Once the bypass ends, the queue is tried again.
        registrar.bypass_queue_until = Some(Instant::now());
        assert!(!registrar.queue_bypassed());
        registrar.view = View::Known(RecordSet::new());
        assert!(registrar.handoff_changes(&wanted).is_some(), "the queue is tried again");
        registrar.may_land();
        registrar.handed_over(&wanted);
        registrar.handoff_seen();
        assert_eq!(registrar.handoff_missed(), Missed::ReadBack, "nothing handed over since");
        silent.abort();
    }

    #[tokio::test]
    async fn a_restart_with_nothing_to_publish_still_withdraws_leftovers() {
        let mut first = registrar(MemoryZone::default());
        first.converge(vec![web(1000)]).await.unwrap();
        let mut second = registrar(std::mem::take(&mut first.store));
        second.invalidate();
        second.converge(vec![]).await.unwrap();
        assert!(second.store().records().is_empty());
    }

    fn srv_of(records: &RecordSet, task_id: &str) -> Vec<Record> {
        records
            .iter()
            .filter(|r| {
                let claim = r.key.set_identifier.as_deref().and_then(ecssd_records::parse_set_identifier);
                claim.is_some_and(|c| c.task_id == task_id)
            })
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn a_target_over_route53s_limit_is_held_back_the_rest_published_and_retried_later() {
        // The name already holds its limit (1 here, 100 on Route53): another task's target.
        let other = Record::new(
            key("_web._tcp.sd.internal.".into(), RecordType::Srv, Some("ecssd:default:t0:web:80".into())),
            10,
            vec!["1 1 80 t0.sd.internal".into()],
        );
        let mut registrar = registrar(MemoryZone::new([other.clone()]).with_multivalue_limit(1))
            .with_refused_retry(Duration::from_millis(200));
        let done = registrar.converge(vec![web(1000)]).await.expect("never an error");
        assert_eq!(done.changes, 2, "A and ownership record");
        let records = registrar.store().records();
        assert!(srv_of(&records, "t1").is_empty());
        let txt = records.iter().find(|r| r.key.record_type == RecordType::Txt).expect("ownership");
        assert!(Ownership::decode(txt.values()).expect("ours").srv.is_empty(), "lists only what exists");
        let retry_at = registrar.next_retry().expect("a retry is scheduled");
        let wait = retry_at - Instant::now();
        assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(300), "{wait:?}");

        // Until then, convergences leave it alone and cost nothing.
        registrar.store().take_calls();
        assert_eq!(registrar.converge(vec![web(1000)]).await.expect("converges"), Converged::default());
        assert!(calls(&registrar).is_empty());

        // Room appears; at the retry it is registered.
        registrar.store().remove(&other.key);
        tokio::time::sleep_until(retry_at).await;
        registrar.converge(vec![web(1000)]).await.expect("converges");
        assert_eq!(srv_of(&registrar.store().records(), "t1").len(), 1);
        assert_eq!(registrar.next_retry(), None);
    }

    #[tokio::test]
    async fn records_deleted_behind_its_back_are_read_back_by_name_and_restored() {
        let mut registrar = registrar(MemoryZone::default());
        registrar.converge(vec![web(1000)]).await.expect("registers");
        let before = registrar.store().records();
        // The ownership record alone goes: the A and SRV records are still found by name.
        let txt = before.iter().find(|r| r.key.record_type == RecordType::Txt).expect("ownership");
        registrar.store().remove(&txt.key);
        registrar.invalidate();
        let done = registrar.converge(vec![web(1000)]).await.expect("repairs");
        assert_eq!(done.changes, 1);
        assert_eq!(registrar.store().records(), before);
    }

    #[tokio::test]
    async fn records_its_ownership_record_lists_but_does_not_own_are_never_touched() {
        // Anyone holding the sidecar's policy can write this task's ownership record; listing a
        // record there must not make the task delete it.
        let mut first = registrar(MemoryZone::default());
        first.converge(vec![web(1000)]).await.unwrap();
        let zone = std::mem::take(&mut first.store);
        let txt_key = key("_ecssd.t1.sd.internal.".into(), RecordType::Txt, None);
        let foreign = [
            key("_db._tcp.sd.internal.".into(), RecordType::Srv, Some("manual".into())),
            key("_db._tcp.sd.internal.".into(), RecordType::Srv, Some("ecssd:default:t9:db:5432".into())),
            key("_db._tcp.sd.internal.".into(), RecordType::Srv, Some("ecssd:other:t1:db:5432".into())),
        ];
        let mut ownership = Ownership::decode(zone.records().get(&txt_key).unwrap().values()).unwrap();
        ownership.srv.extend(foreign.iter().cloned());
        let mut forged = zone.records();
        forged.insert(Record::new(txt_key, 10, ownership.encode()));
        for key in &foreign {
            forged.insert(Record::new(key.clone(), 10, vec!["1 1 5432 db.sd.internal".into()]));
        }
        let mut second = registrar(MemoryZone::new(forged));
        second.converge(vec![web(2000)]).await.unwrap();
        second.withdraw().await.unwrap();
        let left: BTreeSet<RecordKey> = second.store().records().iter().map(|r| r.key.clone()).collect();
        assert_eq!(left, BTreeSet::from(foreign));
    }

    #[tokio::test]
    async fn foreign_records_are_never_touched() {
        let key = key("_ecssd.t1.sd.internal.".into(), RecordType::Txt, None);
        let zone = MemoryZone::new([Record::new(key, 300, vec!["\"v=spf1 -all\"".into()])]);
        let before = zone.records();
        let mut registrar = registrar(zone);
        let err = registrar.converge(vec![web(1)]).await.unwrap_err();
        assert!(matches!(err, SidecarError::ForeignRecords(_)), "{err}");
        assert_eq!(registrar.store().records(), before);
    }
}
