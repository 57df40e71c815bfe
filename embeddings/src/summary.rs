//! The Figure-1 diagnostic per layer: how concentrated a real model's normalised tokens are, from
//! the embedding output to the last layer.
//!
//! # What is computed
//!
//! For hidden state `k` (`0` = embedding output, `k` = output of layer `k`) and each input `b`
//! separately, take the non-padding tokens `x_1, …, x_n` of `b` — special tokens such as `[CLS]`
//! and `[SEP]` included, since the model treats them as tokens like any other and they take part
//! in every attention step — normalise them to the unit sphere and form the inner products
//! `⟨x_i, x_j⟩` for `i < j`. Pairs never mix two inputs: each input is its own particle system.
//! The inner products of all inputs are pooled (so an input with `n` tokens contributes
//! `n(n − 1)/2` values) and summarised by their mean, the fraction above 0.9 and a 40-bin
//! histogram on `[−1, 1]`.
//!
//! Two differences from the published Figure 1 (Rigollet, arXiv 2512.01868): the diagonal
//! `⟨x_i, x_i⟩ = 1` is excluded here (the figure counted it, which adds `n` values equal to 1 per
//! input and inflates the mass near 1), and the model is the real all-MiniLM-L6-v2 — 12 heads per
//! layer with its MLP and LayerNorm sublayers — or whichever model the loaded hidden states came
//! from.

use dynamics::diagnostics::{pairwise_inner_products, Histogram};
use serde::Serialize;

use crate::HiddenStates;

/// Number of histogram bins on `[−1, 1]`.
pub const HISTOGRAM_BINS: usize = 40;
/// The threshold of `frac_above_0_9`.
pub const HIGH_COSINE: f64 = 0.9;

/// The pooled pairwise inner products of one hidden state; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// `k`: 0 for the embedding output, `k` for the output of layer `k`.
    pub layer: usize,
    /// Mean of `⟨x_i, x_j⟩` over all pooled pairs.
    pub mean_cos: f64,
    /// Fraction of pooled pairs with `⟨x_i, x_j⟩ > 0.9`.
    pub frac_above_0_9: f64,
    /// Histogram of the pooled pairs on `[−1, 1]` with [`HISTOGRAM_BINS`] bins.
    pub histogram: Histogram,
}

/// [`layer_summary`] for every hidden state `k = 0..=L`.
pub fn layer_summaries(states: &HiddenStates) -> anyhow::Result<Vec<LayerSummary>> {
    (0..=states.num_layers()).map(|k| layer_summary(states, k)).collect()
}

/// The diagnostic of hidden state `k`. Inputs with a single non-padding token have no pairs and
/// contribute nothing; an error if no input has two tokens.
pub fn layer_summary(states: &HiddenStates, k: usize) -> anyhow::Result<LayerSummary> {
    let mut values = Vec::new();
    for b in 0..states.batch() {
        let x = states.tokens(b, k)?;
        if x.ncols() < 2 {
            continue;
        }
        // |⟨x_i, x_j⟩| ≤ 1 for unit vectors; anything beyond is rounding of nearly equal tokens,
        // which would otherwise land in the histogram's overflow count instead of its last bin.
        values.extend(pairwise_inner_products(&x)?.into_iter().map(|v| v.clamp(-1.0, 1.0)));
    }
    anyhow::ensure!(!values.is_empty(), "no input has two non-padding tokens at layer {k}: nothing to pair");
    let n = values.len() as f64;
    let mean_cos = values.iter().sum::<f64>() / n;
    let frac_above_0_9 = values.iter().filter(|&&v| v > HIGH_COSINE).count() as f64 / n;
    let histogram = Histogram::new(&values, -1.0, 1.0, HISTOGRAM_BINS)?;
    Ok(LayerSummary { layer: k, mean_cos, frac_above_0_9, histogram })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::states::HiddenStatesParts;

    /// Two inputs of 3 and 2 valid tokens in R^2; layer 0 spread out, layer 1 collapsed.
    fn toy() -> HiddenStates {
        let spread = [[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0], [1.0, -1.0], [9.0, 9.0]];
        let collapsed = [[1.0, 0.0]; 6];
        let flat = |v: &[[f32; 2]; 6]| v.iter().flatten().copied().collect::<Vec<f32>>();
        HiddenStates::new(HiddenStatesParts {
            texts: vec!["a".into(), "b".into()],
            input_ids: vec![vec![1, 2, 3], vec![4, 5, 0]],
            attention_mask: vec![vec![1, 1, 1], vec![1, 1, 0]],
            hidden_size: 2,
            hidden_states: vec![flat(&spread), flat(&collapsed)],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn pairs_are_pooled_within_inputs_and_padding_is_skipped() {
        let s = layer_summaries(&toy()).unwrap();
        assert_eq!(s.len(), 2);
        // Input 0: ⟨e1,e2⟩ = 0, ⟨e1,−e1⟩ = −1, ⟨e2,−e1⟩ = 0; input 1: ⟨(1,1),(1,−1)⟩/2 = 0. The
        // padding column (9, 9) is never used.
        assert_eq!(s[0].histogram.total(), 4);
        approx::assert_abs_diff_eq!(s[0].mean_cos, -0.25, epsilon = 1e-12);
        assert_eq!(s[0].frac_above_0_9, 0.0);
        assert_eq!(s[0].histogram.counts[0], 1);
        assert_eq!(s[0].histogram.counts[20], 3);
        assert_eq!(s[1].layer, 1);
        assert_eq!(s[1].mean_cos, 1.0);
        assert_eq!(s[1].frac_above_0_9, 1.0);
        assert_eq!(s[1].histogram.counts[39], 4);
        assert_eq!(s[1].histogram.above, 0);
    }

    #[test]
    fn zero_token_is_an_error_naming_input_and_layer() {
        let mut parts = toy().into_parts();
        parts.hidden_states[1][2..4].fill(0.0);
        let states = HiddenStates::new(parts).unwrap();
        let err = format!("{:#}", layer_summary(&states, 1).unwrap_err());
        assert!(err.contains("input 0 at layer 1") && err.contains("zero vector"), "{err}");
    }

    #[test]
    fn serialises_with_the_documented_field_names() {
        let json = serde_json::to_value(layer_summary(&toy(), 0).unwrap()).unwrap();
        for key in ["layer", "mean_cos", "frac_above_0_9", "histogram"] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
    }
}
