//! Token configurations: the state convention shared by every flow, and seeded generators of
//! initial data.
//!
//! A configuration of `n` tokens in `R^d` is a `d × n` matrix whose column `i` is token `x_i`.
//! Columns (not rows) because nalgebra is column-major: the Gram matrix is one `XᵀX` product and the
//! attention average is one `X·W` product, neither of which needs a transposed copy.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{check_range, DynamicsError, Result};

/// `n` tokens in `R^d`, one per column.
pub type Tokens = DMatrix<f64>;

/// The generator every seeded computation in the workspace uses.
pub fn rng_from_seed(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn check_shape(n: usize, d: usize, min_n: usize, min_d: usize) -> Result<()> {
    if n < min_n {
        return Err(DynamicsError::InvalidSize {
            name: "n",
            value: n,
            allowed: "at least 1 token (2 for pairwise quantities)",
        });
    }
    if d < min_d {
        return Err(DynamicsError::InvalidSize {
            name: "d",
            value: d,
            allowed: "an ambient dimension of at least 2",
        });
    }
    Ok(())
}

/// Checks that `x` is a usable configuration: non-empty, finite, and (when `on_sphere`) with no
/// zero column.
pub fn validate(x: &Tokens) -> Result<()> {
    if x.ncols() == 0 || x.nrows() == 0 {
        return Err(DynamicsError::ShapeMismatch {
            what: "token matrix",
            expected: "d ≥ 1 rows and n ≥ 1 columns".into(),
            got: format!("{}×{}", x.nrows(), x.ncols()),
        });
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(DynamicsError::NonFinite { what: "token matrix" });
    }
    Ok(())
}

/// Normalises every column to unit length; the only way a raw vector enters the sphere.
pub fn normalize_columns(x: &mut Tokens) -> Result<()> {
    validate(x)?;
    for (index, mut col) in x.column_iter_mut().enumerate() {
        let norm = col.norm();
        if norm == 0.0 {
            return Err(DynamicsError::ZeroVector { index });
        }
        col /= norm;
    }
    Ok(())
}

/// Largest `| |x_i| − 1 |`: how far a numerical scheme has drifted off `(S^{d−1})^n`.
pub fn sphere_drift(x: &Tokens) -> f64 {
    x.column_iter().map(|c| (c.norm() - 1.0).abs()).fold(0.0, f64::max)
}

/// `n` i.i.d. points uniform on `S^{d−1}` (normalised standard Gaussians).
pub fn uniform_sphere(n: usize, d: usize, rng: &mut impl Rng) -> Result<Tokens> {
    check_shape(n, d, 1, 2)?;
    loop {
        let mut x = Tokens::from_fn(d, n, |_, _| StandardNormal.sample(rng));
        // A Gaussian column is zero with probability zero; redraw rather than fail if it happens.
        if normalize_columns(&mut x).is_ok() {
            return Ok(x);
        }
    }
}

/// `n` i.i.d. points uniform on `S^{d−1}` from a seed.
pub fn uniform_sphere_seeded(n: usize, d: usize, seed: u64) -> Result<Tokens> {
    uniform_sphere(n, d, &mut rng_from_seed(seed))
}

/// A Haar-random orthogonal `d × d` matrix (QR of a Gaussian matrix with the sign fix of Mezzadri).
pub fn random_orthogonal(d: usize, rng: &mut impl Rng) -> DMatrix<f64> {
    let g = DMatrix::<f64>::from_fn(d, d, |_, _| StandardNormal.sample(rng));
    let qr = g.qr();
    let mut q = qr.q();
    let r = qr.r();
    for k in 0..d {
        if r[(k, k)] < 0.0 {
            q.column_mut(k).neg_mut();
        }
    }
    q
}

/// Coordinates in `R^d` of unit vectors with the given Gram matrix (which must be PSD, with unit
/// diagonal and rank ≤ d), from its eigendecomposition.
///
/// The input is checked first: a non-square, empty or non-finite matrix, an asymmetric one, or one
/// whose diagonal is not 1 is refused (the eigensolver would panic on the first two, never converge
/// on NaN, and silently read only one triangle or renormalise the diagonal on the others,
/// returning vectors with a different Gram matrix than the one asked for). Symmetry and the
/// diagonal are checked to `GRAM_TOL` = 64ε·max(1, max|g_ij|): a Gram matrix computed as `XᵀX` is
/// symmetric exactly and has a diagonal within a few `dε` of 1 for unit columns.
pub fn from_gram(gram: &DMatrix<f64>, d: usize) -> Result<Tokens> {
    let n = gram.nrows();
    if n == 0 || gram.ncols() != n {
        return Err(DynamicsError::ShapeMismatch {
            what: "Gram matrix",
            expected: "a non-empty square matrix".into(),
            got: format!("{}×{}", gram.nrows(), gram.ncols()),
        });
    }
    if gram.iter().any(|v| !v.is_finite()) {
        return Err(DynamicsError::NonFinite { what: "Gram matrix" });
    }
    let gram_tol = 64.0 * f64::EPSILON * gram.amax().max(1.0);
    for i in 0..n {
        if (gram[(i, i)] - 1.0).abs() > gram_tol {
            return Err(DynamicsError::InvalidParameter {
                name: "gram diagonal",
                value: gram[(i, i)],
                allowed: "1 (the Gram matrix of unit vectors)",
            });
        }
        for j in 0..i {
            if (gram[(i, j)] - gram[(j, i)]).abs() > gram_tol {
                return Err(DynamicsError::InvalidParameter {
                    name: "gram asymmetry",
                    value: gram[(i, j)] - gram[(j, i)],
                    allowed: "0 (a symmetric matrix)",
                });
            }
        }
    }
    let eig = SymmetricEigen::new(gram.clone());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    // Eigenvalues below this are rounding noise of a rank-deficient Gram matrix: ~n·ε relative to
    // the largest, with a safety factor of 100.
    let noise = 100.0 * n as f64 * f64::EPSILON * eig.eigenvalues.amax().max(1.0);
    if order.iter().skip(d).any(|&k| eig.eigenvalues[k] > noise) {
        return Err(DynamicsError::InvalidSize {
            name: "d",
            value: d,
            allowed: "at least the rank of the Gram matrix",
        });
    }
    if order.iter().any(|&k| eig.eigenvalues[k] < -noise) {
        return Err(DynamicsError::InvalidParameter {
            name: "gram",
            value: order.iter().map(|&k| eig.eigenvalues[k]).fold(f64::INFINITY, f64::min),
            allowed: "a positive semidefinite matrix",
        });
    }
    let mut x = Tokens::zeros(d, n);
    for (row, &k) in order.iter().take(d.min(n)).enumerate() {
        let scale = eig.eigenvalues[k].max(0.0).sqrt();
        for i in 0..n {
            x[(row, i)] = scale * eig.eigenvectors[(i, k)];
        }
    }
    normalize_columns(&mut x)?;
    Ok(x)
}

/// Equiangular unit vectors, `⟨x_i, x_j⟩ = ρ₀` for all `i ≠ j`, in the first `n` coordinates.
/// Needs `n ≥ 2`, `d ≥ n` and `−1/(n−1) ≤ ρ₀ < 1` (at the lower end they span only `n − 1`
/// dimensions: the regular simplex).
pub fn equiangular(n: usize, d: usize, rho0: f64) -> Result<Tokens> {
    check_shape(n, d, 2, 2)?;
    let lo = -1.0 / (n as f64 - 1.0);
    check_range("rho0", rho0, lo, 1.0 - f64::EPSILON, "a number in [−1/(n−1), 1)")?;
    if d < n && rho0 > lo {
        return Err(DynamicsError::InvalidSize {
            name: "d",
            value: d,
            allowed: "d ≥ n for an equiangular configuration with ρ₀ > −1/(n−1)",
        });
    }
    let gram = DMatrix::from_fn(n, n, |i, j| if i == j { 1.0 } else { rho0 });
    from_gram(&gram, d)
}

/// `n` equally spaced points on the great circle of the first two coordinates: an equilibrium.
pub fn regular_ngon(n: usize, d: usize) -> Result<Tokens> {
    check_shape(n, d, 1, 2)?;
    let mut x = Tokens::zeros(d, n);
    for i in 0..n {
        let phi = std::f64::consts::TAU * i as f64 / n as f64;
        x[(0, i)] = phi.cos();
        x[(1, i)] = phi.sin();
    }
    Ok(x)
}

/// The regular polytopes whose vertices are used as (measure-zero) equilibria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polytope {
    /// `n` vertices of the regular simplex, in `d ≥ n − 1`.
    Simplex(usize),
    /// The `2d` vertices `±e_k`.
    CrossPolytope,
    /// The 8 vertices of the cube, `d = 3`.
    Cube,
    /// The 12 vertices of the icosahedron, `d = 3`.
    Icosahedron,
    /// The 20 vertices of the dodecahedron, `d = 3`.
    Dodecahedron,
}

