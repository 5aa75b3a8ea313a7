//! `TinyLm`: a GPT-style decoder, readable top to bottom.
//!
//! ```text
//! ids [B,T] ─ TokenEmbedding ─▶ x [B,T,d] ─ + position (additive schemes) ─ dropout
//!   └▶ N × Block:  x = x + Attn(Norm(x))      (q, k rotated by RoPE; ALiBi bias on scores)
//!                  x = x + Mlp(Norm(x))       (d → r·d → d, GELU)
//!   └▶ final Norm ─▶ h [B,T,d] ─ LmHead (tied: h·Eᵀ) ─▶ logits [B,T,V]
//! ```
//!
//! Init (GPT-2): every weight `N(0, 0.02)`, the residual projections (`attn.proj`,
//! `mlp.proj`) `N(0, 0.02/√(2·n_layers))`, biases zero, norms one.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor};
use ember_embed::head::LmHeadConfig;
use ember_embed::{LmHead, TokenEmbedding, TokenEmbeddingConfig};
use ember_position::PositionEncoding;

use crate::config::{Config, NormKind};
use crate::TrainError;

/// LayerNorm or RMSNorm over the last dimension.
#[derive(Module, Debug)]
pub enum Norm {
    /// LayerNorm (optionally without bias).
    Layer(LayerNorm),
    /// RMSNorm.
    Rms(RmsNorm),
}

impl Norm {
    fn new(kind: NormKind, d: usize, bias: bool, device: &Device) -> Self {
        match kind {
            NormKind::Layernorm => Self::Layer(LayerNormConfig::new(d).with_bias(bias).init(device)),
            NormKind::Rmsnorm => Self::Rms(RmsNormConfig::new(d).init(device)),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Layer(n) => n.forward(x),
            Self::Rms(n) => n.forward(x),
        }
    }
}

fn linear(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

/// Causal multi-head self-attention with the position scheme's hooks.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[d, 3d]`: queries, keys, values.
    pub qkv: Linear,
    /// `[d, d]`: output (residual) projection.
    pub proj: Linear,
    dropout: Dropout,
    #[module(skip)]
    n_heads: usize,
}

impl Attention {
    /// `x [B, T, d]` (normed hidden states at positions `[offset, offset+T)`) →
    /// `[B, T, d]`. `bias`: the scheme's score bias `[1, H, T, T]`, shared by all layers.
    pub fn forward(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let (h, dh) = (self.n_heads, d / self.n_heads);
        // [B, T, 3d] → three [B, H, T, dh]
        let qkv = self.qkv.forward(x).reshape([b, t, 3, h, dh]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0);
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        let (q, k) = pos.rotate_qk(q, k, offset);
        let options = AttentionModuleOptions { is_causal: true, ..Default::default() }; // scale 1/√dh
        let ctx = attention(q, k, v, None, bias, options); // [B, H, T, dh]
        let ctx = ctx.swap_dims(1, 2).reshape([b, t, d]);
        self.dropout.forward(self.proj.forward(ctx))
    }
}

/// Position-wise MLP, `d → r·d → d` with GELU.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[d, r·d]`.
    pub fc: Linear,
    /// `[r·d, d]`: residual projection.
    pub proj: Linear,
    dropout: Dropout,
}

impl Mlp {
    /// `[B, T, d] → [B, T, d]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.dropout.forward(self.proj.forward(gelu(self.fc.forward(x))))
    }
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention.
    pub norm1: Norm,
    /// Attention.
    pub attn: Attention,
    /// Norm before the MLP.
    pub norm2: Norm,
    /// MLP.
    pub mlp: Mlp,
}

impl Block {
    /// Residual stream `[B, T, d]` → `[B, T, d]`.
    pub fn forward(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), pos, bias, offset);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// The tiny language model. See the module docs.
#[derive(Module, Debug)]
pub struct TinyLm {
    /// Token table `[V, d]`.
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
}

