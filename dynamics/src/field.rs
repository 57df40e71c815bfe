//! Vector fields of the attention flows: SA, USA, Pre-LN, Peri-LN, the Kuramoto angle form and
//! hardmax.
//!
//! Every field evaluates into a caller-owned output and keeps its scratch buffers between calls, so
//! one velocity evaluation allocates nothing once the buffers have the right shape. All
//! exponentials are shifted so that the largest exponent is 0: the fields stay finite for any
//! admissible β (up to [`MAX_BETA`]).

use nalgebra::{DMatrix, DVector};

use crate::error::{check_range, DynamicsError, Result};
use crate::tokens::Tokens;

/// Largest accepted inverse temperature. Beyond it `β(⟨x,y⟩ − 1)` underflows `exp` for any pair
/// whose inner product differs from 1 by more than ~1e-3, so the flow is hardmax to double
/// precision and [`Hardmax`] is the field to use.
pub const MAX_BETA: f64 = 1e6;

/// Largest β for which USA in physical time is representable: `e^β` overflows `f64` at ≈ 709.78.
pub const MAX_BETA_PHYSICAL_USA: f64 = 700.0;

/// Validates an inverse temperature.
pub fn check_beta(beta: f64) -> Result<f64> {
    check_range("beta", beta, 0.0, MAX_BETA, "a finite number in [0, 1e6]")
}

/// The state space a field lives on; integrators use it to decide how to stay on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manifold {
    /// Each column is a unit vector: `(S^{d−1})^n`.
    Sphere,
    /// Columns are free in `R^d` (Pre-LN, Peri-LN).
    Euclidean,
    /// A `1 × n` matrix of angles (the Kuramoto form); angles are not wrapped.
    Angles,
}

impl Manifold {
    pub fn name(self) -> &'static str {
        match self {
            Manifold::Sphere => "the sphere",
            Manifold::Euclidean => "Euclidean space",
            Manifold::Angles => "the torus of angles",
        }
    }
}

/// An autonomous vector field on configurations of `n` tokens.
pub trait VectorField {
    /// Where the state lives.
    fn manifold(&self) -> Manifold;
    /// Writes the velocity at `x` into `out` (same shape as `x`).
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens);
}

impl<F: VectorField + ?Sized> VectorField for &mut F {
    fn manifold(&self) -> Manifold {
        (**self).manifold()
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        (**self).velocity(x, out)
    }
}

/// How attention weights are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// Softmax: weights `e^{β⟨x_i,x_j⟩}/Z_i` (SA).
    Softmax,
    /// Uniform: weights `e^{β⟨x_i,x_j⟩}/n` (USA).
    Uniform,
}

/// Which clock a USA-type field runs on.
///
/// USA weights carry a common factor `e^β` that overflows near β ≈ 709. In rescaled time
/// `τ = e^β t` the weights are `e^{β(⟨x_i,x_j⟩−1)}/n ≤ 1/n` and stay finite for every β.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Physical time `t`; needs β ≤ [`MAX_BETA_PHYSICAL_USA`].
    Physical,
    /// Rescaled time `τ = e^β t`.
    Rescaled,
}

/// Scratch buffers and the shared computation of every attention field: the attention vectors
/// `A_i = Σ_j w_ij θ_j` of a configuration of directions `θ`.
#[derive(Debug, Clone)]
pub struct AttentionKernel {
    beta: f64,
    normalization: Normalization,
    gram: DMatrix<f64>,
    /// Column `i` holds the weights of row `i` (`w_ij` at `(j, i)`), so `A = Θ·W` is one product.
    weights: DMatrix<f64>,
}

impl AttentionKernel {
    pub fn new(beta: f64, normalization: Normalization) -> Result<Self> {
        Ok(Self {
            beta: check_beta(beta)?,
            normalization,
            gram: DMatrix::zeros(0, 0),
            weights: DMatrix::zeros(0, 0),
        })
    }

    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// The weights of the last [`Self::attend`] call: `(j, i)` holds `w_ij`. For
    /// [`Normalization::Uniform`] these are in rescaled form, `e^{β(⟨θ_i,θ_j⟩ − 1)}/n`.
    pub fn weights_transposed(&self) -> &DMatrix<f64> {
        &self.weights
    }

    /// The Gram matrix of the last [`Self::attend`] call.
    pub fn gram(&self) -> &DMatrix<f64> {
        &self.gram
    }

