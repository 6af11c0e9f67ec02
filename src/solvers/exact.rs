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
use crate::ball::FeasibleSet;
use crate::certificate::QuadraticForm;
use crate::error::InputError;
use crate::numerics::project_onto_simplex;
use argmin::core::{Error, Problem, Solver, State, TerminationReason, KV};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};
use nalgebra::DVector;

/// The primal point, the task weights from the duals, and Clarabel's report.
#[derive(Debug, Clone)]
pub struct EpigraphSolution {
    pub theta: DVector<f64>,
    pub weights: Vec<f64>,
    pub objective: f64,
    pub status: String,
    pub iterations: u32,
}

/// Solves the epigraph SOCP for quadratic-form tasks on the given set.
pub fn solve_epigraph(
    forms: &[QuadraticForm],
    set: &FeasibleSet,
) -> Result<EpigraphSolution, crate::error::Error> {
    let d = forms[0].dim();
    let n = d + 1; // (theta, t)
    let mut triplets: (Vec<usize>, Vec<usize>, Vec<f64>) = (Vec::new(), Vec::new(), Vec::new());
    let mut b = Vec::new();
    let mut cones = Vec::new();
    let push = |row: usize, col: usize, v: f64, t: &mut (Vec<usize>, Vec<usize>, Vec<f64>)| {
        if v != 0.0 {
            t.0.push(row);
            t.1.push(col);
            t.2.push(v);
        }
    };
    let mut row = 0;
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
        cone_starts.push(row);
        // slack_0 = t - l^T theta - c + 1, slack_1 = t - l^T theta - c - 1
        for (offset, shift) in [(0, 1.0), (1, -1.0)] {
            for (j, &lj) in form.linear.iter().enumerate() {
                push(row + offset, j, lj, &mut triplets);
            }
            push(row + offset, d, -1.0, &mut triplets);
            b.push(shift - form.constant);
        }
        // slack_{2+k} = sqrt2 sqrt(l_k) v_k^T theta
        for (k, &(scale, j)) in factors.iter().enumerate() {
            let v = eigen.eigenvectors.column(j);
            for (col, &vc) in v.iter().enumerate() {
                push(
                    row + 2 + k,
                    col,
                    -std::f64::consts::SQRT_2 * scale * vc,
                    &mut triplets,
                );
            }
            b.push(0.0);
        }
        cones.push(SupportedConeT::SecondOrderConeT(2 + factors.len()));
        row += 2 + factors.len();
    }
    match *set {
        FeasibleSet::Unconstrained => {}
        FeasibleSet::Ball { radius } => {
            b.push(radius);
            for j in 0..d {
                push(row + 1 + j, j, -1.0, &mut triplets);
                b.push(0.0);
            }
            cones.push(SupportedConeT::SecondOrderConeT(d + 1));
            row += d + 1;
        }
        FeasibleSet::Fantope { .. } => {
            return Err(InputError::new(
                "--method",
                "exact does not support the Fantope constraint",
            )
            .into());
        }
    }
    let a = CscMatrix::new_from_triplets(row, n, triplets.0, triplets.1, triplets.2);
    let p = CscMatrix::zeros((n, n));
    let mut q = vec![0.0; n];
    q[d] = 1.0;
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .tol_gap_abs(1e-10)
        .tol_gap_rel(1e-10)
        .tol_feas(1e-10)
        .max_iter(400)
        .build()
        .map_err(|e| crate::error::Error::Solver(format!("clarabel settings: {e:?}")))?;
    let mut solver = DefaultSolver::new(&p, &q, &a, &b, &cones, settings)
        .map_err(|e| crate::error::Error::Solver(format!("clarabel setup: {e}")))?;
    solver.solve();
    let solution = &solver.solution;
    let status = solution.status;
    if !matches!(status, SolverStatus::Solved | SolverStatus::AlmostSolved) {
        return Err(crate::error::Error::Solver(format!(
            "clarabel finished with status {status:?}"
        )));
    }
    let theta = DVector::from_column_slice(&solution.x[..d]);
    // lambda_i = z_0 + z_1 of task i's cone (stationarity in t gives sum = 1).
    let mut weights: Vec<f64> = cone_starts
        .iter()
        .map(|&start| solution.z[start] + solution.z[start + 1])
        .collect();
    project_onto_simplex(&mut weights);
    Ok(EpigraphSolution {
        theta,
        weights,
        objective: solution.obj_val,
        status: format!("{status:?}"),
        iterations: solution.iterations,
    })
}

/// argmin wrapper: one "iteration" is the whole interior-point solve.
#[derive(Debug, Clone)]
pub struct Exact {
    pub(crate) tracker: Tracker,
    pub(crate) weights: Vec<f64>,
    pub(crate) status: String,
}

impl Exact {
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            weights: Vec::new(),
            status: String::new(),
        }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

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
        let forms = family.quadratic_forms().ok_or_else(|| {
            InputError::new(
                "--method",
                "exact supports quadratic and least_squares problems",
            )
        })?;
        let solution = solve_epigraph(forms, &set).map_err(|e| match e {
            crate::error::Error::Input(i) => Error::from(i),
            other => argmin::argmin_error!(PotentialBug, other.to_string()),
        })?;
        let mut theta = solution.theta;
        set.project(&mut theta);
        let mut losses = vec![0.0; family.num_tasks()];
        family.losses(&theta, &mut losses);
        let lower = self
            .tracker
            .certify_weights(family.as_ref(), &theta, &solution.weights);
        let cost = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let kv = self
            .tracker
            .record(1, &losses, &solution.weights, lower, None, f64::NAN);
        self.weights = solution.weights;
        self.status = solution.status;
        Ok((
            state
                .param(theta)
                .cost(cost)
                .terminate_with(TerminationReason::SolverConverged),
            kv,
        ))
    }
}
