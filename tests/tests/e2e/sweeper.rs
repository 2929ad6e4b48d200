#![allow(clippy::unwrap_used)]
//! The sweeper end to end: the real `bootstrap` binary against moto (clusters, EC2-backed container
//! instances, tasks) and a zone seeded through the record model next to records ecssd does not own;
//! health checks against real HTTP endpoints on loopback. Live tasks' records agree with ECS and EC2
//! (their hosts are loopback hosts, their endpoints listen at the host port ECS reports), as a real
//! sidecar's do; the sweeper acts on a record only where it does. Forged records: sweeper_attacks.rs.

use std::net::Ipv4Addr;

use ecssd_records::SoaStore;
use ecssd_records::{Record, RecordType};
use ecssd_tests::cloudformation::{ResponseBucket, STACK_ID, zone_negative_caching_request};
use ecssd_tests::ecs::{PlacedTask, seed, task_records, task_records_of};
use ecssd_tests::endpoints::{Behaviour, TestEndpoint};
use ecssd_tests::sweeper::{
    LambdaEmulator, SweepBed, foreign_records, invoke, mentions, scheduled_event, sweep_once, task_ids,
};
use ecssd_tests::task_events::{sqs_batch, task_state_change};

type Setup = SweepBed;

/// The records `task`'s sidecar writes for `_web._tcp`: they agree with what ECS and EC2 report.
async fn registered(setup: &Setup, task: &PlacedTask) -> ecssd_records::RecordSet {
    setup.fleet.sidecar_records(task, "_web._tcp").await.unwrap()
}

fn sorted_ids(tasks: &[&PlacedTask]) -> Vec<String> {
    let mut ids: Vec<String> = tasks.iter().map(|t| t.id().to_owned()).collect();
    ids.sort();
    ids
}

/// Records of a task that is not running (or never was) as its sidecar wrote them, at a loopback
/// address of no host: nobody may connect there.
fn web(task: &PlacedTask, octet: u8, port: u16) -> ecssd_records::RecordSet {
    task_records(task, Ipv4Addr::new(127, 0, 8, octet), &[("_web._tcp", port)]).unwrap()
}

