//! The Route53 adapter: the only code that talks to Route53. It finds the zone, reads record sets
//! (paginated, with a guard against pages that make no progress), and applies change batches, retrying
//! transient failures per [`RetryPolicy`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::pace::Pacer;
use crate::retry::{CallCounter, call_with_retry};
use crate::route53_errors::{
    CHANGE_RESOURCE_RECORD_SETS, GET_HOSTED_ZONE, LIST_HOSTED_ZONES_BY_NAME, LIST_RESOURCE_RECORD_SETS,
};
use ecssd_records::{
    Action, CallError, Change, Domain, Record, RecordKey, RecordStore, RecordType, RetryPolicy, Soa, SoaStore,
};

/// Route53's largest page for ListResourceRecordSets.
const PAGE_SIZE: i32 = 300;

/// A Route53 client for use with this adapter: our retries, each attempt bounded by 20 s.
pub fn client(sdk: &aws_types::SdkConfig) -> Client {
    Client::new(&crate::sdk::for_our_retries(sdk, Duration::from_secs(20)))
}

/// One private hosted zone, ready to read and change.
#[derive(Debug, Clone)]
pub struct Route53Zone {
    client: Client,
    /// The zone's id without the `/hostedzone/` prefix.
    zone_id: String,
    /// The zone's domain; every record ecssd writes lies below it.
    domain: Domain,
    retry: RetryPolicy,
    /// ListResourceRecordSets page size: Route53's maximum, smaller only to exercise paging in tests.
    page_size: i32,
    /// Shared so clones of the adapter count into one report.
    calls: Arc<CallCounter>,
    /// Spaces this adapter's requests (the sweeper's share of the account's rate); none by default.
    pacer: Option<Arc<Pacer>>,
}

impl Route53Zone {
    /// Finds the one private hosted zone named `domain`. None, or several (private zones may share a
    /// name across VPCs), is a permanent error that asks for the zone id instead.
    pub async fn find(client: Client, domain: Domain, retry: RetryPolicy) -> Result<Self, CallError> {
        let calls = Arc::new(CallCounter::default());
        let mut matches = Vec::new();
        let mut next: Option<(String, Option<String>)> = Some((domain.fqdn().to_owned(), None));
        while let Some((dns_name, zone_id)) = next.take() {
            let page = call_with_retry(&retry, &calls, &LIST_HOSTED_ZONES_BY_NAME, || {
                client
                    .list_hosted_zones_by_name()
                    .dns_name(&dns_name)
                    .set_hosted_zone_id(zone_id.clone())
                    .send()
            })
            .await?;
            let mut past_domain = false;
            for zone in page.hosted_zones() {
                if !zone.name().eq_ignore_ascii_case(domain.fqdn()) {
                    past_domain = true;
                    break;
                }
                if zone.config().is_some_and(|c| c.private_zone()) {
                    matches.push(zone.id().trim_start_matches("/hostedzone/").to_owned());
                }
            }
            if page.is_truncated() && !past_domain {
                let progressed = page.next_dns_name() != Some(dns_name.as_str())
                    || page.next_hosted_zone_id() != zone_id.as_deref();
                if !progressed {
                    return Err(no_progress("ListHostedZonesByName", &dns_name));
                }
                next = page
                    .next_dns_name()
                    .map(|n| (n.to_owned(), page.next_hosted_zone_id().map(String::from)));
            }
        }
        match matches.as_slice() {
            [zone_id] => Ok(Self {
                client,
                zone_id: zone_id.clone(),
                domain,
                retry,
                page_size: PAGE_SIZE,
                calls,
                pacer: None,
            }),
            [] => Err(CallError::Permanent {
                operation: "ListHostedZonesByName",
                detail: format!("no private hosted zone is named {domain}: create one, or give its zone id"),
            }),
            several => Err(CallError::Permanent {
                operation: "ListHostedZonesByName",
                detail: format!(
                    "{} private hosted zones are named {domain} ({}): give the zone id",
                    several.len(),
                    several.join(", ")
                ),
            }),
        }
    }

    /// Uses the zone with this id, learning its domain from Route53 (which also proves it exists).
    pub async fn with_id(client: Client, zone_id: &str, retry: RetryPolicy) -> Result<Self, CallError> {
        let calls = Arc::new(CallCounter::default());
        let zone_id = zone_id.trim_start_matches("/hostedzone/").to_owned();
        let found = call_with_retry(&retry, &calls, &GET_HOSTED_ZONE, || {
            client.get_hosted_zone().id(&zone_id).send()
        })
        .await?;
        let name = found.hosted_zone().map(|z| z.name()).unwrap_or_default();
        let domain = name
            .parse()
            .map_err(|e| CallError::Permanent { operation: "GetHostedZone", detail: format!("{e}") })?;
        Ok(Self { client, zone_id, domain, retry, page_size: PAGE_SIZE, calls, pacer: None })
    }

