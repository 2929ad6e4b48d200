//! The zone settings: how long resolvers may remember an absent name (the SOA's negative caching),
//! set by the stack's custom resource on a zone it creates, and checked by every sweep.
//!
//! - [`handler`]: the function: a CloudFormation custom resource request in, one answer PUT out.
//! - [`custom_resource`]: the stack's `ZoneNegativeCaching` resource (the request and its answer).
//! - [`negative_caching`]: reading and setting the SOA's negative caching.
//! - [`emptying`]: deleting this owner's records when the stack deletes the zone.
//! - [`response_url`]: where an answer may go, and PUTting it there.
//! - [`stacks`]: CloudFormation's word that the stack is being deleted.

pub mod custom_resource;
pub mod emptying;
pub mod handler;
pub mod negative_caching;
pub mod response_url;
pub mod stacks;
