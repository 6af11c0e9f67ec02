//! One softmax-gd iteration against the machine's memory bandwidth, measured
//! in the same run, and the exact solver on a 20-task, d = 30 quadratic family.
//!
//! Every iteration benchmark declares the bytes its pass must read, so
//! criterion prints GB/s next to the STREAM-style triad's GB/s; the summary at
//! the end prints each median as a fraction of the triad bandwidth:
//!
//! - data form (least squares, logistic): every `X_i` and `y_i` once,
//!   `8 M n (d + 1)` bytes (theta and the d x M gradient scratch stay in cache),
//!   `M n (4 d + 8)` with f32 samples;
//! - Gram form: the upper triangle of every `Q_i = X_i^T X_i / n_i` (the
//!   iterations read it packed) and `X_i^T y_i / n_i`, `8 M (d (d + 1) / 2 + d)`
//!   bytes. At M = 16, d = 256 that is 4.2 MB, which fits in the caches: its
//!   "fraction" can exceed 100% and says only that it is not memory-bound.
//!
//! The triad runs on the same rayon threads as the iterations (both use all
//! of them), over 3 arrays of 2^26 f64 (1.5 GiB, beyond any cache), and is
//! counted as STREAM counts it: 24 bytes per element. A read-only sum over one
//! of its arrays gives the stricter ceiling for passes that only read. All
//! arrays, the triad's and the tasks', are on huge pages (`taskrobust::linalg::memory`).
//!
//! Sizes: M = 16, n_i = 8192, d = 256 (268 MB of data), and an out-of-cache
//! size M = 64, n_i = 16384, d = 256 (2.1 GB). The out-of-cache data is filled
//! by a cheap seeded generator (the cost of a pass does not depend on the
//! values), which keeps the set-up short.
//!
//! The least-squares Gram form's set-up (the syrk of `taskrobust::linalg::gram`, with
//! the cross moments) is compute-bound: it is timed against the machine's
//! fused multiply-add peak, also measured in the same run (independent FMA
//! chains on every rayon thread, at the widest vectors the Gram kernel uses),
//! counting `2 M n d (d + 1) / 2` flops for the upper triangles.
//!
//! The certificate group times one certificate against one pass at the same
//! point (M = 16, n_i = 8192, d = 256), and a whole default softmax-gd solve
//! (200 iterations, the default certificate schedule) against the same solve
//! certified only at its start and its returned point.
//!
//! The out-of-cache cases also run with the samples stored as f32 (issue 15:
//! `4 M n d + 8 M n` bytes, the targets staying f64); the summary prints the
//! f32 / f64 time ratio of each family.
//!
//! Run: `cargo bench -p taskrobust-bench` (about 7 minutes on 2 cores);
//! `cargo bench -p taskrobust-bench -- "bandwidth|M64"` for the bandwidth
//! probes and the out-of-cache iterations alone (other cases are not built);
//! `cargo bench -p taskrobust-bench -- certificate` for that group alone.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use taskrobust::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use taskrobust::family::{
    Evaluation, GradientForm, LeastSquaresFamily, LogisticFamily, TaskData, TaskFamily,
};
use taskrobust::problem::numerics::softmax_into;
use taskrobust::solvers::{solve, Method, SolveOptions};
use taskrobust::FeasibleSet;
use taskrobust_testing::Instrumented;

/// Triad length: 3 arrays of 2^26 f64 = 1.5 GiB touched, far beyond any cache.
const TRIAD_LEN: usize = 1 << 26;
/// Elements per rayon task of the triad.
const TRIAD_CHUNK: usize = 1 << 16;

