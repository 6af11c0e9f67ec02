//! `taskrobust reproduce` and `taskrobust merge`.

use super::Failure;
use crate::experiments::{merge, reproduce, reproduce_shard, ReproduceOptions, Shard};
use crate::plots::Style;
use crate::report::Report;
use clap::Args;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Small parameters (the `[quick]` tables): for tests and a first look.
    #[arg(long)]
    pub quick: bool,
    /// Output folder for figures, CSV tables, report.json and REPORT.md.
    #[arg(long, default_value = "figures")]
    pub out: PathBuf,
    /// Folder of experiment parameter files (`<name>.toml`); built-in copies otherwise.
    #[arg(long, default_value = "experiments")]
    pub params: PathBuf,
    /// Run only these experiments (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Run a deterministic 1/N of the cells: i/N with 0 <= i < N; then `merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Figure preset: paper-single (3.25 in wide, text 8.5-9.4 pt), paper-double
    /// (6.75 in, 9-9.9 pt) or slides (5.5 in, 11-12.1 pt). An experiment's
    /// `style` parameter overrides it.
    #[arg(long, default_value = "paper-single")]
    pub style: Style,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard parts written by `reproduce --shard i/N` (out/parts/part-i-of-N.json).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    #[arg(long)]
    pub quick: bool,
    #[arg(long, default_value = "figures")]
    pub out: PathBuf,
    #[arg(long, default_value = "experiments")]
    pub params: PathBuf,
    #[arg(long)]
    pub only: Vec<String>,
    /// Figure preset (as for `reproduce`).
    #[arg(long, default_value = "paper-single")]
    pub style: Style,
}

fn options(
    quick: bool,
    out: &std::path::Path,
    params: &std::path::Path,
    only: &[String],
    style: Style,
) -> ReproduceOptions {
    ReproduceOptions {
        quick,
        out: out.to_path_buf(),
        style,
        params_dir: Some(params.to_path_buf()),
        only: only.to_vec(),
        progress: std::io::stderr().is_terminal(),
    }
}

/// The verdict table printed after a run.
pub fn summary(report: &Report, out: &std::path::Path, seconds: f64) -> String {
    let mut s = String::new();
    let passed = report.checks.iter().filter(|c| c.passed).count();
    let _ = writeln!(
        s,
        "taskrobust reproduce: {passed}/{} checks pass  ({seconds:.1} s)",
        report.checks.len()
    );
    for c in &report.checks {
        let slack = match c.slack {
            Some(v) if v.is_finite() => format!("  [slack {}x]", crate::theory::checks::sig(v)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {}  {}{slack}",
            if c.passed { "pass" } else { "FAIL" },
            c.name
        );
    }
    let _ = writeln!(
        s,
        "wrote {} figures, {}/report.json, {}/REPORT.md",
        report.figures.len(),
        out.display(),
        out.display()
    );
    s
}

pub fn run_reproduce(args: &ReproduceArgs) -> Result<String, Failure> {
    let start = std::time::Instant::now();
    let opts = options(args.quick, &args.out, &args.params, &args.only, args.style);
    if let Some(shard) = &args.shard {
        let shard: Shard = shard.parse()?;
        let path = reproduce_shard(&opts, shard)?;
        return Ok(format!(
            "wrote {} ({:.1} s); combine the parts with `taskrobust merge`\n",
            path.display(),
            start.elapsed().as_secs_f64()
        ));
    }
    let report = reproduce(&opts)?;
    let text = summary(&report, &args.out, start.elapsed().as_secs_f64());
    if report.all_passed {
        Ok(text)
    } else {
        // Exit status 1 where a check fails; the table still goes to stdout.
        print!("{text}");
        Err(Failure {
            status: 1,
            message: "some checks failed (see report.json)".into(),
        })
    }
}

pub fn run_merge(args: &MergeArgs) -> Result<String, Failure> {
    let start = std::time::Instant::now();
    let opts = options(args.quick, &args.out, &args.params, &args.only, args.style);
    let report = merge(&opts, &args.parts)?;
    let text = summary(&report, &args.out, start.elapsed().as_secs_f64());
    if report.all_passed {
        Ok(text)
    } else {
        print!("{text}");
        Err(Failure {
            status: 1,
            message: "some checks failed (see report.json)".into(),
        })
    }
}
