//! The few simulation choices the claims share: which field a [`Flow`] is, and the adaptive
//! integrator used to produce trajectories.

use dynamics::integrate::{DormandPrince54, Tolerances};
use dynamics::{Clock, Sa, Usa, VectorField};

use crate::strategies::Flow;

/// The field of `flow` at `beta`, in physical time.
pub fn field(flow: Flow, beta: f64) -> dynamics::Result<Box<dyn VectorField>> {
    Ok(match flow {
        Flow::Sa => Box::new(Sa::new(beta)?),
        Flow::Usa => Box::new(Usa::new(beta, Clock::Physical)?),
    })
}

/// Dormand–Prince 5(4) at relative tolerance `rtol` (absolute `rtol/100`: coordinates of unit
/// vectors are O(1), and the absolute part only matters for coordinates near 0).
pub fn adaptive(rtol: f64) -> dynamics::Result<DormandPrince54> {
    DormandPrince54::new(Tolerances::new(rtol, rtol / 100.0)?, 1e-3)
}

/// `log(1 − ρ)` of a nearly equiangular configuration: the log of
/// [`dynamics::diagnostics::mean_gap`], which keeps the digits that `1 − ⟨x_i, x_j⟩` loses to
/// cancellation when ρ is near 1. NaN for a configuration the diagnostic refuses (fewer than two
/// tokens, a zero token), which no flow on the sphere produces.
pub fn log_gap(x: &dynamics::Tokens) -> f64 {
    dynamics::diagnostics::mean_gap(x).map_or(f64::NAN, f64::ln)
}

/// The spread `max − min` of the off-diagonal Gram entries: 0 exactly for equiangular data.
pub fn equiangular_spread(x: &dynamics::Tokens) -> f64 {
    let g = x.tr_mul(x);
    let n = x.ncols();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..n {
        for j in i + 1..n {
            lo = lo.min(g[(i, j)]);
            hi = hi.max(g[(i, j)]);
        }
    }
    hi - lo
}

/// Global error bound of a particle trajectory after `steps` accepted steps at local tolerance
/// `rtol`: the sum of the local errors (each ≤ rtol per O(1) coordinate; the flows contract near
/// the cluster, so errors are not amplified), doubled for the re-projection after each step.
pub fn particle_error(steps: usize, rtol: f64) -> f64 {
    2.0 * steps as f64 * rtol
}

/// Error bound of [`log_gap`] measured on particles with position error `e_x` when the true gap
/// `1 − ρ` is `gap`: `δ(|x_i−x_j|²/2) ≤ |x_i−x_j|·2e_x = 2√(2·gap)·e_x`, plus the rounding of the
/// squares, both divided by the gap.
pub fn log_gap_tolerance(gap: f64, e_x: f64) -> f64 {
    2.0 * (2.0 * gap).sqrt() * e_x / gap + 8.0 * f64::EPSILON / gap
}

/// Ten times the time the equiangular flow takes from `10⁻³` above the simplex
/// (`ρ₀ = −1/(n−1) + 10⁻³`, the most spread-out configuration, an unstable equilibrium) to
/// `1 − ρ = gap`. That reference contains both phases a random start goes through — escape from a
/// spread, saddle-like state (logarithmic in the distance to it) and the final linear contraction
/// at rate 2 (SA) or 2e^β (USA) — and the factor 10 leaves room for random data that pass near
/// other saddles. It is a horizon for deciding "clustered yet?", not a bound: time to clustering
/// has no uniform bound over initial data.
pub fn clustering_horizon(flow: Flow, n: usize, beta: f64, gap: f64) -> dynamics::Result<f64> {
    use dynamics::equiangular::{time_to_reach, Attention, Equiangular};
    let attention = match flow {
        Flow::Sa => Attention::Sa,
        Flow::Usa => Attention::Usa(dynamics::Clock::Physical),
    };
    let model = Equiangular::new(attention, n, beta)?;
    let rho0 = -1.0 / (n as f64 - 1.0) + 1e-3;
    let tol = dynamics::integrate::Tolerances::new(1e-10, 1e-10)?;
    Ok(10.0 * time_to_reach(model, rho0, 1.0 - gap, tol)?)
}

/// A `d × n` matrix of i.i.d. `N(0, σ²)` entries from a case's seeded stream.
pub fn gaussian_matrix(d: usize, n: usize, sigma: f64, rng: &mut impl rand::Rng) -> dynamics::Tokens {
    use rand_distr::{Distribution, StandardNormal};
    dynamics::Tokens::from_fn(d, n, |_, _| {
        let z: f64 = StandardNormal.sample(rng);
        sigma * z
    })
}
