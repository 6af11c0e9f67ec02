//! `taskrobust gpu-check`: the full-scale check on a CUDA device (docs/GPU.md).

use super::Failure;
use crate::gpu::{run_gpu_check, GpuCheckArgs, Scale};
use clap::Args;
use std::path::PathBuf;

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
}

pub fn run_gpu_check_cli(args: &GpuCheckCli) -> Result<String, Failure> {
    let scale: Scale = args.scale.parse()?;
    let report = run_gpu_check(&GpuCheckArgs {
        scale,
        out_dir: args.out.clone(),
        seed: args.seed,
        device: args.device,
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
