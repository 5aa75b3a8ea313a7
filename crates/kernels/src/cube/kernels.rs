//! The CubeCL kernels (compiled per device by CubeCL: WGSL/SPIR-V on wgpu, CUDA C on cuda).
//! One unit (GPU thread) per row: every kernel here is a row-wise reduction followed by a
//! row-wise map, over rows of at most a few thousand elements, so a unit loops over its row
//! (two or three passes, all in registers and L1) and the launch parallelises over rows
//! (`B·H·T` attention rows, `B·T` LayerNorm rows). Inputs are read through their strides
//! (permuted views and broadcasts need no copy); outputs are fresh contiguous tensors.
//!
//! WGSL has no infinity literal, so the causal mask is applied by loop bounds (key `j` runs
//! to the query's own index `i`) rather than by adding `−∞`.

use cubecl::prelude::*;

/// Row `row` of a `[B, H, T, T]` tensor (rows are `(b, h, i)` in row-major order): the
/// offset of its first element and the stride along it.
#[cube]
fn attention_row<F: Float>(t: &Tensor<F>, row: usize) -> (usize, usize) {
    let heads = t.shape(1);
    let len = t.shape(2);
    let i = row % len;
    let h = (row / len) % heads;
    let b = row / (len * heads);
    (b * t.stride(0) + h * t.stride(1) + i * t.stride(2), t.stride(3))
}

/// Row `row` of a matrix `[N, d]`: the offset of its first element and the stride along it.
#[cube]
fn matrix_row<F: Float>(t: &Tensor<F>, row: usize) -> (usize, usize) {
    (row * t.stride(0), t.stride(1))
}

/// Row `row`'s target id, `targets [N]` (any integer dtype).
#[cube]
fn row_target<I: Int>(targets: &Tensor<I>, row: usize) -> usize {
    u32::cast_from(targets[row * targets.stride(0)]) as usize
}

/// The number of rows of a `[B, H, T, T]` tensor, `B·H·T`.
#[cube]
fn attention_rows<F: Float>(t: &Tensor<F>) -> usize {
    t.shape(0) * t.shape(1) * t.shape(2)
}

/// Causal softmax of one attention row, `P[b, h, i, :]` from the raw scores `Q Kᵀ`
/// (`raw [B, H, T, T]`): `s_j = scale·raw_j + bias_j` for `j ≤ i`,
/// `P_j = exp(s_j − max s)/Σ exp(s − max s)`, and `P_j = 0` for `j > i`. `bias` is
/// `[1 or B, H, T, T]` (its batch is broadcast when 1), read only when `has_bias`; `probs` is
/// contiguous `[B, H, T, T]`.
#[cube(launch)]
pub(crate) fn causal_softmax<F: Float>(
    raw: &Tensor<F>,
    bias: &Tensor<F>,
    probs: &mut Tensor<F>,
    scale: f32,
    #[comptime] has_bias: bool,
    #[define(F)] _dtype: ElemType,
) {
    let row = ABSOLUTE_POS;
    if row >= attention_rows::<F>(raw) {
        terminate!();
    }
    let t = raw.shape(2);
    let i = row % t;
    let (base, step) = attention_row::<F>(raw, row);
    let mut bias_base = 0usize;
    let mut bias_step = 0usize;
    if has_bias {
        // A bias of batch 1 is shared by every batch row: the same (h, i) row of batch 0.
        let per_batch = raw.shape(1) * t;
        let bias_row = if bias.shape(0) == 1 { row % per_batch } else { row };
        let (start, stride) = attention_row::<F>(bias, bias_row);
        bias_base = start;
        bias_step = stride;
    }
    let s = F::cast_from(scale);
    let out = row * t;

    // Pass 1: the row's maximum over the visible keys (the diagonal is always visible).
    let mut max = raw[base] * s;
    if has_bias {
        max += bias[bias_base];
    }
    for j in 1..i + 1 {
        let mut v = raw[base + j * step] * s;
        if has_bias {
            v += bias[bias_base + j * bias_step];
        }
        if v > max {
            max = v;
        }
    }
    // Pass 2: exponentials (kept in the output) and their sum (≥ 1: the maximum's term).
    let mut sum = F::new(0.0);
    for j in 0..i + 1 {
        let mut v = raw[base + j * step] * s;
        if has_bias {
            v += bias[bias_base + j * bias_step];
        }
        let e = F::exp(v - max);
        probs[out + j] = e;
        sum += e;
    }
    // Pass 3: normalise; the future keys get exactly 0.
    let inv = F::new(1.0) / sum;
    for j in 0..t {
        if j <= i {
            probs[out + j] = probs[out + j] * inv;
        } else {
            probs[out + j] = F::new(0.0);
        }
    }
}

/// The softmax's backward for one row: `dS_j = P_j (dP_j − Σ_k P_k dP_k)` (the Jacobian
/// `diag(p) − p pᵀ` applied to `dP`). `probs`, `dp` are `[B, H, T, T]` (any strides), `ds`
/// contiguous `[B, H, T, T]`. Future keys have `P_j = 0`, so their `dS_j = 0`.
#[cube(launch)]
pub(crate) fn softmax_backward<F: Float>(probs: &Tensor<F>, dp: &Tensor<F>, ds: &mut Tensor<F>, #[define(F)] _dtype: ElemType) {
    let row = ABSOLUTE_POS;
    if row >= attention_rows::<F>(probs) {
        terminate!();
    }
    let t = probs.shape(2);
    let i = row % t;
    let (p_base, p_step) = attention_row::<F>(probs, row);
    let (d_base, d_step) = attention_row::<F>(dp, row);
    let out = row * t;

    let mut dot = F::new(0.0);
    for j in 0..i + 1 {
        dot += probs[p_base + j * p_step] * dp[d_base + j * d_step];
    }
    for j in 0..t {
        if j <= i {
            ds[out + j] = probs[p_base + j * p_step] * (dp[d_base + j * d_step] - dot);
        } else {
            ds[out + j] = F::new(0.0);
        }
    }
}

