//! A BERT encoder (Post-LN, absolute positions) written from candle-nn pieces so that it returns
//! what the dynamics needs and `candle-transformers` does not expose: the hidden state after every
//! layer and every head's attention probabilities.
//!
//! The forward follows Hugging Face `BertModel` with `attn_implementation="eager"` operation for
//! operation, in f32, because the parity test compares against that at 1e-4:
//!
//! ```text
//! h⁰ = LN(word[ids] + type[type_ids] + pos[0..S])
//! A  = softmax(Q Kᵀ / √d_head + m),    m = 0 on tokens, f32::MIN on padding keys
//! a  = LN(h + (A V) W_o)               (Post-LN: the norm comes after the residual sum)
//! hᵏ⁺¹ = LN(a + GELU(a W₁) W₂)          (GELU with erf, as HF "gelu")
//! ```

use anyhow::{bail, ensure, Context};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::fetch::ModelFiles;
use crate::states::{HiddenStates, HiddenStatesParts};

/// Inputs per forward pass. The batch is padded once to its longest input and then run in chunks
/// of this many rows, which gives exactly the full-batch result (rows never interact) while
/// bounding the memory of the intermediate activations.
const CHUNK: usize = 16;

/// The fields of a Hugging Face `config.json` that the forward uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Parses and checks `config.json`.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let config: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a BERT config", path.display()))?;
        config.check().with_context(|| format!("unsupported config {}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.num_attention_heads > 0 && self.head_dim() * self.num_attention_heads == self.hidden_size,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        ensure!(self.hidden_size > 0 && self.max_position_embeddings > 0, "zero hidden or position size");
        ensure!(
            self.position_embedding_type == "absolute",
            "position_embedding_type {} is not supported (only absolute)",
            self.position_embedding_type
        );
        Activation::parse(&self.hidden_act)?;
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "gelu" => Self::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Self::GeluTanh,
            "relu" => Self::Relu,
            other => bail!("hidden_act {other} is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)"),
        })
    }

    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::GeluErf => x.gelu_erf(),
            Self::GeluTanh => x.gelu(),
            Self::Relu => x.relu(),
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// The tokenizer and weights of a BERT checkpoint on the CPU.
pub struct BertEncoder {
    config: BertConfig,
    activation: Activation,
    tokenizer: Tokenizer,
    device: Device,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

/// The tokenised batch, padded to its longest input.
struct Batch {
    ids: Vec<Vec<u32>>,
    type_ids: Vec<Vec<u32>>,
    mask: Vec<Vec<u32>>,
}

impl BertEncoder {
    /// Loads `files` (weights with or without the `bert.` prefix of task checkpoints).
    pub fn load(files: &ModelFiles) -> anyhow::Result<Self> {
        let config = BertConfig::from_file(&files.config)?;
        let activation = Activation::parse(&config.hidden_act)?;
        let tokenizer = load_tokenizer(&files.tokenizer, config.max_position_embeddings)?;
        let device = Device::Cpu;
        let bytes = std::fs::read(&files.weights)
            .with_context(|| format!("cannot read {}", files.weights.display()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .with_context(|| format!("{} is not a safetensors file", files.weights.display()))?;
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") { vb } else { vb.pp("bert") };
        Self::from_var_builder(config, activation, tokenizer, device, vb)
            .with_context(|| format!("cannot load BERT weights from {}", files.weights.display()))
    }

    fn from_var_builder(
        config: BertConfig,
        activation: Activation,
        tokenizer: Tokenizer,
        device: Device,
        vb: VarBuilder,
    ) -> anyhow::Result<Self> {
        let (d, eps) = (config.hidden_size, config.layer_norm_eps);
        let e = vb.pp("embeddings");
        let word = embedding(config.vocab_size, d, e.pp("word_embeddings"))?;
        let position = embedding(config.max_position_embeddings, d, e.pp("position_embeddings"))?;
        let token_type = embedding(config.type_vocab_size, d, e.pp("token_type_embeddings"))?;
        let embed_norm = layer_norm(d, eps, e.pp("LayerNorm"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|k| {
                let l = vb.pp(format!("encoder.layer.{k}"));
                let a = l.pp("attention");
                Ok(Layer {
                    query: linear(d, d, a.pp("self.query"))?,
                    key: linear(d, d, a.pp("self.key"))?,
                    value: linear(d, d, a.pp("self.value"))?,
                    attn_out: linear(d, d, a.pp("output.dense"))?,
                    attn_norm: layer_norm(d, eps, a.pp("output.LayerNorm"))?,
                    intermediate: linear(d, config.intermediate_size, l.pp("intermediate.dense"))?,
                    output: linear(config.intermediate_size, d, l.pp("output.dense"))?,
                    out_norm: layer_norm(d, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        // A config with fewer layers than the checkpoint would silently run a truncated model.
        let extra = format!("encoder.layer.{}.output.dense.weight", config.num_hidden_layers);
        if vb.contains_tensor(&extra) {
            anyhow::bail!(
                "the weights hold more than the {} layers config.json declares (found {extra})",
                config.num_hidden_layers
            );
        }
        Ok(Self { config, activation, tokenizer, device, word, position, token_type, embed_norm, layers })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The tokenizer's truncation length: longer inputs keep only their first `max_tokens`
    /// tokens (special tokens included).
    pub fn max_tokens(&self) -> usize {
        self.tokenizer.get_truncation().map_or(self.config.max_position_embeddings, |t| t.max_length)
    }

    /// Every hidden state and attention map of `texts`, padded to the longest input.
    pub fn hidden_states(&self, texts: &[String]) -> anyhow::Result<HiddenStates> {
        ensure!(!texts.is_empty(), "no input texts");
        let batch = self.tokenize(texts)?;
        let layers = self.config.num_hidden_layers;
        let mut hidden_states = vec![Vec::new(); layers + 1];
        let mut attentions = vec![Vec::new(); layers];
        for start in (0..texts.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(texts.len());
            let (h, a) = self.forward_rows(&batch, start..end).context("model forward failed")?;
            for (all, chunk) in hidden_states.iter_mut().zip(h) {
                all.extend(chunk.flatten_all()?.to_vec1::<f32>()?);
            }
            for (all, chunk) in attentions.iter_mut().zip(a) {
                all.extend(chunk.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        let widen = |rows: Vec<Vec<u32>>| -> Vec<Vec<i64>> {
            rows.into_iter().map(|r| r.into_iter().map(i64::from).collect()).collect()
        };
        let narrow = |rows: Vec<Vec<u32>>| -> Vec<Vec<u8>> {
            rows.into_iter().map(|r| r.into_iter().map(|m| u8::from(m != 0)).collect()).collect()
        };
        HiddenStates::new(HiddenStatesParts {
            texts: texts.to_vec(),
            input_ids: widen(batch.ids),
            attention_mask: narrow(batch.mask),
            hidden_size: self.config.hidden_size,
            hidden_states,
            num_heads: self.config.num_attention_heads,
            attentions,
        })
    }

    fn tokenize(&self, texts: &[String]) -> anyhow::Result<Batch> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
        let mut batch = Batch { ids: Vec::new(), type_ids: Vec::new(), mask: Vec::new() };
        for (b, enc) in encodings.iter().enumerate() {
            if let Some(&bad) = enc.get_ids().iter().find(|&&id| id as usize >= self.config.vocab_size) {
                bail!("input {b} has token id {bad}, outside the vocabulary of {}", self.config.vocab_size);
            }
            if let Some(&bad) =
                enc.get_type_ids().iter().find(|&&t| t as usize >= self.config.type_vocab_size)
            {
                bail!(
                    "input {b} has token type {bad}, outside the {} token types",
                    self.config.type_vocab_size
                );
            }
            batch.ids.push(enc.get_ids().to_vec());
            batch.type_ids.push(enc.get_type_ids().to_vec());
            batch.mask.push(enc.get_attention_mask().to_vec());
        }
        Ok(batch)
    }

    /// The forward of rows `rows` of `batch`: `L + 1` hidden states `[b, S, D]` and `L`
    /// attention maps `[b, H, S, S]`.
    fn forward_rows(
        &self,
        batch: &Batch,
        rows: std::ops::Range<usize>,
    ) -> candle_core::Result<(Vec<Tensor>, Vec<Tensor>)> {
        let (b, s) = (rows.len(), batch.ids[rows.start].len());
        let stack = |m: &[Vec<u32>]| Tensor::from_vec(m[rows.clone()].concat(), (b, s), &self.device);
        let ids = stack(&batch.ids)?;
        let type_ids = stack(&batch.type_ids)?;
        let mask = stack(&batch.mask)?.to_dtype(DType::F32)?;
        // HF's additive mask: 0 on tokens, the dtype minimum on padding keys, which softmax maps
        // to exactly 0 (and, unlike −∞, never to NaN).
        let additive = ((1.0 - mask)? * f64::from(f32::MIN))?.reshape((b, 1, 1, s))?;

        let positions = Tensor::arange(0u32, s as u32, &self.device)?;
        let embedded = self
            .word
            .forward(&ids)?
            .add(&self.token_type.forward(&type_ids)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let mut h = self.embed_norm.forward(&embedded)?;

        let (heads, dh) = (self.config.num_attention_heads, self.config.head_dim());
        let scale = (dh as f64).powf(-0.5);
        let split = |x: Tensor| x.reshape((b, s, heads, dh))?.transpose(1, 2)?.contiguous();
        let mut hidden = vec![h.clone()];
        let mut attentions = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let q = split(layer.query.forward(&h)?)?;
            let k = split(layer.key.forward(&h)?)?;
            let v = split(layer.value.forward(&h)?)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&additive)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, s, heads * dh))?;
            let a = layer.attn_norm.forward(&(layer.attn_out.forward(&context)? + &h)?)?;
            let m = layer.output.forward(&self.activation.apply(&layer.intermediate.forward(&a)?)?)?;
            h = layer.out_norm.forward(&(m + &a)?)?;
            hidden.push(h.clone());
            attentions.push(probs);
        }
        Ok((hidden, attentions))
    }
}

/// The checkpoint's tokenizer with its fixed-length padding replaced by padding to the longest
/// input of each batch (same pad token, on the right), and truncation capped at the position
/// table so that no input can index past it. all-MiniLM-L6-v2 ships truncation at 128 tokens,
/// which is kept.
fn load_tokenizer(path: &std::path::Path, max_positions: usize) -> anyhow::Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| anyhow::anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
    let padding = match tokenizer.get_padding() {
        Some(p) => PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            ..p.clone()
        },
        None => PaddingParams::default(),
    };
    tokenizer.with_padding(Some(padding));
    let truncation = match tokenizer.get_truncation() {
        Some(t) if t.max_length <= max_positions => t.clone(),
        Some(t) => TruncationParams { max_length: max_positions, ..t.clone() },
        None => TruncationParams { max_length: max_positions, ..Default::default() },
    };
    tokenizer
        .with_truncation(Some(truncation))
        .map_err(|e| anyhow::anyhow!("cannot configure tokenizer {}: {e}", path.display()))?;
    Ok(tokenizer)
}
