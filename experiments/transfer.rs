//! Transfer experiment (issue 4): the built-in scenarios `pattern-semantic`
//! and `balanced`, the imbalance sweep, checks (a)-(d) and four figures.
//! The work lives in `crate::transfer`; this file splits it into cells.

use crate::error::Error;
use crate::experiments::{figure, Cell, CellResult, Experiment, Finished, Params};
use crate::theory::checks::Check;
use crate::transfer::experiment::{
    sweep_options, sweep_point, transfer_checks, write_sweep_csv, write_transfer_csvs, SweepPoint,
};
use crate::transfer::figures::{per_task_figure, sweep_figure, weights_figure, worst_risk_figure};
use crate::transfer::report::{run_transfer, TransferOptions, TransferReport};
use crate::transfer::scenario::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    seed: u64,
    replicates: usize,
    sweep_total: usize,
    n_grid: Vec<usize>,
}

pub struct Transfer;

fn scenario(name: &str, p: &P, source: &str) -> Result<Scenario, crate::InputError> {
    let mut s = Scenario::built_in(name)?;
    s.seed = p.seed;
    s.replicates = p.replicates;
    s.n_grid = p.n_grid.clone();
    // Re-validate: the parameters may come from a user's TOML (name it).
    s.to_file()
        .check()
        .map_err(|e| crate::InputError::new(format!("{source}: transfer.{}", e.field), e.message))
}

fn io(e: serde_json::Error) -> Error {
    Error::io("", e)
}

impl Experiment for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }

    fn default_params(&self) -> &'static str {
        include_str!("transfer.toml")
    }

    fn seeds(&self, params: &Params) -> Result<Vec<u64>, crate::InputError> {
        Ok(vec![params.typed::<P>(self.name())?.seed])
    }

    fn cells(&self, params: &Params) -> Result<Vec<Cell>, crate::InputError> {
        let p: P = params.typed(self.name())?;
        // Validate (and size) both scenarios before any cell runs.
        for name in ["pattern-semantic", "balanced"] {
            scenario(name, &p, &params.source)?;
        }
        let mut cells: Vec<Cell> = ["pattern-semantic", "balanced"]
            .iter()
            .map(|s| Cell {
                key: s.to_string(),
                spec: json!({"scenario": s}),
            })
            .collect();
        for semantic in 1..=p.sweep_total / 2 {
            cells.push(Cell {
                key: format!("sweep/{semantic}"),
                spec: json!({"semantic": semantic}),
            });
        }
        Ok(cells)
    }

    fn run_cell(&self, params: &Params, cell: &Cell) -> Result<Vec<Value>, Error> {
        let p: P = params.typed(self.name())?;
        if let Some(name) = cell.spec["scenario"].as_str() {
            let report = run_transfer(
                &scenario(name, &p, &params.source)?,
                &TransferOptions::default(),
            )?;
            return Ok(vec![serde_json::to_value(report).map_err(io)?]);
        }
        let semantic = cell.integer("semantic")? as usize;
        let point = sweep_point(p.sweep_total, semantic, p.seed, &sweep_options())?;
        Ok(vec![serde_json::to_value(point).map_err(io)?])
    }

    fn finish(
        &self,
        params: &Params,
        results: &[CellResult],
        out: &Path,
    ) -> Result<Finished, Error> {
        let p: P = params.typed(self.name())?;
        let report = |key: &str| -> Result<TransferReport, Error> {
            let cell = results
                .iter()
                .find(|r| r.key == key)
                .ok_or_else(|| Error::io("transfer", format!("missing cell {key}")))?;
            serde_json::from_value(cell.rows[0].clone()).map_err(io)
        };
        let pattern = report("pattern-semantic")?;
        let balanced = report("balanced")?;
        let sweep: Vec<SweepPoint> = results
            .iter()
            .filter(|r| r.key.starts_with("sweep/"))
            .map(|r| serde_json::from_value(r.rows[0].clone()).map_err(io))
            .collect::<Result<_, _>>()?;
        let checks: Vec<Check> = transfer_checks(&pattern, &balanced);

        // Tables first (tidy CSVs), then the figures from their own CSVs.
        std::fs::create_dir_all(out)?;
        write_transfer_csvs(
            &pattern,
            &scenario("pattern-semantic", &p, &params.source)?,
            out,
        )?;
        write_transfer_csvs(&balanced, &scenario("balanced", &p, &params.source)?, out)?;
        write_sweep_csv(&sweep, out)?;
        let drawn = vec![
            worst_risk_figure(&pattern, out)?,
            worst_risk_figure(&balanced, out)?,
            sweep_figure(&sweep, out)?,
            per_task_figure(&pattern, out)?,
            weights_figure(&pattern, out)?,
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
