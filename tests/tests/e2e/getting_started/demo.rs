#![allow(clippy::unwrap_used)]
//! The demo leaves nothing behind however it is stopped: Ctrl-C through a pipe (`scripts/demo | tee
//! demo.log`: the terminal sends SIGINT to the whole pipeline, so the demo's output goes nowhere while
//! it cleans up), SIGTERM to the demo alone, its terminal closed (SIGHUP to the pipeline); and `ecssd-demo
//! --cleanup` removes what a demo killed outright (SIGKILL) left running, its dnsmasq included.
//!
//! What the demo started is found independently of how it keeps track: every process below the one
//! the test spawned (by pid and start time, from `/proc`), and every container labelled with the
//! demo's pid (as the harness labels a process's containers).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ecssd_tests::moto::workspace_root;
use ecssd_tests::wait_for;
use tokio::process::{Child, Command};

/// A cold demo waits for moto, four tasks with their sidecars, a sweep and the portal.
const START: Duration = Duration::from_secs(240);
/// Stopping: the sidecars get 10 s to withdraw, then containers are removed.
const STOP: Duration = Duration::from_secs(60);

/// The demo's binary: `ECSSD_TEST_BIN_DIR`'s (another build's, to show a test fails there), else built
/// here, since the workspace build of `scripts/test` leaves the tools out. The environment the test
/// runner adds is not passed on, so that this build shares the workspace build's artifacts.
async fn demo_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os("ECSSD_TEST_BIN_DIR") {
        return PathBuf::from(dir).join("ecssd-demo");
    }
    let mut command = Command::new("cargo");
    command.args(["build", "--locked", "--quiet", "-p", "ecssd-tools", "--bin", "ecssd-demo"]);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let added_by_runner =
            ["CARGO_PKG", "CARGO_MANIFEST", "CARGO_BIN", "CARGO_CRATE", "CARGO_PRIMARY", "NEXTEST"]
                .iter()
                .any(|prefix| key.starts_with(prefix))
                || key == "CARGO_TARGET_TMPDIR"
                || key == "LD_LIBRARY_PATH"
                || key.starts_with("RUST_TEST");
        if added_by_runner {
            command.env_remove(key.as_ref());
        }
    }
    let status = command.current_dir(workspace_root()).status().await.unwrap();
    assert!(status.success(), "building ecssd-demo: {status}");
    ecssd_tests::sidecar::binary("ecssd-demo").unwrap()
}

/// A process, by pid and start time (a pid the kernel gives out again is another process).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Process {
    pid: u32,
    start: u64,
    name: String,
}

/// `/proc/<pid>/stat`: (parent, start time, name), unless the process is gone or a zombie.
fn stat(pid: u32) -> Option<(u32, u64, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields[0] == "Z" {
        return None;
    }
    Some((fields[1].parse().ok()?, fields[19].parse().ok()?, head.split_once('(')?.1.to_owned()))
}

impl Process {
    fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|(_, start, _)| start == self.start)
    }
}

/// `root` and every process below it now.
fn process_tree(root: u32) -> Vec<Process> {
    let all: Vec<(u32, (u32, u64, String))> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect();
    let mut tree: Vec<Process> = all
        .iter()
        .filter(|(pid, _)| *pid == root)
        .map(|(pid, (_, start, name))| Process { pid: *pid, start: *start, name: name.clone() })
        .collect();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, (parent, start, name)) in &all {
            if tree.iter().any(|p| p.pid == *parent) && !tree.iter().any(|p| p.pid == *pid) {
                tree.push(Process { pid: *pid, start: *start, name: name.clone() });
                grew = true;
            }
        }
    }
    tree
}

/// Ids of the containers (running or not) labelled as started by process `pid`.
async fn containers_of(pid: u32) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter", &format!("label=ecssd.test.pid={pid}")])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "docker ps: {output:?}");
    String::from_utf8(output.stdout).unwrap().split_whitespace().map(str::to_owned).collect()
}

/// A demo started the way a user starts it, in a process group of its own (as a terminal's job).
struct Demo {
    /// The process spawned: the demo, or the shell running the pipeline.
    child: Child,
    /// Its standard output; removed when dropped.
    log: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the demo's output:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            eprintln!(
                "its errors:\n{}",
                std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(self.log.with_extension("err"));
    }
}

