//! The runner: [`solve`] builds a built-in solver from [`SolveOptions`];
//! [`run_solver`] runs any solver, built in or your own, through argmin's
//! `Executor` (with checkpoints) and certifies the returned point.

use super::tracker::Tracker;
use super::{
    Accelerated, AverageGd, Constants, DescentAscent, Exact, Method, MinimaxProblem, MinimaxState,
    SoftmaxGd, SolveOptions, SolveOutcome, StepRule, StochasticSoftmaxGd, Subgradient,
};
use super::{FileCheckpoint, Fingerprint, Resume};
use crate::error::Error;
use crate::family::{Evaluation, TaskFamily};
use crate::problem::ball::FeasibleSet;
use crate::problem::certificate::Certificate;
use crate::problem::numerics::round_up;
use crate::problem::numerics::{entropy, max_with_index, softmax_into};
use argmin::core::{Executor, Solver, State};
use nalgebra::DVector;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What the runner needs from a solver, besides argmin's [`Solver`].
///
/// A certifying solver keeps a [`Tracker`] (made with [`Tracker::for_run`])
/// and hands it every evaluation it makes at an iterate
/// ([`Tracker::observe`]): the tracker measures the constants, certifies the
/// iterate when its schedule says so and keeps the records. After the run,
/// the runner asks for the weights that certify the returned point, and the
/// certificate it reports is never worse than the best the tracker saw.
pub trait Certifying {
    /// The records of the run.
    fn tracker(&self) -> &Tracker;
    /// The weights whose dual value certifies the returned point, given its losses.
    fn certificate_weights(&self, losses: &[f64]) -> Vec<f64>;
    /// Temperature and step actually used (for the report).
    fn mu_and_step(&self) -> (Option<f64>, Option<f64>) {
        (None, None)
    }
    /// L_mu = L + G^2 / mu, where the step came from it (for the report).
    fn smoothed_smoothness(&self) -> Option<f64> {
        None
    }
    /// The smallest step taken, where backtracking shrinks it (for the report).
    fn smallest_step(&self) -> Option<f64> {
        None
    }
    /// The external solver's status, where one was used (`exact`).
    fn solver_status(&self) -> Option<String> {
        None
    }
    /// Whether the runner returns argmin's best iterate (lowest worst-task
    /// loss) rather than the last one (subgradient methods, which do not
    /// descend).
    fn returns_best_iterate(&self) -> bool {
        false
    }
}

fn softmax_weights(losses: &[f64], mu: f64) -> Vec<f64> {
    let mut w = vec![0.0; losses.len()];
    softmax_into(losses, mu, &mut w);
    w
}

fn step_value(rule: StepRule, smallest: f64) -> (Option<f64>, Option<f64>) {
    match rule {
        StepRule::Fixed(s) => (Some(s), Some(s)),
        StepRule::Backtracking { initial } => {
            (Some(initial), smallest.is_finite().then_some(smallest))
        }
        StepRule::InverseSmoothness => (None, None),
    }
}

/// The two deterministic smoothed methods keep the same bookkeeping
/// (mu, step rule, L_mu, smallest step taken).
macro_rules! certifying_smoothed {
    ($solver:ty) => {
        impl Certifying for $solver {
            fn tracker(&self) -> &Tracker {
                &self.tracker
            }
            fn certificate_weights(&self, losses: &[f64]) -> Vec<f64> {
                softmax_weights(losses, self.mu)
            }
            fn mu_and_step(&self) -> (Option<f64>, Option<f64>) {
                (Some(self.mu), step_value(self.step, self.smallest_step).0)
            }
            fn smoothed_smoothness(&self) -> Option<f64> {
                self.smoothed_smoothness
            }
            fn smallest_step(&self) -> Option<f64> {
                step_value(self.step, self.smallest_step).1
            }
        }
    };
}

certifying_smoothed!(SoftmaxGd);
certifying_smoothed!(Accelerated);

impl Certifying for StochasticSoftmaxGd {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn certificate_weights(&self, losses: &[f64]) -> Vec<f64> {
        softmax_weights(losses, self.mu)
    }
    fn mu_and_step(&self) -> (Option<f64>, Option<f64>) {
        (Some(self.mu), Some(self.step))
    }
    fn smoothed_smoothness(&self) -> Option<f64> {
        self.smoothed_smoothness
    }
}

impl Certifying for DescentAscent {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn certificate_weights(&self, _losses: &[f64]) -> Vec<f64> {
        self.averaged_weights().to_vec()
    }
    fn mu_and_step(&self) -> (Option<f64>, Option<f64>) {
        (None, Some(self.step))
    }
}

