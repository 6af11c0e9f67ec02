//! Minimax solvers for `min_{theta in Theta} max_i f_i(theta)`.
//!
//! Each solver implements argmin's [`Solver`](argmin::core::Solver), so
//! argmin's `Executor`, observers, checkpointing and termination all work;
//! every step reports the worst-task loss, the weights, a certified lower
//! bound on OPT and the gap as key/value pairs. [`solve`] is the convenience
//! runner used by the CLI and the experiments.

mod accelerated;
mod average;
pub(crate) mod checkpoint;
mod descent_ascent;
mod exact;
mod params;
mod run;
mod smoothing;
mod softmax_gd;
mod stochastic;
mod subgradient;
mod tracker;

pub use accelerated::Accelerated;
pub use average::AverageGd;
pub use checkpoint::{FileCheckpoint, Fingerprint, Resume};
pub use descent_ascent::DescentAscent;
pub use exact::{solve_epigraph, solve_logistic_epigraph, EpigraphSolution, Exact};
pub use params::{
    AverageParams, Checked, DescentAscentParams, ParamError, SmoothedParams, StochasticParams,
    SubgradientParams,
};
pub use run::{
    certify_point, certify_returned_point, certify_returned_point_fully, run_solver, solve,
    Certifying,
};
pub use smoothing::{StepRule, Temperature, ACCELERATED_REACH};
pub use softmax_gd::SoftmaxGd;
pub use stochastic::StochasticSoftmaxGd;
pub use subgradient::Subgradient;
pub use tracker::{IterationRecord, Tracker};

use crate::error::{invalid, InputError};
use crate::family::{TaskFamily, WorkEstimate};
use crate::problem::ball::FeasibleSet;
use argmin::core::{IterState, Problem, State};
use nalgebra::DVector;
use serde::Serialize;
use std::str::FromStr;
use std::sync::Arc;

/// The problem argmin's `Executor` hands to the solvers.
#[derive(Clone)]
pub struct MinimaxProblem {
    /// The tasks `f_1..f_M`.
    pub family: Arc<dyn TaskFamily>,
    /// Theta: the feasible set.
    pub set: FeasibleSet,
}

impl MinimaxProblem {
    /// The problem `min_{theta in set} max_i f_i(theta)`.
    pub fn new(family: Arc<dyn TaskFamily>, set: FeasibleSet) -> Self {
        Self { family, set }
    }
}

/// argmin state: the parameter is theta, the cost is the worst-task loss.
pub type MinimaxState = IterState<DVector<f64>, (), (), (), (), f64>;

/// Borrow the family and the set out of argmin's problem wrapper (counting the call).
pub fn unwrap_problem(
    problem: &mut Problem<MinimaxProblem>,
) -> Result<(Arc<dyn TaskFamily>, FeasibleSet), argmin::core::Error> {
    problem.problem("evaluation_count", |p| Ok((p.family.clone(), p.set)))
}

