//! Problem files (JSON), as cli-contract.md specifies:
//!
//! - `{"kind": "quadratic", "tasks": [{"a": [[..]], "c": [..], "b": 0.0}, ..]}`
//! - `{"kind": "least_squares", "tasks": [{"x": [[..]], "y": [..]} | {"x_path": "t0_x.npy", "y_path": "t0_y.npy"}, ..]}`
//! - `{"kind": "logistic", "l2": 0.01, "tasks": [...as least squares, labels +1/-1...]}`
//!
//! plus an optional top-level `"radius"` (the ball `||theta|| <= radius`) and,
//! for least squares, `"gradient_form": "auto" | "data" | "gram"`; for data
//! problems, `"dtype": "f64" | "f32"` (the type the data are stored in; see
//! [`Loader::data_task`]). Data paths are relative to the problem file. Optional keys may be `null` (absent);
//! unknown keys are rejected so that a misspelt `"radius"` cannot silently
//! turn into an unconstrained problem.
//!
//! Every error names the problem file and the JSON field, and where data came
//! from a file, that file: `p.json: tasks[0].x_path (t0_x.npy): file not found`.

use super::{
    read_samples_as, read_vector_as, write_json_atomic, write_npy_transposed, write_npy_typed,
    write_npy_vector,
};
use crate::ball::FeasibleSet;
use crate::error::{check_positive, InputError};
use crate::family::{
    GradientForm, LeastSquaresFamily, LogisticFamily, QuadraticFamily, QuadraticTask, SampleValues,
    Samples, TaskData, TaskFamily,
};
use crate::memory::Values;
use crate::scaling::Scaling;
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use taskrobust::linalg::element::{Dtype, Element};

/// Problem files hold inline numbers for small problems; parsed JSON takes
/// several times the text's size, so larger files are refused before reading.
pub const MAX_PROBLEM_BYTES: u64 = 256 << 20;

/// The kind of a problem: its file's `"kind"`, `generate --kind`, and the
/// `"kind"` reported by `solve`. Spelt in snake case everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum FamilyKind {
    Quadratic,
    LeastSquares,
    Logistic,
}

impl FamilyKind {
    /// Every kind, in the order messages list them.
    pub const ALL: [FamilyKind; 3] = [
        FamilyKind::Quadratic,
        FamilyKind::LeastSquares,
        FamilyKind::Logistic,
    ];

    /// `"quadratic"`, `"least_squares"` or `"logistic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyKind::Quadratic => "quadratic",
            FamilyKind::LeastSquares => "least_squares",
            FamilyKind::Logistic => "logistic",
        }
    }

    /// The kind spelt `name`, if any.
    pub fn from_name(name: &str) -> Option<FamilyKind> {
        FamilyKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the problem is given by data samples (`x`, `y`).
    pub fn has_data(self) -> bool {
        self != FamilyKind::Quadratic
    }
}

impl fmt::Display for FamilyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem read from a file, ready for the solvers.
#[derive(Clone)]
pub struct LoadedProblem {
    pub family: Arc<dyn TaskFamily>,
    pub set: FeasibleSet,
    pub kind: FamilyKind,
    /// The problem file as given.
    pub path: PathBuf,
    /// Per task, the fields its data came from (`tasks[i].c`, or
    /// `tasks[i].x_path (t0_x.npy)`), with their largest magnitude where it
    /// was cheap to know (inline quadratics): for naming overflow.
    pub fields: Vec<Vec<(String, Option<f64>)>>,
    /// The units `family` and `set` are in (see [`crate::scaling`]): the
    /// identity unless the data lie far from 1.
    pub scaling: Scaling,
}

impl fmt::Debug for LoadedProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedProblem")
            .field("kind", &self.kind)
            .field("tasks", &self.family.num_tasks())
            .field("dim", &self.family.dim())
            .field("set", &self.set)
            .field("path", &self.path)
            .finish()
    }
}

