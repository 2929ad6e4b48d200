//! `ecssd-sidecar`: wires configuration, logging and clients, then runs until SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind};

use ecssd_edge::logging::{self, Timestamps};
use ecssd_sidecar::host_address::{HostLookup, METADATA_FILE_VARIABLE};
use ecssd_sidecar::registration_queue::RegistrationQueue;
use ecssd_sidecar::source::{self, Source, SourceClient};
use ecssd_sidecar::{Config, Deps, SidecarError};

fn main() -> ExitCode {
    let config: Config = ecssd_edge::cli::parse();
    logging::init(&config.log_level, config.log_format, Timestamps::Written);
    ecssd_edge::cli::block_on("ecssd sidecar stopped", start(config))
}

/// One attempt at handing a registration to the queue: SQS answers within milliseconds, and a sidecar
/// that cannot hand over retries Route53 itself.
const QUEUE_ATTEMPT: Duration = Duration::from_secs(2);

async fn start(config: Config) -> anyhow::Result<()> {
    // First: from here on a stop signal is the sidecar's to handle, and one that could not hear it
    // must not start (it could never withdraw what it registers).
    let shutdown = shutdown_signal(tokio::signal::unix::signal)?;
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let (source, why) = source::choose(config.source, docker_host.as_deref(), Path::exists);
    let source = match source {
        Source::Docker => SourceClient::Docker(connect_docker().await?),
        Source::Metadata => SourceClient::Metadata,
    };
    let sdk = ecssd_edge::sdk::load().await;
    // Asked only when no other source gives the host's address; one attempt answers quickly or not at
    // all, and `host_address` retries within the start-up wait.
    let api_sdk = ecssd_edge::sdk::for_our_retries(&sdk, Duration::from_secs(10));
    let host = HostLookup::new(
        std::env::var_os(METADATA_FILE_VARIABLE).map(PathBuf::from),
        aws_sdk_ecs::Client::new(&api_sdk),
        aws_sdk_ec2::Client::new(&api_sdk),
    );
    let queue =
        config.registration_queue_url.clone().map(|url| RegistrationQueue::new(&sdk, url, QUEUE_ATTEMPT));
    let deps = Deps { source, source_reason: why, route53: ecssd_edge::route53::client(&sdk), host, queue };
    ecssd_sidecar::run(config, deps, shutdown).await?;
    Ok(())
}

/// A Docker client at `DOCKER_HOST` or the default socket, at the API version the engine speaks.
async fn connect_docker() -> Result<bollard::Docker, SidecarError> {
    let docker =
        bollard::Docker::connect_with_defaults().map_err(|e| SidecarError::NoDocker(e.to_string()))?;
    docker.negotiate_version().await.map_err(|e| SidecarError::NoDocker(e.to_string()))
}

/// Installs, with `install`, the handlers of SIGTERM (ECS stopping the task) and SIGINT (Ctrl-C), and
/// returns what resolves on either signal, and on nothing else. Installing them is a step of the start,
/// before anything is registered: without SIGTERM's the sidecar could never withdraw its records, so
/// that fails the start; without SIGINT's, only Ctrl-C is lost.
fn shutdown_signal(
    mut install: impl FnMut(SignalKind) -> std::io::Result<Signal>,
) -> anyhow::Result<impl Future<Output = ()>> {
    let mut term = install(SignalKind::terminate()).context(
        "cannot install a SIGTERM handler, without which the task's records could not be withdrawn",
    )?;
    let mut int = install(SignalKind::interrupt())
        .inspect_err(
            |e| tracing::warn!(error = %e, "cannot install a SIGINT handler: only SIGTERM stops the sidecar"),
        )
        .ok();
    Ok(async move {
        let interrupted = async {
            match int.as_mut() {
                Some(int) => int.recv().await,
                None => None,
            }
        };
        // `recv` gives None only once the runtime's signal driver is gone: that is no signal.
        tokio::select! {
            Some(()) = term.recv() => {}
            Some(()) = interrupted => {}
            else => std::future::pending().await,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn refused(kind: SignalKind) -> std::io::Error {
        std::io::Error::other(format!("{kind:?} refused"))
    }

    #[test]
    fn no_sigterm_handler_fails_the_start() {
        let failed = shutdown_signal(|kind| Err(refused(kind))).map(|_| ()).expect_err("the start fails");
        assert!(format!("{failed:#}").contains("cannot install a SIGTERM handler"), "{failed:#}");
    }

    /// Without a SIGINT handler the future waits for SIGTERM, and resolves on it alone (before, a
    /// failed install fell back to `ctrl_c()`, whose own failure resolved it at once: a withdrawal and
    /// exit right after the start).
    #[tokio::test]
    async fn without_a_sigint_handler_only_sigterm_resolves_the_future() {
        let only_term = |kind: SignalKind| {
            if kind == SignalKind::interrupt() {
                Err(refused(kind))
            } else {
                tokio::signal::unix::signal(kind)
            }
        };
        let mut shutdown = std::pin::pin!(shutdown_signal(only_term).expect("SIGTERM's handler"));
        let early = tokio::time::timeout(Duration::from_millis(300), &mut shutdown).await;
        assert!(early.is_err(), "resolved with no signal");
        // The handler is installed: this SIGTERM reaches the future, not the default action.
        let sent = std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", std::process::id())])
            .status()
            .expect("kill");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("resolved by SIGTERM");
    }
}
