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

use super::spectral::{ky_fan_sum, sorted_eigen};
use super::upstream::UpstreamLosses;
use crate::family::{Evaluation, TaskFamily, Weigh};
use crate::problem::ball::{Ball, FeasibleSet};
use crate::problem::certificate::{norm_up, per_unit_weight};
use crate::problem::directed::{add_up, mul_down, mul_up, sub_down, sub_up};
use crate::problem::numerics::{gamma, round_upward, TrackedSum};
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
    /// Upper bounds on the exact `||M_i||_F`, for the certificates.
    norm_bounds: Vec<f64>,
}

impl FantopeFamily {
    /// The family of `losses` on the Fantope of trace `rank` (k).
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
        let norm_bounds = losses
            .matrices
            .iter()
            .map(|m| norm_up(m.as_slice()))
            .collect();
        Self {
            losses,
            rank,
            gradients,
            norms,
            norm_bounds,
        }
    }

    /// k: the trace of the Fantope's matrices (the representation's rank).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The upstream losses.
    pub fn upstream(&self) -> &UpstreamLosses {
        &self.losses
    }

    /// The Ky Fan dual `D(p)` (exact up to rounding) for non-negative weights.
    pub fn dual(&self, weights: &[f64]) -> f64 {
        let a = self.losses.weighted_matrix(weights);
        self.losses.weighted_constant(weights) - ky_fan_sum(&a, self.rank)
    }

    /// A lower bound on `min_{P in Fantope} max_i f_i(P)` that holds in
    /// floating point: `D(p) / sum_i p_i` less an a posteriori bound on the
    /// rounding of both sums and of the eigenvalue computation
    /// ([`enclose_eigenvalues`]; docs/THEORY.md#transfer-model). `-inf` (no
    /// bound) for weights that are negative or not finite, or when the
    /// computed eigenvectors are too far from orthonormal to bound the error.
    pub fn certified_dual(&self, weights: &[f64]) -> f64 {
        let Some(total) = checked_weight_sum(weights) else {
            return f64::NEG_INFINITY;
        };
        let m = weights.len();
        let a = self.losses.weighted_matrix(weights);
        // |fl(sum w_i M_i) - sum w_i M_i| <= gamma_{m+1} sum w_i |M_i| entrywise,
        // whose Frobenius norm is at most sum w_i ||M_i||_F.
        let weighted_norms = TrackedSum::of_products(weights, &self.norm_bounds);
        let input_error = mul_up(gamma(m + 1), weighted_norms.upper());
        let Ok(enclosure) = enclose_eigenvalues(&a, input_error) else {
            return f64::NEG_INFINITY;
        };
        let constant = TrackedSum::of_products(weights, &self.losses.constants);
        let dual = sub_down(constant.lower(), enclosure.top_sum_upper(self.rank));
        per_unit_weight(dual, &total)
    }
}

/// `sum_i p_i` for finite non-negative weights whose sum is certainly positive.
fn checked_weight_sum(weights: &[f64]) -> Option<TrackedSum> {
    if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        return None;
    }
    let total = TrackedSum::of(weights.iter().copied());
    (total.certainly_positive() && total.upper().is_finite()).then_some(total)
}

/// Eigenvalues of a symmetric matrix `A` that is known only to within a
/// Frobenius distance `input_error` of the exact one, with a radius that
/// provably encloses every exact eigenvalue: the j-th largest eigenvalue of
/// the exact matrix lies in `values[j] +- radius`.
#[derive(Debug, Clone, PartialEq)]
pub struct EigenEnclosure {
    /// Computed eigenvalues, descending.
    pub values: Vec<f64>,
    /// Every exact eigenvalue lies within this distance of its computed one.
    pub radius: f64,
}

impl EigenEnclosure {
    /// Upper bound on the sum of the k largest exact eigenvalues.
    pub fn top_sum_upper(&self, k: usize) -> f64 {
        let k = k.min(self.values.len());
        let sum = TrackedSum::of(self.values[..k].iter().copied());
        round_upward(sum.upper() + k as f64 * self.radius)
    }

    /// Lower bound on the sum of all but the k largest exact eigenvalues.
    pub fn tail_sum_lower(&self, k: usize) -> f64 {
        let tail = &self.values[k.min(self.values.len())..];
        let sum = TrackedSum::of(tail.iter().copied());
        -round_upward(tail.len() as f64 * self.radius - sum.lower())
    }
}

