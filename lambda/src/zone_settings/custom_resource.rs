//! The stack's custom resource `ZoneNegativeCaching`: on a zone the stack creates, it sets the SOA's
//! TTL and MINIMUM to the `NegativeCacheTtl` parameter when the stack is created or that parameter
//! changes, so that resolvers forget an absent service within seconds instead of 15 minutes
//! (`negative_caching`). CloudFormation cannot change an SOA itself: Route53 creates it with the zone.
//!
//! The protocol (CloudFormation User Guide, "Custom resource request and response reference"):
//! a request names `RequestType` (Create, Update, Delete) and a presigned `ResponseURL`; the answer
//! is one JSON object PUT there, `Status` SUCCESS or FAILED (with a `Reason`), the request's ids and a
//! `PhysicalResourceId` that stays the same for the same resource, within 4,096 bytes. This module
//! reads the request and decides the answer; the caller sends it.

use ecssd_records::{Domain, OwnerId, RecordStore, SoaStore};
use serde::{Deserialize, Serialize};

use crate::deadline::Deadline;
use crate::zone_settings::stacks::{DELETING, Stacks};
use crate::zone_settings::{emptying, negative_caching};

/// The request fields this resource reads (others are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Given with Update and Delete: the id the Create answered.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// The answer CloudFormation reads from the response URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The resource's properties, as the template gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Properties<'a> {
    zone_id: &'a str,
    negative_cache_ttl: u32,
}

/// The largest `NegativeCacheTtl` (the template's MaxValue): Route53's own default MINIMUM, a day.
const MAX_NEGATIVE_CACHE_TTL: u32 = 86_400;

/// A CloudFormation `Reason` is shown in the console; the whole answer must stay under 4,096 bytes.
const MAX_REASON_CHARS: usize = 1_000;

fn properties(request: &Request) -> Result<Properties<'_>, String> {
    let property = |name: &str| request.resource_properties.get(name);
    let zone_id = match property("ZoneId") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => id.as_str(),
        other => {
            return Err(format!(
                "property ZoneId must be the hosted zone's id (e.g. Z0123456789ABC), got {other:?}"
            ));
        }
    };
    // CloudFormation passes every property value as a string; a number is taken too.
    let negative_cache_ttl = match property("NegativeCacheTtl") {
        Some(serde_json::Value::String(text)) => text.trim().parse::<u32>().ok(),
        Some(serde_json::Value::Number(number)) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
    .filter(|seconds| *seconds <= MAX_NEGATIVE_CACHE_TTL)
    .ok_or_else(|| {
        format!(
            "property NegativeCacheTtl must be a whole number of seconds from 0 to {MAX_NEGATIVE_CACHE_TTL}, got {:?}",
            property("NegativeCacheTtl")
        )
    })?;
    Ok(Properties { zone_id, negative_cache_ttl })
}

/// The zone this function was deployed for, and whose records in it are ecssd's: what its stack
/// configured, since anyone allowed to invoke the function can send it a request.
#[derive(Debug, Clone, Copy)]
pub struct ServedZone<'a> {
    pub id: &'a str,
    pub domain: &'a Domain,
    pub owner: &'a OwnerId,
    /// The stack's `NegativeCacheTtl`: the only value Create and Update set.
    pub negative_cache_ttl: u32,
    /// The stack this function belongs to: the only one whose delete empties the zone.
    pub stack_id: &'a str,
}

