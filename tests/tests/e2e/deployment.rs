#![allow(clippy::unwrap_used)]
//! The SAM template: it lints clean (cfn-lint, `sam validate --lint`), its rendered IAM (the SAM
//! transform run offline by `tests/sam/render.py`) is scoped as the README promises, Lambda never
//! retries a scheduled sweep, the sweep's limits reach the function as parameters, and ECS's own
//! "task stopped" events reach the withdrawer (issue 13): one rule, one queue with a dead-letter
//! queue, one event source mapping, built from the same binary as the sweeper; and a zone the stack
//! creates gets a short negative-caching time from a custom resource, a zone it is given never does
//! (issue 16). And the task definition examples follow the README's rules: EC2 with the Docker socket,
//! and Fargate with task metadata and no socket (issue 12).

use std::process::Command;

use ecssd_tests::moto::workspace_root;
use serde_json::Value;

fn tool(path: &str) -> Command {
    let mut command = Command::new(workspace_root().join(path));
    command
        .current_dir(workspace_root())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn run(mut command: Command) -> (bool, String) {
    let output = command.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn cfn_lint_finds_nothing() {
    let mut lint = tool(".tools/venv/bin/cfn-lint");
    lint.arg("template.yaml");
    let (ok, output) = run(lint);
    assert!(ok && output.trim().is_empty(), "cfn-lint: {output}");
}

#[test]
fn sam_validate_lint_passes() {
    let mut validate = tool(".tools/sam/bin/sam");
    validate.args(["validate", "--lint", "--template-file", "template.yaml"]);
    let (ok, output) = run(validate);
    assert!(ok && output.contains("is a valid SAM Template"), "sam validate --lint: {output}");
}

/// The CloudFormation template SAM deploys, with `overrides` as parameters.
fn rendered(overrides: &[&str]) -> Value {
    let mut render = tool(".tools/sam/bin/python");
    render.arg("tests/sam/render.py").arg("template.yaml").args(overrides);
    let output = render.output().unwrap();
    assert!(output.status.success(), "render: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every (resource, statement) of the stack's IAM policies, for resources its conditions create;
/// a statement chosen by `Fn::If` is the one the parameters choose (none for `AWS::NoValue`), the
/// rest is left as written.
fn statements(stack: &Stack) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (name, resource) in stack.template["Resources"].as_object().unwrap() {
        if !stack.creates(name) {
            continue;
        }
        let properties = &resource["Properties"];
        let documents: Vec<&Value> = match resource["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => {
                properties["Policies"].as_array().unwrap().iter().map(|p| &p["PolicyDocument"]).collect()
            }
            "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy" => vec![&properties["PolicyDocument"]],
            _ => continue,
        };
        for document in documents {
            for statement in document["Statement"].as_array().unwrap() {
                let chosen = match statement.get("Fn::If") {
                    Some(choice) if stack.condition(choice[0].as_str().unwrap()) => &choice[1],
                    Some(choice) => &choice[2],
                    None => statement,
                };
                if chosen != &reference("AWS::NoValue") {
                    found.push((name.clone(), chosen.clone()));
                }
            }
        }
    }
    found
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(action) => vec![action.clone()],
        Value::Array(actions) => actions.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
        other => panic!("unexpected Action {other}"),
    }
}

fn record_types_condition(statement: &Value) -> Value {
    statement["Condition"]["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsRecordTypes"].clone()
}

/// Whether `statement` allows changing the zone's SOA, and then only that: an UPSERT of the SOA at
/// the zone's apex.
fn changes_only_the_soa(statement: &Value) -> bool {
    let only = &statement["Condition"]["ForAllValues:StringEquals"];
    if record_types_condition(statement) != serde_json::json!(["SOA"]) {
        return false;
    }
    assert_eq!(only["route53:ChangeResourceRecordSetsActions"], serde_json::json!(["UPSERT"]), "{statement}");
    assert_eq!(
        only["route53:ChangeResourceRecordSetsNormalizedRecordNames"],
        serde_json::json!([reference("DomainName")]),
        "{statement}"
    );
    true
}

#[test]
fn iam_is_scoped_to_the_zone_the_record_types_and_the_watched_clusters() {
    let keeps_soa = ["ZoneVpcId=vpc-0123456789abcdef0", "SweeperKeepsNegativeTtl=true"];
    for overrides in [ALL_CLUSTERS, NAMED_CLUSTERS, &keeps_soa] {
        let stack = Stack::rendered(overrides);
        let template = &stack.template;
        let all = statements(&stack);
        assert!(!all.is_empty());
        for (resource, statement) in &all {
            let actions = actions(statement);
            if statement["Effect"] == "Deny" {
                // Denies only of the sweeper's agent clock, to the sidecars (issue 27: a task could
                // rewrite it) and to the batcher that writes what they hand over (issue 26).
                assert!(["SidecarPolicy", "BatcherRole"].contains(&resource.as_str()), "{statement}");
                assert_eq!(actions, ["route53:ChangeResourceRecordSets"]);
                let names = &statement["Condition"]["ForAnyValue:StringLike"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"];
                assert_eq!(names, &serde_json::json!(["_ecssd-agent.*"]), "{statement}");
                continue;
            }
            assert_eq!(statement["Effect"], "Allow", "{resource}: {statement}");
            for action in &actions {
                assert!(!action.contains('*'), "{resource}: wildcard action {action}");
            }
            if statement["Resource"] == "*" {
                // Only actions IAM cannot scope to a resource may use "*".
                for action in &actions {
                    assert!(
                        [
                            "ec2:DescribeInstances",
                            "ecs:DescribeTaskDefinition",
                            "route53:ListHostedZonesByName"
                        ]
                        .contains(&action.as_str()),
                        "{resource}: {action} on *"
                    );
                }
            }
            if actions.iter().any(|a| a == "route53:ChangeResourceRecordSets") {
                let zone = statement["Resource"]["Fn::Sub"][0].as_str().unwrap();
                assert_eq!(zone, "arn:${AWS::Partition}:route53:::hostedzone/${ZoneId}", "{resource}");
                // The SOA only for the zone settings function, or the sweeper when told to keep it.
                if !changes_only_the_soa(statement) {
                    assert_eq!(
                        record_types_condition(statement),
                        serde_json::json!(["SRV", "A", "AAAA", "TXT"]),
                        "{resource}"
                    );
                }
            }
            // Task definitions are not in a cluster (and IAM scopes DescribeTaskDefinition to nothing).
            if actions.iter().any(|a| a.starts_with("ecs:") && a != "ecs:DescribeTaskDefinition") {
                assert!(
                    statement["Condition"]["ArnLike"]["ecs:cluster"].is_object(),
                    "{resource}: {statement}"
                );
            }
        }
        let sidecar: Vec<String> = all
            .iter()
            .filter(|(r, s)| r == "SidecarPolicy" && s["Effect"] == "Allow")
            .flat_map(|(_, s)| actions(s))
            .collect();
        // The sidecar finds its zone by domain name unless it is given ECSSD_ZONE_ID; and its host's
        // address through ECS and EC2 when neither the container metadata file nor IMDS gives it.
        assert_eq!(
            sidecar,
            [
                "route53:ChangeResourceRecordSets",
                "route53:ListResourceRecordSets",
                "route53:ListHostedZonesByName",
                "ecs:DescribeTasks",
                "ecs:DescribeContainerInstances",
                "ec2:DescribeInstances",
                "sqs:SendMessage"
            ]
        );
        // Its ECS reads: tasks and container instances of this account and region, in the watched
        // clusters (checked above), and nothing else of ECS.
        for (_, statement) in
            all.iter().filter(|(r, s)| r == "SidecarPolicy" && actions(s)[0].starts_with("ecs:"))
        {
            let resources: Vec<&str> = statement["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Fn::Sub"].as_str().unwrap())
                .collect();
            assert_eq!(
                resources,
                [
                    "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/*",
                    "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:container-instance/*"
                ],
                "{statement}"
            );
        }
        // Every execution role (the sweeper's, the withdrawer's): only logging (and, in a VPC, ENI)
        // managed policies, never one that grants on "*" what the inline statements scope.
        let roles: Vec<(&String, &Value)> = template["Resources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, r)| r["Type"] == "AWS::IAM::Role" && stack.creates(name))
            .collect();
        let names: Vec<&String> = roles.iter().map(|(name, _)| *name).collect();
        let expected: &[&str] = if stack.condition("CreateZone") {
            &["BatcherRole", "SweeperRole", "WithdrawerRole", "ZoneSettingsRole"]
        } else {
            &["BatcherRole", "SweeperRole", "WithdrawerRole"]
        };
        assert_eq!(names, expected, "the roles of the functions");
        for (_, role) in roles {
            for managed in role["Properties"]["ManagedPolicyArns"].as_array().unwrap() {
                let managed = managed.as_str().unwrap();
                assert!(!managed.contains("FullAccess"), "no full-access managed policy: {managed}");
                assert!(
                    managed.contains("AWSLambdaBasicExecutionRole")
                        || managed.contains("AWSLambdaVPCAccessExecutionRole"),
                    "{managed}"
                );
            }
        }
        let function = &template["Resources"]["Sweeper"]["Properties"];
        assert_eq!(function["ReservedConcurrentExecutions"], 1, "two sweeps never overlap");
        assert_eq!(function["Handler"], "bootstrap");
    }
}

#[test]
fn the_sweeper_may_not_list_clusters() {
    // It sweeps the named clusters, or those the records mention; it never enumerates the account's.
    for overrides in [ALL_CLUSTERS, NAMED_CLUSTERS] {
        for (resource, statement) in statements(&Stack::rendered(overrides)) {
            for action in actions(&statement) {
                // IAM matches actions case-insensitively.
                assert!(
                    !action.to_ascii_lowercase().starts_with("ecs:list"),
                    "{resource} allows {action}: {statement}"
                );
            }
        }
    }
}

#[test]
fn lambda_never_retries_a_scheduled_sweep() {
    let template = rendered(&["ZoneVpcId=vpc-0123456789abcdef0"]);
    let resources = template["Resources"].as_object().unwrap();
    // The schedule invokes the unqualified function, that is $LATEST. (The other rule, ECS's task
    // stops, targets a queue; the withdrawer is invoked synchronously by its event source mapping.)
    let schedules: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Events::Rule" && r["Properties"]["ScheduleExpression"].is_object())
        .collect();
    assert_eq!(schedules.len(), 1, "one schedule: {schedules:?}");
    assert_eq!(schedules[0]["Properties"]["ScheduleExpression"], serde_json::json!({"Ref": "SweepSchedule"}));
    let targets = schedules[0]["Properties"]["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(targets[0]["Arn"], serde_json::json!({"Fn::GetAtt": ["Sweeper", "Arn"]}));
    let configs: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::EventInvokeConfig")
        .map(|r| &r["Properties"])
        .collect();
    assert_eq!(configs.len(), 1, "one asynchronous-invocation config: {configs:?}");
    let config = configs[0];
    assert_eq!(config["FunctionName"], serde_json::json!({"Ref": "Sweeper"}));
    assert_eq!(config["Qualifier"], "$LATEST", "the version the schedule invokes");
    // A retry would be a second sweep after a failed or timed-out one; the next scheduled run is the
    // retry.
    assert_eq!(config["MaximumRetryAttempts"], 0, "{config}");
    // An event held back (throttled behind a running sweep, say) longer than one sweep lasts is
    // dropped, so events never pile up into back-to-back sweeps.
    let age = config["MaximumEventAgeInSeconds"].as_u64().unwrap_or_else(|| panic!("no event age: {config}"));
    let timeout = template["Resources"]["Sweeper"]["Properties"]["Timeout"].as_u64().unwrap();
    assert!((60..=timeout).contains(&age), "MaximumEventAgeInSeconds {age}, Timeout {timeout}");
}

/// A parameter's default as text (YAML may give it as a number).
fn default_of(parameter: &Value) -> String {
    match &parameter["Default"] {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => panic!("unexpected Default {other}"),
    }
}

#[test]
fn the_sweep_limits_are_parameters_of_the_stack() {
    let template = rendered(&["ZoneVpcId=vpc-0123456789abcdef0"]);
    let variables = &template["Resources"]["Sweeper"]["Properties"]["Environment"]["Variables"];
    let groups = &template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"];
    let sweeper_group =
        groups.as_array().unwrap().iter().find(|g| g["Label"]["default"] == "Sweeper").unwrap();
    for (name, variable, default) in [
        ("AgentMaxDeleteFraction", "ECSSD_AGENT_MAX_DELETE_FRACTION", 0.1),
        ("OrphanReadsPerSweep", "ECSSD_ORPHAN_READS_PER_SWEEP", 100.0),
    ] {
        assert_eq!(variables[variable], serde_json::json!({"Ref": name}), "{variable}: {variables}");
        let parameter = &template["Parameters"][name];
        assert_eq!(default_of(parameter).parse::<f64>().unwrap(), default, "{name}: {parameter}");
        // Bounds, listed values, or (whole numbers) a pattern: template_parameters_take_only_what_the_binaries_accept.
        let bounded = parameter["MinValue"].is_number() && parameter["MaxValue"].is_number();
        let constrained =
            bounded || parameter["AllowedValues"].is_array() || parameter["AllowedPattern"].is_string();
        assert!(constrained, "{name} is constrained: {parameter}");
        assert!(
            sweeper_group["Parameters"].as_array().unwrap().iter().any(|p| p == name),
            "{name} is in the Sweeper group: {sweeper_group}"
        );
    }
    let fraction = &template["Parameters"]["AgentMaxDeleteFraction"];
    assert_eq!((fraction["MinValue"].as_f64(), fraction["MaxValue"].as_f64()), (Some(0.0), Some(1.0)));
    // The sweep's Route53 rate follows the account's (10/s since 2026-07-30, 5 before): by default
    // 40% of it, so at least 60% is left to the sidecars and other tools. A number overrides it.
    for name in ["Route53AccountRequestsPerSecond", "Route53RequestsPerSecond"] {
        assert!(
            sweeper_group["Parameters"].as_array().unwrap().iter().any(|p| p == name),
            "{name} is in the Sweeper group: {sweeper_group}"
        );
    }
    assert_eq!(default_of(&template["Parameters"]["Route53AccountRequestsPerSecond"]), "10");
    let rates = Stack::rendered(&["ZoneVpcId=vpc-0123456789abcdef0"]);
    assert_eq!(default_of(&template["Parameters"]["Route53RequestsPerSecond"]), "auto");
    for (overrides, expected) in [
        (vec![], "4"),
        (vec!["Route53AccountRequestsPerSecond=5"], "2"),
        (vec!["Route53RequestsPerSecond=3"], "3"),
        (vec!["Route53AccountRequestsPerSecond=5", "Route53RequestsPerSecond=1"], "1"),
    ] {
        let overrides = [&["ZoneVpcId=vpc-0123456789abcdef0"][..], &overrides].concat();
        let stack = rates.with_parameters(&overrides);
        let sweeper = stack.resolve(&stack.resource("Sweeper")["Properties"]).unwrap();
        let pace = &sweeper["Environment"]["Variables"]["ECSSD_ROUTE53_REQUESTS_PER_SECOND"];
        assert_eq!(pace, expected, "{overrides:?}");
    }
    // Inside Lambda the deadline comes from the invocation context, not a setting.
    assert!(variables.get("ECSSD_TIME_LIMIT_SECONDS").is_none(), "{variables}");
}

#[test]
fn named_clusters_become_the_only_clusters_tasks_can_be_stopped_in() {
    let stack = Stack::rendered(&["ZoneVpcId=vpc-0123456789abcdef0", "Clusters=web,batch"]);
    let template = &stack.template;
    let all = statements(&stack);
    let (_, stop) = all.iter().find(|(_, s)| actions(s) == ["ecs:StopTask"]).unwrap();
    let clusters = &stop["Condition"]["ArnLike"]["ecs:cluster"]["Fn::If"];
    assert_eq!(clusters[0], "WatchAllClusters");
    // Not watching all: the ARNs of exactly the named clusters.
    let names = &clusters[2]["Fn::Split"][1]["Fn::Sub"][1]["Names"]["Fn::Join"][1];
    assert_eq!(names["Ref"], "Clusters");
    let sweeper = &template["Resources"]["Sweeper"]["Properties"]["Environment"]["Variables"];
    assert_eq!(sweeper["ECSSD_CLUSTERS"]["Fn::Join"][1]["Ref"], "Clusters");
    // As CloudFormation evaluates it: one pattern per named cluster (Resource holds the account
    // and region), or every cluster of this account and region.
    for (overrides, expected) in [
        (
            &["ZoneVpcId=vpc-0123456789abcdef0", "Clusters=web,batch"][..],
            serde_json::json!(["arn:*:ecs:*:*:cluster/web", "arn:*:ecs:*:*:cluster/batch"]),
        ),
        (ALL_CLUSTERS, serde_json::json!("arn:aws:ecs:us-east-1:123456789012:cluster/*")),
    ] {
        let stack = Stack::rendered(overrides);
        for (_, statement) in statements(&stack).iter().filter(|(r, _)| r == "SweeperRole") {
            if actions(statement).iter().any(|a| a.starts_with("ecs:") && a != "ecs:DescribeTaskDefinition") {
                let condition = stack.resolve(&statement["Condition"]).unwrap();
                assert_eq!(condition["ArnLike"]["ecs:cluster"], expected, "{statement}");
                assert!(statement["Resource"].to_string().contains("${AWS::AccountId}"), "{statement}");
            }
        }
    }
}

#[test]
fn every_join_delimiter_is_a_literal_string() {
    // CloudFormation takes no function as Fn::Join's delimiter ("For the Fn::Join delimiter, you
    // can't use any functions"), and cfn-lint does not look inside IAM conditions.
    // https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-join.html
    fn check(value: &Value, path: &str) {
        match value {
            Value::Object(map) => {
                if let Some(join) = map.get("Fn::Join") {
                    assert!(join[0].is_string(), "{path}: Fn::Join delimiter {}", join[0]);
                }
                for (key, child) in map {
                    check(child, &format!("{path}.{key}"));
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    check(child, &format!("{path}[{index}]"));
                }
            }
            _ => {}
        }
    }
    for overrides in [ALL_CLUSTERS, NAMED_CLUSTERS] {
        check(&rendered(overrides), "template");
    }
}

#[test]
fn the_task_definition_example_follows_the_documented_pattern() {
    let path = workspace_root().join("examples/ecs/calc-task-definition.json");
    let definition: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let containers = definition["containerDefinitions"].as_array().unwrap();
    let sidecar = containers.iter().find(|c| c["name"] == "ecssd").unwrap();
    assert_eq!(sidecar["essential"], true);
    assert!(sidecar["memoryReservation"].as_u64().unwrap() <= 32, "a small reservation");
    let mount = &sidecar["mountPoints"][0];
    assert_eq!(mount["containerPath"], "/var/run/docker.sock");
    assert_eq!(mount["readOnly"], true, "the Docker socket is mounted read-only");
    let ttl: u64 = sidecar["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ECSSD_TTL")
        .map_or(10, |v| v["value"].as_str().unwrap().parse().unwrap());
    assert!(sidecar["stopTimeout"].as_u64().unwrap() > ttl, "stopTimeout covers the drain (the TTL)");
    for app in containers.iter().filter(|c| c["name"] != "ecssd") {
        assert_eq!(app["dependsOn"], serde_json::json!([{"containerName": "ecssd", "condition": "START"}]));
        let environment: Vec<String> = app["environment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("{}={}", v["name"].as_str().unwrap(), v["value"].as_str().unwrap()))
            .collect();
        // The application keeps serving after SIGTERM for about the TTL (cached answers), within its
        // own stopTimeout.
        let delay: u64 = environment
            .iter()
            .find_map(|v| v.strip_prefix("SHUTDOWN_DELAY_SECONDS="))
            .expect("the example lingers after SIGTERM")
            .parse()
            .unwrap();
        assert!(delay >= ttl, "lingers at least the TTL");
        assert!(app["stopTimeout"].as_u64().unwrap() > delay, "stopTimeout covers the linger");
        let parsed = ecssd_records::parse_service_env(environment.iter().map(String::as_str));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert!(!parsed.bindings.is_empty());
        for binding in parsed.bindings {
            let mapping = port_mapping(app, binding.container_port);
            assert_eq!(mapping["hostPort"], 0, "ECS picks the host port");
        }
    }
}

/// Whether `cpu` (CPU units) and `memory` (MiB) are a task size Fargate runs: the table "Task CPU
/// and memory" of the Amazon ECS Developer Guide (Amazon ECS task definition parameters for
/// Fargate), which RegisterTaskDefinition's `memory` parameter repeats. Linux only: 8 and 16 vCPU
/// need platform version 1.4.0 or later.
fn is_fargate_size(cpu: u64, memory: u64) -> bool {
    const GIB: u64 = 1024;
    let in_gib = |low: u64, high: u64, step: usize| (low..=high).step_by(step).any(|g| memory == g * GIB);
    match cpu {
        256 => [512, GIB, 2 * GIB].contains(&memory),
        512 => in_gib(1, 4, 1),
        1024 => in_gib(2, 8, 1),
        2048 => in_gib(4, 16, 1),
        4096 => in_gib(8, 30, 1),
        8192 => in_gib(16, 60, 4),
        16384 => in_gib(32, 120, 8),
        _ => false,
    }
}

/// A task definition number, given as a JSON number or as a string of digits (`"cpu": "256"`).
fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

#[test]
fn fargate_sizes_are_the_documented_combinations() {
    for (cpu, memory) in [
        (256, 512),
        (256, 2048),
        (512, 4096),
        (1024, 8192),
        (4096, 30720),
        (8192, 20480),
        (8192, 61440),
        (16384, 122880),
    ] {
        assert!(is_fargate_size(cpu, memory), "{cpu}/{memory}");
    }
    for (cpu, memory) in
        [(256, 4096), (512, 512), (1024, 1536), (4096, 32768), (8192, 18432), (16384, 36864), (128, 512)]
    {
        assert!(!is_fargate_size(cpu, memory), "{cpu}/{memory}");
    }
}

#[test]
fn the_fargate_task_definition_example_follows_the_documented_pattern() {
    let path = workspace_root().join("examples/ecs/calc-fargate-task-definition.json");
    let text = std::fs::read_to_string(path).unwrap();
    let definition: Value = serde_json::from_str(&text).unwrap();
    // Fargate mounts no Docker socket: the sidecar reads task metadata instead.
    assert_eq!(definition["requiresCompatibilities"], serde_json::json!(["FARGATE"]));
    assert_eq!(definition["networkMode"], "awsvpc", "Fargate runs only awsvpc");
    assert!(!text.contains("docker.sock"), "no Docker socket anywhere");
    assert!(
        definition.get("volumes").is_none_or(|v| v.as_array().is_some_and(Vec::is_empty)),
        "no volumes: {}",
        definition["volumes"]
    );
    let (cpu, memory) =
        (whole_number(&definition["cpu"]).unwrap(), whole_number(&definition["memory"]).unwrap());
    assert!(is_fargate_size(cpu, memory), "cpu {cpu} with memory {memory} is not a Fargate task size");
    // awslogs (and the secret) need the execution role; Route53 needs the task role.
    for role in ["executionRoleArn", "taskRoleArn"] {
        assert!(definition[role].as_str().is_some_and(|arn| arn.starts_with("arn:aws:iam::")), "{role}");
    }
    assert!(definition["taskRoleArn"].as_str().unwrap().contains("SidecarPolicyArn"));

    let containers = definition["containerDefinitions"].as_array().unwrap();
    let variables = |container: &Value| -> Vec<(String, String)> {
        container["environment"].as_array().map_or_else(Vec::new, |environment| {
            environment
                .iter()
                .map(|v| (v["name"].as_str().unwrap().to_owned(), v["value"].as_str().unwrap().to_owned()))
                .collect()
        })
    };
    let lookup = |container: &Value, name: &str| {
        variables(container).into_iter().find(|(n, _)| n == name).map(|(_, value)| value)
    };
    for container in containers {
        let name = &container["name"];
        assert!(
            container.get("mountPoints").is_none_or(|m| m.as_array().is_some_and(Vec::is_empty)),
            "{name}: no mountPoints"
        );
        assert_eq!(container["logConfiguration"]["logDriver"], "awslogs", "{name}");
        // Fargate waits at most 120 s for a container to stop.
        let stop = container["stopTimeout"].as_u64().unwrap_or_else(|| panic!("{name}: stopTimeout"));
        assert!(stop <= 120, "{name}: stopTimeout {stop} is over Fargate's 120 s");
        // The images are FROM scratch: no shell for a CMD-SHELL health check.
        if let Some(check) = container.get("healthCheck") {
            assert_eq!(check["command"][0], "CMD", "{name}: {check}");
        }
    }

    let sidecar = containers.iter().find(|c| c["name"] == "ecssd").unwrap();
    assert_eq!(sidecar["essential"], true);
    assert!(sidecar["memoryReservation"].as_u64().unwrap() <= 32, "a small reservation");
    assert_eq!(lookup(sidecar, "ECSSD_SOURCE").as_deref(), Some("metadata"), "metadata mode, said outright");
    assert!(lookup(sidecar, "ECSSD_DOMAIN").is_some() && lookup(sidecar, "ECSSD_ZONE_ID").is_some());
    assert!(lookup(sidecar, "DOCKER_HOST").is_none());
    let ttl: u64 = lookup(sidecar, "ECSSD_TTL").map_or(10, |ttl| ttl.parse().unwrap());
    assert!(sidecar["stopTimeout"].as_u64().unwrap() > ttl, "stopTimeout covers the drain (the TTL)");

    let apps: Vec<&Value> = containers.iter().filter(|c| c["name"] != "ecssd").collect();
    assert!(!apps.is_empty());
    for app in apps {
        let name = &app["name"];
        assert_eq!(app["dependsOn"], serde_json::json!([{"containerName": "ecssd", "condition": "START"}]));
        // Task metadata carries docker labels, not environment variables: a SERVICE_ variable in the
        // environment would never be seen.
        for (variable, _) in variables(app) {
            assert!(!variable.starts_with("SERVICE_"), "{name}: {variable} belongs in dockerLabels");
        }
        let delay: u64 = lookup(app, "SHUTDOWN_DELAY_SECONDS")
            .expect("the example lingers after SIGTERM")
            .parse()
            .unwrap();
        assert!(delay >= ttl, "lingers at least the TTL");
        assert!(app["stopTimeout"].as_u64().unwrap() > delay, "stopTimeout covers the linger");
        let labels = app["dockerLabels"].as_object().unwrap_or_else(|| panic!("{name}: no dockerLabels"));
        let labels = labels.iter().map(|(key, value)| (key.as_str(), value.as_str().unwrap()));
        let parsed = ecssd_records::ContainerSettings::new([], labels).services();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert!(!parsed.bindings.is_empty(), "{name}: no SERVICE_<port>_NAME label");
        for binding in parsed.bindings {
            let mapping = port_mapping(app, binding.container_port);
            // awsvpc: the host port is the container port, or left out.
            assert!(
                mapping.get("hostPort").is_none_or(|host| host == &mapping["containerPort"]),
                "{name}: {mapping}"
            );
        }
    }
}

/// The container's port mapping of `port`; a named port must be mapped.
fn port_mapping(container: &Value, port: u16) -> &Value {
    container["portMappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["containerPort"] == port)
        .unwrap_or_else(|| panic!("port {port} is named but not mapped"))
}

/// The two renderings the task-stop tests look at: a created zone watching every cluster, and a
/// given zone watching two named clusters.
const ALL_CLUSTERS: &[&str] = &["ZoneVpcId=vpc-0123456789abcdef0"];
const NAMED_CLUSTERS: &[&str] = &["HostedZoneId=Z0123456789ABCDEFGHIJ", "ZoneVpcId=", "Clusters=web,batch"];

/// A rendered template as CloudFormation would evaluate it for some parameters: `Ref` to a parameter
/// or pseudo parameter, `Condition`, `Fn::If`, `Fn::Equals`, `Fn::And`, `Fn::Not`, `Fn::Join`,
/// `Fn::Split` and `Fn::Sub` are
/// resolved and `AWS::NoValue` disappears; references to resources (`Ref`, `Fn::GetAtt`) stay as
/// they are, as does an intrinsic whose arguments still hold one.
#[derive(Debug)]
struct Stack {
    template: Value,
    parameters: serde_json::Map<String, Value>,
}

impl Stack {
    /// Renders the template with `overrides` and evaluates it with the same parameters.
    fn rendered(overrides: &[&str]) -> Self {
        Self::evaluated(rendered(overrides), overrides)
    }

    /// The same rendered template evaluated with other parameters (rendering takes seconds; the
    /// parameters given here must not change what SAM renders).
    fn with_parameters(&self, overrides: &[&str]) -> Self {
        Self::evaluated(self.template.clone(), overrides)
    }

    fn evaluated(template: Value, overrides: &[&str]) -> Self {
        let mut parameters = serde_json::Map::new();
        for (name, spec) in template["Parameters"].as_object().unwrap() {
            let given = overrides.iter().find_map(|o| o.strip_prefix(&format!("{name}=")));
            let text = match (given, &spec["Default"]) {
                (Some(text), _) => text.to_owned(),
                (None, Value::String(text)) => text.clone(),
                (None, Value::Number(number)) => number.to_string(),
                (None, _) => continue,
            };
            let value = if spec["Type"] == "CommaDelimitedList" {
                Value::from(text.split(',').collect::<Vec<_>>())
            } else {
                Value::String(text)
            };
            parameters.insert(name.clone(), value);
        }
        for (name, value) in [
            ("AWS::Partition", "aws"),
            ("AWS::Region", "us-east-1"),
            ("AWS::AccountId", "123456789012"),
            ("AWS::StackName", "ecssd"),
        ] {
            parameters.insert(name.to_owned(), Value::from(value));
        }
        Self { template, parameters }
    }

    fn resource(&self, name: &str) -> &Value {
        let resource = &self.template["Resources"][name];
        assert!(resource.is_object(), "no resource {name}");
        resource
    }

    /// The resources of one type, by logical id.
    fn resources_of(&self, kind: &str) -> Vec<(&String, &Value)> {
        self.template["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == kind).collect()
    }

    /// Whether the stack creates the resource `name` (it has no `Condition`, or its condition holds).
    fn creates(&self, name: &str) -> bool {
        self.resource(name)["Condition"].as_str().is_none_or(|condition| self.condition(condition))
    }

    fn condition(&self, name: &str) -> bool {
        match self.resolve(&self.template["Conditions"][name]) {
            Some(Value::Bool(holds)) => holds,
            other => panic!("condition {name} is {other:?}"),
        }
    }

    /// `value` evaluated; `None` is `AWS::NoValue`.
    fn resolve(&self, value: &Value) -> Option<Value> {
        match value {
            Value::Array(items) => Some(Value::Array(items.iter().filter_map(|i| self.resolve(i)).collect())),
            Value::Object(map) if map.len() == 1 => {
                let (function, arguments) = map.iter().next().unwrap();
                self.intrinsic(function, arguments).unwrap_or_else(|| Some(self.resolve_fields(value)))
            }
            Value::Object(_) => Some(self.resolve_fields(value)),
            scalar => Some(scalar.clone()),
        }
    }

    fn resolve_fields(&self, value: &Value) -> Value {
        let map = value.as_object().unwrap();
        Value::Object(map.iter().filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v))).collect())
    }

    /// `None` when `function` is not one this evaluator resolves (or its arguments are not yet
    /// known): the caller keeps the node.
    fn intrinsic(&self, function: &str, arguments: &Value) -> Option<Option<Value>> {
        let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_owned));
        match function {
            "Ref" if arguments == "AWS::NoValue" => Some(None),
            "Ref" => self.parameters.get(arguments.as_str()?).cloned().map(Some),
            "Fn::If" => {
                let chosen =
                    if self.condition(arguments[0].as_str()?) { &arguments[1] } else { &arguments[2] };
                Some(self.resolve(chosen))
            }
            "Fn::Equals" => {
                Some(Some(Value::Bool(self.resolve(&arguments[0]) == self.resolve(&arguments[1]))))
            }
            "Condition" => Some(Some(Value::Bool(self.condition(arguments.as_str()?)))),
            "Fn::And" => {
                let all =
                    arguments.as_array()?.iter().map(|a| self.resolve(a)).collect::<Option<Vec<_>>>()?;
                Some(Some(Value::Bool(all.iter().all(|v| v == &Value::Bool(true)))))
            }
            "Fn::Not" => match self.resolve(&arguments[0]) {
                Some(Value::Bool(holds)) => Some(Some(Value::Bool(!holds))),
                _ => None,
            },
            "Fn::Join" => {
                let separator = arguments[0].as_str()?;
                let Some(Value::Array(items)) = self.resolve(&arguments[1]) else { return None };
                let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                Some(Some(Value::from(texts?.join(separator))))
            }
            "Fn::FindInMap" => {
                let [map, key, field] = [0, 1, 2].map(|i| text(self.resolve(&arguments[i])));
                Some(Some(self.template["Mappings"][map?][key?][field?].clone()))
            }
            "Fn::Split" => {
                let separator = arguments[0].as_str()?;
                let whole = text(self.resolve(&arguments[1]))?;
                Some(Some(Value::from(whole.split(separator).collect::<Vec<_>>())))
            }
            "Fn::Sub" => {
                let (format, variables) = match arguments {
                    Value::String(format) => (format.as_str(), None),
                    _ => (arguments[0].as_str()?, arguments[1].as_object()),
                };
                let mut out = String::new();
                let mut rest = format;
                while let Some(start) = rest.find("${") {
                    let end = start + rest[start..].find('}')?;
                    let name = &rest[start + 2..end];
                    let value = match variables.and_then(|v| v.get(name)) {
                        Some(variable) => text(self.resolve(variable))?,
                        None => self.parameters.get(name)?.as_str()?.to_owned(),
                    };
                    out.push_str(&rest[..start]);
                    out.push_str(&value);
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Some(Some(Value::from(out)))
            }
            _ => None,
        }
    }
}

/// EventBridge's matching for the operators the template uses: exact values, `suffix`, `$or`.
/// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
fn event_matches(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().unwrap().iter().all(|(field, wanted)| match (field.as_str(), wanted) {
        ("$or", Value::Array(alternatives)) => alternatives.iter().any(|a| event_matches(a, event)),
        (_, Value::Object(_)) => event[field].is_object() && event_matches(wanted, &event[field]),
        (_, Value::Array(values)) => values.iter().any(|value| match value {
            Value::Object(operator) => match (operator.get("suffix"), &event[field]) {
                (Some(Value::String(suffix)), Value::String(text)) => text.ends_with(suffix.as_str()),
                (Some(_), _) => false,
                _ => panic!("operator not modelled here: {value}"),
            },
            exact => &event[field] == exact,
        }),
        _ => panic!("not a pattern: {field}: {wanted}"),
    })
}

/// A value changed in place, in an expression.
trait Tap: Sized {
    fn tap(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self
    }
}

impl Tap for Value {}

fn get_att(resource: &str, attribute: &str) -> Value {
    serde_json::json!({"Fn::GetAtt": [resource, attribute]})
}

fn reference(resource: &str) -> Value {
    serde_json::json!({"Ref": resource})
}

#[test]
fn the_withdrawer_may_only_change_the_zone_confirm_stops_and_poll_its_own_queue() {
    for overrides in [ALL_CLUSTERS, NAMED_CLUSTERS] {
        let stack = Stack::rendered(overrides);
        let role = stack.resource("Withdrawer")["Properties"]["Role"].clone();
        assert_eq!(role, get_att("WithdrawerRole", "Arn"));
        let all = statements(&stack);
        let mine: Vec<&Value> = all.iter().filter(|(r, _)| r == "WithdrawerRole").map(|(_, s)| s).collect();
        let mut granted = Vec::new();
        for statement in &mine {
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            for action in actions(statement) {
                assert!(!action.starts_with("ec2:"), "the withdrawer reads nothing from EC2: {statement}");
                if action.starts_with("ecs:") {
                    // Confirming stops: tasks of this account and region, in the watched clusters.
                    assert_eq!(action, "ecs:DescribeTasks", "{statement}");
                    assert!(statement["Condition"]["ArnLike"]["ecs:cluster"].is_object(), "{statement}");
                    assert!(statement["Resource"].to_string().contains(":task/*"), "{statement}");
                } else if action.starts_with("route53:") {
                    let zone = statement["Resource"]["Fn::Sub"][0].as_str().unwrap();
                    assert_eq!(zone, "arn:${AWS::Partition}:route53:::hostedzone/${ZoneId}", "{statement}");
                } else {
                    // What Lambda's poller needs, on this one queue only (SAM's own SQS event would
                    // attach AWSLambdaSQSQueueExecutionRole, which grants them on every queue).
                    assert!(action.starts_with("sqs:"), "{statement}");
                    assert_eq!(statement["Resource"], get_att("TaskStops", "Arn"), "{statement}");
                }
                if action == "route53:ChangeResourceRecordSets" {
                    assert_eq!(
                        record_types_condition(statement),
                        serde_json::json!(["SRV", "A", "AAAA", "TXT"])
                    );
                    // It only ever deletes.
                    let actions = &statement["Condition"]["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"];
                    assert_eq!(actions, &serde_json::json!(["DELETE"]), "{statement}");
                }
                granted.push(action);
            }
        }
        granted.sort();
        assert_eq!(
            granted,
            [
                "ecs:DescribeTasks",
                "route53:ChangeResourceRecordSets",
                "route53:ListResourceRecordSets",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            "{mine:?}"
        );
    }
}

#[test]
fn ecs_task_stops_reach_the_queue_through_one_rule() {
    let suffixes = |names: &[&str]| -> Value {
        names.iter().map(|name| serde_json::json!({"suffix": format!(":cluster/{name}")})).collect()
    };
    for (overrides, clusters) in [(ALL_CLUSTERS, None), (NAMED_CLUSTERS, Some(["web", "batch"]))] {
        let stack = Stack::rendered(overrides);
        let rules: Vec<(&String, &Value)> = stack
            .resources_of("AWS::Events::Rule")
            .into_iter()
            .filter(|(_, r)| !r["Properties"]["EventPattern"].is_null())
            .collect();
        assert_eq!(rules.len(), 1, "{rules:?}");
        let (name, rule) = rules[0];
        assert_eq!(name, "TaskStoppedRule");
        let properties = stack.resolve(&rule["Properties"]).unwrap();
        // The default bus, where ECS sends its events.
        assert!(properties.get("EventBusName").is_none_or(|bus| bus == "default"), "{properties}");
        assert!(properties.get("State").is_none_or(|state| state == "ENABLED"), "{properties}");
        // EventPattern takes an object or its JSON text.
        let pattern = match &properties["EventPattern"] {
            Value::String(text) => serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}")),
            object => object.clone(),
        };
        let mut detail = serde_json::json!({
            // A stop asked for of a running task, and a task stopped: the first and the last word of
            // a stop, not each step between (each would cost a read by name).
            "$or": [{"desiredStatus": ["STOPPED"], "lastStatus": ["RUNNING"]}, {"lastStatus": ["STOPPED"]}],
        });
        if let Some(names) = &clusters {
            detail["clusterArn"] = suffixes(names);
        }
        assert_eq!(
            pattern,
            serde_json::json!({
                "account": ["123456789012"],
                "region": ["us-east-1"],
                "source": ["aws.ecs"],
                "detail-type": ["ECS Task State Change"],
                "detail": detail,
            }),
            "clusters {clusters:?}"
        );
        // What it selects, on ECS task state change events.
        let event = |cluster: &str, desired: &str, last: &str| {
            serde_json::json!({
                "account": "123456789012",
                "region": "us-east-1",
                "source": "aws.ecs",
                "detail-type": "ECS Task State Change",
                "detail": {
                    "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
                    "desiredStatus": desired,
                    "lastStatus": last,
                },
            })
        };
        let named = clusters.is_some();
        for (event, selected) in [
            (event("web", "STOPPED", "RUNNING"), true),
            (event("batch", "STOPPED", "DEPROVISIONING"), false),
            (event("batch", "STOPPED", "PENDING"), false),
            (event("web", "STOPPED", "STOPPED"), true),
            (event("batch", "RUNNING", "STOPPED"), true),
            (event("web", "RUNNING", "RUNNING"), false),
            (event("web", "RUNNING", "PENDING"), false),
            // Other clusters: only when watching all; a name merely ending in a watched one never.
            (event("other", "STOPPED", "STOPPED"), !named),
            (event("myweb", "STOPPED", "STOPPED"), !named),
            (event("web", "STOPPED", "STOPPED").tap(|e| e["account"] = "111122223333".into()), false),
            (event("web", "STOPPED", "STOPPED").tap(|e| e["source"] = "aws.ec2".into()), false),
        ] {
            assert_eq!(event_matches(&pattern, &event), selected, "clusters {clusters:?}: {event}");
        }
        let targets = properties["Targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "{targets:?}");
        let target = &targets[0];
        assert_eq!(target["Arn"], get_att("TaskStops", "Arn"));
        // A task that stopped stays stopped: a day-old event is still right, so EventBridge keeps
        // trying for as long as it can, then hands the event to the dead-letter queue.
        assert_eq!(
            target["RetryPolicy"],
            serde_json::json!({"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400})
        );
        assert_eq!(
            target["DeadLetterConfig"],
            serde_json::json!({"Arn": get_att("TaskStopsDeadLetters", "Arn")})
        );
        // SQS targets take a resource-based policy, not a role.
        assert!(target.get("RoleArn").is_none(), "{target}");

        // One policy per queue: only the rule may send to either, and nobody else whatever their own
        // policies allow (an explicit Deny wins): a message is ECS's word (issue 27: the dead-letter
        // queue had no Deny).
        let from_the_rule =
            |test: &str| serde_json::json!({test: {"aws:SourceArn": get_att("TaskStoppedRule", "Arn")}});
        let policies = stack.resources_of("AWS::SQS::QueuePolicy");
        assert_eq!(policies.len(), 2, "{policies:?}");
        for queue in ["TaskStops", "TaskStopsDeadLetters"] {
            let (_, policy) = policies
                .iter()
                .find(|(_, p)| p["Properties"]["Queues"] == serde_json::json!([reference(queue)]))
                .unwrap_or_else(|| panic!("no policy of {queue} alone: {policies:?}"));
            let statements = policy["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap();
            let allow = serde_json::json!({
                "Sid": "OnlyTheTaskStoppedRuleSends", "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": get_att(queue, "Arn"), "Condition": from_the_rule("ArnEquals"),
            });
            let deny = serde_json::json!({
                "Sid": "NobodyElseSends", "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage",
                "Resource": get_att(queue, "Arn"), "Condition": from_the_rule("ArnNotEquals"),
            });
            let expected = vec![allow, deny];
            assert_eq!(statements, &expected, "{queue}");
        }
    }
}

#[test]
fn the_withdrawer_takes_task_stops_in_batches_and_fails_them_one_by_one() {
    let stack = Stack::rendered(ALL_CLUSTERS);
    let mapping = &stack.resource("WithdrawerTaskStops")["Properties"];
    assert_eq!(mapping["FunctionName"], reference("Withdrawer"));
    assert_eq!(mapping["EventSourceArn"], get_att("TaskStops", "Arn"));
    let mappings = stack.resources_of("AWS::Lambda::EventSourceMapping");
    let names: Vec<&str> = mappings.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["BatcherRegistrations", "WithdrawerTaskStops"], "one queue per function");
    // As many stops as are queued, up to 10, with no batching window (one would add to every
    // withdrawal, and Lambda requires one of at least a second for a batch larger than 10).
    assert_eq!(mapping["BatchSize"], 10);
    assert!(mapping.get("MaximumBatchingWindowInSeconds").is_none_or(|w| w == 0), "{mapping}");
    assert_eq!(mapping["FunctionResponseTypes"], serde_json::json!(["ReportBatchItemFailures"]));
    // The fewest concurrent batches Lambda allows: withdrawals share Route53's rate with the sweep.
    assert_eq!(mapping["ScalingConfig"], serde_json::json!({"MaximumConcurrency": 2}));
    assert!(mapping.get("Enabled").is_none_or(|enabled| enabled == true), "{mapping}");

    let withdrawer = &stack.resource("Withdrawer")["Properties"];
    let timeout = withdrawer["Timeout"].as_u64().unwrap();
    let queue = &stack.resource("TaskStops")["Properties"];
    assert!(
        queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout,
        "visibility timeout at least 6 x the function timeout: {queue}, Timeout {timeout}"
    );
    assert_eq!(
        queue["RedrivePolicy"],
        serde_json::json!({"deadLetterTargetArn": get_att("TaskStopsDeadLetters", "Arn"), "maxReceiveCount": 5})
    );
    let dead_letters = &stack.resource("TaskStopsDeadLetters")["Properties"];
    assert_eq!(dead_letters["MessageRetentionPeriod"], 1_209_600, "the longest SQS keeps a message");
    for properties in [queue, dead_letters] {
        assert_eq!(properties["SqsManagedSseEnabled"], true, "{properties}");
        assert!(properties.get("FifoQueue").is_none(), "EventBridge dead-letter queues are standard queues");
    }
    let outputs = &stack.template["Outputs"];
    assert_eq!(outputs["WithdrawerFunction"]["Value"], reference("Withdrawer"));
    assert_eq!(outputs["TaskStopsDeadLetterQueueUrl"]["Value"], reference("TaskStopsDeadLetters"));
    for output in ["WithdrawerFunction", "TaskStopsDeadLetterQueueUrl"] {
        assert!(outputs[output]["Description"].as_str().is_some_and(|d| !d.is_empty()), "{output}");
    }
}

#[test]
fn the_withdrawer_is_built_with_the_sweeper_but_is_not_the_sweeper() {
    // In a VPC the sweeper gets subnets; the withdrawer, which only calls Route53, never does.
    let in_vpc =
        ["ZoneVpcId=vpc-0123456789abcdef0", "SubnetIds=subnet-0123456789abcdef0", "SecurityGroupIds=sg-0123"];
    let stack = Stack::rendered(&in_vpc);
    let sweeper = &stack.resource("Sweeper");
    let withdrawer = &stack.resource("Withdrawer");
    assert_eq!(withdrawer["Type"], "AWS::Lambda::Function");
    // `sam build` builds one binary for functions alike in these (samcli/lib/build/build_graph.py,
    // FunctionBuildDefinition.__eq__: runtime, codeuri, metadata, architecture, package type).
    assert_eq!(withdrawer["Metadata"], sweeper["Metadata"]);
    assert_eq!(withdrawer["Metadata"]["BuildMethod"], "rust-cargolambda");
    for property in ["Code", "Handler", "Runtime", "Architectures", "PackageType"] {
        assert_eq!(withdrawer["Properties"][property], sweeper["Properties"][property], "{property}");
    }
    let (sweeper, withdrawer) =
        (stack.resolve(&sweeper["Properties"]).unwrap(), stack.resolve(&withdrawer["Properties"]).unwrap());
    assert_eq!(sweeper["ReservedConcurrentExecutions"], 1, "two sweeps never overlap");
    assert!(withdrawer.get("ReservedConcurrentExecutions").is_none(), "{withdrawer}");
    assert!(sweeper["VpcConfig"].is_object());
    assert!(withdrawer.get("VpcConfig").is_none(), "{withdrawer}");
    assert_eq!((withdrawer["MemorySize"].as_u64(), withdrawer["Timeout"].as_u64()), (Some(128), Some(120)));
    assert_eq!(withdrawer["LoggingConfig"], serde_json::json!({"LogGroup": reference("WithdrawerLogGroup")}));
    let log_group = stack.resolve(&stack.resource("WithdrawerLogGroup")["Properties"]).unwrap();
    assert_eq!(log_group["LogGroupName"], "/ecssd/ecssd/withdrawer");
    assert_eq!(log_group["RetentionInDays"], stack.parameters["LogRetentionDays"]);
    let variables = withdrawer["Environment"]["Variables"].as_object().unwrap();
    let shared = [
        "ECSSD_DOMAIN",
        "ECSSD_ZONE_ID",
        "ECSSD_OWNER_ID",
        "ECSSD_CLUSTERS",
        "ECSSD_ROUTE53_REQUESTS_PER_SECOND",
        "ECSSD_DRY_RUN",
        "ECSSD_ROLE",
    ];
    let mut names: Vec<&str> = variables.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = shared.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(
        (variables["ECSSD_ROLE"].as_str(), sweeper["Environment"]["Variables"]["ECSSD_ROLE"].as_str()),
        (Some("withdrawer"), Some("sweeper"))
    );
    for name in
        shared.iter().filter(|name| !["ECSSD_ROUTE53_REQUESTS_PER_SECOND", "ECSSD_ROLE"].contains(name))
    {
        assert_eq!(variables[*name], sweeper["Environment"]["Variables"][*name], "{name}");
    }
    // Each of the two withdrawers the mapping may run at once paces itself at half the rate, for
    // every rate the parameter allows, and for auto at each account rate (half of its 40%).
    let mut cases: Vec<(Vec<String>, f64)> = (1..=8)
        .map(|rate| (vec![format!("Route53RequestsPerSecond={rate}")], f64::from(rate) / 2.0))
        .collect();
    for account in [5, 10] {
        cases.push((
            vec![format!("Route53AccountRequestsPerSecond={account}")],
            f64::from(account) * 0.4 / 2.0,
        ));
    }
    for (overrides, expected) in cases {
        let overrides: Vec<&str> =
            in_vpc.iter().copied().chain(overrides.iter().map(String::as_str)).collect();
        let stack = stack.with_parameters(&overrides);
        let withdrawer = stack.resolve(&stack.resource("Withdrawer")["Properties"]).unwrap();
        let pace = &withdrawer["Environment"]["Variables"]["ECSSD_ROUTE53_REQUESTS_PER_SECOND"];
        assert_eq!(
            pace.as_str().and_then(|p| p.parse::<f64>().ok()),
            Some(expected),
            "{overrides:?}: {pace}"
        );
    }
    // Invoked synchronously by its event source mapping, so no asynchronous-invocation config.
    for (_, config) in stack.resources_of("AWS::Lambda::EventInvokeConfig") {
        assert_eq!(config["Properties"]["FunctionName"], reference("Sweeper"));
    }
}

#[test]
fn a_zone_the_stack_creates_gets_a_short_negative_caching_time_and_a_given_zone_is_left_alone() {
    let stack = Stack::rendered(ALL_CLUSTERS);
    let parameter = &stack.template["Parameters"]["NegativeCacheTtl"];
    // Whole seconds from 0 to 86400 (the pattern is checked against the binaries elsewhere).
    assert_eq!(
        pattern_allows(parameter["AllowedPattern"].as_str().unwrap(), &["0", "86400", "86401", "1.5"]),
        [true, true, false, false]
    );
    // The harness's world is the deployed stack: its zone gets the same default.
    assert_eq!(default_of(parameter), ecssd_tests::world::STACK_NEGATIVE_TTL.to_string());
    let resource = stack.resource("ZoneNegativeCaching");
    assert_eq!(resource["Type"], "Custom::ZoneNegativeCaching");
    assert_eq!(resource["Condition"], "CreateZone");
    let properties = &resource["Properties"];
    assert_eq!(properties["ServiceToken"], get_att("ZoneSettings", "Arn"));
    assert_eq!(properties["ZoneId"], reference("Zone"));
    assert_eq!(properties["NegativeCacheTtl"], reference("NegativeCacheTtl"));
    // CloudFormation waits ServiceTimeout (1 to 3600 s, an hour by default) for an answer; the
    // function answers within its own timeout, which must fit inside.
    let function = stack.resolve(&stack.resource("ZoneSettings")["Properties"]).unwrap();
    let service_timeout: u64 = match &properties["ServiceTimeout"] {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(text) => text.parse().unwrap(),
        other => panic!("ServiceTimeout {other}"),
    };
    assert!(function["Timeout"].as_u64().unwrap() < service_timeout && service_timeout <= 3600);
    assert_eq!(stack.resource("ZoneSettings")["Condition"], "CreateZone");
    assert_eq!(function["Environment"]["Variables"]["ECSSD_ZONE_ID"], reference("Zone"));
    // Built with the sweeper: one bootstrap.
    let sweeper = stack.resource("Sweeper");
    assert_eq!(stack.resource("ZoneSettings")["Metadata"], sweeper["Metadata"]);
    for property in ["Code", "Handler", "Runtime", "Architectures"] {
        assert_eq!(stack.resource("ZoneSettings")["Properties"][property], sweeper["Properties"][property]);
    }
    // Its role reads the zone, upserts its SOA, deletes ecssd's record types (emptying the zone for the
    // stack's delete) and asks CloudFormation about its own stack (whether it is being deleted),
    // nothing else.
    let mine: Vec<Value> =
        statements(&stack).into_iter().filter(|(r, _)| r == "ZoneSettingsRole").map(|(_, s)| s).collect();
    let mut granted: Vec<String> = mine.iter().flat_map(actions).collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            "cloudformation:DescribeStacks",
            "route53:ChangeResourceRecordSets",
            "route53:ChangeResourceRecordSets",
            "route53:ListResourceRecordSets"
        ]
    );
    let describe = mine.iter().find(|s| actions(s) == ["cloudformation:DescribeStacks"]).unwrap();
    assert_eq!(describe["Resource"], reference("AWS::StackId"), "its own stack only");
    let changes: Vec<&Value> =
        mine.iter().filter(|s| actions(s) == ["route53:ChangeResourceRecordSets"]).collect();
    assert!(changes_only_the_soa(changes[0]), "{}", changes[0]);
    let only = &changes[1]["Condition"]["ForAllValues:StringEquals"];
    assert_eq!(
        only["route53:ChangeResourceRecordSetsRecordTypes"],
        serde_json::json!(["SRV", "A", "AAAA", "TXT"])
    );
    assert_eq!(
        only["route53:ChangeResourceRecordSetsActions"],
        serde_json::json!(["DELETE"]),
        "{}",
        changes[1]
    );
    let variables = &stack.resource("ZoneSettings")["Properties"]["Environment"]["Variables"];
    assert_eq!(variables["ECSSD_OWNER_ID"], reference("OwnerId"), "only this owner's records go");
    assert_eq!(variables["ECSSD_STACK_ID"], reference("AWS::StackId"), "only this stack's delete empties it");

    // A zone given by id: neither the resource nor its function exist, and nothing may change an SOA.
    let given = Stack::rendered(NAMED_CLUSTERS);
    assert!(!given.creates("ZoneNegativeCaching") && !given.creates("ZoneSettings"));
    for (resource, statement) in statements(&given) {
        assert!(!changes_only_the_soa(&statement), "{resource}: {statement}");
    }
}

#[test]
fn the_sweeper_reports_negative_caching_and_changes_the_soa_only_when_allowed() {
    for (overrides, keeps) in [
        (ALL_CLUSTERS, false),
        (NAMED_CLUSTERS, false),
        (
            &["ZoneVpcId=vpc-0123456789abcdef0", "SweeperKeepsNegativeTtl=true", "NegativeCacheTtl=30"][..],
            true,
        ),
        // A zone the stack was given is never changed, even when asked.
        (&["HostedZoneId=Z0123456789ABCDEFGHIJ", "ZoneVpcId=", "SweeperKeepsNegativeTtl=true"][..], false),
    ] {
        let stack = Stack::rendered(overrides);
        let sweeper = stack.resolve(&stack.resource("Sweeper")["Properties"]).unwrap();
        let variables = &sweeper["Environment"]["Variables"];
        assert_eq!(
            variables["ECSSD_NEGATIVE_TTL_LIMIT"], stack.parameters["NegativeTtlLimit"],
            "{overrides:?}"
        );
        let soa_statements: Vec<Value> = statements(&stack)
            .into_iter()
            .filter(|(r, s)| r == "SweeperRole" && changes_only_the_soa(s))
            .map(|(_, s)| s)
            .collect();
        if keeps {
            assert_eq!(
                variables["ECSSD_KEEP_NEGATIVE_TTL"], stack.parameters["NegativeCacheTtl"],
                "{overrides:?}"
            );
            assert_eq!(soa_statements.len(), 1, "{overrides:?}");
        } else {
            assert!(variables.get("ECSSD_KEEP_NEGATIVE_TTL").is_none(), "{overrides:?}: {variables}");
            assert!(soa_statements.is_empty(), "{overrides:?}: {soa_statements:?}");
        }
    }
    let limit = &Stack::rendered(ALL_CLUSTERS).template["Parameters"]["NegativeTtlLimit"];
    assert_eq!(default_of(limit), "60");
}

/// Whether CloudFormation's `AllowedPattern` takes each value (a Java regex matched against the whole
/// value: Python's `re.fullmatch` agrees for the classes used here).
fn pattern_allows(pattern: &str, values: &[&str]) -> Vec<bool> {
    let mut python = tool(".tools/sam/bin/python");
    python.args([
        "-c",
        "import json, re, sys; print(json.dumps([re.fullmatch(sys.argv[1], v) is not None for v in sys.argv[2:]]))",
        pattern,
    ]);
    python.args(values);
    let (ok, output) = run(python);
    assert!(ok, "python: {output}");
    serde_json::from_str(output.trim()).unwrap()
}

/// Issue 27: a parameter the stack takes but the binaries refuse deploys, then every function fails at
/// start and the custom resource never answers (ROLLBACK_FAILED). `OwnerId`: exactly the binaries'
/// rule; `HealthCheckPath`: only paths the sweeper accepts.
#[test]
fn template_parameters_take_only_what_the_binaries_accept() {
    let template = rendered(&["ZoneVpcId=vpc-0123456789abcdef0"]);
    let owner_pattern = template["Parameters"]["OwnerId"]["AllowedPattern"].as_str().unwrap();
    let longest = "a".repeat(48);
    let too_long = "a".repeat(49);
    let owners = ["default", "a", "0", "team-a", "a-", &longest, &too_long, "", "-a", "A", "a_b", "a.b", "é"];
    let binaries: Vec<bool> = owners.iter().map(|o| o.parse::<ecssd_records::OwnerId>().is_ok()).collect();
    assert_eq!(pattern_allows(owner_pattern, &owners), binaries, "{owners:?}");

    let path_pattern = template["Parameters"]["HealthCheckPath"]["AllowedPattern"].as_str().unwrap();
    let taken = ["/health", "/", "/a/b-c_d.e~f", "/healthz?verbose=1&x=%20", "/v1/status:check"];
    let refused = ["health", "", "/a b", "/a\tb", "/<x>", "/ä", "/a#b", "/a\\b"];
    assert_eq!(pattern_allows(path_pattern, &taken), vec![true; taken.len()], "{taken:?}");
    assert_eq!(pattern_allows(path_pattern, &refused), vec![false; refused.len()], "{refused:?}");
    // The sweeper's own check (lambda/src/config.rs), run on what the pattern takes.
    for path in taken {
        assert!(sweeper_takes(&["--health-check-path", path]), "{path}");
    }

    // Every other parameter a function reads: whatever the template takes, the binary takes.
    let (owner_48, owner_49) = ("a".repeat(48), "a".repeat(49));
    let checks: [(&str, &[&str], &TakesValue); 4] = [
        (
            "DomainName",
            &[
                "servicediscovery.internal",
                "sd.internal",
                "a.example-corp.com",
                "internal",
                "-a.b",
                "A.b",
                "a..b",
                "a.b.",
                "_x.b",
            ],
            &|v| v.parse::<ecssd_records::Domain>().is_ok() && sweeper_takes(&["--domain", v]),
        ),
        (
            "MaxStopFraction",
            &["0", "0.5", "1", "1.0", "0.25", "1.5", "2", ".5", "-0.1", "abc", "1e-1"],
            &|v| sweeper_takes(&["--max-stop-fraction", v]),
        ),
        (
            "Clusters",
            &["web", "batch_2", "a-b", "", "web,batch", "arn:aws:ecs:us-east-1:1:cluster/web", "a b"],
            &|v| sweeper_takes(&["--clusters", v]),
        ),
        ("OwnerId", &["default", "team-a", &owner_48, &owner_49, "A"], &|v| {
            sweeper_takes(&["--owner-id", v])
        }),
    ];
    for (parameter, values, binary_takes) in checks {
        let pattern = template["Parameters"][parameter]["AllowedPattern"].as_str().unwrap();
        for (value, allowed) in values.iter().zip(pattern_allows(pattern, values)) {
            assert!(
                !allowed || binary_takes(value),
                "{parameter}={value:?}: the template takes it, a binary refuses it"
            );
        }
    }
    // Whole numbers: a CloudFormation Number takes fractions (2.5), so these are patterns, and every
    // value a pattern takes the binary takes.
    let whole =
        ["0", "1", "60", "100", "999", "1000", "1001", "86400", "86401", "2.5", "1e3", " 5", "-1", ""];
    for (parameter, flag) in [
        ("OrphanReadsPerSweep", "--orphan-reads-per-sweep"),
        ("NegativeTtlLimit", "--negative-ttl-limit"),
        ("NegativeCacheTtl", "--keep-negative-ttl"),
    ] {
        let pattern = template["Parameters"][parameter]["AllowedPattern"].as_str().unwrap();
        let allowed = pattern_allows(pattern, &whole);
        for (value, allowed) in whole.iter().zip(allowed) {
            assert!(
                !allowed || sweeper_takes(&[flag, value]),
                "{parameter}={value:?}: the sweeper refuses it"
            );
        }
        assert!(
            !pattern_allows(pattern, &["2.5", "1e3", " 5", "-1", "", "86401"]).contains(&true),
            "{parameter}"
        );
    }
    // Numbers: the template's bounds are inside what the sweeper takes.
    for (parameter, flag) in [("AgentMaxDeleteFraction", "--agent-max-delete-fraction")] {
        let declared = &template["Parameters"][parameter];
        for bound in ["MinValue", "MaxValue", "Default"] {
            let value = declared[bound].to_string();
            assert!(sweeper_takes(&[flag, &value]), "{parameter} {bound} {value}: the sweeper refuses it");
        }
    }
}

/// Whether a binary takes a parameter's value.
type TakesValue = dyn Fn(&str) -> bool;

/// Whether the sweeper's configuration takes these flags (parsed and validated as at start).
fn sweeper_takes(args: &[&str]) -> bool {
    use clap::Parser;
    let all = std::iter::once("bootstrap").chain(args.iter().copied());
    ecssd_lambda::Config::try_parse_from(all).is_ok_and(|config| config.validate().is_ok())
}

#[test]
fn the_batcher_takes_registrations_by_the_thousand_and_may_only_register() {
    let stack = Stack::rendered(ALL_CLUSTERS);
    // Up to 1,000 handoffs gathered for a second (a batch over 10 needs a window of at least 1 s),
    // the refused ones named; two batches at a time at most.
    let mapping = &stack.resource("BatcherRegistrations")["Properties"];
    assert_eq!(mapping["FunctionName"], reference("Batcher"));
    assert_eq!(mapping["EventSourceArn"], get_att("Registrations", "Arn"));
    assert_eq!(
        (mapping["BatchSize"].as_u64(), mapping["MaximumBatchingWindowInSeconds"].as_u64()),
        (Some(1000), Some(1))
    );
    assert_eq!(mapping["FunctionResponseTypes"], serde_json::json!(["ReportBatchItemFailures"]));
    assert_eq!(mapping["ScalingConfig"], serde_json::json!({"MaximumConcurrency": 2}));
    let batcher = stack.resolve(&stack.resource("Batcher")["Properties"]).unwrap();
    let queue = &stack.resource("Registrations")["Properties"];
    let timeout = batcher["Timeout"].as_u64().unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout, "{queue}");
    assert_eq!(queue["MessageRetentionPeriod"], 60, "a handoff's lifetime: the least SQS keeps");
    assert_eq!(queue["SqsManagedSseEnabled"], true);
    let variables = &batcher["Environment"]["Variables"];
    assert_eq!(variables["ECSSD_ROLE"], "batcher");
    let withdrawer = stack.resolve(&stack.resource("Withdrawer")["Properties"]).unwrap();
    for name in ["ECSSD_DOMAIN", "ECSSD_ZONE_ID", "ECSSD_OWNER_ID"] {
        assert_eq!(variables[name], withdrawer["Environment"]["Variables"][name], "{name}");
    }
    // Each of the two batchers the mapping may run at once paces itself at a quarter of the rate, so
    // the sweep (the rate), the withdrawals (the rate) and the batchers (half) stay within the
    // account's rate with `auto` (40% + 40% + 20%), for every value the parameters allow.
    let mut cases: Vec<(String, f64)> =
        (1..=8).map(|rate| (format!("Route53RequestsPerSecond={rate}"), f64::from(rate) / 4.0)).collect();
    for account in [5, 10] {
        cases.push((format!("Route53AccountRequestsPerSecond={account}"), f64::from(account) * 0.4 / 4.0));
    }
    for (overrides, expected) in cases {
        let stack = stack.with_parameters(&[ALL_CLUSTERS, &[overrides.as_str()]].concat());
        let batcher = stack.resolve(&stack.resource("Batcher")["Properties"]).unwrap();
        let pace = &batcher["Environment"]["Variables"]["ECSSD_ROUTE53_REQUESTS_PER_SECOND"];
        assert_eq!(pace.as_str().and_then(|p| p.parse::<f64>().ok()), Some(expected), "{overrides}: {pace}");
    }
    assert_eq!(
        stack.resource("Batcher")["Metadata"],
        stack.resource("Sweeper")["Metadata"],
        "built once with it"
    );

    let all = statements(&stack);
    let mut granted = Vec::new();
    for (_, statement) in all.iter().filter(|(r, _)| r == "BatcherRole") {
        for action in actions(statement) {
            if action == "route53:ChangeResourceRecordSets" && statement["Effect"] == "Allow" {
                // What a sidecar's registration does: creates, and the replacement of its ownership
                // record; the batcher never reads the zone.
                let actions = &statement["Condition"]["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"];
                assert_eq!(actions, &serde_json::json!(["CREATE", "DELETE"]), "{statement}");
            } else if action.starts_with("sqs:") {
                assert_eq!(statement["Resource"], get_att("Registrations", "Arn"), "{statement}");
            }
            granted.push(format!("{} {action}", statement["Effect"].as_str().unwrap()));
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "Allow route53:ChangeResourceRecordSets",
            "Allow sqs:DeleteMessage",
            "Allow sqs:GetQueueAttributes",
            "Allow sqs:ReceiveMessage",
            "Deny route53:ChangeResourceRecordSets"
        ]
    );
    // The sidecars may send to this queue, and to no other.
    let sends: Vec<&Value> = all
        .iter()
        .filter(|(_, s)| actions(s).iter().any(|a| a == "sqs:SendMessage") && s["Effect"] == "Allow")
        .filter(|(r, _)| r == "SidecarPolicy")
        .map(|(_, s)| &s["Resource"])
        .collect();
    assert_eq!(sends, [&get_att("Registrations", "Arn")]);
    let outputs = &stack.template["Outputs"];
    assert_eq!(outputs["RegistrationQueueUrl"]["Value"], reference("Registrations"));
    assert_eq!(outputs["BatcherFunction"]["Value"], reference("Batcher"));
}
