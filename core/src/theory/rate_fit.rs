//! Least-squares rate fits with 95% confidence intervals (Student t).
//!
//! - [`fit_power_law`]: slope of `log y` on `log x` (a sublinear rate `y ~ x^s`).
//! - [`fit_linear_rate`]: slope of `log y` on `x` (a linear rate `y ~ rho^x`,
//!   reported as the contraction factor `rho = exp(slope)`).
//!
//! Both use only the points whose x lies in the stated [`Window`]. See
//! docs/THEORY.md#how-the-checks-measure.

use crate::error::{invalid, InputError};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided confidence level of every interval reported here.
pub const CONFIDENCE: f64 = 0.95;

/// Closed x range `[lo, hi]` of the points a fit uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Lower end (inclusive).
    pub lo: f64,
    /// Upper end (inclusive).
    pub hi: f64,
}

impl Window {
    /// The window `[lo, hi]`.
    pub fn new(lo: f64, hi: f64) -> Self {
        Self { lo, hi }
    }

    /// Every point.
    pub fn all() -> Self {
        Self {
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        }
    }

    /// Whether `lo <= x <= hi`.
    pub fn contains(&self, x: f64) -> bool {
        x >= self.lo && x <= self.hi
    }
}

/// Ordinary least squares `v = intercept + slope * u` with a t interval on the slope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    /// The fitted slope.
    pub slope: f64,
    /// The fitted intercept.
    pub intercept: f64,
    /// Standard error of the slope.
    pub slope_se: f64,
    /// Lower end of the 95% interval `slope -+ t_{0.975, n-2} * slope_se`.
    pub slope_lo: f64,
    /// Upper end of that interval.
    pub slope_hi: f64,
    /// Points used.
    pub n: usize,
    /// Coefficient of determination (1 for an exact line).
    pub r_squared: f64,
}

/// Fit of `log y = intercept + slope * log x`: `y ~ exp(intercept) x^slope`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    /// The fit of `log y` on `log x` (corrected fits: `k` as slope, `a` as intercept).
    pub line: LineFit,
    /// The window asked for.
    pub window: Window,
    /// Smallest x actually used.
    pub x_min: f64,
    /// Largest x actually used.
    pub x_max: f64,
}

impl PowerLawFit {
    /// The fitted exponent s of `y ~ x^s`.
    pub fn slope(&self) -> f64 {
        self.line.slope
    }

    /// The 95% interval of the exponent.
    pub fn slope_ci(&self) -> (f64, f64) {
        (self.line.slope_lo, self.line.slope_hi)
    }
}

/// Fit of `log y = intercept + slope * x`: `y ~ C rho^x` with `rho = exp(slope)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearRateFit {
    /// The fit of `log y` on `x`.
    pub line: LineFit,
    /// The window asked for.
    pub window: Window,
    /// Smallest x actually used.
    pub x_min: f64,
    /// Largest x actually used.
    pub x_max: f64,
    /// `exp(slope)`: the fitted contraction factor per unit of x.
    pub factor: f64,
    /// Lower end of the factor's 95% interval, `exp(slope_lo)`.
    pub factor_lo: f64,
    /// Upper end of the factor's 95% interval, `exp(slope_hi)`.
    pub factor_hi: f64,
}

/// Least squares of `v` on `u` with a 95% t interval on the slope.
///
/// Needs at least 3 points (one degree of freedom for the interval) and two
/// distinct u values.
pub fn fit_line(u: &[f64], v: &[f64]) -> Result<LineFit, InputError> {
    if u.len() != v.len() {
        return invalid(
            "fit",
            format!("x has {} values but y has {}", u.len(), v.len()),
        );
    }
    let n = u.len();
    if n < 3 {
        return invalid(
            "window",
            format!("a fit with a confidence interval needs at least 3 points, got {n}"),
        );
    }
    if u.iter().chain(v).any(|z| !z.is_finite()) {
        return invalid("fit", "NaN or infinite value among the fitted points");
    }
    let nf = n as f64;
    let u_mean = u.iter().sum::<f64>() / nf;
    let v_mean = v.iter().sum::<f64>() / nf;
    let (mut suu, mut suv, mut svv) = (0.0, 0.0, 0.0);
    for (&a, &b) in u.iter().zip(v) {
        let (du, dv) = (a - u_mean, b - v_mean);
        suu += du * du;
        suv += du * dv;
        svv += dv * dv;
    }
    if suu <= 0.0 {
        return invalid("window", "all fitted points have the same x");
    }
    let slope = suv / suu;
    let intercept = v_mean - slope * u_mean;
    let rss: f64 = u
        .iter()
        .zip(v)
        .map(|(&a, &b)| (b - intercept - slope * a).powi(2))
        .sum();
    let dof = (n - 2) as f64;
    let slope_se = (rss / dof / suu).sqrt();
    let t = StudentsT::new(0.0, 1.0, dof)
        .map_err(|e| InputError::new("fit", format!("t distribution: {e}")))?
        .inverse_cdf(0.5 + CONFIDENCE / 2.0);
    let r_squared = if svv > 0.0 { 1.0 - rss / svv } else { 1.0 };
    Ok(LineFit {
        slope,
        intercept,
        slope_se,
        slope_lo: slope - t * slope_se,
        slope_hi: slope + t * slope_se,
        n,
        r_squared,
    })
}

