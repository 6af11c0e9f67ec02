//! The residual certificate for least squares: a lower bound on
//! `min_theta sum_i p_i ||X_i theta - y_i||^2 / (2 n_i)` that stays tight when
//! the features are nearly collinear, where the Gram route cannot certify any
//! curvature (it squares the condition number).
//!
//! With `A` the stacked `sqrt(p_i / n_i) X_i` and `r = A theta - b` the
//! stacked residual at any theta, the minimum is exactly `1/2 ||(I - P_A) r||^2`
//! (`P_A` the projector onto the range of A). For the computed residual `r_hat`
//! (with `||r - r_hat|| <= E`),
//!
//! `||(I - P_A) r|| >= sqrt(||r_hat||^2 - ||P_A r_hat||^2) - E`, and
//! `||P_A r_hat|| <= ||A^T r_hat|| / sigma_min(A)`,
//!
//! where `sigma_min(A)^2 = lambda_min(sum_i p_i X_i^T X_i / n_i) >= sum_i p_i
//! sigma_min(X_i)^2 / n_i` (lambda_min is concave). The error E of the
//! residual enters once, not divided by sigma_min: that is what keeps the
//! bound from collapsing at condition numbers up to about 1e13. Each
//! `sigma_min(X_i)` is certified by [`certified_smallest_singular_value`],
//! which never forms `X_i^T X_i`.

use crate::problem::certificate::{norm_up, round_down};
use crate::problem::numerics::{gamma, round_up, UNDERFLOW_UNIT, UNIT_ROUNDOFF};
use nalgebra::{DMatrix, DMatrixView, DVector, DVectorView};

/// One task's samples factored once: `X = Q R` (Householder), `Q^T y`'s
/// first d entries, and a certified lower bound on `sigma_min(X)`.
#[derive(Debug, Clone)]
pub struct TaskFactor {
    /// The d x d triangular factor.
    pub r: DMatrix<f64>,
    /// The first d entries of `Q^T y`.
    pub qty: DVector<f64>,
    /// A certified lower bound on `sigma_min(X)`; `None` where none above
    /// zero can be certified (see [`certified_smallest_singular_value`]).
    pub sigma: Option<f64>,
}

/// Factors one task's samples (`x` is n x d with n >= d; `None` otherwise
/// or where the data are not finite).
pub fn factor_task(x: DMatrixView<'_, f64>, y: DVectorView<'_, f64>) -> Option<TaskFactor> {
    let (n, d) = x.shape();
    if n < d || d == 0 || y.len() != n || x.iter().chain(y.iter()).any(|v| !v.is_finite()) {
        return None;
    }
    let qr = x.clone_owned().qr();
    let mut qty = y.clone_owned();
    qr.q_tr_mul(&mut qty);
    let r = qr.r();
    let sigma = certified_smallest_singular_value(x, &r);
    Some(TaskFactor {
        r,
        qty: qty.rows(0, d).into_owned(),
        sigma,
    })
}

/// The minimiser of `sum_i c_i ||X_i theta - y_i||^2` from the tasks' QR
/// factors: QR of the stacked `sqrt(c_i) [R_i, Q_i^T y_i]` (backward stable,
/// so nearly collinear features do not lose what a Gram matrix would). Any
/// point is valid for the certificate; this one makes it tight.
pub fn weighted_least_squares_point(factors: &[(&TaskFactor, f64)]) -> Option<DVector<f64>> {
    let d = factors.first()?.0.r.nrows();
    let mut stacked = DMatrix::zeros(factors.len() * d, d + 1);
    for (k, (factor, c)) in factors.iter().enumerate() {
        let scale = c.sqrt();
        stacked
            .view_mut((k * d, 0), (d, d))
            .copy_from(&(&factor.r * scale));
        stacked
            .view_mut((k * d, d), (d, 1))
            .copy_from(&(&factor.qty * scale));
    }
    if stacked.nrows() < d + 1 {
        // Fewer rows than unknowns plus one: pad (zero rows change nothing).
        stacked = stacked.resize_vertically(d + 1, 0.0);
    }
    let r = stacked.qr().r();
    let theta = r
        .view((0, 0), (d, d))
        .into_owned()
        .solve_upper_triangular(&r.view((0, d), (d, 1)).into_owned())?;
    theta
        .iter()
        .all(|v| v.is_finite())
        .then(|| theta.column(0).into_owned())
}

