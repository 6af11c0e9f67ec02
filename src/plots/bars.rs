//! (c) Grouped bars: one group per task, one bar per series (for example the
//! final loss of each task under average and minimax pre-training), with an
//! optional dashed line at each series' largest value (its worst task).

use super::axis::{Axis, Scale};
use super::lines::y_label_area;
use super::table::BarTable;
use super::{
    color, draw_error, draw_legend, render, split_for_legend, Chart, FigureSize, LegendEntry,
    PlotError, Px, Rendered, Sample, GREY,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// How to draw a grouped bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSpec {
    /// For example "task i".
    pub x_label: String,
    /// For example "final loss f_i(θ_T)".
    pub y_label: String,
    pub y_scale: Scale,
    /// A dashed line per series at its largest value, labelled "max".
    pub show_max: bool,
    pub size: FigureSize,
    pub title: Option<String>,
}

impl BarSpec {
    pub fn new(x_label: &str, y_label: &str) -> Self {
        Self {
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            y_scale: Scale::Linear,
            show_max: true,
            size: FigureSize::COLUMN,
            title: None,
        }
    }
}

/// Draws a grouped bar chart; writes `<stem>.svg` and `<stem>.png`.
pub fn grouped_bar_chart(
    table: &BarTable,
    spec: &BarSpec,
    stem: &Path,
) -> Result<Rendered, PlotError> {
    let chart = BarChart::new(table, spec)?;
    render(&chart, stem, spec.size)
}

/// Reads the CSV written by [`BarTable::write_csv`] and draws it.
pub fn bar_chart_from_csv(csv: &Path, spec: &BarSpec, stem: &Path) -> Result<Rendered, PlotError> {
    grouped_bar_chart(&BarTable::read_csv(csv)?, spec, stem)
}

/// A bar to draw: group index, series index, value and error range, in plot
/// coordinates.
type PlacedBar = (usize, usize, f64, Option<(f64, f64)>);

struct BarChart<'a> {
    spec: &'a BarSpec,
    groups: Vec<String>,
    series: Vec<String>,
    bars: Vec<PlacedBar>,
    /// Largest raw value per series, in plot coordinates.
    maxima: Vec<Option<f64>>,
    y: Axis,
    skipped: usize,
}

impl<'a> BarChart<'a> {
    fn new(table: &BarTable, spec: &'a BarSpec) -> Result<Self, PlotError> {
        let mut groups: Vec<String> = Vec::new();
        let mut series: Vec<String> = Vec::new();
        for b in &table.bars {
            if !groups.contains(&b.group) {
                groups.push(b.group.clone());
            }
            if !series.contains(&b.series) {
                series.push(b.series.clone());
            }
        }
        let mut bars = Vec::new();
        let mut skipped = 0;
        let mut maxima = vec![None; series.len()];
        for b in &table.bars {
            let Some(v) = spec.y_scale.to_plot(b.value) else {
                skipped += 1;
                continue;
            };
            let g = groups.iter().position(|x| *x == b.group).unwrap_or(0);
            let s = series.iter().position(|x| *x == b.series).unwrap_or(0);
            let err = b.err.filter(|e| e.is_finite()).map(|e| {
                (
                    spec.y_scale.to_plot(b.value - e.abs()).unwrap_or(v),
                    spec.y_scale.to_plot(b.value + e.abs()).unwrap_or(v),
                )
            });
            maxima[s] = Some(maxima[s].map_or(v, |m: f64| m.max(v)));
            bars.push((g, s, v, err));
        }
        if bars.is_empty() {
            return Err(PlotError::Empty(format!(
                "no drawable bars ({skipped} skipped: non-finite, or <= 0 on a log axis)"
            )));
        }
        let mut ys: Vec<f64> = bars
            .iter()
            .flat_map(|&(_, _, v, e)| {
                let (lo, hi) = e.unwrap_or((v, v));
                [v, lo, hi]
            })
            .collect();
        // Leave headroom above the tallest bar for the max lines.
        let top = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ys.push(match spec.y_scale {
            Scale::Linear => top * 1.05,
            Scale::Log => top + 0.05,
        });
        let anchor = (spec.y_scale == Scale::Linear).then_some(0.0);
        Ok(Self {
            spec,
            groups,
            series,
            bars,
            maxima,
            y: Axis::fit(spec.y_scale, &ys, anchor),
            skipped,
        })
    }

    fn legend(&self) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.clone(),
                color: color(i),
                sample: Sample::Patch,
            })
            .collect();
        if self.spec.show_max {
            // Each dashed line has its series' colour: one entry says what they are.
            entries.push(LegendEntry {
                label: "max (dashed)".to_string(),
                color: GREY,
                sample: Sample::Line {
                    dashed: true,
                    marker: None,
                },
            });
        }
        entries
    }
}

impl Chart for BarChart<'_> {
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
        let n = self.groups.len();
        // Label at most about 12 groups.
        let every = n.div_ceil(12).max(1);
        let centres: Vec<f64> = (0..n).step_by(every).map(|g| g as f64 + 0.5).collect();
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
            .build_cartesian_2d(
                Axis::manual(0.0, n as f64, centres, 0).coord(),
                self.y.coord(),
            )
            .map_err(draw_error)?;
        let x_fmt = |v: &f64| {
            let g = (v - 0.5).round();
            if g >= 0.0 && (g as usize) < n {
                self.groups[g as usize].clone()
            } else {
                String::new()
            }
        };
        let y_fmt = |v: &f64| self.y.label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .x_desc(self.spec.x_label.as_str())
            .y_desc(self.spec.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt);
        px.style_mesh(&mut mesh);
        mesh.draw().map_err(draw_error)?;

        let k = self.series.len() as f64;
        let width = 0.8 / k;
        let base = self.y.lo.max(if self.spec.y_scale == Scale::Linear {
            0.0
        } else {
            self.y.lo
        });
        for &(g, s, v, err) in &self.bars {
            let x0 = g as f64 + 0.1 + width * s as f64;
            let x1 = x0 + width * 0.92;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, base), (x1, v)],
                    color(s).filled(),
                )))
                .map_err(draw_error)?;
            if let Some((lo, hi)) = err {
                let xc = 0.5 * (x0 + x1);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(xc, lo), (xc, hi)],
                        BLACK.stroke_width(px.u(1.0)),
                    )))
                    .map_err(draw_error)?;
            }
        }
        if self.spec.show_max {
            for (s, m) in self.maxima.iter().enumerate() {
                if let Some(m) = m {
                    chart
                        .draw_series(DashedLineSeries::new(
                            vec![(0.0, *m), (n as f64, *m)],
                            px.i(6.0),
                            px.i(4.0),
                            color(s).stroke_width(px.u(1.5)),
                        ))
                        .map_err(draw_error)?;
                }
            }
        }
        if let Some(area) = legend {
            draw_legend(&area, &entries, px)?;
        }
        Ok(self.skipped)
    }
}
