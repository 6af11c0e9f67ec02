//! Certificates checked where they are used: every certified lower bound on
//! `D(p) = min_{theta in ball} sum_i p_i f_i(theta)` against an independent
//! reference, on a ball that binds (the Lagrangian path of the quadratic
//! certificate) and one that does not, for quadratic, least-squares and
//! logistic tasks (the strong-convexity path), and for the bound recomputed
//! after the exact conic solve.
//!
//! References (docs/THEORY.md#certificates-checked-against-independent-references):
//! - quadratic forms: exact rational arithmetic on the forms. Inside the ball
//!   `D(p) = c + l^T theta_0 / 2` with `theta_0 = -H^{-1} l`; where the ball
//!   binds, the bracket `[g(nu), q(theta_feasible)]` with the Lagrangian dual
//!   `g(nu)` at a rational nu and a rational point proven inside the ball.
//! - logistic: projected accelerated gradient on `Phi_p` with this file's own
//!   projection, giving `Phi_p(theta_hat) >= D(p)` at a point proven feasible,
//!   and a strong-convexity lower bound with the l2 of the parameters (not the
//!   family's own constant).
//!
//! Validity: certified <= the reference's upper end (+ a 1e-10 relative
//! allowance for the certificate's own rounding). Tightness: the quadratic
//! certificate equals the rational D(p), and the bound after the exact solve
//! is within 1e-6 of the reference. Feasibility: the ball binds where it
//! should, and softmax-gd's and the exact solver's points lie in it.

use crate::ball::FeasibleSet;
use crate::certificate::QuadraticForm;
use crate::error::Error;
use crate::experiments::setup::{build_family, FamilyParams};
use crate::experiments::{all_rows, CellRows, Experiment, Finished, Keyed};
use crate::family::{Evaluation, TaskFamily};
use crate::solvers::{certify_point, solve, Method, SolveOptions};
use crate::theory::checks::Check;
use nalgebra::{DMatrix, DVector};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// Allowance for the f64 rounding of a certificate, relative to `1 + |D(p)|`.
const ROUNDING_ALLOWANCE: f64 = 1e-10;
/// The quadratic certificate is the exact dual: it must match the rational
/// D(p) to this relative accuracy.
const QUADRATIC_TIGHTNESS: f64 = 1e-9;
/// The bound recomputed after the exact solve must be this close to D(p).
const EXACT_SOLVE_TIGHTNESS: f64 = 1e-6;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct P {
    families: Vec<String>,
    seeds: Vec<u64>,
    /// A radius at which the ball binds (the minimax point and most D(p)
    /// minimisers lie on its boundary) and one at which it does not.
    binding_radius: f64,
    interior_radius: f64,
    /// Random (theta', p) pairs per cell, besides the solvers' own points.
    points: usize,
    /// Softmax-gd iterations whose final point and weights are also checked.
    iterations: u64,
    family: FamilyParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    family: String,
    seed: u64,
    class: String,
    /// "random", "softmax-gd" or "exact".
    source: String,
    /// "rational" or "accelerated".
    reference: String,
    /// The certificate at the point alone (the family's one-point bound).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    raw: f64,
    /// After refinement (`certify_point`), or the exact solver's lower bound.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    refined: f64,
    /// The reference bracket `lo <= D(p) <= hi`.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    lo: f64,
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    hi: f64,
    /// Whether D(p)'s minimiser lies on the sphere (nu > 0).
    binds: bool,
    /// `||theta|| / r` of the point the solver returned ("softmax-gd", "exact").
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    norm_over_radius: f64,
    /// The lower bound on OPT the solver reports (NaN for random points).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    reported: f64,
    /// `min F(theta)` over the cell's solver points (feasible, so >= OPT).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    opt_upper: f64,
}

/// One run: a family, a seed and a radius class (`binding`: the optimum
/// lies on the boundary of the set, `interior`: inside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    family: String,
    seed: u64,
    class: String,
}

