//! The rate bounds of docs/THEORY.md, one function each.
//!
//! Every function takes the horizon `t` (number of updates of theta) and the
//! constants of the bound, and returns the bound as an `f64`. They are the
//! standard bounds for the algorithms as the seed paper (Wang, Chen, Xie, Fang,
//! Lin, NeurIPS 2023) describes them, derived in docs/THEORY.md; the paper's
//! exact statements were not available. Notation: `m` tasks, temperature `mu`,
//! smoothness `l`, smoothed smoothness `l_mu = l + g^2/mu`, task-gradient bound
//! `g`, loss bound `b`, distance `r` from the start to a comparator.
//!
//! A horizon of `t = 0` gives `+inf` (a vacuous bound), never a panic. Inputs
//! are not validated here: the callers compute them from measured constants.

/// `ln M` as f64 (0 for M <= 1).
fn log_m(m: usize) -> f64 {
    (m.max(1) as f64).ln()
}

fn horizon(t: u64) -> f64 {
    t as f64
}

/// Smoothing bias `mu ln M`: the gap between `F_mu` and `F` is at most this
/// (`F <= F_mu <= F + mu ln M`).
///
/// Problem class: any M losses. Reference: Nesterov (2005), Math. Program.
/// 103:127-152. See docs/THEORY.md#smoothing (S1, S6).
pub fn smoothing_bias(mu: f64, m: usize) -> f64 {
    mu * log_m(m)
}

/// Smoothness of `F_mu`: `L_mu = L + G^2 / mu`.
///
/// Problem class: convex L-smooth tasks with task gradients bounded by G on
/// a convex region. See docs/THEORY.md#smoothing (S5).
pub fn smoothed_smoothness(l: f64, g: f64, mu: f64) -> f64 {
    l + g * g / mu
}

/// Softmax-weighted GD with a fixed temperature, step `1/L_mu`:
/// `F(theta_T) - OPT <= mu ln M + L_mu R_mu^2 / (2T)`.
///
/// Problem class: convex L-smooth tasks, gradients bounded by G (so
/// `l_mu = L + G^2/mu`), `r_mu = ||theta_0 - argmin F_mu||` (or the distance to
/// any minimax point). Method: projected gradient descent on `F_mu`.
/// Reference: Beck (2017), First-Order Methods in Optimization, Thm 10.21,
/// plus the smoothing sandwich. See
/// docs/THEORY.md#softmax-gd-with-a-fixed-temperature.
pub fn softmax_gd_fixed_mu(t: u64, mu: f64, m: usize, l_mu: f64, r_mu: f64) -> f64 {
    smoothing_bias(mu, m) + l_mu * r_mu * r_mu / (2.0 * horizon(t))
}

/// The tight constant for the same method: projected gradient descent with
/// step `1/L_mu` on the convex, `L_mu`-smooth `F_mu` satisfies
/// `F_mu(theta_T) - min F_mu <= L_mu R_mu^2 / (4T + 2)`, and some function
/// attains it; with the sandwich, `F(theta_T) - OPT <= mu ln M + L_mu R_mu^2 / (4T + 2)`.
///
/// Reference: Drori and Teboulle (2014), Math. Program. 145:451-482 (gradient
/// descent); Taylor, Hendrickx and Glineur (2018), J. Optim. Theory Appl.
/// 178:455-476 (the proximal, hence projected, gradient method). See
/// docs/THEORY.md#tight-constants.
pub fn softmax_gd_fixed_mu_tight(t: u64, mu: f64, m: usize, l_mu: f64, r_mu: f64) -> f64 {
    smoothing_bias(mu, m) + l_mu * r_mu * r_mu / (4.0 * t as f64 + 2.0)
}

/// Radius of an origin-centred ball that every iterate of projected gradient
/// descent on a lambda-strongly convex `F_mu` with a step `1/L_K` (L_K the
/// smoothness on that ball) provably stays in, together with every segment
/// between consecutive iterates:
/// `||theta_mu|| + sqrt(2 Delta_0 / lambda) + sqrt(mu / L) / 2`, where
/// `||theta_mu|| <= center_norm`, `Delta_0 >= F_mu(theta_0) - min F_mu`, and
/// L is the tasks' smoothness.
///
/// Why: descent keeps the iterates in the sublevel set `{F_mu <= F_mu(theta_0)}`,
/// which strong convexity puts within `sqrt(2 Delta_0 / lambda)` of
/// `theta_mu`; one step moves at most `eta G_K = G_K / (L + G_K^2/mu) <=
/// sqrt(mu / L) / 2` (AM-GM), so the segment to the next iterate stays in the
/// ball, F_mu is L_K-smooth along it and the descent lemma applies (induction
/// on t). See docs/THEORY.md#tight-constants.
pub fn sublevel_radius(center_norm: f64, initial_error: f64, lambda: f64, mu: f64, l: f64) -> f64 {
    let step_reach = if l > 0.0 {
        0.5 * (mu / l).sqrt()
    } else {
        f64::INFINITY
    };
    center_norm + (2.0 * initial_error.max(0.0) / lambda).sqrt() + step_reach
}

