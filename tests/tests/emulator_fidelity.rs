#![allow(clippy::unwrap_used)]
//! Proves each correction `tests/moto/ecssd_moto.py` makes to moto, so the other tests check real
//! Route53 and ECS behaviour. One test per divergence.

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use ecssd_tests::ecs::Fleet;
use ecssd_tests::moto::Moto;

const DOMAIN: &str = "sd.internal";

fn srv(id: &str, port: u16) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(format!("_web._tcp.{DOMAIN}."))
        .r#type(RrType::Srv)
        .ttl(10)
        .set_identifier(id)
        .multi_value_answer(true)
        .resource_records(ResourceRecord::builder().value(format!("1 1 {port} t.{DOMAIN}")).build().unwrap())
        .build()
        .unwrap()
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Change {
    Change::builder().action(action).resource_record_set(set).build().unwrap()
}

async fn route53() -> (Moto, aws_sdk_route53::Client, String) {
    let moto = Moto::start().await.unwrap();
    let zone = moto.create_private_zone(DOMAIN).await.unwrap();
    let client = aws_sdk_route53::Client::new(&moto.sdk_config());
    (moto, client, zone)
}

async fn apply(client: &aws_sdk_route53::Client, zone: &str, changes: Vec<Change>) -> Result<(), String> {
    let batch = ChangeBatch::builder().set_changes(Some(changes)).build().unwrap();
    match client.change_resource_record_sets().hosted_zone_id(zone).change_batch(batch).send().await {
        Ok(_) => Ok(()),
        Err(e) => Err(error_chain(&e)),
    }
}

fn error_chain<E: std::error::Error>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// All (type, set identifier, value) triples in the zone, by following pages of `page` items.
async fn list(client: &aws_sdk_route53::Client, zone: &str, page: i32) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut start: Option<(String, RrType, Option<String>)> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 100, "paging does not terminate");
        let mut request = client.list_resource_record_sets().hosted_zone_id(zone).max_items(page);
        if let Some((name, kind, id)) = start.take() {
            request = request.start_record_name(name).start_record_type(kind).set_start_record_identifier(id);
        }
        let response = request.send().await.unwrap();
        for set in response.resource_record_sets() {
            let values: Vec<_> = set.resource_records().iter().map(|r| r.value()).collect();
            out.push(format!(
                "{} {} {}",
                set.r#type(),
                set.set_identifier().unwrap_or("-"),
                values.join(",")
            ));
        }
        if !response.is_truncated() {
            return (out, pages);
        }
        start = Some((
            response.next_record_name().unwrap().to_owned(),
            response.next_record_type().unwrap().clone(),
            response.next_record_identifier().map(String::from),
        ));
    }
}

#[tokio::test]
async fn route53_paging_honours_start_record_identifier() {
    let (_moto, client, zone) = route53().await;
    let changes = (0..7).map(|i| change(ChangeAction::Create, srv(&format!("id{i}"), 8000 + i))).collect();
    apply(&client, &zone, changes).await.unwrap();
    let (records, pages) = list(&client, &zone, 2).await;
    let srv: Vec<_> = records.iter().filter(|r| r.starts_with("SRV")).collect();
    assert_eq!(srv.len(), 7, "every multivalue record exactly once: {records:?}");
    let mut unique = srv.clone();
    unique.dedup();
    assert_eq!(unique.len(), 7);
    assert_eq!(pages, 5, "NS+SOA and 7 SRV records in pages of 2");
}

#[tokio::test]
async fn route53_rejects_create_of_an_existing_record() {
    let (_moto, client, zone) = route53().await;
    apply(&client, &zone, vec![change(ChangeAction::Create, srv("a", 80))]).await.unwrap();
    let err = apply(&client, &zone, vec![change(ChangeAction::Create, srv("a", 81))]).await.unwrap_err();
    assert!(err.contains("InvalidChangeBatch") && err.contains("already exists"), "{err}");
    let (records, _) = list(&client, &zone, 300).await;
    assert_eq!(records.iter().filter(|r| r.starts_with("SRV")).count(), 1, "no duplicate: {records:?}");
}

