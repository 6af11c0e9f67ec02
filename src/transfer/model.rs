//! The linear-regression transfer model: exact downstream excess risk, the
//! sample size needed to reach a target risk, and the upstream losses of a
//! representation (docs/THEORY.md, "Transfer").
//!
//! x ~ N(0, I_d), y = x^T beta + eps with eps ~ N(0, sigma^2). A representation
//! is U (d x k, orthonormal columns), P = U U^T; the downstream learner is OLS
//! of y on z = U^T x with n samples and predicts with U w_hat.

use nalgebra::{DMatrix, DVector};

/// Residual (bias) of a task under a representation: `b = ||(I - U U^T) beta||^2`.
///
/// Computed as `||beta - U (U^T beta)||^2` rather than `||beta||^2 - ||U^T beta||^2`,
/// which would cancel catastrophically when the task lies almost in span(U).
pub fn residual(basis: &DMatrix<f64>, beta: &DVector<f64>) -> f64 {
    let coefficients = basis.tr_mul(beta);
    (beta - basis * coefficients).norm_squared()
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

/// Exact variance of the excess risk of OLS on k Gaussian features with noise
/// variance `sigma^2 + b` (n >= k + 4; infinite below).
///
/// The excess is `b + s Q`, `s = sigma^2 + b`, `Q = g^T W^{-1} g` with
/// `W ~ Wishart_k(n, I)` and g ~ N(0, I_k) independent, so
/// `Var Q = 2 E tr(W^{-2}) + Var tr(W^{-1})`. With `m = n - k`, the
/// inverse-Wishart moments (Press 1982) give, for `D = m (m-1)^2 (m-3)`,
/// `Var tr(W^{-1}) = (2 k^2 + 2 k (m - 1)) / D` and
/// `E tr(W^{-2}) = (k (k-1) (m-1) + 2 k m) / D + k / (m-1)^2`.
pub fn excess_risk_variance(bias: f64, sigma: f64, k: usize, n: usize) -> Option<f64> {
    if n < k + 4 {
        return None;
    }
    let (k, m) = (k as f64, (n - k) as f64);
    let d = m * (m - 1.0) * (m - 1.0) * (m - 3.0);
    let var_trace = (2.0 * k * k + 2.0 * k * (m - 1.0)) / d;
    let mean_trace_sq = (k * (k - 1.0) * (m - 1.0) + 2.0 * k * m) / d + k / ((m - 1.0) * (m - 1.0));
    let s = sigma * sigma + bias;
    Some(s * s * (2.0 * mean_trace_sq + var_trace))
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
    if !needed.is_finite() || needed > 1e15 {
        return None;
    }
    let mut n = (k + 1 + needed as usize).max(k + 2);
    // ceil of a rounded quotient can land one off: settle it against the formula.
    while n > k + 2 && excess_risk(bias, sigma, k, n - 1).is_some_and(|r| r <= epsilon) {
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

/// Population upstream loss of a representation on one task:
/// `E (y - x^T P beta)^2 = sigma^2 + beta^T (I - P) beta` (linear in P).
pub fn upstream_loss(basis: &DMatrix<f64>, beta: &DVector<f64>, sigma: f64) -> f64 {
    sigma * sigma + residual(basis, beta)
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
        assert!((upstream_loss(&u, &beta, 0.5) - 8.25).abs() < 1e-15);
        assert_eq!(excess_risk(0.0, 1.0, 3, 4), None);
        assert!((no_representation_risk(0.5, 10, 21).unwrap() - 0.25).abs() < 1e-15);
    }
}
