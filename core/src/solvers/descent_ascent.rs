//! Exponentiated-gradient descent-ascent (Group DRO style; Nemirovski, Juditsky,
//! Lan, Shapiro 2009; Sagawa et al. 2020). The task weights are updated in log
//! space, `log q <- log q + eta_q f(theta)`, then normalised by a shifted
//! softmax; theta takes a projected gradient step on `sum_i q_i f_i`. The
//! reported point is the averaged iterate, certified by `F(theta_bar) - D(q_bar)`.
//! Bound: docs/THEORY.md#descent-ascent.

use super::smoothing::{distance_bound, region_radius};
use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::error::InputError;
use crate::family::Evaluation;
use crate::problem::ball::FeasibleSet;
use crate::problem::numerics::softmax_into;
use argmin::core::{Error, Problem, Solver, State, KV};
use nalgebra::DVector;

/// Descent-ascent with averaged iterates.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DescentAscent {
    fixed_step: Option<f64>,
    fixed_weight_step: Option<f64>,
    distance: Option<f64>,
    horizon: u64,
    pub(crate) step: f64,
    pub(crate) weight_step: f64,
    pub(crate) tracker: Tracker,
    /// The ball `||theta|| <= ||theta_0|| + R` the iterates are kept in when R
    /// was estimated (it holds theta*, so OPT is unchanged).
    working_set: Option<FeasibleSet>,
    /// Where R was estimated: lambda and the current R, for restarts.
    restart: Option<(f64, f64)>,
    /// Where R is a guess (no useful strong convexity): it is doubled each
    /// time an iterate reaches the working ball's edge.
    #[serde(default)]
    doubling: Option<Doubling>,
    log_weights: Vec<f64>,
    #[serde(with = "super::checkpoint::vector")]
    theta_sum: DVector<f64>,
    weight_sum: Vec<f64>,
    averaged_weights: Vec<f64>,
    averaged_losses: Vec<f64>,
    averages: u64,
    #[serde(with = "super::checkpoint::option_vector")]
    current: Option<DVector<f64>>,
    eval: Option<Evaluation>,
}

impl DescentAscent {
    /// `step`/`weight_step` of `None` are tuned for `horizon` iterations
    /// (`R / (G sqrt T)` and `sqrt(2 ln M) / (B sqrt T)`); `distance` bounds R
    /// where the set gives none.
    pub fn new(params: super::Checked<super::DescentAscentParams>, tracker: Tracker) -> Self {
        let super::DescentAscentParams {
            step,
            weight_step,
            distance,
            horizon,
        } = *params.get();
        Self {
            fixed_step: step,
            fixed_weight_step: weight_step,
            distance,
            horizon,
            step: f64::NAN,
            weight_step: f64::NAN,
            tracker,
            working_set: None,
            restart: None,
            doubling: None,
            log_weights: Vec::new(),
            theta_sum: DVector::zeros(0),
            weight_sum: Vec::new(),
            averaged_weights: Vec::new(),
            averaged_losses: Vec::new(),
            averages: 0,
            current: None,
            eval: None,
        }
    }

    /// The run's records: constants, certificates and trace.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// q_bar: the averaged weights (the certificate's weights).
    pub fn averaged_weights(&self) -> &[f64] {
        &self.averaged_weights
    }
}

/// R >= ||theta_0 - theta*|| from strong convexity: F = max_i f_i is
/// lambda-strongly convex, so `F(theta_0) - OPT >= lambda/2 ||theta_0 - theta*||^2`,
/// and `gap >= F(theta_0) - OPT` is a certified gap at theta_0. `None` without
/// strong convexity or a finite gap. Only the steps and the working ball use
/// it, never the certificate (taken over the problem's own set), so rounding in
/// it cannot make a bound wrong; the relative 1e-12 keeps theta* inside anyway.
fn strong_convexity_distance(gap: f64, lambda: f64) -> Option<f64> {
    (lambda > 0.0 && gap.is_finite() && gap >= 0.0)
        .then(|| (2.0 * gap / lambda).sqrt() * (1.0 + 1e-12) + f64::MIN_POSITIVE)
}