/// Vertices of a regular polytope inscribed in `S^{d−1}` (padded with zero coordinates when `d` is
/// larger than the polytope's own dimension).
pub fn regular_polytope(kind: Polytope, d: usize) -> Result<Tokens> {
    let need3 = |d: usize| {
        if d < 3 {
            Err(DynamicsError::InvalidSize {
                name: "d",
                value: d,
                allowed: "d ≥ 3 for a 3-dimensional polytope",
            })
        } else {
            Ok(())
        }
    };
    let phi = (1.0 + 5f64.sqrt()) / 2.0;
    let raw: Vec<[f64; 3]> = match kind {
        Polytope::Simplex(n) => {
            if d + 1 < n {
                return Err(DynamicsError::InvalidSize {
                    name: "d",
                    value: d,
                    allowed: "d ≥ n − 1 for the simplex",
                });
            }
            check_shape(n, d, 2, 2)?;
            let gram = DMatrix::from_fn(n, n, |i, j| if i == j { 1.0 } else { -1.0 / (n as f64 - 1.0) });
            return from_gram(&gram, d);
        }
        Polytope::CrossPolytope => {
            check_shape(1, d, 1, 2)?;
            let mut x = Tokens::zeros(d, 2 * d);
            for k in 0..d {
                x[(k, 2 * k)] = 1.0;
                x[(k, 2 * k + 1)] = -1.0;
            }
            return Ok(x);
        }
        Polytope::Cube => {
            need3(d)?;
            cube_vertices()
        }
        Polytope::Icosahedron => {
            need3(d)?;
            let mut v = Vec::new();
            for a in [-1.0, 1.0] {
                for b in [-phi, phi] {
                    v.extend([[0.0, a, b], [a, b, 0.0], [b, 0.0, a]]);
                }
            }
            v
        }
        Polytope::Dodecahedron => {
            need3(d)?;
            let mut v = cube_vertices();
            for a in [-1.0 / phi, 1.0 / phi] {
                for b in [-phi, phi] {
                    v.extend([[0.0, a, b], [a, b, 0.0], [b, 0.0, a]]);
                }
            }
            v
        }
    };
    let mut x = Tokens::zeros(d, raw.len());
    for (i, p) in raw.iter().enumerate() {
        x.fixed_view_mut::<3, 1>(0, i).copy_from(&nalgebra::Vector3::from(*p));
    }
    normalize_columns(&mut x)?;
    Ok(x)
}

