//! Seeded generators for synthetic task families.
//!
//! Every task draws from its own RNG, seeded from `(seed, task index)`, so a
//! family is identical whatever the number of threads used to build it.

use super::least_squares::GradientForm;
use super::{LeastSquaresFamily, LogisticFamily, QuadraticFamily, QuadraticTask, TaskData};
use crate::error::{check_positive, invalid, InputError};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Shape of a synthetic family. Task optima ("centres") are drawn around a
/// common point with standard deviation `spread`; the last `outliers` tasks
/// are moved `outlier_distance` away along their own random directions, so
/// that average and minimax solutions differ clearly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSpec {
    /// M: the number of tasks.
    pub num_tasks: usize,
    /// d: the dimension (the number of features for data families).
    pub dim: usize,
    /// Largest Hessian (or covariance) eigenvalue.
    pub smoothness: f64,
    /// Ratio of largest to smallest eigenvalue (>= 1).
    pub condition_number: f64,
    /// Standard deviation of the task centres around the common point.
    pub spread: f64,
    /// How many tasks (the last ones) are outliers.
    pub outliers: usize,
    /// How far each outlier's centre is moved, along its own random direction.
    pub outlier_distance: f64,
    /// Seed of the draws; every task's RNG mixes it with the task index.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            num_tasks: 8,
            dim: 10,
            smoothness: 1.0,
            condition_number: 10.0,
            spread: 1.0,
            outliers: 0,
            outlier_distance: 0.0,
            seed: 0,
        }
    }
}

impl SyntheticSpec {
    /// Checks that building the family fits in memory before anything is
    /// allocated: `samples` per task for data families (`None`: quadratic).
    /// `names` are how the caller calls the number of tasks, the dimension and
    /// the samples (`--tasks`, `family.dim`, ...); the error names the largest.
    pub fn check_memory(&self, samples: Option<usize>, names: [&str; 3]) -> Result<(), InputError> {
        let (m, d) = (self.num_tasks as f64, self.dim as f64);
        // Tasks are built in parallel; each thread holds its work buffers.
        let threads = self.num_tasks.min(rayon::current_num_threads()).max(1) as f64;
        let (values, what) = match samples {
            None => (
                m * d * d + threads * 3.0 * d * d + 2.0 * m * d,
                format!(
                    "{} tasks of {} x {} Hessians",
                    self.num_tasks, self.dim, self.dim
                ),
            ),
            Some(n) => {
                let n = n as f64;
                (
                    m * n * (d + 1.0) + threads * (3.0 * n * d + 2.0 * d * d) + 2.0 * m * d,
                    format!(
                        "{} tasks of {n} samples x {} features",
                        self.num_tasks, self.dim
                    ),
                )
            }
        };
        let sizes = [
            (names[0], self.num_tasks),
            (names[1], self.dim),
            (names[2], samples.unwrap_or(0)),
        ];
        let field = sizes
            .iter()
            .max_by_key(|(_, size)| *size)
            .map_or(names[1], |(name, _)| name);
        crate::linalg::memory::check_request(field, values * 8.0, &what)
    }

    /// Checks the parameters before any work starts.
    pub fn check(&self) -> Result<(), InputError> {
        if self.num_tasks == 0 {
            return invalid("num_tasks", "must be at least 1");
        }
        if self.dim == 0 {
            return invalid("dim", "must be at least 1");
        }
        check_positive("smoothness", self.smoothness)?;
        if !(self.condition_number >= 1.0 && self.condition_number.is_finite()) {
            return invalid("condition_number", "must be a finite number >= 1");
        }
        if !(self.spread >= 0.0 && self.spread.is_finite()) {
            return invalid("spread", "must be finite and >= 0");
        }
        if self.outliers > self.num_tasks {
            return invalid("outliers", "cannot exceed num_tasks");
        }
        if !(self.outlier_distance >= 0.0 && self.outlier_distance.is_finite()) {
            return invalid("outlier_distance", "must be finite and >= 0");
        }
        Ok(())
    }

    fn task_rng(&self, task: usize, stream: u64) -> StdRng {
        // SplitMix-style mixing of (seed, task, stream) into one 64-bit seed.
        let mut z = self
            .seed
            .wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul((task as u64).wrapping_add(1)))
            .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }

    /// Task centres: shared base point plus spread, outliers pushed away.
    pub fn centres(&self) -> Vec<DVector<f64>> {
        let base = gaussian_vector(&mut self.task_rng(usize::MAX, 7), self.dim);
        (0..self.num_tasks)
            .map(|i| {
                let mut rng = self.task_rng(i, 1);
                let mut c = &base + gaussian_vector(&mut rng, self.dim) * self.spread;
                if i >= self.num_tasks - self.outliers {
                    let direction = gaussian_vector(&mut rng, self.dim);
                    c += direction.normalize() * self.outlier_distance;
                }
                c
            })
            .collect()
    }

    fn eigenvalues(&self) -> Vec<f64> {
        log_spaced(
            self.smoothness / self.condition_number,
            self.smoothness,
            self.dim,
        )
    }
}

/// `n` values geometrically spaced from `lo` to `hi` (highest first).
fn log_spaced(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![hi];
    }
    (0..n)
        .map(|k| hi * (lo / hi).powf(k as f64 / (n - 1) as f64))
        .collect()
}

/// A vector of `d` independent standard normal entries.
pub fn gaussian_vector(rng: &mut StdRng, d: usize) -> DVector<f64> {
    DVector::from_iterator(d, (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)))
}

/// A `rows` x `cols` matrix of independent standard normal entries.
pub fn gaussian_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_iterator(
        rows,
        cols,
        (0..rows * cols).map(|_| rng.sample::<f64, _>(StandardNormal)),
    )
}

/// Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed).
pub fn random_orthogonal(rng: &mut StdRng, d: usize) -> DMatrix<f64> {
    let qr = gaussian_matrix(rng, d, d).qr();
    let r = qr.r();
    let mut q = qr.q();
    for j in 0..d {
        if r[(j, j)] < 0.0 {
            q.column_mut(j).neg_mut();
        }
    }
    q
}

/// Symmetric PSD matrix with the given eigenvalues and a random eigenbasis.
pub fn random_psd_with_eigenvalues(rng: &mut StdRng, eigenvalues: &[f64]) -> DMatrix<f64> {
    let d = eigenvalues.len();
    let q = random_orthogonal(rng, d);
    let scaled = DMatrix::from_fn(d, d, |i, j| q[(i, j)] * eigenvalues[j]);
    let a = &scaled * q.transpose();
    (&a + a.transpose()) * 0.5
}

/// Random PSD matrix with largest eigenvalue `top` and condition number `condition`.
pub fn random_psd(rng: &mut StdRng, d: usize, top: f64, condition: f64) -> DMatrix<f64> {
    random_psd_with_eigenvalues(rng, &log_spaced(top / condition, top, d))
}

/// How the generators name the sizes in their errors.
const SIZE_NAMES: [&str; 3] = ["num_tasks", "dim", "samples_per_task"];

/// Quadratic tasks with random PSD Hessians (the spec's spectrum) around the spec's centres.
pub fn quadratic_family(spec: &SyntheticSpec) -> Result<QuadraticFamily, InputError> {
    spec.check()?;
    spec.check_memory(None, SIZE_NAMES)?;
    let eigenvalues = spec.eigenvalues();
    let centres = spec.centres();
    let tasks = centres
        .into_par_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut rng = spec.task_rng(i, 2);
            QuadraticTask {
                a: random_psd_with_eigenvalues(&mut rng, &eigenvalues),
                c,
                b: 0.0,
            }
        })
        .collect();
    QuadraticFamily::new(tasks)
}

/// Unit-weight isotropic quadratics `1/2 ||theta - v_k||^2` centred on the
/// vertices of a regular polygon of the given circumradius, in the first two
/// coordinates of R^dim. The minimax point is the centre and OPT = radius^2 / 2.
pub fn polygon_family(
    vertices: usize,
    radius: f64,
    dim: usize,
) -> Result<QuadraticFamily, InputError> {
    if vertices < 3 {
        return invalid("vertices", "a polygon needs at least 3 vertices");
    }
    if dim < 2 {
        return invalid("dim", "must be at least 2");
    }
    let tasks = (0..vertices)
        .map(|k| {
            let angle = 2.0 * std::f64::consts::PI * k as f64 / vertices as f64;
            let mut c = DVector::zeros(dim);
            c[0] = radius * angle.cos();
            c[1] = radius * angle.sin();
            QuadraticTask {
                a: DMatrix::identity(dim, dim),
                c,
                b: 0.0,
            }
        })
        .collect();
    QuadraticFamily::new(tasks)
}

/// Gaussian design with covariance spectrum from the spec; rows are samples.
fn design(spec: &SyntheticSpec, rng: &mut StdRng, samples: usize) -> DMatrix<f64> {
    let eigenvalues = spec.eigenvalues();
    let basis = random_orthogonal(&mut spec.task_rng(usize::MAX, 3), spec.dim);
    let scales: Vec<f64> = eigenvalues.iter().map(|l| l.sqrt()).collect();
    let z = gaussian_matrix(rng, samples, spec.dim);
    let scaled = DMatrix::from_fn(samples, spec.dim, |i, j| z[(i, j)] * scales[j]);
    scaled * basis.transpose()
}

/// Least-squares tasks: `y = X theta_i + noise` with `theta_i` the spec's centres.
pub fn least_squares_family(
    spec: &SyntheticSpec,
    samples_per_task: usize,
    noise: f64,
    form: GradientForm,
) -> Result<LeastSquaresFamily, InputError> {
    spec.check()?;
    if samples_per_task == 0 {
        return invalid("samples_per_task", "must be at least 1");
    }
    spec.check_memory(Some(samples_per_task), SIZE_NAMES)?;
    let centres = spec.centres();
    let tasks = centres
        .into_par_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut rng = spec.task_rng(i, 4);
            let x = design(spec, &mut rng, samples_per_task);
            let eps = gaussian_vector(&mut rng, samples_per_task) * noise;
            let y = &x * c + eps;
            TaskData::from_rows(&x, y)
        })
        .collect();
    LeastSquaresFamily::new(tasks, form)
}

/// Logistic tasks: labels `sign(x^T theta_i + noise)` with `theta_i` the spec's centres.
pub fn logistic_family(
    spec: &SyntheticSpec,
    samples_per_task: usize,
    noise: f64,
    l2: f64,
) -> Result<LogisticFamily, InputError> {
    spec.check()?;
    if samples_per_task == 0 {
        return invalid("samples_per_task", "must be at least 1");
    }
    spec.check_memory(Some(samples_per_task), SIZE_NAMES)?;
    let centres = spec.centres();
    let tasks = centres
        .into_par_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut rng = spec.task_rng(i, 5);
            let x = design(spec, &mut rng, samples_per_task);
            let eps = gaussian_vector(&mut rng, samples_per_task) * noise;
            let scores = &x * c + eps;
            let y = scores.map(|s| if s >= 0.0 { 1.0 } else { -1.0 });
            TaskData::from_rows(&x, y)
        })
        .collect();
    LogisticFamily::new(tasks, l2)
}
