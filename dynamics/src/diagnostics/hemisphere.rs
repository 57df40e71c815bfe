//! An exact test of whether tokens lie in an open hemisphere, with a checkable certificate either
//! way.
//!
//! Gordan's alternative: for directions `θ_1..θ_n`, exactly one of
//! - there is `w` with `⟨θ_i, w⟩ > 0` for every `i` (an open hemisphere contains them), or
//! - there are `λ ≥ 0`, `Σ λ_i = 1`, with `Σ λ_i θ_i = 0` (the origin is in their convex hull)
//!
//! holds. Both are linear feasibility problems. The answer is decided by the certificate, checked
//! in floating point with a rigorous error bound, never by trusting the LP solver's objective: the
//! solver (`microlp`) only proposes `w` or `λ`, and meets its constraints only to within its
//! feasibility tolerance (`1e-7`).
//!
//! Reference: Theorem 3 and Corollary 4, §4.2 of arXiv 2512.01868 (exponential collapse from an open
//! hemisphere); Wendel (1962) for the probability that random points lie in one.

use microlp::{ComparisonOp, OptimizationDirection, Problem};
use nalgebra::{DMatrix, DVector};
use serde::Serialize;

use super::unit_directions;
use crate::error::{DynamicsError, Result};
use crate::tokens::Tokens;

/// `microlp`'s default absolute feasibility tolerance: a returned point may violate each
/// constraint and bound by this much.
const LP_FEASIBILITY: f64 = 1e-7;

/// The outcome of [`open_hemisphere`], with its certificate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Hemisphere {
    /// A unit vector `w` with `⟨θ_i, w⟩ > 0` for every direction `θ_i = x_i/|x_i|`; `margin` is
    /// `min_i ⟨θ_i, w⟩` recomputed from the data (a lower bound on the largest achievable margin,
    /// which is the distance from the origin to the convex hull of the `θ_i`).
    Open { w: Vec<f64>, margin: f64 },
    /// A Gordan certificate: convex weights (`λ_i ≥ 0`, `Σ λ_i = 1`) with
    /// `residual = |Σ λ_i θ_i|` ≈ 0, recomputed from the data: the origin is within `residual`
    /// of the convex hull of the directions.
    NotOpen { weights: Vec<f64>, residual: f64 },
}

impl Hemisphere {
    /// Whether the tokens lie in an open hemisphere.
    pub fn is_open(&self) -> bool {
        matches!(self, Hemisphere::Open { .. })
    }
}

/// `γ_d = d·u/(1 − d·u)`, `u = ε/2`: Higham's bound on the relative error of a `d`-term dot
/// product, `|fl(⟨a,b⟩) − ⟨a,b⟩| ≤ γ_d Σ_k |a_k b_k|`.
fn gamma(d: usize) -> f64 {
    let du = d as f64 * f64::EPSILON / 2.0;
    du / (1.0 - du)
}

/// The certified margin of `w` (normalised here), or `None` when some `⟨θ_i, w⟩ > 0` cannot be
/// certified.
///
/// Sign tolerance: `fl(⟨θ_i,w⟩)` is accepted as positive only when it exceeds
/// `2γ_d·fl(Σ_k |θ_ik w_k|)`; the factor 2 covers the rounding of the absolute sum itself (which
/// is at most `γ_d` relative). Then the exact inner product of the stored vectors is positive, so
/// the certificate holds for the data as stored, and a configuration with the origin on the
/// boundary of its hull (true margin 0, e.g. an antipodal pair) is never certified open.
fn certify(theta: &Tokens, w: &DVector<f64>) -> Option<(Vec<f64>, f64)> {
    let norm = w.norm();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    let w = w / norm;
    let tol = 2.0 * gamma(theta.nrows());
    let mut margin = f64::INFINITY;
    for col in theta.column_iter() {
        let dot = col.dot(&w);
        let abs: f64 = col.iter().zip(w.iter()).map(|(a, b)| (a * b).abs()).sum();
        if dot <= tol * abs {
            return None;
        }
        margin = margin.min(dot);
    }
    Some((w.iter().copied().collect(), margin))
}

fn lp_error(e: microlp::Error) -> DynamicsError {
    DynamicsError::Solver { solver: "microlp (open hemisphere)", reason: e.to_string() }
}

/// Coefficient magnitudes below which an entry of `θ` is left out of the LP models, tried in
/// turn when the solver fails. `microlp` asks that the coefficients of a constraint or a variable
/// span at most six orders of magnitude; directions produced by an eigendecomposition or a
/// rotation carry rounding noise of `~1e-17` in coordinates that are zero in exact arithmetic, which
/// spans `1e17` and makes the simplex fail. Dropping entries perturbs the LP's data by at most the
/// threshold per entry; this is safe because the LP only proposes certificates, which are checked
/// against the unmodified directions. The perturbation only widens the band of near-boundary data
/// (distance from the origin to the hull below `~√d·threshold`) where no certificate may be found.
const LP_DROP: [f64; 3] = [1e-12, 1e-9, 1e-6];

