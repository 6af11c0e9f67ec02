//! Linear-regression transfer model (docs/THEORY.md, "Transfer model"): does
//! minimax pre-training reduce the number of samples the hardest downstream
//! task needs?
//!
//! Upstream losses -> representations (average, the Fantope relaxation and
//! its dual, rank-k Grassmann minimax) -> exact downstream risks and their
//! Monte Carlo estimates.

pub mod average;
pub mod fantope;
pub mod grassmann;
pub mod model;
pub mod seed;
pub mod simulate;
pub mod spectral;
pub mod upstream;
