//! [`HiddenStates`]: every layer's token representations (and optionally attention probabilities)
//! for a padded batch of inputs, independent of the model that produced them, with a safetensors
//! file layout that any framework can write.
//!
//! # File layout
//!
//! One safetensors file, little-endian, row-major, with `B` inputs padded to a common length `S`,
//! hidden size `D`, `L` layers and `H` heads:
//!
//! | tensor | shape | dtype |
//! |---|---|---|
//! | `input_ids` | `[B, S]` | `I64` (written); `I64`, `I32` or `U32` (read) |
//! | `attention_mask` | `[B, S]` | `I64` (written); any integer type or `BOOL` (read); values 0/1 |
//! | `hidden_states.{k}`, `k = 0..=L` | `[B, S, D]` | `F32` (written); `F32` or `F64` (read) |
//! | `attentions.{k}`, `k = 0..L` (optional) | `[B, H, S, S]` | `F32` (written); `F32` or `F64` (read) |
//!
//! `hidden_states.0` is the embedding output and `hidden_states.{k}` the output of layer `k`: the
//! Hugging Face `output_hidden_states=True` convention, so a PyTorch export is
//! `{f"hidden_states.{k}": h.float() for k, h in enumerate(out.hidden_states)}` plus the tokenizer's
//! `input_ids` and `attention_mask` (`I64` because that is what PyTorch tokenizers return). The
//! mask may pad on either side: only positions with mask 1 are ever read as tokens. Attentions are
//! all present or all absent. The metadata key `texts`, if present, is a JSON array of the `B`
//! input strings; other metadata keys and tensors with other names are ignored, so a file may carry
//! extra data.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, ensure, Context};
use dynamics::Tokens;
use nalgebra::DVector;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const HIDDEN: &str = "hidden_states";
const ATTENTIONS: &str = "attentions";
const TEXTS_KEY: &str = "texts";

/// Per-layer hidden states of a padded batch: `L + 1` arrays `[batch, seq, hidden]` (embedding
/// output first) and, optionally, `L` arrays of attention probabilities `[batch, heads, seq, seq]`,
/// all f32 and row-major.
///
/// Construction validates everything (shapes, finiteness, a 0/1 mask with at least one valid
/// token per input), so every accessor of a value of this type is total.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenStates {
    texts: Vec<String>,
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<u8>>,
    hidden_size: usize,
    hidden_states: Vec<Vec<f32>>,
    num_heads: usize,
    attentions: Vec<Vec<f32>>,
}

/// The unvalidated pieces of a [`HiddenStates`]; see there for shapes. `attentions` may be empty
/// (then `num_heads` is ignored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HiddenStatesParts {
    /// One text per input; empty strings when the texts are unknown.
    pub texts: Vec<String>,
    /// `[batch][seq]` token ids, padding included.
    pub input_ids: Vec<Vec<i64>>,
    /// `[batch][seq]`, 1 for a real token and 0 for padding.
    pub attention_mask: Vec<Vec<u8>>,
    pub hidden_size: usize,
    /// `L + 1` flat `[batch, seq, hidden_size]` arrays.
    pub hidden_states: Vec<Vec<f32>>,
    pub num_heads: usize,
    /// `L` flat `[batch, num_heads, seq, seq]` arrays, or none.
    pub attentions: Vec<Vec<f32>>,
}

