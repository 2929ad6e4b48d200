//! Keeps one task's records in Route53 equal to what it should publish, generic over the narrow
//! [`RecordStore`] so the logic is the same against Route53 or a test double.
//!
//! It remembers what it last wrote, so each change sends only the difference and costs one call. At
//! start it assumes the task owns nothing (true for a fresh task: registering costs one call); if
//! Route53 rejects that as stale, records survive from an earlier run, so it reads them back by name
//! (never a zone scan) and plans again.

use std::net::Ipv4Addr;
use std::time::Duration;

use ecssd_records::ownership::{address_name, ownership_name};
use ecssd_records::{
    BatchLimits, CallError, Endpoint, Ownership, OwnershipError, RecordKey, RecordSet, RecordStore,
    RecordType, Rejected, TaskArn, TaskRegistration, ZoneModel, batches, desired, plan,
};

use crate::error::SidecarError;

/// How many stale-plan rejections in a row are tolerated before the conflict is reported as permanent
/// (a re-read that changes nothing means the conflict is not with our own earlier state).
const MAX_CONFLICTS: u32 = 5;

/// What the registrar believes the zone holds for its task.
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    /// Exactly these records (read or written by us).
    Known(RecordSet),
    /// Must be read before planning: start-up with nothing to publish, or after an interrupted write.
    Unknown,
}

/// Registers one task's endpoints.
#[derive(Debug)]
pub struct Registrar<S> {
    store: S,
    model: ZoneModel,
    task: TaskArn,
    cluster: String,
    address: Ipv4Addr,
    view: View,
    /// Endpoints left out for breaking a DNS or Route53 limit, as last logged (each is logged once,
    /// when it appears, not at every convergence).
    rejected: Vec<Rejected>,
}

/// What one convergence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Converged {
    /// Record changes sent (0 when already in step).
    pub changes: usize,
    /// Change requests sent that Route53 accepted.
    pub requests: usize,
}

impl<S: RecordStore> Registrar<S> {
    pub fn new(store: S, model: ZoneModel, task: TaskArn, cluster: String, address: Ipv4Addr) -> Self {
        let view = View::Known(RecordSet::new());
        Self { store, model, task, cluster, address, view, rejected: Vec::new() }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Forgets what it believed, so the next convergence reads the zone first.
    pub fn invalidate(&mut self) {
        self.view = View::Unknown;
    }

    /// The records this task should own with these endpoints; endpoints that break a limit are left
    /// out, and said so once.
    fn desired(&mut self, endpoints: Vec<Endpoint>) -> RecordSet {
        let registration = TaskRegistration {
            cluster_arn: self.cluster.clone(),
            task: self.task.clone(),
            address: self.address,
            endpoints,
        };
        let desired = desired(&self.model, &registration);
        if desired.rejected != self.rejected {
            for problem in desired.rejected.iter().filter(|p| !self.rejected.contains(p)) {
                tracing::error!(%problem, "cannot publish this endpoint; the others are unaffected");
            }
            self.rejected = desired.rejected;
        }
        desired.records
    }

    /// Makes the zone hold exactly the records for `endpoints`.
    pub async fn converge(&mut self, endpoints: Vec<Endpoint>) -> Result<Converged, SidecarError> {
        let wanted = self.desired(endpoints);
        self.converge_to(&wanted).await
    }

    /// Withdraws every record of the task.
    pub async fn withdraw(&mut self) -> Result<Converged, SidecarError> {
        self.converge_to(&RecordSet::new()).await
    }

    async fn converge_to(&mut self, wanted: &RecordSet) -> Result<Converged, SidecarError> {
        let mut conflicts = 0;
        let mut done = Converged::default();
        loop {
            let current = match &self.view {
                View::Known(current) => current.clone(),
                View::Unknown => {
                    let current = self.read_current().await?;
                    self.view = View::Known(current.clone());
                    current
                }
            };
            let changes = plan(wanted, &current);
            if changes.is_empty() {
                return Ok(done);
            }
            let mut failure = None;
            for request in batches([changes], BatchLimits::default()) {
                // Until the request is answered, what the zone holds is uncertain.
                self.view = View::Unknown;
                match self.store.apply(&request).await {
                    Ok(()) => {
                        done.changes += request.len();
                        done.requests += 1;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                None => {
                    self.view = View::Known(wanted.clone());
                    return Ok(done);
                }
                Some(CallError::Conflict { detail, .. }) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    tracing::info!(conflicts, %detail, "Route53 holds other records for this task than assumed; reading them back");
                    if conflicts > 1 {
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(conflicts))).await;
                    }
                }
                Some(CallError::Conflict { detail, .. }) => return Err(SidecarError::ForeignRecords(detail)),
                Some(other) => return Err(other.into()),
            }
        }
    }

