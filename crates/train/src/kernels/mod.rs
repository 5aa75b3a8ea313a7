//! Fused training kernels: ops that Burn would otherwise run as a chain of small tensor ops,
//! each with its own allocation, pass over memory and autodiff node, written as one op with
//! its own backward through Burn 0.22's backend extensions (`#[backend_extension]`).
//!
//! | op | forward | backward | kept for backward |
//! | --- | --- | --- | --- |
//! | [`causal_attention`], [`causal_attention_qkv`] | `softmax(q kᵀ/√d_h + bias + causal) v`, heads merged | `dq, dk, dv` | the probabilities `P` |
//! | [`linear`] | `x W (+ b)` over all rows | `dx = dy Wᵀ, dW = xᵀ dy` | `x`, `W` |
//! | [`FusedAdamW`] | AdamW's update + matrix decay + the clipping factor, one pass per parameter | — | — |
//! | [`sum_of_squares`] | `Σ x²` → `[1]` (clipping's norm) | — | — |
//! | [`gelu`] | `x·Φ(x)` (exact, `erf`) | `dx = dy ⊙ gelu'(x)` | `gelu'(x)` |
//! | [`layer_norm`] | `γ ⊙ (x − μ)/√(σ² + ε)` over the last dim | `dx, dγ` | nothing beyond `x`, `γ` |
//!
//! Every backend runs the same op: on flex (host memory) kernels parallel over rows or
//! batch × heads, attention with `gemm`'s micro-kernels on strided views (no copies of the
//! permuted `q/k/v`); ndarray runs the flex kernels on a copy of its tensors; the cubecl
//! backends (wgpu, cuda) run the trait's default bodies, the plain composition of Burn
//! primitives (one autodiff node all the same). Under autodiff the op is a single node whose
//! backward is the analytic gradient (below), so the decomposed attention's intermediates
//! (`q kᵀ`, the scaled, masked and exponentiated scores, the row sums) are neither kept nor
//! differentiated one by one. Parity with the plain composition (forward and gradients, f32
//! and f64, every backend) is tested in `tests/fused_ops.rs`.

// burn-ndarray is deprecated in Burn 0.22 but stays a selectable backend here.
#![allow(deprecated)]

mod adamw;
mod attention;
mod gelu;
mod host;

pub(crate) use host::simd;
mod layer_norm;
mod linear;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::ndarray::NdArrayTensor as NdTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Cube, ExtensionType, NdArray};
use burn::tensor::Tensor;

pub use adamw::{AdamWScalars, FusedAdamW, GradScale};

/// An optional constant score bias for [`EmberKernels::attention_forward`] (ALiBi's
/// `[1, H, T, T]`, or any `[1 or B, H, T, T]`).
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

/// An optional gradient factor for [`EmberKernels::adamw_update`]: a `[1]` tensor that
/// multiplies the gradient first (global-norm clipping's `min(1, c/‖g‖)`), or none.
#[derive(ExtensionType, Debug, Clone)]
pub enum GradFactor<B: Backend> {
    /// `g ← f·g` before the update.
    Tensor(FloatTensor<B>),
    /// The gradient as it is.
    One,
}

