//! Symmetric absmax quantization of a table `X` `[N, d]` (a token table, or an untied head's
//! output rows), per row or per group of `G` consecutive columns of a row.
//!
//! With `b` bits the codes are integers in `[−q, q]`, `q = 2^(b−1) − 1` (127 for 8 bits, 7
//! for 4). Every group `g` (a whole row for [`Scheme::Rowwise`], `G` entries for
//! [`Scheme::Groupwise`]) gets one scale
//!
//! ```text
//! s_g = max_{j ∈ g} |x_j| / q          (f32; s_g = 0 for an all-zero group)
//! c_j = clamp(round(x_j / s_g), −q, q)  (0 when s_g = 0)
//! x̂_j = c_j · s_g                       (dequantized)
//! ```
//!
//! so `|x_j − x̂_j| ≤ s_g / 2` for every entry (`|x_j / s_g| ≤ q`: rounding never clamps).
//! Storage: 8-bit codes take one byte each; 4-bit codes are packed two per byte (column
//! `2k` in the low nibble, `2k + 1` in the high nibble, two's complement, a row of odd `d`
//! padded), `⌈d/2⌉` bytes per row; each scale is an f32 (4 bytes).
//!
//! [`recall_at_k`] compares the cosine neighbours of every row in two tables; [`save`] and
//! [`load`] write and read a quantized table as safetensors (see [`FORMAT`]).

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::io::{LoadError, LoadedTable};
use crate::neighbors::{Metric, NeighborIndex, NeighborsError};
use crate::EmbedError;

/// How entries share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// One scale per row (`G = d`).
    Rowwise,
    /// One scale per `G` consecutive entries of a row (`G` divides `d`).
    Groupwise(usize),
}

impl Scheme {
    /// Entries per scale in a row of `dim` entries.
    pub fn group(&self, dim: usize) -> usize {
        match *self {
            Self::Rowwise => dim,
            Self::Groupwise(g) => g,
        }
    }

    /// `rowwise` or `groupwise` (the group size is reported separately).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rowwise => "rowwise",
            Self::Groupwise(_) => "groupwise",
        }
    }

    /// Parse `--scheme KIND` with `--group G` (required for, and only for, groupwise).
    pub fn parse(kind: &str, group: Option<i64>) -> Result<Self, EmbedError> {
        match (kind, group) {
            ("rowwise", None) => Ok(Self::Rowwise),
            ("rowwise", Some(_)) => Err(EmbedError::invalid("--group", "applies only to --scheme groupwise; drop it, or use --scheme groupwise")),
            ("groupwise", None) => Err(EmbedError::invalid("--group", "--scheme groupwise needs --group G, the entries per scale (e.g. 32; G must divide d)")),
            ("groupwise", Some(g)) if g <= 0 => Err(EmbedError::invalid("--group", format!("{g}: the group size must be a positive divisor of d"))),
            ("groupwise", Some(g)) => Ok(Self::Groupwise(g as usize)),
            (other, _) => Err(EmbedError::invalid("--scheme", format!("`{other}` is not a scheme; use rowwise or groupwise"))),
        }
    }
}

impl std::fmt::Display for Scheme {
    /// `rowwise`, or `groupwise-G`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rowwise => f.write_str("rowwise"),
            Self::Groupwise(g) => write!(f, "groupwise-{g}"),
        }
    }
}

/// Check a bit width: 4 or 8.
pub fn check_bits(bits: i64) -> Result<u8, EmbedError> {
    match bits {
        4 | 8 => Ok(bits as u8),
        other => Err(EmbedError::invalid("--bits", format!("{other}: only 8-bit and 4-bit codes are supported; use --bits 8 or --bits 4"))),
    }
}

/// A quantized `[N, d]` table: codes `c` `[N, d]` and scales `s` `[N, d/G]` (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// 4 or 8.
    pub bits: u8,
    /// How entries share scales.
    pub scheme: Scheme,
    /// `N`.
    pub rows: usize,
    /// `d`.
    pub dim: usize,
    /// `c`, `N·d` codes in `[−q, q]`, row-major (unpacked, one `i8` per entry).
    pub codes: Vec<i8>,
    /// `s`, `N · d/G` scales, row-major (`d/G` per row).
    pub scales: Vec<f32>,
}

/// `q = 2^(bits−1) − 1`, the largest code.
pub fn max_code(bits: u8) -> i32 {
    (1 << (bits - 1)) - 1
}

