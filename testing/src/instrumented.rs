//! A task family that wraps another, counts its data passes and can be told
//! to fail, for tests and benchmarks of runners and solvers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nalgebra::DVector;
use taskrobust::family::{DataTasks, Evaluation, TaskFamily, Weigh, WorkEstimate};
use taskrobust::problem::ball::Ball;
use taskrobust::problem::certificate::{Certificate, QuadraticForm};
use taskrobust::Error;

/// Delegates every method to `inner`, counting the full passes
/// ([`TaskFamily::evaluate`] calls), and fails every pass after the first
/// `healthy` ones with [`Error::Device`], as a device that drops out would.
pub struct Instrumented {
    inner: Arc<dyn TaskFamily>,
    passes: AtomicU64,
    healthy: u64,
}

impl Instrumented {
    /// Counts the passes of `inner` and never fails.
    pub fn new(inner: Arc<dyn TaskFamily>) -> Self {
        Self::failing_after(inner, u64::MAX)
    }

    /// Counts the passes of `inner`; pass number `healthy` (from 0) and
    /// every later one fail.
    pub fn failing_after(inner: Arc<dyn TaskFamily>, healthy: u64) -> Self {
        Self {
            inner,
            passes: AtomicU64::new(0),
            healthy,
        }
    }

    /// Passes so far.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Passes so far, and the count reset to zero.
    pub fn take_passes(&self) -> u64 {
        self.passes.swap(0, Ordering::Relaxed)
    }
}

/// The message of the error that [`Instrumented::failing_after`] injects.
pub const INJECTED_FAILURE: &str = "injected failure: the device fell off the bus";

impl TaskFamily for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn num_tasks(&self) -> usize {
        self.inner.num_tasks()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), Error> {
        self.inner.losses(theta, losses)
    }
    fn evaluate(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> Result<(), Error> {
        if self.passes.fetch_add(1, Ordering::Relaxed) >= self.healthy {
            return Err(Error::Device(INJECTED_FAILURE.into()));
        }
        self.inner.evaluate(theta, weigh, out)
    }
    fn reweigh(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        at: &mut Evaluation,
    ) -> Result<bool, Error> {
        // A pass only where the inner family made one (known afterwards, so
        // an injected failure comes after it, unlike in `evaluate`).
        let made_pass = self.inner.reweigh(theta, weigh, at)?;
        if made_pass && self.passes.fetch_add(1, Ordering::Relaxed) >= self.healthy {
            return Err(Error::Device(INJECTED_FAILURE.into()));
        }
        Ok(made_pass)
    }
    fn task_gradient(
        &self,
        task: usize,
        theta: &DVector<f64>,
        gradient: &mut DVector<f64>,
    ) -> Result<(), Error> {
        self.inner.task_gradient(task, theta, gradient)
    }
    fn smoothness(&self) -> f64 {
        self.inner.smoothness()
    }
    fn strong_convexity(&self) -> f64 {
        self.inner.strong_convexity()
    }
    fn known_smoothness(&self) -> Option<f64> {
        self.inner.known_smoothness()
    }
    fn known_strong_convexity(&self) -> Option<f64> {
        self.inner.known_strong_convexity()
    }
    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        self.inner.gradient_bound_on_ball(radius)
    }
    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        self.inner.loss_bound_on_ball(radius)
    }
    fn certified_lower_bound(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        self.inner.certified_lower_bound(theta, at, ball)
    }
    fn certify(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> Certificate {
        self.inner.certify(theta, at, ball)
    }
    fn work_estimate(&self) -> WorkEstimate {
        self.inner.work_estimate()
    }
    fn loss_error_bound(&self, theta: &DVector<f64>, losses: &[f64]) -> f64 {
        self.inner.loss_error_bound(theta, losses)
    }
    fn quadratic_forms(&self) -> Option<&[QuadraticForm]> {
        self.inner.quadratic_forms()
    }
    fn logistic_parts(&self) -> Option<(&DataTasks, f64)> {
        self.inner.logistic_parts()
    }
    fn least_squares_data(&self) -> Option<&DataTasks> {
        self.inner.least_squares_data()
    }
    fn sample_counts(&self) -> Option<Vec<usize>> {
        self.inner.sample_counts()
    }
    /// Delegated as is: minibatch passes are neither counted nor failed
    /// (they cannot report an error).
    fn evaluate_minibatch(
        &self,
        theta: &DVector<f64>,
        rows: &[Vec<usize>],
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> bool {
        self.inner.evaluate_minibatch(theta, rows, weigh, out)
    }
}
