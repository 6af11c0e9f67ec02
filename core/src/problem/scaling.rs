//! Power-of-two rescaling of problems whose data lie far from 1.
//!
//! Data near 1e-200 or 1e200 make Gram matrices, squared norms and constants
//! under- or overflow f64 although the problem itself is representable. The
//! loader multiplies the data by powers of two, which rounds nothing for
//! normal numbers, so the internal problem is the same problem in other units:
//!
//! ```text
//! theta = 2^theta_exp * theta_internal,   f(theta) = 2^loss_exp * f_internal(theta_internal).
//! ```
//!
//! The solve runs in internal units and its results are mapped back. A value
//! mapped into the subnormal range is rounded to nearest, so a lower bound is
//! moved down (and an upper one up) by one unit there and stays valid.
//! Data within `2^±SAFE_EXPONENT` are left alone: the common case runs
//! bit-for-bit as before.

use crate::family::{QuadraticTask, TaskData};
use crate::linalg::element::Element;
use crate::solvers::SolveOutcome;

/// Data whose largest magnitude lies within `2^-SAFE_EXPONENT ..
/// 2^SAFE_EXPONENT` are not rescaled: squares and sums of a few million of
/// their products stay far inside f64's normal range.
pub const SAFE_EXPONENT: i32 = 100;

/// The internal units of a problem (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Scaling {
    /// theta = 2^theta_exp theta_internal.
    pub theta_exp: i32,
    /// f = 2^loss_exp f_internal.
    pub loss_exp: i32,
}

/// `x * 2^k` for any `k`, in steps whose intermediate results stay normal
/// wherever the final one is (so it rounds at most once, at the end).
pub fn ldexp(mut x: f64, mut k: i32) -> f64 {
    const CHUNK: i32 = 960;
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    while k > CHUNK && x.is_finite() {
        x *= 2f64.powi(CHUNK);
        k -= CHUNK;
    }
    while k < -CHUNK && x != 0.0 {
        x *= 2f64.powi(-CHUNK);
        k += CHUNK;
    }
    x * 2f64.powi(k)
}

/// `e` with `2^(e-1) <= x < 2^e` (up to rounding of the logarithm) for a
/// finite `x > 0`; `None` for zero.
pub fn exponent(x: f64) -> Option<i32> {
    (x > 0.0 && x.is_finite()).then(|| x.log2().floor() as i32 + 1)
}

/// The largest |value| (0 for none; NaN is skipped, as `f64::max` does).
///
/// Eight independent running maxima, so the loop vectorises instead of
/// waiting on one chain of comparisons; a maximum does not depend on the
/// order it is taken in, so the result is the same.
pub fn largest_magnitude<T: Element>(values: &[T]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = values.chunks_exact(lanes.len());
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let a = v.widen().abs();
            // A NaN compares false and is skipped.
            *lane = if a > *lane { a } else { *lane };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.widen().abs()));
    lanes.iter().fold(tail, |m, &lane| m.max(lane))
}

fn scale_in_place(values: &mut [f64], k: i32) {
    if k != 0 {
        for v in values {
            *v = ldexp(*v, k);
        }
    }
}

/// One unit in the last place of the subnormal range: the most that mapping
/// a normal number into that range can move it.
const SUBNORMAL_UNIT: f64 = crate::problem::numerics::UNDERFLOW_UNIT;

impl Scaling {
    /// No rescaling: the internal units are the problem's units.
    pub const IDENTITY: Self = Self {
        theta_exp: 0,
        loss_exp: 0,
    };

    /// Whether nothing is rescaled.
    pub fn is_identity(&self) -> bool {
        *self == Self::IDENTITY
    }

