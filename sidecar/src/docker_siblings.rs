//! The task's containers through the Docker API (EC2 with the Docker socket mounted): environment and
//! labels, HEALTHCHECK state, host ports, and stop signals seen in Docker's events.

use std::collections::{BTreeMap, HashMap, HashSet};

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::models::{ContainerSummaryStateEnum, HealthStatusEnum, PortSummaryTypeEnum};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use ecssd_records::Protocol;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::siblings::{Health, Sibling, service_labels};

/// The label the ECS agent puts on every container of a task.
pub const TASK_ARN_LABEL: &str = "com.amazonaws.ecs.task-arn";
/// The label carrying the container's name in the task definition.
pub const CONTAINER_NAME_LABEL: &str = "com.amazonaws.ecs.container-name";

/// What never changes for a container, read once by inspecting it.
#[derive(Debug, Clone)]
struct Fixed {
    name: String,
    env: Vec<String>,
    /// Its `SERVICE_*` labels.
    labels: BTreeMap<String, String>,
    has_healthcheck: bool,
    /// Its own `StopSignal` (image `STOPSIGNAL` or container config), normalised: `docker stop` and
    /// ECS StopTask send this one, e.g. SIGWINCH for httpd.
    stop_signal: Option<String>,
}

/// Lists a task's running containers through the Docker API. A container is inspected once (its
/// name, environment, StopSignal and whether it has a HEALTHCHECK never change); afterwards its state
/// and ports come from the container list alone, because an inspect waits while Docker holds the
/// container's lock, e.g. for the tens of milliseconds a sibling takes to start or stop, and that wait
/// would land on the event-to-Route53 latency. Only containers with a HEALTHCHECK are inspected every
/// time, for their health.
#[derive(Debug)]
pub struct SiblingLister {
    docker: Docker,
    task_arn: String,
    /// By Docker container id.
    known: HashMap<String, Fixed>,
    /// Containers asked to stop (SIGTERM and the like, or their own StopSignal) that have not
    /// started again: withdrawn at once, while they still run their graceful shutdown, not only once
    /// they are dead.
    stopping: HashSet<String>,
}

/// Signals that ask any container to stop (`docker stop`, ECS StopTask, Ctrl-C, SIGKILL).
const STOP_SIGNALS: [&str; 4] = ["TERM", "INT", "QUIT", "KILL"];

/// Linux numbers of the signals a StopSignal plausibly names. Docker reports a kill event's signal
/// by number ("28"), while a StopSignal may be written "SIGWINCH", "WINCH" or "28".
const SIGNAL_NUMBERS: [(&str, u32); 9] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("WINCH", 28),
    ("PWR", 30),
];

/// A signal as a comparable key: its number where known, else its name without `SIG`.
fn normalise_signal(signal: &str) -> String {
    // Docker parses signal names case-insensitively.
    let signal = signal.trim().to_ascii_uppercase();
    if let Ok(number) = signal.parse::<u32>() {
        return number.to_string();
    }
    let name = signal.strip_prefix("SIG").unwrap_or(&signal);
    match SIGNAL_NUMBERS.iter().find(|(known, _)| *known == name) {
        Some((_, number)) => number.to_string(),
        None => name.to_owned(),
    }
}

impl SiblingLister {
    pub fn new(docker: Docker, task_arn: String) -> Self {
        Self { docker, task_arn, known: HashMap::new(), stopping: Default::default() }
    }

