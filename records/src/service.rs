//! Parsing of `SERVICE_<port>_NAME=<_service._proto>`, registrator's convention.
//!
//! Each variable is parsed on its own, so one malformed variable yields one error and never hides its
//! siblings.

use std::collections::{BTreeMap, BTreeSet};
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

/// Where a container's setting was given: the task definition's `environment` or its `dockerLabels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettingOrigin {
    EnvironmentVariable,
    Label,
}

impl fmt::Display for SettingOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EnvironmentVariable => "environment variable",
            Self::Label => "label",
        })
    }
}

/// Why one `SERVICE_*` setting was rejected; the others are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} {variable}={value:?} rejected: {problem}")]
pub struct ServiceEnvError {
    /// Where the setting was given, so an operator looks in the right part of the task definition.
    pub origin: SettingOrigin,
    /// The setting's name, so an operator can find it in the task definition.
    pub variable: String,
    /// The value as given.
    pub value: String,
    /// What is wrong and what is expected.
    pub problem: String,
}

/// What the settings of one container ask for: the valid bindings and one error per bad setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEnv {
    /// Valid bindings, sorted by port; none when the container is ignored.
    pub bindings: Vec<ServiceBinding>,
    /// One entry per rejected setting.
    pub errors: Vec<ServiceEnvError>,
}

/// A container's `SERVICE_*` settings from its environment and its labels. As in registrator, a
/// label overrides an environment variable of the same name: labels are the only settings ECS task
/// metadata shows, and they are set beside the image's environment, for this one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSettings {
    by_name: BTreeMap<String, (String, SettingOrigin)>,
}

impl ContainerSettings {
    /// `environment` as `KEY=VALUE` entries, `labels` as pairs; settings other than `SERVICE_*` are
    /// not kept.
    pub fn new<'a>(
        environment: impl IntoIterator<Item = &'a str>,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let environment = environment
            .into_iter()
            .map(|entry| entry.split_once('=').unwrap_or((entry, "")))
            .map(|(name, value)| (name, value, SettingOrigin::EnvironmentVariable));
        let labels = labels.into_iter().map(|(name, value)| (name, value, SettingOrigin::Label));
        let by_name = environment
            .chain(labels)
            .filter(|(name, _, _)| name.starts_with("SERVICE_"))
            .map(|(name, value, origin)| (name.to_owned(), (value.to_owned(), origin)))
            .collect();
        Self { by_name }
    }

    /// What these settings ask to publish: `SERVICE_<port>_NAME` bindings, less what
    /// `SERVICE_IGNORE` (the whole container) and `SERVICE_<port>_IGNORE` (one port) leave out.
    pub fn services(&self) -> ServiceEnv {
        let mut parsed = ServiceEnv::default();
        let mut ignored_ports = BTreeSet::new();
        let mut ignore_all = false;
        for (variable, (value, origin)) in &self.by_name {
            let reject = |problem: String| ServiceEnvError {
                origin: *origin,
                variable: variable.clone(),
                value: value.clone(),
                problem,
            };
            let Some(rest) = variable.strip_prefix("SERVICE_") else { continue };
            if rest == "IGNORE" {
                ignore_all |= is_ignored(value).unwrap_or_else(|problem| {
                    parsed.errors.push(reject(problem));
                    true
                });
                continue;
            }
            if let Some(port) = rest.strip_suffix("_IGNORE") {
                match (parse_port(port), is_ignored(value)) {
                    (Ok(port), Ok(ignored)) => {
                        if ignored {
                            ignored_ports.insert(port);
                        }
                    }
                    (Err(problem), _) => parsed.errors.push(reject(format!("{problem}_IGNORE"))),
                    (Ok(port), Err(problem)) => {
                        parsed.errors.push(reject(problem));
                        ignored_ports.insert(port);
                    }
                }
                continue;
            }
            if rest == "NAME" {
                // registrator's per-container form, which ecssd cannot map to a port: say so instead of
                // silently ignoring it.
                parsed.errors.push(reject("ecssd needs the container port: use SERVICE_<port>_NAME".into()));
                continue;
            }
            // Variables other than `_NAME` are not ours (registrator's `SERVICE_<port>_TAGS`...).
            let Some(port) = rest.strip_suffix("_NAME") else { continue };
            let port = match parse_port(port) {
                Ok(port) => port,
                Err(problem) => {
                    parsed.errors.push(reject(format!("{problem}_NAME")));
                    continue;
                }
            };
            match value.parse::<ServiceName>() {
                Ok(service) => parsed.bindings.push(ServiceBinding { container_port: port, service }),
                Err(problem) => parsed.errors.push(reject(problem)),
            }
        }
        if ignore_all {
            // An ignored container is not ecssd's business: its other settings are not judged either.
            parsed.bindings.clear();
            parsed.errors.retain(|e| e.variable == "SERVICE_IGNORE");
        }
        parsed.bindings.retain(|b| !ignored_ports.contains(&b.container_port));
        parsed.errors.retain(|e| {
            port_of(&e.variable)
                .is_none_or(|port| !ignored_ports.contains(&port) || e.variable.ends_with("_IGNORE"))
        });
        parsed.bindings.sort();
        parsed
    }
}