impl HiddenStates {
    /// Validates `parts`; errors name the offending tensor in the file layout's terms.
    pub fn new(parts: HiddenStatesParts) -> anyhow::Result<Self> {
        let HiddenStatesParts {
            texts,
            input_ids,
            attention_mask,
            hidden_size,
            hidden_states,
            num_heads,
            attentions,
        } = parts;
        let batch = input_ids.len();
        ensure!(batch > 0, "{INPUT_IDS} is empty: need at least one input");
        let seq = input_ids[0].len();
        ensure!(seq > 0, "{INPUT_IDS} has sequence length 0: need at least one token");
        if let Some(b) = input_ids.iter().position(|r| r.len() != seq) {
            bail!("{INPUT_IDS} row {b} has length {}, expected {seq} like row 0", input_ids[b].len());
        }
        ensure!(
            attention_mask.len() == batch && attention_mask.iter().all(|r| r.len() == seq),
            "{ATTENTION_MASK} does not have the shape [{batch}, {seq}] of {INPUT_IDS}"
        );
        for (b, row) in attention_mask.iter().enumerate() {
            if let Some(t) = row.iter().position(|&m| m > 1) {
                bail!("{ATTENTION_MASK} has value {} at [{b}, {t}], expected 0 or 1", row[t]);
            }
            ensure!(row.contains(&1), "{ATTENTION_MASK} row {b} has no valid token");
        }
        ensure!(texts.len() == batch, "{} texts for {batch} inputs", texts.len());
        ensure!(!hidden_states.is_empty(), "missing tensor {HIDDEN}.0");
        ensure!(hidden_size > 0, "hidden size is 0");
        let per_layer = batch * seq * hidden_size;
        for (k, h) in hidden_states.iter().enumerate() {
            ensure!(
                h.len() == per_layer,
                "{HIDDEN}.{k} has {} values, expected {batch} × {seq} × {hidden_size} = {per_layer}",
                h.len()
            );
            check_finite(h, &format!("{HIDDEN}.{k}"), &[batch, seq, hidden_size])?;
        }
        let layers = hidden_states.len() - 1;
        let num_heads = if attentions.is_empty() { 0 } else { num_heads };
        if !attentions.is_empty() {
            ensure!(
                attentions.len() == layers,
                "{} {ATTENTIONS} tensors for {layers} layers ({} {HIDDEN} tensors)",
                attentions.len(),
                layers + 1
            );
            ensure!(num_heads > 0, "number of attention heads is 0");
            let per_layer = batch * num_heads * seq * seq;
            for (k, a) in attentions.iter().enumerate() {
                ensure!(
                    a.len() == per_layer,
                    "{ATTENTIONS}.{k} has {} values, expected {batch} × {num_heads} × {seq} × {seq} = {per_layer}",
                    a.len()
                );
                check_finite(a, &format!("{ATTENTIONS}.{k}"), &[batch, num_heads, seq, seq])?;
            }
        }
        Ok(Self { texts, input_ids, attention_mask, hidden_size, hidden_states, num_heads, attentions })
    }

    /// The pieces back, for callers that want to edit and revalidate.
    pub fn into_parts(self) -> HiddenStatesParts {
        HiddenStatesParts {
            texts: self.texts,
            input_ids: self.input_ids,
            attention_mask: self.attention_mask,
            hidden_size: self.hidden_size,
            hidden_states: self.hidden_states,
            num_heads: self.num_heads,
            attentions: self.attentions,
        }
    }

    /// Number of inputs `B`.
    pub fn batch(&self) -> usize {
        self.input_ids.len()
    }

    /// Padded sequence length `S`.
    pub fn seq_len(&self) -> usize {
        self.input_ids[0].len()
    }

    /// Hidden size `D`.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Number of layers `L`; there are `L + 1` hidden states.
    pub fn num_layers(&self) -> usize {
        self.hidden_states.len() - 1
    }

    /// Number of attention heads, when attentions are present.
    pub fn num_heads(&self) -> Option<usize> {
        self.has_attentions().then_some(self.num_heads)
    }

    pub fn has_attentions(&self) -> bool {
        !self.attentions.is_empty()
    }

    /// The input texts (empty strings when a file did not record them).
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// `[batch][seq]` token ids, padding included.
    pub fn input_ids(&self) -> &[Vec<i64>] {
        &self.input_ids
    }

    /// `[batch][seq]`, 1 for a real token and 0 for padding.
    pub fn attention_mask(&self) -> &[Vec<u8>] {
        &self.attention_mask
    }

    /// Hidden state `k` (`0` = embedding output) as a flat `[batch, seq, hidden]` array.
    pub fn hidden_state(&self, k: usize) -> anyhow::Result<&[f32]> {
        self.check_state_index(k)?;
        Ok(&self.hidden_states[k])
    }

    /// All `L + 1` hidden states, flat `[batch, seq, hidden]` each.
    pub fn hidden_states(&self) -> &[Vec<f32>] {
        &self.hidden_states
    }

    /// The representation of position `t` of input `b` after `k` layers.
    pub fn hidden_vector(&self, k: usize, b: usize, t: usize) -> anyhow::Result<&[f32]> {
        self.check_state_index(k)?;
        self.check_input(b)?;
        ensure!(
            t < self.seq_len(),
            "position {t} is out of range: the sequence length is {}",
            self.seq_len()
        );
        let d = self.hidden_size;
        let start = (b * self.seq_len() + t) * d;
        Ok(&self.hidden_states[k][start..start + d])
    }