#[tokio::test]
async fn a_sweep_deletes_exactly_what_dead_tasks_and_hosts_left() {
    let setup = SweepBed::start().await.unwrap();
    let fleet = &setup.fleet;
    let c1 = fleet.cluster("c1").await.unwrap();
    let c2 = fleet.cluster("c2").await.unwrap();
    let (h1, h2) = (fleet.loopback_host("c1").await.unwrap(), fleet.loopback_host("c1").await.unwrap());
    let (h3, h4) = (fleet.loopback_host("c2").await.unwrap(), fleet.loopback_host("c2").await.unwrap());
    let alive = fleet.start_tasks(&h1, 1).await.unwrap().remove(0);
    let stopped = fleet.start_tasks(&h1, 1).await.unwrap().remove(0);
    let on_terminated = fleet.start_tasks(&h2, 1).await.unwrap().remove(0);
    // Its endpoint (where ECS says it is) refuses: the host is gone, not only its agent's connection.
    let on_disconnected = fleet.serving_task(&h3, "_web._tcp", Behaviour::Refuse).await.unwrap();
    let (on_disconnected, on_disconnected_records) = (on_disconnected.task, on_disconnected.records);
    let alive_elsewhere = fleet.start_tasks(&h4, 1).await.unwrap().remove(0);
    let task_in = |cluster: &str, digit: &str| PlacedTask {
        cluster_arn: cluster.to_owned(),
        task_arn: format!("{}/{}", cluster.replace(":cluster/", ":task/"), digit.repeat(32)),
    };
    let missing = task_in(&c1, "0");
    // Another deployment's sidecars (owner "other") share the zone; their dead task is theirs to sweep.
    let other_owner: Vec<Record> =
        task_records_of("other", &task_in(&c1, "3"), Ipv4Addr::new(127, 0, 8, 99), &[("_web._tcp", 40000)])
            .unwrap()
            .into_iter()
            .collect();
    // Orphans: a task's SRV and A without their ownership record, and an ownership record alone.
    let orphans: Vec<Record> = web(&task_in(&c2, "1"), 50, 40001)
        .into_iter()
        .filter(|r| r.key.record_type != RecordType::Txt)
        .chain(
            web(&task_in(&c2, "2"), 51, 40002).into_iter().filter(|r| r.key.record_type == RecordType::Txt),
        )
        .collect();

    seed(
        &setup.zone,
        vec![
            registered(&setup, &alive).await,
            registered(&setup, &stopped).await,
            registered(&setup, &on_terminated).await,
            on_disconnected_records,
            registered(&setup, &alive_elsewhere).await,
            web(&missing, 1, 49155),
            other_owner.iter().cloned().collect(),
            foreign_records().into_iter().collect(),
            orphans.iter().cloned().collect(),
        ],
    )
    .await
    .unwrap();
    fleet.stop_task(&stopped).await.unwrap();
    fleet.terminate(&h2).await.unwrap();
    setup.moto.set_agent_connected("c2", &h3.container_instance_arn, false).await.unwrap();
    let before = setup.records().await.unwrap();
    // One of the 3 RUNNING tasks (33%) loses its records by the agent rule; the default brake (10%,
    // sweeper_attacks.rs) would hold that back.
    let env = setup.env(&[("ECSSD_AGENT_MAX_DELETE_FRACTION", "0.5")]);

    let first = sweep_once(&env, &[]).await.unwrap();
    assert!(first.success, "sweep failed: {}", first.stderr);
    let report = &first.report;
    assert_eq!(
        task_ids(&report["stale_tasks"]),
        sorted_ids(&[&stopped, &on_terminated, &missing]),
        "{report:#}"
    );
    let reasons = report["stale_tasks"].to_string();
    for reason in ["ECS reports the task STOPPED", "MISSING", "its EC2 instance is terminated"] {
        assert!(reasons.contains(reason), "no {reason:?} in {reasons}");
    }
    assert_eq!(report["stale_records_deleted"], 9);
    assert_eq!(report["orphans_deleted"], orphans.len());
    assert_eq!(report["errors"], serde_json::json!([]));
    assert!(first.stdout.iter().any(|line| line.contains("CloudWatchMetrics")), "an EMF line");

    // Exactly: everything else as it was, plus a marker remembering the disconnected agent.
    let after = setup.records().await.unwrap();
    let dead = [&stopped, &on_terminated, &missing];
    let mut expected: Vec<Record> = before
        .iter()
        .filter(|r| !orphans.contains(r) && !dead.iter().any(|t| mentions(r, t)))
        .cloned()
        .collect();
    let marker_id = h3.container_instance_arn.rsplit('/').next().unwrap();
    let marker =
        after.iter().find(|r| r.key.name.starts_with(&format!("_ecssd-agent.{marker_id}."))).cloned();
    let marker = marker.expect("a marker for the disconnected agent");
    expected.push(marker.clone());
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(after, expected);
    assert_eq!(setup.records_of(&on_disconnected).await.unwrap().len(), 3, "within the agent grace period");

    // Time passes (the marker says the agent has been gone 10 minutes) and the task's endpoint still
    // refuses: the host's tasks go.
    setup.age_agent_marker(&h3, 600).await.unwrap();
    let second = sweep_once(&env, &[]).await.unwrap();
    assert!(second.success, "{}", second.stderr);
    assert_eq!(task_ids(&second.report["stale_tasks"]), [on_disconnected.id()]);
    let reason = second.report["stale_tasks"].to_string();
    assert!(
        reason.contains("its ECS agent has been disconnected for 60") && reason.contains("(grace 300s)"),
        "{reason}"
    );
    assert!(setup.records_of(&on_disconnected).await.unwrap().is_empty());

    // No live task is left on that host: the next sweep forgets its marker, and nothing else.
    let mut settled = setup.records().await.unwrap();
    settled.retain(|r| r.key != marker.key);
    let third = sweep_once(&env, &[]).await.unwrap();
    assert_eq!(third.report["stale_tasks"], serde_json::json!([]));
    assert_eq!(setup.records().await.unwrap(), settled);

    // Idempotent: another sweep finds nothing to do and changes nothing.
    let fourth = sweep_once(&env, &[]).await.unwrap();
    assert_eq!(fourth.report["stale_tasks"], serde_json::json!([]));
    assert_eq!(fourth.report["orphans_deleted"], 0);
    assert_eq!(
        fourth.report["api_calls"]["route53"].get("ChangeResourceRecordSets"),
        None,
        "{:#}",
        fourth.report
    );
    assert_eq!(setup.records().await.unwrap(), settled);
    for task in [&alive, &alive_elsewhere] {
        assert_eq!(setup.records_of(task).await.unwrap().len(), 3);
    }
    let foreign = foreign_records();
    assert!(foreign.iter().all(|r| settled.contains(r)), "foreign records untouched");
    assert!(other_owner.iter().all(|r| settled.contains(r)), "another owner's records untouched");
}

