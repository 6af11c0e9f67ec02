//! Check (h): the temperature sweep of softmax-gd at a fixed horizon T.
//!
//! For temperatures around the predicted best `mu_hat = G R / sqrt(2 T ln M)`
//! (the minimiser of the bound `U(mu) = mu ln M + (L + G^2/mu) R^2 / (2T)`),
//! measured: the certified suboptimality `F(theta_T) - OPT_lower`. Checks: the
//! bound holds at every mu, and the measured curve is U-shaped (smoothing
//! bias at large mu, optimisation error at small mu). Where the measured
//! minimum lies relative to `mu_hat` is reported, not checked: the bound is
//! an upper bound, and its minimiser need not be the measured one. See
//! docs/THEORY.md#temperature-sweep.

use crate::error::Error;
use crate::experiments::reference::minimax_reference;
use crate::experiments::setup::{build_family, median, median_curve, FamilyParams};
use crate::experiments::{all_rows, figure, CellRows, Experiment, FamilySeed, Finished, Keyed};
use crate::plots::lines::{xy_chart, LineSpec};
use crate::plots::table::write_rows;
use crate::plots::{LineTable, Scale};
use crate::solvers::{solve, Method, SolveOptions};
use crate::theory::bounds::{predicted_best_mu, temperature_sweep_bound};
use crate::theory::checks::{bound_holds, Check, Verdict};
use crate::FeasibleSet;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    radius: f64,
    iterations: u64,
    half_octaves: i32,
    family: FamilyParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    /// mu = mu_hat * 2^(k/2).
    k: i32,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    mu: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    mu_hat: f64,
    /// F(theta_T) - OPT_lower.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    suboptimality: f64,
    /// U(mu) + the reference's certified gap.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    bound: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    smoothness: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    g_ball: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    r_reference: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    reference_gap: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    step: f64,
}

impl Row {
    /// mu / mu_hat.
    fn ratio(&self) -> f64 {
        2f64.powf(f64::from(self.k) / 2.0)
    }
}

pub struct TemperatureSweep;

impl Experiment for TemperatureSweep {
    type Params = P;
    type Cell = FamilySeed;
    type Row = Row;

