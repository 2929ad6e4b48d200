//! The sweeper's decisions, as pure functions with table tests: which tasks are dead (only on what ECS
//! or EC2 say explicitly), how many agent-silent tasks one sweep may withdraw, and which unhealthy tasks
//! may be stopped without risking a fleet.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::fleet::TaskAnswer;

/// What ECS and EC2 said about the host a task runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub ec2: Ec2View,
    /// How long the ECS agent has been seen disconnected (0 when connected).
    pub agent_disconnected_for: Duration,
}

/// EC2's word on the instance under a container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ec2View {
    /// EC2 described it in this state (`running`, `stopped`, `terminated`, ...).
    State(String),
    /// EC2 was asked and does not know the instance.
    NotFound,
    /// EC2 cannot vouch either way (not asked, failed, or not an EC2 instance), with why.
    Unknown(String),
}

/// What one sweep concludes about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// ECS or EC2 said explicitly that the task or its host is gone: its records go.
    Dead(String),
    /// Nothing explicit: nothing is deleted, and the report says why.
    Unknown(String),
    /// ECS still reports it running, but its agent has been disconnected past the grace: its records
    /// go only with more evidence (its endpoints fail too) and within the agent brake.
    AgentSilent(Duration),
}

/// The verdict on a task from ECS's answer (`None`: no answer) and, for a task on a container
/// instance, the host's state (`Err`: unknown, with why).
pub fn verdict(
    task: Option<&TaskAnswer>,
    host: Option<&Result<HostState, String>>,
    agent_grace: Duration,
) -> Verdict {
    let facts = match task {
        None => return Verdict::Unknown("ECS gave no answer about the task".into()),
        Some(TaskAnswer::Missing) => return Verdict::Dead("ECS reports the task MISSING".into()),
        Some(TaskAnswer::Found(facts)) => facts,
    };
    if facts.last_status == "STOPPED" || facts.last_status == "DELETED" {
        return Verdict::Dead(format!("ECS reports the task {}", facts.last_status));
    }
    if facts.container_instance.is_none() {
        // Fargate: no host of ours to judge; ECS's word on the task is all there is.
        return Verdict::Alive;
    }
    let host = match host {
        None => return Verdict::Unknown("its container instance was not described".into()),
        Some(Err(why)) => return Verdict::Unknown(why.clone()),
        Some(Ok(host)) => host,
    };
    let silent = host.agent_disconnected_for > agent_grace;
    match &host.ec2 {
        Ec2View::State(state)
            if ["terminated", "stopped", "shutting-down", "stopping"].contains(&state.as_str()) =>
        {
            Verdict::Dead(format!("its EC2 instance is {state}"))
        }
        Ec2View::NotFound => Verdict::Dead("EC2 does not know its instance".into()),
        Ec2View::Unknown(why) if silent => {
            Verdict::Unknown(format!("its ECS agent is disconnected and {why}"))
        }
        _ if silent => Verdict::AgentSilent(host.agent_disconnected_for),
        _ => Verdict::Alive,
    }
}

