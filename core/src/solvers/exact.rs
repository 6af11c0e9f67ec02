//! The exact reference: the epigraph problem `min t s.t. f_i(theta) <= t`
//! (and `||theta|| <= r`) as a second-order cone program, solved by Clarabel.
//!
//! Each quadratic constraint `1/2 ||F^T theta||^2 + l^T theta + c <= t`
//! (Q = F F^T) is the rotated cone `||u||^2 <= 2 s` with `u = F^T theta`,
//! `s = t - l^T theta - c`, i.e. the standard cone `(s + 1, s - 1, sqrt2 u)`.
//! The cone duals give the task weights `lambda_i` (they sum to one at the
//! optimum); the certificate `D(lambda)` is then computed by this crate, not
//! taken from the solver, so the reported gap is independent of Clarabel's
//! own tolerances.

use super::tracker::Tracker;
use super::{unwrap_problem, MinimaxProblem, MinimaxState};
use crate::error::InputError;
use crate::family::DataTasks;
use crate::problem::ball::FeasibleSet;
use crate::problem::certificate::QuadraticForm;
use crate::problem::numerics::project_onto_simplex;
use argmin::core::{Error, Problem, Solver, State, TerminationReason, KV};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};
use nalgebra::DVector;

/// The primal point, the task weights from the duals, and Clarabel's report.
#[derive(Debug, Clone)]
pub struct EpigraphSolution {
    /// The primal point theta.
    pub theta: DVector<f64>,
    /// Task weights from the cone duals, projected onto the simplex.
    pub weights: Vec<f64>,
    /// Clarabel's objective value (not certified; NaN where the solve failed).
    pub objective: f64,
    /// Clarabel's status, e.g. "Solved" ("Failed (...)" where the solve failed).
    pub status: String,
    /// Clarabel's interior-point iterations.
    pub iterations: u32,
}

/// Solves the epigraph SOCP for quadratic-form tasks on the given set.
pub fn solve_epigraph(
    forms: &[QuadraticForm],
    set: &FeasibleSet,
) -> Result<EpigraphSolution, crate::error::Error> {
    let d = forms[0].dim();
    let n = d + 1; // (theta, t)
    let mut rows = Rows::default();
    let mut cones = Vec::new();
    let mut cone_starts = Vec::with_capacity(forms.len());
    for form in forms {
        // Factor Q = F F^T through its eigen-decomposition (drop null directions).
        let eigen = form.hessian.clone().symmetric_eigen();
        let top = eigen.eigenvalues.iter().copied().fold(0.0, f64::max);
        let factors: Vec<(f64, usize)> = eigen
            .eigenvalues
            .iter()
            .enumerate()
            .filter(|(_, &l)| l > top * 1e-14)
            .map(|(j, &l)| (l.sqrt(), j))
            .collect();
        cone_starts.push(rows.b.len());
        // slack_0 = t - l^T theta - c + 1, slack_1 = t - l^T theta - c - 1
        for shift in [1.0, -1.0] {
            let mut entries: Vec<(usize, f64)> = form.linear.iter().copied().enumerate().collect();
            entries.push((d, -1.0));
            rows.push(&entries, shift - form.constant);
        }
        // slack_{2+k} = sqrt2 sqrt(l_k) v_k^T theta
        for &(scale, j) in &factors {
            let v = eigen.eigenvectors.column(j);
            let entries: Vec<(usize, f64)> = v
                .iter()
                .enumerate()
                .map(|(col, &vc)| (col, -std::f64::consts::SQRT_2 * scale * vc))
                .collect();
            rows.push(&entries, 0.0);
        }
        cones.push(SupportedConeT::SecondOrderConeT(2 + factors.len()));
    }
    push_set_rows(&mut rows, &mut cones, set, d)?;
    let mut q = vec![0.0; n];
    q[d] = 1.0;
    let solution = clarabel_solve(n, &q, rows, &cones)?;
    let mut theta = DVector::from_column_slice(&solution.x[..d]);
    // lambda_i = z_0 + z_1 of task i's cone (stationarity in t gives sum = 1).
    let mut weights: Vec<f64> = cone_starts
        .iter()
        .map(|&start| solution.z[start] + solution.z[start + 1])
        .collect();
    project_onto_simplex(&mut weights);
    // Interior-point points are accurate to about sqrt(tol) at a kink of the
    // max; Newton on the KKT system of the active tasks sharpens them. The
    // polished pair is kept only if this crate's certified gap improves.
    let interior = set.radius().is_none_or(|r| theta.norm() < r * (1.0 - 1e-6));
    if interior {
        if let Some((polished_theta, polished_weights)) = polish_kkt(forms, &theta, &weights) {
            let before = certified_gap(forms, set, &theta, &weights);
            let after = certified_gap(forms, set, &polished_theta, &polished_weights);
            if after < before {
                theta = polished_theta;
                weights = polished_weights;
            }
        }
    }
    Ok(EpigraphSolution {
        theta,
        weights,
        objective: solution.obj_val,
        status: format!("{:?}", solution.status),
        iterations: solution.iterations,
    })
}

