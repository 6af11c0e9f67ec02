//! `taskrobust.Problem`: a task family and its feasible set, built from NumPy
//! arrays or read from a problem file with the command line's own loader.

use crate::arrays::{lend, read_vector, vector};
use crate::errors::{input_error, to_py};
use nalgebra::{DMatrix, DVector};
use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use taskrobust::family::{
    Evaluation, GradientForm, LeastSquaresFamily, LogisticFamily, QuadraticFamily, QuadraticTask,
    Samples, TaskData, TaskFamily,
};
use taskrobust::problem::scaling::Scaling;
use taskrobust::{FeasibleSet, InputError};
use taskrobust_lab::io::{check_overflow, load_problem, FamilyKind, LoadedProblem};

/// A vector handed back to Python.
type Array<'py> = Bound<'py, PyArray1<f64>>;

/// The file name a problem built from arrays reports where the command line
/// reports its problem file; stripped from messages (see `errors`).
pub const ARRAYS: &str = "<arrays>";

/// A minimax problem min_theta max_i f_i(theta): M tasks and a feasible set.
///
/// Build one with Problem.least_squares, Problem.quadratic, Problem.logistic
/// or Problem.from_file. Arrays given as C-contiguous float64 NumPy arrays
/// are read in place, not copied: do not modify them while the Problem is
/// alive (pass a copy if you must). Any other layout or dtype is copied once.
#[pyclass(name = "Problem", module = "taskrobust", frozen)]
pub struct PyProblem {
    pub loaded: LoadedProblem,
}

impl PyProblem {
    pub fn family(&self) -> &dyn TaskFamily {
        self.loaded.family.as_ref()
    }

    /// For the tests' pointer checks: `address` of each data task (none for
    /// quadratic problems).
    fn task_addresses(&self, address: impl Fn(&TaskData) -> usize) -> Vec<usize> {
        let family = self.family();
        family
            .least_squares_data()
            .or_else(|| family.logistic_parts().map(|(d, _)| d))
            .map(|d| d.tasks().iter().map(address).collect())
            .unwrap_or_default()
    }

    /// theta in the problem's units -> the units the family works in.
    pub fn theta_in(&self, mut theta: Vec<f64>) -> DVector<f64> {
        self.loaded.scaling.theta_to_internal(&mut theta);
        DVector::from_vec(theta)
    }

    /// theta in the family's units -> the problem's units.
    pub fn theta_out(&self, theta: &DVector<f64>) -> Vec<f64> {
        let s = &self.loaded.scaling;
        theta
            .iter()
            .map(|&v| taskrobust::problem::scaling::ldexp(v, s.theta_exp))
            .collect()
    }

    /// A loss in the family's units -> the problem's units.
    pub fn loss_out(&self, loss: f64) -> f64 {
        taskrobust::problem::scaling::ldexp(loss, self.loaded.scaling.loss_exp)
    }

    pub fn check_theta(&self, py: Python<'_>, theta: &Bound<'_, PyAny>) -> PyResult<DVector<f64>> {
        let values = read_vector(py, theta, "theta")?;
        let d = self.family().dim();
        if values.len() != d {
            return Err(PyValueError::new_err(format!(
                "theta: has {} entries, the problem has dimension {d}",
                values.len()
            )));
        }
        taskrobust::error::check_finite("theta", &values).map_err(input_error)?;
        Ok(self.theta_in(values))
    }

    pub fn check_weights(&self, py: Python<'_>, weights: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
        let p = read_vector(py, weights, "weights")?;
        simplex_weights(p, self.family().num_tasks(), "weights")
    }
}

/// Weights on the simplex: M finite non-negative entries with a positive sum,
/// divided by that sum.
pub fn simplex_weights(mut p: Vec<f64>, m: usize, field: &str) -> PyResult<Vec<f64>> {
    if p.len() != m {
        return Err(PyValueError::new_err(format!(
            "{field}: has {} entries, the problem has {m} tasks",
            p.len()
        )));
    }
    if let Some(i) = p.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(PyValueError::new_err(format!(
            "{field}: entry {i} is {} (weights must be finite and non-negative)",
            p[i]
        )));
    }
    let sum: f64 = p.iter().sum();
    if !(sum > 0.0 && sum.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{field}: must have a positive, finite sum, got {sum}"
        )));
    }
    p.iter_mut().for_each(|w| *w /= sum);
    Ok(p)
}

