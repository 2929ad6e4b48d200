//! Runs the real sweeper binary (`bootstrap`) against moto: once from a shell (`--once`), the way an
//! operator would, or as the function of a local Lambda runtime API emulator (`cargo lambda watch
//! --only-lambda-apis`) invoked with a scheduled event, the way EventBridge does.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use std::time::{SystemTime, UNIX_EPOCH};

use ecssd_edge::Route53Zone;
use ecssd_records::{Change, Record, RecordKey, RecordSet, RecordStore, RecordType, RetryPolicy};

use crate::ecs::{Fleet, Host, PlacedTask, ServingTask, seed};
use crate::endpoints::Behaviour;
use crate::moto::{Moto, workspace_root};
use crate::sidecar::binary;
use crate::world::DOMAIN;

/// What one shell-mode sweep printed and how it ended.
#[derive(Debug)]
pub struct ShellSweep {
    pub success: bool,
    /// The report: the last line of standard output.
    pub report: serde_json::Value,
    /// Every line of standard output (EMF metric lines, then the report).
    pub stdout: Vec<String>,
    pub stderr: String,
}

/// What every sweeper test starts from: moto, its private zone (read and seeded as an observer, so the
/// sweeper's own calls are what faults and stats see) and ECS/EC2.
#[derive(Debug)]
pub struct SweepBed {
    pub moto: Moto,
    pub zone: Route53Zone,
    pub fleet: Fleet,
}

impl SweepBed {
    pub async fn start() -> anyhow::Result<Self> {
        let moto = Moto::start().await?;
        moto.create_private_zone(DOMAIN).await?;
        let client = ecssd_edge::route53::client(&moto.observer_sdk_config());
        let zone = Route53Zone::find(client, DOMAIN.parse()?, RetryPolicy::default()).await?;
        let fleet = Fleet::new(&moto).await?;
        Ok(Self { moto, zone, fleet })
    }

    /// Every record in the zone, in a stable order.
    pub async fn records(&self) -> anyhow::Result<Vec<Record>> {
        let mut records = self.zone.list_all().await?;
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(records)
    }

    /// Records whose name, set identifier or value mentions the task's id.
    pub async fn records_of(&self, task: &PlacedTask) -> anyhow::Result<Vec<Record>> {
        Ok(self.records().await?.into_iter().filter(|r| mentions(r, task)).collect())
    }

    /// Whether every record of `set` is in the zone with exactly its values.
    pub async fn holds(&self, set: &RecordSet) -> anyhow::Result<bool> {
        let records = self.records().await?;
        Ok(set.iter().all(|r| records.contains(r)))
    }

    /// Whether `record` is in the zone with exactly its values (one read by name).
    pub async fn holds_record(&self, record: &Record) -> anyhow::Result<bool> {
        Ok(self.zone.read(&record.key).await?.as_ref() == Some(record))
    }

    /// `count` tasks on `host` serving `service` from endpoints that behave as told, their records
    /// (agreeing with ECS) in the zone.
    pub async fn serving(
        &self,
        host: &Host,
        service: &'static str,
        behaviour: Behaviour,
        count: usize,
    ) -> anyhow::Result<Vec<ServingTask>> {
        let mut served = Vec::with_capacity(count);
        for _ in 0..count {
            let task = self.fleet.serving_task(host, service, behaviour).await?;
            seed(&self.zone, vec![task.records.clone()]).await?;
            served.push(task);
        }
        Ok(served)
    }

    /// `count` running tasks on `host` with the records their sidecars write for `_web._tcp` (no
    /// endpoint listens).
    pub async fn registered(&self, host: &Host, count: usize) -> anyhow::Result<Vec<PlacedTask>> {
        let tasks = self.fleet.start_tasks(host, count).await?;
        for task in &tasks {
            let records = self.fleet.sidecar_records(task, "_web._tcp").await?;
            seed(&self.zone, vec![records]).await?;
        }
        Ok(tasks)
    }

    /// Makes the marker of `host`'s disconnected agent say it has been disconnected for `seconds`
    /// (rewriting its `since=`), as if that much time had passed since the sweep that wrote it.
    /// Returns the marker as it is now.
    pub async fn age_agent_marker(&self, host: &Host, seconds: u64) -> anyhow::Result<Record> {
        let id = host.container_instance_arn.rsplit('/').next().unwrap_or_default();
        let prefix = format!("_ecssd-agent.{id}.");
        let marker = self.records().await?.into_iter().find(|r| r.key.name.starts_with(&prefix));
        let marker = marker.with_context(|| format!("no marker {prefix}* for the disconnected agent"))?;
        let since = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() - seconds;
        let values = marker.values().iter().map(|v| with_since(v, since)).collect();
        let earlier = Record::new(marker.key.clone(), marker.ttl, values);
        anyhow::ensure!(earlier != marker, "the marker {} has no since= to rewrite", marker.key);
        self.zone.apply(&[Change::delete(marker), Change::create(earlier.clone())]).await?;
        Ok(earlier)
    }

