//! `TinyLm`: a GPT-style decoder, readable top to bottom.
//!
//! ```text
//! ids [B,T] ─ TokenEmbedding ─▶ ·s ─▶ x [B,T,d] ─ + position (additive schemes) ─ dropout
//!   └▶ N × Block:  x = x + Attn(Norm(x))      (q, k rotated by RoPE; ALiBi bias on scores)
//!                  x = x + Mlp(Norm(x))       (d → r·d → d, GELU)
//!   └▶ final Norm ─▶ h [B,T,d] ─ LmHead (tied: h·Eᵀ, unscaled E) ─▶ logits [B,T,V]
//! ```
//!
//! Files: [`config`] (`ModelConfig`, `TinyLmConfig`, the embedding scale `s`),
//! [`attention`], [`mlp`], [`block`], [`norm`], [`cache`] (the KV cache used by
//! [`TinyLm::forward_cached`] for decoding); this file holds the model itself.
//!
//! Init (GPT-2): every weight `N(0, 0.02)`, the residual projections (`attn.proj`,
//! `mlp.proj`) `N(0, 0.02/√(2·n_layers))`, biases zero, norms one.
//!
//! ```no_run
//! use ember_train::model::{ModelConfig, TinyLmConfig};
//! let device = burn::tensor::Device::flex();
//! let model = TinyLmConfig::new(65, ModelConfig::new(64, 2, 4), Default::default()).init(&device).unwrap();
//! ```

pub mod attention;
pub mod block;
pub mod cache;
pub mod config;
pub mod mlp;
pub mod norm;

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Int, Tensor};
use ember_embed::head::LmHeadConfig;
use ember_embed::loss::cross_entropy;
use ember_embed::{LmHead, TokenEmbedding, TokenEmbeddingConfig};
use ember_position::{PositionEncoding, PositionError};

pub use attention::{Attention, AttentionConfig};
pub use block::Block;
pub use cache::{KvCache, LayerCache};
pub use config::{EmbedScale, ModelConfig, NormKind, TinyLmConfig};
pub use mlp::{Mlp, MlpConfig};
pub use norm::Norm;

