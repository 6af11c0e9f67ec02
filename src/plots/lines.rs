//! Line charts: (a) convergence curves on log-log axes with the median and a
//! quantile band over replicates and dashed bound curves; (b) generic x-y
//! lines on log or linear axes with optional error bars and markers.

use super::axis::{Axis, Scale};
use super::table::{LineTable, Role};
use super::{
    color, draw_error, draw_legend, marker_points, render, split_for_legend, Chart, FigureSize,
    LegendEntry, PlotError, Px, Rendered, Sample, GREY,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// How to draw a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSpec {
    /// Axis labels, with symbols or units, e.g. "iteration T" and
    /// "certified gap F(θ_T) − D(p)".
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    /// Quantiles of the band drawn around the median over replicates
    /// (`None`: no band).
    pub band: Option<(f64, f64)>,
    /// A marker at every measured point.
    pub markers: bool,
    /// Draw explicit `y_lo..y_hi` as error bars (otherwise as a band).
    pub error_bars: bool,
    pub size: FigureSize,
    /// Usually `None`: papers caption figures outside the image.
    pub title: Option<String>,
    /// What a dashed curve is called in the legend (`"<series>: <bound_label>"`):
    /// "bound" by default, "predicted" for predictions that are not bounds.
    pub bound_label: String,
}

impl LineSpec {
    /// Log-log convergence plot: median with a 10%-90% band, no markers.
    pub fn convergence(x_label: &str, y_label: &str) -> Self {
        Self {
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            band: Some((0.1, 0.9)),
            markers: false,
            error_bars: false,
            size: FigureSize::COLUMN,
            title: None,
            bound_label: "bound".to_string(),
        }
    }

    /// Generic x-y plot: markers, error bars where the table has them, a
    /// 10%-90% band where it has several replicates.
    pub fn xy(x_label: &str, y_label: &str, x_scale: Scale, y_scale: Scale) -> Self {
        Self {
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_scale,
            y_scale,
            band: Some((0.1, 0.9)),
            markers: true,
            error_bars: true,
            size: FigureSize::COLUMN,
            title: None,
            bound_label: "bound".to_string(),
        }
    }
}

/// (a) Convergence chart from a table: log-log, median and band per measured
/// series, dashed bounds. Writes `<stem>.svg` and `<stem>.png`.
pub fn convergence_chart(
    table: &LineTable,
    x_label: &str,
    y_label: &str,
    stem: &Path,
) -> Result<Rendered, PlotError> {
    line_chart(table, &LineSpec::convergence(x_label, y_label), stem)
}

/// (b) Generic x-y chart from a table (see [`LineSpec::xy`]).
pub fn xy_chart(table: &LineTable, spec: &LineSpec, stem: &Path) -> Result<Rendered, PlotError> {
    line_chart(table, spec, stem)
}

/// Reads the CSV written by [`LineTable::write_csv`] and draws it.
pub fn line_chart_from_csv(
    csv: &Path,
    spec: &LineSpec,
    stem: &Path,
) -> Result<Rendered, PlotError> {
    line_chart(&LineTable::read_csv(csv)?, spec, stem)
}

/// Draws any line table with the given spec.
pub fn line_chart(table: &LineTable, spec: &LineSpec, stem: &Path) -> Result<Rendered, PlotError> {
    let chart = LineChart::new(table, spec)?;
    render(&chart, stem, spec.size)
}

/// One point of a drawn curve, in plot coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CurvePoint {
    x: f64,
    y: f64,
    band: Option<(f64, f64)>,
    /// The band came from the table's `y_lo`/`y_hi` (not from replicates).
    explicit: bool,
}

#[derive(Debug, Clone)]
struct Curve {
    series: String,
    role: Role,
    color: RGBColor,
    marker: usize,
    points: Vec<CurvePoint>,
}

struct LineChart<'a> {
    spec: &'a LineSpec,
    curves: Vec<Curve>,
    x: Axis,
    y: Axis,
    skipped: usize,
}

/// Linear-interpolation quantile (type 7) of sorted values.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] + frac * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

