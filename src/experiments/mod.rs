//! The experiments behind `taskrobust reproduce`: one per figure or table.
//!
//! Each experiment's code and its parameters live in `experiments/`
//! (`experiments/<name>.rs`, `experiments/<name>.toml`; edit the TOML and
//! rerun). An experiment splits its work into independent, seeded *cells*;
//! each cell returns tidy rows. `finish` turns all rows into checks, then
//! writes the CSV tables, then draws the figures from those CSV files:
//! tasks -> solver -> certificate -> check -> table -> figure.
//!
//! Cells are what `reproduce --shard i/N` distributes: shard i runs the cells
//! whose global index is i mod N and writes their rows; `merge` gathers the
//! parts and runs every `finish`, producing the same report as one run.

pub mod reference;
pub mod setup;

use crate::error::{Error, InputError};
use crate::plots::{FigureContext, Style};
use crate::report::{FigureEntry, Report};
use crate::theory::checks::Check;
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "../../experiments/average_vs_minimax.rs"]
mod average_vs_minimax;
#[path = "../../experiments/certificate_validity.rs"]
mod certificate_validity;
#[path = "../../experiments/rate_accelerated.rs"]
mod rate_accelerated;
#[path = "../../experiments/rate_descent_ascent.rs"]
mod rate_descent_ascent;
#[path = "../../experiments/rate_fixed_mu.rs"]
mod rate_fixed_mu;
#[path = "../../experiments/rate_strongly_convex.rs"]
mod rate_strongly_convex;
#[path = "../../experiments/rate_subgradient.rs"]
mod rate_subgradient;
#[path = "../../experiments/rate_tuned_mu.rs"]
mod rate_tuned_mu;
#[path = "../../experiments/stochastic_bias.rs"]
mod stochastic_bias;
#[path = "../../experiments/tasks_scaling.rs"]
mod tasks_scaling;
#[path = "../../experiments/temperature_sweep.rs"]
mod temperature_sweep;
#[path = "../../experiments/transfer.rs"]
mod transfer;
#[path = "../../experiments/weights_trajectory.rs"]
mod weights_trajectory;

/// One independent unit of work of an experiment: its typed description
/// and its `key`, unique within the experiment (what shard parts and the
/// report name it by).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed<C> {
    pub key: String,
    pub cell: C,
}

/// The cell of most experiments: one task family and one seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilySeed {
    pub family: String,
    pub seed: u64,
}

impl FamilySeed {
    /// One cell per (family, seed), in that order, keyed `family/seedS`.
    pub fn grid(families: &[String], seeds: &[u64]) -> Vec<Keyed<FamilySeed>> {
        families
            .iter()
            .flat_map(|f| {
                seeds.iter().map(move |&seed| Keyed {
                    key: format!("{f}/seed{seed}"),
                    cell: FamilySeed {
                        family: f.clone(),
                        seed,
                    },
                })
            })
            .collect()
    }
}

/// What `finish` receives for one cell: the cell, its typed rows (in the
/// order `run_cell` returned them) and, where it failed, why (then it has no
/// rows; the runner has already reported it as a failed check).
#[derive(Debug, Clone, PartialEq)]
pub struct CellRows<'a, C, R> {
    pub key: &'a str,
    pub cell: &'a C,
    pub rows: Vec<R>,
    pub error: Option<&'a str>,
}

/// The rows of all cells, in cell order (a failed cell has none).
pub fn all_rows<C, R: Clone>(cells: &[CellRows<'_, C, R>]) -> Vec<R> {
    cells.iter().flat_map(|c| c.rows.iter().cloned()).collect()
}

/// The rows a cell produced (tidy records), in a fixed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub experiment: String,
    pub key: String,
    pub rows: Vec<Value>,
    /// Why the cell produced no rows (a solver error or a panic); the run
    /// goes on and the report lists it as a failed check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `finish` produced.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub checks: Vec<Check>,
    pub figures: Vec<FigureEntry>,
}

/// Experiment parameters: the TOML table, with `[quick]` merged over it for
/// `--quick`.
#[derive(Debug, Clone)]
pub struct Params {
    pub table: toml::Table,
    /// Where they came from ("experiments/x.toml" or "built-in").
    pub source: String,
    pub quick: bool,
}

