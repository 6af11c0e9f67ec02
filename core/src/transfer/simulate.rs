//! Monte Carlo of the downstream learner: OLS with n samples for every
//! (method, task, n) cell, R replicates each.
//!
//! Fast path (a representation U, d x k): for Gaussian x, z = U^T x ~ N(0, I_k)
//! and the part of y outside span(U), `x^T (I - U U^T) beta + eps`, is
//! N(0, sigma^2 + b) and *independent* of z (it depends on (I - U U^T) x,
//! which is independent of U^T x for isotropic Gaussian x). So sampling
//! `y = z^T (U^T beta) + r`, `r ~ N(0, sigma^2 + b)`, has exactly the law of
//! the d-dimensional experiment, at O(n k) instead of O(n d) per replicate.
//! The excess risk of a fit w is `||U w - beta||^2 = ||w - U^T beta||^2 + b`
//! (isotropic x), so no test set is needed. `direct_replicate` runs the
//! d-dimensional experiment itself; a test checks that both agree.
//!
//! No representation (OLS on all d coordinates, the costly cells): the error
//! depends on the design only through `X^T X`, which is sampled directly
//! (Bartlett decomposition, [`wishart_replicate`]); a test compares it with
//! OLS on d-dimensional data.
//!
//! Determinism: every cell draws from its own stream seeded by
//! (seed, stream, task, n) and runs its replicates in order, and rayon's
//! ordered collect keeps cells in order, so results are bit-identical for any
//! thread count. Average and minimax share the stream of a (task, n) cell
//! (common random numbers: their difference is measured with less noise);
//! `none` (d-dimensional OLS) has its own.

use super::model::{excess_risk, excess_risk_sd, power_of_two_scale, residual};
use super::seed::rng_for;
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A downstream learner to simulate: OLS on U^T x, or on x itself (`basis = None`).
#[derive(Debug, Clone)]
pub struct Learner<'a> {
    /// The learner's name, as [`Cell::method`].
    pub name: &'a str,
    /// U (d x k, orthonormal columns), or `None` for OLS on x.
    pub basis: Option<&'a DMatrix<f64>>,
}

impl Learner<'_> {
    /// Number of features OLS fits.
    pub fn features(&self, d: usize) -> usize {
        self.basis.map_or(d, |u| u.ncols())
    }
}

/// Mean excess risk of one (method, task, n) cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// The learner's name.
    pub method: String,
    /// Index of the downstream task.
    pub task: usize,
    /// n: downstream samples per replicate.
    pub n: usize,
    /// Features fitted (k, or d for `none`).
    pub features: usize,
    /// b: the residual `||beta - U U^T beta||^2` of the task (0 without a representation).
    pub bias: f64,
    /// Mean excess risk over the replicates.
    pub mean: f64,
    /// Standard error of the mean (sample sd / sqrt(R)).
    pub se: f64,
    /// R: the number of replicates.
    pub replicates: usize,
    /// The exact expectation `b + (sigma^2 + b) p / (n - p - 1)`.
    pub predicted: f64,
    /// The exact standard deviation of one replicate (None: infinite, n < p + 4).
    pub predicted_sd: Option<f64>,
}

fn normal(rng: &mut StdRng) -> f64 {
    rng.sample(StandardNormal)
}

/// Least squares `argmin ||A w - y||` via the normal equations (Cholesky),
/// falling back to an SVD solve for a (probability-zero) singular Gram matrix.
fn least_squares(
    gram: &DMatrix<f64>,
    rhs: &DVector<f64>,
    a: &DMatrix<f64>,
    y: &DVector<f64>,
) -> DVector<f64> {
    match gram.clone().cholesky() {
        Some(chol) => chol.solve(rhs),
        None => a
            .clone()
            .svd(true, true)
            .solve(y, 1e-12)
            .expect("SVD with both factors solves"),
    }
}

/// Reusable buffers of the fast path.
struct FastBuffers {
    z: DMatrix<f64>,
    y: DVector<f64>,
    gram: DMatrix<f64>,
    rhs: DVector<f64>,
}