    /// Paces every request (retries included) of this adapter and its clones by `pacer`, which slows
    /// down while Route53 throttles them.
    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = Some(Arc::new(pacer));
        self
    }

    /// Waits for this request's turn when the adapter is paced, and tells the pacer how it went.
    async fn paced<T, E: ProvideErrorMetadata>(
        &self,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, SdkError<E, HttpResponse>> {
        crate::pace::paced(self.pacer.as_deref(), request).await
    }

    /// Reads whole-zone listings in pages of `page_size` (1 to 300) instead of 300.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size.clamp(1, PAGE_SIZE);
        self
    }

    /// Uses the zone with this id and domain without asking Route53 (saving a call at every start); a
    /// wrong id or domain surfaces as a clear error on the first change.
    pub fn for_id(client: Client, zone_id: &str, domain: Domain, retry: RetryPolicy) -> Self {
        let zone_id = zone_id.trim_start_matches("/hostedzone/").to_owned();
        Self { client, zone_id, domain, retry, page_size: PAGE_SIZE, calls: Arc::default(), pacer: None }
    }

    /// The same zone (and call counts) under another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn zone_id(&self) -> &str {
        &self.zone_id
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Route53 calls made so far through this adapter (and its clones), per operation.
    pub fn calls(&self) -> &CallCounter {
        &self.calls
    }

    /// One ChangeResourceRecordSets request, retried and paced like every call.
    async fn send(&self, batch: ChangeBatch) -> Result<(), CallError> {
        call_with_retry(&self.retry, &self.calls, &CHANGE_RESOURCE_RECORD_SETS, || {
            self.paced(
                self.client
                    .change_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .change_batch(batch.clone())
                    .send(),
            )
        })
        .await?;
        Ok(())
    }

    /// One ListResourceRecordSets page starting at `start` (name, type, set identifier).
    async fn page(
        &self,
        start: &(String, Option<RrType>, Option<String>),
        max_items: i32,
    ) -> Result<aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsOutput, CallError>
    {
        call_with_retry(&self.retry, &self.calls, &LIST_RESOURCE_RECORD_SETS, || {
            self.paced(
                self.client
                    .list_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .start_record_name(&start.0)
                    .set_start_record_type(start.1.clone())
                    .set_start_record_identifier(start.2.clone())
                    .max_items(max_items)
                    .send(),
            )
        })
        .await
    }
}

impl RecordStore for Route53Zone {
    async fn read(&self, key: &RecordKey) -> Result<Option<Record>, CallError> {
        let start =
            (key.name.clone(), Some(RrType::from(key.record_type.as_str())), key.set_identifier.clone());
        let page = self.page(&start, 1).await?;
        Ok(page.resource_record_sets().first().and_then(from_sdk).filter(|record| record.key == *key))
    }

    /// One ListResourceRecordSets page of two, from `name`'s A record set on: "sorted by name, and
    /// then ... by the record type" (API reference, ListResourceRecordSets), so A and AAAA come
    /// first when the name has them.
    async fn read_addresses(&self, name: &str) -> Result<Vec<Record>, CallError> {
        let page = self.page(&(name.to_owned(), Some(RrType::A), None), 2).await?;
        let name = name.to_ascii_lowercase();
        let address = |r: &Record| ecssd_records::provider::is_address_at(&r.key, &name);
        Ok(page.resource_record_sets().iter().filter_map(from_sdk).filter(address).collect())
    }

    async fn list_all(&self) -> Result<Vec<Record>, CallError> {
        let mut records = Vec::new();
        let mut start = (self.domain.fqdn().to_owned(), None, None);
        let mut seen_starts = HashSet::new();
        loop {
            let page = self.page(&start, self.page_size).await?;
            records.extend(page.resource_record_sets().iter().filter_map(from_sdk));
            if !page.is_truncated() {
                return Ok(records);
            }
            seen_starts.insert(start.clone());
            start = (
                page.next_record_name().unwrap_or_default().to_owned(),
                page.next_record_type().cloned(),
                page.next_record_identifier().map(String::from),
            );
            // A page whose "next" points back at a page already read would loop forever.
            if seen_starts.contains(&start) || page.resource_record_sets().is_empty() {
                return Err(no_progress("ListResourceRecordSets", &start.0));
            }
        }
    }

