//! `cargo xtask`: the project's tasks. `verify` checks every claim of Rigollet (arXiv 2512.01868)
//! and runs the same diagnostics on a real model; `hidden-states` exports a model's per-layer
//! hidden states. A bare `cargo xtask` lists the tasks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod figures;
#[cfg(feature = "model")]
mod hidden_states;
mod report;
mod tidy;
mod verify;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Tasks of the mean-field transformers workspace",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check every claim (or one), run the real-model diagnostics, and write target/verify/report.json
    Verify(verify::Args),
    /// Check the tree's conventions: doc headers, paper references, snapshots, ignores, whitespace
    Tidy,
    /// Export per-layer hidden states and attentions of a model to a safetensors file
    HiddenStates {
        /// The model to run (only `minilm` for now)
        #[arg(long)]
        model: String,
        /// A text file with one input per line
        #[arg(long)]
        inputs: PathBuf,
        /// The safetensors file to write
        #[arg(long)]
        out: PathBuf,
        /// A local directory with model.safetensors, config.json and tokenizer.json (skips the download)
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Verify(args) => verify::run(&args),
        Task::Tidy => Ok(tidy::run()),
        Task::HiddenStates { model, inputs, out, model_dir } => {
            export(&model, &inputs, &out, model_dir.as_deref())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "model")]
fn export(
    model: &str,
    inputs: &std::path::Path,
    out: &std::path::Path,
    model_dir: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    hidden_states::run(model, inputs, out, model_dir)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "model"))]
fn export(
    _: &str,
    _: &std::path::Path,
    _: &std::path::Path,
    _: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    anyhow::bail!("xtask was built without the `model` feature; rebuild with default features")
}
