//! The interaction energy `E_β = (1/(2βn²)) Σ_{i,j} e^{β⟨x_i,x_j⟩}` of a configuration, in forms
//! that neither overflow nor cancel, and its exact time derivative along SA and USA.
//!
//! Three scalings of the same quantity, for three regimes:
//! - [`normalized_energy`] `Ē_β = (1/n²) Σ_{i,j} e^{β(⟨x_i,x_j⟩−1)} = 2β e^{−β} E_β ∈ (0, 1]`, finite for
//!   every β (the normalisation of the energy staircase of §5.2);
//! - [`log_energy`] `log E_β = β − log(2β) + log Ē_β`, a log-sum-exp shifted by the largest exponent
//!   (the diagonal, `β`), finite for every β > 0;
//! - [`energy_excess`] `E_β − 1/(2β)`, continuous at β = 0 where it equals `|mean|²/2`, computed as a
//!   sum of non-negative terms (no cancellation for small β).
//!
//! All of them act on the directions `x_i/|x_i|` (see the module [`crate::diagnostics`]).
//!
//! Reference: the energy of §4.1 (monotone along SA and USA, the Lyapunov function of Theorem 1)
//! and the energy staircase of §5.2 of arXiv 2512.01868.

use serde::Serialize;

use super::{half_sq_chords, unit_directions};
use crate::error::{DynamicsError, Result};
use crate::field::{check_beta, Normalization};
use crate::tokens::Tokens;

/// `Σ_{i,j} e^{−β c_ij}` with `c_ij = 1 − ⟨θ_i,θ_j⟩ ≥ 0`: every term in `(0, 1]`, the `n` diagonal
/// terms exactly 1, so the sum lies in `[n, n²]` and never overflows or underflows.
fn shifted_sum(c: &nalgebra::DMatrix<f64>, beta: f64) -> f64 {
    let n = c.ncols();
    let mut off = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            off += (-beta * c[(i, j)]).exp();
        }
    }
    n as f64 + 2.0 * off
}

/// The normalised energy `Ē_β = (1/n²) Σ_{i,j} e^{β(⟨θ_i,θ_j⟩ − 1)} = 2β e^{−β} E_β`, in
/// `[1/n, 1]`; equal to 1 exactly when all tokens coincide. Never overflows: every exponent is
/// `−β(1 − ⟨θ_i,θ_j⟩) ≤ 0`, with `1 − ⟨⟩` taken from the chord so that it keeps its digits near
/// collapse. Needs `β ∈ [0, 1e6]`, `n ≥ 1`, finite entries, no zero token.
///
/// Reference: §5.2 of arXiv 2512.01868 (the staircase normalisation `(1/n²) Σ e^{β(⟨⟩−1)}`).
pub fn normalized_energy(x: &Tokens, beta: f64) -> Result<f64> {
    let beta = check_beta(beta)?;
    let theta = unit_directions(x)?;
    let n = theta.ncols() as f64;
    Ok(shifted_sum(&half_sq_chords(&theta), beta) / (n * n))
}

/// `log E_β = log((1/(2βn²)) Σ_{i,j} e^{β⟨θ_i,θ_j⟩}) = β − log(2β) + log Ē_β`: the log-sum-exp
/// shifted by the largest exponent, which is the diagonal `β⟨θ_i,θ_i⟩ = β`. Finite for every
/// `β ∈ (0, 1e6]` although `E_β` itself overflows for β ≳ 709. β = 0 is refused: `E_0 = +∞` (use
/// [`energy_excess`]).
///
/// Reference: §4.1 of arXiv 2512.01868.
pub fn log_energy(x: &Tokens, beta: f64) -> Result<f64> {
    let beta = check_beta(beta)?;
    if beta == 0.0 {
        return Err(DynamicsError::InvalidParameter {
            name: "beta",
            value: beta,
            allowed: "β > 0 (E_β is infinite at β = 0; use energy_excess)",
        });
    }
    Ok(beta - (2.0 * beta).ln() + normalized_energy(x, beta)?.ln())
}

/// `χ(y) = (e^y − 1 − y)/y`, with the sign of `y` and `χ(0) = 0`, to full relative accuracy.
///
/// For `|y| < 1/2` the Taylor series `Σ_{k≥1} y^k/(k+1)!` (term ratio `< 1/6`, so about 20 terms
/// reach `ε`); beyond, `expm1(y) − y` loses at most a factor ~5 to cancellation (at `y = −1/2`).
fn chi(y: f64) -> f64 {
    if y.abs() < 0.5 {
        let (mut term, mut sum) = (y / 2.0, 0.0f64);
        let mut k = 1.0;
        while term.abs() > f64::EPSILON * sum.abs() * 0.25 && k < 40.0 {
            sum += term;
            k += 1.0;
            term *= y / (k + 1.0);
        }
        sum + term
    } else {
        (y.exp_m1() - y) / y
    }
}

