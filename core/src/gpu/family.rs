//! Least-squares and logistic task families whose data live on the GPU.
//!
//! Layout: all tasks' samples are concatenated into one d x N column-major
//! matrix (N = sum n_i): each sample is one contiguous column, exactly the
//! `TaskData::xt` layout, i.e. each task's X_i as an n_i x d row-major matrix.
//! One evaluation:
//!
//! 1. theta (d numbers) to the device;
//! 2. margins `z = X theta`: cuBLAS GEMV, transposed (`A^T theta`, A = X^T);
//! 3. a link kernel: per-sample loss and slope `s_j / n_i`, per-task mean loss;
//! 4. per-task gradients `X_i^T s_i` into a d x M matrix G kept on the device
//!    (one GEMV per task, or the chunked `gradient_partials` kernel);
//! 5. l2 term and per-task gradient norms (kernels);
//! 6. losses (M numbers) to the host, weights from the solver's `weigh`,
//!    weights (M) back, the weighted gradient `G w` (GEMV), d numbers to the host.
//!
//! Host-device traffic per evaluation: d + 3M + d numbers, never the data.
//! Constants and the least-squares certificate use the Gram matrices
//! `X_i^T X_i / n_i`, computed once on the device (GEMM) and downloaded.

use super::device::GpuDevice;
use super::kernels::{BLOCK, CHUNK_ROWS};
use super::GpuError;
use crate::error::{check_positive, invalid, Error, InputError};
use crate::family::{Evaluation, TaskData, TaskFamily, Weigh};
use crate::problem::ball::Ball;
use crate::problem::certificate::{quadratic_dual_bound, strongly_convex_bound, QuadraticForm};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, Gemv, GemvConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::{Arc, Mutex, OnceLock};

/// How the per-task gradients `X_i^T s_i` are formed on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GradientKernel {
    /// One cuBLAS GEMV per task.
    #[default]
    Cublas,
    /// Partial sums over chunks of rows (NVRTC kernel), reduced in chunk order.
    Partials,
}

impl GradientKernel {
    /// The name as serialised: "cublas" or "partials".
    pub fn name(&self) -> &'static str {
        match self {
            GradientKernel::Cublas => "cublas",
            GradientKernel::Partials => "partials",
        }
    }
}

/// Per-task numbers kept on the host (computed while uploading).
#[derive(Debug, Clone, Copy)]
struct TaskStats {
    /// The largest sample norm `max_j ||x_j||`.
    max_row_norm: f64,
    /// `||y||^2`.
    y_norm2: f64,
}

fn cuda<E: std::fmt::Debug>(context: &'static str) -> impl Fn(E) -> GpuError {
    move |e| GpuError::cuda(context, e)
}

/// Most columns of a d-row matrix that one cuBLAS call (32-bit sizes) takes.
fn max_columns(d: usize) -> usize {
    (i32::MAX as usize / d).max(1)
}

/// Rows of the gradient chunks (start, end per chunk; no chunk spans two
/// tasks) and each task's first chunk (M + 1 entries), from the task offsets.
fn chunk_table(offsets: &[usize], rows_per_chunk: usize) -> (Vec<i64>, Vec<i64>) {
    let mut chunk_rows = Vec::new();
    let mut task_chunks = vec![0i64];
    for w in offsets.windows(2) {
        let mut start = w[0];
        while start < w[1] {
            let end = (start + rows_per_chunk).min(w[1]);
            chunk_rows.push(start as i64);
            chunk_rows.push(end as i64);
            start = end;
        }
        task_chunks.push((chunk_rows.len() / 2) as i64);
    }
    (chunk_rows, task_chunks)
}

/// Task data on the device: X (d x N), y (N), and the index tables.
#[derive(Debug)]
pub struct GpuData {
    device: Arc<GpuDevice>,
    dim: usize,
    labels_pm1: bool,
    /// Sample offsets of the tasks (M + 1 entries).
    offsets: Vec<usize>,
    x: CudaSlice<f64>,
    y: CudaSlice<f64>,
    offsets_dev: CudaSlice<i64>,
    /// Row ranges of the gradient chunks (2 per chunk).
    chunk_rows_dev: CudaSlice<i64>,
    /// Chunk offsets of the tasks (M + 1).
    task_chunks_dev: CudaSlice<i64>,
    num_chunks: usize,
    stats: Vec<Option<TaskStats>>,
}

