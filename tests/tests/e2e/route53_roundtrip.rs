//! The shared Route53 adapter against moto: a task's records are registered in one batch, read back
//! exactly (targeted reads and paginated listing), and withdrawn atomically; foreign records are never
//! touched; stale plans are rejected; throttling and 5xx are ridden out.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use ecssd_edge::Route53Zone;
use ecssd_records::{
    BatchLimits, CallError, Endpoint, OwnerId, RecordSet, RecordStore, RecordType, RetryPolicy, Soa,
    SoaStore, TaskRegistration, ZoneModel, batches, desired, plan, withdraw,
};
use ecssd_tests::moto::Moto;

const DOMAIN: &str = "servicediscovery.internal";

fn model() -> ZoneModel {
    ZoneModel { domain: DOMAIN.parse().unwrap(), owner: OwnerId::default(), ttl: 10 }
}

fn task(n: u32, endpoints: &[(&str, u16, &str, u16)]) -> TaskRegistration {
    TaskRegistration {
        cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/demo".into(),
        task: format!("arn:aws:ecs:us-east-1:123456789012:task/demo/{n:032x}").parse().unwrap(),
        addresses: Ipv4Addr::new(10, 0, (n / 250) as u8, (n % 250) as u8 + 1).into(),
        endpoints: endpoints
            .iter()
            .map(|(container, port, service, reachable)| Endpoint {
                container: (*container).into(),
                container_port: *port,
                service: service.parse().unwrap(),
                reachable_port: *reachable,
            })
            .collect(),
    }
}

async fn zone(moto: &Moto, retry: RetryPolicy) -> Route53Zone {
    moto.create_private_zone(DOMAIN).await.unwrap();
    let client = ecssd_edge::route53::client(&moto.sdk_config());
    Route53Zone::find(client, DOMAIN.parse().unwrap(), retry).await.unwrap()
}

/// Reads back exactly the keys of `wanted` with targeted reads.
async fn read_back(zone: &Route53Zone, wanted: &RecordSet) -> RecordSet {
    let mut found = RecordSet::new();
    for record in wanted.iter() {
        if let Some(record) = zone.read(&record.key).await.unwrap() {
            found.insert(record);
        }
    }
    found
}

/// Adds records ecssd does not own: a plain A, a TXT, an SRV without ecssd's set identifier.
async fn add_foreign_records(moto: &Moto, zone_id: &str) {
    let client = aws_sdk_route53::Client::new(&moto.sdk_config());
    let set = |name: &str, kind: RrType, value: &str| {
        let record = ResourceRecord::builder().value(value).build().unwrap();
        let set = ResourceRecordSet::builder()
            .name(format!("{name}.{DOMAIN}."))
            .r#type(kind)
            .ttl(300)
            .resource_records(record)
            .build()
            .unwrap();
        SdkChange::builder().action(ChangeAction::Create).resource_record_set(set).build().unwrap()
    };
    let changes = vec![
        set("db", RrType::A, "10.9.9.9"),
        set("_ecssd.fake", RrType::Txt, "\"v=spf1 -all\""),
        set("_legacy._tcp", RrType::Srv, "1 1 5432 db.servicediscovery.internal"),
        set("www", RrType::Cname, "example.com"),
    ];
    let batch = ChangeBatch::builder().set_changes(Some(changes)).build().unwrap();
    client.change_resource_record_sets().hosted_zone_id(zone_id).change_batch(batch).send().await.unwrap();
}

