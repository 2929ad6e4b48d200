//! The harness's own stand-ins and Docker plumbing: task metadata v4 and IMDSv2 describe what Docker
//! really runs, workload containers serve HTTP, and containers are removed when a test ends.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::query_parameters::InspectContainerOptions;
use ecssd_tests::docker::{self, ContainerSpec, Task};
use ecssd_tests::metadata::{ClusterForm, MetadataConfig, MetadataServer, NetworkMode};
use ecssd_tests::{http, wait_for};

fn metadata_config(task: &Task, network_mode: NetworkMode) -> MetadataConfig {
    MetadataConfig {
        task_arn: task.task_arn.clone(),
        cluster_arn: task.cluster_arn.clone(),
        cluster_form: ClusterForm::Arn,
        network_mode,
        host_ip: Ipv4Addr::LOCALHOST,
        instance_id: "i-0123456789abcdef0".into(),
    }
}

#[tokio::test]
async fn task_metadata_describes_the_containers_docker_runs() {
    let docker = docker::connect().await.unwrap();
    let web = ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]);
    let sidecar = ContainerSpec {
        name: "ecssd".into(),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        ..Default::default()
    };
    let task = Task::start(&docker, "harness", &[web, sidecar]).await.unwrap();
    let server =
        MetadataServer::start(docker.clone(), metadata_config(&task, NetworkMode::Bridge)).await.unwrap();

    let metadata = http::get_json(&format!("{}/task", server.task_metadata_uri("ecssd"))).await.unwrap();
    assert_eq!(metadata["TaskARN"], task.task_arn.as_str());
    assert_eq!(metadata["Cluster"], task.cluster_arn.as_str());
    let containers = metadata["Containers"].as_array().unwrap();
    let mut names: Vec<_> = containers.iter().map(|c| c["Name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ecssd", "web"]);
    let web = containers.iter().find(|c| c["Name"] == "web").unwrap();
    let host_port = task.host_port(0, 80).await.unwrap();
    assert_eq!(web["Ports"][0]["ContainerPort"], 80);
    assert_eq!(web["Ports"][0]["HostPort"], host_port);
    assert_eq!(web["Ports"][0]["HostIp"], "127.0.0.1");
    assert_eq!(web["Labels"]["com.amazonaws.ecs.task-arn"], task.task_arn.as_str());
    assert_eq!(web["KnownStatus"], "RUNNING");
    assert_eq!(web["Networks"][0]["NetworkMode"], "bridge");

    let own = http::get_json(&server.task_metadata_uri("ecssd")).await.unwrap();
    assert_eq!(own["Name"], "ecssd");

    let short = MetadataConfig {
        cluster_form: ClusterForm::ShortName,
        ..metadata_config(&task, NetworkMode::Bridge)
    };
    let short = MetadataServer::start(docker.clone(), short).await.unwrap();
    let metadata = http::get_json(&format!("{}/task", short.task_metadata_uri("ecssd"))).await.unwrap();
    assert_eq!(metadata["Cluster"], "harness", "the short name ECS may give instead of the ARN");

    let health = wait_for("the workload's httpd", Duration::from_secs(10), || async {
        match http::request("GET", &format!("http://127.0.0.1:{host_port}/health"), None).await {
            Ok((200, body)) => Ok(Some(body)),
            _ => Ok(None),
        }
    })
    .await
    .unwrap();
    assert_eq!(&health[..], b"OK\n");
}

#[tokio::test]
async fn awsvpc_metadata_reports_the_eni_address() {
    let docker = docker::connect().await.unwrap();
    let task = Task::start(&docker, "harness", &[ContainerSpec::httpd("web", &[])]).await.unwrap();
    let eni = Ipv4Addr::new(10, 1, 2, 3);
    let server = MetadataServer::start(docker.clone(), metadata_config(&task, NetworkMode::Awsvpc(eni)))
        .await
        .unwrap();
    let metadata = http::get_json(&format!("{}/task", server.task_metadata_uri("web"))).await.unwrap();
    assert_eq!(metadata["Containers"][0]["Networks"][0]["NetworkMode"], "awsvpc");
    assert_eq!(metadata["Containers"][0]["Networks"][0]["IPv4Addresses"][0], "10.1.2.3");
}

#[tokio::test]
async fn imds_requires_a_session_token() {
    let docker = docker::connect().await.unwrap();
    let task = Task::start(&docker, "harness", &[]).await.unwrap();
    let server = MetadataServer::start(docker, metadata_config(&task, NetworkMode::Bridge)).await.unwrap();
    let url = format!("{}/latest/meta-data/local-ipv4", server.imds_endpoint());
    let (status, _) = http::request("GET", &url, None).await.unwrap();
    assert_eq!(status, 401, "IMDSv2 refuses requests without a token");
    let token_url = format!("{}/latest/api/token", server.imds_endpoint());
    let (status, _) = http::request("PUT", &token_url, None).await.unwrap();
    assert_eq!(status, 400, "a token request must say how long the session lasts");
    let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "21600")];
    let (status, token) = http::request_with_headers("PUT", &token_url, &ttl, None).await.unwrap();
    assert_eq!(status, 200);
    let token = std::str::from_utf8(&token).unwrap();
    let (status, body) =
        http::request_with_headers("GET", &url, &[("x-aws-ec2-metadata-token", token)], None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"127.0.0.1");
}

#[tokio::test]
async fn containers_are_removed_when_the_task_is_dropped() {
    let docker = docker::connect().await.unwrap();
    let task = Task::start(&docker, "harness", &[ContainerSpec::httpd("web", &[])]).await.unwrap();
    let id = task.container_ids[0].clone();
    assert!(docker.inspect_container(&id, None::<InspectContainerOptions>).await.is_ok());
    drop(task);
    assert!(docker.inspect_container(&id, None::<InspectContainerOptions>).await.is_err(), "removed on drop");
}