impl Demo {
    /// `ecssd-demo`, alone or as `ecssd-demo | tee <log>`, its output in the log.
    async fn start(piped: bool) -> Self {
        let binary = demo_binary().await;
        let log =
            std::env::temp_dir().join(format!("ecssd-demo-{}-{}.log", std::process::id(), fastrand::u64(..)));
        let mut command = if piped {
            let mut shell = Command::new("sh");
            shell.arg("-c").arg(r#""$0" | tee "$1" >/dev/null"#).arg(&binary).arg(&log);
            shell.stdout(Stdio::null());
            shell
        } else {
            let mut demo = Command::new(&binary);
            demo.stdout(std::fs::File::create(&log).unwrap());
            demo
        };
        // Its errors, to show when a test fails.
        let errors = std::fs::File::create(log.with_extension("err")).unwrap();
        // As a user runs it: its own moto, not the test run's fork server.
        command.env_remove("ECSSD_MOTO_FORKS").stdin(Stdio::null()).stderr(errors).process_group(0);
        let child = command.kill_on_drop(true).spawn().unwrap();
        Self { child, log }
    }

    fn group(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Waits until the demo has printed `text`; fails if it exits first.
    async fn wait_for_output(&mut self, text: &str) {
        let log = self.log.clone();
        let child = &mut self.child;
        wait_for(&format!("the demo to print {text:?}"), START, || {
            let printed = std::fs::read_to_string(&log).unwrap_or_default().contains(text);
            let exited = child.try_wait();
            async move {
                anyhow::ensure!(printed || exited?.is_none(), "the demo exited before it printed {text:?}");
                Ok(printed.then_some(()))
            }
        })
        .await
        .unwrap();
    }

    /// The demo's pid and every process of the job now; checks it has started dnsmasq, a sidecar and
    /// containers, so that "nothing left" below means something.
    async fn started(&self) -> (u32, Vec<Process>) {
        let processes = process_tree(self.group());
        let demo =
            processes.iter().find(|p| p.name == "ecssd-demo").unwrap_or_else(|| panic!("{processes:?}"));
        for name in ["dnsmasq", "ecssd-sidecar"] {
            assert!(processes.iter().any(|p| p.name == name), "no {name} among {processes:?}");
        }
        assert!(!containers_of(demo.pid).await.is_empty(), "the demo has no containers yet");
        (demo.pid, processes)
    }

    /// Sends `signal` (`INT`, `TERM`, ...) to `pid`, or with `-` before it to a process group.
    async fn signal(signal: &str, target: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg("--").arg(target).status().await.unwrap();
        assert!(status.success(), "kill -{signal} {target}");
    }

    async fn wait_for_exit(&mut self) {
        tokio::time::timeout(STOP, self.child.wait()).await.expect("the demo did not exit").unwrap();
    }
}

/// Nothing of what the demo started runs, and none of its containers exists.
async fn assert_nothing_left(demo_pid: u32, processes: &[Process]) {
    let running: Vec<&Process> = processes.iter().filter(|p| p.is_alive()).collect();
    assert!(running.is_empty(), "still running: {running:?}");
    let containers = containers_of(demo_pid).await;
    assert!(containers.is_empty(), "containers left: {containers:?}");
}

/// Stops a demo with `signal` sent to its whole job or to the demo alone, once it printed `when`.
async fn stopped_with(signal: &str, whole_job: bool, piped: bool, when: &str) {
    let mut demo = Demo::start(piped).await;
    demo.wait_for_output(when).await;
    let (demo_pid, processes) = demo.started().await;
    let target = if whole_job { format!("-{}", demo.group()) } else { demo_pid.to_string() };
    Demo::signal(signal, &target).await;
    // The demo itself, not the shell of its pipeline, which a signal to the job ends at once.
    let demo_process = processes.iter().find(|p| p.pid == demo_pid).unwrap();
    wait_for("the demo to exit", STOP, || async { Ok((!demo_process.is_alive()).then_some(())) })
        .await
        .unwrap();
    demo.wait_for_exit().await;
    assert_nothing_left(demo_pid, &processes).await;
}

/// As reported: `scripts/demo | tee demo.log`, Ctrl-C while the tasks start.
#[tokio::test]
async fn ctrl_c_through_a_pipe_while_tasks_start_removes_everything_the_demo_started() {
    stopped_with("INT", true, true, "task calc-1 (").await;
}

#[tokio::test]
async fn sigterm_while_tasks_start_removes_everything_the_demo_started() {
    stopped_with("TERM", false, false, "task time-1 (").await;
}

#[tokio::test]
async fn closing_its_terminal_once_the_portal_runs_removes_everything_the_demo_started() {
    stopped_with("HUP", true, true, "the portal: http://").await;
}

#[tokio::test]
async fn cleanup_removes_what_a_killed_demo_left_dnsmasq_included() {
    let mut demo = Demo::start(false).await;
    // Killed once it runs, not mid-start: a container create in flight when the demo dies is finished
    // by Docker after the kill, possibly after --cleanup looked (a fresh-clone CI run saw one left).
    demo.wait_for_output("the portal: http://").await;
    let (demo_pid, processes) = demo.started().await;
    Demo::signal("KILL", &demo_pid.to_string()).await;
    demo.wait_for_exit().await;
    let dnsmasq = processes.iter().find(|p| p.name == "dnsmasq").unwrap();
    assert!(dnsmasq.is_alive(), "a killed demo leaves its dnsmasq running");
    assert!(!containers_of(demo_pid).await.is_empty(), "a killed demo leaves its containers");

    let output = Command::new(demo_binary().await).arg("--cleanup").output().await.unwrap();
    assert!(output.status.success(), "ecssd-demo --cleanup: {output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("dnsmasq"), "--cleanup names what it killed: {said}");
    assert_nothing_left(demo_pid, &processes).await;
}