impl Certifying for Subgradient {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn returns_best_iterate(&self) -> bool {
        true
    }
    fn certificate_weights(&self, _losses: &[f64]) -> Vec<f64> {
        self.averaged_weights().to_vec()
    }
    fn mu_and_step(&self) -> (Option<f64>, Option<f64>) {
        (None, Some(self.step))
    }
}

impl Certifying for AverageGd {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn certificate_weights(&self, losses: &[f64]) -> Vec<f64> {
        vec![1.0 / losses.len() as f64; losses.len()]
    }
    fn mu_and_step(&self) -> (Option<f64>, Option<f64>) {
        (None, Some(self.step))
    }
}

impl Certifying for Exact {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn certificate_weights(&self, _losses: &[f64]) -> Vec<f64> {
        self.weights.clone()
    }
    fn solver_status(&self) -> Option<String> {
        Some(self.status.clone())
    }
}

/// Gradient steps on `Phi_p` used to tighten the strong-convexity certificate
/// of the returned point (families without a closed-form dual). The docs of
/// [`certify_point`] state this value.
const REFINEMENT_STEPS: usize = 25;

/// The returned point's certificate is refined only while its own slack could
/// still matter: at most this share of the reported gap may be slack
/// (docs/THEORY.md#certificates). The docs of [`certify_returned_point`]
/// state this value.
const REFINEMENT_SHARE_OF_GAP: f64 = 0.01;

/// The certified relative gap `exact` promises (README, "exact").
pub const EXACT_TOLERANCE: f64 = 1e-6;

/// The best certified lower bound for weights `p` near `theta`. Closed-form
/// duals are computed once; otherwise the local model bound is tightened by up
/// to 25 gradient steps on `Phi_p` (every step's bound is certified in
/// floating point, the best is kept) -- the tightest this crate can certify
/// (references).
pub fn certify_point(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta: &DVector<f64>,
    p: &[f64],
) -> Result<f64, Error> {
    Ok(refined_certificate(family, set, theta, p, None)?.bound)
}

/// [`certify_point`] for the point a solver returns with `max_loss = F(theta)`:
/// the refinement stops once the strong-convexity slack `||grad Phi_p||^2 / (2
/// lambda)`, which bounds what any further refinement could add, is at most
/// 1% of the gap `F(theta) - bound`.
pub fn certify_returned_point(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta: &DVector<f64>,
    p: &[f64],
    max_loss: f64,
) -> Result<f64, Error> {
    Ok(refined_certificate(family, set, theta, p, Some(max_loss))?.bound)
}

/// [`certify_returned_point`] with the certificate's kind, allowance and note.
pub fn certify_returned_point_fully(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta: &DVector<f64>,
    p: &[f64],
    max_loss: f64,
) -> Result<Certificate, Error> {
    refined_certificate(family, set, theta, p, Some(max_loss))
}

fn refined_certificate(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta: &DVector<f64>,
    p: &[f64],
    max_loss: Option<f64>,
) -> Result<Certificate, Error> {
    let mut eval = Evaluation::new(family.num_tasks(), family.dim());
    family.evaluate(theta, &mut |_, w| w.copy_from_slice(p), &mut eval)?;
    let mut best = family.certify(theta, &eval, set);
    if family.quadratic_forms().is_some() {
        return Ok(best);
    }
    let lambda = family.strong_convexity();
    if lambda <= 0.0 {
        return Ok(best);
    }
    // L only where a step is taken (data families compute it on first use).
    let mut step = None;
    let mut point = theta.clone();
    for _ in 0..REFINEMENT_STEPS {
        let slack = eval.gradient.norm_squared() / (2.0 * lambda);
        if slack <= 1e-15 * eval.weighted_loss().abs().max(1e-300) {
            break;
        }
        if max_loss.is_some_and(|f| slack <= REFINEMENT_SHARE_OF_GAP * (f - best.bound)) {
            break;
        }
        let step = *step.get_or_insert_with(|| 1.0 / family.smoothness().max(lambda));
        point.axpy(-step, &eval.gradient, 1.0);
        set.project(&mut point);
        family.evaluate(&point, &mut |_, w| w.copy_from_slice(p), &mut eval)?;
        best = best.better(family.certify(&point, &eval, set));
    }
    Ok(best)
}

