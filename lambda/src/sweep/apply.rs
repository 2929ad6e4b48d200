//! Applying the sweep's deletions in as few Route53 requests as allowed, within the deadline. When a
//! request is rejected because the zone changed since the listing (a sidecar deregistered meanwhile),
//! a dead task's changes are retried one by one against fresh reads; an orphan's are given up (a changed
//! record may have an owner again).

use std::collections::BTreeSet;

use ecssd_records::{Action, BatchLimits, CallError, Change, RecordKey, RecordStore, batches};

use crate::deadline::Deadline;

/// What to do when Route53 rejects a batch because the zone changed since the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Retry each change alone against a fresh read (a dead task's records: its task is known dead,
    /// so whatever its records hold now goes).
    FreshReads,
    /// Give up on the batch's changes.
    ExactOnly,
}

/// Applies units of changes (each unit kept in one request); returns the keys whose change did not
/// happen. A dry run applies nothing.
pub async fn apply<S: RecordStore>(
    store: &S,
    units: Vec<Vec<Change>>,
    dry_run: bool,
    fallback: Fallback,
    deadline: Deadline,
    errors: &mut Vec<String>,
) -> BTreeSet<RecordKey> {
    let mut failed = BTreeSet::new();
    if dry_run {
        return failed;
    }
    for request in batches(units, BatchLimits::default()) {
        match deadline.run(store.apply(&request)).await {
            Ok(()) => {}
            Err(CallError::Conflict { detail, .. }) if fallback == Fallback::ExactOnly => {
                errors
                    .push(format!("{} changes skipped, the zone changed meanwhile: {detail}", request.len()));
                failed.extend(request.into_iter().map(|c| c.record.key));
            }
            Err(CallError::Conflict { .. }) => {
                for change in request {
                    if !apply_alone(store, &change, deadline).await {
                        failed.insert(change.record.key.clone());
                    }
                }
            }
            Err(e) => {
                errors.push(format!("applying {} changes: {e}", request.len()));
                failed.extend(request.into_iter().map(|c| c.record.key));
            }
        }
    }
    failed
}

/// One change against a fresh read: a DELETE removes whatever the record holds now (or nothing, if it
/// is already gone); a CREATE is retried once.
async fn apply_alone<S: RecordStore>(store: &S, change: &Change, deadline: Deadline) -> bool {
    let change = match change.action {
        Action::Create => change.clone(),
        Action::Delete => match deadline.run(store.read(&change.record.key)).await {
            Ok(Some(current)) => Change::delete(current),
            Ok(None) => return true,
            Err(_) => return false,
        },
    };
    deadline.run(store.apply(std::slice::from_ref(&change))).await.is_ok()
}
