//! The time example service's logic; `main.rs` serves it.
//!
//! # Layout
//! - [`layout`]: Go's layout vocabulary, pure and table-tested against Go's own examples.

pub mod layout;
