//! The harness's own stand-ins and Docker plumbing: task metadata v4 and IMDSv2 describe what Docker
//! really runs, workload containers serve HTTP, and containers are removed when a test ends; DNS for
//! the zone answers as Route53's name servers do, and its caching resolver caches as a VPC's does.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::query_parameters::InspectContainerOptions;
use ecssd_records::{Change, Record, RecordKey, RecordStore, RecordType, Soa, SoaStore};
use ecssd_tests::dns::{Answer, Dns, Rdata, ZoneContents, query};
use ecssd_tests::docker::{self, ContainerSpec, Task};
use ecssd_tests::metadata::{ClusterForm, LaunchType, MetadataConfig, MetadataServer, NetworkMode};
use ecssd_tests::moto::MotoForkServer;
use ecssd_tests::world::{DOMAIN, STACK_NEGATIVE_TTL, World};
use ecssd_tests::{http, init_tracing, wait_for};

fn metadata_config(task: &Task, network_mode: NetworkMode) -> MetadataConfig {
    MetadataConfig {
        task_arn: task.task_arn.clone(),
        cluster_arn: task.cluster_arn.clone(),
        cluster_form: ClusterForm::Arn,
        network_mode,
        host_ip: Ipv4Addr::LOCALHOST,
        instance_id: "i-0123456789abcdef0".into(),
        launch_type: LaunchType::Ec2,
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

/// The `/task` document of `server` and its container named `name`.
async fn task_and_container(server: &MetadataServer, name: &str) -> (serde_json::Value, serde_json::Value) {
    let metadata = http::get_json(&format!("{}/task", server.task_metadata_uri("ecssd"))).await.unwrap();
    let container = metadata["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {metadata:#}"))
        .clone();
    (metadata, container)
}

const PAUSE: &str = "~internal~ecs~pause";

/// The task definition's containers and the agent's pause container, in awsvpc mode.
fn assert_pause_container(pause: &serde_json::Value, eni: &str) {
    assert_eq!(pause["Type"], "CNI_PAUSE", "{pause:#}");
    assert_eq!(pause["DesiredStatus"], "RESOURCES_PROVISIONED", "{pause:#}");
    assert_eq!(pause["KnownStatus"], "RESOURCES_PROVISIONED", "{pause:#}");
    assert_eq!(pause["Networks"][0]["NetworkMode"], "awsvpc");
    assert_eq!(pause["Networks"][0]["IPv4Addresses"], serde_json::json!([eni]));
    assert!(pause.get("Ports").is_none(), "{pause:#}");
    let labels = pause["Labels"].as_object().unwrap();
    assert!(
        labels.keys().all(|k| k.starts_with("com.amazonaws.ecs.")),
        "the agent's labels only: {labels:?}"
    );
    assert_eq!(labels["com.amazonaws.ecs.container-name"], PAUSE);
}

#[tokio::test]
async fn fargate_metadata_has_fargates_shape() {
    let docker = docker::connect().await.unwrap();
    let web = ContainerSpec {
        labels: vec![("SERVICE_80_NAME".into(), "_web._tcp".into())],
        ..ContainerSpec::httpd("web", &[])
    };
    let task = Task::start(&docker, "harness", &[web, ContainerSpec::idle_sidecar()]).await.unwrap();
    let eni = Ipv4Addr::new(10, 0, 1, 23);
    // Asked for the short name: Fargate gives the ARN all the same.
    let config = MetadataConfig {
        launch_type: LaunchType::Fargate,
        cluster_form: ClusterForm::ShortName,
        ..metadata_config(&task, NetworkMode::Awsvpc(eni.into()))
    };
    let server = MetadataServer::start(docker.clone(), config).await.unwrap();

    let (metadata, web) = task_and_container(&server, "web").await;
    assert_eq!(metadata["LaunchType"], "FARGATE");
    assert_eq!(metadata["Cluster"], task.cluster_arn.as_str());
    let containers = metadata["Containers"].as_array().unwrap();
    let mut names: Vec<_> = containers.iter().map(|c| c["Name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ecssd", "web", PAUSE]);
    for container in containers {
        let docker_id = container["DockerId"].as_str().unwrap();
        let (task_id, number) = docker_id.split_once('-').unwrap_or_else(|| panic!("{docker_id}"));
        assert_eq!(task_id, task.task_id(), "a 32-hex id, the task's");
        assert!(number.len() == 10 && number.bytes().all(|b| b.is_ascii_digit()), "{docker_id}");
        assert_eq!(container["Networks"][0]["NetworkMode"], "awsvpc");
        assert_eq!(container["Networks"][0]["IPv4Addresses"], serde_json::json!(["10.0.1.23"]));
    }
    let ids: std::collections::HashSet<_> = containers.iter().map(|c| c["DockerId"].clone()).collect();
    assert_eq!(ids.len(), 3, "one id per container");

    assert_pause_container(containers.iter().find(|c| c["Name"] == PAUSE).unwrap(), "10.0.1.23");
    assert_eq!(web["Type"], "NORMAL");
    assert_eq!(web["DockerName"], "web", "Fargate's DockerName is the task definition's name");
    assert_eq!(web["KnownStatus"], "RUNNING");
    assert_eq!(web["Ports"], serde_json::json!([{"ContainerPort": 80, "Protocol": "tcp"}]), "no host port");
    assert_eq!(web["Labels"]["SERVICE_80_NAME"], "_web._tcp");
    let (_, sidecar) = task_and_container(&server, "ecssd").await;
    assert!(sidecar.get("Ports").is_none(), "omitted when there are none: {sidecar:#}");

    let own = http::get_json(&server.task_metadata_uri("web")).await.unwrap();
    assert_eq!(own["DockerId"], web["DockerId"], "the container's own endpoint");

    // No EC2 instance metadata on Fargate.
    let token = format!("{}/latest/api/token", server.imds_endpoint());
    let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "60")];
    let (status, _) = http::request_with_headers("PUT", &token, &ttl, None).await.unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ec2_awsvpc_metadata_reports_the_eni_address_the_pause_container_and_no_host_ports() {
    let docker = docker::connect().await.unwrap();
    let task = Task::start(&docker, "harness", &[ContainerSpec::httpd("web", &[])]).await.unwrap();
    let eni = Ipv4Addr::new(10, 1, 2, 3);
    let server =
        MetadataServer::start(docker.clone(), metadata_config(&task, NetworkMode::Awsvpc(eni.into())))
            .await
            .unwrap();
    let (metadata, web) = task_and_container(&server, "web").await;
    assert_eq!(metadata["LaunchType"], "EC2");
    let (_, pause) = task_and_container(&server, PAUSE).await;
    assert_pause_container(&pause, "10.1.2.3");
    assert_eq!(web["DockerId"], task.container_ids[0].as_str(), "on EC2, Docker's id");
    assert_eq!(web["Ports"], serde_json::json!([{"ContainerPort": 80, "Protocol": "tcp"}]), "no host port");
    assert_eq!(web["Networks"][0]["IPv4Addresses"], serde_json::json!(["10.1.2.3"]));
}

