//! Integrators for the attention flows: classical RK4 and Dormand–Prince 5(4) (both re-projected
//! onto the sphere after every accepted step), the third-order Crouch–Grossman Lie-group method
//! that moves each token by exact rotations, and a driver that validates input, enforces a step
//! budget, records how far the state strayed off the sphere, and lets an observer stop early.
//!
//! Every integrator keeps its stage buffers between calls, so a step allocates nothing once the
//! buffers have the state's shape (the field's own evaluation aside).
//!
//! Reference: Rigollet, "The Mean-Field Dynamics of Transformers", arXiv 2512.01868 (the flows);
//! Hairer, Lubich & Wanner, *Geometric Numerical Integration*, §IV.4 (projection) and §IV.8
//! (Crouch–Grossman methods); Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4–II.5 (Dormand–Prince
//! and step-size control).

use crate::error::{check_positive, DynamicsError, Result};
use crate::field::{Manifold, VectorField};
use crate::tokens::{self, Tokens};

/// A fixed step is stretched to land exactly on `t_end` when the remainder exceeds it by at most
/// this relative amount. Accumulating `t ← t + h` over `N` steps of `h = T/N` misplaces the final
/// time by at most `N·u·T = N²·u·h` (`u = ε/2`), i.e. `≤ 10⁻⁶·h` for `N ≤ 1.3·10⁵`; without the
/// slack such a rounding remainder would cost an extra sliver step of size ~`10⁻¹²·h`.
pub const FIXED_STEP_SNAP: f64 = 1e-6;

/// An adaptive step may be stretched by up to this fraction to land on `t_end`, instead of leaving
/// a sliver for an extra step (the convention of Hairer's DOPRI5: `x + 1.01h > x_end`). The error
/// test then judges the stretched step like any other.
pub const ADAPTIVE_STEP_SNAP: f64 = 0.01;

/// Safety factor of the step-size controller: aim for 90 % of the tolerated error.
pub const SAFETY: f64 = 0.9;
/// Smallest factor by which one step may shrink the next.
pub const FACTOR_MIN: f64 = 0.2;
/// Largest factor by which one step may grow the next.
pub const FACTOR_MAX: f64 = 5.0;

/// Steps shorter than this multiple of `ε·max(|t|, |t_end|)` cannot advance `t` reliably (the
/// increment would lose all but a few bits when added to `t`); below it the adaptive method gives
/// up with [`DynamicsError::StepSizeUnderflow`].
pub const H_MIN_ULPS: f64 = 16.0;

/// Largest accepted distance `| |x_i| − 1 |` of an initial token from the unit sphere, per unit of
/// `ε` and as a function of `d`: normalising a column in floating point leaves
/// `| |fl(c/|c|)| − 1 | ≤ (d/2 + 2)u` and measuring it adds `(d/2 + 1)u` (`u = ε/2`, sum of `d`
/// squares, one square root, one division per entry), a total of `(d + 3)u`. We allow twice that,
/// `(d + 3)ε`: anything beyond is not rounding but a configuration that was never normalised.
pub fn sphere_tolerance(d: usize) -> f64 {
    (d as f64 + 3.0) * f64::EPSILON
}

/// A one-step method that advances a configuration in place: `x ← Φ_h(x)` for one accepted step
/// `h ≤ t_end − t`, with the step size chosen by the method itself.
///
/// Reference: Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.1 (one-step methods).
pub trait Integrator {
    /// A short human-readable name (for reports and error messages).
    fn name(&self) -> &'static str;

    /// Advances `x` from `t` by one accepted step, never beyond `t_end`, and returns the new time.
    /// The method owns its step size (fixed, or the adaptive controller's state). Requires
    /// `t < t_end`, both finite.
    fn step(&mut self, field: &mut dyn VectorField, t: f64, t_end: f64, x: &mut Tokens) -> Result<f64>;

    /// For methods that project back onto the sphere: `max_i | |x_i| − 1 |` of the last accepted
    /// step *before* the projection (the drift the projection removed). `None` for methods that do
    /// not project or when the last step was not on the sphere.
    fn pre_projection_drift(&self) -> Option<f64> {
        None
    }

    /// Forgets the state carried between steps (adaptive step size, cached stages, counters), so
    /// the next step starts afresh. Called by [`integrate`] at the start of every run.
    fn reset(&mut self) {}
}

