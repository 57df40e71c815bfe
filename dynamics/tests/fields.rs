//! Verification of the vector fields and the initial-data generators.
//!
//! Every field is checked against a direct, unshifted implementation of its defining formula
//! (moderate β, where that implementation is accurate), for finiteness at huge β (where it
//! overflows), for tangency, for the Kuramoto and polar (Pre-LN) identities, and for rotation and
//! permutation equivariance. The generators are checked for unit norms, their Gram matrices, vertex
//! counts and symmetry, and for refusing bad input.
//!
//! Tolerances are functions of the sizes, named and derived from rounding-error bounds where they
//! are defined; `ε` is `f64::EPSILON`.

use dynamics::field::{
    check_beta, velocity_checked, Clock, Hardmax, Kuramoto, Normalization, PeriLn, PreLn, Sa, Usa,
    VectorField, MAX_BETA_PHYSICAL_USA,
};
use dynamics::tokens::{
    equiangular, random_orthogonal, regular_ngon, regular_polytope, rng_from_seed, uniform_sphere,
    uniform_sphere_seeded, Polytope, Tokens,
};
use dynamics::DynamicsError;
use nalgebra::DVector;
use proptest::prelude::*;
use rand::RngExt;

const EPS: f64 = f64::EPSILON;

// ---------------------------------------------------------------------------------------------
// Direct implementations of the defining formulas (unshifted exponentials)
// ---------------------------------------------------------------------------------------------

/// `A_i = Σ_j w_ij θ_j` with `w_ij = e^{β⟨θ_i,θ_j⟩}/Z_i` (softmax) or `e^{β⟨θ_i,θ_j⟩}/n` (uniform,
/// physical time), evaluated literally.
fn naive_attention(theta: &Tokens, beta: f64, norm: Normalization) -> Tokens {
    let (d, n) = theta.shape();
    let mut a = Tokens::zeros(d, n);
    for i in 0..n {
        let w: Vec<f64> = (0..n).map(|j| (beta * theta.column(i).dot(&theta.column(j))).exp()).collect();
        let denom = match norm {
            Normalization::Softmax => w.iter().sum::<f64>(),
            Normalization::Uniform => n as f64,
        };
        for (j, wj) in w.iter().enumerate() {
            a.column_mut(i).axpy(wj / denom, &theta.column(j), 1.0);
        }
    }
    a
}

fn project(x: &Tokens, v: &Tokens) -> Tokens {
    let mut out = v.clone();
    for i in 0..x.ncols() {
        let c = x.column(i).dot(&v.column(i));
        out.column_mut(i).axpy(-c, &x.column(i), 1.0);
    }
    out
}

fn directions(x: &Tokens) -> Tokens {
    let mut t = x.clone();
    for mut c in t.column_iter_mut() {
        let r = c.norm();
        c /= r;
    }
    t
}

fn naive_hardmax(x: &Tokens) -> Tokens {
    let n = x.ncols();
    let mut a = Tokens::zeros(x.nrows(), n);
    for i in 0..n {
        let j = (0..n)
            .filter(|&j| j != i)
            .max_by(|&p, &q| x.column(i).dot(&x.column(p)).total_cmp(&x.column(i).dot(&x.column(q))))
            .unwrap();
        a.column_mut(i).copy_from(&x.column(j));
    }
    project(x, &a)
}

fn naive_kuramoto(theta: &[f64], beta: f64, norm: Normalization) -> Vec<f64> {
    let n = theta.len();
    (0..n)
        .map(|i| {
            let (mut num, mut z) = (0.0, 0.0);
            for j in 0..n {
                let w = (beta * (theta[i] - theta[j]).cos()).exp();
                num += w * (theta[i] - theta[j]).sin();
                z += w;
            }
            -num / if norm == Normalization::Softmax { z } else { n as f64 }
        })
        .collect()
}

fn eval(field: &mut dyn VectorField, x: &Tokens) -> Tokens {
    velocity_checked(field, x).unwrap()
}

fn max_abs_diff(a: &Tokens, b: &Tokens) -> f64 {
    (a - b).amax()
}

/// Tokens with random directions and radii in `[0.5, 2]` (Pre-LN and Peri-LN act on `R^d`).
fn free_tokens(n: usize, d: usize, seed: u64) -> Tokens {
    let mut rng = rng_from_seed(seed);
    let mut x = uniform_sphere(n, d, &mut rng).unwrap();
    for mut c in x.column_iter_mut() {
        c *= rng.random_range(0.5..2.0);
    }
    x
}

