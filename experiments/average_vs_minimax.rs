//! Figure: average (ERM) against minimax pre-training, task by task.
//!
//! On an imbalanced family (many similar tasks plus a few outliers), the final
//! loss of every task under `average` (gradient descent on the mean loss),
//! `softmax-gd` (fixed temperature) and the exact minimax point. Checks, per
//! family over every seed, both refutable only by a wrong certificate or a
//! wrong reference:
//! - minimax is no worse than average on the worst task, up to its own
//!   certified gap: `F(theta_sm) <= F(theta_avg) + gap_sm` (since
//!   `F(theta_sm) - gap_sm = D(p_sm) <= OPT <= F(theta_avg)`);
//! - its worst-task loss is within its certified gap of the exact OPT:
//!   `F(theta_sm) - OPT <= gap_sm`, tested as `F(theta_sm) - opt_upper <= gap_sm`
//!   (`opt_upper >= OPT` from the exact reference), i.e. `D(p_sm) <= opt_upper`.
//!
//! See docs/THEORY.md#certificates.

use crate::error::Error;
use crate::experiments::reference::unconstrained_reference;
use crate::experiments::setup::{build_family, median, FamilyParams};
use crate::experiments::{all_rows, figure, CellRows, Experiment, FamilySeed, Finished, Keyed};
use crate::plots::bars::{grouped_bar_chart, BarSpec};
use crate::plots::BarTable;
use crate::solvers::{solve, Method, SolveOptions};
use crate::theory::checks::{bound_holds, Check};
use crate::FeasibleSet;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    mu: f64,
    iterations: u64,
    reference_radius: f64,
    figure_seed: u64,
    family: FamilyParams,
}

/// One (family, seed): per-task final losses of the three solutions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    outliers: usize,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    average_losses: Vec<f64>,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    minimax_losses: Vec<f64>,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    exact_losses: Vec<f64>,
    /// Worst-task losses F of the average and softmax-gd points.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    average_max: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    minimax_max: f64,
    /// softmax-gd's certified gap F(theta_sm) - D(p_sm).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    minimax_gap: f64,
    /// The exact reference: opt_lower <= OPT <= opt_upper.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    opt_lower: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    opt_upper: f64,
    reference_method: String,
}

pub struct AverageVsMinimax;

impl Experiment for AverageVsMinimax {
    type Params = P;
    type Cell = FamilySeed;
    type Row = Row;

    fn name(&self) -> &'static str {
        "average_vs_minimax"
    }

    fn default_params(&self) -> &'static str {
        include_str!("average_vs_minimax.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        p.seeds.clone()
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<FamilySeed>>, crate::InputError> {
        if !p.seeds.contains(&p.figure_seed) {
            return Err(crate::InputError::new(
                "figure_seed",
                "must be one of `seeds`",
            ));
        }
        Ok(FamilySeed::grid(&p.families, &p.seeds))
    }

    fn run_cell(&self, p: &P, cell: &FamilySeed) -> Result<Vec<Row>, Error> {
        let (kind, seed) = (cell.family.as_str(), cell.seed);
        let family = build_family(kind, &p.family, p.family.tasks, seed)?;
        // Unconstrained; each method's default step rule.
        let set = FeasibleSet::Unconstrained;
        let reference = unconstrained_reference(&family, p.reference_radius)?;
        let run = |method: Method, mu: Option<f64>| {
            solve(
                family.clone(),
                set,
                &SolveOptions {
                    method,
                    iterations: p.iterations,
                    mu,
                    certify_every: Some(p.iterations),
                    ..Default::default()
                },
            )
        };
        let average = run(Method::Average, None)?;
        let minimax = run(Method::SoftmaxGd, Some(p.mu))?;
        let mut exact_losses = vec![0.0; family.num_tasks()];
        family.losses(
            &DVector::from_column_slice(&reference.theta),
            &mut exact_losses,
        )?;
        let row = Row {
            family: kind.to_string(),
            seed,
            outliers: p.family.outliers.min(family.num_tasks().saturating_sub(1)),
            average_max: average.max_loss,
            minimax_max: minimax.max_loss,
            minimax_gap: minimax.gap,
            average_losses: average.losses,
            minimax_losses: minimax.losses,
            exact_losses,
            opt_lower: reference.opt_lower,
            opt_upper: reference.opt_upper,
            reference_method: reference.method,
        };
        Ok(vec![row])
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
        for family in &p.families {
            let Some(row) = rows
                .iter()
                .find(|r| &r.family == family && r.seed == p.figure_seed)
            else {
                return Err(Error::io(
                    "",
                    format!("no run for {family}, seed {}", p.figure_seed),
                ));
            };
            let name = format!("average_vs_minimax_{family}");
            let mut table = BarTable::new();
            let m = row.average_losses.len();
            for i in 0..m {
                let group = if i + row.outliers >= m {
                    format!("{}*", i + 1)
                } else {
                    format!("{}", i + 1)
                };
                table.push(&group, "average", row.average_losses[i], None);
                table.push(&group, "softmax-gd", row.minimax_losses[i], None);
                table.push(&group, "exact minimax", row.exact_losses[i], None);
            }
            let csv = out.join(format!("{name}.csv"));
            table.write_csv(&csv).map_err(|e| Error::io("", e))?;
            let drawn = BarTable::read_csv(&csv).map_err(|e| Error::io("", e))?;
            grouped_bar_chart(
                &drawn,
                &BarSpec::new("task i (* = outlier)", "final loss f_i(θ)"),
                &out.join(&name),
            )
            .map_err(|e| Error::io("", e))?;
            finished.figures.push(figure(&name, caption(p, &rows, row)));
        }
        Ok(finished)
    }
}

