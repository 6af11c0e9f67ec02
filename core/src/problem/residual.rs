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
use rayon::prelude::*;

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

/// The stacked samples seen through one fixed right factor `Z` (computed
/// once): `W_i = fl(X_i Z)` and their Gram matrices, with the rounding of
/// both bounded. With `Z` the inverse of the triangular factor of the
/// stacked `X_i / sqrt(n_i)`, `B = A Z` is nearly orthonormal for the
/// weights the minimax method settles on, however collinear the features:
/// then `||P_A r|| = ||P_B r|| <= ||Z^T A^T r|| / sigma_min(B)` is the tight
/// form of the projection (it is `sqrt(h^T (A^T A)^{-1} h)` up to `B`'s
/// conditioning), where `||A^T r|| / sigma_min(A)` divides every direction
/// of `h = A^T r` by the smallest singular value.
#[derive(Debug, Clone)]
pub struct WhitenedGrams {
    z: DMatrix<f64>,
    /// An upper bound on `||Z||_F`.
    z_frobenius: f64,
    tasks: Vec<WhitenedTask>,
}

/// One task's part of [`WhitenedGrams`].
#[derive(Debug, Clone)]
pub struct WhitenedTask {
    /// `fl(W_i^T W_i)`.
    gram: DMatrix<f64>,
    /// Upper bound on `||gram - W_i^T W_i||_2`.
    gram_error: f64,
    /// Upper bound on `||gram||_F`.
    gram_frobenius: f64,
    /// Upper bound on `||W_i - X_i Z||_F`.
    product_error: f64,
}

impl WhitenedGrams {
    /// `Z` from the factors available (`None` for a task whose samples were
    /// not factored: its `W_i` still counts; `samples[i]` is n_i), then each
    /// task's `W_i` and Gram from `whiten(i, &Z, ||Z||_F)`, which calls
    /// [`whiten_task`] on task i's samples. `None` where no factor exists, `Z`
    /// is not finite or a task cannot be whitened.
    pub fn new<F>(factors: &[Option<TaskFactor>], samples: &[usize], whiten: F) -> Option<Self>
    where
        F: Fn(usize, &DMatrix<f64>, f64) -> Option<WhitenedTask> + Sync,
    {
        let present: Vec<(&TaskFactor, usize)> = factors
            .iter()
            .zip(samples)
            .filter_map(|(f, &n)| f.as_ref().map(|f| (f, n)))
            .collect();
        let d = present.first()?.0.r.nrows();
        let mut stacked = DMatrix::zeros(present.len().max(1) * d, d);
        for (k, (factor, n)) in present.iter().enumerate() {
            stacked
                .view_mut((k * d, 0), (d, d))
                .copy_from(&(&factor.r / (*n as f64).sqrt()));
        }
        let r0 = stacked.qr().r();
        let z = r0.solve_upper_triangular(&DMatrix::identity(d, d))?;
        if z.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let z_frobenius = norm_up(z.as_slice());
        let tasks = (0..factors.len())
            .into_par_iter()
            .map(|i| whiten(i, &z, z_frobenius))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            z,
            z_frobenius,
            tasks,
        })
    }

    /// An upper bound on `||P_A r_hat||` for the stacked `A = [sqrt(c_i)
    /// X_i]` and residual `r_hat = [sqrt(c_i) r_hat_i]`, given `h`, the
    /// computed `sum_i c_i X_i^T r_hat_i`, within `h_error` of the exact one.
    ///
    /// `||P_A r||^2 = g^T S^{-1} g` with `g = Z^T A^T r` and `S = B^T B`, `B =
    /// A Z`. For any `v` and `rho = g - S v`, `g^T S^{-1} g = v^T g + v^T rho +
    /// rho^T S^{-1} rho <= v^T g + ||v|| ||rho|| + ||rho||^2 / lambda_min(S)`,
    /// so `v` from a Cholesky solve with the computed `S` gives the tight value
    /// up to its residual, whatever the weights. `S`'s construction error
    /// (the rounding of `W_i`, their Grams and the weighted sum) enters
    /// through `||rho||` and `lambda_min`; `g`'s error through the triangle
    /// inequality in the `S^{-1}` norm. `None` where `S` is not certified
    /// positive definite.
    pub fn projection(&self, c: &[f64], h: &DVector<f64>, h_error: f64) -> Option<f64> {
        let d = self.z.nrows();
        let m = self.tasks.len();
        if c.len() != m || h.len() != d {
            return None;
        }
        let mut s = DMatrix::zeros(d, d);
        let (mut gram_error, mut gram_size, mut product_error2) = (0.0, 0.0, 0.0);
        for (task, &ci) in self.tasks.iter().zip(c) {
            if ci == 0.0 {
                continue;
            }
            s += &task.gram * ci;
            gram_error += ci * task.gram_error;
            gram_size += ci * task.gram_frobenius;
            product_error2 += ci * (task.product_error * task.product_error);
        }
        // fl(sum_i c_i G_i): one product and at most M additions per entry.
        let sum_error = round_up((gram_error + gamma(m + 1) * gram_size) * (1.0 + gamma(m + 2)));
        // ||B^T B - W^T W|| <= 2 ||B - W|| ||W|| + ||B - W||^2, W the stacked sqrt(c_i) W_i.
        let product_error = round_up((product_error2 * (1.0 + gamma(m + 2))).sqrt() * 1.01);
        let s_frobenius = norm_up(s.as_slice());
        let w_norm = round_up((s_frobenius + sum_error).sqrt() * 1.01);
        let s_error =
            round_up(sum_error + 2.0 * product_error * w_norm + product_error * product_error);
        let lambda = round_down(certified_smallest_eigenvalue(&s)? - s_error);
        if lambda.is_nan() || lambda <= 0.0 {
            return None;
        }
        // g = Z^T h_exact: ||g - fl(Z^T h)|| <= gamma_d ||Z||_F ||h|| + ||Z||_F h_error.
        let g = self.z.tr_mul(h);
        let h_norm = norm_up(h.as_slice());
        let g_error = round_up(
            gamma(d) * self.z_frobenius * h_norm
                + self.z_frobenius * h_error
                + (d * d) as f64 * UNDERFLOW_UNIT,
        );
        let v = s.clone().cholesky()?.solve(&g);
        let sv = &s * &v;
        let rho = &g - &sv;
        let (g_norm, v_norm) = (norm_up(g.as_slice()), norm_up(v.as_slice()));
        let rho_norm = round_up(
            norm_up(rho.as_slice())
                + gamma(d + 1) * (g_norm + s_frobenius * v_norm)
                + s_error * v_norm
                + (4 * d) as f64 * UNDERFLOW_UNIT,
        );
        let vg = round_up(v.dot(&g) + gamma(d) * v_norm * g_norm + d as f64 * UNDERFLOW_UNIT);
        let quadratic = round_up(vg + v_norm * rho_norm + (rho_norm / lambda) * rho_norm);
        if !(quadratic >= 0.0 && quadratic.is_finite()) {
            return None;
        }
        let lambda_sqrt = round_down(lambda.sqrt() * (1.0 - 2.0 * UNIT_ROUNDOFF));
        let upper =
            round_up(quadratic.sqrt() * (1.0 + 2.0 * UNIT_ROUNDOFF) + g_error / lambda_sqrt);
        upper.is_finite().then_some(upper)
    }
}