impl Params {
    /// Deserialises into the experiment's typed parameters (unknown keys are errors).
    pub fn typed<T: serde::de::DeserializeOwned>(&self, experiment: &str) -> Result<T, InputError> {
        toml::Value::Table(self.table.clone())
            .try_into()
            .map_err(|e| {
                InputError::new(
                    format!("{}: {experiment}", self.source),
                    e.to_string().replace('\n', " "),
                )
            })
    }
}

/// One figure or table of the report, typed: its parameters are parsed once
/// per run (by the runner, with [`Params::typed`]), its cells and rows are
/// its own types. Rows become JSON only at the boundary (shard parts, cell
/// records) and are parsed back once, before `finish`.
pub trait Experiment: Sync {
    /// The parameters (the TOML table, `[quick]` applied, `style` removed).
    type Params: DeserializeOwned + Sync;
    /// One independent unit of work.
    type Cell: Serialize + DeserializeOwned + Send + Sync;
    /// One tidy record a cell produces.
    type Row: Serialize + DeserializeOwned + Send + Sync;

    fn name(&self) -> &'static str;
    /// The built-in parameters (the TOML shipped in experiments/).
    fn default_params(&self) -> &'static str;
    /// The seeds the experiment uses (recorded in the report).
    fn seeds(&self, params: &Self::Params) -> Vec<u64>;
    /// The independent cells with their keys, in a fixed order; checks the
    /// parameters that parsing alone cannot.
    fn cells(&self, params: &Self::Params) -> Result<Vec<Keyed<Self::Cell>>, InputError>;
    /// Runs one cell (deterministic given the cell).
    fn run_cell(&self, params: &Self::Params, cell: &Self::Cell) -> Result<Vec<Self::Row>, Error>;
    /// Checks, then tables, then figures, from every cell's rows (cell order).
    fn finish(
        &self,
        params: &Self::Params,
        cells: &[CellRows<'_, Self::Cell, Self::Row>],
        out: &Path,
    ) -> Result<Finished, Error>;
}

/// An [`Experiment`] with its types erased, for the registry and the runner
/// (every typed experiment is one).
pub trait DynExperiment: Sync {
    fn name(&self) -> &'static str;
    /// The built-in parameters (the TOML shipped in experiments/).
    fn default_params(&self) -> &'static str;
    /// Parses the parameters (once) and plans the cells.
    fn prepare(&self, params: &Params) -> Result<Box<dyn Prepared + '_>, Error>;
}

/// An experiment with its parameters parsed and its cells planned.
pub trait Prepared: Sync {
    /// The seeds the experiment uses (recorded in the report).
    fn seeds(&self) -> Vec<u64>;
    /// The cells' keys, in cell order.
    fn keys(&self) -> Vec<String>;
    /// Runs cell `index`; its rows as JSON.
    fn run_cell(&self, index: usize) -> Result<Vec<Value>, Error>;
    /// Parses the rows of `results` (one per cell, in cell order) back into
    /// the experiment's rows and finishes it. A row that does not fit is an
    /// input error (field `rows`).
    fn finish(&self, results: &[CellResult], out: &Path) -> Result<Finished, Error>;
}

impl<E: Experiment> DynExperiment for E {
    fn name(&self) -> &'static str {
        Experiment::name(self)
    }

    fn default_params(&self) -> &'static str {
        Experiment::default_params(self)
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Prepared + '_>, Error> {
        let name = Experiment::name(self);
        let typed: E::Params = params.typed(name)?;
        let cells = self
            .cells(&typed)
            .map_err(|e| in_params_file(e.into(), params, name))?;
        Ok(Box::new(Typed {
            experiment: self,
            params: typed,
            cells,
        }))
    }
}

struct Typed<'a, E: Experiment> {
    experiment: &'a E,
    params: E::Params,
    cells: Vec<Keyed<E::Cell>>,
}