/// Reads and validates a problem file.
pub fn load_problem(path: &Path) -> Result<LoadedProblem, InputError> {
    let file = path.display().to_string();
    let size = super::regular_file_size(path, &file)?;
    if size > MAX_PROBLEM_BYTES {
        return Err(InputError::new(
            &file,
            format!(
                "is {}, more than the {} a problem file may be; \
                 keep large data in .npy files (x_path, y_path)",
                crate::memory::gigabytes(size as f64),
                crate::memory::gigabytes(MAX_PROBLEM_BYTES as f64)
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| super::read_error(&file, &e))?;
    // Parsed as a tree first: duplicate keys are refused at any depth, with
    // their path; then typed (see [`ProblemFile`]) and checked ([`Loader`]).
    let root: Value = super::strict_json::parse(&text).map_err(|e| {
        let what = if e.to_string().starts_with("duplicate key") {
            "has a"
        } else {
            "is not valid JSON:"
        };
        InputError::new(&file, format!("{what} {e}"))
    })?;
    drop(text);
    let problem = ProblemFile::from_value(root).map_err(|(field, message)| {
        if field.is_empty() {
            InputError::new(&file, message)
        } else {
            InputError::new(format!("{file}: {field}"), message)
        }
    })?;
    let kind = problem.kind();
    let loader = Loader {
        file,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let (family, set, fields, scaling) = loader.load(problem)?;
    Ok(LoadedProblem {
        family,
        set,
        kind,
        path: path.to_path_buf(),
        fields,
        scaling,
    })
}

const RESCALE: &str = "rescale the data (divide it by a power of ten) so that losses and \
     gradients fit in f64";

/// Refuses a problem whose losses, gradients (or their squared norms, which
/// the step rules use) or known constants overflow f64 at the start point
/// `theta0`: the solvers would return infinities or NaN. The error names the
/// task's field that is too large, or `--init` where the data are fine at
/// zero, and suggests rescaling.
pub fn check_overflow(
    problem: &LoadedProblem,
    theta0: &DVector<f64>,
    init_given: bool,
) -> Result<(), InputError> {
    let family = problem.family.as_ref();
    let file = problem.path.display().to_string();
    let (m, d) = (family.num_tasks(), family.dim());
    let at_zero = DVector::zeros(d);
    let mut losses = vec![0.0; m];
    let mut gradient = DVector::zeros(d);
    // The first task whose loss or gradient overflows at theta, and which.
    let overflow_at = |theta: &DVector<f64>,
                       losses: &mut Vec<f64>,
                       gradient: &mut DVector<f64>|
     -> Result<Option<(usize, &'static str, f64)>, crate::Error> {
        family.losses(theta, losses)?;
        for (i, &loss) in losses.iter().enumerate() {
            // The loss is reported in the problem's units, so it must fit there too.
            let reported = crate::scaling::ldexp(loss, problem.scaling.loss_exp);
            if !reported.is_finite() {
                return Ok(Some((i, "loss", reported)));
            }
            family.task_gradient(i, theta, gradient)?;
            let squared = gradient.iter().map(|g| g * g).sum::<f64>();
            if !squared.is_finite() {
                return Ok(Some((i, "gradient", squared.sqrt())));
            }
        }
        Ok(None)
    };
    let field_of = |i: usize, what: &str| -> String {
        let fields = problem.fields.get(i).cloned().unwrap_or_default();
        // Quadratics: the largest field. Data: at theta = 0 a loss depends
        // on y alone; a gradient, on x where y is fine.
        let known = fields
            .iter()
            .filter_map(|(name, size)| size.map(|s| (name, s)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match (known, fields.as_slice()) {
            (Some((name, _)), _) => name.clone(),
            (None, [x, y]) => {
                if what == "loss" && problem.kind == FamilyKind::LeastSquares {
                    y.0.clone()
                } else {
                    x.0.clone()
                }
            }
            _ => format!("tasks[{i}]"),
        }
    };
    let unevaluable =
        |e: crate::Error| InputError::new(file.clone(), format!("cannot evaluate its tasks: {e}"));
    if let Some((i, what, value)) =
        overflow_at(&at_zero, &mut losses, &mut gradient).map_err(unevaluable)?
    {
        return Err(InputError::new(
            format!("{file}: {}", field_of(i, what)),
            format!("task {i}'s {what} at theta = 0 overflows f64 ({value:e}); {RESCALE}"),
        ));
    }
    if init_given {
        if let Some((i, what, value)) =
            overflow_at(theta0, &mut losses, &mut gradient).map_err(unevaluable)?
        {
            return Err(InputError::new(
                "--init",
                format!(
                    "task {i}'s {what} overflows f64 ({value:e}) at this start point of {file}; \
                     rescale --init or the data"
                ),
            ));
        }
    }
    for (name, value) in [
        ("smoothness", family.known_smoothness()),
        ("strong convexity", family.known_strong_convexity()),
    ] {
        if let Some(v) = value.filter(|v| !v.is_finite()) {
            let field = problem
                .fields
                .iter()
                .flatten()
                .filter_map(|(n, s)| s.map(|s| (n, s)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or_else(|| field_of(0, "constant"), |(n, _)| n.clone());
            return Err(InputError::new(
                format!("{file}: {field}"),
                format!("the problem's {name} constant overflows f64 ({v:e}); {RESCALE}"),
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ schema

/// The file's shape, one struct per kind: what serde checks (types, unknown
/// keys, missing keys) before [`Loader`] checks meaning (shapes, values,
/// data files). Optional keys may be `null`, which counts as absent.
///
/// `kind` picks the variant. The derive reads such a file too, but its
/// buffering loses the JSON path of a type error, so [`ProblemFile::from_value`]
/// reads the tag itself and then the variant's struct, path-aware.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ProblemFile {
    Quadratic(QuadraticFile),
    LeastSquares(LeastSquaresFile),
    Logistic(LogisticFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuadraticFile {
    tasks: Tasks<QuadraticEntry>,
    radius: Option<Number>,
    #[allow(dead_code)] // documentation only
    name: Option<IgnoredAny>,
    #[allow(dead_code)] // documentation only
    description: Option<IgnoredAny>,
    #[allow(dead_code)] // documentation only
    comment: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeastSquaresFile {
    tasks: Tasks<DataEntry>,
    radius: Option<Number>,
    gradient_form: Option<FormName>,
    dtype: Option<DtypeName>,
    #[allow(dead_code)] // documentation only
    name: Option<IgnoredAny>,
    #[allow(dead_code)] // documentation only
    description: Option<IgnoredAny>,
    #[allow(dead_code)] // documentation only
    comment: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogisticFile {
    tasks: Tasks<DataEntry>,
    radius: Option<Number>,
    l2: Option<Number>,
    dtype: Option<DtypeName>,
    #[allow(dead_code)] // documentation only
    name: Option<IgnoredAny>,
    #[allow(dead_code)] // documentation only
    description: Option<IgnoredAny>,
    #[allow(dead_code)] // documentation only
    comment: Option<IgnoredAny>,
}

/// `{"a": [[..]], "c": [..], "b": 0.0}`; `b` may be left out (0) but not null.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuadraticEntry {
    a: Rows,
    c: Numbers,
    #[serde(default, deserialize_with = "number_not_null")]
    b: Option<f64>,
    #[allow(dead_code)] // documentation only
    name: Option<IgnoredAny>,
}

/// x inline or from `x_path`, y likewise (exactly one of each, checked later).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataEntry {
    x: Option<Rows>,
    y: Option<Numbers>,
    x_path: Option<FileName>,
    y_path: Option<FileName>,
    #[allow(dead_code)] // documentation only
    name: Option<IgnoredAny>,
}

impl ProblemFile {
    fn kind(&self) -> FamilyKind {
        match self {
            ProblemFile::Quadratic(_) => FamilyKind::Quadratic,
            ProblemFile::LeastSquares(_) => FamilyKind::LeastSquares,
            ProblemFile::Logistic(_) => FamilyKind::Logistic,
        }
    }

    /// Reads the tag, then the kind's struct; an error is `(JSON path, message)`.
    fn from_value(root: Value) -> Result<ProblemFile, (String, String)> {
        let Value::Object(mut map) = root else {
            return Err((
                String::new(),
                format!(
                    "expected a JSON object at the top level, got {}",
                    type_name(&root)
                ),
            ));
        };
        let kind = match map.remove("kind") {
            None => return Err(("kind".into(), "is missing".into())),
            Some(Value::String(s)) => FamilyKind::from_name(&s).ok_or_else(|| {
                let names: Vec<&str> = FamilyKind::ALL.iter().map(|k| k.as_str()).collect();
                (
                    "kind".to_string(),
                    format!("unknown kind '{s}'; expected one of: {}", names.join(", ")),
                )
            })?,
            Some(other) => {
                return Err((
                    "kind".into(),
                    format!("expected a string, got {}", type_name(&other)),
                ))
            }
        };
        let rest = Value::Object(map);
        let read = |e: serde_path_to_error::Error<serde_json::Error>| explain(kind, &e);
        Ok(match kind {
            FamilyKind::Quadratic => {
                ProblemFile::Quadratic(serde_path_to_error::deserialize(rest).map_err(read)?)
            }
            FamilyKind::LeastSquares => {
                ProblemFile::LeastSquares(serde_path_to_error::deserialize(rest).map_err(read)?)
            }
            FamilyKind::Logistic => {
                ProblemFile::Logistic(serde_path_to_error::deserialize(rest).map_err(read)?)
            }
        })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde's message for a value of the wrong type names it as serde sees it
/// ("invalid type: map, expected ..."): this names it as JSON does.
fn json_type_name(unexpected: &str) -> &str {
    [
        ("unit value", "null"),
        ("boolean", "a boolean"),
        ("integer", "a number"),
        ("floating point", "a number"),
        ("string", "a string"),
        ("sequence", "an array"),
        ("map", "an object"),
    ]
    .into_iter()
    .find(|(serde, _)| unexpected.starts_with(serde))
    .map_or(unexpected, |(_, json)| json)
}

/// `(path, message)` for a serde error, worded as the hand-written checks
/// are: `tasks[0].y[0]`, "expected a number, got a string"; `tasks[0].a`,
/// "is missing"; `l2`, "only applies to kind logistic".
fn explain(
    kind: FamilyKind,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> (String, String) {
    let mut path = e.path().to_string();
    if path == "." {
        path.clear();
    }
    // The field a key error is about: serde_path_to_error names an unknown
    // key's path, but a missing key's parent.
    let join = |key: &str| {
        if path.is_empty() || path == key || path.ends_with(&format!(".{key}")) {
            if path.is_empty() {
                key.to_string()
            } else {
                path.clone()
            }
        } else {
            format!("{path}.{key}")
        }
    };
    let message = e.inner().to_string();
    let quoted = |rest: &str| rest.split('`').nth(1).unwrap_or_default().to_string();
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((unexpected, expected)) = rest.rsplit_once(", expected ") {
            // A derived struct expects "struct QuadraticEntry": a task.
            let expected = if expected.starts_with("struct ") {
                "an object (a task)"
            } else {
                expected
            };
            return (
                path,
                format!("expected {expected}, got {}", json_type_name(unexpected)),
            );
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return (join(&quoted(rest)), "is missing".into());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let key = quoted(rest);
        let field = join(&key);
        let message = match key.as_str() {
            "l2" if path.is_empty() || path == "l2" => {
                format!("only applies to kind logistic, not {kind}")
            }
            "gradient_form" if path.is_empty() || path == "gradient_form" => {
                format!("only applies to kind least_squares, not {kind}")
            }
            _ => {
                let mut allowed: Vec<&str> = rest.split('`').skip(3).step_by(2).collect();
                if !field.contains('.') && !field.contains('[') {
                    allowed.insert(0, "kind");
                }
                format!("unknown key; expected one of: {}", allowed.join(", "))
            }
        };
        return (field, message);
    }
    (path, message)
}

/// A JSON number (`null`, strings and the rest are refused by name).
#[derive(Debug, Clone, Copy)]
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!(
                        "is {v}; NaN or infinite values are not allowed"
                    )));
                }
                Ok(Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        deserializer.deserialize_f64(V)
    }
}

/// `b`: absent is 0 (serde's default), but an explicit `null` is a mistake.
fn number_not_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Option::<Number>::deserialize(deserializer)? {
        Some(Number(v)) => Ok(Some(v)),
        None => Err(de::Error::custom("is null; expected a number")),
    }
}

/// A JSON array read element by element (so an error names its index);
/// type errors call it `LISTS[WHAT]` ("expected an array of tasks").
struct List<T, const WHAT: usize>(Vec<T>);

const LISTS: [&str; 4] = [
    "an array of tasks",
    "an array of numbers",
    "a row (an array of numbers)",
    "an array of rows",
];

/// `tasks`.
type Tasks<T> = List<T, 0>;

/// Inline numbers (`c`, `y`).
type Numbers = List<Number, 1>;

/// One row of a matrix.
type Row = List<Number, 2>;

/// Inline rows (`a`, `x`): checked for raggedness by [`Loader::rows`].
type Rows = List<Row, 3>;

impl<T: fmt::Debug, const WHAT: usize> fmt::Debug for List<T, WHAT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, T: Deserialize<'de>, const WHAT: usize> Deserialize<'de> for List<T, WHAT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T, const WHAT: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const WHAT: usize> Visitor<'de> for V<T, WHAT> {
            type Value = List<T, WHAT>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(LISTS[WHAT])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List(items))
            }
        }
        deserializer.deserialize_seq(V(std::marker::PhantomData))
    }
}

impl<const WHAT: usize> List<Number, WHAT> {
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.0.iter().map(|Number(v)| *v)
    }
}

/// A data file's name, relative to the problem file; not empty.
#[derive(Debug)]
struct FileName(String);

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FileName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileName, E> {
                if v.is_empty() {
                    return Err(E::custom("expected a file name, got an empty string"));
                }
                Ok(FileName(v.to_string()))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A string field that names one of a few values: `parse` maps the name,
/// and anything else is `is "<v>"; expected <expected>`.
fn deserialize_name<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expected: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, D::Error> {
    struct V<T> {
        expected: &'static str,
        parse: fn(&str) -> Option<T>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v)
                .ok_or_else(|| E::custom(format!("is {v:?}; expected {}", self.expected)))
        }
    }
    deserializer.deserialize_str(V { expected, parse })
}

/// `"auto" | "data" | "gram"`.
#[derive(Debug)]
struct FormName(GradientForm);

impl<'de> Deserialize<'de> for FormName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_name(
            deserializer,
            "\"auto\", \"data\" or \"gram\"",
            |v| match v {
                "auto" => Some(FormName(GradientForm::Auto)),
                "data" => Some(FormName(GradientForm::Data)),
                "gram" => Some(FormName(GradientForm::Gram)),
                _ => None,
            },
        )
    }
}

/// `"f64" | "f32"` (also `"float64" | "float32"`).
#[derive(Debug, Clone, Copy)]
struct DtypeName(Dtype);

impl<'de> Deserialize<'de> for DtypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_name(deserializer, "\"f64\" or \"f32\"", |v| {
            Dtype::from_name(v).map(DtypeName)
        })
    }
}

// -------------------------------------------------------------- validation

/// A task's x or y: inline numbers, or the file (full path, label for
/// messages) it is to be read from.
enum DataSource<T> {
    Inline(T),
    File(PathBuf, String),
}

/// Where one of a task's x / y came from, for error messages.
struct Sources {
    x: String,
    y: String,
}

/// What [`Loader::load`] returns: the family, its set and the fields of
/// each task (see [`LoadedProblem::fields`]).
type Loaded = (
    Arc<dyn TaskFamily>,
    FeasibleSet,
    Vec<Vec<(String, Option<f64>)>>,
    Scaling,
);

struct Loader {
    /// The problem file as given, prefixed to every field.
    file: String,
    /// Data paths are relative to this directory.
    dir: PathBuf,
}

impl Loader {
    fn err(&self, field: &str, message: impl Into<String>) -> InputError {
        InputError::new(format!("{}: {field}", self.file), message)
    }

    /// Equally long rows: `(rows, cols, row-major values)`.
    fn rows(&self, value: Rows, field: &str) -> Result<(usize, usize, Vec<f64>), InputError> {
        let rows = value.0;
        let Some(first) = rows.first() else {
            return Err(self.err(field, "has no rows"));
        };
        let cols = first.0.len();
        if cols == 0 {
            return Err(self.err(&format!("{field}[0]"), "is empty"));
        }
        // Every row's length is known before the matrix is allocated.
        if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.0.len() != cols) {
            return Err(self.err(
                &format!("{field}[{r}]"),
                format!(
                    "has {} entries, expected {cols} (as {field}[0]); rows must not be ragged",
                    row.0.len()
                ),
            ));
        }
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in &rows {
            data.extend(row.values());
        }
        Ok((rows.len(), cols, data))
    }

    fn radius(&self, radius: Option<Number>) -> Result<FeasibleSet, InputError> {
        Ok(match radius {
            None => FeasibleSet::Unconstrained,
            Some(v) => {
                FeasibleSet::with_radius(check_positive("radius", v.0).map_err(|e| self.wrap(e))?)
            }
        })
    }

    fn tasks<T>(&self, tasks: Tasks<T>) -> Result<Vec<T>, InputError> {
        if tasks.0.is_empty() {
            return Err(self.err("tasks", "no tasks given"));
        }
        Ok(tasks.0)
    }

    fn load(&self, problem: ProblemFile) -> Result<Loaded, InputError> {
        // Scalars first: fail before reading any (possibly large) data file.
        let fields: Vec<Vec<(String, Option<f64>)>>;
        let scaling: Scaling;
        let (family, set): (Arc<dyn TaskFamily>, FeasibleSet) = match problem {
            ProblemFile::Quadratic(file) => {
                let set = self.radius(file.radius)?;
                let mut tasks = self
                    .tasks(file.tasks)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| self.quadratic_task(t, i))
                    .collect::<Result<Vec<_>, _>>()?;
                let largest = crate::scaling::largest_magnitude;
                fields = tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        vec![
                            (format!("tasks[{i}].a"), Some(largest(t.a.as_slice()))),
                            (format!("tasks[{i}].c"), Some(largest(t.c.as_slice()))),
                            (format!("tasks[{i}].b"), Some(t.b.abs())),
                        ]
                    })
                    .collect();
                scaling = Scaling::equilibrate_quadratic(&mut tasks);
                let family = QuadraticFamily::new(tasks).map_err(|e| self.wrap(e))?;
                (Arc::new(family), set)
            }
            ProblemFile::LeastSquares(file) => {
                let set = self.radius(file.radius)?;
                let form = file.gradient_form.map_or(GradientForm::Auto, |f| f.0);
                let tasks = self.tasks(file.tasks)?;
                // Least squares reads its data a few times (the Gram form)
                // and copies what it streams: large files are mapped.
                let dtype = file.dtype.map(|d| d.0);
                let (mut data, sources) = self.data_tasks(tasks, true, dtype)?;
                fields = Self::data_fields(&sources);
                scaling = Scaling::equilibrate_least_squares(&mut data);
                // Rescaling keeps NaN and infinities, so the constructors
                // still find them (powers of two change no other check).
                let family = LeastSquaresFamily::new(data, form)
                    .map_err(|e| self.wrap(relabel(e, &sources)))?;
                (Arc::new(family), set)
            }
            ProblemFile::Logistic(file) => {
                let set = self.radius(file.radius)?;
                let l2 = match file.l2 {
                    None => {
                        return Err(self.err(
                            "l2",
                            "is missing; logistic problems need a positive l2 penalty",
                        ))
                    }
                    Some(v) => check_positive("l2", v.0).map_err(|e| self.wrap(e))?,
                };
                let tasks = self.tasks(file.tasks)?;
                // Logistic regression streams its data: large files are read.
                let dtype = file.dtype.map(|d| d.0);
                let (mut data, sources) = self.data_tasks(tasks, false, dtype)?;
                fields = Self::data_fields(&sources);
                let (units, l2) = Scaling::equilibrate_logistic(&mut data, l2);
                scaling = units;
                let family =
                    LogisticFamily::new(data, l2).map_err(|e| self.wrap(relabel(e, &sources)))?;
                (Arc::new(family), set)
            }
        };
        let set = match set {
            FeasibleSet::Ball { radius } if !scaling.is_identity() => {
                let internal = scaling.length_to_internal(radius);
                if internal.is_finite() && !internal.is_normal() {
                    return Err(self.err(
                        "radius",
                        format!(
                            "{radius:e} is too small for the scale of the data (2^{} in \
                             internal units); rescale theta's units or the data",
                            -scaling.theta_exp
                        ),
                    ));
                }
                // A ball wider than f64 contains every representable theta.
                if internal.is_finite() {
                    FeasibleSet::with_radius(internal)
                } else {
                    FeasibleSet::Unconstrained
                }
            }
            other => other,
        };
        Ok((family, set, fields, scaling))
    }

    fn data_fields(sources: &[Sources]) -> Vec<Vec<(String, Option<f64>)>> {
        sources
            .iter()
            .map(|s| vec![(s.x.clone(), None), (s.y.clone(), None)])
            .collect()
    }

    /// Prefixes an error from the family constructors with the file name.
    fn wrap(&self, e: InputError) -> InputError {
        InputError::new(format!("{}: {}", self.file, e.field), e.message)
    }

    fn quadratic_task(&self, task: QuadraticEntry, i: usize) -> Result<QuadraticTask, InputError> {
        let (rows, cols, a) = self.rows(task.a, &format!("tasks[{i}].a"))?;
        Ok(QuadraticTask {
            a: DMatrix::from_row_slice(rows, cols, &a),
            c: DVector::from_iterator(task.c.0.len(), task.c.values()),
            b: task.b.unwrap_or(0.0),
        })
    }

    /// `x` / `x_path` (or `y` / `y_path`) of task i: exactly one must be given.
    fn data_source<T>(
        &self,
        inline: Option<T>,
        file: Option<FileName>,
        i: usize,
        name: &str,
    ) -> Result<DataSource<T>, InputError> {
        let path_key = format!("{name}_path");
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.err(
                &format!("tasks[{i}]"),
                format!("gives both {name} and {path_key}; give one"),
            )),
            (None, None) => Err(self.err(
                &format!("tasks[{i}]"),
                format!("needs {name} (inline numbers) or {path_key} (a .npy or .csv file)"),
            )),
            (Some(v), None) => Ok(DataSource::Inline(v)),
            (None, Some(FileName(rel))) => {
                let label = format!("tasks[{i}].{path_key} ({rel})");
                Ok(DataSource::File(self.dir.join(rel), label))
            }
        }
    }

    /// One task's x and y, read and checked against each other. With
    /// `map_files`, large `.npy` files are mapped rather than read (see
    /// [`crate::memory`]).
    ///
    /// `dtype` is the problem's `"dtype"`. Absent, `.npy` files keep their own
    /// type (`'<f8'` or `'<f4'`) and CSV and inline numbers are f64. `"f32"`:
    /// CSV numbers are rounded once from their text to the nearest f32,
    /// inline numbers to the f32 nearest their (f64) JSON value, and `.npy`
    /// files must be `'<f4'`; `"f64"`: `.npy` files must be `'<f8'`. x keeps
    /// its type in memory; y (n values, 1/d of x) is widened to f64, exactly.
    fn data_task(
        &self,
        i: usize,
        task: DataEntry,
        map_files: bool,
        dtype: Option<Dtype>,
    ) -> Result<(TaskData, Sources), InputError> {
        let x = self.data_source(task.x, task.x_path, i, "x")?;
        let y = self.data_source(task.y, task.y_path, i, "y")?;
        let (xt, x_label) = match x {
            DataSource::File(path, label) => (
                read_samples_as(&path, &format!("{}: {label}", self.file), map_files, dtype)?,
                label,
            ),
            DataSource::Inline(rows) => {
                let field = format!("tasks[{i}].x");
                let (n, d, values) = self.rows(rows, &field)?;
                // Row-major n x d is column-major d x n: the transposed layout.
                let samples = match dtype {
                    Some(Dtype::F32) => {
                        Samples::new_f32(d, n, Values::Owned(self.to_f32(&values, &field, d)?))
                    }
                    _ => Samples::new(d, n, Values::Owned(values)),
                };
                (samples, field)
            }
        };
        let (y, y_label) = match y {
            DataSource::File(path, label) => (
                read_vector_as(&path, &format!("{}: {label}", self.file), dtype)?,
                label,
            ),
            DataSource::Inline(numbers) => {
                let field = format!("tasks[{i}].y");
                let mut values: Vec<f64> = numbers.values().collect();
                if values.is_empty() {
                    return Err(self.err(&field, "is empty"));
                }
                if dtype == Some(Dtype::F32) {
                    values = self
                        .to_f32(&values, &field, 0)?
                        .into_iter()
                        .map(f32::widen)
                        .collect();
                }
                (DVector::from_vec(values), field)
            }
        };
        if y.len() != xt.ncols() {
            return Err(self.err(
                &y_label,
                format!(
                    "has {} entries but {x_label} has {} rows",
                    y.len(),
                    xt.ncols()
                ),
            ));
        }
        Ok((
            TaskData { xt, y: y.into() },
            Sources {
                x: x_label,
                y: y_label,
            },
        ))
    }

    /// Inline numbers (`cols` per row; 0 for a vector) rounded to the
    /// nearest f32; one beyond f32's range is an error naming its position.
    fn to_f32(&self, values: &[f64], field: &str, cols: usize) -> Result<Vec<f32>, InputError> {
        let narrow: Vec<f32> = values.iter().map(|&v| f32::narrow(v)).collect();
        if let Some(k) = narrow.iter().position(|v| !v.is_finite()) {
            let at = match k.checked_div(cols) {
                Some(row) => format!("{field}[{row}][{}]", k % cols),
                None => format!("{field}[{k}]"),
            };
            return Err(self.err(
                &at,
                format!(
                    "{:e} is beyond the range of f32 (the problem's \"dtype\")",
                    values[k]
                ),
            ));
        }
        Ok(narrow)
    }

    /// Reads the tasks in parallel (large data files), then reports the first
    /// error in task order, as a sequential read would.
    fn data_tasks(
        &self,
        tasks: Vec<DataEntry>,
        map: bool,
        dtype: Option<Dtype>,
    ) -> Result<(Vec<TaskData>, Vec<Sources>), InputError> {
        let count = tasks.len();
        let read: Vec<Result<(TaskData, Sources), InputError>> = tasks
            .into_par_iter()
            .enumerate()
            .map(|(i, task)| self.data_task(i, task, map, dtype))
            .collect();
        let mut data = Vec::with_capacity(count);
        let mut sources: Vec<Sources> = Vec::with_capacity(count);
        for result in read {
            let (task, source) = result?;
            if let Some(first) = sources.first() {
                let d = data.first().map_or(0, |t: &TaskData| t.xt.nrows());
                if task.xt.nrows() != d {
                    return Err(self.err(
                        &source.x,
                        format!(
                            "has {} columns, expected {d} (as {})",
                            task.xt.nrows(),
                            first.x
                        ),
                    ));
                }
            }
            data.push(task);
            sources.push(source);
        }
        Ok((data, sources))
    }
}

