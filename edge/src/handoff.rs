//! The registration queue's messages: a [`Handoff`] as the JSON body of one SQS message, written by the
//! sidecar and read by the batcher.

use ecssd_records::{Action, Change, Handoff, Record, RecordKey, RecordType};
use serde::{Deserialize, Serialize};

/// The message format's version; a batcher refuses others by name.
const VERSION: u32 = 1;

/// One SQS message body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    version: u32,
    owner: String,
    task: String,
    not_after_ms: u64,
    changes: Vec<WireChange>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChange {
    action: String,
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set_identifier: Option<String>,
    ttl: u32,
    values: Vec<String>,
}

/// The message body for `handoff`.
pub fn encode(handoff: &Handoff) -> String {
    let changes = handoff
        .changes
        .iter()
        .map(|change| WireChange {
            action: change.action.as_str().to_owned(),
            name: change.record.key.name.clone(),
            record_type: change.record.key.record_type.as_str().to_owned(),
            set_identifier: change.record.key.set_identifier.clone(),
            ttl: change.record.ttl,
            values: change.record.values().to_vec(),
        })
        .collect();
    let message = Message {
        version: VERSION,
        owner: handoff.owner.to_string(),
        task: handoff.task.to_string(),
        not_after_ms: handoff.not_after_ms,
        changes,
    };
    serde_json::to_string(&message).expect("a handoff always serializes")
}

/// Reads a message body; the error names what is wrong and what is expected.
pub fn decode(body: &str) -> Result<Handoff, String> {
    let message: Message = serde_json::from_str(body).map_err(|e| {
        format!("not a registration handoff (JSON with version, owner, task, not_after_ms, changes): {e}")
    })?;
    if message.version != VERSION {
        return Err(format!("handoff version {} (this batcher reads version {VERSION})", message.version));
    }
    let owner = message.owner.parse().map_err(|e| format!("owner: {e}"))?;
    let task = message.task.parse().map_err(|e| format!("task: {e}"))?;
    let changes = message
        .changes
        .into_iter()
        .map(|c| {
            let action = match c.action.as_str() {
                "CREATE" => Action::Create,
                "DELETE" => Action::Delete,
                other => return Err(format!("change action {other:?} (expected CREATE or DELETE)")),
            };
            let record_type = RecordType::from_route53(&c.record_type)
                .ok_or_else(|| format!("record type {:?} (expected A, AAAA, SRV or TXT)", c.record_type))?;
            let key = RecordKey { name: c.name, record_type, set_identifier: c.set_identifier };
            Ok(Change { action, record: Record::new(key, c.ttl, c.values) })
        })
        .collect::<Result<_, String>>()?;
    Ok(Handoff { owner, task, not_after_ms: message.not_after_ms, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_reads_back_as_sent_and_a_bad_body_is_named() {
        let key = RecordKey {
            name: "_calc._tcp.sd.internal.".into(),
            record_type: RecordType::Srv,
            set_identifier: Some("ecssd:default:t:app:80".into()),
        };
        let handoff = Handoff {
            owner: "default".parse().unwrap(),
            task: "arn:aws:ecs:us-east-1:1:task/c/0123456789abcdef0123456789abcdef".parse().unwrap(),
            not_after_ms: 1_700_000_000_000,
            changes: vec![Change::create(Record::new(key, 10, vec!["1 1 80 t.sd.internal".into()]))],
        };
        assert_eq!(decode(&encode(&handoff)), Ok(handoff));
        assert!(decode("{}").unwrap_err().contains("not a registration handoff"));
        let other_version = encode_with(|m| m["version"] = 2.into());
        assert!(decode(&other_version).unwrap_err().contains("handoff version 2"));
        let upsert = encode_with(|m| m["changes"][0]["action"] = "UPSERT".into());
        assert!(decode(&upsert).unwrap_err().contains("\"UPSERT\" (expected CREATE or DELETE)"));
    }

    fn encode_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut message = serde_json::json!({
            "version": 1, "owner": "default",
            "task": "arn:aws:ecs:us-east-1:1:task/c/0123456789abcdef0123456789abcdef", "not_after_ms": 1,
            "changes": [{"action": "CREATE", "name": "x.sd.internal.", "type": "A", "ttl": 10, "values": ["127.0.0.1"]}],
        });
        edit(&mut message);
        message.to_string()
    }
}
