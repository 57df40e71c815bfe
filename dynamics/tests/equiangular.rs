//! The equiangular ODEs (Rigollet, arXiv 2512.01868, §6.1) against the particle flows they reduce:
//! the right-hand sides against the particle velocity at `t = 0`, the solutions against particle
//! simulations of SA, USA (both clocks) and Pre-LN, a closed form at β = 0, the long-time log-gap,
//! the hitting time, and refusal of bad input.

use dynamics::equiangular::{
    f_sa, f_usa, log_gap, log_gap_of, pre_ln, pre_ln_radial_speed, rho_of, time_to_reach, Attention,
    Equiangular, DEFAULT_TOL,
};
use dynamics::field::Normalization;
use dynamics::integrate::{DormandPrince54, Integrator, Tolerances};
use dynamics::tokens::{self, Tokens};
use dynamics::{Clock, DynamicsError, PreLn, Sa, Usa, VectorField};

const N: usize = 4;

/// Tolerances of the particle simulations.
const PARTICLE_TOL: f64 = 1e-11;

/// Output times of the particle comparisons.
const TIMES: [f64; 4] = [0.5, 1.0, 2.0, 3.0];

/// Allowed |ρ_particles − ρ_ODE|. The adaptive DP54 test bounds the particle error per entry by
/// `100·tol·T` for unit tokens; `ρ = ⟨x_i, x_j⟩` moves by at most `|δx_i| + |δx_j| ≤ 2√d` times that,
/// and for Pre-LN the tokens have norm `r ≤ 1 + T`, which scales the bound by `r`. The ODE side
/// (Dop853 at 10⁻¹²) adds ≤ `100·10⁻¹²` by the same argument. With d ≤ 6 and T = 3:
/// `2·√6·100·10⁻¹¹·3·(1 + 3) + 10⁻¹⁰ ≈ 6·10⁻⁸`.
fn rho_tolerance(d: usize, radius: f64) -> f64 {
    let t_max = TIMES[TIMES.len() - 1];
    2.0 * (d as f64).sqrt() * 100.0 * PARTICLE_TOL * t_max * radius + 100.0 * DEFAULT_TOL.rtol
}

/// Off-diagonal Gram entries of the directions `x_i/|x_i|`: (mean, max − min).
fn equiangularity(x: &Tokens) -> (f64, f64) {
    let mut theta = x.clone();
    tokens::normalize_columns(&mut theta).unwrap();
    let g = theta.tr_mul(&theta);
    let n = g.nrows();
    let off: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| g[(i, j)])
        .collect();
    let mean = off.iter().sum::<f64>() / off.len() as f64;
    let (lo, hi) = off.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    (mean, hi - lo)
}

/// The particle states at each of `times`, from `x0` at 0, with adaptive DP54 stepping exactly to
/// each output time.
fn simulate(field: &mut dyn VectorField, x0: &Tokens, times: &[f64]) -> Vec<Tokens> {
    let tol = Tolerances::new(PARTICLE_TOL, PARTICLE_TOL).unwrap();
    let mut method = DormandPrince54::new(tol, 1e-3).unwrap();
    let (mut t, mut x) = (0.0, x0.clone());
    times
        .iter()
        .map(|&t_out| {
            while t < t_out {
                t = method.step(field, t, t_out, &mut x).unwrap();
            }
            x.clone()
        })
        .collect()
}

/// `ρ̇ = ⟨v_i, x_j⟩ + ⟨x_i, v_j⟩` from a particle velocity, averaged over pairs.
fn rho_dot_of_particles(field: &mut dyn VectorField, x: &Tokens) -> f64 {
    let mut v = Tokens::zeros(x.nrows(), x.ncols());
    field.velocity(x, &mut v);
    let (mut sum, mut count) = (0.0, 0.0);
    for i in 0..x.ncols() {
        for j in 0..x.ncols() {
            if i != j {
                sum += v.column(i).dot(&x.column(j)) + x.column(i).dot(&v.column(j));
                count += 1.0;
            }
        }
    }
    sum / count
}

