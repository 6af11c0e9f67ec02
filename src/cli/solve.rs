//! `taskrobust solve PROBLEM.json` (docs: README.md, contract: cli-contract.md).

use super::Failure;
use crate::io::{load_problem, read_vector};
use crate::scaling::{ldexp, Scaling};
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
    /// Temperature mu. Default: with a radius or --distance, tuned for the
    /// horizon --iters; without, it starts at the certified gap at theta_0
    /// over ln M and is lowered as the gap closes (docs/THEORY.md#default-step-rule).
    #[arg(long, allow_negative_numbers = true)]
    pub mu: Option<f64>,
    /// Step size. Default: 1/L_mu on a ball, else backtracking (softmax-gd,
    /// accelerated); R / (G sqrt T) with a radius or --distance, else Polyak
    /// steps from the certified bound (subgradient) or R from strong convexity,
    /// else a guess doubled as the iterates need (descent-ascent); 1/L (average).
    #[arg(long, allow_negative_numbers = true)]
    pub step: Option<f64>,
    /// Step on the task weights (descent-ascent). Default: sqrt(2 ln M) / (B sqrt T).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_step: Option<f64>,
    /// T: the number of updates of theta.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true)]
    pub iters: i64,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Starting point (.npy or .csv vector of length d).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Upper bound on ||theta_0 - theta*||: tunes mu and steps for the horizon
    /// where the problem has no radius (instead of the gap-driven defaults).
    #[arg(long, allow_negative_numbers = true)]
    pub distance: Option<f64>,
    /// Samples per task per step (stochastic); capped at the largest task's
    /// number of samples.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true)]
    pub batch_size: usize,
    /// Moving-average factor of the task losses in (0, 1] (stochastic).
    #[arg(long, allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Certify every this many iterations (the final point is always
    /// certified). Default: every iteration where a certificate is cheap
    /// (quadratic forms up to d of about 60, logistic, wide least squares);
    /// else as often as keeps the certificates' estimated cost within 3% of
    /// the passes' (M = 16 least-squares tasks in d = 256: every 169th).
    #[arg(long, allow_negative_numbers = true)]
    pub certify_every: Option<u64>,
    /// Save the solver's state to FILE every --checkpoint-every iterations; if
    /// FILE exists (same problem and options), resume from it.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
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
            on_iteration: None,
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
    if let Some(path) = &args.checkpoint {
        check_checkpoint_path(path)?;
    }
    let load_start = std::time::Instant::now();
    let problem = load_problem(&args.problem)?;
    let seconds_load = load_start.elapsed().as_secs_f64();
    let options = args.options(problem.family.dim())?;
    let outcome = solve_loaded(&problem, options, false)?;
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
                "radius": problem.set.radius().map(|r| ldexp(r, problem.scaling.theta_exp)),
            });
            value["scaling"] = json!(problem.scaling);
            format!(
                "{}\n",
                serde_json::to_string(&value).map_err(|e| Failure {
                    status: 1,
                    message: e.to_string()
                })?
            )
        }
        OutputFormat::Table => format_table(
            &outcome,
            &args.problem.display().to_string(),
            problem.kind.as_str(),
        ),
    })
}

/// Solves a loaded problem as `taskrobust solve` does: the options are given
/// in the problem's units (as the user sees it), the batch is capped at the
/// largest task, the start point is checked for overflow, and the outcome is
/// returned in the problem's units, with every required number finite. The
/// Python bindings call this too, so both give the same numbers. Errors name
/// [`SolveOptions`]' fields (`mu`, `iterations`, ...); the command line shows
/// them as its flags. `zero_checked`: the caller has already run
/// [`crate::io::check_overflow`] at theta = 0 for this problem (the Python
/// bindings do when a problem is built), so a solve from zero skips it.
pub fn solve_loaded(
    problem: &crate::io::LoadedProblem,
    mut options: SolveOptions,
    zero_checked: bool,
) -> Result<SolveOutcome, crate::error::Error> {
    options_to_internal_units(&mut options, &problem.scaling)?;
    // Draws are with replacement, but a batch beyond the largest task only
    // costs memory and time: cap it there (also keeps 10^12 from allocating).
    if let Some(largest) = problem
        .family
        .sample_counts()
        .and_then(|c| c.into_iter().max())
    {
        options.batch_size = options.batch_size.min(largest);
    }
    let mut theta0 = options
        .init
        .clone()
        .unwrap_or_else(|| nalgebra::DVector::zeros(problem.family.dim()));
    if theta0.len() == problem.family.dim() && !(zero_checked && options.init.is_none()) {
        problem.set.project(&mut theta0);
        crate::io::check_overflow(problem, &theta0, options.init.is_some())?;
    }
    let mut outcome = solve(problem.family.clone(), problem.set, &options)?;
    problem.scaling.outcome_to_problem_units(&mut outcome);
    check_finite_outcome(&outcome_json(&outcome), problem)?;
    Ok(outcome)
}