/// Replaces `tasks[i].x` / `tasks[i].y` in a family error by where that
/// data came from (e.g. `tasks[i].y_path (t0_y.csv)`).
fn relabel(e: InputError, sources: &[Sources]) -> InputError {
    let parsed = e
        .field
        .strip_prefix("tasks[")
        .and_then(|rest| rest.split_once("]."))
        .and_then(|(index, name)| Some((index.parse::<usize>().ok()?, name)));
    let field = match parsed {
        Some((i, "x")) if i < sources.len() => sources[i].x.clone(),
        Some((i, "y")) if i < sources.len() => sources[i].y.clone(),
        _ => e.field,
    };
    InputError::new(field, e.message)
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn check_export_scalar(name: &str, value: Option<f64>) -> io::Result<()> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(invalid_input(format!(
            "{name} must be a finite positive number, got {v}"
        ))),
        _ => Ok(()),
    }
}

/// Writes a data problem as `dir/{name}.json` plus, per task i,
/// `dir/{name}_t{i}_x.npy` (n x d, one sample per row) and
/// `dir/{name}_t{i}_y.npy`, and returns the JSON file's path. `kind` is
/// least squares (no `l2`) or logistic (`l2` required). The JSON is
/// written last, so it never refers to missing data files; every file is
/// written atomically. `TaskData::xt` (d x n column-major) is written as is:
/// it is the byte layout of the C-order n x d array, in its stored type.
pub fn export_data_problem(
    dir: &Path,
    name: &str,
    kind: FamilyKind,
    l2: Option<f64>,
    tasks: &[TaskData],
    radius: Option<f64>,
) -> io::Result<PathBuf> {
    export_data_problem_as(dir, name, kind, l2, tasks, radius, None)
}