    /// The sweeper's environment on this bed, plus `extra`.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = base_env(&self.moto);
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    }
}

/// The task ids a sweep report's findings (`stopped`, `unhealthy`, ...) name, sorted.
pub fn task_ids(findings: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = findings
        .as_array()
        .expect("a report's findings are a list")
        .iter()
        .map(|f| f["task"].as_str().expect("a finding names its task"))
        .map(|task| task.rsplit('/').next().unwrap_or(task).to_owned())
        .collect();
    ids.sort();
    ids
}

/// Whether `record`'s name, set identifier or value mentions the task's id.
pub fn mentions(record: &Record, task: &PlacedTask) -> bool {
    let id = task.id();
    record.key.name.contains(id)
        || record.key.set_identifier.as_deref().is_some_and(|s| s.contains(id))
        || record.values().iter().any(|v| v.contains(id))
}

/// `value` with the number after `since=` replaced.
fn with_since(value: &str, since: u64) -> String {
    let Some(start) = value.find("since=").map(|i| i + "since=".len()) else { return value.to_owned() };
    let end = value[start..].find(|c: char| !c.is_ascii_digit()).map_or(value.len(), |n| start + n);
    format!("{}{since}{}", &value[..start], &value[end..])
}

/// Configuration every sweep in the tests shares: this zone, quick health checks.
pub fn base_env(moto: &Moto) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = moto.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.push(("ECSSD_DOMAIN".into(), DOMAIN.into()));
    env.push(("ECSSD_LOG_LEVEL".into(), "info".into()));
    // The bed's sweeper runs beside the tasks, as one in their VPC does: their endpoints are on loopback.
    env.push(("ECSSD_REACHES_TASKS".into(), "true".into()));
    env
}

/// Runs `bootstrap --once` with `env` (on top of nothing: the environment is cleared) and `args`.
pub async fn sweep_once(env: &[(String, String)], args: &[&str]) -> anyhow::Result<ShellSweep> {
    sweep_once_within(env, args, Duration::from_secs(120)).await?.context("sweep hung")
}

/// As [`sweep_once`], killing the sweep after `limit`: `None` when it was still running then.
pub async fn sweep_once_within(
    env: &[(String, String)],
    args: &[&str],
    limit: Duration,
) -> anyhow::Result<Option<ShellSweep>> {
    let output = Command::new(binary("bootstrap")?)
        .arg("--once")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let Ok(output) = tokio::time::timeout(limit, output).await else { return Ok(None) };
    let output = output?;
    let stdout: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(String::from).collect();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = match stdout.last() {
        Some(line) => serde_json::from_str(line).with_context(|| format!("report line: {line}"))?,
        None => serde_json::Value::Null,
    };
    Ok(Some(ShellSweep { success: output.status.success(), report, stdout, stderr }))
}

/// The Lambda runtime API emulator (`cargo lambda watch --only-lambda-apis`) on a loopback port, and
/// the workspace-built sweeper (`bootstrap`, as `--once` runs it) serving it as the function: nothing
/// is compiled for the test. Both are stopped when dropped.
#[derive(Debug)]
pub struct LambdaEmulator {
    emulator: Child,
    function: Child,
    pub port: u16,
    /// The name the emulator serves the function under (`AWS_LAMBDA_FUNCTION_NAME`, `_`).
    function_name: String,
    /// The emulator's output and the function's, shown when a test fails.
    emulator_log: PathBuf,
    function_log: PathBuf,
}

/// `cargo` with `cargo-lambda` (from the venv `scripts/setup` makes) on its PATH, and without what the
/// test runner adds to the environment (`CARGO_*`, `NEXTEST_*`, `LD_LIBRARY_PATH`): cargo-lambda runs
/// `cargo metadata` even when it builds nothing, and a nested cargo should see this machine's cargo
/// setup, not the settings of the build that runs the tests.
fn cargo() -> Command {
    let venv = workspace_root().join(".tools/venv/bin");
    let mut command = Command::new("cargo");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let added_by_runner = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.contains("NEXTEST")
            || key == "LD_LIBRARY_PATH"
            || key.starts_with("RUST_TEST");
        if added_by_runner {
            command.env_remove(key.as_ref());
        }
    }
    command.env("PATH", format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default()));
    command
}

/// The line `cargo lambda watch` prints once its runtime API listens.
const EMULATOR_READY: &str = "starting Runtime server";

