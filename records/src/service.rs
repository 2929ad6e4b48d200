//! Parsing of `SERVICE_<port>_NAME=<_service._proto>`, registrator's convention.
//!
//! Each variable is parsed on its own, so one malformed variable yields one error and never hides its
//! siblings.

use std::fmt;
use std::str::FromStr;

/// The transport half of an SRV owner name (`_tcp` or `_udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The protocol as Docker spells it in port keys such as `8080/tcp`.
    pub fn as_docker(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// A validated SRV service name such as `_calc._tcp`, without the domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    /// The service label without its leading underscore, e.g. `calc`.
    service: String,
    /// Which transport the service speaks; it also picks the Docker port binding.
    protocol: Protocol,
}

impl ServiceName {
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "_{}._{}", self.service, self.protocol.as_docker())
    }
}

/// The longest service label we accept: one DNS label, minus its underscore.
const MAX_SERVICE_LABEL: usize = 62;

impl FromStr for ServiceName {
    type Err = String;

    /// Accepts exactly `_name._tcp` or `_name._udp`; the error says what was expected.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected an SRV service name such as `_calc._tcp`: an underscore, \
            lowercase letters, digits or hyphens, then `._tcp` or `._udp`";
        let Some((service, protocol)) = text.split_once('.') else {
            return Err(format!("`{text}` has no protocol part; {EXPECTED}"));
        };
        let protocol = match protocol {
            "_tcp" => Protocol::Tcp,
            "_udp" => Protocol::Udp,
            other if other.contains('.') => {
                return Err(format!(
                    "`{text}` has more than two labels (give only the service, the domain is \
                     appended); {EXPECTED}"
                ));
            }
            other => return Err(format!("`{other}` is not `_tcp` or `_udp`; {EXPECTED}")),
        };
        let Some(label) = service.strip_prefix('_') else {
            return Err(format!("`{service}` must start with an underscore; {EXPECTED}"));
        };
        if label.is_empty() || label.len() > MAX_SERVICE_LABEL {
            return Err(format!(
                "the service label in `{text}` must be 1 to {MAX_SERVICE_LABEL} characters; {EXPECTED}"
            ));
        }
        if let Some(bad) =
            label.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!("`{text}` contains {bad:?}; {EXPECTED}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("`{text}` starts or ends with a hyphen; {EXPECTED}"));
        }
        Ok(Self { service: label.to_owned(), protocol })
    }
}

/// One container port that asked to be published as an SRV service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceBinding {
    /// The port inside the container, as named in `SERVICE_<port>_NAME`.
    pub container_port: u16,
    /// The SRV service it is published under.
    pub service: ServiceName,
}

/// Why one `SERVICE_*_NAME` variable was rejected; the others are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable}={value:?} rejected: {problem}")]
pub struct ServiceEnvError {
    /// The variable's name, so an operator can find it in the task definition.
    pub variable: String,
    /// The value as given.
    pub value: String,
    /// What is wrong and what is expected.
    pub problem: String,
}

/// What the environment of one container asks for: the valid bindings and one error per bad variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEnv {
    /// Valid bindings, sorted by port.
    pub bindings: Vec<ServiceBinding>,
    /// One entry per rejected variable.
    pub errors: Vec<ServiceEnvError>,
}

