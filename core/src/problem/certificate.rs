//! Certified lower bounds on OPT through the weighted dual function, true in
//! floating point.
//!
//! For any weights p >= 0 with `s = sum_i p_i > 0`, `D(p) = min_{theta in Theta}
//! sum_i p_i f_i(theta) <= s OPT`, so `D(p) / s <= OPT <= F(theta)`. Every
//! certificate here is computed in two steps: a point `theta^` and a curvature
//! `lambda` are chosen by any (approximate) means, then the bound
//! `min_{theta'} Phi(theta^) + g^T (theta' - theta^) + lambda/2 ||theta' - theta^||^2`
//! -- valid for ANY `theta^` by convexity -- is *evaluated* with running error
//! bounds on every sum ([`TrackedSum`]), directed rounding on every other
//! operation ([`crate::problem::directed`]), the distance between the stored
//! quadratic forms and the true tasks, and a certified `lambda` (Rump's
//! shifted Cholesky). See docs/THEORY.md, "Certificates under rounding".

use crate::linalg::kernels::{axpy, dot};
use crate::problem::ball::Ball;
use crate::problem::directed::{
    add_down, add_up, div_down, div_up, mul_down, mul_up, sqrt_down, sqrt_up, sub_down, sub_up,
};
use crate::problem::numerics::{
    gamma, round_up, round_upward, TrackedSum, UNDERFLOW_UNIT, UNIT_ROUNDOFF,
};
use nalgebra::{DMatrix, DVector};

/// Conjugate-gradient steps after the preconditioned first solve of the
/// dual's Newton point (see `DualWork::newton_point`).
const NEWTON_CG_STEPS: usize = 3;

/// Bisection steps for the multiplier of the Lagrangian point on a ball.
const LAGRANGIAN_BISECTION_STEPS: usize = 200;

/// A certified lower bound and how it was obtained (the JSON `certificate`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Certificate {
    /// A lower bound on OPT, true in floating point; `-inf` where none is valid.
    pub bound: f64,
    /// "dual" (certified curvature), "linearization" (convexity on a ball),
    /// "strong-convexity", "trivial" (the losses' own floor) or "none".
    pub kind: &'static str,
    /// The rounding allowance subtracted from the computed value (>= 0).
    pub error_bound: f64,
    /// Why the bound is loose or missing; empty otherwise.
    pub note: &'static str,
}

impl Certificate {
    /// No valid bound, with the reason.
    pub fn none(note: &'static str) -> Self {
        Self {
            bound: f64::NEG_INFINITY,
            kind: "none",
            error_bound: 0.0,
            note,
        }
    }

    /// A bound that holds without computation (e.g. least-squares losses >= 0).
    pub fn trivial(bound: f64, note: &'static str) -> Self {
        Self {
            bound,
            kind: "trivial",
            error_bound: 0.0,
            note,
        }
    }

    /// A bound from a convex model, made valid for a weighted sum that is
    /// only certified to have curvature `>= -deficit`: on a ball of radius r,
    /// `Phi(theta') >= model(theta') - deficit/2 (r + ||theta||)^2`; without a
    /// ball (or with an unknown deficit) no bound is valid.
    pub fn allowing_for_nonconvexity(self, deficit: f64, theta: &[f64], set: &Ball) -> Self {
        if deficit == 0.0 || self.kind == "none" {
            return self;
        }
        let reach = match (deficit.is_finite(), set.radius()) {
            (true, Some(r)) => add_up(r, norm_up(theta)),
            _ => {
                return Certificate::none(
                    "the weighted Hessian is not certifiably positive semidefinite \
                     (the tasks may be slightly nonconvex) and no radius bounds theta",
                )
            }
        };
        let allowance = mul_up(mul_up(0.5, deficit), mul_up(reach, reach));
        let bound = sub_down(self.bound, allowance);
        if !bound.is_finite() {
            return Certificate::none("the nonconvexity allowance overflows f64");
        }
        Self {
            bound,
            error_bound: add_up(self.error_bound, allowance),
            note: "the weighted Hessian is only certified to be nearly positive \
                   semidefinite: the bound allows for its possible negative curvature",
            ..self
        }
    }

    /// The larger of two valid bounds; a loser's note is kept where the
    /// winner is the trivial bound (it says why the better route failed).
    pub fn better(self, other: Self) -> Self {
        let (mut winner, loser) = if other.bound > self.bound || self.bound.is_nan() {
            (other, self)
        } else {
            (self, other)
        };
        if winner.note.is_empty() {
            winner.note = loser.note;
        }
        winner
    }
}

/// `D / s` rounded down, for a bound D on `sum_i p_i f_i` and the weights'
/// sum s known as a [`TrackedSum`]: OPT >= D(p) / s whatever the exact sum
/// is in `[lower, upper]`, and the quotient's lower bound over that range is
/// at one of its ends. `-inf` where the sum is not certainly positive or D is
/// NaN.
pub fn per_unit_weight(bound: f64, weights: &TrackedSum) -> f64 {
    if !weights.certainly_positive() || bound.is_nan() {
        return f64::NEG_INFINITY;
    }
    div_down(bound, weights.upper()).min(div_down(bound, weights.lower()))
}

/// `x` rounded down past a few roundings (relative 2^-50, plus underflow).
pub fn round_down(x: f64) -> f64 {
    x - x.abs() * 2f64.powi(-50) - 64.0 * UNDERFLOW_UNIT
}

/// Upper bound on the Euclidean norm, computed on the vector scaled by a
/// power of two (exact) so that its squares neither underflow nor overflow.
pub fn norm_up(x: &[f64]) -> f64 {
    // f64::max skips NaN, so a NaN entry must be caught before the fold.
    if x.iter().any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    match power_of_two_near_largest(x.iter().map(|v| v.abs())) {
        None => 0.0,
        Some(exponent) if exponent == i32::MAX => f64::INFINITY,
        Some(exponent) => {
            let down = 2f64.powi(-exponent);
            let squares = TrackedSum::of_squares(x.iter().map(|v| v * down));
            mul_up(sqrt_up(squares.upper()), 2f64.powi(exponent))
        }
    }
}

/// Lower bound on the Euclidean norm of a vector known only entrywise from
/// below, `|x_k| >= magnitudes_k >= 0`, scaled as in [`norm_up`]; 0 where an
/// entry is NaN (nothing is known).
pub fn norm_down(magnitudes: impl Iterator<Item = f64> + Clone) -> f64 {
    if magnitudes.clone().any(|v| v.is_nan()) {
        return 0.0;
    }
    match power_of_two_near_largest(magnitudes.clone()) {
        None => 0.0,
        Some(exponent) if exponent == i32::MAX => f64::MAX,
        Some(exponent) => {
            let down = 2f64.powi(-exponent);
            let squares = TrackedSum::of_squares(magnitudes.map(|v| v * down));
            mul_down(sqrt_down(squares.lower()), 2f64.powi(exponent))
        }
    }
}

/// `e` with `2^e` near the largest of the nonnegative `values` (clamped so
/// that scaling by `2^-e` stays exact), `None` when all are 0, `i32::MAX`
/// when one is infinite.
fn power_of_two_near_largest(values: impl Iterator<Item = f64>) -> Option<i32> {
    let largest = values.fold(0.0f64, f64::max);
    if largest == 0.0 {
        None
    } else if !largest.is_finite() {
        Some(i32::MAX)
    } else {
        Some(largest.log2().floor().clamp(-1000.0, 1000.0) as i32)
    }
}

/// A certified lower bound on `min_{theta' in set} M(theta')` for the local model
/// `M(theta') = value + g^T v + lambda/2 ||v||^2 - g_err ||v||`, `v = theta' - at`,
/// where `value`, `g_err` and `lambda` are already certified (a lower bound on
/// `Phi(at)`, a bound on `||grad Phi(at) - g||`, a lower bound on the curvature).
/// Every operation rounds in the bound's favour ([`crate::problem::directed`]).
/// Returns `-inf` where the set is unbounded and `lambda = 0`.
pub fn local_model_bound(
    value: f64,
    g: &[f64],
    g_err: f64,
    lambda: f64,
    at: &[f64],
    set: &Ball,
) -> f64 {
    if !value.is_finite() || !g_err.is_finite() {
        return f64::NEG_INFINITY;
    }
    // No curvature (or NaN) is lambda = 0, where the routes through 1 / lambda
    // come out -inf or NaN and drop out.
    let lambda = lambda.max(0.0);
    let g_norm = norm_up(g);
    // ||g||^2 / (2 lambda) from above, divided before squared: the square of
    // a tiny norm would underflow.
    let half_square_over = |norm: f64| mul_up(0.5, mul_up(div_up(norm, lambda), norm));
    // Strong convexity, whatever the set: >= value - (||g|| + g_err)^2 / (2 lambda)
    // (the reach is at least one subnormal unit, so lambda = 0 gives -inf).
    let mut best = sub_down(value, half_square_over(add_up(g_norm, g_err)));
    // The set's enclosing ball (the Fantope lies in the ball of radius sqrt k).
    let radius = match *set {
        Ball::Unconstrained => return best,
        Ball::Ball { radius } => radius,
        Ball::Fantope { rank, .. } => sqrt_up(rank as f64),
    };
    // The gradient's error moves the model by at most g_err ||v|| <= g_err (r + ||at||).
    let far = mul_up(g_err, add_up(radius, norm_up(at)));
    // Linearization: g^T (theta' - at) >= -g^T at - r ||g||.
    let g_at = TrackedSum::of_products(g, at).upper();
    let linear = sub_down(sub_down(sub_down(value, g_at), mul_up(radius, g_norm)), far);
    best = best.max(linear);
    // Completing the square: lambda/2 dist(m, ball)^2 - ||g||^2 / (2 lambda),
    // m = at - g / lambda, each entry's magnitude bounded from below (not
    // finite for lambda = 0, and then left out).
    let magnitudes = g.iter().zip(at).map(|(&gk, &ak)| {
        let lower = sub_down(ak, div_up(gk, lambda));
        let upper = sub_up(ak, div_down(gk, lambda));
        lower.max(-upper).max(0.0)
    });
    let dist = sub_down(norm_down(magnitudes), radius).max(0.0);
    let square = sub_down(
        add_down(
            sub_down(value, half_square_over(g_norm)),
            mul_down(0.5, mul_down(mul_down(lambda, dist), dist)),
        ),
        far,
    );
    if square.is_finite() {
        best = best.max(square);
    }
    best
}

/// `q(theta) = 1/2 theta^T Q theta + l^T theta + c` with Q symmetric PSD.
#[derive(Debug, Clone, PartialEq)]
pub struct QuadraticForm {
    /// Q: the Hessian (symmetric PSD). The certificates read its upper
    /// triangle only (as LAPACK's `uplo = 'U'`): the form stands for the
    /// symmetric matrix with that upper triangle. Every family builds its Q
    /// exactly symmetric.
    pub hessian: DMatrix<f64>,
    /// l: the linear term.
    pub linear: DVector<f64>,
    /// c: the constant term.
    pub constant: f64,
}

impl QuadraticForm {
    /// `q(theta)`, evaluated in floating point (no error bound).
    pub fn value(&self, theta: &DVector<f64>) -> f64 {
        0.5 * theta.dot(&(&self.hessian * theta)) + self.linear.dot(theta) + self.constant
    }

