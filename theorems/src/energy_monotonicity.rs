//! The energy invariant: `E_β` is non-decreasing along SA and USA.
//!
//! **Statement** (implied invariant, *derived*; the energy is the Lyapunov function of the proof of
//! Theorem 1, §4.1): `E_β(t) = (1/(2βn²)) Σ_{i,j} e^{β⟨x_i(t),x_j(t)⟩}` is non-decreasing along
//! both flows. At β = 0 the monitored quantity is the limit `E_β − 1/(2β) → |mean|²/2`.
//!
//! *Derived rate* ([`dynamics::diagnostics::energy::energy_rate`]):
//! `dE/dt = (1/n²) Σ_i |P_{x_i} B_i|²/Z_i` along SA and `(1/n³) Σ_i |P_{x_i} B_i|²` along USA, with
//! `B_i = Σ_j e^{β⟨x_i,x_j⟩} x_j`.
//!
//! **Test.** For random `(n, d, β, seed)`: (a) along a Dormand–Prince trajectory, the energy at
//! each accepted step is at least the previous one minus the step's error bound; (b) the derived
//! rate agrees with a central finite difference of the energy along the flow, within the
//! difference's own Richardson error estimate.
//!
//! Reference: Rigollet, arXiv 2512.01868, §4.1 (energy), §5.2 (energy along trajectories).

use std::collections::BTreeMap;

use dynamics::diagnostics::energy::{energy_excess, energy_rate};
use dynamics::integrate::{integrate, Control, IntegrateConfig};
use dynamics::tokens::{rng_from_seed, uniform_sphere, Tokens};
use dynamics::{Manifold, Normalization, VectorField};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::claim::{check_field, check_size, outcome, replay_case, CheckError, ReplayCase};
use crate::claim::{search, verdict_of, CaseOutcome, CheckResult, Context, Evidence};
use crate::sim::{adaptive, field};
use crate::strategies::{flow, inverse_temperature, seed, Flow};

pub const ID: &str = "EN";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub flow: Flow,
    pub n: usize,
    pub d: usize,
    pub beta: f64,
    pub seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (flow(), 2usize..=12, 2usize..=6, inverse_temperature(8.0), seed())
        .prop_map(|(flow, n, d, beta, seed)| Case { flow, n, d, beta, seed })
}

const RTOL: f64 = 1e-11;
/// Horizon in units of the linear time scale `1/λ` (λ = 2 for SA, 2e^β for USA): long enough to
/// pass from the random start to near the cluster.
const HORIZON_RATE_UNITS: f64 = 10.0;

/// The time-reversed flow, for the backward half of the central difference.
struct Reversed<'a>(&'a mut dyn VectorField);

impl VectorField for Reversed<'_> {
    fn manifold(&self) -> Manifold {
        self.0.manifold()
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        self.0.velocity(x, out);
        out.neg_mut();
    }
}

fn flow_for(f: &mut dyn VectorField, x: &Tokens, t: f64) -> dynamics::Result<Tokens> {
    let mut method = adaptive(1e-13)?;
    Ok(integrate(f, &mut method, x, &IntegrateConfig::new(t, 1_000_000)?, &mut |_, _| Control::Continue)?.x)
}

/// `(E(x(h)) − E(x(−h)))/(2h)`.
fn central_difference(f: &mut dyn VectorField, x: &Tokens, beta: f64, h: f64) -> dynamics::Result<f64> {
    let plus = energy_excess(&flow_for(f, x, h)?, beta)?;
    let minus = energy_excess(&flow_for(&mut Reversed(f), x, h)?, beta)?;
    Ok((plus - minus) / (2.0 * h))
}

/// (b) The central difference of the energy along the flow at `x0`, with its error bound. Taken
/// with steps h and h/2 (h = 10⁻³ of the linear time scale 1/λ): the O(h²) truncation of the h/2
/// difference is estimated by Richardson as a third of their difference, and the bound takes the
/// whole difference, a safety factor of 3. Rounding adds the error of two energy evaluations (n²
/// terms, 4ε each relative to |E|) and of the two 1e-13 half trajectories, divided by the step.
fn finite_difference(
    f: &mut dyn VectorField,
    x0: &Tokens,
    beta: f64,
    lambda: f64,
) -> dynamics::Result<(f64, f64)> {
    let h = 1e-3 / lambda;
    let fd_h = central_difference(f, x0, beta, h)?;
    let fd_h2 = central_difference(f, x0, beta, h / 2.0)?;
    let n = x0.ncols() as f64;
    let rounding = (4.0 * n * n * f64::EPSILON + 2e-13) * energy_excess(x0, beta)?.abs().max(1.0) / h;
    Ok((fd_h2, (fd_h - fd_h2).abs() + rounding))
}

pub fn run_case(case: &Case) -> CaseOutcome {
    outcome(try_case(case))
}

