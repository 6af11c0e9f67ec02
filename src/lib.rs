//! The taskrobust lab: the experiments, checks, figures, reports, file
//! formats and command line built on the `taskrobust` core crate.
//!
//! Data flow one way: tasks -> solver -> certificate -> check -> table ->
//! figure. The core crate holds the first three; this crate the rest.

// The core's modules under their old names, for this crate's own code.
pub(crate) use taskrobust::linalg::memory;
pub(crate) use taskrobust::problem::{ball, certificate, numerics, scaling};
pub(crate) use taskrobust::{error, family, solvers};

pub mod cli;
pub mod experiments;
pub mod gpu;
pub mod io;
pub mod latex;
pub mod plots;
pub mod report;
pub mod theory;
pub mod transfer;

pub use taskrobust::{Ball, Error, Evaluation, FeasibleSet, InputError, TaskFamily};