#[tokio::test]
async fn labels_are_the_task_definitions_docker_labels_and_the_agents() {
    let docker = docker::connect().await.unwrap();
    let web = ContainerSpec {
        labels: vec![
            ("SERVICE_80_NAME".into(), "_web._tcp".into()),
            ("SERVICE_8080_IGNORE".into(), "true".into()),
        ],
        ..ContainerSpec::httpd("web", &["SERVICE_80_NAME=_env._tcp"])
    };
    let task = Task::start(&docker, "harness", &[web]).await.unwrap();
    let server =
        MetadataServer::start(docker.clone(), metadata_config(&task, NetworkMode::Bridge)).await.unwrap();
    let (_, web) = task_and_container(&server, "web").await;
    let labels = web["Labels"].as_object().unwrap();
    let mut keys: Vec<_> = labels.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "SERVICE_8080_IGNORE",
            "SERVICE_80_NAME",
            "com.amazonaws.ecs.cluster",
            "com.amazonaws.ecs.container-name",
            "com.amazonaws.ecs.task-arn",
            "com.amazonaws.ecs.task-definition-family",
            "com.amazonaws.ecs.task-definition-version",
        ],
        "dockerLabels and the agent's, nothing of the bed's own"
    );
    assert_eq!(labels["SERVICE_80_NAME"], "_web._tcp", "the label, not the environment variable");
    assert_eq!(labels["com.amazonaws.ecs.task-arn"], task.task_arn.as_str());
}

