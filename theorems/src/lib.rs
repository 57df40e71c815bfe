//! Claims of Rigollet, "The Mean-Field Dynamics of Transformers" (arXiv 2512.01868), each encoded
//! as it is stated and checked by a property search that tries to break it.
//!
//! One module per claim, named after what it claims; [`registry`] lists them in the order of the
//! claims spec. A check is deterministic (fixed seeds) and offline.

pub mod claim;
pub mod long_context_phase_transition;

pub use claim::{CaseOutcome, Claim, Context, Counterexample, Evidence, Tier, Verdict};

/// Every registered claim, in the spec's order. Adding a claim is one module and one entry here.
pub fn registry() -> Vec<Claim> {
    vec![Claim {
        id: long_context_phase_transition::ID,
        name: "long_context_phase_transition",
        label: "Theorem 7, §6.3",
        tier: Tier::Theorem,
        statement: "For equiangular unit inputs with ρ ∈ (0,1) and β_n = γ log n, one attention layer's output \
                    directions satisfy lim ⟨θ_i,θ_j⟩ = 1 for γ < 1/(1−ρ), 4ρ/(1+3ρ) for γ = 1/(1−ρ), ρ for \
                    γ > 1/(1−ρ); A_ij ~ 1/n below the critical γ and A_ij ~ n^{−γ(1−ρ)} above it.",
        check: long_context_phase_transition::check,
        replay: long_context_phase_transition::replay,
    }]
}

/// Looks a claim up by id, case-insensitively.
pub fn find(id: &str) -> Option<Claim> {
    registry().into_iter().find(|c| c.id.eq_ignore_ascii_case(id))
}