    /// Attention probabilities of layer `k` (`0..L`, the layer that maps hidden state `k` to
    /// `k + 1`) as a flat `[batch, heads, seq, seq]` array: row `i` of head `h` is the softmax
    /// distribution of query `i` over keys.
    pub fn attention(&self, k: usize) -> anyhow::Result<&[f32]> {
        ensure!(self.has_attentions(), "these hidden states carry no attention probabilities");
        ensure!(
            k < self.num_layers(),
            "layer {k} is out of range: attentions exist for layers 0..{}",
            self.num_layers()
        );
        Ok(&self.attentions[k])
    }

    /// Row `i` (query position `i`) of head `h` of layer `k` for input `b`: `seq` probabilities.
    pub fn attention_row(&self, k: usize, b: usize, h: usize, i: usize) -> anyhow::Result<&[f32]> {
        let a = self.attention(k)?;
        self.check_input(b)?;
        ensure!(h < self.num_heads, "head {h} is out of range: there are {} heads", self.num_heads);
        let s = self.seq_len();
        ensure!(i < s, "position {i} is out of range: the sequence length is {s}");
        let start = ((b * self.num_heads + h) * s + i) * s;
        Ok(&a[start..start + s])
    }

    /// Positions of input `b` whose mask is 1, in order.
    pub fn valid_positions(&self, b: usize) -> anyhow::Result<Vec<usize>> {
        self.check_input(b)?;
        Ok(self.attention_mask[b].iter().enumerate().filter(|(_, &m)| m == 1).map(|(t, _)| t).collect())
    }

    /// The tokens of input `b` after `k` layers as a `d × n` configuration for `dynamics`: one
    /// column per non-padding position (special tokens included), in order, normalised to the unit
    /// sphere. A zero representation has no direction and is an error.
    pub fn tokens(&self, b: usize, k: usize) -> anyhow::Result<Tokens> {
        self.check_state_index(k)?;
        let positions = self.valid_positions(b)?;
        let d = self.hidden_size;
        let mut x = Tokens::zeros(d, positions.len());
        for (j, &t) in positions.iter().enumerate() {
            let v = self.hidden_vector(k, b, t)?;
            for (i, &value) in v.iter().enumerate() {
                x[(i, j)] = f64::from(value);
            }
        }
        dynamics::tokens::normalize_columns(&mut x)
            .with_context(|| format!("tokens of input {b} at layer {k}"))?;
        Ok(x)
    }

    /// The sentence-transformers sentence embedding of input `b` from hidden state `k`: the mean
    /// of the raw (unnormalised) representations over non-padding positions, normalised to unit
    /// length, so that the cosine of two inputs is the dot product of their embeddings.
    pub fn sentence_embedding(&self, b: usize, k: usize) -> anyhow::Result<DVector<f64>> {
        let positions = self.valid_positions(b)?;
        let mut sum = DVector::<f64>::zeros(self.hidden_size);
        for &t in &positions {
            let v = self.hidden_vector(k, b, t)?;
            sum += DVector::from_iterator(v.len(), v.iter().map(|&x| f64::from(x)));
        }
        let norm = sum.norm();
        ensure!(norm > 0.0, "the mean representation of input {b} at layer {k} is zero");
        Ok(sum / norm)
    }