/// `max_i q_i(theta) - D(p)` with this crate's dual (certified).
fn certified_gap(
    forms: &[QuadraticForm],
    set: &FeasibleSet,
    theta: &DVector<f64>,
    p: &[f64],
) -> f64 {
    let worst = forms
        .iter()
        .map(|f| f.value(theta))
        .fold(f64::NEG_INFINITY, f64::max);
    worst - crate::problem::certificate::quadratic_dual_bound(forms, p, set)
}

/// Newton's method on the KKT conditions of the tasks active at the optimum
/// (weight above 1e-7): `sum_A p_i grad q_i(theta) = 0`, `q_i(theta) = t` on A,
/// `sum_A p_i = 1`. Returns `None` if the system is singular or a weight
/// turns negative.
fn polish_kkt(
    forms: &[QuadraticForm],
    theta: &DVector<f64>,
    weights: &[f64],
) -> Option<(DVector<f64>, Vec<f64>)> {
    let active: Vec<usize> = (0..forms.len()).filter(|&i| weights[i] > 1e-7).collect();
    let (d, a) = (theta.len(), active.len());
    let n = d + a + 1;
    let mut theta = theta.clone();
    let mut p: Vec<f64> = active.iter().map(|&i| weights[i]).collect();
    let mut t = active
        .iter()
        .map(|&i| forms[i].value(&theta))
        .fold(f64::NEG_INFINITY, f64::max);
    for _ in 0..8 {
        let grads: Vec<DVector<f64>> = active
            .iter()
            .map(|&i| &forms[i].hessian * &theta + &forms[i].linear)
            .collect();
        let mut jac = nalgebra::DMatrix::zeros(n, n);
        let mut res = DVector::zeros(n);
        for (k, &i) in active.iter().enumerate() {
            let mut block = jac.view_mut((0, 0), (d, d));
            block += &forms[i].hessian * p[k];
            jac.view_mut((0, d + k), (d, 1)).copy_from(&grads[k]);
            jac.view_mut((d + k, 0), (1, d))
                .copy_from(&grads[k].transpose());
            jac[(d + k, d + a)] = -1.0;
            jac[(d + a, d + k)] = 1.0;
            res.rows_mut(0, d).axpy(p[k], &grads[k], 1.0);
            res[d + k] = forms[i].value(&theta) - t;
        }
        res[d + a] = p.iter().sum::<f64>() - 1.0;
        let step = jac.lu().solve(&(-&res))?;
        theta += step.rows(0, d);
        for (k, pk) in p.iter_mut().enumerate() {
            *pk += step[d + k];
        }
        t += step[d + a];
        if step.norm() <= 1e-15 * (1.0 + theta.norm()) {
            break;
        }
    }
    if p.iter().any(|&w| w.is_nan() || w < 0.0) || !theta.iter().all(|v| v.is_finite()) {
        return None;
    }
    let mut full = vec![0.0; forms.len()];
    for (k, &i) in active.iter().enumerate() {
        full[i] = p[k];
    }
    project_onto_simplex(&mut full);
    Some((theta, full))
}

/// Rows for `theta in set` (theta = the first d variables): the cone `(r, theta)`.
fn push_set_rows(
    rows: &mut Rows,
    cones: &mut Vec<SupportedConeT<f64>>,
    set: &FeasibleSet,
    d: usize,
) -> Result<(), InputError> {
    match *set {
        FeasibleSet::Unconstrained => Ok(()),
        FeasibleSet::Ball { radius } => {
            rows.push(&[], radius);
            for j in 0..d {
                rows.push(&[(j, -1.0)], 0.0);
            }
            cones.push(SupportedConeT::SecondOrderConeT(d + 1));
            Ok(())
        }
        FeasibleSet::Fantope { .. } => Err(InputError::new(
            "method",
            "exact does not support the Fantope constraint",
        )),
    }
}

/// Triplet lists of a sparse constraint matrix, built row by row.
#[derive(Default)]
struct Rows {
    rows: Vec<usize>,
    cols: Vec<usize>,
    values: Vec<f64>,
    b: Vec<f64>,
}