/// Agreement of the right-hand sides with the particle velocity is a rounding-level identity:
/// `|ρ̇| ≤ 2n` and each term is a short sum, so 10⁻¹³ is hundreds of ulps.
const RHS_TOL: f64 = 1e-13;

#[test]
fn right_hand_sides_match_the_particle_velocity() {
    for beta in [0.0, 1.0, 5.0] {
        for rho in [-1.0 / 3.0, -0.2, 0.0, 0.3, 0.9, 0.999] {
            let x = tokens::equiangular(N, 5, rho).unwrap();
            let sa = rho_dot_of_particles(&mut Sa::new(beta).unwrap(), &x);
            let usa_t = rho_dot_of_particles(&mut Usa::new(beta, Clock::Physical).unwrap(), &x);
            let usa_tau = rho_dot_of_particles(&mut Usa::new(beta, Clock::Rescaled).unwrap(), &x);
            let f = f_sa(N, beta, rho).unwrap();
            assert!((sa - f).abs() <= RHS_TOL, "SA β={beta} ρ={rho}: {sa} vs {f}");
            let f = f_usa(N, beta, rho, Clock::Physical).unwrap();
            assert!((usa_t - f).abs() <= RHS_TOL * beta.exp(), "USA β={beta} ρ={rho}: {usa_t} vs {f}");
            let f = f_usa(N, beta, rho, Clock::Rescaled).unwrap();
            assert!((usa_tau - f).abs() <= RHS_TOL, "USA τ β={beta} ρ={rho}: {usa_tau} vs {f}");
        }
    }
}

#[test]
fn stable_forms_equal_the_textbook_formulas() {
    let n = 7.0;
    for beta in [0.0, 0.5, 3.0, 20.0] {
        for rho in [-1.0 / 6.0, -0.1, 0.2, 0.8] {
            let e = |x: f64| x.exp();
            let sa = 2.0 * e(beta * rho) * (1.0 - rho) * ((n - 1.0) * rho + 1.0)
                / (e(beta) + (n - 1.0) * e(beta * rho));
            let usa = 2.0 / n * e(beta * rho) * (1.0 - rho) * ((n - 1.0) * rho + 1.0);
            let rdot = (e(beta * (1.0 - rho)) + (n - 1.0) * rho) / (e(beta * (1.0 - rho)) + n - 1.0);
            let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
            assert!(rel(f_sa(7, beta, rho).unwrap(), sa) < 1e-13);
            assert!(rel(f_usa(7, beta, rho, Clock::Physical).unwrap(), usa) < 1e-13);
            assert!(rel(f_usa(7, beta, rho, Clock::Rescaled).unwrap(), usa * e(-beta)) < 1e-13);
            assert!(rel(pre_ln_radial_speed(7, beta, rho), rdot) < 1e-13);
        }
    }
    // Where the textbook form overflows the stable one stays finite.
    assert!(f_sa(7, 1e5, 0.5).unwrap().is_finite());
    assert!(f_usa(7, 1e5, 0.5, Clock::Rescaled).unwrap().is_finite());
    assert!(f_sa(7, 1e5, 0.5).unwrap() >= 0.0);
}

/// The Pre-LN radial speed `ṙ = (e^{β(1−ρ)} + (n−1)ρ)/(e^{β(1−ρ)} + n − 1)` against the particle
/// field: `ṙ = ⟨θ_i, ẋ_i⟩` at `x_i = r θ_i`, for several radii (the formula does not depend on r).
#[test]
fn pre_ln_radial_speed_matches_the_particle_field() {
    for beta in [0.0, 1.0, 4.0] {
        for rho in [-0.3, 0.0, 0.5, 0.95] {
            for r in [0.5, 1.0, 3.0] {
                let theta = tokens::equiangular(N, 4, rho).unwrap();
                let x = &theta * r;
                let mut field = PreLn::new(beta, Normalization::Softmax, Clock::Physical).unwrap();
                let mut v = Tokens::zeros(4, N);
                field.velocity(&x, &mut v);
                for i in 0..N {
                    let rdot = theta.column(i).dot(&v.column(i));
                    let f = pre_ln_radial_speed(N, beta, rho);
                    assert!((rdot - f).abs() <= RHS_TOL, "β={beta} ρ={rho} r={r}: {rdot} vs {f}");
                }
            }
        }
    }
}

