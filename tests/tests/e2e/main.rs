//! The end-to-end tests, one module per subject, in a single test binary: one link of the harness and
//! the AWS SDK instead of one per file. Test names are `<module>::<test>`; one module's tests run with
//! `cargo nextest run -p ecssd-tests -E 'test(/^sweeper::/)'`.

mod deployment;
mod emulator_fidelity;
mod examples;
mod getting_started;
mod harness;
mod host_address;
mod ipv6_lambda;
mod ipv6_sidecar;
mod metadata_mode;
mod negative_caching;
mod registration_handoff;
mod route53_roundtrip;
mod sidecar;
mod sidecar_image;
mod sidecar_resilience;
mod sidecar_settings;
mod sweeper;
mod sweeper_attacks;
mod task_stops;