#[tokio::test]
async fn health_is_reported_only_with_a_healthcheck_and_unknown_until_it_passes() {
    let docker = docker::connect().await.unwrap();
    let checked = ContainerSpec {
        healthcheck: Some("test -f /tmp/healthy".into()),
        // Docker says `starting` until the check first passes: failures in the start period do not count.
        health_start_period: Some(Duration::from_secs(120)),
        ..ContainerSpec::httpd("web", &[])
    };
    let task = Task::start(&docker, "harness", &[checked, ContainerSpec::httpd("calc", &[])]).await.unwrap();
    let server =
        MetadataServer::start(docker.clone(), metadata_config(&task, NetworkMode::Bridge)).await.unwrap();
    let health = || async {
        let (_, web) = task_and_container(&server, "web").await;
        let (_, calc) = task_and_container(&server, "calc").await;
        assert!(calc.get("Health").is_none(), "no healthcheck, no Health: {calc:#}");
        web["Health"].clone()
    };
    let starting = health().await;
    assert_eq!(starting["status"], "UNKNOWN", "Docker's `starting`, as the agent reports it: {starting:#}");

    task.exec(0, &["touch", "/tmp/healthy"]).await.unwrap();
    let healthy = wait_for("HEALTHY", Duration::from_secs(10), || async {
        let health = health().await;
        Ok((health["status"] == "HEALTHY").then_some(health))
    })
    .await
    .unwrap();
    assert!(healthy["statusSince"].is_string(), "{healthy:#}");

    task.exec(0, &["rm", "/tmp/healthy"]).await.unwrap();
    wait_for("UNHEALTHY", Duration::from_secs(10), || async {
        Ok((health().await["status"] == "UNHEALTHY").then_some(()))
    })
    .await
    .unwrap();
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
    record_with_ttl(label, record_type, 10, values)
}

fn record_with_ttl(label: &str, record_type: RecordType, ttl: u32, values: &[&str]) -> Record {
    let key = RecordKey { name: format!("{label}.{DOMAIN}."), record_type, set_identifier: None };
    Record::new(key, ttl, values.iter().map(|v| (*v).to_owned()).collect())
}

/// The answer `server` gives for `label` once `check` accepts it (the authority follows the zone a
/// poll behind; a resolver answers from its cache until that expires).
async fn answer_for(
    server: &str,
    label: &str,
    record_type: RecordType,
    what: &str,
    check: impl Fn(&Answer) -> bool,
) -> Answer {
    let name = format!("{label}.{DOMAIN}");
    // Long enough for a cache entry of the resolver tests to expire, with room for a busy machine.
    wait_for(what, Duration::from_secs(u64::from(SHORT_TTL) + 5), || async {
        Ok(query(server, &name, record_type).await.ok().filter(&check))
    })
    .await
    .unwrap()
}

async fn ask(server: &str, label: &str, record_type: RecordType) -> Answer {
    query(server, &format!("{label}.{DOMAIN}"), record_type).await.unwrap()
}

fn nxdomain(answer: &Answer) -> bool {
    answer.rcode == Answer::NXDOMAIN
}

/// The negative TTL a negative answer gives: its authority section's SOA TTL, and the SOA's MINIMUM.
fn negative_ttl(answer: &Answer) -> (u32, u32) {
    let soa = answer.soa.as_ref().unwrap_or_else(|| panic!("an SOA in the authority section: {answer:?}"));
    (soa.ttl, soa.minimum)
}