fn check_against_particles(attention: Attention, d: usize, beta: f64, rho0: f64) {
    let model = Equiangular::new(attention, N, beta).unwrap();
    let ode = log_gap(model, rho0, &TIMES, DEFAULT_TOL).unwrap();
    let x0 = tokens::equiangular(N, d, rho0).unwrap();
    let mut field: Box<dyn VectorField> = match attention {
        Attention::Sa => Box::new(Sa::new(beta).unwrap()),
        Attention::Usa(clock) => Box::new(Usa::new(beta, clock).unwrap()),
    };
    let states = simulate(field.as_mut(), &x0, &TIMES);
    let tol = rho_tolerance(d, 1.0);
    let mut worst: (f64, f64) = (0.0, 0.0);
    for ((&t, l), x) in TIMES.iter().zip(&ode).zip(&states) {
        let (rho, spread) = equiangularity(x);
        let err = (rho - rho_of(*l)).abs();
        worst = (worst.0.max(err), worst.1.max(spread));
        assert!(spread <= tol, "{attention:?} d={d} β={beta} ρ₀={rho0} t={t}: spread {spread:e}");
        assert!(err <= tol, "{attention:?} d={d} β={beta} ρ₀={rho0} t={t}: |Δρ| = {err:e} > {tol:e}");
    }
    println!(
        "{attention:?} d={d} β={beta} ρ₀={rho0}: max |Δρ| {:.1e}, max spread {:.1e} (tolerance {tol:.1e}), ρ(3) = {:.6}",
        worst.0,
        worst.1,
        rho_of(ode[3])
    );
}

#[test]
fn sa_particles_follow_the_equiangular_ode() {
    for d in [4, 6] {
        for rho0 in [0.3, -0.2] {
            for beta in [1.0, 4.0] {
                check_against_particles(Attention::Sa, d, beta, rho0);
            }
        }
    }
}

#[test]
fn usa_particles_follow_the_equiangular_ode_on_both_clocks() {
    for d in [4, 6] {
        for rho0 in [0.3, -0.2] {
            check_against_particles(Attention::Usa(Clock::Physical), d, 1.0, rho0);
            check_against_particles(Attention::Usa(Clock::Rescaled), d, 1.0, rho0);
        }
    }
}

#[test]
fn pre_ln_particles_follow_the_equiangular_system() {
    for d in [4, 6] {
        for (rho0, r0) in [(0.3, 1.0), (-0.2, 2.0)] {
            let beta = 1.0;
            let ode = pre_ln(N, beta, rho0, r0, &TIMES, DEFAULT_TOL).unwrap();
            let x0 = tokens::equiangular(N, d, rho0).unwrap() * r0;
            let mut field = PreLn::new(beta, Normalization::Softmax, Clock::Physical).unwrap();
            let states = simulate(&mut field, &x0, &TIMES);
            for ((&t, &(l, r)), x) in TIMES.iter().zip(&ode).zip(&states) {
                let (rho, spread) = equiangularity(x);
                let radii: Vec<f64> = x.column_iter().map(|c| c.norm()).collect();
                let r_mean = radii.iter().sum::<f64>() / radii.len() as f64;
                let r_spread = radii.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                    - radii.iter().cloned().fold(f64::INFINITY, f64::min);
                let tol = rho_tolerance(d, r_mean);
                println!(
                    "Pre-LN d={d} ρ₀={rho0} r₀={r0} t={t}: |Δρ| {:.1e}, |Δr| {:.1e}, spreads {spread:.1e}/{r_spread:.1e}",
                    (rho - rho_of(l)).abs(),
                    (r_mean - r).abs()
                );
                assert!(spread <= tol && r_spread <= tol);
                assert!((rho - rho_of(l)).abs() <= tol, "t={t}: ρ {rho} vs {}", rho_of(l));
                assert!((r_mean - r).abs() <= tol, "t={t}: r {r_mean} vs {r}");
            }
        }
    }
}

