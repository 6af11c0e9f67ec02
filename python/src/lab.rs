//! The lab's commands from Python: `transfer` and `reproduce`, run through
//! the command line's own argument parsing, so that they do exactly what
//! `taskrobust transfer` and `taskrobust reproduce` do.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;
use taskrobust_lab::cli::{run, Cli, Failure};

fn failure(e: Failure) -> PyErr {
    if e.status == 2 {
        PyValueError::new_err(e.message)
    } else {
        PyRuntimeError::new_err(e.message)
    }
}

fn parse(args: Vec<String>) -> PyResult<Cli> {
    use clap::Parser;
    Cli::try_parse_from(args).map_err(|e| PyValueError::new_err(e.to_string().trim().to_string()))
}

/// Worst-task sample complexity in the linear-regression transfer model, as
/// `taskrobust transfer --format json`.
///
/// scenario: a built-in scenario's name ("pattern-semantic", "balanced"), a
/// path to a scenario file (str or os.PathLike), or a dict with the
/// scenario's fields (README, "taskrobust transfer"). seed: overrides the
/// scenario's seed. Returns the JSON object as a dict (fantope_lower_bound,
/// methods.none/average/minimax, ...).
#[pyfunction]
#[pyo3(signature = (scenario, seed=None))]
pub fn transfer(
    py: Python<'_>,
    scenario: &Bound<'_, PyAny>,
    seed: Option<u64>,
) -> PyResult<Py<PyAny>> {
    let mut args = vec!["taskrobust".to_string(), "transfer".to_string()];
    // A dict goes through a file so that it is read by the same code.
    let mut _file = None;
    if let Ok(dict) = scenario.cast::<pyo3::types::PyDict>() {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (dict,))?
            .extract()?;
        let dir = std::env::temp_dir().join(format!(
            "taskrobust-scenario-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let path = dir.join("scenario.json");
        taskrobust_lab::io::write_text_atomic(&path, &text)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        args.push(path.display().to_string());
        _file = Some(TempDir(dir));
    } else if let Ok(name) = scenario.extract::<String>() {
        if std::path::Path::new(&name).exists() || name.ends_with(".json") {
            args.push(name);
        } else {
            args.extend(["--scenario".to_string(), name]);
        }
    } else if let Ok(path) = scenario.extract::<PathBuf>() {
        args.push(path.display().to_string());
    } else {
        return Err(PyTypeError::new_err(
            "scenario: must be a built-in scenario's name, a path or a dict",
        ));
    }
    if let Some(seed) = seed {
        args.extend(["--seed".to_string(), seed.to_string()]);
    }
    args.extend(["--format".to_string(), "json".to_string()]);
    let cli = parse(args)?;
    let text = py.detach(|| run(cli)).map_err(failure)?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// Removes a temporary folder when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs every experiment, as `taskrobust reproduce [--quick] --out OUT`:
/// figures, CSV tables, report.json and REPORT.md under out.
///
/// quick: the small versions (about a minute or two). only: run only these
/// experiments. Returns report.json as a dict; report["all_passed"] (or each
/// check's "passed") says whether every check passed. This takes minutes;
/// the GIL is released meanwhile (Ctrl-C takes effect when it returns).
#[pyfunction]
#[pyo3(signature = (out=PathBuf::from("figures"), quick=true, only=None))]
pub fn reproduce(
    py: Python<'_>,
    out: PathBuf,
    quick: bool,
    only: Option<Vec<String>>,
) -> PyResult<Py<PyAny>> {
    let mut args = vec![
        "taskrobust".to_string(),
        "reproduce".to_string(),
        "--out".to_string(),
        out.display().to_string(),
    ];
    if quick {
        args.push("--quick".to_string());
    }
    for name in only.unwrap_or_default() {
        args.extend(["--only".to_string(), name]);
    }
    let cli = parse(args)?;
    match py.detach(|| run(cli)) {
        Ok(_) => {}
        // Status 1 where a check fails: the report says which.
        Err(e) if e.status == 1 && out.join("report.json").exists() => {}
        Err(e) => return Err(failure(e)),
    }
    let text = std::fs::read_to_string(out.join("report.json")).map_err(|e| {
        PyRuntimeError::new_err(format!("{}: {e}", out.join("report.json").display()))
    })?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}
