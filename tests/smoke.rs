use std::sync::Arc;
use taskrobust::family::generators::*;
use taskrobust::solvers::*;
use taskrobust::*;

#[test]
fn smoke_all_methods() {
    let fam: Arc<dyn TaskFamily> = Arc::new(polygon_family(5, 1.0, 3).unwrap());
    for m in Method::ALL {
        if m == Method::Stochastic {
            continue;
        }
        let opts = SolveOptions {
            method: m,
            iterations: 500,
            distance: Some(2.0),
            ..Default::default()
        };
        let out = solve(fam.clone(), FeasibleSet::Unconstrained, &opts).unwrap();
        println!(
            "{m}: F={:.6e} lb={:.6e} gap={:.3e} mu={:?} step={:?} t={:.3}ms",
            out.max_loss,
            out.lower_bound,
            out.gap,
            out.mu,
            out.step,
            out.seconds * 1e3
        );
    }
    let spec = SyntheticSpec {
        num_tasks: 16,
        dim: 20,
        outliers: 2,
        outlier_distance: 5.0,
        seed: 3,
        ..Default::default()
    };
    for fam in [
        Arc::new(least_squares_family(&spec, 200, 0.1, family::GradientForm::Auto).unwrap())
            as Arc<dyn TaskFamily>,
        Arc::new(logistic_family(&spec, 200, 0.1, 0.01).unwrap()) as Arc<dyn TaskFamily>,
        Arc::new(quadratic_family(&spec).unwrap()) as Arc<dyn TaskFamily>,
    ] {
        for m in Method::ALL {
            let opts = SolveOptions {
                method: m,
                iterations: 300,
                distance: Some(20.0),
                ..Default::default()
            };
            match solve(fam.clone(), FeasibleSet::Unconstrained, &opts) {
                Ok(out) => println!(
                    "{} {m}: F={:.6e} lb={:.6e} gap={:.3e} mu={:?} step={:?} t={:.3}ms",
                    fam.kind(),
                    out.max_loss,
                    out.lower_bound,
                    out.gap,
                    out.mu,
                    out.step,
                    out.seconds * 1e3
                ),
                Err(e) => println!("{} {m}: error {e}", fam.kind()),
            }
        }
    }
}
