//! Publication figures, drawn from tidy tables (CSV written first).
//!
//! Four chart kinds, one per file:
//! - [`lines::convergence_chart`]: log-log lines with the median and a
//!   quantile band over replicates, and dashed bound curves (gap against T);
//! - [`lines::xy_chart`]: generic x-y lines on log or linear axes, with
//!   optional error bars and markers (gap against M, gap against mu);
//! - [`bars::grouped_bar_chart`]: grouped bars (per-task final losses,
//!   average against minimax);
//! - [`weights::weights_chart`]: task-weight trajectories (stacked or lines),
//!   with a strip marking the worst task.
//!
//! Every chart is written as SVG, PDF (vector, fonts embedded, the size of
//! the [`Style`] preset in force) and PNG, with the embedded DejaVu Sans
//! font, to temporary files renamed only on success. The legend sits outside
//! the plot area, so it never covers data.

mod axis;
pub mod bars;
pub mod lines;
pub mod pdf;
pub mod style;
pub mod table;
pub mod weights;

pub use axis::Scale;
pub use style::{with_context, FigureContext, FigureSize, Style};
pub use table::{Bar, BarTable, LinePoint, LineTable, Role, WeightPoint, WeightTable};

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Csv(String, String),
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("nothing to plot: {0}")]
    Empty(String),
    #[error("font: {0}")]
    Font(String),
}

impl PlotError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        Self::Io(path.display().to_string(), e)
    }
}

pub(crate) fn draw_error<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The files a chart produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub svg: PathBuf,
    pub png: PathBuf,
    pub pdf: PathBuf,
    /// Points left out because they cannot be drawn (y <= 0 on a log axis, NaN).
    pub skipped_points: usize,
}

/// Registers the embedded DejaVu Sans as "sans-serif" (once per process).
pub fn register_fonts() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                dejavu::sans::regular(),
            )
            .map_err(|_| "DejaVu Sans regular".to_string())?;
            plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| "DejaVu Sans bold".to_string())?;
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Oblique,
                dejavu::sans::oblique(),
            )
            .map_err(|_| "DejaVu Sans oblique".to_string())
        })
        .clone()
        .map_err(|what| PlotError::Font(format!("could not register {what}")))
}

/// Colour-blind-safe palette (Okabe and Ito, without the yellow).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Neutral grey for "other" and reference marks.
pub const GREY: RGBColor = RGBColor(120, 120, 120);

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Pixel sizes scaled for the backend (1 for SVG, `png_scale` for PNG).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Px(pub f64);

impl Px {
    pub fn i(self, v: f64) -> i32 {
        (v * self.0).round() as i32
    }
    pub fn u(self, v: f64) -> u32 {
        (v * self.0).round().max(1.0) as u32
    }
    pub fn font(self, size: f64) -> TextStyle<'static> {
        ("sans-serif", size * self.0).into_font().color(&BLACK)
    }

    /// The house style of every chart's mesh: fonts, grid lines, axis, ticks.
    pub fn style_mesh<X, Y, XT, YT, DB>(self, mesh: &mut MeshStyle<'_, '_, X, Y, DB>)
    where
        X: Ranged<ValueType = XT> + ValueFormatter<XT>,
        Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
        DB: DrawingBackend,
    {
        mesh.label_style(self.font(10.0))
            .axis_desc_style(self.font(11.0))
            .bold_line_style(BLACK.mix(0.10).stroke_width(self.u(1.0)))
            .light_line_style(BLACK.mix(0.04).stroke_width(self.u(1.0)))
            .axis_style(BLACK.stroke_width(self.u(1.0)))
            .set_all_tick_mark_size(self.i(4.0));
    }
}

