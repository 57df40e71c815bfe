//! LR: the linearised contraction rates near the cluster.
//!
//! **Statement** (§6.1): with `ε = 1 − ρ`, `ε̇ ≃ −2ε` for SA and `ε̇ ≃ −2e^β ε` for USA, so the
//! rate is `λ = 2` for SA (independent of β) and `λ = 2e^β` for USA.
//!
//! *Derived:* `e^{2t}(1−ρ) → C_SA` and `e^{2e^β t}(1−ρ) → C_USA`, with
//! `C_SA = (1−ρ₀)·n/(1+(n−1)ρ₀)·e^I`, `C_USA = (1−ρ₀)·n/(1+(n−1)ρ₀)·e^{nI}` and
//! `I = ∫_{ρ₀}^1 (e^{β(1−ρ)} − 1)/((1−ρ)(1+(n−1)ρ)) dρ`. (From `d(L + λt)/dρ` along the ODE of
//! [`crate::equiangular_reduction`]: it equals `k(e^{β(1−ρ)}−1)/((1−ρ)(1+(n−1)ρ)) + (n−1)/(1+(n−1)ρ)`
//! with `k = 1` for SA and `k = n` for USA; integrate from ρ₀ to 1.) Constants are reported as
//! `log C`, which stays representable where `C_USA` overflows.
//!
//! **Test.** (a) The rate, measured on particles — equiangular and generic random data — as the
//! slope of `log ε` between `ε = 10⁻⁴` and `ε = 10⁻⁷`; it differs from λ by the next order of the
//! expansion, `|rate/λ − 1| ≤ (n + β)·10⁻⁴` (the coefficient of ε in `−L̇/λ − 1` is
//! `−((n−1)+β)/n` for SA and `−(β + (n−1)/n)` for USA; `n + β` bounds both and the second-order
//! terms of generic data). (b) `log C` from the quadrature against `L(t) + λt` from the 1-D ODE at
//! `L ≈ −40`, where the remainder `O((n+nβ)ε)` is below `10⁻¹⁵`.
//!
//! Reference: Rigollet, arXiv 2512.01868, §6.1.

use std::collections::BTreeMap;

use dynamics::equiangular::{self, Attention, Equiangular};
use dynamics::integrate::{integrate, Control, IntegrateConfig, Tolerances};
use dynamics::quadrature::adaptive_simpson;
use dynamics::tokens::{equiangular as equiangular_tokens, random_orthogonal, rng_from_seed, uniform_sphere};
use dynamics::Clock;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::claim::{check_field, check_size, outcome, replay_case, CheckError, ReplayCase};
use crate::claim::{search, verdict_of, CaseOutcome, CheckResult, Context, Evidence};
use crate::sim::{adaptive, clustering_horizon, field, log_gap, log_gap_tolerance, particle_error};
use crate::strategies::{flow, inverse_temperature, rho0_in, seed, Flow};

pub const ID: &str = "LR";

/// The claimed rate λ.
pub fn claimed_rate(flow: Flow, beta: f64) -> f64 {
    match flow {
        Flow::Sa => 2.0,
        Flow::Usa => 2.0 * beta.exp(),
    }
}

/// The integrand of `I`: `(e^{β(1−ρ)} − 1)/((1−ρ)(1+(n−1)ρ))`, with `(e^{βε} − 1)/ε` written
/// through `expm1`, exact as `ε → 0` where it tends to β.
fn integrand(n: f64, beta: f64, rho: f64) -> f64 {
    let eps = 1.0 - rho;
    let ratio = if eps == 0.0 || beta == 0.0 { beta } else { (beta * eps).exp_m1() / eps };
    ratio / (1.0 + (n - 1.0) * rho)
}

/// Requested relative accuracy of the quadrature of `I`.
const QUAD_RTOL: f64 = 1e-13;

/// Accepted relative error of [`integral_i`] in tests: the adaptive Simpson rule's error estimate
/// is asymptotically exact for this analytic integrand, so ten times the request suffices.
#[cfg(test)]
const QUAD_TEST_TOL: f64 = 10.0 * QUAD_RTOL;

/// `I(n, β, ρ₀) = ∫_{ρ₀}^1 (e^{β(1−ρ)} − 1)/((1−ρ)(1+(n−1)ρ)) dρ`.
pub fn integral_i(n: usize, beta: f64, rho0: f64) -> dynamics::Result<f64> {
    dynamics::error::check_range("rho0", rho0, -1.0 / (n as f64 - 1.0), 1.0, "a number in (−1/(n−1), 1]")?;
    let f = |rho: f64| integrand(n as f64, beta, rho);
    // The scale of the answer, for a relative tolerance: the integrand at ρ₀ times the length.
    let scale = (f(rho0).abs() * (1.0 - rho0)).max(f64::MIN_POSITIVE);
    adaptive_simpson(&f, rho0, 1.0, QUAD_RTOL * scale)
}