    /// Writes `A_i` into column `i` of `out`. For softmax each row is shifted by its own maximum;
    /// for uniform weights the shift is the constant 1 (the factor `e^β` the caller accounts for),
    /// which keeps the weights `≤ 1/n` on the sphere.
    pub fn attend(&mut self, theta: &Tokens, out: &mut Tokens) {
        let n = theta.ncols();
        if self.gram.shape() != (n, n) {
            self.gram = DMatrix::zeros(n, n);
            self.weights = DMatrix::zeros(n, n);
        }
        self.gram.gemm_tr(1.0, theta, theta, 0.0);
        let beta = self.beta;
        for i in 0..n {
            let row = self.gram.column(i); // symmetric: column i is row i
            let mut col = self.weights.column_mut(i);
            match self.normalization {
                Normalization::Softmax => {
                    let m = row.max();
                    let mut z = 0.0;
                    for j in 0..n {
                        let w = (beta * (row[j] - m)).exp();
                        col[j] = w;
                        z += w;
                    }
                    col /= z;
                }
                Normalization::Uniform => {
                    let inv_n = 1.0 / n as f64;
                    for j in 0..n {
                        col[j] = (beta * (row[j] - 1.0)).exp() * inv_n;
                    }
                }
            }
        }
        // One matrix–vector product per token rather than one `Θ·W` gemm: nalgebra hands a large
        // gemm to matrixmultiply, which allocates a packing buffer on every call, and the hot loop
        // must not allocate. gemv is a sequence of column axpys and allocates nothing.
        for (i, mut col) in out.column_iter_mut().enumerate() {
            col.gemv(1.0, theta, &self.weights.column(i), 0.0);
        }
    }
}

/// Replaces each column `v_i` of `v` by its tangent projection `P_{x_i} v_i = v_i − ⟨x_i,v_i⟩x_i`.
pub fn project_tangent(x: &Tokens, v: &mut Tokens) {
    for (xi, mut vi) in x.column_iter().zip(v.column_iter_mut()) {
        let c = xi.dot(&vi);
        vi.axpy(-c, &xi, 1.0);
    }
}

/// Self-attention dynamics (SA): `ẋ_i = P_{x_i}(Σ_j softmax_j(β⟨x_i,x_j⟩) x_j)`.
#[derive(Debug, Clone)]
pub struct Sa {
    kernel: AttentionKernel,
}

impl Sa {
    pub fn new(beta: f64) -> Result<Self> {
        Ok(Self { kernel: AttentionKernel::new(beta, Normalization::Softmax)? })
    }
    pub fn beta(&self) -> f64 {
        self.kernel.beta
    }
}

impl VectorField for Sa {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        self.kernel.attend(x, out);
        project_tangent(x, out);
    }
}

/// Unnormalised self-attention (USA): `ẋ_i = P_{x_i}((1/n) Σ_j e^{β⟨x_i,x_j⟩} x_j)`, on the
/// chosen [`Clock`].
#[derive(Debug, Clone)]
pub struct Usa {
    kernel: AttentionKernel,
    clock: Clock,
    scale: f64,
}

impl Usa {
    pub fn new(beta: f64, clock: Clock) -> Result<Self> {
        let kernel = AttentionKernel::new(beta, Normalization::Uniform)?;
        let scale = match clock {
            Clock::Rescaled => 1.0,
            Clock::Physical => {
                check_range(
                    "beta",
                    beta,
                    0.0,
                    MAX_BETA_PHYSICAL_USA,
                    "β ≤ 700 for USA in physical time (use Clock::Rescaled)",
                )?;
                beta.exp()
            }
        };
        Ok(Self { kernel, clock, scale })
    }
    pub fn beta(&self) -> f64 {
        self.kernel.beta
    }
    pub fn clock(&self) -> Clock {
        self.clock
    }
}

impl VectorField for Usa {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        self.kernel.attend(x, out);
        project_tangent(x, out);
        if self.scale != 1.0 {
            *out *= self.scale;
        }
    }
}

/// Writes the unit directions `θ_i = x_i/|x_i|` of `x` into `theta`. A zero token keeps a zero
/// direction, so it attends with weight `e^0` and is pushed off the origin by the others.
fn directions(x: &Tokens, theta: &mut Tokens) {
    if theta.shape() != x.shape() {
        *theta = Tokens::zeros(x.nrows(), x.ncols());
    }
    theta.copy_from(x);
    for mut c in theta.column_iter_mut() {
        let r = c.norm();
        if r > 0.0 {
            c /= r;
        }
    }
}

/// Pre-LN attention with tokens free in `R^d`: `ẋ_i = A_i(θ)`, `θ = x/|x|`, with softmax weights or
/// (for [`Normalization::Uniform`]) `(1/n) e^{β⟨θ_i,θ_j⟩}` on the given clock.
#[derive(Debug, Clone)]
pub struct PreLn {
    kernel: AttentionKernel,
    scale: f64,
    theta: Tokens,
}

