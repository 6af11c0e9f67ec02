//! `run_transfer`: scenario -> representations -> exact risks and Monte Carlo
//! -> [`TransferReport`], serialised as the contract's JSON
//! (shared/design/cli-contract.md, `taskrobust transfer`), plus a table.

use super::average::average_basis;
use super::fantope::{certified_residual_bound, fantope_minimax, ResidualBound};
use super::grassmann::{grassmann_minimax, GrassmannOptions};
use super::model::{
    excess_risk, n_star, no_representation_n_star, no_representation_risk, power_of_two_scale,
    residuals, worst,
};
use super::scenario::Scenario;
use super::simulate::{simulate_all, Cell, Learner};
use super::spectral::top_eigenvectors;
use super::upstream::UpstreamLosses;
use crate::error::Error;
use crate::solvers::Method;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Settings of [`run_transfer`] (not part of the scenario).
#[derive(Debug, Clone)]
pub struct TransferOptions {
    pub grassmann: GrassmannOptions,
    /// Core solver for the Fantope relaxation.
    pub fantope_method: Method,
    pub fantope_iterations: u64,
    /// Temperature of the Fantope solve relative to the loss scale `max_i ||M_i||_F`.
    pub fantope_mu: f64,
    /// Run the Monte Carlo (false: exact predictions only, e.g. for the sweep).
    pub simulate: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            grassmann: GrassmannOptions::default(),
            fantope_method: Method::Accelerated,
            fantope_iterations: 3000,
            fantope_mu: 3e-4,
            simulate: true,
        }
    }
}

/// One point of a worst-task curve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    pub n: usize,
    /// Largest mean excess risk over the downstream tasks.
    pub worst_mean: f64,
    /// Standard error of that task's mean.
    pub worst_se: f64,
    /// Exact expected excess risk of the worst task (largest bias).
    pub predicted: f64,
    /// Index of the downstream task with the largest measured mean.
    pub worst_task: usize,
}

/// One method's downstream results (the contract's `methods.<name>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodReport {
    /// d rows of k numbers (orthonormal columns); null for `none`.
    pub basis: Option<Vec<Vec<f64>>>,
    /// Residual `b_j` of every downstream task.
    pub bias: Vec<f64>,
    pub worst_bias: f64,
    /// Sample size at which the worst task's exact risk reaches epsilon; null if never.
    pub n_star_predicted: Option<usize>,
    /// First grid n from which on the measured worst-task mean stays <= epsilon; null if none.
    pub n_star_empirical: Option<usize>,
    pub curve: Vec<CurvePoint>,
    /// Worst upstream residual (true, population) of the representation.
    pub upstream_worst_bias: Option<f64>,
}

/// The three methods of the contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Methods {
    pub none: MethodReport,
    pub average: MethodReport,
    pub minimax: MethodReport,
}

/// How well the rank-k minimax is certified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MinimaxCertificate {
    /// Certified lower bound on every rank-k representation's worst upstream residual.
    pub fantope_lower_bound: f64,
    /// How the bound was obtained: "ky-fan" (the dual less its error bound)
    /// or "zero" (no error bound was available; 0 is always valid).
    pub kind: String,
    /// What was subtracted from the computed dual for rounding and
    /// eigenvalue perturbation (null where kind is "zero").
    pub error_bound: Option<f64>,
    /// Why the bound fell back to 0 (empty otherwise).
    pub note: String,
    /// Worst upstream residual of the rank-k minimax basis.
    pub rank_k_worst_residual: f64,
    /// `rank_k_worst_residual - fantope_lower_bound`.
    pub distance: f64,
    pub relative_distance: f64,
    /// Worst upstream residual of the Fantope solution P (>= the relaxation's optimum).
    pub fantope_primal_worst_residual: f64,
    /// The core solver's own certified gap on the (possibly estimated) losses.
    pub fantope_solver_gap: f64,
    pub fantope_method: String,
    pub fantope_iterations: u64,
    pub grassmann_iterations: u64,
    /// Which start gave the rank-k result: "average" or "fantope-rounding".
    pub grassmann_start: String,
    /// Every rank-k representation found on the way, with its worst upstream residual.
    pub rank_k_candidates: Vec<Candidate>,
}

/// A rank-k representation found by some method.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub worst_residual: f64,
}

/// Weights on the upstream tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamWeights {
    /// Certificate weights of the Fantope solve.
    pub fantope: Vec<f64>,
    /// Certificate weights of the rank-k solution (KKT / softmax).
    pub grassmann: Vec<f64>,
    pub labels: Vec<String>,
}