/// The energy excess `E_β − 1/(2β) = (1/(2βn²)) Σ_{i,j} (e^{βG_ij} − 1)`, `G_ij = ⟨θ_i,θ_j⟩`,
/// continuous at `β = 0` where it equals `|m|²/2`, `m = (1/n) Σ θ_i` (the paper's convention).
///
/// Computed without cancellation as
/// `|m|²/2 + (1/(2n²)) Σ_{i,j} G_ij·χ(βG_ij)`, `χ(y) = (e^y − 1 − y)/y`:
/// the first part uses `(1/n²) Σ_{ij} G_ij = |m|²` and is taken from the mean vector directly; every
/// term of the second is `≥ 0` (`χ(y)` has the sign of `y`), so the sum of mixed-sign `expm1`s,
/// whose total can be far smaller than its terms for spread-out tokens, never forms. At `β = 0` the
/// result is exactly `|m|²/2`.
///
/// Fails with [`DynamicsError::NonFinite`] when the value overflows `f64` (β ≳ 709); use
/// [`log_energy`] or [`normalized_energy`] there. Needs `β ∈ [0, 1e6]`, `n ≥ 1`, finite entries, no
/// zero token.
///
/// Reference: §4.1 of arXiv 2512.01868 (the energy and its β → 0 limit).
pub fn energy_excess(x: &Tokens, beta: f64) -> Result<f64> {
    let beta = check_beta(beta)?;
    let theta = unit_directions(x)?;
    let n = theta.ncols();
    let m = theta.column_mean();
    let mut value = 0.5 * m.norm_squared();
    if beta > 0.0 {
        let c = half_sq_chords(&theta);
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                let g = 1.0 - c[(i, j)];
                s += g * chi(beta * g);
            }
        }
        value += s / (2.0 * (n * n) as f64);
    }
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DynamicsError::NonFinite { what: "energy excess (e^β overflows; use log_energy)" })
    }
}

/// The time derivative of the energy along SA or USA at a configuration; see [`energy_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnergyRate {
    /// `dE_β/dt` in physical time; `+∞` when it overflows `f64` (β ≳ 700 for SA, β ≳ 350 for USA).
    /// Also the rate of [`energy_excess`], and the right value at β = 0.
    pub rate: f64,
    /// `log(dE_β/dt)`, finite for every β; `−∞` exactly at a stationary point.
    pub log_rate: f64,
    /// The rate of [`normalized_energy`] on the clock of the corresponding field: `dĒ_β/dt` for SA
    /// ([`crate::Sa`]), `dĒ_β/dτ` in rescaled time `τ = e^β t` for USA
    /// ([`crate::Usa`] with [`crate::Clock::Rescaled`]). Finite for every β.
    pub normalized_rate: f64,
}

