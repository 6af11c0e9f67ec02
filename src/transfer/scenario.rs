//! Transfer scenarios: the JSON format of `taskrobust transfer SCENARIO.json`
//! (shared/design/cli-contract.md), its validation, and the built-in
//! scenarios `pattern-semantic`, `balanced` and the imbalance sweep.

use super::seed::rng_for;
use crate::error::{check_finite, invalid, InputError};
use nalgebra::DVector;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A scenario as it appears in JSON (the contract's fields plus optional names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub d: usize,
    pub k: usize,
    pub sigma: f64,
    pub epsilon: f64,
    pub upstream: Vec<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<Vec<Vec<f64>>>,
    /// One label per upstream task (e.g. "pattern", "semantic"); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream_labels: Option<Vec<String>>,
    /// `null`: population upstream losses; otherwise samples per upstream task.
    #[serde(default)]
    pub n_up: Option<usize>,
    pub n_grid: Vec<usize>,
    pub replicates: usize,
    pub seed: u64,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub d: usize,
    pub k: usize,
    pub sigma: f64,
    pub epsilon: f64,
    pub upstream: Vec<DVector<f64>>,
    pub downstream: Vec<DVector<f64>>,
    pub upstream_labels: Vec<String>,
    pub downstream_labels: Vec<String>,
    pub n_up: Option<usize>,
    /// Strictly increasing, every entry >= k + 2.
    pub n_grid: Vec<usize>,
    pub replicates: usize,
    pub seed: u64,
}

/// Names of the built-in scenarios (for `--scenario`).
pub const BUILT_IN: [&str; 2] = ["pattern-semantic", "balanced"];

fn check_tasks(field: &str, tasks: &[Vec<f64>], d: usize) -> Result<Vec<DVector<f64>>, InputError> {
    if tasks.is_empty() {
        return invalid(field, "no tasks given");
    }
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = format!("{field}[{i}]");
            if t.len() != d {
                return invalid(name, format!("has {} entries, expected d = {d}", t.len()));
            }
            check_finite(&name, t)?;
            Ok(DVector::from_column_slice(t))
        })
        .collect()
}

fn check_labels(
    field: &str,
    labels: Option<Vec<String>>,
    count: usize,
    default: &str,
) -> Result<Vec<String>, InputError> {
    match labels {
        None => Ok(vec![default.to_string(); count]),
        Some(l) if l.len() == count => Ok(l),
        Some(l) => invalid(field, format!("has {} labels for {count} tasks", l.len())),
    }
}

impl ScenarioFile {
    /// Validates every field; errors name the field (`upstream[3]`, `n_grid[0]`, ...).
    pub fn check(self) -> Result<Scenario, InputError> {
        let ScenarioFile {
            name,
            description,
            d,
            k,
            sigma,
            epsilon,
            upstream,
            downstream,
            upstream_labels,
            downstream_labels,
            n_up,
            n_grid,
            replicates,
            seed,
        } = self;
        if d < 2 {
            return invalid("d", format!("must be at least 2, got {d}"));
        }
        if k == 0 || k >= d {
            return invalid("k", format!("must satisfy 1 <= k < d = {d}, got {k}"));
        }
        if !(sigma.is_finite() && sigma >= 0.0) {
            return invalid(
                "sigma",
                format!("must be a finite number >= 0, got {sigma}"),
            );
        }
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return invalid(
                "epsilon",
                format!("must be a finite positive number, got {epsilon}"),
            );
        }
        let upstream_tasks = check_tasks("upstream", &upstream, d)?;
        let (downstream_tasks, default_down) = match downstream {
            Some(t) => (check_tasks("downstream", &t, d)?, "downstream"),
            None => (upstream_tasks.clone(), "upstream"),
        };
        let upstream_labels = check_labels(
            "upstream_labels",
            upstream_labels,
            upstream_tasks.len(),
            "upstream",
        )?;
        let downstream_labels = match (downstream_labels, default_down) {
            (None, "upstream") => upstream_labels.clone(),
            (labels, default) => {
                check_labels("downstream_labels", labels, downstream_tasks.len(), default)?
            }
        };
        if let Some(n) = n_up {
            if n < 2 {
                return invalid(
                    "n_up",
                    format!("must be null or at least 2 samples per task, got {n}"),
                );
            }
        }
        if n_grid.is_empty() {
            return invalid("n_grid", "is empty");
        }
        for (i, &n) in n_grid.iter().enumerate() {
            if n < k + 2 {
                return invalid(
                    format!("n_grid[{i}]"),
                    format!(
                        "is {n}; OLS on k = {k} features needs n >= k + 2 = {}",
                        k + 2
                    ),
                );
            }
            if i > 0 && n <= n_grid[i - 1] {
                return invalid(
                    format!("n_grid[{i}]"),
                    "the grid must be strictly increasing",
                );
            }
        }
        if replicates < 2 {
            return invalid(
                "replicates",
                format!("must be at least 2 (for standard errors), got {replicates}"),
            );
        }
        check_magnitudes(sigma, epsilon, &upstream_tasks, &downstream_tasks)?;
        let scenario = Scenario {
            name: name.unwrap_or_else(|| "custom".into()),
            description: description.unwrap_or_default(),
            d,
            k,
            sigma,
            epsilon,
            upstream: upstream_tasks,
            downstream: downstream_tasks,
            upstream_labels,
            downstream_labels,
            n_up,
            n_grid,
            replicates,
            seed,
        };
        super::budget::check_resources(&scenario)?;
        Ok(scenario)
    }
}