impl<E: Experiment> Prepared for Typed<'_, E> {
    fn seeds(&self) -> Vec<u64> {
        self.experiment.seeds(&self.params)
    }

    fn keys(&self) -> Vec<String> {
        self.cells.iter().map(|c| c.key.clone()).collect()
    }

    fn run_cell(&self, index: usize) -> Result<Vec<Value>, Error> {
        let cell = &self.cells[index].cell;
        self.experiment
            .run_cell(&self.params, cell)?
            .iter()
            .map(|row| serde_json::to_value(row).map_err(|e| Error::io("", e)))
            .collect()
    }

    fn finish(&self, results: &[CellResult], out: &Path) -> Result<Finished, Error> {
        let cells = self
            .cells
            .iter()
            .zip(results)
            .map(|(planned, result)| {
                let rows = result
                    .rows
                    .iter()
                    .map(E::Row::deserialize)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::Input(InputError::new(
                            "rows",
                            format!("a row of cell {} does not fit: {e}", planned.key),
                        ))
                    })?;
                Ok(CellRows {
                    key: &planned.key,
                    cell: &planned.cell,
                    rows,
                    error: result.error.as_deref(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.experiment.finish(&self.params, &cells, out)
    }
}

/// Every experiment of `reproduce`, in report order.
pub fn registry() -> Vec<Box<dyn DynExperiment>> {
    vec![
        Box::new(rate_fixed_mu::RateFixedMu),
        Box::new(rate_tuned_mu::RateTunedMu),
        Box::new(rate_accelerated::RateAccelerated),
        Box::new(rate_strongly_convex::RateStronglyConvex),
        Box::new(rate_descent_ascent::RateDescentAscent),
        Box::new(rate_subgradient::RateSubgradient),
        Box::new(tasks_scaling::TasksScaling),
        Box::new(temperature_sweep::TemperatureSweep),
        Box::new(stochastic_bias::StochasticBias),
        Box::new(weights_trajectory::WeightsTrajectory),
        Box::new(average_vs_minimax::AverageVsMinimax),
        Box::new(certificate_validity::CertificateValidity),
        Box::new(transfer::Transfer),
    ]
}

/// Loads `dir/<name>.toml` if present (else the built-in copy) and applies `[quick]`.
pub fn load_params(
    experiment: &dyn DynExperiment,
    dir: Option<&Path>,
    quick: bool,
) -> Result<Params, InputError> {
    let (text, source) = match dir.map(|d| d.join(format!("{}.toml", experiment.name()))) {
        Some(path) if path.exists() => (
            {
                let field = path.display().to_string();
                // Parameter files are a few lines; a device or a huge file is a mistake.
                if crate::io::regular_file_size(&path, &field)? > 1 << 20 {
                    return Err(InputError::new(
                        field,
                        "is larger than 1 MiB; not a parameter file",
                    ));
                }
                std::fs::read_to_string(&path)
                    .map_err(|e| InputError::new(field, format!("cannot read: {e}")))?
            },
            path.display().to_string(),
        ),
        _ => (
            experiment.default_params().to_string(),
            "built-in".to_string(),
        ),
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| InputError::new(&source, e.to_string().replace('\n', " ")))?;
    let overrides = table.remove("quick");
    if quick {
        if let Some(toml::Value::Table(q)) = overrides {
            for (k, v) in q {
                table.insert(k, v);
            }
        }
    }
    if let Some(key) = first_empty_list(&table, "") {
        return Err(InputError::new(
            format!("{source}: {key}"),
            "is an empty list; give at least one value",
        ));
    }
    Ok(Params {
        table,
        source,
        quick,
    })
}

/// The first key (dotted path) whose value is an empty list: every list of an
/// experiment (seeds, families, horizons, ...) needs at least one entry.
fn first_empty_list(table: &toml::Table, prefix: &str) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Array(items) if items.is_empty() => Some(path),
            toml::Value::Table(inner) => first_empty_list(inner, &format!("{path}.")),
            _ => None,
        }
    })
}

