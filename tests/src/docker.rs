//! Workload containers on the real Docker engine, labelled the way the ECS agent labels a task's
//! containers, from an image built here with no registry: a `docker import`ed rootfs holding Debian's
//! static busybox (`httpd` serves `/www`, with `/www/health` saying OK).
//!
//! Every container carries `ecssd.test.pid=<this process>`; [`Task`] removes its containers when
//! dropped, and [`remove_leftovers`] removes those of test processes that died without cleaning up.

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    ListImagesOptions, RemoveContainerOptions,
};
use futures_util::TryStreamExt;
use std::collections::HashMap;

/// The workload image's tag.
pub const WORKLOAD_IMAGE: &str = "ecssd-busybox:test";
/// Where Debian's busybox-static puts the binary.
const BUSYBOX: &str = "/bin/busybox";
/// Marks containers a test started, with the pid of the test process.
pub(crate) const TEST_LABEL: &str = "ecssd.test.pid";

/// Connects to the engine named by `DOCKER_HOST` or the local socket, at an API version it speaks.
pub async fn connect() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_defaults().context("connecting to Docker")?;
    docker.negotiate_version().await.context("Docker API version negotiation (is the daemon running?)")
}

/// Builds [`WORKLOAD_IMAGE`] if it is missing.
pub async fn ensure_workload_image(docker: &Docker) -> anyhow::Result<()> {
    let filters = HashMap::from([("reference".to_owned(), vec![WORKLOAD_IMAGE.to_owned()])]);
    let found =
        docker.list_images(Some(ListImagesOptions { filters: Some(filters), ..Default::default() })).await?;
    if !found.is_empty() {
        return Ok(());
    }
    let rootfs = busybox_rootfs().context("building the busybox rootfs (apt-get install busybox-static)")?;
    let (repo, tag) = WORKLOAD_IMAGE.split_once(':').unwrap_or((WORKLOAD_IMAGE, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    docker
        .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None)
        .try_collect::<Vec<_>>()
        .await
        .context("docker import of the busybox rootfs")?;
    Ok(())
}

/// A tar of `/bin/busybox` plus the links and files the workloads use.
fn busybox_rootfs() -> anyhow::Result<Vec<u8>> {
    let busybox = std::fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}"))?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut add_file = |path: &str, mode: u32, data: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, data)
    };
    add_file("bin/busybox", 0o755, &busybox)?;
    add_file("www/health", 0o644, b"OK\n")?;
    add_file("www/index.html", 0o644, b"ecssd test workload\n")?;
    add_file("tmp/.keep", 0o644, b"")?;
    for applet in ["sh", "httpd", "sleep", "wget", "cat", "echo", "rm", "touch", "test", "nc"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        tar.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
    }
    Ok(tar.into_inner()?)
}

/// One container of a test task.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The container's name in the (pretend) task definition.
    pub name: String,
    /// `KEY=VALUE` environment, e.g. `SERVICE_80_NAME=_web._tcp`.
    pub env: Vec<String>,
    /// Container ports (tcp) to publish on a dynamic port of 127.0.0.1.
    pub publish: Vec<u16>,
    /// A Docker HEALTHCHECK command, if any (`CMD-SHELL` form), run every 0.5 s; one failure makes
    /// the container unhealthy.
    pub healthcheck: Option<String>,
    /// The healthcheck's start period (`startPeriod` in a task definition's healthCheck): until a
    /// check passes within it, failures do not count and Docker says `starting`. None: no grace.
    pub health_start_period: Option<std::time::Duration>,
    /// The task definition's `dockerLabels`, set as Docker labels beside the `com.amazonaws.ecs.*`
    /// ones the agent adds (e.g. `SERVICE_80_NAME` = `_web._tcp`).
    pub labels: Vec<(String, String)>,
    /// The command; defaults to busybox httpd serving `/www` on port 80 (for the workload image).
    pub cmd: Option<Vec<String>>,
    /// Another local image (e.g. the sidecar's); `cmd: None` then runs its entrypoint.
    pub image: Option<String>,
    /// Share the host's network namespace (ECS `host` mode).
    pub host_network: bool,
    /// Bind mounts, `host:container[:ro]`.
    pub binds: Vec<String>,
    /// The signal `docker stop` (and ECS StopTask) sends first, e.g. `SIGWINCH` for Apache httpd.
    pub stop_signal: Option<String>,
}

impl ContainerSpec {
    /// The sidecar's own container in a task, idle: the sidecar under test runs as a process beside it.
    pub fn idle_sidecar() -> Self {
        Self { name: "ecssd".into(), cmd: Some(vec!["sleep".into(), "3600".into()]), ..Default::default() }
    }