// ---------------------------------------------------------------------------------------------
// Tolerances
// ---------------------------------------------------------------------------------------------

/// Agreement of a field with its direct formula, relative to the field's magnitude `scale`. Each
/// weight `e^{β⟨⟩}` carries a relative error `≤ (β + 1)ε` (the exponent `β⟨⟩` is rounded to
/// `βε`, `exp` adds `ε`); normalising sums `n` weights (`nε`); `A_i` sums `n` terms of size
/// `≤ scale` (`nε·scale`); the projection's dot product adds `dε`. The shifted and unshifted
/// versions each incur this, so the difference is `≤ 2(2n + d + β + 2)ε·scale`; `FIELD_SAFETY` = 8
/// covers the constants dropped in these first-order bounds.
const FIELD_SAFETY: f64 = 8.0;
fn field_tol(n: usize, d: usize, beta: f64, scale: f64) -> f64 {
    FIELD_SAFETY * 2.0 * (2.0 * n as f64 + d as f64 + beta + 2.0) * EPS * scale
}

/// `|⟨x_i, v_i⟩|` after the projection `v = A − ⟨x,A⟩x`: `⟨x,v⟩ = ⟨x,A⟩(1 − |x|²)` plus the
/// rounding of two `d`-term dot products and one axpy, `≤ (3d + 4)ε·|A|` for unit `x`; the factor 2
/// is for the `|x|² − 1 = O(dε)` of generated unit tokens.
fn tangent_tol(d: usize, scale: f64) -> f64 {
    2.0 * (3.0 * d as f64 + 4.0) * EPS * scale
}

/// Equivariance `v(Qx) = Q v(x)`: rotating the input perturbs each entry by `~dε`, which the
/// field amplifies by at most its Lipschitz constant `≲ 1 + 2β` (Peri-LN adds `1/min|A_i|` from its
/// normalisation); both sides also carry the field's own rounding, `field_tol`. Factor 4 for the
/// first-order constants.
fn equivariance_tol(n: usize, d: usize, beta: f64, scale: f64) -> f64 {
    4.0 * (d as f64 * (1.0 + 2.0 * beta) * EPS * scale + field_tol(n, d, beta, scale))
}

// ---------------------------------------------------------------------------------------------
// Against the direct formulas
// ---------------------------------------------------------------------------------------------

#[test]
fn fields_match_their_direct_formulas_for_moderate_beta() {
    for seed in 0..12u64 {
        let (n, d) = (2 + seed as usize, 2 + (seed as usize % 5));
        let beta: f64 = [0.0, 0.3, 1.0, 2.5, 4.0, 5.0][seed as usize % 6];
        let x = uniform_sphere_seeded(n, d, seed).unwrap();
        let eb = beta.exp();

        let want = project(&x, &naive_attention(&x, beta, Normalization::Softmax));
        let got = eval(&mut Sa::new(beta).unwrap(), &x);
        assert!(max_abs_diff(&got, &want) <= field_tol(n, d, beta, 1.0), "SA seed {seed}");

        let want = project(&x, &naive_attention(&x, beta, Normalization::Uniform));
        let phys = eval(&mut Usa::new(beta, Clock::Physical).unwrap(), &x);
        let resc = eval(&mut Usa::new(beta, Clock::Rescaled).unwrap(), &x);
        assert!(max_abs_diff(&phys, &want) <= field_tol(n, d, beta, eb), "USA seed {seed}");
        // Physical = e^β × rescaled: one extra multiplication, ε relative.
        assert!(max_abs_diff(&phys, &(&resc * eb)) <= 2.0 * EPS * eb * resc.amax().max(EPS), "USA clocks");

        let xf = free_tokens(n, d, seed + 100);
        let theta = directions(&xf);
        let want = naive_attention(&theta, beta, Normalization::Softmax);
        let got = eval(&mut PreLn::new(beta, Normalization::Softmax, Clock::Physical).unwrap(), &xf);
        assert!(max_abs_diff(&got, &want) <= field_tol(n, d, beta, 1.0), "Pre-LN softmax seed {seed}");
        let want = naive_attention(&theta, beta, Normalization::Uniform);
        let got = eval(&mut PreLn::new(beta, Normalization::Uniform, Clock::Physical).unwrap(), &xf);
        assert!(max_abs_diff(&got, &want) <= field_tol(n, d, beta, eb), "Pre-LN uniform seed {seed}");
        let got = eval(&mut PreLn::new(beta, Normalization::Uniform, Clock::Rescaled).unwrap(), &xf);
        assert!(max_abs_diff(&got, &(&want / eb)) <= field_tol(n, d, beta, 1.0), "Pre-LN rescaled");

        let a = naive_attention(&theta, beta, Normalization::Softmax);
        let got = eval(&mut PeriLn::new(beta).unwrap(), &xf);
        let min_a = a.column_iter().map(|c| c.norm()).fold(f64::INFINITY, f64::min);
        for i in 0..n {
            let want = a.column(i) / a.column(i).norm();
            assert!((got.column(i) - want).amax() <= field_tol(n, d, beta, 1.0) / min_a, "Peri-LN");
            assert!((got.column(i).norm() - 1.0).abs() <= 4.0 * d as f64 * EPS, "Peri-LN unit speed");
        }

        let got = eval(&mut Hardmax::new(), &x);
        assert!(max_abs_diff(&got, &naive_hardmax(&x)) <= field_tol(n, d, 0.0, 1.0), "hardmax");
    }
}

