//! PEPit-style checks: each returns what was measured, what the theory says,
//! and a verdict.
//!
//! A [`Check`] serialises exactly as an entry of report.json's `checks` array:
//! `{"name", "passed", "measured", "theory", "detail"}`. The helpers below
//! return a nameless [`Verdict`]; `verdict.named("...")` makes it a `Check`.
//! How each verdict is decided is stated in
//! docs/THEORY.md#how-the-checks-measure.

use super::rate_fit::{
    fit_common_power_law, fit_common_power_law_corrected, fit_power_law, LineFit, LinearRateFit,
    PowerLawFit, Series, Window,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One entry of report.json's `checks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// What was measured (a number, or an object such as a fitted slope and its interval).
    pub measured: Value,
    /// What the theory says (the bound or the theoretical slope).
    pub theory: Value,
    /// One human-readable sentence: where, how, and by what margin.
    pub detail: String,
    /// Bound checks: `bound / measured` at the largest recorded x (how
    /// informative the bound is; 1 is tight). Absent for other checks; null
    /// where the ratio is not finite (a zero measurement).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "null_as_nan"
    )]
    pub slack: Option<f64>,
}

/// A slack read back from JSON: serde_json writes a non-finite float as null
/// (JSON has no such numbers), which reads back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::Deserialize;
    Ok(Some(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN)))
}

impl Check {
    pub fn new(
        name: impl Into<String>,
        passed: bool,
        measured: impl Into<Value>,
        theory: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            passed,
            measured: measured.into(),
            theory: theory.into(),
            detail: detail.into(),
            slack: None,
        }
    }
}

/// A check's outcome before it is given a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    pub measured: Value,
    pub theory: Value,
    pub detail: String,
    /// See [`Check::slack`].
    pub slack: Option<f64>,
}

impl Verdict {
    pub fn named(self, name: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: self.passed,
            measured: self.measured,
            theory: self.theory,
            detail: self.detail,
            slack: self.slack,
        }
    }

    /// A verdict that failed because it could not be evaluated (never a pass).
    pub fn not_evaluated(reason: impl Into<String>) -> Self {
        Self {
            passed: false,
            measured: Value::Null,
            theory: Value::Null,
            detail: format!("not evaluated: {}", reason.into()),
            slack: None,
        }
    }
}

/// Finite JSON number, or null (JSON has no NaN or infinity).
fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Three significant digits, plain or in e-notation for very large or small values.
pub fn sig(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-3..1e4).contains(&v.abs()) {
        format!("{v:.2e}")
    } else if v.is_finite() && v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// `measured / bound`, the margin of one comparison (`+inf` when a
/// non-positive bound is exceeded).
fn ratio(measured: f64, bound: f64) -> f64 {
    if bound > 0.0 {
        measured / bound
    } else if measured <= bound {
        0.0
    } else {
        f64::INFINITY
    }
}

/// `measured <= bound`, false for NaN.
fn within(measured: f64, bound: f64) -> bool {
    measured <= bound
}

/// Index and value of the largest `measured[i] / bound[i]`; NaN anywhere wins.
pub fn worst_ratio(measured: &[f64], bound: &[f64]) -> Option<(usize, f64)> {
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&m, &b)) in measured.iter().zip(bound).enumerate() {
        let r = if m.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            ratio(m, b)
        };
        match worst {
            Some((_, w)) if w.is_nan() || (!r.is_nan() && r <= w) => {}
            _ => worst = Some((i, r)),
        }
    }
    worst
}

/// `bound / measured` at the largest x (the median over the points there, for
/// example over seeds): how informative a bound is (1 = tight). `None` when
/// no point has a positive measurement and a finite positive bound there.
pub fn slack_at_largest(x: &[f64], measured: &[f64], bound: &[f64]) -> Option<f64> {
    let largest = x
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    let mut ratios: Vec<f64> = x
        .iter()
        .zip(measured.iter().zip(bound))
        .filter(|(&xi, _)| xi == largest)
        .map(|(_, (&m, &b))| b / m)
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    Some(if n % 2 == 1 {
        ratios[n / 2]
    } else {
        0.5 * (ratios[n / 2 - 1] + ratios[n / 2])
    })
}

/// How far below zero a measured gap may be before it counts as negative,
/// relative to `max(1, |bound|)`: the rounding of the two computed values
/// whose difference it is (about 1e-16 relative each), with a wide margin.
/// An invalid certificate gives negatives many orders larger.
pub const NEGATIVE_ROUNDING_ALLOWANCE: f64 = 1e-12;

