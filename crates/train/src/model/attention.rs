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

use ember_kernels::{attention as fused_attention, attention_qkv, causal_mask, KernelError};

use super::cache::LayerCache;

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

/// `layer` applied to hidden states `x [B, T, d_in]` → `[B, T, d_out]`: one op with its own
/// backward, one matrix product over all `B·T` rows ([`ember_kernels::linear`]).
pub(crate) fn forward_rows(layer: &Linear, x: Tensor<3>) -> Result<Tensor<3>, KernelError> {
    ember_kernels::linear(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
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
    /// Errors when `x` or `bias` does not fit the block (a width other than `d`).
    pub fn forward(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Result<Tensor<3>, KernelError> {
        // One op with its own backward either way; without a rotation it reads q, k, v
        // straight from the projection (no split into heads, no slices to differentiate).
        let ctx = if pos.rotates_qk() {
            let (q, k, v) = self.heads(x)?;
            let (q, k) = pos.rotate_qk(q, k, offset);
            fused_attention(q, k, v, bias)?
        } else {
            attention_qkv(forward_rows(&self.qkv, x)?, self.n_heads, bias)?
        }; // [B, T, d]
        Ok(self.dropout.forward(forward_rows(&self.proj, ctx)?))
    }

    /// The same with a KV cache: `x [B, T_new, d]` (normed hidden states of the new tokens, at
    /// positions `[T_cached, T_cached + T_new)`) → `[B, T_new, d]`; the new keys (rotated) and
    /// values are appended to `cache` (`[B, H, T_cached, dh]` → `[B, H, T_cached + T_new, dh]`)
    /// and each new query attends to every cached key and to the new ones up to its own
    /// position. `bias`: the scheme's score bias `[1, H, T_new, T_cached + T_new]` or `None`.
    pub fn forward_cached(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, cache: &mut LayerCache) -> Result<Tensor<3>, KernelError> {
        let offset = cache.len();
        let (q, k, v) = self.heads(x)?;
        let (q, k) = pos.rotate_qk(q, k, offset);
        let (k, v) = cache.append(k, v);
        let ([b, h, tq, _], tk) = (q.dims(), k.dims()[2]);
        // A prefill (empty cache) is the square causal case; one new token sees every key
        // (no mask); several new tokens after cached ones need the bottom-right mask.
        let mask = (offset > 0 && tq > 1).then(|| causal_mask(tq, tk, &q.device()).expand([b, h, tq, tk]));
        let options = AttentionModuleOptions { is_causal: offset == 0, ..Default::default() };
        let ctx = attention(q, k, v, mask, bias, options); // [B, H, T_new, dh]
        self.output(ctx)
    }

    /// The attention probabilities of this block, `[B, H, T, T]` (row `i`: query at position
    /// `offset + i`; zero above the diagonal), for normed hidden states `x [B, T, d]` and the
    /// scheme's `bias [1, H, T, T]`: the same scores as [`Self::forward`], by Burn's ops (an
    /// inspection path, e.g. attention distance and entropy; not used in training).
    pub fn probabilities(&self, x: Tensor<3>, pos: &PositionEncoding, bias: Option<Tensor<4>>, offset: usize) -> Result<Tensor<4>, KernelError> {
        let (q, k, _) = self.heads(x)?;
        let (q, k) = pos.rotate_qk(q, k, offset);
        let [b, h, t, dh] = q.dims();
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt());
        let scores = match bias {
            Some(bias) => scores + bias,
            None => scores,
        };
        let mask = causal_mask(t, t, &scores.device()).expand([b, h, t, t]);
        Ok(burn::tensor::activation::softmax(scores.mask_fill(mask, f64::NEG_INFINITY), 3))
    }

    /// `x [B, T, d]` → `q, k, v`, each `[B, H, T, dh]`.
    fn heads(&self, x: Tensor<3>) -> Result<(Tensor<4>, Tensor<4>, Tensor<4>), KernelError> {
        let [b, t, d] = x.dims();
        let (h, dh) = (self.n_heads, d / self.n_heads);
        // [B, T, 3d] → [3, B, H, T, dh]
        let qkv = forward_rows(&self.qkv, x)?.reshape([b, t, 3, h, dh]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0);
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        Ok((q, k, v))
    }

    /// Attention context `[B, H, T, dh]` → heads merged and projected, `[B, T, d]`.
    fn output(&self, ctx: Tensor<4>) -> Result<Tensor<3>, KernelError> {
        let [b, h, t, dh] = ctx.dims();
        let ctx = ctx.swap_dims(1, 2).reshape([b, t, h * dh]);
        Ok(self.dropout.forward(forward_rows(&self.proj, ctx)?))
    }
}
