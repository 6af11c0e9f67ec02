//! Task data `(X_i, y_i)` and the fused one-pass evaluation shared by the
//! least-squares and logistic families.
//!
//! `X_i` is stored transposed (d x n_i, column-major), so each sample is one
//! contiguous column: the layout of a C-order n_i x d `.npy` file. One pass
//! reads each sample once: `z = x . theta`, then `(loss, slope) = link(z, y)`,
//! then `g += slope * x` while `x` is still in L1.

use crate::error::{check_finite, first_non_finite, invalid, InputError};
use crate::linalg::element::{Dtype, Element};
use crate::linalg::gram;
use crate::linalg::kernels::{axpy, dot, fused_rows, loss_rows};
use crate::linalg::memory::Values;
use nalgebra::{DMatrix, DMatrixView, DVector};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};

/// A task's samples as a d x n matrix (one sample per column, column-major):
/// the byte layout of a C-order n x d `.npy` file, owned or mapped from it
/// (see [`crate::linalg::memory`]), stored as f64 or as f32 (see
/// [`crate::linalg::element`]: f32 values are widened exactly wherever they
/// are used, and every sum is an f64 sum).
#[derive(Debug, Clone)]
pub struct Samples {
    storage: Storage,
    dim: usize,
    count: usize,
    /// f32 storage only: an f64 copy, made the first time [`Samples::as_slice`]
    /// is called (the library's own passes read the f32 values directly).
    widened: OnceLock<Vec<f64>>,
}

#[derive(Debug, Clone)]
enum Storage {
    F64(Values<f64>),
    F32(Values<f32>),
}

