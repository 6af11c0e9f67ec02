//! Checkpoints of long solves through argmin's own checkpointing: the
//! `Executor` calls [`Checkpoint::save_cond`] after every iteration and
//! [`Checkpoint::load`] before the first, and skips the solver's `init` when
//! it resumes. [`FileCheckpoint`] stores the whole solver (its evaluations,
//! momentum, averages, log-weights, the RNG position, the tracker's bounds and
//! trace) and what the solvers use of argmin's `IterState` in one TOML file
//! (TOML keeps NaN and infinities, which JSON cannot), written atomically: a crash leaves the
//! previous checkpoint or the new one, never half of one. A resumed run gives
//! bit-identical results to an uninterrupted one (tests/checkpoint.rs).

use super::{MinimaxState, SolveOptions};
use crate::error::InputError;
use crate::family::TaskFamily;
use crate::files::write_atomic;
use crate::problem::ball::FeasibleSet;
use argmin::core::checkpointing::{Checkpoint, CheckpointingFrequency};
use argmin::core::{Error, State};
use nalgebra::DVector;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout.
const FORMAT: u32 = 2;

/// What a solver must redo after being read back from a checkpoint (state
/// that is cheaper to rebuild than to store, such as an RNG).
pub trait Resume {
    /// Rebuilds that state after the solver is read back (by default nothing).
    fn resume(&mut self) {}
}

/// The run a checkpoint belongs to: resuming with another problem or other
/// options would silently mix two runs, so it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The method's name.
    pub method: String,
    /// The family's kind ([`TaskFamily::kind`]).
    pub kind: String,
    /// M: the number of tasks.
    pub tasks: usize,
    /// d: the dimension of theta.
    pub dim: usize,
    /// The feasible set.
    pub set: FeasibleSet,
    /// [`SolveOptions::iterations`].
    pub iterations: u64,
    /// [`SolveOptions::mu`].
    pub mu: Option<f64>,
    /// [`SolveOptions::step`].
    pub step: Option<f64>,
    /// [`SolveOptions::weight_step`].
    pub weight_step: Option<f64>,
    /// [`SolveOptions::seed`].
    #[serde(with = "u64_text")]
    pub seed: u64,
    /// [`SolveOptions::distance`].
    pub distance: Option<f64>,
    /// [`SolveOptions::batch_size`].
    pub batch_size: usize,
    /// [`SolveOptions::ema`].
    pub ema: Option<f64>,
    /// [`SolveOptions::certify_every`].
    pub certify_every: Option<u64>,
    /// [`SolveOptions::record_trace`].
    pub record_trace: bool,
    /// The starting point, bit for bit (hex), or None for the default.
    pub init: Option<String>,
    /// A digest of the problem itself: its losses and every task's gradient
    /// at fixed probe points (see `problem_digest`).
    pub problem: String,
}

impl Fingerprint {
    /// The run of `method` (its name) on `family` and `set` with `options`.
    pub fn new(
        family: &dyn TaskFamily,
        set: FeasibleSet,
        options: &SolveOptions,
        method: &str,
    ) -> Result<Self, crate::Error> {
        let problem = problem_digest(family)?;
        Ok(Self {
            method: method.to_string(),
            kind: family.kind().to_string(),
            tasks: family.num_tasks(),
            dim: family.dim(),
            set,
            iterations: options.iterations,
            mu: options.mu,
            step: options.step,
            weight_step: options.weight_step,
            seed: options.seed,
            distance: options.distance,
            batch_size: options.batch_size,
            ema: options.ema,
            certify_every: options.certify_every,
            record_trace: options.record_trace,
            init: options.init.as_ref().map(|v| {
                v.iter()
                    .map(|x| format!("{:016x}", x.to_bits()))
                    .collect::<String>()
            }),
            problem,
        })
    }

    /// The first field that differs: its name and "saved vs now".
    fn difference(&self, other: &Self) -> Option<(String, String)> {
        let a = toml::Value::try_from(self).ok()?;
        let b = toml::Value::try_from(other).ok()?;
        let (a, b) = (a.as_table()?, b.as_table()?);
        a.keys()
            .chain(b.keys())
            .find(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                let show = |v: Option<&toml::Value>| v.map_or("none".into(), |v| v.to_string());
                (
                    k.clone(),
                    format!("saved {} vs now {}", show(b.get(k)), show(a.get(k))),
                )
            })
    }
}