impl<'a> LineChart<'a> {
    fn new(table: &LineTable, spec: &'a LineSpec) -> Result<Self, PlotError> {
        if table.points.is_empty() {
            return Err(PlotError::Empty("the line table has no rows".into()));
        }
        // Colours by series name, in order of first appearance; a bound shares
        // the colour of the measured series of the same name.
        let mut names: Vec<&str> = Vec::new();
        let mut keys: Vec<(&str, Role)> = Vec::new();
        for p in &table.points {
            if p.role != Role::Reference && !names.contains(&p.series.as_str()) {
                names.push(&p.series);
            }
            if !keys.contains(&(p.series.as_str(), p.role)) {
                keys.push((&p.series, p.role));
            }
        }
        let mut skipped = 0;
        let mut curves = Vec::new();
        for (series, role) in keys {
            let rows: Vec<_> = table
                .points
                .iter()
                .filter(|p| p.series == series && p.role == role)
                .collect();
            let index = names.iter().position(|n| *n == series).unwrap_or(0);
            let mut points = Vec::new();
            if role == Role::Reference {
                for r in rows {
                    match spec.x_scale.to_plot(r.x) {
                        Some(x) => points.push(CurvePoint {
                            x,
                            y: f64::NAN,
                            band: None,
                            explicit: false,
                        }),
                        None => skipped += 1,
                    }
                }
            } else {
                // Group by x (exactly equal values), in increasing x.
                let mut xs: Vec<f64> = rows.iter().map(|r| r.x).filter(|x| !x.is_nan()).collect();
                xs.sort_by(f64::total_cmp);
                xs.dedup();
                skipped += rows.iter().filter(|r| r.x.is_nan()).count();
                for x in xs {
                    let at: Vec<_> = rows.iter().filter(|r| r.x == x).collect();
                    let mut ys: Vec<f64> =
                        at.iter().map(|r| r.y).filter(|y| y.is_finite()).collect();
                    skipped += at.len() - ys.len();
                    if ys.is_empty() {
                        continue;
                    }
                    ys.sort_by(f64::total_cmp);
                    let median = quantile(&ys, 0.5);
                    let explicit = match (at.len(), at[0].y_lo, at[0].y_hi) {
                        (1, Some(lo), Some(hi)) => Some((lo, hi)),
                        _ => None,
                    };
                    let band = explicit.or_else(|| {
                        spec.band
                            .filter(|_| ys.len() > 1 && role == Role::Measured)
                            .map(|(qlo, qhi)| (quantile(&ys, qlo), quantile(&ys, qhi)))
                    });
                    let (Some(px), Some(py)) =
                        (spec.x_scale.to_plot(x), spec.y_scale.to_plot(median))
                    else {
                        skipped += ys.len();
                        continue;
                    };
                    let band = band.map(|(lo, hi)| {
                        // A band end that cannot be drawn (<= 0 on a log axis)
                        // is clipped to the median, never invented.
                        (
                            spec.y_scale.to_plot(lo).unwrap_or(py).min(py),
                            spec.y_scale.to_plot(hi).unwrap_or(py).max(py),
                        )
                    });
                    points.push(CurvePoint {
                        x: px,
                        y: py,
                        band,
                        explicit: explicit.is_some(),
                    });
                }
            }
            if !points.is_empty() {
                curves.push(Curve {
                    series: series.to_string(),
                    role,
                    color: if role == Role::Reference {
                        GREY
                    } else {
                        color(index)
                    },
                    marker: index,
                    points,
                });
            }
        }
        let plotted = curves.iter().filter(|c| c.role != Role::Reference);
        let xs: Vec<f64> = curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.x))
            .collect();
        let ys: Vec<f64> = plotted
            .flat_map(|c| c.points.iter())
            .flat_map(|p| {
                let (lo, hi) = p.band.unwrap_or((p.y, p.y));
                [p.y, lo, hi]
            })
            .collect();
        if ys.is_empty() {
            return Err(PlotError::Empty(format!(
                "no drawable points ({skipped} skipped: non-finite, or <= 0 on a log axis)"
            )));
        }
        Ok(Self {
            spec,
            x: Axis::fit(spec.x_scale, &xs, None),
            y: Axis::fit(spec.y_scale, &ys, None),
            curves,
            skipped,
        })
    }

    fn legend(&self) -> Vec<LegendEntry> {
        let has_measured = |s: &str| {
            self.curves
                .iter()
                .any(|c| c.series == s && c.role == Role::Measured)
        };
        // Where every bound has its measured series (same colour), one grey
        // dashed entry says what dashes mean: half the legend, which matters
        // at column width.
        let paired = self
            .curves
            .iter()
            .filter(|c| c.role == Role::Bound)
            .all(|c| has_measured(&c.series));
        let mut order: Vec<&Curve> = self
            .curves
            .iter()
            .filter(|c| c.role != Role::Reference && !(paired && c.role == Role::Bound))
            .collect();
        // Keep each bound next to its measured series.
        order.sort_by_key(|c| (c.marker, c.role == Role::Bound));
        order.extend(self.curves.iter().filter(|c| c.role == Role::Reference));
        let mut entries: Vec<LegendEntry> = order
            .into_iter()
            .map(|c| LegendEntry {
                label: match c.role {
                    Role::Bound if has_measured(&c.series) => {
                        format!("{}: {}", c.series, self.spec.bound_label)
                    }
                    _ => c.series.clone(),
                },
                color: c.color,
                sample: match c.role {
                    Role::Measured => Sample::Line {
                        dashed: false,
                        marker: self.spec.markers.then_some(c.marker),
                    },
                    Role::Bound => Sample::Line {
                        dashed: true,
                        marker: None,
                    },
                    Role::Reference => Sample::Dotted,
                },
            })
            .collect();
        if paired && self.curves.iter().any(|c| c.role == Role::Bound) {
            let at = entries
                .iter()
                .position(|e| e.sample == Sample::Dotted)
                .unwrap_or(entries.len());
            entries.insert(
                at,
                LegendEntry {
                    label: self.spec.bound_label.clone(),
                    color: GREY,
                    sample: Sample::Line {
                        dashed: true,
                        marker: None,
                    },
                },
            );
        }
        entries
    }
}