fn execute<S>(
    problem: MinimaxProblem,
    solver: S,
    theta0: DVector<f64>,
    options: &SolveOptions,
    name: &str,
) -> Result<(S, MinimaxState), Error>
where
    S: Solver<MinimaxProblem, MinimaxState> + Serialize + DeserializeOwned + Resume + 'static,
{
    let iterations = options
        .interrupt_after
        .map_or(options.iterations, |k| k.min(options.iterations));
    let mut executor = Executor::new(problem.clone(), solver)
        .configure(|state| state.param(theta0).max_iters(iterations));
    if let Some(hook) = &options.on_iteration {
        executor =
            executor.add_observer(hook.clone(), argmin::core::observers::ObserverMode::Always);
    }
    if let Some(path) = &options.checkpoint {
        let fingerprint = Fingerprint::new(problem.family.as_ref(), problem.set, options, name)?;
        executor = executor.checkpointing(FileCheckpoint::new(
            path,
            options.checkpoint_every,
            fingerprint,
            iterations,
        ));
    }
    let result = executor.run()?;
    Ok((result.solver, result.state))
}

/// `execute` for solvers that finish in one step (nothing to checkpoint).
fn execute_once<S>(
    problem: MinimaxProblem,
    solver: S,
    theta0: DVector<f64>,
) -> Result<(S, MinimaxState), Error>
where
    S: Solver<MinimaxProblem, MinimaxState>,
{
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(theta0).max_iters(1))
        .run()?;
    Ok((result.solver, result.state))
}

fn finish<S: Certifying>(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    options: &SolveOptions,
    name: &str,
    solver: S,
    mut state: MinimaxState,
    start: Instant,
) -> Result<SolveOutcome, Error> {
    let theta = if solver.returns_best_iterate() {
        state.take_best_param().or_else(|| state.take_param())
    } else {
        state.take_param()
    }
    .unwrap_or_else(|| DVector::zeros(family.dim()));
    let mut losses = vec![0.0; family.num_tasks()];
    family.losses(&theta, &mut losses)?;
    let weights = solver.certificate_weights(&losses);
    let tracker = solver.tracker();
    let (worst_task, max_loss) = max_with_index(&losses).unwrap_or((0, f64::NAN));
    // Any valid bound certifies OPT; keep the best certified during this run
    // as well (recomputed ones only: a bound read from a checkpoint is not kept).
    let mut certificate = certify_returned_point_fully(family, set, &theta, &weights, max_loss)?;
    if let Some(best) = tracker.best_certificate(family)? {
        certificate = certificate.better(best);
    }
    // The gap covers F(theta)'s own rounding too: F <= max_loss + loss_error.
    let loss_error = family.loss_error_bound(&theta, &losses);
    let lower_bound = certificate.bound;
    let gap = if lower_bound.is_finite() {
        round_up(max_loss + loss_error - lower_bound)
    } else {
        f64::NAN
    };
    certificate.error_bound = round_up(certificate.error_bound + loss_error);
    let solver_status = solver.solver_status();
    // exact's stated tolerance: Clarabel's status, and a certified gap within
    // 1e-6 relative (what its 1e-10 tolerances should give where the
    // certificate is tight).
    let reached_tolerance = match &solver_status {
        Some(status) => status == "Solved" && gap <= EXACT_TOLERANCE * max_loss.abs().max(1.0),
        None => true,
    };
    let (mu, step) = solver.mu_and_step();
    Ok(SolveOutcome {
        method: name.to_string(),
        iterations: state.get_iter(),
        theta: theta.as_slice().to_vec(),
        entropy: entropy(&weights),
        losses,
        weights,
        max_loss,
        lower_bound,
        gap,
        certificate,
        solver_status,
        reached_tolerance,
        seconds: start.elapsed().as_secs_f64(),
        mu,
        step,
        worst_task,
        termination: state
            .get_termination_reason()
            .map_or_else(|| "max iterations".to_string(), |r| r.text().to_string()),
        constants: Constants {
            smoothness: if options.report_constants {
                Some(family.smoothness())
            } else {
                family.known_smoothness()
            },
            strong_convexity: if options.report_constants {
                Some(family.strong_convexity())
            } else {
                family.known_strong_convexity()
            },
            gradient_bound: tracker.gradient_bound,
            loss_bound: tracker.loss_bound,
            smoothed_smoothness: solver.smoothed_smoothness(),
            smallest_step: solver.smallest_step(),
        },
        trace: tracker.trace.clone(),
    })
}