/// Names the parameter file and its key in an input error raised while
/// planning or running an experiment (the solvers name their option fields,
/// `mu` is the key `mu`; the generators' `num_tasks` is `family.tasks`).
fn in_params_file(e: Error, params: &Params, experiment: &str) -> Error {
    let Error::Input(input) = e else { return e };
    if input.field.starts_with(&params.source) {
        return Error::Input(input);
    }
    // A key the experiment named itself, under its own section.
    if input.field.starts_with(&format!("{experiment}.")) {
        return Error::Input(InputError::new(
            format!("{}: {}", params.source, input.field),
            input.message,
        ));
    }
    let key = match input
        .field
        .trim_start_matches("--")
        .replace('-', "_")
        .as_str()
    {
        "num_tasks" => "tasks".to_string(),
        "samples_per_task" => "samples".to_string(),
        other => other.to_string(),
    };
    let path = if params.table.contains_key(&key) {
        Some(key)
    } else {
        params
            .table
            .iter()
            .find_map(|(section, value)| match value {
                toml::Value::Table(inner) if inner.contains_key(&key) => {
                    Some(format!("{section}.{key}"))
                }
                _ => None,
            })
    };
    let field = match path {
        Some(path) => format!("{}: {path}", params.source),
        None => format!("{}: {experiment} ({})", params.source, input.field),
    };
    Error::Input(InputError::new(field, input.message))
}

/// Which cells a shard runs: global index i mod count == index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            InputError::new(
                "--shard",
                format!("expected i/N with 0 <= i < N, got '{s}'"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// A shard's output: the rows of the cells it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardPart {
    pub shard: String,
    pub quick: bool,
    pub total_cells: usize,
    pub results: Vec<CellResult>,
}

/// Options of a reproduce run.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    pub quick: bool,
    pub out: PathBuf,
    /// Figure preset; an experiment's own `style = "..."` parameter overrides it.
    pub style: Style,
    pub params_dir: Option<PathBuf>,
    pub only: Vec<String>,
    pub progress: bool,
}

struct Planned<'a> {
    name: &'static str,
    experiment: Box<dyn Prepared + 'a>,
    params: Params,
    /// The cells' keys, in cell order.
    keys: Vec<String>,
    /// The experiment's `style` parameter, taken out of its table.
    style: Option<Style>,
}

/// Removes the figure-only `style` key from an experiment's parameters.
fn take_style(params: &mut Params) -> Result<Option<Style>, InputError> {
    match params.table.remove("style") {
        None => Ok(None),
        Some(toml::Value::String(name)) => name
            .parse()
            .map(Some)
            .map_err(|e| InputError::new(format!("{}: style", params.source), e)),
        Some(other) => Err(InputError::new(
            format!("{}: style", params.source),
            format!("expected a string, got {}", other.type_str()),
        )),
    }
}

fn plan<'a>(
    registry: &'a [Box<dyn DynExperiment>],
    options: &ReproduceOptions,
) -> Result<Vec<Planned<'a>>, Error> {
    let mut planned = Vec::new();
    for name in &options.only {
        if !registry.iter().any(|e| e.name() == name) {
            let names: Vec<_> = registry.iter().map(|e| e.name()).collect();
            return Err(InputError::new(
                "--only",
                format!("unknown experiment '{name}' (known: {})", names.join(", ")),
            )
            .into());
        }
    }
    for experiment in registry {
        if !options.only.is_empty() && !options.only.iter().any(|n| n == experiment.name()) {
            continue;
        }
        let mut params = load_params(
            experiment.as_ref(),
            options.params_dir.as_deref(),
            options.quick,
        )?;
        let style = take_style(&mut params)?;
        let prepared = experiment.prepare(&params)?;
        planned.push(Planned {
            name: experiment.name(),
            keys: prepared.keys(),
            experiment: prepared,
            params,
            style,
        });
    }
    Ok(planned)
}