#[test]
fn kuramoto_matches_its_direct_formula() {
    let mut rng = rng_from_seed(8);
    for n in [2usize, 5, 11] {
        for &beta in &[0.0, 1.0, 4.0] {
            let angles: Vec<f64> = (0..n).map(|_| rng.random_range(-10.0..10.0)).collect();
            let x = Tokens::from_row_slice(1, n, &angles);
            for norm in [Normalization::Softmax, Normalization::Uniform] {
                let want = naive_kuramoto(&angles, beta, norm);
                let got = eval(&mut Kuramoto::new(beta, norm, Clock::Physical).unwrap(), &x);
                let scale = if norm == Normalization::Uniform { beta.exp() } else { 1.0 };
                // The angle differences of |θ| ≤ 10 carry absolute error 20ε, amplified by the
                // derivative of e^{β cos} sin, ≤ (1 + β)·scale.
                let tol = field_tol(n, 1, beta, scale) + 40.0 * (1.0 + beta) * EPS * scale;
                for i in 0..n {
                    assert!((got[(0, i)] - want[i]).abs() <= tol, "n={n} β={beta} {norm:?}");
                }
                if norm == Normalization::Uniform {
                    let resc = eval(&mut Kuramoto::new(beta, norm, Clock::Rescaled).unwrap(), &x);
                    assert!(max_abs_diff(&(&resc * beta.exp()), &got) <= 2.0 * EPS * scale);
                }
            }
        }
    }
}

/// At β = 1e3 and 1e5 the direct formulas overflow (`e^{1000} = ∞`, so `∞/∞ = NaN`), while every
/// shifted field stays finite.
#[test]
fn fields_are_finite_for_huge_beta() {
    let x = uniform_sphere_seeded(9, 4, 77).unwrap();
    let xf = free_tokens(9, 4, 78);
    let angles = Tokens::from_row_slice(1, 5, &[0.1, 2.0, -1.0, 3.0, 0.5]);
    for &beta in &[1e3, 1e5, 1e6] {
        assert!(naive_attention(&x, beta, Normalization::Softmax).iter().any(|v| !v.is_finite()));
        let mut fields: Vec<Box<dyn VectorField>> = vec![
            Box::new(Sa::new(beta).unwrap()),
            Box::new(Usa::new(beta, Clock::Rescaled).unwrap()),
            Box::new(PreLn::new(beta, Normalization::Softmax, Clock::Physical).unwrap()),
            Box::new(PreLn::new(beta, Normalization::Uniform, Clock::Rescaled).unwrap()),
            Box::new(PeriLn::new(beta).unwrap()),
        ];
        for (k, f) in fields.iter_mut().enumerate() {
            let input = if k < 2 { &x } else { &xf };
            let v = velocity_checked(f.as_mut(), input).unwrap();
            assert!(v.iter().all(|e| e.is_finite()), "field {k} at β = {beta}");
        }
        for norm in [Normalization::Softmax, Normalization::Uniform] {
            let mut k = Kuramoto::new(beta, norm, Clock::Rescaled).unwrap();
            assert!(velocity_checked(&mut k, &angles).is_ok());
        }
        // Softmax at huge β: each token attends to itself, so the exact SA velocity of separated
        // tokens is below 1e-100, and what is computed is the rounding of `P_x x`, ≤ tangent_tol.
        let v = eval(&mut Sa::new(beta).unwrap(), &x);
        assert!(v.amax() <= tangent_tol(4, 1.0), "β = {beta}: {}", v.amax());
    }
    // Physical-time USA-type fields refuse β whose factor e^β would overflow.
    let over = MAX_BETA_PHYSICAL_USA + 1.0;
    assert!(Usa::new(over, Clock::Physical).is_err());
    assert!(PreLn::new(over, Normalization::Uniform, Clock::Physical).is_err());
    assert!(Kuramoto::new(over, Normalization::Uniform, Clock::Physical).is_err());
    assert!(PreLn::new(over, Normalization::Softmax, Clock::Physical).is_ok());
    assert!(Usa::new(MAX_BETA_PHYSICAL_USA, Clock::Physical).is_ok());
}