    /// The task's container events since `since` (Unix seconds), filtered by Docker.
    pub fn events(&self, since: i64) -> BoxStream<'static, Result<EventMessage, bollard::errors::Error>> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![format!("{TASK_ARN_LABEL}={}", self.task_arn)]),
        ]);
        let options =
            EventsOptions { filters: Some(filters), since: Some(since.to_string()), ..Default::default() };
        self.docker.events(Some(options)).boxed()
    }

    /// Learns from a Docker event which containers are stopping (a stop signal) or back (start).
    pub fn observe(&mut self, event: &EventMessage) {
        let Some(actor) = &event.actor else { return };
        let Some(id) = &actor.id else { return };
        match event.action.as_deref() {
            Some("kill") => {
                let Some(signal) = actor.attributes.as_ref().and_then(|a| a.get("signal")) else { return };
                let signal = normalise_signal(signal);
                // A container not inspected yet has no known StopSignal: the generic list must do.
                let own = self.known.get(id).and_then(|fixed| fixed.stop_signal.as_deref());
                if own == Some(signal.as_str()) || STOP_SIGNALS.iter().any(|s| normalise_signal(s) == signal)
                {
                    self.stopping.insert(id.clone());
                }
            }
            Some("start" | "restart" | "unpause") => {
                self.stopping.remove(id);
            }
            _ => {}
        }
    }

    pub async fn list(&mut self) -> Result<Vec<Sibling>, bollard::errors::Error> {
        let filters =
            HashMap::from([("label".to_owned(), vec![format!("{TASK_ARN_LABEL}={}", self.task_arn)])]);
        let options = ListContainersOptions { all: false, filters: Some(filters), ..Default::default() };
        let summaries = self.docker.list_containers(Some(options)).await?;
        self.known.retain(|id, _| summaries.iter().any(|s| s.id.as_deref() == Some(id)));
        self.stopping.retain(|id| summaries.iter().any(|s| s.id.as_deref() == Some(id)));
        let mut siblings = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            // Paused or restarting containers are listed too; only a running one serves, and only
            // until it is asked to stop.
            if summary.state.is_some_and(|state| state != ContainerSummaryStateEnum::RUNNING)
                || self.stopping.contains(&id)
            {
                continue;
            }
            let (fixed, health) = match self.known.get(&id) {
                Some(fixed) if !fixed.has_healthcheck => (fixed.clone(), Health::NotChecked),
                _ => match self.inspect(&id).await? {
                    Some(found) => found,
                    // Gone between list and inspect: it is simply not running any more.
                    None => continue,
                },
            };
            let mut host_ports = BTreeMap::new();
            for port in summary.ports.unwrap_or_default() {
                let protocol = match port.typ {
                    Some(PortSummaryTypeEnum::UDP) => Protocol::Udp,
                    _ => Protocol::Tcp,
                };
                let Some(public) = port.public_port else { continue };
                // Docker lists an IPv4 and an IPv6 binding; the A record is IPv4, so IPv4 wins.
                let ipv4 = port.ip.as_deref().is_none_or(|ip| !ip.contains(':'));
                let key = (port.private_port, protocol);
                if ipv4 {
                    host_ports.insert(key, public);
                } else {
                    host_ports.entry(key).or_insert(public);
                }
            }
            siblings.push(Sibling {
                name: fixed.name,
                env: fixed.env,
                labels: fixed.labels,
                host_ports,
                health,
            });
        }
        siblings.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(siblings)
    }

    /// Inspects a container, remembering what never changes; `None` when it no longer runs.
    async fn inspect(&mut self, id: &str) -> Result<Option<(Fixed, Health)>, bollard::errors::Error> {
        let inspect = match self.docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let state = inspect.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Ok(None);
        }
        let health = match state.health.and_then(|h| h.status) {
            None | Some(HealthStatusEnum::EMPTY | HealthStatusEnum::NONE) => Health::NotChecked,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        };
        let config = inspect.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let docker_name = inspect.name.unwrap_or_default().trim_start_matches('/').to_owned();
        let has_healthcheck = config
            .healthcheck
            .and_then(|h| h.test)
            .is_some_and(|test| !test.is_empty() && test.first().is_none_or(|t| t != "NONE"));
        let fixed = Fixed {
            name: labels.get(CONTAINER_NAME_LABEL).cloned().unwrap_or(docker_name),
            env: config.env.unwrap_or_default(),
            labels: service_labels(&labels),
            has_healthcheck: has_healthcheck || health != Health::NotChecked,
            stop_signal: config.stop_signal.filter(|s| !s.trim().is_empty()).map(|s| normalise_signal(&s)),
        };
        self.known.insert(id.to_owned(), fixed.clone());
        Ok(Some((fixed, health)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers_compare_equal() {
        for spelling in ["SIGWINCH", "WINCH", "28", "sigwinch", " SIGWINCH "] {
            assert_eq!(normalise_signal(spelling), "28", "{spelling}");
        }
        assert_eq!(normalise_signal("SIGTERM"), normalise_signal("15"));
        assert_eq!(normalise_signal("SIGPWR"), "30");
        // Unknown names compare as their text, with or without SIG.
        assert_eq!(normalise_signal("SIGRTMIN+3"), "RTMIN+3");
        assert_eq!(normalise_signal("RTMIN+3"), normalise_signal("SIGRTMIN+3"));
    }

    fn kill(id: &str, signal: &str) -> bollard::models::EventMessage {
        action(id, "kill", Some(signal))
    }

    fn action(id: &str, action: &str, signal: Option<&str>) -> bollard::models::EventMessage {
        bollard::models::EventMessage {
            action: Some(action.to_owned()),
            actor: Some(bollard::models::EventActor {
                id: Some(id.to_owned()),
                attributes: Some(signal.into_iter().map(|s| ("signal".to_owned(), s.to_owned())).collect()),
            }),
            ..Default::default()
        }
    }

    /// A lister whose Docker handle is never used: `observe` needs none.
    fn lister_with(known: &[(&str, Option<&str>)]) -> SiblingLister {
        let docker = Docker::connect_with_http("http://127.0.0.1:9", 1, bollard::API_DEFAULT_VERSION)
            .expect("an HTTP handle is built without I/O");
        let mut lister = SiblingLister::new(docker, "arn:aws:ecs:task".to_owned());
        for (id, stop_signal) in known {
            let fixed = Fixed {
                name: (*id).to_owned(),
                env: Vec::new(),
                labels: BTreeMap::new(),
                has_healthcheck: false,
                stop_signal: stop_signal.map(normalise_signal),
            };
            lister.known.insert((*id).to_owned(), fixed);
        }
        lister
    }

    #[test]
    fn a_containers_own_stop_signal_marks_it_stopping() {
        let mut lister = lister_with(&[("httpd", Some("SIGWINCH")), ("plain", None)]);
        // What Docker emits for `docker stop` of a container with StopSignal SIGWINCH.
        lister.observe(&kill("httpd", "28"));
        assert!(lister.stopping.contains("httpd"));
        // SIGWINCH is no stop signal for a container that did not choose it, nor for one not
        // inspected yet.
        lister.observe(&kill("plain", "28"));
        lister.observe(&kill("unseen", "28"));
        assert!(!lister.stopping.contains("plain"));
        assert!(!lister.stopping.contains("unseen"));
        lister.observe(&action("httpd", "start", None));
        assert!(!lister.stopping.contains("httpd"));
    }

    #[test]
    fn generic_stop_signals_mark_any_container_stopping() {
        let mut lister = lister_with(&[("httpd", Some("WINCH"))]);
        lister.observe(&kill("httpd", "15"));
        lister.observe(&kill("unseen", "SIGKILL"));
        assert!(lister.stopping.contains("httpd"));
        assert!(lister.stopping.contains("unseen"));
        // Other signals (USR1: reopen logs, say) leave a container serving.
        let mut lister = lister_with(&[("httpd", Some("SIGWINCH"))]);
        lister.observe(&kill("httpd", "10"));
        lister.observe(&action("httpd", "kill", None));
        assert!(lister.stopping.is_empty());
    }
}
