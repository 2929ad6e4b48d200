//! One test's world: a fresh moto with the private zone, the Docker engine, and helpers to start
//! tasks (containers + metadata stand-ins) and read what the zone holds.

use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_route53::types::{Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};
use bollard::Docker;
use ecssd_edge::Route53Zone;
use ecssd_edge::retry::{CallCounter, call_with_retry};
use ecssd_edge::route53_errors::{CHANGE_RESOURCE_RECORD_SETS, LIST_RESOURCE_RECORD_SETS};
use ecssd_records::soa::{ROUTE53_DEFAULT_MINIMUM, ROUTE53_DEFAULT_TTL};
use ecssd_records::{
    CallError, Change, Domain, Record, RecordKey, RecordStore, RecordType, RetryPolicy, Soa, SoaStore,
};

use crate::dns::{LiveDns, ZoneContents};
use crate::docker::{self, ContainerSpec, Task};
use crate::ecs::PlacedTask;
use crate::metadata::{ClusterForm, LaunchType, MetadataConfig, MetadataServer, NetworkMode};
use crate::moto::Moto;
use crate::wait_for;

/// The zone's domain in every test.
pub const DOMAIN: &str = "servicediscovery.internal";

/// The stack's NegativeCacheTtl default, template.yaml; checked by the deployment test.
/// [`World::new`] gives its zone this negative-caching TTL (SOA TTL and MINIMUM), as the stack does
/// for a zone it creates.
pub const STACK_NEGATIVE_TTL: u32 = 10;

#[derive(Debug)]
pub struct World {
    pub moto: Moto,
    pub docker: Docker,
    /// Reads and changes the zone the way ecssd does (through the shared adapter), as an observer that
    /// injected faults do not slow down and stats do not count; follows [`World::recreate_zone`].
    pub zone: CurrentZone,
}

/// The world's zone as it is now: the adapter of the zone [`World::recreate_zone`] made last.
/// Reads and changes go to that zone ([`RecordStore`]); [`get`](Self::get) gives its adapter.
#[derive(Debug)]
pub struct CurrentZone(Mutex<Route53Zone>);

impl CurrentZone {
    /// The current zone's adapter (cheap: a clone shares the client).
    pub fn get(&self) -> Route53Zone {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The current zone's id, without `/hostedzone/`.
    pub fn zone_id(&self) -> String {
        self.get().zone_id().to_owned()
    }

    pub fn domain(&self) -> Domain {
        self.get().domain().clone()
    }

    fn replace(&self, zone: Route53Zone) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = zone;
    }
}

impl RecordStore for CurrentZone {
    async fn read(&self, key: &RecordKey) -> Result<Option<Record>, CallError> {
        self.get().read(key).await
    }

    async fn list_all(&self) -> Result<Vec<Record>, CallError> {
        self.get().list_all().await
    }

    async fn apply(&self, changes: &[Change]) -> Result<(), CallError> {
        self.get().apply(changes).await
    }
}

impl SoaStore for CurrentZone {
    async fn read_soa(&self) -> Result<Soa, CallError> {
        self.get().read_soa().await
    }

    async fn write_soa(&self, soa: &Soa) -> Result<(), CallError> {
        self.get().write_soa(soa).await
    }
}

/// The private zone named `domain`, or `None` when there is none (as between a zone's deletion and
/// its successor's creation).
pub(crate) async fn find_zone(
    client: &aws_sdk_route53::Client,
    domain: &Domain,
) -> anyhow::Result<Option<Route53Zone>> {
    match Route53Zone::find(client.clone(), domain.clone(), RetryPolicy::default()).await {
        Ok(zone) => Ok(Some(zone)),
        // find fails alike for none and for several: ask which.
        Err(e) => {
            let listed = client.list_hosted_zones_by_name().dns_name(domain.fqdn()).send().await?;
            let named = listed.hosted_zones().iter().any(|z| {
                z.name().eq_ignore_ascii_case(domain.fqdn()) && z.config().is_some_and(|c| c.private_zone())
            });
            if named { Err(e.into()) } else { Ok(None) }
        }
    }
}

/// A started task: its containers and the metadata endpoint its sidecar reads.
#[derive(Debug)]
pub struct RunningTask {
    pub task: Task,
    pub metadata: MetadataServer,
}

