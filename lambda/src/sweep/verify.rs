//! Whether a task's records say what ECS says about the task, without I/O. The zone is writable by
//! every task holding the sidecar's policy, so before the sweeper checks an endpoint, counts it healthy
//! or stops its task, each SRV target must be one ECS confirms: the container and port the set
//! identifier names exist on the task, the SRV's port is where ECS maps that port, the task's
//! definition publishes that container port under that service (its `SERVICE_<port>_NAME`, in what ECS
//! states of it, parsed as the sidecar parses it), and the A and AAAA records' addresses are the task's
//! ENI's (awsvpc) or its EC2 instance's (bridge and host modes: its private IPv4 and primary IPv6
//! address). An address record ECS and EC2 give no address of its family for is a disagreement, as a
//! differing one is: never evidence that the task is gone.

use std::net::IpAddr;

use ecssd_records::ownership::address_name;
use ecssd_records::{ContainerSettings, Domain, OwnerId, TaskAddresses, parse_srv_value, set_identifier};

use crate::fleet::{DefinitionFacts, TaskFacts};
use crate::sweep::inventory::TaskRecords;

/// One endpoint ECS confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The SRV record name it is registered under.
    pub service: String,
    /// Where ECS and EC2 say the task is: its IPv4 address when it registered an A record (a dual-stack
    /// task is reached over IPv4), its IPv6 address when it registered only an AAAA record.
    pub address: IpAddr,
    pub port: u16,
    /// A `_tcp` service (HTTP checks reach only those).
    pub tcp: bool,
}

/// The cluster to ask ECS about the task: the one its ARN names (new ARN format); for an old-format ARN,
/// the ownership record's, if it lies in the task's partition, region and account. An ownership record
/// naming another cluster disagrees.
pub fn cluster_to_ask(task: &TaskRecords) -> Result<String, String> {
    let claimed = &task.ownership.cluster_arn;
    match task.ownership.task.own_cluster_arn() {
        Some(own) if own == *claimed => Ok(own),
        Some(own) => Err(format!("its ownership record names cluster {claimed}; the task ARN's is {own}")),
        None if claimed
            .strip_prefix(&task.ownership.task.cluster_arn(""))
            .is_some_and(|name| !name.is_empty() && !name.contains('/')) =>
        {
            Ok(claimed.clone())
        }
        None => {
            Err(format!("its ownership record names cluster {claimed}, not an ARN of the task's account"))
        }
    }
}

/// The task's targets, if every record of it agrees with ECS (and EC2 for the host's addresses,
/// `host`); otherwise the first disagreement.
pub fn verify(
    domain: &Domain,
    owner: &OwnerId,
    task: &TaskRecords,
    facts: &TaskFacts,
    definition: &DefinitionFacts,
    host: Option<TaskAddresses>,
) -> Result<Vec<Target>, String> {
    let arn = &task.ownership.task;
    // In awsvpc the ENI's addresses are the task's, whatever its host's are.
    let address = confirmed_address(task, facts.eni.or(host))?;
    let a_name = address_name(domain, arn.id());
    let mut targets = Vec::new();
    for srv in task.srv_records() {
        let name = &srv.key.name;
        let [value] = srv.values() else {
            return Err(format!("SRV {name} holds {} values; ecssd writes one", srv.values().len()));
        };
        let Some((port, target)) = parse_srv_value(value) else {
            return Err(format!("SRV {name} value {value:?} is not `priority weight port target`"));
        };
        if target != a_name {
            return Err(format!("SRV {name} targets {target}, not the task's name {a_name}"));
        }
        let protocol = if name.contains("._udp.") { "udp" } else { "tcp" };
        let id = srv.key.set_identifier.as_deref().unwrap_or_default();
        // The (container, container port) pair ECS reports that reaches `port`: a networkBindings entry
        // whose host port it is (bridge, host); in awsvpc the container port is the port itself.
        let named =
            |container: &str, container_port| set_identifier(owner, arn, container, container_port) == id;
        let confirmed = facts.containers.iter().find_map(|container| {
            if facts.eni.is_some() {
                return named(&container.name, port).then_some((container, port));
            }
            container
                .bindings
                .iter()
                .find(|b| {
                    b.host_port == port && b.protocol == protocol && named(&container.name, b.container_port)
                })
                .map(|b| (container, b.container_port))
        });
        let Some((container, container_port)) = confirmed else {
            return Err(format!(
                "SRV {name} ({id}) publishes port {port}/{protocol}, which ECS reports for no container port \
                 of the task"
            ));
        };
        let service = name.strip_suffix(domain.fqdn()).and_then(|s| s.strip_suffix('.')).unwrap_or(name);
        if !published(definition, facts, &container.name, container_port).iter().any(|s| s == service) {
            return Err(format!(
                "SRV {name} ({id}): the task definition sets no SERVICE_{container_port}_NAME={service} for \
                 container {} (environment, dockerLabels or the task's overrides)",
                container.name
            ));
        }
        targets.push(Target { service: name.clone(), address, port, tcp: protocol == "tcp" });
    }
    Ok(targets)
}

