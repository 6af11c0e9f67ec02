//! Your own solver through taskrobust's runner, certificates and conformance
//! kit: optimistic gradient descent-ascent (Popov; Daskalakis et al. 2018),
//! which the crate does not have, on `min_theta max_{p in simplex} sum_i p_i f_i(theta)`.
//!
//! theta steps along `2 g_t - g_{t-1}` (g: the p-weighted gradient) and p by
//! optimistic multiplicative weights along `2 f(theta_t) - f(theta_{t-1})`.
//! The runner certifies the returned point with the averaged weights.
//!
//! Run: `cargo run --release --example optimistic_descent_ascent`.

use argmin::core::{Error, Problem, Solver, State, KV};
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use taskrobust::prelude::*;
use taskrobust::problem::numerics::softmax_into;
use taskrobust::solvers::{run_solver, start_point, take_theta, unwrap_problem};
use taskrobust::solvers::{MinimaxProblem, MinimaxState, Resume, Tracker};

/// The method's steps, unchecked: a run takes only [`check`](Self::check)ed
/// ones (linfa's style).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct OptimisticParams {
    /// The theta step (about 1/(4L) is safe).
    pub step: f64,
    /// The step of the weights' multiplicative update.
    pub weight_step: f64,
}

/// Steps that passed [`OptimisticParams::check`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Checked(OptimisticParams);

impl OptimisticParams {
    /// Both steps finite and positive, or an error naming the parameter.
    pub fn check(self) -> Result<Checked, InputError> {
        for (name, value) in [("step", self.step), ("weight_step", self.weight_step)] {
            if !(value.is_finite() && value > 0.0) {
                let message = format!("must be finite and positive, got {value}");
                return Err(InputError::new(name, message));
            }
        }
        Ok(Checked(self))
    }
}

/// Optimistic descent-ascent: its steps, the run's tracker, and the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptimisticDescentAscent {
    params: OptimisticParams,
    tracker: Tracker,
    /// Weights, their running average, the last two weighted gradients and
    /// the last losses (empty before the first evaluation).
    state: [Vec<f64>; 5],
}

impl OptimisticDescentAscent {
    /// A solver with checked parameters and the run's tracker.
    pub fn new(Checked(params): Checked, tracker: Tracker) -> Self {
        let state = Default::default();
        Self {
            params,
            tracker,
            state,
        }
    }

    /// Evaluates theta with the current weights, records it, then takes the
    /// weights' optimistic step along `2 f(theta_t) - f(theta_{t-1})`.
    fn visit(
        &mut self,
        family: &dyn TaskFamily,
        theta: &DVector<f64>,
        t: u64,
    ) -> Result<(f64, Option<KV>), taskrobust::Error> {
        let [weights, averaged, gradient, previous_gradient, previous_losses] = &mut self.state;
        let mut eval = Evaluation::new(family.num_tasks(), family.dim());
        family.evaluate(theta, &mut |_, w| w.copy_from_slice(weights), &mut eval)?;
        let kv = self
            .tracker
            .observe(family, theta, &eval, t, self.params.step)?;
        if previous_losses.is_empty() {
            previous_losses.clone_from(&eval.losses);
        }
        let logits: Vec<f64> = (0..eval.losses.len())
            .map(|i| {
                weights[i].ln()
                    + self.params.weight_step * (2.0 * eval.losses[i] - previous_losses[i])
            })
            .collect();
        softmax_into(&logits, 1.0, weights);
        for (a, w) in averaged.iter_mut().zip(&eval.weights) {
            *a += (w - *a) / (t as f64 + 1.0);
        }
        previous_losses.clone_from(&eval.losses);
        *previous_gradient = std::mem::replace(gradient, eval.gradient.as_slice().to_vec());
        if previous_gradient.is_empty() {
            previous_gradient.clone_from(gradient);
        }
        Ok((eval.max_loss(), kv))
    }
}

impl Solver<MinimaxProblem, MinimaxState> for OptimisticDescentAscent {
    fn name(&self) -> &str {
        "optimistic-descent-ascent"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = start_point(&mut state, family.as_ref(), &set);
        let m = family.num_tasks();
        (self.state[0], self.state[1]) = (vec![1.0 / m as f64; m], vec![0.0; m]);
        let (cost, kv) = self.visit(family.as_ref(), &theta, 0)?;
        Ok((state.param(theta).cost(cost), kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = take_theta(&mut state)?;
        let mut next = theta.clone();
        for ((t, g), p) in next.iter_mut().zip(&self.state[2]).zip(&self.state[3]) {
            *t -= self.params.step * (2.0 * g - p);
        }
        set.project(&mut next);
        let (cost, kv) = self.visit(family.as_ref(), &next, state.get_iter() + 1)?;
        Ok((state.param(next).cost(cost), kv))
    }
}

impl Certifying for OptimisticDescentAscent {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn certificate_weights(&self, _losses: &[f64]) -> Vec<f64> {
        self.state[1].clone()
    }
}

impl Resume for OptimisticDescentAscent {}

/// Runs the method on `family` and `set` through taskrobust's runner.
pub fn run(
    family: Arc<dyn TaskFamily>,
    set: FeasibleSet,
    params: Checked,
    options: &SolveOptions,
) -> Result<SolveOutcome, taskrobust::Error> {
    let tracker = Tracker::for_run(family.as_ref(), set, options);
    run_solver(
        family,
        set,
        OptimisticDescentAscent::new(params, tracker),
        "optimistic-descent-ascent",
        options,
    )
}

/// Steps that suit the quadratic families here: theta 1/(4L), weights 0.1.
pub fn default_params(family: &dyn TaskFamily) -> Checked {
    let step = 0.25 / family.smoothness();
    let params = OptimisticParams {
        step,
        weight_step: 0.1,
    };
    params.check().expect("L is finite and positive")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = SyntheticSpec {
        num_tasks: 8,
        dim: 10,
        outliers: 2,
        outlier_distance: 3.0,
        seed: 1,
        ..Default::default()
    };
    let family: Arc<dyn TaskFamily> = Arc::new(quadratic_family(&spec)?);
    let options = SolveOptions {
        iterations: 2000,
        ..Default::default()
    };
    let params = default_params(family.as_ref());
    let ours = run(family.clone(), FeasibleSet::Unconstrained, params, &options)?;
    let built_in = solve(family, FeasibleSet::Unconstrained, &options)?;
    for out in [&ours, &built_in] {
        println!(
            "{:<26} F = {:.6}  certified OPT >= {:.6}  gap {:.2e}",
            out.method, out.max_loss, out.lower_bound, out.gap
        );
    }
    Ok(())
}

#[cfg(test)]
mod conformance {
    use super::*;
    use proptest::prelude::*;
    use taskrobust_testing::{check_all, known_problems};

    fn ogda(
        family: Arc<dyn TaskFamily>,
        set: FeasibleSet,
    ) -> Result<SolveOutcome, taskrobust::Error> {
        let params = default_params(family.as_ref());
        let options = SolveOptions {
            iterations: 400,
            record_trace: true,
            ..Default::default()
        };
        run(family, set, params, &options)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn optimistic_descent_ascent_keeps_the_invariants(problem in known_problems()) {
            // Certificate <= OPT, a sound gap, weights on the simplex,
            // relabelling and thread-count invariance.
            check_all(&problem, &ogda, false)?;
        }
    }
}
