#![allow(clippy::unwrap_used)]
//! Proves each correction and rule `tests/moto/ecssd_moto.py` adds to moto, through the real Rust SDK,
//! so the other tests check AWS's documented behaviour. One test per divergence or rule.

use std::time::Duration;

use aws_sdk_route53::error::ProvideErrorMetadata;
use aws_sdk_route53::operation::change_resource_record_sets::{
    ChangeResourceRecordSetsError, ChangeResourceRecordSetsOutput,
};
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use ecssd_tests::ecs::Fleet;
use ecssd_tests::moto::{AccountRate, Moto};

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

/// A fresh moto with one private zone and a client without the SDK's retries (they would hide the
/// errors these tests look at). Each test isolates one rule: per-zone change serialisation is off here
/// (its own tests turn it on), so a test's consecutive changes are not refused by it.
async fn route53() -> (Moto, aws_sdk_route53::Client, String) {
    let moto = Moto::start().await.unwrap();
    moto.set_change_processing(Duration::ZERO).await.unwrap();
    let zone = moto.create_private_zone(DOMAIN).await.unwrap();
    let client = ecssd_edge::route53::client(&moto.sdk_config());
    (moto, client, zone)
}

type ChangeResult =
    Result<ChangeResourceRecordSetsOutput, aws_sdk_route53::error::SdkError<ChangeResourceRecordSetsError>>;

async fn apply_raw(client: &aws_sdk_route53::Client, zone: &str, changes: Vec<Change>) -> ChangeResult {
    let batch = ChangeBatch::builder().set_changes(Some(changes)).build().unwrap();
    client.change_resource_record_sets().hosted_zone_id(zone).change_batch(batch).send().await
}

async fn apply(client: &aws_sdk_route53::Client, zone: &str, changes: Vec<Change>) -> Result<(), String> {
    apply_raw(client, zone, changes).await.map(drop).map_err(|e| error_chain(&e))
}

/// The message of the `InvalidChangeBatch` a change was refused with (and that `messages` is empty, as
/// Route53 now puts every problem in `message`); panics on any other outcome.
async fn invalid_change_batch(client: &aws_sdk_route53::Client, zone: &str, changes: Vec<Change>) -> String {
    let err = apply_raw(client, zone, changes).await.expect_err("Route53 must refuse this batch");
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err.into_service_error() {
        ChangeResourceRecordSetsError::InvalidChangeBatch(batch) => {
            assert_eq!(status, Some(400));
            assert!(batch.messages().is_empty(), "{batch:?}");
            batch.message().expect("InvalidChangeBatch carries Route53's message").to_owned()
        }
        other => panic!("expected InvalidChangeBatch, got {other:?}"),
    }
}

fn record(name: &str, kind: RrType, set_id: Option<&str>, values: &[String]) -> ResourceRecordSet {
    let mut set = ResourceRecordSet::builder()
        .name(name)
        .r#type(kind)
        .ttl(10)
        .set_set_identifier(set_id.map(String::from));
    if set_id.is_some() {
        set = set.multi_value_answer(true);
    }
    for value in values {
        set = set.resource_records(ResourceRecord::builder().value(value).build().unwrap());
    }
    set.build().unwrap()
}

fn a_record(name: &str, set_id: Option<&str>, ip: &str) -> ResourceRecordSet {
    record(&format!("{name}.{DOMAIN}."), RrType::A, set_id, &[ip.to_owned()])
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
    let client = ecssd_edge::route53::client(&moto.sdk_config());
    let mut codes = Vec::new();
    for _ in 0..3 {
        if let Err(e) = client.list_resource_record_sets().hosted_zone_id(&zone).send().await {
            codes.push(refusal(&e));
        }
    }
    assert!(!codes.is_empty(), "a burst of 3 at 1/s must be throttled");
    assert!(codes.iter().all(|c| *c == (Some("Throttling".into()), Some(400))), "{codes:?}");
    let stats = moto.stats().await.unwrap();
    assert!(stats["route53"]["ListResourceRecordSets"]["throttled"].as_u64().unwrap() >= 1, "{stats}");
}

/// A refused request's error code and HTTP status.
fn refusal<E: ProvideErrorMetadata>(
    error: &aws_sdk_route53::error::SdkError<E, aws_sdk_route53::config::http::HttpResponse>,
) -> (Option<String>, Option<u16>) {
    (error.code().map(String::from), error.raw_response().map(|r| r.status().as_u16()))
}

