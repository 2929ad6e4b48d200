//! `bootstrap`: wires configuration, logging and clients (once, at cold start), then serves Lambda
//! invocations: a scheduled event runs a sweep, an SQS batch of task state change events withdraws
//! the stopped tasks' records, a CloudFormation custom resource request sets the zone's negative
//! caching (the three functions of the stack run this one binary). From a shell (`--once`, or
//! whenever it is not in Lambda) it runs one sweep.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use ecssd_edge::logging::{self, LogFormat, Timestamps};
use ecssd_edge::sdk::for_our_retries;
use ecssd_edge::{CallCounter, Pacer, Route53Zone};
use ecssd_lambda::custom_resource::{self, Request};
use ecssd_lambda::deadline::Deadline;
use ecssd_lambda::fleet::AwsFleet;
use ecssd_lambda::negative_caching::{self, ZoneName};
use ecssd_lambda::stop_events::{self, QueueBatch};
use ecssd_lambda::{Config, Report, response_url, sweep};
use ecssd_records::RetryPolicy;
use lambda_runtime::{LambdaEvent, service_fn};

/// Clients built once per cold start and shared by every invocation.
struct Deps {
    zone: Route53Zone,
    fleet: AwsFleet,
    config: Config,
}

fn main() -> ExitCode {
    let config: Config = ecssd_edge::cli::parse();
    logging::init(&config.log_level, LogFormat::Json, Timestamps::LeftToTheCollector);
    if let Err(problem) = config.validate() {
        tracing::error!(%problem, "invalid configuration");
        return ExitCode::FAILURE;
    }
    ecssd_edge::cli::block_on("ecssd bootstrap (sweeper, withdrawer) failed", start(config))
}

async fn start(config: Config) -> anyhow::Result<()> {
    let sdk = ecssd_edge::sdk::load().await;
    // Each call also ends at the sweep's deadline; this bounds one call's retries well inside it.
    let retry = RetryPolicy { give_up_after: Some(Duration::from_secs(60)), ..RetryPolicy::default() };
    let route53 = ecssd_edge::route53::client(&sdk);
    let zone = match &config.zone_id {
        Some(id) => Route53Zone::for_id(route53, id, config.domain.clone(), retry),
        None => Route53Zone::find(route53, config.domain.clone(), retry).await?,
    };
    // Checked by `Config::validate`: a positive, finite rate.
    let zone = match Pacer::per_second(config.route53_requests_per_second) {
        Some(pacer) => zone.with_pacer(pacer),
        None => zone,
    };
    // ECS and EC2 answer quickly or not at all: a 10 s attempt, then ours retries or the deadline ends it.
    let fleet_sdk = for_our_retries(&sdk, Duration::from_secs(10));
    let ecs = aws_sdk_ecs::Client::new(&fleet_sdk);
    let ec2 = aws_sdk_ec2::Client::new(&fleet_sdk);
    let deps = Deps { zone, fleet: AwsFleet::new(ecs, ec2, retry), config };

    if deps.config.once || std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let limit = Duration::from_secs(deps.config.time_limit_seconds);
        let report = run_once(&deps, Deadline::within_limit(limit)).await?;
        print_json(&serde_json::to_value(&report)?);
        return Ok(());
    }
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let limit = Duration::from_secs(deps.config.time_limit_seconds);
        handle(deps, event.payload, Deadline::of_invocation(event.context.deadline, limit)).await
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}

/// Time kept from a custom resource's deadline to send its answer.
const ANSWER_RESERVE: Duration = Duration::from_secs(10);