#[tokio::test]
async fn register_list_and_withdraw_a_task_atomically() {
    let moto = Moto::start().await.unwrap();
    let zone = zone(&moto, RetryPolicy::default()).await.with_page_size(2);
    add_foreign_records(&moto, zone.zone_id()).await;
    let foreign_before = zone.list_all().await.unwrap();
    // This test counts requests; the zone's one-change-at-a-time processing, and retrying it, are
    // proven by the fidelity tests and by the concurrent registrations below.
    moto.set_change_processing(Duration::ZERO).await.unwrap();

    let task = task(1, &[("web", 80, "_web._tcp", 32768), ("calc", 8080, "_calc._tcp", 32769)]);
    let wanted = desired(&model(), &task).records;
    let changes = plan(&wanted, &read_back(&zone, &wanted).await);
    let requests = batches([changes], BatchLimits::default());
    assert_eq!(requests.len(), 1, "one task, one atomic request");
    let before = zone.calls().snapshot().get("ChangeResourceRecordSets").copied().unwrap_or(0);
    zone.apply(&requests[0]).await.unwrap();
    assert_eq!(zone.calls().snapshot()["ChangeResourceRecordSets"] - before, 1);

    assert_eq!(read_back(&zone, &wanted).await, wanted, "targeted reads return exactly what was planned");
    let listed: RecordSet =
        zone.list_all().await.unwrap().into_iter().filter(|r| wanted.get(&r.key).is_some()).collect();
    assert_eq!(listed, wanted, "the paginated listing (pages of 2) returns every record once");
    assert!(plan(&wanted, &read_back(&zone, &wanted).await).is_empty(), "converged: nothing left to do");

    zone.apply(&withdraw(&wanted)).await.unwrap();
    assert!(read_back(&zone, &wanted).await.is_empty(), "withdrawn whole");
    assert_eq!(zone.list_all().await.unwrap(), foreign_before, "foreign records untouched");
}

#[tokio::test]
async fn the_zones_soa_caches_absence_for_15_minutes_until_its_negative_ttl_is_shortened() {
    let moto = Moto::start().await.unwrap();
    let zone = zone(&moto, RetryPolicy::default()).await;
    assert!(zone.list_all().await.unwrap().is_empty(), "a new zone holds only its SOA and NS, not ecssd's");
    // Route53 creates the SOA with TTL 900 and MINIMUM 86400: absence is cached for the lesser, 900 s.
    let soa = zone.read_soa().await.unwrap();
    assert_eq!((soa.ttl, soa.minimum, soa.negative_ttl()), (900, 86_400, 900), "{soa}");
    // Records of others around it change nothing of it (and, changed just now, the zone may still be
    // processing them when the SOA is written: a retried PriorRequestNotComplete).
    add_foreign_records(&moto, zone.zone_id()).await;
    zone.write_soa(&soa.with_negative_ttl(10).unwrap()).await.unwrap();
    let short = zone.read_soa().await.unwrap();
    assert_eq!((short.ttl, short.minimum, short.negative_ttl()), (10, 10, 10), "{short}");
    assert_eq!(short, Soa { ttl: 10, minimum: 10, ..soa }, "every other field as it was");
    // ecssd's own listing never includes the zone's SOA or NS: nothing at the apex, only others' records.
    let listed = zone.list_all().await.unwrap();
    let mut keys: Vec<_> = listed.iter().map(|r| format!("{} {}", r.key.name, r.key.record_type)).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "_ecssd.fake.servicediscovery.internal. TXT",
            "_legacy._tcp.servicediscovery.internal. SRV",
            "db.servicediscovery.internal. A",
        ]
    );
}

#[tokio::test]
async fn a_stale_plan_is_a_conflict_and_changes_nothing() {
    let moto = Moto::start().await.unwrap();
    let zone = zone(&moto, RetryPolicy::default()).await;
    let first = desired(&model(), &task(1, &[("web", 80, "_web._tcp", 32768)])).records;
    zone.apply(&plan(&first, &RecordSet::new())).await.unwrap();
    // A plan made before the first registration landed: it tries to CREATE what now exists.
    let moved = desired(&model(), &task(1, &[("web", 80, "_web._tcp", 40000)])).records;
    let err = zone.apply(&plan(&moved, &RecordSet::new())).await.unwrap_err();
    assert!(matches!(err, CallError::Conflict { .. }), "{err}");
    assert_eq!(read_back(&zone, &first).await, first, "the rejected batch changed nothing");
    // Re-planning from a fresh read converges.
    zone.apply(&plan(&moved, &read_back(&zone, &moved).await)).await.unwrap();
    assert_eq!(read_back(&zone, &moved).await, moved);
}

