//! The harness's own stand-ins and Docker plumbing: task metadata v4 and IMDSv2 describe what Docker
//! really runs, workload containers serve HTTP, and containers are removed when a test ends.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::query_parameters::InspectContainerOptions;
use ecssd_records::{Change, Record, RecordKey, RecordStore, RecordType};
use ecssd_tests::dns::{Answer, LiveDns, Rdata};
use ecssd_tests::docker::{self, ContainerSpec, Task};
use ecssd_tests::metadata::{ClusterForm, MetadataConfig, MetadataServer, NetworkMode};
use ecssd_tests::world::{DOMAIN, World};
use ecssd_tests::{http, init_tracing, wait_for};

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

/// Whether `err` comes from the peer resetting the connection.
fn is_reset(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
    })
}

#[tokio::test]
async fn imds_connections_can_be_reset_without_touching_task_metadata() {
    let docker = docker::connect().await.unwrap();
    let task = Task::start(&docker, "harness", &[]).await.unwrap();
    let server = MetadataServer::start(docker, metadata_config(&task, NetworkMode::Bridge)).await.unwrap();
    let token_url = format!("{}/latest/api/token", server.imds_endpoint());
    let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "21600")];

    server.reset_imds_connections(2);
    let metadata = http::get_json(&format!("{}/task", server.task_metadata_uri("ecssd"))).await.unwrap();
    assert_eq!(metadata["TaskARN"], task.task_arn.as_str(), "task metadata is not reset");
    assert_eq!(server.imds_resets_done(), 0);
    for attempt in 1..=2 {
        let err = http::request_with_headers("PUT", &token_url, &ttl, None).await.unwrap_err();
        assert!(is_reset(&err), "attempt {attempt}: a connection reset, not a response: {err:#}");
        assert_eq!(server.imds_resets_done(), attempt);
    }
    let (status, token) = http::request_with_headers("PUT", &token_url, &ttl, None).await.unwrap();
    assert_eq!(status, 200, "the third attempt gets through");
    let token = std::str::from_utf8(&token).unwrap();
    let url = format!("{}/latest/meta-data/instance-id", server.imds_endpoint());
    let (status, _) =
        http::request_with_headers("GET", &url, &[("x-aws-ec2-metadata-token", token)], None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(server.imds_resets_done(), 2);

    // The SDK's IMDS client, which the sidecar uses, sees a dispatch failure rather than an HTTP status.
    server.reset_imds_connections(1);
    let imds =
        aws_config::imds::Client::builder().endpoint(server.imds_endpoint()).unwrap().max_attempts(1).build();
    let err = imds.get("/latest/meta-data/local-ipv4").await.unwrap_err();
    match &err {
        aws_config::imds::client::error::ImdsError::FailedToLoadToken(e) => {
            assert!(e.is_dispatch_failure(), "{err:?}")
        }
        other => panic!("expected a failed token load, got {other:?}"),
    }
    assert_eq!(err.to_string(), "failed to load IMDS session token");
    let ip = imds.get("/latest/meta-data/local-ipv4").await.unwrap();
    assert_eq!(String::from(ip), "127.0.0.1");
    assert_eq!(server.imds_resets_done(), 3);
}

fn record(label: &str, record_type: RecordType, values: &[&str]) -> Record {
    let key = RecordKey { name: format!("{label}.{DOMAIN}."), record_type, set_identifier: None };
    Record::new(key, 10, values.iter().map(|v| (*v).to_owned()).collect())
}

/// The answer for `label` once `check` accepts it (dnsmasq restarts between answers).
async fn answer_for(
    dns: &LiveDns,
    label: &str,
    record_type: RecordType,
    what: &str,
    check: impl Fn(&Answer) -> bool,
) -> Answer {
    let name = format!("{label}.{DOMAIN}");
    wait_for(what, Duration::from_secs(5), || async {
        Ok(dns.query(&name, record_type).await.ok().filter(&check))
    })
    .await
    .unwrap()
}

fn nxdomain(answer: &Answer) -> bool {
    answer.rcode == Answer::NXDOMAIN
}

