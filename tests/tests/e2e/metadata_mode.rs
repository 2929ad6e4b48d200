//! The sidecar reading its siblings from ECS task metadata v4 instead of the Docker socket, as on
//! Fargate: the real binary, containers on the real Docker engine described by the metadata stand-in,
//! moto as Route53. Every sidecar here but the Docker-mode one is given a Docker socket that does not
//! exist: nothing it does may need one.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ecssd_records::{Record, RecordKey, RecordType};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::{RunningTask, World};

const WAIT: Duration = Duration::from_secs(30);

/// The task's ENI address on Fargate.
const ENI: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 23);

/// A Docker socket that is not there.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

/// How the sidecar is told where its siblings come from: `ECSSD_SOURCE` unset (auto) or set.
#[derive(Debug, Clone, Copy)]
enum Source {
    Auto,
    Metadata,
}

/// A sidecar without a Docker socket, reading task metadata every 200 ms.
fn without_docker(source: Source, args: &[&str]) -> SidecarOptions {
    let mut env = vec![
        ("DOCKER_HOST".to_owned(), NO_DOCKER.to_owned()),
        ("ECSSD_METADATA_POLL_MS".to_owned(), "200".to_owned()),
    ];
    if let Source::Metadata = source {
        env.push(("ECSSD_SOURCE".to_owned(), "metadata".to_owned()));
    }
    SidecarOptions { args: args.iter().map(|s| (*s).to_owned()).collect(), env }
}

/// An httpd container serving port 80 (published), with these `dockerLabels`.
fn labelled(name: &str, labels: &[(&str, &str)]) -> ContainerSpec {
    ContainerSpec {
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..ContainerSpec::httpd(name, &[])
    }
}

/// A web and a calc container announced by labels, plus the sidecar's own (idle) container.
fn web_and_calc() -> Vec<ContainerSpec> {
    vec![
        labelled("web", &[("SERVICE_80_NAME", "_web._tcp")]),
        labelled("calc", &[("SERVICE_80_NAME", "_calc._tcp")]),
        ContainerSpec::idle_sidecar(),
    ]
}

fn srv_value(running: &RunningTask, port: u16) -> String {
    format!("1 1 {port} {}.servicediscovery.internal", running.task.task_id())
}

async fn wait_for_records(world: &World, running: &RunningTask, count: usize) -> Vec<Record> {
    world.wait_for_task_records(running.task.task_id(), count, WAIT).await.unwrap()
}

/// The values of the task's A record.
fn address(records: &[Record]) -> Vec<String> {
    records.iter().find(|r| r.key.record_type == RecordType::A).unwrap().values().to_vec()
}

/// Waits until task metadata has been asked `more` more times (answered or not): the sidecar's polls.
async fn wait_for_polls(running: &RunningTask, more: usize) {
    let target = running.metadata.task_requests() + more;
    wait_for(&format!("{more} more polls of task metadata"), WAIT, || async {
        Ok((running.metadata.task_requests() >= target).then_some(()))
    })
    .await
    .unwrap();
}

