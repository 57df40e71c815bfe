//! Integrator tests: measured convergence orders, how far each method strays from the sphere, the
//! adaptive method against its tolerance, the driver's control flow, and refusal of bad input.
//!
//! Run with `--nocapture` to see the measured slopes and drifts.

use dynamics::field::{Manifold, Normalization};
use dynamics::integrate::{
    integrate, integrate_to, sphere_tolerance, Control, CrouchGrossman3, DormandPrince54, IntegrateConfig,
    Integrator, Outcome, Rk4, Tolerances,
};
use dynamics::tokens::{self, Tokens};
use dynamics::{Clock, DynamicsError, Kuramoto, PreLn, Sa, Usa, VectorField};

/// Unit roundoff `u = ε/2`.
const U: f64 = f64::EPSILON / 2.0;

/// Allowed distance of the measured slope from the nominal order (the product specification).
const ORDER_TOL: f64 = 0.2;

/// The convergence problem: SA with β = 1, n = 5 tokens in d = 3, to T = 1.
const BETA: f64 = 1.0;
const N: usize = 5;
const D: usize = 3;
const T: f64 = 1.0;

/// The errors are averaged over this many seeded initial configurations (seeds 1..=16).
///
/// Why an ensemble: Dormand–Prince chose their coefficients to minimise the fifth-order principal
/// error, so on this problem the `h⁶` term is as large as the `h⁵` term down to `h ≈ 1/64`, and for
/// a single initial configuration the two partially cancel or reinforce: the local slopes of single
/// runs for `h ∈ [1/32, 1/8]` range over 4.3–5.6 depending on the seed (RK4 and CG3 are unaffected,
/// 3.9–4.0 and 3.0–3.1). Averaging the error norm over an ensemble removes the configuration-specific
/// cancellation, without choosing a favourable seed.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=16;

/// Reference step: Dormand–Prince 5 with `h = 1/512`. Its truncation error is ≈ `C h⁵` with
/// `C ≈ 5·10⁻⁵` (fitted from the DP5 errors below: `4.3·10⁻¹⁴` at `h = 1/64`), i.e. ≈ `10⁻¹⁸`; its
/// accumulated rounding over 512 steps is measured at 1–4·10⁻¹⁵ (the difference to `h = 1/256`).
/// Both are below 1/300 of the smallest error used in a fit (`≥ 10⁻¹²`), which moves a slope by
/// less than `log(1.003)/log(2) < 0.005`.
const H_REF: f64 = 1.0 / 512.0;

fn sa() -> Sa {
    Sa::new(BETA).expect("valid β")
}

fn run(field: &mut dyn VectorField, method: &mut dyn Integrator, x0: &Tokens, t_end: f64) -> Outcome {
    let config = IntegrateConfig::new(t_end, 10_000_000).expect("valid config");
    integrate(field, method, x0, &config, &mut |_, _| Control::Continue).expect("integration succeeds")
}

fn sci(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.2e}")).collect();
    format!("[{}]", parts.join(", "))
}

/// Least-squares slope of `log e` against `log h`.
fn slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

/// Ensemble-mean Frobenius error at `T` of `make(h)` for each `h = T/steps`.
fn ensemble_errors(steps: &[usize], make: &dyn Fn(f64) -> Box<dyn Integrator>) -> (Vec<f64>, Vec<f64>) {
    let hs: Vec<f64> = steps.iter().map(|&s| T / s as f64).collect();
    let mut errs = vec![0.0; hs.len()];
    let count = SEEDS.count() as f64;
    for seed in SEEDS {
        let x0 = tokens::uniform_sphere_seeded(N, D, seed).unwrap();
        let reference = run(&mut sa(), &mut DormandPrince54::fixed(H_REF).unwrap(), &x0, T).x;
        for (e, &h) in errs.iter_mut().zip(&hs) {
            let x = run(&mut sa(), make(h).as_mut(), &x0, T).x;
            *e += (&x - &reference).norm() / count;
        }
    }
    (hs, errs)
}

fn check_order(name: &str, nominal: f64, steps: &[usize], make: &dyn Fn(f64) -> Box<dyn Integrator>) {
    let (hs, errs) = ensemble_errors(steps, make);
    let p = slope(&hs, &errs);
    println!("{name}: measured order {p:.3} (nominal {nominal}); h = T/{steps:?}, errors {}", sci(&errs));
    assert!(errs.iter().all(|&e| e >= 1e-12), "{name}: an error fell below 1e-12: {errs:?}");
    assert!((p - nominal).abs() <= ORDER_TOL, "{name}: slope {p} vs nominal {nominal}");
}