    /// Reads back the records this task owns, by name: its ownership record, then the A record and the
    /// SRV records the ownership record lists.
    async fn read_current(&self) -> Result<RecordSet, SidecarError> {
        let txt_key = key(ownership_name(&self.model.domain, &self.task), RecordType::Txt, None);
        let mut current = RecordSet::new();
        let Some(txt) = self.store.read(&txt_key).await? else {
            return Ok(current);
        };
        let srv_keys = match Ownership::decode(txt.values()) {
            Ok(ownership) if ownership.owner == self.model.owner && ownership.task == self.task => {
                ownership.srv
            }
            Ok(ownership) => {
                return Err(SidecarError::ForeignRecords(format!(
                    "{} belongs to owner {} / task {}",
                    txt_key, ownership.owner, ownership.task
                )));
            }
            Err(OwnershipError::NotOurs) => {
                return Err(SidecarError::ForeignRecords(format!("{txt_key} exists without ecssd's marker")));
            }
            // Ours but unreadable: replace it; SRV records it listed cannot be found by name.
            Err(OwnershipError::Malformed(problem)) => {
                tracing::warn!(record = %txt_key, %problem, "replacing a malformed ownership record");
                Vec::new()
            }
        };
        current.insert(txt);
        let a_key = key(address_name(&self.model.domain, &self.task), RecordType::A, None);
        for key in std::iter::once(a_key).chain(srv_keys) {
            if let Some(record) = self.store.read(&key).await? {
                current.insert(record);
            }
        }
        Ok(current)
    }
}

fn key(name: String, record_type: RecordType, set_identifier: Option<String>) -> RecordKey {
    RecordKey { name, record_type, set_identifier }
}

#[cfg(test)]
mod tests {
    use ecssd_records::memory::MemoryZone;
    use ecssd_records::{OwnerId, Record};

    use super::*;

    fn registrar(zone: MemoryZone) -> Registrar<MemoryZone> {
        let model = ZoneModel { domain: "sd.internal".parse().unwrap(), owner: OwnerId::default(), ttl: 10 };
        let task = "arn:aws:ecs:us-east-1:1:task/c/t1".parse().unwrap();
        Registrar::new(zone, model, task, "c".into(), Ipv4Addr::new(10, 0, 0, 1))
    }

    fn web(port: u16) -> Endpoint {
        Endpoint {
            container: "web".into(),
            container_port: 80,
            service: "_web._tcp".parse().unwrap(),
            reachable_port: port,
        }
    }

    fn calls(registrar: &Registrar<MemoryZone>) -> Vec<&'static str> {
        registrar.store().take_calls()
    }

    #[tokio::test]
    async fn a_task_lifetime_costs_one_call_to_register_and_one_to_withdraw() {
        let mut registrar = registrar(MemoryZone::default());
        let done = registrar.converge(vec![web(32768)]).await.unwrap();
        assert_eq!(done, Converged { changes: 3, requests: 1 });
        assert_eq!(registrar.converge(vec![web(32768)]).await.unwrap().requests, 0, "no change, no call");
        registrar.withdraw().await.unwrap();
        assert_eq!(calls(&registrar), ["change", "change"]);
        assert!(registrar.store().records().is_empty());
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

    #[tokio::test]
    async fn a_restart_with_nothing_to_publish_still_withdraws_leftovers() {
        let mut first = registrar(MemoryZone::default());
        first.converge(vec![web(1000)]).await.unwrap();
        let mut second = registrar(std::mem::take(&mut first.store));
        second.invalidate();
        second.converge(vec![]).await.unwrap();
        assert!(second.store().records().is_empty());
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