/// `W = fl(X Z)` and its Gram, with their rounding bounded (any summation
/// order, with or without FMA: `|fl(X Z) - X Z| <= gamma_d |X| |Z|`), for
/// the samples as columns (`xt` is d x n, `X = xt^T`) and `x_frobenius` an
/// upper bound on `||X||_F`.
pub fn whiten_task(
    xt: DMatrixView<'_, f64>,
    x_frobenius: f64,
    z: &DMatrix<f64>,
    z_frobenius: f64,
) -> Option<WhitenedTask> {
    let (d, n) = xt.shape();
    if z.nrows() != d || xt.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let w = xt.tr_mul(z);
    let gram = w.tr_mul(&w);
    let w_frobenius = norm_up(w.as_slice());
    let task = WhitenedTask {
        gram_error: round_up(
            gamma(n) * w_frobenius * w_frobenius + (n * d) as f64 * UNDERFLOW_UNIT,
        ),
        gram_frobenius: norm_up(gram.as_slice()),
        product_error: round_up(
            gamma(d) * x_frobenius * z_frobenius + (n * d) as f64 * UNDERFLOW_UNIT,
        ),
        gram,
    };
    (task.gram_error.is_finite()
        && task.product_error.is_finite()
        && task.gram_frobenius.is_finite())
    .then_some(task)
}