#[tokio::test]
async fn route53_rejects_delete_with_stale_values() {
    let (_moto, client, zone) = route53().await;
    apply(&client, &zone, vec![change(ChangeAction::Create, srv("a", 80))]).await.unwrap();
    let err = apply(&client, &zone, vec![change(ChangeAction::Delete, srv("a", 81))]).await.unwrap_err();
    assert!(err.contains("InvalidChangeBatch") && err.contains("do not match"), "{err}");
    let missing = apply(&client, &zone, vec![change(ChangeAction::Delete, srv("zz", 80))]).await.unwrap_err();
    assert!(missing.contains("not found"), "{missing}");
}

#[tokio::test]
async fn route53_delete_by_set_identifier_removes_only_that_record() {
    let (_moto, client, zone) = route53().await;
    let other_name = ResourceRecordSet::builder()
        .name(format!("_other._tcp.{DOMAIN}."))
        .r#type(RrType::Srv)
        .ttl(10)
        .set_identifier("a")
        .multi_value_answer(true)
        .resource_records(ResourceRecord::builder().value("1 1 1 x").build().unwrap())
        .build()
        .unwrap();
    let creates = vec![
        change(ChangeAction::Create, srv("a", 80)),
        change(ChangeAction::Create, srv("b", 81)),
        change(ChangeAction::Create, other_name),
    ];
    apply(&client, &zone, creates).await.unwrap();
    apply(&client, &zone, vec![change(ChangeAction::Delete, srv("a", 80))]).await.unwrap();
    let (records, _) = list(&client, &zone, 300).await;
    let srv: Vec<_> = records.iter().filter(|r| r.starts_with("SRV")).collect();
    assert_eq!(srv, ["SRV a 1 1 1 x", "SRV b 1 1 81 t.sd.internal"], "{records:?}");
}

#[tokio::test]
async fn route53_change_batches_are_atomic() {
    let (_moto, client, zone) = route53().await;
    let err = apply(
        &client,
        &zone,
        vec![change(ChangeAction::Create, srv("a", 80)), change(ChangeAction::Delete, srv("missing", 80))],
    )
    .await;
    assert!(err.is_err());
    let (records, _) = list(&client, &zone, 300).await;
    assert!(
        records.iter().all(|r| !r.starts_with("SRV")),
        "nothing from a rejected batch applies: {records:?}"
    );
}

/// A cluster with one container instance backed by a moto EC2 instance.
async fn ecs_cluster(moto: &Moto) -> (aws_sdk_ecs::Client, String) {
    let fleet = Fleet::new(moto).await.unwrap();
    fleet.cluster("c").await.unwrap();
    fleet.host("c").await.unwrap();
    (fleet.ecs.clone(), fleet.definition().to_owned())
}

#[tokio::test]
async fn ecs_dynamic_host_ports_place_many_tasks_with_network_bindings() {
    let moto = Moto::start().await.unwrap();
    let (ecs, definition) = ecs_cluster(&moto).await;
    let run = ecs.run_task().cluster("c").task_definition(&definition).count(3).send().await.unwrap();
    assert_eq!(run.tasks().len(), 3, "hostPort 0 must not reserve port 0");
    let arns: Vec<String> = run.tasks().iter().map(|t| t.task_arn().unwrap().to_owned()).collect();
    let described = ecs.describe_tasks().cluster("c").set_tasks(Some(arns)).send().await.unwrap();
    let mut host_ports = Vec::new();
    for task in described.tasks() {
        let names: Vec<_> = task.containers().iter().map(|c| c.name().unwrap()).collect();
        assert_eq!(names, ["web", "ecssd"]);
        let binding = &task.containers()[0].network_bindings()[0];
        assert_eq!(binding.container_port(), Some(80));
        host_ports.push(binding.host_port().unwrap());
    }
    host_ports.dedup();
    assert_eq!(host_ports.len(), 3, "distinct dynamic host ports: {host_ports:?}");
    assert!(host_ports.iter().all(|p| *p >= 49153));
}