/// Encloses the eigenvalues of the exact symmetric matrix behind `a`
/// (`||A_exact - a||_F <= input_error`) by an a posteriori bound.
///
/// With the computed decomposition `a ~ V diag(lambda) V^T`:
/// - `eta >= ||V^T V - I||_2` (the computed `V^T V - I` plus its rounding);
///   the orthogonal polar factor Q of V then has `||V - Q||_2 <= eta`, so
///   `||V L V^T - Q L Q^T||_2 <= eta (2 + eta) max|lambda|`;
/// - `r >= ||a - V L V^T||_F` (the computed residual plus its rounding,
///   `gamma_{d+2} max|lambda| ||V||_F^2`);
/// - Q L Q^T has exactly the eigenvalues lambda, and by Weyl's inequality
///   every sorted eigenvalue of A_exact is within
///   `input_error + r + eta (2 + eta) max|lambda|` of the matching lambda.
///
/// Fails (with the reason) when the matrix is not finite, or V is too far
/// from orthonormal (`eta >= 1/2`) for the bound to mean anything.
pub fn enclose_eigenvalues(a: &DMatrix<f64>, input_error: f64) -> Result<EigenEnclosure, String> {
    if !input_error.is_finite() || a.iter().any(|v| !v.is_finite()) {
        return Err("the weighted matrix is not finite".into());
    }
    let (values, vectors) = sorted_eigen(a);
    if values.iter().any(|v| !v.is_finite()) {
        return Err("the eigen-decomposition did not produce finite eigenvalues".into());
    }
    let largest = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let eta = orthonormality_bound(&vectors);
    if eta.is_nan() || eta >= 0.5 {
        return Err(format!(
            "the computed eigenvectors are not orthonormal enough to bound the error (||V^T V - I|| <= {eta:.1e})"
        ));
    }
    let residual = decomposition_residual_bound(a, &values, &vectors);
    // Weyl: input error, residual, and the distance to the orthogonal polar factor.
    let polar = mul_up(mul_up(eta, add_up(2.0, eta)), largest);
    let radius = add_up(add_up(input_error, residual), polar);
    if !radius.is_finite() {
        return Err("the eigenvalue error bound is not finite".into());
    }
    Ok(EigenEnclosure { values, radius })
}

/// An upper bound on `||V^T V - I||_F`, each entry a tracked sum: the
/// computed entries' norm plus the norm of their error bounds.
fn orthonormality_bound(vectors: &DMatrix<f64>) -> f64 {
    // Entry (j, i) forms the same products in the same order as (i, j), so
    // the upper triangle is mirrored, bits and bounds alike.
    let (gram, gram_rounding) = tracked_symmetric_entries(vectors.ncols(), |i, j| {
        let mut entry =
            TrackedSum::of_products(vectors.column(i).as_slice(), vectors.column(j).as_slice());
        entry.add(if i == j { -1.0 } else { 0.0 });
        entry
    });
    add_up(norm_up(&gram), norm_up(&gram_rounding))
}

/// An upper bound on `||a - V L V^T||_F` likewise; each `lambda_k v_jk`
/// rounds once, and its enclosure by directed products bounds that rounding.
fn decomposition_residual_bound(a: &DMatrix<f64>, values: &[f64], vectors: &DMatrix<f64>) -> f64 {
    let d = a.nrows();
    // The rows of V and of V L (with their rounding) are formed once,
    // contiguous, rather than once per entry.
    let rows = vectors.transpose();
    let rows = rows.as_slice();
    let (mut scaled_rows, mut scaled_errors) = (vec![0.0; d * d], vec![0.0; d * d]);
    for (j, row) in rows.chunks_exact(d).enumerate() {
        for ((k, &w), &lambda) in row.iter().enumerate().zip(values) {
            scaled_rows[k + j * d] = lambda * w;
            scaled_errors[k + j * d] = sub_up(mul_up(lambda, w), mul_down(lambda, w));
        }
    }
    let (residual, residual_rounding) = tracked_entries(d, |i, j| {
        let mut entry = TrackedSum::default();
        entry.add(a[(i, j)]);
        let row = j * d..(j + 1) * d;
        let products = rows[i * d..(i + 1) * d]
            .iter()
            .zip(&scaled_rows[row.clone()]);
        for ((v, scaled), scaled_error) in products.zip(&scaled_errors[row]) {
            entry.add_inexact_product(-v, *scaled, *scaled_error);
        }
        entry
    });
    add_up(norm_up(&residual), norm_up(&residual_rounding))
}

/// [`tracked_entries`] of a matrix whose entry (j, i) is computed exactly
/// as (i, j): the upper triangle, mirrored.
fn tracked_symmetric_entries(
    d: usize,
    entry: impl Fn(usize, usize) -> TrackedSum,
) -> (Vec<f64>, Vec<f64>) {
    let (mut values, mut errors) = (vec![0.0; d * d], vec![0.0; d * d]);
    for j in 0..d {
        for i in 0..=j {
            let sum = entry(i, j);
            for index in [i + j * d, j + i * d] {
                values[index] = sum.value();
                errors[index] = sum.error_bound();
            }
        }
    }
    (values, errors)
}

/// The d x d tracked sums `entry(i, j)`: their computed values and their
/// error bounds, each column-major.
fn tracked_entries(d: usize, entry: impl Fn(usize, usize) -> TrackedSum) -> (Vec<f64>, Vec<f64>) {
    let (mut values, mut errors) = (Vec::with_capacity(d * d), Vec::with_capacity(d * d));
    for j in 0..d {
        for i in 0..d {
            let sum = entry(i, j);
            values.push(sum.value());
            errors.push(sum.error_bound());
        }
    }
    (values, errors)
}

