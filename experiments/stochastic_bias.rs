//! Check (i): the bias of stochastic softmax-gd's plug-in softmax weights.
//!
//! At a fixed theta, each task loss is estimated from b rows drawn uniformly
//! with replacement (the sampling of `solvers::stochastic`), through
//! `TaskFamily::evaluate_minibatch`. Measured: `E[softmax(fhat_b/mu)] -
//! softmax(f/mu)` against full-batch weights, by Monte Carlo with a control
//! variate of known mean zero (below), for each batch size b; compared with
//! the second-order prediction `theory::bounds::plugin_softmax_bias`, which
//! scales like `1/(b mu^2)`. The same is measured for the EMA variant (the
//! solver's `ema` option) at the same theta.
//!
//! Control variate: with `J = (diag p - p p^T)/mu` the Jacobian of the softmax
//! at f, `X = softmax(fhat/mu) - p - J (fhat - f)` has exactly the mean of
//! `softmax(fhat/mu) - p`, because `E[fhat] = f` exactly (each minibatch mean,
//! and each EMA of them, is unbiased for the full-data mean). Removing the
//! first-order term leaves a variance of order `1/b^2` instead of `1/b`, so
//! the relative Monte Carlo error no longer grows with b. See
//! docs/THEORY.md#stochastic-softmax-weights.

use crate::error::Error;
use crate::experiments::setup::{build_family, median, FamilyParams};
use crate::experiments::{all_rows, figure, CellRows, Experiment, FamilySeed, Finished, Keyed};
use crate::family::{Evaluation, TaskFamily};
use crate::numerics::softmax;
use crate::plots::lines::{xy_chart, LineSpec};
use crate::plots::{LineTable, Scale};
use crate::solvers::{solve, Method, SolveOptions};
use crate::theory::bounds::plugin_softmax_bias;
use crate::theory::checks::{common_asymptotic_rate_matches, Check};
use crate::theory::rate_fit::{Series, Window};
use crate::FeasibleSet;
use nalgebra::DVector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    /// Temperature per family.
    mu: BTreeMap<String, f64>,
    radius: f64,
    theta_iterations: u64,
    batch_sizes: Vec<usize>,
    replicates: usize,
    /// Largest logit noise `sqrt(sum_i p_i s_i^2 / b) / mu` of the batch sizes
    /// the checks use (where the expansion in 1/b applies).
    fit_max_logit_sd: f64,
    ema: f64,
    ema_burn_in: usize,
    ema_batches: usize,
    family: FamilyParams,
}

/// How many Monte Carlo standard errors the measured and predicted bias
/// vectors may differ by (a 3-sigma test; see THEORY.md).
const SIGMAS: f64 = 3.0;

const PLUG_IN: &str = "plug-in";
const EMA: &str = "ema";

/// One (family, seed, variant, batch size): the measured and predicted bias.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    /// "plug-in" (softmax of the minibatch losses) or "ema".
    variant: String,
    batch: usize,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    mu: f64,
    /// Independent replicates (plug-in) or chain steps after burn-in (EMA).
    replicates: usize,
    /// Full-batch weights p = softmax(f/mu) at theta.
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    weights: Vec<f64>,
    /// Per-sample loss variances s_i^2 at theta.
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    variances: Vec<f64>,
    /// Measured E[phat] - p (control-variate estimate) and its standard errors.
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    bias: Vec<f64>,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    bias_se: Vec<f64>,
    /// The second-order prediction.
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    predicted: Vec<f64>,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    bias_norm: f64,
    /// Standard error of ||bias|| (delta method along the bias direction).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    bias_norm_se: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    predicted_norm: f64,
    /// ||bias - predicted|| and the Monte Carlo error of the whole vector,
    /// sqrt(trace of the covariance of the mean).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    difference_norm: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    difference_se: f64,
    /// Plain Monte Carlo (no control variate): ||mean(phat) - p|| and its SE.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    plain_norm: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    plain_norm_se: f64,
    /// Noise in the logits that carry weight: sqrt(sum_i p_i s_i^2 / b_eff) / mu.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    logit_sd: f64,
}

pub struct StochasticBias;

impl Experiment for StochasticBias {
    type Params = P;
    type Cell = FamilySeed;
    type Row = Row;