async fn wait_until_said(sidecar: &Sidecar, needles: &[&str]) {
    wait_for(&format!("the log to say {needles:?}"), WAIT, || async {
        Ok(sidecar.logged(needles).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:#?}", sidecar.logs()));
}

#[tokio::test]
async fn a_fargate_task_registers_its_labelled_containers_at_the_eni_address() {
    let world = World::new().await.unwrap();
    let mut specs = web_and_calc();
    // Announced the Docker-mode way only: metadata mode reads labels.
    specs.push(ContainerSpec::httpd("legacy", &["SERVICE_80_NAME=_legacy._tcp"]));
    let running = world.fargate_task("fargate", &specs, ENI).await.unwrap();
    // ECSSD_SOURCE unset: with no Docker socket, the sidecar picks task metadata itself.
    let sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Auto, &[])).await.unwrap();

    let at_container_port = [srv_value(&running, 80)];
    assert_eq!(world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap(), at_container_port);
    assert_eq!(world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap(), at_container_port);
    // A, ownership TXT and the two SRV targets: nothing for the pause container or `legacy`.
    let records = wait_for_records(&world, &running, 4).await;
    assert_eq!(address(&records), [ENI.to_string()], "the task's ENI address");
    assert!(world.srv_values("_legacy._tcp").await.unwrap().is_empty(), "environment is not read");
    assert!(sidecar.logged(&["ecssd sidecar starting", "\"source\":\"metadata\""]), "{:#?}", sidecar.logs());
}

#[tokio::test]
async fn a_container_with_a_healthcheck_is_published_only_while_healthy() {
    let world = World::new().await.unwrap();
    let checked = ContainerSpec {
        healthcheck: Some("test -f /tmp/healthy".into()),
        // Docker says `starting` (task metadata: UNKNOWN) until the check first passes.
        health_start_period: Some(Duration::from_secs(120)),
        ..labelled("web", &[("SERVICE_80_NAME", "_web._tcp")])
    };
    let specs =
        [checked, labelled("calc", &[("SERVICE_80_NAME", "_calc._tcp")]), ContainerSpec::idle_sidecar()];
    let running = world.fargate_task("fargate", &specs, ENI).await.unwrap();
    let _sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();

    // calc, registered in the same pass, shows the sidecar has judged web; a few more polls judge it again.
    world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap();
    wait_for_polls(&running, 3).await;
    assert!(world.srv_values("_web._tcp").await.unwrap().is_empty(), "not published while UNKNOWN");

    running.task.exec(0, &["touch", "/tmp/healthy"]).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    running.task.exec(0, &["rm", "/tmp/healthy"]).await.unwrap();
    world.wait_for_targets("_web._tcp", 0, WAIT).await.unwrap();
    assert_eq!(world.srv_values("_calc._tcp").await.unwrap().len(), 1, "the sibling stays");
}

#[tokio::test]
async fn a_sibling_that_stops_is_withdrawn_while_the_other_stays() {
    let world = World::new().await.unwrap();
    let running = world.fargate_task("fargate", &web_and_calc(), ENI).await.unwrap();
    let _sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap();

    running.task.stop_container(1).await.unwrap();
    world.wait_for_targets("_calc._tcp", 0, WAIT).await.unwrap();
    assert_eq!(world.srv_values("_web._tcp").await.unwrap(), [srv_value(&running, 80)], "the sibling stays");
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap().len(), 3);
}

#[tokio::test]
async fn sigterm_withdraws_everything_then_drains_and_exits_zero() {
    let world = World::new().await.unwrap();
    let running = world.fargate_task("fargate", &web_and_calc(), ENI).await.unwrap();
    let options = without_docker(Source::Metadata, &["--drain-seconds=2"]);
    let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    wait_for_records(&world, &running, 4).await;

    let stopping = Instant::now();
    sidecar.sigterm().unwrap();
    // Withdrawn while the process is still draining, i.e. before the task's other containers stop.
    wait_for_records(&world, &running, 0).await;
    let status = sidecar.wait(WAIT).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() >= Duration::from_secs(2), "drained for the drain period");
    assert!(sidecar.logged(&["withdrawn; draining"]));
}

#[tokio::test]
async fn a_restarted_sidecar_converges_to_what_task_metadata_shows() {
    let world = World::new().await.unwrap();
    let running = world.fargate_task("fargate", &web_and_calc(), ENI).await.unwrap();
    let first =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    wait_for_records(&world, &running, 4).await;
    first.sigkill().await.unwrap();

    // While no sidecar runs, calc stops.
    running.task.stop_container(1).await.unwrap();
    assert_eq!(world.srv_values("_calc._tcp").await.unwrap().len(), 1, "stale until a sidecar runs");

    let _second =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    world.wait_for_targets("_calc._tcp", 0, WAIT).await.unwrap();
    assert_eq!(world.srv_values("_web._tcp").await.unwrap(), [srv_value(&running, 80)]);
    let records = world.task_records(running.task.task_id()).await.unwrap();
    assert_eq!(records.len(), 3, "A + TXT + one SRV, nothing duplicated: {records:?}");
}

