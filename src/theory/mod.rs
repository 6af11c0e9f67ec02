//! Theory made checkable: the rate bounds of docs/THEORY.md as functions of
//! (T, constants), least-squares rate fits with confidence intervals, and
//! PEPit-style checks that turn measurements into verdicts.
//!
//! Data flows one way: solver runs -> measured values and constants ->
//! [`bounds`] -> [`checks`] (using [`rate_fit`]) -> report and figures.

pub mod bounds;
pub mod checks;
pub mod rate_fit;

pub use checks::{Check, Verdict};
pub use rate_fit::{fit_linear_rate, fit_power_law, LinearRateFit, PowerLawFit, Window};