/// (name, kind, M, n_i, d)
const CASES: [(&str, &str, usize, usize, usize); 7] = [
    ("least_squares_data", "least_squares_data", 16, 8192, 256),
    ("least_squares_gram", "least_squares_gram", 16, 8192, 256),
    ("logistic", "logistic", 16, 8192, 256),
    (
        "least_squares_data",
        "least_squares_data_big",
        64,
        16384,
        256,
    ),
    ("logistic", "logistic_big", 64, 16384, 256),
    (
        "least_squares_data_f32",
        "least_squares_data_big_f32",
        64,
        16384,
        256,
    ),
    ("logistic_f32", "logistic_big_f32", 64, 16384, 256),
];

/// Whether the case's samples are stored as f32 (4 bytes per value).
fn is_f32(kind: &str) -> bool {
    kind.ends_with("_f32")
}

fn spec(m: usize, d: usize, seed: u64) -> SyntheticSpec {
    SyntheticSpec {
        num_tasks: m,
        dim: d,
        outliers: 2,
        outlier_distance: 2.0,
        seed,
        ..Default::default()
    }
}

/// Bytes one iteration must read (see the module docs).
fn bytes_read(kind: &str, m: usize, n: usize, d: usize) -> usize {
    if kind == "least_squares_gram" {
        // The upper triangle of each Gram matrix and its linear term.
        8 * m * (d * (d + 1) / 2 + d)
    } else if is_f32(kind) {
        // f32 samples, f64 targets.
        m * n * (4 * d + 8)
    } else {
        8 * m * n * (d + 1)
    }
}

/// Out-of-cache data: uniform entries from a seeded RNG per task, stored as
/// f64, or as f32 (the same draws rounded) where `f32` is set.
fn big_tasks(m: usize, n: usize, d: usize, labels: bool, f32: bool) -> Vec<TaskData> {
    (0..m)
        .into_par_iter()
        .map(|i| {
            let mut rng = StdRng::seed_from_u64(1000 + i as u64);
            // Huge-page storage, as the file loader and generators use.
            let mut xt = DMatrix::from_vec(
                d,
                n,
                taskrobust::linalg::memory::zeroed_for_streaming(d * n),
            );
            xt.iter_mut().for_each(|v| *v = rng.random::<f64>() - 0.5);
            let y = DVector::from_fn(n, |_, _| {
                let u = rng.random::<f64>();
                if labels {
                    if u < 0.5 {
                        -1.0
                    } else {
                        1.0
                    }
                } else {
                    u
                }
            });
            let mut task = TaskData::from_columns(&xt, y);
            if f32 {
                task.xt = task.xt.to_dtype(taskrobust::linalg::element::Dtype::F32);
            }
            task
        })
        .collect()
}

fn family(kind: &str, m: usize, n: usize, d: usize) -> Arc<dyn TaskFamily> {
    let s = spec(m, d, 7);
    match kind {
        "least_squares_data" => {
            Arc::new(least_squares_family(&s, n, 0.5, GradientForm::Data).unwrap())
        }
        "least_squares_gram" => {
            Arc::new(least_squares_family(&s, n, 0.5, GradientForm::Gram).unwrap())
        }
        "logistic" => Arc::new(logistic_family(&s, n, 0.5, 1e-3).unwrap()),
        "least_squares_data_big" | "least_squares_data_big_f32" => Arc::new(
            LeastSquaresFamily::new(big_tasks(m, n, d, false, is_f32(kind)), GradientForm::Data)
                .unwrap(),
        ),
        "logistic_big" | "logistic_big_f32" => {
            Arc::new(LogisticFamily::new(big_tasks(m, n, d, true, is_f32(kind)), 1e-3).unwrap())
        }
        other => unreachable!("unknown case {other}"),
    }
}

/// A triad array filled with `value`, on huge pages like the task data, so
/// that both sides of the ratio see the same page size.
fn triad_array(value: f64) -> Vec<f64> {
    let mut array = taskrobust::linalg::memory::zeroed_for_streaming(TRIAD_LEN);
    array.fill(value);
    array
}

