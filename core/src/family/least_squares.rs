//! Least-squares tasks `f_i(theta) = ||X_i theta - y_i||^2 / (2 n_i)`.

use super::{
    combine_task_gradients, DataTasks, Evaluation, SampleNorms, TaskData, TaskFamily,
    TaskGradients, Weigh,
};
use crate::error::{Error, InputError};
use crate::linalg::kernels::symmetric_matvec_packed;
use crate::problem::ball::Ball;
use crate::problem::certificate::{
    evaluation_bound, norm_up, per_unit_weight, round_down, sound_quadratic_bound, Certificate,
    FormBounds, QuadraticForm,
};
use crate::problem::numerics::{gamma, round_up, TrackedSum, UNDERFLOW_UNIT, UNIT_ROUNDOFF};
use crate::problem::residual::{
    factor_task, residual_bound, weighted_least_squares_point, whiten_task, TaskFactor,
    WhitenedGrams,
};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use std::sync::{Mutex, OnceLock};

/// How the losses and gradients are computed each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradientForm {
    /// Per task: the Gram form where `d <= n_i / 2`, i.e. where one iteration
    /// reads at most half the numbers (d^2 against n_i d); else the data. The
    /// Gram matrices are built in any case (certificates and constants use
    /// them), so the choice is about the per-iteration reads, and about the
    /// cancellation in `1/2 theta^T Q theta + l^T theta + c` where the two are
    /// close.
    #[default]
    Auto,
    /// One fused pass over the samples (O(n_i d) per task).
    Data,
    /// Through `X_i^T X_i / n_i` (O(d^2) per task after an O(n_i d^2) set-up).
    Gram,
}

fn squared_link(z: f64, y: f64) -> (f64, f64) {
    let r = z - y;
    (0.5 * r * r, r)
}

/// Least squares on task data, with the Gram form chosen automatically.
#[derive(Debug)]
pub struct LeastSquaresFamily {
    data: DataTasks,
    use_gram: Vec<bool>,
    /// `!use_gram`, kept so that `evaluate` does not allocate.
    use_data: Vec<bool>,
    /// `1/2 theta^T (X^T X / n) theta - (X^T y / n)^T theta + ||y||^2 / (2n)`:
    /// built at construction where a task uses the Gram form, else on first use.
    forms: OnceLock<Vec<QuadraticForm>>,
    /// How far each form may be from its task (the Gram matrix's rounding).
    form_bounds: OnceLock<Vec<FormBounds>>,
    /// Some task has fewer samples than features: no d x d matrix is ever
    /// built; constants and certificates work on the samples (n_i x n_i).
    wide: bool,
    norms: OnceLock<Vec<SampleNorms>>,
    /// The upper triangles of the Gram-form tasks' Hessians, row by row
    /// (`d (d + 1) / 2` values; empty for data-form tasks): the iterations
    /// read half the bytes of the full matrices.
    packed_hessians: OnceLock<Vec<Vec<f64>>>,
    /// (smallest, largest) eigenvalue of `X^T X / n` per task.
    spectrum: OnceLock<Vec<(f64, f64)>>,
    /// Each task's QR factor and certified `sigma_min(X_i)` (the residual
    /// certificate; computed on first use).
    factors: OnceLock<Vec<Option<TaskFactor>>>,
    /// The stacked samples whitened by one fixed factor (the residual
    /// certificate's tight projection bound; computed on first use).
    whitened: OnceLock<Option<WhitenedGrams>>,
    task_gradients: Mutex<TaskGradients>,
}

/// The dual certificate's rounding allowance, as a share of its bound, above
/// which the residual certificate is tried too: an allowance that large means
/// the Gram matrices' squared condition number is costing tightness.
const DUAL_ALLOWANCE_SHARE: f64 = 1e-6;

