//! Checks (a)-(d) of the transfer experiments (docs/THEORY.md, "The transfer
//! checks"). Each returns a
//! [`Check`] for report.json and has a unit test showing it can fail.
//!
//! Uses the crate-wide report entry [`Check`] (theory/checks.rs).

use super::simulate::Cell;
pub use crate::theory::checks::Check;
use serde_json::{json, Value};
use statrs::distribution::{ContinuousCDF, Normal};

/// JSON number, or null where not finite.
fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// n* as JSON: null means "not reachable" (infinite).
fn n_json(n: Option<usize>) -> Value {
    n.map_or(Value::Null, Value::from)
}

/// Two-sided Bonferroni threshold: `|z| <= z*` for all `cells` cells holds with
/// probability >= 1 - level under the null, `z* = Phi^{-1}(1 - level / (2 cells))`.
pub fn bonferroni_threshold(level: f64, cells: usize) -> f64 {
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    normal.inverse_cdf(1.0 - level / (2.0 * cells.max(1) as f64))
}

/// Cells closer to the pole `n = p + 1` than this are left out of check (a).
///
/// Near the pole the excess risk is heavy-tailed: `g^T W^{-1} g` has tail
/// index `(n - p + 1) / 2`, so at `n = p + 6` only three moments exist, and a
/// measured 20 000-cell study (200 replicates each; docs/THEORY.md#transfer-model)
/// gave `P(|z| > 5.1) ~ 3e-4` per cell for the studentised mean, a thousand
/// times the normal value the Bonferroni threshold assumes. From `n = p + 10`
/// on (tail index 5.5) none of 20 000 cells exceeded it.
pub const POLE_OFFSET: usize = 10;