/// [`export_data_problem`], with `dtype` given: x and y are written as that
/// type (`'<f8'` or `'<f4'`; values rounded to the nearest f32 where they are
/// f64 and `dtype` is f32), and the problem file says `"dtype"`. A value
/// beyond f32's range is an error.
pub fn export_data_problem_as(
    dir: &Path,
    name: &str,
    kind: FamilyKind,
    l2: Option<f64>,
    tasks: &[TaskData],
    radius: Option<f64>,
    dtype: Option<Dtype>,
) -> io::Result<PathBuf> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(invalid_input(format!("'{name}' is not a plain file name")));
    }
    match (kind, l2) {
        (FamilyKind::LeastSquares, None) | (FamilyKind::Logistic, Some(_)) => {}
        (FamilyKind::LeastSquares, Some(_)) => {
            return Err(invalid_input("l2 only applies to kind logistic".into()))
        }
        (FamilyKind::Logistic, None) => return Err(invalid_input("kind logistic needs l2".into())),
        (FamilyKind::Quadratic, _) => {
            return Err(invalid_input(format!(
                "cannot export kind '{kind}' as data; expected least_squares or logistic"
            )))
        }
    }
    check_export_scalar("l2", l2)?;
    check_export_scalar("radius", radius)?;
    if tasks.is_empty() {
        return Err(invalid_input("no tasks to export".into()));
    }
    for (i, t) in tasks.iter().enumerate() {
        if t.y.len() != t.xt.ncols() || t.xt.nrows() != tasks[0].xt.nrows() {
            return Err(invalid_input(format!("task {i} has inconsistent shapes")));
        }
        let largest =
            t.xt.largest_magnitude()
                .max(crate::scaling::largest_magnitude(t.y.as_slice()));
        let finite = t.y.iter().all(|v| v.is_finite())
            && match t.xt.values() {
                SampleValues::F64(x) => taskrobust::error::first_non_finite(x).is_none(),
                SampleValues::F32(x) => taskrobust::error::first_non_finite(x).is_none(),
            };
        if !finite {
            return Err(invalid_input(format!(
                "task {i} holds NaN or infinite values"
            )));
        }
        if dtype == Some(Dtype::F32) && !f32::narrow(largest).is_finite() {
            return Err(invalid_input(format!(
                "task {i} holds {largest:e}, beyond the range of f32"
            )));
        }
    }
    std::fs::create_dir_all(dir)?;
    let mut entries = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let x_name = format!("{name}_t{i}_x.npy");
        let y_name = format!("{name}_t{i}_y.npy");
        match dtype {
            Some(dtype) => {
                write_npy_transposed(&dir.join(&x_name), &task.xt.to_dtype(dtype))?;
                match dtype {
                    Dtype::F64 => write_npy_vector(&dir.join(&y_name), task.y.as_slice())?,
                    Dtype::F32 => {
                        let y: Vec<f32> = task.y.iter().map(|&v| f32::narrow(v)).collect();
                        write_npy_typed(&dir.join(&y_name), &[y.len()], &y)?
                    }
                }
            }
            None => {
                write_npy_transposed(&dir.join(&x_name), &task.xt)?;
                write_npy_vector(&dir.join(&y_name), task.y.as_slice())?;
            }
        }
        entries.push(json!({"x_path": x_name, "y_path": y_name}));
    }
    let mut root = Map::new();
    root.insert("kind".into(), json!(kind));
    if let Some(dtype) = dtype.filter(|&d| d != Dtype::F64) {
        root.insert("dtype".into(), json!(dtype.name()));
    }
    if let Some(l2) = l2 {
        root.insert("l2".into(), json!(l2));
    }
    if let Some(r) = radius {
        root.insert("radius".into(), json!(r));
    }
    root.insert("tasks".into(), Value::Array(entries));
    let path = dir.join(format!("{name}.json"));
    write_json_atomic(&path, &Value::Object(root))?;
    Ok(path)
}