/// What a forward pass exposes for gradient checks.
pub struct ForwardParts {
    /// Input embeddings after the token lookup, before positions `[B, T, d]`.
    pub embed_out: Tensor<3>,
    /// Final hidden states after the last norm `[B, T, d]`.
    pub hidden: Tensor<3>,
    /// Logits `[B, T, V]`.
    pub logits: Tensor<3>,
}

impl TinyLm {
    /// Build a model for `vocab_size` tokens from `config` on `device` (seed it first with
    /// `device.seed(..)` for reproducible weights).
    pub fn new(config: &Config, vocab_size: usize, device: &Device) -> Result<Self, TrainError> {
        Self::new_with_padding(config, vocab_size, None, device)
    }

    /// [`Self::new`] with a padding row `padding_idx` in the token table (zero, no gradient,
    /// never predicted; see `ember_embed::table`).
    pub fn new_with_padding(config: &Config, vocab_size: usize, padding_idx: Option<usize>, device: &Device) -> Result<Self, TrainError> {
        let m = &config.model;
        let (d, std) = (m.d_model, 0.02);
        let resid_std = std / ((2 * m.n_layers) as f64).sqrt();
        let tok = TokenEmbeddingConfig::new(vocab_size, d)
            .with_initializer(Initializer::Normal { mean: 0.0, std })
            .with_padding_idx(padding_idx)
            .init(device)?;
        let head = LmHeadConfig::new().with_tied(m.tie_embeddings).with_bias(m.bias).init(&tok);
        let pos = config.position.init(d, m.n_heads, device)?;
        let dropout = || DropoutConfig::new(m.dropout).init();
        let blocks = (0..m.n_layers)
            .map(|_| Block {
                norm1: Norm::new(m.norm, d, m.bias, device),
                attn: Attention {
                    qkv: linear(d, 3 * d, m.bias, std, device),
                    proj: linear(d, d, m.bias, resid_std, device),
                    dropout: dropout(),
                    n_heads: m.n_heads,
                },
                norm2: Norm::new(m.norm, d, m.bias, device),
                mlp: Mlp {
                    fc: linear(d, m.mlp_ratio * d, m.bias, std, device),
                    proj: linear(m.mlp_ratio * d, d, m.bias, resid_std, device),
                    dropout: dropout(),
                },
            })
            .collect();
        let model = Self { tok, pos, drop: dropout(), blocks, norm_f: Norm::new(m.norm, d, m.bias, device), head };
        // Burn initialises parameters lazily, at first use; draw them all now, so the weights
        // depend on the seed set before `new` and not on what runs in between.
        struct Materialize;
        impl burn::module::ModuleVisitor for Materialize {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        model.visit(&mut Materialize);
        Ok(model)
    }

    /// ids `[B, T]` at positions `[offset, offset+T)` → logits `[B, T, V]`.
    pub fn forward(&self, ids: Tensor<2, Int>, offset: usize) -> Result<Tensor<3>, TrainError> {
        Ok(self.forward_parts(ids, offset)?.logits)
    }

    /// Forward pass keeping the embedding output and the final hidden states.
    pub fn forward_parts(&self, ids: Tensor<2, Int>, offset: usize) -> Result<ForwardParts, TrainError> {
        let embed_out = self.tok.forward(ids);
        let hidden = self.hidden_from_embeddings(embed_out.clone(), offset)?;
        let logits = self.head.logits(hidden.clone(), &self.tok);
        Ok(ForwardParts { embed_out, hidden, logits })
    }

    /// Input embeddings `x [B, T, d]` (token lookup output) → final hidden states `[B, T, d]`.
    pub fn hidden_from_embeddings(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, TrainError> {
        let [_, t, _] = x.dims();
        let mut x = self.drop.forward(self.pos.add_to_embeddings(x, offset)?);
        // Built once per forward and shared by every layer (ALiBi; None otherwise).
        let bias = self.pos.score_bias(t, t, offset, &x.device());
        for block in &self.blocks {
            x = block.forward(x, &self.pos, bias.clone(), offset);
        }
        Ok(self.norm_f.forward(x))
    }
}