/// Probe points at which [`problem_digest`] evaluates the problem.
const PROBES: u64 = 3;

/// A SHA-256 digest of what the problem computes: the kind, the shape, and the
/// bits of every task's loss and gradient at `theta = 0` and at seeded random
/// points. Two problems with the same digest give the same losses and
/// gradients there; problems that differ in their data differ there (for all
/// but a measure-zero set of data). This covers inline data, `.npy`/`.csv`
/// files and families built in code alike, at the cost of one pass over the
/// data per probe. Family evaluations are bit-identical whatever the thread
/// count, so the digest is too.
pub fn problem_digest(family: &dyn TaskFamily) -> Result<String, crate::Error> {
    use rand::{Rng, SeedableRng};
    let (tasks, dim) = (family.num_tasks(), family.dim());
    let mut hasher = Sha256::new();
    hasher.update(family.kind().as_bytes());
    hasher.update((tasks as u64).to_le_bytes());
    hasher.update((dim as u64).to_le_bytes());
    let mut losses = vec![0.0; tasks];
    let mut gradient = DVector::zeros(dim);
    for probe in 0..PROBES {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7a5c_0000 + probe);
        let theta = if probe == 0 {
            DVector::zeros(dim)
        } else {
            DVector::from_fn(dim, |_, _| rng.random_range(-1.0..1.0))
        };
        family.losses(&theta, &mut losses)?;
        for loss in &losses {
            hasher.update(loss.to_bits().to_le_bytes());
        }
        for task in 0..tasks {
            family.task_gradient(task, &theta, &mut gradient)?;
            for g in gradient.iter() {
                hasher.update(g.to_bits().to_le_bytes());
            }
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What the solvers use of argmin's `IterState`: the iterate, the best
/// iterate and their costs, and the iteration count. (The previous iterate is
/// only a reused buffer; its values do not matter.) Stored in our own form
/// because nalgebra writes a `DVector`'s column count as a unit value, which
/// TOML cannot hold.
#[derive(Debug, Serialize, Deserialize)]
struct StateSnapshot {
    iter: u64,
    param: Option<Vec<f64>>,
    cost: f64,
    best_param: Option<Vec<f64>>,
    best_cost: f64,
}

impl StateSnapshot {
    fn of(state: &MinimaxState) -> Self {
        let copy = |p: Option<&DVector<f64>>| p.map(|v| v.as_slice().to_vec());
        Self {
            iter: state.get_iter(),
            param: copy(state.get_param()),
            cost: state.get_cost(),
            best_param: copy(state.get_best_param()),
            best_cost: state.get_best_cost(),
        }
    }

    /// Checks what a hand edit could break: lengths, finiteness and the
    /// iteration count (at most this run's `--iters`). Errors name the key.
    fn check(&self, dim: usize, max_iters: u64) -> Result<(), (String, String)> {
        if self.iter > max_iters {
            return Err((
                "iter".into(),
                format!(
                    "is {}, more than this run's `iterations` {max_iters}",
                    self.iter
                ),
            ));
        }
        for (key, param) in [("param", &self.param), ("best_param", &self.best_param)] {
            let Some(param) = param else { continue };
            if param.len() != dim {
                return Err((
                    key.into(),
                    format!("has {} entries, the problem has d = {dim}", param.len()),
                ));
            }
            if let Some(i) = crate::error::first_non_finite(param) {
                return Err((key.into(), format!("entry {i} is {}", param[i])));
            }
        }
        for (key, cost) in [("cost", self.cost), ("best_cost", self.best_cost)] {
            if cost.is_nan() {
                return Err((key.into(), "is NaN".into()));
            }
        }
        Ok(())
    }

    /// Rebuilds the state through argmin's own setters: the best point first
    /// (so that `update` records it as best), then the current one.
    fn into_state(self, max_iters: u64) -> MinimaxState {
        let mut state = MinimaxState::new().max_iters(max_iters);
        if let Some(best) = self.best_param {
            state = state.param(DVector::from_vec(best)).cost(self.best_cost);
            state.update();
        }
        if let Some(param) = self.param {
            state = state.param(DVector::from_vec(param));
        }
        state = state.cost(self.cost);
        for _ in 0..self.iter {
            state.increment_iter();
        }
        state
    }
}

/// `DVector<f64>` as a plain list of numbers.
pub(crate) mod vector {
    use nalgebra::DVector;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &DVector<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DVector<f64>, D::Error> {
        Vec::<f64>::deserialize(d).map(DVector::from_vec)
    }
}

/// `Option<DVector<f64>>` as an optional list of numbers.
pub(crate) mod option_vector {
    use nalgebra::DVector;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<DVector<f64>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(v.as_slice()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DVector<f64>>, D::Error> {
        Option::<Vec<f64>>::deserialize(d).map(|v| v.map(DVector::from_vec))
    }
}

/// A u64 as text (TOML integers stop at 2^63 - 1; seeds may not).
pub(crate) mod u64_text {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A checkpoint file for argmin's `Executor::checkpointing`.
pub struct FileCheckpoint<S> {
    path: PathBuf,
    every: u64,
    fingerprint: Fingerprint,
    /// The iteration budget of this run (replaces the saved one on resume).
    max_iters: u64,
    solver: PhantomData<fn() -> S>,
}

impl<S> FileCheckpoint<S> {
    /// Saves every `every` iterations to `path`.
    pub fn new(path: &Path, every: u64, fingerprint: Fingerprint, max_iters: u64) -> Self {
        Self {
            path: path.to_path_buf(),
            every: every.max(1),
            fingerprint,
            max_iters,
            solver: PhantomData,
        }
    }

    fn field(&self) -> String {
        format!("checkpoint ({})", self.path.display())
    }
}

impl<S> Checkpoint<S, MinimaxState> for FileCheckpoint<S>
where
    S: Serialize + DeserializeOwned + Resume,
{
    fn save(&self, solver: &S, state: &MinimaxState) -> Result<(), Error> {
        let encode =
            |e: toml::ser::Error| Error::msg(format!("{}: cannot encode: {e}", self.field()));
        let mut table = toml::Table::new();
        table.insert("format".into(), toml::Value::Integer(FORMAT.into()));
        table.insert(
            "fingerprint".into(),
            toml::Value::try_from(&self.fingerprint).map_err(encode)?,
        );
        table.insert(
            "state".into(),
            toml::Value::try_from(StateSnapshot::of(state)).map_err(encode)?,
        );
        table.insert(
            "solver".into(),
            toml::Value::try_from(solver).map_err(encode)?,
        );
        let digests = field_digests(&table)
            .into_iter()
            .map(|(path, digest)| (path, toml::Value::String(digest)))
            .collect();
        table.insert("digests".into(), toml::Value::Table(digests));
        let text = toml::to_string(&table).map_err(encode)?;
        write_atomic(&self.path, text.as_bytes())
            .map_err(|e| Error::msg(format!("{}: {e}", self.field())))
    }

    fn load(&self) -> Result<Option<(S, MinimaxState)>, Error> {
        let Some(text) = read_checkpoint(&self.path, &self.field())? else {
            return Ok(None);
        };
        let bad = |field: &str, message: String| -> Error {
            InputError::new(format!("{}: {field}", self.field()), message).into()
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
            let first = e.to_string().replace('\n', " ");
            InputError::new(
                self.field(),
                format!("is not a readable checkpoint ({})", first.trim()),
            )
        })?;
        match table.get("format") {
            Some(toml::Value::Integer(f)) if *f == i64::from(FORMAT) => {}
            Some(other) => {
                return Err(bad(
                    "format",
                    format!("is {other}; this version reads checkpoint format {FORMAT}"),
                ))
            }
            None => return Err(bad("format", "is missing".into())),
        }
        for section in ["fingerprint", "state", "solver", "digests"] {
            if !matches!(table.get(section), Some(toml::Value::Table(_))) {
                return Err(bad(section, "is missing or not a table".into()));
            }
        }
        if let Some(key) = table.keys().find(|k| {
            !["format", "fingerprint", "state", "solver", "digests"].contains(&k.as_str())
        }) {
            return Err(bad(key, "unknown key".into()));
        }
        let saved: Fingerprint = typed(&table, "fingerprint").map_err(|m| bad("fingerprint", m))?;
        if let Some((field, diff)) = self.fingerprint.difference(&saved) {
            let what = if field == "problem" {
                "was written for another problem (its data differ)"
            } else {
                "was written for other options"
            };
            return Err(bad(
                &format!("fingerprint.{field}"),
                format!("{what} ({field}: {diff})"),
            ));
        }
        let snapshot: StateSnapshot = typed(&table, "state").map_err(|m| bad("state", m))?;
        snapshot
            .check(self.fingerprint.dim, self.max_iters)
            .map_err(|(field, message)| bad(&format!("state.{field}"), message))?;
        if let Some(toml::Value::Table(solver)) = table.get("solver") {
            check_solver_values(solver, "solver", &self.fingerprint)
                .map_err(|(field, message)| bad(&field, message))?;
        }
        check_digests(&table).map_err(|(field, message)| bad(&field, message))?;
        // Never trust a stored bound: the resumed run certifies its own points
        // (the final one always), so the stored best bound is dropped.
        if let Some(toml::Value::Table(solver)) = table.get_mut("solver") {
            drop_stored_bounds(solver);
        }
        let mut solver: S = typed(&table, "solver").map_err(|m| bad("solver", m))?;
        solver.resume();
        Ok(Some((solver, snapshot.into_state(self.max_iters))))
    }

    fn frequency(&self) -> CheckpointingFrequency {
        CheckpointingFrequency::Every(self.every)
    }
}

/// Checkpoint files are small (a few vectors of length d or M); anything
/// larger than this is not one of ours and is not read.
const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

/// The checkpoint's text, `None` where there is none yet. Only a regular
/// file is read: a folder or a device named as checkpoint is refused.
fn read_checkpoint(path: &Path, field: &str) -> Result<Option<String>, InputError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InputError::new(field, format!("cannot read: {e}"))),
    };
    if !meta.is_file() {
        return Err(InputError::new(
            field,
            "exists and is not a regular file (a folder or a device); name a file",
        ));
    }
    if meta.len() > MAX_CHECKPOINT_BYTES {
        return Err(InputError::new(
            field,
            format!("is {} bytes, too large for a checkpoint", meta.len()),
        ));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| InputError::new(field, format!("cannot read: {e}")))
}