    fn name(&self) -> &'static str {
        "stochastic_bias"
    }

    fn default_params(&self) -> &'static str {
        include_str!("stochastic_bias.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        p.seeds.clone()
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<FamilySeed>>, crate::InputError> {
        check_params(p)?;
        Ok(FamilySeed::grid(&p.families, &p.seeds))
    }

    fn run_cell(&self, p: &P, cell: &FamilySeed) -> Result<Vec<Row>, Error> {
        let (kind, seed) = (cell.family.as_str(), cell.seed);
        let family = build_family(kind, &p.family, p.family.tasks, seed)?;
        let mu = temperature(p, kind)?;
        let set = FeasibleSet::with_radius(p.radius);
        // The fixed theta: softmax-gd with the same temperature, near argmin F_mu.
        let run = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::SoftmaxGd,
                iterations: p.theta_iterations,
                mu: Some(mu),
                certify_every: Some(p.theta_iterations),
                ..Default::default()
            },
        )?;
        let theta = DVector::from_column_slice(&run.theta);
        let at = Point::new(family.as_ref(), &theta, mu)?;
        let mut rows = Vec::new();
        for &b in &p.batch_sizes {
            let mut rng = StdRng::seed_from_u64(stream_seed(seed, b as u64, 0));
            let draws = plug_in_draws(&at, b, p.replicates, &mut rng);
            let predicted = plugin_softmax_bias(&at.losses, &at.variances, mu, b);
            rows.push(at.row(kind, seed, PLUG_IN, b, 1.0, &draws, predicted));

            let mut rng = StdRng::seed_from_u64(stream_seed(seed, b as u64, 1));
            let draws = ema_draws(
                &at,
                b,
                p.ema,
                p.ema_burn_in,
                p.replicates,
                p.ema_batches,
                &mut rng,
            );
            // At a fixed theta the stationary EMA of unbiased minibatch losses has
            // variance s_i^2 / b * ema / (2 - ema): the same prediction with the
            // variances scaled by that factor.
            let shrink = p.ema / (2.0 - p.ema);
            let scaled: Vec<f64> = at.variances.iter().map(|s2| s2 * shrink).collect();
            let predicted = plugin_softmax_bias(&at.losses, &scaled, mu, b);
            rows.push(at.row(kind, seed, EMA, b, shrink, &draws, predicted));
        }
        Ok(rows)
    }

    fn finish(
        &self,
        p: &P,
        cells: &[CellRows<'_, FamilySeed, Row>],
        out: &Path,
    ) -> Result<Finished, Error> {
        let rows = all_rows(cells);
        let mut finished = Finished {
            checks: verdicts(p, &rows),
            ..Default::default()
        };
        // Tables: the per-task components, then the figure's line table.
        let tasks: Vec<TaskRow> = rows
            .iter()
            .flat_map(|r| {
                (0..r.bias.len()).map(move |i| TaskRow {
                    family: r.family.clone(),
                    seed: r.seed,
                    variant: r.variant.clone(),
                    batch: r.batch,
                    task: i,
                    weight: r.weights[i],
                    variance: r.variances[i],
                    bias: r.bias[i],
                    bias_se: r.bias_se[i],
                    predicted: r.predicted[i],
                })
            })
            .collect();
        crate::plots::table::write_rows(&out.join("stochastic_bias_tasks.csv"), &tasks)
            .map_err(|e| Error::io("", e))?;
        let summaries: Vec<SummaryRow> = rows.iter().map(SummaryRow::from).collect();
        crate::plots::table::write_rows(&out.join("stochastic_bias_norms.csv"), &summaries)
            .map_err(|e| Error::io("", e))?;
        let mut table = LineTable::new();
        for family in &p.families {
            for variant in [PLUG_IN, EMA] {
                let series = series_name(family, variant, p.ema);
                let mine: Vec<&Row> = rows
                    .iter()
                    .filter(|r| &r.family == family && r.variant == variant)
                    .collect();
                for r in &mine {
                    table.measured(&series, r.seed, r.batch as f64, r.bias_norm);
                }
                for &b in &p.batch_sizes {
                    let predicted: Vec<f64> = mine
                        .iter()
                        .filter(|r| r.batch == b)
                        .map(|r| r.predicted_norm)
                        .collect();
                    table.bound(&series, b as f64, median(&predicted));
                }
            }
        }
        let csv = out.join("stochastic_bias.csv");
        table.write_csv(&csv).map_err(|e| Error::io("", e))?;
        let drawn = LineTable::read_csv(&csv).map_err(|e| Error::io("", e))?;
        let mut spec = LineSpec::xy(
            "batch size b (rows per task)",
            "plug-in bias ‖E[p_b] − p‖₂",
            Scale::Log,
            Scale::Log,
        );
        spec.error_bars = false;
        spec.bound_label = "predicted".to_string();
        xy_chart(&drawn, &spec, &out.join("stochastic_bias")).map_err(|e| Error::io("", e))?;
        finished
            .figures
            .push(figure("stochastic_bias", caption(p, &rows)));
        Ok(finished)
    }
}

/// One task's component of a row (the `stochastic_bias_tasks.csv` table).
#[derive(Debug, Clone, Serialize)]
struct TaskRow {
    family: String,
    seed: u64,
    variant: String,
    batch: usize,
    task: usize,
    weight: f64,
    variance: f64,
    bias: f64,
    bias_se: f64,
    predicted: f64,
}

/// The scalar columns of a row (the `stochastic_bias_norms.csv` table).
#[derive(Debug, Clone, Serialize)]
struct SummaryRow {
    family: String,
    seed: u64,
    variant: String,
    batch: usize,
    replicates: usize,
    logit_sd: f64,
    bias_norm: f64,
    bias_norm_se: f64,
    predicted_norm: f64,
    ratio: f64,
    difference_norm: f64,
    difference_se: f64,
    plain_norm: f64,
    plain_norm_se: f64,
}

impl From<&Row> for SummaryRow {
    fn from(r: &Row) -> Self {
        Self {
            family: r.family.clone(),
            seed: r.seed,
            variant: r.variant.clone(),
            batch: r.batch,
            replicates: r.replicates,
            logit_sd: r.logit_sd,
            bias_norm: r.bias_norm,
            bias_norm_se: r.bias_norm_se,
            predicted_norm: r.predicted_norm,
            ratio: r.bias_norm / r.predicted_norm,
            difference_norm: r.difference_norm,
            difference_se: r.difference_se,
            plain_norm: r.plain_norm,
            plain_norm_se: r.plain_norm_se,
        }
    }
}