/// The doubling trick for R (see [`DescentAscent`]'s `doubling`).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Doubling {
    /// The current guess of `||theta_0 - theta*||`.
    radius: f64,
    /// `||theta_0||`: the working ball is `||theta|| <= start_norm + radius`.
    start_norm: f64,
    /// The strong-convexity distance, where finite: R never needs more.
    cap: f64,
}

/// A first guess of `||theta_0 - theta*||` where strong convexity gives none
/// (or a useless one): the certified gap over the gradient norm at theta_0,
/// the distance at which the linear model would close the gap. Doubling
/// corrects it when it is short; only the steps depend on it.
fn first_distance_guess(gap: f64, gradient_norm: f64, start_norm: f64) -> f64 {
    let guess = gap / gradient_norm;
    if guess.is_finite() && guess > 0.0 {
        guess
    } else {
        start_norm.max(1.0)
    }
}

impl DescentAscent {
    /// The tuned steps for distance `r`, the region's radius and `horizon`
    /// iterations, where not given.
    fn tune(
        &mut self,
        family: &dyn crate::family::TaskFamily,
        region: Option<f64>,
        r: Option<f64>,
        horizon: f64,
    ) {
        let m = family.num_tasks() as f64;
        self.step = match self.fixed_step {
            Some(s) => s,
            None => {
                let g = family.gradient_bound_on_ball(region.unwrap_or(0.0));
                r.unwrap_or(0.0) / (g.max(f64::MIN_POSITIVE) * horizon.sqrt())
            }
        };
        self.weight_step = match self.fixed_weight_step {
            Some(s) => s,
            None => {
                let b = family.loss_bound_on_ball(region.unwrap_or(0.0));
                (2.0 * m.ln()).sqrt() / (b.max(f64::MIN_POSITIVE) * horizon.sqrt())
            }
        };
    }
}

