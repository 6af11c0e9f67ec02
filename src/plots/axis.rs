//! Axis ranges and ticks. Log axes are drawn on log10-transformed values, so
//! every chart uses one coordinate type and ticks sit exactly on decades.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// How an axis maps data to the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    #[default]
    Linear,
    Log,
}

impl Scale {
    /// Data value to plot coordinate; `None` where the value cannot be drawn
    /// (non-finite, or <= 0 on a log axis).
    pub fn to_plot(self, v: f64) -> Option<f64> {
        match self {
            Scale::Linear if v.is_finite() => Some(v),
            Scale::Log if v.is_finite() && v > 0.0 => Some(v.log10()),
            _ => None,
        }
    }
}

/// A resolved axis: range and ticks in plot coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    pub scale: Scale,
    pub lo: f64,
    pub hi: f64,
    /// Labelled ticks (and major grid lines).
    pub ticks: Vec<f64>,
    /// Unlabelled minor grid lines.
    pub minor: Vec<f64>,
    /// Decimal places for linear tick labels.
    decimals: usize,
}

impl Axis {
    /// An axis covering the plot coordinates `values` (already transformed),
    /// optionally forced to include `anchor` (for example 0 for bars).
    pub fn fit(scale: Scale, values: &[f64], anchor: Option<f64>) -> Self {
        let mut lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if let Some(a) = anchor {
            lo = lo.min(a);
            hi = hi.max(a);
        }
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        match scale {
            Scale::Log => Self::log(lo, hi),
            Scale::Linear => Self::linear(lo, hi),
        }
    }

    fn log(lo: f64, hi: f64) -> Self {
        // At least a factor of 2 in range, plus 4% padding so that markers at
        // the extremes are not cut by the frame.
        let (mut lo, mut hi) = (lo, hi);
        if hi - lo < 0.3 {
            let centre = 0.5 * (lo + hi);
            (lo, hi) = (centre - 0.15, centre + 0.15);
        }
        let pad = 0.04 * (hi - lo);
        (lo, hi) = (lo - pad, hi + pad);
        let inside = |v: &f64| *v >= lo - 1e-12 && *v <= hi + 1e-12;
        let all_steps = |mantissas: &[u32]| -> Vec<f64> {
            (lo.floor() as i64..=hi.ceil() as i64)
                .flat_map(|k| {
                    mantissas
                        .iter()
                        .map(move |&j| k as f64 + f64::from(j).log10())
                })
                .filter(inside)
                .collect()
        };
        let decades = all_steps(&[1]);
        let (ticks, minor) = if decades.len() >= 2 {
            // At most 7 labelled decades.
            let every = decades.len().div_ceil(7);
            let ticks: Vec<f64> = decades.iter().copied().step_by(every).collect();
            let minor: Vec<f64> = if hi - lo <= 6.5 {
                all_steps(&[2, 3, 4, 5, 6, 7, 8, 9])
            } else {
                decades
                    .iter()
                    .copied()
                    .filter(|d| !ticks.contains(d))
                    .collect()
            };
            (ticks, minor)
        } else {
            // Less than a decade: label 1-2-5 steps, or every integer mantissa.
            let mut ticks = all_steps(&[1, 2, 5]);
            if ticks.len() < 3 {
                ticks = all_steps(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
            }
            let minor = all_steps(&[1, 2, 3, 4, 5, 6, 7, 8, 9])
                .into_iter()
                .filter(|v| !ticks.contains(v))
                .collect();
            (ticks, minor)
        };
        Self {
            scale: Scale::Log,
            lo,
            hi,
            ticks,
            minor,
            decimals: 0,
        }
    }

    fn linear(lo: f64, hi: f64) -> Self {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            let pad = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
            (lo - pad, hi + pad)
        };
        let step = nice_step((hi - lo) / 5.0);
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        let ticks: Vec<f64> = (first as i64..=last as i64)
            .map(|k| k as f64 * step)
            .collect();
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10()).ceil().max(0.0) as usize
        };
        let minor = ticks.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        Self {
            scale: Scale::Linear,
            lo: first * step,
            hi: last * step,
            ticks,
            minor,
            decimals,
        }
    }

    /// A linear axis with given range and ticks.
    pub fn manual(lo: f64, hi: f64, ticks: Vec<f64>, decimals: usize) -> Self {
        Self {
            scale: Scale::Linear,
            lo,
            hi,
            ticks,
            minor: Vec::new(),
            decimals,
        }
    }

    /// The plotters coordinate of this axis: linear in plot coordinates, with
    /// exactly these ticks (bold) and minor lines (light).
    pub fn coord(&self) -> Ticked {
        Ticked {
            lo: self.lo,
            hi: self.hi,
            bold: self.ticks.clone(),
            light: self.minor.clone(),
        }
    }

    /// Tick label for a plot coordinate.
    pub fn label(&self, v: f64) -> String {
        match self.scale {
            Scale::Log => {
                let k = (v + 1e-9).floor();
                let mantissa = 10f64.powf(v - k);
                let j = mantissa.round();
                if (mantissa - j).abs() > 1e-6 {
                    String::new()
                } else if j == 1.0 || j == 10.0 {
                    format!("10{}", superscript(k as i64 + i64::from(j == 10.0)))
                } else {
                    format!("{j}×10{}", superscript(k as i64))
                }
            }
            Scale::Linear => {
                let magnitude = self.lo.abs().max(self.hi.abs());
                if magnitude >= 1e5 || (magnitude < 1e-3 && magnitude > 0.0) {
                    format!("{v:.1e}")
                } else {
                    let s = format!("{:.*}", self.decimals, v);
                    // Avoid "-0".
                    if s.trim_start_matches('-')
                        .chars()
                        .all(|c| c == '0' || c == '.')
                    {
                        s.trim_start_matches('-').to_string()
                    } else {
                        s
                    }
                }
            }
        }
    }
}