impl LeastSquaresFamily {
    /// Validates the tasks and builds the family, each task evaluated in the form
    /// `form` selects (see [`GradientForm`]); Gram forms are built here.
    pub fn new(tasks: Vec<TaskData>, form: GradientForm) -> Result<Self, InputError> {
        let d = tasks.first().map_or(0, |t| t.xt.nrows());
        let wide = tasks.iter().any(|t| t.samples() < d);
        // Wide tasks never use the Gram form: it reads more than the data.
        let use_gram: Vec<bool> = tasks
            .iter()
            .map(|t| match form {
                _ if wide => false,
                GradientForm::Auto => 2 * d <= t.samples(),
                GradientForm::Data => false,
                GradientForm::Gram => true,
            })
            .collect();
        // The data form streams its samples every iteration: those get memory
        // of their own on huge pages; the Gram form reads a mapped file a few times.
        let tasks = tasks
            .into_iter()
            .zip(&use_gram)
            .map(|(t, &gram)| match gram {
                true => t,
                false => TaskData {
                    xt: t.xt.into_resident(),
                    y: t.y,
                },
            })
            .collect();
        // The Gram-form tasks' samples are checked for NaN and infinities by
        // the syrk's packing pass, built here: one pass over them, not two.
        let data = DataTasks::with_deferred_sample_checks(tasks, false, &use_gram)?;
        let use_data = use_gram.iter().map(|g| !g).collect();
        let m = data.num_tasks();
        let family = Self {
            data,
            use_gram,
            use_data,
            forms: OnceLock::new(),
            form_bounds: OnceLock::new(),
            wide,
            norms: OnceLock::new(),
            packed_hessians: OnceLock::new(),
            spectrum: OnceLock::new(),
            factors: OnceLock::new(),
            whitened: OnceLock::new(),
            task_gradients: Mutex::new(TaskGradients::new(d, m)),
        };
        if family.use_gram.iter().any(|&g| g) {
            let forms = family.build_forms()?;
            family.forms.set(forms).expect("forms are built once");
        }
        Ok(family)
    }

    /// Whether some task has fewer samples than features (see the field).
    pub fn is_wide(&self) -> bool {
        self.wide
    }

    fn norms(&self) -> &[SampleNorms] {
        self.norms.get_or_init(|| self.data.sample_norms())
    }

    /// The Gram forms' distance to the tasks: `|fl(X^T X) - X^T X| <= gamma_n
    /// |X|^T |X|` entrywise, of Frobenius norm <= gamma_n ||X||_F^2; likewise
    /// the moment and `||y||^2`; plus one rounding for each division by n.
    fn form_bounds(&self) -> &[FormBounds] {
        self.form_bounds.get_or_init(|| {
            let d = self.data.dim();
            let u = UNIT_ROUNDOFF;
            self.forms()
                .iter()
                .zip(self.norms())
                .zip(self.data.tasks())
                .map(|((form, norms), task)| {
                    let n = task.samples();
                    let nf = n as f64;
                    let exact = FormBounds::exact(form);
                    let tiny = (4 * (n + 1) * (d + 1)) as f64 * UNDERFLOW_UNIT;
                    let x_norm = norms.frobenius2.sqrt() * (1.0 + u);
                    FormBounds {
                        hessian_error: round_up(
                            (gamma(n) * norms.frobenius2 + tiny * d as f64) / nf
                                + u * exact.hessian_norm
                                + tiny,
                        ),
                        linear_error: round_up(
                            (gamma(n) * x_norm * norms.y_norm + tiny) / nf
                                + u * exact.linear_norm
                                + tiny,
                        ),
                        constant_error: round_up(
                            gamma(n + 3) * norms.y_norm * norms.y_norm / (2.0 * nf) + tiny,
                        ),
                        ..exact
                    }
                })
                .collect()
        })
    }

    /// Bounds on the rounding of the residual `x_j . theta - y_j` over a task,
    /// `||r_hat - r|| <= gamma_{d+1} sqrt(2 (||theta||^2 ||X||_F^2 + ||y||^2))`,
    /// and on `||r_hat||` from the computed loss `||r_hat||^2 / (2n)`.
    fn residual_errors(&self, task: usize, theta_norm: f64, loss: f64) -> (f64, f64) {
        let norms = &self.norms()[task];
        let n = self.data.tasks()[task].samples();
        let d = self.data.dim();
        // sqrt(2 (a^2 + b^2)) <= sqrt2 (a + b); no X term at theta = 0 (exact
        // residual -y), so that huge data still give a finite bound there.
        let x_term = if theta_norm == 0.0 {
            0.0
        } else {
            theta_norm * norms.frobenius2.sqrt()
        };
        let residual_err = round_up(
            gamma(d + 1) * std::f64::consts::SQRT_2 * (x_term + norms.y_norm)
                + ((n * (d + 2)) as f64).sqrt() * 4.0 * UNDERFLOW_UNIT,
        );
        let residual_norm = round_up((2.0 * n as f64 * loss.abs() * (1.0 + gamma(n + 3))).sqrt());
        (residual_err, residual_norm)
    }