/// The measured value is <= the bound at every recorded point `x` (for
/// example every recorded T), with no slack, where the measured value is a
/// certified gap or suboptimality (so it cannot be negative).
///
/// Fails, saying why, on empty input or a length mismatch; on any bound that
/// is not finite (a comparison with `+inf` cannot fail, so it is never a
/// pass); on any measured value that is NaN or infinite; on any negative
/// measured value (a negative certified gap means the lower bound exceeds a
/// feasible value: the certificate or the reference is invalid); and on any
/// point above its bound. `measured` reports the measured value at the worst
/// point (largest ratio `measured/bound`), `theory` the bound there, `slack`
/// the bound/measured at the largest x ([`slack_at_largest`]); `detail` says
/// where, the worst ratio, the slack and how many points violate the bound.
pub fn bound_holds(x: &[f64], measured: &[f64], bound: &[f64]) -> Verdict {
    compare(x, measured, bound, true)
}

/// [`bound_holds`] for a signed comparison `measured <= bound` (for example a
/// loss against another method's loss plus a gap), where a negative measured
/// value is legitimate. Non-finite values still fail.
pub fn at_most(x: &[f64], measured: &[f64], bound: &[f64]) -> Verdict {
    compare(x, measured, bound, false)
}

fn compare(x: &[f64], measured: &[f64], bound: &[f64], nonnegative: bool) -> Verdict {
    if measured.is_empty() || measured.len() != bound.len() || x.len() != measured.len() {
        return Verdict::not_evaluated(format!(
            "need equal, non-empty lengths (x {}, measured {}, bound {})",
            x.len(),
            measured.len(),
            bound.len()
        ));
    }
    let slack = slack_at_largest(x, measured, bound);
    let failed = |what: String, i: usize| Verdict {
        passed: false,
        measured: num(measured[i]),
        theory: num(bound[i]),
        detail: what,
        slack,
    };
    let count = |bad: &dyn Fn(f64, f64) -> bool| {
        let idx: Vec<usize> = (0..measured.len())
            .filter(|&i| bad(measured[i], bound[i]))
            .collect();
        idx
    };
    let non_finite_bound = count(&|_, b| !b.is_finite());
    if let Some(&i) = non_finite_bound.first() {
        return failed(
            format!(
                "bound is {} at {} of {} points (first at x = {}): a comparison with a non-finite bound cannot fail, so it does not pass",
                bound[i],
                non_finite_bound.len(),
                measured.len(),
                x[i]
            ),
            i,
        );
    }
    let non_finite = count(&|m, _| !m.is_finite());
    if let Some(&i) = non_finite.first() {
        return failed(
            format!(
                "measured value is {} at {} of {} points (first at x = {}): the run diverged or could not be evaluated",
                measured[i],
                non_finite.len(),
                measured.len(),
                x[i]
            ),
            i,
        );
    }
    if nonnegative {
        // A difference of two computed values can be below zero by their
        // rounding (about 1e-16 relative) without anything being wrong.
        let allowance =
            NEGATIVE_ROUNDING_ALLOWANCE * bound.iter().fold(1.0f64, |a, b| a.max(b.abs()));
        let negative = count(&|m, _| m < -allowance);
        if let Some(&i) = negative
            .iter()
            .min_by(|&&a, &&b| measured[a].total_cmp(&measured[b]))
        {
            return failed(
                format!(
                    "certified gap or suboptimality is negative at {} of {} points (most negative {:.4e} at x = {}): a lower bound exceeds a feasible value, so a certificate, a reference or a feasibility claim is wrong",
                    negative.len(),
                    measured.len(),
                    measured[i],
                    x[i]
                ),
                i,
            );
        }
    }
    let violations = count(&|m, b| !within(m, b)).len();
    let Some((i, r)) = worst_ratio(measured, bound) else {
        return Verdict::not_evaluated("no points");
    };
    let passed = violations == 0;
    let smallest_slack = measured
        .iter()
        .zip(bound)
        .map(|(&m, &b)| b / m)
        .filter(|r| r.is_finite() && *r > 0.0)
        .fold(f64::INFINITY, f64::min);
    let slack_text = match slack {
        Some(s) => format!(
            "; slack bound/measured {} at the largest x, smallest {}",
            sig(s),
            sig(smallest_slack)
        ),
        None => "; slack not defined (no positive measurement at the largest x)".to_string(),
    };
    let detail = format!(
        "{} at {} of {} recorded points; worst measured/bound = {:.4} at x = {} ({:.4e} vs {:.4e}){}",
        if passed { "measured <= bound" } else { "measured > bound" },
        if passed { measured.len() } else { violations },
        measured.len(),
        r,
        x[i],
        measured[i],
        bound[i],
        slack_text
    );
    Verdict {
        passed,
        measured: num(measured[i]),
        theory: num(bound[i]),
        detail,
        slack,
    }
}

fn slope_value(line: &LineFit, x_min: f64, x_max: f64) -> Value {
    json!({
        "slope": num(line.slope),
        "ci95": [num(line.slope_lo), num(line.slope_hi)],
        "window": [num(x_min), num(x_max)],
        "points": line.n,
    })
}