/// The address the task's targets are reached at, if each of its address records says what ECS and
/// EC2 say (`actual`) for that family: its IPv4 address when it has an A record, else its IPv6 address.
fn confirmed_address(task: &TaskRecords, actual: Option<TaskAddresses>) -> Result<IpAddr, String> {
    let Some(actual) = actual else { return Err("ECS and EC2 give no address for the task".into()) };
    let Some(registered) = task.addresses() else { return Err("it has no A or AAAA record".into()) };
    let agrees = |record: &str, ours: Option<IpAddr>, theirs: Option<IpAddr>| match (ours, theirs) {
        (None, _) => Ok(()),
        (Some(ours), Some(theirs)) if ours == theirs => Ok(()),
        (Some(ours), Some(theirs)) => {
            Err(format!("its {record} record says {ours}; ECS and EC2 say the task is at {theirs}"))
        }
        (Some(ours), None) => Err(format!(
            "its {record} record says {ours}; ECS and EC2 give the task no address of that family (only \
             {actual})"
        )),
    };
    agrees("A", registered.ipv4().map(IpAddr::V4), actual.ipv4().map(IpAddr::V4))?;
    agrees("AAAA", registered.ipv6().map(IpAddr::V6), actual.ipv6().map(IpAddr::V6))?;
    Ok(match registered {
        TaskAddresses::Ipv4(ipv4) | TaskAddresses::Dual(ipv4, _) => IpAddr::V4(ipv4),
        TaskAddresses::Ipv6(ipv6) => IpAddr::V6(ipv6),
    })
}