fn triad(c: &mut Criterion) {
    let b = triad_array(1.0);
    let cc = triad_array(2.0);
    let mut a = triad_array(0.0);
    let mut group = c.benchmark_group("bandwidth");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    // STREAM counts 24 bytes per element (read b, read c, write a).
    group.throughput(Throughput::Bytes((3 * 8 * TRIAD_LEN) as u64));
    group.bench_function("triad", |bench| {
        bench.iter(|| {
            let s = black_box(3.0);
            a.par_chunks_mut(TRIAD_CHUNK)
                .zip(b.par_chunks(TRIAD_CHUNK))
                .zip(cc.par_chunks(TRIAD_CHUNK))
                .for_each(|((x, y), z)| {
                    for ((x, y), z) in x.iter_mut().zip(y).zip(z) {
                        *x = y + s * z;
                    }
                });
            black_box(&a);
        })
    });
    // The read-only ceiling: the passes only read their data, and a read
    // stream needs no write-back, so this is the stricter reference.
    group.throughput(Throughput::Bytes((8 * TRIAD_LEN) as u64));
    group.bench_function("read", |bench| {
        bench.iter(|| {
            let total: f64 = b
                .par_chunks(TRIAD_CHUNK)
                .map(|x| {
                    // Eight independent sums: the loop is not latency-bound.
                    let mut lanes = [0.0f64; 8];
                    for block in x.chunks_exact(8) {
                        for (lane, v) in lanes.iter_mut().zip(block) {
                            *lane += v;
                        }
                    }
                    lanes.iter().sum::<f64>()
                })
                .sum();
            black_box(total);
        })
    });
    group.finish();
}

/// One iteration: the fused pass (losses, softmax weights, weighted gradient)
/// and the step.
fn iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("softmax_gd_iteration");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for (name, kind, m, n, d) in CASES {
        let id = format!("softmax_gd_iteration/{name}/M{m}_n{n}_d{d}");
        if !selected(&id) {
            // Not built: the out-of-cache data take seconds and gigabytes.
            continue;
        }
        let family = family(kind, m, n, d);
        let mut theta = DVector::from_element(d, 0.01);
        let mut eval = Evaluation::new(m, d);
        // Warm-up builds lazily computed Gram matrices outside the timing.
        family
            .evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut eval)
            .unwrap();
        group.throughput(Throughput::Bytes(bytes_read(kind, m, n, d) as u64));
        group.bench_with_input(
            BenchmarkId::new(name, format!("M{m}_n{n}_d{d}")),
            &(),
            |bench, _| {
                bench.iter(|| {
                    family
                        .evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut eval)
                        .unwrap();
                    theta.axpy(-1e-3, &eval.gradient, 1.0);
                    black_box(&theta);
                })
            },
        );
    }
    group.finish();
}

/// The exact solver (Clarabel SOCP plus our certificate) on the quadratic
/// problem `taskrobust generate --kind quadratic --tasks 20 --dim 30 --seed 1
/// --outliers 2` writes (the cvxpy peer solves the same file).
fn exact(c: &mut Criterion) {
    let family: Arc<dyn TaskFamily> = Arc::new(quadratic_family(&spec(20, 30, 1)).unwrap());
    let options = SolveOptions {
        method: Method::Exact,
        iterations: 1,
        ..Default::default()
    };
    let mut group = c.benchmark_group("exact");
    group.sample_size(30);
    group.bench_function("quadratic_M20_d30", |bench| {
        bench.iter(|| {
            black_box(solve(family.clone(), FeasibleSet::Unconstrained, &options).unwrap())
        })
    });
    group.finish();
}

/// FMAs per chain step and thread in the peak measurement.
const PEAK_STEPS: usize = 1 << 22;
/// Independent accumulators: enough to cover the FMA latency on two ports.
const PEAK_CHAINS: usize = 12;

/// Flops of `PEAK_STEPS` steps of `PEAK_CHAINS` FMA chains, `lanes` wide, on every thread.
fn peak_flops_per_run(lanes: usize) -> f64 {
    (2 * PEAK_STEPS * PEAK_CHAINS * lanes * rayon::current_num_threads()) as f64
}

