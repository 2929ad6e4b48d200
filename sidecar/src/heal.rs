//! Self-healing: noticing that the task's records were deleted or changed behind the sidecar's back,
//! without spending the account's Route53 API budget (5 requests/s for every caller together).
//!
//! Every check asks the VPC resolver for the task's names, which costs no API call, and compares the
//! answers with what the sidecar wrote. Asking is not free of consequence: a resolver asked about a
//! name Route53's servers do not show yet remembers its absence for the zone's negative TTL (RFC 2308;
//! 900 s on a zone Route53 creates), for every client of the VPC. So no check runs until `propagation`
//! has passed since the sidecar's last write, and a task with nothing published asks only about its
//! ownership record's name, which no client resolves (never its address name, an SRV target once
//! it publishes). Only a disagreement costs API calls: one record is read to
//! confirm it (a resolver that does not see the zone costs one call, not a full read), then the
//! registrar reads its records back by name and repairs them. So a fleet whose records are intact
//! spends nothing. Where DNS cannot tell, the rules lean towards spending nothing:
//! - No check runs until the records' TTL and `propagation` have passed since the last write: before
//!   that a resolver may rightly answer with what the write replaced.
//! - A name the resolver says is absent may be its negative cache (a client asked while the service
//!   had no task), so "absent" counts only for records last written more than `dns_lag` (the zone's
//!   negative TTL) plus `propagation` ago.
//! - Route53 answers a multivalue name with at most 8 records ("Multivalue answer routing"), so an
//!   SRV target missing from a full answer is only unseen; one unseen for `verify_every` is read by
//!   its key (one call).
//! - A read that finds the zone as written means DNS was wrong (a lagging cache, a resolver that does
//!   not see the zone): API reads for the next disagreements wait ten checks, doubling up to a day,
//!   and the problem is logged. The first check that agrees ends the hold, so a false alarm never
//!   turns self-healing off for longer than it lasts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ecssd_records::ownership::txt_strings;
use ecssd_records::{Record, RecordKey, RecordSet, RecordType, canonical_ipv6};
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::dns::{Answer, Resolver};

/// Route53 gives at most this many records of a multivalue name in one answer.
const MAX_MULTIVALUE_ANSWERS: usize = 8;

/// The first hold after DNS proved wrong, in checks (10 minutes by default). A false alarm (a lagging
/// cache) ends sooner: the first check that agrees ends the hold.
const FIRST_HOLD_CHECKS: u32 = 10;

/// The longest hold, reached only while DNS keeps disagreeing and Route53 keeps holding the records as
/// written (a resolver that does not see the zone): one read per task a day.
const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy)]
pub struct HealSettings {
    /// How often DNS is asked.
    pub every: Duration,
    /// How long a resolver may remember that a name did not exist (its negative cache).
    pub dns_lag: Duration,
    /// How long Route53 may take to show a change on its DNS servers ("generally within 60 seconds",
    /// Developer Guide, "Deleting records"): no name is asked about sooner after a write.
    pub propagation: Duration,
    /// How long an SRV target DNS cannot show waits for an API read, and the first hold after DNS
    /// proved wrong.
    pub verify_every: Duration,
    /// The records' TTL.
    pub ttl: Duration,
}

impl HealSettings {
    /// How long after a write every resolver shows it: its TTL (the answers it replaced may be cached
    /// that long) plus Route53's propagation.
    pub fn settled_after(&self) -> Duration {
        self.ttl + self.propagation
    }

    fn first_hold(&self) -> Duration {
        (self.every * FIRST_HOLD_CHECKS).min(MAX_HOLD)
    }
}

/// What the records the sidecar wrote look like through DNS.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Differences from what the sidecar wrote (the record concerned, and how); any one asks for a
    /// repair.
    pub drift: Vec<(RecordKey, String)>,
    /// SRV records missing from a full multivalue answer: maybe there, maybe not.
    pub unseen: Vec<RecordKey>,
    /// SRV records the answers showed.
    pub seen: Vec<RecordKey>,
}

