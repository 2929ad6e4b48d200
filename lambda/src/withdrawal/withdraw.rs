//! Withdrawing the records of tasks ECS said stop. Each task's records are read by name (its ownership
//! record, then what that hands over), checked against this owner and the task and cluster ECS named,
//! and deleted with their exact values; the tasks of one call share requests. A shared request the zone
//! rejects (it changed meanwhile: a sidecar withdrew too; or Route53 refuses one task's part) is redone
//! per task from fresh reads, so a record already gone is success, a record rewritten by someone else is
//! judged again, and one task's refusal fails that task alone. (The sweep's `apply` redoes a rejected
//! request per record; here each task's ownership is checked again first.)

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecssd_records::{
    BatchLimits, CallError, Change, Domain, OwnerId, Ownership, Record, RecordKey, RecordStore, TaskKeys,
    batches,
};
use serde::Serialize;

use crate::deadline::Deadline;
use crate::withdrawal::task_event::TaskStateChange;

/// How many times one task's withdrawal is redone from fresh reads while the zone keeps changing.
const FRESH_ATTEMPTS: u32 = 3;

/// Time kept for the requests once reading stops (reads end this much before the deadline): tasks not
/// read by then are delivered again, so that what was read is still deleted within the invocation.
const APPLY_RESERVE: Duration = Duration::from_secs(5);

/// What became of one stopped task's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its records were deleted (or, in a dry run, would be): how many.
    Withdrawn { records: usize },
    /// No ownership record, or a withdrawal guard: ecssd never registered it, or its records are
    /// already gone.
    NotRegistered,
    /// An ownership record that is not this owner's claim on this task: nothing was touched.
    LeftAlone { why: String },
    /// A call failed or the deadline passed: the event is to be delivered again.
    Failed { why: String },
}

/// Withdraws the records of each task (one outcome per task, in order). A dry run reads but deletes
/// nothing.
pub async fn withdraw<S: RecordStore>(
    store: &S,
    domain: &Domain,
    owner: &OwnerId,
    tasks: &[TaskStateChange],
    dry_run: bool,
    deadline: Deadline,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut units = Vec::new();
    // Which task each record to delete belongs to, to map a failed request back to its tasks.
    let mut task_of: BTreeMap<RecordKey, usize> = BTreeMap::new();
    let reads = deadline.earlier_by(APPLY_RESERVE);
    for (index, task) in tasks.iter().enumerate() {
        if reads.passed() {
            outcomes.push(Outcome::Failed { why: "out of time before its records were read".into() });
            continue;
        }
        match owned_records(store, domain, owner, task, reads).await {
            Ok(records) => {
                outcomes.push(Outcome::Withdrawn { records: records.len() });
                task_of.extend(records.iter().map(|r| (r.key.clone(), index)));
                units.push(records.into_iter().map(Change::delete).collect::<Vec<_>>());
            }
            Err(outcome) => outcomes.push(outcome),
        }
    }
    if dry_run {
        return outcomes;
    }
    for request in batches(units, BatchLimits::default()) {
        let Err(refused) = deadline.run(store.apply(&request)).await else { continue };
        let mut in_request: Vec<usize> =
            request.iter().filter_map(|c| task_of.get(&c.record.key)).copied().collect();
        in_request.dedup();
        // The zone changed meanwhile, or Route53 refuses one task's part of a shared request: each
        // task alone, from fresh reads, so only a refused task fails.
        let alone = match refused {
            CallError::Conflict { .. } => true,
            CallError::Permanent { .. } => in_request.len() > 1,
            _ => false,
        };
        for index in in_request {
            outcomes[index] = if alone {
                from_fresh_reads(store, domain, owner, &tasks[index], deadline).await
            } else {
                Outcome::Failed { why: refused.to_string() }
            };
        }
    }
    outcomes
}

