//! `taskrobust transfer SCENARIO.json` (or `--scenario NAME`): worst-task
//! sample complexity after minimax vs average pre-training.

use super::solve::OutputFormat;
use super::Failure;
use crate::error::InputError;
use crate::transfer::report::{format_table, run_transfer, transfer_json, TransferOptions};
use crate::transfer::scenario::Scenario;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Scenario file (JSON; see README). Omit to use --scenario.
    pub scenario_file: Option<PathBuf>,
    /// A built-in scenario: pattern-semantic or balanced.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

pub fn run_transfer_cli(args: &TransferArgs) -> Result<String, Failure> {
    let mut scenario = match (&args.scenario_file, &args.scenario) {
        (Some(path), None) => Scenario::from_file(path)?,
        (None, Some(name)) => Scenario::built_in(name)?,
        (Some(_), Some(_)) => {
            return Err(InputError::new(
                "--scenario",
                "give a scenario file or --scenario NAME, not both",
            )
            .into())
        }
        (None, None) => {
            return Err(InputError::new(
                "SCENARIO",
                "give a scenario file or --scenario NAME (pattern-semantic, balanced)",
            )
            .into())
        }
    };
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let report = run_transfer(&scenario, &TransferOptions::default())?;
    match args.format {
        OutputFormat::Json => {
            let text = serde_json::to_string(&transfer_json(&report)).map_err(|e| Failure {
                status: 1,
                message: e.to_string(),
            })?;
            Ok(format!("{text}\n"))
        }
        OutputFormat::Table => Ok(format_table(&report)),
    }
}
