//! One softmax-gd iteration against the machine's memory bandwidth, measured
//! in the same run. Every iteration benchmark declares the bytes it must read,
//! so criterion prints GiB/s next to the STREAM-style triad's GiB/s; the
//! summary at the end prints each median as a fraction of the triad bandwidth.
//!
//! Run: `cargo bench --bench iteration`

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use nalgebra::DVector;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use taskrobust::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use taskrobust::family::{Evaluation, GradientForm, TaskFamily};
use taskrobust::numerics::softmax_into;
use taskrobust::solvers::{solve, Method, SolveOptions};
use taskrobust::FeasibleSet;

/// Triad length: 3 arrays of 2^25 f64 = 768 MiB touched, far beyond any cache.
const TRIAD_LEN: usize = 1 << 25;

fn spec(m: usize, d: usize) -> SyntheticSpec {
    SyntheticSpec {
        num_tasks: m,
        dim: d,
        outliers: 2,
        outlier_distance: 2.0,
        seed: 7,
        ..Default::default()
    }
}

fn triad(c: &mut Criterion) {
    let b = vec![1.0f64; TRIAD_LEN];
    let cc = vec![2.0f64; TRIAD_LEN];
    let mut a = vec![0.0f64; TRIAD_LEN];
    let mut group = c.benchmark_group("bandwidth");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    // STREAM counts 24 bytes per element (read b, read c, write a).
    group.throughput(Throughput::Bytes((3 * 8 * TRIAD_LEN) as u64));
    group.bench_function("triad", |bench| {
        bench.iter(|| {
            let s = black_box(3.0);
            for ((x, y), z) in a.iter_mut().zip(&b).zip(&cc) {
                *x = y + s * z;
            }
            black_box(&a);
        })
    });
    group.finish();
}

/// One iteration: the fused pass (losses, softmax weights, weighted gradient)
/// and the step. Bytes: every design matrix and label vector once (data form)
/// or every Gram matrix once (Gram form).
fn iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("softmax_gd_iteration");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let cases: Vec<(&str, usize, usize, usize)> = vec![
        ("least_squares_data", 16, 8192, 256),
        ("least_squares_gram", 16, 8192, 256),
        ("logistic", 16, 8192, 256),
        ("least_squares_data", 64, 8192, 256),
    ];
    for (name, m, n, d) in cases {
        let s = spec(m, d);
        let (family, bytes): (Arc<dyn TaskFamily>, usize) = match name {
            "least_squares_data" => (
                Arc::new(least_squares_family(&s, n, 0.5, GradientForm::Data).unwrap()),
                8 * m * n * (d + 1),
            ),
            "least_squares_gram" => (
                Arc::new(least_squares_family(&s, n, 0.5, GradientForm::Gram).unwrap()),
                8 * m * d * (d + 1),
            ),
            _ => (
                Arc::new(logistic_family(&s, n, 0.5, 1e-3).unwrap()),
                8 * m * n * (d + 1),
            ),
        };
        let mut theta = DVector::from_element(d, 0.01);
        let mut eval = Evaluation::new(m, d);
        // Warm-up builds lazily computed Gram matrices outside the timing.
        family.evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut eval);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::new(name, format!("M{m}_n{n}_d{d}")),
            &(),
            |bench, _| {
                bench.iter(|| {
                    family.evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut eval);
                    theta.axpy(-1e-3, &eval.gradient, 1.0);
                    black_box(&theta);
                })
            },
        );
    }
    group.finish();
}

fn exact(c: &mut Criterion) {
    let s = SyntheticSpec {
        num_tasks: 20,
        dim: 30,
        ..spec(20, 30)
    };
    let family: Arc<dyn TaskFamily> = Arc::new(quadratic_family(&s).unwrap());
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

criterion_group!(benches, triad, iteration, exact);

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
    let Some(triad_s) = median("bandwidth/triad") else {
        return;
    };
    let bandwidth = (3 * 8 * TRIAD_LEN) as f64 / triad_s;
    println!("\nsummary (medians of this run)");
    println!("  triad bandwidth: {:.2} GB/s", bandwidth * 1e-9);
    for (id, bytes) in [
        (
            "softmax_gd_iteration/least_squares_data/M16_n8192_d256",
            8 * 16 * 8192 * 257,
        ),
        (
            "softmax_gd_iteration/least_squares_gram/M16_n8192_d256",
            8 * 16 * 256 * 257,
        ),
        (
            "softmax_gd_iteration/logistic/M16_n8192_d256",
            8 * 16 * 8192 * 257,
        ),
        (
            "softmax_gd_iteration/least_squares_data/M64_n8192_d256",
            8 * 64 * 8192 * 257,
        ),
    ] {
        if let Some(t) = median(id) {
            let rate = bytes as f64 / t;
            println!(
                "  {id}: {:.3} ms, {:.2} GB/s = {:.0}% of triad bandwidth",
                t * 1e3,
                rate * 1e-9,
                100.0 * rate / bandwidth
            );
        }
    }
    if let Some(t) = median("exact/quadratic_M20_d30") {
        println!("  exact/quadratic_M20_d30: {:.3} ms", t * 1e3);
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