/// Vector width (f64 lanes) of the FMA peak measured here: the Gram kernel's.
fn peak_lanes() -> usize {
    match taskrobust::linalg::kernels::isa() {
        taskrobust::linalg::kernels::Isa::Avx512 => 8,
        taskrobust::linalg::kernels::Isa::Avx2Fma => 4,
        taskrobust::linalg::kernels::Isa::Generic => 1,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(x: f64) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_pd(x); PEAK_CHAINS];
    let (a, b) = (_mm512_set1_pd(0.999_999), _mm512_set1_pd(1e-9));
    for _ in 0..PEAK_STEPS {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_pd(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_pd(v)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_256(x: f64) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_pd(x); PEAK_CHAINS];
    let (a, b) = (_mm256_set1_pd(0.999_999), _mm256_set1_pd(1e-9));
    for _ in 0..PEAK_STEPS {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_pd(*v, a, b);
        }
    }
    let mut out = [0.0; 4];
    acc.iter()
        .map(|&v| {
            _mm256_storeu_pd(out.as_mut_ptr(), v);
            out.iter().sum::<f64>()
        })
        .sum()
}

fn fma_chains(x: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    match peak_lanes() {
        // SAFETY: `isa()` detected these instruction sets.
        8 => return unsafe { fma_chains_512(x) },
        4 => return unsafe { fma_chains_256(x) },
        _ => {}
    }
    let mut acc = [x; PEAK_CHAINS];
    for _ in 0..PEAK_STEPS {
        for v in acc.iter_mut() {
            *v = v.mul_add(0.999_999, 1e-9);
        }
    }
    acc.iter().sum()
}

/// (M, n_i, d) of the Gram set-up benchmark: the peer comparison's size.
const GRAM_CASE: (usize, usize, usize) = (16, 8192, 256);

/// The FMA peak, and the Gram set-up (syrk plus cross moments) of the least-squares data.
fn gram_setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("compute");
    group.sample_size(20);
    group.bench_function("fma_peak", |bench| {
        bench.iter(|| {
            let sums: Vec<f64> = rayon::broadcast(|ctx| fma_chains(black_box(ctx.index() as f64)));
            black_box(sums);
        })
    });
    let (m, n, d) = GRAM_CASE;
    if selected(&format!("compute/gram_setup_M{m}_n{n}_d{d}")) {
        let tasks = least_squares_family(&spec(m, d, 7), n, 0.5, GradientForm::Data).unwrap();
        group.bench_function(format!("gram_setup_M{m}_n{n}_d{d}"), |bench| {
            bench.iter(|| black_box(tasks.data().grams_and_moments()))
        });
    }
    group.finish();
}