    /// Least squares, `f = ||X theta - y||^2 / (2n)`: X and y are divided by
    /// powers of two near their largest magnitudes (one for every task, so
    /// that the worst task stays the worst).
    pub fn equilibrate_least_squares(tasks: &mut [TaskData]) -> Self {
        let x_max = tasks
            .iter()
            .fold(0.0f64, |m, t| m.max(t.xt.largest_magnitude()));
        let y_max = tasks
            .iter()
            .fold(0.0f64, |m, t| m.max(largest_magnitude(t.y.as_slice())));
        let ex = exponent(x_max).unwrap_or(0);
        let ey = exponent(y_max).unwrap_or(0);
        if ex.abs() <= SAFE_EXPONENT && ey.abs() <= SAFE_EXPONENT {
            return Self::IDENTITY;
        }
        for task in tasks.iter_mut() {
            scale_in_place(task.xt.as_mut_slice(), -ex);
            scale_in_place(task.y.as_mut_slice(), -ey);
        }
        // X theta - y = 2^ey (X' theta' - y') with theta = 2^(ey - ex) theta'.
        Self {
            theta_exp: ey - ex,
            loss_exp: 2 * ey,
        }
    }

    /// l2-regularised logistic regression: only large x needs help (its
    /// Gram matrix and smoothness overflow; small x leaves the l2 curvature
    /// in charge). x is divided by `2^k` and theta multiplied by it, which
    /// moves the penalty to `l2 2^-2k`; `k` is capped so that it stays a
    /// normal number. Returns the scaling and the internal l2.
    pub fn equilibrate_logistic(tasks: &mut [TaskData], l2: f64) -> (Self, f64) {
        let x_max = tasks
            .iter()
            .fold(0.0f64, |m, t| m.max(t.xt.largest_magnitude()));
        let ex = exponent(x_max).unwrap_or(0);
        if ex <= SAFE_EXPONENT {
            return (Self::IDENTITY, l2);
        }
        let cap = ((l2.log2() + 1000.0) / 2.0).floor();
        let k = if cap.is_finite() {
            ex.min(cap as i32)
        } else {
            ex
        };
        if k <= 0 {
            return (Self::IDENTITY, l2);
        }
        for task in tasks.iter_mut() {
            scale_in_place(task.xt.as_mut_slice(), -k);
        }
        (
            Self {
                theta_exp: -k,
                loss_exp: 0,
            },
            ldexp(l2, -2 * k),
        )
    }

    /// Quadratics, `f = 1/2 (theta - c)^T A (theta - c) + b`: theta is
    /// measured in units of the largest |c|, and losses in units of the
    /// larger of the quadratic part's scale and the largest |b|.
    pub fn equilibrate_quadratic(tasks: &mut [QuadraticTask]) -> Self {
        let a_max = tasks
            .iter()
            .fold(0.0f64, |m, t| m.max(largest_magnitude(t.a.as_slice())));
        let c_max = tasks
            .iter()
            .fold(0.0f64, |m, t| m.max(largest_magnitude(t.c.as_slice())));
        let b_max = tasks.iter().fold(0.0f64, |m, t| m.max(t.b.abs()));
        let ea = exponent(a_max).unwrap_or(0);
        let ec = exponent(c_max).unwrap_or(0);
        let quadratic = ea + 2 * ec;
        let t = match exponent(b_max) {
            Some(eb) => quadratic.max(eb),
            None => quadratic,
        };
        if [ea, ec, t].iter().all(|e| e.abs() <= SAFE_EXPONENT) {
            return Self::IDENTITY;
        }
        let s = ec;
        for task in tasks.iter_mut() {
            scale_in_place(task.a.as_mut_slice(), 2 * s - t);
            scale_in_place(task.c.as_mut_slice(), -s);
            task.b = ldexp(task.b, -t);
        }
        Self {
            theta_exp: s,
            loss_exp: t,
        }
    }

    /// A length (theta units: a radius, --distance) in internal units.
    pub fn length_to_internal(&self, length: f64) -> f64 {
        ldexp(length, -self.theta_exp)
    }