pub struct CertificateValidity;

impl Experiment for CertificateValidity {
    type Params = P;
    type Cell = Cell;
    type Row = Row;

    fn name(&self) -> &'static str {
        "certificate_validity"
    }

    fn default_params(&self) -> &'static str {
        include_str!("certificate_validity.toml")
    }

    fn seeds(&self, p: &P) -> Vec<u64> {
        p.seeds.clone()
    }

    fn cells(&self, p: &P) -> Result<Vec<Keyed<Cell>>, crate::InputError> {
        Ok(p.families
            .iter()
            .flat_map(|f| {
                p.seeds.iter().flat_map(move |s| {
                    ["binding", "interior"].into_iter().map(move |class| Keyed {
                        key: format!("{f}/seed{s}/{class}"),
                        cell: Cell {
                            family: f.clone(),
                            seed: *s,
                            class: class.to_string(),
                        },
                    })
                })
            })
            .collect())
    }

    fn run_cell(&self, p: &P, cell: &Cell) -> Result<Vec<Row>, Error> {
        let (kind, seed) = (cell.family.as_str(), cell.seed);
        let class = cell.class.clone();
        let radius = if class == "binding" {
            p.binding_radius
        } else {
            p.interior_radius
        };
        let family = build_family(kind, &p.family, p.family.tasks, seed)?;
        let set = FeasibleSet::with_radius(radius);
        let m = family.num_tasks();
        let d = family.dim();
        let mut rng =
            StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ radius.to_bits());
        let reference_of = |weights: &[f64]| -> Result<Bracket, Error> {
            match family.quadratic_forms() {
                Some(forms) => rational_bracket(forms, weights, radius),
                None => accelerated_bracket(&family, weights, radius, p.family.l2),
            }
        };
        let make_row = |source: &str,
                        theta: &DVector<f64>,
                        weights: &[f64],
                        reported: f64|
         -> Result<Row, Error> {
            let mut eval = Evaluation::new(m, d);
            family.evaluate(theta, &mut |_, w| w.copy_from_slice(weights), &mut eval)?;
            let raw = family.certified_lower_bound(theta, &eval, &set);
            let refined = certify_point(family.as_ref(), &set, theta, weights)?;
            let bracket = reference_of(weights)?;
            Ok(Row {
                family: kind.to_string(),
                seed,
                class: class.clone(),
                source: source.to_string(),
                reference: bracket.method.to_string(),
                raw,
                refined,
                lo: bracket.lo,
                hi: bracket.hi,
                binds: bracket.binds,
                norm_over_radius: theta.norm() / radius,
                reported,
                opt_upper: f64::NAN,
            })
        };
        let mut rows = Vec::new();
        // Random weights (Dirichlet(1)) and points spread through the ball.
        for _ in 0..p.points {
            let raw: Vec<f64> = (0..m).map(|_| Exp1.sample(&mut rng)).collect();
            let total: f64 = raw.iter().sum();
            let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
            let direction = DVector::from_fn(d, |_, _| StandardNormal.sample(&mut rng));
            let u: f64 = rand::Rng::random(&mut rng);
            let theta = direction.normalize() * (radius * u);
            rows.push(make_row("random", &theta, &weights, f64::NAN)?);
        }
        // Softmax-gd's final point and weights, with its own certificate.
        let run = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::SoftmaxGd,
                iterations: p.iterations,
                certify_every: Some(p.iterations),
                ..Default::default()
            },
        )?;
        let theta = DVector::from_column_slice(&run.theta);
        let mut losses = vec![0.0; m];
        let worst = |theta: &DVector<f64>, losses: &mut [f64]| -> Result<f64, Error> {
            family.losses(theta, losses)?;
            Ok(losses.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        };
        let mut opt_upper = worst(&theta, &mut losses)?;
        rows.push(make_row(
            "softmax-gd",
            &theta,
            &run.weights,
            run.lower_bound,
        )?);
        // The exact solver: its lower bound is recomputed from its weights.
        let exact = solve(
            family.clone(),
            set,
            &SolveOptions {
                method: Method::Exact,
                iterations: 1,
                ..Default::default()
            },
        )?;
        let theta = DVector::from_column_slice(&exact.theta);
        opt_upper = opt_upper.min(worst(&theta, &mut losses)?);
        rows.push(make_row(
            "exact",
            &theta,
            &exact.weights,
            exact.lower_bound,
        )?);
        for r in rows.iter_mut().filter(|r| r.source != "random") {
            r.opt_upper = opt_upper;
        }
        Ok(rows)
    }

    fn finish(
        &self,
        p: &P,
        cells: &[CellRows<'_, Cell, Row>],
        _out: &Path,
    ) -> Result<Finished, Error> {
        let rows = all_rows(cells);
        Ok(Finished {
            checks: verdicts(p, &rows),
            ..Default::default()
        })
    }
}

