//! What a solve needs, in one import: `use taskrobust::prelude::*;`.

pub use crate::error::{Error, InputError};
pub use crate::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
pub use crate::family::{
    Evaluation, GradientForm, LeastSquaresFamily, LogisticFamily, QuadraticFamily, TaskFamily,
};
pub use crate::problem::ball::{Ball, FeasibleSet};
pub use crate::problem::certificate::Certificate;
pub use crate::solvers::{solve, Certifying, Method, SolveOptions, SolveOutcome};
