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

/// The most one log line may hold: CloudWatch Logs' largest event, 256 KB (CloudWatch Logs User
/// Guide, "CloudWatch Logs quotas": "Event size: 256 KB"); what is longer is cut.
pub const MAX_LOG_LINE_BYTES: usize = 256 * 1024;

/// Room kept in a log line for what the logger adds around the report (message, level, timestamp).
const LOG_LINE_MARGIN: usize = 4 * 1024;

/// A report (an object of counts and lists) that fits one log line: each list longer than a limit is
/// cut to its first entries, with `<field>_total` giving how many there were. Limits shrink (100, 10,
/// 1, then none) until the line fits; counts are never cut.
pub fn capped_for_log(report: serde_json::Value) -> serde_json::Value {
    // Logged as a string field of a JSON line: measured as that string, its quotes escaped.
    let fits = |value: &serde_json::Value| {
        serde_json::Value::String(value.to_string()).to_string().len() + LOG_LINE_MARGIN <= MAX_LOG_LINE_BYTES
    };
    if fits(&report) {
        return report;
    }
    let serde_json::Value::Object(fields) = &report else { return report };
    for limit in [100, 10, 1, 0] {
        let mut capped = serde_json::Map::new();
        for (name, value) in fields {
            match value {
                serde_json::Value::Array(items) if items.len() > limit => {
                    capped.insert(name.clone(), items[..limit].to_vec().into());
                    capped.insert(format!("{name}_total"), items.len().into());
                }
                other => {
                    capped.insert(name.clone(), other.clone());
                }
            }
        }
        let capped = serde_json::Value::Object(capped);
        if fits(&capped) || limit == 0 {
            return capped;
        }
    }
    report
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27: a sweep of a large zone reported every finding in one log line, beyond what CloudWatch
    /// keeps of a line.
    #[test]
    fn a_report_with_many_findings_fits_one_log_line_and_keeps_its_counts() {
        let findings: Vec<Finding> = (0..20_000)
            .map(|n| {
                Finding::new(
                    format!("arn:aws:ecs:us-east-1:1:task/c/{n:032x}"),
                    "records disagree with ECS: x",
                )
            })
            .collect();
        let report =
            serde_json::json!({"records_seen": 60_000, "disagreements": findings, "errors": ["one"]});
        assert!(report.to_string().len() > MAX_LOG_LINE_BYTES);
        let capped = capped_for_log(report);
        let logged = serde_json::Value::String(capped.to_string()).to_string();
        assert!(logged.len() <= MAX_LOG_LINE_BYTES - LOG_LINE_MARGIN);
        assert_eq!(capped["disagreements"].as_array().unwrap().len(), 100);
        assert_eq!(capped["disagreements_total"], 20_000);
        assert_eq!(capped["records_seen"], 60_000);
        assert_eq!(capped["errors"], serde_json::json!(["one"]), "short lists stay whole");
        let small = serde_json::json!({"disagreements": [], "records_seen": 1});
        assert_eq!(capped_for_log(small.clone()), small, "a report that fits is unchanged");
    }
}