/// The stored values of [`Samples`], in their own type.
#[derive(Debug, Clone, Copy)]
pub enum SampleValues<'a> {
    /// Stored as f64.
    F64(&'a [f64]),
    /// Stored as f32.
    F32(&'a [f32]),
}

/// Runs `$body` with `$x` bound to the stored values of `$samples` (a slice
/// of f64 or of f32): the one place where the two storage types part ways.
macro_rules! with_values {
    ($samples:expr, |$x:ident| $body:expr) => {
        match $samples.values() {
            $crate::family::SampleValues::F64($x) => $body,
            $crate::family::SampleValues::F32($x) => $body,
        }
    };
}
pub(crate) use with_values;

impl PartialEq for Samples {
    /// Equal shapes and equal values (f32 values compared after widening).
    fn eq(&self, other: &Self) -> bool {
        if (self.dim, self.count) != (other.dim, other.count) {
            return false;
        }
        match (self.values(), other.values()) {
            (SampleValues::F64(a), SampleValues::F64(b)) => a == b,
            (SampleValues::F32(a), SampleValues::F32(b)) => a == b,
            (SampleValues::F64(a), SampleValues::F32(b))
            | (SampleValues::F32(b), SampleValues::F64(a)) => {
                a.iter().zip(b).all(|(x, y)| *x == y.widen())
            }
        }
    }
}

impl Samples {
    /// `count` samples of length `dim`, one after another in `values`.
    pub fn new(dim: usize, count: usize, values: Values) -> Self {
        Self::with_storage(dim, count, Storage::F64(values))
    }

    /// As [`Samples::new`], for values stored as f32 (kept as f32: half the
    /// memory and half the bytes per pass).
    pub fn new_f32(dim: usize, count: usize, values: Values<f32>) -> Self {
        Self::with_storage(dim, count, Storage::F32(values))
    }

    fn with_storage(dim: usize, count: usize, storage: Storage) -> Self {
        let len = match &storage {
            Storage::F64(v) => v.as_slice().len(),
            Storage::F32(v) => v.as_slice().len(),
        };
        assert_eq!(len, dim * count, "samples: {count} x {dim} values expected");
        Self {
            storage,
            dim,
            count,
            widened: OnceLock::new(),
        }
    }

    /// From a d x n matrix (copied onto huge pages where large).
    pub fn from_matrix(xt: &DMatrix<f64>) -> Self {
        let values = Values::Owned(crate::linalg::memory::copy_for_streaming(xt.as_slice()));
        Self::new(xt.nrows(), xt.ncols(), values)
    }

    /// From a d x n matrix of f32 values, stored as f32.
    pub fn from_matrix_f32(xt: &DMatrix<f32>) -> Self {
        let values = Values::Owned(crate::linalg::memory::copy_values(xt.as_slice()));
        Self::new_f32(xt.nrows(), xt.ncols(), values)
    }

    /// The same samples stored as `dtype`: to f32, each value is rounded to
    /// the nearest f32 (infinite beyond f32's range); to f64, widened exactly.
    pub fn to_dtype(&self, dtype: Dtype) -> Self {
        match (dtype, self.values()) {
            (Dtype::F64, SampleValues::F64(_)) | (Dtype::F32, SampleValues::F32(_)) => self.clone(),
            (Dtype::F64, SampleValues::F32(x)) => Self::new(
                self.dim,
                self.count,
                Values::Owned(crate::linalg::memory::widen_values(x)),
            ),
            (Dtype::F32, SampleValues::F64(x)) => {
                let mut narrow = crate::linalg::memory::zeroed_values::<f32>(x.len());
                for (n, v) in narrow.iter_mut().zip(x) {
                    *n = f32::narrow(*v);
                }
                Self::new_f32(self.dim, self.count, Values::Owned(narrow))
            }
        }
    }

    /// The type the values are stored in.
    pub fn dtype(&self) -> Dtype {
        match self.storage {
            Storage::F64(_) => Dtype::F64,
            Storage::F32(_) => Dtype::F32,
        }
    }

    /// The stored values, in their own type, sample after sample.
    pub fn values(&self) -> SampleValues<'_> {
        match &self.storage {
            Storage::F64(v) => SampleValues::F64(v.as_slice()),
            Storage::F32(v) => SampleValues::F32(v.as_slice()),
        }
    }

    /// Bytes the stored values occupy.
    pub fn bytes(&self) -> usize {
        self.dim * self.count * self.dtype().bytes()
    }

    /// The dimension d.
    pub fn nrows(&self) -> usize {
        self.dim
    }

    /// The number of samples n.
    pub fn ncols(&self) -> usize {
        self.count
    }

    /// The values as f64, sample after sample (`dim` per sample). For f32
    /// storage this makes (once) and keeps a widened f64 copy: twice the
    /// memory of the f64 data. Prefer [`Samples::values`].
    pub fn as_slice(&self) -> &[f64] {
        match &self.storage {
            Storage::F64(v) => v.as_slice(),
            Storage::F32(v) => self
                .widened
                .get_or_init(|| crate::linalg::memory::widen_values(v.as_slice())),
        }
    }

    /// Writable values (a mapping is copied first; f32 storage is widened,
    /// exactly, to f64 storage of its own).
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        if let Storage::F32(v) = &self.storage {
            let wide = crate::linalg::memory::widen_values(v.as_slice());
            self.storage = Storage::F64(Values::Owned(wide));
            self.widened = OnceLock::new();
        }
        match &mut self.storage {
            Storage::F64(v) => v.as_mut_slice(),
            Storage::F32(_) => unreachable!("widened above"),
        }
    }

    /// The d x n matrix, as a view for nalgebra's products (see
    /// [`Samples::as_slice`] for f32 storage).
    pub fn view(&self) -> DMatrixView<'_, f64> {
        DMatrixView::from_slice(self.as_slice(), self.dim, self.count)
    }

    /// Runs `f` on the d x n matrix as f64: a view of f64 storage, or a
    /// temporary widened copy of f32 storage (not kept).
    pub fn with_f64_view<R>(&self, f: impl FnOnce(DMatrixView<'_, f64>) -> R) -> R {
        match &self.storage {
            Storage::F64(v) => f(DMatrixView::from_slice(v.as_slice(), self.dim, self.count)),
            Storage::F32(v) => {
                let wide = crate::linalg::memory::widen_values(v.as_slice());
                f(DMatrixView::from_slice(&wide, self.dim, self.count))
            }
        }
    }

    /// Sample `j` as f64 values (borrowed from f64 storage, widened from f32).
    pub fn sample_f64(&self, j: usize) -> Cow<'_, [f64]> {
        let d = self.dim;
        match self.values() {
            SampleValues::F64(x) => Cow::Borrowed(&x[j * d..(j + 1) * d]),
            SampleValues::F32(x) => {
                Cow::Owned(x[j * d..(j + 1) * d].iter().map(|v| v.widen()).collect())
            }
        }
    }

    /// The largest |value| (0 for none; NaN is skipped).
    pub fn largest_magnitude(&self) -> f64 {
        with_values!(self, |x| crate::problem::scaling::largest_magnitude(x))
    }

    /// Whether the values are mapped from a file rather than owned.
    pub fn is_mapped(&self) -> bool {
        match &self.storage {
            Storage::F64(v) => v.is_mapped(),
            Storage::F32(v) => v.is_mapped(),
        }
    }

    /// The same samples in memory of their own, on huge pages (see
    /// [`Values::into_resident`]): for data that the passes stream every iteration.
    pub fn into_resident(self) -> Self {
        let storage = match self.storage {
            Storage::F64(v) => Storage::F64(v.into_resident()),
            Storage::F32(v) => Storage::F32(v.into_resident()),
        };
        Self { storage, ..self }
    }
}

