//! The one error type of `dynamics`: every constructor and integrator validates its input and names
//! the offending parameter instead of panicking.

use thiserror::Error;

/// Why a `dynamics` operation refused its input or could not finish.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DynamicsError {
    /// A scalar parameter outside its allowed range (including NaN and infinities).
    #[error("parameter `{name}` = {value} is out of range: expected {allowed}")]
    InvalidParameter { name: &'static str, value: f64, allowed: &'static str },
    /// An integer size outside its allowed range.
    #[error("size `{name}` = {value} is out of range: expected {allowed}")]
    InvalidSize { name: &'static str, value: usize, allowed: &'static str },
    /// Two shapes that must agree do not.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch { what: &'static str, expected: String, got: String },
    /// A NaN or infinity in input data or produced during integration.
    #[error("non-finite value in {what}")]
    NonFinite { what: &'static str },
    /// A token that must be normalised has zero norm.
    #[error("token {index} is the zero vector and has no direction")]
    ZeroVector { index: usize },
    /// The adaptive integrator could not meet its tolerance.
    #[error("step size underflow at t = {t}: the step fell below {h_min} without meeting the tolerance")]
    StepSizeUnderflow { t: f64, h_min: f64 },
    /// The integration exceeded its budget of steps.
    #[error("step budget of {max_steps} exhausted at t = {t}")]
    TooManySteps { max_steps: usize, t: f64 },
    /// The method cannot be applied to this state space.
    #[error("{method} cannot integrate a field on {manifold}")]
    UnsupportedManifold { method: &'static str, manifold: &'static str },
    /// An external solver (ode_solvers, the LP solver) failed.
    #[error("{solver} failed: {reason}")]
    Solver { solver: &'static str, reason: String },
}

pub type Result<T> = std::result::Result<T, DynamicsError>;

/// Checks that `value` is finite and lies in `[lo, hi]`.
pub fn check_range(name: &'static str, value: f64, lo: f64, hi: f64, allowed: &'static str) -> Result<f64> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(DynamicsError::InvalidParameter { name, value, allowed })
    }
}

/// Checks that `value` is finite and strictly positive.
pub fn check_positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DynamicsError::InvalidParameter { name, value, allowed: "a finite number > 0" })
    }
}