/// `log C_SA` or `log C_USA` from the closed form.
pub fn log_constant(flow: Flow, n: usize, beta: f64, rho0: f64) -> dynamics::Result<f64> {
    let nf = n as f64;
    let k = match flow {
        Flow::Sa => 1.0,
        Flow::Usa => nf,
    };
    Ok((1.0 - rho0).ln() + (nf / (1.0 + (nf - 1.0) * rho0)).ln() + k * integral_i(n, beta, rho0)?)
}

fn model(flow: Flow, n: usize, beta: f64) -> dynamics::Result<Equiangular> {
    let attention = match flow {
        Flow::Sa => Attention::Sa,
        Flow::Usa => Attention::Usa(Clock::Physical),
    };
    Equiangular::new(attention, n, beta)
}

/// Tolerance of the 1-D ODE (Dop853).
const ODE_RTOL: f64 = 1e-12;

/// `L(t) + λt` from the 1-D ODE at a time where `L ≈ −40`.
pub fn log_constant_from_ode(flow: Flow, n: usize, beta: f64, rho0: f64) -> dynamics::Result<f64> {
    let m = model(flow, n, beta)?;
    let tol = Tolerances::new(ODE_RTOL, ODE_RTOL)?;
    let lambda = claimed_rate(flow, beta);
    // From 1 − ρ = 10⁻⁶ on, L decreases at rate ≈ λ: another (40 − 13.8)/λ reaches L ≈ −40.
    let t = equiangular::time_to_reach(m, rho0, 1.0 - 1e-6, tol)? + (40.0 - 1e6f64.ln()) / lambda;
    let l = equiangular::log_gap(m, rho0, &[t], tol)?[0];
    Ok(l + lambda * t)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub flow: Flow,
    pub n: usize,
    pub extra_d: usize,
    pub beta: f64,
    pub rho0: f64,
    /// Equiangular initial data if true, otherwise uniform random data with this seed.
    pub equiangular: bool,
    pub seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (flow(), 2usize..=10, 0usize..=3, inverse_temperature(6.0), 0.0f64..1.0, any::<bool>(), seed()).prop_map(
        |(flow, n, extra_d, beta, fraction, equiangular, seed)| Case {
            flow,
            n,
            extra_d,
            beta,
            rho0: rho0_in(n, 0.02, 0.95, fraction),
            equiangular,
            seed,
        },
    )
}

const PARTICLE_RTOL: f64 = 1e-12;
/// The window of the rate fit.
const GAP_START: f64 = 1e-4;
const GAP_END: f64 = 1e-7;

pub fn run_case(case: &Case) -> CaseOutcome {
    outcome(try_case(case))
}

fn try_case(case: &Case) -> dynamics::Result<CaseOutcome> {
    let (n, d) = (case.n, case.n + case.extra_d);
    let lambda = claimed_rate(case.flow, case.beta);
    let mut rng = rng_from_seed(case.seed);
    let x0 = if case.equiangular {
        random_orthogonal(d, &mut rng) * equiangular_tokens(n, d, case.rho0)?
    } else {
        uniform_sphere(n, d, &mut rng)?
    };
    let mut f = field(case.flow, case.beta)?;
    let mut method = adaptive(PARTICLE_RTOL)?;
    // Generic data first have to gather, at speeds of order 1 rather than λ: the horizon is the
    // clustering horizon of `sim`, derived from the slowest equiangular start.
    let config = IntegrateConfig::new(clustering_horizon(case.flow, n, case.beta, GAP_END)?, 20_000_000)?;
    // (time, log gap, steps so far) where the gap first crossed the window's ends.
    let mut start: Option<(f64, f64, usize)> = None;
    let mut end: Option<(f64, f64, usize)> = None;
    let mut steps = 0usize;
    integrate(f.as_mut(), &mut method, &x0, &config, &mut |t, x| {
        steps += 1;
        let l = log_gap(x);
        if start.is_none() && l <= GAP_START.ln() {
            start = Some((t, l, steps));
        }
        if start.is_some() && l <= GAP_END.ln() {
            end = Some((t, l, steps));
            return Control::Stop;
        }
        Control::Continue
    })?;
    let (Some((t_a, l_a, _)), Some((t_b, l_b, steps_b))) = (start, end) else {
        return Ok(CaseOutcome::Inconclusive(format!(
            "1 − ρ did not reach {GAP_END:e} by t = {:.3}",
            config.t_end
        )));
    };
    let rate = -(l_b - l_a) / (t_b - t_a);
    let e_x = particle_error(steps_b, PARTICLE_RTOL);
    let measurement = (log_gap_tolerance(l_a.exp(), e_x) + log_gap_tolerance(l_b.exp(), e_x)) / (t_b - t_a);
    let tol = (n as f64 + case.beta) * l_a.exp() + measurement / lambda;
    let rel = rate / lambda - 1.0;
    if rel.abs() > tol {
        return Ok(CaseOutcome::Fail(format!(
            "measured rate {rate:.6} vs λ = {lambda:.6}: relative deviation {rel:.2e} > {tol:.1e}"
        )));
    }
    let log_c = log_constant(case.flow, n, case.beta, case.rho0)?;
    let log_c_ode = log_constant_from_ode(case.flow, n, case.beta, case.rho0)?;
    // Dop853 keeps a relative error ~ODE_RTOL per step on L (|L| ≤ 40) and on t over ≲ 10³ steps;
    // the quadrature adds QUAD_RTOL relative on the k·I part of log C.
    let c_tol = 1e3 * ODE_RTOL * (1.0 + log_c.abs() + 40.0);
    if (log_c - log_c_ode).abs() > c_tol {
        return Ok(CaseOutcome::Fail(format!(
            "log C: closed form {log_c:.12} vs ODE {log_c_ode:.12} (tolerance {c_tol:.1e})"
        )));
    }
    Ok(CaseOutcome::Pass(BTreeMap::from([
        ("rate_relative_deviation".to_string(), rel.abs()),
        ("err_rate_tolerance".to_string(), tol),
        ("err_log_c".to_string(), (log_c - log_c_ode).abs()),
    ])))
}

