//! The narrow interface between reconcile logic and a DNS zone (external-dns' `Provider`): read one
//! record set, read them all, apply one atomic batch. Route53 implements it in `ecssd-edge`;
//! reconcile code is generic over it.

use std::future::Future;
use std::time::Duration;

use crate::plan::Change;
use crate::record::{Record, RecordKey, RecordType};
use crate::soa::Soa;

/// A zone ecssd reads and changes.
pub trait RecordStore: Send + Sync {
    /// The record set with exactly this key, if the zone holds one in a shape ecssd writes.
    fn read(&self, key: &RecordKey) -> impl Future<Output = Result<Option<Record>, CallError>> + Send;

    /// The A and AAAA record sets at `name` (a task's address records), those the zone holds in a
    /// shape ecssd writes. By default one read of each; Route53 lists both in one request (record
    /// sets of one name sort by type, and A and AAAA are next to each other).
    fn read_addresses(&self, name: &str) -> impl Future<Output = Result<Vec<Record>, CallError>> + Send {
        async move {
            let mut found = Vec::new();
            for record_type in [RecordType::A, RecordType::Aaaa] {
                let key = RecordKey { name: name.to_owned(), record_type, set_identifier: None };
                found.extend(self.read(&key).await?);
            }
            Ok(found)
        }
    }

    /// The record sets with these keys that the zone holds, one request per [`reads`] group.
    fn read_each(&self, keys: &[RecordKey]) -> impl Future<Output = Result<Vec<Record>, CallError>> + Send {
        async move {
            let mut found = Vec::new();
            for group in reads(keys) {
                found.extend(self.read_group(&group).await?);
            }
            Ok(found)
        }
    }

    /// The record sets of one [`reads`] group that the zone holds, in one request.
    fn read_group(&self, group: &[RecordKey]) -> impl Future<Output = Result<Vec<Record>, CallError>> + Send {
        async move {
            match group {
                [key] if !is_address(key) => Ok(self.read(key).await?.into_iter().collect()),
                _ => {
                    let Some(first) = group.first() else { return Ok(Vec::new()) };
                    let at_name = self.read_addresses(&first.name).await?;
                    Ok(at_name.into_iter().filter(|record| group.contains(&record.key)).collect())
                }
            }
        }
    }

    /// Every record set in the zone that has a shape ecssd writes (A, AAAA, SRV, TXT with plain values).
    fn list_all(&self) -> impl Future<Output = Result<Vec<Record>, CallError>> + Send;

    /// Applies `changes` as one atomic request: all of them take effect or none does.
    fn apply(&self, changes: &[Change]) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// `keys` grouped by the request that reads them: a name's A and AAAA together (one
/// ListResourceRecordSets page holds both), any other key alone.
pub fn reads(keys: &[RecordKey]) -> Vec<Vec<RecordKey>> {
    let mut groups: Vec<Vec<RecordKey>> = Vec::new();
    for key in keys {
        let same_name = |group: &&mut Vec<RecordKey>| {
            is_address(key) && group.iter().all(|k| is_address_at(k, &key.name))
        };
        match groups.iter_mut().find(same_name) {
            Some(group) if !group.contains(key) => group.push(key.clone()),
            Some(_) => {}
            None => groups.push(vec![key.clone()]),
        }
    }
    groups
}

/// A simple A or AAAA record set's key: the kind [`RecordStore::read_addresses`] reads.
fn is_address(key: &RecordKey) -> bool {
    matches!(key.record_type, RecordType::A | RecordType::Aaaa) && key.set_identifier.is_none()
}

/// Whether `key` is a simple A or AAAA record set at `name` (fully qualified, lowercase): what
/// [`RecordStore::read_addresses`] returns, and nothing else of that name (a multivalue A record there is
/// not ecssd's).
pub fn is_address_at(key: &RecordKey, name: &str) -> bool {
    is_address(key) && key.name == name
}

/// A zone's SOA record, read and changed apart from the records ecssd owns: Route53 creates it with
/// the zone and allows neither creating nor deleting it, only changing it (UPSERT).
pub trait SoaStore: Send + Sync {
    /// The zone's SOA (one read by name).
    fn read_soa(&self) -> impl Future<Output = Result<Soa, CallError>> + Send;

    /// Replaces the zone's SOA with `soa` (one UPSERT).
    fn write_soa(&self, soa: &Soa) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// A call to a store (or to AWS) that failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{operation} was rejected as planned from a stale view: {detail}")]
    Conflict { operation: &'static str, detail: String },
    #[error("{operation}: not found: {detail}")]
    NotFound { operation: &'static str, detail: String },
    #[error("{operation} failed: {detail}")]
    Permanent { operation: &'static str, detail: String },
    /// Transient failures past the retry budget. `refused`: the last attempt was answered with an
    /// error below HTTP 500 (throttling, `PriorRequestNotComplete`), so it changed nothing; otherwise
    /// (a timeout, a lost connection, a 5xx) whether it took effect is unknown. `throttled`: that
    /// answer was the account's request rate (`Throttling` and AWS's other throttling codes), which
    /// lifts as other clients slow down.
    #[error("{operation} still failing after {attempts} attempts over {elapsed:?}: {detail}")]
    Exhausted {
        operation: &'static str,
        attempts: u32,
        elapsed: Duration,
        detail: String,
        refused: bool,
        throttled: bool,
    },
}

impl CallError {
    /// Whether the call certainly changed nothing: the service answered it with a refusal. Only a
    /// call whose answer was lost (or a 5xx) may have taken effect unseen.
    pub fn changed_nothing(&self) -> bool {
        match self {
            Self::Conflict { .. } | Self::NotFound { .. } | Self::Permanent { .. } => true,
            Self::Exhausted { refused, .. } => *refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryZone;
    use crate::ownership::TaskKeys;

    /// The outcome of a future that never waits (a [`MemoryZone`] call): no runtime needed.
    fn ready<T>(future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("a MemoryZone call waited"),
        }
    }

    /// A withdrawal or read-back of a one-endpoint task reads its ownership record, both address
    /// records in one request, and its SRV record: three requests, whichever families it published.
    #[test]
    fn a_names_a_and_aaaa_are_read_in_one_request() {
        let domain = "sd.internal".parse().unwrap();
        let keys = TaskKeys::of(&domain, "t1");
        let srv = RecordKey {
            name: "_web._tcp.sd.internal.".into(),
            record_type: RecordType::Srv,
            set_identifier: Some("ecssd:default:t1:web:80".into()),
        };
        let a = Record::new(keys.ipv4.clone(), 10, vec!["10.0.0.1".into()]);
        let srv_record = Record::new(srv.clone(), 10, vec!["1 1 80 t1.sd.internal".into()]);
        let zone = MemoryZone::new([a.clone(), srv_record.clone()]);
        let wanted = [keys.ownership.clone(), keys.ipv4.clone(), keys.ipv6.clone(), srv];
        let found = ready(zone.read_each(&wanted)).unwrap();
        assert_eq!(found, [a.clone(), srv_record]);
        assert_eq!(zone.calls(), ["read", "read", "read"]);
        // Only the keys asked for: an AAAA beside the A is not returned when only the A is asked.
        let aaaa = Record::new(keys.ipv6.clone(), 10, vec!["fd00::1".into()]);
        let dual = MemoryZone::new([a.clone(), aaaa]);
        assert_eq!(ready(dual.read_each(std::slice::from_ref(&keys.ipv4))).unwrap(), [a]);
    }
}