/// A certified lower bound on the smallest singular value of `x` (n x d,
/// n >= d) given `r`, the triangular factor of any QR of it (or any
/// invertible d x d matrix near one), or `None` where none above zero can be
/// certified (rank deficient to working precision, a singular `r`).
///
/// `Z`, the computed inverse of `r`, makes `M = fl(X Z)` nearly orthonormal
/// whatever the conditioning of X. Then `sigma_min(X) >= sigma_min(X Z) /
/// ||Z||_2`, `sigma_min(X Z)` is at least `sigma_min(M) - ||M - X Z||` with
/// `|M - X Z| <= gamma_d |X| |Z|`, and `sigma_min(M)^2` is at least
/// Gershgorin's bound on `fl(M^T M)` less `gamma_n ||M||_F^2`. Every step is a
/// textbook rounding bound; no constant of the QR's backward error is needed,
/// since `Z` is any matrix (only `M` is checked).
pub fn certified_smallest_singular_value(x: DMatrixView<'_, f64>, r: &DMatrix<f64>) -> Option<f64> {
    let (n, d) = x.shape();
    if n < d || d == 0 || r.shape() != (d, d) || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let z = r.solve_upper_triangular(&DMatrix::identity(d, d))?;
    if z.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let m = x * &z;
    let gram = m.tr_mul(&m);
    if gram.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Gershgorin on the computed Gram of M, rounded against us.
    let mut gershgorin = f64::INFINITY;
    for j in 0..d {
        let off: f64 = (0..d).filter(|&k| k != j).map(|k| gram[(k, j)].abs()).sum();
        let disc = gram[(j, j)] * (1.0 - UNIT_ROUNDOFF) - off * (1.0 + gamma(d));
        gershgorin = gershgorin.min(disc);
    }
    let m_frobenius = norm_up(m.as_slice());
    let gram_error =
        round_up(gamma(n) * m_frobenius * m_frobenius + (n * d) as f64 * UNDERFLOW_UNIT);
    let lambda = round_down(gershgorin - gram_error);
    if lambda.is_nan() || lambda <= 0.0 {
        return None;
    }
    let sigma_m = round_down(lambda.sqrt() * (1.0 - 2.0 * UNIT_ROUNDOFF));
    let product_error = round_up(
        gamma(d) * norm_up(x.clone_owned().as_slice()) * norm_up(z.as_slice())
            + (n * d) as f64 * UNDERFLOW_UNIT,
    );
    let sigma_xz = round_down(sigma_m - product_error);
    if sigma_xz.is_nan() || sigma_xz <= 0.0 {
        return None;
    }
    let sigma = round_down(sigma_xz / norm_up(z.as_slice()));
    (sigma > 0.0 && sigma.is_finite()).then_some(sigma)
}