/// A chart that can draw itself on any backend.
pub(crate) trait Chart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        px: Px,
    ) -> Result<usize, PlotError>
    where
        DB::ErrorType: 'static;
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renders `chart` to `<stem>.svg`, `<stem>.pdf` and `<stem>.png`, sized by
/// the style of the current [`FigureContext`].
pub(crate) fn render(
    chart: &impl Chart,
    stem: &Path,
    size: FigureSize,
) -> Result<Rendered, PlotError> {
    register_fonts()?;
    let context = style::current_context();
    let canvas = context.style.canvas(size);
    let svg_path = with_suffix(stem, ".svg");
    let pdf_path = with_suffix(stem, ".pdf");
    let png_path = with_suffix(stem, ".png");
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| PlotError::io(dir, e))?;
    }

    let mut svg = String::new();
    let skipped = {
        let root = SVGBackend::with_string(&mut svg, canvas.svg).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let skipped = chart.draw(&root, Px(canvas.svg_scale))?;
        root.present().map_err(draw_error)?;
        skipped
    };
    let title = stem
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let pdf = pdf::svg_to_pdf(
        &svg,
        canvas.page_pt,
        &pdf::PdfInfo {
            title: &title,
            keywords: &context.manifest,
        },
    )?;
    crate::report::write_atomic(&svg_path, svg.as_bytes())
        .map_err(|e| PlotError::io(&svg_path, e))?;
    crate::report::write_atomic(&pdf_path, &pdf).map_err(|e| PlotError::io(&pdf_path, e))?;

    // The bitmap backend picks its encoder from the extension, so the
    // temporary file keeps ".png"; it is renamed only after a clean present().
    let tmp = crate::report::temp_path(&png_path, ".tmp.png");
    let result = (|| {
        let root = BitMapBackend::new(&tmp, canvas.png).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        chart.draw(&root, Px(canvas.png_scale))?;
        root.present().map_err(draw_error)
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, &png_path).map_err(|e| PlotError::io(&png_path, e))?,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(Rendered {
        svg: svg_path,
        png: png_path,
        pdf: pdf_path,
        skipped_points: skipped,
    })
}

/// How a legend entry's sample is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sample {
    Line { dashed: bool, marker: Option<usize> },
    Dotted,
    Patch,
}

#[derive(Debug, Clone)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub sample: Sample,
}

const LEGEND_FONT: f64 = 10.0;
const SAMPLE_W: f64 = 22.0;
const ROW_H: f64 = 13.0;

/// Where the legend went: a panel right of the plot when the labels are
/// short, otherwise a strip of columns above it. Never on the data.
pub(crate) struct Legend<DB: DrawingBackend> {
    area: DrawingArea<DB, Shift>,
    columns: usize,
    /// Width of one column in backend pixels.
    column_w: f64,
    /// Offset of the first row from the top, in unscaled pixels.
    top: f64,
}

/// Splits `root` into the plot area and the legend.
pub(crate) fn split_for_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    px: Px,
) -> (DrawingArea<DB, Shift>, Option<Legend<DB>>) {
    if entries.is_empty() {
        return (root.clone(), None);
    }
    let font = px.font(LEGEND_FONT);
    let widest = entries
        .iter()
        .map(|e| {
            root.estimate_text_size(&e.label, &font)
                .map(|s| s.0)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0) as f64;
    let (w, _) = root.dim_in_pixel();
    let w = f64::from(w);
    let entry_w = widest + px.0 * (SAMPLE_W + 18.0);
    if entry_w <= 0.30 * w {
        let (plot, area) = root.split_horizontally((w - entry_w).floor() as i32);
        let legend = Legend {
            area,
            columns: 1,
            column_w: entry_w,
            top: 10.0,
        };
        return (plot, Some(legend));
    }
    let usable = w - px.0 * 16.0;
    let columns = ((usable / entry_w).floor() as usize).clamp(1, entries.len());
    let rows = entries.len().div_ceil(columns);
    let height = px.0 * (6.0 + ROW_H * rows as f64);
    let (area, plot) = root.split_vertically(height.ceil() as i32);
    let column_w = usable / columns as f64;
    (
        plot,
        Some(Legend {
            area,
            columns,
            column_w,
            top: 2.0,
        }),
    )
}

/// Draws the legend entries.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    legend: &Legend<DB>,
    entries: &[LegendEntry],
    px: Px,
) -> Result<(), PlotError> {
    let area = &legend.area;
    let font = px.font(LEGEND_FONT);
    for (k, e) in entries.iter().enumerate() {
        let (col, row) = (k % legend.columns, k / legend.columns);
        let x0 = px.0 * 8.0 + col as f64 * legend.column_w;
        let y = px.0 * (legend.top + ROW_H * row as f64 + ROW_H / 2.0);
        let (x0, y) = (x0.round() as i32, y.round() as i32);
        let x1 = x0 + px.i(SAMPLE_W);
        let stroke = px.u(1.8);
        match e.sample {
            Sample::Line { dashed, marker } => {
                if dashed {
                    area.draw(&DashedPathElement::new(
                        vec![(x0, y), (x1, y)],
                        px.i(5.0),
                        px.i(3.0),
                        e.color.stroke_width(stroke),
                    ))
                    .map_err(draw_error)?;
                } else {
                    area.draw(&PathElement::new(
                        vec![(x0, y), (x1, y)],
                        e.color.stroke_width(stroke),
                    ))
                    .map_err(draw_error)?;
                }
                if let Some(shape) = marker {
                    draw_marker(area, ((x0 + x1) / 2, y), shape, e.color, px)?;
                }
            }
            Sample::Dotted => {
                area.draw(&DashedPathElement::new(
                    vec![(x0, y), (x1, y)],
                    px.i(2.0),
                    px.i(2.0),
                    e.color.stroke_width(stroke),
                ))
                .map_err(draw_error)?;
            }
            Sample::Patch => {
                area.draw(&Rectangle::new(
                    [
                        (x0 + px.i(4.0), y - px.i(5.0)),
                        (x1 - px.i(4.0), y + px.i(5.0)),
                    ],
                    e.color.filled(),
                ))
                .map_err(draw_error)?;
            }
        }
        area.draw(&Text::new(
            e.label.clone(),
            (x1 + px.i(5.0), y),
            font.pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            )),
        ))
        .map_err(draw_error)?;
    }
    Ok(())
}