#[tokio::test]
async fn a_malformed_label_is_reported_and_its_siblings_still_register() {
    let world = World::new().await.unwrap();
    let specs = [
        labelled("broken", &[("SERVICE_80_NAME", "web")]),
        labelled("web", &[("SERVICE_80_NAME", "_web._tcp")]),
        ContainerSpec::idle_sidecar(),
    ];
    let running = world.fargate_task("fargate", &specs, ENI).await.unwrap();
    let sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    wait_until_said(&sidecar, &["container broken: label SERVICE_80_NAME=\"web\" rejected:"]).await;
    assert!(sidecar.pid().is_some(), "still running");
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap().len(), 3, "only web's target");
}

#[tokio::test]
async fn service_ignore_skips_a_container_and_service_port_ignore_a_port() {
    let world = World::new().await.unwrap();
    let skipped = labelled("skipped", &[("SERVICE_80_NAME", "_skipped._tcp"), ("SERVICE_IGNORE", "true")]);
    let partial = ContainerSpec {
        publish: vec![80, 8080],
        ..labelled(
            "partial",
            &[
                ("SERVICE_80_NAME", "_partial._tcp"),
                ("SERVICE_8080_NAME", "_alt._tcp"),
                ("SERVICE_8080_IGNORE", "true"),
            ],
        )
    };
    let running =
        world.fargate_task("fargate", &[skipped, partial, ContainerSpec::idle_sidecar()], ENI).await.unwrap();
    let _sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();

    // Registered in one pass with whatever else was to be published.
    assert_eq!(world.wait_for_targets("_partial._tcp", 1, WAIT).await.unwrap(), [srv_value(&running, 80)]);
    assert!(world.srv_values_of(&["_skipped._tcp", "_alt._tcp"]).await.unwrap().is_empty());
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap().len(), 3);
}

#[tokio::test]
async fn in_docker_mode_a_label_overrides_the_environment_variable_of_the_same_name() {
    let world = World::new().await.unwrap();
    let web = ContainerSpec {
        labels: vec![("SERVICE_80_NAME".into(), "_new._tcp".into())],
        ..ContainerSpec::httpd("web", &["SERVICE_80_NAME=_old._tcp"])
    };
    let running = world.task("e2e", &[web, ContainerSpec::idle_sidecar()]).await.unwrap();
    // The default source, with the Docker socket there: Docker.
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    let port = running.task.host_port(0, 80).await.unwrap();
    assert_eq!(world.wait_for_targets("_new._tcp", 1, WAIT).await.unwrap(), [srv_value(&running, port)]);
    assert!(world.srv_values("_old._tcp").await.unwrap().is_empty(), "the label wins");
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap().len(), 3);
    assert!(sidecar.logged(&["ecssd sidecar starting", "\"source\":\"docker\""]), "{:#?}", sidecar.logs());
}

#[tokio::test]
async fn bridge_mode_on_ec2_registers_the_host_port_at_the_host_address() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    let web_port = running.task.host_port(0, 80).await.unwrap();
    let calc_port = running.task.host_port(1, 80).await.unwrap();
    assert_eq!(world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap(), [srv_value(&running, web_port)]);
    assert_eq!(
        world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap(),
        [srv_value(&running, calc_port)]
    );
    let records = wait_for_records(&world, &running, 4).await;
    assert_eq!(address(&records), ["127.0.0.1"], "the host IP from IMDS");
    assert!(sidecar.logged(&["ecssd sidecar starting", "\"source\":\"metadata\""]), "{:#?}", sidecar.logs());
}

