//! Temperature and step-size rules for the smoothed methods (softmax-gd,
//! accelerated, stochastic). See docs/THEORY.md#default-step-rule and
//! docs/THEORY.md#softmax-gd-with-a-tuned-temperature.

use crate::family::{Evaluation, TaskFamily};
use crate::problem::ball::FeasibleSet;
use crate::problem::numerics::{log_sum_exp, softmax_into};
use nalgebra::DVector;

/// How mu is chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Temperature {
    /// mu as given.
    Fixed(f64),
    /// mu = G R / sqrt(2 T ln M) (softmax-gd) or sqrt(2) G R / ((T+1) sqrt(ln M))
    /// (accelerated), with R from the set or the given distance and G bounding
    /// the task gradients on the region the iterates can reach; without such a
    /// region, the gap-driven continuation (docs/THEORY.md#default-step-rule).
    TunedForHorizon,
}

/// How the step is chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StepRule {
    /// A constant step eta.
    Fixed(f64),
    /// eta = 1 / L_mu, L_mu = L + G^2 / mu with G over the feasible set (over
    /// [`ACCELERATED_REACH`] times its radius for accelerated; needs a bounded set;
    /// `evaluate_start` turns it into `Fixed`).
    InverseSmoothness,
    /// Armijo-type backtracking on F_mu (halving), starting from `initial`.
    Backtracking {
        /// The first trial step.
        initial: f64,
    },
}

/// The region the iterates can visit: the set's radius, or ||theta_0|| + R.
pub(crate) fn region_radius(
    set: &FeasibleSet,
    theta0: &DVector<f64>,
    distance: Option<f64>,
) -> Option<f64> {
    set.radius().or_else(|| distance.map(|r| theta0.norm() + r))
}

/// R: an upper bound on ||theta_0 - theta*||.
pub(crate) fn distance_bound(set: &FeasibleSet, distance: Option<f64>) -> Option<f64> {
    distance.or_else(|| {
        let d = set.diameter();
        d.is_finite().then_some(d)
    })
}

/// Accelerated methods evaluate gradients within this multiple of the set's
/// radius (extrapolated points); their `L_mu` uses G over that ball.
pub const ACCELERATED_REACH: f64 = 3.0;

/// Resolved temperature and step for a smoothed method.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Smoothing {
    pub mu: f64,
    pub step: StepRule,
    pub smoothed_smoothness: Option<f64>,
    /// The continuation schedule, where mu is the default and there is no
    /// region to tune it over (docs/THEORY.md#default-step-rule).
    pub schedule: Option<Continuation>,
}

/// The default temperature without a region to tune over (no radius, no
/// `--distance`): mu starts at the certified gap at theta_0 over ln M and is
/// lowered as the certified gap closes. The gap of the minimiser of F_mu is at
/// most mu ln M (its weights certify it), so a gap well below that means the
/// smoothing bias, not the optimisation, dominates: then mu drops to the gap
/// over ln M. The gap is positive at theta_0 unless theta_0 is optimal, so mu
/// never collapses when the losses tie there.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Continuation {
    log_tasks: f64,
    /// The factor mu is multiplied by when lowered.
    shrink: f64,
}

/// Lower mu once the optimisation part of the gap is at most this share of
/// the smoothing part.
const OPTIMISATION_SHARE: f64 = 0.5;

/// Softmax-gd lowers mu by this factor: plain gradient steps need longer to
/// settle after each drop than accelerated ones
/// ([`ACCELERATED_SHRINK`]); measured on `generate`'s problems, README.
pub(crate) const GRADIENT_SHRINK: f64 = 0.8;
pub(crate) const ACCELERATED_SHRINK: f64 = 0.5;

impl Continuation {
    fn new(num_tasks: usize, shrink: f64) -> Self {
        Self {
            log_tasks: (num_tasks as f64).ln(),
            shrink,
        }
    }

