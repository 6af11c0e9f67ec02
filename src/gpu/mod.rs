//! The GPU cross-check (`taskrobust gpu-check`): the core crate's GPU
//! families against the CPU ones, at full scale, with the same checks and
//! report as every other experiment.

pub use taskrobust::gpu::*;

pub mod check;

pub use check::{run_gpu_check, GpuCheckArgs, GpuCheckReport, Scale};