/// Runs the selected cells in parallel (results in a fixed order). Rows pass
/// through JSON so a single run and a sharded run see identical numbers.
fn run_cells(
    planned: &[Planned],
    select: impl Fn(usize) -> bool + Sync,
    progress: bool,
) -> Result<Vec<CellResult>, Error> {
    let jobs: Vec<(usize, usize)> = planned
        .iter()
        .enumerate()
        .flat_map(|(e, p)| (0..p.keys.len()).map(move |c| (e, c)))
        .enumerate()
        .filter(|(global, _)| select(*global))
        .map(|(_, job)| job)
        .collect();
    let bar = if progress {
        indicatif::ProgressBar::new(jobs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} cells  {elapsed_precise}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix("reproduce");
    let results: Result<Vec<CellResult>, Error> = jobs
        .par_iter()
        .map(|&(e, c)| {
            let p = &planned[e];
            let key = &p.keys[c];
            // A failing cell becomes a failed check; the other cells go on.
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.experiment.run_cell(c)));
            let (rows, error) = match ran {
                Ok(Ok(rows)) => (rows, None),
                // Bad parameters are input errors (exit status 2), not verdicts.
                Ok(Err(Error::Input(e))) => {
                    return Err(in_params_file(Error::Input(e), &p.params, p.name))
                }
                Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
                Err(panic) => (
                    Vec::new(),
                    Some(format!("panicked: {}", panic_message(&panic))),
                ),
            };
            bar.inc(1);
            bar.set_message(format!("{}:{}", p.name, key));
            let result = CellResult {
                experiment: p.name.to_string(),
                key: key.clone(),
                rows,
                error,
            };
            let text = serde_json::to_string(&result).map_err(|e| Error::io("", e))?;
            serde_json::from_str(&text).map_err(|e| Error::io("", e))
        })
        .collect();
    bar.finish_and_clear();
    results
}

/// Where the rows that `finish_all` reads came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowSource {
    /// This run's own cells: rows that do not fit are a bug, reported as a failed check.
    ThisRun,
    /// Shard part files: rows that do not fit are bad input (exit status 2).
    PartFiles,
}

