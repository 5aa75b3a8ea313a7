//! The backend extension behind the public functions: one `#[backend_extension]` trait,
//! [`EmberKernels`], implemented for flex (host kernels), ndarray (the flex kernels on a
//! copy), cubecl (default bodies: the plain composition of Burn primitives) and
//! `Autodiff<B>` (one node per op with the analytic backward).
//!
//! Naming: for each op `X`, `fused_X` is the differentiable op, `fused_X_forward` returns
//! what the backward keeps, `fused_X_backward` is the analytic gradient.
//!
//! This module is private: the trait's methods take tensors without checking how they fit
//! together (they are the Burn-level primitives), so only the checked functions of the
//! crate root are public. The host kernels re-check shapes and dtypes themselves and fall
//! back to the composition when they do not fit, so even a wrong call here cannot read or
//! write out of bounds.

// burn-ndarray is deprecated in Burn 0.22 but stays a selectable backend here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::ndarray::NdArrayTensor as NdTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Cube, ExtensionType, NdArray};

use crate::adamw::AdamWScalars;
use crate::host;
use crate::{adamw, attention, gelu, layer_norm, linear, sum_of_squares};

/// An optional constant score bias for attention (ALiBi's `[1, H, T, T]`, or any
/// `[1 or B, H, T, T]`).
#[derive(ExtensionType, Debug, Clone)]
pub enum ScoreBias<B: Backend> {
    /// Added to the scaled scores before the mask and softmax.
    Tensor(FloatTensor<B>),
    /// No bias.
    None,
}

impl<B: Backend> ScoreBias<B> {
    /// `Some(bias)` → `Tensor(bias)`.
    pub fn new(bias: Option<FloatTensor<B>>) -> Self {
        bias.map_or(Self::None, Self::Tensor)
    }

    /// `Tensor(bias)` → `Some(bias)`.
    pub fn into_option(self) -> Option<FloatTensor<B>> {
        match self {
            Self::Tensor(t) => Some(t),
            Self::None => None,
        }
    }
}

/// An optional gradient factor for [`EmberKernels::fused_adamw`]: a `[1]` tensor that
/// multiplies the gradient first (global-norm clipping's `min(1, c/‖g‖)`), or none.
#[derive(ExtensionType, Debug, Clone)]
pub enum GradFactor<B: Backend> {
    /// `g ← f·g` before the update.
    Tensor(FloatTensor<B>),
    /// The gradient as it is.
    One,
}

/// Backend extension for ember's fused kernels (module docs; shapes in the crate root's
/// functions).
#[backend_extension(Flex, NdArray, Cube, Autodiff)]
pub trait EmberKernels: Backend {
    /// Causal attention, forward: `q, k, v [B, H, T, dh]`, `bias [1 or B, H, T, T]` →
    /// `(ctx [B, T, H·dh], probs [B, H, T, T])`.
    fn fused_attention_forward(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, #[extension_type] bias: ScoreBias<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        attention::compose_forward::<Self>(q, k, v, bias.into_option())
    }

