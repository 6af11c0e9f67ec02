//! taskrobust: task-robust (minimax) pre-training, made checkable.
//!
//! Solve `min_theta max_i f_i(theta)` over M convex task losses with
//! softmax-weighted gradient descent (Wang, Chen, Xie, Fang, Lin, NeurIPS
//! 2023) and its baselines, with a duality gap that is certified in floating
//! point. The bounds are written up in the repository's docs/THEORY.md.
//!
//! The layers, bottom up:
//! - [`linalg`]: SIMD kernels, Gram matrices, storage of large data;
//! - [`problem`]: feasible sets, certificates, numerics, scaling;
//! - [`family`]: task families (quadratic, least squares, logistic) behind
//!   [`TaskFamily`];
//! - [`solvers`]: the methods, as argmin solvers, and the open runner
//!   ([`solvers::run_solver`]) that certifies and records any solver;
//! - [`theory`]: the convergence bounds and rate fits;
//! - [`transfer`]: the linear-regression transfer model's mathematics;
//! - [`gpu`]: the CUDA families (feature `gpu`).
//!
//! [`prelude`] gathers what a solve needs.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod family;
pub mod files;
pub mod gpu;
pub mod linalg;
pub mod prelude;
pub mod problem;
pub mod solvers;
pub mod theory;
pub mod transfer;

pub use error::{Error, InputError};
pub use family::{Evaluation, TaskFamily};
pub use problem::ball::{Ball, FeasibleSet};
pub use problem::certificate::Certificate;
pub use solvers::{solve, Method, SolveOptions, SolveOutcome};