/// A task's targets `y_i`: f64 values in memory of their own, or shared
/// with their owner and read in place (a host language's array; see
/// [`Values::Shared`]). Reads as a slice (`Deref`) or as a column vector
/// ([`Targets::view`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Targets(Values<f64>);

impl Targets {
    /// Targets read in place from values someone else owns.
    pub fn shared(values: std::sync::Arc<dyn crate::linalg::memory::SharedValues>) -> Self {
        Self(Values::Shared(values))
    }

    /// The targets as a column vector, in place.
    pub fn view(&self) -> nalgebra::DVectorView<'_, f64> {
        nalgebra::DVectorView::from_slice(self.0.as_slice(), self.0.as_slice().len())
    }

    /// The targets as an owned vector (a copy).
    pub fn to_vector(&self) -> DVector<f64> {
        DVector::from_column_slice(self.0.as_slice())
    }

    /// The values, in place.
    pub fn as_slice(&self) -> &[f64] {
        self.0.as_slice()
    }

    /// `||y||^2` (nalgebra's sum, as for a `DVector`).
    pub fn norm_squared(&self) -> f64 {
        self.view().norm_squared()
    }

    /// The values, writable (shared values are copied first).
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        self.0.as_mut_slice()
    }

    /// Whether the values are read in place from their owner.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Values::Shared(_))
    }
}

impl std::ops::Deref for Targets {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        self.0.as_slice()
    }
}

impl From<Values<f64>> for Targets {
    fn from(values: Values<f64>) -> Self {
        Self(values)
    }
}

impl From<DVector<f64>> for Targets {
    fn from(y: DVector<f64>) -> Self {
        Self(Values::Owned(y.data.into()))
    }
}

/// One task's samples: `xt` is d x n (one column per sample), `y` has n entries.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    /// `X_i^T`: the samples, d x n (one column per sample).
    pub xt: Samples,
    /// `y_i`: targets (least squares) or +1/-1 labels (logistic), one per sample.
    pub y: Targets,
}

impl TaskData {
    /// From an n x d design matrix (one row per sample). The samples are
    /// stored on huge pages where available (see [`crate::linalg::memory`]).
    pub fn from_rows(x: &DMatrix<f64>, y: DVector<f64>) -> Self {
        let (n, d) = x.shape();
        let mut xt = DMatrix::from_vec(d, n, crate::linalg::memory::zeroed_for_streaming(n * d));
        x.transpose_to(&mut xt);
        let xt = Samples::new(d, n, Values::Owned(xt.data.into()));
        Self { xt, y: y.into() }
    }

    /// From a d x n matrix of samples (one per column).
    pub fn from_columns(xt: &DMatrix<f64>, y: DVector<f64>) -> Self {
        Self {
            xt: Samples::from_matrix(xt),
            y: y.into(),
        }
    }

    /// n: the number of samples.
    pub fn samples(&self) -> usize {
        self.xt.ncols()
    }

    /// Sample `j`: its d features, `x_j` (see [`Samples::as_slice`] for f32
    /// storage; [`Samples::sample_f64`] copies one sample only).
    pub fn sample(&self, j: usize) -> &[f64] {
        let d = self.xt.nrows();
        &self.xt.as_slice()[j * d..(j + 1) * d]
    }
}

/// `x . x` in f64 (f32 values widened first).
fn self_dot<T: Element>(x: &[T]) -> f64 {
    crate::linalg::kernels::dot_self(x)
}

/// Rows per chunk of the parallel pass. Fixed (not derived from the thread
/// count) so the summation order, and therefore every bit of the result, is
/// the same for any number of threads.
const CHUNK_ROWS: usize = 1024;

/// Data below this many f64 entries is processed on the calling thread.
const PARALLEL_THRESHOLD: usize = 1 << 16;

