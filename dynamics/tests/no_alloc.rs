//! Allocation-freedom of the hot loop: once warmed up, a velocity evaluation and an integrator step
//! allocate nothing, checked with a counting global allocator.
//!
//! The count is per thread, so the test harness's other threads cannot pollute it.
//!
//! Sizes above 5 in every dimension matter: there nalgebra hands a `gemm` to matrixmultiply, which
//! allocates a packing buffer on every call. The fields therefore form `Θ·W` column by column with
//! `gemv`, and the test covers sizes on both sides of that threshold.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dynamics::field::Normalization;
use dynamics::integrate::{CrouchGrossman3, DormandPrince54, Integrator, Rk4, Tolerances};
use dynamics::tokens::{self, Tokens};
use dynamics::{Clock, Hardmax, PreLn, Sa, Usa, VectorField};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the allocator may run while the thread-local is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Calls after warm-up over which allocations are counted.
const CALLS: usize = 20;

fn fields() -> Vec<(&'static str, Box<dyn VectorField>)> {
    vec![
        ("Sa", Box::new(Sa::new(2.0).unwrap())),
        ("Usa physical", Box::new(Usa::new(2.0, Clock::Physical).unwrap())),
        ("Usa rescaled", Box::new(Usa::new(2.0, Clock::Rescaled).unwrap())),
        ("PreLn softmax", Box::new(PreLn::new(2.0, Normalization::Softmax, Clock::Physical).unwrap())),
        ("PreLn uniform", Box::new(PreLn::new(2.0, Normalization::Uniform, Clock::Physical).unwrap())),
        ("Hardmax", Box::new(Hardmax::new())),
    ]
}

/// Allocations over `CALLS` velocity calls after one warm-up call.
fn over_calls(field: &mut dyn VectorField, n: usize, d: usize) -> usize {
    let x = tokens::uniform_sphere_seeded(n, d, 1).unwrap();
    let mut out = Tokens::zeros(d, n);
    field.velocity(&x, &mut out);
    allocations(|| {
        for _ in 0..CALLS {
            field.velocity(&x, &mut out);
        }
    })
}

#[test]
fn velocities_do_not_allocate_after_warm_up() {
    for (n, d) in [(5, 3), (32, 3), (64, 5), (32, 16), (128, 64)] {
        for (name, mut field) in fields() {
            assert_eq!(over_calls(field.as_mut(), n, d), 0, "{name} at n={n}, d={d}");
        }
    }
}

#[test]
fn integrator_steps_do_not_allocate_after_the_first() {
    let (n, d) = (16, 3);
    let x0 = tokens::uniform_sphere_seeded(n, d, 2).unwrap();
    let methods: Vec<Box<dyn Integrator>> = vec![
        Box::new(Rk4::new(0.01).unwrap()),
        Box::new(DormandPrince54::fixed(0.01).unwrap()),
        Box::new(DormandPrince54::new(Tolerances::new(1e-8, 1e-8).unwrap(), 0.01).unwrap()),
        Box::new(CrouchGrossman3::new(0.01).unwrap()),
    ];
    for mut m in methods {
        let mut field = Sa::new(1.0).unwrap();
        let mut x = x0.clone();
        let mut t = m.step(&mut field, 0.0, 10.0, &mut x).unwrap();
        let count = allocations(|| {
            for _ in 0..CALLS {
                t = m.step(&mut field, t, 10.0, &mut x).unwrap();
            }
        });
        assert_eq!(count, 0, "{}", m.name());
    }
    // Off the sphere too (the FSAL cache of DP54 is only used there).
    let mut field = PreLn::new(1.0, Normalization::Softmax, Clock::Physical).unwrap();
    let mut m = DormandPrince54::new(Tolerances::new(1e-8, 1e-8).unwrap(), 0.01).unwrap();
    let mut x = x0.clone();
    let mut t = m.step(&mut field, 0.0, 10.0, &mut x).unwrap();
    let count = allocations(|| {
        for _ in 0..CALLS {
            t = m.step(&mut field, t, 10.0, &mut x).unwrap();
        }
    });
    assert_eq!(count, 0, "DP54 on Pre-LN");
}