/// The services (`_name._proto`) a container publishes at `container_port`, by what ECS states: its
/// definition's environment with the task's environment overrides, and its Docker labels, parsed by
/// the sidecar's own parser. What ECS does not show (the image's `ENV` and `LABEL`s, `environmentFiles`,
/// secrets) is not seen: a target published only there is a disagreement, never checked.
fn published(
    definition: &DefinitionFacts,
    facts: &TaskFacts,
    container: &str,
    container_port: u16,
) -> Vec<String> {
    let Some(defined) = definition.containers.get(container) else { return Vec::new() };
    let mut environment = defined.environment.clone();
    environment.extend(facts.environment_overrides.get(container).cloned().unwrap_or_default());
    let entries: Vec<String> = environment.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let labels = defined.labels.iter().map(|(name, value)| (name.as_str(), value.as_str()));
    let settings = ContainerSettings::new(entries.iter().map(String::as_str), labels);
    settings
        .services()
        .bindings
        .into_iter()
        .filter(|binding| binding.container_port == container_port)
        .map(|binding| binding.service.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::fixtures::{
        CLUSTER_ARN, DEFINITION_ARN, IPV4, IPV6, TASK_IDS, model, task_arn, web_definition, web_task_records,
        web_task_records_at,
    };
    use crate::fleet::{Binding, ContainerFacts, DefinedContainer};
    use crate::sweep::inventory::inventory;

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn task() -> TaskRecords {
        let records = web_task_records("default", TASK_IDS[0]).into_iter().collect();
        inventory(&model("default").domain, &model("default").owner, records, 0).tasks.remove(0)
    }

    /// ECS's view of the fixture task: `web` maps container port 80 to host port 32768.
    fn facts(host_port: u16) -> TaskFacts {
        let binding = Binding { container_port: 80, host_port, protocol: "tcp".into() };
        TaskFacts {
            cluster_arn: CLUSTER_ARN.into(),
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            running_for: None,
            container_instance: Some("ci".into()),
            containers: vec![ContainerFacts { name: "web".into(), bindings: vec![binding] }],
            eni: None,
            task_definition_arn: Some(DEFINITION_ARN.into()),
            environment_overrides: BTreeMap::new(),
        }
    }

    fn definition() -> DefinitionFacts {
        web_definition()
    }

    fn check(facts: &TaskFacts, host_ip: Option<Ipv4Addr>) -> Result<Vec<Target>, String> {
        check_against(facts, &definition(), host_ip)
    }

    fn check_against(
        facts: &TaskFacts,
        definition: &DefinitionFacts,
        host_ip: Option<Ipv4Addr>,
    ) -> Result<Vec<Target>, String> {
        let zone = model("default");
        verify(&zone.domain, &zone.owner, &task(), facts, definition, host_ip.map(TaskAddresses::from))
    }

    #[test]
    fn records_that_match_ecs_give_their_targets() {
        let targets = check(&facts(32768), Some(HOST)).unwrap();
        let expected =
            Target { service: "_web._tcp.sd.internal.".into(), address: HOST.into(), port: 32768, tcp: true };
        assert_eq!(targets, [expected]);
    }

    #[test]
    fn records_that_differ_from_ecs_are_disagreements() {
        let wrong_port = check(&facts(49153), Some(HOST)).unwrap_err();
        assert!(
            wrong_port.contains("publishes port 32768/tcp, which ECS reports for no container port"),
            "{wrong_port}"
        );
        let wrong_host = check(&facts(32768), Some(Ipv4Addr::new(10, 244, 95, 217))).unwrap_err();
        assert!(
            wrong_host.contains("A record says 10.0.0.1; ECS and EC2 say the task is at 10.244.95.217"),
            "{wrong_host}"
        );
        assert!(check(&facts(32768), None).unwrap_err().contains("no address"));
        let mut renamed = facts(32768);
        renamed.containers[0].name = "api".into();
        assert!(check(&renamed, Some(HOST)).is_err(), "the set identifier names container web");
        let mut udp = facts(32768);
        udp.containers[0].bindings[0].protocol = "udp".into();
        assert!(check(&udp, Some(HOST)).is_err(), "a tcp service on a udp binding");
    }

    #[test]
    fn in_awsvpc_the_eni_address_and_the_container_port_count() {
        let mut awsvpc = facts(0);
        awsvpc.containers[0].bindings.clear();
        awsvpc.eni = Some(HOST.into());
        // The fixture publishes port 32768, but in awsvpc the port is the container port (80).
        assert!(check(&awsvpc, None).is_err());
        let zone = model("default");
        let arn: ecssd_records::TaskArn = task_arn(TASK_IDS[0]).parse().unwrap();
        let registration = ecssd_records::TaskRegistration {
            cluster_arn: CLUSTER_ARN.into(),
            task: arn,
            addresses: HOST.into(),
            endpoints: vec![ecssd_records::Endpoint {
                container: "web".into(),
                container_port: 80,
                service: "_web._tcp".parse().unwrap(),
                reachable_port: 80,
            }],
        };
        let records = ecssd_records::desired(&zone, &registration).records.into_iter().collect();
        let task = inventory(&zone.domain, &zone.owner, records, 0).tasks.remove(0);
        let targets = verify(&zone.domain, &zone.owner, &task, &awsvpc, &definition(), None).unwrap();
        assert_eq!(targets[0].port, 80);
    }

    /// Issue 27: a forged SRV naming a container port ECS maps (or, in awsvpc, any port of a container
    /// that exists) but that the task definition does not publish under that service.
    #[test]
    fn a_port_the_task_definition_does_not_publish_is_a_disagreement() {
        let silent =
            DefinitionFacts { containers: BTreeMap::from([("web".into(), DefinedContainer::default())]) };
        let why = check_against(&facts(32768), &silent, Some(HOST)).unwrap_err();
        assert!(
            why.contains("the task definition sets no SERVICE_80_NAME=_web._tcp for container web"),
            "{why}"
        );
        let mut other_service = definition();
        other_service
            .containers
            .get_mut("web")
            .unwrap()
            .environment
            .insert("SERVICE_80_NAME".into(), "_api._tcp".into());
        assert!(check_against(&facts(32768), &other_service, Some(HOST)).is_err(), "published as _api._tcp");
        assert!(
            check_against(&facts(32768), &DefinitionFacts::default(), Some(HOST)).is_err(),
            "no such container"
        );
        let ignored = DefinitionFacts {
            containers: BTreeMap::from([(
                "web".into(),
                DefinedContainer {
                    environment: BTreeMap::from([
                        ("SERVICE_80_NAME".into(), "_web._tcp".into()),
                        ("SERVICE_80_IGNORE".into(), "true".into()),
                    ]),
                    labels: BTreeMap::new(),
                },
            )]),
        };
        assert!(check_against(&facts(32768), &ignored, Some(HOST)).is_err(), "SERVICE_80_IGNORE");
    }

    #[test]
    fn a_label_or_the_tasks_override_publishes_as_the_environment_does() {
        let labelled = DefinitionFacts {
            containers: BTreeMap::from([(
                "web".into(),
                DefinedContainer {
                    environment: BTreeMap::new(),
                    labels: BTreeMap::from([("SERVICE_80_NAME".into(), "_web._tcp".into())]),
                },
            )]),
        };
        assert!(check_against(&facts(32768), &labelled, Some(HOST)).is_ok());
        let mut overridden = facts(32768);
        overridden.environment_overrides = BTreeMap::from([(
            "web".into(),
            BTreeMap::from([("SERVICE_80_NAME".into(), "_web._tcp".into())]),
        )]);
        let bare =
            DefinitionFacts { containers: BTreeMap::from([("web".into(), DefinedContainer::default())]) };
        assert!(check_against(&overridden, &bare, Some(HOST)).is_ok());
        overridden.environment_overrides = BTreeMap::from([(
            "web".into(),
            BTreeMap::from([("SERVICE_80_NAME".into(), "_api._tcp".into())]),
        )]);
        assert!(check_against(&overridden, &definition(), Some(HOST)).is_err(), "the override wins");
    }

    #[test]
    fn the_cluster_comes_from_the_task_arn() {
        let mut forged = task();
        assert_eq!(cluster_to_ask(&forged).unwrap(), CLUSTER_ARN);
        forged.ownership.cluster_arn = "arn:aws:ecs:us-east-1:1:cluster/nowhere".into();
        let why = cluster_to_ask(&forged).unwrap_err();
        assert!(why.contains("names cluster arn:aws:ecs:us-east-1:1:cluster/nowhere"), "{why}");
        let mut old = task();
        old.ownership.task =
            "arn:aws:ecs:us-east-1:1:task/5e8b8ad1-4d54-4a4b-9b5e-0c1d2e3f4a5b".parse().unwrap();
        assert_eq!(
            cluster_to_ask(&old).unwrap(),
            CLUSTER_ARN,
            "an old ARN: the record's cluster, in its account"
        );
        old.ownership.cluster_arn = "arn:aws:ecs:us-east-1:2:cluster/c".into();
        assert!(cluster_to_ask(&old).is_err(), "another account");
    }

    /// Whether the records of a task at `registered` (web:80 at `port`) agree with ECS giving its ENI
    /// `eni` (awsvpc when `Some`, then `port` is 80) and EC2 its host `host`.
    fn check_addresses(
        registered: TaskAddresses,
        port: u16,
        eni: Option<TaskAddresses>,
        host: Option<TaskAddresses>,
    ) -> Result<Vec<Target>, String> {
        let zone = model("default");
        let records = web_task_records_at("default", TASK_IDS[0], registered, port).into_iter().collect();
        let task = inventory(&zone.domain, &zone.owner, records, 0).tasks.remove(0);
        let mut facts = facts(port);
        if eni.is_some() {
            facts.containers[0].bindings.clear();
            facts.eni = eni;
        }
        verify(&zone.domain, &zone.owner, &task, &facts, &definition(), host)
    }

    /// Issue 30: a dual-stack task agrees when both its A and AAAA records say what ECS says, and is
    /// reached over IPv4; an AAAA record ECS gives no IPv6 address for is a disagreement, as an A
    /// record's is (reported and kept: never evidence the task is gone).
    #[test]
    fn a_dual_stack_task_agrees_when_both_addresses_do_and_is_reached_over_ipv4() {
        let dual = TaskAddresses::Dual(IPV4, IPV6);
        let targets = check_addresses(dual, 80, Some(dual), None).unwrap();
        assert_eq!((targets[0].address, targets[0].port), (IpAddr::V4(IPV4), 80));
        let elsewhere = TaskAddresses::Dual(IPV4, "fd00:ec55::2".parse().unwrap());
        let why = check_addresses(dual, 80, Some(elsewhere), None).unwrap_err();
        assert!(
            why.contains("its AAAA record says fd00:ec55::1; ECS and EC2 say the task is at fd00:ec55::2"),
            "{why}"
        );
        let why = check_addresses(dual, 80, Some(IPV4.into()), None).unwrap_err();
        assert!(
            why.contains("its AAAA record says fd00:ec55::1; ECS and EC2 give the task no address of that family (only 10.0.0.1)"),
            "{why}"
        );
        // A task that publishes only its IPv4 address (ECSSD_ADDRESS_FAMILY=ipv4) on a dual-stack ENI.
        assert!(check_addresses(IPV4.into(), 80, Some(dual), None).is_ok());
    }

    /// Issue 30: an IPv6-only task's targets are at its IPv6 address.
    #[test]
    fn an_ipv6_only_task_is_reached_at_its_ipv6_address() {
        let targets = check_addresses(IPV6.into(), 80, Some(IPV6.into()), None).unwrap();
        assert_eq!((targets[0].address, targets[0].port), (IpAddr::V6(IPV6), 80));
        let why = check_addresses(IPV6.into(), 80, Some(IPV4.into()), None).unwrap_err();
        assert!(
            why.contains("its AAAA record says fd00:ec55::1; ECS and EC2 give the task no address"),
            "{why}"
        );
        // Bridge mode on an IPv6-only instance: the host's primary IPv6 address, at the host port.
        let targets = check_addresses(IPV6.into(), 32768, None, Some(IPV6.into())).unwrap();
        assert_eq!((targets[0].address, targets[0].port), (IpAddr::V6(IPV6), 32768));
        let why = check_addresses(IPV6.into(), 32768, None, Some(IPV4.into())).unwrap_err();
        assert!(why.contains("no address of that family (only 10.0.0.1)"), "{why}");
    }
}
