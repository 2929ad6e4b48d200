//! The binaries' edge: everything between ecssd's pure record model (`ecssd-records`) and the world
//! outside the process, shared by the sidecar and the Lambda functions.
//!
//! # Layout
//! - [`sdk`]: the AWS SDK configuration loaded once at start, and clients whose retries are ours.
//! - [`retry`]: AWS errors classed (transient, conflict, not found, permanent) from the SDK's typed
//!   error model, the retry loop on the model's backoff, and call counting.
//! - [`route53_errors`]: the Route53 operations ecssd calls and the class of each error they model.
//! - [`ecs_errors`]: the same for the ECS and EC2 operations (the sweeper's, and the sidecar's lookup
//!   of its host's address).
//! - [`handoff`]: the registration queue's messages.
//! - [`route53`]: [`Route53Zone`], the Route53 implementation of the model's `RecordStore`.
//! - [`pace`]: spacing one client's requests under a shared rate limit.
//! - [`cli`]: flag/environment parsing naming the variable behind a bad value, the log filter check,
//!   and `block_on` (runtime and exit status).
//! - [`logging`]: the log subscriber both binaries install.

pub mod cli;
pub mod ecs_errors;
pub mod handoff;
pub mod logging;
pub mod pace;
pub mod retry;
pub mod route53;
pub mod route53_errors;
pub mod sdk;

pub use logging::LogFormat;
pub use pace::Pacer;
pub use retry::{CallCounter, ErrorClass};
pub use route53::Route53Zone;
