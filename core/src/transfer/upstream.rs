//! Upstream (pre-training) losses of a representation, as linear functions of
//! the projector P = U U^T:  `f_i(P) = c_i - <M_i, P>`, *less the noise
//! level sigma^2* (the same for every task and every P, so it changes neither
//! the minimax problem nor its weights). Keeping sigma^2 out means nothing
//! ever adds sigma^2 to a residual and subtracts it again: with sigma = 1e7
//! that would leave no digits of a residual of 0.05.
//!
//! - Population: `c_i = ||beta_i||^2`, `M_i = beta_i beta_i^T`, so
//!   `f_i(P) = beta_i^T (I - P) beta_i = E (y - x^T P beta_i)^2 - sigma^2`.
//! - Finite sample (n_up pairs (x_a, y_a) per task): plug in unbiased
//!   estimates, `c_i = mean_a y_a^2 - sigma^2`, computed from its parts
//!   `mean_a (s_a^2 + 2 sigma s_a eps_a + sigma^2 (eps_a^2 - 1))` with
//!   `s_a = x_a^T beta_i` (no cancellation), and the order-2 U-statistic
//!   `M_i = 1/(n(n-1)) sum_{a != b} y_a y_b x_a x_b^T`
//!   `    = (n^2 bh bh^T - sum_a y_a^2 x_a x_a^T) / (n(n-1))`, `bh = X^T y / n`.
//!   Since E[y x] = beta for isotropic x, `E M_i = beta_i beta_i^T` and the
//!   estimated loss is unbiased for every fixed P. It stays linear in P, so the
//!   Fantope relaxation, its Ky Fan dual and the average solution keep their
//!   form. (Plain `bh bh^T` would be biased by `Cov(bh)`, which inflates the
//!   apparent weight of noisy tasks.)

use super::seed::rng_for;
use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::StandardNormal;

/// The M linear upstream losses, as constants and symmetric matrices.
#[derive(Debug, Clone)]
pub struct UpstreamLosses {
    /// `c_i` (`E y^2 - sigma^2 = ||beta_i||^2` or its estimate).
    pub constants: Vec<f64>,
    /// `M_i` (beta beta^T or its unbiased estimate), symmetric d x d.
    pub matrices: Vec<DMatrix<f64>>,
    /// Samples per task (`None`: population losses).
    pub n_up: Option<usize>,
    /// `M_i = V_i diag(lambda_i) V_i^T` without its (numerically) zero
    /// eigenvalues: rank one for population losses, so the rank-k solver
    /// costs O(d k) per task instead of O(d^2 k).
    factors: Vec<(DMatrix<f64>, Vec<f64>)>,
}

/// Eigen-factors of a symmetric matrix, dropping eigenvalues below
/// `1e-13 * max |lambda|` in magnitude.
fn factorise(m: &DMatrix<f64>) -> (DMatrix<f64>, Vec<f64>) {
    let (values, vectors) = super::spectral::sorted_eigen(m);
    let largest = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let keep: Vec<usize> = (0..values.len())
        .filter(|&j| values[j].abs() > 1e-13 * largest)
        .collect();
    let v = DMatrix::from_fn(m.nrows(), keep.len(), |i, j| vectors[(i, keep[j])]);
    (v, keep.iter().map(|&j| values[j]).collect())
}

impl UpstreamLosses {
    /// Exact (population) losses, less sigma^2: the residuals `beta_i^T (I - P) beta_i`.
    pub fn population(tasks: &[DVector<f64>]) -> Self {
        let factors = tasks
            .iter()
            .map(|b| {
                let norm = b.norm();
                if norm > 0.0 {
                    (
                        DMatrix::from_column_slice(b.len(), 1, (b / norm).as_slice()),
                        vec![norm * norm],
                    )
                } else {
                    (DMatrix::zeros(b.len(), 0), Vec::new())
                }
            })
            .collect();
        Self {
            constants: tasks.iter().map(|b| b.norm_squared()).collect(),
            matrices: tasks.iter().map(|b| b * b.transpose()).collect(),
            n_up: None,
            factors,
        }
    }

    /// Losses estimated from `n_up >= 2` Gaussian samples per task; task i's
    /// samples come from the stream `(seed, 0x55, i)`.
    pub fn sampled(tasks: &[DVector<f64>], sigma: f64, n_up: usize, seed: u64) -> Self {
        assert!(n_up >= 2, "the U-statistic needs at least two samples");
        let n = n_up as f64;
        let mut constants = Vec::with_capacity(tasks.len());
        let mut matrices = Vec::with_capacity(tasks.len());
        for (i, beta) in tasks.iter().enumerate() {
            let d = beta.len();
            let mut rng = rng_for(&[seed, 0x55, i as u64]);
            let mut sum_xy = DVector::<f64>::zeros(d);
            let mut sum_weighted = DMatrix::<f64>::zeros(d, d);
            // y^2 - sigma^2 = s^2 + 2 sigma s eps + sigma^2 (eps^2 - 1), s = x^T beta.
            let (mut sum_s2, mut sum_s_noise, mut sum_noise_excess) = (0.0, 0.0, 0.0);
            let mut x = DVector::<f64>::zeros(d);
            for _ in 0..n_up {
                for v in x.iter_mut() {
                    *v = rng.sample(StandardNormal);
                }
                let noise: f64 = rng.sample(StandardNormal);
                let signal = x.dot(beta);
                let y = signal + sigma * noise;
                sum_s2 += signal * signal;
                sum_s_noise += signal * noise;
                sum_noise_excess += noise * noise - 1.0;
                sum_xy.axpy(y, &x, 1.0);
                sum_weighted.ger(y * y, &x, &x, 1.0);
            }
            let mut m = (&sum_xy * sum_xy.transpose() - sum_weighted) / (n * (n - 1.0));
            m = (&m + m.transpose()) * 0.5;
            constants.push(
                (sum_s2 + 2.0 * sigma * sum_s_noise + sigma * (sigma * sum_noise_excess)) / n,
            );
            matrices.push(m);
        }
        let factors = matrices.iter().map(factorise).collect();
        Self {
            constants,
            matrices,
            n_up: Some(n_up),
            factors,
        }
    }

