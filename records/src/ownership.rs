//! The ownership TXT record `_ecssd.<task-id>.<domain>`: the index that lets a sweeper find and
//! delete exactly one task's records, and the marker that tells ecssd's records from everyone else's
//! (external-dns' TXT registry, one record per task).
//!
//! Its values are TXT strings: the first value is the header
//! `"heritage=ecssd" "owner=<owner>" "cluster=<arn>" "task=<arn>"`, then one value per SRV record the
//! task registered, `"srv=<set-identifier> <name>"`.
//!
//! A task that withdrew while a registration it handed to the batcher could still land leaves a
//! *withdrawal guard* instead of deleting the record: a header with `"withdrawn-until=<unix seconds>"`
//! and nothing listed. Every handoff creates or replaces this record with exact values, in the same
//! atomic request as its other changes, so while the guard stands no handoff can land (Route53 refuses
//! the whole request); after `withdrawn-until` none can, and the guard is an orphan like any other.
//!
//! A TXT character-string holds at most 255 characters (Route53 Developer Guide, "Supported DNS record
//! types", TXT), and a cluster's ARN alone may be longer. A longer field is cut into strings of at most
//! 255; a string that does not start with one of the field keys continues the one before it (none of
//! the fields' values contains `=`, so a cut can never look like a key).

use crate::desired::parse_set_identifier;
use crate::names::{Domain, OwnerId, TaskArn};
use crate::record::{RecordKey, RecordType};

/// The marker every ecssd ownership record carries first.
pub const HERITAGE: &str = "heritage=ecssd";

/// The longest TXT character-string (RFC 1035 section 3.3; Route53 rejects longer ones).
pub const MAX_TXT_STRING: usize = 255;

/// The keys a string of an ownership record starts with; any other string continues the previous one.
const FIELD_KEYS: [&str; 6] = ["heritage=", "owner=", "cluster=", "task=", "withdrawn-until=", "srv="];

/// The longest a withdrawal guard may guard: a handoff's lifetime (60 s) and room for clocks, twice.
pub const MAX_GUARD_SECONDS: u64 = 130;

/// The label prefix of ownership records.
pub const OWNERSHIP_LABEL: &str = "_ecssd";

/// The ownership record's name for a task: `_ecssd.<task-id>.<domain>.` (the sweeper derives it from a
/// task id alone, e.g. one read from a set identifier).
pub fn ownership_name(domain: &Domain, task_id: &str) -> String {
    domain.child(&format!("{OWNERSHIP_LABEL}.{task_id}"))
}

/// The name of the task's A and AAAA records, the target of its SRV records: `<task-id>.<domain>.`
pub fn address_name(domain: &Domain, task_id: &str) -> String {
    domain.child(task_id)
}

/// The keys of the records one task may own: the one answer to "which records are this task's", for
/// the sidecar reading its records back, the sweeper handing a dead task's records over for deletion,
/// and its search for an orphan's owner. A record is a claim: whatever an ownership record lists, it
/// hands over only these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskKeys {
    /// `_ecssd.<task-id>.<domain>.` TXT.
    pub ownership: RecordKey,
    /// `<task-id>.<domain>.` A, the task's IPv4 address.
    pub ipv4: RecordKey,
    /// `<task-id>.<domain>.` AAAA, the task's IPv6 address.
    pub ipv6: RecordKey,
}

impl TaskKeys {
    pub fn of(domain: &Domain, task_id: &str) -> Self {
        let key = |name, record_type| RecordKey { name, record_type, set_identifier: None };
        Self {
            ownership: key(ownership_name(domain, task_id), RecordType::Txt),
            ipv4: key(address_name(domain, task_id), RecordType::A),
            ipv6: key(address_name(domain, task_id), RecordType::Aaaa),
        }
    }

    /// The name of the task's A and AAAA records, the target of its SRV records.
    pub fn target(&self) -> &str {
        &self.ipv4.name
    }

    /// The task's address records, A then AAAA; a task may hold either or both.
    pub fn addresses(&self) -> [&RecordKey; 2] {
        [&self.ipv4, &self.ipv6]
    }

    /// Whether `key` is one of the task's address records.
    pub fn is_address(&self, key: &RecordKey) -> bool {
        *key == self.ipv4 || *key == self.ipv6
    }
}

