//! Bridge mode on hosts that keep EC2 instance metadata from containers: the sidecar finds the host's
//! address in the ECS container metadata file, through IMDS, or through the ECS and EC2 APIs, says in
//! its start line which one served, and registers that address; only when none can does it stop, with
//! one message naming each. The real binary, the real Docker engine, moto as ECS, EC2 and Route53, the
//! metadata stand-ins as a hardened host's (`ImdsMode`, `ContainerMetadataFile`).
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ecssd_records::{Record, RecordType, TaskAddresses};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::ecs::Fleet;
use ecssd_tests::metadata::{ContainerMetadataFile, ImdsMode, NetworkMode};
use ecssd_tests::moto::Moto;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::world::{RunningTask, World};
use ecssd_tests::{address_records, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// The one service the task publishes, and the sidecar's own container.
fn web() -> Vec<ContainerSpec> {
    vec![ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()]
}

fn with_env(env: &[(&str, &str)]) -> SidecarOptions {
    SidecarOptions {
        args: vec![],
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

/// The task's A record, ownership TXT and SRV target, once registered; the A record's values.
async fn registered_address(world: &World, running: &RunningTask) -> Vec<String> {
    let records: Vec<Record> = world.wait_for_task_records(running.task.task_id(), 3, WAIT).await.unwrap();
    records.iter().find(|r| r.key.record_type == RecordType::A).unwrap().values().to_vec()
}

fn started_from(sidecar: &Sidecar, source: &str) -> bool {
    sidecar.logged(&["ecssd sidecar starting", &format!("\"address_source\":\"{source}\"")])
}

async fn wait_until_said(sidecar: &Sidecar, needles: &[&str], within: Duration) {
    wait_for(&format!("the log to say {needles:?}"), within, || async {
        Ok(sidecar.logged(needles).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:#?}", sidecar.logs()));
}

/// ECS and EC2 requests of the clients under test, per operation.
async fn api_requests(moto: &Moto) -> [u64; 3] {
    let stats = moto.stats().await.unwrap();
    [
        Moto::requests(&stats, "ecs", Some("DescribeTasks")),
        Moto::requests(&stats, "ecs", Some("DescribeContainerInstances")),
        Moto::requests(&stats, "ec2", Some("DescribeInstances")),
    ]
}

/// A bridge-mode task that ECS (moto) placed on an EC2 container instance whose private IP is a
/// loopback address of its own (`Fleet::loopback_host`), with its containers running and its metadata
/// stand-ins; and that address.
async fn placed_on_a_host(world: &World) -> (RunningTask, Ipv4Addr) {
    let fleet = Fleet::new(&world.moto).await.unwrap();
    let cluster = fleet.cluster("hardened").await.unwrap();
    let host = fleet.loopback_host(&cluster).await.unwrap();
    let placed = fleet.start_tasks(&host, 1).await.unwrap().pop().unwrap();
    let running = world.placed_task(&placed, &web(), NetworkMode::Bridge).await.unwrap();
    (running, host.private_ip.unwrap())
}

#[tokio::test]
async fn reachable_instance_metadata_serves_and_the_start_line_says_so() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web()).await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();

    assert_eq!(registered_address(&world, &running).await, ["127.0.0.1"], "IMDS's local-ipv4");
    assert!(started_from(&sidecar, "imds"), "{:#?}", sidecar.logs());
    assert_eq!(api_requests(&world.moto).await, [0, 0, 0], "no API call when IMDS answers");
}

#[tokio::test]
async fn a_hop_limit_of_one_costs_seconds_and_the_ecs_and_ec2_apis_serve() {
    let world = World::new().await.unwrap();
    let (running, host_ip) = placed_on_a_host(&world).await;
    running.metadata.set_imds(ImdsMode::HopLimitOne);
    let before = api_requests(&world.moto).await;

    let spawned = Instant::now();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    // The token's answer never comes: the sidecar gives IMDS seconds, not its whole start-up wait
    // (ECSSD_METADATA_WAIT_SECONDS, 60 s by default).
    wait_until_said(&sidecar, &["ecssd sidecar starting"], Duration::from_secs(15)).await;
    let took = spawned.elapsed();
    assert!(took < Duration::from_secs(12), "started after {took:?}");
    assert!(started_from(&sidecar, "ecs_api"), "{:#?}", sidecar.logs());
    assert_eq!(registered_address(&world, &running).await, [host_ip.to_string()], "EC2's PrivateIpAddress");
    assert!(running.metadata.imds_token_requests() >= 1, "IMDS was asked first");
    let after = api_requests(&world.moto).await;
    let made: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(made, [1, 1, 1], "DescribeTasks, DescribeContainerInstances, DescribeInstances, once each");
}

#[tokio::test]
async fn instance_metadata_refusing_containers_and_ecs_throttling_still_find_the_host_through_the_apis() {
    let world = World::new().await.unwrap();
    let (running, host_ip) = placed_on_a_host(&world).await;
    running.metadata.set_imds(ImdsMode::Refused);
    let throttled = serde_json::json!([400, "ThrottlingException", "DescribeTasks"]);
    world
        .moto
        .set_faults(serde_json::json!({"ecs": {"errors": [throttled.clone(), throttled]}}))
        .await
        .unwrap();
    let before = api_requests(&world.moto).await;

    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();

    assert_eq!(registered_address(&world, &running).await, [host_ip.to_string()]);
    assert!(started_from(&sidecar, "ecs_api"), "{:#?}", sidecar.logs());
    assert_eq!(running.metadata.imds_token_requests(), 0, "refused before any request");
    let after = api_requests(&world.moto).await;
    let made: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(made, [3, 1, 1], "DescribeTasks throttled twice, then answered");
}

/// A deploy of many tasks throttles ECS for longer than ECSSD_METADATA_WAIT_SECONDS: the start waits it
/// out (the old sidecar gave up at the wait and exited, failing the essential container's start).
#[tokio::test]
async fn ecs_throttling_past_the_metadata_wait_does_not_end_the_start() {
    let world = World::new().await.unwrap();
    let (running, host_ip) = placed_on_a_host(&world).await;
    running.metadata.set_imds(ImdsMode::Refused);
    let throttled = serde_json::json!({
        "status": 400, "code": "ThrottlingException", "operation": "DescribeTasks", "repeat": true,
    });
    world.moto.set_faults(serde_json::json!({"ecs": {"errors": [throttled]}})).await.unwrap();
    let options = with_env(&[("ECSSD_METADATA_WAIT_SECONDS", "2")]);
    let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();

    wait_for("ECS to throttle the sidecar", WAIT, || async {
        Ok((api_requests(&world.moto).await[0] > 0).then_some(()))
    })
    .await
    .unwrap();
    // Three times the wait, still throttled: still starting, and saying why.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(sidecar.wait(Duration::from_millis(100)).await.is_err(), "still starting: {:#?}", sidecar.logs());
    assert!(sidecar.logged(&["no source gave the host's address yet", "ThrottlingException"]));

    world.moto.set_faults(serde_json::json!({"ecs": {"errors": []}})).await.unwrap();
    assert_eq!(registered_address(&world, &running).await, [host_ip.to_string()]);
    assert!(started_from(&sidecar, "ecs_api"), "{:#?}", sidecar.logs());
}

#[tokio::test]
async fn the_container_metadata_file_serves_once_ready_before_instance_metadata_is_asked() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web()).await.unwrap();
    // The file names another loopback address than IMDS (127.0.0.1), to tell which one served; on a
    // real host both give the instance's private IP.
    let host_ip = Ipv4Addr::new(127, 0, 0, 7);
    let file = ContainerMetadataFile::initial(&running.metadata, host_ip).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let options = with_env(&[("ECS_CONTAINER_METADATA_FILE", &path)]);
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();

    // The agent's first stage has the host's address but not READY: the sidecar waits for READY.
    wait_until_said(&sidecar, &["waiting for the container metadata file to be READY"], WAIT).await;
    assert!(!sidecar.logged(&["ecssd sidecar starting"]), "started before the file was READY");
    file.make_ready().unwrap();

    assert_eq!(registered_address(&world, &running).await, [host_ip.to_string()]);
    assert!(started_from(&sidecar, "container_metadata_file"), "{:#?}", sidecar.logs());
    assert_eq!(running.metadata.imds_token_requests(), 0, "IMDS was not asked");
    assert_eq!(api_requests(&world.moto).await, [0, 0, 0], "nor ECS or EC2");
}

#[tokio::test]
async fn with_every_source_failing_the_sidecar_stops_with_one_message_naming_each() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web()).await.unwrap();
    // A file the agent never makes READY, IMDS that never answers, and a task role without the
    // permissions: ECS answers ClientException, its code for "a client action ... using an action or
    // resource on behalf of a user that doesn't have permissions" (ECS API reference, DescribeTasks).
    let file = ContainerMetadataFile::initial(&running.metadata, Ipv4Addr::new(127, 0, 0, 7)).unwrap();
    running.metadata.set_imds(ImdsMode::Unanswered);
    let denied = serde_json::json!({
        "status": 400, "code": "ClientException", "operation": "DescribeTasks", "repeat": true,
        "message": "User: arn:aws:sts::123456789012:assumed-role/ecssd-sidecar/e2e is not authorized to \
                    perform: ecs:DescribeTasks on resource: * because no identity-based policy allows it",
    });
    world.moto.set_faults(serde_json::json!({"ecs": {"errors": [denied]}})).await.unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let options = with_env(&[("ECS_CONTAINER_METADATA_FILE", &path), ("ECSSD_METADATA_WAIT_SECONDS", "4")]);
    let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();

    let status = sidecar.wait(WAIT).await.unwrap();
    assert!(!status.success(), "{status:?}");
    let logs = sidecar.logs();
    let errors: Vec<&String> = logs.iter().filter(|l| l.contains("\"level\":\"ERROR\"")).collect();
    assert_eq!(errors.len(), 1, "one message: {logs:#?}");
    for needle in [
        "cannot learn the host's address",
        // Each source, why it failed, and how to turn it on.
        "the ECS container metadata file:",
        "not READY",
        "ECS_ENABLE_CONTAINER_METADATA=true",
        "EC2 instance metadata (IMDSv2): the session token request (PUT /latest/api/token) got no answer",
        "HttpPutResponseHopLimit) to 2",
        "the ECS and EC2 APIs: DescribeTasks failed: ClientException",
        "not authorized to perform: ecs:DescribeTasks",
        "ecs:DescribeContainerInstances",
        "ec2:DescribeInstances",
        "ECSSD_ADDRESS",
    ] {
        assert!(errors[0].contains(needle), "{needle:?} in {}", errors[0]);
    }
    assert!(!logs.iter().any(|l| l.contains("ecssd sidecar starting")), "never started");
    assert!(world.task_records(running.task.task_id()).await.unwrap().is_empty(), "nothing registered");
}

