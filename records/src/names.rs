//! DNS names ecssd writes: the zone's domain, task identifiers, owner ids and the names derived from
//! them. Every name is lowercase and fully qualified (trailing dot), as Route53 returns them, so names
//! read back compare equal to names planned.

use std::fmt;
use std::str::FromStr;

/// Why a domain, task ARN or owner id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: {problem}")]
pub struct NameError {
    /// Which input this was (`domain`, `task ARN`, `owner id`).
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// What is expected instead.
    pub problem: String,
}

fn name_error(what: &'static str, value: &str, problem: impl Into<String>) -> NameError {
    NameError { what, value: value.to_owned(), problem: problem.into() }
}

/// The private hosted zone's domain, e.g. `servicediscovery.internal`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain {
    /// Lowercase, fully qualified (ends with a dot).
    fqdn: String,
}

impl Domain {
    /// The domain with its trailing dot, as Route53 spells zone and record names.
    pub fn fqdn(&self) -> &str {
        &self.fqdn
    }

    /// `<label>.<domain>.`: a name inside this domain.
    pub fn child(&self, label: &str) -> String {
        format!("{label}.{}", self.fqdn)
    }

    /// Whether `name` (fully qualified) lies inside this domain.
    pub fn contains(&self, name: &str) -> bool {
        name == self.fqdn || name.ends_with(&format!(".{}", self.fqdn))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fqdn.trim_end_matches('.'))
    }
}

impl FromStr for Domain {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| name_error("domain", text, problem);
        let bare = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        if bare.is_empty() || bare.len() > 253 {
            return Err(err("expected 1 to 253 characters, e.g. servicediscovery.internal"));
        }
        for label in bare.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(err("every dot-separated label must be 1 to 63 characters"));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(err("labels may contain only letters, digits, hyphens and underscores"));
            }
        }
        Ok(Self { fqdn: format!("{bare}.") })
    }
}

/// The longest task id ECS issues: a UUID (`8-4-4-4-12` hex digits) in the old ARN format; the new
/// format's ids are 32 hex digits.
pub const MAX_TASK_ID: usize = 36;

/// The longest owner id: short enough that the owner, the longest task id and a hash of the container
/// name fit a set identifier (Route53: 128 characters).
pub const MAX_OWNER_ID: usize = 48;

/// Whether `id` has the shape of a task id ECS issues: 32 lowercase hex digits (new ARN format) or a
/// lowercase UUID (old format). The sweeper deletes an orphan only under a name of this shape, so a
/// forged claim can never name `db` or `www.prod`.
pub fn is_ecs_task_id(id: &str) -> bool {
    let hex = |part: &str| part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if id.len() == 32 {
        return hex(id);
    }
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p))
}

/// An ECS task ARN and the task id it ends with; the task id names the task's records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskArn {
    /// The full ARN, kept for the ownership record and for ECS calls.
    arn: String,
    /// Byte offset of the task id inside `arn`.
    id_start: usize,
}

impl TaskArn {
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The task id: 32 hex digits (new ARN format) or a UUID (old format).
    pub fn id(&self) -> &str {
        &self.arn[self.id_start..]
    }

    /// The ARN of the cluster the task ARN itself names (the new format, `task/<cluster>/<task-id>`);
    /// `None` for the old format, `task/<task-id>`, which names no cluster.
    pub fn own_cluster_arn(&self) -> Option<String> {
        let path = self.arn.split_once(":task/")?.1;
        let (cluster, _) = path.rsplit_once('/')?;
        Some(self.cluster_arn(cluster))
    }

    /// The ARN of the task's cluster given as task metadata gives it, "the ARN or short name"
    /// (ECS Developer Guide, "Task metadata endpoint version 4"): an ARN is kept; a short name is placed
    /// in this task's partition, region and account, where its cluster necessarily is.
    pub fn cluster_arn(&self, cluster: &str) -> String {
        if cluster.starts_with("arn:") {
            return cluster.to_owned();
        }
        // `arn:<partition>:ecs:<region>:<account>:` is everything before `task/`, as parsing checked.
        let prefix = self.arn.split_once(":task/").map_or("", |(prefix, _)| prefix);
        format!("{prefix}:cluster/{cluster}")
    }
}

impl fmt::Display for TaskArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl FromStr for TaskArn {
    type Err = NameError;

    /// Accepts `arn:<partition>:ecs:<region>:<account>:task/[<cluster>/]<task-id>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| name_error("task ARN", text, problem);
        let expected = "expected arn:<partition>:ecs:<region>:<account>:task/[<cluster>/]<task-id>";
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, _partition, service, _region, _account, resource] = parts[..] else {
            return Err(err(expected));
        };
        if arn != "arn" || service != "ecs" {
            return Err(err(expected));
        }
        let Some(path) = resource.strip_prefix("task/") else {
            return Err(err(expected));
        };
        let id = path.rsplit('/').next().unwrap_or_default();
        let valid_id = !id.is_empty()
            && id.len() <= MAX_TASK_ID
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_id {
            return Err(err("the task id must be 1 to 36 lowercase letters, digits or hyphens"));
        }
        Ok(Self { arn: text.to_owned(), id_start: text.len() - id.len() })
    }
}

