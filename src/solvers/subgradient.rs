//! Projected subgradient method on F = max_i f_i: the step follows the
//! gradient of a worst task. Returns the best iterate (argmin's state tracks
//! it). The certificate uses the running average of the one-hot weights of the
//! active tasks. Bound: docs/THEORY.md#subgradient-method.

use super::smoothing::{distance_bound, region_radius};
use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::error::InputError;
use crate::family::Evaluation;
use crate::numerics::max_with_index;
use argmin::core::{Error, Problem, Solver, State, KV};
use nalgebra::DVector;

/// Constant-step subgradient descent (tuned step R / (G sqrt T)).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Subgradient {
    fixed_step: Option<f64>,
    distance: Option<f64>,
    horizon: u64,
    pub(crate) step: f64,
    pub(crate) tracker: Tracker,
    active_counts: Vec<f64>,
    averaged_weights: Vec<f64>,
    eval: Option<Evaluation>,
}

fn one_hot_at_max(losses: &[f64], weights: &mut [f64]) {
    weights.fill(0.0);
    if let Some((i, _)) = max_with_index(losses) {
        weights[i] = 1.0;
    }
}

impl Subgradient {
    pub fn new(step: Option<f64>, distance: Option<f64>, horizon: u64, tracker: Tracker) -> Self {
        Self {
            fixed_step: step,
            distance,
            horizon,
            step: f64::NAN,
            tracker,
            active_counts: Vec::new(),
            averaged_weights: Vec::new(),
            eval: None,
        }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn averaged_weights(&self) -> &[f64] {
        &self.averaged_weights
    }

    fn certify_and_record(
        &mut self,
        family: &dyn crate::family::TaskFamily,
        theta: &DVector<f64>,
        iteration: u64,
        step: f64,
    ) -> Option<KV> {
        let eval = self.eval.as_ref().expect("evaluated");
        let total: f64 = self.active_counts.iter().sum();
        for (a, &c) in self.averaged_weights.iter_mut().zip(&self.active_counts) {
            *a = c / total;
        }
        let lower = if self.tracker.due(iteration) {
            self.tracker
                .certify_weights(family, theta, &self.averaged_weights)
        } else {
            f64::NAN
        };
        self.tracker.record(
            iteration,
            &eval.losses,
            &self.averaged_weights,
            lower,
            None,
            step,
        )
    }
}

impl Solver<MinimaxProblem, MinimaxState> for Subgradient {
    fn name(&self) -> &str {
        "subgradient"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let (m, d) = (family.num_tasks(), family.dim());
        let theta = super::start_point(&mut state, family.as_ref(), &set);
        self.step = match self.fixed_step {
            Some(s) => s,
            None => {
                let (Some(region), Some(r)) = (
                    region_radius(&set, &theta, self.distance),
                    distance_bound(&set, self.distance),
                ) else {
                    return Err(InputError::new(
                        "--step",
                        "subgradient needs a step size: give --step, a radius in the problem, or --distance",
                    )
                    .into());
                };
                let g = family.gradient_bound_on_ball(region);
                r / (g.max(f64::MIN_POSITIVE) * (self.horizon as f64).sqrt())
            }
        };
        let mut eval = Evaluation::new(m, d);
        family.evaluate(&theta, &mut one_hot_at_max, &mut eval);
        self.tracker.absorb(&eval);
        self.active_counts = eval.weights.clone();
        self.averaged_weights = vec![0.0; m];
        let cost = eval.max_loss();
        self.eval = Some(eval);
        let kv = self.certify_and_record(family.as_ref(), &theta, 0, f64::NAN);
        Ok((state.param(theta).cost(cost), kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = super::take_theta(&mut state)?;
        let mut next = state.take_prev_param().unwrap_or_else(|| theta.clone());
        let mut eval = self.eval.take().expect("initialised");
        next.copy_from(&theta);
        next.axpy(-self.step, &eval.gradient, 1.0);
        set.project(&mut next);
        family.evaluate(&next, &mut one_hot_at_max, &mut eval);
        self.tracker.absorb(&eval);
        for (c, &w) in self.active_counts.iter_mut().zip(&eval.weights) {
            *c += w;
        }
        let cost = eval.max_loss();
        self.eval = Some(eval);
        let kv = self.certify_and_record(family.as_ref(), &next, state.get_iter() + 1, self.step);
        Ok((state.param(theta).param(next).cost(cost), kv))
    }
}