#[tokio::test]
async fn ecs_tasks_stay_running_until_stopped_and_list_tasks_skips_stopped() {
    let moto = Moto::start().await.unwrap();
    let (ecs, definition) = ecs_cluster(&moto).await;
    let run = ecs.run_task().cluster("c").task_definition(&definition).count(2).send().await.unwrap();
    let arn = run.tasks()[0].task_arn().unwrap().to_owned();
    for _ in 0..5 {
        let described = ecs.describe_tasks().cluster("c").tasks(&arn).send().await.unwrap();
        assert_eq!(described.tasks()[0].last_status(), Some("RUNNING"));
    }
    let described = ecs.describe_tasks().cluster("c").tasks(&arn).send().await.unwrap();
    let started = described.tasks()[0].started_at().expect("startedAt").secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - 60..=now + 1).contains(&started), "startedAt {started} is not about now ({now})");
    ecs.stop_task().cluster("c").task(&arn).reason("test").send().await.unwrap();
    let described = ecs.describe_tasks().cluster("c").tasks(&arn).send().await.unwrap();
    assert_eq!(described.tasks()[0].last_status(), Some("STOPPED"));
    let running = ecs.list_tasks().cluster("c").send().await.unwrap();
    assert_eq!(running.task_arns().len(), 1);
    assert!(!running.task_arns().contains(&arn));
    let stopped = ecs
        .list_tasks()
        .cluster("c")
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.task_arns(), [arn]);
}

#[tokio::test]
async fn ecs_unknown_tasks_are_missing_failures_and_clusters_are_separate() {
    let moto = Moto::start().await.unwrap();
    let (ecs, definition) = ecs_cluster(&moto).await;
    ecs.create_cluster().cluster_name("other").send().await.unwrap();
    let run = ecs.run_task().cluster("c").task_definition(&definition).count(1).send().await.unwrap();
    let arn = run.tasks()[0].task_arn().unwrap().to_owned();
    let unknown = "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef0123456789abcdef";
    let described = ecs.describe_tasks().cluster("c").tasks(&arn).tasks(unknown).send().await.unwrap();
    assert_eq!(described.tasks().len(), 1);
    assert_eq!(described.failures().len(), 1);
    assert_eq!(described.failures()[0].arn(), Some(unknown));
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));
    let elsewhere = ecs.describe_tasks().cluster("other").tasks(&arn).send().await.unwrap();
    assert!(elsewhere.tasks().is_empty());
    assert_eq!(elsewhere.failures()[0].reason(), Some("MISSING"));
    assert!(ecs.list_tasks().cluster("other").send().await.unwrap().task_arns().is_empty());
}

#[tokio::test]
async fn agent_disconnect_control_shows_in_describe_container_instances() {
    let moto = Moto::start().await.unwrap();
    let (ecs, _) = ecs_cluster(&moto).await;
    let instances = ecs.list_container_instances().cluster("c").send().await.unwrap();
    let instance = instances.container_instance_arns()[0].clone();
    moto.set_agent_connected("c", &instance, false).await.unwrap();
    let described =
        ecs.describe_container_instances().cluster("c").container_instances(&instance).send().await.unwrap();
    assert!(!described.container_instances()[0].agent_connected());
}

#[tokio::test]
async fn injected_throttling_looks_like_route53s() {
    let (moto, _, zone) = route53().await;
    moto.set_faults(serde_json::json!({"route53": {"rate_per_second": 1, "burst": 1}})).await.unwrap();
    // The SDK's own retries would hide the throttling this test wants to see.
    let client = ecssd_records::route53::client(&moto.sdk_config());
    let mut codes = Vec::new();
    for _ in 0..3 {
        if let Err(e) = client.list_resource_record_sets().hosted_zone_id(&zone).send().await {
            use aws_sdk_route53::error::ProvideErrorMetadata;
            codes.push((e.code().map(String::from), e.raw_response().map(|r| r.status().as_u16())));
        }
    }
    assert!(!codes.is_empty(), "a burst of 3 at 1/s must be throttled");
    assert!(codes.iter().all(|c| *c == (Some("Throttling".into()), Some(400))), "{codes:?}");
    let stats = moto.stats().await.unwrap();
    assert!(stats["route53"]["ListResourceRecordSets"]["throttled"].as_u64().unwrap() >= 1, "{stats}");
}

#[tokio::test]
async fn route53_concurrent_batches_lose_no_update() {
    let (_moto, client, zone) = route53().await;
    // Many batches of many changes at once: moto without the launcher's lock loses some of them.
    let batches = (0..20).map(|b| {
        let client = client.clone();
        let zone = zone.clone();
        let changes =
            (0..50).map(|i| change(ChangeAction::Create, srv(&format!("b{b}-{i}"), 9000))).collect();
        async move { apply(&client, &zone, changes).await }
    });
    for result in futures_util::future::join_all(batches).await {
        result.unwrap();
    }
    let (records, _) = list(&client, &zone, 300).await;
    assert_eq!(
        records.iter().filter(|r| r.starts_with("SRV")).count(),
        1000,
        "every accepted batch is in the zone"
    );
}
