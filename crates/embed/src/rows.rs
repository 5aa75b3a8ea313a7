//! [`linear_rows`]: a linear layer on `[B, T, d_in]` as one `[B·T, d_in] × [d_in, d_out]`
//! matrix product.
//!
//! `burn::tensor::module::linear` keeps a 3-D input batched when `T` is a multiple of its row
//! tile (a GPU tiling heuristic, `MatmulTransformPolicy::BetterTiling`): on the CPU backends
//! that is `B` separate `[T, d_in] × [d_in, d_out]` products, each packing the whole weight
//! again, and a weight gradient summed over `B` partial products. Folding the rows first
//! gives one product (packed once, split over the cores) and one `Xᵀ·dY` for the gradient.
//! The main job's step: 66 → 54 ms with this for every linear (BENCHMARKS.md, session 4).
//! The LM head uses it; the model's own layers use `ember_train::kernels::linear`, the same
//! fold as one op with its own backward.

use burn::tensor::{module::linear, Tensor};

/// `x W + b` over the last dimension: `x [B, T, d_in]` (hidden states), `weight [d_in, d_out]`,
/// `bias [d_out]` → `[B, T, d_out]`, computed as one matrix product over all `B·T` rows.
pub fn linear_rows(x: Tensor<3>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<3> {
    let [b, t, d_in] = x.dims();
    let d_out = weight.dims()[1];
    linear(x.reshape([b * t, d_in]), weight, bias).reshape([b, t, d_out])
}