/// A certified lower bound on the worst residual, with its error analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualBound {
    /// Certified: at most `min over rank-k U of max_i ||(I - U U^T) beta_i||^2`
    /// in exact arithmetic (0 when nothing better is certified).
    pub value: f64,
    /// What was subtracted from the computed dual for rounding and
    /// eigenvalue perturbation (same units as `value`).
    pub error_bound: f64,
    /// Empty when the bound is the Ky Fan dual; otherwise why it fell back to 0.
    pub note: String,
}

/// Certified lower bound on the worst residual `max_i ||(I - P) beta_i||^2`
/// of every rank-k projector P (and of every P in the Fantope), from the
/// Ky Fan dual at `weights` in its cancellation-free form:
///
/// `min_{P in F_k} sum_i p_i beta_i^T (I - P) beta_i` = the sum of the `d - k`
/// smallest eigenvalues of `A(p) = sum_i p_i beta_i beta_i^T`,
///
/// because `I - P` ranges over the Fantope of rank `d - k`. No constant is
/// subtracted (in particular no sigma^2, and not `tr A` minus the top k), so
/// the bound keeps its relative accuracy at any noise level. The tasks are
/// divided by a power of two first (exact), so any magnitude of beta whose
/// squares are representable works; the eigenvalue error is bounded by
/// [`enclose_eigenvalues`], the rounding of `A(p)` by `gamma_{m+1} sum_i p_i
/// ||beta_i||^2`, and the bound is divided by an upper bound on `sum_i p_i`.
/// Since `A(p)` is positive semi-definite, the bound is at least 0; where no
/// error bound is available it is 0 (always valid: residuals are >= 0).
pub fn certified_residual_bound(
    tasks: &[DVector<f64>],
    weights: &[f64],
    k: usize,
) -> ResidualBound {
    let fallback = |note: String| ResidualBound {
        value: 0.0,
        error_bound: f64::NAN,
        note,
    };
    if tasks.len() != weights.len() || tasks.is_empty() {
        return fallback("no weights for the tasks".into());
    }
    let Some(total) = checked_weight_sum(weights) else {
        return fallback("the certificate weights are not finite and non-negative".into());
    };
    let d = tasks[0].len();
    let m = tasks.len();
    let scale = super::model::power_of_two_scale(
        tasks
            .iter()
            .zip(weights)
            .filter(|(_, w)| **w > 0.0)
            .flat_map(|(t, _)| t.iter().copied()),
    );
    let mut a = DMatrix::<f64>::zeros(d, d);
    let mut weighted_energy = TrackedSum::default();
    for (beta, &w) in tasks.iter().zip(weights) {
        if w > 0.0 {
            let scaled = beta / scale;
            a.ger(w, &scaled, &scaled, 1.0);
            let energy = TrackedSum::of_squares(scaled.iter().copied()).upper();
            weighted_energy.add_product(w, energy);
        }
    }
    let input_error = mul_up(gamma(m + 2), weighted_energy.upper());
    let enclosure = match enclose_eigenvalues(&a, input_error) {
        Ok(e) => e,
        Err(reason) => return fallback(reason),
    };
    let tail = enclosure.tail_sum_lower(k);
    let computed: f64 = enclosure.values[k.min(d)..].iter().sum();
    let value_scaled = per_unit_weight(tail.max(0.0), &total);
    let scale2 = scale * scale;
    // Scaling back is exact unless the result is subnormal, where it may
    // round up: rounded down, and never below 0 (residuals are not).
    let value = mul_down(value_scaled, scale2).max(0.0);
    ResidualBound {
        value,
        error_bound: ((computed - tail) / total.value()).max(0.0) * scale2,
        note: String::new(),
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

    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), crate::Error> {
        for (i, loss) in losses.iter_mut().enumerate() {
            *loss = self.losses.constants[i] + self.gradients.column(i).dot(theta);
        }
        Ok(())
    }

    fn evaluate(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> Result<(), crate::Error> {
        self.losses(theta, &mut out.losses)?;
        weigh(&out.losses, &mut out.weights);
        crate::family::combine_task_gradients(
            &self.gradients,
            &out.weights,
            &mut out.gradient,
            &mut out.task_gradient_norms,
        );
        Ok(())
    }

    fn task_gradient(
        &self,
        task: usize,
        _theta: &DVector<f64>,
        gradient: &mut DVector<f64>,
    ) -> Result<(), crate::Error> {
        gradient.copy_from(&self.gradients.column(task));
        Ok(())
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
    /// Upstream losses `f_i(P)` at `projector`.
    pub losses: Vec<f64>,
    /// `max_i f_i(P)`.
    pub max_loss: f64,
    /// Certificate weights on the upstream tasks (on the simplex).
    pub weights: Vec<f64>,
    /// Certified lower bound (best Ky Fan dual seen) on the minimax over the
    /// Fantope, hence over every rank-k representation.
    pub lower_bound: f64,
    /// Certified gap: `max_loss` plus its rounding bound, less `lower_bound`.
    pub gap: f64,
    /// Iterations run.
    pub iterations: u64,
    /// mu: the temperature at the end of the run.
    pub mu: Option<f64>,
    /// Wall-clock time of the solve, in seconds.
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
        certify_every: Some(10),
        ..SolveOptions::default()
    };
    // The options are built here from a validated scenario; should the core
    // solver still reject one, it is our bug, not the user's flag.
    let outcome = solve(
        Arc::new(family),
        FeasibleSet::Fantope { dim: d, rank: k },
        &options,
    )
    .map_err(|e| match e {
        crate::Error::Input(input) => crate::Error::Solver(format!(
            "Fantope solve: the core solver rejected an internal setting ({input}); the scenario passed validation, so please report this"
        )),
        other => other,
    })?;
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

    /// `sum x_k y_k` as if in twice the working precision (Ogita, Rump and
    /// Oishi's Dot2: exact products and sums by error-free transformations),
    /// an independent reference for the certified sums.
    fn accurate_dot(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
        let (mut sum, mut carried) = (0.0f64, 0.0f64);
        for (x, y) in pairs {
            let product = x * y;
            let product_error = x.mul_add(y, -product);
            let next = sum + product;
            let back = next - sum;
            let sum_error = (sum - (next - back)) + (product - back);
            sum = next;
            carried += sum_error + product_error;
        }
        sum + carried
    }

    fn accurate_sum_of_squares<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
        accurate_dot(values.map(|v| (*v, *v)))
    }

    #[test]
    fn the_enclosure_radius_covers_its_analysis_and_beats_the_a_priori_one_at_large_d() {
        // At d = 200 the rounding of V^T V and of V L V^T (200 terms per
        // entry) is worth far more than a few units of the result: the
        // radius must cover the analysis (THEORY.md, Fantope certificate)
        // evaluated with V^T V - I and a - V L V^T computed as if in twice
        // the precision, and the running error bounds must not be looser
        // than the a priori gamma_{d+1} ||V||_F^2 and gamma_{d+2} max|L|
        // ||V||_F^2 they replace.
        let d = 200;
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(12);
        let mut uniform = move || rand::Rng::random_range(&mut rng, -0.5..0.5);
        let g = DMatrix::from_fn(d, d, |_, _| uniform());
        let a = (&g + g.transpose()) * 0.5;
        let enclosure = enclose_eigenvalues(&a, 0.0).unwrap();
        let (values, v) = sorted_eigen(&a);
        let largest = values.iter().map(|x| x.abs()).fold(0.0, f64::max);
        let gram = DMatrix::from_fn(d, d, |i, j| {
            accurate_dot((0..d).map(|k| (v[(k, i)], v[(k, j)]))) - if i == j { 1.0 } else { 0.0 }
        });
        let eta = accurate_sum_of_squares(gram.iter()).sqrt();
        // lambda_k v_jk = s + e exactly (e by a fused multiply-add).
        let residual = DMatrix::from_fn(d, d, |i, j| {
            let scaled = |k: usize| values[k] * v[(j, k)];
            let error = |k: usize| values[k].mul_add(v[(j, k)], -scaled(k));
            a[(i, j)]
                - accurate_dot((0..d).map(|k| (v[(i, k)], scaled(k))))
                - accurate_dot((0..d).map(|k| (v[(i, k)], error(k))))
        });
        let residual = accurate_sum_of_squares(residual.iter()).sqrt();
        let analysis = residual + eta * (2.0 + eta) * largest;
        assert!(
            enclosure.radius >= analysis,
            "radius {:e} below the analysis' {analysis:e}",
            enclosure.radius
        );
        let frobenius_v2 = accurate_sum_of_squares(v.iter());
        let eta_a_priori = eta + gamma(d + 1) * frobenius_v2;
        // Each part covers its own analysis, within its a priori bound: the
        // polar term's running bound dwarfs the residual, so only a check of
        // the parts sees the residual go missing.
        let eta_bound = orthonormality_bound(&v);
        assert!(
            (eta..=eta_a_priori).contains(&eta_bound),
            "{eta_bound:e} against {eta:e} and {eta_a_priori:e}"
        );
        let residual_bound = decomposition_residual_bound(&a, &values, &v);
        let residual_a_priori = residual + gamma(d + 2) * largest * frobenius_v2;
        assert!(
            (residual..=residual_a_priori).contains(&residual_bound),
            "{residual_bound:e} against {residual:e} and {residual_a_priori:e}"
        );
        let a_priori = residual
            + gamma(d + 2) * largest * frobenius_v2
            + eta_a_priori * (2.0 + eta_a_priori) * largest;
        assert!(
            enclosure.radius <= a_priori,
            "radius {:e} above the a priori {a_priori:e}",
            enclosure.radius
        );
    }

    #[test]
    fn losses_and_gradients_match_the_population_formula() {
        let tasks = vec![
            DVector::from_vec(vec![1.0, 2.0, 0.5]),
            DVector::from_vec(vec![0.0, -1.0, 1.0]),
        ];
        let family = FantopeFamily::new(UpstreamLosses::population(&tasks), 1);
        let u = DMatrix::from_column_slice(3, 1, &[0.6, 0.8, 0.0]);
        let p = &u * u.transpose();
        let mut losses = vec![0.0; 2];
        family.losses(&vectorise(&p), &mut losses).unwrap();
        for (i, beta) in tasks.iter().enumerate() {
            assert!((losses[i] - residual(&u, beta)).abs() < 1e-12);
        }
        // Linear loss: f(P + t D) - f(P) = t <grad, vec D>.
        let mut g = DVector::zeros(9);
        family.task_gradient(0, &vectorise(&p), &mut g).unwrap();
        let dir = DMatrix::from_fn(3, 3, |i, j| (i + 2 * j) as f64 * 0.1);
        let mut moved = vec![0.0; 2];
        family.losses(&vectorise(&(&p + &dir)), &mut moved).unwrap();
        assert!((moved[0] - losses[0] - g.dot(&vectorise(&dir))).abs() < 1e-12);
    }

    #[test]
    fn ky_fan_dual_lower_bounds_every_projector_and_is_tight_for_one_task() {
        let tasks: Vec<_> = (0..3).map(|i| unit(3, i)).collect();
        let family = FantopeFamily::new(UpstreamLosses::population(&tasks), 2);
        // e1, e2, e3 with k = 2: OPT = 1/3 (P = 2/3 I), attained by uniform weights.
        let bound = family.certified_dual(&[1.0 / 3.0; 3]);
        assert!(bound <= 1.0 / 3.0 && bound > 1.0 / 3.0 - 1e-12);
        // Any weights give a bound below the worst loss of a random rank-2 projector.
        let a = DMatrix::from_fn(3, 3, |i, j| ((i * 5 + j * 3) % 7) as f64);
        let u = top_eigenvectors(&(&a + a.transpose()), 2);
        let worst = UpstreamLosses::population(&tasks)
            .losses_at_basis(&u)
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        for w in [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]] {
            assert!(family.certified_dual(&w) <= worst);
        }
        // One task: its weight-1 dual equals the best rank-k residual (0).
        let single = FantopeFamily::new(UpstreamLosses::population(&tasks[..1]), 2);
        assert!(single.certified_dual(&[1.0]).abs() < 1e-12);
    }

    /// Orthogonal tasks sqrt(c_j) e_j: A(p) = diag(p_j c_j), so the bound is
    /// the sum of all but the k largest `p_j c_j`, divided by `sum p`.
    #[test]
    fn residual_bound_matches_the_closed_form_two_sided() {
        let tasks = vec![
            unit(4, 0) * 1.0,
            unit(4, 1) * 2f64.sqrt(),
            unit(4, 2) * 3f64.sqrt(),
        ];
        for (weights, k, want) in [
            (vec![0.5, 0.3, 0.2], 1, 0.5 + 0.6),
            (vec![1.0, 0.6, 0.4], 1, 1.1), // sum 2: divided by it
            (vec![0.5, 0.3, 0.2], 2, 0.5),
            (vec![0.2, 0.2, 0.6], 1, 0.2 + 0.4),
            (vec![0.0, 0.0, 1.0], 1, 0.0),
            (vec![0.25, 0.25, 0.5], 3, 0.0),
        ] {
            let b = certified_residual_bound(&tasks, &weights, k);
            assert!(b.note.is_empty(), "{}", b.note);
            assert!(
                b.value <= want,
                "{weights:?} k {k}: {} above {want}",
                b.value
            );
            assert!(
                b.value >= want - b.error_bound - 1e-15 && b.error_bound < 1e-13,
                "{weights:?} k {k}: {} too far below {want}",
                b.value
            );
            assert!(
                b.error_bound >= 0.0 && b.error_bound < 1e-13,
                "{}",
                b.error_bound
            );
            // The family (generic losses, top-k form) agrees.
            let family = FantopeFamily::new(UpstreamLosses::population(&tasks), k);
            let dual = family.certified_dual(&weights);
            assert!(
                dual <= want && dual >= want - 1e-13,
                "{weights:?} k {k}: family {dual}"
            );
        }
    }

    #[test]
    fn many_copies_of_one_task_charge_the_rounding_of_their_sum() {
        // m copies of one beta: A(p) = beta beta^T exactly, rank 1, so the
        // best plane leaves residual 0 and no certificate may exceed 0. The
        // m rank-1 updates of fl(A(p)) round the same way again and again
        // (order m u, not sqrt(m) u), which the input error must cover.
        let beta = DVector::from_vec(vec![0.6, 0.8]);
        let m = 16384;
        let weights = vec![1.0 / m as f64; m];
        let tasks = vec![beta.clone(); m];
        let b = certified_residual_bound(&tasks, &weights, 1);
        assert!(b.note.is_empty(), "{}", b.note);
        assert_eq!(b.value, 0.0, "{b:?}");
        // The test has teeth: the computed sum alone (no input error) would
        // certify a positive residual (5.5e-13, 45 times the rest of the
        // radius, when this test was written).
        let scale = super::super::model::power_of_two_scale(beta.iter().copied());
        let scaled = &beta / scale;
        let mut a = DMatrix::<f64>::zeros(2, 2);
        for &w in &weights {
            a.ger(w, &scaled, &scaled, 1.0);
        }
        let rounding_only = enclose_eigenvalues(&a, 0.0).unwrap().tail_sum_lower(1);
        assert!(rounding_only > 0.0, "{rounding_only:e}");
    }

    #[test]
    fn tasks_without_weight_do_not_set_the_scale() {
        // A task of size 1e250 at weight 0 must not scale the others (of size
        // 1e-150, squares 1e-300) down to nothing: A(p) = diag(1, 1, 0) 1e-300 / 2,
        // whose 2 smallest eigenvalues sum to 1e-300 / 2.
        let tasks = vec![unit(3, 0) * 1e-150, unit(3, 1) * 1e-150, unit(3, 2) * 1e250];
        let b = certified_residual_bound(&tasks, &[0.5, 0.5, 0.0], 1);
        let want = 0.5 * 1e-150 * 1e-150;
        assert!(
            b.value <= want && b.value >= want * (1.0 - 1e-12),
            "{} against {want:e}",
            b.value
        );
    }

    #[test]
    fn a_one_by_one_matrix_is_enclosed_around_its_entry() {
        let e = enclose_eigenvalues(&DMatrix::from_element(1, 1, 3.0), 1e-3).unwrap();
        assert_eq!(e.values, vec![3.0]);
        assert!(e.radius >= 1e-3 && e.radius <= 1e-3 + 1e-14, "{}", e.radius);
    }

    #[test]
    fn residual_bound_is_scale_invariant_and_refuses_bad_weights() {
        let tasks: Vec<_> = (0..3).map(|i| unit(3, i)).collect();
        let third = 1.0 / 3.0;
        for t in [1.0, 1e150, 1e-150, 3.0] {
            let scaled: Vec<_> = tasks.iter().map(|b| b * t).collect();
            let b = certified_residual_bound(&scaled, &[third; 3], 2);
            let want = third * t * t;
            assert!(
                b.value <= want && b.value >= want * (1.0 - 1e-13),
                "t = {t}: {}",
                b.value
            );
        }
        // Tasks scaled by a power of two: the same computation on the same
        // scaled tasks, so the value and its error bound scale by its square
        // exactly (the error bound is in the value's units).
        let mixed: Vec<_> = (0..3)
            .map(|i| DVector::from_vec(vec![1.0 + i as f64, 0.3 * i as f64, -0.7]))
            .collect();
        let base = certified_residual_bound(&mixed, &[0.2, 0.3, 0.5], 1);
        assert!(base.error_bound > 0.0 && base.value > 0.0, "{base:?}");
        // At 2^-505 and 2^510 the squares sit near the ends of the normal
        // range: only the scaling to a power of two near the data keeps the
        // sums of squares from underflowing or overflowing.
        for e in [-505, -300, -60, 60, 300, 510] {
            let t = 2f64.powi(e);
            let scaled: Vec<_> = mixed.iter().map(|b| b * t).collect();
            let b = certified_residual_bound(&scaled, &[0.2, 0.3, 0.5], 1);
            assert_eq!(b.value, base.value * t * t, "2^{e}");
            assert_eq!(b.error_bound, base.error_bound * t * t, "2^{e}");
        }
        for bad in [f64::NAN, -0.1, f64::INFINITY] {
            let b = certified_residual_bound(&tasks, &[0.5, 0.6, bad], 2);
            assert_eq!(b.value, 0.0);
            assert!(!b.note.is_empty());
            assert_eq!(
                FantopeFamily::new(UpstreamLosses::population(&tasks), 2)
                    .certified_dual(&[0.5, 0.6, bad]),
                f64::NEG_INFINITY
            );
        }
        assert_eq!(certified_residual_bound(&tasks, &[0.0; 3], 2).value, 0.0);
        assert_eq!(certified_residual_bound(&tasks, &[0.5; 2], 2).value, 0.0);
    }

    /// Random tasks at several scales and conditionings: the bound never
    /// exceeds the worst residual of any rank-k representation tried (the
    /// top-k eigenvectors of A(p), and random planes), and it is within
    /// rounding of the exact dual at the eigenvector plane.
    #[test]
    fn residual_bound_is_below_every_representation_on_random_instances() {
        use rand::Rng;
        let mut rng = crate::transfer::seed::rng_for(&[42]);
        for case in 0..60 {
            let d = 3 + case % 6;
            let m = 2 + case % 5;
            let k = 1 + case % (d - 1);
            let scale = [1.0, 1e-120, 1e120, 1e-8][case % 4];
            let collinear = case % 3 == 0;
            let base: Vec<f64> = (0..d).map(|_| rng.random::<f64>() - 0.5).collect();
            let tasks: Vec<DVector<f64>> = (0..m)
                .map(|_| {
                    DVector::from_fn(d, |j, _| {
                        let noise = rng.random::<f64>() - 0.5;
                        scale
                            * if collinear {
                                base[j] + 1e-9 * noise
                            } else {
                                noise
                            }
                    })
                })
                .collect();
            let weights: Vec<f64> = (0..m).map(|_| rng.random::<f64>()).collect();
            let bound = certified_residual_bound(&tasks, &weights, k);
            // Every rank-k representation: the worst residual is at least the
            // p-weighted mean residual, which the bound must not exceed.
            let total: f64 = weights.iter().sum();
            let mean_residual = |u: &DMatrix<f64>| {
                tasks
                    .iter()
                    .zip(&weights)
                    .map(|(b, w)| w * residual(u, b))
                    .sum::<f64>()
                    / total
            };
            let a = tasks
                .iter()
                .zip(&weights)
                .fold(DMatrix::zeros(d, d), |acc, (b, w)| {
                    acc + (b / scale) * (b / scale).transpose() * *w
                });
            let best = top_eigenvectors(&a, k);
            let at_best = mean_residual(&best);
            assert!(
                bound.value <= at_best,
                "case {case}: {} > {at_best}",
                bound.value
            );
            assert!(
                bound.value >= at_best - 1e-12 * scale * scale * (1.0 + a.norm()),
                "case {case}: {} far below {at_best}",
                bound.value
            );
            for _ in 0..5 {
                let random = DMatrix::from_fn(d, k, |_, _| rng.random::<f64>() - 0.5)
                    .qr()
                    .q();
                assert!(bound.value <= mean_residual(&random), "case {case}");
            }
        }
    }

    #[test]
    fn enclosure_contains_the_exact_eigenvalues_and_rounding_helpers_round_down() {
        // Eigenvalues 1, 2, 4 of Q diag Q^T with a rotation Q (exact up to rounding of a).
        let (c, s) = (0.6, 0.8);
        let q = DMatrix::from_row_slice(3, 3, &[c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0]);
        let a =
            &q * DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 2.0, 4.0])) * q.transpose();
        let e = enclose_eigenvalues(&a, 0.0).unwrap();
        for (got, want) in e.values.iter().zip([4.0, 2.0, 1.0]) {
            assert!((got - want).abs() <= e.radius + 1e-15, "{got} vs {want}");
        }
        assert!(e.radius > 0.0 && e.radius < 1e-13, "{}", e.radius);
        assert!(e.top_sum_upper(1) >= 4.0 && e.top_sum_upper(1) < 4.0 + 1e-12);
        assert!(e.tail_sum_lower(1) <= 3.0 && e.tail_sum_lower(1) > 3.0 - 1e-12);
        assert!(e.top_sum_upper(2) >= 6.0 && e.tail_sum_lower(2) <= 1.0);
        // An input error widens the radius by at least that much.
        let wide = enclose_eigenvalues(&a, 0.5).unwrap();
        assert!(wide.radius >= 0.5 && wide.radius < 0.5 + 1e-12);
        assert!(wide.tail_sum_lower(1) <= 3.0 - 1.0);
        let mut bad = a.clone();
        bad[(0, 1)] = f64::NAN;
        assert!(enclose_eigenvalues(&bad, 0.0).is_err());
        // Rounding helpers: the sum 1 of 0.25 and 0.75 is exact and known
        // to within u; dividing 1 and -1 by it rounds away from the quotient.
        let total = checked_weight_sum(&[0.25, 0.75]).unwrap();
        assert_eq!(total.value(), 1.0);
        let down = per_unit_weight(1.0, &total);
        assert!(down < 1.0 && down > 1.0 - 1e-15, "{down}");
        let down = per_unit_weight(-1.0, &total);
        assert!(down < -1.0 && down > -1.0 - 1e-15, "{down}");
        assert!(checked_weight_sum(&[0.0, 0.0]).is_none());
        assert!(checked_weight_sum(&[1.0, -1.0]).is_none());
        assert!(checked_weight_sum(&[1.0, f64::INFINITY]).is_none());
        assert_eq!(
            checked_weight_sum(&[1.0, -0.0]).map(|t| t.value()),
            Some(1.0)
        );
    }

    #[test]
    fn family_reports_its_shape_gradients_and_bounds() {
        let tasks = vec![
            DVector::from_vec(vec![1.0, 2.0, 0.0]),
            DVector::from_vec(vec![0.0, 0.0, 3.0]),
        ];
        let family = FantopeFamily::new(UpstreamLosses::population(&tasks), 1);
        assert_eq!(family.kind(), "fantope");
        assert_eq!((family.num_tasks(), family.dim(), family.rank()), (2, 9, 1));
        let rank_two = FantopeFamily::new(UpstreamLosses::population(&tasks), 2);
        assert_eq!(rank_two.rank(), 2);
        assert_eq!(family.smoothness(), 0.0);
        // ||beta beta^T||_F = ||beta||^2: 5 and 9; constants 5 and 9.
        assert!((family.gradient_bound_on_ball(7.0) - 9.0).abs() < 1e-12);
        assert!((family.loss_bound_on_ball(2.0) - (9.0 + 9.0 * 2.0)).abs() < 1e-12);
        assert_eq!(family.upstream().num_tasks(), 2);
        // evaluate: losses at P = e3 e3^T are (5, 0); gradient = sum w_i (-vec M_i).
        let p = DMatrix::from_fn(3, 3, |i, j| if i == 2 && j == 2 { 1.0 } else { 0.0 });
        let theta = vectorise(&p);
        assert_eq!(unvectorise(&theta, 3), p);
        let mut out = Evaluation::new(2, 9);
        let mut weigh = |_: &[f64], w: &mut [f64]| {
            w[0] = 0.25;
            w[1] = 0.75;
        };
        family.evaluate(&theta, &mut weigh, &mut out).unwrap();
        assert!((out.losses[0] - 5.0).abs() < 1e-12 && out.losses[1].abs() < 1e-12);
        let m0 = &tasks[0] * tasks[0].transpose();
        let m1 = &tasks[1] * tasks[1].transpose();
        let want = vectorise(&(m0 * -0.25 + m1 * -0.75));
        assert!((&out.gradient - want).amax() < 1e-12);
        // The certificate at the evaluation's weights is the certified dual.
        let bound = family.certified_lower_bound(&theta, &out, &Ball::unconstrained());
        assert_eq!(bound, family.certified_dual(&[0.25, 0.75]));
        // D(0.25, 0.75) = 0.25 * 5 + 0.75 * 9 - max(1.25, 6.75) = 1.25 (k = 1).
        assert!(bound <= 1.25 && bound > 1.25 - 1e-12, "{bound}");
        assert!((family.dual(&[0.25, 0.75]) - 1.25).abs() < 1e-12);
    }

    #[test]
    fn fantope_minimax_certifies_the_tied_optimum() {
        // e1, e2, e3, k = 2: OPT = 1/3 at P = (2/3) I.
        let tasks: Vec<_> = (0..3).map(|i| unit(3, i)).collect();
        let losses = UpstreamLosses::population(&tasks);
        let solution = fantope_minimax(&losses, 2, None, 600, None, Method::Accelerated).unwrap();
        assert!(
            solution.lower_bound <= 1.0 / 3.0,
            "{}",
            solution.lower_bound
        );
        assert!(solution.max_loss >= 1.0 / 3.0 - 1e-12);
        assert!(solution.gap < 1e-2, "gap {}", solution.gap);
        assert!((solution.projector.trace() - 2.0).abs() < 1e-9);
        assert!((solution.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // The iteration budget is the caller's.
        for iterations in [7, 31] {
            let short =
                fantope_minimax(&losses, 2, None, iterations, None, Method::Accelerated).unwrap();
            assert_eq!(short.iterations, iterations);
        }
    }

    #[test]
    fn the_ky_fan_certificate_is_as_tight_at_any_scale() {
        // Tasks t e_1, t e_2, t e_3 with k = 2: OPT = t^2 / 3 at uniform
        // weights. Every allowance is relative to the matrices' size, so the
        // bound is within 1e-12 relative of OPT at t^2 = 2^-60 as at 1 and
        // 2^60 (an allowance that divides by the eigenvalues' size would
        // swamp the small case).
        for e in [-30, 0, 30] {
            let t = 2f64.powi(e);
            let tasks: Vec<_> = (0..3).map(|i| unit(3, i) * t).collect();
            let family = FantopeFamily::new(UpstreamLosses::population(&tasks), 2);
            let bound = family.certified_dual(&[1.0 / 3.0; 3]);
            let want = t * t / 3.0;
            assert!(
                bound <= want && bound >= want * (1.0 - 1e-12),
                "t = 2^{e}: {bound:e} against {want:e}"
            );
        }
        // The top-k sum's own rounding allowance scales with the eigenvalues.
        for e in [-40, 0, 40] {
            let t = 2f64.powi(e);
            let enclosure = EigenEnclosure {
                values: vec![4.0 * t, 2.0 * t, 1.0 * t],
                radius: 0.0,
            };
            let top = enclosure.top_sum_upper(2);
            assert!(
                top >= 6.0 * t && top <= 6.0 * t * (1.0 + 1e-14),
                "2^{e}: {top:e}"
            );
        }
    }
}
