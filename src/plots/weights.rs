//! (d) Task-weight trajectories: the softmax weights p_i over iterations,
//! stacked (areas summing to one) or as lines, with a strip along the top
//! coloured by the worst task (largest loss) at each iteration.

use super::axis::{Axis, Scale};
use super::lines::y_label_area;
use super::table::WeightTable;
use super::{
    color, draw_error, draw_legend, render, split_for_legend, Chart, FigureSize, LegendEntry,
    PlotError, Px, Rendered, Sample, GREY,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Stacked areas or one line per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightStyle {
    Stacked,
    Lines,
}

/// How to draw weight trajectories.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightSpec {
    /// For example "iteration t".
    pub x_label: String,
    /// For example "task weight p_i".
    pub y_label: String,
    /// Log x drops iteration 0 (counted as skipped).
    pub x_scale: Scale,
    pub style: WeightStyle,
    /// At most this many tasks are drawn individually (those with the largest
    /// peak weight); the rest are summed into "other".
    pub top: usize,
    /// Draw the worst-task strip (needs the `loss` column).
    pub show_worst: bool,
    pub size: FigureSize,
    pub title: Option<String>,
}

impl WeightSpec {
    pub fn new(x_label: &str, y_label: &str) -> Self {
        Self {
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_scale: Scale::Linear,
            style: WeightStyle::Stacked,
            top: 6,
            show_worst: true,
            size: FigureSize::COLUMN,
            title: None,
        }
    }
}

/// Draws weight trajectories; writes `<stem>.svg` and `<stem>.png`.
pub fn weights_chart(
    table: &WeightTable,
    spec: &WeightSpec,
    stem: &Path,
) -> Result<Rendered, PlotError> {
    let chart = WeightChart::new(table, spec)?;
    render(&chart, stem, spec.size)
}

/// Reads the CSV written by [`WeightTable::write_csv`] and draws it.
pub fn weights_chart_from_csv(
    csv: &Path,
    spec: &WeightSpec,
    stem: &Path,
) -> Result<Rendered, PlotError> {
    weights_chart(&WeightTable::read_csv(csv)?, spec, stem)
}

/// Bottom and top of the worst-task strip, in weight units.
const STRIP: (f64, f64) = (1.035, 1.085);

struct WeightChart<'a> {
    spec: &'a WeightSpec,
    /// Plot x of each iteration kept, increasing.
    xs: Vec<f64>,
    /// Drawn layers: label, colour, weight at each x.
    layers: Vec<(String, RGBColor, Vec<f64>)>,
    /// Colour of the worst task at each x (`None` without losses).
    worst: Option<Vec<RGBColor>>,
    x: Axis,
    skipped: usize,
}

impl<'a> WeightChart<'a> {
    fn new(table: &WeightTable, spec: &'a WeightSpec) -> Result<Self, PlotError> {
        let mut tasks: Vec<&str> = Vec::new();
        for p in &table.points {
            if !tasks.contains(&p.task.as_str()) {
                tasks.push(&p.task);
            }
        }
        let mut iterations: Vec<f64> = table.points.iter().map(|p| p.iteration).collect();
        iterations.sort_by(f64::total_cmp);
        iterations.dedup();
        let mut skipped = 0;
        let mut xs = Vec::new();
        let mut kept = Vec::new();
        for &it in &iterations {
            match spec.x_scale.to_plot(it) {
                Some(x) => {
                    xs.push(x);
                    kept.push(it);
                }
                None => skipped += table.points.iter().filter(|p| p.iteration == it).count(),
            }
        }
        if xs.is_empty() || tasks.is_empty() {
            return Err(PlotError::Empty(format!(
                "no drawable iterations ({skipped} rows skipped)"
            )));
        }
        let m = tasks.len();
        // weight[task][k], loss[task][k]; missing rows count as 0 / unknown.
        let mut weight = vec![vec![0.0; kept.len()]; m];
        let mut loss = vec![vec![f64::NAN; kept.len()]; m];
        for p in &table.points {
            let Some(k) = kept.iter().position(|&it| it == p.iteration) else {
                continue;
            };
            let t = tasks.iter().position(|&t| t == p.task).unwrap_or(0);
            if p.weight.is_finite() {
                weight[t][k] = p.weight;
            } else {
                skipped += 1;
            }
            if let Some(l) = p.loss {
                loss[t][k] = l;
            }
        }
        // The tasks with the largest peak weight are drawn on their own.
        let mut order: Vec<usize> = (0..m).collect();
        let peak = |t: usize| weight[t].iter().copied().fold(0.0, f64::max);
        order.sort_by(|&a, &b| peak(b).total_cmp(&peak(a)).then(a.cmp(&b)));
        let shown: Vec<usize> = if m <= spec.top + 1 {
            (0..m).collect()
        } else {
            let mut top: Vec<usize> = order[..spec.top].to_vec();
            top.sort_unstable();
            top
        };
        let mut layers: Vec<(String, RGBColor, Vec<f64>)> = shown
            .iter()
            .enumerate()
            .map(|(c, &t)| (format!("task {}", tasks[t]), color(c), weight[t].clone()))
            .collect();
        let others: Vec<usize> = (0..m).filter(|t| !shown.contains(t)).collect();
        if !others.is_empty() {
            let sum: Vec<f64> = (0..kept.len())
                .map(|k| others.iter().map(|&t| weight[t][k]).sum())
                .collect();
            layers.push((format!("other ({} tasks)", others.len()), GREY, sum));
        }
        let has_losses = loss.iter().all(|l| l.iter().all(|v| !v.is_nan()));
        let worst = (spec.show_worst && has_losses).then(|| {
            (0..kept.len())
                .map(|k| {
                    let w = (0..m)
                        .max_by(|&a, &b| loss[a][k].total_cmp(&loss[b][k]))
                        .unwrap_or(0);
                    shown.iter().position(|&t| t == w).map_or(GREY, color)
                })
                .collect()
        });
        Ok(Self {
            spec,
            x: Axis::fit(spec.x_scale, &xs, None),
            xs,
            layers,
            worst,
            skipped,
        })
    }

