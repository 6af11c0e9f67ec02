//! Check (d): strongly convex tasks, softmax-gd with a fixed temperature.
//!
//! Every task is lambda-strongly convex, so `F_mu` is lambda-strongly convex
//! and `L_mu`-smooth on the ball (`L_mu = L + G^2/mu`, G over the ball), and
//! gradient descent with step `1/L_mu` contracts `F_mu(theta_T) - min F_mu` by
//! `rho = 1 - lambda/L_mu` per step. Measured: `F_mu(theta_T) - c` with `c` the
//! smoothed reference's certified lower bound on `min F_mu`, against the
//! certified form `rho^T (F_mu(theta_0) - c) + (1 - rho^T) eps_ref` at every
//! recorded T, and the contraction factor fitted to `log(F_mu(theta_T) - c)`
//! against T (per seed, where the error is well above `eps_ref`) no slower
//! than `rho` (docs/THEORY.md#strongly-convex-tasks).

use crate::error::Error;
use crate::experiments::reference::smoothed_reference;
use crate::experiments::setup::{build_family, FamilyParams};
use crate::experiments::{
    all_rows, convergence_table, figure, CellRows, Experiment, FamilySeed, Finished, Keyed,
};
use crate::family::Evaluation;
use crate::numerics::{log_sum_exp, softmax_into};
use crate::plots::lines::{line_chart, LineSpec};
use crate::plots::{LineTable, Scale};
use crate::solvers::{solve, Method, SolveOptions};
use crate::theory::bounds::{
    linear_rate_factor, smoothed_smoothness, strongly_convex_certified, sublevel_radius,
};
use crate::theory::checks::{bound_holds, contraction_no_slower, Check, Verdict};
use crate::theory::rate_fit::{fit_linear_rate, Window};
use crate::FeasibleSet;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    radius: f64,
    mu: f64,
    iterations: u64,
    record_every: u64,
    family: FamilyParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    t: u64,
    /// F_mu(theta_T) - (certified lower bound on min F_mu).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    smoothed_error: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    bound: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    lambda: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    l_mu: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    step: f64,
    /// rho = 1 - lambda/L_mu.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    factor: f64,
    /// eps_ref: the smoothed reference's certified gap.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    reference_gap: f64,
}

pub struct RateStronglyConvex;

impl Experiment for RateStronglyConvex {
    type Params = P;
    type Cell = FamilySeed;
    type Row = Row;

    fn name(&self) -> &'static str {
        "rate_strongly_convex"
    }

    fn default_params(&self) -> &'static str {
        include_str!("rate_strongly_convex.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        p.seeds.clone()
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<FamilySeed>>, crate::InputError> {
        crate::error::check_positive("rate_strongly_convex.radius", p.radius)?;
        crate::error::check_positive("rate_strongly_convex.mu", p.mu)?;
        if p.iterations == 0 || p.record_every == 0 {
            return crate::error::invalid(
                "rate_strongly_convex.iterations",
                "iterations and record_every must be positive",
            );
        }
        Ok(FamilySeed::grid(&p.families, &p.seeds))
    }

    fn run_cell(&self, p: &P, cell: &FamilySeed) -> Result<Vec<Row>, Error> {
        let (kind, seed) = (cell.family.as_str(), cell.seed);
        let family = build_family(kind, &p.family, p.family.tasks, seed)?;
        let set = FeasibleSet::with_radius(p.radius);
        let lambda = family.strong_convexity();
        if lambda.is_nan() || lambda <= 0.0 {
            return Err(crate::InputError::new(
                "rate_strongly_convex.families",
                format!("{kind} (seed {seed}) is not strongly convex (lambda = {lambda})"),
            )
            .into());
        }
        let smoothed = smoothed_reference(&family, set, p.mu, 1e-12, 100_000)?;
        // G and L_mu over the ball that descent provably stays in (the
        // sublevel set of F_mu(theta_0) and one step around it), not over the
        // whole feasible ball; the run takes the step 1/L_mu of those
        // constants (docs/THEORY.md#tight-constants).
        let theta0 = DVector::zeros(family.dim());
        let mut eval = Evaluation::new(family.num_tasks(), family.dim());
        family.evaluate(&theta0, &mut |f, w| softmax_into(f, p.mu, w), &mut eval)?;
        let initial_upper = log_sum_exp(&eval.losses, p.mu) - smoothed.min_lower;
        let center = smoothed.distance_from(&theta0, lambda);
        let region =
            sublevel_radius(center, initial_upper, lambda, p.mu, family.smoothness()).min(p.radius);
        let g = family.gradient_bound_on_ball(region);
        let l_mu = smoothed_smoothness(family.smoothness(), g, p.mu);
        let run = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::SoftmaxGd,
                iterations: p.iterations,
                mu: Some(p.mu),
                step: Some(1.0 / l_mu),
                record_trace: true,
                certify_every: Some(p.iterations),
                ..Default::default()
            },
        )?;
        let step = run.step.unwrap_or(f64::NAN);
        let error =
            |t: u64| run.trace[t as usize].smoothed_loss.unwrap_or(f64::NAN) - smoothed.min_lower;
        let initial = error(0);
        Ok((0..=p.iterations)
            .step_by(p.record_every as usize)
            .chain((!p.iterations.is_multiple_of(p.record_every)).then_some(p.iterations))
            .map(|t| {
                // The contraction needs a step of at most 1/L_mu (NaN fails the check).
                let bound = if step <= 1.0 / l_mu {
                    strongly_convex_certified(t, lambda, l_mu, initial, smoothed.certified_gap)
                } else {
                    f64::NAN
                };
                Row {
                    family: kind.to_string(),
                    seed,
                    t,
                    smoothed_error: error(t),
                    bound,
                    lambda,
                    l_mu,
                    step,
                    factor: linear_rate_factor(lambda, l_mu),
                    reference_gap: smoothed.certified_gap,
                }
            })
            .collect())
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
        let table = convergence_table(&p.families, &rows, |r| {
            (&r.family, r.seed, r.t, r.smoothed_error, r.bound)
        });
        let name = "rate_strongly_convex";
        let csv = out.join(format!("{name}.csv"));
        table.write_csv(&csv).map_err(|e| Error::io("", e))?;
        let drawn = LineTable::read_csv(&csv).map_err(|e| Error::io("", e))?;
        let mut spec = LineSpec::convergence("iteration T", "F_μ(θ_T) − min F_μ (certified)");
        spec.x_scale = Scale::Linear;
        line_chart(&drawn, &spec, &out.join(name)).map_err(|e| Error::io("", e))?;
        finished.figures.push(figure(
            name,
            format!(
                "Strongly convex tasks, softmax-gd with fixed μ = {} and step 1/L_μ on the ball ‖θ‖ ≤ {}: certified optimisation error F_μ(θ_T) − min F_μ (median and 10–90% band over seeds {:?}, semi-log) and the linear bound (1 − λ/L_μ)^T (F_μ(θ_0) − min F_μ) (dashed, median over seeds).",
                p.mu, p.radius, p.seeds
            ),
        ));
        Ok(finished)
    }
}