/// Writes quadratic tasks inline as a problem file at `path` (atomically).
/// Numbers are written in shortest round-trip form, so loading the file
/// gives back the same tasks bit for bit.
pub fn export_quadratic_problem(
    path: &Path,
    tasks: &[QuadraticTask],
    radius: Option<f64>,
) -> io::Result<()> {
    check_export_scalar("radius", radius)?;
    if tasks.is_empty() {
        return Err(invalid_input("no tasks to export".into()));
    }
    let mut entries = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let finite = t.a.iter().chain(t.c.iter()).all(|v| v.is_finite()) && t.b.is_finite();
        if !finite {
            // JSON has no NaN: serde_json would write null.
            return Err(invalid_input(format!(
                "task {i} holds NaN or infinite values"
            )));
        }
        let rows: Vec<Vec<f64>> =
            t.a.row_iter()
                .map(|r| r.iter().copied().collect())
                .collect();
        entries.push(json!({"a": rows, "c": t.c.as_slice(), "b": t.b}));
    }
    let mut root = Map::new();
    root.insert("kind".into(), json!(FamilyKind::Quadratic));
    if let Some(r) = radius {
        root.insert("radius".into(), json!(r));
    }
    root.insert("tasks".into(), Value::Array(entries));
    write_json_atomic(path, &Value::Object(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::generators::random_psd;
    use crate::io::test_dir::TestDir;
    use crate::io::{write_npy, write_npy_matrix};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn write(dir: &TestDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Loads `text` as `p.json` and returns the one-line error.
    fn error(dir: &TestDir, text: &str) -> String {
        let path = write(dir, "p.json", text);
        let err = load_problem(&path).unwrap_err();
        let line = err.to_string();
        assert!(!line.contains('\n'), "not one line: {line}");
        assert!(
            line.starts_with(&path.display().to_string()),
            "no file name: {line}"
        );
        line
    }

    fn assert_error(dir: &TestDir, text: &str, expected: &str) {
        let line = error(dir, text);
        assert!(line.contains(expected), "expected '{expected}' in: {line}");
    }

    fn random_tasks(rng: &mut StdRng, m: usize, n: usize, d: usize, labels: bool) -> Vec<TaskData> {
        (0..m)
            .map(|i| {
                let xt = DMatrix::from_fn(d, n + i, |_, _| rng.random_range(-1.0..1.0));
                let y = DVector::from_fn(n + i, |_, _| {
                    let v: f64 = rng.random_range(-1.0..1.0);
                    if labels {
                        v.signum()
                    } else {
                        v
                    }
                });
                TaskData::from_columns(&xt, y)
            })
            .collect()
    }

    fn losses(family: &dyn TaskFamily, theta: &DVector<f64>) -> Vec<f64> {
        let mut out = vec![0.0; family.num_tasks()];
        family.losses(theta, &mut out).unwrap();
        out
    }

    #[test]
    fn data_problems_round_trip_through_npy_files() {
        let dir = TestDir::new("problem-rt");
        let mut rng = StdRng::seed_from_u64(7);
        let theta = DVector::from_fn(5, |_, _| rng.random_range(-1.0..1.0));
        let tasks = random_tasks(&mut rng, 3, 20, 5, false);
        let path = export_data_problem(
            dir.path(),
            "ls",
            FamilyKind::LeastSquares,
            None,
            &tasks,
            None,
        )
        .unwrap();
        let loaded = load_problem(&path).unwrap();
        assert_eq!(
            (loaded.kind.as_str(), loaded.set),
            ("least_squares", FeasibleSet::Unconstrained)
        );
        let direct = LeastSquaresFamily::new(tasks, GradientForm::Auto).unwrap();
        assert_eq!(losses(&*loaded.family, &theta), losses(&direct, &theta));

        let tasks = random_tasks(&mut rng, 4, 9, 5, true);
        let path = export_data_problem(
            dir.path(),
            "lg",
            FamilyKind::Logistic,
            Some(0.05),
            &tasks,
            Some(2.5),
        )
        .unwrap();
        let loaded = load_problem(&path).unwrap();
        assert_eq!(loaded.set, FeasibleSet::with_radius(2.5));
        let direct = LogisticFamily::new(tasks, 0.05).unwrap();
        assert_eq!(losses(&*loaded.family, &theta), losses(&direct, &theta));
        assert!(format!("{loaded:?}").contains("tasks: 4"));
    }

    #[test]
    fn quadratic_problems_round_trip_exactly() {
        let dir = TestDir::new("problem-quad");
        let mut rng = StdRng::seed_from_u64(3);
        let tasks: Vec<QuadraticTask> = (0..3)
            .map(|i| QuadraticTask {
                a: random_psd(&mut rng, 4, 2.0, 10.0),
                c: DVector::from_fn(4, |_, _| rng.random_range(-1.0..1.0)),
                b: 0.1 * i as f64,
            })
            .collect();
        let direct = QuadraticFamily::new(tasks.clone()).unwrap();
        let path = dir.path().join("q.json");
        export_quadratic_problem(&path, direct.tasks(), Some(3.0)).unwrap();
        let loaded = load_problem(&path).unwrap();
        assert_eq!(loaded.set, FeasibleSet::with_radius(3.0));
        let theta = DVector::from_fn(4, |i, _| i as f64 * 0.3);
        assert_eq!(losses(&*loaded.family, &theta), losses(&direct, &theta));
    }

    #[test]
    fn inline_csv_and_npy_data_agree() {
        let dir = TestDir::new("problem-mixed");
        write(&dir, "x.csv", "1,2\n3,4\n5,7\n");
        write(&dir, "y.csv", "1\n0\n-2\n");
        write_npy_matrix(
            &dir.path().join("x.npy"),
            &DMatrix::from_row_slice(3, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0]),
        )
        .unwrap();
        write_npy_vector(&dir.path().join("y.npy"), &[1.0, 0.0, -2.0]).unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let p = write(
            &dir,
            "sub/p.json",
            r#"{"kind": "least_squares", "gradient_form": "data", "radius": null, "tasks": [
                {"x": [[1, 2], [3, 4], [5, 7]], "y": [1, 0, -2]},
                {"x_path": "../x.csv", "y_path": "../y.csv"},
                {"x_path": "../x.npy", "y": [1, 0, -2]}]}"#,
        );
        let loaded = load_problem(&p).unwrap();
        let l = losses(&*loaded.family, &DVector::from_vec(vec![0.5, -0.25]));
        assert_eq!(l.len(), 3);
        assert!(l[0] == l[1] && l[1] == l[2] && l[0] > 0.0, "{l:?}");
    }

    #[test]
    fn unreadable_and_malformed_files() {
        let dir = TestDir::new("problem-file");
        let missing = dir.path().join("missing.json");
        let err = load_problem(&missing).unwrap_err().to_string();
        assert_eq!(err, format!("{}: file not found", missing.display()));
        assert_error(
            &dir,
            "{\"kind\": \"quadratic\", ",
            "is not valid JSON: EOF while parsing",
        );
        assert_error(
            &dir,
            "[1, 2]",
            "expected a JSON object at the top level, got an array",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [], "raduis": 1}"#,
            "p.json: raduis: unknown key",
        );
    }

    #[test]
    fn missing_unknown_kind_and_no_tasks() {
        let dir = TestDir::new("problem-kind");
        assert_error(&dir, r#"{"tasks": []}"#, "p.json: kind: is missing");
        assert_error(
            &dir,
            r#"{"kind": "cubic", "tasks": []}"#,
            "kind: unknown kind 'cubic'; expected one of: quadratic",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": []}"#,
            "p.json: tasks: no tasks given",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic"}"#,
            "p.json: tasks: is missing",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": {}}"#,
            "tasks: expected an array of tasks",
        );
    }

    #[test]
    fn non_symmetric_and_non_psd_matrices() {
        let dir = TestDir::new("problem-psd");
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, 1]], "c": [0, 0]},
                {"a": [[1, 0], [0, 1]], "c": [1, 0]}, {"a": [[1, 2], [0, 1]], "c": [0, 1]}]}"#,
            "p.json: tasks[2].a: is not symmetric",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, -1]], "c": [0, 0], "b": 1}]}"#,
            "p.json: tasks[0].a: is not positive semidefinite",
        );
    }

    #[test]
    fn wrong_shapes_and_ragged_rows() {
        let dir = TestDir::new("problem-shape");
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0]], "c": [0, 0]}]}"#,
            "tasks[0].a[1]: has 1 entries, expected 2 (as tasks[0].a[0]); rows must not be ragged",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, 1]], "c": [0, 0, 0]}]}"#,
            "tasks[0].a: is 2x2, expected 3x3",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [1, 0], "c": [0, 0]}]}"#,
            "tasks[0].a[0]: expected a row (an array of numbers), got a number",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1, 2], [3, 4]], "y": [1, 2, 3]}]}"#,
            "tasks[0].y: has 3 entries but tasks[0].x has 2 rows",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1, 2]], "y": [1]}, {"x": [[1, 2, 3]], "y": [1]}]}"#,
            "tasks[1].x: has 3 columns, expected 2 (as tasks[0].x)",
        );
        write(&dir, "ragged.csv", "1,2\n3\n");
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x_path": "ragged.csv", "y": [1, 2]}]}"#,
            "p.json: tasks[0].x_path (ragged.csv): line 2 has 1 values, expected 2",
        );
        write_npy_vector(&dir.path().join("short.npy"), &[1.0, 2.0]).unwrap();
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1], [2], [3]], "y_path": "short.npy"}]}"#,
            "tasks[0].y_path (short.npy): has 2 entries but tasks[0].x has 3 rows",
        );
        write_npy_matrix(
            &dir.path().join("y2d.npy"),
            &DMatrix::from_element(3, 1, 1.0),
        )
        .unwrap();
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1], [2], [3]], "y_path": "y2d.npy"}]}"#,
            "tasks[0].y_path (y2d.npy): must be a 1-D array",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [], "y": []}]}"#,
            "tasks[0].x: has no rows",
        );
    }

    #[test]
    fn nan_infinite_and_null_values() {
        let dir = TestDir::new("problem-nan");
        write_npy(
            &dir.path().join("nan.npy"),
            &[2, 2],
            &[1.0, f64::NAN, 0.0, 1.0],
        )
        .unwrap();
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x_path": "nan.npy", "y": [1, 2]}]}"#,
            "p.json: tasks[0].x_path (nan.npy): entry [0, 1] is NaN",
        );
        write(&dir, "inf.csv", "1\n-inf\n");
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1], [2]], "y_path": "inf.csv"}]}"#,
            "tasks[0].y_path (inf.csv): line 2, column 1: -inf is not allowed",
        );
        // JSON itself cannot hold NaN; overflowing literals are a parse error.
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1e999]], "c": [0]}]}"#,
            "is not valid JSON",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1, null], [0, 1]], "c": [0, 0]}]}"#,
            "tasks[0].a[0][1]: expected a number, got null",
        );
        assert_error(
            &dir,
            r#"{"kind": "quadratic", "tasks": [{"a": [[1]], "c": [0], "b": null}]}"#,
            "tasks[0].b: is null",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1]], "y": ["1"]}]}"#,
            "tasks[0].y[0]: expected a number, got a string",
        );
    }

    #[test]
    fn labels_must_be_plus_or_minus_one() {
        let dir = TestDir::new("problem-labels");
        assert_error(
            &dir,
            r#"{"kind": "logistic", "l2": 0.1, "tasks": [{"x": [[1], [2]], "y": [1, 0]}]}"#,
            "p.json: tasks[0].y: entry 1 is 0; logistic labels must be +1 or -1",
        );
        write(&dir, "y.csv", "1,-1,2\n");
        assert_error(
            &dir,
            r#"{"kind": "logistic", "l2": 0.1, "tasks": [{"x": [[1], [2], [3]], "y_path": "y.csv"}]}"#,
            "p.json: tasks[0].y_path (y.csv): entry 2 is 2; logistic labels must be +1 or -1",
        );
    }

    #[test]
    fn non_positive_radius_and_l2() {
        let dir = TestDir::new("problem-scalars");
        let quad = r#""tasks": [{"a": [[1]], "c": [0]}]"#;
        assert_error(
            &dir,
            &format!(r#"{{"kind": "quadratic", "radius": 0, {quad}}}"#),
            "p.json: radius: must be a finite positive number, got 0",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "quadratic", "radius": -1.5, {quad}}}"#),
            "radius: must be a finite positive number",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "quadratic", "radius": "1", {quad}}}"#),
            "radius: expected a number, got a string",
        );
        let data = r#""tasks": [{"x": [[1]], "y": [1]}]"#;
        assert_error(
            &dir,
            &format!(r#"{{"kind": "logistic", {data}}}"#),
            "p.json: l2: is missing",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "logistic", "l2": 0, {data}}}"#),
            "p.json: l2: must be a finite positive number, got 0",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "logistic", "l2": null, {data}}}"#),
            "l2: is missing",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "least_squares", "l2": 1, {data}}}"#),
            "l2: only applies to kind logistic",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "least_squares", "gradient_form": "fast", {data}}}"#),
            "gradient_form: is \"fast\"; expected",
        );
        assert_error(
            &dir,
            &format!(r#"{{"kind": "logistic", "l2": 1, "gradient_form": "gram", {data}}}"#),
            "gradient_form: only applies to kind least_squares",
        );
    }

    #[test]
    fn data_file_errors_name_the_file() {
        let dir = TestDir::new("problem-files");
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x_path": "t0_x.npy", "y_path": "t0_y.npy"}]}"#,
            "p.json: tasks[0].x_path (t0_x.npy): file not found",
        );
        write(&dir, "x.txt", "1\n");
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x_path": "x.txt", "y": [1]}]}"#,
            "tasks[0].x_path (x.txt): has an unsupported extension",
        );
        let mut f4 = b"\x93NUMPY\x01\x00".to_vec();
        let dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 1), }\n";
        f4.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        f4.extend_from_slice(dict.as_bytes());
        f4.extend_from_slice(&[0; 2]);
        std::fs::write(dir.path().join("f4.npy"), f4).unwrap();
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x_path": "f4.npy", "y": [1]}]}"#,
            "tasks[0].x_path (f4.npy): has dtype '<f2'",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1]], "x_path": "a.npy", "y": [1]}]}"#,
            "tasks[0]: gives both x and x_path",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1]]}]}"#,
            "tasks[0]: needs y (inline numbers) or y_path",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1]], "y_path": 3}]}"#,
            "tasks[0].y_path: expected a file name, got a number",
        );
        assert_error(
            &dir,
            r#"{"kind": "least_squares", "tasks": [{"x": [[1]], "y": [1], "w": 2}]}"#,
            "tasks[0].w: unknown key",
        );
    }

    #[test]
    fn the_tagged_enum_reads_what_from_value_reads() {
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        let good = parse(
            r#"{"kind": "logistic", "l2": 0.5, "name": "n", "radius": null,
                "tasks": [{"x": [[1, 2]], "y": [1]}, {"x_path": "x.npy", "y": [-1]}]}"#,
        );
        let derived: ProblemFile = serde_json::from_value(good.clone()).unwrap();
        let read = ProblemFile::from_value(good).unwrap();
        assert_eq!(derived.kind(), FamilyKind::Logistic);
        assert_eq!(format!("{derived:?}"), format!("{read:?}"));
        for (text, field) in [
            (r#"{"kind": "quadratic", "l2": 1, "tasks": []}"#, "l2"),
            (
                r#"{"kind": "least_squares", "tasks": [{"x": 1}]}"#,
                "tasks[0].x",
            ),
            (
                r#"{"kind": "logistic", "tasks": [{"x": [[1]], "z": 1}]}"#,
                "tasks[0].z",
            ),
            (
                r#"{"kind": "quadratic", "tasks": [{"c": [1]}]}"#,
                "tasks[0].a",
            ),
            (r#"{"kind": "quadratic", "tasks": [3]}"#, "tasks[0]"),
        ] {
            assert!(serde_json::from_value::<ProblemFile>(parse(text)).is_err());
            let (path, message) = ProblemFile::from_value(parse(text)).unwrap_err();
            assert_eq!(path, field, "{message}");
            assert!(!message.contains('`'), "{message}");
            assert!(!message.contains("struct"), "{message}");
        }
        for kind in FamilyKind::ALL {
            assert_eq!(FamilyKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(json!(kind), json!(kind.to_string()));
        }
    }

    #[test]
    fn export_rejects_bad_arguments_and_writes_nothing() {
        let dir = TestDir::new("problem-export");
        let mut rng = StdRng::seed_from_u64(1);
        let tasks = random_tasks(&mut rng, 2, 4, 3, true);
        assert!(
            export_data_problem(dir.path(), "a", FamilyKind::Logistic, None, &tasks, None).is_err()
        );
        assert!(export_data_problem(
            dir.path(),
            "a",
            FamilyKind::LeastSquares,
            Some(1.0),
            &tasks,
            None
        )
        .is_err());
        assert!(
            export_data_problem(dir.path(), "a", FamilyKind::Quadratic, None, &tasks, None)
                .is_err()
        );
        assert!(export_data_problem(
            dir.path(),
            "a/b",
            FamilyKind::LeastSquares,
            None,
            &tasks,
            None
        )
        .is_err());
        assert!(export_data_problem(
            dir.path(),
            "a",
            FamilyKind::LeastSquares,
            None,
            &tasks,
            Some(0.0)
        )
        .is_err());
        assert!(
            export_data_problem(dir.path(), "a", FamilyKind::LeastSquares, None, &[], None)
                .is_err()
        );
        let mut bad = tasks.clone();
        bad[1].xt.as_mut_slice()[0] = f64::INFINITY;
        assert!(
            export_data_problem(dir.path(), "a", FamilyKind::LeastSquares, None, &bad, None)
                .is_err()
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
