//! The sidecar after start: DNS trouble never takes the application down, and the task's records heal.
//! The real binary, the real Docker engine, moto as Route53, dnsmasq following the zone as the VPC's
//! resolver would.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecssd_records::{Change, Record, RecordKey, RecordStore, RecordType};
use ecssd_tests::dns::LiveDns;
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::moto::Moto;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::wait_for;
use ecssd_tests::world::{DOMAIN, RunningTask, World};

const WAIT: Duration = Duration::from_secs(30);

fn web_and_calc() -> Vec<ContainerSpec> {
    vec![
        ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]),
        ContainerSpec::httpd("calc", &["SERVICE_80_NAME=_calc._tcp"]),
    ]
}

/// A sidecar that checks its records every second through the bed's caching resolver, told the
/// world zone's negative TTL (the stack's) and the bed's propagation (the authority follows the zone
/// within 0.1 s, where Route53 takes up to a minute); its records' TTL is 1 s, so checks judge the
/// answers 2 s after each write.
fn healing(dns: &LiveDns) -> SidecarOptions {
    SidecarOptions {
        args: vec![],
        env: [("ECSSD_TTL".into(), "1".into()), ("ECSSD_HEAL_CHECK_SECONDS".into(), "1".into())]
            .into_iter()
            .chain(dns.sidecar_env())
            .collect(),
    }
}

/// Route53 calls the sidecars made, per operation (the observer's own reads are not counted).
async fn route53_requests(world: &World, operation: &str) -> u64 {
    Moto::requests(&world.moto.stats().await.unwrap(), "route53", Some(operation))
}

async fn wait_for_checks(sidecar: &Sidecar, count: usize) {
    wait_for(&format!("{count} DNS checks"), WAIT, || async {
        let checks = sidecar.logs().iter().filter(|l| l.contains("DNS check: nothing to repair")).count();
        Ok((checks >= count).then_some(()))
    })
    .await
    .unwrap();
}

async fn wait_for_records(world: &World, running: &RunningTask, count: usize) -> Vec<Record> {
    world.wait_for_task_records(running.task.task_id(), count, WAIT).await.unwrap()
}

/// A world whose zone DNS follows, and a web-and-calc task registered by a sidecar that heals.
struct Healing {
    world: World,
    /// Serves the zone while the test runs.
    dns: LiveDns,
    running: RunningTask,
    sidecar: Sidecar,
    /// The task's records as first registered.
    registered: Vec<Record>,
}

async fn registered_and_healing() -> Healing {
    let world = World::new().await.unwrap();
    let dns = world.serve_dns().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, healing(&dns)).await.unwrap();
    let registered = wait_for_records(&world, &running, 4).await;
    Healing { world, dns, running, sidecar, registered }
}

/// Route53 throttled to 1 request/s, and its next `times` change requests refused for good
/// (`InvalidInput`), each followed by one refused as busy (`PriorRequestNotComplete`).
async fn refuse_changes(world: &World, times: usize) {
    let refused = serde_json::json!([400, "InvalidInput", "ChangeResourceRecordSets"]);
    let busy = serde_json::json!([400, "PriorRequestNotComplete", "ChangeResourceRecordSets"]);
    let errors: Vec<_> = (0..times).flat_map(|_| [refused.clone(), busy.clone()]).collect();
    let faults = serde_json::json!({"route53": {"rate_per_second": 1, "burst": 1, "errors": errors}});
    world.moto.set_faults(faults).await.unwrap();
}

#[tokio::test]
async fn records_deleted_behind_its_back_return_and_intact_ones_cost_no_api_call() {
    let Healing { world, dns: _serving, running, sidecar, registered } = registered_and_healing().await;

    // Checks of intact records ask DNS only.
    wait_for_checks(&sidecar, 3).await;
    assert_eq!(route53_requests(&world, "ListResourceRecordSets").await, 0);
    assert_eq!(route53_requests(&world, "ChangeResourceRecordSets").await, 1, "registered in one request");

    // Someone deletes all of the task's records, then only one SRV record.
    let keys: Vec<RecordKey> = registered.iter().map(|r| r.key.clone()).collect();
    world.delete_records(&keys).await.unwrap();
    let restored = wait_for_records(&world, &running, 4).await;
    assert_eq!(restored, registered);
    let calc = registered.iter().find(|r| r.key.name.starts_with("_calc")).unwrap().key.clone();
    world.delete_records(&[calc]).await.unwrap();
    wait_for("calc back", WAIT, || async {
        Ok((world.task_records(running.task.task_id()).await? == registered).then_some(()))
    })
    .await
    .unwrap();
    assert!(sidecar.logged(&["records_drifted"]), "said why it read Route53");
    assert!(sidecar.pid().is_some(), "still running");
}