/// Quantize `values` (`[rows, dim]` row-major f32) with `bits` ∈ {4, 8} under `scheme` (see
/// the module docs). Errors when the bits, the group (0 or not dividing `dim`) or the
/// length is wrong.
pub fn quantize(values: &[f32], rows: usize, dim: usize, bits: u8, scheme: Scheme) -> Result<Quantized, EmbedError> {
    check_bits(bits as i64)?;
    if values.len() != rows * dim || dim == 0 {
        return Err(EmbedError::invalid("table", format!("{} values for a [{rows}, {dim}] table", values.len())));
    }
    let g = scheme.group(dim);
    if g == 0 || dim % g != 0 {
        return Err(EmbedError::invalid("--group", format!("{g} does not divide d = {dim}; pick a divisor of {dim}")));
    }
    let q = max_code(bits);
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / g);
    for group in values.chunks(g) {
        let absmax = group.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let s = absmax / q as f32;
        scales.push(s);
        codes.extend(group.iter().map(|&x| if s > 0.0 { (x as f64 / s as f64).round().clamp(-q as f64, q as f64) as i8 } else { 0 }));
    }
    Ok(Quantized { bits, scheme, rows, dim, codes, scales })
}

impl Quantized {
    /// Entries per scale, `G`.
    pub fn group(&self) -> usize {
        self.scheme.group(self.dim)
    }

    /// `x̂ = c · s`, `[N, d]` row-major f32.
    pub fn dequantize(&self) -> Vec<f32> {
        let g = self.group();
        self.codes.iter().enumerate().map(|(j, &c)| c as f32 * self.scales[j / g]).collect()
    }

    /// [`Self::dequantize`] as host tensor data `[N, d]`.
    pub fn dequantized_data(&self) -> TensorData {
        TensorData::new(self.dequantize(), [self.rows, self.dim])
    }

    /// Bytes of the codes: `N·d` (8-bit) or `N·⌈d/2⌉` (4-bit, packed).
    pub fn code_bytes(&self) -> usize {
        if self.bits == 4 { self.rows * self.dim.div_ceil(2) } else { self.rows * self.dim }
    }

    /// Bytes stored: the codes plus 4 per scale.
    pub fn bytes(&self) -> usize {
        self.code_bytes() + 4 * self.scales.len()
    }

    /// `max_j |x_j − x̂_j|` against the original `values` (`[N, d]` row-major).
    pub fn max_abs_err(&self, values: &[f32]) -> f64 {
        values.iter().zip(self.dequantize()).map(|(&x, y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max)
    }

    /// The 4-bit codes packed two per byte, `[N, ⌈d/2⌉]` (see the module docs).
    pub fn pack4(&self) -> Vec<u8> {
        let w = self.dim.div_ceil(2);
        let mut out = vec![0u8; self.rows * w];
        for (j, &c) in self.codes.iter().enumerate() {
            let (r, col) = (j / self.dim, j % self.dim);
            out[r * w + col / 2] |= ((c as u8) & 0x0f) << (4 * (col % 2));
        }
        out
    }

    /// Inverse of [`Self::pack4`] for a `[rows, dim]` table.
    pub fn unpack4(packed: &[u8], rows: usize, dim: usize) -> Vec<i8> {
        let w = dim.div_ceil(2);
        (0..rows * dim)
            .map(|j| {
                let (r, col) = (j / dim, j % dim);
                let nibble = (packed[r * w + col / 2] >> (4 * (col % 2))) & 0x0f;
                ((nibble << 4) as i8) >> 4 // sign-extend the 4-bit two's complement value
            })
            .collect()
    }
}

/// Mean over rows of `|A_i ∩ B_i| / |A_i|`, where `A_i` / `B_i` are the `k` nearest rows by
/// cosine to row `i` (itself excluded) in `reference` `[N, d]` and in `other` `[N, d]`
/// (e.g. the fp32 table and its dequantized copy). 1.0 when every list is reproduced.
pub fn recall_at_k(reference: &Tensor<2>, other: &Tensor<2>, k: usize) -> Result<f64, NeighborsError> {
    let [n, _] = reference.dims();
    if other.dims()[0] != n {
        return Err(NeighborsError::RowOutOfRange { row: other.dims()[0], rows: n });
    }
    let (a, b) = (NeighborIndex::new(reference.clone(), Metric::Cosine), NeighborIndex::new(other.clone(), Metric::Cosine));
    let (mut total, mut lists) = (0.0, 0usize);
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(1024) {
        for (la, lb) in a.search_rows(chunk, k)?.into_iter().zip(b.search_rows(chunk, k)?) {
            if la.is_empty() {
                continue;
            }
            let hit = la.iter().filter(|x| lb.iter().any(|y| y.id == x.id)).count();
            total += hit as f64 / la.len() as f64;
            lists += 1;
        }
    }
    Ok(if lists == 0 { 1.0 } else { total / lists as f64 })
}

/// `format` metadata value marking a quantized table file.
pub const FORMAT: &str = "ember-quantized-table";

fn tensor_bytes(q: &Quantized) -> (Dtype, Vec<usize>, Vec<u8>) {
    if q.bits == 4 {
        (Dtype::U8, vec![q.rows, q.dim.div_ceil(2)], q.pack4())
    } else {
        (Dtype::I8, vec![q.rows, q.dim], q.codes.iter().map(|&c| c as u8).collect())
    }
}

/// Write `table` (row `i` named `tokens[i]`) and, for an untied model, its `head` rows, as
/// safetensors: `NAME.codes` (`I8 [N, d]`, or `U8 [N, ⌈d/2⌉]` packed for 4 bits) and
/// `NAME.scales` (`F32 [N, d/G]`) for NAME = `table` (and `head`), with metadata `format`
/// = [`FORMAT`], `bits`, `scheme`, `group`, `dim`, `tokens` (a JSON array).
pub fn save(path: &Path, tokens: &[String], table: &Quantized, head: Option<&Quantized>) -> Result<(), LoadError> {
    let mut parts = vec![("table", table)];
    parts.extend(head.map(|h| ("head", h)));
    let mut owned = Vec::new();
    for (name, q) in &parts {
        let (dtype, shape, bytes) = tensor_bytes(q);
        owned.push((format!("{name}.codes"), dtype, shape, bytes));
        owned.push((format!("{name}.scales"), Dtype::F32, vec![q.rows, q.scales.len() / q.rows.max(1)], q.scales.iter().flat_map(|s| s.to_le_bytes()).collect()));
    }
    let fmt_err = |message: String| LoadError::Format { path: path.to_path_buf(), message };
    let views = owned
        .iter()
        .map(|(n, dt, s, b)| safetensors::tensor::TensorView::new(*dt, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fmt_err(e.to_string()))?;
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("bits", table.bits.to_string()),
        ("scheme", table.scheme.kind().to_string()),
        ("group", table.group().to_string()),
        ("dim", table.dim.to_string()),
        ("tokens", serde_json::to_string(tokens).unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| fmt_err(e.to_string()))?;
    std::fs::write(path, bytes).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })
}