    /// Causal attention, backward: the forward's inputs, `probs` and `dctx [B, T, H·dh]` →
    /// `(dq, dk, dv)`, each `[B, H, T, dh]` (formulas in `attention.rs`).
    fn fused_attention_backward(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, probs: FloatTensor<Self>, dctx: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dq, dk, dv, _) = attention::compose_backward::<Self>(q, k, v, probs, dctx);
        (dq, dk, dv)
    }

    /// The same and `dS [B, H, T, T]`, the gradient w.r.t. the scores (a trainable bias's,
    /// before the sum over a broadcast batch).
    fn fused_attention_bias_backward(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, probs: FloatTensor<Self>, dctx: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        attention::compose_backward::<Self>(q, k, v, probs, dctx)
    }

    /// Causal attention as one differentiable op → `ctx [B, T, H·dh]`; the bias is a constant.
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, #[extension_type] bias: ScoreBias<Self>) -> FloatTensor<Self> {
        Self::fused_attention_forward(q, k, v, bias).0
    }

    /// Attention from the fused projection `qkv [B, T, 3·H·dh]` → `(ctx, probs)`.
    fn fused_attention_qkv_forward(qkv: FloatTensor<Self>, heads: usize, #[extension_type] bias: ScoreBias<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [q, k, v] = attention::split_qkv::<Self>(qkv, heads);
        attention::compose_forward::<Self>(q, k, v, bias.into_option())
    }

    /// Its backward: `dqkv [B, T, 3·H·dh]`, written in place of the three slices.
    fn fused_attention_qkv_backward(qkv: FloatTensor<Self>, probs: FloatTensor<Self>, dctx: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        Self::fused_attention_qkv_bias_backward(qkv, probs, dctx, heads).0
    }

    /// The same and `dS [B, H, T, T]` (see [`EmberKernels::fused_attention_bias_backward`]).
    fn fused_attention_qkv_bias_backward(qkv: FloatTensor<Self>, probs: FloatTensor<Self>, dctx: FloatTensor<Self>, heads: usize) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [q, k, v] = attention::split_qkv::<Self>(qkv, heads);
        let (dq, dk, dv, ds) = attention::compose_backward::<Self>(q, k, v, probs, dctx);
        (attention::merge_qkv::<Self>([dq, dk, dv]), ds)
    }

    /// Attention from `qkv` as one differentiable op → `ctx [B, T, H·dh]`.
    fn fused_attention_qkv(qkv: FloatTensor<Self>, heads: usize, #[extension_type] bias: ScoreBias<Self>) -> FloatTensor<Self> {
        Self::fused_attention_qkv_forward(qkv, heads, bias).0
    }

    /// Linear without bias, forward: `x [N, d_in] · w [d_in, d_out]` → `[N, d_out]`.
    fn fused_linear_forward(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        linear::compose_forward::<Self>(x, w)
    }

    /// Its backward: `dy [N, d_out]` → `(dx = dy·wᵀ, dw = xᵀ·dy)`.
    fn fused_linear_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, dy: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        linear::compose_backward::<Self>(x, w, dy)
    }

    /// Linear without bias as one differentiable op.
    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::fused_linear_forward(x, w)
    }

    /// One AdamW update: `(θ, g, m, v)` of one shape and the factor → `(θ', m', v')`.
    fn fused_adamw(theta: FloatTensor<Self>, g: FloatTensor<Self>, m: FloatTensor<Self>, v: FloatTensor<Self>, #[extension_type] factor: GradFactor<Self>, scalars: AdamWScalars) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adamw::compose::<Self>(theta, g, m, v, factor, scalars)
    }

    /// `Σ x²` over every element → `[1]`.
    fn fused_sum_of_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        sum_of_squares::compose::<Self>(x)
    }

    /// LayerNorm without bias, forward: `x [.., d]`, `gamma [d]` → shape of `x`.
    fn fused_layer_norm_forward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        layer_norm::compose_forward::<Self>(x, gamma, epsilon)
    }

    /// Its backward: `dy` (shape of `x`) → `(dx, dγ [d])`.
    fn fused_layer_norm_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, dy: FloatTensor<Self>, epsilon: f64) -> (FloatTensor<Self>, FloatTensor<Self>) {
        layer_norm::compose_backward::<Self>(x, gamma, dy, epsilon)
    }

    /// LayerNorm without bias as one differentiable op.
    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        Self::fused_layer_norm_forward(x, gamma, epsilon)
    }

    /// Exact GELU, forward: `x` → `(gelu(x), gelu'(x))`, each shaped like `x`.
    fn fused_gelu_forward(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        gelu::compose::<Self>(x)
    }

    /// Its backward: `dy` and the kept `gelu'(x)` → `dy ⊙ gelu'(x)`.
    fn fused_gelu_backward(dy: FloatTensor<Self>, derivative: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_mul(dy, derivative)
    }

    /// Exact GELU as one differentiable op.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::fused_gelu_forward(x).0
    }
}