#[tokio::test]
async fn watching_named_clusters_leaves_other_clusters_alone() {
    let setup = SweepBed::start().await.unwrap();
    let fleet = &setup.fleet;
    fleet.cluster("watched").await.unwrap();
    fleet.cluster("ignored").await.unwrap();
    let watched = fleet.start_tasks(&fleet.host("watched").await.unwrap(), 1).await.unwrap().remove(0);
    let ignored = fleet.start_tasks(&fleet.host("ignored").await.unwrap(), 1).await.unwrap().remove(0);
    seed(&setup.zone, vec![web(&watched, 1, 49153), web(&ignored, 2, 49153)]).await.unwrap();
    fleet.stop_task(&watched).await.unwrap();
    fleet.stop_task(&ignored).await.unwrap();

    let run = sweep_once(&setup.env(&[("ECSSD_CLUSTERS", "watched, some-other")]), &[]).await.unwrap();
    assert!(run.success, "{}", run.stderr);
    assert_eq!(task_ids(&run.report["stale_tasks"]), [watched.id()]);
    assert!(setup.records_of(&watched).await.unwrap().is_empty());
    assert_eq!(setup.records_of(&ignored).await.unwrap().len(), 3);
    let ecs = &run.report["api_calls"]["ecs"];
    assert_eq!(ecs["DescribeTasks"], 1, "{ecs}");
    assert!(ecs.get("ListClusters").is_none(), "clusters are named, not listed: {ecs}");
}

#[tokio::test]
async fn the_sweeper_serves_scheduled_events_inside_a_lambda_emulator() {
    let setup = SweepBed::start().await.unwrap();
    let fleet = &setup.fleet;
    fleet.cluster("c").await.unwrap();
    let host = fleet.host("c").await.unwrap();
    let tasks = fleet.start_tasks(&host, 2).await.unwrap();
    seed(&setup.zone, vec![web(&tasks[0], 1, 49153), web(&tasks[1], 1, 49154)]).await.unwrap();
    fleet.stop_task(&tasks[1]).await.unwrap();

    let emulator = LambdaEmulator::start(&setup.env(&[("ECSSD_ROLE", "sweeper")])).await.unwrap();
    // The emulator holds the invocation until the function (started beside it) asks for one.
    let answer = invoke(&emulator, &scheduled_event()).await.unwrap();
    assert_eq!(task_ids(&answer["stale_tasks"]), [tasks[1].id()], "{answer:#}");
    assert_eq!(answer["stale_records_deleted"], 3);
    assert!(setup.records_of(&tasks[1]).await.unwrap().is_empty());
    assert_eq!(setup.records_of(&tasks[0]).await.unwrap().len(), 3);

    let malformed = invoke(&emulator, &serde_json::json!({"hello": "world"})).await;
    let error = format!("{malformed:?}");
    // Refused by the function's event type (an EventBridge event), naming what is missing.
    assert!(
        malformed.is_err() && error.contains("missing field `detail-type`"),
        "a malformed event fails clearly: {error}"
    );
}

