#![allow(clippy::unwrap_used)]
//! The documentation cannot drift from the code: each settings table lists exactly the variables,
//! flags and defaults its binary's `--help` shows; the deploy guide lists exactly the template's
//! parameters and their defaults; the operations guide names exactly the metrics the functions write,
//! the problems the sidecar logs and the fields of the sweep's report; every relative link, anchor,
//! repository path and test named in the README, `docs/` and `examples/README.md` exists. (That the
//! template's parameter constraints take only what the binaries accept is
//! `deployment::template_parameters_take_only_what_the_binaries_accept`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ecssd_tests::moto::workspace_root;
use ecssd_tests::sidecar::binary;

/// The pages a reader is sent to.
const PAGES: &[&str] = &[
    "README.md",
    "docs/concepts.md",
    "docs/deploy.md",
    "docs/sidecar.md",
    "docs/lambda.md",
    "docs/operations.md",
    "docs/limits.md",
    "docs/benchmarks.md",
    "docs/development.md",
    "examples/README.md",
];

fn read(page: &str) -> String {
    let path = workspace_root().join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One option of a binary's `--help`: its flag, variable and default as clap prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HelpOption {
    flag: String,
    variable: Option<String>,
    /// `None` when clap prints no default or an empty one.
    default: Option<String>,
}

/// The options of `binary --help`, run with an empty environment (clap prints a variable's current
/// value beside its name).
fn help_options(binary_name: &str) -> Vec<HelpOption> {
    let output = Command::new(binary(binary_name).unwrap())
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(output.status.success(), "{binary_name} --help: {output:?}");
    parse_help(&String::from_utf8(output.stdout).unwrap())
}

/// Splits clap's help into options: a block starts at a line whose first word is a `--flag`.
fn parse_help(help: &str) -> Vec<HelpOption> {
    let mut options: Vec<HelpOption> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let flag_at = trimmed.strip_prefix("-").filter(|_| line.len() > trimmed.len()).map(|_| trimmed);
        if let Some(flag_line) = flag_at {
            let word = flag_line.split(", ").last().unwrap().split_whitespace().next().unwrap();
            if let Some(flag) = word.strip_prefix("--") {
                options.push(HelpOption { flag: format!("--{flag}"), variable: None, default: None });
                continue;
            }
        }
        // Long help puts each bracket on a line of its own; short help (no long doc) on the text's line.
        let Some(option) = options.last_mut() else { continue };
        if let Some((_, rest)) = line.split_once("[env: ") {
            option.variable = Some(rest.split('=').next().unwrap().to_owned());
        }
        if let Some((_, rest)) = line.split_once("[default: ") {
            let value = rest.split(']').next().unwrap().trim_matches('"');
            option.default = (!value.is_empty()).then(|| value.to_owned());
        }
    }
    options.retain(|o| o.flag != "--help" && o.flag != "--version");
    options
}

/// A markdown table's rows after the header line `header`, as cells (outer pipes dropped). Cells past
/// the header's count are joined into the last one.
fn table_rows(page: &str, header: &str) -> Vec<Vec<String>> {
    let text = read(page);
    let columns = header.matches('|').count() - 1;
    let start = text.lines().position(|l| l == header).unwrap_or_else(|| panic!("{page}: no table {header}"));
    text.lines()
        .skip(start + 2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            let mut cells: Vec<String> = inner.split('|').map(|c| c.trim().to_owned()).collect();
            if cells.len() > columns {
                let rest = cells.split_off(columns - 1).join("|");
                cells.push(rest);
            }
            cells
        })
        .collect()
}

/// The text of a cell's first code span when the cell starts with one: `` `10` `` gives `10`.
fn leading_code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.split('`').next()
}