#[tokio::test]
async fn a_zone_deleted_and_recreated_is_found_again_and_filled() {
    let Healing { world, dns: _serving, running, sidecar, registered } = registered_and_healing().await;

    world.recreate_zone().await.unwrap();
    let restored = wait_for_records(&world, &running, 4).await;
    assert_eq!(restored, registered);
    assert!(sidecar.logged(&["found the hosted zone under a new id"]), "{:?}", sidecar.logs());
}

#[tokio::test]
async fn a_restarted_sidecar_with_nothing_to_publish_withdraws_what_its_predecessor_left() {
    let Healing { world, dns, running, sidecar: first, .. } = registered_and_healing().await;
    first.sigkill().await.unwrap();

    // With no sidecar running, both published containers stop: nothing is left to publish.
    running.task.stop_container(0).await.unwrap();
    running.task.stop_container(1).await.unwrap();
    let _second = Sidecar::spawn(&world.moto, &running.metadata, healing(&dns)).await.unwrap();
    wait_for_records(&world, &running, 0).await;
}

#[tokio::test]
async fn without_dns_checks_a_restarted_sidecar_reads_and_withdraws_leftovers_at_start() {
    let world = World::new().await.unwrap();
    let no_checks =
        SidecarOptions { args: vec![], env: vec![("ECSSD_HEAL_CHECK_SECONDS".into(), "0".into())] };
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let first = Sidecar::spawn(&world.moto, &running.metadata, no_checks.clone()).await.unwrap();
    wait_for_records(&world, &running, 4).await;
    first.sigkill().await.unwrap();
    running.task.stop_container(0).await.unwrap();
    running.task.stop_container(1).await.unwrap();
    let _second = Sidecar::spawn(&world.moto, &running.metadata, no_checks).await.unwrap();
    wait_for_records(&world, &running, 0).await;
}

#[tokio::test]
async fn a_reset_connection_to_instance_metadata_at_start_is_retried() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    running.metadata.reset_imds_connections(2);
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    wait_for_records(&world, &running, 4).await;
    assert_eq!(running.metadata.imds_resets_done(), 2);
    assert!(sidecar.logged(&["EC2 instance metadata not answering yet"]), "{:?}", sidecar.logs());
}

#[tokio::test]
async fn route53_refusing_and_throttling_never_stops_the_sidecar() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    // Refused for good several times over, busy, and throttled: each a reason the old sidecar exited or
    // waited.
    refuse_changes(&world, 4).await;
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    wait_for_records(&world, &running, 4).await;
    assert!(sidecar.wait(Duration::from_millis(100)).await.is_err(), "still running");
    // Each problem (refused, busy) is said once, not at every retry, and its end is said too.
    for problem in ["route53_rejected", "route53_unavailable"] {
        let field = format!("\"problem\":\"{problem}\"");
        let said =
            sidecar.logs().iter().filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains(&field)).count();
        assert!(said <= 1, "{problem} said {said} times: {:?}", sidecar.logs());
        assert_eq!(said == 1, sidecar.logged(&[&field, "recovered"]), "{problem}: {:?}", sidecar.logs());
    }
    assert!(sidecar.logged(&["\"problem\":\"route53_", "recovered"]), "{:?}", sidecar.logs());

    // Stopping still withdraws.
    sidecar.sigterm().unwrap();
    wait_for_records(&world, &running, 0).await;
}

