//! The two hooks the Python bindings use: `SolveOptions::on_iteration` (a
//! host's Ctrl-C, a callback) and `Values::Shared` (data lent by the host).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use taskrobust::family::generators::{least_squares_family, quadratic_family, SyntheticSpec};
use taskrobust::family::{GradientForm, LeastSquaresFamily, Samples, TaskData};
use taskrobust::linalg::memory::{SharedValues, Values};
use taskrobust::solvers::{solve, IterationHook, Method, SolveOptions};
use taskrobust::{Error, FeasibleSet, TaskFamily};

fn family() -> Arc<dyn TaskFamily> {
    let spec = SyntheticSpec {
        num_tasks: 4,
        dim: 3,
        seed: 2,
        ..Default::default()
    };
    Arc::new(quadratic_family(&spec).unwrap())
}

#[test]
fn the_hook_sees_every_iteration_and_changes_nothing() {
    for method in Method::ALL
        .into_iter()
        .filter(|m| !matches!(m, Method::Exact | Method::Stochastic))
    {
        let options = SolveOptions {
            method,
            iterations: 30,
            distance: Some(5.0),
            record_trace: true,
            ..Default::default()
        };
        let plain = solve(family(), FeasibleSet::Unconstrained, &options).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let hooked = SolveOptions {
            on_iteration: Some(IterationHook::new(move |t, theta, max_loss| {
                record.lock().unwrap().push((t, theta.clone(), max_loss));
                Ok(())
            })),
            ..options.clone()
        };
        let with_hook = solve(family(), FeasibleSet::Unconstrained, &hooked).unwrap();
        // Bit for bit the same run.
        assert_eq!(plain.theta, with_hook.theta, "{method}");
        // (Debug text: the records hold NaN steps, which == refuses.)
        assert_eq!(
            format!("{:?}", plain.trace),
            format!("{:?}", with_hook.trace),
            "{method}"
        );
        assert_eq!(plain.lower_bound.to_bits(), with_hook.lower_bound.to_bits());
        let seen = seen.lock().unwrap();
        let iterations: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(iterations, (1..=30).collect::<Vec<_>>(), "{method}");
        let last = seen.last().unwrap();
        // The hook's theta is the iterate of that iteration; max_loss its F.
        let mut losses = vec![0.0; 4];
        family().losses(&last.1, &mut losses).unwrap();
        let worst = losses.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(worst, last.2, "{method}");
    }
}

#[test]
fn an_error_from_the_hook_stops_the_run_with_that_error() {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let options = SolveOptions {
        iterations: 1000,
        on_iteration: Some(IterationHook::new(move |t, _, _| {
            counted.fetch_add(1, Ordering::Relaxed);
            if t == 7 {
                Err(Error::Solver("interrupted".into()))
            } else {
                Ok(())
            }
        })),
        ..Default::default()
    };
    match solve(family(), FeasibleSet::Unconstrained, &options) {
        Err(Error::Solver(message)) => assert_eq!(message, "interrupted"),
        other => panic!("expected the hook's error, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::Relaxed), 7);
}

struct Lent(Vec<f64>);

impl SharedValues for Lent {
    fn as_slice(&self) -> &[f64] {
        &self.0
    }
}

#[test]
fn shared_values_are_read_in_place_and_copied_only_to_be_written() {
    let spec = SyntheticSpec {
        num_tasks: 3,
        dim: 4,
        seed: 5,
        ..Default::default()
    };
    let owned = least_squares_family(&spec, 50, 0.3, GradientForm::Data).unwrap();
    let data = owned.least_squares_data().unwrap();
    let lent: Vec<Arc<Lent>> = data
        .tasks()
        .iter()
        .map(|t| Arc::new(Lent(t.xt.as_slice().to_vec())))
        .collect();
    let tasks: Vec<TaskData> = data
        .tasks()
        .iter()
        .zip(&lent)
        .map(|(t, l)| TaskData {
            xt: Samples::new(4, t.samples(), Values::Shared(l.clone())),
            y: t.y.clone(),
        })
        .collect();
    for form in [GradientForm::Data, GradientForm::Gram] {
        let shared = LeastSquaresFamily::new(tasks.clone(), form).unwrap();
        // The family reads the lent buffers themselves (no copy, even where
        // it makes data resident for streaming).
        for (t, l) in shared
            .least_squares_data()
            .unwrap()
            .tasks()
            .iter()
            .zip(&lent)
        {
            assert_eq!(t.xt.as_slice().as_ptr(), l.0.as_ptr());
        }
        let options = SolveOptions {
            iterations: 20,
            ..Default::default()
        };
        let a = solve(Arc::new(shared), FeasibleSet::Unconstrained, &options).unwrap();
        let b = solve(
            Arc::new(LeastSquaresFamily::new(data.tasks().to_vec(), form).unwrap()),
            FeasibleSet::Unconstrained,
            &options,
        )
        .unwrap();
        assert_eq!(a.theta, b.theta);
    }
    // Writing copies first: the lender's values stay as they were.
    let mut values = Values::Shared(lent[0].clone());
    values.as_mut_slice()[0] = 1e9;
    assert_eq!(values.as_slice()[0], 1e9);
    assert_ne!(lent[0].0[0], 1e9);
}
