//! Certified high-accuracy references for the checks.
//!
//! A check measures `F(theta_T) - OPT` as `F(theta_T) - opt_lower`, where
//! `opt_lower` is a certified lower bound on OPT, so the measurement can only
//! overstate the suboptimality. Distances to the optimum come with a
//! certified correction from strong convexity:
//! `||theta_ref - theta*||^2 <= 2 (F(theta_ref) - OPT) / lambda`.

use crate::ball::FeasibleSet;
use crate::error::Error;
use crate::family::{Evaluation, TaskFamily};
use crate::numerics::{entropy, log_sum_exp, softmax_into};
use crate::solvers::{solve, Method, SolveOptions};
use nalgebra::DVector;
use serde::Serialize;
use std::sync::Arc;

/// `||theta0 - theta_ref|| + sqrt(2 gap / lambda)`: for a lambda-strongly convex
/// objective whose value at `theta_ref` is within `gap` of its minimum, an
/// upper bound on the distance from `theta0` to the minimiser.
pub fn certified_distance(theta0: &DVector<f64>, theta_ref: &[f64], gap: f64, lambda: f64) -> f64 {
    let to_ref = (theta0 - DVector::from_column_slice(theta_ref)).norm();
    if lambda > 0.0 {
        to_ref + (2.0 * gap.max(0.0) / lambda).sqrt()
    } else {
        to_ref
    }
}

/// A reference solution of the minimax problem.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    pub theta: Vec<f64>,
    /// Certified: OPT >= opt_lower.
    pub opt_lower: f64,
    /// F(theta) >= OPT.
    pub opt_upper: f64,
    /// opt_upper - opt_lower.
    pub certified_gap: f64,
    pub method: String,
}

impl Reference {
    /// A certified upper bound on `||theta_0 - theta*||` (needs lambda > 0;
    /// with lambda = 0 the distance to the reference point itself).
    pub fn distance_from(&self, theta0: &DVector<f64>, lambda: f64) -> f64 {
        certified_distance(theta0, &self.theta, self.certified_gap, lambda)
    }
}

/// The minimax reference: `exact` (Clarabel, certified by this crate's dual)
/// where the tasks are quadratic, else accelerated smoothing with a tiny
/// temperature run until its certified gap is below `relative_tolerance`.
pub fn minimax_reference(
    family: &Arc<dyn TaskFamily>,
    set: FeasibleSet,
    relative_tolerance: f64,
) -> Result<Reference, Error> {
    let exact_available = family.quadratic_forms().is_some() || family.logistic_parts().is_some();
    if exact_available && !matches!(set, FeasibleSet::Fantope { .. }) {
        let out = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::Exact,
                iterations: 1,
                ..Default::default()
            },
        )?;
        return Ok(Reference {
            theta: out.theta,
            opt_lower: out.lower_bound,
            opt_upper: out.max_loss,
            certified_gap: out.gap,
            method: "exact".into(),
        });
    }
    // Continuation in mu: each stage starts from the previous point.
    let mut theta = DVector::zeros(family.dim());
    let mut best: Option<Reference> = None;
    let mut losses = vec![0.0; family.num_tasks()];
    family.losses(&theta, &mut losses)?;
    let scale = losses
        .iter()
        .fold(0.0f64, |a, &f| a.max(f.abs()))
        .max(1e-12);
    for stage in 0..8 {
        let mu = scale * 10f64.powi(-(2 + stage));
        let out = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::Accelerated,
                iterations: 4000,
                mu: Some(mu),
                init: Some(theta.clone()),
                certify_every: Some(500),
                ..Default::default()
            },
        )?;
        theta = DVector::from_column_slice(&out.theta);
        let candidate = Reference {
            theta: out.theta.clone(),
            opt_lower: out.lower_bound,
            opt_upper: out.max_loss,
            certified_gap: out.gap,
            method: format!("accelerated, mu = {mu:.1e}"),
        };
        let better = best
            .as_ref()
            .is_none_or(|b| candidate.certified_gap < b.certified_gap);
        if better {
            best = Some(candidate);
        }
        if let Some(b) = &best {
            if b.certified_gap <= relative_tolerance * b.opt_upper.abs().max(1e-12) {
                break;
            }
        }
    }
    best.ok_or_else(|| Error::Solver("no reference".into()))
}