/// Issue 27: anyone allowed to invoke the sweeper could invoke it in a loop, holding its one
/// concurrent run (and spending the account's Route53 and ECS budgets). An invocation within
/// ECSSD_MIN_SWEEP_INTERVAL_SECONDS of the last sweep's start sweeps nothing: no API call, no change,
/// an answer that says why; once the interval has passed, the next one sweeps.
#[tokio::test]
async fn a_sweep_invoked_again_too_soon_sweeps_nothing() {
    let setup = SweepBed::start().await.unwrap();
    let fleet = &setup.fleet;
    fleet.cluster("c").await.unwrap();
    let host = fleet.host("c").await.unwrap();
    let task = fleet.start_tasks(&host, 1).await.unwrap().remove(0);
    seed(&setup.zone, vec![web(&task, 1, 49153)]).await.unwrap();
    let env = setup.env(&[("ECSSD_ROLE", "sweeper"), ("ECSSD_MIN_SWEEP_INTERVAL_SECONDS", "3")]);
    let emulator = LambdaEmulator::start(&env).await.unwrap();
    let first = invoke(&emulator, &scheduled_event()).await.unwrap();
    assert_eq!(first["stale_tasks"], serde_json::json!([]), "{first:#}");
    let started = std::time::Instant::now();

    // Stopped now: a sweep would delete its records.
    fleet.stop_task(&task).await.unwrap();
    let before = setup.moto.stats().await.unwrap();
    let again = invoke(&emulator, &scheduled_event()).await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the second invocation came too late to test"
    );
    let skipped = again["skipped"].as_str().unwrap_or_default();
    assert!(skipped.contains("ECSSD_MIN_SWEEP_INTERVAL_SECONDS (3 s): nothing was done"), "{again:#}");
    assert_eq!(setup.moto.stats().await.unwrap(), before, "no API call");
    assert_eq!(setup.records_of(&task).await.unwrap().len(), 3, "nothing deleted");

    // The condition is the interval itself.
    tokio::time::sleep(std::time::Duration::from_secs(3).saturating_sub(started.elapsed())).await;
    let later = invoke(&emulator, &scheduled_event()).await.unwrap();
    assert_eq!(task_ids(&later["stale_tasks"]), [task.id()], "{later:#}");
}

/// Issue 27: one binary serves the stack's three functions, and each used to take all three's events
/// (an SQS batch sent to the sweeper withdrew a task; a custom resource request sent to the withdrawer
/// set the zone's negative caching). Each is told its role and refuses the others' events, changing
/// nothing: no record, no SOA, no answer sent.
#[tokio::test]
async fn each_function_takes_only_its_own_events() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.host("c").await.unwrap();
    let task = setup.registered(&host, 1).await.unwrap().remove(0);
    // Stopped, so that a withdrawer would delete its records on this event.
    setup.fleet.stop_task(&task).await.unwrap();
    let stop = sqs_batch(&[task_state_change(&setup.fleet, &task, 3).await.unwrap()]);
    let before = setup.records().await.unwrap();
    let bucket = ResponseBucket::start(200).await.unwrap();
    let settings = zone_negative_caching_request("Create", &bucket.url, setup.zone.zone_id(), "10");
    let s3 = bucket.origin();
    for (role, others) in [
        ("sweeper", [stop.clone(), settings.clone()]),
        ("withdrawer", [scheduled_event(), settings.clone()]),
        ("zone-settings", [stop.clone(), scheduled_event()]),
    ] {
        let env = [
            ("ECSSD_ROLE", role),
            ("ECSSD_KEEP_NEGATIVE_TTL", "10"),
            ("ECSSD_STACK_ID", STACK_ID),
            ("AWS_ENDPOINT_URL_S3", &s3),
        ];
        let lambda = LambdaEmulator::start(&setup.env(&env)).await.unwrap();
        for event in others {
            // Refused for its type: the runtime cannot read it as this role's event, or (the zone
            // settings reading its request itself) it is no custom resource request.
            let refusal = format!("{:?}", invoke(&lambda, &event).await);
            assert!(
                refusal.contains("failed to deserialize")
                    || refusal.contains("expected a CloudFormation custom resource"),
                "the {role} took {event}: {refusal}\n{}",
                lambda.function_output()
            );
        }
        assert_eq!(setup.records().await.unwrap(), before, "the {role} changed records");
    }
    assert!(bucket.uploads().is_empty(), "{:?}", bucket.uploads());
    let soa = setup.zone.read_soa().await.unwrap();
    assert_eq!((soa.ttl, soa.minimum), (900, 86_400), "the zone's negative caching was set");
}

/// A service's tasks on `host` (a loopback host) with their endpoints, registered as their sidecars
/// do: at the host's private IP and the host port ECS reports, where each endpoint listens.
async fn serving(
    setup: &Setup,
    host: &ecssd_tests::ecs::Host,
    service: &'static str,
    behaviours: &[Behaviour],
) -> Vec<(PlacedTask, TestEndpoint)> {
    let mut served = Vec::new();
    for behaviour in behaviours {
        let serving = setup.serving(host, service, *behaviour, 1).await.unwrap().remove(0);
        served.push((serving.task, serving.endpoint));
    }
    served
}

const HEALTH: [(&str, &str); 4] = [
    ("ECSSD_HEALTH_CHECK", "true"),
    ("ECSSD_HEALTH_GRACE_SECONDS", "0"),
    ("ECSSD_HEALTH_TIMEOUT_MS", "500"),
    ("ECSSD_HEALTH_ATTEMPTS", "2"),
];