impl GpuData {
    /// Reserves device memory for tasks with the given sample counts.
    /// Fill it with [`GpuData::upload`], one task at a time (so the host
    /// never needs all the data at once).
    pub fn allocate(
        device: Arc<GpuDevice>,
        dim: usize,
        sample_counts: &[usize],
        labels_pm1: bool,
    ) -> Result<Self, GpuError> {
        if sample_counts.is_empty() {
            return Err(InputError::new("tasks", "no tasks given").into());
        }
        if dim == 0 {
            return Err(InputError::new("tasks[0].x", "has no columns (dimension 0)").into());
        }
        if let Some(i) = sample_counts.iter().position(|&n| n == 0) {
            return Err(InputError::new(format!("tasks[{i}].x"), "has no rows").into());
        }
        if dim > i32::MAX as usize || sample_counts.len() > i32::MAX as usize {
            return Err(InputError::new("tasks", "too large for 32-bit cuBLAS sizes").into());
        }
        let mut offsets = Vec::with_capacity(sample_counts.len() + 1);
        offsets.push(0usize);
        for &n in sample_counts {
            offsets.push(offsets.last().copied().unwrap_or(0) + n);
        }
        let total = offsets[sample_counts.len()];
        let (chunk_rows, task_chunks) = chunk_table(&offsets, CHUNK_ROWS);
        let num_chunks = chunk_rows.len() / 2;
        let needed =
            8 * (dim * total + 3 * total + num_chunks * dim + 2 * dim * sample_counts.len());
        let (free, _) = device.memory()?;
        if needed > free {
            return Err(GpuError::Cuda(format!(
                "the tasks need {:.2} GB of device memory, {:.2} GB are free",
                needed as f64 / 1e9,
                free as f64 / 1e9
            )));
        }
        let stream = &device.stream;
        let x = stream
            .alloc_zeros::<f64>(dim * total)
            .map_err(cuda("allocating X"))?;
        let y = stream
            .alloc_zeros::<f64>(total)
            .map_err(cuda("allocating y"))?;
        let offsets_i64: Vec<i64> = offsets.iter().map(|&o| o as i64).collect();
        let offsets_dev = stream.clone_htod(&offsets_i64).map_err(cuda("offsets"))?;
        let chunk_rows_dev = stream.clone_htod(&chunk_rows).map_err(cuda("chunks"))?;
        let task_chunks_dev = stream.clone_htod(&task_chunks).map_err(cuda("chunks"))?;
        Ok(Self {
            device,
            dim,
            labels_pm1,
            offsets,
            x,
            y,
            offsets_dev,
            chunk_rows_dev,
            task_chunks_dev,
            num_chunks,
            stats: vec![None; sample_counts.len()],
        })
    }

