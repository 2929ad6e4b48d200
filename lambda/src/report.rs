//! What every function reports: findings about tasks, and CloudWatch Embedded Metric Format lines (a
//! log line CloudWatch turns into metrics, with no API call).

use serde::Serialize;

/// A task and what was found about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub task: String,
    pub reason: String,
}

impl Finding {
    pub fn new(task: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { task: task.into(), reason: reason.into() }
    }

    /// A claim that disagrees with ECS.
    pub fn disagreement(task: impl Into<String>, why: &str) -> Self {
        Self::new(task, format!("records disagree with ECS: {why}"))
    }
}

/// One Embedded Metric Format line: `metrics` as (name, value, unit) in the `ecssd` namespace.
pub fn emf_line(timestamp_ms: u128, metrics: &[(&str, u64, &str)]) -> serde_json::Value {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": "ecssd",
                "Dimensions": [[]],
                "Metrics": metrics.iter().map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        },
    });
    for (name, value, _) in metrics {
        line[*name] = (*value).into();
    }
    line
}

/// One JSON line on stdout: a report in the shell mode, and the EMF lines CloudWatch reads from the log.
#[allow(clippy::print_stdout)]
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Milliseconds since the Unix epoch: an EMF line's timestamp.
pub fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
}
