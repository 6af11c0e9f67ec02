//! Conformance kit for minimax solvers run through taskrobust.
//!
//! A solver (built in, or your own run through
//! [`taskrobust::solvers::run_solver`]) is a function from a problem to a
//! [`SolveOutcome`]. The kit generates problems whose optimum is bracketed by
//! a certified reference ([`known_problems`]), and checks the invariants every
//! certifying solver must keep:
//!
//! - [`certificate_below_opt`]: the certified lower bound is at most OPT
//!   (at most the reference's certified upper bound on OPT);
//! - [`gap_is_sound`]: the gap is finite, nonnegative and covers
//!   `F(theta) - lower_bound`;
//! - [`weights_on_simplex`]: the reported weights, and every recorded
//!   iterate's, lie on the probability simplex;
//! - [`smoothed_loss_monotone`]: `F_mu` never increases along the trace
//!   (for methods that descend on it, such as softmax-gd under its step rule);
//! - [`permutation_invariant`]: relabelling the tasks changes nothing but
//!   rounding;
//! - [`deterministic_across_threads`]: one and two rayon threads give the
//!   same bits;
//! - [`rate_within_bound`]: measured gaps against a bound you supply, with
//!   the slack at every horizon.
//!
//! [`Instrumented`] wraps any family to count its passes or make them fail,
//! for tests of what a runner does with a pass count or a device error.
//!
//! [`check_all`] runs the first six on one problem. Each check returns a
//! proptest [`TestCaseError`] that says what failed, so it composes with `?`
//! inside `proptest!`.

mod instrumented;
pub use instrumented::{Instrumented, INJECTED_FAILURE};

use nalgebra::DVector;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::Arc;
use taskrobust::family::generators::{quadratic_family, SyntheticSpec};
use taskrobust::family::{QuadraticFamily, QuadraticTask};
use taskrobust::solvers::{solve, Method, SolveOptions, SolveOutcome};
use taskrobust::{Error, FeasibleSet, TaskFamily};

/// A problem whose constants are known by construction and whose optimum is
/// bracketed by a certified reference: `opt_lower <= OPT <= opt_upper`.
#[derive(Debug, Clone)]
pub struct KnownProblem {
    /// The quadratic tasks `1/2 (theta - c_i)^T A_i (theta - c_i) + b_i`.
    pub tasks: Vec<QuadraticTask>,
    /// The feasible set: all of R^d, or a ball.
    pub set: FeasibleSet,
    /// L: the largest eigenvalue of every A_i is at most this.
    pub smoothness: f64,
    /// lambda: the smallest eigenvalue of every A_i is at least this.
    pub strong_convexity: f64,
    /// A certified lower bound on OPT (the `exact` solve's certificate).
    pub opt_lower: f64,
    /// A certified upper bound on OPT: the `exact` point's worst-task loss
    /// plus its rounding allowance.
    pub opt_upper: f64,
}

impl KnownProblem {
    /// A problem from `spec` (quadratic tasks) on `set`, with its reference
    /// solved by `exact`. Fails where `exact` cannot certify it.
    pub fn new(spec: &SyntheticSpec, set: FeasibleSet) -> Result<Self, Error> {
        let family = quadratic_family(spec)?;
        Self::from_tasks(
            family.tasks().to_vec(),
            set,
            spec.smoothness,
            spec.smoothness / spec.condition_number,
        )
    }

    fn from_tasks(
        tasks: Vec<QuadraticTask>,
        set: FeasibleSet,
        smoothness: f64,
        strong_convexity: f64,
    ) -> Result<Self, Error> {
        let family: Arc<dyn TaskFamily> = Arc::new(QuadraticFamily::new(tasks.clone())?);
        let options = SolveOptions {
            method: Method::Exact,
            iterations: 1,
            ..Default::default()
        };
        let reference = solve(family, set, &options)?;
        if !(reference.lower_bound.is_finite() && reference.gap.is_finite()) {
            return Err(Error::Solver(
                "the reference has no certified bracket".into(),
            ));
        }
        Ok(Self {
            tasks,
            set,
            smoothness,
            strong_convexity,
            opt_lower: reference.lower_bound,
            opt_upper: reference.lower_bound + reference.gap,
        })
    }

    /// The tasks as a family to solve.
    pub fn family(&self) -> Arc<dyn TaskFamily> {
        Arc::new(QuadraticFamily::new(self.tasks.clone()).expect("checked when built"))
    }

