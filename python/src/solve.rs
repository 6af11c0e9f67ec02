//! `taskrobust.solve`, `taskrobust.certify`, `taskrobust.run_method` and the
//! result they return. Solves run with the GIL released; every 50 ms (or
//! after every iteration where a callback is given) the run takes the GIL
//! back briefly to check for Ctrl-C and to call the callback.

use crate::arrays::{matrix, read_vector, vector};
use crate::errors::{input_error, to_py};
use crate::problem::{simplex_weights, PyProblem};
use argmin::core::{Problem, Solver, State, KV};
use nalgebra::DVector;
use numpy::PyArray1;
use pyo3::exceptions::{PyRuntimeWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskrobust::family::{Evaluation, TaskFamily};
use taskrobust::problem::numerics::{entropy, max_with_index, round_up, softmax};
use taskrobust::solvers::{
    certify_returned_point_fully, run_solver, unwrap_problem, Certifying, Constants, IterationHook,
    Method, MinimaxProblem, MinimaxState, Resume, SolveOptions, SolveOutcome, Tracker,
};
use taskrobust::FeasibleSet;
use taskrobust_lab::cli::{format_table, outcome_json, solve_loaded, tolerance_warning};

/// How often a solve without a callback looks for Ctrl-C.
const SIGNAL_INTERVAL: Duration = Duration::from_millis(50);

/// How lower_bound was certified.
#[pyclass(name = "Certificate", module = "taskrobust", frozen, get_all)]
#[derive(Clone)]
pub struct PyCertificate {
    /// "dual", "linearization", "strong-convexity", "trivial" or "none".
    pub kind: String,
    /// The rounding allowance subtracted from the computed bound (>= 0).
    pub error_bound: f64,
    /// Why the bound is loose or missing; empty otherwise.
    pub note: String,
}

#[pymethods]
impl PyCertificate {
    fn __repr__(&self) -> String {
        format!(
            "Certificate(kind={:?}, error_bound={:e}, note={:?})",
            self.kind, self.error_bound, self.note
        )
    }
}

/// The result of solve, run_method or certify: the returned point, its
/// losses, the certificate weights, a certified lower bound on OPT and the
/// gap, with the per-iteration history. Numbers are those of
/// `taskrobust solve --format json` (see as_dict).
#[pyclass(name = "SolveResult", module = "taskrobust", frozen)]
pub struct PySolveResult {
    outcome: SolveOutcome,
    /// What the table's first line names (the problem file, or "<arrays>").
    label: String,
    kind: String,
}

fn optional(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[pymethods]
impl PySolveResult {
    /// The method's name.
    #[getter]
    fn method(&self) -> &str {
        &self.outcome.method
    }
    /// Iterations run (updates of theta).
    #[getter]
    fn iterations(&self) -> u64 {
        self.outcome.iterations
    }
    /// F(theta) = max_i f_i(theta) at the returned theta.
    #[getter]
    fn max_loss(&self) -> f64 {
        self.outcome.max_loss
    }
    /// A certified lower bound on OPT (None where no valid bound exists;
    /// certificate.note says why).
    #[getter]
    fn lower_bound(&self) -> Option<f64> {
        optional(self.outcome.lower_bound)
    }
    /// max_loss + its rounding bound - lower_bound: F(theta) - OPT <= gap.
    #[getter]
    fn gap(&self) -> Option<f64> {
        optional(self.outcome.gap)
    }
    /// How lower_bound was certified.
    #[getter]
    fn certificate(&self) -> PyCertificate {
        let c = &self.outcome.certificate;
        PyCertificate {
            kind: c.kind.to_string(),
            error_bound: c.error_bound,
            note: c.note.to_string(),
        }
    }
    /// The returned point theta (d,).
    #[getter]
    fn theta<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        vector(py, &self.outcome.theta)
    }
    /// f_i(theta) for every task (M,).
    #[getter]
    fn losses<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        vector(py, &self.outcome.losses)
    }
    /// The certificate weights (M,), on the simplex.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        vector(py, &self.outcome.weights)
    }
    /// Solve time in seconds (building the problem excluded).
    #[getter]
    fn seconds(&self) -> f64 {
        self.outcome.seconds
    }
    /// The temperature at the end of the run (smoothed methods), else None.
    #[getter]
    fn mu(&self) -> Option<f64> {
        self.outcome.mu
    }
    /// The step at the end of the run, where the method has one.
    #[getter]
    fn step(&self) -> Option<f64> {
        self.outcome.step
    }
    /// argmax_i f_i(theta) (the first on ties).
    #[getter]
    fn worst_task(&self) -> usize {
        self.outcome.worst_task
    }
    /// Why the run stopped.
    #[getter]
    fn termination(&self) -> &str {
        &self.outcome.termination
    }
    /// The per-iteration history, one entry per recorded iteration (0 = the
    /// start): a dict of NumPy arrays "iteration", "max_loss", "lower_bound"
    /// (NaN where not certified that iteration), "best_lower_bound", "gap",
    /// "entropy", "worst_task", "step" (NaN where none) and "weights" (T+1, M).
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let trace = &self.outcome.trace;
        let column = |f: &dyn Fn(&taskrobust::solvers::IterationRecord) -> f64| {
            vector(py, &trace.iter().map(f).collect::<Vec<_>>())
        };
        let dict = PyDict::new(py);
        let iterations: Vec<u64> = trace.iter().map(|r| r.iteration).collect();
        dict.set_item("iteration", PyArray1::from_vec(py, iterations))?;
        dict.set_item("max_loss", column(&|r| r.max_loss))?;
        dict.set_item("lower_bound", column(&|r| r.lower_bound))?;
        dict.set_item("best_lower_bound", column(&|r| r.best_lower_bound))?;
        dict.set_item("gap", column(&|r| r.gap))?;
        dict.set_item("entropy", column(&|r| r.entropy))?;
        let worst: Vec<u64> = trace.iter().map(|r| r.worst_task as u64).collect();
        dict.set_item("worst_task", PyArray1::from_vec(py, worst))?;
        dict.set_item("step", column(&|r| r.step))?;
        let m = self.outcome.losses.len();
        let weights: Vec<f64> = trace.iter().flat_map(|r| r.weights.clone()).collect();
        dict.set_item("weights", matrix(py, weights, m)?)?;
        Ok(dict)
    }
    /// The object `taskrobust solve --format json` prints (the contract's
    /// fields), as a dict.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = outcome_json(&self.outcome).to_string();
        py.import("json")?.call_method1("loads", (text,))
    }
    /// The command line's table.
    fn __repr__(&self) -> String {
        format_table(&self.outcome, &self.label, &self.kind)
    }
}