    /// d: the dimension of theta.
    pub fn dim(&self) -> usize {
        self.linear.len()
    }
}

/// How far a stored [`QuadraticForm`] may be from the task it stands for, and
/// its own sizes: the true task is `1/2 theta^T (Q + E) theta + (l + e)^T theta
/// + c + e_c` with `||E||_2 <= hessian_error`, `||e|| <= linear_error`,
/// `|e_c| <= constant_error`. All fields are upper bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FormBounds {
    /// `||Q||_F`.
    pub hessian_norm: f64,
    /// `||l||`.
    pub linear_norm: f64,
    /// `|c|`.
    pub constant_abs: f64,
    /// Bound on `||E||_2`, the Hessian's construction error.
    pub hessian_error: f64,
    /// Bound on `||e||`, the linear term's construction error.
    pub linear_error: f64,
    /// Bound on `|e_c|`, the constant's construction error.
    pub constant_error: f64,
}

impl FormBounds {
    /// The sizes of a form that is its task exactly (no construction error).
    pub fn exact(form: &QuadraticForm) -> Self {
        Self {
            hessian_norm: norm_up(form.hessian.as_slice()),
            linear_norm: norm_up(form.linear.as_slice()),
            constant_abs: form.constant.abs(),
            ..Self::default()
        }
    }
}

/// Certified lower bound on OPT from the weights `p` for quadratic tasks
/// given as stored forms with their [`FormBounds`] (see the module docs):
/// Rump's shifted Cholesky certifies the weighted Hessian's curvature, a
/// refined Newton point (or, on a ball, the Lagrangian point) is the model
/// centre, and [`local_model_bound`] evaluates the bound with every rounding
/// and construction error subtracted. Without certified curvature and without
/// a radius there is no valid bound (`kind = "none"`).
pub fn sound_quadratic_bound(
    forms: &[QuadraticForm],
    bounds: &[FormBounds],
    weights: &[f64],
    set: &Ball,
) -> Certificate {
    // Solvers certify every iteration: reuse one work space per thread, so
    // the common case (positive definite, minimiser inside the ball) neither
    // allocates nor leaves the caches.
    thread_local! {
        static WORK: std::cell::RefCell<DualWork> = std::cell::RefCell::new(DualWork::default());
    }
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        let totals = work.combine(forms, bounds, weights);
        let certificate = work.certify(&totals, set);
        Certificate {
            bound: per_unit_weight(certificate.bound, &totals.weights),
            ..certificate
        }
    })
}

/// [`sound_quadratic_bound`] for forms that are their tasks exactly; the
/// bound alone (`-inf` where none is valid).
pub fn quadratic_dual_bound(forms: &[QuadraticForm], weights: &[f64], ball: &Ball) -> f64 {
    let bounds: Vec<FormBounds> = forms.iter().map(FormBounds::exact).collect();
    sound_quadratic_bound(forms, &bounds, weights, ball).bound
}

/// Certified lower bound on `min_{theta in ball} q(theta)` (see [`sound_quadratic_bound`]).
pub fn minimise_quadratic_on_ball(q: &QuadraticForm, ball: &Ball) -> f64 {
    quadratic_dual_bound(std::slice::from_ref(q), &[1.0], ball)
}

/// The weights' sum and upper bounds on the combined form's distance from
/// the weighted sum of the true tasks.
#[derive(Debug, Default)]
struct Totals {
    weights: TrackedSum,
    hessian_error: f64,
    linear_error: f64,
    constant_error: f64,
}

/// Work space of [`sound_quadratic_bound`]: the weighted sum of the forms and
/// its Cholesky factor, column-major d x d.
#[derive(Default)]
struct DualWork {
    d: usize,
    hessian: Vec<f64>,
    linear: Vec<f64>,
    constant: f64,
    /// The running rounding magnitudes of the combination's entries (as in
    /// [`TrackedSum`]): the Hessian's upper triangle, then the linear term.
    magnitudes: Vec<f64>,
    /// Upper Cholesky factor U (H - s I = U^T U) in the upper triangle.
    factor: Vec<f64>,
    theta: Vec<f64>,
    rhs: Vec<f64>,
    step: Vec<f64>,
    direction: Vec<f64>,
    product: Vec<f64>,
}

/// `sum += p x` entrywise, each entry's running rounding magnitude kept as
/// [`TrackedSum`] keeps it: the product and the new partial sum each round once.
fn tracked_axpy(p: f64, x: &[f64], sum: &mut [f64], magnitudes: &mut [f64]) {
    for ((s, m), &x) in sum.iter_mut().zip(magnitudes.iter_mut()).zip(x) {
        let term = p * x;
        *s += term;
        *m = round_upward(*m + s.abs() + term.abs());
    }
}

impl DualWork {
    fn combine(
        &mut self,
        forms: &[QuadraticForm],
        bounds: &[FormBounds],
        weights: &[f64],
    ) -> Totals {
        let d = forms[0].dim();
        if self.d != d {
            *self = Self {
                d,
                hessian: vec![0.0; d * d],
                linear: vec![0.0; d],
                magnitudes: vec![0.0; d * d + d],
                factor: vec![0.0; d * d],
                theta: vec![0.0; d],
                rhs: vec![0.0; d],
                step: vec![0.0; d],
                direction: vec![0.0; d],
                product: vec![0.0; d],
                constant: 0.0,
            };
        }
        self.hessian.fill(0.0);
        self.linear.fill(0.0);
        self.magnitudes.fill(0.0);
        let mut weights_sum = TrackedSum::default();
        let mut terms = 0usize;
        let mut constant = TrackedSum::default();
        let (mut hessian_error, mut linear_error, mut constant_error) = (
            TrackedSum::default(),
            TrackedSum::default(),
            TrackedSum::default(),
        );
        let (hessian_magnitudes, linear_magnitudes) = self.magnitudes.split_at_mut(d * d);
        for ((form, bound), &p) in forms.iter().zip(bounds).zip(weights) {
            if p == 0.0 {
                continue;
            }
            // Negative or NaN weights certify nothing.
            if p.is_nan() || p < 0.0 {
                weights_sum.add(f64::NAN);
                continue;
            }
            // The upper triangle only (the factorisation reads no other), so
            // that the mirrored matrix below is exactly symmetric.
            let hessian = form.hessian.as_slice();
            for j in 0..d {
                let column = j * d..j * d + j + 1;
                tracked_axpy(
                    p,
                    &hessian[column.clone()],
                    &mut self.hessian[column.clone()],
                    &mut hessian_magnitudes[column],
                );
            }
            tracked_axpy(
                p,
                form.linear.as_slice(),
                &mut self.linear,
                linear_magnitudes,
            );
            constant.add_product(p, form.constant);
            weights_sum.add(p);
            terms += 1;
            hessian_error.add_product(p, bound.hessian_error);
            linear_error.add_product(p, bound.linear_error);
            constant_error.add_product(p, bound.constant_error);
        }
        for j in 0..d {
            for i in 0..j {
                self.hessian[j + i * d] = self.hessian[i + j * d];
            }
        }
        self.constant = constant.value();
        // Each combined entry is within u times its magnitude of the exact
        // weighted sum, plus a subnormal unit per product that underflowed.
        // The Hessian's error is symmetric: its Frobenius norm is at most
        // sqrt 2 times that of its upper triangle.
        let underflow = mul_up(terms as f64, UNDERFLOW_UNIT);
        let hessian_rounding = mul_up(
            sqrt_up(2.0),
            add_up(
                mul_up(UNIT_ROUNDOFF, norm_up(hessian_magnitudes)),
                mul_up(underflow, d as f64),
            ),
        );
        let linear_rounding = add_up(
            mul_up(UNIT_ROUNDOFF, norm_up(linear_magnitudes)),
            mul_up(underflow, sqrt_up(d as f64)),
        );
        Totals {
            weights: weights_sum,
            hessian_error: add_up(hessian_error.upper(), hessian_rounding),
            linear_error: add_up(linear_error.upper(), linear_rounding),
            constant_error: add_up(constant_error.upper(), constant.error_bound()),
        }
    }