/// Whether one sweep may withdraw `candidates` agent-silent tasks (each with failing endpoints) when it
/// saw `running` tasks ECS reports RUNNING: at most `max_fraction` of them, or none at all, with why.
/// An outage of the control plane or of the hosts' network silences many agents at once; deleting their
/// tasks' records would black out whole services, so a large share stops the rule for this run.
pub fn agent_brake(candidates: usize, running: usize, max_fraction: f64) -> Result<(), String> {
    let allowed = (running as f64 * max_fraction).floor() as usize;
    if candidates <= allowed {
        return Ok(());
    }
    Err(format!(
        "agent brake: {candidates} of {running} running tasks have a disconnected agent and failing endpoints, \
         more than {:.0}% (ECSSD_AGENT_MAX_DELETE_FRACTION): suspect ECS or the network, not the tasks",
        max_fraction * 100.0
    ))
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

    use crate::fleet::TaskFacts;

    fn running(instance: Option<&str>) -> TaskAnswer {
        status("RUNNING", instance)
    }

    fn status(last_status: &str, instance: Option<&str>) -> TaskAnswer {
        TaskAnswer::Found(Box::new(TaskFacts {
            cluster_arn: "c".into(),
            last_status: last_status.into(),
            desired_status: "RUNNING".into(),
            running_for: None,
            container_instance: instance.map(String::from),
            containers: vec![],
            eni: None,
            task_definition_arn: None,
            environment_overrides: Default::default(),
        }))
    }

    fn host(ec2: Ec2View, disconnected_secs: u64) -> Result<HostState, String> {
        Ok(HostState { ec2, agent_disconnected_for: Duration::from_secs(disconnected_secs) })
    }

    fn ec2(state: &str) -> Ec2View {
        Ec2View::State(state.into())
    }

    #[test]
    fn only_explicit_answers_make_a_task_dead() {
        use Verdict::{AgentSilent, Alive, Dead, Unknown};
        let grace = Duration::from_secs(300);
        let unknown_ec2 = Ec2View::Unknown("EC2 did not answer".into());
        type Case = (&'static str, Option<TaskAnswer>, Option<Result<HostState, String>>, Verdict);
        let cases: Vec<Case> = vec![
            ("running on a healthy host", Some(running(Some("ci"))), Some(host(ec2("running"), 0)), Alive),
            ("on Fargate", Some(running(None)), None, Alive),
            ("stopped", Some(status("STOPPED", None)), None, Dead("ECS reports the task STOPPED".into())),
            ("missing", Some(TaskAnswer::Missing), None, Dead("ECS reports the task MISSING".into())),
            (
                "ECS said nothing",
                None,
                Some(host(Ec2View::NotFound, 0)),
                Unknown("ECS gave no answer about the task".into()),
            ),
            (
                "host not described",
                Some(running(Some("ci"))),
                None,
                Unknown("its container instance was not described".into()),
            ),
            (
                "host unknown to ECS",
                Some(running(Some("ci"))),
                Some(Err("ECS reports its container instance MISSING".into())),
                Unknown("ECS reports its container instance MISSING".into()),
            ),
            (
                "instance terminated",
                Some(running(Some("ci"))),
                Some(host(ec2("terminated"), 0)),
                Dead("its EC2 instance is terminated".into()),
            ),
            (
                "instance stopped",
                Some(running(Some("ci"))),
                Some(host(ec2("stopped"), 0)),
                Dead("its EC2 instance is stopped".into()),
            ),
            (
                "instance gone",
                Some(running(Some("ci"))),
                Some(host(Ec2View::NotFound, 0)),
                Dead("EC2 does not know its instance".into()),
            ),
            ("EC2 silent, agent fine", Some(running(Some("ci"))), Some(host(unknown_ec2.clone(), 0)), Alive),
            (
                "EC2 silent, agent away",
                Some(running(Some("ci"))),
                Some(host(unknown_ec2, 301)),
                Unknown("its ECS agent is disconnected and EC2 did not answer".into()),
            ),
            ("agent briefly away", Some(running(Some("ci"))), Some(host(ec2("running"), 60)), Alive),
            (
                "agent away too long",
                Some(running(Some("ci"))),
                Some(host(ec2("running"), 301)),
                AgentSilent(Duration::from_secs(301)),
            ),
        ];
        for (name, task, host, expected) in cases {
            assert_eq!(verdict(task.as_ref(), host.as_ref(), grace), expected, "{name}");
        }
    }

    #[test]
    fn the_agent_brake_allows_at_most_the_fraction_of_running_tasks() {
        assert_eq!(agent_brake(1, 10, 0.1), Ok(()));
        assert_eq!(agent_brake(0, 0, 0.1), Ok(()));
        let held = agent_brake(2, 10, 0.1).unwrap_err();
        assert!(held.contains("2 of 10 running tasks") && held.contains("more than 10%"), "{held}");
        assert!(agent_brake(1, 9, 0.1).is_err(), "floor(9 x 10%) = 0");
        assert_eq!(agent_brake(5, 10, 0.5), Ok(()));
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