/// What the run loop should do after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Nothing,
    /// DNS disagrees about this record: read it through the API; if it is not as written, repair.
    Confirm {
        key: RecordKey,
        reason: String,
    },
    /// SRV records DNS could not show for a while: read them through the API and compare.
    Verify(Vec<RecordKey>),
}

/// Compares DNS answers with `written` (what the sidecar believes the zone holds) and `absent` (names
/// that should not exist). `answers` holds one answer, or why there is none, per (name, type) asked.
/// `since_write` is how long ago the sidecar last changed the zone.
pub fn judge(
    written: &RecordSet,
    absent: &[(String, RecordType)],
    answers: &BTreeMap<(String, RecordType), Result<Answer, String>>,
    since_write: Duration,
    settings: &HealSettings,
) -> Judgement {
    let mut judgement = Judgement::default();
    let settled = since_write >= settings.settled_after();
    let absence_settled = settled && since_write >= settings.dns_lag + settings.propagation;
    let mut groups: BTreeMap<(String, RecordType), Vec<&Record>> = BTreeMap::new();
    let key_of = |name: &str, record_type: RecordType| RecordKey {
        name: name.to_owned(),
        record_type,
        set_identifier: None,
    };
    for record in written.iter() {
        let group = (record.key.name.to_ascii_lowercase(), record.key.record_type);
        groups.entry(group).or_default().push(record);
    }
    for (group, records) in &groups {
        let Some(Ok(answer)) = answers.get(group) else { continue };
        let (name, record_type) = group;
        let values = match answer {
            Answer::Absent if absence_settled => {
                judgement.drift.push((records[0].key.clone(), format!("{name} {record_type} is absent")));
                continue;
            }
            Answer::Absent => continue,
            Answer::Values(values) => values,
        };
        if *record_type == RecordType::Srv {
            for record in records {
                let key = &record.key;
                if record.values().iter().all(|value| values.contains(value)) {
                    judgement.seen.push(key.clone());
                } else if values.len() >= MAX_MULTIVALUE_ANSWERS {
                    judgement.unseen.push(key.clone());
                } else if settled {
                    judgement.drift.push((key.clone(), format!("{key} is missing from the answer")));
                }
            }
        } else if settled && !same_values(*record_type, records.iter().flat_map(|r| r.values()), values) {
            judgement
                .drift
                .push((records[0].key.clone(), format!("{name} {record_type} answers {values:?}")));
        }
    }
    for group in absent {
        let key = (group.0.to_ascii_lowercase(), group.1);
        if let Some(Ok(Answer::Values(values))) = answers.get(&key)
            && settled
        {
            let reason = format!("{} {} is left over: {values:?}", key.0, key.1);
            judgement.drift.push((key_of(&group.0, group.1), reason));
        }
    }
    judgement
}

/// Whether `answer` shows `record` exactly as written.
pub fn shows(record: &Record, answer: Option<&Result<Answer, String>>) -> bool {
    matches!(answer, Some(Ok(Answer::Values(values))) if same_values(record.key.record_type, record.values().iter(), values))
}

/// Whether DNS shows exactly the written values; TXT values compare by their strings.
fn same_values<'a>(
    record_type: RecordType,
    written: impl Iterator<Item = &'a String>,
    shown: &[String],
) -> bool {
    let normal = |value: &String| match record_type {
        RecordType::Txt => txt_strings(value),
        // Route53 keeps an AAAA value's text as written; DNS carries the address.
        RecordType::Aaaa => vec![canonical_ipv6(value)],
        _ => vec![value.to_ascii_lowercase()],
    };
    let mut written: Vec<_> = written.map(normal).collect();
    let mut shown: Vec<_> = shown.iter().map(normal).collect();
    written.sort();
    shown.sort();
    written == shown
}

/// The (name, type) pairs a check asks about: the records written, and the names that should not exist.
pub fn questions(written: &RecordSet, absent: &[(String, RecordType)]) -> BTreeSet<(String, RecordType)> {
    let mut asked: BTreeSet<(String, RecordType)> =
        written.iter().map(|r| (r.key.name.to_ascii_lowercase(), r.key.record_type)).collect();
    asked.extend(absent.iter().map(|(name, t)| (name.to_ascii_lowercase(), *t)));
    asked
}