fn series_name(family: &str, variant: &str, ema: f64) -> String {
    let family = family.replace('_', " ");
    if variant == EMA {
        format!("{family}, EMA β = {ema}")
    } else {
        family
    }
}

fn check_params(p: &P) -> Result<(), crate::InputError> {
    let bad = |field: &str, message: &str| Err(crate::InputError::new(field, message));
    if p.batch_sizes.is_empty() || p.batch_sizes.contains(&0) {
        return bad(
            "batch_sizes",
            "must be a non-empty list of positive integers",
        );
    }
    if p.replicates < 2 {
        return bad("replicates", "must be at least 2");
    }
    if !(p.ema > 0.0 && p.ema <= 1.0) {
        return bad("ema", "must be in (0, 1]");
    }
    if p.ema_batches < 2 || p.replicates < p.ema_batches {
        return bad("ema_batches", "must be at least 2 and at most replicates");
    }
    for family in &p.families {
        temperature(p, family)?;
    }
    if p.fit_max_logit_sd.is_nan() || p.fit_max_logit_sd <= 0.0 {
        return bad("fit_max_logit_sd", "must be positive");
    }
    Ok(())
}

fn temperature(p: &P, family: &str) -> Result<f64, crate::InputError> {
    match p.mu.get(family) {
        Some(&mu) if mu > 0.0 && mu.is_finite() => Ok(mu),
        Some(_) => Err(crate::InputError::new(
            format!("mu.{family}"),
            "must be a positive number",
        )),
        None => Err(crate::InputError::new(
            "mu",
            format!("no temperature for family '{family}'"),
        )),
    }
}