/// The task's address records as `TYPE value`, once it has `count` records in all.
async fn registered_addresses(world: &World, running: &RunningTask, count: usize) -> Vec<String> {
    address_records(&world.wait_for_task_records(running.task.task_id(), count, WAIT).await.unwrap())
}

const DUAL_STACK_HOST: TaskAddresses = TaskAddresses::Dual(Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST);

/// A dual-stack host: its IPv4 address (A) unless `dual` (host mode) or `ipv6` is asked for, whichever
/// source answers (the container metadata file gives a dual-stack host's IPv4 address only); bridge
/// mode publishes one family, as Docker may map a port to another host port on IPv6.
#[tokio::test]
async fn a_dual_stack_host_gives_its_ipv4_address_unless_asked_and_bridge_mode_one_family() {
    let world = World::new().await.unwrap();
    let cases = [
        (NetworkMode::Host, None, vec!["A 127.0.0.1"]),
        (NetworkMode::Host, Some("dual"), vec!["A 127.0.0.1", "AAAA ::1"]),
        (NetworkMode::Bridge, None, vec!["A 127.0.0.1"]),
        (NetworkMode::Bridge, Some("ipv6"), vec!["AAAA ::1"]),
    ];
    for (mode, family, expected) in cases {
        let running = world.task_in_mode("e2e", &web(), mode).await.unwrap();
        running.metadata.set_imds_host(DUAL_STACK_HOST);
        let env: Vec<(&str, &str)> = family.iter().map(|f| ("ECSSD_ADDRESS_FAMILY", *f)).collect();
        let sidecar = Sidecar::spawn(&world.moto, &running.metadata, with_env(&env)).await.unwrap();
        let addresses = registered_addresses(&world, &running, 2 + expected.len()).await;
        assert_eq!(addresses, expected, "{mode:?} {family:?}: {:#?}", sidecar.logs());
        assert!(started_from(&sidecar, "imds"), "{:#?}", sidecar.logs());
    }

    let bridge = world.task("e2e", &web()).await.unwrap();
    let options = with_env(&[("ECSSD_ADDRESS_FAMILY", "dual")]);
    let mut sidecar = Sidecar::spawn(&world.moto, &bridge.metadata, options).await.unwrap();
    assert!(!sidecar.wait(WAIT).await.unwrap().success(), "{:#?}", sidecar.logs());
    assert!(sidecar.logged(&["ECSSD_ADDRESS_FAMILY=dual in bridge mode"]), "{:#?}", sidecar.logs());
}

