//! Long runs: a solve interrupted after some iterations and resumed from its
//! checkpoint gives bit-identical results to an uninterrupted solve, for every
//! iterative method; a checkpoint of another run is refused.

use std::path::PathBuf;
use std::sync::Arc;
use taskrobust::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use taskrobust::family::{GradientForm, TaskFamily};
use taskrobust::solvers::{solve, Method, SolveOptions, SolveOutcome};
use taskrobust::{Error, FeasibleSet};
use taskrobust_testing::Instrumented;

fn spec() -> SyntheticSpec {
    SyntheticSpec {
        num_tasks: 5,
        dim: 7,
        outliers: 1,
        outlier_distance: 3.0,
        seed: 3,
        ..Default::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskrobust-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_resumed_run_starts_where_the_checkpoint_stopped() {
    let dir = scratch("count");
    let counting = Arc::new(Instrumented::new(Arc::new(
        quadratic_family(&spec()).unwrap(),
    )));
    let family: Arc<dyn TaskFamily> = counting.clone();
    let options = SolveOptions {
        iterations: 40,
        step: Some(0.1),
        mu: Some(0.2),
        checkpoint: Some(dir.join("run.toml")),
        checkpoint_every: 10,
        ..Default::default()
    };
    let full = solve(family.clone(), FeasibleSet::Unconstrained, &options).unwrap();
    let from_scratch = counting.take_passes();
    // The checkpoint now holds iteration 40: a rerun only certifies the result.
    let again = solve(family, FeasibleSet::Unconstrained, &options).unwrap();
    let rerun = counting.passes();
    assert!(from_scratch >= 40, "{from_scratch}");
    assert!(rerun < 5, "resumed run evaluated {rerun} times");
    assert_identical(&again, &full, "rerun");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `a` resumed from a checkpoint, `b` uninterrupted: the same iterates bit for
/// bit. The stored best bound is not trusted on resume (issue 11), so `a`'s
/// bound is the best of its own certificates: a subset of `b`'s, never above.
fn assert_identical(a: &SolveOutcome, b: &SolveOutcome, what: &str) {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.theta), bits(&b.theta), "{what}: theta");
    assert_eq!(bits(&a.losses), bits(&b.losses), "{what}: losses");
    assert_eq!(bits(&a.weights), bits(&b.weights), "{what}: weights");
    assert!(
        a.lower_bound <= b.lower_bound && a.lower_bound <= a.max_loss,
        "{what}: resumed bound {} above the uninterrupted {} or F {}",
        a.lower_bound,
        b.lower_bound,
        a.max_loss
    );
    assert_eq!(a.iterations, b.iterations, "{what}: iterations");
    assert_eq!(
        a.constants.gradient_bound.to_bits(),
        b.constants.gradient_bound.to_bits(),
        "{what}: G"
    );
    // Debug text: NaN entries (uncertified iterations) compare equal there.
    // The running best bound (and the gap from it) is the one field allowed
    // to differ: it restarts at the resumed point.
    let records = |o: &SolveOutcome| {
        o.trace
            .iter()
            .map(|r| {
                format!(
                    "{:?}",
                    (
                        r.iteration,
                        r.max_loss,
                        r.smoothed_loss,
                        r.lower_bound,
                        &r.weights,
                        r.entropy,
                        r.worst_task,
                        r.step
                    )
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(records(a), records(b), "{what}: trace");
    for (ra, rb) in a.trace.iter().zip(&b.trace) {
        assert!(
            ra.best_lower_bound <= rb.best_lower_bound
                || ra.best_lower_bound.is_nan()
                || rb.best_lower_bound.is_nan(),
            "{what}: trace bound at {}",
            ra.iteration
        );
    }
}

#[test]
fn interrupted_and_resumed_runs_are_bit_identical() {
    let dir = scratch("resume");
    let families: Vec<(&str, Arc<dyn TaskFamily>)> = vec![
        ("quadratic", Arc::new(quadratic_family(&spec()).unwrap())),
        (
            "least_squares",
            Arc::new(least_squares_family(&spec(), 60, 0.3, GradientForm::Data).unwrap()),
        ),
        (
            "logistic",
            Arc::new(logistic_family(&spec(), 80, 0.5, 0.05).unwrap()),
        ),
    ];
    let methods = [
        Method::SoftmaxGd,
        Method::Accelerated,
        Method::Stochastic,
        Method::DescentAscent,
        Method::Subgradient,
        Method::Average,
    ];
    for (name, family) in &families {
        for method in methods {
            if method == Method::Stochastic && family.sample_counts().is_none() {
                continue;
            }
            let what = format!("{name}/{method}");
            let base = SolveOptions {
                method,
                iterations: 40,
                distance: Some(5.0),
                seed: 11,
                certify_every: Some(3),
                record_trace: true,
                ..Default::default()
            };
            let uninterrupted = solve(family.clone(), FeasibleSet::Unconstrained, &base).unwrap();
            let path = dir.join(format!("{name}-{method}.toml"));
            let with_checkpoint = SolveOptions {
                checkpoint: Some(path.clone()),
                checkpoint_every: 5,
                ..base.clone()
            };
            // "Crash" after 15 iterations: the checkpoint holds iteration 15.
            let first = solve(
                family.clone(),
                FeasibleSet::Unconstrained,
                &SolveOptions {
                    interrupt_after: Some(15),
                    ..with_checkpoint.clone()
                },
            )
            .unwrap();
            assert_eq!(first.iterations, 15, "{what}");
            assert!(path.exists(), "{what}: no checkpoint written");
            let resumed =
                solve(family.clone(), FeasibleSet::Unconstrained, &with_checkpoint).unwrap();
            assert_identical(&resumed, &uninterrupted, &what);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_of_another_run_is_refused() {
    let dir = scratch("refuse");
    let family: Arc<dyn TaskFamily> = Arc::new(quadratic_family(&spec()).unwrap());
    let path = dir.join("run.toml");
    let options = SolveOptions {
        iterations: 10,
        distance: Some(5.0),
        checkpoint: Some(path.clone()),
        checkpoint_every: 5,
        ..Default::default()
    };
    solve(family.clone(), FeasibleSet::Unconstrained, &options).unwrap();
    let other = SolveOptions {
        mu: Some(0.25),
        ..options.clone()
    };
    match solve(family.clone(), FeasibleSet::Unconstrained, &other) {
        Err(Error::Input(e)) => {
            assert!(e.field.starts_with("checkpoint ("), "{e}");
            assert!(e.message.contains("mu"), "{e}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    std::fs::write(&path, "not a checkpoint").unwrap();
    match solve(family, FeasibleSet::Unconstrained, &options) {
        Err(Error::Input(e)) => assert!(e.message.contains("not a readable checkpoint"), "{e}"),
        other => panic!("expected an input error, got {other:?}"),
    }
    // No temp files are left next to the checkpoint.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