    /// Each task's QR factor and certified `sigma_min(X_i)` (once).
    fn factors(&self) -> &[Option<TaskFactor>] {
        self.factors.get_or_init(|| {
            self.data
                .tasks()
                .par_iter()
                .map(|task| {
                    task.xt
                        .with_f64_view(|xt| factor_task(xt.transpose().as_view(), task.y.view()))
                })
                .collect()
        })
    }

    /// The whitened Gram matrices (once; `None` where they cannot be built).
    fn whitened(&self) -> Option<&WhitenedGrams> {
        self.whitened
            .get_or_init(|| {
                let samples: Vec<usize> = self.data.tasks().iter().map(|t| t.samples()).collect();
                WhitenedGrams::new(self.factors(), &samples, |i, z, z_frobenius| {
                    let x_frobenius = round_up(self.norms()[i].frobenius2.sqrt() * 1.01);
                    self.data.tasks()[i]
                        .xt
                        .with_f64_view(|xt| whiten_task(xt, x_frobenius, z, z_frobenius))
                })
            })
            .as_ref()
    }

    /// The residual certificate for the weights `p` (see
    /// [`crate::problem::residual`]), at the minimiser of their weighted sum
    /// found by QR (`iterate` where that fails): one pass over the data for
    /// the residuals `r_i = X_i theta - y_i` and `X_i^T r_i`, every rounding
    /// bounded.
    fn residual_certificate(&self, iterate: &DVector<f64>, weights: &[f64]) -> Certificate {
        let factors = self.factors();
        let chosen: Option<Vec<(&TaskFactor, f64)>> = weights
            .iter()
            .zip(factors)
            .zip(self.data.tasks())
            .filter(|((p, _), _)| **p > 0.0)
            .map(|((p, f), task)| f.as_ref().map(|f| (f, p / task.samples() as f64)))
            .collect();
        let point = chosen.and_then(|c| weighted_least_squares_point(&c));
        let theta = point.as_ref().unwrap_or(iterate);
        let m = weights.len();
        let t = norm_up(theta.as_slice());
        let d = self.data.dim();
        let mut h = DVector::zeros(d);
        let mut weights_sum = TrackedSum::default();
        let (mut r2, mut s2, mut e2) = (0.0, 0.0, 0.0);
        let (mut h_err, mut h_size, mut longest) = (0.0, 0.0, 0);
        for (i, task) in self.data.tasks().iter().enumerate() {
            let p = weights[i];
            if p == 0.0 {
                continue;
            }
            if p.is_nan() || p < 0.0 {
                return Certificate::none(
                    "the certificate weights are not a nonnegative nonzero vector",
                );
            }
            let n = task.samples();
            longest = longest.max(n);
            let c = p / n as f64;
            let (residual, projected) = task.xt.with_f64_view(|xt| {
                let residual = xt.tr_mul(theta) - task.y.view();
                let projected = xt * &residual;
                (residual, projected)
            });
            let residual_norm = norm_up(residual.as_slice());
            let x_norm = self.norms()[i].frobenius2.sqrt();
            weights_sum.add(p);
            r2 += c * residual.norm_squared();
            if let Some(sigma) = factors[i].as_ref().and_then(|f| f.sigma) {
                s2 += c * (sigma * sigma);
            }
            let (err, _) = self.residual_errors(i, t, 0.0);
            e2 += c * (err * err);
            h.axpy(c, &projected, 1.0);
            h_err += c * (gamma(n) * x_norm * residual_norm + (n * d) as f64 * UNDERFLOW_UNIT);
            h_size += c * norm_up(projected.as_slice());
        }
        if !weights_sum.certainly_positive() {
            return Certificate::none(
                "the certificate weights are not a nonnegative nonzero vector",
            );
        }
        // Each sum: products rounded once or twice, sums of at most M (or n)
        // nonnegative terms (relative gamma), the norms x 1.01 for the sqrt.
        let sum_slack = gamma(longest + m + 4);
        let r2_lower = round_down(r2 * (1.0 - sum_slack));
        let s2_lower = round_down(s2 * (1.0 - gamma(m + 4)));
        let residual_error = round_up((e2 * (1.0 + gamma(m + 4))).sqrt() * 1.01);
        let h_error = round_up((h_err + gamma(m + 2) * h_size) * (1.0 + gamma(m)));
        let h_upper = round_up(norm_up(h.as_slice()) + h_error);
        let per_task = residual_bound(r2_lower, h_upper, s2_lower, residual_error);
        // The tight projection bound through the whitened samples, where
        // their curvature is certified.
        let weights_per_sample: Vec<f64> = weights
            .iter()
            .zip(self.data.tasks())
            .map(|(p, task)| p / task.samples() as f64)
            .collect();
        let whitened = self
            .whitened()
            .and_then(|w| w.projection(&weights_per_sample, &h, h_error))
            .map_or(0.0, |projected| {
                residual_bound(r2_lower, projected, 1.0, residual_error)
            });
        let bound = per_task.max(whitened);
        if bound.is_nan() || bound <= 0.0 {
            return Certificate::none(
                "neither the Gram matrices nor QR of the samples certify curvature",
            );
        }
        let estimate = residual_bound(r2, h.norm(), s2, 0.0);
        let bound = per_unit_weight(bound, &weights_sum);
        Certificate {
            bound,
            kind: "residual",
            error_bound: round_up(((estimate / weights_sum.value()) - bound).max(0.0)),
            note: "the Gram matrices certify no curvature, or too little for a tight bound \
                   (nearly collinear features): the residual bound, on QR of the samples",
        }
    }

