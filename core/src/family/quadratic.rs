//! Quadratic tasks `f_i(theta) = 1/2 (theta - c_i)^T A_i (theta - c_i) + b_i`.

use super::{combine_task_gradients, Evaluation, TaskFamily, TaskGradients, Weigh};
use crate::error::{check_finite, invalid, Error, InputError};
use crate::problem::ball::Ball;
use crate::problem::certificate::{
    norm_up, sound_quadratic_bound, Certificate, FormBounds, QuadraticForm,
};
use crate::problem::numerics::{gamma, round_up, UNDERFLOW_UNIT, UNIT_ROUNDOFF};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use std::sync::Mutex;

/// One quadratic task.
#[derive(Debug, Clone, PartialEq)]
pub struct QuadraticTask {
    /// `A_i`: the Hessian (symmetric PSD).
    pub a: DMatrix<f64>,
    /// `c_i`: the centre, a minimiser of `f_i`.
    pub c: DVector<f64>,
    /// `b_i`: the minimum value `f_i(c_i)`.
    pub b: f64,
}

/// Per-task constants computed once from the eigenvalues of A_i.
#[derive(Debug, Clone)]
struct Spectrum {
    largest: f64,
    smallest: f64,
}

/// A family of quadratic tasks with validated, symmetric PSD Hessians.
#[derive(Debug)]
pub struct QuadraticFamily {
    tasks: Vec<QuadraticTask>,
    forms: Vec<QuadraticForm>,
    /// How far each stored form may be from its task (rounding of A c, c^T A c).
    form_bounds: Vec<FormBounds>,
    /// `||A_i||_F` (upper bound), for the rounding of the losses.
    a_norms: Vec<f64>,
    spectra: Vec<Spectrum>,
    task_gradients: Mutex<TaskGradients>,
    /// `max_i` of a sound lower bound on the unconstrained `min f_i` (computed once).
    task_floor: std::sync::OnceLock<f64>,
}

/// Relative tolerance for symmetry and PSD checks on user matrices.
const MATRIX_TOLERANCE: f64 = 1e-10;

impl QuadraticFamily {
    /// Validates the tasks (shapes, finiteness, symmetry, PSD) and builds the family.
    /// `field` prefixes error messages, e.g. "tasks".
    pub fn new(tasks: Vec<QuadraticTask>) -> Result<Self, InputError> {
        if tasks.is_empty() {
            return invalid("tasks", "no tasks given");
        }
        let d = tasks[0].c.len();
        if d == 0 {
            return invalid("tasks[0].c", "dimension must be at least 1");
        }
        let mut spectra = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            if task.c.len() != d {
                return invalid(
                    format!("tasks[{i}].c"),
                    format!(
                        "has length {}, expected {d} (the length of tasks[0].c)",
                        task.c.len()
                    ),
                );
            }
            if task.a.nrows() != d || task.a.ncols() != d {
                return invalid(
                    format!("tasks[{i}].a"),
                    format!("is {}x{}, expected {d}x{d}", task.a.nrows(), task.a.ncols()),
                );
            }
            check_finite(&format!("tasks[{i}].a"), task.a.as_slice())?;
            check_finite(&format!("tasks[{i}].c"), task.c.as_slice())?;
            check_finite(&format!("tasks[{i}].b"), &[task.b])?;
            let scale = task.a.amax().max(f64::MIN_POSITIVE);
            let asymmetry = (&task.a - task.a.transpose()).amax();
            if asymmetry > MATRIX_TOLERANCE * scale {
                return invalid(
                    format!("tasks[{i}].a"),
                    format!("is not symmetric (largest |A - A^T| entry {asymmetry:.3e})"),
                );
            }
            let eigenvalues = task.a.clone().symmetric_eigenvalues();
            let smallest = eigenvalues.min();
            let largest = eigenvalues.max();
            if smallest < -MATRIX_TOLERANCE * scale * d as f64 {
                return invalid(
                    format!("tasks[{i}].a"),
                    format!("is not positive semidefinite (smallest eigenvalue {smallest:.3e})"),
                );
            }
            spectra.push(Spectrum {
                largest: largest.max(0.0),
                smallest: smallest.max(0.0),
            });
        }
        let forms = tasks
            .iter()
            .map(|t| {
                let a = (&t.a + t.a.transpose()) * 0.5;
                let ac = &a * &t.c;
                QuadraticForm {
                    constant: 0.5 * t.c.dot(&ac) + t.b,
                    linear: -ac,
                    hessian: a,
                }
            })
            .collect();
        let form_bounds = tasks
            .iter()
            .zip(&forms)
            .map(|(t, f): (&QuadraticTask, &QuadraticForm)| quadratic_form_bounds(t, f))
            .collect();
        let a_norms = tasks.iter().map(|t| norm_up(t.a.as_slice())).collect();
        let m = tasks.len();
        Ok(Self {
            tasks,
            forms,
            form_bounds,
            a_norms,
            spectra,
            task_gradients: Mutex::new(TaskGradients::new(d, m)),
            task_floor: std::sync::OnceLock::new(),
        })
    }

    /// The tasks as given.
    pub fn tasks(&self) -> &[QuadraticTask] {
        &self.tasks
    }

    fn task_loss_and_gradient(&self, i: usize, theta: &DVector<f64>, gradient: &mut [f64]) -> f64 {
        let task = &self.tasks[i];
        let d = theta.len();
        let mut loss = 0.0;
        // g = A (theta - c), loss = 1/2 (theta - c)^T g + b, column by column.
        gradient.fill(0.0);
        for j in 0..d {
            let delta = theta[j] - task.c[j];
            if delta != 0.0 {
                let column = task.a.column(j);
                for (g, a) in gradient.iter_mut().zip(column.iter()) {
                    *g += a * delta;
                }
            }
        }
        for j in 0..d {
            loss += (theta[j] - task.c[j]) * gradient[j];
        }
        0.5 * loss + task.b
    }

    fn parallel_worth_it(&self) -> bool {
        let d = self.dim();
        self.num_tasks() * d * d >= 1 << 16
    }
}