impl LambdaEmulator {
    /// Starts the emulator, then `bootstrap` with `env` (on top of nothing: the environment is cleared)
    /// and the `AWS_LAMBDA_*` variables the emulator prints for its function.
    pub async fn start(env: &[(String, String)]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let emulator_log = std::env::temp_dir().join(format!("ecssd-lambda-{port}.log"));
        let output = std::fs::File::create(&emulator_log)?;
        // The package directory: cargo-lambda reads its manifest even when it starts no function.
        let mut emulator = cargo()
            .current_dir(workspace_root().join("lambda"))
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes", "--color", "never"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .context("starting cargo lambda watch (run scripts/setup first)")?;
        let lambda_env = emulator_ready(&mut emulator, &emulator_log, port).await?;
        let function_name = lambda_env
            .iter()
            .find_map(|(k, v)| (k == "AWS_LAMBDA_FUNCTION_NAME").then(|| v.clone()))
            .unwrap_or_else(|| "_".to_owned());

        let function_log = std::env::temp_dir().join(format!("ecssd-lambda-{port}-function.log"));
        let output = std::fs::File::create(&function_log)?;
        let function = Command::new(binary("bootstrap")?)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(lambda_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .context("starting bootstrap")?;
        Ok(Self { emulator, function, port, function_name, emulator_log, function_log })
    }

    /// The emulator's Lambda Invoke API for the function (a POST of the payload answers with the
    /// function's answer): what `cargo lambda invoke` calls, without starting a process each time.
    pub fn invoke_url(&self) -> String {
        format!("http://127.0.0.1:{}/2015-03-31/functions/{}/invocations", self.port, self.function_name)
    }

    /// What the function has logged so far (its standard output and error).
    pub fn function_output(&self) -> String {
        std::fs::read_to_string(&self.function_log).unwrap_or_default()
    }
}

/// Waits until the emulator's runtime API accepts connections; returns the `AWS_LAMBDA_*` variables
/// it printed for the function (e.g. `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:<port>/.rt`).
async fn emulator_ready(
    emulator: &mut Child,
    log: &std::path::Path,
    port: u16,
) -> anyhow::Result<Vec<(String, String)>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = emulator.try_wait()? {
            bail!("cargo lambda watch exited ({status}): {output}");
        }
        if output.contains(EMULATOR_READY)
            && tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        {
            let env = lambda_env(&output);
            anyhow::ensure!(
                env.iter().any(|(k, _)| k == "AWS_LAMBDA_RUNTIME_API"),
                "cargo lambda watch named no AWS_LAMBDA_RUNTIME_API: {output}"
            );
            return Ok(env);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("cargo lambda watch not ready after 60 s: {output}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `AWS_LAMBDA_*=...` lines of the emulator's output (` INFO AWS_LAMBDA_FUNCTION_NAME=_`).
fn lambda_env(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("INFO").unwrap_or(line).trim().split_once('='))
        .filter(|(key, _)| key.starts_with("AWS_LAMBDA_") && !key.contains(char::is_whitespace))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[cargo lambda watch] {}",
                std::fs::read_to_string(&self.emulator_log).unwrap_or_default()
            );
            eprintln!("[bootstrap] {}", std::fs::read_to_string(&self.function_log).unwrap_or_default());
        }
        let _ = self.function.start_kill();
        let _ = self.emulator.start_kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `cargo lambda invoke` with `payload` against the emulator; returns the function's answer. Fails if
/// none comes within 120 s.
pub async fn invoke(
    emulator: &LambdaEmulator,
    payload: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let output = cargo()
        .current_dir(workspace_root().join("lambda"))
        .args(["lambda", "invoke", &emulator.function_name, "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &emulator.port.to_string(), "--output-format", "json"])
        .arg("--data-ascii")
        .arg(payload.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .context("the function did not answer within 120 s")?
        .context("running cargo lambda invoke")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("cargo lambda invoke failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_str(stdout.trim()).with_context(|| format!("invoke answer: {stdout}"))
}

/// A scheduled event as EventBridge delivers it to the function.
pub fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-25T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ecssd-sweep"],
        "detail": {}
    })
}

/// The key of record `name` (relative to the test domain) of `record_type`.
pub fn key(name: &str, record_type: RecordType, set_identifier: Option<&str>) -> RecordKey {
    RecordKey {
        name: format!("{name}.{DOMAIN}."),
        record_type,
        set_identifier: set_identifier.map(String::from),
    }
}

/// Records ecssd must never touch: look-alikes included.
pub fn foreign_records() -> Vec<Record> {
    vec![
        Record::new(key("db", RecordType::A, None), 300, vec!["10.9.9.9".into()]),
        Record::new(key("_ecssd.look-alike", RecordType::Txt, None), 300, vec!["\"v=spf1 -all\"".into()]),
        Record::new(
            key("_web._tcp", RecordType::Srv, Some("manual")),
            300,
            vec!["1 1 80 db.servicediscovery.internal".into()],
        ),
        Record::new(key("_ecssd-agent.abc", RecordType::Txt, None), 60, vec!["\"since=1\"".into()]),
    ]
}
