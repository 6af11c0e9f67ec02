//! l2-regularised logistic regression tasks (labels +1/-1):
//! `f_i(theta) = mean_j ln(1 + exp(-y_j x_j^T theta)) + l2/2 ||theta||^2`.

use super::{
    combine_task_gradients, DataTasks, Evaluation, SampleNorms, TaskData, TaskFamily,
    TaskGradients, Weigh,
};
use crate::error::{check_positive, Error, InputError};
use crate::linalg::kernels::{softplus, softplus_and_sigmoid};
use crate::problem::ball::Ball;
use crate::problem::certificate::{
    evaluation_bound, local_model_bound, norm_up, per_unit_weight, round_down, Certificate,
    EvaluationTotals,
};
use crate::problem::directed::mul_down;
use crate::problem::numerics::{gamma, round_up, UNDERFLOW_UNIT, UNIT_ROUNDOFF};
use crate::problem::residual::certified_smallest_eigenvalue;
use nalgebra::{DMatrix, DVector};
use std::sync::{Mutex, OnceLock};

/// The penalty certificate's rounding allowance, as a share of its bound,
/// above which the local-curvature certificate is tried too.
const PENALTY_ALLOWANCE_SHARE: f64 = 1e-6;

/// A lower bound on `sigma'(m) = e^-m / (1 + e^-m)^2` for `m >= 0` (`exp`
/// charged 4 ulps).
fn sigmoid_slope_below(margin: f64) -> f64 {
    let e = (-margin.abs()).exp();
    let (low, high) = (
        e * (1.0 - 4.0 * UNIT_ROUNDOFF),
        e * (1.0 + 4.0 * UNIT_ROUNDOFF),
    );
    let slope = low / ((1.0 + high) * (1.0 + high)) * (1.0 - 8.0 * UNIT_ROUNDOFF);
    if slope.is_nan() {
        0.0
    } else {
        slope.max(0.0)
    }
}

fn logistic_link(z: f64, y: f64) -> (f64, f64) {
    let (loss, slope) = softplus_and_sigmoid(-y * z);
    (loss, -y * slope)
}

/// Logistic regression tasks with a shared l2 penalty (so every task is
/// `l2`-strongly convex, which gives the certified dual bound).
#[derive(Debug)]
pub struct LogisticFamily {
    data: DataTasks,
    l2: f64,
    /// Every task selected, kept so that `evaluate` does not allocate.
    all_tasks: Vec<bool>,
    spectral: OnceLock<Vec<(f64, f64)>>,
    norms: OnceLock<Vec<SampleNorms>>,
    /// Each task's scaled Gram matrix (the local-curvature certificate;
    /// computed on first use).
    scaled_grams: OnceLock<Option<ScaledGrams>>,
    task_gradients: Mutex<TaskGradients>,
}

/// Each task's `X^T X / n` computed on the samples scaled by `2^-e` (`2^e` near
/// the largest |x| of all tasks: exact but for underflow), so that no square
/// overflows, with a bound on each one's rounding in the same scaled units.
#[derive(Debug)]
struct ScaledGrams {
    exponent: i32,
    grams: Vec<DMatrix<f64>>,
    /// Upper bounds on `||grams[i] - 4^-e X_i^T X_i / n_i||_2`.
    errors: Vec<f64>,
    /// Upper bounds on `||grams[i]||_F`.
    sizes: Vec<f64>,
}

impl LogisticFamily {
    /// Validates the tasks (labels must be +1 or -1) and the penalty `l2` (> 0).
    pub fn new(tasks: Vec<TaskData>, l2: f64) -> Result<Self, InputError> {
        check_positive("l2", l2)?;
        let data = DataTasks::new(tasks, true)?;
        let (d, m) = (data.dim(), data.num_tasks());
        Ok(Self {
            data,
            l2,
            all_tasks: vec![true; m],
            spectral: OnceLock::new(),
            norms: OnceLock::new(),
            scaled_grams: OnceLock::new(),
            task_gradients: Mutex::new(TaskGradients::new(d, m)),
        })
    }

