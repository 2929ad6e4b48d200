//! The calc example service's logic; `main.rs` serves it.
//!
//! # Layout
//! - [`formula`]: the bounded parser and evaluator (operators, constants, one-argument functions), pure
//!   and tested with hostile input.

pub mod formula;