/// Parses the `SERVICE_<port>_NAME` variables out of a container's `KEY=VALUE` environment.
///
/// Variables that do not start with `SERVICE_` and end with `_NAME` are not ours and are ignored
/// (registrator's `SERVICE_<port>_TAGS` and friends included).
pub fn parse_service_env<'a>(environment: impl IntoIterator<Item = &'a str>) -> ServiceEnv {
    let mut parsed = ServiceEnv::default();
    for entry in environment {
        let (variable, value) = entry.split_once('=').unwrap_or((entry, ""));
        let Some(middle) = variable.strip_prefix("SERVICE_").and_then(|v| v.strip_suffix("_NAME")) else {
            // `SERVICE_NAME` has no port part: registrator's per-container form, which ecssd cannot
            // map to a port, so say so instead of silently ignoring it.
            if variable == "SERVICE_NAME" {
                parsed.errors.push(ServiceEnvError {
                    variable: variable.to_owned(),
                    value: value.to_owned(),
                    problem: "ecssd needs the container port: use SERVICE_<port>_NAME".to_owned(),
                });
            }
            continue;
        };
        let reject = |problem: String| ServiceEnvError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            problem,
        };
        let port = match middle.parse::<u16>() {
            Ok(port) if port > 0 && middle.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => {
                parsed.errors.push(reject(format!(
                    "`{middle}` is not a port: expected SERVICE_<port>_NAME with a port from 1 to 65535"
                )));
                continue;
            }
        };
        match value.parse::<ServiceName>() {
            Ok(service) => parsed.bindings.push(ServiceBinding { container_port: port, service }),
            Err(problem) => parsed.errors.push(reject(problem)),
        }
    }
    parsed.bindings.sort();
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for (text, service, protocol) in [
            ("_calc._tcp", "calc", Protocol::Tcp),
            ("_time._udp", "time", Protocol::Udp),
            ("_a1-b2._tcp", "a1-b2", Protocol::Tcp),
            ("_9._tcp", "9", Protocol::Tcp),
        ] {
            let name: ServiceName = text.parse().expect(text);
            assert_eq!((name.service(), name.protocol()), (service, protocol), "{text}");
            assert_eq!(name.to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed_names_with_a_reason() {
        for (text, reason) in [
            ("calc", "no protocol part"),
            ("", "no protocol part"),
            ("calc._tcp", "must start with an underscore"),
            ("_calc._sctp", "is not `_tcp` or `_udp`"),
            ("_calc.tcp", "is not `_tcp` or `_udp`"),
            ("_Calc._tcp", "contains 'C'"),
            ("_ca_lc._tcp", "contains '_'"),
            ("_ca lc._tcp", "contains ' '"),
            ("_-calc._tcp", "hyphen"),
            ("_calc-._tcp", "hyphen"),
            ("__tcp._tcp", "contains '_'"),
            ("_._tcp", "1 to 62"),
            ("_calc._tcp.servicediscovery.internal", "more than two labels"),
            ("_calc._tcp.", "more than two labels"),
            ("_cälc._tcp", "contains 'ä'"),
        ] {
            let err = text.parse::<ServiceName>().expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.contains("expected an SRV service name"), "{text}: {err}");
        }
        let long = format!("_{}._tcp", "a".repeat(63));
        assert!(long.parse::<ServiceName>().is_err());
        let longest = format!("_{}._tcp", "a".repeat(62));
        assert!(longest.parse::<ServiceName>().is_ok());
    }

    #[test]
    fn one_bad_variable_leaves_its_siblings() {
        let env = parse_service_env([
            "PATH=/bin",
            "SERVICE_8080_NAME=_calc._tcp",
            "SERVICE_80_NAME=calc",
            "SERVICE_53_NAME=_dns._udp",
            "SERVICE_http_NAME=_web._tcp",
            "SERVICE_0_NAME=_zero._tcp",
            "SERVICE_65536_NAME=_big._tcp",
            "SERVICE_+80_NAME=_plus._tcp",
            "SERVICE_8080_TAGS=ignored",
            "SERVICE_NAME=_whole._tcp",
            "SERVICE_9000_NAME",
            "SERVICE_9001_NAME=",
        ]);
        let ports: Vec<_> = env.bindings.iter().map(|b| (b.container_port, b.service.to_string())).collect();
        assert_eq!(ports, [(53, "_dns._udp".to_owned()), (8080, "_calc._tcp".to_owned())]);
        let rejected: Vec<_> = env.errors.iter().map(|e| e.variable.as_str()).collect();
        assert_eq!(
            rejected,
            [
                "SERVICE_80_NAME",
                "SERVICE_http_NAME",
                "SERVICE_0_NAME",
                "SERVICE_65536_NAME",
                "SERVICE_+80_NAME",
                "SERVICE_NAME",
                "SERVICE_9000_NAME",
                "SERVICE_9001_NAME",
            ]
        );
        let message = env.errors[0].to_string();
        assert!(message.starts_with("environment variable SERVICE_80_NAME=\"calc\" rejected:"), "{message}");
        assert!(env.errors[1].to_string().contains("port from 1 to 65535"));
    }
}
