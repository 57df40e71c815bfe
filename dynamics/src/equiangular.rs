//! The equiangular reduction: `n` unit tokens with all pairwise inner products equal,
//! `⟨x_i, x_j⟩ = ρ` for `i ≠ j`, stay equiangular under SA and USA (the flow commutes with every
//! permutation of the tokens), and `ρ(t)` obeys a scalar ODE (Rigollet, arXiv 2512.01868, §6.1):
//!
//! $`\dot\rho = f_{SA}(\rho) = \dfrac{2e^{\beta\rho}(1-\rho)((n-1)\rho+1)}{e^\beta + (n-1)e^{\beta\rho}}`$,
//! $`\qquad\dot\rho = f_{USA}(\rho) = \tfrac2n e^{\beta\rho}(1-\rho)((n-1)\rho+1)`$.
//!
//! Clustering drives `ρ → 1` exponentially fast, so `ρ` itself rounds to 1 after a few time units
//! and loses every digit of the gap `1 − ρ`. We integrate the *log-gap* `L = log(1 − ρ)` instead:
//! `L̇ = −f(ρ)/(1 − ρ)` with the factor `1 − ρ = e^L` cancelled analytically, and every exponential
//! written as `u = e^{β(ρ−1)} = exp(−β e^L) ∈ (0, 1]`, which neither overflows nor cancels:
//!
//! $`\dot L_{SA} = -\dfrac{2u\,(n - (n-1)e^L)}{1 + (n-1)u}`$,
//! $`\qquad\dot L_{USA} = -\tfrac2n\,u\,(n - (n-1)e^L)\cdot e^{\beta}`$ (physical time; drop `e^β`
//! in rescaled time `τ = e^β t`).
//!
//! For SA, `|∂L̇/∂L| ≤ 2(n/e + 2)` whatever β (the only β-dependence enters through
//! `β e^L u = βg e^{−βg} ≤ 1/e`), and likewise for USA in rescaled time: the problem is not stiff,
//! and an explicit high-order method (ode_solvers' `Dop853`) is the right tool.
//!
//! Reference: Rigollet, "The Mean-Field Dynamics of Transformers", arXiv 2512.01868, §6.1.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};
use ode_solvers::dop_shared::{IntegrationError, OutputType};
use ode_solvers::{Dop853, System, Vector1, Vector2};

use crate::error::{check_positive, DynamicsError, Result};
use crate::field::{check_beta, Clock, MAX_BETA_PHYSICAL_USA};
use crate::integrate::Tolerances;

/// Default tolerances of the equiangular ODEs: twelve digits, about four above rounding, which
/// `Dop853` (order 8) reaches in a handful of steps per unit time.
pub const DEFAULT_TOL: Tolerances = Tolerances { rtol: 1e-12, atol: 1e-12 };

/// Step budget of one `Dop853` segment. `|L̇| ≤ 2` for SA (≤ 2e^β for USA in physical time) and
/// `L̇` is smooth on the scale of 1, so even at `rtol = 10⁻¹⁴` a unit of time costs a few dozen
/// steps; the budget only catches runaway integrations.
const MAX_SOLVER_STEPS: u32 = 1_000_000;

/// `Dop853` tests for stiffness every this many accepted steps (its default).
const STIFFNESS_TEST_PERIOD: u32 = 1000;

/// Disables the stiffness test: for a quadrature `t' = g(s)` the test's estimate of `h·λ` from
/// stage differences divided by solution differences has no meaning (`g` does not depend on `t`)
/// and raises false alarms where `g` varies quickly.
const NO_STIFFNESS_TEST: u32 = u32::MAX;

/// Which attention the equiangular tokens follow.
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    /// Softmax self-attention [`crate::Sa`].
    Sa,
    /// Unnormalised self-attention [`crate::Usa`] on the given clock.
    Usa(Clock),
}

/// An equiangular model: the attention, the number of tokens `n ≥ 2` and the inverse temperature β.
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Equiangular {
    /// SA, or USA on a clock.
    pub attention: Attention,
    /// Number of tokens, `≥ 2`.
    pub n: usize,
    /// Inverse temperature (see [`check_beta`]).
    pub beta: f64,
}

impl Equiangular {
    /// A validated model: `n ≥ 2`, β admissible ([`check_beta`]), and β ≤ 700 for USA in physical
    /// time (`e^β` must be representable).
    pub fn new(attention: Attention, n: usize, beta: f64) -> Result<Self> {
        let m = Self { attention, n, beta };
        m.validate()?;
        Ok(m)
    }

