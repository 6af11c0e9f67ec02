//! The optional feasible set: the Euclidean ball `||theta|| <= radius`.

use nalgebra::DVector;

/// `Theta = R^d` (no radius) or the closed ball of the given radius.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ball {
    pub radius: Option<f64>,
}

impl Ball {
    pub fn unconstrained() -> Self {
        Self { radius: None }
    }

    pub fn with_radius(radius: f64) -> Self {
        Self {
            radius: Some(radius),
        }
    }

    /// Euclidean projection, in place.
    pub fn project(&self, theta: &mut DVector<f64>) {
        if let Some(r) = self.radius {
            let norm = theta.norm();
            if norm > r {
                *theta *= r / norm;
            }
        }
    }

    pub fn contains(&self, theta: &DVector<f64>) -> bool {
        self.radius.is_none_or(|r| theta.norm() <= r * (1.0 + 1e-12))
    }

    /// Diameter of the set (infinite without a radius): an upper bound on R.
    pub fn diameter(&self) -> f64 {
        self.radius.map_or(f64::INFINITY, |r| 2.0 * r)
    }
}