#[tokio::test]
async fn live_dns_follows_the_zone_through_deletions_and_a_recreated_zone() {
    init_tracing();
    let world = World::new().await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    assert!(dns.address().starts_with("127.0.0.1:"));
    assert!(nxdomain(&dns.query(&format!("web-1.{DOMAIN}"), RecordType::A).await.unwrap()));

    let a = record("web-1", RecordType::A, &["10.0.0.7"]);
    let srv = record(
        "_web._tcp",
        RecordType::Srv,
        &["1 10 8080 web-1.servicediscovery.internal.", "1 10 8081 web-1.servicediscovery.internal."],
    );
    // Two TXT RRs, one with several strings, one with a comma and spaces inside a string.
    let txt = record(
        "web-1",
        RecordType::Txt,
        &[r#""heritage=ecssd" "owner=default" "task=arn:aws:ecs:us-east-1:1:task/c/t""#, r#""a, b c_d-e.f""#],
    );
    world.zone.apply(&[Change::create(a.clone()), Change::create(srv), Change::create(txt)]).await.unwrap();

    let served = answer_for(&dns, "web-1", RecordType::A, "the A record", |a| !a.records.is_empty()).await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 7))]);
    let mut srv = dns.query(&format!("_web._tcp.{DOMAIN}"), RecordType::Srv).await.unwrap().records;
    srv.sort_by_key(|r| format!("{r:?}"));
    let target = format!("web-1.{DOMAIN}");
    assert_eq!(
        srv,
        [
            Rdata::Srv { priority: 1, weight: 10, port: 8080, target: target.clone() },
            Rdata::Srv { priority: 1, weight: 10, port: 8081, target },
        ]
    );
    let mut txt = dns.query(&format!("web-1.{DOMAIN}"), RecordType::Txt).await.unwrap().records;
    txt.sort_by_key(|r| format!("{r:?}"));
    let strings = |s: &[&str]| Rdata::Txt(s.iter().map(|s| (*s).to_owned()).collect());
    assert_eq!(
        txt,
        [
            strings(&["a, b c_d-e.f"]),
            strings(&["heritage=ecssd", "owner=default", "task=arn:aws:ecs:us-east-1:1:task/c/t"]),
        ]
    );

    let deleted = tokio::time::Instant::now();
    world.delete_records(&[a.key]).await.unwrap();
    answer_for(&dns, "web-1", RecordType::A, "the A record gone", |a| a.records.is_empty()).await;
    // A few 100 ms polls, each a zone listing and a dnsmasq restart (a loaded machine stretches them,
    // seen at 2.2 s under a parallel build): well inside the records' 10 s TTL, so not a cache expiring.
    assert!(deleted.elapsed() < Duration::from_secs(5), "took {:?}", deleted.elapsed());
    let txt = dns.query(&format!("web-1.{DOMAIN}"), RecordType::Txt).await.unwrap();
    assert_eq!(txt.records.len(), 2, "the other records stay");

    let old_zone = world.zone.zone_id();
    world.recreate_zone().await.unwrap();
    assert_ne!(world.zone.zone_id(), old_zone);
    assert!(world.records().await.unwrap().is_empty(), "the new zone starts empty");
    answer_for(&dns, "web-1", RecordType::Txt, "the old zone's names gone", nxdomain).await;
    assert!(nxdomain(&dns.query(&format!("_web._tcp.{DOMAIN}"), RecordType::Srv).await.unwrap()));

    world.zone.apply(&[Change::create(record("web-2", RecordType::A, &["10.0.0.8"]))]).await.unwrap();
    let served =
        answer_for(&dns, "web-2", RecordType::A, "the new zone's record", |a| !a.records.is_empty()).await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 8))]);
}

#[tokio::test]
async fn live_dns_answers_nxdomain_while_no_zone_has_the_domain() {
    init_tracing();
    let world = World::new().await.unwrap();
    let a = record("web-1", RecordType::A, &["10.0.0.7"]);
    world.zone.apply(&[Change::create(a.clone())]).await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let served = dns.query(&format!("web-1.{DOMAIN}"), RecordType::A).await.unwrap();
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 7))], "serves the zone from the start");

    // Deleted behind World's back: no zone at all for a while.
    world.delete_records(&[a.key]).await.unwrap();
    let client = world.observer_client();
    client.delete_hosted_zone().id(world.zone.zone_id()).send().await.unwrap();
    answer_for(&dns, "web-1", RecordType::A, "NXDOMAIN without a zone", nxdomain).await;

    let zone_id = world.moto.create_private_zone(DOMAIN).await.unwrap();
    let zone = ecssd_edge::Route53Zone::for_id(
        client,
        &zone_id,
        DOMAIN.parse().unwrap(),
        ecssd_records::RetryPolicy::default(),
    );
    zone.apply(&[Change::create(record("web-1", RecordType::A, &["10.0.0.9"]))]).await.unwrap();
    let served =
        answer_for(&dns, "web-1", RecordType::A, "the zone created again", |a| !a.records.is_empty()).await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 9))]);
}
