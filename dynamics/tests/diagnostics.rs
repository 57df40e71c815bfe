//! Tests of the configuration diagnostics: diameter and largest gap, the energy in its three
//! scalings and its exact rate along SA and USA, single-linkage clusters, the exact open-hemisphere
//! test (against Wendel's formula) and the contraction-law fit.
//!
//! Tolerances are named constants next to the rounding argument that sets them; `ε` is
//! `f64::EPSILON`.

use dynamics::diagnostics::{
    cluster_count, clusters, diameter, energy_excess, energy_rate, fit_contraction, fit_contraction_times,
    log_energy, max_gap, normalized_energy, open_hemisphere, ContractionFit, EnergyRate, Hemisphere, Law,
    LinearFit,
};
use dynamics::field::{Clock, Normalization, Sa, Usa, VectorField};
use dynamics::tokens::{
    equiangular, random_orthogonal, regular_ngon, regular_polytope, rng_from_seed, uniform_sphere,
    uniform_sphere_seeded, Polytope, Tokens,
};
use dynamics::DynamicsError;
use nalgebra::DVector;
use proptest::prelude::*;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

const EPS: f64 = f64::EPSILON;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One classical RK4 step of `field` (no projection: the FD tests below need only `O(h⁵)` local
/// accuracy, and the diagnostics read directions, so the `O(h⁵)` drift off the sphere is harmless).
fn rk4_step(field: &mut dyn VectorField, x: &Tokens, h: f64) -> Tokens {
    let (d, n) = x.shape();
    let mut k1 = Tokens::zeros(d, n);
    let mut k2 = Tokens::zeros(d, n);
    let mut k3 = Tokens::zeros(d, n);
    let mut k4 = Tokens::zeros(d, n);
    field.velocity(x, &mut k1);
    field.velocity(&(x + &k1 * (h / 2.0)), &mut k2);
    field.velocity(&(x + &k2 * (h / 2.0)), &mut k3);
    field.velocity(&(x + &k3 * h), &mut k4);
    x + (k1 + k2 * 2.0 + k3 * 2.0 + k4) * (h / 6.0)
}

/// Central difference `(f(x(h)) − f(x(−h)))/(2h)` along the flow of `field`, with one RK4 step each
/// way (the backward step integrates the field with step `−h`).
fn flow_derivative(field: &mut dyn VectorField, x: &Tokens, h: f64, f: impl Fn(&Tokens) -> f64) -> f64 {
    let fwd = rk4_step(field, x, h);
    let bwd = rk4_step(field, x, -h);
    (f(&fwd) - f(&bwd)) / (2.0 * h)
}

/// Naive `E_β = (1/(2βn²)) Σ_{i,j} e^{β⟨x_i,x_j⟩}`, unshifted (overflows for β ≳ 709).
fn naive_energy(x: &Tokens, beta: f64) -> f64 {
    let n = x.ncols() as f64;
    let g = x.tr_mul(x);
    g.iter().map(|v| (beta * v).exp()).sum::<f64>() / (2.0 * beta * n * n)
}

/// Tokens `normalize(e_1 + s·g_i)` with Gaussian `g_i`: a cluster of angular radius `~s`, so that at
/// β ≈ 1/s² the attention weights are neither uniform nor hardmax.
fn tight_cluster(n: usize, d: usize, s: f64, seed: u64) -> Tokens {
    let mut rng = rng_from_seed(seed);
    let mut x = Tokens::from_fn(d, n, |k, _| {
        let g: f64 = StandardNormal.sample(&mut rng);
        if k == 0 {
            1.0 + s * g
        } else {
            s * g
        }
    });
    dynamics::tokens::normalize_columns(&mut x).unwrap();
    x
}

fn relative_error(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

// ---------------------------------------------------------------------------------------------
// Diameter and largest gap
// ---------------------------------------------------------------------------------------------

#[test]
fn diameter_and_max_gap_of_known_configurations() {
    // Antipodal pair: chord 2, gap 2.
    let pair = Tokens::from_column_slice(3, 2, &[0.0, 0.0, 1.0, 0.0, 0.0, -1.0]);
    assert_eq!(diameter(&pair).unwrap(), 2.0);
    assert_eq!(max_gap(&pair).unwrap(), 2.0);
    // Regular simplex of n vertices: every gap is 1 + 1/(n−1). The vertices come from an
    // eigendecomposition, accurate to ~n·ε·‖G‖ ≤ n²ε; 64 n² ε covers it.
    for n in 2..8 {
        let x = regular_polytope(Polytope::Simplex(n), n).unwrap();
        let want = 1.0 + 1.0 / (n as f64 - 1.0);
        let tol = 64.0 * (n * n) as f64 * EPS;
        assert!((max_gap(&x).unwrap() - want).abs() <= tol, "n = {n}");
        let dm = diameter(&x).unwrap();
        assert!((dm * dm / 2.0 - want).abs() <= tol, "n = {n}");
    }
    // One point repeated: zero.
    let same = Tokens::from_fn(4, 5, |k, _| if k == 2 { 1.0 } else { 0.0 });
    assert_eq!(diameter(&same).unwrap(), 0.0);
    assert_eq!(max_gap(&same).unwrap(), 0.0);
}

#[test]
fn max_gap_reads_directions_and_diameter_reads_tokens() {
    // Scaling a token changes the Euclidean diameter but not the angular gap.
    let x = uniform_sphere_seeded(6, 4, 11).unwrap();
    let mut y = x.clone();
    y.column_mut(2).scale_mut(3.0);
    assert!((max_gap(&x).unwrap() - max_gap(&y).unwrap()).abs() <= 16.0 * EPS);
    assert!(diameter(&y).unwrap() > diameter(&x).unwrap());
}

/// The point of the chord formula. Two directions at angle φ in a random plane of `R^5`, so the
/// coordinates are generic (no exact zeros). The intended gap is `1 − cos φ = 2 sin²(φ/2)`; rounding
/// each stored component (relative `ε/2`) moves each token by `≤ ε/2` in norm, so the chord
/// `2 sin(φ/2) ≈ φ` moves by `≤ ε` and the gap by a relative `≤ 2ε/φ`. `CHORD_REL` = 8ε/φ allows a
/// factor 4 for the rotation's own rounding. `1 − fl⟨x,y⟩` instead has an absolute error `~ε`
/// (relative `2ε/φ²`), which fails that bound by orders of magnitude for small φ.
#[test]
fn max_gap_keeps_relative_accuracy_where_one_minus_cosine_cancels() {
    let mut rng = rng_from_seed(3);
    let q = random_orthogonal(5, &mut rng);
    for &phi in &[1e-3, 1e-5, 1e-7] {
        let mut x = Tokens::zeros(5, 2);
        x[(0, 0)] = 1.0;
        x[(0, 1)] = f64::cos(phi);
        x[(1, 1)] = f64::sin(phi);
        let x = &q * x;
        let want = 2.0 * (phi / 2.0).sin().powi(2);
        let chord_rel = 8.0 * EPS / phi;
        let got = max_gap(&x).unwrap();
        assert!(relative_error(got, want) <= chord_rel, "φ = {phi}: {got} vs {want}");
        let naive = 1.0 - x.column(0).dot(&x.column(1));
        if phi <= 1e-5 {
            assert!(relative_error(naive, want) > 10.0 * chord_rel, "φ = {phi}: naive was accurate");
        }
    }
    // In exact coordinates the chord keeps every digit even where 1 − cos φ rounds to 0.
    let phi: f64 = 1e-9;
    let x = Tokens::from_column_slice(2, 2, &[1.0, 0.0, phi.cos(), phi.sin()]);
    assert_eq!(1.0 - x.column(0).dot(&x.column(1)), 0.0);
    assert!(relative_error(max_gap(&x).unwrap(), 2.0 * (phi / 2.0).sin().powi(2)) <= 4.0 * EPS);
}

#[test]
fn diameter_and_gap_refuse_bad_input() {
    let one = uniform_sphere_seeded(1, 3, 0).unwrap();
    assert!(matches!(diameter(&one), Err(DynamicsError::InvalidSize { name: "n", .. })));
    assert!(matches!(max_gap(&one), Err(DynamicsError::InvalidSize { name: "n", .. })));
    let mut bad = uniform_sphere_seeded(3, 3, 0).unwrap();
    bad[(1, 1)] = f64::NAN;
    assert!(matches!(diameter(&bad), Err(DynamicsError::NonFinite { .. })));
    assert!(matches!(max_gap(&bad), Err(DynamicsError::NonFinite { .. })));
    let mut zero = uniform_sphere_seeded(3, 3, 0).unwrap();
    zero.column_mut(2).fill(0.0);
    assert_eq!(max_gap(&zero), Err(DynamicsError::ZeroVector { index: 2 }));
    let empty = Tokens::zeros(3, 0);
    assert!(matches!(diameter(&empty), Err(DynamicsError::ShapeMismatch { .. })));
}

// ---------------------------------------------------------------------------------------------
// Energy
// ---------------------------------------------------------------------------------------------

/// `log E`, `Ē` and `E − 1/(2β)` against the naive unshifted sums for moderate β. The naive sum of
/// n² terms `≤ e^β` has relative error `≤ n²ε` plus `βε` from rounding each exponent; the excess
/// loses a further factor `E/(E − 1/(2β))` to its subtraction. `ENERGY_REL` = 64(n² + β)ε.
#[test]
fn energies_agree_with_the_naive_sums_for_moderate_beta() {
    for seed in 0..6 {
        let (n, d) = (3 + seed as usize, 3 + (seed as usize % 3));
        let x = uniform_sphere_seeded(n, d, 100 + seed).unwrap();
        for &beta in &[0.25, 1.0, 3.0, 5.0] {
            let tol = 64.0 * ((n * n) as f64 + beta) * EPS;
            let e = naive_energy(&x, beta);
            assert!(relative_error(log_energy(&x, beta).unwrap().exp(), e) <= tol);
            let nbar = 2.0 * beta * (-beta).exp() * e;
            assert!(relative_error(normalized_energy(&x, beta).unwrap(), nbar) <= tol);
            let excess = e - 1.0 / (2.0 * beta);
            let lost = e / excess.abs();
            assert!(relative_error(energy_excess(&x, beta).unwrap(), excess) <= tol * lost);
        }
    }
}

#[test]
fn normalized_energy_is_in_its_range_and_finite_for_huge_beta() {
    let n = 9;
    let x = uniform_sphere_seeded(n, 4, 5).unwrap();
    for &beta in &[0.0, 1.0, 50.0, 1e3, 1e5, 1e6] {
        let v = normalized_energy(&x, beta).unwrap();
        assert!(v >= 1.0 / n as f64 && v <= 1.0, "β = {beta}: {v}");
        let l = if beta > 0.0 { log_energy(&x, beta).unwrap() } else { 0.0 };
        assert!(l.is_finite(), "β = {beta}");
    }
    assert_eq!(normalized_energy(&x, 0.0).unwrap(), 1.0);
    // Distinct tokens at β = 1e6: only the diagonal survives.
    assert_eq!(normalized_energy(&x, 1e6).unwrap(), 1.0 / n as f64);
    // All tokens equal: Ē = 1 for every β.
    let same = Tokens::from_fn(3, 4, |k, _| if k == 0 { 1.0 } else { 0.0 });
    assert_eq!(normalized_energy(&same, 1e5).unwrap(), 1.0);
    // log E = β − log 2β + log Ē holds exactly as computed, and E itself would overflow.
    let beta = 1e3;
    let l = log_energy(&x, beta).unwrap();
    assert!(l > 700.0 && naive_energy(&x, beta).is_infinite());
}

#[test]
fn energy_excess_is_continuous_at_beta_zero() {
    let x = uniform_sphere_seeded(7, 3, 21).unwrap();
    let n = x.ncols() as f64;
    let m = x.column_mean();
    // Exact up to the renormalisation of the (already unit) tokens: a few ε relative.
    assert!(relative_error(energy_excess(&x, 0.0).unwrap(), 0.5 * m.norm_squared()) <= 8.0 * EPS);
    // First order: E − 1/(2β) = |m|²/2 + (β/(4n²)) Σ_ij G_ij² + O(β²).
    let g = x.tr_mul(&x);
    let slope = g.iter().map(|v| v * v).sum::<f64>() / (4.0 * n * n);
    let beta = 1e-6;
    let want = 0.5 * m.norm_squared() + beta * slope;
    // The O(β²) remainder is (β²/(12n²)) Σ G³ ≤ β²/12; relative to |m|²/2 ~ 1/(2n), ~1e-11.
    assert!(relative_error(energy_excess(&x, beta).unwrap(), want) <= 1e-10);
    // The naive subtraction has absolute error ~ ε/(2β) ≈ 1e-10, relative ~1e-9 here — while the
    // stable form is accurate to ~1e-15.
    let naive = naive_energy(&x, beta) - 1.0 / (2.0 * beta);
    assert!(relative_error(naive, want) > 1e-3 * relative_error(energy_excess(&x, beta).unwrap(), want));
}

#[test]
fn energy_excess_refuses_overflow_and_log_energy_refuses_beta_zero() {
    let x = uniform_sphere_seeded(4, 3, 2).unwrap();
    assert!(matches!(energy_excess(&x, 1e3), Err(DynamicsError::NonFinite { .. })));
    assert!(matches!(log_energy(&x, 0.0), Err(DynamicsError::InvalidParameter { name: "beta", .. })));
    for bad in [f64::NAN, -1.0, f64::INFINITY, 2e6] {
        assert!(matches!(normalized_energy(&x, bad), Err(DynamicsError::InvalidParameter { .. })));
        assert!(matches!(
            energy_rate(&x, bad, Normalization::Softmax),
            Err(DynamicsError::InvalidParameter { .. })
        ));
    }
    let mut zero = x.clone();
    zero.column_mut(0).fill(0.0);
    assert_eq!(energy_excess(&zero, 1.0), Err(DynamicsError::ZeroVector { index: 0 }));
}

/// Finite-difference step and tolerance for the energy-rate checks. The central difference has
/// truncation error `(h²/6)|E'''|`; each time derivative of the flow brings a factor of at most the
/// field's Lipschitz constant, `≲ 1 + 2β` on the sphere for SA and for USA on the rescaled clock
/// (USA in physical time is `e^β` times faster, so its step is `FD_H·e^{−β}`), so the relative
/// error is `≲ h²(1 + 2β)²/6`. RK4's local error `O(h⁵)` and the rounding `~ε·E/h` are far smaller at
/// `h = 1e-3`. `FD_REL` takes the bound without the 1/6.
const FD_H: f64 = 1e-3;
fn fd_rel(beta: f64) -> f64 {
    FD_H * FD_H * (1.0 + 2.0 * beta).powi(2)
}

#[test]
fn energy_rate_matches_finite_differences_along_sa_and_usa() {
    for seed in 0..4u64 {
        let (n, d) = (4 + 2 * seed as usize, 3 + seed as usize);
        let x = uniform_sphere_seeded(n, d, 500 + seed).unwrap();
        for &beta in &[0.0, 0.5, 2.0, 5.0] {
            let tol = fd_rel(beta);
            // The excess has the derivative of E and is defined at β = 0.
            let excess = |y: &Tokens| energy_excess(y, beta).unwrap();

            let mut sa = Sa::new(beta).unwrap();
            let fd = flow_derivative(&mut sa, &x, FD_H, excess);
            let r = energy_rate(&x, beta, Normalization::Softmax).unwrap();
            assert!(r.rate >= 0.0 && relative_error(r.rate, fd) <= tol, "SA β={beta}: {} vs {fd}", r.rate);

            let mut usa = Usa::new(beta, Clock::Physical).unwrap();
            let fd = flow_derivative(&mut usa, &x, FD_H * (-beta).exp(), excess);
            let r = energy_rate(&x, beta, Normalization::Uniform).unwrap();
            assert!(r.rate >= 0.0 && relative_error(r.rate, fd) <= tol, "USA β={beta}: {} vs {fd}", r.rate);

            if beta > 0.0 {
                // The normalised rate on each field's own clock.
                let nbar = |y: &Tokens| normalized_energy(y, beta).unwrap();
                let fd = flow_derivative(&mut sa, &x, FD_H, nbar);
                let rs = energy_rate(&x, beta, Normalization::Softmax).unwrap();
                assert!(relative_error(rs.normalized_rate, fd) <= tol, "SA Ē β={beta}");
                let mut usa_tau = Usa::new(beta, Clock::Rescaled).unwrap();
                let fd = flow_derivative(&mut usa_tau, &x, FD_H, nbar);
                let ru = energy_rate(&x, beta, Normalization::Uniform).unwrap();
                assert!(relative_error(ru.normalized_rate, fd) <= tol, "USA Ē β={beta}");
            }
        }
    }
}

/// At β = 1e3 `dE/dt ~ e^{1000}` overflows, but `log_rate` and `normalized_rate` do not. On a
/// cluster of angular radius `s ≈ 1/√β` the weights are non-degenerate and the time scales are
/// `O(1)` in the SA clock and in rescaled USA time, so `fd_rel` at an effective β of 1 applies.
#[test]
fn energy_rate_is_finite_and_right_for_huge_beta() {
    let beta = 1e3;
    let x = tight_cluster(6, 4, 0.03, 9);
    let tol = fd_rel(1.0) * 10.0;

    let mut sa = Sa::new(beta).unwrap();
    let r = energy_rate(&x, beta, Normalization::Softmax).unwrap();
    assert!(r.rate.is_infinite() && r.log_rate.is_finite() && r.normalized_rate > 0.0);
    let fd = flow_derivative(&mut sa, &x, FD_H, |y| normalized_energy(y, beta).unwrap());
    assert!(relative_error(r.normalized_rate, fd) <= tol, "{} vs {fd}", r.normalized_rate);
    // d log E/dt = (dE/dt)/E, i.e. exp(log_rate − log_energy).
    let fd = flow_derivative(&mut sa, &x, FD_H, |y| log_energy(y, beta).unwrap());
    let want = (r.log_rate - log_energy(&x, beta).unwrap()).exp();
    assert!(relative_error(want, fd) <= tol, "{want} vs {fd}");

    let mut usa = Usa::new(beta, Clock::Rescaled).unwrap();
    let r = energy_rate(&x, beta, Normalization::Uniform).unwrap();
    assert!(r.log_rate.is_finite() && r.normalized_rate > 0.0);
    let fd = flow_derivative(&mut usa, &x, FD_H, |y| normalized_energy(y, beta).unwrap());
    assert!(relative_error(r.normalized_rate, fd) <= tol);

    for beta in [1e5f64, 1e6] {
        let y = tight_cluster(5, 3, 1.0 / beta.sqrt(), 4);
        for norm in [Normalization::Softmax, Normalization::Uniform] {
            let r = energy_rate(&y, beta, norm).unwrap();
            assert!(r.log_rate.is_finite() && r.normalized_rate.is_finite() && r.normalized_rate > 0.0);
        }
    }
}

#[test]
fn energy_rate_vanishes_at_equilibria_and_agrees_between_sa_and_usa_at_beta_zero() {
    // All tokens equal: P B_i = 0 exactly.
    let same = Tokens::from_fn(3, 4, |k, _| if k == 1 { 1.0 } else { 0.0 });
    let r = energy_rate(&same, 2.0, Normalization::Softmax).unwrap();
    assert_eq!((r.rate, r.log_rate, r.normalized_rate), (0.0, f64::NEG_INFINITY, 0.0));
    // The regular simplex and the n-gon are equilibria: the rate is rounding noise.
    for x in [regular_polytope(Polytope::Simplex(5), 4).unwrap(), regular_ngon(6, 3).unwrap()] {
        for norm in [Normalization::Softmax, Normalization::Uniform] {
            let r = energy_rate(&x, 3.0, norm).unwrap();
            assert!(r.rate <= 1e-24, "{norm:?}: {}", r.rate);
        }
    }
    // At β = 0, Z_i = n: the two flows coincide.
    let x = uniform_sphere_seeded(6, 3, 8).unwrap();
    let a = energy_rate(&x, 0.0, Normalization::Softmax).unwrap();
    let b = energy_rate(&x, 0.0, Normalization::Uniform).unwrap();
    assert!(relative_error(a.rate, b.rate) <= 64.0 * EPS);
    assert_eq!(a.normalized_rate, 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The energy is a Lyapunov function: its rate is non-negative for both flows.
    #[test]
    fn energy_rate_is_non_negative(n in 2..12usize, d in 2..8usize, beta in 0.0..20.0f64, seed in any::<u64>()) {
        let x = uniform_sphere_seeded(n, d, seed).unwrap();
        for norm in [Normalization::Softmax, Normalization::Uniform] {
            let r: EnergyRate = energy_rate(&x, beta, norm).unwrap();
            prop_assert!(r.rate >= 0.0 && r.normalized_rate >= 0.0);
        }
        let v = normalized_energy(&x, beta).unwrap();
        prop_assert!(v >= 1.0 / n as f64 - 4.0 * EPS && v <= 1.0);
    }

    /// Energies depend only on the Gram matrix: invariant under rotations and permutations.
    #[test]
    fn energies_are_rotation_and_permutation_invariant(n in 2..10usize, d in 2..7usize, beta in 0.0..5.0f64, seed in any::<u64>()) {
        let mut rng = rng_from_seed(seed);
        let x = uniform_sphere(n, d, &mut rng).unwrap();
        let q = random_orthogonal(d, &mut rng);
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let y = (&q * &x).select_columns(perm.iter());
        // Each Gram entry moves by ~dε under the rotation; the sums of n² terms by ~n²ε relative.
        let tol = 64.0 * ((n * n) as f64 + d as f64 + beta) * EPS;
        prop_assert!(relative_error(normalized_energy(&y, beta).unwrap(), normalized_energy(&x, beta).unwrap()) <= tol);
        prop_assert!(relative_error(energy_excess(&y, beta).unwrap(), energy_excess(&x, beta).unwrap()) <= tol * 1e3);
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

#[test]
fn clusters_find_separated_groups() {
    // Three tight groups (radius ~0.01) around e1, e2, e3, interleaved.
    let centres = [0usize, 1, 2, 0, 1, 2, 2, 0];
    let mut rng = rng_from_seed(1);
    let mut x = Tokens::from_fn(3, centres.len(), |k, i| {
        let g: f64 = StandardNormal.sample(&mut rng);
        (if k == centres[i] { 1.0 } else { 0.0 }) + 0.01 * g
    });
    dynamics::tokens::normalize_columns(&mut x).unwrap();
    assert_eq!(clusters(&x, 0.9).unwrap(), vec![vec![0, 3, 7], vec![1, 4], vec![2, 5, 6]]);
    assert_eq!(cluster_count(&x, 0.9).unwrap(), 3);
    // Every pair passes a threshold of −1; none passes one above 1.
    assert_eq!(cluster_count(&x, -1.0).unwrap(), 1);
    assert_eq!(cluster_count(&x, 1.0 + 1e-9).unwrap(), centres.len());
    assert_eq!(cluster_count(&x.columns(0, 1).into_owned(), 0.5).unwrap(), 1);
}

#[test]
fn single_linkage_chains_along_an_arc() {
    // Points 0.1 rad apart on an arc of 1.5 rad: neighbours have cos 0.995, the ends cos 0.07.
    let x = Tokens::from_fn(2, 16, |k, i| {
        let a = 0.1 * i as f64;
        if k == 0 {
            a.cos()
        } else {
            a.sin()
        }
    });
    assert_eq!(cluster_count(&x, 0.99).unwrap(), 1);
    assert_eq!(cluster_count(&x, 0.999).unwrap(), 16);
}

#[test]
fn clusters_refuse_bad_input() {
    let x = uniform_sphere_seeded(4, 3, 0).unwrap();
    assert!(matches!(clusters(&x, f64::NAN), Err(DynamicsError::InvalidParameter { name: "threshold", .. })));
    let mut y = x.clone();
    y[(0, 0)] = f64::INFINITY;
    assert!(matches!(cluster_count(&y, 0.5), Err(DynamicsError::NonFinite { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Clusters partition the tokens, are nested as the threshold rises, and relabel with a
    /// permutation.
    #[test]
    fn clusters_partition_nest_and_permute(n in 1..16usize, d in 2..6usize, t in -1.0..1.0f64, seed in any::<u64>()) {
        let mut rng = rng_from_seed(seed);
        let x = uniform_sphere(n, d, &mut rng).unwrap();
        let parts = clusters(&x, t).unwrap();
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        // Every cluster at a higher threshold lies inside one at t.
        let finer = clusters(&x, (t + 0.3).min(1.0)).unwrap();
        for c in &finer {
            prop_assert!(parts.iter().any(|p| c.iter().all(|i| p.contains(i))));
        }
        // Relabelling: cluster sizes are permutation invariant.
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let y = x.select_columns(perm.iter());
        let mut a: Vec<usize> = parts.iter().map(Vec::len).collect();
        let mut b: Vec<usize> = clusters(&y, t).unwrap().iter().map(Vec::len).collect();
        a.sort_unstable();
        b.sort_unstable();
        prop_assert_eq!(a, b);
    }
}

// ---------------------------------------------------------------------------------------------
// Open hemisphere
// ---------------------------------------------------------------------------------------------

/// Checks a certificate against the data, independently of the implementation's own check.
/// `Open`: `|w| = 1` and `min_i ⟨θ_i,w⟩ = margin > 0` (recomputed; a dot product of unit vectors has
/// error ≤ dε). `NotOpen`: weights ≥ 0 summing to 1 (n·ε) with `|Σ λ_i θ_i| = residual`.
fn check_certificate(x: &Tokens, h: &Hemisphere) {
    let mut theta = x.clone();
    dynamics::tokens::normalize_columns(&mut theta).unwrap();
    let (d, n) = theta.shape();
    match h {
        Hemisphere::Open { w, margin } => {
            let w = DVector::from_column_slice(w);
            assert!((w.norm() - 1.0).abs() <= 4.0 * d as f64 * EPS);
            let m = theta.column_iter().map(|c| c.dot(&w)).fold(f64::INFINITY, f64::min);
            assert!(*margin > 0.0 && (m - margin).abs() <= 4.0 * d as f64 * EPS, "{m} vs {margin}");
        }
        Hemisphere::NotOpen { weights, residual } => {
            assert_eq!(weights.len(), n);
            assert!(weights.iter().all(|&l| l >= 0.0));
            assert!((weights.iter().sum::<f64>() - 1.0).abs() <= 4.0 * n as f64 * EPS);
            let r = (&theta * DVector::from_column_slice(weights)).norm();
            assert!((r - residual).abs() <= 4.0 * (n + d) as f64 * EPS);
        }
    }
}

/// Residual below which a `NotOpen` certificate is "exact": the refinement on the support solves
/// a KKT system of size ≤ n + 1 whose solution has error ~cond·(n+d)ε; 1e-12 leaves a wide margin
/// for the well-conditioned configurations below.
const EXACT_RESIDUAL: f64 = 1e-12;

#[test]
fn data_in_a_known_hemisphere_are_open() {
    let mut rng = rng_from_seed(77);
    for trial in 0..20 {
        let (n, d) = (3 + trial % 17, 2 + trial % 6);
        let mut x = uniform_sphere(n, d, &mut rng).unwrap();
        // Reflect into the hemisphere ⟨x, e_1⟩ > 0, keeping away from its boundary.
        for mut c in x.column_iter_mut() {
            if c[0] < 0.0 {
                c.neg_mut();
            }
            c[0] += 0.05;
        }
        dynamics::tokens::normalize_columns(&mut x).unwrap();
        let h = open_hemisphere(&x).unwrap();
        assert!(h.is_open(), "trial {trial}: {h:?}");
        check_certificate(&x, &h);
    }
}

#[test]
fn antipodal_and_boundary_configurations_are_not_open() {
    let mut rng = rng_from_seed(5);
    // An antipodal pair among random points (d = 4): 0 = (x_0 + x_1)/2.
    let mut x = uniform_sphere(6, 4, &mut rng).unwrap();
    let c = x.column(0).into_owned();
    x.column_mut(1).copy_from(&(-c));
    let h = open_hemisphere(&x).unwrap();
    check_certificate(&x, &h);
    let Hemisphere::NotOpen { residual, .. } = h else { panic!("antipodal pair reported open: {h:?}") };
    assert!(residual <= EXACT_RESIDUAL);

    // The origin on the boundary of the hull: e1, −e1, e2 (closed but not open hemisphere).
    let x = Tokens::from_column_slice(3, 3, &[1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let h = open_hemisphere(&x).unwrap();
    check_certificate(&x, &h);
    assert!(!h.is_open());

    // Equally spaced points on a great circle of S²: 0 is in the relative interior of a flat hull.
    for n in [3, 4, 7] {
        let x = regular_ngon(n, 3).unwrap();
        let h = open_hemisphere(&x).unwrap();
        check_certificate(&x, &h);
        let Hemisphere::NotOpen { residual, .. } = h else { panic!("{n}-gon reported open") };
        assert!(residual <= EXACT_RESIDUAL);
    }

    // The regular simplex and the cross-polytope contain the origin in their interior.
    for x in [
        regular_polytope(Polytope::Simplex(4), 3).unwrap(),
        regular_polytope(Polytope::Simplex(7), 6).unwrap(),
        equiangular(5, 5, -0.25).unwrap(),
        regular_polytope(Polytope::CrossPolytope, 4).unwrap(),
        regular_polytope(Polytope::Icosahedron, 3).unwrap(),
    ] {
        let h = open_hemisphere(&x).unwrap();
        check_certificate(&x, &h);
        let Hemisphere::NotOpen { residual, weights } = h else { panic!("polytope reported open") };
        assert!(residual <= EXACT_RESIDUAL, "{residual} {weights:?}");
    }
}

#[test]
fn near_boundary_configurations_open_with_a_small_margin() {
    // An antipodal pair tilted by δ towards e2 is in the open hemisphere around e2, margin ~δ.
    for delta in [1e-2, 1e-4, 1e-6] {
        let x = Tokens::from_column_slice(2, 2, &[1.0, delta, -1.0, delta]);
        let h = open_hemisphere(&x).unwrap();
        check_certificate(&x, &h);
        let Hemisphere::Open { margin, .. } = h else { panic!("δ = {delta}: {h:?}") };
        assert!(margin > 0.5 * delta && margin <= 1.01 * delta, "δ = {delta}: {margin}");
    }
    // Tiny cases and equiangular data with ρ₀ above the simplex value.
    let one = uniform_sphere_seeded(1, 3, 0).unwrap();
    assert!(open_hemisphere(&one).unwrap().is_open());
    let x = equiangular(5, 5, -0.2).unwrap();
    assert!(open_hemisphere(&x).unwrap().is_open());
    // Unnormalised input: only directions matter.
    let mut y = uniform_sphere_seeded(4, 6, 3).unwrap();
    y.column_mut(1).scale_mut(1e3);
    assert!(open_hemisphere(&y).unwrap().is_open());
}

#[test]
fn open_hemisphere_refuses_bad_input() {
    let mut x = uniform_sphere_seeded(4, 3, 0).unwrap();
    x.column_mut(3).fill(0.0);
    assert_eq!(open_hemisphere(&x), Err(DynamicsError::ZeroVector { index: 3 }));
    x[(0, 3)] = f64::NAN;
    assert!(matches!(open_hemisphere(&x), Err(DynamicsError::NonFinite { .. })));
    assert!(matches!(open_hemisphere(&Tokens::zeros(3, 0)), Err(DynamicsError::ShapeMismatch { .. })));
}

/// Wendel's formula `P(n i.i.d. uniform points on S^{d−1} lie in an open hemisphere)
/// = 2^{−(n−1)} Σ_{k<d} C(n−1,k)`.
fn wendel(n: usize, d: usize) -> f64 {
    let mut binom = 1.0;
    let mut sum = 0.0;
    for k in 0..d.min(n) {
        sum += binom;
        binom = binom * (n - 1 - k) as f64 / (k + 1) as f64;
    }
    sum / 2f64.powi(n as i32 - 1)
}

/// Monte-Carlo check of Wendel's formula with the exact test, `DRAWS` seeded draws per case.
/// The count of open draws is Binomial(DRAWS, p), so the empirical frequency has standard error
/// `sqrt(p(1−p)/DRAWS)`; the check allows `WENDEL_SIGMAS` = 4.5 of them. Under the normal
/// approximation a correct implementation fails a given case with probability
/// `2Φ(−4.5) ≈ 6.8e-6` (≈ 3e-5 over the four random cases); the seeds are fixed, so the outcome is
/// deterministic and that probability is the chance of having picked an unlucky seed. For `d ≥ n`
/// (p = 1, standard error 0) every draw must be open.
#[test]
fn wendel_formula_holds_for_the_exact_test() {
    const DRAWS: usize = 4000;
    const WENDEL_SIGMAS: f64 = 4.5;
    assert_eq!(wendel(6, 3), 0.5);
    assert_eq!(wendel(8, 4), 0.5);
    assert_eq!(wendel(5, 5), 1.0);
    for (n, d, seed) in [(6, 3, 1u64), (8, 4, 2), (6, 4, 3), (10, 3, 4), (5, 5, 5), (3, 7, 6)] {
        let p = wendel(n, d);
        let mut rng = rng_from_seed(seed);
        let mut open = 0usize;
        for _ in 0..DRAWS {
            let x = uniform_sphere(n, d, &mut rng).unwrap();
            let h = open_hemisphere(&x).unwrap();
            if let Hemisphere::NotOpen { residual, .. } = &h {
                assert!(*residual <= EXACT_RESIDUAL, "(n, d) = ({n}, {d}): residual {residual}");
            }
            open += h.is_open() as usize;
        }
        let freq = open as f64 / DRAWS as f64;
        let se = (p * (1.0 - p) / DRAWS as f64).sqrt();
        assert!(
            (freq - p).abs() <= WENDEL_SIGMAS * se,
            "(n, d) = ({n}, {d}): frequency {freq}, Wendel {p}, 4.5 s.e. = {}",
            WENDEL_SIGMAS * se
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every answer carries a valid certificate, for random sizes straddling d = n.
    #[test]
    fn hemisphere_certificates_are_valid(n in 1..14usize, d in 2..8usize, seed in any::<u64>()) {
        let x = uniform_sphere_seeded(n, d, seed).unwrap();
        let h = open_hemisphere(&x).unwrap();
        check_certificate(&x, &h);
        if d >= n {
            // Wendel: probability 1 (n ≤ d generic points are linearly independent).
            prop_assert!(h.is_open());
        }
        // Antipodal completion: adding −x_0 always closes the hemisphere.
        let mut y = Tokens::zeros(d, n + 1);
        y.columns_mut(0, n).copy_from(&x);
        y.column_mut(n).copy_from(&(-x.column(0)));
        let hy = open_hemisphere(&y).unwrap();
        check_certificate(&y, &hy);
        prop_assert!(!hy.is_open());
    }
}

// ---------------------------------------------------------------------------------------------
// Contraction law
// ---------------------------------------------------------------------------------------------

/// Exact data are fitted to rounding: `log y` carries relative error ε, the centred least-squares
/// sums of K ≤ 40 terms add `~Kε` relative, so slope and intercept are within `FIT_TOL` = 1e-10 of
/// the truth for the O(1)–O(10) values below.
const FIT_TOL: f64 = 1e-10;

#[test]
fn exact_exponential_and_power_laws_are_recovered() {
    let y: Vec<f64> = (1..=20).map(|k| 3.0 * (-0.4 * k as f64).exp()).collect();
    let f = fit_contraction(1, &y).unwrap();
    assert!((f.exponential.slope + 0.4).abs() <= FIT_TOL);
    assert!((f.exponential.intercept - 3f64.ln()).abs() <= FIT_TOL);
    assert!((f.exponential.r_squared - 1.0).abs() <= FIT_TOL && f.exponential.rmse <= FIT_TOL);
    assert!(f.power.r_squared < 0.99);
    assert_eq!((f.better, f.points), (Law::Exponential, 20));

    let y: Vec<f64> = (3..=40).map(|k| 2.0 * (k as f64).powf(-2.0)).collect();
    let f = fit_contraction(3, &y).unwrap();
    assert!((f.power.slope + 2.0).abs() <= FIT_TOL && (f.power.intercept - 2f64.ln()).abs() <= FIT_TOL);
    assert!(f.power.rmse <= FIT_TOL && f.exponential.rmse > 0.1);
    assert_eq!(f.better, Law::Power);

    // k0 = 0: the point at k = 0 is left out of both fits (log 0 is undefined).
    let y: Vec<f64> = (0..10).map(|k| if k == 0 { 123.0 } else { (k as f64).powf(-1.5) }).collect();
    let f = fit_contraction(0, &y).unwrap();
    assert_eq!((f.points, f.better), (9, Law::Power));
    assert!((f.power.slope + 1.5).abs() <= FIT_TOL);

    // Arbitrary times.
    let t = [0.5, 1.0, 2.0, 4.0, 8.0];
    let y: Vec<f64> = t.iter().map(|t: &f64| (-2.0 * t).exp()).collect();
    let f = fit_contraction_times(&t, &y).unwrap();
    assert!((f.exponential.slope + 2.0).abs() <= FIT_TOL && f.better == Law::Exponential);
}

#[test]
fn noisy_data_pick_the_right_law() {
    // Multiplicative log-normal noise σ = 0.05 over 24 layers: the wrong law's residual from the
    // curvature of log k against k is ~10× larger than σ.
    let mut rng = rng_from_seed(42);
    for _ in 0..20 {
        let noise: Vec<f64> = (0..24)
            .map(|_| 0.05 * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng))
            .collect();
        let expo: Vec<f64> = (1..=24).map(|k| (0.5 - 0.3 * k as f64 + noise[k - 1]).exp()).collect();
        let pow: Vec<f64> = (1..=24).map(|k| (0.5 - 2.0 * (k as f64).ln() + noise[k - 1]).exp()).collect();
        let fe: ContractionFit = fit_contraction(1, &expo).unwrap();
        let fp = fit_contraction(1, &pow).unwrap();
        assert_eq!(fe.better, Law::Exponential);
        assert_eq!(fp.better, Law::Power);
        assert!((fe.exponential.slope + 0.3).abs() < 0.02 && (fp.power.slope + 2.0).abs() < 0.1);
    }
}

#[test]
fn contraction_fit_refuses_bad_input() {
    let y = [0.5, 0.25, 0.0, 0.1];
    assert_eq!(
        fit_contraction(4, &y).unwrap_err(),
        DynamicsError::InvalidSize {
            name: "layer",
            value: 6,
            allowed: "layers whose y_k = 1 − mean cosine is finite and > 0 (log-space fits)",
        }
    );
    assert!(matches!(
        fit_contraction(1, &[0.5, -1.0, 0.2]),
        Err(DynamicsError::InvalidSize { name: "layer", value: 2, .. })
    ));
    assert!(matches!(
        fit_contraction(1, &[0.5, f64::NAN, 0.2]),
        Err(DynamicsError::InvalidSize { name: "layer", value: 2, .. })
    ));
    assert!(matches!(
        fit_contraction(1, &[0.5, 0.2]),
        Err(DynamicsError::InvalidSize { name: "points", value: 2, .. })
    ));
    // Three values but one at k = 0: only two points remain.
    assert!(matches!(
        fit_contraction(0, &[0.5, 0.2, 0.1]),
        Err(DynamicsError::InvalidSize { name: "points", .. })
    ));
    assert!(matches!(
        fit_contraction_times(&[1.0, 2.0], &[0.5, 0.2, 0.1]),
        Err(DynamicsError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        fit_contraction_times(&[1.0, 1.0, 2.0], &[0.5, 0.2, 0.1]),
        Err(DynamicsError::InvalidParameter { name: "time", .. })
    ));
    assert!(matches!(
        fit_contraction_times(&[1.0, -1.0, 2.0], &[0.5, 0.2, 0.1]),
        Err(DynamicsError::InvalidParameter { name: "time", .. })
    ));
}

#[test]
fn report_types_are_serializable() {
    fn serializable<T: serde::Serialize>() {}
    serializable::<ContractionFit>();
    serializable::<LinearFit>();
    serializable::<Law>();
    serializable::<EnergyRate>();
    serializable::<Hemisphere>();
}

#[test]
fn mean_gap_is_one_minus_rho_for_equiangular_data() {
    // From the Gram construction, ⟨x_i,x_j⟩ = ρ₀ to ~1e-15; the chord keeps that absolute accuracy.
    for (n, rho0) in [(3, 0.2), (6, -0.1), (4, 1.0 - 1e-9)] {
        let x = dynamics::tokens::equiangular(n, n + 1, rho0).unwrap();
        let gap = dynamics::diagnostics::mean_gap(&x).unwrap();
        assert!((gap - (1.0 - rho0)).abs() < 1e-14, "n={n} ρ₀={rho0}: {gap}");
    }
    assert!(dynamics::diagnostics::mean_gap(&dynamics::Tokens::zeros(3, 1)).is_err());
}