/// One task's withdrawal from fresh reads, redone while the zone keeps changing under it.
async fn from_fresh_reads<S: RecordStore>(
    store: &S,
    domain: &Domain,
    owner: &OwnerId,
    task: &TaskStateChange,
    deadline: Deadline,
) -> Outcome {
    for _ in 0..FRESH_ATTEMPTS {
        let records = match owned_records(store, domain, owner, task, deadline).await {
            Ok(records) => records,
            Err(outcome) => return outcome,
        };
        let count = records.len();
        let changes: Vec<Change> = records.into_iter().map(Change::delete).collect();
        match deadline.run(store.apply(&changes)).await {
            Ok(()) => return Outcome::Withdrawn { records: count },
            Err(CallError::Conflict { .. }) => continue,
            Err(e) => return Outcome::Failed { why: e.to_string() },
        }
    }
    Outcome::Failed { why: format!("the zone changed under each of {FRESH_ATTEMPTS} attempts") }
}

/// The records of `task` this owner may delete, read by name: its ownership record, if it is this
/// owner's claim on exactly the task and cluster ECS named, and what that hands over.
async fn owned_records<S: RecordStore>(
    store: &S,
    domain: &Domain,
    owner: &OwnerId,
    task: &TaskStateChange,
    deadline: Deadline,
) -> Result<Vec<Record>, Outcome> {
    let failed = |e: CallError| Outcome::Failed { why: e.to_string() };
    let key = TaskKeys::of(domain, task.task.id()).ownership;
    let Some(txt) = deadline.run(store.read(&key)).await.map_err(failed)? else {
        return Err(Outcome::NotRegistered);
    };
    let left_alone = |why: String| Err(Outcome::LeftAlone { why: format!("{}: {why}", key.name) });
    let ownership = match Ownership::decode(txt.values()) {
        Ok(ownership) => ownership,
        Err(problem) => return left_alone(problem.to_string()),
    };
    if ownership.owner != *owner {
        return left_alone(format!("belongs to owner {}", ownership.owner));
    }
    if ownership.task != task.task {
        return left_alone(format!("names task {}, not the stopped {}", ownership.task, task.task));
    }
    if ownership.cluster_arn != task.cluster_arn {
        return left_alone(format!("names cluster {}, not {}", ownership.cluster_arn, task.cluster_arn));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if ownership.guards_at(now) {
        // Its sidecar withdrew it and left a guard against its own late handoffs: nothing to withdraw,
        // and the guard stays until it expires (the sweep then removes it as an orphan).
        return Err(Outcome::NotRegistered);
    }
    let mut records = deadline.run(store.read_each(&ownership.handed_over(domain))).await.map_err(failed)?;
    records.push(txt);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use ecssd_records::memory::MemoryZone;
    use ecssd_records::{RecordSet, RecordType};

    use super::*;
    use crate::fixtures::{
        CLUSTER_ARN, IPV4, IPV6, TASK_IDS, task_arn, web_task_records, web_task_records_at,
    };

    const OWNER: &str = "default";

    fn stopped(id: &str) -> TaskStateChange {
        TaskStateChange {
            task: task_arn(id).parse().unwrap(),
            cluster_arn: CLUSTER_ARN.into(),
            desired_status: "STOPPED".into(),
            last_status: "STOPPED".into(),
        }
    }

    fn zone_of(sets: &[&RecordSet]) -> MemoryZone {
        MemoryZone::new(sets.iter().flat_map(|set| set.iter().cloned()))
    }

    async fn run<S: RecordStore>(store: &S, tasks: &[TaskStateChange]) -> Vec<Outcome> {
        run_within(store, tasks, Duration::from_secs(30)).await
    }

    async fn run_within<S: RecordStore>(
        store: &S,
        tasks: &[TaskStateChange],
        left: Duration,
    ) -> Vec<Outcome> {
        let domain: Domain = "sd.internal".parse().unwrap();
        let owner: OwnerId = OWNER.parse().unwrap();
        withdraw(store, &domain, &owner, tasks, false, Deadline::after(left)).await
    }

    #[tokio::test]
    async fn stopped_tasks_lose_their_records_in_one_request_and_nothing_else_changes() {
        let [a, b, c, _] = TASK_IDS;
        let (first, second, neighbour) =
            (web_task_records(OWNER, a), web_task_records(OWNER, b), web_task_records(OWNER, c));
        let zone = zone_of(&[&first, &second, &neighbour]);
        let outcomes = run(&zone, &[stopped(a), stopped(b)]).await;
        assert_eq!(outcomes, vec![Outcome::Withdrawn { records: first.len() }; 2]);
        assert_eq!(zone.records(), neighbour);
        assert_eq!(zone.calls().iter().filter(|c| **c == "change").count(), 1, "{:?}", zone.calls());
        // Again (a duplicate event): nothing left to do, nothing changed.
        assert_eq!(run(&zone, &[stopped(a)]).await, vec![Outcome::NotRegistered]);
        assert_eq!(zone.records(), neighbour);
    }

    #[tokio::test]
    async fn a_withdrawal_guard_stays_until_it_expires_then_goes() {
        let [a, ..] = TASK_IDS;
        let claim =
            web_task_records(OWNER, a).into_iter().find(|r| r.key.record_type == RecordType::Txt).unwrap();
        let Ownership { owner, cluster_arn, task, .. } = Ownership::decode(claim.values()).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let guard = |until| {
            let ownership =
                Ownership::withdrawal_guard(owner.clone(), cluster_arn.clone(), task.clone(), until);
            Record::new(claim.key.clone(), claim.ttl, ownership.encode())
        };
        let guarding = MemoryZone::new([guard(now + 60)]);
        assert_eq!(run(&guarding, &[stopped(a)]).await, vec![Outcome::NotRegistered]);
        assert_eq!(guarding.records().len(), 1, "a guard that still guards stays");
        let expired = MemoryZone::new([guard(now - 1)]);
        assert_eq!(run(&expired, &[stopped(a)]).await, vec![Outcome::Withdrawn { records: 1 }]);
        assert!(expired.records().is_empty());
    }

    #[tokio::test]
    async fn a_claim_of_another_owner_task_or_cluster_is_left_alone() {
        let [a, b, ..] = TASK_IDS;
        let records = web_task_records(OWNER, a);
        let zone = zone_of(&[&records]);
        let mut other_cluster = stopped(a);
        other_cluster.cluster_arn = "arn:aws:ecs:us-east-1:1:cluster/other".into();
        // The event names the task by another ARN than its ownership record does.
        let mut claimed_elsewhere = stopped(a);
        claimed_elsewhere.task = format!("arn:aws:ecs:us-east-1:1:task/{a}").parse().unwrap();
        for event in [other_cluster, claimed_elsewhere] {
            let outcome = run(&zone, &[event]).await;
            assert!(matches!(&outcome[..], [Outcome::LeftAlone { .. }]), "{outcome:?}");
        }
        let foreign_records = web_task_records("someone-else", b);
        let foreign = zone_of(&[&foreign_records]);
        let outcome = run(&foreign, &[stopped(b)]).await;
        assert!(
            matches!(&outcome[..], [Outcome::LeftAlone { why }] if why.contains("someone-else")),
            "{outcome:?}"
        );
        assert_eq!(zone.records(), records);
        assert_eq!(foreign.records(), foreign_records);
        assert!(!zone.calls().contains(&"change") && !foreign.calls().contains(&"change"));
    }

    #[tokio::test]
    async fn a_record_gone_meanwhile_is_success_and_the_rest_still_goes() {
        let [a, b, ..] = TASK_IDS;
        let (first, second) = (web_task_records(OWNER, a), web_task_records(OWNER, b));
        let zone = zone_of(&[&first, &second]);
        // The first task's sidecar withdraws between our reads and our request.
        let gone = first.clone();
        zone.before_next_apply(move |records| {
            for record in gone.iter() {
                records.remove(&record.key);
            }
        });
        let outcomes = run(&zone, &[stopped(a), stopped(b)]).await;
        assert_eq!(outcomes, vec![Outcome::NotRegistered, Outcome::Withdrawn { records: second.len() }]);
        assert!(zone.records().is_empty());
    }

    /// A zone whose reads of `hang` never answer and whose requests touching `refuse` Route53 refuses
    /// for good (an `InvalidChangeBatch` that is not about a stale view, a permission boundary).
    struct Faulty {
        zone: MemoryZone,
        hang: Option<RecordKey>,
        refuse: Option<RecordKey>,
    }

    impl RecordStore for Faulty {
        async fn read(&self, key: &RecordKey) -> Result<Option<Record>, CallError> {
            if self.hang.as_ref() == Some(key) {
                std::future::pending::<()>().await;
            }
            self.zone.read(key).await
        }

        async fn list_all(&self) -> Result<Vec<Record>, CallError> {
            self.zone.list_all().await
        }

        async fn apply(&self, changes: &[Change]) -> Result<(), CallError> {
            // A request is not answered in the instant it is sent (a deadline already passed cuts it).
            tokio::task::yield_now().await;
            if changes.iter().any(|c| self.refuse.as_ref() == Some(&c.record.key)) {
                let detail = "InvalidChangeBatch: refused".into();
                return Err(CallError::Permanent { operation: "ChangeResourceRecordSets", detail });
            }
            self.zone.apply(changes).await
        }
    }

    #[tokio::test]
    async fn a_task_route53_refuses_fails_alone_and_the_others_still_go() {
        let [a, b, c, _] = TASK_IDS;
        let sets = [a, b, c].map(|id| web_task_records(OWNER, id));
        let refused = sets[1].iter().next().unwrap().key.clone();
        let store =
            Faulty { zone: zone_of(&[&sets[0], &sets[1], &sets[2]]), hang: None, refuse: Some(refused) };
        let outcomes = run(&store, &[stopped(a), stopped(b), stopped(c)]).await;
        assert!(matches!(&outcomes[1], Outcome::Failed { why } if why.contains("refused")), "{outcomes:?}");
        assert_eq!(outcomes[0], Outcome::Withdrawn { records: sets[0].len() });
        assert_eq!(outcomes[2], Outcome::Withdrawn { records: sets[2].len() });
        assert_eq!(store.zone.records(), sets[1], "only the refused task's records remain");
    }

    #[tokio::test]
    async fn a_read_that_hangs_to_the_deadline_still_leaves_time_to_delete_what_was_read() {
        let [a, b, ..] = TASK_IDS;
        let (first, second) = (web_task_records(OWNER, a), web_task_records(OWNER, b));
        let hang = TaskKeys::of(&"sd.internal".parse().unwrap(), b).ownership;
        let store = Faulty { zone: zone_of(&[&first, &second]), hang: Some(hang), refuse: None };
        // Reads may take until a second before the deadline; the hung one is cut there.
        let left = APPLY_RESERVE + Duration::from_secs(1);
        let outcomes = run_within(&store, &[stopped(a), stopped(b)], left).await;
        assert_eq!(outcomes[0], Outcome::Withdrawn { records: first.len() });
        assert!(
            matches!(&outcomes[1], Outcome::Failed { why } if why.contains("out of time")),
            "{outcomes:?}"
        );
        assert_eq!(store.zone.records(), second);
    }

    #[tokio::test]
    async fn tasks_left_unread_near_the_deadline_fail_and_nothing_is_half_done() {
        let [a, ..] = TASK_IDS;
        let records = web_task_records(OWNER, a);
        let zone = zone_of(&[&records]);
        let outcomes = run_within(&zone, &[stopped(a)], APPLY_RESERVE / 2).await;
        assert!(
            matches!(&outcomes[..], [Outcome::Failed { why }] if why.contains("out of time")),
            "{outcomes:?}"
        );
        assert_eq!(zone.records(), records);
        assert!(zone.calls().is_empty(), "{:?}", zone.calls());
    }

    /// Issue 30: a dual-stack task's AAAA record goes with its A record, and an IPv6-only task's AAAA
    /// record with the rest (the ownership record hands both address records over).
    #[tokio::test]
    async fn a_dual_stack_or_ipv6_only_task_loses_its_aaaa_record_too() {
        let [a, b, c, _] = TASK_IDS;
        let dual = web_task_records_at(OWNER, a, ecssd_records::TaskAddresses::Dual(IPV4, IPV6), 80);
        let ipv6_only = web_task_records_at(OWNER, b, IPV6.into(), 80);
        let neighbour = web_task_records_at(OWNER, c, IPV6.into(), 80);
        let aaaa = |set: &RecordSet| set.iter().filter(|r| r.key.record_type == RecordType::Aaaa).count();
        assert_eq!((aaaa(&dual), aaaa(&ipv6_only)), (1, 1));
        let zone = zone_of(&[&dual, &ipv6_only, &neighbour]);
        let outcomes = run(&zone, &[stopped(a), stopped(b)]).await;
        assert_eq!(outcomes, [Outcome::Withdrawn { records: 4 }, Outcome::Withdrawn { records: 3 }]);
        assert_eq!(zone.records(), neighbour);
    }
}
