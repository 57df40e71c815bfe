//! Diagnostics of a configuration, written once and applied alike to simulated tokens and to the
//! normalised hidden states of real models.
//!
//! Pairwise quantities range over unordered pairs `i < j`: the diagonal `⟨x_i,x_i⟩ = 1` is never
//! counted (the published Figure 1 counted it, which inflates the mass at 1 by `1/n`).

use serde::Serialize;

use crate::error::{DynamicsError, Result};
use crate::tokens::Tokens;

/// `⟨x_i, x_j⟩` for all `i < j`, in row-major pair order. Needs `n ≥ 2`.
pub fn pairwise_inner_products(x: &Tokens) -> Result<Vec<f64>> {
    let n = x.ncols();
    if n < 2 {
        return Err(DynamicsError::InvalidSize {
            name: "n",
            value: n,
            allowed: "at least 2 tokens for pairwise quantities",
        });
    }
    let gram = x.tr_mul(x);
    let mut out = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            out.push(gram[(i, j)]);
        }
    }
    Ok(out)
}

/// Mean of `⟨x_i, x_j⟩` over `i ≠ j`.
pub fn mean_cosine(x: &Tokens) -> Result<f64> {
    let p = pairwise_inner_products(x)?;
    Ok(p.iter().sum::<f64>() / p.len() as f64)
}

/// Fraction of pairs `i ≠ j` with `⟨x_i, x_j⟩ > threshold`.
pub fn fraction_above(x: &Tokens, threshold: f64) -> Result<f64> {
    let p = pairwise_inner_products(x)?;
    Ok(p.iter().filter(|&&v| v > threshold).count() as f64 / p.len() as f64)
}

/// A histogram with `counts.len()` equal bins on `[lo, hi]`; the last bin is closed on the right
/// and values outside `[lo, hi]` are counted in `below` / `above`, never dropped silently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub below: u64,
    pub above: u64,
}

impl Histogram {
    pub fn new(values: &[f64], lo: f64, hi: f64, bins: usize) -> Result<Self> {
        if bins == 0 {
            return Err(DynamicsError::InvalidSize { name: "bins", value: bins, allowed: "at least 1 bin" });
        }
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(DynamicsError::InvalidParameter {
                name: "hi",
                value: hi,
                allowed: "a finite upper edge above lo",
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(DynamicsError::NonFinite { what: "histogram input" });
        }
        let mut h = Self { lo, hi, counts: vec![0; bins], below: 0, above: 0 };
        let width = (hi - lo) / bins as f64;
        for &v in values {
            if v < lo {
                h.below += 1;
            } else if v > hi {
                h.above += 1;
            } else {
                let k = (((v - lo) / width) as usize).min(bins - 1);
                h.counts[k] += 1;
            }
        }
        Ok(h)
    }

    /// The `counts.len() + 1` bin edges.
    pub fn edges(&self) -> Vec<f64> {
        let bins = self.counts.len();
        (0..=bins).map(|k| self.lo + (self.hi - self.lo) * k as f64 / bins as f64).collect()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.below + self.above
    }
}