/// The metadata of a safetensors file at `bytes` when it is a quantized table ([`save`]).
pub fn quantized_metadata(bytes: &[u8]) -> Option<HashMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).ok()?;
    meta.metadata().as_ref().filter(|m| m.get("format").is_some_and(|f| f == FORMAT)).cloned()
}

/// Read a quantized table written by [`save`]: `which` = `table` (default) or `head`. Returns
/// the codes and scales and the row names (from the file's metadata).
pub fn load(path: &Path, bytes: &[u8], which: Option<&str>) -> Result<(Quantized, Vec<String>), LoadError> {
    let err = |message: String| LoadError::Format { path: path.to_path_buf(), message };
    let meta = quantized_metadata(bytes).ok_or_else(|| err(format!("not a quantized table (no `format: {FORMAT}` metadata)")))?;
    let field = |k: &str| meta.get(k).ok_or_else(|| err(format!("quantized table without `{k}` metadata")));
    let num = |k: &str| field(k)?.parse::<usize>().map_err(|_| err(format!("metadata `{k}` is not a number")));
    let (bits, group, dim) = (num("bits")?, num("group")?, num("dim")?);
    let bits = check_bits(bits as i64).map_err(|e| err(e.to_string()))?;
    let scheme = if field("scheme")? == "rowwise" { Scheme::Rowwise } else { Scheme::Groupwise(group) };
    let tokens: Vec<String> = serde_json::from_str(field("tokens")?).map_err(|e| err(format!("metadata `tokens`: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let name = which.unwrap_or("table");
    let get = |suffix: &str| {
        let n = format!("{name}.{suffix}");
        st.tensor(&n).map_err(|_| LoadError::MissingTensor { path: path.to_path_buf(), name: n, available: vec!["table".into(), "head (untied models only)".into()] })
    };
    let (codes_view, scales_view) = (get("codes")?, get("scales")?);
    let rows = codes_view.shape()[0];
    let codes = if bits == 4 { Quantized::unpack4(codes_view.data(), rows, dim) } else { codes_view.data().iter().map(|&b| b as i8).collect() };
    let scales: Vec<f32> = scales_view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if group == 0 || dim % group != 0 || codes.len() != rows * dim || scales.len() != rows * (dim / group) {
        return Err(err(format!("inconsistent quantized table: {rows} rows, d = {dim}, group {group}, {} scales", scales.len())));
    }
    Ok((Quantized { bits, scheme, rows, dim, codes, scales }, tokens))
}

/// [`load`] and dequantize into a [`LoadedTable`]; `vocab`, when given, replaces the names
/// stored in the file.
pub fn load_table(path: &Path, bytes: &[u8], which: Option<&str>, vocab: Option<&Path>) -> Result<LoadedTable, LoadError> {
    let (q, stored) = load(path, bytes, which)?;
    let tokens = match vocab {
        Some(v) => crate::io::load_vocab(v)?,
        None => stored,
    };
    if tokens.len() != q.rows {
        return Err(LoadError::VocabSize { vocab: vocab.unwrap_or(path).to_path_buf(), tokens: tokens.len(), table: path.to_path_buf(), rows: q.rows });
    }
    Ok(LoadedTable { tokens, weights: q.dequantized_data() })
}
