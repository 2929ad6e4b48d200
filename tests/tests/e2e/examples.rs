#![allow(clippy::unwrap_used)]
//! The example services end to end: time and calc tasks registered by their sidecars, DNS for the
//! zone (its authority, and a caching resolver in front as in a VPC), and the portal finding them by
//! SRV lookups through the resolver and failing over, also to an IPv6-only instance; then the portal
//! page in real headless Chromium.

use std::net::Ipv6Addr;
use std::process::Stdio;
use std::time::Duration;

use ecssd_records::RecordType;
use ecssd_tests::dns::{Answer, Dns, Rdata};
use ecssd_tests::examples::{
    ExampleCluster, ExampleTask, PASSWORD, USER, free_ipv6_port, free_port, ipv6_service_task, portal_task,
    service_task, start_dns, sync_dns,
};
use ecssd_tests::http::request_with_headers;
use ecssd_tests::moto::workspace_root;
use ecssd_tests::wait_for;
use ecssd_tests::world::{DOMAIN, World};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);

/// How long the caching resolver may keep answering with targets the zone no longer holds: the
/// sidecar's record TTL (its default, 10 s), plus slack for a loaded machine.
const CACHED_TARGETS: Duration = Duration::from_secs(10 + 5);

/// How much longer the portal's own cache may keep an answer than the resolver it asked: it caches
/// for the TTL the resolver hands out, whole seconds that may end up to a second after the resolver's
/// entry; plus slack.
const PORTAL_CACHE_LAG: Duration = Duration::from_secs(1 + 2);

/// time ×2 and calc ×2 registered, DNS serving the zone, the portal running.
struct Examples {
    world: World,
    time: Vec<ExampleTask>,
    calc: Vec<ExampleTask>,
    dns: Dns,
    _portal: ExampleTask,
    portal_port: u16,
}

impl Examples {
    async fn start() -> Self {
        let world = World::new().await.unwrap();
        let cluster = ExampleCluster::new(&world).await.unwrap();
        let mut time = Vec::new();
        let mut calc = Vec::new();
        for n in 1..=2 {
            time.push(service_task(&world, &cluster, "time", &format!("time-{n}")).await.unwrap());
            calc.push(service_task(&world, &cluster, "calc", &format!("calc-{n}")).await.unwrap());
        }
        world.wait_for_targets("_time._tcp", 2, WAIT).await.unwrap();
        world.wait_for_targets("_calc._tcp", 2, WAIT).await.unwrap();
        let dns = start_dns(&world).await.unwrap();
        let portal_port = free_port().unwrap();
        let portal = portal_task(&world, &cluster, &dns, portal_port).await.unwrap();
        Self { world, time, calc, dns, _portal: portal, portal_port }
    }