/// Bounds for the form `(A_sym, -A_sym c, 1/2 c^T A_sym c + b)` as computed in
/// [`QuadraticFamily::new`], against the task with `A_sym = (A + A^T) / 2` exactly.
fn quadratic_form_bounds(task: &QuadraticTask, form: &QuadraticForm) -> FormBounds {
    let d = task.c.len();
    let u = UNIT_ROUNDOFF;
    let tiny = (4 * d * d + 4) as f64 * UNDERFLOW_UNIT;
    let exact = FormBounds::exact(form);
    let c_norm = norm_up(task.c.as_slice());
    // (a + a^T) * 0.5: one rounding per entry.
    let hessian_error = round_up(u * exact.hessian_norm * (1.0 + u) + tiny);
    // A_sym c - fl(H c) = (A_sym - H) c + (H c - fl(H c)).
    let linear_error =
        round_up(hessian_error * c_norm + gamma(d) * exact.hessian_norm * c_norm + tiny);
    let constant_error = round_up(
        0.5 * c_norm * linear_error
            + gamma(d + 3) * (0.5 * c_norm * exact.linear_norm + task.b.abs())
            + tiny,
    );
    FormBounds {
        hessian_error,
        linear_error,
        constant_error,
        ..exact
    }
}

impl TaskFamily for QuadraticFamily {
    fn work_estimate(&self) -> super::WorkEstimate {
        let (m, d) = (self.num_tasks(), self.dim());
        // A pass: one Hessian-vector product per task.
        super::WorkEstimate::quadratic_dual(2.0 * (m * d * d) as f64, m, d)
    }

    fn kind(&self) -> &'static str {
        "quadratic"
    }

    fn num_tasks(&self) -> usize {
        self.tasks.len()
    }

    fn dim(&self) -> usize {
        self.tasks[0].c.len()
    }

    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), Error> {
        for (loss, task) in losses.iter_mut().zip(&self.tasks) {
            let delta = theta - &task.c;
            *loss = 0.5 * delta.dot(&(&task.a * &delta)) + task.b;
        }
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
        let d = self.dim();
        let columns = grads.as_mut_slice().par_chunks_mut(d);
        if self.parallel_worth_it() {
            columns
                .zip(out.losses.par_iter_mut())
                .enumerate()
                .for_each(|(i, (g, loss))| *loss = self.task_loss_and_gradient(i, theta, g));
        } else {
            for (i, (g, loss)) in grads
                .as_mut_slice()
                .chunks_mut(d)
                .zip(out.losses.iter_mut())
                .enumerate()
            {
                *loss = self.task_loss_and_gradient(i, theta, g);
            }
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
        self.task_loss_and_gradient(task, theta, gradient.as_mut_slice());
        Ok(())
    }

    fn smoothness(&self) -> f64 {
        self.spectra.iter().map(|s| s.largest).fold(0.0, f64::max)
    }

    fn strong_convexity(&self) -> f64 {
        self.spectra
            .iter()
            .map(|s| s.smallest)
            .fold(f64::INFINITY, f64::min)
    }

    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        // ||A (theta - c)|| <= ||A|| (r + ||c||)
        self.tasks
            .iter()
            .zip(&self.spectra)
            .map(|(t, s)| s.largest * (radius + t.c.norm()))
            .fold(0.0, f64::max)
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        self.tasks
            .iter()
            .zip(&self.spectra)
            .map(|(t, s)| {
                let reach = radius + t.c.norm();
                (0.5 * s.largest * reach * reach + t.b).abs().max(t.b.abs())
            })
            .fold(0.0, f64::max)
    }

    fn certified_lower_bound(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        self.certify(theta, at, ball).bound
    }

    fn certify(&self, _theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> Certificate {
        // OPT >= max_i min_theta f_i. min f_i = b_i only where A_i is PSD,
        // which the input check accepts up to a tolerance, so each task's
        // unconstrained minimum is certified like any weighted sum (once).
        let floor = *self.task_floor.get_or_init(|| {
            (0..self.tasks.len())
                .map(|i| {
                    sound_quadratic_bound(
                        &self.forms[i..=i],
                        &self.form_bounds[i..=i],
                        &[1.0],
                        &Ball::Unconstrained,
                    )
                    .bound
                })
                .fold(f64::NEG_INFINITY, f64::max)
        });
        Certificate::trivial(floor, "").better(sound_quadratic_bound(
            &self.forms,
            &self.form_bounds,
            &at.weights,
            ball,
        ))
    }

    fn loss_error_bound(&self, theta: &DVector<f64>, _losses: &[f64]) -> f64 {
        // 1/2 delta^T A delta + b with delta = theta - c: gamma_{d+6} of the terms' size.
        let d = theta.len();
        self.tasks
            .iter()
            .zip(&self.a_norms)
            .map(|(t, a_norm)| {
                let delta = norm_up((theta - &t.c).as_slice()) * (1.0 + UNIT_ROUNDOFF);
                round_up(
                    gamma(d + 6) * (0.51 * a_norm * delta * delta + t.b.abs())
                        + (4 * d + 4) as f64 * UNDERFLOW_UNIT,
                )
            })
            .fold(0.0, f64::max)
    }

    fn quadratic_forms(&self) -> Option<&[QuadraticForm]> {
        Some(&self.forms)
    }
}