    /// Validates task `task` (shapes, finite values, labels) and copies it to the device.
    pub fn upload(&mut self, task: usize, data: &TaskData) -> Result<(), GpuError> {
        let m = self.num_tasks();
        if task >= m {
            return Err(InputError::new(
                "tasks",
                format!("task {task} uploaded, only {m} allocated"),
            )
            .into());
        }
        let (start, end) = (self.offsets[task], self.offsets[task + 1]);
        let field = format!("tasks[{task}].x");
        if data.xt.nrows() != self.dim {
            return invalid(
                &field,
                format!("has {} columns, expected {}", data.xt.nrows(), self.dim),
            )
            .map_err(GpuError::from);
        }
        if data.samples() != end - start {
            return invalid(
                &field,
                format!("has {} rows, expected {}", data.samples(), end - start),
            )
            .map_err(GpuError::from);
        }
        if data.y.len() != data.samples() {
            return invalid(
                format!("tasks[{task}].y"),
                format!(
                    "has {} entries but x has {} rows",
                    data.y.len(),
                    data.samples()
                ),
            )
            .map_err(GpuError::from);
        }
        crate::family::with_values!(data.xt, |x| crate::error::check_finite(&field, x))?;
        crate::error::check_finite(&format!("tasks[{task}].y"), data.y.as_slice())?;
        if self.labels_pm1 {
            if let Some(j) = data.y.iter().position(|&v| v != 1.0 && v != -1.0) {
                return invalid(
                    format!("tasks[{task}].y"),
                    format!(
                        "entry {j} is {}; logistic labels must be +1 or -1",
                        data.y[j]
                    ),
                )
                .map_err(GpuError::from);
            }
        }
        let d = self.dim;
        let stream = &self.device.stream;
        let mut xv = self.x.slice_mut(start * d..end * d);
        // The device holds f64: f32 samples are widened (exactly) on the way.
        let values: std::borrow::Cow<'_, [f64]> = match data.xt.values() {
            crate::family::SampleValues::F64(x) => std::borrow::Cow::Borrowed(x),
            crate::family::SampleValues::F32(x) => {
                std::borrow::Cow::Owned(crate::linalg::memory::widen_values(x))
            }
        };
        stream
            .memcpy_htod(&values[..], &mut xv)
            .map_err(cuda("uploading X"))?;
        drop(values);
        let mut yv = self.y.slice_mut(start..end);
        stream
            .memcpy_htod(data.y.as_slice(), &mut yv)
            .map_err(cuda("uploading y"))?;
        self.device.synchronize()?;
        let max_row_norm = data
            .xt
            .with_f64_view(|xt| xt.column_iter().map(|c| c.norm()).fold(0.0, f64::max));
        self.stats[task] = Some(TaskStats {
            max_row_norm,
            y_norm2: data.y.norm_squared(),
        });
        Ok(())
    }

    /// Allocates and uploads every task.
    pub fn from_tasks(
        device: Arc<GpuDevice>,
        tasks: &[TaskData],
        labels_pm1: bool,
    ) -> Result<Self, GpuError> {
        let dim = tasks.first().map(|t| t.xt.nrows()).unwrap_or(0);
        let counts: Vec<usize> = tasks.iter().map(|t| t.samples()).collect();
        let mut data = Self::allocate(device, dim, &counts, labels_pm1)?;
        for (i, task) in tasks.iter().enumerate() {
            data.upload(i, task)?;
        }
        Ok(data)
    }

    /// M: the number of tasks.
    pub fn num_tasks(&self) -> usize {
        self.offsets.len() - 1
    }

    /// d: the number of features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// N: the number of samples of all tasks together.
    pub fn total_samples(&self) -> usize {
        self.offsets[self.num_tasks()]
    }

    /// n_i: the number of samples of each task.
    pub fn sample_counts(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// The device the data live on.
    pub fn device(&self) -> &Arc<GpuDevice> {
        &self.device
    }

    /// Bytes of the design matrix on the device.
    pub fn data_bytes(&self) -> usize {
        8 * self.dim * self.total_samples()
    }

    fn stats(&self) -> Result<Vec<TaskStats>, GpuError> {
        self.stats
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| InputError::new(format!("tasks[{i}]"), "was never uploaded").into())
            })
            .collect()
    }

    /// `X_i^T X_i / n_i`, `-X_i^T y_i / n_i` and `||y_i||^2 / (2 n_i)` for
    /// every task: GEMM/GEMV on the device, d x d and d numbers downloaded per task.
    fn quadratic_forms(&self, stats: &[TaskStats]) -> Result<Vec<QuadraticForm>, GpuError> {
        let d = self.dim;
        let stream = &self.device.stream;
        let blas = &self.device.blas;
        let mut gram = stream
            .alloc_zeros::<f64>(d * d)
            .map_err(cuda("allocating a Gram matrix"))?;
        let mut xty = stream
            .alloc_zeros::<f64>(d)
            .map_err(cuda("allocating X^T y"))?;
        let mut host_gram = vec![0.0; d * d];
        let mut host_xty = vec![0.0; d];
        let mut forms = Vec::with_capacity(self.num_tasks());
        for (i, stat) in stats.iter().enumerate() {
            let (start, end) = (self.offsets[i], self.offsets[i + 1]);
            let inv_n = 1.0 / (end - start) as f64;
            let mut first = true;
            let mut row = start;
            while row < end {
                let stop = (row + max_columns(d)).min(end);
                let a = self.x.slice(row * d..stop * d);
                let yv = self.y.slice(row..stop);
                let beta = if first { 0.0 } else { 1.0 };
                // C = A A^T / n with A = X_i^T (d x rows, column-major).
                let gemm = GemmConfig {
                    transa: cublasOperation_t::CUBLAS_OP_N,
                    transb: cublasOperation_t::CUBLAS_OP_T,
                    m: d as i32,
                    n: d as i32,
                    k: (stop - row) as i32,
                    alpha: inv_n,
                    lda: d as i32,
                    ldb: d as i32,
                    beta,
                    ldc: d as i32,
                };
                let gemv = GemvConfig {
                    trans: cublasOperation_t::CUBLAS_OP_N,
                    m: d as i32,
                    n: (stop - row) as i32,
                    alpha: inv_n,
                    lda: d as i32,
                    incx: 1,
                    beta,
                    incy: 1,
                };
                // SAFETY: the sizes above match the allocations (d x rows, rows, d x d, d).
                unsafe {
                    blas.gemm(gemm, &a, &a, &mut gram)
                        .map_err(cuda("Gram GEMM"))?;
                    blas.gemv(gemv, &a, &yv, &mut xty)
                        .map_err(cuda("X^T y GEMV"))?;
                }
                first = false;
                row = stop;
            }
            stream
                .memcpy_dtoh(&gram, &mut host_gram)
                .map_err(cuda("downloading a Gram matrix"))?;
            stream
                .memcpy_dtoh(&xty, &mut host_xty)
                .map_err(cuda("downloading X^T y"))?;
            self.device.synchronize()?;
            let h = DMatrix::from_column_slice(d, d, &host_gram);
            // Exact symmetry (the product is symmetric up to rounding), as on the CPU.
            let hessian = (&h + h.transpose()) * 0.5;
            forms.push(QuadraticForm {
                hessian,
                linear: -DVector::from_column_slice(&host_xty),
                constant: stat.y_norm2 * inv_n / 2.0,
            });
        }
        Ok(forms)
    }
}