/// (a) The exact excess-risk formula against the Monte Carlo, jointly over
/// every cell with `n >= features + offset` (`offset >= 6`; see
/// [`POLE_OFFSET`]): `z = (mean - predicted) / (sd / sqrt(R))` with the
/// model's exact standard deviation (the studentised version is reported
/// too), Bonferroni at `level` on the largest |z|. Needs at least
/// `min_replicates` replicates in every tested cell. Cells that share a random
/// stream (average and minimax, common random numbers) count once each; the
/// bound stays valid (Bonferroni needs no independence).
pub fn formula_matches_simulation(
    cells: &[Cell],
    level: f64,
    min_replicates: usize,
    offset: usize,
) -> Check {
    let name = "transfer: excess-risk formula vs Monte Carlo (joint, Bonferroni)";
    let tested: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.n >= c.features + offset.max(6))
        .collect();
    if tested.is_empty() {
        return Check::new(
            name,
            false,
            Value::Null,
            Value::Null,
            format!("not evaluated: no cell with n >= features + {offset}"),
        );
    }
    if let Some(reason) = non_finite_cells(&tested) {
        return Check::new(
            name,
            false,
            json!({"cells": tested.len()}),
            json!({"level": level}),
            format!("FAILS: {reason}"),
        );
    }
    let fewest = tested.iter().map(|c| c.replicates).min().unwrap_or(0);
    let threshold = bonferroni_threshold(level, tested.len());
    let standardised = |c: &Cell, scale: f64| {
        let se = scale / (c.replicates as f64).sqrt();
        if se > 0.0 && se.is_finite() {
            (c.mean - c.predicted) / se
        } else if c.mean == c.predicted {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let mut worst: Option<(&Cell, f64)> = None;
    let mut largest_studentised: f64 = 0.0;
    let mut largest_relative: f64 = 0.0;
    for c in &tested {
        let z = standardised(c, c.predicted_sd.unwrap_or(f64::INFINITY));
        if !z.is_finite() || worst.is_none_or(|(_, w)| z.abs() > w.abs()) {
            worst = Some((c, z));
        }
        largest_studentised =
            largest_studentised.max(standardised(c, c.se * (c.replicates as f64).sqrt()).abs());
        largest_relative = largest_relative.max(((c.mean - c.predicted) / c.predicted).abs());
    }
    let (cell, z) = worst.expect("at least one cell");
    let passed = fewest >= min_replicates && z.abs() <= threshold;
    Check::new(
        name,
        passed,
        json!({"max_abs_z": num(z.abs()), "max_abs_studentised_z": num(largest_studentised),
               "largest_relative_deviation": num(largest_relative),
               "slack": num(threshold / z.abs()),
               "cells": tested.len(), "fewest_replicates": fewest}),
        json!({"z_threshold": num(threshold), "level": level, "min_replicates": min_replicates,
               "min_n_minus_features": offset.max(6)}),
        format!(
            "{} cells (n >= features + {}, {} replicates or more): largest |z| = {:.2} at {} task {} n {} \
             (mean {:.4} vs exact {:.4}; studentised max {:.2}); Bonferroni threshold at level {level} is {:.2} \
             (slack threshold/|z| = {:.2}); largest relative deviation {:.1}%{}",
            tested.len(), offset.max(6), fewest, z.abs(), cell.method, cell.task, cell.n, cell.mean, cell.predicted,
            largest_studentised, threshold, threshold / z.abs(), 100.0 * largest_relative,
            if fewest < min_replicates { format!("; FAILS: fewer than {min_replicates} replicates") } else { String::new() }
        ),
    )
}

/// Why a set of cells cannot be tested: a mean, standard error, prediction
/// or exact sd that is NaN or infinite (a failed check says so; it is never
/// a skipped point).
fn non_finite_cells(cells: &[&Cell]) -> Option<String> {
    let bad: Vec<&&Cell> = cells
        .iter()
        .filter(|c| {
            !(c.mean.is_finite()
                && c.se.is_finite()
                && c.predicted.is_finite()
                && c.predicted_sd.is_some_and(|sd| sd.is_finite() && sd > 0.0))
        })
        .collect();
    let first = bad.first()?;
    Some(format!(
        "{} of {} cells have a non-finite or missing value (first: {} task {} n {}: mean {}, se {}, exact mean {}, exact sd {:?})",
        bad.len(), cells.len(), first.method, first.task, first.n, first.mean, first.se, first.predicted, first.predicted_sd
    ))
}

/// The pooled statistics of [`formula_matches_simulation_pooled`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooled {
    /// Stouffer's z over stream groups: `sum_i z_i / sqrt(sum_G |G|^2)`.
    pub stouffer: f64,
    /// Estimated common relative error of the formula, `mean = (1 + delta) predicted`.
    pub relative_error: f64,
    /// Half-width of its interval at the check's level.
    pub relative_half_width: f64,
    pub cells: usize,
    pub groups: usize,
}

/// Stream group of a cell: cells with the same (representation or not,
/// task, n) share their random numbers (average and minimax use common
/// random numbers, and the two built-in scenarios run at the same seed), so
/// they are correlated; different groups are independent.
fn stream_group(cell: &Cell) -> (bool, usize, usize) {
    (cell.method == "none", cell.task, cell.n)
}

/// Pooled statistics over `cells` (all with finite values and exact sd):
/// `z_i = (mean_i - predicted_i) / (sd_i / sqrt(R_i))` has mean 0 and
/// variance exactly 1 under the null. Within a group the correlation is
/// unknown (up to 1), so by Cauchy-Schwarz `Var(sum_{i in G} z_i) <= |G|^2`,
/// and with independent groups `Var(sum_i z_i) <= sum_G |G|^2`: the pooled
/// statistic has variance at most 1, whatever the correlations.
pub fn pooled_statistics(cells: &[&Cell]) -> Pooled {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(bool, usize, usize), (usize, f64)> = BTreeMap::new();
    let (mut sum_z, mut sum_az, mut sum_a2) = (0.0, 0.0, 0.0);
    for c in cells {
        let sigma = c.predicted_sd.unwrap_or(f64::NAN) / (c.replicates as f64).sqrt();
        let z = (c.mean - c.predicted) / sigma;
        let a = c.predicted / sigma;
        sum_z += z;
        sum_az += a * z;
        sum_a2 += a * a;
        let entry = groups.entry(stream_group(c)).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += a;
    }
    let size_norm: f64 = groups.values().map(|(n, _)| (n * n) as f64).sum();
    let weight_norm: f64 = groups.values().map(|(_, a)| a * a).sum();
    Pooled {
        stouffer: sum_z / size_norm.sqrt(),
        relative_error: sum_az / sum_a2,
        relative_half_width: weight_norm.sqrt() / sum_a2,
        cells: cells.len(),
        groups: groups.len(),
    }
}

