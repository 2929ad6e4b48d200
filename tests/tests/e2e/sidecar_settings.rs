//! Settings the sidecar refuses at start: the real binary, before any I/O (no moto, Docker or task).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecssd_tests::sidecar::{NO_RESOLVER, binary};

/// Every duration setting has a range: past it (up to the largest u64, which as a Duration added to
/// an Instant panicked), the sidecar exits 2 at start naming the variable and the range, not a panic.
#[tokio::test]
async fn durations_out_of_range_stop_the_start_with_a_message_not_a_panic() {
    let largest = u64::MAX.to_string();
    let cases = [
        ("ECSSD_METADATA_WAIT_SECONDS", largest.as_str(), "0..=3600"),
        ("ECSSD_METADATA_WAIT_SECONDS", "3601", "0..=3600"),
        ("ECSSD_COALESCE_MS", largest.as_str(), "0..=60000"),
        ("ECSSD_DRAIN_SECONDS", largest.as_str(), "0..=172800"),
        ("ECSSD_HEAL_CHECK_SECONDS", largest.as_str(), "0..=86400"),
    ];
    for (variable, value, range) in cases {
        let run = tokio::process::Command::new(binary("ecssd-sidecar").unwrap())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // Were the value taken, the start would go on: to nothing but closed loopback ports.
            .env("ECSSD_SOURCE", "metadata")
            .env("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:9/v4/ecssd")
            .env("ECSSD_RESOLVER", NO_RESOLVER)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(variable, value)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = format!("environment variable {variable}={value:?} is not valid");
        assert!(stderr.contains(&said) && stderr.contains(range), "{variable}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{variable}={value}: {stderr}");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}: {stderr}");
    }
}