#[test]
fn fields_refuse_bad_parameters_and_shapes() {
    for bad in [f64::NAN, -1e-9, f64::INFINITY, 1.1e6] {
        assert!(matches!(check_beta(bad), Err(DynamicsError::InvalidParameter { name: "beta", .. })));
        assert!(Sa::new(bad).is_err());
        assert!(Usa::new(bad, Clock::Rescaled).is_err());
        assert!(PreLn::new(bad, Normalization::Softmax, Clock::Physical).is_err());
        assert!(PeriLn::new(bad).is_err());
        assert!(Kuramoto::new(bad, Normalization::Softmax, Clock::Physical).is_err());
    }
    let mut sa = Sa::new(1.0).unwrap();
    let mut x = uniform_sphere_seeded(3, 3, 0).unwrap();
    x[(0, 0)] = f64::NAN;
    assert!(matches!(velocity_checked(&mut sa, &x), Err(DynamicsError::NonFinite { .. })));
    assert!(matches!(
        velocity_checked(&mut sa, &Tokens::zeros(3, 0)),
        Err(DynamicsError::ShapeMismatch { .. })
    ));
    let mut k = Kuramoto::new(1.0, Normalization::Softmax, Clock::Physical).unwrap();
    let two_rows = uniform_sphere_seeded(3, 2, 0).unwrap();
    assert!(matches!(velocity_checked(&mut k, &two_rows), Err(DynamicsError::ShapeMismatch { .. })));
}

// ---------------------------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------------------------

/// On the circle, `x_i = (cos θ_i, sin θ_i)`, SA/USA written in angles are the Kuramoto forms:
/// `θ̇_i = ⟨ẋ_i, (−sin θ_i, cos θ_i)⟩`.
#[test]
fn kuramoto_form_equals_sa_and_usa_on_the_circle() {
    let mut rng = rng_from_seed(12);
    for n in [2usize, 3, 6, 13] {
        for &beta in &[0.0, 0.7, 3.0, 6.0] {
            let angles: Vec<f64> = (0..n).map(|_| rng.random_range(-3.1..3.1)).collect();
            let th = Tokens::from_row_slice(1, n, &angles);
            let x = Tokens::from_fn(2, n, |k, i| if k == 0 { angles[i].cos() } else { angles[i].sin() });
            let cases: [(Box<dyn VectorField>, Normalization, Clock, f64); 3] = [
                (Box::new(Sa::new(beta).unwrap()), Normalization::Softmax, Clock::Physical, 1.0),
                (
                    Box::new(Usa::new(beta, Clock::Physical).unwrap()),
                    Normalization::Uniform,
                    Clock::Physical,
                    beta.exp(),
                ),
                (
                    Box::new(Usa::new(beta, Clock::Rescaled).unwrap()),
                    Normalization::Uniform,
                    Clock::Rescaled,
                    1.0,
                ),
            ];
            for (mut field, norm, clock, scale) in cases {
                let v = eval(field.as_mut(), &x);
                let k = eval(&mut Kuramoto::new(beta, norm, clock).unwrap(), &th);
                for i in 0..n {
                    let tangent = DVector::from_column_slice(&[-angles[i].sin(), angles[i].cos()]);
                    let from_sphere = v.column(i).dot(&tangent);
                    // Two evaluations of the same sum, in Cartesian and in angle form: each within
                    // field_tol of the exact value.
                    let tol = 2.0 * field_tol(n, 2, beta, scale);
                    assert!((from_sphere - k[(0, i)]).abs() <= tol, "n={n} β={beta} {norm:?} {clock:?}");
                }
            }
        }
    }
}

