//! `taskrobust solve PROBLEM.json` (docs: README.md, contract: cli-contract.md).

use super::Failure;
use crate::io::{load_problem, read_vector};
use crate::solvers::{solve, Method, SolveOptions, SolveOutcome};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct SolveArgs {
    /// Problem file (JSON; see README for the format).
    pub problem: PathBuf,
    /// softmax-gd, accelerated, stochastic, descent-ascent, subgradient, average or exact.
    #[arg(long, default_value = "softmax-gd")]
    pub method: String,
    /// Temperature mu (default: tuned for the horizon, see docs/THEORY.md).
    #[arg(long, allow_negative_numbers = true)]
    pub mu: Option<f64>,
    /// Step size (default: the method's rule, see docs/THEORY.md).
    #[arg(long, allow_negative_numbers = true)]
    pub step: Option<f64>,
    /// Step on the task weights (descent-ascent).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_step: Option<f64>,
    /// T: the number of updates of theta.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true)]
    pub iters: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Starting point (.npy or .csv vector of length d).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Upper bound on ||theta_0 - theta*|| (tunes mu and steps without a radius).
    #[arg(long, allow_negative_numbers = true)]
    pub distance: Option<f64>,
    /// Samples per task per step (stochastic).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Moving-average factor of the task losses in (0, 1] (stochastic).
    #[arg(long, allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Certify every this many iterations (the final point is always certified).
    #[arg(long, default_value_t = 1)]
    pub certify_every: u64,
    /// Save the solver's state to FILE every --checkpoint-every iterations; if
    /// FILE exists (same problem and options), resume from it.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Report L and lambda (constants.smoothness, constants.strong_convexity)
    /// even where the run did not need them; on data problems they cost a Gram
    /// matrix and its eigenvalues per task.
    #[arg(long)]
    pub constants: bool,
}

impl SolveArgs {
    fn options(&self, dim: usize) -> Result<SolveOptions, Failure> {
        let method: Method = self.method.parse()?;
        if self.iters <= 0 {
            return Err(crate::error::InputError::new(
                "--iters",
                format!("must be a positive integer, got {}", self.iters),
            )
            .into());
        }
        let init = match &self.init {
            Some(path) => Some(read_vector(path, "--init")?),
            None => None,
        };
        let _ = dim;
        Ok(SolveOptions {
            method,
            iterations: self.iters as u64,
            mu: self.mu,
            step: self.step,
            weight_step: self.weight_step,
            seed: self.seed,
            init,
            distance: self.distance,
            batch_size: self.batch_size,
            ema: self.ema,
            certify_every: self.certify_every,
            record_trace: false,
            report_constants: self.constants,
            checkpoint: self.checkpoint.clone(),
            checkpoint_every: self.checkpoint_every,
            interrupt_after: None,
        })
    }
}

/// Loads, validates, solves and formats.
pub fn run_solve(args: &SolveArgs) -> Result<String, Failure> {
    // Options that need no file are checked before the (possibly large) load.
    let _: Method = args.method.parse()?;
    for (field, value) in [
        ("--mu", args.mu),
        ("--step", args.step),
        ("--weight-step", args.weight_step),
        ("--distance", args.distance),
    ] {
        if let Some(v) = value {
            crate::error::check_positive(field, v)?;
        }
    }
    if args.iters <= 0 {
        return Err(crate::error::InputError::new(
            "--iters",
            format!("must be a positive integer, got {}", args.iters),
        )
        .into());
    }
    let load_start = std::time::Instant::now();
    let problem = load_problem(&args.problem)?;
    let seconds_load = load_start.elapsed().as_secs_f64();
    let options = args.options(problem.family.dim())?;
    let outcome = solve(problem.family.clone(), problem.set, &options)?;
    if let Some(warning) = tolerance_warning(&outcome) {
        eprintln!("{warning}");
    }
    Ok(match args.format {
        OutputFormat::Json => {
            let mut value = outcome_json(&outcome);
            value["seconds_load"] = json!(seconds_load);
            value["problem"] = json!({
                "path": args.problem.display().to_string(),
                "kind": problem.kind,
                "tasks": problem.family.num_tasks(),
                "dim": problem.family.dim(),
                "radius": problem.set.radius(),
            });
            format!(
                "{}\n",
                serde_json::to_string(&value).map_err(|e| Failure {
                    status: 1,
                    message: e.to_string()
                })?
            )
        }
        OutputFormat::Table => {
            format_table(&outcome, &args.problem.display().to_string(), &problem.kind)
        }
    })
}