/// Moves the options given in the problem's units into the units the
/// family works in (see [`crate::scaling`]); an option that does not fit
/// there is refused by name.
fn options_to_internal_units(
    options: &mut SolveOptions,
    scaling: &Scaling,
) -> Result<(), crate::error::InputError> {
    if scaling.is_identity() {
        return Ok(());
    }
    let internal = |field: &str, value: Option<f64>, map: &dyn Fn(f64) -> f64| {
        let Some(v) = value else { return Ok(None) };
        let mapped = map(v);
        if mapped.is_normal() {
            Ok(Some(mapped))
        } else {
            Err(crate::error::InputError::new(
                field,
                format!(
                    "{v:e} does not fit f64 in the units the data are solved in \
                     (theta 2^{}, loss 2^{}); rescale the data",
                    scaling.theta_exp, scaling.loss_exp
                ),
            ))
        }
    };
    options.mu = internal("mu", options.mu, &|v| scaling.loss_to_internal(v))?;
    options.step = internal("step", options.step, &|v| scaling.step_to_internal(v))?;
    options.weight_step = internal("weight_step", options.weight_step, &|v| {
        scaling.weight_step_to_internal(v)
    })?;
    options.distance = internal("distance", options.distance, &|v| {
        scaling.length_to_internal(v)
    })?;
    if let Some(init) = options.init.as_mut() {
        scaling.theta_to_internal(init.as_mut_slice());
    }
    Ok(())
}

/// The last guard before exit status 0: the contract's required numbers
/// must be finite (an overflow inside the run would print `null`). A bound
/// may be missing only where the certificate says why. The error names the
/// field and the task whose loss overflowed, and suggests rescaling.
fn check_finite_outcome(
    value: &serde_json::Value,
    problem: &crate::io::LoadedProblem,
) -> Result<(), crate::error::InputError> {
    let finite = |v: &serde_json::Value| v.as_f64().is_some_and(f64::is_finite);
    let explained = value["certificate"]["note"]
        .as_str()
        .is_some_and(|note| !note.trim().is_empty());
    let mut bad: Option<String> = None;
    for field in ["max_loss", "gap", "lower_bound"] {
        let v = &value[field];
        let missing_bound_explained = field == "lower_bound" && v.is_null() && explained;
        if bad.is_none() && !finite(v) && !missing_bound_explained {
            bad = Some(format!("{field} is {}", display_number(v)));
        }
    }
    for field in ["losses", "theta", "weights"] {
        let items = value[field].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if bad.is_none() {
            if let Some(j) = items.iter().position(|v| !finite(v)) {
                bad = Some(format!("{field}[{j}] is {}", display_number(&items[j])));
            }
        }
    }
    let Some(what) = bad else { return Ok(()) };
    // Blame the largest field among the tasks whose loss overflowed (all
    // tasks where none did); without known sizes, the first such task.
    let losses = value["losses"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut suspects: Vec<usize> = (0..losses.len()).filter(|&i| !finite(&losses[i])).collect();
    if suspects.is_empty() {
        suspects = (0..problem.fields.len()).collect();
    }
    let largest = suspects
        .iter()
        .flat_map(|&i| problem.fields.get(i).into_iter().flatten())
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n.clone());
    let first = suspects.first().copied().unwrap_or(0);
    let field = largest
        .or_else(|| problem.fields.get(first)?.first().map(|(n, _)| n.clone()))
        .unwrap_or_else(|| format!("tasks[{first}]"));
    Err(crate::error::InputError::new(
        format!("{}: {field}", problem.path.display()),
        format!(
            "the solve overflowed f64 ({what}); rescale the data (divide it by a power of \
             ten) so that losses and gradients fit in f64"
        ),
    ))
}

/// A JSON number as text; `null` stands for a NaN or infinity.
fn display_number(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "not finite (NaN or infinity)".into(),
        other => other.to_string(),
    }
}

/// A checkpoint must be a regular file (or not exist yet) in a folder that
/// exists: found out before the solve, not when the first save fails.
fn check_checkpoint_path(path: &std::path::Path) -> Result<(), crate::error::InputError> {
    let field = format!("--checkpoint ({})", path.display());
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !folder.is_dir() {
        return Err(crate::error::InputError::new(
            field,
            format!("folder {} does not exist", folder.display()),
        ));
    }
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(crate::error::InputError::new(
            field,
            "exists and is not a regular file (a folder or a device); name a file",
        )),
        _ => Ok(()),
    }
}

/// The contract's JSON object (method, iterations, max_loss, lower_bound, gap,
/// losses, weights, theta, seconds) plus the run's constants.
pub fn outcome_json(outcome: &SolveOutcome) -> serde_json::Value {
    json!({
        "method": outcome.method,
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