/// Chebyshev's threshold: `P(|S| >= t) <= 1 / t^2` for any S with mean 0
/// and variance at most 1, so `t = 1 / sqrt(level)`. Distribution-free: it
/// needs neither normality of the heavy-tailed cell means near the pole nor
/// independence within a stream group.
pub fn chebyshev_threshold(level: f64) -> f64 {
    1.0 / level.sqrt()
}

/// (a') The excess-risk formula against the Monte Carlo, pooled over every
/// cell with `n >= features + offset`: Stouffer's z over stream groups
/// ([`pooled_statistics`]) must stay within Chebyshev's threshold at
/// `level`. A formula that is wrong by a few percent in the same direction in
/// many cells (such as `k / (n - k)` for `k / (n - k - 1)`), invisible cell by
/// cell, moves every z the same way and the pooled z by sqrt(cells) times as
/// much. The same data give the formula's common relative error with an
/// interval (`delta_hat +- t * sqrt(sum_G (sum_{i in G} a_i)^2) / sum_i a_i^2`,
/// `a_i = predicted_i / se_i`), which must be resolved to within
/// `max_relative_half_width` (else the check has too little power and fails).
pub fn formula_matches_simulation_pooled(
    cells: &[Cell],
    level: f64,
    offset: usize,
    max_relative_half_width: f64,
) -> Check {
    let name = "transfer: excess-risk formula vs Monte Carlo (pooled Stouffer z, Chebyshev)";
    let tested: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.n >= c.features + offset.max(6))
        .collect();
    let threshold = chebyshev_threshold(level);
    let theory = json!({"z_threshold": num(threshold), "level": level,
                        "max_relative_half_width": max_relative_half_width,
                        "min_n_minus_features": offset.max(6)});
    if tested.is_empty() {
        return Check::new(
            name,
            false,
            Value::Null,
            theory,
            format!("FAILS: no cell with n >= features + {offset} to test"),
        );
    }
    if let Some(reason) = non_finite_cells(&tested) {
        return Check::new(
            name,
            false,
            json!({"cells": tested.len()}),
            theory,
            format!("FAILS: {reason}"),
        );
    }
    let pooled = pooled_statistics(&tested);
    let half_width = threshold * pooled.relative_half_width;
    let consistent = pooled.stouffer.abs() <= threshold;
    let resolved = half_width <= max_relative_half_width;
    let passed = consistent && resolved && pooled.stouffer.is_finite();
    Check::new(
        name,
        passed,
        json!({"stouffer_z": num(pooled.stouffer), "slack": num(threshold / pooled.stouffer.abs()),
               "relative_error": num(pooled.relative_error), "relative_half_width": num(half_width),
               "cells": pooled.cells, "stream_groups": pooled.groups}),
        theory,
        format!(
            "{} cells in {} stream groups: pooled z = {:.2} against the Chebyshev threshold {:.2} at level {level} \
             (slack {:.2}){}; common relative error of the formula {:+.3}% +- {:.3}% (must resolve {:.1}%{})",
            pooled.cells, pooled.groups, pooled.stouffer, threshold, threshold / pooled.stouffer.abs(),
            if consistent { "" } else { ": FAILS, the simulation disagrees with the formula" },
            100.0 * pooled.relative_error, 100.0 * half_width, 100.0 * max_relative_half_width,
            if resolved { "" } else { ": FAILS, too little power" }
        ),
    )
}

/// `a <= factor * b` with None = infinity.
fn at_most(a: Option<usize>, factor: f64, b: Option<usize>) -> bool {
    match (a, b) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(a), Some(b)) => a as f64 <= factor * b as f64,
    }
}

