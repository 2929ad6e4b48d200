//! AWS SDK setup shared by both binaries: the configuration loaded once at start, and the variant for
//! clients whose retries are ours.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;

/// The region when nothing names one (no `AWS_REGION`, no profile, no instance metadata): the SDK
/// would otherwise fail every call; Route53 is a global service, so its calls still work from here.
const FALLBACK_REGION: &str = "us-east-1";

/// The SDK configuration from the environment (credentials, region, `AWS_ENDPOINT_URL`), as ECS and
/// Lambda provide it.
pub async fn load() -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else(FALLBACK_REGION);
    aws_config::defaults(BehaviorVersion::latest()).region(region).load().await
}

/// `sdk` for clients whose calls go through [`crate::retry::call_with_retry`]: the SDK's own retries
/// off (ours classify and back off), connecting bounded by 3 s and each attempt by `attempt`, so a hung
/// connection is retried rather than waited on forever. Connecting takes at most three quarters of the
/// attempt (room for the kernel's resend of an unanswered SYN, after 1 s), so a connection that never
/// opens ends as a dispatch failure (nothing sent), not as an attempt timeout (sent, perhaps carried
/// out).
pub fn for_our_retries(sdk: &SdkConfig, attempt: Duration) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3).min(attempt * 3 / 4))
        .operation_attempt_timeout(attempt)
        .build();
    sdk.to_builder().retry_config(RetryConfig::disabled()).timeout_config(timeouts).build()
}
