//! Check (f): the projected subgradient method with the constant step
//! `R / (G sqrt T)` tuned for each horizon T.
//!
//! Measured: `min_{t <= T} F(theta_t) - OPT_lower` (the best iterate, which the
//! solver returns, against the reference's certified lower bound on OPT).
//! Bounds: `G R / sqrt(T)` with the ball constants the step was tuned with
//! (plus the reference's certified gap, the exact accounting of
//! `OPT - OPT_lower`), and the comparator form at the step taken with G
//! measured on the iterates; the fitted log-log slope is no shallower than
//! -1/2. See docs/THEORY.md#subgradient-method.

use crate::error::Error;
use crate::experiments::reference::minimax_reference;
use crate::experiments::setup::{build_family, FamilyParams};
use crate::experiments::{
    all_rows, as_slices, convergence_table, draw_convergence, figure, seed_series, CellRows,
    Experiment, FamilySeed, Finished, Keyed,
};
use crate::plots::table::write_rows;
use crate::solvers::{solve, Method, SolveOptions};
use crate::theory::bounds::{subgradient, subgradient_comparator, subgradient_step};
use crate::theory::checks::{bound_holds, common_rate_matches, Check};
use crate::theory::rate_fit::Window;
use crate::FeasibleSet;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    radius: f64,
    horizons: Vec<u64>,
    fit_from: u64,
    family: FamilyParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    t: u64,
    /// min_{t <= T} F(theta_t) - OPT_lower.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    suboptimality: f64,
    /// G_ball R_ball / sqrt(T) + the reference's certified gap.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    bound_tuned: f64,
    /// (1/T) sum_{t<T} F(theta_t) - OPT_lower: the path average the proof bounds.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    path_average: f64,
    /// (F(u) - OPT_lower) + ||theta_0 - u||^2 / (2 eta T) + eta G_measured^2 / 2, u the reference point.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    bound_comparator: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    g_ball: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    r_ball: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    g_measured: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    r_reference: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    step: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    reference_gap: f64,
}

pub struct RateSubgradient;

impl Experiment for RateSubgradient {
    type Params = P;
    type Cell = FamilySeed;
    type Row = Row;

    fn name(&self) -> &'static str {
        "rate_subgradient"
    }

    fn default_params(&self) -> &'static str {
        include_str!("rate_subgradient.toml")
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
        let theta0 = DVector::zeros(family.dim());
        let reference = minimax_reference(&family, set, 1e-9)?;
        let r_reference = (&theta0 - DVector::from_column_slice(&reference.theta)).norm();
        // The constants the tuned step uses: G over the whole ball, its diameter.
        let g_ball = family.gradient_bound_on_ball(p.radius);
        let r_ball = set.diameter();
        let mut rows = Vec::new();
        for &t in &p.horizons {
            let step = subgradient_step(t, g_ball, r_ball);
            let run = solve(
                family.clone(),
                set,
                &SolveOptions {
                    method: Method::Subgradient,
                    iterations: t,
                    step: Some(step),
                    certify_every: Some(t),
                    record_trace: true,
                    ..Default::default()
                },
            )?;
            let g_measured = run.constants.gradient_bound;
            // trace[k] is theta_k (k = 0..T).
            let path_average = run.trace[..t as usize]
                .iter()
                .map(|r| r.max_loss - reference.opt_lower)
                .sum::<f64>()
                / t as f64;
            let row = Row {
                family: kind.to_string(),
                seed,
                t,
                // The solver returns its best iterate.
                suboptimality: run.max_loss - reference.opt_lower,
                path_average,
                bound_tuned: subgradient(t, g_ball, r_ball) + reference.certified_gap,
                bound_comparator: subgradient_comparator(
                    t,
                    step,
                    g_measured,
                    reference.certified_gap,
                    r_reference,
                ),
                g_ball,
                r_ball,
                g_measured,
                r_reference,
                step,
                reference_gap: reference.certified_gap,
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
        // Every row with its constants, then the figure's table.
        write_rows(&out.join("rate_subgradient_rows.csv"), &rows).map_err(|e| Error::io("", e))?;
        let table = convergence_table(&p.families, &rows, |r| {
            (&r.family, r.seed, r.t, r.suboptimality, r.bound_comparator)
        });
        draw_convergence(
            &table,
            out,
            "rate_subgradient",
            "horizon T",
            "min_t F(θ_t) − OPT (certified)",
        )?;
        finished.figures.push(figure(
            "rate_subgradient",
            format!(
                "Subgradient method with the step R/(G √T) tuned for each horizon T (one run per T): certified suboptimality of the best iterate min_t F(θ_t) − OPT (median and 10–90% band over seeds {:?}) and the bound ||θ_0 − u||²/(2ηT) + ηG²/2 + (F(u) − OPT_lower) at the step taken, with G measured on the iterates and u the reference point (dashed, median over seeds). The tuned form G R/√T with the ball's constants lies above it and is checked too; the slope is fitted for T ≥ {}.",
                p.seeds, p.fit_from
            ),
        ));
        Ok(finished)
    }
}