/// Marker shapes, cycled per series so lines stay apart in greyscale:
/// circle, triangle, square, diamond. Offsets in pixels around the point.
pub(crate) fn marker_points(shape: usize, px: Px) -> Vec<(i32, i32)> {
    let r = px.i(3.2);
    match shape % 4 {
        0 => (0..16)
            .map(|k| {
                let a = f64::from(k) * std::f64::consts::PI / 8.0;
                (
                    (f64::from(r) * a.cos()).round() as i32,
                    (f64::from(r) * a.sin()).round() as i32,
                )
            })
            .collect(),
        1 => vec![(0, -r - 1), (r + 1, r), (-r - 1, r)],
        2 => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
        _ => vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
    }
}

/// Draws one marker at a pixel position of `area`.
pub(crate) fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    shape: usize,
    color: RGBColor,
    px: Px,
) -> Result<(), PlotError> {
    area.draw(&(EmptyElement::at(at) + Polygon::new(marker_points(shape, px), color.filled())))
        .map_err(draw_error)
}

#[cfg(test)]
mod tests {
    use super::bars::{grouped_bar_chart, BarSpec};
    use super::lines::{convergence_chart, line_chart_from_csv, xy_chart, LineSpec};
    use super::weights::{weights_chart, WeightSpec, WeightStyle};
    use super::*;

