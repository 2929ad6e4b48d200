//! Records as ecssd sees them: the subset of Route53 record sets it writes (A, AAAA, SRV, TXT with
//! plain values, simple or multivalue-answer routing).

use std::collections::BTreeMap;
use std::fmt;

/// The record types ecssd writes; the IAM policy allows exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Srv,
    Txt,
}

impl RecordType {
    /// The type as Route53 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Srv => "SRV",
            Self::Txt => "TXT",
        }
    }

    /// The inverse of [`as_str`](Self::as_str); `None` for types ecssd never writes.
    pub fn from_route53(text: &str) -> Option<Self> {
        match text {
            "A" => Some(Self::A),
            "AAAA" => Some(Self::Aaaa),
            "SRV" => Some(Self::Srv),
            "TXT" => Some(Self::Txt),
            _ => None,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies one Route53 record set: name, type and (for multivalue records) set identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// Lowercase, fully qualified (trailing dot).
    pub name: String,
    pub record_type: RecordType,
    /// Present exactly for multivalue-answer records; unique per (task, container, port).
    pub set_identifier: Option<String>,
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.record_type)?;
        if let Some(id) = &self.set_identifier {
            write!(f, " [{id}]")?;
        }
        Ok(())
    }
}

/// One record set with the exact values Route53 holds, so a DELETE can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: RecordKey,
    pub ttl: u32,
    /// Values in canonical (sorted) order: Route53 treats them as a set.
    values: Vec<String>,
}

impl Record {
    /// Builds a record; a set identifier implies multivalue-answer routing.
    pub fn new(key: RecordKey, ttl: u32, mut values: Vec<String>) -> Self {
        values.sort();
        values.dedup();
        Self { key, ttl, values }
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether Route53 must route this record as a multivalue answer.
    pub fn is_multivalue(&self) -> bool {
        self.key.set_identifier.is_some()
    }

    /// Characters the values add to a change request; Route53 caps a request at 32,000.
    pub fn value_chars(&self) -> usize {
        self.values.iter().map(String::len).sum()
    }
}

/// Records keyed by [`RecordKey`]: what a task wants, or what the zone holds for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSet(BTreeMap<RecordKey, Record>);

impl RecordSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record, replacing any with the same key.
    pub fn insert(&mut self, record: Record) {
        self.0.insert(record.key.clone(), record);
    }

    pub fn get(&self, key: &RecordKey) -> Option<&Record> {
        self.0.get(key)
    }

    pub fn remove(&mut self, key: &RecordKey) -> Option<Record> {
        self.0.remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Extend<Record> for RecordSet {
    fn extend<I: IntoIterator<Item = Record>>(&mut self, records: I) {
        records.into_iter().for_each(|r| self.insert(r));
    }
}

impl FromIterator<Record> for RecordSet {
    fn from_iter<I: IntoIterator<Item = Record>>(records: I) -> Self {
        let mut set = Self::new();
        records.into_iter().for_each(|r| set.insert(r));
        set
    }
}

impl IntoIterator for RecordSet {
    type Item = Record;
    type IntoIter = std::collections::btree_map::IntoValues<RecordKey, Record>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_values()
    }
}