// How the h ranges were chosen: with a first sweep over h = 1/4 … 1/64 (errors printed by these
// tests), the upper end is the largest h whose successive local slopes are already within 0.1 of
// the nominal order, and the lower end the smallest h whose ensemble error is still ≥ 10⁻¹² (three
// orders of magnitude above the reference's rounding). RK4 errors run 6·10⁻⁷ … 1.5·10⁻¹⁰ for
// h = 1/8 … 1/64 (local slopes 3.91–3.99); DP5's fall below 10⁻¹² just after h = 1/32, so its range
// is the narrower 1/8 … 1/32 with intermediate sizes (local slopes 4.85–4.95); CG3 has the largest
// error constant and stays asymptotic (3.00–3.05) down to h = 1/128.

#[test]
fn rk4_has_order_4() {
    check_order("RK4", 4.0, &[8, 16, 32, 64], &|h| Box::new(Rk4::new(h).unwrap()));
}

#[test]
fn dormand_prince_fixed_step_has_order_5() {
    check_order("DP5 fixed", 5.0, &[8, 12, 16, 24, 32], &|h| Box::new(DormandPrince54::fixed(h).unwrap()));
}

#[test]
fn crouch_grossman_has_order_3() {
    check_order("CG3", 3.0, &[8, 16, 32, 64, 128], &|h| Box::new(CrouchGrossman3::new(h).unwrap()));
}

/// After normalising a column, `| |x_i| − 1 | ≤ (d/2 + 2)u` (sum of `d` squares: `d·u` relative,
/// halved by the square root, plus `u` for the root and `u` per division), and measuring it with
/// `sphere_drift` adds `(d/2 + 1)u`: at most `(d + 3)u`. Independent of `n`: every column is
/// normalised on its own and the drift is a maximum over columns.
fn projected_drift_bound(d: usize) -> f64 {
    (d as f64 + 3.0) * U
}

/// Drift of the Lie method before its clean-up normalisation: the input is on the sphere within
/// `(d + 3)u` (previous clean-up); each of the three rotations forms two dot products (relative
/// error `≤ d·u` each) and two updates (`≤ 2u` per entry on a vector of norm `≤ 3`), changing the
/// norm by at most `(2d + 8)u`; measuring adds `(d/2 + 1)u`.
fn lie_drift_bound(d: usize) -> f64 {
    let d = d as f64;
    ((d + 3.0) + 3.0 * (2.0 * d + 8.0) + (d / 2.0 + 1.0)) * U
}

#[test]
fn every_method_stays_on_the_sphere_to_rounding() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 1).unwrap();
    let methods: Vec<Box<dyn Integrator>> = vec![
        Box::new(Rk4::new(0.05).unwrap()),
        Box::new(DormandPrince54::fixed(0.05).unwrap()),
        Box::new(DormandPrince54::new(Tolerances::new(1e-9, 1e-9).unwrap(), 0.01).unwrap()),
        Box::new(CrouchGrossman3::new(0.05).unwrap()),
    ];
    for mut m in methods {
        let mut worst: f64 = 0.0;
        let config = IntegrateConfig::new(5.0, 100_000).unwrap();
        let out = integrate(&mut sa(), m.as_mut(), &x0, &config, &mut |_, x| {
            worst = worst.max(tokens::sphere_drift(x));
            Control::Continue
        })
        .unwrap();
        println!(
            "{}: drift after each step ≤ {worst:.2e} (bound {:.2e}); before projection ≤ {:.2e}",
            m.name(),
            projected_drift_bound(D),
            out.max_sphere_drift
        );
        assert!(worst <= projected_drift_bound(D), "{}: {worst:e}", m.name());
    }
}

#[test]
fn lie_method_needs_no_projection() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 2).unwrap();
    for d in [3, 16] {
        let x0 = if d == D { x0.clone() } else { tokens::uniform_sphere_seeded(N, d, 2).unwrap() };
        let out = run(&mut sa(), &mut CrouchGrossman3::new(0.05).unwrap(), &x0, 5.0);
        println!(
            "CG3 d = {d}: drift before clean-up ≤ {:.2e} (bound {:.2e})",
            out.max_sphere_drift,
            lie_drift_bound(d)
        );
        assert!(out.max_sphere_drift <= lie_drift_bound(d));
    }
}