/// Points with x in the window, with y > 0 required (both are logged or y is).
fn windowed(
    x: &[f64],
    y: &[f64],
    window: Window,
    need_positive_x: bool,
) -> Result<(Vec<f64>, Vec<f64>), InputError> {
    if x.len() != y.len() {
        return invalid(
            "fit",
            format!("x has {} values but y has {}", x.len(), y.len()),
        );
    }
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (i, (&xi, &yi)) in x.iter().zip(y).enumerate() {
        if !window.contains(xi) {
            continue;
        }
        if !(yi > 0.0 && yi.is_finite()) {
            return invalid(
                "y",
                format!("value {yi} at x = {xi} (index {i}) cannot be logged: need a finite y > 0"),
            );
        }
        if need_positive_x && !(xi > 0.0 && xi.is_finite()) {
            return invalid(
                "x",
                format!("value {xi} (index {i}) cannot be logged: need a finite x > 0"),
            );
        }
        xs.push(xi);
        ys.push(yi);
    }
    Ok((xs, ys))
}

fn extent(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Slope of `log y` on `log x` over the points with x in `window`, with a 95%
/// interval. Errors (naming the field) on y <= 0 or x <= 0 inside the window,
/// or fewer than 3 points.
pub fn fit_power_law(x: &[f64], y: &[f64], window: Window) -> Result<PowerLawFit, InputError> {
    let (xs, ys) = windowed(x, y, window, true)?;
    let lx: Vec<f64> = xs.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|v| v.ln()).collect();
    let line = fit_line(&lx, &ly)?;
    let (x_min, x_max) = extent(&xs);
    Ok(PowerLawFit {
        line,
        window,
        x_min,
        x_max,
    })
}

/// Common exponent of several power-law series (for example seeds), each
/// with its own constant and, where `correction = Some(q)`, its own leading
/// correction: least squares of `log y_g = a_g + k log x (+ c_g x^-q)` over
/// the points with x in `window`, with a Student t 95% interval on `k`
/// (n - G - 1, or n - 2G - 1, degrees of freedom). For a prediction
/// `y = A x^k (1 + B x^-q + ...)`, such as a path average
/// `A T^-1/2 + B T^-1` (q = 1/2). The returned line's intercept is the
/// first series' `a`.
pub fn fit_common_power_law(
    series: &[(&[f64], &[f64])],
    window: Window,
    correction: Option<f64>,
) -> Result<PowerLawFit, InputError> {
    let mut points: Vec<(usize, f64, f64)> = Vec::new();
    let per_series = if correction.is_some() { 3 } else { 2 };
    for (g, &(x, y)) in series.iter().enumerate() {
        let (xs, ys) = windowed(x, y, window, true)?;
        if xs.len() < per_series {
            return invalid(
                "window",
                format!(
                    "a common power-law fit needs at least {per_series} points per series, series {g} has {}",
                    xs.len()
                ),
            );
        }
        points.extend(xs.into_iter().zip(ys).map(|(a, b)| (g, a, b)));
    }
    let groups = series.len();
    let columns = 1 + groups * (per_series - 1);
    let n = points.len();
    if groups == 0 || n <= columns {
        return invalid(
            "window",
            format!("{n} points cannot determine {columns} coefficients with an interval"),
        );
    }
    let design = nalgebra::DMatrix::from_fn(n, columns, |i, j| {
        let (g, x, _) = points[i];
        if j == 0 {
            x.ln()
        } else if j == 1 + g {
            1.0
        } else if correction.is_some() && j == 1 + groups + g {
            x.powf(-correction.unwrap_or(0.0))
        } else {
            0.0
        }
    });
    let response = nalgebra::DVector::from_iterator(n, points.iter().map(|p| p.2.ln()));
    let normal = design.transpose() * &design;
    let inverse = normal.try_inverse().ok_or_else(|| {
        InputError::new(
            "window",
            "the fit's design is singular (too few distinct x)",
        )
    })?;
    let coefficients = &inverse * (design.transpose() * &response);
    let residual = &response - &design * &coefficients;
    let dof = (n - columns) as f64;
    let slope = coefficients[0];
    let slope_se = (residual.norm_squared() / dof * inverse[(0, 0)]).sqrt();
    let t = StudentsT::new(0.0, 1.0, dof)
        .map_err(|e| InputError::new("fit", format!("t distribution: {e}")))?
        .inverse_cdf(0.5 + CONFIDENCE / 2.0);
    let all: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (x_min, x_max) = extent(&all);
    Ok(PowerLawFit {
        line: LineFit {
            slope,
            intercept: coefficients[1],
            slope_se,
            slope_lo: slope - t * slope_se,
            slope_hi: slope + t * slope_se,
            n,
            r_squared: f64::NAN,
        },
        window,
        x_min,
        x_max,
    })
}