    /// M: the number of tasks.
    pub fn num_tasks(&self) -> usize {
        self.constants.len()
    }

    /// d: the dimension (0 without tasks).
    pub fn dim(&self) -> usize {
        self.matrices.first().map_or(0, |m| m.nrows())
    }

    /// `f_i(U) = c_i - tr(U^T M_i U)` for a basis with orthonormal columns.
    pub fn losses_at_basis(&self, basis: &DMatrix<f64>) -> Vec<f64> {
        self.constants
            .iter()
            .zip(&self.factors)
            .map(|(c, (v, lambda))| {
                let projected = v.tr_mul(basis); // r x k
                let captured: f64 = projected
                    .row_iter()
                    .zip(lambda)
                    .map(|(row, l)| l * row.norm_squared())
                    .sum();
                c - captured
            })
            .collect()
    }

    /// `M_i U` for one task, through its factors.
    pub fn task_times_basis(&self, task: usize, basis: &DMatrix<f64>) -> DMatrix<f64> {
        let (v, lambda) = &self.factors[task];
        let mut projected = v.tr_mul(basis);
        for (mut row, l) in projected.row_iter_mut().zip(lambda) {
            row *= *l;
        }
        v * projected
    }

    /// `(sum_i w_i M_i) U`, through the factors.
    pub fn weighted_times_basis(&self, weights: &[f64], basis: &DMatrix<f64>) -> DMatrix<f64> {
        let mut out = DMatrix::zeros(basis.nrows(), basis.ncols());
        for (i, w) in weights.iter().enumerate() {
            if *w != 0.0 {
                out += self.task_times_basis(i, basis) * *w;
            }
        }
        out
    }

    /// `f_i(P) = c_i - <M_i, P>` for any d x d matrix.
    pub fn losses_at_matrix(&self, p: &DMatrix<f64>) -> Vec<f64> {
        self.constants
            .iter()
            .zip(&self.matrices)
            .map(|(c, m)| c - m.dot(p))
            .collect()
    }

    /// `sum_i w_i M_i`.
    pub fn weighted_matrix(&self, weights: &[f64]) -> DMatrix<f64> {
        let d = self.dim();
        let mut a = DMatrix::<f64>::zeros(d, d);
        for (w, m) in weights.iter().zip(&self.matrices) {
            if *w != 0.0 {
                a += m * *w;
            }
        }
        a
    }

    /// `sum_i w_i c_i`.
    pub fn weighted_constant(&self, weights: &[f64]) -> f64 {
        weights
            .iter()
            .zip(&self.constants)
            .map(|(w, c)| w * c)
            .sum()
    }

    /// Largest `||M_i||_F`: the scale of the losses' variation over the Fantope.
    pub fn scale(&self) -> f64 {
        self.matrices.iter().map(|m| m.norm()).fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_losses_are_unbiased_on_average() {
        // Averaging the estimate over many seeds recovers beta beta^T and E y^2.
        let beta = DVector::from_vec(vec![1.0, -0.5, 0.25]);
        let tasks = vec![beta.clone()];
        let truth = UpstreamLosses::population(&tasks);
        let reps = 400;
        let mut mean_m = DMatrix::<f64>::zeros(3, 3);
        let mut mean_c = 0.0;
        for s in 0..reps {
            let est = UpstreamLosses::sampled(&tasks, 0.5, 20, s);
            mean_m += &est.matrices[0] / reps as f64;
            mean_c += est.constants[0] / reps as f64;
        }
        // Entry-wise sd of one estimate is about ||beta||^2 sqrt(2 / n) ~ 0.4, so
        // the mean over 400 has sd ~ 0.02; allow 5 sd.
        assert!((&mean_m - &truth.matrices[0]).amax() < 0.1, "{mean_m}");
        assert!((mean_c - truth.constants[0]).abs() < 0.1);
    }

    #[test]
    fn factored_products_match_dense_ones() {
        let tasks = vec![
            DVector::from_vec(vec![1.0, -0.5, 0.25]),
            DVector::from_vec(vec![0.0, 2.0, 1.0]),
        ];
        let u = DMatrix::from_column_slice(3, 2, &[0.6, 0.8, 0.0, 0.0, 0.0, 1.0]);
        for losses in [
            UpstreamLosses::population(&tasks),
            UpstreamLosses::sampled(&tasks, 0.5, 30, 1),
        ] {
            let w = [0.3, 0.7];
            let dense = losses.weighted_matrix(&w) * &u;
            assert!((losses.weighted_times_basis(&w, &u) - dense).amax() < 1e-12);
            let p = &u * u.transpose();
            for (a, b) in losses
                .losses_at_basis(&u)
                .iter()
                .zip(losses.losses_at_matrix(&p))
            {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn losses_at_basis_equal_population_formula() {
        let tasks = vec![DVector::from_vec(vec![1.0, 2.0, 2.0])];
        let losses = UpstreamLosses::population(&tasks);
        let u = DMatrix::from_column_slice(3, 1, &[1.0, 0.0, 0.0]);
        let p = &u * u.transpose();
        assert!((losses.losses_at_basis(&u)[0] - 8.0).abs() < 1e-12);
        assert!((losses.losses_at_matrix(&p)[0] - 8.0).abs() < 1e-12);
    }
}