    /// The l2 penalty: every task is `l2`-strongly convex.
    pub fn l2(&self) -> f64 {
        self.l2
    }

    /// The task data.
    pub fn data(&self) -> &DataTasks {
        &self.data
    }

    fn norms(&self) -> &[SampleNorms] {
        self.norms.get_or_init(|| self.data.sample_norms())
    }

    /// Bound on `|f_i(theta) - loss|` for a loss computed on the samples: the
    /// margins' rounding `gamma_d max_j ||x_j|| ||theta||` passes through the
    /// 1-Lipschitz softplus; `exp` and `ln_1p` add a few ulps; then the mean
    /// and the penalty.
    fn loss_error(&self, task: usize, theta_norm: f64, loss: f64) -> f64 {
        let d = self.data.dim();
        let n = self.data.tasks()[task].samples();
        let norms = &self.norms()[task];
        round_up(
            gamma(d) * norms.largest_sample * theta_norm
                + (8.0 * UNIT_ROUNDOFF + gamma(n + 3)) * loss.abs()
                + gamma(d + 4) * 0.5 * self.l2 * theta_norm * theta_norm
                + (8 * n + 8 * d) as f64 * UNDERFLOW_UNIT,
        )
    }

    /// Bound on the rounding of one task gradient `X^T s / n + l2 theta`: the
    /// slopes move by at most `1/4` of the margins' error plus a few ulps
    /// (`|s_j| <= 1`), `||X^T Delta s|| / n <= sqrt(||X||_F^2 / n) max |Delta s|`,
    /// and the sum adds `gamma_n max_j ||x_j||`.
    fn gradient_error(&self, task: usize, theta_norm: f64, gradient_norm: f64) -> f64 {
        let d = self.data.dim();
        let n = self.data.tasks()[task].samples();
        let norms = &self.norms()[task];
        let slope_err = 0.25 * gamma(d) * norms.largest_sample * theta_norm
            + 8.0 * UNIT_ROUNDOFF
            + 8.0 * UNDERFLOW_UNIT;
        round_up(
            (norms.frobenius2 / n as f64).sqrt() * slope_err
                + gamma(n + 2) * norms.largest_sample
                + gamma(3) * (gradient_norm + self.l2 * theta_norm)
                + (8 * n + 8 * d) as f64 * UNDERFLOW_UNIT,
        )
    }

    fn scaled_grams(&self) -> Option<&ScaledGrams> {
        self.scaled_grams
            .get_or_init(|| {
                let largest = self
                    .data
                    .tasks()
                    .iter()
                    .fold(0.0f64, |acc, t| acc.max(t.xt.largest_magnitude()));
                if !(largest > 0.0 && largest.is_finite()) {
                    return None;
                }
                let exponent = largest.log2().floor().clamp(-1000.0, 1000.0) as i32;
                let down = 2f64.powi(-exponent);
                let mut grams = Vec::new();
                let (mut errors, mut sizes) = (Vec::new(), Vec::new());
                for task in self.data.tasks() {
                    let (d, n) = (task.xt.nrows(), task.samples());
                    let scaled = task.xt.with_f64_view(|xt| xt * down);
                    let gram = (&scaled * scaled.transpose()) / n as f64;
                    let frobenius = norm_up(scaled.as_slice());
                    // The product's rounding, the division's, and the
                    // scaling's underflow (at most 2^-1074 an entry).
                    let underflow = (n * d) as f64 * UNDERFLOW_UNIT;
                    errors.push(round_up(
                        (gamma(n + 1) * frobenius * frobenius
                            + underflow * (2.0 * frobenius + underflow))
                            / n as f64
                            + (d * d) as f64 * UNDERFLOW_UNIT,
                    ));
                    sizes.push(norm_up(gram.as_slice()));
                    grams.push(gram);
                }
                Some(ScaledGrams {
                    exponent,
                    grams,
                    errors,
                    sizes,
                })
            })
            .as_ref()
    }

