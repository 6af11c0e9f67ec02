//! Figure: the task weights of softmax-gd over the iterations (which task is
//! worst, and when) on an imbalanced family -- many similar tasks plus a few
//! outliers.
//!
//! Checks, per family over every seed: the weights stay on the simplex at
//! every iteration (`max_t |sum_i p_i - 1| <= 1e-12`, `p_i >= 0`), and the
//! final weights' certificate brackets the exact optimum with the final point,
//! `D(p_T) <= OPT <= F(theta_T) = D(p_T) + gap_T`, where OPT is known to within
//! the reference's own certified gap (docs/THEORY.md#certificates).

use crate::error::Error;
use crate::experiments::reference::unconstrained_reference;
use crate::experiments::setup::{build_family, median, FamilyParams};
use crate::experiments::{all_rows, figure, CellRows, Experiment, FamilySeed, Finished, Keyed};
use crate::family::TaskFamily;
use crate::plots::weights::{weights_chart, WeightSpec};
use crate::plots::{Scale, WeightPoint, WeightTable};
use crate::solvers::{
    certify_point, Certifying, IterationRecord, MinimaxProblem, MinimaxState, SmoothedParams,
    SoftmaxGd, Tracker,
};
use crate::theory::checks::Check;
use crate::FeasibleSet;
use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{Error as ArgminError, Executor, State, KV};
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    mu: f64,
    iterations: u64,
    /// The exact reference is computed on this ball and must not touch it.
    reference_radius: f64,
    figure_family: String,
    figure_seed: u64,
    figure_points: usize,
    family: FamilyParams,
}

/// Largest `|sum_i p_i - 1|` allowed at any iteration.
const SIMPLEX_TOLERANCE: f64 = 1e-12;

/// The weights and losses at one iteration of the figure's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    iteration: u64,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    weights: Vec<f64>,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    losses: Vec<f64>,
}

/// One (family, seed) run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    tasks: usize,
    outliers: usize,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    mu: f64,
    iterations: u64,
    /// Over every iteration 0..=T: the largest |sum_i p_i - 1| and the smallest p_i.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    max_simplex_error: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    min_weight: f64,
    /// F(theta_T), D(p_T) for the final weights, and gap_T = F(theta_T) - D(p_T).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    final_max_loss: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    final_lower_bound: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    final_gap: f64,
    /// The exact reference: opt_lower <= OPT <= opt_upper.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    opt_lower: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    opt_upper: f64,
    reference_method: String,
    #[serde(deserialize_with = "crate::experiments::nans_if_null")]
    final_weights: Vec<f64>,
    /// Tasks active at the reference point (f_i within 1e-6 relative of OPT).
    active_tasks: Vec<usize>,
    /// The worst task at every recorded iteration changes this many times; the
    /// last change happens at `last_switch`.
    worst_switches: usize,
    last_switch: u64,
    worst_final: usize,
    /// Snapshots for the figure (only in the figure's cell).
    trajectory: Vec<Snapshot>,
}

pub struct WeightsTrajectory;

impl Experiment for WeightsTrajectory {
    type Params = P;
    type Cell = FamilySeed;
    type Row = Row;