/// Worst-task n* of each method, predicted and empirical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NStars {
    pub average_predicted: Option<usize>,
    pub minimax_predicted: Option<usize>,
    pub average_empirical: Option<usize>,
    pub minimax_empirical: Option<usize>,
    pub none_predicted: Option<usize>,
    pub none_empirical: Option<usize>,
}

impl NStars {
    fn measured(&self) -> Value {
        json!({
            "average": {"predicted": n_json(self.average_predicted), "empirical": n_json(self.average_empirical)},
            "minimax": {"predicted": n_json(self.minimax_predicted), "empirical": n_json(self.minimax_empirical)},
            "none": {"predicted": n_json(self.none_predicted), "empirical": n_json(self.none_empirical)},
        })
    }
}

fn show(n: Option<usize>) -> String {
    n.map_or("inf".into(), |n| n.to_string())
}

/// (b) Minimax's worst-task n* is at most `ratio` times average's, predicted
/// and empirical (null n* = unreachable = infinite; minimax unreachable fails).
pub fn minimax_reduces_worst_n_star(scenario: &str, n: &NStars, ratio: f64) -> Check {
    let predicted = at_most(n.minimax_predicted, ratio, n.average_predicted);
    let empirical = at_most(n.minimax_empirical, ratio, n.average_empirical);
    // Slack: allowed (ratio x average) over measured (minimax); +inf where
    // average never reaches epsilon and minimax does.
    let slack = |mm: Option<usize>, avg: Option<usize>| match (mm, avg) {
        (Some(mm), Some(avg)) => ratio * avg as f64 / mm as f64,
        (Some(_), None) => f64::INFINITY,
        _ => 0.0,
    };
    let (slack_predicted, slack_empirical) = (
        slack(n.minimax_predicted, n.average_predicted),
        slack(n.minimax_empirical, n.average_empirical),
    );
    let mut measured = n.measured();
    measured["slack"] =
        json!({"predicted": num(slack_predicted), "empirical": num(slack_empirical)});
    Check::new(
        format!("transfer: minimax worst-task n* <= {ratio} x average ({scenario})"),
        predicted && empirical,
        measured,
        json!({"ratio": ratio}),
        format!(
            "{scenario}: worst-task n* predicted minimax {} vs average {}, empirical {} vs {} (grid resolution); \
             slack (ratio x average / minimax) {:.2} predicted, {:.2} empirical; \
             without a representation a user needs {} (empirical {})",
            show(n.minimax_predicted), show(n.average_predicted), show(n.minimax_empirical),
            show(n.average_empirical), slack_predicted, slack_empirical, show(n.none_predicted), show(n.none_empirical)
        ),
    )
}

/// `|a - b| <= tolerance * max(a, b)`; both unreachable counts as equal.
fn close(a: Option<usize>, b: Option<usize>, tolerance: f64) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a as f64 - b as f64).abs() <= tolerance * a.max(b) as f64,
        _ => false,
    }
}

/// (c) In the balanced control, average and minimax worst-task n* agree
/// within `tolerance` (relative), predicted and empirical.
pub fn methods_coincide(scenario: &str, n: &NStars, tolerance: f64) -> Check {
    let passed = close(n.average_predicted, n.minimax_predicted, tolerance)
        && close(n.average_empirical, n.minimax_empirical, tolerance);
    // Slack: tolerance over the relative difference (+inf when equal).
    let slack = |a: Option<usize>, b: Option<usize>| match (a, b) {
        (Some(a), Some(b)) => tolerance * a.max(b) as f64 / (a as f64 - b as f64).abs(),
        (None, None) => f64::INFINITY,
        _ => 0.0,
    };
    let worst_slack = slack(n.average_predicted, n.minimax_predicted)
        .min(slack(n.average_empirical, n.minimax_empirical));
    let mut measured = n.measured();
    measured["slack"] = num(worst_slack);
    Check::new(
        format!(
            "transfer: average and minimax coincide within {}% ({scenario})",
            100.0 * tolerance
        ),
        passed,
        measured,
        json!({"relative_tolerance": tolerance}),
        format!(
            "{scenario}: worst-task n* predicted average {} vs minimax {}, empirical {} vs {}; slack (tolerance / relative difference) {}",
            show(n.average_predicted),
            show(n.minimax_predicted),
            show(n.average_empirical),
            show(n.minimax_empirical),
            if worst_slack.is_finite() { format!("{worst_slack:.2}") } else { "unbounded (equal)".into() }
        ),
    )
}

