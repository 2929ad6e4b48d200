//! The batcher: registrations sidecars handed over while Route53 throttled them (the registration
//! queue, [`ecssd_records::handoff`]) are written many tasks to a request, so that a deploy of
//! hundreds of tasks costs the account about one Route53 request per task (the refused one) instead
//! of dozens.
//!
//! - [`handler`]: the function: an SQS batch in, a partial batch response out.
//! - [`write`]: checking each handoff and writing them together, splitting a refused request.

pub mod handler;
pub mod write;
