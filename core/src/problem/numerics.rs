//! Stable log-sum-exp, softmax and entropy over task losses.
//!
//! Every function shifts by the largest loss before exponentiating, so the
//! results stay finite and accurate to rounding for temperatures from 1e-12 to
//! 1e12 and losses up to 1e300 in magnitude.

use crate::problem::directed::{add_up, mul_up, sub_down};

/// Smoothed maximum `F_mu(f) = mu * log sum_i exp(f_i / mu)`.
///
/// Computed as `f_max + mu * ln(1 + sum_{i != argmax} exp((f_i - f_max) / mu))`,
/// which never overflows: every exponent is <= 0 and the log term is in
/// `[0, mu ln M]`. Returns NaN for an empty slice or NaN input.
pub fn log_sum_exp(losses: &[f64], mu: f64) -> f64 {
    let Some((argmax, f_max)) = max_with_index(losses) else {
        return f64::NAN;
    };
    if !f_max.is_finite() {
        return f_max;
    }
    let tail: f64 = losses
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != argmax)
        .map(|(_, &f)| ((f - f_max) / mu).exp())
        .sum();
    f_max + mu * tail.ln_1p()
}

/// Softmax weights `p_i = exp(f_i / mu) / sum_j exp(f_j / mu)`, written into `weights`.
///
/// The weights are non-negative and sum to one up to rounding; the largest
/// loss always gets a weight of at least `1 / M`.
pub fn softmax_into(losses: &[f64], mu: f64, weights: &mut [f64]) {
    assert_eq!(losses.len(), weights.len(), "softmax: length mismatch");
    let Some((argmax, f_max)) = max_with_index(losses) else {
        return;
    };
    if !f_max.is_finite() {
        // Degenerate input (an infinite loss): put all weight on it.
        weights.fill(0.0);
        weights[argmax] = 1.0;
        return;
    }
    let mut total = 0.0;
    for (w, &f) in weights.iter_mut().zip(losses) {
        *w = ((f - f_max) / mu).exp();
        total += *w;
    }
    for w in weights.iter_mut() {
        *w /= total;
    }
}

/// Allocating convenience wrapper around [`softmax_into`].
pub fn softmax(losses: &[f64], mu: f64) -> Vec<f64> {
    let mut weights = vec![0.0; losses.len()];
    softmax_into(losses, mu, &mut weights);
    weights
}

/// Shannon entropy `-sum p_i ln p_i` (nats), with `0 ln 0 = 0`.
pub fn entropy(weights: &[f64]) -> f64 {
    -weights
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.ln())
        .sum::<f64>()
}

/// Largest value and its first index; `None` for an empty slice or a NaN.
pub fn max_with_index(values: &[f64]) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return None;
        }
        match best {
            Some((_, b)) if b >= v => {}
            _ => best = Some((i, v)),
        }
    }
    best
}

/// Euclidean projection of `weights` onto the probability simplex, in place
/// (sort-based algorithm of Held, Wolfe and Crowder / Duchi et al. 2008).
pub fn project_onto_simplex(weights: &mut [f64]) {
    let mut sorted: Vec<f64> = weights.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    let mut shift = 0.0;
    for (k, &v) in sorted.iter().enumerate() {
        cumulative += v;
        let candidate = (cumulative - 1.0) / (k as f64 + 1.0);
        if v - candidate > 0.0 {
            shift = candidate;
        }
    }
    for w in weights.iter_mut() {
        *w = (*w - shift).max(0.0);
    }
}

/// The unit roundoff of f64, `u = 2^-53`.
pub const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;

/// The smallest positive subnormal, `2^-1074`: the absolute error one
/// rounding can add below the normal range (gradual underflow).
pub const UNDERFLOW_UNIT: f64 = f64::from_bits(1);

/// Higham's `gamma_n = n u / (1 - n u)`, for `n + 2` operations (the two
/// extra cover forming the bound itself), and `inf` where `n u >= 1/2`.
/// `|fl(sum of n terms) - sum| <= gamma_{n-1} sum |terms|` in any order, with
/// or without fused multiply-adds (Higham, Accuracy and Stability, ch. 3).
pub fn gamma(n: usize) -> f64 {
    let nu = (n as f64 + 2.0) * UNIT_ROUNDOFF;
    if nu >= 0.5 {
        return f64::INFINITY;
    }
    nu / (1.0 - nu) * (1.0 + 4.0 * UNIT_ROUNDOFF)
}