/// The exact rate of change of the energy along SA ([`Normalization::Softmax`]) or USA
/// ([`Normalization::Uniform`]) at the directions `θ_i = x_i/|x_i|`. Non-negative: the energy is a
/// Lyapunov function of both flows.
///
/// # Derivation
/// Write `G_ij = ⟨x_i,x_j⟩`, `K_ij = e^{βG_ij}` (symmetric), `B_i = Σ_j K_ij x_j`. Then
/// ```text
/// dE/dt = (1/(2βn²)) Σ_ij β K_ij (⟨ẋ_i,x_j⟩ + ⟨x_i,ẋ_j⟩)     (chain rule)
///       = (1/n²) Σ_ij K_ij ⟨ẋ_i,x_j⟩                           (swap i, j; K symmetric)
///       = (1/n²) Σ_i ⟨ẋ_i, B_i⟩ = (1/n²) Σ_i ⟨ẋ_i, P_{x_i} B_i⟩  (ẋ_i is tangent at x_i).
/// ```
/// SA has `ẋ_i = P_{x_i} B_i / Z_i` with `Z_i = Σ_k K_ik`, USA has `ẋ_i = P_{x_i} B_i / n`, so
/// ```text
/// SA:  dE/dt = (1/n²) Σ_i |P_{x_i} B_i|² / Z_i  ≥ 0,
/// USA: dE/dt = (1/n³) Σ_i |P_{x_i} B_i|²        ≥ 0,
/// ```
/// with equality exactly at the stationary points of each flow (the same set). At β = 0 both are
/// `⟨ṁ, m⟩ = d(|m|²/2)/dt`, the rate of the excess `E − 1/(2β) → |m|²/2`.
///
/// # Stable evaluation
/// With the shifted kernel `K̃_ij = e^{−β c_ij} = e^{−β} K_ij` (`c_ij = 1 − G_ij ≥ 0`), `B̃_i = e^{−β}B_i`,
/// `Z̃_i = e^{−β} Z_i ∈ [1, n]` and `S = Σ_i |P B̃_i|²/Z̃_i` (SA) or `Σ_i |P B̃_i|²` (USA):
/// `dE/dt = e^β S/n²` (SA), `e^{2β} S/n³` (USA), so `log dE/dt = β + log S − 2 log n` (SA) and
/// `2β + log S − 3 log n` (USA). As `Ē = 2β e^{−β} E`, `dĒ/dt = 2β S/n²` (SA) and, on the clock
/// `τ = e^β t`, `dĒ/dτ = 2β S/n³` (USA). The tangent vectors are formed as
/// `P_{θ_i} B̃_i = Σ_j K̃_ij ((θ_j − θ_i) + c_ij θ_i)` (because `P_{θ_i} θ_j = θ_j − θ_i + (1 − G_ij) θ_i`)
/// rather than by projecting the `O(n)` vector `B̃_i`, so near collapse, where `P B̃_i` is tiny, no
/// digits cancel.
///
/// Needs `β ∈ [0, 1e6]`, `n ≥ 1`, finite entries, no zero token.
///
/// Reference: the monotonicity of the energy along SA and USA, §4.1 (proof of Theorem 1), and the
/// staircase of §5.2 of arXiv 2512.01868.
pub fn energy_rate(x: &Tokens, beta: f64, normalization: Normalization) -> Result<EnergyRate> {
    let beta = check_beta(beta)?;
    let theta = unit_directions(x)?;
    let (d, n) = theta.shape();
    let c = half_sq_chords(&theta);
    let mut t = vec![0.0; d];
    let mut s = 0.0;
    for i in 0..n {
        t.iter_mut().for_each(|v| *v = 0.0);
        let mut z = 0.0;
        let xi = theta.column(i);
        for j in 0..n {
            let w = (-beta * c[(i, j)]).exp();
            z += w;
            if j == i {
                continue; // P_{θ_i} θ_i = 0
            }
            let xj = theta.column(j);
            let cij = c[(i, j)];
            for k in 0..d {
                t[k] += w * ((xj[k] - xi[k]) + cij * xi[k]);
            }
        }
        let sq: f64 = t.iter().map(|v| v * v).sum();
        s += match normalization {
            Normalization::Softmax => sq / z,
            Normalization::Uniform => sq,
        };
    }
    let nf = n as f64;
    let (log_rate, normalized_rate) = match normalization {
        Normalization::Softmax => (beta + s.ln() - 2.0 * nf.ln(), 2.0 * beta * s / (nf * nf)),
        Normalization::Uniform => (2.0 * beta + s.ln() - 3.0 * nf.ln(), 2.0 * beta * s / (nf * nf * nf)),
    };
    Ok(EnergyRate { rate: log_rate.exp(), log_rate, normalized_rate })
}

#[cfg(test)]
mod tests {
    use super::chi;

    #[test]
    fn chi_matches_its_definition_away_from_zero_and_its_series_near_it() {
        for &y in &[-3.0, -0.5, 0.5, 2.0, 10.0] {
            let direct = (f64::exp(y) - 1.0 - y) / y;
            assert!((chi(y) - direct).abs() <= 1e-14 * direct.abs(), "y = {y}");
        }
        // χ(y) = y/2 + y²/6 + O(y³).
        for &y in &[1e-8, -1e-8, 1e-3] {
            let series = y / 2.0 + y * y / 6.0 + y * y * y / 24.0 + y * y * y * y / 120.0;
            assert!((chi(y) - series).abs() <= 1e-14 * series.abs(), "y = {y}");
        }
        assert_eq!(chi(0.0), 0.0);
        // Continuity across the switch at |y| = 1/2: the two branches agree to the expm1 branch's
        // cancellation loss (a factor ≲ 11 at y = 1/2, so ~11ε), far inside 1e-13.
        for &y in &[0.5f64, -0.5] {
            let below = chi(y * (1.0 - 1e-15));
            assert!((chi(y) - below).abs() <= 1e-13 * chi(y).abs(), "y = {y}");
        }
    }
}
