//! Certified lower bounds on OPT through the weighted dual function.
//!
//! For any weights p on the simplex, `D(p) = min_{theta in Theta} sum_i p_i f_i(theta)
//! <= OPT <= F(theta)`, so `F(theta) - D(p)` bounds the suboptimality of theta
//! from above. See docs/THEORY.md, section "Certificates".

use crate::ball::Ball;
use crate::kernels::{axpy, dot};
use nalgebra::{DMatrix, DVector};

/// `q(theta) = 1/2 theta^T Q theta + l^T theta + c` with Q symmetric PSD.
#[derive(Debug, Clone, PartialEq)]
pub struct QuadraticForm {
    pub hessian: DMatrix<f64>,
    pub linear: DVector<f64>,
    pub constant: f64,
}

impl QuadraticForm {
    pub fn value(&self, theta: &DVector<f64>) -> f64 {
        0.5 * theta.dot(&(&self.hessian * theta)) + self.linear.dot(theta) + self.constant
    }

    pub fn dim(&self) -> usize {
        self.linear.len()
    }
}

/// Certified lower bound on `min_{theta in ball} sum_i p_i q_i(theta)`.
///
/// Without a ball (or when the unconstrained minimiser lies inside it) this is
/// the exact minimum, computed with a refined Cholesky solve. Otherwise it is
/// the best Lagrangian bound `max_{nu >= 0} min_theta Phi(theta) + nu/2 (||theta||^2 - r^2)`
/// found by bisection on nu: every nu tried gives a valid bound (weak
/// duality), so the result is certified however the search ends. Returns
/// `-inf` when the weighted sum is unbounded below.
pub fn quadratic_dual_bound(forms: &[QuadraticForm], weights: &[f64], ball: &Ball) -> f64 {
    // Solvers certify every iteration: reuse one work space per thread, so
    // the common case (positive definite, minimiser inside the ball) neither
    // allocates nor leaves the caches.
    thread_local! {
        static WORK: std::cell::RefCell<DualWork> = std::cell::RefCell::new(DualWork::default());
    }
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        work.combine(forms, weights);
        match work.factor_and_minimise(ball) {
            Some(bound) => bound,
            None => {
                let combined = QuadraticForm {
                    hessian: DMatrix::from_column_slice(work.d, work.d, &work.hessian),
                    linear: DVector::from_column_slice(&work.linear),
                    constant: work.constant,
                };
                lagrangian_bound(&combined, ball)
            }
        }
    })
}

/// Work space of [`quadratic_dual_bound`]: the weighted sum of the forms and
/// its Cholesky factor, column-major d x d.
#[derive(Default)]
struct DualWork {
    d: usize,
    hessian: Vec<f64>,
    linear: Vec<f64>,
    constant: f64,
    /// Upper Cholesky factor U (H = U^T U) in the upper triangle.
    factor: Vec<f64>,
    theta: Vec<f64>,
    rhs: Vec<f64>,
    step: Vec<f64>,
}

impl DualWork {
    fn combine(&mut self, forms: &[QuadraticForm], weights: &[f64]) {
        let d = forms[0].dim();
        if self.d != d {
            *self = Self {
                d,
                hessian: vec![0.0; d * d],
                linear: vec![0.0; d],
                factor: vec![0.0; d * d],
                theta: vec![0.0; d],
                rhs: vec![0.0; d],
                step: vec![0.0; d],
                constant: 0.0,
            };
        }
        self.hessian.fill(0.0);
        self.linear.fill(0.0);
        self.constant = 0.0;
        for (form, &p) in forms.iter().zip(weights) {
            if p == 0.0 {
                continue;
            }
            axpy(p, form.hessian.as_slice(), &mut self.hessian);
            axpy(p, form.linear.as_slice(), &mut self.linear);
            self.constant += p * form.constant;
        }
        // Symmetrise away rounding so the factorisation sees a symmetric matrix.
        for j in 0..d {
            for i in j + 1..d {
                let mean = 0.5 * (self.hessian[i + j * d] + self.hessian[j + i * d]);
                self.hessian[i + j * d] = mean;
                self.hessian[j + i * d] = mean;
            }
        }
    }