/// The solvers, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Softmax-weighted gradient descent, the paper's method ([`SoftmaxGd`]).
    SoftmaxGd,
    /// FISTA on the smoothed maximum F_mu ([`Accelerated`]).
    Accelerated,
    /// Minibatch softmax-gd, for data families ([`StochasticSoftmaxGd`]).
    Stochastic,
    /// Exponentiated-gradient descent-ascent with averaged iterates ([`DescentAscent`]).
    DescentAscent,
    /// Projected subgradient method on F ([`Subgradient`]).
    Subgradient,
    /// Gradient descent on the mean task loss, the ERM baseline ([`AverageGd`]).
    Average,
    /// The epigraph SOCP solved by Clarabel, the reference ([`Exact`]).
    Exact,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 7] = [
        Method::SoftmaxGd,
        Method::Accelerated,
        Method::Stochastic,
        Method::DescentAscent,
        Method::Subgradient,
        Method::Average,
        Method::Exact,
    ];

    /// The command-line name (`--method`), e.g. "softmax-gd".
    pub fn name(&self) -> &'static str {
        match self {
            Method::SoftmaxGd => "softmax-gd",
            Method::Accelerated => "accelerated",
            Method::Stochastic => "stochastic",
            Method::DescentAscent => "descent-ascent",
            Method::Subgradient => "subgradient",
            Method::Average => "average",
            Method::Exact => "exact",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                InputError::new(
                    "method",
                    format!(
                        "unknown method '{s}' (expected one of {})",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// Options of [`solve`]; `check` validates them before any work starts.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// The solver to run.
    pub method: Method,
    /// T: the number of updates of theta.
    pub iterations: u64,
    /// Fixed temperature; `None` tunes it for the horizon (see [`Temperature`]).
    pub mu: Option<f64>,
    /// Fixed step; `None` uses the default rule of each method (see docs/THEORY.md).
    pub step: Option<f64>,
    /// Step on the task weights (descent-ascent); `None` tunes it for the horizon.
    pub weight_step: Option<f64>,
    /// Seed of the minibatch draws (stochastic).
    pub seed: u64,
    /// Starting point (default: zero, projected onto the set).
    pub init: Option<DVector<f64>>,
    /// An upper bound on `R = ||theta_0 - theta*||` where the set gives none.
    pub distance: Option<f64>,
    /// Samples per task per step (stochastic).
    pub batch_size: usize,
    /// Exponential moving average factor for task losses (stochastic), in (0, 1].
    pub ema: Option<f64>,
    /// Compute the certificate every this many iterations (1 = every step);
    /// `None`: on the cost budget of [`certificate_interval`]. The returned
    /// point is always certified.
    pub certify_every: Option<u64>,
    /// Keep a per-iteration trace (weights included) in the outcome.
    pub record_trace: bool,
    /// Report L and lambda even where the run did not need them (for data
    /// families they cost a Gram matrix and its eigenvalues per task).
    pub report_constants: bool,
    /// Save the solver's state to this file every `checkpoint_every`
    /// iterations, and resume from it when it exists (see [`FileCheckpoint`]).
    pub checkpoint: Option<std::path::PathBuf>,
    /// Iterations between checkpoint saves.
    pub checkpoint_every: u64,
    /// Stop after this many iterations in total, as if interrupted (the
    /// checkpoint keeps the state; tests and time-sliced job slots use it).
    pub interrupt_after: Option<u64>,
    /// Called after every update of theta; an error it returns stops the run
    /// and is what the run returns (a host language's Ctrl-C, a deadline, a
    /// progress display). `None`: nothing is called, and the run is as before.
    pub on_iteration: Option<IterationHook>,
}

/// What [`SolveOptions::on_iteration`] calls after every update of theta:
/// `(iteration, theta, max_loss)`, where `iteration` counts the updates made
/// so far (1 after the first), `theta` is the new iterate and `max_loss` its
/// worst-task loss (for `descent-ascent`, of the current, not the averaged,
/// iterate). Returning an error stops the run with that error. It reads the
/// run only: checkpoints and results do not depend on it.
#[derive(Clone)]
pub struct IterationHook(pub Arc<IterationFn>);

/// The function inside an [`IterationHook`].
pub type IterationFn = dyn Fn(u64, &DVector<f64>, f64) -> Result<(), crate::Error> + Send + Sync;

impl IterationHook {
    /// A hook calling `f`.
    pub fn new(
        f: impl Fn(u64, &DVector<f64>, f64) -> Result<(), crate::Error> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for IterationHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IterationHook")
    }
}

impl argmin::core::observers::Observe<MinimaxState> for IterationHook {
    fn observe_iter(
        &mut self,
        state: &MinimaxState,
        _kv: &argmin::core::KV,
    ) -> Result<(), argmin::core::Error> {
        // argmin counts the iteration after its observers have seen it.
        let iteration = state.get_iter() + 1;
        match state.get_param() {
            Some(theta) => (self.0)(iteration, theta, state.get_cost()).map_err(Into::into),
            None => Ok(()),
        }
    }
}

/// Certificates estimated at or below this many flops are made every
/// iteration: they take microseconds, and the continuation schedule reads
/// every one of them.
pub const CHEAP_CERTIFICATE_FLOPS: f64 = 131_072.0;

/// The share of the passes' estimated cost that the default schedule spends
/// on certificates (the target: the sound certificate adds at most 10% to a
/// default solve; the estimate is within a factor 2 of measured times, and the
/// start's and the returned point's certificates come on top).
pub const CERTIFICATE_SHARE: f64 = 0.03;

/// Iterations between certificates: `every` where given; else 1 where a
/// certificate is cheap (at most [`CHEAP_CERTIFICATE_FLOPS`], or within
/// [`CERTIFICATE_SHARE`] of a pass), else as many passes as make the
/// certificate [`CERTIFICATE_SHARE`] of their cost. A function of the problem's
/// shape only, so runs are the same on every machine and after a resume.
pub fn certificate_interval(every: Option<u64>, work: WorkEstimate) -> u64 {
    if let Some(every) = every {
        return every.max(1);
    }
    let budget = CERTIFICATE_SHARE * work.pass_flops;
    if work.certificate_flops <= CHEAP_CERTIFICATE_FLOPS.max(budget) {
        return 1;
    }
    let passes = (work.certificate_flops / budget).ceil();
    if passes.is_finite() && passes < u64::MAX as f64 {
        passes as u64
    } else {
        u64::MAX
    }
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            method: Method::SoftmaxGd,
            iterations: 200,
            mu: None,
            step: None,
            weight_step: None,
            seed: 0,
            init: None,
            distance: None,
            batch_size: 32,
            ema: None,
            certify_every: None,
            record_trace: false,
            report_constants: false,
            checkpoint: None,
            checkpoint_every: 100,
            interrupt_after: None,
            on_iteration: None,
        }
    }
}