/// Wall-clock seconds of each stage.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Timings {
    pub upstream: f64,
    pub average: f64,
    pub grassmann: f64,
    pub fantope: f64,
    pub simulation: f64,
    pub total: f64,
}

/// The scenario's settings, echoed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    pub d: usize,
    pub k: usize,
    pub sigma: f64,
    pub epsilon: f64,
    pub n_up: Option<usize>,
    pub upstream_tasks: usize,
    pub downstream_tasks: usize,
    pub downstream_labels: Vec<String>,
    pub n_grid: Vec<usize>,
    pub replicates: usize,
    pub seed: u64,
}

/// Everything `taskrobust transfer` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferReport {
    pub scenario: ScenarioSummary,
    /// Certified lower bound on the worst upstream residual b of any rank-k representation.
    pub fantope_lower_bound: f64,
    pub methods: Methods,
    pub certificate: MinimaxCertificate,
    pub weights: UpstreamWeights,
    pub timings: Timings,
    /// Every simulated (method, task, n) cell (for the CSV files and check
    /// (a); [`transfer_json`] leaves it out).
    pub cells: Vec<Cell>,
}

fn rows(basis: &DMatrix<f64>) -> Vec<Vec<f64>> {
    basis
        .row_iter()
        .map(|r| r.iter().copied().collect())
        .collect()
}

/// Worst-task curve of one method from its cells; `predicted` per n is the
/// exact risk of the task with the largest bias.
fn curve(
    cells: &[Cell],
    method: &str,
    worst_bias: f64,
    sigma: f64,
    features: usize,
) -> Vec<CurvePoint> {
    let mut ns: Vec<usize> = cells
        .iter()
        .filter(|c| c.method == method)
        .map(|c| c.n)
        .collect();
    ns.dedup();
    ns.into_iter()
        .map(|n| {
            let worst_cell = cells
                .iter()
                .filter(|c| c.method == method && c.n == n)
                .fold(None::<&Cell>, |best, c| match best {
                    Some(b) if b.mean >= c.mean => Some(b),
                    _ => Some(c),
                })
                .expect("cells exist for this n");
            CurvePoint {
                n,
                worst_mean: worst_cell.mean,
                worst_se: worst_cell.se,
                predicted: excess_risk(worst_bias, sigma, features, n).unwrap_or(f64::INFINITY),
                worst_task: worst_cell.task,
            }
        })
        .collect()
}

/// First grid n from which on the measured worst mean stays <= epsilon.
pub fn empirical_n_star(curve: &[CurvePoint], epsilon: f64) -> Option<usize> {
    let mut answer = None;
    for point in curve.iter().rev() {
        if point.worst_mean <= epsilon {
            answer = Some(point.n);
        } else {
            break;
        }
    }
    answer
}

fn method_report(
    scenario: &Scenario,
    basis: Option<&DMatrix<f64>>,
    name: &str,
    cells: &[Cell],
) -> MethodReport {
    let (bias, worst_bias, predicted, features, upstream_worst) = match basis {
        Some(u) => {
            let bias = residuals(u, &scenario.downstream);
            let w = worst(&bias);
            let up = worst(&residuals(u, &scenario.upstream));
            (
                bias,
                w,
                n_star(w, scenario.sigma, scenario.k, scenario.epsilon),
                scenario.k,
                Some(up),
            )
        }
        None => (
            vec![0.0; scenario.downstream.len()],
            0.0,
            no_representation_n_star(scenario.sigma, scenario.d, scenario.epsilon),
            scenario.d,
            None,
        ),
    };
    let curve = curve(cells, name, worst_bias, scenario.sigma, features);
    MethodReport {
        basis: basis.map(rows),
        n_star_empirical: empirical_n_star(&curve, scenario.epsilon),
        bias,
        worst_bias,
        n_star_predicted: predicted,
        curve,
        upstream_worst_bias: upstream_worst,
    }
}

