//! Health check outcomes tallied per task and per service, without I/O: which tasks are unhealthy (with
//! the services they failed), and per service how many tasks serve it and how many are healthy. Only
//! targets ECS confirmed are ever checked, and each task counts once per service.

use std::collections::{BTreeMap, BTreeSet};

use crate::sweep::decide::{ServiceHealth, Unhealthy};
use crate::sweep::health::Outcome;

/// A task whose targets were checked (or are in their grace period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTask {
    pub task_arn: String,
    /// Every service it serves.
    pub services: BTreeSet<String>,
    /// Started too recently to be checked: it serves, but is not known healthy yet.
    pub in_grace: bool,
}

/// The tally: unhealthy tasks, health per service, and how many tasks were checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub unhealthy: Vec<Unhealthy>,
    pub services: BTreeMap<String, ServiceHealth>,
    pub tasks_checked: usize,
}

/// Tallies `outcomes`, each (index into `tasks`, service, outcome of one target).
pub fn tally(tasks: &[CheckedTask], outcomes: &[(usize, String, Outcome)]) -> Tally {
    let mut first_failure: BTreeMap<usize, String> = BTreeMap::new();
    let mut failed: BTreeSet<(usize, &str)> = BTreeSet::new();
    let mut unknown: BTreeSet<(usize, &str)> = BTreeSet::new();
    let mut checked: BTreeSet<usize> = BTreeSet::new();
    for (task, service, outcome) in outcomes {
        checked.insert(*task);
        match outcome {
            Outcome::Healthy => {}
            Outcome::Unhealthy(reason) => {
                first_failure.entry(*task).or_insert_with(|| reason.clone());
                failed.insert((*task, service.as_str()));
            }
            // Neither healthy nor failed: unknown is not gone.
            Outcome::Unreachable(_) => {
                unknown.insert((*task, service.as_str()));
            }
        }
    }
    let mut tally = Tally { tasks_checked: checked.len(), ..Tally::default() };
    for (index, task) in tasks.iter().enumerate() {
        let was_checked = checked.contains(&index);
        if !was_checked && !task.in_grace {
            continue;
        }
        for service in &task.services {
            let health = tally.services.entry(service.clone()).or_default();
            health.tasks += 1;
            let key = (index, service.as_str());
            health.healthy += usize::from(was_checked && !failed.contains(&key) && !unknown.contains(&key));
        }
    }
    tally.unhealthy = first_failure
        .into_iter()
        .map(|(index, reason)| {
            let task = &tasks[index];
            let failed = failed.iter().filter(|(i, _)| *i == index).map(|(_, s)| (*s).to_owned()).collect();
            Unhealthy { task_arn: task.task_arn.clone(), services: task.services.clone(), failed, reason }
        })
        .collect();
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(arn: &str, services: &[&str], in_grace: bool) -> CheckedTask {
        CheckedTask {
            task_arn: arn.into(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            in_grace,
        }
    }

    fn outcome(task: usize, service: &str, ok: bool) -> (usize, String, Outcome) {
        let outcome = if ok { Outcome::Healthy } else { Outcome::Unhealthy(format!("{service} failed")) };
        (task, service.into(), outcome)
    }

    #[test]
    fn services_count_each_task_once_and_failures_name_their_services() {
        let tasks =
            [task("a", &["web", "api"], false), task("b", &["web"], false), task("c", &["web"], true)];
        // "a" serves web on two ports, one failing; api passes.
        let outcomes = [
            outcome(0, "web", true),
            outcome(0, "web", false),
            outcome(0, "api", true),
            outcome(1, "web", true),
        ];
        let tally = tally(&tasks, &outcomes);
        assert_eq!(tally.tasks_checked, 2);
        assert_eq!(
            tally.services["web"],
            ServiceHealth { tasks: 3, healthy: 1 },
            "c in grace serves, unproven"
        );
        assert_eq!(tally.services["api"], ServiceHealth { tasks: 1, healthy: 1 });
        assert_eq!(tally.unhealthy.len(), 1);
        let a = &tally.unhealthy[0];
        assert_eq!((a.task_arn.as_str(), a.reason.as_str()), ("a", "web failed"));
        assert_eq!(a.failed, BTreeSet::from(["web".to_owned()]));
    }

    /// A target this function cannot reach is neither unhealthy nor healthy: its task is never
    /// stopped for it, nor counted as serving well.
    #[test]
    fn an_unreachable_target_is_neither_unhealthy_nor_healthy() {
        let tasks = [task("a", &["web"], false), task("b", &["web"], false)];
        let unreachable = (1, "web".to_owned(), Outcome::Unreachable("no route".into()));
        let tally = tally(&tasks, &[outcome(0, "web", true), unreachable]);
        assert!(tally.unhealthy.is_empty(), "{:?}", tally.unhealthy);
        assert_eq!(tally.services["web"], ServiceHealth { tasks: 2, healthy: 1 });
    }

    #[test]
    fn a_task_neither_checked_nor_in_grace_is_not_counted() {
        let tasks = [task("a", &["web"], false), task("b", &["web"], false)];
        let tally = tally(&tasks, &[outcome(0, "web", true)]);
        assert_eq!(tally.services["web"], ServiceHealth { tasks: 1, healthy: 1 });
    }
}