    /// Re-checks a model built by struct literal.
    pub fn validate(&self) -> Result<()> {
        check_n(self.n)?;
        check_beta(self.beta)?;
        if self.attention == Attention::Usa(Clock::Physical) && self.beta > MAX_BETA_PHYSICAL_USA {
            return Err(DynamicsError::InvalidParameter {
                name: "beta",
                value: self.beta,
                allowed: "β ≤ 700 for USA in physical time (use Clock::Rescaled)",
            });
        }
        Ok(())
    }

    /// Checks `ρ₀ ∈ [−1/(n−1), 1)`.
    pub fn check_rho(&self, name: &'static str, rho: f64) -> Result<f64> {
        check_rho(name, self.n, rho)
    }

    /// `ρ̇` as a function of `ρ` (unchecked: the model is assumed valid).
    ///
    /// $`\dot\rho = -(1-\rho)\,\dot L`$ with [`Self::log_gap_rate`].
    pub fn rho_dot(&self, rho: f64) -> f64 {
        let gap = 1.0 - rho;
        gap * -self.rate_from_gap(gap)
    }

    /// `L̇` as a function of `L = log(1 − ρ)` (unchecked). Always `≤ 0` for `ρ ≥ −1/(n−1)`.
    pub fn log_gap_rate(&self, l: f64) -> f64 {
        self.rate_from_gap(l.exp())
    }

    /// `L̇` from the gap `g = 1 − ρ = e^L`.
    fn rate_from_gap(&self, gap: f64) -> f64 {
        let nf = self.n as f64;
        let u = (-self.beta * gap).exp();
        // (n − 1)ρ + 1 = n − (n − 1)(1 − ρ): exact at ρ → 1, no cancellation there.
        let simplex = nf - (nf - 1.0) * gap;
        match self.attention {
            Attention::Sa => -2.0 * u * simplex / (1.0 + (nf - 1.0) * u),
            Attention::Usa(Clock::Rescaled) => -2.0 / nf * u * simplex,
            // u·e^β = e^{βρ}: combine the exponents before exponentiating (β ≤ 700 keeps it finite).
            Attention::Usa(Clock::Physical) => -2.0 / nf * (self.beta * (1.0 - gap)).exp() * simplex,
        }
    }
}

fn check_n(n: usize) -> Result<usize> {
    if n < 2 {
        return Err(DynamicsError::InvalidSize { name: "n", value: n, allowed: "at least 2 tokens" });
    }
    Ok(n)
}

fn check_rho(name: &'static str, n: usize, rho: f64) -> Result<f64> {
    let lo = -1.0 / (n as f64 - 1.0);
    if rho.is_finite() && rho >= lo && rho < 1.0 {
        Ok(rho)
    } else {
        Err(DynamicsError::InvalidParameter { name, value: rho, allowed: "a number in [−1/(n−1), 1)" })
    }
}

/// `L = log(1 − ρ)`, accurate for `ρ` near 0.
pub fn log_gap_of(rho: f64) -> f64 {
    (-rho).ln_1p()
}

/// `ρ = 1 − e^L`, accurate for `L` near 0.
pub fn rho_of(log_gap: f64) -> f64 {
    -log_gap.exp_m1()
}

/// The SA equiangular velocity
/// $`f_{SA}(\rho) = \dfrac{2e^{\beta\rho}(1-\rho)((n-1)\rho+1)}{e^\beta + (n-1)e^{\beta\rho}}`$,
/// evaluated as `2u(1−ρ)((n−1)ρ+1)/(1 + (n−1)u)` with `u = e^{β(ρ−1)}` (finite for every β).
/// Needs `n ≥ 2`, admissible β, `ρ ∈ [−1/(n−1), 1]`.
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
pub fn f_sa(n: usize, beta: f64, rho: f64) -> Result<f64> {
    scalar_rate(Attention::Sa, n, beta, rho)
}

/// The USA equiangular velocity $`f_{USA}(\rho) = \tfrac2n e^{\beta\rho}(1-\rho)((n-1)\rho+1)`$ in
/// physical time, or `e^{−β}` times it in rescaled time `τ = e^β t` (the form that stays finite for
/// every β). Same domain as [`f_sa`].
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
pub fn f_usa(n: usize, beta: f64, rho: f64, clock: Clock) -> Result<f64> {
    scalar_rate(Attention::Usa(clock), n, beta, rho)
}

fn scalar_rate(attention: Attention, n: usize, beta: f64, rho: f64) -> Result<f64> {
    let m = Equiangular::new(attention, n, beta)?;
    if rho == 1.0 {
        return Ok(0.0);
    }
    m.check_rho("rho", rho)?;
    Ok(m.rho_dot(rho))
}

