//! The hidden-states safetensors layout without the model: round trips, the dtypes accepted on
//! read, and one test per validation error, each checking that the message names the tensor.

use std::collections::HashMap;

use embeddings::states::HiddenStatesParts;
use embeddings::HiddenStates;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// Two inputs (3 and 2 valid tokens, seq 3), hidden size 2, one layer, two heads.
fn parts() -> HiddenStatesParts {
    let hidden = |scale: f32| (0..12).map(|i| scale * (i as f32 + 1.0)).collect::<Vec<f32>>();
    let attention: Vec<f32> = (0..2 * 2 * 3 * 3).map(|i| (i % 3) as f32 / 3.0).collect();
    HiddenStatesParts {
        texts: vec!["first input".into(), "second".into()],
        input_ids: vec![vec![101, 7, 102], vec![101, 102, 0]],
        attention_mask: vec![vec![1, 1, 1], vec![1, 1, 0]],
        hidden_size: 2,
        hidden_states: vec![hidden(1.0), hidden(-0.5)],
        num_heads: 2,
        attentions: vec![attention],
    }
}

fn states() -> HiddenStates {
    HiddenStates::new(parts()).unwrap()
}

/// A raw tensor for hand-built files.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn raw_f32(shape: &[usize], values: &[f32]) -> Raw {
    Raw {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn raw_i64(shape: &[usize], values: &[i64]) -> Raw {
    Raw {
        dtype: Dtype::I64,
        shape: shape.to_vec(),
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// The tensors of [`states`] as raw tensors, to be edited before serialising.
fn raw_tensors() -> HashMap<String, Raw> {
    let p = parts();
    let mut m = HashMap::new();
    m.insert("input_ids".into(), raw_i64(&[2, 3], &p.input_ids.concat()));
    let mask: Vec<i64> = p.attention_mask.concat().into_iter().map(i64::from).collect();
    m.insert("attention_mask".into(), raw_i64(&[2, 3], &mask));
    for (k, h) in p.hidden_states.iter().enumerate() {
        m.insert(format!("hidden_states.{k}"), raw_f32(&[2, 3, 2], h));
    }
    m.insert("attentions.0".into(), raw_f32(&[2, 2, 3, 3], &p.attentions[0]));
    m
}

fn serialise(tensors: &HashMap<String, Raw>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, r)| (name.clone(), TensorView::new(r.dtype, r.shape.clone(), &r.data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn read_error(tensors: &HashMap<String, Raw>) -> String {
    let err = HiddenStates::from_safetensors_bytes(&serialise(tensors)).unwrap_err();
    let message = format!("{err:#}");
    assert!(!message.contains('\n') && !message.ends_with('.'), "not a one-line message: {message}");
    message
}

#[test]
fn round_trip_through_bytes_and_file() {
    let s = states();
    let back = HiddenStates::from_safetensors_bytes(&s.to_safetensors_bytes().unwrap()).unwrap();
    assert_eq!(back, s);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.safetensors");
    s.write_safetensors(&path).unwrap();
    assert_eq!(HiddenStates::read_safetensors(&path).unwrap(), s);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file left behind");
}

#[test]
fn written_dtypes_are_the_documented_ones() {
    let bytes = states().to_safetensors_bytes().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("input_ids").unwrap().dtype(), Dtype::I64);
    assert_eq!(st.tensor("attention_mask").unwrap().dtype(), Dtype::I64);
    assert_eq!(st.tensor("hidden_states.1").unwrap().dtype(), Dtype::F32);
    assert_eq!(st.tensor("attentions.0").unwrap().shape(), &[2, 2, 3, 3]);
}

#[test]
fn foreign_exports_are_accepted() {
    // Another framework's export: i32 ids, a bool mask, f64 states, no attentions, no texts, and
    // an extra tensor that is ignored.
    let mut t = raw_tensors();
    t.remove("attentions.0");
    let ids: Vec<u8> = parts().input_ids.concat().iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
    t.insert("input_ids".into(), Raw { dtype: Dtype::I32, shape: vec![2, 3], data: ids });
    t.insert(
        "attention_mask".into(),
        Raw { dtype: Dtype::BOOL, shape: vec![2, 3], data: vec![1, 1, 1, 1, 1, 0] },
    );
    let h0: Vec<u8> = parts().hidden_states[0].iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
    t.insert("hidden_states.0".into(), Raw { dtype: Dtype::F64, shape: vec![2, 3, 2], data: h0 });
    t.insert("pooler_output".into(), raw_f32(&[2, 2], &[0.0; 4]));
    let s = HiddenStates::from_safetensors_bytes(&serialise(&t)).unwrap();
    assert_eq!(s.input_ids(), states().input_ids());
    assert_eq!(s.hidden_states(), states().hidden_states());
    assert_eq!(s.texts(), ["", ""]);
    assert!(!s.has_attentions() && s.num_heads().is_none());
}

#[test]
fn wrong_shape_is_named() {
    let mut t = raw_tensors();
    t.insert("hidden_states.1".into(), raw_f32(&[2, 3, 1], &[0.5; 6]));
    let err = read_error(&t);
    assert!(err.contains("hidden_states.1 has shape [2, 3, 1], expected [2, 3, 2]"), "{err}");

    let mut t = raw_tensors();
    t.insert("attention_mask".into(), raw_i64(&[3, 2], &[1; 6]));
    assert!(read_error(&t).contains("tensor attention_mask has shape [3, 2]"));

    let mut t = raw_tensors();
    t.insert("attentions.0".into(), raw_f32(&[2, 2, 3], &[0.0; 12]));
    assert!(read_error(&t).contains("tensor attentions.0 has shape [2, 2, 3], expected 4 dimensions"));

    let mut t = raw_tensors();
    t.insert("input_ids".into(), raw_i64(&[6], &[1; 6]));
    assert!(read_error(&t).contains("tensor input_ids has shape [6], expected 2 dimensions"));
}

#[test]
fn nan_is_named_with_its_index() {
    let mut t = raw_tensors();
    let mut h = parts().hidden_states[1].clone();
    h[7] = f32::NAN;
    t.insert("hidden_states.1".into(), raw_f32(&[2, 3, 2], &h));
    let err = read_error(&t);
    assert!(err.contains("hidden_states.1 has the non-finite value NaN at [1, 0, 1]"), "{err}");

    let mut t = raw_tensors();
    let mut a = parts().attentions[0].clone();
    a[0] = f32::INFINITY;
    t.insert("attentions.0".into(), raw_f32(&[2, 2, 3, 3], &a));
    assert!(read_error(&t).contains("attentions.0 has the non-finite value inf at [0, 0, 0, 0]"));
}

#[test]
fn missing_tensors_are_named() {
    for name in ["input_ids", "attention_mask", "hidden_states.0"] {
        let mut t = raw_tensors();
        t.remove(name);
        if name == "hidden_states.0" {
            t.remove("attentions.0");
        }
        let err = read_error(&t);
        assert!(err.contains(&format!("missing tensor {name}")), "{name}: {err}");
    }
    let mut t = raw_tensors();
    let h = t.remove("hidden_states.1").unwrap();
    t.insert("hidden_states.2".into(), h);
    assert!(read_error(&t).contains("missing tensor hidden_states.1"));

    let mut t = raw_tensors();
    t.insert("attentions.1".into(), raw_f32(&[2, 2, 3, 3], &[0.0; 36]));
    assert!(read_error(&t).contains("2 attentions tensors for 1 layers"));

    let mut t = raw_tensors();
    t.insert("hidden_states.last".into(), raw_f32(&[2, 3, 2], &[0.0; 12]));
    assert!(read_error(&t).contains("hidden_states.last is not named hidden_states.{k}"));
}

#[test]
fn bad_mask_is_named() {
    let mut t = raw_tensors();
    t.insert("attention_mask".into(), raw_i64(&[2, 3], &[1, 1, 2, 1, 0, 0]));
    let err = read_error(&t);
    assert!(err.contains("attention_mask has value 2 at [0, 2], expected 0 or 1"), "{err}");

    let mut t = raw_tensors();
    t.insert("attention_mask".into(), raw_i64(&[2, 3], &[1, 1, 1, 0, 0, 0]));
    assert!(read_error(&t).contains("attention_mask row 1 has no valid token"));

    let mut t = raw_tensors();
    t.insert("attention_mask".into(), raw_f32(&[2, 3], &[1.0; 6]));
    assert!(read_error(&t).contains("tensor attention_mask has dtype F32"));
}

#[test]
fn bad_dtype_and_garbage_are_errors() {
    let mut t = raw_tensors();
    t.insert("hidden_states.0".into(), Raw { dtype: Dtype::F16, shape: vec![2, 3, 2], data: vec![0; 24] });
    assert!(read_error(&t).contains("tensor hidden_states.0 has dtype F16, expected F32 or F64"));
    let err = HiddenStates::from_safetensors_bytes(b"garbage").unwrap_err().to_string();
    assert_eq!(err, "not a safetensors file");
    let err = format!(
        "{:#}",
        HiddenStates::read_safetensors(std::path::Path::new("/nonexistent/h.st")).unwrap_err()
    );
    assert!(err.starts_with("cannot read /nonexistent/h.st"), "{err}");
}

#[test]
fn constructor_validates_too() {
    let mut p = parts();
    p.hidden_states[0].pop();
    let err = HiddenStates::new(p).unwrap_err().to_string();
    assert_eq!(err, "hidden_states.0 has 11 values, expected 2 × 3 × 2 = 12");
    let mut p = parts();
    p.texts.pop();
    assert_eq!(HiddenStates::new(p).unwrap_err().to_string(), "1 texts for 2 inputs");
    let mut p = parts();
    p.input_ids[1].push(5);
    assert!(HiddenStates::new(p).unwrap_err().to_string().contains("input_ids row 1 has length 4"));
}

#[test]
fn tokens_are_the_normalised_valid_columns() {
    let s = states();
    let x = s.tokens(1, 0).unwrap();
    assert_eq!((x.nrows(), x.ncols()), (2, 2), "the padding position must be dropped");
    // Input 1, positions 0 and 1 of hidden_states.0: (7, 8) and (9, 10).
    let n = (49.0f64 + 64.0).sqrt();
    approx::assert_abs_diff_eq!(x[(0, 0)], 7.0 / n, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(x[(1, 0)], 8.0 / n, epsilon = 1e-12);
    assert!(dynamics::tokens::sphere_drift(&x) < 1e-12);
    assert_eq!(s.tokens(0, 1).unwrap().ncols(), 3);
    assert!(s.tokens(2, 0).unwrap_err().to_string().contains("input 2 is out of range"));
    assert!(s.tokens(0, 2).unwrap_err().to_string().contains("layer 2 is out of range"));
}

#[test]
fn zero_token_error_is_propagated() {
    let mut p = parts();
    p.hidden_states[0][2..4].fill(0.0);
    let s = HiddenStates::new(p).unwrap();
    let err = format!("{:#}", s.tokens(0, 0).unwrap_err());
    assert!(
        err.contains("tokens of input 0 at layer 0") && err.contains("token 1 is the zero vector"),
        "{err}"
    );
}

#[test]
fn accessors_index_row_major() {
    let s = states();
    assert_eq!(
        (s.batch(), s.seq_len(), s.hidden_size(), s.num_layers(), s.num_heads()),
        (2, 3, 2, 1, Some(2))
    );
    assert_eq!(s.hidden_vector(0, 1, 2).unwrap(), &[11.0, 12.0]);
    assert_eq!(s.attention_row(0, 1, 1, 2).unwrap(), &[0.0, 1.0 / 3.0, 2.0 / 3.0]);
    assert_eq!(s.valid_positions(1).unwrap(), vec![0, 1]);
    let e = s.sentence_embedding(1, 0).unwrap();
    approx::assert_abs_diff_eq!(e.norm(), 1.0, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(e[0] / e[1], 16.0 / 18.0, epsilon = 1e-12);
}
