//! Throughput of the SA velocity `ẋ_i = P_{x_i}(Σ_j softmax_j(β⟨x_i,x_j⟩) x_j)`, the kernel every
//! integrator step evaluates 4–7 times, for (n, d) = (32, 3), (128, 64), (512, 512).
//!
//! Flop count of one evaluation (the criterion throughput is reported as "elements" = flops):
//! - Gram matrix `XᵀX`: `n²` dot products of length `d`, `2n²d` (the full matrix: the field does not
//!   exploit symmetry);
//! - softmax weights: per entry a subtraction of the row maximum, a multiplication by β, one `exp`
//!   (counted as 1 flop), an accumulation into the normaliser and a division by it, `5n²` (the
//!   comparisons of the row maximum are not counted);
//! - attention product `Θ·W`: `2n²d`;
//! - tangent projection: a dot product and an update per token, `4nd`.
//!
//! Total `F(n, d) = 4n²d + 5n² + 4nd`.
//!
//! After criterion's report, one line per size `sa_velocity n=.. d=..: X GFLOP/s` from a plain timed
//! loop (median over batches of about 50 ms), a number to quote without reading criterion's output.
//! Run with `cargo bench -p dynamics --bench velocity`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use dynamics::tokens::{self, Tokens};
use dynamics::{Sa, VectorField};

const SIZES: [(usize, usize); 3] = [(32, 3), (128, 64), (512, 512)];
const BETA: f64 = 1.0;

/// Flops of one SA velocity evaluation (see the module docs).
fn flops(n: usize, d: usize) -> u64 {
    let (n, d) = (n as u64, d as u64);
    4 * n * n * d + 5 * n * n + 4 * n * d
}

fn setup(n: usize, d: usize) -> (Sa, Tokens, Tokens) {
    let x = tokens::uniform_sphere_seeded(n, d, 1).expect("valid size");
    let mut field = Sa::new(BETA).expect("valid β");
    let mut out = Tokens::zeros(d, n);
    field.velocity(&x, &mut out); // sizes the scratch buffers
    (field, x, out)
}

fn bench_sa(c: &mut Criterion) {
    let mut group = c.benchmark_group("sa_velocity");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (n, d) in SIZES {
        let (mut field, x, mut out) = setup(n, d);
        group.throughput(Throughput::Elements(flops(n, d)));
        if n * n * d > 1 << 24 {
            // One evaluation takes tens of milliseconds: linear sampling (1, 2, …, k iterations
            // per sample) would need minutes, flat sampling with the minimum 10 samples does not.
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
        } else {
            group.sampling_mode(SamplingMode::Auto).sample_size(50);
        }
        group.bench_with_input(BenchmarkId::from_parameter(format!("n={n},d={d}")), &x, |b, x| {
            b.iter(|| field.velocity(black_box(x), &mut out));
            black_box(&out);
        });
    }
    group.finish();
}

/// Median GFLOP/s over batches of repeated evaluations.
fn gflops(n: usize, d: usize) -> f64 {
    const BATCHES: usize = 7;
    const BATCH_TARGET: Duration = Duration::from_millis(50);
    let (mut field, x, mut out) = setup(n, d);
    let start = Instant::now();
    field.velocity(black_box(&x), &mut out);
    let once = start.elapsed().max(Duration::from_nanos(1));
    let reps = (BATCH_TARGET.as_secs_f64() / once.as_secs_f64()).ceil().max(1.0) as usize;
    let mut per_call: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                field.velocity(black_box(&x), &mut out);
            }
            black_box(&out);
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    flops(n, d) as f64 / per_call[BATCHES / 2] / 1e9
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_sa(&mut c);
    c.final_summary();
    // Under `cargo test --benches` criterion runs each benchmark once as a smoke test; the timed
    // loop is only worth its time under `cargo bench`, which passes `--bench`.
    if std::env::args().any(|a| a == "--bench") {
        for (n, d) in SIZES {
            println!("sa_velocity n={n} d={d}: {:.2} GFLOP/s", gflops(n, d));
        }
    }
}