fn cube_vertices() -> Vec<[f64; 3]> {
    (0..8).map(|k| [0, 1, 2].map(|b| if k >> b & 1 == 1 { 1.0 } else { -1.0 })).collect()
}

/// Column `i` of `x` as an owned vector (a convenience for tests and reports).
pub fn token(x: &Tokens, i: usize) -> DVector<f64> {
    x.column(i).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_gram_refuses_malformed_matrices_instead_of_panicking() {
        let shape = |g: &DMatrix<f64>| matches!(from_gram(g, 3), Err(DynamicsError::ShapeMismatch { .. }));
        assert!(shape(&DMatrix::from_element(2, 3, 0.5)));
        assert!(shape(&DMatrix::zeros(0, 0)));
        let mut g = DMatrix::identity(3, 3);
        g[(0, 1)] = f64::NAN;
        g[(1, 0)] = f64::NAN;
        assert!(matches!(from_gram(&g, 3), Err(DynamicsError::NonFinite { .. })));
        // Asymmetric: the eigensolver would read one triangle and return the identity's vectors.
        let mut g = DMatrix::identity(3, 3);
        g[(0, 1)] = 0.5;
        assert!(matches!(
            from_gram(&g, 3),
            Err(DynamicsError::InvalidParameter { name: "gram asymmetry", .. })
        ));
        // Non-unit diagonal: normalising would silently return a different Gram matrix.
        let mut g = DMatrix::identity(3, 3);
        g[(2, 2)] = 4.0;
        assert!(matches!(
            from_gram(&g, 3),
            Err(DynamicsError::InvalidParameter { name: "gram diagonal", .. })
        ));
        // Indefinite, and rank above d.
        let g = DMatrix::from_fn(3, 3, |i, j| if i == j { 1.0 } else { -0.9 });
        assert!(matches!(from_gram(&g, 3), Err(DynamicsError::InvalidParameter { name: "gram", .. })));
        assert!(matches!(
            from_gram(&DMatrix::identity(3, 3), 2),
            Err(DynamicsError::InvalidSize { name: "d", .. })
        ));
    }

    #[test]
    fn from_gram_reproduces_a_gram_matrix_of_rank_below_n() {
        // Four unit vectors in a plane (rank 2) embedded in d = 2 and d = 5.
        let angles = [0.1f64, 0.9, 2.0, 4.0];
        let g = DMatrix::from_fn(4, 4, |i, j| (angles[i] - angles[j]).cos());
        for d in [2, 5] {
            let x = from_gram(&g, d).unwrap();
            // Eigendecomposition backward error ~nε‖G‖ with ‖G‖ ≤ n: 64·n²ε.
            assert!((x.tr_mul(&x) - &g).amax() <= 64.0 * 16.0 * f64::EPSILON, "d = {d}");
        }
    }

    #[test]
    fn validate_and_normalize_name_the_problem() {
        assert!(matches!(validate(&Tokens::zeros(0, 3)), Err(DynamicsError::ShapeMismatch { .. })));
        let mut x = Tokens::from_element(2, 3, 1.0);
        x[(1, 2)] = f64::INFINITY;
        assert_eq!(validate(&x), Err(DynamicsError::NonFinite { what: "token matrix" }));
        let mut x = Tokens::from_element(2, 3, 1.0);
        x.column_mut(1).fill(0.0);
        assert_eq!(normalize_columns(&mut x), Err(DynamicsError::ZeroVector { index: 1 }));
        let mut x = Tokens::from_element(2, 3, 3.0);
        normalize_columns(&mut x).unwrap();
        assert!(sphere_drift(&x) <= 2.0 * f64::EPSILON);
    }
}
