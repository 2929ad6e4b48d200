#![allow(clippy::unwrap_used)]
//! Issue 16, negative caching, end to end: the stack's custom resource (the real `bootstrap` as the
//! function of the Lambda runtime API emulator, answering a loopback "presigned URL") sets a new zone's
//! SOA; each sweep reports the zone's negative caching and changes it only when allowed; and a service
//! that scaled to zero resolves again, through the bed's caching resolver, within the negative TTL the
//! zone gives (seconds with the stack's setting, still absent long after with Route53's default).

use std::time::{Duration, Instant};

use ecssd_records::RecordStore;
use ecssd_records::{RecordType, SoaStore};
use ecssd_tests::cloudformation::{ResponseBucket, SIGNATURE, STACK_ID, zone_negative_caching_request};
use ecssd_tests::dns::{Answer, FOLLOW_INTERVAL, LiveDns};
use ecssd_tests::docker::ContainerSpec;
use ecssd_tests::ecs::seed;
use ecssd_tests::sidecar::{Sidecar, SidecarOptions};
use ecssd_tests::sweeper::{LambdaEmulator, SweepBed, foreign_records, invoke, sweep_once};
use ecssd_tests::wait_for;
use ecssd_tests::world::{DOMAIN, RunningTask, STACK_NEGATIVE_TTL, World};
use serde_json::Value;

/// The zone-settings function: the workspace-built `bootstrap`, configured as the stack configures it
/// (its role, its stack's `NegativeCacheTtl`, the zone's domain and id, moto), with S3 at `bucket`
/// (the stand-in of CloudFormation's response bucket).
async fn zone_settings(bed: &SweepBed, bucket: &ResponseBucket, negative_cache_ttl: &str) -> LambdaEmulator {
    zone_settings_of(bed, bucket, negative_cache_ttl, STACK_ID).await
}

/// [`zone_settings`] of the stack `stack_id`.
async fn zone_settings_of(
    bed: &SweepBed,
    bucket: &ResponseBucket,
    negative_cache_ttl: &str,
    stack_id: &str,
) -> LambdaEmulator {
    let s3 = bucket.origin();
    let env = bed.env(&[
        ("ECSSD_ROLE", "zone-settings"),
        ("ECSSD_KEEP_NEGATIVE_TTL", negative_cache_ttl),
        ("ECSSD_STACK_ID", stack_id),
        ("AWS_ENDPOINT_URL_S3", &s3),
    ]);
    LambdaEmulator::start(&env).await.unwrap()
}

/// The zone's SOA as (TTL, MINIMUM, the value without its MINIMUM).
async fn soa(bed: &SweepBed) -> (u32, u32, String) {
    let soa = bed.zone.read_soa().await.unwrap();
    let value = soa.value();
    let rest = value.rsplit_once(' ').unwrap().0.to_owned();
    (soa.ttl, soa.minimum, rest)
}

/// Sends CloudFormation's request and returns what the function PUT to the response URL.
async fn request(
    lambda: &LambdaEmulator,
    bucket: &ResponseBucket,
    kind: &str,
    zone: &str,
    ttl: &str,
) -> Value {
    answer_of(lambda, bucket, zone_negative_caching_request(kind, &bucket.url, zone, ttl)).await
}

/// Sends `request` and returns what the function PUT to the response URL.
async fn answer_of(lambda: &LambdaEmulator, bucket: &ResponseBucket, request: Value) -> Value {
    let before = bucket.uploads().len();
    invoke(lambda, &request).await.unwrap();
    let uploads = bucket.uploads();
    assert_eq!(uploads.len(), before + 1, "one answer per request: {uploads:?}");
    let upload = uploads.last().unwrap();
    assert_eq!(upload.method, "PUT");
    // The URL is presigned without a content type: sending one would break the signature.
    assert_eq!(upload.header("content-type"), None, "{upload:?}");
    upload.body.clone()
}

