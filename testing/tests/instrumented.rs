//! What the runner does with the passes of a family: counts them, and hands a
//! failing pass back to the caller as that error.

use std::sync::Arc;

use taskrobust::family::generators::{quadratic_family, SyntheticSpec};
use taskrobust::solvers::{solve, Method, SolveOptions};
use taskrobust::{Error, FeasibleSet};
use taskrobust_testing::{Instrumented, INJECTED_FAILURE};

fn spec() -> SyntheticSpec {
    SyntheticSpec {
        num_tasks: 3,
        dim: 2,
        seed: 1,
        ..Default::default()
    }
}

#[test]
fn a_failing_evaluation_reaches_the_caller_as_that_error() {
    // exact evaluates only at its end; stochastic needs data tasks.
    for method in Method::ALL
        .into_iter()
        .filter(|m| !matches!(m, Method::Exact | Method::Stochastic))
    {
        for healthy in [0, 5] {
            let family = Arc::new(Instrumented::failing_after(
                Arc::new(quadratic_family(&spec()).unwrap()),
                healthy,
            ));
            let options = SolveOptions {
                method,
                iterations: 50,
                distance: Some(5.0),
                ..Default::default()
            };
            match solve(family.clone(), FeasibleSet::Unconstrained, &options) {
                Err(Error::Device(e)) => assert_eq!(e.to_string(), INJECTED_FAILURE),
                other => panic!("{method:?} after {healthy} passes: {other:?}"),
            }
            // It stopped at the first failing pass.
            assert_eq!(family.passes(), healthy + 1, "{method:?}");
        }
    }
}

#[test]
fn passes_are_counted_and_the_family_is_otherwise_unchanged() {
    let inner = Arc::new(quadratic_family(&spec()).unwrap());
    let counted = Arc::new(Instrumented::new(inner.clone()));
    let options = SolveOptions {
        iterations: 20,
        mu: Some(0.2),
        step: Some(0.1),
        ..Default::default()
    };
    let plain = solve(inner, FeasibleSet::Unconstrained, &options).unwrap();
    let through = solve(counted.clone(), FeasibleSet::Unconstrained, &options).unwrap();
    assert_eq!(plain.theta, through.theta);
    assert_eq!(plain.lower_bound, through.lower_bound);
    assert_eq!(plain.certificate, through.certificate);
    // A fixed step: one pass at the start, one per iteration, and one for
    // the returned point's certificate (the runner's refined certificate).
    assert_eq!(counted.take_passes(), 22);
    assert_eq!(counted.passes(), 0);
}