/// Checks `t < t_end` with both finite: the contract of [`Integrator::step`].
fn check_interval(t: f64, t_end: f64) -> Result<()> {
    if !t.is_finite() {
        return Err(DynamicsError::InvalidParameter { name: "t", value: t, allowed: "a finite time" });
    }
    if !(t_end.is_finite() && t_end > t) {
        return Err(DynamicsError::InvalidParameter {
            name: "t_end",
            value: t_end,
            allowed: "a finite time greater than the current time t",
        });
    }
    Ok(())
}

/// `y ← y + a·x` over all entries (nalgebra's `axpy` is for vectors only).
#[inline]
fn axpy(y: &mut Tokens, a: f64, x: &Tokens) {
    for (yi, xi) in y.as_mut_slice().iter_mut().zip(x.as_slice()) {
        *yi += a * xi;
    }
}

/// Resizes `buf` to `d × n` if needed (the only allocation an integrator ever makes).
fn ensure_shape(buf: &mut Tokens, shape: (usize, usize)) {
    if buf.shape() != shape {
        *buf = Tokens::zeros(shape.0, shape.1);
    }
}

/// The step actually taken from `t` with proposal `h`, and whether it lands on `t_end`.
fn clip_step(h: f64, t: f64, t_end: f64, snap: f64) -> (f64, bool) {
    let remaining = t_end - t;
    if h * (1.0 + snap) >= remaining {
        (remaining, true)
    } else {
        (h, false)
    }
}

/// Normalises every column (no zero check: a column produced by a step from a unit vector has norm
/// `1 + O(h^p)`), and returns the largest `| |x_i| − 1 |` before normalising.
fn project_to_sphere(x: &mut Tokens) -> f64 {
    let mut drift: f64 = 0.0;
    for mut c in x.column_iter_mut() {
        let r = c.norm();
        drift = drift.max((r - 1.0).abs());
        if r > 0.0 && r.is_finite() {
            c /= r;
        }
    }
    drift
}

fn check_step_size(name: &'static str, h: f64) -> Result<f64> {
    check_positive(name, h)
}

// ---------------------------------------------------------------------------------------------
// RK4
// ---------------------------------------------------------------------------------------------

/// The classical fixed-step Runge–Kutta method of order 4,
/// $`x_{k+1} = x_k + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4)`$. On [`Manifold::Sphere`] every column is
/// normalised after the step; the projection moves the state by the normal component of the local
/// error, $`O(h^5)`$, so the projected method keeps order 4.
///
/// Reference: Hairer, Lubich & Wanner, *Geometric Numerical Integration*, Thm IV.4.1.
#[derive(Debug, Clone)]
pub struct Rk4 {
    h: f64,
    k: [Tokens; 4],
    tmp: Tokens,
    last_drift: Option<f64>,
}

impl Rk4 {
    /// A fixed step `h` (finite, `> 0`).
    pub fn new(h: f64) -> Result<Self> {
        let h = check_step_size("h", h)?;
        let z = || Tokens::zeros(0, 0);
        Ok(Self { h, k: [z(), z(), z(), z()], tmp: z(), last_drift: None })
    }

    /// The fixed step size.
    pub fn h(&self) -> f64 {
        self.h
    }
}

