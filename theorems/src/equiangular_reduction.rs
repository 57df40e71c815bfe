//! EQ: equiangular data stay equiangular, and ρ follows a one-dimensional ODE.
//!
//! **Statement** (§6.1): if `⟨x_i(0), x_j(0)⟩ = ρ₀` for all `i ≠ j`, then under SA and USA the
//! configuration stays equiangular and `ρ̇ = f_SA(ρ)`, resp. `ρ̇ = f_USA(ρ)`, with
//! `f_SA(ρ) = 2e^{βρ}(1−ρ)((n−1)ρ+1)/(e^β + (n−1)e^{βρ})` and `f_USA(ρ) = (2/n)e^{βρ}(1−ρ)((n−1)ρ+1)`.
//! *Derived:* the ODE also holds for `ρ₀ ∈ (−1/(n−1), 0)`; the strategy covers that range.
//!
//! **Test.** A full particle simulation (Dormand–Prince 5(4), randomly rotated initial data,
//! `d ∈ [n, n+3]`) against the 1-D ODE integrated in `L = log(1−ρ)` by Dop853, at eight
//! checkpoints up to the time at which the ODE reaches `1 − ρ = 10⁻⁶`. Compared: the spread of the
//! off-diagonal Gram entries (must stay ~0) and `L` itself.
//!
//! Reference: Rigollet, arXiv 2512.01868, §6.1.

use std::collections::BTreeMap;

use dynamics::equiangular::{self, Attention, Equiangular};
use dynamics::integrate::{integrate, Control, IntegrateConfig, Tolerances};
use dynamics::tokens::{
    equiangular as equiangular_tokens, normalize_columns, random_orthogonal, rng_from_seed,
};
use dynamics::Clock;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::claim::{check_field, check_size, outcome, replay_case, CheckError, ReplayCase};
use crate::claim::{search, verdict_of, CaseOutcome, CheckResult, Context, Evidence};
use crate::sim::{adaptive, equiangular_spread, field, log_gap, log_gap_tolerance, particle_error};
use crate::strategies::{flow, inverse_temperature, rho0_in, seed, Flow};

pub const ID: &str = "EQ";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub flow: Flow,
    pub n: usize,
    /// `d = n + extra_d`.
    pub extra_d: usize,
    pub beta: f64,
    pub rho0: f64,
    pub seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (flow(), 2usize..=8, 0usize..=3, inverse_temperature(5.0), 0.0f64..1.0, seed()).prop_map(
        |(flow, n, extra_d, beta, fraction, seed)| Case {
            flow,
            n,
            extra_d,
            beta,
            // A margin of 0.02 above the simplex keeps the escape time (∝ log(1/margin)) short.
            rho0: rho0_in(n, 0.02, 0.95, fraction),
            seed,
        },
    )
}

/// Local error tolerance of the particle simulation.
const PARTICLE_RTOL: f64 = 1e-12;
/// Tolerance of the 1-D ODE (Dop853): far below the particle error, so the comparison measures
/// the particles.
const ODE_RTOL: f64 = 1e-13;
/// The checkpoints stop where the ODE reaches this gap: below it, `1 − ρ` measured from particles
/// is dominated by their accumulated error, which tells nothing about the reduction.
const FINAL_GAP: f64 = 1e-6;
const CHECKPOINTS: usize = 8;
/// Size of the twin's initial offset: far above rounding (1e-16) so its growth is measurable, far
/// below the configuration's scale so it stays in the linear regime for amplifications up to 1e6.
const TWIN_OFFSET: f64 = 1e-9;

fn max_column_distance(a: &dynamics::Tokens, b: &dynamics::Tokens) -> f64 {
    a.column_iter().zip(b.column_iter()).map(|(p, q)| (p - q).norm()).fold(0.0, f64::max)
}

/// Reads the 1-D model of a case.
fn model(case: &Case) -> dynamics::Result<Equiangular> {
    let attention = match case.flow {
        Flow::Sa => Attention::Sa,
        Flow::Usa => Attention::Usa(Clock::Physical),
    };
    Equiangular::new(attention, case.n, case.beta)
}

pub fn run_case(case: &Case) -> CaseOutcome {
    outcome(model(case).and_then(|ode| against(case, ode)))
}