#[derive(Debug, Clone, Copy)]
struct Chunk {
    task: usize,
    start: usize,
    end: usize,
}

/// Shapes, finiteness (of the samples where `scan_samples`) and (for logistic
/// regression) labels of task `i`.
fn check_task(
    i: usize,
    task: &TaskData,
    dim: usize,
    labels_pm1: bool,
    scan_samples: bool,
) -> Result<(), InputError> {
    if task.xt.nrows() != dim {
        return invalid(
            format!("tasks[{i}].x"),
            format!(
                "has {} columns, expected {dim} (as tasks[0].x)",
                task.xt.nrows()
            ),
        );
    }
    if task.samples() == 0 {
        return invalid(format!("tasks[{i}].x"), "has no rows");
    }
    if task.y.len() != task.samples() {
        return invalid(
            format!("tasks[{i}].y"),
            format!(
                "has {} entries but x has {} rows",
                task.y.len(),
                task.samples()
            ),
        );
    }
    if scan_samples {
        check_samples_finite(i, task, dim)?;
    }
    check_finite(&format!("tasks[{i}].y"), task.y.as_slice())?;
    if labels_pm1 {
        if let Some(j) = task.y.iter().position(|&v| v != 1.0 && v != -1.0) {
            return invalid(
                format!("tasks[{i}].y"),
                format!(
                    "entry {j} is {}; logistic labels must be +1 or -1",
                    task.y[j]
                ),
            );
        }
    }
    Ok(())
}

/// The first NaN or infinity among task `i`'s samples, as `[row, column]`.
fn check_samples_finite(i: usize, task: &TaskData, dim: usize) -> Result<(), InputError> {
    let first = with_values!(task.xt, |x| first_non_finite(x).map(|k| (k, x[k].widen())));
    match first {
        None => Ok(()),
        // Stored sample by sample: entry k is row k / d, column k % d of the file.
        Some((k, value)) => invalid(
            format!("tasks[{i}].x"),
            format!(
                "entry [{}, {}] is {value} (NaN or infinite values are not allowed)",
                k / dim,
                k % dim,
            ),
        ),
    }
}

/// A Gram job on samples stored as f64 or f32.
enum AnyGramJob<'a> {
    F64(gram::GramJob<'a, f64>),
    F32(gram::GramJob<'a, f32>),
}

impl AnyGramJob<'_> {
    fn run(self, c: &mut [f64]) -> bool {
        match self {
            AnyGramJob::F64(job) => job.run(c),
            AnyGramJob::F32(job) => job.run(c),
        }
    }
}

/// `(X^T X / n, X^T y / n)` of one task.
pub type GramAndMoment = (DMatrix<f64>, DVector<f64>);

/// Sizes of one task's data, as upper bounds (rounding included): the
/// certificates' a posteriori error bounds are written in these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleNorms {
    /// `||X||_F^2`.
    pub frobenius2: f64,
    /// `||y||`.
    pub y_norm: f64,
    /// `max_j ||x_j||`.
    pub largest_sample: f64,
    /// `||X^T y / n||` (least squares: `||l||`).
    pub moment_norm: f64,
    /// `||y||^2 / (2 n)` (least squares: `c`).
    pub half_mean_square: f64,
}

/// M tasks of data with preallocated scratch for the fused pass.
#[derive(Debug)]
pub struct DataTasks {
    tasks: Vec<TaskData>,
    dim: usize,
    chunks: Vec<Chunk>,
    /// `chunks.len()` slots of `dim + 1`: partial gradient, then partial loss.
    partials: Mutex<Vec<f64>>,
}

impl DataTasks {
    /// Validates shapes and values. `labels_pm1` requires labels in {+1, -1}.
    pub fn new(tasks: Vec<TaskData>, labels_pm1: bool) -> Result<Self, InputError> {
        Self::with_deferred_sample_checks(tasks, labels_pm1, &[])
    }