    /// The file layout's bytes.
    pub fn to_safetensors_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let (b, s, d) = (self.batch(), self.seq_len(), self.hidden_size);
        let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let ids = self.input_ids.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        blobs.push((INPUT_IDS.into(), Dtype::I64, vec![b, s], ids));
        let mask = self.attention_mask.iter().flatten().flat_map(|&v| i64::from(v).to_le_bytes()).collect();
        blobs.push((ATTENTION_MASK.into(), Dtype::I64, vec![b, s], mask));
        for (k, h) in self.hidden_states.iter().enumerate() {
            blobs.push((format!("{HIDDEN}.{k}"), Dtype::F32, vec![b, s, d], f32_bytes(h)));
        }
        for (k, a) in self.attentions.iter().enumerate() {
            blobs.push((
                format!("{ATTENTIONS}.{k}"),
                Dtype::F32,
                vec![b, self.num_heads, s, s],
                f32_bytes(a),
            ));
        }
        let views = blobs
            .iter()
            .map(|(name, dtype, shape, data)| {
                Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .context("cannot build the safetensors tensors")?;
        let texts = serde_json::to_string(&self.texts).context("cannot encode the texts")?;
        let metadata = HashMap::from([(TEXTS_KEY.to_owned(), texts)]);
        safetensors::serialize(views, Some(metadata)).context("cannot serialise the hidden states")
    }

    /// Writes the file layout to `path` atomically: an existing file is replaced whole or not at
    /// all.
    pub fn write_safetensors(&self, path: &Path) -> anyhow::Result<()> {
        crate::atomic::write_bytes(path, &self.to_safetensors_bytes()?)
    }

    /// Parses and validates the file layout.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
        let st = SafeTensors::deserialize(bytes).context("not a safetensors file")?;
        let ids = st.tensor(INPUT_IDS).map_err(|_| anyhow::anyhow!("missing tensor {INPUT_IDS}"))?;
        let [batch, seq] = shape_of::<2>(&ids, INPUT_IDS, "[batch, seq]")?;
        ensure!(
            batch > 0 && seq > 0,
            "tensor {INPUT_IDS} has shape [{batch}, {seq}]: need at least one token"
        );
        let ids = int_values(&ids, INPUT_IDS, &[Dtype::I64, Dtype::I32, Dtype::U32])?;
        let mask =
            st.tensor(ATTENTION_MASK).map_err(|_| anyhow::anyhow!("missing tensor {ATTENTION_MASK}"))?;
        let mask_shape = shape_of::<2>(&mask, ATTENTION_MASK, "[batch, seq]")?;
        ensure!(
            mask_shape == [batch, seq],
            "tensor {ATTENTION_MASK} has shape {mask_shape:?}, expected [{batch}, {seq}] like {INPUT_IDS}"
        );
        let mask_types = [
            Dtype::I64,
            Dtype::I32,
            Dtype::I16,
            Dtype::I8,
            Dtype::U64,
            Dtype::U32,
            Dtype::U16,
            Dtype::U8,
            Dtype::BOOL,
        ];
        let mask = int_values(&mask, ATTENTION_MASK, &mask_types)?;
        let mask = mask
            .iter()
            .enumerate()
            .map(|(i, &m)| match m {
                0 | 1 => Ok(m as u8),
                _ => bail!("{ATTENTION_MASK} has value {m} at [{}, {}], expected 0 or 1", i / seq, i % seq),
            })
            .collect::<anyhow::Result<Vec<u8>>>()?;

        let names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
        let hidden_names = indexed_names(&names, HIDDEN)?;
        let attention_names = indexed_names(&names, ATTENTIONS)?;
        ensure!(!hidden_names.is_empty(), "missing tensor {HIDDEN}.0");

        let mut hidden_size = 0;
        let mut hidden_states = Vec::with_capacity(hidden_names.len());
        for name in &hidden_names {
            let t = st.tensor(name)?;
            let shape = shape_of::<3>(&t, name, "[batch, seq, hidden]")?;
            if hidden_size == 0 {
                hidden_size = shape[2];
            }
            ensure!(
                shape == [batch, seq, hidden_size],
                "tensor {name} has shape {shape:?}, expected [{batch}, {seq}, {hidden_size}]"
            );
            hidden_states.push(float_values(&t, name)?);
        }
        let layers = hidden_names.len() - 1;
        let mut num_heads = 0;
        let mut attentions = Vec::with_capacity(attention_names.len());
        if !attention_names.is_empty() {
            ensure!(
                attention_names.len() == layers,
                "{} {ATTENTIONS} tensors for {layers} layers: expected {ATTENTIONS}.0 to {ATTENTIONS}.{}",
                attention_names.len(),
                layers.saturating_sub(1)
            );
            for name in &attention_names {
                let t = st.tensor(name)?;
                let shape = shape_of::<4>(&t, name, "[batch, heads, seq, seq]")?;
                if num_heads == 0 {
                    num_heads = shape[1];
                }
                ensure!(
                    shape == [batch, num_heads, seq, seq],
                    "tensor {name} has shape {shape:?}, expected [{batch}, {num_heads}, {seq}, {seq}]"
                );
                attentions.push(float_values(&t, name)?);
            }
        }
        let texts = match header.metadata().as_ref().and_then(|m| m.get(TEXTS_KEY)) {
            None => vec![String::new(); batch],
            Some(json) => {
                let texts: Vec<String> =
                    serde_json::from_str(json).context("metadata `texts` is not a JSON array of strings")?;
                ensure!(
                    texts.len() == batch,
                    "metadata `texts` has {} entries for {batch} inputs",
                    texts.len()
                );
                texts
            }
        };
        Self::new(HiddenStatesParts {
            texts,
            input_ids: ids.chunks(seq).map(<[i64]>::to_vec).collect(),
            attention_mask: mask.chunks(seq).map(<[u8]>::to_vec).collect(),
            hidden_size,
            hidden_states,
            num_heads,
            attentions,
        })
    }