/// The reference of the unconstrained problem, computed on the ball
/// `||theta|| <= radius` (the exact exponential-cone solve is more robust on a
/// bounded domain) and accepted only where the ball provably does not bind:
/// with lambda-strongly convex tasks the ball's minimax point lies within
/// `sqrt(2 gap / lambda)` of the reference point, so if that stays inside the
/// ball it is a local, hence global, unconstrained minimiser and the two
/// optima are equal. Errors (asking for a larger radius) otherwise. Any
/// non-binding radius gives the same OPT, so where the conic solver fails on
/// one ball (it can stall on some logistic problems) the doubled radius is
/// tried, twice at most.
pub fn unconstrained_reference(
    family: &Arc<dyn TaskFamily>,
    radius: f64,
) -> Result<Reference, Error> {
    let mut attempt = minimax_reference(family, FeasibleSet::with_radius(radius), 1e-9);
    let mut radius = radius;
    for _ in 0..2 {
        if attempt.is_ok() {
            break;
        }
        radius *= 2.0;
        attempt = minimax_reference(family, FeasibleSet::with_radius(radius), 1e-9);
    }
    let reference = attempt?;
    let lambda = family.strong_convexity();
    let origin = DVector::zeros(family.dim());
    let reach = certified_distance(&origin, &reference.theta, reference.certified_gap, lambda);
    if lambda > 0.0 && reach < radius {
        Ok(reference)
    } else {
        Err(Error::Solver(format!(
            "the reference ball of radius {radius} may bind (minimax point within {reach:.3} of the origin, lambda = {lambda:.2e}): use a larger radius"
        )))
    }
}

/// A reference for the smoothed problem `min F_mu`.
#[derive(Debug, Clone, Serialize)]
pub struct SmoothedReference {
    pub theta: Vec<f64>,
    pub mu: f64,
    /// F_mu(theta) >= min F_mu.
    pub value_upper: f64,
    /// Certified: min F_mu >= D(p) + mu H(p) for p = softmax(f(theta)/mu).
    pub min_lower: f64,
    pub certified_gap: f64,
}

impl SmoothedReference {
    /// Certified upper bound on `||theta_0 - theta_mu||` (F_mu is lambda-strongly convex).
    pub fn distance_from(&self, theta0: &DVector<f64>, lambda: f64) -> f64 {
        certified_distance(theta0, &self.theta, self.certified_gap, lambda)
    }
}

/// Certified lower bound on `min_{theta in set} F_mu(theta)` from weights p:
/// `F_mu = max_p sum p_i f_i + mu H(p)`, so `min F_mu >= D(p) + mu H(p)`.
pub fn smoothed_lower_bound(
    family: &dyn TaskFamily,
    set: &FeasibleSet,
    theta: &DVector<f64>,
    p: &[f64],
    mu: f64,
) -> Result<f64, crate::Error> {
    Ok(crate::solvers::certify_point(family, set, theta, p)? + mu * entropy(p))
}

/// Accelerated runs on F_mu itself, restarted from the last point every
/// `stage` iterations (restarting keeps the linear rate on strongly convex
/// problems), until the certified gap of [`smoothed_lower_bound`] is below
/// `relative_tolerance` or `max_iterations` are spent.
pub fn smoothed_reference(
    family: &Arc<dyn TaskFamily>,
    set: FeasibleSet,
    mu: f64,
    relative_tolerance: f64,
    max_iterations: u64,
) -> Result<SmoothedReference, Error> {
    let stage = 1000;
    let mut theta = DVector::zeros(family.dim());
    let mut spent = 0;
    let mut eval = Evaluation::new(family.num_tasks(), family.dim());
    loop {
        let out = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::Accelerated,
                iterations: stage,
                mu: Some(mu),
                init: Some(theta),
                certify_every: Some(stage),
                ..Default::default()
            },
        )?;
        spent += stage;
        theta = DVector::from_column_slice(&out.theta);
        family.evaluate(&theta, &mut |f, w| softmax_into(f, mu, w), &mut eval)?;
        let value_upper = log_sum_exp(&eval.losses, mu);
        let min_lower = smoothed_lower_bound(family.as_ref(), &set, &theta, &eval.weights, mu)?;
        let gap = value_upper - min_lower;
        if gap <= relative_tolerance * value_upper.abs().max(1e-12) || spent >= max_iterations {
            return Ok(SmoothedReference {
                theta: out.theta,
                mu,
                value_upper,
                min_lower,
                certified_gap: gap,
            });
        }
    }
}
