//! The task's running containers as either source shows them (Docker: [`crate::docker_siblings`];
//! task metadata: [`crate::metadata_siblings`]), and the pure step from them to the endpoints to
//! publish.

use std::collections::BTreeMap;

use ecssd_records::{ContainerSettings, Endpoint, Protocol, ServiceEnvError, TaskAddresses};

use crate::metadata::NetworkMode;

/// A container's health check state (Docker's HEALTHCHECK, or the task definition's `healthCheck` as
/// task metadata reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No HEALTHCHECK: running is good enough.
    NotChecked,
    Starting,
    Healthy,
    Unhealthy,
}

/// One running container of the task, as far as registration cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sibling {
    /// The container's name in the task definition (falls back to Docker's name).
    pub name: String,
    /// `KEY=VALUE` environment (Docker only: task metadata does not show it).
    pub env: Vec<String>,
    /// The container's `SERVICE_*` labels (the task definition's `dockerLabels`); a label overrides an
    /// environment variable of the same name.
    pub labels: BTreeMap<String, String>,
    /// Host ports mapped in bridge mode, by (container port, protocol).
    pub host_ports: BTreeMap<(u16, Protocol), HostPorts>,
    pub health: Health,
}

/// One container port's host ports in bridge mode, per family: Docker lists an IPv4 and an IPv6
/// binding, which may have different host ports (aws/amazon-ecs-agent issue 3096).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostPorts {
    pub ipv4: Option<u16>,
    pub ipv6: Option<u16>,
}

impl HostPorts {
    /// Adds the binding of host address `host_ip` (an IPv6 one has a colon; an empty one is IPv4's,
    /// as older Docker engines list it); the first of each family counts.
    pub fn add(&mut self, host_ip: &str, host_port: u16) {
        let family = if host_ip.contains(':') { &mut self.ipv6 } else { &mut self.ipv4 };
        family.get_or_insert(host_port);
    }

    /// The host port for the family the task publishes, else the other family's (a host whose Docker
    /// lists one family only).
    pub fn of(&self, ipv6: bool) -> Option<u16> {
        if ipv6 { self.ipv6.or(self.ipv4) } else { self.ipv4.or(self.ipv6) }
    }
}

/// Which port other tasks reach an endpoint at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReachablePort {
    /// Bridge mode: the host port Docker mapped, of the family the task publishes (one family only).
    HostPort { ipv6: bool },
    /// Host and awsvpc modes: the container port.
    ContainerPort,
}

impl ReachablePort {
    pub fn of(mode: NetworkMode, published: TaskAddresses) -> Self {
        match mode {
            NetworkMode::Bridge => Self::HostPort { ipv6: published.ipv4().is_none() },
            NetworkMode::Host | NetworkMode::Awsvpc(_) => Self::ContainerPort,
        }
    }
}

impl Sibling {
    /// Its `SERVICE_*` settings, labels over environment.
    pub fn settings(&self) -> ContainerSettings {
        let labels = self.labels.iter().map(|(name, value)| (name.as_str(), value.as_str()));
        ContainerSettings::new(self.env.iter().map(String::as_str), labels)
    }
}

/// Only the `SERVICE_*` labels of a container's labels: the rest are not ecssd's to keep.
pub fn service_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(name, _)| name.starts_with("SERVICE_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A reason one binding of one container cannot be published; its siblings are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointProblem {
    #[error("container {container}: {error}")]
    BadVariable { container: String, error: ServiceEnvError },
    #[error(
        "container {container}: port {port}/{protocol} is named by SERVICE_{port}_NAME but not published \
         to the host; add a portMapping for it (hostPort 0 lets ECS pick one; in metadata mode, task \
         metadata reports bridge host ports from ECS agent 1.41.1)"
    )]
    NotPublished { container: String, port: u16, protocol: &'static str },
}