/// One replicate of the fast path: excess risk of OLS on n samples of
/// z ~ N(0, I_k), y = z^T c + r, r ~ N(0, noise_var); returns `||w - c||^2 + bias`.
fn fast_replicate(
    c: &DVector<f64>,
    bias: f64,
    noise_sd: f64,
    rng: &mut StdRng,
    buf: &mut FastBuffers,
) -> f64 {
    let n = buf.z.nrows();
    for v in buf.z.iter_mut() {
        *v = normal(rng);
    }
    buf.z.mul_to(c, &mut buf.y);
    for i in 0..n {
        buf.y[i] += noise_sd * normal(rng);
    }
    buf.z.tr_mul_to(&buf.z, &mut buf.gram);
    buf.z.tr_mul_to(&buf.y, &mut buf.rhs);
    let w = least_squares(&buf.gram, &buf.rhs, &buf.z, &buf.y);
    (w - c).norm_squared() + bias
}

/// One replicate of the d-dimensional experiment: x ~ N(0, I_d),
/// y = x^T beta + sigma eps, OLS of y on U^T x (or on x), excess `||U w - beta||^2`.
pub fn direct_replicate(
    basis: Option<&DMatrix<f64>>,
    beta: &DVector<f64>,
    sigma: f64,
    n: usize,
    rng: &mut StdRng,
) -> f64 {
    let d = beta.len();
    let x = DMatrix::<f64>::from_fn(n, d, |_, _| normal(rng));
    let mut y = &x * beta;
    for v in y.iter_mut() {
        *v += sigma * normal(rng);
    }
    let features = match basis {
        Some(u) => &x * u,
        None => x,
    };
    let gram = features.tr_mul(&features);
    let rhs = features.tr_mul(&y);
    let w = least_squares(&gram, &rhs, &features, &y);
    let fitted = match basis {
        Some(u) => u * w,
        None => w,
    };
    (fitted - beta).norm_squared()
}

/// One replicate of OLS in all d dimensions, sampled through its sufficient
/// statistics: the error `w - beta = W^{-1} X^T eps` depends on X only through
/// `W = X^T X ~ Wishart_d(n, I)`, and given W it is `N(0, sigma^2 W^{-1})`.
/// With Bartlett's `W = L L^T` (L lower triangular, `L_ii^2 ~ chi2(n - i)`
/// for 0-based i, `L_ij ~ N(0, 1)` below the diagonal) the error is
/// `sigma L^{-T} g`, g ~ N(0, I_d). Same law as [`direct_replicate`] with no
/// basis, at O(d^2) instead of O(n d^2); a test compares the two.
pub fn wishart_replicate(
    d: usize,
    sigma: f64,
    n: usize,
    rng: &mut StdRng,
    lower: &mut DMatrix<f64>,
    g: &mut DVector<f64>,
) -> f64 {
    for i in 0..d {
        let chi = rand_distr::ChiSquared::new((n - i) as f64)
            .expect("n > d: positive degrees of freedom");
        lower[(i, i)] = rng.sample(chi).sqrt();
        for j in 0..i {
            lower[(i, j)] = normal(rng);
        }
    }
    for v in g.iter_mut() {
        *v = normal(rng);
    }
    // L^T v = g by back substitution (upper triangular L^T).
    for i in (0..d).rev() {
        let mut acc = g[i];
        for j in i + 1..d {
            acc -= lower[(j, i)] * g[j];
        }
        g[i] = acc / lower[(i, i)];
    }
    sigma * sigma * g.norm_squared()
}

/// Stream ids: representations share 0 (common random numbers), `none` uses 1.
fn stream(learner: &Learner<'_>) -> u64 {
    u64::from(learner.basis.is_none())
}

