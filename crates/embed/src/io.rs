//! Embedding tables from files: GloVe / word2vec text (`word v1 … vd` per line, optional
//! `N d` header line) and safetensors (a named `[N, d]` tensor plus a vocabulary from a
//! `tokenizer.json`, in id order, or a one-token-per-line file). Every malformed input is a
//! [`LoadError`] naming the file and, for text, the line (1-based) and field.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16, Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// Why a table or vocabulary could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the file contains no vectors")]
    Empty { path: PathBuf },
    #[error("{path}:{line}: {reason}")]
    Malformed { path: PathBuf, line: usize, reason: String },
    #[error("{path}:{line}: field {field} of `{word}` is `{value}`, not a finite number")]
    NotANumber { path: PathBuf, line: usize, word: String, field: usize, value: String },
    #[error("{path}:{line}: `{word}` has {found} values, expected {expected} (the dimension set by line {first_line})")]
    Ragged { path: PathBuf, line: usize, word: String, found: usize, expected: usize, first_line: usize },
    #[error("{path}:{line}: duplicate token `{word}` (first on line {first_line})")]
    Duplicate { path: PathBuf, line: usize, word: String, first_line: usize },
    #[error("{path}: the header declares {declared} rows but the file has {found}")]
    HeaderRows { path: PathBuf, declared: usize, found: usize },
    #[error("{path}: no tensor named `{name}`; available: {}", available.join(", "))]
    MissingTensor { path: PathBuf, name: String, available: Vec<String> },
    #[error("{path}: tensor `{name}` has shape {shape:?} and dtype {dtype}; an embedding table must be a 2-D float tensor [N, d]")]
    NotATable { path: PathBuf, name: String, shape: Vec<usize>, dtype: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("vocabulary {vocab} has {tokens} tokens but table {table} has {rows} rows")]
    VocabSize { vocab: PathBuf, tokens: usize, table: PathBuf, rows: usize },
}

/// A table read from a file: `tokens[i]` names row `i` of `weights` (`[N, d]`, f32, host).
#[derive(Clone, Debug)]
pub struct LoadedTable {
    /// The `N` token strings, row order.
    pub tokens: Vec<String>,
    /// Row-major `[N, d]` f32 values.
    pub weights: TensorData,
}

impl LoadedTable {
    /// `N`, the number of rows.
    pub fn rows(&self) -> usize {
        self.weights.shape()[0]
    }

    /// `d`, the row dimension.
    pub fn dim(&self) -> usize {
        self.weights.shape()[1]
    }

    /// The table on `device` as `[N, d]`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(self.weights.clone(), device)
    }

    /// Row index of `token`, if present.
    pub fn index_of(&self, token: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t == token)
    }

    /// Row index of `token`, or an error suggesting close tokens (see [`crate::vocab`]).
    pub fn find(&self, token: &str) -> Result<usize, crate::vocab::UnknownToken> {
        crate::vocab::find_token(&self.tokens, token)
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io { path: path.to_path_buf(), source }
}