/// The certificate's share of a default softmax-gd solve (issue 11: at most
/// 10%): one pass over the data (`evaluate`, what every iteration does)
/// against one certificate at the same point (`certify`), and the default
/// solve against the same solve certified at its start and end only, at
/// M = 16, n_i = 8192, d = 256, for each family's default form. The summary
/// prints the ratios.
fn certificate(c: &mut Criterion) {
    let mut group = c.benchmark_group("certificate");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let (m, n, d) = (16, 8192, 256);
    for kind in CERTIFICATE_KINDS {
        if !selected(&format!("certificate/{kind}")) && !selected(&format!("_{kind}_M{m}")) {
            continue;
        }
        group.sample_size(20);
        let s = spec(m, d, 7);
        let family: Arc<dyn TaskFamily> = match kind {
            "least_squares" => {
                Arc::new(least_squares_family(&s, n, 0.5, GradientForm::Auto).unwrap())
            }
            _ => Arc::new(logistic_family(&s, n, 0.5, 1e-3).unwrap()),
        };
        let theta = DVector::from_element(d, 0.01);
        let mut eval = Evaluation::new(m, d);
        // Warm-up: lazily built Gram matrices and spectra stay outside the timing.
        family
            .evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut eval)
            .unwrap();
        let ball = taskrobust::problem::ball::Ball::unconstrained();
        black_box(family.certify(&theta, &eval, &ball));
        let id = format!("{kind}_M{m}_n{n}_d{d}");
        group.bench_function(format!("evaluate_{id}"), |bench| {
            bench.iter(|| {
                family
                    .evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut eval)
                    .unwrap();
                black_box(&eval);
            })
        });
        group.bench_function(format!("certify_{id}"), |bench| {
            bench.iter(|| black_box(family.certify(&theta, &eval, &ball)))
        });
        // The whole default solve (200 iterations, certificates on the
        // default schedule) against the same solve certified only at its
        // start and its returned point: their ratio is what the schedule adds.
        for (label, certify_every) in [
            ("solve_default", None),
            ("solve_final_only", Some(u64::MAX)),
        ] {
            let options = SolveOptions {
                certify_every,
                ..Default::default()
            };
            group.bench_function(format!("{label}_{id}"), |bench| {
                bench.iter(|| {
                    black_box(solve(family.clone(), FeasibleSet::Unconstrained, &options).unwrap())
                })
            });
        }
    }
    group.finish();
}

const CERTIFICATE_KINDS: [&str; 2] = ["least_squares", "logistic"];

/// Passes of one default solve and of one certified at its ends only.
fn certificate_passes(kind: &str) -> (u64, u64) {
    let s = spec(16, 256, 7);
    let inner: Arc<dyn TaskFamily> = match kind {
        "least_squares" => {
            Arc::new(least_squares_family(&s, 8192, 0.5, GradientForm::Auto).unwrap())
        }
        _ => Arc::new(logistic_family(&s, 8192, 0.5, 1e-3).unwrap()),
    };
    let mut counts = [0; 2];
    for (count, certify_every) in counts.iter_mut().zip([None, Some(u64::MAX)]) {
        let family = Arc::new(Instrumented::new(inner.clone()));
        let options = SolveOptions {
            certify_every,
            ..Default::default()
        };
        solve(family.clone(), FeasibleSet::Unconstrained, &options).unwrap();
        *count = family.passes();
    }
    (counts[0], counts[1])
}

criterion_group!(benches, triad, gram_setup, iteration, exact, certificate);

/// Whether a benchmark id passes the command line's filter, read as
/// criterion reads its simple cases: alternatives separated by `|`, each a
/// substring (no filter: everything).
fn selected(id: &str) -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    match filter {
        None => true,
        Some(f) => f.split('|').any(|part| id.contains(part)),
    }
}