    /// GET on the portal's API: (status, JSON body).
    async fn api(&self, path: &str) -> (u16, serde_json::Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.portal_port);
        let (status, body) = request_with_headers("GET", &url, &[], None).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: {body:?}")))
    }

    /// Waits until the caching resolver, which the portal asks, answers `check` for `service`'s SRV
    /// name: what it cached from before the zone changed lives until its TTL runs out.
    async fn wait_for_resolver(&self, service: &str, what: &str, check: impl Fn(&Answer) -> bool) {
        let name = format!("{service}.{DOMAIN}");
        wait_for(what, CACHED_TARGETS, || async {
            Ok(self.dns.query(&name, RecordType::Srv).await.ok().filter(&check))
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn the_portal_finds_services_by_srv_and_fails_over() {
    let examples = Examples::start().await;

    // The original example portal's paths and field names (its page reads `value`, `containerid` and
    // `instanceid`), and the same answers under `/api/`.
    for path in ["/calc/(2%2B2)*3", "/api/calc/(2%2B2)*3"] {
        let (status, answer) = examples.api(path).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(answer["value"], 12.0);
        assert!(["calc-1", "calc-2"].contains(&answer["instanceid"].as_str().unwrap()), "{answer}");
        assert!(!answer["containerid"].as_str().unwrap().is_empty(), "{answer}");
    }
    let (status, answer) = examples.api("/calc/8%2F0").await;
    assert_eq!(status, 400, "a bad formula is calc's answer, not a failure: {answer}");
    assert_eq!(answer["error"], "division by zero");
    for path in ["/time/2006-01-02%2015:04", "/api/time/2006-01-02%2015:04"] {
        let (status, answer) = examples.api(path).await;
        assert_eq!(status, 200, "{path}: {answer}");
        let value = answer["value"].as_str().unwrap();
        assert!(value.len() == 16 && value.starts_with("20") && value.as_bytes()[10] == b' ', "{value}");
        assert!(["time-1", "time-2"].contains(&answer["instanceid"].as_str().unwrap()), "{answer}");
        assert!(!answer["containerid"].as_str().unwrap().is_empty(), "{answer}");
    }

    // calc-1 dies while DNS still lists it (as resolvers cache for the TTL): the portal fails over,
    // every answer comes from calc-2, and sooner or later calc-1 is tried first and reported failed.
    examples.calc[0].running.task.stop_container(0).await.unwrap();
    let failovers = wait_for("a request that tried the dead instance first", WAIT, || async {
        let (status, answer) = examples.api("/api/calc/7*6").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["value"], 42.0);
        assert_eq!(answer["instanceid"], "calc-2", "{answer}");
        Ok((!answer["failed"].as_array().unwrap().is_empty()).then_some(answer))
    })
    .await
    .unwrap();
    assert!(failovers["failed"][0]["error"].as_str().unwrap().contains("onnection"), "{failovers}");

    // Its sidecar withdrew it; once the authority serves the zone again and the resolver's cached
    // answer has expired, nothing fails first.
    examples.world.wait_for_targets("_calc._tcp", 1, WAIT).await.unwrap();
    assert!(sync_dns(&examples.world, &examples.dns).await.unwrap());
    examples.wait_for_resolver("_calc._tcp", "the resolver to drop calc-1", |a| a.records.len() == 1).await;
    // The portal's own copy of the old answer may outlive the resolver's by a second. While it lives,
    // each request tries calc-1 first at even odds: twenty in a row without a failure mean it is gone.
    wait_for("the portal to stop trying calc-1", PORTAL_CACHE_LAG, || async {
        for _ in 0..20 {
            let (status, answer) = examples.api("/api/calc/1").await;
            assert_eq!(status, 200, "{answer}");
            if answer["failed"] != serde_json::json!([]) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
    .unwrap();

    // No time instance registered at all: a clear 503.
    for task in &examples.time {
        task.running.task.stop_container(0).await.unwrap();
    }
    examples.world.wait_for_targets("_time._tcp", 0, WAIT).await.unwrap();
    sync_dns(&examples.world, &examples.dns).await.unwrap();
    examples
        .wait_for_resolver("_time._tcp", "the resolver to drop every time target", Answer::is_absent)
        .await;
    let answer = wait_for("the portal to find no time instance", PORTAL_CACHE_LAG, || async {
        let (status, answer) = examples.api("/api/time/15:04").await;
        Ok((status == 503).then_some(answer))
    })
    .await
    .unwrap();
    assert_eq!(answer["error"], "no instance of _time._tcp.servicediscovery.internal. is registered");
}

#[tokio::test]
async fn the_portal_reaches_an_ipv6_only_instance_by_its_aaaa_record() {
    let world = World::new().await.unwrap();
    let cluster = ExampleCluster::new(&world).await.unwrap();
    // calc-1 as before (IPv4, bridge mode) beside calc-v6, whose task has only the address ::1.
    let _calc = service_task(&world, &cluster, "calc", "calc-1").await.unwrap();
    let v6_port = free_ipv6_port().unwrap();
    let calc_v6 = ipv6_service_task(&world, &cluster, "calc", "calc-v6", v6_port).await.unwrap();
    let targets = world.wait_for_targets("_calc._tcp", 2, WAIT).await.unwrap();
    let v6_target = format!("{}.{DOMAIN}", calc_v6.placed.id());
    assert!(targets.iter().any(|t| *t == format!("1 1 {v6_port} {v6_target}")), "{targets:?}");
    let dns = start_dns(&world).await.unwrap();
    let portal_port = free_port().unwrap();
    let _portal = portal_task(&world, &cluster, &dns, portal_port).await.unwrap();

    // The resolver the portal asks answers AAAA ::1 for calc-v6's target, and no A record.
    let aaaa = dns.query(&v6_target, RecordType::Aaaa).await.unwrap();
    assert_eq!(aaaa.records, vec![Rdata::Aaaa(Ipv6Addr::LOCALHOST)], "{aaaa:?}");
    let a = dns.query(&v6_target, RecordType::A).await.unwrap();
    assert!(a.is_absent(), "an IPv6-only task has no A record: {a:?}");

    // Each request tries the two instances in random order, so calc-v6 answers one soon; a portal
    // that looked up A records only would never find it.
    let url = format!("http://127.0.0.1:{portal_port}/api/calc/6*7");
    let answer = wait_for("an answer from calc-v6", Duration::from_secs(10), || async {
        let (status, body) = request_with_headers("GET", &url, &[], None).await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["value"], 42.0, "{answer}");
        Ok((answer["instanceid"] == "calc-v6").then_some(answer))
    })
    .await
    .unwrap();
    assert_eq!(answer["answered_by"], format!("[::1]:{v6_port}"), "{answer}");
    assert_eq!(answer["target"], format!("{v6_target}."), "{answer}");
}

#[tokio::test]
async fn time_and_calc_require_basic_auth_but_health_is_open() {
    let world = World::new().await.unwrap();
    let cluster = ExampleCluster::new(&world).await.unwrap();
    let calc = service_task(&world, &cluster, "calc", "calc-1").await.unwrap();
    let port = calc.running.task.host_port(0, 8080).await.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let health = wait_for("calc to serve /health", WAIT, || async {
        Ok(request_with_headers("GET", &format!("{base}/health"), &[], None).await.ok())
    })
    .await
    .unwrap();
    assert_eq!(health.0, 200);
    assert!(String::from_utf8_lossy(&health.1).contains("OK"));
    let (status, _) = request_with_headers("GET", &format!("{base}/calc/1%2B1"), &[], None).await.unwrap();
    assert_eq!(status, 401);
    let credentials = ecssd_example_web::Auth::new(USER, PASSWORD).header();
    let authorized = [("authorization", credentials.as_str())];
    let (status, body) =
        request_with_headers("GET", &format!("{base}/calc/1%2B1"), &authorized, None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["value"], 2.0);
    let hostile = format!("{base}/calc/{}", "(".repeat(200));
    let (status, body) = request_with_headers("GET", &hostile, &authorized, None).await.unwrap();
    assert_eq!(status, 400, "{body:?}");
    let wrong = ecssd_example_web::Auth::new(USER, "guess").header();
    let (status, _) =
        request_with_headers("GET", &format!("{base}/calc/1"), &[("authorization", wrong.as_str())], None)
            .await
            .unwrap();
    assert_eq!(status, 401);
}

/// The browser driver (`tests/browser/portal_driver.py`): one command in, one JSON line out.
struct Browser {
    child: tokio::process::Child,
    input: tokio::process::ChildStdin,
    output: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Browser {
    async fn open(url: &str) -> Self {
        let mut child = tokio::process::Command::new(workspace_root().join(".tools/venv/bin/python"))
            .arg(workspace_root().join("tests/browser/portal_driver.py"))
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(WAIT, output.next_line()).await.unwrap().unwrap().unwrap();
        assert_eq!(ready, r#"{"ready": true}"#);
        Self { child, input, output }
    }

    async fn submit(&mut self, box_name: &str, text: &str) -> serde_json::Value {
        self.input.write_all(format!("{box_name} {text}\n").as_bytes()).await.unwrap();
        let line = tokio::time::timeout(WAIT, self.output.next_line()).await.unwrap().unwrap().unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn the_portal_page_works_in_headless_chromium() {
    let examples = Examples::start().await;
    let mut browser = Browser::open(&format!("http://127.0.0.1:{}/", examples.portal_port)).await;

    let time = browser.submit("time", "15:04 Jan 2").await;
    assert_eq!(time["error"], false, "{time}");
    let shown = time["result"].as_str().unwrap();
    let (clock, date) = shown.split_once(' ').unwrap();
    assert!(clock.len() == 5 && clock.as_bytes()[2] == b':', "{shown}");
    assert!(date.len() >= 5 && date.as_bytes()[0].is_ascii_uppercase(), "{shown}");
    assert!(time["meta"].as_str().unwrap().contains("answered by time-"), "{time}");

    let calc = browser.submit("calc", "(2+2)*3").await;
    assert_eq!(calc["result"], "12", "{calc}");
    let bad = browser.submit("calc", "2*(3").await;
    assert_eq!(bad["error"], true);
    assert!(bad["result"].as_str().unwrap().contains("expected ')'"), "{bad}");
    // Functions and constants: typed, and the page's own example buttons.
    let function = browser.submit("calc", "sqrt(16)+2^3").await;
    assert_eq!(function["result"], "12", "{function}");
    assert_eq!(function["error"], false, "{function}");
    let domain = browser.submit("calc", "sqrt(-1)").await;
    assert_eq!(domain["error"], true);
    assert!(domain["result"].as_str().unwrap().contains("sqrt needs x >= 0"), "{domain}");
    let example = browser.submit("calc-example", "cos(pi)").await;
    assert_eq!(example["result"], "-1", "{example}");
    assert_eq!(example["input"], "cos(pi)", "the example fills the box: {example}");

    // One calc instance dies (DNS still lists it): the page keeps answering, from calc-2, and shows
    // the failover when calc-1 happened to be tried first.
    examples.calc[0].running.task.stop_container(0).await.unwrap();
    let mut seen_failover = false;
    for _ in 0..40 {
        let answer = browser.submit("calc", "7*6").await;
        assert_eq!(answer["result"], "42", "{answer}");
        assert_eq!(answer["instance"], "calc-2", "{answer}");
        if answer["meta"].as_str().unwrap().contains("failed first") {
            seen_failover = true;
            break;
        }
    }
    assert!(seen_failover, "in 40 tries the dead instance was never tried first");
}