    /// A temperature or loss value in internal units.
    pub fn loss_to_internal(&self, value: f64) -> f64 {
        ldexp(value, -self.loss_exp)
    }

    /// A step on theta (theta^2 / loss) in internal units.
    pub fn step_to_internal(&self, step: f64) -> f64 {
        ldexp(step, self.loss_exp - 2 * self.theta_exp)
    }

    /// A step on the task weights (1 / loss) in internal units.
    pub fn weight_step_to_internal(&self, step: f64) -> f64 {
        ldexp(step, self.loss_exp)
    }

    /// A point (theta units) in internal units, in place.
    pub fn theta_to_internal(&self, theta: &mut [f64]) {
        scale_in_place(theta, -self.theta_exp);
    }

    /// A loss-unit value back in the problem's units, rounded up.
    fn upper_loss(&self, value: f64) -> f64 {
        let v = ldexp(value, self.loss_exp);
        if v.abs() < f64::MIN_POSITIVE && v != value {
            v + SUBNORMAL_UNIT
        } else {
            v
        }
    }

    /// A lower bound back in the problem's units, rounded down.
    fn lower_loss(&self, value: f64) -> f64 {
        let v = ldexp(value, self.loss_exp);
        if v.abs() < f64::MIN_POSITIVE && v != value {
            v - SUBNORMAL_UNIT
        } else {
            v
        }
    }