/// `μ` and `r = 1/√(σ² + ε)` of row `row` of `x [N, d]` (two passes: mean, then the
/// centred second moment, as the host kernel and the composition do).
#[cube]
fn row_moments<F: Float>(x: &Tensor<F>, base: usize, step: usize, d: usize, epsilon: F) -> (F, F) {
    let n = F::cast_from(d as u32);
    let mut sum = F::new(0.0);
    for j in 0..d {
        sum += x[base + j * step];
    }
    let mean = sum / n;
    let mut sq = F::new(0.0);
    for j in 0..d {
        let c = x[base + j * step] - mean;
        sq += c * c;
    }
    (mean, F::new(1.0) / F::sqrt(sq / n + epsilon))
}

/// LayerNorm without bias of one row of `x [N, d]` (any strides): `y = γ ⊙ (x − μ)·r`.
/// `gamma [d]`, `y` contiguous `[N, d]`.
#[cube(launch)]
pub(crate) fn layer_norm<F: Float>(x: &Tensor<F>, gamma: &Tensor<F>, y: &mut Tensor<F>, epsilon: f32, #[define(F)] _dtype: ElemType) {
    let d = x.shape(1);
    let row = ABSOLUTE_POS;
    if row >= x.shape(0) {
        terminate!();
    }
    let (base, step) = matrix_row::<F>(x, row);
    let g_step = gamma.stride(0);
    let (mean, rstd) = row_moments::<F>(x, base, step, d, F::cast_from(epsilon));
    let out = row * d;
    for j in 0..d {
        y[out + j] = gamma[j * g_step] * ((x[base + j * step] - mean) * rstd);
    }
}

/// LayerNorm's backward for one row of `x [N, d]`, with `g = γ ⊙ dy` and `x̂ = (x − μ)·r`:
/// `dx = r·(g − mean(g) − x̂·mean(g ⊙ x̂))`, and `dy ⊙ x̂` (whose column sums are `dγ`).
/// `dx`, `dy_xhat` contiguous `[N, d]`.
#[cube(launch)]
pub(crate) fn layer_norm_backward<F: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    dy_xhat: &mut Tensor<F>,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let d = x.shape(1);
    let row = ABSOLUTE_POS;
    if row >= x.shape(0) {
        terminate!();
    }
    let (base, step) = matrix_row::<F>(x, row);
    let g_step = gamma.stride(0);
    let (dy_base, dy_step) = matrix_row::<F>(dy, row);
    let (mean, rstd) = row_moments::<F>(x, base, step, d, F::cast_from(epsilon));
    let n = F::cast_from(d as u32);
    let out = row * d;

    let mut sum_g = F::new(0.0);
    let mut sum_gx = F::new(0.0);
    for j in 0..d {
        let up = dy[dy_base + j * dy_step];
        let x_hat = (x[base + j * step] - mean) * rstd;
        let g = gamma[j * g_step] * up;
        sum_g += g;
        sum_gx += g * x_hat;
        dy_xhat[out + j] = up * x_hat;
    }
    let mean_g = sum_g / n;
    let mean_gx = sum_gx / n;
    for j in 0..d {
        let x_hat = (x[base + j * step] - mean) * rstd;
        let g = gamma[j * g_step] * dy[dy_base + j * dy_step];
        dx[out + j] = rstd * (g - mean_g - x_hat * mean_gx);
    }
}

/// The target's log-probability of one row of `logits [N, V]` (any strides): `lse = m +
/// log Σ exp(z − m)`, `out = z[y] − lse`; `targets [N]` (any integer dtype), `out`, `lse`
/// contiguous `[N]`.
#[cube(launch)]
pub(crate) fn target_log_probs<F: Float, I: Int>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    out: &mut Tensor<F>,
    lse: &mut Tensor<F>,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let v = logits.shape(1);
    let row = ABSOLUTE_POS;
    if row >= logits.shape(0) {
        terminate!();
    }
    let (base, step) = matrix_row::<F>(logits, row);
    let mut max = logits[base];
    for j in 1..v {
        let z = logits[base + j * step];
        if z > max {
            max = z;
        }
    }
    let mut sum = F::new(0.0);
    for j in 0..v {
        sum += F::exp(logits[base + j * step] - max);
    }
    let row_lse = max + F::ln(sum);
    let y = row_target::<I>(targets, row);
    lse[row] = row_lse;
    out[row] = logits[base + y * step] - row_lse;
}

/// Its backward for one row: `dz_v = dy·(1{v = y} − exp(z_v − lse))`; `dz` contiguous `[N, V]`.
#[cube(launch)]
pub(crate) fn target_log_probs_backward<F: Float, I: Int>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    lse: &Tensor<F>,
    dy: &Tensor<F>,
    dz: &mut Tensor<F>,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let v = logits.shape(1);
    let row = ABSOLUTE_POS;
    if row >= logits.shape(0) {
        terminate!();
    }
    let (base, step) = matrix_row::<F>(logits, row);
    let y = row_target::<I>(targets, row);
    let row_lse = lse[row * lse.stride(0)];
    let up = dy[row * dy.stride(0)];
    let out = row * v;
    for j in 0..v {
        let p = F::exp(logits[base + j * step] - row_lse);
        if j == y {
            dz[out + j] = up * (F::new(1.0) - p);
        } else {
            dz[out + j] = -(up * p);
        }
    }
}
