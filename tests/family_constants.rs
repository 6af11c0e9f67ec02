//! The families' bounds over a ball (`gradient_bound_on_ball`,
//! `loss_bound_on_ball`) hold at random points of the ball, the sphere
//! included: the descent-ascent and subgradient steps, and the bounds the
//! checks compare against, are built from them.

use nalgebra::DVector;
use proptest::prelude::*;
use std::sync::Arc;
use taskrobust::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use taskrobust::family::{Evaluation, GradientForm, TaskFamily};

fn families(seed: u64) -> Vec<Arc<dyn TaskFamily>> {
    let spec = SyntheticSpec {
        num_tasks: 5,
        dim: 4,
        smoothness: 1.5,
        condition_number: 8.0,
        spread: 1.0,
        outliers: 1,
        outlier_distance: 3.0,
        seed,
    };
    vec![
        Arc::new(quadratic_family(&spec).unwrap()),
        Arc::new(least_squares_family(&spec, 30, 0.5, GradientForm::Auto).unwrap()),
        Arc::new(logistic_family(&spec, 30, 0.5, 0.05).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn bounds_on_the_ball_hold_inside_it(
        seed in 0u64..1000,
        direction in proptest::collection::vec(-1.0f64..1.0, 4),
        fraction in prop_oneof![Just(1.0f64), 0.0f64..1.0],
        radius in 0.1f64..5.0,
    ) {
        let mut theta = DVector::from_vec(direction);
        let norm = theta.norm();
        prop_assume!(norm > 1e-6);
        theta *= fraction * radius / norm;
        for family in families(seed) {
            let m = family.num_tasks();
            let mut eval = Evaluation::new(m, family.dim());
            family.evaluate(&theta, &mut |_, w| w.fill(1.0 / m as f64), &mut eval).unwrap();
            let g = family.gradient_bound_on_ball(radius);
            let b = family.loss_bound_on_ball(radius);
            // Only rounding slack: the bounds are exact inequalities.
            for i in 0..m {
                prop_assert!(eval.task_gradient_norms[i] <= g * (1.0 + 1e-12),
                    "{}: gradient {} > {}", family.kind(), eval.task_gradient_norms[i], g);
                prop_assert!(eval.losses[i].abs() <= b * (1.0 + 1e-12),
                    "{}: loss {} > {}", family.kind(), eval.losses[i], b);
            }
        }
    }
}