    /// As [`DataTasks::new`], except that the samples of the tasks with
    /// `deferred[i]` are not scanned for NaN and infinite values here: the
    /// caller completes the check with [`DataTasks::checked_grams_and_moments`]
    /// before using them (one pass over the data instead of two).
    pub fn with_deferred_sample_checks(
        tasks: Vec<TaskData>,
        labels_pm1: bool,
        deferred: &[bool],
    ) -> Result<Self, InputError> {
        if tasks.is_empty() {
            return invalid("tasks", "no tasks given");
        }
        let dim = tasks[0].xt.nrows();
        if dim == 0 {
            return invalid("tasks[0].x", "has no columns (dimension 0)");
        }
        // Tasks are checked in parallel (large data); the first error in task
        // order is reported.
        let checks: Vec<Result<(), InputError>> = tasks
            .par_iter()
            .enumerate()
            .map(|(i, task)| {
                let deferred = deferred.get(i).copied().unwrap_or(false);
                check_task(i, task, dim, labels_pm1, !deferred)
            })
            .collect();
        checks.into_iter().collect::<Result<(), InputError>>()?;
        let mut chunks = Vec::new();
        for (task, data) in tasks.iter().enumerate() {
            let n = data.samples();
            let mut start = 0;
            while start < n {
                let end = (start + CHUNK_ROWS).min(n);
                chunks.push(Chunk { task, start, end });
                start = end;
            }
        }
        let partials = Mutex::new(vec![0.0; chunks.len() * (dim + 1)]);
        Ok(Self {
            tasks,
            dim,
            chunks,
            partials,
        })
    }

    /// The tasks' data, in task order.
    pub fn tasks(&self) -> &[TaskData] {
        &self.tasks
    }

    /// d: the number of features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// M: the number of tasks.
    pub fn num_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Total number of entries in the design matrices.
    pub fn data_len(&self) -> usize {
        self.tasks.iter().map(|t| t.xt.nrows() * t.xt.ncols()).sum()
    }

    /// Bytes the design matrices occupy as stored (4 or 8 per entry).
    pub fn data_bytes(&self) -> usize {
        self.tasks.iter().map(|t| t.xt.bytes()).sum()
    }

    fn parallel(&self) -> bool {
        self.data_len() >= PARALLEL_THRESHOLD && rayon::current_num_threads() > 1
    }

    /// The fused pass over the tasks with `selected[i]`: `losses[i] = mean_j loss`
    /// and column i of `gradients` = `mean_j slope_j x_j`, where
    /// `(loss, slope) = link(x_j . theta, y_j)`.
    pub fn fused_pass<L>(
        &self,
        theta: &DVector<f64>,
        link: L,
        selected: &[bool],
        losses: &mut [f64],
        gradients: &mut DMatrix<f64>,
    ) where
        L: Fn(f64, f64) -> (f64, f64) + Sync,
    {
        let d = self.dim;
        let theta = theta.as_slice();
        let mut partials = self.partials.lock().expect("scratch lock poisoned");
        let work = |(slot, chunk): (&mut [f64], &Chunk)| {
            if !selected[chunk.task] {
                return;
            }
            let data = &self.tasks[chunk.task];
            let (gradient, loss) = slot.split_at_mut(d);
            gradient.fill(0.0);
            loss[0] = with_values!(data.xt, |x| fused_rows(
                &x[chunk.start * d..chunk.end * d],
                &data.y.as_slice()[chunk.start..chunk.end],
                theta,
                &link,
                gradient,
            ));
        };
        if self.parallel() {
            partials
                .par_chunks_mut(d + 1)
                .zip(self.chunks.par_iter())
                .for_each(work);
        } else {
            partials
                .chunks_mut(d + 1)
                .zip(self.chunks.iter())
                .for_each(work);
        }
        // Reduce in chunk order (fixed), then scale by 1/n.
        for (i, &on) in selected.iter().enumerate() {
            if on {
                losses[i] = 0.0;
                gradients.column_mut(i).fill(0.0);
            }
        }
        for (slot, chunk) in partials.chunks(d + 1).zip(&self.chunks) {
            if !selected[chunk.task] {
                continue;
            }
            losses[chunk.task] += slot[d];
            let mut column = gradients.column_mut(chunk.task);
            for (g, p) in column.iter_mut().zip(&slot[..d]) {
                *g += p;
            }
        }
        for (i, &on) in selected.iter().enumerate() {
            if on {
                let inv_n = 1.0 / self.tasks[i].samples() as f64;
                losses[i] *= inv_n;
                gradients.column_mut(i).scale_mut(inv_n);
            }
        }
    }

