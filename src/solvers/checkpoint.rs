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
use crate::ball::FeasibleSet;
use crate::error::InputError;
use crate::family::TaskFamily;
use crate::io::write_atomic;
use argmin::core::checkpointing::{Checkpoint, CheckpointingFrequency};
use argmin::core::{Error, State};
use nalgebra::DVector;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout.
const FORMAT: u32 = 1;

/// What a solver must redo after being read back from a checkpoint (state
/// that is cheaper to rebuild than to store, such as an RNG).
pub trait Resume {
    fn resume(&mut self) {}
}

/// The run a checkpoint belongs to: resuming with another problem or other
/// options would silently mix two runs, so it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub method: String,
    pub kind: String,
    pub tasks: usize,
    pub dim: usize,
    pub set: FeasibleSet,
    pub iterations: u64,
    pub mu: Option<f64>,
    pub step: Option<f64>,
    pub weight_step: Option<f64>,
    #[serde(with = "u64_text")]
    pub seed: u64,
    pub distance: Option<f64>,
    pub batch_size: usize,
    pub ema: Option<f64>,
    pub certify_every: u64,
    pub record_trace: bool,
    /// The starting point, bit for bit (hex), or None for the default.
    pub init: Option<String>,
}

impl Fingerprint {
    pub fn new(family: &dyn TaskFamily, set: FeasibleSet, options: &SolveOptions) -> Self {
        Self {
            method: options.method.name().to_string(),
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
        }
    }

    /// The first field that differs, as "name: this vs that".
    fn difference(&self, other: &Self) -> Option<String> {
        let a = toml::Value::try_from(self).ok()?;
        let b = toml::Value::try_from(other).ok()?;
        let (a, b) = (a.as_table()?, b.as_table()?);
        a.keys()
            .chain(b.keys())
            .find(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                let show = |v: Option<&toml::Value>| v.map_or("none".into(), |v| v.to_string());
                format!("{k}: {} vs {}", show(b.get(k)), show(a.get(k)))
            })
    }
}

#[derive(Serialize)]
struct Saving<'a, S> {
    format: u32,
    fingerprint: &'a Fingerprint,
    state: StateSnapshot,
    solver: &'a S,
}

#[derive(Deserialize)]
struct Saved<S> {
    format: u32,
    fingerprint: Fingerprint,
    state: StateSnapshot,
    solver: S,
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
        format!("--checkpoint ({})", self.path.display())
    }
}

impl<S> Checkpoint<S, MinimaxState> for FileCheckpoint<S>
where
    S: Serialize + DeserializeOwned + Resume,
{
    fn save(&self, solver: &S, state: &MinimaxState) -> Result<(), Error> {
        let text = toml::to_string(&Saving {
            format: FORMAT,
            fingerprint: &self.fingerprint,
            state: StateSnapshot::of(state),
            solver,
        })
        .map_err(|e| Error::msg(format!("{}: cannot encode: {e}", self.field())))?;
        write_atomic(&self.path, text.as_bytes())
            .map_err(|e| Error::msg(format!("{}: {e}", self.field())))
    }

    fn load(&self) -> Result<Option<(S, MinimaxState)>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(InputError::new(self.field(), format!("cannot read: {e}")).into()),
        };
        let saved: Saved<S> = toml::from_str(&text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or("").to_string();
            InputError::new(
                self.field(),
                format!("is not a readable checkpoint ({first})"),
            )
        })?;
        if saved.format != FORMAT {
            return Err(InputError::new(
                self.field(),
                format!(
                    "has checkpoint format {}, this version reads {FORMAT}",
                    saved.format
                ),
            )
            .into());
        }
        if let Some(diff) = self.fingerprint.difference(&saved.fingerprint) {
            return Err(InputError::new(
                self.field(),
                format!("was written for another problem or other options ({diff})"),
            )
            .into());
        }
        let mut solver = saved.solver;
        solver.resume();
        Ok(Some((solver, saved.state.into_state(self.max_iters))))
    }

    fn frequency(&self) -> CheckpointingFrequency {
        CheckpointingFrequency::Every(self.every)
    }
}

impl Resume for super::SoftmaxGd {}
impl Resume for super::Accelerated {}
impl Resume for super::DescentAscent {}
impl Resume for super::Subgradient {}
impl Resume for super::AverageGd {}