/// The residual bound `1/2 (sqrt(R2 - h^2 / S2) - E)_+^2`, rounded down,
/// from certified pieces (see the module docs): `residual_sq_lower` at most
/// `||r_hat||^2`, `projected_upper` at least `||A^T r_hat||`,
/// `curvature_lower` at most `sigma_min(A)^2` and `residual_error` at least
/// `||r - r_hat||`. 0 where the pieces certify nothing better (the
/// least-squares floor).
pub fn residual_bound(
    residual_sq_lower: f64,
    projected_upper: f64,
    curvature_lower: f64,
    residual_error: f64,
) -> f64 {
    if curvature_lower.is_nan() || curvature_lower <= 0.0 || !residual_sq_lower.is_finite() {
        return 0.0;
    }
    let projected = round_up((projected_upper / curvature_lower) * projected_upper);
    let inner = round_down(residual_sq_lower - projected);
    if inner.is_nan() || inner <= 0.0 {
        return 0.0;
    }
    let reach = round_down(round_down(inner.sqrt() * (1.0 - 2.0 * UNIT_ROUNDOFF)) - residual_error);
    if reach.is_nan() || reach <= 0.0 {
        return 0.0;
    }
    round_down(0.5 * reach * reach * (1.0 - 4.0 * UNIT_ROUNDOFF)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, d: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        DMatrix::from_fn(n, d, |_, _| rng.random_range(-1.0..1.0))
    }

    #[test]
    fn the_certified_smallest_singular_value_is_below_the_true_one_and_close() {
        for (seed, eps) in [(1, 1.0), (2, 1e-4), (3, 1e-8), (4, 1e-11)] {
            // Column 1 = column 0 + eps * noise: sigma_min about eps.
            let mut x = random(40, 4, seed);
            let noise = random(40, 1, seed + 100);
            for i in 0..40 {
                x[(i, 1)] = x[(i, 0)] + eps * noise[(i, 0)];
            }
            let exact = x.clone().svd(false, false).singular_values.min();
            let certified = factor_task(x.as_view(), DVector::zeros(40).as_view())
                .unwrap()
                .sigma
                .unwrap();
            // nalgebra's SVD is accurate to about u ||X|| in absolute terms.
            let svd_error = 1e-14 * x.norm();
            assert!(
                certified <= exact + svd_error,
                "eps {eps}: {certified} > {exact}"
            );
            // ||Z||_F stands for ||Z||_2: up to sqrt(d) loose where X is well
            // conditioned, tight where one direction dominates (the case it
            // is for).
            let slack = if eps == 1.0 { 2.0 } else { 1.0 + 1e-3 };
            assert!(
                certified >= exact / slack - svd_error,
                "eps {eps}: {certified} far below {exact}"
            );
        }
    }

    #[test]
    fn rank_deficient_or_wide_data_certify_nothing() {
        let mut x = random(30, 3, 5);
        for i in 0..30 {
            x[(i, 2)] = 2.0 * x[(i, 0)] - x[(i, 1)];
        }
        let factor = factor_task(x.as_view(), DVector::zeros(30).as_view()).unwrap();
        assert_eq!(factor.sigma, None);
        assert!(factor_task(random(2, 5, 6).as_view(), DVector::zeros(2).as_view()).is_none());
        let mut nan = random(10, 2, 7);
        nan[(3, 1)] = f64::NAN;
        assert!(factor_task(nan.as_view(), DVector::zeros(10).as_view()).is_none());
    }

    #[test]
    fn the_weighted_point_solves_the_stacked_least_squares_problem() {
        let (x1, x2) = (random(20, 3, 8), random(15, 3, 9));
        let (y1, y2) = (
            DVector::from_element(20, 1.0),
            DVector::from_fn(15, |i, _| i as f64),
        );
        let (f1, f2) = (
            factor_task(x1.as_view(), y1.as_view()).unwrap(),
            factor_task(x2.as_view(), y2.as_view()).unwrap(),
        );
        let theta = weighted_least_squares_point(&[(&f1, 0.25), (&f2, 2.0)]).unwrap();
        // The normal equations: sum_i c_i X_i^T (X_i theta - y_i) = 0.
        let g = x1.tr_mul(&(&x1 * &theta - &y1)) * 0.25 + x2.tr_mul(&(&x2 * &theta - &y2)) * 2.0;
        assert!(g.norm() < 1e-12 * (1.0 + theta.norm()), "{}", g.norm());
    }

    #[test]
    fn the_residual_bound_is_the_formula_rounded_down() {
        // R2 = 4, h = 1, S2 = 1, E = 0.5: 1/2 (sqrt(3) - 0.5)^2.
        let exact = 0.5 * (3f64.sqrt() - 0.5).powi(2);
        let b = residual_bound(4.0, 1.0, 1.0, 0.5);
        assert!(b <= exact && b >= exact * (1.0 - 1e-12), "{b} vs {exact}");
        // The projection or the residual error can use up the whole residual.
        assert_eq!(residual_bound(4.0, 2.0, 1.0, 0.0), 0.0);
        assert_eq!(residual_bound(4.0, 0.0, 1.0, 2.0), 0.0);
        assert_eq!(residual_bound(4.0, 1.0, 0.0, 0.0), 0.0);
        assert_eq!(residual_bound(f64::NAN, 1.0, 1.0, 0.0), 0.0);
    }
}
