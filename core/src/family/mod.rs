//! Convex task families behind one small trait.
//!
//! A family holds M convex losses `f_1..f_M : R^d -> R`. The solvers only ever
//! ask it for (i) the losses at a point and (ii) the weighted gradient
//! `sum_i w_i grad f_i(theta)` where the weights are chosen *from those same
//! losses* (softmax, uniform, one-hot, ...) -- in one pass over the data. It
//! also provides the constants the theory needs and a certified lower bound
//! on the weighted dual function `D(p) = min_theta sum_i p_i f_i(theta)`.

mod data;
pub mod generators;
mod least_squares;
mod logistic;
mod quadratic;

#[cfg_attr(not(feature = "gpu"), allow(unused_imports))]
pub(crate) use data::with_values;
pub use data::{DataTasks, SampleNorms, SampleValues, Samples, Targets, TaskData};
pub use least_squares::{GradientForm, LeastSquaresFamily};
pub use logistic::LogisticFamily;
pub use quadratic::{QuadraticFamily, QuadraticTask};

use crate::error::Error;
use crate::problem::ball::Ball;
use crate::problem::certificate::{Certificate, QuadraticForm};
use nalgebra::DVector;

/// Work buffers for one evaluation, owned by the caller so the iteration loop
/// does not allocate.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// `f_i(theta)` for every task.
    pub losses: Vec<f64>,
    /// The weights chosen from `losses` (on the simplex for minimax methods).
    pub weights: Vec<f64>,
    /// `sum_i weights_i grad f_i(theta)`.
    #[serde(with = "crate::solvers::checkpoint::vector")]
    pub gradient: DVector<f64>,
    /// `||grad f_i(theta)||` for every task (for the constant G of the theory).
    pub task_gradient_norms: Vec<f64>,
}

impl Evaluation {
    /// Zeroed buffers for `num_tasks` tasks in dimension `dim`.
    pub fn new(num_tasks: usize, dim: usize) -> Self {
        Self {
            losses: vec![0.0; num_tasks],
            weights: vec![0.0; num_tasks],
            gradient: DVector::zeros(dim),
            task_gradient_norms: vec![0.0; num_tasks],
        }
    }

    /// `sum_i weights_i losses_i`, i.e. `Phi_p(theta)`.
    pub fn weighted_loss(&self) -> f64 {
        self.weights
            .iter()
            .zip(&self.losses)
            .map(|(w, f)| w * f)
            .sum()
    }

    /// The worst-task loss `F(theta) = max_i f_i(theta)`.
    pub fn max_loss(&self) -> f64 {
        self.losses
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Estimated floating-point operations of one pass ([`TaskFamily::evaluate`])
/// and of one certificate ([`TaskFamily::certify`]). The default certificate
/// schedule uses their ratio (see `solvers::certificate_interval`); estimates,
/// not measurements, so that the schedule, and with it the run, is the same on
/// every machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkEstimate {
    /// Flops of one pass ([`TaskFamily::evaluate`]).
    pub pass_flops: f64,
    /// Flops of one certificate ([`TaskFamily::certify`]).
    pub certificate_flops: f64,
}

impl WorkEstimate {
    /// The dual certificate of M quadratic forms in dimension d: the weighted
    /// sum (2 M d^2), its Cholesky factor (d^3 / 3), the Newton point with two
    /// refinement steps and the model's evaluation (about 12 d^2 + 2 M d^2).
    pub fn quadratic_dual(pass_flops: f64, tasks: usize, dim: usize) -> Self {
        let (m, d) = (tasks as f64, dim as f64);
        Self {
            pass_flops,
            certificate_flops: d * d * d / 3.0 + 4.0 * m * d * d + 12.0 * d * d,
        }
    }
}

/// How a solver turns losses into weights: `weigh(losses, weights)`.
pub type Weigh<'a> = dyn FnMut(&[f64], &mut [f64]) + 'a;

/// M convex task losses on R^d.
///
/// Implementations must be deterministic: the same inputs give bit-identical
/// outputs whatever the number of rayon threads.
pub trait TaskFamily: Send + Sync {
    /// The family's name: for the built-in families the problem-file kind
    /// ("quadratic", "least_squares", "logistic"; "fantope" for the transfer
    /// model's). A string, not an enum, so that families written outside the
    /// crate name themselves; it keys checkpoints' problem digests.
    fn kind(&self) -> &'static str;
    /// M: the number of tasks.
    fn num_tasks(&self) -> usize;
    /// d: the dimension of theta.
    fn dim(&self) -> usize;