/// The account's rate is one bucket for every client and operation: the burst passes, then
/// `Throttling` until it refills (Developer Guide, "Throttling for Amazon Route 53 API requests").
#[tokio::test]
async fn route53_account_rate_is_a_bed_setting_shared_by_every_client() {
    let (moto, _, zone) = route53().await;
    let first = ecssd_edge::route53::client(&moto.sdk_config());
    let second = ecssd_edge::route53::client(&moto.sdk_config());
    for rate in [AccountRate::Five, AccountRate::Ten] {
        moto.set_account_rate(Some(rate)).await.unwrap();
        let mut answered = 0;
        let mut throttled = 0;
        let started = std::time::Instant::now();
        // Twice the burst, as fast as it goes, from two clients and two operations.
        for i in 0..2 * rate.burst() {
            let refused = if i % 2 == 0 {
                first
                    .list_resource_record_sets()
                    .hosted_zone_id(&zone)
                    .send()
                    .await
                    .err()
                    .map(|e| refusal(&e))
            } else {
                second.get_hosted_zone().id(&zone).send().await.err().map(|e| refusal(&e))
            };
            match refused {
                None => answered += 1,
                Some(refusal) => {
                    assert_eq!(refusal, (Some("Throttling".to_owned()), Some(400)));
                    throttled += 1;
                }
            }
        }
        // The burst, and what the rate refilled while the requests ran.
        let refilled = (started.elapsed().as_secs_f64() * f64::from(rate.per_second())).ceil() as u32;
        let burst = rate.burst();
        assert!(answered >= burst && answered <= burst + refilled, "{rate:?}: {answered} answered");
        assert!(throttled > 0, "{rate:?}");
        moto.set_account_rate(None).await.unwrap();
    }
    first.list_resource_record_sets().hosted_zone_id(&zone).send().await.expect("unlimited again");
}