/// The constants pinned by the snapshot: `(flow, n, β, ρ₀)`.
const TABLE: [(Flow, usize, f64, f64); 6] = [
    (Flow::Sa, 4, 1.0, 0.2),
    (Flow::Sa, 8, 4.0, 0.0),
    (Flow::Sa, 32, 9.0, 0.0),
    (Flow::Usa, 4, 1.0, 0.2),
    (Flow::Usa, 8, 4.0, 0.0),
    (Flow::Usa, 32, 9.0, 0.0),
];

pub fn check(ctx: &Context) -> CheckResult {
    (ctx.progress)("LR: measured contraction rates and the constants C_SA, C_USA");
    let found = search(0x12, 128, case_strategy(), run_case);
    let passed = found.passed().count();
    let mut evidence = Evidence::new(format!(
        "{passed} cases: worst |rate/λ − 1| = {:.2e} (λ = 2 SA, 2e^β USA)",
        found.max_of("rate_relative_deviation")
    ))
    .number("cases_passed", passed as f64)
    .number("cases_inconclusive", found.inconclusive().count() as f64)
    .number("err_rate_relative_deviation_max", found.max_of("rate_relative_deviation"))
    .number("err_log_c_max", found.max_of("err_log_c"));
    evidence.notes = found.inconclusive_notes();
    for (flow, n, beta, rho0) in TABLE {
        let tag = match flow {
            Flow::Sa => "SA",
            Flow::Usa => "USA",
        };
        evidence = evidence
            .number(format!("log_C_{tag}_n{n}_beta{beta}_rho0_{rho0}"), log_constant(flow, n, beta, rho0)?);
    }
    Ok(verdict_of(ID, &found, evidence))
}

impl ReplayCase for Case {
    /// As for EQ: `ρ₀ ∈ (−1/(n−1), 1)`, sizes and β bounded so a replay finishes in seconds.
    fn validate(&self) -> Result<(), CheckError> {
        check_size("n", self.n, 2, 16)?;
        check_size("extra_d", self.extra_d, 0, 8)?;
        check_field("beta", self.beta, 0.0, 8.0)?;
        // Room above ρ₀ for the fit window, which starts at 1 − ρ = GAP_START.
        check_field("rho0", self.rho0, -1.0 / (self.n as f64 - 1.0) + 1e-9, 1.0 - 10.0 * GAP_START)
    }
}

pub fn replay(input: &str) -> CheckResult {
    replay_case(ID, input, run_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_matches_high_precision_quadrature() {
        // Reference values from mpmath.quad at 30 digits (tanh-sinh), see the module docs.
        for (n, beta, rho0, exact) in [
            (2, 1e-6, 0.0, 6.931_473_737_071_712e-7),
            (2, 1.0, 0.0, 0.942_233_276_229_428_4),
            (4, 1.0, 0.2, 0.391_609_791_652_489_2),
            (8, 4.0, 0.0, 7.745_078_521_045_016),
        ] {
            let i = integral_i(n, beta, rho0).unwrap();
            assert!((i / exact - 1.0).abs() < QUAD_TEST_TOL, "n={n} β={beta} ρ₀={rho0}: {i} vs {exact}");
        }
        assert_eq!(integral_i(5, 0.0, 0.3).unwrap(), 0.0);
    }
}
