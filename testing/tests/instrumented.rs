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

#[test]
fn reweighing_recombines_the_last_pass_bit_for_bit_and_reads_no_data() {
    use nalgebra::DVector;
    use taskrobust::family::generators::{least_squares_family, logistic_family};
    use taskrobust::family::{Evaluation, GradientForm, TaskFamily};
    use taskrobust::problem::numerics::softmax_into;
    let s = SyntheticSpec {
        num_tasks: 4,
        dim: 3,
        seed: 2,
        ..Default::default()
    };
    let families: Vec<Arc<dyn TaskFamily>> = vec![
        Arc::new(quadratic_family(&s).unwrap()),
        Arc::new(least_squares_family(&s, 20, 0.5, GradientForm::Data).unwrap()),
        Arc::new(least_squares_family(&s, 20, 0.5, GradientForm::Gram).unwrap()),
        Arc::new(logistic_family(&s, 20, 0.5, 1e-2).unwrap()),
    ];
    for inner in families {
        let family = Instrumented::new(inner.clone());
        let (theta, other) = (
            DVector::from_element(3, 0.3),
            DVector::from_element(3, -0.2),
        );
        let mut at = Evaluation::new(4, 3);
        family
            .evaluate(&theta, &mut |f, w| softmax_into(f, 1.0, w), &mut at)
            .unwrap();
        let mut fresh = Evaluation::new(4, 3);
        inner
            .evaluate(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut fresh)
            .unwrap();
        // The inner family's last pass is at theta again: no pass is made.
        let before = family.passes();
        let made = family
            .reweigh(&theta, &mut |f, w| softmax_into(f, 0.1, w), &mut at)
            .unwrap();
        assert!(!made && family.passes() == before, "{}", inner.kind());
        assert_eq!(at.weights, fresh.weights, "{}", inner.kind());
        assert_eq!(at.gradient, fresh.gradient, "{}", inner.kind());
        assert_eq!(at.task_gradient_norms, fresh.task_gradient_norms);
        // After a pass elsewhere the gradients at theta are gone: a pass.
        inner
            .evaluate(&other, &mut |f, w| softmax_into(f, 0.1, w), &mut fresh)
            .unwrap();
        let made = family
            .reweigh(&theta, &mut |f, w| softmax_into(f, 0.5, w), &mut at)
            .unwrap();
        assert!(made && family.passes() == before + 1, "{}", inner.kind());
        inner
            .evaluate(&theta, &mut |f, w| softmax_into(f, 0.5, w), &mut fresh)
            .unwrap();
        assert_eq!(at.gradient, fresh.gradient, "{}", inner.kind());
    }
}
