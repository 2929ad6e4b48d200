//! The withdrawer: ECS's task state change events, through an SQS queue, delete a stopped task's
//! records within seconds, once ECS confirms the stop.
//!
//! - [`handler`]: the function: an SQS batch in, a partial batch response out.
//! - [`stop_events`]: one batch: read each event, confirm the stops with ECS, withdraw, report.
//! - [`task_event`]: reading an ECS task state change event; whether it says the task stops. Pure.
//! - [`withdraw`]: deleting stopped tasks' records, read by name and checked against this owner.

pub mod handler;
pub mod stop_events;
pub mod task_event;
pub mod withdraw;