fn radius_set(radius: Option<f64>) -> PyResult<FeasibleSet> {
    Ok(match radius {
        None => FeasibleSet::Unconstrained,
        Some(r) => FeasibleSet::with_radius(
            taskrobust::error::check_positive("radius", r).map_err(input_error)?,
        ),
    })
}

fn sequence<'py>(value: &Bound<'py, PyAny>, field: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let items: Vec<Bound<'py, PyAny>> = value
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{field}: must be a sequence of arrays (one per task)"
            ))
        })?
        .collect::<PyResult<_>>()?;
    if items.is_empty() {
        return Err(PyValueError::new_err(format!("{field}: no tasks given")));
    }
    Ok(items)
}

/// The command line's data checks (io/problem.rs, `data_task`, `data_tasks`),
/// with the arguments' names (`xs[i]`, `ys[i]`) in place of the file's fields.
fn data_tasks(
    py: Python<'_>,
    xs: &Bound<'_, PyAny>,
    ys: &Bound<'_, PyAny>,
) -> PyResult<Vec<TaskData>> {
    let xs = sequence(xs, "xs")?;
    let ys = sequence(ys, "ys")?;
    if xs.len() != ys.len() {
        return Err(PyValueError::new_err(format!(
            "ys: has {} tasks, xs has {}",
            ys.len(),
            xs.len()
        )));
    }
    let mut tasks = Vec::with_capacity(xs.len());
    for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
        let x_field = format!("xs[{i}]");
        let y_field = format!("ys[{i}]");
        let x = lend(py, x, &x_field, 2)?;
        let (rows, cols) = (x.shape[0], x.shape[1]);
        if rows == 0 || cols == 0 {
            return Err(PyValueError::new_err(format!(
                "{x_field}: is empty ({rows} rows, {cols} columns)"
            )));
        }
        // Lent in place like x (a C-contiguous float64 array is not copied).
        let y_lent = lend(py, y, &y_field, 1)?.values;
        let y = y_lent.as_slice();
        if y.is_empty() {
            return Err(PyValueError::new_err(format!("{y_field}: is empty")));
        }
        // As the command line reads a y file (io::read_vector): `entry [k]`.
        if let Some(k) = taskrobust::error::first_non_finite(y) {
            return Err(PyValueError::new_err(format!(
                "{y_field}: entry [{k}] is {} (NaN or infinite values are not allowed)",
                y[k]
            )));
        }
        if y.len() != rows {
            return Err(PyValueError::new_err(format!(
                "{y_field}: has {} entries but {x_field} has {rows} rows",
                y.len()
            )));
        }
        if let Some(first) = tasks.first() {
            let first: &TaskData = first;
            let d = first.xt.nrows();
            if cols != d {
                return Err(PyValueError::new_err(format!(
                    "{x_field}: has {cols} columns, expected {d} (as xs[0])"
                )));
            }
        }
        // An n x d C-order array is the d x n sample matrix the core reads.
        tasks.push(TaskData {
            xt: Samples::new(cols, rows, x.values),
            y: y_lent.into(),
        });
    }
    Ok(tasks)
}

/// `tasks[i].x` / `tasks[i].y` in a family's error -> `xs[i]` / `ys[i]`.
fn relabel(e: InputError) -> InputError {
    let parsed = e
        .field
        .strip_prefix("tasks[")
        .and_then(|rest| rest.split_once("]."))
        .and_then(|(index, name)| Some((index.parse::<usize>().ok()?, name)));
    let field = match parsed {
        Some((i, "x")) => format!("xs[{i}]"),
        Some((i, "y")) => format!("ys[{i}]"),
        _ => e.field,
    };
    InputError::new(field, e.message)
}