    /// Losses only: `losses[i] = mean_j loss(x_j . theta, y_j)`.
    pub fn loss_pass<L>(&self, theta: &DVector<f64>, loss: L, losses: &mut [f64])
    where
        L: Fn(f64, f64) -> f64 + Sync,
    {
        let d = self.dim;
        let theta = theta.as_slice();
        let mut partials = self.partials.lock().expect("scratch lock poisoned");
        let work = |(slot, chunk): (&mut [f64], &Chunk)| {
            let data = &self.tasks[chunk.task];
            slot[d] = with_values!(data.xt, |x| loss_rows(
                &x[chunk.start * d..chunk.end * d],
                &data.y.as_slice()[chunk.start..chunk.end],
                theta,
                &loss,
            ));
        };
        if self.parallel() {
            partials
                .par_chunks_mut(d + 1)
                .zip(self.chunks.par_iter())
                .for_each(work);
        } else {
            partials
                .chunks_mut(d + 1)
                .zip(self.chunks.iter())
                .for_each(work);
        }
        losses.fill(0.0);
        for (slot, chunk) in partials.chunks(d + 1).zip(&self.chunks) {
            losses[chunk.task] += slot[d];
        }
        for (l, t) in losses.iter_mut().zip(&self.tasks) {
            *l /= t.samples() as f64;
        }
    }

    /// The fused pass restricted to the given rows of each task (minibatch
    /// plug-in estimates). Tasks are processed in parallel, rows in order.
    pub fn minibatch_pass<L>(
        &self,
        theta: &DVector<f64>,
        link: L,
        rows: &[Vec<usize>],
        losses: &mut [f64],
        gradients: &mut DMatrix<f64>,
    ) where
        L: Fn(f64, f64) -> (f64, f64) + Sync,
    {
        let d = self.dim;
        let theta_slice = theta.as_slice();
        gradients
            .as_mut_slice()
            .par_chunks_mut(d)
            .zip(losses.par_iter_mut())
            .enumerate()
            .for_each(|(i, (gradient, loss))| {
                let data = &self.tasks[i];
                gradient.fill(0.0);
                let mut sum = 0.0;
                with_values!(data.xt, |samples| {
                    for &j in &rows[i] {
                        let x = &samples[j * d..(j + 1) * d];
                        let (l, slope) = link(dot(x, theta_slice), data.y[j]);
                        sum += l;
                        axpy(slope, x, gradient);
                    }
                });
                let inv = 1.0 / rows[i].len().max(1) as f64;
                *loss = sum * inv;
                for g in gradient.iter_mut() {
                    *g *= inv;
                }
            });
    }

    /// `X_i^T X_i / n_i` for one task (see [`DataTasks::grams`]).
    pub fn gram(&self, task: usize) -> DMatrix<f64> {
        self.grams_and_moments_of(&[task])
            .expect("samples are checked at construction")
            .pop()
            .expect("one task")
            .0
    }

    /// `X_i^T X_i / n_i` for every task (see [`DataTasks::grams_and_moments`]).
    pub fn grams(&self) -> Vec<DMatrix<f64>> {
        self.grams_and_moments()
            .into_iter()
            .map(|(g, _)| g)
            .collect()
    }

    /// `(X_i^T X_i / n_i, X_i^T y_i / n_i)` for every task: a syrk
    /// ([`crate::linalg::gram`]) on the stored samples, which also accumulates the
    /// cross moment while each block of samples is in cache. Parallel over
    /// tasks, and over row strips of each Gram matrix where there are fewer
    /// tasks than threads; every entry is computed by one chain in sample
    /// order, so the result is the same for any thread count. The lower
    /// triangle is copied from the upper one: the result is exactly symmetric.
    pub fn grams_and_moments(&self) -> Vec<GramAndMoment> {
        self.checked_grams_and_moments()
            .expect("samples are checked at construction")
    }

    /// [`DataTasks::grams_and_moments`], which also completes the checks that
    /// [`DataTasks::with_deferred_sample_checks`] left out: the syrk's packing
    /// pass flags NaN and infinite values, and the first one is reported as
    /// [`DataTasks::new`] would.
    pub fn checked_grams_and_moments(&self) -> Result<Vec<GramAndMoment>, InputError> {
        let all: Vec<usize> = (0..self.tasks.len()).collect();
        self.grams_and_moments_of(&all)
    }

