//! Rank-k minimax pre-training: softmax-weighted Riemannian gradient descent
//! on the Grassmannian of k-planes in R^d, with QR retraction.
//!
//! The iterate is a basis U (d x k, orthonormal columns); the losses are
//! `f_i(U) = c_i - tr(U^T M_i U)`. Each step:
//! 1. `p = softmax(f(U) / mu)` (weights on the tasks);
//! 2. Euclidean gradient of the smoothed maximum `F_mu`: `G = -2 (sum_i p_i M_i) U`;
//! 3. Riemannian gradient `(I - U U^T) G` (the horizontal part: F depends only on span U);
//! 4. `U <- qf(U - t * grad)` with t from Armijo backtracking on `F_mu`;
//! 5. `mu` shrinks geometrically from `mu_start` to `mu_end` (continuation),
//!    so early steps see a smooth objective and late ones the true maximum.
//!
//! The problem is non-convex, so the result is certified, not assumed: its
//! worst loss is compared with the Ky Fan dual bound `D(p)` (fantope.rs),
//! which lower-bounds every rank-k projector. The solver is an argmin
//! [`Solver`] run by argmin's [`Executor`], so observers and the cost
//! bookkeeping (best iterate) come from argmin.

use super::fantope::FantopeFamily;
use super::upstream::UpstreamLosses;
use crate::problem::numerics::{log_sum_exp, softmax};
use argmin::core::{
    CostFunction, Error as ArgminError, Executor, IterState, Problem, Solver, State,
    TerminationReason, TerminationStatus, KV,
};
use nalgebra::{DMatrix, DVector};

/// The rank-k minimax problem for argmin: cost = worst upstream loss.
#[derive(Debug, Clone)]
pub struct GrassmannProblem {
    /// The upstream losses `f_i(U) = c_i - tr(U^T M_i U)`.
    pub losses: UpstreamLosses,
}

impl GrassmannProblem {
    fn task_losses(&self, basis: &DMatrix<f64>) -> Vec<f64> {
        self.losses.losses_at_basis(basis)
    }
}

impl CostFunction for GrassmannProblem {
    type Param = DMatrix<f64>;
    type Output = f64;

