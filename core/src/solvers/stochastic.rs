//! Stochastic softmax-gd: each step draws a minibatch per task, weights the
//! tasks by the softmax of the minibatch losses (the plug-in estimate the
//! paper's deep-learning use relies on) or of an exponential moving average of
//! them (as Group DRO does), and takes a step on the minibatch gradient.

use super::smoothing::{evaluate_start, Continuation, StepRule};
use super::softmax_gd::{record_smoothed, record_start};
use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::family::Evaluation;
use crate::problem::numerics::softmax_into;
use argmin::core::{Error, Problem, Solver, State, KV};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Minibatch softmax-gd with an optional EMA of the task losses.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StochasticSoftmaxGd {
    fixed_mu: Option<f64>,
    fixed_step: Option<f64>,
    distance: Option<f64>,
    horizon: u64,
    batch_size: usize,
    ema: Option<f64>,
    /// Not serialised: a checkpoint stores `seed`, `draws` and `counts`, and
    /// [`Resume::resume`](super::Resume::resume) replays the draws.
    #[serde(skip, default = "unseeded")]
    rng: StdRng,
    #[serde(with = "super::checkpoint::u64_text")]
    seed: u64,
    /// `draw_rows` calls made so far, and the sample counts they used.
    draws: u64,
    counts: Vec<usize>,
    pub(crate) mu: f64,
    pub(crate) step: f64,
    pub(crate) smoothed_smoothness: Option<f64>,
    pub(crate) tracker: Tracker,
    schedule: Option<Continuation>,
    rows: Vec<Vec<usize>>,
    averaged_losses: Vec<f64>,
    minibatch: Option<Evaluation>,
    full: Option<Evaluation>,
}

impl StochasticSoftmaxGd {
    /// Draws `batch_size` samples per task per step from `seed`; `ema` averages
    /// the minibatch losses (`None`: the plain minibatch losses); `mu`, `step`,
    /// `distance` and `horizon` as for [`SoftmaxGd::new`](super::SoftmaxGd::new).
    pub fn new(params: super::Checked<super::StochasticParams>, tracker: Tracker) -> Self {
        let super::StochasticParams {
            smoothed:
                super::SmoothedParams {
                    mu,
                    step,
                    distance,
                    horizon,
                },
            batch_size,
            ema,
            seed,
        } = *params.get();
        Self {
            fixed_mu: mu,
            fixed_step: step,
            distance,
            horizon,
            batch_size,
            ema,
            rng: StdRng::seed_from_u64(seed),
            seed,
            draws: 0,
            counts: Vec::new(),
            mu: f64::NAN,
            step: f64::NAN,
            smoothed_smoothness: None,
            tracker,
            schedule: None,
            rows: Vec::new(),
            averaged_losses: Vec::new(),
            minibatch: None,
            full: None,
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

    /// Draws `batch_size` rows per task, uniformly with replacement.
    fn draw_rows(&mut self, counts: &[usize]) {
        for (rows, &n) in self.rows.iter_mut().zip(counts) {
            for r in rows.iter_mut() {
                *r = self.rng.random_range(0..n);
            }
        }
        if self.counts.as_slice() != counts {
            self.counts = counts.to_vec();
        }
        self.draws += 1;
    }
}

fn unseeded() -> StdRng {
    StdRng::seed_from_u64(0)
}

impl super::Resume for StochasticSoftmaxGd {
    /// Re-seeds the generator and replays the draws made before the checkpoint
    /// (a few random numbers per task and step), so the stream continues
    /// exactly where it stopped.
    fn resume(&mut self) {
        self.rng = StdRng::seed_from_u64(self.seed);
        let (draws, counts) = (self.draws, self.counts.clone());
        self.draws = 0;
        for _ in 0..draws {
            self.draw_rows(&counts);
        }
    }
}

impl Solver<MinimaxProblem, MinimaxState> for StochasticSoftmaxGd {
    fn name(&self) -> &str {
        "stochastic"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let counts = family.sample_counts().ok_or_else(|| {
            crate::error::InputError::new("method", "stochastic needs data tasks")
        })?;
        let theta = super::start_point(&mut state, family.as_ref(), &set);
        let (resolved, eval) = evaluate_start(
            family.as_ref(),
            &set,
            &theta,
            self.fixed_mu,
            self.fixed_step,
            self.distance,
            self.horizon,
            false,
            &mut self.tracker,
        )?;
        self.mu = resolved.mu;
        self.smoothed_smoothness = resolved.smoothed_smoothness;
        self.schedule = resolved.schedule;
        // Backtracking needs exact losses; a stochastic method uses the initial guess as a fixed step.
        self.step = match resolved.step {
            StepRule::Fixed(s) => s,
            StepRule::Backtracking { initial } => initial,
            StepRule::InverseSmoothness => unreachable!("resolved"),
        };
        let (cost, kv) = record_start(&mut self.tracker, &eval, self.mu, &theta, family.as_ref())?;
        self.full = Some(eval);
        self.minibatch = Some(Evaluation::new(family.num_tasks(), family.dim()));
        self.rows = counts.iter().map(|_| vec![0; self.batch_size]).collect();
        self.averaged_losses = Vec::new();
        Ok((state.param(theta).cost(cost), kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let counts = family.sample_counts().unwrap_or_default();
        let theta = super::take_theta(&mut state)?;
        let mut next = state.take_prev_param().unwrap_or_else(|| theta.clone());
        self.draw_rows(&counts);
        let mu = self.mu;
        let ema = self.ema;
        let averaged = &mut self.averaged_losses;
        let mut minibatch = self.minibatch.take().expect("initialised");
        family.evaluate_minibatch(
            &theta,
            &self.rows,
            &mut |f, w| match ema {
                None => softmax_into(f, mu, w),
                Some(beta) => {
                    if averaged.is_empty() {
                        averaged.extend_from_slice(f);
                    } else {
                        for (a, &x) in averaged.iter_mut().zip(f) {
                            *a = (1.0 - beta) * *a + beta * x;
                        }
                    }
                    softmax_into(averaged, mu, w)
                }
            },
            &mut minibatch,
        );
        next.copy_from(&theta);
        next.axpy(-self.step, &minibatch.gradient, 1.0);
        set.project(&mut next);
        self.minibatch = Some(minibatch);
        // The reported iterate is measured exactly (full pass) for the certificate.
        let iteration = state.get_iter() + 1;
        let mut full = self.full.take().expect("initialised");
        let kv = if self.tracker.due(iteration) {
            family.evaluate(&next, &mut |f, w| softmax_into(f, mu, w), &mut full)?;
            self.tracker.absorb(&full);
            let (kv, lower) = record_smoothed(
                &mut self.tracker,
                &full,
                mu,
                iteration,
                &next,
                family.as_ref(),
                self.step,
            )?;
            // Continuation on the exact (full-pass) certificate; the fixed
            // step scales with mu, as 1 / L_mu does where G^2 / mu dominates.
            if let Some(lowered) = self.schedule.and_then(|c| c.lowered(mu, &full, lower)) {
                self.step *= lowered / mu;
                self.mu = lowered;
            }
            kv
        } else {
            family.losses(&next, &mut full.losses)?;
            softmax_into(&full.losses, mu, &mut full.weights);
            self.tracker.record(
                iteration,
                &full.losses,
                &full.weights,
                f64::NAN,
                None,
                self.step,
            )
        };
        let cost = full.max_loss();
        self.full = Some(full);
        Ok((state.param(theta).param(next).cost(cost), kv))
    }
}
