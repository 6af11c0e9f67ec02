//! The reproduce report: report.json (the machine-readable verdicts) and
//! REPORT.md (a verdict table, the figures with captions, the parameters),
//! both written atomically. Also the atomic-write helper the figures use.
//!
//! report.json: `{"checks": [{"name", "passed", "measured", "theory",
//! "detail", "slack"?}, ...], "all_passed", "crate_version", "source_digest", "seeds",
//! "parameters", "figures", "elapsed_seconds"}`.

use crate::theory::checks::Check;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary path next to `path` (same directory, so a rename is atomic):
/// `.<file name>.<pid>.<counter><suffix>`. For outputs whose writer picks
/// the format from the extension (PNG); everything else goes through
/// [`write_atomic`].
pub fn temp_path(path: &Path, suffix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.{n}{suffix}", std::process::id()))
}

/// Writes `bytes` through a temporary file and a rename (see [`crate::io::write_atomic`]).
pub use crate::io::write_atomic;

/// Identifies the code that produced a report: the first 16 hex digits of a
/// SHA-256 over the crate's sources, experiment parameters and lock file
/// (computed by build.rs). A rerun of the same code gives the same digest, so
/// a committed report does not go stale by naming the commit before its own.
pub fn source_digest() -> &'static str {
    env!("TASKROBUST_SOURCE_DIGEST")
}

/// A figure listed in the report; paths are relative to the report's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureEntry {
    pub name: String,
    pub png: String,
    pub svg: String,
    /// Vector PDF at the style's printed size, fonts embedded.
    #[serde(default)]
    pub pdf: String,
    /// The table the figure was drawn from.
    pub csv: String,
    /// LaTeX snippet (figure float with the caption) for `\input`.
    #[serde(default)]
    pub tex: String,
    pub caption: String,
}

/// Everything `taskrobust reproduce` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub all_passed: bool,
    pub crate_version: String,
    /// See [`source_digest`].
    pub source_digest: String,
    pub seeds: Vec<u64>,
    /// The parameters of every experiment, as run.
    pub parameters: Value,
    pub figures: Vec<FigureEntry>,
    pub elapsed_seconds: Option<f64>,
}

impl Report {
    /// An empty report stamped with this crate's version and source digest.
    pub fn new(parameters: Value, seeds: Vec<u64>) -> Self {
        Self {
            checks: Vec::new(),
            all_passed: true,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            source_digest: source_digest().to_string(),
            seeds,
            parameters,
            figures: Vec::new(),
            elapsed_seconds: None,
        }
    }

    pub fn push_check(&mut self, check: Check) {
        self.all_passed &= check.passed;
        self.checks.push(check);
    }

    pub fn extend_checks(&mut self, checks: impl IntoIterator<Item = Check>) {
        for c in checks {
            self.push_check(c);
        }
    }