    fn cost(&self, basis: &Self::Param) -> Result<f64, ArgminError> {
        Ok(max(&self.task_losses(basis)))
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// The state argmin keeps for this solver.
pub type GrassmannState = IterState<DMatrix<f64>, (), (), (), (), f64>;

/// Softmax-weighted Riemannian gradient descent with QR retraction.
#[derive(Debug, Clone)]
pub struct SoftmaxGrassmann {
    mu: f64,
    mu_end: f64,
    decay: f64,
    step: f64,
    /// Consecutive steps without an acceptable decrease.
    stalls: u32,
    /// Weights of the last step (softmax of the losses at the current iterate).
    pub weights: Vec<f64>,
    /// Evaluate the Ky Fan dual at the softmax weights every this many steps (0: never).
    pub certify_every: u64,
    /// The best certified dual seen and its weights.
    pub best_dual: Option<(f64, Vec<f64>)>,
    family: Option<FantopeFamily>,
}

impl SoftmaxGrassmann {
    /// Temperature shrinking from `mu_start` to `mu_end` over `iterations` steps.
    pub fn new(mu_start: f64, mu_end: f64, iterations: u64) -> Self {
        let decay = if iterations == 0 {
            1.0
        } else {
            (mu_end / mu_start).powf(1.0 / iterations as f64)
        };
        Self {
            mu: mu_start,
            mu_end,
            decay,
            step: 1.0,
            stalls: 0,
            weights: Vec::new(),
            certify_every: 0,
            best_dual: None,
            family: None,
        }
    }

    /// Also track the best Ky Fan dual over the run (every `every` steps).
    pub fn certifying(mut self, family: FantopeFamily, every: u64) -> Self {
        self.family = Some(family);
        self.certify_every = every;
        self
    }

    /// mu: the current temperature.
    pub fn mu(&self) -> f64 {
        self.mu
    }
}

/// Thin Q factor of a d x k matrix (the QR retraction).
fn retract(matrix: DMatrix<f64>) -> DMatrix<f64> {
    matrix.qr().q()
}

impl Solver<GrassmannProblem, GrassmannState> for SoftmaxGrassmann {
    fn name(&self) -> &str {
        "softmax-grassmann"
    }

    fn init(
        &mut self,
        problem: &mut Problem<GrassmannProblem>,
        state: GrassmannState,
    ) -> Result<(GrassmannState, Option<KV>), ArgminError> {
        let basis = state.get_param().cloned().ok_or_else(|| {
            argmin::core::ArgminError::NotInitialized {
                text: "softmax-grassmann needs an initial basis".into(),
            }
        })?;
        let basis = retract(basis);
        let losses = problem.problem("cost_count", |p| Ok(p.task_losses(&basis)))?;
        self.weights = softmax(&losses, self.mu);
        let cost = max(&losses);
        Ok((state.param(basis).cost(cost), None))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<GrassmannProblem>,
        mut state: GrassmannState,
    ) -> Result<(GrassmannState, Option<KV>), ArgminError> {
        let basis = state.take_param().expect("param set in init");
        let mu = self.mu;
        let losses = problem.problem("cost_count", |p| Ok(p.task_losses(&basis)))?;
        let smoothed = log_sum_exp(&losses, mu);
        let weights = softmax(&losses, mu);
        let euclidean = problem.problem("gradient_count", |p| {
            Ok(p.losses.weighted_times_basis(&weights, &basis) * -2.0)
        })?;
        let riemannian = &euclidean - &basis * basis.tr_mul(&euclidean);
        let slope = riemannian.norm_squared();

        // Armijo backtracking on F_mu along the retraction.
        let mut step = (self.step * 2.0).min(1e6);
        let mut accepted = None;
        for _ in 0..40 {
            let trial = retract(&basis - &riemannian * step);
            let trial_losses = problem.problem("cost_count", |p| Ok(p.task_losses(&trial)))?;
            if log_sum_exp(&trial_losses, mu) <= smoothed - 1e-4 * step * slope {
                accepted = Some((trial, trial_losses));
                break;
            }
            step *= 0.5;
        }
        // No decrease found: a stationary point of F_mu up to rounding. Stay;
        // after a few such steps (mu keeps shrinking meanwhile) it has converged.
        self.stalls = if accepted.is_some() {
            0
        } else {
            self.stalls + 1
        };
        let (next, next_losses) = accepted.unwrap_or((basis, losses));
        self.step = if self.stalls > 0 { 1.0 } else { step };
        self.weights = softmax(&next_losses, mu);
        if let Some(family) = &self.family {
            if self.certify_every > 0 && state.get_iter().is_multiple_of(self.certify_every) {
                let bound = family.certified_dual(&self.weights);
                if self.best_dual.as_ref().is_none_or(|(b, _)| bound > *b) {
                    self.best_dual = Some((bound, self.weights.clone()));
                }
            }
        }
        self.mu = (self.mu * self.decay).max(self.mu_end);
        let cost = max(&next_losses);
        let kv = argmin::kv!(
            "mu" => mu;
            "step" => step;
            "smoothed_loss" => smoothed;
            "gradient_norm" => slope.sqrt();
        );
        Ok((state.param(next).cost(cost), Some(kv)))
    }

    fn terminate(&mut self, _state: &GrassmannState) -> TerminationStatus {
        if self.stalls >= 5 {
            TerminationStatus::Terminated(TerminationReason::SolverConverged)
        } else {
            TerminationStatus::NotTerminated
        }
    }
}

/// Certificate weights for a rank-k solution U (KKT multiplier recovery).
///
/// At a rank-k minimax point with active tasks A, there are weights p on A
/// with `(I - U U^T) (sum_i p_i M_i) U = 0`, i.e. span(U) is an invariant
/// subspace of `A(p) = sum_i p_i M_i`; when it is the top-k one, the Ky Fan
/// dual `D(p)` equals `sum_i p_i f_i(U) = max_i f_i(U)` and the gap closes. So
/// for a few tolerances delta we take the tasks within delta of the worst,
/// find p on their simplex minimising `||sum_i p_i G_i||_F^2` with
/// `G_i = (I - U U^T) M_i U` (a small convex QP, projected gradient), and keep
/// the weights with the largest certified dual. Whatever p comes out, `D(p)`
/// is a valid lower bound; this only chooses p well.
pub fn kkt_weights(losses: &UpstreamLosses, k: usize, basis: &DMatrix<f64>) -> (Vec<f64>, f64) {
    let m = losses.num_tasks();
    let family = FantopeFamily::new(losses.clone(), k);
    let task_losses = losses.losses_at_basis(basis);
    let worst = max(&task_losses);
    let spread = worst - task_losses.iter().copied().fold(f64::INFINITY, f64::min);
    let residual_gradients: Vec<DMatrix<f64>> = (0..m)
        .map(|i| {
            let g = losses.task_times_basis(i, basis);
            &g - basis * basis.tr_mul(&g)
        })
        .collect();
    let gram = DMatrix::from_fn(m, m, |i, j| {
        residual_gradients[i].dot(&residual_gradients[j])
    });
    let lipschitz = 2.0
        * gram
            .clone()
            .symmetric_eigenvalues()
            .max()
            .max(f64::MIN_POSITIVE);
    let mut best = (
        vec![1.0 / m as f64; m],
        family.certified_dual(&vec![1.0 / m as f64; m]),
    );
    for delta in [1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1] {
        let active: Vec<usize> = (0..m)
            .filter(|&i| task_losses[i] >= worst - delta * spread.max(f64::MIN_POSITIVE))
            .collect();
        let sub = DMatrix::from_fn(active.len(), active.len(), |a, b| {
            gram[(active[a], active[b])]
        });
        let mut p = vec![1.0 / active.len() as f64; active.len()];
        for _ in 0..2000 {
            let grad = &sub * DVector::from_column_slice(&p) * 2.0;
            for (pi, gi) in p.iter_mut().zip(grad.iter()) {
                *pi -= gi / lipschitz;
            }
            crate::problem::numerics::project_onto_simplex(&mut p);
        }
        let mut weights = vec![0.0; m];
        for (a, &i) in active.iter().enumerate() {
            weights[i] = p[a];
        }
        let bound = family.certified_dual(&weights);
        if bound > best.1 {
            best = (weights, bound);
        }
    }
    best
}

/// Settings for [`grassmann_minimax`].
#[derive(Debug, Clone, Copy)]
pub struct GrassmannOptions {
    /// Riemannian gradient steps.
    pub iterations: u64,
    /// Start temperature, relative to the loss scale `max_i ||M_i||_F`.
    pub mu_start: f64,
    /// End temperature, relative to the same scale.
    pub mu_end: f64,
    /// Size of a seeded random perturbation of the start (relative, per entry):
    /// a start that is a critical point of every task (e.g. a coordinate plane
    /// for axis-aligned tasks) has a zero Riemannian gradient for any weights.
    pub perturbation: f64,
    /// Seed of the start's perturbation.
    pub seed: u64,
}

impl Default for GrassmannOptions {
    fn default() -> Self {
        Self {
            iterations: 3000,
            mu_start: 0.05,
            mu_end: 1e-5,
            perturbation: 1e-3,
            seed: 0,
        }
    }
}

/// The rank-k minimax representation and its certificate.
#[derive(Debug, Clone)]
pub struct GrassmannSolution {
    /// Best iterate (lowest worst loss), d x k with orthonormal columns.
    pub basis: DMatrix<f64>,
    /// Upstream losses at `basis`.
    pub losses: Vec<f64>,
    /// `max_i f_i(basis)`.
    pub max_loss: f64,
    /// Certificate weights: the KKT weights or the last softmax weights,
    /// whichever certifies more.
    pub weights: Vec<f64>,
    /// Certified Ky Fan lower bound `D(weights)` on every rank-k projector's worst loss.
    pub lower_bound: f64,
    /// Iterations run.
    pub iterations: u64,
    /// Wall-clock time of the solve, in seconds.
    pub seconds: f64,
}

/// Runs [`SoftmaxGrassmann`] from `init` through argmin's Executor.
pub fn grassmann_minimax(
    losses: &UpstreamLosses,
    k: usize,
    init: DMatrix<f64>,
    options: &GrassmannOptions,
) -> Result<GrassmannSolution, ArgminError> {
    let started = std::time::Instant::now();
    let scale = losses.scale().max(f64::MIN_POSITIVE);
    let solver = SoftmaxGrassmann::new(
        options.mu_start * scale,
        options.mu_end * scale,
        options.iterations,
    )
    .certifying(FantopeFamily::new(losses.clone(), k), 10);
    let problem = GrassmannProblem {
        losses: losses.clone(),
    };
    let mut rng = super::seed::rng_for(&[options.seed, 0x6a]);
    let noise = DMatrix::<f64>::from_fn(init.nrows(), init.ncols(), |_, _| {
        rand::Rng::sample(&mut rng, rand_distr::StandardNormal)
    });
    let init = retract(init + noise * options.perturbation);
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(init).max_iters(options.iterations))
        .run()?;
    let iterations = result.state().get_iter();
    let basis = result
        .state()
        .get_best_param()
        .cloned()
        .expect("argmin keeps the best parameter");
    let softmax_weights = result.solver().weights.clone();
    let family = FantopeFamily::new(losses.clone(), k);
    let softmax_bound = family.certified_dual(&softmax_weights);
    let (kkt, kkt_bound) = kkt_weights(losses, k, &basis);
    let mut candidates = vec![(kkt_bound, kkt), (softmax_bound, softmax_weights)];
    if let Some(best) = result.solver().best_dual.clone() {
        candidates.push(best);
    }
    let (lower_bound, weights) =
        candidates
            .into_iter()
            .fold((f64::NEG_INFINITY, Vec::new()), |a, b| {
                if b.0 > a.0 {
                    b
                } else {
                    a
                }
            });
    let task_losses = losses.losses_at_basis(&basis);
    Ok(GrassmannSolution {
        max_loss: max(&task_losses),
        losses: task_losses,
        basis,
        weights,
        lower_bound,
        iterations,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::average::average_basis;
    use crate::transfer::model::{orthonormality_error, residual};

    fn unit(d: usize, i: usize) -> DVector<f64> {
        DVector::from_fn(d, |j, _| if i == j { 1.0 } else { 0.0 })
    }

    #[test]
    fn finds_the_tied_plane_for_three_orthogonal_tasks() {
        // e1, e2, e3 with k = 2: the average solution is an arbitrary plane
        // (residuals 0, 0, 1 for a coordinate plane); the minimax plane has
        // normal (+-1, +-1, +-1)/sqrt3 and residual 1/3 for each task.
        let tasks: Vec<_> = (0..3).map(|i| unit(3, i)).collect();
        let losses = UpstreamLosses::population(&tasks);
        let start = DMatrix::from_columns(&[unit(3, 0), unit(3, 1)]);
        let solution = grassmann_minimax(&losses, 2, start, &GrassmannOptions::default()).unwrap();
        for beta in &tasks {
            assert!((residual(&solution.basis, beta) - 1.0 / 3.0).abs() < 1e-4);
        }
        assert!(orthonormality_error(&solution.basis) < 1e-12);
        let p = &solution.basis * solution.basis.transpose();
        let normal_projector = DMatrix::<f64>::identity(3, 3) - p;
        for i in 0..3 {
            assert!((normal_projector[(i, i)] - 1.0 / 3.0).abs() < 1e-4);
        }
        // Certified: the Ky Fan bound (1/3 at uniform weights) is below and close.
        assert!(solution.lower_bound <= solution.max_loss);
        assert!(solution.max_loss - solution.lower_bound < 1e-3);
    }

    #[test]
    fn improves_on_average_when_a_rare_direction_is_needed() {
        let d = 4;
        let mut tasks = vec![unit(d, 0); 6];
        tasks.extend(vec![unit(d, 1); 3]);
        tasks.push(unit(d, 2));
        let losses = UpstreamLosses::population(&tasks);
        let start = average_basis(&losses, 2);
        let avg_worst = max(&losses.losses_at_basis(&start));
        let solution = grassmann_minimax(&losses, 2, start, &GrassmannOptions::default()).unwrap();
        assert!((avg_worst - 1.0).abs() < 1e-12);
        // Fantope optimum: residual 1/3 per direction.
        assert!(
            (solution.max_loss - 1.0 / 3.0).abs() < 1e-3,
            "{}",
            solution.max_loss
        );
        assert!(solution.lower_bound <= solution.max_loss);
    }
}
