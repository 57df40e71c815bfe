//! Mean-field dynamics of transformers: the flows of Rigollet, "The Mean-Field Dynamics of
//! Transformers" (arXiv 2512.01868), the integrators that solve them with measured accuracy, and
//! the diagnostics applied alike to simulated tokens and to real hidden states.
//!
//! Conventions: a configuration is a `d × n` [`Tokens`] matrix with one token per column; β is the
//! inverse temperature; every random quantity is drawn from a seeded ChaCha8 generator.

pub mod diagnostics;
pub mod equiangular;
pub mod error;
pub mod field;
pub mod integrate;
pub mod quadrature;
pub mod tokens;

pub use error::{DynamicsError, Result};
pub use field::{Clock, Hardmax, Kuramoto, Manifold, Normalization, PeriLn, PreLn, Sa, Usa, VectorField};
pub use integrate::{
    integrate, integrate_to, Control, CrouchGrossman3, DormandPrince54, IntegrateConfig, Integrator, Outcome,
    Rk4, Tolerances,
};
pub use tokens::Tokens;
