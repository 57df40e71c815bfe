//! Runs all-MiniLM-L6-v2 on the default inputs (or on the texts given as arguments) and prints the
//! per-layer Figure-1 diagnostic. Fetches the weights into the cache on first use.
//!
//! `cargo run -p embeddings --features model --example minilm_layers [-- TEXT...]`

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let start = Instant::now();
    let mut progress = |m: &str| eprintln!("{m}");
    let (states, summaries) = if args.is_empty() {
        embeddings::minilm::run_default(None, &mut progress)?
    } else {
        let states = embeddings::minilm::run(&args, None, &mut progress)?;
        let summaries = embeddings::layer_summaries(&states)?;
        (states, summaries)
    };
    eprintln!(
        "{} inputs padded to {} tokens in {:.2} s",
        states.batch(),
        states.seq_len(),
        start.elapsed().as_secs_f64()
    );
    println!("layer  mean_cos  frac>0.9  pairs");
    for s in &summaries {
        println!(
            "{:>5}  {:>8.4}  {:>8.4}  {:>5}",
            s.layer,
            s.mean_cos,
            s.frac_above_0_9,
            s.histogram.total()
        );
    }
    Ok(())
}