fn result(problem: &PyProblem, outcome: SolveOutcome) -> PySolveResult {
    PySolveResult {
        outcome,
        label: problem.loaded.path.display().to_string(),
        kind: problem.loaded.kind.as_str().to_string(),
    }
}

/// Where an error raised in Python during a run waits until the run has
/// returned (the core sees only that the run was stopped).
type Pending = Arc<Mutex<Option<PyErr>>>;

fn stopped() -> taskrobust::Error {
    taskrobust::Error::Solver("stopped from Python".into())
}

/// The hook that checks for Ctrl-C every SIGNAL_INTERVAL and calls
/// `callback(iteration, max_loss, theta)` after every iteration.
fn python_hook(
    callback: Option<Py<PyAny>>,
    scaling: taskrobust::problem::scaling::Scaling,
    pending: Pending,
) -> IterationHook {
    let last = Mutex::new(Instant::now());
    IterationHook::new(move |iteration, theta, max_loss| {
        {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if callback.is_none() && last.elapsed() < SIGNAL_INTERVAL {
                return Ok(());
            }
            *last = Instant::now();
        }
        let outcome = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(callback) = &callback {
                let mut theta = theta.as_slice().to_vec();
                for v in &mut theta {
                    *v = taskrobust::problem::scaling::ldexp(*v, scaling.theta_exp);
                }
                let loss = taskrobust::problem::scaling::ldexp(max_loss, scaling.loss_exp);
                callback.call1(py, (iteration, loss, vector(py, &theta)))?;
            }
            Ok(())
        });
        outcome.map_err(|e| {
            *pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            stopped()
        })
    })
}

