//! Splitting changes into ChangeResourceRecordSets requests within Route53's limits, keeping each
//! task's changes in one request whenever they fit so that a registration appears or disappears whole.

use crate::plan::{Action, Change};

/// Route53's per-request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// ResourceRecord elements per request (Route53: 1,000).
    pub max_records: usize,
    /// Characters of record values per request (Route53: 32,000).
    pub max_value_chars: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_records: 1000, max_value_chars: 32_000 }
    }
}

/// What one change costs against the limits: (records, value characters).
fn cost(change: &Change) -> (usize, usize) {
    (change.record.values().len(), change.record.value_chars())
}

/// What `changes` cost against the limits together: (records, value characters).
pub fn cost_of(changes: &[Change]) -> (usize, usize) {
    changes.iter().map(cost).fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1))
}

/// Packs units (each the plan of one task) into requests. Units are never split unless one alone
/// exceeds the limits; then it is cut in order, keeping each DELETE+CREATE replacement together.
pub fn batches(units: impl IntoIterator<Item = Vec<Change>>, limits: BatchLimits) -> Vec<Vec<Change>> {
    let mut out: Vec<Vec<Change>> = Vec::new();
    let mut current: Vec<Change> = Vec::new();
    let mut used = (0, 0);
    let fits = |used: (usize, usize), add: (usize, usize)| {
        used.0 + add.0 <= limits.max_records && used.1 + add.1 <= limits.max_value_chars
    };
    for unit in units.into_iter().filter(|u| !u.is_empty()) {
        let unit_cost = cost_of(&unit);
        if fits(used, unit_cost) {
            used = (used.0 + unit_cost.0, used.1 + unit_cost.1);
            current.extend(unit);
            continue;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
            used = (0, 0);
        }
        if fits(used, unit_cost) {
            used = unit_cost;
            current = unit;
            continue;
        }
        for atom in atoms(unit) {
            let atom_cost = cost_of(&atom);
            if !fits(used, atom_cost) && !current.is_empty() {
                out.push(std::mem::take(&mut current));
                used = (0, 0);
            }
            used = (used.0 + atom_cost.0, used.1 + atom_cost.1);
            current.extend(atom);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Groups a DELETE immediately followed by the CREATE of the same key; every other change stands alone.
fn atoms(unit: Vec<Change>) -> Vec<Vec<Change>> {
    let mut atoms: Vec<Vec<Change>> = Vec::new();
    for change in unit {
        let pairs_with_previous = atoms.last().is_some_and(|last| {
            last.len() == 1
                && last[0].action == Action::Delete
                && change.action == Action::Create
                && last[0].record.key == change.record.key
        });
        match atoms.last_mut() {
            Some(last) if pairs_with_previous => last.push(change),
            _ => atoms.push(vec![change]),
        }
    }
    atoms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordKey, RecordType};

    fn change(action: Action, name: &str, values: usize) -> Change {
        let key = RecordKey { name: name.into(), record_type: RecordType::A, set_identifier: None };
        let values = (0..values).map(|i| format!("10.0.0.{i}")).collect();
        Change { action, record: Record::new(key, 10, values) }
    }

    fn sizes(batches: &[Vec<Change>]) -> Vec<usize> {
        batches.iter().map(Vec::len).collect()
    }

    #[test]
    fn small_units_share_a_request() {
        let units = (0..5).map(|i| vec![change(Action::Create, &format!("n{i}."), 1); 3]);
        assert_eq!(sizes(&batches(units, BatchLimits::default())), [15]);
    }

    #[test]
    fn units_are_not_split_across_requests() {
        let limits = BatchLimits { max_records: 10, max_value_chars: 32_000 };
        let units = (0..4).map(|i| vec![change(Action::Delete, &format!("n{i}."), 1); 4]);
        assert_eq!(sizes(&batches(units, limits)), [8, 8]);
    }

    #[test]
    fn records_limit_counts_values_and_caps_at_1000() {
        let units = (0..3000).map(|i| vec![change(Action::Delete, &format!("n{i}."), 1)]);
        let out = batches(units, BatchLimits::default());
        assert_eq!(sizes(&out), [1000, 1000, 1000]);
        let multi = (0..10).map(|i| vec![change(Action::Create, &format!("m{i}."), 150)]);
        assert_eq!(sizes(&batches(multi, BatchLimits::default())), [6, 4]);
    }

    #[test]
    fn value_characters_are_limited_too() {
        let limits = BatchLimits { max_records: 1000, max_value_chars: 20 };
        let units = (0..4).map(|i| vec![change(Action::Create, &format!("n{i}."), 1)]);
        // each value "10.0.0.0" is 8 characters: two fit in 20
        assert_eq!(sizes(&batches(units, limits)), [2, 2]);
    }

    #[test]
    fn an_oversized_unit_is_cut_keeping_replacements_whole() {
        let limits = BatchLimits { max_records: 3, max_value_chars: 32_000 };
        let unit = vec![
            change(Action::Create, "a.", 1),
            change(Action::Create, "b.", 1),
            change(Action::Delete, "c.", 1),
            change(Action::Create, "c.", 1),
            change(Action::Delete, "d.", 1),
        ];
        let out = batches([unit], limits);
        assert_eq!(sizes(&out), [2, 3]);
        assert_eq!(out[1][0].record.key.name, "c.");
        assert_eq!(out[1][1].record.key.name, "c.");
    }

    #[test]
    fn empty_units_make_no_requests() {
        assert!(batches([vec![], vec![]], BatchLimits::default()).is_empty());
    }
}
