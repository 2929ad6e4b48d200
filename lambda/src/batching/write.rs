//! Writing checked handoffs: as few `ChangeResourceRecordSets` requests as Route53's limits allow
//! (1,000 records, 32,000 value characters), each handoff whole in one request.
//!
//! Route53 applies a request whole or not at all, and each handoff is CREATE and DELETE with exact
//! values: when one task's part no longer matches the zone (its sidecar changed its records itself
//! meanwhile, or withdrew and left its withdrawal guard) or is refused (a name at its 100 targets), the
//! whole request is refused. The request is then split in halves and each is sent again, until the
//! refused task is alone: it is dropped, and its sidecar, if still running, sees at its DNS check that
//! it did not land, hands it over again, and after 3 in a row reads its records back and repairs them. (external-dns retries a failed
//! batch's groups alone the same way; halving costs a few requests per refused task, not one per task.)
//!
//! A handoff is never sent after its `not_after_ms` (less [`SEND_MARGIN`]): its sidecar's withdrawal
//! guard stands only that long. Throttling is retried (paced) until then.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecssd_records::{BatchLimits, CallError, Change, Handoff, RecordStore, cost_of};
use tokio::time::Instant;

use crate::deadline::Deadline;

/// No request carries a handoff this close to its end: a request sent later could land after its
/// sidecar's withdrawal guard is gone.
pub const SEND_MARGIN: Duration = Duration::from_secs(2);

/// What became of one handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its changes are in the zone.
    Written { changes: usize },
    /// Not written in its time (Route53 throttled, or the batch came late).
    Expired,
    /// Not written, and it will not be: why.
    Dropped { why: String },
    /// The invocation's deadline passed before it was tried: to be delivered again.
    OutOfTime,
}

/// Writes `handoffs` (each already checked) and says what became of each, in order.
pub async fn write<S: RecordStore>(store: &S, handoffs: Vec<Handoff>, deadline: Deadline) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; handoffs.len()];
    // SQS delivers a message at least once: a handoff that came twice is written once, and both
    // messages get its outcome.
    let first_of: Vec<usize> =
        (0..handoffs.len()).map(|i| (0..i).find(|&j| handoffs[j] == handoffs[i]).unwrap_or(i)).collect();
    let unique = (0..handoffs.len()).filter(|&i| first_of[i] == i).collect();
    let mut groups: VecDeque<Vec<usize>> = pack(&handoffs, unique).into();
    while let Some(group) = groups.pop_front() {
        let now = now_ms();
        let (live, expired): (Vec<usize>, Vec<usize>) =
            group.into_iter().partition(|&i| handoffs[i].not_after_ms > now + SEND_MARGIN.as_millis() as u64);
        for index in expired {
            outcomes[index] = Some(Outcome::Expired);
        }
        if live.is_empty() {
            continue;
        }
        if deadline.passed() {
            for index in live {
                outcomes[index] = Some(Outcome::OutOfTime);
            }
            continue;
        }
        let changes: Vec<Change> = live.iter().flat_map(|&i| handoffs[i].changes.iter().cloned()).collect();
        let ends_ms = live.iter().map(|&i| handoffs[i].not_after_ms).min().unwrap_or(now);
        let ends = Instant::now() + Duration::from_millis(ends_ms.saturating_sub(now)) - SEND_MARGIN;
        let sent =
            tokio::time::timeout_at(ends.min(Instant::now() + deadline.left()), store.apply(&changes)).await;
        match sent {
            Ok(Ok(())) => {
                for index in live {
                    outcomes[index] = Some(Outcome::Written { changes: handoffs[index].changes.len() });
                }
            }
            Ok(Err(CallError::Conflict { .. } | CallError::Permanent { .. })) if live.len() > 1 => {
                let half = live.len() / 2;
                let (first, second) = live.split_at(half);
                groups.push_front(second.to_vec());
                groups.push_front(first.to_vec());
            }
            Ok(Err(refused @ (CallError::Conflict { .. } | CallError::Permanent { .. }))) => {
                let why = match refused {
                    CallError::Conflict { .. } => {
                        "the zone no longer holds what the sidecar planned from (it changed the task's records \
                         itself meanwhile); its DNS check reads them back"
                            .to_owned()
                    }
                    other => format!("Route53 refused it: {other}"),
                };
                outcomes[live[0]] = Some(Outcome::Dropped { why });
            }
            Ok(Err(other)) => {
                let why = format!(
                    "the request's outcome is unknown; the sidecar's DNS check sees whether it landed: {other}"
                );
                for index in live {
                    outcomes[index] = Some(Outcome::Dropped { why: why.clone() });
                }
            }
            // Cut short at the first handoff's end or the deadline: try the group again, which sorts
            // the expired from those to deliver again.
            Err(_elapsed) => groups.push_front(live),
        }
    }
    for (index, &first) in first_of.iter().enumerate().filter(|(i, first)| *i != **first) {
        outcomes[index] = outcomes[first].clone();
    }
    outcomes.into_iter().map(|o| o.unwrap_or(Outcome::OutOfTime)).collect()
}