#[tokio::test]
async fn the_stacks_custom_resource_sets_a_new_zones_negative_caching_and_answers_cloudformation() {
    let bed = SweepBed::start().await.unwrap();
    let zone = bed.zone.zone_id().to_owned();
    let (ttl, minimum, rest) = soa(&bed).await;
    assert_eq!((ttl, minimum), (900, 86_400), "a zone as Route53 creates it");
    let bucket = ResponseBucket::start(200).await.unwrap();
    let lambda = zone_settings(&bed, &bucket, "10").await;

    let created = request(&lambda, &bucket, "Create", &zone, "10").await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["PhysicalResourceId"], format!("{zone}/negative-caching"));
    assert_eq!(created["RequestId"], "Create-request");
    assert_eq!(created["LogicalResourceId"], "ZoneNegativeCaching");
    assert!(created["StackId"].as_str().unwrap().starts_with("arn:aws:cloudformation:"));
    assert_eq!(soa(&bed).await, (10, 10, rest.clone()), "TTL and MINIMUM set, the rest kept");

    // A stack update changes the function's configuration before CloudFormation sends the request.
    drop(lambda);
    let lambda = zone_settings(&bed, &bucket, "30").await;
    let updated = request(&lambda, &bucket, "Update", &zone, "30").await;
    assert_eq!(
        (updated["Status"].as_str(), updated["PhysicalResourceId"].as_str()),
        (Some("SUCCESS"), Some(created["PhysicalResourceId"].as_str().unwrap()))
    );
    assert_eq!(soa(&bed).await, (30, 30, rest.clone()));

    let deleted = request(&lambda, &bucket, "Delete", &zone, "30").await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(soa(&bed).await, (30, 30, rest), "deleting the resource leaves the SOA as it is");
    // The signature in the presigned URL never reaches the log.
    assert!(!lambda.function_output().contains(SIGNATURE), "{}", lambda.function_output());
}

#[tokio::test]
async fn a_request_it_cannot_honour_fails_with_the_reason_and_changes_nothing() {
    let bed = SweepBed::start().await.unwrap();
    let zone = bed.zone.zone_id().to_owned();
    let bucket = ResponseBucket::start(200).await.unwrap();
    let lambda = zone_settings(&bed, &bucket, "10").await;
    for (zone_id, ttl, reason) in [
        ("Z0THERZONE", "10", "is not the zone this function serves"),
        (zone.as_str(), "ten", "NegativeCacheTtl must be a whole number of seconds from 0 to 86400"),
        // Issue 27: anyone allowed to invoke the function could set the zone's negative caching to a day.
        (
            zone.as_str(),
            "86400",
            "is not the value this function's stack configured (ECSSD_KEEP_NEGATIVE_TTL=10)",
        ),
    ] {
        let answer = request(&lambda, &bucket, "Create", zone_id, ttl).await;
        assert_eq!(answer["Status"], "FAILED", "{answer}");
        assert!(answer["Reason"].as_str().unwrap().contains(reason), "{answer}");
        assert_eq!((soa(&bed).await.0, soa(&bed).await.1), (900, 86_400));
    }
    // A response URL that refuses the answer (expired, say) fails the invocation, so Lambda's
    // retries of an asynchronous invocation try again.
    let expired = ResponseBucket::start(403).await.unwrap();
    let lambda = zone_settings(&bed, &expired, "10").await;
    let answer = invoke(&lambda, &zone_negative_caching_request("Create", &expired.url, &zone, "10")).await;
    let output = format!("{answer:?}");
    assert!(output.contains("HTTP 403"), "{output}\n{}", lambda.function_output());
}

/// Issue 27: a stack whose zone held records could not be deleted (Route53 deletes only an empty
/// zone, and the custom resource's Delete did nothing). Only once CloudFormation says the function's
/// own stack is being deleted does its Delete empty the zone, of this owner's records only: with a
/// record ecssd does not own in it, it answers FAILED naming it, before deleting anything. A Delete while
/// the stack is not being deleted (the resource removed in an update, or one anyone made up) deletes
/// nothing.
#[tokio::test]
async fn the_stacks_delete_empties_the_zone_of_ecssds_records_and_names_what_else_is_left() {
    let bed = SweepBed::start().await.unwrap();
    let zone = bed.zone.zone_id().to_owned();
    bed.fleet.cluster("c").await.unwrap();
    let host = bed.fleet.host("c").await.unwrap();
    bed.registered(&host, 2).await.unwrap();
    let foreign = foreign_records();
    seed(&bed.zone, vec![foreign.iter().cloned().collect()]).await.unwrap();
    let registered = bed.records().await.unwrap();
    let stack_id = bed.moto.create_stack("ecssd").await.unwrap();
    let bucket = ResponseBucket::start(200).await.unwrap();
    let lambda = zone_settings_of(&bed, &bucket, "10", &stack_id).await;
    let delete = || {
        let mut request = zone_negative_caching_request("Delete", &bucket.url, &zone, "10");
        request["StackId"] = stack_id.clone().into();
        request
    };

    let not_deleting = answer_of(&lambda, &bucket, delete()).await;
    assert_eq!(not_deleting["Status"], "SUCCESS", "{not_deleting}");
    assert_eq!(bed.records().await.unwrap(), registered, "the stack is not being deleted: nothing goes");

    bed.moto.hold_stack_deleting(&stack_id).await.unwrap();
    let refused = answer_of(&lambda, &bucket, delete()).await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("the zone still holds {} A, AAAA, SRV or TXT records", foreign.len())),
        "{reason}"
    );
    assert!(reason.contains(foreign[0].key.name.as_str()), "{reason}");
    assert_eq!(bed.records().await.unwrap(), registered, "named before anything was deleted");

    for record in foreign {
        bed.zone.apply(&[ecssd_records::Change::delete(record)]).await.unwrap();
    }
    let deleted = answer_of(&lambda, &bucket, delete()).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(bed.records().await.unwrap(), Vec::new(), "ecssd's records went, and only they were left");
}