fn try_case(case: &Case) -> dynamics::Result<CaseOutcome> {
    let x0 = uniform_sphere(case.n, case.d, &mut rng_from_seed(case.seed))?;
    let mut f = field(case.flow, case.beta)?;
    let normalization = match case.flow {
        Flow::Sa => Normalization::Softmax,
        Flow::Usa => Normalization::Uniform,
    };
    let lambda = match case.flow {
        Flow::Sa => 2.0,
        Flow::Usa => 2.0 * case.beta.exp(),
    };

    let rate = energy_rate(&x0, case.beta, normalization)?.rate;
    let (fd_h2, fd_tol) = finite_difference(f.as_mut(), &x0, case.beta, lambda)?;
    let fd_err = (fd_h2 - rate).abs();
    if fd_err > fd_tol {
        return Ok(CaseOutcome::Fail(format!(
            "dE/dt = {rate:.12e} from the derived formula, {fd_h2:.12e} by finite differences (|Δ| {fd_err:.2e} > {fd_tol:.1e})"
        )));
    }

    // (a) Monotonicity along a trajectory. A step's energy error is bounded by |∇E|·|δx| with
    // |∇_{x_i} E| ≤ e^β/n and |δx_i| ≤ √d·rtol (the controller's local bound), summed over i, plus
    // the rounding of the n² terms of E.
    let step_tol =
        case.beta.exp() * ((case.d as f64).sqrt() * RTOL + 8.0 * (case.n * case.n) as f64 * f64::EPSILON);
    let mut method = adaptive(RTOL)?;
    let config = IntegrateConfig::new(HORIZON_RATE_UNITS / lambda * 5.0, 10_000_000)?;
    let mut previous = f64::NEG_INFINITY;
    let mut worst_drop = f64::NEG_INFINITY;
    let mut failure = None;
    let mut steps = 0usize;
    integrate(f.as_mut(), &mut method, &x0, &config, &mut |t, x| {
        steps += 1;
        match energy_excess(x, case.beta) {
            Ok(e) => {
                let drop = previous - e;
                worst_drop = worst_drop.max(drop);
                if drop > step_tol {
                    failure =
                        Some(format!("energy decreased by {drop:.3e} (> {step_tol:.1e}) at t = {t:.5}"));
                    return Control::Stop;
                }
                previous = e;
                Control::Continue
            }
            Err(err) => {
                failure = Some(format!("energy could not be evaluated at t = {t}: {err}"));
                Control::Stop
            }
        }
    })?;
    if let Some(reason) = failure {
        return Ok(CaseOutcome::Fail(reason));
    }
    Ok(CaseOutcome::Pass(BTreeMap::from([
        ("err_rate_vs_finite_difference".to_string(), fd_err / rate.abs().max(f64::MIN_POSITIVE)),
        // The difference can only confirm the formula where its own error is well below the rate;
        // near collapse at large β the rate is tiny against |E|/h and the comparison says nothing.
        ("fd_informative".to_string(), f64::from(u8::from(fd_tol < 0.1 * rate.abs()))),
        ("err_worst_drop_over_tolerance".to_string(), worst_drop / step_tol),
        ("steps".to_string(), steps as f64),
    ])))
}

pub fn check(ctx: &Context) -> CheckResult {
    (ctx.progress)("EN: energy along SA and USA trajectories, and dE/dt against finite differences");
    let found = search(0xE4, 128, case_strategy(), run_case);
    let passed = found.passed().count();
    let informative = found.passed().filter(|(_, m)| m.get("fd_informative") == Some(&1.0)).count();
    let evidence = Evidence::new(format!(
        "{passed} trajectories non-decreasing; dE/dt = finite difference in {informative} decisive cases",
    ))
    .number("cases_passed", passed as f64)
    .number("cases_fd_decisive", informative as f64)
    .number("err_rate_vs_finite_difference_max", found.max_of("err_rate_vs_finite_difference"))
    .number("err_worst_drop_over_tolerance", found.max_of("err_worst_drop_over_tolerance"));
    Ok(verdict_of(ID, &found, evidence))
}

impl ReplayCase for Case {
    /// Any `n ≥ 2`, `d ≥ 2`, `β ≥ 0`; bounded so a replay finishes in seconds.
    fn validate(&self) -> Result<(), CheckError> {
        check_size("n", self.n, 2, 24)?;
        check_size("d", self.d, 2, 12)?;
        check_field("beta", self.beta, 0.0, 12.0)
    }
}

pub fn replay(input: &str) -> CheckResult {
    replay_case(ID, input, run_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_rate_formula_is_caught() {
        // Twice the derived rate, or the SA formula used along USA, must fall outside the bound.
        let x0 = uniform_sphere(6, 3, &mut rng_from_seed(11)).unwrap();
        let beta = 1.5;
        let mut usa = field(Flow::Usa, beta).unwrap();
        let (fd, tol) = finite_difference(usa.as_mut(), &x0, beta, 2.0 * beta.exp()).unwrap();
        let right = energy_rate(&x0, beta, Normalization::Uniform).unwrap().rate;
        let sa_formula = energy_rate(&x0, beta, Normalization::Softmax).unwrap().rate;
        assert!((fd - right).abs() <= tol, "the right formula must pass: {fd} vs {right} ± {tol}");
        assert!((fd - 2.0 * right).abs() > tol);
        assert!((fd - sa_formula).abs() > tol);
    }
}