/// One section of the checkpoint table, typed; the message names the key.
fn typed<T: DeserializeOwned>(table: &toml::Table, section: &str) -> Result<T, String> {
    table
        .get(section)
        .cloned()
        .ok_or_else(|| "is missing".to_string())?
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string().replace('\n', " ").trim().to_string())
}

/// Every leaf (a value that is not a table) of the table, by dotted path.
fn leaves<'t>(table: &'t toml::Table, prefix: &str, out: &mut Vec<(String, &'t toml::Value)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => leaves(inner, &path, out),
            leaf => out.push((path, leaf)),
        }
    }
}

/// A canonical byte form of a value: floats by their bits, so that the
/// digest does not depend on how a number is written.
fn canonical(value: &toml::Value, out: &mut Vec<u8>) {
    match value {
        toml::Value::Float(x) => {
            out.push(b'f');
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        toml::Value::Integer(i) => {
            out.push(b'i');
            out.extend_from_slice(&i.to_le_bytes());
        }
        toml::Value::Boolean(b) => out.extend_from_slice(if *b { b"T" } else { b"F" }),
        toml::Value::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        toml::Value::Datetime(d) => {
            let text = d.to_string();
            out.push(b'd');
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        toml::Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                canonical(item, out);
            }
            out.push(b']');
        }
        toml::Value::Table(t) => {
            out.push(b'{');
            out.extend_from_slice(&(t.len() as u64).to_le_bytes());
            for (k, v) in t {
                canonical(&toml::Value::String(k.clone()), out);
                canonical(v, out);
            }
            out.push(b'}');
        }
    }
}