    /// `H v` for the symmetric `H`: entry i is column i . v (contiguous).
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        for (o, column) in out.iter_mut().zip(self.hessian.chunks_exact(self.d)) {
            *o = dot(column, v);
        }
    }

    /// Upper Cholesky factor of `H - shift I` by contiguous column dot
    /// products; `false` where it breaks down.
    fn factor(&mut self, shift: f64) -> bool {
        let d = self.d;
        for j in 0..d {
            let (done, rest) = self.factor.split_at_mut(j * d);
            let column = &mut rest[..d];
            for i in 0..j {
                let ui = &done[i * d..i * d + i];
                let v = (self.hessian[i + j * d] - dot(ui, &column[..i])) / done[i * d + i];
                column[i] = v;
            }
            let pivot = (self.hessian[j + j * d] - shift) - dot(&column[..j], &column[..j]);
            if !(pivot > 0.0 && pivot.is_finite()) {
                return false;
            }
            column[j] = pivot.sqrt();
        }
        true
    }

    /// Solves `(H - s I) x = rhs` in place with the factor: `U^T z = rhs`, then `U x = z`.
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

    /// Rump's certificate: a completed Cholesky factorisation `U` of
    /// `fl(H - s I)` satisfies `U^T U = fl(H - s I) + Delta` with `||Delta||_2 <=
    /// gamma_{d+1} ||U||_F^2` (Demmel), so `lambda_min(H) >= s - gamma_{d+1}
    /// ||U||_F^2 - u max_j |h_jj - s|`. Returns that lower bound.
    fn certified_curvature(&self, shift: f64) -> f64 {
        let d = self.d;
        // The factor's upper triangle, diagonal included.
        let frobenius2 = TrackedSum::of_squares(
            (0..d).flat_map(|j| self.factor[j * d..j * d + j + 1].iter().copied()),
        );
        // max_j |h_jj - s| from above: the larger magnitude of its enclosure.
        let diagonal = (0..d).fold(0.0f64, |m, j| {
            let entry = self.hessian[j + j * d];
            m.max(sub_up(entry, shift).abs())
                .max(sub_down(entry, shift).abs())
        });
        // Underflow in the factorisation: a subnormal unit per operation.
        let underflow = mul_up((8 * d * d) as f64, UNDERFLOW_UNIT);
        let slack = add_up(
            add_up(
                mul_up(gamma(d + 1), frobenius2.upper()),
                mul_up(UNIT_ROUNDOFF, diagonal),
            ),
            underflow,
        );
        sub_down(shift, slack)
    }

    /// The Newton point `-H^{-1} l` of the unshifted H, by conjugate
    /// gradients preconditioned with the shifted factor. Plain refinement
    /// against `H - s I` diverges once the shift exceeds half the smallest
    /// eigenvalue (its error map is `-s (H - s I)^{-1}`), which large
    /// construction errors cause; the preconditioned spectrum lies in `[1,
    /// lambda / (lambda - s)]`, where CG converges. Any point gives a valid
    /// certificate: this one only makes it tight.
    fn newton_point(
        &mut self,
        theta: &mut [f64],
        residual: &mut [f64],
        preconditioned: &mut [f64],
    ) {
        let mut direction = std::mem::take(&mut self.direction);
        let mut product = std::mem::take(&mut self.product);
        for (t, l) in theta.iter_mut().zip(&self.linear) {
            *t = -l;
        }
        self.solve(theta);
        // residual = -l - H theta
        self.apply(theta, residual);
        for (r, l) in residual.iter_mut().zip(&self.linear) {
            *r = -(*r + l);
        }
        preconditioned.copy_from_slice(residual);
        self.solve(preconditioned);
        direction.copy_from_slice(preconditioned);
        let mut rz = dot(residual, preconditioned);
        for _ in 0..NEWTON_CG_STEPS {
            self.apply(&direction, &mut product);
            // Not finite once the residual or the direction has vanished
            // (0 / 0, x / 0) or overflowed: the point so far is kept.
            let alpha = rz / dot(&direction, &product);
            if !alpha.is_finite() {
                break;
            }
            for ((t, r), (p, q)) in theta
                .iter_mut()
                .zip(residual.iter_mut())
                .zip(direction.iter().zip(&product))
            {
                *t += alpha * p;
                *r -= alpha * q;
            }
            preconditioned.copy_from_slice(residual);
            self.solve(preconditioned);
            let next = dot(residual, preconditioned);
            let beta = next / rz;
            for (p, z) in direction.iter_mut().zip(preconditioned.iter()) {
                *p = z + beta * *p;
            }
            rz = next;
        }
        self.direction = direction;
        self.product = product;
    }

    fn certify(&mut self, totals: &Totals, set: &Ball) -> Certificate {
        let d = self.d;
        if !totals.weights.certainly_positive() {
            return Certificate::none(
                "the certificate weights are not a nonnegative nonzero vector",
            );
        }
        let finite = self
            .hessian
            .iter()
            .chain(&self.linear)
            .all(|v| v.is_finite())
            && self.constant.is_finite()
            && totals.hessian_error.is_finite();
        if !finite {
            return Certificate::none("the weighted quadratic overflows f64");
        }
        // The shift leaves room for the factorisation's rounding and the
        // forms' own error, so that success certifies positive curvature.
        let trace: f64 = (0..d).map(|j| self.hessian[j + j * d].abs()).sum();
        let shift = 2.0 * round_up(gamma(d + 1) * trace * 1.01 + totals.hessian_error);
        let factored = shift.is_finite() && self.factor(shift);
        // A certified lower bound on the weighted Hessian's smallest
        // eigenvalue, which may be negative: the input check accepts matrices
        // within a tolerance of PSD, so convexity itself must be certified.
        let mut smallest = if factored {
            Some(round_down(
                self.certified_curvature(shift) - totals.hessian_error,
            ))
        } else {
            None
        };
        if !factored && shift.is_finite() {
            // Not positive definite: bound how far it may be from convex.
            let mut below = -2.0 * shift;
            for _ in 0..5 {
                if below.is_finite() && self.factor(below) {
                    smallest = Some(round_down(
                        self.certified_curvature(below) - totals.hessian_error,
                    ));
                    break;
                }
                below *= 1e3;
            }
        }
        let curvature = smallest.map_or(0.0, |c| c.max(0.0));
        // Convexity deficit: Phi(theta') >= its linear model - deficit/2 ||theta' - theta||^2.
        let deficit = smallest.map_or(f64::INFINITY, |c| (-c).max(0.0));
        let mut theta = std::mem::take(&mut self.theta);
        let mut rhs = std::mem::take(&mut self.rhs);
        let mut step = std::mem::take(&mut self.step);
        let mut centre_found = false;
        if factored {
            self.newton_point(&mut theta, &mut rhs, &mut step);
            centre_found = theta.iter().all(|t| t.is_finite());
        }
        let radius = set.radius();
        let inside = match radius {
            None => true,
            Some(r) => dot(&theta, &theta).sqrt() <= r,
        };
        if !(centre_found && inside) {
            match radius {
                Some(r) => {
                    // On the ball: the Lagrangian point (eigen-decomposition route).
                    let combined = DMatrix::from_column_slice(d, d, &self.hessian);
                    let linear = DVector::from_column_slice(&self.linear);
                    match lagrangian_point(&combined, &linear, r) {
                        Some(point) => {
                            theta.copy_from_slice(point.as_slice());
                            centre_found = true;
                        }
                        None => centre_found = false,
                    }
                }
                None => centre_found = false,
            }
        }
        let result = if !centre_found {
            Certificate::none(
                "the weighted Hessian is not certifiably positive definite \
                 (singular, ill-conditioned or badly scaled) and no radius bounds theta",
            )
        } else {
            self.evaluate_model(&theta, &mut rhs, totals, curvature, set)
                .allowing_for_nonconvexity(deficit, &theta, set)
        };
        self.theta = theta;
        self.rhs = rhs;
        self.step = step;
        result
    }

    /// The local model bound at `theta`, every error accounted for.
    fn evaluate_model(
        &mut self,
        theta: &[f64],
        gradient: &mut [f64],
        totals: &Totals,
        curvature: f64,
        set: &Ball,
    ) -> Certificate {
        // g = H theta + l entry by entry, and 2 q(theta) = theta^T g + l^T
        // theta + 2c, as tracked sums: each bounds its own rounding as it is
        // computed, so no operation count enters the allowances.
        let mut entry_errors = std::mem::take(&mut self.product);
        let mut doubled_value = TrackedSum::default();
        for (i, column) in self.hessian.chunks_exact(self.d).enumerate() {
            let mut entry = TrackedSum::of_products(column, theta);
            entry.add(self.linear[i]);
            gradient[i] = entry.value();
            entry_errors[i] = entry.error_bound();
            // theta^T g uses the computed g, which carries the entry's error.
            doubled_value.add_inexact_product(theta[i], gradient[i], entry_errors[i]);
            doubled_value.add_product(self.linear[i], theta[i]);
        }
        doubled_value.add(2.0 * self.constant);
        // Halving is exact above the subnormal range; below it, it loses at
        // most half a subnormal unit, which the directed halving of the error
        // bound (at least one unit) covers.
        let value = 0.5 * doubled_value.value();
        let t = norm_up(theta);
        // The computed gradient is within the entries' rounding of H theta + l,
        // and the true task's gradient differs by E theta + e.
        let g_err = add_up(
            add_up(norm_up(&entry_errors), mul_up(totals.hessian_error, t)),
            totals.linear_error,
        );
        // The true task's value differs by 1/2 theta^T E theta + e^T theta + e_c.
        let value_err = add_up(
            add_up(
                mul_up(0.5, doubled_value.error_bound()),
                mul_up(mul_up(0.5, totals.hessian_error), mul_up(t, t)),
            ),
            add_up(mul_up(totals.linear_error, t), totals.constant_error),
        );
        self.product = entry_errors;
        let model = |value: f64, g_err: f64| {
            local_model_bound(value, gradient, g_err, curvature, theta, set)
        };
        // The subtraction rounds too: directed, as every step of the bound.
        let bound = model(sub_down(value, value_err), g_err);
        if !bound.is_finite() {
            return Certificate::none("the certificate's rounding bound overflows f64");
        }
        let estimate = model(value, 0.0);
        Certificate {
            bound,
            kind: if curvature > 0.0 {
                "dual"
            } else {
                "linearization"
            },
            error_bound: round_up((estimate - bound).max(0.0)),
            note: if curvature > 0.0 {
                ""
            } else {
                "the weighted Hessian is not certifiably positive definite: \
                 linearization on the ball"
            },
        }
    }
}

/// The minimiser of `1/2 theta^T H theta + l^T theta` on the ball of radius r
/// (to rounding), from the eigen-decomposition: `theta(nu) = -(H + nu I)^{-1} l`
/// with the smallest `nu >= 0` found by bisection that keeps it in the ball.
/// Any point will do for the certificate; this one makes it tight.
fn lagrangian_point(hessian: &DMatrix<f64>, linear: &DVector<f64>, r: f64) -> Option<DVector<f64>> {
    let eigen = hessian.clone().symmetric_eigen();
    let a = eigen.eigenvectors.transpose() * linear;
    let eigenvalues: Vec<f64> = eigen.eigenvalues.iter().map(|&l| l.max(0.0)).collect();
    let norm2_at = |nu: f64| -> f64 {
        a.iter()
            .zip(&eigenvalues)
            .map(|(aj, lj)| {
                if *aj == 0.0 {
                    0.0
                } else {
                    aj * aj / ((lj + nu) * (lj + nu))
                }
            })
            .sum()
    };
    // ||theta(nu)|| <= ||a|| / nu, so nu = ||a|| / r is inside the ball (to
    // rounding): bisect on [0, ||a|| / r] for the smallest nu inside. Each
    // step halves the interval; the steps resolve nu to full precision
    // unless it is below 2^-150 of the upper end, where the point barely
    // moves. NaN norms (from NaN data) end in a NaN point: no point.
    let r2 = r * r;
    let (mut lo, mut hi) = (0.0, a.norm() / r);
    for _ in 0..LAGRANGIAN_BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if norm2_at(mid) > r2 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let coordinates = DVector::from_iterator(
        a.len(),
        a.iter()
            .zip(&eigenvalues)
            .map(|(aj, lj)| if *aj == 0.0 { 0.0 } else { -aj / (lj + hi) }),
    );
    // Rounding may leave the point a unit outside the sphere: the local
    // model bound holds around any point, so it stays where it is.
    let point = &eigen.eigenvectors * coordinates;
    point.iter().all(|v| v.is_finite()).then_some(point)
}

/// Certified lower bound for a lambda-strongly convex `Phi` from one point
/// whose value and gradient are exact: `Phi(theta) >= Phi(t') + g^T (theta - t')
/// + lambda/2 ||theta - t'||^2`, minimised over the set (rounded down).
pub fn strongly_convex_bound(
    value: f64,
    gradient: &DVector<f64>,
    at: &DVector<f64>,
    lambda: f64,
    ball: &Ball,
) -> f64 {
    local_model_bound(
        value,
        gradient.as_slice(),
        0.0,
        lambda.max(0.0),
        at.as_slice(),
        ball,
    )
}

/// Certified lower bound on OPT from an evaluation at `theta` of data tasks
/// (losses, weights, weighted gradient, per-task gradient norms as
/// [`crate::family::TaskFamily::evaluate`] leaves them), given per-task bounds
/// on the rounding of each loss and each task gradient, and a curvature
/// `lambda` that every task is known to have exactly (e.g. the l2 penalty):
/// the local model bound around `theta` ([`local_model_bound`]).
pub fn evaluation_bound(
    theta: &DVector<f64>,
    at: &crate::family::Evaluation,
    loss_error: impl Fn(usize) -> f64,
    gradient_error: impl Fn(usize) -> f64,
    lambda: f64,
    set: &Ball,
) -> Certificate {
    let totals = match EvaluationTotals::new(at, loss_error, gradient_error) {
        Ok(totals) => totals,
        Err(none) => return none,
    };
    let curvature = mul_down(lambda, totals.weights.lower()).max(0.0);
    let (g, t) = (at.gradient.as_slice(), theta.as_slice());
    let bound = local_model_bound(totals.value_lower, g, totals.g_err, curvature, t, set);
    if bound == f64::NEG_INFINITY {
        return Certificate::none(
            "no certified curvature and no radius: the linearization bound needs a ball",
        );
    }
    let estimate = local_model_bound(totals.value, g, 0.0, curvature, t, set);
    Certificate {
        bound: per_unit_weight(bound, &totals.weights),
        kind: if curvature > 0.0 {
            "strong-convexity"
        } else {
            "linearization"
        },
        error_bound: round_up(((estimate - bound) / totals.weights.value()).max(0.0)),
        note: "",
    }
}

