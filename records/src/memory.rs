//! A zone in memory that judges changes like Route53 does (exact DELETEs, no CREATE over an existing
//! record, all-or-nothing batches, at most 100 multivalue records per name and type), for unit tests of
//! the code generic over [`RecordStore`]. It can be told to change itself just before the next batch,
//! as a concurrent writer would.

use std::sync::Mutex;

use crate::plan::{Action, Change};
use crate::provider::{CallError, RecordStore, SoaStore, is_address_at};
use crate::record::{Record, RecordKey, RecordSet};
use crate::soa::{ROUTE53_DEFAULT_MINIMUM, ROUTE53_DEFAULT_TTL, Soa};

type Interference = Box<dyn FnOnce(&mut RecordSet) + Send>;

#[derive(Default)]
pub struct MemoryZone {
    records: Mutex<RecordSet>,
    /// The zone's SOA; `None` until written means Route53's for a new zone ([`route53_new_zone_soa`]).
    soa: Mutex<Option<Soa>>,
    /// Every call, in order: "read", "list", "change", "read SOA", "write SOA".
    calls: Mutex<Vec<&'static str>>,
    /// Applied to the zone right before the next batch is judged.
    interference: Mutex<Option<Interference>>,
    /// Multivalue records allowed per name and type (Route53's quota: 100); `None` means 100.
    multivalue_limit: Option<usize>,
    /// How the next batch fails: refused (not applied), or applied with its answer lost.
    next_failure: Mutex<Option<(CallError, Applied)>>,
}

/// Whether a failed batch took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Refused: the zone is as before.
    No,
    /// Applied, but its answer was lost (a timeout, a reset connection).
    Yes,
}

/// The SOA Route53 gives a new zone (Developer Guide, "NS and SOA records").
pub fn route53_new_zone_soa() -> Soa {
    Soa {
        ttl: ROUTE53_DEFAULT_TTL,
        primary: "ns-2048.awsdns-64.net.".into(),
        mailbox: "hostmaster.example.com.".into(),
        serial: 1,
        refresh: 7200,
        retry: 900,
        expire: 1_209_600,
        minimum: ROUTE53_DEFAULT_MINIMUM,
    }
}

/// Route53's quota of records with the same name and type and a routing policy other than simple
/// (Developer Guide, Quotas, "Quotas on records").
const MULTIVALUE_LIMIT: usize = 100;

impl std::fmt::Debug for MemoryZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryZone").field("records", &self.records()).field("calls", &self.calls()).finish()
    }
}

impl MemoryZone {
    pub fn new(records: impl IntoIterator<Item = Record>) -> Self {
        Self { records: Mutex::new(records.into_iter().collect()), ..Self::default() }
    }

    /// Allows `limit` multivalue records per name and type instead of Route53's 100, so a test can
    /// reach the quota with a few records.
    pub fn with_multivalue_limit(mut self, limit: usize) -> Self {
        self.multivalue_limit = Some(limit);
        self
    }

    /// Fails the next batch with `error`, applied or not.
    pub fn fail_next_apply(&self, error: CallError, applied: Applied) {
        *lock(&self.next_failure) = Some((error, applied));
    }

    /// Removes a record, as another writer (or an operator) would.
    pub fn remove(&self, key: &RecordKey) -> Option<Record> {
        lock(&self.records).remove(key)
    }

    pub fn records(&self) -> RecordSet {
        lock(&self.records).clone()
    }

    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.calls).clone()
    }

    /// The calls so far, forgetting them.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *lock(&self.calls))
    }

    /// Makes `change` happen to the zone just before the next batch, as another writer's would.
    pub fn before_next_apply(&self, change: impl FnOnce(&mut RecordSet) + Send + 'static) {
        *lock(&self.interference) = Some(Box::new(change));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SoaStore for MemoryZone {
    async fn read_soa(&self) -> Result<Soa, CallError> {
        lock(&self.calls).push("read SOA");
        Ok(lock(&self.soa).clone().unwrap_or_else(route53_new_zone_soa))
    }

    async fn write_soa(&self, soa: &Soa) -> Result<(), CallError> {
        lock(&self.calls).push("write SOA");
        *lock(&self.soa) = Some(soa.clone());
        Ok(())
    }
}

impl RecordStore for MemoryZone {
    async fn read(&self, key: &RecordKey) -> Result<Option<Record>, CallError> {
        lock(&self.calls).push("read");
        Ok(lock(&self.records).get(key).cloned())
    }

    /// One call, as Route53 answers it.
    async fn read_addresses(&self, name: &str) -> Result<Vec<Record>, CallError> {
        lock(&self.calls).push("read");
        let records = lock(&self.records);
        Ok(records.iter().filter(|r| is_address_at(&r.key, name)).cloned().collect())
    }

    async fn list_all(&self) -> Result<Vec<Record>, CallError> {
        lock(&self.calls).push("list");
        Ok(lock(&self.records).iter().cloned().collect())
    }

    async fn apply(&self, changes: &[Change]) -> Result<(), CallError> {
        lock(&self.calls).push("change");
        let failure = lock(&self.next_failure).take();
        if let Some((error, Applied::No)) = failure {
            return Err(error);
        }
        let mut records = lock(&self.records);
        if let Some(interfere) = lock(&self.interference).take() {
            interfere(&mut records);
        }
        let mut next = records.clone();
        for change in changes {
            let existing = next.get(&change.record.key).cloned();
            match (change.action, existing) {
                (Action::Create, None) => next.insert(change.record.clone()),
                (Action::Delete, Some(have)) if have == change.record => {
                    next = next.into_iter().filter(|r| r.key != have.key).collect();
                }
                _ => {
                    let detail = format!("{} {}", change.action.as_str(), change.record.key);
                    return Err(CallError::Conflict { operation: "ChangeResourceRecordSets", detail });
                }
            }
        }
        let limit = self.multivalue_limit.unwrap_or(MULTIVALUE_LIMIT);
        for change in changes.iter().filter(|c| c.action == Action::Create && c.record.is_multivalue()) {
            let key = &change.record.key;
            let same = next.iter().filter(|r| r.key.name == key.name && r.key.record_type == key.record_type);
            if same.count() > limit {
                let detail = format!(
                    "Exceeded limit on number of multivalue RRSets for {}, type {}",
                    key.name, key.record_type
                );
                return Err(CallError::Permanent { operation: "ChangeResourceRecordSets", detail });
            }
        }
        *records = next;
        match failure {
            Some((error, _)) => Err(error),
            None => Ok(()),
        }
    }
}