/// The shared test: the theory says `slope <= limit`; pass when the 95%
/// interval reaches `limit` or below (`slope_lo <= limit`), i.e. when the data
/// do not establish a larger slope.
fn slope_at_most(line: &LineFit, limit: f64, what: &str) -> (bool, String) {
    let passed = line.slope_lo <= limit;
    let detail = format!(
        "{what}: fitted slope {:.4} (95% CI [{:.4}, {:.4}], {} points) {} theory {:.4}",
        line.slope,
        line.slope_lo,
        line.slope_hi,
        line.n,
        if passed {
            "is not shown to exceed"
        } else {
            "exceeds (whole CI above)"
        },
        limit
    );
    (passed, detail)
}

/// The fitted rate is no shallower than the theory's, within its confidence
/// interval: passes iff `slope_lo <= theory_slope` (for example -1/2, -1, -2).
pub fn slope_no_shallower(fit: &PowerLawFit, theory_slope: f64) -> Verdict {
    let (passed, detail) = slope_at_most(&fit.line, theory_slope, "log-log rate");
    Verdict {
        passed,
        measured: slope_value(&fit.line, fit.x_min, fit.x_max),
        theory: num(theory_slope),
        detail,
        slack: None,
    }
}

/// Fits `log y` on `log x` over `window`, then [`slope_no_shallower`]. A fit
/// that cannot be made (too few points, y <= 0 in the window) fails the check.
pub fn rate_no_shallower(x: &[f64], y: &[f64], window: Window, theory_slope: f64) -> Verdict {
    match fit_power_law(x, y, window) {
        Ok(fit) => slope_no_shallower(&fit, theory_slope),
        Err(e) => Verdict::not_evaluated(e.to_string()),
    }
}

/// Widest 95% interval of a fitted exponent that still has power: narrower
/// than the distance between neighbouring rates (-1/2, -1, -2), so a rate the
/// theory does not predict is excluded.
pub const MAX_SLOPE_CI_WIDTH: f64 = 0.5;

/// Resolution of a rate check: an exponent whose interval comes within this
/// of the theory's counts as equal. The fitted range is finite, and
/// corrections of relative size O(T^-1/2) shift a fitted slope by a few
/// hundredths, which precise data resolve; the neighbouring rates are ten
/// times further away.
pub const SLOPE_RESOLUTION: f64 = 0.05;

/// The fitted rate equals the theory's, with power: passes iff the 95%
/// interval comes within [`SLOPE_RESOLUTION`] of the theory's exponent
/// (`slope_lo <= s + 0.05` and `s - 0.05 <= slope_hi`) and is narrower than
/// [`MAX_SLOPE_CI_WIDTH`]. For predictions (not bounds), where a rate that is
/// too fast is as wrong as one too slow; an interval too wide to exclude the
/// neighbouring rates fails (it shows nothing).
pub fn slope_matches(fit: &PowerLawFit, theory_slope: f64) -> Verdict {
    let line = &fit.line;
    let contains = line.slope_lo <= theory_slope + SLOPE_RESOLUTION
        && theory_slope - SLOPE_RESOLUTION <= line.slope_hi;
    let width = line.slope_hi - line.slope_lo;
    let narrow = width < MAX_SLOPE_CI_WIDTH;
    let passed = contains && narrow;
    let detail = format!(
        "log-log rate: fitted slope {:.4} (95% CI [{:.4}, {:.4}], width {:.3}, {} points, x in [{}, {}]) {} theory {:.4}{}",
        line.slope,
        line.slope_lo,
        line.slope_hi,
        width,
        line.n,
        fit.x_min,
        fit.x_max,
        if contains {
            "reaches (within 0.05)"
        } else {
            "excludes (by more than 0.05)"
        },
        theory_slope,
        if narrow {
            String::new()
        } else {
            format!("; the interval is not narrower than {MAX_SLOPE_CI_WIDTH}, so it cannot exclude the neighbouring rates")
        }
    );
    Verdict {
        passed,
        measured: slope_value(line, fit.x_min, fit.x_max),
        theory: num(theory_slope),
        detail,
        slack: None,
    }
}

/// Fits `log y` on `log x` over `window`, then [`slope_matches`]. A fit that
/// cannot be made fails the check.
pub fn rate_matches(x: &[f64], y: &[f64], window: Window, theory_slope: f64) -> Verdict {
    match fit_power_law(x, y, window) {
        Ok(fit) => slope_matches(&fit, theory_slope),
        Err(e) => Verdict::not_evaluated(e.to_string()),
    }
}