impl SolveOptions {
    /// Softmax-gd's and accelerated's parameters from these options.
    pub fn smoothed_params(&self) -> SmoothedParams {
        SmoothedParams {
            mu: self.mu,
            step: self.step,
            distance: self.distance,
            horizon: self.iterations,
        }
    }

    /// Stochastic softmax-gd's parameters from these options.
    pub fn stochastic_params(&self) -> StochasticParams {
        StochasticParams {
            smoothed: self.smoothed_params(),
            batch_size: self.batch_size,
            ema: self.ema,
            seed: self.seed,
        }
    }

    /// Descent-ascent's parameters from these options.
    pub fn descent_ascent_params(&self) -> DescentAscentParams {
        DescentAscentParams {
            step: self.step,
            weight_step: self.weight_step,
            distance: self.distance,
            horizon: self.iterations,
        }
    }

    /// The subgradient method's parameters from these options.
    pub fn subgradient_params(&self) -> SubgradientParams {
        SubgradientParams {
            step: self.step,
            distance: self.distance,
            horizon: self.iterations,
        }
    }

    /// Average gradient descent's parameters from these options.
    pub fn average_params(&self) -> AverageParams {
        AverageParams { step: self.step }
    }

    /// Validates the options against the family; errors name the field
    /// (`mu`, `step`, ...), which the command line translates to its flags.
    pub fn check(&self, family: &dyn TaskFamily) -> Result<(), InputError> {
        self.validate(family).map(drop)
    }

