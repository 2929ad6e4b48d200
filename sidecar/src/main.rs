//! `ecssd-sidecar`: wires configuration, logging and clients, then runs until SIGTERM.

use std::process::ExitCode;

use ecssd_edge::logging::{self, Timestamps};
use ecssd_sidecar::{Config, Deps};

fn main() -> ExitCode {
    let config: Config = ecssd_edge::cli::parse();
    logging::init(&config.log_level, config.log_format, Timestamps::Written);
    ecssd_edge::cli::block_on("ecssd sidecar stopped", start(config))
}

async fn start(config: Config) -> anyhow::Result<()> {
    let docker = bollard::Docker::connect_with_defaults()
        .map_err(|e| ecssd_sidecar::SidecarError::NoDocker(e.to_string()))?;
    let docker =
        docker.negotiate_version().await.map_err(|e| ecssd_sidecar::SidecarError::NoDocker(e.to_string()))?;
    let sdk = ecssd_edge::sdk::load().await;
    let deps = Deps { docker, route53: ecssd_edge::route53::client(&sdk) };
    ecssd_sidecar::run(config, deps, shutdown_signal()).await?;
    Ok(())
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
