#![allow(clippy::unwrap_used)]
//! Issue 30, the functions' side: the sweeper and the withdrawer with dual-stack and IPv6-only awsvpc
//! tasks, whose sidecars publish an AAAA record beside (or instead of) the A record. The tasks run in
//! moto subnets that address them as ECS does (tests/src/ecs.rs, `SubnetStack`); their IPv6 addresses
//! are unique local ones, only record values, except for the task served on `::1` for a health check.
//! Also the bed's two rules this needs, proven through the real SDK: ECS describes an awsvpc task's
//! addresses by its subnet in its containers' `networkInterfaces`, and Route53 refuses an A or AAAA
//! value of the wrong family.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use ecssd_records::{Record, RecordSet, RecordType, TaskAddresses};
use ecssd_tests::ecs::{AwsvpcSubnet, Host, PlacedTask, SubnetStack, registration_records, seed};
use ecssd_tests::moto::Moto;
use ecssd_tests::sweeper::{
    LambdaEmulator, SweepBed, foreign_records, invoke, mentions, sweep_once, task_ids,
};
use ecssd_tests::task_events::{batch_item_failures, sqs_batch, task_state_change};
use ecssd_tests::world::DOMAIN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The unique local blocks of the dual-stack and IPv6-only subnets: record values, never connected to.
const DUAL_STACK_BLOCK: &str = "fd00:ec55:1::/64";
const IPV6_ONLY_BLOCK: &str = "fd00:ec55:2::/64";

/// A cluster `c` with one loopback host, and a dual-stack and an IPv6-only subnet.
struct Network {
    host: Host,
    dual_stack: AwsvpcSubnet,
    ipv6_only: AwsvpcSubnet,
}

async fn network(setup: &SweepBed) -> Network {
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let dual_stack = setup.fleet.awsvpc_subnet(SubnetStack::DualStack(DUAL_STACK_BLOCK)).await.unwrap();
    let ipv6_only = setup.fleet.awsvpc_subnet(SubnetStack::Ipv6Only(IPV6_ONLY_BLOCK)).await.unwrap();
    Network { host, dual_stack, ipv6_only }
}

/// An awsvpc task in `subnet` publishing `_web._tcp` on port 80, its sidecar's records in the zone.
async fn registered(setup: &SweepBed, host: &Host, subnet: &AwsvpcSubnet) -> (PlacedTask, RecordSet) {
    let task = setup.fleet.start_awsvpc_task(host, subnet, 80, "_web._tcp").await.unwrap();
    let records = setup.fleet.awsvpc_records(&task, "_web._tcp", 80).await.unwrap();
    seed(&setup.zone, vec![records.clone()]).await.unwrap();
    (task, records)
}

fn types(records: &RecordSet) -> BTreeSet<RecordType> {
    records.iter().map(|r| r.key.record_type).collect()
}