impl Rows {
    /// Appends the row `slack = b - a^T x` with the given nonzeros of `a`.
    fn push(&mut self, entries: &[(usize, f64)], b: f64) {
        let row = self.b.len();
        for &(col, v) in entries {
            if v != 0.0 {
                self.rows.push(row);
                self.cols.push(col);
                self.values.push(v);
            }
        }
        self.b.push(b);
    }
}

fn clarabel_solve(
    p_dim: usize,
    q: &[f64],
    rows: Rows,
    cones: &[SupportedConeT<f64>],
) -> Result<clarabel::solver::DefaultSolution<f64>, crate::error::Error> {
    let m = rows.b.len();
    let a = CscMatrix::new_from_triplets(m, p_dim, rows.rows, rows.cols, rows.values);
    let p = CscMatrix::zeros((p_dim, p_dim));
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .tol_gap_abs(1e-10)
        .tol_gap_rel(1e-10)
        .tol_feas(1e-10)
        .max_iter(400)
        .build()
        .map_err(|e| crate::error::Error::Solver(format!("clarabel settings: {e:?}")))?;
    let mut solver = DefaultSolver::new(&p, q, &a, &rows.b, cones, settings)
        .map_err(|e| crate::error::Error::Solver(format!("clarabel setup: {e}")))?;
    solver.solve();
    let status = solver.solution.status;
    // Infeasibility would be a modelling bug. Any other early stop (e.g.
    // InsufficientProgress on exponential cones) still leaves a usable point:
    // the caller certifies it with this crate's own dual, so a poor point only
    // shows as a larger certified gap, never as a wrong one.
    let finite = solver
        .solution
        .x
        .iter()
        .chain(&solver.solution.z)
        .all(|v| v.is_finite());
    let infeasible = matches!(
        status,
        SolverStatus::PrimalInfeasible
            | SolverStatus::DualInfeasible
            | SolverStatus::AlmostPrimalInfeasible
            | SolverStatus::AlmostDualInfeasible
    );
    if infeasible || !finite {
        return Err(crate::error::Error::Solver(format!(
            "clarabel finished with status {status:?}"
        )));
    }
    Ok(solver.solution)
}

/// Largest number of data entries for which `exact` states least squares on
/// the samples (better conditioned than the Gram factorisation, and the only
/// form for wide tasks); above it, through the quadratic forms.
const SAMPLE_FORM_ENTRIES: usize = 4_000_000;

/// The epigraph problem for least-squares tasks on their samples:
/// `||u_i||^2 <= 2 t` with `u_i = (X_i theta - y_i) / sqrt(n_i)`, the cone
/// `(t + 1, t - 1, sqrt2 u_i)`. Needs no d x d matrix. Variables: (theta, t).
pub fn solve_least_squares_epigraph(
    data: &DataTasks,
    set: &FeasibleSet,
) -> Result<EpigraphSolution, crate::error::Error> {
    let d = data.dim();
    let n_vars = d + 1;
    let mut rows = Rows::default();
    let mut cones = Vec::new();
    let mut cone_starts = Vec::with_capacity(data.num_tasks());
    for task in data.tasks() {
        let n = task.samples();
        let scale = std::f64::consts::SQRT_2 / (n as f64).sqrt();
        cone_starts.push(rows.b.len());
        rows.push(&[(d, -1.0)], 1.0);
        rows.push(&[(d, -1.0)], -1.0);
        for j in 0..n {
            let entries: Vec<(usize, f64)> = task
                .xt
                .sample_f64(j)
                .iter()
                .enumerate()
                .map(|(c, &x)| (c, -scale * x))
                .collect();
            rows.push(&entries, -scale * task.y[j]);
        }
        cones.push(SupportedConeT::SecondOrderConeT(2 + n));
    }
    push_set_rows(&mut rows, &mut cones, set, d)?;
    let mut q = vec![0.0; n_vars];
    q[d] = 1.0;
    let solution = clarabel_solve(n_vars, &q, rows, &cones)?;
    let mut weights: Vec<f64> = cone_starts
        .iter()
        .map(|&start| solution.z[start] + solution.z[start + 1])
        .collect();
    project_onto_simplex(&mut weights);
    Ok(EpigraphSolution::from_clarabel(&solution, d, weights))
}

impl EpigraphSolution {
    /// theta (the first d variables), the given weights, and Clarabel's status.
    fn from_clarabel(
        solution: &clarabel::solver::DefaultSolution<f64>,
        d: usize,
        weights: Vec<f64>,
    ) -> Self {
        Self {
            theta: DVector::from_column_slice(&solution.x[..d]),
            weights,
            objective: solution.obj_val,
            status: format!("{:?}", solution.status),
            iterations: solution.iterations,
        }
    }
}