/// A reference bracket `lo <= D(p) <= hi`.
struct Bracket {
    lo: f64,
    hi: f64,
    binds: bool,
    method: &'static str,
}

type Q = BigRational;

fn rational(x: f64) -> Result<Q, Error> {
    Q::from_float(x)
        .ok_or_else(|| Error::Solver(format!("non-finite value {x} in a rational reference")))
}

fn to_f64(q: &Q) -> f64 {
    q.to_f64().unwrap_or(f64::NAN)
}

/// Solves `a x = b` exactly (Gaussian elimination with a non-zero pivot);
/// `None` for a singular matrix.
fn solve_rational(mut a: Vec<Vec<Q>>, mut b: Vec<Q>) -> Option<Vec<Q>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).find(|&r| !a[r][col].is_zero())?;
        a.swap(col, pivot);
        b.swap(col, pivot);
        for r in col + 1..n {
            if a[r][col].is_zero() {
                continue;
            }
            let factor = &a[r][col] / &a[col][col];
            let (upper, lower) = a.split_at_mut(r);
            for (target, source) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                *target -= &factor * source;
            }
            let delta = &factor * &b[col];
            b[r] -= delta;
        }
    }
    let mut x = vec![Q::zero(); n];
    for r in (0..n).rev() {
        let mut s = b[r].clone();
        for c in r + 1..n {
            s -= &a[r][c] * &x[c];
        }
        x[r] = s / &a[r][r];
    }
    Some(x)
}

fn dot(a: &[Q], b: &[Q]) -> Q {
    a.iter().zip(b).fold(Q::zero(), |s, (x, y)| s + x * y)
}