/// RK4's local error is `O(h⁵)`, and so is its normal component, which is what the projection
/// removes: halving `h` must divide the per-step drift by ≈ 32.
#[test]
fn rk4_drift_before_projection_scales_like_h5() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 3).unwrap();
    let hs = [0.2, 0.1, 0.05, 0.025];
    let drifts: Vec<f64> =
        hs.iter().map(|&h| run(&mut sa(), &mut Rk4::new(h).unwrap(), &x0, T).max_sphere_drift).collect();
    let p = slope(&hs, &drifts);
    println!("RK4 drift before projection: {}, slope {p:.3}", sci(&drifts));
    // Measured ≈ 5: the drift is a single-step quantity, no accumulation over steps.
    assert!((p - 5.0).abs() <= 0.5, "slope {p}");
}

/// The adaptive method against its tolerance. A rigorous bound would be (number of steps) ×
/// (local tolerance) × `e^{LT}`; in practice, because the propagated fifth-order solution is far
/// more accurate than the fourth-order one whose error is controlled (local extrapolation), the
/// global error is about `tol`. `100·rtol·T` leaves two orders of magnitude for accumulation and
/// Lipschitz growth on this smooth, contracting problem (`|x| ≤ 1`, so `atol + rtol|y| ≤ 2·tol`).
#[test]
fn adaptive_dormand_prince_meets_its_tolerance() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 4).unwrap();
    let reference = run(&mut sa(), &mut DormandPrince54::fixed(H_REF).unwrap(), &x0, T).x;
    let mut last_err = f64::INFINITY;
    for tol in [1e-5, 1e-7, 1e-9, 1e-11] {
        let mut m = DormandPrince54::new(Tolerances::new(tol, tol).unwrap(), 0.1).unwrap();
        let out = run(&mut sa(), &mut m, &x0, T);
        let err = (&out.x - &reference).amax();
        let stats = m.stats();
        println!(
            "DP54 tol {tol:.0e}: error {err:.2e}, {} accepted / {} rejected, {} evaluations",
            stats.accepted, stats.rejected, stats.evaluations
        );
        assert!(err <= 100.0 * tol * T, "tol {tol}: error {err}");
        assert!(err < last_err, "error must shrink with the tolerance");
        assert_eq!(stats.accepted, out.steps);
        // On the sphere every step evaluates its first stage at the projected point (7 evaluations
        // per accepted step); a retry after a rejection reuses it (6 more).
        assert_eq!(stats.evaluations, 7 * stats.accepted + 6 * stats.rejected);
        last_err = err;
    }
}

#[test]
fn adaptive_step_rejects_a_too_large_first_step_and_recovers() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 5).unwrap();
    let mut m = DormandPrince54::new(Tolerances::new(1e-10, 1e-10).unwrap(), 1.0).unwrap();
    let out = run(&mut sa(), &mut m, &x0, 2.0);
    assert!(m.rejected() >= 1, "h0 = 1 at tol 1e-10 must be rejected");
    assert_eq!(m.accepted(), out.steps);
    assert_eq!(out.t, 2.0);
}

/// Off the sphere nothing is projected, so the last stage is reused as the next first stage (FSAL):
/// 6 evaluations per attempt plus the very first one; and the result equals a run without reuse.
#[test]
fn first_same_as_last_off_the_sphere() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 6).unwrap() * 1.5;
    let field = || PreLn::new(BETA, Normalization::Softmax, Clock::Physical).unwrap();
    let tol = Tolerances::new(1e-9, 1e-9).unwrap();
    let mut m = DormandPrince54::new(tol, 0.05).unwrap();
    let out = run(&mut field(), &mut m, &x0, 2.0);
    let s = m.stats();
    assert_eq!(s.evaluations, 1 + 6 * (s.accepted + s.rejected));

    // The same steps, each from a fresh state copy, so the cache can never match.
    let mut m2 = DormandPrince54::new(tol, 0.05).unwrap();
    let (mut t, mut x) = (0.0, x0.clone());
    let mut f = field();
    while t < 2.0 {
        let mut fresh = x.clone();
        t = m2.step(&mut f, t, 2.0, &mut fresh).unwrap();
        x = fresh;
    }
    let diff = (&x - &out.x).amax();
    assert!(diff <= 1e-15, "FSAL changed the result by {diff:e}");
}