impl Integrator for Rk4 {
    fn name(&self) -> &'static str {
        "RK4"
    }

    fn step(&mut self, field: &mut dyn VectorField, t: f64, t_end: f64, x: &mut Tokens) -> Result<f64> {
        check_interval(t, t_end)?;
        let shape = x.shape();
        for k in &mut self.k {
            ensure_shape(k, shape);
        }
        ensure_shape(&mut self.tmp, shape);
        let (h, last) = clip_step(self.h, t, t_end, FIXED_STEP_SNAP);
        let [k1, k2, k3, k4] = &mut self.k;
        let tmp = &mut self.tmp;

        field.velocity(x, k1);
        tmp.copy_from(x);
        axpy(tmp, 0.5 * h, k1);
        field.velocity(tmp, k2);
        tmp.copy_from(x);
        axpy(tmp, 0.5 * h, k2);
        field.velocity(tmp, k3);
        tmp.copy_from(x);
        axpy(tmp, h, k3);
        field.velocity(tmp, k4);

        axpy(x, h / 6.0, k1);
        axpy(x, h / 3.0, k2);
        axpy(x, h / 3.0, k3);
        axpy(x, h / 6.0, k4);

        self.last_drift = (field.manifold() == Manifold::Sphere).then(|| project_to_sphere(x));
        Ok(if last { t_end } else { t + h })
    }

    fn pre_projection_drift(&self) -> Option<f64> {
        self.last_drift
    }

    fn reset(&mut self) {
        self.last_drift = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Dormand–Prince 5(4)
// ---------------------------------------------------------------------------------------------

/// Relative and absolute tolerances of an adaptive method: a step is accepted when the RMS of
/// $`\mathrm{err}_k / (\mathrm{atol} + \mathrm{rtol}\max(|y_k|, |y^{\mathrm{new}}_k|))`$ is at most 1.
#[derive(Debug, Clone, Copy, PartialEq)]
///
/// Reference: Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4, eq. (4.11).
pub struct Tolerances {
    /// Relative tolerance, finite and `> 0`.
    pub rtol: f64,
    /// Absolute tolerance, finite and `> 0`.
    pub atol: f64,
}

impl Tolerances {
    /// Both tolerances finite and `> 0`.
    pub fn new(rtol: f64, atol: f64) -> Result<Self> {
        let t = Self { rtol, atol };
        t.validate()?;
        Ok(t)
    }

    /// Checks both tolerances are finite and `> 0` (the fields are public, so every consumer
    /// re-checks).
    pub fn validate(&self) -> Result<()> {
        check_positive("rtol", self.rtol)?;
        check_positive("atol", self.atol)?;
        Ok(())
    }
}

/// Counters of an adaptive run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepStats {
    /// Steps whose error estimate met the tolerance (every step, in fixed mode).
    pub accepted: usize,
    /// Attempts thrown away and retried with a smaller step.
    pub rejected: usize,
    /// Velocity evaluations.
    pub evaluations: usize,
}

// The Dormand–Prince 5(4) tableau (Hairer–Nørsett–Wanner, Table II.5.2).
// The nodes c = (0, 1/5, 3/10, 4/5, 8/9, 1, 1) are not needed: every field is autonomous.
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
// Fifth-order weights (also the last row of A: the method is FSAL).
const B1: f64 = 35.0 / 384.0;
const B3: f64 = 500.0 / 1113.0;
const B4: f64 = 125.0 / 192.0;
const B5: f64 = -2187.0 / 6784.0;
const B6: f64 = 11.0 / 84.0;
// Fifth minus fourth order weights: the embedded error estimate.
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;

/// How [`DormandPrince54`] chooses its steps.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Adaptive { tol: Tolerances, h0: f64 },
    Fixed { h: f64 },
}

/// The Dormand–Prince 5(4) pair: seven stages, the fifth-order solution propagated (local
/// extrapolation), the embedded fourth-order solution used only to estimate the error.
///
/// Step-size control: with the scaled error
/// $`E = \big(\tfrac1N\sum_k (e_k/(\mathrm{atol}+\mathrm{rtol}\max(|y_k|,|y^{new}_k|)))^2\big)^{1/2}`$
/// the step is accepted iff $`E \le 1`$, and the next step is
/// $`h \cdot \min(5, \max(0.2, 0.9\,E^{-1/5}))`$ (no growth right after a rejection). A step that
/// must shrink below `16 ε max(|t|,|t_end|)` (or the user's [`Self::with_h_min`]) fails with
/// [`DynamicsError::StepSizeUnderflow`]. A non-finite error estimate (overflow in a trial stage)
/// counts as a rejection with the smallest factor.
///
/// On [`Manifold::Sphere`] the state is normalised after every accepted step; the next step then
/// re-evaluates its first stage at the projected point instead of reusing the last stage (FSAL is
/// used only off the sphere), so every step is exactly the projected Dormand–Prince method.
///
/// [`Self::fixed`] takes steps of a fixed size and always accepts: used to measure the order 5.
///
/// Reference: Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19–26; Hairer, Nørsett & Wanner,
/// *Solving ODEs I*, §II.4.
#[derive(Debug, Clone)]
pub struct DormandPrince54 {
    mode: Mode,
    h: f64,
    h_min: f64,
    rejected_last: bool,
    stats: StepStats,
    k: [Tokens; 7],
    y_new: Tokens,
    err: Tokens,
    /// `(t, field address)` at which `k[0]` holds the velocity of `x_cache`.
    fsal: Option<(f64, usize)>,
    x_cache: Tokens,
    last_drift: Option<f64>,
}