/// The radial speed of equiangular Pre-LN tokens $`x_i = r\theta_i`$ (all radii equal,
/// $`\langle\theta_i,\theta_j\rangle = \rho`$): $`\dot r = \langle\theta_i, A_i\rangle =
/// \dfrac{e^{\beta(1-\rho)} + (n-1)\rho}{e^{\beta(1-\rho)} + n - 1}`$, evaluated as
/// `(1 + (n−1)ρu)/(1 + (n−1)u)` with `u = e^{β(ρ−1)}`. Unchecked.
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
pub fn pre_ln_radial_speed(n: usize, beta: f64, rho: f64) -> f64 {
    let nf = n as f64;
    let u = (beta * (rho - 1.0)).exp();
    (1.0 + (nf - 1.0) * rho * u) / (1.0 + (nf - 1.0) * u)
}

fn check_times(times: &[f64]) -> Result<()> {
    let mut prev = 0.0;
    for &t in times {
        if !(t.is_finite() && t >= prev) {
            return Err(DynamicsError::InvalidParameter {
                name: "times",
                value: t,
                allowed: "finite, ≥ 0 and non-decreasing output times",
            });
        }
        prev = t;
    }
    Ok(())
}

fn solver_error(e: IntegrationError) -> DynamicsError {
    DynamicsError::Solver { solver: "ode_solvers::Dop853", reason: e.to_string() }
}

/// Integrates `system` over `[t0, t1]` with Dop853 and returns the final state. Each output time
/// gets its own run ending exactly there, which sidesteps the dense-output interpolant.
fn dop853_segment<D, S>(
    system: S,
    t0: f64,
    t1: f64,
    y0: OVector<f64, D>,
    tol: Tolerances,
    n_stiff: u32,
) -> Result<OVector<f64, D>>
where
    D: Dim,
    S: System<f64, OVector<f64, D>>,
    OVector<f64, D>: std::ops::Mul<f64, Output = OVector<f64, D>>,
    DefaultAllocator: Allocator<D>,
{
    if t1 == t0 {
        return Ok(y0);
    }
    let mut solver = Dop853::from_param(
        system,
        t0,
        t1,
        t1 - t0,
        y0,
        tol.rtol,
        tol.atol,
        0.9,   // safety factor (the solver's default)
        0.0,   // no PI term (the default)
        0.333, // fac_min (the default)
        6.0,   // fac_max (the default)
        t1 - t0,
        0.0, // automatic initial step
        MAX_SOLVER_STEPS,
        n_stiff,
        OutputType::Sparse,
    );
    solver.integrate().map_err(solver_error)?;
    let y = solver
        .y_out()
        .last()
        .cloned()
        .ok_or(DynamicsError::Solver { solver: "ode_solvers::Dop853", reason: "no output".into() })?;
    if y.iter().any(|v| !v.is_finite()) {
        return Err(DynamicsError::NonFinite { what: "equiangular ODE solution" });
    }
    Ok(y)
}

/// `L̇ = rate(L)` for one model.
struct LogGapSystem(Equiangular);

impl System<f64, Vector1<f64>> for LogGapSystem {
    fn system(&self, _t: f64, y: &Vector1<f64>, dy: &mut Vector1<f64>) {
        dy[0] = self.0.log_gap_rate(y[0]);
    }
}

/// The log-gap `L(t) = log(1 − ρ(t))` of the equiangular flow at each of `times` (finite, `≥ 0`,
/// non-decreasing; time starts at 0 with `ρ(0) = ρ₀ ∈ [−1/(n−1), 1)`), solved with `Dop853` at
/// tolerances `tol` ([`DEFAULT_TOL`] is a good choice). For USA the times are on the model's clock.
/// Recover `ρ` with [`rho_of`].
///
/// $`\dot L = -f(\rho)/(1-\rho)`$ with the factor `1 − ρ` cancelled (see the module docs).
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
pub fn log_gap(model: Equiangular, rho0: f64, times: &[f64], tol: Tolerances) -> Result<Vec<f64>> {
    model.validate()?;
    model.check_rho("rho0", rho0)?;
    tol.validate()?;
    check_times(times)?;
    let mut out = Vec::with_capacity(times.len());
    let (mut t, mut y) = (0.0, Vector1::new(log_gap_of(rho0)));
    for &t_next in times {
        y = dop853_segment(LogGapSystem(model), t, t_next, y, tol, STIFFNESS_TEST_PERIOD)?;
        t = t_next;
        out.push(y[0]);
    }
    Ok(out)
}

/// `(L̇, ṙ)` for equiangular Pre-LN tokens.
struct PreLnSystem {
    sa: Equiangular,
}

impl System<f64, Vector2<f64>> for PreLnSystem {
    fn system(&self, _t: f64, y: &Vector2<f64>, dy: &mut Vector2<f64>) {
        let (l, r) = (y[0], y[1]);
        dy[0] = self.sa.log_gap_rate(l) / r;
        dy[1] = pre_ln_radial_speed(self.sa.n, self.sa.beta, rho_of(l));
    }
}