/// Which loss the link kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Squared,
    Logistic,
}

/// Device work buffers of one family.
#[derive(Debug)]
struct Scratch {
    theta: CudaSlice<f64>,
    z: CudaSlice<f64>,
    slopes: CudaSlice<f64>,
    losses: CudaSlice<f64>,
    /// Per-task gradients, d x M column-major.
    grads: CudaSlice<f64>,
    weights: CudaSlice<f64>,
    gradient: CudaSlice<f64>,
    norms: CudaSlice<f64>,
    partials: Option<CudaSlice<f64>>,
}

/// What both families share: the data, the buffers and the evaluation.
#[derive(Debug)]
struct GpuCore {
    data: GpuData,
    link: Link,
    l2: f64,
    kernel: GradientKernel,
    scratch: Mutex<Scratch>,
    forms: Vec<QuadraticForm>,
    stats: Vec<TaskStats>,
    /// (largest, smallest) eigenvalue of each Gram matrix, computed on first use.
    spectral: OnceLock<Vec<(f64, f64)>>,
}

impl GpuCore {
    fn new(data: GpuData, link: Link, l2: f64, kernel: GradientKernel) -> Result<Self, GpuError> {
        let stats = data.stats()?;
        let forms = data.quadratic_forms(&stats)?;
        let (d, m, n) = (data.dim, data.num_tasks(), data.total_samples());
        let stream = &data.device.stream;
        let zeros = |len: usize| {
            stream
                .alloc_zeros::<f64>(len)
                .map_err(cuda("allocating work buffers"))
        };
        let scratch = Scratch {
            theta: zeros(d)?,
            z: zeros(n)?,
            slopes: zeros(n)?,
            losses: zeros(m)?,
            grads: zeros(d * m)?,
            weights: zeros(m)?,
            gradient: zeros(d)?,
            norms: zeros(m)?,
            partials: match kernel {
                GradientKernel::Cublas => None,
                GradientKernel::Partials => Some(zeros(data.num_chunks * d)?),
            },
        };
        Ok(Self {
            data,
            link,
            l2,
            kernel,
            scratch: Mutex::new(scratch),
            forms,
            stats,
            spectral: OnceLock::new(),
        })
    }

    fn set_kernel(&mut self, kernel: GradientKernel) -> Result<(), GpuError> {
        let scratch = self.scratch.get_mut().unwrap_or_else(|p| p.into_inner());
        if kernel == GradientKernel::Partials && scratch.partials.is_none() {
            let len = self.data.num_chunks * self.data.dim;
            let partials = self
                .data
                .device
                .stream
                .alloc_zeros::<f64>(len)
                .map_err(cuda("allocating partial sums"))?;
            scratch.partials = Some(partials);
        }
        self.kernel = kernel;
        Ok(())
    }

    fn spectral(&self) -> &[(f64, f64)] {
        self.spectral.get_or_init(|| {
            self.forms
                .par_iter()
                .map(|f| {
                    let eigenvalues = f.hessian.clone().symmetric_eigenvalues();
                    (eigenvalues.max().max(0.0), eigenvalues.min().max(0.0))
                })
                .collect()
        })
    }

    fn penalty(&self, theta: &DVector<f64>) -> f64 {
        0.5 * self.l2 * theta.norm_squared()
    }

