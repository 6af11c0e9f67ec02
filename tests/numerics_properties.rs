//! Invariants of the smoothed maximum and the softmax weights.

use proptest::prelude::*;
use taskrobust::problem::numerics::{entropy, log_sum_exp, softmax};

fn losses() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1e6f64..1e6, 1..40)
}

fn temperature() -> impl Strategy<Value = f64> {
    (-12.0f64..12.0).prop_map(|e| 10f64.powf(e))
}

fn max_of(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

proptest! {
    #[test]
    fn weights_lie_on_the_simplex(f in losses(), mu in temperature()) {
        let p = softmax(&f, mu);
        prop_assert!(p.iter().all(|&w| (0.0..=1.0).contains(&w)));
        prop_assert!((p.iter().sum::<f64>() - 1.0).abs() <= 1e-14 * f.len() as f64);
        let h = entropy(&p);
        prop_assert!(h >= -1e-15 && h <= (f.len() as f64).ln() + 1e-12);
    }

    #[test]
    fn smoothed_max_is_sandwiched(f in losses(), mu in temperature()) {
        let m = f.len() as f64;
        let max = max_of(&f);
        let value = log_sum_exp(&f, mu);
        let slack = 4.0 * f64::EPSILON * (max.abs() + mu * m.ln());
        prop_assert!(value >= max - slack, "{value} < {max}");
        prop_assert!(value <= max + mu * m.ln() + slack);
    }

    #[test]
    fn shifting_all_losses_shifts_the_smoothed_max(f in losses(), mu in temperature(), c in -1e3f64..1e3) {
        let shifted: Vec<f64> = f.iter().map(|x| x + c).collect();
        let lhs = log_sum_exp(&shifted, mu);
        let rhs = log_sum_exp(&f, mu) + c;
        let scale = max_of(&f).abs() + c.abs() + mu * (f.len() as f64).ln();
        prop_assert!((lhs - rhs).abs() <= 8.0 * f64::EPSILON * scale.max(1.0));
        // Weights are shift invariant too.
        let p = softmax(&f, mu);
        let q = softmax(&shifted, mu);
        for (a, b) in p.iter().zip(&q) {
            prop_assert!((a - b).abs() <= 1e-9);
        }
    }

    #[test]
    fn smoothed_max_grows_with_the_temperature(f in losses(), mu in temperature(), factor in 1.0f64..100.0) {
        let low = log_sum_exp(&f, mu);
        let high = log_sum_exp(&f, mu * factor);
        prop_assert!(high >= low - 4.0 * f64::EPSILON * low.abs().max(1.0));
    }

    #[test]
    fn extreme_magnitudes_stay_finite(
        f in prop::collection::vec(-1e300f64..1e300, 1..10),
        mu in temperature(),
    ) {
        let value = log_sum_exp(&f, mu);
        prop_assert!(value.is_finite());
        prop_assert!(value >= max_of(&f));
        let p = softmax(&f, mu);
        prop_assert!(p.iter().all(|w| w.is_finite()));
    }
}

#[test]
fn zero_temperature_limit_is_the_max() {
    let f = [0.3, -2.0, 0.7, 0.69];
    for mu in [1e-3, 1e-6, 1e-9, 1e-12] {
        let gap = log_sum_exp(&f, mu) - 0.7;
        assert!(gap >= 0.0 && gap <= mu * 4f64.ln());
    }
    let p = softmax(&f, 1e-12);
    assert_eq!(p[2], 1.0);
}

#[test]
fn infinite_temperature_limit_is_the_mean_plus_mu_log_m() {
    let f = [0.3, -2.0, 0.7, 0.69];
    let mean = f.iter().sum::<f64>() / 4.0;
    for mu in [1e3, 1e6, 1e9] {
        let value = log_sum_exp(&f, mu) - mu * 4f64.ln();
        // F_mu - mu ln M = mean + O(var / mu).
        assert!(
            (value - mean).abs() <= 2.0 / mu + 1e-16 * mu * 8.0,
            "mu={mu}: {value} vs {mean}"
        );
    }
    for w in softmax(&f, 1e12) {
        assert!((w - 0.25).abs() < 1e-11);
    }
}