/// A run's error: the Python exception that stopped it, else the core's.
fn run_error(e: taskrobust::Error, pending: &Pending) -> PyErr {
    match pending.lock().unwrap_or_else(|e| e.into_inner()).take() {
        Some(python) => python,
        None => to_py(e),
    }
}

/// Solves min_theta max_i f_i(theta) with a built-in method, as
/// `taskrobust solve` does: the numbers of `taskrobust solve --format json`.
///
/// problem: a Problem. method: "softmax-gd" (the paper's method),
/// "accelerated", "stochastic", "descent-ascent", "subgradient", "average"
/// or "exact". mu: fixed temperature (None: tuned). step: fixed step (None:
/// each method's default rule). iters: T, the number of updates of theta.
/// seed: minibatch draws (stochastic). callback: called after every
/// iteration as callback(iteration, max_loss, theta); an exception it raises
/// stops the solve and is raised here. init: starting point (default 0).
/// distance: an upper bound on ||theta_0 - theta*|| (tunes mu and steps
/// without a radius). weight_step, batch_size, ema, certify_every: as the
/// command line's --weight-step, --batch-size, --ema, --certify-every.
///
/// The GIL is released while the solve runs; Ctrl-C stops it
/// (KeyboardInterrupt). Returns a SolveResult; bad input raises ValueError
/// (TypeError for the wrong types) with the command line's message, naming
/// the argument.
#[pyfunction]
#[pyo3(signature = (
    problem, method="softmax-gd", mu=None, step=None, iters=200, seed=0, callback=None, *,
    init=None, distance=None, weight_step=None, batch_size=32, ema=None, certify_every=None
))]
#[allow(clippy::too_many_arguments)]
pub fn solve(
    py: Python<'_>,
    problem: &Bound<'_, PyProblem>,
    method: &str,
    mu: Option<f64>,
    step: Option<f64>,
    iters: i64,
    seed: u64,
    callback: Option<Py<PyAny>>,
    init: Option<&Bound<'_, PyAny>>,
    distance: Option<f64>,
    weight_step: Option<f64>,
    batch_size: usize,
    ema: Option<f64>,
    certify_every: Option<u64>,
) -> PyResult<PySolveResult> {
    let problem = problem.get();
    // The command line's order: options that need no data first.
    let method: Method = method.parse().map_err(input_error)?;
    for (field, value) in [
        ("mu", mu),
        ("step", step),
        ("weight_step", weight_step),
        ("distance", distance),
    ] {
        if let Some(v) = value {
            taskrobust::error::check_positive(field, v).map_err(input_error)?;
        }
    }
    if iters <= 0 {
        return Err(PyValueError::new_err(format!(
            "iters: must be a positive integer, got {iters}"
        )));
    }
    if let Some(callback) = &callback {
        if !callback.bind(py).is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "callback: must be callable as callback(iteration, max_loss, theta)",
            ));
        }
    }
    let init = match init {
        Some(v) => Some(DVector::from_vec(read_vector(py, v, "init")?)),
        None => None,
    };
    let pending: Pending = Arc::default();
    let options = SolveOptions {
        method,
        iterations: iters as u64,
        mu,
        step,
        weight_step,
        seed,
        init,
        distance,
        batch_size,
        ema,
        certify_every,
        record_trace: true,
        on_iteration: Some(python_hook(
            callback,
            problem.loaded.scaling,
            pending.clone(),
        )),
        ..SolveOptions::default()
    };
    let outcome = py
        .detach(|| solve_loaded(&problem.loaded, options, true))
        .map_err(|e| run_error(e, &pending))?;
    if let Some(warning) = tolerance_warning(&outcome) {
        PyErr::warn(
            py,
            &py.get_type::<PyRuntimeWarning>(),
            &std::ffi::CString::new(warning).unwrap_or_default(),
            1,
        )?;
    }
    Ok(result(problem, outcome))
}

