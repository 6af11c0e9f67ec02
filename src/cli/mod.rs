//! The `taskrobust` command line: argument parsing and the commands' output.
//! Bad input ends with exit status 2 and one line on stderr naming the field.

mod generate;
mod gpu_check;
mod reproduce;
mod solve;
mod transfer;

pub use generate::{run_generate, GenerateArgs};
pub use gpu_check::{run_gpu_check_cli, GpuCheckCli};
pub use reproduce::{run_merge, run_reproduce, summary, MergeArgs, ReproduceArgs};
pub use transfer::{run_transfer_cli, TransferArgs};

pub use solve::{
    format_table, outcome_json, run_solve, solve_loaded, tolerance_warning, SolveArgs,
};

use clap::{Parser, Subcommand};

/// Task-robust (minimax) pre-training, made checkable.
#[derive(Debug, Parser)]
#[command(name = "taskrobust", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Solve min_theta max_i f_i(theta) for a problem file, with a certified gap.
    Solve(SolveArgs),
    /// Worst-task sample complexity in a linear-regression transfer model.
    Transfer(TransferArgs),
    /// Write a seeded synthetic problem (JSON + .npy data files) for solve or other tools.
    Generate(GenerateArgs),
    /// Run every experiment: figures, CSV tables, report.json and REPORT.md.
    Reproduce(ReproduceArgs),
    /// Combine the parts of a sharded `reproduce --shard i/N` run.
    Merge(MergeArgs),
    /// Full-scale check on a CUDA GPU (needs `--features gpu` and the CUDA libraries).
    GpuCheck(GpuCheckCli),
}

/// How a command ended: the exit status and what to print on stderr.
#[derive(Debug)]
pub struct Failure {
    pub status: i32,
    pub message: String,
}

/// The core crate names options by their fields (`SolveOptions::mu`); the
/// command line by its flags. Flag names live here only.
const FLAGS: [(&str, &str); 12] = [
    ("iterations", "--iters"),
    ("mu", "--mu"),
    ("step", "--step"),
    ("weight_step", "--weight-step"),
    ("distance", "--distance"),
    ("batch_size", "--batch-size"),
    ("ema", "--ema"),
    ("certify_every", "--certify-every"),
    ("checkpoint_every", "--checkpoint-every"),
    ("checkpoint", "--checkpoint"),
    ("init", "--init"),
    ("method", "--method"),
];

/// An input error from the core crate with its option names as flags: the
/// field (alone, or before a parenthesised file) and any `option` quoted in
/// the message.
pub fn with_flag_names(e: crate::error::InputError) -> crate::error::InputError {
    let mut field = e.field;
    let mut message = e.message;
    for (name, flag) in FLAGS {
        if field == name {
            field = flag.to_string();
        } else if let Some(rest) = field.strip_prefix(&format!("{name} (")) {
            field = format!("{flag} ({rest}");
        }
        message = message.replace(&format!("`{name}`"), flag);
    }
    crate::error::InputError::new(field, message)
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Self {
        match e {
            crate::error::Error::Input(input) => Failure {
                status: 2,
                message: with_flag_names(input).to_string(),
            },
            other => Failure {
                status: 1,
                message: other.to_string(),
            },
        }
    }
}

impl From<crate::error::InputError> for Failure {
    fn from(e: crate::error::InputError) -> Self {
        Failure {
            status: 2,
            message: with_flag_names(e).to_string(),
        }
    }
}

/// Runs the parsed command; `Ok` carries what goes to stdout.
pub fn run(cli: Cli) -> Result<String, Failure> {
    match cli.command {
        Command::Solve(args) => run_solve(&args),
        Command::Transfer(args) => run_transfer_cli(&args),
        Command::Generate(args) => run_generate(&args),
        Command::Reproduce(args) => run_reproduce(&args),
        Command::Merge(args) => run_merge(&args),
        Command::GpuCheck(args) => run_gpu_check_cli(&args),
    }
}
