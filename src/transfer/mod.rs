//! Linear-regression transfer model: does minimax pre-training reduce the
//! number of samples the hardest downstream task needs? (docs/THEORY.md,
//! "Transfer"; issue 4.)
//!
//! Data flows one way: scenario -> upstream losses -> representations
//! (average, Fantope relaxation, rank-k Grassmann minimax) -> exact risks and
//! Monte Carlo -> checks -> report / CSV.

pub mod average;
pub mod budget;
pub mod checks;
pub mod experiment;
pub mod fantope;
pub mod figures;
pub mod grassmann;
pub mod model;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod simulate;
pub mod spectral;
pub mod upstream;
