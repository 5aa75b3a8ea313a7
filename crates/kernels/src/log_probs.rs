//! The log-probability of each row's target as one op (the per-token term of the
//! cross-entropy): the composition (default bodies), the CubeCL kernels (`crate::cube`) and
//! the autodiff node. For logits `z [N, V]` and targets `y [N]`:
//!
//! ```text
//! lse_n = m_n + log Σ_v exp(z_nv − m_n),  m_n = max_v z_nv,   out_n = z_n[y_n] − lse_n
//! ∂out_n/∂z_nv = 1{v = y_n} − p_nv,  p_nv = exp(z_nv − lse_n)
//! ```
//!
//! The forward keeps `lse [N]`, so the backward is one pass over `z` (no softmax kept).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IndexingUpdateOp, IntTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::Shape;

use crate::ops::EmberKernels;

/// `(out [N], lse [N])` by Burn primitives (module docs).
pub(crate) fn compose_forward<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let [n, _] = logits.shape().dims::<2>();
    let max = B::float_max_dim(logits.clone(), 1); // [N, 1]
    let sum = B::float_sum_dim(B::float_exp(B::float_sub(logits.clone(), max.clone())), 1);
    let lse = B::float_add(max, B::float_log(sum));
    let picked = B::float_gather(1, logits, B::int_reshape(targets, Shape::new([n, 1])));
    (B::float_reshape(B::float_sub(picked, lse.clone()), Shape::new([n])), B::float_reshape(lse, Shape::new([n])))
}

/// `dz = dy ⊙ (e_y − p)`, `[N, V]`, by Burn primitives: `−dy·p`, then `dy` added at each
/// row's target.
pub(crate) fn compose_backward<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>, lse: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    let [n, _] = logits.shape().dims::<2>();
    let column = Shape::new([n, 1]);
    let probs = B::float_exp(B::float_sub(logits, B::float_reshape(lse, column.clone())));
    let dy = B::float_reshape(dy, column.clone());
    let grad = B::float_neg(B::float_mul(probs, dy.clone()));
    B::float_scatter(1, grad, B::int_reshape(targets, column), dy, IndexingUpdateOp::Add)
}

/// The autodiff node: parent `logits`, state `(logits, targets, lse)`.
pub(crate) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(logits: FloatTensor<Autodiff<B, C>>, targets: IntTensor<Autodiff<B, C>>) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LogProbsBackward;

    impl<B: Backend + EmberKernels> Backward<B, 1> for LogProbsBackward {
        /// `(logits, targets, lse)`.
        type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (logits, targets, lse) = ops.state;
            if let Some(node) = node {
                grads.register::<B>(node.id, B::fused_target_log_probs_backward(logits, targets, lse, dy));
            }
        }
    }

    match LogProbsBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let logits = logits.into_primitive();
            let (out, lse) = B::fused_target_log_probs_forward(logits.clone(), targets.clone());
            prep.finish((logits, targets, lse), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_target_log_probs_forward(logits.into_primitive(), targets).0),
    }
}