fn data_fields(m: usize) -> Vec<Vec<(String, Option<f64>)>> {
    (0..m)
        .map(|i| vec![(format!("xs[{i}]"), None), (format!("ys[{i}]"), None)])
        .collect()
}

/// The ball in the family's units (the loader's rule: a ball wider than f64
/// is no constraint; one that underflows is refused).
fn internal_set(set: FeasibleSet, scaling: &Scaling) -> PyResult<FeasibleSet> {
    Ok(match set {
        FeasibleSet::Ball { radius } if !scaling.is_identity() => {
            let internal = scaling.length_to_internal(radius);
            if internal.is_finite() && !internal.is_normal() {
                return Err(PyValueError::new_err(format!(
                    "radius: {radius:e} is too small for the scale of the data (2^{} in \
                     internal units); rescale theta's units or the data",
                    -scaling.theta_exp
                )));
            }
            if internal.is_finite() {
                FeasibleSet::with_radius(internal)
            } else {
                FeasibleSet::Unconstrained
            }
        }
        other => other,
    })
}

fn loaded(
    py: Python<'_>,
    family: Arc<dyn TaskFamily>,
    set: FeasibleSet,
    kind: FamilyKind,
    fields: Vec<Vec<(String, Option<f64>)>>,
    scaling: Scaling,
) -> PyResult<PyProblem> {
    checked(
        py,
        LoadedProblem {
            family,
            set,
            kind,
            path: PathBuf::from(ARRAYS),
            fields,
            scaling,
        },
    )
}

/// The command line's overflow check at theta = 0 (`taskrobust solve` runs
/// it before every solve from zero), run once when the problem is built:
/// solves from zero then skip it (see `solve_loaded`).
fn checked(py: Python<'_>, loaded: LoadedProblem) -> PyResult<PyProblem> {
    let zero = DVector::zeros(loaded.family.dim());
    py.detach(|| check_overflow(&loaded, &zero, false))
        .map_err(input_error)?;
    Ok(PyProblem { loaded })
}

#[pymethods]
impl PyProblem {
    /// Least-squares tasks f_i(theta) = ||X_i theta - y_i||^2 / (2 n_i).
    ///
    /// xs: one (n_i, d) array per task (samples in rows); ys: one (n_i,)
    /// array per task; radius: constrain theta to ||theta|| <= radius
    /// (None: unconstrained). float64 C-contiguous xs are read in place.
    #[staticmethod]
    #[pyo3(signature = (xs, ys, radius=None))]
    fn least_squares(
        py: Python<'_>,
        xs: &Bound<'_, PyAny>,
        ys: &Bound<'_, PyAny>,
        radius: Option<f64>,
    ) -> PyResult<Self> {
        let set = radius_set(radius)?;
        let mut data = data_tasks(py, xs, ys)?;
        let m = data.len();
        let scaling = Scaling::equilibrate_least_squares(&mut data);
        let family = py
            .detach(|| LeastSquaresFamily::new(data, GradientForm::Auto))
            .map_err(|e| input_error(relabel(e)))?;
        let set = internal_set(set, &scaling)?;
        loaded(
            py,
            Arc::new(family),
            set,
            FamilyKind::LeastSquares,
            data_fields(m),
            scaling,
        )
    }

    /// Logistic tasks f_i(theta) = mean log(1 + exp(-y x^T theta)) + l2/2 ||theta||^2.
    ///
    /// xs: one (n_i, d) array per task; ys: labels +1/-1, one (n_i,) array
    /// per task; l2: the ridge penalty (positive); radius as for least_squares.
    #[staticmethod]
    #[pyo3(signature = (xs, ys, *, l2, radius=None))]
    fn logistic(
        py: Python<'_>,
        xs: &Bound<'_, PyAny>,
        ys: &Bound<'_, PyAny>,
        l2: f64,
        radius: Option<f64>,
    ) -> PyResult<Self> {
        let set = radius_set(radius)?;
        let l2 = taskrobust::error::check_positive("l2", l2).map_err(input_error)?;
        let mut data = data_tasks(py, xs, ys)?;
        let m = data.len();
        let (scaling, l2) = Scaling::equilibrate_logistic(&mut data, l2);
        let family = py
            .detach(|| LogisticFamily::new(data, l2))
            .map_err(|e| input_error(relabel(e)))?;
        let set = internal_set(set, &scaling)?;
        loaded(
            py,
            Arc::new(family),
            set,
            FamilyKind::Logistic,
            data_fields(m),
            scaling,
        )
    }

