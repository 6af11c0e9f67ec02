//! The bounds of docs/THEORY.md, evaluated in their certified comparator
//! forms, hold on real solver runs (quadratic tasks on a ball, exact
//! reference). A smoke test of the theory <-> solver link; the full checks
//! live in the reproduce experiments.

use nalgebra::DVector;
use std::sync::Arc;
use taskrobust::family::generators::{quadratic_family, SyntheticSpec};
use taskrobust::family::TaskFamily;
use taskrobust::problem::numerics::log_sum_exp;
use taskrobust::solvers::{solve, Method, SolveOptions, SolveOutcome};
use taskrobust::theory::bounds;
use taskrobust::theory::Window;
use taskrobust::FeasibleSet;
use taskrobust_lab::theory::checks::{bound_holds, rate_no_shallower};

fn family(seed: u64) -> Arc<dyn TaskFamily> {
    Arc::new(
        quadratic_family(&SyntheticSpec {
            num_tasks: 6,
            dim: 8,
            smoothness: 2.0,
            condition_number: 10.0,
            spread: 1.0,
            outliers: 1,
            outlier_distance: 3.0,
            seed,
        })
        .unwrap(),
    )
}

fn run(family: &Arc<dyn TaskFamily>, set: FeasibleSet, options: SolveOptions) -> SolveOutcome {
    solve(family.clone(), set, &options).unwrap()
}

fn losses(family: &Arc<dyn TaskFamily>, theta: &[f64]) -> Vec<f64> {
    let mut f = vec![0.0; family.num_tasks()];
    family
        .losses(&DVector::from_column_slice(theta), &mut f)
        .unwrap();
    f
}

#[test]
fn softmax_gd_fixed_mu_and_subgradient_stay_below_their_bounds() {
    let set = FeasibleSet::with_radius(4.0);
    for seed in [1, 2, 3] {
        let fam = family(seed);
        let m = fam.num_tasks();
        let reference = run(
            &fam,
            set,
            SolveOptions {
                method: Method::Exact,
                iterations: 1,
                ..Default::default()
            },
        );
        let d_ref = reference.lower_bound;
        assert!(reference.gap < 1e-6, "reference gap {}", reference.gap);
        let u = &reference.theta;
        let r = DVector::from_column_slice(u).norm(); // theta_0 = 0

        // (a) softmax-gd, fixed mu, default step 1/L_mu on the ball.
        let mu = 0.05;
        let out = run(
            &fam,
            set,
            SolveOptions {
                method: Method::SoftmaxGd,
                iterations: 3000,
                mu: Some(mu),
                record_trace: true,
                ..Default::default()
            },
        );
        let l_mu = out
            .constants
            .smoothed_smoothness
            .expect("1/L_mu step on a ball");
        let excess = log_sum_exp(&losses(&fam, u), mu) - d_ref;
        let trace: Vec<_> = out.trace.iter().filter(|rec| rec.iteration > 0).collect();
        let ts: Vec<f64> = trace.iter().map(|rec| rec.iteration as f64).collect();
        let measured: Vec<f64> = trace.iter().map(|rec| rec.max_loss - d_ref).collect();
        let bound: Vec<f64> = trace
            .iter()
            .map(|rec| bounds::softmax_gd_comparator(rec.iteration, excess, l_mu, r))
            .collect();
        let verdict = bound_holds(&ts, &measured, &bound);
        assert!(verdict.passed, "seed {seed}: {}", verdict.detail);
        eprintln!(
            "seed {seed}: L_mu {l_mu:.1}, R {r:.3}, excess {excess:.3e}, final gap {:.3e}, floor {:.3e}; {}",
            out.gap,
            bounds::smoothing_bias(mu, m),
            verdict.detail
        );

        // (f) subgradient with its tuned step; best iterate, comparator u.
        let t = 2000;
        let sub = run(
            &fam,
            set,
            SolveOptions {
                method: Method::Subgradient,
                iterations: t,
                record_trace: true,
                ..Default::default()
            },
        );
        let eta = sub.step.expect("constant step");
        let g = sub.constants.gradient_bound;
        let excess = losses(&fam, u).iter().copied().fold(f64::MIN, f64::max) - d_ref;
        let mut best = f64::INFINITY;
        let (mut xs, mut ms, mut bs) = (Vec::new(), Vec::new(), Vec::new());
        for rec in &sub.trace {
            // The best of theta_0..theta_{k-1} against the bound at horizon k.
            if rec.iteration > 0 {
                xs.push(rec.iteration as f64);
                ms.push(best - d_ref);
                bs.push(bounds::subgradient_comparator(
                    rec.iteration,
                    eta,
                    g,
                    excess,
                    r,
                ));
            }
            best = best.min(rec.max_loss);
        }
        let verdict = bound_holds(&xs, &ms, &bs);
        assert!(verdict.passed, "seed {seed}: {}", verdict.detail);
    }
}

#[test]
fn tuned_softmax_gd_decays_at_least_like_one_over_sqrt_t() {
    let set = FeasibleSet::with_radius(4.0);
    let fam = family(4);
    let reference = run(
        &fam,
        set,
        SolveOptions {
            method: Method::Exact,
            iterations: 1,
            ..Default::default()
        },
    );
    // One run per horizon, each with mu tuned for it.
    let horizons = [50u64, 100, 200, 400, 800, 1600];
    let gaps: Vec<f64> = horizons
        .iter()
        .map(|&t| {
            let out = run(
                &fam,
                set,
                SolveOptions {
                    method: Method::SoftmaxGd,
                    iterations: t,
                    ..Default::default()
                },
            );
            out.max_loss - reference.lower_bound
        })
        .collect();
    let xs: Vec<f64> = horizons.iter().map(|&t| t as f64).collect();
    let verdict = rate_no_shallower(&xs, &gaps, Window::all(), -0.5);
    assert!(verdict.passed, "{}: {:?}", verdict.detail, gaps);
}

#[test]
fn accelerated_default_step_covers_its_extrapolated_points() {
    // FISTA takes gradients at y = theta + beta (theta - theta_prev), which
    // can leave the ball of radius r but not that of radius 3r; its default
    // step 1/L_mu must use G over the larger ball (docs/THEORY.md#accelerated-softmax-gd).
    let (radius, mu) = (4.0, 0.1);
    let set = FeasibleSet::with_radius(radius);
    let fam = family(1);
    let out = run(
        &fam,
        set,
        SolveOptions {
            method: Method::Accelerated,
            iterations: 200,
            mu: Some(mu),
            record_trace: true,
            ..Default::default()
        },
    );
    let reach = taskrobust::solvers::ACCELERATED_REACH;
    let g = fam.gradient_bound_on_ball(reach * radius);
    let l_mu = bounds::smoothed_smoothness(fam.smoothness(), g, mu);
    assert_eq!(out.constants.smoothed_smoothness, Some(l_mu));
    assert!(out.step.unwrap() <= 1.0 / l_mu);
    // Every gradient the run took (iterates and extrapolated points) is within that G.
    assert!(
        out.constants.gradient_bound <= g,
        "{} > {g}",
        out.constants.gradient_bound
    );
    // Softmax-gd keeps G over the set itself.
    let out = run(
        &fam,
        set,
        SolveOptions {
            method: Method::SoftmaxGd,
            iterations: 10,
            mu: Some(mu),
            ..Default::default()
        },
    );
    let g = fam.gradient_bound_on_ball(radius);
    assert_eq!(
        out.constants.smoothed_smoothness,
        Some(bounds::smoothed_smoothness(fam.smoothness(), g, mu))
    );
}
