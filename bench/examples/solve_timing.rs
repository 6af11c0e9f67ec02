//! The core crate's solve time on data written by python/bench/solve_overhead.py
//! (the Python bindings' overhead is measured against this; loading excluded).
//!
//! `cargo run --release -p taskrobust-bench --example solve_timing -- DIR REPEATS`
//! reads DIR/shape.txt ("M n d iters") and DIR/x{i}.f64, DIR/y{i}.f64
//! (little-endian f64; x in C order, n x d), builds the least-squares family
//! as `taskrobust.Problem.least_squares` does (default gradient form), and
//! prints one JSON line: the solve times in seconds and their median (after
//! one untimed solve).

use nalgebra::DVector;
use std::sync::Arc;
use std::time::Instant;
use taskrobust::family::{GradientForm, LeastSquaresFamily, Samples, TaskData};
use taskrobust::linalg::memory::{copy_for_streaming, Values};
use taskrobust::prelude::*;

fn read_f64(path: &std::path::Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: solve_timing DIR REPEATS"));
    let repeats: usize = args.get(2).map_or(5, |r| r.parse().expect("REPEATS"));
    let shape = std::fs::read_to_string(dir.join("shape.txt")).expect("shape.txt");
    let [m, n, d, iters]: [usize; 4] = shape
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("M n d iters");
    let tasks: Vec<TaskData> = (0..m)
        .map(|i| {
            let x = read_f64(&dir.join(format!("x{i}.f64")));
            let y = read_f64(&dir.join(format!("y{i}.f64")));
            assert_eq!((x.len(), y.len()), (n * d, n));
            // On huge pages, as the core's own constructors and NumPy place
            // large arrays.
            TaskData {
                xt: Samples::new(d, n, Values::Owned(copy_for_streaming(&x))),
                y: DVector::from_vec(y).into(),
            }
        })
        .collect();
    let family: Arc<dyn TaskFamily> =
        Arc::new(LeastSquaresFamily::new(tasks, GradientForm::Auto).expect("valid data"));
    let options = SolveOptions {
        iterations: iters as u64,
        ..Default::default()
    };
    // One solve first, untimed (thread pool, first touches), as the Python side does.
    let mut max_loss = solve(family.clone(), FeasibleSet::Unconstrained, &options)
        .expect("solve")
        .max_loss;
    let mut seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let outcome = solve(family.clone(), FeasibleSet::Unconstrained, &options).expect("solve");
        seconds.push(start.elapsed().as_secs_f64());
        max_loss = outcome.max_loss;
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "median": median, "max_loss": max_loss})
    );
}