    /// Maps a solve's results from internal units back to the problem's.
    pub fn outcome_to_problem_units(&self, outcome: &mut SolveOutcome) {
        if self.is_identity() {
            return;
        }
        let (s, t) = (self.theta_exp, self.loss_exp);
        scale_in_place(&mut outcome.theta, s);
        for loss in &mut outcome.losses {
            *loss = ldexp(*loss, t);
        }
        outcome.max_loss = self.upper_loss(outcome.max_loss);
        outcome.lower_bound = self.lower_loss(outcome.lower_bound);
        outcome.gap = self.upper_loss(outcome.gap);
        outcome.certificate.error_bound = self.upper_loss(outcome.certificate.error_bound);
        let curvature = |v: f64| ldexp(v, t - 2 * s);
        let step = |v: f64| ldexp(v, 2 * s - t);
        outcome.mu = outcome.mu.map(|mu| ldexp(mu, t));
        outcome.step = outcome.step.map(step);
        let constants = &mut outcome.constants;
        constants.smoothness = constants.smoothness.map(curvature);
        constants.strong_convexity = constants.strong_convexity.map(curvature);
        constants.smoothed_smoothness = constants.smoothed_smoothness.map(curvature);
        constants.smallest_step = constants.smallest_step.map(step);
        constants.gradient_bound = ldexp(constants.gradient_bound, t - s);
        constants.loss_bound = ldexp(constants.loss_bound, t);
        for record in &mut outcome.trace {
            record.max_loss = self.upper_loss(record.max_loss);
            record.smoothed_loss = record.smoothed_loss.map(|v| ldexp(v, t));
            record.lower_bound = self.lower_loss(record.lower_bound);
            record.best_lower_bound = self.lower_loss(record.best_lower_bound);
            record.gap = self.upper_loss(record.gap);
            record.step = step(record.step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{GradientForm, LeastSquaresFamily, TaskFamily};
    use nalgebra::{DMatrix, DVector};

    #[test]
    fn largest_magnitude_is_the_plain_maximum_in_either_type_and_skips_nan() {
        let naive = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(60);
        for len in 0..40 {
            for peak in 0..len.max(1) {
                let mut v: Vec<f64> = (0..len)
                    .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
                    .collect();
                if len > 0 {
                    v[peak] = -3.5;
                    v[(peak * 7) % len] = f64::NAN;
                }
                let want = naive(&v);
                assert_eq!(largest_magnitude(&v), want, "len {len} peak {peak}");
                let narrow: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                let widened: Vec<f64> = narrow.iter().map(|&x| f64::from(x)).collect();
                assert_eq!(largest_magnitude(&narrow), naive(&widened));
            }
        }
        assert_eq!(largest_magnitude::<f64>(&[]), 0.0);
        assert_eq!(largest_magnitude(&[f64::NAN; 9]), 0.0);
    }

    #[test]
    fn ldexp_reaches_past_the_exponent_range_and_rounds_once() {
        assert_eq!(ldexp(1.5, 1500 - 1000), 1.5 * 2f64.powi(500));
        assert_eq!(ldexp(ldexp(3.0, 1000), -1000), 3.0);
        assert_eq!(ldexp(ldexp(3.0, -1020), 1020), 3.0);
        assert_eq!(ldexp(3.0, 1800), f64::INFINITY);
        assert_eq!(ldexp(1e200, -1800), ldexp(1e200 * 2f64.powi(-900), -900));
        assert_eq!(ldexp(1.0, 1100), f64::INFINITY);
        assert_eq!(ldexp(1.0, -1100), 0.0);
        assert_eq!(exponent(1.0), Some(1));
        assert_eq!(exponent(0.75), Some(0));
        assert_eq!(exponent(0.0), None);
    }

    fn tasks(scale_x: f64, scale_y: f64) -> Vec<TaskData> {
        let x = DMatrix::from_fn(6, 3, |i, j| {
            ((i * 7 + j * 3) % 5) as f64 - 2.0 + 0.25 * j as f64
        });
        let y = DVector::from_fn(6, |i, _| (i as f64) * 0.5 - 1.0);
        vec![TaskData::from_rows(&(x * scale_x), y * scale_y)]
    }

    #[test]
    fn data_inside_the_safe_range_are_left_alone() {
        let mut t = tasks(1e20, 1e-20);
        let before = t[0].xt.as_slice().to_vec();
        assert!(Scaling::equilibrate_least_squares(&mut t).is_identity());
        assert_eq!(t[0].xt.as_slice(), &before[..]);
    }

    #[test]
    fn least_squares_in_internal_units_is_the_same_problem() {
        // Scaled by powers of two, so the comparison can be exact.
        let (sx, sy) = (2f64.powi(-700), 2f64.powi(300));
        let mut scaled = tasks(sx, sy);
        let reference = tasks(1.0, 1.0);
        let scaling = Scaling::equilibrate_least_squares(&mut scaled);
        assert!(!scaling.is_identity());
        let internal = LeastSquaresFamily::new(scaled, GradientForm::Auto).unwrap();
        let plain = LeastSquaresFamily::new(reference, GradientForm::Auto).unwrap();
        let theta = DVector::from_vec(vec![0.5, -1.25, 2.0]);
        // theta_internal = theta_plain * (sx / sy) / 2^theta_exp ... compare losses.
        let mut theta_internal = (theta.clone() * (sy / sx)).as_slice().to_vec();
        scaling.theta_to_internal(&mut theta_internal);
        let mut a = vec![0.0];
        let mut b = vec![0.0];
        internal
            .losses(&DVector::from_vec(theta_internal), &mut a)
            .unwrap();
        plain.losses(&theta, &mut b).unwrap();
        // f_scaled(theta sy/sx) = sy^2 f_plain(theta) = 2^loss_exp f_internal.
        let expected = b[0] * sy * sy;
        assert_eq!(ldexp(a[0], scaling.loss_exp), expected);
    }

    #[test]
    fn mapped_bounds_stay_on_their_side_in_the_subnormal_range() {
        let scaling = Scaling {
            theta_exp: 0,
            loss_exp: -1070,
        };
        let value = 1.7;
        let lower = scaling.lower_loss(value);
        let upper = scaling.upper_loss(value);
        // The exact value 1.7 * 2^-1070 lies strictly between them.
        assert!(lower < upper);
        assert!(ldexp(lower, 1070) <= 1.7 && ldexp(upper, 1070) >= 1.7);
    }
}
