//! Per-core throughput of the fused pass on samples that sit in the caches.
//!
//! Out of cache, an iteration can read its bytes no faster than one core
//! runs `kernels::fused_rows` on data already at hand; this harness times
//! that ceiling on one thread: a block of `rows` samples (d = 256) passed
//! again and again, least squares and logistic links, f64 and f32 samples,
//! against a read-only sum of the same bytes. Each figure is the median of
//! `rounds` rounds, the kernels interleaved within each round.
//!
//! `cargo run --release -p taskrobust-bench --example fused_in_cache -- [ROWS] [ROUNDS]`
//! (ROWS 1024 by default: 2 MB of f64, the pass's chunk, in L2/L3; 128 fits L2).
//! Prints one line per case plus a `digest` of the results' bits, which must
//! not change when a kernel is made faster.

use std::hint::black_box;
use std::time::Instant;
use taskrobust::linalg::element::Element;
use taskrobust::linalg::kernels::{fused_rows, softplus_and_sigmoid};

const D: usize = 256;

fn squared_link(z: f64, y: f64) -> (f64, f64) {
    let r = z - y;
    (0.5 * r * r, r)
}

fn logistic_link(z: f64, y: f64) -> (f64, f64) {
    let (loss, slope) = softplus_and_sigmoid(-y * z);
    (loss, -y * slope)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per pass of `fused_rows` over `xt` (median of several passes),
/// and the bits of its results.
fn time_pass<T: Element, L: Fn(f64, f64) -> (f64, f64)>(
    xt: &[T],
    y: &[f64],
    theta: &[f64],
    link: &L,
    passes: usize,
    digest: &mut u64,
) -> f64 {
    let mut gradient = vec![0.0; D];
    let mut times = Vec::with_capacity(passes);
    for _ in 0..passes {
        gradient.fill(0.0);
        let clock = Instant::now();
        let loss = fused_rows(black_box(xt), y, theta, link, &mut gradient);
        times.push(clock.elapsed().as_secs_f64());
        *digest = digest.rotate_left(7) ^ loss.to_bits();
        for g in &gradient {
            *digest = digest.rotate_left(3) ^ g.to_bits();
        }
    }
    median(&mut times)
}

fn read_only(values: &[f64], passes: usize) -> f64 {
    let mut times = Vec::with_capacity(passes);
    for _ in 0..passes {
        let clock = Instant::now();
        let mut lanes = [0.0f64; 8];
        for block in black_box(values).chunks_exact(8) {
            for (lane, v) in lanes.iter_mut().zip(block) {
                *lane += v;
            }
        }
        black_box(lanes);
        times.push(clock.elapsed().as_secs_f64());
    }
    median(&mut times)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).map_or(1024, |v| v.parse().expect("ROWS"));
    let rounds: usize = args.get(2).map_or(15, |v| v.parse().expect("ROUNDS"));
    let passes = (200_000 / rows).max(5);
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let xt64: Vec<f64> = (0..rows * D).map(|_| next()).collect();
    let xt32: Vec<f32> = xt64.iter().map(|&v| v as f32).collect();
    let values: Vec<f64> = (0..rows * D).map(|_| next()).collect();
    let targets: Vec<f64> = (0..rows).map(|_| next()).collect();
    let labels: Vec<f64> = targets
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let theta: Vec<f64> = (0..D).map(|_| 0.2 * next()).collect();
    let names = [
        "least squares f64",
        "least squares f32",
        "logistic f64",
        "logistic f32",
        "read-only sum f64",
    ];
    let bytes = [
        rows * (8 * D + 8),
        rows * (4 * D + 8),
        rows * (8 * D + 8),
        rows * (4 * D + 8),
        rows * 8 * D,
    ];
    let mut times = vec![Vec::new(); names.len()];
    let mut digest = 0u64;
    for _ in 0..rounds {
        times[0].push(time_pass(
            &xt64,
            &targets,
            &theta,
            &squared_link,
            passes,
            &mut digest,
        ));
        times[1].push(time_pass(
            &xt32,
            &targets,
            &theta,
            &squared_link,
            passes,
            &mut digest,
        ));
        times[2].push(time_pass(
            &xt64,
            &labels,
            &theta,
            &logistic_link,
            passes,
            &mut digest,
        ));
        times[3].push(time_pass(
            &xt32,
            &labels,
            &theta,
            &logistic_link,
            passes,
            &mut digest,
        ));
        times[4].push(read_only(&values, passes));
    }
    println!(
        "fused_in_cache: rows {rows}, d {D}, {rounds} rounds x {passes} passes, one thread, kernels {}",
        taskrobust::linalg::kernels::isa().name()
    );
    let mut medians = Vec::new();
    for ((name, b), t) in names.iter().zip(bytes).zip(&mut times) {
        let s = median(t);
        medians.push(s);
        println!(
            "  {name}: {:.2} us per pass, {:.2} GB/s, {:.1} ns per row",
            s * 1e6,
            b as f64 / s * 1e-9,
            s * 1e9 / rows as f64
        );
    }
    println!(
        "  f32/f64 time: least squares {:.3}, logistic {:.3}",
        medians[1] / medians[0],
        medians[3] / medians[2]
    );
    println!("  digest {digest:016x}");
}
