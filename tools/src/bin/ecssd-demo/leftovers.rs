//! What a running demo has started, kept on disk so that `ecssd-demo --cleanup` can remove it after
//! the demo itself was killed (SIGKILL, a crash), when nothing of the demo is left to clean up: the
//! processes it started (moto, dnsmasq, the sidecars), each by pid and start time so that a pid the
//! kernel has since given to another process is never killed. One file per demo,
//! `target/ecssd-demo/<pid>`. The demo's containers need no record: they carry its pid in a label,
//! and the harness's `remove_leftovers` removes those whose process is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

/// The label the harness puts on every container, with the pid of the process that started it
/// (`ecssd_tests::docker`).
const STARTED_BY: &str = "ecssd.test.pid";

/// A process as the kernel knows it: its pid and its start time (clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProcessId {
    pub(crate) pid: u32,
    start: u64,
}

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    parent: u32,
    start: u64,
    zombie: bool,
    name: String,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (name) state ppid ... starttime ...": the name may hold spaces and parentheses.
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), ppid 4, starttime 22.
    Some(Stat {
        zombie: fields.first()? == &"Z",
        parent: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        name,
    })
}

impl ProcessId {
    /// The process with this pid now, unless there is none (or only its zombie).
    pub(crate) fn of(pid: u32) -> Option<Self> {
        stat(pid).filter(|s| !s.zombie).map(|s| Self { pid, start: s.start })
    }

    /// Whether this very process still runs.
    pub(crate) fn is_alive(self) -> bool {
        Self::of(self.pid) == Some(self)
    }

    fn kill(self) {
        if self.is_alive() {
            let _ = std::process::Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
        }
    }
}

/// Every living descendant of `root`, with its name.
pub(crate) fn descendants(root: u32) -> Vec<(ProcessId, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let all: Vec<(u32, Stat)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| !s.zombie)
        .collect();
    let mut found = Vec::new();
    let mut parents = BTreeSet::from([root]);
    loop {
        let next: Vec<&(u32, Stat)> =
            all.iter().filter(|(pid, s)| parents.contains(&s.parent) && !parents.contains(pid)).collect();
        if next.is_empty() {
            return found;
        }
        for (pid, s) in next {
            parents.insert(*pid);
            found.push((ProcessId { pid: *pid, start: s.start }, s.name.clone()));
        }
    }
}

fn directory() -> PathBuf {
    ecssd_tests::moto::workspace_root().join("target/ecssd-demo")
}

/// The record of this demo, updated as it starts things.
#[derive(Debug)]
pub(crate) struct Record {
    path: PathBuf,
    demo: ProcessId,
    processes: BTreeSet<(ProcessId, String)>,
}

impl Record {
    /// Starts this demo's record.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let demo = ProcessId::of(std::process::id()).context("reading this process's /proc/<pid>/stat")?;
        std::fs::create_dir_all(directory())
            .with_context(|| format!("creating {}", directory().display()))?;
        let record = Self { path: directory().join(demo.pid.to_string()), demo, processes: BTreeSet::new() };
        record.write()?;
        Ok(record)
    }

    /// Adds every process the demo has started by now.
    pub(crate) fn update(&mut self) -> anyhow::Result<()> {
        self.processes.extend(descendants(self.demo.pid));
        self.write()
    }

    fn write(&self) -> anyhow::Result<()> {
        let mut text = format!("demo {} {}\n", self.demo.pid, self.demo.start);
        for (process, name) in &self.processes {
            text.push_str(&format!("process {} {} {name}\n", process.pid, process.start));
        }
        // Written whole, then renamed: --cleanup never reads half a record.
        let partial = self.path.with_extension("partial");
        std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &self.path).with_context(|| format!("writing {}", self.path.display()))
    }

    /// Once every process the demo started has ended (they were sent SIGKILL as the demo dropped
    /// them; `wait` bounds how long they may take), removes the record: nothing is left. Otherwise the
    /// record stays for `--cleanup`, and the error names what still runs.
    pub(crate) async fn finish(self, wait: Duration) -> anyhow::Result<()> {
        let running = || self.processes.iter().filter(|(p, _)| p.is_alive()).map(|(_, name)| name.as_str());
        let ended = ecssd_tests::wait_for("the demo's processes to end", wait, || async {
            Ok(running().next().is_none().then_some(()))
        })
        .await;
        if ended.is_err() {
            let names: Vec<&str> = running().collect();
            anyhow::bail!("still running: {} (`ecssd-demo --cleanup` removes them)", names.join(", "));
        }
        std::fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}

/// A record left by a demo.
#[derive(Debug)]
pub(crate) struct Leftover {
    path: PathBuf,
    pub(crate) demo: ProcessId,
    processes: Vec<(ProcessId, String)>,
}

impl Leftover {
    /// Kills what is still running of the processes the demo started, waits until they are gone, and
    /// removes the record; gives the names of those killed.
    pub(crate) async fn remove(self) -> anyhow::Result<Vec<String>> {
        let running: Vec<(ProcessId, String)> =
            self.processes.into_iter().filter(|(p, _)| p.is_alive()).collect();
        for (process, _) in &running {
            process.kill();
        }
        ecssd_tests::wait_for("the killed processes to end", Duration::from_secs(10), || async {
            Ok(running.iter().all(|(p, _)| !p.is_alive()).then_some(()))
        })
        .await?;
        std::fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))?;
        Ok(running.into_iter().map(|(_, name)| name).collect())
    }
}

/// Every demo's record.
pub(crate) fn records() -> anyhow::Result<Vec<Leftover>> {
    let Ok(entries) = std::fs::read_dir(directory()) else { return Ok(Vec::new()) };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none() {
            found.push(parse(&path)?);
        }
    }
    Ok(found)
}

fn parse(path: &Path) -> anyhow::Result<Leftover> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bad = || format!("{} is not a demo's record (expected `demo <pid> <start>` lines)", path.display());
    let mut demo = None;
    let mut processes = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        let id = |pid: &str, start: &str| -> anyhow::Result<ProcessId> {
            Ok(ProcessId { pid: pid.parse().with_context(bad)?, start: start.parse().with_context(bad)? })
        };
        match fields.as_slice() {
            ["demo", pid, start] => demo = Some(id(pid, start)?),
            ["process", pid, start, name] => processes.push((id(pid, start)?, (*name).to_owned())),
            _ => anyhow::bail!(bad()),
        }
    }
    Ok(Leftover { path: path.to_owned(), demo: demo.with_context(bad)?, processes })
}

/// Removes every container this process started, also one it was creating when it was stopped (which
/// no task of the harness holds yet); gives how many.
pub(crate) async fn remove_own_containers() -> anyhow::Result<usize> {
    let docker = ecssd_tests::docker::connect().await?;
    let label = format!("{STARTED_BY}={}", std::process::id());
    let filters = std::collections::HashMap::from([("label".to_owned(), vec![label])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let mut removed = 0;
    for container in docker.list_containers(Some(options)).await? {
        if let Some(id) = container.id {
            let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            docker.remove_container(&id, Some(options)).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
