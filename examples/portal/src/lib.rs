//! The portal example service's logic; `main.rs` serves it.
//!
//! # Layout
//! - [`discovery`]: SRV, A and AAAA lookups, in the order to try instances.
//! - [`upstream`]: calling one service through its instances, with failover.

pub mod discovery;
pub mod upstream;
