//! `cargo xtask hidden-states --model minilm --inputs FILE --out FILE.safetensors`: runs a real
//! model natively on one text per line of FILE and writes every layer's hidden states and attention
//! probabilities in the `embeddings::states` safetensors layout.

use std::path::Path;

use anyhow::bail;

/// Model names accepted by `--model`.
const MODELS: [&str; 1] = ["minilm"];

/// Runs the export. Blank lines of `inputs` are skipped; an unknown model, an unreadable or empty
/// input file are one-line errors; `out` is replaced atomically, so an existing file is never left
/// half overwritten. `model_dir` is the `--model-dir` override of the cached weights.
pub fn run(model: &str, inputs: &Path, out: &Path, model_dir: Option<&Path>) -> anyhow::Result<()> {
    if !MODELS.contains(&model) {
        bail!("unknown model {model:?}: expected one of {}", MODELS.join(", "));
    }
    let texts = embeddings::inputs::read_inputs(inputs)?;
    // Checked before the model runs, so a typo in --out does not cost a forward pass.
    let out_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !out_dir.is_dir() {
        bail!("output directory {} does not exist", out_dir.display());
    }
    let states = embeddings::minilm::run(&texts, model_dir, &mut |m| eprintln!("{m}"))?;
    states.write_safetensors(out)?;
    eprintln!(
        "wrote {}: {} inputs padded to {} tokens, {} hidden states of size {}, {} attention maps of {} heads",
        out.display(),
        states.batch(),
        states.seq_len(),
        states.num_layers() + 1,
        states.hidden_size(),
        states.num_layers(),
        states.num_heads().unwrap_or(0),
    );
    Ok(())
}