/// Runs the whole transfer experiment for one scenario.
pub fn run_transfer(
    scenario: &Scenario,
    options: &TransferOptions,
) -> Result<TransferReport, Error> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let (k, sigma) = (scenario.k, scenario.sigma);

    // Representations do not change when every task (and sigma) is scaled by a
    // common factor, so they are computed on tasks divided by a power of two
    // (exact) that brings them near 1: beta from 1e-150 to 1e150 then neither
    // overflows nor underflows in beta beta^T. Losses are residuals (sigma^2
    // left out, upstream.rs), so sigma never cancels.
    let t = Instant::now();
    let sampled_sigma = scenario.n_up.map_or(0.0, |_| sigma);
    let scale = power_of_two_scale(
        scenario
            .upstream
            .iter()
            .flat_map(|b| b.iter().copied())
            .chain([sampled_sigma]),
    );
    let scaled_upstream: Vec<_> = scenario.upstream.iter().map(|b| b / scale).collect();
    let population = UpstreamLosses::population(&scaled_upstream);
    let losses = match scenario.n_up {
        None => population.clone(),
        Some(n_up) => UpstreamLosses::sampled(&scaled_upstream, sigma / scale, n_up, scenario.seed),
    };
    let square = scale * scale;
    timings.upstream = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let average = average_basis(&losses, k);
    timings.average = t.elapsed().as_secs_f64();

    // Rank-k minimax from the average solution (the brief's start).
    let t = Instant::now();
    let grassmann_options = GrassmannOptions {
        seed: scenario.seed,
        ..options.grassmann
    };
    let from_average = grassmann_minimax(&losses, k, average.clone(), &grassmann_options)
        .map_err(|e| Error::Solver(format!("grassmann minimax: {e}")))?;
    timings.grassmann = t.elapsed().as_secs_f64();

    // Convex relaxation with the core solver, started at the rank-k solution.
    let t = Instant::now();
    let p0 = &from_average.basis * from_average.basis.transpose();
    let scale = losses.scale().max(f64::MIN_POSITIVE);
    // Two stages (continuation): a warmer temperature moves fast, a colder
    // one refines; the certified bound is the better of the two.
    let warm = fantope_minimax(
        &losses,
        k,
        Some(&p0),
        options.fantope_iterations / 3,
        Some(options.fantope_mu * 10.0 * scale),
        options.fantope_method,
    )?;
    let mut fantope = fantope_minimax(
        &losses,
        k,
        Some(&warm.projector),
        options.fantope_iterations - options.fantope_iterations / 3,
        Some(options.fantope_mu * scale),
        options.fantope_method,
    )?;
    if warm.lower_bound > fantope.lower_bound {
        fantope.lower_bound = warm.lower_bound;
        fantope.weights = warm.weights;
        fantope.gap = fantope.max_loss - fantope.lower_bound;
    }
    fantope.iterations += warm.iterations;
    timings.fantope = t.elapsed().as_secs_f64();

    // A second rank-k run from the rounded Fantope solution; keep the better.
    let t = Instant::now();
    let rounding = top_eigenvectors(&fantope.projector, k);
    let from_rounding = grassmann_minimax(&losses, k, rounding, &grassmann_options)
        .map_err(|e| Error::Solver(format!("grassmann minimax: {e}")))?;
    timings.grassmann += t.elapsed().as_secs_f64();
    let rounding_worst = worst(&residuals(
        &top_eigenvectors(&fantope.projector, k),
        &scenario.upstream,
    ));
    let rank_k_candidates = vec![
        Candidate {
            name: "average".into(),
            worst_residual: worst(&residuals(&average, &scenario.upstream)),
        },
        Candidate {
            name: "grassmann-from-average".into(),
            worst_residual: worst(&residuals(&from_average.basis, &scenario.upstream)),
        },
        Candidate {
            name: "fantope-rounding".into(),
            worst_residual: rounding_worst,
        },
        Candidate {
            name: "grassmann-from-rounding".into(),
            worst_residual: worst(&residuals(&from_rounding.basis, &scenario.upstream)),
        },
    ];
    let (minimax, start) = if from_rounding.max_loss < from_average.max_loss {
        (from_rounding, "fantope-rounding")
    } else {
        (from_average, "average")
    };

    // Certified bound on the *true* worst residual: the Ky Fan dual of the
    // population residuals at any weights is valid, whichever losses chose them.
    let certificate = [&fantope.weights, &minimax.weights]
        .iter()
        .map(|w| certified_residual_bound(&scenario.upstream, w, k))
        .fold(None::<ResidualBound>, |best, b| match best {
            Some(best) if best.value >= b.value => Some(best),
            _ => Some(b),
        })
        .expect("two candidates");
    let fantope_lower_bound = certificate.value;
    let minimax_upstream = worst(&residuals(&minimax.basis, &scenario.upstream));
    let fantope_primal = worst(&population.losses_at_matrix(&fantope.projector)) * square;

    let t = Instant::now();
    let cells = if options.simulate {
        let learners = [
            Learner {
                name: "none",
                basis: None,
            },
            Learner {
                name: "average",
                basis: Some(&average),
            },
            Learner {
                name: "minimax",
                basis: Some(&minimax.basis),
            },
        ];
        simulate_all(
            &learners,
            &scenario.downstream,
            sigma,
            &scenario.n_grid,
            scenario.replicates,
            scenario.seed,
        )
    } else {
        Vec::new()
    };
    timings.simulation = t.elapsed().as_secs_f64();

    let methods = Methods {
        none: method_report(scenario, None, "none", &cells),
        average: method_report(scenario, Some(&average), "average", &cells),
        minimax: method_report(scenario, Some(&minimax.basis), "minimax", &cells),
    };
    timings.total = started.elapsed().as_secs_f64();
    Ok(TransferReport {
        scenario: ScenarioSummary {
            name: scenario.name.clone(),
            d: scenario.d,
            k,
            sigma,
            epsilon: scenario.epsilon,
            n_up: scenario.n_up,
            upstream_tasks: scenario.upstream.len(),
            downstream_tasks: scenario.downstream.len(),
            downstream_labels: scenario.downstream_labels.clone(),
            n_grid: scenario.n_grid.clone(),
            replicates: scenario.replicates,
            seed: scenario.seed,
        },
        fantope_lower_bound,
        certificate: MinimaxCertificate {
            fantope_lower_bound,
            kind: if certificate.note.is_empty() {
                "ky-fan".into()
            } else {
                "zero".into()
            },
            error_bound: certificate
                .error_bound
                .is_finite()
                .then_some(certificate.error_bound),
            note: certificate.note,
            rank_k_worst_residual: minimax_upstream,
            distance: minimax_upstream - fantope_lower_bound,
            relative_distance: (minimax_upstream - fantope_lower_bound)
                / minimax_upstream.abs().max(1e-300),
            fantope_primal_worst_residual: fantope_primal,
            fantope_solver_gap: fantope.gap * square,
            fantope_method: options.fantope_method.name().to_string(),
            fantope_iterations: fantope.iterations,
            grassmann_iterations: minimax.iterations,
            grassmann_start: start.to_string(),
            rank_k_candidates,
        },
        weights: UpstreamWeights {
            fantope: fantope.weights,
            grassmann: minimax.weights,
            labels: scenario.upstream_labels.clone(),
        },
        methods,
        timings,
        cells,
    })
}