/// A seed per (cell seed, batch size, variant): results do not depend on
/// the order in which batch sizes run.
fn stream_seed(seed: u64, b: u64, variant: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(variant.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixed theta: full losses, weights and per-sample loss variances.
struct Point {
    losses: Vec<f64>,
    /// `sample_losses[i][j]`: the loss of row j of task i at theta (one-row
    /// minibatches through `evaluate_minibatch`). A minibatch loss is the mean
    /// of its rows' entries, exactly as `evaluate_minibatch` forms it.
    sample_losses: Vec<Vec<f64>>,
    weights: Vec<f64>,
    variances: Vec<f64>,
    counts: Vec<usize>,
    mu: f64,
}

impl Point {
    fn new(family: &dyn TaskFamily, theta: &DVector<f64>, mu: f64) -> Result<Self, Error> {
        let m = family.num_tasks();
        let counts = family.sample_counts().ok_or_else(|| {
            crate::InputError::new("families", "stochastic_bias needs data tasks")
        })?;
        let mut losses = vec![0.0; m];
        family.losses(theta, &mut losses)?;
        // Per-sample losses through the minibatch path itself: row j of every task.
        let largest = counts.iter().copied().max().unwrap_or(0);
        let mut eval = Evaluation::new(m, family.dim());
        let mut sample_losses: Vec<Vec<f64>> = counts.iter().map(|&n| vec![0.0; n]).collect();
        for j in 0..largest {
            let rows: Vec<Vec<usize>> = counts.iter().map(|&n| vec![j.min(n - 1)]).collect();
            family.evaluate_minibatch(theta, &rows, &mut |_, w| w.fill(0.0), &mut eval);
            for (task, &loss) in sample_losses.iter_mut().zip(&eval.losses) {
                if let Some(slot) = task.get_mut(j) {
                    *slot = loss;
                }
            }
        }
        // Population variance about the full-data mean (sampling is with
        // replacement from the n_i rows), corrected for rounding in the mean.
        let variances = sample_losses
            .iter()
            .zip(&losses)
            .map(|(values, &f)| {
                let n = values.len() as f64;
                let mean_deviation = values.iter().map(|l| l - f).sum::<f64>() / n;
                let square = values.iter().map(|l| (l - f).powi(2)).sum::<f64>() / n;
                (square - mean_deviation.powi(2)).max(0.0)
            })
            .collect();
        Ok(Self {
            sample_losses,
            weights: softmax(&losses, mu),
            losses,
            variances,
            counts,
            mu,
        })
    }

    /// `softmax(fhat/mu) - p` (plain) and the control-variate version
    /// `softmax(fhat/mu) - p - J delta - O(delta)`, `delta = fhat - f`, where
    /// `J delta` is the first-order term and `O` the cross (j != k) part of the
    /// second-order term. Both have mean exactly zero: `E[delta_j] = 0` and
    /// `delta_j`, `delta_k` are independent for j != k (each task draws its
    /// own rows). The diagonal second-order terms, which carry the bias, stay.
    fn deviations(&self, fhat: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let phat = softmax(fhat, self.mu);
        let p = &self.weights;
        let mu = self.mu;
        let delta: Vec<f64> = fhat.iter().zip(&self.losses).map(|(a, b)| a - b).collect();
        let mean_delta: f64 = p.iter().zip(&delta).map(|(a, b)| a * b).sum();
        let plain: Vec<f64> = phat.iter().zip(p).map(|(a, b)| a - b).collect();
        // d2 p_i / df_j df_k = p_i [(e_ij - p_j)(e_ik - p_k) + p_j p_k] / mu^2 for j != k,
        // so with u_j = (e_ij - p_j) delta_j and v_j = p_j delta_j the cross part is
        // p_i / (2 mu^2) [(sum u)^2 - sum u^2 + (sum v)^2 - sum v^2].
        let v_sum = mean_delta;
        let v_sq: f64 = p.iter().zip(&delta).map(|(a, d)| (a * d).powi(2)).sum();
        let controlled = (0..p.len())
            .map(|i| {
                let u_sum = delta[i] - mean_delta;
                let u_sq: f64 = (0..p.len())
                    .map(|j| {
                        let e = if i == j { 1.0 } else { 0.0 };
                        ((e - p[j]) * delta[j]).powi(2)
                    })
                    .sum();
                let linear = p[i] * u_sum / mu;
                let cross = p[i] / (2.0 * mu * mu) * (u_sum * u_sum - u_sq + v_sum * v_sum - v_sq);
                plain[i] - linear - cross
            })
            .collect();
        (plain, controlled)
    }

    /// A minibatch loss vector: each task's mean over its drawn rows.
    fn minibatch_losses(&self, rows: &[Vec<usize>], out: &mut [f64]) {
        for ((o, task), rows) in out.iter_mut().zip(&self.sample_losses).zip(rows) {
            *o = rows.iter().map(|&j| task[j]).sum::<f64>() / rows.len() as f64;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        family: &str,
        seed: u64,
        variant: &str,
        batch: usize,
        variance_factor: f64,
        draws: &Draws,
        predicted: Vec<f64>,
    ) -> Row {
        let mu = self.mu;
        let controlled = summarise(&draws.controlled);
        let plain = summarise(&draws.plain);
        let difference: Vec<f64> = controlled
            .mean
            .iter()
            .zip(&predicted)
            .map(|(a, b)| a - b)
            .collect();
        let weighted_variance: f64 = self
            .weights
            .iter()
            .zip(&self.variances)
            .map(|(p, s2)| p * s2)
            .sum();
        Row {
            family: family.to_string(),
            seed,
            variant: variant.to_string(),
            batch,
            mu,
            replicates: draws.count,
            weights: self.weights.clone(),
            variances: self.variances.clone(),
            bias_se: controlled.component_se.clone(),
            bias_norm: controlled.norm,
            bias_norm_se: controlled.norm_se,
            predicted_norm: norm(&predicted),
            difference_norm: norm(&difference),
            difference_se: controlled.total_se,
            plain_norm: plain.norm,
            plain_norm_se: plain.norm_se,
            logit_sd: (weighted_variance * variance_factor / batch as f64).sqrt() / mu,
            bias: controlled.mean,
            predicted,
        }
    }
}

/// Monte Carlo samples (iid replicates, or batch means of a chain).
struct Draws {
    plain: Vec<Vec<f64>>,
    controlled: Vec<Vec<f64>>,
    /// Evaluations behind them.
    count: usize,
}

fn draw_rows(rng: &mut StdRng, counts: &[usize], rows: &mut [Vec<usize>]) {
    // As solvers::stochastic: uniform with replacement, task by task.
    for (rows, &n) in rows.iter_mut().zip(counts) {
        for r in rows.iter_mut() {
            *r = rng.random_range(0..n);
        }
    }
}

fn plug_in_draws(at: &Point, b: usize, replicates: usize, rng: &mut StdRng) -> Draws {
    let mut rows: Vec<Vec<usize>> = at.counts.iter().map(|_| vec![0; b]).collect();
    let mut fhat = vec![0.0; at.losses.len()];
    let mut plain = Vec::with_capacity(replicates);
    let mut controlled = Vec::with_capacity(replicates);
    for _ in 0..replicates {
        draw_rows(rng, &at.counts, &mut rows);
        at.minibatch_losses(&rows, &mut fhat);
        let (a, c) = at.deviations(&fhat);
        plain.push(a);
        controlled.push(c);
    }
    Draws {
        plain,
        controlled,
        count: replicates,
    }
}

/// One EMA chain at the fixed theta, initialised like the solver (with the
/// first minibatch), `burn_in` steps discarded, then `steps` steps summarised
/// as `batches` batch means (the chain is autocorrelated over ~1/ema steps).
fn ema_draws(
    at: &Point,
    b: usize,
    ema: f64,
    burn_in: usize,
    steps: usize,
    batches: usize,
    rng: &mut StdRng,
) -> Draws {
    let m = at.losses.len();
    let mut rows: Vec<Vec<usize>> = at.counts.iter().map(|_| vec![0; b]).collect();
    let mut fhat = vec![0.0; m];
    let mut averaged: Vec<f64> = Vec::new();
    let per_batch = steps / batches;
    let mut plain = vec![vec![0.0; m]; batches];
    let mut controlled = vec![vec![0.0; m]; batches];
    for t in 0..burn_in + per_batch * batches {
        draw_rows(rng, &at.counts, &mut rows);
        at.minibatch_losses(&rows, &mut fhat);
        if averaged.is_empty() {
            averaged.extend_from_slice(&fhat);
        } else {
            for (a, &x) in averaged.iter_mut().zip(&fhat) {
                *a = (1.0 - ema) * *a + ema * x;
            }
        }
        if t >= burn_in {
            let k = (t - burn_in) / per_batch;
            let (a, c) = at.deviations(&averaged);
            for i in 0..m {
                plain[k][i] += a[i] / per_batch as f64;
                controlled[k][i] += c[i] / per_batch as f64;
            }
        }
    }
    Draws {
        plain,
        controlled,
        count: per_batch * batches,
    }
}

/// Mean vector of samples and its standard errors.
struct Summary {
    mean: Vec<f64>,
    component_se: Vec<f64>,
    norm: f64,
    /// SE of the norm: sqrt(u^T Cov(mean) u), u = mean / ||mean||.
    norm_se: f64,
    /// sqrt(trace Cov(mean)): the Monte Carlo error of the whole vector.
    total_se: f64,
}

fn summarise(samples: &[Vec<f64>]) -> Summary {
    let n = samples.len() as f64;
    let m = samples.first().map_or(0, Vec::len);
    let mean: Vec<f64> = (0..m)
        .map(|i| samples.iter().map(|s| s[i]).sum::<f64>() / n)
        .collect();
    let norm_mean = norm(&mean);
    let u: Vec<f64> = mean.iter().map(|v| v / norm_mean.max(1e-300)).collect();
    let mut component_var = vec![0.0; m];
    let mut along = 0.0;
    for s in samples {
        let mut projection = 0.0;
        for i in 0..m {
            let d = s[i] - mean[i];
            component_var[i] += d * d;
            projection += d * u[i];
        }
        along += projection * projection;
    }
    // Variance of the mean: sample variance / n.
    let scale = 1.0 / ((n - 1.0) * n);
    let component_se: Vec<f64> = component_var.iter().map(|v| (v * scale).sqrt()).collect();
    Summary {
        total_se: (component_var.iter().sum::<f64>() * scale).sqrt(),
        norm_se: (along * scale).sqrt(),
        component_se,
        norm: norm_mean,
        mean,
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The limit `beta = lim b (E[phat_b] - p)` extrapolated from the rows: per
/// task, weighted least squares of `b bias_i` on `(1, 1/b)` with weights
/// `1/(b se_i)^2` (the expansion's next term is of order 1/b^2, so
/// `b bias = beta + gamma/b + ...`). Returns the extrapolated vector and the
/// variance of each entry, or None when the rows cannot determine it.
fn extrapolate(rows: &[&Row]) -> Option<(Vec<f64>, Vec<f64>)> {
    let m = rows.first()?.bias.len();
    if rows.len() < 3 {
        return None;
    }
    let mut beta = Vec::with_capacity(m);
    let mut variance = Vec::with_capacity(m);
    for i in 0..m {
        // Normal equations of the weighted fit on (1, u), u = 1/b.
        let (mut s0, mut s1, mut s2, mut t0, mut t1) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for r in rows {
            let b = r.batch as f64;
            let se = b * r.bias_se[i];
            if se.is_nan() || se <= 0.0 {
                // A task without weight: no bias to measure (and none predicted).
                continue;
            }
            let (w, u, v) = (1.0 / (se * se), 1.0 / b, b * r.bias[i]);
            s0 += w;
            s1 += w * u;
            s2 += w * u * u;
            t0 += w * v;
            t1 += w * u * v;
        }
        let det = s0 * s2 - s1 * s1;
        if s0 == 0.0 {
            beta.push(0.0);
            variance.push(0.0);
            continue;
        }
        if det.is_nan() || det <= 0.0 {
            return None;
        }
        beta.push((s2 * t0 - s1 * t1) / det);
        variance.push(s2 / det);
    }
    Some((beta, variance))
}

/// The checks, from the rows alone (a test feeds fabricated rows). Per
/// family, for the plug-in weights, over every seed, on the batch sizes where
/// the expansion is used (logit noise `sigma_b = sqrt(sum_i p_i s_i^2 / b) / mu`
/// at most `fit_max_logit_sd`). The expansion says
/// `E[phat_b] - p = beta/b + gamma/b^2 + ...` with `beta/b` the prediction:
/// - rate: fitting `log ||bias|| = a_s + k log b + c_s/b` (one exponent k over
///   the seeds s, weighted by the Monte Carlo errors), the 95% interval of k
///   contains -1;
/// - prediction: the limit `beta_hat = lim b bias`, extrapolated by weighted
///   least squares from the Monte Carlo estimates, is within 3 Monte Carlo
///   standard errors of the predicted `b x plugin_softmax_bias`:
///   `||beta_hat - beta|| <= 3 sqrt(sum_i Var beta_hat_i)`.
///
/// See docs/THEORY.md#stochastic-softmax-weights.
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        let window = |seed: u64| -> Vec<&Row> {
            rows.iter()
                .filter(|r| {
                    &r.family == family
                        && r.seed == seed
                        && r.variant == PLUG_IN
                        && r.logit_sd <= p.fit_max_logit_sd
                })
                .collect()
        };
        let windows: Vec<Vec<&Row>> = p.seeds.iter().map(|&seed| window(seed)).collect();
        let columns: Vec<[Vec<f64>; 3]> = windows
            .iter()
            .map(|mine| {
                [
                    mine.iter().map(|r| r.batch as f64).collect(),
                    mine.iter().map(|r| r.bias_norm).collect(),
                    mine.iter().map(|r| r.bias_norm_se).collect(),
                ]
            })
            .collect();
        let series: Vec<Series> = columns
            .iter()
            .map(|[x, y, se]| Series {
                x,
                y,
                y_se: Some(se),
            })
            .collect();
        let rate = common_asymptotic_rate_matches(&series, Window::all(), -1.0);
        checks.push(rate.named(format!(
            "i/{family}: plug-in softmax bias decays like 1/b (exponent -1 within its 95% CI over seeds {:?}, logit noise <= {})",
            p.seeds, p.fit_max_logit_sd
        )));

        let mut match_pass = !p.seeds.is_empty();
        let mut match_measured = Vec::new();
        let mut match_details = Vec::new();
        for (&seed, mine) in p.seeds.iter().zip(&windows) {
            let Some((beta_hat, variance)) = extrapolate(mine) else {
                match_pass = false;
                match_details.push(format!(
                    "seed {seed}: not evaluated ({} batch sizes with logit noise <= {})",
                    mine.len(),
                    p.fit_max_logit_sd
                ));
                continue;
            };
            // The prediction is exactly beta/b: b x it is the same at every b.
            let last = mine[mine.len() - 1];
            let beta: Vec<f64> = last
                .predicted
                .iter()
                .map(|v| v * last.batch as f64)
                .collect();
            let difference: Vec<f64> = beta_hat.iter().zip(&beta).map(|(a, b)| a - b).collect();
            let se = variance.iter().sum::<f64>().sqrt();
            let z = norm(&difference) / se;
            let ok = z <= SIGMAS;
            match_pass &= ok;
            match_measured.push(json!({
                "seed": seed,
                "limit_norm": norm(&beta_hat),
                "predicted_limit_norm": norm(&beta),
                "difference_norm": norm(&difference),
                "monte_carlo_se": se,
                "z": z,
                "b": [mine[0].batch, last.batch],
            }));
            match_details.push(format!(
                "seed {seed}: lim b||bias|| = {:.4e} vs predicted {:.4e} (ratio {:.3}); ||difference|| = {:.2e} = {:.2} SE over b in [{}, {}]",
                norm(&beta_hat),
                norm(&beta),
                norm(&beta_hat) / norm(&beta),
                norm(&difference),
                z,
                mine[0].batch,
                last.batch
            ));
        }
        checks.push(Check::new(
            format!(
                "i/{family}: plug-in bias b (E[p_b] - p) tends to the second-order prediction, within {SIGMAS} Monte Carlo SE"
            ),
            match_pass,
            Value::Array(match_measured),
            json!({"max_z": SIGMAS}),
            match_details.join("; "),
        ));
    }
    checks
}

/// Ratio of a quantity at the largest b between EMA and plug-in, median over seeds.
fn ema_ratio(rows: &[Row], family: &str, b: usize, value: impl Fn(&Row) -> f64) -> f64 {
    let ratios: Vec<f64> = rows
        .iter()
        .filter(|r| r.family == family && r.variant == EMA && r.batch == b)
        .filter_map(|e| {
            rows.iter()
                .find(|r| {
                    r.family == family && r.variant == PLUG_IN && r.batch == b && r.seed == e.seed
                })
                .map(|r| value(e) / value(r))
        })
        .collect();
    median(&ratios)
}

/// Median over seeds, at batch size b, of the measured relative bias
/// `bias_i / p_i` of the worst task (the largest loss, hence the largest weight).
fn worst_task_relative_bias(rows: &[Row], family: &str, b: usize) -> f64 {
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r.family == family && r.variant == PLUG_IN && r.batch == b)
        .map(|r| {
            let (i, _) = r
                .weights
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |a, (i, &w)| if w > a.1 { (i, w) } else { a },
                );
            r.bias[i] / r.weights[i]
        })
        .collect();
    median(&values)
}

/// Median over seeds, at batch size b, of `H(E[phat_b]) - H(p)`: negative when
/// the plug-in weights are on average sharper than the full-batch ones,
/// positive when they are flatter (towards uniform).
fn entropy_change(rows: &[Row], family: &str, b: usize) -> f64 {
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r.family == family && r.variant == PLUG_IN && r.batch == b)
        .map(|r| {
            let mean: Vec<f64> = r
                .weights
                .iter()
                .zip(&r.bias)
                .map(|(p, d)| (p + d).max(0.0))
                .collect();
            crate::numerics::entropy(&mean) - crate::numerics::entropy(&r.weights)
        })
        .collect();
    median(&values)
}

