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
    pub lo: f64,
    pub hi: f64,
}

impl Window {
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

    pub fn contains(&self, x: f64) -> bool {
        x >= self.lo && x <= self.hi
    }
}

/// Ordinary least squares `v = intercept + slope * u` with a t interval on the slope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope.
    pub slope_se: f64,
    /// 95% interval `slope -+ t_{0.975, n-2} * slope_se`.
    pub slope_lo: f64,
    pub slope_hi: f64,
    /// Points used.
    pub n: usize,
    /// Coefficient of determination (1 for an exact line).
    pub r_squared: f64,
}

/// Fit of `log y = intercept + slope * log x`: `y ~ exp(intercept) x^slope`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    pub line: LineFit,
    /// The window asked for.
    pub window: Window,
    /// Smallest and largest x actually used.
    pub x_min: f64,
    pub x_max: f64,
}

impl PowerLawFit {
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
    pub line: LineFit,
    pub window: Window,
    pub x_min: f64,
    pub x_max: f64,
    /// `exp(slope)`: the fitted contraction factor per unit of x.
    pub factor: f64,
    /// The 95% interval of the factor, `(exp(slope_lo), exp(slope_hi))`.
    pub factor_lo: f64,
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
