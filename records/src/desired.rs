//! `desired(task)`: the complete set of records one task should own, computed without I/O, within
//! DNS's and Route53's limits: an endpoint whose records would break one is left out with an error
//! naming its container, variable and the limit, and its siblings are published.

use crate::address::TaskAddresses;
use crate::names::{Domain, OwnerId, TaskArn};
#[cfg(test)]
use crate::names::{MAX_OWNER_ID, MAX_TASK_ID};
use crate::ownership::{Ownership, address_name, ownership_name};
use crate::record::{Record, RecordKey, RecordSet, RecordType};
use crate::service::ServiceName;

/// Route53 caps a SetIdentifier at 128 characters (API reference, `ResourceRecordSet`).
pub const MAX_SET_IDENTIFIER: usize = 128;

/// The longest name, in characters without the final dot: 255 octets on the wire (RFC 1035 section
/// 2.3.4) less the length octet of the first label and the root's. Route53's own wording ("255 bytes,
/// including the dots", Developer Guide, "DNS domain name format") allows two more, which no resolver
/// could look up, so the stricter DNS limit applies.
pub const MAX_NAME: usize = 253;

/// The longest label (RFC 1035 section 2.3.4; Route53: "Each label can be up to 63 bytes long").
pub const MAX_LABEL: usize = 63;

/// Values in one record set (Route53 quota: 400 per record); the ownership record has one per SRV
/// record and one header, so a task publishes at most this many less one endpoints.
pub const MAX_VALUES_PER_RECORD: usize = 400;

/// Settings every record of a deployment shares.
#[derive(Debug, Clone)]
pub struct ZoneModel {
    /// The private hosted zone's domain; every name lives below it.
    pub domain: Domain,
    /// Which deployment owns the records (written into the ownership record).
    pub owner: OwnerId,
    /// TTL of every record; it bounds how long a withdrawn target stays in resolvers' caches.
    pub ttl: u32,
}

/// One container port reachable from other tasks, published as an SRV target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The container's name in the task definition; part of the set identifier.
    pub container: String,
    /// The port inside the container, from `SERVICE_<port>_NAME`; part of the set identifier.
    pub container_port: u16,
    /// The SRV service it serves.
    pub service: ServiceName,
    /// Where other tasks reach it: the host port in bridge mode, the container port otherwise.
    pub reachable_port: u16,
}

/// Everything `desired` needs to know about one task.
#[derive(Debug, Clone)]
pub struct TaskRegistration {
    /// The cluster, recorded so the sweeper can ask ECS about the task.
    pub cluster_arn: String,
    pub task: TaskArn,
    /// Where the endpoints' ports are reachable (the host's or the ENI's): an A record for the IPv4
    /// address, an AAAA record for the IPv6 one.
    pub addresses: TaskAddresses,
    /// The endpoints to publish now; an empty list means the task should own no records at all.
    pub endpoints: Vec<Endpoint>,
}

/// The set identifier of one endpoint's SRV record: `ecssd:<owner>:<task-id>:<container>:<port>`,
/// shortened with a stable hash when a long container name would pass Route53's 128-character limit.
/// The owner is in it because an SRV record is the only record of a task a sweeper may find without its
/// ownership record: an orphan is deleted only when it provably carries the sweeper's own owner.
pub fn set_identifier(owner: &OwnerId, task: &TaskArn, container: &str, container_port: u16) -> String {
    let full = format!("ecssd:{owner}:{}:{container}:{container_port}", task.id());
    if full.len() <= MAX_SET_IDENTIFIER {
        return full;
    }
    let hash = format!("{:016x}", fnv1a64(container.as_bytes()));
    let fixed = format!("ecssd:{owner}:{}::{container_port}~{hash}", task.id()).len();
    let keep = MAX_SET_IDENTIFIER.saturating_sub(fixed);
    let mut cut = keep.min(container.len());
    while !container.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("ecssd:{owner}:{}:{}~{hash}:{container_port}", task.id(), &container[..cut])
}