#[tokio::test]
async fn the_101st_target_of_a_service_waits_for_room_at_one_request_per_wait() {
    let world = World::new().await.unwrap();
    // Route53's quota: 100 multivalue records per name. Another 100 tasks hold them.
    let others: Vec<Record> = (0..100)
        .map(|i| {
            let key = RecordKey {
                name: format!("_web._tcp.{DOMAIN}."),
                record_type: RecordType::Srv,
                set_identifier: Some(format!("ecssd:other{i}:web:80")),
            };
            Record::new(key, 10, vec![format!("1 1 80 other{i}.{DOMAIN}")])
        })
        .collect();
    let creates: Vec<Change> = others.iter().cloned().map(Change::create).collect();
    world.zone.get().apply(&creates).await.unwrap();
    let running =
        world.task("e2e", &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"])]).await.unwrap();
    // 15 s instead of the default 10 minutes, so the test sees a retry.
    let options = SidecarOptions {
        env: vec![("ECSSD_REFUSED_RETRY_SECONDS".into(), "15".into())],
        ..Default::default()
    };
    let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();

    let records = wait_for_records(&world, &running, 2).await;
    let mut kinds: Vec<_> = records.iter().map(|r| r.key.record_type).collect();
    kinds.sort();
    assert_eq!(kinds, [RecordType::A, RecordType::Txt], "A and ownership records, no target");
    wait_for("the refusal", WAIT, || async {
        Ok(sidecar.logged(&["route53_refused_record", "_web._tcp", "limit of 100"]).then_some(()))
    })
    .await
    .unwrap();
    assert!(sidecar.wait(Duration::from_millis(100)).await.is_err(), "still running");
    assert!(sidecar.logged(&["route53_refused_record", "\"retry_in_s\":"]), "{:?}", sidecar.logs());
    // Waiting costs nothing until the wait ends: 300 tasks waiting must not take the account's rate.
    let changes = route53_requests(&world, "ChangeResourceRecordSets").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        route53_requests(&world, "ChangeResourceRecordSets").await,
        changes,
        "no request while waiting"
    );

    // A target leaves; this one is registered at its next try (15 to 22.5 s after the refusal).
    world.zone.get().apply(&[Change::delete(others[0].clone())]).await.unwrap();
    let target = format!("{}.{DOMAIN}", running.task.task_id());
    let values = wait_for("the target", Duration::from_secs(40), || async {
        let values = world.srv_values("_web._tcp").await?;
        Ok(values.iter().any(|v| v.ends_with(&target)).then_some(values))
    })
    .await
    .unwrap();
    assert_eq!(values.len(), 100);
    let refusals = sidecar.logs().iter().filter(|l| l.contains("Route53 refused this SRV record")).count();
    assert_eq!(refusals, 1, "said once while it waited");
}

