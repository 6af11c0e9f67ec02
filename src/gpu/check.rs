//! `taskrobust gpu-check` (placeholder while the solvers land).
use super::GpuError;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scale {
    Small,
    Full,
}

#[derive(Debug, Clone)]
pub struct GpuCheckArgs {
    pub scale: Scale,
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpuCheckReport {}

pub fn run_gpu_check(_args: &GpuCheckArgs) -> Result<GpuCheckReport, GpuError> {
    super::CudaLibraries::detect().require()?;
    Err(GpuError::NoDevice("todo".into()))
}