impl PreLn {
    pub fn new(beta: f64, normalization: Normalization, clock: Clock) -> Result<Self> {
        let kernel = AttentionKernel::new(beta, normalization)?;
        let scale = match (normalization, clock) {
            (Normalization::Uniform, Clock::Physical) => {
                check_range(
                    "beta",
                    beta,
                    0.0,
                    MAX_BETA_PHYSICAL_USA,
                    "β ≤ 700 for unnormalised Pre-LN in physical time",
                )?;
                beta.exp()
            }
            _ => 1.0,
        };
        Ok(Self { kernel, scale, theta: Tokens::zeros(0, 0) })
    }
}

impl VectorField for PreLn {
    fn manifold(&self) -> Manifold {
        Manifold::Euclidean
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        directions(x, &mut self.theta);
        self.kernel.attend(&self.theta, out);
        if self.scale != 1.0 {
            *out *= self.scale;
        }
    }
}

/// Peri-LN: inputs normalised as in Pre-LN and the attention output normalised too, so each
/// `ẋ_i = A_i/|A_i|` is a unit vector.
#[derive(Debug, Clone)]
pub struct PeriLn {
    kernel: AttentionKernel,
    theta: Tokens,
}

impl PeriLn {
    pub fn new(beta: f64) -> Result<Self> {
        Ok(Self { kernel: AttentionKernel::new(beta, Normalization::Softmax)?, theta: Tokens::zeros(0, 0) })
    }
}

impl VectorField for PeriLn {
    fn manifold(&self) -> Manifold {
        Manifold::Euclidean
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        directions(x, &mut self.theta);
        self.kernel.attend(&self.theta, out);
        for mut c in out.column_iter_mut() {
            let r = c.norm();
            if r > 0.0 {
                c /= r;
            }
        }
    }
}

/// The Kuramoto form for `d = 2` on a `1 × n` matrix of angles:
/// `θ̇_i = −(1/N_i) Σ_j e^{β cos(θ_i−θ_j)} sin(θ_i−θ_j)` with `N_i = n` (USA) or `Z_i` (SA).
#[derive(Debug, Clone)]
pub struct Kuramoto {
    beta: f64,
    normalization: Normalization,
    scale: f64,
}

impl Kuramoto {
    pub fn new(beta: f64, normalization: Normalization, clock: Clock) -> Result<Self> {
        let beta = check_beta(beta)?;
        let scale = match (normalization, clock) {
            (Normalization::Uniform, Clock::Physical) => {
                check_range("beta", beta, 0.0, MAX_BETA_PHYSICAL_USA, "β ≤ 700 for USA in physical time")?;
                beta.exp()
            }
            _ => 1.0,
        };
        Ok(Self { beta, normalization, scale })
    }
}

impl VectorField for Kuramoto {
    fn manifold(&self) -> Manifold {
        Manifold::Angles
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        let n = x.ncols();
        for i in 0..n {
            let (mut num, mut z) = (0.0, 0.0);
            for j in 0..n {
                let delta = x[(0, i)] - x[(0, j)];
                // Shifted by the maximum of cos, which is 1 (at j = i), in both normalisations.
                let w = (self.beta * (delta.cos() - 1.0)).exp();
                num += w * delta.sin();
                z += w;
            }
            let denom = match self.normalization {
                Normalization::Softmax => z,
                Normalization::Uniform => n as f64,
            };
            out[(0, i)] = -self.scale * num / denom;
        }
    }
}

/// The hardmax limit β → ∞ with no self-attention: `ẋ_i = P_{x_i}(x_{j*})`,
/// `j* = argmax_{j≠i} ⟨x_i,x_j⟩`. Ties (a measure-zero event) go to the smallest index.
#[derive(Debug, Clone, Default)]
pub struct Hardmax {
    gram: DMatrix<f64>,
}

impl Hardmax {
    pub fn new() -> Self {
        Self::default()
    }
}

impl VectorField for Hardmax {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere
    }
    fn velocity(&mut self, x: &Tokens, out: &mut Tokens) {
        let n = x.ncols();
        if self.gram.shape() != (n, n) {
            self.gram = DMatrix::zeros(n, n);
        }
        self.gram.gemm_tr(1.0, x, x, 0.0);
        for i in 0..n {
            let best = (0..n)
                .filter(|&j| j != i)
                .max_by(|&a, &b| self.gram[(a, i)].total_cmp(&self.gram[(b, i)]).then(b.cmp(&a)));
            match best {
                Some(j) => {
                    let c = self.gram[(j, i)];
                    for k in 0..x.nrows() {
                        out[(k, i)] = x[(k, j)] - c * x[(k, i)];
                    }
                }
                None => out.column_mut(i).fill(0.0),
            }
        }
    }
}