/// Whether `key` is an SRV record ecssd writes for task `task_id` of `owner`: inside the domain, its
/// set identifier naming this task and this owner (or written before set identifiers carried the owner).
pub(crate) fn is_srv_of(domain: &Domain, owner: &OwnerId, task_id: &str, key: &RecordKey) -> bool {
    let claim = key.set_identifier.as_deref().and_then(parse_set_identifier);
    key.record_type == RecordType::Srv
        && domain.contains(&key.name)
        && claim.is_some_and(|c| c.task_id == task_id && c.owner.is_none_or(|o| o == owner.as_str()))
}

/// The decoded contents of one ownership record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// Which ecssd deployment wrote it; others leave it alone.
    pub owner: OwnerId,
    /// The cluster the task runs in, so the sweeper can ask ECS about it.
    pub cluster_arn: String,
    /// The task the records belong to.
    pub task: TaskArn,
    /// Keys of the SRV records the task registered, sorted.
    pub srv: Vec<RecordKey>,
    /// A withdrawal guard: the task withdrew, and a registration it handed over may land until then
    /// (Unix seconds). It lists nothing.
    pub withdrawn_until: Option<u64>,
}

/// Why a TXT record is not a usable ownership record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    /// The record lacks the ecssd marker: someone else's record, never to be touched.
    #[error("not an ecssd ownership record (no `{HERITAGE}` marker)")]
    NotOurs,
    /// It carries the marker but cannot be read; it is ecssd's, so it may be repaired.
    #[error("malformed ecssd ownership record: {0}")]
    Malformed(String),
}

impl Ownership {
    /// The withdrawal guard of a task whose handed-over registrations may land until `until` (Unix
    /// seconds).
    pub fn withdrawal_guard(owner: OwnerId, cluster_arn: String, task: TaskArn, until: u64) -> Self {
        Self { owner, cluster_arn, task, srv: Vec::new(), withdrawn_until: Some(until) }
    }

    /// Whether this is a withdrawal guard that still keeps handoffs from landing at `now` (Unix
    /// seconds): it is not to be deleted before then. One that claims to guard for longer than
    /// [`MAX_GUARD_SECONDS`] from now (a forgery, or a host clock far ahead) guards nothing.
    pub fn guards_at(&self, now: u64) -> bool {
        self.withdrawn_until.is_some_and(|until| now <= until && until <= now + MAX_GUARD_SECONDS)
    }

    /// The TXT values that encode this ownership, header first.
    pub fn encode(&self) -> Vec<String> {
        let mut header = vec![
            HERITAGE.to_owned(),
            format!("owner={}", self.owner),
            format!("cluster={}", self.cluster_arn),
            format!("task={}", self.task),
        ];
        header.extend(self.withdrawn_until.map(|until| format!("withdrawn-until={until}")));
        let mut values = vec![txt_value(&header)];
        for key in &self.srv {
            let id = key.set_identifier.as_deref().unwrap_or_default();
            values.push(txt_value(&[format!("srv={id} {}", key.name)]));
        }
        values
    }

    /// The keys of the records this ownership record hands over besides itself, and nothing else it
    /// may list: the task's A and AAAA records, and each listed SRV record ecssd writes for its task
    /// and owner.
    pub fn handed_over(&self, domain: &Domain) -> Vec<RecordKey> {
        let TaskKeys { ipv4, ipv6, .. } = TaskKeys::of(domain, self.task.id());
        let srv = self.srv.iter().filter(|key| is_srv_of(domain, &self.owner, self.task.id(), key));
        [ipv4, ipv6].into_iter().chain(srv.cloned()).collect()
    }

    /// Reads TXT values written by [`encode`](Self::encode), in any order.
    pub fn decode(values: &[String]) -> Result<Self, OwnershipError> {
        let parsed: Vec<Vec<String>> = values.iter().map(|v| join_continuations(txt_strings(v))).collect();
        let Some(header) = parsed.iter().find(|s| s.first().is_some_and(|f| f == HERITAGE)) else {
            return Err(OwnershipError::NotOurs);
        };
        let field = |key: &str| {
            header
                .iter()
                .find_map(|s| s.strip_prefix(key).and_then(|s| s.strip_prefix('=')))
                .ok_or_else(|| OwnershipError::Malformed(format!("the header has no `{key}=`")))
        };
        let owner = field("owner")?.parse().map_err(|e| OwnershipError::Malformed(format!("{e}")))?;
        let cluster_arn = field("cluster")?.to_owned();
        let task = field("task")?.parse().map_err(|e| OwnershipError::Malformed(format!("{e}")))?;
        let withdrawn_until = match field("withdrawn-until") {
            Ok(until) => Some(until.parse().map_err(|_| {
                OwnershipError::Malformed(format!("`withdrawn-until={until}` is not Unix seconds"))
            })?),
            Err(_) => None,
        };
        let mut srv = Vec::new();
        for strings in parsed.iter().filter(|s| !std::ptr::eq(*s, header)) {
            for entry in strings {
                let Some(rest) = entry.strip_prefix("srv=") else {
                    return Err(OwnershipError::Malformed(format!("unexpected entry `{entry}`")));
                };
                let Some((set_identifier, name)) = rest.split_once(' ') else {
                    return Err(OwnershipError::Malformed(format!("`{entry}` lacks a name")));
                };
                srv.push(RecordKey {
                    name: name.to_owned(),
                    record_type: RecordType::Srv,
                    set_identifier: Some(set_identifier.to_owned()),
                });
            }
        }
        srv.sort();
        if withdrawn_until.is_some() && !srv.is_empty() {
            return Err(OwnershipError::Malformed("a withdrawal guard lists SRV records".into()));
        }
        Ok(Self { owner, cluster_arn, task, srv, withdrawn_until })
    }
}