/// (d) The Fantope lower bound is below the worst upstream residual of every
/// rank-k representation found, and the rank-k minimax residual is within
/// `relative_tolerance` of it. `fantope_primal` (the worst residual of the
/// Fantope solution, >= the relaxation's optimum) splits the distance into the
/// relaxation gap (rank-k minimum vs Fantope minimum, not certifiable) and the
/// convex solver's gap.
pub fn fantope_bound_certifies(
    scenario: &str,
    lower_bound: f64,
    representations: &[(&str, f64)],
    minimax_worst: f64,
    fantope_primal: f64,
    relative_tolerance: f64,
) -> Check {
    let violations: Vec<String> = representations
        .iter()
        .filter(|(_, worst)| lower_bound.is_nan() || worst.is_nan() || lower_bound > *worst)
        .map(|(name, worst)| format!("{name} ({worst:.6})"))
        .collect();
    let name =
        format!("transfer: Fantope lower bound certifies the rank-k representations ({scenario})");
    let finite = lower_bound.is_finite()
        && minimax_worst.is_finite()
        && representations.iter().all(|(_, w)| w.is_finite());
    if !finite {
        return Check::new(
            name,
            false,
            json!({"lower_bound": num(lower_bound), "minimax_worst_residual": num(minimax_worst)}),
            json!({"relative_tolerance": relative_tolerance}),
            format!(
                "FAILS: {scenario}: a non-finite value (bound {lower_bound}, rank-k minimax {minimax_worst}, \
                 representations {representations:?}) cannot certify anything"
            ),
        );
    }
    let distance = minimax_worst - lower_bound;
    let allowed = relative_tolerance * minimax_worst.abs().max(1e-12);
    let within = distance <= allowed;
    Check::new(
        name,
        violations.is_empty() && within,
        json!({"lower_bound": num(lower_bound), "minimax_worst_residual": num(minimax_worst),
               "slack": num(allowed / distance),
               "distance": num(distance), "relative_distance": num(distance / minimax_worst.abs().max(1e-300)),
               "fantope_primal_worst_residual": num(fantope_primal),
               "representations": representations.iter().map(|(n, w)| json!({"name": n, "worst_residual": num(*w)})).collect::<Vec<_>>()}),
        json!({"relative_tolerance": relative_tolerance}),
        format!(
            "{scenario}: bound {lower_bound:.6} {} every rank-k worst residual{}; rank-k minimax {minimax_worst:.6} is \
             {distance:.2e} ({:.2}%) above it (tolerance {}%, slack tolerance/distance {:.2}); {}",
            if violations.is_empty() { "is below" } else { "is NOT below" },
            if violations.is_empty() { String::new() } else { format!(" (violated by {})", violations.join(", ")) },
            100.0 * distance / minimax_worst.abs().max(1e-300),
            100.0 * relative_tolerance,
            allowed / distance,
            if fantope_primal < minimax_worst - 1e-8 * minimax_worst.abs().max(1e-12) {
                format!(
                    "the Fantope solution reaches {fantope_primal:.6}, so at least {:.2e} of the distance is the \
                     relaxation gap (rank-k vs Fantope optimum), which no dual bound can close",
                    minimax_worst - fantope_primal
                )
            } else {
                format!(
                    "the Fantope solution ({fantope_primal:.6}) is not below the rank-k one, so no relaxation gap \
                     is visible: the distance is the slack of the convex solve's certificate"
                )
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(mean: f64, se: f64, n: usize) -> Cell {
        Cell {
            method: "m".into(),
            task: 0,
            n,
            features: 4,
            bias: 0.0,
            mean,
            se,
            replicates: 200,
            predicted: 1.0,
            predicted_sd: Some(se * 200f64.sqrt()),
        }
    }

    #[test]
    fn formula_check_fails_on_a_biased_cell() {
        let good: Vec<Cell> = (0..100)
            .map(|i| cell(1.0 + 0.01 * ((i % 7) as f64 - 3.0), 0.01, 14 + i))
            .collect();
        assert!(formula_matches_simulation(&good, 0.001, 200, POLE_OFFSET).passed);
        let mut bad = good.clone();
        bad[50].mean = 1.06; // 6 standard errors
        let check = formula_matches_simulation(&bad, 0.001, 200, POLE_OFFSET);
        assert!(!check.passed, "{}", check.detail);
        // Too few replicates fails too.
        let mut few = good.clone();
        few[3].replicates = 50;
        assert!(!formula_matches_simulation(&few, 0.001, 200, POLE_OFFSET).passed);
        // Cells closer to the pole than the offset are not tested.
        let mut small = good;
        small.push(Cell {
            mean: 9.0,
            ..cell(1.0, 0.01, 12)
        });
        assert!(formula_matches_simulation(&small, 0.001, 200, POLE_OFFSET).passed);
        assert!(!formula_matches_simulation(&small, 0.001, 200, 6).passed);
        assert!((bonferroni_threshold(0.001, 1) - 3.2905).abs() < 1e-3);
    }

    #[test]
    fn pooled_check_fails_on_a_small_common_bias_and_on_non_finite_cells() {
        // 400 cells in 400 groups, each z within +-0.5: no single cell is
        // suspicious, and the pooled z is small.
        let good: Vec<Cell> = (0..400)
            .map(|i| Cell {
                task: i,
                ..cell(1.0 + 0.005 * (((i * 7) % 11) as f64 - 5.0) / 5.0, 0.01, 30)
            })
            .collect();
        let check = formula_matches_simulation_pooled(&good, 0.01, POLE_OFFSET, 0.05);
        assert!(check.passed, "{}", check.detail);
        // Every mean 1% high (one standard error): each |z| = 1, far below
        // any per-cell threshold, but the pooled z is 20.
        let biased: Vec<Cell> = good
            .iter()
            .map(|c| Cell {
                mean: c.mean + 0.01,
                ..c.clone()
            })
            .collect();
        assert!(formula_matches_simulation(&biased, 0.001, 200, POLE_OFFSET).passed);
        let check = formula_matches_simulation_pooled(&biased, 0.01, POLE_OFFSET, 0.05);
        assert!(!check.passed, "{}", check.detail);
        let stouffer = check.measured["stouffer_z"].as_f64().unwrap();
        let unbiased = formula_matches_simulation_pooled(&good, 0.01, POLE_OFFSET, 0.05);
        let before = unbiased.measured["stouffer_z"].as_f64().unwrap();
        assert!(
            (stouffer - before - 20.0).abs() < 1e-9,
            "{stouffer} vs {before}"
        );
        // The common relative error is estimated (1% more than before).
        let delta = check.measured["relative_error"].as_f64().unwrap()
            - unbiased.measured["relative_error"].as_f64().unwrap();
        assert!((delta - 0.01).abs() < 1e-9, "{delta}");
        // Correlated cells (one stream group) count once: the same shift in
        // 400 cells of one group gives z = 400 / 400 = 1 per unit shift.
        let grouped: Vec<Cell> = biased
            .iter()
            .map(|c| Cell {
                task: 0,
                ..c.clone()
            })
            .collect();
        // (It also resolves the relative error only to 10%.)
        let check = formula_matches_simulation_pooled(&grouped, 0.01, POLE_OFFSET, 0.2);
        assert!(check.passed, "{}", check.detail);
        assert!(!formula_matches_simulation_pooled(&grouped, 0.01, POLE_OFFSET, 0.05).passed);
        // Too little power (a huge se) fails.
        let noisy: Vec<Cell> = good[..4].iter().map(|c| cell(c.mean, 1.0, 30)).collect();
        assert!(!formula_matches_simulation_pooled(&noisy, 0.01, POLE_OFFSET, 0.05).passed);
        // Non-finite values fail with the reason, in both checks.
        for bad in [f64::NAN, f64::INFINITY] {
            let mut cells = good.clone();
            cells[7].mean = bad;
            for check in [
                formula_matches_simulation_pooled(&cells, 0.01, POLE_OFFSET, 0.05),
                formula_matches_simulation(&cells, 0.001, 200, POLE_OFFSET),
            ] {
                assert!(!check.passed);
                assert!(check.detail.contains("non-finite"), "{}", check.detail);
            }
        }
        let mut cells = good.clone();
        cells[3].predicted_sd = None;
        assert!(!formula_matches_simulation_pooled(&cells, 0.01, POLE_OFFSET, 0.05).passed);
        assert!(!formula_matches_simulation_pooled(&[], 0.01, POLE_OFFSET, 0.05).passed);
        assert_eq!(chebyshev_threshold(0.01), 10.0);
    }

    fn stars(avg: Option<usize>, mm: Option<usize>) -> NStars {
        NStars {
            average_predicted: avg,
            minimax_predicted: mm,
            average_empirical: avg,
            minimax_empirical: mm,
            none_predicted: Some(114),
            none_empirical: Some(115),
        }
    }

    #[test]
    fn n_star_checks_can_fail() {
        assert!(minimax_reduces_worst_n_star("s", &stars(Some(60), Some(14)), 0.5).passed);
        assert!(minimax_reduces_worst_n_star("s", &stars(None, Some(14)), 0.5).passed);
        assert!(!minimax_reduces_worst_n_star("s", &stars(Some(20), Some(14)), 0.5).passed);
        assert!(!minimax_reduces_worst_n_star("s", &stars(None, None), 0.5).passed);
        let mut mixed = stars(Some(60), Some(14));
        mixed.minimax_empirical = Some(40);
        assert!(!minimax_reduces_worst_n_star("s", &mixed, 0.5).passed);

        assert!(methods_coincide("b", &stars(Some(17), Some(17)), 0.05).passed);
        assert!(methods_coincide("b", &stars(None, None), 0.05).passed);
        assert!(!methods_coincide("b", &stars(Some(17), Some(19)), 0.05).passed);
        assert!(!methods_coincide("b", &stars(Some(17), None), 0.05).passed);
    }

    #[test]
    fn fantope_check_fails_when_the_bound_is_violated_or_loose() {
        let reps = [("average", 0.17), ("minimax", 0.0497)];
        assert!(fantope_bound_certifies("s", 0.0478, &reps, 0.0497, 0.0480, 0.05).passed);
        // A "bound" above a representation's worst residual is no bound.
        assert!(!fantope_bound_certifies("s", 0.06, &reps, 0.0497, 0.0480, 0.05).passed);
        // A loose bound (or a poor rank-k solution) fails the tolerance.
        assert!(!fantope_bound_certifies("s", 0.03, &reps, 0.0497, 0.0480, 0.05).passed);
        // Non-finite values fail and say why.
        for bad in [f64::NAN, f64::NEG_INFINITY] {
            let check = fantope_bound_certifies("s", bad, &reps, 0.0497, 0.0480, 0.05);
            assert!(
                !check.passed && check.detail.contains("non-finite"),
                "{}",
                check.detail
            );
            let check = fantope_bound_certifies("s", 0.0478, &reps, bad, 0.0480, 0.05);
            assert!(
                !check.passed && check.detail.contains("non-finite"),
                "{}",
                check.detail
            );
        }
        let slack = fantope_bound_certifies("s", 0.0478, &reps, 0.0497, 0.0480, 0.05).measured
            ["slack"]
            .as_f64()
            .unwrap();
        assert!((slack - 0.05 * 0.0497 / (0.0497 - 0.0478)).abs() < 1e-9);
    }
}