/// Handles one request against `zone` (the zone this function was deployed for): Create and Update set
/// the negative-caching time, to the stack's value only. Delete comes when the stack is deleted, but
/// also when the resource is removed in an update or a rollback, and anyone allowed to invoke the
/// function can send one: only when CloudFormation itself says its stack is being deleted
/// (`DescribeStacks`: `DELETE_IN_PROGRESS`) does it empty the zone of this owner's records (Route53
/// deletes only a zone that holds nothing but its SOA and NS), and fail naming the records it leaves;
/// otherwise it touches nothing. Never fails itself: a problem is a FAILED answer that names it, so the
/// stack operation stops with the reason instead of waiting.
pub async fn handle(
    zone: &(impl SoaStore + RecordStore),
    stacks: &impl Stacks,
    served: ServedZone<'_>,
    request: &Request,
    deadline: &Deadline,
) -> Response {
    let (zone_id, configured) = (served.id, served.negative_cache_ttl);
    let physical_resource_id = format!("{zone_id}/negative-caching");
    let answer = |status, reason: Option<String>, physical_resource_id: String| Response {
        status,
        reason: reason.map(|reason| reason.chars().take(MAX_REASON_CHARS).collect()),
        physical_resource_id,
        stack_id: request.stack_id.clone(),
        request_id: request.request_id.clone(),
        logical_resource_id: request.logical_resource_id.clone(),
    };
    if request.request_type == RequestType::Delete {
        // The id must be the one answered before, whatever it was.
        let id = request.physical_resource_id.clone().unwrap_or(physical_resource_id);
        let ours =
            properties(request).is_ok_and(|p| p.zone_id == zone_id) && request.stack_id == served.stack_id;
        if !ours {
            tracing::info!(
                stack_id = request.stack_id,
                "a Delete of another stack's or zone's resource: nothing to do"
            );
            return answer(Status::Success, None, id);
        }
        match deadline.within(stacks.status(served.stack_id)).await {
            Some(Ok(Some(status))) if status == DELETING => {}
            Some(Ok(status)) => {
                let status = status.as_deref().unwrap_or("no such stack");
                tracing::info!(
                    status,
                    "the resource's Delete, but the stack is not being deleted: the zone and its records stay"
                );
                return answer(Status::Success, None, id);
            }
            Some(Err(problem)) => {
                let problem = format!(
                    "CloudFormation did not say whether the stack is being deleted ({problem}): nothing was \
                     deleted; delete the stack again"
                );
                tracing::error!(%problem, "the zone cannot be emptied for the stack's delete");
                return answer(Status::Failed, Some(problem), id);
            }
            None => {
                let problem = "out of time asking CloudFormation whether the stack is being deleted: nothing \
                               was deleted; delete the stack again";
                return answer(Status::Failed, Some(problem.to_owned()), id);
            }
        }
        return match emptying::empty_of_ours(zone, served.domain, served.owner, *deadline).await {
            Ok(deleted) => {
                tracing::info!(deleted, "the zone was emptied of ecssd's records for the stack's delete");
                answer(Status::Success, None, id)
            }
            Err(problem) => {
                tracing::error!(%problem, "the zone cannot be emptied for the stack's delete");
                answer(Status::Failed, Some(problem), id)
            }
        };
    }
    let outcome = match properties(request) {
        Err(problem) => Err(problem),
        Ok(properties) if properties.zone_id != zone_id => Err(format!(
            "property ZoneId {:?} is not the zone this function serves ({zone_id:?}, its ECSSD_ZONE_ID)",
            properties.zone_id
        )),
        Ok(properties) if properties.negative_cache_ttl != configured => Err(format!(
            "property NegativeCacheTtl {} is not the value this function's stack configured \
             (ECSSD_KEEP_NEGATIVE_TTL={configured}): nothing changed",
            properties.negative_cache_ttl
        )),
        Ok(properties) => negative_caching::set(zone, properties.negative_cache_ttl, deadline)
            .await
            .map_err(|e| format!("setting the zone's negative caching: {e}"))
            .map(|(before, after)| (properties, before, after)),
    };
    match outcome {
        Ok((properties, before, after)) => {
            tracing::info!(
                request_type = ?request.request_type,
                seconds = properties.negative_cache_ttl,
                before = %before,
                changed = after.is_some(),
                "zone negative caching set"
            );
            answer(Status::Success, None, physical_resource_id)
        }
        Err(problem) => {
            tracing::error!(request_type = ?request.request_type, %problem, "custom resource failed");
            answer(Status::Failed, Some(problem), physical_resource_id)
        }
    }
}

