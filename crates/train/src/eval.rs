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
//!
//! A finished run is evaluated through [`evaluate_run`], which also refuses a `learned`
//! model past the context it was *trained* on ([`untrained_length`]): rows past it exist in
//! the table (up to `max_len`) but never received a gradient. A RoPE run can be evaluated
//! with frequency scaling switched on ([`EvalScaling`], `ember eval --rope-scaling yarn
//! --factor 4`) without touching its files: RoPE has no parameters, so only the scheme's
//! settings change ([`with_rope_scaling`]).

use ember_embed::loss::target_log_probs;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_position::rope_scaling::RopeScaling;
use ember_position::PositionConfig;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Split};
use crate::model::TinyLm;
use crate::run::LoadedRun;
use crate::{Config, TrainError};

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
        let y = Tensor::<2, Int>::from_data(TensorData::new(y, [b, len]), device);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, len]), device);
        let logp = target_log_probs(model.forward(x, 0)?, y);
        total -= (logp * mask).sum().into_scalar::<f64>();
    }
    let loss = total / count as f64;
    Ok(EvalReport { split, context, stride, tokens: count, loss, perplexity: loss.exp() })
}

/// A RoPE scaling method switched on at evaluation time (`--rope-scaling KIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingKind {
    /// Position interpolation.
    Linear,
    /// Dynamic NTK.
    Dynamic,
    /// YaRN.
    Yarn,
    /// Llama 3.1's wavelength-dependent scaling.
    Llama3,
}

impl std::str::FromStr for ScalingKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linear" => Ok(Self::Linear),
            "dynamic" => Ok(Self::Dynamic),
            "yarn" => Ok(Self::Yarn),
            "llama3" => Ok(Self::Llama3),
            other => Err(format!("`{other}` is not a RoPE scaling; use linear, dynamic, yarn or llama3")),
        }
    }
}

/// Eval-time RoPE scaling: a kind and a factor. The original context of every method is the
/// run's training context `L` (`data.context`); the other settings take Hugging Face's
/// defaults (YaRN β_fast 32, β_slow 1; llama3 low 1, high 4). TOML: `{ kind = "yarn", factor = 4.0 }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalScaling {
    /// Which method.
    pub kind: ScalingKind,
    /// Its factor `s > 0` (usually eval length / `L`).
    pub factor: f64,
}

impl EvalScaling {
    /// The position crate's [`RopeScaling`] for a model trained at context `trained_context`.
    pub fn rope_scaling(&self, trained_context: usize) -> RopeScaling {
        let (factor, l) = (self.factor, trained_context);
        match self.kind {
            ScalingKind::Linear => RopeScaling::Linear { factor },
            ScalingKind::Dynamic => RopeScaling::Dynamic { factor, max_position: l },
            ScalingKind::Yarn => RopeScaling::Yarn { factor, original_max_position: l, beta_fast: 32.0, beta_slow: 1.0, attention_factor: None },
            ScalingKind::Llama3 => RopeScaling::Llama3 { factor, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: l },
        }
    }
}

/// Switch a loaded RoPE run to `scaling` (its config's `position.scaling` is replaced in
/// memory; the files are untouched; `device` is the model's). Errors when the run is not RoPE or the factor is bad.
pub fn with_rope_scaling(mut run: LoadedRun, scaling: &EvalScaling, device: &Device) -> Result<LoadedRun, TrainError> {
    let trained = run.config.data.context;
    let PositionConfig::Rope { layout, base, partial_rotary_factor, .. } = run.config.position.clone() else {
        return Err(TrainError::request(
            "--rope-scaling",
            format!("the run uses `{}` positions; RoPE scaling applies only to a run trained with scheme = \"rope\"", run.config.position.scheme()),
        ));
    };
    let position = PositionConfig::Rope { layout, base, partial_rotary_factor, scaling: scaling.rope_scaling(trained) };
    let m = &run.config.model;
    run.model.pos = position.init(m.d_model, m.n_heads, device).map_err(|e| TrainError::request("--factor", e.to_string()))?;
    run.config.position = position;
    Ok(run)
}

/// Why `config`'s model cannot be evaluated at `context` tokens, if it cannot: a learned
/// table past the training context (its rows there never received a gradient).
pub fn untrained_length(config: &Config, context: usize) -> Option<String> {
    let trained = config.data.context;
    match config.position {
        PositionConfig::Learned { max_len, .. } if context > trained => Some(format!(
            "learned positions were trained on {trained} positions only (table max_len = {max_len}): rows past {trained} never \
             received a gradient, so evaluating at {context} tokens measures untrained weights; evaluate at ≤ {trained} or use a scheme that extrapolates"
        )),
        _ => None,
    }
}

/// [`evaluate_split`] on a finished run's `split`, after refusing lengths the model was not
/// trained for ([`untrained_length`]).
pub fn evaluate_run(run: &LoadedRun, data: &Dataset, split: Split, context: usize, stride: usize, max_tokens: Option<usize>, device: &Device) -> Result<EvalReport, TrainError> {
    if let Some(reason) = untrained_length(&run.config, context) {
        return Err(TrainError::request("--context", reason));
    }
    evaluate_split(&run.model, data.ids(split), split, context, stride, max_tokens, device)
}
