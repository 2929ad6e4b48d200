//! A moto server on a free loopback port, started from `tests/moto/ecssd_moto.py` (which corrects the
//! divergences listed there) or forked by its fork server, plus SDK configuration pointed at it and the
//! launcher's fault controls.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdout, Command};

use crate::http;

/// Credentials moto accepts; not real ones, never real ones.
const TEST_ACCESS_KEY: &str = "ANOTREALKEY";
const TEST_SECRET_KEY: &str = "not-a-real-secret";
/// The launcher lets requests signed with this key through any injected fault, uncounted.
const OBSERVER_ACCESS_KEY: &str = "ECSSDOBSERVER";

/// The workspace root, where `.tools/` and `tests/moto/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python that has the pinned moto: `ECSSD_PYTHON`, else the venv `scripts/setup` makes.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("ECSSD_PYTHON") {
        return path.into();
    }
    workspace_root().join(".tools/venv/bin/python")
}

/// Where the tests find a moto fork server (a Unix socket path): `scripts/test` starts one for the run
/// and sets this. Unset, every [`Moto`] is a process of its own, about a CPU-second to start.
pub const FORK_SERVER_ENV: &str = "ECSSD_MOTO_FORKS";

/// How long a server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server; dropped, it ends (and it ends by itself if this process dies: its standard
/// input, or its connection to the fork server, closes).
#[derive(Debug)]
pub struct Moto {
    process: MotoProcess,
    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    endpoint: String,
}

#[derive(Debug)]
enum MotoProcess {
    /// Started by this process: killed when dropped.
    Own(Child),
    /// Forked by a fork server: exits when this connection closes.
    Forked { _connection: UnixStream },
}

/// Route53's request rate for the whole account: every API and every client together, a token
/// bucket (Route53 Developer Guide, "Throttling for Amazon Route 53 API requests").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRate {
    /// 5 requests/s with a burst of 5: every account before 2026-07-30 (the Quotas page then).
    Five,
    /// 10 requests/s with a burst of 50: every account since 2026-07-30.
    Ten,
}

impl AccountRate {
    pub fn per_second(self) -> u32 {
        match self {
            Self::Five => 5,
            Self::Ten => 10,
        }
    }

    pub fn burst(self) -> u32 {
        match self {
            Self::Five => 5,
            Self::Ten => 50,
        }
    }
}

impl std::str::FromStr for AccountRate {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "5" => Ok(Self::Five),
            "10" => Ok(Self::Ten),
            other => anyhow::bail!("account rate {other:?}: expected 5 (before 2026-07-30) or 10 (since)"),
        }
    }
}

impl Moto {
    /// Starts a fresh server with empty state, forked by the run's fork server if there is one
    /// ([`FORK_SERVER_ENV`]); waits until it serves.
    pub async fn start() -> anyhow::Result<Self> {
        match std::env::var_os(FORK_SERVER_ENV) {
            Some(socket) => Self::fork_from(Path::new(&socket)).await,
            None => Self::spawn().await,
        }
    }

    /// A fresh server in a process of its own.
    async fn spawn() -> anyhow::Result<Self> {
        let (child, mut lines, endpoint) = launch(&["--port=0".as_ref()], "ECSSD_MOTO_READY ").await?;
        // Keep draining stdout so moto never blocks writing to it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { process: MotoProcess::Own(child), endpoint })
    }

    /// A fresh server forked by the fork server listening at `socket` (see [`MotoForkServer`]).
    pub async fn fork_from(socket: &Path) -> anyhow::Result<Self> {
        let context = || format!("starting moto from the fork server at {}", socket.display());
        let mut stream = UnixStream::connect(socket).await.with_context(context)?;
        stream.write_all(b"[\"--port=0\"]\n").await.with_context(context)?;
        // The forked server writes its ready line and nothing after it.
        let endpoint = ready_line(&mut BufReader::new(&mut stream).lines(), "ECSSD_MOTO_READY ")
            .await
            .with_context(context)?;
        Ok(Self { process: MotoProcess::Forked { _connection: stream }, endpoint })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration for this server: fixed test credentials, us-east-1, endpoint override.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with_key(TEST_ACCESS_KEY)
    }

    /// Like [`sdk_config`](Self::sdk_config), but its requests bypass injected faults and are not
    /// counted: for a test watching the zone while the clients under test are throttled.
    pub fn observer_sdk_config(&self) -> SdkConfig {
        self.sdk_config_with_key(OBSERVER_ACCESS_KEY)
    }

