//! Per-iteration bookkeeping shared by every solver: measured constants (G, B),
//! the certified lower bound, the trace and the key/value pairs for observers.

use crate::error::Error;
use crate::family::{Evaluation, TaskFamily};
use crate::problem::ball::FeasibleSet;
use crate::problem::certificate::Certificate;
use crate::problem::numerics::{entropy, max_with_index};
use argmin::core::KV;
use argmin::kv;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};

/// What one recorded iteration looked like.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IterationRecord {
    /// Number of theta updates made so far (0 = the starting point).
    pub iteration: u64,
    /// F(theta) at the reported iterate.
    pub max_loss: f64,
    /// F_mu(theta) where the method smooths.
    pub smoothed_loss: Option<f64>,
    /// Certified lower bound D(p) from this iteration's weights (NaN if not computed).
    pub lower_bound: f64,
    /// The best certified lower bound so far.
    pub best_lower_bound: f64,
    /// max_loss - best_lower_bound.
    pub gap: f64,
    /// The certificate weights.
    pub weights: Vec<f64>,
    /// Entropy of `weights` (natural log).
    pub entropy: f64,
    /// `argmax_i f_i` at the reported iterate (the first on ties).
    pub worst_task: usize,
    /// The step taken (NaN where there is none).
    pub step: f64,
}

/// Shared solver state that is not the optimisation itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracker {
    set: FeasibleSet,
    certify_every: u64,
    record_trace: bool,
    emit_kv: bool,
    /// The best certified lower bound on OPT so far (-inf before the first).
    pub best_lower_bound: f64,
    /// The best certificate computed in this process (never read back from a
    /// checkpoint: a stored bound is not trusted, only recomputed ones are).
    #[serde(skip)]
    pub best_certificate: Option<Certificate>,
    /// The weights and point of the best certificate: a resumed run
    /// recomputes that certificate from them (any weights give a valid bound,
    /// so a tampered file cannot produce a wrong one).
    #[serde(default)]
    pub best_weights: Vec<f64>,
    /// The point of the best certificate (see `best_weights`).
    #[serde(default)]
    pub best_point: Vec<f64>,
    /// G: the largest task-gradient norm seen.
    pub gradient_bound: f64,
    /// B: the largest |f_i| seen.
    pub loss_bound: f64,
    /// The recorded iterations, where a trace was asked for.
    pub trace: Vec<IterationRecord>,
    /// Scratch for certificates that need an evaluation with fixed weights.
    #[serde(skip)]
    scratch: Option<Evaluation>,
}

impl Tracker {
    /// A tracker on `set` that certifies every `certify_every`-th iteration (at
    /// least 1) and keeps a trace where `record_trace`; it builds key/value
    /// pairs unless made [`Tracker::quiet`].
    pub fn new(set: FeasibleSet, certify_every: u64, record_trace: bool) -> Self {
        Self {
            set,
            certify_every: certify_every.max(1),
            record_trace,
            emit_kv: true,
            best_lower_bound: f64::NEG_INFINITY,
            best_certificate: None,
            best_weights: Vec::new(),
            best_point: Vec::new(),
            gradient_bound: 0.0,
            loss_bound: 0.0,
            trace: Vec::new(),
            scratch: None,
        }
    }

    /// The tracker of a run of `family` on `set` with `options`: certificates
    /// on the schedule of [`certificate_interval`](super::certificate_interval),
    /// a trace where `options.record_trace` asks for one.
    pub fn for_run(
        family: &dyn TaskFamily,
        set: FeasibleSet,
        options: &super::SolveOptions,
    ) -> Self {
        let interval = super::certificate_interval(options.certify_every, family.work_estimate());
        Self::new(set, interval, options.record_trace).quiet()
    }

    /// One iterate's bookkeeping, for solvers written outside the crate: the
    /// constants measured from `eval` (an evaluation at `theta` whose weights
    /// are the solver's weights there), a certificate where one is due, and
    /// the record. Returns argmin's key/value pairs, if anyone observes them.
    pub fn observe(
        &mut self,
        family: &dyn TaskFamily,
        theta: &DVector<f64>,
        eval: &Evaluation,
        iteration: u64,
        step: f64,
    ) -> Result<Option<KV>, Error> {
        self.absorb(eval);
        let lower = if self.due(iteration) {
            self.certify_evaluated(family, theta, eval)?
        } else {
            f64::NAN
        };
        Ok(self.record(iteration, &eval.losses, &eval.weights, lower, None, step))
    }

    /// Skip building key/value pairs (when nobody observes them).
    pub fn quiet(mut self) -> Self {
        self.emit_kv = false;
        self
    }

    /// The feasible set the certificates are for.
    pub fn set(&self) -> FeasibleSet {
        self.set
    }

    /// Updates the measured constants G and B from an evaluation.
    pub fn absorb(&mut self, eval: &Evaluation) {
        for &g in &eval.task_gradient_norms {
            self.gradient_bound = self.gradient_bound.max(g);
        }
        for &f in &eval.losses {
            self.loss_bound = self.loss_bound.max(f.abs());
        }
    }

