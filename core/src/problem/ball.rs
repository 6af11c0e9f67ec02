//! The feasible set Theta and its Euclidean projection: all of R^d, the ball
//! `||theta|| <= radius`, or the Fantope (for the transfer model's convex
//! relaxation, with theta the column-major vectorisation of a d x d matrix).

use nalgebra::{DMatrix, DVector};

/// Where the iterates live. Every solver applies `project` after each step.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum FeasibleSet {
    /// All of R^d.
    #[default]
    Unconstrained,
    /// `||theta||_2 <= radius`.
    Ball {
        /// The radius, in theta units.
        radius: f64,
    },
    /// `{P symmetric : 0 <= P <= I, tr P = rank}` in R^{dim x dim}, vectorised.
    Fantope {
        /// d: P is d x d, theta has d*d entries.
        dim: usize,
        /// k: the trace of P.
        rank: usize,
    },
}

/// The name the problem format uses ("radius").
pub type Ball = FeasibleSet;

impl FeasibleSet {
    /// All of R^d.
    pub fn unconstrained() -> Self {
        Self::Unconstrained
    }

    /// The ball `||theta||_2 <= radius`.
    pub fn with_radius(radius: f64) -> Self {
        Self::Ball { radius }
    }

    /// Radius of the smallest origin-centred ball containing the set.
    pub fn radius(&self) -> Option<f64> {
        match *self {
            Self::Unconstrained => None,
            Self::Ball { radius } => Some(radius),
            // ||P||_F^2 = sum g_j^2 <= sum g_j = k.
            Self::Fantope { rank, .. } => Some((rank as f64).sqrt()),
        }
    }

    /// Euclidean projection, in place.
    pub fn project(&self, theta: &mut DVector<f64>) {
        match *self {
            Self::Unconstrained => {}
            Self::Ball { radius } => {
                let norm = theta.norm();
                if norm > radius {
                    *theta *= radius / norm;
                }
            }
            Self::Fantope { dim, rank } => {
                let matrix = DMatrix::from_column_slice(dim, dim, theta.as_slice());
                let projected = project_onto_fantope(&matrix, rank);
                theta.copy_from_slice(projected.as_slice());
            }
        }
    }

    /// Whether theta lies in the set, up to a tolerance: 1e-12 relative for the
    /// ball, 1e-9 for the Fantope's symmetry, eigenvalues and trace.
    pub fn contains(&self, theta: &DVector<f64>) -> bool {
        match *self {
            Self::Unconstrained => true,
            Self::Ball { radius } => theta.norm() <= radius * (1.0 + 1e-12),
            Self::Fantope { dim, rank } => {
                let m = DMatrix::from_column_slice(dim, dim, theta.as_slice());
                let sym_err = (&m - m.transpose()).amax();
                let eig = ((&m + m.transpose()) * 0.5).symmetric_eigenvalues();
                sym_err <= 1e-9
                    && eig.iter().all(|&g| (-1e-9..=1.0 + 1e-9).contains(&g))
                    && (eig.sum() - rank as f64).abs() <= 1e-9 * rank as f64
            }
        }
    }

    /// Diameter of the set (infinite without a bound): an upper bound on R.
    pub fn diameter(&self) -> f64 {
        match *self {
            Self::Unconstrained => f64::INFINITY,
            Self::Ball { radius } => 2.0 * radius,
            // ||P - P'||_F^2 <= 2k for two Fantope points.
            Self::Fantope { rank, .. } => (2.0 * rank as f64).sqrt(),
        }
    }
}

/// Projection of a (near-)symmetric matrix onto the Fantope of rank k:
/// eigen-decompose, then clip the eigenvalues to `[0, 1]` after a scalar
/// shift chosen by bisection so they sum to k (Vu, Cho, Lei, Rohe 2013).
pub fn project_onto_fantope(matrix: &DMatrix<f64>, rank: usize) -> DMatrix<f64> {
    let symmetric = (matrix + matrix.transpose()) * 0.5;
    let eigen = symmetric.symmetric_eigen();
    let values = project_eigenvalues(eigen.eigenvalues.as_slice(), rank as f64);
    let v = &eigen.eigenvectors;
    let scaled = DMatrix::from_fn(v.nrows(), v.ncols(), |i, j| v[(i, j)] * values[j]);
    let p = scaled * v.transpose();
    (&p + p.transpose()) * 0.5
}

/// `g_j = clip(l_j - s, 0, 1)` with s such that `sum g_j = k`.
pub fn project_eigenvalues(eigenvalues: &[f64], k: f64) -> Vec<f64> {
    let clipped_sum =
        |s: f64| -> f64 { eigenvalues.iter().map(|&l| (l - s).clamp(0.0, 1.0)).sum() };
    let max = eigenvalues
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let min = eigenvalues.iter().copied().fold(f64::INFINITY, f64::min);
    // clipped_sum is non-increasing in s: n at s <= min - 1, 0 at s >= max.
    let (mut lo, mut hi) = (min - 1.0, max);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if clipped_sum(mid) > k {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * (1.0 + hi.abs()) {
            break;
        }
    }
    let shift = 0.5 * (lo + hi);
    eigenvalues
        .iter()
        .map(|&l| (l - shift).clamp(0.0, 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fantope_projection_has_trace_k_and_eigenvalues_in_unit_interval() {
        let m = DMatrix::from_fn(4, 4, |i, j| ((i * 7 + j * 3) % 5) as f64 - 2.0);
        let p = project_onto_fantope(&m, 2);
        let eig = p.clone().symmetric_eigenvalues();
        assert!((eig.sum() - 2.0).abs() < 1e-10);
        assert!(eig.iter().all(|&g| g > -1e-12 && g < 1.0 + 1e-12));
        let set = FeasibleSet::Fantope { dim: 4, rank: 2 };
        assert!(set.contains(&DVector::from_column_slice(p.as_slice())));
    }

    #[test]
    fn ball_projection_scales_onto_the_sphere() {
        let mut theta = DVector::from_vec(vec![3.0, 4.0]);
        FeasibleSet::with_radius(1.0).project(&mut theta);
        assert!((theta.norm() - 1.0).abs() < 1e-15);
    }
}
