//! The zone settings function: a CloudFormation custom resource request (CloudFormation User Guide,
//! "Custom resource request and response reference") for the stack's `ZoneNegativeCaching`, answered
//! by one PUT to the request's response URL, which must be one CloudFormation could have given.

use std::time::Duration;

use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest as CfnRequest;

use crate::clients::Clients;
use crate::deadline::Deadline;
use crate::zone_settings::custom_resource::{self, Request, RequestType, Response, ServedZone};
use crate::zone_settings::response_url;

/// Time kept from the deadline to send the answer.
const ANSWER_RESERVE: Duration = Duration::from_secs(10);

/// Serves one request: a FAILED answer names what went wrong, so the stack fails at once instead of
/// waiting out its `ServiceTimeout`; a request that is no custom resource request, or whose response
/// URL is not CloudFormation's, gets no answer at all and fails the invocation.
pub async fn handle(
    clients: &Clients,
    payload: serde_json::Value,
    deadline: Deadline,
) -> anyhow::Result<Response> {
    let (destination, response) = match serde_json::from_value::<CfnRequest>(payload.clone()) {
        Ok(typed) => {
            let request = read(typed)?;
            // Checked before anything is done: a request whose answer cannot go back changes nothing.
            let destination = answer_to(&request.response_url)?;
            let within = deadline.earlier_by(ANSWER_RESERVE);
            let zone = &clients.zone;
            let config = &clients.config;
            // Both checked at start (`Config::role`): the zone settings function is told its stack's
            // id and value.
            let served = ServedZone {
                id: zone.zone_id(),
                domain: &config.domain,
                owner: &config.owner_id,
                negative_cache_ttl: config.keep_negative_ttl.unwrap_or_default(),
                stack_id: config.stack_id.as_deref().unwrap_or_default(),
            };
            (destination, custom_resource::handle(zone, &clients.stacks, served, &request, &within).await)
        }
        Err(e) => {
            tracing::error!(error = %e, "a custom resource request that cannot be read");
            let (url, response) = custom_resource::refuse_unreadable(&payload, &e.to_string()).ok_or_else(|| {
                anyhow::anyhow!(
                    "expected a CloudFormation custom resource request (RequestType, ResponseURL, StackId, \
                     RequestId, LogicalResourceId): {e}"
                )
            })?;
            (answer_to(&url)?, response)
        }
    };
    response_url::put(&destination, serde_json::to_vec(&response)?, &deadline)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(response)
}

/// Where the answer goes, if `url` is one CloudFormation could give: S3 of this function's region (a
/// custom resource's function is in its stack's region: "ServiceToken … from the same Region as the
/// stack"), as Lambda sets `AWS_REGION`.
fn answer_to(url: &str) -> anyhow::Result<hyper::Uri> {
    let region = std::env::var("AWS_REGION").map_err(|_| anyhow::anyhow!("AWS_REGION is not set"))?;
    let s3_endpoint =
        std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL")).ok();
    response_url::destination(url, &region, s3_endpoint.as_deref()).map_err(anyhow::Error::msg)
}

/// The request's fields this resource reads.
fn read(request: CfnRequest) -> anyhow::Result<Request> {
    let properties = |value: serde_json::Value| match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Ok(match request {
        CfnRequest::Create(r) => Request {
            request_type: RequestType::Create,
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
            physical_resource_id: None,
            resource_properties: properties(r.resource_properties),
        },
        CfnRequest::Update(r) => Request {
            request_type: RequestType::Update,
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
            physical_resource_id: Some(r.physical_resource_id),
            resource_properties: properties(r.resource_properties),
        },
        CfnRequest::Delete(r) => Request {
            request_type: RequestType::Delete,
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
            physical_resource_id: Some(r.physical_resource_id),
            resource_properties: properties(r.resource_properties),
        },
        _ => anyhow::bail!("a custom resource request type this resource does not know"),
    })
}