/// The certified pieces of an evaluation at theta that the local model
/// bounds are written in: `Phi_p(theta)` (computed, and a lower bound), the
/// bound on the rounding of the weighted gradient, and the weights' sum.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationTotals {
    /// `sum_i p_i f_i(theta)` as computed.
    pub value: f64,
    /// A lower bound on the exact `sum_i p_i f_i(theta)`.
    pub value_lower: f64,
    /// A bound on `||grad Phi_p(theta) - at.gradient||`.
    pub g_err: f64,
    /// `sum_i p_i`, with the bound on its rounding.
    pub weights: TrackedSum,
}

impl EvaluationTotals {
    /// From the evaluation and per-task bounds on the rounding of each loss
    /// and task gradient; `Err` with the reason where the weights carry no
    /// mass or are not nonnegative.
    pub fn new(
        at: &crate::family::Evaluation,
        loss_error: impl Fn(usize) -> f64,
        gradient_error: impl Fn(usize) -> f64,
    ) -> Result<Self, Certificate> {
        let m = at.losses.len();
        let mut weights = TrackedSum::default();
        let mut value = TrackedSum::default();
        let (mut g_err, mut g_size) = (TrackedSum::default(), TrackedSum::default());
        for i in 0..m {
            let p = at.weights[i];
            if p == 0.0 {
                continue;
            }
            if p.is_nan() || p < 0.0 {
                return Err(Certificate::none(
                    "the certificate weights are not a nonnegative nonzero vector",
                ));
            }
            weights.add(p);
            // Each loss is within its stated error of the task's exact loss.
            value.add_inexact_product(p, at.losses[i], loss_error(i));
            g_err.add_product(p, gradient_error(i));
            g_size.add_product(p, at.task_gradient_norms[i]);
        }
        if !weights.certainly_positive() {
            return Err(Certificate::none(
                "the certificate weights are not a nonnegative nonzero vector",
            ));
        }
        Ok(Self {
            value: value.value(),
            value_lower: value.lower(),
            // The weighted gradient, summed over the tasks by the family:
            // within gamma_M of the weighted sizes of the task gradients, whose
            // computed norms gamma(M) = gamma_{M+2} also covers.
            g_err: add_up(g_err.upper(), mul_up(gamma(m), g_size.upper())),
            weights,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Allowance tests (mutation testing, docs/MUTANTS.md): inputs whose
    // floating-point result is exact, so the bound is right only because of
    // its allowance, sized so the allowance (gamma_n with large n) exceeds
    // the relative 2^-40 and 2^-50 of round_up and round_down.

    #[test]
    fn norm_up_is_an_upper_bound_by_its_own_allowance_and_no_more() {
        // The sum 40000 and its root 200 are exact; gamma_40000 ~ 4.4e-12.
        let ones = vec![1.0; 40_000];
        let norm = norm_up(&ones);
        assert!(norm >= 200.0, "{norm}");
        assert!(norm <= 200.0 * (1.0 + 1e-10), "{norm}");
        assert_eq!(norm_up(&[0.0, -0.0]), 0.0);
        assert_eq!(norm_up(&[f64::NAN, 1.0]), f64::INFINITY);
        assert_eq!(norm_up(&[f64::INFINITY]), f64::INFINITY);
        // Scaled by powers of two: tiny and huge vectors keep their norm.
        let tiny = norm_up(&[3e-300, 4e-300]);
        assert!((5e-300..=5e-300 * (1.0 + 1e-10)).contains(&tiny), "{tiny}");
        let huge = norm_up(&[3e300, 4e300]);
        assert!((5e300..=5e300 * (1.0 + 1e-10)).contains(&huge), "{huge}");
    }

    #[test]
    fn round_down_lowers_by_eight_units_and_sixty_four_subnormal_units() {
        assert_eq!(round_down(0.0), -64.0 * UNDERFLOW_UNIT);
        assert_eq!(round_down(1.0), 1.0 - 2f64.powi(-50));
        assert_eq!(round_down(-1.0), -1.0 - 2f64.powi(-50));
    }

    #[test]
    fn norm_down_is_a_lower_bound_within_a_few_units_at_every_scale() {
        for scale in [1.0, 2f64.powi(-1000), 2f64.powi(1000), 1e-310] {
            // (3, 4) scale: the norm 5 scale is exact, so the bounds must
            // straddle it within a few units in the last place.
            let entries = [3.0 * scale, 4.0 * scale];
            let exact = 5.0 * scale;
            let below = norm_down(entries.iter().copied());
            let above = norm_up(&entries);
            let units = 8.0 * f64::EPSILON * exact + 8.0 * UNDERFLOW_UNIT;
            assert!(
                below <= exact && below >= exact - units,
                "{below:e} vs {exact:e}"
            );
            assert!(
                above >= exact && above <= exact + units,
                "{above:e} vs {exact:e}"
            );
        }
        assert_eq!(norm_down([0.0, 0.0].into_iter()), 0.0);
        assert_eq!(norm_down([f64::NAN, 1.0].into_iter()), 0.0);
        assert_eq!(norm_down([f64::INFINITY].into_iter()), f64::MAX);
    }

    #[test]
    fn stated_errors_away_from_the_origin_are_charged_at_the_point_and_meet_the_worst_task() {
        // Stored form 1/2 (theta - 2)^2 = 1/2 theta^2 - 2 theta + 2 on |theta| <= 4,
        // standing for 1/2 (1 + E) theta^2 + (e - 2) theta + 2 + e_c with
        // |E| <= 1/4, |e| <= 1/4, |e_c| <= 1/8. The worst such task
        // (E = e = -1/4, e_c = -1/8) is 3/8 theta^2 - 9/4 theta + 15/8, whose
        // minimum is -3/2 at theta = 3.
        let form = QuadraticForm {
            hessian: DMatrix::from_element(1, 1, 1.0),
            linear: DVector::from_element(1, -2.0),
            constant: 2.0,
        };
        let bounds = FormBounds {
            hessian_error: 0.25,
            linear_error: 0.25,
            constant_error: 0.125,
            ..FormBounds::exact(&form)
        };
        let certificate = sound_quadratic_bound(
            std::slice::from_ref(&form),
            &[bounds],
            &[1.0],
            &Ball::with_radius(4.0),
        );
        // The documented analysis at the Newton point theta = 2 (t = 2), where
        // g = 0 and the value 0 are exact: the value's allowance is 1/2 E t^2
        // + e t + e_c = 9/8, the gradient's E t + e = 3/4, and Rump's shift
        // certifies curvature 2 (E + rounding) - E = 1/4 (to rounding), so
        // strong convexity gives -9/8 - (3/4)^2 / (2 1/4) = -9/4.
        let worst_task_minimum = -1.5;
        let documented = -2.25;
        assert!(certificate.bound <= worst_task_minimum, "{certificate:?}");
        assert!(
            (certificate.bound - documented).abs() < 1e-9,
            "{} against the documented {documented}",
            certificate.bound
        );
        assert_eq!(certificate.kind, "dual");
        // The reported allowance is the error-free model's minimum (0, at the
        // exact minimiser) less the bound.
        assert!(
            (certificate.error_bound - 2.25).abs() < 1e-9,
            "{certificate:?}"
        );
    }

    #[test]
    fn per_unit_weight_divides_by_the_end_of_the_weight_sum_that_lowers_the_bound() {
        // Weights 2 and 1000 of 2^-52: every addition is a tie that rounds
        // down, so the computed sum is 2 and the exact one 2 + 1000 2^-52.
        // A bound >= 0 must be divided by at least the exact sum, a negative
        // one by at most it; each within the sum's own error bound of it.
        let mut weights = TrackedSum::default();
        weights.add(2.0);
        (0..1000).for_each(|_| weights.add(2f64.powi(-52)));
        assert_eq!(weights.value(), 2.0);
        let exact_sum = 2.0 + 1000.0 * 2f64.powi(-52);
        let per_unit = 1.0 / exact_sum;
        let positive = per_unit_weight(1.0, &weights);
        assert!(
            positive < per_unit && positive > per_unit * (1.0 - 1e-14),
            "{positive}"
        );
        let negative = per_unit_weight(-1.0, &weights);
        assert!(
            negative < -per_unit && negative > -per_unit * (1.0 + 1e-12),
            "{negative}"
        );
        // A sum not certainly positive certifies nothing: one subnormal unit
        // (its lower bound is 0), zero, NaN; and so does a NaN bound.
        let not_positive = [UNDERFLOW_UNIT, 0.0, f64::NAN].map(|w| TrackedSum::of([w]));
        for weights in &not_positive {
            assert_eq!(
                per_unit_weight(1.0, weights),
                f64::NEG_INFINITY,
                "{weights:?}"
            );
        }
        assert_eq!(
            per_unit_weight(f64::NAN, &TrackedSum::of([1.0])),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn construction_errors_of_the_forms_lower_the_bound_to_the_worst_task_they_allow() {
        // Stored form 1/2 theta^2 (d = 1) on the ball |theta| <= 1; the task it
        // stands for may be 1/2 (1 + E) theta^2 + e theta + c with |E| <= 0.5,
        // |e| <= 1, |c| <= 0.25. The worst such task, 1/2 0.5 theta^2 + theta
        // - 0.25, has minimum 0.25 - 1 - 0.25 = -1 at theta = -1.
        let form = QuadraticForm {
            hessian: DMatrix::from_element(1, 1, 1.0),
            linear: DVector::from_element(1, 0.0),
            constant: 0.0,
        };
        let ball = Ball::with_radius(1.0);
        let exact_bounds = FormBounds::exact(&form);
        let with = |hessian_error: f64, linear_error: f64, constant_error: f64| {
            let bounds = FormBounds {
                hessian_error,
                linear_error,
                constant_error,
                ..exact_bounds
            };
            sound_quadratic_bound(std::slice::from_ref(&form), &[bounds], &[1.0], &ball).bound
        };
        let exact = with(0.0, 0.0, 0.0);
        assert!((-1e-12..=0.0).contains(&exact), "{exact}");
        // Each error alone: its own worst case.
        // min of 1/2 t^2 + t on [-1, 1] is -1/2; the bound charges the
        // gradient error linearly over the ball (e |t| <= 1).
        let linear = with(0.0, 1.0, 0.0);
        assert!((-1.0 - 1e-9..=-0.5).contains(&linear), "{linear}");
        let constant = with(0.0, 0.0, 0.25);
        assert!((-0.25 - 1e-9..=-0.25).contains(&constant), "{constant}");
        // Still convex (curvature >= 1/2): minimum 0 at 0; the bound charges the
        // Hessian error over the ball instead.
        let hessian = with(0.5, 0.0, 0.0);
        assert!(hessian <= 0.0 && hessian > -2.0, "{hessian}");
        // With a linear term the Hessian error moves the minimum: 1/2 (1 + E)
        // t^2 - t on [-1, 1] is lowest for E = -1/2, at t = 1: -0.75.
        let tilted = QuadraticForm {
            linear: DVector::from_element(1, -1.0),
            ..form.clone()
        };
        let tilted_bound = sound_quadratic_bound(
            std::slice::from_ref(&tilted),
            &[FormBounds {
                hessian_error: 0.5,
                ..FormBounds::exact(&tilted)
            }],
            &[1.0],
            &ball,
        )
        .bound;
        assert!(
            tilted_bound <= -0.75 && tilted_bound > -10.0,
            "{tilted_bound}"
        );
        // Away from the origin the linear error is charged at |theta|: the
        // form 1/2 (t - 1)^2 (centre t = 1) with |e| <= 1/2 and |e_c| <= 1 is
        // at least 1/2 (t - 1)^2 - t/2 - 1, whose minimum is -1.625 (t = 1.5).
        // Rump's shift certifies the curvature only as positive, so the bound
        // is the linearization on the ball with the documented allowances:
        // value - (e |t| + e_c) - e (r + |t|) = 0 - 1.5 - 1.5 = -3.
        let shifted = QuadraticForm {
            hessian: DMatrix::from_element(1, 1, 1.0),
            linear: DVector::from_element(1, -1.0),
            constant: 0.5,
        };
        let shifted_bound = sound_quadratic_bound(
            std::slice::from_ref(&shifted),
            &[FormBounds {
                linear_error: 0.5,
                constant_error: 1.0,
                ..FormBounds::exact(&shifted)
            }],
            &[1.0],
            &Ball::with_radius(2.0),
        )
        .bound;
        assert!(shifted_bound <= -1.625, "{shifted_bound}");
        assert!((shifted_bound + 3.0).abs() < 1e-9, "{shifted_bound}");
        let all = with(0.5, 1.0, 0.25);
        assert!(all <= -1.0 && all > -3.0, "{all}");
        // Two tasks with weights 1/2 each: the errors combine with their weights.
        let two = sound_quadratic_bound(
            &[form.clone(), form.clone()],
            &[
                FormBounds {
                    linear_error: 1.0,
                    ..exact_bounds
                },
                exact_bounds,
            ],
            &[0.5, 0.5],
            &ball,
        )
        .bound;
        // 1/2 t^2 + 1/2 e t with |e| <= 1: minimum -1/8, charged as -1/2.
        assert!((-0.5 - 1e-9..=-0.125).contains(&two), "{two}");
    }

    #[test]
    fn certified_curvature_subtracts_demmels_bound_on_the_factorisation_error() {
        // Rump's certificate as documented: lambda_min(H) >= s - gamma_{d+1}
        // ||U||_F^2 - u max_j |h_jj - s|, with U the computed factor of
        // H - s I (every entry of its upper triangle, the diagonal included).
        let d = 40;
        let hessian = DMatrix::from_fn(d, d, |i, j| {
            let base = 1.0 / (1.0 + (i as f64 - j as f64).abs());
            if i == j {
                base + 3.0 + 0.37 * i as f64
            } else {
                base * 0.3
            }
        });
        let form = QuadraticForm {
            hessian,
            linear: DVector::zeros(d),
            constant: 0.0,
        };
        let mut work = combined_alone(&form);
        let shift = 2.5;
        assert!(work.factor(shift));
        let mut frobenius2 = 0.0;
        let mut diagonal = 0.0f64;
        for j in 0..d {
            for i in 0..=j {
                frobenius2 += work.factor[i + j * d] * work.factor[i + j * d];
            }
            diagonal = diagonal.max((work.hessian[j + j * d] - shift).abs());
        }
        let documented = shift - gamma(d + 1) * frobenius2 - UNIT_ROUNDOFF * diagonal;
        let certified = work.certified_curvature(shift);
        assert!(certified <= documented, "{certified} > {documented}");
        assert!(
            certified >= documented - 1e-12,
            "{certified} far below {documented}"
        );
    }

    /// Two tasks in R^2 with losses 1, a zero weighted gradient and task
    /// gradients of norm `norm`, under `weights`.
    fn two_tasks_at_zero(weights: [f64; 2], norm: f64) -> crate::family::Evaluation {
        let mut at = crate::family::Evaluation::new(2, 2);
        at.losses.copy_from_slice(&[1.0, 1.0]);
        at.weights.copy_from_slice(&weights);
        at.gradient = DVector::from_vec(vec![0.0, 0.0]);
        at.task_gradient_norms.copy_from_slice(&[norm, norm]);
        at
    }

    #[test]
    fn evaluation_bound_charges_the_rounding_of_the_weighted_gradient() {
        // The weighted gradient sum_i p_i g_i is formed in floating point:
        // the bound must allow gamma(M) sum_i p_i ||g_i|| for it (numerics'
        // gamma(M) is gamma_{M+2}: gamma_M for the sum, and room for the
        // computed norms), over the reach of the ball (radius 1 around 0).
        let evaluation = |norm: f64| two_tasks_at_zero([0.5, 0.5], norm);
        let theta = DVector::zeros(2);
        let ball = Ball::with_radius(1.0);
        let bound = |norm: f64| {
            evaluation_bound(&theta, &evaluation(norm), |_| 0.0, |_| 0.0, 0.0, &ball).bound
        };
        let (small, large) = (bound(0.0), bound(1e12));
        assert!((1.0 - 1e-12..=1.0).contains(&small), "{small}");
        // gamma(2) * 1e12 * radius ~ 4.4e-4.
        let charged = small - large;
        // (small - large loses up to an epsilon of small, about 1.)
        assert!(
            charged >= gamma(2) * 1e12 - f64::EPSILON,
            "charged {charged:e}"
        );
        assert!(
            charged <= gamma(2) * 1e12 * (1.0 + 1e-9),
            "charged {charged:e}"
        );
    }

    #[test]
    fn evaluation_bounds_say_which_route_they_took() {
        let theta = DVector::zeros(2);
        let at = two_tasks_at_zero([0.5, 0.5], 1.0);
        let ball = Ball::with_radius(1.0);
        let curved = evaluation_bound(&theta, &at, |_| 0.0, |_| 0.0, 0.5, &ball);
        assert_eq!(curved.kind, "strong-convexity");
        let flat = evaluation_bound(&theta, &at, |_| 0.0, |_| 0.0, 0.0, &ball);
        assert_eq!(flat.kind, "linearization");
        // Without curvature or a ball nothing is certified.
        let none = evaluation_bound(&theta, &at, |_| 0.0, |_| 0.0, 0.0, &Ball::unconstrained());
        assert_eq!(none.kind, "none");
    }

    #[test]
    fn evaluation_bound_charges_each_task_gradients_own_error() {
        // Task gradients known only to within E_i each: the weighted gradient
        // is off by up to sum_i p_i E_i, charged over the ball's reach (radius
        // 1 around theta = 0), on top of the summation's own rounding.
        let mut at = crate::family::Evaluation::new(2, 2);
        at.losses.copy_from_slice(&[1.0, 1.0]);
        at.weights.copy_from_slice(&[0.25, 0.75]);
        at.gradient = DVector::from_vec(vec![0.0, 0.0]);
        at.task_gradient_norms.copy_from_slice(&[1.0, 1.0]);
        let theta = DVector::zeros(2);
        let ball = Ball::with_radius(1.0);
        let errors = [1e-3, 3e-3];
        let exact = evaluation_bound(&theta, &at, |_| 0.0, |_| 0.0, 0.0, &ball).bound;
        let charged =
            exact - evaluation_bound(&theta, &at, |_| 0.0, |i| errors[i], 0.0, &ball).bound;
        // 0.25 * 1e-3 + 0.75 * 3e-3 = 2.5e-3, up to the allowances' own slack.
        assert!(charged >= 2.5e-3, "charged {charged:e}");
        assert!(charged <= 2.5e-3 * (1.0 + 1e-9), "charged {charged:e}");
    }

    #[test]
    fn local_model_bound_meets_each_exact_model_minimum() {
        let ball = Ball::with_radius(2.0);
        let tight = |bound: f64, exact: f64| {
            assert!(
                bound <= exact && bound >= exact - 1e-11 * exact.abs().max(1.0),
                "bound {bound} against the exact minimum {exact}"
            );
        };
        // No curvature, no set: no bound (never NaN).
        let none = local_model_bound(
            1.0,
            &[0.0, 0.0],
            0.0,
            0.0,
            &[0.0, 0.0],
            &Ball::unconstrained(),
        );
        assert_eq!(none, f64::NEG_INFINITY);
        // Only the gradient error: min of 1 - 0.5 ||v|| on ||v|| <= 2 is 0.
        tight(
            local_model_bound(1.0, &[0.0, 0.0], 0.5, 0.0, &[0.0, 0.0], &ball),
            0.0,
        );
        // Linear: min of 1 + 3 v_1 on ||v|| <= 2 is -5.
        tight(
            local_model_bound(1.0, &[3.0, 0.0], 0.0, 0.0, &[0.0, 0.0], &ball),
            -5.0,
        );
        // Linearization around a point that is not the centre: v = theta' - at
        // with at = (1, 0): min of 1 + 3 (theta'_1 - 1) is 1 - 3 - 6 = -8.
        tight(
            local_model_bound(1.0, &[3.0, 0.0], 0.0, 0.0, &[1.0, 0.0], &ball),
            -8.0,
        );
        // Completing the square: min of 4 v_1 + 1/2 ||v||^2 on ||v|| <= 1 is
        // -3.5, at the edge; unconstrained it is -8.
        let unit = Ball::with_radius(1.0);
        tight(
            local_model_bound(0.0, &[4.0, 0.0], 0.0, 1.0, &[0.0, 0.0], &unit),
            -3.5,
        );
        tight(
            local_model_bound(
                0.0,
                &[4.0, 0.0],
                0.0,
                1.0,
                &[0.0, 0.0],
                &Ball::unconstrained(),
            ),
            -8.0,
        );
        // Strong convexity with a gradient error: -(||g|| + e)^2 / (2 lambda).
        tight(
            local_model_bound(
                0.0,
                &[3.0, 0.0],
                1.0,
                2.0,
                &[0.0, 0.0],
                &Ball::unconstrained(),
            ),
            -4.0,
        );
        // Completing the square with a gradient error: min of 4 v_1 + 1/2
        // ||v||^2 - 0.5 ||v|| on ||v|| <= 1 is -4, at the edge.
        tight(
            local_model_bound(0.0, &[4.0, 0.0], 0.5, 1.0, &[0.0, 0.0], &unit),
            -4.0,
        );
        // Minima of exactly 0, where round_down (relative to the result)
        // adds nothing: each term's own allowance must keep the bound below
        // 0, and within 1e-11 of the terms' size.
        let zero = |bound: f64, terms: f64| {
            assert!(
                bound <= 0.0 && bound >= -1e-11 * terms,
                "bound {bound:e} against the exact minimum 0 (terms of size {terms})"
            );
        };
        // Strong convexity: 4 - (3 + 1)^2 / (2 2).
        zero(
            local_model_bound(
                4.0,
                &[3.0, 0.0],
                1.0,
                2.0,
                &[0.0, 0.0],
                &Ball::unconstrained(),
            ),
            4.0,
        );
        // The same with the gradient all error (g = 0, so its norm is exact
        // and carries no round_up): 4 + ||v||^2 - 4 ||v||.
        zero(
            local_model_bound(
                4.0,
                &[0.0, 0.0],
                4.0,
                2.0,
                &[0.0, 0.0],
                &Ball::unconstrained(),
            ),
            4.0,
        );
        // Linearization: 6 + 3 v_1 on ||v|| <= 2.
        zero(
            local_model_bound(6.0, &[3.0, 0.0], 0.0, 0.0, &[0.0, 0.0], &ball),
            6.0,
        );
        // Completing the square: 3.5 + 4 v_1 + 1/2 ||v||^2 on ||v|| <= 1,
        // that is 3.5 - 8 + 1/2 (4 - 1)^2.
        zero(
            local_model_bound(3.5, &[4.0, 0.0], 0.0, 1.0, &[0.0, 0.0], &unit),
            8.0,
        );
        // The Fantope of rank 4 lies in the ball of radius 2: the linear
        // bound of 1 + 3 v_1 is -5 there too.
        let fantope = Ball::Fantope { dim: 2, rank: 4 };
        tight(
            local_model_bound(1.0, &[3.0, 0.0, 0.0, 0.0], 0.0, 0.0, &[0.0; 4], &fantope),
            -5.0,
        );
        // Non-finite inputs certify nothing.
        assert_eq!(
            local_model_bound(f64::NAN, &[1.0], 0.0, 1.0, &[0.0], &ball),
            f64::NEG_INFINITY
        );
        assert_eq!(
            local_model_bound(0.0, &[1.0], f64::INFINITY, 1.0, &[0.0], &ball),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn strongly_convex_bound_is_the_exact_model_minimum() {
        // min of 4 v_1 + 1/2 ||v||^2: -8 unconstrained, -3.5 on the unit ball
        // (to 1e-11 relative of the terms: ||g|| carries norm_up's 2^-40).
        let g = DVector::from_vec(vec![4.0, 0.0]);
        let at = DVector::zeros(2);
        let unconstrained = strongly_convex_bound(0.0, &g, &at, 1.0, &Ball::unconstrained());
        assert!(
            (-8.0 - 8e-11..=-8.0).contains(&unconstrained),
            "{unconstrained}"
        );
        let on_ball = strongly_convex_bound(0.0, &g, &at, 1.0, &Ball::with_radius(1.0));
        assert!((-3.5 - 8e-11..=-3.5).contains(&on_ball), "{on_ball}");
        // A negative curvature is no curvature: the linear bound on the ball, -4.
        let flat = strongly_convex_bound(0.0, &g, &at, -1.0, &Ball::with_radius(1.0));
        assert!((-4.0 - 8e-11..=-4.0).contains(&flat), "{flat}");
    }

    #[test]
    fn an_unconstrained_bound_uses_only_the_curvature_the_errors_leave() {
        // Stored 1/2 theta^2 - theta with Hessian error 0.3: the task may be
        // 1/2 (0.7) theta^2 - theta, whose minimum is -1/(2 * 0.7), so the
        // bound must be at most that (a bound that ignored the error would
        // give -1/2). The shift is 2 * 0.3, so the certified curvature is
        // 0.6 - 0.3; at the Newton point theta = 1 the model charges 0.3/2
        // on the value and 0.3 on the gradient: -1/2 - 0.15 - 0.3^2 / 0.6 =
        // -0.8. Claiming 0.6 + 0.3 instead would give -0.7, above -1/1.4.
        let form = QuadraticForm {
            hessian: DMatrix::from_element(1, 1, 1.0),
            linear: DVector::from_element(1, -1.0),
            constant: 0.0,
        };
        let bounds = FormBounds {
            hessian_error: 0.3,
            ..FormBounds::exact(&form)
        };
        let certificate = sound_quadratic_bound(
            std::slice::from_ref(&form),
            &[bounds],
            &[1.0],
            &Ball::unconstrained(),
        );
        assert!(certificate.bound <= -1.0 / 1.4, "{certificate:?}");
        assert!(certificate.bound >= -0.8 - 1e-9, "{certificate:?}");
    }

    #[test]
    fn a_form_evaluates_to_half_the_quadratic_plus_the_linear_and_constant_terms() {
        // H = [[3, 4], [4, -1]], l = (0, -2), c = -5 at theta = (1, 2):
        // 1/2 (3 + 16 - 4) - 4 - 5 = -1.5, every step exact.
        let form = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[3.0, 4.0, 4.0, -1.0]),
            linear: DVector::from_vec(vec![0.0, -2.0]),
            constant: -5.0,
        };
        assert_eq!(form.value(&DVector::from_vec(vec![1.0, 2.0])), -1.5);
        assert_eq!(form.dim(), 2);
    }

    #[test]
    fn exact_form_bounds_are_the_forms_norms_and_no_error() {
        let form = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[3.0, 4.0, 4.0, -1.0]),
            linear: DVector::from_vec(vec![0.0, -2.0]),
            constant: -5.0,
        };
        let b = FormBounds::exact(&form);
        let frobenius = 42f64.sqrt();
        assert!(b.hessian_norm >= frobenius && b.hessian_norm <= frobenius * (1.0 + 1e-12));
        assert!(b.linear_norm >= 2.0 && b.linear_norm <= 2.0 * (1.0 + 1e-12));
        assert_eq!(b.constant_abs, 5.0);
        assert_eq!(
            (b.hessian_error, b.linear_error, b.constant_error),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn a_slightly_nonconvex_form_on_a_ball_gets_its_deficit_charged() {
        // 1/2 (x^2 - 1e-4 y^2) on the unit ball: minimum -0.5e-4. No shift
        // near zero factors it; the search for a lower one (x 1e3 each try)
        // must reach past -1e-4 and charge that deficit over the ball.
        let form = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, -1e-4]),
            linear: DVector::zeros(2),
            constant: 0.0,
        };
        let certificate = sound_quadratic_bound(
            std::slice::from_ref(&form),
            &[FormBounds::exact(&form)],
            &[1.0],
            &Ball::with_radius(1.0),
        );
        assert!(certificate.bound <= -0.5e-4, "{certificate:?}");
        assert!(certificate.bound >= -1e-2, "{certificate:?}");
    }

    #[test]
    fn the_nonconvexity_allowance_is_subtracted_and_reported() {
        // Curvature >= -2 on the unit ball around 0: the bound drops by
        // 2/2 * 1^2 = 1 (rounded up by round_up's 2^-40 relative), and the
        // reported allowance grows by it.
        let certificate = Certificate {
            bound: 1.0,
            kind: "dual",
            error_bound: 0.25,
            note: "",
        };
        let charged = certificate.allowing_for_nonconvexity(2.0, &[0.0], &Ball::with_radius(1.0));
        assert!((-1e-11..=0.0).contains(&charged.bound), "{charged:?}");
        assert!(
            (1.25..=1.25 + 1e-11).contains(&charged.error_bound),
            "{charged:?}"
        );
        assert_eq!(charged.kind, "dual");
        assert!(!charged.note.is_empty());
        // Around theta = (3, 4), the reach is r + ||theta|| = 6: 2/2 6^2 = 36.
        let far = certificate.allowing_for_nonconvexity(2.0, &[3.0, 4.0], &Ball::with_radius(1.0));
        assert!((-35.0 - 1e-9..=-35.0).contains(&far.bound), "{far:?}");
        // No deficit, nothing charged.
        assert_eq!(
            certificate.allowing_for_nonconvexity(0.0, &[0.0], &Ball::with_radius(1.0)),
            certificate
        );
    }

    #[test]
    fn weights_without_mass_certify_nothing_and_say_why() {
        let form = QuadraticForm {
            hessian: DMatrix::from_element(1, 1, 1.0),
            linear: DVector::from_element(1, 0.0),
            constant: 0.0,
        };
        let forms = [form.clone(), form];
        let bounds = [FormBounds::exact(&forms[0]), FormBounds::exact(&forms[1])];
        for weights in [[0.0, 0.0], [f64::NAN, 1.0]] {
            let certificate =
                sound_quadratic_bound(&forms, &bounds, &weights, &Ball::unconstrained());
            assert_eq!(certificate.bound, f64::NEG_INFINITY, "{weights:?}");
            assert_eq!(
                certificate.note, "the certificate weights are not a nonnegative nonzero vector",
                "{weights:?}"
            );
        }
    }

    #[test]
    fn a_weighted_quadratic_that_overflows_certifies_nothing_and_says_why() {
        // Two Hessians of 1e308 sum to +inf; the linear term overflows the
        // same way in the second case. The stated errors stay finite.
        let huge = |h: f64, l: f64| QuadraticForm {
            hessian: DMatrix::from_element(1, 1, h),
            linear: DVector::from_element(1, l),
            constant: 0.0,
        };
        for (h, l) in [(1e308, 0.0), (1.0, 1e308)] {
            let forms = [huge(h, l), huge(h, l)];
            let bounds = [FormBounds::exact(&forms[0]), FormBounds::exact(&forms[1])];
            let certificate =
                sound_quadratic_bound(&forms, &bounds, &[1.0, 1.0], &Ball::with_radius(1.0));
            assert_eq!(certificate.bound, f64::NEG_INFINITY, "h {h}, l {l}");
            assert_eq!(
                certificate.note, "the weighted quadratic overflows f64",
                "h {h}, l {l}"
            );
        }
    }

    #[test]
    fn unconstrained_minimum_of_a_quadratic_is_exact() {
        let q = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, 4.0]),
            linear: DVector::from_vec(vec![-2.0, -4.0]),
            constant: 3.0,
        };
        // Minimiser (1, 1), value 3 - 1 - 2 = 0: never above it, and below it
        // only by the rounding allowance (a few gamma_5 times the terms' size).
        let bound = minimise_quadratic_on_ball(&q, &Ball::unconstrained());
        assert!((-1e-13..=0.0).contains(&bound), "{bound}");
        // Positive definite: its curvature is certified (the shifted Cholesky
        // succeeds), so the bound is a dual bound, not a fallback.
        let certificate = sound_quadratic_bound(
            std::slice::from_ref(&q),
            &[FormBounds::exact(&q)],
            &[1.0],
            &Ball::unconstrained(),
        );
        assert_eq!(certificate.kind, "dual", "{certificate:?}");
        assert!(certificate.note.is_empty(), "{certificate:?}");
    }

    #[test]
    fn an_exactly_stored_identity_certifies_its_curvature_in_every_dimension() {
        // Rump's slack is gamma_{d+1} ||U||_F^2 + u max|h_jj - s|, about
        // (d + 4) u tr H here; the shift, 2 gamma_{d+1} tr H (1.01) plus twice
        // the combination's own error, exceeds it and that error together in
        // every dimension, so the certificate is a dual one, tight to rounding.
        for d in 1..=6 {
            let identity = QuadraticForm {
                hessian: DMatrix::identity(d, d),
                linear: DVector::from_element(d, 1.0),
                constant: 0.0,
            };
            let certificate = sound_quadratic_bound(
                std::slice::from_ref(&identity),
                &[FormBounds::exact(&identity)],
                &[1.0],
                &Ball::unconstrained(),
            );
            assert_eq!(certificate.kind, "dual", "d = {d}: {certificate:?}");
            // min of 1/2 ||v||^2 + 1^T v is -d/2, certified to rounding.
            let exact = -0.5 * d as f64;
            assert!(
                certificate.bound <= exact && certificate.bound > exact - 1e-13,
                "d = {d}: {certificate:?}"
            );
        }
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
    fn ball_bound_with_a_singular_hessian_and_an_interior_minimiser_is_tight() {
        // 1/2 t_1^2 - t_1 / 2 on the ball of radius 2: the Hessian is singular
        // (no Newton point), the minimum -1/8 is attained inside the ball at
        // (1/2, anything), where the Lagrangian route must leave its point.
        let q = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]),
            linear: DVector::from_vec(vec![-0.5, 0.0]),
            constant: 0.0,
        };
        let bound = minimise_quadratic_on_ball(&q, &Ball::with_radius(2.0));
        assert!((-0.125 - 1e-12..=-0.125).contains(&bound), "{bound}");
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
    fn many_copies_of_one_form_charge_the_rounding_of_their_combination() {
        // 65536 copies of q = h/2 (theta - t)^2 at weights 2^-16: every
        // weighted mixture is q itself, whose minimum is 0 exactly (h, h t
        // and h t^2 / 2 are exact in f64). Adding the same long-mantissa
        // terms again and again rounds the same way each time (order M u),
        // so the computed combination has a positive minimum unless the
        // combination's rounding is charged.
        let m = 65536;
        let (h, t) = (1.0 + 99_999_999.0 * 2f64.powi(-45), 1.25);
        let q = QuadraticForm {
            hessian: DMatrix::from_element(1, 1, h),
            linear: DVector::from_element(1, -h * t),
            constant: 0.5 * h * t * t,
        };
        assert_eq!(q.constant * 2.0 / (t * t), h, "h t^2 / 2 must be exact");
        let forms = vec![q; m];
        let weights = vec![1.0 / m as f64; m];
        let bound = quadratic_dual_bound(&forms, &weights, &Ball::unconstrained());
        assert!(bound <= 0.0 && bound > -1e-9, "{bound:e}");
        // The test has teeth: the computed combination, certified as if it
        // were exact, claims a minimum above 0 (1.0e-12 when written).
        let computed = combined(&forms, &weights);
        let as_if_exact = quadratic_dual_bound(
            std::slice::from_ref(&computed),
            &[1.0],
            &Ball::unconstrained(),
        );
        assert!(as_if_exact > 0.0, "{as_if_exact:e}");
    }

    /// The work space holding one exact form at weight 1.
    fn combined_alone(form: &QuadraticForm) -> DualWork {
        let mut work = DualWork::default();
        work.combine(
            std::slice::from_ref(form),
            &[FormBounds::exact(form)],
            &[1.0],
        );
        work
    }

    #[test]
    fn the_newton_point_converges_at_the_conjugate_gradient_rate() {
        // H = diag(1, ..., 10) preconditioned by the factor of H - 0.6 I (a
        // shift as large as a stated Hessian error makes it): the
        // preconditioned operator has eigenvalues h / (h - 0.6) in [1.07,
        // 2.5], so each conjugate-gradient step cuts the H-norm error by
        // rho = (sqrt k - 1) / (sqrt k + 1) < 0.22 (Chebyshev), from the
        // start -(H - 0.6 I)^-1 l.
        let d = 10;
        let h: Vec<f64> = (1..=d).map(|i| i as f64).collect();
        let l: Vec<f64> = (0..d).map(|i| 1e3 * (1.0 + 0.1 * i as f64)).collect();
        let form = QuadraticForm {
            hessian: DMatrix::from_diagonal(&DVector::from_column_slice(&h)),
            linear: DVector::from_column_slice(&l),
            constant: 0.0,
        };
        let mut work = combined_alone(&form);
        let shift = 0.6;
        assert!(work.factor(shift));
        let h_norm_error = |theta: &[f64]| -> f64 {
            (0..d)
                .map(|i| h[i] * (theta[i] + l[i] / h[i]).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let start: Vec<f64> = (0..d).map(|i| -l[i] / (h[i] - shift)).collect();
        let kappa = (1.0 / (1.0 - shift / 1.0)) / (1.0 / (1.0 - shift / 10.0));
        let rho = (kappa.sqrt() - 1.0) / (kappa.sqrt() + 1.0);
        let (mut theta, mut residual, mut preconditioned) =
            (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
        work.newton_point(&mut theta, &mut residual, &mut preconditioned);
        let (before, after) = (h_norm_error(&start), h_norm_error(&theta));
        let allowed = 2.0 * rho.powi(NEWTON_CG_STEPS as i32) * before;
        assert!(
            after <= allowed,
            "H-norm error {after:e} after CG, allowed {allowed:e}"
        );
        assert!(before > 10.0 * allowed, "the start must need the steps");
    }

    #[test]
    fn a_zero_pivot_is_no_factorisation() {
        // diag(4, 1) - s I has pivots 4 - s and 1 - s: at s = 1 the second is
        // exactly 0, and a solve would divide by it.
        let q = QuadraticForm {
            hessian: DMatrix::from_row_slice(2, 2, &[4.0, 0.0, 0.0, 1.0]),
            linear: DVector::zeros(2),
            constant: 0.0,
        };
        let mut work = combined_alone(&q);
        assert!(work.factor(0.5));
        assert!(!work.factor(1.0));
        assert!(!work.factor(2.0));
    }

    #[test]
    fn a_model_bound_without_curvature_is_labelled_a_linearization() {
        let q = QuadraticForm {
            hessian: DMatrix::identity(2, 2),
            linear: DVector::from_vec(vec![1.0, 0.0]),
            constant: 0.0,
        };
        let mut work = DualWork::default();
        let totals = work.combine(std::slice::from_ref(&q), &[FormBounds::exact(&q)], &[1.0]);
        let (theta, mut gradient, ball) = (vec![0.0; 2], vec![0.0; 2], Ball::with_radius(1.0));
        let flat = work.evaluate_model(&theta, &mut gradient, &totals, 0.0, &ball);
        assert_eq!(flat.kind, "linearization");
        assert!(!flat.note.is_empty());
        let curved = work.evaluate_model(&theta, &mut gradient, &totals, f64::MIN_POSITIVE, &ball);
        assert_eq!(curved.kind, "dual");
        assert!(curved.note.is_empty(), "{}", curved.note);
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

    // Campaign 4's survivors (docs/MUTANTS.md): each test below was seen red
    // on the mutant it names and green on the code.

    /// `x` as an exact integer multiple of 2^-110 (the test fails where it is
    /// not one), for exact sums of a few doubles.
    fn in_units(x: f64) -> i128 {
        let scaled = x * 2f64.powi(110);
        assert!(
            scaled.fract() == 0.0 && scaled.abs() < 2f64.powi(120),
            "{x:e}"
        );
        scaled as i128
    }

    #[test]
    fn the_linearization_charges_the_rounding_of_r_times_the_norm_on_its_own() {
        // The analysis charges each rounding where it occurs: with N =
        // norm_up(g) the certified norm, the linearization is at most
        // V - r N computed exactly, whatever slack N itself carries. Here
        // g = (1), t = 0, r = 1 and V = N, so V - r N = 0 exactly and the
        // bound must be <= 0 (the product r N rounded is charged by 1 + 4u).
        let n = norm_up(&[1.0]);
        let bound = local_model_bound(n, &[1.0], 0.0, 0.0, &[0.0], &Ball::with_radius(1.0));
        assert!(bound <= 0.0, "{bound:e} above V - r N = 0");
        assert!(bound >= -8.0 * UNIT_ROUNDOFF * n, "{bound:e}");
    }

    #[test]
    fn completing_the_square_far_from_the_ball_with_a_small_gradient_is_tight() {
        // min of 1e-8 v_1 + 1/2 ||v||^2 over ||theta'|| <= 1, v = theta' - (3, 0):
        // m = (3 - 1e-8, 0), so -1e-16 / 2 + 1/2 (2 - 1e-8)^2 = 2 - 2e-8. The
        // lower bound on ||m|| may only lose u (1 + u) ||g|| / lambda (1e-24
        // here) for the rounding of g / lambda.
        let bound = local_model_bound(
            0.0,
            &[1e-8, 0.0],
            0.0,
            1.0,
            &[3.0, 0.0],
            &Ball::with_radius(1.0),
        );
        let exact = 2.0 - 2e-8;
        assert!(bound <= exact, "{bound} above {exact}");
        assert!(bound >= exact - 1e-14, "{bound} far below {exact}");
        // The mirror image, m = (-(3 - 1e-8), 0): the same minimum.
        let mirrored = local_model_bound(
            0.0,
            &[-1e-8, 0.0],
            0.0,
            1.0,
            &[-3.0, 0.0],
            &Ball::with_radius(1.0),
        );
        assert!(mirrored <= exact, "{mirrored} above {exact}");
        assert!(mirrored >= exact - 1e-14, "{mirrored} far below {exact}");
    }

    #[test]
    fn combining_subnormal_terms_charges_their_underflow() {
        // 100 forms whose linear terms are eta (the smallest subnormal) in
        // each of 16 entries, with weights 0.49: every product 0.49 eta
        // rounds to 0, so the computed combination is 0 while the exact one
        // is 49 eta per entry, 196 eta in norm. The combined linear error
        // must cover that (the forms themselves are exact).
        let (m, d) = (100, 16);
        let form = QuadraticForm {
            hessian: DMatrix::identity(d, d),
            linear: DVector::from_element(d, UNDERFLOW_UNIT),
            constant: 0.0,
        };
        let forms = vec![form.clone(); m];
        let bounds = vec![FormBounds::exact(&form); m];
        let weights = vec![0.49; m];
        let mut work = DualWork::default();
        let totals = work.combine(&forms, &bounds, &weights);
        assert!(work.linear.iter().all(|&v| v == 0.0), "{:?}", work.linear);
        let lost = (d as f64).sqrt() * m as f64 * 0.49 * UNDERFLOW_UNIT;
        assert!(
            totals.linear_error >= lost,
            "linear error {:e} below the {lost:e} lost to underflow",
            totals.linear_error
        );
    }

    #[test]
    fn a_combination_that_rounds_down_at_every_step_is_charged_what_it_lost() {
        // One form with linear term 2, then 1000 with 2^-52 (weights 1): every
        // addition 2 + 2^-52 is a tie that rounds to 2, so the computed
        // combination loses exactly 1000 2^-52. The running magnitudes
        // charge u (2 + 2^-52) per step: the bound covers the loss and is
        // within 1% of it.
        let k = 1000;
        let small = 2f64.powi(-52);
        let form = |linear: f64, hessian: f64, constant: f64| QuadraticForm {
            hessian: DMatrix::from_element(1, 1, hessian),
            linear: DVector::from_element(1, linear),
            constant,
        };
        for (which, first, rest) in [
            ("linear", form(2.0, 0.0, 0.0), form(small, 0.0, 0.0)),
            ("hessian", form(0.0, 2.0, 0.0), form(0.0, small, 0.0)),
            ("constant", form(0.0, 0.0, 2.0), form(0.0, 0.0, small)),
        ] {
            let mut forms = vec![first];
            forms.extend(std::iter::repeat_n(rest, k));
            let bounds = vec![FormBounds::default(); k + 1];
            let mut work = DualWork::default();
            let totals = work.combine(&forms, &bounds, &vec![1.0; k + 1]);
            let (computed, error) = match which {
                "linear" => (work.linear[0], totals.linear_error),
                "hessian" => (work.hessian[0], totals.hessian_error),
                _ => (work.constant, totals.constant_error),
            };
            assert_eq!(computed, 2.0, "{which}");
            let lost = k as f64 * small;
            // The Hessian's bound carries sqrt 2 for the symmetric error.
            let allowed = if which == "hessian" { 2f64.sqrt() } else { 1.0 } * lost;
            assert!(
                error >= lost && error <= 1.01 * allowed,
                "{which}: error bound {error:e} against the {lost:e} lost"
            );
        }
    }

    #[test]
    fn certified_curvature_is_below_demmels_bound_computed_exactly() {
        // H = (4 + s) I with s = 2^-37: H - s I = 4 I exactly, U = 2 I, so
        // ||U||_F^2 = 4d and max |h_jj - s| = 4 with no rounding, and
        // s - gamma(d + 1) 4d - 4u (the documented certificate, with the
        // code's gamma) is a dyadic number summed exactly below. s sits
        // just above the subtracted terms so that the final rounding is
        // small against their own allowance (gamma_{d^2} relative).
        let d = 100;
        let s = 2f64.powi(-37);
        let form = QuadraticForm {
            hessian: DMatrix::identity(d, d) * (4.0 + s),
            linear: DVector::zeros(d),
            constant: 0.0,
        };
        let mut work = combined_alone(&form);
        assert!(work.factor(s));
        assert!((0..d).all(|j| work.factor[j + j * d] == 2.0));
        let documented =
            in_units(s) - 4 * d as i128 * in_units(gamma(d + 1)) - in_units(4.0 * UNIT_ROUNDOFF);
        let certified = in_units(work.certified_curvature(s));
        assert!(
            certified <= documented,
            "certified exceeds the documented bound by {} units of 2^-110",
            certified - documented
        );
        // ... by its allowances only: a relative 1e-10 of what is subtracted.
        assert!(
            documented - certified <= (in_units(s) - documented) / 10_000_000_000,
            "{}",
            documented - certified
        );
    }

    #[test]
    fn certified_curvature_charges_eight_d_squared_subnormal_units_for_underflow() {
        // H = 0 (d = 3) shifted by s = -2^-1040, a subnormal: H - s I = 2^-1040 I
        // factors exactly into U = 2^-520 I. The documented slack's rounding
        // terms, gamma_{d+1} ||U||_F^2 and u max |h_jj - s|, are each below
        // 2^-18 eta here, so the certificate is s less 8 d^2 = 72 subnormal
        // units eta, and less the few units its directed steps round by.
        let d = 3;
        let zero = QuadraticForm {
            hessian: DMatrix::zeros(d, d),
            linear: DVector::zeros(d),
            constant: 0.0,
        };
        let mut work = combined_alone(&zero);
        let s = -2f64.powi(-1040);
        assert!(work.factor(s));
        assert!((0..d).all(|j| work.factor[j + j * d] == 2f64.powi(-520)));
        let in_etas = |x: f64| x / UNDERFLOW_UNIT; // exact: x is a subnormal
        let below_shift = in_etas(s) - in_etas(work.certified_curvature(s));
        assert!(
            (72.0..=72.0 + 8.0).contains(&below_shift),
            "{below_shift} units below the shift"
        );
    }

    #[test]
    fn a_subnormal_constant_error_is_charged_in_full() {
        // 1/2 ||theta||^2 (d = 16) whose constant is known only to within
        // 1000 eta: the task may be 1/2 ||theta||^2 - 1000 eta, so OPT may be
        // -1000 eta and the bound must be at most that (subnormal arithmetic
        // is exact here, so each eta-sized allowance counts).
        let d = 16;
        let form = QuadraticForm {
            hessian: DMatrix::identity(d, d),
            linear: DVector::zeros(d),
            constant: 0.0,
        };
        let slack = 1000.0 * UNDERFLOW_UNIT;
        let certificate = sound_quadratic_bound(
            std::slice::from_ref(&form),
            &[FormBounds {
                constant_error: slack,
                ..FormBounds::exact(&form)
            }],
            &[1.0],
            &Ball::unconstrained(),
        );
        assert_eq!(certificate.kind, "dual", "{certificate:?}");
        assert!(certificate.bound <= -slack, "{certificate:?}");
        assert!(certificate.bound >= -1e-300, "{certificate:?}");
    }

    #[test]
    fn certificates_scale_with_the_forms_by_powers_of_two() {
        // Multiplying H, l and c by 2^k rounds nothing and leaves the
        // minimiser where it was, so every computed quantity and allowance
        // scales by 2^k: the bound must too (only eta-sized terms, far below
        // these magnitudes, do not scale). An allowance with an absolute
        // constant would show at 2^-40.
        let forms = [
            QuadraticForm {
                hessian: DMatrix::from_row_slice(2, 2, &[2.0, 0.5, 0.5, 1.0]),
                linear: DVector::from_vec(vec![-1.0, 0.3]),
                constant: 0.7,
            },
            QuadraticForm {
                hessian: DMatrix::from_row_slice(2, 2, &[1.0, -0.2, -0.2, 3.0]),
                linear: DVector::from_vec(vec![0.4, -2.0]),
                constant: 1.3,
            },
        ];
        let weights = [0.3, 0.7];
        let bound = |k: i32, ball: &Ball| {
            let t = 2f64.powi(k);
            let scaled: Vec<QuadraticForm> = forms
                .iter()
                .map(|f| QuadraticForm {
                    hessian: &f.hessian * t,
                    linear: &f.linear * t,
                    constant: f.constant * t,
                })
                .collect();
            let bounds: Vec<FormBounds> = scaled.iter().map(FormBounds::exact).collect();
            sound_quadratic_bound(&scaled, &bounds, &weights, ball).bound
        };
        for ball in [Ball::unconstrained(), Ball::with_radius(0.2)] {
            let base = bound(0, &ball);
            assert!(base.is_finite() && base != 0.0, "{base}");
            for k in [-40, -20, 20, 40] {
                let scaled = bound(k, &ball) / 2f64.powi(k);
                assert!(
                    (scaled - base).abs() <= 1e-14 * base.abs(),
                    "2^{k}, {ball:?}: {scaled} against {base}"
                );
            }
        }
    }

    #[test]
    fn a_lagrangian_point_that_rounding_leaves_outside_the_ball_still_certifies() {
        // H = 0, l = 1, r = 3.5: the bisection's upper end nu = |l| / r puts
        // the point exactly on the sphere, and rounding puts it just outside
        // (1 / (1/3.5)^2 > 3.5^2 in f64). The model bound holds around any
        // point: min of theta on [-3.5, 3.5] is -3.5.
        let a = 1.0f64 / 3.5;
        assert!(1.0 / (a * a) > 3.5 * 3.5, "the case must round outside");
        let q = QuadraticForm {
            hessian: DMatrix::zeros(1, 1),
            linear: DVector::from_element(1, 1.0),
            constant: 0.0,
        };
        let bound = minimise_quadratic_on_ball(&q, &Ball::with_radius(3.5));
        // (The singular Hessian is certified only as nearly convex, and its
        // possible deficit is charged over the ball: about 1e-12 relative.)
        assert!((-3.5 * (1.0 + 1e-11)..=-3.5).contains(&bound), "{bound}");
    }

    #[test]
    fn lagrangian_points_lie_on_the_sphere_at_the_constrained_minimiser() {
        // Binding balls on random PSD Hessians (some singular): the point is
        // on the sphere to rounding, and it satisfies the KKT condition
        // H x + l = -nu x with nu >= 0 (x parallel to -(H x + l)).
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(747);
        let mut draw = move || rand::Rng::random_range(&mut rng, -1.0f64..1.0);
        for case in 0..400 {
            let d = 2 + case % 5;
            let g = DMatrix::from_fn(d, d, |_, _| draw());
            let mut h = &g * g.transpose();
            if case % 3 == 0 {
                h.column_mut(0).fill(0.0);
                h.row_mut(0).fill(0.0);
            }
            let l = DVector::from_fn(d, |_, _| 10.0 * draw());
            let r = 0.01 + 0.1 * draw().abs();
            let point = lagrangian_point(&h, &l, r).expect("a point");
            let norm = point.norm();
            assert!(
                (norm - r).abs() <= 1e-12 * r,
                "case {case}: |point| {norm} for r {r}"
            );
            let gradient = &h * &point + &l;
            let cosine = -gradient.dot(&point) / (gradient.norm() * norm);
            assert!(cosine > 1.0 - 1e-9, "case {case}: cos {cosine}");
        }
    }

    #[test]
    fn evaluation_bound_refuses_negative_weights() {
        let mut at = crate::family::Evaluation::new(2, 1);
        at.losses.copy_from_slice(&[1.0, 2.0]);
        at.weights.copy_from_slice(&[-0.25, 1.25]);
        let certificate = evaluation_bound(
            &DVector::zeros(1),
            &at,
            |_| 0.0,
            |_| 0.0,
            1.0,
            &Ball::with_radius(1.0),
        );
        assert_eq!(certificate.bound, f64::NEG_INFINITY, "{certificate:?}");
        assert_eq!(
            certificate.note,
            "the certificate weights are not a nonnegative nonzero vector"
        );
    }

    #[test]
    fn evaluation_bound_charges_each_loss_error_at_its_weight() {
        // Losses 1 and 1 known within 1e-3 and 3e-3, weights 1/4 and 3/4:
        // the weighted value is known within 2.5e-3, no more and no less.
        let at = two_tasks_at_zero([0.25, 0.75], 0.0);
        let theta = DVector::zeros(2);
        let ball = Ball::with_radius(1.0);
        let errors = [1e-3, 3e-3];
        let exact = evaluation_bound(&theta, &at, |_| 0.0, |_| 0.0, 0.0, &ball).bound;
        let charged = evaluation_bound(&theta, &at, |i| errors[i], |_| 0.0, 0.0, &ball).bound;
        let drop = exact - charged;
        assert!(
            (2.5e-3..=2.5e-3 * (1.0 + 1e-12)).contains(&drop),
            "charged {drop:e} for 2.5e-3"
        );
    }

    #[test]
    fn evaluation_bound_charges_stated_errors_and_summation_together_and_reports_them() {
        // Stated task-gradient errors 1e-3 and 3e-3 (weights 1/4, 3/4) AND
        // task gradients of norm 1e9, whose weighted sum rounds by up to
        // gamma(2) 1e9: both are charged over the ball's reach (radius 1
        // around theta = 0), so the bound drops by their sum, and the
        // certificate reports what it subtracted as its error bound.
        let at = |norm: f64| two_tasks_at_zero([0.25, 0.75], norm);
        let theta = DVector::zeros(2);
        let ball = Ball::with_radius(1.0);
        let errors = [1e-3, 3e-3];
        let exact = evaluation_bound(&theta, &at(0.0), |_| 0.0, |_| 0.0, 0.0, &ball);
        let charged = evaluation_bound(&theta, &at(1e9), |_| 0.0, |i| errors[i], 0.0, &ball);
        let want = 2.5e-3 + gamma(2) * 1e9;
        let drop = exact.bound - charged.bound;
        assert!(drop >= want, "charged {drop:e} below {want:e}");
        assert!(
            drop <= want * (1.0 + 1e-9),
            "charged {drop:e} above {want:e}"
        );
        // The reported allowance: the model's value without any error less
        // the bound, i.e. this drop up to the loss sum's own gamma_3 and the
        // roundings of the two bounds (a few 1e-16).
        assert!(
            (charged.error_bound - drop).abs() <= 1e-12,
            "{} against {drop:e}",
            charged.error_bound
        );
        assert!(
            exact.error_bound >= 0.0 && exact.error_bound <= 1e-15,
            "{exact:?}"
        );
    }
}