/// Asks `resolver` every question at once.
pub async fn ask(
    resolver: Resolver,
    questions: BTreeSet<(String, RecordType)>,
) -> BTreeMap<(String, RecordType), Result<Answer, String>> {
    join_all(questions.into_iter().map(|question| async move {
        let answer = resolver.query(&question.0, question.1).await;
        (question, answer)
    }))
    .await
    .into_iter()
    .collect()
}

/// Schedules checks and decides when a disagreement is worth API calls.
#[derive(Debug)]
pub struct Healer {
    resolver: Resolver,
    settings: HealSettings,
    /// When this process last changed the zone.
    last_write: Option<Instant>,
    /// SRV records DNS could not show, since when.
    unseen_since: BTreeMap<RecordKey, Instant>,
    /// API reads for a disagreement wait until then, after DNS proved wrong.
    hold_until: Option<Instant>,
    /// The next hold, doubled each time DNS proves wrong again.
    next_hold: Duration,
    /// A repair was asked for and its outcome is not known yet.
    repairing: bool,
}

impl Healer {
    pub fn new(resolver: Resolver, settings: HealSettings) -> Self {
        Self {
            resolver,
            settings,
            last_write: None,
            unseen_since: BTreeMap::new(),
            hold_until: None,
            next_hold: settings.first_hold(),
            repairing: false,
        }
    }

    pub fn every(&self) -> Duration {
        self.settings.every
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// The sidecar changed the zone: caches may lag it for a while.
    pub fn wrote(&mut self) {
        self.last_write = Some(Instant::now());
    }

    /// A write that lands by `at` at the latest (a registration handed to the batcher): no check
    /// until it could show.
    pub fn writes_by(&mut self, at: Instant) {
        self.last_write = Some(at);
    }

    /// Until when no check may run: Route53 may not show the last write before then (asking about a
    /// name it does not show yet would make the resolver remember the name as absent), and a resolver
    /// may still answer with what the write replaced.
    pub fn quiet_until(&self) -> Option<Instant> {
        self.last_write.map(|at| at + self.settings.settled_after()).filter(|until| *until > Instant::now())
    }

    /// Judges the answers to [`questions`] about `written` and `absent`, and says what to do.
    pub fn decide_on(
        &mut self,
        written: &RecordSet,
        absent: &[(String, RecordType)],
        answers: &BTreeMap<(String, RecordType), Result<Answer, String>>,
    ) -> Next {
        let since_write = self.last_write.map_or(Duration::MAX, |at| at.elapsed());
        let judgement = judge(written, absent, answers, since_write, &self.settings);
        self.decide(judgement, Instant::now())
    }

    fn decide(&mut self, judgement: Judgement, now: Instant) -> Next {
        for key in &judgement.seen {
            self.unseen_since.remove(key);
        }
        let unseen: BTreeSet<&RecordKey> = judgement.unseen.iter().collect();
        self.unseen_since.retain(|key, _| unseen.contains(key));
        for key in unseen {
            self.unseen_since.entry(key.clone()).or_insert(now);
        }
        if judgement.drift.is_empty() && self.hold_until.take().is_some() {
            self.next_hold = self.settings.first_hold();
            tracing::info!(problem = "dns_disagrees", "DNS agrees with what the sidecar wrote again");
        }
        let held = self.hold_until.is_some_and(|until| now < until);
        if let Some((key, reason)) = judgement.drift.first() {
            if held {
                tracing::debug!(%reason, "DNS disagrees, but it proved wrong recently: not reading Route53 yet");
                return Next::Nothing;
            }
            let reason = format!("{reason} ({} differences)", judgement.drift.len());
            return Next::Confirm { key: key.clone(), reason };
        }
        let due: Vec<RecordKey> = self
            .unseen_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.settings.verify_every)
            .map(|(key, _)| key.clone())
            .collect();
        if due.is_empty() {
            return Next::Nothing;
        }
        for key in &due {
            self.unseen_since.insert(key.clone(), now);
        }
        Next::Verify(due)
    }