/// An SRV record's value as ecssd writes it: `1 1 <port> <target>`, the target in the form
/// `<task-id>.<domain>` without the root dot, as the model documents.
pub fn srv_value(port: u16, target: &str) -> String {
    format!("1 1 {port} {}", target.trim_end_matches('.'))
}

/// The port and target of an SRV value `priority weight port target`, the target fully qualified
/// (with the root dot, as record names are) so it compares with names; `None` for another shape.
pub fn parse_srv_value(value: &str) -> Option<(u16, String)> {
    let fields: Vec<&str> = value.split(' ').collect();
    let [_priority, _weight, port, target] = fields[..] else { return None };
    Some((port.parse().ok()?, format!("{}.", target.trim_end_matches('.'))))
}

/// Who a set identifier says wrote an SRV record, and for which task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetIdentifierClaim<'a> {
    /// The owner, from `ecssd:<owner>:<task-id>:<container>:<port>`; `None` for the format written
    /// before the owner was added (`ecssd:<task-id>:<container>:<port>`), which proves no owner.
    pub owner: Option<&'a str>,
    pub task_id: &'a str,
}

/// Reads a set identifier [`set_identifier`] wrote, or one of the earlier format; `None` for any other
/// shape. Container names hold no `:` (ECS allows letters, digits, `_` and `-`), so the two formats
/// differ by their number of fields.
pub fn parse_set_identifier(set_identifier: &str) -> Option<SetIdentifierClaim<'_>> {
    let fields: Vec<&str> = set_identifier.strip_prefix("ecssd:")?.split(':').collect();
    let claim = match fields[..] {
        [task_id, _container, _port] => SetIdentifierClaim { owner: None, task_id },
        [owner, task_id, _container, _port] => SetIdentifierClaim { owner: Some(owner), task_id },
        _ => return None,
    };
    Some(claim).filter(|c| !c.task_id.is_empty() && c.owner.is_none_or(|o| !o.is_empty()))
}

/// FNV-1a: tiny, stable across releases and platforms (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// Why an endpoint (or, for a name every record shares, the whole task) is not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error(
        "container {container}: SERVICE_{port}_NAME makes the record name {name} ({problem}); \
         shorten the service name or the domain"
    )]
    EndpointName { container: String, port: u16, name: String, problem: String },
    #[error(
        "container {container}: SERVICE_{port}_NAME is not published: a task publishes at most {limit} \
         endpoints (Route53 allows {MAX_VALUES_PER_RECORD} values per record, and the ownership record \
         lists each endpoint)"
    )]
    TooManyEndpoints { container: String, port: u16, limit: usize },
    #[error("nothing of this task is published: its record name {name} ({problem}); use a shorter domain")]
    TaskName { name: String, problem: String },
}

/// What `desired` publishes, and what it leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub records: RecordSet,
    /// One entry per endpoint left out (or one for the whole task); the rest is published.
    pub rejected: Vec<Rejected>,
}

impl Desired {
    /// The records without the SRV records in `held` (ones Route53 refused, such as the 101st target
    /// of a name), their entries dropped from the ownership record so it lists only what exists. The
    /// task keeps its address and ownership records even when every SRV record is held back: it still has
    /// endpoints to publish, and the sweeper finds its records by the ownership record.
    pub fn holding_back(&self, held: &std::collections::BTreeSet<RecordKey>) -> RecordSet {
        let mut records = self.records.clone();
        let mut removed = false;
        for key in held {
            removed |= key.record_type == RecordType::Srv && records.remove(key).is_some();
        }
        if !removed {
            return records;
        }
        let txt = records.iter().find(|r| r.key.record_type == RecordType::Txt).cloned();
        if let Some(txt) = txt
            && let Ok(mut ownership) = Ownership::decode(txt.values())
        {
            ownership.srv.retain(|key| !held.contains(key));
            records.insert(Record::new(txt.key, txt.ttl, ownership.encode()));
        }
        records
    }
}