/// Largest scenario file read (the tasks of d = 200 000 in 20 tasks fit).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Names the field of a scenario whose JSON value has the wrong type
/// (`upstream[2][7]`, `n_grid[0]`, `replicates`), with serde's message.
/// `None` where the text is not JSON at all or every known field is well
/// typed (then serde's own message, with line and column, is clearer).
fn locate_type_error(text: &str) -> Option<(String, String)> {
    use serde_json::Value;
    fn as_type<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(v.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn rows(field: &str, v: &Value) -> Option<(String, String)> {
        let Some(outer) = v.as_array() else {
            return Some((field.into(), "must be an array of arrays of numbers".into()));
        };
        for (i, row) in outer.iter().enumerate() {
            let Some(inner) = row.as_array() else {
                return Some((
                    format!("{field}[{i}]"),
                    "must be an array of numbers".into(),
                ));
            };
            for (j, x) in inner.iter().enumerate() {
                if let Err(e) = as_type::<f64>(x) {
                    return Some((format!("{field}[{i}][{j}]"), e));
                }
            }
        }
        None
    }
    fn each<T: serde::de::DeserializeOwned>(field: &str, v: &Value) -> Option<(String, String)> {
        let Some(items) = v.as_array() else {
            return Some((field.into(), "must be an array".into()));
        };
        items
            .iter()
            .enumerate()
            .find_map(|(i, x)| as_type::<T>(x).err().map(|e| (format!("{field}[{i}]"), e)))
    }
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    for (key, v) in object {
        let problem = match key.as_str() {
            "name" | "description" => as_type::<Option<String>>(v).err().map(|e| (key.clone(), e)),
            "d" | "k" | "replicates" => as_type::<usize>(v).err().map(|e| (key.clone(), e)),
            "seed" => as_type::<u64>(v).err().map(|e| (key.clone(), e)),
            "sigma" | "epsilon" => as_type::<f64>(v).err().map(|e| (key.clone(), e)),
            "n_up" => as_type::<Option<usize>>(v).err().map(|e| (key.clone(), e)),
            "upstream" => rows(key, v),
            "downstream" if !v.is_null() => rows(key, v),
            "upstream_labels" | "downstream_labels" if !v.is_null() => each::<String>(key, v),
            "n_grid" => each::<usize>(key, v),
            "downstream" | "upstream_labels" | "downstream_labels" => None,
            other => Some((other.to_string(), "is not a scenario field".into())),
        };
        if problem.is_some() {
            return problem;
        }
    }
    None
}

/// Largest sigma whose square the risk formulas can carry (sigma^2 <= 1e300).
pub const MAX_SIGMA: f64 = 1e150;
/// Largest squared task norm (and epsilon): leaves room for `(sigma^2 + b) d`.
pub const MAX_SQUARED: f64 = 1e300;
/// Below this, squares of the scenario's scale would be subnormal or zero.
pub const MIN_SQUARED: f64 = 1e-290;

/// `||beta||^2` without overflow or underflow in the squares.
fn squared_norm(beta: &DVector<f64>) -> (f64, f64) {
    let scale = super::model::power_of_two_scale(beta.iter().copied());
    ((beta / scale).norm_squared(), scale)
}

/// The magnitudes the f64 formulas can carry: every reported risk is a sum
/// of `b` and `(sigma^2 + b) p / (n - p - 1)`, so sigma^2 and every
/// `||beta||^2` must be representable with room to spare, and not all of them
/// so small that they underflow. Upstream tasks that are all zero leave
/// nothing to pre-train on.
fn check_magnitudes(
    sigma: f64,
    epsilon: f64,
    upstream: &[DVector<f64>],
    downstream: &[DVector<f64>],
) -> Result<(), InputError> {
    if sigma > MAX_SIGMA {
        return invalid(
            "sigma",
            format!(
                "is {sigma:e}; sigma^2 must stay below {MAX_SQUARED:e} for the risk formulas (limit {MAX_SIGMA:e}): \
                 rescale y (divide sigma and every beta by the same factor)"
            ),
        );
    }
    if epsilon > MAX_SQUARED {
        return invalid(
            "epsilon",
            format!(
                "is {epsilon:e}, above {MAX_SQUARED:e}: rescale y (epsilon is in squared units)"
            ),
        );
    }
    let mut largest: f64 = sigma * sigma;
    for (field, tasks) in [("upstream", upstream), ("downstream", downstream)] {
        for (i, beta) in tasks.iter().enumerate() {
            let (scaled, scale) = squared_norm(beta);
            // ||beta||^2 = scaled * scale^2; compare in logs to avoid overflow.
            let log10 = scaled.log10() + 2.0 * scale.log10();
            if scaled > 0.0 && log10 > MAX_SQUARED.log10() {
                return invalid(
                    format!("{field}[{i}]"),
                    format!(
                        "||beta||^2 is about 1e{log10:.0}, above {MAX_SQUARED:e}, so risks overflow f64: \
                         rescale y (divide sigma and every beta by the same factor)"
                    ),
                );
            }
            if scaled > 0.0 {
                largest = largest.max(scaled * scale * scale);
            }
        }
    }
    if upstream.iter().all(|b| b.iter().all(|v| *v == 0.0)) {
        return invalid(
            "upstream",
            "every upstream task is zero: there is nothing to pre-train on",
        );
    }
    if largest < MIN_SQUARED {
        return invalid(
            "upstream",
            format!(
                "sigma^2 and every ||beta||^2 are below {MIN_SQUARED:e}, so the risks underflow f64: \
                 rescale y (multiply sigma and every beta by the same factor)"
            ),
        );
    }
    Ok(())
}

impl Scenario {
    /// Parses and validates scenario JSON; errors name `origin` (a file name)
    /// and the field (`s.json: upstream[3]`), for type errors as well.
    /// Duplicate keys are rejected (serde's derived structs refuse them).
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, InputError> {
        let file: ScenarioFile =
            serde_json::from_str(text).map_err(|e| match locate_type_error(text) {
                Some((field, message)) => InputError::new(format!("{origin}: {field}"), message),
                None => InputError::new(origin, format!("not a valid scenario: {e}")),
            })?;
        file.check()
            .map_err(|e| InputError::new(format!("{origin}: {}", e.field), e.message))
    }

    /// Reads a scenario file: a regular file of at most [`MAX_FILE_BYTES`]
    /// (no unbounded reads from special files such as /dev/zero).
    pub fn from_file(path: &Path) -> Result<Self, InputError> {
        let origin = path.display().to_string();
        let metadata = std::fs::metadata(path)
            .map_err(|e| InputError::new(&origin, format!("cannot read: {e}")))?;
        if !metadata.is_file() {
            return invalid(origin, "is not a regular file");
        }
        if metadata.len() > MAX_FILE_BYTES {
            return invalid(
                origin,
                format!(
                    "is {:.2} GB; scenario files are limited to {:.2} GB",
                    metadata.len() as f64 / 1e9,
                    MAX_FILE_BYTES as f64 / 1e9
                ),
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(&origin, format!("cannot read: {e}")))?;
        Self::from_json_str(&text, &origin)
    }

    /// A built-in scenario by name.
    pub fn built_in(name: &str) -> Result<Self, InputError> {
        match name {
            "pattern-semantic" => Ok(pattern_semantic()),
            "balanced" => Ok(balanced()),
            other => invalid(
                "--scenario",
                format!(
                    "unknown scenario '{other}' (expected one of {})",
                    BUILT_IN.join(", ")
                ),
            ),
        }
    }

    /// The JSON form (round-trips through [`Scenario::from_json_str`]).
    pub fn to_file(&self) -> ScenarioFile {
        let rows = |tasks: &[DVector<f64>]| tasks.iter().map(|t| t.as_slice().to_vec()).collect();
        ScenarioFile {
            name: Some(self.name.clone()),
            description: (!self.description.is_empty()).then(|| self.description.clone()),
            d: self.d,
            k: self.k,
            sigma: self.sigma,
            epsilon: self.epsilon,
            upstream: rows(&self.upstream),
            downstream: Some(rows(&self.downstream)),
            upstream_labels: Some(self.upstream_labels.clone()),
            downstream_labels: Some(self.downstream_labels.clone()),
            n_up: self.n_up,
            n_grid: self.n_grid.clone(),
            replicates: self.replicates,
            seed: self.seed,
        }
    }

    /// Pretty JSON text of [`Scenario::to_file`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.to_file()).expect("scenario serialises")
    }
}

// ---------------------------------------------------------------------------
// Built-in scenarios. Tasks are drawn once from a fixed generator seed (they
// are part of the scenario's definition); `seed` drives the simulation and the
// upstream samples.

const GENERATOR_SEED: u64 = 20230612;

fn unit(d: usize, i: usize) -> DVector<f64> {
    DVector::from_fn(d, |j, _| if i == j { 1.0 } else { 0.0 })
}

/// A unit vector in span(e_first .. e_first+count): a Gaussian direction
/// plus a common offset `shift * (1, ..., 1)/sqrt(count)`. Every direction of
/// the span carries energy (the tasks need all of it), and tasks of one group
/// are correlated (mean cosine about shift^2 / (shift^2 + count)), so their
/// normalised mixtures stay close to the group.
fn group_direction(
    rng: &mut StdRng,
    d: usize,
    first: usize,
    count: usize,
    shift: f64,
) -> DVector<f64> {
    let mut v = DVector::zeros(d);
    let offset = shift / (count as f64).sqrt();
    for j in first..first + count {
        let g: f64 = rng.sample(StandardNormal);
        v[j] = g + offset;
    }
    v.normalize()
}

/// A unit vector in the span of coordinates `from..d`, random direction.
fn tail_direction(rng: &mut StdRng, d: usize, from: usize) -> DVector<f64> {
    let mut v = DVector::zeros(d);
    for j in from..d {
        v[j] = rng.sample(StandardNormal);
    }
    v.normalize()
}

/// Normalised convex combinations (Dirichlet(1) weights over `parts` tasks
/// chosen from `pool`), scaled to unit norm: unseen tasks from the same family.
fn unseen_mixtures(
    rng: &mut StdRng,
    pool: &[DVector<f64>],
    count: usize,
    parts: usize,
) -> Vec<DVector<f64>> {
    (0..count)
        .map(|_| {
            let mut mix = DVector::zeros(pool[0].len());
            let mut total = 0.0;
            for _ in 0..parts.min(pool.len()) {
                let i = rng.random_range(0..pool.len());
                let u: f64 = rng.random::<f64>().max(1e-12);
                let w = -u.ln(); // Exp(1): normalised, Dirichlet(1, ..., 1)
                mix.axpy(w, &pool[i], 1.0);
                total += w;
            }
            (mix / total).normalize()
        })
        .collect()
}

/// Upstream tasks, their labels, downstream tasks, their labels.
pub type TaskSets = (
    Vec<DVector<f64>>,
    Vec<String>,
    Vec<DVector<f64>>,
    Vec<String>,
);

/// Parameters of the pattern/semantic family (see [`pattern_semantic_with`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternSemanticSpec {
    pub d: usize,
    pub k: usize,
    pub pattern_tasks: usize,
    pub semantic_tasks: usize,
    /// Share of each pattern task's energy on the minor pattern direction e_k.
    pub minor: f64,
    /// Share of each semantic task's energy on the semantic direction e_{k+1}.
    pub semantic: f64,
    /// Share of every task's energy on its own random direction in the tail.
    pub idiosyncratic: f64,
    pub unseen_pattern: usize,
    pub unseen_semantic: usize,
}

