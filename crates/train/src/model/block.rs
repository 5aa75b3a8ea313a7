//! [`Block`]: one pre-norm transformer block, `x + Attn(Norm(x))` then `x + Mlp(Norm(x))`.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ember_kernels::KernelError;
use ember_position::PositionEncoding;

use super::attention::{Attention, AttentionConfig};
use super::cache::LayerCache;
use super::mlp::{Mlp, MlpConfig};
use super::norm::Norm;
use super::ModelConfig;

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
    /// A block of shape `m` with GPT-2's init: weights `N(0, 0.02)`, the two residual
    /// projections `N(0, 0.02/√(2·n_layers))`, biases zero, norms one.
    pub fn init(m: &ModelConfig, device: &Device) -> Self {
        let (d, std) = (m.d_model, 0.02);
        let proj_std = std / ((2 * m.n_layers) as f64).sqrt();
        Self {
            norm1: Norm::new(m.norm, d, m.bias, device),
            attn: AttentionConfig::new(d, m.n_heads)
                .with_bias(m.bias)
                .with_dropout(m.dropout)
                .with_init_std(std)
                .with_proj_std(proj_std)
                .init(device),
            norm2: Norm::new(m.norm, d, m.bias, device),
            mlp: MlpConfig::new(d, m.mlp_ratio * d)
                .with_bias(m.bias)
                .with_dropout(m.dropout)
                .with_init_std(std)
                .with_proj_std(proj_std)
                .init(device),
        }
    }

    /// Residual stream `[B, T, d]` at positions `[offset, offset+T)` → `[B, T, d]`.
    /// `bias`: the scheme's score bias `[1, H, T, T]` (ALiBi) or `None`.
    pub fn forward(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Result<Tensor<3>, KernelError> {
        self.residual(x, |h| self.attn.forward(h, pos, bias, offset))
    }

    /// The same for new tokens `x [B, T_new, d]` after the ones in `cache` (positions
    /// `[T_cached, T_cached + T_new)`), appending their keys and values to it (see
    /// [`Attention::forward_cached`]). `bias`: `[1, H, T_new, T_cached + T_new]` or `None`.
    pub fn forward_cached(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, cache: &mut LayerCache) -> Result<Tensor<3>, KernelError> {
        self.residual(x, |h| self.attn.forward_cached(h, pos, bias, cache))
    }

    /// This block's attention probabilities `[B, H, T, T]` for the residual stream
    /// `x [B, T, d]` entering it (see [`Attention::probabilities`]).
    pub fn attention_probabilities(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Result<Tensor<4>, KernelError> {
        self.attn.probabilities(self.norm1.forward(x)?, pos, bias, offset)
    }

    /// `x + attn(Norm₁ x)`, then `+ Mlp(Norm₂ ·)`; `[B, T, d]` → `[B, T, d]`.
    fn residual(&self, x: Tensor<3>, attn: impl FnOnce(Tensor<3>) -> Result<Tensor<3>, KernelError>) -> Result<Tensor<3>, KernelError> {
        let x = x.clone() + attn(self.norm1.forward(x)?)?;
        Ok(x.clone() + self.mlp.forward(self.norm2.forward(x)?)?)
    }
}