/// Whether `name` (fully qualified) fits DNS: at most [`MAX_NAME`] characters, labels at most
/// [`MAX_LABEL`]; the problem otherwise, naming the limit.
pub fn check_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.len() > MAX_NAME {
        return Err(format!("{} characters, over DNS's limit of {MAX_NAME}", bare.len()));
    }
    match bare.split('.').find(|label| label.len() > MAX_LABEL) {
        Some(label) => {
            Err(format!("label {label:?} is {} characters, over DNS's limit of {MAX_LABEL}", label.len()))
        }
        None => Ok(()),
    }
}

/// The records `task` should own: an A record, an AAAA record or both (one per address), one
/// multivalue SRV record per endpoint, and the ownership TXT record listing the SRV records. No
/// endpoints, no records.
pub fn desired(zone: &ZoneModel, task: &TaskRegistration) -> Desired {
    let mut out = Desired::default();
    if task.endpoints.is_empty() {
        return out;
    }
    let target = address_name(&zone.domain, task.task.id());
    let ownership_key = ownership_name(&zone.domain, task.task.id());
    // The ownership name is the longer of the two every record of the task depends on.
    if let Err(problem) = check_name(&target).and_then(|()| check_name(&ownership_key)) {
        out.rejected.push(Rejected::TaskName { name: ownership_key, problem });
        return out;
    }
    let records = &mut out.records;
    let mut srv_keys = Vec::new();
    for endpoint in &task.endpoints {
        // The ownership record holds a header and one value per published endpoint.
        if srv_keys.len() + 1 >= MAX_VALUES_PER_RECORD {
            out.rejected.push(Rejected::TooManyEndpoints {
                container: endpoint.container.clone(),
                port: endpoint.container_port,
                limit: MAX_VALUES_PER_RECORD - 1,
            });
            continue;
        }
        let name = zone.domain.child(&endpoint.service.to_string());
        if let Err(problem) = check_name(&name) {
            out.rejected.push(Rejected::EndpointName {
                container: endpoint.container.clone(),
                port: endpoint.container_port,
                name,
                problem,
            });
            continue;
        }
        let key = RecordKey {
            name,
            record_type: RecordType::Srv,
            set_identifier: Some(set_identifier(
                &zone.owner,
                &task.task,
                &endpoint.container,
                endpoint.container_port,
            )),
        };
        let value = srv_value(endpoint.reachable_port, &target);
        srv_keys.push(key.clone());
        records.insert(Record::new(key, zone.ttl, vec![value]));
    }
    if srv_keys.is_empty() {
        return out;
    }
    let address_record = |record_type, value: String| {
        let key = RecordKey { name: target.clone(), record_type, set_identifier: None };
        Record::new(key, zone.ttl, vec![value])
    };
    records.extend(task.addresses.ipv4().map(|v4| address_record(RecordType::A, v4.to_string())));
    records.extend(task.addresses.ipv6().map(|v6| address_record(RecordType::Aaaa, v6.to_string())));
    srv_keys.sort();
    srv_keys.dedup();
    let ownership = Ownership {
        owner: zone.owner.clone(),
        cluster_arn: task.cluster_arn.clone(),
        task: task.task.clone(),
        srv: srv_keys,
        withdrawn_until: None,
    };
    let txt_key = RecordKey { name: ownership_key, record_type: RecordType::Txt, set_identifier: None };
    records.insert(Record::new(txt_key, zone.ttl, ownership.encode()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> ZoneModel {
        ZoneModel { domain: "sd.internal".parse().expect("domain"), owner: OwnerId::default(), ttl: 10 }
    }

    fn task(endpoints: Vec<Endpoint>) -> TaskRegistration {
        TaskRegistration {
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            task: "arn:aws:ecs:us-east-1:1:task/c/t1".parse().expect("task"),
            addresses: TaskAddresses::Ipv4(std::net::Ipv4Addr::new(10, 0, 0, 7)),
            endpoints,
        }
    }

    fn endpoint(container: &str, container_port: u16, service: &str, reachable_port: u16) -> Endpoint {
        Endpoint {
            container: container.into(),
            container_port,
            service: service.parse().expect("service"),
            reachable_port,
        }
    }

    fn summary(records: &RecordSet) -> Vec<String> {
        records.iter().map(|r| format!("{} = {}", r.key, r.values().join(" | "))).collect()
    }

    #[test]
    fn a_task_with_two_services() {
        let records = desired(
            &zone(),
            &task(vec![endpoint("web", 80, "_web._tcp", 32768), endpoint("calc", 8080, "_calc._tcp", 32769)]),
        )
        .records;
        assert_eq!(
            summary(&records),
            [
                "_calc._tcp.sd.internal. SRV [ecssd:default:t1:calc:8080] = 1 1 32769 t1.sd.internal",
                "_ecssd.t1.sd.internal. TXT = \"heritage=ecssd\" \"owner=default\" \
                 \"cluster=arn:aws:ecs:us-east-1:1:cluster/c\" \"task=arn:aws:ecs:us-east-1:1:task/c/t1\" \
                 | \"srv=ecssd:default:t1:calc:8080 _calc._tcp.sd.internal.\" \
                 | \"srv=ecssd:default:t1:web:80 _web._tcp.sd.internal.\"",
                "_web._tcp.sd.internal. SRV [ecssd:default:t1:web:80] = 1 1 32768 t1.sd.internal",
                "t1.sd.internal. A = 10.0.0.7",
            ]
        );
        assert!(records.iter().all(|r| r.ttl == 10));
        assert!(records.iter().filter(|r| r.key.record_type == RecordType::Srv).all(Record::is_multivalue));
    }

    #[test]
    fn a_dual_stack_task_has_an_a_and_an_aaaa_record_and_an_ipv6_only_task_only_the_aaaa() {
        let web = || vec![endpoint("web", 80, "_web._tcp", 80)];
        let v6: std::net::Ipv6Addr = "fd00:ec2::7".parse().expect("IPv6");
        let dual =
            TaskRegistration { addresses: TaskAddresses::Dual([10, 0, 0, 7].into(), v6), ..task(web()) };
        let addresses = |records: &RecordSet| -> Vec<String> {
            let address = |r: &&Record| matches!(r.key.record_type, RecordType::A | RecordType::Aaaa);
            records
                .iter()
                .filter(address)
                .map(|r| format!("{} = {}", r.key, r.values().join(" | ")))
                .collect()
        };
        let records = desired(&zone(), &dual).records;
        assert_eq!(
            addresses(&records),
            ["t1.sd.internal. A = 10.0.0.7", "t1.sd.internal. AAAA = fd00:ec2::7"]
        );
        let srv = records.iter().find(|r| r.key.record_type == RecordType::Srv).expect("SRV");
        assert_eq!(srv.values(), ["1 1 80 t1.sd.internal"], "one target name for both families");

        let only_v6 = TaskRegistration { addresses: TaskAddresses::Ipv6(v6), ..task(web()) };
        let records = desired(&zone(), &only_v6).records;
        assert_eq!(addresses(&records), ["t1.sd.internal. AAAA = fd00:ec2::7"]);
        assert_eq!(records.len(), 3, "SRV, AAAA and ownership: {:?}", summary(&records));
    }

    #[test]
    fn a_held_back_record_leaves_the_rest_and_the_ownership_record_lists_only_what_is_published() {
        let wanted = desired(
            &zone(),
            &task(vec![endpoint("web", 80, "_web._tcp", 32768), endpoint("calc", 8080, "_calc._tcp", 32769)]),
        );
        let web = wanted.records.iter().find(|r| r.key.name.starts_with("_web")).expect("web").key.clone();
        let held = std::collections::BTreeSet::from([web.clone()]);
        let records = wanted.holding_back(&held);
        assert_eq!(records.len(), 3, "{:?}", summary(&records));
        assert!(records.get(&web).is_none());
        let txt = records.iter().find(|r| r.key.record_type == RecordType::Txt).expect("ownership");
        let ownership = Ownership::decode(txt.values()).expect("decodes");
        assert_eq!(ownership.srv.len(), 1);
        assert!(ownership.srv[0].name.starts_with("_calc"));

        let only_web = desired(&zone(), &task(vec![endpoint("web", 80, "_web._tcp", 32768)]));
        let records = only_web.holding_back(&held);
        let kinds: Vec<_> = records.iter().map(|r| r.key.record_type).collect();
        assert_eq!(kinds, [RecordType::Txt, RecordType::A], "A and ownership stay: {:?}", summary(&records));
        assert_eq!(desired(&zone(), &task(vec![])).holding_back(&held), RecordSet::new());
    }

    #[test]
    fn two_endpoints_of_one_service_are_two_targets() {
        let records = desired(
            &zone(),
            &task(vec![endpoint("a", 80, "_web._tcp", 1000), endpoint("b", 80, "_web._tcp", 1001)]),
        )
        .records;
        let srv: Vec<_> = records.iter().filter(|r| r.key.record_type == RecordType::Srv).collect();
        assert_eq!(srv.len(), 2);
        assert_ne!(srv[0].key.set_identifier, srv[1].key.set_identifier);
    }

    #[test]
    fn no_endpoints_means_no_records() {
        assert_eq!(desired(&zone(), &task(vec![])), Desired::default());
    }

    fn zone_named(domain: &str) -> ZoneModel {
        ZoneModel { domain: domain.parse().expect("domain"), ..zone() }
    }

    #[test]
    fn an_endpoint_whose_name_is_too_long_is_left_out_and_its_siblings_published() {
        // The task's own names (`_ecssd.t1.` is 10 characters) fit under a 240-character domain, and so
        // does `_c._tcp.`; a 20-character service label does not.
        let domain = format!("{}.{}.{}.{}", "a".repeat(60), "b".repeat(60), "c".repeat(60), "d".repeat(57));
        assert_eq!(domain.len(), 240);
        let long = format!("_{}._tcp", "x".repeat(20));
        let out = desired(
            &zone_named(&domain),
            &task(vec![endpoint("calc", 8080, "_c._tcp", 1000), endpoint("web", 80, &long, 1001)]),
        );
        let published: Vec<_> = out.records.iter().map(|r| r.key.record_type).collect();
        assert_eq!(published, [RecordType::Srv, RecordType::Txt, RecordType::A]);
        let [Rejected::EndpointName { container, port, problem, .. }] = out.rejected.as_slice() else {
            panic!("{:?}", out.rejected);
        };
        assert_eq!((container.as_str(), *port), ("web", 80));
        assert!(problem.contains("over DNS's limit of 253"), "{problem}");
        let message = out.rejected[0].to_string();
        assert!(message.starts_with("container web: SERVICE_80_NAME makes the record name _"), "{message}");
        assert!(out.records.iter().all(|r| check_name(&r.key.name).is_ok()));
    }

    #[test]
    fn a_domain_too_long_for_the_task_names_publishes_nothing_and_says_why() {
        let domain = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(60));
        let out = desired(&zone_named(&domain), &task(vec![endpoint("web", 80, "_w._tcp", 1)]));
        assert!(out.records.is_empty());
        assert!(matches!(&out.rejected[..], [Rejected::TaskName { .. }]), "{:?}", out.rejected);
        assert!(out.rejected[0].to_string().contains("use a shorter domain"));
    }

    #[test]
    fn a_task_publishes_at_most_399_endpoints() {
        let endpoints = (1..=401).map(|port| endpoint("web", port, "_w._tcp", port)).collect();
        let out = desired(&zone(), &task(endpoints));
        let srv = out.records.iter().filter(|r| r.key.record_type == RecordType::Srv).count();
        assert_eq!(srv, 399);
        assert_eq!(out.rejected.len(), 2);
        let txt = out.records.iter().find(|r| r.key.record_type == RecordType::Txt).expect("ownership");
        assert_eq!(txt.values().len(), MAX_VALUES_PER_RECORD);
    }

    #[test]
    fn names_are_checked_against_dns_limits() {
        assert!(check_name(&format!("{}.", "a".repeat(63))).is_ok());
        assert!(check_name(&format!("{}.", "a".repeat(64))).unwrap_err().contains("limit of 63"));
        let long = format!("{}.{}.{}.{}.", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62));
        assert_eq!(long.len(), 255);
        assert!(check_name(&long).unwrap_err().contains("254 characters"));
        assert!(check_name(&long[2..]).is_ok());
    }

    #[test]
    fn set_identifiers_stay_within_route53_limit_and_unique() {
        let task = task(vec![]).task;
        let owner = OwnerId::default();
        assert_eq!(set_identifier(&owner, &task, "web", 80), "ecssd:default:t1:web:80");
        let long_a = "a".repeat(255);
        let long_b = format!("{}b", "a".repeat(254));
        let id_a = set_identifier(&owner, &task, &long_a, 80);
        let id_b = set_identifier(&owner, &task, &long_b, 80);
        assert_eq!(id_a.len(), MAX_SET_IDENTIFIER);
        assert!(id_b.len() <= MAX_SET_IDENTIFIER);
        assert_ne!(id_a, id_b);
        assert_eq!(id_a, set_identifier(&owner, &task, &long_a, 80), "stable");
        assert_ne!(id_a, set_identifier(&owner, &task, &long_a, 81));
        let multibyte = "é".repeat(100);
        assert!(set_identifier(&owner, &task, &multibyte, 80).len() <= MAX_SET_IDENTIFIER);
        // The longest owner and task id still leave room for the hash that keeps containers apart.
        let longest_owner: OwnerId = "o".repeat(MAX_OWNER_ID).parse().expect("owner");
        let longest_task: TaskArn =
            format!("arn:aws:ecs:us-east-1:1:task/c/{}", "f".repeat(MAX_TASK_ID)).parse().expect("task");
        let a = set_identifier(&longest_owner, &longest_task, &long_a, 65535);
        let b = set_identifier(&longest_owner, &longest_task, &long_b, 65535);
        assert!(a.len() <= MAX_SET_IDENTIFIER && b.len() <= MAX_SET_IDENTIFIER, "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn srv_values_are_read_back() {
        let value = srv_value(32768, "t1.sd.internal.");
        assert_eq!(value, "1 1 32768 t1.sd.internal");
        assert_eq!(parse_srv_value(&value), Some((32768, "t1.sd.internal.".to_owned())));
        for other in ["", "1 1 80", "1 1 port t1.sd.internal", "1 1 70000 t1.sd.internal", "1 1 80 a b"] {
            assert_eq!(parse_srv_value(other), None, "{other}");
        }
    }

    #[test]
    fn the_owner_and_task_id_are_read_back_from_a_set_identifier() {
        let task = task(vec![]).task;
        let owner: OwnerId = "prod-1".parse().expect("owner");
        for container in ["web", &"a".repeat(255), &"é".repeat(100)] {
            let id = set_identifier(&owner, &task, container, 80);
            let claim = SetIdentifierClaim { owner: Some("prod-1"), task_id: "t1" };
            assert_eq!(parse_set_identifier(&id), Some(claim), "{id}");
        }
        // The format before the owner was added names the task but proves no owner.
        let legacy = SetIdentifierClaim { owner: None, task_id: "t1" };
        assert_eq!(parse_set_identifier("ecssd:t1:web:80"), Some(legacy));
        for other in [
            "ecssd:t1",
            "ecssd::web:80",
            "ecssd::t1:web:80",
            "manual",
            "other:t1:web:80",
            "",
            "ecssd:a:b:c:d:e",
        ] {
            assert_eq!(parse_set_identifier(other), None, "{other}");
        }
    }
}