/// At β = 0, SA and USA coincide and the gap `g = 1 − ρ` is logistic,
/// `ġ = −2g + 2(n−1)g²/n`, so `1/g(t) = (n−1)/n + (1/g₀ − (n−1)/n)e^{2t}`.
#[test]
fn beta_zero_matches_the_closed_form() {
    let times: Vec<f64> = (1..=20).map(|k| k as f64 * 0.75).collect();
    let nf = N as f64;
    for rho0 in [-0.3, 0.0, 0.6] {
        for attention in [Attention::Sa, Attention::Usa(Clock::Physical)] {
            let model = Equiangular::new(attention, N, 0.0).unwrap();
            let ls = log_gap(model, rho0, &times, DEFAULT_TOL).unwrap();
            for (&t, &l) in times.iter().zip(&ls) {
                let c = (nf - 1.0) / nf;
                let exact = -(c + (1.0 / (1.0 - rho0) - c) * (2.0 * t).exp()).ln();
                // Relative 10⁻¹² in L, over |L| up to ~30: a few 10⁻¹¹ absolute.
                assert!((l - exact).abs() <= 1e-10 * exact.abs().max(1.0), "ρ₀={rho0} t={t}: {l} vs {exact}");
            }
        }
    }
}

/// Long after ρ has rounded to 1 the log-gap still carries all its digits: for SA, `u → 1` and
/// `L̇ → −2n/(1 + (n−1)) = −2`.
#[test]
fn log_gap_keeps_its_digits_after_rho_rounds_to_one() {
    let model = Equiangular::new(Attention::Sa, N, 2.0).unwrap();
    let ls = log_gap(model, 0.1, &[30.0, 40.0], DEFAULT_TOL).unwrap();
    assert_eq!(rho_of(ls[0]), 1.0, "ρ itself has rounded to 1");
    let rate = (ls[1] - ls[0]) / 10.0;
    println!("SA n=4 β=2: L(30) = {:.6}, L(40) = {:.6}, mean rate {rate:.12}", ls[0], ls[1]);
    // L ~ −80: relative tolerance 10⁻¹² of the solver → ~10⁻¹⁰ absolute, /10 time units.
    assert!((rate + 2.0).abs() <= 1e-9, "{rate}");
}

#[test]
fn hitting_time_inverts_the_solution() {
    for (attention, beta, rho0) in [
        (Attention::Sa, 1.0, 0.3),
        (Attention::Sa, 8.0, -0.2),
        (Attention::Usa(Clock::Physical), 1.0, 0.0),
        (Attention::Usa(Clock::Rescaled), 3.0, 0.5),
    ] {
        let model = Equiangular::new(attention, N, beta).unwrap();
        for target in [0.9, 1.0 - 1e-9] {
            let t = time_to_reach(model, rho0, target, DEFAULT_TOL).unwrap();
            let l = log_gap(model, rho0, &[t], DEFAULT_TOL).unwrap()[0];
            // Both sides at 10⁻¹²; L = log(1 − target) up to ~21 in size.
            assert!(
                (l - log_gap_of(target)).abs() <= 1e-9,
                "{attention:?} β={beta}: {l} vs {}",
                log_gap_of(target)
            );
        }
        assert_eq!(time_to_reach(model, rho0, rho0, DEFAULT_TOL).unwrap(), 0.0);
    }
    // At β = 0 the closed form gives t = ½ log((1/g − c)/(1/g₀ − c)), c = (n − 1)/n.
    let model = Equiangular::new(Attention::Sa, N, 0.0).unwrap();
    let (rho0, target) = (0.2, 0.99);
    let c = (N as f64 - 1.0) / N as f64;
    let exact = 0.5 * ((1.0 / (1.0 - target) - c) / (1.0 / (1.0 - rho0) - c)).ln();
    let t = time_to_reach(model, rho0, target, DEFAULT_TOL).unwrap();
    assert!((t - exact).abs() <= 1e-10 * exact, "{t} vs {exact}");
}