#[test]
fn fixed_steps_land_exactly_on_t_end() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 7).unwrap();
    for steps in [3usize, 7, 10, 1000] {
        let h = 0.7 / steps as f64;
        let out = run(&mut sa(), &mut Rk4::new(h).unwrap(), &x0, 0.7);
        assert_eq!(out.t, 0.7);
        assert_eq!(out.steps, steps, "h = 0.7/{steps}");
    }
    // A step longer than the interval is clipped.
    let out = run(&mut sa(), &mut CrouchGrossman3::new(10.0).unwrap(), &x0, 0.3);
    assert_eq!((out.t, out.steps), (0.3, 1));
}

#[test]
fn observer_sees_every_step_and_can_stop_early() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 8).unwrap();
    let mut times = Vec::new();
    let config = IntegrateConfig::new(1000.0, 1_000_000).unwrap();
    // "Clustered": every pairwise inner product above 1 − 10⁻⁶.
    let out =
        integrate(&mut Sa::new(4.0).unwrap(), &mut Rk4::new(0.05).unwrap(), &x0, &config, &mut |t, x| {
            times.push(t);
            let g = x.tr_mul(x);
            if g.iter().all(|&v| v > 1.0 - 1e-6) {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert_eq!(times[0], 0.0);
    assert_eq!(times.len(), out.steps + 1);
    assert_eq!(*times.last().unwrap(), out.t);
    assert!(out.t < 1000.0, "SA clusters long before t = 1000");
    println!("clustered at t = {:.2} after {} steps", out.t, out.steps);

    let stop_now =
        integrate(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, &config, &mut |_, _| Control::Stop).unwrap();
    assert_eq!((stop_now.t, stop_now.steps, &stop_now.x), (0.0, 0, &x0));
}

#[test]
fn zero_length_run_returns_the_initial_state() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 9).unwrap();
    let out = run(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, 0.0);
    assert_eq!((out.t, out.steps, out.max_sphere_drift), (0.0, 0, 0.0));
    assert_eq!(out.x, x0);
}

#[test]
fn step_budget_is_enforced() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 10).unwrap();
    let config = IntegrateConfig::new(1.0, 5).unwrap();
    let err = integrate(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, &config, &mut |_, _| Control::Continue);
    assert!(matches!(err, Err(DynamicsError::TooManySteps { max_steps: 5, .. })), "{err:?}");
    // Exactly enough steps is fine.
    let config = IntegrateConfig::new(1.0, 10).unwrap();
    assert!(integrate(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, &config, &mut |_, _| Control::Continue)
        .is_ok());
}

/// A field whose velocity is NaN: a fixed-step method produces a NaN state, the adaptive one keeps
/// rejecting until its step underflows.
struct NanField;

impl VectorField for NanField {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere
    }
    fn velocity(&mut self, _x: &Tokens, out: &mut Tokens) {
        out.fill(f64::NAN);
    }
}

#[test]
fn non_finite_states_are_errors() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 11).unwrap();
    let config = IntegrateConfig::new(1.0, 100).unwrap();
    let fixed: Vec<Box<dyn Integrator>> = vec![
        Box::new(Rk4::new(0.1).unwrap()),
        Box::new(DormandPrince54::fixed(0.1).unwrap()),
        Box::new(CrouchGrossman3::new(0.1).unwrap()),
    ];
    for mut m in fixed {
        let r = integrate(&mut NanField, m.as_mut(), &x0, &config, &mut |_, _| Control::Continue);
        assert!(matches!(r, Err(DynamicsError::NonFinite { .. })), "{}: {r:?}", m.name());
    }
    let mut adaptive = DormandPrince54::new(Tolerances::new(1e-6, 1e-6).unwrap(), 0.1).unwrap();
    let r = integrate(&mut NanField, &mut adaptive, &x0, &config, &mut |_, _| Control::Continue);
    assert!(matches!(r, Err(DynamicsError::StepSizeUnderflow { .. })), "{r:?}");

    let mut floored =
        DormandPrince54::new(Tolerances::new(1e-6, 1e-6).unwrap(), 0.1).unwrap().with_h_min(1e-3).unwrap();
    let r = integrate(&mut NanField, &mut floored, &x0, &config, &mut |_, _| Control::Continue);
    assert!(matches!(r, Err(DynamicsError::StepSizeUnderflow { h_min, .. }) if h_min == 1e-3), "{r:?}");
}

