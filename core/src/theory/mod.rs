//! The convergence bounds of the algorithm as described (docs/THEORY.md), one
//! function per bound, and the rate fits that compare measurements with them.

pub mod bounds;
pub mod rate_fit;

pub use rate_fit::{fit_linear_rate, fit_power_law, LinearRateFit, PowerLawFit, Window};
