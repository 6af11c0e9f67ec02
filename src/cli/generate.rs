//! `taskrobust generate`: a seeded synthetic problem written as a problem file
//! (JSON, plus one `.npy` pair per task for data problems), so that other tools
//! (the NumPy peer in benches/peer/, a user's own code) can read the very same
//! problem that `taskrobust solve` reads.

use super::Failure;
use crate::error::{check_positive, InputError};
use crate::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use crate::family::GradientForm;
use crate::io::{export_data_problem_as, export_quadratic_problem, FamilyKind};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use taskrobust::linalg::element::Dtype;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// quadratic, least_squares or logistic.
    #[arg(long, value_enum)]
    pub kind: FamilyKind,
    /// M: the number of tasks.
    #[arg(
        long = "tasks",
        short = 'm',
        default_value_t = 8,
        allow_negative_numbers = true
    )]
    pub tasks: usize,
    /// d: the dimension of theta.
    #[arg(
        long = "dim",
        short = 'd',
        default_value_t = 10,
        allow_negative_numbers = true
    )]
    pub dim: usize,
    /// n_i: samples per task (least_squares, logistic).
    #[arg(
        long = "samples",
        short = 'n',
        default_value_t = 1000,
        allow_negative_numbers = true
    )]
    pub samples: usize,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// The last this many tasks are moved away from the others.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub outliers: usize,
    /// How far the outlier tasks' optima are moved.
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub outlier_distance: f64,
    /// Standard deviation of the task optima around their common centre.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub spread: f64,
    /// Largest Hessian (covariance) eigenvalue.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub smoothness: f64,
    /// Ratio of the largest to the smallest Hessian (covariance) eigenvalue.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub condition_number: f64,
    /// Label / response noise (least_squares, logistic).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub noise: f64,
    /// l2 penalty (logistic).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub l2: f64,
    /// Constrain theta to the ball ||theta|| <= radius.
    #[arg(long, allow_negative_numbers = true)]
    pub radius: Option<f64>,
    /// Output directory (created if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// File name stem: OUT/NAME.json (and OUT/NAME_t{i}_{x,y}.npy).
    #[arg(long, default_value = "problem")]
    pub name: String,
    /// The type the data files store (least_squares, logistic): f64 ('<f8')
    /// or f32 ('<f4', the generated values rounded to the nearest f32; the
    /// problem file then says "dtype": "f32").
    #[arg(long, default_value = "f64", value_parser = parse_dtype)]
    pub dtype: Dtype,
}

fn parse_dtype(text: &str) -> Result<Dtype, String> {
    Dtype::from_name(text).ok_or_else(|| format!("'{text}' is not f64 or f32"))
}

impl GenerateArgs {
    fn spec(&self) -> SyntheticSpec {
        SyntheticSpec {
            num_tasks: self.tasks,
            dim: self.dim,
            smoothness: self.smoothness,
            condition_number: self.condition_number,
            spread: self.spread,
            outliers: self.outliers,
            outlier_distance: self.outlier_distance,
            seed: self.seed,
        }
    }

    /// Field checks the generators do not do themselves (they name `num_tasks`
    /// etc.; the CLI names its options).
    fn check(&self) -> Result<(), InputError> {
        self.spec().check().map_err(|e| {
            let field = match e.field.as_str() {
                "num_tasks" => "--tasks",
                "dim" => "--dim",
                "smoothness" => "--smoothness",
                "condition_number" => "--condition-number",
                "spread" => "--spread",
                "outliers" => "--outliers",
                "outlier_distance" => "--outlier-distance",
                "samples_per_task" => "--samples",
                other => other,
            };
            InputError::new(field, e.message.clone())
        })?;
        if self.kind != FamilyKind::Quadratic && self.samples == 0 {
            return Err(InputError::new("--samples", "must be at least 1"));
        }
        let samples = (self.kind != FamilyKind::Quadratic).then_some(self.samples);
        self.spec()
            .check_memory(samples, ["--tasks", "--dim", "--samples"])?;
        // --out is a folder: an existing file there cannot become one.
        if let Some(existing) = self
            .out
            .ancestors()
            .find(|p| !p.as_os_str().is_empty() && p.exists())
        {
            if !existing.is_dir() {
                return Err(InputError::new(
                    format!("--out ({})", self.out.display()),
                    format!("{} exists and is not a folder", existing.display()),
                ));
            }
        }
        if self.kind == FamilyKind::Quadratic && self.dtype != Dtype::F64 {
            return Err(InputError::new(
                "--dtype",
                "f32 applies to data problems (least_squares, logistic); quadratics are f64",
            ));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(InputError::new(
                "--noise",
                format!("must be finite and >= 0, got {}", self.noise),
            ));
        }
        if self.kind == FamilyKind::Logistic {
            check_positive("--l2", self.l2)?;
        }
        if let Some(r) = self.radius {
            check_positive("--radius", r)?;
        }
        let plain = !self.name.is_empty()
            && self.name != "."
            && self.name != ".."
            && !self.name.contains(['/', '\\']);
        if !plain {
            return Err(InputError::new(
                "--name",
                format!("'{}' is not a plain file name", self.name),
            ));
        }
        Ok(())
    }
}

/// Generates and writes the problem; stdout gets one JSON line naming the file.
pub fn run_generate(args: &GenerateArgs) -> Result<String, Failure> {
    args.check()?;
    let spec = args.spec();
    let write_failed = |e: std::io::Error| Failure {
        status: 2,
        message: format!("--out ({}): {e}", args.out.display()),
    };
    let path = match args.kind {
        FamilyKind::Quadratic => {
            let family = quadratic_family(&spec)?;
            std::fs::create_dir_all(&args.out).map_err(|e| Failure {
                status: 2,
                message: format!(
                    "--out ({}): cannot create the folder: {e}",
                    args.out.display()
                ),
            })?;
            let path = args.out.join(format!("{}.json", args.name));
            export_quadratic_problem(&path, family.tasks(), args.radius).map_err(write_failed)?;
            path
        }
        FamilyKind::LeastSquares => {
            // The form does not matter for export; Data skips the Gram set-up.
            let family = least_squares_family(&spec, args.samples, args.noise, GradientForm::Data)?;
            export_data_problem_as(
                &args.out,
                &args.name,
                FamilyKind::LeastSquares,
                None,
                family.data().tasks(),
                args.radius,
                (args.dtype != Dtype::F64).then_some(args.dtype),
            )
            .map_err(write_failed)?
        }
        FamilyKind::Logistic => {
            let family = logistic_family(&spec, args.samples, args.noise, args.l2)?;
            export_data_problem_as(
                &args.out,
                &args.name,
                FamilyKind::Logistic,
                Some(args.l2),
                family.data().tasks(),
                args.radius,
                (args.dtype != Dtype::F64).then_some(args.dtype),
            )
            .map_err(write_failed)?
        }
    };
    let samples = (args.kind != FamilyKind::Quadratic).then_some(args.samples);
    let mut summary = json!({
        "path": path.display().to_string(),
        "kind": args.kind,
        "tasks": args.tasks,
        "dim": args.dim,
        "samples": samples,
        "seed": args.seed,
    });
    // Said where not the default, so that f64 output is as before.
    if args.dtype != Dtype::F64 && args.kind != FamilyKind::Quadratic {
        summary["dtype"] = json!(args.dtype.name());
    }
    Ok(format!("{summary}\n"))
}