/// The port in `SERVICE_<port>_NAME` or `SERVICE_<port>_IGNORE`, if it is one.
fn port_of(variable: &str) -> Option<u16> {
    let rest = variable.strip_prefix("SERVICE_")?;
    let port = rest.strip_suffix("_NAME").or_else(|| rest.strip_suffix("_IGNORE"))?;
    parse_port(port).ok()
}

/// A port as `SERVICE_<port>_...` gives it: 1 to 65535, digits only.
fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("`{text}` is not a port: expected a port from 1 to 65535 in SERVICE_<port>")),
    }
}

/// Whether an `_IGNORE` value asks to ignore. registrator ignores on any non-empty value; ecssd also
/// reads `false` as false, and takes a value it cannot read as "ignore" (publishing what an operator
/// may have meant to hide is the worse mistake), reporting it.
fn is_ignored(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err("expected true, 1 or yes (ignore) or false, 0, no or empty (do not); ignored until \
                  it says which"
            .to_owned()),
    }
}

/// Parses the `SERVICE_*` variables of a container's `KEY=VALUE` environment (no labels).
pub fn parse_service_env<'a>(environment: impl IntoIterator<Item = &'a str>) -> ServiceEnv {
    ContainerSettings::new(environment, []).services()
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
        // In name order, each once.
        assert_eq!(
            rejected,
            [
                "SERVICE_+80_NAME",
                "SERVICE_0_NAME",
                "SERVICE_65536_NAME",
                "SERVICE_80_NAME",
                "SERVICE_9000_NAME",
                "SERVICE_9001_NAME",
                "SERVICE_NAME",
                "SERVICE_http_NAME",
            ]
        );
        let message = env.errors[3].to_string();
        assert!(message.starts_with("environment variable SERVICE_80_NAME=\"calc\" rejected:"), "{message}");
        assert!(env.errors[0].to_string().contains("port from 1 to 65535"));
    }

    fn published(settings: &ContainerSettings) -> Vec<String> {
        settings.services().bindings.iter().map(|b| format!("{} {}", b.container_port, b.service)).collect()
    }

    #[test]
    fn a_label_overrides_the_environment_variable_of_the_same_name() {
        let settings = ContainerSettings::new(
            ["SERVICE_80_NAME=_old._tcp", "SERVICE_81_NAME=_env._tcp", "PATH=/bin"],
            [("SERVICE_80_NAME", "_new._tcp"), ("com.amazonaws.ecs.task-arn", "arn")],
        );
        assert_eq!(published(&settings), ["80 _new._tcp", "81 _env._tcp"]);
        let bad = ContainerSettings::new(["SERVICE_80_NAME=_ok._tcp"], [("SERVICE_80_NAME", "web")]);
        let services = bad.services();
        assert!(services.bindings.is_empty(), "the label wins, even when it is wrong");
        let message = services.errors[0].to_string();
        assert!(message.starts_with("label SERVICE_80_NAME=\"web\" rejected:"), "{message}");
    }

    #[test]
    fn ignore_settings_skip_a_container_or_a_port() {
        let names = ["SERVICE_80_NAME=_web._tcp", "SERVICE_81_NAME=_admin._tcp"];
        for yes in ["true", "TRUE", "1", "yes", " Yes "] {
            let whole = ContainerSettings::new(names, [("SERVICE_IGNORE", yes)]);
            assert_eq!(published(&whole), Vec::<String>::new(), "{yes:?}");
            let port = ContainerSettings::new(names, [("SERVICE_81_IGNORE", yes)]);
            assert_eq!(published(&port), ["80 _web._tcp"], "{yes:?}");
        }
        for no in ["false", "0", "no", ""] {
            let whole = ContainerSettings::new(names, [("SERVICE_IGNORE", no)]);
            assert_eq!(published(&whole).len(), 2, "{no:?}");
            assert!(whole.services().errors.is_empty());
        }
        // An ignored container's other settings are not judged; an ignored port's neither.
        let whole = ContainerSettings::new(["SERVICE_80_NAME=web", "SERVICE_IGNORE=true"], []);
        assert!(whole.services().errors.is_empty());
        let port = ContainerSettings::new(["SERVICE_80_NAME=web", "SERVICE_80_IGNORE=1"], []);
        assert_eq!(port.services(), ServiceEnv::default());
    }

    #[test]
    fn an_unreadable_ignore_value_is_reported_and_ignores() {
        let names = ["SERVICE_80_NAME=_web._tcp", "SERVICE_81_NAME=_admin._tcp"];
        let whole = ContainerSettings::new(names, [("SERVICE_IGNORE", "maybe")]).services();
        assert!(whole.bindings.is_empty());
        let message = whole.errors[0].to_string();
        assert!(message.starts_with("label SERVICE_IGNORE=\"maybe\" rejected: expected true"), "{message}");
        let port = ContainerSettings::new(names, [("SERVICE_81_IGNORE", "off")]).services();
        assert_eq!(port.bindings.len(), 1);
        assert_eq!(port.errors[0].variable, "SERVICE_81_IGNORE");
        let not_a_port = ContainerSettings::new(names, [("SERVICE_x_IGNORE", "true")]).services();
        assert_eq!(not_a_port.bindings.len(), 2);
        assert!(not_a_port.errors[0].problem.contains("`x` is not a port"), "{:?}", not_a_port.errors);
    }
}