#[tokio::test]
async fn route53_refusing_for_over_a_minute_is_said_once_a_minute_and_the_task_registers_after() {
    let world = World::new().await.unwrap();
    let running =
        world.task("e2e", &[ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"])]).await.unwrap();
    refuse_changes(&world, 100).await;
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    let said = || {
        sidecar
            .logs()
            .iter()
            .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("\"problem\":\"route53_rejected\""))
            .count()
    };
    wait_for("the first report", WAIT, || async { Ok((said() == 1).then_some(())) }).await.unwrap();
    let first = std::time::Instant::now();
    wait_for("the second report", Duration::from_secs(150), || async { Ok((said() == 2).then_some(())) })
        .await
        .unwrap();
    assert!(first.elapsed() >= Duration::from_secs(55), "once a minute: {:?}", first.elapsed());
    assert!(sidecar.wait(Duration::from_millis(100)).await.is_err(), "still running");
    assert!(world.task_records(running.task.task_id()).await.unwrap().is_empty());

    // Route53 takes changes again: registered at the next try, at most about a minute later.
    world.moto.set_faults(serde_json::json!({"route53": {"errors": []}})).await.unwrap();
    wait_for("registration", Duration::from_secs(90), || async {
        Ok((world.task_records(running.task.task_id()).await?.len() == 3).then_some(()))
    })
    .await
    .unwrap();
    assert!(sidecar.logged(&["\"problem\":\"route53_rejected\"", "recovered"]));
}

async fn wait_for_skipped_checks(sidecar: &Sidecar, count: usize) {
    wait_for(&format!("{count} DNS checks skipped"), WAIT, || async {
        let skipped =
            sidecar.logs().iter().filter(|l| l.contains("DNS check skipped: ECS is stopping")).count();
        Ok((skipped >= count).then_some(()))
    })
    .await
    .unwrap();
}

/// ECS decides to stop the task (task metadata's DesiredStatus STOPPED) while its containers still
/// run, e.g. through a load balancer's deregistration delay, and ecssd's withdrawer deletes its
/// records on ECS's event: the sidecar's DNS checks must not put them back.
#[tokio::test]
async fn records_withdrawn_while_ecs_stops_the_task_are_not_put_back() {
    let Healing { world, dns: _serving, running, sidecar, registered } = registered_and_healing().await;
    wait_for_checks(&sidecar, 1).await;
    running.metadata.request_stop();
    // The withdrawer's deletion, as ECS's event arrives; the sidecar may have withdrawn them first
    // (then there is nothing to delete): either way they are gone.
    let keys: Vec<RecordKey> = registered.iter().map(|r| r.key.clone()).collect();
    let _ = world.delete_records(&keys).await;
    // Three checks' worth of time (one a second), each of which would have repaired the records.
    wait_for_skipped_checks(&sidecar, 3).await;
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap(), vec![]);
    assert!(sidecar.logged(&["ECS is stopping the task"]), "said why");
    assert!(!sidecar.logged(&["records_drifted"]), "never set out to repair");
    assert!(sidecar.pid().is_some(), "still running until its own SIGTERM");
}

/// With its records intact, a sidecar whose task ECS is stopping withdraws them itself at its next
/// check, before its own SIGTERM, and still exits cleanly on it.
#[tokio::test]
async fn a_sidecar_withdraws_as_soon_as_ecs_stops_its_task() {
    let Healing { world, dns: _serving, running, mut sidecar, .. } = registered_and_healing().await;
    wait_for_checks(&sidecar, 1).await;
    running.metadata.request_stop();
    wait_for_records(&world, &running, 0).await;
    assert!(sidecar.logged(&["ECS is stopping the task"]));
    wait_for_skipped_checks(&sidecar, 2).await;
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap(), vec![], "nothing published again");
    sidecar.sigterm().unwrap();
    assert!(sidecar.wait(WAIT).await.unwrap().success());
}

#[tokio::test]
async fn a_new_tasks_names_are_not_asked_about_before_route53_can_show_them() {
    // A resolver asked about a name Route53's servers do not show yet remembers it as absent, for every
    // client, for the zone's negative TTL. Here the zone's servers show a change 2 s after the API
    // took it (plus a poll or two of the zone); the sidecar is told 6 s (in AWS: up to a minute, its
    // default).
    let world = World::new().await.unwrap();
    let dns = world.serve_dns_after(Duration::from_secs(2)).await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let mut options = healing(&dns);
    options.env.retain(|(name, _)| name != "ECSSD_HEAL_PROPAGATION_SECONDS");
    options.env.push(("ECSSD_HEAL_PROPAGATION_SECONDS".into(), "6".into()));
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    let service = format!("_web._tcp.{DOMAIN}");
    wait_for("the zone's servers to show the service", WAIT, || async {
        Ok((!dns.query_authority(&service, RecordType::Srv).await?.is_absent()).then_some(()))
    })
    .await
    .unwrap();
    // From that moment every client sees the service and its target's address, not a remembered absence.
    let answer = dns.query(&service, RecordType::Srv).await.unwrap();
    assert!(!answer.is_absent(), "the resolver remembers the service as absent: {answer:?}");
    let target = format!("{}.{DOMAIN}", running.task.task_id());
    let answer = dns.query(&target, RecordType::A).await.unwrap();
    assert!(!answer.is_absent(), "the resolver remembers the target as absent: {answer:?}");
    // The checks then run, and cost no API call.
    wait_for_checks(&sidecar, 2).await;
    assert_eq!(route53_requests(&world, "ListResourceRecordSets").await, 0);
}