    /// Bound on `|f_i(theta) - loss|` for a loss computed on the samples.
    fn data_loss_error(&self, task: usize, theta_norm: f64, loss: f64) -> f64 {
        let n = self.data.tasks()[task].samples();
        let (err, norm) = self.residual_errors(task, theta_norm, loss);
        round_up(
            (norm * err + 0.5 * err * err) / n as f64 * (1.0 + 4.0 * UNIT_ROUNDOFF)
                + gamma(n + 3) * loss.abs()
                + (4 * n + 4) as f64 * UNDERFLOW_UNIT,
        )
    }

    /// The task data.
    pub fn data(&self) -> &DataTasks {
        &self.data
    }

    /// Whether task i is evaluated through its Gram matrix.
    pub fn uses_gram(&self) -> &[bool] {
        &self.use_gram
    }

    /// `1/2 theta^T (X^T X / n) theta - (X^T y / n)^T theta + ||y||^2 / (2n)` per
    /// task; fails on the first NaN or infinity among samples not yet checked.
    fn build_forms(&self) -> Result<Vec<QuadraticForm>, InputError> {
        Ok(self
            .data
            .checked_grams_and_moments()?
            .into_iter()
            .zip(self.data.tasks())
            .map(|((hessian, moment), task)| QuadraticForm {
                hessian,
                linear: -moment,
                constant: task.y.norm_squared() / (2.0 * task.samples() as f64),
            })
            .collect())
    }

    /// The forms, built on first use where no task uses the Gram form (then
    /// every sample has been checked at construction).
    fn forms(&self) -> &[QuadraticForm] {
        self.forms.get_or_init(|| {
            self.build_forms()
                .expect("samples are checked at construction")
        })
    }

    /// (smallest, largest) eigenvalue of X^T X / n per task, from one
    /// eigenvalue computation per task (in parallel).
    fn spectrum(&self) -> &[(f64, f64)] {
        self.spectrum.get_or_init(|| {
            if self.wide {
                // X^T X / n has the nonzero spectrum of X X^T / n, and
                // smallest eigenvalue 0 where n < d.
                let d = self.data.dim();
                return (0..self.data.num_tasks())
                    .into_par_iter()
                    .map(|i| {
                        let top = self.data.kernel_top_eigenvalue(i);
                        if self.data.tasks()[i].samples() < d {
                            (0.0, top)
                        } else {
                            let eigenvalues = self.data.gram(i).symmetric_eigenvalues();
                            (eigenvalues.min().max(0.0), top)
                        }
                    })
                    .collect();
            }
            self.forms()
                .par_iter()
                .map(|f| {
                    let eigenvalues = f.hessian.clone().symmetric_eigenvalues();
                    (eigenvalues.min().max(0.0), eigenvalues.max().max(0.0))
                })
                .collect()
        })
    }

    fn packed_hessians(&self) -> &[Vec<f64>] {
        self.packed_hessians.get_or_init(|| {
            let d = self.data.dim();
            self.forms()
                .par_iter()
                .zip(&self.use_gram)
                .map(|(form, &gram)| match gram {
                    // Column i of the symmetric Hessian from row i on is row i
                    // of its upper triangle (column-major storage).
                    true => form
                        .hessian
                        .as_slice()
                        .chunks_exact(d)
                        .enumerate()
                        .flat_map(|(i, column)| column[i..].iter().copied())
                        .collect(),
                    false => Vec::new(),
                })
                .collect()
        })
    }