/// The certificate of a point as `finish` in the core's runner makes it:
/// losses, F(theta), the refined certificate for weights p, and the gap with
/// F's own rounding included. Internal units.
fn certify_outcome(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta: &DVector<f64>,
    weights: &[f64],
) -> Result<SolveOutcome, taskrobust::Error> {
    let start = Instant::now();
    let mut losses = vec![0.0; family.num_tasks()];
    family.losses(theta, &mut losses)?;
    let (worst_task, max_loss) = max_with_index(&losses).unwrap_or((0, f64::NAN));
    let mut certificate = certify_returned_point_fully(family, set, theta, weights, max_loss)?;
    let loss_error = family.loss_error_bound(theta, &losses);
    let lower_bound = certificate.bound;
    let gap = if lower_bound.is_finite() {
        round_up(max_loss + loss_error - lower_bound)
    } else {
        f64::NAN
    };
    certificate.error_bound = round_up(certificate.error_bound + loss_error);
    let loss_bound = losses.iter().fold(0.0, |b: f64, l| b.max(l.abs()));
    Ok(SolveOutcome {
        method: "certify".into(),
        iterations: 0,
        theta: theta.as_slice().to_vec(),
        entropy: entropy(weights),
        losses,
        weights: weights.to_vec(),
        max_loss,
        lower_bound,
        gap,
        certificate,
        solver_status: None,
        reached_tolerance: true,
        seconds: start.elapsed().as_secs_f64(),
        mu: None,
        step: None,
        worst_task,
        termination: "certified".into(),
        constants: Constants {
            smoothness: family.known_smoothness(),
            strong_convexity: family.known_strong_convexity(),
            gradient_bound: f64::NAN,
            loss_bound,
            smoothed_smoothness: None,
            smallest_step: None,
        },
        trace: Vec::new(),
    })
}

fn losses_of(family: &dyn TaskFamily, theta: &DVector<f64>) -> Result<Vec<f64>, taskrobust::Error> {
    let mut losses = vec![0.0; family.num_tasks()];
    family.losses(theta, &mut losses)?;
    Ok(losses)
}

/// Candidate weights where none are given: uniform, and the softmax of the
/// losses at temperatures from the losses' spread down to 1e-6 of it.
fn candidate_weights(losses: &[f64]) -> Vec<Vec<f64>> {
    let m = losses.len();
    let mut candidates = vec![vec![1.0 / m as f64; m]];
    let (lo, hi) = losses
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &l| {
            (a.min(l), b.max(l))
        });
    let spread = hi - lo;
    if spread > 0.0 && spread.is_finite() {
        for k in 0..7 {
            candidates.push(softmax(losses, spread * 10f64.powi(-k)));
        }
    }
    candidates
}

/// A certified lower bound on OPT, and the gap, at any point theta.
///
/// weights: the task weights p whose dual value D(p) certifies OPT >= D(p)
/// (any p on the simplex gives a valid bound; they are divided by their
/// sum). None tries the uniform weights and the softmax of the losses at
/// seven temperatures, and keeps the best bound (each is certified, so the
/// best is too). Returns a SolveResult with method "certify".
#[pyfunction]
#[pyo3(signature = (problem, theta, weights=None))]
pub fn certify(
    py: Python<'_>,
    problem: &Bound<'_, PyProblem>,
    theta: &Bound<'_, PyAny>,
    weights: Option<&Bound<'_, PyAny>>,
) -> PyResult<PySolveResult> {
    let problem = problem.get();
    let theta = problem.check_theta(py, theta)?;
    let weights = match weights {
        Some(w) => Some(problem.check_weights(py, w)?),
        None => None,
    };
    let family = problem.family();
    let set = problem.loaded.set;
    let mut outcome = py
        .detach(|| -> Result<SolveOutcome, taskrobust::Error> {
            let candidates = match weights {
                Some(w) => vec![w],
                None => candidate_weights(&losses_of(family, &theta)?),
            };
            let mut best: Option<SolveOutcome> = None;
            for p in candidates {
                let outcome = certify_outcome(family, &set, &theta, &p)?;
                let better = match &best {
                    None => true,
                    Some(b) => outcome.lower_bound > b.lower_bound,
                };
                if better {
                    best = Some(outcome);
                }
            }
            Ok(best.expect("at least the uniform weights"))
        })
        .map_err(to_py)?;
    problem
        .loaded
        .scaling
        .outcome_to_problem_units(&mut outcome);
    Ok(result(problem, outcome))
}