/// A nonnegative error bound rounded up past the few roundings made while
/// computing it (a relative `2^-40` and an absolute `2^-1068`), so that the
/// bound stays a bound in floating point. NaN becomes `inf`.
pub fn round_up(bound: f64) -> f64 {
    if bound.is_nan() {
        return f64::INFINITY;
    }
    bound.abs() * (1.0 + 2f64.powi(-40)) + 64.0 * UNDERFLOW_UNIT
}

/// `x` moved up by the relative `2^-50` (eight unit roundoffs): an upper
/// bound on the exact value of a result that two or three roundings to
/// nearest made (below the normal range, where sums are exact, it stays put).
pub fn round_upward(x: f64) -> f64 {
    x + x.abs() * 2f64.powi(-50)
}

/// A floating-point sum that bounds its own rounding as it goes (Higham's
/// running error analysis, Accuracy and Stability, section 3.3): rounding to
/// nearest moves each partial sum `s_i` by at most `u |s_i|` and each product
/// `t_i = fl(a b)` by at most `u |t_i|`, so the exact sum of the exact terms
/// lies within `u` times the sum of those magnitudes of the computed one.
/// That sum is kept rounded upwards; below the normal range, where an
/// addition is exact, a product may lose half a subnormal unit instead. The
/// bound holds for terms of any sign, in any order, and needs no operation
/// counts from the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrackedSum {
    sum: f64,
    magnitudes: f64,
    products: usize,
    /// Upper bound on the error the terms brought with them.
    inherited: f64,
}

impl TrackedSum {
    /// The sum of exact terms.
    pub fn of(terms: impl IntoIterator<Item = f64>) -> Self {
        let mut sum = Self::default();
        terms.into_iter().for_each(|t| sum.add(t));
        sum
    }

    /// The sum of the squares `v v` (each rounded once) of exact values.
    pub fn of_squares(values: impl IntoIterator<Item = f64>) -> Self {
        let mut sum = Self::default();
        values.into_iter().for_each(|v| sum.add_product(v, v));
        sum
    }

    /// The dot product `sum_k a_k b_k` of exact vectors (each product rounded once).
    pub fn of_products(a: &[f64], b: &[f64]) -> Self {
        let mut sum = Self::default();
        a.iter().zip(b).for_each(|(x, y)| sum.add_product(*x, *y));
        sum
    }

    /// Adds an exact term.
    pub fn add(&mut self, term: f64) {
        self.push(term, 0.0);
    }

    /// Adds the product `a b`, which rounds once before it is added.
    pub fn add_product(&mut self, a: f64, b: f64) {
        let term = a * b;
        self.products += 1;
        self.push(term, term.abs());
    }

    /// Adds the product `a b` of an exact `a` and a `b` that is within
    /// `b_error` of the value it stands for: the term's own error `|a| b_error`
    /// joins the bound.
    pub fn add_inexact_product(&mut self, a: f64, b: f64, b_error: f64) {
        self.add_product(a, b);
        self.inherited = add_up(self.inherited, mul_up(a.abs(), b_error));
    }

    fn push(&mut self, term: f64, rounded: f64) {
        self.sum += term;
        self.magnitudes = round_upward(self.magnitudes + self.sum.abs() + rounded);
    }

    /// The computed sum.
    pub fn value(&self) -> f64 {
        self.sum
    }

    /// A bound on `|value - exact sum|`; NaN where a term is NaN.
    pub fn error_bound(&self) -> f64 {
        round_upward(
            UNIT_ROUNDOFF * self.magnitudes
                + self.products as f64 * UNDERFLOW_UNIT
                + self.inherited,
        )
    }

    /// An upper bound on the exact sum.
    pub fn upper(&self) -> f64 {
        add_up(self.sum, self.error_bound())
    }

    /// Whether the exact sum is certainly positive (false for NaN).
    pub fn certainly_positive(&self) -> bool {
        self.lower() > 0.0
    }