    fn name(&self) -> &'static str {
        "weights_trajectory"
    }

    fn default_params(&self) -> &'static str {
        include_str!("weights_trajectory.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        p.seeds.clone()
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<FamilySeed>>, crate::InputError> {
        if !p.families.contains(&p.figure_family) || !p.seeds.contains(&p.figure_seed) {
            return Err(crate::InputError::new(
                "figure_family",
                "the figure's family and seed must be among `families` and `seeds`",
            ));
        }
        Ok(FamilySeed::grid(&p.families, &p.seeds))
    }

    fn run_cell(&self, p: &P, cell: &FamilySeed) -> Result<Vec<Row>, Error> {
        let (kind, seed) = (cell.family.as_str(), cell.seed);
        let family = build_family(kind, &p.family, p.family.tasks, seed)?;
        // Unconstrained: the default step rule backtracks on F_mu.
        let set = FeasibleSet::Unconstrained;
        let reference = unconstrained_reference(&family, p.reference_radius)?;
        let shown = kind == p.figure_family && seed == p.figure_seed;
        let snapshot_at = if shown {
            snapshot_iterations(p.iterations, p.figure_points)
        } else {
            Vec::new()
        };
        let traced = traced_run(&family, set, p.mu, p.iterations, snapshot_at)?;
        let (mut max_simplex_error, mut min_weight) = (0.0f64, f64::INFINITY);
        for record in &traced.trace {
            let sum: f64 = record.weights.iter().sum();
            max_simplex_error = max_simplex_error.max((sum - 1.0).abs());
            min_weight =
                min_weight.min(record.weights.iter().copied().fold(f64::INFINITY, f64::min));
        }
        let (mut worst_switches, mut last_switch) = (0, 0);
        for pair in traced.trace.windows(2) {
            if pair[1].worst_task != pair[0].worst_task {
                worst_switches += 1;
                last_switch = pair[1].iteration;
            }
        }
        let final_record = traced
            .trace
            .last()
            .ok_or_else(|| Error::Solver("empty trace".into()))?;
        if final_record.iteration != p.iterations {
            return Err(Error::Solver(format!(
                "trace ends at t = {}, expected {}",
                final_record.iteration, p.iterations
            )));
        }
        let mut final_losses = vec![0.0; family.num_tasks()];
        family.losses(&traced.theta, &mut final_losses)?;
        let final_max_loss = final_losses
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let final_lower_bound =
            certify_point(family.as_ref(), &set, &traced.theta, &final_record.weights)?;
        let mut reference_losses = vec![0.0; family.num_tasks()];
        family.losses(
            &DVector::from_column_slice(&reference.theta),
            &mut reference_losses,
        )?;
        let active_tasks = reference_losses
            .iter()
            .enumerate()
            .filter(|(_, &f)| f >= reference.opt_upper - 1e-6 * reference.opt_upper.abs().max(1.0))
            .map(|(i, _)| i)
            .collect();
        let trajectory = if shown {
            snapshots(family.as_ref(), &traced)?
        } else {
            Vec::new()
        };
        let row = Row {
            family: kind.to_string(),
            seed,
            tasks: family.num_tasks(),
            outliers: p.family.outliers.min(family.num_tasks().saturating_sub(1)),
            mu: traced.mu,
            iterations: p.iterations,
            max_simplex_error,
            min_weight,
            final_max_loss,
            final_lower_bound,
            final_gap: final_max_loss - final_lower_bound,
            opt_lower: reference.opt_lower,
            opt_upper: reference.opt_upper,
            reference_method: reference.method.clone(),
            final_weights: final_record.weights.clone(),
            active_tasks,
            worst_switches,
            last_switch,
            worst_final: final_record.worst_task,
            trajectory,
        };
        Ok(vec![row])
    }

    fn finish(
        &self,
        p: &P,
        cells: &[CellRows<'_, FamilySeed, Row>],
        out: &Path,
    ) -> Result<Finished, Error> {
        let rows = all_rows(cells);
        let mut finished = Finished {
            checks: verdicts(p, &rows),
            ..Default::default()
        };
        let shown = rows
            .iter()
            .find(|r| r.family == p.figure_family && r.seed == p.figure_seed)
            .ok_or_else(|| Error::io("", "the figure's run is missing"))?;
        let mut table = WeightTable::new();
        for snap in &shown.trajectory {
            for (i, (&w, &f)) in snap.weights.iter().zip(&snap.losses).enumerate() {
                table.points.push(WeightPoint {
                    iteration: snap.iteration as f64,
                    task: task_label(i, shown.tasks, shown.outliers),
                    weight: w,
                    loss: Some(f),
                });
            }
        }
        let csv = out.join("weights_trajectory.csv");
        table.write_csv(&csv).map_err(|e| Error::io("", e))?;
        let drawn = WeightTable::read_csv(&csv).map_err(|e| Error::io("", e))?;
        let mut spec = WeightSpec::new("iteration t", "task weight p_i(θ_t)");
        spec.x_scale = Scale::Log;
        weights_chart(&drawn, &spec, &out.join("weights_trajectory"))
            .map_err(|e| Error::io("", e))?;
        finished
            .figures
            .push(figure("weights_trajectory", caption(p, &rows, shown)));
        Ok(finished)
    }
}

/// A task's name in the weight table (the chart prefixes "task "): the last
/// `outliers` tasks of a synthetic family are the outliers.
fn task_label(i: usize, tasks: usize, outliers: usize) -> String {
    if i + outliers >= tasks {
        format!("{} (outlier)", i + 1)
    } else {
        format!("{}", i + 1)
    }
}

/// Log-spaced iterations 0 < t <= T (at most `points`, distinct), plus 0.
fn snapshot_iterations(iterations: u64, points: usize) -> Vec<u64> {
    let mut grid = vec![0u64];
    let points = points.max(2);
    for k in 0..points {
        let t = (iterations as f64)
            .powf(k as f64 / (points - 1) as f64)
            .round() as u64;
        if t > *grid.last().unwrap_or(&0) {
            grid.push(t.min(iterations));
        }
    }
    if grid.last() != Some(&iterations) {
        grid.push(iterations);
    }
    grid
}

/// Records theta at chosen iterations of an argmin run. In `observe_iter`
/// the state holds the iterate after the step, theta_{t+1}, where
/// `t = state.get_iter()`.
struct Capture {
    at: Vec<u64>,
    thetas: Arc<Mutex<Iterates>>,
}

/// `(t, theta_t)` pairs.
type Iterates = Vec<(u64, DVector<f64>)>;

impl Capture {
    fn keep(&self, t: u64, state: &MinimaxState) {
        if self.at.binary_search(&t).is_ok() {
            if let (Some(theta), Ok(mut thetas)) = (state.get_param(), self.thetas.lock()) {
                thetas.push((t, theta.clone()));
            }
        }
    }
}

impl Observe<MinimaxState> for Capture {
    fn observe_init(
        &mut self,
        _name: &str,
        state: &MinimaxState,
        _kv: &KV,
    ) -> Result<(), ArgminError> {
        self.keep(0, state);
        Ok(())
    }

    fn observe_iter(&mut self, state: &MinimaxState, _kv: &KV) -> Result<(), ArgminError> {
        self.keep(state.get_iter() + 1, state);
        Ok(())
    }
}

/// What one traced run gives.
struct Traced {
    trace: Vec<IterationRecord>,
    theta: DVector<f64>,
    mu: f64,
    /// The iterates at the snapshot iterations, in order.
    thetas: Iterates,
}

/// Softmax-gd through argmin's Executor (the crate's solver, with its
/// default step rule), keeping the trace of every iteration and theta at the
/// snapshot iterations.
fn traced_run(
    family: &Arc<dyn TaskFamily>,
    set: FeasibleSet,
    mu: f64,
    iterations: u64,
    snapshot_at: Vec<u64>,
) -> Result<Traced, Error> {
    let tracker = Tracker::new(set, iterations, true).quiet();
    let params = SmoothedParams::new(iterations).mu(mu).check()?;
    let solver = SoftmaxGd::new(params, tracker);
    let mut theta0 = DVector::zeros(family.dim());
    set.project(&mut theta0);
    let thetas = Arc::new(Mutex::new(Vec::new()));
    let capture = Capture {
        at: snapshot_at,
        thetas: thetas.clone(),
    };
    let result = Executor::new(MinimaxProblem::new(family.clone(), set), solver)
        .configure(|state| state.param(theta0).max_iters(iterations))
        .add_observer(capture, ObserverMode::Always)
        .run()?;
    let theta = result
        .state
        .get_param()
        .cloned()
        .ok_or_else(|| Error::Solver("softmax-gd returned no point".into()))?;
    let thetas = thetas
        .lock()
        .map_err(|_| Error::Solver("snapshot lock poisoned".into()))?
        .clone();
    Ok(Traced {
        trace: result.solver.tracker().trace.clone(),
        theta,
        mu: result.solver.mu_and_step().0.unwrap_or(mu),
        thetas,
    })
}

/// Losses at the captured iterates; the traced weights must be their softmax.
fn snapshots(family: &dyn TaskFamily, traced: &Traced) -> Result<Vec<Snapshot>, Error> {
    let mut losses = vec![0.0; family.num_tasks()];
    traced
        .thetas
        .iter()
        .map(|(t, theta)| {
            family.losses(theta, &mut losses)?;
            let weights = traced
                .trace
                .get(*t as usize)
                .ok_or_else(|| Error::Solver(format!("no trace record at iteration {t}")))?
                .weights
                .clone();
            let again = crate::numerics::softmax(&losses, traced.mu);
            let drift = again
                .iter()
                .zip(&weights)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            if drift > 1e-12 {
                return Err(Error::Solver(format!(
                    "captured iterate does not match the traced weights at t = {t} (max difference {drift:.2e})"
                )));
            }
            Ok(Snapshot {
                iteration: *t,
                weights,
                losses: losses.clone(),
            })
        })
        .collect()
}

/// The checks, from the rows alone (a test feeds fabricated rows).
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
        let complete = mine.len() == p.seeds.len() && !mine.is_empty();

        let worst_sum = mine
            .iter()
            .max_by(|a, b| a.max_simplex_error.total_cmp(&b.max_simplex_error));
        let min_weight = mine
            .iter()
            .map(|r| r.min_weight)
            .fold(f64::INFINITY, f64::min);
        let on_simplex = complete
            && mine
                .iter()
                .all(|r| r.max_simplex_error <= SIMPLEX_TOLERANCE && r.min_weight >= 0.0);
        checks.push(Check::new(
            format!(
                "weights/{family}: softmax-gd weights on the simplex at every iteration (max |sum p - 1| <= {SIMPLEX_TOLERANCE:e}, p >= 0)"
            ),
            on_simplex,
            json!({
                "max_sum_error": worst_sum.map(|r| r.max_simplex_error),
                "min_weight": min_weight,
            }),
            json!({"max_sum_error": SIMPLEX_TOLERANCE, "min_weight": 0.0}),
            match worst_sum {
                Some(w) => format!(
                    "over {} runs x {} iterations: largest |sum p - 1| = {:.2e} (seed {}), smallest weight {:.3e}",
                    mine.len(),
                    w.iterations + 1,
                    w.max_simplex_error,
                    w.seed,
                    min_weight
                ),
                None => "not evaluated: no runs".to_string(),
            },
        ));

        // D(p_T) <= OPT <= D(p_T) + gap_T, with OPT in [opt_lower, opt_upper]:
        // refuted only if D(p_T) > opt_upper or D(p_T) + gap_T < opt_lower.
        let mut details = Vec::new();
        let mut bracketed = complete;
        let mut measured = Vec::new();
        for r in &mine {
            let below = r.final_lower_bound <= r.opt_upper;
            let above = r.final_lower_bound + r.final_gap >= r.opt_lower;
            bracketed &= below && above;
            // Where OPT sits in [D(p_T), F(theta_T)], 0 = at D, 1 = at F.
            let position = (r.opt_upper - r.final_lower_bound) / r.final_gap;
            measured.push(json!({
                "seed": r.seed,
                "lower_bound": r.final_lower_bound,
                "gap": r.final_gap,
                "opt": [r.opt_lower, r.opt_upper],
            }));
            details.push(format!(
                "seed {}: D(p_T) = {:.8} {} OPT in [{:.8}, {:.8}] {} F(θ_T) = {:.8} (gap {:.2e}; OPT at {:.2} of it)",
                r.seed,
                r.final_lower_bound,
                if below { "<=" } else { ">" },
                r.opt_lower,
                r.opt_upper,
                if above { "<=" } else { ">" },
                r.final_lower_bound + r.final_gap,
                r.final_gap,
                position
            ));
        }
        checks.push(Check::new(
            format!(
                "weights/{family}: the final weights' certificate D(p_T) is within the certified gap of the exact OPT"
            ),
            bracketed,
            Value::Array(measured),
            json!("D(p_T) <= OPT <= D(p_T) + gap_T"),
            if details.is_empty() {
                "not evaluated: no runs".to_string()
            } else {
                details.join("; ")
            },
        ));
    }
    checks
}