/// Simulates the particles of `case` and compares them with the 1-D model `ode`.
fn against(case: &Case, ode: Equiangular) -> dynamics::Result<CaseOutcome> {
    let n = case.n;
    let d = n + case.extra_d;
    let tol = Tolerances::new(ODE_RTOL, ODE_RTOL)?;
    let horizon = equiangular::time_to_reach(ode, case.rho0, 1.0 - FINAL_GAP, tol)?;
    let times: Vec<f64> = (1..=CHECKPOINTS).map(|k| horizon * k as f64 / CHECKPOINTS as f64).collect();
    let predicted = equiangular::log_gap(ode, case.rho0, &times, tol)?;

    let mut rng = rng_from_seed(case.seed);
    let mut x = random_orthogonal(d, &mut rng) * equiangular_tokens(n, d, case.rho0)?;
    // A twin started TWIN_OFFSET away measures how much the flow amplifies errors: near the simplex
    // (an unstable equilibrium) it does, by orders of magnitude, and a bound that assumed
    // contraction there would report rounding as a counterexample.
    let mut twin = &x + crate::sim::gaussian_matrix(d, n, TWIN_OFFSET, &mut rng);
    normalize_columns(&mut twin)?;
    let offset0 = max_column_distance(&x, &twin);
    let mut f = field(case.flow, case.beta)?;
    let mut method = adaptive(PARTICLE_RTOL)?;
    let (mut t, mut steps) = (0.0, 0usize);
    let mut amplification: f64 = 1.0;
    let (mut worst_l, mut worst_spread, mut worst_ratio): (f64, f64, f64) = (0.0, 0.0, 0.0);
    for (&t_next, &l_ode) in times.iter().zip(&predicted) {
        let config = IntegrateConfig::new(t_next - t, 2_000_000)?;
        let out = integrate(f.as_mut(), &mut method, &x, &config, &mut |_, _| Control::Continue)?;
        steps += out.steps;
        x = out.x;
        twin = integrate(f.as_mut(), &mut method, &twin, &config, &mut |_, _| Control::Continue)?.x;
        t = t_next;
        amplification = amplification.max(max_column_distance(&x, &twin) / offset0);
        let e_x = particle_error(steps, PARTICLE_RTOL) * amplification;
        // The ODE's own error is ODE_RTOL·|L|.
        let l_tol = log_gap_tolerance(l_ode.exp(), e_x) + ODE_RTOL * l_ode.abs();
        let spread_tol = 4.0 * e_x + 4.0 * d as f64 * f64::EPSILON;
        let l_err = (log_gap(&x) - l_ode).abs();
        let spread = equiangular_spread(&x);
        worst_l = worst_l.max(l_err);
        worst_spread = worst_spread.max(spread);
        worst_ratio = worst_ratio.max(l_err / l_tol).max(spread / spread_tol);
        if spread > spread_tol {
            return Ok(CaseOutcome::Fail(format!(
                "not equiangular at t = {t:.4}: off-diagonal Gram spread {spread:.3e} > {spread_tol:.1e}"
            )));
        }
        if l_err > l_tol {
            return Ok(CaseOutcome::Fail(format!(
                "log(1−ρ) at t = {t:.4}: particles {:.9} vs ODE {l_ode:.9} (|Δ| = {l_err:.2e} > {l_tol:.1e})",
                log_gap(&x)
            )));
        }
    }
    Ok(CaseOutcome::Pass(BTreeMap::from([
        ("err_log_gap".to_string(), worst_l),
        ("err_spread".to_string(), worst_spread),
        ("err_ratio_to_tolerance".to_string(), worst_ratio),
        ("err_amplification".to_string(), amplification),
        ("rho0".to_string(), case.rho0),
    ])))
}

pub fn check(ctx: &Context) -> CheckResult {
    (ctx.progress)("EQ: particle simulations against the equiangular ODE");
    let found = search(0xE0, 128, case_strategy(), run_case);
    let negative = found.passed().filter(|(c, _)| c.rho0 < 0.0).count();
    let passed = found.passed().count();
    let evidence = Evidence::new(format!(
        "{passed} cases ({negative} with ρ₀ < 0): worst error/tolerance {:.2}",
        found.max_of("err_ratio_to_tolerance")
    ))
    .number("cases_passed", passed as f64)
    .number("cases_negative_rho0", negative as f64)
    .number("err_log_gap_max", found.max_of("err_log_gap"))
    .number("err_spread_max", found.max_of("err_spread"))
    .number("err_ratio_to_tolerance_max", found.max_of("err_ratio_to_tolerance"));
    Ok(verdict_of(ID, &found, evidence))
}

impl ReplayCase for Case {
    /// Equiangular data need `ρ₀ ∈ (−1/(n−1), 1)`; sizes and β bounded (about twice the search's
    /// ranges) so a replay finishes in seconds.
    fn validate(&self) -> Result<(), CheckError> {
        check_size("n", self.n, 2, 16)?;
        check_size("extra_d", self.extra_d, 0, 8)?;
        check_field("beta", self.beta, 0.0, 8.0)?;
        // Room above ρ₀ for the checkpoints, which run to 1 − ρ = FINAL_GAP.
        check_field("rho0", self.rho0, -1.0 / (self.n as f64 - 1.0) + 1e-9, 1.0 - 100.0 * FINAL_GAP)
    }
}

pub fn replay(input: &str) -> CheckResult {
    replay_case(ID, input, run_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_ode_is_detected() {
        // The comparison must be able to fail: USA particles against the SA ODE differ at β = 2.
        let case = Case { flow: Flow::Usa, n: 4, extra_d: 1, beta: 2.0, rho0: 0.1, seed: 3 };
        let sa = Equiangular::new(Attention::Sa, 4, 2.0).unwrap();
        assert!(matches!(against(&case, sa).unwrap(), CaseOutcome::Fail(_)));
        assert!(matches!(run_case(&case), CaseOutcome::Pass(_)), "{:?}", run_case(&case));
    }
}