    /// mu_0 from the certified gap at theta_0 (`lower` may be -inf where no
    /// bound exists: then the spread of the losses, at least 1% of their size).
    fn initial(&self, losses: &[f64], lower: f64) -> f64 {
        let max = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
        let gap = max - lower;
        let scale = if gap.is_finite() && gap > 0.0 {
            gap
        } else {
            (max - min).max(1e-2 * max.abs())
        };
        scale.max(f64::MIN_POSITIVE) / self.log_tasks
    }

    /// The lowered temperature, or `None` while the optimisation error still
    /// dominates. At theta with softmax weights p (in `at`) and a certified
    /// `lower` bound D(p) <= OPT, the certified gap splits into the smoothing
    /// part `F(theta) - Phi_p(theta)` and the optimisation part
    /// `Phi_p(theta) - D(p)` (zero at the minimiser of F_mu, where
    /// `grad Phi_p = grad F_mu = 0`). Once the second is at most the first,
    /// running on at this mu cannot close the gap much further: mu is lowered.
    pub(crate) fn lowered(&self, mu: f64, at: &Evaluation, lower: f64) -> Option<f64> {
        let weighted = at.weighted_loss();
        let smoothing = at.max_loss() - weighted;
        let optimisation = weighted - lower;
        (optimisation.is_finite() && optimisation <= OPTIMISATION_SHARE * smoothing)
            .then_some(mu * self.shrink)
    }
}

/// Trial steps of backtracking under continuation start from the last accepted
/// step times this factor, so that the step follows the local curvature of
/// F_mu (far below its worst case `L + G^2/mu` in most directions).
pub(crate) const STEP_GROWTH: f64 = 2.0;

/// Evaluates theta_0 once for a smoothed method: mu is picked from the losses
/// inside the pass (they are all the tuning needs), the softmax weights at that
/// mu follow, and then the step from the task-gradient norms. `accelerated`
/// selects the accelerated tuning of mu and the wider reach of G.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_start(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta0: &DVector<f64>,
    mu: Option<f64>,
    step: Option<f64>,
    distance: Option<f64>,
    horizon: u64,
    accelerated: bool,
    tracker: &mut super::tracker::Tracker,
) -> Result<(Smoothing, Evaluation), crate::Error> {
    let mut eval = Evaluation::new(family.num_tasks(), family.dim());
    let schedule =
        (mu.is_none() && family.num_tasks() > 1 && region_radius(set, theta0, distance).is_none())
            .then(|| {
                let shrink = if accelerated {
                    ACCELERATED_SHRINK
                } else {
                    GRADIENT_SHRINK
                };
                Continuation::new(family.num_tasks(), shrink)
            });
    let mut resolved_mu = f64::NAN;
    if let Some(schedule) = &schedule {
        // The certified gap at theta_0 with uniform weights sets mu_0.
        family.evaluate(theta0, &mut |_, w| w.fill(1.0 / w.len() as f64), &mut eval)?;
        tracker.absorb(&eval);
        let lower = tracker.certify_evaluated(family, theta0, &eval)?;
        resolved_mu = schedule.initial(&eval.losses, lower);
    }
    family.evaluate(
        theta0,
        &mut |losses, weights| {
            if resolved_mu.is_nan() {
                resolved_mu = mu.unwrap_or_else(|| {
                    tuned_temperature(family, set, theta0, losses, distance, horizon, accelerated)
                });
            }
            softmax_into(losses, resolved_mu, weights);
        },
        &mut eval,
    )?;
    let (step, smoothed_smoothness) = step_rule(family, set, &eval, resolved_mu, step, accelerated);
    let smoothing = Smoothing {
        mu: resolved_mu,
        step,
        smoothed_smoothness,
        schedule,
    };
    Ok((smoothing, eval))
}