impl World {
    /// A fresh moto with the private zone as the stack creates it: negative caching of
    /// [`STACK_NEGATIVE_TTL`] seconds.
    pub async fn new() -> anyhow::Result<Self> {
        let moto = Moto::start().await?;
        moto.create_private_zone(DOMAIN).await?;
        let docker = docker::connect().await?;
        docker::remove_leftovers(&docker).await?;
        let client = ecssd_edge::route53::client(&moto.observer_sdk_config());
        let zone = Route53Zone::find(client, DOMAIN.parse()?, RetryPolicy::default()).await?;
        let world = Self { moto, docker, zone: CurrentZone(Mutex::new(zone)) };
        world.set_negative_ttl(STACK_NEGATIVE_TTL).await?;
        Ok(world)
    }

    /// Makes resolvers cache an absence in the zone for `seconds`: SOA TTL and MINIMUM both (what the
    /// stack's NegativeCacheTtl does), the other fields kept; no request when already so.
    pub async fn set_negative_ttl(&self, seconds: u32) -> anyhow::Result<()> {
        let soa = self.zone.read_soa().await?;
        if let Some(wanted) = soa.with_negative_ttl(seconds) {
            self.zone.write_soa(&wanted).await?;
        }
        Ok(())
    }

    /// Gives the zone back the SOA TTL and MINIMUM Route53 creates zones with (900 and 86400: absences
    /// cached for 15 minutes), as for a zone the stack does not own.
    pub async fn restore_route53_negative_caching(&self) -> anyhow::Result<()> {
        let soa = self.zone.read_soa().await?;
        let route53 = Soa { ttl: ROUTE53_DEFAULT_TTL, minimum: ROUTE53_DEFAULT_MINIMUM, ..soa.clone() };
        if route53 != soa {
            self.zone.write_soa(&route53).await?;
        }
        Ok(())
    }

    /// What the zone holds now, records and SOA, as an authoritative server answers from it.
    pub async fn zone_contents(&self) -> anyhow::Result<ZoneContents> {
        Ok(ZoneContents { records: self.zone.list_all().await?, soa: self.zone.read_soa().await? })
    }

    /// A Route53 client of the observer (not slowed by faults, not counted), without SDK retries.
    pub fn observer_client(&self) -> aws_sdk_route53::Client {
        ecssd_edge::route53::client(&self.moto.observer_sdk_config())
    }

    /// DNS on loopback for whatever zone is named [`DOMAIN`], re-read when Route53 changes: its
    /// authority and a caching resolver in front (see [`LiveDns`]); stops when the value is dropped.
    pub async fn serve_dns(&self) -> anyhow::Result<LiveDns> {
        LiveDns::follow(self.observer_client(), self.moto.endpoint()).await
    }

    /// As [`serve_dns`](Self::serve_dns), with the zone's servers showing each change `propagation`
    /// after Route53's API accepted it (see [`LiveDns::follow_after`]).
    pub async fn serve_dns_after(&self, propagation: std::time::Duration) -> anyhow::Result<LiveDns> {
        LiveDns::follow_after(self.observer_client(), self.moto.endpoint(), propagation).await
    }

    /// Replaces the zone with a new, empty private zone of the same domain (a new zone id), as an
    /// operator who deletes and recreates it does: its records (all but NS and SOA, whatever their
    /// shape) are deleted, then the zone; the new zone gets the stack's negative caching, as
    /// [`World::new`]'s. [`World::zone`] and the readers here use the new one.
    pub async fn recreate_zone(&self) -> anyhow::Result<()> {
        let client = self.observer_client();
        let old = self.zone.get();
        // A sidecar may write between our listing and the zone's deletion: empty it again then.
        let mut attempt = 1;
        loop {
            let emptied = match delete_all_records(&client, &old).await {
                Ok(()) => client.delete_hosted_zone().id(old.zone_id()).send().await.map(drop).map_err(|e| {
                    let not_empty = e.as_service_error().is_some_and(|e| e.is_hosted_zone_not_empty());
                    (not_empty, anyhow::Error::from(e).context("deleting the hosted zone"))
                }),
                Err(e) => Err((matches!(e, CallError::Conflict { .. }), e.into())),
            };
            match emptied {
                Ok(()) => break,
                Err((true, _)) if attempt < 10 => attempt += 1,
                Err((_, e)) => return Err(e),
            }
        }
        self.moto.create_private_zone(&old.domain().to_string()).await?;
        let zone = Route53Zone::find(client, old.domain().clone(), RetryPolicy::default()).await?;
        self.zone.replace(zone);
        self.set_negative_ttl(STACK_NEGATIVE_TTL).await
    }