/// Equiangular Pre-LN (softmax) tokens $`x_i = r\,\theta_i`$ with common radius `r` and
/// $`\langle\theta_i,\theta_j\rangle = \rho`$: returns `(L, r)` at each of `times`, from
/// `ρ(0) = ρ₀`, `r(0) = r₀ > 0`. The system is
///
/// $`\dot r = \dfrac{e^{\beta(1-\rho)} + (n-1)\rho}{e^{\beta(1-\rho)} + n-1}`$ ([`pre_ln_radial_speed`]),
/// $`\qquad\dot\rho = f_{SA}(\rho)/r`$, i.e. $`\dot L = \dot L_{SA}/r`$:
/// the velocity $`A_i`$ splits into its radial part $`\langle\theta_i, A_i\rangle`$ and the SA
/// velocity of the directions divided by the radius.
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
pub fn pre_ln(
    n: usize,
    beta: f64,
    rho0: f64,
    r0: f64,
    times: &[f64],
    tol: Tolerances,
) -> Result<Vec<(f64, f64)>> {
    let sa = Equiangular::new(Attention::Sa, n, beta)?;
    sa.check_rho("rho0", rho0)?;
    check_positive("r0", r0)?;
    tol.validate()?;
    check_times(times)?;
    let mut out = Vec::with_capacity(times.len());
    let (mut t, mut y) = (0.0, Vector2::new(log_gap_of(rho0), r0));
    for &t_next in times {
        y = dop853_segment(PreLnSystem { sa }, t, t_next, y, tol, STIFFNESS_TEST_PERIOD)?;
        t = t_next;
        out.push((y[0], y[1]));
    }
    Ok(out)
}

/// `dt/ds = 1/|L̇(L₀ − s)|`, time as a function of the decrease `s` of the log-gap, written as the
/// autonomous system `(s, t)' = (1, 1/|L̇(L₀ − s)|)`. Autonomous on purpose: ode_solvers 0.6.2's
/// `Dop853` tableau has `c₁₂ = 0` instead of 1, so it evaluates stage 12 of a non-autonomous system
/// at the wrong time (the step size collapses); the fields of this crate are all autonomous, and
/// the linear component `s` is integrated exactly by any Runge–Kutta method.
struct HittingTimeSystem {
    model: Equiangular,
    l0: f64,
}

impl System<f64, Vector2<f64>> for HittingTimeSystem {
    fn system(&self, _x: f64, y: &Vector2<f64>, dy: &mut Vector2<f64>) {
        dy[0] = 1.0;
        dy[1] = -1.0 / self.model.log_gap_rate(self.l0 - y[0]);
    }
}

/// The time at which the equiangular flow started at `ρ₀` reaches `ρ_target ∈ [ρ₀, 1)`.
///
/// `ρ` increases monotonically (for `ρ₀ > −1/(n−1)`), so the hitting time is the quadrature
/// $`t = \int_{L_{target}}^{L_0} \frac{dL}{|\dot L(L)|}`$, solved with `Dop853` as `dt/ds` over
/// `s ∈ [0, L₀ − L_target]`: exact up to `tol`, with no event location. Errors if `ρ_target < ρ₀`
/// or if `ρ₀ = −1/(n−1)` (the simplex, an equilibrium: nothing above it is ever reached).
///
/// Reference: Rigollet, arXiv 2512.01868, §6.1.
pub fn time_to_reach(model: Equiangular, rho0: f64, rho_target: f64, tol: Tolerances) -> Result<f64> {
    model.validate()?;
    model.check_rho("rho0", rho0)?;
    model.check_rho("rho_target", rho_target)?;
    tol.validate()?;
    if rho_target < rho0 {
        return Err(DynamicsError::InvalidParameter {
            name: "rho_target",
            value: rho_target,
            allowed: "a value in [ρ₀, 1): ρ only increases along the flow",
        });
    }
    if rho_target == rho0 {
        return Ok(0.0);
    }
    let (l0, l1) = (log_gap_of(rho0), log_gap_of(rho_target));
    let rate0 = model.log_gap_rate(l0);
    if rate0.is_nan() || rate0 >= 0.0 {
        return Err(DynamicsError::InvalidParameter {
            name: "rho0",
            value: rho0,
            allowed: "ρ₀ > −1/(n−1): the simplex configuration is an equilibrium",
        });
    }
    let y = dop853_segment(
        HittingTimeSystem { model, l0 },
        0.0,
        l0 - l1,
        Vector2::new(0.0, 0.0),
        tol,
        NO_STIFFNESS_TEST,
    )?;
    Ok(y[1])
}