/// Simulates one cell: R replicates in order from the cell's own stream.
pub fn simulate_cell(
    learner: &Learner<'_>,
    task: usize,
    beta: &DVector<f64>,
    sigma: f64,
    n: usize,
    replicates: usize,
    seed: u64,
) -> Cell {
    let d = beta.len();
    let p = learner.features(d);
    let mut rng = rng_for(&[seed, stream(learner), task as u64, n as u64]);
    // Simulate in units where beta and sigma are near 1 (a power of two, so
    // the values are exactly those of the unscaled run, scaled): squared
    // deviations of replicates then stay finite for sigma up to 1e150.
    let scale = power_of_two_scale(beta.iter().copied().chain([sigma]));
    let (beta_s, sigma_s) = (beta / scale, sigma / scale);
    let values: Vec<f64> = match learner.basis {
        Some(u) => {
            let bias = residual(u, &beta_s);
            let c = u.tr_mul(&beta_s);
            let noise_sd = (sigma_s * sigma_s + bias).sqrt();
            let mut buf = FastBuffers {
                z: DMatrix::zeros(n, p),
                y: DVector::zeros(n),
                gram: DMatrix::zeros(p, p),
                rhs: DVector::zeros(p),
            };
            (0..replicates)
                .map(|_| fast_replicate(&c, bias, noise_sd, &mut rng, &mut buf))
                .collect()
        }
        None => {
            let mut lower = DMatrix::zeros(d, d);
            let mut g = DVector::zeros(d);
            (0..replicates)
                .map(|_| wishart_replicate(d, sigma_s, n, &mut rng, &mut lower, &mut g))
                .collect()
        }
    };
    let bias = learner.basis.map_or(0.0, |u| residual(u, beta));
    let r = values.len() as f64;
    let mean = values.iter().sum::<f64>() / r;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (r - 1.0);
    let square = scale * scale;
    Cell {
        method: learner.name.to_string(),
        task,
        n,
        features: p,
        bias,
        mean: mean * square,
        se: (var / r).sqrt() * square,
        replicates,
        predicted: excess_risk(bias, sigma, p, n).unwrap_or(f64::INFINITY),
        predicted_sd: excess_risk_sd(bias, sigma, p, n),
    }
}