/// A DNS check's confirming read that Route53 throttles for as long as it lasts runs beside the loop:
/// a container that stops meanwhile is withdrawn at once, not after the read gives up.
#[tokio::test]
async fn a_stopped_container_is_withdrawn_while_a_dns_checks_read_is_throttled() {
    let Healing { world, dns: _serving, running, sidecar, registered } = registered_and_healing().await;
    wait_for_checks(&sidecar, 1).await;
    // Every read of the zone is throttled from now on; changes still go through.
    let throttled = serde_json::json!({"status": 400, "code": "Throttling",
        "operation": "ListResourceRecordSets", "repeat": true});
    world.moto.set_faults(serde_json::json!({"route53": {"errors": [throttled]}})).await.unwrap();
    // Web's target is deleted behind the sidecar's back: the next check reads Route53 to confirm.
    let web = registered.iter().find(|r| r.key.name.starts_with("_web")).unwrap().key.clone();
    world.delete_records(&[web]).await.unwrap();
    wait_for("the confirming read", WAIT, || async {
        Ok((route53_requests(&world, "ListResourceRecordSets").await >= 2).then_some(()))
    })
    .await
    .unwrap();

    let stopped = std::time::Instant::now();
    running.task.stop_container(1).await.unwrap();
    wait_for("calc withdrawn", Duration::from_secs(20), || async {
        let records = world.task_records(running.task.task_id()).await?;
        Ok((!records.iter().any(|r| r.key.name.starts_with("_calc"))).then_some(()))
    })
    .await
    .unwrap();
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(5), "withdrawn {took:?} after the stop, behind the read");
    assert!(sidecar.pid().is_some(), "still running");
}

/// SIGTERM while the start still waits for task metadata ends the start: nothing registered, exit 0.
#[tokio::test]
async fn a_stop_signal_during_the_start_ends_it_with_nothing_registered() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    // Task metadata that refuses connections: the start keeps retrying it for a minute.
    let options = SidecarOptions {
        args: vec![],
        env: vec![("ECS_CONTAINER_METADATA_URI_V4".into(), "http://127.0.0.1:9/v4/ecssd".into())],
    };
    let mut sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    wait_for("the start to wait for task metadata", WAIT, || async {
        Ok(sidecar.logged(&["task metadata not available yet"]).then_some(()))
    })
    .await
    .unwrap();
    sidecar.sigterm().unwrap();
    let status = sidecar.wait(Duration::from_secs(5)).await.unwrap();
    assert!(status.success(), "{status:?}: {:?}", sidecar.logs());
    assert!(sidecar.logged(&["nothing was registered"]), "{:?}", sidecar.logs());
    assert!(world.task_records(running.task.task_id()).await.unwrap().is_empty());
}

/// A deploy of hundreds of tasks throttles the account for minutes: the start's zone lookup rides it
/// out (the old sidecar gave up after a minute and exited, failing the essential container's start).
#[tokio::test]
async fn finding_the_zone_at_start_rides_out_throttling_past_a_minute() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    let throttled = serde_json::json!({"status": 400, "code": "Throttling", "operation": "ListHostedZonesByName", "repeat": true});
    world.moto.set_faults(serde_json::json!({"route53": {"errors": [throttled]}})).await.unwrap();
    let throttled_since = tokio::time::Instant::now();
    let mut sidecar =
        Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    wait_for("the throttled lookup", WAIT, || async {
        Ok(sidecar.logged(&["ListHostedZonesByName", "Throttling", "retrying"]).then_some(()))
    })
    .await
    .unwrap();
    // The throttling lasts past the minute after which the lookup used to give up.
    tokio::time::sleep_until(throttled_since + Duration::from_secs(65)).await;
    assert!(sidecar.wait(Duration::from_millis(100)).await.is_err(), "still starting: {:?}", sidecar.logs());
    let said = sidecar.logs().iter().filter(|l| l.contains("transient AWS error; retrying (said")).count();
    assert!((1..=2).contains(&said), "said once a minute, not at each retry: {said}");

    world.moto.set_faults(serde_json::json!({"route53": {"errors": []}})).await.unwrap();
    wait_for_records(&world, &running, 4).await;
}

