//! The model's own configuration, independent of data, optimizer and run settings.
//!
//! - [`ModelConfig`]: the shape hyper-parameters — the `[model]` table of a training config;
//! - [`TinyLmConfig`]: a [`ModelConfig`] plus what the data and the position scheme fix
//!   (vocabulary size, `[position]`, an optional padding row); [`TinyLmConfig::init`] builds
//!   a [`super::TinyLm`] on any device, Burn-style.
//!
//! ## Input-embedding scale
//!
//! The lookup output is multiplied by `s` before the position signal is added:
//! `x_t = s · E[i_t] + P_t`. The tied head reads the *unscaled* table (`logits = h · Eᵀ`).
//! Default per scheme ([`EmbedScale`]):
//!
//! | scheme | default `s` | why |
//! | --- | --- | --- |
//! | sinusoidal | `√d` | a fixed signal with entries in `[−1, 1]`, `‖P_t‖ = √(d/2)` (8 at d = 128), against token rows `N(0, 0.02)`, `‖E_i‖ ≈ 0.02·√d` (0.23): unscaled, the stream is almost all position; Vaswani et al. multiply the embeddings by `√d` |
//! | learned | 1 | the position table is trained from the same `N(0, 0.02)` init as the token rows (GPT-2 / nanoGPT) |
//! | none, rope, alibi | 1 | nothing is added to `x`: a common factor on `x` only rescales what the first norm removes |

use burn::tensor::Device;
use ember_position::PositionConfig;
use serde::{Deserialize, Serialize};

use super::{ModelError, TinyLm};

/// Normalisation layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// LayerNorm (nanoGPT).
    #[default]
    Layernorm,
    /// RMSNorm (LLaMA).
    Rmsnorm,
}

/// The factor `s` on the token lookup output (see the module docs). TOML: `"sqrt_d"` or a
/// positive number; omitted = the scheme's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EmbedScale {
    /// `√d_model`.
    SqrtD,
    /// A fixed positive factor.
    Value(f64),
}

impl Serialize for EmbedScale {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::SqrtD => s.serialize_str("sqrt_d"),
            Self::Value(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for EmbedScale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = EmbedScale;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"sqrt_d\" or a positive number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EmbedScale, E> {
                match v {
                    "sqrt_d" => Ok(EmbedScale::SqrtD),
                    other => Err(E::custom(format!("unknown embed_scale `{other}`; use \"sqrt_d\" or a positive number"))),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<EmbedScale, E> {
                Ok(EmbedScale::Value(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EmbedScale, E> {
                Ok(EmbedScale::Value(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EmbedScale, E> {
                Ok(EmbedScale::Value(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `[model]` table: the transformer's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Residual width `d`.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads (`d_model` must divide by it).
    pub n_heads: usize,
    /// MLP hidden width = `mlp_ratio · d_model`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    /// `layernorm` or `rmsnorm`.
    #[serde(default)]
    pub norm: NormKind,
    /// Biases in linear layers and norms (nanoGPT's recipe: false).
    #[serde(default)]
    pub bias: bool,
    /// Dropout probability on attention output, MLP output and embeddings.
    #[serde(default)]
    pub dropout: f64,
    /// Tie the LM head to the token table.
    #[serde(default = "yes")]
    pub tie_embeddings: bool,
    /// Factor on the token lookup output; omitted = the position scheme's default
    /// (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_scale: Option<EmbedScale>,
}

fn default_mlp_ratio() -> usize {
    4
}
fn yes() -> bool {
    true
}

impl ModelConfig {
    /// `d_model`, `n_layers`, `n_heads`; the rest at their defaults (MLP ratio 4, LayerNorm,
    /// no biases, no dropout, tied head, the scheme's embedding scale).
    pub fn new(d_model: usize, n_layers: usize, n_heads: usize) -> Self {
        Self { d_model, n_layers, n_heads, mlp_ratio: 4, norm: NormKind::default(), bias: false, dropout: 0.0, tie_embeddings: true, embed_scale: None }
    }

    /// Check values; the error names the field (`model.<field>`) and the fix.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, reason: String| Err(ModelError::Invalid { field, reason });
        if self.d_model == 0 || self.n_layers == 0 || self.n_heads == 0 || self.mlp_ratio == 0 {
            return bad("model", "d_model, n_layers, n_heads and mlp_ratio must all be ≥ 1".into());
        }
        if self.d_model % self.n_heads != 0 {
            return bad("model.n_heads", format!("d_model = {} is not divisible by n_heads = {}", self.d_model, self.n_heads));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("model.dropout", format!("{} is not in [0, 1)", self.dropout));
        }
        if let Some(EmbedScale::Value(s)) = self.embed_scale {
            if !(s > 0.0 && s.is_finite()) {
                return bad("model.embed_scale", format!("{s} must be a positive number (or \"sqrt_d\")"));
            }
        }
        Ok(())
    }
}

/// Everything that fixes a [`TinyLm`]'s architecture and its parameter shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct TinyLmConfig {
    /// Vocabulary size `V` (rows of the token table, columns of the logits).
    pub vocab_size: usize,
    /// Shape hyper-parameters.
    pub model: ModelConfig,
    /// Position scheme.
    pub position: PositionConfig,
    /// Optional padding row of the token table (zero, no gradient, never predicted).
    pub padding_idx: Option<usize>,
}

impl TinyLmConfig {
    /// A model over `vocab_size` tokens with shape `model` and position scheme `position`.
    pub fn new(vocab_size: usize, model: ModelConfig, position: PositionConfig) -> Self {
        Self { vocab_size, model, position, padding_idx: None }
    }

    /// The same with a padding row at `padding_idx`.
    pub fn with_padding_idx(mut self, padding_idx: Option<usize>) -> Self {
        self.padding_idx = padding_idx;
        self
    }

    /// The factor `s` on the lookup output: the configured one, else the scheme's default
    /// (`√d` for sinusoidal, 1 otherwise; see the module docs).
    pub fn embed_scale(&self) -> f64 {
        match self.model.embed_scale {
            Some(EmbedScale::Value(s)) => s,
            Some(EmbedScale::SqrtD) => (self.model.d_model as f64).sqrt(),
            None if matches!(self.position, PositionConfig::Sinusoidal { .. }) => (self.model.d_model as f64).sqrt(),
            None => 1.0,
        }
    }

    /// Check the shape, the position scheme against it, and the vocabulary size.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.model.validate()?;
        if self.vocab_size == 0 {
            return Err(ModelError::Invalid { field: "vocab_size", reason: "must be ≥ 1".into() });
        }
        self.position.validate(self.model.d_model, self.model.n_heads).map_err(ModelError::Position)
    }

    /// Build the model on `device` (seed the device first, `device.seed(..)`, for
    /// reproducible weights; use `device.autodiff()` to train it). Every parameter is drawn
    /// here, so the weights depend only on the seed set before this call.
    pub fn init(&self, device: &Device) -> Result<TinyLm, ModelError> {
        self.validate()?;
        TinyLm::build(self, device)
    }
}