fn caption(p: &P, rows: &[Row], shown: &Row) -> String {
    let label = |i: usize| format!("task {}", task_label(i, shown.tasks, shown.outliers));
    let active: Vec<String> = shown.active_tasks.iter().map(|&i| label(i)).collect();
    let on_active: f64 = shown
        .active_tasks
        .iter()
        .map(|&i| shown.final_weights[i])
        .sum();
    let first_worst = shown.trajectory.first().and_then(|s| {
        s.losses
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| label(i))
    });
    let mut per_family = Vec::new();
    for family in &p.families {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.family == family).collect();
        let gaps: Vec<f64> = mine.iter().map(|r| r.final_gap).collect();
        let switches: Vec<f64> = mine.iter().map(|r| r.worst_switches as f64).collect();
        let mass: Vec<f64> = mine
            .iter()
            .map(|r| r.active_tasks.iter().map(|&i| r.final_weights[i]).sum())
            .collect();
        per_family.push(format!(
            "{}: final certified gap {:.1e}, worst-task changes {}, final weight on the exact solution's active tasks {:.2}",
            family.replace('_', " "),
            median(&gaps),
            median(&switches),
            median(&mass)
        ));
    }
    format!(
        "Task weights p_i(θ_t) = softmax(f(θ_t)/μ) of softmax-gd (μ = {}, unconstrained, backtracking step on F_μ) on an imbalanced {} family ({} similar tasks plus {} outliers, seed {}), stacked, against the iteration t (log scale); the strip on top marks the worst task (largest loss) at each t. The worst task is {} at the start; it changes {}, the last time at t = {}. At t = {} the weight sits on {}; {:.2} of it is on the tasks active at the exact minimax point ({}). Medians over seeds {:?}: {}. The smoothing (μ ln M) keeps weight on nearly active tasks, most visibly for the logistic tasks, whose losses are close together.",
        p.mu,
        shown.family.replace('_', " "),
        shown.tasks - shown.outliers,
        shown.outliers,
        shown.seed,
        first_worst.unwrap_or_else(|| "?".into()),
        if shown.worst_switches == 1 {
            "once".to_string()
        } else {
            format!("{} times", shown.worst_switches)
        },
        shown.last_switch,
        shown.iterations,
        top_tasks(shown, &label),
        on_active,
        active.join(", "),
        p.seeds,
        per_family.join("; ")
    )
}