/// `D(p)` of quadratic forms on the ball of radius r, in exact rational
/// arithmetic on the f64 data (forms and weights as given).
fn rational_bracket(
    forms: &[QuadraticForm],
    weights: &[f64],
    radius: f64,
) -> Result<Bracket, Error> {
    let d = forms[0].dim();
    let mut h = vec![vec![Q::zero(); d]; d];
    let mut l = vec![Q::zero(); d];
    let mut c = Q::zero();
    for (form, &w) in forms.iter().zip(weights) {
        let w = rational(w)?;
        for (i, (row, li)) in h.iter_mut().zip(l.iter_mut()).enumerate() {
            for (j, hij) in row.iter_mut().enumerate() {
                *hij += &w * rational(form.hessian[(i, j)])?;
            }
            *li += &w * rational(form.linear[i])?;
        }
        c += &w * rational(form.constant)?;
    }
    let half = Q::new(BigInt::from(1), BigInt::from(2));
    let r2 = rational(radius)? * rational(radius)?;
    let value = |theta: &[Q]| -> Q {
        let h_theta: Vec<Q> = h.iter().map(|row| dot(row, theta)).collect();
        &half * dot(theta, &h_theta) + dot(&l, theta) + &c
    };
    let minus_l: Vec<Q> = l.iter().map(|v| -v.clone()).collect();
    let singular = || Error::Solver("singular weighted Hessian in the rational reference".into());
    let theta0 = solve_rational(h.clone(), minus_l.clone()).ok_or_else(singular)?;
    if dot(&theta0, &theta0) <= r2 {
        let exact = to_f64(&value(&theta0));
        return Ok(Bracket {
            lo: exact,
            hi: exact,
            binds: false,
            method: "rational",
        });
    }
    // nu > 0 with ||(H + nu I)^{-1} l|| = r, by bisection in f64 (any nu gives
    // a valid lower end; a good one makes the bracket narrow).
    let hf = DMatrix::from_fn(d, d, |i, j| to_f64(&h[i][j]));
    let lf = DVector::from_fn(d, |i, _| to_f64(&l[i]));
    let norm_at = |nu: f64| -> f64 {
        (&hf + DMatrix::identity(d, d) * nu)
            .lu()
            .solve(&lf)
            .map_or(f64::INFINITY, |t| t.norm())
    };
    let (mut lo_nu, mut hi_nu) = (0.0, 1.0f64);
    while norm_at(hi_nu) > radius && hi_nu < 1e300 {
        hi_nu *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo_nu + hi_nu);
        if norm_at(mid) > radius {
            lo_nu = mid;
        } else {
            hi_nu = mid;
        }
    }
    let nu = rational(hi_nu)?;
    let mut shifted = h.clone();
    for (i, row) in shifted.iter_mut().enumerate() {
        row[i] += &nu;
    }
    let theta_nu = solve_rational(shifted, minus_l).ok_or_else(singular)?;
    // Lagrangian dual: min q + nu/2 (||theta||^2 - r^2) = c + l^T theta_nu / 2 - nu r^2 / 2.
    let lower = &c + &half * dot(&l, &theta_nu) - &half * &nu * &r2;
    // A feasible point: theta_nu scaled into the ball (checked exactly).
    let norm = dot(&theta_nu, &theta_nu)
        .to_f64()
        .unwrap_or(f64::INFINITY)
        .sqrt();
    let mut scale = (radius / norm).min(1.0);
    let feasible = loop {
        let s = rational(scale)?;
        let candidate: Vec<Q> = theta_nu.iter().map(|t| t * &s).collect();
        if dot(&candidate, &candidate) <= r2 {
            break candidate;
        }
        scale *= 1.0 - 1e-15;
    };
    Ok(Bracket {
        lo: to_f64(&lower),
        hi: to_f64(&value(&feasible)),
        binds: true,
        method: "rational",
    })
}