    /// Deletes exactly these records (with the values the zone holds for them now), as someone
    /// deleting a task's records behind its sidecar's back; each must exist.
    pub async fn delete_records(&self, keys: &[RecordKey]) -> anyhow::Result<()> {
        // A sidecar changing one of them between our read and delete makes a stale view: read again.
        let mut attempt = 1;
        loop {
            let mut changes = Vec::new();
            for key in keys {
                let record =
                    self.zone.read(key).await?.with_context(|| format!("no record {key} to delete"))?;
                changes.push(Change::delete(record));
            }
            match self.zone.apply(&changes).await {
                Ok(()) => return Ok(()),
                Err(CallError::Conflict { .. }) if attempt < 5 => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Starts a bridge-mode task with these containers, plus its metadata stand-ins.
    pub async fn task(&self, cluster: &str, specs: &[ContainerSpec]) -> anyhow::Result<RunningTask> {
        self.task_in_mode(cluster, specs, NetworkMode::Bridge).await
    }

    pub async fn task_in_mode(
        &self,
        cluster: &str,
        specs: &[ContainerSpec],
        network_mode: NetworkMode,
    ) -> anyhow::Result<RunningTask> {
        let task = Task::start(&self.docker, cluster, specs).await?;
        self.with_metadata(task, network_mode).await
    }

    /// Starts the containers of a task ECS (moto) placed, plus its metadata stand-ins.
    pub async fn placed_task(
        &self,
        placed: &PlacedTask,
        specs: &[ContainerSpec],
        network_mode: NetworkMode,
    ) -> anyhow::Result<RunningTask> {
        let task = Task::start_as(&self.docker, &placed.cluster_arn, &placed.task_arn, specs).await?;
        self.with_metadata(task, network_mode).await
    }

    /// Starts a task on Fargate with these containers, plus its task metadata stand-in: awsvpc with
    /// the ENI address `eni`, metadata in Fargate's shape (see [`LaunchType::Fargate`]).
    pub async fn fargate_task(
        &self,
        cluster: &str,
        specs: &[ContainerSpec],
        eni: Ipv4Addr,
    ) -> anyhow::Result<RunningTask> {
        let task = Task::start(&self.docker, cluster, specs).await?;
        self.with_metadata_of(task, LaunchType::Fargate, NetworkMode::Awsvpc(eni.into())).await
    }

    async fn with_metadata(&self, task: Task, network_mode: NetworkMode) -> anyhow::Result<RunningTask> {
        self.with_metadata_of(task, LaunchType::Ec2, network_mode).await
    }

    async fn with_metadata_of(
        &self,
        task: Task,
        launch_type: LaunchType,
        network_mode: NetworkMode,
    ) -> anyhow::Result<RunningTask> {
        let config = MetadataConfig {
            task_arn: task.task_arn.clone(),
            cluster_arn: task.cluster_arn.clone(),
            // The stricter of the two forms ECS documents: the sidecar must derive the ARN itself
            // (Fargate gives the ARN whatever this says).
            cluster_form: ClusterForm::ShortName,
            network_mode,
            host_ip: Ipv4Addr::LOCALHOST,
            instance_id: "i-0ecssd0000000000".into(),
            launch_type,
        };
        let metadata = MetadataServer::start(self.docker.clone(), config).await?;
        Ok(RunningTask { task, metadata })
    }

    /// Every A, SRV and TXT record in the zone.
    pub async fn records(&self) -> anyhow::Result<Vec<Record>> {
        Ok(self.zone.list_all().await?)
    }

    /// The SRV values of `_service._tcp.<domain>`, sorted.
    pub async fn srv_values(&self, service: &str) -> anyhow::Result<Vec<String>> {
        self.srv_values_of(&[service]).await
    }

    /// The SRV values of all these services together, sorted, from one zone listing.
    pub async fn srv_values_of(&self, services: &[&str]) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = services.iter().map(|service| format!("{service}.{DOMAIN}.")).collect();
        let mut values: Vec<String> = self
            .records()
            .await?
            .into_iter()
            .filter(|r| r.key.record_type == RecordType::Srv && names.contains(&r.key.name))
            .flat_map(|r| r.values().to_vec())
            .collect();
        values.sort();
        Ok(values)
    }

    /// Waits until the zone holds exactly `count` targets for `service`; returns their values.
    pub async fn wait_for_targets(
        &self,
        service: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        wait_for(&format!("{count} targets of {service}"), timeout, || async {
            let values = self.srv_values(service).await?;
            Ok((values.len() == count).then_some(values))
        })
        .await
    }

    /// Waits until the task with this id has exactly `count` records, and returns them.
    pub async fn wait_for_task_records(
        &self,
        task_id: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Record>> {
        wait_for(&format!("{count} records of task {task_id}"), timeout, || async {
            let records = self.task_records(task_id).await?;
            Ok((records.len() == count).then_some(records))
        })
        .await
    }

    /// Records that belong to the task with this id (its A, ownership TXT and SRV targets).
    pub async fn task_records(&self, task_id: &str) -> anyhow::Result<Vec<Record>> {
        let needle = format!("{task_id}.{DOMAIN}");
        Ok(self
            .records()
            .await?
            .into_iter()
            .filter(|r| r.key.name.contains(task_id) || r.values().iter().any(|v| v.contains(&needle)))
            .collect())
    }
}

/// Deletes every record set of the zone but its apex NS and SOA (which Route53 deletes with the zone),
/// whatever their shape, in batches within Route53's per-request limits.
async fn delete_all_records(client: &aws_sdk_route53::Client, zone: &Route53Zone) -> Result<(), CallError> {
    let policy = RetryPolicy { give_up_after: Some(Duration::from_secs(30)), ..RetryPolicy::default() };
    let calls = CallCounter::default();
    let apex = zone.domain().fqdn();
    let mut doomed: Vec<ResourceRecordSet> = Vec::new();
    let mut start: Option<(String, Option<RrType>, Option<String>)> = None;
    loop {
        let page = call_with_retry(&policy, &calls, &LIST_RESOURCE_RECORD_SETS, || {
            client
                .list_resource_record_sets()
                .hosted_zone_id(zone.zone_id())
                .set_start_record_name(start.as_ref().map(|s| s.0.clone()))
                .set_start_record_type(start.as_ref().and_then(|s| s.1.clone()))
                .set_start_record_identifier(start.as_ref().and_then(|s| s.2.clone()))
                .send()
        })
        .await?;
        let apex_ns_soa = |set: &ResourceRecordSet| {
            set.name().eq_ignore_ascii_case(apex) && matches!(set.r#type(), RrType::Ns | RrType::Soa)
        };
        doomed.extend(page.resource_record_sets().iter().filter(|set| !apex_ns_soa(set)).cloned());
        match page.next_record_name() {
            Some(name) if page.is_truncated() => {
                start = Some((
                    name.to_owned(),
                    page.next_record_type().cloned(),
                    page.next_record_identifier().map(String::from),
                ));
            }
            _ => break,
        }
    }
    // 1,000 values and 32,000 value characters per request.
    let mut batches: Vec<Vec<SdkChange>> = vec![Vec::new()];
    let (mut values, mut chars) = (0, 0);
    for set in doomed {
        let set_values = set.resource_records().len();
        let set_chars: usize = set.resource_records().iter().map(|r| r.value().len()).sum();
        if values + set_values > 1000 || chars + set_chars > 32_000 {
            batches.push(Vec::new());
            (values, chars) = (0, 0);
        }
        (values, chars) = (values + set_values, chars + set_chars);
        let change = SdkChange::builder().action(ChangeAction::Delete).resource_record_set(set).build();
        let change =
            change.map_err(|e| CallError::Permanent { operation: "DeleteRecords", detail: e.to_string() })?;
        batches.last_mut().expect("starts with one batch").push(change);
    }
    for changes in batches.into_iter().filter(|b| !b.is_empty()) {
        let batch = ChangeBatch::builder().set_changes(Some(changes)).build();
        let batch =
            batch.map_err(|e| CallError::Permanent { operation: "DeleteRecords", detail: e.to_string() })?;
        // Retried: each batch arrives while Route53 still processes the previous one.
        call_with_retry(&policy, &calls, &CHANGE_RESOURCE_RECORD_SETS, || {
            client
                .change_resource_record_sets()
                .hosted_zone_id(zone.zone_id())
                .change_batch(batch.clone())
                .send()
        })
        .await?;
    }
    Ok(())
}
