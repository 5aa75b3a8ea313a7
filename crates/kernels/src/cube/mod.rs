//! The cubecl backends (wgpu, cuda): the fused ops' row-wise parts as CubeCL kernels
//! ([`kernels`]), the matmuls as cubecl's own (autotuned) matmul.
//!
//! | op | CubeCL kernel | Burn ops around it |
//! | --- | --- | --- |
//! | attention forward | causal softmax of `s·Q Kᵀ + bias` → `P` | `Q Kᵀ`, `P V`, heads merged |
//! | attention backward | `dS = P ⊙ (dP − rowsum(P ⊙ dP))` | `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dQ`, `dK` |
//! | LayerNorm forward | `γ ⊙ (x − μ)·r` per row | — |
//! | LayerNorm backward | `dx` and `dy ⊙ x̂` per row | `dγ = Σ_rows dy ⊙ x̂` |
//! | target log-probs forward | `z[y] − logsumexp(z)` and `logsumexp(z)` per row | — |
//! | target log-probs backward | `dy ⊙ (e_y − softmax(z))` per row | — |
//!
//! Under Burn's `fusion` (ember enables it) the cubecl backend is `Fusion<CubeBackend>`: the
//! ops above are registered as opaque custom operations in the fusion stream (their output
//! shapes are described up front, `ops::meta`), which run these functions on the inner
//! `CubeBackend` when the stream executes; the element-wise ops (GELU, AdamW, Σx²) stay Burn
//! compositions that fusion merges into few kernels. Parity with the compositions is tested
//! on wgpu (lavapipe in CI) in `tests/fused_kernels.rs` and `tests/cube_kernels.rs`.

mod kernels;

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::TensorMetadata;
use burn::tensor::Shape;
use cubecl::prelude::*;
use cubecl::calculate_cube_count_elemwise;

use crate::attention;
use crate::ops::{EmberKernels, ScoreBias};

impl EmberKernels for CubeBackend {
    fn fused_attention_forward(q: CubeTensor, k: CubeTensor, v: CubeTensor, bias: ScoreBias<Self>) -> (CubeTensor, CubeTensor) {
        attention::forward_with::<Self>(q, k, v, bias.into_option(), causal_softmax)
    }

    fn fused_attention_bias_backward(q: CubeTensor, k: CubeTensor, v: CubeTensor, probs: CubeTensor, dctx: CubeTensor) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
        attention::backward_with::<Self>(q, k, v, probs, dctx, softmax_backward)
    }

    fn fused_layer_norm_forward(x: CubeTensor, gamma: CubeTensor, epsilon: f64) -> CubeTensor {
        layer_norm_forward(x, gamma, epsilon)
    }

    fn fused_layer_norm_backward(x: CubeTensor, gamma: CubeTensor, dy: CubeTensor, epsilon: f64) -> (CubeTensor, CubeTensor) {
        layer_norm_backward(x, gamma, dy, epsilon)
    }

    fn fused_target_log_probs_forward(logits: CubeTensor, targets: CubeTensor) -> (CubeTensor, CubeTensor) {
        target_log_probs(logits, targets)
    }

    fn fused_target_log_probs_backward(logits: CubeTensor, targets: CubeTensor, lse: CubeTensor, dy: CubeTensor) -> CubeTensor {
        target_log_probs_backward(logits, targets, lse, dy)
    }
}

/// A launch with one unit per row: `(cube count, cube dim)` for `rows` rows.
fn per_row(client: &cubecl::client::Client, rows: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, rows);
    (calculate_cube_count_elemwise(client, rows, dim), dim)
}

/// A fresh contiguous tensor of `shape` on `like`'s device, in its dtype.
fn empty_like(like: &CubeTensor, shape: Shape) -> CubeTensor {
    CubeBackend::float_empty(shape, &like.device, like.dtype.into())
}

/// `P = softmax_rows(scale·raw + bias + causal)`: `raw [B, H, T, T]` (`Q Kᵀ`), `bias
/// [1 or B, H, T, T]` → `P [B, H, T, T]` (kernel [`kernels::causal_softmax`]).
fn causal_softmax(raw: CubeTensor, bias: Option<CubeTensor>, scale: f64) -> CubeTensor {
    let [b, h, t, _] = raw.shape().dims::<4>();
    let probs = empty_like(&raw, Shape::new([b, h, t, t]));
    let client = raw.client.clone();
    let (count, dim) = per_row(&client, b * h * t);
    let elem = dtype_to_storage_type(raw.dtype);
    let has_bias = bias.is_some();
    // Without a bias the kernel never reads its `bias` argument (`has_bias` is comptime);
    // `raw` stands in for it.
    let bias = bias.unwrap_or_else(|| raw.clone());
    kernels::causal_softmax::launch(&client, count, dim, raw.into_tensor_arg(), bias.into_tensor_arg(), probs.clone().into_tensor_arg(), scale as f32, has_bias, elem);
    probs
}