#[tokio::test]
async fn task_metadata_failing_after_start_keeps_the_records_and_is_followed_again_when_back() {
    let world = World::new().await.unwrap();
    let running = world.fargate_task("fargate", &web_and_calc(), ENI).await.unwrap();
    let sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    let registered = wait_for_records(&world, &running, 4).await;

    running.metadata.set_available(false);
    wait_until_said(&sidecar, &["\"problem\":\"metadata_unreachable\""]).await;
    // While the sidecar cannot see the task, calc stops: nothing will tell it but metadata.
    running.task.stop_container(1).await.unwrap();
    // Two more failed reads (the sidecar retries within 0.5 to 5 s, not every poll): each was a chance
    // to take the failure for an empty task.
    wait_for_polls(&running, 2).await;
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap(), registered, "records are kept");
    assert!(sidecar.pid().is_some(), "still running");

    running.metadata.set_available(true);
    world.wait_for_targets("_calc._tcp", 0, WAIT).await.unwrap();
    assert_eq!(world.srv_values("_web._tcp").await.unwrap(), [srv_value(&running, 80)]);
}

#[tokio::test]
async fn once_ecs_stops_the_task_its_records_are_withdrawn_while_its_containers_still_run() {
    let world = World::new().await.unwrap();
    let running = world.fargate_task("fargate", &web_and_calc(), ENI).await.unwrap();
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Metadata, &[])).await.unwrap();
    wait_for_records(&world, &running, 4).await;

    // StopTask, a deployment, an essential container exiting: the task's DesiredStatus is STOPPED
    // while every container still runs (a load balancer's deregistration delay, stop timeouts).
    running.metadata.request_stop();
    wait_for_records(&world, &running, 0).await;
    // Its log is read as it comes: the line may follow the withdrawal it explains.
    wait_until_said(&sidecar, &["ECS is stopping the task"]).await;
    assert!(running.task.is_running(0).await.unwrap(), "web still runs");
    sidecar.sigterm().unwrap();
    assert!(sidecar.wait(WAIT).await.unwrap().success());
}

#[tokio::test]
async fn a_task_announcing_services_by_environment_only_is_told_that_metadata_mode_reads_labels() {
    let world = World::new().await.unwrap();
    let specs = [ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()];
    let running = world.fargate_task("fargate", &specs, ENI).await.unwrap();
    let sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, without_docker(Source::Auto, &[])).await.unwrap();
    wait_until_said(&sidecar, &["no container of the task has a SERVICE_* label", "dockerLabels"]).await;
    // Said once, not at every poll.
    wait_for_polls(&running, 3).await;
    let warnings = sidecar.logs().iter().filter(|l| l.contains("no container of the task has")).count();
    assert_eq!(warnings, 1);
    assert!(world.srv_values("_web._tcp").await.unwrap().is_empty());
}

/// Self-healing is the same in both modes: checks through DNS, and records deleted behind the sidecar's
/// back put back.
#[tokio::test]
async fn records_deleted_behind_its_back_return_in_metadata_mode_too() {
    let world = World::new().await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let running = world.fargate_task("fargate", &web_and_calc(), ENI).await.unwrap();
    let mut options = without_docker(Source::Metadata, &[]);
    options.env.push(("ECSSD_HEAL_CHECK_SECONDS".to_owned(), "1".to_owned()));
    options.env.extend(dns.sidecar_env());
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    let registered = wait_for_records(&world, &running, 4).await;
    wait_until_said(&sidecar, &["DNS check: nothing to repair"]).await;

    let keys: Vec<RecordKey> = registered.iter().map(|r| r.key.clone()).collect();
    world.delete_records(&keys).await.unwrap();
    wait_for("the task's records back", WAIT, || async {
        Ok((world.task_records(running.task.task_id()).await? == registered).then_some(()))
    })
    .await
    .unwrap();
    assert!(sidecar.logged(&["records_drifted"]), "said why it read Route53");
}