/// A method written in Python, run by the core's runner (`run_solver`):
/// each iteration calls `method.step(problem, theta, iteration)`, which
/// returns the next theta and the task weights it stands on; the runner
/// projects theta onto the set, evaluates it, keeps the records and
/// certifies the returned point exactly as it does for the built-in methods.
#[derive(Serialize, Deserialize)]
struct PythonMethod {
    /// The user's object (not saved: Python methods are not checkpointed).
    #[serde(skip)]
    method: Option<Py<PyAny>>,
    #[serde(skip)]
    problem: Option<Py<PyProblem>>,
    tracker: Tracker,
    scaling: (i32, i32),
    weights: Vec<f64>,
    #[serde(skip)]
    pending: Pending,
    name: String,
}

impl Resume for PythonMethod {}

impl PythonMethod {
    fn scaling(&self) -> taskrobust::problem::scaling::Scaling {
        taskrobust::problem::scaling::Scaling {
            theta_exp: self.scaling.0,
            loss_exp: self.scaling.1,
        }
    }

    /// Calls `method.step`; its result in the family's units, checked.
    fn call_step(
        &self,
        theta: &DVector<f64>,
        iteration: u64,
        m: usize,
    ) -> Result<(DVector<f64>, Vec<f64>), taskrobust::Error> {
        let scaling = self.scaling();
        let out = Python::attach(|py| -> PyResult<(DVector<f64>, Vec<f64>)> {
            py.check_signals()?;
            let (Some(method), Some(problem)) = (&self.method, &self.problem) else {
                return Err(PyValueError::new_err("method: not set"));
            };
            let theta_out: Vec<f64> = theta
                .iter()
                .map(|&v| taskrobust::problem::scaling::ldexp(v, scaling.theta_exp))
                .collect();
            let returned = method.call_method1(
                py,
                "step",
                (problem.clone_ref(py), vector(py, &theta_out), iteration),
            )?;
            let returned = returned.bind(py);
            let (next, weights): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                returned.extract().map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err(
                        "step: must return (theta, weights), two arrays",
                    )
                })?;
            let next = problem.get().check_theta(py, &next).map_err(|e| {
                PyValueError::new_err(format!("step returned a bad theta: {}", e.value(py)))
            })?;
            let weights = simplex_weights(read_vector(py, &weights, "weights")?, m, "weights")
                .map_err(|e| {
                    PyValueError::new_err(format!("step returned bad weights: {}", e.value(py)))
                })?;
            Ok((next, weights))
        });
        out.map_err(|e| {
            *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            stopped()
        })
    }

    fn observe(
        &mut self,
        family: &dyn TaskFamily,
        theta: &DVector<f64>,
        weights: &[f64],
        iteration: u64,
    ) -> Result<(f64, Option<KV>), taskrobust::Error> {
        let mut eval = Evaluation::new(family.num_tasks(), family.dim());
        family.evaluate(theta, &mut |_, w| w.copy_from_slice(weights), &mut eval)?;
        self.tracker.absorb(&eval);
        let lower = if self.tracker.due(iteration) {
            self.tracker.certify_evaluated(family, theta, &eval)?
        } else {
            f64::NAN
        };
        let kv = self
            .tracker
            .record(iteration, &eval.losses, weights, lower, None, f64::NAN);
        self.weights = weights.to_vec();
        Ok((eval.max_loss(), kv))
    }
}

