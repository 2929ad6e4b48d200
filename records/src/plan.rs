//! `plan(desired, current)`: the changes that turn what the zone holds into what a task wants,
//! computed without I/O (external-dns' `plan`).
//!
//! Changes are CREATE and DELETE with exact values, never UPSERT: a DELETE whose values no longer match
//! makes Route53 reject the whole batch, so a plan made from a stale read fails loudly and is re-planned
//! instead of overwriting someone else's change.

use crate::record::{Record, RecordSet, RecordType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Delete,
}

impl Action {
    /// The action as Route53 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Delete => "DELETE",
        }
    }
}

/// One CREATE or DELETE of a whole record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub record: Record,
}

impl Change {
    pub fn create(record: Record) -> Self {
        Self { action: Action::Create, record }
    }

    pub fn delete(record: Record) -> Self {
        Self { action: Action::Delete, record }
    }
}

/// The ordered changes from `current` to `desired`; empty when they already agree.
///
/// Order matters only if a huge plan must be split across requests: the ownership record is created
/// first and deleted last, so an interrupted sequence never leaves records the index does not list,
/// and a replaced record's DELETE stays right before its CREATE.
pub fn plan(desired: &RecordSet, current: &RecordSet) -> Vec<Change> {
    let is_ownership = |r: &Record| r.key.record_type == RecordType::Txt;
    let mut first = Vec::new();
    let mut replaced = Vec::new();
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let mut last = Vec::new();
    for want in desired.iter() {
        match current.get(&want.key) {
            None if is_ownership(want) => first.push(Change::create(want.clone())),
            None => created.push(Change::create(want.clone())),
            Some(have) if have == want => {}
            Some(have) => {
                replaced.push(Change::delete(have.clone()));
                replaced.push(Change::create(want.clone()));
            }
        }
    }
    for have in current.iter().filter(|have| desired.get(&have.key).is_none()) {
        let bucket = if is_ownership(have) { &mut last } else { &mut deleted };
        bucket.push(Change::delete(have.clone()));
    }
    [first, replaced, created, deleted, last].concat()
}

/// The changes that delete every record in `current`: a task's complete withdrawal.
pub fn withdraw(current: &RecordSet) -> Vec<Change> {
    plan(&RecordSet::new(), current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKey;

    fn record(name: &str, record_type: RecordType, id: Option<&str>, value: &str) -> Record {
        let key = RecordKey { name: name.into(), record_type, set_identifier: id.map(String::from) };
        Record::new(key, 10, vec![value.into()])
    }

    fn txt(value: &str) -> Record {
        record("_ecssd.t.d.", RecordType::Txt, None, value)
    }

    fn a(value: &str) -> Record {
        record("t.d.", RecordType::A, None, value)
    }

    fn srv(id: &str, value: &str) -> Record {
        record("_s._tcp.d.", RecordType::Srv, Some(id), value)
    }

    fn show(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{} {} {}", c.action.as_str(), c.record.key, c.record.values().join(",")))
            .collect()
    }

    #[test]
    fn table() {
        /// (case, desired, current, expected changes)
        type Case = (&'static str, Vec<Record>, Vec<Record>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("nothing to do", vec![], vec![], vec![]),
            ("in sync", vec![a("1.1.1.1"), txt("o")], vec![a("1.1.1.1"), txt("o")], vec![]),
            (
                "fresh registration creates the index first",
                vec![a("1.1.1.1"), srv("x", "1 1 80 t.d"), txt("o")],
                vec![],
                vec![
                    "CREATE _ecssd.t.d. TXT o",
                    "CREATE _s._tcp.d. SRV [x] 1 1 80 t.d",
                    "CREATE t.d. A 1.1.1.1",
                ],
            ),
            (
                "withdrawal deletes the index last",
                vec![],
                vec![a("1.1.1.1"), srv("x", "1 1 80 t.d"), txt("o")],
                vec![
                    "DELETE _s._tcp.d. SRV [x] 1 1 80 t.d",
                    "DELETE t.d. A 1.1.1.1",
                    "DELETE _ecssd.t.d. TXT o",
                ],
            ),
            (
                "a changed value is replaced with exact old values",
                vec![a("2.2.2.2"), txt("o")],
                vec![a("1.1.1.1"), txt("o")],
                vec!["DELETE t.d. A 1.1.1.1", "CREATE t.d. A 2.2.2.2"],
            ),
            (
                "one target added, one removed, index updated",
                vec![a("1.1.1.1"), srv("y", "1 1 81 t.d"), txt("o2")],
                vec![a("1.1.1.1"), srv("x", "1 1 80 t.d"), txt("o1")],
                vec![
                    "DELETE _ecssd.t.d. TXT o1",
                    "CREATE _ecssd.t.d. TXT o2",
                    "CREATE _s._tcp.d. SRV [y] 1 1 81 t.d",
                    "DELETE _s._tcp.d. SRV [x] 1 1 80 t.d",
                ],
            ),
        ];
        for (name, desired, current, expected) in cases {
            let changes = plan(&desired.into_iter().collect(), &current.into_iter().collect());
            assert_eq!(show(&changes), expected, "{name}");
        }
    }

    #[test]
    fn ttl_change_is_a_replacement() {
        let old = a("1.1.1.1");
        let mut new = old.clone();
        new.ttl = 60;
        let changes = plan(&[new].into_iter().collect(), &[old].into_iter().collect());
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].record.ttl, 10);
        assert_eq!(changes[1].record.ttl, 60);
    }

    #[test]
    fn withdraw_removes_everything() {
        let current: RecordSet = [a("1.1.1.1"), txt("o")].into_iter().collect();
        assert!(withdraw(&current).iter().all(|c| c.action == Action::Delete));
        assert_eq!(withdraw(&current).len(), 2);
    }
}
