//! The sidecar end to end: the real binary, the real Docker engine, moto as Route53.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ecssd_records::{Ownership, RecordType};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::metadata::NetworkMode;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::{RunningTask, World};

const WAIT: Duration = Duration::from_secs(30);

/// A web and a calc container, each serving port 80, plus the sidecar's own (idle) container.
fn web_and_calc() -> Vec<ContainerSpec> {
    vec![
        ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]),
        ContainerSpec::httpd("calc", &["SERVICE_80_NAME=_calc._tcp"]),
        ContainerSpec::idle_sidecar(),
    ]
}

fn srv_value(running: &RunningTask, port: u16) -> String {
    format!("1 1 {port} {}.servicediscovery.internal", running.task.task_id())
}

fn options(args: &[&str]) -> SidecarOptions {
    SidecarOptions { args: args.iter().map(|s| (*s).to_owned()).collect(), env: vec![] }
}

#[tokio::test]
async fn registers_whole_then_follows_containers_dying_and_coming_back() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let _sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();

    let web_port = running.task.host_port(0, 80).await.unwrap();
    let calc_port = running.task.host_port(1, 80).await.unwrap();
    assert_eq!(world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap(), [srv_value(&running, web_port)]);
    assert_eq!(world.srv_values("_calc._tcp").await.unwrap(), [srv_value(&running, calc_port)]);
    let records = world.task_records(running.task.task_id()).await.unwrap();
    let kinds: Vec<_> = records.iter().map(|r| r.key.record_type).collect();
    assert_eq!(kinds.iter().filter(|k| **k == RecordType::A).count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == RecordType::Txt).count(), 1);
    let a = records.iter().find(|r| r.key.record_type == RecordType::A).unwrap();
    assert_eq!(a.values(), ["127.0.0.1"], "bridge mode registers the host IP from IMDS");

    running.task.stop_container(1).await.unwrap();
    world.wait_for_targets("_calc._tcp", 0, WAIT).await.unwrap();
    assert_eq!(world.srv_values("_web._tcp").await.unwrap().len(), 1, "the sibling stays");

    running.task.start_container(1).await.unwrap();
    let calc_port = running.task.host_port(1, 80).await.unwrap();
    assert_eq!(
        world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap(),
        [srv_value(&running, calc_port)]
    );
}

#[tokio::test]
async fn every_network_mode_registers_when_task_metadata_gives_the_clusters_short_name() {
    let world = World::new().await.unwrap();
    let eni = Ipv4Addr::new(127, 0, 0, 2);
    for (service, mode) in [
        ("_bridge._tcp", NetworkMode::Bridge),
        ("_host._tcp", NetworkMode::Host),
        ("_vpc._tcp", NetworkMode::Awsvpc(eni.into())),
    ] {
        let variable = format!("SERVICE_80_NAME={service}");
        let specs = [ContainerSpec::httpd("web", &[variable.as_str()]), ContainerSpec::idle_sidecar()];
        let running = world.task_in_mode("short", &specs, mode).await.unwrap();
        let _sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
        let (address, port) = match mode {
            NetworkMode::Bridge => ("127.0.0.1".to_owned(), running.task.host_port(0, 80).await.unwrap()),
            NetworkMode::Host => ("127.0.0.1".to_owned(), 80),
            NetworkMode::Awsvpc(eni) => (eni.to_string(), 80),
        };
        assert_eq!(
            world.wait_for_targets(service, 1, WAIT).await.unwrap(),
            [srv_value(&running, port)],
            "{mode:?}"
        );
        let records = world.task_records(running.task.task_id()).await.unwrap();
        let a = records.iter().find(|r| r.key.record_type == RecordType::A).unwrap();
        assert_eq!(a.values(), [address], "{mode:?}");
        let txt = records.iter().find(|r| r.key.record_type == RecordType::Txt).unwrap();
        let ownership = Ownership::decode(txt.values()).unwrap();
        assert_eq!(
            ownership.cluster_arn, running.task.cluster_arn,
            "{mode:?}: the ARN, derived from the short name"
        );
        assert!(running.task.cluster_arn.ends_with(":cluster/short"), "{}", running.task.cluster_arn);
    }
}

#[tokio::test]
async fn a_container_asked_to_stop_is_withdrawn_while_it_still_serves() {
    let world = World::new().await.unwrap();
    // It ignores SIGTERM, as an application finishing its requests would keep running for a while.
    let mut graceful = ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]);
    graceful.cmd = Some(vec!["sh".into(), "-c".into(), "trap '' TERM; exec httpd -f -p 80 -h /www".into()]);
    let running = world.task("e2e", &[graceful]).await.unwrap();
    let _sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();

    // What ECS's StopTask does first: SIGTERM; the container keeps running.
    running.task.signal_container(0, "SIGTERM").await.unwrap();
    world.wait_for_targets("_web._tcp", 0, WAIT).await.unwrap();
    assert!(running.task.is_running(0).await.unwrap(), "withdrawn before it exited");

    // Killed and started again, it is back.
    running.task.stop_container(0).await.unwrap();
    running.task.start_container(0).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
}