    /// Whether a certificate is due at `iteration`.
    pub fn due(&self, iteration: u64) -> bool {
        iteration.is_multiple_of(self.certify_every)
    }

    /// Certified lower bound for the weights in `at` (an evaluation at theta with them).
    pub fn certify_evaluated(
        &mut self,
        family: &dyn TaskFamily,
        theta: &DVector<f64>,
        at: &Evaluation,
    ) -> Result<f64, Error> {
        if self.best_certificate.is_none() && !self.best_weights.is_empty() {
            // Resumed: recompute the stored best before comparing with it.
            self.best_certificate = self.best_certificate(family)?;
        }
        let certificate = family.certify(theta, at, &self.set);
        let bound = certificate.bound;
        if bound > self.best_lower_bound {
            self.best_lower_bound = bound;
        }
        let improved = self
            .best_certificate
            .is_none_or(|best| certificate.bound > best.bound);
        if improved {
            // Copies into buffers sized once (no allocation per iteration).
            self.best_weights.resize(at.weights.len(), 0.0);
            self.best_weights.copy_from_slice(&at.weights);
            self.best_point.resize(theta.len(), 0.0);
            self.best_point.copy_from_slice(theta.as_slice());
        }
        self.best_certificate = Some(match self.best_certificate {
            Some(best) => best.better(certificate),
            None => certificate,
        });
        Ok(bound)
    }

    /// Certified lower bound for arbitrary weights `p` at theta: families whose
    /// dual is closed-form need no data pass; others get one evaluation with `p` fixed.
    pub fn certify_weights(
        &mut self,
        family: &dyn TaskFamily,
        theta: &DVector<f64>,
        p: &[f64],
    ) -> Result<f64, Error> {
        let mut scratch = self
            .scratch
            .take()
            .unwrap_or_else(|| Evaluation::new(family.num_tasks(), family.dim()));
        if family.quadratic_forms().is_some() {
            scratch.weights.copy_from_slice(p);
        } else {
            family.evaluate(theta, &mut |_, w| w.copy_from_slice(p), &mut scratch)?;
            self.absorb_norms_only(&scratch);
        }
        let bound = self.certify_evaluated(family, theta, &scratch)?;
        self.scratch = Some(scratch);
        Ok(bound)
    }

    /// The best certificate of the run: as computed in this process, or
    /// recomputed from the stored weights and point after a resume (a stored
    /// bound itself is never trusted).
    pub fn best_certificate(&self, family: &dyn TaskFamily) -> Result<Option<Certificate>, Error> {
        if let Some(best) = self.best_certificate {
            return Ok(Some(best));
        }
        let (m, d) = (family.num_tasks(), family.dim());
        if self.best_weights.len() != m || self.best_point.len() != d {
            return Ok(None);
        }
        if !self.best_point.iter().all(|v| v.is_finite()) {
            return Ok(None);
        }
        let point = DVector::from_column_slice(&self.best_point);
        let mut eval = Evaluation::new(m, d);
        if family.quadratic_forms().is_some() {
            eval.weights.copy_from_slice(&self.best_weights);
        } else {
            family.evaluate(
                &point,
                &mut |_, w| w.copy_from_slice(&self.best_weights),
                &mut eval,
            )?;
        }
        Ok(Some(family.certify(&point, &eval, &self.set)))
    }

    fn absorb_norms_only(&mut self, eval: &Evaluation) {
        self.absorb(eval);
    }

    /// Records one iteration (trace + KV). `losses` are at the reported iterate,
    /// `weights` are the certificate weights, `lower_bound` this step's bound (or NaN).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        iteration: u64,
        losses: &[f64],
        weights: &[f64],
        lower_bound: f64,
        smoothed_loss: Option<f64>,
        step: f64,
    ) -> Option<KV> {
        let (worst_task, max_loss) = max_with_index(losses).unwrap_or((0, f64::NAN));
        let gap = max_loss - self.best_lower_bound;
        let weight_entropy = entropy(weights);
        if self.record_trace {
            self.trace.push(IterationRecord {
                iteration,
                max_loss,
                smoothed_loss,
                lower_bound,
                best_lower_bound: self.best_lower_bound,
                gap,
                weights: weights.to_vec(),
                entropy: weight_entropy,
                worst_task,
                step,
            });
        }
        if !self.emit_kv {
            return None;
        }
        let weights_text = serde_json::to_string(weights).unwrap_or_default();
        let mut kv = kv!(
            "max_loss" => max_loss;
            "lower_bound" => lower_bound;
            "best_lower_bound" => self.best_lower_bound;
            "gap" => gap;
            "entropy" => weight_entropy;
            "worst_task" => worst_task as u64;
            "step" => step;
            "weights" => weights_text;
        );
        if let Some(s) = smoothed_loss {
            kv.insert("smoothed_loss", s.into());
        }
        Some(kv)
    }
}