/// `D(p)` of any family by projected accelerated gradient on `Phi_p` with
/// this function's own projection onto the ball; the upper end is the value
/// at a point proven inside it, the lower end the strong-convexity bound with
/// the given `lambda` (the problem's l2, not the family's constant).
fn accelerated_bracket(
    family: &Arc<dyn TaskFamily>,
    weights: &[f64],
    radius: f64,
    lambda: f64,
) -> Result<Bracket, Error> {
    let (m, d) = (family.num_tasks(), family.dim());
    let mut eval = Evaluation::new(m, d);
    let project = |t: &mut DVector<f64>| {
        let n = t.norm();
        if n > radius {
            *t *= radius / n * (1.0 - 1e-15);
        }
    };
    let evaluate = |t: &DVector<f64>, eval: &mut Evaluation| -> Result<_, Error> {
        family.evaluate(t, &mut |_, w| w.copy_from_slice(weights), eval)?;
        Ok((eval.weighted_loss(), eval.gradient.clone()))
    };
    let step = 1.0 / family.smoothness().max(lambda);
    let mut x = DVector::zeros(d);
    let mut y = x.clone();
    let (mut best_value, mut best) = (f64::INFINITY, x.clone());
    let mut momentum = 1.0f64;
    let mut previous = f64::INFINITY;
    for _ in 0..5000 {
        let (_, g) = evaluate(&y, &mut eval)?;
        let mut next = &y - &g * step;
        project(&mut next);
        let (value, _) = evaluate(&next, &mut eval)?;
        if value < best_value {
            best_value = value;
            best = next.clone();
        }
        // Restart the momentum when the value goes up (keeps the linear rate).
        let next_momentum = if value > previous {
            1.0
        } else {
            0.5 * (1.0 + (1.0 + 4.0 * momentum * momentum).sqrt())
        };
        y = &next + (&next - &x) * ((momentum - 1.0) / next_momentum);
        if value > previous {
            y = next.clone();
        }
        momentum = next_momentum;
        previous = value;
        x = next;
    }
    if best.norm() > radius {
        return Err(Error::Solver(format!(
            "the reference point is outside the ball (norm {} > {radius})",
            best.norm()
        )));
    }
    let (value, g) = evaluate(&best, &mut eval)?;
    // min over the ball of value + g^T s + lambda/2 ||s||^2 (s = theta - best):
    // the minimiser is the projection of best - g / lambda (isotropic model).
    let mut target = &best - &g / lambda;
    let n = target.norm();
    let binds = n > radius;
    if binds {
        target *= radius / n;
    }
    let s = &target - &best;
    let lower = value + g.dot(&s) + 0.5 * lambda * s.norm_squared();
    // Whether D(p)'s minimiser is on the sphere: the projected gradient
    // step would leave the ball.
    let on_sphere = (&best - &g * step).norm() > radius && best.norm() > radius * (1.0 - 1e-6);
    Ok(Bracket {
        lo: lower,
        hi: value,
        binds: on_sphere,
        method: "accelerated",
    })
}

/// The checks, from the rows alone (a test feeds fabricated rows).
fn verdicts(p: &P, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for family in &p.families {
        for class in ["binding", "interior"] {
            let mine: Vec<&Row> = rows
                .iter()
                .filter(|r| &r.family == family && r.class == class)
                .collect();
            let label = format!("cert/{family}/{class}");
            if mine.is_empty() {
                checks.push(Check::new(
                    format!(
                        "{label}: certified lower bounds <= D(p) from an independent reference"
                    ),
                    false,
                    Value::Null,
                    Value::Null,
                    "not evaluated: no rows",
                ));
                continue;
            }
            let reference = mine[0].reference.clone();
            checks.push(validity(&label, &reference, &mine));
            checks.push(tightness(&label, &reference, &mine));
            checks.push(feasibility(&label, class, &mine));
        }
    }
    checks
}

fn scale(r: &Row) -> f64 {
    1.0 + r.hi.abs()
}

/// Every certificate (raw, refined, after the exact solve) is at most the
/// reference's upper end.
fn validity(label: &str, reference: &str, mine: &[&Row]) -> Check {
    let mut worst = f64::NEG_INFINITY;
    let mut worst_at = String::new();
    let mut bad = 0;
    let mut total = 0;
    for r in mine {
        let mut compared = vec![("one-point", r.raw, r.hi), ("refined", r.refined, r.hi)];
        if r.source != "random" {
            // The solver's reported bound on OPT against a feasible value.
            compared.push(("reported", r.reported, r.opt_upper));
        }
        for (what, value, upper) in compared {
            total += 1;
            // NaN anywhere fails (a certificate that cannot be computed is
            // not a certificate; -inf is a valid, empty one).
            let excess = if value.is_nan() || upper.is_nan() {
                f64::INFINITY
            } else {
                (value - upper) / (1.0 + upper.abs())
            };
            if excess.is_nan() || excess > ROUNDING_ALLOWANCE {
                bad += 1;
            }
            if excess > worst || worst_at.is_empty() {
                worst = excess;
                worst_at = format!(
                    "{what} certificate at a {} point of seed {} ({:.10e} vs {} <= {:.10e})",
                    r.source,
                    r.seed,
                    value,
                    if what == "reported" { "OPT" } else { "D(p)" },
                    upper
                );
            }
        }
    }
    let passed = bad == 0;
    Check::new(
        format!(
            "{label}: every certified lower bound <= D(p) from an independent reference ({reference})"
        ),
        passed,
        json!(finite(worst)),
        json!(ROUNDING_ALLOWANCE),
        format!(
            "{} of {total} certificates (one-point and refined at every point; the lower bounds softmax-gd and the exact solve report, against the best feasible F) exceed the reference's upper end by more than {ROUNDING_ALLOWANCE:e} relative; largest (certified - D)/(1 + |D|) = {:.3e}: {worst_at}",
            bad, worst
        ),
    )
}