/// Fits the contraction factor of one run where its error is well above the
/// reference's certified gap (below that the measurement is the reference's
/// error, not the run's), and compares it with `rho = 1 - lambda/L_mu`.
fn contraction(rows: &[&Row]) -> Verdict {
    let (x, y): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .filter(|r| r.smoothed_error > 100.0 * r.reference_gap.max(1e-13))
        .map(|r| (r.t as f64, r.smoothed_error))
        .unzip();
    let factor = rows.iter().map(|r| r.factor).fold(f64::NAN, f64::max);
    match fit_linear_rate(&x, &y, Window::all()) {
        Ok(fit) => contraction_no_slower(&fit, factor),
        Err(e) => Verdict {
            passed: false,
            measured: Value::Null,
            theory: json!(factor),
            detail: format!("not evaluated: {e}"),
            slack: None,
        },
    }
}

/// The checks, from the rows alone (a test feeds fabricated rows).
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
        // At T = 0 the bound is the initial error itself (equal by
        // construction), which would always be the worst ratio.
        let after: Vec<&Row> = mine.iter().copied().filter(|r| r.t > 0).collect();
        let x: Vec<f64> = after.iter().map(|r| r.t as f64).collect();
        let measured: Vec<f64> = after.iter().map(|r| r.smoothed_error).collect();
        let bound: Vec<f64> = after.iter().map(|r| r.bound).collect();
        checks.push(bound_holds(&x, &measured, &bound).named(format!(
            "d/{family}: strongly convex, F_mu(theta_T) - min F_mu <= (1 - lambda/L_mu)^T (F_mu(theta_0) - min F_mu)"
        )));
        // One fit per seed: each run has its own L_mu, hence its own rho.
        for seed in &p.seeds {
            let run: Vec<&Row> = mine.iter().copied().filter(|r| r.seed == *seed).collect();
            checks.push(contraction(&run).named(format!(
                "d/{family}/seed{seed}: strongly convex, contraction factor no slower than 1 - lambda/L_mu"
            )));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("rate_strongly_convex.toml"), false).unwrap()
    }

    /// Errors contracting by `measured_factor` per step against a theory of 0.99.
    fn rows(measured_factor: f64) -> Vec<Row> {
        let p = params();
        let mut rows = Vec::new();
        for family in &p.families {
            for &seed in &p.seeds {
                for t in (0..=2000).step_by(20) {
                    rows.push(Row {
                        family: family.clone(),
                        seed,
                        t,
                        smoothed_error: 5.0 * measured_factor.powf(t as f64),
                        bound: strongly_convex_certified(t, 1.0, 100.0, 5.0, 1e-12),
                        lambda: 1.0,
                        l_mu: 100.0,
                        step: 0.01,
                        factor: 0.99,
                        reference_gap: 1e-12,
                    });
                }
            }
        }
        rows
    }

    #[test]
    fn a_fast_enough_contraction_passes() {
        let checks = verdicts(&params(), &rows(0.98));
        assert_eq!(checks.len(), 12);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    }

    #[test]
    fn a_too_slow_contraction_fails() {
        // Contracting by 0.995 per step: above the 0.99^T bound, slower factor.
        let checks = verdicts(&params(), &rows(0.995));
        assert!(checks.iter().all(|c| !c.passed), "{checks:?}");
    }

    #[test]
    fn errors_at_the_reference_floor_are_not_fitted() {
        // A run that reaches the reference's floor and stays there: the flat
        // tail is the reference's error, so the fit sees only the decay.
        let mut rows = rows(0.98);
        for r in rows.iter_mut() {
            r.smoothed_error = r.smoothed_error.max(5e-13);
        }
        assert!(verdicts(&params(), &rows).iter().all(|c| c.passed));
    }
}
