//! The linear-regression transfer model: exact downstream excess risk, the
//! sample size needed to reach a target risk, and the upstream losses of a
//! representation (docs/THEORY.md, "Transfer").
//!
//! x ~ N(0, I_d), y = x^T beta + eps with eps ~ N(0, sigma^2). A representation
//! is U (d x k, orthonormal columns), P = U U^T; the downstream learner is OLS
//! of y on z = U^T x with n samples and predicts with U w_hat.

use nalgebra::{DMatrix, DVector};

/// A power of two `2^e` close to the largest magnitude in `values` (1 when
/// all are zero or non-finite). Dividing by it is exact (no rounding) and
/// brings the values near 1, so their squares neither overflow nor underflow.
pub fn power_of_two_scale(values: impl IntoIterator<Item = f64>) -> f64 {
    let largest = values
        .into_iter()
        .map(f64::abs)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    if largest == 0.0 {
        return 1.0;
    }
    // Clamp so that the scale and its square stay normal numbers.
    let exponent = largest.log2().floor().clamp(-500.0, 500.0) as i32;
    2f64.powi(exponent)
}

/// Residual (bias) of a task under a representation: `b = ||(I - U U^T) beta||^2`.
///
/// Computed as `||beta - U (U^T beta)||^2` rather than `||beta||^2 - ||U^T beta||^2`,
/// which would cancel catastrophically when the task lies almost in span(U);
/// and on `beta / 2^e` (exact) with the result scaled back by `4^e`, so that
/// tasks of any magnitude whose residual is representable give it to full
/// relative precision.
pub fn residual(basis: &DMatrix<f64>, beta: &DVector<f64>) -> f64 {
    let scale = power_of_two_scale(beta.iter().copied());
    let scaled = beta / scale;
    let coefficients = basis.tr_mul(&scaled);
    (scaled - basis * coefficients).norm_squared() * (scale * scale)
}

/// Exact expected excess risk of OLS on z = U^T x with n samples:
/// `b + (sigma^2 + b) k / (n - k - 1)`. `None` where the expectation is
/// infinite or undefined (n < k + 2).
///
/// The part of beta outside span(U) is Gaussian noise independent of z with
/// variance b, so the fit is OLS with noise variance sigma^2 + b, whose excess
/// over `U^T beta` has expectation `(sigma^2 + b) E tr((Z^T Z)^{-1})`, and
/// `E (Z^T Z)^{-1} = I_k / (n - k - 1)` for a Wishart(I_k, n) matrix.
pub fn excess_risk(bias: f64, sigma: f64, k: usize, n: usize) -> Option<f64> {
    if n < k + 2 {
        return None;
    }
    let noise = sigma * sigma + bias;
    Some(bias + noise * k as f64 / (n - k - 1) as f64)
}

/// `Var Q / s^2` for the excess `b + s Q` of OLS on k Gaussian features with
/// n samples (see [`excess_risk_variance`]); `None` below n = k + 4.
fn normalised_variance(k: usize, n: usize) -> Option<f64> {
    if n < k + 4 {
        return None;
    }
    let (k, m) = (k as f64, (n - k) as f64);
    let d = m * (m - 1.0) * (m - 1.0) * (m - 3.0);
    let var_trace = (2.0 * k * k + 2.0 * k * (m - 1.0)) / d;
    let mean_trace_sq = (k * (k - 1.0) * (m - 1.0) + 2.0 * k * m) / d + k / ((m - 1.0) * (m - 1.0));
    Some(2.0 * mean_trace_sq + var_trace)
}

/// Exact variance of the excess risk of OLS on k Gaussian features with noise
/// variance `sigma^2 + b` (n >= k + 4; infinite below).
///
/// The excess is `b + s Q`, `s = sigma^2 + b`, `Q = g^T W^{-1} g` with
/// `W ~ Wishart_k(n, I)` and g ~ N(0, I_k) independent, so
/// `Var Q = 2 E tr(W^{-2}) + Var tr(W^{-1})`. With `m = n - k`, the
/// inverse-Wishart moments (Press 1982) give, for `D = m (m-1)^2 (m-3)`,
/// `Var tr(W^{-1}) = (2 k^2 + 2 k (m - 1)) / D` and
/// `E tr(W^{-2}) = (k (k-1) (m-1) + 2 k m) / D + k / (m-1)^2`.
/// (It overflows for `s` beyond about 1e154; [`excess_risk_sd`] does not.)
pub fn excess_risk_variance(bias: f64, sigma: f64, k: usize, n: usize) -> Option<f64> {
    let s = sigma * sigma + bias;
    normalised_variance(k, n).map(|v| s * s * v)
}

