//! What the certificate schedule adds to a default softmax-gd solve, timed
//! against the same solve certified at its start and end only, in
//! interleaved rounds (so both see the same machine load).
//!
//! `cargo run --release -p taskrobust-bench --example certificate_overhead -- KIND ROUNDS`
//! with KIND `logistic` or `least_squares` (M = 16, n_i = 8192, d = 256, the
//! criterion bench's `certificate` problems). Prints one line per solve and a
//! JSON summary: median times, their ratio, passes over the data and gaps.
//! Under continuation (the default without a region) the certificates also
//! steer mu, so the two runs differ in more than the certificates' own cost:
//! the summary reports both the passes and the gap each reaches.

use std::sync::Arc;
use std::time::Instant;
use taskrobust::family::generators::{least_squares_family, logistic_family, SyntheticSpec};
use taskrobust::family::{GradientForm, TaskFamily};
use taskrobust::solvers::{solve, SolveOptions};
use taskrobust::FeasibleSet;
use taskrobust_testing::Instrumented;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("logistic", String::as_str);
    let rounds: usize = args.get(2).map_or(5, |r| r.parse().expect("ROUNDS"));
    let spec = SyntheticSpec {
        num_tasks: 16,
        dim: 256,
        outliers: 2,
        outlier_distance: 2.0,
        seed: 7,
        ..Default::default()
    };
    let family: Arc<dyn TaskFamily> = match kind {
        "least_squares" => {
            Arc::new(least_squares_family(&spec, 8192, 0.5, GradientForm::Auto).expect("family"))
        }
        "logistic" => Arc::new(logistic_family(&spec, 8192, 0.5, 1e-3).expect("family")),
        other => panic!("KIND is logistic or least_squares, not {other}"),
    };
    let modes = [("default", None), ("ends_only", Some(u64::MAX))];
    let mut seconds = [Vec::new(), Vec::new()];
    let mut passes = [0; 2];
    let mut gaps = [0.0; 2];
    for round in 0..=rounds {
        for (k, (label, certify_every)) in modes.iter().enumerate() {
            let counted = Arc::new(Instrumented::new(family.clone()));
            let options = SolveOptions {
                certify_every: *certify_every,
                ..Default::default()
            };
            let start = Instant::now();
            let outcome =
                solve(counted.clone(), FeasibleSet::Unconstrained, &options).expect("solve");
            let elapsed = start.elapsed().as_secs_f64();
            passes[k] = counted.passes();
            gaps[k] = outcome.max_loss - outcome.lower_bound;
            println!(
                "round {round} {label:9} {elapsed:.3} s, {} passes, gap {:.3e}",
                passes[k], gaps[k]
            );
            // Round 0 warms up (thread pool, first touches, lazy constants).
            if round > 0 {
                seconds[k].push(elapsed);
            }
        }
    }
    let (default, ends_only) = (median(&mut seconds[0]), median(&mut seconds[1]));
    println!(
        "{}",
        serde_json::json!({
            "kind": kind,
            "rounds": rounds,
            "median_seconds": {"default": default, "ends_only": ends_only},
            "ratio": default / ends_only,
            "passes": {"default": passes[0], "ends_only": passes[1]},
            "gap": {"default": gaps[0], "ends_only": gaps[1]},
        })
    );
}
