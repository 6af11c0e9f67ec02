//! One CUDA device: context, stream, cuBLAS handle and the compiled kernels.

use super::{kernels, CudaLibraries, DeviceInfo, GpuError};
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream};
use std::sync::Arc;
use std::time::Instant;

/// The compiled kernels, by name.
#[derive(Debug)]
pub(crate) struct Kernels {
    pub squared_link: CudaFunction,
    pub logistic_link: CudaFunction,
    pub gradient_partials: CudaFunction,
    pub reduce_partials: CudaFunction,
    pub add_to_columns: CudaFunction,
    pub column_norms: CudaFunction,
}

/// An opened device. Families share it through an `Arc`; every operation
/// goes through its one stream, so they are ordered.
#[derive(Debug)]
pub struct GpuDevice {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) kernels: Kernels,
    info: DeviceInfo,
}

impl GpuDevice {
    /// Checks the libraries, then opens device `ordinal`, creates the cuBLAS
    /// handle and compiles the kernels. Every failure before the context
    /// exists is "no CUDA device".
    pub fn open(ordinal: usize) -> Result<Arc<Self>, GpuError> {
        CudaLibraries::detect().require()?;
        let count = CudaContext::device_count().map_err(|e| {
            GpuError::NoDevice(format!("the CUDA driver reports no usable device ({e:?})"))
        })?;
        if count <= 0 {
            return Err(GpuError::NoDevice(
                "the CUDA driver reports 0 devices".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(GpuError::NoDevice(format!(
                "device {ordinal} requested, {count} present"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| GpuError::NoDevice(format!("cannot open device {ordinal} ({e:?})")))?;
        // SAFETY: every operation of this backend runs on the one stream
        // below, so the per-allocation events that order several streams are
        // not needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| GpuError::cuda("cuBLAS handle", e))?;
        // Kernels for this device's compute capability (see `kernels`).
        let capability = ctx
            .compute_capability()
            .map_err(|e| GpuError::cuda("compute capability", e))?;
        let arch = kernels::virtual_arch(capability, &kernels::supported_archs()?)
            .map_err(|why| GpuError::NoDevice(format!("device {ordinal}: {why}")))?;
        let ptx = kernels::compile_ptx_for(arch)?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| GpuError::cuda("loading the kernels", e))?;
        let load = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| GpuError::cuda(name, e))
        };
        let kernels = Kernels {
            squared_link: load("squared_link")?,
            logistic_link: load("logistic_link")?,
            gradient_partials: load("gradient_partials")?,
            reduce_partials: load("reduce_partials")?,
            add_to_columns: load("add_to_columns")?,
            column_norms: load("column_norms")?,
        };
        let info = query_info(&ctx, ordinal, arch)?;
        Ok(Arc::new(Self {
            ctx,
            stream,
            blas,
            kernels,
            info,
        }))
    }

    /// What the device says about itself (queried when it was opened).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The device's name, as the driver reports it.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// (free, total) device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize), GpuError> {
        self.ctx
            .mem_get_info()
            .map_err(|e| GpuError::cuda("memory info", e))
    }

    /// Blocks until every operation queued on the device's stream has finished.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.stream
            .synchronize()
            .map_err(|e| GpuError::cuda("synchronize", e))
    }

    /// Measured device-to-device copy bandwidth (bytes read plus written per
    /// second), median of `repeats` copies of `bytes` bytes.
    pub fn copy_bandwidth(&self, bytes: usize, repeats: usize) -> Result<f64, GpuError> {
        let len = (bytes / 8).max(1);
        let src: CudaSlice<f64> = self
            .stream
            .alloc_zeros(len)
            .map_err(|e| GpuError::cuda("alloc", e))?;
        let mut dst: CudaSlice<f64> = self
            .stream
            .alloc_zeros(len)
            .map_err(|e| GpuError::cuda("alloc", e))?;
        // One warm-up copy.
        self.stream
            .memcpy_dtod(&src, &mut dst)
            .map_err(|e| GpuError::cuda("copy", e))?;
        self.synchronize()?;
        let mut times = Vec::with_capacity(repeats.max(1));
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            self.stream
                .memcpy_dtod(&src, &mut dst)
                .map_err(|e| GpuError::cuda("copy", e))?;
            self.synchronize()?;
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        Ok(2.0 * (len * 8) as f64 / median)
    }
}

fn query_info(ctx: &Arc<CudaContext>, ordinal: usize, arch: i32) -> Result<DeviceInfo, GpuError> {
    let name = ctx.name().map_err(|e| GpuError::cuda("device name", e))?;
    let compute_capability = ctx
        .compute_capability()
        .map_err(|e| GpuError::cuda("compute capability", e))?;
    let multiprocessors = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(|e| GpuError::cuda("multiprocessor count", e))?;
    let total_memory_bytes = ctx
        .total_mem()
        .map_err(|e| GpuError::cuda("total memory", e))?;
    // Optional: newer drivers may stop reporting these.
    let positive = |a| ctx.attribute(a).ok().filter(|&v| v > 0).map(i64::from);
    let memory_clock_khz = positive(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
    let memory_bus_width_bits =
        positive(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
    let peak_bandwidth_bytes_per_s = match (memory_clock_khz, memory_bus_width_bits) {
        (Some(clock), Some(width)) => Some(2.0 * clock as f64 * 1e3 * width as f64 / 8.0),
        _ => None,
    };
    Ok(DeviceInfo {
        name,
        ordinal,
        compute_capability,
        multiprocessors,
        total_memory_bytes,
        memory_clock_khz,
        memory_bus_width_bits,
        peak_bandwidth_bytes_per_s,
        kernel_arch: format!("compute_{arch}"),
    })
}