/// The radius of the ball the method's gradients are taken on, where the set
/// is bounded.
fn gradient_reach(set: &FeasibleSet, accelerated: bool) -> Option<f64> {
    // FISTA takes its gradients at extrapolated points y = theta + beta (theta -
    // theta_prev), 0 <= beta < 1, which can leave the set: on a set of radius r,
    // ||y|| < 3r, and its bound needs L_mu on the segment from y to the next
    // iterate. So G is taken over the ball of radius 3r there
    // (docs/THEORY.md#accelerated-softmax-gd).
    let reach = if accelerated { ACCELERATED_REACH } else { 1.0 };
    set.radius().map(|r| reach * r)
}

/// mu tuned for the horizon from G and R, or the documented fallback on the
/// spread of the initial `losses` where there is no region to tune over.
fn tuned_temperature(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta0: &DVector<f64>,
    losses: &[f64],
    distance: Option<f64>,
    horizon: u64,
    accelerated: bool,
) -> f64 {
    let log_m = (family.num_tasks() as f64).ln();
    let region = gradient_reach(set, accelerated).or_else(|| region_radius(set, theta0, distance));
    let g_region = region.map(|r| family.gradient_bound_on_ball(r));
    let r = distance_bound(set, distance);
    match (r, g_region) {
        (_, _) if family.num_tasks() == 1 => 1.0,
        (Some(r), Some(g)) if g > 0.0 && r > 0.0 => {
            let t = horizon as f64;
            if accelerated {
                std::f64::consts::SQRT_2 * g * r / ((t + 1.0) * log_m.sqrt())
            } else {
                g * r / (2.0 * t * log_m).sqrt()
            }
        }
        // No region to tune over: make the smoothing bias mu ln M at most
        // 1% of the spread of the initial losses (documented fallback).
        _ => {
            let max = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
            let scale = (max - min).max(1e-6 * max.abs()).max(1e-12);
            0.01 * scale / log_m.max(1.0)
        }
    }
}

/// The step: the given one, 1/L_mu on a bounded set, else backtracking from
/// 1/L_mu with G measured at theta_0. L (and G over the set) only where used.
fn step_rule(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    initial: &Evaluation,
    mu: f64,
    step: Option<f64>,
    accelerated: bool,
) -> (StepRule, Option<f64>) {
    if let Some(s) = step {
        return (StepRule::Fixed(s), None);
    }
    // 1/L_mu is only safe where projection keeps every iterate inside the
    // region G was computed on, i.e. when the set itself is bounded.
    match gradient_reach(set, accelerated).map(|r| family.gradient_bound_on_ball(r)) {
        Some(g) => {
            let l_mu = family.smoothness() + g * g / mu;
            (StepRule::Fixed(1.0 / l_mu), Some(l_mu))
        }
        None => {
            let g_initial = initial
                .task_gradient_norms
                .iter()
                .copied()
                .fold(0.0, f64::max);
            let l_mu0 = family.smoothness() + g_initial * g_initial / mu;
            let initial = if l_mu0 > 0.0 { 1.0 / l_mu0 } else { 1.0 };
            (StepRule::Backtracking { initial }, None)
        }
    }
}

/// Halvings allowed in one backtracking search before giving up.
const MAX_HALVINGS: usize = 60;