#[test]
fn equiangular_functions_reject_bad_input() {
    let sa = Equiangular::new(Attention::Sa, N, 1.0).unwrap();
    let param = |r: dynamics::Result<_>| match r {
        Err(DynamicsError::InvalidParameter { name, .. }) => name,
        Err(DynamicsError::InvalidSize { name, .. }) => name,
        other => panic!("expected an input error, got {other:?}"),
    };
    let times = [1.0];
    // n, β.
    for n in [0, 1] {
        assert_eq!(param(Equiangular::new(Attention::Sa, n, 1.0).map(|_| ())), "n");
        assert_eq!(param(pre_ln(n, 1.0, 0.0, 1.0, &times, DEFAULT_TOL).map(|_| ())), "n");
        assert_eq!(param(f_sa(n, 1.0, 0.0).map(|_| ())), "n");
    }
    for beta in [f64::NAN, -1.0, 1e9, f64::INFINITY] {
        assert_eq!(param(Equiangular::new(Attention::Sa, N, beta).map(|_| ())), "beta");
        assert_eq!(param(f_usa(N, beta, 0.0, Clock::Rescaled).map(|_| ())), "beta");
        let literal = Equiangular { attention: Attention::Sa, n: N, beta };
        assert_eq!(param(log_gap(literal, 0.0, &times, DEFAULT_TOL).map(|_| ())), "beta");
    }
    assert_eq!(param(Equiangular::new(Attention::Usa(Clock::Physical), N, 800.0).map(|_| ())), "beta");
    assert!(Equiangular::new(Attention::Usa(Clock::Rescaled), N, 800.0).is_ok());
    // ρ₀ ∈ [−1/(n−1), 1).
    for rho0 in [1.0, 1.5, -0.34, f64::NAN, f64::INFINITY] {
        assert_eq!(param(log_gap(sa, rho0, &times, DEFAULT_TOL).map(|_| ())), "rho0");
        assert_eq!(param(pre_ln(N, 1.0, rho0, 1.0, &times, DEFAULT_TOL).map(|_| ())), "rho0");
    }
    assert!(log_gap(sa, -1.0 / 3.0, &times, DEFAULT_TOL).is_ok(), "the simplex is admissible");
    // Times: ≥ 0, finite, non-decreasing.
    for bad in [&[-1.0][..], &[1.0, 0.5], &[f64::NAN], &[f64::INFINITY]] {
        assert_eq!(param(log_gap(sa, 0.0, bad, DEFAULT_TOL).map(|_| ())), "times");
    }
    assert_eq!(log_gap(sa, 0.0, &[], DEFAULT_TOL).unwrap(), Vec::<f64>::new());
    assert_eq!(log_gap(sa, 0.25, &[0.0, 0.0], DEFAULT_TOL).unwrap(), vec![log_gap_of(0.25); 2]);
    // Tolerances and radius.
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let bad = Tolerances { rtol: v, atol: 1e-12 };
        assert_eq!(param(log_gap(sa, 0.0, &times, bad).map(|_| ())), "rtol");
        assert_eq!(param(pre_ln(N, 1.0, 0.0, v, &times, DEFAULT_TOL).map(|_| ())), "r0");
    }
    // Hitting times: backwards, out of range, or from the equilibrium.
    assert_eq!(param(time_to_reach(sa, 0.5, 0.4, DEFAULT_TOL).map(|_| ())), "rho_target");
    assert_eq!(param(time_to_reach(sa, 0.5, 1.0, DEFAULT_TOL).map(|_| ())), "rho_target");
    assert_eq!(param(time_to_reach(sa, -1.0 / 3.0, 0.5, DEFAULT_TOL).map(|_| ())), "rho0");
}