/// One invocation: a CloudFormation custom resource request (it has `RequestType` and `ResponseURL`),
/// an SQS batch (it has `Records`) of task state change events, or an EventBridge (scheduled) event.
async fn handle(
    deps: &Deps,
    payload: serde_json::Value,
    deadline: Deadline,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    if payload.get("RequestType").is_some() && payload.get("ResponseURL").is_some() {
        let (url, response) = match serde_json::from_value::<Request>(payload.clone()) {
            Ok(request) => {
                let within = deadline.earlier_by(ANSWER_RESERVE);
                let response =
                    custom_resource::handle(&deps.zone, deps.zone.zone_id(), &request, &within).await;
                (request.response_url, response)
            }
            Err(e) => {
                tracing::error!(error = %e, "a custom resource request that cannot be read");
                custom_resource::refuse_unreadable(&payload, &e.to_string()).ok_or_else(|| {
                    format!("expected a CloudFormation custom resource request (RequestType, ResponseURL, StackId, RequestId, LogicalResourceId): {e}")
                })?
            }
        };
        response_url::put(&url, serde_json::to_vec(&response)?, &deadline).await?;
        return Ok(serde_json::to_value(response)?);
    }
    if payload.get("Records").is_some() {
        let batch: QueueBatch = serde_json::from_value(payload).map_err(|e| {
            format!("expected an SQS event of task state changes (\"Records\" with \"messageId\" and \"body\"): {e}")
        })?;
        return Ok(serde_json::to_value(withdraw_stopped(deps, batch, deadline).await?)?);
    }
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(payload).map_err(|e| {
        format!(
            "expected an EventBridge scheduled event (with \"detail-type\", \"source\" and \"detail\") \
             or an SQS event of task state changes: {e}"
        )
    })?;
    let left_ms = deadline.left().as_millis() as u64;
    tracing::info!(source = %event.source, detail_type = %event.detail_type, left_ms, "sweep triggered");
    Ok(serde_json::to_value(run_once(deps, deadline).await?)?)
}

async fn run_once(deps: &Deps, deadline: Deadline) -> anyhow::Result<Report> {
    let before = calls(deps);
    let config = &deps.config;
    let policy = negative_caching::Policy {
        limit_seconds: config.negative_ttl_limit,
        keep_seconds: config.keep_negative_ttl,
        dry_run: config.dry_run,
    };
    let name = ZoneName { id: deps.zone.zone_id(), domain: deps.zone.domain().fqdn() };
    let negative_caching = negative_caching::check(&deps.zone, name, policy, &deadline).await;
    let mut report = sweep(&deps.zone, &deps.fleet, config, deadline).await;
    match negative_caching {
        Ok(found) => {
            if let Some(warning) = &found.warning {
                tracing::warn!(%warning, "negative caching is too long");
            }
            report.negative_caching = Some(found);
        }
        Err(e) => report.errors.push(format!("reading the zone's SOA (negative caching): {e}")),
    }
    report.api_calls = calls_since(deps, &before);
    tracing::info!(report = %serde_json::to_string(&report)?, "sweep finished");
    print_json(&report.emf(now_ms()));
    Ok(report)
}

/// Withdraws the records of the batch's stopped tasks; answers with the messages to deliver again.
async fn withdraw_stopped(
    deps: &Deps,
    batch: QueueBatch,
    deadline: Deadline,
) -> anyhow::Result<stop_events::BatchResponse> {
    let before = calls(deps);
    let mut report = stop_events::handle(&deps.zone, &deps.fleet, &deps.config, batch, deadline).await;
    report.api_calls = calls_since(deps, &before);
    tracing::info!(report = %serde_json::to_string(&report)?, "task stop events handled");
    print_json(&report.emf(now_ms()));
    Ok(report.response())
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

type CallsByService = BTreeMap<String, BTreeMap<String, u64>>;

/// The API calls made since `before` (a [`calls`] snapshot), per service and operation.
fn calls_since(deps: &Deps, before: &CallsByService) -> CallsByService {
    calls(deps)
        .into_iter()
        .map(|(service, ops)| {
            let earlier = before.get(&service).cloned().unwrap_or_default();
            let ops = ops
                .into_iter()
                .map(|(op, n)| (op.clone(), n - earlier.get(&op).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0);
            (service, ops.collect())
        })
        .collect()
}

/// API calls so far per service and operation (cumulative across warm invocations).
fn calls(deps: &Deps) -> CallsByService {
    let named =
        |counter: &CallCounter| counter.snapshot().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    BTreeMap::from([
        ("route53".to_owned(), named(deps.zone.calls())),
        ("ecs".to_owned(), named(&deps.fleet.ecs_calls)),
        ("ec2".to_owned(), named(&deps.fleet.ec2_calls)),
    ])
}

/// One JSON line on stdout: the shell mode's report, and EMF lines CloudWatch reads from the log.
#[allow(clippy::print_stdout)]
fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