/// Parse a GloVe / word2vec text table: one `word v1 … vd` line per row (space or tab
/// separated), blank lines ignored, and an optional first line `N d` (word2vec), whose `N`
/// must then match the row count and `d` the dimension.
pub fn load_text(path: &Path) -> Result<LoadedTable, LoadError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let p = || path.to_path_buf();
    let mut tokens = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut dim: Option<(usize, usize)> = None; // (d, line that set it)
    let mut header: Option<usize> = None;
    // Streamed line by line: multi-GB GloVe files are never held twice in memory.
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let lineno = i + 1;
        let line = line.map_err(|e| LoadError::Malformed { path: p(), line: lineno, reason: format!("cannot read the line: {e}") })?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if tokens.is_empty() && header.is_none() && dim.is_none() && fields.len() == 2 {
            if let (Ok(n), Ok(d)) = (fields[0].parse::<usize>(), fields[1].parse::<usize>()) {
                header = Some(n);
                dim = Some((d, lineno));
                continue;
            }
        }
        let word = fields[0];
        if fields.len() == 1 {
            return Err(LoadError::Malformed { path: p(), line: lineno, reason: format!("expected a token followed by numbers, found only `{word}`") });
        }
        let found = fields.len() - 1;
        match dim {
            Some((d, first_line)) if d != found => {
                return Err(LoadError::Ragged { path: p(), line: lineno, word: word.into(), found, expected: d, first_line });
            }
            None => dim = Some((found, lineno)),
            _ => {}
        }
        for (f, s) in fields[1..].iter().enumerate() {
            match s.parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => return Err(LoadError::NotANumber { path: p(), line: lineno, word: word.into(), field: f + 2, value: s.to_string() }),
            }
        }
        if let Some(&first_line) = seen.get(word) {
            return Err(LoadError::Duplicate { path: p(), line: lineno, word: word.into(), first_line });
        }
        seen.insert(word.to_string(), lineno);
        tokens.push(word.to_string());
    }
    if tokens.is_empty() {
        return Err(LoadError::Empty { path: p() });
    }
    if let Some(declared) = header.filter(|&n| n != tokens.len()) {
        return Err(LoadError::HeaderRows { path: p(), declared, found: tokens.len() });
    }
    let d = dim.map(|(d, _)| d).unwrap_or(0);
    Ok(LoadedTable { weights: TensorData::new(values, [tokens.len(), d]), tokens })
}

/// Write `tokens` and `weights` `[N, d]` as GloVe text (`word v1 … vd`, no header), so that
/// [`load_text`] reads back the same table (f32 values are written exactly).
pub fn save_glove_text(path: &Path, tokens: &[String], weights: &TensorData) -> Result<(), LoadError> {
    let shape = weights.shape();
    if shape.len() != 2 || shape[0] != tokens.len() {
        return Err(LoadError::Format { path: path.to_path_buf(), message: format!("{} tokens for a table of shape {:?}", tokens.len(), shape.as_slice()) });
    }
    if let Some(bad) = tokens.iter().find(|t| t.is_empty() || t.contains(char::is_whitespace)) {
        return Err(LoadError::Format { path: path.to_path_buf(), message: format!("token `{bad}` is empty or contains whitespace; GloVe text cannot store it") });
    }
    let values: Vec<f32> = weights.iter::<f32>().collect();
    let mut out = std::io::BufWriter::new(fs::File::create(path).map_err(io_err(path))?);
    for (i, tok) in tokens.iter().enumerate() {
        let row = &values[i * shape[1]..(i + 1) * shape[1]];
        let mut line = tok.clone();
        for v in row {
            line.push(' ');
            line.push_str(&v.to_string());
        }
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(io_err(path))?;
    }
    out.flush().map_err(io_err(path))
}

/// Read a vocabulary: a `*.json` file is a Hugging Face `tokenizer.json` (tokens in id order,
/// added tokens included; every id `0..V` must be present), anything else holds one token per
/// line (line `i + 1` is token `i`; duplicates and empty lines are errors).
pub fn load_vocab(path: &Path) -> Result<Vec<String>, LoadError> {
    if path.extension().is_some_and(|e| e == "json") {
        let tok = tokenizers::Tokenizer::from_file(path).map_err(|e| LoadError::Format { path: path.to_path_buf(), message: format!("not a tokenizer.json: {e}") })?;
        let vocab = tok.get_vocab(true);
        let mut tokens = vec![None; vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0)];
        for (t, id) in vocab {
            tokens[id as usize] = Some(t);
        }
        return tokens
            .into_iter()
            .enumerate()
            .map(|(id, t)| t.ok_or_else(|| LoadError::Format { path: path.to_path_buf(), message: format!("the tokenizer has no token with id {id}") }))
            .collect();
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let tok = line.strip_suffix('\r').unwrap_or(line);
        if tok.is_empty() {
            return Err(LoadError::Malformed { path: path.to_path_buf(), line: i + 1, reason: "empty token".into() });
        }
        if let Some(&first_line) = seen.get(tok) {
            return Err(LoadError::Duplicate { path: path.to_path_buf(), line: i + 1, word: tok.into(), first_line });
        }
        seen.insert(tok, i + 1);
        tokens.push(tok.to_string());
    }
    if tokens.is_empty() {
        return Err(LoadError::Empty { path: path.to_path_buf() });
    }
    Ok(tokens)
}