    /// The same problem with task `i` moved to position `order[i]`'s place:
    /// `permuted.tasks[j] = tasks[order[j]]`.
    pub fn permuted(&self, order: &[usize]) -> Self {
        Self {
            tasks: order.iter().map(|&i| self.tasks[i].clone()).collect(),
            ..self.clone()
        }
    }
}

/// Quadratic problems with 2 to 6 tasks in 1 to 4 dimensions, condition
/// numbers 1 to 100, some with outlying tasks, half of them on a ball that may
/// bind; each with its certified reference.
pub fn known_problems() -> impl Strategy<Value = KnownProblem> {
    (
        2usize..=6,
        1usize..=4,
        any::<u64>(),
        1.0f64..100.0,
        0usize..=1,
        prop_oneof![Just(None), (0.3f64..3.0).prop_map(Some)],
    )
        .prop_filter_map(
            "the reference certifies",
            |(m, d, seed, condition, outliers, radius)| {
                let spec = SyntheticSpec {
                    num_tasks: m,
                    dim: d,
                    seed,
                    condition_number: condition,
                    outliers,
                    outlier_distance: 3.0,
                    ..Default::default()
                };
                let set = radius.map_or(FeasibleSet::Unconstrained, FeasibleSet::with_radius);
                KnownProblem::new(&spec, set).ok()
            },
        )
}

fn fail(message: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(message))
}

/// Relative rounding room for comparisons between runs: many thousand units
/// of roundoff, far below anything a bug moves.
const ROUNDING: f64 = 1e-9;

/// The certified lower bound is at most OPT: at most the reference's
/// certified upper bound on OPT.
pub fn certificate_below_opt(
    problem: &KnownProblem,
    outcome: &SolveOutcome,
) -> Result<(), TestCaseError> {
    if outcome.lower_bound > problem.opt_upper {
        return fail(format!(
            "{}: certified lower bound {:e} above OPT <= {:e} (certificate {:?})",
            outcome.method, outcome.lower_bound, problem.opt_upper, outcome.certificate
        ));
    }
    Ok(())
}

/// The gap is finite, nonnegative and at least `max_loss - lower_bound`, and
/// the reported point is feasible with finite losses.
pub fn gap_is_sound(set: &FeasibleSet, outcome: &SolveOutcome) -> Result<(), TestCaseError> {
    let finite = outcome.max_loss.is_finite()
        && outcome.lower_bound.is_finite()
        && outcome.gap.is_finite()
        && outcome
            .theta
            .iter()
            .chain(&outcome.losses)
            .all(|v| v.is_finite());
    if !finite {
        return fail(format!(
            "{}: a result is not finite: {outcome:?}",
            outcome.method
        ));
    }
    if outcome.gap < 0.0 || outcome.gap < outcome.max_loss - outcome.lower_bound {
        return fail(format!(
            "{}: gap {:e} does not cover max_loss {:e} - lower_bound {:e}",
            outcome.method, outcome.gap, outcome.max_loss, outcome.lower_bound
        ));
    }
    let theta = DVector::from_column_slice(&outcome.theta);
    if let Some(r) = set.radius() {
        if theta.norm() > r * (1.0 + ROUNDING) {
            return fail(format!(
                "{}: ||theta|| = {:e} outside the ball of radius {r:e}",
                outcome.method,
                theta.norm()
            ));
        }
    }
    Ok(())
}

/// Nonnegative weights summing to 1 (up to rounding): the reported weights
/// and those of every recorded iterate.
pub fn weights_on_simplex(outcome: &SolveOutcome) -> Result<(), TestCaseError> {
    let all = std::iter::once((None, &outcome.weights)).chain(
        outcome
            .trace
            .iter()
            .map(|r| (Some(r.iteration), &r.weights)),
    );
    for (iteration, weights) in all {
        let sum: f64 = weights.iter().sum();
        let tolerance = 4.0 * weights.len() as f64 * f64::EPSILON;
        if weights.iter().any(|&w| w.is_nan() || w < 0.0) || (sum - 1.0).abs() > tolerance {
            return fail(format!(
                "{}: weights {weights:?} (iteration {iteration:?}) are not on the simplex (sum {sum})",
                outcome.method
            ));
        }
    }
    Ok(())
}

