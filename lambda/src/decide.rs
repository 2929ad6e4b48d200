//! The sweeper's decisions, as pure functions with table tests: which tasks are dead, and which
//! unhealthy tasks may be stopped without risking a fleet.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What ECS said about one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// DescribeTasks returned it.
    Found {
        last_status: String,
        /// How long ago it started, if it has (for the health-check grace period).
        running_for: Option<Duration>,
        container_instance: Option<String>,
    },
    /// DescribeTasks reported it MISSING, or its cluster no longer exists.
    Missing,
    /// ECS could not be asked (an error other than "not found"): never grounds for deletion.
    Unknown,
}

/// What ECS and EC2 said about the host a task runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The EC2 instance's state name (`running`, `stopped`, `terminated`, ...); `None` when EC2 does
    /// not know the instance at all.
    pub ec2_state: Option<String>,
    /// How long the ECS agent has been seen disconnected (0 when connected).
    pub agent_disconnected_for: Duration,
}

/// Why a task is dead, for the report and the logs.
pub type DeadReason = String;

/// Whether a task's records should go: `Some(reason)` when the task or its host is dead.
pub fn dead_reason(task: &TaskState, host: Option<&HostState>, agent_grace: Duration) -> Option<DeadReason> {
    match task {
        TaskState::Missing => Some("ECS reports the task MISSING".into()),
        TaskState::Unknown => None,
        TaskState::Found { last_status, .. } if last_status == "STOPPED" || last_status == "DELETED" => {
            Some(format!("ECS reports the task {last_status}"))
        }
        TaskState::Found { .. } => {
            let host = host?;
            match host.ec2_state.as_deref() {
                None => Some("its EC2 instance no longer exists".into()),
                Some(state @ ("terminated" | "stopped" | "shutting-down" | "stopping")) => {
                    Some(format!("its EC2 instance is {state}"))
                }
                Some(_) if host.agent_disconnected_for > agent_grace => Some(format!(
                    "its ECS agent has been disconnected for {}s (grace {}s)",
                    host.agent_disconnected_for.as_secs(),
                    agent_grace.as_secs()
                )),
                Some(_) => None,
            }
        }
    }
}

/// One unhealthy task, with the services (SRV names) it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    pub task_arn: String,
    /// Every service it serves.
    pub services: BTreeSet<String>,
    /// The services whose checks it failed (it is still a healthy instance of the others).
    pub failed: BTreeSet<String>,
    pub reason: String,
}

/// Health of one service across its tasks in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceHealth {
    /// Tasks serving it (checked or in their grace period).
    pub tasks: usize,
    /// Tasks whose every target of this service answered 2xx (a task in its grace period is not
    /// known healthy yet).
    pub healthy: usize,
}

/// The safety limits on stopping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopLimits {
    /// At most this fraction of one service's tasks is stopped in one run (0.0 to 1.0).
    pub max_fraction: f64,
    /// Stop nothing, only report.
    pub dry_run: bool,
}

