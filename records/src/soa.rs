//! The zone's SOA record, for what it says about negative caching.
//!
//! A resolver that gets NXDOMAIN or NODATA caches that answer for the lesser of the SOA record's TTL
//! and its MINIMUM field (RFC 2308 §5; Route53 Developer Guide, "NS and SOA records that Amazon Route
//! 53 creates for a public hosted zone"). Route53 creates every zone with TTL 900 and MINIMUM 86400,
//! so a service whose last task withdrew stays "absent" in resolvers for up to 15 minutes after a new
//! task registers. ecssd never creates or deletes an SOA (Route53 allows neither); it may change TTL
//! and MINIMUM with an UPSERT and keeps the other fields as they are.

use std::fmt;

/// TTL and MINIMUM of the SOA Route53 gives a new zone (Developer Guide, "NS and SOA records").
pub const ROUTE53_DEFAULT_TTL: u32 = 900;
pub const ROUTE53_DEFAULT_MINIMUM: u32 = 86_400;

/// An SOA record set: its TTL and the seven fields of its one value (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// The record set's TTL.
    pub ttl: u32,
    /// The primary name server (MNAME), as written (fully qualified).
    pub primary: String,
    /// The administrator's mailbox (RNAME), as written.
    pub mailbox: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// The MINIMUM field: the upper bound of negative caching (RFC 2308 §4).
    pub minimum: u32,
}

/// An SOA value that is not the seven fields RFC 1035 gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "SOA value {value:?} is not \"<primary> <mailbox> <serial> <refresh> <retry> <expire> <minimum>\": {problem}"
)]
pub struct SoaError {
    pub value: String,
    pub problem: String,
}

impl Soa {
    /// Reads a record set's TTL and its value as Route53 returns it, e.g.
    /// `ns-2048.awsdns-64.net. hostmaster.example.com. 1 7200 900 1209600 86400`.
    pub fn parse(ttl: u32, value: &str) -> Result<Self, SoaError> {
        let error = |problem: String| SoaError { value: value.to_owned(), problem };
        let fields: Vec<&str> = value.split_whitespace().collect();
        let [primary, mailbox, numbers @ ..] = fields.as_slice() else {
            return Err(error(format!("{} fields, expected 7", fields.len())));
        };
        let numbers: Vec<u32> = numbers
            .iter()
            .map(|n| n.parse::<u32>().map_err(|_| error(format!("{n:?} is not a 32-bit unsigned number"))))
            .collect::<Result<_, _>>()?;
        let [serial, refresh, retry, expire, minimum] = numbers[..] else {
            return Err(error(format!("{} fields, expected 7", fields.len())));
        };
        Ok(Self {
            ttl,
            primary: (*primary).to_owned(),
            mailbox: (*mailbox).to_owned(),
            serial,
            refresh,
            retry,
            expire,
            minimum,
        })
    }

    /// The record's one value, as Route53 takes it.
    pub fn value(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.primary, self.mailbox, self.serial, self.refresh, self.retry, self.expire, self.minimum
        )
    }

    /// How long a resolver may cache "no such name" or "no such record" from this zone (RFC 2308 §5:
    /// the lesser of the SOA's TTL and MINIMUM).
    pub fn negative_ttl(&self) -> u32 {
        self.ttl.min(self.minimum)
    }

    /// This SOA with negative caching of `seconds`: TTL and MINIMUM both set (so neither alone decides
    /// later), every other field kept. `None` when nothing changes, so no request is needed.
    pub fn with_negative_ttl(&self, seconds: u32) -> Option<Self> {
        let wanted = Self { ttl: seconds, minimum: seconds, ..self.clone() };
        (wanted != *self).then_some(wanted)
    }
}

impl fmt::Display for Soa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SOA (TTL {}) {}", self.ttl, self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE53_NEW_ZONE: &str = "ns-2048.awsdns-64.net. hostmaster.example.com. 1 7200 900 1209600 86400";

    #[test]
    fn a_new_route53_zone_caches_absence_for_fifteen_minutes() {
        let soa = Soa::parse(ROUTE53_DEFAULT_TTL, ROUTE53_NEW_ZONE).expect("parses");
        assert_eq!(soa.minimum, ROUTE53_DEFAULT_MINIMUM);
        assert_eq!(soa.negative_ttl(), 900);
        assert_eq!(soa.value(), ROUTE53_NEW_ZONE);
    }

    #[test]
    fn negative_ttl_is_the_lesser_of_ttl_and_minimum() {
        let soa = Soa::parse(3600, "a. b. 1 2 3 4 60").expect("parses");
        assert_eq!(soa.negative_ttl(), 60);
    }

    #[test]
    fn setting_the_negative_ttl_sets_ttl_and_minimum_and_keeps_the_rest() {
        let soa = Soa::parse(900, ROUTE53_NEW_ZONE).expect("parses");
        let short = soa.with_negative_ttl(10).expect("a change");
        assert_eq!(short.ttl, 10);
        assert_eq!(short.value(), "ns-2048.awsdns-64.net. hostmaster.example.com. 1 7200 900 1209600 10");
        assert_eq!(short.negative_ttl(), 10);
        assert_eq!(short.with_negative_ttl(10), None, "already so: nothing to write");
    }

    #[test]
    fn a_malformed_value_is_named_with_what_is_expected() {
        for value in ["a. b. 1 2 3 4", "a. b. 1 2 3 4 5 6", "a. b. 1 2 x 4 5", "a. b. 1 2 3 4 -5", ""] {
            let error = Soa::parse(900, value).expect_err(value);
            assert!(error.to_string().contains(&format!("{value:?}")), "{error}");
            assert!(error.to_string().contains("<minimum>"), "{error}");
        }
    }
}