    /// Output folder; set TASKROBUST_KEEP_PLOTS=1 to keep the files for viewing.
    fn out_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("taskrobust-plots-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn finish(dir: &Path) {
        if std::env::var_os("TASKROBUST_KEEP_PLOTS").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            eprintln!("plots kept in {}", dir.display());
        }
    }

    fn assert_nontrivial(r: &Rendered) {
        let png = std::fs::read(&r.png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", r.png.display());
        // A blank 960x720 PNG compresses to a few kB; a drawn chart is larger.
        assert!(
            png.len() > 20_000,
            "{}: {} bytes",
            r.png.display(),
            png.len()
        );
        let svg = std::fs::read_to_string(&r.svg).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
        assert!(
            svg.matches("<polyline").count()
                + svg.matches("<path").count()
                + svg.matches("<rect").count()
                >= 10
        );
        assert!(svg.contains("<text"));
        // No temporary files left next to the outputs.
        let dir = r.png.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp"), "leftover {name}");
        }
    }

    fn noise(seed: u64, k: usize) -> f64 {
        // Deterministic multiplicative scatter in [0.8, 1.25].
        let h = (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add((k as u64).wrapping_mul(1442695040888963407)))
            >> 33;
        (0.8f64).powf(1.0 - 2.0 * (h % 1000) as f64 / 1000.0)
    }

    #[test]
    fn every_chart_kind_renders_nontrivial_svg_and_png() {
        let dir = out_dir("kinds");

        // (a) convergence: two methods over three seeds, with their bounds.
        let mut table = LineTable::new();
        let ts: Vec<f64> = (0..=24).map(|k| 10f64.powf(k as f64 / 6.0)).collect();
        for seed in 0..3u64 {
            for (k, &t) in ts.iter().enumerate() {
                table.measured(
                    "softmax-gd (tuned μ)",
                    seed,
                    t,
                    0.4 / t.sqrt() * noise(seed, k),
                );
                table.measured(
                    "subgradient",
                    seed,
                    t,
                    0.9 / t.sqrt() * noise(seed + 7, k) + 1e-4,
                );
            }
        }
        for &t in &ts {
            table.bound("softmax-gd (tuned μ)", t, 2.0 / t + 1.2 / t.sqrt());
            table.bound("subgradient", t, 2.5 / t.sqrt());
        }
        let csv = dir.join("gap_vs_t.csv");
        table.write_csv(&csv).unwrap();
        let r = line_chart_from_csv(
            &csv,
            &LineSpec::convergence("iteration T", "certified gap F(θ_T) − D(p_T)"),
            &dir.join("gap_vs_t"),
        )
        .unwrap();
        assert_nontrivial(&r);
        assert_eq!(r.skipped_points, 0);
        let again =
            convergence_chart(&table, "iteration T", "gap", &dir.join("gap_vs_t_direct")).unwrap();
        assert_nontrivial(&again);

        // (b) gap against mu: U shape with error bars and the predicted best mu.
        let mut sweep = LineTable::new();
        for k in 0..13 {
            let mu = 10f64.powf(-4.0 + k as f64 / 3.0);
            let gap = mu * 2.0f64.ln() * 3.0 + 1e-3 / mu;
            sweep.with_error("measured gap", mu, gap, gap * 0.85, gap * 1.2);
            sweep.bound("measured gap", mu, mu * 8f64.ln() + 4e-3 / mu);
        }
        sweep.reference("predicted best μ*", 0.012);
        let spec = LineSpec::xy("temperature μ", "gap at T = 1000", Scale::Log, Scale::Log);
        let r = xy_chart(&sweep, &spec, &dir.join("gap_vs_mu")).unwrap();
        assert_nontrivial(&r);

        // (b) gap against M on a linear y axis, several series with markers.
        let mut by_m = LineTable::new();
        for (s, name) in ["quadratic", "least squares", "logistic"]
            .iter()
            .enumerate()
        {
            for k in 1..=10 {
                let m = (1u64 << k) as f64;
                for seed in 0..3 {
                    by_m.measured(
                        name,
                        seed,
                        m,
                        (0.02 + 0.01 * s as f64) * m.ln().sqrt() * noise(seed, k),
                    );
                }
            }
        }
        let spec = LineSpec::xy(
            "number of tasks M",
            "suboptimality at T = 2000",
            Scale::Log,
            Scale::Linear,
        );
        assert_nontrivial(&xy_chart(&by_m, &spec, &dir.join("gap_vs_m")).unwrap());

        // (c) grouped bars: average against minimax per task.
        let mut bars = BarTable::new();
        for i in 0..8 {
            let task = format!("{}", i + 1);
            bars.push(&task, "average", 0.2 + 0.08 * ((i * 5) % 8) as f64, None);
            bars.push(
                &task,
                "minimax",
                0.45 + 0.02 * ((i * 3) % 8) as f64,
                Some(0.01),
            );
        }
        let r = grouped_bar_chart(
            &bars,
            &BarSpec::new("task i", "final loss f_i(θ)"),
            &dir.join("losses"),
        )
        .unwrap();
        assert_nontrivial(&r);

        // (d) weights: 10 tasks (top 6 drawn, the rest as "other"), with losses.
        let mut weights = WeightTable::new();
        for t in 0..200 {
            let losses: Vec<f64> = (0..10)
                .map(|i| {
                    1.0 + 0.3 * ((i as f64 + 1.0) * 0.7 + t as f64 * 0.02 * (i % 3) as f64).sin()
                        / (1.0 + i as f64)
                })
                .collect();
            let p = crate::numerics::softmax(&losses, 0.1);
            weights.push_iteration(t as f64, &p, Some(&losses));
        }
        let csv = dir.join("weights.csv");
        weights.write_csv(&csv).unwrap();
        let table = WeightTable::read_csv(&csv).unwrap();
        let mut spec = WeightSpec::new("iteration t", "task weight p_i");
        let r = weights_chart(&table, &spec, &dir.join("weights_stacked")).unwrap();
        assert_nontrivial(&r);
        spec.style = WeightStyle::Lines;
        assert_nontrivial(&weights_chart(&table, &spec, &dir.join("weights_lines")).unwrap());
        finish(&dir);
    }

    #[test]
    fn empty_or_undrawable_tables_are_errors_and_leave_no_files() {
        let dir = out_dir("empty");
        let stem = dir.join("nothing");
        let err = convergence_chart(&LineTable::new(), "x", "y", &stem).unwrap_err();
        assert!(matches!(err, PlotError::Empty(_)));
        let mut zeros = LineTable::new();
        zeros.measured("a", 0, 1.0, 0.0).measured("a", 0, 2.0, -1.0);
        assert!(matches!(
            convergence_chart(&zeros, "x", "y", &stem),
            Err(PlotError::Empty(_))
        ));
        assert!(grouped_bar_chart(&BarTable::new(), &BarSpec::new("x", "y"), &stem).is_err());
        assert!(weights_chart(&WeightTable::new(), &WeightSpec::new("x", "y"), &stem).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // Points that cannot be drawn on a log axis are counted, not invented.
        let mut some = LineTable::new();
        some.measured("a", 0, 1.0, 1.0)
            .measured("a", 0, 2.0, 0.0)
            .measured("a", 0, 3.0, 0.1);
        let r = convergence_chart(&some, "x", "y", &stem).unwrap();
        assert_eq!(r.skipped_points, 1);
        finish(&dir);
    }
}
