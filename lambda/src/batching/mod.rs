//! The batcher: the registrations sidecars hand over (the registration queue,
//! [`ecssd_records::handoff`]) are written many tasks to a request, so that a deploy of hundreds of
//! tasks costs the account a few Route53 requests instead of one or more per task.
//!
//! - [`handler`]: the function: an SQS batch in, a partial batch response out.
//! - [`write`]: checking each handoff and writing them together, splitting a refused request.

pub mod handler;
pub mod write;