/// The comparator form of [`softmax_gd_fixed_mu`], which needs no exact optimum:
/// `F(theta_T) - D_ref <= excess + L_mu ||theta_0 - u||^2 / (2T)` with
/// `excess = F_mu(u) - D_ref` for any feasible comparator `u` and any certified
/// lower bound `D_ref <= OPT`.
///
/// Problem class and method as [`softmax_gd_fixed_mu`]; `r = ||theta_0 - u||`.
/// See docs/THEORY.md#softmax-gd-with-a-fixed-temperature.
pub fn softmax_gd_comparator(t: u64, excess: f64, l_mu: f64, r: f64) -> f64 {
    excess + l_mu * r * r / (2.0 * horizon(t))
}

/// Softmax-weighted GD with backtracking on `F_mu` (the default without a
/// ball): `F(theta_T) - OPT <= mu ln M + R_mu^2 / (2 eta_min T)`, where
/// `eta_min` is the smallest accepted step.
///
/// Problem class: convex tasks (no global G needed). Method: gradient descent
/// on `F_mu` with Armijo backtracking `F_mu(theta - eta g) <= F_mu(theta) - eta/2 ||g||^2`.
/// Reference: derivation in docs/THEORY.md#default-step-rule.
pub fn softmax_gd_backtracking(t: u64, mu: f64, m: usize, eta_min: f64, r_mu: f64) -> f64 {
    smoothing_bias(mu, m) + r_mu * r_mu / (2.0 * eta_min * horizon(t))
}

/// Temperature tuned for a horizon T: `mu* = G R / sqrt(2 T ln M)`, the
/// minimiser of `mu ln M + (L + G^2/mu) R^2 / (2T)`. `+inf` for M = 1 (nothing
/// to smooth).
///
/// See docs/THEORY.md#softmax-gd-with-a-tuned-temperature.
pub fn tuned_mu(g: f64, r: f64, t: u64, m: usize) -> f64 {
    g * r / (2.0 * horizon(t) * log_m(m)).sqrt()
}

/// Softmax-weighted GD with the tuned temperature [`tuned_mu`] and step `1/L_mu`:
/// `F(theta_T) - OPT <= L R^2 / (2T) + G R sqrt(2 ln M / T)`.
///
/// Problem class: convex L-smooth tasks, gradients bounded by G,
/// `R = ||theta_0 - theta*||`. Reference: [`softmax_gd_fixed_mu`] at `mu*`. See
/// docs/THEORY.md#softmax-gd-with-a-tuned-temperature.
pub fn softmax_gd_tuned(t: u64, l: f64, g: f64, r: f64, m: usize) -> f64 {
    let t = horizon(t);
    l * r * r / (2.0 * t) + g * r * (2.0 * log_m(m) / t).sqrt()
}

/// Iterations after which [`softmax_gd_tuned`] falls to `eps` (real-valued; round
/// up for a count). Grows like `2 G^2 R^2 ln M / eps^2` for small eps.
///
/// See docs/THEORY.md#softmax-gd-with-a-tuned-temperature.
pub fn softmax_gd_iterations_to(eps: f64, l: f64, g: f64, r: f64, m: usize) -> f64 {
    // a s^2 + b s = eps with s = T^{-1/2}.
    let a = 0.5 * l * r * r;
    let b = g * r * (2.0 * log_m(m)).sqrt();
    let s = if a > 0.0 {
        // Stable root of a s^2 + b s - eps = 0: s = 2 eps / (b + sqrt(b^2 + 4 a eps)).
        2.0 * eps / (b + (b * b + 4.0 * a * eps).sqrt())
    } else {
        eps / b
    };
    1.0 / (s * s)
}