/// Load tensor `tensor` (`[N, d]`, f32/f64/f16/bf16, converted to f32) from a safetensors file,
/// with row names from `vocab` (see [`load_vocab`]), which must have exactly `N` tokens.
/// `tensor = None` picks the file's only 2-D tensor.
pub fn load_safetensors(path: &Path, tensor: Option<&str>, vocab: &Path) -> Result<LoadedTable, LoadError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    safetensors_from_bytes(path, &bytes, tensor, vocab)
}

/// [`load_safetensors`] on the file's contents `bytes` (read from `path`).
pub(crate) fn safetensors_from_bytes(path: &Path, bytes: &[u8], tensor: Option<&str>, vocab: &Path) -> Result<LoadedTable, LoadError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Format { path: path.to_path_buf(), message: format!("not a safetensors file: {e}") })?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let name = match tensor {
        Some(n) => n.to_string(),
        None => {
            let tables: Vec<&String> = names.iter().filter(|n| st.tensor(n).is_ok_and(|t| t.shape().len() == 2)).collect();
            match tables.as_slice() {
                [one] => one.to_string(),
                _ => return Err(LoadError::MissingTensor { path: path.to_path_buf(), name: "(none given: pass --tensor)".into(), available: names }),
            }
        }
    };
    let view = st.tensor(&name).map_err(|_| LoadError::MissingTensor { path: path.to_path_buf(), name: name.clone(), available: names.clone() })?;
    let shape = view.shape().to_vec();
    let data = view.data();
    let values: Option<Vec<f32>> = match view.dtype() {
        Dtype::F32 => Some(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Dtype::F64 => Some(data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()),
        Dtype::F16 => Some(data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        Dtype::BF16 => Some(data.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        _ => None,
    };
    let values = match values {
        Some(v) if shape.len() == 2 => v,
        _ => return Err(LoadError::NotATable { path: path.to_path_buf(), name, shape, dtype: format!("{:?}", view.dtype()) }),
    };
    let tokens = load_vocab(vocab)?;
    if tokens.len() != shape[0] {
        return Err(LoadError::VocabSize { vocab: vocab.to_path_buf(), tokens: tokens.len(), table: path.to_path_buf(), rows: shape[0] });
    }
    Ok(LoadedTable { tokens, weights: TensorData::new(values, [shape[0], shape[1]]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ember-io-{tag}-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn glove_and_word2vec_text() {
        let dir = tmpdir("text");
        let t = load_text(&write(&dir, "g.txt", "the 0.5 -1 2\n\nof\t1e-2 0 3.25\n")).unwrap();
        assert_eq!(t.tokens, ["the", "of"]);
        assert_eq!(t.weights.iter::<f32>().collect::<Vec<_>>(), [0.5, -1.0, 2.0, 0.01, 0.0, 3.25]);
        let w = load_text(&write(&dir, "w.txt", "2 3\nthe 0.5 -1 2\nof 1 0 3\n")).unwrap();
        assert_eq!((w.rows(), w.dim(), w.index_of("of")), (2, 3, Some(1)));
        // round trip
        let out = dir.join("round.txt");
        save_glove_text(&out, &t.tokens, &t.weights).unwrap();
        let back = load_text(&out).unwrap();
        assert_eq!(back.tokens, t.tokens);
        assert_eq!(back.weights, t.weights);
    }

    #[test]
    fn text_errors_name_the_line() {
        let dir = tmpdir("bad");
        let cases = [
            ("ragged.txt", "a 1 2 3\nb 1 2\n", "ragged.txt:2: `b` has 2 values, expected 3 (the dimension set by line 1)"),
            ("nan.txt", "a 1 2\nb 1 x2\n", "nan.txt:2: field 3 of `b` is `x2`, not a finite number"),
            ("dup.txt", "a 1 2\nb 1 2\n\na 3 4\n", "dup.txt:4: duplicate token `a` (first on line 1)"),
            ("lonely.txt", "a 1 2\nb\n", "lonely.txt:2: expected a token followed by numbers, found only `b`"),
            ("empty.txt", "\n\n", "empty.txt: the file contains no vectors"),
            ("header.txt", "3 2\na 1 2\n", "header declares 3 rows but the file has 1"),
            ("hdim.txt", "1 3\na 1 2\n", "hdim.txt:2: `a` has 2 values, expected 3"),
        ];
        for (name, text, want) in cases {
            let err = load_text(&write(&dir, name, text)).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: got `{err}`, want `{want}`");
        }
        assert!(load_text(&dir.join("missing.txt")).unwrap_err().to_string().contains("missing.txt"));
        fs::write(dir.join("latin1.txt"), b"a 1 2\nb\xe9 3 4\n").unwrap();
        let err = load_text(&dir.join("latin1.txt")).unwrap_err().to_string();
        assert!(err.contains("latin1.txt:2: cannot read the line"), "{err}");
    }

    fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors.iter().map(|(n, s, v)| (n.to_string(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), s.clone())).collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            bytes.iter().map(|(n, b, s)| (n.clone(), safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
        fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    #[test]
    fn safetensors_with_line_vocab() {
        let dir = tmpdir("st");
        let st = dir.join("m.safetensors");
        write_safetensors(&st, &[("emb.weight", vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), ("bias", vec![2], vec![0.0, 0.0])]);
        let vocab = write(&dir, "vocab.txt", "a\nb\nc\n");
        let t = load_safetensors(&st, Some("emb.weight"), &vocab).unwrap();
        assert_eq!(t.tokens, ["a", "b", "c"]);
        assert_eq!(t.weights.iter::<f32>().collect::<Vec<_>>(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // the only 2-D tensor is found without a name; the vocabulary next to the file too
        assert_eq!(crate::load::load_table(&st, None, None).unwrap().tokens, ["a", "b", "c"]);
        let err = load_safetensors(&st, Some("wte"), &vocab).unwrap_err().to_string();
        assert!(err.contains("no tensor named `wte`; available: bias, emb.weight"), "{err}");
        let err = load_safetensors(&st, Some("bias"), &vocab).unwrap_err().to_string();
        assert!(err.contains("shape [2]"), "{err}");
        let short = write(&dir, "short.txt", "a\nb\n");
        let err = load_safetensors(&st, Some("emb.weight"), &short).unwrap_err().to_string();
        assert!(err.contains("has 2 tokens but table") && err.contains("has 3 rows"), "{err}");
        let dup = write(&dir, "dup.txt", "a\nb\na\n");
        assert!(load_vocab(&dup).unwrap_err().to_string().contains("dup.txt:3: duplicate token `a`"));
        let garbage = write(&dir, "g.safetensors", "not really");
        assert!(load_safetensors(&garbage, None, &vocab).unwrap_err().to_string().contains("not a safetensors file"));
    }

    #[test]
    fn tokenizer_json_vocab_in_id_order() {
        let dir = tmpdir("tok");
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
          "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
          "model":{"type":"WordLevel","vocab":{"[UNK]":0,"king":2,"queen":1},"unk_token":"[UNK]"}}"#;
        let path = write(&dir, "tokenizer.json", json);
        assert_eq!(load_vocab(&path).unwrap(), ["[UNK]", "queen", "king"]);
        let bad = write(&dir, "bad.json", "{}");
        assert!(load_vocab(&bad).unwrap_err().to_string().contains("not a tokenizer.json"));
    }
}