/// Slope of `log y` on `x` over the points with x in `window` (a linear rate),
/// with the contraction factor `exp(slope)` and its 95% interval.
pub fn fit_linear_rate(x: &[f64], y: &[f64], window: Window) -> Result<LinearRateFit, InputError> {
    let (xs, ys) = windowed(x, y, window, false)?;
    let ly: Vec<f64> = ys.iter().map(|v| v.ln()).collect();
    let line = fit_line(&xs, &ly)?;
    let (x_min, x_max) = extent(&xs);
    Ok(LinearRateFit {
        line,
        window,
        x_min,
        x_max,
        factor: line.slope.exp(),
        factor_lo: line.slope_lo.exp(),
        factor_hi: line.slope_hi.exp(),
    })
}

/// One series of a pooled fit: its x, y and (optionally) the standard errors of y.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The x values.
    pub x: &'a [f64],
    /// The y values (positive: the fit is on `log y`).
    pub y: &'a [f64],
    /// Standard errors of the y values, where known.
    pub y_se: Option<&'a [f64]>,
}

/// Exponent of a power law with its leading correction: least squares of
/// `log y = a + k log x + c / x` over the points with x in `window`, with a
/// 95% interval on `k`. For asymptotic predictions `y = A x^k (1 + O(1/x))`,
/// such as a bias `beta/b + gamma/b^2`, where the plain log-log slope is
/// pulled away from `k` at moderate x. Needs at least 4 points.
///
/// Without `y_se` the interval is Student t from the residuals (n - 3 degrees
/// of freedom). With `y_se` (standard errors of the y values, e.g. Monte
/// Carlo errors) the fit is weighted by `(y / y_se)^2` (the variances of
/// `log y`), and the interval is the normal one from those known variances,
/// widened by the scale factor `sqrt(max(1, chi^2 / dof))` when the residuals
/// are larger than the errors explain -- never narrowed below them.
/// The returned line holds `k` as its slope and `a` as its intercept.
pub fn fit_power_law_corrected(
    x: &[f64],
    y: &[f64],
    y_se: Option<&[f64]>,
    window: Window,
) -> Result<PowerLawFit, InputError> {
    fit_common_power_law_corrected(&[Series { x, y, y_se }], window)
}