    fn gram_tasks(&self, theta: &DVector<f64>, losses: &mut [f64], grads: &mut DMatrix<f64>) {
        let forms = self.forms();
        let packed = self.packed_hessians();
        let d = self.data.dim();
        grads
            .as_mut_slice()
            .par_chunks_mut(d)
            .zip(losses.par_iter_mut())
            .enumerate()
            .filter(|(i, _)| self.use_gram[*i])
            .for_each(|(i, (g, loss))| {
                let form = &forms[i];
                let theta = theta.as_slice();
                symmetric_matvec_packed(&packed[i], theta, g);
                let mut s = 0.0;
                for (j, gj) in g.iter_mut().enumerate() {
                    let lj = form.linear[j];
                    *gj += lj;
                    // 1/2 theta^T Q theta + l^T theta = 1/2 theta^T (g + l)
                    s += theta[j] * (*gj + lj);
                }
                *loss = 0.5 * s + form.constant;
            });
    }
}

impl TaskFamily for LeastSquaresFamily {
    fn work_estimate(&self) -> super::WorkEstimate {
        let (m, d) = (self.num_tasks(), self.dim());
        // A pass: d x d per Gram-form task, X theta and X^T r per data-form task.
        let pass_flops = self
            .data
            .tasks()
            .iter()
            .zip(&self.use_gram)
            .map(|(task, &gram)| {
                if gram {
                    2.0 * (d * d) as f64
                } else {
                    4.0 * task.samples() as f64 * d as f64
                }
            })
            .sum();
        if self.wide {
            // Wide tasks: the local model on the samples, O(M) beside the pass.
            return super::WorkEstimate {
                pass_flops,
                certificate_flops: 0.0,
            };
        }
        super::WorkEstimate::quadratic_dual(pass_flops, m, d)
    }