    /// The outcome of a [`Next::Confirm`]: whether the record read was as written. If it was, DNS
    /// was wrong; if not, the caller repairs, and [`repaired`](Self::repaired) learns the outcome.
    pub fn confirmed(&mut self, as_written: bool) {
        if as_written {
            self.dns_was_wrong("Route53 holds the record as written");
        } else {
            self.repairing = true;
        }
    }

    /// The outcome of the convergence a failed confirmation asked for: `changes` record changes sent.
    pub fn repaired(&mut self, changes: usize) {
        if !std::mem::take(&mut self.repairing) {
            return;
        }
        if changes > 0 {
            self.hold_until = None;
            self.next_hold = self.settings.first_hold();
            return;
        }
        self.dns_was_wrong("Route53 holds the task's records as written");
    }

    fn dns_was_wrong(&mut self, finding: &str) {
        let hold = self.next_hold;
        self.hold_until = Some(Instant::now() + hold);
        self.next_hold = (hold * 2).min(MAX_HOLD);
        tracing::warn!(problem = "dns_disagrees", resolver = %self.resolver.address, hold_s = hold.as_secs(),
            "{finding}, but the resolver answers otherwise: is the VPC associated with the hosted zone, and \
             ECSSD_RESOLVER its resolver? Route53 is not read again for a disagreement before the hold ends");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HealSettings {
        HealSettings {
            every: Duration::from_secs(60),
            dns_lag: Duration::from_secs(900),
            propagation: Duration::from_secs(60),
            verify_every: Duration::from_secs(7200),
            ttl: Duration::from_secs(10),
        }
    }

    fn key(name: &str, record_type: RecordType, set: Option<&str>) -> RecordKey {
        RecordKey { name: name.into(), record_type, set_identifier: set.map(String::from) }
    }

    fn written() -> RecordSet {
        [
            Record::new(key("t1.sd.", RecordType::A, None), 10, vec!["10.0.0.1".into()]),
            Record::new(
                key("_ecssd.t1.sd.", RecordType::Txt, None),
                10,
                vec!["\"heritage=ecssd\" \"owner=x\"".into()],
            ),
            Record::new(
                key("_web._tcp.sd.", RecordType::Srv, Some("ecssd:x:t1:web:80")),
                10,
                vec!["1 1 80 t1.sd".into()],
            ),
        ]
        .into_iter()
        .collect()
    }

    type Answers = BTreeMap<(String, RecordType), Result<Answer, String>>;

    fn intact() -> Answers {
        let values = |v: &[&str]| Ok(Answer::Values(v.iter().map(|s| (*s).to_owned()).collect()));
        BTreeMap::from([
            (("t1.sd.".into(), RecordType::A), values(&["10.0.0.1"])),
            (("_ecssd.t1.sd.".into(), RecordType::Txt), values(&["\"heritage=ecssd\" \"owner=x\""])),
            (("_web._tcp.sd.".into(), RecordType::Srv), values(&["1 1 80 t1.sd", "1 1 81 t2.sd"])),
        ])
    }

    const LONG_AGO: Duration = Duration::from_secs(3600);

    /// Route53 keeps an AAAA value's text as written, and DNS carries the address: an AAAA record
    /// written in another spelling of the same address agrees, another address does not.
    #[test]
    fn an_aaaa_record_agrees_by_address_not_spelling() {
        let written: RecordSet =
            [Record::new(key("t1.sd.", RecordType::Aaaa, None), 10, vec!["FD00:0:0::1".into()])]
                .into_iter()
                .collect();
        let answer = |value: &str| -> Answers {
            BTreeMap::from([(("t1.sd.".into(), RecordType::Aaaa), Ok(Answer::Values(vec![value.into()])))])
        };
        assert!(judge(&written, &[], &answer("fd00::1"), LONG_AGO, &settings()).drift.is_empty());
        let other = judge(&written, &[], &answer("fd00::2"), LONG_AGO, &settings());
        assert_eq!(other.drift.len(), 1, "{other:?}");
    }

    #[test]
    fn intact_records_agree() {
        let judgement = judge(&written(), &[], &intact(), LONG_AGO, &settings());
        assert!(judgement.drift.is_empty(), "{judgement:?}");
        assert_eq!(judgement.seen.len(), 1);
    }

    #[test]
    fn deleted_or_changed_records_are_drift_once_caches_can_have_caught_up() {
        let mut answers = intact();
        answers.insert(("t1.sd.".into(), RecordType::A), Ok(Answer::Absent));
        answers.insert(
            ("_web._tcp.sd.".into(), RecordType::Srv),
            Ok(Answer::Values(vec!["1 1 81 t2.sd".into()])),
        );
        answers.insert(
            ("_ecssd.t1.sd.".into(), RecordType::Txt),
            Ok(Answer::Values(vec!["\"heritage=ecssd\" \"owner=y\"".into()])),
        );
        let judgement = judge(&written(), &[], &answers, LONG_AGO, &settings());
        assert_eq!(judgement.drift.len(), 3, "{judgement:?}");
        // Just written: a resolver may still hold the old answers, for their TTL and the propagation.
        assert!(judge(&written(), &[], &answers, Duration::from_secs(5), &settings()).drift.is_empty());
        assert!(judge(&written(), &[], &answers, Duration::from_secs(69), &settings()).drift.is_empty());
        // Values settle within TTL + propagation; absence only after the negative-cache TTL and the
        // propagation (a client may have cached the absence just before Route53 showed the write).
        let after_a_few_minutes = judge(&written(), &[], &answers, Duration::from_secs(300), &settings());
        assert_eq!(after_a_few_minutes.drift.len(), 2, "{after_a_few_minutes:?}");
        let at_the_negative_ttl = judge(&written(), &[], &answers, Duration::from_secs(900), &settings());
        assert_eq!(at_the_negative_ttl.drift.len(), 2, "{at_the_negative_ttl:?}");
        let after_it_and_propagation =
            judge(&written(), &[], &answers, Duration::from_secs(960), &settings());
        assert_eq!(after_it_and_propagation.drift.len(), 3, "{after_it_and_propagation:?}");
    }

    #[test]
    fn a_full_multivalue_answer_without_the_target_is_only_unseen() {
        let mut answers = intact();
        let full: Vec<String> = (0..8).map(|i| format!("1 1 80 other{i}.sd")).collect();
        answers.insert(("_web._tcp.sd.".into(), RecordType::Srv), Ok(Answer::Values(full)));
        let judgement = judge(&written(), &[], &answers, LONG_AGO, &settings());
        assert!(judgement.drift.is_empty(), "{judgement:?}");
        assert_eq!(judgement.unseen.len(), 1);
    }

    #[test]
    fn an_unreachable_resolver_tells_nothing() {
        let answers: Answers = intact().into_keys().map(|k| (k, Err("timed out".to_owned()))).collect();
        assert_eq!(judge(&written(), &[], &answers, LONG_AGO, &settings()), Judgement::default());
    }

    #[test]
    fn leftovers_of_a_task_with_nothing_to_publish_are_drift() {
        let absent = [("_ecssd.t1.sd.".to_owned(), RecordType::Txt)];
        let answers = intact();
        let judgement = judge(&RecordSet::new(), &absent, &answers, LONG_AGO, &settings());
        assert_eq!(judgement.drift.len(), 1, "{judgement:?}");
        let none: Answers = BTreeMap::from([(absent[0].clone(), Ok(Answer::Absent))]);
        assert!(judge(&RecordSet::new(), &absent, &none, LONG_AGO, &settings()).drift.is_empty());
    }

    fn healer() -> Healer {
        Healer::new(Resolver::new("127.0.0.1:9".parse().expect("address")), settings())
    }

    #[tokio::test]
    async fn no_check_runs_until_route53_can_show_the_last_write() {
        let mut healer = healer();
        assert_eq!(healer.quiet_until(), None, "nothing written: checks may run at once");
        healer.wrote();
        let until = healer.quiet_until().expect("quiet after a write");
        let left = until - Instant::now();
        assert!(
            left > Duration::from_secs(69) && left <= Duration::from_secs(70),
            "TTL + propagation: {left:?}"
        );
        let instant = HealSettings { propagation: Duration::ZERO, ttl: Duration::ZERO, ..settings() };
        let mut instant = Healer::new(healer.resolver(), instant);
        instant.wrote();
        assert_eq!(instant.quiet_until(), None, "no TTL, no propagation time: no wait");
    }

    #[test]
    fn a_check_between_the_propagation_and_the_ttl_judges_nothing() {
        // The README's lag for the stack's zone (10 s) is shorter than TTL + propagation: answers that
        // are still cached from before the write are not drift.
        let settings = HealSettings { dns_lag: Duration::from_secs(10), ..settings() };
        let mut answers = intact();
        answers.insert(("t1.sd.".into(), RecordType::A), Ok(Answer::Values(vec!["10.0.0.9".into()])));
        assert!(judge(&written(), &[], &answers, Duration::from_secs(15), &settings).drift.is_empty());
        assert_eq!(judge(&written(), &[], &answers, Duration::from_secs(70), &settings).drift.len(), 1);
    }

    #[test]
    fn a_wrong_dns_holds_off_api_reads_for_minutes_doubling_and_a_real_repair_ends_the_hold() {
        let mut healer = healer();
        let now = Instant::now();
        let a = key("t1.sd.", RecordType::A, None);
        let drift = Judgement { drift: vec![(a, "absent".into())], ..Judgement::default() };
        assert!(matches!(healer.decide(drift.clone(), now), Next::Confirm { .. }));
        healer.confirmed(true);
        assert_eq!(healer.decide(drift.clone(), now), Next::Nothing, "held");
        assert_eq!(healer.next_hold, Duration::from_secs(1200), "ten checks, doubled");
        assert!(matches!(healer.decide(drift.clone(), now + Duration::from_secs(601)), Next::Confirm { .. }));
        healer.confirmed(true);
        for _ in 0..10 {
            healer.dns_was_wrong("again");
        }
        assert_eq!(healer.next_hold, MAX_HOLD, "never more than a day");
        healer.confirmed(false);
        healer.repaired(3);
        let later = now + Duration::from_secs(7202);
        assert!(matches!(healer.decide(drift, later), Next::Confirm { .. }), "a real repair ends the hold");
    }

    #[test]
    fn a_check_that_agrees_ends_a_hold() {
        let mut healer = healer();
        let now = Instant::now();
        let a = key("t1.sd.", RecordType::A, None);
        let drift = Judgement { drift: vec![(a, "absent".into())], ..Judgement::default() };
        assert!(matches!(healer.decide(drift.clone(), now), Next::Confirm { .. }));
        healer.confirmed(true);
        assert_eq!(healer.decide(drift.clone(), now), Next::Nothing, "held");
        assert_eq!(healer.decide(Judgement::default(), now), Next::Nothing, "DNS agrees");
        let soon = now + Duration::from_secs(60);
        assert!(matches!(healer.decide(drift, soon), Next::Confirm { .. }), "new drift is read at once");
    }

    #[test]
    fn an_unseen_target_is_read_after_verify_every_unless_dns_shows_it() {
        let mut healer = healer();
        let srv = key("_web._tcp.sd.", RecordType::Srv, Some("ecssd:x:t1:web:80"));
        let unseen = Judgement { unseen: vec![srv.clone()], ..Judgement::default() };
        let start = Instant::now();
        assert_eq!(healer.decide(unseen.clone(), start), Next::Nothing);
        let hour = Duration::from_secs(3600);
        assert_eq!(healer.decide(unseen.clone(), start + hour), Next::Nothing);
        assert_eq!(healer.decide(unseen.clone(), start + 2 * hour), Next::Verify(vec![srv.clone()]));
        assert_eq!(healer.decide(unseen.clone(), start + 3 * hour), Next::Nothing, "clock restarted");
        healer.decide(Judgement { seen: vec![srv.clone()], ..Judgement::default() }, start + 4 * hour);
        assert_eq!(healer.decide(unseen, start + 5 * hour), Next::Nothing, "seen in between");
    }
}