    /// An httpd container serving port 80, published, named `name`, with `env`.
    pub fn httpd(name: &str, env: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            env: env.iter().map(|s| (*s).to_owned()).collect(),
            publish: vec![80],
            ..Default::default()
        }
    }
}

/// A group of containers labelled as one ECS task; removed when dropped.
#[derive(Debug)]
pub struct Task {
    docker: Docker,
    pub task_arn: String,
    pub cluster_arn: String,
    /// Docker ids, in the order of the specs.
    pub container_ids: Vec<String>,
}

impl Task {
    /// Creates and starts the containers of a new task with a fresh task id.
    pub async fn start(docker: &Docker, cluster: &str, specs: &[ContainerSpec]) -> anyhow::Result<Self> {
        let task_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let cluster_arn = format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}");
        let task_arn = format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{task_id}");
        Self::start_as(docker, &cluster_arn, &task_arn, specs).await
    }

    /// Creates and starts the containers of the task ECS knows as `task_arn` (e.g. one placed in moto).
    pub async fn start_as(
        docker: &Docker,
        cluster_arn: &str,
        task_arn: &str,
        specs: &[ContainerSpec],
    ) -> anyhow::Result<Self> {
        ensure_workload_image(docker).await?;
        let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn).replace('-', "");
        let (task_arn, cluster_arn) = (task_arn.to_owned(), cluster_arn.to_owned());
        let mut task = Self { docker: docker.clone(), task_arn, cluster_arn, container_ids: Vec::new() };
        for spec in specs {
            let id = task.create(spec, &task_id).await?;
            task.container_ids.push(id.clone());
            docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>).await?;
        }
        Ok(task)
    }

    async fn create(&self, spec: &ContainerSpec, task_id: &str) -> anyhow::Result<String> {
        // The task definition's dockerLabels, then the agent's own (which win over a dockerLabel of
        // the same name).
        let mut labels: HashMap<String, String> = spec.labels.iter().cloned().collect();
        labels.extend([
            ("com.amazonaws.ecs.task-arn".to_owned(), self.task_arn.clone()),
            ("com.amazonaws.ecs.cluster".to_owned(), self.cluster_arn.clone()),
            ("com.amazonaws.ecs.container-name".to_owned(), spec.name.clone()),
            ("com.amazonaws.ecs.task-definition-family".to_owned(), "ecssd-test".to_owned()),
            ("com.amazonaws.ecs.task-definition-version".to_owned(), "1".to_owned()),
            (TEST_LABEL.to_owned(), std::process::id().to_string()),
        ]);
        let port_bindings = spec
            .publish
            .iter()
            .map(|port| {
                let binding =
                    PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) };
                (format!("{port}/tcp"), Some(vec![binding]))
            })
            .collect();
        let exposed = spec.publish.iter().map(|p| format!("{p}/tcp")).collect();
        let healthcheck = spec.healthcheck.as_ref().map(|cmd| HealthConfig {
            test: Some(vec!["CMD-SHELL".to_owned(), cmd.clone()]),
            interval: Some(500_000_000),
            timeout: Some(1_000_000_000),
            retries: Some(1),
            start_period: Some(
                spec.health_start_period.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            ),
            start_interval: None,
        });
        let default_cmd = || ["httpd", "-f", "-p", "80", "-h", "/www"].map(String::from).to_vec();
        let cmd = match &spec.image {
            Some(_) => spec.cmd.clone(),
            None => Some(spec.cmd.clone().unwrap_or_else(default_cmd)),
        };
        let host_config = HostConfig {
            port_bindings: Some(port_bindings),
            network_mode: spec.host_network.then(|| "host".to_owned()),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone().unwrap_or_else(|| WORKLOAD_IMAGE.to_owned())),
            cmd,
            env: Some(spec.env.clone()),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            healthcheck,
            host_config: Some(host_config),
            stop_signal: spec.stop_signal.clone(),
            ..Default::default()
        };
        let name = format!("ecssd-test-{}-{}", &task_id[..12], spec.name);
        let options = CreateContainerOptions { name: Some(name), ..Default::default() };
        Ok(self.docker.create_container(Some(options), body).await?.id)
    }

    /// Creates and starts one more container in this task (e.g. a sidecar that needs the task's ARN).
    pub async fn add(&mut self, spec: &ContainerSpec) -> anyhow::Result<usize> {
        let id = self.create(spec, self.task_id()).await?;
        self.container_ids.push(id.clone());
        self.docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>).await?;
        Ok(self.container_ids.len() - 1)
    }

    /// The container's exit code once it has stopped.
    pub async fn exit_code(&self, index: usize) -> anyhow::Result<Option<i64>> {
        let state = self.inspect(index).await?.state.unwrap_or_default();
        Ok(if state.running.unwrap_or(false) { None } else { state.exit_code })
    }

    pub fn task_id(&self) -> &str {
        self.task_arn.rsplit('/').next().unwrap_or_default()
    }

    /// The host port Docker mapped for `container_port/tcp` of the container at `index`.
    pub async fn host_port(&self, index: usize, container_port: u16) -> anyhow::Result<u16> {
        let ports = self.inspect(index).await?.network_settings.and_then(|n| n.ports).unwrap_or_default();
        let binding = ports.get(&format!("{container_port}/tcp")).cloned().flatten().unwrap_or_default();
        let port = binding.first().and_then(|b| b.host_port.as_deref()).context("no host port bound")?;
        Ok(port.parse()?)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let ids = std::mem::take(&mut self.container_ids);
        // Drop cannot await; a short-lived thread with its own runtime removes the containers, and
        // this waits for it so nothing outlives the test.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                for id in ids {
                    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
                    let _ = docker.remove_container(&id, Some(options)).await;
                }
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
    }
}