/// The tasks holding the most final weight, with their weights.
fn top_tasks(row: &Row, label: &dyn Fn(usize) -> String) -> String {
    let mut order: Vec<usize> = (0..row.final_weights.len()).collect();
    order.sort_by(|&a, &b| row.final_weights[b].total_cmp(&row.final_weights[a]));
    order
        .iter()
        .take_while(|&&i| row.final_weights[i] >= 0.05)
        .map(|&i| format!("{} ({:.2})", label(i), row.final_weights[i]))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("weights_trajectory.toml"), false).unwrap()
    }

    fn rows() -> Vec<Row> {
        let p = params();
        p.families
            .iter()
            .flat_map(|family| {
                p.seeds.iter().map(move |&seed| Row {
                    family: family.clone(),
                    seed,
                    tasks: 3,
                    outliers: 1,
                    mu: 0.05,
                    iterations: 100,
                    max_simplex_error: 2e-16,
                    min_weight: 1e-9,
                    final_max_loss: 1.01,
                    final_lower_bound: 0.99,
                    final_gap: 0.02,
                    opt_lower: 1.0 - 1e-10,
                    opt_upper: 1.0,
                    reference_method: "exact".into(),
                    final_weights: vec![0.2, 0.3, 0.5],
                    active_tasks: vec![1, 2],
                    worst_switches: 1,
                    last_switch: 3,
                    worst_final: 2,
                    trajectory: Vec::new(),
                })
            })
            .collect()
    }

    #[test]
    fn valid_runs_pass() {
        let checks = verdicts(&params(), &rows());
        assert_eq!(checks.len(), 6);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn weights_off_the_simplex_fail() {
        let mut bad = rows();
        bad[0].max_simplex_error = 1e-9;
        let checks = verdicts(&params(), &bad);
        assert!(!checks[0].passed && checks[0].detail.contains("1.00e-9"));
        assert!(checks[2..].iter().all(|c| c.passed));
        let mut negative = rows();
        negative[4].min_weight = -1e-17;
        assert!(!verdicts(&params(), &negative)[2].passed);
    }

    #[test]
    fn an_invalid_certificate_fails() {
        // D(p_T) above the exact OPT: the certificate would be wrong.
        let mut bad = rows();
        bad[1].final_lower_bound = 1.0 + 1e-9;
        bad[1].final_gap = 0.01 - 1e-9;
        let checks = verdicts(&params(), &bad);
        assert!(!checks[1].passed, "{}", checks[1].detail);
        // A final point below OPT is impossible: the reference or F is wrong.
        let mut below = rows();
        below[7].final_gap = 0.005;
        below[7].final_lower_bound = 0.99;
        assert!(!verdicts(&params(), &below)[5].passed);
        // Missing seeds are not a pass.
        let mut missing = rows();
        missing.pop();
        assert!(!verdicts(&params(), &missing)[5].passed);
    }

    #[test]
    fn snapshot_grid_is_increasing_and_ends_at_t() {
        let grid = snapshot_iterations(3000, 160);
        assert_eq!(grid[0], 0);
        assert_eq!(*grid.last().unwrap(), 3000);
        assert!(grid.windows(2).all(|w| w[0] < w[1]));
        assert!(grid.len() <= 161);
    }
}
