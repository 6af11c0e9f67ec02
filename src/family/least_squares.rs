//! Least-squares tasks `f_i(theta) = ||X_i theta - y_i||^2 / (2 n_i)`.

use super::{combine_task_gradients, DataTasks, Evaluation, TaskData, TaskFamily, Weigh};
use crate::ball::Ball;
use crate::certificate::{quadratic_dual_bound, QuadraticForm};
use crate::error::InputError;
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use std::sync::{Mutex, OnceLock};

/// How the losses and gradients are computed each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradientForm {
    /// Per task: the Gram form where it reads fewer numbers (d <= n_i), else the data.
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
    /// `1/2 theta^T (X^T X / n) theta - (X^T y / n)^T theta + ||y||^2 / (2n)`, built on first use.
    forms: OnceLock<Vec<QuadraticForm>>,
    smoothness: OnceLock<Vec<(f64, f64)>>,
    task_gradients: Mutex<DMatrix<f64>>,
}

impl LeastSquaresFamily {
    pub fn new(tasks: Vec<TaskData>, form: GradientForm) -> Result<Self, InputError> {
        let data = DataTasks::new(tasks, false)?;
        let d = data.dim();
        let use_gram = data
            .tasks()
            .iter()
            .map(|t| match form {
                GradientForm::Auto => d <= t.samples(),
                GradientForm::Data => false,
                GradientForm::Gram => true,
            })
            .collect();
        let m = data.num_tasks();
        Ok(Self {
            data,
            use_gram,
            forms: OnceLock::new(),
            smoothness: OnceLock::new(),
            task_gradients: Mutex::new(DMatrix::zeros(d, m)),
        })
    }

    pub fn data(&self) -> &DataTasks {
        &self.data
    }

    /// Whether task i is evaluated through its Gram matrix.
    pub fn uses_gram(&self) -> &[bool] {
        &self.use_gram
    }

    fn forms(&self) -> &[QuadraticForm] {
        self.forms.get_or_init(|| {
            (0..self.data.num_tasks())
                .into_par_iter()
                .map(|i| {
                    let task = &self.data.tasks()[i];
                    let n = task.samples() as f64;
                    QuadraticForm {
                        hessian: self.data.gram(i),
                        linear: -(&task.xt * &task.y) / n,
                        constant: task.y.norm_squared() / (2.0 * n),
                    }
                })
                .collect()
        })
    }

    /// (largest eigenvalue of X^T X / n, largest sample norm) per task.
    fn spectral(&self) -> &[(f64, f64)] {
        self.smoothness.get_or_init(|| {
            self.forms()
                .iter()
                .zip(self.data.tasks())
                .map(|(f, t)| {
                    let top = f.hessian.clone().symmetric_eigenvalues().max().max(0.0);
                    let row = t.xt.column_iter().map(|c| c.norm()).fold(0.0, f64::max);
                    (top, row)
                })
                .collect()
        })
    }

    fn gram_tasks(&self, theta: &DVector<f64>, losses: &mut [f64], grads: &mut DMatrix<f64>) {
        let forms = self.forms();
        let d = self.data.dim();
        grads
            .as_mut_slice()
            .par_chunks_mut(d)
            .zip(losses.par_iter_mut())
            .enumerate()
            .filter(|(i, _)| self.use_gram[*i])
            .for_each(|(i, (g, loss))| {
                let form = &forms[i];
                let mut gradient = nalgebra::DVectorViewMut::from_slice(g, d);
                gradient.copy_from(&form.linear);
                gradient.gemv(1.0, &form.hessian, theta, 1.0);
                // 1/2 theta^T Q theta + l^T theta + c = 1/2 theta^T (g + l) + c
                let mut s = 0.0;
                for j in 0..d {
                    s += theta[j] * (gradient[j] + form.linear[j]);
                }
                *loss = 0.5 * s + form.constant;
            });
    }
}

impl TaskFamily for LeastSquaresFamily {
    fn kind(&self) -> &'static str {
        "least_squares"
    }

    fn num_tasks(&self) -> usize {
        self.data.num_tasks()
    }

    fn dim(&self) -> usize {
        self.data.dim()
    }

    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) {
        self.data
            .loss_pass(theta, |z, y| 0.5 * (z - y) * (z - y), losses);
    }

    fn evaluate(&self, theta: &DVector<f64>, weigh: &mut Weigh<'_>, out: &mut Evaluation) {
        let mut grads = self.task_gradients.lock().expect("scratch lock poisoned");
        if self.use_gram.iter().any(|&g| g) {
            self.gram_tasks(theta, &mut out.losses, &mut grads);
        }
        if self.use_gram.iter().any(|&g| !g) {
            let selected: Vec<bool> = self.use_gram.iter().map(|g| !g).collect();
            self.data
                .fused_pass(theta, squared_link, &selected, &mut out.losses, &mut grads);
        }
        weigh(&out.losses, &mut out.weights);
        combine_task_gradients(
            &grads,
            &out.weights,
            &mut out.gradient,
            &mut out.task_gradient_norms,
        );
    }

    fn task_gradient(&self, task: usize, theta: &DVector<f64>, gradient: &mut DVector<f64>) {
        let data = &self.data.tasks()[task];
        let residual = data.xt.tr_mul(theta) - &data.y;
        *gradient = &data.xt * residual / data.samples() as f64;
    }

    fn smoothness(&self) -> f64 {
        self.spectral().iter().map(|s| s.0).fold(0.0, f64::max)
    }

    fn strong_convexity(&self) -> f64 {
        self.forms()
            .iter()
            .map(|f| f.hessian.clone().symmetric_eigenvalues().min().max(0.0))
            .fold(f64::INFINITY, f64::min)
    }

    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        // ||Q theta + l|| <= ||Q|| r + ||l||
        self.forms()
            .iter()
            .zip(self.spectral())
            .map(|(f, s)| s.0 * radius + f.linear.norm())
            .fold(0.0, f64::max)
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        // ||X theta - y|| / sqrt(n) <= sqrt(||Q||) r + ||y|| / sqrt(n)
        self.forms()
            .iter()
            .zip(self.spectral())
            .map(|(f, s)| {
                let reach = s.0.sqrt() * radius + (2.0 * f.constant).sqrt();
                0.5 * reach * reach
            })
            .fold(0.0, f64::max)
    }

    fn certified_lower_bound(&self, _theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        quadratic_dual_bound(self.forms(), &at.weights, ball)
    }

    fn quadratic_forms(&self) -> Option<&[QuadraticForm]> {
        Some(self.forms())
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
        let mut grads = self.task_gradients.lock().expect("scratch lock poisoned");
        self.data
            .minibatch_pass(theta, squared_link, rows, &mut out.losses, &mut grads);
        weigh(&out.losses, &mut out.weights);
        combine_task_gradients(
            &grads,
            &out.weights,
            &mut out.gradient,
            &mut out.task_gradient_norms,
        );
        true
    }
}
