//! Task data `(X_i, y_i)` and the fused one-pass evaluation shared by the
//! least-squares and logistic families.
//!
//! `X_i` is stored transposed (d x n_i, column-major), so each sample is one
//! contiguous column: the layout of a C-order n_i x d `.npy` file. One pass
//! reads each sample once: `z = x . theta`, then `(loss, slope) = link(z, y)`,
//! then `g += slope * x` while `x` is still in L1.

use crate::error::{check_finite, invalid, InputError};
use crate::kernels::{axpy, dot};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use std::sync::Mutex;

/// One task's samples: `xt` is d x n (one column per sample), `y` has n entries.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    pub xt: DMatrix<f64>,
    pub y: DVector<f64>,
}

impl TaskData {
    /// From an n x d design matrix (one row per sample).
    pub fn from_rows(x: &DMatrix<f64>, y: DVector<f64>) -> Self {
        Self {
            xt: x.transpose(),
            y,
        }
    }

    pub fn samples(&self) -> usize {
        self.xt.ncols()
    }

    pub fn sample(&self, j: usize) -> &[f64] {
        let d = self.xt.nrows();
        &self.xt.as_slice()[j * d..(j + 1) * d]
    }
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
        if tasks.is_empty() {
            return invalid("tasks", "no tasks given");
        }
        let dim = tasks[0].xt.nrows();
        if dim == 0 {
            return invalid("tasks[0].x", "has no columns (dimension 0)");
        }
        for (i, task) in tasks.iter().enumerate() {
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
            check_finite(&format!("tasks[{i}].x"), task.xt.as_slice())?;
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
        }
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

    pub fn tasks(&self) -> &[TaskData] {
        &self.tasks
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Total number of f64 entries in the design matrices.
    pub fn data_len(&self) -> usize {
        self.tasks.iter().map(|t| t.xt.len()).sum()
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
            let mut loss_sum = 0.0;
            for j in chunk.start..chunk.end {
                let x = data.sample(j);
                let (l, slope) = link(dot(x, theta), data.y[j]);
                loss_sum += l;
                axpy(slope, x, gradient);
            }
            loss[0] = loss_sum;
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
            let mut sum = 0.0;
            for j in chunk.start..chunk.end {
                sum += loss(dot(data.sample(j), theta), data.y[j]);
            }
            slot[d] = sum;
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
                for &j in &rows[i] {
                    let x = data.sample(j);
                    let (l, slope) = link(dot(x, theta_slice), data.y[j]);
                    sum += l;
                    axpy(slope, x, gradient);
                }
                let inv = 1.0 / rows[i].len().max(1) as f64;
                *loss = sum * inv;
                for g in gradient.iter_mut() {
                    *g *= inv;
                }
            });
    }

    /// `X_i^T X_i / n_i` for one task.
    pub fn gram(&self, task: usize) -> DMatrix<f64> {
        let data = &self.tasks[task];
        let (d, n) = (data.xt.nrows(), data.xt.ncols());
        // X (n x d) as a strided view of the same storage: no transposed copy.
        let x = nalgebra::DMatrixView::from_slice_with_strides(data.xt.as_slice(), n, d, d, 1);
        let mut gram = &data.xt * x;
        gram /= n as f64;
        // Exact symmetry (the product is symmetric up to rounding).
        (&gram + gram.transpose()) * 0.5
    }

    /// Largest eigenvalue of `X_i^T X_i / n_i` and the largest sample norm, per task.
    pub fn spectral_constants(&self) -> Vec<(f64, f64)> {
        (0..self.tasks.len())
            .into_par_iter()
            .map(|i| {
                let top = self.gram(i).symmetric_eigenvalues().max().max(0.0);
                let max_row = self.tasks[i]
                    .xt
                    .column_iter()
                    .map(|c| c.norm())
                    .fold(0.0, f64::max);
                (top, max_row)
            })
            .collect()
    }
}