/// One TXT value holding `fields` as quoted strings, each field cut into strings of at most
/// [`MAX_TXT_STRING`] characters. Fields are ASCII without quotes or backslashes (validated names and
/// ARNs), so no escaping is needed.
fn txt_value(fields: &[String]) -> String {
    let mut strings = Vec::new();
    for field in fields {
        let mut rest = field.as_str();
        loop {
            let mut cut = rest.len().min(MAX_TXT_STRING);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            strings.push(format!("\"{}\"", &rest[..cut]));
            rest = &rest[cut..];
            if rest.is_empty() {
                break;
            }
        }
    }
    strings.join(" ")
}

/// Rejoins fields that [`txt_value`] cut: a string that starts with no field key continues the last.
fn join_continuations(strings: Vec<String>) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for string in strings {
        match fields.last_mut() {
            Some(last) if !FIELD_KEYS.iter().any(|key| string.starts_with(key)) => last.push_str(&string),
            _ => fields.push(string),
        }
    }
    fields
}

/// Splits one TXT value into its quoted character strings, undoing `\"` and `\\` escapes.
pub fn txt_strings(value: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut current = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                '"' => break,
                c => current.push(c),
            }
        }
        strings.push(current);
    }
    strings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ownership {
        Ownership {
            owner: "prod".parse().expect("owner"),
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/prod".into(),
            task: "arn:aws:ecs:us-east-1:1:task/prod/abc123".parse().expect("task"),
            srv: vec![
                RecordKey {
                    name: "_calc._tcp.sd.internal.".into(),
                    record_type: RecordType::Srv,
                    set_identifier: Some("ecssd:abc123:calc:8080".into()),
                },
                RecordKey {
                    name: "_time._tcp.sd.internal.".into(),
                    record_type: RecordType::Srv,
                    set_identifier: Some("ecssd:abc123:time:80".into()),
                },
            ],
            withdrawn_until: None,
        }
    }

    #[test]
    fn an_ownership_record_hands_over_only_its_tasks_keys() {
        let domain: Domain = "sd.internal".parse().expect("domain");
        let mut ownership = sample();
        let srv = |name: &str, set_identifier: &str| RecordKey {
            name: name.into(),
            record_type: RecordType::Srv,
            set_identifier: Some(set_identifier.into()),
        };
        let ours = srv("_web._tcp.sd.internal.", "ecssd:prod:abc123:web:80");
        ownership.srv.extend([
            ours.clone(),
            srv("_web._tcp.sd.internal.", "ecssd:other:abc123:web:80"),
            srv("_web._tcp.sd.internal.", "ecssd:prod:def456:web:80"),
            srv("_web._tcp.elsewhere.internal.", "ecssd:prod:abc123:web:80"),
            srv("_web._tcp.sd.internal.", "manual"),
        ]);
        let keys = ownership.handed_over(&domain);
        let names: Vec<(&str, Option<&str>)> =
            keys.iter().map(|k| (k.name.as_str(), k.set_identifier.as_deref())).collect();
        assert_eq!(
            names,
            [
                ("abc123.sd.internal.", None),
                ("abc123.sd.internal.", None),
                ("_calc._tcp.sd.internal.", Some("ecssd:abc123:calc:8080")),
                ("_time._tcp.sd.internal.", Some("ecssd:abc123:time:80")),
                ("_web._tcp.sd.internal.", Some("ecssd:prod:abc123:web:80")),
            ],
            "another owner's, another task's, another domain's and a foreign key are not handed over"
        );
        assert_eq!([keys[0].record_type, keys[1].record_type], [RecordType::A, RecordType::Aaaa]);
    }

    #[test]
    fn round_trips_in_any_value_order() {
        let ownership = sample();
        let mut values = ownership.encode();
        assert_eq!(
            values[0],
            "\"heritage=ecssd\" \"owner=prod\" \"cluster=arn:aws:ecs:us-east-1:1:cluster/prod\" \
             \"task=arn:aws:ecs:us-east-1:1:task/prod/abc123\""
        );
        assert_eq!(values[1], "\"srv=ecssd:abc123:calc:8080 _calc._tcp.sd.internal.\"");
        values.reverse();
        assert_eq!(Ownership::decode(&values), Ok(ownership));
    }

    #[test]
    fn foreign_and_broken_records() {
        for (values, expected) in [
            (vec!["\"v=spf1 -all\""], Err(OwnershipError::NotOurs)),
            (vec!["heritage=ecssd"], Err(OwnershipError::NotOurs)),
            (vec![], Err(OwnershipError::NotOurs)),
            (
                vec!["\"heritage=ecssd\" \"owner=x\" \"cluster=c\""],
                Err(OwnershipError::Malformed("the header has no `task=`".into())),
            ),
        ] {
            let values: Vec<String> = values.into_iter().map(String::from).collect();
            assert_eq!(Ownership::decode(&values), expected, "{values:?}");
        }
        let broken = vec![
            "\"heritage=ecssd\" \"owner=x\" \"cluster=c\" \"task=arn:aws:ecs:r:1:task/c/t\"".to_owned(),
            "\"something=else\"".to_owned(),
        ];
        assert!(matches!(Ownership::decode(&broken), Err(OwnershipError::Malformed(_))));
    }

    #[test]
    fn long_fields_are_cut_into_strings_of_at_most_255_and_read_back_whole() {
        let cluster = format!("arn:aws:ecs:us-east-1:123456789012:cluster/{}", "c".repeat(255));
        let ownership = Ownership {
            owner: "prod".parse().expect("owner"),
            cluster_arn: cluster.clone(),
            task: format!("arn:aws:ecs:us-east-1:123456789012:task/{}/{}", "c".repeat(255), "a".repeat(32))
                .parse()
                .expect("task"),
            srv: vec![RecordKey {
                name: format!("_{}._tcp.{}.", "s".repeat(62), "d".repeat(60)),
                record_type: RecordType::Srv,
                set_identifier: Some(format!("ecssd:{}:{}:80", "a".repeat(32), "w".repeat(80))),
            }],
            withdrawn_until: None,
        };
        let values = ownership.encode();
        for value in &values {
            for string in txt_strings(value) {
                assert!(string.len() <= MAX_TXT_STRING, "{} characters: {string}", string.len());
            }
        }
        assert!(txt_strings(&values[0]).len() > 4, "the long cluster and task ARNs were cut");
        assert_eq!(Ownership::decode(&values), Ok(ownership));
    }

    #[test]
    fn a_withdrawal_guard_round_trips_lists_nothing_and_guards_until_its_time() {
        let base = sample();
        let guard = Ownership::withdrawal_guard(base.owner, base.cluster_arn, base.task, 1_700_000_060);
        let values = guard.encode();
        assert_eq!(values.len(), 1, "a guard lists no SRV records: {values:?}");
        assert!(values[0].ends_with("\"withdrawn-until=1700000060\""), "{values:?}");
        assert_eq!(Ownership::decode(&values), Ok(guard.clone()));
        assert!(guard.guards_at(1_700_000_060) && !guard.guards_at(1_700_000_061));
        assert!(!guard.guards_at(1_700_000_060 - MAX_GUARD_SECONDS - 1), "a guard far ahead guards nothing");
        assert!(!sample().guards_at(0), "a task's claim is no guard");
        let listing =
            vec![values[0].clone(), "\"srv=ecssd:abc123:calc:8080 _calc._tcp.sd.internal.\"".into()];
        assert!(matches!(Ownership::decode(&listing), Err(OwnershipError::Malformed(_))));
        let bad = vec![values[0].replace("1700000060", "soon")];
        assert!(matches!(Ownership::decode(&bad), Err(OwnershipError::Malformed(_))));
    }

    #[test]
    fn txt_escapes() {
        assert_eq!(txt_strings(r#""a\"b" "c\\d" junk "e""#), ["a\"b", "c\\d", "e"]);
    }
}