    /// theta up, `z = X theta`, link kernel: slopes and per-task losses on the device.
    fn margins_and_link(&self, theta: &DVector<f64>, sc: &mut Scratch) -> Result<(), GpuError> {
        let data = &self.data;
        let dev = &data.device;
        let d = data.dim;
        dev.stream
            .memcpy_htod(theta.as_slice(), &mut sc.theta)
            .map_err(cuda("uploading theta"))?;
        let total = data.total_samples();
        let mut start = 0;
        while start < total {
            let stop = (start + max_columns(d)).min(total);
            let a = data.x.slice(start * d..stop * d);
            let mut z = sc.z.slice_mut(start..stop);
            let cfg = GemvConfig {
                trans: cublasOperation_t::CUBLAS_OP_T,
                m: d as i32,
                n: (stop - start) as i32,
                alpha: 1.0,
                lda: d as i32,
                incx: 1,
                beta: 0.0,
                incy: 1,
            };
            // SAFETY: A is d x (stop - start), theta has d entries, z has stop - start.
            unsafe { dev.blas.gemv(cfg, &a, &sc.theta, &mut z) }.map_err(cuda("margins GEMV"))?;
            start = stop;
        }
        let function = match self.link {
            Link::Squared => &dev.kernels.squared_link,
            Link::Logistic => &dev.kernels.logistic_link,
        };
        let penalty = self.penalty(theta);
        let cfg = LaunchConfig {
            grid_dim: (data.num_tasks() as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = dev.stream.launch_builder(function);
        launch
            .arg(&sc.z)
            .arg(&data.y)
            .arg(&data.offsets_dev)
            .arg(&mut sc.slopes)
            .arg(&mut sc.losses)
            .arg(&penalty);
        // SAFETY: argument types and lengths match the kernel (offsets has M + 1 entries).
        unsafe { launch.launch(cfg) }.map_err(cuda("link kernel"))?;
        Ok(())
    }

    /// Column `task` of G: `X_task^T s_task` through cuBLAS (in pieces that fit 32-bit sizes).
    fn task_gradient_gemv(&self, task: usize, sc: &mut Scratch) -> Result<(), GpuError> {
        let data = &self.data;
        let d = data.dim;
        let (start, end) = (data.offsets[task], data.offsets[task + 1]);
        let mut row = start;
        let mut first = true;
        while row < end {
            let stop = (row + max_columns(d)).min(end);
            let a = data.x.slice(row * d..stop * d);
            let s = sc.slopes.slice(row..stop);
            let mut g = sc.grads.slice_mut(task * d..(task + 1) * d);
            let cfg = GemvConfig {
                trans: cublasOperation_t::CUBLAS_OP_N,
                m: d as i32,
                n: (stop - row) as i32,
                alpha: 1.0,
                lda: d as i32,
                incx: 1,
                beta: if first { 0.0 } else { 1.0 },
                incy: 1,
            };
            // SAFETY: A is d x (stop - row), s has stop - row entries, g has d.
            unsafe { data.device.blas.gemv(cfg, &a, &s, &mut g) }
                .map_err(cuda("task gradient GEMV"))?;
            first = false;
            row = stop;
        }
        Ok(())
    }

    /// G = [X_1^T s_1, ..., X_M^T s_M] (+ l2 theta in every column), and the column norms.
    fn task_gradients(&self, sc: &mut Scratch) -> Result<(), GpuError> {
        let data = &self.data;
        let dev = &data.device;
        let (d, m) = (data.dim, data.num_tasks());
        match self.kernel {
            GradientKernel::Cublas => {
                for task in 0..m {
                    self.task_gradient_gemv(task, sc)?;
                }
            }
            GradientKernel::Partials => {
                let Scratch {
                    slopes,
                    grads,
                    partials,
                    ..
                } = sc;
                let partials = partials
                    .as_mut()
                    .ok_or_else(|| GpuError::Cuda("partials buffer missing".into()))?;
                let dim = d as i32;
                let cfg = LaunchConfig {
                    grid_dim: (data.num_chunks as u32, 1, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut launch = dev.stream.launch_builder(&dev.kernels.gradient_partials);
                launch
                    .arg(&data.x)
                    .arg(&*slopes)
                    .arg(&data.chunk_rows_dev)
                    .arg(&dim)
                    .arg(&mut *partials);
                // SAFETY: x is d x N, slopes N, chunk_rows 2 per chunk, partials chunks x d.
                unsafe { launch.launch(cfg) }.map_err(cuda("gradient_partials kernel"))?;
                let cfg = LaunchConfig {
                    grid_dim: (m as u32, (d as u32).div_ceil(BLOCK), 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut launch = dev.stream.launch_builder(&dev.kernels.reduce_partials);
                launch
                    .arg(&*partials)
                    .arg(&data.task_chunks_dev)
                    .arg(&dim)
                    .arg(&mut *grads);
                // SAFETY: task_chunks has M + 1 entries, grads is d x M.
                unsafe { launch.launch(cfg) }.map_err(cuda("reduce_partials kernel"))?;
            }
        }
        let dim = d as i32;
        if self.l2 > 0.0 {
            let tasks = m as i32;
            let count = (d * m) as u64;
            let cfg = LaunchConfig {
                grid_dim: (count.div_ceil(BLOCK as u64) as u32, 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut launch = dev.stream.launch_builder(&dev.kernels.add_to_columns);
            launch
                .arg(&mut sc.grads)
                .arg(&sc.theta)
                .arg(&dim)
                .arg(&tasks)
                .arg(&self.l2);
            // SAFETY: grads is d x M, theta has d entries.
            unsafe { launch.launch(cfg) }.map_err(cuda("add_to_columns kernel"))?;
        }
        let cfg = LaunchConfig {
            grid_dim: (m as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = dev.stream.launch_builder(&dev.kernels.column_norms);
        launch.arg(&sc.grads).arg(&dim).arg(&mut sc.norms);
        // SAFETY: grads is d x M, norms has M entries.
        unsafe { launch.launch(cfg) }.map_err(cuda("column_norms kernel"))?;
        Ok(())
    }

    fn try_losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), GpuError> {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let sc = &mut *guard;
        self.margins_and_link(theta, sc)?;
        let dev = &self.data.device;
        dev.stream
            .memcpy_dtoh(&sc.losses, losses)
            .map_err(cuda("downloading losses"))?;
        dev.synchronize()
    }

    fn try_evaluate(
        &self,
        theta: &DVector<f64>,
        weigh: &mut Weigh<'_>,
        out: &mut Evaluation,
    ) -> Result<(), GpuError> {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let sc = &mut *guard;
        let data = &self.data;
        let dev = &data.device;
        let (d, m) = (data.dim, data.num_tasks());
        self.margins_and_link(theta, sc)?;
        self.task_gradients(sc)?;
        dev.stream
            .memcpy_dtoh(&sc.losses, &mut out.losses[..])
            .map_err(cuda("downloading losses"))?;
        dev.synchronize()?;
        weigh(&out.losses, &mut out.weights);
        dev.stream
            .memcpy_htod(&out.weights[..], &mut sc.weights)
            .map_err(cuda("uploading weights"))?;
        let cfg = GemvConfig {
            trans: cublasOperation_t::CUBLAS_OP_N,
            m: d as i32,
            n: m as i32,
            alpha: 1.0,
            lda: d as i32,
            incx: 1,
            beta: 0.0,
            incy: 1,
        };
        // SAFETY: grads is d x M, weights M, gradient d.
        unsafe { dev.blas.gemv(cfg, &sc.grads, &sc.weights, &mut sc.gradient) }
            .map_err(cuda("weighted gradient GEMV"))?;
        dev.stream
            .memcpy_dtoh(&sc.gradient, out.gradient.as_mut_slice())
            .map_err(cuda("downloading the gradient"))?;
        dev.stream
            .memcpy_dtoh(&sc.norms, &mut out.task_gradient_norms[..])
            .map_err(cuda("downloading gradient norms"))?;
        dev.synchronize()
    }

    fn try_task_gradient(
        &self,
        task: usize,
        theta: &DVector<f64>,
        gradient: &mut DVector<f64>,
    ) -> Result<(), GpuError> {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let sc = &mut *guard;
        let d = self.data.dim;
        self.margins_and_link(theta, sc)?;
        self.task_gradient_gemv(task, sc)?;
        let dev = &self.data.device;
        if gradient.len() != d {
            *gradient = DVector::zeros(d);
        }
        let column = sc.grads.slice(task * d..(task + 1) * d);
        dev.stream
            .memcpy_dtoh(&column, gradient.as_mut_slice())
            .map_err(cuda("downloading a task gradient"))?;
        dev.synchronize()?;
        gradient.axpy(self.l2, theta, 1.0);
        Ok(())
    }

    /// Bytes one evaluation moves through device memory (the data twice,
    /// plus margins, labels, slopes and, for the partials kernel, the partial sums).
    fn bytes_per_evaluation(&self) -> f64 {
        let (d, n) = (self.data.dim as f64, self.data.total_samples() as f64);
        let m = self.data.num_tasks() as f64;
        let mut bytes = 8.0 * (2.0 * d * n + 6.0 * n + 3.0 * d * m);
        if self.kernel == GradientKernel::Partials {
            bytes += 8.0 * 2.0 * self.data.num_chunks as f64 * d;
        }
        bytes
    }
}

macro_rules! shared_methods {
    () => {
        /// The device the family's data live on.
        pub fn device(&self) -> &Arc<GpuDevice> {
            &self.core.data.device
        }

        /// How the task gradients are formed on the device.
        pub fn gradient_kernel(&self) -> GradientKernel {
            self.core.kernel
        }

        /// The same family, forming the task gradients with `kernel`.
        pub fn with_gradient_kernel(mut self, kernel: GradientKernel) -> Result<Self, GpuError> {
            self.core.set_kernel(kernel)?;
            Ok(self)
        }

        /// Bytes one `evaluate` reads and writes in device memory.
        pub fn bytes_per_evaluation(&self) -> f64 {
            self.core.bytes_per_evaluation()
        }

        /// Bytes of the design matrix on the device.
        pub fn data_bytes(&self) -> usize {
            self.core.data.data_bytes()
        }

        /// The Gram-based forms (`X_i^T X_i / n_i`, ...) computed on the device.
        pub fn gram_forms(&self) -> &[QuadraticForm] {
            &self.core.forms
        }

        /// (largest, smallest) eigenvalue of each task's Gram matrix.
        pub fn gram_spectrum(&self) -> &[(f64, f64)] {
            self.core.spectral()
        }
    };
}

macro_rules! shared_trait_methods {
    () => {
        fn num_tasks(&self) -> usize {
            self.core.data.num_tasks()
        }

        fn dim(&self) -> usize {
            self.core.data.dim()
        }

        fn losses(&self, theta: &DVector<f64>, losses: &mut [f64]) -> Result<(), Error> {
            self.core
                .try_losses(theta, losses)
                .map_err(|e| Error::Device(Box::new(e)))
        }

        fn evaluate(
            &self,
            theta: &DVector<f64>,
            weigh: &mut Weigh<'_>,
            out: &mut Evaluation,
        ) -> Result<(), Error> {
            self.core
                .try_evaluate(theta, weigh, out)
                .map_err(|e| Error::Device(Box::new(e)))
        }

        fn task_gradient(
            &self,
            task: usize,
            theta: &DVector<f64>,
            gradient: &mut DVector<f64>,
        ) -> Result<(), Error> {
            self.core
                .try_task_gradient(task, theta, gradient)
                .map_err(|e| Error::Device(Box::new(e)))
        }
    };
}

/// Least squares `f_i(theta) = ||X_i theta - y_i||^2 / (2 n_i)` on the GPU.
#[derive(Debug)]
pub struct GpuLeastSquares {
    core: GpuCore,
}

impl GpuLeastSquares {
    /// Takes uploaded data; computes the Gram matrices on the device.
    pub fn new(data: GpuData, kernel: GradientKernel) -> Result<Self, GpuError> {
        Ok(Self {
            core: GpuCore::new(data, Link::Squared, 0.0, kernel)?,
        })
    }

    /// Uploads `tasks` to `device`, then as [`GpuLeastSquares::new`].
    pub fn from_tasks(
        device: Arc<GpuDevice>,
        tasks: &[TaskData],
        kernel: GradientKernel,
    ) -> Result<Self, GpuError> {
        Self::new(GpuData::from_tasks(device, tasks, false)?, kernel)
    }

    shared_methods!();
}

impl TaskFamily for GpuLeastSquares {
    fn kind(&self) -> &'static str {
        "least_squares"
    }

    shared_trait_methods!();

    fn smoothness(&self) -> f64 {
        self.core.spectral().iter().map(|s| s.0).fold(0.0, f64::max)
    }

    fn strong_convexity(&self) -> f64 {
        self.core
            .spectral()
            .iter()
            .map(|s| s.1)
            .fold(f64::INFINITY, f64::min)
    }

    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        // ||Q theta + l|| <= ||Q|| r + ||l||
        self.core
            .forms
            .iter()
            .zip(self.core.spectral())
            .map(|(f, s)| s.0 * radius + f.linear.norm())
            .fold(0.0, f64::max)
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        // ||X theta - y|| / sqrt(n) <= sqrt(||Q||) r + ||y|| / sqrt(n)
        self.core
            .forms
            .iter()
            .zip(self.core.spectral())
            .map(|(f, s)| {
                let reach = s.0.sqrt() * radius + (2.0 * f.constant).sqrt();
                0.5 * reach * reach
            })
            .fold(0.0, f64::max)
    }

    fn certified_lower_bound(&self, _theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        if at.weights.iter().any(|w| !w.is_finite()) {
            return f64::NEG_INFINITY;
        }
        quadratic_dual_bound(&self.core.forms, &at.weights, ball)
    }

    fn quadratic_forms(&self) -> Option<&[QuadraticForm]> {
        Some(&self.core.forms)
    }

    // sample_counts stays None: minibatch evaluation is CPU-only, so the
    // stochastic method refuses this family cleanly.
}

/// l2-regularised logistic regression tasks (labels +1/-1) on the GPU.
#[derive(Debug)]
pub struct GpuLogistic {
    core: GpuCore,
}

impl GpuLogistic {
    /// Takes uploaded data (allocated with `labels_pm1 = true`).
    pub fn new(data: GpuData, l2: f64, kernel: GradientKernel) -> Result<Self, GpuError> {
        check_positive("l2", l2)?;
        if !data.labels_pm1 {
            return Err(InputError::new(
                "tasks",
                "logistic data must be uploaded with +1/-1 label checks",
            )
            .into());
        }
        Ok(Self {
            core: GpuCore::new(data, Link::Logistic, l2, kernel)?,
        })
    }

    /// Uploads `tasks` to `device` (with label checks), then as [`GpuLogistic::new`].
    pub fn from_tasks(
        device: Arc<GpuDevice>,
        tasks: &[TaskData],
        l2: f64,
        kernel: GradientKernel,
    ) -> Result<Self, GpuError> {
        check_positive("l2", l2)?;
        Self::new(GpuData::from_tasks(device, tasks, true)?, l2, kernel)
    }

    /// The l2 penalty: every task is `l2`-strongly convex.
    pub fn l2(&self) -> f64 {
        self.core.l2
    }

    shared_methods!();
}

impl TaskFamily for GpuLogistic {
    fn kind(&self) -> &'static str {
        "logistic"
    }

    shared_trait_methods!();

    fn smoothness(&self) -> f64 {
        // Hessian = X^T diag(s(1-s)) X / n + l2 I with s(1-s) <= 1/4.
        self.core
            .spectral()
            .iter()
            .map(|s| 0.25 * s.0)
            .fold(0.0, f64::max)
            + self.core.l2
    }

    fn strong_convexity(&self) -> f64 {
        self.core.l2
    }

    fn gradient_bound_on_ball(&self, radius: f64) -> f64 {
        self.core
            .spectral()
            .iter()
            .map(|s| s.0.sqrt())
            .fold(0.0, f64::max)
            + self.core.l2 * radius
    }

    fn loss_bound_on_ball(&self, radius: f64) -> f64 {
        self.core
            .stats
            .iter()
            .map(|s| std::f64::consts::LN_2 + s.max_row_norm * radius)
            .fold(0.0, f64::max)
            + 0.5 * self.core.l2 * radius * radius
    }

    fn certified_lower_bound(&self, theta: &DVector<f64>, at: &Evaluation, ball: &Ball) -> f64 {
        strongly_convex_bound(at.weighted_loss(), &at.gradient, theta, self.core.l2, ball)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_and_never_span_tasks() {
        let offsets = [0, 5, 5 + 512, 5 + 512 + 300];
        let (rows, tasks) = chunk_table(&offsets, 256);
        assert_eq!(tasks, vec![0, 1, 3, 5]);
        let pairs: Vec<(i64, i64)> = rows.chunks(2).map(|c| (c[0], c[1])).collect();
        assert_eq!(
            pairs,
            vec![(0, 5), (5, 261), (261, 517), (517, 773), (773, 817)]
        );
        // Each task's chunks lie inside the task.
        for (t, w) in tasks.windows(2).enumerate() {
            for c in w[0]..w[1] {
                let (a, b) = pairs[c as usize];
                assert!(a >= offsets[t] as i64 && b <= offsets[t + 1] as i64 && a < b);
            }
        }
    }

    #[test]
    fn column_pieces_fit_32_bit_sizes() {
        assert_eq!(max_columns(1024), 2_097_151);
        assert!(max_columns(1024) * 1024 <= i32::MAX as usize);
        assert_eq!(max_columns(usize::MAX), 1);
    }
}