#[tokio::test]
async fn unhealthy_tasks_are_withdrawn_and_stopped_within_the_limits() {
    use Behaviour::{Hang, Refuse, Status};
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let web =
        serving(&setup, &host, "_web._tcp", &[Status(200), Status(204), Status(500), Hang, Refuse]).await;
    let api = serving(&setup, &host, "_api._tcp", &[Status(200), Status(200), Status(200)]).await;
    let solo = serving(&setup, &host, "_solo._tcp", &[Status(503)]).await;

    let run = sweep_once(&setup.env(&HEALTH), &[]).await.unwrap();
    assert!(run.success, "{}", run.stderr);
    let report = &run.report;
    assert_eq!(report["endpoints_checked"], 9, "{report:#}");
    let unhealthy: Vec<&PlacedTask> = web[2..].iter().map(|(t, _)| t).chain([&solo[0].0]).collect();
    assert_eq!(task_ids(&report["unhealthy"]), sorted_ids(&unhealthy));
    let reasons = report["unhealthy"].to_string();
    for reason in ["HTTP 500", "no answer within 500 ms", "HTTP 503"] {
        assert!(reasons.contains(reason), "no {reason:?} in {reasons}");
    }

    // _web._tcp has 5 tasks: at most 50% (2) stop this run; _solo._tcp has no healthy task left.
    let stopped = task_ids(&report["stopped"]);
    assert_eq!(stopped.len(), 2, "{report:#}");
    let held = report["held_back"].as_array().unwrap();
    assert_eq!(held.len(), 2, "{report:#}");
    let held_text = report["held_back"].to_string();
    assert!(
        held_text.contains("_solo._tcp.servicediscovery.internal. has no healthy task left"),
        "{held_text}"
    );
    assert!(held_text.contains("stopping more than 50% of its 5 tasks"), "{held_text}");
    for (task, _) in web.iter().chain(&api).chain(&solo) {
        let (status, reason) = setup.fleet.status(task).await.unwrap();
        let records = setup.records_of(task).await.unwrap().len();
        if stopped.iter().any(|id| id == task.id()) {
            assert_eq!(status, "STOPPED");
            let url = format!("ecssd health check failed: GET http://{}:", host.private_ip.unwrap());
            assert!(reason.starts_with(&url), "{reason}");
            assert_eq!(records, 0, "withdrawn before the stop");
        } else {
            assert_eq!(status, "RUNNING");
            assert_eq!(records, 3);
        }
    }
    // Every endpoint that listens was really asked (the refusing one cannot count).
    for (_, endpoint) in web[..4].iter().chain(&api).chain(&solo) {
        assert!(endpoint.hits() > 0, "endpoint on port {} was never checked", endpoint.port);
    }
}

/// Issue 27: the sweeper withdraws an unhealthy task's records, then stops it; when StopTask fails
/// the task runs on, and used to run without DNS. Its records are put back, and the report says so.
#[tokio::test]
async fn a_task_whose_stop_fails_gets_its_records_back() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let mut tasks = serving(&setup, &host, "_web._tcp", &[Behaviour::Status(200); 3]).await;
    tasks.extend(serving(&setup, &host, "_web._tcp", &[Behaviour::Status(500)]).await);
    let before = setup.records().await.unwrap();
    let fault = serde_json::json!({"ecs": {"errors": [[400, "ClientException", "StopTask"]]}});
    setup.moto.set_faults(fault).await.unwrap();

    let run = sweep_once(&setup.env(&HEALTH), &[]).await.unwrap();
    assert!(run.success, "{}", run.stderr);
    let report = &run.report;
    let unhealthy = &tasks[3].0;
    assert_eq!(setup.fleet.status(unhealthy).await.unwrap().0, "RUNNING");
    assert_eq!(setup.records().await.unwrap(), before, "the records were not put back: {report:#}");
    let errors = report["errors"].to_string();
    assert!(errors.contains("its records were put back"), "{report:#}");
}