/// Bound of softmax-weighted GD at a fixed horizon as a function of the
/// temperature: `U(mu) = mu ln M + (L + G^2/mu) R^2 / (2T)` (the U shape of the
/// temperature sweep).
///
/// See docs/THEORY.md#temperature-sweep.
pub fn temperature_sweep_bound(t: u64, mu: f64, m: usize, l: f64, g: f64, r: f64) -> f64 {
    softmax_gd_fixed_mu(t, mu, m, smoothed_smoothness(l, g, mu), r)
}

/// Predicted best temperature of a sweep at fixed T: the minimiser of
/// [`temperature_sweep_bound`], `G R / sqrt(2 T ln M)` (L does not enter).
///
/// See docs/THEORY.md#temperature-sweep.
pub fn predicted_best_mu(g: f64, r: f64, t: u64, m: usize) -> f64 {
    tuned_mu(g, r, t, m)
}

/// Accelerated softmax GD (FISTA on `F_mu`, step `1/L_mu`) with a fixed temperature:
/// `F(theta_T) - OPT <= mu ln M + 2 L_mu R^2 / (T + 1)^2`.
///
/// Problem class: convex L-smooth tasks, gradients bounded by G on a region
/// containing the iterates *and* the extrapolated points (for the set
/// `||theta|| <= s`, the ball of radius 3s), `r = ||theta_0 - u||` for any
/// comparator `u` in the set.
/// Reference: Beck and Teboulle (2009), SIAM J. Imaging Sci. 2(1), Thm 4.4.
/// See docs/THEORY.md#accelerated-softmax-gd.
pub fn accelerated_fixed_mu(t: u64, mu: f64, m: usize, l_mu: f64, r: f64) -> f64 {
    let t1 = horizon(t) + 1.0;
    smoothing_bias(mu, m) + 2.0 * l_mu * r * r / (t1 * t1)
}

/// Accelerated softmax GD with backtracking (non-increasing steps, the
/// default without a bounded set):
/// `F(theta_T) - OPT <= mu ln M + 2 R_mu^2 / (eta_min (T + 1)^2)`, where
/// `eta_min` is the smallest accepted step and `r_mu = ||theta_0 - argmin F_mu||`.
///
/// Reference: Beck and Teboulle (2009), Thm 4.4 (backtracking). See
/// docs/THEORY.md#accelerated-softmax-gd.
pub fn accelerated_backtracking(t: u64, mu: f64, m: usize, eta_min: f64, r_mu: f64) -> f64 {
    accelerated_fixed_mu(t, mu, m, 1.0 / eta_min, r_mu)
}

/// The comparator form of [`accelerated_fixed_mu`]: `F(theta_T) - D_ref <=
/// excess + 2 L_mu ||theta_0 - u||^2 / (T + 1)^2` with `excess = F_mu(u) - D_ref`
/// for any feasible `u` (exact FISTA momentum sequence, fixed step `1/L_mu`).
///
/// See docs/THEORY.md#accelerated-softmax-gd.
pub fn accelerated_comparator(t: u64, excess: f64, l_mu: f64, r: f64) -> f64 {
    let t1 = horizon(t) + 1.0;
    excess + 2.0 * l_mu * r * r / (t1 * t1)
}

/// Temperature tuned for accelerated softmax GD at horizon T:
/// `mu* = sqrt(2) G R / ((T + 1) sqrt(ln M))`. `+inf` for M = 1.
///
/// See docs/THEORY.md#accelerated-softmax-gd.
pub fn accelerated_tuned_mu(g: f64, r: f64, t: u64, m: usize) -> f64 {
    std::f64::consts::SQRT_2 * g * r / ((horizon(t) + 1.0) * log_m(m).sqrt())
}

/// Accelerated softmax GD with the tuned temperature [`accelerated_tuned_mu`]:
/// `F(theta_T) - OPT <= 2 L R^2 / (T + 1)^2 + 2 sqrt(2 ln M) G R / (T + 1)`.
///
/// Problem class and reference as [`accelerated_fixed_mu`]. See
/// docs/THEORY.md#accelerated-softmax-gd.
pub fn accelerated_tuned(t: u64, l: f64, g: f64, r: f64, m: usize) -> f64 {
    let t1 = horizon(t) + 1.0;
    2.0 * l * r * r / (t1 * t1) + 2.0 * (2.0 * log_m(m)).sqrt() * g * r / t1
}

/// Contraction factor of GD with step `1/L_mu` on a lambda-strongly convex,
/// `L_mu`-smooth `F_mu`: `rho = 1 - lambda / L_mu`.
///
/// See docs/THEORY.md#strongly-convex-tasks.
pub fn linear_rate_factor(lambda: f64, l_mu: f64) -> f64 {
    1.0 - lambda / l_mu
}

