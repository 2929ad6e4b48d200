//! `ecssd-sidecar`: wires configuration, logging and clients, then runs until SIGTERM.

use std::process::ExitCode;

use ecssd_sidecar::{Config, Deps, LogFormat};

fn main() -> ExitCode {
    let config: Config = ecssd_records::cli::parse();
    init_logging(&config);
    ecssd_records::cli::block_on("ecssd sidecar stopped", start(config))
}

async fn start(config: Config) -> anyhow::Result<()> {
    let docker = bollard::Docker::connect_with_defaults()
        .map_err(|e| ecssd_sidecar::SidecarError::NoDocker(e.to_string()))?;
    let docker =
        docker.negotiate_version().await.map_err(|e| ecssd_sidecar::SidecarError::NoDocker(e.to_string()))?;
    let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region).load().await;
    let deps = Deps { docker, route53: ecssd_records::route53::client(&sdk) };
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

fn init_logging(config: &Config) {
    // Checked by clap (`cli::log_filter`); the fallback is never taken.
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
}