impl Default for PatternSemanticSpec {
    fn default() -> Self {
        Self {
            d: 50,
            k: 4,
            pattern_tasks: 16,
            semantic_tasks: 4,
            minor: 0.06,
            semantic: 0.14,
            idiosyncratic: 0.01,
            unseen_pattern: 6,
            unseen_semantic: 4,
        }
    }
}

/// Pattern/semantic tasks (unit norm). Pattern tasks live mostly in the
/// k - 1 dominant directions e_1..e_{k-1}, with a small share `minor` on
/// e_k; semantic tasks share the dominant part but put `semantic` of their
/// energy on e_{k+1}, which no pattern task uses. Every task also has a small
/// idiosyncratic part in e_{k+2}..e_d. With many pattern tasks, e_k carries
/// more total energy than e_{k+1}, so average pre-training keeps e_k and
/// leaves each semantic task a residual of about `semantic`; minimax tilts
/// the k-th direction towards e_{k+1} until pattern and semantic residuals are
/// equal, about `minor * semantic / (minor + semantic)`.
pub fn pattern_semantic_tasks(spec: &PatternSemanticSpec) -> TaskSets {
    let PatternSemanticSpec { d, k, .. } = *spec;
    // Task j of a group comes from its own stream, so the task sets of the
    // imbalance sweep are nested (a level adds or drops tasks, it does not
    // redraw the others).
    let stream = |group: u64, j: usize| rng_for(&[GENERATOR_SEED, group, j as u64]);
    let iota = spec.idiosyncratic;
    let mut pattern = Vec::new();
    // Alternating signs on e_k and e_{k+1} keep those parts incoherent with
    // the shared dominant part; otherwise the leading eigenvector of
    // sum beta beta^T would absorb them.
    let sign = |j: usize| if j.is_multiple_of(2) { 1.0 } else { -1.0 };
    for j in 0..spec.pattern_tasks {
        let mut rng = stream(1, j);
        let main = group_direction(&mut rng, d, 0, k - 1, 2.0);
        let tail = tail_direction(&mut rng, d, k + 1);
        let q = spec.minor;
        pattern.push(
            main * (1.0 - q - iota).sqrt()
                + unit(d, k - 1) * (sign(j) * q.sqrt())
                + tail * iota.sqrt(),
        );
    }
    let mut semantic = Vec::new();
    for j in 0..spec.semantic_tasks {
        let mut rng = stream(2, j);
        let main = group_direction(&mut rng, d, 0, k - 1, 2.0);
        let tail = tail_direction(&mut rng, d, k + 1);
        let s = spec.semantic;
        semantic.push(
            main * (1.0 - s - iota).sqrt() + unit(d, k) * (sign(j) * s.sqrt()) + tail * iota.sqrt(),
        );
    }
    let unseen_p = unseen_mixtures(&mut stream(3, 0), &pattern, spec.unseen_pattern, 3);
    let unseen_s = unseen_mixtures(&mut stream(4, 0), &semantic, spec.unseen_semantic, 2);
    let mut up_labels = vec!["pattern".to_string(); pattern.len()];
    up_labels.extend(vec!["semantic".to_string(); semantic.len()]);
    let mut upstream = pattern;
    upstream.extend(semantic);
    let mut downstream = upstream.clone();
    let mut down_labels = up_labels.clone();
    downstream.extend(unseen_p.iter().cloned());
    down_labels.extend(vec!["unseen-pattern".to_string(); unseen_p.len()]);
    downstream.extend(unseen_s.iter().cloned());
    down_labels.extend(vec!["unseen-semantic".to_string(); unseen_s.len()]);
    (upstream, up_labels, downstream, down_labels)
}