/// The contract's JSON object (plus the extra fields above).
pub fn transfer_json(report: &TransferReport) -> serde_json::Value {
    let mut value = serde_json::to_value(report)
        .expect("the report serialises (non-finite numbers become null)");
    if let Some(object) = value.as_object_mut() {
        object.remove("cells");
    }
    value
}

fn opt(n: Option<usize>) -> String {
    n.map_or_else(|| "never".to_string(), |n| n.to_string())
}

/// Fixed point where that shows the value, scientific otherwise.
fn number(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        format!("{v:.5}")
    } else {
        format!("{v:.4e}")
    }
}

/// Human-readable summary table.
pub fn format_table(report: &TransferReport) -> String {
    let s = &report.scenario;
    let mut out = format!(
        "transfer scenario '{}': d = {}, k = {}, sigma = {}, epsilon = {}, {} upstream / {} downstream tasks, n_up = {}, {} replicates, seed {}\n",
        s.name, s.d, s.k, s.sigma, s.epsilon, s.upstream_tasks, s.downstream_tasks,
        s.n_up.map_or("population".into(), |n| n.to_string()), s.replicates, s.seed
    );
    out.push_str(&format!(
        "Fantope lower bound on any rank-k worst residual: {} (rank-k minimax {}, {:.2}% above; start: {}){}\n\n",
        number(report.fantope_lower_bound), number(report.certificate.rank_k_worst_residual),
        100.0 * report.certificate.relative_distance, report.certificate.grassmann_start,
        if report.certificate.note.is_empty() { String::new() } else { format!("\n  (no Ky Fan bound: {})", report.certificate.note) }
    ));
    out.push_str(&format!(
        "{:<8} {:>12} {:>12} {:>10} {:>10}\n",
        "method", "worst bias", "up. worst", "n* pred", "n* meas"
    ));
    for (name, m) in [
        ("none", &report.methods.none),
        ("average", &report.methods.average),
        ("minimax", &report.methods.minimax),
    ] {
        out.push_str(&format!(
            "{:<8} {:>12} {:>12} {:>10} {:>10}\n",
            name,
            number(m.worst_bias),
            m.upstream_worst_bias.map_or("-".into(), number),
            opt(m.n_star_predicted),
            opt(m.n_star_empirical)
        ));
    }
    out.push_str("\nworst-task excess risk (measured +- se / exact):\n");
    out.push_str(&format!("{:>6}", "n"));
    for name in ["none", "average", "minimax"] {
        out.push_str(&format!(" {:>26}", name));
    }
    out.push('\n');
    for &n in &s.n_grid {
        out.push_str(&format!("{n:>6}"));
        for m in [
            &report.methods.none,
            &report.methods.average,
            &report.methods.minimax,
        ] {
            match m.curve.iter().find(|p| p.n == n) {
                Some(p) => out.push_str(&format!(
                    " {:>9} +- {:<6} / {:<6}",
                    number(p.worst_mean),
                    number(p.worst_se),
                    number(p.predicted)
                )),
                None => out.push_str(&format!(" {:>26}", "-")),
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\n(timings: {:.2} s total, simulation {:.2} s)\n",
        report.timings.total, report.timings.simulation
    ));
    out
}

/// `no_representation_risk` re-exported for callers drawing the `none` line.
pub fn none_prediction(sigma: f64, d: usize, n: usize) -> Option<f64> {
    no_representation_risk(sigma, d, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::scenario::ScenarioFile;

    fn small(n_up: Option<usize>) -> Scenario {
        // Three tasks along e1, e2, e3 in d = 6, k = 2: average keeps two of
        // them; minimax finds the tied plane (residual 1/3 each).
        let e = |i: usize| {
            (0..6)
                .map(|j| if i == j { 1.0 } else { 0.0 })
                .collect::<Vec<f64>>()
        };
        ScenarioFile {
            name: Some("small".into()),
            description: None,
            d: 6,
            k: 2,
            sigma: 0.5,
            epsilon: 0.6,
            upstream: vec![e(0), e(0), e(1), e(2)],
            downstream: Some(vec![e(0), e(1), e(2)]),
            upstream_labels: None,
            downstream_labels: None,
            n_up,
            n_grid: vec![8, 12, 20],
            replicates: 50,
            seed: 3,
        }
        .check()
        .unwrap()
    }

    #[test]
    fn report_has_the_contract_fields() {
        let r = run_transfer(&small(None), &TransferOptions::default()).unwrap();
        let json = transfer_json(&r);
        assert!(json["fantope_lower_bound"].is_number());
        assert!(json.get("cells").is_none());
        for m in ["none", "average", "minimax"] {
            let method = &json["methods"][m];
            for key in [
                "basis",
                "bias",
                "worst_bias",
                "n_star_predicted",
                "n_star_empirical",
                "curve",
            ] {
                assert!(method.get(key).is_some(), "methods.{m}.{key} missing");
            }
            for point in method["curve"].as_array().unwrap() {
                for key in ["n", "worst_mean", "worst_se", "predicted"] {
                    assert!(point[key].is_number(), "methods.{m}.curve[].{key}");
                }
            }
        }
        assert!(json["methods"]["none"]["basis"].is_null());
        let basis = json["methods"]["minimax"]["basis"].as_array().unwrap();
        assert_eq!((basis.len(), basis[0].as_array().unwrap().len()), (6, 2));
        // Minimax: the tied plane, residual 1/3 for each task; average leaves one task out.
        assert!(
            (r.methods.minimax.worst_bias - 1.0 / 3.0).abs() < 1e-3,
            "{}",
            r.methods.minimax.worst_bias
        );
        assert!((r.methods.average.worst_bias - 1.0).abs() < 1e-9);
        assert!(r.fantope_lower_bound <= r.methods.minimax.worst_bias + 1e-12);
        assert!(r.fantope_lower_bound > 1.0 / 3.0 - 1e-3);
        // With epsilon = 0.6: minimax reaches it, average never does.
        assert!(r.methods.minimax.n_star_predicted.is_some());
        assert_eq!(r.methods.average.n_star_predicted, None);
        assert!(format_table(&r).contains("minimax"));
        // The report survives a JSON round trip (the experiment framework's rows).
        let back: TransferReport =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back.cells, r.cells);
    }

    #[test]
    fn finite_sample_mode_runs_and_bounds_the_true_residuals() {
        let r = run_transfer(&small(Some(400)), &TransferOptions::default()).unwrap();
        // The bound is on the population residuals, whatever losses chose the weights.
        for c in &r.certificate.rank_k_candidates {
            assert!(r.fantope_lower_bound <= c.worst_residual, "{c:?}");
        }
        assert!(
            r.methods.minimax.worst_bias < 0.5,
            "{}",
            r.methods.minimax.worst_bias
        );
    }
}
