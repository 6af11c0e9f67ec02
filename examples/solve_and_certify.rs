//! Solve a task-robust problem, then certify a point of your own.
//!
//! `solve` runs a built-in method and reports a certified gap; `certify_point`
//! turns any theta and any weights p into a lower bound on OPT that holds in
//! floating point (`D(p) <= OPT`), so the gap of a point computed elsewhere
//! (another library, a paper's released model) is checkable too.
//!
//! Run: `cargo run --release --example solve_and_certify`.

use nalgebra::DVector;
use std::sync::Arc;
use taskrobust::prelude::*;
use taskrobust::solvers::certify_point;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = SyntheticSpec {
        num_tasks: 8,
        dim: 10,
        outliers: 2,
        outlier_distance: 3.0,
        seed: 1,
        ..Default::default()
    };
    let family: Arc<dyn TaskFamily> = Arc::new(quadratic_family(&spec)?);
    let set = FeasibleSet::Unconstrained;

    // The paper's method with its defaults, and the ERM baseline.
    for method in [Method::SoftmaxGd, Method::Average] {
        let options = SolveOptions {
            method,
            iterations: 500,
            ..Default::default()
        };
        let out = solve(family.clone(), set, &options)?;
        println!(
            "{:<12} F = {:.6}  certified OPT >= {:.6}  gap {:.2e}  ({})",
            out.method, out.max_loss, out.lower_bound, out.gap, out.certificate.kind
        );
    }

    // Your own point: the mean of the task centres, with uniform weights.
    let m = family.num_tasks();
    let mut theta = DVector::zeros(family.dim());
    for centre in spec.centres() {
        theta += centre / m as f64;
    }
    set.project(&mut theta);
    let mut losses = vec![0.0; m];
    family.losses(&theta, &mut losses)?;
    let worst = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lower = certify_point(family.as_ref(), &set, &theta, &vec![1.0 / m as f64; m])?;
    println!(
        "your theta   F = {worst:.6}  certified OPT >= {lower:.6}  gap {:.2e}",
        worst - lower
    );
    assert!(lower <= worst, "a certificate is never above F(theta)");
    Ok(())
}