/// Quadratic forms: the certificate is the exact dual, so it must equal the
/// rational D(p). Every family: the bound after the exact solve is within
/// [`EXACT_SOLVE_TIGHTNESS`] of D(p) at the solver's weights.
fn tightness(label: &str, reference: &str, mine: &[&Row]) -> Check {
    let mut worst = 0.0f64;
    let mut worst_at = String::new();
    let mut bad = 0;
    let mut count = 0;
    for r in mine {
        let (allowed, value) = if reference == "rational" {
            (QUADRATIC_TIGHTNESS, r.raw)
        } else if r.source == "exact" {
            (EXACT_SOLVE_TIGHTNESS, r.reported)
        } else {
            continue;
        };
        count += 1;
        let shortfall = if value.is_nan() || r.lo.is_nan() {
            f64::INFINITY
        } else {
            (r.lo - value) / scale(r)
        };
        let width = (r.hi - r.lo) / scale(r);
        if shortfall.is_nan() || width.is_nan() || shortfall > allowed || width > allowed {
            bad += 1;
        }
        if shortfall.is_nan() || shortfall > worst || worst_at.is_empty() {
            worst = shortfall.max(worst);
            worst_at = format!(
                "{} point of seed {}: certified {:.10e}, D(p) in [{:.10e}, {:.10e}]",
                r.source, r.seed, value, r.lo, r.hi
            );
        }
    }
    let what = if reference == "rational" {
        format!("the certificate equals the exact rational D(p) within {QUADRATIC_TIGHTNESS:e}")
    } else {
        format!("the bound after the exact solve is within {EXACT_SOLVE_TIGHTNESS:e} of D(p)")
    };
    Check::new(
        format!("{label}: {what}"),
        bad == 0 && count > 0,
        json!(finite(worst)),
        json!(if reference == "rational" {
            QUADRATIC_TIGHTNESS
        } else {
            EXACT_SOLVE_TIGHTNESS
        }),
        format!(
            "{bad} of {count} compared points fall short of the reference's lower end (or its bracket is wider than allowed); largest shortfall (D_lo - certified)/(1 + |D|) = {:.3e} at the {worst_at}",
            worst
        ),
    )
}

/// The ball binds where it should (so the Lagrangian path is exercised) and
/// the solvers' points lie in it.
fn feasibility(label: &str, class: &str, mine: &[&Row]) -> Check {
    let binding = mine.iter().filter(|r| r.binds).count();
    let solver_rows: Vec<&&Row> = mine.iter().filter(|r| r.source != "random").collect();
    let largest = solver_rows
        .iter()
        .map(|r| r.norm_over_radius)
        .fold(f64::NEG_INFINITY, |a, b| {
            if b.is_nan() {
                f64::INFINITY
            } else {
                a.max(b)
            }
        });
    let inside = largest <= 1.0 + 1e-12;
    let binds_as_expected = if class == "binding" {
        binding > 0
    } else {
        true
    };
    Check::new(
        format!(
            "{label}: softmax-gd's and the exact solver's points lie in the ball{}",
            if class == "binding" {
                ", and the ball binds (Lagrangian path exercised)"
            } else {
                ""
            }
        ),
        inside && binds_as_expected && !solver_rows.is_empty(),
        json!({"largest_norm_over_radius": finite(largest), "binding_points": binding}),
        json!({"largest_norm_over_radius": 1.0}),
        format!(
            "largest ||theta|| / r over {} solver points = {:.15}; D(p)'s minimiser is on the sphere at {binding} of {} points",
            solver_rows.len(),
            largest,
            mine.len()
        ),
    )
}

