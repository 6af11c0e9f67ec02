//! CUDA C source (f64) of the kernels cuBLAS does not provide, compiled at
//! run time with NVRTC for the compute capability of the device in use
//! (queried when it is opened): PTX for the newest virtual architecture
//! `compute_XY` that the installed NVRTC supports and that is not newer than
//! the device, which the driver then compiles for the device itself.
//!
//! Supported range: whatever the NVRTC library present supports, from its
//! oldest architecture on. With CUDA 13 (the `cuda-13000` bindings) that is
//! compute capability 7.5 (Turing) up: 7.5, 8.0 (A100), 8.6, 8.7, 8.8, 8.9
//! (L4, RTX 40), 9.0 (H100, H200), 10.0, 10.3, 10.7, 11.0, 12.0 and 12.1
//! (Blackwell), as libnvrtc.so.13 reports them; a device newer than
//! every architecture NVRTC knows runs the newest one's PTX (PTX is forward
//! compatible). An older device is reported as "no CUDA device" with the
//! reason, as a missing library is.
//!
//! - `squared_link`, `logistic_link`: per sample, the loss and the slope of
//!   the link at the margin `z = x . theta` (the slope pre-divided by n_i, so
//!   the gradient GEMV yields the mean), and per task the mean loss through a
//!   fixed-order block reduction (deterministic, no atomics). One block per task.
//! - `gradient_partials`, `reduce_partials`: the per-task gradients
//!   `X_i^T s_i` without cuBLAS -- partial sums over fixed chunks of rows,
//!   then reduced in chunk order (an alternative to one GEMV per task).
//! - `add_to_columns`: `G[:, i] += alpha v` (the l2 term of every task gradient).
//! - `column_norms`: `||G[:, i]||` per task.
//!
//! The logistic link matches `crate::linalg::kernels::{softplus, sigmoid}`: stable
//! for large |margin|.

/// Threads per block of every kernel (the reductions assume a power of two).
pub const BLOCK: u32 = 256;

/// Rows per chunk of `gradient_partials`.
pub const CHUNK_ROWS: usize = 256;

/// The virtual architecture of the H100/H200 (compute capability 9.0), for
/// tests that compile without a device.
pub const ARCH: &str = "compute_90";

/// The architecture to compile for on a device of compute capability
/// `device` (major, minor), given the architectures NVRTC supports (as
/// `10 * major + minor`, e.g. 90): the newest one not newer than the device.
/// An error (the reason) where the device is older than all of them.
pub fn virtual_arch(device: (i32, i32), supported: &[i32]) -> Result<i32, String> {
    let wanted = 10 * device.0 + device.1;
    supported
        .iter()
        .copied()
        .filter(|&a| a <= wanted)
        .max()
        .ok_or_else(|| {
            let oldest = supported.iter().copied().min();
            match oldest {
                Some(o) => format!(
                    "the device has compute capability {}.{}; the NVRTC library present compiles for {}.{} and newer",
                    device.0,
                    device.1,
                    o / 10,
                    o % 10
                ),
                None => "the NVRTC library present reports no supported architecture".into(),
            }
        })
}

/// The architectures the NVRTC library present compiles for, as
/// `10 * major + minor`, oldest first.
#[cfg(feature = "gpu")]
pub fn supported_archs() -> Result<Vec<i32>, super::GpuError> {
    use cudarc::nvrtc::sys;
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { sys::is_culib_present() } {
        return Err(super::GpuError::NoDevice("libnvrtc not found".into()));
    }
    let mut count = 0;
    // SAFETY: NVRTC writes one int through the pointer.
    let status = unsafe { sys::nvrtcGetNumSupportedArchs(&mut count) };
    if status != sys::nvrtcResult::NVRTC_SUCCESS || count <= 0 {
        return Err(super::GpuError::cuda(
            "NVRTC supported architectures",
            status,
        ));
    }
    let mut archs = vec![0; count as usize];
    // SAFETY: the buffer holds the `count` ints NVRTC reported it will write.
    let status = unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
    if status != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(super::GpuError::cuda(
            "NVRTC supported architectures",
            status,
        ));
    }
    archs.sort_unstable();
    Ok(archs)
}

/// Names of the kernels in [`SOURCE`].
pub const NAMES: [&str; 6] = [
    "squared_link",
    "logistic_link",
    "gradient_partials",
    "reduce_partials",
    "add_to_columns",
    "column_norms",
];

/// The kernels. `long long` indices: the full-scale data has ~10^9 entries.
pub const SOURCE: &str = r#"
#define BLOCK 256

// Sum over the block in a fixed tree order (the same bits on every run).
__device__ double block_sum(double v, double* shared) {
    unsigned int t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (unsigned int s = BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) {
            shared[t] += shared[t + s];
        }
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads();
    return total;
}