/// The checks, from the rows alone (a test feeds fabricated rows).
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
        let complete = mine.len() == p.seeds.len();
        let seeds: Vec<f64> = mine.iter().map(|r| r.seed as f64).collect();
        let not_all = |mut c: Check| {
            if !complete {
                c.passed = false;
                c.detail = format!(
                    "{} of {} seeds present; {}",
                    mine.len(),
                    p.seeds.len(),
                    c.detail
                );
            }
            c
        };

        let measured: Vec<f64> = mine.iter().map(|r| r.minimax_max).collect();
        let bound: Vec<f64> = mine.iter().map(|r| r.average_max + r.minimax_gap).collect();
        checks.push(not_all(bound_holds(&seeds, &measured, &bound).named(format!(
            "avg-vs-minimax/{family}: softmax-gd's worst-task loss <= average's + its certified gap (x = seed)"
        ))));

        let measured: Vec<f64> = mine.iter().map(|r| r.minimax_max - r.opt_upper).collect();
        let bound: Vec<f64> = mine.iter().map(|r| r.minimax_gap).collect();
        checks.push(not_all(bound_holds(&seeds, &measured, &bound).named(format!(
            "avg-vs-minimax/{family}: softmax-gd's worst-task loss - exact OPT <= its certified gap (x = seed)"
        ))));
    }
    checks
}

fn caption(p: &P, rows: &[Row], shown: &Row) -> String {
    let mine: Vec<&Row> = rows.iter().filter(|r| r.family == shown.family).collect();
    let excess: Vec<f64> = mine
        .iter()
        .map(|r| (r.average_max - r.opt_upper) / r.opt_upper.abs().max(1e-300))
        .collect();
    let gaps: Vec<f64> = mine.iter().map(|r| r.minimax_gap).collect();
    // The price of minimax on the average loss.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let price: Vec<f64> = mine
        .iter()
        .map(|r| {
            let (a, e) = (mean(&r.average_losses), mean(&r.exact_losses));
            (e - a) / a.abs().max(1e-300)
        })
        .collect();
    let m = shown.average_losses.len();
    // Is the average solution's worst task an outlier (the last `outliers` tasks)?
    let worst_is_outlier = |r: &Row| {
        let n = r.average_losses.len();
        r.average_losses
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .is_some_and(|(i, _)| i + r.outliers >= n)
    };
    let outlier_worst = mine.iter().filter(|r| worst_is_outlier(r)).count();
    format!(
        "Final loss f_i(θ) of every task on an imbalanced {} family ({} similar tasks plus {} outliers, marked *; seed {}) under average pre-training (gradient descent on the mean loss), softmax-gd (μ = {}, {} iterations, unconstrained) and the exact minimax point ({}); dashed lines mark each method's worst-task loss. Over seeds {:?} (medians): the average solution's worst task is an outlier in {} of {} seeds and its loss exceeds OPT by {:.0}%; softmax-gd's certified gap is {:.1e}; the exact minimax point raises the mean loss by {:+.0}% over the average solution (the price of robustness).",
        shown.family.replace('_', " "),
        m - shown.outliers,
        shown.outliers,
        shown.seed,
        p.mu,
        p.iterations,
        shown.reference_method,
        p.seeds,
        outlier_worst,
        mine.len(),
        100.0 * median(&excess),
        median(&gaps),
        100.0 * median(&price)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("average_vs_minimax.toml"), false).unwrap()
    }

    fn rows() -> Vec<Row> {
        let p = params();
        p.families
            .iter()
            .flat_map(|family| {
                p.seeds.iter().map(move |&seed| Row {
                    family: family.clone(),
                    seed,
                    outliers: 1,
                    average_losses: vec![0.2, 0.3, 1.5],
                    minimax_losses: vec![0.9, 1.0, 1.01],
                    exact_losses: vec![0.9, 1.0, 1.0],
                    average_max: 1.5,
                    minimax_max: 1.01,
                    minimax_gap: 0.02,
                    opt_lower: 1.0 - 1e-9,
                    opt_upper: 1.0,
                    reference_method: "exact".into(),
                })
            })
            .collect()
    }

    #[test]
    fn consistent_runs_pass() {
        let checks = verdicts(&params(), &rows());
        assert_eq!(checks.len(), 6);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn minimax_worse_than_average_beyond_its_gap_fails() {
        let mut bad = rows();
        bad[0].average_max = 0.98; // below minimax's 1.01 - 0.02: impossible
        let checks = verdicts(&params(), &bad);
        assert!(!checks[0].passed, "{}", checks[0].detail);
        assert!(checks[1..].iter().all(|c| c.passed));
    }

    #[test]
    fn a_gap_that_does_not_cover_opt_fails() {
        // F - OPT = 0.05 but the certified gap says 0.02: the certificate is wrong.
        let mut bad = rows();
        bad[4].minimax_max = 1.05;
        bad[4].average_max = 1.5;
        let checks = verdicts(&params(), &bad);
        assert!(!checks[3].passed, "{}", checks[3].detail);
        // And a missing seed is never a pass.
        let mut missing = rows();
        missing.remove(8);
        assert!(!verdicts(&params(), &missing)[5].passed);
    }
}