    fn sdk_config_with_key(&self, access_key: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
                Credentials::new(access_key, TEST_SECRET_KEY, None, None, "ecssd-tests-moto"),
            ))
            .build()
    }

    /// Environment for a child process (sidecar, Lambda) to reach this server the standard way.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Throttles or fails requests to a service, replacing that service's previous faults, e.g.
    /// `{"route53": {"rate_per_second": 5, "burst": 5, "errors": [[500, "InternalError"],
    /// [400, "PriorRequestNotComplete", "ChangeResourceRecordSets"]]}}`.
    ///
    /// Throttled requests get HTTP 400 `Throttling` "Rate exceeded". Each `errors` entry fails one
    /// request, in order, with AWS's wire format for the service (so the SDK decodes the modeled
    /// variant):
    /// - `[status, code]`: only AWS's generic errors, which any operation can return: throttling (400
    ///   or 429 with a code in aws-runtime's `THROTTLING_ERRORS`, less the service-specific ones) or a
    ///   server error (500-504 with `InternalError`, `InternalFailure` or `ServiceUnavailable`). It fails
    ///   the service's next request, whatever the operation.
    /// - `[status, code, operation]`: only an error the AWS service model lists for that operation, at
    ///   the model's HTTP status (ECS codes may be given by shape name, e.g. `ServerException`, 500).
    ///   It fails that operation's next request; other operations pass.
    /// - `{"status", "code", "operation"?, "message"?}`: the same, with the error's message chosen.
    ///
    /// Anything else (an invented code such as `PriorRequestInProgress`, a code of another operation,
    /// a status the model does not give the code) is refused: this returns an error naming the entry,
    /// why, and what is allowed, and nothing is configured.
    pub async fn set_faults(&self, faults: serde_json::Value) -> anyhow::Result<()> {
        http::post_json(&format!("{}/_ecssd/faults", self.endpoint), &faults).await.map(drop)
    }

    /// Changes the bed's settings that AWS sets per account or zone, e.g.
    /// `{"route53": {"max_rrsets_per_zone": 10000, "change_processing_ms": 100}}` (the defaults):
    /// - `max_rrsets_per_zone`: records a hosted zone may hold (Route53's default quota, 10,000; NS and
    ///   SOA count); a batch that would exceed it is `InvalidChangeBatch`.
    /// - `change_processing_ms`: how long Route53 is still processing a zone's accepted change; the
    ///   zone's next `ChangeResourceRecordSets` within it gets `PriorRequestNotComplete`. Applies at
    ///   once, also to changes accepted before. `0` turns per-zone serialisation off.
    /// - `account_requests_per_second`, `account_burst`: the account's request rate, every Route53
    ///   request of every client together (see [`AccountRate`]); `0` (the default) is unlimited.
    ///
    /// Unknown settings are refused with an error and nothing changes.
    pub async fn set_limits(&self, limits: serde_json::Value) -> anyhow::Result<()> {
        http::post_json(&format!("{}/_ecssd/limits", self.endpoint), &limits).await.map(drop)
    }

    /// Limits Route53 to the account's request rate, every client together (`None`: unlimited, the
    /// bed's default for tests that are not about it).
    pub async fn set_account_rate(&self, rate: Option<AccountRate>) -> anyhow::Result<()> {
        let (per_second, burst) = rate.map_or((0, 0), |r| (r.per_second(), r.burst()));
        let settings = serde_json::json!({"account_requests_per_second": per_second, "account_burst": burst});
        self.set_limits(serde_json::json!({ "route53": settings })).await
    }

    /// Sets how long Route53 processes each accepted change of a zone (see [`set_limits`](Self::set_limits)).
    pub async fn set_change_processing(&self, window: Duration) -> anyhow::Result<()> {
        let ms = u64::try_from(window.as_millis()).context("window too long")?;
        self.set_limits(serde_json::json!({"route53": {"change_processing_ms": ms}})).await
    }

    /// The bed's current settings: `{"route53": {"max_rrsets_per_zone": n, "change_processing_ms": n,
    /// "account_requests_per_second": n, "account_burst": n}}`.
    pub async fn limits(&self) -> anyhow::Result<serde_json::Value> {
        http::get_json(&format!("{}/_ecssd/limits", self.endpoint)).await
    }

    /// Requests the server saw, per service and operation: `{"route53": {"ListResourceRecordSets":
    /// {"requests": n, "throttled": n, "failed": n}}}`.
    pub async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        http::get_json(&format!("{}/_ecssd/stats", self.endpoint)).await
    }

    /// Requests counted in `stats` (a [`stats`](Self::stats) answer) for `service`'s `operation`, or
    /// for all its operations when `None`.
    pub fn requests(stats: &serde_json::Value, service: &str, operation: Option<&str>) -> u64 {
        let Some(operations) = stats[service].as_object() else { return 0 };
        operations
            .iter()
            .filter(|(name, _)| operation.is_none_or(|o| o == name.as_str()))
            .map(|(_, counts)| counts["requests"].as_u64().unwrap_or_default())
            .sum()
    }

    /// Marks a container instance's ECS agent connected or not (there is no AWS API for this).
    pub async fn set_agent_connected(
        &self,
        cluster: &str,
        container_instance: &str,
        connected: bool,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({"cluster": cluster, "containerInstance": container_instance, "connected": connected});
        http::post_json(&format!("{}/_ecssd/agent", self.endpoint), &body).await.map(drop)
    }

    /// A CloudFormation stack named `name` (of one SQS queue), created through moto's CloudFormation;
    /// returns its StackId.
    pub async fn create_stack(&self, name: &str) -> anyhow::Result<String> {
        let client = aws_sdk_cloudformation::Client::new(&self.observer_sdk_config());
        let template = r#"{"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}"#;
        let created = client.create_stack().stack_name(name).template_body(template).send().await?;
        created.stack_id().map(str::to_owned).context("CreateStack answered no StackId")
    }

    /// Holds the stack in DELETE_IN_PROGRESS, as CloudFormation reports it while it deletes the stack's
    /// resources (moto deletes a stack at once; see ecssd_moto.py, /_ecssd/stack-deleting).
    pub async fn hold_stack_deleting(&self, stack_id: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({"stackId": stack_id});
        http::post_json(&format!("{}/_ecssd/stack-deleting", self.endpoint), &body).await.map(drop)
    }

    /// Creates a private hosted zone for `domain` and returns its id.
    pub async fn create_private_zone(&self, domain: &str) -> anyhow::Result<String> {
        use aws_sdk_route53::types::{HostedZoneConfig, Vpc, VpcRegion};
        // As the observer: setting up the test is not part of what faults slow down or stats count.
        let client = aws_sdk_route53::Client::new(&self.observer_sdk_config());
        let created = client
            .create_hosted_zone()
            .name(domain)
            .caller_reference(format!("ecssd-test-{}", fastrand::u64(..)))
            .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
            .vpc(Vpc::builder().vpc_id("vpc-0ecssd").vpc_region(VpcRegion::UsEast1).build())
            .send()
            .await?;
        let id = created.hosted_zone().map(|z| z.id().trim_start_matches("/hostedzone/").to_owned());
        id.context("CreateHostedZone returned no zone")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let MotoProcess::Own(child) = &mut self.process {
            let _ = child.start_kill();
        }
    }
}