/// Correlation over tasks (weights >= 1%, all seeds) at batch size b between
/// the measured relative bias `bias_i / p_i` and `a_i = s_i^2 (1 - 2 p_i)`,
/// which the prediction says it is proportional to.
fn direction_correlation(rows: &[Row], family: &str, b: usize) -> f64 {
    let pairs: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.family == family && r.variant == PLUG_IN && r.batch == b)
        .flat_map(|r| {
            (0..r.weights.len())
                .filter(|&i| r.weights[i] >= 0.01)
                .map(|i| {
                    (
                        r.bias[i] / r.weights[i],
                        r.variances[i] * (1.0 - 2.0 * r.weights[i]),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let n = pairs.len() as f64;
    if pairs.len() < 3 {
        return f64::NAN;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

fn caption(p: &P, rows: &[Row]) -> String {
    let b_max = p.batch_sizes.iter().copied().max().unwrap_or(1);
    let b_min = p.batch_sizes.iter().copied().min().unwrap_or(1);
    let mut per_family = Vec::new();
    for family in &p.families {
        let at = |b: usize, value: &dyn Fn(&Row) -> f64| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| &r.family == family && r.variant == PLUG_IN && r.batch == b)
                .map(value)
                .collect();
            median(&v)
        };
        let ratio = |r: &Row| r.bias_norm / r.predicted_norm;
        let logit = |r: &Row| r.logit_sd;
        let max_rel_se = rows
            .iter()
            .filter(|r| &r.family == family && r.variant == PLUG_IN)
            .map(|r| r.bias_norm_se / r.bias_norm)
            .fold(0.0, f64::max);
        per_family.push(format!(
            "{} (μ = {}): logit noise {:.2} at b = {b_min} and {:.2} at b = {b_max}; measured/predicted norm {:.2} and {:.2}; the worst task's weight changes by {:+.1}% and {:+.2}%; entropy change H(E p_b) − H(p) {:+.1e} and {:+.1e} nats; correlation of the measured bias_i/p_i with a_i at b = {b_max}: {:.2}; the EMA shrinks the bias norm {:.1}-fold at b = {b_max}; Monte Carlo SE <= {:.0}% of the norm",
            family.replace('_', " "),
            p.mu.get(family).copied().unwrap_or(f64::NAN),
            at(b_min, &logit),
            at(b_max, &logit),
            at(b_min, &ratio),
            at(b_max, &ratio),
            100.0 * worst_task_relative_bias(rows, family, b_min),
            100.0 * worst_task_relative_bias(rows, family, b_max),
            entropy_change(rows, family, b_min),
            entropy_change(rows, family, b_max),
            direction_correlation(rows, family, b_max),
            1.0 / ema_ratio(rows, family, b_max, |r| r.bias_norm),
            100.0 * max_rel_se,
        ));
    }
    format!(
        "Bias ‖E[p_b] − p‖ of stochastic softmax-gd's plug-in weights p_b = softmax(f̂_b/μ) against the full-batch weights p = softmax(f/μ), at a fixed θ near argmin F_μ, against the batch size b (rows per task, drawn with replacement as the solver draws them): Monte Carlo over {} draws per b with zero-mean control variates (median and range over seeds {:?}), and the second-order prediction (dashed), bias_i = p_i(a_i − Σ_j p_j a_j)/(2μ²b) with a_i = s_i²(1 − 2p_i), s_i² the per-sample loss variance of task i. What it means: to second order the plug-in weights are the full-batch softmax of the shifted losses f_i + s_i²(1 − 2p_i)/(2μb), so weight moves onto the tasks whose loss estimates are noisiest (unless a task already holds more than half the weight, which then loses it) and off the quiet ones. The bias is not a pull towards uniform: in these families the noisiest tasks are the high-loss outliers (the per-sample variance grows with the loss), so at large b the plug-in weights over-weight the worst tasks and are sharper than p. It grows like 1/μ² as the temperature falls and decays like 1/b only once the logit noise sqrt(Σ_i p_i s_i²/b)/μ is small; at small b the expansion fails: the bias saturates below the prediction and its direction changes (per-task values in stochastic_bias_tasks.csv). The EMA variant (β = {}, same θ) averages about (2 − β)/β minibatches and shrinks the bias by that factor, as the same formula predicts with s_i² scaled by β/(2 − β); in a run its losses also lag θ, which this experiment does not measure. Numbers (medians over seeds) at b = {b_min} and b = {b_max}: {}.",
        p.replicates,
        p.seeds,
        p.ema,
        per_family.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("stochastic_bias.toml"), false).unwrap()
    }

    /// Rows whose bias norm is `scale * c / b^exponent * (1 + correction / b)`,
    /// with the prediction `c / b`.
    fn rows_with(exponent: f64, scale: f64, correction: f64) -> Vec<Row> {
        let p = params();
        let mut out = Vec::new();
        for family in &p.families {
            for &seed in &p.seeds {
                for &b in &p.batch_sizes {
                    let c = 0.1 * seed as f64;
                    let measured =
                        scale * c / (b as f64).powf(exponent) * (1.0 + correction / b as f64);
                    let predicted = c / b as f64;
                    // Small deterministic scatter so the fit has residuals.
                    let wiggle = 1.0
                        + 0.01
                            * if b.trailing_zeros() % 2 == 0 {
                                1.0
                            } else {
                                -1.0
                            };
                    for variant in [PLUG_IN, EMA] {
                        out.push(Row {
                            family: family.clone(),
                            seed,
                            variant: variant.to_string(),
                            batch: b,
                            mu: 0.5,
                            replicates: p.replicates,
                            weights: vec![0.5, 0.5],
                            variances: vec![1.0, 1.0],
                            bias: vec![measured * wiggle, 0.0],
                            bias_se: vec![0.01 * predicted, 0.0],
                            predicted: vec![predicted, 0.0],
                            bias_norm: measured * wiggle,
                            bias_norm_se: 0.01 * predicted,
                            predicted_norm: predicted,
                            difference_norm: (measured * wiggle - predicted).abs(),
                            difference_se: 0.02 * predicted,
                            plain_norm: measured,
                            plain_norm_se: 0.1 * predicted,
                            logit_sd: 2.0 / (b as f64).sqrt(),
                        });
                    }
                }
            }
        }
        out
    }

    fn rows(exponent: f64, scale: f64) -> Vec<Row> {
        rows_with(exponent, scale, 0.0)
    }

    #[test]
    fn a_bias_like_the_prediction_passes() {
        let checks = verdicts(&params(), &rows(1.0, 1.0));
        assert_eq!(checks.len(), 4);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
        // So does one with the expansion's next term, gamma/b^2 (here -30%
        // of the leading term at b = 16).
        let checks = verdicts(&params(), &rows_with(1.0, 1.0, -5.0));
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn a_too_slow_decay_fails_the_rate_and_the_match() {
        // ~1/sqrt(b): shallower than 1/b, and far above the prediction at large b.
        let checks = verdicts(&params(), &rows(0.5, 1.0));
        assert!(checks.iter().all(|c| !c.passed), "{checks:#?}");
    }

    #[test]
    fn a_wrong_constant_fails_the_match_but_not_the_rate() {
        // Right rate, twice the predicted size (e.g. a lost factor 1/2).
        let checks = verdicts(&params(), &rows(1.0, 2.0));
        assert!(checks
            .iter()
            .filter(|c| c.name.contains("decays like 1/b"))
            .all(|c| c.passed));
        assert!(checks
            .iter()
            .filter(|c| c.name.contains("prediction"))
            .all(|c| !c.passed));
    }

    #[test]
    fn control_variate_has_the_plain_mean_and_a_smaller_variance() {
        // Two tasks, p = softmax: the linear term has mean zero under symmetric
        // noise, so both estimators agree; the controlled one varies less.
        let at = Point {
            sample_losses: vec![vec![1.0], vec![0.8]],
            losses: vec![1.0, 0.8],
            weights: softmax(&[1.0, 0.8], 0.5),
            variances: vec![0.0, 0.0],
            counts: vec![1, 1],
            mu: 0.5,
        };
        let e = 1e-3;
        let (plus_a, plus_c) = at.deviations(&[1.0 + e, 0.8]);
        let (minus_a, minus_c) = at.deviations(&[1.0 - e, 0.8]);
        for i in 0..2 {
            let plain_mean = 0.5 * (plus_a[i] + minus_a[i]);
            let controlled_mean = 0.5 * (plus_c[i] + minus_c[i]);
            assert!((plain_mean - controlled_mean).abs() < 1e-15);
            // What is left is second order: ~e/mu of the first-order deviation.
            assert!(plus_c[i].abs() < 1e-2 * plus_a[i].abs());
        }
        // The symmetric-pair mean is the second-order bias of the prediction.
        let predicted = plugin_softmax_bias(&[1.0, 0.8], &[e * e, 0.0], 0.5, 1);
        let measured = 0.5 * (plus_c[0] + minus_c[0]);
        assert!((measured - predicted[0]).abs() < 1e-3 * predicted[0].abs());
    }

    #[test]
    fn the_cross_terms_are_the_off_diagonal_second_order_part() {
        // Finite differences: with delta = e (x_j, x_k), the mixed second
        // difference of p_i is 4 e^2 H_ijk x_j x_k; the controlled value must
        // keep only the diagonal part, up to third order.
        let losses = vec![0.3, 0.5, 0.45, 0.1];
        let mu = 0.2;
        let at = Point {
            sample_losses: losses.iter().map(|&f| vec![f]).collect(),
            weights: softmax(&losses, mu),
            variances: vec![0.0; 4],
            counts: vec![1; 4],
            losses: losses.clone(),
            mu,
        };
        let e = 1e-3;
        let shifted = |sj: f64, sk: f64| {
            let mut f = losses.clone();
            f[1] += sj * e;
            f[2] += sk * e;
            at.deviations(&f)
        };
        let (pp, pp_c) = shifted(1.0, 1.0);
        let (pm, pm_c) = shifted(1.0, -1.0);
        let (mp, mp_c) = shifted(-1.0, 1.0);
        let (mm, mm_c) = shifted(-1.0, -1.0);
        for i in 0..4 {
            let mixed_plain = pp[i] - pm[i] - mp[i] + mm[i];
            let mixed_controlled = pp_c[i] - pm_c[i] - mp_c[i] + mm_c[i];
            assert!(mixed_plain.abs() > 1e-7, "{mixed_plain}");
            assert!(
                mixed_controlled.abs() < 1e-3 * mixed_plain.abs(),
                "task {i}: {mixed_controlled} vs {mixed_plain}"
            );
        }
    }

    #[test]
    fn minibatch_losses_equal_evaluate_minibatch() {
        let p = params();
        for kind in ["least_squares", "logistic"] {
            let family = build_family(kind, &p.family, 3, 7).unwrap();
            let theta = DVector::from_fn(family.dim(), |i, _| 0.1 * i as f64 - 0.3);
            let at = Point::new(family.as_ref(), &theta, 0.3).unwrap();
            let mut rng = StdRng::seed_from_u64(5);
            let mut rows: Vec<Vec<usize>> = at.counts.iter().map(|_| vec![0; 17]).collect();
            draw_rows(&mut rng, &at.counts, &mut rows);
            let mut mine = vec![0.0; 3];
            at.minibatch_losses(&rows, &mut mine);
            let mut eval = Evaluation::new(3, family.dim());
            assert!(family.evaluate_minibatch(&theta, &rows, &mut |_, w| w.fill(0.0), &mut eval));
            for (a, b) in mine.iter().zip(&eval.losses) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{kind}: {a} vs {b}"
                );
            }
            // The full-data mean of the per-row losses is the task loss.
            for (values, f) in at.sample_losses.iter().zip(&at.losses) {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                assert!((mean - f).abs() <= 1e-12 * f.abs().max(1.0));
            }
        }
    }
}