    /// Lists a figure; `stem` is `<dir>/<name>` without extension, `csv` its table.
    pub fn push_figure(&mut self, dir: &Path, stem: &Path, csv: &Path, caption: &str) {
        let rel = |p: &Path| {
            p.strip_prefix(dir)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        };
        let name = rel(stem);
        self.figures.push(FigureEntry {
            png: format!("{name}.png"),
            svg: format!("{name}.svg"),
            pdf: format!("{name}.pdf"),
            tex: format!("{name}.tex"),
            csv: rel(csv),
            name,
            caption: caption.to_string(),
        });
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The human-readable report.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let total = self.checks.len();
        let failed = self.failed().count();
        md.push_str("# taskrobust reproduce report\n\n");
        if failed == 0 {
            md.push_str(&format!("**All {total} checks pass.**\n\n"));
        } else {
            md.push_str(&format!("**{failed} of {total} checks FAIL.**\n\n"));
        }
        md.push_str(&format!(
            "- crate version: {}\n- source digest: `{}` (SHA-256 of src/, experiments/, build.rs, Cargo.toml, Cargo.lock)\n- seeds: {}\n",
            self.crate_version,
            self.source_digest,
            self.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Some(s) = self.elapsed_seconds {
            md.push_str(&format!("- run time: {s:.1} s\n"));
        }
        md.push_str(
            "\nThe bounds are the standard bounds for the algorithms as the seed paper describes them \
             (docs/THEORY.md); the paper's exact statements were not available.\n",
        );
        md.push_str("\n## Checks\n\n");
        md.push_str(&verdict_table(&self.checks, None));
        if !self.figures.is_empty() {
            md.push_str("\n## Figures\n");
            for (k, f) in self.figures.iter().enumerate() {
                md.push_str(&format!(
                    "\n### {}\n\n![{}]({})\n\n*Figure {}.* {} (Data: [{}]({}); vector: [{}]({}), [{}]({}); LaTeX: [{}]({}).)\n",
                    f.name,
                    f.name,
                    f.png,
                    k + 1,
                    f.caption,
                    f.csv,
                    f.csv,
                    f.pdf,
                    f.pdf,
                    f.svg,
                    f.svg,
                    f.tex,
                    f.tex
                ));
            }
        }
        md.push_str("\n## Parameters\n\n```json\n");
        md.push_str(&serde_json::to_string_pretty(&self.parameters).unwrap_or_default());
        md.push_str("\n```\n");
        md
    }

    /// Writes `<dir>/report.json` and `<dir>/REPORT.md` (each atomically) and
    /// returns their paths.
    pub fn write(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json_path = dir.join("report.json");
        let md_path = dir.join("REPORT.md");
        let mut json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        json.push('\n');
        write_atomic(&json_path, json.as_bytes())?;
        write_atomic(&md_path, self.to_markdown().as_bytes())?;
        Ok((json_path, md_path))
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

/// The slack column of REPORT.md.
fn slack_cell(slack: Option<f64>) -> String {
    match slack {
        None => "-".into(),
        Some(s) if s.is_finite() => format!("{}x", crate::theory::checks::sig(s)),
        Some(_) => "undefined".into(),
    }
}

/// Escapes a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The verdicts as a Markdown table (the `reproduce` report's, and
/// `gpu-check`'s): name, verdict, measured, theory, slack, detail; with
/// `required`, a column saying which checks count for the overall verdict.
pub fn verdict_table(checks: &[Check], required: Option<&[bool]>) -> String {
    let mut md = String::from(
        "Slack is bound / measured at the largest x of a bound check (1 = tight; \
         `-` for checks that are not bounds).\n\n",
    );
    let required_column = |k: usize| match required {
        Some(r) => match r.get(k) {
            Some(true) => " yes |".to_string(),
            Some(false) => " no |".to_string(),
            None => " ? |".to_string(),
        },
        None => String::new(),
    };
    md.push_str("| check | verdict | measured | theory | slack | detail |");
    md.push_str(if required.is_some() {
        " required |\n"
    } else {
        "\n"
    });
    md.push_str("|---|---|---|---|---|---|");
    md.push_str(if required.is_some() { "---|\n" } else { "\n" });
    for (k, c) in checks.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |{}\n",
            cell(&c.name),
            if c.passed { "pass" } else { "**FAIL**" },
            cell(&compact(&c.measured)),
            cell(&compact(&c.theory)),
            slack_cell(c.slack),
            cell(&c.detail),
            required_column(k)
        ));
    }
    md
}

/// A JSON value in one short line, numbers to 4 significant digits.
pub fn compact(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), sig4),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", compact(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn sig4(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e6 {
        return format!("{x:.0}");
    }
    let e = x.abs().log10().floor();
    if (-3.0..5.0).contains(&e) {
        let decimals = (3.0 - e).max(0.0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::checks::bound_holds;
    use serde_json::json;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("taskrobust-report-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn report_json_has_the_contract_fields_and_round_trips() {
        let dir = temp_dir("json");
        let mut report = Report::new(json!({"iterations": 100, "quick": true}), vec![1, 2, 3]);
        report.push_check(
            bound_holds(&[1.0, 2.0], &[0.1, 0.05], &[1.0, 0.5]).named("(f) subgradient bound"),
        );
        report.push_check(Check::new(
            "made-up failing check",
            false,
            2.0,
            1.0,
            "too slow",
        ));
        report.push_figure(
            &dir,
            &dir.join("gap_vs_t"),
            &dir.join("gap_vs_t.csv"),
            "Certified gap against T.",
        );
        let (json_path, md_path) = report.write(&dir).unwrap();
        let value: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        let checks = value["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 2);
        for c in checks {
            let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            keys.sort();
            // "slack" only on bound checks.
            keys.retain(|k| *k != "slack");
            assert_eq!(keys, ["detail", "measured", "name", "passed", "theory"]);
        }
        assert_eq!(value["all_passed"], false);
        assert_eq!(value["seeds"], json!([1, 2, 3]));
        assert_eq!(value["crate_version"], env!("CARGO_PKG_VERSION"));
        let digest = value["source_digest"].as_str().unwrap();
        assert!(digest.len() == 16 && digest.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(value["figures"][0]["png"], "gap_vs_t.png");
        assert_eq!(value["figures"][0]["pdf"], "gap_vs_t.pdf");
        assert_eq!(value["figures"][0]["tex"], "gap_vs_t.tex");
        assert_eq!(Report::read(&json_path).unwrap(), report);

        let md = std::fs::read_to_string(&md_path).unwrap();
        assert!(md.contains("**1 of 2 checks FAIL.**"), "{md}");
        assert!(md.contains("| (f) subgradient bound | pass |"), "{md}");
        assert!(
            md.contains("| made-up failing check | **FAIL** | 2 | 1 | - | too slow |"),
            "{md}"
        );
        assert!(md.contains("![gap_vs_t](gap_vs_t.png)"));
        assert!(md.contains("\"iterations\": 100"));
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_failure_leaves_nothing() {
        let dir = temp_dir("fail");
        let target = dir.join("missing-subdir").join("x.json");
        assert!(write_atomic(&target, b"{}").is_err());
        assert!(!target.exists());
        write_atomic(&dir.join("x.json"), b"{}").unwrap();
        write_atomic(&dir.join("x.json"), b"[1]").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("x.json")).unwrap(), "[1]");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compact_values() {
        assert_eq!(compact(&json!(0.123456)), "0.1235");
        assert_eq!(compact(&json!(-0.5)), "-0.5000");
        assert_eq!(compact(&json!(3)), "3");
        assert_eq!(compact(&json!(1.5e-7)), "1.500e-7");
        assert_eq!(
            compact(&json!({"slope": -0.51, "ci95": [-0.6, -0.42]})),
            "ci95 [-0.6000, -0.4200]; slope -0.5100"
        );
        assert_eq!(compact(&Value::Null), "–");
    }
}
