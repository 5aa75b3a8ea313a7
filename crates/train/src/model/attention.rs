//! [`Attention`]: causal multi-head self-attention that asks the position scheme for rotated
//! `(q, k)` and for a score bias, never for its name.
//!
//! `q, k, v = split(x W_qkv)`, `(q, k) = rotate(q, k)`,
//! `ctx = softmax(q kᵀ / √d_h + bias + causal mask) v`, `out = ctx W_proj`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};
use ember_position::PositionEncoding;

/// Configuration of an [`Attention`] block.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Residual width `d`.
    pub d_model: usize,
    /// Heads `H` (`d` divisible by `H`).
    pub n_heads: usize,
    /// Biases on both projections.
    #[config(default = false)]
    pub bias: bool,
    /// Dropout on the output.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Std of the `qkv` weight's normal init.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Std of the output projection's normal init (GPT-2: `0.02/√(2·n_layers)`).
    #[config(default = 0.02)]
    pub proj_std: f64,
}

/// A `[d_in, d_out]` linear layer with `N(0, std)` weights and zero bias.
pub(crate) fn linear(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(bias).with_initializer(Initializer::Normal { mean: 0.0, std }).init(device)
}

impl AttentionConfig {
    /// Build the block on `device`.
    pub fn init(&self, device: &Device) -> Attention {
        let d = self.d_model;
        Attention {
            qkv: linear(d, 3 * d, self.bias, self.init_std, device),
            proj: linear(d, d, self.bias, self.proj_std, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            n_heads: self.n_heads,
        }
    }
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