/// Exact standard deviation of the excess risk, `s sqrt(Var Q)`: computed
/// without squaring `s`, so it is finite wherever the mean is.
pub fn excess_risk_sd(bias: f64, sigma: f64, k: usize, n: usize) -> Option<f64> {
    let s = sigma * sigma + bias;
    normalised_variance(k, n).map(|v| s * v.sqrt())
}

/// Excess risk of OLS in all d dimensions (no representation): `sigma^2 d / (n - d - 1)`.
pub fn no_representation_risk(sigma: f64, d: usize, n: usize) -> Option<f64> {
    excess_risk(0.0, sigma, d, n)
}

/// Smallest n with `excess_risk(b, sigma, k, n) <= epsilon`:
/// `n* = k + 1 + ceil((sigma^2 + b) k / (epsilon - b))` (at least k + 2).
/// `None` where `b >= epsilon`: no sample size reaches epsilon with this representation.
pub fn n_star(bias: f64, sigma: f64, k: usize, epsilon: f64) -> Option<usize> {
    if bias.is_nan() || bias >= epsilon {
        return None;
    }
    let noise = sigma * sigma + bias;
    let needed = (noise * k as f64 / (epsilon - bias)).ceil();
    // Beyond 2^53 sample sizes are no longer exact in f64 (and beyond any use).
    if !needed.is_finite() || needed > 9.007_199_254_740_992e15 {
        return None;
    }
    let mut n = (k + 1 + needed as usize).max(k + 2);
    // ceil of a rounded quotient can land one off: settle it against the
    // formula (which has no value below k + 2, where the walk down stops).
    while excess_risk(bias, sigma, k, n - 1).is_some_and(|r| r <= epsilon) {
        n -= 1;
    }
    while excess_risk(bias, sigma, k, n).is_some_and(|r| r > epsilon) {
        n += 1;
    }
    Some(n)
}

/// Samples needed without a representation (OLS in d dimensions).
pub fn no_representation_n_star(sigma: f64, d: usize, epsilon: f64) -> Option<usize> {
    n_star(0.0, sigma, d, epsilon)
}

/// Residuals of every task (columns of `tasks`) under a representation.
pub fn residuals(basis: &DMatrix<f64>, tasks: &[DVector<f64>]) -> Vec<f64> {
    tasks.iter().map(|beta| residual(basis, beta)).collect()
}