/// The FAILED answer to a request this resource cannot read (a property of the wrong type, an unknown
/// `RequestType`), when it still names where to answer and what: so the stack fails at once with the
/// reason instead of waiting out its `ServiceTimeout`. `None` when even that is missing.
pub fn refuse_unreadable(request: &serde_json::Value, problem: &str) -> Option<(String, Response)> {
    let text = |field: &str| request.get(field).and_then(serde_json::Value::as_str).map(str::to_owned);
    let response = Response {
        status: Status::Failed,
        reason: Some(
            format!("not a request this resource reads: {problem}").chars().take(MAX_REASON_CHARS).collect(),
        ),
        physical_resource_id: text("PhysicalResourceId").unwrap_or_else(|| "unreadable-request".to_owned()),
        stack_id: text("StackId")?,
        request_id: text("RequestId")?,
        logical_resource_id: text("LogicalResourceId")?,
    };
    Some((text("ResponseURL")?, response))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ecssd_records::memory::MemoryZone;

    use super::*;

    const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/ecssd/1";

    fn request(request_type: &str, properties: serde_json::Value) -> Request {
        serde_json::from_value(serde_json::json!({
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:zone-settings",
            "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x",
            "StackId": STACK_ID,
            "RequestId": "r-1",
            "ResourceType": "Custom::ZoneNegativeCaching",
            "LogicalResourceId": "ZoneNegativeCaching",
            "PhysicalResourceId": "Z1/negative-caching",
            "ResourceProperties": properties,
        }))
        .expect("a CloudFormation request")
    }

    /// Handles `request` as the function of a stack configured with the value it asks for (10 when it
    /// asks for none that can be read).
    async fn run(zone: &MemoryZone, request: &Request) -> Response {
        let configured = properties(request).map_or(10, |p| p.negative_cache_ttl);
        run_as(zone, configured, &DELETING_STACK, request).await
    }

    /// CloudFormation's answer about the stack, in the tests.
    struct StackIn(&'static str);

    impl Stacks for StackIn {
        async fn status(&self, _stack_id: &str) -> Result<Option<String>, String> {
            Ok(Some(self.0.to_owned()))
        }
    }

    /// The stack is being deleted.
    const DELETING_STACK: StackIn = StackIn(DELETING);

    async fn run_as(zone: &MemoryZone, configured: u32, stacks: &impl Stacks, request: &Request) -> Response {
        let (domain, owner) = ("sd.internal".parse().unwrap(), "default".parse().unwrap());
        let served = ServedZone {
            id: "Z1",
            domain: &domain,
            owner: &owner,
            negative_cache_ttl: configured,
            stack_id: STACK_ID,
        };
        handle(zone, stacks, served, request, &Deadline::after(Duration::from_secs(10))).await
    }

    /// Issue 27: anyone allowed to invoke the function could set the zone's negative caching to a day.
    #[tokio::test]
    async fn only_the_stacks_configured_value_is_set() {
        let zone = MemoryZone::new([]);
        let props = serde_json::json!({"ZoneId": "Z1", "NegativeCacheTtl": "86400"});
        let response = run_as(&zone, 10, &DELETING_STACK, &request("Create", props)).await;
        assert_eq!(response.status, Status::Failed);
        let reason = response.reason.unwrap();
        assert!(reason.contains("NegativeCacheTtl 86400 is not the value this function's stack configured (ECSSD_KEEP_NEGATIVE_TTL=10)"), "{reason}");
        assert!(zone.take_calls().is_empty(), "nothing read or changed");
    }

    #[tokio::test]
    async fn create_sets_ttl_and_minimum_from_the_string_cloudformation_passes() {
        let zone = MemoryZone::new([]);
        let props = serde_json::json!({"ServiceToken": "x", "ZoneId": "Z1", "NegativeCacheTtl": "10"});
        let response = run(&zone, &request("Create", props)).await;
        assert_eq!((response.status, response.reason.as_deref()), (Status::Success, None));
        assert_eq!(response.physical_resource_id, "Z1/negative-caching");
        assert_eq!(
            (response.request_id.as_str(), response.logical_resource_id.as_str()),
            ("r-1", "ZoneNegativeCaching")
        );
        let soa = zone.read_soa().await.expect("read");
        assert_eq!((soa.ttl, soa.minimum, soa.negative_ttl()), (10, 10, 10));
    }

    #[tokio::test]
    async fn update_to_the_same_value_writes_nothing_and_delete_of_an_empty_zone_only_reads() {
        let zone = MemoryZone::new([]);
        let props = serde_json::json!({"ZoneId": "Z1", "NegativeCacheTtl": 30});
        assert_eq!(run(&zone, &request("Update", props.clone())).await.status, Status::Success);
        zone.take_calls();
        assert_eq!(run(&zone, &request("Update", props.clone())).await.status, Status::Success);
        assert_eq!(zone.take_calls(), ["read SOA"]);
        let deleted = run(&zone, &request("Delete", props)).await;
        assert_eq!(
            (deleted.status, deleted.physical_resource_id.as_str()),
            (Status::Success, "Z1/negative-caching")
        );
        assert!(zone.calls().iter().all(|call| *call != "change"), "{:?}", zone.calls());
    }

    /// Issue 27: the stack could not be deleted while its zone held records (Route53 deletes only an
    /// empty zone). Delete empties it of this owner's records, and only those; what else is left is
    /// named, and the stack's delete fails with it.
    #[tokio::test]
    async fn delete_empties_the_zone_of_this_owners_records_and_names_what_else_blocks_it() {
        use ecssd_records::TaskAddresses;

        use crate::fixtures::{IPV4, IPV6, TASK_IDS, web_task_records, web_task_records_at};
        let props = serde_json::json!({"ZoneId": "Z1", "NegativeCacheTtl": "10"});
        let ours = web_task_records("default", TASK_IDS[0]);
        let zone = MemoryZone::new(ours.iter().cloned());
        let deleted = run(&zone, &request("Delete", props.clone())).await;
        assert_eq!((deleted.status, deleted.reason), (Status::Success, None));
        assert!(zone.records().is_empty(), "{:?}", zone.records());

        // Issue 30: a dual-stack and an IPv6-only task's AAAA records go too.
        let dual = TaskAddresses::Dual(IPV4, IPV6);
        let with_ipv6 = [
            web_task_records_at("default", TASK_IDS[2], dual, 80),
            web_task_records_at("default", TASK_IDS[3], IPV6.into(), 80),
        ];
        let zone = MemoryZone::new(with_ipv6.iter().flat_map(|set| set.iter().cloned()));
        let deleted = run(&zone, &request("Delete", props.clone())).await;
        assert_eq!((deleted.status, deleted.reason), (Status::Success, None));
        assert!(zone.records().is_empty(), "{:?}", zone.records());

        let theirs = web_task_records("other", TASK_IDS[1]);
        let zone = MemoryZone::new(ours.iter().chain(theirs.iter()).cloned());
        let refused = run(&zone, &request("Delete", props)).await;
        assert_eq!(refused.status, Status::Failed);
        let reason = refused.reason.unwrap();
        assert!(reason.contains("the zone still holds 3 A, AAAA, SRV or TXT records"), "{reason}");
        assert!(reason.contains(&format!("{}.sd.internal. A", TASK_IDS[1])), "{reason}");
        let both: ecssd_records::RecordSet = ours.iter().chain(theirs.iter()).cloned().collect();
        assert_eq!(zone.records(), both, "named before anything was deleted");
    }

    /// Issue 27 (review): a Delete also comes when the resource leaves the stack in an update or a
    /// rollback, and anyone allowed to invoke the function can send one; only CloudFormation's word
    /// that this stack is being deleted empties the zone.
    #[tokio::test]
    async fn a_delete_empties_nothing_unless_cloudformation_says_this_stack_is_being_deleted() {
        use crate::fixtures::{TASK_IDS, web_task_records};
        let props = serde_json::json!({"ZoneId": "Z1", "NegativeCacheTtl": "10"});
        let ours = web_task_records("default", TASK_IDS[0]);
        for status in
            ["UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "CREATE_COMPLETE"]
        {
            let zone = MemoryZone::new(ours.iter().cloned());
            let answered = run_as(&zone, 10, &StackIn(status), &request("Delete", props.clone())).await;
            assert_eq!(answered.status, Status::Success, "{status}");
            assert_eq!(zone.records(), ours, "{status}: the zone stays, and so do its records");
        }
        let zone = MemoryZone::new(ours.iter().cloned());
        let mut another = request("Delete", props.clone());
        another.stack_id = "arn:aws:cloudformation:eu-west-1:123456789012:stack/other/2".into();
        assert_eq!(run_as(&zone, 10, &DELETING_STACK, &another).await.status, Status::Success);
        assert_eq!(zone.records(), ours, "another stack's Delete");

        struct Silent;
        impl Stacks for Silent {
            async fn status(&self, _stack_id: &str) -> Result<Option<String>, String> {
                Err("DescribeStacks timed out".into())
            }
        }
        let refused = run_as(&zone, 10, &Silent, &request("Delete", props)).await;
        assert_eq!(refused.status, Status::Failed);
        assert!(refused.reason.unwrap().contains("did not say whether the stack is being deleted"));
        assert_eq!(zone.records(), ours, "unknown is not a delete");
    }

    #[tokio::test]
    async fn bad_properties_fail_with_a_reason_naming_them_and_change_nothing() {
        for (props, expected) in [
            (
                serde_json::json!({"ZoneId": "Z1", "NegativeCacheTtl": "ten"}),
                "NegativeCacheTtl must be a whole number",
            ),
            (serde_json::json!({"ZoneId": "Z1", "NegativeCacheTtl": "86401"}), "from 0 to 86400"),
            (serde_json::json!({"ZoneId": "Z1"}), "NegativeCacheTtl"),
            (serde_json::json!({"NegativeCacheTtl": "10"}), "property ZoneId"),
            (
                serde_json::json!({"ZoneId": "Z2", "NegativeCacheTtl": "10"}),
                "\"Z2\" is not the zone this function serves",
            ),
        ] {
            let zone = MemoryZone::new([]);
            let response = run(&zone, &request("Create", props.clone())).await;
            assert_eq!(response.status, Status::Failed, "{props}");
            let reason = response.reason.expect("a reason");
            assert!(reason.contains(expected), "{props}: {reason}");
            assert!(zone.calls().is_empty(), "{props}: {:?}", zone.calls());
        }
    }

    #[test]
    fn an_unreadable_request_is_answered_failed_when_it_says_where() {
        let mut request = serde_json::json!({
            "RequestType": "Replace", "ResponseURL": "https://bucket/x", "StackId": "s",
            "RequestId": "r", "LogicalResourceId": "ZoneNegativeCaching",
        });
        let (url, response) = refuse_unreadable(&request, "unknown variant `Replace`").expect("an answer");
        assert_eq!((url.as_str(), response.status), ("https://bucket/x", Status::Failed));
        assert!(response.reason.expect("a reason").contains("unknown variant `Replace`"));
        request.as_object_mut().expect("object").remove("RequestId");
        assert_eq!(refuse_unreadable(&request, "no RequestId"), None, "nothing to answer with");
    }

    #[test]
    fn the_answer_has_cloudformations_field_names() {
        let response = Response {
            status: Status::Failed,
            reason: Some("why".into()),
            physical_resource_id: "p".into(),
            stack_id: "s".into(),
            request_id: "r".into(),
            logical_resource_id: "l".into(),
        };
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            serde_json::json!({"Status": "FAILED", "Reason": "why", "PhysicalResourceId": "p",
                "StackId": "s", "RequestId": "r", "LogicalResourceId": "l"})
        );
    }
}