/// Width of the y label area: the widest tick label plus the axis title.
pub(crate) fn y_label_area<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &Axis,
    px: Px,
) -> i32 {
    let font = px.font(10.0);
    let widest = axis
        .ticks
        .iter()
        .map(|&t| {
            area.estimate_text_size(&axis.label(t), &font)
                .map(|s| s.0)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    // Tick marks, gaps and the rotated axis title.
    widest as i32 + px.i(28.0)
}

impl Chart for LineChart<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        px: Px,
    ) -> Result<usize, PlotError>
    where
        DB::ErrorType: 'static,
    {
        let entries = self.legend();
        let (plot, legend) = split_for_legend(root, &entries, px);
        let mut builder = ChartBuilder::on(&plot);
        builder
            .margin_top(px.i(10.0))
            .margin_right(px.i(10.0))
            // The rotated y title overhangs the left edge of its label area.
            .margin_left(px.i(12.0))
            .x_label_area_size(px.i(34.0))
            .y_label_area_size(y_label_area(&plot, &self.y, px));
        if let Some(title) = &self.spec.title {
            builder.caption(title, px.font(12.0));
        }
        let mut chart = builder
            .build_cartesian_2d(self.x.coord(), self.y.coord())
            .map_err(draw_error)?;
        let x_fmt = |v: &f64| self.x.label(*v);
        let y_fmt = |v: &f64| self.y.label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.spec.x_label.as_str())
            .y_desc(self.spec.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt);
        px.style_mesh(&mut mesh);
        mesh.draw().map_err(draw_error)?;

        let line_w = px.u(1.8);
        // Bands first, so lines stay on top.
        let as_bar = |p: &CurvePoint| p.explicit && self.spec.error_bars;
        for c in self.curves.iter().filter(|c| c.role == Role::Measured) {
            let banded: Vec<_> = c
                .points
                .iter()
                .filter(|p| p.band.is_some() && !as_bar(p))
                .collect();
            if banded.len() >= 2 {
                let mut outline: Vec<(f64, f64)> = banded
                    .iter()
                    .map(|p| (p.x, p.band.map_or(p.y, |b| b.1)))
                    .collect();
                outline.extend(
                    banded
                        .iter()
                        .rev()
                        .map(|p| (p.x, p.band.map_or(p.y, |b| b.0))),
                );
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        outline,
                        c.color.mix(0.18).filled(),
                    )))
                    .map_err(draw_error)?;
            }
        }
        for c in &self.curves {
            let pts: Vec<(f64, f64)> = c.points.iter().map(|p| (p.x, p.y)).collect();
            match c.role {
                Role::Bound => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            pts,
                            px.i(6.0),
                            px.i(4.0),
                            c.color.stroke_width(px.u(1.5)),
                        ))
                        .map_err(draw_error)?;
                }
                Role::Reference => {
                    for p in &c.points {
                        chart
                            .draw_series(DashedLineSeries::new(
                                vec![(p.x, self.y.lo), (p.x, self.y.hi)],
                                px.i(2.0),
                                px.i(3.0),
                                c.color.stroke_width(px.u(1.5)),
                            ))
                            .map_err(draw_error)?;
                    }
                }
                Role::Measured => {
                    {
                        let cap = px.i(3.0);
                        for p in c.points.iter().filter(|p| p.band.is_some() && as_bar(p)) {
                            let (lo, hi) = p.band.unwrap_or((p.y, p.y));
                            let style = c.color.stroke_width(px.u(1.2));
                            chart
                                .draw_series(std::iter::once(PathElement::new(
                                    vec![(p.x, lo), (p.x, hi)],
                                    style,
                                )))
                                .map_err(draw_error)?;
                            for end in [lo, hi] {
                                chart
                                    .draw_series(std::iter::once(
                                        EmptyElement::at((p.x, end))
                                            + PathElement::new(vec![(-cap, 0), (cap, 0)], style),
                                    ))
                                    .map_err(draw_error)?;
                            }
                        }
                    }
                    chart
                        .draw_series(LineSeries::new(pts.clone(), c.color.stroke_width(line_w)))
                        .map_err(draw_error)?;
                    if self.spec.markers {
                        let shape = marker_points(c.marker, px);
                        chart
                            .draw_series(pts.iter().map(|&p| {
                                EmptyElement::at(p) + Polygon::new(shape.clone(), c.color.filled())
                            }))
                            .map_err(draw_error)?;
                    }
                }
            }
        }
        if let Some(area) = legend {
            draw_legend(&area, &entries, px)?;
        }
        Ok(self.skipped)
    }
}