    /// Quadratic tasks f_i(theta) = 1/2 (theta - c_i)^T A_i (theta - c_i) + b_i.
    ///
    /// a: one symmetric PSD (d, d) array per task (or an (M, d, d) array);
    /// c: one (d,) centre per task (or (M, d)); b: the minimum values, M
    /// numbers (default 0); radius as for least_squares. A, c and b are copied.
    #[staticmethod]
    #[pyo3(signature = (a, c, b=None, radius=None))]
    fn quadratic(
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        c: &Bound<'_, PyAny>,
        b: Option<&Bound<'_, PyAny>>,
        radius: Option<f64>,
    ) -> PyResult<Self> {
        let set = radius_set(radius)?;
        let a_items = sequence(a, "a")?;
        let c_items = sequence(c, "c")?;
        let m = a_items.len();
        if c_items.len() != m {
            return Err(PyValueError::new_err(format!(
                "c: has {} tasks, a has {m}",
                c_items.len()
            )));
        }
        let b = match b {
            None => vec![0.0; m],
            Some(b) => {
                let b = read_vector(py, b, "b")?;
                if b.len() != m {
                    return Err(PyValueError::new_err(format!(
                        "b: has {} entries, a has {m} tasks",
                        b.len()
                    )));
                }
                b
            }
        };
        let mut tasks = Vec::with_capacity(m);
        let mut fields = Vec::with_capacity(m);
        for (i, (ai, ci)) in a_items.iter().zip(&c_items).enumerate() {
            let lent = lend(py, ai, &format!("a[{i}]"), 2)?;
            let (rows, cols) = (lent.shape[0], lent.shape[1]);
            // C order: rows of A one after another.
            let a = DMatrix::from_row_slice(rows, cols, lent.values.as_slice());
            let c = DVector::from_vec(read_vector(py, ci, &format!("c[{i}]"))?);
            let largest = taskrobust::problem::scaling::largest_magnitude;
            fields.push(vec![
                (format!("a[{i}]"), Some(largest(a.as_slice()))),
                (format!("c[{i}]"), Some(largest(c.as_slice()))),
                (format!("b[{i}]"), Some(b[i].abs())),
            ]);
            tasks.push(QuadraticTask { a, c, b: b[i] });
        }
        let scaling = Scaling::equilibrate_quadratic(&mut tasks);
        let family = QuadraticFamily::new(tasks).map_err(|e| input_error(relabel_quadratic(e)))?;
        let set = internal_set(set, &scaling)?;
        loaded(
            py,
            Arc::new(family),
            set,
            FamilyKind::Quadratic,
            fields,
            scaling,
        )
    }