    /// [`SolveOptions::check`], keeping the parameter sets it checked so
    /// that [`solve`] does not check them again.
    pub(crate) fn validate(&self, family: &dyn TaskFamily) -> Result<CheckedOptions, InputError> {
        if self.iterations == 0 {
            return invalid("iterations", "must be a positive integer");
        }
        // Every method's own check, whichever runs: a bad value is refused
        // even where this method would not read it.
        let checked = CheckedOptions {
            stochastic: self.stochastic_params().check()?,
            descent_ascent: self.descent_ascent_params().check()?,
        };
        if self.certify_every == Some(0) {
            return invalid("certify_every", "must be a positive integer");
        }
        if self.checkpoint_every == 0 {
            return invalid("checkpoint_every", "must be a positive integer");
        }
        if self.checkpoint.is_some() && self.method == Method::Exact {
            return invalid(
                "checkpoint",
                "exact solves in one step; there is nothing to checkpoint",
            );
        }
        if self.interrupt_after == Some(0) {
            return invalid("interrupt_after", "must be a positive integer");
        }
        if let Some(init) = &self.init {
            if init.len() != family.dim() {
                return invalid(
                    "init",
                    format!(
                        "has {} entries, the problem has dimension {}",
                        init.len(),
                        family.dim()
                    ),
                );
            }
            crate::error::check_finite("init", init.as_slice())?;
        }
        if self.method == Method::Stochastic && family.sample_counts().is_none() {
            return invalid(
                "method",
                format!(
                    "stochastic needs data tasks (least_squares or logistic), not {}",
                    family.kind()
                ),
            );
        }
        if self.method == Method::Exact
            && family.quadratic_forms().is_none()
            && family.logistic_parts().is_none()
            && family.least_squares_data().is_none()
        {
            return invalid(
                "method",
                format!(
                    "exact supports quadratic, least_squares and logistic problems, not {}",
                    family.kind()
                ),
            );
        }
        Ok(checked)
    }
}

/// The parameter sets [`SolveOptions::check`] validates whichever method
/// runs (the other methods' sets are checked where they are built).
pub(crate) struct CheckedOptions {
    pub(crate) stochastic: Checked<StochasticParams>,
    pub(crate) descent_ascent: Checked<DescentAscentParams>,
}

/// Constants of the theory, as used and as measured during the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Constants {
    /// L: every task is L-smooth. `None` where the run did not need L and
    /// [`SolveOptions::report_constants`] was not set.
    pub smoothness: Option<f64>,
    /// lambda: every task is lambda-strongly convex (0 if not known); `None`
    /// as for `smoothness`.
    pub strong_convexity: Option<f64>,
    /// G: the largest task-gradient norm seen at the points the solver evaluated.
    pub gradient_bound: f64,
    /// B: the largest |f_i| seen at those points.
    pub loss_bound: f64,
    /// L_mu = L + G^2 / mu used for the step, where the step came from it.
    pub smoothed_smoothness: Option<f64>,
    /// The smallest step taken (backtracking shrinks it).
    pub smallest_step: Option<f64>,
}

/// The result of [`solve`].
#[derive(Debug, Clone, Serialize)]
pub struct SolveOutcome {
    /// The method's name: a built-in [`Method::name`], or the name given to
    /// [`run_solver`].
    pub method: String,
    /// Iterations run, as argmin counts them.
    pub iterations: u64,
    /// The returned point: the last iterate, or the best one (subgradient).
    pub theta: Vec<f64>,
    /// `f_i(theta)` for every task at the returned theta.
    pub losses: Vec<f64>,
    /// The method's certificate weights at the returned theta.
    pub weights: Vec<f64>,
    /// F(theta) = max_i f_i(theta) at the returned theta.
    pub max_loss: f64,
    /// A certified lower bound on OPT.
    pub lower_bound: f64,
    /// max_loss + its rounding bound - lower_bound (>= F(theta) - OPT).
    pub gap: f64,
    /// How lower_bound was certified (kind, rounding allowance, note).
    pub certificate: crate::problem::certificate::Certificate,
    /// The external solver's status where one was used (`exact`).
    pub solver_status: Option<String>,
    /// Whether `exact` reached its stated tolerance (Clarabel's "Solved" and a
    /// certified gap within 1e-6 relative); `true` for the other methods.
    pub reached_tolerance: bool,
    /// Wall-clock time of the run, in seconds.
    pub seconds: f64,
    /// mu: the temperature at the end of the run (smoothed methods).
    pub mu: Option<f64>,
    /// eta: the step at the end of the run (under backtracking, the initial trial
    /// step), where the method has one.
    pub step: Option<f64>,
    /// `argmax_i f_i(theta)` (the first on ties).
    pub worst_task: usize,
    /// Entropy of `weights` (natural log; ln M for uniform weights).
    pub entropy: f64,
    /// Why the run stopped: argmin's termination reason, else "max iterations".
    pub termination: String,
    /// The constants of the theory, as used and measured.
    pub constants: Constants,
    /// One record per iteration where `record_trace` was set, else empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<IterationRecord>,
}