impl Solver<MinimaxProblem, MinimaxState> for PythonMethod {
    fn name(&self) -> &str {
        &self.name
    }

    fn init(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), argmin::core::Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = taskrobust::solvers::start_point(&mut state, family.as_ref(), &set);
        let m = family.num_tasks();
        let (cost, kv) = self.observe(family.as_ref(), &theta, &vec![1.0 / m as f64; m], 0)?;
        Ok((state.param(theta).cost(cost), kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        mut state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), argmin::core::Error> {
        let (family, set) = unwrap_problem(problem)?;
        let theta = taskrobust::solvers::take_theta(&mut state)?;
        let (mut next, weights) = self.call_step(&theta, state.get_iter(), family.num_tasks())?;
        set.project(&mut next);
        let (cost, kv) = self.observe(family.as_ref(), &next, &weights, state.get_iter() + 1)?;
        Ok((state.param(next).cost(cost), kv))
    }
}

impl Certifying for PythonMethod {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn certificate_weights(&self, _losses: &[f64]) -> Vec<f64> {
        self.weights.clone()
    }
}

/// Runs a method written in Python through the core's runner, with the
/// records and certificate of the built-in methods.
///
/// method: an object with step(problem, theta, iteration) -> (theta, weights):
/// given the current point (an array, in the problem's units) it returns the
/// next point (projected onto the problem's set by the runner) and the task
/// weights it stands on (M non-negative numbers, divided by their sum). It
/// may call problem.losses, problem.evaluate, problem.task_gradient and
/// problem.project. The returned point is the last iterate, certified with
/// its last weights (and never worse than the best certificate seen on the
/// way). iters: the number of steps. init: the start (default 0, projected).
/// name: the method's name in the result (default: the object's class name).
/// certify_every: as for solve. The GIL is released between steps; Ctrl-C
/// and exceptions raised by step stop the run and are raised here.
#[pyfunction]
#[pyo3(signature = (problem, method, iters=200, *, init=None, name=None, certify_every=None))]
pub fn run_method(
    py: Python<'_>,
    problem: &Bound<'_, PyProblem>,
    method: Py<PyAny>,
    iters: i64,
    init: Option<&Bound<'_, PyAny>>,
    name: Option<String>,
    certify_every: Option<u64>,
) -> PyResult<PySolveResult> {
    if iters <= 0 {
        return Err(PyValueError::new_err(format!(
            "iters: must be a positive integer, got {iters}"
        )));
    }
    if !method.bind(py).hasattr("step")? {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "method: must have a step(problem, theta, iteration) -> (theta, weights) method",
        ));
    }
    let name = match name {
        Some(n) => n,
        None => method
            .bind(py)
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "python".into()),
    };
    let inner = problem.get();
    let init = match init {
        Some(v) => Some(inner.check_theta(py, v)?),
        None => None,
    };
    let options = SolveOptions {
        iterations: iters as u64,
        init,
        certify_every,
        record_trace: true,
        ..SolveOptions::default()
    };
    let family = inner.loaded.family.clone();
    let set = inner.loaded.set;
    let pending: Pending = Arc::default();
    let scaling = inner.loaded.scaling;
    let solver = PythonMethod {
        method: Some(method),
        problem: Some(problem.clone().unbind()),
        tracker: Tracker::for_run(family.as_ref(), set, &options),
        scaling: (scaling.theta_exp, scaling.loss_exp),
        weights: Vec::new(),
        pending: pending.clone(),
        name: name.clone(),
    };
    let mut outcome = py
        .detach(|| run_solver(family, set, solver, &name, &options))
        .map_err(|e| run_error(e, &pending))?;
    scaling.outcome_to_problem_units(&mut outcome);
    Ok(result(inner, outcome))
}
