//! The task's containers through the Docker API (EC2 with the Docker socket mounted): environment and
//! labels, HEALTHCHECK state, host ports, and stop signals seen in Docker's events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::EventMessage;
use bollard::models::{ContainerSummaryStateEnum, HealthStatusEnum, PortSummaryTypeEnum};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bytes::Bytes;
use ecssd_records::Protocol;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::siblings::{Health, HostPorts, Sibling, service_labels};

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
    /// Where the engine listens, for the event stream (see [`SiblingLister::events`]).
    engine: Result<Engine, String>,
}

/// Where the Docker engine listens, read from `DOCKER_HOST` as bollard's `connect_with_defaults` reads
/// it (the sidecar's client is made that way): a Unix socket, or plain HTTP over TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Engine {
    Unix(PathBuf),
    Tcp(String),
}

impl Engine {
    fn from_docker_host(host: &str) -> Result<Self, String> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Self::Unix(path.into()));
        }
        match host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            Some(address) => Ok(Self::Tcp(address.trim_end_matches('/').to_owned())),
            None => Err(format!("DOCKER_HOST {host:?}: expected unix://, tcp:// or http://")),
        }
    }
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
    /// A lister of the task's containers through `docker`, a client made from `DOCKER_HOST` (or the
    /// default socket), where the event stream is read too.
    pub fn new(docker: Docker, task_arn: String) -> Self {
        let host = std::env::var("DOCKER_HOST").ok().filter(|host| !host.is_empty());
        Self::with_docker_host(docker, task_arn, host.as_deref().unwrap_or("unix:///var/run/docker.sock"))
    }

    /// A lister whose event stream is read from `docker_host` (`unix://…`, `tcp://…`).
    pub fn with_docker_host(docker: Docker, task_arn: String, docker_host: &str) -> Self {
        let engine = Engine::from_docker_host(docker_host);
        Self { docker, task_arn, known: HashMap::new(), stopping: Default::default(), engine }
    }

    /// The task's container events since `since` (Unix seconds), filtered by Docker. An event that
    /// cannot be decoded (JSON bollard's model does not take: a value it has no variant for, a line
    /// cut short) is skipped with a warning: it is one event, not a broken stream, and reopening the
    /// stream from `since` would only replay it. Only a transport error or the stream's end ends it.
    ///
    /// Read here rather than through bollard's `events`, whose stream ends at the first line it cannot
    /// decode (an error, then nothing: its line decoder stops there), so no caller could skip it.
    pub fn events(&self, since: i64) -> BoxStream<'static, Result<EventMessage, DockerError>> {
        let filters = serde_json::json!({
            "type": ["container"],
            "label": [format!("{TASK_ARN_LABEL}={}", self.task_arn)],
        });
        let path = format!(
            "/v{}/events?since={since}&filters={}",
            self.docker.client_version(),
            percent_encode(&filters.to_string())
        );
        let engine = self.engine.clone();
        let timeout = self.docker.timeout();
        let opening = async move {
            let engine = engine.map_err(|uri| DockerError::UnsupportedURISchemeError { uri })?;
            open_stream(&engine, &path, timeout).await
        };
        let start = Reading::Opening(Box::pin(opening));
        futures_util::stream::unfold(start, next_event).boxed()
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
            let mut host_ports: BTreeMap<(u16, Protocol), HostPorts> = BTreeMap::new();
            for port in summary.ports.unwrap_or_default() {
                let protocol = match port.typ {
                    Some(PortSummaryTypeEnum::UDP) => Protocol::Udp,
                    _ => Protocol::Tcp,
                };
                let Some(public) = port.public_port else { continue };
                let ports = host_ports.entry((port.private_port, protocol)).or_default();
                ports.add(port.ip.as_deref().unwrap_or_default(), public);
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

/// Where the event stream is.
enum Reading {
    Opening(futures_util::future::BoxFuture<'static, Result<Incoming, DockerError>>),
    /// The response's body, and what of it is not a whole line yet.
    Body(Incoming, Vec<u8>),
    Ended,
}

/// The stream's next event (or error, which ends it); undecodable lines are skipped.
async fn next_event(mut reading: Reading) -> Option<(Result<EventMessage, DockerError>, Reading)> {
    loop {
        reading = match reading {
            Reading::Ended => return None,
            Reading::Opening(opening) => match opening.await {
                Ok(body) => Reading::Body(body, Vec::new()),
                Err(e) => return Some((Err(e), Reading::Ended)),
            },
            Reading::Body(mut body, mut pending) => {
                // Docker writes one event a line.
                if let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    match decode_event(&line) {
                        Some(event) => return Some((Ok(event), Reading::Body(body, pending))),
                        None => Reading::Body(body, pending),
                    }
                } else {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                pending.extend_from_slice(&data);
                            }
                            Reading::Body(body, pending)
                        }
                        Some(Err(e)) => return Some((Err(e.into()), Reading::Ended)),
                        // The engine ended the stream: a last line without its newline still counts.
                        None => match decode_event(&pending) {
                            Some(event) => return Some((Ok(event), Reading::Ended)),
                            None => return None,
                        },
                    }
                }
            }
        };
    }
}