impl Solver<MinimaxProblem, MinimaxState> for DescentAscent {
    fn name(&self) -> &str {
        "descent-ascent"
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let (m, d) = (family.num_tasks(), family.dim());
        let theta = super::start_point(&mut state, family.as_ref(), &set);
        // The start, with the uniform weights of the first average.
        let uniform = vec![1.0 / m as f64; m];
        let mut eval = Evaluation::new(m, d);
        family.evaluate(&theta, &mut |_, w| w.copy_from_slice(&uniform), &mut eval)?;
        self.tracker.absorb(&eval);
        let lower = self
            .tracker
            .certify_weights(family.as_ref(), &theta, &uniform)?;
        // Tuned steps: eta_x = R / (G sqrt T), eta_q = sqrt(2 ln M) / (B sqrt T).
        let t = self.horizon as f64;
        let mut region = region_radius(&set, &theta, self.distance);
        let mut r = distance_bound(&set, self.distance);
        let needs_region = self.fixed_step.is_none() || self.fixed_weight_step.is_none();
        if needs_region && (region.is_none() || r.is_none()) {
            let gap = eval.max_loss() - lower;
            let lambda = family.strong_convexity();
            let from_strong_convexity = strong_convexity_distance(gap, lambda);
            let guess = first_distance_guess(gap, eval.gradient.norm(), theta.norm());
            let estimate = match from_strong_convexity {
                Some(estimate) if estimate <= guess => {
                    self.restart = Some((lambda, estimate));
                    estimate
                }
                cap => {
                    self.doubling = Some(Doubling {
                        radius: guess,
                        start_norm: theta.norm(),
                        cap: cap.unwrap_or(f64::INFINITY),
                    });
                    guess
                }
            };
            if !estimate.is_finite() {
                return Err(InputError::new(
                    "step",
                    "descent-ascent found no finite distance to tune its steps; give `step` \
                     and `weight_step`, a radius in the problem, or `distance`",
                )
                .into());
            }
            let reach = theta.norm() + estimate;
            self.working_set = Some(FeasibleSet::with_radius(reach));
            region = Some(reach);
            r = Some(estimate);
        }
        self.tune(family.as_ref(), region, r, t);
        self.log_weights = vec![0.0; m];
        self.theta_sum = DVector::zeros(d);
        self.weight_sum = vec![0.0; m];
        self.averaged_weights = uniform.clone();
        self.averaged_losses = vec![0.0; m];
        self.averages = 0;
        let cost = eval.max_loss();
        let kv = self
            .tracker
            .record(0, &eval.losses, &uniform, lower, None, f64::NAN);
        self.eval = Some(eval);
        self.current = Some(theta.clone());
        Ok((state.param(theta).cost(cost), kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let mut current = self.current.take().expect("initialised");
        let mut eval = self.eval.take().expect("initialised");
        // q_t from the log-weights; gradient of sum_i q_i f_i at theta_t.
        let log_weights = &self.log_weights;
        family.evaluate(
            &current,
            &mut |_, w| softmax_into(log_weights, 1.0, w),
            &mut eval,
        )?;
        self.tracker.absorb(&eval);
        // Accumulate the averages over the points where gradients were taken.
        self.theta_sum += &current;
        for (s, &q) in self.weight_sum.iter_mut().zip(&eval.weights) {
            *s += q;
        }
        self.averages += 1;
        // Simultaneous updates: theta descends, log q ascends on f(theta_t).
        current.axpy(-self.step, &eval.gradient, 1.0);
        let unprojected_norm = current.norm();
        self.working_set.unwrap_or(set).project(&mut current);
        for (l, &f) in self.log_weights.iter_mut().zip(&eval.losses) {
            *l += self.weight_step * f;
        }
        // Keep the log-weights bounded (softmax is shift invariant).
        let top = self
            .log_weights
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        for l in self.log_weights.iter_mut() {
            *l -= top;
        }
        let inv = 1.0 / self.averages as f64;
        let mut averaged = state
            .take_param()
            .unwrap_or_else(|| DVector::zeros(current.len()));
        averaged.copy_from(&self.theta_sum);
        averaged *= inv;
        set.project(&mut averaged); // convex set: already inside up to rounding
        for (a, &s) in self.averaged_weights.iter_mut().zip(&self.weight_sum) {
            *a = s * inv;
        }
        let iteration = state.get_iter() + 1;
        family.losses(&averaged, &mut self.averaged_losses)?;
        let lower = if self.tracker.due(iteration) {
            self.tracker
                .certify_weights(family.as_ref(), &averaged, &self.averaged_weights)?
        } else {
            f64::NAN
        };
        let cost = self
            .averaged_losses
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let kv = self.tracker.record(
            iteration,
            &self.averaged_losses,
            &self.averaged_weights,
            lower,
            None,
            self.step,
        );
        // With an estimated R: once the certified gap at theta_bar halves the
        // strong-convexity bound on ||theta_bar - theta*||, restart from
        // theta_bar with that bound, tuned for the iterations left.
        if let Some((lambda, radius)) = self.restart {
            let gap = cost - self.tracker.best_lower_bound;
            if let Some(closer) = strong_convexity_distance(gap, lambda) {
                if closer <= 0.5 * radius && iteration < self.horizon {
                    let reach = averaged.norm() + closer;
                    self.working_set = Some(FeasibleSet::with_radius(reach));
                    self.restart = Some((lambda, closer));
                    let left = (self.horizon - iteration) as f64;
                    self.tune(family.as_ref(), Some(reach), Some(closer), left);
                    current.copy_from(&averaged);
                    self.theta_sum.fill(0.0);
                    self.weight_sum.fill(0.0);
                    self.averages = 0;
                }
            }
        }
        // A guessed R that the iterates outgrow is doubled (up to the
        // strong-convexity distance), and the steps retuned for what is left.
        if let (Some(mut doubling), Some(FeasibleSet::Ball { radius: reach })) =
            (self.doubling, self.working_set)
        {
            if unprojected_norm >= reach && iteration < self.horizon {
                doubling.radius = (2.0 * doubling.radius).min(doubling.cap);
                let reach = doubling.start_norm + doubling.radius;
                self.working_set = Some(FeasibleSet::with_radius(reach));
                if doubling.radius >= doubling.cap {
                    self.doubling = None;
                    self.restart = Some((family.strong_convexity(), doubling.cap));
                } else {
                    self.doubling = Some(doubling);
                }
                let left = (self.horizon - iteration) as f64;
                self.tune(family.as_ref(), Some(reach), Some(doubling.radius), left);
            }
        }
        self.current = Some(current);
        self.eval = Some(eval);
        Ok((state.param(averaged).cost(cost), kv))
    }
}