#[test]
fn euclidean_and_angle_fields_integrate_without_projection() {
    // Pre-LN tokens leave the sphere (their norms grow); RK4 must not project them back.
    let x0 = tokens::uniform_sphere_seeded(N, D, 12).unwrap();
    let mut preln = PreLn::new(BETA, Normalization::Softmax, Clock::Physical).unwrap();
    let out = run(&mut preln, &mut Rk4::new(0.05).unwrap(), &x0, 1.0);
    assert!(out.x.column_iter().all(|c| c.norm() > 1.1));
    assert_eq!(out.max_sphere_drift, 0.0);

    // Kuramoto angles: RK4 and DP54 agree.
    let theta0 = Tokens::from_row_slice(1, 4, &[0.0, 1.0, 2.5, 4.0]);
    let mut k = Kuramoto::new(2.0, Normalization::Softmax, Clock::Physical).unwrap();
    let a = run(&mut k, &mut Rk4::new(0.01).unwrap(), &theta0, 2.0).x;
    let b = run(
        &mut k,
        &mut DormandPrince54::new(Tolerances::new(1e-11, 1e-11).unwrap(), 0.01).unwrap(),
        &theta0,
        2.0,
    )
    .x;
    assert!((&a - &b).amax() < 1e-8);

    // The Lie method exists only on the sphere.
    let r = run_result(&mut preln, &mut CrouchGrossman3::new(0.1).unwrap(), &x0, 1.0);
    assert!(matches!(r, Err(DynamicsError::UnsupportedManifold { .. })), "{r:?}");
}

fn run_result(
    field: &mut dyn VectorField,
    method: &mut dyn Integrator,
    x0: &Tokens,
    t_end: f64,
) -> dynamics::Result<Outcome> {
    let config = IntegrateConfig::new(t_end, 1000)?;
    integrate(field, method, x0, &config, &mut |_, _| Control::Continue)
}

#[test]
fn integrate_to_is_integrate_without_an_observer() {
    let x0 = tokens::uniform_sphere_seeded(N, D, 13).unwrap();
    let a = integrate_to(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, 1.0).unwrap();
    let b = run(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, 1.0).x;
    assert_eq!(a, b);
}