/// What can make a model config unusable.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A value out of range; `field` is the config key (`model.n_heads`).
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The config key.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// From the token table.
    #[error(transparent)]
    Embed(#[from] ember_embed::EmbedError),
    /// From the position scheme (bad settings, or a sequence past a learned table).
    #[error(transparent)]
    Position(#[from] PositionError),
    /// From a fused op (inputs that do not fit the model's widths).
    #[error(transparent)]
    Kernel(#[from] ember_kernels::KernelError),
}

/// The tiny language model. See the module docs.
#[derive(Module, Debug)]
pub struct TinyLm {
    /// Token table `E`, `[V, d]`.
    pub tok: TokenEmbedding,
    /// Position scheme.
    pub pos: PositionEncoding,
    drop: Dropout,
    /// Transformer blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub norm_f: Norm,
    /// LM head (tied by default).
    pub head: LmHead,
    /// Factor `s` on the lookup output (see [`config`]).
    #[module(skip)]
    embed_scale: f64,
}

impl TinyLm {
    /// Build from a validated config (see [`TinyLmConfig::init`]).
    fn build(c: &TinyLmConfig, device: &Device) -> Result<Self, ModelError> {
        let m = &c.model;
        let tok = TokenEmbeddingConfig::new(c.vocab_size, m.d_model)
            .with_initializer(burn::nn::Initializer::Normal { mean: 0.0, std: 0.02 })
            .with_padding_idx(c.padding_idx)
            .init(device)?;
        let head = LmHeadConfig::new().with_tied(m.tie_embeddings).with_bias(m.bias).init(&tok);
        let model = Self {
            tok,
            pos: c.position.init(m.d_model, m.n_heads, device)?,
            drop: DropoutConfig::new(m.dropout).init(),
            blocks: (0..m.n_layers).map(|_| Block::init(m, device)).collect(),
            norm_f: Norm::new(m.norm, m.d_model, m.bias, device),
            head,
            embed_scale: c.embed_scale(),
        };
        // Burn initialises parameters lazily, at first use; draw them all now, in field order
        // (token table, learned position table, blocks, final norm, head: nanoGPT's order,
        // which the main job's published loss was measured with), so the weights depend on
        // the seed set before `init` and not on what runs in between. Under one seed every
        // scheme gets the same token table, and every scheme without parameters (all but
        // `learned`) the same block weights.
        struct Materialize;
        impl burn::module::ModuleVisitor for Materialize {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        model.visit(&mut Materialize);
        Ok(model)
    }

    /// The factor `s` applied to the token lookup output.
    pub fn embed_scale(&self) -> f64 {
        self.embed_scale
    }

    /// ids `[B, T]` at positions `[offset, offset+T)` → logits `[B, T, V]`. Errors only when
    /// the positions run past a learned table.
    pub fn forward(&self, ids: Tensor<2, Int>, offset: usize) -> Result<Tensor<3>, ModelError> {
        let hidden = self.hidden_from_embeddings(self.lookup(ids), offset)?;
        Ok(self.head.logits(hidden, &self.tok))
    }

    /// Mean cross-entropy of ids `[B, T]` (at positions from 0) against `targets [B, T]`,
    /// pad targets skipped: the plain head (logits, then
    /// [`ember_embed::loss::cross_entropy`]) when `fused_chunk` is `None`, else the fused,
    /// chunked head ([`LmHead::fused_loss`], same value and gradients, no `[B, T, V]`
    /// logits) with that many rows per chunk. Returns a one-element tensor.
    pub fn loss(&self, ids: Tensor<2, Int>, targets: Tensor<2, Int>, fused_chunk: Option<usize>) -> Result<Tensor<1>, ModelError> {
        let hidden = self.hidden_from_embeddings(self.lookup(ids), 0)?;
        Ok(match fused_chunk {
            None => cross_entropy(self.head.logits(hidden, &self.tok), targets, self.tok.padding_idx()),
            Some(chunk) => self.head.fused_loss(hidden, targets, &self.tok, chunk)?,
        })
    }

    /// ids `[B, T]` → input embeddings `s · E[ids]`, `[B, T, d]` (before positions).
    pub fn lookup(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let x = self.tok.forward(ids);
        if self.embed_scale == 1.0 { x } else { x.mul_scalar(self.embed_scale) }
    }

    /// Input embeddings `x [B, T, d]` ([`Self::lookup`]'s output) at positions
    /// `[offset, offset+T)` → final hidden states `h [B, T, d]` (after the last norm).
    pub fn hidden_from_embeddings(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, ModelError> {
        let states = self.layer_states(x, offset, usize::MAX)?;
        Ok(self.norm_f.forward(states)?)
    }

    /// An empty [`KvCache`] for this model (one [`LayerCache`] per block).
    pub fn kv_cache(&self) -> KvCache {
        KvCache::new(self.blocks.len())
    }

    /// New ids `[B, T_new]` following the `T_cached` tokens held in `cache` (so at positions
    /// `[T_cached, T_cached + T_new)`) → logits `[B, T_new, V]`, equal to the last `T_new`
    /// rows of [`Self::forward`] on all `T_cached + T_new` ids at offset 0. Appends the new
    /// tokens' keys and values (`[B, H, T_new, dh]` per layer) to `cache`. With an empty
    /// cache this is a prefill. Errors when the positions run past a learned table (the
    /// cache is then unchanged) or when `cache` was made for another number of layers.
    pub fn forward_cached(&self, ids: Tensor<2, Int>, cache: &mut KvCache) -> Result<Tensor<3>, ModelError> {
        if cache.layers.len() != self.blocks.len() {
            let reason = format!("has {} layers, the model {}; make it with `TinyLm::kv_cache`", cache.layers.len(), self.blocks.len());
            return Err(ModelError::Invalid { field: "cache", reason });
        }
        let offset = cache.len();
        let x = self.lookup(ids);
        let [_, t, _] = x.dims();
        let mut x = self.positioned(x, offset)?;
        // New queries against every cached key plus the new ones (ALiBi; None otherwise).
        let bias = self.pos.score_bias(t, offset + t, offset, &x.device());
        for (block, layer) in self.blocks.iter().zip(&mut cache.layers) {
            x = block.forward_cached(x, &self.pos, bias.clone(), layer)?;
        }
        Ok(self.head.logits(self.norm_f.forward(x)?, &self.tok))
    }

    /// Input embeddings `x [B, T, d]` at positions `[offset, offset+T)` → the residual
    /// stream entering the first block, `[B, T, d]` (additive positions, dropout).
    fn positioned(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, ModelError> {
        Ok(self.drop.forward(self.pos.add_to_embeddings(x, offset)?))
    }

    /// The residual stream after `layers` blocks (0 = input embeddings plus positions),
    /// `[B, T, d]`, for input embeddings `x [B, T, d]`.
    fn layer_states(&self, x: Tensor<3>, offset: usize, layers: usize) -> Result<Tensor<3>, ModelError> {
        let [_, t, _] = x.dims();
        let mut x = self.positioned(x, offset)?;
        // Built once per forward and shared by every layer (ALiBi; None otherwise).
        let bias = self.pos.score_bias(t, t, offset, &x.device());
        for block in self.blocks.iter().take(layers) {
            x = block.forward(x, &self.pos, bias.clone(), offset)?;
        }
        Ok(x)
    }

    /// The attention probabilities of every layer for ids `[B, T]` at positions
    /// `[offset, offset+T)`: one `[B, H, T, T]` per block, in order (row `i` = query `i`,
    /// zero above the diagonal). An inspection path (see [`Attention::probabilities`]).
    pub fn attention_probabilities(&self, ids: Tensor<2, Int>, offset: usize) -> Result<Vec<Tensor<4>>, ModelError> {
        let x = self.lookup(ids);
        let [_, t, _] = x.dims();
        let mut x = self.positioned(x, offset)?;
        let bias = self.pos.score_bias(t, t, offset, &x.device());
        let mut maps = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            maps.push(block.attention_probabilities(x.clone(), &self.pos, bias.clone(), offset)?);
            x = block.forward(x, &self.pos, bias.clone(), offset)?;
        }
        Ok(maps)
    }

    /// Hidden states of ids `[B, T]` after `layer` blocks, `[B, T, d]`: 0 = input
    /// embeddings plus positions, `n_layers` = after the last block and the final norm
    /// (what the head reads). Errors on `layer > n_layers`.
    pub fn hidden_at_layer(&self, ids: Tensor<2, Int>, layer: usize, offset: usize) -> Result<Tensor<3>, ModelError> {
        let n = self.blocks.len();
        if layer > n {
            return Err(ModelError::Invalid { field: "layer", reason: format!("{layer} is past the model's {n} layers; use 0..={n}") });
        }
        let x = self.layer_states(self.lookup(ids), offset, layer)?;
        Ok(if layer == n { self.norm_f.forward(x)? } else { x })
    }
}