/// Backend extension for ember's fused kernels. Implemented for flex (host kernels),
/// ndarray and cubecl (default bodies: the plain composition) and for `Autodiff<B>` (one
/// node with the analytic backward).
#[backend_extension(Flex, NdArray, Cube, Autodiff)]
pub trait EmberKernels: Backend {
    /// Causal attention, forward: `q, k, v [B, H, T, dh]` (queries, keys, values of one
    /// layer, any strides), `bias [1 or B, H, T, T]` (a constant score bias, e.g. ALiBi) →
    /// `(ctx [B, T, H·dh], probs [B, H, T, T])`: the context with heads merged (the input of
    /// the output projection) and the attention probabilities (zero above the diagonal).
    fn attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        #[extension_type] bias: ScoreBias<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        attention::compose_forward::<Self>(q, k, v, bias.into_option())
    }

    /// Causal attention, backward: the forward's inputs, its `probs [B, H, T, T]` and the
    /// gradient of the loss w.r.t. `ctx`, `dctx [B, T, H·dh]` → `(dq, dk, dv)`, each
    /// `[B, H, T, dh]`:
    ///
    /// ```text
    /// dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(P ⊙ dP)),
    /// dQ = dS K / √dh,   dK = dSᵀ Q / √dh
    /// ```
    fn attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        dctx: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        attention::compose_backward::<Self>(q, k, v, probs, dctx)
    }

    /// Causal attention as one differentiable op: `q, k, v [B, H, T, dh]`, optional constant
    /// `bias [1 or B, H, T, T]` → `ctx [B, T, H·dh]`. Gradients flow to `q`, `k` and `v`; the
    /// bias is treated as a constant (ALiBi's is).
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        #[extension_type] bias: ScoreBias<Self>,
    ) -> FloatTensor<Self> {
        Self::attention_forward(q, k, v, bias).0
    }

    /// Causal attention reading `q, k, v` from the fused projection `qkv [B, T, 3·H·dh]`
    /// (columns `[q | k | v]`, each heads-major) → `(ctx [B, T, H·dh], probs [B, H, T, T])`.
    fn attention_qkv_forward(qkv: FloatTensor<Self>, heads: usize, #[extension_type] bias: ScoreBias<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [q, k, v] = attention::split_qkv::<Self>(qkv, heads);
        attention::compose_forward::<Self>(q, k, v, bias.into_option())
    }

    /// Its backward: the gradient w.r.t. `qkv`, `[B, T, 3·H·dh]`, written in place of the
    /// three slices (no zero-filled `[3, …]` buffers and sums, as slicing's backward would).
    fn attention_qkv_backward(qkv: FloatTensor<Self>, probs: FloatTensor<Self>, dctx: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        let [q, k, v] = attention::split_qkv::<Self>(qkv, heads);
        let (dq, dk, dv) = attention::compose_backward::<Self>(q, k, v, probs, dctx);
        attention::merge_qkv::<Self>([dq, dk, dv])
    }

    /// [`EmberKernels::causal_attention`] on the fused projection `qkv [B, T, 3·H·dh]` →
    /// `ctx [B, T, H·dh]`; one differentiable op from `qkv` (for schemes that do not rotate
    /// `q, k`).
    fn causal_attention_qkv(qkv: FloatTensor<Self>, heads: usize, #[extension_type] bias: ScoreBias<Self>) -> FloatTensor<Self> {
        Self::attention_qkv_forward(qkv, heads, bias).0
    }

    /// Linear layer without bias, forward: rows `x [N, d_in]`, weight `w [d_in, d_out]` (any
    /// strides, e.g. a tied table's transpose) → `x·w`, `[N, d_out]`.
    fn linear_forward(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        linear::compose_forward::<Self>(x, w)
    }

    /// Its backward: `x`, `w` and `dy [N, d_out]` → `(dx = dy·wᵀ [N, d_in], dw = xᵀ·dy [d_in, d_out])`.
    fn linear_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, dy: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        linear::compose_backward::<Self>(x, w, dy)
    }

    /// Linear layer without bias as one differentiable op (gradients to `x` and `w`).
    fn matmul_rows(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear_forward(x, w)
    }

    /// One AdamW update (see [`FusedAdamW`]): parameter `theta`, its gradient `g` and the
    /// moments `m`, `v` (all one shape), the gradient's factor `[1]` (clipping) →
    /// `(θ', m', v')`.
    fn adamw_update(
        theta: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        #[extension_type] factor: GradFactor<Self>,
        scalars: AdamWScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adamw::compose::<Self>(theta, g, m, v, factor, scalars)
    }

    /// `Σ x²` over every element of `x` (any shape, e.g. a gradient) → `[1]`: the global
    /// norm's parts for clipping, one pass and no `x²` tensor.
    fn sum_of_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        adamw::compose_sum_of_squares::<Self>(x)
    }

    /// LayerNorm without bias, forward: `x [.., d]` (hidden states), `gamma [d]` →
    /// `γ ⊙ (x − μ)/√(σ² + ε)`, same shape as `x` (μ, σ² over the last dimension, biased σ²).
    fn layer_norm_forward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        layer_norm::compose_forward::<Self>(x, gamma, epsilon)
    }

    /// LayerNorm, backward: `x [.., d]`, `gamma [d]` and `dy` (gradient w.r.t. the output,
    /// shape of `x`) → `(dx` shape of `x`, `dγ [d])`.
    fn layer_norm_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, dy: FloatTensor<Self>, epsilon: f64) -> (FloatTensor<Self>, FloatTensor<Self>) {
        layer_norm::compose_backward::<Self>(x, gamma, dy, epsilon)
    }

    /// LayerNorm without bias as one differentiable op (gradients to `x` and `gamma`).
    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        Self::layer_norm_forward(x, gamma, epsilon)
    }

    /// Exact GELU and its derivative: pre-activations `x` (any shape) → `(gelu(x), gelu'(x))`,
    /// each shaped like `x`.
    fn gelu_with_derivative(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        gelu::compose::<Self>(x)
    }

    /// GELU's backward: `dy` (gradient w.r.t. `gelu(x)`) and the kept `gelu'(x)`, one shape →
    /// `dx = dy ⊙ gelu'(x)`.
    fn gelu_grad(dy: FloatTensor<Self>, derivative: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_mul(dy, derivative)
    }

    /// Exact GELU as one differentiable op: `x` (any shape) → `gelu(x)`.
    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_with_derivative(x).0
    }
}