#[tokio::test]
async fn live_dns_follows_the_zone_through_deletions_and_a_recreated_zone() {
    init_tracing();
    let world = World::new().await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    assert!(dns.address().starts_with("127.0.0.1:"));
    // Following the zone is the authority's job: asked directly, nothing is cached.
    let authority = dns.authority_address();
    assert!(authority.starts_with("127.0.0.1:") && authority != dns.address());
    let absent = ask(&authority, "web-1", RecordType::A).await;
    assert!(nxdomain(&absent) && absent.authoritative, "{absent:?}");
    assert_eq!(
        negative_ttl(&absent),
        (STACK_NEGATIVE_TTL, STACK_NEGATIVE_TTL),
        "the world's zone is the stack's"
    );

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

    let served =
        answer_for(&authority, "web-1", RecordType::A, "the A record", |a| !a.records.is_empty()).await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 7))]);
    assert_eq!(served.ttl, Some(10), "the record set's TTL");
    let mut srv = ask(&authority, "_web._tcp", RecordType::Srv).await.records;
    srv.sort_by_key(|r| format!("{r:?}"));
    let target = format!("web-1.{DOMAIN}");
    assert_eq!(
        srv,
        [
            Rdata::Srv { priority: 1, weight: 10, port: 8080, target: target.clone() },
            Rdata::Srv { priority: 1, weight: 10, port: 8081, target },
        ]
    );
    let mut txt = ask(&authority, "web-1", RecordType::Txt).await.records;
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
    let nodata =
        answer_for(&authority, "web-1", RecordType::A, "the A record gone", |a| a.records.is_empty()).await;
    assert_eq!(nodata.rcode, Answer::NOERROR, "web-1 keeps its TXT records: NODATA, not NXDOMAIN");
    // A few 100 ms polls, each a zone listing and an SOA read, and nothing caches between (a loaded
    // machine stretches them: 2.2 s was seen under a parallel build when each change restarted a server).
    assert!(deleted.elapsed() < Duration::from_secs(5), "took {:?}", deleted.elapsed());
    let txt = ask(&authority, "web-1", RecordType::Txt).await;
    assert_eq!(txt.records.len(), 2, "the other records stay");

    let old_zone = world.zone.zone_id();
    world.recreate_zone().await.unwrap();
    assert_ne!(world.zone.zone_id(), old_zone);
    assert!(world.records().await.unwrap().is_empty(), "the new zone starts empty");
    // Created with Route53's SOA and given the stack's at once, as the stack's custom resource does:
    // the authority, a poll behind, may have caught the moment between.
    let stacks = |a: &Answer| nxdomain(a) && negative_ttl(a) == (STACK_NEGATIVE_TTL, STACK_NEGATIVE_TTL);
    answer_for(&authority, "web-1", RecordType::Txt, "the old zone's names gone, the stack's SOA", stacks)
        .await;
    assert!(nxdomain(&ask(&authority, "_web._tcp", RecordType::Srv).await));

    world.zone.apply(&[Change::create(record("web-2", RecordType::A, &["10.0.0.8"]))]).await.unwrap();
    let served =
        answer_for(&authority, "web-2", RecordType::A, "the new zone's record", |a| !a.records.is_empty())
            .await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 8))]);
}

#[tokio::test]
async fn live_dns_refuses_while_no_zone_has_the_domain() {
    init_tracing();
    let world = World::new().await.unwrap();
    let a = record("web-1", RecordType::A, &["10.0.0.7"]);
    world.zone.apply(&[Change::create(a.clone())]).await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let authority = dns.authority_address();
    let served = ask(&authority, "web-1", RecordType::A).await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 7))], "serves the zone from the start");

    // Deleted behind World's back: no zone at all for a while. A Route53 name server asked about a zone
    // it does not host refuses; with no SOA there is no absence to state (or cache).
    world.delete_records(&[a.key]).await.unwrap();
    let client = world.observer_client();
    client.delete_hosted_zone().id(world.zone.zone_id()).send().await.unwrap();
    let refused = |a: &Answer| a.rcode == Answer::REFUSED;
    let answer = answer_for(&authority, "web-1", RecordType::A, "REFUSED without a zone", refused).await;
    assert!(!answer.authoritative && answer.soa.is_none(), "{answer:?}");
    // The resolver passes the refusal on, which the sidecar's checks take as no answer at all.
    let through_resolver = ask(&dns.address(), "_web._tcp", RecordType::Srv).await;
    assert_eq!(through_resolver.rcode, Answer::REFUSED, "{through_resolver:?}");

    let zone_id = world.moto.create_private_zone(DOMAIN).await.unwrap();
    let zone = ecssd_edge::Route53Zone::for_id(
        client,
        &zone_id,
        DOMAIN.parse().unwrap(),
        ecssd_records::RetryPolicy::default(),
    );
    zone.apply(&[Change::create(record("web-1", RecordType::A, &["10.0.0.9"]))]).await.unwrap();
    let served =
        answer_for(&authority, "web-1", RecordType::A, "the zone created again", |a| !a.records.is_empty())
            .await;
    assert_eq!(served.records, [Rdata::A(Ipv4Addr::new(10, 0, 0, 9))]);
}