/// The endpoints the task should publish now, and a problem for each binding that cannot be.
/// Containers with a health check count only while healthy.
pub fn endpoints(siblings: &[Sibling], port: ReachablePort) -> (Vec<Endpoint>, Vec<EndpointProblem>) {
    let mut endpoints = Vec::new();
    let mut problems = Vec::new();
    for sibling in siblings {
        let env = sibling.settings().services();
        problems.extend(
            env.errors
                .into_iter()
                .map(|error| EndpointProblem::BadVariable { container: sibling.name.clone(), error }),
        );
        if !matches!(sibling.health, Health::NotChecked | Health::Healthy) {
            continue;
        }
        for binding in env.bindings {
            let protocol = binding.service.protocol();
            let reachable_port = match port {
                ReachablePort::HostPort { ipv6 } => match sibling
                    .host_ports
                    .get(&(binding.container_port, protocol))
                    .and_then(|ports| ports.of(ipv6))
                {
                    Some(port) => port,
                    None => {
                        problems.push(EndpointProblem::NotPublished {
                            container: sibling.name.clone(),
                            port: binding.container_port,
                            protocol: protocol.as_docker(),
                        });
                        continue;
                    }
                },
                ReachablePort::ContainerPort => binding.container_port,
            };
            endpoints.push(Endpoint {
                container: sibling.name.clone(),
                container_port: binding.container_port,
                service: binding.service,
                reachable_port,
            });
        }
    }
    endpoints.sort();
    (endpoints, problems)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const BRIDGE: ReachablePort = ReachablePort::HostPort { ipv6: false };

    fn sibling(name: &str, env: &[&str], ports: &[(u16, u16)], health: Health) -> Sibling {
        let ipv4 = |host_port| HostPorts { ipv4: Some(host_port), ipv6: None };
        Sibling {
            name: name.into(),
            env: env.iter().map(|s| (*s).to_owned()).collect(),
            labels: BTreeMap::new(),
            host_ports: ports.iter().map(|(c, h)| ((*c, Protocol::Tcp), ipv4(*h))).collect(),
            health,
        }
    }

    fn show(endpoints: &[Endpoint]) -> Vec<String> {
        endpoints
            .iter()
            .map(|e| format!("{} {}:{} -> {}", e.service, e.container, e.container_port, e.reachable_port))
            .collect()
    }

    #[test]
    fn reachable_ports_follow_the_network_mode() {
        let siblings = [sibling("web", &["SERVICE_80_NAME=_web._tcp"], &[(80, 32768)], Health::NotChecked)];
        let ipv4 = TaskAddresses::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
        let cases = [
            (NetworkMode::Bridge, "_web._tcp web:80 -> 32768"),
            (NetworkMode::Host, "_web._tcp web:80 -> 80"),
            (NetworkMode::Awsvpc(ipv4), "_web._tcp web:80 -> 80"),
        ];
        for (mode, expected) in cases {
            let (endpoints, problems) = endpoints(&siblings, ReachablePort::of(mode, ipv4));
            assert_eq!(show(&endpoints), [expected], "{mode:?}");
            assert!(problems.is_empty());
        }
    }

    /// Docker may map a container port to one host port on IPv4 and another on IPv6: a bridge-mode
    /// task publishing its host's IPv6 address (an IPv6-only host) gives the IPv6 binding's.
    #[test]
    fn a_bridge_mode_task_gives_the_host_port_of_the_family_it_publishes() {
        let mut web = sibling("web", &["SERVICE_80_NAME=_web._tcp"], &[], Health::NotChecked);
        let mut ports = HostPorts::default();
        for (host_ip, host_port) in [("0.0.0.0", 32768), ("::", 49825), ("0.0.0.0", 1), ("::", 2)] {
            ports.add(host_ip, host_port);
        }
        web.host_ports.insert((80, Protocol::Tcp), ports);
        let siblings = [web];
        let port_of = |published: TaskAddresses| {
            show(&endpoints(&siblings, ReachablePort::of(NetworkMode::Bridge, published)).0)
        };
        assert_eq!(port_of(TaskAddresses::Ipv4(Ipv4Addr::LOCALHOST)), ["_web._tcp web:80 -> 32768"]);
        assert_eq!(port_of(TaskAddresses::Ipv6(Ipv6Addr::LOCALHOST)), ["_web._tcp web:80 -> 49825"]);
        let ipv4_only = HostPorts { ipv4: Some(32768), ipv6: None };
        assert_eq!(
            (ipv4_only.of(true), ipv4_only.of(false)),
            (Some(32768), Some(32768)),
            "the other family's"
        );
    }

    #[test]
    fn only_healthy_or_unchecked_containers_publish() {
        let env = ["SERVICE_80_NAME=_web._tcp"];
        let siblings = [
            sibling("a", &env, &[(80, 1)], Health::NotChecked),
            sibling("b", &env, &[(80, 2)], Health::Healthy),
            sibling("c", &env, &[(80, 3)], Health::Starting),
            sibling("d", &env, &[(80, 4)], Health::Unhealthy),
        ];
        let (endpoints, _) = endpoints(&siblings, BRIDGE);
        assert_eq!(show(&endpoints), ["_web._tcp a:80 -> 1", "_web._tcp b:80 -> 2"]);
    }

    #[test]
    fn one_bad_variable_or_unpublished_port_spares_the_rest() {
        let siblings = [
            sibling(
                "bad",
                &["SERVICE_80_NAME=web", "SERVICE_81_NAME=_ok._tcp"],
                &[(81, 5001)],
                Health::NotChecked,
            ),
            sibling("unpublished", &["SERVICE_9000_NAME=_x._tcp"], &[], Health::NotChecked),
            sibling("good", &["SERVICE_80_NAME=_web._tcp"], &[(80, 5000)], Health::NotChecked),
        ];
        let (endpoints, problems) = endpoints(&siblings, BRIDGE);
        assert_eq!(show(&endpoints), ["_ok._tcp bad:81 -> 5001", "_web._tcp good:80 -> 5000"]);
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2);
        assert!(
            messages[0].starts_with("container bad: environment variable SERVICE_80_NAME=\"web\" rejected"),
            "{}",
            messages[0]
        );
        assert!(messages[1].contains("port 9000/tcp is named by SERVICE_9000_NAME but not published"));
    }

    #[test]
    fn labels_publish_override_and_ignore() {
        let mut labelled = sibling("web", &["SERVICE_80_NAME=_old._tcp"], &[(80, 5000)], Health::NotChecked);
        labelled.labels = BTreeMap::from([("SERVICE_80_NAME".to_owned(), "_new._tcp".to_owned())]);
        let mut ignored =
            sibling("admin", &["SERVICE_80_NAME=_admin._tcp"], &[(80, 5001)], Health::NotChecked);
        ignored.labels = BTreeMap::from([("SERVICE_IGNORE".to_owned(), "true".to_owned())]);
        let (endpoints, problems) = endpoints(&[labelled, ignored], BRIDGE);
        assert_eq!(show(&endpoints), ["_new._tcp web:80 -> 5000"]);
        assert!(problems.is_empty());
    }
}