#[tokio::test]
async fn route53_concurrent_batches_lose_no_update() {
    let (_moto, client, zone) = route53().await;
    // Many batches of many changes at once: moto without the launcher's lock loses some of them. One
    // name per batch: Route53 allows at most 100 multivalue records per name and type.
    let batches = (0..20).map(|b| {
        let client = client.clone();
        let zone = zone.clone();
        let name = format!("_web{b}._tcp.{DOMAIN}.");
        let changes = (0..50)
            .map(|i| {
                let set =
                    record(&name, RrType::Srv, Some(&format!("b{b}-{i}")), &[format!("1 1 9000 t.{DOMAIN}")]);
                change(ChangeAction::Create, set)
            })
            .collect();
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

// ------------------------------------------------------------------------------------ Route53 rules

#[tokio::test]
async fn route53_refuses_a_zones_change_while_its_previous_change_is_processed() {
    let (moto, client, zone) = route53().await;
    let other_zone = moto.create_private_zone("other.internal").await.unwrap();
    // A window far longer than this test's requests take, so the second change surely falls in it.
    moto.set_change_processing(Duration::from_secs(30)).await.unwrap();
    apply(&client, &zone, vec![change(ChangeAction::Create, a_record("a", None, "10.0.0.1"))]).await.unwrap();
    let err = apply_raw(&client, &zone, vec![change(ChangeAction::Create, a_record("b", None, "10.0.0.2"))])
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let err = err.into_service_error();
    assert!(err.is_prior_request_not_complete(), "{err:?}");
    assert_eq!(
        err.message(),
        Some("The request was rejected because Route 53 was still processing a prior request.")
    );
    // Serialisation is per zone: another zone's change is processed meanwhile.
    let other = ResourceRecordSet::builder()
        .name("x.other.internal.")
        .r#type(RrType::A)
        .ttl(10)
        .resource_records(ResourceRecord::builder().value("10.0.0.3").build().unwrap())
        .build()
        .unwrap();
    apply(&client, &other_zone, vec![change(ChangeAction::Create, other)]).await.unwrap();
    // Once the previous change is processed (the window shortened to nothing), the zone accepts again;
    // the refused change was not applied.
    moto.set_change_processing(Duration::ZERO).await.unwrap();
    apply(&client, &zone, vec![change(ChangeAction::Create, a_record("b", None, "10.0.0.2"))]).await.unwrap();
    let (records, _) = list(&client, &zone, 300).await;
    assert_eq!(records.iter().filter(|r| r.starts_with("A ")).count(), 2, "{records:?}");
}

#[tokio::test]
async fn route53_processing_window_defaults_to_100_ms_and_is_not_propagation() {
    let moto = Moto::start().await.unwrap();
    assert_eq!(moto.limits().await.unwrap()["route53"]["change_processing_ms"], 100);
    assert_eq!(moto.limits().await.unwrap()["route53"]["max_rrsets_per_zone"], 10000);
    let zone = moto.create_private_zone(DOMAIN).await.unwrap();
    let client = ecssd_edge::route53::client(&moto.sdk_config());
    let accepted =
        apply_raw(&client, &zone, vec![change(ChangeAction::Create, a_record("a", None, "10.0.0.1"))])
            .await
            .unwrap();
    // The change is accepted as Route53 accepts it; the window is processing, not propagation.
    assert!(accepted.change_info().is_some());
    // The zone takes the next change once the default window has passed (waited on, not slept).
    let next = ecssd_tests::wait_for("the zone to accept its next change", Duration::from_secs(5), || {
        let client = client.clone();
        let zone = zone.clone();
        async move {
            match apply_raw(
                &client,
                &zone,
                vec![change(ChangeAction::Create, a_record("b", None, "10.0.0.2"))],
            )
            .await
            {
                Ok(_) => Ok(Some(())),
                Err(e) if e.as_service_error().is_some_and(|e| e.is_prior_request_not_complete()) => Ok(None),
                Err(e) => Err(anyhow::anyhow!(error_chain(&e))),
            }
        }
    })
    .await;
    next.unwrap();
}

#[tokio::test]
async fn route53_conflict_messages_are_route53s_and_combined_in_one_message() {
    let (_moto, client, zone) = route53().await;
    apply(
        &client,
        &zone,
        vec![
            change(ChangeAction::Create, srv("a", 80)),
            change(ChangeAction::Create, a_record("x", None, "10.0.0.1")),
        ],
    )
    .await
    .unwrap();
    let message = invalid_change_batch(
        &client,
        &zone,
        vec![
            change(ChangeAction::Create, a_record("x", None, "10.0.0.9")),
            change(ChangeAction::Delete, srv("missing", 80)),
            change(ChangeAction::Delete, srv("a", 81)),
        ],
    )
    .await;
    assert_eq!(
        message,
        "[Tried to create resource record set [name='x.sd.internal.', type='A'] but it already exists, \
         Tried to delete resource record set [name='_web._tcp.sd.internal.', type='SRV', set-identifier='missing'] \
         but it was not found, \
         Tried to delete resource record set [name='_web._tcp.sd.internal.', type='SRV', set-identifier='a'] \
         but the values provided do not match the current values]"
    );
}

#[tokio::test]
async fn route53_txt_character_strings_are_at_most_255_characters() {
    let (_moto, client, zone) = route53().await;
    let name = format!("_ecssd.{DOMAIN}.");
    let long = format!("\"{}\"", "a".repeat(256));
    let message = invalid_change_batch(
        &client,
        &zone,
        vec![change(ChangeAction::Create, record(&name, RrType::Txt, None, std::slice::from_ref(&long)))],
    )
    .await;
    assert_eq!(
        message,
        format!(
            "[Invalid Resource Record: FATAL problem: CharacterStringTooLong (Value is too long) encountered with '{long}']"
        )
    );
    // The same text split into strings of at most 255 characters is one valid value.
    let split = format!("\"{}\" \"{}\"", "a".repeat(255), "b".repeat(255));
    apply(&client, &zone, vec![change(ChangeAction::Create, record(&name, RrType::Txt, None, &[split]))])
        .await
        .unwrap();
}

#[tokio::test]
async fn route53_records_hold_at_most_400_values() {
    let (_moto, client, zone) = route53().await;
    let name = format!("many.{DOMAIN}.");
    let values: Vec<String> = (0..401).map(|i| format!("10.0.{}.{}", i / 250, i % 250)).collect();
    let message = invalid_change_batch(
        &client,
        &zone,
        vec![change(ChangeAction::Create, record(&name, RrType::A, None, &values))],
    )
    .await;
    assert_eq!(message, "[Cannot have more than 400 records in a RRSet.]");
    apply(&client, &zone, vec![change(ChangeAction::Create, record(&name, RrType::A, None, &values[..400]))])
        .await
        .unwrap();
}

#[tokio::test]
async fn route53_at_most_100_multivalue_records_share_a_name_and_type() {
    let (_moto, client, zone) = route53().await;
    let hundred =
        (0..100).map(|i| change(ChangeAction::Create, srv(&format!("task-{i}"), 8000 + i))).collect();
    apply(&client, &zone, hundred).await.unwrap();
    let message =
        invalid_change_batch(&client, &zone, vec![change(ChangeAction::Create, srv("task-100", 9000))]).await;
    assert_eq!(
        message,
        "[Exceeded limit on number of multivalue RRSets for _web._tcp.sd.internal., type SRV in this zone.]"
    );
    // Replacing one of the hundred is no new record.
    apply(&client, &zone, vec![change(ChangeAction::Upsert, srv("task-7", 9007))]).await.unwrap();
}

#[tokio::test]
async fn route53_records_per_zone_quota_is_a_harness_setting() {
    let (moto, client, zone) = route53().await;
    // NS and SOA are two of the zone's records.
    moto.set_limits(serde_json::json!({"route53": {"max_rrsets_per_zone": 4}})).await.unwrap();
    let message = invalid_change_batch(
        &client,
        &zone,
        (0..3).map(|i| change(ChangeAction::Create, a_record(&format!("h{i}"), None, "10.0.0.1"))).collect(),
    )
    .await;
    assert_eq!(message, format!("[Exceeded limit MAX_RRSETS_BY_ZONE for zone: {zone}]"));
    let two =
        (0..2).map(|i| change(ChangeAction::Create, a_record(&format!("h{i}"), None, "10.0.0.1"))).collect();
    apply(&client, &zone, two).await.unwrap();
    // A full zone still takes changes that do not add records.
    apply(&client, &zone, vec![change(ChangeAction::Upsert, a_record("h0", None, "10.0.0.2"))])
        .await
        .unwrap();
    let err = moto.set_limits(serde_json::json!({"route53": {"max_records": 4}})).await.unwrap_err();
    assert!(format!("{err:#}").contains("unknown route53 setting 'max_records'"), "{err:#}");
}

#[tokio::test]
async fn route53_request_size_limits_count_upsert_twice() {
    let (_moto, client, zone) = route53().await;
    // 501 UPSERTed ResourceRecord elements count as 1,002.
    let upserts: Vec<Change> = (0..501)
        .map(|i| change(ChangeAction::Upsert, a_record(&format!("u{i}"), None, "10.0.0.1")))
        .collect();
    let message = invalid_change_batch(&client, &zone, upserts.clone()).await;
    assert_eq!(message, "[Number of records limit of 1000 exceeded.]");
    apply(&client, &zone, upserts[..500].to_vec()).await.unwrap();
    // 64 UPSERTed values of 252 characters count as 32,256 characters of Value.
    let value = format!("\"{}\"", "v".repeat(250));
    let big: Vec<Change> = (0..64)
        .map(|i| {
            change(
                ChangeAction::Upsert,
                record(&format!("t{i}.{DOMAIN}."), RrType::Txt, None, std::slice::from_ref(&value)),
            )
        })
        .collect();
    let message = invalid_change_batch(&client, &zone, big.clone()).await;
    assert_eq!(message, "[RDATA character limit of 32000 exceeded.]");
    apply(&client, &zone, big[..63].to_vec()).await.unwrap();
}

/// The zone's own record set of `kind` at its apex (its SOA or NS), read as ecssd reads the SOA: from
/// the apex and the type, one item.
async fn apex_set(client: &aws_sdk_route53::Client, zone: &str, kind: RrType) -> ResourceRecordSet {
    let page = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(format!("{DOMAIN}."))
        .start_record_type(kind.clone())
        .max_items(1)
        .send()
        .await
        .unwrap();
    let set = page.resource_record_sets().first().expect("a record set from the apex on").clone();
    assert_eq!((set.name(), set.r#type()), (format!("{DOMAIN}.").as_str(), &kind), "{page:?}");
    set
}

fn soa_record(name: &str, values: &[&str]) -> ResourceRecordSet {
    record(name, RrType::Soa, None, &values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
}

#[tokio::test]
async fn route53_refuses_deleting_the_zones_soa_and_ns() {
    let (_moto, client, zone) = route53().await;
    let (before, _) = list(&client, &zone, 300).await;
    let soa = apex_set(&client, &zone, RrType::Soa).await;
    let ns = apex_set(&client, &zone, RrType::Ns).await;
    // Each exactly as listed, so nothing but the rule refuses it.
    let message = invalid_change_batch(&client, &zone, vec![change(ChangeAction::Delete, soa.clone())]).await;
    assert_eq!(message, "[A HostedZone must contain exactly one SOA record.]");
    let message = invalid_change_batch(&client, &zone, vec![change(ChangeAction::Delete, ns.clone())]).await;
    assert_eq!(message, "[A HostedZone must contain at least one NS record for the zone itself.]");
    // Not even in a batch that puts them back.
    let message = invalid_change_batch(
        &client,
        &zone,
        vec![
            change(ChangeAction::Delete, soa.clone()),
            change(ChangeAction::Create, soa),
            change(ChangeAction::Delete, ns.clone()),
            change(ChangeAction::Create, ns),
        ],
    )
    .await;
    assert!(message.starts_with("[A HostedZone must contain exactly one SOA record., "), "{message}");
    assert!(
        message.contains(", A HostedZone must contain at least one NS record for the zone itself., "),
        "{message}"
    );
    assert_eq!(list(&client, &zone, 300).await.0, before, "the zone is unchanged");
    // An NS record below the apex delegates a subdomain: it is not the zone's own and may go.
    let delegation = record(&format!("sub.{DOMAIN}."), RrType::Ns, None, &["ns1.example.net.".to_owned()]);
    apply(&client, &zone, vec![change(ChangeAction::Create, delegation.clone())]).await.unwrap();
    apply(&client, &zone, vec![change(ChangeAction::Delete, delegation)]).await.unwrap();
}

#[tokio::test]
async fn route53_refuses_a_second_soa_and_an_soa_below_the_apex() {
    let (_moto, client, zone) = route53().await;
    let (before, _) = list(&client, &zone, 300).await;
    let soa = apex_set(&client, &zone, RrType::Soa).await;
    let value = soa.resource_records()[0].value();
    let message = invalid_change_batch(
        &client,
        &zone,
        vec![change(ChangeAction::Create, soa_record(&format!("{DOMAIN}."), &[value]))],
    )
    .await;
    assert_eq!(
        message,
        "[Tried to create resource record set [name='sd.internal.', type='SOA'] but it already exists]"
    );
    for action in [ChangeAction::Create, ChangeAction::Upsert] {
        let below = soa_record(&format!("x.{DOMAIN}."), &[value]);
        let message = invalid_change_batch(&client, &zone, vec![change(action.clone(), below)]).await;
        assert_eq!(
            message,
            "[RRSet of type SOA with DNS name x.sd.internal. is not permitted: the only SOA of zone sd.internal. is at its apex]",
            "{action:?}"
        );
    }
    assert_eq!(list(&client, &zone, 300).await.0, before, "the zone is unchanged");
}

#[tokio::test]
async fn route53_soa_upsert_takes_one_value_of_two_names_and_five_numbers() {
    let (_moto, client, zone) = route53().await;
    let apex = format!("{DOMAIN}.");
    let soa = apex_set(&client, &zone, RrType::Soa).await;
    // The SOA Route53 gives a zone: TTL 900, MINIMUM 86400.
    assert_eq!(soa.ttl(), Some(900));
    let value = soa.resource_records()[0].value();
    let (kept, minimum) = value.rsplit_once(' ').unwrap();
    assert_eq!(minimum, "86400", "{value}");
    let upsert = |values: &[&str]| change(ChangeAction::Upsert, soa_record(&apex, values));
    let message = invalid_change_batch(&client, &zone, vec![upsert(&[value, "a. b. 1 2 3 4 5"])]).await;
    assert_eq!(message, "[A HostedZone must contain exactly one SOA record.]");
    for bad in [
        "a. b. 1 2 3 4",
        "a. b. 1 2 3 4 5 6",
        "a. b. 1 2 x 4 5",
        "a. b. 1 2 3 4 -5",
        "a. b. 1 2 3 4 4294967296",
        "a..b. c. 1 2 3 4 5",
        "",
    ] {
        let message = invalid_change_batch(&client, &zone, vec![upsert(&[bad])]).await;
        assert_eq!(
            message,
            format!(
                "[SOA value '{bad}' is not <primary name> <mailbox name> <serial> <refresh> <retry> <expire> <minimum>, \
                 each number 0 to 4294967295]"
            )
        );
    }
    assert_eq!(apex_set(&client, &zone, RrType::Soa).await, soa, "no refused UPSERT changed the SOA");
    // TTL and MINIMUM down to 60, every other field as it was.
    let short = format!("{kept} 60");
    let set = ResourceRecordSet::builder()
        .name(&apex)
        .r#type(RrType::Soa)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(&short).build().unwrap())
        .build()
        .unwrap();
    apply(&client, &zone, vec![change(ChangeAction::Upsert, set)]).await.unwrap();
    let read = apex_set(&client, &zone, RrType::Soa).await;
    assert_eq!(read.ttl(), Some(60));
    let values: Vec<_> = read.resource_records().iter().map(|r| r.value()).collect();
    assert_eq!(values, [short.as_str()]);
    // Each number may be anything from 0 to 2^32-1.
    let fields: Vec<_> = value.split(' ').collect();
    let extremes = format!("{} {} 4294967295 0 0 0 0", fields[0], fields[1]);
    apply(&client, &zone, vec![upsert(&[&extremes])]).await.unwrap();
}

#[tokio::test]
async fn route53_lists_in_its_documented_order_and_from_the_apex_soa_the_soa_first() {
    let (_moto, client, zone) = route53().await;
    let apex = format!("{DOMAIN}.");
    let creates = vec![
        record(&apex, RrType::Txt, None, &["\"v\"".to_owned()]),
        record(&apex, RrType::Mx, None, &[format!("10 mail.{DOMAIN}.")]),
        a_record("a", None, "10.0.0.1"),
        a_record("a-b", None, "10.0.0.2"),
        srv("x", 80),
    ];
    apply(&client, &zone, creates.into_iter().map(|set| change(ChangeAction::Create, set)).collect())
        .await
        .unwrap();
    let listed = client.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    let order: Vec<_> =
        listed.resource_record_sets().iter().map(|set| format!("{} {}", set.name(), set.r#type())).collect();
    // Labels reversed with a trailing dot ("internal.sd.a-b." before "internal.sd.a."), then the type.
    assert_eq!(
        order,
        [
            "sd.internal. MX",
            "sd.internal. NS",
            "sd.internal. SOA",
            "sd.internal. TXT",
            "_web._tcp.sd.internal. SRV",
            "a-b.sd.internal. A",
            "a.sd.internal. A",
        ]
    );
    let page = client
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .start_record_name(&apex)
        .start_record_type(RrType::Soa)
        .max_items(1)
        .send()
        .await
        .unwrap();
    let first: Vec<_> = page.resource_record_sets().iter().map(|set| (set.name(), set.r#type())).collect();
    assert_eq!(first, [(apex.as_str(), &RrType::Soa)]);
    assert!(page.is_truncated());
    assert_eq!((page.next_record_name(), page.next_record_type()), (Some(apex.as_str()), Some(&RrType::Txt)));
}

// ------------------------------------------------------------------------------- fault injection

#[tokio::test]
async fn injected_modeled_error_fails_only_its_operation_and_decodes_as_the_variant() {
    let (moto, client, zone) = route53().await;
    moto.set_faults(serde_json::json!({"route53": {"errors": [[400, "PriorRequestNotComplete", "ChangeResourceRecordSets"]]}}))
        .await
        .unwrap();
    // Other operations pass untouched.
    client.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    let err = apply_raw(&client, &zone, vec![change(ChangeAction::Create, a_record("a", None, "10.0.0.1"))])
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let err = err.into_service_error();
    assert!(
        matches!(err, ChangeResourceRecordSetsError::PriorRequestNotComplete(_)),
        "the SDK decodes the modeled variant: {err:?}"
    );
    assert_eq!(
        err.message(),
        Some("The request was rejected because Route 53 was still processing a prior request.")
    );
    // One entry fails one request.
    apply(&client, &zone, vec![change(ChangeAction::Create, a_record("a", None, "10.0.0.1"))]).await.unwrap();
    let stats = moto.stats().await.unwrap();
    assert_eq!(stats["route53"]["ChangeResourceRecordSets"]["failed"], 1, "{stats}");
}

#[tokio::test]
async fn injected_generic_errors_fail_the_next_request_of_any_operation() {
    let (moto, client, zone) = route53().await;
    moto.set_faults(
        serde_json::json!({"route53": {"errors": [[500, "InternalError"], [429, "ThrottlingException"]]}}),
    )
    .await
    .unwrap();
    let first = client.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap_err();
    assert_eq!(first.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(first.code(), Some("InternalError"));
    let second =
        apply_raw(&client, &zone, vec![change(ChangeAction::Create, a_record("a", None, "10.0.0.1"))])
            .await
            .unwrap_err();
    assert_eq!(second.raw_response().map(|r| r.status().as_u16()), Some(429));
    assert_eq!(second.code(), Some("ThrottlingException"));
    client.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
}

#[tokio::test]
async fn set_faults_refuses_codes_aws_does_not_model() {
    let (moto, client, zone) = route53().await;
    let err = moto
        .set_faults(serde_json::json!({"route53": {"errors": [[500, "InternalError"], [400, "PriorRequestInProgress"]]}}))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(text.contains("route53.errors[1] [400, \"PriorRequestInProgress\"]"), "names the entry: {text}");
    assert!(text.contains("the route53 model has no error 'PriorRequestInProgress'"), "says why: {text}");
    // A modeled code without its operation is refused too, naming the operation that models it.
    let err = moto
        .set_faults(serde_json::json!({"route53": {"errors": [[400, "PriorRequestNotComplete"]]}}))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("ChangeResourceRecordSets"), "{err:#}");
    // Nothing was configured: the valid entry beside the refused one fails nothing.
    client.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    assert_eq!(moto.stats().await.unwrap()["route53"]["ListResourceRecordSets"]["failed"], 0);
}

#[tokio::test]
async fn set_faults_refuses_a_code_modeled_for_another_operation_or_status() {
    let (moto, _client, _zone) = route53().await;
    let err = moto
        .set_faults(serde_json::json!({"route53": {"errors": [[400, "PriorRequestNotComplete", "ListResourceRecordSets"]]}}))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(
            "'PriorRequestNotComplete' is not an error the route53 model lists for ListResourceRecordSets"
        ),
        "{text}"
    );
    assert!(text.contains("400 InvalidInput, 404 NoSuchHostedZone"), "lists the allowed codes: {text}");
    let err = moto
        .set_faults(serde_json::json!({"route53": {"errors": [[500, "PriorRequestNotComplete", "ChangeResourceRecordSets"]]}}))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("gives PriorRequestNotComplete HTTP 400, not 500"), "{err:#}");
    let err = moto
        .set_faults(serde_json::json!({"route53": {"errors": [[400, "InvalidInput", "NoSuchOperation"]]}}))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("route53 has no operation 'NoSuchOperation'"), "{err:#}");
}

#[tokio::test]
async fn injected_ecs_and_ec2_errors_have_their_wire_shape() {
    let moto = Moto::start().await.unwrap();
    let fleet = Fleet::new(&moto).await.unwrap();
    fleet.cluster("c").await.unwrap();
    let sdk = moto.sdk_config();
    let no_retries = aws_sdk_ecs::config::retry::RetryConfig::disabled();
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&sdk).retry_config(no_retries.clone()).build(),
    );
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk).retry_config(no_retries).build(),
    );
    // ECS codes may be given by shape name; ServerException is a server fault: HTTP 500.
    moto.set_faults(serde_json::json!({"ecs": {"errors": [[500, "ServerException", "DescribeTasks"]]}}))
        .await
        .unwrap();
    ecs.list_tasks().cluster("c").send().await.unwrap();
    let err = ecs.describe_tasks().cluster("c").tasks("t").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(err.into_service_error().is_server_exception());
    // EC2 models no errors per operation: only the generic ones, in EC2's <Response><Errors> body.
    let err = moto
        .set_faults(serde_json::json!({"ec2": {"errors": [[400, "InvalidInstanceID.NotFound", "DescribeInstances"]]}}))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("it lists: none"), "{err:#}");
    moto.set_faults(serde_json::json!({"ec2": {"errors": [[400, "RequestLimitExceeded"]]}})).await.unwrap();
    let err = ec2.describe_instances().send().await.unwrap_err();
    use aws_sdk_ec2::error::ProvideErrorMetadata as _;
    assert_eq!(err.code(), Some("RequestLimitExceeded"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let stats = moto.stats().await.unwrap();
    assert_eq!(
        stats["ec2"]["DescribeInstances"]["failed"], 1,
        "operations of the query protocol are named: {stats}"
    );
}

// ------------------------------------------------------------------------------------ ECS limits

#[tokio::test]
async fn ecs_list_tasks_and_container_instances_page_at_most_100() {
    let moto = Moto::start().await.unwrap();
    let fleet = Fleet::new(&moto).await.unwrap();
    fleet.cluster("c").await.unwrap();
    let host = fleet.host("c").await.unwrap();
    fleet.host("c").await.unwrap();
    fleet.host("c").await.unwrap();
    for _ in 0..11 {
        let run = fleet
            .ecs
            .run_task()
            .cluster("c")
            .task_definition(fleet.definition())
            .count(10)
            .send()
            .await
            .unwrap();
        assert_eq!(run.tasks().len(), 10);
    }
    let first = fleet.ecs.list_tasks().cluster("c").send().await.unwrap();
    assert_eq!(first.task_arns().len(), 100, "default maxResults is 100");
    let token = first.next_token().expect("a nextToken continues the listing").to_owned();
    let rest = fleet.ecs.list_tasks().cluster("c").next_token(token).send().await.unwrap();
    assert_eq!(rest.task_arns().len(), 10);
    assert!(rest.next_token().is_none());
    let mut all: Vec<String> = first.task_arns().iter().chain(rest.task_arns()).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 110, "every task exactly once");
    for bad in [0, 101] {
        let err = fleet.ecs.list_tasks().cluster("c").max_results(bad).send().await.unwrap_err();
        assert!(err.into_service_error().is_invalid_parameter_exception(), "maxResults {bad}");
        let err =
            fleet.ecs.list_container_instances().cluster("c").max_results(bad).send().await.unwrap_err();
        assert!(err.into_service_error().is_invalid_parameter_exception(), "maxResults {bad}");
    }
    let page = fleet.ecs.list_container_instances().cluster("c").max_results(2).send().await.unwrap();
    assert_eq!(page.container_instance_arns().len(), 2);
    let rest = fleet
        .ecs
        .list_container_instances()
        .cluster("c")
        .max_results(2)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.container_instance_arns().len(), 1);
    assert!(rest.next_token().is_none());
    let on_host = fleet
        .ecs
        .list_tasks()
        .cluster("c")
        .container_instance(&host.container_instance_arn)
        .max_results(100)
        .send()
        .await;
    assert!(on_host.unwrap().task_arns().len() <= 100);
}

#[tokio::test]
async fn ecs_describe_calls_refuse_more_than_100_identifiers() {
    let moto = Moto::start().await.unwrap();
    let fleet = Fleet::new(&moto).await.unwrap();
    fleet.cluster("c").await.unwrap();
    let host = fleet.host("c").await.unwrap();
    let tasks: Vec<String> =
        (0..101).map(|i| format!("arn:aws:ecs:us-east-1:123456789012:task/c/{i:032x}")).collect();
    let err =
        fleet.ecs.describe_tasks().cluster("c").set_tasks(Some(tasks.clone())).send().await.unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert_eq!(
        aws_sdk_ecs::error::ProvideErrorMetadata::message(&err),
        Some("taskIds can have at most 100 items.")
    );
    let hundred =
        fleet.ecs.describe_tasks().cluster("c").set_tasks(Some(tasks[..100].to_vec())).send().await.unwrap();
    assert_eq!(hundred.failures().len(), 100);
    let instances = vec![host.container_instance_arn.clone(); 101];
    let err = fleet
        .ecs
        .describe_container_instances()
        .cluster("c")
        .set_container_instances(Some(instances.clone()))
        .send()
        .await;
    let err = err.unwrap_err().into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert_eq!(
        aws_sdk_ecs::error::ProvideErrorMetadata::message(&err),
        Some("instanceIds can have at most 100 items.")
    );
    fleet
        .ecs
        .describe_container_instances()
        .cluster("c")
        .set_container_instances(Some(instances[..100].to_vec()))
        .send()
        .await
        .unwrap();
}

// ------------------------------------------------------------------------------------------- EC2

#[tokio::test]
async fn ec2_terminated_instances_are_described_without_a_private_ip() {
    let moto = Moto::start().await.unwrap();
    let fleet = Fleet::new(&moto).await.unwrap();
    fleet.cluster("c").await.unwrap();
    let host = fleet.host("c").await.unwrap();
    let running = fleet.host("c").await.unwrap();
    fleet.terminate(&host).await.unwrap();
    let described = fleet
        .ec2
        .describe_instances()
        .instance_ids(&host.instance_id)
        .instance_ids(&running.instance_id)
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = described.reservations().iter().flat_map(|r| r.instances()).collect();
    let terminated = instances.iter().find(|i| i.instance_id() == Some(host.instance_id.as_str())).unwrap();
    assert_eq!(
        terminated.state().and_then(|s| s.name()),
        Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
    );
    assert_eq!(terminated.private_ip_address(), None);
    assert!(terminated.network_interfaces().is_empty());
    let alive = instances.iter().find(|i| i.instance_id() == Some(running.instance_id.as_str())).unwrap();
    assert!(alive.private_ip_address().is_some(), "a running instance keeps its address");
}

// ------------------------------------------------------------------------------------------- SQS

/// SQS Developer Guide, "Amazon SQS standard queues": "a nearly unlimited number of API calls per second,
/// per API action", whatever the backlog; "Amazon SQS visibility timeout": a received message is not
/// received again until its visibility timeout ends. moto's SQS rescans every message, datetimes and
/// all, per message sent or received (1,000 messages took it over a minute) and races concurrent
/// receives and deletes (messages received twice, dropped, or lost to an HTTP 500): the bed's
/// `ecssd_sqs.py`. As the registration queue meets it when a fleet starts: a thousand messages sent at
/// once, then five consumers long-polling and deleting in batches, as Lambda's event source mapping
/// does, while more are sent.
#[tokio::test]
async fn sqs_concurrent_consumers_receive_every_message_once_while_the_queue_is_full() {
    let moto = Moto::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let url = sqs
        .create_queue()
        .queue_name("q")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "180")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    const SENDERS: usize = 4;
    const EACH: usize = 250;
    const LATE: usize = 100;
    const ALL: usize = SENDERS * EACH + LATE;
    let senders = (0..SENDERS).map(|s| {
        let (sqs, url) = (sqs.clone(), url.clone());
        async move {
            for i in 0..EACH {
                sqs.send_message().queue_url(&url).message_body(format!("{s}-{i}")).send().await.unwrap();
            }
        }
    });
    futures_util::future::join_all(senders).await;
    let late = {
        let (sqs, url) = (sqs.clone(), url.clone());
        tokio::spawn(async move {
            for i in 0..LATE {
                sqs.send_message().queue_url(&url).message_body(format!("late-{i}")).send().await.unwrap();
            }
        })
    };
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let consumers: Vec<_> = (0..5)
        .map(|_| {
            let (sqs, url, received) = (sqs.clone(), url.clone(), received.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while received.lock().unwrap().len() < ALL && tokio::time::Instant::now() < deadline {
                    let answer = sqs
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send()
                        .await;
                    let messages = match answer {
                        Ok(answer) => answer.messages.unwrap_or_default(),
                        Err(e) => {
                            errors.push(error_chain(&e));
                            continue;
                        }
                    };
                    if messages.is_empty() {
                        continue;
                    }
                    let mut delete = sqs.delete_message_batch().queue_url(&url);
                    for (i, message) in messages.iter().enumerate() {
                        let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(message.receipt_handle().unwrap())
                            .build()
                            .unwrap();
                        delete = delete.entries(entry);
                    }
                    delete.send().await.unwrap();
                    received.lock().unwrap().extend(messages.into_iter().filter_map(|m| m.body));
                }
                errors
            })
        })
        .collect();
    late.await.unwrap();
    let mut errors = Vec::new();
    for consumer in consumers {
        errors.extend(consumer.await.unwrap());
    }
    let mut bodies = received.lock().unwrap().clone();
    let count = bodies.len();
    bodies.sort();
    bodies.dedup();
    assert_eq!(errors, Vec::<String>::new(), "no receive fails");
    assert_eq!((count, bodies.len()), (ALL, ALL), "every message received once, within 30 s");
}