#[tokio::test]
async fn the_authority_states_absences_with_the_zone_soa_and_refuses_other_zones() {
    init_tracing();
    let world = World::new().await.unwrap();
    let srv = record("_web._tcp", RecordType::Srv, &["1 1 80 web-1.servicediscovery.internal"]);
    world
        .zone
        .apply(&[Change::create(record("web-1", RecordType::A, &["10.0.0.7"])), Change::create(srv)])
        .await
        .unwrap();
    let dns = world.serve_dns().await.unwrap();
    let authority = dns.authority_address();

    let served = ask(&authority, "WEB-1", RecordType::A).await;
    assert!(served.authoritative && served.rcode == Answer::NOERROR, "{served:?}");
    assert_eq!((served.records.clone(), served.ttl), (vec![Rdata::A(Ipv4Addr::new(10, 0, 0, 7))], Some(10)));

    let stack = (STACK_NEGATIVE_TTL, STACK_NEGATIVE_TTL);
    let missing = ask(&authority, "_calc._tcp", RecordType::Srv).await;
    assert!(nxdomain(&missing) && missing.authoritative && missing.records.is_empty(), "{missing:?}");
    assert_eq!(negative_ttl(&missing), stack);
    // NODATA: a name with records of other types only, and an empty non-terminal.
    for (label, record_type) in
        [("web-1", RecordType::Srv), ("web-1", RecordType::Txt), ("_tcp", RecordType::Srv)]
    {
        let nodata = ask(&authority, label, record_type).await;
        assert!(
            nodata.rcode == Answer::NOERROR && nodata.records.is_empty(),
            "{label} {record_type}: {nodata:?}"
        );
        assert!(nodata.authoritative, "{label} {record_type}");
        assert_eq!(negative_ttl(&nodata), stack, "{label} {record_type}");
    }
    let outside = query(&authority, "example.com", RecordType::A).await.unwrap();
    assert!(outside.rcode == Answer::REFUSED && !outside.authoritative, "{outside:?}");

    // The negative TTL is the lesser of the SOA's TTL and MINIMUM (RFC 2308 §3).
    let soa = world.zone.read_soa().await.unwrap();
    world.zone.write_soa(&Soa { ttl: 60, minimum: 30, ..soa }).await.unwrap();
    let lesser = answer_for(&authority, "_calc._tcp", RecordType::Srv, "the new SOA", |a| {
        a.soa.as_ref().is_some_and(|s| s.minimum == 30)
    })
    .await;
    assert_eq!(negative_ttl(&lesser), (30, 30));
    // A zone the stack does not own: Route53's defaults, absences cached for 15 minutes.
    world.restore_route53_negative_caching().await.unwrap();
    let route53 = answer_for(&authority, "_calc._tcp", RecordType::Srv, "Route53's SOA", |a| {
        a.soa.as_ref().is_some_and(|s| s.minimum == 86_400)
    })
    .await;
    assert_eq!(negative_ttl(&route53), (900, 86_400));
}