    async fn apply(&self, changes: &[Change]) -> Result<(), CallError> {
        if changes.is_empty() {
            return Ok(());
        }
        let batch =
            ChangeBatch::builder().set_changes(Some(changes.iter().map(to_sdk).collect())).build().map_err(
                |e| CallError::Permanent { operation: "ChangeResourceRecordSets", detail: e.to_string() },
            )?;
        self.send(batch).await
    }
}

impl SoaStore for Route53Zone {
    async fn read_soa(&self) -> Result<Soa, CallError> {
        let start = (self.domain.fqdn().to_owned(), Some(RrType::Soa), None);
        let page = self.page(&start, 1).await?;
        let not_found = || CallError::NotFound {
            operation: "ListResourceRecordSets",
            detail: format!("no SOA record at {} in zone {}", self.domain.fqdn(), self.zone_id),
        };
        let set = page.resource_record_sets().first().ok_or_else(not_found)?;
        if set.r#type() != &RrType::Soa || !set.name().eq_ignore_ascii_case(self.domain.fqdn()) {
            return Err(not_found());
        }
        let malformed =
            |problem: String| CallError::Permanent { operation: "ListResourceRecordSets", detail: problem };
        let value = match set.resource_records() {
            [one] => one.value(),
            other => return Err(malformed(format!("the SOA record has {} values, expected 1", other.len()))),
        };
        let ttl = set.ttl().and_then(|ttl| u32::try_from(ttl).ok());
        let ttl =
            ttl.ok_or_else(|| malformed(format!("the SOA record's TTL {:?} is not 0 to 2^32-1", set.ttl())))?;
        Soa::parse(ttl, value).map_err(|e| malformed(e.to_string()))
    }

    async fn write_soa(&self, soa: &Soa) -> Result<(), CallError> {
        let set = ResourceRecordSet::builder()
            .name(self.domain.fqdn())
            .r#type(RrType::Soa)
            .ttl(i64::from(soa.ttl))
            .resource_records(ResourceRecord::builder().value(soa.value()).build().expect("value is set"))
            .build()
            .expect("name and type are set");
        let upsert = SdkChange::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set)
            .build()
            .expect("action and set are set");
        let batch = ChangeBatch::builder().changes(upsert).build().expect("one change");
        self.send(batch).await
    }
}

fn no_progress(operation: &'static str, at: &str) -> CallError {
    CallError::Permanent {
        operation,
        detail: format!("pagination made no progress at {at:?}; stopped instead of looping"),
    }
}

/// Converts a Route53 record set into ours, or `None` for shapes ecssd never writes (other types,
/// aliases, weighted/latency/failover/geo routing): those are someone else's.
fn from_sdk(set: &ResourceRecordSet) -> Option<Record> {
    let record_type = RecordType::from_route53(set.r#type().as_str())?;
    let foreign_routing = set.alias_target().is_some()
        || set.weight().is_some()
        || set.region().is_some()
        || set.failover().is_some()
        || set.geo_location().is_some()
        || set.cidr_routing_config().is_some()
        || set.geo_proximity_location().is_some()
        || set.set_identifier().is_some() != set.multi_value_answer().unwrap_or(false);
    if foreign_routing || set.resource_records().is_empty() {
        return None;
    }
    let key = RecordKey {
        name: set.name().to_ascii_lowercase(),
        record_type,
        set_identifier: set.set_identifier().map(String::from),
    };
    let ttl = u32::try_from(set.ttl()?).ok()?;
    Some(Record::new(key, ttl, set.resource_records().iter().map(|r| r.value().to_owned()).collect()))
}

fn to_sdk(change: &Change) -> SdkChange {
    let record = &change.record;
    let values =
        record.values().iter().map(|v| ResourceRecord::builder().value(v).build().expect("value is set"));
    let set = ResourceRecordSet::builder()
        .name(&record.key.name)
        .r#type(RrType::from(record.key.record_type.as_str()))
        .ttl(i64::from(record.ttl))
        .set_set_identifier(record.key.set_identifier.clone())
        .set_multi_value_answer(record.is_multivalue().then_some(true))
        .set_resource_records(Some(values.collect()))
        .build()
        .expect("name and type are set");
    let action = match change.action {
        Action::Create => ChangeAction::Create,
        Action::Delete => ChangeAction::Delete,
    };
    SdkChange::builder().action(action).resource_record_set(set).build().expect("action and set are set")
}
