//! The addresses a task is reached at: an IPv4 address (an A record), an IPv6 address (an AAAA
//! record), or both, never neither. Which of them a task publishes is [`AddressFamily`]'s choice.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A task's addresses: a dual-stack task has both, an IPv6-only one no IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAddresses {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Dual(Ipv4Addr, Ipv6Addr),
}

impl TaskAddresses {
    /// From whichever addresses there are; `None` when there is neither.
    pub fn from_parts(ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> Option<Self> {
        match (ipv4, ipv6) {
            (Some(v4), Some(v6)) => Some(Self::Dual(v4, v6)),
            (Some(v4), None) => Some(Self::Ipv4(v4)),
            (None, Some(v6)) => Some(Self::Ipv6(v6)),
            (None, None) => None,
        }
    }

    pub fn ipv4(self) -> Option<Ipv4Addr> {
        match self {
            Self::Ipv4(v4) | Self::Dual(v4, _) => Some(v4),
            Self::Ipv6(_) => None,
        }
    }

    pub fn ipv6(self) -> Option<Ipv6Addr> {
        match self {
            Self::Ipv6(v6) | Self::Dual(_, v6) => Some(v6),
            Self::Ipv4(_) => None,
        }
    }

    /// Each address, IPv4 first.
    pub fn iter(self) -> impl Iterator<Item = IpAddr> {
        self.ipv4().map(IpAddr::V4).into_iter().chain(self.ipv6().map(IpAddr::V6))
    }

    /// The addresses `family` publishes; an error naming the family the task lacks.
    pub fn select(self, family: AddressFamily) -> Result<Self, MissingFamily> {
        let missing = |missing| MissingFamily { family, missing, have: self };
        match family {
            AddressFamily::Ipv4 => self.ipv4().map(Self::Ipv4).ok_or(missing("IPv4")),
            AddressFamily::Ipv6 => self.ipv6().map(Self::Ipv6).ok_or(missing("IPv6")),
            AddressFamily::Dual => match self {
                Self::Dual(..) => Ok(self),
                Self::Ipv4(_) => Err(missing("IPv6")),
                Self::Ipv6(_) => Err(missing("IPv4")),
            },
        }
    }
}

impl From<Ipv4Addr> for TaskAddresses {
    fn from(v4: Ipv4Addr) -> Self {
        Self::Ipv4(v4)
    }
}

impl From<Ipv6Addr> for TaskAddresses {
    fn from(v6: Ipv6Addr) -> Self {
        Self::Ipv6(v6)
    }
}

impl fmt::Display for TaskAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4(v4) => write!(f, "{v4}"),
            Self::Ipv6(v6) => write!(f, "{v6}"),
            Self::Dual(v4, v6) => write!(f, "{v4},{v6}"),
        }
    }
}

/// `ECSSD_ADDRESS`: an IPv4 address, an IPv6 address, or one of each separated by a comma.
impl FromStr for TaskAddresses {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = "expected an IPv4 address, an IPv6 address, or one of each separated by a comma \
                        (e.g. `10.0.1.5`, `fd00::5` or `10.0.1.5,fd00::5`)";
        let (mut ipv4, mut ipv6) = (None, None);
        for part in text.split(',').map(str::trim) {
            match part.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) if ipv4.is_none() => ipv4 = Some(v4),
                Ok(IpAddr::V6(v6)) if ipv6.is_none() => ipv6 = Some(v6),
                Ok(_) => return Err(format!("`{text}` has two addresses of one family: {expected}")),
                Err(_) => return Err(format!("`{part}` in `{text}` is not an IP address: {expected}")),
            }
        }
        Self::from_parts(ipv4, ipv6).ok_or_else(|| format!("`{text}` is empty: {expected}"))
    }
}

/// Which of a task's addresses it publishes (`ECSSD_ADDRESS_FAMILY`); when unset, every address it
/// has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
    Dual,
}

impl AddressFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Dual => "dual",
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AddressFamily {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ipv4" => Ok(Self::Ipv4),
            "ipv6" => Ok(Self::Ipv6),
            "dual" => Ok(Self::Dual),
            _ => Err(format!("`{text}` is not an address family: expected `ipv4`, `ipv6` or `dual`")),
        }
    }
}

/// A task lacks an address of the family it was told to publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ECSSD_ADDRESS_FAMILY={family} needs an {missing} address, and only {have} was found")]
pub struct MissingFamily {
    pub family: AddressFamily,
    pub missing: &'static str,
    pub have: TaskAddresses,
}

/// An address field of an AWS answer (task metadata, the container metadata file, EC2): absent or
/// empty is `None`; anything but an address of the family is an error naming the field.
pub fn optional_address<T: FromStr>(field: &str, text: Option<&str>) -> Result<Option<T>, String> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(None) };
    text.parse().map(Some).map_err(|_| format!("`{field}` holds `{text}`, not an address of its family"))
}

/// An AAAA value as ecssd writes and compares it: RFC 5952's text (lowercase, the longest run of zeros
/// compressed), whatever form another writer used. Anything that is not an IPv6 address is kept as is.
pub fn canonical_ipv6(value: &str) -> String {
    value.parse::<Ipv6Addr>().map_or_else(|_| value.to_owned(), |v6| v6.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_address_of_either_family_or_one_of_each() {
        let v4: Ipv4Addr = "10.0.1.5".parse().unwrap();
        let v6: Ipv6Addr = "fd00::5".parse().unwrap();
        assert_eq!("10.0.1.5".parse(), Ok(TaskAddresses::Ipv4(v4)));
        assert_eq!("FD00:0::5".parse(), Ok(TaskAddresses::Ipv6(v6)));
        assert_eq!("fd00::5, 10.0.1.5".parse(), Ok(TaskAddresses::Dual(v4, v6)));
        for bad in ["", "10.0.1.5,10.0.1.6", "fd00::5,fd00::6", "10.0.1.5,", "10.0.1.256", "host"] {
            let err = bad.parse::<TaskAddresses>().expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")) && err.contains("expected an IPv4 address"), "{err}");
        }
    }

    #[test]
    fn a_family_selects_what_the_task_has_and_names_what_it_lacks() {
        let v4: Ipv4Addr = "10.0.1.5".parse().unwrap();
        let v6: Ipv6Addr = "fd00::5".parse().unwrap();
        let dual = TaskAddresses::Dual(v4, v6);
        assert_eq!(dual.select(AddressFamily::Ipv4), Ok(TaskAddresses::Ipv4(v4)));
        assert_eq!(dual.select(AddressFamily::Ipv6), Ok(TaskAddresses::Ipv6(v6)));
        assert_eq!(dual.select(AddressFamily::Dual), Ok(dual));
        let err = TaskAddresses::Ipv4(v4).select(AddressFamily::Dual).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ECSSD_ADDRESS_FAMILY=dual needs an IPv6 address, and only 10.0.1.5 was found"
        );
        assert!(TaskAddresses::Ipv6(v6).select(AddressFamily::Ipv4).is_err());
        assert_eq!("DUAL".parse(), Ok(AddressFamily::Dual));
        assert!("both".parse::<AddressFamily>().unwrap_err().contains("expected `ipv4`, `ipv6` or `dual`"));
    }

    #[test]
    fn ipv6_values_compare_in_one_text() {
        assert_eq!(canonical_ipv6("FD00:0000:0000:0000:0000:0000:0000:0005"), "fd00::5");
        assert_eq!(canonical_ipv6("not an address"), "not an address");
    }
}