#[test]
fn usa_integrates_on_both_clocks() {
    // USA in physical time t and in rescaled time τ = e^β t describe the same curve.
    let beta = 2.0;
    let x0 = tokens::uniform_sphere_seeded(N, D, 14).unwrap();
    let tol = Tolerances::new(1e-11, 1e-11).unwrap();
    let a = integrate_to(
        &mut Usa::new(beta, Clock::Physical).unwrap(),
        &mut DormandPrince54::new(tol, 0.01).unwrap(),
        &x0,
        0.5,
    )
    .unwrap();
    let b = integrate_to(
        &mut Usa::new(beta, Clock::Rescaled).unwrap(),
        &mut DormandPrince54::new(tol, 0.01).unwrap(),
        &x0,
        0.5 * beta.exp(),
    )
    .unwrap();
    assert!((&a - &b).amax() < 1e-8, "{:e}", (&a - &b).amax());
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

const BAD: [f64; 5] = [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

fn names(e: dynamics::Result<impl std::fmt::Debug>) -> &'static str {
    match e {
        Err(DynamicsError::InvalidParameter { name, .. }) => name,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn constructors_reject_bad_step_sizes_and_tolerances() {
    let good = Tolerances { rtol: 1e-6, atol: 1e-6 };
    for v in BAD {
        assert_eq!(names(Rk4::new(v)), "h");
        assert_eq!(names(CrouchGrossman3::new(v)), "h");
        assert_eq!(names(DormandPrince54::fixed(v)), "h");
        assert_eq!(names(DormandPrince54::new(good, v)), "h0");
        assert_eq!(names(DormandPrince54::new(Tolerances { rtol: v, atol: 1e-6 }, 0.1)), "rtol");
        assert_eq!(names(DormandPrince54::new(Tolerances { rtol: 1e-6, atol: v }, 0.1)), "atol");
        assert_eq!(names(Tolerances::new(v, 1e-6)), "rtol");
        assert_eq!(names(Tolerances::new(1e-6, v)), "atol");
    }
    for v in [-1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(names(DormandPrince54::fixed(0.1).unwrap().with_h_min(v)), "h_min");
    }
}

#[test]
fn config_rejects_bad_end_times_and_budgets() {
    for t in [-1.0, -1e-300, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(names(IntegrateConfig::new(t, 10)), "t_end");
    }
    assert!(matches!(
        IntegrateConfig::new(1.0, 0),
        Err(DynamicsError::InvalidSize { name: "max_steps", .. })
    ));
    // A config built by struct literal is re-validated by the driver.
    let x0 = tokens::uniform_sphere_seeded(N, D, 15).unwrap();
    let bad = IntegrateConfig { t_end: -1.0, max_steps: 10 };
    let r = integrate(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, &bad, &mut |_, _| Control::Continue);
    assert_eq!(names(r), "t_end");
    let bad = IntegrateConfig { t_end: 1.0, max_steps: 0 };
    let r = integrate(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, &bad, &mut |_, _| Control::Continue);
    assert!(matches!(r, Err(DynamicsError::InvalidSize { name: "max_steps", .. })));
    assert!(integrate_to(&mut sa(), &mut Rk4::new(0.1).unwrap(), &x0, f64::NAN).is_err());
}

#[test]
fn driver_rejects_bad_initial_states() {
    let mut rk = Rk4::new(0.1).unwrap();
    let good = tokens::uniform_sphere_seeded(N, D, 16).unwrap();

    let mut nan = good.clone();
    nan[(1, 2)] = f64::NAN;
    assert!(matches!(run_result(&mut sa(), &mut rk, &nan, 1.0), Err(DynamicsError::NonFinite { .. })));

    let mut inf = good.clone();
    inf[(0, 0)] = f64::INFINITY;
    assert!(matches!(run_result(&mut sa(), &mut rk, &inf, 1.0), Err(DynamicsError::NonFinite { .. })));

    let empty = Tokens::zeros(3, 0);
    assert!(matches!(run_result(&mut sa(), &mut rk, &empty, 1.0), Err(DynamicsError::ShapeMismatch { .. })));

    // Off the sphere: not normalised at all, and off by more than rounding.
    let scaled = &good * 2.0;
    assert!(matches!(
        run_result(&mut sa(), &mut rk, &scaled, 1.0),
        Err(DynamicsError::InvalidParameter { .. })
    ));
    let mut nudged = good.clone();
    nudged[(0, 0)] += 1e-10;
    assert!(run_result(&mut sa(), &mut rk, &nudged, 1.0).is_err());
    let mut zero = good.clone();
    zero.column_mut(3).fill(0.0);
    assert!(matches!(
        run_result(&mut sa(), &mut rk, &zero, 1.0),
        Err(DynamicsError::ZeroVector { index: 3 })
    ));

    // Rounding-level deviations are accepted: the tolerance is (d + 3)ε.
    assert!(tokens::sphere_drift(&good) <= sphere_tolerance(D));
    assert!(run_result(&mut sa(), &mut rk, &good, 1.0).is_ok());

    // Angles need exactly one row.
    let mut k = Kuramoto::new(1.0, Normalization::Softmax, Clock::Physical).unwrap();
    let two_rows = Tokens::zeros(2, 4);
    assert!(matches!(run_result(&mut k, &mut rk, &two_rows, 1.0), Err(DynamicsError::ShapeMismatch { .. })));
}

#[test]
fn fields_reject_bad_inverse_temperatures() {
    for beta in [f64::NAN, -1.0, 1e9, f64::INFINITY] {
        assert_eq!(names(Sa::new(beta)), "beta");
        assert_eq!(names(Usa::new(beta, Clock::Rescaled)), "beta");
    }
    assert_eq!(names(Usa::new(800.0, Clock::Physical)), "beta");
}

#[test]
fn step_rejects_an_empty_or_reversed_interval() {
    let mut x = tokens::uniform_sphere_seeded(N, D, 17).unwrap();
    let methods: Vec<Box<dyn Integrator>> = vec![
        Box::new(Rk4::new(0.1).unwrap()),
        Box::new(DormandPrince54::fixed(0.1).unwrap()),
        Box::new(DormandPrince54::new(Tolerances::new(1e-6, 1e-6).unwrap(), 0.1).unwrap()),
        Box::new(CrouchGrossman3::new(0.1).unwrap()),
    ];
    for mut m in methods {
        for (t, t_end) in [(1.0, 1.0), (1.0, 0.5), (f64::NAN, 1.0), (0.0, f64::NAN), (0.0, f64::INFINITY)] {
            assert!(m.step(&mut sa(), t, t_end, &mut x).is_err(), "{} ({t}, {t_end})", m.name());
        }
    }
}