/// `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, each `[B, H, T, T]` (kernel [`kernels::softmax_backward`]).
fn softmax_backward(probs: CubeTensor, dp: CubeTensor) -> CubeTensor {
    let [b, h, t, _] = probs.shape().dims::<4>();
    let ds = empty_like(&probs, Shape::new([b, h, t, t]));
    let client = probs.client.clone();
    let (count, dim) = per_row(&client, b * h * t);
    let elem = dtype_to_storage_type(probs.dtype);
    kernels::softmax_backward::launch(&client, count, dim, probs.into_tensor_arg(), dp.into_tensor_arg(), ds.clone().into_tensor_arg(), elem);
    ds
}

/// `x [.., d]` as rows `[N, d]` (a view where the strides allow) and its shape.
fn rows(x: CubeTensor) -> (CubeTensor, Shape, usize, usize) {
    let shape = x.shape();
    let d = shape[shape.num_dims() - 1];
    let n = shape.num_elements() / d;
    (CubeBackend::float_reshape(x, Shape::new([n, d])), shape, n, d)
}

/// LayerNorm without bias: `x [.., d]`, `gamma [d]` → `y`, shaped like `x` (kernel
/// [`kernels::layer_norm`]).
fn layer_norm_forward(x: CubeTensor, gamma: CubeTensor, epsilon: f64) -> CubeTensor {
    let (x, shape, n, d) = rows(x);
    let y = empty_like(&x, Shape::new([n, d]));
    let client = x.client.clone();
    let (count, dim) = per_row(&client, n);
    let elem = dtype_to_storage_type(x.dtype);
    kernels::layer_norm::launch(&client, count, dim, x.into_tensor_arg(), gamma.into_tensor_arg(), y.clone().into_tensor_arg(), epsilon as f32, elem);
    CubeBackend::float_reshape(y, shape)
}

/// LayerNorm's backward: `x`, `dy` shaped `[.., d]`, `gamma [d]` → `(dx, dγ [d])` (kernel
/// [`kernels::layer_norm_backward`], then `dγ` as a column sum of `dy ⊙ x̂`).
fn layer_norm_backward(x: CubeTensor, gamma: CubeTensor, dy: CubeTensor, epsilon: f64) -> (CubeTensor, CubeTensor) {
    let (x, shape, n, d) = rows(x);
    let (dy, ..) = rows(dy);
    let dx = empty_like(&x, Shape::new([n, d]));
    let dy_xhat = empty_like(&x, Shape::new([n, d]));
    let client = x.client.clone();
    let (count, dim) = per_row(&client, n);
    let elem = dtype_to_storage_type(x.dtype);
    kernels::layer_norm_backward::launch(
        &client,
        count,
        dim,
        x.into_tensor_arg(),
        gamma.into_tensor_arg(),
        dy.into_tensor_arg(),
        dx.clone().into_tensor_arg(),
        dy_xhat.clone().into_tensor_arg(),
        epsilon as f32,
        elem,
    );
    let dgamma = CubeBackend::float_reshape(CubeBackend::float_sum_dim(dy_xhat, 0), Shape::new([d]));
    (CubeBackend::float_reshape(dx, shape), dgamma)
}

/// `logits [N, V]`, `targets [N]` → `(log p_y [N], lse [N])` (kernel
/// [`kernels::target_log_probs`]).
fn target_log_probs(logits: CubeTensor, targets: CubeTensor) -> (CubeTensor, CubeTensor) {
    let n = logits.shape()[0];
    let out = empty_like(&logits, Shape::new([n]));
    let lse = empty_like(&logits, Shape::new([n]));
    let client = logits.client.clone();
    let (count, dim) = per_row(&client, n);
    let elems = [dtype_to_storage_type(logits.dtype), dtype_to_storage_type(targets.dtype)];
    kernels::target_log_probs::launch(&client, count, dim, logits.into_tensor_arg(), targets.into_tensor_arg(), out.clone().into_tensor_arg(), lse.clone().into_tensor_arg(), elems);
    (out, lse)
}

/// Its backward: `dy [N]` → `dz [N, V]` (kernel [`kernels::target_log_probs_backward`]).
fn target_log_probs_backward(logits: CubeTensor, targets: CubeTensor, lse: CubeTensor, dy: CubeTensor) -> CubeTensor {
    let dz = empty_like(&logits, logits.shape());
    let n = logits.shape()[0];
    let client = logits.client.clone();
    let (count, dim) = per_row(&client, n);
    let elems = [dtype_to_storage_type(logits.dtype), dtype_to_storage_type(targets.dtype)];
    kernels::target_log_probs_backward::launch(
        &client,
        count,
        dim,
        logits.into_tensor_arg(),
        targets.into_tensor_arg(),
        lse.into_tensor_arg(),
        dy.into_tensor_arg(),
        dz.clone().into_tensor_arg(),
        elems,
    );
    dz
}
