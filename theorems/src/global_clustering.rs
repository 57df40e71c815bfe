//! T1: global clustering of SA and USA.
//!
//! **Statement** (Theorem 1, §4.1): for SA and USA, `n ≥ 2`, `d ≥ 3`, any `β ≥ 0` and almost every
//! initial condition in `(S^{d−1})^n`, the solution exists for all time and
//! `‖x_i(t) − x_j(t)‖ → 0` for all i, j.
//!
//! **Finite test form** (from the spec): `β ≤ 2`, `n ≤ 16`, `d ∈ 3..=8`, uniform random initial
//! data, and "clustered" meaning `max_{ij}(1 − ⟨x_i,x_j⟩) < 10⁻⁶` by a horizon.
//!
//! **Horizon.** [`crate::sim::clustering_horizon`]: ten times the time the equiangular flow takes
//! from just above the simplex to `1 − ρ = 10⁻⁶`. A case not clustered by then is reported as
//! "not yet clustered at the horizon", never as a counterexample: for β ≤ 2 metastability is mild,
//! but time to clustering has no uniform bound over initial data.
//!
//! **Counterexample.** A genuine counterexample is an open set of initial data converging to a
//! non-clustered state. A case refutes the theorem only if at the horizon it sits at a
//! non-clustered stationary point (velocity below [`STATIONARY`]) and a random perturbation of size
//! [`PERTURBATION`] does not leave it within another horizon — a stable non-clustered
//! equilibrium. A stationary point that the perturbation escapes is a saddle (measure zero) and the
//! case is inconclusive.
//!
//! Reference: Rigollet, arXiv 2512.01868, Theorem 1, §4.1.

use std::collections::BTreeMap;

use dynamics::diagnostics::max_gap;
use dynamics::integrate::{integrate, Control, IntegrateConfig};
use dynamics::tokens::{normalize_columns, rng_from_seed, uniform_sphere, Tokens};
use dynamics::VectorField;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::claim::{check_field, check_size, outcome, replay_case, CheckError, ReplayCase};
use crate::claim::{search, verdict_of, CaseOutcome, CheckResult, Context, Evidence};
use crate::sim::{adaptive, field, gaussian_matrix};
use crate::strategies::{flow, inverse_temperature, seed, Flow};

pub const ID: &str = "T1";

/// The clustering threshold of the finite test form.
pub const CLUSTERED: f64 = 1e-6;
/// A configuration whose largest token speed is below this is treated as stationary: the
/// integrator's local tolerance is 1e-10, so speeds below 1e-8 cannot be told from rounding of a
/// point that is moving on the scale of the horizon.
pub const STATIONARY: f64 = 1e-8;
/// Size of the random kick applied to a stationary end state to test its stability.
pub const PERTURBATION: f64 = 1e-4;
const RTOL: f64 = 1e-10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub flow: Flow,
    pub n: usize,
    pub d: usize,
    pub beta: f64,
    pub seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (flow(), 2usize..=16, 3usize..=8, inverse_temperature(2.0), seed())
        .prop_map(|(flow, n, d, beta, seed)| Case { flow, n, d, beta, seed })
}

/// The horizon for `n` tokens at `beta` (see the module docs).
pub fn horizon(flow: Flow, n: usize, beta: f64) -> dynamics::Result<f64> {
    crate::sim::clustering_horizon(flow, n, beta, CLUSTERED)
}

/// Integrates until clustered or the horizon; returns the end state and the time clustered.
fn run_until_clustered(
    f: &mut dyn VectorField,
    x0: &Tokens,
    t_end: f64,
) -> dynamics::Result<(Tokens, Option<f64>)> {
    let mut method = adaptive(RTOL)?;
    let mut clustered_at = None;
    let config = IntegrateConfig::new(t_end, 10_000_000)?;
    let out = integrate(f, &mut method, x0, &config, &mut |t, x| {
        if max_gap(x).is_ok_and(|g| g < CLUSTERED) {
            clustered_at = Some(t);
            Control::Stop
        } else {
            Control::Continue
        }
    })?;
    Ok((out.x, clustered_at))
}

fn max_speed(f: &mut dyn VectorField, x: &Tokens) -> dynamics::Result<f64> {
    let v = dynamics::field::velocity_checked(f, x)?;
    Ok(v.column_iter().map(|c| c.norm()).fold(0.0, f64::max))
}