/// ECS (corrected in the bed) gives an awsvpc task the addresses of its subnet's families, named by its
/// containers' `networkInterfaces` (API reference, "NetworkInterface"); an IPv6-only task's ENI
/// attachment has no `privateIPv4Address`; StartTask takes the task's `networkConfiguration`.
#[tokio::test]
async fn ecs_describes_an_awsvpc_tasks_addresses_by_its_subnet() {
    let setup = SweepBed::start().await.unwrap();
    let net = network(&setup).await;
    let ipv4_only = setup.fleet.awsvpc_subnet(SubnetStack::Ipv4).await.unwrap();
    let fleet = &setup.fleet;
    let start = |subnet| fleet.start_awsvpc_task(&net.host, subnet, 80, "_web._tcp");
    let (v4, dual, dual_too, v6) = (
        start(&ipv4_only).await.unwrap(),
        start(&net.dual_stack).await.unwrap(),
        start(&net.dual_stack).await.unwrap(),
        start(&net.ipv6_only).await.unwrap(),
    );
    assert!(matches!(fleet.eni_addresses(&v4).await.unwrap(), TaskAddresses::Ipv4(_)));
    let TaskAddresses::Dual(_, first) = fleet.eni_addresses(&dual).await.unwrap() else { panic!("dual") };
    let TaskAddresses::Dual(_, second) = fleet.eni_addresses(&dual_too).await.unwrap() else { panic!() };
    assert_eq!((first.to_string(), second.to_string()), ("fd00:ec55:1::1".into(), "fd00:ec55:1::2".into()));
    assert_eq!(
        fleet.eni_addresses(&v6).await.unwrap(),
        TaskAddresses::Ipv6("fd00:ec55:2::1".parse().unwrap())
    );

    let described = fleet.ecs.describe_tasks().cluster("c").tasks(&v6.task_arn).send().await.unwrap();
    let task = &described.tasks()[0];
    let attachment = &task.attachments()[0];
    assert_eq!(attachment.r#type(), Some("ElasticNetworkInterface"));
    let names: Vec<&str> = attachment.details().iter().filter_map(|d| d.name()).collect();
    assert!(names.contains(&"networkInterfaceId") && !names.contains(&"privateIPv4Address"), "{names:?}");
    let interface = &task.containers()[0].network_interfaces()[0];
    assert_eq!(interface.attachment_id(), attachment.id());
    assert_eq!((interface.private_ipv4_address(), interface.ipv6_address()), (None, Some("fd00:ec55:2::1")));
}

/// Route53 (corrected in the bed) refuses an A record whose value is not an IPv4 address and an AAAA
/// record whose value is not an IPv6 address (Developer Guide, "Supported DNS record types"), and keeps
/// an AAAA value as written.
#[tokio::test]
async fn route53_refuses_an_address_of_the_wrong_family() {
    let moto = Moto::start().await.unwrap();
    moto.set_change_processing(std::time::Duration::ZERO).await.unwrap();
    let zone = moto.create_private_zone(DOMAIN).await.unwrap();
    let client = ecssd_edge::route53::client(&moto.sdk_config());
    let change = |action, kind: RrType, value: &str| {
        let value = ResourceRecord::builder().value(value).build().unwrap();
        let set = ResourceRecordSet::builder()
            .name(format!("t.{DOMAIN}."))
            .r#type(kind)
            .ttl(10)
            .resource_records(value)
            .build()
            .unwrap();
        let change = Change::builder().action(action).resource_record_set(set).build().unwrap();
        client
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
            .send()
    };
    for (action, kind, value, family) in [
        (
            ChangeAction::Create,
            RrType::A,
            "fd00::1",
            "ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address)",
        ),
        (ChangeAction::Upsert, RrType::A, "t2.servicediscovery.internal", "ARRDATAIllegalIPv4Address"),
        (
            ChangeAction::Create,
            RrType::Aaaa,
            "10.0.0.1",
            "AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address)",
        ),
        (ChangeAction::Upsert, RrType::Aaaa, "fe80::1%eth0", "AAAARRDATAIllegalIPv6Address"),
    ] {
        let refused = change(action.clone(), kind.clone(), value).await.expect_err(value);
        let ChangeResourceRecordSetsError::InvalidChangeBatch(batch) = refused.into_service_error() else {
            panic!("{kind:?} {value}: not InvalidChangeBatch")
        };
        let message = batch.message().unwrap_or_default();
        assert!(
            message.contains(family) && message.contains(&format!("encountered with '{value}'")),
            "{message}"
        );
    }
    change(ChangeAction::Create, RrType::A, "10.0.0.1").await.unwrap();
    change(ChangeAction::Create, RrType::Aaaa, "FD00:0::1").await.unwrap();
    let listed = client.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    let aaaa = listed.resource_record_sets().iter().find(|r| r.r#type() == &RrType::Aaaa).unwrap();
    assert_eq!(aaaa.resource_records()[0].value(), "FD00:0::1", "kept as written");
}

/// A stopped dual-stack and a stopped IPv6-only task lose every record, AAAA included; running ones
/// keep theirs and agree with ECS (no disagreement: their AAAA records say what ECS says); an orphan
/// SRV of a dual-stack task goes with its A and AAAA records; a second sweep changes nothing.
#[tokio::test]
async fn the_sweeper_deletes_stopped_ipv6_tasks_records_and_keeps_running_ones() {
    let setup = SweepBed::start().await.unwrap();
    let net = network(&setup).await;
    let (dual, dual_records) = registered(&setup, &net.host, &net.dual_stack).await;
    let (_, v6_records) = registered(&setup, &net.host, &net.ipv6_only).await;
    let (stopped_dual, _) = registered(&setup, &net.host, &net.dual_stack).await;
    let (stopped_v6, _) = registered(&setup, &net.host, &net.ipv6_only).await;
    assert_eq!(
        types(&dual_records),
        BTreeSet::from([RecordType::A, RecordType::Aaaa, RecordType::Srv, RecordType::Txt])
    );
    assert_eq!(types(&v6_records), BTreeSet::from([RecordType::Aaaa, RecordType::Srv, RecordType::Txt]));
    // An orphan: a dual-stack task's SRV, A and AAAA records without their ownership record.
    let gone = PlacedTask {
        cluster_arn: dual.cluster_arn.clone(),
        task_arn: dual.task_arn.replace(dual.id(), &"1".repeat(32)),
    };
    let addresses = TaskAddresses::Dual("10.0.9.9".parse().unwrap(), "fd00:ec55:9::9".parse().unwrap());
    let endpoint = ecssd_records::Endpoint {
        container: "web".into(),
        container_port: 80,
        service: "_web._tcp".parse().unwrap(),
        reachable_port: 80,
    };
    let orphans: Vec<Record> = registration_records("default", &gone, addresses, vec![endpoint])
        .unwrap()
        .into_iter()
        .filter(|r| r.key.record_type != RecordType::Txt)
        .collect();
    assert_eq!(orphans.len(), 3);
    seed(&setup.zone, vec![orphans.iter().cloned().collect(), foreign_records().into_iter().collect()])
        .await
        .unwrap();
    setup.fleet.stop_task(&stopped_dual).await.unwrap();
    setup.fleet.stop_task(&stopped_v6).await.unwrap();
    let before = setup.records().await.unwrap();

    let sweep = sweep_once(&setup.env(&[]), &[]).await.unwrap();
    assert!(sweep.success, "{}", sweep.stderr);
    let report = &sweep.report;
    let mut stopped_ids = vec![stopped_dual.id().to_owned(), stopped_v6.id().to_owned()];
    stopped_ids.sort();
    assert_eq!(task_ids(&report["stale_tasks"]), stopped_ids, "{report:#}");
    assert_eq!(report["stale_records_deleted"], 4 + 3, "{report:#}");
    assert_eq!(report["orphans_deleted"], 3, "{report:#}");
    assert_eq!(report["disagreements"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["unknown"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let expected: Vec<Record> = before
        .iter()
        .filter(|r| !orphans.contains(r) && ![&stopped_dual, &stopped_v6].iter().any(|t| mentions(r, t)))
        .cloned()
        .collect();
    assert_eq!(setup.records().await.unwrap(), expected);
    assert!(setup.holds(&dual_records).await.unwrap() && setup.holds(&v6_records).await.unwrap());

    let again = sweep_once(&setup.env(&[]), &[]).await.unwrap();
    assert_eq!(
        (again.report["stale_records_deleted"].as_u64(), again.report["orphans_deleted"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(setup.records().await.unwrap(), expected);
}

/// An HTTP server on `[::1]` answering 200 to every request, counting them.
async fn ipv6_loopback_endpoint() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0; 2048];
            let _ = stream.read(&mut request).await;
            counted.fetch_add(1, Ordering::SeqCst);
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    });
    (address, hits)
}

/// An IPv6-only task is health-checked at its IPv6 address: its subnet's block is `::1/128`, so ECS
/// puts it on IPv6 loopback, where its endpoint answers at its container port.
#[tokio::test]
async fn the_sweeper_health_checks_an_ipv6_only_task_at_its_ipv6_address() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let loopback = setup.fleet.awsvpc_subnet(SubnetStack::Ipv6Only("::1/128")).await.unwrap();
    let (endpoint, hits) = ipv6_loopback_endpoint().await;
    let task = setup.fleet.start_awsvpc_task(&host, &loopback, endpoint.port(), "_web._tcp").await.unwrap();
    let records = setup.fleet.awsvpc_records(&task, "_web._tcp", endpoint.port()).await.unwrap();
    assert_eq!(setup.fleet.eni_addresses(&task).await.unwrap(), TaskAddresses::Ipv6(Ipv6Addr::LOCALHOST));
    seed(&setup.zone, vec![records.clone()]).await.unwrap();

    let env = setup.env(&[("ECSSD_HEALTH_CHECK", "true"), ("ECSSD_HEALTH_GRACE_SECONDS", "0")]);
    let sweep = sweep_once(&env, &[]).await.unwrap();
    assert!(sweep.success, "{}", sweep.stderr);
    let report = &sweep.report;
    assert_eq!(report["disagreements"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["endpoints_checked"], 1, "{report:#}");
    assert_eq!(report["unhealthy"], serde_json::json!([]), "{report:#}");
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "the endpoint on {} was never asked",
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    );
    assert!(setup.holds(&records).await.unwrap());
}

/// The withdrawer deletes a stopped dual-stack task's A and AAAA records and an IPv6-only task's AAAA
/// record with the rest; a running task's event (ECS does not confirm a stop) leaves its records.
#[tokio::test]
async fn the_withdrawer_withdraws_stopped_ipv6_tasks_aaaa_records() {
    let setup = SweepBed::start().await.unwrap();
    let net = network(&setup).await;
    let (dual, _) = registered(&setup, &net.host, &net.dual_stack).await;
    let (v6, _) = registered(&setup, &net.host, &net.ipv6_only).await;
    let (running, running_records) = registered(&setup, &net.host, &net.ipv6_only).await;
    seed(&setup.zone, vec![foreign_records().into_iter().collect()]).await.unwrap();
    setup.fleet.stop_task(&dual).await.unwrap();
    setup.fleet.stop_task(&v6).await.unwrap();
    let before = setup.records().await.unwrap();
    let events = [
        task_state_change(&setup.fleet, &dual, 3).await.unwrap(),
        task_state_change(&setup.fleet, &v6, 3).await.unwrap(),
        task_state_change(&setup.fleet, &running, 2).await.unwrap(),
    ];
    let interfaces = &events[1]["detail"]["containers"][0]["networkInterfaces"][0];
    assert_eq!(interfaces["ipv6Address"], "fd00:ec55:2::1", "{interfaces}");
    assert!(interfaces.get("privateIpv4Address").is_none(), "an IPv6-only task's event: {interfaces}");

    let mut env = setup.env(&[]);
    env.push(("ECSSD_ROLE".into(), "withdrawer".into()));
    let lambda = LambdaEmulator::start(&env).await.unwrap();
    let answer = invoke(&lambda, &sqs_batch(&events)).await.unwrap();
    let failures = batch_item_failures(&answer).unwrap();
    assert!(failures.is_empty(), "{failures:?}\n[bootstrap] {}", lambda.function_output());
    let expected: Vec<Record> =
        before.iter().filter(|r| ![&dual, &v6].iter().any(|t| mentions(r, t))).cloned().collect();
    assert_eq!(setup.records().await.unwrap(), expected);
    let aaaa = |r: &&Record| r.key.record_type == RecordType::Aaaa;
    let running_aaaa: Vec<&Record> = running_records.iter().filter(aaaa).collect();
    assert_eq!(
        expected.iter().filter(aaaa).collect::<Vec<_>>(),
        running_aaaa,
        "only the running task's AAAA"
    );
    assert!(setup.holds(&running_records).await.unwrap());
}