fn finish_all(
    planned: &[Planned],
    results: &[CellResult],
    options: &ReproduceOptions,
    source: RowSource,
) -> Result<Report, Error> {
    std::fs::create_dir_all(&options.out)
        .map_err(|e| Error::io(options.out.display().to_string(), e))?;
    let mut report = Report::new(Value::Object(Default::default()), Vec::new());
    for p in planned {
        let name = p.name;
        let mine: Vec<CellResult> = p
            .keys
            .iter()
            .map(|key| {
                results
                    .iter()
                    .find(|r| r.experiment == name && &r.key == key)
                    .cloned()
                    .ok_or_else(|| {
                        Error::Input(InputError::new(
                            "merge",
                            format!("missing cell {name}:{key} (is a shard part missing?)"),
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        for failed in mine.iter().filter(|r| r.error.is_some()) {
            report.push_check(Check::new(
                format!("{name}: cell {} runs", failed.key),
                false,
                Value::Null,
                Value::Null,
                format!(
                    "the cell produced no rows: {}",
                    failed.error.as_deref().unwrap_or_default()
                ),
            ));
        }
        let seeds = p.experiment.seeds();
        let style = p.style.unwrap_or(options.style);
        let mut params = serde_json::to_value(&p.params.table)
            .map_err(|e| Error::io(p.params.source.clone(), e))?;
        params["source"] = Value::String(p.params.source.clone());
        params["quick"] = Value::Bool(options.quick);
        params["style"] = Value::String(style.name().to_string());
        let context = FigureContext {
            style,
            manifest: manifest(Some(name), &seeds, &params),
        };
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::plots::with_context(context.clone(), || p.experiment.finish(&mine, &options.out))
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Solver(format!(
                "panicked: {}",
                panic_message(&panic)
            )))
        });
        let finished = match finished {
            Err(Error::Input(e)) if source == RowSource::PartFiles => return Err(Error::Input(e)),
            other => other,
        }
        .unwrap_or_else(|e| Finished {
            checks: vec![Check::new(
                format!("{name}: checks, tables and figures are produced"),
                false,
                Value::Null,
                Value::Null,
                format!(
                    "finishing the experiment failed, so its checks could not be evaluated: {e}"
                ),
            )],
            figures: Vec::new(),
        });
        for figure in &finished.figures {
            let path = options.out.join(&figure.tex);
            let snippet = crate::latex::figure_snippet(figure, style, &context.manifest);
            crate::report::write_atomic(&path, snippet.as_bytes())
                .map_err(|e| Error::io(path.display().to_string(), e))?;
        }
        report.seeds.extend(seeds);
        report.parameters[name] = params;
        report.extend_checks(finished.checks);
        report.figures.extend(finished.figures);
    }
    report.seeds.sort_unstable();
    report.seeds.dedup();
    report.write(&options.out)?;
    let verdicts = options.out.join(crate::latex::VERDICTS_FILE);
    let table = crate::latex::verdict_table(&report, &manifest(None, &report.seeds, &Value::Null));
    crate::report::write_atomic(&verdicts, table.as_bytes())
        .map_err(|e| Error::io(verdicts.display().to_string(), e))?;
    Ok(report)
}

/// The provenance of an output (PDF metadata, LaTeX comments): crate version,
/// source digest, and the experiment's seeds and parameters, as one JSON line.
fn manifest(experiment: Option<&str>, seeds: &[u64], parameters: &Value) -> String {
    let mut manifest = serde_json::json!({
        "tool": "taskrobust",
        "crate_version": env!("CARGO_PKG_VERSION"),
        "source_digest": crate::report::source_digest(),
        "seeds": seeds,
    });
    if let Some(name) = experiment {
        manifest["experiment"] = Value::String(name.to_string());
        manifest["parameters"] = parameters.clone();
    }
    manifest.to_string()
}

/// The text of a caught panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// `reproduce`: every experiment, its checks, tables and figures.
pub fn reproduce(options: &ReproduceOptions) -> Result<Report, Error> {
    let registry = registry();
    let planned = plan(&registry, options)?;
    let results = run_cells(&planned, |_| true, options.progress)?;
    finish_all(&planned, &results, options, RowSource::ThisRun)
}

/// `reproduce --shard i/N`: runs this shard's cells and writes their rows to
/// `out/parts/part-i-of-N.json`; returns that path.
pub fn reproduce_shard(options: &ReproduceOptions, shard: Shard) -> Result<PathBuf, Error> {
    let registry = registry();
    let planned = plan(&registry, options)?;
    let total: usize = planned.iter().map(|p| p.keys.len()).sum();
    let results = run_cells(
        &planned,
        |g| g % shard.count == shard.index,
        options.progress,
    )?;
    let part = ShardPart {
        shard: format!("{}/{}", shard.index, shard.count),
        quick: options.quick,
        total_cells: total,
        results,
    };
    let path = options
        .out
        .join("parts")
        .join(format!("part-{}-of-{}.json", shard.index, shard.count));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::io::write_json_atomic(&path, &part)?;
    Ok(path)
}

/// `merge`: gathers shard parts and finishes every experiment as one run would.
pub fn merge(options: &ReproduceOptions, parts: &[PathBuf]) -> Result<Report, Error> {
    let registry = registry();
    let planned = plan(&registry, options)?;
    let mut results = Vec::new();
    for path in parts {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let part: ShardPart = crate::io::strict_json::parse(&text)
            .and_then(serde_json::from_value)
            .map_err(|e| {
                InputError::new(path.display().to_string(), format!("not a shard part: {e}"))
            })?;
        if part.quick != options.quick {
            return Err(InputError::new(
                path.display().to_string(),
                "was run with a different --quick setting",
            )
            .into());
        }
        results.extend(part.results);
    }
    // Rows that do not fit this version's experiments came from the parts.
    finish_all(&planned, &results, options, RowSource::PartFiles).map_err(|e| match e {
        Error::Input(input) if input.field == "rows" || input.field == "merge" => {
            let names: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
            Error::Input(InputError::new(
                format!("{} ({})", names.join(", "), input.field),
                input.message,
            ))
        }
        other => other,
    })
}

/// The report entry of a figure drawn as `<out>/<name>.{svg,pdf,png}` from `<out>/<name>.csv`.
pub fn figure(name: &str, caption: String) -> FigureEntry {
    FigureEntry {
        name: name.to_string(),
        png: format!("{name}.png"),
        svg: format!("{name}.svg"),
        pdf: format!("{name}.pdf"),
        csv: format!("{name}.csv"),
        tex: format!("{name}.tex"),
        caption,
    }
}

/// Parses an experiment's TOML text into its typed parameters (applying
/// `[quick]` when asked): for tests and tools.
pub fn parse_params<T: serde::de::DeserializeOwned>(
    text: &str,
    quick: bool,
) -> Result<T, InputError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        InputError::new("parameters", e.to_string().replace('\n', " "))
    })?;
    let overrides = table.remove("quick");
    if quick {
        if let Some(toml::Value::Table(q)) = overrides {
            table.extend(q);
        }
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            InputError::new("parameters", e.to_string().replace('\n', " "))
        })
}