/// Most samples in all for which wide tasks are solved in the span of the
/// samples (a thin QR of the d x N sample matrix, N x N after it).
const REDUCED_SAMPLES: usize = 2048;

/// Wide data (fewer samples N than features d): some minimax optimum lies in
/// the span of the samples (the component orthogonal to it changes no margin
/// and only adds norm), so with the thin QR `[x_1 .. x_N] = Q R`, `theta = Q
/// beta` and `x_j . theta = r_j . beta`, `||theta|| = ||beta||`. Returns the
/// reduced tasks (samples `r_j` in R^N) and Q; `None` where not worth it.
fn reduce_to_sample_span(
    data: &DataTasks,
    labels_pm1: bool,
) -> Option<(DataTasks, nalgebra::DMatrix<f64>)> {
    let d = data.dim();
    let total: usize = data.tasks().iter().map(|t| t.samples()).sum();
    if total >= d || total > REDUCED_SAMPLES {
        return None;
    }
    let mut samples = nalgebra::DMatrix::zeros(d, total);
    let mut k = 0;
    for task in data.tasks() {
        for j in 0..task.samples() {
            samples
                .column_mut(k)
                .copy_from_slice(&task.xt.sample_f64(j));
            k += 1;
        }
    }
    let qr = samples.qr();
    let (q, r) = (qr.q(), qr.r());
    let mut start = 0;
    let tasks = data
        .tasks()
        .iter()
        .map(|task| {
            let n = task.samples();
            let columns = r.columns(start, n).into_owned();
            start += n;
            crate::family::TaskData::from_columns(&columns, task.y.to_vector())
        })
        .collect();
    let reduced = DataTasks::new(tasks, labels_pm1).ok()?;
    Some((reduced, q))
}

/// [`solve_least_squares_epigraph`] and [`solve_logistic_epigraph`] in the
/// span of the samples where the data are wide (see [`reduce_to_sample_span`]).
fn solve_in_sample_span(
    data: &DataTasks,
    logistic_l2: Option<f64>,
    set: &FeasibleSet,
) -> Result<EpigraphSolution, crate::error::Error> {
    let solve = |data: &DataTasks| match logistic_l2 {
        Some(l2) => solve_logistic_epigraph(data, l2, set),
        None => solve_least_squares_epigraph(data, set),
    };
    match reduce_to_sample_span(data, logistic_l2.is_some()) {
        Some((reduced, q)) => {
            let mut solution = solve(&reduced)?;
            solution.theta = q * &solution.theta;
            Ok(solution)
        }
        None => solve(data),
    }
}

/// The epigraph problem for l2-regularised logistic tasks, with exponential cones:
/// `u_k >= ln(1 + exp(-y_k x_k^T theta))` iff `a_k + b_k <= 1`, `a_k >= exp(-u_k)`,
/// `b_k >= exp(-y_k x_k^T theta - u_k)`; `s >= ||theta||^2 / 2` by a rotated cone;
/// `mean_k u_k + l2 s <= t` per task. Variables: (theta, t, s, u, a, b).
pub fn solve_logistic_epigraph(
    data: &DataTasks,
    l2: f64,
    set: &FeasibleSet,
) -> Result<EpigraphSolution, crate::error::Error> {
    let d = data.dim();
    let tasks = data.tasks();
    let total: usize = tasks.iter().map(|t| t.samples()).sum();
    let (t_col, s_col) = (d, d + 1);
    let u_col = |k: usize| d + 2 + k;
    let a_col = |k: usize| d + 2 + total + k;
    let b_col = |k: usize| d + 2 + 2 * total + k;
    let n_vars = d + 2 + 3 * total;
    let mut rows = Rows::default();
    let mut cones = Vec::new();
    // Task constraints: t - mean u - l2 s >= 0.
    let mut k0 = 0;
    for task in tasks {
        let n = task.samples();
        let inv = 1.0 / n as f64;
        let mut entries = vec![(t_col, -1.0), (s_col, l2)];
        entries.extend((0..n).map(|j| (u_col(k0 + j), inv)));
        rows.push(&entries, 0.0);
        k0 += n;
    }
    // a_k + b_k <= 1.
    for k in 0..total {
        rows.push(&[(a_col(k), 1.0), (b_col(k), 1.0)], 1.0);
    }
    cones.push(SupportedConeT::NonnegativeConeT(tasks.len() + total));
    // Exponential cones (s1, s2, s3): s3 >= s2 exp(s1 / s2).
    let mut k = 0;
    for task in tasks {
        for j in 0..task.samples() {
            let y = task.y[j];
            rows.push(&[(u_col(k), 1.0)], 0.0); // -u
            rows.push(&[], 1.0);
            rows.push(&[(a_col(k), -1.0)], 0.0); // a
            cones.push(SupportedConeT::ExponentialConeT());
            let mut entries: Vec<(usize, f64)> = task
                .xt
                .sample_f64(j)
                .iter()
                .enumerate()
                .map(|(c, &x)| (c, y * x))
                .collect();
            entries.push((u_col(k), 1.0));
            rows.push(&entries, 0.0); // -y x^T theta - u
            rows.push(&[], 1.0);
            rows.push(&[(b_col(k), -1.0)], 0.0); // b
            cones.push(SupportedConeT::ExponentialConeT());
            k += 1;
        }
    }
    // (s + 1, s - 1, sqrt2 theta) in the second-order cone.
    rows.push(&[(s_col, -1.0)], 1.0);
    rows.push(&[(s_col, -1.0)], -1.0);
    for j in 0..d {
        rows.push(&[(j, -std::f64::consts::SQRT_2)], 0.0);
    }
    cones.push(SupportedConeT::SecondOrderConeT(d + 2));
    push_set_rows(&mut rows, &mut cones, set, d)?;
    let mut q = vec![0.0; n_vars];
    q[t_col] = 1.0;
    let solution = clarabel_solve(n_vars, &q, rows, &cones)?;
    let mut weights = solution.z[..tasks.len()].to_vec();
    project_onto_simplex(&mut weights);
    Ok(EpigraphSolution::from_clarabel(&solution, d, weights))
}

