//! taskrobust: task-robust (minimax) pre-training, made checkable.
//!
//! Solve `min_theta max_i f_i(theta)` over M convex task losses with
//! softmax-weighted gradient descent (Wang, Chen, Xie, Fang, Lin, NeurIPS
//! 2023) and its baselines, with a certified duality gap at every iteration.
//! The bounds the toolkit checks are written up in docs/THEORY.md.

pub mod ball;
pub mod certificate;
pub mod cli;
pub mod error;
pub mod experiments;
pub mod family;
pub mod gpu;
pub mod gram;
pub mod io;
pub mod kernels;
pub mod latex;
pub mod memory;
pub mod numerics;
pub mod plots;
pub mod report;
pub mod scaling;
pub mod solvers;
pub mod theory;
pub mod transfer;

pub use ball::{Ball, FeasibleSet};
pub use error::{Error, InputError};
pub use family::{Evaluation, TaskFamily};