    /// `H v` for the symmetric `H`: entry i is column i . v (contiguous).
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        for (o, column) in out.iter_mut().zip(self.hessian.chunks_exact(self.d)) {
            *o = dot(column, v);
        }
    }

    /// Upper Cholesky factor by contiguous column dot products; `false` where
    /// H is not (numerically) positive definite.
    fn factor(&mut self) -> bool {
        let d = self.d;
        for j in 0..d {
            let (done, rest) = self.factor.split_at_mut(j * d);
            let column = &mut rest[..d];
            for i in 0..j {
                let ui = &done[i * d..i * d + i];
                let v = (self.hessian[i + j * d] - dot(ui, &column[..i])) / done[i * d + i];
                column[i] = v;
            }
            let pivot = self.hessian[j + j * d] - dot(&column[..j], &column[..j]);
            if !(pivot > 0.0 && pivot.is_finite()) {
                return false;
            }
            column[j] = pivot.sqrt();
        }
        true
    }

    /// Solves `H x = rhs` in place with the factor: `U^T z = rhs`, then `U x = z`.
    fn solve(&self, x: &mut [f64]) {
        let d = self.d;
        for i in 0..d {
            let ui = &self.factor[i * d..i * d + i];
            x[i] = (x[i] - dot(ui, &x[..i])) / self.factor[i * d + i];
        }
        for i in (0..d).rev() {
            x[i] /= self.factor[i * d + i];
            let xi = x[i];
            axpy(-xi, &self.factor[i * d..i * d + i], &mut x[..i]);
        }
    }

    /// The minimum of the combined quadratic when H is positive definite and
    /// the minimiser lies in the ball (as [`minimise_quadratic_on_ball`]).
    fn factor_and_minimise(&mut self, ball: &Ball) -> Option<f64> {
        if !self.factor() {
            return None;
        }
        let mut theta = std::mem::take(&mut self.theta);
        let mut rhs = std::mem::take(&mut self.rhs);
        let mut step = std::mem::take(&mut self.step);
        for (t, l) in theta.iter_mut().zip(&self.linear) {
            *t = -l;
        }
        self.solve(&mut theta);
        // One step of iterative refinement.
        self.apply(&theta, &mut rhs);
        for (r, l) in rhs.iter_mut().zip(&self.linear) {
            *r += l;
        }
        step.copy_from_slice(&rhs);
        self.solve(&mut step);
        for (t, s) in theta.iter_mut().zip(&step) {
            *t -= s;
        }
        let inside = match *ball {
            Ball::Unconstrained => true,
            // As `Ball::contains`, without building a vector.
            Ball::Ball { radius } => dot(&theta, &theta).sqrt() <= radius * (1.0 + 1e-12),
            Ball::Fantope { .. } => ball.contains(&DVector::from_column_slice(&theta)),
        };
        let result = inside.then(|| {
            // min q = q(theta) - 1/2 g^T H^{-1} g with g the residual gradient.
            self.apply(&theta, &mut rhs); // H theta
            let quadratic = dot(&theta, &rhs);
            for (r, l) in rhs.iter_mut().zip(&self.linear) {
                *r += l; // g = H theta + l
            }
            step.copy_from_slice(&rhs);
            self.solve(&mut step);
            let correction = 0.5 * dot(&rhs, &step);
            let value = 0.5 * quadratic + dot(&self.linear, &theta) + self.constant;
            value - correction.max(0.0)
        });
        self.theta = theta;
        self.rhs = rhs;
        self.step = step;
        result
    }
}

