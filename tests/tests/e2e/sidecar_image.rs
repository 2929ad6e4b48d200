//! The sidecar's FROM scratch image (built by scripts/build-sidecar-image) running as a container of
//! its task on the real Docker engine: with the Docker socket mounted read-only, as in ECS host mode,
//! and with no socket at all, as on Fargate.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::metadata::NetworkMode;
use ecssd_tests::wait_for;
use ecssd_tests::world::{RunningTask, World};

const IMAGE: &str = "ecssd-sidecar:dev";
const WAIT: Duration = Duration::from_secs(30);

/// The sidecar image as the task's container `ecssd`, told where moto and task metadata are (on the host
/// network only to reach them on loopback), with no drain and no mounts.
fn sidecar_container(world: &World, running: &RunningTask) -> ContainerSpec {
    let mut env: Vec<String> = world.moto.env().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("ECS_CONTAINER_METADATA_URI_V4={}", running.metadata.task_metadata_uri("ecssd")));
    env.push("ECSSD_DRAIN_SECONDS=0".into());
    ContainerSpec {
        name: "ecssd".into(),
        image: Some(IMAGE.into()),
        host_network: true,
        env,
        ..Default::default()
    }
}

/// `docker stop` of the sidecar's container (ECS's SIGTERM): a clean exit, the task's records withdrawn
/// before it.
async fn stop_and_expect_withdrawn(world: &World, running: &RunningTask, index: usize) {
    running.task.stop_container(index).await.unwrap();
    let code = wait_for("the sidecar to exit", WAIT, || async { running.task.exit_code(index).await })
        .await
        .unwrap();
    assert_eq!(code, 0, "SIGTERM from `docker stop` ends in a clean exit");
    assert!(world.task_records(running.task.task_id()).await.unwrap().is_empty(), "withdrawn before exit");
}

#[tokio::test]
async fn the_image_is_small_and_registers_and_withdraws_its_task() {
    let world = World::new().await.unwrap();
    let image = world.docker.inspect_image(IMAGE).await;
    let image = image.unwrap_or_else(|e| panic!("{IMAGE} is missing ({e}): run scripts/build-sidecar-image"));
    let size = image.size.unwrap();
    assert!(size < 10 * 1024 * 1024, "the image is {size} bytes; the goal is under 10 MB");

    // Host mode: the workload listens on the host's loopback directly; nothing is published.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let variable = format!("SERVICE_{port}_NAME=_web._tcp");
    let web = ContainerSpec {
        host_network: true,
        publish: vec![],
        cmd: Some(vec![
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            format!("127.0.0.1:{port}"),
            "-h".into(),
            "/www".into(),
        ]),
        ..ContainerSpec::httpd("web", &[variable.as_str()])
    };
    let mut running = world.task_in_mode("image", &[web], NetworkMode::Host).await.unwrap();

    let mut sidecar = sidecar_container(&world, &running);
    sidecar.env.push(format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={}", running.metadata.imds_endpoint()));
    sidecar.binds = vec!["/var/run/docker.sock:/var/run/docker.sock:ro".into()];
    let index = running.task.add(&sidecar).await.unwrap();

    let values = world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    assert_eq!(values, [format!("1 1 {port} {}.servicediscovery.internal", running.task.task_id())]);

    stop_and_expect_withdrawn(&world, &running, index).await;
}

/// No socket in the container, nothing saying which source to use: the image reads task metadata and
/// registers a Fargate-shaped task's labelled container at its ENI address, then withdraws on stop.
#[tokio::test]
async fn the_image_with_no_docker_socket_registers_its_task_from_task_metadata() {
    let world = World::new().await.unwrap();
    let eni = Ipv4Addr::new(10, 0, 7, 9);
    let web = ContainerSpec {
        labels: vec![("SERVICE_80_NAME".into(), "_web._tcp".into())],
        ..ContainerSpec::httpd("web", &[])
    };
    let mut running = world.fargate_task("image", &[web], eni).await.unwrap();

    // No mounts.
    let index = running.task.add(&sidecar_container(&world, &running)).await.unwrap();

    let values = world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    assert_eq!(values, [format!("1 1 80 {}.servicediscovery.internal", running.task.task_id())]);
    let records = world.task_records(running.task.task_id()).await.unwrap();
    let a = records.iter().find(|r| r.key.record_type == ecssd_records::RecordType::A).unwrap();
    assert_eq!(a.values(), [eni.to_string()]);
    let logs = running.task.logs(index).await.unwrap();
    assert!(logs.contains("\"source\":\"metadata\""), "{logs}");

    stop_and_expect_withdrawn(&world, &running, index).await;
}

#[tokio::test]
async fn the_image_explains_its_settings() {
    let world = World::new().await.unwrap();
    let spec = ContainerSpec {
        name: "help".into(),
        image: Some(IMAGE.into()),
        cmd: Some(vec!["--help".into()]),
        ..Default::default()
    };
    let running = world.task("image", &[spec]).await.unwrap();
    let code =
        wait_for("--help to finish", WAIT, || async { running.task.exit_code(0).await }).await.unwrap();
    assert_eq!(code, 0);
    let logs = running.task.logs(0).await.unwrap();
    for setting in ["ECSSD_DOMAIN", "ECSSD_TTL", "ECSSD_DRAIN_SECONDS", "--once", "--deregister"] {
        assert!(logs.contains(setting), "--help mentions {setting}: {logs}");
    }
}
