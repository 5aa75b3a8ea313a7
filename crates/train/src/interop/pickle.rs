//! Python pickles through burn-store's reader (`burn_store::pytorch_reader`): the plain
//! values of a checkpoint (`model_args`, `config`) and nanoGPT's `meta.pkl` (the character
//! vocabulary of its `*_char` datasets).

use std::path::Path;

use burn_store::pytorch_reader::{PickleValue, PytorchReader};

use crate::TrainError;

/// The value under `key` (or the whole pickle) of a PyTorch checkpoint or plain pickle
/// file, as JSON: tuples become arrays, dictionary keys strings, and values JSON cannot
/// hold (tensors, Python objects) `null`.
pub fn read_json(path: &Path, key: Option<&str>) -> Result<serde_json::Value, TrainError> {
    let value = PytorchReader::read_pickle_data(path, key).map_err(|e| TrainError::interop(path, format!("cannot read: {e}")))?;
    Ok(to_json(value))
}

fn to_json(value: PickleValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        PickleValue::None | PickleValue::Unsupported(_) | PickleValue::Bytes(_) => Value::Null,
        PickleValue::Bool(b) => b.into(),
        PickleValue::Int(i) => i.into(),
        PickleValue::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        PickleValue::String(s) => s.into(),
        PickleValue::List(items) => items.into_iter().map(to_json).collect(),
        PickleValue::Dict(map) => map.into_iter().map(|(k, v)| (k, to_json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

/// The character vocabulary of a nanoGPT `meta.pkl` (`{'vocab_size', 'itos', 'stoi'}`):
/// `chars[i]` is id `i`. The ids must be `0..V` in sorted character order, as nanoGPT's
/// `prepare.py` numbers them (ember's character tokenizer relies on it).
pub fn read_meta_vocab(path: &Path) -> Result<Vec<char>, TrainError> {
    let bad = |why: String| TrainError::interop(path, format!("{why}; expected nanoGPT's meta.pkl of a character dataset (a dict with `stoi`, `itos`, `vocab_size`), or pass --tokenizer"));
    let meta = read_json(path, None).map_err(|e| bad(e.to_string()))?;
    let stoi = meta.get("stoi").and_then(|s| s.as_object()).ok_or_else(|| bad("no `stoi` dictionary".into()))?;
    let mut entries = Vec::with_capacity(stoi.len());
    for (token, id) in stoi {
        let mut it = token.chars();
        let (Some(c), None) = (it.next(), it.next()) else {
            return Err(bad(format!("token {token:?} is not a single character (a BPE vocabulary?)")));
        };
        let id = id.as_u64().ok_or_else(|| bad(format!("the id of {c:?} is not an integer")))?;
        entries.push((id, c));
    }
    entries.sort_unstable();
    if let Some((i, (id, c))) = entries.iter().enumerate().find(|(i, (id, _))| *id != *i as u64) {
        return Err(bad(format!("ids are not 0..{}: {c:?} has id {id} where {i} was expected", entries.len())));
    }
    if let Some(w) = entries.windows(2).find(|w| w[0].1 >= w[1].1) {
        return Err(bad(format!("ids are not in sorted character order ({:?} = {} before {:?} = {})", w[0].1, w[0].0, w[1].1, w[1].0)));
    }
    if let Some(v) = meta.get("vocab_size").and_then(|v| v.as_u64()) {
        if v as usize != entries.len() {
            return Err(bad(format!("vocab_size = {v} but `stoi` has {} characters", entries.len())));
        }
    }
    Ok(entries.into_iter().map(|(_, c)| c).collect())
}