/// A moto fork server (`ecssd_moto.py --fork-server`): imports moto once, then forks a fresh server per
/// [`Moto::fork_from`]. Dropped, it is killed and its socket removed; the servers it forked live on
/// until their connections close.
#[derive(Debug)]
pub struct MotoForkServer {
    _child: Child,
    socket: PathBuf,
}

impl MotoForkServer {
    /// Starts one listening at `socket` (a path short enough for a Unix socket: under 108 bytes).
    pub async fn start(socket: &Path) -> anyhow::Result<Self> {
        let (child, _, _) =
            launch(&["--fork-server".as_ref(), socket.as_os_str()], "ECSSD_MOTO_FORKS_READY ").await?;
        Ok(Self { _child: child, socket: socket.to_owned() })
    }

    /// A fresh server forked from this one.
    pub async fn moto(&self) -> anyhow::Result<Moto> {
        Moto::fork_from(&self.socket).await
    }
}

impl Drop for MotoForkServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Starts `ecssd_moto.py` with `args` (killed when the child is dropped) and waits for its line starting
/// with `ready`; gives the child, the rest of its output and what followed `ready`.
async fn launch(
    args: &[&OsStr],
    ready: &str,
) -> anyhow::Result<(Child, Lines<BufReader<ChildStdout>>, String)> {
    let python = python();
    let mut child = Command::new(&python)
        .arg(workspace_root().join("tests/moto/ecssd_moto.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting moto with {} (run scripts/setup first)", python.display()))?;
    let stdout = child.stdout.take().context("moto stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let rest = ready_line(&mut lines, ready)
        .await
        .with_context(|| format!("starting moto {args:?} (is moto installed for {}?)", python.display()))?;
    Ok((child, lines, rest))
}

/// What follows `prefix` on the first line that starts with it; an `ECSSD_MOTO_ERROR` line, the end of
/// the output or [`READY_TIMEOUT`] first is an error saying so.
async fn ready_line<R: AsyncBufRead + Unpin>(lines: &mut Lines<R>, prefix: &str) -> anyhow::Result<String> {
    let line = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_owned());
            }
            if let Some(problem) = line.strip_prefix("ECSSD_MOTO_ERROR ") {
                bail!("moto refused its options: {problem}");
            }
        }
        bail!("moto exited before it was ready")
    })
    .await;
    line.unwrap_or_else(|_| bail!("moto was not ready within {READY_TIMEOUT:?}"))
}
