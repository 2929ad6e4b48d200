#![allow(clippy::unwrap_used)]
//! The SAM template: it lints clean (cfn-lint, `sam validate --lint`), its rendered IAM (the SAM
//! transform run offline by `tests/sam/render.py`) is scoped as the README promises, Lambda never
//! retries a scheduled sweep, and the sweep's limits reach the function as parameters.

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

/// Every (resource, statement) of the template's IAM policies.
fn statements(template: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (name, resource) in template["Resources"].as_object().unwrap() {
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
                found.push((name.clone(), statement.clone()));
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

#[test]
fn iam_is_scoped_to_the_zone_the_record_types_and_the_watched_clusters() {
    for template in [
        rendered(&["ZoneVpcId=vpc-0123456789abcdef0"]),
        rendered(&["HostedZoneId=Z0123456789ABCDEFGHIJ", "ZoneVpcId=", "Clusters=web,batch"]),
    ] {
        let all = statements(&template);
        assert!(!all.is_empty());
        for (resource, statement) in &all {
            let actions = actions(statement);
            assert_eq!(statement["Effect"], "Allow", "{resource}: {statement}");
            for action in &actions {
                assert!(!action.contains('*'), "{resource}: wildcard action {action}");
            }
            if statement["Resource"] == "*" {
                // Only actions IAM cannot scope to a resource may use "*".
                for action in &actions {
                    assert!(
                        ["ec2:DescribeInstances", "route53:ListHostedZonesByName"].contains(&action.as_str()),
                        "{resource}: {action} on *"
                    );
                }
            }
            if actions.iter().any(|a| a == "route53:ChangeResourceRecordSets") {
                let zone = statement["Resource"]["Fn::Sub"][0].as_str().unwrap();
                assert_eq!(zone, "arn:${AWS::Partition}:route53:::hostedzone/${ZoneId}", "{resource}");
                assert_eq!(
                    record_types_condition(statement),
                    serde_json::json!(["SRV", "A", "TXT"]),
                    "{resource}"
                );
            }
            if actions.iter().any(|a| a.starts_with("ecs:")) {
                assert!(
                    statement["Condition"]["ArnLike"]["ecs:cluster"].is_object(),
                    "{resource}: {statement}"
                );
            }
        }
        let sidecar: Vec<String> =
            all.iter().filter(|(r, _)| r == "SidecarPolicy").flat_map(|(_, s)| actions(s)).collect();
        // The sidecar finds its zone by domain name unless it is given ECSSD_ZONE_ID.
        assert_eq!(
            sidecar,
            [
                "route53:ChangeResourceRecordSets",
                "route53:ListResourceRecordSets",
                "route53:ListHostedZonesByName"
            ]
        );
        let role = &template["Resources"]["SweeperRole"]["Properties"];
        for managed in role["ManagedPolicyArns"].as_array().unwrap() {
            let managed = managed.as_str().unwrap();
            assert!(!managed.contains("FullAccess"), "no full-access managed policy: {managed}");
            assert!(
                managed.contains("AWSLambdaBasicExecutionRole")
                    || managed.contains("AWSLambdaVPCAccessExecutionRole")
            );
        }
        let function = &template["Resources"]["Sweeper"]["Properties"];
        assert_eq!(function["ReservedConcurrentExecutions"], 1, "two sweeps never overlap");
        assert_eq!(function["Handler"], "bootstrap");
    }
}

#[test]
fn the_sweeper_may_not_list_clusters() {
    // It sweeps the named clusters, or those the records mention; it never enumerates the account's.
    for template in [
        rendered(&["ZoneVpcId=vpc-0123456789abcdef0"]),
        rendered(&["HostedZoneId=Z0123456789ABCDEFGHIJ", "ZoneVpcId=", "Clusters=web,batch"]),
    ] {
        for (resource, statement) in statements(&template) {
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
    // The schedule invokes the unqualified function, that is $LATEST.
    let targets: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Events::Rule")
        .flat_map(|r| r["Properties"]["Targets"].as_array().unwrap())
        .collect();
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
        ("Route53RequestsPerSecond", "ECSSD_ROUTE53_REQUESTS_PER_SECOND", 2.0),
    ] {
        assert_eq!(variables[variable], serde_json::json!({"Ref": name}), "{variable}: {variables}");
        let parameter = &template["Parameters"][name];
        assert_eq!(parameter["Type"], "Number", "{name}: {parameter}");
        assert_eq!(default_of(parameter).parse::<f64>().unwrap(), default, "{name}: {parameter}");
        let bounded = parameter["MinValue"].is_number() && parameter["MaxValue"].is_number();
        assert!(bounded || parameter["AllowedValues"].is_array(), "{name} is constrained: {parameter}");
        assert!(
            sweeper_group["Parameters"].as_array().unwrap().iter().any(|p| p == name),
            "{name} is in the Sweeper group: {sweeper_group}"
        );
    }
    let fraction = &template["Parameters"]["AgentMaxDeleteFraction"];
    assert_eq!((fraction["MinValue"].as_f64(), fraction["MaxValue"].as_f64()), (Some(0.0), Some(1.0)));
    // Route53 allows 5 requests/s per account; by default at least 60% is left to the sidecars.
    let rate = &template["Parameters"]["Route53RequestsPerSecond"];
    assert!(default_of(rate).parse::<f64>().unwrap() <= 5.0 * 0.4, "{rate}");
    let most = match &rate["AllowedValues"] {
        Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap()).fold(0.0, f64::max),
        _ => rate["MaxValue"].as_f64().unwrap(),
    };
    assert!(most <= 5.0, "never more than the account's whole rate: {rate}");
    // Inside Lambda the deadline comes from the invocation context, not a setting.
    assert!(variables.get("ECSSD_TIME_LIMIT_SECONDS").is_none(), "{variables}");
}

#[test]
fn named_clusters_become_the_only_clusters_tasks_can_be_stopped_in() {
    let template = rendered(&["ZoneVpcId=vpc-0123456789abcdef0", "Clusters=web,batch"]);
    let all = statements(&template);
    let (_, stop) = all.iter().find(|(_, s)| actions(s) == ["ecs:StopTask"]).unwrap();
    let clusters = &stop["Condition"]["ArnLike"]["ecs:cluster"]["Fn::If"];
    assert_eq!(clusters[0], "WatchAllClusters");
    // Not watching all: the ARNs of exactly the named clusters.
    let names = &clusters[2]["Fn::Split"][1]["Fn::Sub"][1]["Names"]["Fn::Join"][1];
    assert_eq!(names["Ref"], "Clusters");
    let sweeper = &template["Resources"]["Sweeper"]["Properties"]["Environment"]["Variables"];
    assert_eq!(sweeper["ECSSD_CLUSTERS"]["Fn::Join"][1]["Ref"], "Clusters");
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
            let mapping = app["portMappings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["containerPort"] == binding.container_port)
                .unwrap_or_else(|| panic!("port {} is named but not mapped", binding.container_port));
            assert_eq!(mapping["hostPort"], 0, "ECS picks the host port");
        }
    }
}
