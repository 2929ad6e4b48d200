//! Dual-stack and IPv6-only tasks: the real sidecar publishes an AAAA record beside (or instead of)
//! the A record, from task metadata's `IPv6Addresses`, `ECSSD_ADDRESS` or as `ECSSD_ADDRESS_FAMILY`
//! chooses; its DNS checks read AAAA through the bed's resolver. Addresses are record values only:
//! nothing connects to them.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ecssd_records::{Record, RecordKey, RecordType, TaskAddresses};
use ecssd_tests::dns::LiveDns;
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::metadata::NetworkMode;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::world::{DOMAIN, RunningTask, World};
use ecssd_tests::{address_records, wait_for};

const WAIT: Duration = Duration::from_secs(30);

const ENI_IPV4: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 23);
const ENI_IPV6: Ipv6Addr = Ipv6Addr::new(0x2600, 0x1f18, 0, 0x17, 0, 0, 0, 0x23);

/// A web container announcing port 80, and the sidecar's own (idle) container.
fn web() -> Vec<ContainerSpec> {
    vec![ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()]
}

fn options(env: &[(&str, &str)]) -> SidecarOptions {
    SidecarOptions {
        args: vec![],
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

async fn awsvpc_task(world: &World, eni: TaskAddresses) -> RunningTask {
    world.task_in_mode("ipv6", &web(), NetworkMode::Awsvpc(eni)).await.unwrap()
}

async fn wait_for_records(world: &World, running: &RunningTask, count: usize) -> Vec<Record> {
    world.wait_for_task_records(running.task.task_id(), count, WAIT).await.unwrap()
}

#[tokio::test]
async fn an_ipv6_only_task_registers_an_aaaa_record_heals_it_and_withdraws_it() {
    let world = World::new().await.unwrap();
    let dns: LiveDns = world.serve_dns().await.unwrap();
    let running = awsvpc_task(&world, TaskAddresses::Ipv6(ENI_IPV6)).await;
    let env = [("ECSSD_TTL", "1"), ("ECSSD_HEAL_CHECK_SECONDS", "1")];
    let mut env = options(&env);
    env.env.extend(dns.sidecar_env());
    let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, env).await.unwrap();

    // SRV at the container port, AAAA, ownership: no A record, and the start did not fail for lack
    // of an IPv4 address.
    let target = format!("1 1 80 {}.{DOMAIN}", running.task.task_id());
    assert_eq!(world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap(), [target]);
    let registered = wait_for_records(&world, &running, 3).await;
    assert_eq!(address_records(&registered), [format!("AAAA {ENI_IPV6}")]);
    assert!(sidecar.logged(&["ecssd sidecar starting", &format!("\"address\":\"{ENI_IPV6}\"")]));

    // The AAAA record deleted behind its back: its DNS check sees it gone and puts it back.
    let aaaa: RecordKey =
        registered.iter().find(|r| r.key.record_type == RecordType::Aaaa).unwrap().key.clone();
    world.delete_records(&[aaaa]).await.unwrap();
    wait_for("the AAAA record back", WAIT, || async {
        Ok((world.task_records(running.task.task_id()).await? == registered).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:#?}", sidecar.logs()));
    assert!(sidecar.logged(&["records_drifted"]), "said why it read Route53: {:#?}", sidecar.logs());

    // Stopped, it withdraws every record, the AAAA included.
    sidecar.sigterm().unwrap();
    assert!(sidecar.wait(WAIT).await.unwrap().success());
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap(), []);
}

#[tokio::test]
async fn a_dual_stack_task_registers_both_and_the_family_setting_picks_one() {
    let world = World::new().await.unwrap();
    let dual = TaskAddresses::Dual(ENI_IPV4, ENI_IPV6);

    let both = awsvpc_task(&world, dual).await;
    let _both = Sidecar::spawn(&world.moto, &both.metadata, options(&[])).await.unwrap();
    let records = wait_for_records(&world, &both, 4).await;
    assert_eq!(address_records(&records), [format!("A {ENI_IPV4}"), format!("AAAA {ENI_IPV6}")]);

    for (family, expected) in [("ipv4", format!("A {ENI_IPV4}")), ("IPv6", format!("AAAA {ENI_IPV6}"))] {
        let one = awsvpc_task(&world, dual).await;
        let setting = options(&[("ECSSD_ADDRESS_FAMILY", family)]);
        let _one = Sidecar::spawn(&world.moto, &one.metadata, setting).await.unwrap();
        let records = wait_for_records(&world, &one, 3).await;
        assert_eq!(address_records(&records), [expected], "ECSSD_ADDRESS_FAMILY={family}");
    }
}

#[tokio::test]
async fn ecssd_address_takes_either_family_or_both() {
    let world = World::new().await.unwrap();
    let both = "127.0.0.9, FD00:EC2:0:0:0:0:0:9";
    for (mode, address, expected) in [
        (NetworkMode::Host, "fd00:ec2::9", vec!["AAAA fd00:ec2::9"]),
        // Written the long way, registered the way DNS shows it (RFC 5952).
        (NetworkMode::Host, both, vec!["A 127.0.0.9", "AAAA fd00:ec2::9"]),
        // Bridge mode publishes one family: its host port may differ on IPv6.
        (NetworkMode::Bridge, both, vec!["A 127.0.0.9"]),
    ] {
        let running = world.task_in_mode("ipv6", &web(), mode).await.unwrap();
        let _sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[("ECSSD_ADDRESS", address)]))
            .await
            .unwrap();
        let records = wait_for_records(&world, &running, 2 + expected.len()).await;
        assert_eq!(address_records(&records), expected, "{mode:?} ECSSD_ADDRESS={address}");
    }
}

#[tokio::test]
async fn a_family_the_task_lacks_or_a_bad_address_stops_the_start_naming_it() {
    let world = World::new().await.unwrap();
    let cases = [
        (
            vec![("ECSSD_ADDRESS_FAMILY", "dual")],
            "ECSSD_ADDRESS_FAMILY=dual needs an IPv6 address, and only 10.0.1.23 was found",
        ),
        (
            vec![("ECSSD_ADDRESS_FAMILY", "both")],
            "`both` is not an address family: expected `ipv4`, `ipv6` or `dual`",
        ),
        (vec![("ECSSD_ADDRESS", "fd00::1,fd00::2")], "`fd00::1,fd00::2` has two addresses of one family"),
    ];
    for (env, message) in cases {
        let running = awsvpc_task(&world, TaskAddresses::Ipv4(ENI_IPV4)).await;
        let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&env)).await.unwrap();
        let status = sidecar.wait(WAIT).await.unwrap();
        assert!(!status.success(), "{env:?}: exited {status}");
        assert!(sidecar.logged(&[message]), "{env:?} should say {message:?}: {:#?}", sidecar.logs());
        assert_eq!(
            world.task_records(running.task.task_id()).await.unwrap(),
            [],
            "{env:?}: nothing registered"
        );
    }
}
