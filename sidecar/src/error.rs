//! The sidecar's errors, split the way its behaviour splits: permanent ones end the process with a
//! clear message (ECS then shows the task as failed); transient ones are retried where they occur.

use ecssd_records::{CallError, MissingFamily};

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("no task metadata: {0}")]
    NoTaskMetadata(String),
    #[error("cannot learn the host's address: {0}")]
    NoHostAddress(String),
    #[error("cannot publish the addresses asked for: {0}")]
    AddressFamily(#[from] MissingFamily),
    #[error(
        "ECSSD_ADDRESS_FAMILY=dual in bridge mode: Docker may map a container port to one host port on \
         IPv4 and another on IPv6 (aws/amazon-ecs-agent issue 3096), and an SRV record carries one port, so \
         a bridge-mode task publishes one family (`ipv4` or `ipv6`); host and awsvpc modes publish both"
    )]
    BridgeFamily,
    #[error(
        "cannot use the Docker socket: {0} (mount /var/run/docker.sock into the sidecar or set DOCKER_HOST; \
         or ECSSD_SOURCE=metadata to read the task's containers from ECS task metadata, labels only)"
    )]
    NoDocker(String),
    #[error("cannot see the task's containers: {0}")]
    Source(String),
    #[error("Route53: {0}")]
    Route53(#[from] CallError),
    #[error("the records of this task conflict with records ecssd does not own: {0}")]
    ForeignRecords(String),
}