/// Removes containers left by test processes that are no longer alive.
pub async fn remove_leftovers(docker: &Docker) -> anyhow::Result<usize> {
    let filters = HashMap::from([("label".to_owned(), vec![TEST_LABEL.to_owned()])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let mut removed = 0;
    for container in docker.list_containers(Some(options)).await? {
        let pid =
            container.labels.as_ref().and_then(|l| l.get(TEST_LABEL)).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive && let Some(id) = container.id {
            let options = RemoveContainerOptions { force: true, ..Default::default() };
            match docker.remove_container(&id, Some(options)).await {
                Ok(()) => removed += 1,
                // Another process (a parallel test, a demo's cleanup) removed it first.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                // Another is removing it (409, "removal of container … is already in progress"):
                // gone only once that ends, and the caller is promised none is left.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                    crate::wait_for(
                        &format!("container {id} to be removed"),
                        std::time::Duration::from_secs(30),
                        || async {
                            let gone = matches!(
                                docker.inspect_container(&id, None).await,
                                Err(bollard::errors::Error::DockerResponseServerError {
                                    status_code: 404,
                                    ..
                                })
                            );
                            Ok(gone.then_some(()))
                        },
                    )
                    .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

impl Task {
    /// Stops the container at `index` (Docker sends `die` and `stop` events).
    pub async fn stop_container(&self, index: usize) -> anyhow::Result<()> {
        let options = bollard::query_parameters::StopContainerOptions { t: Some(1), ..Default::default() };
        self.docker.stop_container(&self.container_ids[index], Some(options)).await?;
        Ok(())
    }

    /// Sends `signal` (e.g. `SIGTERM`) to the container at `index`, as `docker stop` does first.
    pub async fn signal_container(&self, index: usize, signal: &str) -> anyhow::Result<()> {
        let options = bollard::query_parameters::KillContainerOptions { signal: signal.to_owned() };
        self.docker.kill_container(&self.container_ids[index], Some(options)).await?;
        Ok(())
    }

    /// Whether the container at `index` is running.
    pub async fn is_running(&self, index: usize) -> anyhow::Result<bool> {
        Ok(self.inspect(index).await?.state.and_then(|s| s.running).unwrap_or(false))
    }

    async fn inspect(&self, index: usize) -> anyhow::Result<bollard::models::ContainerInspectResponse> {
        Ok(self.docker.inspect_container(&self.container_ids[index], None::<InspectContainerOptions>).await?)
    }

    /// Starts the container at `index` again.
    pub async fn start_container(&self, index: usize) -> anyhow::Result<()> {
        self.docker
            .start_container(
                &self.container_ids[index],
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await?;
        Ok(())
    }

    /// Runs `cmd` inside the container at `index` and waits for it.
    pub async fn exec(&self, index: usize, cmd: &[&str]) -> anyhow::Result<()> {
        let options = bollard::models::ExecConfig {
            cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self.docker.create_exec(&self.container_ids[index], options).await?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            while let Some(chunk) = futures_util::StreamExt::next(&mut output).await {
                chunk?;
            }
        }
        Ok(())
    }
}

impl Task {
    /// Everything the container at `index` wrote to stdout and stderr.
    pub async fn logs(&self, index: usize) -> anyhow::Result<String> {
        let options =
            bollard::query_parameters::LogsOptions { stdout: true, stderr: true, ..Default::default() };
        let chunks: Vec<_> = futures_util::TryStreamExt::try_collect(
            self.docker.logs(&self.container_ids[index], Some(options)),
        )
        .await?;
        Ok(chunks.iter().map(ToString::to_string).collect())
    }
}