/// Pre-LN in polar form, `x = rθ`: `ṙ_i = ⟨θ_i, A_i⟩` and `θ̇_i = (1/r_i) P_{θ_i} A_i`, where `A_i` is the
/// attention vector of the directions. The derivatives of `r_i = |x_i|` and `θ_i = x_i/|x_i|` along
/// the field are taken by central differences with step `h`: their truncation error is
/// `(h²/6)·|d³/ds³|`, with third derivatives `≲ |v|³/r³ ≤ 8`, so `PRE_LN_FD_TOL` = 8h² + the
/// rounding `~ε/h`. The direction equation means the Pre-LN direction moves like Post-LN (SA)
/// slowed by `r_i`: `θ̇_i = Sa(θ)_i / r_i`.
#[test]
fn pre_ln_obeys_its_radial_and_angular_equations() {
    const H: f64 = 1e-5;
    const PRE_LN_FD_TOL: f64 = 8.0 * H * H + 16.0 * EPS / H;
    for seed in 0..8u64 {
        let (n, d) = (3 + seed as usize, 2 + (seed as usize % 4));
        let beta = 0.5 * seed as f64;
        let x = free_tokens(n, d, 300 + seed);
        let theta = directions(&x);
        for norm in [Normalization::Softmax, Normalization::Uniform] {
            let mut field = PreLn::new(beta, norm, Clock::Rescaled).unwrap();
            let v = eval(&mut field, &x);
            let mut a = naive_attention(&theta, beta, norm);
            if norm == Normalization::Uniform {
                a /= beta.exp(); // rescaled clock
            }
            let sphere_velocity = match norm {
                Normalization::Softmax => eval(&mut Sa::new(beta).unwrap(), &theta),
                Normalization::Uniform => eval(&mut Usa::new(beta, Clock::Rescaled).unwrap(), &theta),
            };
            let fwd = &x + &v * H;
            let bwd = &x - &v * H;
            for i in 0..n {
                let r = x.column(i).norm();
                let rdot = (fwd.column(i).norm() - bwd.column(i).norm()) / (2.0 * H);
                let want_r = theta.column(i).dot(&a.column(i));
                assert!((rdot - want_r).abs() <= PRE_LN_FD_TOL, "seed {seed} ṙ: {rdot} vs {want_r}");
                let thdot =
                    (fwd.column(i) / fwd.column(i).norm() - bwd.column(i) / bwd.column(i).norm()) / (2.0 * H);
                let pa = a.column(i) - theta.column(i) * want_r;
                assert!((&thdot - &pa / r).amax() <= PRE_LN_FD_TOL, "seed {seed} θ̇");
                assert!((&thdot - sphere_velocity.column(i) / r).amax() <= PRE_LN_FD_TOL, "seed {seed} SA/r");
            }
            // The field depends on the directions only: rescaling tokens leaves it unchanged.
            let mut y = x.clone();
            for (k, mut c) in y.column_iter_mut().enumerate() {
                c *= 0.3 + k as f64;
            }
            assert!(max_abs_diff(&eval(&mut field, &y), &v) <= field_tol(n, d, beta, 1.0));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tangency and equivariance (property tests)
// ---------------------------------------------------------------------------------------------

/// The sphere fields, with their magnitude scale for the tolerances.
fn sphere_fields(beta: f64) -> Vec<(&'static str, Box<dyn VectorField>, f64)> {
    vec![
        ("SA", Box::new(Sa::new(beta).unwrap()), 1.0),
        ("USA physical", Box::new(Usa::new(beta, Clock::Physical).unwrap()), beta.exp()),
        ("USA rescaled", Box::new(Usa::new(beta, Clock::Rescaled).unwrap()), 1.0),
        ("hardmax", Box::new(Hardmax::new()), 1.0),
    ]
}

/// The fields on `R^d` (Pre-LN, Peri-LN), with their magnitude scale.
fn free_fields(beta: f64) -> Vec<(&'static str, Box<dyn VectorField>, f64)> {
    vec![
        ("Pre-LN softmax", Box::new(PreLn::new(beta, Normalization::Softmax, Clock::Physical).unwrap()), 1.0),
        (
            "Pre-LN uniform",
            Box::new(PreLn::new(beta, Normalization::Uniform, Clock::Physical).unwrap()),
            beta.exp(),
        ),
        (
            "Pre-LN rescaled",
            Box::new(PreLn::new(beta, Normalization::Uniform, Clock::Rescaled).unwrap()),
            1.0,
        ),
        ("Peri-LN", Box::new(PeriLn::new(beta).unwrap()), 1.0),
    ]
}

fn shuffled(n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.random_range(0..=i));
    }
    p
}

/// `1/min_i |A_i|` of the softmax attention of the directions: Peri-LN's sensitivity factor.
fn peri_ln_amplification(x: &Tokens, beta: f64) -> f64 {
    let a = naive_attention(&directions(x), beta, Normalization::Softmax);
    1.0 / a.column_iter().map(|c| c.norm()).fold(f64::INFINITY, f64::min)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sphere_fields_are_tangent(n in 2..12usize, d in 3..8usize, beta in 0.0..5.0f64, seed in any::<u64>()) {
        let x = uniform_sphere_seeded(n, d, seed).unwrap();
        for (name, mut f, scale) in sphere_fields(beta) {
            let v = eval(f.as_mut(), &x);
            for i in 0..n {
                let c = x.column(i).dot(&v.column(i));
                prop_assert!(c.abs() <= tangent_tol(d, scale), "{}: ⟨x,v⟩ = {}", name, c);
            }
        }
        // Huge β too (the rescaled fields only).
        for beta in [1e3, 1e5] {
            for mut f in [Box::new(Sa::new(beta).unwrap()) as Box<dyn VectorField>, Box::new(Usa::new(beta, Clock::Rescaled).unwrap())] {
                let v = eval(f.as_mut(), &x);
                for i in 0..n {
                    prop_assert!(x.column(i).dot(&v.column(i)).abs() <= tangent_tol(d, 1.0));
                }
            }
        }
    }

    #[test]
    fn fields_are_rotation_and_permutation_equivariant(n in 2..12usize, d in 3..8usize, beta in 0.0..5.0f64, seed in any::<u64>()) {
        let mut rng = rng_from_seed(seed);
        let x = uniform_sphere(n, d, &mut rng).unwrap();
        let xf = free_tokens(n, d, seed ^ 0x5eed);
        let q = random_orthogonal(d, &mut rng);
        let p = shuffled(n, &mut rng);
        let cases = sphere_fields(beta).into_iter().map(|c| (c, &x)).chain(free_fields(beta).into_iter().map(|c| (c, &xf)));
        for ((name, mut f, scale), input) in cases {
            let amp = if name == "Peri-LN" { peri_ln_amplification(input, beta) } else { 1.0 };
            let tol = equivariance_tol(n, d, beta, scale) * amp;
            let v = eval(f.as_mut(), input);
            let rotated = eval(f.as_mut(), &(&q * input));
            prop_assert!(max_abs_diff(&rotated, &(&q * &v)) <= tol, "{} rotation: {:e} > {:e}", name, max_abs_diff(&rotated, &(&q * &v)), tol);
            let permuted = eval(f.as_mut(), &input.select_columns(p.iter()));
            prop_assert!(max_abs_diff(&permuted, &v.select_columns(p.iter())) <= tol, "{} permutation", name);
        }
    }

    /// O(2) acting on angles: a rotation shifts every angle (`v(θ + c) = v(θ)`), a reflection
    /// negates them (`v(−θ) = −v(θ)`); permutations relabel.
    #[test]
    fn kuramoto_is_equivariant(n in 2..12usize, beta in 0.0..5.0f64, shift in -3.0..3.0f64, seed in any::<u64>()) {
        let mut rng = rng_from_seed(seed);
        let angles: Vec<f64> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
        let th = Tokens::from_row_slice(1, n, &angles);
        let p = shuffled(n, &mut rng);
        for norm in [Normalization::Softmax, Normalization::Uniform] {
            let mut k = Kuramoto::new(beta, norm, Clock::Rescaled).unwrap();
            let v = eval(&mut k, &th);
            // Shifting angles of size ≤ 6 rounds each difference by ~12ε, amplified by ≤ 1 + β.
            let tol = field_tol(n, 1, beta, 1.0) + 24.0 * (1.0 + beta) * EPS;
            prop_assert!(max_abs_diff(&eval(&mut k, &th.add_scalar(shift)), &v) <= tol);
            prop_assert!(max_abs_diff(&eval(&mut k, &(-&th)), &(-&v)) <= tol);
            prop_assert!(max_abs_diff(&eval(&mut k, &th.select_columns(p.iter())), &v.select_columns(p.iter())) <= tol);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `|x_i| = 1` to the rounding of one normalisation: the norm has relative error
    /// `≤ (d/2 + 1)ε`, the division `ε/2` per entry; `UNIT_TOL` = (d + 2)ε.
    #[test]
    fn uniform_sphere_columns_are_unit(n in 1..40usize, d in 2..30usize, seed in any::<u64>()) {
        let x = uniform_sphere_seeded(n, d, seed).unwrap();
        prop_assert_eq!(x.shape(), (d, n));
        for c in x.column_iter() {
            prop_assert!((c.norm() - 1.0).abs() <= (d as f64 + 2.0) * EPS);
        }
        prop_assert_eq!(uniform_sphere_seeded(n, d, seed).unwrap(), x);
    }
}

/// The equiangular Gram matrix is reproduced to the accuracy of a symmetric eigendecomposition:
/// backward error `~nε‖G‖₂` (`‖G‖₂ = max(1 + (n−1)ρ₀, 1 − ρ₀) ≤ n`), carried into `XᵀX` by the
/// reconstruction (another `nε‖G‖₂`) and the column normalisation (`dε`).
/// `EQUIANGULAR_TOL` = 16(2n‖G‖₂ + d)ε.
#[test]
fn equiangular_gram_matches_rho0() {
    for n in 2..=10usize {
        let lo = -1.0 / (n as f64 - 1.0);
        for &rho0 in &[lo, -0.1, 0.0, 0.5, 0.99] {
            if rho0 < lo {
                continue; // −0.1 < −1/(n−1) only for n > 11
            }
            for d in [n, n + 3] {
                let x = equiangular(n, d, rho0).unwrap();
                assert_eq!(x.shape(), (d, n));
                let g = x.tr_mul(&x);
                let norm_g = (1.0 + (n as f64 - 1.0) * rho0).max(1.0 - rho0);
                let tol = 16.0 * (2.0 * n as f64 * norm_g + d as f64) * EPS;
                for i in 0..n {
                    for j in 0..n {
                        let want = if i == j { 1.0 } else { rho0 };
                        assert!((g[(i, j)] - want).abs() <= tol, "n={n} d={d} ρ₀={rho0}: {}", g[(i, j)]);
                    }
                }
            }
        }
        // The regular simplex also fits in d = n − 1 (for n ≥ 3, where n − 1 ≥ 2).
        if n >= 3 {
            let x = equiangular(n, n - 1, lo).unwrap();
            assert_eq!(x.nrows(), n - 1);
        }
    }
}

#[test]
fn generators_refuse_bad_input() {
    assert!(matches!(uniform_sphere_seeded(0, 3, 0), Err(DynamicsError::InvalidSize { name: "n", .. })));
    assert!(matches!(uniform_sphere_seeded(3, 1, 0), Err(DynamicsError::InvalidSize { name: "d", .. })));
    assert!(matches!(equiangular(0, 3, 0.0), Err(DynamicsError::InvalidSize { name: "n", .. })));
    assert!(matches!(equiangular(1, 3, 0.0), Err(DynamicsError::InvalidSize { name: "n", .. })));
    assert!(matches!(equiangular(3, 1, 0.0), Err(DynamicsError::InvalidSize { name: "d", .. })));
    for bad in [1.0, 1.5, -0.51, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(equiangular(3, 3, bad), Err(DynamicsError::InvalidParameter { name: "rho0", .. })),
            "ρ₀ = {bad}"
        );
    }
    // ρ₀ above the simplex value needs d ≥ n.
    assert!(matches!(equiangular(4, 3, 0.1), Err(DynamicsError::InvalidSize { name: "d", .. })));
    assert!(matches!(equiangular(5, 3, -0.25), Err(DynamicsError::InvalidSize { name: "d", .. })));
    assert!(matches!(
        regular_polytope(Polytope::Simplex(5), 3),
        Err(DynamicsError::InvalidSize { name: "d", .. })
    ));
    assert!(regular_polytope(Polytope::Simplex(1), 3).is_err());
    assert!(regular_polytope(Polytope::Simplex(0), 3).is_err());
    assert!(regular_polytope(Polytope::CrossPolytope, 1).is_err());
    for kind in [Polytope::Cube, Polytope::Icosahedron, Polytope::Dodecahedron] {
        assert!(matches!(regular_polytope(kind, 2), Err(DynamicsError::InvalidSize { name: "d", .. })));
    }
    assert!(regular_ngon(0, 2).is_err());
    assert!(regular_ngon(3, 1).is_err());
}

/// Vertex counts, unit norms, and vertex transitivity: every vertex sees the same sorted list of
/// inner products with the others (to `POLYTOPE_TOL` = 64ε, the rounding of a normalisation and a
/// 3- to 7-term dot product of entries ≤ φ), with the known nearest-neighbour value.
#[test]
fn polytopes_have_their_vertex_counts_and_equal_pairwise_structure() {
    const POLYTOPE_TOL: f64 = 64.0 * EPS;
    let sqrt5 = 5f64.sqrt();
    let cases = [
        (Polytope::Simplex(4), 3, 4, -1.0 / 3.0),
        (Polytope::Simplex(6), 7, 6, -0.2),
        (Polytope::CrossPolytope, 3, 6, 0.0),
        (Polytope::CrossPolytope, 5, 10, 0.0),
        (Polytope::Cube, 3, 8, 1.0 / 3.0),
        (Polytope::Cube, 5, 8, 1.0 / 3.0),
        (Polytope::Icosahedron, 3, 12, 1.0 / sqrt5),
        (Polytope::Dodecahedron, 3, 20, sqrt5 / 3.0),
        (Polytope::Dodecahedron, 4, 20, sqrt5 / 3.0),
    ];
    for (kind, d, count, nearest) in cases {
        let x = regular_polytope(kind, d).unwrap();
        assert_eq!(x.shape(), (d, count), "{kind:?}");
        let g = x.tr_mul(&x);
        let profile = |i: usize| {
            let mut p: Vec<f64> = (0..count).filter(|&j| j != i).map(|j| g[(i, j)]).collect();
            p.sort_by(|a, b| b.total_cmp(a));
            p
        };
        let p0 = profile(0);
        assert!((p0[0] - nearest).abs() <= POLYTOPE_TOL, "{kind:?}: nearest {} vs {nearest}", p0[0]);
        for i in 0..count {
            assert!((g[(i, i)] - 1.0).abs() <= POLYTOPE_TOL);
            let pi = profile(i);
            assert!(p0.iter().zip(&pi).all(|(a, b)| (a - b).abs() <= POLYTOPE_TOL), "{kind:?} vertex {i}");
        }
        // Distinct vertices, and centred (every regular polytope here has its centroid at 0).
        assert!(p0.iter().all(|&v| v < 1.0 - 0.1));
        assert!(x.column_mean().amax() <= POLYTOPE_TOL);
    }
    let x = regular_ngon(7, 3).unwrap();
    for i in 0..7 {
        let j = (i + 1) % 7;
        let c = x.column(i).dot(&x.column(j));
        assert!((c - (std::f64::consts::TAU / 7.0).cos()).abs() <= POLYTOPE_TOL);
    }
}

/// `QᵀQ = I` to the accuracy of Householder QR, `~d²ε` (d reflections of d-vectors), and the
/// Mezzadri sign fix makes the result depend only on the seed.
#[test]
fn random_orthogonal_is_orthogonal() {
    for d in [1usize, 2, 3, 8, 20] {
        let q = random_orthogonal(d, &mut rng_from_seed(d as u64));
        let err = (q.tr_mul(&q) - nalgebra::DMatrix::<f64>::identity(d, d)).amax();
        assert!(err <= 16.0 * (d * d) as f64 * EPS, "d = {d}: {err}");
    }
    assert_eq!(random_orthogonal(0, &mut rng_from_seed(0)).shape(), (0, 0));
}