    /// Reads a problem file (JSON, as `taskrobust solve` reads it: the same
    /// loader, checks and messages).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let loaded = py.detach(|| load_problem(&path)).map_err(input_error)?;
        checked(py, loaded)
    }

    /// "quadratic", "least_squares" or "logistic".
    #[getter]
    fn kind(&self) -> &'static str {
        self.loaded.kind.as_str()
    }

    /// M: the number of tasks.
    #[getter]
    fn num_tasks(&self) -> usize {
        self.family().num_tasks()
    }

    /// d: the dimension of theta.
    #[getter]
    fn dim(&self) -> usize {
        self.family().dim()
    }

    /// The ball's radius, or None (unconstrained).
    #[getter]
    fn radius(&self) -> Option<f64> {
        let s = &self.loaded.scaling;
        self.loaded
            .set
            .radius()
            .map(|r| taskrobust::problem::scaling::ldexp(r, s.theta_exp))
    }

    /// f_i(theta) for every task, as an array of M losses.
    fn losses<'py>(
        &self,
        py: Python<'py>,
        theta: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let theta = self.check_theta(py, theta)?;
        let mut losses = vec![0.0; self.family().num_tasks()];
        py.detach(|| self.family().losses(&theta, &mut losses))
            .map_err(to_py)?;
        let losses: Vec<f64> = losses.into_iter().map(|l| self.loss_out(l)).collect();
        Ok(vector(py, &losses))
    }

    /// One pass: (losses f(theta), gradient sum_i p_i grad f_i(theta)) for
    /// weights p on the simplex (divided by their sum).
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        theta: &Bound<'py, PyAny>,
        weights: &Bound<'py, PyAny>,
    ) -> PyResult<(Array<'py>, Array<'py>)> {
        let theta = self.check_theta(py, theta)?;
        let p = self.check_weights(py, weights)?;
        let family = self.family();
        let mut eval = Evaluation::new(family.num_tasks(), family.dim());
        py.detach(|| family.evaluate(&theta, &mut |_, w| w.copy_from_slice(&p), &mut eval))
            .map_err(to_py)?;
        let losses: Vec<f64> = eval.losses.iter().map(|&l| self.loss_out(l)).collect();
        // d f / d theta scales by 2^(loss_exp - theta_exp).
        let s = &self.loaded.scaling;
        let gradient: Vec<f64> = eval
            .gradient
            .iter()
            .map(|&g| taskrobust::problem::scaling::ldexp(g, s.loss_exp - s.theta_exp))
            .collect();
        Ok((vector(py, &losses), vector(py, &gradient)))
    }

    /// The gradient of task i at theta.
    fn task_gradient<'py>(
        &self,
        py: Python<'py>,
        task: usize,
        theta: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let m = self.family().num_tasks();
        if task >= m {
            return Err(PyValueError::new_err(format!(
                "task: is {task}, the problem has {m} tasks (0 to {})",
                m - 1
            )));
        }
        let theta = self.check_theta(py, theta)?;
        let mut gradient = DVector::zeros(self.family().dim());
        self.family()
            .task_gradient(task, &theta, &mut gradient)
            .map_err(to_py)?;
        let s = &self.loaded.scaling;
        let gradient: Vec<f64> = gradient
            .iter()
            .map(|&g| taskrobust::problem::scaling::ldexp(g, s.loss_exp - s.theta_exp))
            .collect();
        Ok(vector(py, &gradient))
    }

    /// theta projected onto the feasible set (itself where unconstrained).
    fn project<'py>(
        &self,
        py: Python<'py>,
        theta: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let mut theta = self.check_theta(py, theta)?;
        self.loaded.set.project(&mut theta);
        Ok(vector(py, &self.theta_out(&theta)))
    }

    /// For tests: the address of each task's sample buffer as the core reads
    /// it (equal to the NumPy array's `ctypes.data` where it was not copied).
    fn _data_pointers(&self) -> Vec<usize> {
        self.task_addresses(|t| t.xt.as_slice().as_ptr() as usize)
    }

    /// For tests: the address of each task's targets as the core reads them
    /// (equal to the NumPy array's `ctypes.data` where it was not copied).
    fn _target_pointers(&self) -> Vec<usize> {
        self.task_addresses(|t| t.y.as_slice().as_ptr() as usize)
    }

    fn __repr__(&self) -> String {
        let radius = match self.radius() {
            Some(r) => format!(", radius={r}"),
            None => String::new(),
        };
        format!(
            "Problem({}, M={}, d={}{radius})",
            self.kind(),
            self.num_tasks(),
            self.dim()
        )
    }
}

/// `tasks[i].a` -> `a[i]` (and c, b) in a quadratic family's error.
fn relabel_quadratic(e: InputError) -> InputError {
    let parsed = e
        .field
        .strip_prefix("tasks[")
        .and_then(|rest| rest.split_once("]."));
    let field = match parsed {
        Some((i, name)) => format!("{name}[{i}]"),
        None => e.field,
    };
    InputError::new(field, e.message)
}
