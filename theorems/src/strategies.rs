//! Proptest strategies named after the domain. They are built by mapping (never by rejection), so
//! shrinking stays inside each claim's hypotheses; random configurations are drawn from a seed
//! rather than as raw coordinates, so shrinking changes the draw and never walks the points onto a
//! symmetric, measure-zero set.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// Which of the two sphere flows a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flow {
    Sa,
    Usa,
}

pub fn flow() -> impl Strategy<Value = Flow> {
    prop_oneof![Just(Flow::Sa), Just(Flow::Usa)]
}

/// A seed for a configuration drawn uniformly on the sphere.
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// An inverse temperature in `[0, max]`.
pub fn inverse_temperature(max: f64) -> impl Strategy<Value = f64> {
    0.0..=max
}

/// An equiangular parameter `ρ₀ ∈ [lo + margin, hi]` for `n` tokens, `lo = −1/(n−1)`, given as a
/// fraction of that interval so the strategy needs no rejection.
pub fn rho0_in(n: usize, margin: f64, hi: f64, fraction: f64) -> f64 {
    let lo = -1.0 / (n as f64 - 1.0) + margin;
    lo + fraction * (hi - lo)
}
