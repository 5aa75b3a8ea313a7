//! Loss and perplexity of a trained model over a whole split, with non-overlapping or
//! sliding windows.
//!
//! Windows of `context` tokens start every `stride` tokens. The first window scores all
//! of its targets; each later one scores only the targets no earlier window scored (its
//! last `stride`), so every target is scored exactly once, each with up to `context`
//! tokens of history. `stride = context` is non-overlapping evaluation (the ALiBi paper's
//! setting, where early tokens of each window see little history); `stride < context`
//! removes that early-token effect. All windows sit at positions `[0, context)`: a context
//! longer than training tests extrapolation (a `learned` table cannot, and says so).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use crate::dataset::Split;
use crate::model::TinyLm;
use crate::TrainError;

/// `ember eval --json` output.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// `train` or `val`.
    pub split: Split,
    /// Window length.
    pub context: usize,
    /// Window step.
    pub stride: usize,
    /// Targets scored.
    pub tokens: usize,
    /// Mean cross-entropy (nats/token).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
}

/// Evaluate `model` on `ids` (a whole split). `max_tokens` caps the targets scored (the
/// first ones), for quick checks. See the module docs.
pub fn evaluate_split(model: &TinyLm, ids: &[u32], split: Split, context: usize, stride: usize, max_tokens: Option<usize>, device: &Device) -> Result<EvalReport, TrainError> {
    if context == 0 || stride == 0 || stride > context {
        return Err(TrainError::request("--stride", format!("need 1 ≤ stride ≤ context, got stride {stride}, context {context}")));
    }
    if let Some(max) = model.pos.max_len() {
        if context > max {
            return Err(TrainError::request("--context", format!(
                "{context} is longer than the learned position table ({max} positions): a learned scheme \
                 cannot evaluate past its table; use --context {max} or less, or a scheme that extrapolates (rope, alibi, sinusoidal, none)"
            )));
        }
    }
    let limit = max_tokens.map_or(ids.len(), |m| (m + 1).min(ids.len()));
    let ids = &ids[..limit];
    if ids.len() < 2 {
        return Err(TrainError::request("--split", "the split has fewer than 2 tokens"));
    }
    // (window start, window length, targets scored at its end)
    let mut windows = Vec::new();
    let n_targets = ids.len() - 1; // target t is ids[t + 1]
    let mut prev_end = 0;
    for begin in (0..n_targets).step_by(stride) {
        let end = (begin + context).min(n_targets);
        windows.push((begin, end - begin, end - prev_end));
        prev_end = end;
        if end == n_targets {
            break;
        }
    }
    let (mut total, mut count) = (0.0f64, 0usize);
    for group in windows.chunk_by(|a, b| a.1 == b.1).flat_map(|g| g.chunks(16)) {
        let (b, len) = (group.len(), group[0].1);
        let mut x = Vec::with_capacity(b * len);
        let mut y = Vec::with_capacity(b * len);
        let mut mask = Vec::with_capacity(b * len);
        for &(s, _, k) in group {
            x.extend(ids[s..s + len].iter().map(|&i| i as i64));
            y.extend(ids[s + 1..s + len + 1].iter().map(|&i| i as i64));
            mask.extend((0..len).map(|t| if t >= len - k { 1.0f32 } else { 0.0 }));
            count += k;
        }
        let x = Tensor::<2, Int>::from_data(TensorData::new(x, [b, len]), device);
        let y = Tensor::<2, Int>::from_data(TensorData::new(y, [b, len]), device).reshape([b * len, 1]);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b * len, 1]), device);
        let v = model.tok.vocab_size();
        let logp = log_softmax(model.forward(x, 0)?.reshape([b * len, v]), 1).gather(1, y);
        total -= (logp * mask).sum().into_scalar::<f64>();
    }
    let loss = total / count as f64;
    Ok(EvalReport { split, context, stride, tokens: count, loss, perplexity: loss.exp() })
}
