//! Softmax-weighted gradient descent (the paper's algorithm):
//! `p_t = softmax(f(theta_t) / mu)`, `theta_{t+1} = Pi(theta_t - eta sum_i p_t,i grad f_i(theta_t))`,
//! i.e. projected gradient descent on the smoothed maximum F_mu.
//! Bound: docs/THEORY.md#softmax-gd-with-a-fixed-temperature and #default-step-rule.

use super::smoothing::{
    evaluate_start, projected_step, Continuation, StepRule, Temperature, STEP_GROWTH,
};
use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::family::Evaluation;
use crate::problem::numerics::{log_sum_exp, softmax_into};
use argmin::core::{Error, Problem, Solver, State, TerminationReason, TerminationStatus, KV};
use nalgebra::DVector;

/// The softmax-gd solver. Build with [`SoftmaxGd::new`]; `init` resolves the
/// temperature and step from the problem.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SoftmaxGd {
    temperature: Temperature,
    step_rule: Option<StepRule>,
    distance: Option<f64>,
    horizon: u64,
    pub(crate) mu: f64,
    pub(crate) step: StepRule,
    pub(crate) smoothed_smoothness: Option<f64>,
    pub(crate) smallest_step: f64,
    pub(crate) tracker: Tracker,
    schedule: Option<Continuation>,
    current: Option<Evaluation>,
    candidate: Option<Evaluation>,
}

impl SoftmaxGd {
    /// `mu`/`step` of `None` pick the defaults of docs/THEORY.md for the
    /// horizon.
    pub fn new(params: super::Checked<super::SmoothedParams>, tracker: Tracker) -> Self {
        let super::SmoothedParams {
            mu,
            step,
            distance,
            horizon,
        } = *params.get();
        Self {
            temperature: mu.map_or(Temperature::TunedForHorizon, Temperature::Fixed),
            step_rule: step.map(StepRule::Fixed),
            distance,
            horizon,
            mu: f64::NAN,
            step: StepRule::Fixed(f64::NAN),
            smoothed_smoothness: None,
            smallest_step: f64::INFINITY,
            tracker,
            schedule: None,
            current: None,
            candidate: None,
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

impl Solver<MinimaxProblem, MinimaxState> for SoftmaxGd {
    fn name(&self) -> &str {
        "softmax-gd"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = super::start_point(&mut state, family.as_ref(), &set);
        let (resolved, eval) = evaluate_start(
            family.as_ref(),
            &set,
            &theta,
            match self.temperature {
                Temperature::Fixed(mu) => Some(mu),
                Temperature::TunedForHorizon => None,
            },
            match self.step_rule {
                Some(StepRule::Fixed(s)) => Some(s),
                _ => None,
            },
            self.distance,
            self.horizon,
            false,
            &mut self.tracker,
        )?;
        self.mu = resolved.mu;
        self.step = resolved.step;
        self.smoothed_smoothness = resolved.smoothed_smoothness;
        self.schedule = resolved.schedule;
        let (cost, kv) = record_start(&mut self.tracker, &eval, self.mu, &theta, family.as_ref())?;
        self.current = Some(eval);
        self.candidate = Some(Evaluation::new(family.num_tasks(), family.dim()));
        Ok((state.param(theta).cost(cost), kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = super::take_theta(&mut state)?;
        // Reuse the buffer of the previous iterate: no allocation in the loop.
        let mut next = state.take_prev_param().unwrap_or_else(|| theta.clone());
        let mu = self.mu;
        let mut current = self.current.take().expect("initialised");
        let mut candidate = self.candidate.take().expect("initialised");
        let (eta, failed) = projected_step(
            family.as_ref(),
            &set,
            mu,
            &mut self.step,
            &theta,
            &current,
            &mut next,
            &mut candidate,
        )?;
        self.smallest_step = self.smallest_step.min(eta);
        std::mem::swap(&mut current, &mut candidate);
        self.tracker.absorb(&current);
        let cost = current.max_loss();
        self.current = Some(current);
        self.candidate = Some(candidate);
        let (kv, lower) = record_smoothed(
            &mut self.tracker,
            self.current.as_ref().expect("set"),
            mu,
            state.get_iter() + 1,
            &next,
            family.as_ref(),
            eta,
        )?;
        if let Some(schedule) = self.schedule {
            if let StepRule::Backtracking { initial } = self.step {
                self.step = StepRule::Backtracking {
                    initial: initial * STEP_GROWTH,
                };
            }
            let current = self.current.as_ref().expect("set");
            if let Some(mu) = schedule.lowered(self.mu, current, lower) {
                // The next step's weights and gradient at the new temperature:
                // the losses at theta are unchanged, so the family recombines
                // its task gradients where it still holds them.
                self.mu = mu;
                let current = self.current.as_mut().expect("set");
                family.reweigh(&next, &mut |f, w| softmax_into(f, mu, w), current)?;
            }
        }
        let state = state.param(theta).param(next).cost(cost);
        if failed {
            return Ok((
                state.terminate_with(TerminationReason::SolverExit("backtracking failed".into())),
                kv,
            ));
        }
        Ok((state, kv))
    }

    fn terminate(&mut self, _state: &MinimaxState) -> TerminationStatus {
        TerminationStatus::NotTerminated
    }
}

/// Absorbs and records the evaluation at theta_0 of a smoothed method
/// (iteration 0, no step yet); returns `F(theta_0)` and the record.
pub(crate) fn record_start(
    tracker: &mut Tracker,
    eval: &Evaluation,
    mu: f64,
    theta: &DVector<f64>,
    family: &dyn crate::family::TaskFamily,
) -> Result<(f64, Option<KV>), crate::Error> {
    tracker.absorb(eval);
    let (kv, _) = record_smoothed(tracker, eval, mu, 0, theta, family, f64::NAN)?;
    Ok((eval.max_loss(), kv))
}

/// Certifies (when due) and records an iterate of a smoothed method whose
/// evaluation carries the softmax weights at that iterate; returns the record
/// and the certified bound (NaN where not due).
pub(crate) fn record_smoothed(
    tracker: &mut Tracker,
    eval: &Evaluation,
    mu: f64,
    iteration: u64,
    theta: &DVector<f64>,
    family: &dyn crate::family::TaskFamily,
    step: f64,
) -> Result<(Option<KV>, f64), crate::Error> {
    let lower = if tracker.due(iteration) {
        tracker.certify_evaluated(family, theta, eval)?
    } else {
        f64::NAN
    };
    let smoothed = log_sum_exp(&eval.losses, mu);
    let kv = tracker.record(
        iteration,
        &eval.losses,
        &eval.weights,
        lower,
        Some(smoothed),
        step,
    );
    Ok((kv, lower))
}