#[tokio::test]
async fn a_container_stopped_with_its_own_stop_signal_is_withdrawn_while_it_still_serves() {
    let world = World::new().await.unwrap();
    // Apache httpd stops gracefully on SIGWINCH, its image's STOPSIGNAL; busybox httpd ignores it, so
    // the container keeps serving as Apache would while it finishes its requests.
    let mut apache_like = ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]);
    apache_like.stop_signal = Some("SIGWINCH".into());
    let running = world.task("e2e", &[apache_like]).await.unwrap();
    let _sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();

    // What `docker stop` and ECS StopTask send first.
    running.task.signal_container(0, "SIGWINCH").await.unwrap();
    world.wait_for_targets("_web._tcp", 0, WAIT).await.unwrap();
    assert!(running.task.is_running(0).await.unwrap(), "withdrawn before it exited");
}

#[tokio::test]
async fn sigterm_withdraws_everything_then_drains_and_exits_zero() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, options(&["--drain-seconds=2"])).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap();

    let stopping = Instant::now();
    sidecar.sigterm().unwrap();
    // Withdrawn while the process is still draining, i.e. before the task's other containers stop.
    wait_for("withdrawal", WAIT, || async {
        Ok(world.task_records(running.task.task_id()).await?.is_empty().then_some(()))
    })
    .await
    .unwrap();
    let status = sidecar.wait(WAIT).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() >= Duration::from_secs(2), "drained for the drain period");
    assert!(sidecar.logged(&["withdrawn; draining"]));
}

#[tokio::test]
async fn sigkill_then_restart_converges_to_what_docker_shows() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap();
    sidecar.sigkill().await.unwrap();

    // While no sidecar runs, calc dies and web moves to a new host port.
    running.task.stop_container(1).await.unwrap();
    running.task.stop_container(0).await.unwrap();
    running.task.start_container(0).await.unwrap();
    let web_port = running.task.host_port(0, 80).await.unwrap();
    assert_eq!(world.srv_values("_calc._tcp").await.unwrap().len(), 1, "stale until a sidecar runs");

    let _restarted = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    world.wait_for_targets("_calc._tcp", 0, WAIT).await.unwrap();
    wait_for("web on its new port", WAIT, || async {
        Ok((world.srv_values("_web._tcp").await? == [srv_value(&running, web_port)]).then_some(()))
    })
    .await
    .unwrap();
    let records = world.task_records(running.task.task_id()).await.unwrap();
    assert_eq!(records.len(), 3, "A + TXT + one SRV, nothing duplicated: {records:?}");
}

#[tokio::test]
async fn two_tasks_registering_one_service_at_once_are_both_present() {
    let world = World::new().await.unwrap();
    let spec = || vec![ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"])];
    let first = world.task("e2e", &spec()).await.unwrap();
    let second = world.task("e2e", &spec()).await.unwrap();
    let (a, b) = tokio::join!(
        Sidecar::spawn(&world.moto, &first.metadata, options(&[])),
        Sidecar::spawn(&world.moto, &second.metadata, options(&[]))
    );
    let (_a, _b) = (a.unwrap(), b.unwrap());
    let values = world.wait_for_targets("_web._tcp", 2, WAIT).await.unwrap();
    let mut expected = vec![
        srv_value(&first, first.task.host_port(0, 80).await.unwrap()),
        srv_value(&second, second.task.host_port(0, 80).await.unwrap()),
    ];
    expected.sort();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn a_malformed_variable_is_reported_and_its_siblings_still_register() {
    let world = World::new().await.unwrap();
    let specs = vec![
        ContainerSpec::httpd("broken", &["SERVICE_80_NAME=calc", "SERVICE_http_NAME=_x._tcp"]),
        ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]),
    ];
    let running = world.task("e2e", &specs).await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    wait_for("the error report", WAIT, || async {
        Ok(sidecar
            .logged(&["container broken", "SERVICE_80_NAME", "expected an SRV service name"])
            .then_some(()))
    })
    .await
    .unwrap();
    assert!(sidecar.logged(&["SERVICE_http_NAME", "port from 1 to 65535"]));
}

#[tokio::test]
async fn a_container_with_a_healthcheck_is_published_only_while_healthy() {
    let world = World::new().await.unwrap();
    let mut checked = ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]);
    checked.healthcheck = Some("test -f /tmp/healthy".into());
    let running = world.task("e2e", &[checked]).await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    wait_for("the sidecar's first sync", WAIT, || async { Ok(sidecar.logged(&["resynced"]).then_some(())) })
        .await
        .unwrap();
    assert!(world.srv_values("_web._tcp").await.unwrap().is_empty(), "not published before it is healthy");

    running.task.exec(0, &["touch", "/tmp/healthy"]).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    running.task.exec(0, &["rm", "/tmp/healthy"]).await.unwrap();
    world.wait_for_targets("_web._tcp", 0, WAIT).await.unwrap();
}