#[tokio::test]
async fn an_ipv6_only_host_gives_its_ipv6_address_through_the_metadata_file_or_instance_metadata() {
    let world = World::new().await.unwrap();
    // The agent writes HostIPv6Address, and no HostPrivateIPv4Address, on an IPv6-only instance.
    let running = world.task("e2e", &web()).await.unwrap();
    let file = ContainerMetadataFile::initial(&running.metadata, Ipv6Addr::LOCALHOST).unwrap();
    file.make_ready().unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let options = with_env(&[("ECS_CONTAINER_METADATA_FILE", &path)]);
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    assert_eq!(registered_addresses(&world, &running, 3).await, ["AAAA ::1"]);
    assert!(started_from(&sidecar, "container_metadata_file"), "{:#?}", sidecar.logs());

    // IMDS: local-ipv4 is 404 on an IPv6-only instance, ipv6 answers.
    let running = world.task_in_mode("e2e", &web(), NetworkMode::Host).await.unwrap();
    running.metadata.set_imds_host(TaskAddresses::Ipv6(Ipv6Addr::LOCALHOST));
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    assert_eq!(registered_addresses(&world, &running, 3).await, ["AAAA ::1"]);
    assert!(started_from(&sidecar, "imds"), "{:#?}", sidecar.logs());
}

#[tokio::test]
async fn a_family_the_metadata_file_lacks_is_found_through_instance_metadata() {
    let world = World::new().await.unwrap();
    let running = world.task_in_mode("e2e", &web(), NetworkMode::Host).await.unwrap();
    // A dual-stack host's file gives its IPv4 address only; IMDS gives both.
    let file = ContainerMetadataFile::initial(&running.metadata, Ipv4Addr::new(127, 0, 0, 7)).unwrap();
    file.make_ready().unwrap();
    running.metadata.set_imds_host(DUAL_STACK_HOST);
    let path = file.path().to_str().unwrap().to_owned();
    let options = with_env(&[("ECS_CONTAINER_METADATA_FILE", &path), ("ECSSD_ADDRESS_FAMILY", "dual")]);
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    assert_eq!(registered_addresses(&world, &running, 4).await, ["A 127.0.0.1", "AAAA ::1"]);
    assert!(started_from(&sidecar, "imds"), "{:#?}", sidecar.logs());
}