/// Issue 27: anyone allowed to invoke the function could make it PUT to any URL. A request naming a
/// URL that is not S3's (here another loopback server than the S3 endpoint the function is given)
/// fails the invocation with the reason, and nothing is sent there or changed in the zone.
#[tokio::test]
async fn an_answer_goes_only_to_an_s3_url() {
    let bed = SweepBed::start().await.unwrap();
    let zone = bed.zone.zone_id().to_owned();
    let s3 = ResponseBucket::start(200).await.unwrap();
    let elsewhere = ResponseBucket::start(200).await.unwrap();
    let lambda = zone_settings(&bed, &s3, "10").await;
    let answer = invoke(&lambda, &zone_negative_caching_request("Create", &elsewhere.url, &zone, "10")).await;
    assert!(elsewhere.uploads().is_empty(), "an answer went elsewhere: {:?}", elsewhere.uploads());
    // The emulator's report wraps lines in a frame: compare words only.
    let output =
        format!("{answer:?}").replace(['│', '×'], " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(output.contains("is not an https URL of S3 in the function's region"), "{output}");
    assert!(!output.contains(SIGNATURE), "the URL's signature was repeated: {output}");
    assert!(s3.uploads().is_empty());
    assert_eq!((soa(&bed).await.0, soa(&bed).await.1), (900, 86_400), "the zone was changed");
}

#[tokio::test]
async fn each_sweep_reports_negative_caching_and_changes_it_only_when_allowed() {
    let bed = SweepBed::start().await.unwrap();
    let env = bed.env(&[]);

    // Route53's defaults: 900 s, over the 60 s limit; reported with the command that fixes it.
    let sweep = sweep_once(&env, &[]).await.unwrap();
    assert!(sweep.success, "{}", sweep.stderr);
    let found = &sweep.report["negative_caching"];
    assert_eq!(
        (found["soa_ttl"].as_u64(), found["soa_minimum"].as_u64()),
        (Some(900), Some(86_400)),
        "{found}"
    );
    assert_eq!((found["seconds"].as_u64(), found["limit_seconds"].as_u64()), (Some(900), Some(60)));
    let warning = found["warning"].as_str().unwrap();
    let zone = bed.zone.zone_id();
    assert!(
        warning.contains(&format!("--hosted-zone-id {zone}")) && warning.contains("\"TTL\":10"),
        "{warning}"
    );
    assert!(sweep.stderr.contains("negative caching is too long"), "{}", sweep.stderr);
    let metric = sweep.stdout.iter().find(|line| line.contains("NegativeCacheSeconds")).unwrap();
    assert!(metric.contains("\"NegativeCacheSeconds\":900"), "{metric}");
    assert_eq!(found.get("set_to"), None);
    assert_eq!(soa(&bed).await.0, 900, "only read");

    // A dry run that may keep it says what it would set, and sets nothing.
    let sweep = sweep_once(&env, &["--keep-negative-ttl", "10", "--dry-run"]).await.unwrap();
    assert_eq!(sweep.report["negative_caching"]["set_to"], 10, "{}", sweep.report);
    assert_eq!(soa(&bed).await.0, 900);

    // Allowed to keep it: it sets TTL and MINIMUM once, then only reads.
    let sweep = sweep_once(&env, &["--keep-negative-ttl", "10"]).await.unwrap();
    let found = &sweep.report["negative_caching"];
    assert_eq!((found["set_to"].as_u64(), found["seconds"].as_u64()), (Some(10), Some(10)), "{found}");
    assert_eq!(found.get("warning"), None, "{found}");
    assert_eq!((soa(&bed).await.0, soa(&bed).await.1), (10, 10));
    let again = sweep_once(&env, &["--keep-negative-ttl", "10"]).await.unwrap();
    assert_eq!(again.report["negative_caching"].get("set_to"), None, "{}", again.report);
    let calls = &again.report["api_calls"]["route53"];
    assert_eq!(calls.get("ChangeResourceRecordSets"), None, "nothing to change: {calls}");
}

const WAIT: Duration = Duration::from_secs(30);

fn service_name() -> String {
    format!("_web._tcp.{DOMAIN}")
}

/// Waits until the zone's own servers (the authority, following Route53) answer with the service.
async fn authority_serves(dns: &LiveDns) {
    wait_for("the authority to serve the service", WAIT, || async {
        Ok((!dns.query_authority(&service_name(), RecordType::Srv).await?.is_absent()).then_some(()))
    })
    .await
    .unwrap();
}

/// A service scaled to zero and back: its one task registered and resolving through the caching
/// resolver; its container stops (the sidecar withdraws the SRV record); a client asks and the
/// resolver caches the absence; the container starts again and its sidecar registers it. Returns the
/// absence as the resolver served it, and when the zone's servers answered with the new record.
async fn scale_to_zero_and_back(world: &World, dns: &LiveDns) -> (Answer, Instant, RunningTask, Sidecar) {
    let specs = [ContainerSpec::httpd("web", &["SERVICE_80_NAME=_web._tcp"]), ContainerSpec::idle_sidecar()];
    let running = world.task("e2e", &specs).await.unwrap();
    let options = SidecarOptions { args: vec!["--drain-seconds=0".into()], env: vec![] };
    let sidecar = Sidecar::spawn(&world.moto, &running.metadata, options).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    // Asked before the authority follows the zone, the resolver would cache the absence.
    authority_serves(dns).await;
    assert!(!dns.query(&service_name(), RecordType::Srv).await.unwrap().is_absent(), "the service resolves");

    running.task.stop_container(0).await.unwrap();
    world.wait_for_targets("_web._tcp", 0, WAIT).await.unwrap();
    // The resolver answers from its cache until the record's TTL runs out, then asks the authority.
    let absence = wait_for("a client to be told the service is gone", WAIT, || async {
        let answer = dns.query(&service_name(), RecordType::Srv).await?;
        Ok(answer.is_absent().then_some(answer))
    })
    .await
    .unwrap();

    running.task.start_container(0).await.unwrap();
    world.wait_for_targets("_web._tcp", 1, WAIT).await.unwrap();
    authority_serves(dns).await;
    (absence, Instant::now(), running, sidecar)
}

#[tokio::test]
async fn a_service_back_from_zero_resolves_within_the_stacks_negative_ttl() {
    let world = World::new().await.unwrap();
    assert_eq!(
        world.zone.read_soa().await.unwrap().negative_ttl(),
        STACK_NEGATIVE_TTL,
        "as the stack leaves it"
    );
    let dns = world.serve_dns().await.unwrap();
    let (absence, registered, _task, _sidecar) = scale_to_zero_and_back(&world, &dns).await;
    let cached_for = absence.soa.as_ref().map(|soa| soa.ttl);
    assert!(cached_for.is_some_and(|ttl| ttl <= STACK_NEGATIVE_TTL), "{absence:?}");
    let bound = Duration::from_secs(u64::from(STACK_NEGATIVE_TTL)) + FOLLOW_INTERVAL + Duration::from_secs(1);
    wait_for("the service to resolve again", bound.saturating_sub(registered.elapsed()), || async {
        Ok((!dns.query(&service_name(), RecordType::Srv).await?.is_absent()).then_some(()))
    })
    .await
    .unwrap();
    eprintln!(
        "negative TTL {STACK_NEGATIVE_TTL} s: resolvable again {:.1} s after the zone served the record (absence cached for {cached_for:?} s when asked)",
        registered.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn on_a_zone_left_at_route53s_defaults_a_service_back_from_zero_stays_unresolvable() {
    let world = World::new().await.unwrap();
    world.restore_route53_negative_caching().await.unwrap();
    assert_eq!(world.zone.read_soa().await.unwrap().negative_ttl(), 900);
    let dns = world.serve_dns().await.unwrap();
    let (absence, registered, _task, _sidecar) = scale_to_zero_and_back(&world, &dns).await;
    // The resolver will keep the absence for what is left of 900 s: a quarter of an hour.
    let cached_for = absence.soa.as_ref().map(|soa| soa.ttl).unwrap_or_default();
    assert!((800..=900).contains(&cached_for), "{absence:?}");
    // Route53's own servers have the record, and for three times the stack's negative TTL every
    // client is still told the service does not exist.
    let watched = Duration::from_secs(3 * u64::from(STACK_NEGATIVE_TTL));
    while registered.elapsed() < watched {
        let authority = dns.query_authority(&service_name(), RecordType::Srv).await.unwrap();
        assert!(!authority.is_absent(), "{authority:?}");
        let answer = dns.query(&service_name(), RecordType::Srv).await.unwrap();
        assert!(answer.is_absent(), "resolved after {:?}: {answer:?}", registered.elapsed());
        // Asked twice a second: the absence is what is measured here, not a condition to wait for.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "negative TTL 900 s: still unresolvable {:.1} s after the zone served the record, {cached_for} s left in the cache",
        registered.elapsed().as_secs_f64()
    );
}
