//! Accelerated (Nesterov / FISTA) projected gradient on the smoothed maximum F_mu
//! (Beck & Teboulle 2009). Bound: docs/THEORY.md#accelerated-softmax-gd.

use super::smoothing::{
    evaluate_start, projected_step, Continuation, StepRule, Temperature, STEP_GROWTH,
};
use super::softmax_gd::{record_smoothed, record_start};
use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::family::Evaluation;
use crate::problem::numerics::{log_sum_exp, softmax_into};
use argmin::core::{Error, Problem, Solver, State, TerminationReason, KV};
use nalgebra::DVector;

/// FISTA on F_mu: `theta_{k+1} = Pi(y_k - eta grad F_mu(y_k))`,
/// `y_{k+1} = theta_{k+1} + (t_k - 1)/t_{k+1} (theta_{k+1} - theta_k)`. Returns the last theta.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Accelerated {
    temperature: Temperature,
    fixed_step: Option<f64>,
    distance: Option<f64>,
    horizon: u64,
    pub(crate) mu: f64,
    pub(crate) step: StepRule,
    pub(crate) smoothed_smoothness: Option<f64>,
    pub(crate) smallest_step: f64,
    pub(crate) tracker: Tracker,
    schedule: Option<Continuation>,
    /// F_mu at the last iterate (restart test under continuation).
    smoothed: f64,
    momentum: f64,
    #[serde(with = "super::checkpoint::option_vector")]
    extrapolated: Option<DVector<f64>>,
    at_theta: Option<Evaluation>,
    at_extrapolated: Option<Evaluation>,
}

impl Accelerated {
    /// `mu`/`step` of `None` pick the defaults of docs/THEORY.md for the
    /// horizon; `distance` bounds `R = ||theta_0 - theta*||` where the set gives none.
    pub fn new(params: super::Checked<super::SmoothedParams>, tracker: Tracker) -> Self {
        let super::SmoothedParams {
            mu,
            step,
            distance,
            horizon,
        } = *params.get();
        Self {
            temperature: mu.map_or(Temperature::TunedForHorizon, Temperature::Fixed),
            fixed_step: step,
            distance,
            horizon,
            mu: f64::NAN,
            step: StepRule::Fixed(f64::NAN),
            smoothed_smoothness: None,
            smallest_step: f64::INFINITY,
            tracker,
            schedule: None,
            smoothed: f64::INFINITY,
            momentum: 1.0,
            extrapolated: None,
            at_theta: None,
            at_extrapolated: None,
        }
    }

    /// mu: the current temperature (NaN before `init`; lowered under continuation).
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// The run's records: constants, certificates and trace.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

impl Solver<MinimaxProblem, MinimaxState> for Accelerated {
    fn name(&self) -> &str {
        "accelerated"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = super::start_point(&mut state, family.as_ref(), &set);
        let mu = match self.temperature {
            Temperature::Fixed(mu) => Some(mu),
            Temperature::TunedForHorizon => None,
        };
        let (resolved, eval) = evaluate_start(
            family.as_ref(),
            &set,
            &theta,
            mu,
            self.fixed_step,
            self.distance,
            self.horizon,
            true,
            &mut self.tracker,
        )?;
        self.mu = resolved.mu;
        self.step = resolved.step;
        self.smoothed_smoothness = resolved.smoothed_smoothness;
        self.schedule = resolved.schedule;
        let (cost, kv) = record_start(&mut self.tracker, &eval, self.mu, &theta, family.as_ref())?;
        self.at_extrapolated = Some(eval.clone());
        self.at_theta = Some(eval);
        self.extrapolated = Some(theta.clone());
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
        let mu = self.mu;
        let mut y = self.extrapolated.take().expect("initialised");
        let at_y = self.at_extrapolated.as_mut().expect("initialised");
        let mut at_next = self.at_theta.take().expect("initialised");
        // Gradient of F_mu at the extrapolated point.
        family.evaluate(&y, &mut |f, w| softmax_into(f, mu, w), at_y)?;
        self.tracker.absorb(at_y);
        let (eta, failed) = projected_step(
            family.as_ref(),
            &set,
            mu,
            &mut self.step,
            &y,
            at_y,
            &mut next,
            &mut at_next,
        )?;
        self.smallest_step = self.smallest_step.min(eta);
        self.tracker.absorb(&at_next);
        let cost = at_next.max_loss();
        let (kv, lower) = record_smoothed(
            &mut self.tracker,
            &at_next,
            mu,
            state.get_iter() + 1,
            &next,
            family.as_ref(),
            eta,
        )?;
        // Under continuation: restart the momentum where F_mu went up
        // (O'Donoghue & Candes 2015) and whenever mu is lowered (a new F_mu);
        // a restart lets the step grow back.
        let mut restart = false;
        if let Some(schedule) = self.schedule {
            let smoothed = log_sum_exp(&at_next.losses, mu);
            restart = smoothed > self.smoothed;
            self.smoothed = smoothed;
            if let Some(lowered) = schedule.lowered(mu, &at_next, lower) {
                self.mu = lowered;
                self.smoothed = f64::INFINITY;
                restart = true;
            }
            if restart {
                if let StepRule::Backtracking { initial } = self.step {
                    self.step = StepRule::Backtracking {
                        initial: initial * STEP_GROWTH,
                    };
                }
            }
        }
        if restart {
            self.momentum = 1.0;
            y.copy_from(&next);
        } else {
            // Momentum update, in place on y.
            let t_next = 0.5 * (1.0 + (1.0 + 4.0 * self.momentum * self.momentum).sqrt());
            let beta = (self.momentum - 1.0) / t_next;
            self.momentum = t_next;
            y.copy_from(&next);
            y.axpy(-beta, &theta, 1.0 + beta);
        }
        self.extrapolated = Some(y);
        self.at_theta = Some(at_next);
        let state = state.param(theta).param(next).cost(cost);
        if failed {
            return Ok((
                state.terminate_with(TerminationReason::SolverExit("backtracking failed".into())),
                kv,
            ));
        }
        Ok((state, kv))
    }
}
