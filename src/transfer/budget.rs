//! Sizes a scenario before anything is allocated or run: the memory its
//! largest buffers need and a rough operation count. A request beyond the
//! machine (or beyond any sensible run time) is refused with one line naming
//! the scenario field that asked for it.

use super::scenario::Scenario;
use crate::error::{invalid, InputError};

/// Refuse scenarios whose estimated work exceeds this many floating-point
/// operations (about a day on one core at 1e9 operations per second; the
/// built-in scenarios need about 1e10).
pub const MAX_OPERATIONS: f64 = 1e14;

/// Physical memory of this machine in bytes (`MemTotal` of /proc/meminfo;
/// 16 GiB where that cannot be read).
pub fn machine_memory_bytes() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(16.0 * (1u64 << 30) as f64, |kb| kb * 1024.0)
}

/// One contribution to a scenario's needs, and the field that asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub field: String,
    pub amount: f64,
}

fn largest(needs: Vec<Need>) -> Need {
    needs
        .into_iter()
        .fold(None::<Need>, |best, n| match best {
            Some(b) if b.amount >= n.amount => Some(b),
            _ => Some(n),
        })
        .expect("at least one need")
}

/// The largest downstream sample size in `n_grid` and its index (the first on ties).
fn largest_sample_size(scenario: &Scenario) -> (f64, usize) {
    scenario
        .n_grid
        .iter()
        .enumerate()
        .map(|(i, &n)| (n as f64, i))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// Bytes a run holds at its peak, by field (computed in f64: no overflow).
pub fn memory_needs(scenario: &Scenario, threads: usize) -> Vec<Need> {
    let d = scenario.d as f64;
    let k = scenario.k as f64;
    let m = scenario.upstream.len() as f64;
    let r = scenario.replicates as f64;
    let (largest_n, largest_at) = largest_sample_size(scenario);
    let threads = threads.max(1) as f64;
    let cells = 3.0 * scenario.downstream.len() as f64 * scenario.n_grid.len() as f64;
    vec![
        // The d x d matrices M_i (a few copies: losses, Fantope family and
        // gradients, Grassmann problem) and the solver's d x d buffers.
        Need {
            field: "d".into(),
            amount: 8.0 * d * d * (10.0 * m + 20.0) + 8.0 * threads * d * d,
        },
        // One design matrix (n x k) per thread.
        Need {
            field: format!("n_grid[{largest_at}]"),
            amount: 8.0 * threads * largest_n * (k + 2.0),
        },
        // One replicate value per replicate per thread, and the cells.
        Need {
            field: "replicates".into(),
            amount: 8.0 * threads * r + 200.0 * cells,
        },
    ]
}

/// Floating-point operations of a run, by field (rough, within a small factor).
pub fn operation_needs(scenario: &Scenario) -> Vec<Need> {
    let d = scenario.d as f64;
    let k = scenario.k as f64;
    let m = scenario.upstream.len() as f64;
    let r = scenario.replicates as f64;
    let downstream = scenario.downstream.len() as f64;
    let representation: f64 = scenario
        .n_grid
        .iter()
        .map(|&n| n as f64 * (k * k + 3.0 * k + 2.0) + k * k * k)
        .sum();
    let no_representation: f64 = scenario
        .n_grid
        .iter()
        .filter(|&&n| n >= scenario.d + 2)
        .map(|_| 3.0 * d * d)
        .sum();
    let simulation = r * downstream * (2.0 * representation + no_representation);
    // Blame whichever of the two factors is larger.
    let (largest_n, largest_at) = largest_sample_size(scenario);
    let simulation_field = if r >= largest_n {
        "replicates".to_string()
    } else {
        format!("n_grid[{largest_at}]")
    };
    let upstream = scenario
        .n_up
        .map_or(0.0, |n_up| m * n_up as f64 * (2.0 * d * d + 4.0 * d));
    vec![
        // Eigen-decompositions of d x d matrices in every Fantope step.
        Need {
            field: "d".into(),
            amount: 3.3e4 * d * d * d + 1e4 * m * d * d,
        },
        Need {
            field: "n_up".into(),
            amount: upstream,
        },
        Need {
            field: simulation_field,
            amount: simulation,
        },
    ]
}

/// Refuses a scenario whose memory exceeds the machine's or whose work
/// exceeds [`MAX_OPERATIONS`], naming the field responsible.
pub fn check_resources(scenario: &Scenario) -> Result<(), InputError> {
    check_against(
        scenario,
        machine_memory_bytes(),
        rayon::current_num_threads(),
    )
}

/// [`check_resources`] for a given memory size and thread count.
pub fn check_against(
    scenario: &Scenario,
    memory_bytes: f64,
    threads: usize,
) -> Result<(), InputError> {
    let memory = memory_needs(scenario, threads);
    let total: f64 = memory.iter().map(|n| n.amount).sum();
    if total.is_nan() || total > memory_bytes {
        let culprit = largest(memory);
        return invalid(
            culprit.field,
            format!(
                "the run would need about {:.3e} GB of memory, more than this machine's {:.1} GB; reduce it",
                total / 1e9,
                memory_bytes / 1e9
            ),
        );
    }
    let work = operation_needs(scenario);
    let total: f64 = work.iter().map(|n| n.amount).sum();
    if total.is_nan() || total > MAX_OPERATIONS {
        let culprit = largest(work);
        return invalid(
            culprit.field,
            format!(
                "the run would need about {total:.1e} floating-point operations (days or more; the limit is {MAX_OPERATIONS:.0e}); reduce it"
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::scenario::{balanced, pattern_semantic};

    #[test]
    fn built_ins_fit_and_huge_requests_name_their_field() {
        let gib = (1u64 << 30) as f64;
        for s in [pattern_semantic(), balanced()] {
            assert!(check_against(&s, 2.0 * gib, 16).is_ok());
            let work: f64 = operation_needs(&s).iter().map(|n| n.amount).sum();
            assert!(work < 1e12, "{work}");
        }
        let field = |s: &Scenario| check_against(s, 16.0 * gib, 2).unwrap_err().field;
        let mut s = balanced();
        s.n_grid.push(1_000_000_000_000);
        assert_eq!(field(&s), format!("n_grid[{}]", s.n_grid.len() - 1));
        let mut s = balanced();
        s.replicates = 1_000_000_000_000;
        assert_eq!(field(&s), "replicates");
        let mut s = balanced();
        s.d = 200_000;
        assert_eq!(field(&s), "d");
        let mut s = balanced();
        s.n_up = Some(1_000_000_000_000);
        assert_eq!(field(&s), "n_up");
        let mut s = balanced();
        s.replicates = 100_000_000; // fits in memory, takes far too long
        assert_eq!(field(&s), "replicates");
        let message = check_against(&s, 16.0 * gib, 2).unwrap_err().message;
        assert!(message.contains("operations"), "{message}");
        let mut s = balanced();
        s.replicates = usize::MAX;
        assert!(check_against(&s, 16.0 * gib, 2)
            .unwrap_err()
            .message
            .contains("GB"));
    }
}