/// Reads criterion's median estimates back and prints the bandwidth fractions.
fn summary() {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../criterion");
    let median = |id: &str| -> Option<f64> {
        let text = std::fs::read_to_string(root.join(id).join("new/estimates.json")).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value["median"]["point_estimate"]
            .as_f64()
            .map(|ns| ns * 1e-9)
    };
    if selected("certificate/") {
        certificate_summary(&median);
    }
    let Some(triad_s) = median("bandwidth/triad") else {
        return;
    };
    let bandwidth = (3 * 8 * TRIAD_LEN) as f64 / triad_s;
    println!(
        "\nsummary (medians of this run; {} rayon threads, kernels: {})",
        rayon::current_num_threads(),
        taskrobust::linalg::kernels::isa().name()
    );
    println!("  triad bandwidth: {:.2} GB/s", bandwidth * 1e-9);
    let read_bandwidth = median("bandwidth/read").map(|t| (8 * TRIAD_LEN) as f64 / t);
    if let Some(read) = read_bandwidth {
        println!("  read-only bandwidth: {:.2} GB/s", read * 1e-9);
    }
    for (name, kind, m, n, d) in CASES {
        let id = format!("softmax_gd_iteration/{name}/M{m}_n{n}_d{d}");
        if let Some(t) = median(&id) {
            let bytes = bytes_read(kind, m, n, d);
            let rate = bytes as f64 / t;
            let of_read = read_bandwidth
                .map(|read| format!(", {:.0}% of read-only", 100.0 * rate / read))
                .unwrap_or_default();
            println!(
                "  {id}: {:.3} ms, reads {:.1} MB at {:.2} GB/s = {:.0}% of triad bandwidth{of_read}",
                t * 1e3,
                bytes as f64 * 1e-6,
                rate * 1e-9,
                100.0 * rate / bandwidth
            );
        }
    }
    // f32 storage against f64 storage of the same draws, out of cache.
    for (f64_name, f32_name) in [
        ("least_squares_data", "least_squares_data_f32"),
        ("logistic", "logistic_f32"),
    ] {
        let at = |name: &str| median(&format!("softmax_gd_iteration/{name}/M64_n16384_d256"));
        if let (Some(wide), Some(narrow)) = (at(f64_name), at(f32_name)) {
            println!(
                "  {f32_name} / {f64_name} (M64_n16384_d256): {:.3} ms / {:.3} ms = {:.3} (bytes: {:.3})",
                narrow * 1e3,
                wide * 1e3,
                narrow / wide,
                bytes_read("logistic_big_f32", 64, 16384, 256) as f64
                    / bytes_read("logistic_big", 64, 16384, 256) as f64
            );
        }
    }
    let (m, n, d) = GRAM_CASE;
    if let (Some(peak_s), Some(t)) = (
        median("compute/fma_peak"),
        median(&format!("compute/gram_setup_M{m}_n{n}_d{d}")),
    ) {
        let peak = peak_flops_per_run(peak_lanes()) / peak_s;
        let flops = (m * n * d * (d + 1)) as f64;
        println!(
            "  FMA peak: {:.1} GFLOP/s ({}-lane FMAs)",
            peak * 1e-9,
            peak_lanes()
        );
        println!(
            "  compute/gram_setup_M{m}_n{n}_d{d}: {:.1} ms, {:.1} GFLOP/s = {:.0}% of the FMA peak",
            t * 1e3,
            flops / t * 1e-9,
            100.0 * flops / t / peak
        );
    }
    if let Some(t) = median("exact/quadratic_M20_d30") {
        println!("  exact/quadratic_M20_d30: {:.3} ms", t * 1e3);
    }
}

/// The certificate's share per iteration (see [`certificate`]).
fn certificate_summary(median: &dyn Fn(&str) -> Option<f64>) {
    for kind in CERTIFICATE_KINDS {
        let id = format!("{kind}_M16_n8192_d256");
        if let (Some(pass), Some(certify)) = (
            median(&format!("certificate/evaluate_{id}")),
            median(&format!("certificate/certify_{id}")),
        ) {
            println!(
                "  certificate/{id}: a pass {:.3} ms, a certificate {:.3} ms = {:.1}% of a pass",
                pass * 1e3,
                certify * 1e3,
                100.0 * certify / pass
            );
        }
        if let (Some(default), Some(final_only)) = (
            median(&format!("certificate/solve_default_{id}")),
            median(&format!("certificate/solve_final_only_{id}")),
        ) {
            let (passes_default, passes_final_only) = certificate_passes(kind);
            // The certificates' share: the default solve's time beyond what
            // its passes cost at the final-only solve's time per pass.
            let per_pass = final_only / passes_final_only as f64;
            println!(
                "  certificate/{id}: default solve {:.1} ms ({passes_default} passes), certified at start and end only {:.1} ms ({passes_final_only} passes): {:.1}% longer, {:.1}% beyond its passes",
                default * 1e3,
                final_only * 1e3,
                100.0 * (default / final_only - 1.0),
                100.0 * (default / (per_pass * passes_default as f64) - 1.0)
            );
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
