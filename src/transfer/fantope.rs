//! The convex relaxation of rank-k minimax pre-training: minimise
//! `max_i f_i(P)` over the Fantope `{P symmetric : 0 <= P <= I, tr P = k}`,
//! with the linear upstream losses `f_i(P) = c_i - <M_i, P>` (upstream.rs).
//!
//! As a [`TaskFamily`], theta is vec(P) (d*d entries, column-major) and the
//! core solver handles it with `FeasibleSet::Fantope { dim: d, rank: k }`.
//!
//! Dual (Ky Fan): for weights p on the simplex,
//! `D(p) = min_{P in Fantope} sum_i p_i f_i(P) = sum_i p_i c_i - kyfan_k(sum_i p_i M_i)`,
//! because the maximum of the linear function `<A, P>` over the Fantope is the
//! sum of the k largest eigenvalues of A, attained at a rank-k projector. So
//! `D(p)` lower-bounds the minimax over the Fantope *and* over every rank-k
//! projector (a subset of the Fantope).

use super::spectral::ky_fan_sum;
use super::upstream::UpstreamLosses;
use crate::ball::{Ball, FeasibleSet};
use crate::family::{Evaluation, TaskFamily, Weigh};
use crate::solvers::{solve, Method, SolveOptions};
use nalgebra::{DMatrix, DVector};
use std::sync::Arc;

/// Upstream losses as a task family over vec(P).
#[derive(Debug, Clone)]
pub struct FantopeFamily {
    losses: UpstreamLosses,
    rank: usize,
    /// `-vec(M_i)` as columns: the task gradients (constant: the losses are linear).
    gradients: DMatrix<f64>,
    norms: Vec<f64>,
}

impl FantopeFamily {
    pub fn new(losses: UpstreamLosses, rank: usize) -> Self {
        let d = losses.dim();
        let m = losses.num_tasks();
        let mut gradients = DMatrix::<f64>::zeros(d * d, m);
        for (i, matrix) in losses.matrices.iter().enumerate() {
            for (g, v) in gradients.column_mut(i).iter_mut().zip(matrix.iter()) {
                *g = -v;
            }
        }
        let norms = losses.matrices.iter().map(|m| m.norm()).collect();
        Self {
            losses,
            rank,
            gradients,
            norms,
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn upstream(&self) -> &UpstreamLosses {
        &self.losses
    }

    /// The Ky Fan dual `D(p)` (exact up to rounding) for non-negative weights.
    pub fn dual(&self, weights: &[f64]) -> f64 {
        let a = self.losses.weighted_matrix(weights);
        self.losses.weighted_constant(weights) - ky_fan_sum(&a, self.rank)
    }

    /// `D(p)` less a bound on the eigenvalue rounding error, so it stays a
    /// certified lower bound in floating point.
    pub fn certified_dual(&self, weights: &[f64]) -> f64 {
        let a = self.losses.weighted_matrix(weights);
        let d = self.losses.dim() as f64;
        let rounding = 8.0 * d * f64::EPSILON * a.norm() * self.rank as f64
            + 4.0 * f64::EPSILON * self.losses.weighted_constant(weights).abs();
        self.losses.weighted_constant(weights) - ky_fan_sum(&a, self.rank) - rounding
    }
}

impl TaskFamily for FantopeFamily {
    fn kind(&self) -> &'static str {
        "fantope"
    }

    fn num_tasks(&self) -> usize {
        self.losses.num_tasks()
    }

    fn dim(&self) -> usize {
        let d = self.losses.dim();
        d * d
    }

    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) {
        for (i, loss) in losses.iter_mut().enumerate() {
            *loss = self.losses.constants[i] + self.gradients.column(i).dot(theta);
        }
    }

    fn evaluate(&self, theta: &DVector<f64>, weigh: &mut Weigh<'_>, out: &mut Evaluation) {
        self.losses(theta, &mut out.losses);
        weigh(&out.losses, &mut out.weights);
        crate::family::combine_task_gradients(
            &self.gradients,
            &out.weights,
            &mut out.gradient,
            &mut out.task_gradient_norms,
        );
    }

    fn task_gradient(&self, task: usize, _theta: &DVector<f64>, gradient: &mut DVector<f64>) {
        gradient.copy_from(&self.gradients.column(task));
    }

    /// Linear losses: L = 0.
    fn smoothness(&self) -> f64 {
        0.0
    }

    fn gradient_bound_on_ball(&self, _radius: f64) -> f64 {
        self.norms.iter().copied().fold(0.0, f64::max)
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        self.losses
            .constants
            .iter()
            .zip(&self.norms)
            .map(|(c, g)| c.abs() + g * radius)
            .fold(0.0, f64::max)
    }

    /// The Ky Fan dual at `at.weights` (the feasible set is the Fantope
    /// whatever `ball` says: the family only makes sense there).
    fn certified_lower_bound(&self, _theta: &DVector<f64>, at: &Evaluation, _ball: &Ball) -> f64 {
        self.certified_dual(&at.weights)
    }
}