/// argmin wrapper: one "iteration" is the whole interior-point solve.
#[derive(Debug, Clone)]
pub struct Exact {
    pub(crate) tracker: Tracker,
    pub(crate) weights: Vec<f64>,
    pub(crate) status: String,
}

impl Exact {
    /// The solver, keeping its records in `tracker`.
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            weights: Vec::new(),
            status: String::new(),
        }
    }

    /// The run's records: constants, certificates and trace.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The task weights from the cone duals (empty before the solve).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}

impl Solver<MinimaxProblem, MinimaxState> for Exact {
    fn name(&self) -> &str {
        "exact"
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<MinimaxProblem>,
        state: MinimaxState,
    ) -> Result<(MinimaxState, Option<KV>), Error> {
        let (family, set) = unwrap_problem(problem)?;
        let sample_form = family.least_squares_data().filter(|data| {
            family.quadratic_forms().is_none() || data.data_len() <= SAMPLE_FORM_ENTRIES
        });
        let solution = match (
            sample_form,
            family.quadratic_forms(),
            family.logistic_parts(),
        ) {
            (Some(data), _, _) => solve_in_sample_span(data, None, &set),
            (None, Some(forms), _) => solve_epigraph(forms, &set),
            (None, None, Some((data, l2))) => solve_in_sample_span(data, Some(l2), &set),
            _ => {
                return Err(InputError::new(
                    "method",
                    "exact supports quadratic, least_squares and logistic problems",
                )
                .into());
            }
        };
        // A solver failure (overflow, numerical trouble) is reported, not
        // fatal: the start point and uniform weights are certified instead,
        // and the status says what happened.
        let solution = match solution {
            Ok(solution) => solution,
            Err(crate::error::Error::Input(i)) => return Err(Error::from(i)),
            Err(other) => {
                let m = family.num_tasks();
                EpigraphSolution {
                    theta: state
                        .get_param()
                        .cloned()
                        .unwrap_or_else(|| DVector::zeros(family.dim())),
                    weights: vec![1.0 / m as f64; m],
                    objective: f64::NAN,
                    status: format!("Failed ({other})"),
                    iterations: 0,
                }
            }
        };
        if !solution.theta.iter().all(|v| v.is_finite()) {
            return Err(argmin::argmin_error!(
                PotentialBug,
                "clarabel returned a non-finite point"
            ));
        }
        let mut theta = solution.theta;
        set.project(&mut theta);
        let mut losses = vec![0.0; family.num_tasks()];
        family.losses(&theta, &mut losses)?;
        let lower = self
            .tracker
            .certify_weights(family.as_ref(), &theta, &solution.weights)?;
        let cost = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let kv = self
            .tracker
            .record(1, &losses, &solution.weights, lower, None, f64::NAN);
        self.weights = solution.weights;
        let reason = if solution.status == "Solved" {
            TerminationReason::SolverConverged
        } else {
            TerminationReason::SolverExit(format!("clarabel: {}", solution.status))
        };
        self.status = solution.status;
        Ok((state.param(theta).cost(cost).terminate_with(reason), kv))
    }
}