/// One line of Docker's event stream; `None` for a blank line, or one that is no event bollard's model
/// takes, which is logged (once: the stream goes on past it) with what it held.
fn decode_event(line: &[u8]) -> Option<EventMessage> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    match serde_json::from_slice(line) {
        Ok(event) => Some(event),
        Err(e) => {
            const SHOWN: usize = 2048;
            let shown = String::from_utf8_lossy(line.get(..SHOWN).unwrap_or(line));
            let cut = if line.len() > SHOWN { "…" } else { "" };
            tracing::warn!(problem = "docker_event_undecodable", error = %e, event = %format!("{shown}{cut}"),
                "skipped a Docker event that cannot be decoded; the event stream goes on");
            None
        }
    }
}

/// Sends `GET path` to the engine and returns the body of its 200 answer; the answer must come within
/// `timeout` (the client's), the body may stream for ever.
async fn open_stream(engine: &Engine, path: &str, timeout: Duration) -> Result<Incoming, DockerError> {
    let host = match engine {
        Engine::Unix(_) => "docker",
        Engine::Tcp(address) => address.as_str(),
    };
    let request = hyper::Request::get(path).header(hyper::header::HOST, host).body(Empty::<Bytes>::new())?;
    let sending = async {
        match engine {
            Engine::Unix(socket) => send(tokio::net::UnixStream::connect(socket).await?, request).await,
            Engine::Tcp(address) => send(tokio::net::TcpStream::connect(address).await?, request).await,
        }
    };
    let response =
        tokio::time::timeout(timeout, sending).await.map_err(|_| DockerError::RequestTimeoutError)??;
    let status = response.status();
    if status.is_success() {
        return Ok(response.into_body());
    }
    // Docker explains an error in a short JSON body: `{"message": "..."}`.
    let body = tokio::time::timeout(timeout, response.into_body().collect()).await;
    let body = body.ok().and_then(Result::ok).map(|body| body.to_bytes()).unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(DockerError::DockerResponseServerError { status_code: status.as_u16(), message })
}

/// One HTTP/1.1 exchange on a fresh connection; the connection lives (in a task of its own) while
/// the response's body is read, and closes when it is dropped.
async fn send<T>(
    io: T,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<Incoming>, DockerError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "Docker event stream connection closed");
        }
    });
    Ok(sender.send_request(request).await?)
}