/// The contract's JSON object (method, iterations, max_loss, lower_bound, gap,
/// losses, weights, theta, seconds) plus the run's constants.
pub fn outcome_json(outcome: &SolveOutcome) -> serde_json::Value {
    json!({
        "method": outcome.method.name(),
        "iterations": outcome.iterations,
        "max_loss": outcome.max_loss,
        "lower_bound": outcome.lower_bound,
        "gap": outcome.gap,
        "losses": outcome.losses,
        "weights": outcome.weights,
        "theta": outcome.theta,
        "seconds": outcome.seconds,
        "mu": outcome.mu,
        "step": outcome.step,
        "worst_task": outcome.worst_task,
        "entropy": outcome.entropy,
        "termination": outcome.termination,
        "constants": outcome.constants,
        "certificate": {
            "kind": outcome.certificate.kind,
            "error_bound": outcome.certificate.error_bound,
            "note": outcome.certificate.note,
        },
        "solver_status": outcome.solver_status,
        "reached_tolerance": outcome.reached_tolerance,
    })
}

/// The warning `exact` prints when it stopped short of its stated tolerance.
pub fn tolerance_warning(outcome: &SolveOutcome) -> Option<String> {
    let status = outcome.solver_status.as_deref()?;
    (!outcome.reached_tolerance).then(|| {
        format!(
            "warning: exact did not reach its tolerance (solver status {status}, certified gap {:.3e}); \
             the point is certified as reported, not as optimal",
            outcome.gap
        )
    })
}

/// A table for people: the verdict first, then the tasks (worst first).
pub fn format_table(outcome: &SolveOutcome, problem: &str, kind: &str) -> String {
    let m = outcome.losses.len();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "taskrobust solve  {problem}  ({kind}, M = {m} tasks, d = {})",
        outcome.theta.len()
    );
    let mut settings = vec![format!("{} iterations", outcome.iterations)];
    if let Some(mu) = outcome.mu {
        settings.push(format!("mu = {mu:.4e}"));
    }
    if let Some(step) = outcome.step {
        settings.push(format!("step = {step:.4e}"));
    }
    let _ = writeln!(
        s,
        "method        {}  ({})",
        outcome.method,
        settings.join(", ")
    );
    let _ = writeln!(
        s,
        "worst loss    F(theta) = {:.10e}  (task {})",
        outcome.max_loss, outcome.worst_task
    );
    let _ = writeln!(
        s,
        "lower bound   D(p)     = {:.10e}  (certified: OPT >= D(p))",
        outcome.lower_bound
    );
    let certificate = &outcome.certificate;
    let _ = writeln!(
        s,
        "certificate   {} (rounding allowance {:.1e}){}",
        certificate.kind,
        certificate.error_bound,
        if certificate.note.is_empty() {
            String::new()
        } else {
            format!("; {}", certificate.note)
        }
    );
    if let Some(status) = &outcome.solver_status {
        let _ = writeln!(
            s,
            "solver        {status}{}",
            if outcome.reached_tolerance {
                ""
            } else {
                "  (WARNING: stopped short of its tolerance)"
            }
        );
    }
    let relative = outcome.gap / outcome.max_loss.abs().max(f64::MIN_POSITIVE);
    let _ = writeln!(
        s,
        "gap           {:.3e}  (relative {:.3e}; F(theta) - OPT <= gap)",
        outcome.gap, relative
    );
    let _ = writeln!(
        s,
        "time          {:.4} s  ({})",
        outcome.seconds, outcome.termination
    );
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| outcome.losses[b].total_cmp(&outcome.losses[a]));
    let shown = order.len().min(20);
    let _ = writeln!(
        s,
        "\n{:>6}  {:>18}  {:>10}",
        "task", "loss f_i(theta)", "weight p_i"
    );
    for &i in &order[..shown] {
        let _ = writeln!(
            s,
            "{:>6}  {:>18.10e}  {:>10.4}",
            i, outcome.losses[i], outcome.weights[i]
        );
    }
    if shown < m {
        let _ = writeln!(
            s,
            "   ... {} more tasks (use --format json for all)",
            m - shown
        );
    }
    s
}