/// ndarray: the flex kernels on a copy (ndarray → `TensorData` → flex and back): one copy
/// of each input and output instead of a chain of ndarray ops. Not for the linear layer:
/// ndarray's own matmul is fast, and copying a weight per call doubled the forward pass
/// (measured: 101 → 212 ms; with ndarray's matmul 84 ms).
impl EmberKernels for NdArray {
    fn attention_forward(q: NdTensor, k: NdTensor, v: NdTensor, bias: ScoreBias<Self>) -> (NdTensor, NdTensor) {
        let bias = ScoreBias::new(bias.into_option().map(host::flex));
        let (ctx, probs) = Flex::attention_forward(host::flex(q), host::flex(k), host::flex(v), bias);
        (host::ndarray(ctx), host::ndarray(probs))
    }

    fn attention_backward(q: NdTensor, k: NdTensor, v: NdTensor, probs: NdTensor, dctx: NdTensor) -> (NdTensor, NdTensor, NdTensor) {
        let (dq, dk, dv) = Flex::attention_backward(host::flex(q), host::flex(k), host::flex(v), host::flex(probs), host::flex(dctx));
        (host::ndarray(dq), host::ndarray(dk), host::ndarray(dv))
    }

    fn attention_qkv_forward(qkv: NdTensor, heads: usize, bias: ScoreBias<Self>) -> (NdTensor, NdTensor) {
        let bias = ScoreBias::new(bias.into_option().map(host::flex));
        let (ctx, probs) = Flex::attention_qkv_forward(host::flex(qkv), heads, bias);
        (host::ndarray(ctx), host::ndarray(probs))
    }

    fn attention_qkv_backward(qkv: NdTensor, probs: NdTensor, dctx: NdTensor, heads: usize) -> NdTensor {
        host::ndarray(Flex::attention_qkv_backward(host::flex(qkv), host::flex(probs), host::flex(dctx), heads))
    }

    fn layer_norm_forward(x: NdTensor, gamma: NdTensor, epsilon: f64) -> NdTensor {
        host::ndarray(Flex::layer_norm_forward(host::flex(x), host::flex(gamma), epsilon))
    }

    fn layer_norm_backward(x: NdTensor, gamma: NdTensor, dy: NdTensor, epsilon: f64) -> (NdTensor, NdTensor) {
        let (dx, dgamma) = Flex::layer_norm_backward(host::flex(x), host::flex(gamma), host::flex(dy), epsilon);
        (host::ndarray(dx), host::ndarray(dgamma))
    }

    fn gelu_with_derivative(x: NdTensor) -> (NdTensor, NdTensor) {
        let (y, dy) = Flex::gelu_with_derivative(host::flex(x));
        (host::ndarray(y), host::ndarray(dy))
    }
}

impl EmberKernels for Cube {}

