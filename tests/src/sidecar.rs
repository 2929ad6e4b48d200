//! Runs the real `ecssd-sidecar` binary as a process beside a test task, wired to moto and the
//! metadata stand-ins exactly as ECS would wire it (environment variables only).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::metadata::MetadataServer;
use crate::moto::Moto;

/// A workspace binary beside this executable (`cargo nextest run --workspace` builds them).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    // Another build's binaries (e.g. main's, to show a new test fails there): ECSSD_TEST_BIN_DIR.
    if let Some(dir) = std::env::var_os("ECSSD_TEST_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        anyhow::ensure!(path.exists(), "{} is missing (ECSSD_TEST_BIN_DIR)", path.display());
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("binary location")?;
    // Test executables live in target/<profile>/deps, binaries in target/<profile>.
    if dir.ends_with("deps") {
        dir = dir.parent().context("binary location")?;
    }
    let path = dir.join(name);
    anyhow::ensure!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    Ok(path)
}

/// A loopback address where no DNS server listens.
pub const NO_RESOLVER: &str = "127.0.0.1:9";

/// A running sidecar process; killed if dropped while running.
#[derive(Debug)]
pub struct Sidecar {
    child: Child,
    /// Every line it logged (JSON), for assertions about what it reported.
    logs: Arc<Mutex<Vec<String>>>,
    /// Reads its standard error into `logs`; ends once the process has exited and its output is read.
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// What a sidecar process is started with, beyond moto and metadata.
#[derive(Debug, Clone, Default)]
pub struct SidecarOptions {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Sidecar {
    /// Starts the sidecar of the task that `metadata` describes, as its container `ecssd`.
    pub async fn spawn(
        moto: &Moto,
        metadata: &MetadataServer,
        options: SidecarOptions,
    ) -> anyhow::Result<Self> {
        Self::spawn_at(moto, &metadata.task_metadata_uri("ecssd"), &metadata.imds_endpoint(), options).await
    }

    /// Starts a sidecar whose task metadata is at `task_metadata_uri` (`ECS_CONTAINER_METADATA_URI_V4`)
    /// and instance metadata at `imds_endpoint`: for a stand-in other than [`MetadataServer`] (the
    /// benchmarks' fleet of tasks without containers).
    pub async fn spawn_at(
        moto: &Moto,
        task_metadata_uri: &str,
        imds_endpoint: &str,
        options: SidecarOptions,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary("ecssd-sidecar")?);
        command
            .args(&options.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ECS_CONTAINER_METADATA_URI_V4", task_metadata_uri)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_endpoint)
            .env("ECSSD_LOG_LEVEL", "info,ecssd_sidecar=debug")
            // Never the machine's resolver (tests touch only loopback): a closed loopback port, where
            // DNS checks find nothing to judge, unless a test serves the zone (`World::serve_dns`).
            .env("ECSSD_RESOLVER", NO_RESOLVER)
            .envs(moto.env())
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().context("starting ecssd-sidecar")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("sidecar stderr")?;
        let sink = logs.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
            }
        });
        Ok(Self { child, logs, reader: Some(reader) })
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether any log line contains all of `needles`, each found in the line as written (JSON) or in
    /// one of its values as logged (quotes unescaped).
    pub fn logged(&self, needles: &[&str]) -> bool {
        self.logs().iter().any(|line| {
            let values = serde_json::from_str(line).map(|v| string_values(&v)).unwrap_or_default();
            needles.iter().all(|n| line.contains(n) || values.iter().any(|v| v.contains(n)))
        })
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("sidecar already exited")?;
        let status =
            std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
        Ok(())
    }

    /// What ECS sends to stop a task.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// A crash: no chance to clean up.
    pub async fn sigkill(mut self) -> anyhow::Result<ExitStatus> {
        self.signal("KILL")?;
        Ok(self.child.wait().await?)
    }

    /// Waits for the process to exit, at most `timeout`; once it has, everything it logged is in
    /// [`logs`](Self::logs).
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .context("sidecar did not exit in time")??;
        if let Some(reader) = self.reader.take() {
            tokio::time::timeout(timeout, reader).await.context("its log was not read to the end")??;
        }
        Ok(status)
    }
}

/// Every string in a JSON value.
fn string_values(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(string_values).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(string_values).collect(),
        _ => vec![],
    }
}

impl Drop for Sidecar {
    /// A failing test shows what the sidecar said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for line in self.logs() {
                eprintln!("[sidecar] {line}");
            }
        }
    }
}