impl DormandPrince54 {
    fn with_mode(mode: Mode, h: f64) -> Self {
        let z = || Tokens::zeros(0, 0);
        Self {
            mode,
            h,
            h_min: 0.0,
            rejected_last: false,
            stats: StepStats::default(),
            k: [z(), z(), z(), z(), z(), z(), z()],
            y_new: z(),
            err: z(),
            fsal: None,
            x_cache: z(),
            last_drift: None,
        }
    }

    /// The adaptive method with tolerances `tol` and first trial step `h0` (all finite, `> 0`).
    pub fn new(tol: Tolerances, h0: f64) -> Result<Self> {
        tol.validate()?;
        let h0 = check_step_size("h0", h0)?;
        Ok(Self::with_mode(Mode::Adaptive { tol, h0 }, h0))
    }

    /// The fixed-step method with step `h` (finite, `> 0`): always accepts the fifth-order solution.
    pub fn fixed(h: f64) -> Result<Self> {
        let h = check_step_size("h", h)?;
        Ok(Self::with_mode(Mode::Fixed { h }, h))
    }

    /// Sets a floor `h_min ≥ 0` below which the adaptive step may not shrink (the rounding floor
    /// `16 ε max(|t|,|t_end|)` always applies as well).
    pub fn with_h_min(mut self, h_min: f64) -> Result<Self> {
        if !(h_min.is_finite() && h_min >= 0.0) {
            return Err(DynamicsError::InvalidParameter {
                name: "h_min",
                value: h_min,
                allowed: "a finite number ≥ 0",
            });
        }
        self.h_min = h_min;
        Ok(self)
    }

    /// Accepted/rejected steps and evaluations since construction or the last reset.
    pub fn stats(&self) -> StepStats {
        self.stats
    }

    /// Number of accepted steps.
    pub fn accepted(&self) -> usize {
        self.stats.accepted
    }

    /// Number of rejected steps.
    pub fn rejected(&self) -> usize {
        self.stats.rejected
    }

    /// The step size the next step will try.
    pub fn next_step_size(&self) -> f64 {
        self.h
    }

    /// One trial step of size `h` from `(t, x)`: fills `y_new` with the fifth-order solution and
    /// `err` with the difference to the fourth-order one (scaled by `h`). Assumes `k[0] = f(x)`.
    fn trial(&mut self, field: &mut dyn VectorField, x: &Tokens, h: f64) {
        let [k1, k2, k3, k4, k5, k6, k7] = &mut self.k;
        let y = &mut self.y_new;
        y.copy_from(x);
        axpy(y, h * A21, k1);
        field.velocity(y, k2);

        y.copy_from(x);
        axpy(y, h * A31, k1);
        axpy(y, h * A32, k2);
        field.velocity(y, k3);

        y.copy_from(x);
        axpy(y, h * A41, k1);
        axpy(y, h * A42, k2);
        axpy(y, h * A43, k3);
        field.velocity(y, k4);

        y.copy_from(x);
        axpy(y, h * A51, k1);
        axpy(y, h * A52, k2);
        axpy(y, h * A53, k3);
        axpy(y, h * A54, k4);
        field.velocity(y, k5);

        y.copy_from(x);
        axpy(y, h * A61, k1);
        axpy(y, h * A62, k2);
        axpy(y, h * A63, k3);
        axpy(y, h * A64, k4);
        axpy(y, h * A65, k5);
        field.velocity(y, k6);

        y.copy_from(x);
        axpy(y, h * B1, k1);
        axpy(y, h * B3, k3);
        axpy(y, h * B4, k4);
        axpy(y, h * B5, k5);
        axpy(y, h * B6, k6);
        field.velocity(y, k7);
        self.stats.evaluations += 6;

        let e = &mut self.err;
        e.fill(0.0);
        axpy(e, h * E1, k1);
        axpy(e, h * E3, k3);
        axpy(e, h * E4, k4);
        axpy(e, h * E5, k5);
        axpy(e, h * E6, k6);
        axpy(e, h * E7, k7);
    }

    /// The scaled RMS error of the last trial (NaN propagates, so a non-finite trial is rejected).
    fn error_norm(&self, x: &Tokens, tol: Tolerances) -> f64 {
        let mut sum = 0.0;
        for ((e, y0), y1) in self.err.iter().zip(x.iter()).zip(self.y_new.iter()) {
            let scale = tol.atol + tol.rtol * y0.abs().max(y1.abs());
            let r = e / scale;
            sum += r * r;
        }
        (sum / self.err.len() as f64).sqrt()
    }
}