/// Every (learner, task, n) cell with `n >= features + 2` (where the expected
/// excess risk is finite), in that nested order, simulated in parallel.
pub fn simulate_all(
    learners: &[Learner<'_>],
    tasks: &[DVector<f64>],
    sigma: f64,
    grid: &[usize],
    replicates: usize,
    seed: u64,
) -> Vec<Cell> {
    let mut jobs = Vec::new();
    for (l, learner) in learners.iter().enumerate() {
        let p = learner.features(tasks[0].len());
        for task in 0..tasks.len() {
            for &n in grid.iter().filter(|&&n| n >= p + 2) {
                jobs.push((l, task, n));
            }
        }
    }
    jobs.par_iter()
        .map(|&(l, task, n)| {
            simulate_cell(&learners[l], task, &tasks[task], sigma, n, replicates, seed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::spectral::top_eigenvectors;

    fn setup() -> (DMatrix<f64>, Vec<DVector<f64>>) {
        let d = 8;
        let a = DMatrix::from_fn(d, d, |i, j| ((i * 3 + j * 5) % 7) as f64 - 3.0);
        let basis = top_eigenvectors(&(&a + a.transpose()), 2);
        let tasks = vec![
            DVector::from_fn(d, |i, _| 1.0 / (1.0 + i as f64)),
            DVector::from_fn(d, |i, _| if i % 2 == 0 { 0.5 } else { -0.2 }),
        ];
        (basis, tasks)
    }

    #[test]
    fn fast_path_matches_the_direct_simulation_and_the_formula() {
        let (basis, tasks) = setup();
        let (sigma, n, reps) = (0.5, 12, 6000);
        for (t, beta) in tasks.iter().enumerate() {
            let learner = Learner {
                name: "rep",
                basis: Some(&basis),
            };
            let fast = simulate_cell(&learner, t, beta, sigma, n, reps, 3);
            let mut rng = rng_for(&[99, t as u64]);
            let direct: Vec<f64> = (0..reps)
                .map(|_| direct_replicate(Some(&basis), beta, sigma, n, &mut rng))
                .collect();
            let mean = direct.iter().sum::<f64>() / reps as f64;
            let sd =
                (direct.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
            let se = sd / (reps as f64).sqrt();
            let z = (fast.mean - mean) / (fast.se.powi(2) + se * se).sqrt();
            assert!(
                z.abs() < 4.0,
                "task {t}: fast {} direct {mean} z {z}",
                fast.mean
            );
            assert!(((fast.mean - fast.predicted) / fast.se).abs() < 4.0);
            assert!(((mean - fast.predicted) / se).abs() < 4.0);
            // Same spread too (the law is the same, not only the mean), and
            // the exact standard deviation of the model.
            let fast_sd = fast.se * (reps as f64).sqrt();
            assert!((fast_sd / sd - 1.0).abs() < 0.15, "sd {fast_sd} vs {sd}");
            let exact = fast.predicted_sd.unwrap();
            assert!((exact / sd - 1.0).abs() < 0.15, "exact sd {exact} vs {sd}");
        }
        // No representation: OLS in d dims, b = 0.
        let none = Learner {
            name: "none",
            basis: None,
        };
        let cell = simulate_cell(&none, 0, &tasks[0], sigma, 16, reps, 4);
        assert!(((cell.mean - cell.predicted) / cell.se).abs() < 4.0);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (basis, tasks) = setup();
        let learners = [
            Learner {
                name: "none",
                basis: None,
            },
            Learner {
                name: "rep",
                basis: Some(&basis),
            },
        ];
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| simulate_all(&learners, &tasks, 0.5, &[10, 14, 20], 50, 7))
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(one, two);
        assert_eq!(one.len(), 2 * 2 * 3);
    }
}

#[cfg(test)]
mod tail_study {
    use super::*;
    use crate::transfer::model::excess_risk_sd;

    /// The measurement behind `checks::POLE_OFFSET` (docs/THEORY.md#transfer-model):
    /// tails of the standardised cell mean near the pole (TAIL_REPS replicates
    /// per cell, default 200; TAIL_ONLY="k=4 n=14" runs one case).
    #[test]
    #[ignore]
    fn z_tails_near_the_pole() {
        let d = 50;
        let beta = DVector::from_fn(d, |i, _| if i < 2 { 0.6 } else { 0.0 });
        let u = DMatrix::from_fn(d, 4, |i, j| if i == j + 1 { 1.0 } else { 0.0 });
        let reps: usize = std::env::var("TAIL_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let only: Option<String> = std::env::var("TAIL_ONLY").ok();
        let cases: Vec<(&str, Option<&DMatrix<f64>>, usize)> = vec![
            ("k=4 n=10", Some(&u), 10),
            ("k=4 n=12", Some(&u), 12),
            ("k=4 n=14", Some(&u), 14),
            ("none n=60", None, 60),
        ];
        for (label, basis, n) in cases
            .into_iter()
            .filter(|c| only.as_ref().is_none_or(|o| c.0 == o))
        {
            let learner = Learner { name: "x", basis };
            let p = learner.features(d);
            let bias = basis.map_or(0.0, |u| residual(u, &beta));
            let sd = excess_risk_sd(bias, 0.5, p, n).unwrap() / (reps as f64).sqrt();
            let cells = if basis.is_some() { 40_000u64 } else { 20_000 };
            let pairs: Vec<(f64, f64)> = (0..cells)
                .into_par_iter()
                .map(|s| {
                    let c = simulate_cell(&learner, 0, &beta, 0.5, n, reps, 5000 + s);
                    ((c.mean - c.predicted) / c.se, (c.mean - c.predicted) / sd)
                })
                .collect();
            for (name, pick) in [("studentised", 0usize), ("exact-sd", 1)] {
                let zs: Vec<f64> = pairs
                    .iter()
                    .map(|p| if pick == 0 { p.0 } else { p.1 })
                    .collect();
                let frac =
                    |t: f64| zs.iter().filter(|z| z.abs() > t).count() as f64 / zs.len() as f64;
                eprintln!(
                    "{label} {name}: cells {} P(|z|>3)={:.1e} >4={:.1e} >4.5={:.1e} >5={:.1e}; min {:.2} max {:.2}",
                    zs.len(), frac(3.0), frac(4.0), frac(4.5), frac(5.0),
                    zs.iter().copied().fold(f64::INFINITY, f64::min),
                    zs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                );
            }
        }
    }
}
