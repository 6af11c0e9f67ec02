//! Linear-regression transfer model: does minimax pre-training reduce the
//! number of samples the hardest downstream task needs? (docs/THEORY.md,
//! "Transfer"). The mathematics lives in the core crate; this module adds
//! scenarios, checks, reports and figures.
//!
//! Data flows one way: scenario -> upstream losses -> representations
//! (average, Fantope relaxation, rank-k Grassmann minimax) -> exact risks and
//! Monte Carlo -> checks -> report / CSV.

pub use taskrobust::transfer::*;

pub mod budget;
pub mod checks;
pub mod experiment;
pub mod figures;
pub mod report;
pub mod scenario;
