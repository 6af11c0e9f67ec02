//! Theory made checkable: the core crate's bounds and rate fits, and the
//! PEPit-style checks that turn measurements into verdicts.
//!
//! Data flows one way: solver runs -> measured values and constants ->
//! [`bounds`] -> [`checks`] (using [`rate_fit`]) -> report and figures.

pub use taskrobust::theory::*;

pub mod checks;

pub use checks::{Check, Verdict};
