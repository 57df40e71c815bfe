//! Claims of Rigollet, "The Mean-Field Dynamics of Transformers" (arXiv 2512.01868), each encoded
//! as it is stated and checked by a property search that tries to break it.
//!
//! One module per claim, named after what it claims; [`registry`] lists them in the order of the
//! claims spec. A check is deterministic (fixed seeds) and offline.

pub mod claim;
pub mod energy_monotonicity;
pub mod equiangular_reduction;
pub mod global_clustering;
pub mod linearized_rates;
pub mod long_context_phase_transition;
pub mod sim;
pub mod strategies;

pub use claim::{CaseOutcome, Claim, Context, Counterexample, Evidence, Tier, Verdict};

/// Every registered claim, in the spec's order. Adding a claim is one module and one entry here.
pub fn registry() -> Vec<Claim> {
    vec![
        Claim {
            id: global_clustering::ID,
            name: "global_clustering",
            label: "Theorem 1, §4.1",
            tier: Tier::Theorem,
            statement:
                "For SA and USA, n ≥ 2, d ≥ 3, any β ≥ 0 and almost every initial condition in (S^{d−1})^n, \
                        the solution exists for all time and ‖x_i(t) − x_j(t)‖ → 0 for all i, j.",
            check: global_clustering::check,
            replay: global_clustering::replay,
        },
        Claim {
            id: equiangular_reduction::ID,
            name: "equiangular_reduction",
            label: "§6.1",
            tier: Tier::Theorem,
            statement:
                "Equiangular data stay equiangular under SA and USA, and ρ follows ρ̇ = f_SA(ρ), resp. \
                        ρ̇ = f_USA(ρ); the ODE also holds for ρ₀ ∈ (−1/(n−1), 0).",
            check: equiangular_reduction::check,
            replay: equiangular_reduction::replay,
        },
        Claim {
            id: linearized_rates::ID,
            name: "linearized_rates",
            label: "§6.1",
            tier: Tier::Theorem,
            statement:
                "With ε = 1 − ρ, ε̇ ≃ −2ε for SA and ε̇ ≃ −2e^β ε for USA: λ = 2 for SA (independent of β) \
                        and λ = 2e^β for USA; e^{λt}(1−ρ) → C_SA, C_USA in closed form.",
            check: linearized_rates::check,
            replay: linearized_rates::replay,
        },
        Claim {
            id: energy_monotonicity::ID,
            name: "energy_monotonicity",
            label: "implied invariant, §4.1",
            tier: Tier::Derived,
            statement:
                "The energy E_β = (1/(2βn²)) Σ_ij e^{β⟨x_i,x_j⟩} is non-decreasing along both SA and USA, \
                        with dE/dt = (1/n²) Σ_i |P_{x_i} B_i|²/Z_i (SA) and (1/n³) Σ_i |P_{x_i} B_i|² (USA).",
            check: energy_monotonicity::check,
            replay: energy_monotonicity::replay,
        },
        Claim {
            id: long_context_phase_transition::ID,
            name: "long_context_phase_transition",
            label: "Theorem 7, §6.3",
            tier: Tier::Theorem,
            statement:
                "For equiangular unit inputs with ρ ∈ (0,1) and β_n = γ log n, one attention layer's output \
                    directions satisfy lim ⟨θ_i,θ_j⟩ = 1 for γ < 1/(1−ρ), 4ρ/(1+3ρ) for γ = 1/(1−ρ), ρ for \
                    γ > 1/(1−ρ); A_ij ~ 1/n below the critical γ and A_ij ~ n^{−γ(1−ρ)} above it.",
            check: long_context_phase_transition::check,
            replay: long_context_phase_transition::replay,
        },
    ]
}

/// Looks a claim up by id, case-insensitively.
pub fn find(id: &str) -> Option<Claim> {
    registry().into_iter().find(|c| c.id.eq_ignore_ascii_case(id))
}