/// A certified lower bound on the smallest eigenvalue of the symmetric `s`
/// (Rump's shifted Cholesky): a completed factorisation `L L^T` of
/// `fl(s - t I)` has `||L L^T - fl(s - t I)||_2 <= gamma_{d+1} ||L||_F^2`
/// (Demmel), so `lambda_min(s) >= t - gamma_{d+1} ||L||_F^2 - u max_j |s_jj
/// - t|`. The shift `t` comes from an eigenvalue estimate, lowered until the
/// factorisation completes. `None` where no shift above 0 works.
pub fn certified_smallest_eigenvalue(s: &DMatrix<f64>) -> Option<f64> {
    let d = s.nrows();
    if d == 0 || s.ncols() != d || s.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let estimate = s.clone().symmetric_eigen().eigenvalues.min();
    if estimate.is_nan() || estimate <= 0.0 {
        return None;
    }
    for fraction in [0.99, 0.9, 0.5] {
        let shift = estimate * fraction;
        let mut shifted = s.clone();
        let mut diagonal = 0.0f64;
        for j in 0..d {
            shifted[(j, j)] -= shift;
            diagonal = diagonal.max(shifted[(j, j)].abs());
        }
        let Some(cholesky) = shifted.cholesky() else {
            continue;
        };
        let l = cholesky.l();
        let l_frobenius = norm_up(l.as_slice());
        let slack = round_up(
            gamma(d + 1) * l_frobenius * l_frobenius
                + UNIT_ROUNDOFF * diagonal * (1.0 + UNIT_ROUNDOFF)
                + (8 * d * d) as f64 * UNDERFLOW_UNIT,
        );
        let lower = round_down(shift - slack);
        if lower > 0.0 {
            return Some(lower);
        }
    }
    None
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
    fn the_certified_smallest_eigenvalue_is_below_the_true_one_and_close() {
        for (seed, smallest) in [(10, 1.0), (11, 1e-6), (12, 1e-12)] {
            // Q diag(smallest, 1, 2, 3) Q^T with Q from a QR.
            let q = random(4, 4, seed).qr().q();
            let diagonal =
                DMatrix::from_diagonal(&DVector::from_vec(vec![smallest, 1.0, 2.0, 3.0]));
            let s = &q * diagonal * q.transpose();
            let s = (&s + s.transpose()) * 0.5;
            let exact = s.clone().symmetric_eigen().eigenvalues.min();
            let certified = certified_smallest_eigenvalue(&s).unwrap();
            // The eigensolver is accurate to about u ||S||.
            assert!(certified <= exact + 1e-14, "{certified} > {exact}");
            assert!(
                certified >= 0.98 * exact - 1e-14,
                "{certified} far below {exact}"
            );
        }
        let indefinite = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert_eq!(certified_smallest_eigenvalue(&indefinite), None);
    }

    #[test]
    fn the_whitened_projection_bounds_the_exact_one_tightly() {
        // Two tasks sharing a nearly collinear pair of features.
        let make = |seed| {
            let mut x = random(25, 3, seed);
            let noise = random(25, 1, seed + 50);
            for i in 0..25 {
                x[(i, 1)] = x[(i, 0)] + 1e-9 * noise[(i, 0)];
            }
            x
        };
        let xs = [make(20), make(21)];
        let y = DVector::zeros(25);
        let factors: Vec<Option<TaskFactor>> = xs
            .iter()
            .map(|x| factor_task(x.as_view(), y.as_view()))
            .collect();
        let whitened = WhitenedGrams::new(&factors, &[25, 25], |i, z, zf| {
            let xt = xs[i].transpose();
            whiten_task(xt.as_view(), norm_up(xs[i].as_slice()), z, zf)
        })
        .unwrap();
        let c = [0.3 / 25.0, 0.7 / 25.0];
        // A residual with a component in the range of A and one outside it.
        let r: Vec<DVector<f64>> = (0..2)
            .map(|i| random(25, 1, 30 + i).column(0).into_owned())
            .collect();
        let h = xs[0].tr_mul(&r[0]) * c[0] + xs[1].tr_mul(&r[1]) * c[1];
        let claimed = whitened.projection(&c, &h, 0.0).unwrap();
        // The exact ||P_A r|| from the SVD of the stacked A.
        let mut a = DMatrix::zeros(50, 3);
        let mut stacked_r = DVector::zeros(50);
        for i in 0..2 {
            a.view_mut((25 * i, 0), (25, 3))
                .copy_from(&(&xs[i] * c[i].sqrt()));
            stacked_r
                .rows_mut(25 * i, 25)
                .copy_from(&(&r[i] * c[i].sqrt()));
        }
        let u = a.clone().svd(true, false).u.unwrap();
        let projected = u.tr_mul(&stacked_r).norm();
        // Above the exact projection (its SVD is accurate to about u kappa
        // relative here), and within 1e-4 of it: sigma_min(A) alone would give
        // ||h|| / sigma_min(A), many times larger.
        assert!(
            claimed >= projected * (1.0 - 1e-6),
            "{claimed} < {projected}"
        );
        assert!(
            claimed <= projected * (1.0 + 1e-4),
            "{claimed} far above {projected}"
        );
        let svd = a.svd(false, true);
        let sigma_min = svd.singular_values.min();
        assert!(h.norm() / sigma_min > 100.0 * projected);
        // An error e in h is charged in full: the bound for (h, e) covers
        // every h' within e of h, the worst along the smallest singular
        // direction, where ||P_A r'|| = ||Sigma^-1 V^T h'||.
        let error = sigma_min * projected;
        let v_t = svd.v_t.unwrap();
        let weakest = (0..3)
            .min_by(|&i, &j| svd.singular_values[i].total_cmp(&svd.singular_values[j]))
            .unwrap();
        let shifted = &h + v_t.row(weakest).transpose() * error;
        let worst = DVector::from_fn(3, |i, _| {
            v_t.row(i).dot(&shifted.transpose()) / svd.singular_values[i]
        })
        .norm();
        let charged = whitened.projection(&c, &h, error).unwrap();
        assert!(charged >= worst * (1.0 - 1e-6), "{charged} < {worst}");
        // The error is charged through ||Z||_F / sqrt(lambda_min(S)), above
        // 1/sigma_min(A) by B's conditioning under these unequal weights.
        assert!(
            charged <= (projected + error / sigma_min) * 1.1,
            "{charged} far above"
        );
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
