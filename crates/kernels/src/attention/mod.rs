//! Causal attention as one op: the plain composition (default bodies, this file), the host
//! kernel (flex, [`host`]) and the autodiff node ([`autodiff`]).
//!
//! Per batch row `b` and head `h`, with `Q, K, V [T, dh]` and `s = 1/√dh`:
//!
//! ```text
//! S = s·Q Kᵀ + bias,  S_ij = −∞ for j > i,  P = softmax_rows(S),  O = P V
//! dV = Pᵀ dO,  dP = dO Vᵀ,  dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik),  dQ = s·dS K,  dK = s·dSᵀ Q
//! ```
//!
//! (the softmax Jacobian `diag(p) − p pᵀ` applied row by row; references.md, "softmax
//! gradient"). `O` is written with heads merged, `ctx[b, i, h·dh + e] = O[i, e]`. A trainable
//! score bias (T5, KERPLE, FIRE) receives `∂L/∂bias = dS` (the bias is added after the scale),
//! summed over the batch when it is broadcast (`[1, H, T, T]`).

mod autodiff;
mod host;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{Shape, Slice, TensorData};

pub(crate) use autodiff::{autodiff, autodiff_qkv};
pub(crate) use host::{flex_backward, flex_forward, flex_qkv_backward, flex_qkv_forward};

use crate::mask::causal_mask_values;

/// `qkv [B, T, 3d]` → `[q, k, v]`, each `[B, H, T, dh]` (views where the backend allows).
pub(crate) fn split_qkv<B: Backend>(qkv: FloatTensor<B>, heads: usize) -> [FloatTensor<B>; 3] {
    let [b, t, d3] = qkv.shape().dims::<3>();
    let d = d3 / 3;
    [0, 1, 2].map(|part| {
        let block = B::float_slice(qkv.clone(), &[Slice::from(0..b), Slice::from(0..t), Slice::from(part * d..(part + 1) * d)]);
        B::float_swap_dims(B::float_reshape(block, Shape::new([b, t, heads, d / heads])), 1, 2)
    })
}

/// `[dq, dk, dv]`, each `[B, H, T, dh]` → `[B, T, 3d]` (the inverse of [`split_qkv`]).
pub(crate) fn merge_qkv<B: Backend>(parts: [FloatTensor<B>; 3]) -> FloatTensor<B> {
    let [b, h, t, dh] = parts[0].shape().dims::<4>();
    let parts = parts.map(|p| B::float_reshape(B::float_swap_dims(p, 1, 2), Shape::new([b, t, h * dh])));
    B::float_cat(parts.into(), 2)
}

/// The forward as a composition of Burn primitives (ndarray, cubecl, and dtypes the host
/// kernel does not take): `(ctx [B, T, H·dh], probs [B, H, T, T])`.
pub(crate) fn compose_forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    forward_with::<B>(q, k, v, bias, compose_softmax::<B>)
}

/// The forward around a given causal softmax `(raw Q Kᵀ [B, H, T, T], bias, scale) → P`:
/// the matmuls as Burn ops, the softmax as the backend does it best (the composition here,
/// a CubeCL kernel on the cubecl backends).
pub(crate) fn forward_with<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    softmax: impl FnOnce(FloatTensor<B>, Option<FloatTensor<B>>, f64) -> FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [b, h, t, dh] = q.shape().dims::<4>();
    let raw = B::float_matmul(q, B::float_swap_dims(k, 2, 3));
    let probs = softmax(raw, bias, 1.0 / (dh as f64).sqrt());
    let ctx = B::float_matmul(probs.clone(), v); // [B, H, T, dh]
    let ctx = B::float_reshape(B::float_swap_dims(ctx, 1, 2), Shape::new([b, t, h * dh]));
    (ctx, probs)
}

/// `P = softmax_rows(scale·raw + bias + causal)` by Burn primitives.
fn compose_softmax<B: Backend>(raw: FloatTensor<B>, bias: Option<FloatTensor<B>>, scale: f64) -> FloatTensor<B> {
    let [b, h, t, _] = raw.shape().dims::<4>();
    let device = raw.device();
    let scores = B::float_mul_scalar(raw, scale.into());
    let scores = match bias {
        Some(bias) => B::float_add(scores, bias),
        None => scores,
    };
    // The causal mask (crate::mask) as an additive −∞ in the scores' dtype.
    let future: Vec<f64> = causal_mask_values(t, t).into_iter().map(|m| if m { f64::NEG_INFINITY } else { 0.0 }).collect();
    let mask = B::float_from_data(TensorData::new(future, [1, 1, t, t]).convert_dtype(scores.dtype()), &device);
    let scores = B::float_add(scores, B::float_expand(mask, Shape::new([b, h, t, t])));
    // Every row keeps its diagonal, so its max is finite and its sum ≥ 1.
    let max = B::float_max_dim(scores.clone(), 3);
    let exp = B::float_exp(B::float_sub(scores, max));
    B::float_div(exp.clone(), B::float_sum_dim(exp, 3))
}

/// The backward as a composition of Burn primitives (formulas in the module docs):
/// `(dq, dk, dv, dS)`, `dS [B, H, T, T]` the gradient w.r.t. the scores (and the bias).
pub(crate) fn compose_backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    probs: FloatTensor<B>,
    dctx: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    backward_with::<B>(q, k, v, probs, dctx, |probs, dp| {
        let row = B::float_sum_dim(B::float_mul(probs.clone(), dp.clone()), 3);
        B::float_mul(probs, B::float_sub(dp, row))
    })
}

/// The backward around a given softmax backward `(P, dP) → dS = P ⊙ (dP − rowsum(P ⊙ dP))`
/// (see [`forward_with`]).
pub(crate) fn backward_with<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    probs: FloatTensor<B>,
    dctx: FloatTensor<B>,
    softmax_backward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [b, h, t, dh] = q.shape().dims::<4>();
    let scale = 1.0 / (dh as f64).sqrt();
    let d_out = B::float_swap_dims(B::float_reshape(dctx, Shape::new([b, t, h, dh])), 1, 2); // [B, H, T, dh]
    let dv = B::float_matmul(B::float_swap_dims(probs.clone(), 2, 3), d_out.clone());
    let dp = B::float_matmul(d_out, B::float_swap_dims(v, 2, 3));
    let d_scores = softmax_backward(probs, dp);
    let ds = B::float_mul_scalar(d_scores.clone(), scale.into());
    let dq = B::float_matmul(ds.clone(), k);
    let dk = B::float_matmul(B::float_swap_dims(ds, 2, 3), q);
    (dq, dk, dv, d_scores)
}

/// `dS [B, H, T, T]` → the gradient of a bias of shape `bias` (`[1 or B, H, T, T]`): summed
/// over the batch when the bias is broadcast.
pub(crate) fn reduce_to_bias<B: Backend>(ds: FloatTensor<B>, bias: &Shape) -> FloatTensor<B> {
    if bias[0] == 1 && ds.shape()[0] != 1 {
        B::float_sum_dim(ds, 0)
    } else {
        ds
    }
}