/// Sample sizes of the built-in scenarios: dense where the n* of the
/// representations fall, and reaching the no-representation n* (d = 50).
pub fn default_grid() -> Vec<usize> {
    vec![
        10, 12, 14, 16, 18, 21, 24, 28, 32, 36, 40, 45, 50, 56, 63, 70, 80, 90, 100, 115, 130, 150,
    ]
}

/// Built-in `pattern-semantic`: 16 pattern and 4 semantic upstream tasks in
/// d = 50, k = 4; downstream adds 6 + 4 unseen mixtures.
pub fn pattern_semantic() -> Scenario {
    pattern_semantic_with(&PatternSemanticSpec::default(), 1)
}

/// A pattern/semantic scenario for any spec (the imbalance sweep varies the
/// numbers of pattern and semantic tasks).
pub fn pattern_semantic_with(spec: &PatternSemanticSpec, seed: u64) -> Scenario {
    let (upstream, upstream_labels, downstream, downstream_labels) = pattern_semantic_tasks(spec);
    Scenario {
        name: "pattern-semantic".into(),
        description: format!(
            "{} pattern tasks (dominant directions e1..e{}, share {} on e{}) and {} semantic tasks (share {} on e{}); \
             every task has share {} on its own tail direction; downstream adds {} + {} unseen normalised mixtures",
            spec.pattern_tasks, spec.k - 1, spec.minor, spec.k, spec.semantic_tasks, spec.semantic, spec.k + 1,
            spec.idiosyncratic, spec.unseen_pattern, spec.unseen_semantic
        ),
        d: spec.d,
        k: spec.k,
        sigma: 0.5,
        epsilon: 0.3,
        upstream,
        downstream,
        upstream_labels,
        downstream_labels,
        n_up: None,
        n_grid: default_grid(),
        replicates: 400,
        seed,
    }
}

