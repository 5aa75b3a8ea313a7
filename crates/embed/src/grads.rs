//! Analytic gradients of the output and input ends of the model, written out so they can
//! be compared with autodiff (see `ember gradcheck`).
//!
//! With `N` positions, hidden states `H [N, d]`, head rows `W [V, d]`, logits `Z = H Wᵀ`,
//! probabilities `P = softmax(Z)`, one-hot targets `Y`, and mean cross-entropy over the
//! `n` positions that count (pad targets excluded, `M = diag(mask)`):
//!
//! - `∂L/∂Z = M (P − Y) / n` ([`logits_grad`]);
//! - head part of the table gradient, `∂L/∂W = (∂L/∂Z)ᵀ H` ([`head_rows_grad`]);
//! - hidden-state gradient `∂L/∂H = (∂L/∂Z) W` ([`hidden_grad`]);
//! - lookup part: the gradient `G [N, d]` at the embedding output, scatter-added into the
//!   rows of the ids that produced it ([`lookup_grad`]).
//!
//! With a tied head, autodiff's gradient of the table is `head_rows_grad + lookup_grad`.

use burn::tensor::{activation::softmax, Int, Tensor};

/// `∂L/∂Z [N, V]` of the mean cross-entropy for `logits [N, V]`, `targets [N]`, skipping
/// targets equal to `ignore`: `mask · (softmax(Z) − onehot(y)) / max(1, Σ mask)`.
pub fn logits_grad(logits: Tensor<2>, targets: Tensor<1, Int>, ignore: Option<usize>) -> Tensor<2> {
    let [n, v] = logits.dims();
    let p = softmax(logits, 1);
    let y = targets.clone().one_hot::<2>(v).float();
    let diff = p - y;
    match ignore {
        None => diff.div_scalar(n as f64),
        Some(pad) => {
            let keep = targets.not_equal_elem(pad as i64).float().reshape([n, 1]);
            let count = keep.clone().sum().clamp_min(1.0).reshape([1, 1]);
            (diff * keep).div(count)
        }
    }
}

/// Head part of the gradient of the head rows, `[V, d]`: `(∂L/∂Z)ᵀ H` for
/// `dlogits [N, V]` and final hidden states `hidden [N, d]`.
pub fn head_rows_grad(dlogits: Tensor<2>, hidden: Tensor<2>) -> Tensor<2> {
    dlogits.transpose().matmul(hidden)
}

/// Gradient at the final hidden states, `[N, d]`: `(∂L/∂Z) W` for `dlogits [N, V]` and
/// head rows `rows [V, d]`.
pub fn hidden_grad(dlogits: Tensor<2>, rows: Tensor<2>) -> Tensor<2> {
    dlogits.matmul(rows)
}

/// Lookup part of the table gradient, `[V, d]`: row `i` is the sum of `grad_out[n]` over
/// the positions `n` with `ids[n] = i`. `ids [N]`, `grad_out [N, d]` (gradient at the
/// embedding output, flattened). A scatter-add (`select_assign`), independent of the
/// one-hot formulation the lookup test uses.
///
/// With a padding row `p`, positions holding `p` contribute nothing (the row never receives
/// gradient, PyTorch's `padding_idx`).
pub fn lookup_grad(ids: Tensor<1, Int>, grad_out: Tensor<2>, vocab: usize, padding_idx: Option<usize>) -> Tensor<2> {
    let [n, d] = grad_out.dims();
    let grad_out = match padding_idx {
        None => grad_out,
        Some(p) => grad_out * ids.clone().not_equal_elem(p as i64).float().reshape([n, 1]),
    };
    Tensor::zeros([vocab, d], &grad_out.device()).select_assign(0, ids, grad_out, burn::tensor::IndexingUpdateOp::Add)
}