/// The table of a convergence figure: per family, every measured point
/// (one series per seed) and, at each distinct T in increasing order, the
/// median over seeds of the bound. `point` gives a row's
/// `(family, seed, T, measured, bound)`.
pub fn convergence_table<R>(
    families: &[String],
    rows: &[R],
    point: impl Fn(&R) -> (&str, u64, u64, f64, f64),
) -> crate::plots::LineTable {
    let mut table = crate::plots::LineTable::new();
    for family in families {
        let mine: Vec<(u64, u64, f64, f64)> = rows
            .iter()
            .map(&point)
            .filter(|(f, ..)| f == family)
            .map(|(_, seed, t, measured, bound)| (seed, t, measured, bound))
            .collect();
        for &(seed, t, measured, _) in &mine {
            table.measured(family, seed, t as f64, measured);
        }
        let mut ts: Vec<u64> = mine.iter().map(|m| m.1).collect();
        ts.sort_unstable();
        ts.dedup();
        for t in ts {
            let bounds: Vec<f64> = mine.iter().filter(|m| m.1 == t).map(|m| m.3).collect();
            table.bound(family, t as f64, setup::median(&bounds));
        }
    }
    table
}

/// Writes `<out>/<name>.csv` from the table, reads it back, and draws
/// `<out>/<name>.{svg,png}` from what was read: the figure shows the file.
pub fn draw_convergence(
    table: &crate::plots::LineTable,
    out: &Path,
    name: &str,
    x_label: &str,
    y_label: &str,
) -> Result<(), Error> {
    let csv = out.join(format!("{name}.csv"));
    table.write_csv(&csv).map_err(|e| Error::io("", e))?;
    let drawn = crate::plots::LineTable::read_csv(&csv).map_err(|e| Error::io("", e))?;
    crate::plots::lines::convergence_chart(&drawn, x_label, y_label, &out.join(name))
        .map_err(|e| Error::io("", e))?;
    Ok(())
}

/// Reads an `f64` row field written as null (serde_json writes NaN and the
/// infinities as null) back as NaN, so a non-finite measurement reaches its
/// check, which fails and says why, instead of aborting the run.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// [`nan_if_null`] for every element of a `Vec<f64>` row field.
pub fn nans_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// One `(x, y)` series per seed, in order of first appearance, from the rows
/// for which `point` gives `(seed, x, y)`: the input of a common-exponent fit.
pub fn seed_series<R>(
    rows: &[&R],
    point: impl Fn(&R) -> Option<(u64, f64, f64)>,
) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut seeds: Vec<u64> = Vec::new();
    let mut series: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for (seed, x, y) in rows.iter().filter_map(|r| point(r)) {
        let k = match seeds.iter().position(|&s| s == seed) {
            Some(k) => k,
            None => {
                seeds.push(seed);
                series.push((Vec::new(), Vec::new()));
                seeds.len() - 1
            }
        };
        series[k].0.push(x);
        series[k].1.push(y);
    }
    series
}