/// Built-in `balanced` (control): 10 pairs of tasks `sqrt(1-r) a_j +- sqrt(r) e_{k+1+j}`
/// with `a_j` in span(e_1..e_k), r = 0.05. The pairs cancel the cross terms, so
/// `sum beta beta^T` is block diagonal, its top-k space is span(e_1..e_k), every
/// task has residual r there, and uniform weights certify it as the minimax
/// optimum: average and minimax coincide. (epsilon = 0.14 keeps
/// `(sigma^2 + r) k / (epsilon - r)` = 13.3 away from an integer, so n* does
/// not flip on rounding-level differences in b.)
pub fn balanced() -> Scenario {
    let (d, k, pairs, r): (usize, usize, usize, f64) = (50, 4, 10, 0.05);
    let mut rng = rng_for(&[GENERATOR_SEED, 0xba1]);
    let mut upstream = Vec::new();
    for j in 0..pairs {
        let a = group_direction(&mut rng, d, 0, k, 2.0);
        for sign in [1.0, -1.0] {
            upstream.push(&a * (1.0 - r).sqrt() + unit(d, k + j) * (sign * r.sqrt()));
        }
    }
    let unseen = unseen_mixtures(&mut rng, &upstream, 10, 2);
    let mut downstream = upstream.clone();
    downstream.extend(unseen);
    let mut downstream_labels = vec!["balanced".to_string(); upstream.len()];
    downstream_labels.extend(vec!["unseen".to_string(); 10]);
    Scenario {
        name: "balanced".into(),
        description: format!("{pairs} pairs of tasks in span(e1..e{k}) plus +-sqrt({r}) on a pair-specific direction; downstream adds 10 unseen normalised mixtures"),
        d,
        k,
        sigma: 0.5,
        epsilon: 0.14,
        upstream_labels: vec!["balanced".to_string(); upstream.len()],
        upstream,
        downstream,
        downstream_labels,
        n_up: None,
        n_grid: default_grid(),
        replicates: 400,
        seed: 1,
    }
}