/// Runs an LP builder at each drop threshold until the solver succeeds; the last error otherwise.
fn solve_with_drops<T>(theta: &Tokens, build: impl Fn(&Tokens) -> Result<T>) -> Result<T> {
    let mut last = None;
    for &drop in &LP_DROP {
        let cleaned = theta.map(|v| if v.abs() < drop { 0.0 } else { v });
        match build(&cleaned) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("LP_DROP is not empty"))
}

/// The mean direction, and for `n ≤ d` the minimum-norm `w = Θ(ΘᵀΘ)⁻¹1` with `⟨θ_i, w⟩ = 1` for
/// all `i` (skipped when the Gram matrix is numerically singular). Both are checked by [`certify`].
fn cheap_candidates(theta: &Tokens) -> Vec<DVector<f64>> {
    let (d, n) = theta.shape();
    let mut out = vec![theta.column_mean()];
    if n <= d {
        if let Some(chol) = theta.tr_mul(theta).cholesky() {
            out.push(theta * chol.solve(&DVector::from_element(n, 1.0)));
        }
    }
    out
}

/// LP 1: maximise `t` subject to `⟨θ_i, w⟩ ≥ t`, `−1 ≤ w_k ≤ 1`, `−1 ≤ t ≤ 1` (feasible at
/// `w = 0, t = 0`, bounded by the box). Its optimum is positive iff the hemisphere is open; the
/// returned `w` is only a candidate, certified by [`certify`].
fn separating_candidate(theta: &Tokens) -> Result<DVector<f64>> {
    let (d, n) = theta.shape();
    let mut lp = Problem::new(OptimizationDirection::Maximize);
    let w: Vec<_> = (0..d).map(|_| lp.add_var(0.0, (-1.0, 1.0))).collect();
    let t = lp.add_var(1.0, (-1.0, 1.0));
    for i in 0..n {
        let row = (0..d)
            .filter(|&k| theta[(k, i)] != 0.0)
            .map(|k| (w[k], theta[(k, i)]))
            .chain(std::iter::once((t, -1.0)));
        lp.add_constraint(row.collect::<Vec<_>>(), ComparisonOp::Ge, 0.0);
    }
    let solution = lp.solve().map_err(lp_error)?.into_solution().map_err(|e| DynamicsError::Solver {
        solver: "microlp (open hemisphere)",
        reason: format!("interrupted: {:?}", e.termination_reason()),
    })?;
    Ok(DVector::from_iterator(d, w.iter().map(|&v| solution.var_value(v))))
}

/// LP 2: minimise `s` over `λ` in the simplex subject to `−s ≤ (Σ_i λ_i θ_i)_k ≤ s` for every
/// coordinate `k`; the optimum is the `ℓ∞` distance from the origin to the hull.
fn hull_candidate(theta: &Tokens) -> Result<Vec<f64>> {
    let (d, n) = theta.shape();
    let mut lp = Problem::new(OptimizationDirection::Minimize);
    let lambda: Vec<_> = (0..n).map(|_| lp.add_var(0.0, (0.0, 1.0))).collect();
    let s = lp.add_var(1.0, (0.0, f64::INFINITY));
    lp.add_constraint(lambda.iter().map(|&v| (v, 1.0)).collect::<Vec<_>>(), ComparisonOp::Eq, 1.0);
    for k in 0..d {
        let coords: Vec<_> =
            (0..n).filter(|&i| theta[(k, i)] != 0.0).map(|i| (lambda[i], theta[(k, i)])).collect();
        let mut upper = coords.clone();
        upper.push((s, -1.0));
        lp.add_constraint(upper, ComparisonOp::Le, 0.0);
        let mut lower = coords;
        lower.push((s, 1.0));
        lp.add_constraint(lower, ComparisonOp::Ge, 0.0);
    }
    let solution = lp.solve().map_err(lp_error)?.into_solution().map_err(|e| DynamicsError::Solver {
        solver: "microlp (open hemisphere)",
        reason: format!("interrupted: {:?}", e.termination_reason()),
    })?;
    Ok(lambda.iter().map(|&v| solution.var_value(v)).collect())
}

/// Projects raw weights onto the simplex the cheap way (clip negatives, renormalise) and returns
/// them with `|Σ λ_i θ_i|`; `None` if nothing positive is left.
fn convex_residual(theta: &Tokens, raw: &[f64]) -> Option<(Vec<f64>, f64)> {
    let clipped: Vec<f64> = raw.iter().map(|&v| if v.is_finite() { v.max(0.0) } else { 0.0 }).collect();
    let total: f64 = clipped.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let lambda: Vec<f64> = clipped.iter().map(|v| v / total).collect();
    let combo = theta * DVector::from_column_slice(&lambda);
    Some((lambda, combo.norm()))
}

