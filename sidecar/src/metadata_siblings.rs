//! The task's containers as ECS task metadata v4 describes them (`${ECS_CONTAINER_METADATA_URI_V4}/task`):
//! the source on Fargate, and on EC2 without the Docker socket. It shows the task definition's
//! `dockerLabels`, not environment variables, so `SERVICE_*` settings come from labels here.
//! The document's fields: [`crate::metadata::TaskMetadata`].

use std::collections::BTreeMap;

use ecssd_records::Protocol;

use crate::metadata::TaskMetadata;
use crate::siblings::{Health, HostPorts, Sibling, service_labels};

/// What one read of task metadata says: the containers that serve, and whether ECS is stopping the
/// whole task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// Containers of type NORMAL that run and are not being stopped, by name.
    pub siblings: Vec<Sibling>,
    /// The task's `DesiredStatus` is STOPPED.
    pub stopping: bool,
    /// Some container of the task definition, running or not yet, has a `SERVICE_*` label.
    pub labelled: bool,
}

/// What a task metadata v4 `/task` document says about the task's containers.
pub fn task_view(task: TaskMetadata) -> TaskView {
    let labelled = task
        .containers
        .iter()
        .any(|c| c.kind == "NORMAL" && c.labels.keys().any(|name| name.starts_with("SERVICE_")));
    let mut siblings: Vec<Sibling> = task
        .containers
        .into_iter()
        // Only the application's containers, only while they run, and not once ECS is stopping them.
        .filter(|c| c.kind == "NORMAL" && c.known_status == "RUNNING" && c.desired_status != "STOPPED")
        .map(|container| {
            let mut host_ports: BTreeMap<(u16, Protocol), HostPorts> = BTreeMap::new();
            for port in &container.ports {
                let protocol =
                    if port.protocol.eq_ignore_ascii_case("udp") { Protocol::Udp } else { Protocol::Tcp };
                let Some(host_port) = port.host_port.filter(|p| *p != 0) else { continue };
                host_ports.entry((port.container_port, protocol)).or_default().add(&port.host_ip, host_port);
            }
            let health = match container.health.map(|h| h.status) {
                None => Health::NotChecked,
                Some(status) if status == "HEALTHY" => Health::Healthy,
                Some(status) if status == "UNHEALTHY" => Health::Unhealthy,
                // UNKNOWN: the check has not passed yet (Docker's "starting").
                Some(_) => Health::Starting,
            };
            Sibling {
                name: container.name,
                env: Vec::new(),
                labels: service_labels(&container.labels),
                host_ports,
                health,
            }
        })
        .collect();
    siblings.sort_by(|a, b| a.name.cmp(&b.name));
    TaskView { siblings, stopping: task.desired_status == "STOPPED", labelled }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Fargate task as the ECS Developer Guide's examples show one, trimmed to what is read here.
    const FARGATE: &str = r#"{
        "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
        "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3",
        "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "LaunchType": "FARGATE",
        "Containers": [
            {"Name": "~internal~ecs~pause", "Type": "CNI_PAUSE", "DesiredStatus": "RESOURCES_PROVISIONED",
             "KnownStatus": "RESOURCES_PROVISIONED", "Labels": {"SERVICE_1_NAME": "_pause._tcp"}},
            {"DockerId": "e9028f8d5d8e4f258373e7b93ce9a3c3-2495160603", "Name": "calc", "Type": "NORMAL",
             "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
             "Labels": {"SERVICE_8080_NAME": "_calc._tcp", "com.amazonaws.ecs.container-name": "calc"},
             "Ports": [{"ContainerPort": 8080, "Protocol": "tcp"}],
             "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.61"]}],
             "Health": {"status": "HEALTHY", "statusSince": "2020-10-08T20:09:11.44527186Z"}},
            {"Name": "warming", "Type": "NORMAL", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
             "Labels": {"SERVICE_8081_NAME": "_warm._tcp"}, "Health": {"status": "UNKNOWN"}},
            {"Name": "pulled", "Type": "NORMAL", "DesiredStatus": "RUNNING", "KnownStatus": "PULLED"},
            {"Name": "leaving", "Type": "NORMAL", "DesiredStatus": "STOPPED", "KnownStatus": "RUNNING"},
            {"Name": "ecssd", "Type": "NORMAL", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING"}
        ]
    }"#;

    fn view(document: &[u8]) -> TaskView {
        task_view(TaskMetadata::parse(document).unwrap())
    }

    #[test]
    fn only_running_normal_containers_not_being_stopped_are_siblings() {
        let view = view(FARGATE.as_bytes());
        let names: Vec<&str> = view.siblings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["calc", "ecssd", "warming"]);
        assert!(!view.stopping);
        assert!(view.labelled);
        let calc = &view.siblings[0];
        assert_eq!(calc.health, Health::Healthy);
        assert_eq!(calc.labels, BTreeMap::from([("SERVICE_8080_NAME".into(), "_calc._tcp".into())]));
        assert!(calc.host_ports.is_empty(), "awsvpc: no HostPort");
        assert_eq!(view.siblings[1].health, Health::NotChecked, "no Health: no health check");
        assert_eq!(view.siblings[2].health, Health::Starting, "UNKNOWN is not healthy yet");
    }

    #[test]
    fn bridge_host_ports_and_a_stopping_task() {
        let doc = r#"{"Cluster": "c", "TaskARN": "arn:aws:ecs:us-east-1:1:task/c/abc",
            "DesiredStatus": "STOPPED", "Containers": [{"Name": "web", "Type": "NORMAL",
            "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
            "Ports": [{"ContainerPort": 80, "Protocol": "tcp", "HostPort": 49825, "HostIp": "::"},
                      {"ContainerPort": 80, "Protocol": "tcp", "HostPort": 32768, "HostIp": "0.0.0.0"},
                      {"ContainerPort": 81, "Protocol": "tcp", "HostPort": 32770, "HostIp": "0.0.0.0"},
                      {"ContainerPort": 81, "Protocol": "tcp", "HostPort": 49826, "HostIp": "::"},
                      {"ContainerPort": 53, "Protocol": "udp", "HostPort": 32769}]}]}"#;
        let view = view(doc.as_bytes());
        assert!(view.stopping);
        assert!(!view.labelled, "no SERVICE_ label anywhere");
        let ports = &view.siblings[0].host_ports;
        // Each family's binding, whichever comes first (aws/amazon-ecs-agent issue 3096).
        let both = |ipv4, ipv6| Some(HostPorts { ipv4: Some(ipv4), ipv6: Some(ipv6) });
        assert_eq!(ports.get(&(80, Protocol::Tcp)).copied(), both(32768, 49825));
        assert_eq!(ports.get(&(81, Protocol::Tcp)).copied(), both(32770, 49826));
        assert_eq!(
            ports.get(&(53, Protocol::Udp)).copied(),
            Some(HostPorts { ipv4: Some(32769), ipv6: None })
        );
    }

    #[test]
    fn a_malformed_document_says_so() {
        let unnamed = br#"{"Cluster": "c", "TaskARN": "t", "Containers": [{"Type": "NORMAL"}]}"#;
        // A container whose type or status is missing is unreadable, not gone.
        let untyped = br#"{"Cluster": "c", "TaskARN": "t", "Containers": [{"Name": "web",
            "KnownStatus": "RUNNING", "DesiredStatus": "RUNNING"}]}"#;
        let no_status = br#"{"Cluster": "c", "TaskARN": "t", "Containers": [{"Name": "web",
            "Type": "NORMAL", "DesiredStatus": "RUNNING"}]}"#;
        let no_containers = br#"{"Cluster": "c", "TaskARN": "t", "DesiredStatus": "RUNNING"}"#;
        let bodies = [&b"<html>"[..], unnamed, untyped, no_status, no_containers];
        for body in bodies.into_iter().chain([&br#"{"Cluster": "c", "TaskARN": "t", "Containers": 3}"#[..]]) {
            let err = TaskMetadata::parse(body).unwrap_err();
            assert!(err.starts_with("not the task metadata v4 format"), "{err}");
        }
    }
}