    fn name(&self) -> &'static str {
        "temperature_sweep"
    }

    fn default_params(&self) -> &'static str {
        include_str!("temperature_sweep.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        p.seeds.clone()
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<FamilySeed>>, crate::InputError> {
        Ok(FamilySeed::grid(&p.families, &p.seeds))
    }

    fn run_cell(&self, p: &P, cell: &FamilySeed) -> Result<Vec<Row>, Error> {
        let (kind, seed) = (cell.family.as_str(), cell.seed);
        let family = build_family(kind, &p.family, p.family.tasks, seed)?;
        let set = FeasibleSet::with_radius(p.radius);
        let m = family.num_tasks();
        let theta0 = DVector::zeros(family.dim());
        let reference = minimax_reference(&family, set, 1e-9)?;
        // The comparator is the reference point u: F(theta_T) - OPT_lower <=
        // mu ln M + (F(u) - OPT_lower) + L_mu ||theta_0 - u||^2 / (2T).
        let r_reference = (&theta0 - DVector::from_column_slice(&reference.theta)).norm();
        // G of the step 1/L_mu on the ball (the solver's default rule).
        let g_ball = family.gradient_bound_on_ball(p.radius);
        let l = family.smoothness();
        let t = p.iterations;
        let mu_hat = predicted_best_mu(g_ball, r_reference, t, m);
        let mut rows = Vec::new();
        for k in -p.half_octaves..=p.half_octaves {
            let mu = mu_hat * 2f64.powf(f64::from(k) / 2.0);
            let run = solve(
                family.clone(),
                set,
                &SolveOptions {
                    method: Method::SoftmaxGd,
                    iterations: t,
                    mu: Some(mu),
                    certify_every: Some(t),
                    ..Default::default()
                },
            )?;
            let row = Row {
                family: kind.to_string(),
                seed,
                k,
                mu,
                mu_hat,
                suboptimality: run.max_loss - reference.opt_lower,
                bound: temperature_sweep_bound(t, mu, m, l, g_ball, r_reference)
                    + reference.certified_gap,
                smoothness: l,
                g_ball,
                r_reference,
                reference_gap: reference.certified_gap,
                step: run.step.unwrap_or(f64::NAN),
            };
            rows.push(row);
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
        write_rows(&out.join("temperature_sweep_rows.csv"), &rows).map_err(|e| Error::io("", e))?;
        // x = mu / mu_hat, so that every seed's predicted best sits at 1.
        let mut table = LineTable::new();
        for family in &p.families {
            let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
            for r in &mine {
                table.measured(family, r.seed, r.ratio(), r.suboptimality);
            }
            for k in -p.half_octaves..=p.half_octaves {
                let at: Vec<&&Row> = mine.iter().filter(|r| r.k == k).collect();
                if let Some(first) = at.first() {
                    let b: Vec<f64> = at.iter().map(|r| r.bound).collect();
                    table.bound(family, first.ratio(), median(&b));
                }
            }
        }
        table.reference("predicted best μ*", 1.0);
        let csv = out.join("temperature_sweep.csv");
        table.write_csv(&csv).map_err(|e| Error::io("", e))?;
        let drawn = LineTable::read_csv(&csv).map_err(|e| Error::io("", e))?;
        let spec = LineSpec::xy(
            "temperature μ / μ*,  μ* = G R / √(2 T ln M)",
            "F(θ_T) − OPT (certified)",
            Scale::Log,
            Scale::Log,
        );
        xy_chart(&drawn, &spec, &out.join("temperature_sweep")).map_err(|e| Error::io("", e))?;
        finished.figures.push(figure(
            "temperature_sweep",
            format!(
                "Softmax-gd at a fixed horizon T = {} with temperatures μ around the bound's minimiser μ* = G R/√(2 T ln M) (dotted line): certified suboptimality F(θ_T) − OPT (median and 10–90% band over seeds {:?}) and the bound μ ln M + (L + G²/μ) R²/(2T) (dashed). Large μ: the smoothing bias dominates; small μ: the step 1/L_μ is too short to make progress in T steps.",
                p.iterations, p.seeds
            ),
        ));
        Ok(finished)
    }
}

/// The curve `y(x)` (x ascending) is U-shaped: its minimum is at an interior
/// point and both ends are strictly above it. `measured` reports where the
/// minimum is (`x_best`; with x = mu/mu_hat, the ratio of the empirical to the
/// predicted best temperature) and how many times the minimum each end is.
/// No larger factor is required: the end values are problem-dependent limits
/// (docs/THEORY.md#temperature-sweep).
fn u_shaped(x: &[f64], y: &[f64]) -> Verdict {
    if x.len() < 3 || x.len() != y.len() || y.iter().any(|v| !v.is_finite()) {
        return Verdict::not_evaluated(format!(
            "need at least 3 finite points, got {} (x) and {} (y)",
            x.len(),
            y.len()
        ));
    }
    let (best, &low) = y
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("non-empty");
    let last = y.len() - 1;
    let interior = best > 0 && best < last;
    let passed = interior && y[0] > low && y[last] > low;
    Verdict {
        passed,
        measured: json!({
            "x_best": x[best],
            "best": low,
            "left_end_over_best": y[0] / low,
            "right_end_over_best": y[last] / low,
        }),
        theory: json!("interior minimum, both ends above it"),
        detail: format!(
            "minimum {:.3e} at x = mu/mu* = {:.3} ({}); the ends are {:.2} and {:.2} times the minimum",
            low,
            x[best],
            if interior { "interior" } else { "at an end: not a U" },
            y[0] / low,
            y[last] / low,
        ),
        slack: None,
    }
}

/// The checks, from the rows alone (a test feeds fabricated rows).
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
        let x: Vec<f64> = mine.iter().map(|r| r.ratio()).collect();
        let measured: Vec<f64> = mine.iter().map(|r| r.suboptimality).collect();
        let bound: Vec<f64> = mine.iter().map(|r| r.bound).collect();
        checks.push(bound_holds(&x, &measured, &bound).named(format!(
            "h/{family}: temperature sweep, F(theta_T) - OPT <= mu ln M + (L + G^2/mu) R^2/(2T) at every mu"
        )));
        let points: Vec<(f64, f64)> = x.iter().copied().zip(measured.iter().copied()).collect();
        let (mx, my) = median_curve(&points);
        checks.push(u_shaped(&mx, &my).named(format!(
            "h/{family}: temperature sweep is U-shaped (interior minimum, both ends above it)"
        )));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("temperature_sweep.toml"), false).unwrap()
    }

    /// A sweep `a c + b / c` (c = mu/mu_hat) below a bound `2 (c + 1/c)`.
    fn rows(a: f64, b: f64) -> Vec<Row> {
        let p = params();
        let mut rows = Vec::new();
        for family in &p.families {
            for &seed in &p.seeds {
                for k in -p.half_octaves..=p.half_octaves {
                    let c = 2f64.powf(f64::from(k) / 2.0);
                    rows.push(Row {
                        family: family.clone(),
                        seed,
                        k,
                        mu: c,
                        mu_hat: 1.0,
                        suboptimality: (a * c + b / c) * (1.0 + 0.01 * seed as f64),
                        bound: 2.0 * (c + 1.0 / c),
                        smoothness: 1.0,
                        g_ball: 1.0,
                        r_reference: 1.0,
                        reference_gap: 0.0,
                        step: 1.0,
                    });
                }
            }
        }
        rows
    }

    #[test]
    fn a_u_shaped_sweep_under_the_bound_passes() {
        let checks = verdicts(&params(), &rows(0.5, 0.1));
        assert_eq!(checks.len(), 6);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
        // The minimum of 0.5 c + 0.1/c is at c = sqrt(0.2), reported as x_best.
        let x_best = checks[1].measured["x_best"].as_f64().unwrap();
        assert!((x_best / 0.2f64.sqrt() - 1.0).abs() < 0.25, "{x_best}");
    }

    #[test]
    fn a_sweep_above_the_bound_or_without_a_u_fails() {
        // 3 c exceeds 2 (c + 1/c) for c > sqrt(2); and it is monotone.
        let checks = verdicts(&params(), &rows(3.0, 0.0));
        assert!(checks.iter().all(|c| !c.passed), "{checks:#?}");
        // Lowest at an end, or an end no higher than the minimum: not a U.
        let v = u_shaped(&[1.0, 2.0, 3.0, 4.0], &[0.4, 0.5, 0.6, 2.0]);
        assert!(!v.passed, "{}", v.detail);
        let v = u_shaped(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.5, 0.6, 0.5]);
        assert!(!v.passed, "{}", v.detail);
        assert!(u_shaped(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.5, 0.6, 0.51]).passed);
        assert!(!u_shaped(&[1.0, 2.0], &[1.0, 0.5]).passed);
        assert!(!u_shaped(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0]).passed);
    }
}