/// Refines LP weights on their support `S` by solving `min |Θ_S λ|²` subject to `Σ λ = 1` exactly
/// (the KKT system, by SVD): the LP answer is only accurate to its feasibility tolerance, while
/// the origin, when it lies in the hull, is an exact affine combination of the support.
fn polish(theta: &Tokens, lambda: &[f64]) -> Option<Vec<f64>> {
    let support: Vec<usize> = (0..lambda.len()).filter(|&i| lambda[i] > 1e-12).collect();
    let m = support.len();
    if m == 0 {
        return None;
    }
    let sub = theta.select_columns(support.iter());
    let gram = sub.tr_mul(&sub);
    let mut kkt = DMatrix::zeros(m + 1, m + 1);
    kkt.view_mut((0, 0), (m, m)).copy_from(&gram);
    for a in 0..m {
        kkt[(a, m)] = 1.0;
        kkt[(m, a)] = 1.0;
    }
    let mut rhs = DVector::zeros(m + 1);
    rhs[m] = 1.0;
    let svd = kkt.svd(true, true);
    // Singular values below this are rounding noise of the (m+1)-square system.
    let eps = 1e2 * (m + 1) as f64 * f64::EPSILON * svd.singular_values.max();
    let sol = svd.solve(&rhs, eps).ok()?;
    let mut out = vec![0.0; lambda.len()];
    for (a, &i) in support.iter().enumerate() {
        out[i] = sol[a];
    }
    // A polished λ that leaves the simplex by more than rounding is not a convex certificate.
    if out.iter().any(|&v| v.is_nan() || v < -1e-12) {
        return None;
    }
    Some(out)
}

/// Decides whether the directions `θ_i = x_i/|x_i|` lie in an open hemisphere, returning a
/// certificate recomputed from the data: [`Hemisphere::Open`] with a unit `w` and the margin
/// `min_i ⟨θ_i,w⟩ > 0` (each sign certified against the rounding error of its dot product), or
/// [`Hemisphere::NotOpen`] with convex weights and the residual `|Σ λ_i θ_i|`.
///
/// Candidates for `w` are tried in order, the first certified one is returned: the mean
/// direction, the minimum-norm solution of `⟨θ_i,w⟩ = 1` (when `n ≤ d`), then the optimum of the LP
/// `max t` s.t. `⟨θ_i,w⟩ ≥ t`, `|w_k| ≤ 1`. The margin is therefore that of the returned `w`, not
/// the largest possible one. If none is certified, a second LP finds `λ` in the simplex minimising
/// `‖Σ λ_i θ_i‖_∞`, refined exactly on its support.
///
/// Points on the boundary (the origin on the boundary of the hull: an antipodal pair, points on a
/// great circle around the origin) are `NotOpen`: their true margin is 0, which no certificate can
/// pass. When the data lie within the solver's resolution of the boundary (distance from the origin
/// to the hull below `~1e-7`), the answer may be `NotOpen` with a residual of that size: the residual
/// reports how close the call was. A `NotOpen` residual is at most
/// `2·1e-7·(√d + 2n)` (the LP's tolerance carried through the clip and renormalisation) and, after
/// the exact refinement on the support, is typically `~1e-16`; if neither certificate can be
/// produced the result is [`DynamicsError::Solver`].
///
/// Needs `n ≥ 1`, finite entries and no zero token.
///
/// Reference: Theorem 3 and Corollary 4, §4.2 of arXiv 2512.01868.
pub fn open_hemisphere(x: &Tokens) -> Result<Hemisphere> {
    let theta = unit_directions(x)?;
    let (d, n) = theta.shape();

    // Cheap candidates first, since the LP costs seconds at n ~ 500, d ~ 400: the mean direction
    // certifies every clustered configuration (the usual case for hidden states), and for n ≤ d
    // the minimum-norm solution of ⟨θ_i, w⟩ = 1 certifies any linearly independent set.
    for w in cheap_candidates(&theta) {
        if let Some((w, margin)) = certify(&theta, &w) {
            return Ok(Hemisphere::Open { w, margin });
        }
    }
    let lp_w = solve_with_drops(&theta, separating_candidate);
    if let Some((w, margin)) = lp_w.as_ref().ok().and_then(|w| certify(&theta, w)) {
        return Ok(Hemisphere::Open { w, margin });
    }

    let raw = solve_with_drops(&theta, hull_candidate)?;
    let mut found = convex_residual(&theta, &raw);
    if let Some((lambda, _)) = &found {
        if let Some(refined) = polish(&theta, lambda).and_then(|p| convex_residual(&theta, &p)) {
            if found.as_ref().is_none_or(|(_, r)| refined.1 < *r) {
                found = Some(refined);
            }
        }
    }
    let tol = 2.0 * LP_FEASIBILITY * ((d as f64).sqrt() + 2.0 * n as f64);
    match found {
        Some((weights, residual)) if residual <= tol => Ok(Hemisphere::NotOpen { weights, residual }),
        other => Err(DynamicsError::Solver {
            solver: "microlp (open hemisphere)",
            reason: format!(
                "no certificate: no w certified positive (LP: {}), best hull residual {:?} > {tol:e}",
                match lp_w {
                    Ok(_) => "candidate failed the check".to_string(),
                    Err(e) => e.to_string(),
                },
                other.map(|(_, r)| r)
            ),
        }),
    }
}