#[tokio::test]
async fn once_registers_and_exits_and_deregister_withdraws() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let mut once = Sidecar::spawn(&world.moto, &running.metadata, options(&["--once"])).await.unwrap();
    assert!(once.wait(WAIT).await.unwrap().success());
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap().len(), 4);
    let mut deregister =
        Sidecar::spawn(&world.moto, &running.metadata, options(&["--deregister"])).await.unwrap();
    assert!(deregister.wait(WAIT).await.unwrap().success());
    assert!(world.task_records(running.task.task_id()).await.unwrap().is_empty());
}

#[tokio::test]
async fn permanent_errors_exit_non_zero_with_a_clear_message() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    /// (arguments, environment, what the log must say)
    type Case = (Vec<&'static str>, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (vec!["--domain=elsewhere.internal"], vec![], "no private hosted zone is named elsewhere.internal"),
        // Docker mode asked for, and no socket: no silent switch to task metadata.
        (
            vec![],
            vec![("DOCKER_HOST", "unix:///nonexistent/docker.sock"), ("ECSSD_SOURCE", "docker")],
            "mount /var/run/docker.sock",
        ),
        (vec!["--source=podman"], vec![], "invalid value 'podman' for '--source <SOURCE>'"),
        (
            vec!["--metadata-wait-seconds=1", "--metadata-uri=http://127.0.0.1:9/v4/x"],
            vec![],
            "no task metadata",
        ),
        (vec!["--domain=not a domain"], vec![], "domain \"not a domain\" is invalid"),
    ];
    for (args, env, message) in cases {
        let options = SidecarOptions {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        };
        let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
        let status = sidecar.wait(WAIT).await.unwrap();
        assert!(!status.success(), "{args:?} {env:?} must fail");
        wait_for("the log line", Duration::from_secs(5), || async {
            Ok(sidecar.logged(&[message]).then_some(()))
        })
        .await
        .unwrap_or_else(|_| panic!("{args:?}: expected {message:?} in {:?}", sidecar.logs()));
    }
}

#[tokio::test]
async fn throttled_route53_still_converges_with_nothing_lost_or_duplicated() {
    let world = World::new().await.unwrap();
    world
        .moto
        .set_faults(serde_json::json!({"route53": {"rate_per_second": 2, "burst": 1,
            "errors": [[500, "InternalError"], [400, "PriorRequestNotComplete", "ChangeResourceRecordSets"]]}}))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(
            world.task("e2e", &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"])]).await.unwrap(),
        );
    }
    let mut sidecars = Vec::new();
    for task in &tasks {
        sidecars.push(Sidecar::spawn(&world.moto, &task.metadata, options(&[])).await.unwrap());
    }
    let values = world.wait_for_targets("_web._tcp", 4, Duration::from_secs(60)).await.unwrap();
    let mut unique = values.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{values:?}");
    let stats = world.moto.stats().await.unwrap();
    let r53 = &stats["route53"];
    let throttled: u64 = r53.as_object().unwrap().values().map(|op| op["throttled"].as_u64().unwrap()).sum();
    assert!(throttled > 0 || r53["ChangeResourceRecordSets"]["failed"].as_u64().unwrap() > 0, "{stats}");
    for sidecar in &sidecars {
        assert!(!sidecar.logged(&["\"level\":\"ERROR\""]), "{:?}", sidecar.logs());
    }
}

#[tokio::test]
async fn a_broken_docker_event_stream_is_reopened_and_resynced() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let proxy =
        ecssd_tests::docker_proxy::DockerProxy::start(std::path::Path::new("/var/run/docker.sock")).unwrap();
    let options = SidecarOptions { args: vec![], env: vec![("DOCKER_HOST".into(), proxy.docker_host())] };
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap();

    proxy.cut();
    wait_for("the sidecar to notice", WAIT, || async {
        Ok(sidecar.logged(&["Docker event stream"]).then_some(()))
    })
    .await
    .unwrap();
    // While the sidecar cannot see Docker, calc dies; no event will ever tell it.
    running.task.stop_container(1).await.unwrap();
    proxy.restore();
    world.wait_for_targets("_calc._tcp", 0, WAIT).await.unwrap();
    assert_eq!(world.srv_values("_web._tcp").await.unwrap().len(), 1);
}

#[tokio::test]
async fn task_metadata_that_is_slow_to_appear_is_waited_for() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    running.metadata.set_available(false);
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options(&[])).await.unwrap();
    wait_for("a retry", WAIT, || async {
        Ok(sidecar.logged(&["task metadata not available yet"]).then_some(()))
    })
    .await
    .unwrap();
    running.metadata.set_available(true);
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
}