impl EmberKernels for Flex {
    fn attention_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, bias: ScoreBias<Self>) -> (FlexTensor, FlexTensor) {
        attention::flex_forward(q, k, v, bias.into_option())
    }

    fn attention_backward(q: FlexTensor, k: FlexTensor, v: FlexTensor, probs: FlexTensor, dctx: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
        attention::flex_backward(q, k, v, probs, dctx)
    }

    fn attention_qkv_forward(qkv: FlexTensor, heads: usize, bias: ScoreBias<Self>) -> (FlexTensor, FlexTensor) {
        attention::flex_qkv_forward(qkv, heads, bias.into_option())
    }

    fn attention_qkv_backward(qkv: FlexTensor, probs: FlexTensor, dctx: FlexTensor, heads: usize) -> FlexTensor {
        attention::flex_qkv_backward(qkv, probs, dctx, heads)
    }

    fn linear_forward(x: FlexTensor, w: FlexTensor) -> FlexTensor {
        linear::flex_forward(x, w)
    }

    fn linear_backward(x: FlexTensor, w: FlexTensor, dy: FlexTensor) -> (FlexTensor, FlexTensor) {
        linear::flex_backward(x, w, dy)
    }

    fn adamw_update(theta: FlexTensor, g: FlexTensor, m: FlexTensor, v: FlexTensor, factor: GradFactor<Self>, scalars: AdamWScalars) -> (FlexTensor, FlexTensor, FlexTensor) {
        adamw::flex(theta, g, m, v, factor, scalars)
    }

    fn sum_of_squares(x: FlexTensor) -> FlexTensor {
        adamw::flex_sum_of_squares(x)
    }

    fn layer_norm_forward(x: FlexTensor, gamma: FlexTensor, epsilon: f64) -> FlexTensor {
        layer_norm::flex_forward(x, gamma, epsilon)
    }

    fn layer_norm_backward(x: FlexTensor, gamma: FlexTensor, dy: FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
        layer_norm::flex_backward(x, gamma, dy, epsilon)
    }

    fn gelu_with_derivative(x: FlexTensor) -> (FlexTensor, FlexTensor) {
        gelu::flex(x)
    }

    fn gelu_grad(dy: FlexTensor, derivative: FlexTensor) -> FlexTensor {
        gelu::flex_backward(dy, derivative)
    }
}

impl<B: Backend + EmberKernels, C: CheckpointStrategy> EmberKernels for Autodiff<B, C> {
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: ScoreBias<Self>,
    ) -> FloatTensor<Self> {
        attention::autodiff::<B, C>(q, k, v, bias.into_option())
    }

    fn causal_attention_qkv(qkv: FloatTensor<Self>, heads: usize, bias: ScoreBias<Self>) -> FloatTensor<Self> {
        attention::autodiff_qkv::<B, C>(qkv, heads, bias.into_option())
    }

    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        layer_norm::autodiff::<B, C>(x, gamma, epsilon)
    }

    fn matmul_rows(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        linear::autodiff::<B, C>(x, w)
    }

    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        gelu::autodiff::<B, C>(x)
    }
}

/// Causal multi-head attention of one layer as one op (see [`EmberKernels::causal_attention`]):
/// queries, keys and values `[B, H, T, dh]` (any layout, e.g. permuted views of the fused
/// `qkv` projection), an optional constant score bias `[1 or B, H, T, T]` → the context with
/// heads merged, `[B, T, H·dh]`. Scale `1/√dh`; key `j` is visible to query `i` iff `j ≤ i`.
///
/// # Panics
/// If the shapes disagree (the model builds them; this is not a user-input path).
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>) -> Tensor<3> {
    let [b, h, t, dh] = q.dims();
    assert!(k.dims() == [b, h, t, dh] && v.dims() == [b, h, t, dh], "causal_attention: q {:?}, k {:?}, v {:?} differ", q.dims(), k.dims(), v.dims());
    if let Some(bias) = &bias {
        let [bb, bh, bq, bk] = bias.dims();
        assert!((bb == 1 || bb == b) && bh == h && bq == t && bk == t, "causal_attention: bias {:?} for q {:?}", bias.dims(), q.dims());
    }
    let out = <burn::backend::Dispatch as EmberKernels>::causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        ScoreBias::new(bias.map(Tensor::into_dispatch)),
    );
    Tensor::from_dispatch(out)
}

