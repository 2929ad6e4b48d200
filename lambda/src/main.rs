//! `bootstrap`: wires configuration, logging and clients (once, at cold start), then serves the one
//! function its role (`ECSSD_ROLE`) names, with that function's typed handler. From a shell (`--once`,
//! or whenever it is not in Lambda) it runs one sweep and prints the report.

use std::process::ExitCode;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use ecssd_edge::logging::{self, LogFormat, Timestamps};
use ecssd_edge::sdk::for_our_retries;
use ecssd_edge::{Pacer, Route53Zone};
use ecssd_lambda::clients::Clients;
use ecssd_lambda::deadline::Deadline;
use ecssd_lambda::fleet::AwsFleet;
use ecssd_lambda::report::print_json;
use ecssd_lambda::{Config, Role, batching, sweep, withdrawal, zone_settings};
use ecssd_records::RetryPolicy;
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> ExitCode {
    let config: Config = ecssd_edge::cli::parse();
    logging::init(&config.log_level, LogFormat::Json, Timestamps::LeftToTheCollector);
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let role = match config.validate().and_then(|()| config.role(in_lambda)) {
        Ok(role) => role,
        Err(problem) => {
            tracing::error!(%problem, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    let failed = format!("ecssd bootstrap ({}) failed", role.name());
    ecssd_edge::cli::block_on(&failed, start(config, role, in_lambda))
}

async fn start(config: Config, role: Role, in_lambda: bool) -> anyhow::Result<()> {
    let clients = &connect(config).await?;
    let limit = Duration::from_secs(clients.config.time_limit_seconds);
    let deadline = move |context: &lambda_runtime::Context| Deadline::of_invocation(context.deadline, limit);
    let served = match role {
        Role::Sweeper if clients.config.once || !in_lambda => {
            let report = sweep::handler::run(clients, Deadline::within_limit(limit)).await?;
            print_json(&serde_json::to_value(&report)?);
            return Ok(());
        }
        Role::Sweeper => {
            lambda_runtime::run(service_fn(
                |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
                    sweep::handler::handle(clients, event.payload, deadline(&event.context))
                        .await
                        .map_err(failed)
                },
            ))
            .await
        }
        Role::Withdrawer => {
            lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
                withdrawal::handler::handle(clients, event.payload, deadline(&event.context))
                    .await
                    .map_err(failed)
            }))
            .await
        }
        Role::Batcher => {
            lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
                batching::handler::handle(clients, event.payload, deadline(&event.context))
                    .await
                    .map_err(failed)
            }))
            .await
        }
        Role::ZoneSettings => {
            lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
                zone_settings::handler::handle(clients, event.payload, deadline(&event.context))
                    .await
                    .map_err(failed)
            }))
            .await
        }
    };
    served.map_err(|e| anyhow::anyhow!(e))
}

/// An invocation's failure as Lambda reports it: the error with its causes.
fn failed(error: anyhow::Error) -> lambda_runtime::Error {
    format!("{error:#}").into()
}

/// The clients of this cold start.
async fn connect(config: Config) -> anyhow::Result<Clients> {
    let sdk = ecssd_edge::sdk::load().await;
    // Each call also ends at the invocation's deadline; this bounds one call's retries well inside it.
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
    let mut fleet = AwsFleet::new(ecs, ec2, retry);
    // Checked by `Config::validate`: a positive, finite rate.
    if let Some(pacer) = Pacer::per_second(config.ecs_requests_per_second) {
        fleet = fleet.with_pacer(pacer);
    }
    let stacks = aws_sdk_cloudformation::Client::new(&fleet_sdk);
    Ok(Clients { zone, fleet, stacks, config, last_sweep: Default::default() })
}