pub fn run_case(case: &Case) -> CaseOutcome {
    outcome(try_case(case))
}

fn try_case(case: &Case) -> dynamics::Result<CaseOutcome> {
    let mut rng = rng_from_seed(case.seed);
    let x0 = uniform_sphere(case.n, case.d, &mut rng)?;
    let t_h = horizon(case.flow, case.n, case.beta)?;
    let mut f = field(case.flow, case.beta)?;
    let (x, clustered_at) = run_until_clustered(f.as_mut(), &x0, t_h)?;
    if let Some(t) = clustered_at {
        return Ok(CaseOutcome::Pass(BTreeMap::from([
            ("time_to_cluster".to_string(), t),
            ("horizon".to_string(), t_h),
            ("time_fraction_of_horizon".to_string(), t / t_h),
        ])));
    }
    let gap = max_gap(&x)?;
    let speed = max_speed(f.as_mut(), &x)?;
    if speed >= STATIONARY {
        return Ok(CaseOutcome::Inconclusive(format!(
            "not yet clustered at the horizon t = {t_h:.2}: max gap {gap:.2e}, still moving (speed {speed:.1e})"
        )));
    }
    let mut kicked = &x + gaussian_matrix(x.nrows(), x.ncols(), PERTURBATION, &mut rng);
    normalize_columns(&mut kicked)?;
    let (y, clustered_again) = run_until_clustered(f.as_mut(), &kicked, t_h)?;
    if clustered_again.is_some() {
        return Ok(CaseOutcome::Inconclusive(format!(
            "stuck at a non-clustered stationary point (max gap {gap:.2e}) that a kick of {PERTURBATION:e} escapes: a saddle"
        )));
    }
    let speed_after = max_speed(f.as_mut(), &y)?;
    Ok(CaseOutcome::Fail(format!(
        "stable non-clustered state: max gap {gap:.3e}, speed {speed:.1e}; after a kick of {PERTURBATION:e} still unclustered (gap {:.3e}, speed {speed_after:.1e})",
        max_gap(&y)?
    )))
}

pub fn check(ctx: &Context) -> CheckResult {
    (ctx.progress)("T1: random initial data until clustered (β ≤ 2, n ≤ 16, d ∈ 3..8)");
    let found = search(0x71, 256, case_strategy(), run_case);
    let passed = found.passed().count();
    let pending = found.inconclusive_notes();
    let mut evidence = Evidence::new(format!(
        "{passed}/{} clustered (max gap < 1e-6), latest at {:.0}% of the horizon",
        found.outcomes.len(),
        100.0 * found.max_of("time_fraction_of_horizon")
    ))
    .number("cases_clustered", passed as f64)
    .number("cases_not_yet_clustered", pending.len() as f64)
    .number("max_time_fraction_of_horizon", found.max_of("time_fraction_of_horizon"));
    evidence.notes = pending;
    Ok(verdict_of(ID, &found, evidence))
}

impl ReplayCase for Case {
    /// The finite test form: `n ≤ 16`, `d ∈ 3..=8`, `β ≤ 2`. Beyond it, metastable multi-cluster
    /// states move slower than [`STATIONARY`] for longer than a horizon, and the stability probe
    /// could not tell them from stable equilibria.
    fn validate(&self) -> Result<(), CheckError> {
        check_size("n", self.n, 2, 16)?;
        check_size("d", self.d, 3, 8)?;
        check_field("beta", self.beta, 0.0, 2.0)
    }
}

pub fn replay(input: &str) -> CheckResult {
    replay_case(ID, input, run_case)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamics::tokens::regular_ngon;

    #[test]
    fn a_saddle_is_not_reported_as_a_counterexample() {
        // A regular 4-gon on a great circle of S² is an equilibrium of SA; the kick escapes it.
        let x = regular_ngon(4, 3).unwrap();
        let mut f = field(Flow::Sa, 1.0).unwrap();
        assert!(max_speed(f.as_mut(), &x).unwrap() < STATIONARY);
        let mut kicked = &x + gaussian_matrix(3, 4, PERTURBATION, &mut rng_from_seed(5));
        normalize_columns(&mut kicked).unwrap();
        let (_, clustered) =
            run_until_clustered(f.as_mut(), &kicked, horizon(Flow::Sa, 4, 1.0).unwrap()).unwrap();
        assert!(clustered.is_some());
    }
}