/// Marks which ecssd deployment owns a record, so two deployments sharing a zone never touch each
/// other's records (external-dns' `owner-id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for OwnerId {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OwnerId {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // One DNS label (the sweeper's agent markers are named `_ecssd-agent.<ci>.<owner>.<domain>`), in
        // lowercase because Route53 lists names in lowercase.
        let valid = text.len() <= MAX_OWNER_ID
            && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(name_error(
                "owner id",
                text,
                "expected 1 to 48 lowercase letters, digits or `-`, starting with a letter or digit",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        for (text, fqdn) in [
            ("servicediscovery.internal", "servicediscovery.internal."),
            ("ServiceDiscovery.Internal.", "servicediscovery.internal."),
            ("a", "a."),
        ] {
            let domain: Domain = text.parse().expect(text);
            assert_eq!(domain.fqdn(), fqdn);
        }
        let domain: Domain = "sd.internal".parse().expect("domain");
        assert_eq!(domain.child("_calc._tcp"), "_calc._tcp.sd.internal.");
        assert!(domain.contains("x.sd.internal."));
        assert!(!domain.contains("x.notsd.internal."));
        assert_eq!(domain.to_string(), "sd.internal");
    }

    #[test]
    fn bad_domains_are_rejected() {
        for text in ["", ".", "a..b", "a b.c", &"a".repeat(64), "x.*.y"] {
            let err = text.parse::<Domain>().expect_err(text);
            assert!(err.to_string().starts_with("domain "), "{err}");
        }
    }

    #[test]
    fn task_ids_come_from_both_arn_formats() {
        for (arn, id) in [
            (
                "arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef0123456789abcdef",
                "0123456789abcdef0123456789abcdef",
            ),
            (
                "arn:aws:ecs:us-east-1:123456789012:task/5e8b8ad1-4d54-4a4b-9b5e-0c1d2e3f4a5b",
                "5e8b8ad1-4d54-4a4b-9b5e-0c1d2e3f4a5b",
            ),
            ("arn:aws-cn:ecs:cn-north-1:1:task/c/abc", "abc"),
        ] {
            let parsed: TaskArn = arn.parse().expect(arn);
            assert_eq!(parsed.id(), id);
            assert_eq!(parsed.as_str(), arn);
        }
    }

    #[test]
    fn a_cluster_short_name_becomes_the_arn_in_the_tasks_partition_region_and_account() {
        let task: TaskArn = "arn:aws-cn:ecs:cn-north-1:123456789012:task/prod/abc".parse().expect("task");
        assert_eq!(task.cluster_arn("prod"), "arn:aws-cn:ecs:cn-north-1:123456789012:cluster/prod");
        let arn = "arn:aws:ecs:us-east-1:1:cluster/other";
        assert_eq!(task.cluster_arn(arn), arn);
        let old: TaskArn =
            "arn:aws:ecs:eu-west-1:9:task/5e8b8ad1-4d54-4a4b-9b5e-0c1d2e3f4a5b".parse().expect("old");
        assert_eq!(old.cluster_arn("default"), "arn:aws:ecs:eu-west-1:9:cluster/default");
        assert_eq!(
            task.own_cluster_arn().as_deref(),
            Some("arn:aws-cn:ecs:cn-north-1:123456789012:cluster/prod")
        );
        assert_eq!(old.own_cluster_arn(), None, "the old format names no cluster");
    }

    #[test]
    fn bad_task_arns_are_rejected() {
        for arn in [
            "",
            "0123456789abcdef",
            "arn:aws:ecs:us-east-1:1:container-instance/c/abc",
            "arn:aws:ec2:us-east-1:1:task/c/abc",
            "arn:aws:ecs:us-east-1:1:task/c/",
            "arn:aws:ecs:us-east-1:1:task/c/ABC",
            "arn:aws:ecs:us-east-1:1:task/c/a.b",
            &format!("arn:aws:ecs:us-east-1:1:task/c/{}", "a".repeat(MAX_TASK_ID + 1)),
        ] {
            let err = arn.parse::<TaskArn>().expect_err(arn);
            assert!(err.to_string().starts_with("task ARN "), "{err}");
        }
    }

    #[test]
    fn only_ids_of_ecs_shape_are_ecs_task_ids() {
        for good in ["0123456789abcdef0123456789abcdef", "5e8b8ad1-4d54-4a4b-9b5e-0c1d2e3f4a5b"] {
            assert!(is_ecs_task_id(good), "{good}");
        }
        for bad in [
            "db",
            "www.prod",
            "t1",
            "",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
            "5e8b8ad14d544a4b9b5e0c1d2e3f4a5b-",
            "5e8b8ad1-4d54-4a4b-9b5e0-c1d2e3f4a5b",
        ] {
            assert!(!is_ecs_task_id(bad), "{bad}");
        }
    }

    #[test]
    fn owner_ids() {
        for good in ["default", "prod-1", "0", &"x".repeat(MAX_OWNER_ID)] {
            assert!(good.parse::<OwnerId>().is_ok(), "{good}");
        }
        for bad in ["", "a b", "a\"b", "prod.eu", "Prod", "-prod", "a_b", &"x".repeat(MAX_OWNER_ID + 1)] {
            assert!(bad.parse::<OwnerId>().is_err(), "{bad}");
        }
    }
}