/// Borrowed views of [`seed_series`] for [`crate::theory::checks::common_rate_matches`].
pub fn as_slices(series: &[(Vec<f64>, Vec<f64>)]) -> Vec<(&[f64], &[f64])> {
    series
        .iter()
        .map(|(x, y)| (x.as_slice(), y.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed experiment small enough to run in a test: cell i yields one
    /// row (i, i/2); `finish` reports how many rows and which errors it got.
    struct Toy;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ToyParams {
        n: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct ToyRow {
        i: u64,
        x: f64,
    }

    impl Experiment for Toy {
        type Params = ToyParams;
        type Cell = u64;
        type Row = ToyRow;

        fn name(&self) -> &'static str {
            "toy"
        }

        fn default_params(&self) -> &'static str {
            "n = 3\n"
        }

        fn seeds(&self, p: &ToyParams) -> Vec<u64> {
            vec![p.n]
        }

        fn cells(&self, p: &ToyParams) -> Result<Vec<Keyed<u64>>, InputError> {
            Ok((0..p.n)
                .map(|i| Keyed {
                    key: format!("c{i}"),
                    cell: i,
                })
                .collect())
        }

        fn run_cell(&self, _p: &ToyParams, cell: &u64) -> Result<Vec<ToyRow>, Error> {
            Ok(vec![ToyRow {
                i: *cell,
                x: *cell as f64 / 2.0,
            }])
        }

        fn finish(
            &self,
            _p: &ToyParams,
            cells: &[CellRows<'_, u64, ToyRow>],
            _out: &Path,
        ) -> Result<Finished, Error> {
            let errors: Vec<String> = cells
                .iter()
                .filter_map(|c| c.error.map(|e| format!("{}={}:{e}", c.key, c.cell)))
                .collect();
            Ok(Finished {
                checks: vec![Check::new(
                    format!("rows {}", all_rows(cells).len()),
                    true,
                    Value::Null,
                    Value::Null,
                    errors.join(","),
                )],
                figures: Vec::new(),
            })
        }
    }

    fn result(key: &str, rows: Vec<Value>, error: Option<&str>) -> CellResult {
        CellResult {
            experiment: "toy".into(),
            key: key.into(),
            rows,
            error: error.map(String::from),
        }
    }

    #[test]
    fn typed_rows_cross_the_json_boundary_once() {
        let params = load_params(&Toy, None, false).unwrap();
        let prepared = Toy.prepare(&params).unwrap();
        assert_eq!(prepared.seeds(), vec![3]);
        assert_eq!(prepared.keys(), vec!["c0", "c1", "c2"]);
        assert_eq!(
            prepared.run_cell(1).unwrap(),
            vec![serde_json::json!({"i": 1, "x": 0.5})]
        );
        let mut results: Vec<CellResult> = (0..3)
            .map(|c| result(&format!("c{c}"), prepared.run_cell(c).unwrap(), None))
            .collect();
        results[2] = result("c2", Vec::new(), Some("boom"));
        let finished = prepared.finish(&results, Path::new(".")).unwrap();
        assert_eq!(finished.checks[0].name, "rows 2");
        assert_eq!(finished.checks[0].detail, "c2=2:boom");
    }

    #[test]
    fn a_row_that_does_not_fit_is_an_input_error_naming_rows() {
        let params = load_params(&Toy, None, false).unwrap();
        let prepared = Toy.prepare(&params).unwrap();
        let results = vec![
            result("c0", vec![serde_json::json!({"i": 0, "x": 0.0})], None),
            result("c1", vec![serde_json::json!({"i": "one"})], None),
            result("c2", Vec::new(), None),
        ];
        match prepared.finish(&results, Path::new(".")) {
            Err(Error::Input(e)) => {
                assert_eq!(e.field, "rows");
                assert!(e.message.contains("cell c1"), "{}", e.message);
            }
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn parameters_that_do_not_parse_are_an_input_error_before_any_cell() {
        let mut params = load_params(&Toy, None, false).unwrap();
        params.table.insert("m".into(), toml::Value::Integer(1));
        match Toy.prepare(&params) {
            Err(Error::Input(e)) => assert!(e.field.contains("toy"), "{}", e.field),
            Err(other) => panic!("expected an input error, got {other}"),
            Ok(_) => panic!("unknown key accepted"),
        }
    }

    #[test]
    fn family_seed_cells_are_keyed_family_then_seed() {
        let cells = FamilySeed::grid(&["a".into(), "b".into()], &[1, 2]);
        let keys: Vec<&str> = cells.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["a/seed1", "a/seed2", "b/seed1", "b/seed2"]);
        assert_eq!(
            cells[3].cell,
            FamilySeed {
                family: "b".into(),
                seed: 2
            }
        );
    }
}
