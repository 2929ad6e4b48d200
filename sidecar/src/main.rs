//! `ecssd-sidecar`: wires configuration, logging and clients, then runs until SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use ecssd_edge::logging::{self, Timestamps};
use ecssd_sidecar::source::{self, Source, SourceClient};
use ecssd_sidecar::{Config, Deps, SidecarError};

fn main() -> ExitCode {
    let config: Config = ecssd_edge::cli::parse();
    logging::init(&config.log_level, config.log_format, Timestamps::Written);
    ecssd_edge::cli::block_on("ecssd sidecar stopped", start(config))
}

async fn start(config: Config) -> anyhow::Result<()> {
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let (source, why) = source::choose(config.source, docker_host.as_deref(), Path::exists);
    let source = match source {
        Source::Docker => SourceClient::Docker(connect_docker().await?),
        Source::Metadata => SourceClient::Metadata,
    };
    let sdk = ecssd_edge::sdk::load().await;
    let deps = Deps { source, source_reason: why, route53: ecssd_edge::route53::client(&sdk) };
    ecssd_sidecar::run(config, deps, shutdown_signal()).await?;
    Ok(())
}

/// A Docker client at `DOCKER_HOST` or the default socket, at the API version the engine speaks.
async fn connect_docker() -> Result<bollard::Docker, SidecarError> {
    let docker =
        bollard::Docker::connect_with_defaults().map_err(|e| SidecarError::NoDocker(e.to_string()))?;
    docker.negotiate_version().await.map_err(|e| SidecarError::NoDocker(e.to_string()))
}

/// Resolves on SIGTERM (ECS stopping the task) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
