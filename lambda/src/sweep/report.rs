//! What one sweep did: returned by the handler, logged as JSON, and published as CloudWatch Embedded
//! Metric Format.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::report::Finding;
use crate::report::emf_line;
use crate::zone_settings::negative_caching::NegativeCaching;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub dry_run: bool,
    /// A, AAAA, SRV and TXT records in the zone.
    pub records_seen: usize,
    /// Tasks with ecssd records of this owner.
    pub tasks_seen: usize,
    /// Tasks ECS answered about.
    pub tasks_checked: usize,
    /// Tasks found dead, with why.
    pub stale_tasks: Vec<Finding>,
    /// Records deleted because their task or host died (or that would be, in a dry run).
    pub stale_records_deleted: usize,
    /// Orphaned records deleted.
    pub orphans_deleted: usize,
    pub endpoints_checked: usize,
    pub unhealthy: Vec<Finding>,
    pub stopped: Vec<Finding>,
    /// Unhealthy tasks a safety limit kept running, with which limit.
    pub held_back: Vec<Finding>,
    /// Tasks whose records say something ECS does not ("records disagree with ECS: …"): never
    /// checked, stopped or counted healthy.
    pub disagreements: Vec<Finding>,
    /// Tasks about which ECS or EC2 said nothing explicit: nothing of theirs is deleted.
    pub unknown: Vec<Finding>,
    /// Tasks whose records the agent brake kept, with why.
    pub braked: Vec<Finding>,
    /// Clusters the records name beyond ECSSD_MAX_CLUSTERS, with how many tasks claim each: not asked
    /// about this sweep, nothing of theirs touched.
    pub clusters_not_asked: Vec<String>,
    /// Orphan-looking records that carry no proof of this owner: kept.
    pub orphans_unproven: Vec<String>,
    /// Orphans left unconfirmed for the next run (read budget or deadline).
    pub orphans_deferred: usize,
    /// The deadline passed before the sweep was done; the next run goes on.
    pub out_of_time: bool,
    /// Ownership records with ecssd's marker that could not be read; left alone.
    pub unreadable_ownership_records: Vec<String>,
    /// The zone's negative caching (absent when its SOA could not be read: see `errors`).
    pub negative_caching: Option<NegativeCaching>,
    /// Problems that did not stop the sweep.
    pub errors: Vec<String>,
    /// API calls made, per service and operation.
    pub api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub duration_ms: u64,
}

impl Report {
    /// The Embedded Metric Format line for this report.
    pub fn emf(&self, timestamp_ms: u128) -> serde_json::Value {
        let calls: u64 = self.api_calls.values().flat_map(|ops| ops.values()).sum();
        let mut metrics = vec![
            ("RecordsSeen", self.records_seen as u64, "Count"),
            ("TasksChecked", self.tasks_checked as u64, "Count"),
            ("StaleTasks", self.stale_tasks.len() as u64, "Count"),
            ("StaleRecordsDeleted", self.stale_records_deleted as u64, "Count"),
            ("OrphansDeleted", self.orphans_deleted as u64, "Count"),
            ("EndpointsChecked", self.endpoints_checked as u64, "Count"),
            ("Unhealthy", self.unhealthy.len() as u64, "Count"),
            ("Stopped", self.stopped.len() as u64, "Count"),
            ("HeldBack", self.held_back.len() as u64, "Count"),
            ("Disagreements", self.disagreements.len() as u64, "Count"),
            ("Unknown", self.unknown.len() as u64, "Count"),
            ("Braked", self.braked.len() as u64, "Count"),
            ("ClustersNotAsked", self.clusters_not_asked.len() as u64, "Count"),
            ("OrphansDeferred", self.orphans_deferred as u64, "Count"),
            ("OutOfTime", u64::from(self.out_of_time), "Count"),
            ("Errors", self.errors.len() as u64, "Count"),
            ("ApiCalls", calls, "Count"),
            ("DurationMs", self.duration_ms, "Milliseconds"),
        ];
        if let Some(negative) = &self.negative_caching {
            metrics.push(("NegativeCacheSeconds", u64::from(negative.seconds), "Seconds"));
        }
        emf_line(timestamp_ms, &metrics)
    }
}