/// ndarray: the flex kernels on a copy (ndarray → `TensorData` → flex and back): one copy
/// of each input and output instead of a chain of ndarray ops. Not for the linear layer:
/// ndarray's own matmul is fast, and copying a weight per call doubled the forward pass
/// (measured: 101 → 212 ms; with ndarray's matmul 84 ms).
impl EmberKernels for NdArray {
    fn fused_attention_forward(q: NdTensor, k: NdTensor, v: NdTensor, bias: ScoreBias<Self>) -> (NdTensor, NdTensor) {
        let bias = ScoreBias::new(bias.into_option().map(host::flex));
        let (ctx, probs) = Flex::fused_attention_forward(host::flex(q), host::flex(k), host::flex(v), bias);
        (host::ndarray(ctx), host::ndarray(probs))
    }

    fn fused_attention_backward(q: NdTensor, k: NdTensor, v: NdTensor, probs: NdTensor, dctx: NdTensor) -> (NdTensor, NdTensor, NdTensor) {
        let (dq, dk, dv) = Flex::fused_attention_backward(host::flex(q), host::flex(k), host::flex(v), host::flex(probs), host::flex(dctx));
        (host::ndarray(dq), host::ndarray(dk), host::ndarray(dv))
    }

    fn fused_attention_qkv_forward(qkv: NdTensor, heads: usize, bias: ScoreBias<Self>) -> (NdTensor, NdTensor) {
        let bias = ScoreBias::new(bias.into_option().map(host::flex));
        let (ctx, probs) = Flex::fused_attention_qkv_forward(host::flex(qkv), heads, bias);
        (host::ndarray(ctx), host::ndarray(probs))
    }

    fn fused_attention_bias_backward(q: NdTensor, k: NdTensor, v: NdTensor, probs: NdTensor, dctx: NdTensor) -> (NdTensor, NdTensor, NdTensor, NdTensor) {
        let (dq, dk, dv, ds) = Flex::fused_attention_bias_backward(host::flex(q), host::flex(k), host::flex(v), host::flex(probs), host::flex(dctx));
        (host::ndarray(dq), host::ndarray(dk), host::ndarray(dv), host::ndarray(ds))
    }

    fn fused_attention_qkv_backward(qkv: NdTensor, probs: NdTensor, dctx: NdTensor, heads: usize) -> NdTensor {
        host::ndarray(Flex::fused_attention_qkv_backward(host::flex(qkv), host::flex(probs), host::flex(dctx), heads))
    }

    fn fused_attention_qkv_bias_backward(qkv: NdTensor, probs: NdTensor, dctx: NdTensor, heads: usize) -> (NdTensor, NdTensor) {
        let (dqkv, ds) = Flex::fused_attention_qkv_bias_backward(host::flex(qkv), host::flex(probs), host::flex(dctx), heads);
        (host::ndarray(dqkv), host::ndarray(ds))
    }

    fn fused_layer_norm_forward(x: NdTensor, gamma: NdTensor, epsilon: f64) -> NdTensor {
        host::ndarray(Flex::fused_layer_norm_forward(host::flex(x), host::flex(gamma), epsilon))
    }

    fn fused_layer_norm_backward(x: NdTensor, gamma: NdTensor, dy: NdTensor, epsilon: f64) -> (NdTensor, NdTensor) {
        let (dx, dgamma) = Flex::fused_layer_norm_backward(host::flex(x), host::flex(gamma), host::flex(dy), epsilon);
        (host::ndarray(dx), host::ndarray(dgamma))
    }

    fn fused_gelu_forward(x: NdTensor) -> (NdTensor, NdTensor) {
        let (y, dy) = Flex::fused_gelu_forward(host::flex(x));
        (host::ndarray(y), host::ndarray(dy))
    }
}