/// `text` as a URL query value: everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
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
        let mut lister =
            SiblingLister::with_docker_host(docker, "arn:aws:ecs:task".to_owned(), "tcp://127.0.0.1:9");
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

    /// How the stand-in's event stream goes on after its lines.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum After {
        /// Open, as Docker's is, until the client goes.
        Hang,
        /// Ended cleanly (the last chunk).
        End,
        /// The connection dropped in the middle of a chunk.
        Cut,
    }

    /// What the stand-in saw: the request lines of `/events`, and how many of those connections the
    /// client closed.
    #[derive(Debug, Default)]
    struct Seen {
        requests: std::sync::Mutex<Vec<String>>,
        closed: std::sync::atomic::AtomicUsize,
    }

    /// A Docker engine stand-in on loopback that answers `/events` with `status` and, on 200, `lines`
    /// (chunked, as Docker streams them), then goes on as `after` says. Its `DOCKER_HOST`.
    async fn events_stand_in(
        status: u16,
        lines: Vec<String>,
        after: After,
    ) -> (String, std::sync::Arc<Seen>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(Seen::default());
        let seen_by_server = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (lines, seen) = (lines.clone(), seen_by_server.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let request = head.lines().next().unwrap_or_default().to_owned();
                    if !request.contains("/events") {
                        let _ =
                            socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
                        return;
                    }
                    seen.requests.lock().unwrap().push(request);
                    if status != 200 {
                        let body = r#"{"message":"the engine is not feeling well"}"#;
                        let answer =
                            format!("HTTP/1.1 {status} Oops\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        let _ = socket.write_all(answer.as_bytes()).await;
                        return;
                    }
                    let mut answer =
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                            .to_vec();
                    for line in &lines {
                        let line = format!("{line}\n");
                        answer.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
                    }
                    match after {
                        After::Hang => {}
                        After::End => answer.extend_from_slice(b"0\r\n\r\n"),
                        After::Cut => answer.extend_from_slice(b"40\r\n{\"Type\":\"cont"),
                    }
                    let _ = socket.write_all(&answer).await;
                    if after == After::Hang {
                        // Until the client closes the connection.
                        while socket.read(&mut byte).await.unwrap_or(0) != 0 {}
                        seen.closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        (format!("tcp://{address}"), seen)
    }

    fn event_line(id: &str, action: &str) -> String {
        format!(
            r#"{{"status":"{action}","id":"{id}","Type":"container","Action":"{action}","Actor":{{"ID":"{id}","Attributes":{{"name":"web","signal":"15"}}}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}}"#
        )
    }

    /// The lister's event stream from the stand-in at `host`.
    fn events_from(host: &str) -> BoxStream<'static, Result<EventMessage, DockerError>> {
        let docker = Docker::connect_with_http(host, 5, bollard::API_DEFAULT_VERSION).unwrap();
        let lister = SiblingLister::with_docker_host(docker, "arn:aws:ecs:task".to_owned(), host);
        lister.events(1_700_000_000)
    }

    /// The stream's next items, up to `count`, rendered: the actor's id for an event, else what came
    /// (`None` for the end, an error, `timeout` when nothing came within a second).
    async fn next_items(
        events: &mut BoxStream<'static, Result<EventMessage, DockerError>>,
        count: usize,
    ) -> Vec<String> {
        let mut items = Vec::new();
        for _ in 0..count {
            let item = match tokio::time::timeout(Duration::from_secs(1), events.next()).await {
                Ok(Some(Ok(event))) => event.actor.and_then(|a| a.id).unwrap_or_default(),
                Ok(other) => format!("{other:?}"),
                Err(_) => "timeout".to_owned(),
            };
            let ended = item == "None";
            items.push(item);
            if ended {
                break;
            }
        }
        items
    }

    #[tokio::test]
    async fn an_undecodable_docker_event_is_skipped_and_the_stream_goes_on() {
        let lines = vec![
            event_line("first", "start"),
            // Not JSON; JSON of a shape bollard's model refuses (a scope it has no variant for); a
            // line cut short; a blank line.
            "this is not JSON".to_owned(),
            event_line("bad", "kill").replace("\"local\"", "\"galaxy\""),
            r#"{"Type":"container","Action":"st"#.to_owned(),
            String::new(),
            event_line("after", "kill"),
        ];
        let (host, seen) = events_stand_in(200, lines, After::Hang).await;
        let mut events = events_from(&host);
        // The event after the undecodable ones comes; then the stream stays open (no end, no error:
        // nothing that would make run.rs reopen it, to be served the same events again).
        assert_eq!(next_items(&mut events, 3).await, ["first", "after", "timeout"]);
        let requests = seen.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1, "no reconnect: {requests:?}");
        // What bollard's `events` asked for: since when, this task's container events only.
        let request = &requests[0];
        assert!(
            request.starts_with(&format!(
                "GET /v{}/events?since=1700000000&filters=",
                bollard::API_DEFAULT_VERSION
            )),
            "{request}"
        );
        let filters = request.split("filters=").nth(1).unwrap().split(' ').next().unwrap();
        let filters = filters
            .replace("%22", "\"")
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%5B", "[")
            .replace("%5D", "]")
            .replace("%7B", "{")
            .replace("%7D", "}")
            .replace("%3D", "=");
        let filters: serde_json::Value = serde_json::from_str(&filters).unwrap();
        assert_eq!(
            filters,
            serde_json::json!({"type": ["container"], "label": ["com.amazonaws.ecs.task-arn=arn:aws:ecs:task"]})
        );
        // Dropped (as run.rs does on shutdown or before reopening), the stream closes its connection.
        drop(events);
        let closed = async {
            while seen.closed.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed).await.expect("the connection is closed");
    }

    #[tokio::test]
    async fn a_broken_connection_or_the_streams_end_still_ends_the_stream() {
        // Cut in the middle of a chunk: an error, then the end (run.rs reopens the stream).
        let (host, _seen) = events_stand_in(200, vec![event_line("first", "start")], After::Cut).await;
        let items = next_items(&mut events_from(&host), 3).await;
        assert_eq!(items[0], "first");
        assert!(items[1].starts_with("Some(Err("), "{items:?}");
        assert_eq!(items[2], "None");
        // Ended by the engine: the end.
        let (host, _seen) = events_stand_in(200, vec![event_line("first", "start")], After::End).await;
        assert_eq!(next_items(&mut events_from(&host), 3).await, ["first", "None"]);
        // Refused: Docker's message, then the end.
        let (host, _seen) = events_stand_in(500, Vec::new(), After::End).await;
        let items = next_items(&mut events_from(&host), 3).await;
        assert!(items[0].contains("status_code: 500") && items[0].contains("not feeling well"), "{items:?}");
        assert_eq!(items[1], "None");
        // Nobody listening.
        let items = next_items(&mut events_from("tcp://127.0.0.1:9"), 3).await;
        assert!(items[0].starts_with("Some(Err(IOError"), "{items:?}");
        assert_eq!(items[1], "None");
    }

    #[test]
    fn the_engine_is_where_docker_host_says() {
        assert_eq!(
            Engine::from_docker_host("unix:///var/run/docker.sock"),
            Ok(Engine::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(Engine::from_docker_host("tcp://10.0.0.1:2375"), Ok(Engine::Tcp("10.0.0.1:2375".into())));
        assert_eq!(
            Engine::from_docker_host("http://localhost:2375/"),
            Ok(Engine::Tcp("localhost:2375".into()))
        );
        assert!(Engine::from_docker_host("ssh://host").is_err());
        assert_eq!(percent_encode("a=b [\"c\"]~"), "a%3Db%20%5B%22c%22%5D~");
    }
}