/// Largest entry (the worst task); NaN-free input assumed.
pub fn worst(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `max_j |U^T U - I|_{ij}`: how far the columns are from orthonormal.
pub fn orthonormality_error(basis: &DMatrix<f64>) -> f64 {
    let k = basis.ncols();
    (basis.tr_mul(basis) - DMatrix::<f64>::identity(k, k)).amax()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_star_is_the_first_sample_size_reaching_epsilon() {
        for &(b, sigma, k, eps) in &[(0.0, 0.5, 3, 0.3), (0.1, 0.5, 4, 0.15), (0.29, 1.0, 5, 0.3)] {
            let n = n_star(b, sigma, k, eps).unwrap();
            assert!(excess_risk(b, sigma, k, n).unwrap() <= eps);
            if n > k + 2 {
                assert!(excess_risk(b, sigma, k, n - 1).unwrap() > eps);
            }
        }
        // b = 0.1, sigma = 0.5, k = 4, eps = 0.15: 5 + ceil(0.35 * 4 / 0.05) = 33.
        assert_eq!(n_star(0.1, 0.5, 4, 0.15), Some(33));
        assert_eq!(n_star(0.3, 0.5, 4, 0.3), None);
        assert_eq!(n_star(0.5, 0.5, 4, 0.3), None);
    }

    #[test]
    fn variance_formula_matches_a_large_monte_carlo() {
        use crate::transfer::simulate::{simulate_cell, Learner};
        // k = 3, n = 14 (fourth moment finite), b = 0.2; and no representation, d = 6.
        let u = DMatrix::from_fn(5, 3, |i, j| if i == j { 1.0 } else { 0.0 });
        let beta = DVector::from_vec(vec![0.3, -0.2, 0.5, 0.4, 0.2]);
        let b = residual(&u, &beta);
        for (learner, beta, p, bias) in [
            (
                Learner {
                    name: "rep",
                    basis: Some(&u),
                },
                beta.clone(),
                3,
                b,
            ),
            (
                Learner {
                    name: "none",
                    basis: None,
                },
                DVector::from_element(6, 0.3),
                6,
                0.0,
            ),
        ] {
            let n = p + 11;
            let cell = simulate_cell(&learner, 0, &beta, 0.5, n, 40_000, 11);
            let sample_sd = cell.se * (40_000f64).sqrt();
            let exact = excess_risk_variance(bias, 0.5, p, n).unwrap().sqrt();
            assert!(
                (sample_sd / exact - 1.0).abs() < 0.05,
                "{}: sample sd {sample_sd} vs exact {exact}",
                learner.name
            );
        }
        assert_eq!(excess_risk_variance(0.0, 1.0, 4, 7), None);
    }

    #[test]
    fn residual_matches_projection_complement() {
        let u = DMatrix::from_column_slice(3, 1, &[1.0, 0.0, 0.0]);
        let beta = DVector::from_vec(vec![1.0, 2.0, 2.0]);
        assert!((residual(&u, &beta) - 8.0).abs() < 1e-15);
        assert_eq!(excess_risk(0.0, 1.0, 3, 4), None);
        assert!((no_representation_risk(0.5, 10, 21).unwrap() - 0.25).abs() < 1e-15);
    }

    /// Closed forms at several parameter values, each computed by hand (or
    /// with exact rationals), two-sided, so that any changed operator or
    /// constant in the formulas shows.
    #[test]
    fn risk_formulas_match_hand_computed_values() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * b.abs().max(1e-300);
        // b + (sigma^2 + b) k / (n - k - 1).
        for (b, sigma, k, n, want) in [
            (0.1, 0.5, 4, 10, 0.1 + 0.35 * 4.0 / 5.0),
            (0.0, 1.0, 3, 5, 3.0),
            (0.2, 0.0, 1, 3, 0.4),
            (0.05, 2.0, 2, 20, 0.05 + 4.05 * 2.0 / 17.0),
        ] {
            let got = excess_risk(b, sigma, k, n).unwrap();
            assert!(
                close(got, want),
                "risk({b}, {sigma}, {k}, {n}) = {got}, want {want}"
            );
        }
        assert_eq!(excess_risk(0.1, 0.5, 4, 5), None);
        assert!(excess_risk(0.1, 0.5, 4, 6).is_some());
        // Variance: exact rationals (k = 1 also from chi-square moments:
        // Q = g^2 / chi2_n, Var Q = 3/((n-2)(n-4)) - 1/(n-2)^2).
        for (b, sigma, k, n, want) in [
            (0.2, 0.5, 4, 14, 0.037142857142857144),
            (0.0, 1.0, 3, 7, 4.0),
            (0.5, 0.25, 1, 5, 0.28125),
            (0.0, 0.5, 50, 60, 0.650352733686067),
        ] {
            let got = excess_risk_variance(b, sigma, k, n).unwrap();
            assert!(
                (got - want).abs() <= 1e-13 * want,
                "var({b}, {sigma}, {k}, {n}) = {got}, want {want}"
            );
            let sd = excess_risk_sd(b, sigma, k, n).unwrap();
            assert!((sd - want.sqrt()).abs() <= 1e-13 * want.sqrt());
        }
        assert_eq!(excess_risk_variance(0.0, 1.0, 3, 6), None);
        assert_eq!(excess_risk_sd(0.0, 1.0, 3, 6), None);
        // Large sigma: the sd stays finite (the variance would overflow).
        let sd = excess_risk_sd(0.0, 1e150, 3, 7).unwrap();
        assert!((sd / 2e300 - 1.0).abs() < 1e-14, "{sd}");
        assert_eq!(
            excess_risk(0.0, 1e150, 4, 10).unwrap(),
            1e150 * 1e150 * 4.0 / 5.0
        );
        // No representation: sigma^2 d / (n - d - 1).
        assert!(close(
            no_representation_risk(2.0, 3, 9).unwrap(),
            4.0 * 3.0 / 5.0
        ));
        assert_eq!(no_representation_risk(2.0, 3, 4), None);
        assert_eq!(
            no_representation_n_star(0.5, 10, 0.25),
            n_star(0.0, 0.5, 10, 0.25)
        );
        // sigma^2 = 0.25, d = 10: risk(n) = 2.5 / (n - 11) <= 0.25 iff n >= 21.
        assert_eq!(no_representation_n_star(0.5, 10, 0.25), Some(21));
    }

    #[test]
    fn n_star_is_exact_at_the_edges_and_for_huge_noise() {
        // k = 2, b = 0, sigma = 1, eps = 1: risk 2/(n-3) <= 1 iff n >= 5.
        assert_eq!(n_star(0.0, 1.0, 2, 1.0), Some(5));
        // risk(n) = 0.25 + 0.5 * 2/(n-3) <= 0.5 iff n >= 7 (exact in binary).
        assert_eq!(n_star(0.25, 0.5, 2, 0.5), Some(7));
        assert!(excess_risk(0.25, 0.5, 2, 7).unwrap() <= 0.5);
        assert!(excess_risk(0.25, 0.5, 2, 6).unwrap() > 0.5);
        // Never below k + 2, even when epsilon is huge.
        assert_eq!(n_star(0.0, 0.1, 3, 1e9), Some(5));
        // sigma = 1e7: n* about 4.4e15 (still exact in f64), reported.
        let n = n_star(0.05, 1e7, 4, 0.14).unwrap();
        let want = 5.0 + (1e14 + 0.05) * 4.0 / 0.09;
        assert!((n as f64 / want - 1.0).abs() < 1e-12, "{n} vs {want}");
        assert_eq!(n_star(0.0, 1e150, 4, 0.14), None);
        assert_eq!(n_star(f64::NAN, 0.5, 4, 0.14), None);
    }

    #[test]
    fn residual_is_exact_at_every_scale() {
        let u = DMatrix::from_column_slice(3, 1, &[0.6, 0.8, 0.0]);
        // beta = (3, 4, 12) t: U^T beta = 5 t, residual = (169 - 25) t^2 = 144 t^2.
        for t in [1.0, 1e-150, 1e150, 2e-153, 0.125] {
            let beta = DVector::from_vec(vec![3.0 * t, 4.0 * t, 12.0 * t]);
            let r = residual(&u, &beta);
            assert!((r / (144.0 * t * t) - 1.0).abs() < 1e-14, "t = {t}: {r}");
        }
        // Almost inside span(U): no cancellation against ||beta||^2.
        let beta = DVector::from_vec(vec![0.6, 0.8, 1e-9]);
        assert!((residual(&u, &beta) / 1e-18 - 1.0).abs() < 1e-6);
        assert_eq!(power_of_two_scale([0.0, -0.0]), 1.0);
        assert_eq!(power_of_two_scale([3.0, -5.0]), 4.0);
        assert_eq!(power_of_two_scale([0.75, f64::NAN]), 0.5);
        assert_eq!(
            residuals(&u, &[beta.clone(), beta])[1],
            residual(&u, &DVector::from_vec(vec![0.6, 0.8, 1e-9]))
        );
        assert_eq!(worst(&[0.2, 0.7, -1.0]), 0.7);
        let skew = DMatrix::from_column_slice(2, 2, &[1.0, 0.0, 0.5, 1.0]);
        assert_eq!(orthonormality_error(&skew), 0.5);
    }
}