/// Strongly convex tasks, softmax-weighted GD with step `1/L_mu`:
/// `F_mu(theta_T) - min F_mu <= (1 - lambda/L_mu)^T (F_mu(theta_0) - min F_mu)`.
///
/// Problem class: every task lambda-strongly convex and L-smooth. Method:
/// (projected) gradient descent on `F_mu`. Reference: Karimi, Nutini, Schmidt
/// (2016), ECML-PKDD, Thm 1 and 5. See docs/THEORY.md#strongly-convex-tasks.
pub fn strongly_convex_smoothed(t: u64, lambda: f64, l_mu: f64, initial_gap: f64) -> f64 {
    linear_rate_factor(lambda, l_mu).powf(horizon(t)) * initial_gap
}

/// Certified form of [`strongly_convex_smoothed`] for gaps measured against a
/// lower bound `c <= min F_mu`: `F_mu(theta_T) - c <= rho^T (F_mu(theta_0) - c) +
/// (1 - rho^T) eps_ref`, where `measured_initial = F_mu(theta_0) - c` and
/// `reference_gap = eps_ref >= min F_mu - c` is the reference's certified gap.
///
/// See docs/THEORY.md#strongly-convex-tasks.
pub fn strongly_convex_certified(
    t: u64,
    lambda: f64,
    l_mu: f64,
    measured_initial: f64,
    reference_gap: f64,
) -> f64 {
    let decay = linear_rate_factor(lambda, l_mu).powf(horizon(t));
    decay * measured_initial + (1.0 - decay) * reference_gap
}

/// Exponentiated-gradient descent-ascent, duality gap of the averaged iterates:
/// `F(theta_bar) - D(q_bar) <= R^2/(2 eta_x T) + eta_x G^2/2 + ln M/(eta_q T) + eta_q B^2/2`.
///
/// Problem class: convex tasks with `||sum_i q_i grad f_i|| <= G`,
/// `|f_i| <= B` on the iterates, `R` bounding the distance from `theta_0` to the
/// comparators. Method: simultaneous projected descent in theta (step
/// `eta_x`) and Hedge in q (step `eta_q`) from uniform q. Reference:
/// Nemirovski, Juditsky, Lan, Shapiro (2009), SIAM J. Optim. 19(4). See
/// docs/THEORY.md#descent-ascent.
pub fn descent_ascent(t: u64, eta_x: f64, eta_q: f64, r: f64, g: f64, b: f64, m: usize) -> f64 {
    let t = horizon(t);
    r * r / (2.0 * eta_x * t) + 0.5 * eta_x * g * g + log_m(m) / (eta_q * t) + 0.5 * eta_q * b * b
}

/// The step sizes that minimise [`descent_ascent`] at horizon T:
/// `(eta_x, eta_q) = (R / (G sqrt T), sqrt(2 ln M / T) / B)`.
///
/// See docs/THEORY.md#descent-ascent.
pub fn descent_ascent_steps(t: u64, r: f64, g: f64, b: f64, m: usize) -> (f64, f64) {
    let t = horizon(t);
    (r / (g * t.sqrt()), (2.0 * log_m(m) / t).sqrt() / b)
}

/// Descent-ascent with the tuned steps [`descent_ascent_steps`]:
/// `F(theta_bar) - D(q_bar) <= (G R + B sqrt(2 ln M)) / sqrt(T)`.
///
/// See docs/THEORY.md#descent-ascent.
pub fn descent_ascent_tuned(t: u64, r: f64, g: f64, b: f64, m: usize) -> f64 {
    (g * r + b * (2.0 * log_m(m)).sqrt()) / horizon(t).sqrt()
}

/// Tuned constant step of the subgradient method: `R / (G sqrt T)`.
///
/// See docs/THEORY.md#subgradient-method.
pub fn subgradient_step(t: u64, g: f64, r: f64) -> f64 {
    r / (g * horizon(t).sqrt())
}

/// Subgradient method on F with constant step `eta`, best iterate:
/// `min_t F(theta_t) - OPT <= R^2 / (2 eta T) + eta G^2 / 2`.
///
/// Problem class: convex tasks with task gradients bounded by G,
/// `R = ||theta_0 - theta*||`. Reference: Nesterov (2004), Introductory
/// Lectures on Convex Optimization, Thm 3.2.2. See
/// docs/THEORY.md#subgradient-method.
pub fn subgradient_with_step(t: u64, eta: f64, g: f64, r: f64) -> f64 {
    r * r / (2.0 * eta * horizon(t)) + 0.5 * eta * g * g
}

