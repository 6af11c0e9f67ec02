//! The ERM baseline: projected gradient descent on the mean task loss, step
//! 1/L. Its worst-task loss is still what is reported; its certificate uses the
//! uniform weights (D(uniform) <= OPT), which is what this method optimises.

use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::error::InputError;
use crate::family::Evaluation;
use argmin::core::{Error, Problem, Solver, State, KV};
use nalgebra::DVector;

fn uniform(_: &[f64], weights: &mut [f64]) {
    let w = 1.0 / weights.len() as f64;
    weights.fill(w);
}

/// Gradient descent on `(1/M) sum_i f_i`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AverageGd {
    fixed_step: Option<f64>,
    pub(crate) step: f64,
    pub(crate) tracker: Tracker,
    eval: Option<Evaluation>,
}

impl AverageGd {
    /// `step` of `None` uses 1/L.
    pub fn new(params: super::Checked<super::AverageParams>, tracker: Tracker) -> Self {
        Self {
            fixed_step: params.get().step,
            step: f64::NAN,
            tracker,
            eval: None,
        }
    }

    /// The run's records: constants, certificates and trace.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    fn record(
        &mut self,
        family: &dyn crate::family::TaskFamily,
        theta: &DVector<f64>,
        iteration: u64,
        step: f64,
    ) -> Result<Option<KV>, crate::Error> {
        let eval = self.eval.as_ref().expect("evaluated");
        let lower = if self.tracker.due(iteration) {
            self.tracker.certify_evaluated(family, theta, eval)?
        } else {
            f64::NAN
        };
        Ok(self
            .tracker
            .record(iteration, &eval.losses, &eval.weights, lower, None, step))
    }
}

impl Solver<MinimaxProblem, MinimaxState> for AverageGd {
    fn name(&self) -> &str {
        "average"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = super::start_point(&mut state, family.as_ref(), &set);
        self.step = match self.fixed_step {
            Some(s) => s,
            None => {
                let l = family.smoothness();
                if l <= 0.0 {
                    return Err(InputError::new(
                        "step",
                        "average: the tasks have no curvature (L = 0); give `step`",
                    )
                    .into());
                }
                1.0 / l
            }
        };
        let mut eval = Evaluation::new(family.num_tasks(), family.dim());
        family.evaluate(&theta, &mut uniform, &mut eval)?;
        self.tracker.absorb(&eval);
        let cost = eval.max_loss();
        self.eval = Some(eval);
        let kv = self.record(family.as_ref(), &theta, 0, f64::NAN)?;
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
        family.evaluate(&next, &mut uniform, &mut eval)?;
        self.tracker.absorb(&eval);
        let cost = eval.max_loss();
        self.eval = Some(eval);
        let kv = self.record(family.as_ref(), &next, state.get_iter() + 1, self.step)?;
        Ok((state.param(theta).param(next).cost(cost), kv))
    }
}