/// A registration Route53 keeps throttling backs off for longer and longer; a container that stops
/// meanwhile is withdrawn at once, not at the end of that backoff.
#[tokio::test]
async fn a_stopped_container_is_withdrawn_without_waiting_for_a_registration_backoff() {
    let world = World::new().await.unwrap();
    let mut running = world.task("e2e", &web_and_calc()).await.unwrap();
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, SidecarOptions::default()).await.unwrap();
    wait_for_records(&world, &running, 4).await;

    // Every change is throttled while a third container starts: its registration backs off.
    let throttled = serde_json::json!({"status": 400, "code": "Throttling",
        "operation": "ChangeResourceRecordSets", "repeat": true});
    world.moto.set_faults(serde_json::json!({"route53": {"errors": [throttled]}})).await.unwrap();
    running.task.add(&ContainerSpec::httpd("extra", &["SERVICE_80_NAME=_extra._tcp"])).await.unwrap();
    wait_for("six throttled registrations", Duration::from_secs(90), || async {
        Ok((route53_requests(&world, "ChangeResourceRecordSets").await >= 7).then_some(()))
    })
    .await
    .unwrap();
    world.moto.set_faults(serde_json::json!({"route53": {"errors": []}})).await.unwrap();

    let stopped = std::time::Instant::now();
    running.task.stop_container(1).await.unwrap();
    wait_for("calc withdrawn", Duration::from_secs(90), || async {
        let records = world.task_records(running.task.task_id()).await?;
        Ok((!records.iter().any(|r| r.key.name.starts_with("_calc"))).then_some(()))
    })
    .await
    .unwrap();
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(3), "withdrawn {took:?} after the stop, at the end of the backoff");
    // The withdrawal carried the waiting registration with it.
    let records = world.task_records(running.task.task_id()).await.unwrap();
    assert!(records.iter().any(|r| r.key.name.starts_with("_extra")), "{records:?}");
    assert!(sidecar.pid().is_some(), "still running");
}

/// Records missing while task metadata does not answer are not put back: no answer is not "the task
/// still runs" (the withdrawer may have deleted them on ECS's stop event). Once it answers, they are.
#[tokio::test]
async fn records_are_not_repaired_while_task_metadata_does_not_say_the_task_runs() {
    let Healing { world, dns: _serving, running, sidecar, registered } = registered_and_healing().await;
    wait_for_checks(&sidecar, 1).await;
    running.metadata.set_available(false);
    let keys: Vec<RecordKey> = registered.iter().map(|r| r.key.clone()).collect();
    world.delete_records(&keys).await.unwrap();
    wait_for("the repair to wait for task metadata", WAIT, || async {
        Ok(sidecar.logged(&["\"problem\":\"stop_check\"", "not repaired until it does"]).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(world.task_records(running.task.task_id()).await.unwrap(), vec![], "not put back");

    running.metadata.set_available(true);
    let restored = wait_for_records(&world, &running, 4).await;
    assert_eq!(restored, registered);
}

/// A resolver that does not answer the DNS checks is said at error level (once a minute), not only at
/// debug: records deleted behind the sidecar's back would go unnoticed.
#[tokio::test]
async fn a_resolver_that_does_not_answer_is_a_problem_said_aloud() {
    let world = World::new().await.unwrap();
    let running = world.task("e2e", &web_and_calc()).await.unwrap();
    // The harness's resolver is a closed loopback port.
    let options = SidecarOptions {
        args: vec![],
        env: vec![
            ("ECSSD_TTL".into(), "1".into()),
            ("ECSSD_HEAL_CHECK_SECONDS".into(), "1".into()),
            ("ECSSD_HEAL_PROPAGATION_SECONDS".into(), "0".into()),
        ],
    };
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    wait_for_records(&world, &running, 4).await;
    wait_for("the resolver's problem", WAIT, || async {
        Ok(sidecar.logged(&["\"level\":\"ERROR\"", "\"problem\":\"dns_check\""]).then_some(()))
    })
    .await
    .unwrap();
    assert!(sidecar.pid().is_some(), "still running");
}