/// The Fantope minimax solution (convex relaxation) and its certificate.
#[derive(Debug, Clone)]
pub struct FantopeSolution {
    /// P in the Fantope (symmetric, eigenvalues in [0, 1], trace k).
    pub projector: DMatrix<f64>,
    pub losses: Vec<f64>,
    pub max_loss: f64,
    /// Certificate weights on the upstream tasks (on the simplex).
    pub weights: Vec<f64>,
    /// Certified lower bound (best Ky Fan dual seen) on the minimax over the
    /// Fantope, hence over every rank-k representation.
    pub lower_bound: f64,
    pub gap: f64,
    pub iterations: u64,
    pub mu: Option<f64>,
    pub seconds: f64,
}

/// Solves `min_{P in Fantope} max_i f_i(P)` with a core softmax-weighted
/// solver on `FeasibleSet::Fantope` (`Method::SoftmaxGd`: projected gradient on
/// the smoothed maximum; `Method::Accelerated`: its FISTA variant, which
/// certifies the same problems to a far smaller gap in the same number of
/// iterations -- see docs/THEORY.md#transfer-model), starting from `init` when given.
pub fn fantope_minimax(
    losses: &UpstreamLosses,
    k: usize,
    init: Option<&DMatrix<f64>>,
    iterations: u64,
    mu: Option<f64>,
    method: Method,
) -> Result<FantopeSolution, crate::Error> {
    let d = losses.dim();
    let family = FantopeFamily::new(losses.clone(), k);
    let options = SolveOptions {
        method,
        iterations,
        mu,
        init: init.map(vectorise),
        certify_every: 10,
        ..SolveOptions::default()
    };
    let outcome = solve(
        Arc::new(family),
        FeasibleSet::Fantope { dim: d, rank: k },
        &options,
    )?;
    Ok(FantopeSolution {
        projector: DMatrix::from_column_slice(d, d, &outcome.theta),
        losses: outcome.losses,
        max_loss: outcome.max_loss,
        weights: outcome.weights,
        lower_bound: outcome.lower_bound,
        gap: outcome.gap,
        iterations: outcome.iterations,
        mu: outcome.mu,
        seconds: outcome.seconds,
    })
}

/// vec(P) (column-major) of a d x d matrix.
pub fn vectorise(p: &DMatrix<f64>) -> DVector<f64> {
    DVector::from_column_slice(p.as_slice())
}

/// The d x d matrix behind vec(P).
pub fn unvectorise(theta: &DVector<f64>, d: usize) -> DMatrix<f64> {
    DMatrix::from_column_slice(d, d, theta.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::model::residual;
    use crate::transfer::spectral::top_eigenvectors;

    fn unit(d: usize, i: usize) -> DVector<f64> {
        DVector::from_fn(d, |j, _| if i == j { 1.0 } else { 0.0 })
    }

    #[test]
    fn losses_and_gradients_match_the_population_formula() {
        let tasks = vec![
            DVector::from_vec(vec![1.0, 2.0, 0.5]),
            DVector::from_vec(vec![0.0, -1.0, 1.0]),
        ];
        let family = FantopeFamily::new(UpstreamLosses::population(&tasks, 0.5), 1);
        let u = DMatrix::from_column_slice(3, 1, &[0.6, 0.8, 0.0]);
        let p = &u * u.transpose();
        let mut losses = vec![0.0; 2];
        family.losses(&vectorise(&p), &mut losses);
        for (i, beta) in tasks.iter().enumerate() {
            assert!((losses[i] - 0.25 - residual(&u, beta)).abs() < 1e-12);
        }
        // Linear loss: f(P + t D) - f(P) = t <grad, vec D>.
        let mut g = DVector::zeros(9);
        family.task_gradient(0, &vectorise(&p), &mut g);
        let dir = DMatrix::from_fn(3, 3, |i, j| (i + 2 * j) as f64 * 0.1);
        let mut moved = vec![0.0; 2];
        family.losses(&vectorise(&(&p + &dir)), &mut moved);
        assert!((moved[0] - losses[0] - g.dot(&vectorise(&dir))).abs() < 1e-12);
    }

    #[test]
    fn ky_fan_dual_lower_bounds_every_projector_and_is_tight_for_one_task() {
        let tasks: Vec<_> = (0..3).map(|i| unit(3, i)).collect();
        let family = FantopeFamily::new(UpstreamLosses::population(&tasks, 0.0), 2);
        // e1, e2, e3 with k = 2: OPT = 1/3 (P = 2/3 I), attained by uniform weights.
        let bound = family.certified_dual(&[1.0 / 3.0; 3]);
        assert!(bound <= 1.0 / 3.0 && bound > 1.0 / 3.0 - 1e-12);
        // Any weights give a bound below the worst loss of a random rank-2 projector.
        let a = DMatrix::from_fn(3, 3, |i, j| ((i * 5 + j * 3) % 7) as f64);
        let u = top_eigenvectors(&(&a + a.transpose()), 2);
        let worst = UpstreamLosses::population(&tasks, 0.0)
            .losses_at_basis(&u)
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        for w in [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]] {
            assert!(family.certified_dual(&w) <= worst);
        }
        // One task: its weight-1 dual equals the best rank-k residual (0).
        let single = FantopeFamily::new(UpstreamLosses::population(&tasks[..1], 0.0), 2);
        assert!(single.certified_dual(&[1.0]).abs() < 1e-12);
    }
}
