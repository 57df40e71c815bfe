//! sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 12 heads): the entry
//! points that fetch the weights, run the native forward and summarise the layers.

use std::path::Path;

use crate::bert::BertEncoder;
use crate::summary::{layer_summaries, LayerSummary};
use crate::{fetch, inputs, HiddenStates};

/// The Hugging Face name of the model.
pub const MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Loads the model from `model_dir`, or from the cache (fetching it on first use; see
/// [`fetch::minilm_files`]).
pub fn load(model_dir: Option<&Path>, progress: &mut dyn FnMut(&str)) -> anyhow::Result<BertEncoder> {
    let files = fetch::minilm_files(model_dir, progress)?;
    progress(&format!("loading {MODEL_NAME} from {}", files.dir.display()));
    BertEncoder::load(&files)
}

/// All 7 hidden states and the attention probabilities of `texts`.
pub fn run(
    texts: &[String],
    model_dir: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<HiddenStates> {
    let model = load(model_dir, progress)?;
    progress(&format!("encoding {} inputs", texts.len()));
    let states = model.hidden_states(texts)?;
    let limit = model.max_tokens();
    for b in 0..states.batch() {
        if states.valid_positions(b)?.len() >= limit {
            progress(&format!(
                "warning: input {b} fills the {limit}-token limit; any text beyond it was truncated"
            ));
        }
    }
    Ok(states)
}

/// [`run`] on the default input set ([`inputs::DEFAULT_INPUTS`]) followed by the per-layer
/// diagnostic ([`layer_summaries`]).
pub fn run_default(
    model_dir: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<(HiddenStates, Vec<LayerSummary>)> {
    let states = run(&inputs::default_inputs(), model_dir, progress)?;
    progress("summarising the layers");
    let summaries = layer_summaries(&states)?;
    Ok((states, summaries))
}