/// The negative TTL the resolver tests give the zone. dnsmasq's clock ticks in whole seconds, so an
/// entry it caches for N seconds lives between N-1 and N (measured: 2.3 to 3.0 s for 3): 8 s keeps
/// an absence visibly cached for over a second after the record appears, even if the authority takes
/// a few seconds to follow on a loaded machine (CI runs the tests beside two builds).
const SHORT_TTL: u32 = 8;

/// What the resolver tests ask about: an SRV name (a service whose last task withdrew) and a TXT one
/// (cached too: `--cache-rr=TXT`).
const CACHED_NAMES: [(&str, RecordType); 2] =
    [("_web._tcp", RecordType::Srv), ("_ecssd.web-1", RecordType::Txt)];

#[tokio::test]
async fn the_caching_resolver_keeps_an_absence_for_the_negative_ttl() {
    init_tracing();
    let world = World::new().await.unwrap();
    world.set_negative_ttl(SHORT_TTL).await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let (resolver, authority) = (dns.address(), dns.authority_address());

    let asked = tokio::time::Instant::now();
    for (label, record_type) in CACHED_NAMES {
        let absent = ask(&resolver, label, record_type).await;
        assert!(nxdomain(&absent) && absent.authoritative, "forwarded to the authority: {absent:?}");
        assert_eq!(negative_ttl(&absent), (SHORT_TTL, SHORT_TTL));
    }
    let srv = record("_web._tcp", RecordType::Srv, &["1 1 80 web-1.servicediscovery.internal"]);
    let txt = record("_ecssd.web-1", RecordType::Txt, &[r#""heritage=ecssd""#]);
    world.zone.apply(&[Change::create(srv), Change::create(txt)]).await.unwrap();
    for (label, record_type) in CACHED_NAMES {
        answer_for(&authority, label, record_type, "the authority to serve it", |a| !a.records.is_empty())
            .await;
    }
    let appeared = tokio::time::Instant::now();
    // Room to see the absence outlive the record by a second, with the machine busy.
    assert!(
        appeared - asked < Duration::from_secs(u64::from(SHORT_TTL) / 2),
        "following took {:?}: too slow to measure",
        appeared - asked
    );
    for (label, record_type) in CACHED_NAMES {
        let cached = ask(&resolver, label, record_type).await;
        assert!(nxdomain(&cached) && !cached.authoritative, "{label}: the cached absence: {cached:?}");
        assert!(negative_ttl(&cached).0 <= SHORT_TTL, "counting down: {cached:?}");
    }
    // Deliberately let the cached absence age: what is measured is that it outlives the record's
    // appearance by a second.
    tokio::time::sleep_until(appeared + Duration::from_secs(1)).await;
    for (label, record_type) in CACHED_NAMES {
        let cached = ask(&resolver, label, record_type).await;
        assert!(
            nxdomain(&cached),
            "{label} still absent {:?} after it was asked: {cached:?}",
            asked.elapsed()
        );
    }

    for (label, record_type) in CACHED_NAMES {
        answer_for(&resolver, label, record_type, "the resolver to show it", |a| !a.records.is_empty()).await;
    }
    let shown = asked.elapsed();
    let ttl = Duration::from_secs(u64::from(SHORT_TTL));
    assert!(
        shown > ttl - Duration::from_secs(1),
        "absent for the negative TTL, not less: shown after {shown:?}"
    );
    // dnsmasq counts whole seconds; a busy machine may answer the poll late.
    assert!(shown < ttl + Duration::from_secs(2), "and no longer: shown after {shown:?}");
}

#[tokio::test]
async fn the_caching_resolver_keeps_an_answer_for_its_ttl() {
    init_tracing();
    let world = World::new().await.unwrap();
    let srv =
        record_with_ttl("_web._tcp", RecordType::Srv, SHORT_TTL, &["1 1 80 web-1.servicediscovery.internal"]);
    let txt = record_with_ttl("_ecssd.web-1", RecordType::Txt, SHORT_TTL, &[r#""heritage=ecssd""#]);
    world.zone.apply(&[Change::create(srv.clone()), Change::create(txt.clone())]).await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let (resolver, authority) = (dns.address(), dns.authority_address());

    let asked = tokio::time::Instant::now();
    for (label, record_type) in CACHED_NAMES {
        let served = ask(&resolver, label, record_type).await;
        assert!(served.authoritative && served.records.len() == 1, "forwarded: {served:?}");
        assert_eq!(served.ttl, Some(SHORT_TTL));
    }
    world.delete_records(&[srv.key, txt.key]).await.unwrap();
    for (label, record_type) in CACHED_NAMES {
        answer_for(&authority, label, record_type, "the authority to drop it", nxdomain).await;
    }
    for (label, record_type) in CACHED_NAMES {
        let cached = ask(&resolver, label, record_type).await;
        assert!(cached.records.len() == 1 && !cached.authoritative, "{label}: the cached answer: {cached:?}");
    }
    for (label, record_type) in CACHED_NAMES {
        answer_for(&resolver, label, record_type, "the resolver to drop it", nxdomain).await;
    }
    let dropped = asked.elapsed();
    let ttl = Duration::from_secs(u64::from(SHORT_TTL));
    assert!(dropped > ttl - Duration::from_secs(1), "kept for the TTL: dropped after {dropped:?}");
    assert!(dropped < ttl + Duration::from_secs(2), "and no longer: dropped after {dropped:?}");
}

#[tokio::test]
async fn an_answer_too_big_for_udp_comes_whole_over_tcp_from_both_servers() {
    init_tracing();
    // 100 targets (Route53's most for one name) with long target names: well over a UDP answer's size.
    let targets: Vec<String> = (0..100).map(|i| format!("1 1 {} {:032x}.{DOMAIN}", 8000 + i, i)).collect();
    let key = RecordKey {
        name: format!("_web._tcp.{DOMAIN}."),
        record_type: RecordType::Srv,
        set_identifier: Some("many".into()),
    };
    let soa = Soa::parse(10, "ns-2048.awsdns-64.com. hostmaster.amazon.com. 1 7200 900 1209600 10").unwrap();
    let zone = ZoneContents { soa, records: vec![Record::new(key, 10, targets)] };
    let dns = Dns::start(Some(zone)).await.unwrap();
    for server in [dns.authority_address(), dns.address()] {
        let answer = query(&server, &format!("_web._tcp.{DOMAIN}"), RecordType::Srv).await.unwrap();
        assert_eq!((answer.rcode, answer.records.len()), (Answer::NOERROR, 100), "from {server}");
    }
}

/// `scripts/test` runs the suite on servers forked from one moto fork server: each must be what a
/// server of its own would be: empty, isolated from the others, with ids of its own (the fork copies
/// the random state: a child that did not reseed would repeat its siblings' ids), and gone once the
/// test lets go of it.
#[tokio::test]
async fn servers_forked_from_the_moto_fork_server_are_fresh_isolated_and_end_with_their_test() {
    let socket =
        std::env::temp_dir().join(format!("ecssd-forks-{}-{}.sock", std::process::id(), fastrand::u32(..)));
    let forks = MotoForkServer::start(&socket).await.unwrap();
    let (first, second) = (forks.moto().await.unwrap(), forks.moto().await.unwrap());
    assert_ne!(first.endpoint(), second.endpoint());

    let first_zone = first.create_private_zone("first.internal").await.unwrap();
    let second_zone = second.create_private_zone("second.internal").await.unwrap();
    assert_ne!(first_zone, second_zone, "each forked server makes ids of its own");
    let route53 = aws_sdk_route53::Client::new(&second.sdk_config());
    let zones = route53.list_hosted_zones().send().await.unwrap();
    let names: Vec<&str> = zones.hosted_zones().iter().map(|zone| zone.name()).collect();
    assert_eq!(names, ["second.internal."], "a forked server sees only its own state");

    let endpoint = first.endpoint().to_owned();
    drop(first);
    wait_for("the dropped server to stop serving", Duration::from_secs(10), || async {
        Ok(http::get_json(&format!("{endpoint}/_ecssd/limits")).await.is_err().then_some(()))
    })
    .await
    .unwrap();
    assert!(
        http::get_json(&format!("{}/_ecssd/limits", second.endpoint())).await.is_ok(),
        "the other still serves"
    );
}