/// Certified lower bound on `min_{theta in ball} q(theta)` (see [`quadratic_dual_bound`]).
pub fn minimise_quadratic_on_ball(q: &QuadraticForm, ball: &Ball) -> f64 {
    if let Some(cholesky) = q.hessian.clone().cholesky() {
        let mut theta = cholesky.solve(&(-&q.linear));
        // One step of iterative refinement.
        let residual = &q.hessian * &theta + &q.linear;
        theta -= cholesky.solve(&residual);
        if ball.contains(&theta) {
            // min q = q(theta) - 1/2 g^T H^{-1} g with g the residual gradient.
            let gradient = &q.hessian * &theta + &q.linear;
            let correction = 0.5 * gradient.dot(&cholesky.solve(&gradient));
            return q.value(&theta) - correction.max(0.0);
        }
    }
    lagrangian_bound(q, ball)
}

/// Eigen-decomposition route: handles singular Hessians and the ball.
fn lagrangian_bound(q: &QuadraticForm, ball: &Ball) -> f64 {
    let eigen = q.hessian.clone().symmetric_eigen();
    let lambda_max = eigen.eigenvalues.iter().copied().fold(0.0, f64::max);
    let tiny = lambda_max * 1e-13 + f64::MIN_POSITIVE;
    // Coordinates of the linear term in the eigenbasis.
    let a = eigen.eigenvectors.transpose() * &q.linear;
    let eigenvalues: Vec<f64> = eigen.eigenvalues.iter().map(|&l| l.max(0.0)).collect();
    // g(nu) = c - 1/2 sum a_j^2 / (l_j + nu) - nu r^2 / 2 is a lower bound for every nu >= 0.
    let bound_at = |nu: f64, r2: f64| -> f64 {
        let mut sum = 0.0;
        for (aj, &lj) in a.iter().zip(&eigenvalues) {
            let denominator = lj + nu;
            if denominator <= tiny {
                if aj.abs() > 1e-12 * (1.0 + q.linear.norm()) {
                    return f64::NEG_INFINITY;
                }
                continue;
            }
            sum += aj * aj / denominator;
        }
        q.constant - 0.5 * sum - 0.5 * nu * r2
    };
    let Some(r) = ball.radius() else {
        return bound_at(0.0, 0.0);
    };
    let r2 = r * r;
    // ||theta(nu)||^2 = sum a_j^2 / (l_j + nu)^2 is decreasing in nu; the best nu
    // makes it equal r^2. Bracket it, then bisect.
    let norm2_at = |nu: f64| -> f64 {
        a.iter()
            .zip(&eigenvalues)
            .map(|(aj, lj)| aj * aj / ((lj + nu) * (lj + nu)))
            .sum()
    };
    let mut best = bound_at(0.0, r2);
    if norm2_at(0.0) <= r2 && best.is_finite() {
        return best;
    }
    let mut lo = 0.0;
    let mut hi = (a.norm() / r).max(tiny);
    while norm2_at(hi) > r2 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if norm2_at(mid) > r2 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi {
            break;
        }
    }
    for nu in [lo, hi, 0.5 * (lo + hi)] {
        best = best.max(bound_at(nu, r2));
    }
    best
}