/// The current parameter out of the state (every solver's `init` sets one).
pub fn take_theta(state: &mut MinimaxState) -> Result<DVector<f64>, argmin::core::Error> {
    state
        .take_param()
        .ok_or_else(|| argmin::core::Error::msg("solver state has no parameter (init not run)"))
}

/// theta_0: the configured starting point (zero by default), projected onto the set.
pub fn start_point(
    state: &mut MinimaxState,
    family: &dyn TaskFamily,
    set: &FeasibleSet,
) -> DVector<f64> {
    let mut theta = state
        .take_param()
        .unwrap_or_else(|| DVector::zeros(family.dim()));
    set.project(&mut theta);
    theta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::generators::{least_squares_family, SyntheticSpec};
    use crate::family::GradientForm;

    fn work(pass_flops: f64, certificate_flops: f64) -> WorkEstimate {
        WorkEstimate {
            pass_flops,
            certificate_flops,
        }
    }

    #[test]
    fn certificate_interval_spends_its_share_of_the_passes_on_certificates() {
        // A given interval is used as given (0 cannot pass the options' check).
        assert_eq!(certificate_interval(Some(7), work(1.0, 1e12)), 7);
        assert_eq!(certificate_interval(Some(1), work(1.0, 1e12)), 1);
        // Cheap certificates: every iteration, however dear beside a pass.
        assert_eq!(certificate_interval(None, work(1.0, 0.0)), 1);
        assert_eq!(
            certificate_interval(None, work(1.0, CHEAP_CERTIFICATE_FLOPS)),
            1
        );
        // Within the share of one pass: every iteration.
        assert_eq!(
            certificate_interval(None, work(1e9, CERTIFICATE_SHARE * 1e9)),
            1
        );
        // Dearer: as many passes as make the certificate their share.
        let pass = 1e6;
        // A ratio that is not a whole number of passes, so that rounding
        // the count down (too few passes) is told from rounding it up.
        let certificate = 3.1e6;
        let k = certificate_interval(None, work(pass, certificate));
        assert_eq!(k, (certificate / (CERTIFICATE_SHARE * pass)).ceil() as u64);
        assert!(certificate / (k as f64 * pass) <= CERTIFICATE_SHARE);
        assert!(certificate / ((k - 1) as f64 * pass) > CERTIFICATE_SHARE);
        // No budget at all: never between the ends.
        assert_eq!(certificate_interval(None, work(0.0, 1e9)), u64::MAX);
    }

    #[test]
    fn the_default_schedule_certifies_large_quadratic_forms_every_kth_iteration() {
        let spec = SyntheticSpec {
            num_tasks: 4,
            dim: 96,
            seed: 3,
            ..Default::default()
        };
        let family: Arc<dyn TaskFamily> =
            Arc::new(least_squares_family(&spec, 400, 0.5, GradientForm::Gram).unwrap());
        let work = family.work_estimate();
        let k = certificate_interval(None, work);
        assert!(k > 1, "d = 96 should be scheduled, got every {k}");
        let options = SolveOptions {
            iterations: 3 * k + 1,
            record_trace: true,
            ..Default::default()
        };
        let outcome = solve(family, FeasibleSet::Unconstrained, &options).unwrap();
        for record in &outcome.trace {
            assert_eq!(
                record.lower_bound.is_finite(),
                record.iteration % k == 0,
                "iteration {} (every {k})",
                record.iteration
            );
        }
        assert!(outcome.lower_bound.is_finite() && outcome.gap >= 0.0);
    }
}