    /// Reads and validates a file in the layout; errors name the file and the offending tensor.
    pub fn read_safetensors(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_safetensors_bytes(&bytes)
            .with_context(|| format!("invalid hidden states in {}", path.display()))
    }

    fn check_state_index(&self, k: usize) -> anyhow::Result<()> {
        ensure!(
            k < self.hidden_states.len(),
            "layer {k} is out of range: hidden states exist for k = 0..={}",
            self.num_layers()
        );
        Ok(())
    }

    fn check_input(&self, b: usize) -> anyhow::Result<()> {
        ensure!(b < self.batch(), "input {b} is out of range: there are {} inputs", self.batch());
        Ok(())
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn check_finite(values: &[f32], name: &str, shape: &[usize]) -> anyhow::Result<()> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        let mut index = vec![0; shape.len()];
        let mut rest = i;
        for (slot, &n) in index.iter_mut().zip(shape).rev() {
            *slot = rest % n;
            rest /= n;
        }
        bail!("{name} has the non-finite value {} at {index:?}", values[i]);
    }
    Ok(())
}

fn shape_of<const N: usize>(t: &TensorView<'_>, name: &str, meaning: &str) -> anyhow::Result<[usize; N]> {
    <[usize; N]>::try_from(t.shape()).map_err(|_| {
        anyhow::anyhow!("tensor {name} has shape {:?}, expected {N} dimensions {meaning}", t.shape())
    })
}

/// The tensors `{prefix}.0`, `{prefix}.1`, … in index order; a gap or a malformed index is an
/// error rather than a silently shorter list.
fn indexed_names(names: &[String], prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut found = BTreeMap::new();
    for name in names {
        if let Some(index) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
            let k: usize = index.parse().map_err(|_| {
                anyhow::anyhow!("tensor {name} is not named {prefix}.{{k}} with an integer k")
            })?;
            found.insert(k, name.clone());
        }
    }
    for (expected, (&k, _)) in found.iter().enumerate() {
        ensure!(k == expected, "missing tensor {prefix}.{expected} (found {prefix}.{k})");
    }
    Ok(found.into_values().collect())
}

fn int_values(t: &TensorView<'_>, name: &str, allowed: &[Dtype]) -> anyhow::Result<Vec<i64>> {
    let data = t.data();
    let dtype = t.dtype();
    ensure!(allowed.contains(&dtype), "tensor {name} has dtype {dtype:?}, expected one of {allowed:?}");
    fn le<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        data.chunks_exact(N).map(|c| <[u8; N]>::try_from(c).expect("chunks_exact yields N bytes"))
    }
    let values: Vec<i64> = match dtype {
        Dtype::I64 => le::<8>(data).map(i64::from_le_bytes).collect(),
        Dtype::U64 => {
            le::<8>(data).map(|b| i64::try_from(u64::from_le_bytes(b)).unwrap_or(i64::MAX)).collect()
        }
        Dtype::I32 => le::<4>(data).map(|b| i64::from(i32::from_le_bytes(b))).collect(),
        Dtype::U32 => le::<4>(data).map(|b| i64::from(u32::from_le_bytes(b))).collect(),
        Dtype::I16 => le::<2>(data).map(|b| i64::from(i16::from_le_bytes(b))).collect(),
        Dtype::U16 => le::<2>(data).map(|b| i64::from(u16::from_le_bytes(b))).collect(),
        Dtype::I8 => data.iter().map(|&b| i64::from(b as i8)).collect(),
        Dtype::U8 | Dtype::BOOL => data.iter().map(|&b| i64::from(b)).collect(),
        _ => bail!("tensor {name} has dtype {dtype:?}, expected one of {allowed:?}"),
    };
    Ok(values)
}

fn float_values(t: &TensorView<'_>, name: &str) -> anyhow::Result<Vec<f32>> {
    let data = t.data();
    match t.dtype() {
        Dtype::F32 => {
            Ok(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        Dtype::F64 => Ok(data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()),
        other => bail!(
            "tensor {name} has dtype {other:?}, expected F32 or F64 (convert half precision with .float())"
        ),
    }
}
