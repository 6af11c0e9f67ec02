//! Shared set-up of the synthetic task families the experiments use.

use crate::error::InputError;
use crate::family::generators::{
    least_squares_family, logistic_family, quadratic_family, SyntheticSpec,
};
use crate::family::{GradientForm, TaskFamily};
use crate::io::FamilyKind;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The family knobs every rate experiment shares (a `[family]` TOML table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyParams {
    pub tasks: usize,
    pub dim: usize,
    /// Samples per task (least squares and logistic).
    pub samples: usize,
    pub condition_number: f64,
    pub spread: f64,
    pub outliers: usize,
    pub outlier_distance: f64,
    /// Label / response noise (data families).
    pub noise: f64,
    /// l2 penalty of the logistic family.
    pub l2: f64,
}

/// Builds one of "quadratic", "least_squares", "logistic" for a seed.
pub fn build_family(
    kind: &str,
    p: &FamilyParams,
    tasks: usize,
    seed: u64,
) -> Result<Arc<dyn TaskFamily>, InputError> {
    let spec = SyntheticSpec {
        num_tasks: tasks,
        dim: p.dim,
        smoothness: 1.0,
        condition_number: p.condition_number,
        spread: p.spread,
        outliers: p.outliers.min(tasks.saturating_sub(1)),
        outlier_distance: p.outlier_distance,
        seed,
    };
    let Some(kind) = FamilyKind::from_name(kind) else {
        return Err(InputError::new(
            "families",
            format!("unknown family '{kind}' (quadratic, least_squares, logistic)"),
        ));
    };
    Ok(match kind {
        FamilyKind::Quadratic => Arc::new(quadratic_family(&spec)?),
        FamilyKind::LeastSquares => Arc::new(least_squares_family(
            &spec,
            p.samples,
            p.noise,
            GradientForm::Auto,
        )?),
        FamilyKind::Logistic => Arc::new(logistic_family(&spec, p.samples, p.noise, p.l2)?),
    })
}

/// Horizons 1..=max spaced four per octave (rounded, distinct): where traces are read.
pub fn log_grid(max: u64) -> Vec<u64> {
    let mut grid: Vec<u64> = Vec::new();
    let mut k = 0;
    loop {
        let t = 2f64.powf(k as f64 / 4.0).round() as u64;
        if t >= max {
            break;
        }
        if grid.last() != Some(&t) {
            grid.push(t);
        }
        k += 1;
    }
    grid.push(max);
    grid
}

/// Horizons `min * 2^(k/per_octave)` (rounded, distinct) up to and including
/// `max`: one solver run each where the temperature is tuned per horizon.
pub fn horizon_grid(min: u64, max: u64, per_octave: u32) -> Vec<u64> {
    let mut grid: Vec<u64> = Vec::new();
    let per_octave = f64::from(per_octave.max(1));
    let mut k = 0;
    loop {
        let t = (min.max(1) as f64 * 2f64.powf(k as f64 / per_octave)).round() as u64;
        if t >= max {
            break;
        }
        if grid.last() != Some(&t) {
            grid.push(t);
        }
        k += 1;
    }
    grid.push(max);
    grid
}

/// Median of a slice (NaN for empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The median over replicates at each distinct x (x ascending): the curve a
/// rate is fitted on, so that offsets between seeds do not widen the interval.
pub fn median_curve(points: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>) {
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let ys = xs
        .iter()
        .map(|&x| {
            let at: Vec<f64> = points.iter().filter(|p| p.0 == x).map(|p| p.1).collect();
            median(&at)
        })
        .collect();
    (xs, ys)
}

/// The temperature of `family`: `mu`, or its entry in `mu_by_family` (an
/// experiment's `[mu_by_family]` table), each checked positive by name.
pub fn family_mu(
    experiment: &str,
    mu: f64,
    mu_by_family: &std::collections::BTreeMap<String, f64>,
    family: &str,
) -> Result<f64, crate::InputError> {
    match mu_by_family.get(family) {
        Some(&v) => crate::error::check_positive(&format!("{experiment}.mu_by_family.{family}"), v),
        None => crate::error::check_positive(&format!("{experiment}.mu"), mu),
    }
}

/// `mu` for a caption: "0.2", or "0.2 (logistic 0.05)" with overrides.
pub fn mu_text(mu: f64, mu_by_family: &std::collections::BTreeMap<String, f64>) -> String {
    if mu_by_family.is_empty() {
        return format!("{mu}");
    }
    let overrides: Vec<String> = mu_by_family
        .iter()
        .map(|(f, v)| format!("{f} {v}"))
        .collect();
    format!("{mu} ({})", overrides.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// One spelling of a problem kind: the built-in families report, through
    /// the core's open `TaskFamily::kind()` string, exactly the lab's
    /// `FamilyKind` names (what files, `generate --kind` and `solve` use).
    #[test]
    fn built_in_families_report_their_family_kind_name() {
        let p = FamilyParams {
            tasks: 2,
            dim: 3,
            samples: 8,
            condition_number: 2.0,
            spread: 1.0,
            outliers: 0,
            outlier_distance: 0.0,
            noise: 0.1,
            l2: 0.01,
        };
        for kind in FamilyKind::ALL {
            let family = build_family(kind.as_str(), &p, 2, 1).unwrap();
            assert_eq!(family.kind(), kind.as_str());
            assert_eq!(FamilyKind::from_name(family.kind()), Some(kind));
        }
    }

    #[test]
    fn family_mu_takes_the_override_and_names_the_key_it_rejects() {
        let mut by_family = BTreeMap::new();
        by_family.insert("logistic".to_string(), 0.05);
        assert_eq!(family_mu("f", 0.2, &by_family, "logistic").unwrap(), 0.05);
        assert_eq!(family_mu("f", 0.2, &by_family, "quadratic").unwrap(), 0.2);
        by_family.insert("quadratic".to_string(), -1.0);
        let e = family_mu("f", 0.2, &by_family, "quadratic").unwrap_err();
        assert_eq!(e.field, "f.mu_by_family.quadratic");
        let e = family_mu("f", f64::NAN, &BTreeMap::new(), "logistic").unwrap_err();
        assert_eq!(e.field, "f.mu");
        assert_eq!(mu_text(0.2, &BTreeMap::new()), "0.2");
        by_family.remove("quadratic");
        assert_eq!(mu_text(0.2, &by_family), "0.2 (logistic 0.05)");
    }
}