/// Solves `min_{theta in set} max_i f_i(theta)` with the chosen method and
/// returns the point, its losses, certificate weights, a certified lower bound
/// on OPT and the gap.
pub fn solve(
    family: Arc<dyn TaskFamily>,
    set: FeasibleSet,
    options: &SolveOptions,
) -> Result<SolveOutcome, Error> {
    let checked = options.validate(family.as_ref())?;
    let tracker = Tracker::for_run(family.as_ref(), set, options);
    let name = options.method.name();
    match options.method {
        Method::SoftmaxGd => {
            let solver = SoftmaxGd::new(options.smoothed_params().check()?, tracker);
            run_checked(family, set, solver, name, options)
        }
        Method::Accelerated => {
            let solver = Accelerated::new(options.smoothed_params().check()?, tracker);
            run_checked(family, set, solver, name, options)
        }
        Method::Stochastic => {
            let solver = StochasticSoftmaxGd::new(checked.stochastic, tracker);
            run_checked(family, set, solver, name, options)
        }
        Method::DescentAscent => {
            let solver = DescentAscent::new(checked.descent_ascent, tracker);
            run_checked(family, set, solver, name, options)
        }
        Method::Subgradient => {
            let params = options.subgradient_params().check()?;
            run_checked(
                family,
                set,
                Subgradient::new(params, tracker),
                name,
                options,
            )
        }
        Method::Average => {
            let solver = AverageGd::new(options.average_params().check()?, tracker);
            run_checked(family, set, solver, name, options)
        }
        Method::Exact => {
            let start = Instant::now();
            let theta0 = start_point_of(family.as_ref(), &set, options);
            let problem = MinimaxProblem::new(family.clone(), set);
            let solver = Exact::new(tracker);
            let (solver, state) = execute_once(problem, solver, theta0)?;
            finish(family.as_ref(), &set, options, name, solver, state, start)
        }
    }
}

/// theta_0 of a run: `options.init` (zero by default), projected onto the set.
fn start_point_of(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    options: &SolveOptions,
) -> DVector<f64> {
    let mut theta0 = options
        .init
        .clone()
        .unwrap_or_else(|| DVector::zeros(family.dim()));
    set.project(&mut theta0);
    theta0
}

/// Runs any certifying argmin solver through the runner the built-in methods
/// use, and certifies the point it returns.
///
/// The run starts at `options.init` (zero by default, projected onto the
/// set), takes `options.iterations` iterations (fewer where
/// `options.interrupt_after` says so), saves and resumes checkpoints where
/// `options.checkpoint` is set (bound to the problem, the options and
/// `name`), and returns a [`SolveOutcome`] with the same records as the
/// built-in methods: the returned point's losses, its certificate (never
/// worse than the best the solver's tracker saw), the gap, the weights, their
/// entropy, the worst task and, with `options.record_trace`, the trace.
/// `name` labels the outcome. The method-specific options (`mu`, `step`, ...)
/// are the solver's own business and are not read here.
///
/// ```
/// use std::sync::Arc;
/// use taskrobust::prelude::*;
/// use taskrobust::solvers::{run_solver, AverageGd, AverageParams, Tracker};
///
/// let spec = SyntheticSpec { num_tasks: 4, dim: 3, seed: 1, ..Default::default() };
/// let family: Arc<dyn TaskFamily> = Arc::new(quadratic_family(&spec).unwrap());
/// let options = SolveOptions { iterations: 50, ..Default::default() };
/// let tracker = Tracker::for_run(family.as_ref(), FeasibleSet::Unconstrained, &options);
/// let solver = AverageGd::new(AverageParams::default().check().unwrap(), tracker);
/// let out = run_solver(family, FeasibleSet::Unconstrained, solver, "average", &options).unwrap();
/// assert!(out.gap >= 0.0 && out.lower_bound <= out.max_loss);
/// ```
pub fn run_solver<S>(
    family: Arc<dyn TaskFamily>,
    set: FeasibleSet,
    solver: S,
    name: &str,
    options: &SolveOptions,
) -> Result<SolveOutcome, Error>
where
    S: Solver<MinimaxProblem, MinimaxState>
        + Certifying
        + Serialize
        + DeserializeOwned
        + Resume
        + 'static,
{
    options.check(family.as_ref())?;
    run_checked(family, set, solver, name, options)
}

/// [`run_solver`] for options already checked.
fn run_checked<S>(
    family: Arc<dyn TaskFamily>,
    set: FeasibleSet,
    solver: S,
    name: &str,
    options: &SolveOptions,
) -> Result<SolveOutcome, Error>
where
    S: Solver<MinimaxProblem, MinimaxState>
        + Certifying
        + Serialize
        + DeserializeOwned
        + Resume
        + 'static,
{
    let start = Instant::now();
    let theta0 = start_point_of(family.as_ref(), &set, options);
    let problem = MinimaxProblem::new(family.clone(), set);
    let (solver, state) = execute(problem, solver, theta0, options, name)?;
    finish(family.as_ref(), &set, options, name, solver, state, start)
}
