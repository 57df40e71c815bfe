//! Which contraction law a sequence of layers follows: exponential `y_k ≈ e^{a + bk}` (the Post-LN
//! prediction) or power `y_k ≈ e^a k^b` (Pre-LN), where `y_k = 1 − mean_{i≠j}⟨x_i,x_j⟩` at layer or
//! time `k`.
//!
//! Both laws are straight lines in log space, `log y = a + b·k` and `log y = a + b·log k`, fitted by
//! ordinary least squares on the same points. Since the response `log y` is the same for both, the
//! two fits share the total sum of squares, and comparing their residual errors is the same as
//! comparing their `R²`.
//!
//! Reference: §6.2 (Figure 4) of arXiv 2512.01868: `1 − ρ(t) ~ e^{−2t}` for Post-LN and `~ 1/t²`
//! for Pre-LN.

use serde::Serialize;

use crate::error::{DynamicsError, Result};

/// An ordinary least-squares line `v ≈ intercept + slope·u`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinearFit {
    pub intercept: f64,
    pub slope: f64,
    /// `1 − SS_res/SS_tot`; 1 when the data are fitted exactly (including constant data).
    pub r_squared: f64,
    /// `sqrt(SS_res/m)` over the `m` points, in units of `log y`.
    pub rmse: f64,
}

/// A contraction law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Law {
    /// `log y` linear in `k`.
    Exponential,
    /// `log y` linear in `log k`.
    Power,
}

/// Both fits, and the law with the smaller residual (ties go to [`Law::Exponential`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ContractionFit {
    /// `log y = intercept + slope·k`: the rate is `−slope` per layer.
    pub exponential: LinearFit,
    /// `log y = intercept + slope·log k`: the exponent is `slope`.
    pub power: LinearFit,
    pub better: Law,
    /// How many points entered the fits (points at `k = 0` are excluded; see [`fit_contraction`]).
    pub points: usize,
}

/// Least squares through `(u_m, v_m)`, on centred data (no cancellation from large means). The
/// caller guarantees at least 2 points and distinct `u`.
fn least_squares(u: &[f64], v: &[f64]) -> LinearFit {
    let m = u.len() as f64;
    let (ub, vb) = (u.iter().sum::<f64>() / m, v.iter().sum::<f64>() / m);
    let (mut suu, mut suv, mut svv) = (0.0, 0.0, 0.0);
    for (a, b) in u.iter().zip(v) {
        suu += (a - ub) * (a - ub);
        suv += (a - ub) * (b - vb);
        svv += (b - vb) * (b - vb);
    }
    let slope = suv / suu;
    let intercept = vb - slope * ub;
    let ss_res: f64 = u.iter().zip(v).map(|(a, b)| (b - intercept - slope * a).powi(2)).sum();
    let r_squared = if svv > 0.0 { 1.0 - ss_res / svv } else { 1.0 };
    LinearFit { intercept, slope, r_squared, rmse: (ss_res / m).sqrt() }
}

/// Fits both laws to `values[m] = y_k` at layers `k = k0 + m`. The point `k = 0` (if `k0 = 0`) is
/// left out of both fits, because `log k` is undefined there and the two laws must be compared on
/// the same points. Needs at least 3 points with `k ≥ 1`, each `y_k` finite and `> 0`; a
/// non-positive value is refused with an error naming its layer.
///
/// Reference: §6.2 of arXiv 2512.01868.
pub fn fit_contraction(k0: usize, values: &[f64]) -> Result<ContractionFit> {
    if let Some(m) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(DynamicsError::InvalidSize {
            name: "layer",
            value: k0 + m,
            allowed: "layers whose y_k = 1 − mean cosine is finite and > 0 (log-space fits)",
        });
    }
    let times: Vec<f64> = (0..values.len()).map(|m| (k0 + m) as f64).collect();
    fit_contraction_times(&times, values)
}

/// [`fit_contraction`] at arbitrary times: `values[m] = y(times[m])`. Points at `t = 0` are left out
/// of both fits; every other time must be finite and `> 0`, the times distinct and at least 3
/// remaining. A non-positive value is refused with an error naming its index.
pub fn fit_contraction_times(times: &[f64], values: &[f64]) -> Result<ContractionFit> {
    if times.len() != values.len() {
        return Err(DynamicsError::ShapeMismatch {
            what: "contraction fit (times and values)",
            expected: format!("{} values", times.len()),
            got: format!("{}", values.len()),
        });
    }
    if let Some(m) = times.iter().position(|t| !(t.is_finite() && *t >= 0.0)) {
        return Err(DynamicsError::InvalidParameter {
            name: "time",
            value: times[m],
            allowed: "finite, non-negative times",
        });
    }
    if let Some(m) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(DynamicsError::InvalidSize {
            name: "index of a non-positive or non-finite value",
            value: m,
            allowed: "values y > 0 (log-space fits)",
        });
    }
    let (t, logy): (Vec<f64>, Vec<f64>) =
        times.iter().zip(values).filter(|(t, _)| **t > 0.0).map(|(t, y)| (*t, y.ln())).unzip();
    if t.len() < 3 {
        return Err(DynamicsError::InvalidSize {
            name: "points",
            value: t.len(),
            allowed: "at least 3 points with k ≥ 1 (two fitted parameters, one degree of freedom)",
        });
    }
    let mut sorted = t.clone();
    sorted.sort_by(f64::total_cmp);
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(DynamicsError::InvalidParameter {
            name: "time",
            value: sorted.windows(2).find(|w| w[0] == w[1]).map_or(f64::NAN, |w| w[0]),
            allowed: "distinct times",
        });
    }
    let logt: Vec<f64> = t.iter().map(|v| v.ln()).collect();
    let exponential = least_squares(&t, &logy);
    let power = least_squares(&logt, &logy);
    let better = if power.rmse < exponential.rmse { Law::Power } else { Law::Exponential };
    Ok(ContractionFit { exponential, power, better, points: t.len() })
}