    /// The local-curvature certificate, for where the penalty's curvature
    /// alone certifies nothing (samples of extreme scale, a tiny `l2`): on the
    /// ball of radius r around theta every margin is at most its value plus
    /// `max_j ||x_j|| r`, so each task's data term has curvature at least
    /// `sigma'(that margin)` times `X^T X / n` there. Where that curvature
    /// `mu` makes `mu r >= 2 G` (`G` bounds the exact gradient), the minimiser
    /// lies in the ball (convexity), and `OPT_p >= Phi_p(theta) - G^2 / (2 mu)`
    /// (docs/THEORY.md#data-families-no-forms).
    fn local_curvature_certificate(&self, theta: &DVector<f64>, at: &Evaluation) -> Certificate {
        let t = norm_up(theta.as_slice());
        let totals = match EvaluationTotals::new(
            at,
            |i| self.loss_error(i, t, at.losses[i]),
            |i| self.gradient_error(i, t, at.task_gradient_norms[i]),
        ) {
            Ok(totals) => totals,
            Err(none) => return none,
        };
        let none = Certificate::none("the data's curvature is not certified");
        let Some(grams) = self.scaled_grams() else {
            return none;
        };
        let (d, m) = (self.dim(), self.num_tasks());
        let mut weighted = DMatrix::zeros(d, d);
        let (mut error, mut size, mut margin, mut reach) = (0.0, 0.0, 0.0f64, 0.0f64);
        for (i, task) in self.data.tasks().iter().enumerate() {
            let p = at.weights[i];
            if p == 0.0 {
                continue;
            }
            weighted += &grams.grams[i] * p;
            error += p * grams.errors[i];
            size += p * grams.sizes[i];
            let largest = self.norms()[i].largest_sample;
            let margins = task.xt.with_f64_view(|xt| xt.tr_mul(theta));
            margin = margin.max(margins.amax() + gamma(d) * largest * t);
            reach = reach.max(largest);
        }
        let error = round_up((error + gamma(m + 1) * size) * (1.0 + gamma(m + 2)));
        let Some(lambda_scaled) = certified_smallest_eigenvalue(&weighted) else {
            return none;
        };
        let lambda_data =
            round_down(round_down(lambda_scaled - error) * 2f64.powi(2 * grams.exponent));
        if !(lambda_data > 0.0 && lambda_data.is_finite() && reach > 0.0) {
            return none;
        }
        let penalty = mul_down(self.l2, totals.weights.lower()).max(0.0);
        let g = at.gradient.as_slice();
        let gradient_reach = round_up(norm_up(g) + totals.g_err);
        // Radii 2^k / max ||x_j||: the margins grow by exactly 2^k.
        for k in -64..=64 {
            let step = 2f64.powi(k);
            let radius = round_down(step / reach);
            let slope = sigmoid_slope_below(round_up(margin + step));
            let mu = round_down(slope * lambda_data * (1.0 - 4.0 * UNIT_ROUNDOFF) + penalty);
            if !(mu > 0.0 && radius > 0.0) {
                continue;
            }
            if round_down(mu * radius) >= round_up(2.0 * gradient_reach) {
                let bound = local_model_bound(
                    totals.value_lower,
                    g,
                    totals.g_err,
                    mu,
                    theta.as_slice(),
                    &Ball::Unconstrained,
                );
                let estimate = local_model_bound(
                    totals.value,
                    g,
                    0.0,
                    mu,
                    theta.as_slice(),
                    &Ball::Unconstrained,
                );
                if !bound.is_finite() {
                    return none;
                }
                return Certificate {
                    bound: per_unit_weight(bound, &totals.weights),
                    kind: "local-curvature",
                    error_bound: round_up(((estimate - bound) / totals.weights.value()).max(0.0)),
                    note: "the penalty's curvature certifies too little: the data's curvature \
                           on a ball around theta that provably holds the minimiser",
                };
            }
        }
        Certificate::none("no ball around theta certifies enough of the data's curvature")
    }

