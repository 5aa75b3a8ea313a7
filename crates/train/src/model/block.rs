//! [`Block`]: one pre-norm transformer block, `x + Attn(Norm(x))` then `x + Mlp(Norm(x))`.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ember_position::PositionEncoding;

use super::attention::{Attention, AttentionConfig};
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
    pub fn forward(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), pos, bias, offset);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}