    fn legend(&self) -> Vec<LegendEntry> {
        self.layers
            .iter()
            .map(|(label, c, _)| LegendEntry {
                label: label.clone(),
                color: *c,
                sample: match self.spec.style {
                    WeightStyle::Stacked => Sample::Patch,
                    WeightStyle::Lines => Sample::Line {
                        dashed: false,
                        marker: None,
                    },
                },
            })
            .collect()
    }
}

impl Chart for WeightChart<'_> {
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
        let top = if self.worst.is_some() {
            STRIP.1 + 0.015
        } else {
            1.02
        };
        let mut ticks = vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        if self.worst.is_some() {
            // The strip is labelled on the y axis, where a tick would be.
            ticks.push(0.5 * (STRIP.0 + STRIP.1));
        }
        let y = Axis::manual(0.0, top, ticks, 1);
        let mut builder = ChartBuilder::on(&plot);
        builder
            .margin_top(px.i(10.0))
            .margin_right(px.i(10.0))
            // The rotated y title overhangs the left edge of its label area.
            .margin_left(px.i(12.0))
            .x_label_area_size(px.i(34.0))
            .y_label_area_size(y_label_area(&plot, &y, px));
        if let Some(title) = &self.spec.title {
            builder.caption(title, px.font(12.0));
        }
        let mut chart = builder
            .build_cartesian_2d(self.x.coord(), y.coord())
            .map_err(draw_error)?;
        let x_fmt = |v: &f64| self.x.label(*v);
        let y_fmt = |v: &f64| {
            if *v > 1.0 + 1e-9 {
                "worst".to_string()
            } else {
                y.label(*v)
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.spec.x_label.as_str())
            .y_desc(self.spec.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt);
        px.style_mesh(&mut mesh);
        mesh.draw().map_err(draw_error)?;

        match self.spec.style {
            WeightStyle::Stacked => {
                let mut below = vec![0.0; self.xs.len()];
                for (_, c, w) in &self.layers {
                    let above: Vec<f64> = below.iter().zip(w).map(|(b, w)| b + w).collect();
                    let mut outline: Vec<(f64, f64)> =
                        self.xs.iter().copied().zip(above.iter().copied()).collect();
                    outline.extend(self.xs.iter().copied().zip(below.iter().copied()).rev());
                    chart
                        .draw_series(std::iter::once(Polygon::new(outline, c.mix(0.85).filled())))
                        .map_err(draw_error)?;
                    below = above;
                }
            }
            WeightStyle::Lines => {
                for (_, c, w) in &self.layers {
                    chart
                        .draw_series(LineSeries::new(
                            self.xs.iter().copied().zip(w.iter().copied()),
                            c.stroke_width(px.u(1.8)),
                        ))
                        .map_err(draw_error)?;
                }
            }
        }
        if let Some(worst) = &self.worst {
            // Each iteration's colour runs to the midpoint with its neighbours.
            let n = self.xs.len();
            for (k, strip_color) in worst.iter().enumerate() {
                let left = if k == 0 {
                    self.xs[0]
                } else {
                    0.5 * (self.xs[k - 1] + self.xs[k])
                };
                let right = if k + 1 == n {
                    self.xs[n - 1]
                } else {
                    0.5 * (self.xs[k] + self.xs[k + 1])
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(left, STRIP.0), (right, STRIP.1)],
                        strip_color.filled(),
                    )))
                    .map_err(draw_error)?;
            }
        }
        if let Some(area) = legend {
            draw_legend(&area, &entries, px)?;
        }
        Ok(self.skipped)
    }
}