    fn kind(&self) -> &'static str {
        "least_squares"
    }

    fn num_tasks(&self) -> usize {
        self.data.num_tasks()
    }

    fn dim(&self) -> usize {
        self.data.dim()
    }

    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), Error> {
        self.data
            .loss_pass(theta, |z, y| 0.5 * (z - y) * (z - y), losses);
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
        if self.use_gram.iter().any(|&g| g) {
            self.gram_tasks(theta, &mut out.losses, &mut *grads);
        }
        if self.use_data.iter().any(|&g| g) {
            self.data.fused_pass(
                theta,
                squared_link,
                &self.use_data,
                &mut out.losses,
                &mut *grads,
            );
        }
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
            let residual = xt.tr_mul(theta) - data.y.view();
            xt * residual / data.samples() as f64
        });
        Ok(())
    }

    fn smoothness(&self) -> f64 {
        self.spectrum().iter().map(|s| s.1).fold(0.0, f64::max)
    }

    fn strong_convexity(&self) -> f64 {
        self.spectrum()
            .iter()
            .map(|s| s.0)
            .fold(f64::INFINITY, f64::min)
    }

    fn known_smoothness(&self) -> Option<f64> {
        self.spectrum.get().map(|_| self.smoothness())
    }

    fn known_strong_convexity(&self) -> Option<f64> {
        self.spectrum.get().map(|_| self.strong_convexity())
    }

    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        // ||Q theta + l|| <= ||Q|| r + ||l||
        self.norms()
            .iter()
            .zip(self.spectrum())
            .map(|(norms, s)| s.1 * radius + norms.moment_norm)
            .fold(0.0, f64::max)
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        // ||X theta - y|| / sqrt(n) <= sqrt(||Q||) r + ||y|| / sqrt(n)
        self.norms()
            .iter()
            .zip(self.spectrum())
            .map(|(norms, s)| {
                let reach = s.1.sqrt() * radius + (2.0 * norms.half_mean_square).sqrt();
                0.5 * reach * reach
            })
            .fold(0.0, f64::max)
    }

    fn certified_lower_bound(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        self.certify(theta, at, ball).bound
    }

    fn certify(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> Certificate {
        // Every loss is a mean of squares: OPT >= 0 holds exactly.
        let floor = Certificate::trivial(0.0, "");
        if !self.wide {
            let dual = sound_quadratic_bound(self.forms(), self.form_bounds(), &at.weights, ball);
            if dual.kind == "dual" && dual.error_bound <= DUAL_ALLOWANCE_SHARE * dual.bound.abs() {
                return floor.better(dual);
            }
            // No curvature certified from the Gram matrices, or their rounding
            // allowance is a visible part of the bound (nearly collinear
            // features): the residual certificate, on QR of the samples, is
            // valid on any ball (it bounds the unconstrained minimum).
            return floor
                .better(dual)
                .better(self.residual_certificate(theta, &at.weights));
        }
        // Wide tasks: the local model on the samples, around theta.
        let t = norm_up(theta.as_slice());
        let model = evaluation_bound(
            theta,
            at,
            |i| self.data_loss_error(i, t, at.losses[i]),
            |i| {
                let (err, norm) = self.residual_errors(i, t, at.losses[i]);
                let n = self.data.tasks()[i].samples();
                let x_norm = self.norms()[i].frobenius2.sqrt();
                round_up(
                    (x_norm * err + gamma(n + 2) * x_norm * norm) / n as f64
                        + 2.0 * UNIT_ROUNDOFF * at.task_gradient_norms[i],
                )
            },
            0.0,
            ball,
        );
        floor.better(model)
    }

    fn loss_error_bound(&self, theta: &DVector<f64>, losses: &[f64]) -> f64 {
        let t = norm_up(theta.as_slice());
        (0..losses.len())
            .map(|i| self.data_loss_error(i, t, losses[i]))
            .fold(0.0, f64::max)
    }

    fn quadratic_forms(&self) -> Option<&[QuadraticForm]> {
        (!self.wide).then(|| self.forms())
    }

    fn least_squares_data(&self) -> Option<&DataTasks> {
        Some(&self.data)
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
            .minibatch_pass(theta, squared_link, rows, &mut out.losses, &mut *grads);
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

    fn task(n: usize, d: usize, seed: usize) -> TaskData {
        let x = DMatrix::from_fn(n, d, |i, j| {
            (((i * 7 + j * 13 + seed) % 29) as f64) / 29.0 - 0.5
        });
        let y = DVector::from_fn(n, |i, _| ((i * 5 + seed) % 11) as f64 - 5.0);
        TaskData::from_rows(&x, y)
    }

    #[test]
    fn the_gram_pass_reports_non_finite_samples_as_the_check_would() {
        // n >= 2d: the Gram form, whose packing pass is the samples' check.
        let (n, d) = (40, 6);
        for form in [GradientForm::Auto, GradientForm::Gram, GradientForm::Data] {
            for bad in [f64::NAN, f64::INFINITY] {
                let mut tasks = vec![task(n, d, 1), task(n, d, 2), task(n, d, 3)];
                tasks[1].xt.as_mut_slice()[17 * d + 4] = bad;
                let err = LeastSquaresFamily::new(tasks, form).unwrap_err();
                assert_eq!(err.field, "tasks[1].x", "{form:?}");
                assert!(
                    err.message.starts_with(&format!("entry [17, 4] is {bad}")),
                    "{form:?}: {}",
                    err.message
                );
            }
        }
        let family =
            LeastSquaresFamily::new(vec![task(n, d, 1), task(n, d, 2)], GradientForm::Auto)
                .unwrap();
        assert_eq!(family.uses_gram(), &[true, true]);
    }

    #[test]
    fn gram_and_data_forms_agree() {
        let (n, d) = (64, 7);
        let tasks: Vec<TaskData> = (0..4).map(|i| task(n + i, d, i)).collect();
        let gram = LeastSquaresFamily::new(tasks.clone(), GradientForm::Gram).unwrap();
        let data = LeastSquaresFamily::new(tasks, GradientForm::Data).unwrap();
        let theta = DVector::from_fn(d, |i, _| 0.3 * i as f64 - 0.7);
        let mut a = Evaluation::new(4, d);
        let mut b = Evaluation::new(4, d);
        let mut weigh =
            |f: &[f64], w: &mut [f64]| crate::problem::numerics::softmax_into(f, 0.5, w);
        gram.evaluate(&theta, &mut weigh, &mut a).unwrap();
        data.evaluate(&theta, &mut weigh, &mut b).unwrap();
        for (x, y) in a.losses.iter().zip(&b.losses) {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
        }
        assert!((&a.gradient - &b.gradient).amax() <= 1e-12 * b.gradient.amax().max(1.0));
    }
}