fn finite(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> P {
        crate::experiments::parse_params(include_str!("certificate_validity.toml"), true).unwrap()
    }

    fn row(class: &str, source: &str, raw: f64, lo: f64, hi: f64, norm: f64) -> Row {
        Row {
            family: "quadratic".into(),
            seed: 1,
            class: class.into(),
            source: source.into(),
            reference: "rational".into(),
            raw,
            refined: raw,
            lo,
            hi,
            binds: class == "binding",
            norm_over_radius: norm,
            reported: raw,
            opt_upper: 1.0,
        }
    }

    fn rows_with(raw: f64, norm: f64) -> Vec<Row> {
        ["binding", "interior"]
            .into_iter()
            .flat_map(|class| {
                [
                    row(class, "random", 1.0, 1.0, 1.0, 0.5),
                    row(class, "exact", raw, 1.0, 1.0, norm),
                ]
            })
            .collect()
    }

    #[test]
    fn exact_certificates_pass() {
        let p = P {
            families: vec!["quadratic".into()],
            ..params()
        };
        let checks = verdicts(&p, &rows_with(1.0, 1.0));
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn an_invalid_a_loose_or_an_infeasible_certificate_fails() {
        let p = P {
            families: vec!["quadratic".into()],
            ..params()
        };
        // Above D(p): invalid.
        let checks = verdicts(&p, &rows_with(1.0 + 1e-6, 1.0));
        assert!(checks
            .iter()
            .any(|c| c.name.contains("<= D(p)") && !c.passed));
        // Below D(p) by 1e-6: valid but not the exact dual.
        let checks = verdicts(&p, &rows_with(1.0 - 1e-6, 1.0));
        assert!(checks
            .iter()
            .any(|c| c.name.contains("equals") && !c.passed));
        assert!(checks
            .iter()
            .all(|c| !c.name.contains("<= D(p)") || c.passed));
        // A solver point outside the ball.
        let checks = verdicts(&p, &rows_with(1.0, 1.0 + 1e-9));
        assert!(checks
            .iter()
            .any(|c| c.name.contains("lie in the ball") && !c.passed));
        // NaN certificates fail.
        let checks = verdicts(&p, &rows_with(f64::NAN, 1.0));
        assert!(checks
            .iter()
            .any(|c| c.name.contains("<= D(p)") && !c.passed));
    }

    #[test]
    fn rational_reference_matches_a_closed_form_on_and_off_the_sphere() {
        // q = 1/2 ||theta||^2 - 2 theta_1: unconstrained minimum -2 at (2, 0).
        let form = QuadraticForm {
            hessian: DMatrix::identity(2, 2),
            linear: DVector::from_vec(vec![-2.0, 0.0]),
            constant: 0.0,
        };
        let inside = rational_bracket(std::slice::from_ref(&form), &[1.0], 3.0).unwrap();
        assert!(!inside.binds);
        assert_eq!((inside.lo, inside.hi), (-2.0, -2.0));
        // On the ball of radius 1 the minimum is at (1, 0): 1/2 - 2 = -1.5.
        let on = rational_bracket(std::slice::from_ref(&form), &[1.0], 1.0).unwrap();
        assert!(on.binds);
        assert!(on.lo <= -1.5 && on.hi >= -1.5, "{} {}", on.lo, on.hi);
        assert!(on.hi - on.lo < 1e-12, "{} {}", on.lo, on.hi);
    }
}