/// The handoffs at `indices` grouped, in order, into requests within Route53's limits: each handoff
/// whole (a checked handoff fits one request), and never two of one task in a request (a task's
/// second handoff is planned from its first: they go in order, in separate requests).
fn pack(handoffs: &[Handoff], indices: Vec<usize>) -> Vec<Vec<usize>> {
    let limits = BatchLimits::default();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut used = (0, 0);
    for index in indices {
        let handoff = &handoffs[index];
        let cost = cost_of(&handoff.changes);
        let fits = |group: &Vec<usize>, used: (usize, usize)| {
            used.0 + cost.0 <= limits.max_records
                && used.1 + cost.1 <= limits.max_value_chars
                && group.iter().all(|&other| handoffs[other].task != handoff.task)
        };
        match groups.last_mut() {
            Some(group) if fits(group, used) => group.push(index),
            _ => {
                groups.push(vec![index]);
                used = (0, 0);
            }
        }
        used = (used.0 + cost.0, used.1 + cost.1);
    }
    groups
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use ecssd_records::memory::MemoryZone;
    use ecssd_records::{Endpoint, OwnerId, RecordSet, TaskRegistration, ZoneModel, desired, plan};

    use super::*;
    use crate::fixtures::task_arn;

    fn model() -> ZoneModel {
        ZoneModel { domain: "sd.internal".parse().unwrap(), owner: OwnerId::default(), ttl: 10 }
    }

    fn registration(n: usize) -> RecordSet {
        registration_with_ports(n, &[80])
    }

    fn registration_with_ports(n: usize, ports: &[u16]) -> RecordSet {
        let id = format!("{n:032x}");
        let endpoints = ports
            .iter()
            .map(|&port| Endpoint {
                container: "app".into(),
                container_port: port,
                // One service per task: Route53 takes 100 targets per name.
                service: format!("_s{n}._tcp").parse().unwrap(),
                reachable_port: port,
            })
            .collect();
        let registration = TaskRegistration {
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            task: task_arn(&id).parse().unwrap(),
            addresses: std::net::Ipv4Addr::new(127, 0, 0, 1).into(),
            endpoints,
        };
        desired(&model(), &registration).records
    }

    fn handoff(n: usize, not_after_ms: u64) -> Handoff {
        let task = task_arn(&format!("{n:032x}")).parse().unwrap();
        let changes = plan(&registration(n), &RecordSet::new());
        Handoff { owner: OwnerId::default(), task, not_after_ms, changes }
    }

    fn later() -> u64 {
        now_ms() + 60_000
    }

    #[tokio::test]
    async fn many_tasks_go_in_one_request_and_a_refused_one_is_split_out() {
        let zone = MemoryZone::new([]);
        // Task 7 already registered itself: its handoff's CREATEs no longer match the zone.
        for change in plan(&registration(7), &RecordSet::new()) {
            zone.apply(std::slice::from_ref(&change)).await.unwrap();
        }
        zone.take_calls();
        let handoffs: Vec<Handoff> = (0..300).map(|n| handoff(n, later())).collect();
        let outcomes = write(&zone, handoffs, Deadline::after(Duration::from_secs(30))).await;
        assert!(
            matches!(&outcomes[7], Outcome::Dropped { why } if why.contains("no longer holds")),
            "{:?}",
            outcomes[7]
        );
        let written = outcomes.iter().filter(|o| matches!(o, Outcome::Written { changes: 3 })).count();
        assert_eq!(written, 299);
        let requests = zone.calls().len();
        // 900 records fit one request; finding the refused task halves it about log2(300) times.
        assert!(requests <= 1 + 2 * 9, "{requests} requests");
    }

    /// Review: a task whose registration grew while throttled hands over twice, the second planned
    /// from the first; the two go in order, in separate requests, and both land.
    #[tokio::test]
    async fn two_handoffs_of_one_task_go_in_order_in_separate_requests() {
        let zone = MemoryZone::new([]);
        let first = handoff(1, later());
        let grown = registration_with_ports(1, &[80, 81]);
        let second = Handoff { changes: plan(&grown, &registration(1)), ..handoff(1, later()) };
        let handoffs = vec![first, second, handoff(2, later())];
        let outcomes = write(&zone, handoffs, Deadline::after(Duration::from_secs(30))).await;
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Written { .. })), "{outcomes:?}");
        assert_eq!(zone.calls().len(), 2, "{:?}", zone.calls());
        assert_eq!(zone.records().len(), grown.len() + registration(2).len());
    }

    /// Review: SQS delivers a message at least once; a handoff that came twice was sent twice, and the
    /// second was reported dropped for a change its sidecar never made.
    #[tokio::test]
    async fn a_handoff_delivered_twice_is_written_once() {
        let zone = MemoryZone::new([]);
        let at = later();
        let handoffs = vec![handoff(1, at), handoff(1, at), handoff(2, at)];
        let outcomes = write(&zone, handoffs, Deadline::after(Duration::from_secs(30))).await;
        assert!(outcomes.iter().all(|o| *o == Outcome::Written { changes: 3 }), "{outcomes:?}");
        assert_eq!(zone.calls(), ["change"]);
    }

    #[tokio::test]
    async fn an_expired_handoff_is_never_sent() {
        let zone = MemoryZone::new([]);
        let outcomes = write(
            &zone,
            vec![handoff(1, now_ms() + 500), handoff(2, later())],
            Deadline::after(Duration::from_secs(30)),
        )
        .await;
        assert_eq!(outcomes[0], Outcome::Expired);
        assert_eq!(outcomes[1], Outcome::Written { changes: 3 });
        let first = format!("{:032x}", 1);
        assert!(zone.records().iter().all(|r| !r.key.name.contains(&first)));
    }

    #[tokio::test]
    async fn past_the_deadline_the_messages_come_back() {
        let zone = MemoryZone::new([]);
        let outcomes = write(&zone, vec![handoff(1, later())], Deadline::after(Duration::ZERO)).await;
        assert_eq!(outcomes, vec![Outcome::OutOfTime]);
    }
}