/// Certified lower bound for a lambda-strongly convex `Phi` from one point:
/// `Phi(theta) >= Phi(t') + g^T (theta - t') + lambda/2 ||theta - t'||^2`,
/// minimised over the ball (the minimiser is the projection of `t' - g / lambda`).
pub fn strongly_convex_bound(
    value: f64,
    gradient: &DVector<f64>,
    at: &DVector<f64>,
    lambda: f64,
    ball: &Ball,
) -> f64 {
    if lambda <= 0.0 {
        return f64::NEG_INFINITY;
    }
    // Without allocating (solvers certify every iteration): the minimiser
    // m = t' - g / lambda, scaled back onto the ball where it lies outside.
    let scale = match *ball {
        Ball::Unconstrained => 1.0,
        Ball::Ball { radius } => {
            let norm = at
                .iter()
                .zip(gradient.iter())
                .map(|(a, g)| (a - g / lambda).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > radius {
                radius / norm
            } else {
                1.0
            }
        }
        Ball::Fantope { .. } => {
            let mut minimiser = at - gradient / lambda;
            ball.project(&mut minimiser);
            let step = &minimiser - at;
            return value + gradient.dot(&step) + 0.5 * lambda * step.norm_squared();
        }
    };
    let (mut linear, mut quadratic) = (0.0, 0.0);
    for (a, g) in at.iter().zip(gradient.iter()) {
        let step = (a - g / lambda) * scale - a;
        linear += g * step;
        quadratic += step * step;
    }
    value + linear + 0.5 * lambda * quadratic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconstrained_minimum_of_a_quadratic_is_exact() {
        let q = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, 4.0]),
            linear: DVector::from_vec(vec![-2.0, -4.0]),
            constant: 3.0,
        };
        // Minimiser (1, 1), value 3 - 1 - 2 = 0.
        assert!((minimise_quadratic_on_ball(&q, &Ball::unconstrained())).abs() < 1e-14);
    }

    #[test]
    fn ball_bound_matches_the_constrained_minimum() {
        // min 1/2 ||theta - (3, 0)||^2 on the unit ball is 1/2 * 2^2 = 2.
        let q = QuadraticForm {
            hessian: DMatrix::identity(2, 2),
            linear: DVector::from_vec(vec![-3.0, 0.0]),
            constant: 4.5,
        };
        let bound = minimise_quadratic_on_ball(&q, &Ball::with_radius(1.0));
        assert!(bound <= 2.0 + 1e-12 && bound > 2.0 - 1e-9, "{bound}");
    }

    #[test]
    fn singular_direction_with_linear_term_is_unbounded() {
        let q = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]),
            linear: DVector::from_vec(vec![0.0, 1.0]),
            constant: 0.0,
        };
        assert_eq!(
            minimise_quadratic_on_ball(&q, &Ball::unconstrained()),
            f64::NEG_INFINITY
        );
        let bounded = minimise_quadratic_on_ball(&q, &Ball::with_radius(2.0));
        assert!((bounded + 2.0).abs() < 1e-9, "{bounded}");
    }

    fn combined(forms: &[QuadraticForm], p: &[f64]) -> QuadraticForm {
        let d = forms[0].dim();
        let mut q = QuadraticForm {
            hessian: DMatrix::zeros(d, d),
            linear: DVector::zeros(d),
            constant: 0.0,
        };
        for (f, &w) in forms.iter().zip(p) {
            q.hessian += &f.hessian * w;
            q.linear += &f.linear * w;
            q.constant += w * f.constant;
        }
        q
    }

    #[test]
    fn reused_work_space_matches_the_direct_route() {
        use crate::family::generators::random_psd;
        use rand::{rngs::StdRng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(4);
        for d in [1, 5, 33] {
            let forms: Vec<QuadraticForm> = (0..4)
                .map(|i| QuadraticForm {
                    hessian: random_psd(&mut rng, d, 2.0, 30.0),
                    linear: DVector::from_fn(d, |j, _| (i + j) as f64 * 0.1 - 0.7),
                    constant: 1.5 + i as f64,
                })
                .collect();
            for p in [[0.25; 4], [0.7, 0.0, 0.1, 0.2], [0.0, 0.0, 1.0, 0.0]] {
                for ball in [Ball::unconstrained(), Ball::with_radius(0.3)] {
                    let fast = quadratic_dual_bound(&forms, &p, &ball);
                    let direct = minimise_quadratic_on_ball(&combined(&forms, &p), &ball);
                    assert!(
                        (fast - direct).abs() <= 1e-11 * direct.abs().max(1.0),
                        "d={d} {p:?} {ball:?}: {fast} vs {direct}"
                    );
                }
            }
        }
        // A singular weighted sum with a linear term outside its range: -inf.
        let singular = vec![QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]),
            linear: DVector::from_vec(vec![0.0, 1.0]),
            constant: 0.0,
        }];
        assert_eq!(
            quadratic_dual_bound(&singular, &[1.0], &Ball::unconstrained()),
            f64::NEG_INFINITY
        );
    }
}
