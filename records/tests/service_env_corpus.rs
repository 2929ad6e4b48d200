//! Every entry of `data/malformed_service_env.txt` is rejected with a message naming the variable and
//! saying what is expected, and never stops a valid sibling from registering.

#![allow(clippy::unwrap_used)]

use ecssd_records::parse_service_env;

#[test]
fn every_malformed_variable_is_rejected_clearly_and_alone() {
    let corpus = include_str!("data/malformed_service_env.txt");
    let mut checked = 0;
    for line in corpus.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (entry, expected) = line.split_once('\t').unwrap();
        let variable = entry.split_once('=').map_or(entry, |(v, _)| v);
        let env = parse_service_env([entry, "SERVICE_9090_NAME=_sibling._tcp"]);
        assert_eq!(env.errors.len(), 1, "{entry:?} must be rejected");
        let message = env.errors[0].to_string();
        assert!(message.contains(variable), "{entry:?}: the message names the variable: {message}");
        assert!(message.contains(expected), "{entry:?}: expected {expected:?} in: {message}");
        assert_eq!(env.bindings.len(), 1, "{entry:?}: the valid sibling still registers");
        assert_eq!(env.bindings[0].service.to_string(), "_sibling._tcp");
        checked += 1;
    }
    assert!(checked >= 30, "the corpus has {checked} entries");
}
