//! Where the sidecar learns about its task's containers: the Docker API (EC2 with the socket mounted)
//! or ECS task metadata (Fargate, and EC2 without the socket), and the choice between them.

use std::path::Path;

/// The `--source` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceSetting {
    /// Docker when its socket is there, task metadata otherwise.
    Auto,
    Docker,
    Metadata,
}

/// The source in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Docker,
    Metadata,
}

/// The source in use, with the client it needs: what `main` hands to [`crate::run`].
#[derive(Debug, Clone)]
pub enum SourceClient {
    Docker(bollard::Docker),
    Metadata,
}

impl SourceClient {
    pub fn source(&self) -> Source {
        match self {
            Self::Docker(_) => Source::Docker,
            Self::Metadata => Source::Metadata,
        }
    }
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Metadata => "metadata",
        }
    }
}

/// Docker's default socket, where ECS task definitions mount the host's.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The source to use and why. `auto` takes Docker when its socket is present: the unix socket named by
/// `DOCKER_HOST` (`docker_host`), else Docker's default; any other `DOCKER_HOST` (tcp, ssh) counts as
/// present, since only a connection could tell. Presence, not a first answer, decides: a socket that is
/// there but slow must not silently switch a task to a source that cannot see environment variables.
pub fn choose(
    setting: SourceSetting,
    docker_host: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> (Source, String) {
    match setting {
        SourceSetting::Docker => (Source::Docker, "ECSSD_SOURCE=docker".to_owned()),
        SourceSetting::Metadata => (Source::Metadata, "ECSSD_SOURCE=metadata".to_owned()),
        SourceSetting::Auto => {
            let socket = match docker_host.filter(|host| !host.is_empty()) {
                Some(host) => match host.strip_prefix("unix://") {
                    Some(path) => path.to_owned(),
                    None => return (Source::Docker, format!("DOCKER_HOST={host} is set")),
                },
                None => DEFAULT_SOCKET.to_owned(),
            };
            if exists(Path::new(&socket)) {
                (Source::Docker, format!("the Docker socket {socket} is present"))
            } else {
                (Source::Metadata, format!("no Docker socket at {socket}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_docker_only_where_its_socket_is() {
        let only = |present: &'static str| move |path: &Path| path == Path::new(present);
        let auto = SourceSetting::Auto;
        assert_eq!(choose(auto, None, only("/var/run/docker.sock")).0, Source::Docker);
        assert_eq!(choose(auto, None, only("/elsewhere")).0, Source::Metadata);
        assert_eq!(choose(auto, Some(""), only("/var/run/docker.sock")).0, Source::Docker);
        assert_eq!(choose(auto, Some("unix:///run/d.sock"), only("/run/d.sock")).0, Source::Docker);
        let (source, why) =
            choose(auto, Some("unix:///nonexistent/docker.sock"), only("/var/run/docker.sock"));
        assert_eq!(
            (source, why.as_str()),
            (Source::Metadata, "no Docker socket at /nonexistent/docker.sock")
        );
        assert_eq!(choose(auto, Some("tcp://127.0.0.1:2375"), only("/nothing")).0, Source::Docker);
        // An explicit choice is taken as given.
        assert_eq!(choose(SourceSetting::Docker, None, only("/nothing")).0, Source::Docker);
        assert_eq!(choose(SourceSetting::Metadata, None, only("/var/run/docker.sock")).0, Source::Metadata);
    }
}