    fn grams_and_moments_of(&self, tasks: &[usize]) -> Result<Vec<GramAndMoment>, InputError> {
        let d = self.dim;
        let isa = crate::linalg::kernels::isa();
        let w = gram::panel_width(isa);
        let ldc = d.div_ceil(w) * w;
        let parts = (2 * rayon::current_num_threads()).div_ceil(tasks.len().max(1));
        let strips = gram::balanced_rows(d.div_ceil(w), parts);
        // Fresh zeroed buffers (vec! of a Vec would copy a template into each).
        let mut upper: Vec<Vec<f64>> = tasks.iter().map(|_| vec![0.0; ldc * ldc]).collect();
        let mut moments: Vec<DVector<f64>> = tasks.iter().map(|_| DVector::zeros(d)).collect();
        let mut jobs = Vec::new();
        for (slot, ((&task, c), moment)) in
            tasks.iter().zip(&mut upper).zip(&mut moments).enumerate()
        {
            let mut rest = c.as_mut_slice();
            let mut moment = Some(moment.as_mut_slice());
            for rows in &strips {
                let (mine, tail) = rest.split_at_mut(rows.len() * w * ldc);
                rest = tail;
                let data = &self.tasks[task];
                let moment = moment.take().map(|m| (data.y.as_slice(), m));
                let job = match data.xt.values() {
                    SampleValues::F64(x) => AnyGramJob::F64(gram::GramJob {
                        isa,
                        x,
                        d,
                        rows: rows.clone(),
                        moment,
                    }),
                    SampleValues::F32(x) => AnyGramJob::F32(gram::GramJob {
                        isa,
                        x,
                        d,
                        rows: rows.clone(),
                        moment,
                    }),
                };
                jobs.push((slot, job, mine));
            }
        }
        let finite: Vec<(usize, bool)> = jobs
            .into_par_iter()
            .map(|(slot, job, c)| (slot, job.run(c)))
            .collect();
        for (slot, ok) in finite {
            if !ok {
                let task = tasks[slot];
                check_samples_finite(task, &self.tasks[task], d)?;
            }
        }
        Ok(tasks
            .par_iter()
            .zip(upper)
            .zip(moments)
            .map(|((&task, mut c), moment)| {
                let n = self.tasks[task].samples() as f64;
                let gram = if ldc == d {
                    // In place: row i of the upper triangle is column i of the
                    // symmetric matrix from the diagonal down; mirror it up.
                    for i in 0..d {
                        for j in i..d {
                            let value = c[i * d + j] / n;
                            c[i * d + j] = value;
                            c[j * d + i] = value;
                        }
                    }
                    DMatrix::from_vec(d, d, c)
                } else {
                    DMatrix::from_fn(d, d, |i, j| c[i.min(j) * ldc + i.max(j)] / n)
                };
                (gram, moment / n)
            })
            .collect())
    }

    /// The largest sample norm `max_j ||x_j||` per task.
    pub fn largest_sample_norms(&self) -> Vec<f64> {
        let d = self.dim;
        self.tasks
            .par_iter()
            .map(|data| {
                with_values!(data.xt, |samples| samples
                    .chunks_exact(d)
                    .map(self_dot)
                    .fold(0.0, f64::max)
                    .sqrt())
            })
            .collect()
    }

    /// [`SampleNorms`] per task: one pass over the samples.
    pub fn sample_norms(&self) -> Vec<SampleNorms> {
        use crate::problem::numerics::{gamma, round_up};
        let d = self.dim;
        self.tasks
            .par_iter()
            .map(|data| {
                let n = data.samples();
                let (mut frobenius2, mut largest) = (0.0, 0.0f64);
                let mut moment = vec![0.0; d];
                with_values!(data.xt, |samples| {
                    for (x, &y) in samples.chunks_exact(d).zip(data.y.iter()) {
                        let square = self_dot(x);
                        frobenius2 += square;
                        largest = largest.max(square);
                        axpy(y, x, &mut moment);
                    }
                });
                let y2 = data.y.norm_squared();
                let slack = 1.0 + gamma(n + d);
                let tiny = ((n + 1) * (d + 1)) as f64 * crate::problem::numerics::UNDERFLOW_UNIT;
                let frobenius2 = round_up(frobenius2 * slack + tiny);
                let y_norm = round_up((y2 * slack + tiny).sqrt());
                // |fl(X^T y) - X^T y| <= gamma_n |X|^T |y|, of norm <= gamma_n ||X||_F ||y||.
                let moment_norm = round_up(
                    (dot(&moment, &moment).sqrt() * slack
                        + gamma(n) * frobenius2.sqrt() * y_norm
                        + tiny)
                        / n as f64,
                );
                SampleNorms {
                    frobenius2,
                    y_norm,
                    largest_sample: round_up((largest * slack + tiny).sqrt()),
                    moment_norm,
                    half_mean_square: round_up(y_norm * y_norm / (2.0 * n as f64)),
                }
            })
            .collect()
    }