fn field_address(field: &dyn VectorField) -> usize {
    field as *const dyn VectorField as *const () as usize
}

impl Integrator for DormandPrince54 {
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Adaptive { .. } => "Dormand–Prince 5(4)",
            Mode::Fixed { .. } => "Dormand–Prince 5 (fixed step)",
        }
    }

    fn step(&mut self, field: &mut dyn VectorField, t: f64, t_end: f64, x: &mut Tokens) -> Result<f64> {
        check_interval(t, t_end)?;
        let shape = x.shape();
        for k in &mut self.k {
            ensure_shape(k, shape);
        }
        ensure_shape(&mut self.y_new, shape);
        ensure_shape(&mut self.err, shape);
        ensure_shape(&mut self.x_cache, shape);
        let on_sphere = field.manifold() == Manifold::Sphere;
        let addr = field_address(field);

        // Reuse the last stage only when it was evaluated, by this field, at exactly this state.
        let fsal_ok = self.fsal == Some((t, addr)) && self.x_cache == *x;
        if !fsal_ok {
            let [k1, ..] = &mut self.k;
            field.velocity(x, k1);
            self.stats.evaluations += 1;
        }
        self.fsal = None;

        let t_new = match self.mode {
            Mode::Fixed { h } => {
                let (h, last) = clip_step(h, t, t_end, FIXED_STEP_SNAP);
                self.trial(field, x, h);
                self.stats.accepted += 1;
                if last {
                    t_end
                } else {
                    t + h
                }
            }
            Mode::Adaptive { tol, .. } => {
                let h_floor = self
                    .h_min
                    .max(H_MIN_ULPS * f64::EPSILON * t.abs().max(t_end.abs()))
                    .max(f64::MIN_POSITIVE);
                loop {
                    let (h, last) = clip_step(self.h, t, t_end, ADAPTIVE_STEP_SNAP);
                    self.trial(field, x, h);
                    let e = self.error_norm(x, tol);
                    if e <= 1.0 {
                        let grow = if e == 0.0 { FACTOR_MAX } else { SAFETY * e.powf(-0.2) };
                        let cap = if self.rejected_last { 1.0 } else { FACTOR_MAX };
                        self.h = h * grow.clamp(FACTOR_MIN, cap);
                        self.rejected_last = false;
                        self.stats.accepted += 1;
                        break if last { t_end } else { t + h };
                    }
                    let shrink =
                        if e.is_finite() { (SAFETY * e.powf(-0.2)).max(FACTOR_MIN) } else { FACTOR_MIN };
                    self.stats.rejected += 1;
                    self.rejected_last = true;
                    self.h = h * shrink;
                    if self.h < h_floor {
                        return Err(DynamicsError::StepSizeUnderflow { t, h_min: h_floor });
                    }
                }
            }
        };

        x.copy_from(&self.y_new);
        if on_sphere {
            self.last_drift = Some(project_to_sphere(x));
        } else {
            self.last_drift = None;
            // k7 = f(y_new) is the first stage of the next step.
            self.k.swap(0, 6);
            self.x_cache.copy_from(x);
            self.fsal = Some((t_new, addr));
        }
        Ok(t_new)
    }

    fn pre_projection_drift(&self) -> Option<f64> {
        self.last_drift
    }

    fn reset(&mut self) {
        self.h = match self.mode {
            Mode::Adaptive { h0, .. } => h0,
            Mode::Fixed { h } => h,
        };
        self.rejected_last = false;
        self.stats = StepStats::default();
        self.fsal = None;
        self.last_drift = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Crouch–Grossman 3
// ---------------------------------------------------------------------------------------------

const CG_A21: f64 = 3.0 / 4.0;
const CG_A31: f64 = 119.0 / 216.0;
const CG_A32: f64 = 17.0 / 108.0;
const CG_B1: f64 = 13.0 / 51.0;
const CG_B2: f64 = -2.0 / 3.0;
const CG_B3: f64 = 24.0 / 17.0;

/// The frozen generator of one stage, token by token: $`\Omega_i = v_i x_i^\top − x_i v_i^\top`$
/// stored as the orthonormal pair `(u_i, w_i)` of its rotation plane and its angular speed
/// $`\omega_i = |x_i|\,|v_i^\perp|`$, so that $`\Omega_i = \omega_i (w_i u_i^\top − u_i w_i^\top)`$.
#[derive(Debug, Clone)]
struct Generator {
    u: Tokens,
    w: Tokens,
    omega: Vec<f64>,
}

impl Generator {
    fn empty() -> Self {
        Self { u: Tokens::zeros(0, 0), w: Tokens::zeros(0, 0), omega: Vec::new() }
    }

    fn ensure(&mut self, shape: (usize, usize)) {
        ensure_shape(&mut self.u, shape);
        ensure_shape(&mut self.w, shape);
        if self.omega.len() != shape.1 {
            self.omega = vec![0.0; shape.1];
        }
    }

    /// Freezes the generator of velocity `v` at point `y`. Only the part of `v_i` orthogonal to
    /// `y_i` enters `v_i y_iᵀ − y_i v_iᵀ`, so it is Gram–Schmidt-orthogonalised first; this also
    /// removes the rounding-level normal component the field leaves.
    fn set(&mut self, y: &Tokens, v: &Tokens) {
        for i in 0..y.ncols() {
            let yi = y.column(i);
            let r = yi.norm();
            let mut u = self.u.column_mut(i);
            u.copy_from(&yi);
            if r > 0.0 {
                u /= r;
            }
            let mut w = self.w.column_mut(i);
            w.copy_from(&v.column(i));
            let c = u.dot(&w);
            w.axpy(-c, &u, 1.0);
            let s = w.norm();
            if s > 0.0 {
                w /= s;
            }
            self.omega[i] = r * s;
        }
    }

    /// Applies $`\exp(s\,\Omega_i)`$ to column `i` of `p`, for every `i`: a rotation by angle
    /// $`\theta = s\omega_i`$ in the plane $`(u_i, w_i)`$,
    /// $`p \mapsto p + (a(\cos\theta − 1) − b\sin\theta)\,u + (a\sin\theta + b(\cos\theta − 1))\,w`$
    /// with $`a = \langle u,p\rangle`$, $`b = \langle w,p\rangle`$; `cos θ − 1` is evaluated as
    /// `−2 sin²(θ/2)` so small angles keep their relative accuracy.
    fn rotate(&self, s: f64, p: &mut Tokens) {
        for i in 0..p.ncols() {
            let theta = s * self.omega[i];
            if theta == 0.0 {
                continue;
            }
            let (sin, half) = (theta.sin(), (0.5 * theta).sin());
            let cm1 = -2.0 * half * half;
            let u = self.u.column(i);
            let w = self.w.column(i);
            let mut pi = p.column_mut(i);
            let a = u.dot(&pi);
            let b = w.dot(&pi);
            pi.axpy(a * cm1 - b * sin, &u, 1.0);
            pi.axpy(a * sin + b * cm1, &w, 1.0);
        }
    }
}

/// The third-order Crouch–Grossman method on $`(S^{d−1})^n`$: each stage freezes, token by token,
/// the rotation generator $`\Omega_i = v_i x_i^\top − x_i v_i^\top`$ of the velocity and moves the
/// tokens only by exact rotations $`\exp(h a\,\Omega)`$, so the state stays on the sphere up to
/// rounding without any projection:
///
/// $`Y_2 = e^{h a_{21}\Omega_1} x,\quad Y_3 = e^{h a_{32}\Omega_2} e^{h a_{31}\Omega_1} x,\quad
/// x_{new} = e^{h b_3\Omega_3} e^{h b_2\Omega_2} e^{h b_1\Omega_1} x`$,
/// with $`a_{21} = 3/4`$, $`a_{31} = 119/216`$, $`a_{32} = 17/108`$, $`b = (13/51, −2/3, 24/17)`$
/// ($`c = (0, 3/4, 17/24)`$). These satisfy the four classical order-3 conditions and the extra
/// Crouch–Grossman condition $`\sum_i b_i^2 c_i + 2\sum_{i<j} b_i c_i b_j = 1/3`$ that the
/// non-commuting exponentials impose.
///
/// Each exponential is applied in closed form in $`O(d)`$ per token. The output is finally
/// renormalised column by column to wipe out the `O(ε)` rounding that three rotations leave; the
/// drift before that clean-up is reported by [`Integrator::pre_projection_drift`] and is itself a
/// few ulps (unlike RK4's `O(h⁵)`).
///
/// Only for [`Manifold::Sphere`]; other manifolds give [`DynamicsError::UnsupportedManifold`].
///
/// Reference: Crouch & Grossman, J. Nonlinear Sci. 3 (1993) 1–33; Owren & Marthinsen, BIT 39
/// (1999) 116–142; Hairer, Lubich & Wanner, *Geometric Numerical Integration*, §IV.8.1.
#[derive(Debug, Clone)]
pub struct CrouchGrossman3 {
    h: f64,
    gens: [Generator; 3],
    y: Tokens,
    v: Tokens,
    last_drift: Option<f64>,
}

impl CrouchGrossman3 {
    /// A fixed step `h` (finite, `> 0`).
    pub fn new(h: f64) -> Result<Self> {
        let h = check_step_size("h", h)?;
        Ok(Self {
            h,
            gens: [Generator::empty(), Generator::empty(), Generator::empty()],
            y: Tokens::zeros(0, 0),
            v: Tokens::zeros(0, 0),
            last_drift: None,
        })
    }

    /// The fixed step size.
    pub fn h(&self) -> f64 {
        self.h
    }
}

impl Integrator for CrouchGrossman3 {
    fn name(&self) -> &'static str {
        "Crouch–Grossman 3"
    }

    fn step(&mut self, field: &mut dyn VectorField, t: f64, t_end: f64, x: &mut Tokens) -> Result<f64> {
        let manifold = field.manifold();
        if manifold != Manifold::Sphere {
            return Err(DynamicsError::UnsupportedManifold {
                method: self.name(),
                manifold: manifold.name(),
            });
        }
        check_interval(t, t_end)?;
        let shape = x.shape();
        for g in &mut self.gens {
            g.ensure(shape);
        }
        ensure_shape(&mut self.y, shape);
        ensure_shape(&mut self.v, shape);
        let (h, last) = clip_step(self.h, t, t_end, FIXED_STEP_SNAP);
        let [g1, g2, g3] = &mut self.gens;

        field.velocity(x, &mut self.v);
        g1.set(x, &self.v);

        self.y.copy_from(x);
        g1.rotate(h * CG_A21, &mut self.y);
        field.velocity(&self.y, &mut self.v);
        g2.set(&self.y, &self.v);

        self.y.copy_from(x);
        g1.rotate(h * CG_A31, &mut self.y);
        g2.rotate(h * CG_A32, &mut self.y);
        field.velocity(&self.y, &mut self.v);
        g3.set(&self.y, &self.v);

        g1.rotate(h * CG_B1, x);
        g2.rotate(h * CG_B2, x);
        g3.rotate(h * CG_B3, x);

        self.last_drift = Some(project_to_sphere(x));
        Ok(if last { t_end } else { t + h })
    }

    fn pre_projection_drift(&self) -> Option<f64> {
        self.last_drift
    }

    fn reset(&mut self) {
        self.last_drift = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

/// The span and budget of one [`integrate`] run, which always starts at `t = 0`.
///
/// Reference: Rigollet, arXiv 2512.01868 (the flows are autonomous, so a start at 0 loses nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntegrateConfig {
    /// Final time, finite and `≥ 0` (`0` returns the initial state after one observer call).
    pub t_end: f64,
    /// Largest number of accepted steps, `≥ 1`.
    pub max_steps: usize,
}

impl IntegrateConfig {
    /// A validated configuration.
    pub fn new(t_end: f64, max_steps: usize) -> Result<Self> {
        let c = Self { t_end, max_steps };
        c.validate()?;
        Ok(c)
    }

    /// Checks `t_end` finite and `≥ 0`, `max_steps ≥ 1`.
    pub fn validate(&self) -> Result<()> {
        if !(self.t_end.is_finite() && self.t_end >= 0.0) {
            return Err(DynamicsError::InvalidParameter {
                name: "t_end",
                value: self.t_end,
                allowed: "a finite time ≥ 0",
            });
        }
        if self.max_steps == 0 {
            return Err(DynamicsError::InvalidSize {
                name: "max_steps",
                value: 0,
                allowed: "at least 1 step",
            });
        }
        Ok(())
    }
}

/// What the observer of [`integrate`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep integrating.
    Continue,
    /// End the run now (an event such as "clustered" was detected) and return the current state.
    Stop,
}