/// [`rate_matches`] for several series (for example one per seed) sharing
/// the exponent, each with its own constant and, with `correction = Some(q)`,
/// its own `x^-q` correction ([`fit_common_power_law`]): one interval, one
/// verdict, which needs the interval narrower than [`MAX_SLOPE_CI_WIDTH`].
pub fn common_rate_matches(
    series: &[(&[f64], &[f64])],
    window: Window,
    correction: Option<f64>,
    theory_slope: f64,
) -> Verdict {
    match fit_common_power_law(series, window, correction) {
        Ok(fit) => {
            let mut v = slope_matches(&fit, theory_slope);
            v.detail = format!(
                "{} series with a common exponent{}: {}",
                series.len(),
                correction.map_or(String::new(), |q| format!(
                    ", each with an x^-{q} correction"
                )),
                v.detail
            );
            v
        }
        Err(e) => Verdict::not_evaluated(e.to_string()),
    }
}

/// Like [`rate_matches`] for an asymptotic rate `y ~ A x^k (1 + O(1/x))`: fits
/// `log y = a + k log x + c/x` ([`super::rate_fit::fit_power_law_corrected`], weighted by the
/// standard errors `y_se` of y where given) and judges k as [`slope_matches`]
/// does: the 95% interval must be narrower than 0.5 and reach the theory's
/// exponent (within the stated resolution).
pub fn asymptotic_rate_matches(
    x: &[f64],
    y: &[f64],
    y_se: Option<&[f64]>,
    window: Window,
    theory_slope: f64,
) -> Verdict {
    common_asymptotic_rate_matches(&[Series { x, y, y_se }], window, theory_slope)
}

/// [`asymptotic_rate_matches`] for several series (for example seeds) sharing
/// the exponent, each with its own constant and correction
/// ([`fit_common_power_law_corrected`]): one interval, one verdict.
pub fn common_asymptotic_rate_matches(
    series: &[Series<'_>],
    window: Window,
    theory_slope: f64,
) -> Verdict {
    match fit_common_power_law_corrected(series, window) {
        Ok(fit) => {
            let mut v = slope_matches(&fit, theory_slope);
            v.detail = format!(
                "{} series, each with a 1/x correction: {}",
                series.len(),
                v.detail
            );
            v
        }
        Err(e) => Verdict::not_evaluated(e.to_string()),
    }
}

/// A linear rate no slower than the theory's contraction factor
/// `rho = 1 - lambda/L_mu`, within the fit's interval: passes iff
/// `factor_lo <= rho` (equivalently `slope_lo <= ln rho`).
pub fn contraction_no_slower(fit: &LinearRateFit, theory_factor: f64) -> Verdict {
    let limit = theory_factor.ln();
    let (passed, _) = slope_at_most(&fit.line, limit, "linear rate");
    let detail = format!(
        "contraction factor {:.6} per step (95% CI [{:.6}, {:.6}], {} points, T in [{}, {}]) {} theory {:.6}",
        fit.factor,
        fit.factor_lo,
        fit.factor_hi,
        fit.line.n,
        fit.x_min,
        fit.x_max,
        if passed {
            "is not shown to exceed"
        } else {
            "exceeds (whole CI above)"
        },
        theory_factor
    );
    Verdict {
        passed,
        measured: json!({
            "factor": num(fit.factor),
            "ci95": [num(fit.factor_lo), num(fit.factor_hi)],
            "window": [num(fit.x_min), num(fit.x_max)],
            "points": fit.line.n,
        }),
        theory: num(theory_factor),
        detail,
        // How many times faster (in log terms) the measured contraction is
        // than the bound's: the rate bound's slack.
        slack: Some(fit.factor.ln() / limit),
    }
}

/// The reference growth function h(M) of a growth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Growth {
    /// `sqrt(ln M)`: suboptimality at a fixed T with a tuned temperature.
    SqrtLog,
    /// `ln M`: iterations to reach a fixed suboptimality.
    Log,
}

impl Growth {
    pub fn eval(self, m: usize) -> f64 {
        let l = (m as f64).ln();
        match self {
            Growth::SqrtLog => l.sqrt(),
            Growth::Log => l,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Growth::SqrtLog => "sqrt(ln M)",
            Growth::Log => "ln M",
        }
    }
}