/// The checks, from the rows alone (a test feeds fabricated rows).
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
        let x: Vec<f64> = mine.iter().map(|r| r.t as f64).collect();
        let measured: Vec<f64> = mine.iter().map(|r| r.suboptimality).collect();
        let tuned: Vec<f64> = mine.iter().map(|r| r.bound_tuned).collect();
        checks.push(bound_holds(&x, &measured, &tuned).named(format!(
            "f/{family}: subgradient, min_t F(theta_t) - OPT <= G R / sqrt(T)"
        )));
        // The proof bounds the path average, which is never below the best iterate.
        let average: Vec<f64> = mine.iter().map(|r| r.path_average).collect();
        let comparator: Vec<f64> = mine.iter().map(|r| r.bound_comparator).collect();
        checks.push(bound_holds(&x, &average, &comparator).named(format!(
            "f/{family}: subgradient, path average (1/T) sum F(theta_t) - OPT <= comparator bound at the step taken"
        )));
        // The path average's rate, two-sided, one series per seed over the
        // stated tail window: with the step tuned to each horizon it is
        // A T^-1/2 + B T^-1 (the approach and the oscillation both scale
        // with the step; the start adds O(1/T)), hence the T^-1/2 correction.
        // The best iterate has no predicted rate (only the bound), so it gets
        // no rate check.
        let window = Window::new(p.fit_from as f64, f64::INFINITY);
        let series = seed_series(&mine, |r| Some((r.seed, r.t as f64, r.path_average)));
        checks.push(
            common_rate_matches(&as_slices(&series), window, Some(0.5), -0.5).named(format!(
                "f/{family}: subgradient, path average decays like 1/sqrt(T) (two-sided, CI width < 0.5)"
            )),
        );
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("rate_subgradient.toml"), false).unwrap()
    }

    fn rows(exponent: f64) -> Vec<Row> {
        let p = params();
        let mut rows = Vec::new();
        for family in &p.families {
            for &seed in &p.seeds {
                for &t in &p.horizons {
                    let tf = t as f64;
                    let level = 1.0 + 0.1 * seed as f64;
                    // Deterministic scatter, so that the fit has an interval.
                    let level = level
                        * if (t / 16).trailing_zeros() % 2 == 0 {
                            1.01
                        } else {
                            0.99
                        };
                    rows.push(Row {
                        family: family.clone(),
                        seed,
                        t,
                        suboptimality: level * tf.powf(exponent),
                        path_average: 2.0 * level * tf.powf(exponent),
                        bound_tuned: 10.0 / tf.sqrt(),
                        bound_comparator: 5.0 / tf.sqrt(),
                        g_ball: 1.0,
                        r_ball: 1.0,
                        g_measured: 1.0,
                        r_reference: 1.0,
                        step: 1.0,
                        reference_gap: 0.0,
                    });
                }
            }
        }
        rows
    }

    #[test]
    fn the_predicted_rate_passes() {
        let checks = verdicts(&params(), &rows(-0.5));
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn a_too_slow_or_too_fast_sequence_fails() {
        // Decays like T^-1/4: crosses both 1/sqrt(T) bounds and fits a shallower slope.
        let checks = verdicts(&params(), &rows(-0.25));
        assert_eq!(checks.len(), 9);
        assert!(checks.iter().all(|c| !c.passed), "{checks:#?}");
        // Like 1/T: under the bounds, but the path average's rate is not the predicted one.
        let checks = verdicts(&params(), &rows(-1.0));
        assert!(checks
            .iter()
            .all(|c| c.passed != c.name.contains("decays like")));
    }
}
