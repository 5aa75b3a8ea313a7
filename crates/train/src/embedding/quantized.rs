//! `ember embed quantize`: quantize a token table (a run's, with its untied head, or an
//! external one), measure what survives, and for a run evaluate the model with the
//! dequantized weights swapped in.

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use ember_embed::quantize::{self, Quantized, Scheme};
use serde::Serialize;

use crate::dataset::{Dataset, Split};
use crate::eval::evaluate_split;
use crate::model::TinyLm;
use crate::run::LoadedRun;
use crate::TrainError;

/// Neighbours compared by [`QuantizeReport::recall_at_10`].
pub const RECALL_K: usize = 10;

/// `ember embed quantize --json`: exactly these fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantizeReport {
    /// 4 or 8.
    pub bits: u8,
    /// `rowwise` or `groupwise-G`.
    pub scheme: String,
    /// fp32 bytes of the table (plus the untied head): `4·V·d` (each).
    pub bytes_before: usize,
    /// Quantized bytes: codes (4-bit packed two per byte) plus 4 per f32 scale.
    pub bytes_after: usize,
    /// `max |x − x̂|` over the table (and the head).
    pub max_abs_err: f64,
    /// Mean fraction of every table row's 10 cosine neighbours kept after quantization.
    pub recall_at_10: f64,
    /// Validation loss of the run as trained (nats/token); `null` for a table without a model.
    pub val_loss_fp32: Option<f64>,
    /// The same with the dequantized table (and head) swapped in; `null` without a model.
    pub val_loss_quantized: Option<f64>,
}

/// The quantized weights behind a [`QuantizeReport`].
#[derive(Clone, Debug)]
pub struct QuantizedWeights {
    /// The token table `E` `[V, d]`.
    pub table: Quantized,
    /// The untied head's output rows `Wᵀ` `[V, d]`, when the head is untied.
    pub head: Option<Quantized>,
}

fn quantize_tensor(x: Tensor<2>, bits: u8, scheme: Scheme) -> Result<(Quantized, Vec<f32>), TrainError> {
    let [rows, dim] = x.dims();
    let values: Vec<f32> = x.into_data().iter::<f32>().collect();
    Ok((quantize::quantize(&values, rows, dim, bits, scheme)?, values))
}

/// `model` with `weights` (dequantized) in place of its token table and untied head.
pub fn with_dequantized(model: &TinyLm, weights: &QuantizedWeights, device: &Device) -> TinyLm {
    let mut m = model.clone();
    m.tok.weight = Param::from_tensor(Tensor::from_data(weights.table.dequantized_data(), device));
    if let (Some(u), Some(h)) = (m.head.untied.as_mut(), &weights.head) {
        u.weight = Param::from_tensor(Tensor::<2>::from_data(h.dequantized_data(), device).transpose());
    }
    m
}

/// Quantize a table `E` `[V, d]` alone (an external table: no model, so the losses are
/// `None`): sizes, the largest error and recall@10 of its rows' cosine neighbours.
pub fn quantize_table(table: Tensor<2>, bits: u8, scheme: Scheme) -> Result<(QuantizeReport, Quantized), TrainError> {
    let device = table.device();
    let (q, values) = quantize_tensor(table.clone(), bits, scheme)?;
    let deq = Tensor::<2>::from_data(q.dequantized_data(), &device);
    let recall_at_10 = quantize::recall_at_k(&table, &deq, RECALL_K).map_err(|e| TrainError::request("recall", e.to_string()))?;
    let report = QuantizeReport {
        bits,
        scheme: scheme.to_string(),
        bytes_before: 4 * values.len(),
        bytes_after: q.bytes(),
        max_abs_err: q.max_abs_err(&values),
        recall_at_10,
        val_loss_fp32: None,
        val_loss_quantized: None,
    };
    Ok((report, q))
}

/// Quantize `run`'s table ([`quantize_table`]) and untied head (its rows `Wᵀ` `[V, d]`,
/// counted in the bytes and the error; recall is the table's) with `bits` under `scheme`,
/// and evaluate the fp32 and the dequantized model on `data`'s validation split (windows of
/// the training context, non-overlapping; `max_tokens` caps the targets scored).
pub fn quantize_run(run: &LoadedRun, data: &Dataset, bits: u8, scheme: Scheme, max_tokens: Option<usize>, device: &Device) -> Result<(QuantizeReport, QuantizedWeights), TrainError> {
    let model = &run.model;
    let (mut report, table) = quantize_table(model.tok.weight.val(), bits, scheme)?;
    let head = match &model.head.untied {
        None => None,
        Some(u) => {
            let (h, values) = quantize_tensor(u.weight.val().transpose(), bits, scheme)?;
            report.bytes_before += 4 * values.len();
            report.bytes_after += h.bytes();
            report.max_abs_err = report.max_abs_err.max(h.max_abs_err(&values));
            Some(h)
        }
    };
    let weights = QuantizedWeights { table, head };
    let context = run.config.data.context;
    let eval = |m: &TinyLm| evaluate_split(m, data.ids(Split::Val), Split::Val, context, context, max_tokens, device).map(|r| r.loss);
    report.val_loss_fp32 = Some(eval(model)?);
    report.val_loss_quantized = Some(eval(&with_dequantized(model, &weights, device))?);
    Ok((report, weights))
}
