//! Vector PDF from a chart's SVG (svg2pdf, pure Rust), with the embedded
//! DejaVu Sans subset into the file and the run's manifest in the document
//! information. No dates are written, so two runs give the same bytes.

use super::PlotError;
use std::collections::HashMap;
use std::sync::OnceLock;
use svg2pdf::usvg;

/// The usvg options with the embedded fonts as the only font database, and
/// "sans-serif" (what plotters writes) mapped to DejaVu Sans.
fn svg_options() -> &'static usvg::Options<'static> {
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut options = usvg::Options::default();
        let fonts = options.fontdb_mut();
        for face in [
            dejavu::sans::regular(),
            dejavu::sans::bold(),
            dejavu::sans::oblique(),
        ] {
            fonts.load_font_data(face.to_vec());
        }
        fonts.set_sans_serif_family("DejaVu Sans");
        options.font_family = "DejaVu Sans".to_string();
        options
    })
}

/// What goes into the PDF's document information dictionary.
#[derive(Debug, Clone, Default)]
pub struct PdfInfo<'a> {
    pub title: &'a str,
    /// The provenance manifest (one JSON line).
    pub keywords: &'a str,
}

/// Converts `svg` into a one-page PDF of `page_pt` (width, height) points.
pub fn svg_to_pdf(svg: &str, page_pt: (f64, f64), info: &PdfInfo<'_>) -> Result<Vec<u8>, PlotError> {
    use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, TextStr};

    let tree = usvg::Tree::from_str(svg, svg_options())
        .map_err(|e| PlotError::Draw(format!("SVG for PDF: {e}")))?;
    let conversion = svg2pdf::ConversionOptions {
        embed_text: true,
        ..Default::default()
    };
    let (chunk, figure) = svg2pdf::to_chunk(&tree, conversion)
        .map_err(|e| PlotError::Draw(format!("PDF conversion: {e}")))?;

    let mut next = Ref::new(1);
    let catalog = next.bump();
    let pages = next.bump();
    let page = next.bump();
    let content = next.bump();
    let document_info = next.bump();
    let mut renumbered = HashMap::new();
    let chunk = chunk.renumber(|old| *renumbered.entry(old).or_insert_with(|| next.bump()));
    let figure = renumbered[&figure];

    let (width, height) = (page_pt.0 as f32, page_pt.1 as f32);
    let name = Name(b"Fig");
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut page_writer = pdf.page(page);
    page_writer
        .media_box(Rect::new(0.0, 0.0, width, height))
        .parent(pages)
        .contents(content);
    page_writer.resources().x_objects().pair(name, figure);
    page_writer.finish();
    // The figure XObject is one point square: scale it to the page.
    let mut stream = Content::new();
    stream
        .save_state()
        .transform([width, 0.0, 0.0, height, 0.0, 0.0])
        .x_object(name)
        .restore_state();
    pdf.stream(content, &stream.finish());
    pdf.extend(&chunk);
    pdf.document_info(document_info)
        .title(TextStr(info.title))
        .keywords(TextStr(info.keywords))
        .creator(TextStr(concat!("taskrobust ", env!("CARGO_PKG_VERSION"))))
        .producer(TextStr("svg2pdf"));
    Ok(pdf.finish())
}