impl EmberKernels for Cube {}

impl EmberKernels for Flex {
    fn fused_attention_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, bias: ScoreBias<Self>) -> (FlexTensor, FlexTensor) {
        attention::flex_forward(q, k, v, bias.into_option())
    }

    fn fused_attention_backward(q: FlexTensor, k: FlexTensor, v: FlexTensor, probs: FlexTensor, dctx: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (dq, dk, dv, _) = attention::flex_backward(q, k, v, probs, dctx, false);
        (dq, dk, dv)
    }

    fn fused_attention_bias_backward(q: FlexTensor, k: FlexTensor, v: FlexTensor, probs: FlexTensor, dctx: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let (dq, dk, dv, ds) = attention::flex_backward(q, k, v, probs, dctx, true);
        (dq, dk, dv, ds.expect("dS was asked for"))
    }

    fn fused_attention_qkv_forward(qkv: FlexTensor, heads: usize, bias: ScoreBias<Self>) -> (FlexTensor, FlexTensor) {
        attention::flex_qkv_forward(qkv, heads, bias.into_option())
    }

    fn fused_attention_qkv_backward(qkv: FlexTensor, probs: FlexTensor, dctx: FlexTensor, heads: usize) -> FlexTensor {
        attention::flex_qkv_backward(qkv, probs, dctx, heads, false).0
    }

    fn fused_attention_qkv_bias_backward(qkv: FlexTensor, probs: FlexTensor, dctx: FlexTensor, heads: usize) -> (FlexTensor, FlexTensor) {
        let (dqkv, ds) = attention::flex_qkv_backward(qkv, probs, dctx, heads, true);
        (dqkv, ds.expect("dS was asked for"))
    }

    fn fused_linear_forward(x: FlexTensor, w: FlexTensor) -> FlexTensor {
        linear::flex_forward(x, w)
    }

    fn fused_linear_backward(x: FlexTensor, w: FlexTensor, dy: FlexTensor) -> (FlexTensor, FlexTensor) {
        linear::flex_backward(x, w, dy)
    }

    fn fused_adamw(theta: FlexTensor, g: FlexTensor, m: FlexTensor, v: FlexTensor, factor: GradFactor<Self>, scalars: AdamWScalars) -> (FlexTensor, FlexTensor, FlexTensor) {
        adamw::flex(theta, g, m, v, factor, scalars)
    }

    fn fused_sum_of_squares(x: FlexTensor) -> FlexTensor {
        sum_of_squares::flex(x)
    }

    fn fused_layer_norm_forward(x: FlexTensor, gamma: FlexTensor, epsilon: f64) -> FlexTensor {
        layer_norm::flex_forward(x, gamma, epsilon)
    }

    fn fused_layer_norm_backward(x: FlexTensor, gamma: FlexTensor, dy: FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
        layer_norm::flex_backward(x, gamma, dy, epsilon)
    }

    fn fused_gelu_forward(x: FlexTensor) -> (FlexTensor, FlexTensor) {
        gelu::flex(x)
    }

    fn fused_gelu_backward(dy: FlexTensor, derivative: FlexTensor) -> FlexTensor {
        gelu::flex_backward(dy, derivative)
    }
}

impl<B: Backend + EmberKernels, C: CheckpointStrategy> EmberKernels for Autodiff<B, C> {
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, bias: ScoreBias<Self>) -> FloatTensor<Self> {
        attention::autodiff::<B, C>(q, k, v, bias.into_option())
    }

    fn fused_attention_qkv(qkv: FloatTensor<Self>, heads: usize, bias: ScoreBias<Self>) -> FloatTensor<Self> {
        attention::autodiff_qkv::<B, C>(qkv, heads, bias.into_option())
    }

    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        layer_norm::autodiff::<B, C>(x, gamma, epsilon)
    }

    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        linear::autodiff::<B, C>(x, w)
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        gelu::autodiff::<B, C>(x)
    }
}