// ln(1 + exp(t)), stable for large |t|.
__device__ double softplus(double t) {
    return t > 0.0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

// 1 / (1 + exp(-t)), stable for large |t|.
__device__ double sigmoid(double t) {
    if (t >= 0.0) {
        return 1.0 / (1.0 + exp(-t));
    }
    double e = exp(t);
    return e / (1.0 + e);
}

// Squared loss 1/2 (z - y)^2, slope (z - y). One block per task; samples of
// task i are offsets[i] .. offsets[i+1].
extern "C" __global__ void squared_link(const double* z, const double* y,
                                        const long long* offsets, double* slopes,
                                        double* losses, double penalty) {
    __shared__ double shared[BLOCK];
    const int task = blockIdx.x;
    const long long start = offsets[task];
    const long long end = offsets[task + 1];
    const double inv_n = 1.0 / (double)(end - start);
    double sum = 0.0;
    for (long long j = start + threadIdx.x; j < end; j += BLOCK) {
        const double r = z[j] - y[j];
        sum += 0.5 * r * r;
        slopes[j] = r * inv_n;
    }
    const double total = block_sum(sum, shared);
    if (threadIdx.x == 0) {
        losses[task] = total * inv_n + penalty;
    }
}

// Logistic loss softplus(-y z), slope -y sigmoid(-y z); labels are +1/-1.
extern "C" __global__ void logistic_link(const double* z, const double* y,
                                         const long long* offsets, double* slopes,
                                         double* losses, double penalty) {
    __shared__ double shared[BLOCK];
    const int task = blockIdx.x;
    const long long start = offsets[task];
    const long long end = offsets[task + 1];
    const double inv_n = 1.0 / (double)(end - start);
    double sum = 0.0;
    for (long long j = start + threadIdx.x; j < end; j += BLOCK) {
        const double margin = y[j] * z[j];
        sum += softplus(-margin);
        slopes[j] = -y[j] * sigmoid(-margin) * inv_n;
    }
    const double total = block_sum(sum, shared);
    if (threadIdx.x == 0) {
        losses[task] = total * inv_n + penalty;
    }
}

// partials[c, :] = sum over rows j of chunk c of slopes[j] x_j, where x_j is
// the d-vector at x + j d. Chunk c covers rows chunk_rows[2c] .. chunk_rows[2c+1].
extern "C" __global__ void gradient_partials(const double* x, const double* slopes,
                                             const long long* chunk_rows, int d,
                                             double* partials) {
    const long long c = blockIdx.x;
    const long long start = chunk_rows[2 * c];
    const long long end = chunk_rows[2 * c + 1];
    for (int col = threadIdx.x; col < d; col += BLOCK) {
        double acc0 = 0.0, acc1 = 0.0;
        long long j = start;
        for (; j + 1 < end; j += 2) {
            acc0 += slopes[j] * x[j * d + col];
            acc1 += slopes[j + 1] * x[(j + 1) * d + col];
        }
        if (j < end) {
            acc0 += slopes[j] * x[j * d + col];
        }
        partials[c * d + col] = acc0 + acc1;
    }
}

// gradients[:, task] = sum of the task's chunk partials, in chunk order.
// Grid (M, ceil(d / BLOCK)); the task's chunks are task_chunks[task] .. task_chunks[task+1].
extern "C" __global__ void reduce_partials(const double* partials,
                                           const long long* task_chunks, int d,
                                           double* gradients) {
    const int task = blockIdx.x;
    const int col = blockIdx.y * BLOCK + threadIdx.x;
    if (col >= d) {
        return;
    }
    double acc = 0.0;
    for (long long c = task_chunks[task]; c < task_chunks[task + 1]; ++c) {
        acc += partials[c * d + col];
    }
    gradients[(long long)task * d + col] = acc;
}

// g[:, i] += alpha v for every column i of the d x m matrix g.
extern "C" __global__ void add_to_columns(double* g, const double* v, int d, int m,
                                          double alpha) {
    const long long k = (long long)blockIdx.x * BLOCK + threadIdx.x;
    if (k < (long long)d * m) {
        g[k] += alpha * v[k % d];
    }
}

// norms[i] = ||g[:, i]||. One block per column.
extern "C" __global__ void column_norms(const double* g, int d, double* norms) {
    __shared__ double shared[BLOCK];
    const long long col = blockIdx.x;
    double sum = 0.0;
    for (int k = threadIdx.x; k < d; k += BLOCK) {
        const double v = g[col * d + k];
        sum += v * v;
    }
    const double total = block_sum(sum, shared);
    if (threadIdx.x == 0) {
        norms[col] = sqrt(total);
    }
}
"#;

/// Compiles [`SOURCE`] to PTX for [`ARCH`] (compute capability 9.0). "no
/// CUDA device" (the skip reason) where libnvrtc is not present; NVRTC does
/// not need a GPU.
#[cfg(feature = "gpu")]
pub fn compile_ptx() -> Result<cudarc::nvrtc::Ptx, super::GpuError> {
    compile_ptx_for(90)
}

/// Compiles [`SOURCE`] to PTX for the virtual architecture `compute_{arch}`
/// (`arch` = 10 major + minor, see [`virtual_arch`]).
#[cfg(feature = "gpu")]
pub fn compile_ptx_for(arch: i32) -> Result<cudarc::nvrtc::Ptx, super::GpuError> {
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(super::GpuError::NoDevice("libnvrtc not found".into()));
    }
    let options = cudarc::nvrtc::CompileOptions {
        options: vec![format!("--gpu-architecture=compute_{arch}")],
        // Plain IEEE f64: no fused multiply-adds, so results stay close to the CPU's.
        fmad: Some(false),
        name: Some("taskrobust_kernels.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, options)
        .map_err(|e| super::GpuError::cuda("NVRTC compile", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_architecture_not_newer_than_the_device_is_chosen() {
        // What libnvrtc.so.13 (pip nvidia-cuda-nvrtc 13) reports.
        let cuda13 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 107, 110, 120, 121];
        assert_eq!(virtual_arch((9, 0), &cuda13), Ok(90)); // H100, H200
        assert_eq!(virtual_arch((8, 0), &cuda13), Ok(80)); // A100
        assert_eq!(virtual_arch((8, 9), &cuda13), Ok(89)); // L4, RTX 40
        assert_eq!(virtual_arch((8, 6), &cuda13), Ok(86)); // A10, RTX 30
        assert_eq!(virtual_arch((10, 1), &cuda13), Ok(100)); // between two: the older
        assert_eq!(virtual_arch((13, 0), &cuda13), Ok(121)); // newer than NVRTC: its newest PTX
        let err = virtual_arch((7, 0), &cuda13).unwrap_err(); // V100 under CUDA 13
        assert!(
            err.contains("compute capability 7.0") && err.contains("7.5 and newer"),
            "{err}"
        );
        assert!(virtual_arch((9, 0), &[]).is_err());
    }

    #[test]
    fn every_kernel_is_in_the_source() {
        for name in NAMES {
            assert!(
                SOURCE.contains(&format!("__global__ void {name}(")),
                "{name}"
            );
        }
        assert!(SOURCE.contains(&format!("#define BLOCK {BLOCK}")));
        assert!(BLOCK.is_power_of_two());
    }

    /// Every architecture the NVRTC library present supports compiles, to PTX
    /// for that architecture, and a device between two of them gets the
    /// older one (no GPU needed; skipped without libnvrtc).
    #[test]
    fn kernels_compile_for_every_architecture_nvrtc_supports() {
        #[cfg(not(feature = "gpu"))]
        eprintln!("skipped: built without the `gpu` feature (NVRTC is not linked in)");
        #[cfg(feature = "gpu")]
        match supported_archs() {
            Err(super::super::GpuError::NoDevice(reason)) => eprintln!("skipped: {reason}"),
            Err(e) => panic!("{e}"),
            Ok(archs) => {
                assert!(!archs.is_empty());
                for &arch in &archs {
                    let ptx = compile_ptx_for(arch)
                        .unwrap_or_else(|e| panic!("compute_{arch}: {e}"))
                        .to_src();
                    assert!(
                        ptx.contains(&format!(".target sm_{arch}")),
                        "compute_{arch}"
                    );
                }
                let newest = *archs.last().unwrap();
                assert_eq!(virtual_arch((newest / 10 + 1, 0), &archs), Ok(newest));
                eprintln!("compiled for {archs:?}");
            }
        }
    }

    /// Compiles the kernels through NVRTC where libnvrtc is present (no GPU
    /// needed); prints why it is skipped otherwise.
    #[test]
    fn kernels_compile_to_ptx_where_nvrtc_is_present() {
        #[cfg(not(feature = "gpu"))]
        eprintln!("skipped: built without the `gpu` feature (NVRTC is not linked in)");
        #[cfg(feature = "gpu")]
        match compile_ptx() {
            Err(super::super::GpuError::NoDevice(reason)) => {
                eprintln!("skipped: {reason} (set LD_LIBRARY_PATH to a folder with libnvrtc.so.13 to run this test)")
            }
            Err(e) => panic!("the kernels do not compile: {e}"),
            Ok(ptx) => {
                let text = ptx.to_src();
                assert!(text.contains(".target sm_90"), "PTX is not for sm_90");
                for name in NAMES {
                    assert!(
                        text.contains(&format!(".entry {name}(")),
                        "{name} missing from the PTX"
                    );
                }
                eprintln!(
                    "compiled {} kernels to {} bytes of PTX",
                    NAMES.len(),
                    text.len()
                );
            }
        }
    }
}