/// [`fit_power_law_corrected`] over several series (for example seeds) that
/// share the exponent k but each have their own `a` and `c`:
/// `log y_g = a_g + k log x + c_g / x`. Either every series has standard
/// errors or none has. Needs 4 points per series (one degree of freedom
/// beyond the 1 + 2G coefficients at the least).
/// The returned line's intercept is the first series' `a`.
pub fn fit_common_power_law_corrected(
    series: &[Series<'_>],
    window: Window,
) -> Result<PowerLawFit, InputError> {
    if series.is_empty() {
        return invalid("fit", "no series to fit");
    }
    let known = series[0].y_se.is_some();
    if series.iter().any(|g| g.y_se.is_some() != known) {
        return invalid("y_se", "give standard errors for every series or for none");
    }
    // (group, x, y, weight) of every point in the window.
    let mut points: Vec<(usize, f64, f64, f64)> = Vec::new();
    for (g, s) in series.iter().enumerate() {
        if let Some(se) = s.y_se {
            if se.len() != s.y.len() {
                return invalid(
                    "fit",
                    format!("y has {} values but y_se has {}", s.y.len(), se.len()),
                );
            }
        }
        let (xs, ys) = windowed(s.x, s.y, window, true)?;
        if xs.len() < 4 {
            return invalid(
                "window",
                format!(
                    "a corrected power-law fit needs at least 4 points per series, series {g} has {}",
                    xs.len()
                ),
            );
        }
        let ses: Vec<f64> = match s.y_se {
            Some(se) => {
                s.x.iter()
                    .zip(se)
                    .filter(|(xi, _)| window.contains(**xi))
                    .map(|(_, &e)| e)
                    .collect()
            }
            None => vec![f64::NAN; xs.len()],
        };
        for ((&xi, &yi), &e) in xs.iter().zip(&ys).zip(&ses) {
            // Weight 1/Var(log y) = (y/se)^2 with known errors, else 1.
            let w = if known { (yi / e).powi(2) } else { 1.0 };
            if !(w.is_finite() && w > 0.0) {
                return invalid("y_se", "standard errors must be finite and positive");
            }
            points.push((g, xi, yi, w));
        }
    }
    let groups = series.len();
    let columns = 1 + 2 * groups;
    let n = points.len();
    if n <= columns {
        return invalid(
            "window",
            format!("{n} points cannot determine {columns} coefficients with an interval"),
        );
    }
    // Columns: k, then (a_g, c_g) per series.
    let design = nalgebra::DMatrix::from_fn(n, columns, |i, j| {
        let (g, x, _, _) = points[i];
        match j {
            0 => x.ln(),
            j if j == 1 + 2 * g => 1.0,
            j if j == 2 + 2 * g => 1.0 / x,
            _ => 0.0,
        }
    });
    let v = nalgebra::DVector::from_iterator(n, points.iter().map(|p| p.2.ln()));
    let w = nalgebra::DVector::from_iterator(n, points.iter().map(|p| p.3));
    let weighted = nalgebra::DMatrix::from_fn(n, columns, |i, j| design[(i, j)] * w[i]);
    let Some(inverse) = (design.transpose() * &weighted).try_inverse() else {
        return invalid(
            "window",
            "the fitted points do not determine the coefficients",
        );
    };
    let coefficients = &inverse * (weighted.transpose() * &v);
    let residuals = &v - &design * &coefficients;
    let chi2: f64 = residuals.iter().zip(w.iter()).map(|(r, w)| w * r * r).sum();
    let dof = (n - columns) as f64;
    let (slope_se, quantile) = if known {
        let normal = statrs::distribution::Normal::new(0.0, 1.0)
            .map_err(|e| InputError::new("fit", format!("normal distribution: {e}")))?;
        (
            (inverse[(0, 0)] * (chi2 / dof).max(1.0)).max(0.0).sqrt(),
            normal.inverse_cdf(0.5 + CONFIDENCE / 2.0),
        )
    } else {
        let t = StudentsT::new(0.0, 1.0, dof)
            .map_err(|e| InputError::new("fit", format!("t distribution: {e}")))?;
        (
            (chi2 / dof * inverse[(0, 0)]).max(0.0).sqrt(),
            t.inverse_cdf(0.5 + CONFIDENCE / 2.0),
        )
    };
    let mean = v.mean();
    let tss: f64 = v.iter().map(|z| (z - mean).powi(2)).sum();
    let rss = residuals.norm_squared();
    let xs: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (x_min, x_max) = extent(&xs);
    Ok(PowerLawFit {
        line: LineFit {
            slope: coefficients[0],
            intercept: coefficients[1],
            slope_se,
            slope_lo: coefficients[0] - quantile * slope_se,
            slope_hi: coefficients[0] + quantile * slope_se,
            n,
            r_squared: if tss > 0.0 { 1.0 - rss / tss } else { 1.0 },
        },
        window,
        x_min,
        x_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn geometric_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|k| lo * (hi / lo).powf(k as f64 / (n - 1) as f64))
            .collect()
    }

    #[test]
    fn exact_power_law_gives_its_exponent_with_a_zero_width_interval() {
        let x = geometric_grid(1.0, 1e4, 20);
        for s in [-2.0, -1.0, -0.5, 0.5] {
            let y: Vec<f64> = x.iter().map(|v| 3.0 * v.powf(s)).collect();
            let fit = fit_power_law(&x, &y, Window::all()).unwrap();
            assert!((fit.slope() - s).abs() < 1e-12, "{}", fit.slope());
            assert!(fit.line.slope_hi - fit.line.slope_lo < 1e-10);
            assert!((fit.line.intercept - 3f64.ln()).abs() < 1e-10);
            assert!((fit.line.r_squared - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn corrected_fit_recovers_the_exponent_under_a_one_over_x_correction() {
        let x = geometric_grid(8.0, 256.0, 6);
        // 3/x (1 + 4/x) with +-1% scatter: the plain slope is steeper than -1
        // (its whole interval), the corrected one contains -1.
        let scatter = |i: usize| if i.is_multiple_of(2) { 1.01 } else { 0.99 };
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &b)| 3.0 / b * (1.0 + 4.0 / b) * scatter(i))
            .collect();
        let plain = fit_power_law(&x, &y, Window::all()).unwrap();
        assert!(plain.line.slope_hi < -1.0, "{plain:?}");
        let corrected = fit_power_law_corrected(&x, &y, None, Window::all()).unwrap();
        assert!(
            corrected.line.slope_lo <= -1.0 && -1.0 <= corrected.line.slope_hi,
            "{corrected:?}"
        );
        assert!((corrected.slope() + 1.0).abs() < 0.05, "{corrected:?}");
        // An exact power law is recovered exactly; 1/sqrt(x) is not -1.
        let y: Vec<f64> = x.iter().map(|&b| 2.0 / b.sqrt()).collect();
        let fit = fit_power_law_corrected(&x, &y, None, Window::all()).unwrap();
        assert!((fit.slope() + 0.5).abs() < 1e-9);
        assert!(fit.line.slope_hi < -0.49 && fit.line.slope_lo > -0.51);
        // Three points are too few.
        assert!(fit_power_law_corrected(&x[..3], &y[..3], None, Window::all()).is_err());
    }

    #[test]
    fn corrected_fit_with_known_errors_never_claims_more_than_they_allow() {
        let x = geometric_grid(8.0, 256.0, 6);
        // Points that happen to lie almost exactly on -0.97: the residuals alone
        // give a narrow interval that excludes -1; 4% errors on y do not.
        let y: Vec<f64> = x.iter().map(|&b| 0.1 * b.powf(-0.97)).collect();
        let se: Vec<f64> = y.iter().map(|v| 0.04 * v).collect();
        let residual_only = fit_power_law_corrected(&x, &y, None, Window::all()).unwrap();
        assert!(residual_only.line.slope_hi < -0.96);
        let known = fit_power_law_corrected(&x, &y, Some(&se), Window::all()).unwrap();
        assert!(
            known.line.slope_lo < -1.0 && known.line.slope_hi > -1.0,
            "{known:?}"
        );
        // Residuals far above the errors widen the interval (scale factor).
        let scattered: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v * if i.is_multiple_of(2) { 1.3 } else { 0.77 })
            .collect();
        let wide = fit_power_law_corrected(&x, &scattered, Some(&se), Window::all()).unwrap();
        let narrow_width = known.line.slope_hi - known.line.slope_lo;
        assert!(wide.line.slope_hi - wide.line.slope_lo > 3.0 * narrow_width);
        // Pooled over series with their own constants and corrections: one
        // exponent, and a tighter interval than any one series gives.
        let second: Vec<f64> = x
            .iter()
            .map(|&b| 0.5 * b.powf(-0.97) * (2.0 / b).exp())
            .collect();
        let se2: Vec<f64> = second.iter().map(|v| 0.04 * v).collect();
        let pooled = fit_common_power_law_corrected(
            &[
                Series {
                    x: &x,
                    y: &y,
                    y_se: Some(&se),
                },
                Series {
                    x: &x,
                    y: &second,
                    y_se: Some(&se2),
                },
            ],
            Window::all(),
        )
        .unwrap();
        assert!((pooled.slope() + 0.97).abs() < 1e-6, "{pooled:?}");
        assert!(pooled.line.slope_hi - pooled.line.slope_lo < narrow_width);
        assert!(fit_common_power_law_corrected(
            &[
                Series {
                    x: &x,
                    y: &y,
                    y_se: Some(&se)
                },
                Series {
                    x: &x,
                    y: &second,
                    y_se: None
                }
            ],
            Window::all()
        )
        .is_err());
        // Bad errors are input errors.
        let zero = vec![0.0; y.len()];
        assert!(fit_power_law_corrected(&x, &y, Some(&zero), Window::all()).is_err());
        assert!(fit_power_law_corrected(&x, &y, Some(&se[..2]), Window::all()).is_err());
    }

    #[test]
    fn window_selects_the_rate_region() {
        // 1/T until 1000, then a floor: the window before the floor sees slope -1.
        let x = geometric_grid(1.0, 1e6, 31);
        let y: Vec<f64> = x.iter().map(|&t| 1.0 / t + 1e-3).collect();
        let all = fit_power_law(&x, &y, Window::all()).unwrap();
        let early = fit_power_law(&x, &y, Window::new(1.0, 20.0)).unwrap();
        assert!(all.slope() > -0.8);
        assert!(early.slope() < -0.95, "{}", early.slope());
        assert!(early.x_max <= 20.0 && early.x_min == 1.0);
        assert!(early.line.n < 31);
    }

    #[test]
    fn noisy_power_law_interval_covers_the_truth_about_95_percent() {
        let x = geometric_grid(10.0, 1e5, 12);
        let noise = Normal::<f64>::new(0.0, 0.2).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        let trials = 2000;
        let mut covered = 0;
        for _ in 0..trials {
            let y: Vec<f64> = x
                .iter()
                .map(|v| 2.0 * v.powf(-0.5) * noise.sample(&mut rng).exp())
                .collect();
            let fit = fit_power_law(&x, &y, Window::all()).unwrap();
            let (lo, hi) = fit.slope_ci();
            assert!(lo < fit.slope() && fit.slope() < hi);
            if lo <= -0.5 && -0.5 <= hi {
                covered += 1;
            }
        }
        // Binomial(2000, 0.95): standard deviation about 10.
        let rate = covered as f64 / trials as f64;
        assert!((0.93..=0.97).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn t_quantile_matches_tables() {
        // Three points, one degree of freedom: t_{0.975,1} = 12.706.
        let fit = fit_line(&[0.0, 1.0, 2.0], &[0.0, 1.0, 3.0]).unwrap();
        let t = (fit.slope_hi - fit.slope) / fit.slope_se;
        assert!((t - 12.7062).abs() < 1e-3, "{t}");
        // 10 points, 8 degrees of freedom: 2.306.
        let u: Vec<f64> = (0..10).map(f64::from).collect();
        let v: Vec<f64> = u
            .iter()
            .map(|a| a + if (*a as i32) % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let fit = fit_line(&u, &v).unwrap();
        let t = (fit.slope_hi - fit.slope) / fit.slope_se;
        assert!((t - 2.3060).abs() < 1e-3, "{t}");
    }

    #[test]
    fn linear_rate_recovers_the_contraction_factor() {
        let x: Vec<f64> = (0..40).map(|k| f64::from(k * 5)).collect();
        let y: Vec<f64> = x.iter().map(|t| 7.0 * 0.93f64.powf(*t)).collect();
        let fit = fit_linear_rate(&x, &y, Window::all()).unwrap();
        assert!((fit.factor - 0.93).abs() < 1e-12);
        assert!(fit.factor_lo <= fit.factor && fit.factor <= fit.factor_hi);
        assert!(fit.factor_hi - fit.factor_lo < 1e-10);
        // With noise the interval still brackets the factor.
        let noise = Normal::<f64>::new(0.0, 0.1).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let noisy: Vec<f64> = y.iter().map(|v| v * noise.sample(&mut rng).exp()).collect();
        let fit = fit_linear_rate(&x, &noisy, Window::all()).unwrap();
        assert!(fit.factor_lo < 0.93 && 0.93 < fit.factor_hi, "{fit:?}");
    }

    #[test]
    fn bad_input_is_an_error_naming_the_field() {
        let e = fit_power_law(&[1.0, 2.0, 3.0], &[1.0, 0.0, 1.0], Window::all()).unwrap_err();
        assert_eq!(e.field, "y");
        let e = fit_power_law(&[0.0, 2.0, 3.0], &[1.0, 1.0, 1.0], Window::all()).unwrap_err();
        assert_eq!(e.field, "x");
        let e =
            fit_power_law(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], Window::new(2.0, 3.0)).unwrap_err();
        assert_eq!(e.field, "window");
        let e = fit_line(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).unwrap_err();
        assert_eq!(e.field, "window");
        let e = fit_line(&[1.0, 2.0], &[1.0]).unwrap_err();
        assert_eq!(e.field, "fit");
        // Points outside the window may be anything.
        assert!(fit_power_law(
            &[0.0, 1.0, 2.0, 3.0],
            &[-1.0, 1.0, 2.0, 3.0],
            Window::new(1.0, 3.0)
        )
        .is_ok());
    }
}
