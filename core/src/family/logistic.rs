//! l2-regularised logistic regression tasks (labels +1/-1):
//! `f_i(theta) = mean_j ln(1 + exp(-y_j x_j^T theta)) + l2/2 ||theta||^2`.

use super::{
    combine_task_gradients, DataTasks, Evaluation, SampleNorms, TaskData, TaskFamily,
    TaskGradients, Weigh,
};
use crate::error::{check_positive, Error, InputError};
use crate::linalg::kernels::{softplus, softplus_and_sigmoid};
use crate::problem::ball::Ball;
use crate::problem::certificate::{evaluation_bound, norm_up, Certificate};
use crate::problem::numerics::{gamma, round_up, UNDERFLOW_UNIT, UNIT_ROUNDOFF};
use nalgebra::{DMatrix, DVector};
use std::sync::{Mutex, OnceLock};

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
    task_gradients: Mutex<TaskGradients>,
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
        let recombined = self
            .task_gradients
            .lock()
            .expect("scratch lock poisoned")
            .reweigh(theta, weigh, at);
        match recombined {
            Some(()) => Ok(false),
            None => self.evaluate(theta, weigh, at).map(|()| true),
        }
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
        Certificate::trivial(0.0, "").better(model)
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
