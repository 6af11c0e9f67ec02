//! What goes into a paper: every PDF parses, has its preset's page size,
//! embeds its fonts and carries the manifest; its text prints at 8 to 10 pt;
//! the LaTeX outputs compile (with pdflatex where installed, else a structural
//! check); two runs give the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXPERIMENTS: [&str; 2] = ["average_vs_minimax", "weights_trajectory"];

fn run_reproduce(out: &Path, style: &str) {
    let _ = std::fs::remove_dir_all(out);
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskrobust"));
    command
        .args(["reproduce", "--quick", "--style", style, "--out"])
        .arg(out)
        .arg("--params")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments"));
    for name in EXPERIMENTS {
        command.args(["--only", name]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn temp(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("taskrobust-paper-{tag}-{}", std::process::id()))
}

fn files_with(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

fn number(object: &lopdf::Object) -> f64 {
    match object {
        lopdf::Object::Integer(i) => *i as f64,
        lopdf::Object::Real(r) => f64::from(*r),
        other => panic!("not a number: {other:?}"),
    }
}

fn text_string(object: &lopdf::Object) -> String {
    match object {
        lopdf::Object::String(bytes, _) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

/// Page size in points, whether each font embeds a font program, and the Keywords.
fn inspect_pdf(path: &Path) -> ((f64, f64), Vec<bool>, String) {
    let document = lopdf::Document::load(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let pages = document.get_pages();
    assert_eq!(pages.len(), 1, "{path:?}");
    let page = document.get_dictionary(pages[&1]).unwrap();
    let media_box = page.get(b"MediaBox").unwrap().as_array().unwrap();
    let size = (
        number(&media_box[2]) - number(&media_box[0]),
        number(&media_box[3]) - number(&media_box[1]),
    );
    let mut embedded = Vec::new();
    for object in document.objects.values() {
        let Ok(dict) = object.as_dict() else { continue };
        if dict.get(b"Type").ok().and_then(|t| t.as_name().ok()) == Some(b"FontDescriptor") {
            embedded
                .push(dict.has(b"FontFile") || dict.has(b"FontFile2") || dict.has(b"FontFile3"));
        }
    }
    let info_ref = document
        .trailer
        .get(b"Info")
        .unwrap()
        .as_reference()
        .unwrap();
    let info = document.get_dictionary(info_ref).unwrap();
    let keywords = text_string(info.get(b"Keywords").unwrap());
    (size, embedded, keywords)
}

/// The printed text sizes of a figure, in points, from its SVG (same drawing).
fn text_sizes_pt(svg: &Path, page_width_pt: f64) -> Vec<f64> {
    let text = std::fs::read_to_string(svg).unwrap();
    let width: f64 = text
        .split("width=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    text.split("font-size=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse::<f64>().unwrap() * page_width_pt / width)
        .collect()
}

#[test]
fn pdfs_have_the_preset_size_embedded_fonts_text_of_8_to_10_pt_and_the_manifest() {
    for (style, width_in) in [("paper-single", 3.25), ("paper-double", 6.75)] {
        let out = temp(style);
        run_reproduce(&out, style);
        let pdfs = files_with(&out, "pdf");
        assert!(pdfs.len() >= 4, "{pdfs:?}");
        for pdf in &pdfs {
            let ((width, height), embedded, keywords) = inspect_pdf(pdf);
            assert!(
                (width - width_in * 72.0).abs() < 0.01,
                "{pdf:?}: {width} pt"
            );
            assert!(
                height > 0.3 * width && height < width,
                "{pdf:?}: {height} pt"
            );
            assert!(
                !embedded.is_empty() && embedded.iter().all(|&e| e),
                "{pdf:?}"
            );
            let manifest: serde_json::Value = serde_json::from_str(&keywords).unwrap();
            assert_eq!(manifest["crate_version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(manifest["parameters"]["style"], style);
            assert!(manifest["source_digest"].as_str().unwrap().len() == 16);
            assert!(manifest["seeds"].as_array().is_some_and(|s| !s.is_empty()));
            let sizes = text_sizes_pt(&pdf.with_extension("svg"), width);
            assert!(!sizes.is_empty(), "{pdf:?}");
            for size in sizes {
                assert!((8.0..=10.0).contains(&size), "{pdf:?}: text at {size} pt");
            }
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Share of dark pixels (luminance below 160 of 255) in each cell of a
/// `GRID` x `GRID` partition of an 8-bit RGB image.
const GRID: usize = 6;

fn ink_coverage(width: usize, height: usize, rgb: &[u8]) -> Vec<f64> {
    let mut ink = vec![0usize; GRID * GRID];
    let mut total = vec![0usize; GRID * GRID];
    for y in 0..height {
        for x in 0..width {
            let p = &rgb[3 * (y * width + x)..3 * (y * width + x) + 3];
            let luminance =
                0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            let cell = (y * GRID / height) * GRID + x * GRID / width;
            total[cell] += 1;
            ink[cell] += usize::from(luminance < 160.0);
        }
    }
    ink.iter()
        .zip(&total)
        .map(|(&i, &t)| i as f64 / t as f64)
        .collect()
}

/// A binary PPM (P6) as written by pdftoppm.
fn read_ppm(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P6");
    let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (width, height, bytes[at + 1..].to_vec())
}

#[test]
fn each_pdf_renders_with_the_layout_of_its_png() {
    if Command::new("pdftoppm").arg("-v").output().is_err() {
        eprintln!("pdftoppm (poppler-utils) not installed: PDF and PNG layouts not compared");
        return;
    }
    let out = temp("layout");
    run_reproduce(&out, "paper-single");
    for pdf in files_with(&out, "pdf") {
        let png = image::open(pdf.with_extension("png")).unwrap().to_rgb8();
        let (width, height) = (png.width() as usize, png.height() as usize);
        let stem = pdf.with_extension("");
        let output = Command::new("pdftoppm")
            .args([
                "-singlefile",
                "-scale-to-x",
                &width.to_string(),
                "-scale-to-y",
            ])
            .arg(height.to_string())
            .arg(&pdf)
            .arg(&stem)
            .output()
            .unwrap();
        assert!(output.status.success(), "{pdf:?}");
        let (w, h, rendered) = read_ppm(&stem.with_extension("ppm"));
        assert_eq!((w, h), (width, height), "{pdf:?}");
        let from_pdf = ink_coverage(w, h, &rendered);
        let from_png = ink_coverage(width, height, png.as_raw());
        let worst = from_pdf
            .iter()
            .zip(&from_png)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let total = |c: &[f64]| c.iter().sum::<f64>() / c.len() as f64;
        assert!(total(&from_png) > 0.01, "{pdf:?}: the PNG is blank");
        eprintln!(
            "{}: largest per-cell ink difference {worst:.4}",
            pdf.file_name().unwrap().to_string_lossy()
        );
        assert!(
            worst < 0.04 && (total(&from_pdf) - total(&from_png)).abs() < 0.01,
            "{pdf:?}: ink coverage per cell differs by up to {worst:.3} \
             (PDF {:.3}, PNG {:.3} overall)",
            total(&from_pdf),
            total(&from_png)
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

fn check_latex_structure(path: &Path) {
    let tex = std::fs::read_to_string(path).unwrap();
    assert!(tex.is_ascii(), "{path:?}");
    assert!(tex.starts_with("% Generated by taskrobust"), "{path:?}");
    assert!(tex.contains("% manifest: {"), "{path:?}");
    let body: String = tex
        .lines()
        .filter(|l| !l.starts_with('%'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut depth = 0i64;
    let mut previous = ' ';
    for c in body.chars() {
        if previous != '\\' {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "{path:?}: unbalanced braces");
        }
        previous = if previous == '\\' { ' ' } else { c };
    }
    assert_eq!(depth, 0, "{path:?}: unbalanced braces");
    for environment in ["figure", "figure*", "longtable"] {
        assert_eq!(
            body.matches(&format!("\\begin{{{environment}}}")).count(),
            body.matches(&format!("\\end{{{environment}}}")).count(),
            "{path:?}: {environment}"
        );
    }
}

#[test]
fn latex_outputs_compile_and_two_runs_are_byte_identical() {
    let (first, second) = (temp("first"), temp("second"));
    run_reproduce(&first, "paper-single");
    run_reproduce(&second, "paper-single");
    let read_all = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (read_all(&first), read_all(&second));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between two runs");
    }

    let mut snippets = files_with(&first, "tex");
    assert!(snippets.iter().any(|p| p.ends_with("verdicts.tex")));
    for snippet in &snippets {
        check_latex_structure(snippet);
    }
    snippets.retain(|p| !p.ends_with("verdicts.tex"));
    let pdflatex_present = Command::new("pdflatex").arg("--version").output().is_ok();
    if !pdflatex_present {
        eprintln!("pdflatex not installed: the structural check stands in for compiling");
        return;
    }
    let mut document = String::from(
        "\\documentclass[twocolumn]{article}\n\\usepackage{graphicx,booktabs,longtable}\n\
         \\graphicspath{{./}}\n\\begin{document}\n",
    );
    for snippet in &snippets {
        document.push_str(&format!(
            "\\input{{{}}}\n",
            snippet.file_name().unwrap().to_string_lossy()
        ));
    }
    document.push_str("\\onecolumn\n\\input{verdicts.tex}\n\\end{document}\n");
    std::fs::write(first.join("paper.tex"), document).unwrap();
    let output = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "paper.tex"])
        .current_dir(&first)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pdflatex failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let log = std::fs::read_to_string(first.join("paper.log")).unwrap();
    assert!(!log.contains("LaTeX Warning: Reference"), "{log}");
    let _ = std::fs::remove_dir_all(&first);
    let _ = std::fs::remove_dir_all(&second);
}

#[test]
fn the_documented_pgfplots_example_compiles_against_a_committed_table() {
    let pgfplots = Command::new("kpsewhich").arg("pgfplots.sty").output();
    if !pgfplots.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
        eprintln!("pgfplots not installed: the example is not compiled");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = temp("pgfplots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root.join("docs/pgfplots-example.tex"),
        dir.join("example.tex"),
    )
    .unwrap();
    std::fs::copy(
        root.join("figures/rate_fixed_mu.csv"),
        dir.join("rate_fixed_mu.csv"),
    )
    .unwrap();
    let output = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "example.tex"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