/// `F_mu` never increases along the recorded trace (up to rounding). Only for
/// methods that descend on `F_mu`; needs `record_trace`.
pub fn smoothed_loss_monotone(outcome: &SolveOutcome) -> Result<(), TestCaseError> {
    let values: Vec<(u64, f64)> = outcome
        .trace
        .iter()
        .filter_map(|r| r.smoothed_loss.map(|s| (r.iteration, s)))
        .collect();
    for pair in values.windows(2) {
        let ((_, before), (t, after)) = (pair[0], pair[1]);
        if after > before + ROUNDING * before.abs().max(1.0) {
            return fail(format!(
                "{}: F_mu rose from {before:e} to {after:e} at iteration {t}",
                outcome.method
            ));
        }
    }
    Ok(())
}

/// Relabelling the tasks (here: reversing them) moves `max_loss` and
/// `lower_bound` by rounding only, and permutes the weights accordingly.
pub fn permutation_invariant<R>(problem: &KnownProblem, run: &R) -> Result<(), TestCaseError>
where
    R: Fn(Arc<dyn TaskFamily>, FeasibleSet) -> Result<SolveOutcome, Error>,
{
    let order: Vec<usize> = (0..problem.tasks.len()).rev().collect();
    let a = run(problem.family(), problem.set).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let b = run(problem.permuted(&order).family(), problem.set)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * (1.0 + x.abs().max(y.abs()));
    if !close(a.max_loss, b.max_loss) || !close(a.lower_bound, b.lower_bound) {
        return fail(format!(
            "{}: relabelled tasks give max_loss {:e} vs {:e}, lower_bound {:e} vs {:e}",
            a.method, a.max_loss, b.max_loss, a.lower_bound, b.lower_bound
        ));
    }
    Ok(())
}

/// One and two rayon threads give bit-identical points, losses and bounds.
pub fn deterministic_across_threads<R>(problem: &KnownProblem, run: &R) -> Result<(), TestCaseError>
where
    R: Fn(Arc<dyn TaskFamily>, FeasibleSet) -> Result<SolveOutcome, Error> + Sync,
{
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        pool.install(|| run(problem.family(), problem.set))
            .map_err(|e| TestCaseError::fail(e.to_string()))
    };
    let (one, two) = (in_pool(1)?, in_pool(2)?);
    let bits = |o: &SolveOutcome| -> Vec<u64> {
        o.theta
            .iter()
            .chain(&o.losses)
            .chain([&o.lower_bound, &o.gap])
            .map(|v| v.to_bits())
            .collect()
    };
    if bits(&one) != bits(&two) {
        return fail(format!(
            "{}: one and two threads differ: {one:?} vs {two:?}",
            one.method
        ));
    }
    Ok(())
}

/// Runs `run` on `problem` and checks every invariant above (the smoothed
/// loss only where `descends_on_smoothed_loss`). `run` should record a trace
/// for the trace checks to see anything.
pub fn check_all<R>(
    problem: &KnownProblem,
    run: &R,
    descends_on_smoothed_loss: bool,
) -> Result<SolveOutcome, TestCaseError>
where
    R: Fn(Arc<dyn TaskFamily>, FeasibleSet) -> Result<SolveOutcome, Error> + Sync,
{
    let outcome =
        run(problem.family(), problem.set).map_err(|e| TestCaseError::fail(e.to_string()))?;
    certificate_below_opt(problem, &outcome)?;
    gap_is_sound(&problem.set, &outcome)?;
    weights_on_simplex(&outcome)?;
    if descends_on_smoothed_loss {
        smoothed_loss_monotone(&outcome)?;
    }
    permutation_invariant(problem, run)?;
    deterministic_across_threads(problem, run)?;
    Ok(outcome)
}

/// A measured rate against a bound: at each horizon T, the measured
/// suboptimality (or certified gap) and the bound's value.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCheck {
    /// `(T, measured, bound)` per horizon.
    pub points: Vec<(f64, f64, f64)>,
    /// `bound / measured` at the largest T: how tight the bound is there
    /// (1 = tight; infinite where the measurement is 0).
    pub slack_at_largest: f64,
}

