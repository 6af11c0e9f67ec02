//! Style presets: the printed size of a figure and the size of its text.
//!
//! Charts are drawn in *units*: the house fonts are asked for at 10 units
//! (tick labels, legend) and 11 units (axis titles), lines 1 to 1.8 units.
//! plotters sets a font of size s at an em of s/1.24, so the printed text is
//! [`FONT_EM_PER_SIZE`] times the size asked for. A preset fixes the printed
//! width and how many points one unit is, so a figure included at its natural
//! size (`\includegraphics{fig.pdf}`, the preset's width) has text of the
//! preset's size with no scaling.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

/// PostScript points per inch (PDF user space).
pub const POINTS_PER_INCH: f64 = 72.0;

/// The em of a plotters font over the size asked for (plotters divides by 1.24).
pub const FONT_EM_PER_SIZE: f64 = 1.0 / 1.24;

/// The house font sizes, in units: tick labels and legend, axis titles.
pub const HOUSE_FONT_SIZES: [f64; 2] = [10.0, 11.0];

/// Where a figure goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// One column of a two-column paper: 3.25 in wide, text at 8.1 to 8.9 pt.
    #[default]
    PaperSingle,
    /// The full text width of a two-column paper: 6.75 in wide, text at 8.5 to 9.3 pt.
    PaperDouble,
    /// A 16:9 beamer slide (160 mm x 90 mm): 5.5 in wide, text at 10.5 to 11.5 pt.
    Slides,
}

impl Style {
    pub const ALL: [Style; 3] = [Style::PaperSingle, Style::PaperDouble, Style::Slides];

    pub fn name(self) -> &'static str {
        match self {
            Style::PaperSingle => "paper-single",
            Style::PaperDouble => "paper-double",
            Style::Slides => "slides",
        }
    }

    /// Printed width in inches.
    pub fn width_in(self) -> f64 {
        match self {
            Style::PaperSingle => 3.25,
            Style::PaperDouble => 6.75,
            Style::Slides => 5.5,
        }
    }

    /// Points per drawing unit.
    pub fn unit_pt(self) -> f64 {
        match self {
            Style::PaperSingle => 1.0,
            Style::PaperDouble => 1.05,
            Style::Slides => 1.3,
        }
    }

    /// The printed sizes of the house fonts, in points.
    pub fn text_pt(self) -> [f64; 2] {
        HOUSE_FONT_SIZES.map(|size| size * FONT_EM_PER_SIZE * self.unit_pt())
    }

    /// Height over width for a chart of the given shape.
    pub fn aspect(self, shape: FigureSize) -> f64 {
        match (self, shape) {
            (Style::PaperSingle, FigureSize::Column) => 0.75,
            (Style::PaperSingle, FigureSize::Wide) => 0.8,
            (Style::PaperDouble, FigureSize::Column) => 0.42,
            (Style::PaperDouble, FigureSize::Wide) => 0.5,
            (Style::Slides, _) => 0.62,
        }
    }

    /// The LaTeX float a figure of this preset goes in.
    pub fn latex_float(self) -> &'static str {
        match self {
            Style::PaperDouble => "figure*",
            _ => "figure",
        }
    }

    /// The canvas a chart of `shape` is drawn on.
    pub fn canvas(self, shape: FigureSize) -> Canvas {
        let width_pt = self.width_in() * POINTS_PER_INCH;
        let units_wide = width_pt / self.unit_pt();
        let units_high = units_wide * self.aspect(shape);
        let svg = (
            (units_wide * SVG_PIXELS_PER_UNIT).round() as u32,
            (units_high * SVG_PIXELS_PER_UNIT).round() as u32,
        );
        // PNG at PNG_DPI of the printed size.
        let png_scale = PNG_DPI / POINTS_PER_INCH * self.unit_pt();
        Canvas {
            svg,
            svg_scale: SVG_PIXELS_PER_UNIT,
            png: (
                (units_wide * png_scale).round() as u32,
                (units_high * png_scale).round() as u32,
            ),
            png_scale,
            page_pt: (width_pt, width_pt * f64::from(svg.1) / f64::from(svg.0)),
        }
    }
}