/// Splits unhealthy tasks into those to stop and those held back (with why). A task serving several
/// services must fit every service's budget. Nothing is stopped when more than `max_fraction` of all
/// checked tasks are unhealthy (that looks like the checker's network, not the tasks), or for a
/// service with no healthy task left (stopping would not leave a healthy instance).
pub fn allowed_stops(
    unhealthy: &[Unhealthy],
    services: &BTreeMap<String, ServiceHealth>,
    tasks_checked: usize,
    limits: StopLimits,
) -> (Vec<Unhealthy>, Vec<(Unhealthy, String)>) {
    let mut stop = Vec::new();
    let mut held = Vec::new();
    if limits.dry_run {
        return (stop, unhealthy.iter().map(|u| (u.clone(), "dry run".to_owned())).collect());
    }
    let share = unhealthy.len() as f64 / tasks_checked.max(1) as f64;
    if unhealthy.len() > 1 && share > limits.max_fraction {
        let why = format!(
            "{} of {tasks_checked} checked tasks are unhealthy, more than {:.0}%: suspect the checker's network",
            unhealthy.len(),
            limits.max_fraction * 100.0
        );
        return (stop, unhealthy.iter().map(|u| (u.clone(), why.clone())).collect());
    }
    let mut budget: BTreeMap<&str, usize> = services
        .iter()
        .map(|(name, health)| (name.as_str(), (health.tasks as f64 * limits.max_fraction).floor() as usize))
        .collect();
    let mut healthy: BTreeMap<&str, usize> = services.iter().map(|(n, h)| (n.as_str(), h.healthy)).collect();
    for task in unhealthy {
        // Stopping it must leave every service it serves a healthy instance, counting it out where it
        // is itself healthy, and fit every service's budget.
        let blocking: Vec<String> = task
            .services
            .iter()
            .filter_map(|service| {
                let left = budget.get(service.as_str()).copied().unwrap_or(0);
                let healthy_here = usize::from(!task.failed.contains(service));
                let others = healthy.get(service.as_str()).copied().unwrap_or(0).saturating_sub(healthy_here);
                if others == 0 {
                    Some(format!("{service} has no healthy task left without it"))
                } else if left == 0 {
                    let tasks = services.get(service).map_or(0, |h| h.tasks);
                    Some(format!(
                        "{service}: stopping more than {:.0}% of its {tasks} tasks in one run",
                        limits.max_fraction * 100.0
                    ))
                } else {
                    None
                }
            })
            .collect();
        if blocking.is_empty() {
            for service in &task.services {
                if let Some(left) = budget.get_mut(service.as_str()) {
                    *left -= 1;
                }
                if !task.failed.contains(service)
                    && let Some(count) = healthy.get_mut(service.as_str())
                {
                    *count -= 1;
                }
            }
            stop.push(task.clone());
        } else {
            held.push((task.clone(), blocking.join("; ")));
        }
    }
    (stop, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(instance: Option<&str>) -> TaskState {
        TaskState::Found {
            last_status: "RUNNING".into(),
            running_for: None,
            container_instance: instance.map(String::from),
        }
    }

    fn host(state: Option<&str>, disconnected_secs: u64) -> HostState {
        HostState {
            ec2_state: state.map(String::from),
            agent_disconnected_for: Duration::from_secs(disconnected_secs),
        }
    }

    #[test]
    fn which_tasks_are_dead() {
        let grace = Duration::from_secs(300);
        let stopped =
            TaskState::Found { last_status: "STOPPED".into(), running_for: None, container_instance: None };
        let cases: Vec<(&str, TaskState, Option<HostState>, Option<&str>)> = vec![
            ("running on a healthy host", running(Some("ci")), Some(host(Some("running"), 0)), None),
            ("running, host unknown to this run", running(None), None, None),
            ("stopped", stopped, None, Some("ECS reports the task STOPPED")),
            ("missing", TaskState::Missing, None, Some("ECS reports the task MISSING")),
            ("ECS not answering", TaskState::Unknown, Some(host(None, 0)), None),
            (
                "instance terminated",
                running(Some("ci")),
                Some(host(Some("terminated"), 0)),
                Some("its EC2 instance is terminated"),
            ),
            (
                "instance stopped",
                running(Some("ci")),
                Some(host(Some("stopped"), 0)),
                Some("its EC2 instance is stopped"),
            ),
            (
                "instance gone",
                running(Some("ci")),
                Some(host(None, 0)),
                Some("its EC2 instance no longer exists"),
            ),
            ("agent briefly away", running(Some("ci")), Some(host(Some("running"), 60)), None),
            (
                "agent away too long",
                running(Some("ci")),
                Some(host(Some("running"), 301)),
                Some("disconnected for 301s (grace 300s)"),
            ),
        ];
        for (name, task, host, expected) in cases {
            let reason = dead_reason(&task, host.as_ref(), grace);
            match expected {
                None => assert_eq!(reason, None, "{name}"),
                Some(text) => {
                    assert!(reason.as_deref().is_some_and(|r| r.contains(text)), "{name}: {reason:?}")
                }
            }
        }
    }

    fn sick(task: &str, services: &[&str]) -> Unhealthy {
        let services: BTreeSet<String> = services.iter().map(|s| (*s).to_owned()).collect();
        Unhealthy { task_arn: task.into(), failed: services.clone(), services, reason: "500".into() }
    }

    fn health(entries: &[(&str, usize, usize)]) -> BTreeMap<String, ServiceHealth> {
        entries
            .iter()
            .map(|(n, tasks, healthy)| ((*n).to_owned(), ServiceHealth { tasks: *tasks, healthy: *healthy }))
            .collect()
    }

    const HALF: StopLimits = StopLimits { max_fraction: 0.5, dry_run: false };

    fn names(list: &[Unhealthy]) -> Vec<&str> {
        list.iter().map(|u| u.task_arn.as_str()).collect()
    }

    #[test]
    fn at_most_the_fraction_of_a_service_is_stopped() {
        let unhealthy = [sick("a", &["web"]), sick("b", &["web"]), sick("c", &["web"])];
        let (stop, held) = allowed_stops(&unhealthy, &health(&[("web", 10, 7)]), 20, HALF);
        assert_eq!(names(&stop), ["a", "b", "c"]);
        assert!(held.is_empty());
        let (stop, held) = allowed_stops(&unhealthy[..2], &health(&[("web", 3, 1)]), 20, HALF);
        assert_eq!(names(&stop), ["a"], "floor(3 x 50%) = 1");
        assert!(held[0].1.contains("more than 50% of its 3 tasks"), "{held:?}");
    }

    #[test]
    fn the_last_instance_and_a_service_with_no_healthy_task_are_never_stopped() {
        let (stop, held) = allowed_stops(&[sick("a", &["web"])], &health(&[("web", 1, 0)]), 10, HALF);
        assert!(stop.is_empty());
        assert!(held[0].1.contains("no healthy task left without it"));
        let (stop, _) = allowed_stops(&[sick("a", &["solo"])], &health(&[("solo", 1, 1)]), 10, HALF);
        assert!(stop.is_empty(), "floor(1 x 50%) = 0: a single instance is never stopped");
    }

    #[test]
    fn a_task_must_fit_every_service_it_serves() {
        let unhealthy = [sick("a", &["web", "api"])];
        let (stop, held) = allowed_stops(&unhealthy, &health(&[("web", 4, 3), ("api", 1, 0)]), 10, HALF);
        assert!(stop.is_empty());
        assert!(held[0].1.contains("api has no healthy task left"));
    }

    #[test]
    fn the_last_healthy_instance_of_another_service_is_not_stopped() {
        // "a" fails web's check but is api's only healthy instance.
        let mut a = sick("a", &["web", "api"]);
        a.failed = BTreeSet::from(["web".to_owned()]);
        let services = health(&[("web", 10, 9), ("api", 2, 1)]);
        let (stop, held) = allowed_stops(&[a.clone()], &services, 10, HALF);
        assert!(stop.is_empty());
        assert!(held[0].1.contains("api has no healthy task left without it"), "{held:?}");
        let services = health(&[("web", 10, 9), ("api", 4, 2)]);
        let (stop, _) = allowed_stops(&[a], &services, 10, HALF);
        assert_eq!(names(&stop), ["a"], "another healthy api instance remains");
    }

    #[test]
    fn a_fleet_wide_failure_stops_nothing() {
        let unhealthy: Vec<_> = (0..6).map(|i| sick(&format!("t{i}"), &["web"])).collect();
        let (stop, held) = allowed_stops(&unhealthy, &health(&[("web", 10, 4)]), 10, HALF);
        assert!(stop.is_empty());
        assert_eq!(held.len(), 6);
        assert!(held[0].1.contains("suspect the checker's network"));
    }

    #[test]
    fn dry_run_stops_nothing() {
        let (stop, held) = allowed_stops(
            &[sick("a", &["web"])],
            &health(&[("web", 10, 9)]),
            10,
            StopLimits { max_fraction: 0.5, dry_run: true },
        );
        assert!(stop.is_empty());
        assert_eq!(held[0].1, "dry run");
    }
}
