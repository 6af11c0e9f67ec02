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
pub fn svg_to_pdf(
    svg: &str,
    page_pt: (f64, f64),
    info: &PdfInfo<'_>,
) -> Result<Vec<u8>, PlotError> {
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
    canonical(&pdf.finish())
}

/// The same document with every dictionary's keys in sorted order. svg2pdf
/// fills resource dictionaries from hash maps, whose order changes from run
/// to run; sorted, two runs of the same figure give the same bytes.
fn canonical(pdf: &[u8]) -> Result<Vec<u8>, PlotError> {
    fn sort(object: &mut lopdf::Object) {
        match object {
            lopdf::Object::Dictionary(dict) => sort_dictionary(dict),
            lopdf::Object::Stream(stream) => sort_dictionary(&mut stream.dict),
            lopdf::Object::Array(items) => items.iter_mut().for_each(sort),
            _ => {}
        }
    }
    fn sort_dictionary(dict: &mut lopdf::Dictionary) {
        let map = dict.as_hashmap_mut();
        map.sort_keys();
        map.values_mut().for_each(sort);
    }
    let mut document =
        lopdf::Document::load_mem(pdf).map_err(|e| PlotError::Draw(format!("PDF re-read: {e}")))?;
    document.objects.values_mut().for_each(sort);
    sort_dictionary(&mut document.trailer);
    let mut bytes = Vec::new();
    document
        .save_to(&mut bytes)
        .map_err(|e| PlotError::Draw(format!("PDF write: {e}")))?;
    Ok(bytes)
}
