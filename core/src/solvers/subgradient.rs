//! Projected subgradient method on F = max_i f_i: the step follows the
//! gradient of a worst task. Returns the best iterate (argmin's state tracks
//! it). The certificate uses the running average of the one-hot weights of the
//! active tasks. Bound: docs/THEORY.md#subgradient-method. Without a step and
//! without a region to tune one over, the step is Polyak's with the certified
//! lower bound in place of OPT.

use super::smoothing::{distance_bound, region_radius};
use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::family::Evaluation;
use crate::problem::numerics::max_with_index;
use argmin::core::{Error, Problem, Solver, State, KV};
use nalgebra::DVector;

/// Constant-step subgradient descent (tuned step R / (G sqrt T)), or Polyak
/// steps `(F(theta_t) - D_t) / ||g_t||^2` with D_t the best certified lower bound.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Subgradient {
    fixed_step: Option<f64>,
    distance: Option<f64>,
    horizon: u64,
    pub(crate) step: f64,
    /// Polyak steps towards a level above the certified lower bound (no
    /// step, no region).
    polyak: Option<PolyakLevel>,
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
    /// `step` of `None` is tuned for `horizon` iterations (`R / (G sqrt T)`)
    /// where there is a region to tune it over (the set or `distance`), else
    /// Polyak steps are taken.
    pub fn new(params: super::Checked<super::SubgradientParams>, tracker: Tracker) -> Self {
        let super::SubgradientParams {
            step,
            distance,
            horizon,
        } = *params.get();
        Self {
            fixed_step: step,
            distance,
            horizon,
            step: f64::NAN,
            polyak: None,
            tracker,
            active_counts: Vec::new(),
            averaged_weights: Vec::new(),
            eval: None,
        }
    }

    /// The run's records: constants, certificates and trace.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The running average of the one-hot weights of the active tasks (the certificate's weights).
    pub fn averaged_weights(&self) -> &[f64] {
        &self.averaged_weights
    }

    fn certify_and_record(
        &mut self,
        family: &dyn crate::family::TaskFamily,
        theta: &DVector<f64>,
        iteration: u64,
        step: f64,
    ) -> Result<Option<KV>, crate::Error> {
        let eval = self.eval.as_ref().expect("evaluated");
        let total: f64 = self.active_counts.iter().sum();
        for (a, &c) in self.averaged_weights.iter_mut().zip(&self.active_counts) {
            *a = c / total;
        }
        let lower = if self.tracker.due(iteration) {
            self.tracker
                .certify_weights(family, theta, &self.averaged_weights)?
        } else {
            f64::NAN
        };
        Ok(self.tracker.record(
            iteration,
            &eval.losses,
            &self.averaged_weights,
            lower,
            None,
            step,
        ))
    }
}

/// Polyak steps with a target level (Nedic & Bertsekas 2001, dynamic step
/// with estimated optimum): `eta_t = (F(theta_t) - level_t) / ||g_t||^2`, with
/// `level_t = F_best - delta_t` held at or above the certified lower bound D_t
/// (so the margin never exceeds the certified gap, and Polyak's own step with
/// OPT is the case level = OPT). The margin halves after a step that did not
/// improve on the best value, so a bound far below OPT cannot make the steps
/// overshoot for long.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct PolyakLevel {
    /// The best F(theta) seen.
    best: f64,
    /// delta_t: how far below `best` the level lies.
    margin: f64,
    /// The level of the last step.
    target: f64,
}

impl PolyakLevel {
    /// The step at theta with `F(theta) = value` and a subgradient of squared
    /// norm `gradient_norm_squared`; NaN where no bound is certified yet. Zero
    /// where the subgradient is 0 (a worst task is at its minimum: theta is
    /// optimal) or the certified gap is 0.
    fn step(&mut self, value: f64, lower: f64, gradient_norm_squared: f64) -> f64 {
        self.best = self.best.min(value);
        self.margin = self.margin.min(self.best - lower);
        if !self.margin.is_finite() {
            return f64::NAN;
        }
        self.target = self.best - self.margin;
        let excess = value - self.target;
        if excess > 0.0 && gradient_norm_squared > 0.0 {
            excess / gradient_norm_squared
        } else {
            0.0
        }
    }

    /// Adjusts the margin after a step reached F(theta_next) = `value`: it
    /// halves where the step did not improve on the best value (the level was
    /// too low to aim at), else it stays (capped by the certified gap).
    fn reached(&mut self, value: f64) {
        if !self.target.is_nan() && value > self.best {
            self.margin *= 0.5;
        }
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
            None => match (
                region_radius(&set, &theta, self.distance),
                distance_bound(&set, self.distance),
            ) {
                (Some(region), Some(r)) => {
                    let g = family.gradient_bound_on_ball(region);
                    r / (g.max(f64::MIN_POSITIVE) * (self.horizon as f64).sqrt())
                }
                _ => {
                    self.polyak = Some(PolyakLevel {
                        best: f64::INFINITY,
                        margin: f64::INFINITY,
                        target: f64::NAN,
                    });
                    f64::NAN
                }
            },
        };
        let mut eval = Evaluation::new(m, d);
        family.evaluate(&theta, &mut one_hot_at_max, &mut eval)?;
        self.tracker.absorb(&eval);
        self.active_counts = eval.weights.clone();
        self.averaged_weights = vec![0.0; m];
        let cost = eval.max_loss();
        self.eval = Some(eval);
        let kv = self.certify_and_record(family.as_ref(), &theta, 0, f64::NAN)?;
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
        if let Some(level) = self.polyak.as_mut() {
            self.step = level.step(
                eval.max_loss(),
                self.tracker.best_lower_bound,
                eval.gradient.norm_squared(),
            );
            if !self.step.is_finite() {
                // No certified bound (e.g. no strong convexity): 1 / (L sqrt(t + 1)).
                let t = state.get_iter() as f64;
                self.step = 1.0 / (family.smoothness().max(f64::MIN_POSITIVE) * (t + 1.0).sqrt());
            }
        }
        next.copy_from(&theta);
        next.axpy(-self.step, &eval.gradient, 1.0);
        set.project(&mut next);
        family.evaluate(&next, &mut one_hot_at_max, &mut eval)?;
        self.tracker.absorb(&eval);
        if let Some(level) = self.polyak.as_mut() {
            level.reached(eval.max_loss());
        }
        for (c, &w) in self.active_counts.iter_mut().zip(&eval.weights) {
            *c += w;
        }
        let cost = eval.max_loss();
        self.eval = Some(eval);
        let kv =
            self.certify_and_record(family.as_ref(), &next, state.get_iter() + 1, self.step)?;
        Ok((state.param(theta).param(next).cost(cost), kv))
    }
}