    /// `f_i(theta)` for every task, into `losses`. Fails only where the
    /// evaluation itself fails (a device error of a GPU family): the CPU
    /// families always succeed.
    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), Error>;

    /// One pass over the data: `out.losses = f(theta)`, then
    /// `weigh(&out.losses, &mut out.weights)`, then
    /// `out.gradient = sum_i out.weights[i] grad f_i(theta)` and the per-task
    /// gradient norms. Fails as [`TaskFamily::losses`] does.
    fn evaluate(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> Result<(), Error>;

    /// `grad f_task(theta)` into `gradient` (finite-difference tests, constants).
    /// Errors as [`TaskFamily::evaluate`] does (a device family's failed pass).
    fn task_gradient(
        &self,
        task: usize,
        theta: &DVector<f64>,
        gradient: &mut DVector<f64>,
    ) -> Result<(), Error>;

    /// L: every `f_i` is L-smooth (largest Hessian eigenvalue over tasks).
    fn smoothness(&self) -> f64;

    /// lambda: every `f_i` is lambda-strongly convex (0 where not known).
    fn strong_convexity(&self) -> f64 {
        0.0
    }

    /// L where it is known without further work, else `None`. Data families
    /// compute their spectra (a Gram matrix and its eigenvalues per task) on
    /// first use only, so a run that never needs L never pays for it.
    fn known_smoothness(&self) -> Option<f64> {
        Some(self.smoothness())
    }

    /// lambda where it is known without further work (see [`TaskFamily::known_smoothness`]).
    fn known_strong_convexity(&self) -> Option<f64> {
        Some(self.strong_convexity())
    }

    /// Upper bound on `max_i ||grad f_i(theta)||` over `||theta|| <= radius`.
    fn gradient_bound_on_ball(&self, radius: f64) -> f64;

    /// Upper bound on `max_i |f_i(theta)|` over `||theta|| <= radius`.
    fn loss_bound_on_ball(&self, radius: f64) -> f64;

    /// A certified lower bound on `D(p) = min_{theta in ball} sum_i p_i f_i(theta)`
    /// for `p = at.weights`, where `at` is an evaluation at `theta` with those
    /// weights (its gradient is `grad Phi_p(theta)`). Families with closed-form
    /// duals ignore `theta` and `at.gradient`.
    fn certified_lower_bound(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64;

    /// [`TaskFamily::certified_lower_bound`] with how it was obtained: the
    /// bound (on OPT, true in floating point), its kind, its rounding
    /// allowance and a note where it is loose or missing.
    fn certify(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> Certificate {
        let bound = self.certified_lower_bound(theta, at, ball);
        Certificate {
            bound,
            kind: if bound.is_finite() { "dual" } else { "none" },
            error_bound: 0.0,
            note: "",
        }
    }

    /// The estimated cost of a pass and of a certificate. The default: a pass
    /// reads M d-vectors, and a certificate costs next to nothing beside it.
    fn work_estimate(&self) -> WorkEstimate {
        WorkEstimate {
            pass_flops: 2.0 * self.num_tasks() as f64 * self.dim() as f64,
            certificate_flops: 0.0,
        }
    }

    /// An upper bound on `max_i |f_i(theta) - losses[i]|` for `losses` as
    /// [`TaskFamily::losses`] computes them at theta (the rounding of F(theta)).
    fn loss_error_bound(&self, _theta: &DVector<f64>, _losses: &[f64]) -> f64 {
        0.0
    }

    /// The tasks as quadratic forms, where they are quadratic (for `exact`).
    fn quadratic_forms(&self) -> Option<&[QuadraticForm]> {
        None
    }

    /// The data and l2 penalty, where the tasks are l2-regularised logistic
    /// regressions (for the exponential-cone `exact` solve).
    fn logistic_parts(&self) -> Option<(&DataTasks, f64)> {
        None
    }

    /// The data, where the tasks are least squares on data without stored
    /// quadratic forms (wide tasks: the `exact` solve on the samples).
    fn least_squares_data(&self) -> Option<&DataTasks> {
        None
    }

    /// Samples per task, for families built on data (minibatch methods).
    fn sample_counts(&self) -> Option<Vec<usize>> {
        None
    }

    /// `at` is this family's evaluation at `theta` (its losses are
    /// `f(theta)`): refills `at.weights` from `weigh(&at.losses, ..)` and
    /// `at.gradient` for those weights, as [`TaskFamily::evaluate`] would (a
    /// lowered temperature, say). Families that keep the task gradients of
    /// their last pass recombine them where that pass was at `theta`, bit for
    /// bit what `evaluate` gives, without reading the data; the default
    /// evaluates again. Returns whether a pass over the data was made.
    fn reweigh(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        at: &mut Evaluation,
    ) -> Result<bool, Error> {
        self.evaluate(theta, weigh, at)?;
        Ok(true)
    }

    /// Like [`TaskFamily::evaluate`], with each task's loss and gradient
    /// estimated on the given rows only (plug-in minibatch estimates).
    /// Returns `false` where the family has no data rows.
    fn evaluate_minibatch(
        &self,
        _theta: &DVector<f64>,
        _rows: &[Vec<usize>],
        _weigh: &mut Weigh<'_>,
        _out: &mut Evaluation,
    ) -> bool {
        false
    }
}

/// The task gradients of a family's last full pass (columns, d x M) and the
/// point it was made at, so that [`TaskFamily::reweigh`] can recombine them.
#[derive(Debug)]
pub(crate) struct TaskGradients {
    pub(crate) columns: nalgebra::DMatrix<f64>,
    point: DVector<f64>,
    /// Whether `columns` are the gradients at `point` (a minibatch pass, or
    /// none yet, leaves other values there).
    at_point: bool,
}

impl TaskGradients {
    pub(crate) fn new(dim: usize, num_tasks: usize) -> Self {
        Self {
            columns: nalgebra::DMatrix::zeros(dim, num_tasks),
            point: DVector::zeros(dim),
            at_point: false,
        }
    }

    /// Marks the columns as the full gradients at `theta` (after a pass).
    pub(crate) fn made_at(&mut self, theta: &DVector<f64>) {
        self.point.copy_from(theta);
        self.at_point = true;
    }

    /// Marks the columns as not the gradients at any point (minibatches).
    pub(crate) fn invalidate(&mut self) {
        self.at_point = false;
    }

    /// [`TaskFamily::reweigh`] for a family keeping these: recombines where
    /// the last full pass was at `theta` (bitwise), else `None`.
    pub(crate) fn reweigh(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        at: &mut Evaluation,
    ) -> Option<()> {
        let same = self.at_point
            && self.point.len() == theta.len()
            && self
                .point
                .iter()
                .zip(theta.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            return None;
        }
        weigh(&at.losses, &mut at.weights);
        combine_task_gradients(
            &self.columns,
            &at.weights,
            &mut at.gradient,
            &mut at.task_gradient_norms,
        );
        Some(())
    }
}

/// [`TaskFamily::reweigh`] for a family that keeps its task gradients in
/// `scratch`: recombines them where its last pass was at `theta`, else
/// evaluates again.
pub(crate) fn reweigh_from(
    scratch: &std::sync::Mutex<TaskGradients>,
    family: &dyn TaskFamily,
    theta: &DVector<f64>,
    weigh: &mut Weigh<'_>,
    at: &mut Evaluation,
) -> Result<bool, Error> {
    // The guard is dropped before a fallback evaluation takes the lock again.
    let recombined = scratch
        .lock()
        .expect("scratch lock poisoned")
        .reweigh(theta, weigh, at);
    match recombined {
        Some(()) => Ok(false),
        None => family.evaluate(theta, weigh, at).map(|()| true),
    }
}

/// Combines per-task gradients (columns of `task_gradients`, d x M) with the
/// weights in task order -- a fixed order, so results do not depend on threads.
pub(crate) fn combine_task_gradients(
    task_gradients: &nalgebra::DMatrix<f64>,
    weights: &[f64],
    gradient: &mut DVector<f64>,
    norms: &mut [f64],
) {
    gradient.fill(0.0);
    for (i, column) in task_gradients.column_iter().enumerate() {
        norms[i] = column.norm();
        if weights[i] != 0.0 {
            gradient.axpy(weights[i], &column, 1.0);
        }
    }
}