/// One projected gradient step on F_mu: `next = Pi(from - eta grad F_mu(from))`,
/// with `at_from` the evaluation at `from` (softmax weights at `mu`) and
/// `at_next` filled at `next`. A fixed step is taken as is; backtracking halves
/// eta until the sufficient-decrease test holds and keeps it as the next
/// initial step. Returns the step taken and whether backtracking gave up.
#[allow(clippy::too_many_arguments)]
pub(crate) fn projected_step(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    mu: f64,
    rule: &mut StepRule,
    from: &DVector<f64>,
    at_from: &Evaluation,
    next: &mut DVector<f64>,
    at_next: &mut Evaluation,
) -> Result<(f64, bool), crate::Error> {
    let (mut eta, backtrack) = match *rule {
        StepRule::Fixed(s) => (s, false),
        StepRule::Backtracking { initial } => (initial, true),
        StepRule::InverseSmoothness => unreachable!("resolved by evaluate_start"),
    };
    let smoothed_from = log_sum_exp(&at_from.losses, mu);
    let mut halvings = 0;
    loop {
        next.copy_from(from);
        next.axpy(-eta, &at_from.gradient, 1.0);
        set.project(next);
        family.evaluate(next, &mut |f, w| softmax_into(f, mu, w), at_next)?;
        if !backtrack {
            break;
        }
        let smoothed_next = log_sum_exp(&at_next.losses, mu);
        if sufficient_decrease(
            smoothed_next,
            smoothed_from,
            &at_from.gradient,
            from,
            next,
            eta,
        ) {
            break;
        }
        halvings += 1;
        if halvings > MAX_HALVINGS {
            break;
        }
        eta *= 0.5;
    }
    if backtrack {
        *rule = StepRule::Backtracking { initial: eta };
    }
    Ok((eta, halvings > MAX_HALVINGS))
}