/// `y(M)` grows no faster than `h(M)`: fits `log y` on `log h(M)` over all the
/// given M (each >= 2) and passes iff the 95% interval of the exponent reaches
/// 1 or below. A flat or slower-growing y passes; y growing like `h(M)^2` fails.
/// See docs/THEORY.md#dependence-on-the-number-of-tasks.
pub fn growth_no_faster(m: &[usize], y: &[f64], growth: Growth) -> Verdict {
    if let Some(&bad) = m.iter().find(|&&k| k < 2) {
        return Verdict::not_evaluated(format!("growth checks need M >= 2, got M = {bad}"));
    }
    let h: Vec<f64> = m.iter().map(|&k| growth.eval(k)).collect();
    let fit = match fit_power_law(&h, y, Window::all()) {
        Ok(fit) => fit,
        Err(e) => return Verdict::not_evaluated(e.to_string()),
    };
    let what = format!(
        "exponent of {} over M in [{}, {}]",
        growth.name(),
        m.iter().min().copied().unwrap_or(0),
        m.iter().max().copied().unwrap_or(0)
    );
    let (passed, detail) = slope_at_most(&fit.line, 1.0, &what);
    Verdict {
        passed,
        measured: json!({
            "exponent": num(fit.line.slope),
            "ci95": [num(fit.line.slope_lo), num(fit.line.slope_hi)],
            "m": m,
            "points": fit.line.n,
        }),
        theory: num(1.0),
        detail,
        slack: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slack_that_is_not_finite_is_written_as_null_and_read_back_as_nan() {
        let check = |slack: Option<f64>| Check {
            name: "n".into(),
            passed: true,
            measured: Value::from(1.0),
            theory: Value::from(2.0),
            detail: String::new(),
            slack,
        };
        let json = serde_json::to_string(&check(Some(f64::INFINITY))).unwrap();
        assert!(json.contains("\"slack\":null"), "{json}");
        let back: Check = serde_json::from_str(&json).unwrap();
        assert!(back.slack.is_some_and(f64::is_nan), "{back:?}");
        let finite: Check =
            serde_json::from_str(&serde_json::to_string(&check(Some(2.5))).unwrap()).unwrap();
        assert_eq!(finite.slack, Some(2.5));
        let absent = serde_json::to_string(&check(None)).unwrap();
        assert!(!absent.contains("slack"), "{absent}");
        assert_eq!(serde_json::from_str::<Check>(&absent).unwrap().slack, None);
    }

    #[test]
    fn sig_pins_the_number_formats_of_the_verdicts() {
        // The verdicts' numbers go through sig (three decimals below 100,
        // none from 100, e-notation with three digits outside [1e-3, 1e4)).
        assert_eq!(sig(0.012345), "0.012");
        assert_eq!(sig(1.23456), "1.235");
        assert_eq!(sig(123.456), "123");
        assert_eq!(sig(12345.0), "1.23e4");
        assert_eq!(sig(0.0004567), "4.57e-4");
        assert_eq!(sig(0.0), "0.000");
        assert_eq!(sig(f64::INFINITY), "inf");
    }

    #[test]
    fn growth_functions_name_themselves_in_the_detail() {
        assert_eq!(Growth::SqrtLog.name(), "sqrt(ln M)");
        assert_eq!(Growth::Log.name(), "ln M");
        assert_eq!(Growth::Log.eval(8), 8f64.ln());
        assert_eq!(Growth::SqrtLog.eval(8), 8f64.ln().sqrt());
        let m = [2, 4, 8, 16, 32];
        let y: Vec<f64> = m.iter().map(|&k| Growth::Log.eval(k)).collect();
        let verdict = growth_no_faster(&m, &y, Growth::Log);
        assert!(
            verdict
                .detail
                .contains("exponent of ln M over M in [2, 32]"),
            "{}",
            verdict.detail
        );
    }

    #[test]
    fn ratios_and_slack_medians_are_exact_at_small_cases() {
        assert_eq!(ratio(2.0, 4.0), 0.5);
        // A non-positive bound: met (ratio 0) or exceeded (ratio +inf).
        assert_eq!(ratio(-1.0, 0.0), 0.0);
        assert_eq!(ratio(0.0, 0.0), 0.0);
        assert_eq!(ratio(1.0, 0.0), f64::INFINITY);
        assert_eq!(ratio(-0.5, -1.0), f64::INFINITY);
        // The slack at the largest x is the median of bound/measured there:
        // ratios 2 and 4 (even count) give 3; 2, 4, 10 give 4.
        let x = [1.0, 5.0, 5.0];
        assert_eq!(
            slack_at_largest(&x, &[1.0, 1.0, 1.0], &[9.0, 2.0, 4.0]),
            Some(3.0)
        );
        let x = [5.0, 5.0, 5.0, 1.0];
        assert_eq!(
            slack_at_largest(&x, &[1.0, 1.0, 1.0, 1.0], &[10.0, 2.0, 4.0, 7.0]),
            Some(4.0)
        );
        assert_eq!(
            slack_at_largest(&x, &[0.0, -1.0, f64::NAN, 1.0], &[1.0, 1.0, 1.0, 1.0]),
            None
        );
        // A zero bound over a positive measurement says nothing about
        // slack (a ratio of 0 is no tightness): only the 4 counts.
        let x = [5.0, 5.0];
        assert_eq!(slack_at_largest(&x, &[1.0, 1.0], &[0.0, 4.0]), Some(4.0));
    }

    #[test]
    fn smallest_slack_skips_points_where_bound_over_measured_means_nothing() {
        // at_most allows negative measurements (a difference that may go
        // below zero) and zero ones: bound/measured is then negative or
        // infinite and says nothing about slack. The smallest is 4 (2 / 0.5).
        let verdict = at_most(&[1.0, 2.0, 3.0], &[-0.5, 0.0, 0.5], &[1.0, 1.0, 2.0]);
        assert!(verdict.passed, "{}", verdict.detail);
        assert!(
            verdict.detail.ends_with("at the largest x, smallest 4.000"),
            "{}",
            verdict.detail
        );
    }

    use crate::theory::bounds;
    use crate::theory::rate_fit::{fit_linear_rate, fit_power_law};

    fn grid() -> Vec<f64> {
        (0..16).map(|k| 10f64.powf(1.0 + k as f64 * 0.2)).collect()
    }

    #[test]
    fn check_serialises_as_the_report_entry() {
        let check = bound_holds(&[1.0, 2.0], &[0.5, 0.2], &[1.0, 0.5]).named("a");
        let value = serde_json::to_value(&check).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|s| s.as_str())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["detail", "measured", "name", "passed", "slack", "theory"]
        );
        assert!((value["slack"].as_f64().unwrap() - 2.5).abs() < 1e-12);
        assert_eq!(value["name"], "a");
        assert_eq!(value["passed"], true);
        let back: Check = serde_json::from_value(value).unwrap();
        assert_eq!(back, check);
    }

    #[test]
    fn bound_holds_passes_below_and_reports_the_worst_ratio() {
        let t = grid();
        let bound: Vec<f64> = t
            .iter()
            .map(|&t| bounds::subgradient(t as u64, 2.0, 1.0))
            .collect();
        let measured: Vec<f64> = bound
            .iter()
            .enumerate()
            .map(|(i, b)| b * (0.3 + 0.01 * i as f64))
            .collect();
        let v = bound_holds(&t, &measured, &bound);
        assert!(v.passed, "{}", v.detail);
        assert_eq!(worst_ratio(&measured, &bound).unwrap().0, 15);
        // The largest ratio wherever it is, and a NaN anywhere wins.
        assert_eq!(worst_ratio(&[1.0, 2.0, 1.0], &[1.0; 3]), Some((1, 2.0)));
        assert_eq!(worst_ratio(&[f64::NAN, 2.0], &[1.0; 2]).unwrap().0, 0);
        assert_eq!(v.measured, num(measured[15]));
        assert_eq!(v.theory, num(bound[15]));
        assert!(v.detail.contains("0.45"), "{}", v.detail);
    }

    #[test]
    fn bound_holds_fails_on_a_too_slow_sequence() {
        // Decays like T^{-1/4} against a G R / sqrt(T) bound: above it eventually.
        let t = grid();
        let bound: Vec<f64> = t
            .iter()
            .map(|&t| bounds::subgradient(t as u64, 1.0, 1.0))
            .collect();
        let measured: Vec<f64> = t.iter().map(|&t| 0.5 * t.powf(-0.25)).collect();
        let v = bound_holds(&t, &measured, &bound);
        assert!(!v.passed);
        assert!(v.detail.contains("measured > bound"), "{}", v.detail);
        // Exceeding at a single point is enough; so is a NaN.
        let mut one = bound.clone();
        one[3] *= 1.0 + 1e-12;
        assert!(!bound_holds(&t, &one, &bound).passed);
        let mut nan = bound.clone();
        nan[0] = f64::NAN;
        assert!(!bound_holds(&t, &nan, &bound).passed);
        assert!(!bound_holds(&[], &[], &[]).passed);
        assert!(!bound_holds(&t[..2], &measured[..2], &bound[..1]).passed);
        // Equality is allowed (tight bounds).
        assert!(bound_holds(&t, &bound, &bound).passed);
    }

    #[test]
    fn slope_check_passes_at_or_below_the_theory_and_fails_when_shallower() {
        let t = grid();
        let good: Vec<f64> = t.iter().map(|&t| 3.0 / t).collect();
        let fit = fit_power_law(&t, &good, Window::all()).unwrap();
        assert!(slope_no_shallower(&fit, -1.0).passed);
        assert!(slope_no_shallower(&fit, -0.5).passed);
        // A T^{-1/2} sequence is too slow for a 1/T theory.
        let slow: Vec<f64> = t.iter().map(|&t| 3.0 / t.sqrt()).collect();
        let v = rate_no_shallower(&t, &slow, Window::all(), -1.0);
        assert!(!v.passed, "{}", v.detail);
        assert_eq!(v.theory, num(-1.0));
        assert!((v.measured["slope"].as_f64().unwrap() + 0.5).abs() < 1e-12);
        // A failed fit fails the check.
        assert!(!rate_no_shallower(&t, &slow, Window::new(1e9, 1e10), -1.0).passed);
    }

    #[test]
    fn slope_check_with_noise_uses_the_interval() {
        // Deterministic scatter of +-0.3 in log y around a slope of -0.47: the
        // point estimate is shallower than -1/2, but the interval reaches it.
        let t = grid();
        let scatter = |i: usize| if i.is_multiple_of(2) { 0.3f64 } else { -0.3 };
        let y: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(i, &t)| t.powf(-0.47) * scatter(i).exp())
            .collect();
        let fit = fit_power_law(&t, &y, Window::all()).unwrap();
        assert!(fit.slope() > -0.5 && fit.line.slope_lo < -0.5, "{fit:?}");
        assert!(slope_no_shallower(&fit, -0.5).passed);
        // Clearly shallower (-0.2) is caught despite the scatter.
        let y: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(i, &t)| t.powf(-0.2) * scatter(i).exp())
            .collect();
        assert!(!rate_no_shallower(&t, &y, Window::all(), -0.5).passed);
    }

    #[test]
    fn two_sided_slope_check_fails_too_slow_and_too_fast() {
        let b: Vec<f64> = (0..9).map(|k| f64::from(1u32 << k)).collect();
        let scatter = |i: usize| if i.is_multiple_of(2) { 0.02f64 } else { -0.02 };
        let with = |s: f64| -> Vec<f64> {
            b.iter()
                .enumerate()
                .map(|(i, &x)| 0.3 * x.powf(s) * scatter(i).exp())
                .collect()
        };
        assert!(rate_matches(&b, &with(-1.0), Window::all(), -1.0).passed);
        // 1/sqrt(b) and 1/b^2 are both wrong for a 1/b prediction.
        let slow = rate_matches(&b, &with(-0.5), Window::all(), -1.0);
        assert!(
            !slow.passed && slow.detail.contains("excludes"),
            "{}",
            slow.detail
        );
        assert!(!rate_matches(&b, &with(-2.0), Window::all(), -1.0).passed);
        // Too few points in the window: not evaluated, never a pass.
        assert!(!rate_matches(&b, &with(-1.0), Window::new(100.0, 1e9), -1.0).passed);
        // With a 1/b correction the plain fit is pulled off -1, the asymptotic one is not.
        let corrected: Vec<f64> = b
            .iter()
            .enumerate()
            .map(|(i, &x)| 0.3 / x * (-6.0 / x + scatter(i)).exp())
            .collect();
        assert!(!rate_matches(&b[3..], &corrected[3..], Window::all(), -1.0).passed);
        assert!(
            asymptotic_rate_matches(&b[3..], &corrected[3..], None, Window::all(), -1.0).passed
        );
        assert!(!asymptotic_rate_matches(&b, &with(-0.5), None, Window::all(), -1.0).passed);
    }

    #[test]
    fn contraction_check() {
        let x: Vec<f64> = (0..30).map(|k| f64::from(k * 10)).collect();
        let rho = bounds::linear_rate_factor(1.0, 20.0); // 0.95
        let fast: Vec<f64> = x.iter().map(|t| 0.9f64.powf(*t)).collect();
        let fit = fit_linear_rate(&x, &fast, Window::all()).unwrap();
        let v = contraction_no_slower(&fit, rho);
        assert!(v.passed, "{}", v.detail);
        // Contracting by 0.99 per step is slower than the theory's 0.95.
        let slow: Vec<f64> = x.iter().map(|t| 0.99f64.powf(*t)).collect();
        let fit = fit_linear_rate(&x, &slow, Window::all()).unwrap();
        let v = contraction_no_slower(&fit, rho);
        assert!(!v.passed, "{}", v.detail);
        assert!((v.measured["factor"].as_f64().unwrap() - 0.99).abs() < 1e-12);
        // Slack: ln(measured factor) / ln(theory factor), here ln 0.99 / ln 0.95.
        let slack = v.slack.unwrap();
        assert!(
            (slack - 0.99f64.ln() / rho.ln()).abs() < 1e-9,
            "slack {slack}"
        );
    }

    #[test]
    fn growth_check_passes_sqrt_log_and_slower_and_fails_faster() {
        let m: Vec<usize> = (1..=10).map(|k| 1usize << k).collect();
        let sqrt_log: Vec<f64> = m.iter().map(|&k| 0.3 * (k as f64).ln().sqrt()).collect();
        assert!(growth_no_faster(&m, &sqrt_log, Growth::SqrtLog).passed);
        // With the L R^2/(2T) constant added the growth is slower: passes.
        let bound: Vec<f64> = m
            .iter()
            .map(|&k| bounds::softmax_gd_tuned(1000, 5.0, 1.0, 1.0, k))
            .collect();
        assert!(growth_no_faster(&m, &bound, Growth::SqrtLog).passed);
        let flat = vec![0.1; m.len()];
        assert!(growth_no_faster(&m, &flat, Growth::SqrtLog).passed);
        // Growing like ln M is faster than sqrt(ln M): fails.
        let log: Vec<f64> = m.iter().map(|&k| 0.3 * (k as f64).ln()).collect();
        let v = growth_no_faster(&m, &log, Growth::SqrtLog);
        assert!(!v.passed, "{}", v.detail);
        assert!((v.measured["exponent"].as_f64().unwrap() - 2.0).abs() < 1e-10);
        // Iterations: ln M passes, (ln M)^2 and sqrt(M) fail.
        assert!(growth_no_faster(&m, &log, Growth::Log).passed);
        let log2: Vec<f64> = m.iter().map(|&k| (k as f64).ln().powi(2)).collect();
        assert!(!growth_no_faster(&m, &log2, Growth::Log).passed);
        let sqrt_m: Vec<f64> = m.iter().map(|&k| (k as f64).sqrt()).collect();
        assert!(!growth_no_faster(&m, &sqrt_m, Growth::Log).passed);
        // M = 1 cannot be used (ln 1 = 0).
        assert!(!growth_no_faster(&[1, 2, 4], &[1.0, 1.0, 1.0], Growth::Log).passed);
    }

    #[test]
    fn bound_checks_fail_on_infinite_bounds_and_negative_gaps_saying_why() {
        let t = [1.0, 2.0, 4.0];
        let v = bound_holds(&t, &[0.5, 0.4, 0.3], &[1.0, f64::INFINITY, 1.0]);
        assert!(
            !v.passed && v.detail.contains("non-finite bound"),
            "{}",
            v.detail
        );
        let v = bound_holds(&t, &[0.5, 0.4, 0.3], &[1.0, f64::NAN, 1.0]);
        assert!(
            !v.passed && v.detail.contains("non-finite bound"),
            "{}",
            v.detail
        );
        let v = bound_holds(&t, &[0.5, -0.45, 0.3], &[1.0, 1.0, 1.0]);
        assert!(!v.passed && v.detail.contains("negative"), "{}", v.detail);
        // Rounding of a difference is not a negative gap; a signed comparison allows any sign.
        assert!(bound_holds(&t, &[0.5, -1e-16, 0.3], &[1.0, 1.0, 1.0]).passed);
        // ... relative to the largest bound: -1e-7 is rounding against bounds
        // of 1e6 (allowance 1e-6), a negative gap against bounds of 1e-2.
        assert!(bound_holds(&t, &[0.5, -1e-7, 0.3], &[1e6, 1e6, 1e6]).passed);
        assert!(!bound_holds(&t, &[0.005, -1e-7, 0.003], &[1e-2, 1e-2, 1e-2]).passed);
        assert!(at_most(&t, &[0.5, -0.45, 0.3], &[1.0, 1.0, 1.0]).passed);
        // Slack: bound / measured at the largest x (median over the points there).
        let v = bound_holds(
            &[1.0, 4.0, 4.0, 4.0],
            &[0.5, 0.1, 0.2, 0.4],
            &[1.0, 1.0, 1.0, 1.0],
        );
        assert_eq!(v.slack, Some(5.0));
        assert!(v.detail.contains("slack"), "{}", v.detail);
    }

    #[test]
    fn a_rate_check_without_power_fails() {
        // Two noisy points per seed over a short range: the interval is wide.
        let x = [10.0, 11.0, 12.0];
        let y1 = [1.0, 0.7, 0.95];
        let y2 = [2.0, 1.9, 1.4];
        let v = common_rate_matches(&[(&x, &y1), (&x, &y2)], Window::all(), None, -0.5);
        assert!(
            !v.passed && v.detail.contains("cannot exclude"),
            "{}",
            v.detail
        );
        // Seeds with different constants and the same exponent pass; a
        // neighbouring exponent is excluded.
        let x: Vec<f64> = (0..10).map(|k| 2f64.powi(k + 4)).collect();
        let wiggle = |k: usize| if k.is_multiple_of(2) { 1.02 } else { 0.98 };
        let a: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(k, t)| 3.0 / t.sqrt() * wiggle(k))
            .collect();
        let b: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(k, t)| 0.5 / t.sqrt() * wiggle(k + 1))
            .collect();
        assert!(common_rate_matches(&[(&x, &a), (&x, &b)], Window::all(), None, -0.5).passed);
        assert!(!common_rate_matches(&[(&x, &a), (&x, &b)], Window::all(), None, -1.0).passed);
        // A T^-1/2 (1 + O(T^-1/2)) curve needs its correction.
        let c: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(k, t)| (4.0 / t.sqrt()).exp() / t.sqrt() * wiggle(k))
            .collect();
        let with = common_rate_matches(&[(&x, &c)], Window::all(), Some(0.5), -0.5);
        assert!(with.passed, "{}", with.detail);
        assert!(!common_rate_matches(&[(&x, &c)], Window::all(), None, -0.5).passed);
    }

    #[test]
    fn verdict_json_never_holds_non_finite_numbers() {
        let v = bound_holds(&[1.0], &[f64::INFINITY], &[1.0]);
        assert!(!v.passed);
        let text = serde_json::to_string(&v.named("x")).unwrap();
        assert!(serde_json::from_str::<Check>(&text).is_ok());
    }
}