    fn spectral(&self) -> &[(f64, f64)] {
        self.spectral.get_or_init(|| self.data.spectral_constants())
    }

    fn add_penalty(
        &self,
        theta: &DVector<f64>,
        losses: &mut [f64],
        grads: Option<&mut DMatrix<f64>>,
    ) {
        let penalty = 0.5 * self.l2 * theta.norm_squared();
        for l in losses.iter_mut() {
            *l += penalty;
        }
        if let Some(grads) = grads {
            for mut column in grads.column_iter_mut() {
                column.axpy(self.l2, theta, 1.0);
            }
        }
    }
}

impl TaskFamily for LogisticFamily {
    fn kind(&self) -> &'static str {
        "logistic"
    }

    fn num_tasks(&self) -> usize {
        self.data.num_tasks()
    }

    fn dim(&self) -> usize {
        self.data.dim()
    }

    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), Error> {
        self.data.loss_pass(theta, |z, y| softplus(-y * z), losses);
        self.add_penalty(theta, losses, None);
        Ok(())
    }

    fn reweigh(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        at: &mut Evaluation,
    ) -> Result<bool, Error> {
        super::reweigh_from(&self.task_gradients, self, theta, weigh, at)
    }

    fn evaluate(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> Result<(), Error> {
        let mut scratch = self.task_gradients.lock().expect("scratch lock poisoned");
        // The columns become the gradients at theta (the lock is held throughout).
        scratch.made_at(theta);
        let grads = &mut scratch.columns;
        self.data.fused_pass(
            theta,
            logistic_link,
            &self.all_tasks,
            &mut out.losses,
            &mut *grads,
        );
        self.add_penalty(theta, &mut out.losses, Some(&mut *grads));
        weigh(&out.losses, &mut out.weights);
        combine_task_gradients(
            grads,
            &out.weights,
            &mut out.gradient,
            &mut out.task_gradient_norms,
        );
        Ok(())
    }

    fn task_gradient(
        &self,
        task: usize,
        theta: &DVector<f64>,
        gradient: &mut DVector<f64>,
    ) -> Result<(), Error> {
        let data = &self.data.tasks()[task];
        *gradient = data.xt.with_f64_view(|xt| {
            let margins = xt.tr_mul(theta);
            let slopes = DVector::from_iterator(
                data.samples(),
                margins
                    .iter()
                    .zip(data.y.iter())
                    .map(|(&z, &y)| logistic_link(z, y).1),
            );
            xt * slopes / data.samples() as f64 + theta * self.l2
        });
        Ok(())
    }

    fn smoothness(&self) -> f64 {
        // Hessian = X^T diag(s(1-s)) X / n + l2 I with s(1-s) <= 1/4.
        self.spectral()
            .iter()
            .map(|s| 0.25 * s.0)
            .fold(0.0, f64::max)
            + self.l2
    }

    fn strong_convexity(&self) -> f64 {
        self.l2
    }

    fn known_smoothness(&self) -> Option<f64> {
        self.spectral.get().map(|_| self.smoothness())
    }

    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        // ||X^T s / n|| <= ||X|| ||s|| / n <= sqrt(lambda_max(X^T X / n)) since |s_j| <= 1.
        self.spectral()
            .iter()
            .map(|s| s.0.sqrt())
            .fold(0.0, f64::max)
            + self.l2 * radius
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        // softplus(t) <= ln 2 + |t|, and by Jensen the mean of |x_j^T theta| is at
        // most sqrt(theta^T (X^T X / n) theta) <= sqrt(lambda_max) r.
        self.spectral()
            .iter()
            .map(|s| std::f64::consts::LN_2 + s.0.sqrt() * radius)
            .fold(0.0, f64::max)
            + 0.5 * self.l2 * radius * radius
    }

    fn certified_lower_bound(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        self.certify(theta, at, ball).bound
    }

    /// Every task is l2-strongly convex (the penalty's Hessian is l2 I
    /// exactly): the strong-convexity bound around theta, rounding included;
    /// and every loss is nonnegative.
    fn certify(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> Certificate {
        let t = norm_up(theta.as_slice());
        let model = evaluation_bound(
            theta,
            at,
            |i| self.loss_error(i, t, at.losses[i]),
            |i| self.gradient_error(i, t, at.task_gradient_norms[i]),
            self.l2,
            ball,
        );
        // Where the rounding allowance is a visible part of the penalty's
        // bound (samples of extreme scale: the gradient's rounding grows with
        // them, l2 does not), the data's own curvature near theta (one more
        // pass). Where the bound is low because the gradient is, nothing
        // would gain from it.
        let rounding_dominated = model.kind == "strong-convexity"
            && model.error_bound > PENALTY_ALLOWANCE_SHARE * model.bound.abs();
        let certificate = Certificate::trivial(0.0, "").better(model);
        if rounding_dominated {
            return certificate.better(self.local_curvature_certificate(theta, at));
        }
        certificate
    }

    fn loss_error_bound(&self, theta: &DVector<f64>, losses: &[f64]) -> f64 {
        let t = norm_up(theta.as_slice());
        (0..losses.len())
            .map(|i| self.loss_error(i, t, losses[i]))
            .fold(0.0, f64::max)
    }

    fn logistic_parts(&self) -> Option<(&DataTasks, f64)> {
        Some((&self.data, self.l2))
    }

    fn sample_counts(&self) -> Option<Vec<usize>> {
        Some(self.data.tasks().iter().map(|t| t.samples()).collect())
    }

    fn evaluate_minibatch(
        &self,
        theta: &DVector<f64>,
        rows: &[Vec<usize>],
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> bool {
        let mut scratch = self.task_gradients.lock().expect("scratch lock poisoned");
        // Minibatch gradients: no longer the full gradients at any point.
        scratch.invalidate();
        let grads = &mut scratch.columns;
        self.data
            .minibatch_pass(theta, logistic_link, rows, &mut out.losses, &mut *grads);
        self.add_penalty(theta, &mut out.losses, Some(&mut *grads));
        weigh(&out.losses, &mut out.weights);
        combine_task_gradients(
            grads,
            &out.weights,
            &mut out.gradient,
            &mut out.task_gradient_norms,
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each task's samples (rows) and labels.
    type Samples = Vec<(DMatrix<f64>, DVector<f64>)>;

    /// Three tasks of 40 samples in R^4 (not separable), every x times `scale`.
    fn family(scale: f64) -> (LogisticFamily, Samples) {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
        let mut uniform = move || rand::Rng::random_range(&mut rng, -0.5..0.5);
        let data: Vec<(DMatrix<f64>, DVector<f64>)> = (0..3)
            .map(|_| {
                let x = DMatrix::from_fn(40, 4, |_, _| 2.0 * uniform());
                let y = DVector::from_fn(40, |j, _| {
                    let signal = x[(j, 0)] - 0.5 * x[(j, 1)] + uniform();
                    if signal > 0.0 {
                        1.0
                    } else {
                        -1.0
                    }
                });
                (x, y)
            })
            .collect();
        let tasks = data
            .iter()
            .map(|(x, y)| TaskData::from_rows(&(x * scale), y.clone()))
            .collect();
        (LogisticFamily::new(tasks, 0.01).unwrap(), data)
    }

    /// The minimiser of the uniform weighted sum at scale 1 with penalty
    /// `l2 / scale^2` (what the scaled problem is in `phi = scale theta`),
    /// by Newton's method: a point whose value is OPT to rounding.
    fn newton_point(data: &[(DMatrix<f64>, DVector<f64>)], l2: f64) -> DVector<f64> {
        let mut phi = DVector::zeros(4);
        for _ in 0..60 {
            let mut gradient = &phi * l2;
            let mut hessian = DMatrix::identity(4, 4) * l2;
            for (x, y) in data {
                let n = x.nrows() as f64;
                for j in 0..x.nrows() {
                    let row = x.row(j).transpose();
                    let z = y[j] * row.dot(&phi);
                    let s = 1.0 / (1.0 + z.exp());
                    gradient -= &row * (y[j] * s / (3.0 * n));
                    hessian += &row * row.transpose() * (s * (1.0 - s) / (3.0 * n));
                }
            }
            phi -= hessian.cholesky().unwrap().solve(&gradient);
        }
        phi
    }

    fn certify_at(family: &LogisticFamily, theta: &DVector<f64>) -> Certificate {
        let mut at = Evaluation::new(3, 4);
        family
            .evaluate(theta, &mut |_, w| w.fill(1.0 / 3.0), &mut at)
            .unwrap();
        family.certify(theta, &at, &Ball::Unconstrained)
    }

    #[test]
    fn the_local_curvature_certificate_is_sound_at_every_scale_and_tight_near_the_minimiser() {
        for scale in [1e-3, 1.0, 1e3, 1e10, 1e50, 1e150] {
            let (family, data) = family(scale);
            let phi = newton_point(&data, 0.01 / (scale * scale));
            let best = &phi / scale;
            // OPT_p <= Phi_p(best): the reference, with its rounding charged.
            let mut losses = vec![0.0; 3];
            family.losses(&best, &mut losses).unwrap();
            let reference =
                losses.iter().sum::<f64>() / 3.0 + family.loss_error_bound(&best, &losses);
            // Far points (the minimiser outside every small ball around
            // them), a near one and the minimiser itself.
            let mut near = best.clone();
            near[0] *= 1.0 + 1e-6;
            for (label, theta) in [
                ("zero", DVector::zeros(4)),
                ("three times", &best * 3.0),
                ("opposite", -&best),
                ("near", near),
                ("minimiser", best.clone()),
            ] {
                let certificate = certify_at(&family, &theta);
                assert!(
                    certificate.bound <= reference,
                    "scale {scale:e}, {label}: {certificate:?} above OPT <= {reference}"
                );
                // The local-curvature route itself, wherever it is asked
                // (certify tries it only where rounding holds the penalty
                // bound down, near the minimiser).
                let mut at = Evaluation::new(3, 4);
                family
                    .evaluate(&theta, &mut |_, w| w.fill(1.0 / 3.0), &mut at)
                    .unwrap();
                let local = family.local_curvature_certificate(&theta, &at);
                assert!(
                    local.bound <= reference,
                    "scale {scale:e}, {label}: {local:?} above OPT <= {reference}"
                );
            }
            // Power: at the minimiser the bound is tight whatever the scale
            // (the penalty alone certifies nothing beyond scale 1e10 or so).
            let certificate = certify_at(&family, &best);
            assert!(
                reference - certificate.bound <= 1e-9 * reference,
                "scale {scale:e}: {certificate:?} far below {reference}"
            );
        }
    }

    #[test]
    fn the_sigmoid_slope_bound_is_below_the_slope_and_close() {
        for margin in [0.0f64, 0.5, 3.0, 40.0, 700.0] {
            // The same formula unrounded-against: the bound must sit below it.
            let e = (-margin).exp();
            let exact = e / ((1.0 + e) * (1.0 + e));
            let below = sigmoid_slope_below(margin);
            assert!(
                below <= exact && below >= exact * (1.0 - 1e-12),
                "{margin}: {below} vs {exact}"
            );
        }
        assert_eq!(sigmoid_slope_below(1e6), 0.0);
    }
}