/// The sufficient-decrease test of projected gradient backtracking:
/// F_mu(x+) <= F_mu(x) + g^T (x+ - x) + ||x+ - x||^2 / (2 eta).
fn sufficient_decrease(
    smoothed_new: f64,
    smoothed_old: f64,
    gradient: &DVector<f64>,
    old: &DVector<f64>,
    new: &DVector<f64>,
    step: f64,
) -> bool {
    let mut linear = 0.0;
    let mut quadratic = 0.0;
    for ((g, a), b) in gradient.iter().zip(old.iter()).zip(new.iter()) {
        let delta = b - a;
        linear += g * delta;
        quadratic += delta * delta;
    }
    let model = smoothed_old + linear + quadratic / (2.0 * step);
    // Allow rounding noise in F_mu itself.
    smoothed_new <= model + 1e-14 * smoothed_old.abs().max(1e-300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{QuadraticFamily, QuadraticTask};
    use crate::solvers::tracker::Tracker;
    use nalgebra::DMatrix;

    /// Four quadratic tasks in R^2 with Hessians 1 and 3 and spread centres.
    fn family() -> QuadraticFamily {
        let centres = [[1.0, 0.0], [-1.0, 0.5], [0.0, 2.0], [0.5, -1.5]];
        let tasks = centres
            .iter()
            .enumerate()
            .map(|(i, c)| QuadraticTask {
                a: DMatrix::from_diagonal(&DVector::from_vec(vec![
                    1.0,
                    1.0 + 2.0 * (i % 2) as f64,
                ])),
                c: DVector::from_vec(c.to_vec()),
                b: 0.1 * i as f64,
            })
            .collect();
        QuadraticFamily::new(tasks).unwrap()
    }

    fn evaluation(losses: &[f64], weights: &[f64]) -> Evaluation {
        let mut at = Evaluation::new(losses.len(), 2);
        at.losses.copy_from_slice(losses);
        at.weights.copy_from_slice(weights);
        at
    }

    #[test]
    fn regions_and_distances_come_from_the_set_or_the_given_distance() {
        let theta0 = DVector::from_vec(vec![3.0, 4.0]);
        let ball = FeasibleSet::with_radius(3.0);
        assert_eq!(region_radius(&ball, &theta0, Some(1.0)), Some(3.0));
        assert_eq!(
            region_radius(&FeasibleSet::Unconstrained, &theta0, Some(2.0)),
            Some(7.0)
        );
        assert_eq!(
            region_radius(&FeasibleSet::Unconstrained, &theta0, None),
            None
        );
        assert_eq!(distance_bound(&ball, Some(1.5)), Some(1.5));
        assert_eq!(distance_bound(&ball, None), Some(6.0));
        assert_eq!(distance_bound(&FeasibleSet::Unconstrained, None), None);
        assert_eq!(gradient_reach(&ball, false), Some(3.0));
        assert_eq!(gradient_reach(&ball, true), Some(9.0));
        assert_eq!(gradient_reach(&FeasibleSet::Unconstrained, true), None);
    }

    #[test]
    fn continuation_starts_at_the_gap_over_ln_m_and_lowers_once_smoothing_dominates() {
        let schedule = Continuation::new(4, 0.5);
        let ln4 = 4f64.ln();
        assert_eq!(schedule.initial(&[1.0, 3.0], 1.0), 2.0 / ln4);
        // Without a bound: the spread, at least 1% of the largest loss.
        assert_eq!(schedule.initial(&[1.0, 3.0], f64::NEG_INFINITY), 2.0 / ln4);
        assert_eq!(schedule.initial(&[2.0, 2.0], f64::NEG_INFINITY), 0.02 / ln4);
        assert_eq!(
            schedule.initial(&[0.0, 0.0], f64::NEG_INFINITY),
            f64::MIN_POSITIVE / ln4
        );
        // losses (1, 3), weights 1/2: smoothing part F - Phi_p = 1.
        let at = evaluation(&[1.0, 3.0], &[0.5, 0.5]);
        assert_eq!(schedule.lowered(0.8, &at, 1.6), Some(0.4)); // optimisation 0.4 <= 0.5
        assert_eq!(schedule.lowered(0.8, &at, 1.5), Some(0.4)); // exactly half
        assert_eq!(schedule.lowered(0.8, &at, 1.0), None); // optimisation 1.0 > 0.5
        assert_eq!(schedule.lowered(0.8, &at, f64::NEG_INFINITY), None);
        assert_eq!(
            Continuation::new(4, GRADIENT_SHRINK).lowered(1.0, &at, 2.0),
            Some(0.8)
        );
        // losses (1, 5), weights 1/2: smoothing part 2, so the threshold is 1.
        let spread = evaluation(&[1.0, 5.0], &[0.5, 0.5]);
        assert_eq!(schedule.lowered(0.8, &spread, 2.25), Some(0.4)); // 0.75 <= 1
        assert_eq!(schedule.lowered(0.8, &spread, 1.75), None); // 1.25 > 1
    }

    #[test]
    fn tuned_temperatures_follow_their_formulas() {
        let f = family();
        let theta0 = DVector::zeros(2);
        let ball = FeasibleSet::with_radius(2.0);
        let losses = [1.0, 2.0, 4.0, 3.0];
        let (t, ln_m) = (100u64, 4f64.ln());
        let g = f.gradient_bound_on_ball(2.0);
        let plain = tuned_temperature(&f, &ball, &theta0, &losses, None, t, false);
        assert_eq!(plain, g * 4.0 / (2.0 * 100.0 * ln_m).sqrt());
        let g3 = f.gradient_bound_on_ball(6.0);
        let accelerated = tuned_temperature(&f, &ball, &theta0, &losses, None, t, true);
        assert_eq!(
            accelerated,
            std::f64::consts::SQRT_2 * g3 * 4.0 / (101.0 * ln_m.sqrt())
        );
        // No region: 1% of the spread over ln M.
        let fallback = tuned_temperature(
            &f,
            &FeasibleSet::Unconstrained,
            &theta0,
            &losses,
            None,
            t,
            false,
        );
        assert_eq!(fallback, 0.01 * 3.0 / ln_m);
        // Tied losses: the spread is floored at 1e-6 of their magnitude, so
        // the temperature follows the losses' scale (1e-6 * 1e3 here).
        let tied = tuned_temperature(
            &f,
            &FeasibleSet::Unconstrained,
            &theta0,
            &[1e3; 4],
            None,
            t,
            false,
        );
        assert_eq!(tied, 0.01 * (1e-6 * 1e3) / ln_m);
        // --distance gives the region and R.
        let given = tuned_temperature(
            &f,
            &FeasibleSet::Unconstrained,
            &theta0,
            &losses,
            Some(1.0),
            t,
            false,
        );
        assert_eq!(
            given,
            f.gradient_bound_on_ball(1.0) / (2.0 * 100.0 * ln_m).sqrt()
        );
    }

    #[test]
    fn a_zero_distance_to_the_optimum_tunes_from_the_spread() {
        // R = 0 (the start is declared optimal) with G > 0: G R / sqrt(2 T ln M)
        // would be mu = 0 as well; the spread fallback applies here too.
        let tasks = family();
        let ball = FeasibleSet::with_radius(2.0);
        assert!(tasks.gradient_bound_on_ball(2.0) > 0.0);
        let losses = [1.0, 2.0, 4.0, 3.0];
        for accelerated in [false, true] {
            let mu = tuned_temperature(
                &tasks,
                &ball,
                &DVector::zeros(2),
                &losses,
                Some(0.0),
                100,
                accelerated,
            );
            assert_eq!(mu, 0.01 * 3.0 / 4f64.ln(), "accelerated {accelerated}");
        }
    }

    #[test]
    fn a_region_where_no_task_has_a_gradient_tunes_from_the_spread() {
        // Constant tasks (A = 0): G = 0 on every ball, and G R / sqrt(2 T ln M)
        // would be mu = 0 (softmax undefined); the spread fallback applies.
        let flat = QuadraticFamily::new(
            (0..4)
                .map(|i| QuadraticTask {
                    a: DMatrix::zeros(2, 2),
                    c: DVector::from_vec(vec![1.0, -1.0]),
                    b: i as f64,
                })
                .collect(),
        )
        .unwrap();
        let ball = FeasibleSet::with_radius(2.0);
        assert_eq!(flat.gradient_bound_on_ball(2.0), 0.0);
        let losses = [1.0, 2.0, 4.0, 3.0];
        for accelerated in [false, true] {
            let mu = tuned_temperature(
                &flat,
                &ball,
                &DVector::zeros(2),
                &losses,
                None,
                100,
                accelerated,
            );
            assert_eq!(mu, 0.01 * 3.0 / 4f64.ln(), "accelerated {accelerated}");
        }
    }

    #[test]
    fn one_task_needs_no_temperature_and_no_continuation() {
        // M = 1: F_mu = f_1 for every mu, so mu is set to 1 and there is
        // nothing to continue over (ln M = 0 would make mu_0 infinite).
        let single = QuadraticFamily::new(vec![QuadraticTask {
            a: DMatrix::identity(2, 2),
            c: DVector::from_vec(vec![1.0, 2.0]),
            b: 0.5,
        }])
        .unwrap();
        let unconstrained = FeasibleSet::Unconstrained;
        let mut tracker = Tracker::new(unconstrained, 1, false);
        for accelerated in [false, true] {
            let (smoothing, at) = evaluate_start(
                &single,
                &unconstrained,
                &DVector::zeros(2),
                None,
                None,
                None,
                50,
                accelerated,
                &mut tracker,
            )
            .unwrap();
            assert!(smoothing.schedule.is_none(), "accelerated {accelerated}");
            assert_eq!(smoothing.mu, 1.0, "accelerated {accelerated}");
            assert_eq!(at.weights, vec![1.0]);
        }
    }

    #[test]
    fn steps_are_given_or_one_over_l_mu_or_backtracking_from_theta_0() {
        let f = family();
        let ball = FeasibleSet::with_radius(2.0);
        let mut at = evaluation(&[1.0, 2.0, 4.0, 3.0], &[0.25; 4]);
        at.task_gradient_norms
            .copy_from_slice(&[1.0, 3.0, 2.0, 0.5]);
        assert_eq!(
            step_rule(&f, &ball, &at, 0.5, Some(0.1), false),
            (StepRule::Fixed(0.1), None)
        );
        let g = f.gradient_bound_on_ball(2.0);
        let l_mu = f.smoothness() + g * g / 0.5;
        assert_eq!(
            step_rule(&f, &ball, &at, 0.5, None, false),
            (StepRule::Fixed(1.0 / l_mu), Some(l_mu))
        );
        let l_mu0 = f.smoothness() + 9.0 / 0.5;
        assert_eq!(
            step_rule(&f, &FeasibleSet::Unconstrained, &at, 0.5, None, false),
            (
                StepRule::Backtracking {
                    initial: 1.0 / l_mu0
                },
                None
            )
        );
    }

    #[test]
    fn backtracking_accepts_exactly_the_sufficient_decrease() {
        let g = DVector::from_vec(vec![1.0, -2.0]);
        let old = DVector::from_vec(vec![0.0, 0.0]);
        let new = DVector::from_vec(vec![-0.5, 1.0]);
        // model = 1 + (-0.5 - 2) + 1.25 / (2 * 0.5) = -0.25.
        assert!(sufficient_decrease(-0.25, 1.0, &g, &old, &new, 0.5));
        assert!(!sufficient_decrease(-0.2, 1.0, &g, &old, &new, 0.5));
    }

    /// One projected step at mu = 0.3 from `from` (evaluated in `at_from`),
    /// into fresh buffers: the step, whether backtracking gave up, the new
    /// point and its evaluation.
    fn step_once(
        f: &dyn TaskFamily,
        set: &FeasibleSet,
        rule: &mut StepRule,
        from: &DVector<f64>,
        at_from: &Evaluation,
    ) -> (f64, bool, DVector<f64>, Evaluation) {
        let mut next = DVector::zeros(from.len());
        let mut at_next = at_from.clone();
        let (eta, gave_up) =
            projected_step(f, set, 0.3, rule, from, at_from, &mut next, &mut at_next).unwrap();
        (eta, gave_up, next, at_next)
    }

    #[test]
    fn a_fixed_step_is_one_projected_gradient_step() {
        let f = family();
        let ball = FeasibleSet::with_radius(0.5);
        let from = DVector::from_vec(vec![0.1, 0.2]);
        let mut at_from = Evaluation::new(4, 2);
        f.evaluate(&from, &mut |l, w| softmax_into(l, 0.3, w), &mut at_from)
            .unwrap();
        let mut rule = StepRule::Fixed(0.7);
        let (eta, gave_up, next, _) = step_once(&f, &ball, &mut rule, &from, &at_from);
        let mut expected = &from - 0.7 * &at_from.gradient;
        ball.project(&mut expected);
        assert_eq!((eta, gave_up), (0.7, false));
        assert_eq!(next, expected);
        // Backtracking from a huge step halves until F_mu decreases enough.
        let mut rule = StepRule::Backtracking { initial: 1e3 };
        let (eta, gave_up, _, at_next) = step_once(&f, &ball, &mut rule, &from, &at_from);
        assert!(!gave_up && eta < 1e3 && eta > 1e-6, "{eta}");
        assert_eq!(rule, StepRule::Backtracking { initial: eta });
        let smoothed = |at: &Evaluation| log_sum_exp(&at.losses, 0.3);
        assert!(smoothed(&at_next) < smoothed(&at_from));
        // A gradient that points uphill never passes the test at a normal
        // step: backtracking gives up after its halvings instead of looping.
        let mut uphill = at_from.clone();
        uphill.gradient = -&at_from.gradient;
        let mut rule = StepRule::Backtracking { initial: 1e12 };
        let (eta, gave_up, _, _) =
            step_once(&f, &FeasibleSet::Unconstrained, &mut rule, &from, &uphill);
        assert!(gave_up, "{eta}");
        assert_eq!(eta, 1e12 * 0.5f64.powi(MAX_HALVINGS as i32));
    }

    #[test]
    fn sufficient_decrease_allows_rounding_relative_to_the_smoothed_value() {
        // No move: the model is F_mu(x) itself, and F_mu(x+) may exceed it by
        // 1e-14 |F_mu(x)| (rounding in F_mu), not more, at every scale.
        let x = DVector::from_element(2, 1.0);
        let g = DVector::from_element(2, 3.0);
        for old in [1e-6f64, 1.0, 1e6, -1e6] {
            let slack = 1e-14 * old.abs();
            assert!(
                sufficient_decrease(old + 0.5 * slack, old, &g, &x, &x, 1.0),
                "{old}"
            );
            assert!(
                !sufficient_decrease(old + 2.0 * slack, old, &g, &x, &x, 1.0),
                "{old}"
            );
        }
    }

    #[test]
    fn backtracking_that_succeeds_at_its_last_halving_has_not_given_up() {
        // f(x) = 2 x^2 (L = 4) from x = 1: the step eta passes the test
        // exactly when eta L <= 1, and every quantity is exact in f64, so
        // from 2^MAX_HALVINGS / L the last allowed halving is the first to pass.
        let task = QuadraticTask {
            a: DMatrix::from_element(1, 1, 4.0),
            c: DVector::zeros(1),
            b: 0.0,
        };
        let f = QuadraticFamily::new(vec![task]).unwrap();
        let from = DVector::from_element(1, 1.0);
        let mut at_from = Evaluation::new(1, 1);
        f.evaluate(&from, &mut |_, w| w.fill(1.0), &mut at_from)
            .unwrap();
        let step_from = |initial: f64| {
            let mut rule = StepRule::Backtracking { initial };
            let (eta, gave_up, next, _) =
                step_once(&f, &FeasibleSet::Unconstrained, &mut rule, &from, &at_from);
            (eta, gave_up, next[0])
        };
        let initial = 0.25 * 2f64.powi(MAX_HALVINGS as i32);
        assert_eq!(step_from(initial), (0.25, false, 0.0));
        // One halving fewer allowed, and the same start gives up.
        assert!(step_from(2.0 * initial).1);
    }

    #[test]
    fn the_start_picks_continuation_only_without_mu_and_region() {
        let f = family();
        let theta0 = DVector::zeros(2);
        let unconstrained = FeasibleSet::Unconstrained;
        let mut tracker = Tracker::new(unconstrained, 1, false);
        let (smoothing, at) = evaluate_start(
            &f,
            &unconstrained,
            &theta0,
            None,
            None,
            None,
            50,
            false,
            &mut tracker,
        )
        .unwrap();
        let schedule = smoothing
            .schedule
            .expect("continuation without mu or region");
        // mu_0 is the certified gap at theta_0 (uniform weights) over ln M.
        let mut uniform = Evaluation::new(4, 2);
        f.evaluate(&theta0, &mut |_, w| w.fill(0.25), &mut uniform)
            .unwrap();
        let mut fresh = Tracker::new(unconstrained, 1, false);
        let lower = fresh.certify_evaluated(&f, &theta0, &uniform).unwrap();
        assert_eq!(smoothing.mu, schedule.initial(&uniform.losses, lower));
        // The weights of the returned evaluation are the softmax at that mu.
        let mut expected = vec![0.0; 4];
        softmax_into(&at.losses, smoothing.mu, &mut expected);
        assert_eq!(at.weights, expected);
        // A given mu, or a region, means no continuation.
        let (fixed, _) = evaluate_start(
            &f,
            &unconstrained,
            &theta0,
            Some(0.3),
            None,
            None,
            50,
            false,
            &mut tracker,
        )
        .unwrap();
        assert!(fixed.schedule.is_none() && fixed.mu == 0.3);
        let ball = FeasibleSet::with_radius(2.0);
        let (tuned, _) = evaluate_start(
            &f,
            &ball,
            &theta0,
            None,
            None,
            None,
            50,
            false,
            &mut tracker,
        )
        .unwrap();
        assert!(tuned.schedule.is_none());
        assert!(matches!(tuned.step, StepRule::Fixed(_)) && tuned.smoothed_smoothness.is_some());
    }
}