    /// Largest eigenvalue of `X_i^T X_i / n_i` from the `n_i x n_i` matrix
    /// `X_i X_i^T / n_i` (the same nonzero spectrum): for tasks with fewer
    /// samples than features, whose Gram matrix would be d x d.
    pub fn kernel_top_eigenvalue(&self, task: usize) -> f64 {
        let data = &self.tasks[task];
        let n = data.samples();
        let kernel = data.xt.with_f64_view(|view| view.tr_mul(&view)) / n as f64;
        kernel.symmetric_eigenvalues().max().max(0.0)
    }

    /// Largest eigenvalue of `X_i^T X_i / n_i` and the largest sample norm, per task.
    pub fn spectral_constants(&self) -> Vec<(f64, f64)> {
        // Through whichever of X^T X (d x d) and X X^T (n x n) is smaller.
        let tops: Vec<f64> = (0..self.tasks.len())
            .into_par_iter()
            .map(|i| {
                if self.tasks[i].samples() < self.dim {
                    self.kernel_top_eigenvalue(i)
                } else {
                    self.gram(i).symmetric_eigenvalues().max().max(0.0)
                }
            })
            .collect();
        tops.into_iter().zip(self.largest_sample_norms()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(m: usize, n: usize, d: usize) -> DataTasks {
        let tasks = (0..m)
            .map(|t| {
                let xt = DMatrix::from_fn(d, n, |i, j| {
                    (((i * 31 + j * 17 + t * 7) % 97) as f64 / 97.0 - 0.5) * (1.0 + t as f64)
                });
                let y = DVector::from_fn(n, |j, _| ((j * 13 + t) % 5) as f64 - 2.0);
                TaskData::from_columns(&xt, y)
            })
            .collect();
        DataTasks::new(tasks, false).unwrap()
    }

    #[test]
    fn blocked_grams_match_the_plain_product_and_are_symmetric() {
        // d = 300 and 7: the last panel is padded (d not a multiple of its width).
        // d = 32: the Gram matrix is assembled in place (d a multiple of the panel width).
        for (m, n, d) in [(2, 40, 300), (3, 500, 7), (2, 300, 32)] {
            let data = tasks(m, n, d);
            let (grams, moments): (Vec<_>, Vec<_>) = data.grams_and_moments().into_iter().unzip();
            for (i, task) in data.tasks().iter().enumerate() {
                let reference = task.xt.view() * task.xt.view().transpose() / n as f64;
                let scale = reference.amax();
                assert!((&grams[i] - &reference).amax() <= 1e-13 * scale, "task {i}");
                assert_eq!(grams[i], grams[i].transpose(), "task {i} not symmetric");
                let moment = task.xt.view() * task.y.view() / n as f64;
                assert!((&moments[i] - &moment).amax() <= 1e-13 * moment.amax().max(1.0));
            }
            assert_eq!(data.gram(m - 1), grams[m - 1]);
        }
    }

    #[test]
    fn fused_pass_matches_a_plain_evaluation() {
        let data = tasks(3, 2500, 9);
        let theta = DVector::from_fn(9, |i, _| 0.1 * i as f64 - 0.3);
        let mut losses = vec![0.0; 3];
        let mut gradients = DMatrix::zeros(9, 3);
        let link = |z: f64, y: f64| (0.5 * (z - y) * (z - y), z - y);
        data.fused_pass(
            &theta,
            link,
            &[true, false, true],
            &mut losses,
            &mut gradients,
        );
        for i in [0, 2] {
            let task = &data.tasks()[i];
            let n = task.samples() as f64;
            let r = task.xt.view().tr_mul(&theta) - task.y.view();
            let loss = 0.5 * r.norm_squared() / n;
            let gradient = task.xt.view() * r / n;
            assert!((losses[i] - loss).abs() <= 1e-13 * loss);
            assert!((gradients.column(i) - &gradient).amax() <= 1e-13 * gradient.amax());
        }
        // Unselected tasks are left alone.
        assert_eq!(losses[1], 0.0);
        assert_eq!(gradients.column(1).amax(), 0.0);
        let mut only = vec![0.0; 3];
        data.loss_pass(&theta, |z, y| 0.5 * (z - y) * (z - y), &mut only);
        assert!((only[0] - losses[0]).abs() <= 1e-13 * losses[0]);
    }
}