/// SVG pixels per drawing unit: plotters rounds coordinates to whole pixels,
/// so two per unit keep lines and markers smooth in the vector outputs.
const SVG_PIXELS_PER_UNIT: f64 = 2.0;
/// Resolution of the PNGs (for README and REPORT.md, not for print).
const PNG_DPI: f64 = 250.0;

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Style {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Style::ALL
            .into_iter()
            .find(|style| style.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Style::ALL.iter().map(|s| s.name()).collect();
                format!("unknown style {s:?}; expected one of {}", names.join(", "))
            })
    }
}

impl<'de> serde::Deserialize<'de> for Style {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The shape a chart asks for; the style turns it into a printed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FigureSize {
    /// Roughly 4:3 (convergence plots, bars).
    #[default]
    Column,
    /// Wider, for charts with long axes or many groups.
    Wide,
}

impl FigureSize {
    /// The usual shape.
    pub const COLUMN: FigureSize = FigureSize::Column;
    /// The wide shape.
    pub const WIDE: FigureSize = FigureSize::Wide;
}

/// Pixel sizes of one chart under one style.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canvas {
    /// SVG size in pixels.
    pub svg: (u32, u32),
    /// SVG pixels per drawing unit.
    pub svg_scale: f64,
    /// PNG size in pixels.
    pub png: (u32, u32),
    /// PNG pixels per drawing unit.
    pub png_scale: f64,
    /// PDF page size in points.
    pub page_pt: (f64, f64),
}

/// What the figures drawn on this thread are made with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FigureContext {
    pub style: Style,
    /// Provenance written into each PDF's metadata (crate version, source
    /// digest, seeds, parameters), as one JSON line.
    pub manifest: String,
}

thread_local! {
    static CONTEXT: RefCell<FigureContext> = RefCell::new(FigureContext::default());
}

/// Runs `f` with the figures it draws (on this thread) made in `context`.
pub fn with_context<T>(context: FigureContext, f: impl FnOnce() -> T) -> T {
    let previous = CONTEXT.with(|c| std::mem::replace(&mut *c.borrow_mut(), context));
    struct Restore(Option<FigureContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                CONTEXT.with(|c| *c.borrow_mut() = previous);
            }
        }
    }
    let _restore = Restore(Some(previous));
    f()
}

/// The context figures on this thread are drawn in.
pub fn current_context() -> FigureContext {
    CONTEXT.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_prints_its_width_with_paper_text_between_8_and_10_pt() {
        for style in Style::ALL {
            for shape in [FigureSize::Column, FigureSize::Wide] {
                let canvas = style.canvas(shape);
                let width_in = canvas.page_pt.0 / POINTS_PER_INCH;
                assert!((width_in - style.width_in()).abs() < 1e-9, "{style}");
                let [small, large] = style.text_pt();
                if style == Style::Slides {
                    assert!((10.0..=12.5).contains(&small) && large <= 12.5, "{style}");
                } else {
                    assert!(
                        small >= 8.0 && large <= 10.0,
                        "{style}: {small}..{large} pt"
                    );
                }
                assert!(canvas.svg.0 > canvas.svg.1 && canvas.png.0 > 600, "{style}");
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for style in Style::ALL {
            assert_eq!(style.name().parse::<Style>(), Ok(style));
        }
        assert!("paper"
            .parse::<Style>()
            .unwrap_err()
            .contains("paper-single"));
    }

    #[test]
    fn the_context_is_restored_after_a_scope_even_on_panic() {
        let outer = current_context();
        let inner = FigureContext {
            style: Style::Slides,
            manifest: "m".into(),
        };
        with_context(inner.clone(), || assert_eq!(current_context(), inner));
        assert_eq!(current_context(), outer);
        let caught = std::panic::catch_unwind(|| {
            with_context(inner.clone(), || panic!("drawing failed"));
        });
        assert!(caught.is_err());
        assert_eq!(current_context(), outer);
    }
}