/// A linear plotters coordinate with fixed key points. (plotters' own
/// `WithKeyPoints<RangedCoordf64>` has no default value formatter, which its
/// mesh needs even when a label formatter is given.)
#[derive(Debug, Clone)]
pub(crate) struct Ticked {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * t + 1e-3).floor() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * p
}

/// An integer in Unicode superscript digits (DejaVu Sans has them).
pub(crate) fn superscript(k: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut out = String::new();
    if k < 0 {
        out.push('⁻');
    }
    for c in k.unsigned_abs().to_string().chars() {
        out.push(DIGITS[c.to_digit(10).unwrap_or(0) as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_covers_whole_decades() {
        let (lo, hi) = ((3e-4f64).log10(), (20.0f64).log10());
        let a = Axis::fit(Scale::Log, &[lo, hi], None);
        // Padded by 4% on each side, ticks on the decades inside.
        assert!(a.lo < lo && a.lo > lo - 0.3 && a.hi > hi && a.hi < hi + 0.3);
        assert_eq!(a.ticks, vec![-3.0, -2.0, -1.0, 0.0, 1.0]);
        assert_eq!(a.label(-3.0), "10⁻³");
        assert_eq!(a.label(-2.5), "");
        assert_eq!(a.label(2f64.log10() - 3.0), "2×10⁻³");
        assert!(a.minor.iter().all(|v| *v > a.lo && *v < a.hi));
        let wide = Axis::fit(Scale::Log, &[-12.0, 3.0], None);
        assert!(
            wide.ticks.len() <= 7 && wide.ticks.len() >= 5,
            "{:?}",
            wide.ticks
        );
        // Less than a decade: 1-2-5 ticks.
        let narrow = Axis::fit(Scale::Log, &[0.2, 0.9], None);
        assert!(narrow.ticks.len() >= 3, "{:?}", narrow.ticks);
        assert!(narrow.ticks.iter().all(|t| !narrow.label(*t).is_empty()));
    }

    #[test]
    fn linear_axis_has_nice_ticks() {
        let a = Axis::fit(Scale::Linear, &[0.13, 0.87], Some(0.0));
        assert_eq!(a.lo, 0.0);
        assert!((a.hi - 1.0).abs() < 1e-12);
        assert_eq!(a.label(0.2), "0.2");
        let flat = Axis::fit(Scale::Linear, &[5.0, 5.0], None);
        assert!(flat.lo < 5.0 && flat.hi > 5.0);
        assert_eq!(
            Axis::fit(Scale::Linear, &[-1.0, 1.0], None).label(-0.0),
            "0.0"
        );
    }

    #[test]
    fn unplottable_values_are_dropped() {
        assert_eq!(Scale::Log.to_plot(0.0), None);
        assert_eq!(Scale::Log.to_plot(-1.0), None);
        assert_eq!(Scale::Linear.to_plot(f64::NAN), None);
        assert_eq!(Scale::Log.to_plot(100.0), Some(2.0));
    }
}