    /// A lower bound on the exact sum.
    pub fn lower(&self) -> f64 {
        sub_down(self.sum, self.error_bound())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rounding_units_are_binary64s() {
        // u = 2^-53: 1 + u rounds (to even) back to 1, 1 + 2u does not.
        assert_eq!(UNIT_ROUNDOFF, 2f64.powi(-53));
        assert_eq!(1.0 + UNIT_ROUNDOFF, 1.0);
        assert_eq!(1.0 + 2.0 * UNIT_ROUNDOFF, 1.0 + f64::EPSILON);
        // eta: the smallest positive subnormal, 2^-1074.
        assert_eq!(UNDERFLOW_UNIT, 2f64.powi(-1022) * 2f64.powi(-52));
        assert_eq!(UNDERFLOW_UNIT / 2.0, 0.0);
    }

    #[test]
    fn gamma_is_never_below_highams_gamma_of_n_plus_2_and_barely_above() {
        // gamma(n) >= (n + 2) u / (1 - (n + 2) u) exactly: an allowance
        // computed in floating point must round up, not to nearest. With
        // nu = (n + 2) u and 1 - nu both exact, gamma(n) (1 - nu) - nu has
        // the sign of gamma(n) - gamma_{n+2}, and one fused multiply-add
        // gives that sign exactly.
        for n in [0usize, 1, 2, 7, 40, 1_000, 1 << 20, 1 << 40, 1 << 51] {
            let nu = (n as f64 + 2.0) * UNIT_ROUNDOFF;
            let denominator = 1.0 - nu;
            assert_eq!(1.0 - denominator, nu, "n = {n}: 1 - nu must be exact");
            let excess = gamma(n).mul_add(denominator, -nu);
            assert!(
                excess >= 0.0,
                "n = {n}: gamma below its formula by {excess:e}"
            );
            // ... and within 8u relative of it (one rounding and the 4u inflation).
            assert!(
                excess <= nu * 8.0 * UNIT_ROUNDOFF,
                "n = {n}: gamma above its formula by {excess:e}"
            );
        }
        assert_eq!(gamma(1 << 52), f64::INFINITY);
    }

    #[test]
    fn round_upward_raises_by_eight_units_of_roundoff_either_sign() {
        let up = 8.0 * UNIT_ROUNDOFF;
        assert_eq!(round_upward(1.0), 1.0 + up);
        assert_eq!(round_upward(-1.0), -1.0 + up);
        assert_eq!(round_upward(0.0), 0.0);
    }

    #[test]
    fn a_sum_that_rounds_down_at_every_addition_stays_within_its_bound() {
        // 2 + 2^-52 is a tie, and rounds to even, back to 2: each of the k
        // additions loses u |s_i| = 2u, the most that rounding to nearest
        // can lose. The running bound is 2 (k + 1) u: tight to 2u.
        let k = 1000;
        let mut sum = TrackedSum::default();
        sum.add(2.0);
        for _ in 0..k {
            sum.add(2.0 * UNIT_ROUNDOFF);
        }
        assert_eq!(sum.value(), 2.0);
        let lost = k as f64 * 2.0 * UNIT_ROUNDOFF;
        let bound = sum.error_bound();
        assert!(bound >= lost, "bound {bound:e} below the loss {lost:e}");
        assert!(
            bound <= lost * 1.01,
            "bound {bound:e} loose against {lost:e}"
        );
        let upper = sum.upper();
        assert!(
            upper >= 2.0 + lost && upper <= 2.0 + lost * 1.02,
            "upper {upper}"
        );
        // Negated terms: the same loss, below.
        let mut negated = TrackedSum::default();
        negated.add(-2.0);
        for _ in 0..k {
            negated.add(-2.0 * UNIT_ROUNDOFF);
        }
        assert_eq!(negated.value(), -2.0);
        assert_eq!(negated.error_bound(), bound);
        assert!(negated.upper() >= -2.0 && negated.upper() <= -2.0 + 3.0 * lost);
        // The lower bounds mirror the upper ones.
        let (low, negated_low) = (sum.lower(), negated.lower());
        assert!(low <= 2.0 && low >= 2.0 - 3.0 * lost, "lower {low}");
        assert!(negated_low <= -2.0 - lost && negated_low >= -2.0 - lost * 1.02);
    }

    #[test]
    fn a_rounded_product_charges_its_own_rounding() {
        // (1 + 2^-26)(1 + 2^-27) = 1 + 2^-26 + 2^-27 + 2^-53: the last bit
        // is a tie that rounds to even, so the product loses u exactly
        // while the sum (0 + t) is exact.
        let (a, b) = (1.0 + 2f64.powi(-26), 1.0 + 2f64.powi(-27));
        let mut sum = TrackedSum::default();
        sum.add_product(a, b);
        let computed = sum.value();
        assert_eq!(computed, 1.0 + 2f64.powi(-26) + 2f64.powi(-27));
        assert_eq!(a.mul_add(b, -computed), UNIT_ROUNDOFF);
        let bound = sum.error_bound();
        assert!(bound >= UNIT_ROUNDOFF, "bound {bound:e}");
        assert!(bound <= 2.1 * UNIT_ROUNDOFF * computed, "bound {bound:e}");
        assert!(sum.upper() - computed >= UNIT_ROUNDOFF);
        // Exact products cost nothing extra: 2^-26 2^-26 = 2^-52.
        let mut exact = TrackedSum::default();
        exact.add_product(2f64.powi(-26), 2f64.powi(-26));
        assert!(exact.error_bound() <= 1.01 * UNIT_ROUNDOFF * 2.0 * 2f64.powi(-52));
    }

    #[test]
    fn an_inexact_product_brings_its_own_error_in_full() {
        // 3 x 0.5 is exact; 0.5 stands for a value within 0.25 of it, so
        // the product is known within 0.75, and no more is charged.
        let mut sum = TrackedSum::default();
        sum.add(1.0);
        sum.add_inexact_product(-3.0, 0.5, 0.25);
        assert_eq!(sum.value(), -0.5);
        let error = sum.error_bound();
        assert!((0.75..=0.75 * (1.0 + 1e-14)).contains(&error), "{error}");
        assert!(sum.upper() >= 0.25 && sum.lower() <= -1.25);
    }

    #[test]
    fn products_that_underflow_charge_half_a_subnormal_each() {
        // 2^-540 2^-540 = 2^-1080 rounds to 0: 10000 of them lose 10000
        // 2^-1080, about 156 subnormal units, and the sum reads 0.
        let tiny = 2f64.powi(-540);
        let mut sum = TrackedSum::default();
        for _ in 0..10_000 {
            sum.add_product(tiny, tiny);
        }
        assert_eq!(sum.value(), 0.0);
        // 156.25 units, rounded up to a representable 157.
        let lost = 157.0 * UNDERFLOW_UNIT;
        assert!(
            sum.error_bound() >= lost,
            "{:e} < {lost:e}",
            sum.error_bound()
        );
        assert!(sum.error_bound() <= 10_000.0 * UNDERFLOW_UNIT * 1.01);
        assert!(sum.upper() >= lost);
        // Nothing summed: no error, and bounds one unit either side of 0
        // (directed rounding does not know that 0 + 0 is exact).
        assert_eq!(TrackedSum::default().error_bound(), 0.0);
        assert_eq!(TrackedSum::default().upper(), UNDERFLOW_UNIT);
        assert_eq!(TrackedSum::default().lower(), -UNDERFLOW_UNIT);
    }

    #[test]
    fn extreme_losses_and_temperatures_stay_finite() {
        let losses = [1e300, -1e300, 5e299, 0.0];
        for &mu in &[1e-12, 1e-6, 1.0, 1e6, 1e12] {
            let value = log_sum_exp(&losses, mu);
            assert!(value.is_finite(), "mu={mu}");
            assert!(value >= 1e300 && value <= 1e300 + mu * 4f64.ln() * (1.0 + 1e-15));
            let p = softmax(&losses, mu);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
            assert!(p.iter().all(|w| w.is_finite() && *w >= 0.0));
        }
    }

    #[test]
    fn huge_temperature_gives_uniform_weights() {
        let p = softmax(&[1.0, 2.0, 3.0], 1e12);
        for w in p {
            assert!((w - 1.0 / 3.0).abs() < 1e-11);
        }
    }

    #[test]
    fn simplex_projection_lands_on_simplex() {
        let mut w = vec![0.5, 2.0, -1.0, 0.3];
        project_onto_simplex(&mut w);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        assert!(w.iter().all(|&x| x >= 0.0));
    }

    #[test]
    fn entropy_of_uniform_is_log_m() {
        let p = vec![0.25; 4];
        assert!((entropy(&p) - 4f64.ln()).abs() < 1e-15);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
    }
}
