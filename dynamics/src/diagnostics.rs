//! Diagnostics of a configuration, written once and applied alike to simulated tokens and to the
//! normalised hidden states of real models.
//!
//! Pairwise quantities range over unordered pairs `i < j`: the diagonal `⟨x_i,x_i⟩ = 1` is never
//! counted (the published Figure 1 counted it, which inflates the mass at 1 by `1/n`).
//!
//! Beyond the pairwise statistics this module holds the geometric diagnostics (diameter, largest
//! gap `1 − ⟨x_i,x_j⟩`, single-linkage clusters); the submodules hold the interaction energy and
//! its rate ([`energy`]), the exact open-hemisphere test ([`hemisphere`]) and the fit of a
//! contraction law to a sequence of layers ([`contraction`]). Their items are re-exported here.
//!
//! Sphere diagnostics (everything that reads `1 − ⟨x_i,x_j⟩` as a geometric gap) act on the
//! directions `x_i/|x_i|`: a numerical scheme's drift off the sphere, or a caller who forgot to
//! normalise hidden states, then cannot change the answer, and the only refusal is a zero token.

pub mod contraction;
pub mod energy;
pub mod hemisphere;

use nalgebra::DMatrix;
use serde::Serialize;

use crate::error::{DynamicsError, Result};
use crate::tokens::Tokens;

pub use contraction::{fit_contraction, fit_contraction_times, ContractionFit, Law, LinearFit};
pub use energy::{energy_excess, energy_rate, log_energy, normalized_energy, EnergyRate};
pub use hemisphere::{open_hemisphere, Hemisphere};

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

/// Refuses configurations with fewer than two tokens, for quantities defined on pairs.
fn check_pairs(x: &Tokens) -> Result<()> {
    if x.ncols() < 2 {
        return Err(DynamicsError::InvalidSize {
            name: "n",
            value: x.ncols(),
            allowed: "at least 2 tokens for pairwise quantities",
        });
    }
    Ok(())
}

/// The unit directions `x_i/|x_i|` of a finite, non-empty configuration; a zero token is refused
/// because it has no direction.
pub(crate) fn unit_directions(x: &Tokens) -> Result<Tokens> {
    let mut theta = x.clone();
    crate::tokens::normalize_columns(&mut theta)?;
    Ok(theta)
}

/// `c_ij = |θ_i − θ_j|²/2`, which equals `1 − ⟨θ_i,θ_j⟩` on the sphere, for unit columns `θ`.
///
/// Why the chord and not `1 − ⟨θ_i,θ_j⟩`: for nearly equal directions the inner product is
/// `1 − c` with `c` tiny, and `fl(⟨θ_i,θ_j⟩)` has an absolute error `~dε`, so `1 − fl⟨⟩` has a
/// relative error `~dε/c` (all digits are gone at `c ≈ 1e-16`, where it typically returns 0). The
/// differences `θ_ik − θ_jk` of nearly equal components are exact (Sterbenz), so the chord inherits
/// only the `O(ε)` absolute error of the coordinates themselves: an absolute error
/// `O(ε·|θ_i − θ_j|) = O(ε√c)` in `c`, a relative error `O(ε/√c)`. At `c = 1e-12` that is `~1e-10`
/// against `~1e-4`. (The part of the normalisation's rounding that is a common scale factor is
/// radial and, being orthogonal to the chord to first order, costs nothing; tokens already of unit
/// norm to rounding are divided by exactly 1.) For far-apart directions both formulas are equally
/// accurate, so the chord is used throughout, and the gap matrix is exactly symmetric with a zero
/// diagonal.
pub(crate) fn half_sq_chords(theta: &Tokens) -> DMatrix<f64> {
    let n = theta.ncols();
    let mut c = DMatrix::zeros(n, n);
    for i in 0..n {
        let xi = theta.column(i);
        for j in i + 1..n {
            let s: f64 = xi.iter().zip(theta.column(j).iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            c[(i, j)] = 0.5 * s;
            c[(j, i)] = 0.5 * s;
        }
    }
    c
}

/// The diameter `max_{i,j} |x_i − x_j|` of the tokens as given (the chordal diameter for tokens
/// on the sphere). Needs `n ≥ 2` and finite entries.
///
/// Reference: Theorem 3 (§4.2) of arXiv 2512.01868 bounds `|x_i(t) − x*|`, hence this diameter.
pub fn diameter(x: &Tokens) -> Result<f64> {
    crate::tokens::validate(x)?;
    check_pairs(x)?;
    let n = x.ncols();
    let mut best: f64 = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            // Differences, not |x_i|² + |x_j|² − 2⟨x_i,x_j⟩: no cancellation for nearby tokens.
            let s: f64 = x.column(i).iter().zip(x.column(j).iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            best = best.max(s);
        }
    }
    Ok(best.sqrt())
}