/// Checks a settings table (`| variable | flag | default | meaning |`) against `--help`: every option
/// is a row with the same variable and default, and every row's flag is an option. Rows with a
/// variable and no flag (set by ECS or read by the SDK) must be read somewhere in `sources`.
fn check_settings_table(page: &str, binary_name: &str, sources: &[&str]) -> Vec<String> {
    let options = help_options(binary_name);
    assert!(options.len() > 5, "{binary_name} --help parsed into {options:?}");
    let rows = table_rows(page, "| variable | flag | default | meaning |");
    let mut problems = Vec::new();
    let by_flag: BTreeMap<&str, &Vec<String>> =
        rows.iter().filter_map(|r| leading_code(&r[1]).map(|flag| (flag, r))).collect();
    for option in &options {
        let Some(row) = by_flag.get(option.flag.as_str()) else {
            problems
                .push(format!("{page}: {binary_name} {} ({:?}) has no row", option.flag, option.variable));
            continue;
        };
        if leading_code(&row[0]) != option.variable.as_deref() {
            problems.push(format!(
                "{page}: {} is documented as variable {:?}; {binary_name} --help says {:?}",
                option.flag, row[0], option.variable
            ));
        }
        if leading_code(&row[2]) != option.default.as_deref() {
            problems.push(format!(
                "{page}: {} is documented with default {:?}; {binary_name} --help says {:?}",
                option.flag, row[2], option.default
            ));
        }
    }
    let flags: BTreeSet<&str> = options.iter().map(|o| o.flag.as_str()).collect();
    let source_text: String = sources
        .iter()
        .flat_map(|dir| std::fs::read_dir(workspace_root().join(dir)).unwrap())
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
        .collect();
    for row in &rows {
        match (leading_code(&row[0]), leading_code(&row[1])) {
            (_, Some(flag)) if !flags.contains(flag) => {
                problems
                    .push(format!("{page}: {flag} is documented; {binary_name} --help has no such option"));
            }
            (Some(variable), None) if !variable.ends_with('*') && !source_text.contains(variable) => {
                problems.push(format!("{page}: {variable} is documented; nothing in {sources:?} reads it"));
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn the_sidecar_settings_table_matches_its_help() {
    let problems = check_settings_table("docs/sidecar.md", "ecssd-sidecar", &["sidecar/src", "edge/src"]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_lambda_settings_table_matches_its_help() {
    let problems = check_settings_table("docs/lambda.md", "bootstrap", &["lambda/src", "edge/src"]);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The template's parameters and their defaults (`None`: no `Default:`), read line by line: each is
/// a two-space-indented key under `Parameters:`.
fn template_parameters() -> BTreeMap<String, Option<String>> {
    let template = read("template.yaml");
    let mut parameters = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            inside = line == "Parameters:";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(name) =
            line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|n| !n.starts_with(' '))
        {
            current = Some(name.to_owned());
            parameters.insert(name.to_owned(), None);
        } else if let (Some(name), Some(value)) = (&current, line.trim().strip_prefix("Default:")) {
            parameters.insert(name.clone(), Some(value.trim().trim_matches('"').to_owned()));
        }
    }
    parameters
}

#[test]
fn the_deploy_guide_lists_every_template_parameter_with_its_default() {
    let parameters = template_parameters();
    assert!(parameters.len() > 10, "{parameters:?}");
    let rows = table_rows("docs/deploy.md", "| parameter | default | meaning |");
    let documented: BTreeMap<&str, &str> =
        rows.iter().map(|r| (leading_code(&r[0]).unwrap_or(&r[0]), r[1].as_str())).collect();
    let mut problems = Vec::new();
    for (name, default) in &parameters {
        let Some(cell) = documented.get(name.as_str()) else {
            problems.push(format!("docs/deploy.md: parameter {name} has no row"));
            continue;
        };
        let expected = default.as_deref().filter(|d| !d.is_empty());
        if leading_code(cell) != expected {
            problems.push(format!(
                "docs/deploy.md: {name} is documented with default {cell:?}; the template's is {default:?}"
            ));
        }
    }
    for name in documented.keys() {
        if !parameters.contains_key(*name) {
            problems
                .push(format!("docs/deploy.md: {name} is documented; the template has no such parameter"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The CloudWatch metrics the Lambda functions write: each is a `("Name", value, "Unit")` entry of an
/// Embedded Metric Format line.
fn metrics_written() -> BTreeSet<String> {
    let units = ["\"Count\")", "\"Milliseconds\")", "\"Seconds\")"];
    rust_files(&workspace_root().join("lambda/src"))
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.lines()
                .filter(|line| units.iter().any(|unit| line.contains(unit)))
                .filter_map(|line| line.split("(\"").nth(1)?.split('"').next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_metric_the_functions_write_is_documented_and_no_other() {
    let written = metrics_written();
    assert!(written.contains("RecordsSeen") && written.contains("TaskStopsWithdrawn"), "{written:?}");
    let rows = table_rows("docs/operations.md", "| metric (namespace `ecssd`) | from | alarm when |");
    let documented: BTreeSet<String> = rows.iter().flat_map(|row| code_spans(&row[0])).collect();
    let undocumented: Vec<&String> = written.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&written).collect();
    assert!(
        undocumented.is_empty(),
        "docs/operations.md lacks metrics the functions write: {undocumented:?}"
    );
    assert!(unknown.is_empty(), "docs/operations.md names metrics no function writes: {unknown:?}");
}

/// The `problem` values the sidecar logs: its `Problem` kinds (`Self::X => "name"`) and the literal
/// `problem = "name"` fields.
fn problems_logged() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in rust_files(&workspace_root().join("sidecar/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let literal = line.split("problem = \"").nth(1);
            let kind = line.trim_start().strip_prefix("Self::").and_then(|l| l.split("=> \"").nth(1));
            let name = literal.or(kind.filter(|_| file.ends_with("problems.rs")));
            if let Some(name) = name.and_then(|rest| rest.split('"').next()) {
                found.insert(name.to_owned());
            }
        }
    }
    found
}

#[test]
fn every_problem_the_sidecar_logs_is_in_the_troubleshooting_table() {
    let logged = problems_logged();
    assert!(logged.contains("route53_unavailable") && logged.contains("dns_disagrees"), "{logged:?}");
    let rows = table_rows("docs/operations.md", "| `problem` | means | look at |");
    let documented: BTreeSet<String> = rows.iter().flat_map(|row| code_spans(&row[0])).collect();
    let undocumented: Vec<&String> = logged.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&logged).collect();
    assert!(undocumented.is_empty(), "docs/operations.md lacks problems the sidecar logs: {undocumented:?}");
    assert!(unknown.is_empty(), "docs/operations.md names problems the sidecar never logs: {unknown:?}");
}

/// The fields of the sweep's report: the `pub` fields of `struct Report` in `lambda/src`.
fn sweep_report_fields() -> BTreeSet<String> {
    for file in rust_files(&workspace_root().join("lambda/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        if let Some((_, body)) = text.split_once("pub struct Report {") {
            let body = body.split("\n}").next().unwrap();
            return body
                .lines()
                .filter_map(|line| line.trim().strip_prefix("pub ")?.split(':').next().map(str::to_owned))
                .collect();
        }
    }
    panic!("no `pub struct Report` in lambda/src");
}

#[test]
fn the_sweep_report_table_names_every_field_of_the_report() {
    let fields = sweep_report_fields();
    assert!(fields.contains("stale_tasks") && fields.contains("api_calls"), "{fields:?}");
    let rows = table_rows("docs/operations.md", "| field | what it is |");
    let documented: BTreeSet<String> = rows.iter().flat_map(|row| code_spans(&row[0])).collect();
    let undocumented: Vec<&String> = fields.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&fields).collect();
    assert!(undocumented.is_empty(), "docs/operations.md lacks report fields: {undocumented:?}");
    assert!(unknown.is_empty(), "docs/operations.md names fields the report does not have: {unknown:?}");
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect()
}

/// The targets of inline links `[text](target)` outside code blocks.
fn links(text: &str) -> Vec<String> {
    prose(text)
        .iter()
        .flat_map(|line| line.split("](").skip(1).map(|rest| rest.split(')').next().unwrap().to_owned()))
        .collect()
}

/// The lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// Inline code spans outside code blocks.
fn code_spans(text: &str) -> Vec<String> {
    prose(text).iter().flat_map(|line| line.split('`').skip(1).step_by(2).map(str::to_owned)).collect()
}

#[test]
fn every_link_path_and_test_the_docs_name_exists() {
    let root = workspace_root();
    let top_level: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".tools")
        .collect();
    let mut problems = Vec::new();
    for page in PAGES {
        let text = read(page);
        let dir = Path::new(page).parent().unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file: PathBuf = if path.is_empty() { PathBuf::from(page) } else { dir.join(path) };
            let full = root.join(&file);
            if !full.exists() {
                problems.push(format!("{page}: link {target}: {} does not exist", file.display()));
                continue;
            }
            if !fragment.is_empty() && !anchors(&std::fs::read_to_string(&full).unwrap()).contains(fragment) {
                problems.push(format!("{page}: link {target}: no heading #{fragment} in {}", file.display()));
            }
        }
        for span in code_spans(&text) {
            // A repository path: starts with a top-level entry and has no spaces or wildcards.
            let first = span.split('/').next().unwrap();
            let is_path = span.contains('/')
                && !span.contains([' ', '*', '<', '|', '{', '$'])
                && top_level.contains(first);
            if is_path && !root.join(&span).exists() {
                problems.push(format!("{page}: `{span}` does not exist"));
            }
            // A test: `module::name` of the end-to-end tests.
            if let Some((module, name)) = span.split_once("::") {
                let file = root.join(format!("tests/tests/e2e/{module}.rs"));
                let is_test = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if is_test
                    && file.exists()
                    && !name.ends_with('_')
                    && !std::fs::read_to_string(&file).unwrap().contains(&format!("fn {name}("))
                {
                    problems.push(format!("{page}: test `{span}` does not exist"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_readme_is_a_front_door() {
    let lines = read("README.md").lines().count();
    assert!(lines <= 250, "README.md has {lines} lines; the rest belongs in docs/");
}

#[test]
fn the_help_parser_reads_clap_output() {
    let help = "Options:\n      --ttl <TTL>\n          TTL\n          \n          [env: ECSSD_TTL=]\n          \
                [default: 10]\n\n      --clusters <CLUSTERS>\n          [env: ECSSD_CLUSTERS=]\n          \
                [default: ]\n\n      --once\n          Once\n      --owner-id <OWNER_ID>\n          Owner \
                [env: ECSSD_OWNER_ID=] [default: \"\"]\n  -h, --help\n          Print help\n";
    assert_eq!(
        parse_help(help),
        vec![
            HelpOption {
                flag: "--ttl".into(),
                variable: Some("ECSSD_TTL".into()),
                default: Some("10".into())
            },
            HelpOption { flag: "--clusters".into(), variable: Some("ECSSD_CLUSTERS".into()), default: None },
            HelpOption { flag: "--once".into(), variable: None, default: None },
            HelpOption { flag: "--owner-id".into(), variable: Some("ECSSD_OWNER_ID".into()), default: None },
        ]
    );
}
