//! Transfer experiment (issue 4): the built-in scenarios `pattern-semantic`
//! and `balanced`, the imbalance sweep, checks (a)-(d) and four figures.
//! The work lives in `crate::transfer`; this file splits it into cells.

use crate::error::Error;
use crate::experiments::{figure, CellRows, Experiment, Finished, Keyed};
use crate::theory::checks::Check;
use crate::transfer::experiment::{
    sweep_options, sweep_point, transfer_checks, write_sweep_csv, write_transfer_csvs, SweepPoint,
};
use crate::transfer::figures::{per_task_figure, sweep_figure, weights_figure, worst_risk_figure};
use crate::transfer::report::{run_transfer, TransferOptions, TransferReport};
use crate::transfer::scenario::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    seed: u64,
    replicates: usize,
    sweep_total: usize,
    n_grid: Vec<usize>,
}

pub struct Transfer;

/// The built-in scenarios the experiment runs whole.
const SCENARIOS: [&str; 2] = ["pattern-semantic", "balanced"];

/// One unit of work of the transfer experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cell {
    /// A built-in scenario, run whole.
    Scenario(String),
    /// One level of the imbalance sweep: this many semantic tasks.
    Sweep { semantic: usize },
}

/// What a cell produces: a scenario's report, or a point of the sweep
/// (written as the bare record, as before cells were typed).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Row {
    Scenario(Box<TransferReport>),
    Sweep(SweepPoint),
}

impl<'de> Deserialize<'de> for Row {
    /// A record with a `scenario` is a report, any other a sweep point (the
    /// error, if it fits neither, is the one of the type it claims to be).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = Value::deserialize(d)?;
        if value.get("scenario").is_some() {
            serde_json::from_value(value)
                .map(|r| Row::Scenario(Box::new(r)))
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Row::Sweep)
                .map_err(D::Error::custom)
        }
    }
}

/// The scenario `name` with the experiment's parameters; an invalid one
/// names its key (`transfer.<field>`, which the runner places in the
/// parameter file).
fn scenario(name: &str, p: &P) -> Result<Scenario, crate::InputError> {
    let mut s = Scenario::built_in(name)?;
    s.seed = p.seed;
    s.replicates = p.replicates;
    s.n_grid = p.n_grid.clone();
    // Re-validate: the parameters may come from a user's TOML (name it).
    s.to_file()
        .check()
        .map_err(|e| crate::InputError::new(format!("transfer.{}", e.field), e.message))
}

fn missing(key: &str, why: String) -> Error {
    Error::io("transfer", format!("cell {key}: {why}"))
}

impl Experiment for Transfer {
    type Params = P;
    type Cell = Cell;
    type Row = Row;

    fn name(&self) -> &'static str {
        "transfer"
    }

    fn default_params(&self) -> &'static str {
        include_str!("transfer.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        vec![p.seed]
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<Cell>>, crate::InputError> {
        // Validate (and size) both scenarios before any cell runs.
        for name in SCENARIOS {
            scenario(name, p)?;
        }
        let mut cells: Vec<Keyed<Cell>> = SCENARIOS
            .iter()
            .map(|s| Keyed {
                key: s.to_string(),
                cell: Cell::Scenario(s.to_string()),
            })
            .collect();
        for semantic in 1..=p.sweep_total / 2 {
            cells.push(Keyed {
                key: format!("sweep/{semantic}"),
                cell: Cell::Sweep { semantic },
            });
        }
        Ok(cells)
    }

    fn run_cell(&self, p: &P, cell: &Cell) -> Result<Vec<Row>, Error> {
        Ok(vec![match cell {
            Cell::Scenario(name) => Row::Scenario(Box::new(run_transfer(
                &scenario(name, p)?,
                &TransferOptions::default(),
            )?)),
            Cell::Sweep { semantic } => Row::Sweep(sweep_point(
                p.sweep_total,
                *semantic,
                p.seed,
                &sweep_options(),
            )?),
        }])
    }

    fn finish(
        &self,
        p: &P,
        cells: &[CellRows<'_, Cell, Row>],
        out: &Path,
    ) -> Result<Finished, Error> {
        let report = |name: &str| -> Result<&TransferReport, Error> {
            let cell = cells
                .iter()
                .find(|c| matches!(c.cell, Cell::Scenario(s) if s == name))
                .ok_or_else(|| missing(name, "not planned".into()))?;
            match (cell.rows.as_slice(), cell.error) {
                ([Row::Scenario(report)], None) => Ok(report),
                (_, Some(error)) => Err(missing(name, format!("failed: {error}"))),
                (rows, None) => Err(missing(
                    name,
                    format!("expected one scenario report, got {} rows", rows.len()),
                )),
            }
        };
        let pattern = report("pattern-semantic")?;
        let balanced = report("balanced")?;
        // A failed sweep cell is already a failed check; the sweep omits it.
        let sweep: Vec<SweepPoint> = cells
            .iter()
            .filter(|c| matches!(c.cell, Cell::Sweep { .. }) && c.error.is_none())
            .map(|c| match c.rows.as_slice() {
                [Row::Sweep(point)] => Ok(point.clone()),
                rows => Err(missing(
                    c.key,
                    format!("expected one sweep point, got {} rows", rows.len()),
                )),
            })
            .collect::<Result<_, _>>()?;
        let checks: Vec<Check> = transfer_checks(pattern, balanced);

        // Tables first (tidy CSVs), then the figures from their own CSVs.
        std::fs::create_dir_all(out)?;
        write_transfer_csvs(pattern, &scenario("pattern-semantic", p)?, out)?;
        write_transfer_csvs(balanced, &scenario("balanced", p)?, out)?;
        write_sweep_csv(&sweep, out)?;
        let drawn = vec![
            worst_risk_figure(pattern, out)?,
            worst_risk_figure(balanced, out)?,
            sweep_figure(&sweep, out)?,
            per_task_figure(pattern, out)?,
            weights_figure(pattern, out)?,
        ];
        Ok(Finished {
            checks,
            figures: drawn
                .into_iter()
                .map(|f| figure(&f.name, f.caption))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point() -> SweepPoint {
        SweepPoint {
            pattern_share: 0.25,
            pattern_tasks: 1,
            semantic_tasks: 3,
            none_n_star: None,
            average_n_star: Some(40),
            minimax_n_star: Some(20),
            average_worst_bias: 0.5,
            minimax_worst_bias: 0.25,
            fantope_lower_bound: 0.125,
        }
    }

    #[test]
    fn a_sweep_row_is_the_bare_record_and_reads_back() {
        let json = serde_json::to_value(Row::Sweep(point())).unwrap();
        assert_eq!(json, serde_json::to_value(point()).unwrap());
        match serde_json::from_value::<Row>(json).unwrap() {
            Row::Sweep(p) => assert_eq!(p, point()),
            Row::Scenario(_) => panic!("a sweep point read as a report"),
        }
    }

    #[test]
    fn a_row_that_fits_neither_is_an_error() {
        let mut json = serde_json::to_value(point()).unwrap();
        json["pattern_tasks"] = Value::from("one");
        assert!(serde_json::from_value::<Row>(json).is_err());
        let report = serde_json::json!({"scenario": {"name": "x"}});
        assert!(serde_json::from_value::<Row>(report).is_err());
    }
}