/// The end state of an [`integrate`] run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The time reached: `t_end`, or earlier if the observer stopped the run.
    pub t: f64,
    /// The state at `t`.
    pub x: Tokens,
    /// Accepted steps taken.
    pub steps: usize,
    /// On [`Manifold::Sphere`]: the largest `max_i | |x_i| − 1 |` over accepted steps, measured
    /// before re-projection for projecting methods and after the step otherwise (see
    /// [`Integrator::pre_projection_drift`]). `0` for other manifolds or when no step was taken.
    pub max_sphere_drift: f64,
}

/// Checks an initial configuration against the field's manifold: finite and non-empty; `1 × n`
/// for [`Manifold::Angles`]; unit columns within [`sphere_tolerance`] for [`Manifold::Sphere`].
///
/// Reference: Rigollet, arXiv 2512.01868 (states on `(S^{d−1})^n`, `(R^d)^n` and the torus).
pub fn validate_state(manifold: Manifold, x: &Tokens) -> Result<()> {
    tokens::validate(x)?;
    match manifold {
        Manifold::Angles if x.nrows() != 1 => Err(DynamicsError::ShapeMismatch {
            what: "angle configuration",
            expected: "1 × n".into(),
            got: format!("{}×{}", x.nrows(), x.ncols()),
        }),
        Manifold::Sphere => {
            let tol = sphere_tolerance(x.nrows());
            for (i, c) in x.column_iter().enumerate() {
                let r = c.norm();
                if r == 0.0 {
                    return Err(DynamicsError::ZeroVector { index: i });
                }
                if (r - 1.0).abs() > tol {
                    return Err(DynamicsError::InvalidParameter {
                        name: "|x_i| (initial token norm)",
                        value: r,
                        allowed: "1 to within (d + 3)ε: normalise with tokens::normalize_columns first",
                    });
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Integrates `field` with `method` from `x0` at `t = 0` to `config.t_end`.
///
/// The method is [`Integrator::reset`] first. `observer(t, x)` is called at `t = 0` and after every
/// accepted step; returning [`Control::Stop`] ends the run there. Errors: invalid `config` or `x0`
/// (see [`validate_state`]), [`DynamicsError::NonFinite`] if a step produces a NaN or infinity,
/// [`DynamicsError::TooManySteps`] if `t_end` is not reached within `max_steps` accepted steps, and
/// whatever the method reports.
///
/// Reference: Rigollet, arXiv 2512.01868 (the flows integrated).
pub fn integrate(
    field: &mut dyn VectorField,
    method: &mut dyn Integrator,
    x0: &Tokens,
    config: &IntegrateConfig,
    observer: &mut dyn FnMut(f64, &Tokens) -> Control,
) -> Result<Outcome> {
    config.validate()?;
    let manifold = field.manifold();
    validate_state(manifold, x0)?;
    method.reset();
    let mut x = x0.clone();
    let mut t = 0.0;
    let mut steps = 0;
    let mut drift: f64 = 0.0;
    if observer(t, &x) == Control::Stop {
        return Ok(Outcome { t, x, steps, max_sphere_drift: drift });
    }
    while t < config.t_end {
        if steps == config.max_steps {
            return Err(DynamicsError::TooManySteps { max_steps: config.max_steps, t });
        }
        t = method.step(field, t, config.t_end, &mut x)?;
        steps += 1;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(DynamicsError::NonFinite { what: "state after an integration step" });
        }
        if manifold == Manifold::Sphere {
            drift = drift.max(method.pre_projection_drift().unwrap_or_else(|| tokens::sphere_drift(&x)));
        }
        if observer(t, &x) == Control::Stop {
            break;
        }
    }
    Ok(Outcome { t, x, steps, max_sphere_drift: drift })
}

/// [`integrate`] to `t_end` with no observer and a budget of [`DEFAULT_MAX_STEPS`] steps; returns
/// the final state.
///
/// Reference: Rigollet, arXiv 2512.01868 (the flows integrated).
pub fn integrate_to(
    field: &mut dyn VectorField,
    method: &mut dyn Integrator,
    x0: &Tokens,
    t_end: f64,
) -> Result<Tokens> {
    let config = IntegrateConfig::new(t_end, DEFAULT_MAX_STEPS)?;
    Ok(integrate(field, method, x0, &config, &mut |_, _| Control::Continue)?.x)
}

/// Step budget of [`integrate_to`]: ample for any experiment here (a fixed step of `10⁻⁴` over
/// `T = 100`), yet a runaway adaptive integration stops within seconds for small `n`.
pub const DEFAULT_MAX_STEPS: usize = 1_000_000;