#[tokio::test]
async fn when_most_checks_fail_the_checker_is_suspected_and_nothing_stops() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let mut tasks = serving(&setup, &host, "_a._tcp", &[Behaviour::Refuse; 2]).await;
    tasks.extend(serving(&setup, &host, "_b._tcp", &[Behaviour::Refuse, Behaviour::Status(200)]).await);
    let before = setup.records().await.unwrap();

    let run = sweep_once(&setup.env(&HEALTH), &[]).await.unwrap();
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.report["unhealthy"].as_array().unwrap().len(), 3);
    assert_eq!(run.report["stopped"], serde_json::json!([]));
    assert!(
        run.report["held_back"].to_string().contains("suspect the checker's network"),
        "{:#}",
        run.report
    );
    assert_eq!(setup.records().await.unwrap(), before);
    for (task, _) in &tasks {
        assert_eq!(setup.fleet.status(task).await.unwrap().0, "RUNNING");
    }
}

#[tokio::test]
async fn dry_run_and_the_grace_period_change_nothing() {
    let setup = SweepBed::start().await.unwrap();
    setup.fleet.cluster("c").await.unwrap();
    let host = setup.fleet.loopback_host("c").await.unwrap();
    let mut tasks = serving(&setup, &host, "_web._tcp", &[Behaviour::Status(200); 3]).await;
    tasks.extend(serving(&setup, &host, "_web._tcp", &[Behaviour::Status(500)]).await);
    let stale = setup.fleet.start_tasks(&host, 1).await.unwrap().remove(0);
    seed(&setup.zone, vec![web(&stale, 1, 40000)]).await.unwrap();
    setup.fleet.stop_task(&stale).await.unwrap();
    let before = setup.records().await.unwrap();

    let dry = sweep_once(&setup.env(&HEALTH), &["--dry-run"]).await.unwrap();
    assert!(dry.success, "{}", dry.stderr);
    assert_eq!(dry.report["dry_run"], true);
    assert_eq!(task_ids(&dry.report["stale_tasks"]), [stale.id()], "reported as it would be deleted");
    assert_eq!(task_ids(&dry.report["held_back"]), [tasks[3].0.id()]);
    assert!(dry.report["held_back"].to_string().contains("dry run"));
    assert_eq!(dry.report["stopped"], serde_json::json!([]));
    assert_eq!(setup.records().await.unwrap(), before, "a dry run changes no record");
    assert_eq!(setup.fleet.status(&tasks[3].0).await.unwrap().0, "RUNNING");

    // Tasks younger than the grace period are not checked at all.
    let young =
        [("ECSSD_HEALTH_CHECK", "true"), ("ECSSD_HEALTH_GRACE_SECONDS", "3600"), ("ECSSD_DRY_RUN", "true")];
    let graced = sweep_once(&setup.env(&young), &[]).await.unwrap();
    assert_eq!(graced.report["endpoints_checked"], 0, "{:#}", graced.report);
    assert_eq!(graced.report["unhealthy"], serde_json::json!([]));
    assert!(tasks.iter().all(|(_, endpoint)| endpoint.hits() <= 2), "checked only by the dry run");
}

#[tokio::test]
async fn bad_configuration_fails_with_a_clear_error() {
    let setup = SweepBed::start().await.unwrap();
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("ECSSD_MAX_STOP_FRACTION", "2")], "ECSSD_MAX_STOP_FRACTION=2 must be between 0 and 1"),
        (
            &[("ECSSD_HEALTH_CHECK", "maybe")],
            "environment variable ECSSD_HEALTH_CHECK=\"maybe\" is not valid",
        ),
        (&[("ECSSD_HEALTH_CHECK_PATH", "health")], "must start with /"),
        (
            &[("ECSSD_HEALTH_CHECK_PATH", "/he alth")],
            "ECSSD_HEALTH_CHECK_PATH=\\\"/he alth\\\" is not a valid URL path",
        ),
        (
            &[("ECSSD_AGENT_MAX_DELETE_FRACTION", "-1")],
            "ECSSD_AGENT_MAX_DELETE_FRACTION=-1 must be between 0 and 1",
        ),
        (&[("ECSSD_DOMAIN", "nowhere.internal")], "nowhere.internal"),
        (&[("ECSSD_LOG_LEVEL", "verbose")], "environment variable ECSSD_LOG_LEVEL=\"verbose\" is not valid"),
        (&[("ECSSD_OWNER_ID", "Prod.EU")], "environment variable ECSSD_OWNER_ID=\"Prod.EU\" is not valid"),
    ];
    for (env, expected) in cases {
        let run = sweep_once(&setup.env(env), &[]).await.unwrap();
        assert!(!run.success, "{env:?} must fail");
        assert!(run.stderr.contains(expected), "{env:?}: expected {expected:?} in {}", run.stderr);
    }
}
