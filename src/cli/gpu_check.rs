//! `taskrobust gpu-check`: the full-scale check on a CUDA device (docs/GPU.md).

use super::Failure;
use crate::gpu::{run_gpu_check, GpuCheckArgs, Scale};
use clap::Args;
use std::path::PathBuf;
use taskrobust::linalg::element::Dtype;

#[derive(Debug, Args)]
pub struct GpuCheckCli {
    /// small (seconds) or full (M = 64, n_i = 16384, d = 1024: about 8.6 GB of f64).
    #[arg(long, default_value = "small")]
    pub scale: String,
    /// Where the JSON result, CSV and figure go.
    #[arg(long, default_value = "figures/gpu")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// f64, or f32: the generated data rounded to f32 and kept as f32 on the
    /// host (the device holds them widened to f64); writes gpu-check-SCALE-f32.*.
    #[arg(long, default_value = "f64", value_parser = parse_dtype)]
    pub dtype: Dtype,
}

fn parse_dtype(text: &str) -> Result<Dtype, String> {
    Dtype::from_name(text).ok_or_else(|| format!("'{text}' is not f64 or f32"))
}

pub fn run_gpu_check_cli(args: &GpuCheckCli) -> Result<String, Failure> {
    let scale: Scale = args.scale.parse()?;
    let report = run_gpu_check(&GpuCheckArgs {
        scale,
        out_dir: args.out.clone(),
        seed: args.seed,
        device: args.device,
        dtype: args.dtype,
    })
    .map_err(|e| Failure {
        status: e.exit_code(),
        message: e.to_string(),
    })?;
    if report.passed {
        Ok(report.summary())
    } else {
        print!("{}", report.summary());
        Err(Failure {
            status: 1,
            message: "some GPU checks failed (see the JSON result)".into(),
        })
    }
}