/// Causal multi-head attention straight from the fused projection (see
/// [`EmberKernels::causal_attention_qkv`]): `qkv [B, T, 3d]` (the `qkv` linear's output,
/// columns `[q | k | v]`, each `[H, dh]` heads-major), `heads` = `H`, an optional constant
/// bias `[1 or B, H, T, T]` → the context with heads merged, `[B, T, d]`. The same result as
/// splitting `qkv` into heads and calling [`causal_attention`].
///
/// # Panics
/// If `3·heads` does not divide the last dimension or the bias shape disagrees.
pub fn causal_attention_qkv(qkv: Tensor<3>, heads: usize, bias: Option<Tensor<4>>) -> Tensor<3> {
    let [b, t, d3] = qkv.dims();
    assert!(heads > 0 && d3 % (3 * heads) == 0, "causal_attention_qkv: qkv {:?} with {heads} heads", qkv.dims());
    if let Some(bias) = &bias {
        let [bb, bh, bq, bk] = bias.dims();
        assert!((bb == 1 || bb == b) && bh == heads && bq == t && bk == t, "causal_attention_qkv: bias {:?} for qkv {:?}", bias.dims(), qkv.dims());
    }
    let out = <burn::backend::Dispatch as EmberKernels>::causal_attention_qkv(qkv.into_dispatch(), heads, ScoreBias::new(bias.map(Tensor::into_dispatch)));
    Tensor::from_dispatch(out)
}

/// LayerNorm as one op (see [`EmberKernels::layer_norm`]): hidden states `x [.., d]`, gain
/// `gamma [d]`, optional `beta [d]` (added after, a plain broadcast add) → same shape as `x`:
/// `γ ⊙ (x − μ)/√(σ² + ε) + β` over the last dimension, biased variance (as `burn::nn::LayerNorm`).
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Option<Tensor<1>>, epsilon: f64) -> Tensor<D> {
    assert!(x.dims()[D - 1] == gamma.dims()[0], "layer_norm: x {:?} with gamma {:?}", x.dims(), gamma.dims());
    let y = Tensor::<D>::from_dispatch(<burn::backend::Dispatch as EmberKernels>::fused_layer_norm(x.into_dispatch(), gamma.into_dispatch(), epsilon));
    match beta {
        Some(beta) => y + beta.unsqueeze(),
        None => y,
    }
}

/// Exact GELU as one op (see [`EmberKernels::exact_gelu`] and [`crate::model::gelu`]):
/// pre-activations `x` (any shape, e.g. `[B, T, r·d]`) → `gelu(x)`, same shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<burn::backend::Dispatch as EmberKernels>::exact_gelu(x.into_dispatch()))
}

/// A linear layer as one op with its own backward (see [`EmberKernels::matmul_rows`]):
/// hidden states `x [B, T, d_in]`, weight `w [d_in, d_out]` (any layout, e.g. the tied
/// table's transpose), optional bias `[d_out]` (a broadcast add after) → `[B, T, d_out]`,
/// computed as one `[B·T, d_in] × [d_in, d_out]` product.
pub fn linear<const D: usize>(x: Tensor<D>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let dims = x.dims();
    let [d_in, d_out] = w.dims();
    assert!(dims[D - 1] == d_in, "linear: x {dims:?} with weight {:?}", w.dims());
    let rows = dims[..D - 1].iter().product();
    let y = <burn::backend::Dispatch as EmberKernels>::matmul_rows(x.reshape([rows, d_in]).into_dispatch(), w.into_dispatch());
    let mut out = dims;
    out[D - 1] = d_out;
    let y = Tensor::<2>::from_dispatch(y).reshape(out);
    match bias {
        Some(b) => y + b.unsqueeze(),
        None => y,
    }
}

/// `Σ x²` over every element of `x` (any shape, e.g. a parameter's gradient) → `[1]`, as
/// one op (see [`EmberKernels::sum_of_squares`]); not differentiable.
pub fn sum_of_squares<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    Tensor::from_dispatch(<burn::backend::Dispatch as EmberKernels>::sum_of_squares(x.into_dispatch()))
}