/// Evaluates `field` at `x` into a fresh matrix, after checking shape and finiteness. The checked
/// entry point for callers outside the integrators' hot loop.
pub fn velocity_checked(field: &mut dyn VectorField, x: &Tokens) -> Result<Tokens> {
    crate::tokens::validate(x)?;
    if field.manifold() == Manifold::Angles && x.nrows() != 1 {
        return Err(DynamicsError::ShapeMismatch {
            what: "angle configuration",
            expected: "1 × n".into(),
            got: format!("{}×{}", x.nrows(), x.ncols()),
        });
    }
    let mut out = Tokens::zeros(x.nrows(), x.ncols());
    field.velocity(x, &mut out);
    if out.iter().any(|v| !v.is_finite()) {
        return Err(DynamicsError::NonFinite { what: "velocity" });
    }
    Ok(out)
}

/// The mean token `(1/n) Σ x_i`.
pub fn mean_token(x: &Tokens) -> DVector<f64> {
    x.column_mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::uniform_sphere_seeded;

    #[test]
    fn kernel_weights_are_normalised_and_bounded() {
        let x = uniform_sphere_seeded(7, 3, 1).unwrap();
        let mut out = Tokens::zeros(3, 7);
        for &beta in &[0.0, 2.0, 1e3] {
            let mut soft = AttentionKernel::new(beta, Normalization::Softmax).unwrap();
            soft.attend(&x, &mut out);
            for c in soft.weights_transposed().column_iter() {
                // A sum of 7 weights in (0, 1]: 7ε.
                assert!((c.sum() - 1.0).abs() <= 7.0 * f64::EPSILON);
                assert!(c.iter().all(|&w| (0.0..=1.0).contains(&w)));
            }
            let mut uni = AttentionKernel::new(beta, Normalization::Uniform).unwrap();
            uni.attend(&x, &mut out);
            // Rescaled uniform weights e^{β(⟨⟩−1)}/n ≤ 1/n, with equality on the diagonal up to
            // |x_i|² − 1 = O(dε) in the exponent, multiplied by β: (β·2dε + 2ε)/n.
            let w = uni.weights_transposed();
            let tol = (beta * 6.0 * f64::EPSILON + 2.0 * f64::EPSILON) / 7.0;
            for i in 0..7 {
                assert!((w[(i, i)] - 1.0 / 7.0).abs() <= tol);
                assert!(w.column(i).iter().all(|&v| v <= 1.0 / 7.0 + tol));
            }
        }
    }

    #[test]
    fn hardmax_breaks_ties_to_the_smallest_index_and_handles_one_token() {
        // Token 0 at e1 is equidistant from tokens 1 and 2.
        let x = Tokens::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, 0.0, -1.0]);
        let v = velocity_checked(&mut Hardmax::new(), &x).unwrap();
        assert_eq!(v.column(0).as_slice(), &[0.0, 1.0]);
        let one = Tokens::from_column_slice(2, 1, &[1.0, 0.0]);
        assert_eq!(velocity_checked(&mut Hardmax::new(), &one).unwrap(), Tokens::zeros(2, 1));
    }

    #[test]
    fn pre_ln_gives_a_zero_token_a_zero_direction() {
        // A zero token attends with weight e^0 to every direction and moves off the origin.
        let x = Tokens::from_column_slice(2, 3, &[0.0, 0.0, 2.0, 0.0, 0.0, 3.0]);
        let mut f = PreLn::new(1.0, Normalization::Softmax, Clock::Physical).unwrap();
        let v = velocity_checked(&mut f, &x).unwrap();
        // Weights 1/3 each on directions (0,0), (1,0), (0,1).
        assert!((v[(0, 0)] - 1.0 / 3.0).abs() <= 4.0 * f64::EPSILON);
        assert!((v[(1, 0)] - 1.0 / 3.0).abs() <= 4.0 * f64::EPSILON);
    }

    #[test]
    fn buffers_follow_a_change_of_shape() {
        let mut sa = Sa::new(1.0).unwrap();
        for (n, d) in [(3, 2), (6, 4), (2, 5)] {
            let x = uniform_sphere_seeded(n, d, 9).unwrap();
            let v = velocity_checked(&mut sa, &x).unwrap();
            assert_eq!(v.shape(), (d, n));
        }
    }
}
