//! The out-of-cache iterations against the read-only bandwidth, interleaved.
//!
//! On a shared machine the load changes from second to second, so the
//! criterion groups of `iteration`, which run one after another, may see
//! different machines. Here every round times, back to back: a read-only
//! sum over 2^26 f64 (512 MiB, on huge pages), then one softmax-gd
//! iteration of least squares (data form) and of logistic regression at
//! M = 64, n_i = 16384, d = 256, with the samples stored as f64 (2.2 GB read
//! per iteration) and as f32 (1.1 GB: `M n (4 d + 8)` bytes, the targets
//! staying f64). Each figure is the median over the rounds, each fraction the
//! ratio of medians; the best round is printed too.
//!
//! Run: `cargo bench -p taskrobust-bench --bench bandwidth_probe` (about a
//! minute and 7 GB of memory; `PROBE_ROUNDS` sets the rounds, default 15).

use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use taskrobust::family::{
    Evaluation, GradientForm, LeastSquaresFamily, LogisticFamily, TaskData, TaskFamily,
};
use taskrobust::linalg::element::Dtype;
use taskrobust::problem::numerics::softmax_into;

const READ_LEN: usize = 1 << 26;
const CHUNK: usize = 1 << 16;
const M: usize = 64;
const D: usize = 256;

/// n_i: 16384 (out of cache), or `PROBE_SAMPLES` (e.g. 128: 16 MB in f64,
/// inside the L3 cache, to tell a compute-bound pass from a memory-bound one).
fn samples() -> usize {
    std::env::var("PROBE_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16384)
}

/// Uniform entries from a seeded RNG per task (as the `iteration` bench).
fn tasks(labels: bool) -> Vec<TaskData> {
    let n = samples();
    (0..M)
        .into_par_iter()
        .map(|i| {
            let mut rng = StdRng::seed_from_u64(1000 + i as u64);
            let mut xt = DMatrix::from_vec(
                D,
                n,
                taskrobust::linalg::memory::zeroed_for_streaming(D * n),
            );
            xt.iter_mut().for_each(|v| *v = rng.random::<f64>() - 0.5);
            let y = DVector::from_fn(n, |_, _| {
                let u = rng.random::<f64>();
                match labels {
                    true if u < 0.5 => -1.0,
                    true => 1.0,
                    false => u,
                }
            });
            TaskData::from_columns(&xt, y)
        })
        .collect()
}

fn as_f32(tasks: &[TaskData]) -> Vec<TaskData> {
    tasks
        .iter()
        .map(|t| TaskData {
            xt: t.xt.to_dtype(Dtype::F32),
            y: t.y.clone(),
        })
        .collect()
}

fn read_sum(values: &[f64]) -> f64 {
    values
        .par_chunks(CHUNK)
        .map(|x| {
            let mut lanes = [0.0f64; 8];
            for block in x.chunks_exact(8) {
                for (lane, v) in lanes.iter_mut().zip(block) {
                    *lane += v;
                }
            }
            lanes.iter().sum::<f64>()
        })
        .sum()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("PROBE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let n = samples();
    let mut read = taskrobust::linalg::memory::zeroed_for_streaming(READ_LEN);
    read.fill(1.0);
    let squares = tasks(false);
    let labelled = tasks(true);
    let families: Vec<(&str, usize, Arc<dyn TaskFamily>)> = vec![
        (
            "least_squares_data f64",
            M * n * (8 * D + 8),
            Arc::new(LeastSquaresFamily::new(squares.clone(), GradientForm::Data).unwrap()),
        ),
        (
            "least_squares_data f32",
            M * n * (4 * D + 8),
            Arc::new(LeastSquaresFamily::new(as_f32(&squares), GradientForm::Data).unwrap()),
        ),
        (
            "logistic f64",
            M * n * (8 * D + 8),
            Arc::new(LogisticFamily::new(labelled.clone(), 1e-3).unwrap()),
        ),
        (
            "logistic f32",
            M * n * (4 * D + 8),
            Arc::new(LogisticFamily::new(as_f32(&labelled), 1e-3).unwrap()),
        ),
    ];
    drop((squares, labelled));
    let theta = DVector::from_element(D, 0.01);
    let mut evals: Vec<Evaluation> = families.iter().map(|_| Evaluation::new(M, D)).collect();
    let mut iterate = |k: usize| {
        let mut next = theta.clone();
        families[k]
            .2
            .evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut evals[k])
            .unwrap();
        next.axpy(-1e-3, &evals[k].gradient, 1.0);
        black_box(next);
    };
    // Warm-up: page faults and lazily built scratch outside the timing.
    black_box(read_sum(&read));
    for k in 0..families.len() {
        iterate(k);
    }
    let mut read_times = Vec::with_capacity(rounds);
    let mut times = vec![Vec::with_capacity(rounds); families.len()];
    for _ in 0..rounds {
        let clock = Instant::now();
        black_box(read_sum(black_box(&read)));
        read_times.push(clock.elapsed().as_secs_f64());
        for (k, t) in times.iter_mut().enumerate() {
            let clock = Instant::now();
            iterate(k);
            t.push(clock.elapsed().as_secs_f64());
        }
    }
    let best_read = read_times.iter().cloned().fold(f64::INFINITY, f64::min);
    let read_s = median(&mut read_times);
    let bandwidth = (8 * READ_LEN) as f64 / read_s;
    println!(
        "bandwidth_probe: {rounds} interleaved rounds, {} rayon threads, kernels {}",
        rayon::current_num_threads(),
        taskrobust::linalg::kernels::isa().name()
    );
    println!(
        "  read-only sum (2^26 f64): median {:.2} ms = {:.2} GB/s (best {:.2} GB/s)",
        read_s * 1e3,
        bandwidth * 1e-9,
        (8 * READ_LEN) as f64 / best_read * 1e-9
    );
    let mut medians = Vec::new();
    for ((name, bytes, _), t) in families.iter().zip(&mut times) {
        let best = t.iter().cloned().fold(f64::INFINITY, f64::min);
        let s = median(t);
        medians.push(s);
        println!(
            "  {name} M{M}_n{n}_d{D}: median {:.2} ms, reads {:.1} MB at {:.2} GB/s = {:.0}% of read-only (best round {:.0}%)",
            s * 1e3,
            *bytes as f64 * 1e-6,
            *bytes as f64 / s * 1e-9,
            100.0 * *bytes as f64 / s / bandwidth,
            100.0 * *bytes as f64 / best / ((8 * READ_LEN) as f64 / best_read)
        );
    }
    println!(
        "  f32 / f64 iteration time: least squares {:.3}, logistic {:.3} (bytes {:.3})",
        medians[1] / medians[0],
        medians[3] / medians[2],
        (4 * D + 8) as f64 / (8 * D + 8) as f64
    );
}
