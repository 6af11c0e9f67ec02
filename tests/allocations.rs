//! No allocation inside the iteration loop: after a warm-up, evaluating a
//! family (losses, weights, weighted gradient), certifying and stepping
//! allocates no buffer. The loop runs inside a rayon pool; called from
//! outside one, rayon's injector queue allocates a small block now and then,
//! and a pool thread's first steal registers it with the deque's memory
//! reclamation once: scheduler bookkeeping, bounded and smaller than a vector.

use nalgebra::DVector;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use taskrobust::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use taskrobust::family::{Evaluation, GradientForm, TaskFamily};
use taskrobust::problem::numerics::softmax_into;
use taskrobust::FeasibleSet;

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test in this binary, so that no other test allocates meanwhile.
#[test]
fn iterations_allocate_nothing_of_problem_size() {
    // The counter sees allocations (so that the check below can fail).
    COUNT.store(0, Ordering::Relaxed);
    let v = std::hint::black_box(vec![0u8; 4096]);
    assert!(COUNT.load(Ordering::Relaxed) >= 1 && LARGEST.load(Ordering::Relaxed) >= 4096);
    drop(v);
    let (m, d) = (6, 512);
    let spec = SyntheticSpec {
        num_tasks: m,
        dim: d,
        seed: 2,
        ..Default::default()
    };
    // Large enough for the parallel data pass (>= 2^16 numbers).
    let n = 600;
    let families: Vec<(&str, Arc<dyn TaskFamily>)> = vec![
        ("quadratic", Arc::new(quadratic_family(&spec).unwrap())),
        (
            "least_squares data",
            Arc::new(least_squares_family(&spec, n, 0.5, GradientForm::Data).unwrap()),
        ),
        (
            "least_squares gram",
            Arc::new(least_squares_family(&spec, n, 0.5, GradientForm::Gram).unwrap()),
        ),
        (
            "logistic",
            Arc::new(logistic_family(&spec, n, 0.5, 0.01).unwrap()),
        ),
    ];
    let set = FeasibleSet::Unconstrained;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (name, family) in families {
        let mut theta = DVector::from_element(d, 0.05);
        let mut eval = Evaluation::new(m, d);
        let step = |theta: &mut DVector<f64>, eval: &mut Evaluation| {
            family
                .evaluate(theta, &mut |f, w| softmax_into(f, 0.1, w), eval)
                .unwrap();
            let bound = family.certified_lower_bound(theta, eval, &set);
            assert!(bound.is_finite() || bound == f64::NEG_INFINITY);
            theta.axpy(-0.01, &eval.gradient, 1.0);
        };
        let iterations = 50;
        let (count, largest) = pool.install(|| {
            // Warm-up: lazily built Gram matrices, per-thread work spaces.
            for _ in 0..3 {
                step(&mut theta, &mut eval);
            }
            COUNT.store(0, Ordering::Relaxed);
            LARGEST.store(0, Ordering::Relaxed);
            for _ in 0..iterations {
                step(&mut theta, &mut eval);
            }
            (
                COUNT.load(Ordering::Relaxed),
                LARGEST.load(Ordering::Relaxed),
            )
        });
        // Nothing the size of a d-vector (8 d = 4 KiB) or larger; at most a
        // few one-time registrations of pool threads with the deque's
        // epoch-based memory reclamation (about 2.3 KB each).
        assert!(
            largest < 8 * d && count <= 8,
            "{name}: {count} allocations (largest {largest} bytes) in {iterations} iterations"
        );
    }
}