fn digest_of(path: &str, value: &toml::Value) -> String {
    let mut bytes = path.as_bytes().to_vec();
    bytes.push(0);
    canonical(value, &mut bytes);
    let hash = Sha256::digest(&bytes);
    hash[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest of every field of the fingerprint, state and solver sections,
/// keyed by its path: a hand edit (or a damaged file) is caught and named.
fn field_digests(table: &toml::Table) -> BTreeMap<String, String> {
    let mut found = Vec::new();
    for section in ["format", "fingerprint", "state", "solver"] {
        match table.get(section) {
            Some(toml::Value::Table(inner)) => leaves(inner, section, &mut found),
            Some(leaf) => found.push((section.to_string(), leaf)),
            None => {}
        }
    }
    found
        .into_iter()
        .map(|(path, value)| {
            let digest = digest_of(&path, value);
            (path, digest)
        })
        .collect()
}

fn check_digests(table: &toml::Table) -> Result<(), (String, String)> {
    let computed = field_digests(table);
    let Some(toml::Value::Table(stored)) = table.get("digests") else {
        return Err(("digests".into(), "is missing".into()));
    };
    for (path, digest) in &computed {
        match stored.get(path).and_then(toml::Value::as_str) {
            Some(s) if s == digest => {}
            Some(_) => {
                return Err((
                    path.clone(),
                    "does not match its digest: the file was edited or damaged".into(),
                ))
            }
            None => return Err((path.clone(), "has no digest: the file was edited".into())),
        }
    }
    if let Some(path) = stored.keys().find(|p| !computed.contains_key(*p)) {
        return Err((
            path.clone(),
            "is missing (its digest is stored): the file was edited".into(),
        ));
    }
    Ok(())
}

/// Values any solver's state must satisfy, whoever wrote the file: no NaN,
/// task weights on the simplex, per-task vectors of length M and gradients of
/// length d.
fn check_solver_values(
    table: &toml::Table,
    prefix: &str,
    fingerprint: &Fingerprint,
) -> Result<(), (String, String)> {
    let mut found = Vec::new();
    leaves(table, prefix, &mut found);
    for (path, value) in found {
        let key = path.rsplit('.').next().unwrap_or(&path);
        let numbers = numbers_in(value);
        if let Some(i) = numbers.iter().position(|x| x.is_nan()) {
            return Err((path, format!("entry {i} is NaN")));
        }
        let expected = match key {
            "weights"
            | "averaged_weights"
            | "log_weights"
            | "weight_sum"
            | "losses"
            | "averaged_losses"
            | "task_gradient_norms" => Some(fingerprint.tasks),
            "gradient" | "param" | "current" | "theta_sum" | "extrapolated" => {
                Some(fingerprint.dim)
            }
            _ => None,
        };
        // (An empty vector is a buffer not filled yet.)
        if let (Some(n), toml::Value::Array(items)) = (expected, value) {
            if !items.is_empty() && items.len() != n {
                return Err((path, format!("has {} entries, expected {n}", items.len())));
            }
            if numbers.iter().any(|x| !x.is_finite()) {
                return Err((path, "holds an infinite value".into()));
            }
        }
        if (key == "weights" || key == "averaged_weights") && !numbers.is_empty() {
            let sum: f64 = numbers.iter().sum();
            if numbers.iter().any(|&w| w < 0.0) || (sum - 1.0).abs() > 1e-9 {
                return Err((path, format!("is not a probability vector (sum {sum})")));
            }
        }
    }
    Ok(())
}

fn numbers_in(value: &toml::Value) -> Vec<f64> {
    match value {
        toml::Value::Float(x) => vec![*x],
        toml::Value::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                toml::Value::Float(x) => Some(*x),
                toml::Value::Integer(i) => Some(*i as f64),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Sets every stored best lower bound to "none yet" (minus infinity).
fn drop_stored_bounds(table: &mut toml::Table) {
    for (key, value) in table.iter_mut() {
        match value {
            toml::Value::Table(inner) => drop_stored_bounds(inner),
            // An integer is read into the f64 field too: reset whatever is stored.
            toml::Value::Float(_) | toml::Value::Integer(_) if key == "best_lower_bound" => {
                *value = toml::Value::Float(f64::NEG_INFINITY)
            }
            _ => {}
        }
    }
}

impl Resume for super::SoftmaxGd {}
impl Resume for super::Accelerated {}
impl Resume for super::DescentAscent {}
impl Resume for super::Subgradient {}
impl Resume for super::AverageGd {}