/// Checks `measured[k] = (T_k, value_k)` against `bound(T_k)`: every value at
/// most its bound, every value and bound finite and nonnegative. Returns the
/// points and the slack at the largest T, so a bound that holds only because
/// it is loose shows as such.
pub fn rate_within_bound(
    measured: &[(f64, f64)],
    bound: impl Fn(f64) -> f64,
) -> Result<RateCheck, TestCaseError> {
    if measured.is_empty() {
        return Err(TestCaseError::fail("no measurements"));
    }
    let mut points = Vec::with_capacity(measured.len());
    for &(t, value) in measured {
        let b = bound(t);
        if !(value.is_finite() && value >= 0.0 && b.is_finite() && b >= 0.0) {
            return Err(TestCaseError::fail(format!(
                "T = {t}: measured {value:e} and bound {b:e} must be finite and nonnegative"
            )));
        }
        if value > b {
            return Err(TestCaseError::fail(format!(
                "T = {t}: measured {value:e} above the bound {b:e}"
            )));
        }
        points.push((t, value, b));
    }
    let &(_, value, b) = points
        .iter()
        .max_by(|x, y| x.0.total_cmp(&y.0))
        .expect("not empty");
    Ok(RateCheck {
        points,
        slack_at_largest: if value > 0.0 {
            b / value
        } else {
            f64::INFINITY
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskrobust::solvers::IterationRecord;

    fn softmax_gd(family: Arc<dyn TaskFamily>, set: FeasibleSet) -> Result<SolveOutcome, Error> {
        let options = SolveOptions {
            iterations: 60,
            record_trace: true,
            ..Default::default()
        };
        solve(family, set, &options)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_built_in_softmax_gd_passes_the_kit(problem in known_problems()) {
            check_all(&problem, &softmax_gd, true)?;
        }
    }

    fn problem() -> KnownProblem {
        let spec = SyntheticSpec {
            num_tasks: 3,
            dim: 2,
            seed: 5,
            ..Default::default()
        };
        KnownProblem::new(&spec, FeasibleSet::Unconstrained).unwrap()
    }

    #[test]
    fn each_check_fails_on_an_outcome_that_breaks_it() {
        let p = problem();
        assert!(p.opt_lower <= p.opt_upper && p.opt_upper - p.opt_lower < 1e-5);
        let good = softmax_gd(p.family(), p.set).unwrap();
        assert!(certificate_below_opt(&p, &good).is_ok());
        let mut above = good.clone();
        above.lower_bound = p.opt_upper * (1.0 + 1e-6) + 1e-9;
        assert!(certificate_below_opt(&p, &above).is_err());
        let mut negative = good.clone();
        negative.gap = -1e-12;
        assert!(gap_is_sound(&p.set, &negative).is_err());
        let mut short = good.clone();
        short.gap = (good.max_loss - good.lower_bound) * 0.5;
        assert!(gap_is_sound(&p.set, &short).is_err() || good.max_loss == good.lower_bound);
        let mut outside = good.clone();
        outside.theta = vec![10.0, 0.0];
        assert!(gap_is_sound(&FeasibleSet::with_radius(1.0), &outside).is_err());
        let mut off = good.clone();
        off.weights = vec![0.6, 0.6, -0.2];
        assert!(weights_on_simplex(&off).is_err());
        let mut rising = good.clone();
        let record = |iteration, smoothed| IterationRecord {
            iteration,
            smoothed_loss: Some(smoothed),
            ..good.trace[0].clone()
        };
        rising.trace = vec![record(0, 1.0), record(1, 1.1)];
        assert!(smoothed_loss_monotone(&rising).is_err());
        // A solver that favours the first task's label is caught.
        let biased = |family: Arc<dyn TaskFamily>, set: FeasibleSet| {
            let mut out = softmax_gd(family.clone(), set)?;
            let mut losses = vec![0.0; family.num_tasks()];
            family.losses(&DVector::zeros(family.dim()), &mut losses)?;
            out.max_loss = losses[0];
            Ok(out)
        };
        assert!(permutation_invariant(&p, &biased).is_err());
        // A solver whose result depends on the thread count is caught.
        let threaded = |family: Arc<dyn TaskFamily>, set: FeasibleSet| {
            let mut out = softmax_gd(family, set)?;
            out.lower_bound -= rayon::current_num_threads() as f64 * 1e-3;
            Ok(out)
        };
        assert!(deterministic_across_threads(&p, &threaded).is_err());
    }

    #[test]
    fn rate_checks_fail_above_the_bound_and_report_their_slack() {
        let measured = [(10.0, 0.1), (100.0, 0.01)];
        let check = rate_within_bound(&measured, |t| 2.0 / t).unwrap();
        assert_eq!(check.slack_at_largest, 2.0);
        assert!(rate_within_bound(&measured, |t| 0.5 / t).is_err());
        assert!(rate_within_bound(&measured, |_| f64::INFINITY).is_err());
        assert!(rate_within_bound(&[(1.0, -1.0)], |_| 1.0).is_err());
        assert!(rate_within_bound(&[], |_| 1.0).is_err());
    }
}
