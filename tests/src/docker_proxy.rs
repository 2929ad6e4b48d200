//! A Unix-socket proxy in front of the Docker engine that a test can cut and restore, to show the
//! sidecar riding out a broken event stream or a daemon restart without restarting the real daemon.

use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; dropped, it stops and removes its socket.
#[derive(Debug)]
pub struct DockerProxy {
    path: PathBuf,
    up: watch::Sender<bool>,
    serving: JoinHandle<()>,
}

impl DockerProxy {
    /// Listens on a fresh socket under the temp dir and forwards to `upstream` (e.g. /var/run/docker.sock).
    pub fn start(upstream: &Path) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "ecssd-docker-{}-{}.sock",
            std::process::id(),
            fastrand::u32(..)
        ));
        let listener = UnixListener::bind(&path)?;
        let (up, watch_up) = watch::channel(true);
        let upstream = upstream.to_owned();
        let serving = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*watch_up.borrow() {
                    continue; // cut: the connection is dropped at once, like a daemon that is down
                }
                let upstream = upstream.clone();
                let mut watch_up = watch_up.clone();
                tokio::spawn(async move {
                    let Ok(server) = UnixStream::connect(&upstream).await else { return };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch_up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self { path, up, serving })
    }

    /// `DOCKER_HOST` for a client that should go through the proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Drops every open connection and refuses new ones, as a daemon restart would.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Serves again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.serving.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}