/// The comparator form of [`subgradient_with_step`]: `min_t F(theta_t) - D_ref <=
/// excess + ||theta_0 - u||^2 / (2 eta T) + eta G^2 / 2` with
/// `excess = F(u) - D_ref` for any feasible `u` and certified `D_ref <= OPT`.
///
/// See docs/THEORY.md#subgradient-method.
pub fn subgradient_comparator(t: u64, eta: f64, g: f64, excess: f64, r: f64) -> f64 {
    excess + subgradient_with_step(t, eta, g, r)
}

/// Subgradient method with the tuned step [`subgradient_step`]:
/// `min_t F(theta_t) - OPT <= G R / sqrt(T)`.
///
/// See docs/THEORY.md#subgradient-method.
pub fn subgradient(t: u64, g: f64, r: f64) -> f64 {
    g * r / horizon(t).sqrt()
}

/// Second-order (delta-method) prediction of the bias of plug-in softmax
/// weights `E[softmax(fhat/mu)] - softmax(f/mu)` when each task loss is
/// estimated with independent zero-mean noise of variance `variances[i] / batch`.
///
/// `losses` are the exact losses f, `variances` the per-sample loss variances
/// `s_i^2`. This is a prediction, not a bound: it scales like `1/(batch mu^2)`.
/// Returns one entry per task (they sum to zero up to rounding). See
/// docs/THEORY.md#stochastic-softmax-weights.
pub fn plugin_softmax_bias(losses: &[f64], variances: &[f64], mu: f64, batch: usize) -> Vec<f64> {
    let p = crate::problem::numerics::softmax(losses, mu);
    let scale = 1.0 / (2.0 * mu * mu * batch as f64);
    (0..p.len())
        .map(|i| {
            let curvature: f64 = p
                .iter()
                .zip(variances)
                .enumerate()
                .map(|(j, (&pj, &s2))| {
                    let delta = if i == j { 1.0 } else { 0.0 };
                    s2 * ((delta - pj).powi(2) - pj * (1.0 - pj))
                })
                .sum();
            scale * p[i] * curvature
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    /// Every bound at one point, against its documented formula evaluated
    /// by hand (t = 9, mu = 0.5, M = 8, L = 2, G = 1.5, R = 2, L_mu = 3, ...):
    /// a changed operator or constant in any of them moves its value.
    #[test]
    fn each_bound_matches_its_formula_at_a_hand_computed_point() {
        let cases = [
            (smoothing_bias(0.5, 8), 1.0397207708399179),
            (smoothed_smoothness(2.0, 1.5, 0.5), 6.5),
            (softmax_gd_fixed_mu(9, 0.5, 8, 3.0, 2.0), 1.7063874375065846),
            (
                softmax_gd_fixed_mu_tight(9, 0.5, 8, 3.0, 2.0),
                1.3555102445241283,
            ),
            (softmax_gd_comparator(9, 0.3, 3.0, 2.0), 0.9666666666666666),
            (
                softmax_gd_backtracking(9, 0.5, 8, 0.25, 2.0),
                1.9286096597288067,
            ),
            (tuned_mu(1.5, 2.0, 9, 8), 0.49035617002490545),
            (softmax_gd_tuned(9, 2.0, 1.5, 2.0, 8), 2.483778424782062),
            (
                softmax_gd_iterations_to(0.3, 2.0, 1.5, 2.0, 8),
                442.1529019256435,
            ),
            (
                temperature_sweep_bound(9, 0.5, 8, 2.0, 1.5, 2.0),
                2.4841652152843623,
            ),
            (predicted_best_mu(1.5, 2.0, 9, 8), 0.49035617002490545),
            (
                accelerated_fixed_mu(9, 0.5, 8, 3.0, 2.0),
                1.2797207708399179,
            ),
            (
                accelerated_backtracking(9, 0.5, 8, 0.25, 2.0),
                1.359720770839918,
            ),
            (accelerated_comparator(9, 0.3, 3.0, 2.0), 0.54),
            (accelerated_tuned_mu(1.5, 2.0, 9, 8), 0.2942137020149433),
            (accelerated_tuned(9, 2.0, 1.5, 2.0, 8), 1.3836003882025705),
            (linear_rate_factor(0.6, 3.0), 0.8),
            (
                strongly_convex_smoothed(9, 0.6, 3.0, 1.7),
                0.2281701376000001,
            ),
            (
                strongly_convex_certified(9, 0.6, 3.0, 1.7, 0.01),
                0.23682796032000009,
            ),
            (
                descent_ascent(9, 0.25, 0.4, 2.0, 1.5, 0.7, 8),
                1.8457615393555098,
            ),
            (
                descent_ascent_tuned(9, 2.0, 1.5, 0.7, 8),
                1.4758445954121109,
            ),
            (
                descent_ascent_steps(9, 2.0, 1.5, 0.7, 8).0,
                0.4444444444444444,
            ),
            (
                descent_ascent_steps(9, 2.0, 1.5, 0.7, 8).1,
                0.9711114192083895,
            ),
            (subgradient_step(9, 1.5, 2.0), 0.4444444444444444),
            (subgradient_with_step(9, 0.25, 1.5, 2.0), 1.1701388888888888),
            (
                subgradient_comparator(9, 0.25, 1.5, 0.3, 2.0),
                1.4701388888888889,
            ),
            (subgradient(9, 1.5, 2.0), 1.0),
            // 1 + sqrt(2 * 0.5 / 0.25) + 0.5 sqrt(0.5 / 2) = 1 + 2 + 0.25.
            (sublevel_radius(1.0, 0.5, 0.25, 0.5, 2.0), 3.25),
        ];
        for (i, (value, expected)) in cases.iter().enumerate() {
            assert!(
                close(*value, *expected, 1e-12),
                "case {i}: {value} != {expected}"
            );
        }
        // Edge cases: no smoothness means no step reach; a single task no bias.
        assert_eq!(sublevel_radius(1.0, 0.5, 0.25, 0.5, 0.0), f64::INFINITY);
        assert_eq!(sublevel_radius(1.0, -3.0, 0.25, 0.5, 2.0), 1.25);
        assert_eq!(smoothing_bias(0.5, 1), 0.0);
        assert_eq!(smoothing_bias(0.5, 0), 0.0);
        // Without curvature the count inverts the linear term alone.
        assert!(close(
            softmax_gd_iterations_to(0.3, 0.0, 1.5, 2.0, 8),
            (1.5f64 * 2.0 * (2.0 * 8f64.ln()).sqrt() / 0.3).powi(2),
            1e-12
        ));
    }

    #[test]
    fn tuned_mu_minimises_the_fixed_mu_bound() {
        let (l, g, r, t, m) = (3.0, 2.0, 1.5, 400, 16);
        let mu_star = tuned_mu(g, r, t, m);
        let at_star = temperature_sweep_bound(t, mu_star, m, l, g, r);
        // The tuned bound is the fixed-mu bound at mu*.
        assert!(close(at_star, softmax_gd_tuned(t, l, g, r, m), 1e-12));
        // And no other temperature does better.
        for k in -40..=40 {
            let mu = mu_star * (1.1f64).powi(k);
            assert!(temperature_sweep_bound(t, mu, m, l, g, r) >= at_star * (1.0 - 1e-14));
        }
        assert_eq!(predicted_best_mu(g, r, t, m), mu_star);
    }

    #[test]
    fn accelerated_tuned_mu_minimises_its_fixed_mu_bound() {
        let (l, g, r, t, m) = (5.0, 1.0, 2.0, 99, 8);
        let mu_star = accelerated_tuned_mu(g, r, t, m);
        let bound = |mu: f64| accelerated_fixed_mu(t, mu, m, smoothed_smoothness(l, g, mu), r);
        assert!(close(
            bound(mu_star),
            accelerated_tuned(t, l, g, r, m),
            1e-12
        ));
        for k in -40..=40 {
            let mu = mu_star * (1.1f64).powi(k);
            assert!(bound(mu) >= bound(mu_star) * (1.0 - 1e-14));
        }
    }

    #[test]
    fn descent_ascent_tuned_steps_give_the_tuned_bound_and_minimise() {
        let (t, r, g, b, m) = (1000, 1.2, 3.0, 0.7, 32);
        let (ex, eq) = descent_ascent_steps(t, r, g, b, m);
        let at_steps = descent_ascent(t, ex, eq, r, g, b, m);
        assert!(close(at_steps, descent_ascent_tuned(t, r, g, b, m), 1e-12));
        for (fx, fq) in [(0.9, 1.0), (1.1, 1.0), (1.0, 0.9), (1.0, 1.1), (0.5, 2.0)] {
            assert!(descent_ascent(t, ex * fx, eq * fq, r, g, b, m) > at_steps);
        }
    }

    #[test]
    fn subgradient_tuned_step_gives_g_r_over_sqrt_t() {
        let (t, g, r) = (256, 4.0, 0.5);
        let eta = subgradient_step(t, g, r);
        assert!(close(
            subgradient_with_step(t, eta, g, r),
            subgradient(t, g, r),
            1e-12
        ));
        assert!(close(subgradient(t, g, r), 4.0 * 0.5 / 16.0, 1e-15));
        assert!(subgradient_with_step(t, 2.0 * eta, g, r) > subgradient(t, g, r));
    }

    #[test]
    fn bounds_decrease_in_t_and_reach_their_floors() {
        let (mu, m, l_mu, r) = (0.01, 10, 50.0, 1.0);
        let ts = [1u64, 2, 5, 10, 100, 1000, 10_000];
        let monotone = |f: &dyn Fn(u64) -> f64| ts.windows(2).all(|w| f(w[1]) < f(w[0]));
        assert!(monotone(&|t| softmax_gd_fixed_mu(t, mu, m, l_mu, r)));
        assert!(monotone(&|t| accelerated_fixed_mu(t, mu, m, l_mu, r)));
        assert!(monotone(&|t| softmax_gd_tuned(t, 1.0, 2.0, r, m)));
        assert!(monotone(&|t| accelerated_tuned(t, 1.0, 2.0, r, m)));
        assert!(monotone(&|t| descent_ascent_tuned(t, r, 2.0, 1.0, m)));
        assert!(monotone(&|t| subgradient(t, 2.0, r)));
        assert!(monotone(&|t| strongly_convex_smoothed(t, 1.0, l_mu, 3.0)));
        // Floors: the smoothing bias.
        let floor = smoothing_bias(mu, m);
        assert!(close(floor, 0.01 * 10f64.ln(), 1e-15));
        assert!(softmax_gd_fixed_mu(u64::MAX, mu, m, l_mu, r) - floor < 1e-15);
        assert!(accelerated_fixed_mu(u64::MAX, mu, m, l_mu, r) - floor < 1e-15);
        assert_eq!(softmax_gd_fixed_mu(0, mu, m, l_mu, r), f64::INFINITY);
    }

    #[test]
    fn accelerated_is_never_worse_than_plain_for_the_same_constants() {
        // 2/(T+1)^2 <= 1/(2T) for T >= 1 (equality never): FISTA's bound is smaller.
        for t in [1u64, 2, 3, 10, 1000] {
            assert!(
                accelerated_fixed_mu(t, 0.1, 4, 7.0, 2.0)
                    <= softmax_gd_fixed_mu(t, 0.1, 4, 7.0, 2.0)
            );
        }
    }

    #[test]
    fn bounds_grow_with_log_m_as_stated() {
        let (t, l, g, r) = (10_000, 0.0, 1.0, 1.0);
        // With L = 0 the tuned bound is exactly G R sqrt(2 ln M / T).
        for m in [2usize, 16, 1024] {
            let expected = (2.0 * (m as f64).ln() / 10_000.0).sqrt();
            assert!(close(softmax_gd_tuned(t, l, g, r, m), expected, 1e-14));
        }
        let ratio = softmax_gd_tuned(t, l, g, r, 1024) / softmax_gd_tuned(t, l, g, r, 2);
        assert!(close(ratio, 10f64.sqrt(), 1e-12));
    }

    #[test]
    fn iterations_to_invert_the_tuned_bound() {
        let (l, g, r, m) = (2.0, 1.5, 0.8, 64);
        for eps in [1.0, 0.1, 1e-3] {
            let t = softmax_gd_iterations_to(eps, l, g, r, m);
            // Evaluate the real-valued bound at that T.
            let bound = l * r * r / (2.0 * t) + g * r * (2.0 * (m as f64).ln() / t).sqrt();
            assert!(close(bound, eps, 1e-10), "{bound} vs {eps}");
        }
        // Small-eps asymptote 2 G^2 R^2 ln M / eps^2, linear in ln M.
        let eps = 1e-6;
        let t = softmax_gd_iterations_to(eps, l, g, r, m);
        let asymptote = 2.0 * g * g * r * r * (m as f64).ln() / (eps * eps);
        assert!(close(t, asymptote, 1e-3));
        // L = 0 branch.
        assert!(close(
            softmax_gd_iterations_to(0.1, 0.0, 1.0, 1.0, 2),
            200.0 * 2f64.ln(),
            1e-12
        ));
    }

    #[test]
    fn single_task_needs_no_smoothing() {
        assert_eq!(tuned_mu(1.0, 1.0, 10, 1), f64::INFINITY);
        assert_eq!(smoothing_bias(5.0, 1), 0.0);
        assert!(close(softmax_gd_tuned(10, 2.0, 1.0, 1.0, 1), 0.1, 1e-15));
    }

    #[test]
    fn strongly_convex_bounds() {
        let rho = linear_rate_factor(1.0, 4.0);
        assert_eq!(rho, 0.75);
        assert!(close(
            strongly_convex_smoothed(3, 1.0, 4.0, 2.0),
            2.0 * 0.421875,
            1e-15
        ));
        // The certified form equals the plain one with an exact reference and
        // tends to the reference gap.
        assert_eq!(
            strongly_convex_certified(3, 1.0, 4.0, 2.0, 0.0),
            strongly_convex_smoothed(3, 1.0, 4.0, 2.0)
        );
        assert!(close(
            strongly_convex_certified(10_000, 1.0, 4.0, 2.0, 1e-9),
            1e-9,
            1e-12
        ));
    }

    #[test]
    fn backtracking_bound_matches_fixed_step_at_eta_one_over_l_mu() {
        let (t, mu, m, l_mu, r) = (50, 0.2, 3, 8.0, 1.3);
        assert!(close(
            softmax_gd_backtracking(t, mu, m, 1.0 / l_mu, r),
            softmax_gd_fixed_mu(t, mu, m, l_mu, r),
            1e-14
        ));
        assert!(close(
            accelerated_backtracking(t, mu, m, 1.0 / l_mu, r),
            accelerated_fixed_mu(t, mu, m, l_mu, r),
            1e-14
        ));
        assert!(close(
            accelerated_comparator(t, smoothing_bias(mu, m), l_mu, r),
            accelerated_fixed_mu(t, mu, m, l_mu, r),
            1e-14
        ));
        assert!(close(
            subgradient_comparator(t, 0.1, 2.0, 0.0, r),
            subgradient_with_step(t, 0.1, 2.0, r),
            1e-14
        ));
        assert!(close(
            softmax_gd_comparator(t, smoothing_bias(mu, m), l_mu, r),
            softmax_gd_fixed_mu(t, mu, m, l_mu, r),
            1e-14
        ));
    }

    #[test]
    fn plugin_bias_matches_monte_carlo_and_scales_as_one_over_batch() {
        use rand::{rngs::StdRng, SeedableRng};
        use rand_distr::{Distribution, Normal};
        let losses = [1.0, 0.8, 0.5];
        let variances = [0.04, 0.09, 0.01];
        let (mu, batch) = (0.3, 8);
        let predicted = plugin_softmax_bias(&losses, &variances, mu, batch);
        assert!(predicted.iter().sum::<f64>().abs() < 1e-15);
        let half = plugin_softmax_bias(&losses, &variances, mu, 2 * batch);
        for (a, b) in predicted.iter().zip(&half) {
            assert!(close(*a, 2.0 * b, 1e-12));
        }
        // Monte Carlo with Gaussian noise: variance of the mean over `batch` samples.
        let p = crate::problem::numerics::softmax(&losses, mu);
        let mut rng = StdRng::seed_from_u64(7);
        let normals: Vec<Normal<f64>> = variances
            .iter()
            .map(|v| Normal::<f64>::new(0.0, (v / batch as f64).sqrt()).unwrap())
            .collect();
        let n = 400_000;
        let mut mean = [0.0; 3];
        let mut noisy = [0.0; 3];
        for _ in 0..n {
            for i in 0..3 {
                noisy[i] = losses[i] + normals[i].sample(&mut rng);
            }
            let w = crate::problem::numerics::softmax(&noisy, mu);
            for i in 0..3 {
                mean[i] += w[i] / n as f64;
            }
        }
        for i in 0..3 {
            let measured = mean[i] - p[i];
            // Third- and higher-order terms are small at this noise level;
            // the Monte Carlo standard error is about 1e-4.
            assert!(
                (measured - predicted[i]).abs() < 0.25 * predicted[i].abs() + 3e-4,
                "task {i}: measured {measured}, predicted {}",
                predicted[i]
            );
        }
    }
}