/// The imbalance sweep: M = `total` upstream tasks, of which a share are
/// pattern tasks (the rest semantic), for `semantic = 1..=total/2`.
pub fn imbalance_sweep(total: usize) -> Vec<(f64, PatternSemanticSpec)> {
    (1..=total / 2)
        .map(|semantic| {
            let spec = PatternSemanticSpec {
                pattern_tasks: total - semantic,
                semantic_tasks: semantic,
                ..PatternSemanticSpec::default()
            };
            ((total - semantic) as f64 / total as f64, spec)
        })
        .collect()
}

/// Writes the built-in scenarios as `dir/<name>.json` (the shipped copies in
/// experiments/transfer/ come from here).
pub fn write_built_in_files(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in BUILT_IN {
        let scenario = Scenario::built_in(name).expect("built-in");
        crate::io::write_text_atomic(
            &dir.join(format!("{name}.json")),
            &(scenario.to_json() + "\n"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_scenarios_round_trip_through_json() {
        for name in BUILT_IN {
            let s = Scenario::built_in(name).unwrap();
            let back = Scenario::from_json_str(&s.to_json(), "test").unwrap();
            assert_eq!(back, s);
            for t in s.upstream.iter().chain(&s.downstream) {
                assert!((t.norm() - 1.0).abs() < 1e-12);
            }
        }
        assert_eq!(Scenario::built_in("nope").unwrap_err().field, "--scenario");
    }

    /// `TRANSFER_WRITE_SCENARIOS=1 cargo test --lib write_shipped -- --ignored`
    /// regenerates experiments/transfer/*.json.
    #[test]
    #[ignore]
    fn write_shipped_scenarios() {
        if std::env::var("TRANSFER_WRITE_SCENARIOS").is_ok() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/transfer");
            write_built_in_files(&dir).unwrap();
        }
    }

    #[test]
    fn shipped_json_files_match_the_built_ins() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/transfer");
        for name in BUILT_IN {
            let from_file = Scenario::from_file(&dir.join(format!("{name}.json"))).unwrap();
            assert_eq!(
                from_file,
                Scenario::built_in(name).unwrap(),
                "regenerate experiments/transfer/{name}.json"
            );
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let good = pattern_semantic().to_file();
        let field_of = |f: ScenarioFile| f.check().unwrap_err().field;
        assert_eq!(
            field_of(ScenarioFile {
                k: 0,
                ..good.clone()
            }),
            "k"
        );
        assert_eq!(
            field_of(ScenarioFile {
                k: 50,
                ..good.clone()
            }),
            "k"
        );
        assert_eq!(
            field_of(ScenarioFile {
                sigma: f64::NAN,
                ..good.clone()
            }),
            "sigma"
        );
        assert_eq!(
            field_of(ScenarioFile {
                epsilon: 0.0,
                ..good.clone()
            }),
            "epsilon"
        );
        assert_eq!(
            field_of(ScenarioFile {
                n_up: Some(1),
                ..good.clone()
            }),
            "n_up"
        );
        assert_eq!(
            field_of(ScenarioFile {
                replicates: 1,
                ..good.clone()
            }),
            "replicates"
        );
        assert_eq!(
            field_of(ScenarioFile {
                n_grid: vec![5],
                ..good.clone()
            }),
            "n_grid[0]"
        );
        assert_eq!(
            field_of(ScenarioFile {
                n_grid: vec![10, 10],
                ..good.clone()
            }),
            "n_grid[1]"
        );
        let mut bad = good.clone();
        bad.upstream[3].pop();
        assert_eq!(field_of(bad), "upstream[3]");
        let mut bad = good.clone();
        bad.downstream.as_mut().unwrap()[2][0] = f64::INFINITY;
        assert_eq!(field_of(bad), "downstream[2]");
        let err = Scenario::from_json_str("{\"d\": 3}", "s.json").unwrap_err();
        assert_eq!(err.field, "s.json");
        let minimal = r#"{"d": 3, "k": 1, "sigma": 0.5, "epsilon": 0.3, "upstream": [[1,0,0],[0,1,0]],
            "n_up": null, "n_grid": [5, 8], "replicates": 200, "seed": 1}"#;
        let s = Scenario::from_json_str(minimal, "s.json").unwrap();
        assert_eq!(s.downstream, s.upstream);
    }
}