#[tokio::test]
async fn a_request_route53_can_never_accept_is_permanent_with_route53s_message_not_a_conflict() {
    let moto = Moto::start().await.unwrap();
    let zone = zone(&moto, RetryPolicy::default()).await;
    // Route53 holds at most 100 multivalue records with one name and type: 100 tasks fill `_web._tcp`.
    let registrations: Vec<_> =
        (0..100).map(|n| desired(&model(), &task(n, &[("web", 80, "_web._tcp", 30000)])).records).collect();
    for chunk in batches(registrations.iter().map(|r| plan(r, &RecordSet::new())), BatchLimits::default()) {
        zone.apply(&chunk).await.unwrap();
    }
    let extra = desired(&model(), &task(100, &[("web", 80, "_web._tcp", 30000)])).records;
    let err = zone.apply(&plan(&extra, &RecordSet::new())).await.unwrap_err();
    let CallError::Permanent { operation, detail } = &err else {
        panic!("expected a permanent error: {err}")
    };
    assert_eq!(*operation, "ChangeResourceRecordSets");
    assert!(
        detail.contains("InvalidChangeBatch") && detail.contains("Exceeded limit on number of"),
        "{detail}"
    );
    assert!(read_back(&zone, &extra).await.is_empty(), "nothing of the 101st task applied");
}

#[tokio::test]
async fn a_missing_zone_is_a_clear_permanent_error() {
    let moto = Moto::start().await.unwrap();
    let client = ecssd_edge::route53::client(&moto.sdk_config());
    let err = Route53Zone::find(client.clone(), "nowhere.internal".parse().unwrap(), RetryPolicy::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no private hosted zone is named nowhere.internal"), "{err}");
    let err = Route53Zone::with_id(client, "ZNOSUCHZONE", RetryPolicy::default()).await.unwrap_err();
    assert!(matches!(err, CallError::NotFound { operation: "GetHostedZone", .. }), "{err}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_every_task_is_registered() {
    let moto = Moto::start().await.unwrap();
    let retry = RetryPolicy {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        give_up_after: Some(Duration::from_secs(60)),
    };
    let zone = zone(&moto, retry).await;
    moto.set_faults(serde_json::json!({"route53": {
        "rate_per_second": 5, "burst": 5,
        "errors": [[500, "InternalError"], [400, "PriorRequestNotComplete", "ChangeResourceRecordSets"], [503, "ServiceUnavailable"]],
    }}))
    .await
    .unwrap();
    let tasks: Vec<_> = (0..20).map(|n| task(n, &[("web", 80, "_web._tcp", 30000 + n as u16)])).collect();
    let registrations = tasks.iter().map(|t| {
        let zone = zone.clone();
        let wanted = desired(&model(), t).records;
        async move { zone.apply(&plan(&wanted, &RecordSet::new())).await }
    });
    for result in futures_util::future::join_all(registrations).await {
        result.unwrap();
    }
    moto.set_faults(serde_json::json!({"route53": {"rate_per_second": 0}})).await.unwrap();
    let records = zone.list_all().await.unwrap();
    let srv = records.iter().filter(|r| r.key.record_type == RecordType::Srv).count();
    assert_eq!(srv, 20, "every task registered exactly once");
    let stats = moto.stats().await.unwrap();
    let changes = &stats["route53"]["ChangeResourceRecordSets"];
    assert!(changes["throttled"].as_u64().unwrap() > 0, "the limit was hit: {stats}");
    assert_eq!(changes["failed"].as_u64().unwrap(), 3, "{stats}");
}