/// The largest gap `max_{i,j} (1 − ⟨θ_i,θ_j⟩)` between the directions `θ_i = x_i/|x_i|`, in
/// `[0, 2]`, computed as `|θ_i − θ_j|²/2`, so it keeps
/// its relative accuracy when the tokens have nearly collapsed. For unit tokens it equals
/// `diameter(x)²/2`. Needs `n ≥ 2`, finite entries and no zero token.
///
/// The chord keeps digits where `1 − ⟨⟩` cancels: the differences of nearly equal components are
/// exact (Sterbenz), so the relative error is `O(ε/√gap)` (from the rounding of the coordinates
/// themselves) instead of the `O(dε/gap)` of `1 − fl⟨x_i,x_j⟩`; at a gap of `1e-12` that is `1e-10`
/// against `1e-4`, and below `ε`, where `1 − fl⟨⟩` returns 0, the chord still has digits.
///
/// Reference: the clustering criterion `max_{ij}(1 − ⟨x_i,x_j⟩) → 0` of Theorem 1 (§4.1) of
/// arXiv 2512.01868.
pub fn max_gap(x: &Tokens) -> Result<f64> {
    check_pairs(x)?;
    let theta = unit_directions(x)?;
    Ok(half_sq_chords(&theta).max())
}

/// Mean of `1 − ⟨θ_i,θ_j⟩` over pairs `i < j` of the directions `θ_i = x_i/|x_i|`, from the
/// chords (see [`max_gap`] for why): for a nearly equiangular configuration this is `1 − ρ` with
/// its digits intact where `1 − ρ` itself would cancel. Needs `n ≥ 2`, finite entries, no zero token.
///
/// Reference: the equiangular gap `1 − ρ` of §6.1 of arXiv 2512.01868.
pub fn mean_gap(x: &Tokens) -> Result<f64> {
    check_pairs(x)?;
    let theta = unit_directions(x)?;
    let c = half_sq_chords(&theta);
    let n = c.ncols();
    let sum: f64 = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).map(|(i, j)| c[(i, j)]).sum();
    Ok(sum / (n * (n - 1) / 2) as f64)
}

/// Connected components of the graph on tokens with an edge `i — j` when
/// `⟨x_i, x_j⟩ ≥ threshold` (single linkage), each sorted ascending, listed by smallest member.
/// Inner products are those of the tokens as given (cosines for unit tokens). Needs `n ≥ 1`, finite
/// entries and a finite threshold.
///
/// Why single linkage: in the metastable regime the clusters of §5 are tight groups far apart, and
/// every linkage rule agrees on them; single linkage is the one that needs no parameter beyond the
/// threshold, does not depend on the order of the tokens, gives nested partitions as the threshold
/// moves (so counts across thresholds are comparable), and is exactly "connected components", an
/// `O(n²)` union-find. Its known weakness, chaining a continuum of tokens into one cluster, is what
/// one wants for a cluster that is still collapsing along a curve.
///
/// Reference: metastable clusters, §5.1–5.3 of arXiv 2512.01868.
pub fn clusters(x: &Tokens, threshold: f64) -> Result<Vec<Vec<usize>>> {
    crate::tokens::validate(x)?;
    if !threshold.is_finite() {
        return Err(DynamicsError::InvalidParameter {
            name: "threshold",
            value: threshold,
            allowed: "a finite inner-product threshold",
        });
    }
    let n = x.ncols();
    let gram = x.tr_mul(x);
    let mut uf = UnionFind::new(n);
    for i in 0..n {
        for j in i + 1..n {
            if gram[(i, j)] >= threshold {
                uf.union(i, j);
            }
        }
    }
    // Group by root; iterating i ascending lists groups by smallest member, members ascending.
    let mut slot = vec![usize::MAX; n];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let r = uf.find(i);
        if slot[r] == usize::MAX {
            slot[r] = out.len();
            out.push(Vec::new());
        }
        out[slot[r]].push(i);
    }
    Ok(out)
}

/// The number of single-linkage clusters at `threshold`; see [`clusters`].
pub fn cluster_count(x: &Tokens, threshold: f64) -> Result<usize> {
    Ok(clusters(x, threshold)?.len())
}

/// Disjoint-set forest with path halving and union by size.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self { parent: (0..n).collect(), size: vec![1; n] }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        if self.size[ra] < self.size[rb] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb] = ra;
        self.size[ra] += self.size[rb];
    }
}
