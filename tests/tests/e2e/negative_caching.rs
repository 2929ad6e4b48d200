#![allow(clippy::unwrap_used)]
//! Issue 16, negative caching, end to end: the stack's custom resource (the real `bootstrap` as the
//! function of the Lambda runtime API emulator, answering a loopback "presigned URL") sets a new zone's
//! SOA; each sweep reports the zone's negative caching and changes it only when allowed; and a service
//! that scaled to zero resolves again, through the bed's caching resolver, within the negative TTL the
//! zone gives (seconds with the stack's setting, still absent long after with Route53's default).

use ecssd_records::SoaStore;
use ecssd_tests::cloudformation::{ResponseBucket, SIGNATURE, zone_negative_caching_request};
use ecssd_tests::sweeper::{LambdaEmulator, SweepBed, invoke, sweep_once};
use serde_json::Value;

/// The zone-settings function: the workspace-built `bootstrap`, configured as the stack configures it
/// (the zone's domain and id, moto).
async fn zone_settings(bed: &SweepBed) -> LambdaEmulator {
    LambdaEmulator::start(&bed.env(&[])).await.unwrap()
}

/// The zone's SOA as (TTL, MINIMUM, the value without its MINIMUM).
async fn soa(bed: &SweepBed) -> (u32, u32, String) {
    let soa = bed.zone.read_soa().await.unwrap();
    let value = soa.value();
    let rest = value.rsplit_once(' ').unwrap().0.to_owned();
    (soa.ttl, soa.minimum, rest)
}

/// Sends CloudFormation's request and returns what the function PUT to the response URL.
async fn request(lambda: &LambdaEmulator, bucket: &ResponseBucket, kind: &str, zone: &str, ttl: &str) -> Value {
    let before = bucket.uploads().len();
    invoke(lambda, &zone_negative_caching_request(kind, &bucket.url, zone, ttl)).await.unwrap();
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
    let lambda = zone_settings(&bed).await;
    let bucket = ResponseBucket::start(200).await.unwrap();

    let created = request(&lambda, &bucket, "Create", &zone, "10").await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["PhysicalResourceId"], format!("{zone}/negative-caching"));
    assert_eq!(created["RequestId"], "Create-request");
    assert_eq!(created["LogicalResourceId"], "ZoneNegativeCaching");
    assert!(created["StackId"].as_str().unwrap().starts_with("arn:aws:cloudformation:"));
    assert_eq!(soa(&bed).await, (10, 10, rest.clone()), "TTL and MINIMUM set, the rest kept");

    let updated = request(&lambda, &bucket, "Update", &zone, "30").await;
    assert_eq!((updated["Status"].as_str(), updated["PhysicalResourceId"].as_str()), (Some("SUCCESS"), Some(created["PhysicalResourceId"].as_str().unwrap())));
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
    let lambda = zone_settings(&bed).await;
    let bucket = ResponseBucket::start(200).await.unwrap();
    for (zone_id, ttl, reason) in [
        ("Z0THERZONE", "10", "is not the zone this function serves"),
        (zone.as_str(), "ten", "NegativeCacheTtl must be a whole number of seconds from 0 to 86400"),
    ] {
        let answer = request(&lambda, &bucket, "Create", zone_id, ttl).await;
        assert_eq!(answer["Status"], "FAILED", "{answer}");
        assert!(answer["Reason"].as_str().unwrap().contains(reason), "{answer}");
        assert_eq!((soa(&bed).await.0, soa(&bed).await.1), (900, 86_400));
    }
    // A response URL that refuses the answer (expired, say) fails the invocation, so Lambda's
    // retries of an asynchronous invocation try again.
    let expired = ResponseBucket::start(403).await.unwrap();
    let answer = invoke(&lambda, &zone_negative_caching_request("Create", &expired.url, &zone, "10")).await;
    let output = format!("{answer:?}");
    assert!(output.contains("HTTP 403"), "{output}\n{}", lambda.function_output());
}

#[tokio::test]
async fn each_sweep_reports_negative_caching_and_changes_it_only_when_allowed() {
    let bed = SweepBed::start().await.unwrap();
    let env = bed.env(&[]);

    // Route53's defaults: 900 s, over the 60 s limit; reported with the command that fixes it.
    let sweep = sweep_once(&env, &[]).await.unwrap();
    assert!(sweep.success, "{}", sweep.stderr);
    let found = &sweep.report["negative_caching"];
    assert_eq!((found["soa_ttl"].as_u64(), found["soa_minimum"].as_u64()), (Some(900), Some(86_400)), "{found}");
    assert_eq!((found["seconds"].as_u64(), found["limit_seconds"].as_u64()), (Some(900), Some(60)));
    let warning = found["warning"].as_str().unwrap();
    let zone = bed.zone.zone_id();
    assert!(warning.contains(&format!("--hosted-zone-id {zone}")) && warning.contains("\"TTL\":10"), "{warning}");
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
